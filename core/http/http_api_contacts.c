/* http_api_contacts.c: /api/v1/contacts: create, read, list, change and move through statuses. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "conf.h"
#include "contact.h"
#include "http_api.h"
#include "http_status.h"
#include "log.h"
#include "loketd.h"
#include "register.h"
#include "util.h"

/*
 * A machine channel learns that its contact is registered, nothing of the
 * party it matched: its identifiers were never verified.
 */
static json_t *
contacts_intake_view(struct loket_http_req *req, json_t *contact)
{
	if (!auth_has_role(req, AUTH_INTAKE))
		return json_incref(contact);
	return json_pack("{s:O?, s:O?, s:O?}", "id", json_object_get(contact, "id"), "reference",
	    json_object_get(contact, "reference"), "status", json_object_get(contact, "status"));
}

/* What register_submit answered, as HTTP: 201, 200 for a replay, or a problem. */
static void
contacts_posted_cb(const struct register_result *res, void *arg)
{
	struct loket_http_req *req = arg;
	json_t *contact = res->contact, *view;
	char location[64];
	int status = 201;

	if (res->result != STORE_OK) {
		http_add_header(req, "Cache-Control", "no-store");
		http_problem(req, http_status_of_store(res->result), res->error);
		return;
	}
	snprintf(location, sizeof(location), "/api/v1/contacts/%lld", (long long)res->contact_id);
	http_add_header(req, "Location", location);
	if (res->duplicate) {
		/* A retry with a known Idempotency-Key: 200 with the contact its first try made. */
		http_add_header(req, "Idempotent-Replayed", "true");
		status = 200;
		contact = json_object_get(res->contact, "contact");
	} else {
		log_debug("register", "contact registered ref=C-%s channel=%s",
		    res->reference != NULL ? res->reference : "?",
		    json_string_value(json_object_get(contact, "channel")));
	}
	/* Only a caller who may see more than {id, reference, status} makes the full view. */
	if (!res->duplicate && !auth_has_role(req, AUTH_INTAKE))
		contact = register_result_contact(res);
	view = contact != NULL ? contacts_intake_view(req, contact) : json_object();
	if (view == NULL) {
		http_problem(req, 503, "out of memory");
		return;
	}
	api_reply(req, status, view);
}

/*
 * The API's door into the register is the channels' door: the body becomes
 * a contact (contact_from_json) and register_submit does the rest; only
 * the roles, the Idempotency-Key header and the answer are HTTP's.
 */
static void
contacts_post(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	struct register_caller who = { .actor = auth_name(req) };
	struct loket_contact *c;
	char *key = NULL, *bound = NULL;
	json_t *body;

	if (auth_require(req, AUTH_AGENT | AUTH_ADMIN | AUTH_INTAKE) < 0 ||
	    api_idempotency(req, "idem", NULL, NULL) < 0 || (body = api_body(req, 0)) == NULL)
		return;
	if ((c = contact_from_json(d, auth_name(req), body)) == NULL) {
		http_problem(req, 503, "out of memory");
		return;
	}
	if (api_idempotency(req, "idem", &key, &bound) < 0) {
		contact_free(c);
		return;
	}
	who.idempotency_key = key;
	who.idempotency_body = bound;
	register_submit(d, c, &who, contacts_posted_cb, req);
	free(key);
	free(bound);
}

static void
contacts_get(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	struct api_call *call;
	json_int_t id;

	if (auth_require(req, AUTH_STAFF) < 0 || api_id(req, "id", &id) < 0 ||
	    (call = api_call_new(d, req, 200)) == NULL)
		return;
	snprintf(call->audit_action, sizeof(call->audit_action), "contact.read");
	snprintf(call->audit_object, sizeof(call->audit_object), "contact:%lld", (long long)id);
	api_submit(call, STORE_CONTACT_GET, json_pack("{s:I, s:o}", "id", id, "scope",
						    auth_scope(req)));
}

/* Copies a filter from the query string into in, checked against a list when one is given. */
static int
contacts_filter(struct loket_http_req *req, json_t *in, const char *name,
    const char *const *allowed)
{
	const char *v = http_query(req, name);
	char detail[160];

	if (v == NULL)
		return 0;
	if (allowed != NULL) {
		size_t i;

		for (i = 0; allowed[i] != NULL && strcmp(allowed[i], v) != 0; i++)
			;
		if (allowed[i] == NULL) {
			snprintf(detail, sizeof(detail), "%s: '%.*s' is not one of the known values",
			    name, (int)util_utf8_prefix(v, 40), v);
			http_problem(req, 400, detail);
			return -1;
		}
	}
	json_object_set_new(in, name, json_string(v));
	return 0;
}

