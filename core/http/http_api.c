/* http_api.c: what the /api/v1 resource files share: calls into the store and their answers. */
#include "config.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "http_api.h"
#include "http_static.h"
#include "http_status.h"
#include "loketd.h"

void
api_reply(struct loket_http_req *req, int status, json_t *doc)
{
	/* Everything under /api/v1 can carry personal data. */
	http_add_header(req, "Cache-Control", "no-store");
	http_reply_json(req, status, doc);
}

/* A list whose items the view wrote as text already ("items_json"): sent as it is. */
static void
api_reply_list(struct loket_http_req *req, int status, json_t *out)
{
	json_t *items = json_object_get(out, "items_json");
	char *cursor = json_dumps(json_object_get(out, "next_cursor"), JSON_ENCODE_ANY);
	size_t len = json_string_length(items) + 64;
	char *body = malloc(len);
	int n;

	if (body == NULL || cursor == NULL) {
		free(body);
		free(cursor);
		http_problem(req, 503, "out of memory");
		return;
	}
	n = snprintf(body, len, "{\"items\":%s,\"next_cursor\":%s}", json_string_value(items),
	    cursor);
	http_add_header(req, "Cache-Control", "no-store");
	http_reply(req, status, "application/json", body, n > 0 ? (size_t)n : 0);
	free(body);
	free(cursor);
}

struct api_call *
api_call_new(struct loketd *d, struct loket_http_req *req, int ok_status)
{
	struct api_call *call = calloc(1, sizeof(*call));

	if (call == NULL) {
		http_problem(req, 503, "out of memory");
		return NULL;
	}
	call->d = d;
	call->req = req;
	call->ok_status = ok_status;
	return call;
}

static void
api_store_cb(struct store_req *sr, void *arg)
{
	struct api_call *call = arg;

	if (sr->result != STORE_OK) {
		const char *detail = call->refused != NULL ? call->refused(call, sr) : NULL;

		/* A read refused for its scope is recorded too: probing leaves a trace. */
		if (sr->result == STORE_FORBIDDEN && call->audit_action[0] != '\0') {
			char action[48];

			snprintf(action, sizeof(action), "%s.denied", call->audit_action);
			auth_audit(call->d, call->req, action, call->audit_object);
		}
		http_add_header(call->req, "Cache-Control", "no-store");
		http_problem(call->req, http_status_of_store(sr->result),
		    detail != NULL ? detail : sr->error);
		free(call);
		return;
	}
	if (call->after != NULL)
		call->after(call, sr);
	if (call->audit_action[0] != '\0')
		auth_audit(call->d, call->req, call->audit_action, call->audit_object);
	if (json_is_string(json_object_get(sr->out, "items_json")))
		api_reply_list(call->req, call->ok_status, sr->out);
	else
		api_reply(call->req, call->ok_status, json_incref(sr->out));
	free(call);
}

void
api_submit(struct api_call *call, enum store_op op, json_t *in)
{
	struct store_req *sr = store_req_new(op, in, api_store_cb, call);

	if (sr == NULL) {
		http_problem(call->req, 503, "out of memory");
		free(call);
		return;
	}
	/* A list goes out as the view wrote it, on the reader's thread (api_reply_list). */
	if (op == STORE_CONTACT_LIST || op == STORE_PARTY_CONTACTS || op == STORE_TASK_LIST)
		sr->core_flags |= STORE_REQ_TEXT;
	store_submit(call->d->store, sr);
}

int
api_id(struct loket_http_req *req, const char *name, json_int_t *id_r)
{
	const char *s = http_param(req, name);
	char *end;
	long long v;

	errno = 0;
	v = s != NULL ? strtoll(s, &end, 10) : 0;
	if (s == NULL || *s == '\0' || *end != '\0' || errno != 0 || v <= 0) {
		http_problem(req, 404, "no such resource: the id is not a positive number");
		return -1;
	}
	*id_r = v;
	return 0;
}

