/* calendar.c: opening hours, Belgian holidays, closing days; deadlines counted in open time. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "calendar.h"
#include "util.h"

/*
 * How many days in a row may be closed before we give up looking for the
 * next opening: two years, so that a calendar closed for good ends a search.
 */
#define CALENDAR_SEARCH_DAYS (2 * 366)
/*
 * No deadline lies further ahead than this: it bounds the walk when a
 * calendar with a minute of open time a week meets a duration of years.
 */
#define CALENDAR_HORIZON_DAYS (100 * 366)
#define CALENDAR_MINUTES_PER_DAY (24 * 60)

enum calendar_holidays {
	CALENDAR_HOLIDAYS_NONE,
	CALENDAR_HOLIDAYS_BELGIUM,
};

/* Wall-clock minutes after local midnight: opening hours do not move with DST. */
struct calendar_period {
	int open;
	int close; /* up to 24:00, the midnight that ends the day */
};

struct calendar_day {
	struct calendar_period periods[CALENDAR_MAX_PERIODS];
	int nperiods;
	int closed_word; /* the file said "closed", so no periods may follow */
	int line; /* where the file set this day; 0 when it did not */
};

struct calendar_closing {
	int year; /* 0: the same date every year */
	int month;
	int mday;
	int line;
};

struct calendar {
	struct calendar_day week[7]; /* indexed like tm_wday: 0 is Sunday */
	enum calendar_holidays holidays;
	int holidays_line;
	struct calendar_closing *closings;
	size_t nclosings;
};

static const char *const calendar_day_names[7] = {
	"sunday",
	"monday",
	"tuesday",
	"wednesday",
	"thursday",
	"friday",
	"saturday",
};

struct calendar_parse {
	struct calendar *cal;
	const char *path;
	FILE *fp;
	int line;
	int nkeys;
	int continuation; /* the current line is indented, so inih hands it to the previous key */
	int error_line; /* nonzero once parsing failed; error may still be NULL without memory */
	char *error;
};

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static long
calendar_day_number(int year, int month, int mday)
{
	long y = (long)year - (month <= 2);
	long era = (y >= 0 ? y : y - 399) / 400;
	long yoe = y - era * 400;
	long doy = (153L * (month > 2 ? month - 3 : month + 9) + 2) / 5 + mday - 1;
	long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

static void
calendar_civil(long days, int *year_r, int *month_r, int *mday_r)
{
	long z = days + 719468;
	long era = (z >= 0 ? z : z - 146096) / 146097;
	long doe = z - era * 146097;
	long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	long mp = (5 * doy + 2) / 153;
	long month = mp < 10 ? mp + 3 : mp - 9;

	*year_r = (int)(yoe + era * 400 + (month <= 2));
	*month_r = (int)month;
	*mday_r = (int)(doy - (153 * mp + 2) / 5 + 1);
}

/* 0 is Sunday, like tm_wday; 1970-01-01 was a Thursday. */
static int
calendar_weekday(long days)
{
	long w = (days + 4) % 7;

	return (int)(w < 0 ? w + 7 : w);
}

static int
calendar_days_in_month(int year, int month)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 && leap ? 29 : days[month - 1];
}

void
calendar_easter(int year, int *month_r, int *mday_r)
{
	/* The anonymous Gregorian computus (Meeus/Jones/Butcher). */
	int a = year % 19, b = year / 100, c = year % 100;
	int d = b / 4, e = b % 4, f = (b + 8) / 25, g = (b - f + 1) / 3;
	int h = (19 * a + b - d - g + 15) % 30;
	int i = c / 4, k = c % 4;
	int l = (32 + 2 * e + 2 * i - h - k) % 7;
	int m = (a + 11 * h + 22 * l) / 451;
	int n = h + l - 7 * m + 114;

	*month_r = n / 31;
	*mday_r = n % 31 + 1;
}

