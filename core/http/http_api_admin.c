/*
 * http_api_admin.c: the admin's endpoints: staff users (/api/v1/users),
 * API tokens (/api/v1/tokens) and the audit trail (/api/v1/audit) for the
 * data-protection officer. Admin only (LOKET_ACCESS_ADMIN: 403 for any
 * other role). Users and tokens go through the same code as loketctl user
 * and token (users.c, auth.c), so the rules and their sentences are the
 * same; every change is itself audited. A password or token made here is
 * in the answer once and nowhere else: never in a log line or the audit.
 */
#include "config.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "http_api.h"
#include "log.h"
#include "loketd.h"
#include "session.h"
#include "util.h"

/* 18 random bytes: 24 characters of base64url, above USERS_PASSWORD_MIN. */
#define ADMIN_PASSWORD_BYTES 18
#define ADMIN_ACTION_MAX 48

/*
 * The status of a sentence from users.c or auth.c (they answer loketctl,
 * which shows the sentence alone): what exists is a conflict, what is
 * missing is not found, a busy or unreachable register is worth a retry,
 * anything else is a request that breaks a rule.
 */
static int
admin_status(const char *error)
{
	static const struct {
		const char *start;
		int status;
	} map[] = {
		{ "a user named", 409 },
		{ "a token named", 409 },
		{ "no user named", 404 },
		{ "no active token named", 404 },
		{ "out of memory", 503 },
		{ "too many passwords", 503 },
		{ "the register", 503 },
		{ "the password could not", 503 },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strncmp(error, map[i].start, strlen(map[i].start)) == 0)
			return map[i].status;
	return 422;
}

/* A field of body that is none of allowed: 422 naming it, and -1. */
static int
admin_fields(struct loket_http_req *req, json_t *body, const char *const *allowed)
{
	const char *k;
	json_t *v;

	json_object_foreach(body, k, v) {
		size_t i;

		for (i = 0; allowed[i] != NULL && strcmp(allowed[i], k) != 0; i++)
			;
		if (allowed[i] == NULL) {
			http_problem(req, 422, util_error("%.64s: not a field of this request", k));
			return -1;
		}
	}
	return 0;
}

/* A field that must be a string when present: 422 naming it, and -1. */
static int
admin_string(struct loket_http_req *req, json_t *body, const char *name, int nullable)
{
	json_t *v = json_object_get(body, name);

	if (v == NULL || json_is_string(v) || (nullable && json_is_null(v)))
		return 0;
	http_problem(req, 422, util_error("%s: expected a string%s", name, nullable ? " or null" : ""));
	return -1;
}

static void
admin_password_new(char *out, size_t len)
{
	unsigned char raw[ADMIN_PASSWORD_BYTES];

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(out, len, raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
}

/* One admin request waiting for users.c or auth.c. */
struct admin_call {
	struct loketd *d;
	struct loket_http_req *req;
	char action[ADMIN_ACTION_MAX]; /* audited once it is done */
	char object[96];
	char password[64]; /* made here, answered once */
	int status;
};

static struct admin_call *
admin_call_new(struct loketd *d, struct loket_http_req *req, int status, const char *action,
    const char *kind, const char *name)
{
	struct admin_call *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		http_problem(req, 503, "out of memory");
		return NULL;
	}
	c->d = d;
	c->req = req;
	c->status = status;
	snprintf(c->action, sizeof(c->action), "%s", action);
	snprintf(c->object, sizeof(c->object), "%s:%s", kind, name);
	return c;
}

static void
admin_call_free(struct admin_call *c)
{
	sodium_memzero(c->password, sizeof(c->password));
	free(c);
}

/* A user as the API shows it: "login" for the stored name, never the hash. */
static json_t *
admin_user_public(json_t *row)
{
	json_t *u = json_deep_copy(row);

	if (u == NULL)
		return NULL;
	json_object_del(u, "hash");
	if (json_object_get(u, "name") != NULL) {
		json_object_set(u, "login", json_object_get(u, "name"));
		json_object_del(u, "name");
	}
	return u;
}

static void
users_listed_http_cb(json_t *answer, const char *error, void *arg)
{
	struct loket_http_req *req = arg;
	json_t *items = json_array(), *row;
	size_t i;

	http_add_header(req, "Cache-Control", "no-store");
	if (error != NULL) {
		json_decref(items);
		http_problem(req, admin_status(error), error);
		return;
	}
	json_array_foreach(json_object_get(answer, "items"), i, row)
		json_array_append_new(items, admin_user_public(row));
	json_decref(answer);
	http_reply_json(req, 200, json_pack("{s:o}", "items", items));
}

static void
users_get(struct loket_http_req *req, void *arg)
{
	users_list(arg, users_listed_http_cb, req);
}

