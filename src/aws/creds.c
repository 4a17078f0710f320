/*
 * creds: AWS credentials provider chain with thread-safe refresh (see include/kvsfs/creds.h).
 *
 * Design:
 *   - creds_provider_new() walks the chain once; the winning source's parameters are copied into
 *     the provider (process command, container URL and token source, IMDS endpoint) and the
 *     provider keeps calling that one fetch function on refresh, as botocore does.
 *   - State shared between threads (cur, have, refresh_at, next_attempt, refreshing, stats) is
 *     guarded by lock. Invariant: while refreshing == 1 exactly one thread is inside fetch()
 *     without holding the lock; everybody else either copies cur (still valid) or waits on cond
 *     (expired). cur is only replaced whole under the lock, so a copy is never torn or empty.
 *   - Secrets are wiped (explicit_bzero) before their memory is freed; process output and
 *     reply bodies are wiped after parsing. Nothing secret is logged or put in err strings.
 */
#include "kvsfs/creds.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvsfs/buf.h"
#include "kvsfs/clk.h"
#include "kvsfs/decsec.h"
#include "kvsfs/fsutil.h"
#include "kvsfs/http.h"

extern char **environ;

#define MOD "creds"
#define PROCESS_MAX_OUTPUT (64 * 1024)
#define REPLY_MAX (64 * 1024)
#define TOKEN_FILE_MAX (16 * 1024)
#define RETRY_VALID_S 10   /* after a failed refresh while still valid */
#define RETRY_EXPIRED_S 1  /* after a failed refresh once expired */
#define DEFAULT_MARGIN_S 300
#define DEFAULT_CONTAINER_BASE "http://169.254.170.2"
#define DEFAULT_IMDS "http://169.254.169.254"
#define DEFAULT_IMDS_V6 "http://[fd00:ec2::254]"

struct creds_provider {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct log_ctx *lg;

	enum creds_source source;
	char describe[256];

	/* Source parameters, fixed after resolution. */
	char **env;              /* deep copy of opts->env, or NULL for the process environment */
	char *profile;
	char *process_cmd;       /* credential_process */
	int process_timeout_ms;
	char *container_url;
	char *container_token;   /* AWS_CONTAINER_AUTHORIZATION_TOKEN (secret) */
	char *container_token_file;
	int container_timeout_ms;
	char *imds_base;
	int imds_timeout_ms;
	int imds_attempts;
	int imds_v1_disabled;
	struct http_client *http;
	int margin_s;

	/* Shared state (under lock). */
	struct creds_value cur;
	int have;
	time_t refresh_at;       /* 0: never */
	time_t next_attempt;     /* no refresh attempt before this time */
	int refreshing;
	int warned;              /* a refresh-failure warning was logged since the last success */
	struct creds_stats stats;
};

/* ---- small helpers ---- */

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void creds_value_free(struct creds_value *v)
{
	wipe_free(v->access_key_id);
	wipe_free(v->secret_access_key);
	wipe_free(v->session_token);
	memset(v, 0, sizeof(*v));
}

static void buf_wipe_free(struct buf *b)
{
	if (b->data)
		explicit_bzero(b->data, b->cap);
	buf_free(b);
}

static int value_copy(struct creds_value *dst, const struct creds_value *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->access_key_id = strdup(src->access_key_id);
	dst->secret_access_key = strdup(src->secret_access_key);
	dst->session_token = src->session_token ? strdup(src->session_token) : NULL;
	dst->expiration = src->expiration;
	dst->source = src->source;
	if (!dst->access_key_id || !dst->secret_access_key ||
	    (src->session_token && !dst->session_token)) {
		creds_value_free(dst);
		return -ENOMEM;
	}
	return 0;
}

/* Credentials strings go into HTTP headers: printable ASCII only, non-empty. */
static int cred_string_ok(const char *s, size_t len)
{
	if (!s || len == 0 || strlen(s) != len)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/* Fills v from three strings (token may be NULL or ""). Returns 0, -EINVAL or -ENOMEM. */
static int value_set(struct creds_value *v, const char *ak, const char *sk, const char *tok,
		     time_t exp, enum creds_source src)
{
	memset(v, 0, sizeof(*v));
	if (!cred_string_ok(ak, ak ? strlen(ak) : 0) || !cred_string_ok(sk, sk ? strlen(sk) : 0))
		return -EINVAL;
	if (tok && *tok && !cred_string_ok(tok, strlen(tok)))
		return -EINVAL;
	v->access_key_id = strdup(ak);
	v->secret_access_key = strdup(sk);
	v->session_token = tok && *tok ? strdup(tok) : NULL;
	v->expiration = exp;
	v->source = src;
	if (!v->access_key_id || !v->secret_access_key || (tok && *tok && !v->session_token)) {
		creds_value_free(v);
		return -ENOMEM;
	}
	return 0;
}

static const char *penv(const struct creds_provider *p, const char *name)
{
	return awsconfig_getenv(p->env, name);
}

static int env_true(const struct creds_provider *p, const char *name)
{
	const char *v = penv(p, name);
	return v && strcasecmp(v, "true") == 0;
}

static char *trimmed_dup(const char *s, size_t n)
{
	while (n && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	char *o = malloc(n + 1);
	if (o) {
		memcpy(o, s, n);
		o[n] = '\0';
	}
	return o;
}

const char *creds_source_name(enum creds_source s)
{
	switch (s) {
	case CREDS_SOURCE_ENV: return "environment";
	case CREDS_SOURCE_CREDENTIALS_FILE: return "credentials-file";
	case CREDS_SOURCE_CONFIG_FILE: return "config-file";
	case CREDS_SOURCE_PROCESS: return "process";
	case CREDS_SOURCE_CONTAINER: return "container";
	case CREDS_SOURCE_IMDS: return "imds";
	default: return "none";
	}
}

/* ---- time ---- */

static int digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int creds_parse_time(const char *s, time_t *out)
{
	int Y, M, D, h, m, sec;
	if (!s || strlen(s) < 19)
		return -EINVAL;
	if (digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) || s[7] != '-' ||
	    digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &m) || s[16] != ':' ||
	    digits(s + 17, 2, &sec))
		return -EINVAL;
	const char *p = s + 19;
	if (*p == '.' || *p == ',') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	long off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1, oh, om;
		p++;
		if (digits(p, 2, &oh))
			return -EINVAL;
		p += 2;
		if (*p == ':')
			p++;
		if (digits(p, 2, &om))
			return -EINVAL;
		p += 2;
		if (oh > 23 || om > 59)
			return -EINVAL;
		off = sign * (oh * 3600L + om * 60L);
	}
	if (*p)
		return -EINVAL;
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || m > 59 ||
	    sec > 60)
		return -EINVAL;
	int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
	if (M == 2 && D == 29 && !leap)
		return -EINVAL;
	struct tm tm = { 0 };
	tm.tm_year = Y - 1900;
	tm.tm_mon = M - 1;
	tm.tm_mday = D;
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	*out = t - off;
	return 0;
}

