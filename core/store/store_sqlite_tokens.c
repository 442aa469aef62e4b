/* store_sqlite_tokens.c: API tokens and the audit trail of what they did. */
#include "config.h"

#include "store_sqlite.h"

void
sq_op_token_put(struct sq_conn *c, struct store_req *req)
{
	static const char sql[]
	    = "INSERT INTO tokens (name, hash, role, departments, organisation,"
	      " created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO"
	      " UPDATE SET hash = ?2, role = ?3, departments = ?4,"
	      " organisation = ?5, created_at = ?6, revoked_at = NULL"
	      " WHERE revoked_at IS NOT NULL";
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
	sq_bind_json_int(st, 6, in, "created_at");
	if (sqlite3_step(st) != SQLITE_DONE) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	if (sqlite3_changes(c->db) == 0)
		store_req_fail(req, STORE_CONFLICT, "a token named '%s' exists; revoke it first",
		    sq_jstr(in, "name"));
}

void
sq_op_token_revoke(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND"
	                          " revoked_at IS NULL";
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	sq_bind_json_text(st, 1, req->in, "name");
	sq_bind_json_int(st, 2, req->in, "at");
	if (sqlite3_step(st) != SQLITE_DONE) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	if (sqlite3_changes(c->db) == 0)
		store_req_fail(
		    req, STORE_NOT_FOUND, "no active token named '%s'", sq_jstr(req->in, "name"));
}

void
sq_op_audit(struct sq_conn *c, struct store_req *req)
{
	static const char sql[]
	    = "INSERT INTO audit (at, token, action, object) VALUES (?1, ?2, ?3, ?4)";
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	json_t *row;
	size_t i;

	json_array_foreach(json_object_get(req->in, "rows"), i, row)
	{
		if (i > 0 && (st = sq_stmt(c, sql)) == NULL)
			break;
		sq_bind_json_int(st, 1, row, "at");
		sq_bind_json_text(st, 2, row, "token");
		sq_bind_json_text(st, 3, row, "action");
		sq_bind_json_text(st, 4, row, "object");
		if (sqlite3_step(st) != SQLITE_DONE) {
			sq_step_error(c, req, SQLITE_ERROR);
			return;
		}
	}
}

void
sq_op_token_list(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT name, hash, role, departments, organisation, created_at,"
	                          " revoked_at FROM tokens ORDER BY name";
	sqlite3_stmt *st = sq_stmt(c, sql);
	json_t *items = json_array();

	if (st == NULL) {
		json_decref(items);
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(items,
		    json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "name", sq_col_text(st, 0),
		        "hash", sq_col_text(st, 1), "role", sq_col_text(st, 2), "departments",
		        sq_col_json(st, 3), "organisation", sq_col_text(st, 4), "created_at",
		        sq_col_time(st, 5), "revoked_at", sq_col_time(st, 6)));
	sqlite3_reset(st);
	req->out = json_pack("{s:o}", "items", items);
}
