/*
 * session.c: staff sign-in: sessions kept in the register, the session
 * cookie, CSRF tokens and the throttling of failed sign-ins.
 *
 * A session's id lives only in the browser's cookie; the register keeps its
 * BLAKE2b hash, so every node sharing the register serves it. A node keeps
 * what it read of a session for at most SESSION_CACHE_MS: a sign-out or a
 * disabled user on another node takes effect here within that time.
 * Failed sign-ins are counted in the register too, per user name and per
 * client address, so guessing across nodes counts once.
 */
#include "config.h"

#include <arpa/inet.h>
#include <event2/http.h>
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
#include "pwhash.h"
#include "session.h"
#include "store.h"
#include "util.h"

#define SESSION_COOKIE "loket_session"
/* 32 random bytes, base64url without padding. */
#define SESSION_ID_LEN 43
#define SESSION_CACHE_MS 1000
#define SESSION_CACHE_MAX 4096
/* last_seen is written at most this often per session (or a tenth of the idle time). */
#define SESSION_TOUCH_MS 60000
#define SESSION_PWHASH_THREADS 2
/* The 401 of every failed sign-in: it never says which part was wrong. */
#define SESSION_SIGNIN_REFUSED "the user name or the password is not right"

struct session_entry {
	char hash[65];
	char csrf[64];
	char *name;
	enum auth_role role;
	json_t *departments;
	char *organisation;
	int64_t fetched_at; /* when this node read it from the register */
	int64_t last_seen;  /* as the register has it (or this node's touch on its way) */
	int64_t expires_at;
	int touching;
};

struct sessions {
	struct loketd *d;
	struct pwhash *pwhash;
	struct session_entry **cache;
	size_t ncache;
};

static void
session_entry_free(struct session_entry *e)
{
	if (e == NULL)
		return;
	free(e->name);
	free(e->organisation);
	json_decref(e->departments);
	sodium_memzero(e->csrf, sizeof(e->csrf));
	free(e);
}

static void
session_hash(const char *id, char hex[65])
{
	unsigned char h[32];

	crypto_generichash(h, sizeof(h), (const unsigned char *)id, strlen(id), NULL, 0);
	sodium_bin2hex(hex, 65, h, sizeof(h));
}