/* ---- JSON replies ---- */

static const char *jstr(json_t *o, const char *key, int *bad)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
		*bad = 1;
		return NULL;
	}
	return json_string_value(v);
}

/*
 * Parses a credentials JSON document. token_key: "SessionToken" (process) or "Token" (container,
 * IMDS). need_version: require "Version": 1. need_token: the token must be present.
 * Returns 0, -EINVAL (why set), -ENOMEM.
 */
static int parse_creds_json(const char *data, size_t len, const char *token_key,
			    int need_version, int need_token, enum creds_source src,
			    struct creds_value *out, const char **why)
{
	json_error_t jerr;
	json_t *root = json_loadb(data, len, 0, &jerr);
	int rc = -EINVAL, bad = 0;
	memset(out, 0, sizeof(*out));
	if (!root || !json_is_object(root)) {
		*why = "the reply is not a JSON object";
		goto out;
	}
	if (need_version) {
		json_t *ver = json_object_get(root, "Version");
		if (!ver || !json_is_number(ver) || json_number_value(ver) != 1.0) {
			*why = "the reply's Version is not 1";
			goto out;
		}
	}
	const char *ak = jstr(root, "AccessKeyId", &bad);
	const char *sk = jstr(root, "SecretAccessKey", &bad);
	const char *tok = jstr(root, token_key, &bad);
	const char *exp = jstr(root, "Expiration", &bad);
	if (bad) {
		*why = "a credentials field of the reply is not a string";
		goto out;
	}
	if (!ak || !*ak || !sk || !*sk) {
		*why = "the reply lacks AccessKeyId or SecretAccessKey";
		goto out;
	}
	if (need_token && (!tok || !*tok)) {
		*why = "the reply lacks a session token";
		goto out;
	}
	time_t t = 0;
	if (exp && creds_parse_time(exp, &t)) {
		*why = "the reply's Expiration is not an ISO 8601 time";
		goto out;
	}
	rc = value_set(out, ak, sk, tok, t, src);
	if (rc == -EINVAL)
		*why = "a credentials field of the reply has invalid characters";
	else if (rc)
		*why = "out of memory";
out:
	if (root)
		json_decref(root);
	return rc;
}

/* ---- source: environment ---- */

