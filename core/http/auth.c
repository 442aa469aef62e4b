/* auth.c: bearer tokens (hashed at rest), roles, scopes, and the audit trail of reads. */
#include "config.h"

#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "conf.h"
#include "http.h"
#include "log.h"
#include "loketd.h"
#include "session.h"
#include "store.h"
#include "util.h"

#define AUTH_PREFIX "lkt_"

#define AUTH_AUDIT_BATCH 256
#define AUTH_AUDIT_DELAY_MS 20
/*
 * How often the tokens are read again from the register: a token revoked on
 * another node sharing it (pgsql) is refused here within this time, as a
 * session ended there is (SESSION_CACHE_MS). The node that revokes refuses
 * it at once.
 */
#define AUTH_REFRESH_MS 1000

struct auth {
	struct loketd *daemon;
	struct auth_token **tokens;
	size_t ntokens;
	json_t *audit_rows; /* waiting for the next flush */
	int loaded;         /* the tokens were read from the register */
	struct event *audit_ev;
	struct sessions *sessions; /* staff sign-in (session.c) */
	struct event *refresh_ev;
	int refreshing; /* a re-read is with the register */
};

static const struct {
	enum auth_role role;
	const char *name;
} auth_roles[] = {
	{ AUTH_AGENT, "agent" },
	{ AUTH_BACKOFFICE, "backoffice" },
	{ AUTH_ADMIN, "admin" },
	{ AUTH_INTAKE, "intake" },
};

const char *
auth_role_name(enum auth_role role)
{
	for (size_t i = 0; i < sizeof(auth_roles) / sizeof(auth_roles[0]); i++)
		if (auth_roles[i].role == role)
			return auth_roles[i].name;
	return "?";
}

int
auth_role_parse(const char *s, enum auth_role *role_r)
{
	for (size_t i = 0; i < sizeof(auth_roles) / sizeof(auth_roles[0]); i++) {
		if (strcmp(auth_roles[i].name, s) == 0) {
			*role_r = auth_roles[i].role;
			return 0;
		}
	}
	return -1;
}

static void
auth_hash(const char *token, char hex[65])
{
	unsigned char h[32];

	crypto_generichash(h, sizeof(h), (const unsigned char *)token, strlen(token), NULL, 0);
	sodium_bin2hex(hex, 65, h, sizeof(h));
}

static void
auth_token_free(struct auth_token *t)
{
	if (t == NULL)
		return;
	free(t->name);
	free(t->organisation);
	json_decref(t->departments);
	free(t);
}

/* Adds or replaces the in-memory copy of a token row. */
static int
auth_put(struct auth *a, json_t *row)
{
	struct auth_token *t = calloc(1, sizeof(*t)), **tokens;
	const char *name = json_string_value(json_object_get(row, "name"));
	const char *hash = json_string_value(json_object_get(row, "hash"));
	const char *org = json_string_value(json_object_get(row, "organisation"));
	json_t *deps = json_object_get(row, "departments");

	if (t == NULL || name == NULL || hash == NULL || strlen(hash) != 64 ||
	    auth_role_parse(json_string_value(json_object_get(row, "role")) != NULL ?
		    json_string_value(json_object_get(row, "role")) :
		    "",
		&t->role) < 0) {
		free(t);
		return -1;
	}
	t->name = strdup(name);
	memcpy(t->hash, hash, 65);
	t->organisation = org != NULL ? strdup(org) : NULL;
	t->departments = json_is_array(deps) ? json_incref(deps) : json_array();
	t->revoked = !json_is_null(json_object_get(row, "revoked_at")) &&
	    json_object_get(row, "revoked_at") != NULL;
	for (size_t i = 0; i < a->ntokens; i++) {
		if (strcmp(a->tokens[i]->name, name) == 0) {
			auth_token_free(a->tokens[i]);
			a->tokens[i] = t;
			return 0;
		}
	}
	if ((tokens = realloc(a->tokens, (a->ntokens + 1) * sizeof(*tokens))) == NULL) {
		auth_token_free(t);
		return -1;
	}
	a->tokens = tokens;
	tokens[a->ntokens++] = t;
	return 0;
}

