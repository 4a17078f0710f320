/*
 * mkv: streaming Matroska reader for KVS media bodies (see include/kvsfs/mkv.h and docs/MKV.md).
 *
 * Design. Two layers:
 *  - A byte-level EBML framer, here in C, that walks element headers as bytes arrive and keeps a
 *    small stack of open master elements (Segment, Cluster, BlockGroup, or an unknown-size
 *    metadata master). It decides fragment boundaries (every EBML header ID seen where an element
 *    header is expected starts a fragment and closes everything open), ends unknown-size elements
 *    at the first ID that cannot be their child (a Cluster ends at any level-1 ID or EBML header,
 *    a Segment at an EBML header or another Segment), reads Cluster Timecodes and the first bytes
 *    of every SimpleBlock/Block (track, relative timecode, flags, lacing), and skips frame data.
 *    Unknown children (Position, CRC-32, Void, anything of known size) never end a Cluster --
 *    this is why the framing is not left to libwebm, whose unknown-size masters end at the first
 *    ID they do not know (e.g. Position in PIC-produced clusters), which then ends the Segment.
 *  - libwebm's webm_parser (webm_reader.cc) decodes the metadata elements the framer hands it:
 *    the EBML header, Info, Tracks and Tags (or, inside unknown-size ones, each TrackEntry/Tag).
 *
 * Invariants: fragment i covers [offset_i, offset_{i+1}); fragment 0 starts at offset 0 (its
 * fragment_start is sent on the first pushed byte); the reader holds at most one element header
 * (<= 12 bytes) of undecided bytes; decoded metadata is bounded by the MKV_MAX_* limits; every
 * byte is examined a bounded number of times (a malformed header is rescanned once from its second
 * byte for the EBML magic), so any input terminates in linear time.
 */
#include "kvsfs/mkv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/decsec.h"
#include "kvsfs/log.h"
#include "webm_reader.h"

#define MOD "mkv"

#define ID_EBML 0x1A45DFA3u
#define ID_SEGMENT 0x18538067u
#define ID_SEEKHEAD 0x114D9B74u
#define ID_INFO 0x1549A966u
#define ID_TRACKS 0x1654AE6Bu
#define ID_CLUSTER 0x1F43B675u
#define ID_CUES 0x1C53BB6Bu
#define ID_CHAPTERS 0x1043A770u
#define ID_TAGS 0x1254C367u
#define ID_ATTACHMENTS 0x1941A469u
#define ID_VOID 0xECu
#define ID_CRC32 0xBFu
#define ID_TIMECODE 0xE7u
#define ID_SIMPLEBLOCK 0xA3u
#define ID_BLOCKGROUP 0xA0u
#define ID_BLOCK 0xA1u
#define ID_REFERENCEBLOCK 0xFBu
#define ID_TRACKENTRY 0xAEu
#define ID_TAG 0x7373u
#define ID_SIMPLETAG 0x67C8u
#define ID_CODECPRIVATE 0x63A2u
#define ID_TIMECODESCALE 0x2AD7B1u

#define UNKNOWN_SIZE UINT64_MAX
#define MAX_EBML_HEADER (64u * 1024)
#define MAX_TAG_BYTES (1024u * 1024) /* tag text kept per fragment */
#define MAX_DEPTH 8

enum ctx_kind { CTX_SEGMENT, CTX_CLUSTER, CTX_BLOCKGROUP, CTX_GENERIC };

struct ctx {
	uint32_t id;
	enum ctx_kind kind;
	uint64_t start, end; /* end: UNKNOWN_SIZE while open-ended */
};

enum rstate { RS_HEADER, RS_SKIP, RS_HEAD, RS_CAPTURE, RS_RESYNC, RS_STOPPED, RS_DONE };
enum head_use { HEAD_TIMECODE, HEAD_SIMPLEBLOCK, HEAD_BLOCK, HEAD_TCSCALE };

/* The fragment being built. */
struct frag_build {
	struct mkv_fragment f;
	size_t tracks_cap, tags_cap, tag_bytes;
	int active, had_ebml, had_segment;
	/* current cluster */
	int in_cluster, cl_has_tc, cl_event_sent;
	uint64_t cl_tc, cl_offset;
	unsigned cl_blockgroups;
	/* pending BlockGroup */
	int bg_has_block, bg_has_ref;
	uint64_t bg_track;
	int16_t bg_tc;
	unsigned bg_frames;
	/* TrackEntry being decoded */
	uint64_t pending_codec_private;
};