static int
contacts_time_filter(struct loket_http_req *req, json_t *in, const char *name)
{
	const char *v = http_query(req, name);
	int64_t ms;
	char detail[160];

	if (v == NULL)
		return 0;
	if (util_time_parse(v, &ms) < 0) {
		snprintf(detail, sizeof(detail), "%s: expected a date (2026-11-01) or an RFC 3339 time",
		    name);
		http_problem(req, 400, detail);
		return -1;
	}
	json_object_set_new(in, name, json_integer(ms));
	return 0;
}

static void
contacts_list(struct loket_http_req *req, void *arg)
{
	static const char *const statuses[] = { "open", "resolved", "escalated", "closed", NULL };
	static const char *const channels[] = { "phone", "email", "web", "counter", NULL };
	static const char *const lines[] = { "1", "2", NULL };
	struct loketd *d = arg;
	struct api_call *call;
	json_t *in = json_object();
	const char *party = http_query(req, "party");

	if (auth_require(req, AUTH_STAFF) < 0 || contacts_filter(req, in, "status", statuses) < 0 ||
	    contacts_filter(req, in, "channel", channels) < 0 ||
	    contacts_filter(req, in, "line", lines) < 0 ||
	    contacts_filter(req, in, "department", NULL) < 0 ||
	    contacts_time_filter(req, in, "since") < 0 ||
	    contacts_time_filter(req, in, "until") < 0 || api_paging(req, in) < 0) {
		json_decref(in);
		return;
	}
	if (json_is_string(json_object_get(in, "department")) &&
	    !auth_department_ok(req, json_string_value(json_object_get(in, "department")))) {
		json_decref(in);
		auth_audit(d, req, "contact.list.denied", "contacts?department");
		http_problem(req, 403, "this token may not see that department's contacts");
		return;
	}
	if (json_object_get(in, "line") != NULL)
		json_object_set_new(in, "line",
		    json_integer(atoi(json_string_value(json_object_get(in, "line")))));
	if (party != NULL) {
		char *end;
		long long id;

		errno = 0;
		id = strtoll(party, &end, 10);
		/* Past LLONG_MAX strtoll answers LLONG_MAX: that is no id this API handed out. */
		if (*party == '\0' || *end != '\0' || errno != 0 || id < 1) {
			json_decref(in);
			http_problem(req, 400, "party: expected a party id");
			return;
		}
		json_object_set_new(in, "party", json_integer(id));
	}
	json_object_set_new(in, "scope", auth_scope(req));
	if ((call = api_call_new(d, req, 200)) == NULL) {
		json_decref(in);
		return;
	}
	snprintf(call->audit_action, sizeof(call->audit_action), "contact.list");
	snprintf(call->audit_object, sizeof(call->audit_object), "contacts");
	api_submit(call, STORE_CONTACT_LIST, in);
}

/* The wall refused the move: the contact's organisation is what the store answered. */
static const char *
contacts_wall_refused(struct api_call *call, struct store_req *sr)
{
	const char *from = json_string_value(json_object_get(sr->out, "organisation"));
	const char *to =
	    json_string_value(json_object_get(json_object_get(sr->in, "set"), "organisation"));

	(void)call;
	if (sr->result != STORE_FORBIDDEN || from == NULL || to == NULL)
		return NULL;
	return util_error("department: this contact is confidential to organisation %s; it cannot "
			  "go to a department of organisation %s",
	    from, to);
}

/*
 * The wall between organisations: a confidential contact moved or escalated
 * stays in its organisation, unless a scope over every contact moves it.
 * Whether it is confidential, and where, is known only to the store, inside
 * the write: in asks it as a condition (expect, a filter like a scope).
 */
void
http_api_contacts_wall(struct api_call *call, json_t *in)
{
	const char *to =
	    json_string_value(json_object_get(json_object_get(in, "set"), "organisation"));

	if (to == NULL || json_is_true(json_object_get(json_object_get(in, "scope"), "all")))
		return;
	json_object_set_new(in, "expect", json_pack("{s:b, s:s}", "all", 0, "organisation", to));
	call->refused = contacts_wall_refused;
}