static void
auth_loaded_cb(struct store_req *req, void *arg)
{
	struct auth *a = arg;
	size_t i;
	json_t *row;

	if (req->result != STORE_OK) {
		log_errorx("auth", "cannot load tokens: %s", req->error);
		return;
	}
	json_array_foreach(json_object_get(req->out, "items"), i, row)
		auth_put(a, row);
	a->loaded = 1;
	log_info("auth", "tokens loaded count=%zu", a->ntokens);
}

static void auth_audit_cb(evutil_socket_t fd, short what, void *arg);

/*
 * What the register answered, merged into the copies. A token is only ever
 * revoked, never taken back, so a read that began before this node revoked
 * one cannot bring it back: a revoked row marks the copy, a live row with
 * another hash replaces only a revoked copy (the name was taken again,
 * after a revoke, on another node), as add does. A new name is added.
 */
static void
auth_refreshed_cb(struct store_req *req, void *arg)
{
	struct auth *a = arg;
	json_t *row;
	size_t i, j;

	a->refreshing = 0;
	if (req->result != STORE_OK)
		return;
	json_array_foreach(json_object_get(req->out, "items"), i, row) {
		const char *name = json_string_value(json_object_get(row, "name"));
		const char *hash = json_string_value(json_object_get(row, "hash"));
		json_t *revoked = json_object_get(row, "revoked_at");

		if (name == NULL || hash == NULL)
			continue;
		for (j = 0; j < a->ntokens; j++)
			if (strcmp(a->tokens[j]->name, name) == 0)
				break;
		if (j < a->ntokens && strcmp(a->tokens[j]->hash, hash) == 0) {
			if (revoked != NULL && !json_is_null(revoked))
				a->tokens[j]->revoked = 1;
		} else if (j == a->ntokens ||
		    (a->tokens[j]->revoked && (revoked == NULL || json_is_null(revoked)))) {
			auth_put(a, row);
		}
	}
}

static void
auth_refresh_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth *a = arg;
	struct store_req *req;

	(void)fd;
	(void)what;
	if (!a->loaded || a->refreshing)
		return;
	if ((req = store_req_new(STORE_TOKEN_LIST, json_object(), auth_refreshed_cb, a)) == NULL)
		return;
	a->refreshing = 1;
	store_submit(a->daemon->store, req);
}

int
auth_init(struct loketd *d, const char **error_r)
{
	struct auth *a = calloc(1, sizeof(*a));
	struct store_req *req;

	if (a == NULL || sodium_init() < 0) {
		free(a);
		*error_r = "cannot initialise libsodium";
		return -1;
	}
	a->daemon = d;
	d->auth = a;
	a->audit_rows = json_array();
	a->audit_ev = evtimer_new(d->base, auth_audit_cb, d);
	if ((a->refresh_ev = event_new(d->base, -1, EV_PERSIST, auth_refresh_cb, a)) != NULL) {
		struct timeval tv = { AUTH_REFRESH_MS / 1000, (AUTH_REFRESH_MS % 1000) * 1000 };

		event_add(a->refresh_ev, &tv);
	}
	if ((req = store_req_new(STORE_TOKEN_LIST, json_object(), auth_loaded_cb, a)) == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	store_submit(d->store, req);
	if ((a->sessions = sessions_new(d, error_r)) == NULL)
		return -1;
	http_set_auth(d->http, auth_http_cb, a);
	http_set_caller(d->http, auth_caller_cb);
	return 0;
}

struct sessions *
auth_sessions(struct auth *a)
{
	return a != NULL ? a->sessions : NULL;
}

int
auth_loaded(const struct auth *a)
{
	return a != NULL && a->loaded;
}

void
auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	sessions_free(a->sessions);
	for (size_t i = 0; i < a->ntokens; i++)
		auth_token_free(a->tokens[i]);
	free(a->tokens);
	json_decref(a->audit_rows);
	if (a->audit_ev != NULL)
		event_free(a->audit_ev);
	if (a->refresh_ev != NULL)
		event_free(a->refresh_ev);
	free(a);
}

