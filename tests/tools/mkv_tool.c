/*
 * kvsfs-mkv: drives the mkv reader for the pytest suites and for humans.
 *
 *   kvsfs-mkv dump FILE [--chunk N]          one JSON line per fragment
 *   kvsfs-mkv split FILE OUTDIR [--chunk N]  also writes OUTDIR/fragment-NNNN.mkv per fragment
 *
 * FILE "-" is stdin. The file is streamed in chunks of N bytes (default 65536) through
 * mkv_reader_push, and split cuts the byte stream the way kvsfs does: bytes up to
 * mkv_reader_safe_offset() go to the current fragment's file, the few undecided bytes after it are
 * carried to the next push, and fragment_start(offset) moves the cut. Exit status: 0 on success,
 * 1 on a usage or I/O error, 2 when the reader failed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/buf.h"
#include "kvsfs/log.h"
#include "kvsfs/mkv.h"

struct tool {
	const char *outdir;
	FILE *cur;
	char cur_path[4096];
	uint64_t written; /* stream offset written to cur so far */
	/* bytes not yet written: carry (from carry_off) then the chunk being pushed */
	uint8_t carry[64];
	size_t carry_len;
	uint64_t carry_off;
	const uint8_t *chunk;
	size_t chunk_len;
	int io_error;
};