struct mkv_reader {
	struct mkv_callbacks cb;
	struct log_ctx *lg;
	struct mkv_wr *wr;
	uint64_t pos;
	enum rstate state;
	int stop_rc;
	/* element header being read */
	uint8_t hdr[12];
	unsigned hdr_len;
	/* element body being processed */
	uint32_t el_id;
	uint64_t el_start, remaining;
	enum head_use head_use;
	uint8_t head[16];
	unsigned head_len, head_want;
	/* metadata element being collected for libwebm (at most MKV_MAX_METADATA_SIZE + header) */
	uint8_t *cap_buf;
	size_t cap_len, cap_cap;
	/* open masters */
	struct ctx stack[MAX_DEPTH];
	unsigned depth;
	unsigned magic_match;
	int rescanned; /* set by bad_header: hdr holds rescanned bytes */
	unsigned nfrags;
	struct frag_build fb;
};

static const uint8_t ebml_magic[4] = { 0x1A, 0x45, 0xDF, 0xA3 };

static void process(struct mkv_reader *r, const uint8_t *p, size_t n);

/* ---------- small helpers ---------- */

static void copy_trimmed(char *dst, size_t cap, const char *src, size_t len, int trim_space)
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

static void stop(struct mkv_reader *r, int rc)
{
	if (r->state == RS_STOPPED)
		return;
	r->stop_rc = rc < 0 ? rc : -ECANCELED;
	r->state = RS_STOPPED;
}

/* Records the first problem of the current fragment; logs it once. */
static void problem(struct mkv_reader *r, unsigned flag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void problem(struct mkv_reader *r, unsigned flag, const char *fmt, ...)
{
	struct mkv_fragment *f = &r->fb.f;
	f->flags |= flag;
	if (f->problem[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->problem, sizeof(f->problem), fmt, ap);
	va_end(ap);
	LOG_WARN(r->lg, MOD, "fragment %u at offset %" PRIu64 ": %s", f->index, f->offset, f->problem);
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

static struct mkv_track *track_get(struct mkv_reader *r, uint64_t number)
{
	struct frag_build *fb = &r->fb;
	for (size_t i = 0; i < fb->f.ntracks; i++)
		if (fb->f.tracks[i].number == number)
			return &fb->f.tracks[i];
	if (fb->f.ntracks >= MKV_MAX_TRACKS) {
		problem(r, MKV_FRAG_SKIPPED, "more than %d tracks", MKV_MAX_TRACKS);
		return NULL;
	}
	if (fb->f.ntracks == fb->tracks_cap) {
		size_t cap = fb->tracks_cap ? fb->tracks_cap * 2 : 4;
		struct mkv_track *t = realloc(fb->f.tracks, cap * sizeof(*t));
		if (!t) {
			stop(r, -ENOMEM);
			return NULL;
		}
		fb->f.tracks = t;
		fb->tracks_cap = cap;
	}
	struct mkv_track *t = &fb->f.tracks[fb->f.ntracks++];
	memset(t, 0, sizeof(*t));
	t->number = number;
	return t;
}

static void fragment_begin(struct mkv_reader *r, uint64_t offset, int had_ebml)
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
			stop(r, rc);
	}
}

static void emit_cluster(struct mkv_reader *r)
{
	struct frag_build *fb = &r->fb;
	if (fb->cl_event_sent)
		return;
	fb->cl_event_sent = 1;
	if (r->cb.cluster) {
		int rc = r->cb.cluster(r->cb.opaque, fb->f.index, fb->cl_offset, fb->cl_has_tc, fb->cl_tc);
		if (rc)
			stop(r, rc);
	}
}

static void record_block(struct mkv_reader *r, uint64_t track, int16_t rel, int key, unsigned frames)
{
	struct frag_build *fb = &r->fb;
	fb->f.blocks++;
	struct mkv_track *t = track_get(r, track);
	if (!t)
		return;
	int64_t abs_tc = (int64_t)(fb->cl_has_tc ? fb->cl_tc & 0x3fffffffffffffffull : 0) + rel;
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

static void blockgroup_end(struct mkv_reader *r)
{
	struct frag_build *fb = &r->fb;
	if (fb->bg_has_block)
		record_block(r, fb->bg_track, fb->bg_tc, !fb->bg_has_ref, fb->bg_frames);
	fb->bg_has_block = 0;
	fb->bg_has_ref = 0;
}

static void cluster_end(struct mkv_reader *r)
{
	emit_cluster(r);
	r->fb.in_cluster = 0;
}

/* Pops the top context; cut_at is where it stops. A known-size element stopped before its end
 * marks the fragment truncated (truncated != 0) or malformed. */
static void pop_ctx(struct mkv_reader *r, uint64_t cut_at, int truncated)
{
	struct ctx *c = &r->stack[--r->depth];
	if (c->end != UNKNOWN_SIZE && c->end > cut_at) {
		if (truncated)
			problem(r, MKV_FRAG_TRUNCATED, "element 0x%" PRIX32 " at %" PRIu64
				" cut short by %" PRIu64 " bytes", c->id, c->start, c->end - cut_at);
		else
			problem(r, MKV_FRAG_MALFORMED, "element 0x%" PRIX32 " at %" PRIu64
				" ends early at a level-1 element", c->id, c->start);
	}
	if (c->kind == CTX_BLOCKGROUP)
		blockgroup_end(r);
	else if (c->kind == CTX_CLUSTER)
		cluster_end(r);
}

static void pop_all(struct mkv_reader *r, uint64_t cut_at, int truncated)
{
	while (r->depth && r->state != RS_STOPPED)
		pop_ctx(r, cut_at, truncated);
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
static void fragment_end(struct mkv_reader *r, uint64_t end)
{
	struct frag_build *fb = &r->fb;
	if (!fb->active)
		return;
	pop_all(r, end, 1);
	struct mkv_fragment *f = &fb->f;
	f->length = end - f->offset;
	if (!fb->had_ebml)
		problem(r, MKV_FRAG_NO_EBML | MKV_FRAG_MALFORMED, "no EBML header at the fragment start");
	if (fb->had_ebml && fb->had_segment &&
	    !(f->flags & (MKV_FRAG_TRUNCATED | MKV_FRAG_MALFORMED)))
		f->flags |= MKV_FRAG_COMPLETE;
	else if (fb->had_ebml && !fb->had_segment && !(f->flags & MKV_FRAG_TRUNCATED))
		problem(r, MKV_FRAG_TRUNCATED, "no Segment after the EBML header");
	if (f->error_code[0] || f->error_id[0] || f->error_message[0])
		f->flags |= MKV_FRAG_ERROR;
	f->duration_ms = fragment_duration_ms(f);
	if (r->cb.fragment_end && r->state != RS_STOPPED) {
		int rc = r->cb.fragment_end(r->cb.opaque, f);
		if (rc)
			stop(r, rc);
	}
	mkv_fragment_clear(f);
	fb->active = 0;
}

/* ---------- libwebm events (metadata elements) ---------- */

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
			problem(r, MKV_FRAG_SKIPPED, "element 0x%" PRIX32 " of %" PRIu64
				" bytes skipped", id, size);
			*skip = 1;
		}
		return 0;
	case ID_CLUSTER: case ID_CUES: case ID_CHAPTERS: case ID_SEEKHEAD:
		*skip = size != MKV_WR_UNKNOWN_SIZE;
		return 0;
	default:
		if (size != MKV_WR_UNKNOWN_SIZE && size > MKV_MAX_STRING_SIZE) {
			problem(r, MKV_FRAG_SKIPPED, "element 0x%" PRIX32 " of %" PRIu64
				" bytes skipped", id, size);
			*skip = 1;
		}
		return 0;
	}
}

