/*
 * Unit tests for awsconfig (shared file parser, region/endpoint resolution) and creds (the
 * chain's environment, file and credential_process sources, refresh and concurrency). The HTTP
 * sources (container, IMDS) are covered by tests/integration/modules/aws/test_creds_*.py with local
 * stand-in servers. Every test uses its own temporary directory and an explicit environment
 * array, never the real ~/.aws or the process environment.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "kvsfs/awsconfig.h"
#include "kvsfs/creds.h"

static char tmpdir[256];

static void write_file(const char *name, const char *text)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	FILE *f = fopen(p, "wb");
	if (!f) {
		perror(p);
		exit(2);
	}
	fwrite(text, 1, strlen(text), f);
	fclose(f);
}

static char *path_of(const char *name)
{
	static char p[4][512];
	static int i;
	i = (i + 1) % 4;
	snprintf(p[i], sizeof(p[i]), "%s/%s", tmpdir, name);
	return p[i];
}

static int parse(struct awsconfig *c, enum awsconfig_kind k, const char *text, int *line)
{
	const char *why;
	return awsconfig_parse(c, k, text, strlen(text), line, &why);
}

static void test_parser_basic(void)
{
	struct awsconfig c;
	int line;
	int rc = parse(&c, AWSCONFIG_CONFIG,
		       "# comment\n"
		       "; other comment\n"
		       "[default]\n"
		       "region = us-east-1\n"
		       "Output=json\n"
		       "  # indented comment\n"
		       "cli_pager: less # not a comment\n"
		       "\n"
		       "[profile prod]\n"
		       "\tregion\t=\teu-west-1   \n"
		       "s3 =\n"
		       "  addressing_style = path\n"
		       "  # comment inside\n"
		       "\n"
		       "  max_concurrent_requests=20\n"
		       "  addressing_style = virtual\n"
		       "[sso-session s]\n"
		       "sso_region = us-east-1\n", &line);
	CHECK_INT(rc, 0, "basic config parses");
	CHECK(awsconfig_has_profile(&c, "default"), "default profile exists");
	CHECK(awsconfig_has_profile(&c, "prod"), "[profile prod] defines prod");
	CHECK(!awsconfig_has_profile(&c, "sso-session s"), "sso-session is not a profile");
	CHECK(!awsconfig_has_profile(&c, "s"), "sso-session name is not a profile");
	CHECK_STR(awsconfig_get(&c, "default", "region"), "us-east-1", "default region");
	CHECK_STR(awsconfig_get(&c, "default", "output"), "json", "keys are lower-cased");
	CHECK_STR(awsconfig_get(&c, "default", "cli_pager"), "less # not a comment",
		  "':' delimiter, no inline comments");
	CHECK_STR(awsconfig_get(&c, "prod", "region"), "eu-west-1", "tabs trimmed");
	CHECK_INT(awsconfig_get_line(&c, "prod", "region"), 10, "line of key");
	const char *s3 = awsconfig_get(&c, "prod", "s3");
	CHECK_STR(s3, "\naddressing_style = path\n\nmax_concurrent_requests=20\n"
		  "addressing_style = virtual", "nested value kept");
	char *as = awsconfig_nested_get(s3, "addressing_style");
	CHECK_STR(as, "virtual", "nested: last wins");
	free(as);
	char *mc = awsconfig_nested_get(s3, "max_concurrent_requests");
	CHECK_STR(mc, "20", "nested value without spaces");
	free(mc);
	CHECK(awsconfig_nested_get(s3, "nothere") == NULL, "nested: absent subkey");
	CHECK(awsconfig_nested_get("plain", "x") == NULL, "nested_get on a plain value");
	CHECK(awsconfig_get(&c, "prod", "output") == NULL, "keys are per profile");
	CHECK(awsconfig_get(&c, "nope", "region") == NULL, "unknown profile");
	awsconfig_free(&c);
}

static void test_parser_line_ends(void)
{
	struct awsconfig c;
	int line;
	CHECK_INT(parse(&c, AWSCONFIG_CREDENTIALS, "[default]\r\naws_access_key_id = AK\r\n"
			"aws_secret_access_key = SK", &line), 0, "CRLF, no final newline");
	CHECK_STR(awsconfig_get(&c, "default", "aws_access_key_id"), "AK", "CRLF value");
	CHECK_STR(awsconfig_get(&c, "default", "aws_secret_access_key"), "SK", "last line value");
	awsconfig_free(&c);
	CHECK_INT(parse(&c, AWSCONFIG_CREDENTIALS, "[a]\rk = v\r[b]\rk = w\r", &line), 0,
		  "old Mac CR line ends");
	CHECK_STR(awsconfig_get(&c, "b", "k"), "w", "CR value");
	awsconfig_free(&c);
	CHECK_INT(parse(&c, AWSCONFIG_CONFIG, "", &line), 0, "empty file");
	CHECK(!awsconfig_has_profile(&c, "default"), "empty file: no profile");
	awsconfig_free(&c);
	CHECK_INT(parse(&c, AWSCONFIG_CONFIG, "[default]\nk = a\n  b\n\n  c\n", &line), 0,
		  "continuation lines");
	CHECK_STR(awsconfig_get(&c, "default", "k"), "a\nb\n\nc", "continuation joined");
	awsconfig_free(&c);
	CHECK_INT(parse(&c, AWSCONFIG_CONFIG, "[default]\nk =\n\n\n[x]\n", &line), 0,
		  "empty value followed by blank lines");
	CHECK_STR(awsconfig_get(&c, "default", "k"), "", "empty value");
	awsconfig_free(&c);
}

static void test_parser_errors(void)
{
	struct awsconfig c;
	int line;
	const char *why;
	CHECK_INT(parse(&c, AWSCONFIG_CONFIG, "region = x\n", &line), -EINVAL,
		  "key before section");
	CHECK_INT(line, 1, "key before section: line");
	CHECK_INT(parse(&c, AWSCONFIG_CONFIG, "[default]\nregion = a\nregion = b\n", &line),
		  -EINVAL, "duplicate key refused (as the CLI)");
	CHECK_INT(line, 3, "duplicate key: line");
	CHECK_INT(parse(&c, AWSCONFIG_CONFIG, "[default]\nRegion = a\nregion = b\n", &line),
		  -EINVAL, "duplicate key differing in case");
	CHECK_INT(parse(&c, AWSCONFIG_CONFIG, "[default]\na = 1\n[x]\n[default]\n", &line),
		  -EINVAL, "duplicate section");
	CHECK_INT(line, 4, "duplicate section: line");
	CHECK_INT(parse(&c, AWSCONFIG_CONFIG, "[default]\njust words\n", &line), -EINVAL,
		  "line without delimiter");
	CHECK_INT(line, 2, "line without delimiter: line");
	CHECK_INT(parse(&c, AWSCONFIG_CONFIG, "[default]\n = value\n", &line), -EINVAL,
		  "empty key");
	CHECK_INT(parse(&c, AWSCONFIG_CONFIG, "[default]\ns3 =\n  addressing_style\n", &line),
		  -EINVAL, "nested line without '='");
	CHECK_INT(line, 3, "nested error line");
	CHECK_INT(parse(&c, AWSCONFIG_CONFIG, "[default]\n[]\n", &line), -EINVAL,
		  "empty section header");
	CHECK_INT(parse(&c, AWSCONFIG_CONFIG, "\xef\xbb\xbf[default]\nk=v\n", &line), -EINVAL,
		  "UTF-8 BOM is refused like the CLI");
	CHECK_INT(awsconfig_parse(&c, AWSCONFIG_CONFIG, "[default]\nk=v\0x\n", 14, &line, &why),
		  -EINVAL, "NUL byte");
	CHECK_INT(line, 2, "NUL byte line");
	CHECK_INT(parse(&c, AWSCONFIG_CONFIG, "[default]\nk=\xff\n", &line), -EINVAL,
		  "invalid UTF-8");
	CHECK_INT(parse(&c, AWSCONFIG_CONFIG, "[default]\nk=\xc3\xa9t\xc3\xa9\n", &line), 0,
		  "valid UTF-8");
	awsconfig_free(&c);
	char *big = malloc(AWSCONFIG_MAX_SIZE + 2);
	memset(big, '#', AWSCONFIG_MAX_SIZE + 1);
	big[AWSCONFIG_MAX_SIZE + 1] = '\0';
	CHECK_INT(awsconfig_parse(&c, AWSCONFIG_CONFIG, big, AWSCONFIG_MAX_SIZE + 1, &line, &why),
		  -EFBIG, "oversized text");
	write_file("big", big);
	char err[256];
	CHECK_INT(awsconfig_load(&c, AWSCONFIG_CONFIG, path_of("big"), NULL, err, sizeof(err)),
		  -EFBIG, "oversized file");
	CHECK(strstr(err, path_of("big")) != NULL, "oversized file error names the file");
	free(big);
	write_file("bad", "[default]\naws_access_key_id = AKIAEXAMPLE\nSECRETVALUE\n");
	CHECK_INT(awsconfig_load(&c, AWSCONFIG_CREDENTIALS, path_of("bad"), NULL, err, sizeof(err)),
		  -EINVAL, "malformed file");
	CHECK(strstr(err, "line 3") != NULL, "malformed file error has the line: %s", err);
	CHECK(strstr(err, "SECRETVALUE") == NULL, "malformed file error hides the content");
	CHECK_INT(awsconfig_load(&c, AWSCONFIG_CREDENTIALS, path_of("missing"), NULL, err,
				 sizeof(err)), -ENOENT, "missing file");
}

static void test_parser_sections(void)
{
	struct awsconfig c;
	int line;
	CHECK_INT(parse(&c, AWSCONFIG_CONFIG,
			"[profile \"with space\"]\na=1\n"
			"[profilex y]\na=2\n"
			"[profile a b]\na=3\n"
			"[profile 'unclosed]\na=4\n"
			"[profile  spaced ]\na=5\n"
			"[default]\nregion=one\n"
			"[profile default]\nother=x\n"
			"[a]b]\nk=v\n"
			"[tail] junk\nk=w\n", &line), 0, "section name variants parse");
	CHECK_STR(awsconfig_get(&c, "with space", "a"), "1", "quoted profile name");
	CHECK_STR(awsconfig_get(&c, "y", "a"), "2", "[profilex y] is profile y (botocore quirk)");
	CHECK(!awsconfig_has_profile(&c, "a b") && !awsconfig_has_profile(&c, "a"),
	      "three words: not a profile");
	CHECK(!awsconfig_has_profile(&c, "'unclosed"), "unbalanced quote: not a profile");
	CHECK_STR(awsconfig_get(&c, "spaced", "a"), "5", "extra spaces in header");
	CHECK(awsconfig_get(&c, "default", "region") == NULL,
	      "later [profile default] replaces [default]");
	CHECK_STR(awsconfig_get(&c, "default", "other"), "x", "[profile default] wins");
	awsconfig_free(&c);
	CHECK_INT(parse(&c, AWSCONFIG_CREDENTIALS, "[profile foo]\nk=1\n[foo]\nk=2\n[a]b]\nk=3\n"
			"[tail] junk\nk=4\n", &line), 0, "credentials sections");
	CHECK_STR(awsconfig_get(&c, "profile foo", "k"), "1", "credentials: [profile foo] is "
		  "profile 'profile foo'");
	CHECK_STR(awsconfig_get(&c, "foo", "k"), "2", "credentials: [foo]");
	CHECK_STR(awsconfig_get(&c, "a]b", "k"), "3", "header up to the last ]");
	CHECK_STR(awsconfig_get(&c, "tail", "k"), "4", "text after ] ignored");
	awsconfig_free(&c);
	CHECK_INT(parse(&c, AWSCONFIG_CONFIG, "[DEFAULT]\nregion = eu-north-1\nout = a\n"
			"[profile p]\nout = b\n[DEFAULT]\nx = 1\n", &line), 0, "[DEFAULT]");
	CHECK_STR(awsconfig_get(&c, "p", "region"), "eu-north-1", "[DEFAULT] inherited");
	CHECK_STR(awsconfig_get(&c, "p", "out"), "b", "section overrides [DEFAULT]");
	CHECK_STR(awsconfig_get(&c, "p", "x"), "1", "[DEFAULT] repeated merges");
	CHECK(!awsconfig_has_profile(&c, "DEFAULT"), "[DEFAULT] is not a profile");
	awsconfig_free(&c);
}

static void test_region_endpoints(void)
{
	struct awsconfig_settings s;
	char err[256];
	char *env1[] = { "AWS_REGION=us-west-2", "AWS_DEFAULT_REGION=eu-west-1", NULL };
	char *env2[] = { "AWS_DEFAULT_REGION=eu-west-1", NULL };
	char *env3[] = { "HOME=/nonexistent", NULL };
	char *env4[] = { "AWS_REGION=US_EAST", NULL };

	CHECK_INT(awsconfig_resolve(&s, NULL, "ap-south-1", NULL, NULL, env1, err, sizeof(err)), 0,
		  "region option");
	CHECK_STR(s.region, "ap-south-1", "option wins over env");
	CHECK_STR(s.region_source, "option", "region source option");
	CHECK_STR(s.kvs_endpoint, "https://kinesisvideo.ap-south-1.amazonaws.com", "kvs endpoint");
	CHECK_STR(s.s3_endpoint, "https://s3.ap-south-1.amazonaws.com", "s3 endpoint");
	CHECK(!s.kvs_endpoint_explicit, "derived endpoint is not explicit");
	awsconfig_settings_free(&s);
	CHECK_INT(awsconfig_resolve(&s, NULL, NULL, NULL, NULL, env1, err, sizeof(err)), 0,
		  "AWS_REGION");
	CHECK_STR(s.region, "us-west-2", "AWS_REGION before AWS_DEFAULT_REGION");
	awsconfig_settings_free(&s);
	CHECK_INT(awsconfig_resolve(&s, NULL, NULL, NULL, NULL, env2, err, sizeof(err)), 0,
		  "AWS_DEFAULT_REGION");
	CHECK_STR(s.region, "eu-west-1", "AWS_DEFAULT_REGION used");
	awsconfig_settings_free(&s);
	CHECK_INT(awsconfig_resolve(&s, NULL, NULL, NULL, NULL, env3, err, sizeof(err)), -EINVAL,
		  "no region");
	CHECK(strstr(err, "region") != NULL, "no region message: %s", err);
	CHECK_INT(awsconfig_resolve(&s, NULL, NULL, NULL, NULL, env4, err, sizeof(err)), -EINVAL,
		  "invalid region from env");
	CHECK(strstr(err, "AWS_REGION") != NULL, "invalid region names its source");
	CHECK_INT(awsconfig_resolve(&s, NULL, "cn-north-1", NULL, NULL, env3, err, sizeof(err)), 0,
		  "china region");
	CHECK_STR(s.kvs_endpoint, "https://kinesisvideo.cn-north-1.amazonaws.com.cn", "cn kvs");
	CHECK_STR(s.s3_endpoint, "https://s3.cn-north-1.amazonaws.com.cn", "cn s3");
	awsconfig_settings_free(&s);
	CHECK_INT(awsconfig_resolve(&s, NULL, "us-east-1", "http://127.0.0.1:4567/",
				    "HTTP://localhost:9000", env3, err, sizeof(err)), 0,
		  "explicit http endpoints");
	CHECK_STR(s.kvs_endpoint, "http://127.0.0.1:4567", "explicit kvs endpoint, slash cut");
	CHECK_STR(s.s3_endpoint, "HTTP://localhost:9000", "explicit s3 endpoint");
	CHECK(s.kvs_endpoint_explicit && s.s3_endpoint_explicit, "explicit flags");
	awsconfig_settings_free(&s);
	CHECK_INT(awsconfig_resolve(&s, NULL, "us-east-1", "ftp://x", NULL, env3, err, sizeof(err)),
		  -EINVAL, "bad scheme");
	CHECK_INT(awsconfig_resolve(&s, NULL, "us-east-1", NULL, "http://u:p@h", env3, err,
				    sizeof(err)), -EINVAL, "user info refused");
	CHECK(strstr(err, "u:p") == NULL, "user info not echoed");
	const char *bad[] = { "http://", "https://:80", "http://h:0", "http://h:99999",
			      "http://h:8a", "http://h x", "http://h/?q", "http://[::1", "x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *n = awsconfig_endpoint_normalize(bad[i], err, sizeof(err));
		CHECK(n == NULL, "endpoint '%s' refused", bad[i]);
		free(n);
	}
	char *n = awsconfig_endpoint_normalize("https://[::1]:8443/base//", err, sizeof(err));
	CHECK_STR(n, "https://[::1]:8443/base", "IPv6 endpoint with path");
	free(n);
	CHECK(awsconfig_region_valid("us-gov-west-1"), "valid region");
	CHECK(!awsconfig_region_valid(""), "empty region");
	CHECK(!awsconfig_region_valid("us.east"), "dot in region");
	CHECK(!awsconfig_region_valid("a/b"), "slash in region");
	CHECK(!awsconfig_region_valid("0123456789012345678901234567890123456789012345678901234567890123"),
	      "64-char region");
	CHECK(awsconfig_kvs_endpoint("bad region") == NULL, "no endpoint for invalid region");

	/* Profile region (config file) used last. */
	write_file("rcfg", "[default]\nregion = sa-east-1\n[profile p]\nregion = bad region\n");
	char cfgvar[600], credvar[600];
	snprintf(cfgvar, sizeof(cfgvar), "AWS_CONFIG_FILE=%s", path_of("rcfg"));
	snprintf(credvar, sizeof(credvar), "AWS_SHARED_CREDENTIALS_FILE=%s", path_of("none"));
	char *envf[] = { cfgvar, credvar, NULL };
	struct awsconfig_files f;
	CHECK_INT(awsconfig_files_load(&f, NULL, envf, NULL, err, sizeof(err)), 0, "files load");
	CHECK_INT(awsconfig_resolve(&s, &f, NULL, NULL, NULL, envf, err, sizeof(err)), 0,
		  "profile region");
	CHECK_STR(s.region, "sa-east-1", "profile region used");
	CHECK_STR(s.region_source, "profile", "profile region source");
	awsconfig_settings_free(&s);
	awsconfig_files_free(&f);
	CHECK_INT(awsconfig_files_load(&f, "p", envf, NULL, err, sizeof(err)), 0, "profile p");
	CHECK_INT(awsconfig_resolve(&s, &f, NULL, NULL, NULL, envf, err, sizeof(err)), -EINVAL,
		  "invalid profile region");
	CHECK(strstr(err, "profile \"p\"") != NULL, "invalid region names the profile: %s", err);
	awsconfig_files_free(&f);
}

