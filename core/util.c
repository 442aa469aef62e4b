/* util.c: small value parsers and string helpers shared by the core and loketctl. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util.h"

static int
util_number_suffix(const char *s, uint64_t *num_r, const char **suffix_r)
{
	char *end;
	unsigned long long v;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	while (isspace((unsigned char)*end))
		end++;
	*num_r = v;
	*suffix_r = end;
	return 0;
}

int
util_parse_duration_ms(const char *s, uint64_t *ms_r)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
		{ "d", 86400000 },
	};
	const char *suffix;
	uint64_t v;

	if (util_number_suffix(s, &v, &suffix) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(suffix, units[i].unit) == 0) {
			if (v > UINT64_MAX / units[i].ms)
				return -1;
			*ms_r = v * units[i].ms;
			return 0;
		}
	}
	return -1;
}

int
util_parse_size(const char *s, uint64_t *bytes_r)
{
	const char *suffix;
	uint64_t v, mul;

	if (util_number_suffix(s, &v, &suffix) < 0)
		return -1;
	if (suffix[0] == '\0')
		mul = 1;
	else if (suffix[1] != '\0' && strcasecmp(suffix + 1, "b") != 0 &&
	    strcasecmp(suffix + 1, "ib") != 0)
		return -1;
	else if (tolower((unsigned char)suffix[0]) == 'k')
		mul = 1024;
	else if (tolower((unsigned char)suffix[0]) == 'm')
		mul = 1024 * 1024;
	else if (tolower((unsigned char)suffix[0]) == 'g')
		mul = 1024 * 1024 * 1024;
	else
		return -1;
	if (v > UINT64_MAX / mul)
		return -1;
	*bytes_r = v * mul;
	return 0;
}

int
util_parse_bool(const char *s, int *b_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*b_r = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*b_r = 0;
			return 0;
		}
	}
	return -1;
}

int
util_parse_int(const char *s, int64_t *v_r)
{
	char *end;
	long long v;

	if (*s == '\0')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*v_r = v;
	return 0;
}

int
util_parse_hostport(const char *s, char **host_r, uint16_t *port_r)
{
	const char *colon, *host_end, *host = s;
	int64_t port;

	if (*s == '[') {
		host = s + 1;
		host_end = strchr(host, ']');
		if (host_end == NULL || host_end[1] != ':')
			return -1;
		colon = host_end + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		host_end = colon;
	}
	if (host_end == host || util_parse_int(colon + 1, &port) < 0 || port < 0 || port > 65535)
		return -1;
	*host_r = strndup(host, (size_t)(host_end - host));
	if (*host_r == NULL)
		return -1;
	*port_r = (uint16_t)port;
	return 0;
}

uint64_t
util_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int
util_path_join(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* How far the test clock has moved; 0 unless LOKET_TEST_CLOCK=1 (any thread reads it). */
static _Atomic int_least64_t util_clock_moved_ms;

int64_t
util_time_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + atomic_load(&util_clock_moved_ms);
}

int
util_test_clock_on(void)
{
	const char *v = getenv("LOKET_TEST_CLOCK");

	return v != NULL && strcmp(v, "1") == 0;
}

int
util_test_clock_move(int64_t ms)
{
	/* Only forward: stored times and armed timers assume time does not go back. */
	if (!util_test_clock_on() || ms <= 0)
		return -1;
	atomic_fetch_add(&util_clock_moved_ms, ms);
	return 0;
}

int
util_test_clock_start(void)
{
	const char *v = getenv("LOKET_TEST_CLOCK_OFFSET");
	uint64_t ms;

	if (!util_test_clock_on() || v == NULL || *v == '\0')
		return 0;
	if (util_parse_duration_ms(v, &ms) < 0 || ms == 0 || ms > INT64_MAX / 2)
		return -1;
	return util_test_clock_move((int64_t)ms);
}

void
util_time_format(int64_t ms, char *buf, size_t len)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	char base[32];

	gmtime_r(&secs, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", base, (int)(ms % 1000));
}

int
util_time_parse(const char *s, int64_t *ms_r)
{
	struct tm tm = { 0 };
	const char *rest;
	int64_t frac_ms = 0, offset = 0;

	if ((rest = strptime(s, "%Y-%m-%d", &tm)) == NULL)
		return -1;
	if (*rest == '\0')
		goto done;
	if ((*rest != 'T' && *rest != ' ') || (rest = strptime(rest + 1, "%H:%M:%S", &tm)) == NULL)
		return -1;
	if (*rest == '.') {
		int digits = 0;

		for (rest++; isdigit((unsigned char)*rest); rest++, digits++)
			if (digits < 3)
				frac_ms = frac_ms * 10 + (*rest - '0');
		for (; digits < 3; digits++)
			frac_ms *= 10;
	}
	if (*rest == 'Z' || *rest == 'z') {
		rest++;
	} else if (*rest == '+' || *rest == '-') {
		int hh, mm;

		if (sscanf(rest + 1, "%2d:%2d", &hh, &mm) != 2 || hh > 23 || mm > 59)
			return -1;
		offset = (hh * 60 + mm) * 60 * (*rest == '+' ? 1 : -1);
		rest += 6;
	} else {
		return -1;
	}
	if (*rest != '\0')
		return -1;
done:
	*ms_r = ((int64_t)timegm(&tm) - offset) * 1000 + frac_ms;
	return 0;
}

int
util_time_year(int64_t ms)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;

	localtime_r(&secs, &tm);
	return tm.tm_year + 1900;
}

int
util_time_parse_local(const char *s, int64_t *ms_r)
{
	static const char *const formats[] = { "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M",
		"%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d", NULL };

	for (size_t i = 0; formats[i] != NULL; i++) {
		struct tm tm = { 0 };
		const char *rest = strptime(s, formats[i], &tm);
		time_t t;

		if (rest == NULL || *rest != '\0')
			continue;
		tm.tm_isdst = -1;
		if ((t = mktime(&tm)) == (time_t)-1)
			return -1;
		*ms_r = (int64_t)t * 1000;
		return 0;
	}
	return util_time_parse(s, ms_r);
}

char *
util_printf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}
