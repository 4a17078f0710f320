/*
 * mkv_fragment: the fragment model of the Matroska reader (see include/kvsfs/mkv.h and
 * src/media/mkv_internal.h): what one KVS fragment is once read: its KVS tags (fragment number,
 * timestamps, error tags), tracks and their block statistics, clusters, flags and first
 * problem; how a fragment begins and ends (and the callbacks sent then); copies of fragments.
 *
 * Invariants: fragment i covers [offset_i, offset_{i+1}); fragment 0 starts at offset 0; a
 * fragment is COMPLETE only with an EBML header, a Segment and no truncated or malformed
 * element; the tracks and tags kept are bounded (MKV_MAX_TRACKS, MKV_MAX_TAGS and 1 MiB of tag
 * text); timestamps are parsed exactly with decsec (rounded up like KVS's parser).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/array.h"
#include "kvsfs/decsec.h"
#include "mkv_internal.h"

void mkv_copy_trimmed(char *dst, size_t cap, const char *src, size_t len, int trim_space)
{
	size_t n = 0;
	while (n < len && src[n] != '\0')
		n++;
	size_t b = 0;
	if (trim_space) {
		while (b < n && (src[b] == ' ' || src[b] == '\t'))
			b++;
		while (n > b && (src[n - 1] == ' ' || src[n - 1] == '\t'))
			n--;
	}
	size_t k = n - b;
	if (k >= cap)
		k = cap - 1;
	memcpy(dst, src + b, k);
	dst[k] = '\0';
}

int mkv_parse_timestamp_ms(const char *s, int64_t *ms)
{
	/* KVS writes "seconds.fraction", sometimes padded with spaces; its parser rounds up */
	return decsec_parse_ms(s, DECSEC_LENIENT | DECSEC_ROUND_UP, ms) ? -EINVAL : 0;
}

static const struct {
	const char *name;
	enum mkv_tag_kind kind;
} aws_tags[] = {
	{ "FRAGMENT_NUMBER", MKV_TAG_FRAGMENT_NUMBER },
	{ "SERVER_TIMESTAMP", MKV_TAG_SERVER_TIMESTAMP },
	{ "SERVER_SIDE_TIMESTAMP", MKV_TAG_SERVER_TIMESTAMP },
	{ "PRODUCER_TIMESTAMP", MKV_TAG_PRODUCER_TIMESTAMP },
	{ "PRODUCER_SIDE_TIMESTAMP", MKV_TAG_PRODUCER_TIMESTAMP },
	{ "MILLIS_BEHIND_NOW", MKV_TAG_MILLIS_BEHIND_NOW },
	{ "CONTINUATION_TOKEN", MKV_TAG_CONTINUATION_TOKEN },
	{ "ERROR_CODE", MKV_TAG_ERROR_CODE },
	{ "ERROR_ID", MKV_TAG_ERROR_ID },
	{ "EXCEPTION_ERROR_CODE", MKV_TAG_EXCEPTION_ERROR_CODE },
	{ "EXCEPTION_MESSAGE", MKV_TAG_EXCEPTION_MESSAGE },
};

enum mkv_tag_kind mkv_tag_kind_of(const char *name)
{
	static const char prefix[] = "AWS_KINESISVIDEO_";
	if (strncmp(name, prefix, sizeof(prefix) - 1) != 0)
		return MKV_TAG_USER;
	const char *rest = name + sizeof(prefix) - 1;
	for (size_t i = 0; i < sizeof(aws_tags) / sizeof(aws_tags[0]); i++)
		if (strcmp(rest, aws_tags[i].name) == 0)
			return aws_tags[i].kind;
	return MKV_TAG_AWS_OTHER;
}

const char *mkv_tag_kind_name(enum mkv_tag_kind kind)
{
	switch (kind) {
	case MKV_TAG_USER: return "user";
	case MKV_TAG_AWS_OTHER: return "aws_other";
	case MKV_TAG_FRAGMENT_NUMBER: return "fragment_number";
	case MKV_TAG_SERVER_TIMESTAMP: return "server_timestamp";
	case MKV_TAG_PRODUCER_TIMESTAMP: return "producer_timestamp";
	case MKV_TAG_MILLIS_BEHIND_NOW: return "millis_behind_now";
	case MKV_TAG_CONTINUATION_TOKEN: return "continuation_token";
	case MKV_TAG_ERROR_CODE: return "error_code";
	case MKV_TAG_ERROR_ID: return "error_id";
	case MKV_TAG_EXCEPTION_ERROR_CODE: return "exception_error_code";
	case MKV_TAG_EXCEPTION_MESSAGE: return "exception_message";
	}
	return "unknown";
}

/* ---------- fragment bookkeeping ---------- */

void mkv_fragment_clear(struct mkv_fragment *f)
{
	for (size_t i = 0; i < f->ntags; i++) {
		free(f->tags[i].name);
		free(f->tags[i].value);
	}
	free(f->tags);
	free(f->tracks);
	memset(f, 0, sizeof(*f));
}