/* The ten legal public holidays of Belgium (wettelijke feestdagen). */
static int
calendar_belgian_holiday(int year, int month, int mday)
{
	static const struct {
		int month, mday;
	} fixed[] = {
		{ 1, 1 }, /* New Year */
		{ 5, 1 }, /* Labour Day */
		{ 7, 21 }, /* National Day */
		{ 8, 15 }, /* Assumption */
		{ 11, 1 }, /* All Saints */
		{ 11, 11 }, /* Armistice */
		{ 12, 25 }, /* Christmas */
	};
	int easter_month, easter_mday;
	long day, easter;

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (fixed[i].month == month && fixed[i].mday == mday)
			return 1;
	/* The moveable feasts all fall between late March and mid June. */
	if (month < 3 || month > 6)
		return 0;
	calendar_easter(year, &easter_month, &easter_mday);
	easter = calendar_day_number(year, easter_month, easter_mday);
	day = calendar_day_number(year, month, mday);
	/* Easter Monday, Ascension, Whit Monday. */
	return day == easter + 1 || day == easter + 39 || day == easter + 50;
}

int
calendar_is_holiday(const struct calendar *cal, int year, int month, int mday)
{
	if (month < 1 || month > 12 || mday < 1 || mday > calendar_days_in_month(year, month))
		return 0;
	if (cal->holidays == CALENDAR_HOLIDAYS_BELGIUM
	    && calendar_belgian_holiday(year, month, mday))
		return 1;
	for (size_t i = 0; i < cal->nclosings; i++) {
		const struct calendar_closing *c = &cal->closings[i];

		if ((c->year == 0 || c->year == year) && c->month == month && c->mday == mday)
			return 1;
	}
	return 0;
}

/* The opening hours of a day, or NULL when it is closed all day. */
static const struct calendar_day *
calendar_open_day(const struct calendar *cal, long day)
{
	const struct calendar_day *wd = &cal->week[calendar_weekday(day)];
	int year, month, mday;

	if (wd->nperiods == 0)
		return NULL;
	calendar_civil(day, &year, &month, &mday);
	return calendar_is_holiday(cal, year, month, mday) ? NULL : wd;
}

/* mktime for a local wall-clock minute of a day: -1 when it does not exist. */
static time_t
calendar_mktime(long day, int minute)
{
	struct tm tm = { 0 };
	int year, month, mday;

	calendar_civil(day, &year, &month, &mday);
	tm.tm_year = year - 1900;
	tm.tm_mon = month - 1;
	tm.tm_mday = mday;
	tm.tm_hour = minute / 60;
	tm.tm_min = minute % 60;
	tm.tm_isdst = -1;
	return mktime(&tm);
}

/*
 * The UTC offsets of recent days, per thread: most days last 24 hours at one
 * offset, and for those a moment is arithmetic instead of a mktime (thousands
 * of instructions, several per deadline). The days of a DST change are
 * marked and always go to mktime. A change of TZ empties it: every public
 * function that reaches calendar_moment or calendar_local_day calls
 * calendar_offsets_sync first (once, not per moment: getenv walks the
 * environment).
 */
#define CALENDAR_OFFSET_SLOTS 64

static _Thread_local struct {
	char tz[64];
	int usable; /* tz holds the TZ the offsets are for */
	struct {
		long day_plus_one; /* 0: empty */
		long offset;	   /* seconds east of UTC */
		int plain;	   /* one offset all day */
	} slot[CALENDAR_OFFSET_SLOTS];
} calendar_offsets;

static void
calendar_offsets_sync(void)
{
	const char *tz = getenv("TZ");

	if (tz == NULL)
		tz = "";
	if (strncmp(calendar_offsets.tz, tz, sizeof(calendar_offsets.tz)) == 0 &&
	    calendar_offsets.usable)
		return;
	memset(&calendar_offsets, 0, sizeof(calendar_offsets));
	/* A name that does not fit is never cached: every moment goes to mktime. */
	if (strlen(tz) < sizeof(calendar_offsets.tz)) {
		memcpy(calendar_offsets.tz, tz, strlen(tz) + 1);
		calendar_offsets.usable = 1;
	}
}

