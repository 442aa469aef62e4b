/* http_api_parties.c: /api/v1/parties: a citizen's identifiers and history across channels. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "http_api.h"
#include "loketd.h"
#include "register.h"

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
	api_submit(call, STORE_PARTY_GET, json_pack("{s:I}", "id", id));
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
	api_submit(call, STORE_PARTY_FIND, json_pack("{s:s}", key, norm));
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

int
http_api_parties_init(struct loketd *d, const char **error_r)
{
	if (http_route_add(d->http, "core", LOKET_HTTP_GET, "/api/v1/parties", LOKET_ACCESS_TOKEN,
		parties_find, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_GET, "/api/v1/parties/{id}",
		LOKET_ACCESS_TOKEN, parties_get, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_GET, "/api/v1/parties/{id}/contacts",
		LOKET_ACCESS_TOKEN, parties_contacts, d, error_r) < 0)
		return -1;
	return 0;
}