static const struct auth_token *
auth_lookup(struct auth *a, const char *token)
{
	char hex[65];

	if (strncmp(token, AUTH_PREFIX, strlen(AUTH_PREFIX)) != 0 || strlen(token) > 128)
		return NULL;
	auth_hash(token, hex);
	for (size_t i = 0; i < a->ntokens; i++)
		if (!a->tokens[i]->revoked && sodium_memcmp(a->tokens[i]->hash, hex, 64) == 0)
			return a->tokens[i];
	return NULL;
}

int
auth_token_live(const struct auth *a, const char *hash)
{
	for (size_t i = 0; a != NULL && i < a->ntokens; i++)
		if (!a->tokens[i]->revoked && strcmp(a->tokens[i]->hash, hash) == 0)
			return 1;
	return 0;
}

int
auth_http_cb(struct loket_http_req *req, enum loket_http_access access, void *arg)
{
	struct auth *a = arg;
	const char *h = http_header(req, "Authorization");
	const struct auth_token *t;

	/* A bearer token wins over a session cookie sent with it. */
	if (h == NULL && sessions_cookie(req, NULL, 0) == 0)
		return sessions_auth(a->sessions, req, access);
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
		http_add_header(req, "WWW-Authenticate", "Bearer realm=\"loket\"");
		http_problem(req, 401, "a bearer token is required (Authorization: Bearer lkt_...)");
		return -1;
	}
	if ((t = auth_lookup(a, h + 7)) == NULL) {
		http_add_header(req, "WWW-Authenticate", "Bearer realm=\"loket\", error=\"invalid_token\"");
		http_problem(req, 401, "the bearer token is unknown or revoked");
		return -1;
	}
	req->auth = (void *)t;
	return auth_access(req, access);
}

int
auth_access(struct loket_http_req *req, enum loket_http_access access)
{
	switch (access) {
	case LOKET_ACCESS_PUBLIC:
	case LOKET_ACCESS_TOKEN:
		return 0;
	case LOKET_ACCESS_ADMIN:
		return auth_require(req, AUTH_ADMIN);
	case LOKET_ACCESS_INTAKE:
		return auth_require(req, AUTH_ADMIN | AUTH_INTAKE);
	}
	return auth_require(req, AUTH_ADMIN);
}

int
auth_require(struct loket_http_req *req, unsigned int roles)
{
	const struct auth_token *t = req->auth;
	char detail[128];

	if (t != NULL && (t->role & roles) != 0)
		return 0;
	snprintf(detail, sizeof(detail), "the %s role may not do this",
	    t != NULL ? auth_role_name(t->role) : "anonymous");
	http_problem(req, 403, detail);
	return -1;
}

int
auth_has_role(struct loket_http_req *req, unsigned int roles)
{
	const struct auth_token *t = req->auth;

	return t != NULL && (t->role & roles) != 0;
}

const char *
auth_name(struct loket_http_req *req)
{
	const struct auth_token *t = req->auth;

	return t != NULL ? t->name : "anonymous";
}

static const char *
auth_str(json_t *v)
{
	return json_is_string(v) ? json_string_value(v) : "";
}

/* Copies s to *at, which it moves past the copy; returns the copy. */
static const char *
auth_copy(char **at, const char *s)
{
	size_t len = strlen(s) + 1;
	char *copy = *at;

	memcpy(copy, s, len);
	*at += len;
	return copy;
}

/*
 * One block: the struct, the department pointers, then the strings they
 * point at. Whoever signed the caller in (a token now, a staff session
 * later, with kind "session") fills it through here.
 */