/* 32 random bytes as base64url text: a session id or a CSRF token. */
static void
session_random(char out[SESSION_ID_LEN + 1])
{
	unsigned char raw[32];

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(out, SESSION_ID_LEN + 1, raw, sizeof(raw),
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
}

static int
session_id_ok(const char *id)
{
	return strlen(id) == SESSION_ID_LEN &&
	    strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") ==
	    SESSION_ID_LEN;
}

static size_t
session_find(struct sessions *s, const char *hash)
{
	for (size_t i = 0; i < s->ncache; i++)
		if (strcmp(s->cache[i]->hash, hash) == 0)
			return i;
	return (size_t)-1;
}

static void
session_drop(struct sessions *s, size_t i)
{
	session_entry_free(s->cache[i]);
	s->cache[i] = s->cache[--s->ncache];
}

static void
session_forget(struct sessions *s, const char *hash)
{
	size_t i = session_find(s, hash);

	if (i != (size_t)-1)
		session_drop(s, i);
}

void
sessions_forget_user(struct sessions *s, const char *name)
{
	for (size_t i = 0; s != NULL && i < s->ncache;) {
		if (strcmp(s->cache[i]->name, name) == 0)
			session_drop(s, i);
		else
			i++;
	}
}

/* Keeps what the register answered (STORE_SESSION_GET's out) for hash; NULL without memory. */
static struct session_entry *
session_remember(struct sessions *s, const char *hash, json_t *out, int64_t now)
{
	json_t *user = json_object_get(out, "user");
	const char *name = json_string_value(json_object_get(user, "name"));
	const char *role = json_string_value(json_object_get(user, "role"));
	const char *csrf = json_string_value(json_object_get(out, "csrf"));
	const char *org = json_string_value(json_object_get(user, "organisation"));
	json_t *deps = json_object_get(user, "departments");
	struct session_entry *e, **grown;
	size_t i;

	if (name == NULL || role == NULL || csrf == NULL || strlen(csrf) >= sizeof(e->csrf))
		return NULL;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	snprintf(e->hash, sizeof(e->hash), "%s", hash);
	snprintf(e->csrf, sizeof(e->csrf), "%s", csrf);
	e->name = strdup(name);
	e->organisation = org != NULL ? strdup(org) : NULL;
	e->departments = json_is_array(deps) ? json_incref(deps) : json_array();
	e->fetched_at = now;
	e->last_seen = json_integer_value(json_object_get(out, "last_seen"));
	e->expires_at = json_integer_value(json_object_get(out, "expires_at"));
	if (e->name == NULL || (org != NULL && e->organisation == NULL) || e->departments == NULL ||
	    auth_role_parse(role, &e->role) < 0) {
		session_entry_free(e);
		return NULL;
	}
	if ((i = session_find(s, hash)) != (size_t)-1) {
		e->touching = s->cache[i]->touching;
		session_entry_free(s->cache[i]);
		s->cache[i] = e;
		return e;
	}
	/* Full: what is stale goes first; a cache that is still full is emptied (it refills). */
	if (s->ncache >= SESSION_CACHE_MAX) {
		for (i = 0; i < s->ncache;) {
			if (now - s->cache[i]->fetched_at >= SESSION_CACHE_MS)
				session_drop(s, i);
			else
				i++;
		}
		while (s->ncache >= SESSION_CACHE_MAX)
			session_drop(s, 0);
	}
	if (s->ncache % 64 == 0) {
		if ((grown = realloc(s->cache, (s->ncache + 64) * sizeof(*grown))) == NULL) {
			session_entry_free(e);
			return NULL;
		}
		s->cache = grown;
	}
	s->cache[s->ncache++] = e;
	return e;
}

int
sessions_cookie(struct loket_http_req *req, char *buf, size_t len)
{
	const char *h = http_header(req, "Cookie"), *p;
	size_t n;

	for (p = h; p != NULL && *p != '\0';) {
		p += strspn(p, " \t;");
		if (strncmp(p, SESSION_COOKIE "=", strlen(SESSION_COOKIE) + 1) == 0) {
			p += strlen(SESSION_COOKIE) + 1;
			n = strcspn(p, ";");
			while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
				n--;
			if (buf != NULL) {
				if (n >= len)
					n = 0; /* too long to be ours: an empty id, which is refused */
				memcpy(buf, p, n);
				buf[n] = '\0';
			}
			return 0;
		}
		p += strcspn(p, ";");
	}
	return -1;
}

/* Whether the connection comes from a proxy [http] trusted_proxies names. */
static int
session_peer_trusted(struct sessions *s, const char *peer)
{
	const char *list = s->d->conf->http_trusted_proxies, *p;
	size_t len = strlen(peer), n;

	for (p = list != NULL ? list : ""; *p != '\0'; p += n) {
		p += strspn(p, " \t,");
		n = strcspn(p, " \t,");
		if (n == len && n > 0 && strncmp(p, peer, n) == 0)
			return 1;
	}
	return 0;
}

static const char *
session_peer(struct loket_http_req *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req->ev);
	char *addr = NULL;
	ev_uint16_t port = 0;

	if (conn != NULL)
		evhttp_connection_get_peer(conn, &addr, &port);
	return addr != NULL ? addr : "";
}

/*
 * The client's address: the peer's, or behind a trusted proxy the last
 * address of X-Forwarded-For (the one that proxy added). Anyone can write
 * that header, so it counts only from a proxy the admin named.
 */
