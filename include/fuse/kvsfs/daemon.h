/*
 * daemon: going to the background the way kvsfs needs it, before anything else exists.
 *
 * fork() keeps only the calling thread: a worker pool, a condition variable someone waits on,
 * libcurl's resolver threads or connection pool, OpenSSL's state are all half-copied by it. So
 * kvsfs forks first, while the process is nothing but parsed options, and the child does all
 * the work (credentials, endpoint checks, caches, the mount, every thread). The parent stays
 * attached to the terminal (or to mount(8)) only to learn how start-up ended: it waits on a
 * pipe for one status byte and exits with it. The child prints its own error sentence on the
 * inherited stderr before it reports a failure, so the user reads it exactly as with -f.
 *
 * Invariant: daemon_start() runs before any thread is created; daemon_ready() is called once.
 */
#ifndef KVSFS_DAEMON_H
#define KVSFS_DAEMON_H

#include <pthread.h>

struct daemon_ctx {
	int fd;       /* write end of the status pipe in the child; -1 when not daemonized */
};

/*
 * SIGUSR1 and SIGUSR2 (docs/OBSERVE.md): no signal handler runs kvsfs code. Both signals are
 * blocked in the first thread before any other exists (daemon_signals_block), so every thread
 * inherits the mask, and one thread takes them with sigwait() and calls the callbacks in plain
 * thread context, where logging and locking are allowed.
 */
struct daemon_signals {
	void (*on_usr1)(void *arg);   /* status to the log */
	void (*on_usr2)(void *arg);   /* debug logging on/off */
	void *arg;
	pthread_t thread;
	int started;
	int stopping;                 /* atomic */
};

/* Blocks SIGUSR1 and SIGUSR2 in the calling thread. Call before any thread is created. */
int daemon_signals_block(void);
/* Starts the thread that serves them. Returns 0 or a negative errno. */
int daemon_signals_start(struct daemon_signals *s);
/* Stops and joins that thread (a no-op when it never started). */
void daemon_signals_stop(struct daemon_signals *s);

/* Forks. In the parent it never returns: it waits for the child's status and exits with it
 * (1 with one sentence on stderr when the child died without one). In the child it returns 0
 * after setsid(); -errno (nothing forked) when the pipe or fork fails. */
int daemon_start(struct daemon_ctx *d);

/* Ends start-up. status 0: stdin/stdout go to /dev/null, stderr to log_fd when >= 0 (else
 * /dev/null), the working folder becomes "/", then the parent is told and exits 0. Any other
 * status is handed to the parent as its exit status (the error is already on stderr). A no-op
 * when d is not daemonized. */
void daemon_ready(struct daemon_ctx *d, int status, int log_fd);

#endif
