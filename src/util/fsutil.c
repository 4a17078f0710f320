/*
 * fsutil: mkdir -p, write-everything, read-exactly and read-whole-file helpers (see
 * include/kvsfs/fsutil.h).
 */
#include "kvsfs/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvsfs/buf.h"

int fsutil_mkdir_p(const char *path)
{
	struct buf b = BUF_INIT;
	if (buf_appendz(&b, path) != 0)
		return -ENOMEM;
	int r = 0;
	for (char *p = b.data + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;
			*p = '\0';
			if (mkdir(b.data, 0700) != 0 && errno != EEXIST) {
				r = -errno;
				break;
			}
			*p = saved;
			if (saved == '\0')
				break;
		}
	}
	buf_free(&b);
	return r;
}

int fsutil_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fsutil_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

int fsutil_read_fd(int fd, size_t max, struct buf *out)
{
	for (;;) {
		if (buf_reserve(out, 65536))
			return -ENOMEM;
		ssize_t n = read(fd, out->data + out->len, 65536);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -EIO;
		}
		if (n == 0)
			return 0;
		out->len += (size_t)n;
		out->data[out->len] = '\0';
		if (out->len > max)
			return -EFBIG;
	}
}

int fsutil_lock_dir(const char *dir, const char *name, int *dirfd, int *lockfd,
		    enum fsutil_lock_step *step)
{
	*lockfd = -1;
	*step = FSUTIL_LOCK_OPEN_DIR;
	*dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0)
		return -errno;
	int r = 0;
	*step = FSUTIL_LOCK_OPEN_FILE;
	*lockfd = openat(*dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (*lockfd < 0) {
		r = -errno;
	} else if (flock(*lockfd, LOCK_EX | LOCK_NB) != 0) {
		*step = FSUTIL_LOCK_TAKE;
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(*lockfd);
		*lockfd = -1;
	}
	if (r) {
		close(*dirfd);
		*dirfd = -1;
	}
	return r;
}