/* users.c's answer to an add, a change or a new password. */
static void
users_done_http_cb(json_t *answer, const char *error, void *arg)
{
	struct admin_call *c = arg;
	json_t *doc;

	http_add_header(c->req, "Cache-Control", "no-store");
	if (error != NULL) {
		http_problem(c->req, admin_status(error), error);
		admin_call_free(c);
		return;
	}
	auth_audit(c->d, c->req, c->action, c->object);
	if (json_object_get(answer, "user") != NULL) {
		doc = json_pack("{s:o}", "user", admin_user_public(json_object_get(answer, "user")));
	} else {
		doc = json_pack("{s:s, s:O}", "login", c->object + strlen("user:"), "sessions_ended",
		    json_object_get(answer, "sessions_ended"));
	}
	if (doc != NULL && c->password[0] != '\0')
		json_object_set_new(doc, "password", json_string(c->password));
	json_decref(answer);
	http_reply_json(c->req, c->status, doc);
	admin_call_free(c);
}

static void
users_post(struct loket_http_req *req, void *arg)
{
	static const char *const fields[] = { "login", "role", "departments", "organisation",
		"extension", "password", NULL };
	struct loketd *d = arg;
	json_t *body = api_body(req, 0), *args = NULL;
	struct admin_call *c;
	const char *login;

	if (body == NULL || admin_fields(req, body, fields) < 0 ||
	    admin_string(req, body, "login", 0) < 0 || admin_string(req, body, "role", 0) < 0 ||
	    admin_string(req, body, "organisation", 1) < 0 ||
	    admin_string(req, body, "extension", 1) < 0 ||
	    admin_string(req, body, "password", 0) < 0)
		goto out;
	if ((login = json_string_value(json_object_get(body, "login"))) == NULL) {
		http_problem(req, 422, "login: required, the name the user signs in with");
		goto out;
	}
	if (json_object_get(body, "role") == NULL) {
		http_problem(req, 422, "role: required: agent, backoffice or admin");
		goto out;
	}
	if (json_object_get(body, "departments") != NULL &&
	    !json_is_array(json_object_get(body, "departments"))) {
		http_problem(req, 422, "departments: expected an array of department names");
		goto out;
	}
	if ((c = admin_call_new(d, req, 201, "user.add", "user", login)) == NULL)
		goto out;
	args = json_deep_copy(body);
	json_object_set(args, "name", json_object_get(body, "login"));
	json_object_del(args, "login");
	/* A null organisation or extension is none. */
	if (json_is_null(json_object_get(args, "organisation")))
		json_object_del(args, "organisation");
	if (json_is_null(json_object_get(args, "extension")))
		json_object_del(args, "extension");
	if (json_object_get(args, "password") == NULL) {
		admin_password_new(c->password, sizeof(c->password));
		json_object_set_new(args, "password", json_string(c->password));
	}
	users_add(d, args, users_done_http_cb, c);
out:
	json_decref(args);
	json_decref(body);
}

static void
users_patch(struct loket_http_req *req, void *arg)
{
	static const char *const fields[] = { "role", "departments", "organisation", "disabled",
		NULL };
	struct loketd *d = arg;
	const char *login = http_param(req, "login");
	json_t *body = api_body(req, 0), *args = NULL;
	struct admin_call *c;

	if (body == NULL || admin_fields(req, body, fields) < 0 ||
	    admin_string(req, body, "role", 0) < 0 ||
	    admin_string(req, body, "organisation", 1) < 0)
		goto out;
	if (json_object_get(body, "departments") != NULL &&
	    !json_is_array(json_object_get(body, "departments"))) {
		http_problem(req, 422, "departments: expected an array of department names");
		goto out;
	}
	if (json_object_get(body, "disabled") != NULL &&
	    !json_is_boolean(json_object_get(body, "disabled"))) {
		http_problem(req, 422, "disabled: expected true or false");
		goto out;
	}
	if (json_object_size(body) == 0) {
		http_problem(req, 422,
		    "nothing to change: give role, departments, organisation or disabled");
		goto out;
	}
	if (login == NULL || !users_name_ok(login)) {
		http_problem(req, 404, "no such user: not a user name loket accepts");
		goto out;
	}
	if ((c = admin_call_new(d, req, 200, "user.update", "user", login)) == NULL)
		goto out;
	args = json_deep_copy(body);
	json_object_set_new(args, "name", json_string(login));
	users_update(d, args, users_done_http_cb, c);
out:
	json_decref(args);
	json_decref(body);
}

