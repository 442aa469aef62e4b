/* store_sqlite_write.c: the writes of contacts and their tasks: create, update, task done. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_sqlite.h"
#include "util.h"

/*
 * References come from a counter per year in the register. Within a batch
 * the counter is kept in memory and written once, before COMMIT; a write
 * rolled back leaves a gap, never a number handed out twice.
 */
int
sq_refseq_flush(struct sq_conn *c)
{
	static const char sql[] = "INSERT INTO refseq (year, last) VALUES (?1, ?2) "
	                          "ON CONFLICT (year) DO UPDATE SET last = ?2";
	sqlite3_stmt *st;

	if (c->ref_year == 0 || !c->ref_dirty)
		return 0;
	if ((st = sq_stmt(c, sql)) == NULL)
		return -1;
	sqlite3_bind_int(st, 1, c->ref_year);
	sqlite3_bind_int64(st, 2, c->ref_last);
	c->ref_dirty = 0;
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

static int
reference_next(struct sq_conn *c, int year, char *buf, size_t len)
{
	static const char sql[] = "SELECT last FROM refseq WHERE year = ?1";
	sqlite3_stmt *st;

	if (c->ref_year != year) {
		if (sq_refseq_flush(c) < 0 || (st = sq_stmt(c, sql)) == NULL)
			return -1;
		sqlite3_bind_int(st, 1, year);
		c->ref_last = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
		sqlite3_reset(st);
		c->ref_year = year;
	}
	c->ref_last++;
	c->ref_dirty = 1;
	snprintf(buf, len, "%04d-%06lld", year, (long long)c->ref_last);
	return 0;
}

static int task_create(struct sq_conn *c, sqlite3_int64 contact_id, json_t *task, sqlite3_int64 now,
    const char *actor);

static int rule_rows(struct sq_conn *c, sqlite3_int64 id, json_t *in, sqlite3_int64 now,
    const char *channel, sqlite3_int64 *next_r);

/* A hand-over to the second line, with a timer for its deadline when it has one. */
static int
task_with_deadline(struct sq_conn *c, sqlite3_int64 contact_id, json_t *task, sqlite3_int64 now,
    const char *actor, sqlite3_int64 *next_r)
{
	sqlite3_int64 task_id;

	if (task_create(c, contact_id, task, now, actor) < 0)
		return -1;
	task_id = sqlite3_last_insert_rowid(c->db);
	if (sq_task_event(
	        c, LOKET_EVENT_TASK_CREATED, now, contact_id, task_id, sq_jstr(task, "department"))
	    < 0)
		return -1;
	if (!json_is_integer(json_object_get(task, "due_at")))
		return 0;
	return sq_timer_add(c, contact_id, task_id, "overdue",
	    json_integer_value(json_object_get(task, "due_at")), NULL, NULL, now, next_r);
}

/*
 * What rules decided besides the fields, written with the contact: history
 * rows naming each rule, reminders, replies for the outbox, and the
 * escalation task (with its deadline timer) or the resolution.
 */
static int
contact_extras(struct sq_conn *c, sqlite3_int64 id, json_t *in, sqlite3_int64 now,
    const char *actor, sqlite3_int64 *next_r)
{
	json_t *task = json_object_get(in, "task");

	if (rule_rows(c, id, in, now, sq_jstr(in, "channel"), next_r) < 0)
		return -1;
	if (task != NULL) {
		const char *by = sq_jstr(task, "rule") != NULL ? sq_jstr(task, "rule") : actor;
		char who[300];

		snprintf(
		    who, sizeof(who), "%s%s", sq_jstr(task, "rule") != NULL ? "rule:" : "", by);
		if (task_with_deadline(c, id, task, now, who, next_r) < 0
		    || sq_history_add(c, id, now, who, "escalate", "open", "escalated",
		           sq_jstr(task, "reason"))
		        < 0)
			return -1;
	} else if (strcmp(sq_jstr(in, "status"), "resolved") == 0) {
		if (sq_history_add(c, id, now, actor, "resolve", "open", "resolved", NULL) < 0)
			return -1;
	}
	return 0;
}

static json_t *
party_name(struct sq_conn *c, sqlite3_int64 party_id)
{
	static const char sql[] = "SELECT name FROM parties WHERE id = ?1";
	sqlite3_stmt *st = sq_stmt(c, sql);
	json_t *name = NULL;

	if (st == NULL)
		return json_null();
	sqlite3_bind_int64(st, 1, party_id);
	if (sqlite3_step(st) == SQLITE_ROW)
		name = sq_col_text(st, 0);
	sqlite3_reset(st);
	return name != NULL ? name : json_null();
}

/*
 * An Idempotency-Key (in "idempotency", its rows in "keys") seen before with
 * another body: the key names a contact, the key-with-this-body row does not.
 * Answers 422 and returns 1; 0 to go on (a replay is found as a duplicate).
 */
static int
idempotency_conflict(struct sq_conn *c, struct store_req *req)
{
	json_t *idem = json_object_get(req->in, "idempotency"), *k;
	sqlite3_int64 seen, same = 0;

	if (idem == NULL)
		return 0;
	k = json_pack("[O]", json_object_get(idem, "key"));
	seen = sq_keys_find(c, k);
	json_decref(k);
	if (seen > 0) {
		k = json_pack("[O]", json_object_get(idem, "body"));
		same = sq_keys_find(c, k);
		json_decref(k);
	}
	if (seen < 0 || same < 0) {
		sq_step_error(c, req, SQLITE_ERROR);
		return 1;
	}
	if (seen == 0 || same > 0)
		return 0;
	store_req_fail(req, STORE_INVALID,
	    "Idempotency-Key: this key was used before with another request "
	    "body (contact %lld); send a new key for a new contact",
	    (long long)seen);
	return 1;
}

void
sq_op_contact_create(struct sq_conn *c, struct store_req *req)
{
	static const char sql[]
	    = "INSERT INTO contacts (reference, channel, direction, received_at, updated_at, "
	      "party_id,"
	      " subject, body, product, department, organisation, line, status, priority, tags,"
	      " language, confidential, location, meta, created_by, answer, assignee, handled_at,"
	      " reply_to, party_conflict)"
	      " VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,"
	      " ?17, ?18, ?19, ?20, ?21, CASE WHEN ?22 THEN ?4 END, ?23, ?24)";
	json_t *in = req->in, *party = json_object_get(in, "party");
	sqlite3_int64 now = json_integer_value(json_object_get(in, "received_at")), party_id = 0,
	              id, next_timer = 0;
	/* The address the contact came in with: replies without an explicit "to" go there. */
	const char *reply_to
	    = sq_jstr(party, "email") != NULL ? sq_jstr(party, "email") : sq_jstr(party, "phone");
	char reference[32], *conflict = NULL;
	sqlite3_stmt *st;
	int rc;

	if (idempotency_conflict(c, req))
		return;
	if (sq_create_duplicate(c, req)) {
		/* A client retrying with its Idempotency-Key hears what its first try made. */
		if (json_object_get(in, "idempotency") != NULL && req->result == STORE_OK)
			json_object_set_new(req->out, "contact",
			    sq_contact_load(
			        c, json_integer_value(json_object_get(req->out, "id")), 0));
		return;
	}
	if (sq_party_match(c, party, now, &party_id, &conflict) < 0
	    || reference_next(c, util_time_year(now), reference, sizeof(reference)) < 0
	    || (st = sq_stmt(c, sql)) == NULL) {
		free(conflict);
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	sq_bind_text(st, 1, reference);
	sq_bind_json_text(st, 2, in, "channel");
	sq_bind_json_text(st, 3, in, "direction");
	sqlite3_bind_int64(st, 4, now);
	if (party_id != 0)
		sqlite3_bind_int64(st, 5, party_id);
	sq_bind_json_text(st, 6, in, "subject");
	sq_bind_json_text(st, 7, in, "body");
	sq_bind_json_text(st, 8, in, "product");
	sq_bind_json_text(st, 9, in, "department");
	sq_bind_json_text(st, 10, in, "organisation");
	sq_bind_json_int(st, 11, in, "line");
	sq_bind_json_text(st, 12, in, "status");
	sq_bind_json_text(st, 13, in, "priority");
	sq_bind_dump(st, 14, json_object_get(in, "tags"), "[]");
	sq_bind_json_text(st, 15, in, "language");
	sqlite3_bind_int(st, 16, json_is_true(json_object_get(in, "confidential")));
	sq_bind_json_text(st, 17, in, "location");
	sq_bind_dump(st, 18, json_object_get(in, "meta"), "{}");
	sq_bind_json_text(st, 19, in, "created_by");
	sq_bind_json_text(st, 20, in, "answer");
	sq_bind_json_text(st, 21, in, "assignee");
	sqlite3_bind_int(st, 22, json_is_true(json_object_get(in, "handled")));
	sq_bind_text(st, 23, reply_to);
	sq_bind_text(st, 24, conflict);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		free(conflict);
		sq_step_error(c, req, rc);
		return;
	}
	id = sqlite3_last_insert_rowid(c->db);
	/* Kinds and party ids only: the history is no second copy of personal data. */
	if (sq_contact_event(c, LOKET_EVENT_CONTACT_CREATED, now, id, sq_jstr(in, "status"), NULL,
	        sq_jstr(in, "channel"), NULL)
	        < 0
	    || sq_history_add(c, id, now, sq_jstr(in, "created_by"), "created", NULL, "open",
	           sq_jstr(in, "channel"))
	        < 0
	    || (conflict != NULL
	        && sq_history_add(c, id, now, sq_jstr(in, "created_by"), "party_conflict", NULL,
	               NULL, conflict)
	            < 0)
	    || (party_id != 0 && sq_party_confidential_refresh(c, party_id) < 0)
	    || contact_extras(c, id, in, now, sq_jstr(in, "created_by"), &next_timer) < 0
	    || sq_create_message(c, id, in, now) < 0
	    || sq_counts_add(c, sq_jstr(in, "channel"), sq_jstr(in, "status"), 1) < 0
	    || (req->out = json_pack("{s:I, s:s, s:o}", "id", (json_int_t)id, "reference",
	            reference, "party_id", party_id != 0 ? json_integer(party_id) : json_null()))
	        == NULL) {
		free(conflict);
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	if (party_id != 0)
		json_object_set_new(req->out, "party_name", party_name(c, party_id));
	json_object_set_new(
	    req->out, "reply_to", reply_to != NULL ? json_string(reply_to) : json_null());
	json_object_set_new(req->out, "party_conflict",
	    conflict != NULL ? json_loads(conflict, 0, NULL) : json_null());
	free(conflict);
	if (next_timer > 0)
		json_object_set_new(req->out, "timers_next", json_integer(next_timer));
}

static int
status_in(json_t *from, const char *status)
{
	size_t i;
	json_t *v;

	json_array_foreach(from, i,
	    v) if (json_is_string(v) && strcmp(json_string_value(v), status) == 0) return 1;
	return 0;
}

static int
tasks_finish(struct sq_conn *c, sqlite3_int64 contact_id, sqlite3_int64 now, const char *actor)
{
	static const char sql_open[] = "SELECT id, department FROM tasks WHERE contact_id = ?1"
	                               " AND status = 'open' ORDER BY id";
	static const char sql[] = "UPDATE tasks SET status = 'done', done_at = ?2, done_by = ?3 "
	                          "WHERE contact_id = ?1 AND status = 'open'";
	sqlite3_stmt *st = sq_stmt(c, sql_open);
	json_t *open = json_array(), *t;
	size_t i;
	int rc;

	if (st == NULL || open == NULL) {
		json_decref(open);
		return -1;
	}
	sqlite3_bind_int64(st, 1, contact_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(open,
		    json_pack("{s:I, s:o}", "id", (json_int_t)sqlite3_column_int64(st, 0),
		        "department", sq_col_text(st, 1)));
	sqlite3_reset(st);
	json_array_foreach(open, i, t)
	{
		if (rc != SQLITE_DONE
		    || sq_task_event(c, LOKET_EVENT_TASK_DONE, now, contact_id,
		           json_integer_value(json_object_get(t, "id")), sq_jstr(t, "department"))
		        < 0) {
			json_decref(open);
			return -1;
		}
	}
	json_decref(open);
	if (rc != SQLITE_DONE || (st = sq_stmt(c, sql)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, contact_id);
	sqlite3_bind_int64(st, 2, now);
	sq_bind_text(st, 3, actor);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

static int
task_create(
    struct sq_conn *c, sqlite3_int64 contact_id, json_t *task, sqlite3_int64 now, const char *actor)
{
	static const char sql[]
	    = "INSERT INTO tasks (contact_id, department, assignee, reason,"
	      " due_at, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, contact_id);
	sq_bind_json_text(st, 2, task, "department");
	sq_bind_json_text(st, 3, task, "assignee");
	sq_bind_text(st, 4, sq_jstr(task, "reason") != NULL ? sq_jstr(task, "reason") : "");
	sq_bind_json_int(st, 5, task, "due_at");
	sqlite3_bind_int64(st, 6, now);
	sq_bind_text(st, 7, actor);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

/* Field changes of a PATCH (or a transition), one history row each. */
static int
contact_set_fields(
    struct sq_conn *c, sqlite3_int64 id, json_t *set, sqlite3_int64 now, const char *actor)
{
	static const char sql[]
	    = "UPDATE contacts SET"
	      " subject = coalesce(?2, subject), product = CASE WHEN ?3 THEN ?4 ELSE product END,"
	      " answer = CASE WHEN ?5 THEN ?6 ELSE answer END,"
	      " department = CASE WHEN ?7 THEN ?8 ELSE department END,"
	      " organisation = coalesce(?9, organisation), priority = coalesce(?10, priority),"
	      " tags = coalesce(?11, tags), updated_at = ?12,"
	      " assignee = CASE WHEN ?13 THEN ?14 ELSE assignee END,"
	      " language = CASE WHEN ?15 THEN ?16 ELSE language END,"
	      " confidential = coalesce(?17, confidential),"
	      " party_conflict = CASE WHEN ?18 THEN NULL ELSE party_conflict END WHERE id = ?1";
	/* Access to a task follows its contact; its department does too, or lists would differ. */
	static const char sql_tasks[] = "UPDATE tasks SET department = ?2 WHERE contact_id = ?1"
	                                " AND status = 'open'";
	static const char sql_party[] = "SELECT party_id FROM contacts WHERE id = ?1";
	sqlite3_stmt *st;
	const char *key;
	json_t *v;

	if (json_object_size(set) == 0)
		return 0;
	if ((st = sq_stmt(c, sql)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sq_bind_json_text(st, 2, set, "subject");
	sqlite3_bind_int(st, 3, json_object_get(set, "product") != NULL);
	sq_bind_json_text(st, 4, set, "product");
	sqlite3_bind_int(st, 5, json_object_get(set, "answer") != NULL);
	sq_bind_json_text(st, 6, set, "answer");
	sqlite3_bind_int(st, 7, json_object_get(set, "department") != NULL);
	sq_bind_json_text(st, 8, set, "department");
	sq_bind_json_text(st, 9, set, "organisation");
	sq_bind_json_text(st, 10, set, "priority");
	if (json_object_get(set, "tags") != NULL)
		sq_bind_dump(st, 11, json_object_get(set, "tags"), "[]");
	sqlite3_bind_int64(st, 12, now);
	/* Set by rules in follow-ups (the API's PATCH does not take these). */
	sqlite3_bind_int(st, 13, json_object_get(set, "assignee") != NULL);
	sq_bind_json_text(st, 14, set, "assignee");
	sqlite3_bind_int(st, 15, json_object_get(set, "language") != NULL);
	sq_bind_json_text(st, 16, set, "language");
	if (json_is_boolean(json_object_get(set, "confidential")))
		sqlite3_bind_int(st, 17, json_is_true(json_object_get(set, "confidential")));
	sqlite3_bind_int(st, 18, json_object_get(set, "party_conflict") != NULL);
	if (sqlite3_step(st) != SQLITE_DONE)
		return -1;
	if (json_is_string(json_object_get(set, "department"))) {
		if ((st = sq_stmt(c, sql_tasks)) == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, id);
		sq_bind_json_text(st, 2, set, "department");
		if (sqlite3_step(st) != SQLITE_DONE)
			return -1;
	}
	if (json_is_boolean(json_object_get(set, "confidential"))) {
		sqlite3_int64 party_id = 0;

		if ((st = sq_stmt(c, sql_party)) == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, id);
		if (sqlite3_step(st) == SQLITE_ROW)
			party_id = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		if (party_id != 0 && sq_party_confidential_refresh(c, party_id) < 0)
			return -1;
	}
	json_object_foreach(set, key, v)
	{
		/* Field names are recorded, not their values: the history is no second copy of
		 * personal data. */
		if (strcmp(key, "organisation") != 0
		    && sq_history_add(c, id, now, actor, "updated", NULL, NULL, key) < 0)
			return -1;
	}
	return 0;
}

/*
 * Rule history, reminders, replies (on via, else the contact's channel) and
 * a fired timer: what a contact create or update carries besides its fields.
 */
static int
rule_rows(struct sq_conn *c, sqlite3_int64 id, json_t *in, sqlite3_int64 now, const char *channel,
    sqlite3_int64 *next_r)
{
	json_t *v;
	size_t i;

	/* Rows as they are: register_apply worded (or packed) the decisions of rules. */
	json_array_foreach(json_object_get(in, "history"), i,
	    v) if (sq_history_add(c, id, now, sq_jstr(v, "actor"), sq_jstr(v, "action"), NULL, NULL,
	               sq_jstr(v, "detail"))
	    < 0) return -1;
	json_array_foreach(json_object_get(in, "timers"), i,
	    v) if (sq_timer_add(c, id, 0, sq_jstr(v, "kind"),
	               json_integer_value(json_object_get(v, "due_at")),
	               json_object_get(v, "payload"), sq_jstr(v, "rule"), now, next_r)
	    < 0) return -1;
	if (sq_outbox_rows(c, id, in, now, channel) < 0)
		return -1;
	if (json_is_integer(json_object_get(in, "timer_done"))
	    && sq_timer_done(c, json_integer_value(json_object_get(in, "timer_done")), now, 1) < 0)
		return -1;
	return 0;
}

/*
 * The task a contact update acts on (in.on_task: {id, assignee, holders,
 * done}): checked before anything is written. 1 to go on; 0 with req
 * answered: NOT_FOUND (the contact has no such task), CONFLICT with out
 * {status} (the task is done) or {status, assignee} (held by someone not
 * in holders); -1 on a storage error.
 */
static int
task_on_check(struct sq_conn *c, struct store_req *req, sqlite3_int64 contact_id, json_t *on)
{
	static const char sql[] = "SELECT status, assignee FROM tasks WHERE id = ?1 AND contact_id = ?2";
	sqlite3_int64 task_id = json_integer_value(json_object_get(on, "id"));
	json_t *holders = json_object_get(on, "holders"), *h;
	char status[16], assignee[256];
	int rc, has_assignee, held = 0;
	sqlite3_stmt *st;
	size_t i;

	if ((st = sq_stmt(c, sql)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, task_id);
	sqlite3_bind_int64(st, 2, contact_id);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return -1;
		store_req_fail(req, STORE_NOT_FOUND, "no task with id %lld on that contact",
		    (long long)task_id);
		return 0;
	}
	snprintf(status, sizeof(status), "%s", (const char *)sqlite3_column_text(st, 0));
	if ((has_assignee = sqlite3_column_type(st, 1) != SQLITE_NULL))
		snprintf(assignee, sizeof(assignee), "%s", (const char *)sqlite3_column_text(st, 1));
	sqlite3_reset(st);
	if (strcmp(status, "open") != 0) {
		store_req_fail(req, STORE_CONFLICT, "the task is already %s", status);
		req->out = json_pack("{s:s}", "status", status);
		return 0;
	}
	if (!json_is_array(holders))
		return 1;
	json_array_foreach(holders, i, h)
		held |= has_assignee ? json_is_string(h) && strcmp(json_string_value(h), assignee) == 0
				     : json_is_null(h);
	if (!held) {
		store_req_fail(req, STORE_CONFLICT, "the task is held by someone else");
		req->out = json_pack("{s:s, s:s?}", "status", status, "assignee",
		    has_assignee ? assignee : NULL);
		return 0;
	}
	return 1;
}

/* Writes what in.on_task asks of the checked task: its assignee, its end. */
static int
task_on_apply(struct sq_conn *c, sqlite3_int64 contact_id, json_t *on, sqlite3_int64 now,
    const char *actor)
{
	static const char sql_assign[] = "UPDATE tasks SET assignee = ?2 WHERE id = ?1";
	static const char sql_done[] = "UPDATE tasks SET status = 'done', done_at = ?2, done_by = ?3"
				       " WHERE id = ?1 RETURNING department";
	sqlite3_int64 task_id = json_integer_value(json_object_get(on, "id"));
	sqlite3_stmt *st;
	json_t *dep;
	int rc;

	if (json_object_get(on, "assignee") != NULL) {
		if ((st = sq_stmt(c, sql_assign)) == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, task_id);
		sq_bind_json_text(st, 2, on, "assignee");
		if (sqlite3_step(st) != SQLITE_DONE)
			return -1;
	}
	if (!json_is_true(json_object_get(on, "done")))
		return 0;
	if ((st = sq_stmt(c, sql_done)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, task_id);
	sqlite3_bind_int64(st, 2, now);
	sq_bind_text(st, 3, actor);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		return -1;
	}
	dep = sq_col_text(st, 0);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	sqlite3_reset(st);
	rc = rc == SQLITE_DONE ? sq_task_event(c, LOKET_EVENT_TASK_DONE, now, contact_id, task_id,
				     json_string_value(dep))
			       : -1;
	json_decref(dep);
	return rc;
}

void
sq_op_contact_update(struct sq_conn *c, struct store_req *req)
{
	static const char sql_status[]
	    = "UPDATE contacts SET status = ?2, line = coalesce(?3, line),"
	      " handled_at = CASE WHEN ?4 THEN ?5 ELSE handled_at END,"
	      " updated_at = ?5 WHERE id = ?1";
	json_t *in = req->in, *tr = json_object_get(in, "transition");
	sqlite3_int64 id = json_integer_value(json_object_get(in, "id"));
	sqlite3_int64 now = json_integer_value(json_object_get(in, "at"));
	const char *actor = sq_jstr(in, "actor");
	struct sq_contact_state cs;
	sqlite3_int64 next_timer = 0;
	sqlite3_stmt *st;

	if (sq_contact_open(c, req, id, json_object_get(in, "expect"),
	        "this token may not change that contact", &cs)
	    < 0)
		return;
	if (tr != NULL && !status_in(json_object_get(tr, "from"), cs.status)) {
		store_req_fail(req, STORE_CONFLICT, "the contact is %s; it cannot be %s from there",
		    cs.status, sq_jstr(tr, "past"));
		req->out = json_pack("{s:s}", "status", cs.status);
		return;
	}
	if (json_is_integer(json_object_get(in, "timer_done"))
	    && sq_timer_still_pending(c, req, json_integer_value(json_object_get(in, "timer_done")))
	        <= 0)
		return;
	if (json_is_object(json_object_get(in, "on_task"))) {
		int rc = task_on_check(c, req, id, json_object_get(in, "on_task"));

		if (rc <= 0) {
			if (rc < 0)
				goto fail;
			return;
		}
		/* Before the fields: a department move carries the tasks still open, not this one. */
		if (task_on_apply(c, id, json_object_get(in, "on_task"), now, actor) < 0)
			goto fail;
	}
	if (contact_set_fields(c, id, json_object_get(in, "set"), now, actor) < 0)
		goto fail;
	if (tr != NULL) {
		if ((st = sq_stmt(c, sql_status)) == NULL)
			goto fail;
		sqlite3_bind_int64(st, 1, id);
		sq_bind_json_text(st, 2, tr, "to");
		sq_bind_json_int(st, 3, tr, "line");
		sqlite3_bind_int(st, 4, json_is_true(json_object_get(tr, "handled")));
		sqlite3_bind_int64(st, 5, now);
		if (sqlite3_step(st) != SQLITE_DONE
		    || sq_history_add(c, id, now, actor, sq_jstr(tr, "action"), cs.status,
		           sq_jstr(tr, "to"), sq_jstr(tr, "detail"))
		        < 0
		    || sq_counts_add(c, cs.channel, cs.status, -1) < 0
		    || sq_counts_add(c, cs.channel, sq_jstr(tr, "to"), 1) < 0)
			goto fail;
	}
	/* Every stored change of a contact is news, a status change or not (a tag, a history row).
	 */
	if (sq_contact_event(c, LOKET_EVENT_CONTACT_CHANGED, now, id,
	        tr != NULL ? sq_jstr(tr, "to") : cs.status, cs.status, cs.channel, NULL)
	    < 0)
		goto fail;
	if (json_is_true(json_object_get(in, "finish_tasks"))
	    && tasks_finish(c, id, now, actor) < 0)
		goto fail;
	if (json_object_get(in, "task") != NULL
	    && task_with_deadline(c, id, json_object_get(in, "task"), now, actor, &next_timer) < 0)
		goto fail;
	if (rule_rows(c, id, in, now, cs.channel, &next_timer) < 0)
		goto fail;
	if ((req->out = sq_contact_load(c, id, 1)) == NULL)
		goto fail;
	if (next_timer > 0)
		json_object_set_new(req->out, "timers_next", json_integer(next_timer));
	json_object_set_new(req->out, "previous_status", json_string(cs.status));
	return;
fail:
	sq_step_error(c, req, SQLITE_ERROR);
}

static const char sql_task_by_id[]
    = "SELECT " SQ_TASK_COLS "FROM tasks t JOIN contacts c ON c.id = t.contact_id "
      "WHERE t.id = ?1";

void
sq_op_task_done(struct sq_conn *c, struct store_req *req)
{
	static const char sql_done[]
	    = "UPDATE tasks SET status = 'done', done_at = ?2, done_by = ?3"
	      " WHERE id = ?1";
	static const char sql_open_left[] = "SELECT count(*) FROM tasks WHERE contact_id = ?1 AND"
	                                    " status = 'open'";
	static const char sql_close[] = "UPDATE contacts SET status = 'closed', handled_at = ?2,"
	                                " updated_at = ?2 WHERE id = ?1";
	json_t *in = req->in, *task;
	sqlite3_int64 id = json_integer_value(json_object_get(in, "id"));
	sqlite3_int64 now = json_integer_value(json_object_get(in, "at"));
	const char *actor = sq_jstr(in, "actor");
	sqlite3_int64 contact_id;
	struct sq_contact_state cs;
	sqlite3_stmt *st;
	int open_left = 0;

	if ((st = sq_stmt(c, sql_task_by_id)) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW) {
		store_req_fail(req, STORE_NOT_FOUND, "no task with id %lld", (long long)id);
		return;
	}
	task = sq_task_row(st);
	sqlite3_reset(st);
	contact_id = json_integer_value(json_object_get(task, "contact_id"));
	/* Who may finish a task follows its contact, wherever the contact went since. */
	if (sq_contact_open(c, req, contact_id, NULL, "this token may not finish that task", &cs)
	    < 0) {
		json_decref(task);
		return;
	}
	if (strcmp(sq_jstr(task, "status"), "open") != 0) {
		store_req_fail(req, STORE_CONFLICT, "the task is already done");
		req->out = json_pack("{s:O}", "status", json_object_get(task, "status"));
		json_decref(task);
		return;
	}
	json_decref(task);
	if ((st = sq_stmt(c, sql_done)) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	sq_bind_text(st, 3, actor);
	if (sqlite3_step(st) != SQLITE_DONE || (st = sq_stmt(c, sql_open_left)) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, contact_id);
	if (sqlite3_step(st) == SQLITE_ROW)
		open_left = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	if (sq_history_add(c, contact_id, now, actor, "task_done", NULL, NULL, NULL) < 0
	    || sq_task_event(c, LOKET_EVENT_TASK_DONE, now, contact_id, id,
	           cs.has_department ? cs.department : NULL)
	        < 0)
		goto fail;
	if (open_left == 0 && strcmp(cs.status, "escalated") == 0) {
		if ((st = sq_stmt(c, sql_close)) == NULL)
			goto fail;
		sqlite3_bind_int64(st, 1, contact_id);
		sqlite3_bind_int64(st, 2, now);
		if (sqlite3_step(st) != SQLITE_DONE
		    || sq_history_add(c, contact_id, now, actor, "close", "escalated", "closed",
		           "all tasks done")
		        < 0
		    || sq_counts_add(c, cs.channel, "escalated", -1) < 0
		    || sq_counts_add(c, cs.channel, "closed", 1) < 0
		    || sq_contact_event(c, LOKET_EVENT_CONTACT_CHANGED, now, contact_id, "closed",
		           "escalated", cs.channel, NULL)
		        < 0)
			goto fail;
	}
	if ((st = sq_stmt(c, sql_task_by_id)) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto fail;
	req->out = sq_task_row(st);
	sqlite3_reset(st);
	json_object_set_new(req->out, "contact_status",
	    json_string(
	        open_left == 0 && strcmp(cs.status, "escalated") == 0 ? "closed" : cs.status));
	json_object_set_new(req->out, "contact_previous_status", json_string(cs.status));
	json_object_set_new(req->out, "channel", json_string(cs.channel));
	return;
fail:
	sq_step_error(c, req, SQLITE_ERROR);
}
