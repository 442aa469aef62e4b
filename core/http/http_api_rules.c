/*
 * http_api_rules.c: the admin's view of the rules (/api/v1/rules): the
 * rules folder as loaded with its handlers and what they cost, a sample
 * contact tried out (the engine of loketctl rules test: nothing stored,
 * sent or counted), a replay over a period (loketctl rules replay, bounded
 * per request) and a reload (loketctl reload: this node, then the other
 * nodes sharing the register). Admin only (LOKET_ACCESS_ADMIN: 403 for any
 * other role). A reload that fails answers 422 with the file:line of the
 * error, and the rules running before keep running.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "conf.h"
#include "http_api.h"
#include "loketd.h"
#include "rulebook.h"
#include "rules.h"
#include "units.h"
#include "util.h"

/* Contacts one replay request reads at most: it runs on the event loop. */
#define RULES_API_REPLAY_MAX 5000
#define RULES_API_REPLAY_DEFAULT 1000

/*
 * The rules a try runs: "loaded" (the running ones, the default) or
 * "folder" (the rules folder as it is on disk now, loaded apart: candidate
 * rules before a reload). *fresh_r is set when the caller must free them.
 * Answers and returns -1 on a bad choice or a folder that does not load.
 */
static int
rules_api_pick(struct loket_http_req *req, struct loketd *d, json_t *body, struct rules **rules_r,
    int *fresh_r)
{
	json_t *v = json_object_get(body, "rules");
	const char *which = json_string_value(v);
	struct rules_limits limits = { .instructions = (uint64_t)d->conf->rules_instructions,
		.wall_ms = d->conf->rules_timeout_ms, .memory = (size_t)d->conf->rules_memory };
	struct rules_host host = { 0 };
	const char *err = NULL;

	*fresh_r = 0;
	*rules_r = NULL;
	if (v != NULL && (which == NULL ||
			     (strcmp(which, "loaded") != 0 && strcmp(which, "folder") != 0))) {
		http_problem(req, 422,
		    "rules: expected \"loaded\" (the running rules, the default) or \"folder\" "
		    "(the rules folder as it is now, before a reload)");
		return -1;
	}
	if (d->conf->rules_dir[0] == '\0') {
		http_problem(req, 409, "no rules folder is configured ([rules] dir in loket.conf)");
		return -1;
	}
	if (which == NULL || strcmp(which, "loaded") == 0) {
		if (d->rules == NULL) {
			http_problem(req, 409, "no rules are loaded");
			return -1;
		}
		*rules_r = d->rules;
		return 0;
	}
	units_rules_host(d->units, &host);
	if (rules_load(d->conf->rules_dir, &limits, &host, rules_r, &err) < 0) {
		http_problem(req, 422, util_error("rules: the rules folder does not load: %s", err));
		return -1;
	}
	*fresh_r = 1;
	return 0;
}

/* A field that must be a string when present: 422 naming it, and -1. */
static int
rules_api_string(struct loket_http_req *req, json_t *body, const char *name, const char *want)
{
	json_t *v = json_object_get(body, name);

	if (v != NULL && !json_is_string(v)) {
		http_problem(req, 422, util_error("%s: expected %s", name, want));
		return -1;
	}
	return 0;
}

/* A time field (RFC 3339) into *ms_r when present: 422 naming it, and -1. */
static int
rules_api_time(struct loket_http_req *req, json_t *body, const char *name, int64_t *ms_r)
{
	json_t *v = json_object_get(body, name);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v) || util_time_parse(json_string_value(v), ms_r) < 0) {
		http_problem(req, 422,
		    util_error("%s: expected an RFC 3339 time such as 2026-12-24T16:55:00+01:00, "
			       "or a date such as 2026-12-24",
			name));
		return -1;
	}
	return 0;
}

static void
rules_get(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	json_t *doc = rulebook_describe(d), *reload;
	char at[40];

	if (doc == NULL) {
		http_problem(req, 500, "out of memory");
		return;
	}
	if (d->reload_failed_at > 0) {
		util_time_format(d->reload_failed_at, at, sizeof(at));
		reload = json_pack("{s:b, s:s, s:s, s:s}", "ok", 0, "error", d->reload_error,
		    "failed_at", at, "running",
		    "the rules loaded before keep running until a reload succeeds");
	} else {
		reload = json_pack("{s:b}", "ok", 1);
	}
	json_object_set_new(doc, "last_reload", reload);
	json_object_set_new(doc, "reloads", json_integer((json_int_t)d->reloads));
	json_object_set_new(doc, "reload_failures", json_integer((json_int_t)d->reload_failures));
	api_reply(req, 200, doc);
}