static struct loket_caller *
auth_caller_build(const char *name, const char *kind, enum auth_role role, json_t *departments,
    const char *organisation, size_t head)
{
	size_t nd = role == AUTH_BACKOFFICE ? json_array_size(departments) : 0;
	const char *role_name = auth_role_name(role);
	size_t size = head + (nd + 1) * sizeof(char *);
	struct loket_caller *c;
	const char **deps;
	char *at;

	size += strlen(name) + 1 + strlen(kind) + 1 + strlen(role_name) + 1;
	if (organisation != NULL)
		size += strlen(organisation) + 1;
	for (size_t i = 0; i < nd; i++)
		size += strlen(auth_str(json_array_get(departments, i))) + 1;
	if ((c = calloc(1, size)) == NULL)
		return NULL;
	deps = (const char **)((char *)c + head);
	at = (char *)(deps + nd + 1);
	c->name = auth_copy(&at, name);
	c->kind = auth_copy(&at, kind);
	c->role = auth_copy(&at, role_name);
	c->organisation = organisation != NULL ? auth_copy(&at, organisation) : NULL;
	for (size_t i = 0; i < nd; i++)
		deps[i] = auth_copy(&at, auth_str(json_array_get(departments, i)));
	c->departments = deps;
	c->n_departments = nd;
	return c;
}

/*
 * A copy, not the token itself: a plugin may answer long after the handler
 * returned, and the token's row can be replaced (token add) meanwhile. Only
 * a backoffice token is limited to departments (auth_scope); the others
 * show none, which means every department.
 */
const struct loket_caller *
auth_caller_cb(struct loket_http_req *req, void *arg)
{
	struct auth *a = arg;
	const struct auth_token *t = req->auth;

	if (req->caller != NULL)
		return req->caller;
	if (t == NULL && http_route_public(req)) {
		const char *h = http_header(req, "Authorization");

		/* A public route never refuses: an unknown token is no caller. */
		if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0)
			t = auth_lookup(a, h + 7);
	}
	if (t == NULL)
		return NULL;
	req->caller = auth_caller_build(
	    t->name, "token", t->role, t->departments, t->organisation, sizeof(struct loket_caller));
	return req->caller;
}

/* A session's caller and token in one block: http.c frees req->caller, and so both. */
struct auth_session_block {
	struct loket_caller caller;
	struct auth_token token;
};

int
auth_session_identity(struct loket_http_req *req, const char *name, enum auth_role role,
    json_t *departments, const char *organisation, const char *hash)
{
	struct loket_caller *c = auth_caller_build(name, "session", role, departments, organisation,
	    sizeof(struct auth_session_block));
	struct auth_token *t;

	if (c == NULL)
		return -1;
	t = &((struct auth_session_block *)c)->token;
	t->name = (char *)c->name;
	snprintf(t->hash, sizeof(t->hash), "%s", hash);
	t->role = role;
	t->organisation = (char *)c->organisation;
	t->session = 1;
	t->dep_list = c->departments;
	t->ndeps = c->n_departments;
	free(req->caller);
	req->caller = c;
	req->auth = t;
	return 0;
}

json_t *
auth_scope(struct loket_http_req *req)
{
	const struct auth_token *t = req->auth;
	int limited = t != NULL && t->role == AUTH_BACKOFFICE;

	json_t *deps = json_null();

	if (limited && t->departments != NULL) {
		deps = json_incref(t->departments);
	} else if (limited) {
		deps = json_array();
		for (size_t i = 0; i < t->ndeps; i++)
			json_array_append_new(deps, json_string(t->dep_list[i]));
	}
	return json_pack("{s:b, s:o, s:s?}", "all", t != NULL && t->role == AUTH_ADMIN,
	    "departments", deps, "organisation", t != NULL ? t->organisation : NULL);
}

int
auth_department_ok(struct loket_http_req *req, const char *department)
{
	const struct auth_token *t = req->auth;
	size_t i;
	json_t *d;

	if (t == NULL || t->role != AUTH_BACKOFFICE)
		return 1;
	if (t->departments == NULL) {
		for (i = 0; i < t->ndeps; i++)
			if (department != NULL && strcmp(t->dep_list[i], department) == 0)
				return 1;
		return 0;
	}
	json_array_foreach(t->departments, i, d)
		if (department != NULL && strcmp(json_string_value(d), department) == 0)
			return 1;
	return 0;
}

void
auth_audit_flush(struct loketd *d)
{
	struct auth *a = d->auth;
	struct store_req *sr;

	if (a == NULL || json_array_size(a->audit_rows) == 0)
		return;
	/* The request takes the array; new reads gather in a fresh one. */
	sr = store_req_new(STORE_AUDIT, json_pack("{s:o}", "rows", a->audit_rows), NULL, NULL);
	a->audit_rows = json_array();
	if (sr == NULL) {
		log_warnx("auth", "cannot record audit rows");
		return;
	}
	store_submit(d->store, sr);
}

