/* http_api_parties.c: /api/v1/parties: a citizen's identifiers and history across channels. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "http_api.h"
#include "loketd.h"
#include "register.h"
#include "util.h"

static void
parties_get(struct loket_http_req *req, void *arg)
{
	struct api_call *call;
	json_int_t id;

	if (auth_require(req, AUTH_STAFF) < 0 || api_id(req, "id", &id) < 0 ||
	    (call = api_call_new(arg, req, 200)) == NULL)
		return;
	snprintf(call->audit_action, sizeof(call->audit_action), "party.read");
	snprintf(call->audit_object, sizeof(call->audit_object), "party:%lld", (long long)id);
	api_submit(call, STORE_PARTY_GET, json_pack("{s:I, s:o}", "id", id, "scope", auth_scope(req)));
}

static void
parties_find(struct loket_http_req *req, void *arg)
{
	static const char *const keys[] = { "rrn", "bsn", "email", "phone", NULL };
	struct api_call *call;
	const char *key = NULL, *value = NULL, *why = NULL;
	char norm[256], detail[200];

	if (auth_require(req, AUTH_STAFF) < 0)
		return;
	for (size_t i = 0; keys[i] != NULL && value == NULL; i++)
		if ((value = http_query(req, keys[i])) != NULL)
			key = keys[i];
	if (value == NULL) {
		http_problem(req, 400, "look a party up by one of email, phone, rrn or bsn");
		return;
	}
	if (register_party_id(key, value, norm, sizeof(norm), &why) < 0) {
		snprintf(detail, sizeof(detail), "%s", why);
		http_problem(req, 422, detail);
		return;
	}
	if ((call = api_call_new(arg, req, 200)) == NULL)
		return;
	snprintf(call->audit_action, sizeof(call->audit_action), "party.lookup");
	snprintf(call->audit_object, sizeof(call->audit_object), "parties?%s", key);
	api_submit(call, STORE_PARTY_FIND, json_pack("{s:s, s:o}", key, norm, "scope", auth_scope(req)));
}

static void
parties_contacts(struct loket_http_req *req, void *arg)
{
	struct api_call *call;
	json_int_t id;
	json_t *in;

	if (auth_require(req, AUTH_STAFF) < 0 || api_id(req, "id", &id) < 0)
		return;
	in = json_pack("{s:I, s:o}", "id", id, "scope", auth_scope(req));
	if (api_paging(req, in) < 0 || (call = api_call_new(arg, req, 200)) == NULL) {
		json_decref(in);
		return;
	}
	snprintf(call->audit_action, sizeof(call->audit_action), "party.history");
	snprintf(call->audit_object, sizeof(call->audit_object), "party:%lld", (long long)id);
	api_submit(call, STORE_PARTY_CONTACTS, in);
}

/* The most probable duplicates a citizen page lists. */
#define PARTIES_DUPLICATES_MAX 20

/*
 * Other parties that are probably the same person (docs/api.md): a read of
 * parties, audited and scoped like one; merging them is POST .../merge.
 */
static void
parties_duplicates(struct loket_http_req *req, void *arg)
{
	struct api_call *call;
	json_int_t id;

	if (auth_require(req, AUTH_STAFF) < 0 || api_id(req, "id", &id) < 0 ||
	    (call = api_call_new(arg, req, 200)) == NULL)
		return;
	snprintf(call->audit_action, sizeof(call->audit_action), "party.duplicates");
	snprintf(call->audit_object, sizeof(call->audit_object), "party:%lld", (long long)id);
	api_submit(call, STORE_PARTY_DUPLICATES,
	    json_pack("{s:I, s:i, s:o}", "id", id, "limit", PARTIES_DUPLICATES_MAX, "scope",
		auth_scope(req)));
}

/* Normalises the identifiers of body's "add" or "remove" into *out_r; answers 422 on error. */
static int
parties_ids(struct loket_http_req *req, json_t *body, const char *field, json_t **out_r)
{
	json_t *ids = json_object_get(body, field), *v;
	const char *key, *why;
	char norm[256], detail[300];

	*out_r = NULL;
	if (ids == NULL)
		return 0;
	if (!json_is_object(ids) || json_object_size(ids) == 0) {
		snprintf(detail, sizeof(detail),
		    "%s: expected an object of identifiers (email, phone, rrn, bsn)", field);
		http_problem(req, 422, detail);
		return -1;
	}
	*out_r = json_object();
	json_object_foreach(ids, key, v) {
		if (strcmp(key, "email") != 0 && strcmp(key, "phone") != 0 &&
		    strcmp(key, "rrn") != 0 && strcmp(key, "bsn") != 0) {
			snprintf(detail, sizeof(detail),
			    "%s.%.40s: unknown identifier; expected email, phone, rrn or bsn", field, key);
			goto fail;
		}
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
		    json_string_length(v) > 254 ||
		    register_party_id(key, json_string_value(v), norm, sizeof(norm), &why) < 0) {
			snprintf(detail, sizeof(detail), "%s.%s: %s", field, key,
			    json_is_string(v) ? why : "expected a string");
			goto fail;
		}
		json_object_set_new(*out_r, key, json_string(norm));
	}
	return 0;
