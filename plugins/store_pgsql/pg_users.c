/*
 * pg_users.c: staff users, their sessions and the failed sign-ins that
 * throttle, in PostgreSQL (the SQLite driver's store_sqlite_users.c does the
 * same). Every node sharing the register reads the same rows, so a session
 * made on one node works on the others and ends on all of them at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

#define USER_COLS                                                                           \
	"u.name, u.role, u.departments, u.organisation, u.extension, u.disabled, "          \
	PG_MS("u.created_at") ", " PG_MS("u.changed_at") ", u.hash "

/* A user in the storage shape; the hash only when with_hash. */
static json_t *
user_row(const PGresult *r, int i, int first, int with_hash)
{
	json_t *row = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "name",
	    pg_col_text(r, i, first), "role", pg_col_text(r, i, first + 1), "departments",
	    pg_col_json(r, i, first + 2), "organisation", pg_col_text(r, i, first + 3), "extension",
	    pg_col_text(r, i, first + 4), "disabled", pg_col_bool(r, i, first + 5), "created_at",
	    pg_col_int(r, i, first + 6), "changed_at", pg_col_int(r, i, first + 7));

	if (row != NULL && with_hash)
		json_object_set_new(row, "hash", pg_col_text(r, i, first + 8));
	return row;
}

static void
read_failed(struct pg_conn *c, struct store_req *req)
{
	if (c->fault == PG_FAULT_CONNECTION)
		pg_host->req_fail(req, STORE_UNAVAILABLE,
		    "the register cannot be reached; try again later");
	else
		pg_host->req_fail(req, STORE_FAILED,
		    "the register could not read this; try again later");
}

static int
op_user_add(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] = "INSERT INTO users (name, hash, role, departments, organisation,"
				  " extension, disabled, created_at, changed_at) VALUES ($1, $2, $3,"
				  " $4::jsonb, $5, $6, false, " PG_TS(7) ", " PG_TS(7) ")"
				  " ON CONFLICT (name) DO NOTHING";
	json_t *in = req->in;
	struct pg_params p;
	int64_t n;

	pg_params_init(&p);
	pg_p_jtext(&p, in, "name");
	pg_p_jtext(&p, in, "hash");
	pg_p_jtext(&p, in, "role");
	pg_p_json(&p, json_object_get(in, "departments"), "[]");
	pg_p_jtext(&p, in, "organisation");
	pg_p_jtext(&p, in, "extension");
	pg_p_jint(&p, in, "at");
	if ((n = pg_q_exec(c, sql, &p)) < 0)
		return pg_write_fail(c, req);
	if (n == 0)
		pg_host->req_fail(req, STORE_CONFLICT, "a user named '%s' exists",
		    pg_jstr(in, "name") != NULL ? pg_jstr(in, "name") : "");
	return 0;
}

/*
 * Any change (a new password, disabled, another role, departments or
 * organisation) ends every session of the user, on every node: a session
 * carries what the user was when it began. "organisation" present and null
 * takes the user's organisation away.
 */
static int
op_user_update(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] = "UPDATE users SET hash = coalesce($2, hash),"
				  " disabled = coalesce($3::boolean, disabled),"
				  " changed_at = " PG_TS(4) ", role = coalesce($5, role),"
				  " departments = coalesce($6::jsonb, departments),"
				  " organisation = CASE WHEN $7::boolean THEN $8 ELSE organisation END"
				  " WHERE name = $1";
	static const char sql_end[] = "DELETE FROM sessions WHERE user_name = $1";
	json_t *in = req->in, *disabled = json_object_get(in, "disabled");
	struct pg_params p;
	int64_t n;

	pg_params_init(&p);
	pg_p_jtext(&p, in, "name");
	pg_p_jtext(&p, in, "hash");
	if (json_is_boolean(disabled))
		pg_p_bool(&p, json_is_true(disabled));
	else
		pg_p_null(&p);
	pg_p_jint(&p, in, "at");
	pg_p_jtext(&p, in, "role");
	if (json_is_array(json_object_get(in, "departments")))
		pg_p_json(&p, json_object_get(in, "departments"), "[]");
	else
		pg_p_null(&p);
	pg_p_bool(&p, json_object_get(in, "organisation") != NULL);
	pg_p_jtext(&p, in, "organisation");
	if ((n = pg_q_exec(c, sql, &p)) < 0)
		return pg_write_fail(c, req);
	if (n == 0) {
		pg_host->req_fail(req, STORE_NOT_FOUND, "no user named '%s'",
		    pg_jstr(in, "name") != NULL ? pg_jstr(in, "name") : "");
		return 0;
	}
	pg_params_init(&p);
	pg_p_jtext(&p, in, "name");
	if ((n = pg_q_exec(c, sql_end, &p)) < 0)
		return pg_write_fail(c, req);
	req->out = json_pack("{s:s?, s:I}", "name", pg_jstr(in, "name"), "sessions_ended",
	    (json_int_t)n);
	return 0;
}