static void test_expand(void)
{
	char *env[] = { "HOME=/home/u", "X=abc", NULL };
	char *s;
	s = awsconfig_expand_path("~/.aws/config", env);
	CHECK_STR(s, "/home/u/.aws/config", "~ expanded");
	free(s);
	s = awsconfig_expand_path("~", env);
	CHECK_STR(s, "/home/u", "~ alone");
	free(s);
	s = awsconfig_expand_path("/d/$X/${X}/$NOPE/${NOPE}/$", env);
	CHECK_STR(s, "/d/abc/abc/$NOPE/${NOPE}/$", "$VAR expanded, unknown kept");
	free(s);
	s = awsconfig_expand_path("$HOME/x", env);
	CHECK_STR(s, "/home/u/x", "$HOME");
	free(s);
}

/* ---- credentials ---- */

struct envb {
	char *v[32];
	int n;
};

static void envb_add(struct envb *e, const char *name, const char *val)
{
	char tmp[2048];
	snprintf(tmp, sizeof(tmp), "%s=%s", name, val);
	e->v[e->n++] = strdup(tmp);
	e->v[e->n] = NULL;
}

static void envb_free(struct envb *e)
{
	for (int i = 0; i < e->n; i++)
		free(e->v[i]);
	e->n = 0;
}

