/*
 * kvsfs-creds: drives aws/creds and aws/awsconfig for tests/integration/modules/aws/test_creds_*.py.
 *
 * Modes (the environment is the process environment, as for a mount):
 *   (default)              resolve the chain and the region/endpoints, print one JSON object:
 *                          {source, describe, access_key_id, has_secret, has_token, expiration,
 *                           region, region_source, kvs_endpoint, s3_endpoint, region_error}
 *   --secret-sha256        also print secret_sha256 and token_sha256 (hex SHA-256), so tests
 *                          can check values without the tool ever printing a secret
 *   --threads N --seconds T  call creds_get from N threads for T seconds; print
 *                          {calls, errors, torn, fetches, failures, distinct_keys}; "torn" counts
 *                          copies with an empty field or (with --check-suffix K) whose access key,
 *                          secret and token do not share their last K characters
 *   --repeat K --interval-ms M  call creds_get K times, M ms apart; print {keys: [...],
 *                          rcs: [...], fetches, failures}
 *   --dump-config FILE --kind config|credentials
 *                          parse one file; print {sections: {NAME: {key: value|{sub: v}}},
 *                          profiles: {NAME: {...}}} or {error, line}
 * Options: --profile P --region R --endpoint URL --s3-endpoint URL --margin S
 *          --container-endpoint URL --imds-timeout-ms N --container-timeout-ms N
 *          --process-timeout-ms N --ca-file PEM --log-level 0..3 (log lines go to stderr).
 * Exit status: 0 success; 1 credentials error (JSON {error, errno, rc} on stdout); 2 usage.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvsfs/awsconfig.h"
#include "kvsfs/creds.h"
#include "kvsfs/log.h"

static void sha256_hex(const char *s, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void print_json(json_t *o)
{
	char *s = json_dumps(o, JSON_SORT_KEYS);
	puts(s ? s : "{}");
	free(s);
	json_decref(o);
}

static json_t *time_json(time_t t)
{
	if (!t)
		return json_null();
	struct tm tm;
	char b[32];
	gmtime_r(&t, &tm);
	strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(b);
}

/* Nested values become objects, like botocore's _parse_nested. */
static json_t *value_json(const char *v)
{
	if (v[0] != '\n')
		return json_string(v);
	json_t *o = json_object();
	char *copy = strdup(v);
	for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = '\0';
		char *k = line, *val = eq + 1;
		while (*k == ' ' || *k == '\t')
			k++;
		char *e = k + strlen(k);
		while (e > k && (e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		char *sub = awsconfig_nested_get(v, k);
		json_object_set_new(o, k, json_string(sub ? sub : val));
		free(sub);
	}
	free(copy);
	return o;
}

static json_t *section_json(const struct awsconfig *c, const struct awsconfig_section *s)
{
	json_t *o = json_object();
	if (c->has_defaults)
		for (size_t i = 0; i < c->defaults.n; i++)
			json_object_set_new(o, c->defaults.entries[i].key,
					    value_json(c->defaults.entries[i].value));
	for (size_t i = 0; i < s->n; i++)
		json_object_set_new(o, s->entries[i].key, value_json(s->entries[i].value));
	return o;
}

static int dump_config(const char *path, const char *kind)
{
	struct awsconfig c;
	enum awsconfig_kind k = strcmp(kind, "credentials") == 0 ? AWSCONFIG_CREDENTIALS :
				AWSCONFIG_CONFIG;
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return 2;
	}
	char *data = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 65536;
			data = realloc(data, cap);
		}
		size_t n = fread(data + len, 1, cap - len, f);
		if (!n)
			break;
		len += n;
	}
	fclose(f);
	int line = 0;
	const char *why = NULL;
	int rc = awsconfig_parse(&c, k, data ? data : "", len, &line, &why);
	free(data);
	json_t *o = json_object();
	if (rc) {
		json_object_set_new(o, "error", json_string(why ? why : "?"));
		json_object_set_new(o, "line", json_integer(line));
		json_object_set_new(o, "rc", json_integer(rc));
		print_json(o);
		return 0;
	}
	json_t *secs = json_object(), *profs = json_object();
	for (size_t i = 0; i < c.n; i++) {
		json_object_set_new(secs, c.sections[i].name, section_json(&c, &c.sections[i]));
		if (c.sections[i].profile)
			json_object_set_new(profs, c.sections[i].profile,
					    section_json(&c, &c.sections[i]));
	}
	json_object_set_new(o, "sections", secs);
	json_object_set_new(o, "profiles", profs);
	print_json(o);
	awsconfig_free(&c);
	return 0;
}

struct hammer {
	struct creds_provider *p;
	volatile int stop;
	int suffix;
	long calls, errors, torn;
	pthread_mutex_t lock;
	json_t *keys;   /* set of access keys seen */
};

