/* auth.h: bearer tokens (hashed at rest), roles, scopes, and the audit trail of reads. */
#ifndef LOKET_AUTH_H
#define LOKET_AUTH_H

#include <jansson.h>

#include "loket/plugin.h"

struct loketd;
struct auth;

enum auth_role {
	AUTH_AGENT = 1 << 0,
	AUTH_BACKOFFICE = 1 << 1,
	AUTH_ADMIN = 1 << 2,
	AUTH_INTAKE = 1 << 3,
};

#define AUTH_STAFF (AUTH_AGENT | AUTH_BACKOFFICE | AUTH_ADMIN)

/*
 * Who a request acts as: a bearer token, or a staff user's session
 * (session.c), which carries the same fields for the time of one request.
 */
struct auth_token {
	char *name;
	char hash[65]; /* hex BLAKE2b-256 of the token, or of the session's id */
	enum auth_role role;
	json_t *departments; /* array; empty = every department; NULL for a session: dep_list */
	char *organisation;  /* NULL: sees no confidential contact (admin sees all) */
	int revoked;
	int session; /* a staff user's session, not a token */
	const char *const *dep_list; /* a session's departments (backoffice only) */
	size_t ndeps;
};

/* auth.c */
/* Whether a token with this hash is known here and not revoked. */
int auth_token_live(const struct auth *a, const char *hash);
/* The staff sign-in state (session.h). */
struct sessions *auth_sessions(struct auth *a);
int auth_role_parse(const char *s, enum auth_role *role_r);
const char *auth_role_name(enum auth_role role);
/* After the identity is known: 0 when its role may use a route of access, else 403 and -1. */
int auth_access(struct loket_http_req *req, enum loket_http_access access);
/*
 * A staff session's identity for one request, kept in req->caller (freed
 * with req) with the auth_token req->auth points at. -1 without memory.
 */
int auth_session_identity(struct loket_http_req *req, const char *name, enum auth_role role,
    json_t *departments, const char *organisation, const char *hash);
int auth_init(struct loketd *d, const char **error_r);
void auth_free(struct auth *a);
/*
 * Whether the tokens have been read from the register. A driver may answer
 * that read after auth_init returned (pgsql does, from a reader thread):
 * until then every bearer token is unknown, so /healthz says loketd is
 * still starting.
 */
int auth_loaded(const struct auth *a);
/* The http_set_auth hook: 401 without or with an unknown token, 403 for a role below access. */
int auth_http_cb(struct loket_http_req *req, enum loket_http_access access, void *arg);
/* 0 when the request's token has one of roles; else answers 403 and returns -1. */
int auth_require(struct loket_http_req *req, unsigned int roles);
/* What the request's token may see, as the store's "scope" document (new reference). */
json_t *auth_scope(struct loket_http_req *req);
const char *auth_name(struct loket_http_req *req);
/*
 * The http_set_caller hook, who calls for plugins (the loket_api
 * http_caller entry): the request's token, or on a public route the valid
 * token its Authorization header names; NULL when there is none. Built
 * once per request, freed with it.
 */
const struct loket_caller *auth_caller_cb(struct loket_http_req *req, void *arg);
/* Whether the request's token has one of roles (answers nothing). */
int auth_has_role(struct loket_http_req *req, unsigned int roles);
/* Records that the request's token read object (no personal data in object). */
void auth_audit(struct loketd *d, struct loket_http_req *req, const char *action,
    const char *object);
/* Hands the audit rows gathered so far to the register. */
void auth_audit_flush(struct loketd *d);
/* Whether department is one the request's token is limited to (or it has no limit). */
int auth_department_ok(struct loket_http_req *req, const char *department);

/*
 * Token administration, which the daemon's control socket offers as
 * loketctl token add/list/revoke (ctl_cmd.c). Each ends with done_cb once,
 * now or later on the loop: answer (taken over) on success, else error, a
 * sentence for the admin. add's args: {name, role, departments?,
 * organisation?}; its answer holds the new token, shown once.
 */
void auth_token_add(struct loketd *d, json_t *args,
    void (*done_cb)(json_t *answer, const char *error, void *arg), void *arg);
void auth_token_list(struct loketd *d,
    void (*done_cb)(json_t *answer, const char *error, void *arg), void *arg);
/* args: {name}. */
void auth_token_revoke(struct loketd *d, json_t *args,
    void (*done_cb)(json_t *answer, const char *error, void *arg), void *arg);

#endif
