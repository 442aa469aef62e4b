/*
 * users.c: staff users in the register: add, new password, disable, list
 * (loketctl user ..., through the control socket). Passwords are hashed
 * with argon2id off the loop (pwhash.c); only the hash is stored, and
 * neither reaches an answer or a log line.
 */
#include "config.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "conf.h"
#include "log.h"
#include "loketd.h"
#include "pwhash.h"
#include "session.h"
#include "store.h"
#include "util.h"

#define USERS_EXTENSION_MAX 16

struct users_op {
	struct loketd *d;
	void (*done_cb)(json_t *answer, const char *error, void *arg);
	void *arg;
	enum store_op op;
	json_t *in; /* the store request's document, without the hash yet */
	char name[65];
};

int
users_name_ok(const char *name)
{
	size_t len = strlen(name);

	return len > 0 && len <= 64 &&
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@") == len;
}

static void
users_op_free(struct users_op *u)
{
	json_decref(u->in);
	free(u);
}

/* The row as an admin sees it: everything but the hash. */
static json_t *
users_public(json_t *row)
{
	json_t *copy = json_deep_copy(row);
	const char *k;
	json_t *v;
	void *tmp;
	char when[40];

	if (copy == NULL)
		return NULL;
	json_object_del(copy, "hash");
	json_object_foreach_safe(copy, tmp, k, v) {
		if ((strcmp(k, "created_at") == 0 || strcmp(k, "changed_at") == 0) &&
		    json_is_integer(v)) {
			util_time_format(json_integer_value(v), when, sizeof(when));
			json_object_set_new(copy, k, json_string(when));
		}
	}
	return copy;
}

static void
users_stored_cb(struct store_req *sr, void *arg)
{
	struct users_op *u = arg;
	json_t *answer;

	if (sr->result != STORE_OK) {
		u->done_cb(NULL, sr->error, u->arg);
		users_op_free(u);
		return;
	}
	/* The register ended the user's sessions; this node forgets its copies at once. */
	if (u->op == STORE_USER_UPDATE)
		sessions_forget_user(auth_sessions(u->d->auth), u->name);
	switch (u->op) {
	case STORE_USER_ADD:
		log_info("auth", "user added name=%s role=%s", u->name,
		    json_string_value(json_object_get(u->in, "role")));
		json_object_del(u->in, "hash");
		json_object_del(u->in, "at");
		answer = json_pack("{s:O}", "user", u->in);
		break;
	default:
		log_info("auth", "user changed name=%s%s%s", u->name,
		    json_object_get(u->in, "hash") != NULL ? " password=new" : "",
		    json_is_true(json_object_get(u->in, "disabled")) ? " disabled=yes" : "");
		answer = json_pack("{s:s, s:I}", "name", u->name, "sessions_ended",
		    json_integer_value(json_object_get(sr->out, "sessions_ended")));
		break;
	}
	u->done_cb(answer, NULL, u->arg);
	users_op_free(u);
}

static void
users_submit(struct users_op *u)
{
	struct store_req *sr = store_req_new(u->op, json_incref(u->in), users_stored_cb, u);

	if (sr == NULL) {
		u->done_cb(NULL, "out of memory", u->arg);
		users_op_free(u);
		return;
	}
	store_submit(u->d->store, sr);
}

static void
users_hashed_cb(const char *hash, void *arg)
{
	struct users_op *u = arg;

	if (hash == NULL) {
		u->done_cb(NULL, "the password could not be hashed (out of memory?)", u->arg);
		users_op_free(u);
		return;
	}
	json_object_set_new(u->in, "hash", json_string(hash));
	users_submit(u);
}

static const char *
users_password_check(const char *pw)
{
	size_t len = pw != NULL ? strlen(pw) : 0;

	if (len == 0)
		return "the password is empty";
	/* Characters, not bytes: "é" is one. */
	size_t chars = 0;
	for (size_t i = 0; i < len; i++)
		chars += ((unsigned char)pw[i] & 0xc0) != 0x80;
	if (chars < USERS_PASSWORD_MIN)
		return "the password is too short: use at least 10 characters";
	if (len > USERS_PASSWORD_MAX)
		return "the password is too long: at most 1024 bytes";
	return NULL;
}

/*
 * What a user may be: a staff role, configured departments (at least one
 * for backoffice), a configured organisation. NULL when it is fine, else the
 * sentence loketctl user add shows (and the API answers with 422).
 */
