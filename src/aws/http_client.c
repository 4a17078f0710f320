/*
 * http_client: the HTTP client object (see include/kvsfs/http.h): options and defaults, the
 * trust bundle, the CURLSH share, the pool of idle easy handles and the jitter PRNG. Requests
 * run in http.c.
 *
 * Design and invariants:
 * - struct http_client is immutable after http_client_new() except for three mutex-guarded
 *   parts: the idle easy-handle pool (pool_lock), the CURLSH share (one mutex per
 *   curl_lock_data kind, taken by share_lock/share_unlock), and the jitter PRNG (rng_lock).
 *   No lock is held across a transfer: a handle is checked out for a whole request.
 * - Idle handles are used LIFO and keep their live connections (curl_easy_reset does not drop
 *   them), so sequential requests reuse connections.
 * - ca_data (system bundle + ca_file) lives as long as the client: libcurl uses it without a copy.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_internal.h"
#include "kvsfs/clk.h"
#include "kvsfs/fsutil.h"
#include "kvsfs_config.h"

#define MOD HTTP_MOD
#define CA_FILE_MAX (16u << 20)

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

/* Reads a whole regular file of at most max bytes into out. Returns 0 or -errno. */
static int read_file(const char *path, size_t max, struct buf *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int rc;
	if (fstat(fd, &st) != 0)
		rc = -errno;
	else if (!S_ISREG(st.st_mode))
		rc = -EINVAL;
	else if ((uint64_t)st.st_size > max)
		rc = -EFBIG;
	else
		rc = fsutil_read_fd(fd, max, out);
	close(fd);
	return rc;
}

/* Builds the combined trust bundle: libcurl's default CA file (when readable) + ca_file. */
static int build_ca_bundle(struct http_client *c, const char *ca_file)
{
	struct buf extra = BUF_INIT, all = BUF_INIT;
	int rc = read_file(ca_file, CA_FILE_MAX, &extra);
	if (rc) {
		LOG_ERROR(c->log, MOD, "cannot read ca_file %s: %s", ca_file, strerror(-rc));
		buf_free(&extra);
		return rc;
	}
	if (!extra.len || !memmem(extra.data, extra.len, "-----BEGIN CERTIFICATE-----", 27)) {
		LOG_ERROR(c->log, MOD, "ca_file %s holds no PEM certificate", ca_file);
		buf_free(&extra);
		return -EINVAL;
	}
	const char *def = NULL;
	CURL *tmp = curl_easy_init();
	if (tmp && curl_easy_getinfo(tmp, CURLINFO_CAINFO, &def) == CURLE_OK && def) {
		int src = read_file(def, CA_FILE_MAX, &all);
		if (src) {
			LOG_WARN(c->log, MOD, "system CA bundle %s unreadable (%s); "
				 "trusting ca_file and the CA path only", def, strerror(-src));
			buf_reset(&all);
		}
	}
	if (tmp)
		curl_easy_cleanup(tmp);
	rc = buf_putc(&all, '\n');
	if (!rc)
		rc = buf_append(&all, extra.data, extra.len);
	buf_free(&extra);
	if (rc) {
		buf_free(&all);
		return -ENOMEM;
	}
	c->ca_len = all.len;
	c->ca_data = buf_steal(&all);
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

CURL *http_pool_get(struct http_client *c)
{
	CURL *h = NULL;
	pthread_mutex_lock(&c->pool_lock);
	if (c->n_idle)
		h = c->idle[--c->n_idle];
	pthread_mutex_unlock(&c->pool_lock);
	return h ? h : curl_easy_init();
}

void http_pool_put(struct http_client *c, CURL *h)
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

unsigned http_next_delay(struct http_client *c, unsigned n)
{
	pthread_mutex_lock(&c->rng_lock);
	unsigned d = http_backoff_ms(&c->rng, n, c->retry.base_delay_ms, c->retry.max_delay_ms);
	pthread_mutex_unlock(&c->rng_lock);
	return d;
}