/* 1 with the day's offset when the day has a single one, else 0. */
static int
calendar_day_offset(long day, long *offset_r)
{
	size_t i = (size_t)day % CALENDAR_OFFSET_SLOTS;
	time_t t0, t1;

	if (!calendar_offsets.usable)
		return 0;
	if (calendar_offsets.slot[i].day_plus_one != day + 1) {
		t0 = calendar_mktime(day, 0);
		t1 = calendar_mktime(day + 1, 0);
		calendar_offsets.slot[i].day_plus_one = day + 1;
		calendar_offsets.slot[i].offset = day * 86400L - (long)t0;
		calendar_offsets.slot[i].plain = t0 != (time_t)-1 && t1 != (time_t)-1 &&
		    (long)t1 - (long)t0 == 86400L;
	}
	*offset_r = calendar_offsets.slot[i].offset;
	return calendar_offsets.slot[i].plain;
}

/*
 * The moment a wall-clock minute of a day happens. mktime decides the UTC
 * offset, so 08:30 stays 08:30 local on either side of a DST change.
 */
static time_t
calendar_moment(long day, int minute)
{
	long offset;

	if (day >= 0 && calendar_day_offset(day, &offset))
		return (time_t)(day * 86400L + minute * 60L - offset);
	return calendar_mktime(day, minute);
}

/* A period as two moments; -1 when it does not exist (mktime failed, or it falls in a DST gap). */
static int
calendar_period_moments(
    const struct calendar_period *period, long day, time_t *open_r, time_t *close_r)
{
	*open_r = calendar_moment(day, period->open);
	*close_r = calendar_moment(day, period->close);
	if (*open_r == (time_t)-1 || *close_r == (time_t)-1 || *close_r <= *open_r)
		return -1;
	return 0;
}