static const char *
users_rights_check(struct loketd *d, const char *role, json_t *deps, const char *org)
{
	enum auth_role r;
	json_t *dv;
	size_t i;

	if (role == NULL || auth_role_parse(role, &r) < 0 || (r & AUTH_STAFF) == 0)
		return "the role of a user must be agent, backoffice or admin";
	if (deps != NULL && !json_is_array(deps))
		return "--department names a department that is not configured";
	json_array_foreach(deps, i, dv) {
		if (!json_is_string(dv) || conf_department(d->conf, json_string_value(dv)) == NULL)
			return util_error("--department %s: no such department in the configuration",
			    json_is_string(dv) ? json_string_value(dv) : "?");
	}
	if (r == AUTH_BACKOFFICE && json_array_size(deps) == 0)
		return "a backoffice user needs at least one --department";
	if (org != NULL && conf_organisation(d->conf, org) == NULL)
		return util_error("--organisation %s: no such organisation in the configuration", org);
	return NULL;
}

/* Hands the password to the hashing threads, then stores u->in with the hash. */
static void
users_hash_and_store(struct users_op *u, const char *password)
{
	if (pwhash_hash(sessions_pwhash(auth_sessions(u->d->auth)), password, users_hashed_cb, u) <
	    0) {
		u->done_cb(NULL, "too many passwords being hashed at once; try again", u->arg);
		users_op_free(u);
	}
}

static struct users_op *
users_op_new(struct loketd *d, enum store_op op, const char *name,
    void (*done_cb)(json_t *answer, const char *error, void *arg), void *arg)
{
	struct users_op *u = calloc(1, sizeof(*u));

	if (u == NULL) {
		done_cb(NULL, "out of memory", arg);
		return NULL;
	}
	u->d = d;
	u->done_cb = done_cb;
	u->arg = arg;
	u->op = op;
	snprintf(u->name, sizeof(u->name), "%s", name);
	return u;
}

void
users_add(struct loketd *d, json_t *args,
    void (*done_cb)(json_t *answer, const char *error, void *arg), void *arg)
{
	const char *name = NULL, *role = NULL, *org = NULL, *ext = NULL, *pw = NULL, *why;
	json_t *deps = NULL;
	struct users_op *u;

	if (json_unpack(args, "{s:s, s:s, s?s, s?o, s?s, s?s}", "name", &name, "role", &role,
		"password", &pw, "departments", &deps, "organisation", &org, "extension",
		&ext) < 0) {
		done_cb(NULL,
		    "usage: user add NAME ROLE [--department D]... [--organisation O] [--extension N]",
		    arg);
		return;
	}
	if (!users_name_ok(name)) {
		done_cb(NULL, "a user name has 1 to 64 letters, digits, '-', '_', '.' or '@'", arg);
		return;
	}
	if ((why = users_rights_check(d, role, deps, org)) != NULL) {
		done_cb(NULL, why, arg);
		return;
	}
	if (ext != NULL && (strlen(ext) == 0 || strlen(ext) > USERS_EXTENSION_MAX ||
			       strspn(ext, "0123456789*#+") != strlen(ext))) {
		done_cb(NULL, "--extension: a phone extension of 1 to 16 digits (or * # +)", arg);
		return;
	}
	if ((why = users_password_check(pw)) != NULL) {
		done_cb(NULL, why, arg);
		return;
	}
	if ((u = users_op_new(d, STORE_USER_ADD, name, done_cb, arg)) == NULL)
		return;
	u->in = json_pack("{s:s, s:s, s:o, s:s?, s:s?, s:I}", "name", name, "role", role,
	    "departments", deps != NULL ? json_incref(deps) : json_array(), "organisation", org,
	    "extension", ext,
	    "at", (json_int_t)util_time_ms());
	if (u->in == NULL) {
		done_cb(NULL, "out of memory", arg);
		users_op_free(u);
		return;
	}
	users_hash_and_store(u, pw);
}

void
users_passwd(struct loketd *d, json_t *args,
    void (*done_cb)(json_t *answer, const char *error, void *arg), void *arg)
{
	const char *name = NULL, *pw = NULL, *why;
	struct users_op *u;

	if (json_unpack(args, "{s:s, s?s}", "name", &name, "password", &pw) < 0 ||
	    !users_name_ok(name)) {
		done_cb(NULL, "usage: user passwd NAME (the password on standard input)", arg);
		return;
	}
	if ((why = users_password_check(pw)) != NULL) {
		done_cb(NULL, why, arg);
		return;
	}
	if ((u = users_op_new(d, STORE_USER_UPDATE, name, done_cb, arg)) == NULL)
		return;
	if ((u->in = json_pack("{s:s, s:I}", "name", name, "at", (json_int_t)util_time_ms())) ==
	    NULL) {
		done_cb(NULL, "out of memory", arg);
		users_op_free(u);
		return;
	}
	users_hash_and_store(u, pw);
}