static void
contacts_patch(struct loket_http_req *req, void *arg)
{
	static const char *const fields[] = { "subject", "product", "answer", "department",
		"priority", "tags", "party_conflict", NULL };
	struct loketd *d = arg;
	struct api_call *call;
	json_t *body, *set, *probe, *doc = NULL, *v, *in;
	json_int_t id;
	const char *key;
	const char *error = NULL;
	int status;

	if (auth_require(req, AUTH_STAFF) < 0 || api_id(req, "id", &id) < 0 ||
	    (body = api_body(req, 0)) == NULL)
		return;
	json_object_foreach(body, key, v) {
		size_t i;

		for (i = 0; fields[i] != NULL && strcmp(fields[i], key) != 0; i++)
			;
		if (fields[i] == NULL) {
			error = util_error("%s: cannot be changed; expected one of subject, product, "
					   "answer, department, priority, tags, party_conflict",
			    key);
			json_decref(body);
			http_problem(req, 422, error);
			return;
		}
	}
	if (json_object_size(body) == 0) {
		json_decref(body);
		http_problem(req, 422, "nothing to change");
		return;
	}
	/* Staff clear the flag once they settled the party; nobody sets it by hand. */
	if ((v = json_object_get(body, "party_conflict")) != NULL && !json_is_null(v)) {
		json_decref(body);
		http_problem(req, 422, "party_conflict: can only be cleared (null), once the party "
				       "is settled");
		return;
	}
	/* A back-office clerk hands a contact on to a department, never to nobody. */
	if ((v = json_object_get(body, "department")) != NULL && json_is_null(v) &&
	    !auth_department_ok(req, NULL)) {
		json_decref(body);
		http_problem(req, 403, "department: a backoffice token cannot take a contact out of "
				       "every department; move it to one of its departments instead");
		return;
	}
	/* The same checks as on create: run them on a probe contact with these fields. */
	probe = json_deep_copy(body);
	json_object_del(probe, "answer");
	json_object_del(probe, "party_conflict");
	json_object_set_new(probe, "channel", json_string("phone"));
	status = http_status_of_store(register_prepare(d, probe, auth_name(req), &doc, &error));
	json_decref(probe);
	json_decref(doc);
	if (status == 0 && (v = json_object_get(body, "answer")) != NULL && !json_is_null(v) &&
	    (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))) {
		error = "answer: expected a string without NUL characters";
		status = 422;
	}
	if (status == 0 && json_is_string(json_object_get(body, "department")) &&
	    !auth_department_ok(req, json_string_value(json_object_get(body, "department")))) {
		error = "department: this token may not move contacts there";
		status = 403;
	}
	if (status != 0) {
		json_decref(body);
		http_problem(req, status, error);
		return;
	}
	set = body;
	if (json_is_string(json_object_get(set, "department")))
		json_object_set_new(set, "organisation",
		    json_string(conf_department(d->conf,
			json_string_value(json_object_get(set, "department")))->organisation));
	if ((call = api_call_new(d, req, 200)) == NULL) {
		json_decref(set);
		return;
	}
	in = json_pack("{s:I, s:I, s:s, s:o, s:o}", "id", id, "at", (json_int_t)util_time_ms(),
	    "actor", auth_name(req), "scope", auth_scope(req), "set", set);
	if (in != NULL)
		http_api_contacts_wall(call, in);
	api_submit(call, STORE_CONTACT_UPDATE, in);
}

static void
contacts_transition(struct loket_http_req *req, struct loketd *d, enum register_action action)
{
	struct api_call *call;
	json_t *body, *in, *tr, *set;
	json_int_t id;
	const char *answer, *reason, *dep, *due;
	int64_t due_ms = 0;
	const char *err = NULL;

	/* Escalating is the first line's hand-over; the second line finishes instead. */
	if (auth_require(req, action == REGISTER_ESCALATE ? AUTH_AGENT | AUTH_ADMIN : AUTH_STAFF) <
		0 ||
	    api_id(req, "id", &id) < 0 || (body = api_body(req, 1)) == NULL)
		return;
	answer = json_string_value(json_object_get(body, "answer"));
	reason = json_string_value(json_object_get(body, "reason"));
	dep = json_string_value(json_object_get(body, "department"));
	due = json_string_value(json_object_get(body, "due"));
	for (const char *const *k = (const char *const[]){ "answer", "reason", "department", "due",
		 NULL };
	     *k != NULL; k++) {
		json_t *v = json_object_get(body, *k);

		if (v != NULL && !json_is_null(v) &&
		    (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
			json_string_length(v) > 10000))
			err = util_error("%s: expected a string", *k);
	}
	if (err == NULL && action == REGISTER_ESCALATE) {
		if (dep == NULL)
			err = "department: required to escalate";
		else if (conf_department(d->conf, dep) == NULL)
			err = util_error("department: no department '%.*s' is configured",
			    (int)util_utf8_prefix(dep, 64), dep);
		else if (due != NULL && util_time_parse(due, &due_ms) < 0)
			err = "due: expected an RFC 3339 time";
	}
	if (err != NULL) {
		json_decref(body);
		http_problem(req, 422, err);
		return;
	}
	tr = register_transition_json(action, reason);
	set = json_object();
	if (answer != NULL)
		json_object_set_new(set, "answer", json_string(answer));
	in = json_pack("{s:I, s:I, s:s, s:o, s:o, s:o}", "id", id, "at", (json_int_t)util_time_ms(),
	    "actor", auth_name(req), "scope", auth_scope(req), "transition", tr, "set", set);
	if (action == REGISTER_ESCALATE) {
		json_t *task = json_pack("{s:s, s:s}", "department", dep, "reason",
		    reason != NULL ? reason : "");

		if (due != NULL)
			json_object_set_new(task, "due_at", json_integer(due_ms));
		json_object_set_new(in, "task", task);
		json_object_set_new(set, "department", json_string(dep));
		json_object_set_new(set, "organisation",
		    json_string(conf_department(d->conf, dep)->organisation));
	}
	if (action == REGISTER_CLOSE)
		json_object_set_new(in, "finish_tasks", json_true());
	json_decref(body);
	if ((call = api_call_new(d, req, 200)) == NULL) {
		json_decref(in);
		return;
	}
	http_api_contacts_wall(call, in);
	api_submit(call, STORE_CONTACT_UPDATE, in);
}

