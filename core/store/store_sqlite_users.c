/* store_sqlite_users.c: staff users, their sessions and the failed sign-ins that throttle. */
#include "config.h"

#include "store_sqlite.h"

/* The user columns, in the order sq_user_row reads them. */
#define SQ_USER_COLS                                                                            \
	"u.name, u.role, u.departments, u.organisation, u.extension, u.disabled, u.created_at,  \
	u.changed_at, u.hash "

/* A user in the storage shape; the hash only when with_hash. */
static json_t *
sq_user_row(sqlite3_stmt *st, int first, int with_hash)
{
	json_t *row = json_pack("{s:o, s:o, s:o, s:o, s:o, s:b, s:o, s:o}", "name",
	    sq_col_text(st, first), "role", sq_col_text(st, first + 1), "departments",
	    sq_col_json(st, first + 2), "organisation", sq_col_text(st, first + 3), "extension",
	    sq_col_text(st, first + 4), "disabled", sqlite3_column_int(st, first + 5) != 0,
	    "created_at", sq_col_ms(st, first + 6), "changed_at", sq_col_ms(st, first + 7));

	if (row != NULL && with_hash)
		json_object_set_new(row, "hash", sq_col_text(st, first + 8));
	return row;
}

void
sq_op_user_add(struct sq_conn *c, struct store_req *req)
{
	static const char sql[]
	    = "INSERT INTO users (name, hash, role, departments, organisation, extension,"
	      " disabled, created_at, changed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?7)"
	      " ON CONFLICT (name) DO NOTHING";
	json_t *in = req->in;
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	sq_bind_json_text(st, 1, in, "name");
	sq_bind_json_text(st, 2, in, "hash");
	sq_bind_json_text(st, 3, in, "role");
	sq_bind_dump(st, 4, json_object_get(in, "departments"), "[]");
	sq_bind_json_text(st, 5, in, "organisation");
	sq_bind_json_text(st, 6, in, "extension");
	sq_bind_json_int(st, 7, in, "at");
	if (sqlite3_step(st) != SQLITE_DONE) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	if (sqlite3_changes(c->db) == 0)
		store_req_fail(req, STORE_CONFLICT, "a user named '%s' exists", sq_jstr(in, "name"));
}

/*
 * Any change (a new password, disabled, another role, departments or
 * organisation) ends every session of the user, on every node: a session
 * carries what the user was when it began. "organisation" present and null
 * takes the user's organisation away.
 */
void
sq_op_user_update(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "UPDATE users SET hash = coalesce(?2, hash),"
	                          " disabled = coalesce(?3, disabled), changed_at = ?4,"
	                          " role = coalesce(?5, role), departments = coalesce(?6, departments),"
	                          " organisation = CASE WHEN ?7 THEN ?8 ELSE organisation END"
	                          " WHERE name = ?1";
	static const char sql_end[] = "DELETE FROM sessions WHERE user_name = ?1";
	json_t *in = req->in, *disabled = json_object_get(in, "disabled");
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	sq_bind_json_text(st, 1, in, "name");
	sq_bind_json_text(st, 2, in, "hash");
	if (json_is_boolean(disabled))
		sqlite3_bind_int(st, 3, json_is_true(disabled));
	sq_bind_json_int(st, 4, in, "at");
	sq_bind_json_text(st, 5, in, "role");
	if (json_is_array(json_object_get(in, "departments")))
		sq_bind_dump(st, 6, json_object_get(in, "departments"), "[]");
	sqlite3_bind_int(st, 7, json_object_get(in, "organisation") != NULL);
	sq_bind_json_text(st, 8, in, "organisation");
	if (sqlite3_step(st) != SQLITE_DONE) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	if (sqlite3_changes(c->db) == 0) {
		store_req_fail(req, STORE_NOT_FOUND, "no user named '%s'", sq_jstr(in, "name"));
		return;
	}
	if ((st = sq_stmt(c, sql_end)) == NULL) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	sq_bind_json_text(st, 1, in, "name");
	if (sqlite3_step(st) != SQLITE_DONE) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	req->out = json_pack("{s:s, s:I}", "name", sq_jstr(in, "name"), "sessions_ended",
	    (json_int_t)sqlite3_changes(c->db));
}

void
sq_op_user_list(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT " SQ_USER_COLS "FROM users u ORDER BY u.name";
	sqlite3_stmt *st = sq_stmt(c, sql);
	json_t *items = json_array();
	int rc;

	if (st == NULL || items == NULL) {
		json_decref(items);
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(items, sq_user_row(st, 0, 0));
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		json_decref(items);
		sq_step_error(c, req, rc);
		return;
	}
	req->out = json_pack("{s:o}", "items", items);
}

/* How many failures match key since since, and when the first of them was (ms, or NULL). */
static int
sq_failures(struct sq_conn *c, const char *sql, const char *key, json_int_t since,
    json_int_t *count_r, json_t **first_r)
{
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL)
		return -1;
	sq_bind_text(st, 1, key);
	sqlite3_bind_int64(st, 2, since);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		return -1;
	}
	*count_r = sqlite3_column_int64(st, 0);
	*first_r = sq_col_ms(st, 1);
	sqlite3_reset(st);
	return 0;
}