/* Returns 0 (found), 1 (not configured), -EINVAL (partial). */
static int fetch_env(struct creds_provider *p, struct creds_value *out, char *err, size_t errlen)
{
	const char *ak = penv(p, "AWS_ACCESS_KEY_ID");
	const char *sk = penv(p, "AWS_SECRET_ACCESS_KEY");
	const char *tok = penv(p, "AWS_SESSION_TOKEN");
	if (!tok || !*tok)
		tok = penv(p, "AWS_SECURITY_TOKEN");
	const char *exps = penv(p, "AWS_CREDENTIAL_EXPIRATION");
	if (!ak || !*ak)
		return 1;
	if (!sk || !*sk) {
		snprintf(err, errlen, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
		return -EINVAL;
	}
	time_t exp = 0;
	if (exps && *exps && creds_parse_time(exps, &exp)) {
		snprintf(err, errlen, "AWS_CREDENTIAL_EXPIRATION is not an ISO 8601 time");
		return -EINVAL;
	}
	int rc = value_set(out, ak, sk, tok, exp, CREDS_SOURCE_ENV);
	if (rc == -EINVAL)
		snprintf(err, errlen, "the AWS credentials in the environment contain invalid "
			 "characters");
	return rc;
}

/* ---- source: credential_process ---- */

static void kill_child(pid_t pid)
{
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static int fetch_process(struct creds_provider *p, struct creds_value *out, char *err,
			 size_t errlen)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC)) {
		snprintf(err, errlen, "cannot run credential_process: %s", strerror(errno));
		return -EIO;
	}
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	sigset_t none, defs;
	sigemptyset(&none);
	sigemptyset(&defs);
	sigaddset(&defs, SIGPIPE);
	sigaddset(&defs, SIGCHLD);
	sigaddset(&defs, SIGINT);
	sigaddset(&defs, SIGTERM);
	sigaddset(&defs, SIGHUP);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &defs);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
				 POSIX_SPAWN_SETSIGDEF);
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", p->process_cmd, NULL };
	pid_t pid;
	int src = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, p->env ? p->env : environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(fds[1]);
	if (src) {
		close(fds[0]);
		snprintf(err, errlen, "cannot run credential_process of profile %s: %s", p->profile,
			 strerror(src));
		return -EIO;
	}
	int64_t deadline = clk_mono_ms() + p->process_timeout_ms;
	struct buf b = BUF_INIT;
	int rc = 0;
	const char *why = NULL;
	/* Read stdout until EOF, the size limit or the deadline. */
	for (;;) {
		int64_t left = deadline - clk_mono_ms();
		if (left <= 0) {
			rc = -ETIMEDOUT;
			why = "timed out";
			break;
		}
		struct pollfd pf = { fds[0], POLLIN, 0 };
		int pr = poll(&pf, 1, (int)left);
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			rc = -EIO;
			why = "poll failed";
			break;
		}
		if (pr == 0)
			continue;
		if (buf_reserve(&b, 4096)) {
			rc = -ENOMEM;
			why = "out of memory";
			break;
		}
		ssize_t n = read(fds[0], b.data + b.len, 4096);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			rc = -EIO;
			why = "reading its output failed";
			break;
		}
		if (n == 0)
			break;
		b.len += (size_t)n;
		if (b.len > PROCESS_MAX_OUTPUT) {
			rc = -EFBIG;
			why = "wrote more than 64 KiB";
			break;
		}
	}
	close(fds[0]);
	int status = 0;
	if (rc) {
		kill_child(pid);
	} else {
		/* EOF: wait for the exit within the same deadline. */
		for (;;) {
			pid_t w = waitpid(pid, &status, WNOHANG);
			if (w == pid)
				break;
			if (w < 0 && errno != EINTR) {
				rc = -EIO;
				why = "its exit status is unknown";
				break;
			}
			if (clk_mono_ms() >= deadline) {
				kill_child(pid);
				rc = -ETIMEDOUT;
				why = "timed out";
				break;
			}
			clk_sleep_ms(5);
		}
	}
	if (!rc) {
		if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
			snprintf(err, errlen, "credential_process of profile %s exited with status %d",
				 p->profile, WEXITSTATUS(status));
			rc = -EACCES;
		} else if (WIFSIGNALED(status)) {
			snprintf(err, errlen, "credential_process of profile %s was killed by signal %d",
				 p->profile, WTERMSIG(status));
			rc = -EACCES;
		} else {
			rc = parse_creds_json(b.data ? b.data : "", b.len, "SessionToken", 1, 0,
					      CREDS_SOURCE_PROCESS, out, &why);
			if (rc)
				snprintf(err, errlen, "credential_process of profile %s: %s", p->profile,
					 why);
		}
	} else {
		snprintf(err, errlen, "credential_process of profile %s %s", p->profile, why);
	}
	buf_wipe_free(&b);
	return rc;
}

/* ---- HTTP sources ---- */

struct http_get {
	const char *method;
	const char *url;
	struct http_headers hdrs;
	int timeout_ms;
	int attempts;
	struct buf body;     /* 2xx body (wiped by the caller) */
	int status;          /* final status, 0 when none */
};

/* Returns 0 (2xx, body filled) or the negative errno of http_perform. */
static int http_do(struct creds_provider *p, struct http_get *g)
{
	struct http_sink sink = { &g->body, REPLY_MAX };
	struct http_request req;
	memset(&req, 0, sizeof(req));
	req.method = g->method;
	req.url = g->url;
	req.headers = &g->hdrs;
	req.body_fn = http_sink_buf;
	req.reset_fn = http_sink_buf_reset;
	req.body_arg = &sink;
	req.idempotent = 1;
	req.max_attempts = g->attempts > 0 ? g->attempts : 1;
	req.timeout_ms = g->timeout_ms;
	req.connect_timeout_ms = g->timeout_ms;
	req.no_proxy = 1;
	struct http_response resp;
	http_response_init(&resp);
	int rc = http_perform(p->http, &req, &resp);
	g->status = resp.status;
	http_response_free(&resp);
	return rc;
}

static void http_get_free(struct http_get *g)
{
	http_headers_free(&g->hdrs);
	buf_wipe_free(&g->body);
}

static const char *rc_reason(int rc, int status, char *tmp, size_t n)
{
	if (status >= 300 || (status && rc))
		snprintf(tmp, n, "HTTP %d", status);
	else if (rc == -ETIMEDOUT)
		snprintf(tmp, n, "no answer within the timeout");
	else
		snprintf(tmp, n, "%s", strerror(-rc));
	return tmp;
}

static int read_token_file(const char *path, char **out)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct buf b = BUF_INIT;
	int rc = fsutil_read_fd(fd, TOKEN_FILE_MAX, &b);
	close(fd);
	if (!rc) {
		*out = trimmed_dup(b.data ? b.data : "", b.len);
		if (!*out)
			rc = -ENOMEM;
	}
	buf_wipe_free(&b);
	return rc;
}

