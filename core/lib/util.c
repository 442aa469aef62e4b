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

int64_t
util_test_hold_answer_ms(void)
{
	const char *v = getenv("LOKET_TEST_HOLD_ANSWER_MS");
	char *end;
	long long ms;

	if (v == NULL || *v == '\0')
		return 0;
	errno = 0;
	ms = strtoll(v, &end, 10);
	if (errno != 0 || *end != '\0' || ms < 0 || ms > 600000)
		return -1;
	return ms;
}

void
util_time_format(int64_t ms, char *buf, size_t len)
{
	/* Floor division: -1 ms is 1969-12-31T23:59:59.999Z, not a negative fraction. */
	int64_t secs = ms / 1000 - (ms % 1000 < 0 ? 1 : 0);
	int frac = (int)(ms % 1000 + (ms % 1000 < 0 ? 1000 : 0));
	time_t t = (time_t)secs;
	struct tm tm;
	size_t n;

	/*
	 * Stored times come from rules too; one past what gmtime knows must not
	 * print garbage. The milliseconds are three digits put by hand: every
	 * list the API answers formats several times per row, and a second
	 * snprintf doubled the cost of each.
	 */
	if (len < 6 || gmtime_r(&t, &tm) == NULL ||
	    (n = strftime(buf, len - 5, "%Y-%m-%dT%H:%M:%S", &tm)) == 0) {
		snprintf(buf, len, "(invalid time)");
		return;
	}
	buf[n++] = '.';
	buf[n++] = (char)('0' + frac / 100);
	buf[n++] = (char)('0' + frac / 10 % 10);
	buf[n++] = (char)('0' + frac % 10);
	buf[n++] = 'Z';
	buf[n] = '\0';
}

/*
 * Reads exactly n ASCII digits. Each character is looked at before the next one, so a
 * short string stops at its NUL and nothing past it is read.
 */
static int
util_digits(const char *s, int n, int *v_r)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*v_r = v;
	return 0;
}

static int
util_days_in_month(int year, int month)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 ? 28 + leap : days[month - 1];
}

/* Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t
util_days_from_civil(int year, int month, int mday)
{
	int64_t y = year - (month <= 2);
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + mday - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

int
util_time_parse(const char *s, int64_t *ms_r)
{
	int year, month, mday, hour = 0, min = 0, sec = 0;
	int64_t frac_ms = 0, offset = 0;
	const char *rest;

	/* Every field has a fixed width and is checked character by character, in order. */
	if (util_digits(s, 4, &year) < 0 || s[4] != '-' || util_digits(s + 5, 2, &month) < 0 ||
	    s[7] != '-' || util_digits(s + 8, 2, &mday) < 0)
		return -1;
	if (month < 1 || month > 12 || mday < 1 || mday > util_days_in_month(year, month))
		return -1;
	rest = s + 10;
	if (*rest == '\0')
		goto done;
	if (*rest != 'T' && *rest != 't' && *rest != ' ')
		return -1;
	rest++;
	if (util_digits(rest, 2, &hour) < 0 || rest[2] != ':' ||
	    util_digits(rest + 3, 2, &min) < 0 || rest[5] != ':' ||
	    util_digits(rest + 6, 2, &sec) < 0)
		return -1;
	/* 60 is a leap second (RFC 3339 5.7); it counts as the next minute's first. */
	if (hour > 23 || min > 59 || sec > 60)
		return -1;
	rest += 8;
	if (*rest == '.') {
		int digits = 0;

		for (rest++; *rest >= '0' && *rest <= '9'; rest++, digits++)
			if (digits < 3)
				frac_ms = frac_ms * 10 + (*rest - '0');
		if (digits == 0)
			return -1;
		for (; digits < 3; digits++)
			frac_ms *= 10;
	}
	if (*rest == 'Z' || *rest == 'z') {
		rest++;
	} else if (*rest == '+' || *rest == '-') {
		int oh, om;

		if (util_digits(rest + 1, 2, &oh) < 0 || rest[3] != ':' ||
		    util_digits(rest + 4, 2, &om) < 0 || oh > 23 || om > 59)
			return -1;
		offset = (int64_t)(oh * 60 + om) * 60 * (*rest == '+' ? 1 : -1);
		rest += 6;
	} else {
		return -1;
	}
	if (*rest != '\0')
		return -1;
done:
	*ms_r = (util_days_from_civil(year, month, mday) * 86400 + hour * 3600 + min * 60 + sec -
		    offset) * 1000 + frac_ms;
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
		/* mktime would roll 2026-02-31 over into March. */
		if (tm.tm_mon < 0 || tm.tm_mon > 11 ||
		    tm.tm_mday > util_days_in_month(tm.tm_year + 1900, tm.tm_mon + 1))
			return -1;
		tm.tm_isdst = -1;
		if ((t = mktime(&tm)) == (time_t)-1)
			return -1;
		*ms_r = (int64_t)t * 1000;
		return 0;
	}
	return util_time_parse(s, ms_r);
}

const char *
util_error(const char *fmt, ...)
{
	static _Thread_local char slots[UTIL_ERROR_SLOTS][UTIL_ERROR_MAX];
	static _Thread_local unsigned int next;
	char *buf = slots[next++ % UTIL_ERROR_SLOTS];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, UTIL_ERROR_MAX, fmt, ap);
	va_end(ap);
	return buf;
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

/*
 * One UTF-8 character at p, as jansson accepts them (no overlong forms, no surrogates,
 * nothing past U+10FFFF). Sets *len_r to the bytes it spans, or for bytes that are not
 * UTF-8 to the longest start of a character they form (at least 1). Returns 0 for a
 * character, -1 for bytes that are not one, 1 for a character the string's end cuts.
 * Reads no further than the first byte that does not fit, so never past the NUL.
 */
static int
util_utf8_char(const unsigned char *p, size_t *len_r)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t need, i;

	*len_r = 1;
	if (p[0] < 0x80)
		return 0;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		need = 2;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		need = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;
		else if (p[0] == 0xed)
			hi = 0x9f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		need = 4;
		if (p[0] == 0xf0)
			lo = 0x90;
		else if (p[0] == 0xf4)
			hi = 0x8f;
	} else {
		return -1;
	}
	for (i = 1; i < need; i++) {
		if (p[i] < lo || p[i] > hi) {
			*len_r = i;
			return p[i] == '\0' ? 1 : -1;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	*len_r = need;
	return 0;
}

size_t
util_utf8_prefix(const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0, len;

	while (n < max && p[n] != '\0') {
		util_utf8_char(p + n, &len);
		if (len > max - n)
			break;
		n += len;
	}
	return n;
}

char *
util_utf8_clean(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len;
	char *out, *o;
	int rc;

	/* Each byte becomes at most the 3 bytes of U+FFFD. */
	if ((out = malloc(strlen(s) * 3 + 1)) == NULL)
		return NULL;
	for (o = out; *p != '\0'; p += len) {
		rc = util_utf8_char(p, &len);
		if (rc == 0) {
			memcpy(o, p, len);
			o += len;
		} else if (rc < 0) {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
		}
		/* rc == 1: a character cut by a byte count; it ends the text and is dropped. */
	}
	*o = '\0';
	return out;
}
