/* http_api_contacts.c: /api/v1/contacts: create, read, list, change and move through statuses. */
#include "config.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "conf.h"
#include "http_api.h"
#include "log.h"
#include "loketd.h"
#include "register.h"
#include "rulebook.h"
#include "util.h"

#define CONTACTS_IDEMPOTENCY_KEY_MAX 255

/*
 * An Idempotency-Key makes a retried POST (after a 503 or a lost answer)
 * find the contact its first try made instead of making a second one. The
 * key is scoped to the token (by its hash, so two clients' keys never
 * collide) and stored with the contact in contact_keys, checked in the same
 * transaction that stores the contact; a second row binds the key to the
 * request body, so the same key with another body is refused (422).
 * With doc NULL only checks the header. Returns 0 (doc carries the keys, or
 * no header), or -1 after answering.
 */
static int
contacts_idempotency(struct loket_http_req *req, json_t *doc)
{
	const struct auth_token *t = req->auth;
	const char *key = http_header(req, "Idempotency-Key");
	unsigned char h[crypto_hash_sha256_BYTES];
	char hex[2 * crypto_hash_sha256_BYTES + 1], *scoped, *bound;
	size_t len;

	if (key == NULL)
		return 0;
	len = strlen(key);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)key[i] < 0x20 || (unsigned char)key[i] > 0x7e)
			len = 0;
	if (len == 0 || len > CONTACTS_IDEMPOTENCY_KEY_MAX || t == NULL) {
		http_problem(req, 400,
		    "Idempotency-Key: expected 1 to 255 printable ASCII "
		    "characters (a UUID, for example)");
		return -1;
	}
	if (doc == NULL)
		return 0;
	crypto_hash_sha256(
	    h, (const unsigned char *)(req->body != NULL ? req->body : ""), req->body_len);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	if (asprintf(&scoped, "idem:%s:%s", t->hash, key) < 0) {
		http_problem(req, 503, "out of memory");
		return -1;
	}
	if (asprintf(&bound, "%s#%s", scoped, hex) < 0) {
		free(scoped);
		http_problem(req, 503, "out of memory");
		return -1;
	}
	json_object_set_new(doc, "keys", json_pack("[s, s]", scoped, bound));
	json_object_set_new(
	    doc, "idempotency", json_pack("{s:s, s:s}", "key", scoped, "body", bound));
	free(scoped);
	free(bound);
	return 0;
}

/* A retry with a known Idempotency-Key: 200 with the contact its first try made. */
static void
contacts_replayed(struct api_call *call, struct store_req *sr)
{
	json_t *contact = json_incref(json_object_get(sr->out, "contact"));

	http_add_header(call->req, "Idempotent-Replayed", "true");
	call->ok_status = 200;
	json_decref(sr->out);
	sr->out = contact != NULL ? contact : json_object();
}

/*
 * A machine channel learns that its contact is registered, nothing of the
 * party it matched: its identifiers were never verified.
 */
static void
contacts_intake_view(struct api_call *call, struct store_req *sr)
{
	json_t *id, *reference, *status;

	if (!auth_has_role(call->req, AUTH_INTAKE))
		return;
	id = json_incref(json_object_get(sr->out, "id"));
	reference = json_incref(json_object_get(sr->out, "reference"));
	status = json_incref(json_object_get(sr->out, "status"));
	json_object_clear(sr->out);
	json_object_set_new(sr->out, "id", id);
	json_object_set_new(sr->out, "reference", reference);
	json_object_set_new(sr->out, "status", status);
}

static void
contacts_created_cb(struct api_call *call, struct store_req *sr)
{
	const char *ref = json_string_value(json_object_get(sr->out, "reference"));
	char location[64];

	snprintf(location, sizeof(location), "/api/v1/contacts/%lld",
	    (long long)json_integer_value(json_object_get(sr->out, "id")));
	http_add_header(call->req, "Location", location);
	if (json_is_true(json_object_get(sr->out, "duplicate"))) {
		contacts_replayed(call, sr);
		contacts_intake_view(call, sr);
		return;
	}
	log_debug("register", "contact registered ref=C-%s channel=%s", ref != NULL ? ref : "?",
	    json_string_value(json_object_get(sr->out, "channel")));
	contacts_intake_view(call, sr);
}