static void
session_client(struct sessions *s, struct loket_http_req *req, char *out, size_t len)
{
	const char *peer = session_peer(req), *xff, *last;
	unsigned char bin[sizeof(struct in6_addr)];
	char addr[INET6_ADDRSTRLEN + 1];
	size_t n;

	snprintf(out, len, "%s", peer);
	if (!session_peer_trusted(s, peer) || (xff = http_header(req, "X-Forwarded-For")) == NULL)
		return;
	last = strrchr(xff, ',');
	last = last != NULL ? last + 1 : xff;
	last += strspn(last, " \t");
	n = strcspn(last, " \t");
	if (n == 0 || n >= sizeof(addr))
		return;
	memcpy(addr, last, n);
	addr[n] = '\0';
	if (inet_pton(AF_INET, addr, bin) == 1 || inet_pton(AF_INET6, addr, bin) == 1)
		snprintf(out, len, "%s", addr);
}

static int
session_secure(struct sessions *s, struct loket_http_req *req)
{
	const char *proto = http_header(req, "X-Forwarded-Proto");

	if (s->d->conf->http_secure_cookies)
		return 1;
	return proto != NULL && strcasecmp(proto, "https") == 0 &&
	    session_peer_trusted(s, session_peer(req));
}

/* Set-Cookie for id, or one that clears the cookie when id is NULL. */
static void
session_set_cookie(struct sessions *s, struct loket_http_req *req, const char *id)
{
	char v[256];

	snprintf(v, sizeof(v), SESSION_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict%s%s",
	    id != NULL ? id : "", id != NULL ? "" : "; Max-Age=0",
	    session_secure(s, req) ? "; Secure" : "");
	http_add_header(req, "Set-Cookie", v);
}

static void
session_refuse(struct sessions *s, struct loket_http_req *req)
{
	session_set_cookie(s, req, NULL);
	http_problem(req, 401,
	    "the session has ended (signed out, idle too long or the user was disabled); sign in "
	    "again");
}

static int64_t
session_idle_ms(struct sessions *s)
{
	return (int64_t)s->d->conf->http_session_idle_ms;
}

struct session_touch {
	struct sessions *s;
	char hash[65];
};

static void
session_touched_cb(struct store_req *sr, void *arg)
{
	struct session_touch *t = arg;
	size_t i;

	if ((i = session_find(t->s, t->hash)) != (size_t)-1) {
		t->s->cache[i]->touching = 0;
		/* It ran out or ended meanwhile (on another node): forget it here too. */
		if (sr->result == STORE_NOT_FOUND)
			session_drop(t->s, i);
	}
	free(t);
}

/* Writes last_seen when it is older than the touch interval, one write at a time. */
static void
session_touch(struct sessions *s, struct session_entry *e, int64_t now)
{
	int64_t idle = session_idle_ms(s), every = idle / 10;
	struct session_touch *t;
	struct store_req *sr;

	if (every > SESSION_TOUCH_MS)
		every = SESSION_TOUCH_MS;
	if (e->touching || now - e->last_seen < every)
		return;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return;
	t->s = s;
	memcpy(t->hash, e->hash, sizeof(t->hash));
	sr = store_req_new(STORE_SESSION_TOUCH,
	    json_pack("{s:s, s:I, s:I}", "hash", e->hash, "at", (json_int_t)now, "expires_at",
		(json_int_t)(now + idle)),
	    session_touched_cb, t);
	if (sr == NULL) {
		free(t);
		return;
	}
	e->touching = 1;
	e->last_seen = now;
	e->expires_at = now + idle;
	store_submit(s->d->store, sr);
}

static int
session_changes_state(struct loket_http_req *req)
{
	return (req->method & (LOKET_HTTP_POST | LOKET_HTTP_PUT | LOKET_HTTP_PATCH |
			       LOKET_HTTP_DELETE)) != 0;
}

/*
 * Lets req act as the session's user: its CSRF token on every change of
 * state (a page of another site can make the browser send the cookie, not
 * read the token), then the route's role. 0 through, -1 answered.
 */