json_t *
api_body(struct loket_http_req *req, int optional)
{
	const char *ctype = http_header(req, "Content-Type");
	json_error_t jerr;
	json_t *body;
	char detail[300];

	if (req->body_len == 0 && optional)
		return json_object();
	if (ctype != NULL && strncasecmp(ctype, "application/json", 16) != 0) {
		http_problem(req, 415, "the body must be JSON (Content-Type: application/json)");
		return NULL;
	}
	if (req->body_len == 0) {
		http_problem(req, 400, "the body is empty; expected a JSON object");
		return NULL;
	}
	/* JSON_DECODE_ANY: a bare string or null is JSON, only not an object, which is a 422
	 * (docs/api.md), not a syntax error. */
	body = json_loadb(req->body, req->body_len,
	    JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
	if (body == NULL) {
		snprintf(detail, sizeof(detail), "the body is not valid JSON: %s (line %d, column %d)",
		    jerr.text, jerr.line, jerr.column);
		http_problem(req, 400, detail);
		return NULL;
	}
	if (!json_is_object(body)) {
		json_decref(body);
		http_problem(req, 422, "expected a JSON object");
		return NULL;
	}
	return body;
}

int
api_paging(struct loket_http_req *req, json_t *in)
{
	const char *limit = http_query(req, "limit"), *cursor = http_query(req, "cursor");
	long long v = 50;
	char *end;

	if (limit != NULL) {
		errno = 0;
		v = strtoll(limit, &end, 10);
		if (*limit == '\0' || *end != '\0' || errno != 0 || v < 1 || v > 500) {
			http_problem(req, 400, "limit: expected a number from 1 to 500");
			return -1;
		}
	}
	json_object_set_new(in, "limit", json_integer(v));
	if (cursor != NULL) {
		errno = 0;
		v = strtoll(cursor, &end, 10);
		if (*cursor == '\0' || *end != '\0' || errno != 0 || v < 1) {
			http_problem(req, 400, "cursor: not a cursor this API handed out");
			return -1;
		}
		json_object_set_new(in, "cursor", json_integer(v));
	}
	return 0;
}

#define API_IDEMPOTENCY_KEY_MAX 255

/*
 * An Idempotency-Key makes a retried POST (after a 503 or a lost answer)
 * find the contact its first try made instead of making a second one. The
 * key is scoped to the route (scope) and the token (by its hash, so two
 * clients' keys never collide) and stored with the contact in contact_keys,
 * checked in the same transaction that stores the contact; a second row
 * binds the key to the request body, so the same key with another body is
 * refused (422).
 */
int
api_idempotency(struct loket_http_req *req, const char *scope, char **key_r, char **body_r)
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
	if (len == 0 || len > API_IDEMPOTENCY_KEY_MAX || t == NULL) {
		http_problem(req, 400,
		    "Idempotency-Key: expected 1 to 255 printable ASCII "
		    "characters (a UUID, for example)");
		return -1;
	}
	if (key_r == NULL)
		return 0;
	crypto_hash_sha256(
	    h, (const unsigned char *)(req->body != NULL ? req->body : ""), req->body_len);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	if (asprintf(&scoped, "%s:%s:%s", scope, t->hash, key) < 0) {
		http_problem(req, 503, "out of memory");
		return -1;
	}
	if (asprintf(&bound, "%s#%s", scoped, hex) < 0) {
		free(scoped);
		http_problem(req, 503, "out of memory");
		return -1;
	}
	*key_r = scoped;
	*body_r = bound;
	return 0;
}

int
http_api_init(struct loketd *d, const char **error_r)
{
	if (http_api_contacts_init(d, error_r) < 0 || http_api_parties_init(d, error_r) < 0 ||
	    http_api_tasks_init(d, error_r) < 0 || http_api_catalogue_init(d, error_r) < 0 ||
	    http_api_messages_init(d, error_r) < 0 || http_api_events_init(d, error_r) < 0 ||
	    http_api_search_init(d, error_r) < 0 || http_api_forms_init(d, error_r) < 0 ||
	    http_api_admin_init(d, error_r) < 0 || http_api_rules_init(d, error_r) < 0 ||
	    /* Last: static files answer what no route of the API matched. */
	    http_static_init(d, error_r) < 0)
		return -1;
	return 0;
}
