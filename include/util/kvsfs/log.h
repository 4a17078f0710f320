/*
 * log: one line per event, to stderr (foreground) or syslog (daemon).
 *
 * There is no global logger: a struct log_ctx is created by main() and passed down inside each
 * module's context. Every line is "kvsfs[LEVEL] module: message". Lines are written whole under a
 * mutex, so threads never interleave. Modules must never pass secrets (secret keys, session tokens,
 * signatures, presigned URLs' tokens) to these functions; log_redact() helps for header values.
 */
#ifndef KVSFS_LOG_H
#define KVSFS_LOG_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN = 1,
	LOG_LEVEL_INFO = 2,
	LOG_LEVEL_DEBUG = 3,
};

#define LOG_RECENT 8 /* warnings and errors kept for MNT/.kvsfs/status */

/* A warning or an error kept for the status page. */
struct log_recent {
	int64_t t_ms;    /* wall clock; 0: unused */
	int level;
	char text[240];  /* "module: message", cut */
};

struct log_ctx {
	int level;       /* messages above this level are dropped (log_set_level may change it) */
	int use_syslog;  /* 1: syslog(3); 0: write to fp */
	FILE *fp;        /* stderr when NULL */
	pthread_mutex_t lock;
	struct log_recent recent[LOG_RECENT]; /* the last warnings and errors (a ring) */
	unsigned recent_next;
};

/* Initialises lg to write to fp (stderr when NULL) at the given level. */
void log_init(struct log_ctx *lg, int level, FILE *fp);
/* Switches to syslog (ident "kvsfs"); used after daemonizing. */
void log_use_syslog(struct log_ctx *lg);
/* Releases the mutex. */
void log_destroy(struct log_ctx *lg);
/* Writes one line. lg may be NULL (the message is dropped). */
void log_msg(struct log_ctx *lg, int level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Sets the level at run time (SIGUSR2 toggles debug); safe from any thread. */
void log_set_level(struct log_ctx *lg, int level);
/* The current level. */
int log_get_level(const struct log_ctx *lg);
/* Copies the last warnings and errors, oldest first, into out (up to n); returns how many. */
size_t log_recent_list(struct log_ctx *lg, struct log_recent *out, size_t n);
/* True when a message at level would be written (to skip building costly debug text). */
int log_enabled(const struct log_ctx *lg, int level);
/* Returns 1 when an HTTP header of this name carries a secret and its value must not be logged
 * (Authorization, X-Amz-Security-Token, Cookie, X-aws-ec2-metadata-token, ...), else 0. */
int log_header_is_secret(const char *name);

#define LOG_ERROR(lg, mod, ...) log_msg((lg), LOG_LEVEL_ERROR, (mod), __VA_ARGS__)
#define LOG_WARN(lg, mod, ...) log_msg((lg), LOG_LEVEL_WARN, (mod), __VA_ARGS__)
#define LOG_INFO(lg, mod, ...) log_msg((lg), LOG_LEVEL_INFO, (mod), __VA_ARGS__)
#define LOG_DEBUG(lg, mod, ...) log_msg((lg), LOG_LEVEL_DEBUG, (mod), __VA_ARGS__)

#endif
