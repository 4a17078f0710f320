/*
 * Fuzz target for s3xml: S3's XML replies (listings, multipart results, copy results). Every
 * parser runs on the whole input; results are checked for consistency (strings NUL-terminated,
 * counts within capacity, ETags bounded and free of control bytes), and the low-level helpers
 * (find, decode, time, escape) run on the input too. Must never crash, hang or leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/buf.h"
#include "kvsfs/s3xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_etag(const char *e)
{
	size_t n = strnlen(e, S3XML_ETAG_MAX);
	if (n >= S3XML_ETAG_MAX)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)e[i] < 0x20 || e[i] == 0x7f)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;

	struct s3xml_list l = { 0 };
	s3xml_parse_list_v2(p, size, &l);
	if (l.n_objects > l.cap_objects || l.n_prefixes > l.cap_prefixes)
		abort();
	for (size_t i = 0; i < l.n_objects; i++) {
		if (!l.objects[i].key)
			abort();
		(void)strlen(l.objects[i].key);
		check_etag(l.objects[i].etag);
	}
	for (size_t i = 0; i < l.n_prefixes; i++)
		(void)strlen(l.prefixes[i]);
	/* a second page appends */
	size_t before = l.n_objects;
	s3xml_parse_list_v2(p, size, &l);
	if (l.n_objects < before)
		abort();
	s3xml_list_free(&l);

	struct s3xml_uploads u = { 0 };
	if (s3xml_parse_list_uploads(p, size, &u) == 0)
		for (size_t i = 0; i < u.n; i++)
			if (!u.v[i].key || !u.v[i].upload_id || !u.v[i].upload_id[0])
				abort();
	s3xml_uploads_free(&u);

	char *id = NULL;
	if (s3xml_parse_initiate(p, size, &id) == 0 && (!id || !id[0]))
		abort();
	free(id);

	char etag[S3XML_ETAG_MAX];
	s3xml_parse_etag_result(p, size, "CompleteMultipartUploadResult", etag);
	check_etag(etag);
	s3xml_parse_etag_result(p, size, "CopyObjectResult", etag);
	check_etag(etag);

	char root[16];
	s3xml_root(p, size, root, sizeof(root));
	if (strnlen(root, sizeof(root)) >= sizeof(root))
		abort();

	const char *v;
	size_t vl;
	if (s3xml_find(p, size, "Key", &v, &vl) == 1 && (v < p || v + vl > p + size))
		abort();

	char *d = NULL;
	if (s3xml_decode(p, size, &d) == 0) {
		if (strlen(d) > size * 4)
			abort();
		free(d);
	}
	s3xml_etag_clean(p, size, etag);
	check_etag(etag);
	s3xml_parse_time(p, size);

	struct buf b = BUF_INIT;
	if (s3xml_escape(&b, p, size) == 0 && b.len < size)
		abort();
	buf_free(&b);
	return 0;
}
