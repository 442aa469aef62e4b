/*
 * calendar_file.c: reading a calendar file (opening hours per weekday,
 * holidays, closing days) into a calendar, with errors as "file:line: ...".
 */
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
#include "calendar_int.h"
#include "util.h"

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
	const char *error; /* util_error */
};

/* Records the first error only, as "path:line: message"; returns 0 for inih. */
static int
calendar_fail(struct calendar_parse *p, const char *fmt, ...)
{
	char msg[UTIL_ERROR_MAX];
	va_list ap;

	if (p->error_line != 0)
		return 0;
	p->error_line = p->line;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->error = util_error("%s:%d: %s", p->path, p->line, msg);
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
calendar_file_load(const char *path, struct calendar **cal_r, const char **error_r)
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
		*error_r = util_error("%s: cannot read: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(fileno(p.fp), &st) < 0 || !S_ISREG(st.st_mode)) {
		*error_r = util_error("%s: cannot read: not a regular file", path);
		fclose(p.fp);
		goto fail;
	}
	rc = ini_parse_stream(calendar_reader, &p, calendar_handler, &p);
	fclose(p.fp);
	/* inih goes on after a line it cannot parse; report whichever error came first. */
	if (p.error_line != 0 && (rc <= 0 || p.error_line <= rc)) {
		*error_r = p.error;
		goto fail;
	}
	if (rc > 0) {
		*error_r = util_error(
		    "%s:%d: expected 'key = value', like monday = 08:30-12:00", path, rc);
		goto fail;
	}
	if (rc < 0) {
		*error_r = util_error("%s: cannot parse (error %d)", path, rc);
		goto fail;
	}
	*cal_r = p.cal;
	return 0;
fail:
	if (*error_r == NULL)
		*error_r = util_error("%s: out of memory", path);
	calendar_free(p.cal);
	return -1;
}