static int
op_signin_fail(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] = "INSERT INTO signin_failures (at, username, address) VALUES ("
				  PG_TS(1) ", $2, $3)";
	static const char sql_prune[] = "DELETE FROM signin_failures WHERE at < " PG_TS(1);
	json_t *in = req->in;
	struct pg_params p;

	pg_params_init(&p);
	pg_p_jint(&p, in, "at");
	pg_p_text(&p, pg_jstr(in, "name") != NULL ? pg_jstr(in, "name") : "");
	pg_p_text(&p, pg_jstr(in, "address") != NULL ? pg_jstr(in, "address") : "");
	if (pg_q_exec(c, sql, &p) < 0)
		return pg_write_fail(c, req);
	pg_params_init(&p);
	pg_p_jint(&p, in, "before");
	if (pg_q_exec(c, sql_prune, &p) < 0)
		return pg_write_fail(c, req);
	return 0;
}

/* A new session forgives the user's failed sign-ins and clears sessions that ran out. */
static int
op_session_put(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] = "INSERT INTO sessions (hash, user_name, csrf, created_at,"
				  " last_seen, expires_at) VALUES ($1, $2, $3, " PG_TS(4) ", "
				  PG_TS(4) ", " PG_TS(5) ")";
	static const char sql_forgive[] = "DELETE FROM signin_failures WHERE username = $1";
	static const char sql_prune[] = "DELETE FROM sessions WHERE expires_at < " PG_TS(1);
	json_t *in = req->in;
	struct pg_params p;

	pg_params_init(&p);
	pg_p_jtext(&p, in, "hash");
	pg_p_jtext(&p, in, "user");
	pg_p_jtext(&p, in, "csrf");
	pg_p_jint(&p, in, "at");
	pg_p_jint(&p, in, "expires_at");
	if (pg_q_exec(c, sql, &p) < 0)
		return pg_write_fail(c, req);
	pg_params_init(&p);
	pg_p_jtext(&p, in, "user");
	if (pg_q_exec(c, sql_forgive, &p) < 0)
		return pg_write_fail(c, req);
	pg_params_init(&p);
	pg_p_jint(&p, in, "at");
	if (pg_q_exec(c, sql_prune, &p) < 0)
		return pg_write_fail(c, req);
	return 0;
}

static int
op_session_touch(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] = "UPDATE sessions SET last_seen = " PG_TS(2) ", expires_at = "
				  PG_TS(3) " WHERE hash = $1 AND expires_at >= " PG_TS(2);
	struct pg_params p;
	int64_t n;

	pg_params_init(&p);
	pg_p_jtext(&p, req->in, "hash");
	pg_p_jint(&p, req->in, "at");
	pg_p_jint(&p, req->in, "expires_at");
	if ((n = pg_q_exec(c, sql, &p)) < 0)
		return pg_write_fail(c, req);
	if (n == 0)
		pg_host->req_fail(req, STORE_NOT_FOUND, "no such session");
	return 0;
}

static int
op_session_end(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] = "DELETE FROM sessions WHERE hash = $1";
	struct pg_params p;
	int64_t n;

	pg_params_init(&p);
	pg_p_jtext(&p, req->in, "hash");
	if ((n = pg_q_exec(c, sql, &p)) < 0)
		return pg_write_fail(c, req);
	if (n == 0)
		pg_host->req_fail(req, STORE_NOT_FOUND, "no such session");
	return 0;
}

int
pg_users_write(struct pg_conn *c, struct store_req *req)
{
	switch (req->op) {
	case STORE_USER_ADD:
		return op_user_add(c, req);
	case STORE_USER_UPDATE:
		return op_user_update(c, req);
	case STORE_SIGNIN_FAIL:
		return op_signin_fail(c, req);
	case STORE_SESSION_PUT:
		return op_session_put(c, req);
	case STORE_SESSION_TOUCH:
		return op_session_touch(c, req);
	case STORE_SESSION_END:
		return op_session_end(c, req);
	default:
		pg_host->req_fail(req, STORE_FAILED, "the register cannot do this");
		return 0;
	}
}

