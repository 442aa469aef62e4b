/* test_calendar.c: opening hours, holidays, open-time deadlines across DST, file:line errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "calendar.h"

/* The example from the calendar file documentation: split shifts, a Thursday evening. */
static const char gemeente_text[]
    = "; comment\n"
      "monday    = 08:30-12:00, 13:30-16:00\n"
      "tuesday   = 08:30-12:00\n"
      "wednesday = 08:30-12:00, 13:30-16:00\n"
      "thursday  = 08:30-12:00, 13:30-19:00   ; Thursday evening\n"
      "friday    = 08:30-12:00\n"
      "saturday  = closed\n"
      "sunday    = closed\n"
      "holidays  = belgium        ; or: none\n"
      "closed    = 2026-12-24, 2026-12-31     ; extra closing days, may repeat\n";

/* Open only at weekends, so that the DST Sundays themselves have opening hours. */
static const char weekend_text[] = "saturday = 08:30-12:00\n"
                                   "sunday = 08:30-12:00\n";

/* Open around the clock, so that every real second of a DST day counts. */
static const char always_open_text[] = "monday = 00:00-24:00\n"
                                       "tuesday = 00:00-24:00\n"
                                       "wednesday = 00:00-24:00\n"
                                       "thursday = 00:00-24:00\n"
                                       "friday = 00:00-24:00\n"
                                       "saturday = 00:00-24:00\n"
                                       "sunday = 00:00-24:00\n"
                                       "holidays = none\n";

static const char always_closed_text[] = "monday = closed\n"
                                         "tuesday = closed\n"
                                         "wednesday = closed\n"
                                         "thursday = closed\n"
                                         "friday = closed\n"
                                         "saturday = closed\n"
                                         "sunday = closed\n";

enum test_cal {
	CAL_GEMEENTE,
	CAL_WEEKEND,
	CAL_ALWAYS_OPEN,
	CAL_ALWAYS_CLOSED,
	CAL_DEFAULT,
	CAL_COUNT,
};

struct fixture {
	char dir[64];
	struct calendar *cal[CAL_COUNT];
};

static struct fixture *fx;

