/*
 * kvsfs-s3: every operation of the S3 client (src/s3/s3.c) from the command line, for the pytest
 * suites. Credentials come from the normal chain (environment, shared files, ...), never argv.
 *
 *   kvsfs-s3 [options] COMMAND ARGS...
 * options:
 *   -d                   debug log on stderr
 *   --profile P --region R
 *   --endpoint URL       S3 endpoint (else the resolved s3 endpoint of the region)
 *   --bucket B           required
 *   --virtual-host       virtual-host addressing (default: path-style)
 *   --page-size N        listing page size (max-keys / max-uploads)
 *   --max N              list: stop after N entries
 *   --meta NAME=VALUE    user metadata for put/put-mem/copy --replace/mpu-create (repeatable)
 *   --content-type T
 *   --replace            copy: metadata directive REPLACE (default COPY)
 *   --corrupt-md5        put/put-mem/mpu-part/upload: send a wrong Content-MD5 (a test-only
 *                        setting of the client, src/s3/s3_testing.h)
 *   --max-attempts N     HTTP attempts per request (default 5)
 *   -o FILE              get: write the body to FILE (truncated again before a retry)
 * commands:
 *   head-bucket
 *   head KEY                       JSON {size, last_modified, etag, content_type, meta{}}
 *   get KEY [OFFSET [LEN]]         body to stdout or -o FILE
 *   put KEY FILE [OFFSET [LEN]]    PutObject from the fd range; prints the ETag
 *   put-mem KEY FILE               PutObject from memory (FILE "-" = stdin); prints the ETag
 *   delete KEY
 *   copy SRC DST                   prints the ETag
 *   list [PREFIX [DELIMITER]]      JSON {objects[{key,size,last_modified,etag}], prefixes[]}
 *   mpu-create KEY                 prints the upload id
 *   mpu-part KEY ID N FILE OFFSET LEN   prints the part ETag
 *   mpu-complete KEY ID N:ETAG...  prints the object ETag
 *   mpu-abort KEY ID
 *   mpu-list [PREFIX]              JSON [{key, upload_id, initiated}]
 *   upload KEY FILE PARTSIZE       create + every part + complete (abort on failure)
 * Exit status: 0; on failure one line "error: ..." on stderr and the errno as the status
 * (ENOENT 2, EIO 5, EACCES 13, EINVAL 22, ...); 100 for bad usage.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvsfs/awsconfig.h"
#include "kvsfs/awsreq.h"
#include "kvsfs/buf.h"
#include "kvsfs/creds.h"
#include "kvsfs/http.h"
#include "kvsfs/log.h"
#include "kvsfs/s3.h"
#include "s3_testing.h"

static void usage(void)
{
	fprintf(stderr, "usage: kvsfs-s3 [-d] [--endpoint URL] --bucket B [--virtual-host] "
		"[--page-size N] [--max N] [--meta K=V]... [--content-type T] [--replace] "
		"[--corrupt-md5] [--max-attempts N] [-o FILE] COMMAND ARGS...\n");
	exit(100);
}

struct out_file {
	int fd;
};

static int write_out(void *arg, const void *data, size_t len)
{
	struct out_file *o = arg;
	const char *p = data;
	while (len) {
		ssize_t w = write(o->fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -EIO;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int reset_out(void *arg)
{
	struct out_file *o = arg;
	if (ftruncate(o->fd, 0) || lseek(o->fd, 0, SEEK_SET) < 0)
		return -errno;
	return 0;
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	printf("%s\n", s ? s : "null");
	free(s);
	json_decref(j);
}

static int report(int rc, const struct awserr *e)
{
	char line[1024];
	if (!rc)
		return 0;
	if (e && e->err)
		fprintf(stderr, "error: %s\n", awserr_format(e, line, sizeof(line)));
	else
		fprintf(stderr, "error: %s\n", strerror(-rc));
	return -rc;
}

static int open_in(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fprintf(stderr, "error: cannot open %s: %s\n", path, strerror(errno));
	return fd;
}

static int upload_file(struct s3_client *s3, const char *key, const char *path, off_t part_size,
		       const struct s3_put_opts *po, struct awserr *e)
{
	int fd = open_in(path);
	if (fd < 0)
		return -ENOENT;
	struct stat st;
	char *id = NULL;
	struct s3_part *parts = NULL;
	int rc = fstat(fd, &st) ? -errno : 0;
	if (!rc && part_size <= 0)
		rc = -EINVAL;
	size_t n = 0;
	if (!rc) {
		n = st.st_size ? (size_t)((st.st_size + part_size - 1) / part_size) : 1;
		parts = calloc(n, sizeof(*parts));
		if (!parts)
			rc = -ENOMEM;
	}
	if (!rc)
		rc = s3_mpu_create(s3, key, po, &id, e);
	for (size_t i = 0; !rc && i < n; i++) {
		off_t off = (off_t)i * part_size;
		off_t len = st.st_size - off < part_size ? st.st_size - off : part_size;
		rc = s3_mpu_upload_part(s3, key, id, (int)i + 1, fd, off, len, &parts[i], e);
	}
	char etag[S3_ETAG_MAX];
	if (!rc)
		rc = s3_mpu_complete(s3, key, id, parts, n, etag, e);
	if (!rc) {
		printf("%s\n", etag);
	} else if (id) {
		struct awserr ae;
		s3_mpu_abort(s3, key, id, &ae);
	}
	free(id);
	free(parts);
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	const char *profile = NULL, *region = NULL, *endpoint = NULL, *bucket = NULL;
	const char *content_type = NULL, *out_path = NULL;
	int debug = 0, vhost = 0, page = 0, replace = 0, corrupt = 0, max_attempts = 0, i;
	long max_entries = 0;
	struct s3_meta meta = S3_META_INIT;

	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		const char *a = argv[i];
		int more = i + 1 < argc;
		if (!strcmp(a, "-d"))
			debug = 1;
		else if (!strcmp(a, "--virtual-host"))
			vhost = 1;
		else if (!strcmp(a, "--replace"))
			replace = 1;
		else if (!strcmp(a, "--corrupt-md5"))
			corrupt = 1;
		else if (more && !strcmp(a, "--profile"))
			profile = argv[++i];
		else if (more && !strcmp(a, "--region"))
			region = argv[++i];
		else if (more && !strcmp(a, "--endpoint"))
			endpoint = argv[++i];
		else if (more && !strcmp(a, "--bucket"))
			bucket = argv[++i];
		else if (more && !strcmp(a, "--page-size"))
			page = atoi(argv[++i]);
		else if (more && !strcmp(a, "--max"))
			max_entries = atol(argv[++i]);
		else if (more && !strcmp(a, "--max-attempts"))
			max_attempts = atoi(argv[++i]);
		else if (more && !strcmp(a, "--content-type"))
			content_type = argv[++i];
		else if (more && !strcmp(a, "-o"))
			out_path = argv[++i];
		else if (more && !strcmp(a, "--meta")) {
			const char *kv = argv[++i], *eq = strchr(kv, '=');
			if (!eq || eq == kv)
				usage();
			char *name = strndup(kv, (size_t)(eq - kv));
			if (!name || s3_meta_add(&meta, name, eq + 1)) {
				fprintf(stderr, "error: bad metadata %s\n", kv);
				exit(100);
			}
			free(name);
		} else
			usage();
	}
	if (i >= argc || !bucket)
		usage();
	const char *cmd = argv[i++];
	int nargs = argc - i;
	char **args = argv + i;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct log_ctx lg;
	log_init(&lg, debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN, stderr);
	struct awsconfig_files files = { 0 };
	struct awsconfig_settings settings = { 0 };
	struct creds_provider *cp = NULL;
	struct http_client *http = NULL;
	struct s3_client *s3 = NULL;
	struct awserr e;
	char err[512];
	int rc = 0, status = 1;
	awserr_clear(&e);

	if (awsconfig_files_load(&files, profile, NULL, &lg, err, sizeof(err)) ||
	    awsconfig_resolve(&settings, &files, region, NULL, endpoint, NULL, err, sizeof(err))) {
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
	ho.retry.max_total_ms = 30000;
	ho.retry.max_attempts = max_attempts;
	ho.low_speed_time_s = 20;
	if (http_client_new(&ho, &http)) {
		fprintf(stderr, "error: http client set-up failed\n");
		goto out;
	}
	struct awsreq_ctx ctx = { .http = http, .creds = cp, .log = &lg };
	snprintf(ctx.region, sizeof(ctx.region), "%s", settings.region);
	struct s3_client_opts so = {
		.aws = &ctx, .endpoint = settings.s3_endpoint, .bucket = bucket,
		.path_style = !vhost, .list_page_size = page,
	};
	struct s3_testing st = { .corrupt_md5 = corrupt };
	rc = s3_client_new_testing(&so, &st, &s3);
	if (rc) {
		fprintf(stderr, "error: S3 client set-up failed: %s\n", strerror(-rc));
		status = -rc;
		goto out;
	}
	struct s3_put_opts po = { .meta = &meta, .content_type = content_type };
	char etag[S3_ETAG_MAX];

	if (!strcmp(cmd, "head-bucket") && nargs == 0) {
		rc = s3_head_bucket(s3, &e);
	} else if (!strcmp(cmd, "head") && nargs == 1) {
		struct s3_object_info info;
		rc = s3_head_object(s3, args[0], &info, &e);
		if (!rc) {
			json_t *m = json_object();
			for (size_t k = 0; k < info.meta.n; k++)
				json_object_set_new(m, info.meta.v[k].name,
						    json_string(info.meta.v[k].value));
			print_json(json_pack("{sI sI ss ss? so}", "size", (json_int_t)info.size,
					     "last_modified", (json_int_t)info.last_modified,
					     "etag", info.etag, "content_type",
					     info.content_type,
					     "meta", m));
		}
		s3_object_info_free(&info);
	} else if (!strcmp(cmd, "get") && nargs >= 1 && nargs <= 3) {
		struct out_file of = { .fd = 1 };
		int64_t off = nargs >= 2 ? atoll(args[1]) : 0, len = nargs >= 3 ? atoll(args[2]) : -1;
		if (out_path) {
			of.fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (of.fd < 0) {
				fprintf(stderr, "error: cannot create %s\n", out_path);
				goto out;
			}
		}
		rc = s3_get_object(s3, args[0], off, len, write_out, out_path ? reset_out : NULL,
				   &of, NULL, &e);
		if (out_path)
			close(of.fd);
	} else if (!strcmp(cmd, "put") && nargs >= 2 && nargs <= 4) {
		int fd = open_in(args[1]);
		if (fd < 0)
			goto out;
		off_t off = nargs >= 3 ? atoll(args[2]) : 0, len = nargs >= 4 ? atoll(args[3]) : -1;
		rc = s3_put_object_fd(s3, args[0], fd, off, len, &po, etag, &e);
		close(fd);
		if (!rc)
			printf("%s\n", etag);
	} else if (!strcmp(cmd, "put-mem") && nargs == 2) {
		struct buf data = BUF_INIT;
		FILE *f = strcmp(args[1], "-") ? fopen(args[1], "rb") : stdin;
		if (!f) {
			fprintf(stderr, "error: cannot open %s\n", args[1]);
			goto out;
		}
		char tmp[65536];
		size_t got;
		while ((got = fread(tmp, 1, sizeof(tmp), f)) > 0)
			buf_append(&data, tmp, got);
		if (f != stdin)
			fclose(f);
		rc = s3_put_object_mem(s3, args[0], data.data, data.len, &po, etag, &e);
		buf_free(&data);
		if (!rc)
			printf("%s\n", etag);
	} else if (!strcmp(cmd, "delete") && nargs == 1) {
		rc = s3_delete_object(s3, args[0], &e);
	} else if (!strcmp(cmd, "copy") && nargs == 2) {
		rc = s3_copy_object(s3, args[0], args[1], replace ? S3_META_REPLACE : S3_META_COPY,
				    &po, etag, &e);
		if (!rc)
			printf("%s\n", etag);
	} else if (!strcmp(cmd, "list") && nargs <= 2) {
		struct s3xml_list l = { 0 };
		rc = s3_list_objects(s3, nargs >= 1 ? args[0] : NULL, nargs >= 2 ? args[1] : NULL,
				     max_entries > 0 ? (size_t)max_entries : 0, &l, &e);
		if (!rc) {
			json_t *objs = json_array(), *pres = json_array();
			for (size_t k = 0; k < l.n_objects; k++)
				json_array_append_new(objs, json_pack("{ss sI sI ss}",
					"key", l.objects[k].key, "size", (json_int_t)l.objects[k].size,
					"last_modified", (json_int_t)l.objects[k].last_modified,
					"etag", l.objects[k].etag));
			for (size_t k = 0; k < l.n_prefixes; k++)
				json_array_append_new(pres, json_string(l.prefixes[k]));
			print_json(json_pack("{so so sb}", "objects", objs, "prefixes", pres,
					     "truncated", l.truncated));
		}
		s3xml_list_free(&l);
	} else if (!strcmp(cmd, "mpu-create") && nargs == 1) {
		char *id = NULL;
		rc = s3_mpu_create(s3, args[0], &po, &id, &e);
		if (!rc)
			printf("%s\n", id);
		free(id);
	} else if (!strcmp(cmd, "mpu-part") && nargs == 6) {
		int fd = open_in(args[3]);
		if (fd < 0)
			goto out;
		struct s3_part part;
		rc = s3_mpu_upload_part(s3, args[0], args[1], atoi(args[2]), fd, atoll(args[4]),
					atoll(args[5]), &part, &e);
		close(fd);
		if (!rc)
			printf("%s\n", part.etag);
	} else if (!strcmp(cmd, "mpu-complete") && nargs >= 3) {
		size_t n = (size_t)nargs - 2;
		struct s3_part *parts = calloc(n, sizeof(*parts));
		if (!parts)
			goto out;
		for (size_t k = 0; k < n; k++) {
			const char *a = args[2 + k], *colon = strchr(a, ':');
			if (!colon) {
				free(parts);
				usage();
			}
			parts[k].number = atoi(a);
			snprintf(parts[k].etag, sizeof(parts[k].etag), "%s", colon + 1);
		}
		rc = s3_mpu_complete(s3, args[0], args[1], parts, n, etag, &e);
		free(parts);
		if (!rc)
			printf("%s\n", etag);
	} else if (!strcmp(cmd, "mpu-abort") && nargs == 2) {
		rc = s3_mpu_abort(s3, args[0], args[1], &e);
	} else if (!strcmp(cmd, "mpu-list") && nargs <= 1) {
		struct s3xml_uploads u = { 0 };
		rc = s3_mpu_list(s3, nargs ? args[0] : NULL, &u, &e);
		if (!rc) {
			json_t *a = json_array();
			for (size_t k = 0; k < u.n; k++)
				json_array_append_new(a, json_pack("{ss ss sI}", "key", u.v[k].key,
					"upload_id", u.v[k].upload_id,
					"initiated", (json_int_t)u.v[k].initiated));
			print_json(a);
		}
		s3xml_uploads_free(&u);
	} else if (!strcmp(cmd, "upload") && nargs == 3) {
		rc = upload_file(s3, args[0], args[1], (off_t)atoll(args[2]), &po, &e);
	} else {
		usage();
	}
	fflush(stdout);
	status = report(rc, &e);
out:
	s3_client_free(s3);
	http_client_free(http);
	creds_provider_free(cp);
	awsconfig_settings_free(&settings);
	awsconfig_files_free(&files);
	s3_meta_free(&meta);
	log_destroy(&lg);
	curl_global_cleanup();
	return status;
}
