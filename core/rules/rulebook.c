/* rulebook.c: the daemon's running rules, calendars and catalogue: load, reload, run, count. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "events.h"
#include "log.h"
#include "loketd.h"
#include "metrics.h"
#include "register.h"
#include "rulebook.h"
#include "timers.h"
#include "rules.h"
#include "store.h"
#include "units.h"
#include "util.h"

/* What the rules engine calls back with: the daemon for counting, the units for lookups. */
struct rulebook_host {
	struct loketd *d;
	struct units *units;
	struct metric_series *contact_seconds; /* looked up at the first contact */
	json_t *failures; /* "rule result" -> [last logged (ms), failures since] */
};

#define RULEBOOK_FAILED_EVERY_MS 60000

/*
 * The "file.lua:N" a message starts with, into at, when file is the rule's
 * own (rule is "file.lua:M"); else "?". Only a position: a message a rule
 * made itself can hold contact data.
 */
static void
rulebook_message_at(const char *rule, const char *message, char *at, size_t len)
{
	const char *colon = strrchr(rule, ':');
	size_t n = colon != NULL ? (size_t)(colon - rule) : 0, digits;

	snprintf(at, len, "?");
	if (message == NULL || n == 0 || strncmp(message, rule, n + 1) != 0)
		return;
	digits = strspn(message + n + 1, "0123456789");
	if (digits == 0 || message[n + 1 + digits] != ':')
		return;
	snprintf(at, len, "%.*s", (int)(n + 1 + digits), message);
}

void
rulebook_failed(struct loketd *d, const char *rule, const char *result, const char *message)
{
	struct rulebook_host *rb = d->rulebook;
	int64_t now = util_time_ms();
	json_int_t since = 0;
	char key[320], at[160];
	json_t *e;

	rulebook_message_at(rule, message, at, sizeof(at));
	if (rb == NULL) {
		log_warnx("rules", "rule failed rule=%s result=%s at=%s", rule, result, at);
		return;
	}
	snprintf(key, sizeof(key), "%s %s", rule, result);
	if ((e = json_object_get(rb->failures, key)) != NULL) {
		since = json_integer_value(json_array_get(e, 1));
		/* A rule that fails on every contact would fill the log at intake speed. */
		if (now - json_integer_value(json_array_get(e, 0)) < RULEBOOK_FAILED_EVERY_MS) {
			json_integer_set(json_array_get(e, 1), since + 1);
			return;
		}
	}
	if (since > 0)
		log_warnx("rules", "rule failed rule=%s result=%s at=%s (and %lld times more in the "
				   "last minute or longer)",
		    rule, result, at, (long long)since);
	else
		log_warnx("rules", "rule failed rule=%s result=%s at=%s", rule, result, at);
	json_object_set_new(rb->failures, key, json_pack("[I, I]", (json_int_t)now, (json_int_t)0));
}

static void
rulebook_count_cb(void *arg, const char *rule, enum rules_result result, void **cache)
{
	struct rulebook_host *rb = arg;
	char labels[300], esc[256];

	/* Every handler of every contact counts: the engine keeps the series for us. */
	if (*cache == NULL) {
		snprintf(labels, sizeof(labels), "rule=\"%s\",result=\"%s\"",
		    metrics_label_escape(esc, sizeof(esc), rule), rules_result_name(result));
		*cache = metrics_series(rb->d->metrics, METRIC_COUNTER, "loket_rule_runs_total",
		    "Rule handler calls, by rule (file:line) and how they ended.", labels, NULL, 0);
	}
	metrics_add(*cache, 1);
}

static void
rulebook_cost_cb(void *arg, const char *rule, uint64_t instructions, void **cache)
{
	struct rulebook_host *rb = arg;
	char labels[300], esc[256];

	if (*cache == NULL) {
		snprintf(labels, sizeof(labels), "rule=\"%s\"",
		    metrics_label_escape(esc, sizeof(esc), rule));
		*cache = metrics_series(rb->d->metrics, METRIC_COUNTER,
		    "loket_rule_instructions_total",
		    "Lua instructions rule handlers ran, by rule (file:line), in steps of 1000.",
		    labels, NULL, 0);
	}
	metrics_add(*cache, (double)instructions);
}

