/*
 * Fuzz target for the AWS shared config/credentials parser (src/aws/awsconfig.c) and the small
 * parsers next to it: the input is parsed as a config file and as a credentials file, every
 * section is looked up, nested values are read; the first line is also fed to the endpoint
 * normaliser, the region check, the path expander and creds_parse_time. Checks invariants the
 * parser promises (no duplicate keys in a section, lower-case keys) with abort().
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvsfs/awsconfig.h"
#include "kvsfs/creds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct awsconfig *c)
{
	for (size_t i = 0; i < c->n; i++) {
		const struct awsconfig_section *s = &c->sections[i];
		for (size_t j = 0; j < s->n; j++) {
			const char *k = s->entries[j].key;
			for (const char *p = k; *p; p++)
				if (*p >= 'A' && *p <= 'Z')
					abort();
			for (size_t m = j + 1; m < s->n; m++)
				if (strcmp(k, s->entries[m].key) == 0)
					abort();
			char *v = awsconfig_nested_get(s->entries[j].value, "addressing_style");
			free(v);
		}
		if (s->profile) {
			(void)awsconfig_get(c, s->profile, "region");
			(void)awsconfig_get(c, s->profile, "aws_access_key_id");
			(void)awsconfig_get_line(c, s->profile, "s3");
			if (!awsconfig_has_profile(c, s->profile))
				abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct awsconfig c;
	int line;
	const char *why;
	if (awsconfig_parse(&c, AWSCONFIG_CONFIG, (const char *)data, size, &line, &why) == 0) {
		check(&c);
		awsconfig_free(&c);
	} else if (!why) {
		abort();
	}
	if (awsconfig_parse(&c, AWSCONFIG_CREDENTIALS, (const char *)data, size, &line, &why) == 0) {
		check(&c);
		awsconfig_free(&c);
	}
	/* First line as a string for the small parsers. */
	size_t n = 0;
	while (n < size && n < 4096 && data[n] != '\n' && data[n] != '\0')
		n++;
	char *s = malloc(n + 1);
	if (!s)
		return 0;
	memcpy(s, data, n);
	s[n] = '\0';
	char err[128];
	char *e = awsconfig_endpoint_normalize(s, err, sizeof(err));
	free(e);
	(void)awsconfig_region_valid(s);
	char *env[] = { "HOME=/home/fuzz", "X=y", NULL };
	char *x = awsconfig_expand_path(s, env);
	free(x);
	time_t t;
	(void)creds_parse_time(s, &t);
	char *ke = awsconfig_kvs_endpoint(s);
	free(ke);
	free(s);
	return 0;
}