void
users_disable(struct loketd *d, json_t *args,
    void (*done_cb)(json_t *answer, const char *error, void *arg), void *arg)
{
	const char *name = NULL;
	struct users_op *u;

	if (json_unpack(args, "{s:s}", "name", &name) < 0 || !users_name_ok(name)) {
		done_cb(NULL, "usage: user disable NAME", arg);
		return;
	}
	if ((u = users_op_new(d, STORE_USER_UPDATE, name, done_cb, arg)) == NULL)
		return;
	if ((u->in = json_pack("{s:s, s:b, s:I}", "name", name, "disabled", 1, "at",
		 (json_int_t)util_time_ms())) == NULL) {
		done_cb(NULL, "out of memory", arg);
		users_op_free(u);
		return;
	}
	users_submit(u);
}

struct users_listing {
	void (*done_cb)(json_t *answer, const char *error, void *arg);
	void *arg;
};

static void
users_listed_cb(struct store_req *sr, void *arg)
{
	struct users_listing *l = arg;
	json_t *items, *row;
	size_t i;

	if (sr->result != STORE_OK) {
		l->done_cb(NULL, sr->error, l->arg);
		free(l);
		return;
	}
	items = json_array();
	json_array_foreach(json_object_get(sr->out, "items"), i, row)
		json_array_append_new(items, users_public(row));
	l->done_cb(json_pack("{s:o}", "items", items), NULL, l->arg);
	free(l);
}

void
users_list(struct loketd *d,
    void (*done_cb)(json_t *answer, const char *error, void *arg), void *arg)
{
	struct users_listing *l = calloc(1, sizeof(*l));
	struct store_req *sr;

	if (l == NULL ||
	    (sr = store_req_new(STORE_USER_LIST, json_object(), users_listed_cb, l)) == NULL) {
		free(l);
		done_cb(NULL, "out of memory", arg);
		return;
	}
	l->done_cb = done_cb;
	l->arg = arg;
	store_submit(d->store, sr);
}

/* users_update: the user as stored, then the change checked against it and stored. */
struct users_change {
	struct loketd *d;
	void (*done_cb)(json_t *answer, const char *error, void *arg);
	void *arg;
	json_t *args;
};

static void
users_change_got_cb(struct store_req *sr, void *arg)
{
	struct users_change *ch = arg;
	const char *name = json_string_value(json_object_get(ch->args, "name"));
	json_t *row = NULL, *v, *org;
	struct users_op *u;
	const char *why;
	size_t i;

	if (sr->result != STORE_OK) {
		ch->done_cb(NULL, sr->error, ch->arg);
		goto out;
	}
	json_array_foreach(json_object_get(sr->out, "items"), i, v)
		if (strcmp(json_string_value(json_object_get(v, "name")), name) == 0)
			row = v;
	if (row == NULL) {
		ch->done_cb(NULL, util_error("no user named '%s'", name), ch->arg);
		goto out;
	}
	/* The rights the user will have, each part given or kept, checked as a whole. */
	org = json_object_get(ch->args, "organisation");
	why = users_rights_check(ch->d,
	    json_string_value(json_object_get(json_object_get(ch->args, "role") != NULL ? ch->args :
	        row, "role")),
	    json_object_get(json_object_get(ch->args, "departments") != NULL ? ch->args : row,
		"departments"),
	    json_string_value(org != NULL ? org : json_object_get(row, "organisation")));
	if (why != NULL) {
		ch->done_cb(NULL, why, ch->arg);
		goto out;
	}
	if ((u = users_op_new(ch->d, STORE_USER_UPDATE, name, ch->done_cb, ch->arg)) == NULL)
		goto out;
	u->in = json_deep_copy(ch->args);
	if (u->in == NULL ||
	    json_object_set_new(u->in, "at", json_integer((json_int_t)util_time_ms())) < 0) {
		ch->done_cb(NULL, "out of memory", ch->arg);
		users_op_free(u);
		goto out;
	}
	users_submit(u);
out:
	json_decref(ch->args);
	free(ch);
}

void
users_update(struct loketd *d, json_t *args,
    void (*done_cb)(json_t *answer, const char *error, void *arg), void *arg)
{
	const char *name = json_string_value(json_object_get(args, "name"));
	struct users_change *ch;
	struct store_req *sr;

	if (name == NULL || !users_name_ok(name)) {
		done_cb(NULL, "a user name has 1 to 64 letters, digits, '-', '_', '.' or '@'", arg);
		return;
	}
	if ((ch = calloc(1, sizeof(*ch))) == NULL ||
	    (sr = store_req_new(STORE_USER_LIST, json_object(), users_change_got_cb, ch)) == NULL) {
		free(ch);
		done_cb(NULL, "out of memory", arg);
		return;
	}
	ch->d = d;
	ch->done_cb = done_cb;
	ch->arg = arg;
	ch->args = json_incref(args);
	store_submit(d->store, sr);
}
