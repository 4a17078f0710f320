/*
 * mkv_meta: the metadata elements of the Matroska reader (see src/media/mkv_internal.h): the
 * framer captures the EBML header, Info, Tracks and Tags (or, inside unknown-size ones, each
 * TrackEntry/Tag) whole, header included, and this file hands them to libwebm's webm_parser
 * (webm_reader.cc) and turns its events into the fragment model: doc type, timecode scale,
 * tracks, tags.
 *
 * Invariants: a captured element is at most MKV_MAX_METADATA_SIZE plus its header; inside it,
 * elements over the string or tag limits are skipped (flag MKV_FRAG_SKIPPED), CodecPrivate only
 * by size; a capture buffer over 1 MiB is released after use so one large element does not pin
 * memory for the rest of the stream.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/array.h"
#include "mkv_internal.h"

static int wr_element(void *opaque, uint32_t id, uint64_t size, int *skip)
{
	struct mkv_reader *r = opaque;
	struct frag_build *fb = &r->fb;
	switch (id) {
	case ID_EBML: case ID_INFO: case ID_TRACKS: case ID_TAGS: case ID_SEGMENT:
		return 0; /* already bounded by the framer */
	case ID_CODECPRIVATE:
		fb->pending_codec_private = size == MKV_WR_UNKNOWN_SIZE ? 0 : size;
		*skip = size != MKV_WR_UNKNOWN_SIZE; /* only its size is reported */
		return 0;
	case ID_TRACKENTRY: case ID_TAG: case ID_SIMPLETAG:
		if (id == ID_TRACKENTRY)
			fb->pending_codec_private = 0;
		if (size != MKV_WR_UNKNOWN_SIZE && size > MKV_MAX_TAG_SIZE) {
			mkv_problem(r, MKV_FRAG_SKIPPED, "element 0x%" PRIX32 " of %" PRIu64
				    " bytes skipped", id, size);
			*skip = 1;
		}
		return 0;
	case ID_CLUSTER: case ID_CUES: case ID_CHAPTERS: case ID_SEEKHEAD:
		*skip = size != MKV_WR_UNKNOWN_SIZE;
		return 0;
	default:
		if (size != MKV_WR_UNKNOWN_SIZE && size > MKV_MAX_STRING_SIZE) {
			mkv_problem(r, MKV_FRAG_SKIPPED, "element 0x%" PRIX32 " of %" PRIu64
				    " bytes skipped", id, size);
			*skip = 1;
		}
		return 0;
	}
}

static int wr_ebml(void *opaque, const char *doc_type, size_t len)
{
	struct mkv_reader *r = opaque;
	mkv_copy_trimmed(r->fb.f.doc_type, sizeof(r->fb.f.doc_type), doc_type, len, 1);
	return 0;
}

static int wr_info(void *opaque, uint64_t timecode_scale)
{
	struct mkv_reader *r = opaque;
	if (timecode_scale > 0 && timecode_scale <= 1000000000000ull)
		r->fb.f.timecode_scale = timecode_scale;
	return 0;
}

static int wr_track(void *opaque, const struct mkv_wr_track *wt)
{
	struct mkv_reader *r = opaque;
	struct mkv_track *t = mkv_track_get(r, wt->number);
	if (!t)
		return r->state == RS_STOPPED ? 1 : 0;
	t->declared = 1;
	t->uid = wt->uid;
	t->type = wt->type <= 0xff ? (unsigned)wt->type : 0;
	mkv_copy_trimmed(t->codec_id, sizeof(t->codec_id), wt->codec_id, wt->codec_id_len, 1);
	t->codec_private_size = r->fb.pending_codec_private;
	t->default_duration_ns = wt->default_duration;
	if (wt->has_video) {
		t->width = wt->width <= UINT32_MAX ? (unsigned)wt->width : 0;
		t->height = wt->height <= UINT32_MAX ? (unsigned)wt->height : 0;
	}
	if (wt->has_audio) {
		double f = wt->sampling_frequency;
		t->sampling_frequency = (f > 0 && f < 1e9) ? f : 0;
		t->channels = wt->channels <= 4096 ? (unsigned)wt->channels : 0;
	}
	if (r->cb.track) {
		int rc = r->cb.track(r->cb.opaque, r->fb.f.index, t);
		if (rc) {
			mkv_stop(r, rc);
			return 1;
		}
	}
	return 0;
}