static int
calendar_local_day(time_t t, long *day_r)
{
	struct tm tm;
	long utc_day = (long)t >= 0 ? (long)t / 86400 : -1, offset;

	/* The local day is the UTC day or one beside it; a plain day answers without localtime. */
	for (long day = utc_day - 1; utc_day >= 1 && day <= utc_day + 1; day++)
		if (calendar_day_offset(day, &offset) && (long)t >= day * 86400L - offset &&
		    (long)t < (day + 1) * 86400L - offset) {
			*day_r = day;
			return 0;
		}
	if (localtime_r(&t, &tm) == NULL)
		return -1;
	*day_r = calendar_day_number(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	return 0;
}

/*
 * The first open period that ends after t. A period never reaches past the
 * midnight that ends its day, so the search can start on t's own day.
 */
static int
calendar_next_period(const struct calendar *cal, time_t t, time_t *open_r, time_t *close_r)
{
	long day;

	if (calendar_local_day(t, &day) < 0)
		return -1;
	for (int n = 0; n <= CALENDAR_SEARCH_DAYS; n++, day++) {
		const struct calendar_day *wd = calendar_open_day(cal, day);

		if (wd == NULL)
			continue;
		for (int i = 0; i < wd->nperiods; i++) {
			if (calendar_period_moments(&wd->periods[i], day, open_r, close_r) < 0)
				continue;
			if (*close_r > t)
				return 0;
		}
	}
	return -1;
}

int
calendar_is_open(const struct calendar *cal, time_t t)
{
	const struct calendar_day *wd;
	time_t open, close;
	long day;

	calendar_offsets_sync();
	if (calendar_local_day(t, &day) < 0 || (wd = calendar_open_day(cal, day)) == NULL)
		return 0;
	for (int i = 0; i < wd->nperiods; i++)
		if (calendar_period_moments(&wd->periods[i], day, &open, &close) == 0 && open <= t
		    && t < close)
			return 1;
	return 0;
}

time_t
calendar_next_open(const struct calendar *cal, time_t t)
{
	time_t open, close;

	calendar_offsets_sync();
	if (calendar_next_period(cal, t, &open, &close) < 0)
		return (time_t)-1;
	return open > t ? open : t;
}

/*
 * Moves an open moment t by whole open days, keeping how much of the day's
 * open time had passed at t; a shorter target day ends at its closing time.
 */
static time_t
calendar_add_days(const struct calendar *cal, time_t t, int days)
{
	const struct calendar_day *wd;
	time_t open, close, last_close = (time_t)-1;
	int64_t offset = 0;
	long day;
	int closed_run = 0;

	if (calendar_local_day(t, &day) < 0 || (wd = calendar_open_day(cal, day)) == NULL)
		return (time_t)-1;
	for (int i = 0; i < wd->nperiods; i++) {
		if (calendar_period_moments(&wd->periods[i], day, &open, &close) < 0)
			continue;
		if (close <= t)
			offset += close - open;
		else if (open <= t)
			offset += t - open;
	}
	for (int walked = 1; days > 0; walked++) {
		day++;
		if (walked > CALENDAR_HORIZON_DAYS)
			return (time_t)-1;
		if (calendar_open_day(cal, day) != NULL) {
			days--;
			closed_run = 0;
		} else if (++closed_run > CALENDAR_SEARCH_DAYS) {
			return (time_t)-1;
		}
	}
	if ((wd = calendar_open_day(cal, day)) == NULL)
		return (time_t)-1;
	for (int i = 0; i < wd->nperiods; i++) {
		if (calendar_period_moments(&wd->periods[i], day, &open, &close) < 0)
			continue;
		/* Strictly less: an offset at lunch lands after it, as the start did. */
		if (offset < close - open)
			return open + (time_t)offset;
		offset -= close - open;
		last_close = close;
	}
	return last_close;
}

time_t
calendar_add(const struct calendar *cal, time_t start, const struct calendar_duration *d)
{
	const time_t horizon = start + (time_t)CALENDAR_HORIZON_DAYS * 24 * 3600;
	time_t t, open, close;
	int64_t left;

	if (d->days < 0 || d->seconds < 0)
		return (time_t)-1;
	/* calendar_next_open syncs the offsets with TZ for all of this call. */
	if ((t = calendar_next_open(cal, start)) == (time_t)-1)
		return (time_t)-1;
	if (d->days > 0 && (t = calendar_add_days(cal, t, d->days)) == (time_t)-1)
		return (time_t)-1;
	/* A deadline that runs out at a closing time is that closing time, not the next opening. */
	for (left = d->seconds; left > 0; t = close) {
		if (t > horizon || calendar_next_period(cal, t, &open, &close) < 0)
			return (time_t)-1;
		if (open > t)
			t = open;
		if (close - t >= left)
			return t + (time_t)left;
		left -= close - t;
	}
	return t;
}

int
calendar_parse_duration(const char *s, struct calendar_duration *d_r, const char **error_r)
{
	static const char units[] = "dhm";
	const int64_t max_minutes = (int64_t)CALENDAR_DURATION_MAX_DAYS * CALENDAR_MINUTES_PER_DAY;
	int64_t days = 0, seconds = 0;
	const char *p = s;
	int last = -1;

	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0') {
		*error_r = "empty duration; expected open time like 4h, 30m, 2d or 1d4h";
		return -1;
	}
	while (*p != '\0') {
		const char *unit;
		int64_t v = 0;

		if (!isdigit((unsigned char)*p)) {
			*error_r
			    = "expected a number followed by d, h or m, like 4h, 30m, 2d or 1d4h";
			return -1;
		}
		for (; isdigit((unsigned char)*p); p++) {
			v = v * 10 + (*p - '0');
			/* No unit allows more than this many, and it keeps v from overflowing. */
			if (v > max_minutes) {
				*error_r = "duration too long; at most 3660d, 87840h or 5270400m";
				return -1;
			}
		}
		if (*p == '\0' || (unit = strchr(units, *p)) == NULL) {
			*error_r
			    = "expected a unit after the number: d (open days), h or m (open time)";
			return -1;
		}
		if (unit - units <= last) {
			*error_r = "expected the units in the order d, h, m, each at most once";
			return -1;
		}
		last = (int)(unit - units);
		if (*unit == 'd')
			days = v;
		else if (*unit == 'h')
			seconds += v * 3600;
		else
			seconds += v * 60;
		for (p++; isspace((unsigned char)*p); p++)
			;
	}
	if (days > CALENDAR_DURATION_MAX_DAYS || seconds > max_minutes * 60) {
		*error_r = "duration too long; at most 3660d, 87840h or 5270400m";
		return -1;
	}
	d_r->days = (int)days;
	d_r->seconds = seconds;
	return 0;
}

static struct calendar *
calendar_new(void)
{
	struct calendar *cal = calloc(1, sizeof(*cal));

	if (cal != NULL)
		cal->holidays = CALENDAR_HOLIDAYS_BELGIUM;
	return cal;
}

