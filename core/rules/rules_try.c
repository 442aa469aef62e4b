/*
 * rules_try.c: rules tried out on a sample contact without side effects:
 * the one engine behind loketctl rules test and POST /api/v1/rules/test, so
 * that both show the same decisions in the same lines. Nothing is stored,
 * nothing sent, nothing counted in the metrics.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loketd.h"
#include "register.h"
#include "rulebook.h"
#include "rules.h"
#include "store.h"
#include "util.h"

struct rules_try {
	json_t *lines;
	int failed;
};

static void
rules_try_line(struct rules_try *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
rules_try_line(struct rules_try *t, const char *fmt, ...)
{
	char buf[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(t->lines, json_string(buf));
}

/* A rule's loket.log line, among the decisions as it came. */
static void
rules_try_log_cb(void *arg, const char *rule, const char *msg)
{
	rules_try_line(arg, "  %-28s log: %s", rule, msg);
}

static void
rules_try_time(struct rules_try *t, const char *label, json_t *ms)
{
	char buf[40];
	time_t tt;
	struct tm tm;

	if (!json_is_integer(ms))
		return;
	tt = (time_t)(json_integer_value(ms) / 1000);
	localtime_r(&tt, &tm);
	strftime(buf, sizeof(buf), "%a %Y-%m-%d %H:%M %Z", &tm);
	rules_try_line(t, "  %-14s %s", label, buf);
}

/* Each decision as a line and as {rule, file, line, type, text}. */
static json_t *
rules_try_decisions(struct rules_try *t, json_t *decisions)
{
	json_t *out = json_array(), *dec;
	char text[512];
	size_t i;

	json_array_foreach(decisions, i, dec) {
		const char *rule = json_string_value(json_object_get(dec, "rule"));
		const char *type = json_string_value(json_object_get(dec, "type"));
		const char *colon = rule != NULL ? strrchr(rule, ':') : NULL;

		if (rule == NULL)
			rule = "?";
		if (type != NULL && strcmp(type, "failed") == 0) {
			snprintf(text, sizeof(text), "FAILED (%s): %s",
			    json_string_value(json_object_get(dec, "result")),
			    json_string_value(json_object_get(dec, "message")));
			t->failed++;
		} else {
			register_describe(dec, text, sizeof(text));
		}
		rules_try_line(t, "  %-28s %s", rule, text);
		json_array_append_new(out,
		    json_pack("{s:s, s:s%, s:I, s:s, s:s}", "rule", rule, "file", rule,
			colon != NULL ? (size_t)(colon - rule) : strlen(rule), "line",
			(json_int_t)(colon != NULL ? atoll(colon + 1) : 0), "type",
			type != NULL ? type : "?", "text", text));
	}
	return out;
}