static void
contacts_post(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	struct api_call *call;
	json_t *body, *doc;
	char err[256];
	int status;

	if (auth_require(req, AUTH_AGENT | AUTH_ADMIN | AUTH_INTAKE) < 0 ||
	    contacts_idempotency(req, NULL) < 0 || (body = api_body(req, 0)) == NULL)
		return;
	status = register_prepare(d, body, auth_name(req), &doc, err, sizeof(err));
	json_decref(body);
	if (status != 0) {
		http_problem(req, status, err);
		return;
	}
	/* Before the write, so the rules' decisions are stored with the contact. */
	rulebook_contact(d, doc);
	/* After the rules: they need not see the key, which names the token. */
	if (contacts_idempotency(req, doc) < 0) {
		json_decref(doc);
		return;
	}
	if ((call = api_call_new(d, req, 201)) == NULL) {
		json_decref(doc);
		return;
	}
	call->after = contacts_created_cb;
	api_submit(call, STORE_CONTACT_CREATE, doc);
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

static void
contacts_patch(struct loket_http_req *req, void *arg)
{
	static const char *const fields[] = { "subject", "product", "answer", "department",
		"priority", "tags", "party_conflict", NULL };
	struct loketd *d = arg;
	struct api_call *call;
	json_t *body, *set, *probe, *doc = NULL, *v;
	json_int_t id;
	const char *key;
	char err[256];
	int status;

	if (auth_require(req, AUTH_STAFF) < 0 || api_id(req, "id", &id) < 0 ||
	    (body = api_body(req, 0)) == NULL)
		return;
	json_object_foreach(body, key, v) {
		size_t i;

		for (i = 0; fields[i] != NULL && strcmp(fields[i], key) != 0; i++)
			;
		if (fields[i] == NULL) {
			snprintf(err, sizeof(err), "%s: cannot be changed; expected one of subject, "
						   "product, answer, department, priority, tags, "
						   "party_conflict",
			    key);
			json_decref(body);
			http_problem(req, 422, err);
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
	status = register_prepare(d, probe, auth_name(req), &doc, err, sizeof(err));
	json_decref(probe);
	json_decref(doc);
	if (status == 0 && (v = json_object_get(body, "answer")) != NULL && !json_is_null(v) &&
	    (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))) {
		snprintf(err, sizeof(err), "answer: expected a string without NUL characters");
		status = 422;
	}
	if (status == 0 && json_is_string(json_object_get(body, "department")) &&
	    !auth_department_ok(req, json_string_value(json_object_get(body, "department")))) {
		snprintf(err, sizeof(err), "department: this token may not move contacts there");
		status = 403;
	}
	if (status != 0) {
		json_decref(body);
		http_problem(req, status, err);
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
	api_submit(call, STORE_CONTACT_UPDATE,
	    json_pack("{s:I, s:I, s:s, s:o, s:o}", "id", id, "at", (json_int_t)util_time_ms(),
		"actor", auth_name(req), "scope", auth_scope(req), "set", set));
}

static void
contacts_transition(struct loket_http_req *req, struct loketd *d, enum register_action action)
{
	struct api_call *call;
	json_t *body, *in, *tr, *set;
	json_int_t id;
	const char *answer, *reason, *dep, *due;
	int64_t due_ms = 0;
	char err[200];

	/* Escalating is the first line's hand-over; the second line finishes instead. */
	if (auth_require(req, action == REGISTER_ESCALATE ? AUTH_AGENT | AUTH_ADMIN : AUTH_STAFF) <
		0 ||
	    api_id(req, "id", &id) < 0 || (body = api_body(req, 1)) == NULL)
		return;
	answer = json_string_value(json_object_get(body, "answer"));
	reason = json_string_value(json_object_get(body, "reason"));
	dep = json_string_value(json_object_get(body, "department"));
	due = json_string_value(json_object_get(body, "due"));
	err[0] = '\0';
	for (const char *const *k = (const char *const[]){ "answer", "reason", "department", "due",
		 NULL };
	     *k != NULL; k++) {
		json_t *v = json_object_get(body, *k);

		if (v != NULL && !json_is_null(v) &&
		    (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
			json_string_length(v) > 10000))
			snprintf(err, sizeof(err), "%s: expected a string", *k);
	}
	if (err[0] == '\0' && action == REGISTER_ESCALATE) {
		if (dep == NULL)
			snprintf(err, sizeof(err), "department: required to escalate");
		else if (conf_department(d->conf, dep) == NULL)
			snprintf(err, sizeof(err), "department: no department '%.*s' is configured",
			    (int)util_utf8_prefix(dep, 64), dep);
		else if (due != NULL && util_time_parse(due, &due_ms) < 0)
			snprintf(err, sizeof(err), "due: expected an RFC 3339 time");
	}
	if (err[0] != '\0') {
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
	};

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (http_route_add(d->http, "core", routes[i].method, routes[i].pattern,
			LOKET_ACCESS_TOKEN, routes[i].fn, d, error_r) < 0)
			return -1;
	return 0;
}