static void
users_password(struct loket_http_req *req, void *arg)
{
	static const char *const fields[] = { "password", NULL };
	struct loketd *d = arg;
	const char *login = http_param(req, "login");
	json_t *body = api_body(req, 1), *args = NULL;
	struct admin_call *c;

	if (body == NULL || admin_fields(req, body, fields) < 0 ||
	    admin_string(req, body, "password", 0) < 0)
		goto out;
	if (login == NULL || !users_name_ok(login)) {
		http_problem(req, 404, "no such user: not a user name loket accepts");
		goto out;
	}
	if ((c = admin_call_new(d, req, 200, "user.password", "user", login)) == NULL)
		goto out;
	args = json_pack("{s:s}", "name", login);
	if (json_object_get(body, "password") != NULL) {
		json_object_set(args, "password", json_object_get(body, "password"));
	} else {
		admin_password_new(c->password, sizeof(c->password));
		json_object_set_new(args, "password", json_string(c->password));
	}
	users_passwd(d, args, users_done_http_cb, c);
out:
	json_decref(args);
	json_decref(body);
}

static void
tokens_listed_http_cb(json_t *answer, const char *error, void *arg)
{
	struct loket_http_req *req = arg;

	http_add_header(req, "Cache-Control", "no-store");
	if (error != NULL) {
		http_problem(req, admin_status(error), error);
		return;
	}
	http_reply_json(req, 200, answer);
}

static void
tokens_get(struct loket_http_req *req, void *arg)
{
	auth_token_list(arg, tokens_listed_http_cb, req);
}

static void
tokens_done_http_cb(json_t *answer, const char *error, void *arg)
{
	struct admin_call *c = arg;
	json_t *doc = NULL, *row;

	http_add_header(c->req, "Cache-Control", "no-store");
	if (error != NULL) {
		http_problem(c->req, admin_status(error), error);
		admin_call_free(c);
		return;
	}
	auth_audit(c->d, c->req, c->action, c->object);
	if ((row = json_object_get(answer, "row")) != NULL) {
		doc = json_deep_copy(row);
		json_object_del(doc, "hash");
		if (json_is_integer(json_object_get(doc, "created_at"))) {
			char when[40];

			util_time_format(json_integer_value(json_object_get(doc, "created_at")), when,
			    sizeof(when));
			json_object_set_new(doc, "created_at", json_string(when));
		}
		json_object_set(doc, "token", json_object_get(answer, "token"));
	} else {
		doc = json_incref(answer);
	}
	json_decref(answer);
	http_reply_json(c->req, c->status, doc);
	admin_call_free(c);
}

static void
tokens_post(struct loket_http_req *req, void *arg)
{
	static const char *const fields[] = { "name", "role", "departments", "organisation", NULL };
	struct loketd *d = arg;
	json_t *body = api_body(req, 0), *args = NULL;
	struct admin_call *c;
	const char *name;

	if (body == NULL || admin_fields(req, body, fields) < 0 ||
	    admin_string(req, body, "name", 0) < 0 || admin_string(req, body, "role", 0) < 0 ||
	    admin_string(req, body, "organisation", 1) < 0)
		goto out;
	if ((name = json_string_value(json_object_get(body, "name"))) == NULL) {
		http_problem(req, 422, "name: required, the token's name");
		goto out;
	}
	if (json_object_get(body, "role") == NULL) {
		http_problem(req, 422, "role: required: agent, backoffice, admin or intake");
		goto out;
	}
	if (json_object_get(body, "departments") != NULL &&
	    !json_is_array(json_object_get(body, "departments"))) {
		http_problem(req, 422, "departments: expected an array of department names");
		goto out;
	}
	if ((c = admin_call_new(d, req, 201, "token.add", "token", name)) == NULL)
		goto out;
	args = json_deep_copy(body);
	if (json_is_null(json_object_get(args, "organisation")))
		json_object_del(args, "organisation");
	auth_token_add(d, args, tokens_done_http_cb, c);
out:
	json_decref(args);
	json_decref(body);
}

static void
tokens_delete(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	const char *name = http_param(req, "name");
	const struct auth_token *t = req->auth;
	struct admin_call *c;
	json_t *args;

	if (name == NULL || name[0] == '\0' || strlen(name) > 64) {
		http_problem(req, 404, "no such token");
		return;
	}
	/*
	 * The token this request is made with stays: revoking it would leave
	 * the caller locked out in the middle of their work; another admin, or
	 * loketctl token revoke on the server, revokes it.
	 */
	if (t != NULL && !t->session && strcmp(t->name, name) == 0) {
		http_problem(req, 409,
		    "this is the token this request is made with; revoke it with another admin "
		    "token or loketctl token revoke");
		return;
	}
	if ((c = admin_call_new(d, req, 200, "token.revoke", "token", name)) == NULL)
		return;
	if ((args = json_pack("{s:s}", "name", name)) == NULL) {
		admin_call_free(c);
		http_problem(req, 503, "out of memory");
		return;
	}
	auth_token_revoke(d, args, tokens_done_http_cb, c);
	json_decref(args);
}

