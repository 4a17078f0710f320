/*
 * http: HTTP client over libcurl (see include/kvsfs/http.h for the contract).
 *
 * Design and invariants:
 * - struct http_client is immutable after http_client_new() except for three mutex-guarded
 *   parts: the idle easy-handle pool (pool_lock), the CURLSH share (one mutex per
 *   curl_lock_data kind, taken by share_lock/share_unlock), and the jitter PRNG (rng_lock).
 * - A handle is checked out for one whole request (all its attempts) and checked back in after;
 *   it is curl_easy_reset() and fully reconfigured before each attempt, which keeps its live
 *   connections, so sequential requests reuse connections. Idle handles are used LIFO.
 * - Per attempt, struct attempt holds all transfer state; curl callbacks only touch it. A
 *   callback that fails records a positive errno in a->cb_err and makes curl abort; such
 *   failures are final (never retried).
 * - The 2xx/non-2xx decision is made at the first body byte from CURLINFO_RESPONSE_CODE: 2xx
 *   bytes go to the caller's body_fn, others into a bounded error buffer.
 * - Success requires CURLE_OK, a 2xx status and, when a Content-Length was announced (and the
 *   body was not chunked, not HEAD, not 204/304), exactly that many bytes delivered.
 * - Retry loop: see http_perform(). The total budget bounds when a new attempt may start.
 */
#include "kvsfs/http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvsfs/clk.h"
#include "kvsfs_config.h"

#define MOD "http"
#define CA_FILE_MAX (16u << 20)

struct http_client {
	struct log_ctx *log;
	long connect_timeout_ms;
	long low_speed_limit;
	long low_speed_time_s;
	long total_timeout_ms;
	int no_verify_ssl;
	struct http_retry_policy retry;
	char *user_agent;
	size_t max_error_body;
	unsigned pool_max_idle;

	char *ca_data; /* combined PEM bundle (system + ca_file), NULL when no ca_file */
	size_t ca_len;

	pthread_mutex_t pool_lock;
	CURL **idle;
	size_t n_idle;

	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

	pthread_mutex_t rng_lock;
	uint64_t rng;
};

/* ---------------------------------------------------------------- headers */

static int header_name_ok(const char *name)
{
	if (!name || !*name)
		return 0;
	for (const char *p = name; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch <= 0x20 || ch >= 0x7f || ch == ':')
			return 0;
	}
	return 1;
}

static int header_value_ok(const char *value)
{
	if (!value)
		return 0;
	for (const char *p = value; *p; p++)
		if (*p == '\r' || *p == '\n')
			return 0;
	return 1;
}

void http_headers_clear(struct http_headers *h)
{
	for (size_t i = 0; i < h->n; i++) {
		free(h->v[i].name);
		free(h->v[i].value);
	}
	h->n = 0;
}

void http_headers_free(struct http_headers *h)
{
	http_headers_clear(h);
	free(h->v);
	h->v = NULL;
	h->cap = 0;
}

static int headers_push(struct http_headers *h, const char *name, size_t nlen, const char *value,
			size_t vlen)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 8;
		struct http_header *v = realloc(h->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	char *n = strndup(name, nlen);
	char *val = strndup(value, vlen);
	if (!n || !val) {
		free(n);
		free(val);
		return -ENOMEM;
	}
	h->v[h->n].name = n;
	h->v[h->n].value = val;
	h->n++;
	return 0;
}

int http_headers_add(struct http_headers *h, const char *name, const char *value)
{
	if (!header_name_ok(name) || !header_value_ok(value))
		return -EINVAL;
	return headers_push(h, name, strlen(name), value, strlen(value));
}

void http_headers_remove(struct http_headers *h, const char *name)
{
	size_t o = 0;
	for (size_t i = 0; i < h->n; i++) {
		if (strcasecmp(h->v[i].name, name) == 0) {
			free(h->v[i].name);
			free(h->v[i].value);
			continue;
		}
		h->v[o++] = h->v[i];
	}
	h->n = o;
}

