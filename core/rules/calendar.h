/* calendar.h: opening hours, Belgian holidays, closing days; deadlines counted in open time. */
#ifndef LOKET_CALENDAR_H
#define LOKET_CALENDAR_H

#include <stdint.h>
#include <time.h>

/* A day may be split into at most this many open periods. */
#define CALENDAR_MAX_PERIODS 8
/* The longest duration calendar_parse_duration accepts: about ten years of open days. */
#define CALENDAR_DURATION_MAX_DAYS 3660

struct calendar;

/* Whole open days first, then open time in seconds; see calendar_add. */
struct calendar_duration {
	int days;
	int64_t seconds;
};

/* The calendar with no file: open Monday-Friday 09:00-17:00, Belgian holidays. NULL: no memory. */
struct calendar *calendar_default(void);
void calendar_free(struct calendar *cal);
/* 1 when t falls in an open period (not a holiday or closing day). */
int calendar_is_open(const struct calendar *cal, time_t t);
/*
 * Parses "4h", "30m", "2d", "1d4h", "90m"; hours/minutes are open time, days are open days.
 * Units come in the order d, h, m, each at most once. *error_r is a static string.
 */
int calendar_parse_duration(const char *s, struct calendar_duration *d_r, const char **error_r);
/*
 * The moment d of open time after start: first `days` whole open days
 * (the same open offset into the day, N open days later: e.g. Monday 10:00
 * + 2d = Wednesday 10:00 if both open; if that day is shorter, clamp to its
 * closing time), then `seconds` of open time. A start outside opening hours
 * counts from the next opening. Seconds that run out at a closing time end
 * there. Returns (time_t)-1 if no open time exists within 2 years (a calendar
 * that is always closed), or if the moment lies more than 100 years after start.
 */
time_t calendar_add(const struct calendar *cal, time_t start, const struct calendar_duration *d);
/* The next moment the calendar opens at or after t, or (time_t)-1. */
time_t calendar_next_open(const struct calendar *cal, time_t t);
/* 1 = public holiday or closing day. */
int calendar_is_holiday(const struct calendar *cal, int year, int month, int mday);
/* Easter Sunday of a Gregorian year (1583 and later). */
void calendar_easter(int year, int *month_r, int *mday_r);

/* calendar_file.c */
/*
 * Loads a calendar file; on error *error_r is "file:line: ..." (util_error).
 * On success *cal_r is owned by the caller (calendar_free).
 */
int calendar_file_load(const char *path, struct calendar **cal_r, const char **error_r);

#endif
