/* session.h: staff sign-in: users, sessions kept in the register, the session cookie, CSRF. */
#ifndef LOKET_SESSION_H
#define LOKET_SESSION_H

#include <jansson.h>
#include <stddef.h>

#include "loket/plugin.h"

struct loketd;
struct pwhash;
struct sessions;

/* session.c */
/* Registers /api/v1/session and starts the password hashing threads. */
struct sessions *sessions_new(struct loketd *d, const char **error_r);
void sessions_free(struct sessions *s);
/*
 * 0 when req carries a loket_session cookie (its value copied to buf when
 * buf is not NULL and it fits), else -1.
 */
int sessions_cookie(struct loket_http_req *req, char *buf, size_t len);
/*
 * The session part of the authenticator (auth_http_cb), for a request with
 * the cookie and no bearer token: 0 lets it through (a session read
 * lately), -1 after answering it (401, 403) or taking it over (the session
 * is read from the register, then the request goes on or is answered).
 */
int sessions_auth(struct sessions *s, struct loket_http_req *req, enum loket_http_access access);
struct pwhash *sessions_pwhash(struct sessions *s);
/*
 * Whether the session whose id hashes to hash still stands (not signed out,
 * not timed out, its user not disabled), without counting as its use: cb
 * runs once, now (read lately) or later on the loop. When the register
 * cannot say, live is 1: ask again later.
 */
void sessions_check(struct sessions *s, const char *hash, void (*cb)(int live, void *arg),
    void *arg);
/* Drops what this node remembers of name's sessions (the register ended them). */
void sessions_forget_user(struct sessions *s, const char *name);

/* users.c: user administration, which the control socket offers as loketctl user ... */
/*
 * Each ends with done_cb once, now or later on the loop: answer (taken
 * over) on success, else error, a sentence for the admin. The password
 * never appears in an answer or a log line.
 * add's args: {name, role, password, departments?, organisation?, extension?}.
 */
void users_add(struct loketd *d, json_t *args,
    void (*done_cb)(json_t *answer, const char *error, void *arg), void *arg);
/* args: {name, password}; ends the user's sessions. */
void users_passwd(struct loketd *d, json_t *args,
    void (*done_cb)(json_t *answer, const char *error, void *arg), void *arg);
/* args: {name}; ends the user's sessions on every node. */
void users_disable(struct loketd *d, json_t *args,
    void (*done_cb)(json_t *answer, const char *error, void *arg), void *arg);
/*
 * args: {name, role?, departments?, organisation? (null: none), disabled?};
 * checked as loketctl user add checks them, against what is stored; ends
 * the user's sessions on every node.
 */
void users_update(struct loketd *d, json_t *args,
    void (*done_cb)(json_t *answer, const char *error, void *arg), void *arg);
void users_list(struct loketd *d,
    void (*done_cb)(json_t *answer, const char *error, void *arg), void *arg);
/* Whether name is a user name loket accepts: 1 to 64 letters, digits, '-', '_', '.', '@'. */
int users_name_ok(const char *name);
/* The shortest password users_add and users_passwd accept. */
#define USERS_PASSWORD_MIN 10
#define USERS_PASSWORD_MAX 1024

#endif
