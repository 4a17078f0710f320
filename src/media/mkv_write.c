/*
 * mkv_write: Matroska writer primitives and document parts (contract in
 * include/media/kvsfs/mkv_write.h, design in docs/MKV.md, "Writer").
 *
 * Invariant: for every part, the *_size function and the put function agree byte for byte (the
 * unit test checks each pair). Positions are written in 8 bytes and masters closed with
 * mkvw_master_end carry an 8-byte size, so sizes never depend on the values they hold.
 */
#include "kvsfs/mkv_write.h"

#include <errno.h>
#include <string.h>

#include "kvsfs/buf.h"

/* Matroska element IDs used below (the level-1 ones are in the header). */
#define ID_EBMLVERSION 0x4286u
#define ID_EBMLREADVERSION 0x42F7u
#define ID_EBMLMAXIDLENGTH 0x42F2u
#define ID_EBMLMAXSIZELENGTH 0x42F3u
#define ID_DOCTYPE 0x4282u
#define ID_DOCTYPEVERSION 0x4287u
#define ID_DOCTYPEREADVERSION 0x4285u
#define ID_SEEK 0x4DBBu
#define ID_SEEKID 0x53ABu
#define ID_SEEKPOSITION 0x53ACu
#define ID_TIMECODESCALE 0x2AD7B1u
#define ID_DURATION 0x4489u
#define ID_DATEUTC 0x4461u
#define ID_TITLE 0x7BA9u
#define ID_MUXINGAPP 0x4D80u
#define ID_WRITINGAPP 0x5741u
#define ID_EDITIONENTRY 0x45B9u
#define ID_EDITIONUID 0x45BCu
#define ID_CHAPTERATOM 0xB6u
#define ID_CHAPTERUID 0x73C4u
#define ID_CHAPTERTIMESTART 0x91u
#define ID_CHAPTERTIMEEND 0x92u
#define ID_CHAPTERDISPLAY 0x80u
#define ID_CHAPSTRING 0x85u
#define ID_CHAPLANGUAGE 0x437Cu
#define ID_CUEPOINT 0xBBu
#define ID_CUETIME 0xB3u
#define ID_CUETRACKPOSITIONS 0xB7u
#define ID_CUETRACK 0xF7u
#define ID_CUECLUSTERPOSITION 0xF1u
#define ID_TIMECODE 0xE7u
#define ID_SIMPLEBLOCK 0xA3u

#define UNIX_TO_2001_MS 978307200000LL

/* ------------------------------------------------------------------ primitives */

size_t mkvw_id_len(uint32_t id)
{
	return id > 0xFFFFFFu ? 4 : id > 0xFFFFu ? 3 : id > 0xFFu ? 2 : 1;
}

size_t mkvw_vint_len(uint64_t size)
{
	size_t l = 1;
	/* all ones is reserved (unknown size): a vint of l bytes holds at most 2^(7l) - 2 */
	while (l < 8 && size > (1ull << (7 * l)) - 2)
		l++;
	return l;
}

static size_t uint_len(uint64_t v)
{
	size_t l = 1;
	while (l < 8 && (v >> (8 * l)))
		l++;
	return l;
}

uint64_t mkvw_element_size(uint32_t id, uint64_t body)
{
	return mkvw_id_len(id) + mkvw_vint_len(body) + body;
}

