/* register.c: the contact register's rules: validation, party identifiers, the status machine. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "events.h"
#include "log.h"
#include "loketd.h"
#include "metrics.h"
#include "party_id.h"
#include "register.h"
#include "store.h"
#include "util.h"

const struct register_transition register_transitions[REGISTER_ACTION_COUNT] = {
	[REGISTER_RESOLVE] = { "resolve", "resolved", { "open", NULL }, "resolved", 0, 1 },
	[REGISTER_ESCALATE] = { "escalate", "escalated", { "open", NULL }, "escalated", 2, 0 },
	[REGISTER_CLOSE] = { "close", "closed", { "escalated", NULL }, "closed", 0, 1 },
	[REGISTER_REOPEN] = { "reopen", "reopened", { "resolved", "closed", NULL }, "open", 1, 0 },
	[REGISTER_FORWARD] = { "forward", "forwarded", { "escalated", NULL }, "escalated", 2, 0 },
	[REGISTER_RETURN] = { "return", "returned", { "escalated", NULL }, "open", 1, 0 },
};

static const char *const register_channels[] = { "phone", "email", "web", "counter", NULL };
static const char *const register_priorities[] = { "low", "normal", "high", "urgent", NULL };
static const char *const register_statuses[] = { "open", "resolved", "escalated", "closed", NULL };

int
register_transition_allowed(enum register_action action, const char *status)
{
	const struct register_transition *t = &register_transitions[action];

	for (size_t i = 0; t->from[i] != NULL; i++)
		if (strcmp(t->from[i], status) == 0)
			return 0;
	return -1;
}

static int
register_one_of(const char *const *list, const char *v)
{
	for (size_t i = 0; list[i] != NULL; i++)
		if (strcmp(list[i], v) == 0)
			return 1;
	return 0;
}

const char *
register_status_name(const char *s)
{
	for (size_t i = 0; s != NULL && register_statuses[i] != NULL; i++)
		if (strcmp(register_statuses[i], s) == 0)
			return register_statuses[i];
	return NULL;
}

int
register_channel_known(const char *s)
{
	return s != NULL && register_one_of(register_channels, s);
}

static struct metric_series *register_gauge(struct loketd *d, const char *channel,
    const char *status);

static void
register_counts_loaded_cb(struct store_req *req, void *arg)
{
	struct loketd *d = arg;
	size_t i;
	json_t *row;

	if (req->result != STORE_OK) {
		log_warnx("register", "cannot read contact counts: %s", req->error);
		return;
	}
	json_array_foreach(json_object_get(req->out, "items"), i, row) {
		const char *channel = json_string_value(json_object_get(row, "channel"));
		const char *status = json_string_value(json_object_get(row, "status"));

		metrics_set(register_gauge(d, channel, status),
		    (double)json_integer_value(json_object_get(row, "n")));
	}
}

static struct metric_series *
register_gauge(struct loketd *d, const char *channel, const char *status)
{
	char labels[256], esc_c[64], esc_s[64];

	snprintf(labels, sizeof(labels), "channel=\"%s\",status=\"%s\"",
	    metrics_label_escape(esc_c, sizeof(esc_c), channel),
	    metrics_label_escape(esc_s, sizeof(esc_s), status));
	return metrics_series(d->metrics, METRIC_GAUGE, "loket_contacts",
	    "Contacts in the register, by channel and status.", labels, NULL, 0);
}

void
register_count(struct loketd *d, const char *channel, const char *from, const char *to)
{
	if (from != NULL)
		metrics_add(register_gauge(d, channel, from), -1);
	if (to != NULL)
		metrics_add(register_gauge(d, channel, to), 1);
}

/*
 * The contact gauges follow the register's events: a contact created, or
 * one whose status changed, whatever made it (the API, rules, a timer, a
 * reply, a finished task).
 */
static void
register_gauges_cb(const struct events_event *ev, void *arg)
{
	struct loketd *d = arg;
	const char *status = json_string_value(json_object_get(ev->payload, "status"));
	const char *from = json_string_value(json_object_get(ev->payload, "previous_status"));
	const char *channel = json_string_value(json_object_get(ev->payload, "channel"));

	if (status == NULL || channel == NULL)
		return;
	if (ev->pub.kind == LOKET_EVENT_CONTACT_CREATED)
		register_count(d, channel, NULL, status);
	else if (from != NULL && strcmp(from, status) != 0)
		register_count(d, channel, from, status);
}

