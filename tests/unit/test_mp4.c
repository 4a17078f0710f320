/*
 * Unit tests for the mp4 module on MP4 files built here box by box (so every table is known):
 * each sample's first 4 bytes carry (track id << 24 | sample index in the joined track), and the
 * joined output is checked by walking its own sample tables back to those bytes. Real ffmpeg parts
 * (H.264, H.265, AAC) are covered by tests/integration/modules/aws/test_mp4_join.py.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "kvsfs/buf.h"
#include "kvsfs/mp4.h"

#define FCC(s) ((uint32_t)(s)[0] << 24 | (uint32_t)(s)[1] << 16 | (uint32_t)(s)[2] << 8 | (uint32_t)(s)[3])

static void p32(struct buf *b, uint32_t v)
{
	uint8_t t[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	buf_append(b, t, 4);
}
static void p64(struct buf *b, uint64_t v)
{
	p32(b, (uint32_t)(v >> 32));
	p32(b, (uint32_t)v);
}
static size_t bopen(struct buf *b, const char *type)
{
	size_t at = b->len;
	p32(b, 0);
	buf_append(b, type, 4);
	return at;
}
static void bclose(struct buf *b, size_t at)
{
	uint32_t n = (uint32_t)(b->len - at);
	uint8_t *p = (uint8_t *)b->data + at;
	p[0] = (uint8_t)(n >> 24);
	p[1] = (uint8_t)(n >> 16);
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
}
static void zeros(struct buf *b, size_t n)
{
	while (n--)
		buf_putc(b, 0);
}
static uint32_t g32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

struct tspec {
	const char *handler, *codec;
	uint32_t id, timescale, n, dur, spc;
	int ctts, stss_every, elst;
	uint8_t stsd_byte;
};

struct fspec {
	int ntracks;
	struct tspec t[2];
	int co64;
	uint32_t tag_base[2]; /* sample index of this part's first sample in the joined track */
	int mdat_size0;       /* write the mdat with size 0 ("to the end") */
};

static uint32_t ssize(uint32_t i) { return 10 + i % 7; }