int
rulebook_try(struct loketd *d, struct rules *rules, const char *event, json_t *sample,
    int64_t at, json_t **out_r, const char **error_r)
{
	/*
	 * The daemon's state without its running rulebook: a failing rule is
	 * logged (by position only), not added to what the live rules failed.
	 */
	struct loketd td = *d;
	struct rules_try t = { 0 };
	json_t *body = NULL, *doc = NULL, *decisions = NULL, *extra = NULL, *v, *contact, *then;
	const char *given = NULL, *next, *error = NULL;
	char before[16];
	size_t i;

	td.rulebook = NULL;
	td.rules_hooks = &rulebook_register_hooks;
	/* As loketctl shows them: every reply decided, whether or not a plugin sends its channel. */
	td.outbox = NULL;
	*out_r = NULL;
	if (!json_is_object(sample)) {
		*error_r = "expected a JSON object: the sample contact";
		return -1;
	}
	if (!rules_event_known(event)) {
		*error_r = util_error("event: '%.40s' is no event; expected contact, reply, "
				      "escalated, resolved, closed, reopened, overdue, missed_call "
				      "or reminder",
		    event);
		return -1;
	}
	body = json_deep_copy(sample);
	/* For an event's rules, the sample may say the contact's status and the event's extra. */
	if (strcmp(event, "contact") != 0) {
		given = json_string_value(json_object_get(body, "status"));
		if (json_object_get(body, "status") != NULL && register_status_name(given) == NULL) {
			*error_r = "status: expected open, escalated, resolved or closed";
			goto fail;
		}
		given = register_status_name(given);
		if ((extra = json_incref(json_object_get(body, "extra"))) != NULL &&
		    !json_is_object(extra)) {
			*error_r = "extra: expected an object (what the event's handlers get as "
				   "their second argument)";
			goto fail;
		}
		json_object_del(body, "status");
		json_object_del(body, "extra");
	}
	if (register_prepare(&td, body, "rules-test", &doc, &error) != STORE_OK) {
		*error_r = util_error("the register would refuse this contact: %s",
		    error != NULL ? error : "?");
		goto fail;
	}
	json_object_set_new(doc, "received_at", json_integer(at));
	if (strcmp(event, "contact") != 0) {
		if (given == NULL)
			given = strcmp(event, "escalated") == 0 || strcmp(event, "overdue") == 0 ?
			    "escalated" :
			    strcmp(event, "resolved") == 0 ? "resolved" :
			    strcmp(event, "closed") == 0   ? "closed" :
							     "open";
		json_object_set_new(doc, "status", json_string(given));
		json_object_set_new(doc, "line",
		    json_integer(strcmp(given, "escalated") == 0 || strcmp(given, "closed") == 0 ? 2 :
												1));
		/* As in loketd, the rules of "escalated" get the task. */
		if (extra == NULL && strcmp(event, "escalated") == 0)
			extra = json_pack("{s:s?, s:s, s:s}", "department",
			    json_string_value(json_object_get(doc, "department")), "reason", "",
			    "status", "open");
	}
	t.lines = json_array();
	rules_try_time(&t, "at", json_object_get(doc, "received_at"));
	/* The status before the decisions, kept: register_apply replaces the string. */
	snprintf(before, sizeof(before), "%s", json_string_value(json_object_get(doc, "status")));
	decisions = rules_run_try(rules, event, doc, extra, at, rules_try_log_cb, &t);
	json_decref(extra);
	extra = NULL;
	if (json_array_size(decisions) == 0)
		rules_try_line(&t, "  no rule decided anything");
	*out_r = json_pack("{s:s, s:s, s:o}", "event", event, "status_before", before,
	    "decisions", rules_try_decisions(&t, decisions));
	register_apply(&td, doc, decisions);
	rules_try_line(&t, "the contact would be stored as:");
	contact = json_object();
	for (const char *const *f = (const char *const[]){ "status", "line", "department",
		 "organisation", "product", "priority", "assignee", NULL };
	     *f != NULL; f++) {
		char *s;

		if ((v = json_object_get(doc, *f)) == NULL || json_is_null(v))
			continue;
		json_object_set(contact, *f, v);
		s = json_dumps(v, JSON_ENCODE_ANY);
		rules_try_line(&t, "  %-14s %s", *f, s != NULL ? s : "?");
		free(s);
	}
	json_object_set(contact, "tags",
	    json_object_get(doc, "tags") != NULL ? json_object_get(doc, "tags") : json_array());
	if (json_array_size(json_object_get(doc, "tags")) > 0) {
		char *s = json_dumps(json_object_get(doc, "tags"), JSON_COMPACT);

		rules_try_line(&t, "  %-14s %s", "tags", s != NULL ? s : "?");
		free(s);
	}
	for (const char *const *f = (const char *const[]){ "task", "timers", "outbox", NULL };
	     *f != NULL; f++)
		if (json_object_get(doc, *f) != NULL)
			json_object_set(contact, *f, json_object_get(doc, *f));
	rules_try_time(&t, "task due", json_object_get(json_object_get(doc, "task"), "due_at"));
	json_array_foreach(json_object_get(doc, "timers"), i, v)
		rules_try_time(&t, "reminder at", json_object_get(v, "due_at"));
	json_array_foreach(json_object_get(doc, "outbox"), i, v)
		rules_try_line(&t, "  %-14s template %s", "reply",
		    json_string_value(json_object_get(v, "template")));
	json_object_set_new(*out_r, "contact", contact);
	then = json_null();
	/* Stored escalated or resolved, the contact runs the rules of that status next. */
	next = json_string_value(json_object_get(doc, "status"));
	if (next != NULL && strcmp(next, "open") != 0 && strcmp(next, before) != 0 &&
	    rules_handler_count(rules, next) > 0) {
		json_t *after;

		json_object_del(doc, "history");
		/* As in loketd, the rules of "escalated" get the task. */
		after = rules_run_try(rules, next, doc,
		    strcmp(next, "escalated") == 0 ? json_object_get(doc, "task") : NULL, at,
		    rules_try_log_cb, &t);
		rules_try_line(&t, "then the rules of \"%s\":", next);
		if (json_array_size(after) == 0)
			rules_try_line(&t, "  no rule decided anything");
		json_decref(then);
		then = json_pack("{s:s, s:o}", "event", next, "decisions",
		    rules_try_decisions(&t, after));
		json_decref(after);
	}
	json_object_set_new(*out_r, "then", then);
	json_object_set_new(*out_r, "failed", json_integer(t.failed));
	json_object_set_new(*out_r, "lines", t.lines);
	json_decref(decisions);
	json_decref(doc);
	json_decref(body);
	return 0;
fail:
	json_decref(extra);
	json_decref(body);
	return -1;
}

struct rules_replay {
	struct loketd d;
	struct rules *rules;
	int64_t to;
	size_t limit;
	json_t *per_rule; /* rule -> {"changed": n, "failed": n, "examples": [...]} */
	size_t seen;
	size_t changed;
	size_t failed;
	int complete;
	void (*progress)(size_t seen, size_t changed, void *arg);
	void *progress_arg;
};

static const char *const rules_replay_fields[] = { "product", "department", "status", "line",
	"priority", NULL };

static json_t *
rules_replay_field(json_t *doc, const char *field)
{
	json_t *v = json_object_get(doc, field);

	return v != NULL ? v : json_null();
}