static int fetch_container(struct creds_provider *p, struct creds_value *out, char *err,
			   size_t errlen)
{
	struct http_get g;
	memset(&g, 0, sizeof(g));
	g.method = "GET";
	g.url = p->container_url;
	g.timeout_ms = p->container_timeout_ms;
	g.attempts = 2;
	char *tok = NULL;
	int rc;
	if (p->container_token_file) {
		rc = read_token_file(p->container_token_file, &tok);
		if (rc) {
			snprintf(err, errlen, "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: %s",
				 p->container_token_file, strerror(-rc));
			return rc == -ENOENT ? -ENOENT : (rc == -EACCES ? -EACCES : -EIO);
		}
	}
	const char *auth = tok ? tok : p->container_token;
	if (auth && *auth) {
		rc = http_headers_add(&g.hdrs, "Authorization", auth);
		if (rc) {
			wipe_free(tok);
			http_get_free(&g);
			snprintf(err, errlen, "the container authorization token is not a valid header "
				 "value");
			return rc;
		}
	}
	wipe_free(tok);
	char url_log[256], tmp[64];
	http_url_for_log(p->container_url, url_log, sizeof(url_log));
	rc = http_do(p, &g);
	if (rc) {
		snprintf(err, errlen, "the container credentials endpoint %s failed: %s", url_log,
			 rc_reason(rc, g.status, tmp, sizeof(tmp)));
		http_get_free(&g);
		return g.status == 401 || g.status == 403 ? -EACCES : rc;
	}
	const char *why = NULL;
	rc = parse_creds_json(g.body.data ? g.body.data : "", g.body.len, "Token", 0, 0,
			      CREDS_SOURCE_CONTAINER, out, &why);
	if (rc)
		snprintf(err, errlen, "the container credentials endpoint %s: %s", url_log, why);
	http_get_free(&g);
	return rc;
}

/* IMDS: token (or v1 fallback), role, credentials. role_out (may be NULL) gets the role. */
static int fetch_imds(struct creds_provider *p, struct creds_value *out, char **role_out,
		      char *err, size_t errlen)
{
	struct buf url = BUF_INIT;
	char tmp[64];
	char *token = NULL, *role = NULL;
	int rc;
	struct http_get g;
	memset(&g, 0, sizeof(g));
	g.method = "PUT";
	g.timeout_ms = p->imds_timeout_ms;
	g.attempts = p->imds_attempts;
	if (buf_printf(&url, "%s/latest/api/token", p->imds_base) ||
	    http_headers_add(&g.hdrs, "X-aws-ec2-metadata-token-ttl-seconds", "21600")) {
		rc = -ENOMEM;
		goto oom;
	}
	g.url = buf_str(&url);
	rc = http_do(p, &g);
	if (rc == 0) {
		token = trimmed_dup(g.body.data ? g.body.data : "", g.body.len);
		if (!token)
			goto oom;
	} else if (g.status == 403 || g.status == 404 || g.status == 405) {
		if (p->imds_v1_disabled) {
			snprintf(err, errlen, "instance metadata at %s refused an IMDSv2 token (HTTP %d) "
				 "and AWS_EC2_METADATA_V1_DISABLED is set", p->imds_base, g.status);
			rc = -EACCES;
			goto fail;
		}
		LOG_DEBUG(p->lg, MOD, "IMDS token request got HTTP %d, using IMDSv1", g.status);
	} else {
		snprintf(err, errlen, "instance metadata at %s: %s", p->imds_base,
			 rc_reason(rc, g.status, tmp, sizeof(tmp)));
		goto fail;
	}
	http_get_free(&g);
	memset(&g, 0, sizeof(g));
	g.method = "GET";
	g.timeout_ms = p->imds_timeout_ms;
	g.attempts = p->imds_attempts;
	if (token && http_headers_add(&g.hdrs, "X-aws-ec2-metadata-token", token)) {
		snprintf(err, errlen, "instance metadata at %s returned an invalid token", p->imds_base);
		rc = -EINVAL;
		goto fail;
	}
	buf_reset(&url);
	if (buf_printf(&url, "%s/latest/meta-data/iam/security-credentials/", p->imds_base))
		goto oom;
	g.url = buf_str(&url);
	rc = http_do(p, &g);
	if (rc) {
		if (g.status == 404)
			snprintf(err, errlen, "instance metadata at %s: the instance has no IAM role",
				 p->imds_base);
		else
			snprintf(err, errlen, "instance metadata at %s: listing the IAM role failed: %s",
				 p->imds_base, rc_reason(rc, g.status, tmp, sizeof(tmp)));
		goto fail;
	}
	{
		const char *s = g.body.data ? g.body.data : "";
		size_t n = strcspn(s, "\r\n");
		role = trimmed_dup(s, n);
		if (!role)
			goto oom;
		int ok = *role != '\0';
		for (const char *c = role; *c; c++)
			if (!(isalnum((unsigned char)*c) || strchr("+=,.@_-", *c)))
				ok = 0;
		if (!ok) {
			snprintf(err, errlen, "instance metadata at %s returned an invalid role name",
				 p->imds_base);
			rc = -EINVAL;
			goto fail;
		}
	}
	buf_wipe_free(&g.body);
	buf_reset(&url);
	if (buf_printf(&url, "%s/latest/meta-data/iam/security-credentials/%s", p->imds_base, role))
		goto oom;
	g.url = buf_str(&url);
	rc = http_do(p, &g);
	if (rc) {
		snprintf(err, errlen, "instance metadata at %s: fetching the role's credentials failed: "
			 "%s", p->imds_base, rc_reason(rc, g.status, tmp, sizeof(tmp)));
		goto fail;
	}
	const char *why = NULL;
	rc = parse_creds_json(g.body.data ? g.body.data : "", g.body.len, "Token", 0, 1,
			      CREDS_SOURCE_IMDS, out, &why);
	if (rc) {
		snprintf(err, errlen, "instance metadata at %s: %s", p->imds_base, why);
		goto fail;
	}
	if (role_out) {
		*role_out = role;
		role = NULL;
	}
	goto done;
oom:
	rc = -ENOMEM;
	snprintf(err, errlen, "out of memory");
fail:
done:
	http_get_free(&g);
	buf_free(&url);
	wipe_free(token);
	free(role);
	return rc;
}

