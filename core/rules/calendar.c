/*
 * calendar.c: date arithmetic on a calendar: open or not at a moment, the
 * next opening, deadlines counted in open time, Belgian holidays, durations.
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "calendar.h"
#include "calendar_int.h"
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

int
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

struct calendar *
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