static char *dup_cut(const char *s, size_t len)
{
	size_t n = 0;
	while (n < len && s[n] != '\0')
		n++;
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static int wr_simple_tag(void *opaque, const char *name, size_t name_len, const char *value,
			 size_t value_len)
{
	struct mkv_reader *r = opaque;
	struct frag_build *fb = &r->fb;
	struct mkv_tag tag;
	tag.name = dup_cut(name, name_len);
	tag.value = dup_cut(value ? value : "", value ? value_len : 0);
	if (!tag.name || !tag.value) {
		free(tag.name);
		free(tag.value);
		mkv_stop(r, -ENOMEM);
		return 1;
	}
	tag.kind = mkv_tag_kind_of(tag.name);
	mkv_apply_tag(r, &tag);
	int rc = 0;
	if (r->cb.tag)
		rc = r->cb.tag(r->cb.opaque, fb->f.index, &tag);
	size_t bytes = strlen(tag.name) + strlen(tag.value);
	int keep = fb->f.ntags < MKV_MAX_TAGS && fb->tag_bytes + bytes <= MAX_TAG_BYTES;
	if (keep) {
		struct mkv_tag *t = array_grow(fb->f.tags, fb->f.ntags, &fb->tags_cap, sizeof(*t), 8);
		if (!t) {
			keep = 0;
			rc = rc ? rc : -ENOMEM;
		} else {
			fb->f.tags = t;
		}
	}
	if (keep) {
		fb->f.tags[fb->f.ntags++] = tag;
		fb->tag_bytes += bytes;
	} else {
		if (!rc)
			mkv_problem(r, MKV_FRAG_SKIPPED, "too many tags: some not kept");
		free(tag.name);
		free(tag.value);
	}
	if (rc) {
		mkv_stop(r, rc);
		return 1;
	}
	return 0;
}

int mkv_capture_append(struct mkv_reader *r, const uint8_t *p, size_t n)
{
	if (buf_append(&r->cap, p, n)) {
		mkv_stop(r, -ENOMEM);
		return -ENOMEM;
	}
	return 0;
}

void mkv_capture_end(struct mkv_reader *r)
{
	if (r->cb.element && !r->remaining) {
		int erc = r->cb.element(r->cb.opaque, r->fb.f.index, r->el_id, r->cap.data, r->cap.len);
		if (erc)
			mkv_stop(r, erc);
	}
	int rc = mkv_wr_parse(r->wr, r->el_start, (const uint8_t *)r->cap.data, r->cap.len);
	if (r->cap.cap > 1024 * 1024) /* do not keep a large buffer around */
		buf_free(&r->cap);
	else
		buf_reset(&r->cap);
	if (r->state == RS_STOPPED)
		return;
	if (rc == MKV_WR_NOMEM) {
		mkv_problem(r, MKV_FRAG_BAD_METADATA, "metadata element 0x%" PRIX32 " at %" PRIu64
			    " too large to decode", r->el_id, r->el_start);
	} else if (rc == MKV_WR_TRUNCATED && r->remaining) {
		/* the stream ended inside it: already flagged truncated by the caller */
	} else if (rc) {
		mkv_problem(r, MKV_FRAG_BAD_METADATA, "metadata element 0x%" PRIX32 " at %" PRIu64
			    " could not be decoded", r->el_id, r->el_start);
	}
	r->state = RS_HEADER;
}

void mkv_begin_capture(struct mkv_reader *r, uint64_t size)
{
	buf_reset(&r->cap);
	if (mkv_capture_append(r, r->hdr, r->hdr_len))
		return;
	r->remaining = size;
	r->state = RS_CAPTURE;
	if (size == 0)
		mkv_capture_end(r);
}

struct mkv_wr *mkv_meta_decoder_new(struct mkv_reader *r)
{
	struct mkv_wr_events ev = {
		.opaque = r,
		.element = wr_element,
		.ebml = wr_ebml,
		.info = wr_info,
		.track = wr_track,
		.simple_tag = wr_simple_tag,
	};
	return mkv_wr_new(&ev);
}