/* One fetch from the provider's source. Returns 0 or a negative errno with err set. */
static int fetch(struct creds_provider *p, struct creds_value *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	switch (p->source) {
	case CREDS_SOURCE_ENV: {
		int rc = fetch_env(p, out, err, errlen);
		if (rc == 1) {
			snprintf(err, errlen, "AWS_ACCESS_KEY_ID is no longer set");
			rc = -EACCES;
		}
		return rc;
	}
	case CREDS_SOURCE_PROCESS:
		return fetch_process(p, out, err, errlen);
	case CREDS_SOURCE_CONTAINER:
		return fetch_container(p, out, err, errlen);
	case CREDS_SOURCE_IMDS:
		return fetch_imds(p, out, NULL, err, errlen);
	default:
		snprintf(err, errlen, "static credentials cannot be refreshed");
		return -EACCES;
	}
}

/* ---- refresh bookkeeping ---- */

/* Installs v as the current value (takes ownership), fetched at now. Lock held. */
static void install(struct creds_provider *p, struct creds_value *v, time_t now)
{
	creds_value_free(&p->cur);
	p->cur = *v;
	memset(v, 0, sizeof(*v));
	p->have = 1;
	p->stats.fetches++;
	p->warned = 0;
	p->next_attempt = 0;
	if (!p->cur.expiration) {
		p->refresh_at = 0;
		return;
	}
	time_t e = p->cur.expiration;
	time_t ra = e - p->margin_s;
	if (ra < now + 1) {
		time_t half = (e - now) / 2;
		ra = now + (half < 1 ? 1 : half);
	}
	p->refresh_at = ra;
}

int creds_get(struct creds_provider *p, struct creds_value *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&p->lock);
	for (;;) {
		time_t now = time(NULL);
		int valid = p->have && (p->cur.expiration == 0 || now < p->cur.expiration);
		int due = p->have && p->refresh_at && now >= p->refresh_at && now >= p->next_attempt;
		if (valid && !due) {
			int rc = value_copy(out, &p->cur);
			pthread_mutex_unlock(&p->lock);
			return rc;
		}
		if (p->refreshing) {
			if (valid) {
				int rc = value_copy(out, &p->cur);
				pthread_mutex_unlock(&p->lock);
				return rc;
			}
			pthread_cond_wait(&p->cond, &p->lock);
			continue;
		}
		if (!valid && now < p->next_attempt) {
			pthread_mutex_unlock(&p->lock);
			return -EACCES;
		}
		/* This thread refreshes. */
		p->refreshing = 1;
		pthread_mutex_unlock(&p->lock);
		struct creds_value nv;
		char err[512];
		int rc = fetch(p, &nv, err, sizeof(err));
		time_t after = time(NULL);
		if (!rc && nv.expiration && nv.expiration <= after) {
			creds_value_free(&nv);
			snprintf(err, sizeof(err), "the %s returned credentials that have already "
				 "expired", p->describe);
			rc = -EACCES;
		}
		pthread_mutex_lock(&p->lock);
		p->refreshing = 0;
		if (!rc) {
			install(p, &nv, after);
			LOG_DEBUG(p->lg, MOD, "credentials refreshed from %s (expire in %lld s)",
				  p->describe, (long long)(p->cur.expiration - after));
		} else {
			p->stats.failures++;
			int still = p->have && (p->cur.expiration == 0 || after < p->cur.expiration);
			if (still) {
				/* Retry later, but no later than the expiry itself. */
				p->next_attempt = after + RETRY_VALID_S;
				if (p->cur.expiration && p->next_attempt > p->cur.expiration)
					p->next_attempt = p->cur.expiration;
				if (!p->warned)
					LOG_WARN(p->lg, MOD, "refreshing credentials failed (%s); keeping the "
						 "current ones, which expire in %lld s", err,
						 (long long)(p->cur.expiration - after));
				else
					LOG_DEBUG(p->lg, MOD, "refreshing credentials failed again (%s)", err);
				p->warned = 1;
			} else {
				p->next_attempt = after + RETRY_EXPIRED_S;
				LOG_ERROR(p->lg, MOD, "credentials have expired and refreshing them failed: %s",
					  err);
			}
		}
		pthread_cond_broadcast(&p->cond);
		/* Loop: copy the new value, the still-valid old one, or fail. */
	}
}

/* ---- resolution ---- */