static void
contacts_resolve(struct loket_http_req *req, void *arg)
{
	contacts_transition(req, arg, REGISTER_RESOLVE);
}

static void
contacts_escalate(struct loket_http_req *req, void *arg)
{
	contacts_transition(req, arg, REGISTER_ESCALATE);
}

static void
contacts_close(struct loket_http_req *req, void *arg)
{
	contacts_transition(req, arg, REGISTER_CLOSE);
}

static void
contacts_reopen(struct loket_http_req *req, void *arg)
{
	contacts_transition(req, arg, REGISTER_REOPEN);
}

/* The longest internal note, in bytes. */
#define CONTACTS_NOTE_MAX 10000

/*
 * An internal note: a history row of kind "note" written like any change of
 * the contact (scoped as a write, contact.changed), never a message: it is
 * not on the messages list and nothing sends it.
 */
static void
contacts_note(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	struct api_call *call;
	json_t *body, *text, *in;
	json_int_t id;
	const char *key;
	json_t *v;

	if (auth_require(req, AUTH_STAFF) < 0 || api_id(req, "id", &id) < 0 ||
	    (body = api_body(req, 0)) == NULL)
		return;
	json_object_foreach(body, key, v) {
		if (strcmp(key, "text") != 0) {
			/* key belongs to body: the sentence is made before body goes. */
			http_problem(req, 422, util_error("%.*s: unknown field; a note has only text",
						   (int)util_utf8_prefix(key, 40), key));
			json_decref(body);
			return;
		}
	}
	text = json_object_get(body, "text");
	if (!json_is_string(text) || json_string_length(text) == 0 ||
	    json_string_length(text) > CONTACTS_NOTE_MAX ||
	    strlen(json_string_value(text)) != json_string_length(text) ||
	    strspn(json_string_value(text), " \t\r\n") == json_string_length(text)) {
		json_decref(body);
		http_problem(req, 422, "text: expected the note, 1 to 10000 bytes of text");
		return;
	}
	in = json_pack("{s:I, s:I, s:s, s:o, s:{}, s:[{s:s, s:s, s:O}]}", "id", id, "at",
	    (json_int_t)util_time_ms(), "actor", auth_name(req), "scope", auth_scope(req), "set",
	    "history", "actor", auth_name(req), "action", "note", "detail", text);
	json_decref(body);
	if (in == NULL) {
		http_problem(req, 503, "out of memory");
		return;
	}
	if ((call = api_call_new(d, req, 201)) == NULL) {
		json_decref(in);
		return;
	}
	api_submit(call, STORE_CONTACT_UPDATE, in);
}

int
http_api_contacts_init(struct loketd *d, const char **error_r)
{
	static const struct {
		unsigned int method;
		const char *pattern;
		void (*fn)(struct loket_http_req *req, void *arg);
	} routes[] = {
		{ LOKET_HTTP_POST, "/api/v1/contacts", contacts_post },
		{ LOKET_HTTP_GET, "/api/v1/contacts", contacts_list },
		{ LOKET_HTTP_GET, "/api/v1/contacts/{id}", contacts_get },
		{ LOKET_HTTP_PATCH, "/api/v1/contacts/{id}", contacts_patch },
		{ LOKET_HTTP_POST, "/api/v1/contacts/{id}/resolve", contacts_resolve },
		{ LOKET_HTTP_POST, "/api/v1/contacts/{id}/escalate", contacts_escalate },
		{ LOKET_HTTP_POST, "/api/v1/contacts/{id}/close", contacts_close },
		{ LOKET_HTTP_POST, "/api/v1/contacts/{id}/reopen", contacts_reopen },
		{ LOKET_HTTP_POST, "/api/v1/contacts/{id}/notes", contacts_note },
	};

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (http_route_add(d->http, "core", routes[i].method, routes[i].pattern,
			LOKET_ACCESS_TOKEN, routes[i].fn, d, error_r) < 0)
			return -1;
	return 0;
}