/* Environment with files in tmpdir and IMDS disabled (no network in unit tests). */
static void envb_base(struct envb *e, const char *cfg, const char *cred)
{
	e->n = 0;
	envb_add(e, "AWS_CONFIG_FILE", path_of(cfg));
	envb_add(e, "AWS_SHARED_CREDENTIALS_FILE", path_of(cred));
	envb_add(e, "AWS_EC2_METADATA_DISABLED", "true");
	envb_add(e, "PATH", "/usr/bin:/bin");
	envb_add(e, "HOME", tmpdir);
}

static int new_prov(struct creds_provider **p, struct envb *e, const char *profile, char *err,
		    size_t errlen)
{
	struct creds_options o;
	memset(&o, 0, sizeof(o));
	o.env = e->v;
	o.profile = profile;
	o.process_timeout_ms = 3000;
	return creds_provider_new(p, &o, NULL, NULL, err, errlen);
}

static void test_chain_static(void)
{
	struct envb e;
	struct creds_provider *p;
	struct creds_value v;
	char err[512];
	write_file("config", "[default]\nregion = us-east-1\n"
		   "[profile cfgonly]\naws_access_key_id = AKCFG\naws_secret_access_key = SKCFG\n"
		   "[profile both]\naws_access_key_id = AKCFGBOTH\naws_secret_access_key = S\n"
		   "[profile role]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n"
		   "[profile sso]\nsso_session = s\n");
	write_file("credentials", "[default]\naws_access_key_id = AKDEF\n"
		   "aws_secret_access_key = SKDEF\n"
		   "[envp]\naws_access_key_id = AKENVP\naws_secret_access_key = SKENVP\n"
		   "aws_session_token = TOKENVP\n"
		   "[both]\naws_access_key_id = AKCREDBOTH\naws_secret_access_key = S2\n"
		   "[partial]\naws_access_key_id = AKPART\n"
		   "[role]\naws_access_key_id = AKR\naws_secret_access_key = SKR\n");

	/* Environment first. */
	envb_base(&e, "config", "credentials");
	envb_add(&e, "AWS_ACCESS_KEY_ID", "AKENV");
	envb_add(&e, "AWS_SECRET_ACCESS_KEY", "SKENV");
	envb_add(&e, "AWS_SESSION_TOKEN", "TOKENV");
	CHECK_INT(new_prov(&p, &e, NULL, err, sizeof(err)), 0, "env provider");
	CHECK_INT(creds_provider_source(p), CREDS_SOURCE_ENV, "env precedence over files");
	CHECK_INT(creds_get(p, &v), 0, "get env");
	CHECK_STR(v.access_key_id, "AKENV", "env key");
	CHECK_STR(v.secret_access_key, "SKENV", "env secret");
	CHECK_STR(v.session_token, "TOKENV", "env token");
	CHECK_INT(v.expiration, 0, "env: no expiration");
	creds_value_free(&v);
	creds_provider_free(p);

	/* Explicit profile option skips the environment (aws --profile). */
	CHECK_INT(new_prov(&p, &e, "envp", err, sizeof(err)), 0, "profile option");
	CHECK_INT(creds_provider_source(p), CREDS_SOURCE_CREDENTIALS_FILE,
		  "profile option beats env keys");
	CHECK_INT(creds_get(p, &v), 0, "get envp");
	CHECK_STR(v.access_key_id, "AKENVP", "profile key");
	CHECK_STR(v.session_token, "TOKENVP", "profile token");
	CHECK_STR(creds_provider_describe(p), "shared credentials file profile envp", "describe");
	creds_value_free(&v);
	creds_provider_free(p);

	/* AWS_PROFILE does not skip the environment. */
	envb_add(&e, "AWS_PROFILE", "envp");
	CHECK_INT(new_prov(&p, &e, NULL, err, sizeof(err)), 0, "AWS_PROFILE + env keys");
	CHECK_INT(creds_provider_source(p), CREDS_SOURCE_ENV, "env keys beat AWS_PROFILE");
	creds_provider_free(p);
	envb_free(&e);

	/* Access key without secret in env. */
	envb_base(&e, "config", "credentials");
	envb_add(&e, "AWS_ACCESS_KEY_ID", "AKENV");
	CHECK_INT(new_prov(&p, &e, NULL, err, sizeof(err)), -EINVAL, "partial env keys");
	CHECK(strstr(err, "AWS_SECRET_ACCESS_KEY") != NULL, "partial env message: %s", err);
	envb_free(&e);

	/* Default profile from files. */
	envb_base(&e, "config", "credentials");
	CHECK_INT(new_prov(&p, &e, NULL, err, sizeof(err)), 0, "default profile");
	CHECK_INT(creds_get(p, &v), 0, "get default");
	CHECK_STR(v.access_key_id, "AKDEF", "default key");
	CHECK(v.session_token == NULL, "no token");
	creds_value_free(&v);
	creds_provider_free(p);
	/* AWS_PROFILE selection. */
	envb_add(&e, "AWS_PROFILE", "envp");
	CHECK_INT(new_prov(&p, &e, NULL, err, sizeof(err)), 0, "AWS_PROFILE");
	CHECK_INT(creds_get(p, &v), 0, "get AWS_PROFILE");
	CHECK_STR(v.access_key_id, "AKENVP", "AWS_PROFILE selects profile");
	creds_value_free(&v);
	creds_provider_free(p);
	/* Option beats AWS_PROFILE; [profile x] in config. */
	CHECK_INT(new_prov(&p, &e, "cfgonly", err, sizeof(err)), 0, "config-only profile");
	CHECK_INT(creds_provider_source(p), CREDS_SOURCE_CONFIG_FILE, "[profile x] keys in config");
	CHECK_INT(creds_get(p, &v), 0, "get cfgonly");
	CHECK_STR(v.access_key_id, "AKCFG", "option beats AWS_PROFILE");
	creds_value_free(&v);
	creds_provider_free(p);
	/* Credentials file beats config file. */
	CHECK_INT(new_prov(&p, &e, "both", err, sizeof(err)), 0, "both files");
	CHECK_INT(creds_get(p, &v), 0, "get both");
	CHECK_STR(v.access_key_id, "AKCREDBOTH", "credentials file first");
	creds_value_free(&v);
	creds_provider_free(p);
	/* Errors. */
	CHECK_INT(new_prov(&p, &e, "partial", err, sizeof(err)), -EINVAL, "partial keys");
	CHECK(strstr(err, "line 12") && strstr(err, path_of("credentials")),
	      "partial keys names file and line: %s", err);
	CHECK_INT(new_prov(&p, &e, "role", err, sizeof(err)), -ENOTSUP, "role_arn refused");
	CHECK(strstr(err, "credential_process") != NULL, "role_arn message suggests a fix");
	CHECK_INT(new_prov(&p, &e, "sso", err, sizeof(err)), -ENOTSUP, "sso refused");
	CHECK_INT(new_prov(&p, &e, "ghost", err, sizeof(err)), -ENOENT, "undefined profile");
	CHECK(strstr(err, "ghost") != NULL, "undefined profile named: %s", err);
	envb_free(&e);
	envb_base(&e, "config", "credentials");
	envb_add(&e, "AWS_PROFILE", "ghost");
	CHECK_INT(new_prov(&p, &e, NULL, err, sizeof(err)), -ENOENT, "undefined AWS_PROFILE");
	envb_free(&e);

	/* Nothing anywhere. */
	envb_base(&e, "nofile", "nofile2");
	CHECK_INT(new_prov(&p, &e, NULL, err, sizeof(err)), -ENOKEY, "no credentials");
	CHECK(strncmp(err, "no AWS credentials found", 24) == 0, "no credentials message: %s", err);
	envb_free(&e);

	/* Malformed file. */
	write_file("badcred", "[default]\naws_access_key_id = AK\naws_secret_access_key = SECRET1\n"
		   "aws_secret_access_key = SECRET2\n");
	envb_base(&e, "config", "badcred");
	CHECK_INT(new_prov(&p, &e, NULL, err, sizeof(err)), -EINVAL, "malformed credentials file");
	CHECK(strstr(err, "line 4") && strstr(err, path_of("badcred")) && !strstr(err, "SECRET"),
	      "malformed: file and line, no content: %s", err);
	envb_free(&e);
}

