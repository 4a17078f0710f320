/*
 * sigv4_hash: SHA-256 payload hashes as SigV4 wants them (64 lowercase hex digits), of memory,
 * of a stream fed piece by piece, or of a file range read with pread.
 * No global state; a struct sigv4_hasher belongs to one caller.
 */
#ifndef KVSFS_SIGV4_HASH_H
#define KVSFS_SIGV4_HASH_H

#include <stddef.h>
#include <sys/types.h>

/* Length of a hex SHA-256 (a buffer needs SIGV4_HEX_LEN + 1 bytes). */
#define SIGV4_HEX_LEN 64

/* Incremental SHA-256 for payload hashes of large bodies. Usage: init, update*, final (final also
 * frees); call sigv4_hasher_free() instead to abandon. Not thread-safe per object. */
struct sigv4_hasher {
	void *ctx; /* EVP_MD_CTX, owned */
};

/* Starts a hash. Returns 0, -ENOMEM or -EIO. */
int sigv4_hasher_init(struct sigv4_hasher *h);
/* Adds n bytes. Returns 0 or -EIO. */
int sigv4_hasher_update(struct sigv4_hasher *h, const void *data, size_t n);
/* Writes the lowercase hex digest (65 bytes with NUL) and frees h. Returns 0 or -EIO. */
int sigv4_hasher_final(struct sigv4_hasher *h, char hex[SIGV4_HEX_LEN + 1]);
/* Frees h without a digest (safe on a finished or zeroed hasher). */
void sigv4_hasher_free(struct sigv4_hasher *h);

/* SHA-256 hex of a memory block (data may be NULL when n == 0). Returns 0 or -ENOMEM/-EIO. */
int sigv4_sha256_hex(const void *data, size_t n, char hex[SIGV4_HEX_LEN + 1]);
/* SHA-256 hex of len bytes of fd from offset (pread; the file position is not used), or up to
 * end of file when len < 0. Returns 0, -EIO when the file is shorter than len, or -errno. */
int sigv4_sha256_fd(int fd, off_t offset, off_t len, char hex[SIGV4_HEX_LEN + 1]);

#endif