int mkv_fragment_copy(struct mkv_fragment *dst, const struct mkv_fragment *src)
{
	*dst = *src;
	dst->tracks = NULL;
	dst->tags = NULL;
	dst->ntracks = 0;
	dst->ntags = 0;
	if (src->ntracks) {
		dst->tracks = malloc(src->ntracks * sizeof(*dst->tracks));
		if (!dst->tracks)
			goto fail;
		memcpy(dst->tracks, src->tracks, src->ntracks * sizeof(*dst->tracks));
		dst->ntracks = src->ntracks;
	}
	if (src->ntags) {
		dst->tags = calloc(src->ntags, sizeof(*dst->tags));
		if (!dst->tags)
			goto fail;
		for (size_t i = 0; i < src->ntags; i++) {
			dst->tags[i].kind = src->tags[i].kind;
			dst->tags[i].name = strdup(src->tags[i].name);
			dst->tags[i].value = strdup(src->tags[i].value);
			dst->ntags = i + 1;
			if (!dst->tags[i].name || !dst->tags[i].value)
				goto fail;
		}
	}
	return 0;
fail:
	mkv_fragment_clear(dst);
	return -ENOMEM;
}

struct mkv_track *mkv_track_get(struct mkv_reader *r, uint64_t number)
{
	struct frag_build *fb = &r->fb;
	for (size_t i = 0; i < fb->f.ntracks; i++)
		if (fb->f.tracks[i].number == number)
			return &fb->f.tracks[i];
	if (fb->f.ntracks >= MKV_MAX_TRACKS) {
		mkv_problem(r, MKV_FRAG_SKIPPED, "more than %d tracks", MKV_MAX_TRACKS);
		return NULL;
	}
	struct mkv_track *v = array_grow(fb->f.tracks, fb->f.ntracks, &fb->tracks_cap, sizeof(*v), 4);
	if (!v) {
		mkv_stop(r, -ENOMEM);
		return NULL;
	}
	fb->f.tracks = v;
	struct mkv_track *t = &fb->f.tracks[fb->f.ntracks++];
	memset(t, 0, sizeof(*t));
	t->number = number;
	return t;
}

void mkv_fragment_begin(struct mkv_reader *r, uint64_t offset, int had_ebml)
{
	struct frag_build *fb = &r->fb;
	memset(fb, 0, sizeof(*fb));
	fb->active = 1;
	fb->had_ebml = had_ebml;
	fb->f.index = r->nfrags++;
	fb->f.offset = offset;
	fb->f.timecode_scale = 1000000;
	if (r->cb.fragment_start) {
		int rc = r->cb.fragment_start(r->cb.opaque, fb->f.index, offset);
		if (rc)
			mkv_stop(r, rc);
	}
}

void mkv_emit_cluster(struct mkv_reader *r)
{
	struct frag_build *fb = &r->fb;
	if (fb->cl_event_sent)
		return;
	fb->cl_event_sent = 1;
	if (r->cb.cluster) {
		int rc = r->cb.cluster(r->cb.opaque, fb->f.index, fb->cl_offset, fb->cl_has_tc, fb->cl_tc);
		if (rc)
			mkv_stop(r, rc);
	}
}

void mkv_record_block(struct mkv_reader *r, uint64_t track, int16_t rel, int key,
		      unsigned frames, uint8_t flags, unsigned head_len, int simple)
{
	struct frag_build *fb = &r->fb;
	fb->f.blocks++;
	int64_t abs_tc = (int64_t)(fb->cl_has_tc ? fb->cl_tc & 0x3fffffffffffffffull : 0) + rel;
	if (r->cb.block) {
		struct mkv_block b = { .track = track, .timecode = abs_tc, .key = key, .flags = flags,
				       .simple = simple, .offset = fb->blk_off, .size = fb->blk_size,
				       .head_len = head_len };
		int rc = r->cb.block(r->cb.opaque, fb->f.index, &b);
		if (rc)
			mkv_stop(r, rc);
	}
	struct mkv_track *t = mkv_track_get(r, track);
	if (!t)
		return;
	if (t->blocks == 0) {
		t->first_timecode = t->min_timecode = t->max_timecode = abs_tc;
	} else {
		if (abs_tc < t->min_timecode)
			t->min_timecode = abs_tc;
		if (abs_tc > t->max_timecode)
			t->max_timecode = abs_tc;
	}
	t->last_timecode = abs_tc;
	t->blocks++;
	t->frames += frames;
	if (key)
		t->keyframes++;
}

void mkv_blockgroup_end(struct mkv_reader *r)
{
	struct frag_build *fb = &r->fb;
	if (fb->bg_has_block)
		mkv_record_block(r, fb->bg_track, fb->bg_tc, !fb->bg_has_ref, fb->bg_frames,
				 fb->bg_flags, fb->bg_head_len, 0);
	fb->bg_has_block = 0;
	fb->bg_has_ref = 0;
}