static void test_chain_process(void)
{
	struct envb e;
	struct creds_provider *p;
	struct creds_value v;
	char err[512];
	/* A process that counts its runs and returns credentials expiring in 4 s. */
	char script[2048];
	snprintf(script, sizeof(script),
		 "#!/bin/sh\n"
		 "n=$(cat %s/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > %s/count\n"
		 "exp=$(date -u -d @$(( $(date +%%s) + ${EXP:-4} )) +%%Y-%%m-%%dT%%H:%%M:%%SZ)\n"
		 "printf '{\"Version\": 1, \"AccessKeyId\": \"AKP%%s\", \"SecretAccessKey\": "
		 "\"SKP%%s\", \"SessionToken\": \"TKP%%s\", \"Expiration\": \"%%s\"}' $n $n $n $exp\n",
		 tmpdir, tmpdir);
	write_file("proc.sh", script);
	chmod(path_of("proc.sh"), 0755);
	char cfg[4096];
	snprintf(cfg, sizeof(cfg),
		 "[default]\ncredential_process = %s/proc.sh\n"
		 "[profile fail]\ncredential_process = sh -c 'echo oops >&2; exit 3'\n"
		 "[profile badjson]\ncredential_process = echo '{\"Version\": 1, \"AccessKeyId\": '\n"
		 "[profile v2]\ncredential_process = echo '{\"Version\": 2, \"AccessKeyId\": \"a\", "
		 "\"SecretAccessKey\": \"b\"}'\n"
		 "[profile nokey]\ncredential_process = echo '{\"Version\": 1}'\n"
		 "[profile static]\ncredential_process = echo '{\"Version\": 1, \"AccessKeyId\": \"AS\", "
		 "\"SecretAccessKey\": \"SS\"}'\n"
		 "[profile slow]\ncredential_process = sleep 20\n"
		 "[profile huge]\ncredential_process = yes\n"
		 "[profile expired]\ncredential_process = echo '{\"Version\": 1, \"AccessKeyId\": \"a\", "
		 "\"SecretAccessKey\": \"b\", \"Expiration\": \"2001-01-01T00:00:00Z\"}'\n"
		 "[profile withkeys]\ncredential_process = echo '{\"Version\": 1, \"AccessKeyId\": \"AP\", "
		 "\"SecretAccessKey\": \"SP\"}'\naws_access_key_id = AKC\naws_secret_access_key = SKC\n",
		 tmpdir);
	write_file("pconfig", cfg);
	write_file("pcred", "[static2]\naws_access_key_id = X\naws_secret_access_key = Y\n");
	unlink(path_of("count"));
	envb_base(&e, "pconfig", "pcred");

	struct creds_options o;
	memset(&o, 0, sizeof(o));
	o.env = e.v;
	o.refresh_margin_s = 2;
	o.process_timeout_ms = 3000;
	CHECK_INT(creds_provider_new(&p, &o, NULL, NULL, err, sizeof(err)), 0, "process provider");
	CHECK_INT(creds_provider_source(p), CREDS_SOURCE_PROCESS, "process source");
	CHECK_INT(creds_get(p, &v), 0, "process get");
	CHECK_STR(v.access_key_id, "AKP1", "first process run");
	CHECK_STR(v.secret_access_key, "SKP1", "process secret");
	CHECK_STR(v.session_token, "TKP1", "process token");
	CHECK(v.expiration > time(NULL), "process expiration parsed");
	creds_value_free(&v);
	sleep(3); /* margin 2 s of 4 s: due after ~2 s */
	CHECK_INT(creds_get(p, &v), 0, "process get after expiry window");
	CHECK_STR(v.access_key_id, "AKP2", "process run again on refresh");
	creds_value_free(&v);
	struct creds_stats st;
	creds_provider_stats(p, &st);
	CHECK_INT(st.fetches, 2, "two fetches");
	creds_provider_free(p);

	const char *bad[] = { "fail", "badjson", "v2", "nokey", "slow", "huge", "expired" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		time_t t0 = time(NULL);
		int rc = new_prov(&p, &e, bad[i], err, sizeof(err));
		CHECK(rc < 0, "process profile %s fails (%d: %s)", bad[i], rc, err);
		CHECK(strstr(err, "credential_process") || strstr(err, "expired"),
		      "process error message for %s", bad[i]);
		CHECK(time(NULL) - t0 <= 5, "process profile %s fails in time", bad[i]);
	}
	CHECK_INT(new_prov(&p, &e, "fail", err, sizeof(err)), -EACCES, "non-zero exit: EACCES");
	CHECK(strstr(err, "status 3") != NULL, "exit status reported: %s", err);
	CHECK(strstr(err, "oops") == NULL, "process stderr not in message");
	CHECK_INT(new_prov(&p, &e, "static", err, sizeof(err)), 0, "process without expiration");
	CHECK_INT(creds_get(p, &v), 0, "static process get");
	CHECK_INT(v.expiration, 0, "no expiration");
	CHECK(v.session_token == NULL, "no token");
	creds_value_free(&v);
	creds_provider_free(p);
	CHECK_INT(new_prov(&p, &e, "withkeys", err, sizeof(err)), 0, "process vs config keys");
	CHECK_INT(creds_provider_source(p), CREDS_SOURCE_PROCESS,
		  "credential_process before config-file keys");
	creds_provider_free(p);
	envb_free(&e);
}

