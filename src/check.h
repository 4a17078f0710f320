/*
 * check: `kvsfs check [-o OPTIONS]` (src/check.c, docs/IAM.md): one harmless call per IAM
 * action the options need, one line each, without mounting. Part of the composition root (it
 * sees every layer, like main.c).
 */
#ifndef KVSFS_CHECK_H
#define KVSFS_CHECK_H

struct awsreq_ctx;
struct kvs_client;
struct s3_client;

/* What main built from the options (all borrowed). */
struct check_setup {
	struct awsreq_ctx *aws;
	struct kvs_client *kvs;
	struct s3_client *s3;        /* NULL without export= */
	const char *region, *kvs_endpoint, *s3_endpoint, *creds_source;
	const char *stream;          /* the first of streams=, or NULL: the first one listed */
	const char *stream_prefix;
	const char *export_url;      /* "s3://BUCKET/PREFIX" for the heading */
	const char *export_prefix;
};

/* Runs the checks, printing to stdout. Returns the exit status: 0 when every action is
 * allowed, 1 when one is missing or cannot be checked. */
int check_run(const struct check_setup *cs);

#endif