/* Writes text to dir/name; path_r (at least 128 bytes) receives the path. */
static void
write_file(const char *name, const char *text, char *path_r)
{
	FILE *fp;

	snprintf(path_r, 128, "%s/%s", fx->dir, name);
	fp = fopen(path_r, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static struct calendar *
load_text(const char *name, const char *text)
{
	struct calendar *cal = NULL;
	char path[128];
	const char *err = NULL;

	write_file(name, text, path);
	if (calendar_file_load(path, &cal, &err) < 0)
		fail_msg("%s: %s", path, err);
	assert_null(err);
	assert_non_null(cal);
	unlink(path);
	return cal;
}

static int
group_setup(void **state)
{
	(void)state;
	/* Every expected wall-clock time below is Brussels time. */
	setenv("TZ", "Europe/Brussels", 1);
	tzset();
	fx = calloc(1, sizeof(*fx));
	if (fx == NULL)
		return -1;
	strcpy(fx->dir, "/tmp/loket-test-calendar-XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	fx->cal[CAL_GEMEENTE] = load_text("gemeente.conf", gemeente_text);
	fx->cal[CAL_WEEKEND] = load_text("weekend.conf", weekend_text);
	fx->cal[CAL_ALWAYS_OPEN] = load_text("always-open.conf", always_open_text);
	fx->cal[CAL_ALWAYS_CLOSED] = load_text("always-closed.conf", always_closed_text);
	fx->cal[CAL_DEFAULT] = calendar_default();
	return fx->cal[CAL_DEFAULT] == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	char path[128];

	(void)state;
	for (int i = CAL_COUNT - 1; i >= 0; i--)
		calendar_free(fx->cal[i]);
	/* A failed expect_error leaves its file behind. */
	snprintf(path, sizeof(path), "%s/bad.conf", fx->dir);
	unlink(path);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

/* "2026-03-02 10:00" in local (Brussels) time. */
static time_t
local_time(const char *s)
{
	struct tm tm = { 0 };
	const char *end = strptime(s, "%Y-%m-%d %H:%M", &tm);

	if (end == NULL || *end != '\0')
		fail_msg("bad test time '%s'", s);
	tm.tm_isdst = -1;
	return mktime(&tm);
}

/* "2026-03-30 09:00" in UTC: the check that does not go through the local time zone. */
static time_t
utc_time(const char *s)
{
	struct tm tm = { 0 };
	const char *end = strptime(s, "%Y-%m-%d %H:%M", &tm);

	if (end == NULL || *end != '\0')
		fail_msg("bad test time '%s'", s);
	return timegm(&tm);
}

static void
format_local(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t == (time_t)-1) {
		snprintf(buf, len, "-1");
		return;
	}
	localtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M", &tm);
}

static void
test_easter(void **state)
{
	static const struct {
		int year, month, mday;
	} cases[] = {
		{ 2024, 3, 31 },
		{ 2025, 4, 20 },
		{ 2026, 4, 5 },
		{ 2027, 3, 28 },
		{ 2028, 4, 16 },
		{ 2029, 4, 1 },
		{ 2030, 4, 21 },
		/* The edges of the computus: earliest and latest possible dates, century years. */
		{ 1818, 3, 22 },
		{ 2285, 3, 22 },
		{ 2038, 4, 25 },
		{ 1943, 4, 25 },
		{ 2000, 4, 23 },
		{ 2100, 3, 28 },
		{ 2400, 4, 16 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int month = 0, mday = 0;

		calendar_easter(cases[i].year, &month, &mday);
		if (month != cases[i].month || mday != cases[i].mday)
			fail_msg("Easter %d: got %02d-%02d, expected %02d-%02d", cases[i].year,
			    month, mday, cases[i].month, cases[i].mday);
	}
}

/* The ten Belgian public holidays, 2024-2030, written out rather than computed. */
static const struct {
	int year;
	int easter_monday[2], ascension[2], whit_monday[2];
} moveable[] = {
	{ 2024, { 4, 1 }, { 5, 9 }, { 5, 20 } },
	{ 2025, { 4, 21 }, { 5, 29 }, { 6, 9 } },
	{ 2026, { 4, 6 }, { 5, 14 }, { 5, 25 } },
	{ 2027, { 3, 29 }, { 5, 6 }, { 5, 17 } },
	{ 2028, { 4, 17 }, { 5, 25 }, { 6, 5 } },
	{ 2029, { 4, 2 }, { 5, 10 }, { 5, 21 } },
	{ 2030, { 4, 22 }, { 5, 30 }, { 6, 10 } },
};

static int
is_belgian_holiday_in_table(int year, int month, int mday)
{
	static const int fixed[][2] = {
		{ 1, 1 },
		{ 5, 1 },
		{ 7, 21 },
		{ 8, 15 },
		{ 11, 1 },
		{ 11, 11 },
		{ 12, 25 },
	};

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (fixed[i][0] == month && fixed[i][1] == mday)
			return 1;
	for (size_t i = 0; i < sizeof(moveable) / sizeof(moveable[0]); i++) {
		if (moveable[i].year != year)
			continue;
		if ((moveable[i].easter_monday[0] == month && moveable[i].easter_monday[1] == mday)
		    || (moveable[i].ascension[0] == month && moveable[i].ascension[1] == mday)
		    || (moveable[i].whit_monday[0] == month && moveable[i].whit_monday[1] == mday))
			return 1;
	}
	return 0;
}

static void
test_belgian_holidays(void **state)
{
	const struct calendar *cal = fx->cal[CAL_DEFAULT];
	int holidays = 0;

	(void)state;
	/* Every day of seven years: the ten holidays are found and no other day is. */
	for (int year = 2024; year <= 2030; year++) {
		for (int month = 1; month <= 12; month++) {
			for (int mday = 1; mday <= 31; mday++) {
				struct tm tm = { .tm_year = year - 1900,
					.tm_mon = month - 1,
					.tm_mday = mday,
					.tm_hour = 12,
					.tm_isdst = -1 };
				int want, got;

				mktime(&tm);
				if (tm.tm_mon != month - 1)
					continue;
				want = is_belgian_holiday_in_table(year, month, mday);
				got = calendar_is_holiday(cal, year, month, mday);
				if (want != got)
					fail_msg("%d-%02d-%02d: is_holiday %d, expected %d", year,
					    month, mday, got, want);
				holidays += got;
			}
		}
	}
	assert_int_equal(holidays, 7 * 10);
	/* Easter Sunday and Good Friday are not among the ten; a normal day is not either. */
	assert_int_equal(calendar_is_holiday(cal, 2026, 4, 5), 0);
	assert_int_equal(calendar_is_holiday(cal, 2026, 4, 3), 0);
	assert_int_equal(calendar_is_holiday(cal, 2026, 3, 3), 0);
	/* Not a date at all. */
	assert_int_equal(calendar_is_holiday(cal, 2026, 2, 30), 0);
	assert_int_equal(calendar_is_holiday(cal, 2026, 13, 1), 0);
}

static void
test_closing_days(void **state)
{
	const struct calendar *gemeente = fx->cal[CAL_GEMEENTE];
	struct calendar *cal;

	(void)state;
	assert_int_equal(calendar_is_holiday(gemeente, 2026, 12, 24), 1);
	assert_int_equal(calendar_is_holiday(gemeente, 2026, 12, 31), 1);
	assert_int_equal(calendar_is_holiday(gemeente, 2027, 12, 24), 0);
	assert_int_equal(calendar_is_holiday(gemeente, 2026, 12, 23), 0);
	assert_int_equal(calendar_is_open(gemeente, local_time("2026-12-24 10:00")), 0);
	assert_int_equal(calendar_is_open(gemeente, local_time("2026-12-23 10:00")), 1);

	/* Every-year dates, several closed lines, a continuation line and holidays = none. */
	cal = load_text("recurring.conf",
	    "monday = 09:00-12:00\n"
	    "holidays = none\n"
	    "closed = 07-11, 11-02\n"
	    "closed = 2026-05-15,\n"
	    "  2027-05-07 ; bridge day after Ascension\n"
	    "closed = 02-29\n");
	assert_int_equal(calendar_is_holiday(cal, 2026, 7, 11), 1);
	assert_int_equal(calendar_is_holiday(cal, 2031, 7, 11), 1);
	assert_int_equal(calendar_is_holiday(cal, 2026, 11, 2), 1);
	assert_int_equal(calendar_is_holiday(cal, 2026, 5, 15), 1);
	assert_int_equal(calendar_is_holiday(cal, 2027, 5, 7), 1);
	assert_int_equal(calendar_is_holiday(cal, 2028, 2, 29), 1);
	assert_int_equal(calendar_is_holiday(cal, 2026, 12, 25), 0);
	/* Easter Monday 2026 is open without Belgian holidays. */
	assert_int_equal(calendar_is_holiday(cal, 2026, 4, 6), 0);
	assert_int_equal(calendar_is_open(cal, local_time("2026-04-06 10:00")), 1);
	calendar_free(cal);
}

static void
test_is_open(void **state)
{
	static const struct {
		const char *when;
		int open;
	} cases[] = {
		{ "2026-03-02 08:29", 0 }, /* Monday, before opening */
		{ "2026-03-02 08:30", 1 },
		{ "2026-03-02 11:59", 1 },
		{ "2026-03-02 12:00", 0 }, /* lunch break */
		{ "2026-03-02 13:29", 0 },
		{ "2026-03-02 13:30", 1 },
		{ "2026-03-02 15:59", 1 },
		{ "2026-03-02 16:00", 0 },
		{ "2026-03-03 13:30", 0 }, /* Tuesday: mornings only */
		{ "2026-03-05 18:59", 1 }, /* Thursday evening */
		{ "2026-03-05 19:00", 0 },
		{ "2026-03-06 11:00", 1 }, /* Friday morning */
		{ "2026-03-06 14:00", 0 },
		{ "2026-03-07 10:00", 0 }, /* Saturday */
		{ "2026-03-08 10:00", 0 }, /* Sunday */
		{ "2026-04-06 10:00", 0 }, /* Easter Monday */
		{ "2026-05-14 10:00", 0 }, /* Ascension */
		{ "2026-03-30 08:30", 1 }, /* the Monday after spring DST, still 08:30 local */
		{ "2026-10-26 08:29", 0 }, /* the Monday after autumn DST */
		{ "2026-10-26 08:30", 1 },
	};
	const struct calendar *cal = fx->cal[CAL_GEMEENTE];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = calendar_is_open(cal, local_time(cases[i].when));

		if (got != cases[i].open)
			fail_msg("%s: is_open %d, expected %d", cases[i].when, got, cases[i].open);
	}
	/* One second before opening is still closed. */
	assert_int_equal(calendar_is_open(cal, local_time("2026-03-02 08:30") - 1), 0);
	assert_int_equal(calendar_is_open(cal, local_time("2026-03-02 12:00") - 1), 1);
	/* 08:30 local is 07:30 UTC in winter and 06:30 UTC in summer. */
	assert_int_equal(calendar_is_open(cal, utc_time("2026-03-27 07:30")), 1);
	assert_int_equal(calendar_is_open(cal, utc_time("2026-03-30 06:30")), 1);
	assert_int_equal(calendar_is_open(cal, utc_time("2026-03-30 06:29")), 0);

	cal = fx->cal[CAL_DEFAULT];
	assert_int_equal(calendar_is_open(cal, local_time("2026-03-02 08:59")), 0);
	assert_int_equal(calendar_is_open(cal, local_time("2026-03-02 09:00")), 1);
	assert_int_equal(calendar_is_open(cal, local_time("2026-03-02 16:59")), 1);
	assert_int_equal(calendar_is_open(cal, local_time("2026-03-02 17:00")), 0);
	assert_int_equal(calendar_is_open(cal, local_time("2026-03-07 10:00")), 0);
	assert_int_equal(calendar_is_open(cal, local_time("2026-05-01 10:00")), 0);
	assert_int_equal(
	    calendar_is_open(fx->cal[CAL_ALWAYS_CLOSED], local_time("2026-03-02 10:00")), 0);
	assert_int_equal(
	    calendar_is_open(fx->cal[CAL_ALWAYS_OPEN], local_time("2026-03-29 02:30")), 1);
}

/*
 * Every 7 minutes from 2024 to 2030 (so every minute of the day comes round,
 * the DST nights included), is_open agrees with a reading of the same hours
 * through localtime_r: the offsets the calendar caches per day are right.
 */
static void
test_is_open_every_7_minutes(void **state)
{
	/* The gemeente's hours in minutes after midnight, by tm_wday. */
	static const int hours[7][3][2] = {
		[1] = { { 510, 720 }, { 810, 960 } },
		[2] = { { 510, 720 } },
		[3] = { { 510, 720 }, { 810, 960 } },
		[4] = { { 510, 720 }, { 810, 1140 } },
		[5] = { { 510, 720 } },
	};
	const struct calendar *cal = fx->cal[CAL_GEMEENTE];
	time_t end = utc_time("2031-01-01 00:00");
	long checked = 0;

	(void)state;
	for (time_t t = utc_time("2024-01-01 00:00"); t < end; t += 7 * 60) {
		struct tm tm;
		int minute, want = 0;

		assert_non_null(localtime_r(&t, &tm));
		minute = tm.tm_hour * 60 + tm.tm_min;
		if (!calendar_is_holiday(cal, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday))
			for (int i = 0; i < 3 && hours[tm.tm_wday][i][1] != 0; i++)
				want |= minute >= hours[tm.tm_wday][i][0] &&
				    minute < hours[tm.tm_wday][i][1];
		if (calendar_is_open(cal, t) != want)
			fail_msg("%04d-%02d-%02d %02d:%02d local: is_open %d, expected %d",
			    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			    !want, want);
		checked++;
	}
	assert_true(checked > 500000);

	/* Monday 2026-03-02 08:00 UTC is 09:00 in Brussels (open) and 08:00 in UTC (closed). */
	assert_int_equal(calendar_is_open(cal, utc_time("2026-03-02 08:00")), 1);
	setenv("TZ", "UTC", 1);
	tzset();
	assert_int_equal(calendar_is_open(cal, utc_time("2026-03-02 08:00")), 0);
	setenv("TZ", "Europe/Brussels", 1);
	tzset();
	assert_int_equal(calendar_is_open(cal, utc_time("2026-03-02 08:00")), 1);
}

static void
test_next_open(void **state)
{
	static const struct {
		enum test_cal cal;
		const char *when, *want;
	} cases[] = {
		{ CAL_GEMEENTE, "2026-03-02 10:00", "2026-03-02 10:00" }, /* already open */
		{ CAL_GEMEENTE, "2026-03-02 07:00", "2026-03-02 08:30" },
		{ CAL_GEMEENTE, "2026-03-02 12:00", "2026-03-02 13:30" },
		{ CAL_GEMEENTE, "2026-03-05 19:00", "2026-03-06 08:30" },
		{ CAL_GEMEENTE, "2026-03-06 12:00", "2026-03-09 08:30" }, /* weekend */
		{ CAL_GEMEENTE, "2026-04-03 12:00", "2026-04-07 08:30" }, /* Easter Monday */
		{ CAL_GEMEENTE, "2026-12-23 16:00", "2026-12-28 08:30" }, /* 24 Dec, Christmas */
		{ CAL_GEMEENTE, "2026-12-30 16:00", "2027-01-04 08:30" }, /* 31 Dec, New Year */
		{ CAL_WEEKEND, "2026-03-28 13:00", "2026-03-29 08:30" }, /* DST Sunday */
		{ CAL_WEEKEND, "2026-10-24 13:00", "2026-10-25 08:30" },
		{ CAL_ALWAYS_CLOSED, "2026-03-02 10:00", "-1" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char got[32];

		format_local(calendar_next_open(fx->cal[cases[i].cal], local_time(cases[i].when)),
		    got, sizeof(got));
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("next_open(%s): got %s, expected %s", cases[i].when, got,
			    cases[i].want);
	}
	/* The DST Sundays open at 08:30 local: 06:30 UTC in summer time, 07:30 UTC in winter. */
	assert_int_equal(calendar_next_open(fx->cal[CAL_WEEKEND], local_time("2026-03-28 13:00")),
	    utc_time("2026-03-29 06:30"));
	assert_int_equal(calendar_next_open(fx->cal[CAL_WEEKEND], local_time("2026-10-24 13:00")),
	    utc_time("2026-10-25 07:30"));
}

static void
test_parse_duration(void **state)
{
	static const struct {
		const char *s;
		int days;
		int64_t seconds;
	} good[] = {
		{ "4h", 0, 4 * 3600 },
		{ "30m", 0, 30 * 60 },
		{ "2d", 2, 0 },
		{ "1d4h", 1, 4 * 3600 },
		{ "90m", 0, 90 * 60 },
		{ "1d4h30m", 1, 4 * 3600 + 30 * 60 },
		{ "2h30m", 0, 2 * 3600 + 30 * 60 },
		{ " 1d 4h ", 1, 4 * 3600 },
		{ "0h", 0, 0 },
		{ "3660d", 3660, 0 },
	};
	static const char *const bad[] = {
		"",
		"   ",
		"4",
		"h",
		"-1h",
		"4x",
		"99999999d",
		"3661d",
		"99999999999999999999h",
		"4h1d",
		"4h4h",
		"1.5h",
		"4 h",
		"4s",
		"4H",
		"+4h",
		"4h-",
	};
	struct calendar_duration d;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const char *err = NULL;

		if (calendar_parse_duration(good[i].s, &d, &err) < 0)
			fail_msg("'%s' refused: %s", good[i].s, err);
		if (d.days != good[i].days || d.seconds != good[i].seconds)
			fail_msg("'%s': got %dd %llds", good[i].s, d.days, (long long)d.seconds);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *err = NULL;

		if (calendar_parse_duration(bad[i], &d, &err) != -1)
			fail_msg("'%s' accepted", bad[i]);
		if (err == NULL || err[0] == '\0')
			fail_msg("'%s' refused without a message", bad[i]);
	}
}

struct add_case {
	enum test_cal cal;
	const char *start;
	const char *duration;
	const char *want; /* local wall-clock time, or "-1" */
	const char *want_utc; /* the same moment in UTC when DST is at stake, else NULL */
	const char *why;
};

static const struct add_case add_cases[] = {
	/* Open time, in the gemeente calendar (Mon/Wed 08:30-12:00 13:30-16:00, Tue/Fri mornings).
	 */
	{ CAL_GEMEENTE, "2026-03-02 10:00", "1h", "2026-03-02 11:00", NULL, "within a period" },
	{ CAL_GEMEENTE, "2026-03-02 10:00", "2h", "2026-03-02 12:00", NULL,
	    "ends at a closing time, not at the next opening" },
	{ CAL_GEMEENTE, "2026-03-02 10:00", "4h", "2026-03-02 15:30", NULL,
	    "over the lunch break" },
	{ CAL_GEMEENTE, "2026-03-02 11:00", "90m", "2026-03-02 14:00", NULL, "minutes" },
	{ CAL_GEMEENTE, "2026-03-02 15:00", "2h", "2026-03-03 09:30", NULL, "over a night" },
	{ CAL_GEMEENTE, "2026-03-03 11:00", "2h", "2026-03-04 09:30", NULL,
	    "Tuesday has no afternoon" },
	{ CAL_GEMEENTE, "2026-03-05 18:00", "2h", "2026-03-06 09:30", NULL, "Thursday evening" },
	{ CAL_GEMEENTE, "2026-03-06 11:00", "2h", "2026-03-09 09:30", NULL, "over a weekend" },
	{ CAL_GEMEENTE, "2026-03-02 10:00", "22h30m", "2026-03-05 18:30", NULL,
	    "over several days" },
	{ CAL_GEMEENTE, "2026-04-03 11:00", "2h", "2026-04-07 09:30", NULL,
	    "Good Friday to after Easter Monday" },
	{ CAL_GEMEENTE, "2026-12-23 15:00", "2h", "2026-12-28 09:30", NULL,
	    "closing day 24 Dec, Christmas, a weekend" },
	{ CAL_GEMEENTE, "2026-12-30 15:00", "4h", "2027-01-04 11:30", NULL,
	    "closing day 31 Dec, New Year, a weekend" },
	/* Where the start is not open. */
	{ CAL_GEMEENTE, "2026-03-08 10:00", "1h", "2026-03-09 09:30", NULL, "start on a Sunday" },
	{ CAL_GEMEENTE, "2026-03-07 20:00", "30m", "2026-03-09 09:00", NULL,
	    "start on a Saturday" },
	{ CAL_GEMEENTE, "2026-03-02 07:00", "30m", "2026-03-02 09:00", NULL,
	    "start before opening" },
	{ CAL_GEMEENTE, "2026-03-02 12:00", "30m", "2026-03-02 14:00", NULL, "start at lunch" },
	{ CAL_GEMEENTE, "2026-03-08 10:00", "0m", "2026-03-09 08:30", NULL,
	    "nothing to add: the next opening" },
	{ CAL_GEMEENTE, "2026-03-02 10:00", "0m", "2026-03-02 10:00", NULL,
	    "nothing to add, open" },
	/* DST: opening hours stay at 08:30 local, and open time is real time. */
	{ CAL_GEMEENTE, "2026-03-27 11:00", "4h", "2026-03-30 11:30", "2026-03-30 09:30",
	    "over the spring DST weekend" },
	{ CAL_GEMEENTE, "2026-10-23 11:00", "4h", "2026-10-26 11:30", "2026-10-26 10:30",
	    "over the autumn DST weekend" },
	{ CAL_WEEKEND, "2026-03-28 11:00", "4h", "2026-03-29 11:30", "2026-03-29 09:30",
	    "open on the spring DST Sunday" },
	{ CAL_WEEKEND, "2026-10-24 11:00", "4h", "2026-10-25 11:30", "2026-10-25 10:30",
	    "open on the autumn DST Sunday" },
	{ CAL_ALWAYS_OPEN, "2026-03-28 12:00", "24h", "2026-03-29 13:00", "2026-03-29 11:00",
	    "the spring Sunday has 23 hours" },
	{ CAL_ALWAYS_OPEN, "2026-10-24 12:00", "24h", "2026-10-25 11:00", "2026-10-25 10:00",
	    "the autumn Sunday has 25 hours" },
	{ CAL_ALWAYS_OPEN, "2026-03-29 01:00", "2h", "2026-03-29 04:00", "2026-03-29 02:00",
	    "over the skipped hour" },
	/* Open days keep the open offset into the day. */
	{ CAL_GEMEENTE, "2026-03-02 10:00", "2d", "2026-03-04 10:00", NULL, "Monday to Wednesday" },
	{ CAL_GEMEENTE, "2026-03-02 10:00", "1d", "2026-03-03 10:00", NULL, "Monday to Tuesday" },
	{ CAL_GEMEENTE, "2026-03-02 14:00", "2d", "2026-03-04 14:00", NULL,
	    "an afternoon stays an afternoon" },
	{ CAL_GEMEENTE, "2026-03-02 13:30", "2d", "2026-03-04 13:30", NULL,
	    "an offset at the end of the morning lands after lunch" },
	{ CAL_GEMEENTE, "2026-03-06 10:00", "1d", "2026-03-09 10:00", NULL, "over a weekend" },
	{ CAL_GEMEENTE, "2026-04-03 10:00", "1d", "2026-04-07 10:00", NULL, "over Easter Monday" },
	{ CAL_GEMEENTE, "2026-03-08 10:00", "1d", "2026-03-10 08:30", NULL,
	    "from a Sunday: Monday's opening is day 0" },
	{ CAL_GEMEENTE, "2026-03-27 10:00", "1d", "2026-03-30 10:00", "2026-03-30 08:00",
	    "over the spring DST weekend" },
	/* The clamp rule: a target day with less open time ends at its closing time. */
	{ CAL_GEMEENTE, "2026-03-02 14:00", "1d", "2026-03-03 12:00", NULL,
	    "4h into Monday, Tuesday has 3.5h: its close" },
	{ CAL_GEMEENTE, "2026-03-05 15:00", "1d", "2026-03-06 12:00", NULL,
	    "5h into Thursday, Friday has 3.5h: its close" },
	{ CAL_GEMEENTE, "2026-03-05 18:00", "2d", "2026-03-09 16:00", NULL,
	    "8h into Thursday, 2 open days on is Monday with 6h: its close" },
	{ CAL_GEMEENTE, "2026-03-05 09:00", "1d", "2026-03-06 09:00", NULL,
	    "early enough to fit Friday" },
	{ CAL_GEMEENTE, "2026-03-05 18:00", "1d4h", "2026-03-09 14:00", NULL,
	    "clamped to Friday 12:00, then 4h from Monday" },
	/* No open time at all. */
	{ CAL_ALWAYS_CLOSED, "2026-03-02 10:00", "4h", "-1", NULL, "always closed, hours" },
	{ CAL_ALWAYS_CLOSED, "2026-03-02 10:00", "2d", "-1", NULL, "always closed, days" },
	{ CAL_ALWAYS_CLOSED, "2026-03-02 10:00", "0m", "-1", NULL, "always closed, nothing" },
};

static void
test_add(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(add_cases) / sizeof(add_cases[0]); i++) {
		const struct add_case *c = &add_cases[i];
		struct calendar_duration d;
		const char *err = NULL;
		char got[32];
		time_t t;

		if (calendar_parse_duration(c->duration, &d, &err) < 0)
			fail_msg("%s: '%s': %s", c->why, c->duration, err);
		t = calendar_add(fx->cal[c->cal], local_time(c->start), &d);
		format_local(t, got, sizeof(got));
		if (strcmp(got, c->want) != 0)
			fail_msg("%s + %s (%s): got %s, expected %s", c->start, c->duration, c->why,
			    got, c->want);
		if (c->want_utc != NULL && t != utc_time(c->want_utc))
			fail_msg(
			    "%s + %s (%s): not %s UTC", c->start, c->duration, c->why, c->want_utc);
	}
}

static void
test_add_long(void **state)
{
	struct calendar_duration d = { .days = 0, .seconds = 0 };
	const struct calendar *cal = fx->cal[CAL_DEFAULT];
	struct calendar *sparse;
	const char *err = NULL;
	char got[32];

	(void)state;
	/* 2026 has 261 weekdays, of which 8 are holidays: 253 open days. */
	assert_int_equal(calendar_parse_duration("253d", &d, &err), 0);
	format_local(calendar_add(cal, local_time("2026-01-02 09:00"), &d), got, sizeof(got));
	assert_string_equal(got, "2027-01-04 09:00");
	/* The same year in hours: 253 days of 8 hours, ending at the last close of 2026. */
	assert_int_equal(calendar_parse_duration("2024h", &d, &err), 0);
	format_local(calendar_add(cal, local_time("2026-01-01 00:00"), &d), got, sizeof(got));
	assert_string_equal(got, "2026-12-31 17:00");
	/* The longest duration still ends, and negative fields are refused. */
	assert_int_equal(calendar_parse_duration("3660d", &d, &err), 0);
	assert_true(calendar_add(cal, local_time("2026-01-01 00:00"), &d) > 0);
	d.days = -1;
	assert_int_equal(calendar_add(cal, local_time("2026-01-01 00:00"), &d), (time_t)-1);

	/* A minute a week: 10h is 600 open Mondays on, 1000h would be more than a century. */
	sparse = load_text("sparse.conf", "monday = 09:00-09:01\n");
	assert_int_equal(calendar_parse_duration("10h", &d, &err), 0);
	format_local(calendar_add(sparse, local_time("2026-01-01 00:00"), &d), got, sizeof(got));
	assert_string_equal(got, "2038-03-08 09:01");
	assert_int_equal(calendar_parse_duration("1000h", &d, &err), 0);
	assert_int_equal(calendar_add(sparse, local_time("2026-01-01 00:00"), &d), (time_t)-1);
	calendar_free(sparse);
}

static void
test_default(void **state)
{
	struct calendar_duration d = { .days = 0, .seconds = 4 * 3600 };
	const struct calendar *cal = fx->cal[CAL_DEFAULT];
	char got[32];

	(void)state;
	format_local(calendar_add(cal, local_time("2026-04-30 15:00"), &d), got, sizeof(got));
	/* Thursday 15:00-17:00, Friday 1 May is Labour Day, then Monday. */
	assert_string_equal(got, "2026-05-04 11:00");
}

/* Loads text and expects -1 with an error that starts "path:line: " and contains want. */
static void
expect_error(const char *text, int line, const char *want)
{
	struct calendar *cal = NULL;
	char path[128], prefix[160];
	const char *err = NULL;

	write_file("bad.conf", text, path);
	assert_int_equal(calendar_file_load(path, &cal, &err), -1);
	assert_null(cal);
	assert_non_null(err);
	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", path);
	if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, want) == NULL)
		fail_msg("error '%s' lacks prefix '%s' or text '%s'", err, prefix, want);
	unlink(path);
}