struct calendar *
calendar_default(void)
{
	struct calendar *cal = calendar_new();

	if (cal == NULL)
		return NULL;
	for (int wday = 1; wday <= 5; wday++) {
		cal->week[wday].periods[0].open = 9 * 60;
		cal->week[wday].periods[0].close = 17 * 60;
		cal->week[wday].nperiods = 1;
	}
	return cal;
}

void
calendar_free(struct calendar *cal)
{
	if (cal == NULL)
		return;
	free(cal->closings);
	free(cal);
}

/* Records the first error only, as "path:line: message"; returns 0 for inih. */
static int
calendar_fail(struct calendar_parse *p, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;

	if (p->error_line != 0)
		return 0;
	p->error_line = p->line;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg != NULL)
		p->error = util_printf("%s:%d: %s", p->path, p->line, msg);
	free(msg);
	return 0;
}

/* Splits the next comma-separated item off *s, trimmed; NULL at the end. */
static char *
calendar_next_item(char **s)
{
	char *item = *s, *end;

	if (item == NULL)
		return NULL;
	end = strchr(item, ',');
	if (end != NULL) {
		*end = '\0';
		*s = end + 1;
	} else {
		*s = NULL;
	}
	while (isspace((unsigned char)*item))
		item++;
	end = item + strlen(item);
	while (end > item && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return item;
}

/* Exactly H:MM or HH:MM, 00:00 to 24:00. */
static int
calendar_parse_time(const char *s, size_t len, int *minute_r)
{
	int hour, minute;

	if (len == 4 && isdigit((unsigned char)s[0]))
		hour = s[0] - '0';
	else if (len == 5 && isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[1]))
		hour = (s[0] - '0') * 10 + (s[1] - '0');
	else
		return -1;
	s += len - 3;
	if (s[0] != ':' || !isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[2]))
		return -1;
	minute = (s[1] - '0') * 10 + (s[2] - '0');
	if (minute > 59 || hour > 24 || (hour == 24 && minute != 0))
		return -1;
	*minute_r = hour * 60 + minute;
	return 0;
}

static int
calendar_period_cmp(const void *a, const void *b)
{
	const struct calendar_period *x = a, *y = b;

	return (x->open > y->open) - (x->open < y->open);
}

static int
calendar_add_period(
    struct calendar_parse *p, const char *key, struct calendar_day *wd, const char *item)
{
	const char *dash = strchr(item, '-');
	const char *end_time;
	struct calendar_period period;
	size_t open_len;

	if (dash == NULL) {
		return calendar_fail(p,
		    "%s: expected periods like 08:30-12:00, 13:30-16:00 or 'closed', got '%s'", key,
		    item);
	}
	open_len = (size_t)(dash - item);
	while (open_len > 0 && isspace((unsigned char)item[open_len - 1]))
		open_len--;
	for (end_time = dash + 1; isspace((unsigned char)*end_time); end_time++)
		;
	if (calendar_parse_time(item, open_len, &period.open) < 0 || period.open == 24 * 60
	    || calendar_parse_time(end_time, strlen(end_time), &period.close) < 0) {
		return calendar_fail(p,
		    "%s: '%s' is not a period of two times of day like 08:30-12:00 (00:00 to "
		    "24:00)",
		    key, item);
	}
	if (period.close <= period.open)
		return calendar_fail(p, "%s: period '%s' ends before it starts", key, item);
	if (wd->nperiods == CALENDAR_MAX_PERIODS)
		return calendar_fail(
		    p, "%s: expected at most %d periods a day", key, CALENDAR_MAX_PERIODS);
	wd->periods[wd->nperiods++] = period;
	/* Sorted, so that walking a day meets its periods in time order. */
	qsort(wd->periods, (size_t)wd->nperiods, sizeof(wd->periods[0]), calendar_period_cmp);
	for (int i = 1; i < wd->nperiods; i++) {
		const struct calendar_period *a = &wd->periods[i - 1], *b = &wd->periods[i];

		if (b->open < a->close)
			return calendar_fail(p,
			    "%s: periods %02d:%02d-%02d:%02d and %02d:%02d-%02d:%02d overlap", key,
			    a->open / 60, a->open % 60, a->close / 60, a->close % 60, b->open / 60,
			    b->open % 60, b->close / 60, b->close % 60);
	}
	return 1;
}

