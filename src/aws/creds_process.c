/*
 * creds_process: the credential_process source (see include/kvsfs/creds.h, step 2b).
 *
 * Design: "/bin/sh -c COMMAND" is started with posix_spawn (fork+exec that is safe in a threaded
 * process) in its own process group, with stdin /dev/null, stderr inherited, default signal
 * dispositions and an empty signal mask; stdout is a pipe read until EOF. One monotonic deadline
 * (process_timeout_ms from the start) bounds both the reading and the wait for the exit; on
 * timeout, too much output or any failure the whole group is killed and reaped, so no child is
 * ever left behind. The output holds secrets: it is wiped after parsing and never logged.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "creds_internal.h"
#include "kvsfs/clk.h"

#define PROCESS_MAX_OUTPUT (64 * 1024)

extern char **environ;

static void kill_child(pid_t pid)
{
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* Starts the command with its stdout on out_fd. Returns 0 and *pid, or a posix_spawn error. */
static int spawn_shell(struct creds_provider *p, int out_fd, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	sigset_t none, defs;
	sigemptyset(&none);
	sigemptyset(&defs);
	sigaddset(&defs, SIGPIPE);
	sigaddset(&defs, SIGCHLD);
	sigaddset(&defs, SIGINT);
	sigaddset(&defs, SIGTERM);
	sigaddset(&defs, SIGHUP);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &defs);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
				 POSIX_SPAWN_SETSIGDEF);
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", p->process_cmd, NULL };
	int src = posix_spawn(pid, "/bin/sh", &fa, &at, argv, p->env ? p->env : environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	return src;
}

/* Reads fd into b until EOF, the size limit or the deadline. Returns 0 or -errno with *why. */
static int read_output(int fd, int64_t deadline, struct buf *b, const char **why)
{
	for (;;) {
		int64_t left = deadline - clk_mono_ms();
		if (left <= 0) {
			*why = "timed out";
			return -ETIMEDOUT;
		}
		struct pollfd pf = { fd, POLLIN, 0 };
		int pr = poll(&pf, 1, (int)left);
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			*why = "poll failed";
			return -EIO;
		}
		if (pr == 0)
			continue;
		if (buf_reserve(b, 4096)) {
			*why = "out of memory";
			return -ENOMEM;
		}
		ssize_t n = read(fd, b->data + b->len, 4096);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			*why = "reading its output failed";
			return -EIO;
		}
		if (n == 0)
			return 0;
		b->len += (size_t)n;
		if (b->len > PROCESS_MAX_OUTPUT) {
			*why = "wrote more than 64 KiB";
			return -EFBIG;
		}
	}
}

/* After EOF: waits for the exit within the same deadline (the child is killed on timeout).
 * Returns 0 and *status, or -errno with *why. */
static int wait_exit(pid_t pid, int64_t deadline, int *status, const char **why)
{
	for (;;) {
		pid_t w = waitpid(pid, status, WNOHANG);
		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR) {
			*why = "its exit status is unknown";
			return -EIO;
		}
		if (clk_mono_ms() >= deadline) {
			kill_child(pid);
			*why = "timed out";
			return -ETIMEDOUT;
		}
		clk_sleep_ms(5);
	}
}

/* Turns the exit status and the output into credentials or an error sentence. */
static int judge(struct creds_provider *p, int status, const struct buf *b,
		 struct creds_value *out, char *err, size_t errlen)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
		snprintf(err, errlen, "credential_process of profile %s exited with status %d",
			 p->profile, WEXITSTATUS(status));
		return -EACCES;
	}
	if (WIFSIGNALED(status)) {
		snprintf(err, errlen, "credential_process of profile %s was killed by signal %d",
			 p->profile, WTERMSIG(status));
		return -EACCES;
	}
	const char *why = NULL;
	int rc = creds_parse_json(b->data ? b->data : "", b->len, "SessionToken", 1, 0,
				  CREDS_SOURCE_PROCESS, out, &why);
	if (rc)
		snprintf(err, errlen, "credential_process of profile %s: %s", p->profile, why);
	return rc;
}

int creds_process_fetch(struct creds_provider *p, struct creds_value *out, char *err,
			size_t errlen)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC)) {
		snprintf(err, errlen, "cannot run credential_process: %s", strerror(errno));
		return -EIO;
	}
	pid_t pid;
	int src = spawn_shell(p, fds[1], &pid);
	close(fds[1]);
	if (src) {
		close(fds[0]);
		snprintf(err, errlen, "cannot run credential_process of profile %s: %s", p->profile,
			 strerror(src));
		return -EIO;
	}
	int64_t deadline = clk_mono_ms() + p->process_timeout_ms;
	struct buf b = BUF_INIT;
	const char *why = NULL;
	int status = 0;
	int rc = read_output(fds[0], deadline, &b, &why);
	close(fds[0]);
	if (rc)
		kill_child(pid);
	else
		rc = wait_exit(pid, deadline, &status, &why);
	if (!rc)
		rc = judge(p, status, &b, out, err, errlen);
	else
		snprintf(err, errlen, "credential_process of profile %s %s", p->profile, why);
	creds_buf_wipe_free(&b);
	return rc;
}