void mkv_cluster_end(struct mkv_reader *r)
{
	mkv_emit_cluster(r);
	r->fb.in_cluster = 0;
}

static int64_t fragment_duration_ms(const struct mkv_fragment *f)
{
	double best = 0;
	for (size_t i = 0; i < f->ntracks; i++) {
		const struct mkv_track *t = &f->tracks[i];
		double ns = 0;
		double span = (double)(t->max_timecode - t->min_timecode) * (double)f->timecode_scale;
		if (t->blocks == 0)
			continue;
		if (t->default_duration_ns)
			ns = span + (double)t->default_duration_ns;
		else if (t->blocks >= 2)
			ns = span * (double)t->blocks / (double)(t->blocks - 1);
		if (ns > best)
			best = ns;
	}
	if (best > 9.0e21)
		return INT64_MAX;
	return (int64_t)(best / 1e6 + 0.5);
}

/* Closes the current fragment at end (exclusive) and sends fragment_end. */
void mkv_fragment_end(struct mkv_reader *r, uint64_t end)
{
	struct frag_build *fb = &r->fb;
	if (!fb->active)
		return;
	mkv_pop_all(r, end, 1);
	struct mkv_fragment *f = &fb->f;
	f->length = end - f->offset;
	if (!fb->had_ebml)
		mkv_problem(r, MKV_FRAG_NO_EBML | MKV_FRAG_MALFORMED, "no EBML header at the fragment start");
	if (fb->had_ebml && fb->had_segment &&
	    !(f->flags & (MKV_FRAG_TRUNCATED | MKV_FRAG_MALFORMED)))
		f->flags |= MKV_FRAG_COMPLETE;
	else if (fb->had_ebml && !fb->had_segment && !(f->flags & MKV_FRAG_TRUNCATED))
		mkv_problem(r, MKV_FRAG_TRUNCATED, "no Segment after the EBML header");
	if (f->error_code[0] || f->error_id[0] || f->error_message[0])
		f->flags |= MKV_FRAG_ERROR;
	f->duration_ms = fragment_duration_ms(f);
	if (r->cb.fragment_end && r->state != RS_STOPPED) {
		int rc = r->cb.fragment_end(r->cb.opaque, f);
		if (rc)
			mkv_stop(r, rc);
	}
	mkv_fragment_clear(f);
	fb->active = 0;
}

void mkv_apply_tag(struct mkv_reader *r, const struct mkv_tag *tag)
{
	struct mkv_fragment *f = &r->fb.f;
	const char *v = tag->value;
	int64_t n;
	switch (tag->kind) {
	case MKV_TAG_FRAGMENT_NUMBER:
		mkv_copy_trimmed(f->fragment_number, sizeof(f->fragment_number), v, strlen(v), 1);
		break;
	case MKV_TAG_SERVER_TIMESTAMP:
		if (mkv_parse_timestamp_ms(v, &n) == 0) {
			f->server_timestamp_ms = n;
			f->has_server_timestamp = 1;
		}
		break;
	case MKV_TAG_PRODUCER_TIMESTAMP:
		if (mkv_parse_timestamp_ms(v, &n) == 0) {
			f->producer_timestamp_ms = n;
			f->has_producer_timestamp = 1;
		}
		break;
	case MKV_TAG_MILLIS_BEHIND_NOW: {
		char *end;
		errno = 0;
		long long x = strtoll(v, &end, 10);
		if (errno == 0 && end != v && *end == '\0') {
			f->millis_behind_now = x;
			f->has_millis_behind_now = 1;
		}
		break;
	}
	case MKV_TAG_CONTINUATION_TOKEN:
		mkv_copy_trimmed(f->continuation_token, sizeof(f->continuation_token), v, strlen(v), 1);
		break;
	case MKV_TAG_ERROR_CODE:
	case MKV_TAG_EXCEPTION_ERROR_CODE:
		mkv_copy_trimmed(f->error_code, sizeof(f->error_code), v, strlen(v), 1);
		if (!f->error_code[0])
			snprintf(f->error_code, sizeof(f->error_code), "unknown");
		break;
	case MKV_TAG_ERROR_ID:
		mkv_copy_trimmed(f->error_id, sizeof(f->error_id), v, strlen(v), 1);
		if (!f->error_id[0])
			snprintf(f->error_id, sizeof(f->error_id), "unknown");
		break;
	case MKV_TAG_EXCEPTION_MESSAGE:
		mkv_copy_trimmed(f->error_message, sizeof(f->error_message), v, strlen(v), 0);
		if (!f->error_message[0])
			snprintf(f->error_message, sizeof(f->error_message), "(empty)");
		break;
	case MKV_TAG_USER:
	case MKV_TAG_AWS_OTHER:
		break;
	}
}
