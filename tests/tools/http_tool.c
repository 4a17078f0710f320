/*
 * kvsfs-http: performs HTTP requests with the kvsfs http client, for the pytest suites.
 *
 * usage: kvsfs-http [options] URL
 *   -X METHOD               request method (default GET)
 *   -H 'Name: value'        request header (repeatable)
 *   -d TEXT                 request body from memory
 *   --data-file FILE        request body streamed from FILE through a read callback (rewindable)
 *   --no-rewind             with --data-file: no rewind callback (not retried once sent)
 *   --chunked               with --data-file: send chunked (size unknown)
 *   -o FILE                 write the 2xx body to FILE (streamed; truncated on a retry reset);
 *                           default: stdout, after the request succeeded
 *   --attempts N --base-ms N --max-ms N --total-ms N     retry policy
 *   --not-idempotent        mark the request unsafe to repeat (never retried)
 *   --connect-timeout-ms N --timeout-ms N --low-speed-limit N --low-speed-time N
 *   --ca-file FILE --insecure --seed N
 *   --attempt-header NAME   prepare() sets NAME: <attempt number> before every attempt
 *   --repeat N              do the request N times in sequence (per thread)
 *   --threads T             run T threads sharing one client
 *   --result FILE           write the JSON result there (default: stderr, last line)
 *   -v                      debug logging to stderr
 * Result JSON, single request: {"rc","errno","errname","status","attempts","bytes","type",
 * "message","request_id","curl_code","retryable","throttled","elapsed_ms","headers":{...}}.
 * With --repeat/--threads: {"count","ok","failed","errnos":[...],"bytes":[...]} (bodies dropped).
 * Exit status: 0 when every request succeeded, 1 otherwise, 2 on usage errors.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvsfs/http.h"

struct opts {
	const char *method, *url, *data, *data_file, *out, *result, *ca_file, *attempt_header;
	struct http_headers headers;
	int no_rewind, chunked, not_idempotent, insecure, verbose;
	long attempts, base_ms, max_ms, total_ms, connect_ms, timeout_ms, ls_limit, ls_time;
	long repeat, threads;
	unsigned long long seed;
};

struct file_body {
	FILE *fp;
};

static ssize_t file_read(void *arg, void *dst, size_t len)
{
	struct file_body *fb = arg;
	size_t n = fread(dst, 1, len, fb->fp);
	if (n == 0 && ferror(fb->fp))
		return -EIO;
	return (ssize_t)n;
}

static int file_rewind(void *arg)
{
	struct file_body *fb = arg;
	return fseek(fb->fp, 0, SEEK_SET) == 0 ? 0 : -errno;
}

struct file_sink {
	FILE *fp;
};

static int sink_write(void *arg, const void *data, size_t len)
{
	struct file_sink *s = arg;
	return fwrite(data, 1, len, s->fp) == len ? 0 : -EIO;
}

static int sink_reset(void *arg)
{
	struct file_sink *s = arg;
	fflush(s->fp);
	if (ftruncate(fileno(s->fp), 0) != 0 || fseek(s->fp, 0, SEEK_SET) != 0)
		return -errno;
	return 0;
}

static int count_sink(void *arg, const void *data, size_t len)
{
	(void)arg;
	(void)data;
	(void)len;
	return 0;
}

static int prepare_attempt(void *arg, const struct http_request *req, struct http_headers *h,
			   int attempt)
{
	(void)req;
	const char *name = arg;
	char v[16];
	snprintf(v, sizeof(v), "%d", attempt);
	return http_headers_set(h, name, v);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void base_request(const struct opts *o, struct http_request *r)
{
	memset(r, 0, sizeof(*r));
	r->method = o->method;
	r->url = o->url;
	r->headers = &o->headers;
	r->idempotent = !o->not_idempotent;
	r->timeout_ms = o->timeout_ms;
	r->connect_timeout_ms = o->connect_ms;
	if (o->data) {
		r->body = o->data;
		r->body_len = strlen(o->data);
	}
	if (o->attempt_header) {
		r->prepare = prepare_attempt;
		r->prepare_arg = (void *)o->attempt_header;
	}
}

struct worker {
	const struct opts *o;
	struct http_client *c;
	long n;
	int *errnos;
	long long *bytes;
	int ok;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	for (long i = 0; i < w->n; i++) {
		struct http_request r;
		base_request(w->o, &r);
		r.body_fn = count_sink;
		struct http_response resp;
		int rc = http_perform(w->c, &r, &resp);
		w->errnos[i] = -rc;
		w->bytes[i] = (long long)resp.body_bytes;
		if (!rc)
			w->ok++;
		http_response_free(&resp);
	}
	return NULL;
}

static void emit(const struct opts *o, json_t *res)
{
	char *s = json_dumps(res, JSON_COMPACT | JSON_SORT_KEYS);
	if (o->result) {
		FILE *f = fopen(o->result, "w");
		if (f) {
			fprintf(f, "%s\n", s);
			fclose(f);
		}
	} else {
		fprintf(stderr, "%s\n", s);
	}
	free(s);
}

static int run_many(const struct opts *o, struct http_client *c)
{
	long T = o->threads > 0 ? o->threads : 1, N = o->repeat > 0 ? o->repeat : 1;
	struct worker *ws = calloc((size_t)T, sizeof(*ws));
	pthread_t *tids = calloc((size_t)T, sizeof(*tids));
	int *errnos = calloc((size_t)(T * N), sizeof(int));
	long long *bytes = calloc((size_t)(T * N), sizeof(long long));
	if (!ws || !tids || !errnos || !bytes)
		return 2;
	for (long t = 0; t < T; t++) {
		ws[t] = (struct worker){ o, c, N, errnos + t * N, bytes + t * N, 0 };
		pthread_create(&tids[t], NULL, work, &ws[t]);
	}
	int ok = 0;
	for (long t = 0; t < T; t++) {
		pthread_join(tids[t], NULL);
		ok += ws[t].ok;
	}
	json_t *res = json_object();
	json_t *ea = json_array(), *ba = json_array();
	for (long i = 0; i < T * N; i++) {
		json_array_append_new(ea, json_integer(errnos[i]));
		json_array_append_new(ba, json_integer(bytes[i]));
	}
	json_object_set_new(res, "count", json_integer(T * N));
	json_object_set_new(res, "ok", json_integer(ok));
	json_object_set_new(res, "failed", json_integer(T * N - ok));
	json_object_set_new(res, "errnos", ea);
	json_object_set_new(res, "bytes", ba);
	emit(o, res);
	json_decref(res);
	free(ws);
	free(tids);
	free(errnos);
	free(bytes);
	return ok == T * N ? 0 : 1;
}

static int run_one(const struct opts *o, struct http_client *c)
{
	struct http_request r;
	base_request(o, &r);
	struct file_body fb = { NULL };
	if (o->data_file) {
		fb.fp = fopen(o->data_file, "rb");
		if (!fb.fp) {
			perror(o->data_file);
			return 2;
		}
		fseek(fb.fp, 0, SEEK_END);
		long sz = ftell(fb.fp);
		fseek(fb.fp, 0, SEEK_SET);
		r.read_fn = file_read;
		r.rewind_fn = o->no_rewind ? NULL : file_rewind;
		r.read_arg = &fb;
		r.body_size = o->chunked ? -1 : sz;
	}
	struct file_sink fs = { NULL };
	struct buf mem = BUF_INIT;
	struct http_sink ms = { &mem, 0 };
	if (o->out && strcmp(o->out, "-") != 0) {
		fs.fp = fopen(o->out, "w+b");
		if (!fs.fp) {
			perror(o->out);
			return 2;
		}
		r.body_fn = sink_write;
		r.reset_fn = sink_reset;
		r.body_arg = &fs;
	} else {
		r.body_fn = http_sink_buf;
		r.reset_fn = http_sink_buf_reset;
		r.body_arg = &ms;
	}
	struct http_response resp;
	int64_t t0 = mono_ms();
	int rc = http_perform(c, &r, &resp);
	int64_t el = mono_ms() - t0;
	if (fs.fp)
		fclose(fs.fp);
	else if (!rc)
		fwrite(mem.data ? mem.data : "", 1, mem.len, stdout);
	if (fb.fp)
		fclose(fb.fp);
	buf_free(&mem);

	json_t *res = json_object();
	const char *en = resp.err.err ? strerrorname_np(resp.err.err) : "";
	json_object_set_new(res, "rc", json_integer(rc));
	json_object_set_new(res, "errno", json_integer(resp.err.err));
	json_object_set_new(res, "errname", json_string(en ? en : ""));
	json_object_set_new(res, "status", json_integer(resp.status));
	json_object_set_new(res, "attempts", json_integer(resp.attempts));
	json_object_set_new(res, "bytes", json_integer((json_int_t)resp.body_bytes));
	json_object_set_new(res, "type", json_string(resp.err.type));
	json_object_set_new(res, "message", json_string(resp.err.message));
	json_object_set_new(res, "request_id", json_string(resp.err.request_id));
	json_object_set_new(res, "curl_code", json_integer(resp.err.curl_code));
	json_object_set_new(res, "retryable", json_integer(resp.err.retryable));
	json_object_set_new(res, "throttled", json_integer(resp.err.throttled));
	json_object_set_new(res, "elapsed_ms", json_integer(el));
	json_t *hs = json_object();
	for (size_t i = 0; i < resp.headers.n; i++) {
		char lower[256];
		snprintf(lower, sizeof(lower), "%s", resp.headers.v[i].name);
		for (char *p = lower; *p; p++)
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
		json_object_set_new(hs, lower, json_string(resp.headers.v[i].value));
	}
	json_object_set_new(res, "headers", hs);
	char line[1024];
	json_object_set_new(res, "summary", json_string(awserr_format(&resp.err, line,
								       sizeof(line))));
	emit(o, res);
	json_decref(res);
	http_response_free(&resp);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	memset(&o, 0, sizeof(o));
	o.method = "GET";
	enum { O_DATAFILE = 256, O_NOREWIND, O_CHUNKED, O_ATT, O_BASE, O_MAX, O_TOTAL, O_NOTIDEM,
	       O_CONN, O_TMO, O_LSL, O_LST, O_CA, O_INSEC, O_SEED, O_ATTH, O_REPEAT, O_THREADS,
	       O_RESULT };
	static const struct option lo[] = {
		{ "data-file", required_argument, 0, O_DATAFILE },
		{ "no-rewind", no_argument, 0, O_NOREWIND },
		{ "chunked", no_argument, 0, O_CHUNKED },
		{ "attempts", required_argument, 0, O_ATT },
		{ "base-ms", required_argument, 0, O_BASE },
		{ "max-ms", required_argument, 0, O_MAX },
		{ "total-ms", required_argument, 0, O_TOTAL },
		{ "not-idempotent", no_argument, 0, O_NOTIDEM },
		{ "connect-timeout-ms", required_argument, 0, O_CONN },
		{ "timeout-ms", required_argument, 0, O_TMO },
		{ "low-speed-limit", required_argument, 0, O_LSL },
		{ "low-speed-time", required_argument, 0, O_LST },
		{ "ca-file", required_argument, 0, O_CA },
		{ "insecure", no_argument, 0, O_INSEC },
		{ "seed", required_argument, 0, O_SEED },
		{ "attempt-header", required_argument, 0, O_ATTH },
		{ "repeat", required_argument, 0, O_REPEAT },
		{ "threads", required_argument, 0, O_THREADS },
		{ "result", required_argument, 0, O_RESULT },
		{ 0, 0, 0, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "X:H:d:o:v", lo, NULL)) != -1) {
		switch (ch) {
		case 'X': o.method = optarg; break;
		case 'H': {
			char *colon = strchr(optarg, ':');
			if (!colon) {
				fprintf(stderr, "bad header: %s\n", optarg);
				return 2;
			}
			*colon = '\0';
			const char *v = colon + 1;
			while (*v == ' ')
				v++;
			if (http_headers_add(&o.headers, optarg, v)) {
				fprintf(stderr, "bad header name/value\n");
				return 2;
			}
			break;
		}
		case 'd': o.data = optarg; break;
		case 'o': o.out = optarg; break;
		case 'v': o.verbose = 1; break;
		case O_DATAFILE: o.data_file = optarg; break;
		case O_NOREWIND: o.no_rewind = 1; break;
		case O_CHUNKED: o.chunked = 1; break;
		case O_ATT: o.attempts = atol(optarg); break;
		case O_BASE: o.base_ms = atol(optarg); break;
		case O_MAX: o.max_ms = atol(optarg); break;
		case O_TOTAL: o.total_ms = atol(optarg); break;
		case O_NOTIDEM: o.not_idempotent = 1; break;
		case O_CONN: o.connect_ms = atol(optarg); break;
		case O_TMO: o.timeout_ms = atol(optarg); break;
		case O_LSL: o.ls_limit = atol(optarg); break;
		case O_LST: o.ls_time = atol(optarg); break;
		case O_CA: o.ca_file = optarg; break;
		case O_INSEC: o.insecure = 1; break;
		case O_SEED: o.seed = strtoull(optarg, NULL, 0); break;
		case O_ATTH: o.attempt_header = optarg; break;
		case O_REPEAT: o.repeat = atol(optarg); break;
		case O_THREADS: o.threads = atol(optarg); break;
		case O_RESULT: o.result = optarg; break;
		default:
			fprintf(stderr, "usage: kvsfs-http [options] URL (see the source header)\n");
			return 2;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: kvsfs-http [options] URL\n");
		return 2;
	}
	o.url = argv[optind];
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct log_ctx lg;
	log_init(&lg, o.verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN, stderr);
	struct http_client_opts co;
	http_client_opts_init(&co);
	co.log = &lg;
	co.connect_timeout_ms = o.connect_ms;
	co.low_speed_limit = o.ls_limit;
	co.low_speed_time_s = o.ls_time;
	co.ca_file = o.ca_file;
	co.no_verify_ssl = o.insecure;
	co.retry.max_attempts = (int)o.attempts;
	co.retry.base_delay_ms = (unsigned)o.base_ms;
	co.retry.max_delay_ms = (unsigned)o.max_ms;
	co.retry.max_total_ms = (unsigned)o.total_ms;
	co.seed = o.seed;
	struct http_client *c = NULL;
	int rc = http_client_new(&co, &c);
	if (rc) {
		json_t *res = json_object();
		json_object_set_new(res, "rc", json_integer(rc));
		json_object_set_new(res, "errno", json_integer(-rc));
		json_object_set_new(res, "client_error", json_true());
		emit(&o, res);
		json_decref(res);
		curl_global_cleanup();
		log_destroy(&lg);
		http_headers_free(&o.headers);
		return 1;
	}
	int ret = (o.repeat > 0 || o.threads > 0) ? run_many(&o, c) : run_one(&o, c);
	http_client_free(c);
	http_headers_free(&o.headers);
	curl_global_cleanup();
	log_destroy(&lg);
	return ret;
}
