/*
 * kvsfs-aws: performs signed AWS requests through the whole AWS core (shared config files,
 * credentials chain, region, SigV4, HTTP with retries, typed errors), for the pytest suites.
 *
 *   kvsfs-aws [-d] [--profile P] [--region R] [--endpoint URL] [--service S] [--repeat N]
 *             json PATH [BODY]
 *   kvsfs-aws [-d] ... [--s3] [--header 'Name: value'] raw METHOD URL [BODY]
 *
 * json: POSTs BODY (default "{}") to ENDPOINT+PATH and prints the JSON reply on stdout.
 * raw: sends METHOD to URL with BODY and prints the response body on stdout.
 * Debug logs (-d) go to stderr. On failure prints one line "error: ..." (awserr_format) on stderr
 * and exits 1. Secrets are never accepted on the command line: credentials come from the chain.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvsfs/awsconfig.h"
#include "kvsfs/awsreq.h"
#include "kvsfs/buf.h"
#include "kvsfs/creds.h"
#include "kvsfs/http.h"
#include "kvsfs/json.h"
#include "kvsfs/log.h"

static int write_stdout(void *arg, const void *data, size_t len)
{
	(void)arg;
	return fwrite(data, 1, len, stdout) == len ? 0 : -EIO;
}

static void usage(void)
{
	fprintf(stderr, "usage: kvsfs-aws [-d] [--profile P] [--region R] [--endpoint URL] "
		"[--service S] [--s3] [--header H] [--repeat N] json PATH [BODY] | raw METHOD URL [BODY]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *profile = NULL, *region = NULL, *endpoint = NULL, *service = NULL;
	int debug = 0, s3 = 0, repeat = 1, i;
	struct http_headers extra = HTTP_HEADERS_INIT;
	char err[512];

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-d"))
			debug = 1;
		else if (!strcmp(argv[i], "--s3"))
			s3 = 1;
		else if (i + 1 < argc && !strcmp(argv[i], "--profile"))
			profile = argv[++i];
		else if (i + 1 < argc && !strcmp(argv[i], "--region"))
			region = argv[++i];
		else if (i + 1 < argc && !strcmp(argv[i], "--endpoint"))
			endpoint = argv[++i];
		else if (i + 1 < argc && !strcmp(argv[i], "--service"))
			service = argv[++i];
		else if (i + 1 < argc && !strcmp(argv[i], "--repeat"))
			repeat = atoi(argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--header")) {
			const char *h = argv[++i], *colon = strchr(h, ':');
			if (!colon)
				usage();
			char *name = strndup(h, (size_t)(colon - h));
			const char *v = colon + 1;
			while (*v == ' ')
				v++;
			http_headers_add(&extra, name, v);
			free(name);
		} else
			usage();
	}
	if (i >= argc)
		usage();
	const char *mode = argv[i++];

	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct log_ctx lg;
	log_init(&lg, debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN, stderr);

	struct awsconfig_files files = { 0 };
	struct awsconfig_settings settings = { 0 };
	struct creds_provider *cp = NULL;
	struct http_client *http = NULL;
	int rc = 1;

	if (awsconfig_files_load(&files, profile, NULL, &lg, err, sizeof(err)) ||
	    awsconfig_resolve(&settings, &files, region, endpoint, NULL, NULL, err, sizeof(err))) {
		fprintf(stderr, "error: %s\n", err);
		goto out;
	}
	struct creds_options co = { .profile = profile };
	if (creds_provider_new(&cp, &co, &files, &lg, err, sizeof(err))) {
		fprintf(stderr, "error: %s\n", err);
		goto out;
	}
	struct http_client_opts ho;
	http_client_opts_init(&ho);
	ho.log = &lg;
	ho.retry.max_total_ms = 20000;
	if (http_client_new(&ho, &http)) {
		fprintf(stderr, "error: http client set-up failed\n");
		goto out;
	}
	struct awsreq_ctx ctx = { .http = http, .creds = cp, .log = &lg };
	snprintf(ctx.region, sizeof(ctx.region), "%s", settings.region);

	for (int n = 0; n < repeat; n++) {
		struct awserr ae;
		awserr_clear(&ae);
		if (!strcmp(mode, "json") && i < argc) {
			json_t *body = NULL, *reply = NULL;
			if (i + 1 < argc) {
				if (json_parse_object(argv[i + 1], strlen(argv[i + 1]), 0, &body, err, sizeof(err))) {
					fprintf(stderr, "error: bad JSON body: %s\n", err);
					goto out;
				}
			}
			int r = awsreq_json(&ctx, service, settings.kvs_endpoint, argv[i], body, 1, 0,
					    &reply, &ae);
			json_decref(body);
			if (r) {
				fprintf(stderr, "error: %s\n", awserr_format(&ae, err, sizeof(err)));
				goto out;
			}
			char *text = json_dump_compact(reply);
			printf("%s\n", text ? text : "");
			free(text);
			json_decref(reply);
		} else if (!strcmp(mode, "raw") && i + 1 < argc) {
			const char *body = i + 2 < argc ? argv[i + 2] : NULL;
			struct awsreq r = {
				.service = service ? service : (s3 ? "s3" : "kinesisvideo"),
				.method = argv[i],
				.url = argv[i + 1],
				.headers = &extra,
				.s3 = s3,
				.payload = AWSREQ_PAYLOAD_SHA256,
				.body = body,
				.body_len = body ? strlen(body) : 0,
				.body_fn = write_stdout,
				.idempotent = 1,
			};
			struct http_response resp;
			int res = awsreq_perform(&ctx, &r, &resp);
			if (res) {
				fprintf(stderr, "error: %s\n", awserr_format(&resp.err, err, sizeof(err)));
				http_response_free(&resp);
				goto out;
			}
			http_response_free(&resp);
		} else {
			usage();
		}
	}
	fflush(stdout);
	rc = 0;
out:
	http_client_free(http);
	creds_provider_free(cp);
	awsconfig_settings_free(&settings);
	awsconfig_files_free(&files);
	http_headers_free(&extra);
	log_destroy(&lg);
	curl_global_cleanup();
	return rc;
}