static int wr_ebml(void *opaque, const char *doc_type, size_t len)
{
	struct mkv_reader *r = opaque;
	copy_trimmed(r->fb.f.doc_type, sizeof(r->fb.f.doc_type), doc_type, len, 1);
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
	struct mkv_track *t = track_get(r, wt->number);
	if (!t)
		return r->state == RS_STOPPED ? 1 : 0;
	t->declared = 1;
	t->uid = wt->uid;
	t->type = wt->type <= 0xff ? (unsigned)wt->type : 0;
	copy_trimmed(t->codec_id, sizeof(t->codec_id), wt->codec_id, wt->codec_id_len, 1);
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
			stop(r, rc);
			return 1;
		}
	}
	return 0;
}

static void apply_tag(struct mkv_reader *r, const struct mkv_tag *tag)
{
	struct mkv_fragment *f = &r->fb.f;
	const char *v = tag->value;
	int64_t n;
	switch (tag->kind) {
	case MKV_TAG_FRAGMENT_NUMBER:
		copy_trimmed(f->fragment_number, sizeof(f->fragment_number), v, strlen(v), 1);
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
		copy_trimmed(f->continuation_token, sizeof(f->continuation_token), v, strlen(v), 1);
		break;
	case MKV_TAG_ERROR_CODE:
	case MKV_TAG_EXCEPTION_ERROR_CODE:
		copy_trimmed(f->error_code, sizeof(f->error_code), v, strlen(v), 1);
		if (!f->error_code[0])
			snprintf(f->error_code, sizeof(f->error_code), "unknown");
		break;
	case MKV_TAG_ERROR_ID:
		copy_trimmed(f->error_id, sizeof(f->error_id), v, strlen(v), 1);
		if (!f->error_id[0])
			snprintf(f->error_id, sizeof(f->error_id), "unknown");
		break;
	case MKV_TAG_EXCEPTION_MESSAGE:
		copy_trimmed(f->error_message, sizeof(f->error_message), v, strlen(v), 0);
		if (!f->error_message[0])
			snprintf(f->error_message, sizeof(f->error_message), "(empty)");
		break;
	case MKV_TAG_USER:
	case MKV_TAG_AWS_OTHER:
		break;
	}
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
		stop(r, -ENOMEM);
		return 1;
	}
	tag.kind = mkv_tag_kind_of(tag.name);
	apply_tag(r, &tag);
	int rc = 0;
	if (r->cb.tag)
		rc = r->cb.tag(r->cb.opaque, fb->f.index, &tag);
	size_t bytes = strlen(tag.name) + strlen(tag.value);
	int keep = fb->f.ntags < MKV_MAX_TAGS && fb->tag_bytes + bytes <= MAX_TAG_BYTES;
	if (keep && fb->f.ntags == fb->tags_cap) {
		size_t cap = fb->tags_cap ? fb->tags_cap * 2 : 8;
		struct mkv_tag *t = realloc(fb->f.tags, cap * sizeof(*t));
		if (!t) {
			keep = 0;
			rc = rc ? rc : -ENOMEM;
		} else {
			fb->f.tags = t;
			fb->tags_cap = cap;
		}
	}
	if (keep) {
		fb->f.tags[fb->f.ntags++] = tag;
		fb->tag_bytes += bytes;
	} else {
		if (!rc)
			problem(r, MKV_FRAG_SKIPPED, "too many tags: some not kept");
		free(tag.name);
		free(tag.value);
	}
	if (rc) {
		stop(r, rc);
		return 1;
	}
	return 0;
}