/* ---- concurrency: many threads get while the process refreshes every ~1 s ---- */

struct hammer {
	struct creds_provider *p;
	volatile int stop;
	long calls, errors, torn;
};

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
		/* AKPn / SKPn / TKPn must always match. */
		if (!v.access_key_id || !v.secret_access_key || !v.session_token ||
		    strncmp(v.access_key_id, "AKP", 3) ||
		    strcmp(v.access_key_id + 3, v.secret_access_key + 3) ||
		    strcmp(v.access_key_id + 3, v.session_token + 3))
			__atomic_add_fetch(&h->torn, 1, __ATOMIC_RELAXED);
		creds_value_free(&v);
	}
	return NULL;
}

static void test_concurrency(void)
{
	struct envb e;
	char err[512];
	unlink(path_of("count"));
	envb_base(&e, "pconfig", "pcred");
	envb_add(&e, "EXP", "3");
	struct creds_options o;
	memset(&o, 0, sizeof(o));
	o.env = e.v;
	o.refresh_margin_s = 2;
	o.process_timeout_ms = 3000;
	struct hammer h = { 0 };
	CHECK_INT(creds_provider_new(&h.p, &o, NULL, NULL, err, sizeof(err)), 0, "hammer provider");
	pthread_t th[8];
	for (int i = 0; i < 8; i++)
		pthread_create(&th[i], NULL, hammer_main, &h);
	sleep(4);
	h.stop = 1;
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	struct creds_stats st;
	creds_provider_stats(h.p, &st);
	CHECK(h.calls > 1000, "many calls (%ld)", h.calls);
	CHECK_INT(h.errors, 0, "no errors while refreshing");
	CHECK_INT(h.torn, 0, "no torn or empty credentials");
	CHECK(st.fetches >= 3 && st.fetches <= 6, "refreshes happened, one at a time (%lu)",
	      st.fetches);
	creds_provider_free(h.p);
	envb_free(&e);
}

