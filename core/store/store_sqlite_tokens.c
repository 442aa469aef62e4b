/* store_sqlite_tokens.c: API tokens and the audit trail of what they did. */
#include "config.h"

#include "log.h"
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

/*
 * The audit trail, newest first, for the data-protection officer. Every
 * filter is one the indexes of 10 -> 11 answer: actor (token, id), action
 * (action, id), an object (object, id), a time range (at). A party's rows
 * are found by object: "party:N", "party:N ..." (a change names the fields
 * after the id) and "contact:ID" for each of the party's contacts
 * (contacts_party), gathered as ids first so that the rest of the filter and
 * the order run over those rows alone.
 */
void
sq_op_audit_list(struct sq_conn *c, struct store_req *req)
{
	json_t *in = req->in, *items = NULL;
	json_int_t limit = json_integer_value(json_object_get(in, "limit"));
	json_int_t party = json_integer_value(json_object_get(in, "party"));
	json_int_t contact = json_integer_value(json_object_get(in, "contact"));
	char sql[1024], obj[48], lo[48], hi[48], cursor[32];
	sqlite3_stmt *st = NULL;
	sqlite3_int64 last = 0;
	int n = 0, more = 0, rc;

	snprintf(sql, sizeof(sql),
	    "SELECT id, at, token, action, object FROM audit WHERE 1%s%s%s%s%s%s%s"
	    " ORDER BY id DESC LIMIT :limit",
	    json_is_string(json_object_get(in, "actor")) ? " AND token = :actor" : "",
	    json_is_string(json_object_get(in, "action")) ? " AND action = :action" : "",
	    contact > 0 ? " AND object = :contact" : "",
	    party > 0 ? " AND id IN (SELECT id FROM audit WHERE object = :pobj"
	                " UNION ALL SELECT id FROM audit WHERE object > :plo AND object < :phi"
	                " UNION ALL SELECT a.id FROM contacts k JOIN audit a"
	                " ON a.object = 'contact:' || k.id WHERE k.party_id = :party)"
	              : "",
	    json_is_integer(json_object_get(in, "from")) ? " AND at >= :from" : "",
	    json_is_integer(json_object_get(in, "to")) ? " AND at <= :to" : "",
	    json_is_integer(json_object_get(in, "cursor")) ? " AND id < :cursor" : "");
	/* Made for this filter, not cached: there are too many combinations to keep. */
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		log_errorx("store", "cannot prepare the audit list: %s", sqlite3_errmsg(c->db));
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":limit"), limit + 1);
	sq_bind_json_text(st, sqlite3_bind_parameter_index(st, ":actor"), in, "actor");
	sq_bind_json_text(st, sqlite3_bind_parameter_index(st, ":action"), in, "action");
	snprintf(obj, sizeof(obj), "contact:%lld", (long long)contact);
	sq_bind_text(st, sqlite3_bind_parameter_index(st, ":contact"), obj);
	snprintf(obj, sizeof(obj), "party:%lld", (long long)party);
	/* "party:N " up to "party:N!": what follows N after a space, never party:N0. */
	snprintf(lo, sizeof(lo), "party:%lld ", (long long)party);
	snprintf(hi, sizeof(hi), "party:%lld!", (long long)party);
	if (party > 0) {
		sq_bind_text(st, sqlite3_bind_parameter_index(st, ":pobj"), obj);
		sq_bind_text(st, sqlite3_bind_parameter_index(st, ":plo"), lo);
		sq_bind_text(st, sqlite3_bind_parameter_index(st, ":phi"), hi);
		sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":party"), party);
	}
	sq_bind_json_int(st, sqlite3_bind_parameter_index(st, ":from"), in, "from");
	sq_bind_json_int(st, sqlite3_bind_parameter_index(st, ":to"), in, "to");
	sq_bind_json_int(st, sqlite3_bind_parameter_index(st, ":cursor"), in, "cursor");
	if ((items = json_array()) == NULL)
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == limit) {
			more = 1;
			break;
		}
		json_array_append_new(items,
		    json_pack("{s:I, s:o, s:o, s:o, s:o}", "id",
			(json_int_t)sqlite3_column_int64(st, 0), "at", sq_col_ms(st, 1), "actor",
			sq_col_text(st, 2), "action", sq_col_text(st, 3), "object",
			sq_col_text(st, 4)));
		last = sqlite3_column_int64(st, 0);
		n++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	snprintf(cursor, sizeof(cursor), "%lld", (long long)last);
	req->out = json_pack(
	    "{s:o, s:o}", "items", items, "next_cursor", more ? json_string(cursor) : json_null());
	return;
fail:
	sqlite3_finalize(st);
	json_decref(items);
	sq_step_error(c, req, SQLITE_ERROR);
}