static int
session_admit(struct sessions *s, struct loket_http_req *req, enum loket_http_access access,
    struct session_entry *e, int64_t now)
{
	const char *token = http_header(req, "X-CSRF-Token");

	if (auth_session_identity(req, e->name, e->role, e->departments, e->organisation,
		e->hash) < 0) {
		http_problem(req, 503, "out of memory");
		return -1;
	}
	if (session_changes_state(req) &&
	    (token == NULL || strlen(token) != strlen(e->csrf) ||
		sodium_memcmp(token, e->csrf, strlen(e->csrf)) != 0)) {
		http_problem(req, 403,
		    "a change made with the session cookie needs the header X-CSRF-Token with the "
		    "session's csrf value (from the sign-in answer or GET /api/v1/session)");
		return -1;
	}
	if (auth_access(req, access) < 0)
		return -1;
	session_touch(s, e, now);
	return 0;
}

struct session_read {
	struct sessions *s;
	struct loket_http_req *req;
	enum loket_http_access access;
	char hash[65];
};

static void
session_read_cb(struct store_req *sr, void *arg)
{
	struct session_read *r = arg;
	int64_t now = util_time_ms();
	struct session_entry *e;

	if (sr->result == STORE_NOT_FOUND) {
		session_forget(r->s, r->hash);
		session_refuse(r->s, r->req);
	} else if (sr->result != STORE_OK) {
		http_problem(r->req, 503, "the register cannot check the session now; try again");
	} else if ((e = session_remember(r->s, r->hash, sr->out, now)) == NULL) {
		http_problem(r->req, 503, "out of memory");
	} else if (session_admit(r->s, r->req, r->access, e, now) == 0) {
		http_route_continue(r->req);
	}
	free(r);
}

struct session_check {
	struct sessions *s;
	char hash[65];
	void (*cb)(int live, void *arg);
	void *arg;
};

static void
session_check_cb(struct store_req *sr, void *arg)
{
	struct session_check *c = arg;
	int64_t now = util_time_ms();
	struct session_entry *e;
	int live = 1;

	if (sr->result == STORE_NOT_FOUND) {
		session_forget(c->s, c->hash);
		live = 0;
	} else if (sr->result == STORE_OK && (e = session_remember(c->s, c->hash, sr->out, now)) != NULL) {
		live = now <= e->expires_at;
	}
	/* Any other answer (the register cannot say now): live; the caller asks again later. */
	c->cb(live, c->arg);
	free(c);
}

void
sessions_check(struct sessions *s, const char *hash, void (*cb)(int live, void *arg), void *arg)
{
	int64_t now = util_time_ms();
	size_t i = session_find(s, hash);
	struct session_check *c;
	struct store_req *sr;

	if (i != (size_t)-1 && now - s->cache[i]->fetched_at < SESSION_CACHE_MS) {
		cb(now <= s->cache[i]->expires_at, arg);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		cb(1, arg);
		return;
	}
	c->s = s;
	snprintf(c->hash, sizeof(c->hash), "%s", hash);
	c->cb = cb;
	c->arg = arg;
	sr = store_req_new(STORE_SESSION_GET,
	    json_pack("{s:s, s:I}", "hash", hash, "now", (json_int_t)now), session_check_cb, c);
	if (sr == NULL) {
		free(c);
		cb(1, arg);
		return;
	}
	store_submit(s->d->store, sr);
}