/* ---------- framer ---------- */

static int is_level1(uint32_t id)
{
	switch (id) {
	case ID_SEEKHEAD: case ID_INFO: case ID_TRACKS: case ID_CLUSTER: case ID_CUES:
	case ID_CHAPTERS: case ID_TAGS: case ID_ATTACHMENTS:
		return 1;
	}
	return 0;
}

static int is_blockgroup_child(uint32_t id)
{
	switch (id) {
	case 0xA1: case 0xA2: case 0x75A1: case 0x9B: case 0xFA: case 0xFB: case 0xFD: case 0xA4:
	case 0x75A2: case 0x8E: case 0xC8: case ID_CRC32: case ID_VOID:
		return 1;
	}
	return 0;
}

/* Whether an open-ended context accepts id as a child. */
static int accepts(const struct ctx *c, uint32_t id)
{
	switch (c->kind) {
	case CTX_SEGMENT:
		return id != ID_SEGMENT;
	case CTX_CLUSTER:
	case CTX_GENERIC:
		return id != ID_SEGMENT && !is_level1(id);
	case CTX_BLOCKGROUP:
		return is_blockgroup_child(id);
	}
	return 0;
}

static void push_ctx(struct mkv_reader *r, uint32_t id, enum ctx_kind kind, uint64_t start,
		     uint64_t end)
{
	struct ctx *c = &r->stack[r->depth++];
	c->id = id;
	c->kind = kind;
	c->start = start;
	c->end = end;
}

static void start_resync(struct mkv_reader *r)
{
	pop_all(r, r->pos, 0);
	if (r->state == RS_STOPPED)
		return;
	r->state = RS_RESYNC;
	r->magic_match = 0;
}

