/* store_sqlite_read.c: reads of contacts, tasks, counts and events, filtered by scope. */
#include "config.h"

#include <stdio.h>

#include "store_sqlite.h"

void
sq_op_contact_get(struct sq_conn *c, struct store_req *req)
{
	sqlite3_int64 id = json_integer_value(json_object_get(req->in, "id"));
	struct sq_contact_state cs;

	if (sq_contact_open(c, req, id, NULL, "this token may not read that contact", &cs) < 0)
		return;
	if ((req->out = sq_contact_load(c, id, 1)) == NULL)
		sq_step_error(c, req, SQLITE_ERROR);
}

static void
list_run(struct sq_conn *c, struct store_req *req, sqlite3_stmt *st, int limit)
{
	json_t *items = json_array();
	sqlite3_int64 last = 0;
	int n = 0, more = 0, rc;
	char cursor[32];

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == limit) {
			more = 1;
			break;
		}
		json_array_append_new(items, sq_contact_row(st));
		last = sqlite3_column_int64(st, 0);
		n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		json_decref(items);
		sq_step_error(c, req, rc);
		return;
	}
	snprintf(cursor, sizeof(cursor), "%lld", (long long)last);
	req->out = json_pack(
	    "{s:o, s:o}", "items", items, "next_cursor", more ? json_string(cursor) : json_null());
}

void
sq_op_contact_list(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT " SQ_CONTACT_COLS
	                          "FROM contacts c LEFT JOIN parties p ON p.id = c.party_id WHERE"
	                          " (?1 IS NULL OR c.status = ?1) AND (?2 IS NULL OR c.line = ?2)"
	                          " AND (?3 IS NULL OR c.channel = ?3)"
	                          " AND (?4 IS NULL OR c.department = ?4)"
	                          " AND (?5 IS NULL OR c.received_at >= ?5)"
	                          " AND (?6 IS NULL OR c.received_at < ?6)"
	                          " AND (?7 IS NULL OR c.id < ?7)" SQ_SCOPE_SQL(
	                              8, 9, 10) " AND (?12 IS NULL OR c.party_id = ?12)"
	                                        " ORDER BY c.id DESC LIMIT ?11";
	json_t *in = req->in;
	int limit = (int)json_integer_value(json_object_get(in, "limit"));
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	sq_bind_json_text(st, 1, in, "status");
	sq_bind_json_int(st, 2, in, "line");
	sq_bind_json_text(st, 3, in, "channel");
	sq_bind_json_text(st, 4, in, "department");
	sq_bind_json_int(st, 5, in, "since");
	sq_bind_json_int(st, 6, in, "until");
	sq_bind_json_int(st, 7, in, "cursor");
	sq_bind_scope(st, 8, json_object_get(in, "scope"));
	sqlite3_bind_int(st, 11, limit + 1);
	sq_bind_json_int(st, 12, in, "party");
	list_run(c, req, st, limit);
}

void
sq_op_party_contacts(struct sq_conn *c, struct store_req *req)
{
	static const char sql[]
	    = "SELECT " SQ_CONTACT_COLS "FROM contacts c LEFT JOIN parties p ON p.id = c.party_id"
	      " WHERE c.party_id = ?1 AND (?2 IS NULL OR c.id < ?2)" SQ_SCOPE_SQL(
	          3, 4, 5) " ORDER BY c.id DESC LIMIT ?6";
	json_t *in = req->in;
	sqlite3_int64 id = json_integer_value(json_object_get(in, "id"));
	int limit = (int)json_integer_value(json_object_get(in, "limit"));
	struct sq_party_row p;
	sqlite3_stmt *st;

	/* The history of a party this token may not see is as closed as the party. */
	if (sq_party_open(c, req, id, json_object_get(in, "scope"), &p) < 0)
		return;
	if ((st = sq_stmt(c, sql)) == NULL) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	sqlite3_bind_int64(st, 1, id);
	sq_bind_json_int(st, 2, in, "cursor");
	sq_bind_scope(st, 3, json_object_get(in, "scope"));
	sqlite3_bind_int(st, 6, limit + 1);
	list_run(c, req, st, limit);
}

void
sq_op_task_list(struct sq_conn *c, struct store_req *req)
{
	static const char sql[]
	    = "SELECT " SQ_TASK_COLS "FROM tasks t JOIN contacts c ON c.id = t.contact_id WHERE"
	      " (?1 IS NULL OR t.department = ?1) AND (?2 IS NULL OR t.status = ?2)"
	      " AND (?3 IS NULL OR t.id < ?3)" SQ_SCOPE_SQL(4, 5, 6) " ORDER BY t.id DESC LIMIT ?7";
	json_t *in = req->in, *items = json_array();
	int limit = (int)json_integer_value(json_object_get(in, "limit")), n = 0, more = 0;
	sqlite3_int64 last = 0;
	sqlite3_stmt *st = sq_stmt(c, sql);
	char cursor[32];

	if (st == NULL) {
		json_decref(items);
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	sq_bind_json_text(st, 1, in, "department");
	sq_bind_json_text(st, 2, in, "status");
	sq_bind_json_int(st, 3, in, "cursor");
	sq_bind_scope(st, 4, json_object_get(in, "scope"));
	sqlite3_bind_int(st, 7, limit + 1);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n == limit) {
			more = 1;
			break;
		}
		last = sqlite3_column_int64(st, 0);
		json_array_append_new(items, sq_task_row(st));
		n++;
	}
	sqlite3_reset(st);
	snprintf(cursor, sizeof(cursor), "%lld", (long long)last);
	req->out = json_pack(
	    "{s:o, s:o}", "items", items, "next_cursor", more ? json_string(cursor) : json_null());
}

