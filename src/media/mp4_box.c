/*
 * mp4_box: ISO BMFF boxes, read and written (see src/media/mp4_internal.h).
 *
 * Reading: mp4_box_at parses one box inside a parent's remaining bytes and refuses any size
 * that overruns it, so walks never leave the buffer; mp4_take_tbl checks a table's declared
 * entry count against its payload before anything reads an entry, so no access is sized from
 * an unchecked count. Writing: a box is opened with its size left 0 and patched when closed;
 * every writer step takes the error so far (int *rc) and does nothing once it is set, so a
 * sequence of writes checks for failure once at the end.
 * Errors: the first failure of an operation is kept as its reason and logged once (struct ectx).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kvsfs/fsutil.h"
#include "kvsfs/log.h"
#include "mp4_internal.h"

int mp4_fail(struct ectx *e, int err, const char *fmt, ...)
{
	if (e->set)
		return err;
	e->set = 1;
	char msg[MP4_REASON_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (e->reason && e->reason_len) {
		strncpy(e->reason, msg, e->reason_len - 1);
		e->reason[e->reason_len - 1] = '\0';
	}
	LOG_WARN(e->lg, MP4_MOD, "%s", msg);
	return err;
}

const char *mp4_in_name(const struct mp4_input *in)
{
	return in->name ? in->name : "input";
}

void mp4_fourcc_str(uint32_t t, char out[5])
{
	for (int i = 0; i < 4; i++) {
		unsigned char c = (unsigned char)(t >> (24 - 8 * i));
		out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	out[4] = '\0';
}


/* Parses the box at p with avail bytes left in its parent. Returns 0, 1 (fewer than 8 bytes
 * left: the end), or -EBADMSG with a reason. */
int mp4_box_at(struct ectx *e, const uint8_t *p, size_t avail, struct box *b)
{
	if (avail < 8)
		return 1;
	uint64_t size = rd32(p);
	size_t hdr = 8;
	b->type = rd32(p + 4);
	if (size == 1) {
		if (avail < 16)
			return mp4_fail(e, -EBADMSG, "truncated 64-bit box header");
		size = rd64(p + 8);
		hdr = 16;
	} else if (size == 0) {
		size = avail;
	}
	if (b->type == FOURCC('u', 'u', 'i', 'd'))
		hdr += 16;
	char t[5];
	mp4_fourcc_str(b->type, t);
	if (size < hdr)
		return mp4_fail(e, -EBADMSG, "box '%s' too small (%llu bytes)", t, (unsigned long long)size);
	if (size > avail)
		return mp4_fail(e, -EBADMSG, "box '%s' (%llu bytes) overruns its parent (%zu left)", t,
				(unsigned long long)size, avail);
	b->start = p;
	b->size = (size_t)size;
	b->p = p + hdr;
	b->len = (size_t)size - hdr;
	return 0;
}

int mp4_full_box(struct ectx *e, const struct box *b, size_t min_len, const char *what)
{
	if (b->len < min_len)
		return mp4_fail(e, -EBADMSG, "%s box too short (%zu bytes)", what, b->len);
	return 0;
}

/* Takes a "version/flags, u32 count, count * esize" table (after skip extra bytes before the count). */
int mp4_take_tbl(struct ectx *e, const struct box *b, struct tbl *t, size_t skip, size_t esize,
		 const char *what)
{
	if (t->present)
		return mp4_fail(e, -EBADMSG, "duplicate %s box", what);
	int rc = mp4_full_box(e, b, 8 + skip, what);
	if (rc)
		return rc;
	t->present = 1;
	t->p = b->p;
	t->len = b->len;
	t->version = b->p[0];
	t->count = rd32(b->p + 4 + skip);
	t->ent = b->p + 8 + skip;
	if (esize && (uint64_t)t->count > (b->len - 8 - skip) / esize)
		return mp4_fail(e, -EBADMSG, "%s declares %u entries but holds %zu bytes", what, t->count,
				b->len - 8 - skip);
	return 0;
}

int mp4_in_read(const struct mp4_input *in, void *buf, size_t len, uint64_t off)
{
	if (in->fd < 0) {
		if (off > in->mem_len || len > in->mem_len - off)
			return -EIO;
		memcpy(buf, (const uint8_t *)in->mem + off, len);
		return 0;
	}
	return fsutil_pread_all(in->fd, buf, len, off);
}

size_t mp4_box_begin(struct buf *b, uint32_t type, int *rc)
{
	size_t at = b->len;
	if (!*rc)
		*rc = put32(b, 0);
	if (!*rc)
		*rc = put32(b, type);
	return at;
}

void mp4_box_end(struct buf *b, size_t at, int *rc)
{
	if (*rc)
		return;
	if (b->len - at > UINT32_MAX) {
		*rc = -EFBIG;
		return;
	}
	wr32((uint8_t *)b->data + at, (uint32_t)(b->len - at));
}

void mp4_copy_box(struct buf *o, const struct box *b, int *rc)
{
	if (!*rc)
		*rc = buf_append(o, b->start, b->size);
}

/* Rewrites mvhd/tkhd/mdhd with a new duration (dur_at: duration offset in a v0 payload). */
void mp4_time_box(struct buf *o, const struct box *b, uint64_t dur, int is_tkhd, int *rc)
{
	if (*rc)
		return;
	size_t at = mp4_box_begin(o, b->type, rc);
	if (b->p[0] == 1) {
		*rc = *rc ? *rc : buf_append(o, b->p, b->len);
		if (!*rc)
			wr64((uint8_t *)o->data + at + 8 + (is_tkhd ? 28 : 24), dur);
	} else if (dur <= UINT32_MAX) {
		*rc = *rc ? *rc : buf_append(o, b->p, b->len);
		if (!*rc)
			wr32((uint8_t *)o->data + at + 8 + (is_tkhd ? 20 : 16), (uint32_t)dur);
	} else {
		uint8_t h[4] = { 1, b->p[1], b->p[2], b->p[3] };
		if (!*rc)
			*rc = buf_append(o, h, 4);
		if (!*rc)
			*rc = put64(o, rd32(b->p + 4));
		if (!*rc)
			*rc = put64(o, rd32(b->p + 8));
		if (!*rc)
			*rc = buf_append(o, b->p + 12, is_tkhd ? 8 : 4);
		if (!*rc)
			*rc = put64(o, dur);
		size_t rest = is_tkhd ? 24 : 20;
		if (!*rc)
			*rc = buf_append(o, b->p + rest, b->len - rest);
	}
	mp4_box_end(o, at, rc);
}