int http_headers_set(struct http_headers *h, const char *name, const char *value)
{
	if (!header_name_ok(name) || !header_value_ok(value))
		return -EINVAL;
	for (size_t i = 0; i < h->n; i++) {
		if (strcasecmp(h->v[i].name, name) != 0)
			continue;
		char *val = strdup(value);
		if (!val)
			return -ENOMEM;
		free(h->v[i].value);
		h->v[i].value = val;
		/* drop later duplicates */
		size_t o = i + 1;
		for (size_t j = i + 1; j < h->n; j++) {
			if (strcasecmp(h->v[j].name, name) == 0) {
				free(h->v[j].name);
				free(h->v[j].value);
				continue;
			}
			h->v[o++] = h->v[j];
		}
		h->n = o;
		return 0;
	}
	return headers_push(h, name, strlen(name), value, strlen(value));
}

const char *http_headers_get(const struct http_headers *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (strcasecmp(h->v[i].name, name) == 0)
			return h->v[i].value;
	return NULL;
}

int http_headers_copy(struct http_headers *dst, const struct http_headers *src)
{
	for (size_t i = 0; src && i < src->n; i++) {
		int rc = headers_push(dst, src->v[i].name, strlen(src->v[i].name), src->v[i].value,
				      strlen(src->v[i].value));
		if (rc)
			return rc;
	}
	return 0;
}

/* ---------------------------------------------------------------- response, sinks, helpers */

void http_response_init(struct http_response *resp)
{
	memset(resp, 0, sizeof(*resp));
}

void http_response_free(struct http_response *resp)
{
	http_headers_free(&resp->headers);
	http_response_init(resp);
}

int http_sink_buf(void *arg, const void *data, size_t len)
{
	struct http_sink *s = arg;
	if (s->max && (s->buf->len > s->max || len > s->max - s->buf->len))
		return -EFBIG;
	return buf_append(s->buf, data, len);
}

int http_sink_buf_reset(void *arg)
{
	struct http_sink *s = arg;
	buf_reset(s->buf);
	return 0;
}