static void trak(struct buf *b, const struct tspec *t, const uint64_t *chunk_off, uint32_t nchunks, int co64)
{
	size_t tr = bopen(b, "trak"), at;
	at = bopen(b, "tkhd");
	p32(b, 3);
	p32(b, 0);
	p32(b, 0);
	p32(b, t->id);
	p32(b, 0);
	p32(b, t->n * t->dur / t->timescale * 1000);
	zeros(b, 52);
	p32(b, strcmp(t->handler, "vide") ? 0 : 320u << 16);
	p32(b, strcmp(t->handler, "vide") ? 0 : 240u << 16);
	bclose(b, at);
	if (t->elst) {
		size_t ed = bopen(b, "edts");
		at = bopen(b, "elst");
		p32(b, 0);
		p32(b, 1);
		p32(b, 1000);
		p32(b, t->dur * 2);
		p32(b, 0x10000);
		bclose(b, at);
		bclose(b, ed);
	}
	size_t md = bopen(b, "mdia");
	at = bopen(b, "mdhd");
	p32(b, 0);
	p32(b, 0);
	p32(b, 0);
	p32(b, t->timescale);
	p32(b, t->n * t->dur);
	p32(b, 0x55c40000);
	bclose(b, at);
	at = bopen(b, "hdlr");
	p32(b, 0);
	p32(b, 0);
	buf_append(b, t->handler, 4);
	zeros(b, 13);
	bclose(b, at);
	size_t mi = bopen(b, "minf");
	size_t st = bopen(b, "stbl");
	at = bopen(b, "stsd");
	p32(b, 0);
	p32(b, 1);
	size_t se = bopen(b, t->codec);
	zeros(b, 6);
	buf_append(b, "\0\1", 2);
	zeros(b, 19);
	buf_putc(b, (char)t->stsd_byte);
	bclose(b, se);
	bclose(b, at);
	at = bopen(b, "stts");
	p32(b, 0);
	p32(b, 1);
	p32(b, t->n);
	p32(b, t->dur);
	bclose(b, at);
	if (t->ctts) {
		at = bopen(b, "ctts");
		p32(b, 0);
		p32(b, t->n);
		for (uint32_t i = 0; i < t->n; i++) {
			p32(b, 1);
			p32(b, (i % 3) * t->dur);
		}
		bclose(b, at);
	}
	if (t->stss_every) {
		at = bopen(b, "stss");
		p32(b, 0);
		p32(b, (t->n + t->stss_every - 1) / t->stss_every);
		for (uint32_t i = 0; i < t->n; i += t->stss_every)
			p32(b, i + 1);
		bclose(b, at);
	}
	at = bopen(b, "stsc");
	p32(b, 0);
	uint32_t last = t->n % t->spc;
	p32(b, last ? 2 : 1);
	p32(b, 1);
	p32(b, t->spc);
	p32(b, 1);
	if (last) {
		p32(b, nchunks);
		p32(b, last);
		p32(b, 1);
	}
	bclose(b, at);
	at = bopen(b, "stsz");
	p32(b, 0);
	p32(b, 0);
	p32(b, t->n);
	for (uint32_t i = 0; i < t->n; i++)
		p32(b, ssize(i));
	bclose(b, at);
	at = bopen(b, co64 ? "co64" : "stco");
	p32(b, 0);
	p32(b, nchunks);
	for (uint32_t c = 0; c < nchunks; c++) {
		if (co64)
			p64(b, chunk_off[c]);
		else
			p32(b, (uint32_t)chunk_off[c]);
	}
	bclose(b, at);
	bclose(b, st);
	bclose(b, mi);
	bclose(b, md);
	bclose(b, tr);
}

/* Builds ftyp + moov + mdat. Chunks of the tracks are interleaved in the mdat. */
static void build(struct buf *out, const struct fspec *f)
{
	struct buf mdat = BUF_INIT;
	uint64_t off[2][256];
	uint32_t nch[2] = { 0, 0 }, done[2] = { 0, 0 };
	for (int more = 1; more;) {
		more = 0;
		for (int k = 0; k < f->ntracks; k++) {
			const struct tspec *t = &f->t[k];
			if (done[k] >= t->n)
				continue;
			off[k][nch[k]++] = mdat.len;
			for (uint32_t s = 0; s < t->spc && done[k] < t->n; s++, done[k]++) {
				p32(&mdat, t->id << 24 | (f->tag_base[k] + done[k]));
				zeros(&mdat, ssize(done[k]) - 4);
			}
			more = 1;
		}
	}
	size_t base = 0;
	for (int pass = 0; pass < 2; pass++) {
		buf_reset(out);
		size_t at = bopen(out, "ftyp");
		buf_append(out, "isom\0\0\2\0isomiso2avc1mp41", 24);
		bclose(out, at);
		size_t mv = bopen(out, "moov");
		at = bopen(out, "mvhd");
		p32(out, 0);
		p32(out, 0);
		p32(out, 0);
		p32(out, 1000);
		p32(out, 4000);
		zeros(out, 76);
		p32(out, 3);
		bclose(out, at);
		for (int k = 0; k < f->ntracks; k++) {
			uint64_t abs[256];
			for (uint32_t c = 0; c < nch[k]; c++)
				abs[c] = off[k][c] + base;
			trak(out, &f->t[k], abs, nch[k], f->co64);
		}
		bclose(out, mv);
		base = out->len + 8;
	}
	p32(out, f->mdat_size0 ? 0 : (uint32_t)(mdat.len + 8));
	buf_append(out, "mdat", 4);
	buf_append(out, mdat.data, mdat.len);
	buf_free(&mdat);
}

