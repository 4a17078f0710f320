/*
 * fsutil: small file-system helpers shared by the on-disk modules (fcache, sizeidx), the shared
 * config files and the MP4 reader.
 * Stateless and thread-safe; errors are negative errno values.
 */
#ifndef KVSFS_FSUTIL_H
#define KVSFS_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

struct buf;

/* Creates path and its missing parents with mode 0700 (existing folders are fine).
 * Returns 0, -ENOMEM or the -errno of the mkdir that failed. */
int fsutil_mkdir_p(const char *path);
/* Writes all len bytes (retrying short writes and EINTR). Returns 0, -EIO when write(2)
 * returns 0, or -errno. */
int fsutil_write_all(int fd, const void *data, size_t len);

/* Reads exactly len bytes at offset off with pread (retrying short reads and EINTR; the file
 * position is not used). Returns 0, -EIO when the file ends first, or -errno. */
int fsutil_pread_all(int fd, void *buf, size_t len, uint64_t off);

/* Appends everything fd has until end of file to out (retrying EINTR). Returns 0, -ENOMEM,
 * -EIO for a read error, or -EFBIG once more than max bytes were read (out then holds what
 * was read; callers holding secrets wipe it). out stays NUL-terminated. */
int fsutil_read_fd(int fd, size_t max, struct buf *out);

/* Where fsutil_lock_dir failed. */
enum fsutil_lock_step {
	FSUTIL_LOCK_OPEN_DIR,   /* opening dir */
	FSUTIL_LOCK_OPEN_FILE,  /* opening or creating dir/name */
	FSUTIL_LOCK_TAKE,       /* flock */
};

/* Opens the existing folder dir and takes an exclusive flock on its file name (created 0600,
 * never followed as a symlink) without waiting: the one-process-per-folder rule of the on-disk
 * modules. On success *dirfd and *lockfd are open and the caller owns both (closing *lockfd
 * releases the lock). On failure nothing is left open, both are -1, *step says where it failed,
 * and the result is -EBUSY when another open file description holds the lock, else -errno. */
int fsutil_lock_dir(const char *dir, const char *name, int *dirfd, int *lockfd,
		    enum fsutil_lock_step *step);

#endif