int
sessions_auth(struct sessions *s, struct loket_http_req *req, enum loket_http_access access)
{
	char id[SESSION_ID_LEN + 2], hash[65];
	int64_t now = util_time_ms();
	struct session_read *r;
	struct store_req *sr;
	size_t i;

	if (sessions_cookie(req, id, sizeof(id)) < 0 || !session_id_ok(id)) {
		session_refuse(s, req);
		return -1;
	}
	session_hash(id, hash);
	sodium_memzero(id, sizeof(id));
	i = session_find(s, hash);
	if (i != (size_t)-1 && now - s->cache[i]->fetched_at < SESSION_CACHE_MS &&
	    now <= s->cache[i]->expires_at)
		return session_admit(s, req, access, s->cache[i], now);
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		http_problem(req, 503, "out of memory");
		return -1;
	}
	r->s = s;
	r->req = req;
	r->access = access;
	memcpy(r->hash, hash, sizeof(hash));
	sr = store_req_new(STORE_SESSION_GET,
	    json_pack("{s:s, s:I}", "hash", hash, "now", (json_int_t)now), session_read_cb, r);
	if (sr == NULL) {
		free(r);
		http_problem(req, 503, "out of memory");
		return -1;
	}
	/* The answer lets req on (http_route_continue) or answers it. */
	store_submit(s->d->store, sr);
	return -1;
}

/* The session document of the API: the user as the register has it, the CSRF token. */
static json_t *
session_doc(struct sessions *s, json_t *user, const char *csrf)
{
	json_t *deps = json_object_get(user, "departments");

	return json_pack("{s:{s:O, s:O, s:O, s:O, s:O}, s:s, s:I}", "user", "name",
	    json_object_get(user, "name"), "role", json_object_get(user, "role"), "departments",
	    json_is_array(deps) ? deps : json_array(), "organisation",
	    json_object_get(user, "organisation") != NULL ? json_object_get(user, "organisation")
							  : json_null(),
	    "extension",
	    json_object_get(user, "extension") != NULL ? json_object_get(user, "extension")
						       : json_null(),
	    "csrf", csrf, "idle_timeout", (json_int_t)(session_idle_ms(s) / 1000));
}

static void
session_no_store(struct loket_http_req *req)
{
	http_add_header(req, "Cache-Control", "no-store");
}

/* ---- sign-in ---- */

struct session_signin {
	struct sessions *s;
	struct loket_http_req *req;
	char name[65];    /* as typed, when it is a valid user name; else "" */
	char password[USERS_PASSWORD_MAX + 1];
	char address[INET6_ADDRSTRLEN + 1];
	json_t *user;     /* the user's row (with its hash), or NULL: no such user */
	char id[SESSION_ID_LEN + 1];
	char csrf[SESSION_ID_LEN + 1];
};

static void
session_signin_free(struct session_signin *g)
{
	sodium_memzero(g->password, sizeof(g->password));
	sodium_memzero(g->id, sizeof(g->id));
	json_decref(g->user);
	free(g);
}

/* An audit row of a sign-in: the user name only (never the password nor the address). */
static void
session_audit(struct sessions *s, const char *name, const char *action)
{
	struct store_req *sr = store_req_new(STORE_AUDIT,
	    json_pack("{s:[{s:I, s:s, s:s, s:s}]}", "rows", "at", (json_int_t)util_time_ms(),
		"token", name[0] != '\0' ? name : "(not a user name)", "action", action, "object",
		"session"),
	    NULL, NULL);

	if (sr == NULL) {
		log_warnx("auth", "cannot record an audit row action=%s", action);
		return;
	}
	store_submit(s->d->store, sr);
}

static void
session_failed_cb(struct store_req *sr, void *arg)
{
	struct session_signin *g = arg;

	if (sr->result != STORE_OK)
		log_warnx("auth", "a failed sign-in could not be counted: %s", sr->error);
	session_audit(g->s, g->name, "session.signin_failed");
	log_info("auth", "sign-in refused user=%s", g->name[0] != '\0' ? g->name : "-");
	session_no_store(g->req);
	http_problem(g->req, 401, SESSION_SIGNIN_REFUSED);
	session_signin_free(g);
}