static void
op_user_list(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT " USER_COLS "FROM users u ORDER BY u.name COLLATE \"C\"";
	PGresult *r = pg_run(c, sql, NULL);
	json_t *items;

	if (r == NULL) {
		read_failed(c, req);
		return;
	}
	items = json_array();
	for (int i = 0; items != NULL && i < PQntuples(r); i++)
		json_array_append_new(items, user_row(r, i, 0, 0));
	PQclear(r);
	req->out = json_pack("{s:o}", "items", items);
}

/* How many failures match key since since, and the first one's time (ms, or null). */
static int
failures(struct pg_conn *c, const char *sql, const char *key, json_t *since, int64_t *count_r,
    json_t **first_r)
{
	struct pg_params p;
	PGresult *r;

	pg_params_init(&p);
	pg_p_text(&p, key != NULL ? key : "");
	pg_p_int(&p, json_integer_value(since));
	if ((r = pg_q(c, sql, &p)) == NULL)
		return -1;
	*count_r = PQntuples(r) == 1 ? pg_int(r, 0, 0) : 0;
	*first_r = PQntuples(r) == 1 ? pg_col_int(r, 0, 1) : json_null();
	PQclear(r);
	return 0;
}

static void
op_signin_get(struct pg_conn *c, struct store_req *req)
{
	static const char sql_user[] = "SELECT " USER_COLS "FROM users u WHERE u.name = $1";
	static const char sql_by_user[] = "SELECT count(*), " PG_MS("min(at)") " FROM"
					  " signin_failures WHERE username = $1 AND at >= "
					  PG_TS(2);
	static const char sql_by_address[] = "SELECT count(*), " PG_MS("min(at)") " FROM"
					     " signin_failures WHERE address = $1 AND at >= "
					     PG_TS(2);
	json_t *in = req->in, *since = json_object_get(in, "since");
	json_t *user = NULL, *ufirst = NULL, *afirst = NULL;
	int64_t un = 0, an = 0;
	struct pg_params p;
	PGresult *r;

	pg_params_init(&p);
	pg_p_jtext(&p, in, "name");
	if ((r = pg_q(c, sql_user, &p)) == NULL)
		goto fail;
	user = PQntuples(r) == 1 ? user_row(r, 0, 0, 1) : json_null();
	PQclear(r);
	if (failures(c, sql_by_user, pg_jstr(in, "name"), since, &un, &ufirst) < 0 ||
	    failures(c, sql_by_address, pg_jstr(in, "address"), since, &an, &afirst) < 0)
		goto fail;
	req->out = json_pack("{s:o, s:I, s:o, s:I, s:o}", "user", user, "user_failures",
	    (json_int_t)un, "user_first", ufirst, "address_failures", (json_int_t)an,
	    "address_first", afirst);
	return;
fail:
	json_decref(user);
	json_decref(ufirst);
	read_failed(c, req);
}

static void
op_session_get(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT s.csrf, " PG_MS("s.created_at") ", " PG_MS("s.last_seen")
				  ", " PG_MS("s.expires_at") ", " USER_COLS
				  "FROM sessions s JOIN users u ON u.name = s.user_name"
				  " WHERE s.hash = $1 AND s.expires_at >= " PG_TS(2)
				  " AND NOT u.disabled";
	struct pg_params p;
	PGresult *r;

	pg_params_init(&p);
	pg_p_jtext(&p, req->in, "hash");
	pg_p_jint(&p, req->in, "now");
	if ((r = pg_q(c, sql, &p)) == NULL) {
		read_failed(c, req);
		return;
	}
	if (PQntuples(r) == 1)
		req->out = json_pack("{s:o, s:o, s:o, s:o, s:o}", "csrf", pg_col_text(r, 0, 0),
		    "created_at", pg_col_int(r, 0, 1), "last_seen", pg_col_int(r, 0, 2),
		    "expires_at", pg_col_int(r, 0, 3), "user", user_row(r, 0, 4, 0));
	else
		pg_host->req_fail(req, STORE_NOT_FOUND, "no such session");
	PQclear(r);
}

void
pg_users_read(struct pg_conn *c, struct store_req *req)
{
	switch (req->op) {
	case STORE_USER_LIST:
		op_user_list(c, req);
		return;
	case STORE_SIGNIN_GET:
		op_signin_get(c, req);
		return;
	case STORE_SESSION_GET:
		op_session_get(c, req);
		return;
	default:
		pg_host->req_fail(req, STORE_FAILED, "unknown storage request");
		return;
	}
}
