/* store_sqlite_timers.c: durable timers: added with a write, fired, and what is due. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "store_sqlite.h"

int
sq_timer_add(struct sq_conn *c, sqlite3_int64 contact_id, sqlite3_int64 task_id, const char *kind,
    sqlite3_int64 due_at, json_t *payload, const char *rule, sqlite3_int64 now,
    sqlite3_int64 *next_r)
{
	static const char sql[] = "INSERT INTO timers (contact_id, task_id, kind, due_at, payload,"
	                          " rule, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, contact_id);
	if (task_id != 0)
		sqlite3_bind_int64(st, 2, task_id);
	sq_bind_text(st, 3, kind);
	sqlite3_bind_int64(st, 4, due_at);
	/* A payload register_apply wrote out as text already is bound as it is. */
	if (json_is_string(payload))
		sq_bind_text(st, 5, json_string_value(payload));
	else
		sq_bind_dump(st, 5, payload, "{}");
	sq_bind_text(st, 6, rule);
	sqlite3_bind_int64(st, 7, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		return -1;
	if (*next_r == 0 || due_at < *next_r)
		*next_r = due_at;
	return 0;
}

/*
 * A fired timer's action is written only while its timer is pending
 * (docs/storage.md, timer_done): else the write is refused with CONFLICT,
 * out {"status": the timer's}, and stores nothing. 1 pending, else 0 with
 * req failed.
 */
int
sq_timer_still_pending(struct sq_conn *c, struct store_req *req, sqlite3_int64 timer_id)
{
	static const char sql[] = "SELECT status FROM timers WHERE id = ?1";
	sqlite3_stmt *st = sq_stmt(c, sql);
	char status[16] = "";
	int rc;

	if (st == NULL) {
		sq_step_error(c, req, SQLITE_ERROR);
		return 0;
	}
	sqlite3_bind_int64(st, 1, timer_id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		snprintf(status, sizeof(status), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sq_step_error(c, req, rc);
		return 0;
	}
	if (strcmp(status, "pending") == 0)
		return 1;
	store_req_fail(req, STORE_CONFLICT, "this timer has been acted on already");
	req->out = json_pack("{s:s}", "status", status[0] != '\0' ? status : "gone");
	return 0;
}

/*
 * Marks a timer done. With acted (the write holds what its firing did) a
 * timer still pending makes its events: timer.fired, and task.due for the
 * deadline of a task still open.
 */
int
sq_timer_done(struct sq_conn *c, sqlite3_int64 timer_id, sqlite3_int64 now, int acted)
{
	static const char sql_row[]
	    = "SELECT t.contact_id, t.task_id, t.kind, k.status, k.department"
	      " FROM timers t LEFT JOIN tasks k ON k.id = t.task_id"
	      " WHERE t.id = ?1 AND t.status = 'pending'";
	static const char sql[] = "UPDATE timers SET status = 'done', done_at = ?2 WHERE id = ?1";
	sqlite3_int64 contact_id = 0, task_id = 0;
	char kind[32] = "", task_status[16] = "", dep[128] = "", esc[64];
	sqlite3_stmt *st = sq_stmt(c, sql_row);
	int pending = 0, has_dep = 0;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, timer_id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		pending = 1;
		contact_id = sqlite3_column_int64(st, 0);
		task_id = sqlite3_column_int64(st, 1);
		snprintf(kind, sizeof(kind), "%s", (const char *)sqlite3_column_text(st, 2));
		if (sqlite3_column_type(st, 3) != SQLITE_NULL)
			snprintf(task_status, sizeof(task_status), "%s",
			    (const char *)sqlite3_column_text(st, 3));
		if ((has_dep = sqlite3_column_type(st, 4) != SQLITE_NULL))
			snprintf(dep, sizeof(dep), "%s", (const char *)sqlite3_column_text(st, 4));
	}
	sqlite3_reset(st);
	if ((st = sq_stmt(c, sql)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, timer_id);
	sqlite3_bind_int64(st, 2, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		return -1;
	if (!pending || !acted)
		return 0;
	if (sq_event(c, LOKET_EVENT_TIMER_FIRED, now, contact_id, task_id,
	        "{\"timer\":%lld,\"kind\":\"%s\"}", (long long)timer_id,
	        sq_event_str(esc, sizeof(esc), kind))
	    < 0)
		return -1;
	if (strcmp(kind, "overdue") == 0 && strcmp(task_status, "open") == 0
	    && sq_task_event(
	           c, LOKET_EVENT_TASK_DUE, now, contact_id, task_id, has_dep ? dep : NULL)
	        < 0)
		return -1;
	return 0;
}

void
sq_op_timer_done(struct sq_conn *c, struct store_req *req)
{
	/* A timer closed without action (its contact moved on): no event to tell. */
	if (sq_timer_done(c, json_integer_value(json_object_get(req->in, "id")),
	        json_integer_value(json_object_get(req->in, "at")), 0)
	    < 0)
		sq_step_error(c, req, SQLITE_ERROR);
}

/* Pending timers due by now, with what their firing needs to know of the contact. */
void
sq_op_timers_due(struct sq_conn *c, struct store_req *req)
{
	static const char sql[]
	    = "SELECT t.id, t.contact_id, t.task_id, t.kind, t.due_at, t.payload,"
	      " t.rule, c.status, k.status FROM timers t"
	      " JOIN contacts c ON c.id = t.contact_id"
	      " LEFT JOIN tasks k ON k.id = t.task_id"
	      " WHERE t.status = 'pending' AND t.due_at <= ?1 ORDER BY t.due_at"
	      " LIMIT ?2";
	sqlite3_stmt *st = sq_stmt(c, sql);
	json_t *items = json_array();

	if (st == NULL) {
		json_decref(items);
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	sqlite3_bind_int64(st, 1, json_integer_value(json_object_get(req->in, "now")));
	sqlite3_bind_int64(st, 2, json_integer_value(json_object_get(req->in, "limit")));
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(items,
		    json_pack("{s:I, s:I, s:o, s:o, s:I, s:o, s:o, s:o, s:o}", "id",
		        (json_int_t)sqlite3_column_int64(st, 0), "contact_id",
		        (json_int_t)sqlite3_column_int64(st, 1), "task_id",
		        sqlite3_column_type(st, 2) == SQLITE_NULL
		            ? json_null()
		            : json_integer(sqlite3_column_int64(st, 2)),
		        "kind", sq_col_text(st, 3), "due_at",
		        (json_int_t)sqlite3_column_int64(st, 4), "payload", sq_col_json(st, 5),
		        "rule", sq_col_text(st, 6), "contact_status", sq_col_text(st, 7),
		        "task_status", sq_col_text(st, 8)));
	sqlite3_reset(st);
	req->out = json_pack("{s:o}", "items", items);
}

void
sq_op_timers_next(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT min(due_at) FROM timers WHERE status = 'pending'";

	sq_min_pending(c, req, sql, "due_at");
}