json_t *
register_transition_json(enum register_action action, const char *detail)
{
	const struct register_transition *t = &register_transitions[action];
	json_t *from = json_array(), *tr;

	for (size_t i = 0; t->from[i] != NULL; i++)
		json_array_append_new(from, json_string(t->from[i]));
	tr = json_pack("{s:s, s:s, s:o, s:s, s:b}", "action", t->name, "past", t->past, "from", from,
	    "to", t->to, "handled", t->handled);
	if (t->line != 0)
		json_object_set_new(tr, "line", json_integer(t->line));
	if (detail != NULL)
		json_object_set_new(tr, "detail", json_string(detail));
	return tr;
}

int
register_init(struct loketd *d)
{
	struct store_req *req = store_req_new(STORE_COUNTS, json_object(),
	    register_counts_loaded_cb, d);

	if (req == NULL)
		return -1;
	/* The gauges count the register, so every node's writes: they read the payload only. */
	if (events_subscribe(d->events,
		LOKET_EVENT_CONTACT_CREATED | LOKET_EVENT_CONTACT_CHANGED | EVENTS_ALL_NODES,
		register_gauges_cb, d, NULL) < 0) {
		store_req_free(req);
		return -1;
	}
	/* Every channel and status shows in /metrics from the start, at zero if need be. */
	for (size_t c = 0; register_channels[c] != NULL; c++)
		for (size_t s = 0; register_statuses[s] != NULL; s++)
			register_gauge(d, register_channels[c], register_statuses[s]);
	store_submit(d->store, req);
	return 0;
}

int
register_party_id(const char *field, const char *value, char *out, size_t outlen,
    const char **error_r)
{
	char buf[PARTY_E164_MAX];

	if (strcmp(field, "email") == 0)
		return party_id_email(value, out, outlen, error_r);
	if (strcmp(field, "phone") == 0) {
		if (party_id_phone(value, buf, error_r) < 0)
			return -1;
	} else if (strcmp(field, "rrn") == 0) {
		if (party_id_rrn(value, buf, error_r) < 0)
			return -1;
	} else if (strcmp(field, "bsn") == 0) {
		if (party_id_bsn(value, buf, error_r) < 0)
			return -1;
	} else {
		*error_r = "unknown identifier";
		return -1;
	}
	snprintf(out, outlen, "%s", buf);
	return 0;
}

/* A string field: absent/null is fine, else a string without NUL, at most max bytes. */
static int
register_string(json_t *v, const char *name, size_t max, const char **error_r)
{
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		*error_r = util_error("%s: expected a string", name);
		return -1;
	}
	if (strlen(json_string_value(v)) != json_string_length(v)) {
		*error_r = util_error("%s: contains a NUL character", name);
		return -1;
	}
	if (json_string_length(v) > max) {
		*error_r = util_error("%s: longer than %zu bytes", name, max);
		return -1;
	}
	return 0;
}

static int
register_party(json_t *party, json_t **out_r, const char **error_r)
{
	static const char *const ids[] = { "email", "phone", "rrn", "bsn", NULL };
	json_t *out = json_object();
	const char *key;
	json_t *v;

	*out_r = out;
	json_object_foreach(party, key, v) {
		char name[64];

		snprintf(name, sizeof(name), "party.%s", key);
		if (strcmp(key, "name") != 0 && !register_one_of(ids, key)) {
			*error_r = util_error("%s: unknown field; expected name, email, phone, rrn "
					      "or bsn",
			    name);
			return -1;
		}
		if (register_string(v, name, REGISTER_SHORT_MAX, error_r) < 0)
			return -1;
		if (json_is_null(v) || json_string_length(v) == 0)
			continue;
		if (strcmp(key, "name") == 0) {
			json_object_set(out, "name", v);
		} else {
			char norm[256];
			const char *why = NULL;

			if (register_party_id(key, json_string_value(v), norm, sizeof(norm), &why) < 0) {
				*error_r = util_error("%s: %s", name,
				    strchr(why, ':') != NULL ? strchr(why, ':') + 2 : why);
				return -1;
			}
			json_object_set_new(out, key, json_string(norm));
		}
	}
	return 0;
}