static int put_be(struct buf *b, uint64_t v, size_t n)
{
	uint8_t t[8];
	for (size_t i = 0; i < n; i++)
		t[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	return buf_append(b, t, n);
}

int mkvw_put_header(struct buf *b, uint32_t id, uint64_t size, unsigned len)
{
	size_t l = len ? len : mkvw_vint_len(size);
	if (put_be(b, id, mkvw_id_len(id)))
		return -ENOMEM;
	return put_be(b, size | (1ull << (7 * l)), l) ? -ENOMEM : 0;
}

int mkvw_put_uint(struct buf *b, uint32_t id, uint64_t v)
{
	size_t l = uint_len(v);
	return mkvw_put_header(b, id, l, 0) || put_be(b, v, l) ? -ENOMEM : 0;
}

int mkvw_put_uint8b(struct buf *b, uint32_t id, uint64_t v)
{
	return mkvw_put_header(b, id, 8, 0) || put_be(b, v, 8) ? -ENOMEM : 0;
}

int mkvw_put_float(struct buf *b, uint32_t id, double v)
{
	uint64_t u;
	memcpy(&u, &v, sizeof(u));
	return mkvw_put_header(b, id, 8, 0) || put_be(b, u, 8) ? -ENOMEM : 0;
}

int mkvw_put_bytes(struct buf *b, uint32_t id, const void *d, size_t n)
{
	return mkvw_put_header(b, id, n, 0) || buf_append(b, d, n) ? -ENOMEM : 0;
}

int mkvw_put_string(struct buf *b, uint32_t id, const char *s)
{
	return mkvw_put_bytes(b, id, s, strlen(s));
}

int mkvw_master_begin(struct buf *b, uint32_t id, size_t *mark)
{
	if (mkvw_put_header(b, id, 0, 8))
		return -ENOMEM;
	*mark = b->len;
	return 0;
}

void mkvw_master_end(struct buf *b, size_t mark)
{
	uint64_t v = (uint64_t)(b->len - mark) | (1ull << 56);
	for (size_t i = 0; i < 8; i++)
		b->data[mark - 8 + i] = (char)(uint8_t)(v >> (8 * (7 - i)));
}

/* ------------------------------------------------------------------ document parts */

int mkvw_put_ebml_header(struct buf *b)
{
	size_t m;
	if (mkvw_master_begin(b, MKVW_ID_EBML, &m) || mkvw_put_uint(b, ID_EBMLVERSION, 1) ||
	    mkvw_put_uint(b, ID_EBMLREADVERSION, 1) || mkvw_put_uint(b, ID_EBMLMAXIDLENGTH, 4) ||
	    mkvw_put_uint(b, ID_EBMLMAXSIZELENGTH, 8) || mkvw_put_string(b, ID_DOCTYPE, "matroska") ||
	    mkvw_put_uint(b, ID_DOCTYPEVERSION, 4) || mkvw_put_uint(b, ID_DOCTYPEREADVERSION, 2))
		return -ENOMEM;
	mkvw_master_end(b, m);
	return 0;
}

int mkvw_put_segment_head(struct buf *b, uint64_t size)
{
	return mkvw_put_header(b, MKVW_ID_SEGMENT, size, 8);
}

/* One Seek: SeekID (4-byte ID at most) + SeekPosition (8 bytes). */
static uint64_t seek_body(uint32_t id)
{
	return mkvw_element_size(ID_SEEKID, mkvw_id_len(id)) + mkvw_element_size(ID_SEEKPOSITION, 8);
}

uint64_t mkvw_seekhead_size(size_t n)
{
	/* level-1 IDs are all 4 bytes long */
	uint64_t body = (uint64_t)n * mkvw_element_size(ID_SEEK, seek_body(MKVW_ID_INFO));
	return mkvw_element_size(MKVW_ID_SEEKHEAD, body);
}

int mkvw_put_seekhead(struct buf *b, const struct mkvw_seek *v, size_t n)
{
	uint64_t body = 0;
	for (size_t i = 0; i < n; i++)
		body += mkvw_element_size(ID_SEEK, seek_body(v[i].id));
	if (mkvw_put_header(b, MKVW_ID_SEEKHEAD, body, 0))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		uint8_t idb[4];
		size_t l = mkvw_id_len(v[i].id);
		for (size_t k = 0; k < l; k++)
			idb[k] = (uint8_t)(v[i].id >> (8 * (l - 1 - k)));
		if (mkvw_put_header(b, ID_SEEK, seek_body(v[i].id), 0) ||
		    mkvw_put_bytes(b, ID_SEEKID, idb, l) ||
		    mkvw_put_uint8b(b, ID_SEEKPOSITION, v[i].position))
			return -ENOMEM;
	}
	return 0;
}

int mkvw_put_info(struct buf *b, const struct mkvw_info *in)
{
	size_t m;
	const char *app = in->app ? in->app : "kvsfs";
	if (mkvw_master_begin(b, MKVW_ID_INFO, &m) ||
	    mkvw_put_uint(b, ID_TIMECODESCALE, in->timecode_scale ? in->timecode_scale : 1000000) ||
	    mkvw_put_float(b, ID_DURATION, in->duration) || mkvw_put_string(b, ID_MUXINGAPP, app) ||
	    mkvw_put_string(b, ID_WRITINGAPP, app))
		return -ENOMEM;
	if (in->has_date) {
		int64_t ns = (in->date_utc_ms - UNIX_TO_2001_MS) * 1000000;
		if (mkvw_put_header(b, ID_DATEUTC, 8, 0) || put_be(b, (uint64_t)ns, 8))
			return -ENOMEM;
	}
	if (in->title && mkvw_put_string(b, ID_TITLE, in->title))
		return -ENOMEM;
	mkvw_master_end(b, m);
	return 0;
}

int mkvw_chapters_begin(struct buf *b, size_t *mark_chapters, size_t *mark_edition)
{
	if (mkvw_master_begin(b, MKVW_ID_CHAPTERS, mark_chapters) ||
	    mkvw_master_begin(b, ID_EDITIONENTRY, mark_edition) || mkvw_put_uint(b, ID_EDITIONUID, 1))
		return -ENOMEM;
	return 0;
}