char *http_url_for_log(const char *url, char *out, size_t n)
{
	if (!n)
		return out;
	out[0] = '\0';
	if (!url)
		return out;
	const char *p = strstr(url, "://");
	p = p ? p + 3 : url;
	/* authority ends at '/', '?' or '#'; drop any userinfo */
	size_t alen = strcspn(p, "/?#");
	const char *at = memchr(p, '@', alen);
	if (at) {
		alen -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	size_t plen = strcspn(p + alen, "?#");
	int has_q = p[alen + plen] == '?';
	snprintf(out, n, "%.*s%.*s%s", (int)alen, p, (int)plen, p + alen, has_q ? "?..." : "");
	return out;
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

unsigned http_backoff_ms(uint64_t *state, unsigned n, unsigned base_ms, unsigned max_ms)
{
	uint64_t cap = base_ms;
	for (unsigned i = 0; i < n && cap < max_ms; i++)
		cap *= 2;
	if (cap > max_ms)
		cap = max_ms;
	return (unsigned)(splitmix64(state) % (cap + 1));
}

/* ---------------------------------------------------------------- client */

void http_client_opts_init(struct http_client_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg)
{
	(void)h;
	(void)access;
	struct http_client *c = arg;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *arg)
{
	(void)h;
	struct http_client *c = arg;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&c->share_locks[data]);
}

/* Reads a whole file of at most max bytes into a malloc'd buffer. Returns 0 or -errno. */
static int read_file(const char *path, size_t max, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int e = 0;
	if (fstat(fd, &st) != 0)
		e = errno;
	else if (!S_ISREG(st.st_mode))
		e = EINVAL;
	else if ((uint64_t)st.st_size > max)
		e = EFBIG;
	if (e) {
		close(fd);
		return -e;
	}
	size_t sz = (size_t)st.st_size;
	char *p = malloc(sz + 1);
	if (!p) {
		close(fd);
		return -ENOMEM;
	}
	size_t got = 0;
	while (got < sz) {
		ssize_t r = read(fd, p + got, sz - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	p[got] = '\0';
	*out = p;
	*len = got;
	return 0;
}

/* Builds the combined trust bundle: libcurl's default CA file (when readable) + ca_file. */
static int build_ca_bundle(struct http_client *c, const char *ca_file)
{
	char *extra = NULL;
	size_t extra_len = 0;
	int rc = read_file(ca_file, CA_FILE_MAX, &extra, &extra_len);
	if (rc) {
		LOG_ERROR(c->log, MOD, "cannot read ca_file %s: %s", ca_file, strerror(-rc));
		return rc;
	}
	if (!memmem(extra, extra_len, "-----BEGIN CERTIFICATE-----", 27)) {
		LOG_ERROR(c->log, MOD, "ca_file %s holds no PEM certificate", ca_file);
		free(extra);
		return -EINVAL;
	}
	char *sys = NULL;
	size_t sys_len = 0;
	const char *def = NULL;
	CURL *tmp = curl_easy_init();
	if (tmp && curl_easy_getinfo(tmp, CURLINFO_CAINFO, &def) == CURLE_OK && def) {
		int src = read_file(def, CA_FILE_MAX, &sys, &sys_len);
		if (src)
			LOG_WARN(c->log, MOD, "system CA bundle %s unreadable (%s); "
				 "trusting ca_file and the CA path only", def, strerror(-src));
	}
	if (tmp)
		curl_easy_cleanup(tmp);
	size_t total = sys_len + 1 + extra_len;
	char *all = malloc(total + 1);
	if (!all) {
		free(sys);
		free(extra);
		return -ENOMEM;
	}
	if (sys_len)
		memcpy(all, sys, sys_len);
	all[sys_len] = '\n';
	memcpy(all + sys_len + 1, extra, extra_len);
	all[total] = '\0';
	free(sys);
	free(extra);
	c->ca_data = all;
	c->ca_len = total;
	return 0;
}

int http_client_new(const struct http_client_opts *opts, struct http_client **out)
{
	struct http_client_opts def;
	if (!opts) {
		http_client_opts_init(&def);
		opts = &def;
	}
	struct http_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->log = opts->log;
	c->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 10000;
	if (opts->low_speed_limit == 0 && opts->low_speed_time_s == 0) {
		c->low_speed_limit = 1;
		c->low_speed_time_s = 30;
	} else {
		c->low_speed_limit = opts->low_speed_limit > 0 ? opts->low_speed_limit : 1;
		c->low_speed_time_s = opts->low_speed_time_s;
	}
	c->total_timeout_ms = opts->total_timeout_ms > 0 ? opts->total_timeout_ms : 0;
	c->no_verify_ssl = opts->no_verify_ssl;
	c->retry.max_attempts = opts->retry.max_attempts > 0 ? opts->retry.max_attempts : 5;
	c->retry.base_delay_ms = opts->retry.base_delay_ms ? opts->retry.base_delay_ms : 100;
	c->retry.max_delay_ms = opts->retry.max_delay_ms ? opts->retry.max_delay_ms : 5000;
	c->retry.max_total_ms = opts->retry.max_total_ms ? opts->retry.max_total_ms : 60000;
	c->max_error_body = opts->max_error_body ? opts->max_error_body : 65536;
	c->pool_max_idle = opts->pool_max_idle ? opts->pool_max_idle : 16;
	c->user_agent = strdup(opts->user_agent ? opts->user_agent : "kvsfs/" KVSFS_VERSION);
	c->idle = calloc(c->pool_max_idle, sizeof(*c->idle));
	pthread_mutex_init(&c->pool_lock, NULL);
	pthread_mutex_init(&c->rng_lock, NULL);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_locks[i], NULL);
	if (!c->user_agent || !c->idle) {
		http_client_free(c);
		return -ENOMEM;
	}
	c->rng = opts->seed;
	if (!c->rng && getrandom(&c->rng, sizeof(c->rng), 0) != (ssize_t)sizeof(c->rng))
		c->rng = (uint64_t)clk_mono_ms() ^ ((uint64_t)getpid() << 32);

	if (opts->ca_file && *opts->ca_file) {
		int rc = build_ca_bundle(c, opts->ca_file);
		if (rc) {
			http_client_free(c);
			return rc;
		}
	}
	if (c->no_verify_ssl)
		LOG_WARN(c->log, MOD, "TLS certificate verification is DISABLED (no_verify_ssl)");

	c->share = curl_share_init();
	if (!c->share) {
		http_client_free(c);
		return -ENOMEM;
	}
	if (curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) !=
		    CURLSHE_OK) {
		LOG_ERROR(c->log, MOD, "libcurl share set-up failed");
		http_client_free(c);
		return -EIO;
	}
	*out = c;
	return 0;
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_idle; i++)
		curl_easy_cleanup(c->idle[i]);
	free(c->idle);
	if (c->share)
		curl_share_cleanup(c->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_locks[i]);
	pthread_mutex_destroy(&c->pool_lock);
	pthread_mutex_destroy(&c->rng_lock);
	free(c->user_agent);
	free(c->ca_data);
	free(c);
}