/* The header just read is bad: flag, then rescan its bytes after the first for the EBML magic. */
static void bad_header(struct mkv_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad_header(struct mkv_reader *r, const char *fmt, ...)
{
	char msg[128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	uint64_t start = r->pos - r->hdr_len;
	problem(r, MKV_FRAG_MALFORMED, "%s at offset %" PRIu64, msg, start);
	uint8_t again[12];
	unsigned n = r->hdr_len - 1;
	memcpy(again, r->hdr + 1, n);
	r->hdr_len = 0;
	start_resync(r);
	if (r->state == RS_STOPPED)
		return;
	r->pos = start + 1;
	process(r, again, n);
	r->rescanned = 1;
}

static void begin_skip(struct mkv_reader *r, uint64_t size)
{
	r->remaining = size;
	r->state = size ? RS_SKIP : RS_HEADER;
}

static void on_head(struct mkv_reader *r);

static void begin_head(struct mkv_reader *r, enum head_use use, uint64_t size, unsigned want)
{
	r->head_use = use;
	r->head_len = 0;
	r->head_want = size < want ? (unsigned)size : want;
	r->remaining = size - r->head_want;
	if (r->head_want == 0) {
		on_head(r);
		if (r->state != RS_STOPPED)
			begin_skip(r, r->remaining);
	} else {
		r->state = RS_HEAD;
	}
}

static int capture_append(struct mkv_reader *r, const uint8_t *p, size_t n)
{
	if (r->cap_len + n > r->cap_cap) {
		size_t cap = r->cap_cap ? r->cap_cap : 1024;
		while (cap < r->cap_len + n)
			cap *= 2;
		uint8_t *b = realloc(r->cap_buf, cap);
		if (!b) {
			stop(r, -ENOMEM);
			return -ENOMEM;
		}
		r->cap_buf = b;
		r->cap_cap = cap;
	}
	memcpy(r->cap_buf + r->cap_len, p, n);
	r->cap_len += n;
	return 0;
}

/* Hands the collected element to libwebm (whole, or what arrived of it at the stream end). */
static void capture_end(struct mkv_reader *r)
{
	int rc = mkv_wr_parse(r->wr, r->el_start, r->cap_buf, r->cap_len);
	if (r->cap_cap > 1024 * 1024) { /* do not keep a large buffer around */
		free(r->cap_buf);
		r->cap_buf = NULL;
		r->cap_cap = 0;
	}
	r->cap_len = 0;
	if (r->state == RS_STOPPED)
		return;
	if (rc == MKV_WR_NOMEM) {
		problem(r, MKV_FRAG_BAD_METADATA, "metadata element 0x%" PRIX32 " at %" PRIu64
			" too large to decode", r->el_id, r->el_start);
	} else if (rc == MKV_WR_TRUNCATED && r->remaining) {
		/* the stream ended inside it: already flagged truncated by the caller */
	} else if (rc) {
		problem(r, MKV_FRAG_BAD_METADATA, "metadata element 0x%" PRIX32 " at %" PRIu64
			" could not be decoded", r->el_id, r->el_start);
	}
	r->state = RS_HEADER;
}

static void begin_capture(struct mkv_reader *r, uint64_t start, uint64_t size)
{
	r->cap_len = 0;
	if (capture_append(r, r->hdr, r->hdr_len))
		return;
	r->remaining = size;
	r->state = RS_CAPTURE;
	if (size == 0)
		capture_end(r);
}

static int parse_vint(const uint8_t *p, unsigned n, unsigned *len, uint64_t *val)
{
	if (n == 0 || p[0] == 0)
		return -1;
	unsigned l = 1;
	while (!(p[0] & (0x80 >> (l - 1))))
		l++;
	if (l > n)
		return -1;
	uint64_t v = p[0] & ((0x80u >> (l - 1)) - 1);
	for (unsigned i = 1; i < l; i++)
		v = (v << 8) | p[i];
	*len = l;
	*val = v;
	return 0;
}

static void on_head(struct mkv_reader *r)
{
	struct frag_build *fb = &r->fb;
	const uint8_t *h = r->head;
	unsigned n = r->head_len;
	uint64_t v = 0;
	switch (r->head_use) {
	case HEAD_TIMECODE:
	case HEAD_TCSCALE:
		for (unsigned i = 0; i < n; i++)
			v = (v << 8) | h[i];
		if (r->head_use == HEAD_TCSCALE) {
			if (v > 0 && v <= 1000000000000ull)
				fb->f.timecode_scale = v;
			return;
		}
		if (!fb->in_cluster || fb->cl_event_sent)
			return; /* a second Timecode is ignored */
		fb->cl_tc = v;
		fb->cl_has_tc = 1;
		if (!fb->f.has_cluster_timecode) {
			fb->f.has_cluster_timecode = 1;
			fb->f.cluster_timecode = v;
		}
		emit_cluster(r);
		return;
	case HEAD_SIMPLEBLOCK:
	case HEAD_BLOCK: {
		unsigned l;
		uint64_t track;
		if (parse_vint(h, n, &l, &track) || n < l + 3)
			return; /* too short to be a block: not counted */
		int16_t rel = (int16_t)(uint16_t)((h[l] << 8) | h[l + 1]);
		uint8_t flags = h[l + 2];
		unsigned frames = 1;
		if ((flags & 0x06) && n >= l + 4)
			frames = h[l + 3] + 1u;
		if (r->head_use == HEAD_SIMPLEBLOCK) {
			record_block(r, track, rel, (flags & 0x80) != 0, frames);
		} else {
			fb->bg_has_block = 1;
			fb->bg_track = track;
			fb->bg_tc = rel;
			fb->bg_frames = frames;
		}
		return;
	}
	}
}

/* Called with a complete element header in r->hdr. */
static void on_header(struct mkv_reader *r, uint32_t id, uint64_t size)
{
	struct frag_build *fb = &r->fb;
	uint64_t start = r->pos - r->hdr_len;
	uint64_t data_start = r->pos;
	r->el_id = id;
	r->el_start = start;

	if (id == ID_EBML) {
		if (size == UNKNOWN_SIZE || size > MAX_EBML_HEADER) {
			bad_header(r, "EBML header of bad size");
			return;
		}
		int same = fb->active && !fb->had_ebml && fb->f.offset == start;
		if (same) {
			fb->had_ebml = 1;
		} else {
			fragment_end(r, start);
			if (r->state == RS_STOPPED)
				return;
			fragment_begin(r, start, 1);
			if (r->state == RS_STOPPED)
				return;
		}
		begin_capture(r, start, size);
		return;
	}

	/* Find the parent: end open-ended elements that cannot hold this ID. */
	while (r->depth) {
		struct ctx *top = &r->stack[r->depth - 1];
		if (top->end == UNKNOWN_SIZE) {
			if (accepts(top, id))
				break;
			pop_ctx(r, start, 0);
		} else if ((top->kind == CTX_CLUSTER || top->kind == CTX_BLOCKGROUP) &&
			   (is_level1(id) || id == ID_SEGMENT)) {
			pop_ctx(r, start, 0); /* a sized Cluster that stopped early */
		} else {
			break;
		}
		if (r->state == RS_STOPPED)
			return;
	}
	struct ctx *parent = r->depth ? &r->stack[r->depth - 1] : NULL;

	if (size != UNKNOWN_SIZE) {
		if (id != ID_SEGMENT && size > MKV_MAX_ELEMENT_SIZE) {
			bad_header(r, "element 0x%" PRIX32 " of absurd size %" PRIu64, id, size);
			return;
		}
		if (parent && parent->end != UNKNOWN_SIZE && size > parent->end - data_start) {
			bad_header(r, "element 0x%" PRIX32 " overflows its parent", id);
			return;
		}
	}
	uint64_t end = size == UNKNOWN_SIZE ? UNKNOWN_SIZE : data_start + size;

	if (!parent) {
		if (id == ID_SEGMENT) {
			if (!fb->had_ebml) {
				bad_header(r, "Segment without EBML header");
				return;
			}
			fb->had_segment = 1;
			push_ctx(r, id, CTX_SEGMENT, start, end);
			r->state = RS_HEADER;
		} else if (id == ID_VOID && size != UNKNOWN_SIZE) {
			begin_skip(r, size);
		} else {
			bad_header(r, "unexpected top-level element 0x%" PRIX32, id);
		}
		return;
	}

	if (r->depth >= MAX_DEPTH - 1) {
		bad_header(r, "elements nested too deep");
		return;
	}

	switch (parent->kind) {
	case CTX_SEGMENT:
		if (id == ID_CLUSTER) {
			push_ctx(r, id, CTX_CLUSTER, start, end);
			fb->in_cluster = 1;
			fb->cl_has_tc = 0;
			fb->cl_event_sent = 0;
			fb->cl_offset = start;
			fb->cl_blockgroups = 0;
			if (fb->f.clusters++ == 0)
				fb->f.cluster_offset = start;
			if (size == UNKNOWN_SIZE)
				fb->f.unsized_clusters++;
			r->state = RS_HEADER;
			return;
		}
		if (id == ID_INFO || id == ID_TRACKS || id == ID_TAGS) {
			if (size == UNKNOWN_SIZE) {
				push_ctx(r, id, CTX_GENERIC, start, end);
				r->state = RS_HEADER;
			} else if (size > MKV_MAX_METADATA_SIZE) {
				problem(r, MKV_FRAG_SKIPPED, "element 0x%" PRIX32 " of %" PRIu64
					" bytes skipped", id, size);
				begin_skip(r, size);
			} else {
				begin_capture(r, start, size);
			}
			return;
		}
		break;
	case CTX_GENERIC:
		if (size != UNKNOWN_SIZE &&
		    ((parent->id == ID_TAGS && id == ID_TAG) ||
		     (parent->id == ID_TRACKS && id == ID_TRACKENTRY))) {
			if (size > MKV_MAX_TAG_SIZE) {
				problem(r, MKV_FRAG_SKIPPED, "element 0x%" PRIX32 " of %" PRIu64
					" bytes skipped", id, size);
				begin_skip(r, size);
			} else {
				begin_capture(r, start, size);
			}
			return;
		}
		if (parent->id == ID_INFO && id == ID_TIMECODESCALE && size != UNKNOWN_SIZE) {
			begin_head(r, HEAD_TCSCALE, size, 8);
			return;
		}
		break;
	case CTX_CLUSTER:
		if (size == UNKNOWN_SIZE && id != ID_BLOCKGROUP)
			break;
		if (id == ID_TIMECODE) {
			begin_head(r, HEAD_TIMECODE, size, 8);
			return;
		}
		if (id == ID_SIMPLEBLOCK) {
			begin_head(r, HEAD_SIMPLEBLOCK, size, 12);
			return;
		}
		if (id == ID_BLOCKGROUP) {
			if (++fb->cl_blockgroups > MKV_MAX_BLOCKGROUPS) {
				bad_header(r, "more than %d BlockGroups in a Cluster", MKV_MAX_BLOCKGROUPS);
				return;
			}
			push_ctx(r, id, CTX_BLOCKGROUP, start, end);
			fb->bg_has_block = 0;
			fb->bg_has_ref = 0;
			r->state = RS_HEADER;
			return;
		}
		break;
	case CTX_BLOCKGROUP:
		if (id == ID_BLOCK && size != UNKNOWN_SIZE) {
			begin_head(r, HEAD_BLOCK, size, 12);
			return;
		}
		if (id == ID_REFERENCEBLOCK)
			fb->bg_has_ref = 1;
		break;
	}

	/* Anything else: skip it if it is sized; an open-ended unknown master is walked generically
	 * at level 1 only. */
	if (size != UNKNOWN_SIZE) {
		begin_skip(r, size);
	} else if (parent->kind == CTX_SEGMENT) {
		push_ctx(r, id, CTX_GENERIC, start, end);
		r->state = RS_HEADER;
	} else {
		bad_header(r, "element 0x%" PRIX32 " of unknown size", id);
	}
}

/* Pops sized contexts that end exactly here (called between elements). */
static void close_finished(struct mkv_reader *r)
{
	while (r->depth && r->state != RS_STOPPED) {
		struct ctx *top = &r->stack[r->depth - 1];
		if (top->end == UNKNOWN_SIZE || top->end > r->pos)
			break;
		pop_ctx(r, r->pos, 1);
	}
}

static size_t header_byte(struct mkv_reader *r, uint8_t b)
{
	if (r->hdr_len == 0)
		close_finished(r);
	if (r->state == RS_STOPPED)
		return 0;
	r->hdr[r->hdr_len++] = b;
	r->pos++;
	unsigned id_len = 1;
	while (id_len <= 4 && !(r->hdr[0] & (0x80 >> (id_len - 1))))
		id_len++;
	if (id_len > 4) {
		bad_header(r, "invalid element ID");
		return 1;
	}
	if (r->hdr_len <= id_len)
		return 1;
	uint8_t s0 = r->hdr[id_len];
	if (s0 == 0) {
		bad_header(r, "invalid element size");
		return 1;
	}
	unsigned size_len = 1;
	while (!(s0 & (0x80 >> (size_len - 1))))
		size_len++;
	if (r->hdr_len < id_len + size_len)
		return 1;
	uint32_t id = 0;
	for (unsigned i = 0; i < id_len; i++)
		id = (id << 8) | r->hdr[i];
	uint64_t size = s0 & ((0x80u >> (size_len - 1)) - 1);
	/* all value bits set means "unknown size", whatever the width */
	int unknown = size == (0x80u >> (size_len - 1)) - 1;
	for (unsigned i = 1; i < size_len; i++) {
		uint8_t c = r->hdr[id_len + i];
		size = (size << 8) | c;
		if (c != 0xff)
			unknown = 0;
	}
	if (unknown)
		size = UNKNOWN_SIZE;
	r->rescanned = 0;
	on_header(r, id, size);
	if (!r->rescanned)
		r->hdr_len = 0;
	return 1;
}

/* Consumes bytes of p; may be re-entered (bad_header rescans up to 11 bytes). */
static void process(struct mkv_reader *r, const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		switch (r->state) {
		case RS_STOPPED:
		case RS_DONE:
			return;
		case RS_HEADER:
			i += header_byte(r, p[i]);
			break;
		case RS_SKIP: {
			uint64_t k = n - i < r->remaining ? n - i : r->remaining;
			r->remaining -= k;
			r->pos += k;
			i += (size_t)k;
			if (r->remaining == 0)
				r->state = RS_HEADER;
			break;
		}
		case RS_HEAD: {
			while (i < n && r->head_len < r->head_want) {
				r->head[r->head_len++] = p[i++];
				r->pos++;
			}
			if (r->head_len == r->head_want) {
				on_head(r);
				if (r->state != RS_STOPPED)
					begin_skip(r, r->remaining);
			}
			break;
		}
		case RS_CAPTURE: {
			uint64_t k = n - i < r->remaining ? n - i : r->remaining;
			if (capture_append(r, p + i, (size_t)k))
				return;
			r->remaining -= k;
			r->pos += k;
			i += (size_t)k;
			if (r->remaining == 0)
				capture_end(r);
			break;
		}
		case RS_RESYNC: {
			uint8_t b = p[i++];
			r->pos++;
			if (b == ebml_magic[r->magic_match])
				r->magic_match++;
			else
				r->magic_match = b == ebml_magic[0] ? 1 : 0;
			if (r->magic_match == 4) {
				memcpy(r->hdr, ebml_magic, 4);
				r->hdr_len = 4;
				r->magic_match = 0;
				r->state = RS_HEADER;
			}
			break;
		}
		}
	}
}

/* ---------- public API ---------- */

struct mkv_reader *mkv_reader_new(const struct mkv_callbacks *cb, struct log_ctx *lg)
{
	struct mkv_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	if (cb)
		r->cb = *cb;
	r->lg = lg;
	struct mkv_wr_events ev = {
		.opaque = r,
		.element = wr_element,
		.ebml = wr_ebml,
		.info = wr_info,
		.track = wr_track,
		.simple_tag = wr_simple_tag,
	};
	r->wr = mkv_wr_new(&ev);
	if (!r->wr) {
		free(r);
		return NULL;
	}
	r->state = RS_HEADER;
	return r;
}

void mkv_reader_free(struct mkv_reader *r)
{
	if (!r)
		return;
	mkv_fragment_clear(&r->fb.f);
	free(r->cap_buf);
	mkv_wr_free(r->wr);
	free(r);
}

int mkv_reader_push(struct mkv_reader *r, const void *data, size_t len)
{
	if (r->state == RS_STOPPED)
		return r->stop_rc;
	if (r->state == RS_DONE)
		return -EINVAL;
	if (len == 0)
		return 0;
	if (!r->fb.active && r->nfrags == 0) {
		fragment_begin(r, 0, 0);
		if (r->state == RS_STOPPED)
			return r->stop_rc;
	}
	process(r, data, len);
	return r->state == RS_STOPPED ? r->stop_rc : 0;
}

int mkv_reader_finish(struct mkv_reader *r)
{
	if (r->state == RS_STOPPED)
		return r->stop_rc;
	if (r->state == RS_DONE)
		return 0;
	if (r->fb.active) {
		switch (r->state) {
		case RS_HEADER:
			if (r->hdr_len)
				problem(r, MKV_FRAG_TRUNCATED, "stream ends inside an element header");
			break;
		case RS_SKIP:
		case RS_HEAD:
			problem(r, MKV_FRAG_TRUNCATED, "stream ends %" PRIu64 " bytes early inside"
				" element 0x%" PRIX32 " at %" PRIu64,
				r->remaining + (r->state == RS_HEAD ? r->head_want - r->head_len : 0),
				r->el_id, r->el_start);
			break;
		case RS_CAPTURE:
			problem(r, MKV_FRAG_TRUNCATED, "stream ends %" PRIu64 " bytes early inside"
				" element 0x%" PRIX32 " at %" PRIu64, r->remaining, r->el_id, r->el_start);
			capture_end(r); /* deliver what can be decoded */
			break;
		default:
			break;
		}
		if (r->state != RS_STOPPED)
			fragment_end(r, r->pos);
	}
	if (r->state == RS_STOPPED)
		return r->stop_rc;
	r->state = RS_DONE;
	return 0;
}

uint64_t mkv_reader_offset(const struct mkv_reader *r)
{
	return r->pos;
}

uint64_t mkv_reader_safe_offset(const struct mkv_reader *r)
{
	if (r->state == RS_HEADER)
		return r->pos - r->hdr_len;
	if (r->state == RS_RESYNC)
		return r->pos - r->magic_match;
	return r->pos;
}

/* ---------- one-shot ---------- */

struct collect {
	struct mkv_fragment *v;
	size_t n, cap;
};

static int collect_end(void *opaque, const struct mkv_fragment *f)
{
	struct collect *c = opaque;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 8;
		struct mkv_fragment *v = realloc(c->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->v = v;
		c->cap = cap;
	}
	if (mkv_fragment_copy(&c->v[c->n], f))
		return -ENOMEM;
	c->n++;
	return 0;
}

int mkv_parse_buffer(const void *data, size_t len, struct log_ctx *lg,
		     struct mkv_fragment **out, size_t *count)
{
	struct collect c = { 0 };
	struct mkv_callbacks cb = { .opaque = &c, .fragment_end = collect_end };
	*out = NULL;
	*count = 0;
	struct mkv_reader *r = mkv_reader_new(&cb, lg);
	if (!r)
		return -ENOMEM;
	int rc = mkv_reader_push(r, data, len);
	if (!rc)
		rc = mkv_reader_finish(r);
	mkv_reader_free(r);
	if (rc) {
		mkv_fragments_free(c.v, c.n);
		return rc;
	}
	*out = c.v;
	*count = c.n;
	return 0;
}

void mkv_fragments_free(struct mkv_fragment *frags, size_t count)
{
	if (!frags)
		return;
	for (size_t i = 0; i < count; i++)
		mkv_fragment_clear(&frags[i]);
	free(frags);
}
