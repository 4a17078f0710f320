/*
 * s3_testing.h: test-only settings of the S3 client. Not part of the API (kvsfs/s3.h): only the
 * test tools include it (tests/tools/meson.build gives them this folder as an include path); the
 * daemon never does.
 *
 * The settings are fixed when the client is created, so the client stays immutable and
 * thread-safe like one made by s3_client_new.
 */
#ifndef KVSFS_S3_TESTING_H
#define KVSFS_S3_TESTING_H

#include "kvsfs/s3.h"

struct s3_testing {
	int corrupt_md5;  /* every PutObject / UploadPart sends a wrong Content-MD5 (the server must
	                   * reject it with BadDigest / InvalidDigest: tests of the integrity check) */
};

/* s3_client_new with test settings t (NULL: none, the same as s3_client_new). Same errors. */
int s3_client_new_testing(const struct s3_client_opts *opts, const struct s3_testing *t,
			  struct s3_client **out);

#endif
