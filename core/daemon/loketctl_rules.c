/* loketctl_rules.c: `loketctl rules test` and `rules replay`: rules tried out without side effects. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "loketctl.h"
#include "loketd.h"
#include "register.h"
#include "rulebook.h"
#include "rules.h"
#include "store.h"
#include "units.h"
#include "util.h"

static void
rules_test_log_cb(void *arg, const char *rule, const char *msg)
{
	printf("  %-28s log: %s\n", rule, msg);
}

static int
rules_setup(const struct conf *conf, const char *dir, struct units **units_r,
    struct rules **rules_r)
{
	struct rules_limits limits = { .instructions = (uint64_t)conf->rules_instructions,
		.wall_ms = conf->rules_timeout_ms, .memory = (size_t)conf->rules_memory };
	struct rules_host host = { 0 };
	const char *err = NULL;

	if (units_load(conf, units_r, &err) < 0) {
		fprintf(stderr, "loketctl: %s\n", err);
		return -1;
	}
	units_rules_host(*units_r, &host);
	host.log = rules_test_log_cb;
	if (rules_load(dir, &limits, &host, rules_r, &err) < 0) {
		fprintf(stderr, "loketctl: the rules do not load: %s\n", err);
		units_free(*units_r);
		return -1;
	}
	return 0;
}

static void
print_time(const char *label, json_t *ms)
{
	char buf[40];
	time_t t;
	struct tm tm;

	if (!json_is_integer(ms))
		return;
	t = (time_t)(json_integer_value(ms) / 1000);
	localtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%a %Y-%m-%d %H:%M %Z", &tm);
	printf("  %-14s %s\n", label, buf);
}

/* Prints each decision with its rule; returns how many were failures. */
static int
print_decisions(json_t *decisions)
{
	json_t *dec;
	char text[512];
	int failed = 0;
	size_t i;

	json_array_foreach(decisions, i, dec) {
		if (strcmp(json_string_value(json_object_get(dec, "type")), "failed") == 0) {
			printf("  %-28s FAILED (%s): %s\n",
			    json_string_value(json_object_get(dec, "rule")),
			    json_string_value(json_object_get(dec, "result")),
			    json_string_value(json_object_get(dec, "message")));
			failed++;
			continue;
		}
		register_describe(dec, text, sizeof(text));
		printf("  %-28s %s\n", json_string_value(json_object_get(dec, "rule")), text);
	}
	return failed;
}

static int
rules_test_usage(void)
{
	fprintf(stderr, "usage: loketctl rules test DIR CONTACT.json [--at \"YYYY-MM-DD HH:MM\"] "
			"[--event EVENT]\n");
	return 2;
}