static int
calendar_set_day(struct calendar_parse *p, int wday, const char *key, char *value)
{
	struct calendar_day *wd = &p->cal->week[wday];
	char *item, *rest = value;
	int nitems = 0;

	if (!p->continuation) {
		if (wd->line != 0)
			return calendar_fail(
			    p, "%s is set twice (first on line %d)", key, wd->line);
		wd->line = p->line;
	}
	if (strcmp(value, "closed") == 0) {
		if (wd->nperiods > 0)
			return calendar_fail(p, "%s: 'closed' cannot follow opening periods", key);
		wd->closed_word = 1;
		return 1;
	}
	while ((item = calendar_next_item(&rest)) != NULL) {
		/* A trailing comma is fine: the list may continue on an indented line. */
		if (item[0] == '\0')
			continue;
		if (wd->closed_word || strcmp(item, "closed") == 0)
			return calendar_fail(
			    p, "%s: 'closed' cannot be combined with opening periods", key);
		if (calendar_add_period(p, key, wd, item) == 0)
			return 0;
		nitems++;
	}
	if (nitems == 0)
		return calendar_fail(
		    p, "%s: expected periods like 08:30-12:00, 13:30-16:00 or 'closed'", key);
	return 1;
}

/* "2026-12-24" for that day, "12-24" for that date every year. */
static int
calendar_parse_date(const char *s, struct calendar_closing *c_r)
{
	size_t len = strlen(s);
	int n = 0;

	/* Digits and dashes only, so that sscanf meets no signs or spaces. */
	for (const char *q = s; *q != '\0'; q++)
		if (!isdigit((unsigned char)*q) && *q != '-')
			return -1;
	if (len == 10 && sscanf(s, "%4d-%2d-%2d%n", &c_r->year, &c_r->month, &c_r->mday, &n) == 3
	    && n == 10) {
		if (c_r->year < 1970)
			return -1;
	} else if (len == 5 && sscanf(s, "%2d-%2d%n", &c_r->month, &c_r->mday, &n) == 2 && n == 5) {
		c_r->year = 0;
	} else {
		return -1;
	}
	/* Every year: 02-29 is allowed, and closes only in leap years. */
	if (c_r->month < 1 || c_r->month > 12 || c_r->mday < 1
	    || c_r->mday > calendar_days_in_month(c_r->year == 0 ? 2000 : c_r->year, c_r->month))
		return -1;
	return 0;
}

static int
calendar_add_closings(struct calendar_parse *p, char *value)
{
	struct calendar *cal = p->cal;
	char *item, *rest = value;
	int nitems = 0;

	while ((item = calendar_next_item(&rest)) != NULL) {
		struct calendar_closing c, *closings;

		if (item[0] == '\0')
			continue;
		if (calendar_parse_date(item, &c) < 0)
			return calendar_fail(p,
			    "closed: expected dates like 2026-12-24 (that day) or 12-24 (every "
			    "year), separated by commas, got '%s'",
			    item);
		for (size_t i = 0; i < cal->nclosings; i++) {
			const struct calendar_closing *o = &cal->closings[i];

			if (o->year == c.year && o->month == c.month && o->mday == c.mday)
				return calendar_fail(
				    p, "closed: %s is already listed on line %d", item, o->line);
		}
		closings = realloc(cal->closings, (cal->nclosings + 1) * sizeof(*closings));
		if (closings == NULL)
			return calendar_fail(p, "out of memory");
		c.line = p->line;
		cal->closings = closings;
		cal->closings[cal->nclosings++] = c;
		nitems++;
	}
	if (nitems == 0)
		return calendar_fail(
		    p, "closed: expected dates like 2026-12-24 (that day) or 12-24 (every year)");
	return 1;
}

static int
calendar_set_holidays(struct calendar_parse *p, const char *value)
{
	struct calendar *cal = p->cal;

	if (p->continuation)
		return calendar_fail(p, "holidays takes one value; expected 'belgium' or 'none'");
	if (cal->holidays_line != 0)
		return calendar_fail(
		    p, "holidays is set twice (first on line %d)", cal->holidays_line);
	cal->holidays_line = p->line;
	if (strcmp(value, "belgium") == 0)
		cal->holidays = CALENDAR_HOLIDAYS_BELGIUM;
	else if (strcmp(value, "none") == 0)
		cal->holidays = CALENDAR_HOLIDAYS_NONE;
	else
		return calendar_fail(p, "holidays: expected 'belgium' or 'none', got '%s'", value);
	return 1;
}

