/*
 * log: line-oriented logging to stderr or syslog (see include/kvsfs/log.h).
 * The whole line is formatted first, then written with one call under the mutex.
 */
#include "kvsfs/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include "kvsfs/clk.h"

static const char *const level_names[] = { "error", "warning", "info", "debug" };

void log_init(struct log_ctx *lg, int level, FILE *fp)
{
	lg->level = level;
	lg->use_syslog = 0;
	lg->fp = fp;
	memset(lg->recent, 0, sizeof(lg->recent));
	lg->recent_next = 0;
	pthread_mutex_init(&lg->lock, NULL);
}

void log_use_syslog(struct log_ctx *lg)
{
	pthread_mutex_lock(&lg->lock);
	if (!lg->use_syslog)
		openlog("kvsfs", LOG_PID, LOG_DAEMON);
	lg->use_syslog = 1;
	pthread_mutex_unlock(&lg->lock);
}

void log_destroy(struct log_ctx *lg)
{
	if (lg->use_syslog)
		closelog();
	pthread_mutex_destroy(&lg->lock);
}

int log_enabled(const struct log_ctx *lg, int level)
{
	return lg && level <= __atomic_load_n(&lg->level, __ATOMIC_RELAXED);
}

void log_set_level(struct log_ctx *lg, int level)
{
	__atomic_store_n(&lg->level, level, __ATOMIC_RELAXED);
}

int log_get_level(const struct log_ctx *lg)
{
	return __atomic_load_n(&lg->level, __ATOMIC_RELAXED);
}

size_t log_recent_list(struct log_ctx *lg, struct log_recent *out, size_t n)
{
	size_t k = 0;
	pthread_mutex_lock(&lg->lock);
	for (unsigned i = 0; i < LOG_RECENT && k < n; i++) {
		const struct log_recent *r = &lg->recent[(lg->recent_next + i) % LOG_RECENT];
		if (r->t_ms)
			out[k++] = *r;
	}
	pthread_mutex_unlock(&lg->lock);
	return k;
}

void log_msg(struct log_ctx *lg, int level, const char *module, const char *fmt, ...)
{
	if (!log_enabled(lg, level))
		return;
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One event, one line: fold embedded newlines. */
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (level < 0)
		level = 0;
	if (level > LOG_LEVEL_DEBUG)
		level = LOG_LEVEL_DEBUG;
	int64_t now = level <= LOG_LEVEL_WARN ? clk_wall_ms() : 0;
	pthread_mutex_lock(&lg->lock);
	if (now) {
		struct log_recent *r = &lg->recent[lg->recent_next++ % LOG_RECENT];
		r->t_ms = now;
		r->level = level;
		size_t ml = strlen(module ? module : "-");
		if (ml > sizeof(r->text) / 2)
			ml = sizeof(r->text) / 2;
		memcpy(r->text, module ? module : "-", ml);
		memcpy(r->text + ml, ": ", 2);
		size_t room = sizeof(r->text) - ml - 3, ll = strlen(line);
		memcpy(r->text + ml + 2, line, ll < room ? ll : room);
		r->text[ml + 2 + (ll < room ? ll : room)] = '\0';
	}
	if (lg->use_syslog) {
		static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
		syslog(prio[level], "%s: %s", module ? module : "-", line);
	} else {
		FILE *fp = lg->fp ? lg->fp : stderr;
		fprintf(fp, "kvsfs[%s] %s: %s\n", level_names[level], module ? module : "-", line);
		fflush(fp);
	}
	pthread_mutex_unlock(&lg->lock);
}

int log_header_is_secret(const char *name)
{
	static const char *const secret[] = {
		"authorization", "x-amz-security-token", "cookie", "set-cookie",
		"x-aws-ec2-metadata-token", "proxy-authorization",
	};
	for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
		if (strcasecmp(name, secret[i]) == 0)
			return 1;
	return 0;
}