fail:
	json_decref(*out_r);
	*out_r = NULL;
	http_problem(req, 422, detail);
	return -1;
}

/*
 * PATCH /api/v1/parties/{id}: staff add or remove an identifier after the
 * citizen confirmed it, or set the name. Channels never do this.
 */
static void
parties_patch(struct loket_http_req *req, void *arg)
{
	struct api_call *call;
	json_t *body, *add = NULL, *remove = NULL, *in, *name, *v;
	const char *key;
	char detail[200], what[32] = "";
	json_int_t id;

	if (auth_require(req, AUTH_STAFF) < 0 || api_id(req, "id", &id) < 0 ||
	    (body = api_body(req, 0)) == NULL)
		return;
	json_object_foreach(body, key, v) {
		if (strcmp(key, "add") != 0 && strcmp(key, "remove") != 0 && strcmp(key, "name") != 0) {
			snprintf(detail, sizeof(detail),
			    "%.40s: cannot be changed; expected add, remove or name", key);
			json_decref(body);
			http_problem(req, 422, detail);
			return;
		}
	}
	name = json_object_get(body, "name");
	if (name != NULL && !json_is_null(name) &&
	    (!json_is_string(name) || strlen(json_string_value(name)) != json_string_length(name) ||
		json_string_length(name) == 0 || json_string_length(name) > 200)) {
		json_decref(body);
		http_problem(req, 422, "name: expected a name of at most 200 bytes, or null");
		return;
	}
	if (json_object_size(body) == 0) {
		json_decref(body);
		http_problem(req, 422, "nothing to change; expected add, remove or name");
		return;
	}
	if (parties_ids(req, body, "add", &add) < 0 || parties_ids(req, body, "remove", &remove) < 0) {
		json_decref(add);
		json_decref(body);
		return;
	}
	in = json_pack("{s:I, s:I, s:s, s:o}", "id", id, "at", (json_int_t)util_time_ms(), "actor",
	    auth_name(req), "scope", auth_scope(req));
	if (add != NULL)
		json_object_set_new(in, "add", add);
	if (remove != NULL)
		json_object_set_new(in, "remove", remove);
	if (name != NULL)
		json_object_set(in, "name", name);
	json_decref(body);
	if ((call = api_call_new(arg, req, 200)) == NULL) {
		json_decref(in);
		return;
	}
	/* What kinds changed, never their values: the audit is no copy of personal data. */
	json_object_foreach(json_object_get(in, "add"), key, v)
		snprintf(what + strlen(what), sizeof(what) - strlen(what), "+%s", key);
	json_object_foreach(json_object_get(in, "remove"), key, v)
		snprintf(what + strlen(what), sizeof(what) - strlen(what), "-%s", key);
	snprintf(call->audit_action, sizeof(call->audit_action), "party.update");
	snprintf(call->audit_object, sizeof(call->audit_object), "party:%lld %s%s", (long long)id,
	    what, name != NULL ? "+name" : "");
	api_submit(call, STORE_PARTY_UPDATE, in);
}

/* POST /api/v1/parties/{id}/merge {"party": other}: the older party takes the other over. */
static void
parties_merge(struct loket_http_req *req, void *arg)
{
	struct api_call *call;
	json_t *body, *other;
	json_int_t id;

	if (auth_require(req, AUTH_BACKOFFICE | AUTH_ADMIN) < 0 || api_id(req, "id", &id) < 0 ||
	    (body = api_body(req, 0)) == NULL)
		return;
	other = json_object_get(body, "party");
	if (!json_is_integer(other) || json_integer_value(other) < 1 || json_object_size(body) != 1) {
		json_decref(body);
		http_problem(req, 422, "party: expected the id of the party to merge with");
		return;
	}
	if ((call = api_call_new(arg, req, 200)) == NULL) {
		json_decref(body);
		return;
	}
	snprintf(call->audit_action, sizeof(call->audit_action), "party.merge");
	snprintf(call->audit_object, sizeof(call->audit_object), "party:%lld party:%lld",
	    (long long)id, (long long)json_integer_value(other));
	api_submit(call, STORE_PARTY_MERGE,
	    json_pack("{s:I, s:O, s:I, s:s, s:o}", "id", id, "other", other, "at",
		(json_int_t)util_time_ms(), "actor", auth_name(req), "scope", auth_scope(req)));
	json_decref(body);
}

int
http_api_parties_init(struct loketd *d, const char **error_r)
{
	if (http_route_add(d->http, "core", LOKET_HTTP_GET, "/api/v1/parties", LOKET_ACCESS_TOKEN,
		parties_find, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_GET, "/api/v1/parties/{id}",
		LOKET_ACCESS_TOKEN, parties_get, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_GET, "/api/v1/parties/{id}/contacts",
		LOKET_ACCESS_TOKEN, parties_contacts, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_PATCH, "/api/v1/parties/{id}",
		LOKET_ACCESS_TOKEN, parties_patch, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_POST, "/api/v1/parties/{id}/merge",
		LOKET_ACCESS_TOKEN, parties_merge, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_GET, "/api/v1/parties/{id}/duplicates",
		LOKET_ACCESS_TOKEN, parties_duplicates, d, error_r) < 0)
		return -1;
	return 0;
}