static void
rulebook_log_cb(void *arg, const char *rule, const char *msg)
{
	log_info("rules", "log rule=%s msg=\"%s\"", rule, msg);
}

static const struct catalogue *
rulebook_catalogue_cb(void *arg)
{
	return units_catalogue(((struct rulebook_host *)arg)->units);
}

static const struct calendar *
rulebook_calendar_cb(void *arg, const char *unit)
{
	return units_calendar(((struct rulebook_host *)arg)->units, unit);
}

static int
rulebook_department_cb(void *arg, const char *department)
{
	return conf_department(((struct rulebook_host *)arg)->d->conf, department) != NULL;
}

/* Loads units and rules for conf; all or nothing. */
static int
rulebook_build(struct loketd *d, const struct conf *conf, struct rulebook_host **rb_r,
    struct rules **rules_r, const char **error_r)
{
	struct rules_limits limits = { .instructions = (uint64_t)conf->rules_instructions,
		.wall_ms = conf->rules_timeout_ms, .memory = (size_t)conf->rules_memory };
	struct rules_host host = { 0 };
	struct rulebook_host *rb = calloc(1, sizeof(*rb));

	*rules_r = NULL;
	*rb_r = NULL;
	if (rb == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	rb->d = d;
	rb->failures = json_object();
	if (units_load(conf, &rb->units, error_r) < 0) {
		json_decref(rb->failures);
		free(rb);
		return -1;
	}
	if (conf->rules_dir[0] != '\0') {
		host.arg = rb;
		host.catalogue = rulebook_catalogue_cb;
		host.calendar = rulebook_calendar_cb;
		host.department_known = rulebook_department_cb;
		host.count = rulebook_count_cb;
		host.cost = rulebook_cost_cb;
		host.log = rulebook_log_cb;
		if (rules_load(conf->rules_dir, &limits, &host, rules_r, error_r) < 0) {
			units_free(rb->units);
			json_decref(rb->failures);
			free(rb);
			return -1;
		}
	}
	*rb_r = rb;
	return 0;
}

/* How the register runs the rules during intake, without including core/rules. */
const struct register_rules_hooks rulebook_register_hooks = { rulebook_contact, rulebook_failed };

int
rulebook_init(struct loketd *d, const char **error_r)
{
	if (rulebook_build(d, d->conf, &d->rulebook, &d->rules, error_r) < 0)
		return -1;
	d->rules_hooks = &rulebook_register_hooks;
	d->units = d->rulebook->units;
	if (d->rules != NULL)
		log_info("rules", "loaded dir=%s contact_rules=%zu", d->conf->rules_dir,
		    rules_handler_count(d->rules, "contact"));
	return 0;
}

struct rulebook_pending {
	struct rulebook_host *rb;
	struct rules *rules;
};

struct rulebook_pending *
rulebook_prepare(struct loketd *d, const struct conf *conf, const char **error_r)
{
	struct rulebook_pending *p = calloc(1, sizeof(*p));

	if (p == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	if (rulebook_build(d, conf, &p->rb, &p->rules, error_r) < 0) {
		free(p);
		return NULL;
	}
	return p;
}

void
rulebook_commit(struct loketd *d, struct rulebook_pending *p)
{
	rulebook_free(d);
	d->rulebook = p->rb;
	d->units = p->rb->units;
	d->rules = p->rules;
	if (p->rules != NULL)
		log_info("rules", "reloaded contact_rules=%zu", rules_handler_count(p->rules, "contact"));
	free(p);
}

void
rulebook_discard(struct rulebook_pending *p)
{
	if (p == NULL)
		return;
	rules_free(p->rules);
	units_free(p->rb->units);
	json_decref(p->rb->failures);
	free(p->rb);
	free(p);
}

void
rulebook_free(struct loketd *d)
{
	rules_free(d->rules);
	if (d->rulebook != NULL) {
		units_free(d->rulebook->units);
		json_decref(d->rulebook->failures);
	}
	free(d->rulebook);
	d->rules = NULL;
	d->units = NULL;
	d->rulebook = NULL;
}

static json_t *
rulebook_run(struct loketd *d, const char *event, json_t *contact, json_t *extra)
{
	if (d->rules == NULL || rules_handler_count(d->rules, event) == 0)
		return NULL;
	return rules_run(d->rules, event, contact, extra, util_time_ms());
}

json_t *
rulebook_stats(struct loketd *d)
{
	json_t *handlers, *failing, *v;
	const char *event, *key;

	if (d->rules == NULL)
		return json_pack("{s:s}", "dir", "(no rules)");
	handlers = json_object();
	failing = json_array();
	for (int i = 0; (event = rules_event_name(i)) != NULL; i++)
		if (rules_handler_count(d->rules, event) > 0)
			json_object_set_new(handlers, event,
			    json_integer((json_int_t)rules_handler_count(d->rules, event)));
	json_object_foreach(d->rulebook->failures, key, v)
		json_array_append_new(failing, json_string(key));
	return json_pack("{s:s, s:o, s:o}", "dir", d->conf->rules_dir, "handlers", handlers,
	    "failing since loaded", failing);
}

/* A handler's runs and cost from the metrics: by its label, so they outlive a reload. */
static void
rulebook_describe_cb(void *arg, json_t *handler, void *const *count_cache, void *cost_cache)
{
	struct loketd *d = arg;
	const char *rule = json_string_value(json_object_get(handler, "rule"));
	json_t *runs = json_object();
	struct metric_series *s;
	char labels[300], esc[256];
	json_int_t total = 0, errors = 0;

	(void)count_cache;
	(void)cost_cache;
	metrics_label_escape(esc, sizeof(esc), rule);
	for (int res = 0; res < RULES_RESULT_COUNT; res++) {
		json_int_t n;

		snprintf(labels, sizeof(labels), "rule=\"%s\",result=\"%s\"", esc,
		    rules_result_name((enum rules_result)res));
		s = metrics_find(d->metrics, "loket_rule_runs_total", labels);
		n = s != NULL ? (json_int_t)metrics_value(s) : 0;
		json_object_set_new(runs, rules_result_name((enum rules_result)res), json_integer(n));
		total += n;
		if (res != RULES_OK)
			errors += n;
	}
	snprintf(labels, sizeof(labels), "rule=\"%s\"", esc);
	s = metrics_find(d->metrics, "loket_rule_instructions_total", labels);
	json_object_set_new(handler, "runs", json_integer(total));
	json_object_set_new(handler, "errors", json_integer(errors));
	json_object_set_new(handler, "results", runs);
	json_object_set_new(handler, "instructions",
	    json_integer(s != NULL ? (json_int_t)metrics_value(s) : 0));
}

json_t *
rulebook_describe(struct loketd *d)
{
	json_t *doc, *failing = json_array(), *v;
	const char *key;

	if (d->rules == NULL)
		doc = json_pack("{s:s, s:[], s:[]}", "dir", d->conf->rules_dir, "files", "handlers");
	else
		doc = rules_describe(d->rules, rulebook_describe_cb, d);
	if (doc == NULL) {
		json_decref(failing);
		return NULL;
	}
	if (d->rulebook != NULL)
		json_object_foreach(d->rulebook->failures, key, v) {
			const char *space = strrchr(key, ' ');

			if (space != NULL)
				json_array_append_new(failing,
				    json_pack("{s:s%, s:s, s:I}", "rule", key, (size_t)(space - key),
					"result", space + 1, "logged_since",
					json_integer_value(json_array_get(v, 1))));
		}
	json_object_set_new(doc, "failing_since_loaded", failing);
	return doc;
}

static const double rulebook_bounds[] = { 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1 };

void
rulebook_contact(struct loketd *d, json_t *doc)
{
	uint64_t t0 = util_now_ns();
	json_t *decisions = rulebook_run(d, "contact", doc, NULL);
	double took = (double)(util_now_ns() - t0) / 1e9;

	if (decisions == NULL)
		return;
	if (d->rulebook->contact_seconds == NULL)
		d->rulebook->contact_seconds = metrics_series(d->metrics, METRIC_HISTOGRAM,
		    "loket_rules_contact_seconds", "Time the contact rules took for one new contact.",
		    "", rulebook_bounds, sizeof(rulebook_bounds) / sizeof(rulebook_bounds[0]));
	metrics_observe(d->rulebook->contact_seconds, took);
	register_apply(d, doc, decisions);
	json_decref(decisions);
}

/*
 * A status the rules changed runs its own rules, as a change made through
 * the API does: the register publishes the change, and rulebook_event_cb
 * hears it. Rules change only an open contact's status, so this ends.
 */
static void
rulebook_followup_cb(struct store_req *sr, void *arg)
{
	if (sr->result != STORE_OK && sr->result != STORE_CONFLICT)
		log_warnx("rules", "a rule's follow-up was not stored: %s", sr->error);
}

/* A timer whose follow-up could not even be submitted: the timers hear it was not stored. */
static void
rulebook_timer_unsettled(struct loketd *d, json_int_t timer_id)
{
	struct events_event ev = { 0 };

	ev.pub.kind = (enum loket_event_kind)EVENTS_TIMER_SETTLED;
	ev.pub.name = "timer.settled";
	ev.pub.at = util_time_ms();
	ev.pub.json = "{}";
	ev.timer_id = timer_id;
	events_publish(d->events, &ev);
}

/* Takes over extra. */
static void
rulebook_followup(struct loketd *d, const char *event, json_t *contact, json_t *extra,
    json_int_t timer_id)
{
	json_t *decisions = rulebook_run(d, event, contact, extra), *doc, *in, *set;
	struct store_req *sr;
	const char *status;

	json_decref(extra);
	/* Nothing decided (and no timer to close): nothing to store. */
	if (timer_id == 0 && !register_decides(d, contact, decisions)) {
		json_decref(decisions);
		return;
	}
	doc = json_deep_copy(contact);
	/*
	 * The contact as read holds its history: register_apply adds the rules'
	 * rows to what it finds, and the follow-up stores every row it is given.
	 */
	json_object_del(doc, "history");
	json_object_del(doc, "timers");
	json_object_del(doc, "outbox");
	status = json_string_value(json_object_get(contact, "status"));
	if (decisions != NULL)
		register_apply(d, doc, decisions);
	in = json_pack("{s:O, s:I, s:s, s:{s:b}}", "id", json_object_get(contact, "id"), "at",
	    (json_int_t)util_time_ms(), "actor", "rules", "scope", "all", 1);
	set = json_object();
	for (const char *const *f = (const char *const[]){ "product", "department",
		 "organisation", "priority", "tags", "assignee", "language", "confidential", NULL };
	     *f != NULL; f++)
		if (!json_equal(json_object_get(doc, *f), json_object_get(contact, *f)) &&
		    json_object_get(doc, *f) != NULL)
			json_object_set(set, *f, json_object_get(doc, *f));
	json_object_set_new(in, "set", set);
	for (const char *const *f = (const char *const[]){ "history", "timers", "outbox", NULL };
	     *f != NULL; f++)
		if (json_object_get(doc, *f) != NULL)
			json_object_set(in, *f, json_object_get(doc, *f));
	/*
	 * An escalation or a resolution decided on an open contact moves it, like
	 * the API would (the rules refuse both on a contact that is not open).
	 */
	if (status != NULL && strcmp(status, "open") == 0) {
		const char *now = json_string_value(json_object_get(doc, "status"));

		if (now != NULL && strcmp(now, "escalated") == 0 &&
		    json_object_get(doc, "task") != NULL) {
			json_object_set(in, "task", json_object_get(doc, "task"));
			json_object_set_new(in, "transition",
			    register_transition_json(REGISTER_ESCALATE, NULL));
		} else if (now != NULL && strcmp(now, "resolved") == 0) {
			json_object_set_new(in, "transition",
			    register_transition_json(REGISTER_RESOLVE, NULL));
			if (json_is_string(json_object_get(doc, "answer")))
				json_object_set(set, "answer", json_object_get(doc, "answer"));
		}
	}
	if (timer_id != 0)
		json_object_set_new(in, "timer_done", json_integer(timer_id));
	if (strcmp(event, "overdue") == 0) {
		json_t *h = json_object_get(in, "history");

		if (h == NULL)
			json_object_set_new(in, "history", h = json_array());
		json_array_append_new(h, json_pack("{s:s, s:s, s:s}", "actor", "loketd", "action",
					     "overdue", "detail", "a task passed its due time"));
	}
	json_decref(doc);
	json_decref(decisions);
	sr = store_req_new(STORE_CONTACT_UPDATE, in, rulebook_followup_cb, d);
	if (sr != NULL)
		store_submit(d->store, sr);
	else if (timer_id != 0)
		rulebook_timer_unsettled(d, timer_id);
}

void
rulebook_event(struct loketd *d, const char *event, json_t *contact, json_t *extra)
{
	/* The rules of "escalated" get the task it opened: loket.on("escalated", function(c, task)). */
	if (extra == NULL && strcmp(event, "escalated") == 0) {
		json_t *tasks = json_object_get(contact, "tasks"), *t;
		size_t i;

		json_array_foreach(tasks, i, t) {
			const char *status = json_string_value(json_object_get(t, "status"));

			if (status != NULL && strcmp(status, "open") == 0)
				extra = t; /* the last one open is the newest */
		}
		extra = json_incref(extra);
	}
	rulebook_followup(d, event, contact, extra, 0);
}

/* What a rule needs once the contact of an event is read. */
struct rulebook_read {
	struct loketd *d;
	char event[16];
	json_t *timer; /* a fired timer's row, or NULL */
};

/* The contact of an event, read: the rules of the event run on it. */
static void
rulebook_read_cb(struct store_req *sr, void *arg)
{
	struct rulebook_read *rr = arg;
	struct loketd *d = rr->d;
	json_t *t = rr->timer;
	json_int_t timer_id = json_integer_value(json_object_get(t, "id"));

	if (t == NULL) {
		if (sr->result == STORE_OK)
			rulebook_event(d, rr->event, sr->out, NULL);
	} else if (sr->result != STORE_OK) {
		struct store_req *done = store_req_new(STORE_TIMER_DONE,
		    json_pack("{s:I, s:I}", "id", timer_id, "at", (json_int_t)util_time_ms()),
		    rulebook_followup_cb, d);

		/* The contact is gone or unreadable: the timer is closed without action. */
		if (done != NULL)
			store_submit(d->store, done);
		else
			rulebook_timer_unsettled(d, timer_id);
	} else if (strcmp(rr->event, "overdue") == 0) {
		json_t *extra = json_pack("{s:O}", "task_id", json_object_get(t, "task_id")), *task;
		size_t i;

		/* The task itself too: its department, reason and due time. */
		json_array_foreach(json_object_get(sr->out, "tasks"), i, task)
			if (json_equal(json_object_get(task, "id"), json_object_get(t, "task_id")))
				json_object_set(extra, "task", task);
		rulebook_followup(d, "overdue", sr->out, extra, timer_id);
	} else {
		rulebook_followup(d, "reminder", sr->out,
		    json_pack("{s:O}", "call", json_object_get(json_object_get(t, "payload"), "call")),
		    timer_id);
	}
	json_decref(t);
	free(rr);
}

/* Reads contact_id, then runs event's rules (and a fired timer's action, with timer). */
static void
rulebook_read(struct loketd *d, const char *event, json_int_t contact_id, json_t *timer)
{
	struct rulebook_read *rr = calloc(1, sizeof(*rr));
	struct store_req *sr;

	if (rr == NULL) {
		if (timer != NULL)
			rulebook_timer_unsettled(d, json_integer_value(json_object_get(timer, "id")));
		return;
	}
	rr->d = d;
	snprintf(rr->event, sizeof(rr->event), "%s", event);
	rr->timer = json_incref(timer);
	sr = store_req_new(STORE_CONTACT_GET,
	    json_pack("{s:I, s:{s:b}}", "id", contact_id, "scope", "all", 1), rulebook_read_cb, rr);
	if (sr == NULL) {
		if (timer != NULL)
			rulebook_timer_unsettled(d, json_integer_value(json_object_get(timer, "id")));
		json_decref(rr->timer);
		free(rr);
		return;
	}
	store_submit(d->store, sr);
}

/*
 * The register's news, turned into the rules of follow-up events: a contact
 * stored with a status the intake rules decided, a status changed (by the
 * API, rules, a timer, a finished task), a citizen's reply on a contact, and
 * a timer that came due.
 */
static void
rulebook_event_cb(const struct events_event *ev, void *arg)
{
	struct loketd *d = arg;
	const char *status = json_string_value(json_object_get(ev->payload, "status"));
	const char *from = json_string_value(json_object_get(ev->payload, "previous_status"));
	const char *event;

	switch ((unsigned int)ev->pub.kind) {
	case LOKET_EVENT_CONTACT_CREATED:
		/* Decided at intake: the rules of that status run now that it is stored. */
		if (status != NULL && strcmp(status, "open") != 0 && events_contact(ev) != NULL)
			rulebook_event(d, status, events_contact(ev), NULL);
		break;
	case LOKET_EVENT_CONTACT_CHANGED:
		/* A reply that reopened a contact runs the rules of "reply", not of "reopened". */
		if (status == NULL || from == NULL || strcmp(status, from) == 0 ||
		    json_object_get(ev->payload, "cause") != NULL)
			break;
		event = strcmp(status, "open") == 0 ? "reopened" : status;
		if (ev->contact != NULL)
			rulebook_event(d, event, ev->contact, NULL);
		else
			rulebook_read(d, event, ev->pub.contact_id, NULL);
		break;
	case LOKET_EVENT_MESSAGE_ADDED:
		/* A citizen's message on a contact (its message as the channel submitted it). */
		if (ev->detail != NULL && ev->contact != NULL &&
		    strcmp(json_string_value(json_object_get(ev->payload, "direction")) != NULL ?
			json_string_value(json_object_get(ev->payload, "direction")) : "",
			"in") == 0)
			rulebook_event(d, "reply", ev->contact,
			    json_pack("{s:O}", "message", ev->detail));
		break;
	case EVENTS_TIMER_DUE:
		rulebook_read(d,
		    strcmp(json_string_value(json_object_get(ev->detail, "kind")) != NULL ?
			json_string_value(json_object_get(ev->detail, "kind")) : "",
			"overdue") == 0 ? "overdue" : "reminder",
		    ev->pub.contact_id, ev->detail);
		break;
	}
}

int
rulebook_subscribe(struct loketd *d)
{
	return events_subscribe(d->events,
	    LOKET_EVENT_CONTACT_CREATED | LOKET_EVENT_CONTACT_CHANGED | LOKET_EVENT_MESSAGE_ADDED |
		EVENTS_TIMER_DUE,
	    rulebook_event_cb, d, NULL);
}
