/*
 * kvsfs-mp4: drives the mp4 module for the pytest suites and for humans.
 *
 *   kvsfs-mp4 dump FILE                          one JSON object: movie and per-track info
 *   kvsfs-mp4 join [--chunk N] OUT PART1 PART2 ...
 *       joins the parts into OUT and prints one JSON object: the predicted size (mp4_join_size),
 *       the bytes written and the joined info. Without --chunk the file is written with
 *       mp4_join_write; with --chunk N it is copied with mp4_join_pread in N-byte reads (the way
 *       FUSE reads it).
 *
 * Exit status: 0 on success, 1 on a usage or I/O error, 2 when the mp4 module refused the input
 * (the reason is printed on stderr as "kvsfs-mp4: REASON").
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvsfs/buf.h"
#include "kvsfs/log.h"
#include "kvsfs/mp4.h"

static void print_info(struct buf *b, const struct mp4_info *in)
{
	buf_printf(b, "\"movie_timescale\":%" PRIu32 ",\"movie_duration\":%" PRIu64
		   ",\"duration_ms\":%" PRIu64 ",\"mdat_bytes\":%" PRIu64 ",\"tracks\":[",
		   in->movie_timescale, in->movie_duration, in->duration_ms, in->mdat_bytes);
	for (size_t i = 0; i < in->ntracks; i++) {
		const struct mp4_track_info *t = &in->tracks[i];
		buf_printf(b, "%s{\"track_id\":%" PRIu32 ",\"handler\":\"%s\",\"codec\":\"%s\","
			   "\"timescale\":%" PRIu32 ",\"samples\":%" PRIu32 ",\"sync_samples\":%" PRIu32
			   ",\"duration\":%" PRIu64 ",\"duration_ms\":%" PRIu64 ",\"width\":%u,\"height\":%u}",
			   i ? "," : "", t->track_id, t->handler, t->codec, t->timescale, t->sample_count,
			   t->sync_count, t->duration, t->duration_ms, t->width, t->height);
	}
	buf_appendz(b, "]");
}

static int usage(void)
{
	fprintf(stderr, "usage: kvsfs-mp4 dump FILE\n"
		"       kvsfs-mp4 join [--chunk N] OUT PART1 [PART2 ...]\n");
	return 1;
}

static int cmd_dump(const char *path, struct log_ctx *lg)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "kvsfs-mp4: %s: %s\n", path, strerror(errno));
		return 1;
	}
	struct mp4_input in = { .fd = fd, .name = path };
	struct mp4_info info;
	char why[MP4_REASON_MAX];
	int rc = mp4_info_read(&in, &info, lg, why, sizeof(why));
	close(fd);
	if (rc) {
		fprintf(stderr, "kvsfs-mp4: %s (%s)\n", why, strerror(-rc));
		return 2;
	}
	struct buf b = BUF_INIT;
	buf_appendz(&b, "{");
	print_info(&b, &info);
	buf_appendz(&b, "}\n");
	fputs(buf_str(&b), stdout);
	buf_free(&b);
	return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int cmd_join(int argc, char **argv, struct log_ctx *lg)
{
	size_t chunk = 0;
	if (argc >= 2 && strcmp(argv[0], "--chunk") == 0) {
		chunk = strtoul(argv[1], NULL, 10);
		if (!chunk)
			return usage();
		argc -= 2;
		argv += 2;
	}
	if (argc < 2)
		return usage();
	const char *out = argv[0];
	size_t n = (size_t)argc - 1;
	struct mp4_input *in = calloc(n, sizeof(*in));
	if (!in)
		return 1;
	int ret = 0;
	size_t opened = 0;
	for (; opened < n; opened++) {
		in[opened].fd = open(argv[1 + opened], O_RDONLY | O_CLOEXEC);
		in[opened].name = argv[1 + opened];
		if (in[opened].fd < 0) {
			fprintf(stderr, "kvsfs-mp4: %s: %s\n", argv[1 + opened], strerror(errno));
			ret = 1;
			break;
		}
	}
	struct mp4_join *j = NULL;
	char why[MP4_REASON_MAX];
	int rc = 0;
	if (!ret && (rc = mp4_join_prepare(in, n, lg, &j, why, sizeof(why)))) {
		fprintf(stderr, "kvsfs-mp4: %s (%s)\n", why, strerror(-rc));
		ret = 2;
	}
	int ofd = -1;
	if (!ret && (ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
		fprintf(stderr, "kvsfs-mp4: %s: %s\n", out, strerror(errno));
		ret = 1;
	}
	uint64_t written = 0;
	if (!ret && !chunk) {
		rc = mp4_join_write(j, ofd);
		written = (uint64_t)lseek(ofd, 0, SEEK_CUR);
	} else if (!ret) {
		uint8_t *b = malloc(chunk);
		rc = b ? 0 : -ENOMEM;
		while (!rc) {
			ssize_t k = mp4_join_pread(j, b, chunk, written);
			if (k <= 0) {
				rc = (int)k;
				break;
			}
			rc = write_all(ofd, b, (size_t)k);
			written += (uint64_t)k;
		}
		free(b);
	}
	if (!ret && rc) {
		fprintf(stderr, "kvsfs-mp4: writing %s: %s\n", out, strerror(-rc));
		ret = 1;
	}
	if (ofd >= 0 && close(ofd) < 0 && !ret)
		ret = 1;
	if (!ret) {
		struct mp4_info info;
		mp4_join_info(j, &info);
		struct buf b = BUF_INIT;
		buf_printf(&b, "{\"size\":%" PRIu64 ",\"written\":%" PRIu64 ",", mp4_join_size(j), written);
		print_info(&b, &info);
		buf_appendz(&b, "}\n");
		fputs(buf_str(&b), stdout);
		buf_free(&b);
	}
	mp4_join_free(j);
	for (size_t i = 0; i < opened; i++)
		close(in[i].fd);
	free(in);
	return ret;
}

int main(int argc, char **argv)
{
	struct log_ctx lg;
	log_init(&lg, getenv("KVSFS_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, stderr);
	int ret;
	if (argc == 3 && strcmp(argv[1], "dump") == 0)
		ret = cmd_dump(argv[2], &lg);
	else if (argc >= 4 && strcmp(argv[1], "join") == 0)
		ret = cmd_join(argc - 2, argv + 2, &lg);
	else
		ret = usage();
	log_destroy(&lg);
	return ret;
}