/* Counts the failure in the register first: the next try, on any node, sees it. */
static void
session_signin_fail(struct session_signin *g)
{
	int64_t now = util_time_ms();
	int64_t window = (int64_t)g->s->d->conf->http_signin_window_ms;
	struct store_req *sr = store_req_new(STORE_SIGNIN_FAIL,
	    json_pack("{s:s, s:s, s:I, s:I}", "name", g->name, "address", g->address, "at",
		(json_int_t)now, "before", (json_int_t)(now - window)),
	    session_failed_cb, g);

	if (sr == NULL) {
		http_problem(g->req, 503, "out of memory");
		session_signin_free(g);
		return;
	}
	store_submit(g->s->d->store, sr);
}

static void
session_made_cb(struct store_req *sr, void *arg)
{
	struct session_signin *g = arg;
	json_t *doc;

	if (sr->result != STORE_OK) {
		http_problem(g->req, 503, "the register cannot keep the session now; try again");
		session_signin_free(g);
		return;
	}
	if ((doc = session_doc(g->s, g->user, g->csrf)) == NULL) {
		http_problem(g->req, 503, "out of memory");
		session_signin_free(g);
		return;
	}
	session_audit(g->s, g->name, "session.signin");
	log_info("auth", "signed in user=%s", g->name);
	session_set_cookie(g->s, g->req, g->id);
	session_no_store(g->req);
	http_reply_json(g->req, 200, doc);
	session_signin_free(g);
}

static void
session_verified_cb(int ok, void *arg)
{
	struct session_signin *g = arg;
	int64_t now = util_time_ms();
	char hash[65];
	struct store_req *sr;

	if (!ok || g->user == NULL || json_is_true(json_object_get(g->user, "disabled"))) {
		session_signin_fail(g);
		return;
	}
	session_random(g->id);
	session_random(g->csrf);
	session_hash(g->id, hash);
	sr = store_req_new(STORE_SESSION_PUT,
	    json_pack("{s:s, s:s, s:s, s:I, s:I}", "hash", hash, "user", g->name, "csrf", g->csrf,
		"at", (json_int_t)now, "expires_at", (json_int_t)(now + session_idle_ms(g->s))),
	    session_made_cb, g);
	if (sr == NULL) {
		http_problem(g->req, 503, "out of memory");
		session_signin_free(g);
		return;
	}
	store_submit(g->s->d->store, sr);
}

/* Seconds until the oldest counted failure leaves the window (at least 1). */
static int64_t
session_retry_after(int64_t first, int64_t window, int64_t now)
{
	int64_t ms = first + window - now;

	return ms > 1000 ? (ms + 999) / 1000 : 1;
}

static void
session_counted_cb(struct store_req *sr, void *arg)
{
	struct session_signin *g = arg;
	const struct conf *conf = g->s->d->conf;
	int64_t now = util_time_ms(), window = (int64_t)conf->http_signin_window_ms;
	int64_t retry = 0;
	json_t *out = sr->out, *user;
	const char *hash = NULL;
	char v[32];

	if (sr->result != STORE_OK) {
		http_problem(g->req, 503, "the register cannot check the sign-in now; try again");
		session_signin_free(g);
		return;
	}
	if (json_integer_value(json_object_get(out, "user_failures")) >=
	    conf->http_signin_user_failures)
		retry = session_retry_after(
		    json_integer_value(json_object_get(out, "user_first")), window, now);
	if (json_integer_value(json_object_get(out, "address_failures")) >=
	    conf->http_signin_address_failures) {
		int64_t r = session_retry_after(
		    json_integer_value(json_object_get(out, "address_first")), window, now);

		retry = r > retry ? r : retry;
	}
	/* Throttled: refused before the password is looked at, the same for any user name. */
	if (retry > 0) {
		snprintf(v, sizeof(v), "%lld", (long long)retry);
		http_add_header(g->req, "Retry-After", v);
		session_no_store(g->req);
		session_audit(g->s, g->name, "session.signin_throttled");
		log_info("auth", "sign-in throttled user=%s retry_after=%llds",
		    g->name[0] != '\0' ? g->name : "-", (long long)retry);
		http_problem(g->req, 429,
		    "too many failed sign-ins for this user name or from this address; try again "
		    "later");
		session_signin_free(g);
		return;
	}
	user = json_object_get(out, "user");
	if (json_is_object(user) && g->name[0] != '\0') {
		g->user = json_incref(user);
		hash = json_string_value(json_object_get(user, "hash"));
	}
	/* An unknown user is checked against a dummy hash: the same time either way. */
	if (pwhash_verify(g->s->pwhash, g->password, hash, session_verified_cb, g) < 0) {
		http_add_header(g->req, "Retry-After", "1");
		http_problem(g->req, 503, "too many sign-ins at once; try again in a moment");
		session_signin_free(g);
		return;
	}
	sodium_memzero(g->password, sizeof(g->password));
}