static struct fspec two_tracks(uint32_t nv, uint32_t na, uint32_t vbase, uint32_t abase)
{
	struct fspec f = { 0 };
	f.ntracks = 2;
	f.t[0] = (struct tspec){ "vide", "avc1", 1, 12800, nv, 512, 5, 1, 10, 1, 7 };
	f.t[1] = (struct tspec){ "soun", "mp4a", 2, 44100, na, 1024, 8, 0, 0, 0, 9 };
	f.tag_base[0] = vbase;
	f.tag_base[1] = abase;
	return f;
}

/* Finds the first box of type under [p, p+len) at any depth along moov/trak/mdia/minf/stbl. */
static const uint8_t *find(const uint8_t *p, size_t len, const char *type, size_t *blen, int skip)
{
	for (size_t o = 0; o + 8 <= len;) {
		uint32_t sz = g32(p + o);
		if (sz < 8 || sz > len - o)
			return NULL;
		if (memcmp(p + o + 4, type, 4) == 0 && skip-- == 0) {
			*blen = sz - 8;
			return p + o + 8;
		}
		o += sz;
	}
	return NULL;
}

/* Walks track ti's tables in a joined file and checks each sample's tag. Returns samples checked
 * or -1 on a mismatch. */
static long verify_track(const uint8_t *f, size_t flen, int ti, uint32_t id)
{
	size_t l, ml, tl, al, il, sl;
	const uint8_t *moov = find(f, flen, "moov", &ml, 0);
	const uint8_t *tr = moov ? find(moov, ml, "trak", &tl, ti) : NULL;
	const uint8_t *md = tr ? find(tr, tl, "mdia", &al, 0) : NULL;
	const uint8_t *mi = md ? find(md, al, "minf", &il, 0) : NULL;
	const uint8_t *st = mi ? find(mi, il, "stbl", &sl, 0) : NULL;
	if (!st)
		return -1;
	const uint8_t *stsz = find(st, sl, "stsz", &l, 0), *stsc = find(st, sl, "stsc", &l, 0);
	size_t col;
	const uint8_t *co = find(st, sl, "stco", &col, 0);
	int wide = 0;
	if (!co) {
		co = find(st, sl, "co64", &col, 0);
		wide = 1;
	}
	if (!stsz || !stsc || !co)
		return -1;
	uint32_t n = g32(stsz + 8), konst = g32(stsz + 4), nstsc = g32(stsc + 4), nch = g32(co + 4);
	uint32_t s = 0;
	for (uint32_t e = 0; e < nstsc; e++) {
		uint32_t first = g32(stsc + 8 + 12 * e), spc = g32(stsc + 12 + 12 * e);
		uint32_t next = e + 1 < nstsc ? g32(stsc + 8 + 12 * (e + 1)) : nch + 1;
		for (uint32_t c = first; c < next; c++) {
			uint64_t o = wide ? (uint64_t)g32(co + 8 + 8 * (c - 1)) << 32 | g32(co + 12 + 8 * (c - 1))
					  : g32(co + 8 + 4 * (c - 1));
			for (uint32_t k = 0; k < spc; k++, s++) {
				if (s >= n || o + 4 > flen || g32(f + o) != (id << 24 | s)) {
					printf("# track %u sample %u: bad tag at %llu\n", id, s,
					       (unsigned long long)o);
					return -1;
				}
				o += konst ? konst : g32(stsz + 12 + 4 * s);
			}
		}
	}
	return s == n ? (long)n : -1;
}

static int join_mem(const struct buf *parts, size_t n, struct mp4_join **j, char *why)
{
	struct mp4_input in[8];
	for (size_t i = 0; i < n; i++)
		in[i] = (struct mp4_input){ .fd = -1, .mem = parts[i].data, .mem_len = parts[i].len };
	return mp4_join_prepare(in, n, NULL, j, why, MP4_REASON_MAX);
}