/* What a sign-in needs at once: the user (with its hash) and the failures counted so far. */
void
sq_op_signin_get(struct sq_conn *c, struct store_req *req)
{
	static const char sql_user[] = "SELECT " SQ_USER_COLS "FROM users u WHERE u.name = ?1";
	static const char sql_by_user[] = "SELECT count(*), min(at) FROM signin_failures"
	                                  " WHERE username = ?1 AND at >= ?2";
	static const char sql_by_address[] = "SELECT count(*), min(at) FROM signin_failures"
	                                     " WHERE address = ?1 AND at >= ?2";
	json_t *in = req->in, *user = NULL, *ufirst = NULL, *afirst = NULL;
	json_int_t since = json_integer_value(json_object_get(in, "since")), un = 0, an = 0;
	sqlite3_stmt *st = sq_stmt(c, sql_user);
	int rc;

	if (st == NULL)
		goto fail;
	sq_bind_json_text(st, 1, in, "name");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		user = sq_user_row(st, 0, 1);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		goto fail;
	if (sq_failures(c, sql_by_user, sq_jstr(in, "name"), since, &un, &ufirst) < 0 ||
	    sq_failures(c, sql_by_address, sq_jstr(in, "address"), since, &an, &afirst) < 0)
		goto fail;
	req->out = json_pack("{s:o, s:I, s:o, s:I, s:o}", "user", user != NULL ? user : json_null(),
	    "user_failures", un, "user_first", ufirst, "address_failures", an, "address_first",
	    afirst);
	return;
fail:
	json_decref(user);
	json_decref(ufirst);
	json_decref(afirst);
	sq_step_error(c, req, SQLITE_ERROR);
}

/* Records a failed sign-in; failures older than the window go, so the table stays small. */
void
sq_op_signin_fail(struct sq_conn *c, struct store_req *req)
{
	static const char sql[]
	    = "INSERT INTO signin_failures (at, username, address) VALUES (?1, ?2, ?3)";
	static const char sql_prune[] = "DELETE FROM signin_failures WHERE at < ?1";
	json_t *in = req->in;
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL)
		goto fail;
	sq_bind_json_int(st, 1, in, "at");
	sq_bind_json_text(st, 2, in, "name");
	sq_bind_json_text(st, 3, in, "address");
	if (sqlite3_step(st) != SQLITE_DONE || (st = sq_stmt(c, sql_prune)) == NULL)
		goto fail;
	sq_bind_json_int(st, 1, in, "before");
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail;
	return;
fail:
	sq_step_error(c, req, SQLITE_ERROR);
}

/*
 * A new session: the user's failed sign-ins are forgiven, and sessions that
 * ran out (on any node) are cleared while the writer is here anyway.
 */
void
sq_op_session_put(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "INSERT INTO sessions (hash, user_name, csrf, created_at,"
	                          " last_seen, expires_at) VALUES (?1, ?2, ?3, ?4, ?4, ?5)";
	static const char sql_forgive[] = "DELETE FROM signin_failures WHERE username = ?1";
	static const char sql_prune[] = "DELETE FROM sessions WHERE expires_at < ?1";
	json_t *in = req->in;
	sqlite3_stmt *st = sq_stmt(c, sql);
	int rc;

	if (st == NULL)
		goto fail;
	sq_bind_json_text(st, 1, in, "hash");
	sq_bind_json_text(st, 2, in, "user");
	sq_bind_json_text(st, 3, in, "csrf");
	sq_bind_json_int(st, 4, in, "at");
	sq_bind_json_int(st, 5, in, "expires_at");
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		sq_step_error(c, req, rc == SQLITE_CONSTRAINT ? rc : SQLITE_ERROR);
		return;
	}
	if ((st = sq_stmt(c, sql_forgive)) == NULL)
		goto fail;
	sq_bind_json_text(st, 1, in, "user");
	if (sqlite3_step(st) != SQLITE_DONE || (st = sq_stmt(c, sql_prune)) == NULL)
		goto fail;
	sq_bind_json_int(st, 1, in, "at");
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail;
	return;
fail:
	sq_step_error(c, req, SQLITE_ERROR);
}

/* A live session with its user: NOT_FOUND when it ended, ran out or its user is disabled. */
void
sq_op_session_get(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT s.csrf, s.created_at, s.last_seen, s.expires_at, "
	    SQ_USER_COLS "FROM sessions s JOIN users u ON u.name = s.user_name"
	                 " WHERE s.hash = ?1 AND s.expires_at >= ?2 AND u.disabled = 0";
	json_t *in = req->in;
	sqlite3_stmt *st = sq_stmt(c, sql);
	int rc;

	if (st == NULL) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	sq_bind_json_text(st, 1, in, "hash");
	sq_bind_json_int(st, 2, in, "now");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		req->out = json_pack("{s:o, s:o, s:o, s:o, s:o}", "csrf", sq_col_text(st, 0),
		    "created_at", sq_col_ms(st, 1), "last_seen", sq_col_ms(st, 2), "expires_at",
		    sq_col_ms(st, 3), "user", sq_user_row(st, 4, 0));
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		store_req_fail(req, STORE_NOT_FOUND, "no such session");
	else if (rc != SQLITE_ROW)
		sq_step_error(c, req, rc);
}

void
sq_op_session_touch(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "UPDATE sessions SET last_seen = ?2, expires_at = ?3"
	                          " WHERE hash = ?1 AND expires_at >= ?2";
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	sq_bind_json_text(st, 1, req->in, "hash");
	sq_bind_json_int(st, 2, req->in, "at");
	sq_bind_json_int(st, 3, req->in, "expires_at");
	if (sqlite3_step(st) != SQLITE_DONE) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	if (sqlite3_changes(c->db) == 0)
		store_req_fail(req, STORE_NOT_FOUND, "no such session");
}

void
sq_op_session_end(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "DELETE FROM sessions WHERE hash = ?1";
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	sq_bind_json_text(st, 1, req->in, "hash");
	if (sqlite3_step(st) != SQLITE_DONE) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	if (sqlite3_changes(c->db) == 0)
		store_req_fail(req, STORE_NOT_FOUND, "no such session");
}