/* Wipes a JSON string's text in place: a password must not linger in freed memory. */
static void
session_wipe_string(json_t *v)
{
	if (json_is_string(v))
		sodium_memzero((char *)json_string_value(v), json_string_length(v));
}

static void
session_post(struct loket_http_req *req, void *arg)
{
	struct sessions *s = arg;
	json_t *body = json_loadb(req->body != NULL ? req->body : "", req->body_len,
	    JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
	json_t *name = json_object_get(body, "username"), *pw = json_object_get(body, "password");
	struct session_signin *g = NULL;
	struct store_req *sr;
	int64_t now = util_time_ms();
	const char *why = NULL;

	if (req->body != NULL)
		sodium_memzero(req->body, req->body_len);
	const char *ctype = http_header(req, "Content-Type");
	int status = 422;

	/* Like every JSON body (docs/api.md), but never quoting it: it holds a password. */
	if (ctype != NULL && strncasecmp(ctype, "application/json", 16) != 0) {
		status = 415;
		why = "the body must be JSON (Content-Type: application/json)";
	} else if (body == NULL) {
		status = 400;
		why = "the body is not JSON; expected {\"username\": \"...\", \"password\": \"...\"}";
	} else if (!json_is_object(body)) {
		why = "expected a JSON object {\"username\": \"...\", \"password\": \"...\"}";
	} else if (name != NULL && !json_is_string(name)) {
		why = "username: a string is expected";
	} else if (pw != NULL && !json_is_string(pw)) {
		why = "password: a string is expected";
	} else if (json_string_length(name) == 0 || json_string_length(pw) == 0) {
		/* No credentials at all: as unauthorised as wrong ones, and not counted. */
		status = 401;
		why = "a user name (username) and a password (password) are required to sign in";
	} else if (json_string_length(pw) > USERS_PASSWORD_MAX) {
		why = "password: at most 1024 characters";
	} else if (json_string_length(name) > 256) {
		why = "username: at most 256 characters";
	}
	if (why != NULL) {
		session_wipe_string(pw);
		json_decref(body);
		http_problem(req, status, why);
		return;
	}
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		session_wipe_string(pw);
		json_decref(body);
		http_problem(req, 503, "out of memory");
		return;
	}
	g->s = s;
	g->req = req;
	/* A name loket would never give a user is simply unknown (and not written to the audit). */
	if (users_name_ok(json_string_value(name)))
		snprintf(g->name, sizeof(g->name), "%s", json_string_value(name));
	memcpy(g->password, json_string_value(pw), json_string_length(pw) + 1);
	session_wipe_string(pw);
	json_decref(body);
	session_client(s, req, g->address, sizeof(g->address));
	sr = store_req_new(STORE_SIGNIN_GET,
	    json_pack("{s:s, s:s, s:I}", "name", g->name, "address", g->address, "since",
		(json_int_t)(now - (int64_t)s->d->conf->http_signin_window_ms)),
	    session_counted_cb, g);
	if (sr == NULL) {
		session_signin_free(g);
		http_problem(req, 503, "out of memory");
		return;
	}
	store_submit(s->d->store, sr);
}

/* ---- the session: read, sign-out ---- */

struct session_call {
	struct sessions *s;
	struct loket_http_req *req;
	char hash[65];
	char name[65];
};

