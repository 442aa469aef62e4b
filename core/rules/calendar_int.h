/*
 * calendar_int.h: a calendar's opening hours, holidays and closing days as
 * shared by the date arithmetic (calendar.c) and the file reader
 * (calendar_file.c); everyone else sees struct calendar as opaque.
 */
#ifndef LOKET_CALENDAR_INT_H
#define LOKET_CALENDAR_INT_H

#include <stddef.h>

#include "calendar.h"

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

/* calendar.c */
/* An empty calendar (closed every day, Belgian holidays); NULL without memory. */
struct calendar *calendar_new(void);
/* 1 for a valid Gregorian date. */
int calendar_days_in_month(int year, int month);

#endif
