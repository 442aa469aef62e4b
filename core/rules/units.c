/* units.c: the organisations' and departments' calendars and the products catalogue, as loaded. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calendar.h"
#include "catalogue.h"
#include "conf.h"
#include "rules.h"
#include "units.h"
#include "util.h"

struct units_calendar {
	const char *unit; /* borrowed from conf */
	struct calendar *cal;
};

struct units {
	const struct conf *conf;
	struct catalogue *catalogue;
	struct units_calendar *cals;
	size_t ncals;
	struct calendar *fallback;
};

static int
units_known_cb(const char *kind, const char *name, void *arg)
{
	const struct conf *conf = arg;

	if (strcmp(kind, "department") == 0)
		return conf_department(conf, name) != NULL;
	return conf_organisation(conf, name) != NULL;
}

static int
units_add(struct units *u, const char *unit, const char *path, const char **error_r)
{
	struct units_calendar *c;
	struct calendar *cal;

	if (path == NULL || path[0] == '\0')
		return 0;
	if (calendar_file_load(path, &cal, error_r) < 0)
		return -1;
	if ((c = realloc(u->cals, (u->ncals + 1) * sizeof(*c))) == NULL) {
		calendar_free(cal);
		*error_r = "out of memory loading calendars";
		return -1;
	}
	u->cals = c;
	c[u->ncals].unit = unit;
	c[u->ncals].cal = cal;
	u->ncals++;
	return 0;
}

/* The standard answers, in [rules] answers or else the answers folder beside the catalogue. */
static int
units_answers(const struct conf *conf, struct catalogue *cat, const char **error_r)
{
	const char *slash;
	char *dir;
	int rc;

	if (conf->rules_answers != NULL && conf->rules_answers[0] != '\0')
		return catalogue_answers_load(cat, conf->rules_answers, error_r);
	slash = strrchr(conf->rules_catalogue, '/');
	if (asprintf(&dir, "%.*sanswers",
		slash != NULL ? (int)(slash - conf->rules_catalogue + 1) : 0,
		conf->rules_catalogue) < 0) {
		*error_r = "out of memory loading the standard answers";
		return -1;
	}
	rc = catalogue_answers_load(cat, dir, error_r);
	free(dir);
	return rc;
}

int
units_load(const struct conf *conf, struct units **units_r, const char **error_r)
{
	struct units *u = calloc(1, sizeof(*u));

	*error_r = NULL;
	if (u == NULL || (u->fallback = calendar_default()) == NULL)
		goto nomem;
	u->conf = conf;
	for (size_t i = 0; i < conf->norganisations; i++)
		if (units_add(u, conf->organisations[i].id, conf->organisations[i].calendar,
			error_r) < 0)
			goto fail;
	for (size_t i = 0; i < conf->ndepartments; i++)
		if (units_add(u, conf->departments[i].id, conf->departments[i].calendar, error_r) < 0)
			goto fail;
	if (conf->rules_catalogue[0] != '\0' &&
	    catalogue_load(conf->rules_catalogue, units_known_cb, (void *)conf, &u->catalogue,
		error_r) < 0)
		goto fail;
	if (u->catalogue != NULL && units_answers(conf, u->catalogue, error_r) < 0)
		goto fail;
	*units_r = u;
	return 0;
nomem:
	*error_r = "out of memory loading calendars and catalogue";
fail:
	units_free(u);
	return -1;
}

void
units_free(struct units *u)
{
	if (u == NULL)
		return;
	for (size_t i = 0; i < u->ncals; i++)
		calendar_free(u->cals[i].cal);
	free(u->cals);
	calendar_free(u->fallback);
	catalogue_free(u->catalogue);
	free(u);
}

static const struct calendar *
units_own(const struct units *u, const char *unit)
{
	for (size_t i = 0; i < u->ncals; i++)
		if (strcmp(u->cals[i].unit, unit) == 0)
			return u->cals[i].cal;
	return NULL;
}

const struct calendar *
units_calendar(const struct units *u, const char *unit)
{
	const struct conf_department *dep = conf_department(u->conf, unit);
	const struct calendar *cal;

	if (dep != NULL) {
		if ((cal = units_own(u, dep->id)) != NULL ||
		    (cal = units_own(u, dep->organisation)) != NULL)
			return cal;
		return u->fallback;
	}
	if (conf_organisation(u->conf, unit) != NULL)
		return (cal = units_own(u, unit)) != NULL ? cal : u->fallback;
	return NULL;
}

const char *
units_calendar_source(const struct units *u, const char *unit)
{
	const struct conf_department *dep = conf_department(u->conf, unit);

	if (dep != NULL && units_own(u, dep->id) != NULL)
		return dep->id;
	if (dep != NULL && units_own(u, dep->organisation) != NULL)
		return dep->organisation;
	if (dep == NULL && units_own(u, unit) != NULL)
		return unit;
	return "default";
}

struct catalogue *
units_catalogue_rw(struct units *u)
{
	return u->catalogue;
}

int
units_expected(const struct units *u, const char *product, long long from_ms,
    long long *due_ms_r, const char **error_r)
{
	const struct catalogue_product *p =
	    product != NULL && u->catalogue != NULL ? catalogue_find(u->catalogue, product) : NULL;
	/* Without a product, the organisation a contact without one is given (register.c). */
	const char *unit = p != NULL ? (p->department != NULL ? p->department : p->organisation)
	    : u->conf->norganisations > 0 ? u->conf->organisations[0].id
					   : NULL;
	const struct calendar *cal = unit != NULL ? units_calendar(u, unit) : NULL;
	const char *within = p != NULL && p->service_time != NULL ? p->service_time
								: UNITS_DEFAULT_WITHIN;
	struct calendar_duration dur;
	time_t due;

	if (cal == NULL)
		cal = u->fallback;
	if (calendar_parse_duration(within, &dur, error_r) < 0 ||
	    (due = calendar_add(cal, (time_t)(from_ms / 1000), &dur)) == (time_t)-1) {
		*error_r = util_error("the calendar of '%s' has no open time for %s",
		    unit != NULL ? unit : "default", within);
		return -1;
	}
	*due_ms_r = (long long)due * 1000;
	return 0;
}

const struct catalogue *
units_catalogue(const struct units *u)
{
	return u->catalogue;
}

static const struct catalogue *
units_host_catalogue(void *arg)
{
	return units_catalogue(arg);
}

static const struct calendar *
units_host_calendar(void *arg, const char *unit)
{
	return units_calendar(arg, unit);
}

static int
units_host_department(void *arg, const char *department)
{
	const struct units *u = arg;

	return conf_department(u->conf, department) != NULL;
}

void
units_rules_host(struct units *u, struct rules_host *host)
{
	host->arg = u;
	host->catalogue = units_host_catalogue;
	host->calendar = units_host_calendar;
	host->department_known = units_host_department;
}