static void test_time(void)
{
	time_t t;
	CHECK_INT(creds_parse_time("2024-05-01T12:00:00Z", &t), 0, "plain Z time");
	CHECK_INT(t, 1714564800, "plain Z value");
	CHECK_INT(creds_parse_time("2024-05-01T12:00:00.123456Z", &t), 0, "fraction");
	CHECK_INT(t, 1714564800, "fraction value");
	CHECK_INT(creds_parse_time("2024-05-01T14:00:00+02:00", &t), 0, "offset");
	CHECK_INT(t, 1714564800, "offset value");
	CHECK_INT(creds_parse_time("2024-05-01T07:00:00-0500", &t), 0, "offset without colon");
	CHECK_INT(t, 1714564800, "offset without colon value");
	CHECK_INT(creds_parse_time("2024-05-01T12:00:00", &t), 0, "no zone = UTC");
	CHECK_INT(t, 1714564800, "no zone value");
	const char *bad[] = { "", "2024-05-01", "2024-13-01T00:00:00Z", "2023-02-29T00:00:00Z",
			      "2024-05-01T12:00:00Zjunk", "2024-05-01T24:00:00Z", "abcd-05-01T12:00:00Z",
			      "2024-05-01T12:00:00.Z", "2024-05-01T12:00:00+2" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(creds_parse_time(bad[i], &t), -EINVAL, "bad time '%s'", bad[i]);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kvsfs-test-creds-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}
	test_parser_basic();
	test_parser_line_ends();
	test_parser_errors();
	test_parser_sections();
	test_region_endpoints();
	test_expand();
	test_time();
	test_chain_static();
	test_chain_process();
	test_concurrency();
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	curl_global_cleanup();
	return check_done();
}
