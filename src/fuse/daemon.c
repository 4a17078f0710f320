/*
 * daemon: fork first, report start-up through a pipe (see include/kvsfs/daemon.h).
 */
#include "kvsfs/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

static void usr_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGUSR1);
	sigaddset(set, SIGUSR2);
}

int daemon_signals_block(void)
{
	sigset_t set;
	usr_set(&set);
	return -pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void *signals_main(void *arg)
{
	struct daemon_signals *s = arg;
	sigset_t set;
	usr_set(&set);
	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (__atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE))
			break;
		if (sig == SIGUSR1 && s->on_usr1)
			s->on_usr1(s->arg);
		else if (sig == SIGUSR2 && s->on_usr2)
			s->on_usr2(s->arg);
	}
	return NULL;
}

int daemon_signals_start(struct daemon_signals *s)
{
	s->stopping = 0;
	int rc = pthread_create(&s->thread, NULL, signals_main, s);
	if (rc)
		return -rc;
	s->started = 1;
	return 0;
}

void daemon_signals_stop(struct daemon_signals *s)
{
	if (!s->started)
		return;
	__atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
	pthread_kill(s->thread, SIGUSR1); /* wakes sigwait; the flag makes it leave */
	pthread_join(s->thread, NULL);
	s->started = 0;
}