static uint8_t *read_all(const struct mp4_join *j, size_t chunk)
{
	uint64_t size = mp4_join_size(j);
	uint8_t *out = malloc(size);
	uint64_t off = 0;
	while (out && off < size) {
		ssize_t k = mp4_join_pread(j, out + off, chunk, off);
		if (k <= 0) {
			free(out);
			return NULL;
		}
		off += (uint64_t)k;
	}
	return out;
}

static void test_join(void)
{
	struct buf p[3] = { BUF_INIT, BUF_INIT, BUF_INIT };
	struct fspec f0 = two_tracks(30, 40, 0, 0), f1 = two_tracks(25, 33, 30, 40),
		     f2 = two_tracks(20, 31, 55, 73);
	f1.co64 = 1;
	f1.t[0].spc = 3;
	f2.mdat_size0 = 1;
	f2.t[1].spc = 31;
	build(&p[0], &f0);
	build(&p[1], &f1);
	build(&p[2], &f2);
	char why[MP4_REASON_MAX];
	struct mp4_info pi;
	struct mp4_input in0 = { .fd = -1, .mem = p[0].data, .mem_len = p[0].len };
	CHECK_INT(mp4_info_read(&in0, &pi, NULL, why, sizeof(why)), 0, "info on a built part (%s)", why);
	CHECK_INT(pi.ntracks, 2, "two tracks");
	CHECK_STR(pi.tracks[0].codec, "avc1", "codec avc1");
	CHECK_STR(pi.tracks[1].handler, "soun", "handler soun");
	CHECK_INT(pi.tracks[0].sync_count, 3, "stss count");
	CHECK_INT(pi.tracks[1].duration, 40 * 1024, "audio duration in ticks");
	CHECK_INT(pi.tracks[0].duration_ms, 30 * 40, "video duration in ms");

	struct mp4_join *j = NULL;
	int rc = join_mem(p, 3, &j, why);
	CHECK_INT(rc, 0, "join of three parts (%s)", why);
	if (rc)
		goto out;
	struct mp4_info ji;
	mp4_join_info(j, &ji);
	CHECK_INT(ji.tracks[0].sample_count, 75, "joined video samples");
	CHECK_INT(ji.tracks[1].sample_count, 104, "joined audio samples");
	CHECK_INT(ji.tracks[0].duration, 75 * 512, "joined video duration");
	CHECK_INT(ji.tracks[0].sync_count, 3 + 3 + 2, "joined sync samples");
	uint8_t *all = read_all(j, 1u << 20), *odd = read_all(j, 7);
	uint64_t size = mp4_join_size(j);
	CHECK(all && odd && memcmp(all, odd, size) == 0, "pread in 7-byte steps equals one read");
	char tmpl[] = "/tmp/test_mp4_XXXXXX";
	int fd = mkstemp(tmpl);
	CHECK(fd >= 0 && mp4_join_write(j, fd) == 0, "mp4_join_write");
	CHECK_INT(lseek(fd, 0, SEEK_END), (long long)size, "written size equals mp4_join_size");
	if (fd >= 0) {
		close(fd);
		unlink(tmpl);
	}
	if (all) {
		CHECK_INT(verify_track(all, size, 0, 1), 75, "every video sample offset lands on its data");
		CHECK_INT(verify_track(all, size, 1, 2), 104, "every audio sample offset lands on its data");
		struct mp4_input jo = { .fd = -1, .mem = all, .mem_len = size };
		struct mp4_info ri;
		CHECK_INT(mp4_info_read(&jo, &ri, NULL, why, sizeof(why)), 0, "joined file parses (%s)", why);
		CHECK_INT(ri.tracks[0].sample_count, 75, "re-read video samples");
		CHECK_INT(ri.tracks[1].duration, 104 * 1024, "re-read audio duration");
		CHECK_INT(ri.tracks[0].sync_count, 8, "re-read sync samples");
		CHECK_INT(ri.movie_duration, ji.movie_duration, "mvhd duration as reported");
		/* the joined file joins again with itself */
		struct buf twice[2] = { { (char *)all, size, size }, { (char *)all, size, size } };
		struct mp4_join *j2 = NULL;
		CHECK_INT(join_mem(twice, 2, &j2, why), 0, "joined file joins with itself (%s)", why);
		if (j2) {
			uint8_t *a2 = read_all(j2, 4096);
			CHECK(a2 && verify_track(a2, mp4_join_size(j2), 0, 1) < 0,
			      "tags restart in the second copy (walker detects it)");
			free(a2);
			mp4_join_info(j2, &ri);
			CHECK_INT(ri.tracks[0].sample_count, 150, "self-join doubles samples");
		}
		mp4_join_free(j2);
	}
	free(all);
	free(odd);
	CHECK_INT(mp4_join_pread(j, why, 10, size), 0, "pread at the end returns 0");
	mp4_join_free(j);
out:
	for (int i = 0; i < 3; i++)
		buf_free(&p[i]);
}