static int
cmd_rules_test(const struct conf *conf, int argc, char **argv)
{
	struct loketd d = { .conf = (struct conf *)conf, .rules_hooks = &rulebook_register_hooks };
	struct units *units = NULL;
	struct rules *rules = NULL;
	json_t *body, *doc = NULL, *decisions, *v, *extra = NULL;
	json_error_t jerr;
	int64_t at = util_time_ms();
	const char *next, *event = "contact", *pos[2], *given = NULL;
	const char *error = NULL;
	char before[16];
	int failed = 0, refused, npos = 0;
	size_t i;

	for (int k = 0; k < argc; k++) {
		if (strcmp(argv[k], "--at") == 0 && k + 1 < argc) {
			if (util_time_parse_local(argv[++k], &at) < 0) {
				fprintf(stderr, "loketctl: --at: expected \"2026-12-24 16:55\", got '%s'\n",
				    argv[k]);
				return 2;
			}
		} else if (strcmp(argv[k], "--event") == 0 && k + 1 < argc) {
			event = argv[++k];
		} else if (argv[k][0] == '-' || npos == 2) {
			return rules_test_usage();
		} else {
			pos[npos++] = argv[k];
		}
	}
	if (npos != 2)
		return rules_test_usage();
	if (!rules_event_known(event)) {
		fprintf(stderr, "loketctl: --event: '%s' is no event; expected contact, reply, "
				"escalated, resolved, closed, reopened, overdue, missed_call or reminder\n",
		    event);
		return 2;
	}
	if ((body = json_load_file(pos[1], JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		fprintf(stderr, "loketctl: %s:%d: %s\n", pos[1], jerr.line, jerr.text);
		return 2;
	}
	/* For an event's rules, the sample may say the contact's status and the event's extra. */
	if (strcmp(event, "contact") != 0 && json_is_object(body)) {
		given = json_string_value(json_object_get(body, "status"));
		if (json_object_get(body, "status") != NULL && register_status_name(given) == NULL) {
			fprintf(stderr, "loketctl: %s: status: expected open, escalated, resolved or "
					"closed\n",
			    pos[1]);
			json_decref(body);
			return 2;
		}
		/* The list's own string: body goes before given is used. */
		given = register_status_name(given);
		if ((extra = json_incref(json_object_get(body, "extra"))) != NULL &&
		    !json_is_object(extra)) {
			fprintf(stderr, "loketctl: %s: extra: expected an object (what the event's "
					"handlers get as their second argument)\n",
			    pos[1]);
			json_decref(extra);
			json_decref(body);
			return 2;
		}
		json_object_del(body, "status");
		json_object_del(body, "extra");
	}
	refused = register_prepare(&d, body, "rules-test", &doc, &error) != STORE_OK;
	json_decref(body);
	if (refused) {
		fprintf(stderr, "loketctl: %s: the register would refuse this contact: %s\n", pos[1],
		    error);
		json_decref(extra);
		return 2;
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
	if (rules_setup(conf, pos[0], &units, &rules) < 0) {
		json_decref(extra);
		json_decref(doc);
		return 2;
	}
	if (strcmp(event, "contact") == 0)
		printf("rules of %s on %s\n", pos[0], pos[1]);
	else
		printf("rules of \"%s\" in %s on %s (status %s)\n", event, pos[0], pos[1], given);
	print_time("at", json_object_get(doc, "received_at"));
	/* The status before the decisions, kept: register_apply replaces the string. */
	snprintf(before, sizeof(before), "%s", json_string_value(json_object_get(doc, "status")));
	decisions = rules_run(rules, event, doc, extra, at);
	json_decref(extra);
	if (json_array_size(decisions) == 0)
		printf("  no rule decided anything\n");
	failed += print_decisions(decisions);
	register_apply(&d, doc, decisions);
	printf("the contact would be stored as:\n");
	for (const char *const *f = (const char *const[]){ "status", "line", "department",
		 "organisation", "product", "priority", "assignee", NULL };
	     *f != NULL; f++) {
		char *s;

		if ((v = json_object_get(doc, *f)) == NULL || json_is_null(v))
			continue;
		s = json_dumps(v, JSON_ENCODE_ANY);
		printf("  %-14s %s\n", *f, s != NULL ? s : "?");
		free(s);
	}
	if (json_array_size(json_object_get(doc, "tags")) > 0) {
		char *s = json_dumps(json_object_get(doc, "tags"), JSON_COMPACT);

		printf("  %-14s %s\n", "tags", s != NULL ? s : "?");
		free(s);
	}
	print_time("task due", json_object_get(json_object_get(doc, "task"), "due_at"));
	json_array_foreach(json_object_get(doc, "timers"), i, v)
		print_time("reminder at", json_object_get(v, "due_at"));
	json_array_foreach(json_object_get(doc, "outbox"), i, v)
		printf("  %-14s template %s\n", "reply",
		    json_string_value(json_object_get(v, "template")));
	/* Stored escalated or resolved, the contact runs the rules of that status next. */
	next = json_string_value(json_object_get(doc, "status"));
	if (next != NULL && strcmp(next, "open") != 0 && strcmp(next, before) != 0 &&
	    rules_handler_count(rules, next) > 0) {
		json_t *after;

		json_object_del(doc, "history");
		/* As in loketd, the rules of "escalated" get the task. */
		after = rules_run(rules, next, doc,
		    strcmp(next, "escalated") == 0 ? json_object_get(doc, "task") : NULL, at);
		printf("then the rules of \"%s\":\n", next);
		if (json_array_size(after) == 0)
			printf("  no rule decided anything\n");
		failed += print_decisions(after);
		json_decref(after);
	}
	json_decref(decisions);
	json_decref(doc);
	rules_free(rules);
	units_free(units);
	return failed > 0 ? 1 : 0;
}

struct replay {
	const struct conf *conf;
	struct loketd d;
	struct rules *rules;
	json_t *per_rule; /* rule -> {"changed": n, "examples": [...]} */
	size_t seen;
	size_t changed;
	size_t failed;
	int tty;
};

static const char *const replay_fields[] = { "product", "department", "status", "line",
	"priority", NULL };

/* Re-runs the rules on the contact as it came in and compares with what is stored. */
static int
replay_one_cb(json_t *stored, void *arg)
{
	struct replay *rp = arg;
	json_t *doc = json_deep_copy(stored), *decisions, *dec;
	const char *ref = json_string_value(json_object_get(stored, "reference"));
	int differs = 0;
	size_t i;

	rp->seen++;
	/* Rules see a stored contact as they see it live: the API's view of the row. */
	contact_view(stored);
	contact_view(doc);
	json_object_set_new(doc, "status", json_string("open"));
	json_object_set_new(doc, "line", json_integer(1));
	decisions = rules_run(rp->rules, "contact", doc,
	    NULL, util_time_ms());
	register_apply(&rp->d, doc, decisions);
	for (size_t f = 0; replay_fields[f] != NULL; f++)
		differs |= !json_equal(json_object_get(doc, replay_fields[f]) != NULL ?
			json_object_get(doc, replay_fields[f]) :
			json_null(),
		    json_object_get(stored, replay_fields[f]) != NULL ?
			json_object_get(stored, replay_fields[f]) :
			json_null());
	json_array_foreach(decisions, i, dec) {
		const char *rule = json_string_value(json_object_get(dec, "rule"));
		int is_failed = strcmp(json_string_value(json_object_get(dec, "type")), "failed") == 0;
		json_t *entry;

		if (!differs && !is_failed)
			continue;
		rp->failed += is_failed;
		if ((entry = json_object_get(rp->per_rule, rule)) == NULL) {
			entry = json_pack("{s:i, s:i, s:[]}", "changed", 0, "failed", 0, "examples");
			json_object_set_new(rp->per_rule, rule, entry);
		}
		json_object_set_new(entry, is_failed ? "failed" : "changed",
		    json_integer(json_integer_value(json_object_get(entry,
				     is_failed ? "failed" : "changed")) +
			1));
		if (json_array_size(json_object_get(entry, "examples")) < 5 && ref != NULL) {
			json_t *ex = json_object_get(entry, "examples");
			size_t k;
			json_t *old;
			int seen = 0;

			json_array_foreach(ex, k, old)
				seen |= strcmp(json_string_value(old), ref) == 0;
			if (!seen)
				json_array_append_new(ex, json_string(ref));
		}
	}
	rp->changed += differs;
	if (rp->tty && rp->seen % 100 == 0) {
		fprintf(stderr, "\rreplay: %zu contacts, %zu would change", rp->seen, rp->changed);
		fflush(stderr);
	}
	json_decref(decisions);
	json_decref(doc);
	return 0;
}

static int
cmd_rules_replay(const struct conf *conf, int argc, char **argv)
{
	struct replay rp = { .conf = conf,
		.d = { .conf = (struct conf *)conf, .rules_hooks = &rulebook_register_hooks } };
	struct units *units = NULL;
	int64_t since = 0;
	const char *err = NULL;
	const char *rule;
	json_t *entry;
	int rc;

	if (argc == 3 && strcmp(argv[1], "--since") == 0) {
		if (util_time_parse_local(argv[2], &since) < 0) {
			fprintf(stderr, "loketctl: --since: expected a date like 2026-11-01\n");
			return 2;
		}
	} else if (argc != 1) {
		fprintf(stderr, "usage: loketctl rules replay DIR [--since YYYY-MM-DD]\n");
		return 2;
	}
	if (rules_setup(conf, argv[0], &units, &rp.rules) < 0)
		return 2;
	rp.per_rule = json_object();
	rp.tty = isatty(STDERR_FILENO);
	rc = store_replay(conf, since, replay_one_cb, &rp, &err);
	if (rp.tty)
		fprintf(stderr, "\r%60s\r", "");
	if (rc < 0) {
		fprintf(stderr, "loketctl: %s\n", err != NULL ? err : "replay failed");
	} else {
		printf("replayed %zu contacts: %zu would be stored differently, %zu rule calls would "
		       "fail\n",
		    rp.seen, rp.changed, rp.failed);
		json_object_foreach(rp.per_rule, rule, entry) {
			char *ex = json_dumps(json_object_get(entry, "examples"), JSON_COMPACT);

			printf("  %-28s %lld changed, %lld failed, e.g. %s\n", rule,
			    (long long)json_integer_value(json_object_get(entry, "changed")),
			    (long long)json_integer_value(json_object_get(entry, "failed")),
			    ex != NULL ? ex : "[]");
			free(ex);
		}
	}
	json_decref(rp.per_rule);
	rules_free(rp.rules);
	units_free(units);
	return rc < 0 ? 2 : 0;
}

int
cmd_rules(const struct conf *conf, int argc, char **argv)
{
	if (argc >= 1 && strcmp(argv[0], "test") == 0)
		return cmd_rules_test(conf, argc - 1, argv + 1);
	if (argc >= 1 && strcmp(argv[0], "replay") == 0)
		return cmd_rules_replay(conf, argc - 1, argv + 1);
	fprintf(stderr, "usage: loketctl rules test DIR CONTACT.json [--at \"YYYY-MM-DD HH:MM\"] "
			"[--event EVENT]\n"
			"       loketctl rules replay DIR [--since YYYY-MM-DD]\n");
	return 2;
}