static void
auth_audit_cb(evutil_socket_t fd, short what, void *arg)
{
	auth_audit_flush(arg);
}

/*
 * Reads are audited in batches: one write carries the rows of the last few
 * milliseconds, so a busy read path does not queue a write per read.
 */
void
auth_audit(struct loketd *d, struct loket_http_req *req, const char *action, const char *object)
{
	struct auth *a = d->auth;
	struct timeval tv = { 0, AUTH_AUDIT_DELAY_MS * 1000 };

	if (json_array_append_new(a->audit_rows,
		json_pack("{s:I, s:s, s:s, s:s}", "at", (json_int_t)util_time_ms(), "token",
		    auth_name(req), "action", action, "object", object)) < 0) {
		log_warnx("auth", "cannot record an audit row action=%s object=%s", action, object);
		return;
	}
	if (json_array_size(a->audit_rows) >= AUTH_AUDIT_BATCH)
		auth_audit_flush(d);
	else if (a->audit_ev != NULL && !evtimer_pending(a->audit_ev, NULL))
		evtimer_add(a->audit_ev, &tv);
}

struct auth_pending {
	void (*done_cb)(json_t *answer, const char *error, void *arg);
	void *arg;
	struct auth *auth;
	char token[128];
	json_t *row;
};

static void
auth_added_cb(struct store_req *req, void *arg)
{
	struct auth_pending *p = arg;

	if (req->result != STORE_OK) {
		p->done_cb(NULL, req->error, p->arg);
	} else {
		auth_put(p->auth, p->row);
		log_info("auth", "token added name=%s role=%s",
		    json_string_value(json_object_get(p->row, "name")),
		    json_string_value(json_object_get(p->row, "role")));
		p->done_cb(json_pack("{s:s, s:O}", "token", p->token, "row", p->row), NULL,
		    p->arg);
	}
	json_decref(p->row);
	sodium_memzero(p->token, sizeof(p->token));
	free(p);
}