static CURL *pool_get(struct http_client *c)
{
	CURL *h = NULL;
	pthread_mutex_lock(&c->pool_lock);
	if (c->n_idle)
		h = c->idle[--c->n_idle];
	pthread_mutex_unlock(&c->pool_lock);
	return h ? h : curl_easy_init();
}

static void pool_put(struct http_client *c, CURL *h)
{
	if (!h)
		return;
	/* drop pointers into the finished request's stack frame; live connections stay */
	curl_easy_reset(h);
	pthread_mutex_lock(&c->pool_lock);
	if (c->n_idle < c->pool_max_idle) {
		c->idle[c->n_idle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (h)
		curl_easy_cleanup(h);
}

static unsigned next_delay(struct http_client *c, unsigned n)
{
	pthread_mutex_lock(&c->rng_lock);
	unsigned d = http_backoff_ms(&c->rng, n, c->retry.base_delay_ms, c->retry.max_delay_ms);
	pthread_mutex_unlock(&c->rng_lock);
	return d;
}

/* ---------------------------------------------------------------- one attempt */

struct attempt {
	struct http_client *c;
	const struct http_request *req;
	struct http_response *resp;
	CURL *h;
	/* request body */
	size_t mem_off;
	uint64_t sent;      /* body bytes handed to curl since the last rewind */
	uint64_t sent_ever; /* body bytes handed to curl in this attempt */
	/* response */
	int status_known;
	long status;
	int is_2xx;
	uint64_t body_bytes;
	struct buf errbody;
	size_t errbody_dropped;
	int cb_err; /* positive errno from a caller callback: final */
	const char *cb_msg; /* what failed, for the error message */
	char errbuf[CURL_ERROR_SIZE];
};

static size_t on_header(char *p, size_t size, size_t nitems, void *arg)
{
	struct attempt *a = arg;
	size_t n = size * nitems;
	if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		/* a new header block (after 1xx responses): keep only the final one */
		http_headers_clear(&a->resp->headers);
		return n;
	}
	const char *colon = memchr(p, ':', n);
	if (!colon || colon == p)
		return n; /* blank line ending the block, or junk: ignored */
	size_t nlen = (size_t)(colon - p);
	for (size_t i = 0; i < nlen; i++)
		if ((unsigned char)p[i] <= 0x20 || p[i] == 0x7f)
			return n; /* obs-fold continuation or malformed name: ignored */
	const char *v = colon + 1;
	const char *end = p + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' ||
			   end[-1] == '\t'))
		end--;
	if (memchr(v, '\0', (size_t)(end - v)))
		return n;
	if (headers_push(&a->resp->headers, p, nlen, v, (size_t)(end - v))) {
		a->cb_err = ENOMEM;
		return 0;
	}
	return n;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct attempt *a = arg;
	size_t n = size * nmemb;
	if (!a->status_known) {
		long st = 0;
		curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &st);
		a->status = st;
		a->status_known = 1;
		a->is_2xx = st >= 200 && st < 300;
	}
	if (a->is_2xx) {
		if (a->req->body_fn && n) {
			int rc = a->req->body_fn(a->req->body_arg, p, n);
			if (rc < 0) {
				a->cb_err = -rc;
				return 0;
			}
		}
		a->body_bytes += n;
		return n;
	}
	size_t room = a->c->max_error_body > a->errbody.len ?
			      a->c->max_error_body - a->errbody.len : 0;
	size_t take = n < room ? n : room;
	if (take && buf_append(&a->errbody, p, take)) {
		a->cb_err = ENOMEM;
		return 0;
	}
	a->errbody_dropped += n - take;
	return n;
}