static void test_rescale(void)
{
	struct buf p[2] = { BUF_INIT, BUF_INIT };
	struct fspec f0 = two_tracks(10, 10, 0, 0), f1 = two_tracks(10, 10, 10, 10);
	f1.t[0].timescale *= 2;
	f1.t[0].dur *= 2;
	build(&p[0], &f0);
	build(&p[1], &f1);
	struct mp4_join *j = NULL;
	char why[MP4_REASON_MAX];
	CHECK_INT(join_mem(p, 2, &j, why), 0, "join with a different timescale (%s)", why);
	if (j) {
		struct mp4_info ji;
		mp4_join_info(j, &ji);
		CHECK_INT(ji.tracks[0].timescale, 12800, "output keeps part 1's timescale");
		CHECK_INT(ji.tracks[0].duration, 20 * 512, "rescaled durations");
	}
	mp4_join_free(j);
	buf_free(&p[0]);
	buf_free(&p[1]);
}

static void test_mismatch(void)
{
	struct buf p[2] = { BUF_INIT, BUF_INIT };
	struct fspec f0 = two_tracks(10, 10, 0, 0), f1 = two_tracks(10, 10, 10, 10);
	f1.t[0].stsd_byte = 8;
	build(&p[0], &f0);
	build(&p[1], &f1);
	struct mp4_join *j = NULL;
	char why[MP4_REASON_MAX];
	CHECK_INT(join_mem(p, 2, &j, why), -EMEDIUMTYPE, "different stsd refused");
	CHECK(strstr(why, "sample description") != NULL, "reason names the sample description: %s", why);
	f1 = two_tracks(10, 10, 10, 10);
	f1.ntracks = 1;
	build(&p[1], &f1);
	CHECK_INT(join_mem(p, 2, &j, why), -EMEDIUMTYPE, "different track count refused (%s)", why);
	f1 = two_tracks(10, 10, 10, 10);
	f1.t[1].handler = "vide";
	build(&p[1], &f1);
	CHECK_INT(join_mem(p, 2, &j, why), -EMEDIUMTYPE, "different handlers refused (%s)", why);
	buf_free(&p[0]);
	buf_free(&p[1]);
}

/* Replaces the 4-byte field at payload offset `at` of the first box of this type (-8: its size,
 * -4: its type). */
static int patch(struct buf *b, const char *type, long at, uint32_t v)
{
	char *p = memmem(b->data, b->len, type, 4);
	long pos = p ? (long)(p - b->data) + 4 + at : -1;
	if (pos < 0 || (size_t)pos + 4 > b->len)
		return -1;
	uint8_t *q = (uint8_t *)b->data + pos;
	q[0] = (uint8_t)(v >> 24);
	q[1] = (uint8_t)(v >> 16);
	q[2] = (uint8_t)(v >> 8);
	q[3] = (uint8_t)v;
	return 0;
}

