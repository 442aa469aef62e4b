/* register_rules.c: turns the decisions of rules into what the register stores with a contact. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "loketd.h"
#include "outbox.h"
#include "register.h"
#include "util.h"

static const char *
jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static void describe(char *buf, size_t len, json_t *d);

/*
 * A rule's decision in the history: actor "rule:<file:line>", the action,
 * and the decision worded (or the failure's result), appended to entries as
 * three strings. history_rows makes the rows of them.
 */
static void
history(json_t *entries, json_t *dec, const char *action, const char *detail)
{
	char actor[300], text[512];

	snprintf(actor, sizeof(actor), "rule:%s", jstr(dec, "rule"));
	if (detail == NULL)
		describe(text, sizeof(text), dec);
	json_array_append_new(entries, json_string(actor));
	json_array_append_new(entries, json_string(action));
	json_array_append_new(entries, json_string(detail != NULL ? detail : text));
}

/*
 * The history rows of one event's rules, which the store writes as they
 * are: a single decision is a row of its own; several are one row, actor
 * and action "rules", whose detail is the JSON list of their strings (actor,
 * action, detail, actor, ...), unfolded into entries when the contact is
 * read. Made here, on the loop, so that the storage thread, which every
 * write waits for, only binds text.
 */
static void
history_rows(json_t *doc, json_t *entries)
{
	json_t *h = json_object_get(doc, "history");
	size_t n = json_array_size(entries);
	char *text;

	if (n == 0)
		return;
	if (h == NULL)
		json_object_set_new(doc, "history", h = json_array());
	if (n == 3) {
		json_array_append_new(h,
		    json_pack("{s:O, s:O, s:O}", "actor", json_array_get(entries, 0), "action",
			json_array_get(entries, 1), "detail", json_array_get(entries, 2)));
		return;
	}
	text = json_dumps(entries, JSON_COMPACT);
	json_array_append_new(h,
	    json_pack("{s:s, s:s, s:s?}", "actor", "rules", "action", "rules", "detail", text));
	free(text);
}

void
register_history_entry(json_t *entry, char *actor, size_t actor_len, char *detail,
    size_t detail_len)
{
	const char *rule = jstr(entry, "rule");

	snprintf(actor, actor_len, "%s%s", rule != NULL ? "rule:" : "",
	    rule != NULL ? rule : (jstr(entry, "actor") != NULL ? jstr(entry, "actor") : "?"));
	if (jstr(entry, "detail") != NULL)
		snprintf(detail, detail_len, "%s", jstr(entry, "detail"));
	else if (json_is_object(json_object_get(entry, "decision")))
		describe(detail, detail_len, json_object_get(entry, "decision"));
	else
		detail[0] = '\0';
}

static void
describe(char *buf, size_t len, json_t *d)
{
	const char *type = jstr(d, "type");
	char due[40] = "";
	json_t *v;

	if ((v = json_object_get(d, "due_at")) != NULL && json_is_integer(v))
		util_time_format(json_integer_value(v), due, sizeof(due));
	if (strcmp(type, "set") == 0) {
		json_t *set = json_object_get(d, "value");
		/* A field set to nil has no value in the decision. */
		char *value = json_dumps(set != NULL ? set : json_null(), JSON_ENCODE_ANY | JSON_COMPACT);

		snprintf(buf, len, "set %s = %s", jstr(d, "field"), value != NULL ? value : "?");
		free(value);
	} else if (strcmp(type, "escalate") == 0) {
		snprintf(buf, len, "escalate to %s%s%s%s%s", jstr(d, "to"),
		    jstr(d, "within") != NULL ? " within " : "",
		    jstr(d, "within") != NULL ? jstr(d, "within") : "", due[0] != '\0' ? ", due " : "",
		    due);
	} else if (strcmp(type, "remind") == 0) {
		json_t *esc = json_object_get(d, "escalate");

		snprintf(buf, len, "remind after %s (at %s)%s%s%s%s", jstr(d, "after"), due,
		    jstr(d, "unless") != NULL ? " unless " : "",
		    jstr(d, "unless") != NULL ? jstr(d, "unless") : "",
		    esc != NULL ? ", then escalate to " : ", then call ",
		    esc != NULL ? jstr(esc, "to") : jstr(d, "call"));
	} else if (strcmp(type, "resolve") == 0) {
		snprintf(buf, len, "resolve at the first line");
	} else if (strcmp(type, "assign") == 0) {
		snprintf(buf, len, "assign to %s", jstr(d, "to"));
	} else if (strcmp(type, "tag") == 0) {
		char *tags = json_dumps(json_object_get(d, "tags"), JSON_COMPACT);

		snprintf(buf, len, "tag %s", tags != NULL ? tags : "?");
		free(tags);
	} else if (strcmp(type, "reply") == 0) {
		snprintf(buf, len, "reply with template %s via %s", jstr(d, "template"),
		    jstr(d, "via") != NULL ? jstr(d, "via") : "the contact's channel");
	} else if (strcmp(type, "failed") == 0) {
		snprintf(buf, len, "rule failed (%s)", jstr(d, "result"));
	} else {
		snprintf(buf, len, "%s", type);
	}
}

void
register_describe(json_t *decision, char *buf, size_t len)
{
	describe(buf, len, decision);
}

/*
 * A reply via a channel no plugin sends here: nothing is queued, and the
 * history does not claim a reply (the outbox logs the channel once).
 */