static size_t on_read(char *dst, size_t size, size_t nitems, void *arg)
{
	struct attempt *a = arg;
	size_t n = size * nitems;
	const struct http_request *r = a->req;
	size_t got;
	if (r->read_fn) {
		ssize_t rc = r->read_fn(r->read_arg, dst, n);
		if (rc < 0) {
			a->cb_err = (int)-rc;
			return CURL_READFUNC_ABORT;
		}
		if ((size_t)rc > n) {
			a->cb_err = EINVAL;
			return CURL_READFUNC_ABORT;
		}
		if (rc == 0 && r->body_size >= 0 && a->sent < (uint64_t)r->body_size) {
			a->cb_err = EIO; /* body shorter than announced: final, not retried */
			a->cb_msg = "request body shorter than its announced size";
			return CURL_READFUNC_ABORT;
		}
		got = (size_t)rc;
	} else {
		size_t left = r->body_len - a->mem_off;
		got = n < left ? n : left;
		if (got)
			memcpy(dst, (const char *)r->body + a->mem_off, got);
		a->mem_off += got;
	}
	a->sent += got;
	a->sent_ever += got;
	return got;
}

/* libcurl asks to rewind the body (it resends on a reused connection that turned out dead). */
static int on_seek(void *arg, curl_off_t offset, int origin)
{
	struct attempt *a = arg;
	if (offset != 0 || origin != SEEK_SET)
		return CURL_SEEKFUNC_CANTSEEK;
	if (a->req->read_fn) {
		if (a->sent == 0)
			return CURL_SEEKFUNC_OK;
		if (!a->req->rewind_fn || a->req->rewind_fn(a->req->read_arg) != 0)
			return CURL_SEEKFUNC_CANTSEEK;
	} else {
		a->mem_off = 0;
	}
	a->sent = 0;
	return CURL_SEEKFUNC_OK;
}

static int has_body(const struct http_request *r)
{
	return r->read_fn != NULL || r->body != NULL;
}