void
sq_op_counts(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT channel, status, n FROM counts";
	sqlite3_stmt *st = sq_stmt(c, sql);
	json_t *items = json_array();

	if (st == NULL) {
		json_decref(items);
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(items,
		    json_pack("{s:o, s:o, s:I}", "channel", sq_col_text(st, 0), "status",
		        sq_col_text(st, 1), "n", (json_int_t)sqlite3_column_int64(st, 2)));
	sqlite3_reset(st);
	req->out = json_pack("{s:o}", "items", items);
}

/*
 * Events after the id a reader saw last, oldest first, at most limit: what
 * a client that lost its stream (or a node that was down) catches up with.
 */
void
sq_op_events_after(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT id, at, kind, contact_id, task_id, payload FROM events"
	                          " WHERE id > ?1 ORDER BY id LIMIT ?2";
	static const char sql_last[] = "SELECT coalesce(max(id), 0) FROM events";
	sqlite3_stmt *st = sq_stmt(c, sql);
	sqlite3_int64 last = 0;
	json_int_t limit = json_integer_value(json_object_get(req->in, "limit"));
	json_t *items = json_array();

	if (st == NULL || items == NULL) {
		json_decref(items);
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	sqlite3_bind_int64(st, 1, json_integer_value(json_object_get(req->in, "after")));
	sqlite3_bind_int64(st, 2, limit > 0 && limit <= 1000 ? limit : 100);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(items,
		    json_pack("{s:I, s:I, s:o, s:I, s:I, s:o}", "id",
		        (json_int_t)sqlite3_column_int64(st, 0), "at",
		        (json_int_t)sqlite3_column_int64(st, 1), "kind", sq_col_text(st, 2),
		        "contact_id", (json_int_t)sqlite3_column_int64(st, 3), "task_id",
		        (json_int_t)sqlite3_column_int64(st, 4), "payload", sq_col_json(st, 5)));
	sqlite3_reset(st);
	/* The newest id: a reader that claims to have seen more has another register's ids. */
	if ((st = sq_stmt(c, sql_last)) == NULL) {
		json_decref(items);
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		last = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	req->out = json_pack("{s:o, s:I}", "items", items, "last", (json_int_t)last);
}

/*
 * What a citizen may know of one contact (the e-loket's status page): the
 * contact by its reference, with its tasks, its party's addresses and the
 * last staff reply that went out. Whether the citizen may see it is the
 * core's to decide (plugin_api.c): this only reads.
 */
void
sq_op_contact_status(struct sq_conn *c, struct store_req *req)
{
	static const char sql_id[] = "SELECT id, party_id FROM contacts WHERE reference = ?1";
	/*
	 * A staff message's outbox row points at its message row and is not
	 * automatic; a rule's reply (an acknowledgement) is automatic and its
	 * message is written when it is sent, with no outbox row pointing at it.
	 */
	static const char sql_reply[]
	    = "SELECT m.body, o.sent_at, m.recipients FROM messages m"
	      " JOIN outbox o ON o.message_row = m.id"
	      " WHERE m.contact_id = ?1 AND m.direction = 'out' AND m.status = 'sent'"
	      " AND o.status = 'sent' AND o.automatic = 0 ORDER BY o.sent_at DESC, m.id DESC"
	      " LIMIT " STORE_STATUS_REPLIES_STR;
	const char *reference = json_string_value(json_object_get(req->in, "reference"));
	sqlite3_int64 id, party_id = 0;
	sqlite3_stmt *st = sq_stmt(c, sql_id);
	json_t *out, *party = NULL, *replies = json_array();

	if (replies == NULL || st == NULL) {
		json_decref(replies);
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	sq_bind_text(st, 1, reference != NULL ? reference : "");
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		json_decref(replies);
		store_req_fail(req, STORE_NOT_FOUND, "no such contact");
		return;
	}
	id = sqlite3_column_int64(st, 0);
	if (sqlite3_column_type(st, 1) != SQLITE_NULL)
		party_id = sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	if ((out = sq_contact_load(c, id, 1)) == NULL) {
		json_decref(replies);
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	if (party_id != 0)
		party = sq_party_load(c, party_id);
	json_object_set_new(out, "emails",
	    party != NULL ? json_incref(json_object_get(party, "emails")) : json_array());
	json_object_set_new(out, "phones",
	    party != NULL ? json_incref(json_object_get(party, "phones")) : json_array());
	json_decref(party);
	if ((st = sq_stmt(c, sql_reply)) == NULL) {
		json_decref(out);
		json_decref(replies);
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(replies, json_pack("{s:o, s:o, s:o}", "body",
		    sq_col_text(st, 0), "sent_at", sq_col_ms(st, 1), "recipients", sq_col_json(st, 2)));
	sqlite3_reset(st);
	json_object_set_new(out, "replies", replies);
	req->out = out;
}