int mkvw_put_chapter(struct buf *b, const struct mkvw_chapter *c)
{
	size_t atom, disp;
	if (mkvw_master_begin(b, ID_CHAPTERATOM, &atom) || mkvw_put_uint(b, ID_CHAPTERUID, c->uid) ||
	    mkvw_put_uint(b, ID_CHAPTERTIMESTART, c->start_ns) ||
	    mkvw_put_uint(b, ID_CHAPTERTIMEEND, c->end_ns) ||
	    mkvw_master_begin(b, ID_CHAPTERDISPLAY, &disp) ||
	    mkvw_put_string(b, ID_CHAPSTRING, c->title ? c->title : "") ||
	    mkvw_put_string(b, ID_CHAPLANGUAGE, "und"))
		return -ENOMEM;
	mkvw_master_end(b, disp);
	mkvw_master_end(b, atom);
	return 0;
}

void mkvw_chapters_end(struct buf *b, size_t mark_chapters, size_t mark_edition)
{
	mkvw_master_end(b, mark_edition);
	mkvw_master_end(b, mark_chapters);
}

static uint64_t cuepoint_body(const struct mkvw_cue *c)
{
	uint64_t tp = mkvw_element_size(ID_CUETRACK, uint_len(c->track)) +
		      mkvw_element_size(ID_CUECLUSTERPOSITION, 8);
	return mkvw_element_size(ID_CUETIME, uint_len(c->time)) +
	       mkvw_element_size(ID_CUETRACKPOSITIONS, tp);
}

static uint64_t cues_body(const struct mkvw_cue *v, size_t n)
{
	uint64_t body = 0;
	for (size_t i = 0; i < n; i++)
		body += mkvw_element_size(ID_CUEPOINT, cuepoint_body(&v[i]));
	return body;
}

uint64_t mkvw_cues_size(const struct mkvw_cue *v, size_t n)
{
	return mkvw_element_size(MKVW_ID_CUES, cues_body(v, n));
}

int mkvw_put_cues(struct buf *b, const struct mkvw_cue *v, size_t n)
{
	if (mkvw_put_header(b, MKVW_ID_CUES, cues_body(v, n), 0))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct mkvw_cue *c = &v[i];
		uint64_t tp = mkvw_element_size(ID_CUETRACK, uint_len(c->track)) +
			      mkvw_element_size(ID_CUECLUSTERPOSITION, 8);
		if (mkvw_put_header(b, ID_CUEPOINT, cuepoint_body(c), 0) ||
		    mkvw_put_uint(b, ID_CUETIME, c->time) ||
		    mkvw_put_header(b, ID_CUETRACKPOSITIONS, tp, 0) ||
		    mkvw_put_uint(b, ID_CUETRACK, c->track) ||
		    mkvw_put_uint8b(b, ID_CUECLUSTERPOSITION, c->cluster_position))
			return -ENOMEM;
	}
	return 0;
}

static uint64_t cluster_body(uint64_t timecode, uint64_t blocks_bytes)
{
	return mkvw_element_size(ID_TIMECODE, uint_len(timecode)) + blocks_bytes;
}

uint64_t mkvw_cluster_size(uint64_t timecode, uint64_t blocks_bytes)
{
	return mkvw_element_size(MKVW_ID_CLUSTER, cluster_body(timecode, blocks_bytes));
}

int mkvw_put_cluster_head(struct buf *b, uint64_t timecode, uint64_t blocks_bytes)
{
	if (mkvw_put_header(b, MKVW_ID_CLUSTER, cluster_body(timecode, blocks_bytes), 0) ||
	    mkvw_put_uint(b, ID_TIMECODE, timecode))
		return -ENOMEM;
	return 0;
}

static uint64_t simpleblock_body(uint64_t track, uint64_t data_len)
{
	return mkvw_vint_len(track) + 3 + data_len;
}

uint64_t mkvw_simpleblock_size(uint64_t track, uint64_t data_len)
{
	return mkvw_element_size(ID_SIMPLEBLOCK, simpleblock_body(track, data_len));
}

int mkvw_put_simpleblock_head(struct buf *b, uint64_t track, int16_t rel, uint8_t flags,
			      uint64_t data_len)
{
	size_t tl = mkvw_vint_len(track);
	uint8_t t[3] = { (uint8_t)((uint16_t)rel >> 8), (uint8_t)((uint16_t)rel & 0xFF), flags };
	if (mkvw_put_header(b, ID_SIMPLEBLOCK, simpleblock_body(track, data_len), 0) ||
	    put_be(b, track | (1ull << (7 * tl)), tl) || buf_append(b, t, 3))
		return -ENOMEM;
	return 0;
}