/* Configures the handle for one attempt. Returns 0 or a negative errno. */
static int setup(struct attempt *a, struct curl_slist **hl, struct http_headers *hdrs)
{
	struct http_client *c = a->c;
	const struct http_request *r = a->req;
	CURL *h = a->h;
	const char *method = r->method ? r->method : "GET";
	CURLcode cc = CURLE_OK;
#define SET(opt, val) do { if (cc == CURLE_OK) cc = curl_easy_setopt(h, opt, val); } while (0)
	curl_easy_reset(h);
	SET(CURLOPT_URL, r->url);
	/* send the path exactly as signed: libcurl would otherwise squash "." and ".." segments */
	SET(CURLOPT_PATH_AS_IS, 1L);
	/* libcurl silently resends a request whose reused connection died before any answer; a
	 * request that is not safe to repeat gets a fresh connection so that cannot happen */
	if (!r->idempotent)
		SET(CURLOPT_FRESH_CONNECT, 1L);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_SHARE, c->share);
	SET(CURLOPT_USERAGENT, c->user_agent);
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_ERRORBUFFER, a->errbuf);
	SET(CURLOPT_CONNECTTIMEOUT_MS, r->connect_timeout_ms > 0 ? r->connect_timeout_ms
							      : c->connect_timeout_ms);
	long tmo = r->timeout_ms > 0 ? r->timeout_ms : c->total_timeout_ms;
	if (tmo > 0)
		SET(CURLOPT_TIMEOUT_MS, tmo);
	if (c->low_speed_time_s > 0) {
		SET(CURLOPT_LOW_SPEED_LIMIT, c->low_speed_limit);
		SET(CURLOPT_LOW_SPEED_TIME, c->low_speed_time_s);
	}
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (c->no_verify_ssl) {
		SET(CURLOPT_SSL_VERIFYPEER, 0L);
		SET(CURLOPT_SSL_VERIFYHOST, 0L);
	} else {
		SET(CURLOPT_SSL_VERIFYPEER, 1L);
		SET(CURLOPT_SSL_VERIFYHOST, 2L);
		if (c->ca_data) {
			struct curl_blob blob = { c->ca_data, c->ca_len, CURL_BLOB_NOCOPY };
			SET(CURLOPT_CAINFO_BLOB, &blob);
		}
	}
	if (r->no_proxy)
		SET(CURLOPT_NOPROXY, "*");
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, a);
	SET(CURLOPT_WRITEFUNCTION, on_write);
	SET(CURLOPT_WRITEDATA, a);

	int chunked = 0;
	if (strcmp(method, "HEAD") == 0) {
		SET(CURLOPT_NOBODY, 1L);
	} else if (has_body(r) || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
		curl_off_t size = r->read_fn ? (curl_off_t)r->body_size : (curl_off_t)r->body_len;
		if (r->read_fn && r->body_size < 0) {
			size = -1;
			chunked = 1;
		}
		if (!has_body(r))
			size = 0;
		SET(CURLOPT_POST, 1L);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, size);
		SET(CURLOPT_READFUNCTION, on_read);
		SET(CURLOPT_READDATA, a);
		SET(CURLOPT_SEEKFUNCTION, on_seek);
		SET(CURLOPT_SEEKDATA, a);
		if (strcmp(method, "POST") != 0)
			SET(CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET") == 0) {
		SET(CURLOPT_HTTPGET, 1L);
	} else {
		SET(CURLOPT_CUSTOMREQUEST, method);
	}
	if (cc != CURLE_OK) {
		LOG_ERROR(c->log, MOD, "libcurl option set-up failed: %s", curl_easy_strerror(cc));
		return cc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
	}

	/* headers: the caller's, then defaults libcurl would otherwise add */
	struct buf line = BUF_INIT;
	int rc = 0;
	for (size_t i = 0; i < hdrs->n && !rc; i++) {
		buf_reset(&line);
		if (hdrs->v[i].value[0])
			rc = buf_printf(&line, "%s: %s", hdrs->v[i].name, hdrs->v[i].value);
		else
			rc = buf_printf(&line, "%s;", hdrs->v[i].name);
		if (!rc) {
			struct curl_slist *nl = curl_slist_append(*hl, buf_str(&line));
			if (!nl)
				rc = -ENOMEM;
			else
				*hl = nl;
		}
	}
	static const char *const defaults[][2] = {
		{ "Expect", "Expect:" },             /* no 100-continue round trip */
		{ "Content-Type", "Content-Type:" }, /* not form-urlencoded for POST */
		{ "Transfer-Encoding", "Transfer-Encoding: chunked" },
	};
	for (size_t i = 0; i < 3 && !rc; i++) {
		if (http_headers_get(hdrs, defaults[i][0]))
			continue;
		if (i == 2 && !chunked)
			continue;
		struct curl_slist *nl = curl_slist_append(*hl, defaults[i][1]);
		if (!nl)
			rc = -ENOMEM;
		else
			*hl = nl;
	}
	buf_free(&line);
	if (rc)
		return rc;
	if (curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hl) != CURLE_OK)
		return -ENOMEM;
