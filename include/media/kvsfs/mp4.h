/*
 * mp4: a small ISO BMFF (MP4) box reader/writer that joins complete, non-fragmented MP4 files
 * (KVS GetClip parts: ftyp, moov, mdat) into one MP4 without decoding anything.
 *
 * Model: every part is read as top-level boxes (only the headers of mdat are read); its moov is
 * loaded into memory (at most MP4_MOOV_MAX bytes) and validated: box sizes (32/64-bit, 0 = to the
 * end), nesting (bounded: only the fixed path moov/trak/mdia/minf/stbl is walked), and every
 * table's declared entry count against its payload size before a single entry is read, so no
 * allocation is ever sized from a declared count. The joined file is "ftyp (part 1) + moov (built
 * in memory) + one mdat" where the mdat payload is the concatenation of every part's mdat
 * payloads, in order; the media bytes are never held in memory: they are read from the parts on
 * demand (mp4_join_pread / mp4_join_write). See docs/MP4.md.
 *
 * Errors: 0 or a negative errno. -EBADMSG: malformed input; -EMEDIUMTYPE: parts that cannot be
 * joined (different tracks or sample descriptions); -ENOTSUP: fragmented MP4 (moof/mvex); -EFBIG:
 * beyond the limits below; -ENOMEM; -EIO or the errno of a failed read/write; -EINVAL: bad
 * arguments. Functions taking (reason, reason_len) write a one-line human-readable cause there
 * (reason may be NULL) and log it once through lg (may be NULL).
 *
 * Thread-safety: no global state. A struct mp4_join is immutable after mp4_join_prepare, so
 * mp4_join_size/info/pread may be called from several threads at once (pread(2) on the parts).
 */
#ifndef KVSFS_MP4_H
#define KVSFS_MP4_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct log_ctx;

#define MP4_MAX_TRACKS 8
#define MP4_MOOV_MAX (64u << 20)   /* bytes of one input moov */
#define MP4_MAX_PARTS 4096
#define MP4_REASON_MAX 192         /* a reason buffer of this size never truncates in practice */

/* One input file: an open file descriptor (fd >= 0, read with pread; the caller keeps it open for
 * the life of any join using it and closes it), or, when fd < 0, a memory buffer mem[0..mem_len)
 * that must outlive the join. name (may be NULL) is only used in error reasons. */
struct mp4_input {
	int fd;
	const void *mem;
	uint64_t mem_len;
	const char *name;
};

struct mp4_track_info {
	uint32_t track_id;
	char handler[5];        /* hdlr handler type: "vide", "soun", ... (NUL-terminated) */
	char codec[5];          /* first sample entry: "avc1", "hvc1", "hev1", "mp4a", ... */
	uint32_t timescale;     /* mdhd timescale (ticks per second) */
	uint32_t sample_count;
	uint32_t sync_count;    /* sync samples (== sample_count when there is no stss) */
	uint64_t duration;      /* sum of the sample durations (stts), in timescale ticks */
	uint64_t duration_ms;   /* the same in milliseconds (rounded down) */
	uint16_t width, height; /* tkhd presentation size (integer part), 0 for audio */
};

struct mp4_info {
	uint32_t movie_timescale; /* mvhd timescale */
	uint64_t movie_duration;  /* mvhd duration, movie timescale */
	uint64_t duration_ms;     /* mvhd duration in milliseconds (rounded down) */
	uint64_t mdat_bytes;      /* sum of the mdat payload sizes */
	size_t ntracks;
	struct mp4_track_info tracks[MP4_MAX_TRACKS];
};

/* Reads and validates one MP4 and fills *info. Returns 0, -EBADMSG, -ENOTSUP, -EFBIG, -ENOMEM or
 * a read errno; on error *info is zeroed and reason says why. */
int mp4_info_read(const struct mp4_input *in, struct mp4_info *info, struct log_ctx *lg,
		  char *reason, size_t reason_len);

struct mp4_join;

/* Plans the join of parts[0..nparts) in order: reads and validates every part, matches tracks
 * (by handler type and order among tracks of that handler), checks that the sample descriptions
 * (stsd) are identical per track (bit-rate fields of btrt/esds aside), and builds the output moov.
 * Parts whose media timescale differs from part 1's are rescaled to part 1's timescale. On success
 * *out is a new join owned by the caller (free with mp4_join_free); it keeps referring to the
 * inputs (fds or memory), which must stay valid and unchanged until then. Returns 0, -EBADMSG,
 * -EMEDIUMTYPE, -ENOTSUP, -EFBIG, -ENOMEM, -EINVAL or a read errno (with reason). */
int mp4_join_prepare(const struct mp4_input *parts, size_t nparts, struct log_ctx *lg,
		     struct mp4_join **out, char *reason, size_t reason_len);

/* Exact size in bytes of the joined file. */
uint64_t mp4_join_size(const struct mp4_join *j);

/* Per-track summary of the joined file (as mp4_info_read would report for the output). */
void mp4_join_info(const struct mp4_join *j, struct mp4_info *info);

/* Copies up to len bytes of the joined file at offset off into buf. Returns the number of bytes
 * copied (0 at or after the end), or -EIO (a part became shorter) or the errno of a failed read. */
ssize_t mp4_join_pread(const struct mp4_join *j, void *buf, size_t len, uint64_t off);

/* Writes the whole joined file to out_fd (at its current position, handling short writes),
 * streaming the media 1 MiB at a time. Returns 0 or a negative errno. */
int mp4_join_write(const struct mp4_join *j, int out_fd);

/* Frees the join (not the inputs). NULL is allowed. */
void mp4_join_free(struct mp4_join *j);

/* Convenience for tools: opens the paths, joins them into out_path (created/truncated, mode 0644),
 * closes everything. Returns 0 or a negative errno (with reason). */
int mp4_join_files(const char *const *paths, size_t nparts, const char *out_path,
		   struct log_ctx *lg, char *reason, size_t reason_len);

#endif