static int
calendar_handler(void *user, const char *section, const char *name, const char *value)
{
	struct calendar_parse *p = user;
	char buf[256], *comment;

	/* The reader refuses [section] lines, so section is always "". */
	(void)section;
	if (p->error_line != 0)
		return 0;
	if (strlen(value) >= sizeof(buf))
		return calendar_fail(p, "%s: value too long", name);
	strcpy(buf, value);
	if (p->continuation) {
		/* inih leaves inline comments on continuation lines. */
		for (comment = buf; (comment = strchr(comment, ';')) != NULL; comment++) {
			if (comment == buf || isspace((unsigned char)comment[-1])) {
				*comment = '\0';
				break;
			}
		}
		if (strchr(buf, '=') != NULL)
			return calendar_fail(p,
			    "an indented line continues '%s'; start a new key at the beginning of "
			    "the line",
			    name);
	}
	p->nkeys++;
	for (int wday = 0; wday < 7; wday++)
		if (strcmp(name, calendar_day_names[wday]) == 0)
			return calendar_set_day(p, wday, name, buf);
	if (strcmp(name, "holidays") == 0)
		return calendar_set_holidays(p, buf);
	if (strcmp(name, "closed") == 0)
		return calendar_add_closings(p, buf);
	return calendar_fail(
	    p, "unknown key '%s'; expected monday to sunday, holidays or closed", name);
}

static char *
calendar_reader(char *str, int num, void *stream)
{
	struct calendar_parse *p = stream;
	const char *start;
	size_t len;

	if (p->error_line != 0 || fgets(str, num, p->fp) == NULL)
		return NULL;
	p->line++;
	len = strlen(str);
	if (len == (size_t)num - 1 && str[len - 1] != '\n' && !feof(p->fp)) {
		/* inih would split the line silently; refuse instead. */
		calendar_fail(p, "line too long; expected at most %d characters", num - 2);
		return NULL;
	}
	for (start = str; *start == ' ' || *start == '\t'; start++)
		;
	if (*start == '[') {
		calendar_fail(p, "a calendar file has no [sections]; expected 'key = value' lines");
		return NULL;
	}
	/* The rule inih applies to continuation lines, so the handler knows what it gets. */
	p->continuation = start > str && p->nkeys > 0 && strchr(";#\r\n", *start) == NULL;
	return str;
}

int
calendar_load(const char *path, struct calendar **cal_r, char **error_r)
{
	struct calendar_parse p = { 0 };
	struct stat st;
	int rc;

	*cal_r = NULL;
	*error_r = NULL;
	p.path = path;
	if ((p.cal = calendar_new()) == NULL)
		goto fail;
	if ((p.fp = fopen(path, "r")) == NULL) {
		*error_r = util_printf("%s: cannot read: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(fileno(p.fp), &st) < 0 || !S_ISREG(st.st_mode)) {
		*error_r = util_printf("%s: cannot read: not a regular file", path);
		fclose(p.fp);
		goto fail;
	}
	rc = ini_parse_stream(calendar_reader, &p, calendar_handler, &p);
	fclose(p.fp);
	/* inih goes on after a line it cannot parse; report whichever error came first. */
	if (p.error_line != 0 && (rc <= 0 || p.error_line <= rc)) {
		*error_r = p.error;
		p.error = NULL;
		goto fail;
	}
	if (rc > 0) {
		*error_r = util_printf(
		    "%s:%d: expected 'key = value', like monday = 08:30-12:00", path, rc);
		goto fail;
	}
	if (rc < 0) {
		*error_r = util_printf("%s: cannot parse (error %d)", path, rc);
		goto fail;
	}
	*cal_r = p.cal;
	return 0;
fail:
	free(p.error);
	if (*error_r == NULL)
		*error_r = util_printf("%s: out of memory", path);
	calendar_free(p.cal);
	return -1;
}