/* Re-runs the rules on the contact as it came in and compares with what is stored. */
static int
rules_replay_one_cb(json_t *stored, void *arg)
{
	struct rules_replay *rp = arg;
	json_t *doc, *decisions, *dec, *at = json_object_get(stored, "received_at");
	const char *ref = json_string_value(json_object_get(stored, "reference"));
	int differs = 0;
	size_t i;

	/* The driver reads from a time on; the end of the period is ours to keep. */
	if (rp->to > 0 && json_is_integer(at) && json_integer_value(at) >= rp->to)
		return 0;
	if (rp->limit > 0 && rp->seen >= rp->limit) {
		rp->complete = 0;
		return -1;
	}
	rp->seen++;
	doc = json_deep_copy(stored);
	/* Rules see a stored contact as they see it live: the API's view of the row. */
	contact_view(stored);
	contact_view(doc);
	json_object_set_new(doc, "status", json_string("open"));
	json_object_set_new(doc, "line", json_integer(1));
	decisions = rules_run_try(rp->rules, "contact", doc, NULL, util_time_ms(), NULL, NULL);
	register_apply(&rp->d, doc, decisions);
	for (size_t f = 0; rules_replay_fields[f] != NULL; f++)
		differs |= !json_equal(rules_replay_field(doc, rules_replay_fields[f]),
		    rules_replay_field(stored, rules_replay_fields[f]));
	json_array_foreach(decisions, i, dec) {
		const char *rule = json_string_value(json_object_get(dec, "rule"));
		int is_failed = strcmp(json_string_value(json_object_get(dec, "type")), "failed") == 0;
		const char *key = is_failed ? "failed" : "changed";
		json_t *entry, *ex, *old;
		size_t k;
		int seen = 0;

		if ((!differs && !is_failed) || rule == NULL)
			continue;
		rp->failed += is_failed;
		if ((entry = json_object_get(rp->per_rule, rule)) == NULL) {
			entry = json_pack("{s:i, s:i, s:[]}", "changed", 0, "failed", 0, "examples");
			json_object_set_new(rp->per_rule, rule, entry);
		}
		json_object_set_new(entry, key,
		    json_integer(json_integer_value(json_object_get(entry, key)) + 1));
		ex = json_object_get(entry, "examples");
		if (json_array_size(ex) >= 5 || ref == NULL)
			continue;
		json_array_foreach(ex, k, old)
			seen |= strcmp(json_string_value(old), ref) == 0;
		if (!seen)
			json_array_append_new(ex, json_string(ref));
	}
	rp->changed += differs;
	if (rp->progress != NULL && rp->seen % 100 == 0)
		rp->progress(rp->seen, rp->changed, rp->progress_arg);
	json_decref(decisions);
	json_decref(doc);
	return 0;
}

int
rulebook_replay(struct loketd *d, struct rules *rules, int64_t from, int64_t to, size_t limit,
    void (*progress)(size_t seen, size_t changed, void *arg), void *progress_arg,
    json_t **out_r, const char **error_r)
{
	struct rules_replay rp = { .d = *d, .rules = rules, .to = to, .limit = limit,
		.complete = 1, .progress = progress, .progress_arg = progress_arg };
	json_t *lines, *rules_out, *entry;
	const char *rule;
	char line[1200];

	rp.d.rulebook = NULL;
	rp.d.rules_hooks = &rulebook_register_hooks;
	rp.d.outbox = NULL;
	*out_r = NULL;
	rp.per_rule = json_object();
	if (store_replay(d->conf, from, rules_replay_one_cb, &rp, error_r) < 0) {
		json_decref(rp.per_rule);
		return -1;
	}
	lines = json_array();
	rules_out = json_array();
	snprintf(line, sizeof(line),
	    "replayed %zu contacts: %zu would be stored differently, %zu rule calls would fail",
	    rp.seen, rp.changed, rp.failed);
	json_array_append_new(lines, json_string(line));
	json_object_foreach(rp.per_rule, rule, entry) {
		char *ex = json_dumps(json_object_get(entry, "examples"), JSON_COMPACT);

		snprintf(line, sizeof(line), "  %-28s %lld changed, %lld failed, e.g. %s", rule,
		    (long long)json_integer_value(json_object_get(entry, "changed")),
		    (long long)json_integer_value(json_object_get(entry, "failed")),
		    ex != NULL ? ex : "[]");
		free(ex);
		json_array_append_new(lines, json_string(line));
		json_array_append_new(rules_out,
		    json_pack("{s:s, s:O, s:O, s:O}", "rule", rule, "changed",
			json_object_get(entry, "changed"), "failed", json_object_get(entry, "failed"),
			"examples", json_object_get(entry, "examples")));
	}
	json_decref(rp.per_rule);
	*out_r = json_pack("{s:I, s:I, s:I, s:b, s:o, s:o}", "contacts", (json_int_t)rp.seen,
	    "changed", (json_int_t)rp.changed, "failed", (json_int_t)rp.failed, "complete",
	    rp.complete, "rules", rules_out, "lines", lines);
	return 0;
}
