/*
 * sigv4_hash: SHA-256 and HMAC-SHA256 with OpenSSL libcrypto, for payload hashes (memory,
 * incremental, or a file range read with pread) and for the signer's key derivation.
 * Stateless; a struct sigv4_hasher belongs to one caller.
 */
#include "kvsfs/sigv4_hash.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sigv4_internal.h"

void sigv4_to_hex(const unsigned char *in, size_t n, char *out)
{
	static const char hexdig_lower[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexdig_lower[in[i] >> 4];
		out[2 * i + 1] = hexdig_lower[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int sigv4_hasher_init(struct sigv4_hasher *h)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	h->ctx = NULL;
	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return -EIO;
	}
	h->ctx = ctx;
	return 0;
}

int sigv4_hasher_update(struct sigv4_hasher *h, const void *data, size_t n)
{
	if (!h->ctx)
		return -EIO;
	if (n == 0)
		return 0;
	return EVP_DigestUpdate(h->ctx, data, n) == 1 ? 0 : -EIO;
}

void sigv4_hasher_free(struct sigv4_hasher *h)
{
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

int sigv4_hasher_final(struct sigv4_hasher *h, char hex[SIGV4_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	int rc = -EIO;
	hex[0] = '\0';
	if (h->ctx && EVP_DigestFinal_ex(h->ctx, md, &len) == 1 && len == 32) {
		sigv4_to_hex(md, 32, hex);
		rc = 0;
	}
	sigv4_hasher_free(h);
	return rc;
}

int sigv4_sha256_hex(const void *data, size_t n, char hex[SIGV4_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	static const char empty[1] = { 0 };
	hex[0] = '\0';
	if (EVP_Digest(n ? data : empty, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32)
		return -EIO;
	sigv4_to_hex(md, 32, hex);
	return 0;
}

int sigv4_sha256_fd(int fd, off_t offset, off_t len, char hex[SIGV4_HEX_LEN + 1])
{
	struct sigv4_hasher h;
	size_t bufsz = 1 << 16;
	char *b = malloc(bufsz);
	hex[0] = '\0';
	if (!b)
		return -ENOMEM;
	int rc = sigv4_hasher_init(&h);
	if (rc) {
		free(b);
		return rc;
	}
	off_t pos = offset;
	for (;;) {
		size_t want = bufsz;
		if (len >= 0) {
			off_t left = offset + len - pos;
			if (left <= 0)
				break;
			if ((uintmax_t)left < want)
				want = (size_t)left;
		}
		ssize_t got = pread(fd, b, want, pos);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (got == 0) {
			if (len >= 0)
				rc = -EIO; /* shorter than announced */
			break;
		}
		rc = sigv4_hasher_update(&h, b, (size_t)got);
		if (rc)
			break;
		pos += got;
	}
	free(b);
	if (rc) {
		sigv4_hasher_free(&h);
		return rc;
	}
	return sigv4_hasher_final(&h, hex);
}

int sigv4_hmac256(const void *key, size_t keylen, const char *msg, size_t n,
		  unsigned char out[32])
{
	unsigned int len = 0;
	if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, n, out, &len) ||
	    len != 32)
		return -EIO;
	return 0;
}