static int
session_of_request(struct loket_http_req *req, struct session_call **call_r, struct sessions *s)
{
	const struct auth_token *t = req->auth;
	struct session_call *c;

	if (t == NULL || !t->session) {
		http_problem(req, 401,
		    "this request carries no session (sign in with POST /api/v1/session); a bearer "
		    "token has none");
		return -1;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		http_problem(req, 503, "out of memory");
		return -1;
	}
	c->s = s;
	c->req = req;
	snprintf(c->hash, sizeof(c->hash), "%s", t->hash);
	snprintf(c->name, sizeof(c->name), "%s", t->name);
	*call_r = c;
	return 0;
}

static void
session_got_cb(struct store_req *sr, void *arg)
{
	struct session_call *c = arg;
	json_t *doc;

	if (sr->result == STORE_NOT_FOUND) {
		session_forget(c->s, c->hash);
		session_refuse(c->s, c->req);
	} else if (sr->result != STORE_OK) {
		http_problem(c->req, 503, "the register cannot read the session now; try again");
	} else if ((doc = session_doc(c->s, json_object_get(sr->out, "user"),
			json_string_value(json_object_get(sr->out, "csrf")))) == NULL) {
		http_problem(c->req, 503, "out of memory");
	} else {
		session_remember(c->s, c->hash, sr->out, util_time_ms());
		session_no_store(c->req);
		http_reply_json(c->req, 200, doc);
	}
	free(c);
}

static void
session_ended_cb(struct store_req *sr, void *arg)
{
	struct session_call *c = arg;

	if (sr->result != STORE_OK && sr->result != STORE_NOT_FOUND) {
		http_problem(c->req, 503, "the register cannot end the session now; try again");
		free(c);
		return;
	}
	session_forget(c->s, c->hash);
	session_audit(c->s, c->name, "session.signout");
	log_info("auth", "signed out user=%s", c->name);
	session_set_cookie(c->s, c->req, NULL);
	session_no_store(c->req);
	http_reply(c->req, 204, "application/json", NULL, 0);
	free(c);
}

static void
session_route(struct loket_http_req *req, void *arg)
{
	struct sessions *s = arg;
	struct session_call *c;
	struct store_req *sr;
	int del = req->method == LOKET_HTTP_DELETE;

	if (session_of_request(req, &c, s) < 0)
		return;
	if (del)
		sr = store_req_new(STORE_SESSION_END, json_pack("{s:s}", "hash", c->hash),
		    session_ended_cb, c);
	else
		sr = store_req_new(STORE_SESSION_GET,
		    json_pack("{s:s, s:I}", "hash", c->hash, "now", (json_int_t)util_time_ms()),
		    session_got_cb, c);
	if (sr == NULL) {
		free(c);
		http_problem(req, 503, "out of memory");
		return;
	}
	store_submit(s->d->store, sr);
}

struct sessions *
sessions_new(struct loketd *d, const char **error_r)
{
	struct sessions *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	s->d = d;
	if ((s->pwhash = pwhash_new(d->base, SESSION_PWHASH_THREADS, error_r)) == NULL)
		goto fail;
	if (http_route_add(d->http, "core", LOKET_HTTP_POST, "/api/v1/session", LOKET_ACCESS_PUBLIC,
		session_post, s, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_GET | LOKET_HTTP_DELETE, "/api/v1/session",
		LOKET_ACCESS_TOKEN, session_route, s, error_r) < 0)
		goto fail;
	return s;
fail:
	sessions_free(s);
	return NULL;
}

void
sessions_free(struct sessions *s)
{
	if (s == NULL)
		return;
	pwhash_free(s->pwhash);
	for (size_t i = 0; i < s->ncache; i++)
		session_entry_free(s->cache[i]);
	free(s->cache);
	free(s);
}

struct pwhash *
sessions_pwhash(struct sessions *s)
{
	return s->pwhash;
}
