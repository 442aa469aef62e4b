/* units.h: the organisations' and departments' calendars and the products catalogue, as loaded. */
#ifndef LOKET_UNITS_H
#define LOKET_UNITS_H

struct calendar;
struct catalogue;
struct conf;
struct rules_host;
struct units;

/* Loads every calendar file and the catalogue the config names; *error_r as util_error. */
int units_load(const struct conf *conf, struct units **units_r, const char **error_r);
void units_free(struct units *u);
/* A department's calendar, else its organisation's, else the default; NULL for an unknown unit. */
const struct calendar *units_calendar(const struct units *u, const char *unit);
/* Whose calendar units_calendar gives unit: the unit's, its organisation's id, or "default". */
const char *units_calendar_source(const struct units *u, const char *unit);
const struct catalogue *units_catalogue(const struct units *u);
/*
 * When a citizen asking about product (a catalogue code; NULL or unknown:
 * none) at from_ms can expect an answer: its service time (else
 * UNITS_DEFAULT_WITHIN) counted in the calendar of its department, else
 * its organisation; without a product, that of the first organisation
 * (where a contact without one goes), else the default one. The
 * acknowledgement rule (scripts/rules/40-acknowledge.lua) promises the same. -1 with *error_r (util_error)
 * when that calendar never opens.
 */
#define UNITS_DEFAULT_WITHIN "5d"
int units_expected(const struct units *u, const char *product, long long from_ms,
    long long *due_ms_r, const char **error_r);
/* The same catalogue, to change its standard answers (catalogue_answer_set). */
struct catalogue *units_catalogue_rw(struct units *u);
/* Fills the catalogue, calendar and department callbacks of a rules host. */
void units_rules_host(struct units *u, struct rules_host *host);

#endif
