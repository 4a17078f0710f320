/*
 * daemon: fork first, report start-up through a pipe (see include/kvsfs/daemon.h).
 */
#include "kvsfs/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The parent's whole life: one status byte from the child, or its death. */
static void __attribute__((noreturn)) parent_wait(int fd, pid_t child)
{
	unsigned char st;
	ssize_t n;
	do
		n = read(fd, &st, 1);
	while (n < 0 && errno == EINTR);
	if (n == 1)
		_exit(st);
	int ws = 0;
	if (waitpid(child, &ws, 0) == child && WIFSIGNALED(ws))
		fprintf(stderr, "kvsfs: the daemon was killed by signal %d during start-up\n",
			WTERMSIG(ws));
	else if (WIFEXITED(ws) && WEXITSTATUS(ws) != 0)
		_exit(WEXITSTATUS(ws));
	else
		fprintf(stderr, "kvsfs: the daemon ended during start-up\n");
	_exit(1);
}

int daemon_start(struct daemon_ctx *d)
{
	int p[2];
	d->fd = -1;
	if (pipe2(p, O_CLOEXEC) != 0)
		return -errno;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid > 0) {
		close(p[1]);
		parent_wait(p[0], pid);
	}
	close(p[0]);
	d->fd = p[1];
	/* a session of its own: the terminal's SIGHUP/SIGINT no longer reach the daemon */
	setsid();
	return 0;
}

void daemon_ready(struct daemon_ctx *d, int status, int log_fd)
{
	if (d->fd < 0)
		return;
	if (status == 0) {
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (nul >= 0) {
			dup2(nul, STDIN_FILENO);
			dup2(nul, STDOUT_FILENO);
			dup2(log_fd >= 0 ? log_fd : nul, STDERR_FILENO);
			if (nul > STDERR_FILENO)
				close(nul);
		}
		if (chdir("/") != 0) {
			/* "/" always exists; nothing to report to anyone at this point */
		}
	}
	fflush(NULL);
	unsigned char st = (unsigned char)(status < 0 ? 1 : status > 255 ? 1 : status);
	ssize_t n;
	do
		n = write(d->fd, &st, 1);
	while (n < 0 && errno == EINTR);
	close(d->fd);
	d->fd = -1;
}