static char **env_dup(char *const *env)
{
	size_t n = 0;
	while (env[n])
		n++;
	char **c = calloc(n + 1, sizeof(*c));
	if (!c)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		c[i] = strdup(env[i]);
		if (!c[i]) {
			for (size_t j = 0; j < i; j++)
				wipe_free(c[j]);
			free(c);
			return NULL;
		}
	}
	return c;
}

void creds_provider_free(struct creds_provider *p)
{
	if (!p)
		return;
	creds_value_free(&p->cur);
	if (p->env) {
		for (char **e = p->env; *e; e++)
			wipe_free(*e);
		free(p->env);
	}
	free(p->profile);
	free(p->process_cmd);
	free(p->container_url);
	wipe_free(p->container_token);
	free(p->container_token_file);
	free(p->imds_base);
	http_client_free(p->http);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

enum creds_source creds_provider_source(const struct creds_provider *p)
{
	return p->source;
}

const char *creds_provider_describe(const struct creds_provider *p)
{
	return p->describe;
}

void creds_provider_stats(struct creds_provider *p, struct creds_stats *st)
{
	pthread_mutex_lock(&p->lock);
	*st = p->stats;
	pthread_mutex_unlock(&p->lock);
}

static int make_http(struct creds_provider *p, const struct creds_options *opts)
{
	if (p->http)
		return 0;
	struct http_client_opts ho;
	http_client_opts_init(&ho);
	ho.log = p->lg;
	ho.ca_file = opts->ca_file;
	ho.no_verify_ssl = opts->no_verify_ssl;
	ho.retry.max_attempts = 1;
	ho.retry.base_delay_ms = 100;
	ho.retry.max_delay_ms = 500;
	ho.retry.max_total_ms = 10000;
	ho.connect_timeout_ms = 2000;
	ho.pool_max_idle = 2;
	return http_client_new(&ho, &p->http);
}

/* Is the host of an http:// full URI one the CLI allows? */
static int container_host_allowed(const char *url)
{
	if (strncasecmp(url, "https://", 8) == 0)
		return 1;
	if (strncasecmp(url, "http://", 7) != 0)
		return 0;
	const char *h = url + 7;
	size_t al = strcspn(h, "/?#");
	if (memchr(h, '@', al))
		return 0;
	char host[128];
	size_t hl;
	if (*h == '[') {
		const char *rb = memchr(h, ']', al);
		if (!rb)
			return 0;
		hl = (size_t)(rb - h - 1);
		h++;
	} else {
		const char *c = memchr(h, ':', al);
		hl = c ? (size_t)(c - h) : al;
	}
	if (hl == 0 || hl >= sizeof(host))
		return 0;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (strcasecmp(host, "localhost") == 0 || strcmp(host, "169.254.170.2") == 0 ||
	    strcmp(host, "169.254.170.23") == 0 || strcasecmp(host, "fd00:ec2::23") == 0 ||
	    strcmp(host, "::1") == 0)
		return 1;
	/* Any literal 127.0.0.0/8 address (Python's ip_address(...).is_loopback). */
	unsigned a, b, c, d;
	char extra;
	if (sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &extra) == 4 && a == 127 && b < 256 &&
	    c < 256 && d < 256)
		return 1;
	return 0;
}

static int static_keys(struct creds_provider *p, const struct awsconfig *cfg, const char *path,
		       enum creds_source src, struct creds_value *out, char *err, size_t errlen)
{
	const char *ak = awsconfig_get(cfg, p->profile, "aws_access_key_id");
	if (!ak)
		return 1;
	const char *sk = awsconfig_get(cfg, p->profile, "aws_secret_access_key");
	const char *tok = awsconfig_get(cfg, p->profile, "aws_session_token");
	if (!tok)
		tok = awsconfig_get(cfg, p->profile, "aws_security_token");
	int line = awsconfig_get_line(cfg, p->profile, "aws_access_key_id");
	if (!sk || !*sk || !*ak) {
		snprintf(err, errlen, "%s line %d: profile %s has %s without %s", path, line,
			 p->profile, *ak ? "aws_access_key_id" : "an empty aws_access_key_id",
			 "aws_secret_access_key");
		return -EINVAL;
	}
	int rc = value_set(out, ak, sk, tok, 0, src);
	if (rc == -EINVAL)
		snprintf(err, errlen, "%s line %d: the keys of profile %s contain invalid characters",
			 path, line, p->profile);
	return rc;
}