/* A query parameter that must be a positive id: 400 naming it, and -1. */
static int
audit_id(struct loket_http_req *req, json_t *in, const char *name)
{
	const char *s = http_query(req, name);
	char *end;
	long long v;

	if (s == NULL)
		return 0;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < 1) {
		http_problem(req, 400, util_error("%s: expected a %s id (a positive number)", name,
		    name));
		return -1;
	}
	json_object_set_new(in, name, json_integer(v));
	return 0;
}

/* A query parameter of 1 to max characters of chars: 400 naming it, and -1. */
static int
audit_word(struct loket_http_req *req, json_t *in, const char *name, const char *key,
    const char *chars, size_t max, const char *what)
{
	const char *s = http_query(req, name);

	if (s == NULL)
		return 0;
	if (s[0] == '\0' || strlen(s) > max || strspn(s, chars) != strlen(s)) {
		http_problem(req, 400, util_error("%s: expected %s", name, what));
		return -1;
	}
	json_object_set_new(in, key, json_string(s));
	return 0;
}

static int
audit_time(struct loket_http_req *req, json_t *in, const char *name)
{
	const char *s = http_query(req, name);
	int64_t ms;

	if (s == NULL)
		return 0;
	if (util_time_parse(s, &ms) < 0) {
		http_problem(req, 400,
		    util_error("%s: expected a date (2026-11-01) or an RFC 3339 time", name));
		return -1;
	}
	json_object_set_new(in, name, json_integer(ms));
	return 0;
}

/* The store's rows with their times as RFC 3339 text, as every other list. */
static void
audit_after(struct api_call *call, struct store_req *sr)
{
	json_t *row;
	size_t i;
	char when[40];

	(void)call;
	json_array_foreach(json_object_get(sr->out, "items"), i, row) {
		if (json_is_integer(json_object_get(row, "at"))) {
			util_time_format(json_integer_value(json_object_get(row, "at")), when,
			    sizeof(when));
			json_object_set_new(row, "at", json_string(when));
		}
	}
}

static void
audit_get(struct loket_http_req *req, void *arg)
{
	static const char names[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789-_.@";
	static const char actions[] = "abcdefghijklmnopqrstuvwxyz._";
	struct loketd *d = arg;
	json_t *in = json_object();
	struct api_call *call;

	if (audit_word(req, in, "actor", "actor", names, 64,
		"a staff member's user name or a token's name") < 0 ||
	    audit_id(req, in, "party") < 0 || audit_id(req, in, "contact") < 0 ||
	    audit_word(req, in, "action", "action", actions, 47,
		"an audited action such as contact.read") < 0 ||
	    audit_time(req, in, "from") < 0 || audit_time(req, in, "to") < 0 ||
	    api_paging(req, in) < 0) {
		json_decref(in);
		return;
	}
	if (json_is_integer(json_object_get(in, "from")) &&
	    json_is_integer(json_object_get(in, "to")) &&
	    json_integer_value(json_object_get(in, "from")) >
		json_integer_value(json_object_get(in, "to"))) {
		json_decref(in);
		http_problem(req, 400, "to: comes before from");
		return;
	}
	if ((call = api_call_new(d, req, 200)) == NULL) {
		json_decref(in);
		return;
	}
	call->after = audit_after;
	/* Reading the trail is itself on it: who looked, and for whom. */
	snprintf(call->audit_action, sizeof(call->audit_action), "audit.read");
	if (json_object_get(in, "party") != NULL)
		snprintf(call->audit_object, sizeof(call->audit_object), "audit?party=%lld",
		    (long long)json_integer_value(json_object_get(in, "party")));
	else
		snprintf(call->audit_object, sizeof(call->audit_object), "audit");
	api_submit(call, STORE_AUDIT_LIST, in);
}

int
http_api_admin_init(struct loketd *d, const char **error_r)
{
	if (http_route_add(d->http, "core", LOKET_HTTP_GET, "/api/v1/users", LOKET_ACCESS_ADMIN,
		users_get, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_POST, "/api/v1/users", LOKET_ACCESS_ADMIN,
		users_post, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_PATCH, "/api/v1/users/{login}",
		LOKET_ACCESS_ADMIN, users_patch, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_POST, "/api/v1/users/{login}/password",
		LOKET_ACCESS_ADMIN, users_password, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_GET, "/api/v1/tokens", LOKET_ACCESS_ADMIN,
		tokens_get, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_POST, "/api/v1/tokens", LOKET_ACCESS_ADMIN,
		tokens_post, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_DELETE, "/api/v1/tokens/{name}",
		LOKET_ACCESS_ADMIN, tokens_delete, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_GET, "/api/v1/audit", LOKET_ACCESS_ADMIN,
		audit_get, d, error_r) < 0)
		return -1;
	return 0;
}