static void json_str(struct buf *b, const char *s)
{
	buf_putc(b, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			buf_printf(b, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			buf_printf(b, "\\u%04x", *p);
		else
			buf_putc(b, (char)*p);
	}
	buf_putc(b, '"');
}

static void json_opt_str(struct buf *b, const char *key, const char *s)
{
	buf_printf(b, ",\"%s\":", key);
	if (s[0])
		json_str(b, s);
	else
		buf_appendz(b, "null");
}

/* Writes stream bytes [from, to) to the current file from the carry and the current chunk. */
static void write_range(struct tool *t, uint64_t from, uint64_t to)
{
	if (!t->cur || from >= to)
		return;
	uint64_t chunk_off = t->carry_off + t->carry_len;
	for (uint64_t o = from; o < to;) {
		const uint8_t *src;
		size_t n;
		if (o < chunk_off) {
			src = t->carry + (o - t->carry_off);
			n = (size_t)((to < chunk_off ? to : chunk_off) - o);
		} else {
			src = t->chunk + (o - chunk_off);
			n = (size_t)(to - o);
		}
		if (fwrite(src, 1, n, t->cur) != n)
			t->io_error = 1;
		o += n;
	}
	t->written = to;
}

static int on_start(void *opaque, unsigned index, uint64_t offset)
{
	struct tool *t = opaque;
	if (!t->outdir)
		return 0;
	write_range(t, t->written, offset);
	if (t->cur && fclose(t->cur))
		t->io_error = 1;
	snprintf(t->cur_path, sizeof(t->cur_path), "%s/fragment-%04u.mkv", t->outdir, index);
	t->cur = fopen(t->cur_path, "wb");
	if (!t->cur) {
		perror(t->cur_path);
		return -EIO;
	}
	t->written = offset;
	return 0;
}

static int on_end(void *opaque, const struct mkv_fragment *f)
{
	struct tool *t = opaque;
	struct buf b = BUF_INIT;
	buf_printf(&b, "{\"index\":%u,\"offset\":%" PRIu64 ",\"length\":%" PRIu64, f->index, f->offset,
		   f->length);
	buf_printf(&b, ",\"complete\":%s,\"truncated\":%s,\"malformed\":%s,\"error\":%s",
		   (f->flags & MKV_FRAG_COMPLETE) ? "true" : "false",
		   (f->flags & MKV_FRAG_TRUNCATED) ? "true" : "false",
		   (f->flags & MKV_FRAG_MALFORMED) ? "true" : "false",
		   (f->flags & MKV_FRAG_ERROR) ? "true" : "false");
	buf_printf(&b, ",\"flags\":%u", f->flags);
	json_opt_str(&b, "problem", f->problem);
	json_opt_str(&b, "doc_type", f->doc_type);
	json_opt_str(&b, "fragment_number", f->fragment_number);
	if (f->has_server_timestamp)
		buf_printf(&b, ",\"server_timestamp_ms\":%" PRId64, f->server_timestamp_ms);
	else
		buf_appendz(&b, ",\"server_timestamp_ms\":null");
	if (f->has_producer_timestamp)
		buf_printf(&b, ",\"producer_timestamp_ms\":%" PRId64, f->producer_timestamp_ms);
	else
		buf_appendz(&b, ",\"producer_timestamp_ms\":null");
	if (f->has_millis_behind_now)
		buf_printf(&b, ",\"millis_behind_now\":%" PRId64, f->millis_behind_now);
	json_opt_str(&b, "continuation_token", f->continuation_token);
	json_opt_str(&b, "error_code", f->error_code);
	json_opt_str(&b, "error_id", f->error_id);
	json_opt_str(&b, "error_message", f->error_message);
	buf_printf(&b, ",\"timecode_scale\":%" PRIu64 ",\"clusters\":%u,\"unsized_clusters\":%u",
		   f->timecode_scale, f->clusters, f->unsized_clusters);
	if (f->has_cluster_timecode)
		buf_printf(&b, ",\"cluster_timecode\":%" PRIu64, f->cluster_timecode);
	else
		buf_appendz(&b, ",\"cluster_timecode\":null");
	buf_printf(&b, ",\"cluster_offset\":%" PRIu64 ",\"blocks\":%" PRIu64 ",\"duration_ms\":%" PRId64,
		   f->cluster_offset, f->blocks, f->duration_ms);
	buf_appendz(&b, ",\"tracks\":[");
	for (size_t i = 0; i < f->ntracks; i++) {
		const struct mkv_track *k = &f->tracks[i];
		buf_printf(&b, "%s{\"number\":%" PRIu64 ",\"type\":%u,\"declared\":%s,\"codec_id\":",
			   i ? "," : "", k->number, k->type, k->declared ? "true" : "false");
		json_str(&b, k->codec_id);
		buf_printf(&b, ",\"codec_private_size\":%" PRIu64 ",\"width\":%u,\"height\":%u"
			   ",\"sampling_frequency\":%g,\"channels\":%u,\"blocks\":%" PRIu64
			   ",\"keyframes\":%" PRIu64 ",\"frames\":%" PRIu64 ",\"first_timecode\":%" PRId64
			   ",\"last_timecode\":%" PRId64 "}",
			   k->codec_private_size, k->width, k->height, k->sampling_frequency, k->channels,
			   k->blocks, k->keyframes, k->frames, k->first_timecode, k->last_timecode);
	}
	buf_appendz(&b, "],\"tags\":[");
	for (size_t i = 0; i < f->ntags; i++) {
		buf_appendz(&b, i ? ",[" : "[");
		json_str(&b, f->tags[i].name);
		buf_putc(&b, ',');
		json_str(&b, f->tags[i].value);
		buf_printf(&b, ",\"%s\"]", mkv_tag_kind_name(f->tags[i].kind));
	}
	buf_putc(&b, ']');
	if (t->outdir) {
		buf_appendz(&b, ",\"file\":");
		json_str(&b, t->cur_path);
	}
	buf_putc(&b, '}');
	puts(buf_str(&b));
	buf_free(&b);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: kvsfs-mkv dump FILE [--chunk N]\n"
			"       kvsfs-mkv split FILE OUTDIR [--chunk N]\n");
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return usage();
	struct tool t = { 0 };
	const char *cmd = argv[1], *path = argv[2];
	int argi = 3;
	if (strcmp(cmd, "split") == 0) {
		if (argc < 4)
			return usage();
		t.outdir = argv[3];
		argi = 4;
	} else if (strcmp(cmd, "dump") != 0) {
		return usage();
	}
	size_t chunk = 65536;
	for (; argi < argc; argi++) {
		if (strcmp(argv[argi], "--chunk") == 0 && argi + 1 < argc) {
			chunk = strtoul(argv[++argi], NULL, 10);
			if (chunk == 0)
				return usage();
		} else {
			return usage();
		}
	}
	FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (!in) {
		perror(path);
		return 1;
	}
	struct log_ctx lg;
	log_init(&lg, LOG_LEVEL_WARN, stderr);
	struct mkv_callbacks cb = { .opaque = &t, .fragment_start = on_start, .fragment_end = on_end };
	struct mkv_reader *r = mkv_reader_new(&cb, &lg);
	uint8_t *data = malloc(chunk);
	if (!r || !data) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	int rc = 0;
	uint64_t total = 0;
	for (;;) {
		size_t n = fread(data, 1, chunk, in);
		if (n == 0)
			break;
		t.chunk = data;
		t.chunk_len = n;
		rc = mkv_reader_push(r, data, n);
		if (rc)
			break;
		total += n;
		/* write what is decided, carry the rest */
		uint64_t safe = mkv_reader_safe_offset(r);
		write_range(&t, t.written, safe);
		uint8_t keep[64];
		size_t keep_len = (size_t)(total - safe);
		if (keep_len > sizeof(keep)) {
			fprintf(stderr, "reader held back %zu bytes\n", keep_len);
			return 2;
		}
		uint64_t chunk_off = t.carry_off + t.carry_len;
		for (size_t i = 0; i < keep_len; i++) {
			uint64_t o = safe + i;
			keep[i] = o < chunk_off ? t.carry[o - t.carry_off] : data[o - chunk_off];
		}
		memcpy(t.carry, keep, keep_len);
		t.carry_len = keep_len;
		t.carry_off = safe;
		t.chunk = NULL;
		t.chunk_len = 0;
	}
	if (!rc && ferror(in)) {
		perror(path);
		rc = -EIO;
	}
	if (!rc)
		rc = mkv_reader_finish(r);
	if (!rc)
		write_range(&t, t.written, total);
	if (t.cur && fclose(t.cur))
		t.io_error = 1;
	mkv_reader_free(r);
	free(data);
	if (in != stdin)
		fclose(in);
	log_destroy(&lg);
	if (rc) {
		fprintf(stderr, "kvsfs-mkv: %s\n", strerror(-rc));
		return 2;
	}
	return t.io_error ? 1 : 0;
}