static int
reply_unsendable(struct loketd *d, json_t *doc, json_t *dec)
{
	return strcmp(jstr(dec, "type"), "reply") == 0 &&
	    !outbox_has_sender(d, jstr(dec, "via") != NULL ? jstr(dec, "via") :
							  jstr(doc, "channel"));
}

/* What register_apply skips: no type or rule, or a reply nobody sends. */
static int
decision_applies(struct loketd *d, json_t *doc, json_t *dec)
{
	return jstr(dec, "type") != NULL && jstr(dec, "rule") != NULL &&
	    !reply_unsendable(d, doc, dec);
}

int
register_decides(struct loketd *d, json_t *doc, json_t *decisions)
{
	size_t i;
	json_t *dec;

	json_array_foreach(decisions, i, dec)
		if (decision_applies(d, doc, dec))
			return 1;
	return 0;
}

int
register_apply(struct loketd *d, json_t *doc, json_t *decisions)
{
	size_t i;
	json_t *dec, *entries = json_array();

	json_array_foreach(decisions, i, dec) {
		const char *type = jstr(dec, "type"), *rule = jstr(dec, "rule");

		if (!decision_applies(d, doc, dec))
			continue;
		if (strcmp(type, "failed") == 0) {
			/* The message can quote contact data: logs get the rule, result and line only. */
			if (d->rules_hooks != NULL && d->rules_hooks->failed != NULL)
				d->rules_hooks->failed(d, rule, jstr(dec, "result"),
				    jstr(dec, "message"));
			history(entries, dec, "rule_failed", jstr(dec, "result"));
			continue;
		}
		history(entries, dec, "rule", NULL);
		if (strcmp(type, "set") == 0) {
			const char *field = jstr(dec, "field");
			json_t *value = json_object_get(dec, "value");

			json_object_set(doc, field, value != NULL ? value : json_null());
			if (strcmp(field, "department") == 0 && json_is_string(value) &&
			    conf_department(d->conf, json_string_value(value)) != NULL)
				json_object_set_new(doc, "organisation",
				    json_string(conf_department(d->conf, json_string_value(value))
						    ->organisation));
		} else if (strcmp(type, "escalate") == 0) {
			const char *to = jstr(dec, "to");
			json_t *task = json_pack("{s:s, s:s, s:s}", "department", to, "reason",
			    jstr(dec, "reason") != NULL ? jstr(dec, "reason") : "", "rule", rule);

			if (json_is_integer(json_object_get(dec, "due_at")))
				json_object_set(task, "due_at", json_object_get(dec, "due_at"));
			json_object_set_new(doc, "task", task);
			json_object_set_new(doc, "status", json_string("escalated"));
			json_object_set_new(doc, "line", json_integer(2));
			json_object_set_new(doc, "department", json_string(to));
			if (conf_department(d->conf, to) != NULL)
				json_object_set_new(doc, "organisation",
				    json_string(conf_department(d->conf, to)->organisation));
		} else if (strcmp(type, "resolve") == 0) {
			json_object_set_new(doc, "status", json_string("resolved"));
			json_object_set_new(doc, "handled", json_true());
			if (jstr(dec, "answer") != NULL)
				json_object_set(doc, "answer", json_object_get(dec, "answer"));
		} else if (strcmp(type, "assign") == 0) {
			json_object_set(doc, "assignee", json_object_get(dec, "to"));
		} else if (strcmp(type, "tag") == 0) {
			json_t *tags = json_object_get(doc, "tags"), *t;
			size_t k;

			if (!json_is_array(tags))
				json_object_set_new(doc, "tags", tags = json_array());
			json_array_foreach(json_object_get(dec, "tags"), k, t) {
				int seen = 0;
				size_t m;
				json_t *old;

				json_array_foreach(tags, m, old)
					seen |= json_equal(old, t);
				if (!seen && json_array_size(tags) < REGISTER_TAGS_MAX)
					json_array_append(tags, t);
			}
		} else if (strcmp(type, "remind") == 0) {
			json_t *timers = json_object_get(doc, "timers"), *payload = json_object();
			char *text;

			if (timers == NULL)
				json_object_set_new(doc, "timers", timers = json_array());
			/* What the firing needs; due_at and rule have columns of their own. */
			for (const char *const *k = (const char *const[]){ "after", "unless",
				 "escalate", "call", NULL };
			     *k != NULL; k++)
				if (json_object_get(dec, *k) != NULL)
					json_object_set(payload, *k, json_object_get(dec, *k));
			/* As the text the store writes, like the history rows (history_rows). */
			text = json_dumps(payload, JSON_COMPACT);
			json_decref(payload);
			json_array_append_new(timers,
			    json_pack("{s:s, s:O, s:s, s:s}", "kind", "remind", "due_at",
				json_object_get(dec, "due_at"), "rule", rule, "payload",
				text != NULL ? text : "{}"));
			free(text);
		} else if (strcmp(type, "reply") == 0) {
			json_t *outbox = json_object_get(doc, "outbox");

			if (outbox == NULL)
				json_object_set_new(doc, "outbox", outbox = json_array());
			json_array_append_new(outbox,
			    json_pack("{s:O, s:O, s:s, s:{s:O?, s:O?}}", "template",
				json_object_get(dec, "template"), "via",
				json_object_get(dec, "via") != NULL ? json_object_get(dec, "via") :
								      json_null(),
				"rule", rule, "payload", "due_at", json_object_get(dec, "due_at"),
				"within", json_object_get(dec, "within")));
		}
	}
	history_rows(doc, entries);
	json_decref(entries);
	return 0;
}