void
auth_token_add(struct loketd *d, json_t *args,
    void (*done_cb)(json_t *answer, const char *error, void *arg), void *arg)
{
	const char *name = NULL, *role = NULL, *org = NULL;
	json_t *deps = NULL;
	unsigned char raw[32];
	char b64[64], hex[65];
	enum auth_role r;
	struct auth_pending *p;
	struct store_req *req;
	size_t i;
	json_t *dv;

	if (json_unpack(args, "{s:s, s:s, s?o, s?s}", "name", &name, "role", &role, "departments",
		&deps, "organisation", &org) < 0) {
		done_cb(NULL, "usage: token add NAME ROLE [--department D]... [--organisation O]", arg);
		return;
	}
	if (name[0] == '\0' || strlen(name) > 64 || strspn(name, "abcdefghijklmnopqrstuvwxyz"
							   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
		strlen(name)) {
		done_cb(NULL, "a token name has 1 to 64 letters, digits, '-', '_' or '.'", arg);
		return;
	}
	if (auth_role_parse(role, &r) < 0) {
		done_cb(NULL, "the role must be agent, backoffice, admin or intake", arg);
		return;
	}
	if (deps == NULL)
		deps = json_array();
	else
		json_incref(deps);
	json_array_foreach(deps, i, dv) {
		if (!json_is_string(dv) || conf_department(d->conf, json_string_value(dv)) == NULL) {
			json_decref(deps);
			done_cb(NULL, "--department names a department that is not configured", arg);
			return;
		}
	}
	/* Only a backoffice token is limited to departments; taking one elsewhere would mislead. */
	if (r != AUTH_BACKOFFICE && json_array_size(deps) > 0) {
		json_decref(deps);
		done_cb(NULL, "--department limits backoffice tokens only; an agent, admin or intake "
			       "token sees every department (use --organisation for confidential "
			       "contacts)", arg);
		return;
	}
	if (r == AUTH_BACKOFFICE && json_array_size(deps) == 0) {
		json_decref(deps);
		done_cb(NULL, "a backoffice token needs at least one --department", arg);
		return;
	}
	if (org != NULL && conf_organisation(d->conf, org) == NULL) {
		json_decref(deps);
		done_cb(NULL, "--organisation names an organisation that is not configured", arg);
		return;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		json_decref(deps);
		done_cb(NULL, "out of memory", arg);
		return;
	}
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
	snprintf(p->token, sizeof(p->token), AUTH_PREFIX "%s", b64);
	auth_hash(p->token, hex);
	p->done_cb = done_cb;
	p->arg = arg;
	p->auth = d->auth;
	p->row = json_pack("{s:s, s:s, s:s, s:o, s:s?, s:I}", "name", name, "hash", hex, "role", role,
	    "departments", deps, "organisation", org, "created_at", (json_int_t)util_time_ms());
	req = store_req_new(STORE_TOKEN_PUT, json_incref(p->row), auth_added_cb, p);
	if (req == NULL) {
		json_decref(p->row);
		free(p);
		done_cb(NULL, "out of memory", arg);
		return;
	}
	store_submit(d->store, req);
}

struct auth_listing {
	void (*done_cb)(json_t *answer, const char *error, void *arg);
	void *arg;
};

static void
auth_listed_cb(struct store_req *req, void *arg)
{
	struct auth_listing *l = arg;
	size_t i;
	json_t *row;

	if (req->result != STORE_OK) {
		l->done_cb(NULL, req->error, l->arg);
	} else {
		/* The hashes stay in the daemon. */
		json_array_foreach(json_object_get(req->out, "items"), i, row)
			json_object_del(row, "hash");
		l->done_cb(json_incref(req->out), NULL, l->arg);
	}
	free(l);
}

void
auth_token_list(struct loketd *d,
    void (*done_cb)(json_t *answer, const char *error, void *arg), void *arg)
{
	struct auth_listing *l = calloc(1, sizeof(*l));
	struct store_req *req;

	if (l == NULL ||
	    (req = store_req_new(STORE_TOKEN_LIST, json_object(), auth_listed_cb, l)) == NULL) {
		free(l);
		done_cb(NULL, "out of memory", arg);
		return;
	}
	l->done_cb = done_cb;
	l->arg = arg;
	store_submit(d->store, req);
}

struct auth_revoke {
	void (*done_cb)(json_t *answer, const char *error, void *arg);
	void *arg;
	struct auth *auth;
	char name[65];
};

static void
auth_revoked_cb(struct store_req *req, void *arg)
{
	struct auth_revoke *r = arg;

	if (req->result != STORE_OK) {
		r->done_cb(NULL, req->error, r->arg);
	} else {
		for (size_t i = 0; i < r->auth->ntokens; i++)
			if (strcmp(r->auth->tokens[i]->name, r->name) == 0)
				r->auth->tokens[i]->revoked = 1;
		log_info("auth", "token revoked name=%s", r->name);
		r->done_cb(json_pack("{s:s}", "revoked", r->name), NULL, r->arg);
	}
	free(r);
}

void
auth_token_revoke(struct loketd *d, json_t *args,
    void (*done_cb)(json_t *answer, const char *error, void *arg), void *arg)
{
	const char *name = NULL;
	struct auth_revoke *r;
	struct store_req *req;

	if (json_unpack(args, "{s:s}", "name", &name) < 0 || strlen(name) > 64) {
		done_cb(NULL, "usage: token revoke NAME", arg);
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		done_cb(NULL, "out of memory", arg);
		return;
	}
	r->done_cb = done_cb;
	r->arg = arg;
	r->auth = d->auth;
	snprintf(r->name, sizeof(r->name), "%s", name);
	req = store_req_new(STORE_TOKEN_REVOKE,
	    json_pack("{s:s, s:I}", "name", name, "at", (json_int_t)util_time_ms()), auth_revoked_cb, r);
	if (req == NULL) {
		free(r);
		done_cb(NULL, "out of memory", arg);
		return;
	}
	store_submit(d->store, req);
}