static void
rules_test(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	json_t *body = api_body(req, 0), *out = NULL;
	struct rules *rules = NULL;
	const char *event = "contact", *error = NULL;
	char evbuf[16];
	int64_t at = util_time_ms();
	int fresh = 0;

	if (body == NULL)
		return;
	if (rules_api_string(req, body, "event", "an event such as contact or escalated") < 0 ||
	    rules_api_time(req, body, "at", &at) < 0)
		goto out;
	if (json_is_string(json_object_get(body, "event")))
		event = json_string_value(json_object_get(body, "event"));
	if (!rules_event_known(event)) {
		http_problem(req, 422,
		    util_error("event: '%.40s' is no event; expected contact, reply, escalated, "
			       "resolved, closed, reopened, overdue, missed_call or reminder",
			event));
		goto out;
	}
	if (rules_api_pick(req, d, body, &rules, &fresh) < 0)
		goto out;
	/* The rest of the body is the sample contact, as loketctl rules test reads it. */
	snprintf(evbuf, sizeof(evbuf), "%s", event);
	json_object_del(body, "event");
	json_object_del(body, "at");
	json_object_del(body, "rules");
	if (rulebook_try(d, rules, evbuf, body, at, &out, &error) < 0) {
		http_problem(req, 422, error);
		goto out;
	}
	api_reply(req, 200, out);
out:
	if (fresh)
		rules_free(rules);
	json_decref(body);
}

static void
rules_replay(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	json_t *body = api_body(req, 0), *out = NULL, *v;
	struct rules *rules = NULL;
	const char *error = NULL;
	int64_t from = -1, to = 0;
	json_int_t limit = RULES_API_REPLAY_DEFAULT;
	int fresh = 0;
	const char *k;

	if (body == NULL)
		return;
	json_object_foreach(body, k, v)
		if (strcmp(k, "from") != 0 && strcmp(k, "to") != 0 && strcmp(k, "rules") != 0 &&
		    strcmp(k, "limit") != 0) {
			http_problem(req, 422,
			    util_error("%.64s: not a field of a replay (from, to, rules, limit)", k));
			goto out;
		}
	if (json_object_get(body, "from") == NULL) {
		http_problem(req, 422, "from: required: the start of the period, an RFC 3339 time "
				       "or a date such as 2026-11-01");
		goto out;
	}
	if (rules_api_time(req, body, "from", &from) < 0 || rules_api_time(req, body, "to", &to) < 0)
		goto out;
	if (to > 0 && to <= from) {
		http_problem(req, 422, "to: comes before from");
		goto out;
	}
	if ((v = json_object_get(body, "limit")) != NULL &&
	    (!json_is_integer(v) || json_integer_value(v) < 1 ||
		json_integer_value(v) > RULES_API_REPLAY_MAX)) {
		http_problem(req, 422,
		    util_error("limit: expected a number of contacts from 1 to %d", RULES_API_REPLAY_MAX));
		goto out;
	}
	if (v != NULL)
		limit = json_integer_value(v);
	if (rules_api_pick(req, d, body, &rules, &fresh) < 0)
		goto out;
	if (rulebook_replay(d, rules, from, to, (size_t)limit, NULL, NULL, &out, &error) < 0) {
		http_problem(req, 503, error != NULL ? error : "the register could not be read");
		goto out;
	}
	json_object_set_new(out, "limit", json_integer(limit));
	api_reply(req, 200, out);
out:
	if (fresh)
		rules_free(rules);
	json_decref(body);
}

static void
rules_reload(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	const char *error = NULL;
	int told = 0;

	if (d->reload_all == NULL) {
		http_problem(req, 503, "this loketd cannot reload from here");
		return;
	}
	auth_audit(d, req, "rules.reload", "rules");
	if (d->reload_all(d, &told, &error) < 0) {
		http_problem(req, 422,
		    util_error("%s; the rules loaded before keep running",
			error != NULL ? error : "the reload failed"));
		return;
	}
	api_reply(req, 200,
	    json_pack("{s:b, s:b, s:o}", "reloaded", 1, "nodes_told", told, "rules",
		rulebook_describe(d)));
}

int
http_api_rules_init(struct loketd *d, const char **error_r)
{
	if (http_route_add(d->http, "core", LOKET_HTTP_GET, "/api/v1/rules", LOKET_ACCESS_ADMIN,
		rules_get, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_POST, "/api/v1/rules/test",
		LOKET_ACCESS_ADMIN, rules_test, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_POST, "/api/v1/rules/replay",
		LOKET_ACCESS_ADMIN, rules_replay, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_POST, "/api/v1/rules/reload",
		LOKET_ACCESS_ADMIN, rules_reload, d, error_r) < 0)
		return -1;
	return 0;
}