/* Walks the chain. Returns 0 with p->source/describe and *first set, or an error. */
static int resolve(struct creds_provider *p, const struct creds_options *opts,
		   const struct awsconfig_files *f, struct creds_value *first, char *err,
		   size_t errlen)
{
	int rc;
	/* 1. environment (skipped for an explicit profile= option, like aws --profile). */
	if (!f->profile_explicit) {
		rc = fetch_env(p, first, err, errlen);
		if (rc <= 0) {
			if (rc == 0) {
				p->source = CREDS_SOURCE_ENV;
				snprintf(p->describe, sizeof(p->describe), "environment");
			}
			return rc;
		}
	} else if (penv(p, "AWS_ACCESS_KEY_ID")) {
		LOG_DEBUG(p->lg, MOD, "profile option given: ignoring AWS_ACCESS_KEY_ID in the "
			  "environment");
	}
	/* STS / SSO based profiles are not supported: say so instead of falling through. */
	const char *unsup = NULL;
	if (awsconfig_files_get(f, "role_arn"))
		unsup = "role_arn (an assume-role profile)";
	else if (awsconfig_files_get(f, "web_identity_token_file"))
		unsup = "web_identity_token_file";
	else if (awsconfig_files_get(f, "sso_start_url") || awsconfig_files_get(f, "sso_session"))
		unsup = "AWS SSO (IAM Identity Center)";
	else if (!f->profile_explicit && penv(p, "AWS_WEB_IDENTITY_TOKEN_FILE") &&
		 penv(p, "AWS_ROLE_ARN"))
		unsup = "AWS_WEB_IDENTITY_TOKEN_FILE/AWS_ROLE_ARN (web identity)";
	if (unsup) {
		snprintf(err, errlen, "profile %s uses %s, which kvsfs cannot use directly; add a "
			 "profile with credential_process = aws configure export-credentials "
			 "--profile %s --format process, and mount with that profile", p->profile,
			 unsup, p->profile);
		return -ENOTSUP;
	}
	/* 2a. static keys in the credentials file. */
	rc = static_keys(p, &f->credentials, f->credentials_path, CREDS_SOURCE_CREDENTIALS_FILE,
			 first, err, errlen);
	if (rc <= 0) {
		if (rc == 0) {
			p->source = CREDS_SOURCE_CREDENTIALS_FILE;
			snprintf(p->describe, sizeof(p->describe),
				 "shared credentials file profile %s", p->profile);
		}
		return rc;
	}
	/* 2b. credential_process. */
	const char *cmd = awsconfig_files_get(f, "credential_process");
	if (cmd && *cmd) {
		p->process_cmd = strdup(cmd);
		if (!p->process_cmd)
			return -ENOMEM;
		p->source = CREDS_SOURCE_PROCESS;
		snprintf(p->describe, sizeof(p->describe), "credential_process of profile %s",
			 p->profile);
		return fetch_process(p, first, err, errlen);
	}
	/* 2c. static keys in the config file. */
	rc = static_keys(p, &f->config, f->config_path, CREDS_SOURCE_CONFIG_FILE, first, err,
			 errlen);
	if (rc <= 0) {
		if (rc == 0) {
			p->source = CREDS_SOURCE_CONFIG_FILE;
			snprintf(p->describe, sizeof(p->describe), "shared config file profile %s",
				 p->profile);
		}
		return rc;
	}
	/* 3. container credentials. */
	const char *rel = penv(p, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = penv(p, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
	if ((rel && *rel) || (full && *full)) {
		struct buf u = BUF_INIT;
		if (rel && *rel) {
			const char *base = opts->container_endpoint;
			if (!base || !*base)
				base = penv(p, "KVSFS_CONTAINER_ENDPOINT");
			if (!base || !*base)
				base = DEFAULT_CONTAINER_BASE;
			size_t bl = strlen(base);
			while (bl && base[bl - 1] == '/')
				bl--;
			if (buf_append(&u, base, bl) || (rel[0] != '/' && buf_putc(&u, '/')) ||
			    buf_appendz(&u, rel)) {
				buf_free(&u);
				return -ENOMEM;
			}
		} else {
			if (!container_host_allowed(full)) {
				snprintf(err, errlen, "AWS_CONTAINER_CREDENTIALS_FULL_URI must be an https "
					 "URL or use a loopback, 169.254.170.2 or 169.254.170.23 host");
				return -EINVAL;
			}
			if (buf_appendz(&u, full)) {
				buf_free(&u);
				return -ENOMEM;
			}
		}
		for (const char *c = buf_str(&u); *c; c++)
			if ((unsigned char)*c <= 0x20 || (unsigned char)*c == 0x7f) {
				buf_free(&u);
				snprintf(err, errlen, "the container credentials URI contains whitespace "
					 "or control characters");
				return -EINVAL;
			}
		p->container_url = buf_steal(&u);
		const char *tf = penv(p, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
		const char *tk = penv(p, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
		if (tf && *tf)
			p->container_token_file = strdup(tf);
		else if (tk && *tk)
			p->container_token = strdup(tk);
		if (!p->container_url || (tf && *tf && !p->container_token_file) ||
		    (!(tf && *tf) && tk && *tk && !p->container_token))
			return -ENOMEM;
		p->source = CREDS_SOURCE_CONTAINER;
		snprintf(p->describe, sizeof(p->describe), "container endpoint");
		if ((rc = make_http(p, opts))) {
			snprintf(err, errlen, "cannot set up HTTP for container credentials: %s",
				 strerror(-rc));
			return rc;
		}
		return fetch_container(p, first, err, errlen);
	}
	/* 4. IMDS. */
	if (env_true(p, "AWS_EC2_METADATA_DISABLED")) {
		snprintf(err, errlen, "no AWS credentials found: none in the environment, in profile "
			 "%s of %s or %s, no container endpoint, and instance metadata is disabled "
			 "(AWS_EC2_METADATA_DISABLED)", p->profile, f->credentials_path,
			 f->config_path);
		return -ENOKEY;
	}
	const char *ep = penv(p, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
	if (!ep || !*ep)
		ep = awsconfig_files_get(f, "ec2_metadata_service_endpoint");
	if (!ep || !*ep) {
		const char *mode = penv(p, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
		if (!mode || !*mode)
			mode = awsconfig_files_get(f, "ec2_metadata_service_endpoint_mode");
		ep = mode && strcasecmp(mode, "ipv6") == 0 ? DEFAULT_IMDS_V6 : DEFAULT_IMDS;
	}
	char why[128];
	p->imds_base = awsconfig_endpoint_normalize(ep, why, sizeof(why));
	if (!p->imds_base) {
		snprintf(err, errlen, "the instance metadata endpoint %s", why);
		return -EINVAL;
	}
	p->imds_v1_disabled = env_true(p, "AWS_EC2_METADATA_V1_DISABLED") ||
			      (awsconfig_files_get(f, "ec2_metadata_v1_disabled") &&
			       strcasecmp(awsconfig_files_get(f, "ec2_metadata_v1_disabled"), "true") == 0);
	p->imds_timeout_ms = opts->imds_timeout_ms > 0 ? opts->imds_timeout_ms : 1000;
	const char *ts = penv(p, "AWS_METADATA_SERVICE_TIMEOUT");
	int64_t tms;
	if (opts->imds_timeout_ms <= 0 && ts && *ts && decsec_parse_ms(ts, 0, &tms) == 0 &&
	    tms >= 1 && tms <= 600000)
		p->imds_timeout_ms = (int)tms;
	p->imds_attempts = 1;
	const char *na = penv(p, "AWS_METADATA_SERVICE_NUM_ATTEMPTS");
	if (na && *na) {
		int n = atoi(na);
		if (n >= 1 && n <= 10)
			p->imds_attempts = n;
	}
	p->source = CREDS_SOURCE_IMDS;
	if ((rc = make_http(p, opts))) {
		snprintf(err, errlen, "cannot set up HTTP for instance metadata: %s", strerror(-rc));
		return rc;
	}
	char *role = NULL;
	char ierr[384];
	rc = fetch_imds(p, first, &role, ierr, sizeof(ierr));
	if (rc) {
		if (rc == -ENOMEM) {
			snprintf(err, errlen, "out of memory");
			return rc;
		}
		snprintf(err, errlen, "no AWS credentials found: none in the environment, in profile "
			 "%s of %s or %s, no container endpoint, and %s", p->profile,
			 f->credentials_path, f->config_path, ierr);
		return -ENOKEY;
	}
	snprintf(p->describe, sizeof(p->describe), "instance metadata (IMDS) role %s", role);
	free(role);
	return 0;
}

int creds_provider_new(struct creds_provider **out, const struct creds_options *opts,
		       const struct awsconfig_files *files, struct log_ctx *lg, char *err,
		       size_t errlen)
{
	char ebuf[512];
	struct creds_options dflt;
	*out = NULL;
	if (!opts) {
		memset(&dflt, 0, sizeof(dflt));
		opts = &dflt;
	}
	ebuf[0] = '\0';
	struct creds_provider *p = calloc(1, sizeof(*p));
	if (!p) {
		if (errlen)
			snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->lg = lg;
	p->margin_s = opts->refresh_margin_s > 0 ? opts->refresh_margin_s :
		      (opts->refresh_margin_s < 0 ? 0 : DEFAULT_MARGIN_S);
	p->process_timeout_ms = opts->process_timeout_ms > 0 ? opts->process_timeout_ms : 30000;
	p->container_timeout_ms = opts->container_timeout_ms > 0 ? opts->container_timeout_ms :
				  2000;
	int rc = 0;
	if (opts->env && !(p->env = env_dup(opts->env))) {
		rc = -ENOMEM;
		goto fail;
	}
	struct awsconfig_files own;
	memset(&own, 0, sizeof(own));
	const struct awsconfig_files *f = files;
	if (!f) {
		rc = awsconfig_files_load(&own, opts->profile, opts->env, NULL, ebuf, sizeof(ebuf));
		if (rc)
			goto fail;
		f = &own;
	}
	p->profile = strdup(f->profile ? f->profile : "default");
	if (!p->profile) {
		rc = -ENOMEM;
		goto fail_files;
	}
	struct creds_value first;
	memset(&first, 0, sizeof(first));
	rc = resolve(p, opts, f, &first, ebuf, sizeof(ebuf));
	if (!rc) {
		time_t now = time(NULL);
		if (first.expiration && first.expiration <= now) {
			creds_value_free(&first);
			snprintf(ebuf, sizeof(ebuf), "the credentials from %s have already expired",
				 p->describe);
			rc = -EACCES;
		} else {
			install(p, &first, now);
		}
	}
fail_files:
	if (f == &own)
		awsconfig_files_free(&own);
	if (rc)
		goto fail;
	if (p->cur.expiration)
		LOG_INFO(lg, MOD, "credentials from %s (temporary, expire in %lld s)", p->describe,
			 (long long)(p->cur.expiration - time(NULL)));
	else
		LOG_INFO(lg, MOD, "credentials from %s", p->describe);
	*out = p;
	if (errlen)
		err[0] = '\0';
	return 0;
fail:
	if (rc == -ENOMEM && !ebuf[0])
		snprintf(ebuf, sizeof(ebuf), "out of memory");
	if (!ebuf[0])
		snprintf(ebuf, sizeof(ebuf), "getting AWS credentials failed: %s", strerror(-rc));
	/* The caller reports err once (the mount prints it); only a debug trace here. */
	LOG_DEBUG(lg, MOD, "resolving credentials failed: %s", ebuf);
	if (errlen)
		snprintf(err, errlen, "%s", ebuf);
	creds_provider_free(p);
	return rc;
}
