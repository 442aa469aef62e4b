/* log.c: the daemon's log lines on stderr, one event per line, with a UTC timestamp. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "log.h"

static enum loket_log_level log_min = LOKET_LOG_INFO;

static const char *const log_names[] = {
	[LOKET_LOG_DEBUG] = "debug",
	[LOKET_LOG_INFO] = "info",
	[LOKET_LOG_WARN] = "warn",
	[LOKET_LOG_ERROR] = "error",
};

void
log_init(enum loket_log_level min_level)
{
	log_min = min_level;
	/* Line-buffered so that a test reading our stderr sees whole lines. */
	setvbuf(stderr, NULL, _IOLBF, 0);
}

void
log_set_level(enum loket_log_level min_level)
{
	log_min = min_level;
}

int
log_level_parse(const char *s, enum loket_log_level *level_r)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (strcasecmp(s, log_names[i]) == 0) {
			*level_r = (enum loket_log_level)i;
			return 0;
		}
	}
	return -1;
}

static void
log_line(enum loket_log_level level, const char *component, const char *errstr,
    const char *fmt, va_list ap)
{
	char ts[32], msg[2048];
	struct timeval tv;
	struct tm tm;
	int n;

	if (level < log_min)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		msg[0] = '\0';
	/* Newlines in a message would forge log lines: flatten them. */
	for (char *p = msg; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (errstr != NULL)
		fprintf(stderr, "%s.%03ldZ %s %s %s error=\"%s\"\n", ts, (long)(tv.tv_usec / 1000),
		    log_names[level], component, msg, errstr);
	else
		fprintf(stderr, "%s.%03ldZ %s %s %s\n", ts, (long)(tv.tv_usec / 1000),
		    log_names[level], component, msg);
}

void
log_vemit(enum loket_log_level level, const char *component, const char *fmt, va_list ap)
{
	log_line(level, component, NULL, fmt, ap);
}

#define LOG_FN(fn, level, with_errno)                                                       \
	void fn(const char *component, const char *fmt, ...)                                \
	{                                                                                    \
		int saved = errno;                                                           \
		va_list ap;                                                                  \
		va_start(ap, fmt);                                                           \
		log_line(level, component, with_errno ? strerror(saved) : NULL, fmt, ap);    \
		va_end(ap);                                                                  \
		errno = saved;                                                               \
	}

LOG_FN(log_debug, LOKET_LOG_DEBUG, 0)
LOG_FN(log_info, LOKET_LOG_INFO, 0)
LOG_FN(log_warn, LOKET_LOG_WARN, 1)
LOG_FN(log_warnx, LOKET_LOG_WARN, 0)
LOG_FN(log_error, LOKET_LOG_ERROR, 1)
LOG_FN(log_errorx, LOKET_LOG_ERROR, 0)