static int suffix_eq(const char *a, const char *b, int k)
{
	size_t la = strlen(a), lb = strlen(b);
	if ((int)la < k || (int)lb < k)
		return 0;
	return memcmp(a + la - k, b + lb - k, (size_t)k) == 0;
}

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	while (!h->stop) {
		struct creds_value v;
		int rc = creds_get(h->p, &v);
		__atomic_add_fetch(&h->calls, 1, __ATOMIC_RELAXED);
		if (rc) {
			__atomic_add_fetch(&h->errors, 1, __ATOMIC_RELAXED);
			continue;
		}
		int bad = !v.access_key_id || !*v.access_key_id || !v.secret_access_key ||
			  !*v.secret_access_key;
		if (!bad && h->suffix > 0)
			bad = !v.session_token ||
			      !suffix_eq(v.access_key_id, v.secret_access_key, h->suffix) ||
			      !suffix_eq(v.access_key_id, v.session_token, h->suffix);
		if (bad)
			__atomic_add_fetch(&h->torn, 1, __ATOMIC_RELAXED);
		else {
			pthread_mutex_lock(&h->lock);
			json_object_set_new(h->keys, v.access_key_id, json_true());
			pthread_mutex_unlock(&h->lock);
		}
		creds_value_free(&v);
	}
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: kvsfs-creds [--profile P] [--region R] [--endpoint URL] "
		"[--s3-endpoint URL] [--margin S] [--container-endpoint URL] [--imds-timeout-ms N] "
		"[--container-timeout-ms N] [--process-timeout-ms N] [--ca-file PEM] [--log-level N] "
		"[--secret-sha256] [--threads N --seconds T [--check-suffix K]] "
		"[--repeat K --interval-ms M] [--dump-config FILE --kind config|credentials]\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "profile", required_argument, 0, 'p' },
		{ "region", required_argument, 0, 'r' },
		{ "endpoint", required_argument, 0, 'e' },
		{ "s3-endpoint", required_argument, 0, 's' },
		{ "margin", required_argument, 0, 'm' },
		{ "container-endpoint", required_argument, 0, 'c' },
		{ "imds-timeout-ms", required_argument, 0, 'i' },
		{ "container-timeout-ms", required_argument, 0, 'C' },
		{ "process-timeout-ms", required_argument, 0, 'P' },
		{ "log-level", required_argument, 0, 'l' },
		{ "ca-file", required_argument, 0, 'A' },
		{ "secret-sha256", no_argument, 0, 'H' },
		{ "threads", required_argument, 0, 't' },
		{ "seconds", required_argument, 0, 'T' },
		{ "check-suffix", required_argument, 0, 'k' },
		{ "repeat", required_argument, 0, 'R' },
		{ "interval-ms", required_argument, 0, 'I' },
		{ "dump-config", required_argument, 0, 'D' },
		{ "kind", required_argument, 0, 'K' },
		{ 0, 0, 0, 0 },
	};
	struct creds_options o;
	memset(&o, 0, sizeof(o));
	const char *region = NULL, *endpoint = NULL, *s3 = NULL, *dump = NULL, *kind = "config";
	int level = LOG_LEVEL_INFO, hash = 0, threads = 0, seconds = 0, suffix = 0, repeat = 0;
	int interval = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'p': o.profile = optarg; break;
		case 'r': region = optarg; break;
		case 'e': endpoint = optarg; break;
		case 's': s3 = optarg; break;
		case 'm': o.refresh_margin_s = atoi(optarg); break;
		case 'c': o.container_endpoint = optarg; break;
		case 'i': o.imds_timeout_ms = atoi(optarg); break;
		case 'C': o.container_timeout_ms = atoi(optarg); break;
		case 'P': o.process_timeout_ms = atoi(optarg); break;
		case 'l': level = atoi(optarg); break;
		case 'A': o.ca_file = optarg; break;
		case 'H': hash = 1; break;
		case 't': threads = atoi(optarg); break;
		case 'T': seconds = atoi(optarg); break;
		case 'k': suffix = atoi(optarg); break;
		case 'R': repeat = atoi(optarg); break;
		case 'I': interval = atoi(optarg); break;
		case 'D': dump = optarg; break;
		case 'K': kind = optarg; break;
		default: usage(); return 2;
		}
	}
	if (optind != argc || threads < 0 || threads > 256) {
		usage();
		return 2;
	}
	if (dump)
		return dump_config(dump, kind);

	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct log_ctx lg;
	log_init(&lg, level, stderr);
	char err[1024];
	struct creds_provider *p = NULL;
	int rc = creds_provider_new(&p, &o, NULL, &lg, err, sizeof(err));
	if (rc) {
		json_t *e = json_object();
		json_object_set_new(e, "error", json_string(err));
		const char *en = strerrorname_np(-rc);
		json_object_set_new(e, "errno", json_string(en ? en : "?"));
		json_object_set_new(e, "rc", json_integer(rc));
		print_json(e);
		log_destroy(&lg);
		curl_global_cleanup();
		return 1;
	}
	int status = 0;
	if (threads > 0) {
		struct hammer h;
		memset(&h, 0, sizeof(h));
		h.p = p;
		h.suffix = suffix;
		h.keys = json_object();
		pthread_mutex_init(&h.lock, NULL);
		pthread_t *th = calloc((size_t)threads, sizeof(*th));
		for (int i = 0; i < threads; i++)
			pthread_create(&th[i], NULL, hammer_main, &h);
		sleep((unsigned)seconds);
		h.stop = 1;
		for (int i = 0; i < threads; i++)
			pthread_join(th[i], NULL);
		free(th);
		struct creds_stats st;
		creds_provider_stats(p, &st);
		json_t *r = json_object();
		json_object_set_new(r, "calls", json_integer(h.calls));
		json_object_set_new(r, "errors", json_integer(h.errors));
		json_object_set_new(r, "torn", json_integer(h.torn));
		json_object_set_new(r, "fetches", json_integer((json_int_t)st.fetches));
		json_object_set_new(r, "failures", json_integer((json_int_t)st.failures));
		json_object_set_new(r, "distinct_keys", json_integer((json_int_t)json_object_size(h.keys)));
		print_json(r);
		json_decref(h.keys);
		pthread_mutex_destroy(&h.lock);
	} else if (repeat > 0) {
		json_t *keys = json_array(), *rcs = json_array();
		for (int i = 0; i < repeat; i++) {
			if (i && interval > 0) {
				struct timespec ts = { interval / 1000, (interval % 1000) * 1000000L };
				nanosleep(&ts, NULL);
			}
			struct creds_value v;
			int r = creds_get(p, &v);
			json_array_append_new(rcs, json_integer(r));
			json_array_append_new(keys, r ? json_null() : json_string(v.access_key_id));
			creds_value_free(&v);
		}
		struct creds_stats st;
		creds_provider_stats(p, &st);
		json_t *r = json_object();
		json_object_set_new(r, "keys", keys);
		json_object_set_new(r, "rcs", rcs);
		json_object_set_new(r, "fetches", json_integer((json_int_t)st.fetches));
		json_object_set_new(r, "failures", json_integer((json_int_t)st.failures));
		print_json(r);
	} else {
		struct creds_value v;
		rc = creds_get(p, &v);
		if (rc) {
			json_t *e = json_object();
			json_object_set_new(e, "error", json_string("creds_get failed"));
			json_object_set_new(e, "rc", json_integer(rc));
			print_json(e);
			status = 1;
		} else {
			json_t *r = json_object();
			json_object_set_new(r, "source",
					    json_string(creds_source_name(creds_provider_source(p))));
			json_object_set_new(r, "describe", json_string(creds_provider_describe(p)));
			json_object_set_new(r, "access_key_id", json_string(v.access_key_id));
			json_object_set_new(r, "has_secret",
					    json_boolean(v.secret_access_key && *v.secret_access_key));
			json_object_set_new(r, "has_token", json_boolean(v.session_token != NULL));
			json_object_set_new(r, "expiration", time_json(v.expiration));
			if (hash) {
				char hx[65];
				sha256_hex(v.secret_access_key, hx);
				json_object_set_new(r, "secret_sha256", json_string(hx));
				if (v.session_token) {
					sha256_hex(v.session_token, hx);
					json_object_set_new(r, "token_sha256", json_string(hx));
				} else {
					json_object_set_new(r, "token_sha256", json_null());
				}
			}
			struct awsconfig_files f;
			struct awsconfig_settings s;
			char rerr[512];
			int frc = awsconfig_files_load(&f, o.profile, NULL, NULL, rerr, sizeof(rerr));
			int rrc = frc ? frc : awsconfig_resolve(&s, &f, region, endpoint, s3, NULL, rerr,
							       sizeof(rerr));
			if (rrc) {
				json_object_set_new(r, "region", json_null());
				json_object_set_new(r, "region_source", json_null());
				json_object_set_new(r, "kvs_endpoint", json_null());
				json_object_set_new(r, "s3_endpoint", json_null());
				json_object_set_new(r, "region_error", json_string(rerr));
			} else {
				json_object_set_new(r, "region", json_string(s.region));
				json_object_set_new(r, "region_source", json_string(s.region_source));
				json_object_set_new(r, "kvs_endpoint", json_string(s.kvs_endpoint));
				json_object_set_new(r, "s3_endpoint", json_string(s.s3_endpoint));
				json_object_set_new(r, "region_error", json_null());
				awsconfig_settings_free(&s);
			}
			if (!frc)
				awsconfig_files_free(&f);
			print_json(r);
			creds_value_free(&v);
		}
	}
	creds_provider_free(p);
	log_destroy(&lg);
	curl_global_cleanup();
	return status;
}