/* Letters, then dash-separated letters and digits. */
int
register_language_ok(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");

	if (n < 2 || n > 3)
		return 0;
	for (s += n; *s == '-'; s += n) {
		n = strspn(++s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
		if (n < 1 || n > 8)
			return 0;
	}
	return *s == '\0';
}

enum store_result
register_prepare(struct loketd *d, json_t *body, const char *actor, json_t **doc_r,
    const char **error_r)
{
	static const char *const known[] = { "channel", "subject", "body", "product", "department",
		"organisation", "direction", "priority", "tags", "language", "confidential",
		"location", "party", "meta", NULL };
	const struct conf *conf = d->conf;
	json_t *doc = NULL, *v, *party = NULL;
	const char *key, *channel, *dep, *org;
	size_t i;

	*doc_r = NULL;
	if (!json_is_object(body)) {
		*error_r = "expected a JSON object";
		return STORE_INVALID;
	}
	json_object_foreach(body, key, v) {
		if (!register_one_of(known, key)) {
			*error_r = util_error("%s: unknown field", key);
			return STORE_INVALID;
		}
	}
	v = json_object_get(body, "channel");
	if (v == NULL || json_is_null(v)) {
		*error_r = "channel: required (phone, email, web or counter)";
		return STORE_INVALID;
	}
	if (!json_is_string(v) || !register_one_of(register_channels, json_string_value(v))) {
		*error_r = "channel: expected phone, email, web or counter";
		return STORE_INVALID;
	}
	channel = json_string_value(v);
	if (register_string(json_object_get(body, "subject"), "subject", REGISTER_SUBJECT_MAX,
		error_r) < 0 ||
	    register_string(json_object_get(body, "body"), "body", conf->http_max_body_size,
		error_r) < 0 ||
	    register_string(json_object_get(body, "product"), "product", REGISTER_SHORT_MAX,
		error_r) < 0 ||
	    register_string(json_object_get(body, "department"), "department", REGISTER_SHORT_MAX,
		error_r) < 0 ||
	    register_string(json_object_get(body, "organisation"), "organisation",
		REGISTER_SHORT_MAX, error_r) < 0 ||
	    register_string(json_object_get(body, "direction"), "direction", 8, error_r) < 0 ||
	    register_string(json_object_get(body, "priority"), "priority", 16, error_r) < 0 ||
	    register_string(json_object_get(body, "language"), "language", 16, error_r) < 0 ||
	    register_string(json_object_get(body, "location"), "location", REGISTER_SHORT_MAX,
		error_r) < 0)
		return STORE_INVALID;
	dep = json_string_value(json_object_get(body, "department"));
	org = json_string_value(json_object_get(body, "organisation"));
	if (dep != NULL && conf_department(conf, dep) == NULL) {
		*error_r = util_error("department: no department '%s' is configured", dep);
		return STORE_INVALID;
	}
	if (org != NULL && conf_organisation(conf, org) == NULL) {
		*error_r = util_error("organisation: no organisation '%s' is configured", org);
		return STORE_INVALID;
	}
	if (org != NULL && dep != NULL &&
	    strcmp(conf_department(conf, dep)->organisation, org) != 0) {
		*error_r = util_error(
		    "department: '%s' belongs to organisation '%s', not to organisation '%s'", dep,
		    conf_department(conf, dep)->organisation, org);
		return STORE_INVALID;
	}
	if (org == NULL)
		org = dep != NULL ? conf_department(conf, dep)->organisation :
		    conf->norganisations > 0	 ? conf->organisations[0].id :
						   "default";
	if ((v = json_object_get(body, "direction")) != NULL && !json_is_null(v) &&
	    strcmp(json_string_value(v), "in") != 0 && strcmp(json_string_value(v), "out") != 0) {
		*error_r = "direction: expected in or out";
		return STORE_INVALID;
	}
	if ((v = json_object_get(body, "priority")) != NULL && !json_is_null(v) &&
	    !register_one_of(register_priorities, json_string_value(v))) {
		*error_r = "priority: expected low, normal, high or urgent";
		return STORE_INVALID;
	}
	if ((v = json_object_get(body, "language")) != NULL && !json_is_null(v) &&
	    !register_language_ok(json_string_value(v))) {
		*error_r = "language: expected a language tag such as nl, en or nl-BE";
		return STORE_INVALID;
	}
	if ((v = json_object_get(body, "confidential")) != NULL && !json_is_null(v) &&
	    !json_is_boolean(v)) {
		*error_r = "confidential: expected true or false";
		return STORE_INVALID;
	}
	if ((v = json_object_get(body, "tags")) != NULL && !json_is_null(v)) {
		json_t *tag;

		if (!json_is_array(v) || json_array_size(v) > REGISTER_TAGS_MAX) {
			*error_r = util_error("tags: expected a list of at most %d strings",
			    REGISTER_TAGS_MAX);
			return STORE_INVALID;
		}
		json_array_foreach(v, i, tag)
			if (!json_is_string(tag) || register_string(tag, "tags", REGISTER_TAG_MAX, error_r) < 0) {
				*error_r = "tags: expected strings of at most 64 bytes";
				return STORE_INVALID;
			}
	}
	if ((v = json_object_get(body, "meta")) != NULL && !json_is_null(v)) {
		json_t *mv;

		if (!json_is_object(v) || json_object_size(v) > REGISTER_META_MAX) {
			*error_r = util_error("meta: expected an object of at most %d strings",
			    REGISTER_META_MAX);
			return STORE_INVALID;
		}
		json_object_foreach(v, key, mv)
			if (!json_is_string(mv) || register_string(mv, "meta", 4096, error_r) < 0 ||
			    strlen(key) > 64) {
				*error_r = util_error("meta.%.64s: expected a string", key);
				return STORE_INVALID;
			}
	}
	if ((v = json_object_get(body, "party")) != NULL && !json_is_null(v)) {
		if (!json_is_object(v)) {
			*error_r = "party: expected an object";
			return STORE_INVALID;
		}
		if (register_party(v, &party, error_r) < 0) {
			json_decref(party);
			return STORE_INVALID;
		}
	}
	doc = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:i, s:s}", "channel", channel,
	    "organisation", org, "status", "open", "created_by", actor, "received_at",
	    (json_int_t)util_time_ms(), "direction",
	    json_string_value(json_object_get(body, "direction")) != NULL ?
		json_string_value(json_object_get(body, "direction")) :
		"in",
	    "line", 1, "priority",
	    json_string_value(json_object_get(body, "priority")) != NULL ?
		json_string_value(json_object_get(body, "priority")) :
		"normal");
	if (doc == NULL) {
		json_decref(party);
		*error_r = "out of memory";
		return STORE_UNAVAILABLE;
	}
	json_object_set_new(doc, "subject", json_string(json_string_value(json_object_get(body,
						 "subject")) != NULL ?
						 json_string_value(json_object_get(body, "subject")) :
						 ""));
	json_object_set_new(doc, "body", json_string(json_string_value(json_object_get(body,
					      "body")) != NULL ?
					      json_string_value(json_object_get(body, "body")) :
					      ""));
	for (const char *const *f = (const char *const[]){ "product", "department", "language",
		 "location", NULL };
	     *f != NULL; f++)
		if (json_is_string(json_object_get(body, *f)))
			json_object_set(doc, *f, json_object_get(body, *f));
	json_object_set_new(doc, "confidential",
	    json_boolean(json_is_true(json_object_get(body, "confidential"))));
	v = json_object_get(body, "tags");
	json_object_set_new(doc, "tags", json_is_array(v) ? json_deep_copy(v) : json_array());
	v = json_object_get(body, "meta");
	json_object_set_new(doc, "meta", json_is_object(v) ? json_deep_copy(v) : json_object());
	if (party != NULL && json_object_size(party) > 0)
		json_object_set_new(doc, "party", party);
	else
		json_decref(party);
	*doc_r = doc;
	return STORE_OK;
}