#undef SET
	return 0;
}

/* Parses a decimal Content-Length; -1 when absent or malformed. */
static int64_t content_length(const struct http_headers *hs)
{
	const char *v = http_headers_get(hs, "Content-Length");
	if (!v || !*v)
		return -1;
	int64_t n = 0;
	for (const char *p = v; *p; p++) {
		if (!isdigit((unsigned char)*p) || n > (INT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (*p - '0');
	}
	return n;
}

/* Runs one attempt and fills resp (status, headers, err). Returns 0 on complete 2xx success,
 * else a negative errno with resp->err filled. */
static int run_attempt(struct attempt *a, int attempt_no)
{
	struct http_response *resp = a->resp;
	const struct http_request *r = a->req;
	struct http_headers hdrs = HTTP_HEADERS_INIT;
	struct curl_slist *hl = NULL;
	http_headers_clear(&resp->headers);
	awserr_clear(&resp->err);
	resp->status = 0;
	resp->body_bytes = 0;

	int rc = http_headers_copy(&hdrs, r->headers);
	if (!rc && r->prepare)
		rc = r->prepare(r->prepare_arg, r, &hdrs, attempt_no);
	if (!rc)
		rc = setup(a, &hl, &hdrs);
	if (rc) {
		awserr_set_errno(&resp->err, -rc, "request preparation failed");
		http_headers_free(&hdrs);
		curl_slist_free_all(hl);
		return rc;
	}
	CURLcode cc = curl_easy_perform(a->h);
	long st = 0;
	curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &st);
	curl_easy_setopt(a->h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hl);
	http_headers_free(&hdrs);
	resp->status = (int)st;
	resp->body_bytes = a->body_bytes;

	if (a->cb_err) {
		char msg[96];
		snprintf(msg, sizeof(msg), "%s (%s)",
			 a->cb_msg ? a->cb_msg : "aborted by a callback", strerror(a->cb_err));
		return awserr_set_errno(&resp->err, a->cb_err, msg);
	}
	if (cc != CURLE_OK)
		return awserr_set_transport(&resp->err, cc, (int)st,
					    a->errbuf[0] ? a->errbuf : NULL);
	if (st >= 200 && st < 300) {
		int64_t cl = content_length(&resp->headers);
		const char *te = http_headers_get(&resp->headers, "Transfer-Encoding");
		int is_head = r->method && strcmp(r->method, "HEAD") == 0;
		if (cl >= 0 && !te && !is_head && st != 204 && (uint64_t)cl != a->body_bytes) {
			char msg[128];
			snprintf(msg, sizeof(msg), "short body: %" PRIu64 " of %" PRId64 " bytes",
				 a->body_bytes, cl);
			return awserr_set_transport(&resp->err, CURLE_PARTIAL_FILE, (int)st, msg);
		}
		return 0;
	}
	const struct http_headers *rh = &resp->headers;
	const char *reqid = http_headers_get(rh, "x-amzn-RequestId");
	if (!reqid)
		reqid = http_headers_get(rh, "x-amz-request-id");
	return awserr_parse(&resp->err, (int)st, http_headers_get(rh, "x-amzn-ErrorType"), reqid,
			    a->errbody.data, a->errbody.len);
}

static void describe(const struct http_response *resp, char *out, size_t n)
{
	const struct awserr *e = &resp->err;
	if (e->curl_code)
		snprintf(out, n, "curl error %d (%s)", e->curl_code, e->message);
	else if (e->http_status && (e->http_status < 200 || e->http_status >= 300))
		snprintf(out, n, "HTTP %d%s%s", e->http_status, e->type[0] ? " " : "", e->type);
	else if (e->err)
		snprintf(out, n, "failed: %s", e->message[0] ? e->message : strerror(e->err));
	else
		snprintf(out, n, "HTTP %d (%" PRIu64 " bytes)", resp->status, resp->body_bytes);
}

int http_perform(struct http_client *c, const struct http_request *req,
		 struct http_response *resp)
{
	http_response_init(resp);
	if (!c || !req || !req->url) {
		awserr_set_errno(&resp->err, EINVAL, "no URL");
		return -EINVAL;
	}
	const char *method = req->method ? req->method : "GET";
	char where[256];
	http_url_for_log(req->url, where, sizeof(where));
	int max_attempts = req->max_attempts > 0 ? req->max_attempts : c->retry.max_attempts;
	CURL *h = pool_get(c);
	if (!h) {
		awserr_set_errno(&resp->err, ENOMEM, "curl_easy_init failed");
		return -ENOMEM;
	}
	int64_t t0 = clk_mono_ms();
	struct attempt a;
	memset(&a, 0, sizeof(a));
	a.c = c;
	a.req = req;
	a.resp = resp;
	a.h = h;
	int rc = 0;
	for (int n = 1;; n++) {
		resp->attempts = n;
		a.mem_off = 0;
		a.sent = 0;
		a.sent_ever = 0;
		a.status_known = 0;
		a.status = 0;
		a.is_2xx = 0;
		a.body_bytes = 0;
		a.cb_err = 0;
		a.cb_msg = NULL;
		a.errbuf[0] = '\0';
		a.errbody_dropped = 0;
		buf_reset(&a.errbody);
		rc = run_attempt(&a, n);
		char what[AWSERR_MSG_MAX + 64];
		describe(resp, what, sizeof(what));
		if (rc == 0) {
			LOG_DEBUG(c->log, MOD, "%s %s attempt %d/%d: %s", method, where, n,
				  max_attempts, what);
			break;
		}
		/* may we repeat it? */
		const char *why_not = NULL;
		if (!resp->err.retryable)
			why_not = "not retryable";
		else if (!req->idempotent)
			why_not = "request not safe to repeat";
		else if (n >= max_attempts)
			why_not = "attempts exhausted";
		else if (req->read_fn && a.sent_ever > 0 && !req->rewind_fn)
			why_not = "request body cannot be rewound";
		else if (a.body_bytes > 0 && !req->reset_fn && req->body_fn)
			why_not = "partial response body cannot be discarded";
		unsigned delay = 0;
		if (!why_not) {
			delay = next_delay(c, (unsigned)(n - 1));
			if (clk_mono_ms() - t0 + delay > (int64_t)c->retry.max_total_ms)
				why_not = "retry time budget exhausted";
		}
		if (why_not) {
			LOG_DEBUG(c->log, MOD, "%s %s attempt %d/%d: %s, no retry (%s)", method,
				  where, n, max_attempts, what, why_not);
			if (resp->err.retryable && req->idempotent && n > 1)
				LOG_WARN(c->log, MOD, "%s %s: giving up after %d attempts in "
					 "%" PRId64 " ms: %s", method, where, n, clk_mono_ms() - t0, what);
			break;
		}
		LOG_DEBUG(c->log, MOD, "%s %s attempt %d/%d: %s, retry in %u ms", method, where, n,
			  max_attempts, what, delay);
		if (a.body_bytes > 0 && req->reset_fn) {
			int r2 = req->reset_fn(req->body_arg);
			if (r2 < 0) {
				rc = awserr_set_errno(&resp->err, -r2, "reset callback failed");
				break;
			}
		}
		if (req->read_fn && a.sent > 0) {
			int r2 = req->rewind_fn(req->read_arg);
			if (r2 < 0) {
				rc = awserr_set_errno(&resp->err, -r2,
						      "request body rewind failed");
				break;
			}
		}
		clk_sleep_ms(delay);
	}
	buf_free(&a.errbody);
	pool_put(c, h);
	return rc;
}