static void
test_load_errors(void **state)
{
	static const struct {
		const char *text;
		int line;
		const char *want;
	} cases[] = {
		{ "mondy = 08:30-12:00\n", 1, "unknown key 'mondy'" },
		{ "; ok\nmonday = 08:30-12:00\nMonday = 09:00-10:00\n", 3, "unknown key 'Monday'" },
		{ "monday = 25:00-26:00\n", 1, "'25:00-26:00' is not a period" },
		{ "monday = 08:60-09:00\n", 1, "not a period" },
		{ "monday = 24:00-24:00\n", 1, "not a period" },
		{ "monday = 08:30-24:01\n", 1, "not a period" },
		{ "monday = 8-12\n", 1, "not a period" },
		{ "monday = 08.30-12.00\n", 1, "not a period" },
		{ "monday = 08:30\n", 1, "expected periods like 08:30-12:00" },
		{ "monday = 12:00-11:00\n", 1, "ends before it starts" },
		{ "monday = 12:00-12:00\n", 1, "ends before it starts" },
		{ "\n\nmonday = 08:30-12:00, 11:00-13:00\n", 3,
		    "08:30-12:00 and 11:00-13:00 overlap" },
		{ "monday = 13:00-17:00, 08:00-13:30\n", 1, "overlap" },
		{ "monday = ,\n", 1, "expected periods like 08:30-12:00" },
		{ "monday =\n", 1, "expected periods like 08:30-12:00" },
		{ "closed = ,\n", 1, "expected dates" },
		{ "monday = closed, 08:30-12:00\n", 1, "'closed' cannot be combined" },
		{ "monday = 08:30-12:00\n  closed\n", 2, "'closed' cannot follow" },
		{ "monday = 00:00-01:00, 01:00-02:00, 02:00-03:00, 03:00-04:00, 04:00-05:00, "
		  "05:00-06:00, 06:00-07:00, 07:00-08:00, 08:00-09:00\n",
		    1, "at most 8 periods" },
		{ "monday = closed\ntuesday = closed\nmonday = 09:00-10:00\n", 3,
		    "monday is set twice (first on line 1)" },
		{ "holidays = france\n", 1, "expected 'belgium' or 'none', got 'france'" },
		{ "holidays = none\nholidays = belgium\n", 2, "set twice" },
		{ "closed = 2026-02-30\n", 1, "got '2026-02-30'" },
		{ "closed = 2027-02-29\n", 1, "got '2027-02-29'" },
		{ "closed = 2026-13-01\n", 1, "got '2026-13-01'" },
		{ "closed = 24/12/2026\n", 1, "got '24/12/2026'" },
		{ "closed = 2026-12-24 2026-12-31\n", 1, "separated by commas" },
		{ "closed = 2026-1-5\n", 1, "expected dates like 2026-12-24" },
		{ "closed = 12-32\n", 1, "got '12-32'" },
		{ "closed = \n", 1, "expected dates" },
		{ "closed = 2026-12-24\n\nclosed = 2026-12-24\n", 3, "already listed on line 1" },
		{ "[calendar]\nmonday = 08:30-12:00\n", 1, "no [sections]" },
		{ "monday = 08:30-12:00\nfriday\n", 2, "expected 'key = value'" },
		{ "monday open\ntuesday = nonsense\n", 1, "expected 'key = value'" },
		{ "monday = 08:30-12:00\n  tuesday = 08:30-12:00\n", 2,
		    "indented line continues 'monday'" },
		{ "holidays = belgium\n  none\n", 2, "holidays takes one value" },
		{ "= 08:30-12:00\n", 1, "unknown key ''" },
		{ "; a line longer than inih's buffer\nmonday = 08:30-12:00                        "
		  "        "
		  "                                                                                "
		  "    "
		  "                                                                                "
		  "    "
		  "    \n",
		    2, "line too long" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_error(cases[i].text, cases[i].line, cases[i].want);
}

static void
test_load_missing(void **state)
{
	struct calendar *cal = NULL;
	char path[128];
	const char *err = NULL;

	(void)state;
	snprintf(path, sizeof(path), "%s/missing.conf", fx->dir);
	assert_int_equal(calendar_file_load(path, &cal, &err), -1);
	assert_null(cal);
	assert_non_null(err);
	assert_non_null(strstr(err, "missing.conf: cannot read"));
	assert_int_equal(calendar_file_load(fx->dir, &cal, &err), -1);
	assert_non_null(strstr(err, "not a regular file"));
}

static void
test_load_lenient(void **state)
{
	struct calendar *cal;

	(void)state;
	/* CRLF, # comments, H:MM, spaces around '-', periods out of order, touching periods,
	 * a continuation line, and days left out (closed). */
	cal = load_text("lenient.conf",
	    "# comment\r\n"
	    "monday = 13:30 - 16:00, 8:30-12:00\r\n"
	    "tuesday = 08:00-12:00, 12:00-13:00\r\n"
	    "wednesday = 08:30-12:00,\r\n"
	    "    13:30-16:00 ; afternoon\r\n"
	    "\r\n");
	assert_int_equal(calendar_is_open(cal, local_time("2026-03-02 08:30")), 1);
	assert_int_equal(calendar_is_open(cal, local_time("2026-03-02 12:30")), 0);
	assert_int_equal(calendar_is_open(cal, local_time("2026-03-02 15:00")), 1);
	assert_int_equal(calendar_is_open(cal, local_time("2026-03-03 12:00")), 1);
	assert_int_equal(calendar_is_open(cal, local_time("2026-03-04 14:00")), 1);
	assert_int_equal(calendar_is_open(cal, local_time("2026-03-05 10:00")), 0);
	/* Holidays default to Belgian. */
	assert_int_equal(calendar_is_holiday(cal, 2026, 4, 6), 1);
	calendar_free(cal);

	/* An empty file is a calendar that is always closed. */
	cal = load_text("empty.conf", "");
	assert_int_equal(calendar_next_open(cal, local_time("2026-03-02 10:00")), (time_t)-1);
	calendar_free(cal);
	calendar_free(NULL);
}

static const char *
srcdir(void)
{
	const char *s = getenv("LOKET_SRCDIR");

	return s != NULL ? s : ".";
}

static void
test_examples(void **state)
{
	struct calendar *gemeente = NULL, *ocmw = NULL;
	char path[512];
	const char *err = NULL;

	(void)state;
	snprintf(path, sizeof(path), "%s/etc/calendar-gemeente.conf", srcdir());
	if (calendar_file_load(path, &gemeente, &err) < 0)
		fail_msg("%s", err);
	snprintf(path, sizeof(path), "%s/etc/calendar-ocmw.conf", srcdir());
	if (calendar_file_load(path, &ocmw, &err) < 0)
		fail_msg("%s", err);
	/* Thursday evening counter at the gemeente, not at the OCMW. */
	assert_int_equal(calendar_is_open(gemeente, local_time("2026-03-05 18:30")), 1);
	assert_int_equal(calendar_is_open(ocmw, local_time("2026-03-05 18:30")), 0);
	assert_int_equal(calendar_is_open(gemeente, local_time("2026-03-07 10:00")), 0);
	/* Flemish local-government closing days on top of the public holidays. */
	assert_int_equal(calendar_is_holiday(gemeente, 2026, 7, 11), 1);
	assert_int_equal(calendar_is_holiday(ocmw, 2027, 11, 2), 1);
	assert_int_equal(calendar_is_holiday(gemeente, 2026, 5, 15), 1);
	assert_int_equal(calendar_is_holiday(ocmw, 2026, 4, 6), 1);
	assert_int_equal(calendar_is_holiday(gemeente, 2026, 3, 3), 0);
	calendar_free(ocmw);
	calendar_free(gemeente);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_easter),
		cmocka_unit_test(test_belgian_holidays),
		cmocka_unit_test(test_closing_days),
		cmocka_unit_test(test_is_open),
		cmocka_unit_test(test_is_open_every_7_minutes),
		cmocka_unit_test(test_next_open),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_add),
		cmocka_unit_test(test_add_long),
		cmocka_unit_test(test_default),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_load_missing),
		cmocka_unit_test(test_load_lenient),
		cmocka_unit_test(test_examples),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