static int info_rc(const struct buf *b, char *why)
{
	struct mp4_input in = { .fd = -1, .mem = b->data, .mem_len = b->len };
	struct mp4_info info;
	return mp4_info_read(&in, &info, NULL, why, MP4_REASON_MAX);
}

static void test_malformed(void)
{
	struct fspec f = two_tracks(12, 12, 0, 0);
	struct buf b = BUF_INIT;
	char why[MP4_REASON_MAX];
	struct {
		const char *name, *type;
		long at;
		uint32_t v;
		int want;
	} cases[] = {
		{ "stsz count beyond payload", "stsz", 8, 0x40000000, -EBADMSG },
		{ "stts count beyond payload", "stts", 4, 0x10000000, -EBADMSG },
		{ "stts covers too few samples", "stts", 8, 5, -EBADMSG },
		{ "stsc first chunk 0", "stsc", 8, 0, -EBADMSG },
		{ "stsc sample description index 7", "stsc", 16, 7, -EBADMSG },
		{ "stco count beyond payload", "stco", 4, 0x20000000, -EBADMSG },
		{ "ctts covers too many samples", "ctts", 8, 99, -EBADMSG },
		{ "stss out of range", "stss", 8, 999, -EBADMSG },
		{ "box size overruns parent", "mdia", -8, 0x7fffff, -EBADMSG },
		{ "box size smaller than header", "hdlr", -8, 3, -EBADMSG },
		{ "mdhd timescale 0", "mdhd", 12, 0, -EBADMSG },
		{ "stsd count 0", "stsd", 4, 0, -EBADMSG },
		{ "moov renamed", "moov", -4, FCC("free"), -EBADMSG },
		{ "moof present", "mdat", -4, FCC("moof"), -ENOTSUP },
		{ "mvhd version 9", "mvhd", 0, 0x09000000, -EBADMSG },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		build(&b, &f);
		CHECK(patch(&b, cases[i].type, cases[i].at, cases[i].v) == 0, "patched %s", cases[i].name);
		int rc = info_rc(&b, why);
		CHECK_INT(rc, cases[i].want, "%s rejected: %s", cases[i].name, why);
		CHECK(rc == 0 || why[0], "reason given for %s", cases[i].name);
	}
	/* chunk offset outside mdat: parses, but join refuses */
	build(&b, &f);
	patch(&b, "stco", 8, 3);
	CHECK_INT(info_rc(&b, why), 0, "stco pointing into ftyp still parses");
	struct mp4_join *j = NULL;
	CHECK_INT(join_mem(&b, 1, &j, why), -EBADMSG, "join refuses a chunk outside mdat (%s)", why);
	/* truncations */
	build(&b, &f);
	size_t full = b.len;
	int bad = 0;
	for (size_t cut = 1; cut < full; cut += 1 + cut / 16) {
		b.len = cut;
		int rc = info_rc(&b, why);
		if (rc != -EBADMSG)
			bad++;
	}
	CHECK_INT(bad, 0, "every truncation is -EBADMSG");
	/* 64-bit box size for mdat and trailing garbage */
	build(&b, &f);
	char *m = memmem(b.data, b.len, "mdat", 4);
	size_t mstart = (size_t)(m - 4 - b.data), mlen = b.len - mstart;
	struct buf w = BUF_INIT;
	buf_append(&w, b.data, mstart);
	p32(&w, 1);
	buf_append(&w, "mdat", 4);
	p64(&w, mlen + 8);
	buf_append(&w, b.data + mstart + 8, mlen - 8);
	/* offsets moved by 8: joining must catch it or it must still be inside mdat */
	CHECK_INT(info_rc(&w, why), 0, "64-bit mdat size accepted (%s)", why);
	buf_append(&w, "xyz", 3);
	CHECK_INT(info_rc(&w, why), -EBADMSG, "trailing bytes rejected (%s)", why);
	buf_free(&w);
	/* random corruption: never crashes, always 0 or a documented error */
	uint32_t seed = 1;
	int odd = 0;
	for (int it = 0; it < 3000; it++) {
		build(&b, &f);
		for (int k = 0; k < 4; k++) {
			seed = seed * 1103515245u + 12345u;
			size_t pos = (seed >> 8) % b.len;
			seed = seed * 1103515245u + 12345u;
			b.data[pos] = (char)(seed >> 16);
		}
		int rc = info_rc(&b, why);
		if (rc == 0) {
			rc = join_mem(&b, 1, &j, why);
			mp4_join_free(j);
			j = NULL;
		}
		if (rc != 0 && rc != -EBADMSG && rc != -ENOTSUP && rc != -EFBIG && rc != -EMEDIUMTYPE)
			odd++;
	}
	CHECK_INT(odd, 0, "random corruption gives only documented errors");
	buf_free(&b);
}

/* Durations beyond 32 bits: mdhd, tkhd and mvhd must become version 1 and still parse. */
static void test_long(void)
{
	struct buf p[2] = { BUF_INIT, BUF_INIT };
	struct fspec f = { 0 };
	f.ntracks = 1;
	f.t[0] = (struct tspec){ "vide", "avc1", 1, 100, 3, 0x80000000u, 2, 0, 0, 0, 7 };
	build(&p[0], &f);
	f.tag_base[0] = 3;
	build(&p[1], &f);
	struct mp4_join *j = NULL;
	char why[MP4_REASON_MAX];
	CHECK_INT(join_mem(p, 2, &j, why), 0, "join of very long parts (%s)", why);
	if (j) {
		uint8_t *all = read_all(j, 1u << 16);
		uint64_t size = mp4_join_size(j);
		struct mp4_input in = { .fd = -1, .mem = all, .mem_len = size };
		struct mp4_info ri;
		CHECK_INT(mp4_info_read(&in, &ri, NULL, why, sizeof(why)), 0, "long output parses (%s)", why);
		CHECK_INT(ri.tracks[0].duration, 6ull << 31, "64-bit media duration");
		CHECK_INT(ri.movie_duration, (6ull << 31) * 10, "64-bit movie duration (version 1 mvhd)");
		CHECK(all && memmem(all, size, "mdhd\1", 5) && memmem(all, size, "tkhd\1", 5),
		      "mdhd and tkhd upgraded to version 1");
		CHECK_INT(verify_track(all, size, 0, 1), 6, "samples still land on their data");
		const char *dir = getenv("KVSFS_MP4_WRITE_SEEDS");
		if (dir && all) {
			char path[512];
			snprintf(path, sizeof(path), "%s/synthetic-long.mp4", dir);
			FILE *fp = fopen(path, "wb");
			if (fp) {
				fwrite(all, 1, size, fp);
				fclose(fp);
			}
		}
		free(all);
	}
	mp4_join_free(j);
	buf_free(&p[0]);
	buf_free(&p[1]);
}

/* With KVSFS_MP4_WRITE_SEEDS=DIR, writes a few built files there (fuzz seeds). */
static void write_seeds(void)
{
	const char *dir = getenv("KVSFS_MP4_WRITE_SEEDS");
	if (!dir)
		return;
	struct fspec f = two_tracks(6, 9, 0, 0);
	f.co64 = 1;
	f.mdat_size0 = 1;
	struct buf b = BUF_INIT;
	build(&b, &f);
	char path[512];
	snprintf(path, sizeof(path), "%s/synthetic-co64.mp4", dir);
	FILE *fp = fopen(path, "wb");
	if (fp) {
		fwrite(b.data, 1, b.len, fp);
		fclose(fp);
	}
	buf_free(&b);
}

int main(void)
{
	write_seeds();
	test_long();
	test_join();
	test_rescale();
	test_mismatch();
	test_malformed();
	return check_done();
}
