/*
 * pg_write.c: the register's writes in PostgreSQL: one function per write
 * kind, JSON in and out as docs/storage.md states them (the SQLite driver's
 * store_sqlite_ops.c and store_sqlite_msgs.c do the same in SQLite).
 *
 * Each runs inside the batch's transaction and a savepoint of its own (the
 * writer rolls that back when the write is refused). What must happen once
 * across nodes is decided by a unique constraint (INSERT ... ON CONFLICT DO
 * NOTHING RETURNING), never by a look before the insert: an intake key a
 * concurrent write took first turns this write into the duplicate it is.
 * Rows a write decides on (a contact's status, a task, a timer, an outbox
 * row) are read FOR UPDATE, so two nodes never both act on one state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg.h"

#define DAY_MS (24LL * 3600 * 1000)
/* Any number the daemons agree on: held while a year's reference sequence is made. */
#define PG_REFSEQ_LOCK "7155390203"

#define CONTACT_COLS                                                                        \
	"c.id, c.reference, c.channel, c.direction, " PG_MS("c.received_at") ", "            \
	PG_MS("c.handled_at") ", " PG_MS("c.updated_at") ", c.party_id, c.subject, c.body,"  \
	" c.answer, c.product, c.department, c.organisation, c.line, c.status, c.priority,"  \
	" c.tags, c.language, c.confidential, c.location, c.meta, c.created_by, p.name,"     \
	" c.assignee, c.reply_to, c.party_conflict "

#define TASK_COLS                                                                           \
	"t.id, t.contact_id, c.reference, t.department, t.assignee, t.reason, "              \
	PG_MS("t.due_at") ", t.status, " PG_MS("t.created_at") ", t.created_by, "            \
	PG_MS("t.done_at") ", t.done_by "

#define MESSAGE_COLS                                                                        \
	"id, contact_id, direction, channel, " PG_ISO("at") ", actor, sender, recipients,"  \
	" subject, body, message_id, automatic, attachments, meta, status "

/*
 * A statement of req failed: -1 when the connection went (the batch goes
 * with it), else req answered for a person (the server's text is in the log)
 * and 0.
 */
int
pg_write_fail(struct pg_conn *c, struct store_req *req)
{
	if (c->fault == PG_FAULT_CONNECTION)
		return -1;
	if (c->fault == PG_FAULT_CONFLICT)
		pg_host->req_fail(req, STORE_CONFLICT,
		    "the register holds a record that conflicts with this one; reload and try again");
	else if (c->fault == PG_FAULT_RETRY)
		pg_host->req_fail(req, STORE_UNAVAILABLE,
		    "the register was busy with a concurrent change; nothing of this request was "
		    "stored, try again");
	else
		pg_host->req_fail(req, STORE_FAILED, "the register could not store this; try again later");
	if (c->fault == PG_FAULT_NONE)
		pg_logf("writer: %s failed (out of memory or a malformed request)",
		    pg_host->op_name(req->op));
	return 0;
}

/* A contact in the storage shape (docs/storage.md): times in ms, the party's name plain. */
static json_t *
contact_row(const PGresult *r, int i)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
			 " s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
	    "id", pg_col_int(r, i, 0), "reference", pg_col_text(r, i, 1), "channel",
	    pg_col_text(r, i, 2), "direction", pg_col_text(r, i, 3), "received_at",
	    pg_col_int(r, i, 4), "handled_at", pg_col_int(r, i, 5), "updated_at",
	    pg_col_int(r, i, 6), "party_id", pg_col_int(r, i, 7), "subject", pg_col_text(r, i, 8),
	    "body", pg_col_text(r, i, 9), "answer", pg_col_text(r, i, 10), "product",
	    pg_col_text(r, i, 11), "department", pg_col_text(r, i, 12), "organisation",
	    pg_col_text(r, i, 13), "line", pg_col_int(r, i, 14), "status", pg_col_text(r, i, 15),
	    "priority", pg_col_text(r, i, 16), "tags", pg_col_json(r, i, 17), "language",
	    pg_col_text(r, i, 18), "confidential", pg_col_bool(r, i, 19), "location",
	    pg_col_text(r, i, 20), "meta", pg_col_json(r, i, 21), "created_by",
	    pg_col_text(r, i, 22), "party_name", pg_col_text(r, i, 23), "assignee",
	    pg_col_text(r, i, 24), "reply_to", pg_col_text(r, i, 25), "party_conflict",
	    pg_col_json(r, i, 26));
}

static json_t *
task_row(const PGresult *r, int i)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
	    pg_col_int(r, i, 0), "contact_id", pg_col_int(r, i, 1), "reference",
	    pg_col_text(r, i, 2), "department", pg_col_text(r, i, 3), "assignee",
	    pg_col_text(r, i, 4), "reason", pg_col_text(r, i, 5), "due_at", pg_col_int(r, i, 6),
	    "status", pg_col_text(r, i, 7), "created_at", pg_col_int(r, i, 8), "created_by",
	    pg_col_text(r, i, 9), "done_at", pg_col_int(r, i, 10), "done_by",
	    pg_col_text(r, i, 11));
}

static json_t *
message_row(const PGresult *r, int i)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
			 " s:o}",
	    "id", pg_col_int(r, i, 0), "contact_id", pg_col_int(r, i, 1), "direction",
	    pg_col_text(r, i, 2), "channel", pg_col_text(r, i, 3), "at", pg_col_text(r, i, 4),
	    "actor", pg_col_text(r, i, 5), "sender", pg_col_text(r, i, 6), "recipients",
	    pg_col_json(r, i, 7), "subject", pg_col_text(r, i, 8), "body", pg_col_text(r, i, 9),
	    "message_id", pg_col_text(r, i, 10), "automatic", pg_col_text(r, i, 11),
	    "attachments", pg_col_json(r, i, 12), "meta", pg_col_json(r, i, 13), "status",
	    pg_col_text(r, i, 14));
}

static const char sql_contact_by_id[] = "SELECT " CONTACT_COLS
					"FROM contacts c LEFT JOIN parties p ON p.id = c.party_id"
					" WHERE c.id = $1";
static const char sql_history[] = "SELECT " PG_MS("at") ", actor, action, from_status,"
				  " to_status, detail FROM contact_history WHERE contact_id = $1"
				  " ORDER BY id";
static const char sql_tasks_of_contact[] = "SELECT " TASK_COLS
					   "FROM tasks t JOIN contacts c ON c.id = t.contact_id"
					   " WHERE t.contact_id = $1 ORDER BY t.id";

/* The contact in the storage shape, with details its history and tasks; NULL: none or failed. */
static json_t *
contact_load(struct pg_conn *c, int64_t id, int details)
{
	struct pg_params p;
	json_t *contact, *list;
	PGresult *r;

	pg_params_init(&p);
	pg_p_int(&p, id);
	if ((r = pg_q(c, sql_contact_by_id, &p)) == NULL)
		return NULL;
	contact = PQntuples(r) == 1 ? contact_row(r, 0) : NULL;
	PQclear(r);
	if (!details || contact == NULL)
		return contact;
	pg_params_init(&p);
	pg_p_int(&p, id);
	if ((r = pg_q(c, sql_history, &p)) == NULL) {
		json_decref(contact);
		return NULL;
	}
	list = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(list,
		    json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "at", pg_col_int(r, i, 0), "actor",
			pg_col_text(r, i, 1), "action", pg_col_text(r, i, 2), "from",
			pg_col_text(r, i, 3), "to", pg_col_text(r, i, 4), "detail",
			pg_col_text(r, i, 5)));
	PQclear(r);
	json_object_set_new(contact, "history", list);
	pg_params_init(&p);
	pg_p_int(&p, id);
	if ((r = pg_q(c, sql_tasks_of_contact, &p)) == NULL) {
		json_decref(contact);
		return NULL;
	}
	list = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(list, task_row(r, i));
	PQclear(r);
	json_object_set_new(contact, "tasks", list);
	return contact;
}

int
pg_scope_allows(json_t *scope, const char *department, const char *organisation, int confidential)
{
	json_t *deps = json_object_get(scope, "departments");
	const char *org = pg_jstr(scope, "organisation");
	size_t i;
	json_t *d;
	int in = 0;

	if (json_is_true(json_object_get(scope, "all")))
		return 1;
	if (json_is_array(deps)) {
		json_array_foreach(deps, i, d)
			in |= department != NULL && json_is_string(d) &&
			    strcmp(json_string_value(d), department) == 0;
		if (!in)
			return 0;
	}
	return !confidential || (org != NULL && organisation != NULL && strcmp(org, organisation) == 0);
}

int
pg_history_add(struct pg_conn *c, int64_t contact_id, int64_t at, const char *actor,
    const char *action, const char *from, const char *to, const char *detail)
{
	static const char sql[] = "INSERT INTO contact_history (contact_id, at, actor, action,"
				  " from_status, to_status, detail) VALUES ($1, " PG_TS(2) ", $3, $4,"
				  " $5, $6, $7)";
	struct pg_params p;

	pg_params_init(&p);
	pg_p_int(&p, contact_id);
	pg_p_int(&p, at);
	pg_p_text(&p, actor != NULL ? actor : "");
	pg_p_text(&p, action != NULL ? action : "");
	pg_p_text(&p, from);
	pg_p_text(&p, to);
	pg_p_text(&p, detail);
	return pg_q_exec(c, sql, &p) < 0 ? -1 : 0;
}

/* The counts row moves at the end of the batch (pg_count says why). */
static int
counts_add(struct pg_conn *c, const char *channel, const char *status, int delta)
{
	(void)c;
	return pg_count(channel, status, delta);
}

/* The payload of a contact's event: its status, where it came from, and the status before. */
static int
contact_event(struct store_req *req, enum loket_event_kind kind, int64_t at, int64_t contact_id,
    const char *status, const char *previous, const char *channel, const char *cause)
{
	char st[32], prev[32], ch[64], why[32];

	if (previous == NULL)
		return pg_event(req, kind, at, contact_id, 0, "{\"status\":\"%s\",\"channel\":\"%s\"}",
		    pg_event_str(st, sizeof(st), status), pg_event_str(ch, sizeof(ch), channel));
	return pg_event(req, kind, at, contact_id, 0,
	    "{\"status\":\"%s\",\"previous_status\":\"%s\",\"channel\":\"%s\"%s%s%s}",
	    pg_event_str(st, sizeof(st), status), pg_event_str(prev, sizeof(prev), previous),
	    pg_event_str(ch, sizeof(ch), channel), cause != NULL ? ",\"cause\":\"" : "",
	    cause != NULL ? pg_event_str(why, sizeof(why), cause) : "", cause != NULL ? "\"" : "");
}

/* A task's event: its department (no reason: that is free text). */
static int
task_event(struct store_req *req, enum loket_event_kind kind, int64_t at, int64_t contact_id,
    int64_t task_id, const char *department)
{
	char dep[160];

	if (department == NULL)
		return pg_event(req, kind, at, contact_id, task_id, "{}");
	return pg_event(req, kind, at, contact_id, task_id, "{\"department\":\"%s\"}",
	    pg_event_str(dep, sizeof(dep), department));
}

/*
 * The next reference of year: a sequence per year (refseq_YYYY), unique
 * across nodes without a row lock held per batch; a write rolled back
 * leaves a gap, never a number handed out twice. The year's sequence is
 * made on its first use, under a lock so two nodes do not both make it.
 */
static int
reference_next(struct pg_conn *c, int64_t now_ms, char *buf, size_t len)
{
	static const char sql[] = "SELECT nextval(to_regclass($1))";
	time_t t = (time_t)(now_ms / 1000);
	char name[32], ddl[96];
	struct pg_params p;
	struct tm tm;
	PGresult *r;
	int year;

	if (gmtime_r(&t, &tm) == NULL)
		return -1;
	year = tm.tm_year + 1900;
	snprintf(name, sizeof(name), "refseq_%04d", year);
	for (int attempt = 0; attempt < 2; attempt++) {
		pg_params_init(&p);
		pg_p_text(&p, name);
		if ((r = pg_q(c, sql, &p)) == NULL)
			return -1;
		if (!pg_isnull(r, 0, 0)) {
			snprintf(buf, len, "%04d-%06lld", year, (long long)pg_int(r, 0, 0));
			PQclear(r);
			return 0;
		}
		PQclear(r);
		snprintf(ddl, sizeof(ddl), "CREATE SEQUENCE IF NOT EXISTS %s", name);
		if (pg_exec(c, "SELECT pg_advisory_xact_lock(" PG_REFSEQ_LOCK ")") < 0 ||
		    pg_exec(c, ddl) < 0)
			return -1;
	}
	c->fault = PG_FAULT_FAILED;
	return -1;
}

static int
timer_add(struct pg_conn *c, int64_t contact_id, int64_t task_id, const char *kind, int64_t due_at,
    json_t *payload, const char *rule, int64_t now, int64_t *next_r)
{
	static const char sql[] = "INSERT INTO timers (contact_id, task_id, kind, due_at, payload,"
				  " rule, created_at) VALUES ($1, $2, $3, " PG_TS(4) ", $5::jsonb, $6, "
				  PG_TS(7) ")";
	struct pg_params p;

	pg_params_init(&p);
	pg_p_int(&p, contact_id);
	if (task_id != 0)
		pg_p_int(&p, task_id);
	else
		pg_p_null(&p);
	pg_p_text(&p, kind != NULL ? kind : "");
	pg_p_int(&p, due_at);
	/* A payload register_apply wrote out as text already is bound as it is. */
	if (json_is_string(payload))
		pg_p_text(&p, json_string_value(payload));
	else
		pg_p_json(&p, payload, "{}");
	pg_p_text(&p, rule);
	pg_p_int(&p, now);
	if (pg_q_exec(c, sql, &p) < 0)
		return -1;
	if (*next_r == 0 || due_at < *next_r)
		*next_r = due_at;
	return 0;
}

static int
task_create(struct pg_conn *c, int64_t contact_id, json_t *task, int64_t now, const char *actor,
    int64_t *id_r)
{
	static const char sql[] = "INSERT INTO tasks (contact_id, department, assignee, reason,"
				  " due_at, created_at, created_by) VALUES ($1, $2, $3, $4, " PG_TS(5)
				  ", " PG_TS(6) ", $7) RETURNING id";
	struct pg_params p;
	PGresult *r;

	pg_params_init(&p);
	pg_p_int(&p, contact_id);
	pg_p_jtext(&p, task, "department");
	pg_p_jtext(&p, task, "assignee");
	pg_p_text(&p, pg_jstr(task, "reason") != NULL ? pg_jstr(task, "reason") : "");
	pg_p_jint(&p, task, "due_at");
	pg_p_int(&p, now);
	pg_p_text(&p, actor != NULL ? actor : "");
	if ((r = pg_q(c, sql, &p)) == NULL)
		return -1;
	*id_r = pg_int(r, 0, 0);
	PQclear(r);
	return 0;
}

/* A hand-over to the second line, with a timer for its deadline when it has one. */
static int
task_with_deadline(struct pg_conn *c, struct store_req *req, int64_t contact_id, json_t *task,
    int64_t now, const char *actor, int64_t *next_r)
{
	int64_t task_id;

	if (task_create(c, contact_id, task, now, actor, &task_id) < 0)
		return -1;
	if (task_event(req, LOKET_EVENT_TASK_CREATED, now, contact_id, task_id,
		pg_jstr(task, "department")) < 0)
		return -1;
	if (!json_is_integer(json_object_get(task, "due_at")))
		return 0;
	return timer_add(c, contact_id, task_id, "overdue",
	    json_integer_value(json_object_get(task, "due_at")), NULL, NULL, now, next_r);
}

/* The replies in in's "outbox" (rules' decisions, a staff message), due now. */
static int
outbox_rows(struct pg_conn *c, int64_t id, json_t *in, int64_t now, const char *channel)
{
	static const char sql[] = "INSERT INTO outbox (contact_id, channel, template, rule,"
				  " next_at, created_at, message_row, recipient, automatic, payload)"
				  " VALUES ($1, $2, $3, $4, " PG_TS(5) ", " PG_TS(5) ", $6, $7,"
				  " $8::boolean, $9::jsonb)";
	struct pg_params p;
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(in, "outbox"), i, v) {
		json_t *automatic = json_object_get(v, "automatic");

		pg_params_init(&p);
		pg_p_int(&p, id);
		pg_p_text(&p, pg_jstr(v, "via") != NULL ? pg_jstr(v, "via") : channel);
		pg_p_text(&p, pg_jstr(v, "template") != NULL ? pg_jstr(v, "template") : "");
		pg_p_jtext(&p, v, "rule");
		pg_p_int(&p, now);
		pg_p_jint(&p, v, "message_row");
		pg_p_jtext(&p, v, "recipient");
		pg_p_bool(&p, automatic == NULL || json_is_true(automatic));
		pg_p_json(&p, json_object_get(v, "payload"), "{}");
		if (pg_q_exec(c, sql, &p) < 0)
			return -1;
	}
	return 0;
}

/*
 * A fired timer's action is written with its timer closed (timer_done) and
 * only while the timer is pending: a timer two nodes fired across a lease
 * hand-over acts once, and the second action stores nothing (CONFLICT, out
 * {"status": the timer's}). The row is locked (after the contact, the order
 * every write takes them in) until the write commits. 1 pending, 0 refused,
 * -1 failed.
 */
static int
timer_still_pending(struct pg_conn *c, struct store_req *req, int64_t timer_id)
{
	static const char sql[] = "SELECT status FROM timers WHERE id = $1 FOR UPDATE";
	struct pg_params p;
	PGresult *r;
	char status[16] = "";

	pg_params_init(&p);
	pg_p_int(&p, timer_id);
	if ((r = pg_q(c, sql, &p)) == NULL)
		return -1;
	if (PQntuples(r) == 1)
		snprintf(status, sizeof(status), "%s", pg_str(r, 0, 0));
	PQclear(r);
	if (strcmp(status, "pending") == 0)
		return 1;
	pg_host->req_fail(req, STORE_CONFLICT, "this timer has been acted on already");
	req->out = json_pack("{s:s}", "status", status[0] != '\0' ? status : "gone");
	return 0;
}

/*
 * Marks a timer done. With acted (the write holds what its firing did) a
 * timer still pending makes its events: timer.fired, and task.due for the
 * deadline of a task still open.
 */
static int
timer_done(struct pg_conn *c, struct store_req *req, int64_t timer_id, int64_t now, int acted)
{
	static const char sql_row[] = "SELECT t.contact_id, t.task_id, t.kind, k.status,"
				      " k.department FROM timers t LEFT JOIN tasks k ON k.id = t.task_id"
				      " WHERE t.id = $1 AND t.status = 'pending' FOR UPDATE OF t";
	static const char sql[] = "UPDATE timers SET status = 'done', done_at = " PG_TS(2)
				  ", claimed_by = NULL, claim_until = NULL WHERE id = $1";
	int64_t contact_id = 0, task_id = 0;
	char kind[32] = "", task_status[16] = "", dep[128] = "", esc[64];
	struct pg_params p;
	int pending = 0, has_dep = 0;
	PGresult *r;

	pg_params_init(&p);
	pg_p_int(&p, timer_id);
	if ((r = pg_q(c, sql_row, &p)) == NULL)
		return -1;
	if (PQntuples(r) == 1) {
		pending = 1;
		contact_id = pg_int(r, 0, 0);
		task_id = pg_int(r, 0, 1);
		snprintf(kind, sizeof(kind), "%s", pg_str(r, 0, 2));
		if (!pg_isnull(r, 0, 3))
			snprintf(task_status, sizeof(task_status), "%s", pg_str(r, 0, 3));
		if ((has_dep = !pg_isnull(r, 0, 4)))
			snprintf(dep, sizeof(dep), "%s", pg_str(r, 0, 4));
	}
	PQclear(r);
	pg_params_init(&p);
	pg_p_int(&p, timer_id);
	pg_p_int(&p, now);
	if (pg_q_exec(c, sql, &p) < 0)
		return -1;
	if (!pending || !acted)
		return 0;
	if (pg_event(req, LOKET_EVENT_TIMER_FIRED, now, contact_id, task_id,
		"{\"timer\":%lld,\"kind\":\"%s\"}", (long long)timer_id,
		pg_event_str(esc, sizeof(esc), kind)) < 0)
		return -1;
	if (strcmp(kind, "overdue") == 0 && strcmp(task_status, "open") == 0 &&
	    task_event(req, LOKET_EVENT_TASK_DUE, now, contact_id, task_id, has_dep ? dep : NULL) < 0)
		return -1;
	return 0;
}

/*
 * Rule history, reminders, replies (on via, else the contact's channel) and
 * a fired timer: what a contact create or update carries besides its fields.
 */
static int
rule_rows(struct pg_conn *c, struct store_req *req, int64_t id, json_t *in, int64_t now,
    const char *channel, int64_t *next_r)
{
	json_t *v;
	size_t i;

	/* Rows as they are: register_apply worded (or packed) the decisions of rules. */
	json_array_foreach(json_object_get(in, "history"), i, v)
		if (pg_history_add(c, id, now, pg_jstr(v, "actor"), pg_jstr(v, "action"), NULL, NULL,
			pg_jstr(v, "detail")) < 0)
			return -1;
	json_array_foreach(json_object_get(in, "timers"), i, v)
		if (timer_add(c, id, 0, pg_jstr(v, "kind"),
			json_integer_value(json_object_get(v, "due_at")), json_object_get(v, "payload"),
			pg_jstr(v, "rule"), now, next_r) < 0)
			return -1;
	if (outbox_rows(c, id, in, now, channel) < 0)
		return -1;
	if (json_is_integer(json_object_get(in, "timer_done")) &&
	    timer_done(c, req, json_integer_value(json_object_get(in, "timer_done")), now, 1) < 0)
		return -1;
	return 0;
}

/*
 * What rules decided besides the fields, written with the contact: history
 * rows naming each rule, reminders, replies for the outbox, and the
 * escalation task (with its deadline timer) or the resolution.
 */
static int
contact_extras(struct pg_conn *c, struct store_req *req, int64_t id, json_t *in, int64_t now,
    const char *actor, int64_t *next_r)
{
	json_t *task = json_object_get(in, "task");
	const char *status = pg_jstr(in, "status");

	if (rule_rows(c, req, id, in, now, pg_jstr(in, "channel"), next_r) < 0)
		return -1;
	if (task != NULL) {
		const char *by = pg_jstr(task, "rule") != NULL ? pg_jstr(task, "rule") : actor;
		char who[300];

		snprintf(who, sizeof(who), "%s%s", pg_jstr(task, "rule") != NULL ? "rule:" : "",
		    by != NULL ? by : "");
		if (task_with_deadline(c, req, id, task, now, who, next_r) < 0 ||
		    pg_history_add(c, id, now, who, "escalate", "open", "escalated",
			pg_jstr(task, "reason")) < 0)
			return -1;
	} else if (status != NULL && strcmp(status, "resolved") == 0) {
		if (pg_history_add(c, id, now, actor, "resolve", "open", "resolved", NULL) < 0)
			return -1;
	}
	return 0;
}

/* The first value of a one-parameter query for id: text, null when no row; NULL on failure. */
static json_t *
text_of(struct pg_conn *c, const char *sql, int64_t id)
{
	struct pg_params p;
	json_t *v;
	PGresult *r;

	pg_params_init(&p);
	pg_p_int(&p, id);
	if ((r = pg_q(c, sql, &p)) == NULL)
		return NULL;
	v = PQntuples(r) > 0 ? pg_col_text(r, 0, 0) : json_null();
	PQclear(r);
	return v;
}

static const char sql_reference[] = "SELECT reference FROM contacts WHERE id = $1";
static const char sql_reply_to[] = "SELECT reply_to FROM contacts WHERE id = $1";
static const char sql_party_name[] = "SELECT name FROM parties WHERE id = $1";
static const char sql_message[] = "SELECT " MESSAGE_COLS "FROM messages WHERE id = $1";

/* The contact one of keys names (committed, or this transaction's); 0 when none; -1 failed. */
static int64_t
keys_find(struct pg_conn *c, json_t *keys)
{
	static const char sql[] = "SELECT contact_id FROM contact_keys WHERE key = $1";
	struct pg_params p;
	PGresult *r;
	json_t *k;
	size_t i;

	json_array_foreach(keys, i, k) {
		int64_t found = 0;

		if (!json_is_string(k))
			continue;
		pg_params_init(&p);
		pg_p_text(&p, json_string_value(k));
		if ((r = pg_q(c, sql, &p)) == NULL)
			return -1;
		if (PQntuples(r) > 0)
			found = pg_int(r, 0, 0);
		PQclear(r);
		if (found != 0)
			return found;
	}
	return 0;
}

/*
 * Claims keys for contact_id: exactly once across nodes by the primary
 * key. A key another write holds (committed, or in a transaction this one
 * waits for) is not claimed: 1, and the caller rolls back to before its
 * contact and answers the duplicate. 0 when every key is this contact's.
 */
static int
keys_claim(struct pg_conn *c, json_t *keys, int64_t contact_id)
{
	static const char sql[] = "INSERT INTO contact_keys (key, contact_id) VALUES ($1, $2)"
				  " ON CONFLICT (key) DO NOTHING RETURNING contact_id";
	struct pg_params p;
	PGresult *r;
	json_t *k;
	size_t i;
	int lost = 0;

	json_array_foreach(keys, i, k) {
		int claimed;

		if (!json_is_string(k))
			continue;
		pg_params_init(&p);
		pg_p_text(&p, json_string_value(k));
		pg_p_int(&p, contact_id);
		if ((r = pg_q(c, sql, &p)) == NULL)
			return -1;
		claimed = PQntuples(r) == 1;
		PQclear(r);
		if (!claimed) {
			/* The same key twice in one request is this contact's already. */
			json_t *one = json_pack("[O]", k);
			int64_t holder = keys_find(c, one);

			json_decref(one);
			if (holder < 0)
				return -1;
			if (holder != contact_id)
				lost = 1;
		}
	}
	return lost;
}

/* What a write answers when one of its keys was seen before: the contact that has it. */
static int
duplicate_out(struct pg_conn *c, struct store_req *req, int64_t id)
{
	json_t *ref = text_of(c, sql_reference, id);

	if (ref == NULL)
		return -1;
	req->out = json_pack("{s:b, s:I, s:o}", "duplicate", 1, "id", (json_int_t)id, "reference",
	    ref);
	return req->out != NULL ? 0 : -1;
}

/*
 * An Idempotency-Key (in "idempotency", its rows in "keys") seen before with
 * another body: the key names a contact, the key-with-this-body row does not.
 * Answers 422 and returns 1; 0 to go on (a replay is found as a duplicate);
 * -1 when a statement failed.
 */
static int
idempotency_conflict(struct pg_conn *c, struct store_req *req)
{
	json_t *idem = json_object_get(req->in, "idempotency"), *k;
	int64_t seen, same = 0;

	if (idem == NULL)
		return 0;
	k = json_pack("[O]", json_object_get(idem, "key"));
	seen = keys_find(c, k);
	json_decref(k);
	if (seen > 0) {
		k = json_pack("[O]", json_object_get(idem, "body"));
		same = keys_find(c, k);
		json_decref(k);
	}
	if (seen < 0 || same < 0)
		return -1;
	if (seen == 0 || same > 0)
		return 0;
	pg_host->req_fail(req, STORE_INVALID,
	    "Idempotency-Key: this key was used before with another request "
	    "body (contact %lld); send a new key for a new contact",
	    (long long)seen);
	return 1;
}

/*
 * The answer to a contact whose keys were seen: 422, or the duplicate; 1
 * answered, 0 not, -1. The body is checked after the keys were found, not
 * before: each statement reads what is committed when it starts, so a
 * concurrent first try committing between a body check that found nothing
 * and the key lookup would make a retry with another body its replay.
 */
static int
create_seen(struct pg_conn *c, struct store_req *req)
{
	int64_t dup;
	int rc;

	if ((dup = keys_find(c, json_object_get(req->in, "keys"))) <= 0)
		return dup < 0 ? -1 : 0;
	if ((rc = idempotency_conflict(c, req)) != 0)
		return rc;
	if (duplicate_out(c, req, dup) < 0)
		return -1;
	/* A client retrying with its Idempotency-Key hears what its first try made. */
	if (json_object_get(req->in, "idempotency") != NULL) {
		json_t *contact = contact_load(c, dup, 0);

		if (contact == NULL)
			return -1;
		json_object_set_new(req->out, "contact", contact);
	}
	return 1;
}

static int
message_insert(struct pg_conn *c, int64_t contact_id, json_t *msg, const char *channel,
    int64_t now, const char *actor, int64_t *msg_r)
{
	static const char sql[] = "INSERT INTO messages (contact_id, direction, channel, at, actor,"
				  " sender, recipients, subject, body, message_id, automatic,"
				  " attachments, meta, status) VALUES ($1, $2, $3, " PG_TS(4) ", $5,"
				  " $6, $7::jsonb, $8, $9, $10, $11, $12::jsonb, $13::jsonb, $14)"
				  " RETURNING id";
	const char *dir = pg_jstr(msg, "direction") != NULL ? pg_jstr(msg, "direction") : "in";
	struct pg_params p;
	PGresult *r;

	pg_params_init(&p);
	pg_p_int(&p, contact_id);
	pg_p_text(&p, dir);
	pg_p_text(&p, pg_jstr(msg, "channel") != NULL ? pg_jstr(msg, "channel") : channel);
	pg_p_int(&p, now);
	pg_p_text(&p, actor != NULL ? actor : "");
	pg_p_jtext(&p, msg, "sender");
	pg_p_json(&p, json_object_get(msg, "recipients"), "[]");
	pg_p_text(&p, pg_jstr(msg, "subject") != NULL ? pg_jstr(msg, "subject") : "");
	pg_p_text(&p, pg_jstr(msg, "body") != NULL ? pg_jstr(msg, "body") : "");
	pg_p_jtext(&p, msg, "message_id");
	pg_p_jtext(&p, msg, "automatic");
	pg_p_json(&p, json_object_get(msg, "attachments"), "[]");
	pg_p_json(&p, json_object_get(msg, "meta"), "{}");
	pg_p_text(&p, pg_jstr(msg, "status") != NULL ? pg_jstr(msg, "status")
		      : strcmp(dir, "in") == 0    ? "received"
						  : "queued");
	if ((r = pg_q(c, sql, &p)) == NULL)
		return -1;
	*msg_r = pg_int(r, 0, 0);
	PQclear(r);
	return 0;
}

static int
op_contact_create(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] =
	    "INSERT INTO contacts (reference, channel, direction, received_at, updated_at, party_id,"
	    " subject, body, product, department, organisation, line, status, priority, tags,"
	    " language, confidential, location, meta, created_by, answer, assignee, handled_at,"
	    " reply_to, party_conflict) VALUES ($1, $2, coalesce($3, 'in'), " PG_TS(4) ", "
	    PG_TS(4) ", $5, coalesce($6, ''), coalesce($7, ''), $8, $9, $10,"
	    " coalesce($11::integer, 1), coalesce($12, 'open'), coalesce($13, 'normal'),"
	    " coalesce($14::jsonb, '[]'), $15, $16::boolean, $17, coalesce($18::jsonb, '{}'), $19,"
	    " $20, $21, CASE WHEN $22::boolean THEN " PG_TS(4) " END, $23, $24::jsonb)"
	    " RETURNING id";
	json_t *in = req->in, *party = json_object_get(in, "party");
	int64_t now = json_integer_value(json_object_get(in, "received_at")), party_id = 0, id,
		next_timer = 0, msg_row;
	/* The address the contact came in with: replies without an explicit "to" go there. */
	const char *reply_to = pg_jstr(party, "email") != NULL ? pg_jstr(party, "email")
							       : pg_jstr(party, "phone");
	char reference[32], *conflict = NULL;
	size_t mark = pg_event_mark();
	struct pg_params p;
	PGresult *r;
	int rc;

	if ((rc = create_seen(c, req)) != 0)
		return rc < 0 ? pg_write_fail(c, req) : 0;
	/* Back to here when a concurrent write claimed one of this contact's keys first. */
	if (pg_exec(c, "SAVEPOINT create_contact") < 0 ||
	    pg_party_match(c, party, now, &party_id, &conflict) < 0 ||
	    reference_next(c, now, reference, sizeof(reference)) < 0)
		goto fail;
	pg_params_init(&p);
	pg_p_text(&p, reference);
	pg_p_jtext(&p, in, "channel");
	pg_p_jtext(&p, in, "direction");
	pg_p_int(&p, now);
	if (party_id != 0)
		pg_p_int(&p, party_id);
	else
		pg_p_null(&p);
	pg_p_jtext(&p, in, "subject");
	pg_p_jtext(&p, in, "body");
	pg_p_jtext(&p, in, "product");
	pg_p_jtext(&p, in, "department");
	pg_p_jtext(&p, in, "organisation");
	pg_p_jint(&p, in, "line");
	pg_p_jtext(&p, in, "status");
	pg_p_jtext(&p, in, "priority");
	pg_p_json(&p, json_object_get(in, "tags"), NULL);
	pg_p_jtext(&p, in, "language");
	pg_p_bool(&p, json_is_true(json_object_get(in, "confidential")));
	pg_p_jtext(&p, in, "location");
	pg_p_json(&p, json_object_get(in, "meta"), NULL);
	pg_p_jtext(&p, in, "created_by");
	pg_p_jtext(&p, in, "answer");
	pg_p_jtext(&p, in, "assignee");
	pg_p_bool(&p, json_is_true(json_object_get(in, "handled")));
	pg_p_text(&p, reply_to);
	pg_p_text(&p, conflict);
	if ((r = pg_q(c, sql, &p)) == NULL)
		goto fail;
	id = pg_int(r, 0, 0);
	PQclear(r);
	/* The keys right after the contact: a concurrent twin waits here, not after the work. */
	if ((rc = keys_claim(c, json_object_get(in, "keys"), id)) < 0)
		goto fail;
	if (rc > 0) {
		free(conflict);
		pg_event_rewind(mark);
		if (pg_exec(c, "ROLLBACK TO SAVEPOINT create_contact") < 0)
			return pg_write_fail(c, req);
		if ((rc = create_seen(c, req)) < 0)
			return pg_write_fail(c, req);
		if (rc == 0) {
			/* The key's holder rolled back meanwhile: the client may simply retry. */
			pg_host->req_fail(req, STORE_UNAVAILABLE,
			    "a concurrent request with the same key was being stored; try again");
		}
		return 0;
	}
	/* Kinds and party ids only: the history is no second copy of personal data. */
	if (contact_event(req, LOKET_EVENT_CONTACT_CREATED, now, id, pg_jstr(in, "status"), NULL,
		pg_jstr(in, "channel"), NULL) < 0 ||
	    pg_history_add(c, id, now, pg_jstr(in, "created_by"), "created", NULL, "open",
		pg_jstr(in, "channel")) < 0 ||
	    (conflict != NULL && pg_history_add(c, id, now, pg_jstr(in, "created_by"),
				     "party_conflict", NULL, NULL, conflict) < 0) ||
	    (party_id != 0 && pg_party_confidential_refresh(c, party_id) < 0) ||
	    contact_extras(c, req, id, in, now, pg_jstr(in, "created_by"), &next_timer) < 0 ||
	    (json_object_get(in, "message") != NULL &&
		message_insert(c, id, json_object_get(in, "message"), pg_jstr(in, "channel"), now,
		    pg_jstr(in, "created_by"), &msg_row) < 0) ||
	    counts_add(c, pg_jstr(in, "channel"), pg_jstr(in, "status"), 1) < 0 ||
	    (req->out = json_pack("{s:I, s:s, s:o}", "id", (json_int_t)id, "reference", reference,
		 "party_id", party_id != 0 ? json_integer(party_id) : json_null())) == NULL)
		goto fail;
	if (party_id != 0) {
		json_t *name = text_of(c, sql_party_name, party_id);

		if (name == NULL)
			goto fail;
		json_object_set_new(req->out, "party_name", name);
	}
	json_object_set_new(
	    req->out, "reply_to", reply_to != NULL ? json_string(reply_to) : json_null());
	json_object_set_new(req->out, "party_conflict",
	    conflict != NULL ? json_loads(conflict, 0, NULL) : json_null());
	free(conflict);
	if (next_timer > 0)
		json_object_set_new(req->out, "timers_next", json_integer(next_timer));
	return 0;
fail:
	free(conflict);
	return pg_write_fail(c, req);
}

struct contact_state {
	char status[16];
	char department[128];
	char organisation[128];
	char channel[32];
	int has_department;
	int confidential;
};

/* The contact's state, its row locked to the end of the batch; 1 found, 0 none, -1 failed. */
static int
contact_state(struct pg_conn *c, int64_t id, struct contact_state *cs)
{
	static const char sql[] = "SELECT status, department, organisation, confidential, channel"
				  " FROM contacts WHERE id = $1 FOR UPDATE";
	struct pg_params p;
	PGresult *r;
	int found;

	pg_params_init(&p);
	pg_p_int(&p, id);
	if ((r = pg_q(c, sql, &p)) == NULL)
		return -1;
	if ((found = PQntuples(r) == 1)) {
		snprintf(cs->status, sizeof(cs->status), "%s", pg_str(r, 0, 0));
		cs->has_department = !pg_isnull(r, 0, 1);
		snprintf(cs->department, sizeof(cs->department), "%s",
		    cs->has_department ? pg_str(r, 0, 1) : "");
		snprintf(cs->organisation, sizeof(cs->organisation), "%s", pg_str(r, 0, 2));
		cs->confidential = pg_str(r, 0, 3)[0] == 't';
		snprintf(cs->channel, sizeof(cs->channel), "%s", pg_str(r, 0, 4));
	}
	PQclear(r);
	return found;
}

static int
status_in(json_t *from, const char *status)
{
	size_t i;
	json_t *v;

	json_array_foreach(from, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), status) == 0)
			return 1;
	return 0;
}

static int
tasks_finish(struct pg_conn *c, struct store_req *req, int64_t contact_id, int64_t now,
    const char *actor)
{
	static const char sql[] = "UPDATE tasks SET status = 'done', done_at = " PG_TS(2)
				  ", done_by = $3 WHERE id IN (SELECT id FROM tasks WHERE"
				  " contact_id = $1 AND status = 'open' ORDER BY id FOR UPDATE)"
				  " RETURNING id, department";
	struct pg_params p;
	PGresult *r;
	int n, *order;

	pg_params_init(&p);
	pg_p_int(&p, contact_id);
	pg_p_int(&p, now);
	pg_p_text(&p, actor != NULL ? actor : "");
	if ((r = pg_q(c, sql, &p)) == NULL)
		return -1;
	/* RETURNING gives no order: the events go out in task id order. */
	n = PQntuples(r);
	if ((order = calloc((size_t)n + 1, sizeof(*order))) == NULL) {
		PQclear(r);
		return -1;
	}
	for (int i = 0; i < n; i++)
		order[i] = i;
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && pg_int(r, order[j], 0) < pg_int(r, order[j - 1], 0); j--) {
			int t = order[j];

			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	for (int i = 0; i < n; i++)
		if (task_event(req, LOKET_EVENT_TASK_DONE, now, contact_id, pg_int(r, order[i], 0),
			pg_str(r, order[i], 1)) < 0) {
			free(order);
			PQclear(r);
			return -1;
		}
	free(order);
	PQclear(r);
	return 0;
}

/* Field changes of a PATCH (or a transition), one history row each. */
static int
contact_set_fields(struct pg_conn *c, int64_t id, json_t *set, int64_t now, const char *actor)
{
	static const char sql[] =
	    "UPDATE contacts SET"
	    " subject = coalesce($2, subject), product = CASE WHEN $3::boolean THEN $4 ELSE product END,"
	    " answer = CASE WHEN $5::boolean THEN $6 ELSE answer END,"
	    " department = CASE WHEN $7::boolean THEN $8 ELSE department END,"
	    " organisation = coalesce($9, organisation), priority = coalesce($10, priority),"
	    " tags = coalesce($11::jsonb, tags), updated_at = " PG_TS(12) ","
	    " assignee = CASE WHEN $13::boolean THEN $14 ELSE assignee END,"
	    " language = CASE WHEN $15::boolean THEN $16 ELSE language END,"
	    " confidential = coalesce($17::boolean, confidential),"
	    " party_conflict = CASE WHEN $18::boolean THEN NULL ELSE party_conflict END"
	    " WHERE id = $1 RETURNING party_id";
	/* Access to a task follows its contact; its department does too, or lists would differ. */
	static const char sql_tasks[] = "UPDATE tasks SET department = $2 WHERE contact_id = $1"
					" AND status = 'open'";
	struct pg_params p;
	const char *key;
	int64_t party_id = 0;
	PGresult *r;
	json_t *v;

	if (json_object_size(set) == 0)
		return 0;
	pg_params_init(&p);
	pg_p_int(&p, id);
	pg_p_jtext(&p, set, "subject");
	pg_p_bool(&p, json_object_get(set, "product") != NULL);
	pg_p_jtext(&p, set, "product");
	pg_p_bool(&p, json_object_get(set, "answer") != NULL);
	pg_p_jtext(&p, set, "answer");
	pg_p_bool(&p, json_object_get(set, "department") != NULL);
	pg_p_jtext(&p, set, "department");
	pg_p_jtext(&p, set, "organisation");
	pg_p_jtext(&p, set, "priority");
	pg_p_json(&p, json_object_get(set, "tags"), NULL);
	pg_p_int(&p, now);
	/* Set by rules in follow-ups (the API's PATCH does not take these). */
	pg_p_bool(&p, json_object_get(set, "assignee") != NULL);
	pg_p_jtext(&p, set, "assignee");
	pg_p_bool(&p, json_object_get(set, "language") != NULL);
	pg_p_jtext(&p, set, "language");
	if (json_is_boolean(json_object_get(set, "confidential")))
		pg_p_bool(&p, json_is_true(json_object_get(set, "confidential")));
	else
		pg_p_null(&p);
	pg_p_bool(&p, json_object_get(set, "party_conflict") != NULL);
	if ((r = pg_q(c, sql, &p)) == NULL)
		return -1;
	if (PQntuples(r) == 1)
		party_id = pg_int(r, 0, 0);
	PQclear(r);
	if (json_is_string(json_object_get(set, "department"))) {
		pg_params_init(&p);
		pg_p_int(&p, id);
		pg_p_jtext(&p, set, "department");
		if (pg_q_exec(c, sql_tasks, &p) < 0)
			return -1;
	}
	if (json_is_boolean(json_object_get(set, "confidential")) && party_id != 0 &&
	    pg_party_confidential_refresh(c, party_id) < 0)
		return -1;
	json_object_foreach(set, key, v) {
		/* Field names are recorded, not their values: the history is no second copy of personal data. */
		if (strcmp(key, "organisation") != 0 &&
		    pg_history_add(c, id, now, actor, "updated", NULL, NULL, key) < 0)
			return -1;
	}
	return 0;
}

/*
 * The task a contact update acts on (in.on_task: {id, assignee, holders,
 * done}), its row locked: checked before anything is written. 1 to go on;
 * 0 with req answered (NOT_FOUND, CONFLICT with out {status} or {status,
 * assignee}); -1 failed.
 */
static int
task_on_check(struct pg_conn *c, struct store_req *req, int64_t contact_id, json_t *on)
{
	static const char sql[] = "SELECT status, assignee FROM tasks WHERE id = $1"
				  " AND contact_id = $2 FOR UPDATE";
	int64_t task_id = json_integer_value(json_object_get(on, "id"));
	json_t *holders = json_object_get(on, "holders"), *h;
	char status[16], assignee[256];
	int has_assignee, held = 0;
	struct pg_params p;
	PGresult *r;
	size_t i;

	pg_params_init(&p);
	pg_p_int(&p, task_id);
	pg_p_int(&p, contact_id);
	if ((r = pg_q(c, sql, &p)) == NULL)
		return -1;
	if (PQntuples(r) != 1) {
		PQclear(r);
		pg_host->req_fail(req, STORE_NOT_FOUND, "no task with id %lld on that contact",
		    (long long)task_id);
		return 0;
	}
	snprintf(status, sizeof(status), "%s", pg_str(r, 0, 0));
	if ((has_assignee = !pg_isnull(r, 0, 1)))
		snprintf(assignee, sizeof(assignee), "%s", pg_str(r, 0, 1));
	PQclear(r);
	if (strcmp(status, "open") != 0) {
		pg_host->req_fail(req, STORE_CONFLICT, "the task is already %s", status);
		req->out = json_pack("{s:s}", "status", status);
		return 0;
	}
	if (!json_is_array(holders))
		return 1;
	json_array_foreach(holders, i, h)
		held |= has_assignee ? json_is_string(h) && strcmp(json_string_value(h), assignee) == 0
				     : json_is_null(h);
	if (!held) {
		pg_host->req_fail(req, STORE_CONFLICT, "the task is held by someone else");
		req->out = json_pack("{s:s, s:s?}", "status", status, "assignee",
		    has_assignee ? assignee : NULL);
		return 0;
	}
	return 1;
}

/* Writes what in.on_task asks of the checked task: its assignee, its end. */
static int
task_on_apply(struct pg_conn *c, struct store_req *req, int64_t contact_id, json_t *on,
    int64_t now, const char *actor)
{
	static const char sql_assign[] = "UPDATE tasks SET assignee = $2 WHERE id = $1";
	static const char sql_done[] = "UPDATE tasks SET status = 'done', done_at = " PG_TS(2)
				       ", done_by = $3 WHERE id = $1 RETURNING department";
	int64_t task_id = json_integer_value(json_object_get(on, "id"));
	struct pg_params p;
	PGresult *r;
	int rc;

	if (json_object_get(on, "assignee") != NULL) {
		pg_params_init(&p);
		pg_p_int(&p, task_id);
		pg_p_jtext(&p, on, "assignee");
		if (pg_q_exec(c, sql_assign, &p) < 0)
			return -1;
	}
	if (!json_is_true(json_object_get(on, "done")))
		return 0;
	pg_params_init(&p);
	pg_p_int(&p, task_id);
	pg_p_int(&p, now);
	pg_p_text(&p, actor != NULL ? actor : "");
	if ((r = pg_q(c, sql_done, &p)) == NULL)
		return -1;
	rc = PQntuples(r) == 1 ? task_event(req, LOKET_EVENT_TASK_DONE, now, contact_id, task_id,
				     pg_str(r, 0, 0))
			       : -1;
	PQclear(r);
	return rc;
}

static int
op_contact_update(struct pg_conn *c, struct store_req *req)
{
	static const char sql_status[] = "UPDATE contacts SET status = $2, line = coalesce($3::integer,"
					 " line), handled_at = CASE WHEN $4::boolean THEN " PG_TS(5)
					 " ELSE handled_at END, updated_at = " PG_TS(5) " WHERE id = $1";
	json_t *in = req->in, *tr = json_object_get(in, "transition");
	json_t *set = json_object_get(in, "set");
	int64_t id = json_integer_value(json_object_get(in, "id"));
	int64_t now = json_integer_value(json_object_get(in, "at"));
	const char *actor = pg_jstr(in, "actor");
	struct contact_state cs;
	int64_t next_timer = 0;
	struct pg_params p;
	int found;

	if ((found = contact_state(c, id, &cs)) < 0)
		goto fail;
	if (!found) {
		pg_host->req_fail(req, STORE_NOT_FOUND, "no contact with id %lld", (long long)id);
		return 0;
	}
	if (!pg_scope_allows(json_object_get(in, "scope"), cs.has_department ? cs.department : NULL,
		cs.organisation, cs.confidential)) {
		pg_host->req_fail(req, STORE_FORBIDDEN, "this token may not change that contact");
		return 0;
	}
	/*
	 * The caller's condition (docs/storage.md, expect), checked on the row
	 * as it is inside this write; the layer above words the refusal.
	 */
	if (json_object_get(in, "expect") != NULL &&
	    !pg_scope_allows(json_object_get(in, "expect"),
		cs.has_department ? cs.department : NULL, cs.organisation, cs.confidential)) {
		pg_host->req_fail(req, STORE_FORBIDDEN,
		    "the contact no longer meets the condition of this change");
		req->out = json_pack("{s:s?, s:s, s:b}", "department",
		    cs.has_department ? cs.department : NULL, "organisation", cs.organisation,
		    "confidential", cs.confidential);
		return 0;
	}
	if (tr != NULL && !status_in(json_object_get(tr, "from"), cs.status)) {
		pg_host->req_fail(req, STORE_CONFLICT, "the contact is %s; it cannot be %s from there",
		    cs.status, pg_jstr(tr, "past") != NULL ? pg_jstr(tr, "past") : "changed");
		req->out = json_pack("{s:s}", "status", cs.status);
		return 0;
	}
	if (json_is_integer(json_object_get(in, "timer_done"))) {
		int rc = timer_still_pending(c, req, json_integer_value(json_object_get(in,
							 "timer_done")));

		if (rc <= 0)
			return rc < 0 ? pg_write_fail(c, req) : 0;
	}
	if (json_is_object(json_object_get(in, "on_task"))) {
		int rc = task_on_check(c, req, id, json_object_get(in, "on_task"));

		if (rc <= 0)
			return rc < 0 ? pg_write_fail(c, req) : 0;
		/* Before the fields: a department move carries the tasks still open, not this one. */
		if (task_on_apply(c, req, id, json_object_get(in, "on_task"), now, actor) < 0)
			goto fail;
	}
	if (contact_set_fields(c, id, set, now, actor) < 0)
		goto fail;
	if (tr != NULL) {
		pg_params_init(&p);
		pg_p_int(&p, id);
		pg_p_jtext(&p, tr, "to");
		pg_p_jint(&p, tr, "line");
		pg_p_bool(&p, json_is_true(json_object_get(tr, "handled")));
		pg_p_int(&p, now);
		if (pg_q_exec(c, sql_status, &p) < 0 ||
		    pg_history_add(c, id, now, actor, pg_jstr(tr, "action"), cs.status,
			pg_jstr(tr, "to"), pg_jstr(tr, "detail")) < 0 ||
		    counts_add(c, cs.channel, cs.status, -1) < 0 ||
		    counts_add(c, cs.channel, pg_jstr(tr, "to"), 1) < 0)
			goto fail;
	}
	/* Every stored change of a contact is news, a status change or not (a tag, a history row). */
	if (contact_event(req, LOKET_EVENT_CONTACT_CHANGED, now, id,
		tr != NULL ? pg_jstr(tr, "to") : cs.status, cs.status, cs.channel, NULL) < 0)
		goto fail;
	if (json_is_true(json_object_get(in, "finish_tasks")) &&
	    tasks_finish(c, req, id, now, actor) < 0)
		goto fail;
	if (json_object_get(in, "task") != NULL &&
	    task_with_deadline(c, req, id, json_object_get(in, "task"), now, actor, &next_timer) < 0)
		goto fail;
	if (rule_rows(c, req, id, in, now, cs.channel, &next_timer) < 0)
		goto fail;
	if ((req->out = contact_load(c, id, 1)) == NULL)
		goto fail;
	if (next_timer > 0)
		json_object_set_new(req->out, "timers_next", json_integer(next_timer));
	json_object_set_new(req->out, "previous_status", json_string(cs.status));
	return 0;
fail:
	return pg_write_fail(c, req);
}

static const char sql_task_by_id[] = "SELECT " TASK_COLS
				     "FROM tasks t JOIN contacts c ON c.id = t.contact_id"
				     " WHERE t.id = $1";

static int
op_task_done(struct pg_conn *c, struct store_req *req)
{
	static const char sql_lock[] = "SELECT contact_id, status FROM tasks WHERE id = $1 FOR UPDATE";
	static const char sql_done[] = "UPDATE tasks SET status = 'done', done_at = " PG_TS(2)
				       ", done_by = $3 WHERE id = $1";
	static const char sql_open_left[] = "SELECT count(*) FROM tasks WHERE contact_id = $1 AND"
					    " status = 'open'";
	static const char sql_close[] = "UPDATE contacts SET status = 'closed', handled_at = "
					PG_TS(2) ", updated_at = " PG_TS(2) " WHERE id = $1";
	json_t *in = req->in;
	int64_t id = json_integer_value(json_object_get(in, "id"));
	int64_t now = json_integer_value(json_object_get(in, "at"));
	const char *actor = pg_jstr(in, "actor");
	int64_t contact_id, open_left = 0;
	struct contact_state cs;
	char status[16];
	struct pg_params p;
	PGresult *r;
	int found, closes;

	pg_params_init(&p);
	pg_p_int(&p, id);
	if ((r = pg_q(c, sql_lock, &p)) == NULL)
		goto fail;
	if (PQntuples(r) != 1) {
		PQclear(r);
		pg_host->req_fail(req, STORE_NOT_FOUND, "no task with id %lld", (long long)id);
		return 0;
	}
	contact_id = pg_int(r, 0, 0);
	snprintf(status, sizeof(status), "%s", pg_str(r, 0, 1));
	PQclear(r);
	/* Who may finish a task follows its contact, wherever the contact went since. */
	if ((found = contact_state(c, contact_id, &cs)) < 0)
		goto fail;
	if (!found || !pg_scope_allows(json_object_get(in, "scope"),
			  cs.has_department ? cs.department : NULL, cs.organisation,
			  cs.confidential)) {
		pg_host->req_fail(req, STORE_FORBIDDEN, "this token may not finish that task");
		return 0;
	}
	if (strcmp(status, "open") != 0) {
		pg_host->req_fail(req, STORE_CONFLICT, "the task is already done");
		req->out = json_pack("{s:s}", "status", status);
		return 0;
	}
	pg_params_init(&p);
	pg_p_int(&p, id);
	pg_p_int(&p, now);
	pg_p_text(&p, actor != NULL ? actor : "");
	if (pg_q_exec(c, sql_done, &p) < 0)
		goto fail;
	pg_params_init(&p);
	pg_p_int(&p, contact_id);
	if ((r = pg_q(c, sql_open_left, &p)) == NULL)
		goto fail;
	open_left = pg_int(r, 0, 0);
	PQclear(r);
	if (pg_history_add(c, contact_id, now, actor, "task_done", NULL, NULL, NULL) < 0 ||
	    task_event(req, LOKET_EVENT_TASK_DONE, now, contact_id, id,
		cs.has_department ? cs.department : NULL) < 0)
		goto fail;
	closes = open_left == 0 && strcmp(cs.status, "escalated") == 0;
	if (closes) {
		pg_params_init(&p);
		pg_p_int(&p, contact_id);
		pg_p_int(&p, now);
		if (pg_q_exec(c, sql_close, &p) < 0 ||
		    pg_history_add(c, contact_id, now, actor, "close", "escalated", "closed",
			"all tasks done") < 0 ||
		    counts_add(c, cs.channel, "escalated", -1) < 0 ||
		    counts_add(c, cs.channel, "closed", 1) < 0 ||
		    contact_event(req, LOKET_EVENT_CONTACT_CHANGED, now, contact_id, "closed",
			"escalated", cs.channel, NULL) < 0)
			goto fail;
	}
	pg_params_init(&p);
	pg_p_int(&p, id);
	if ((r = pg_q(c, sql_task_by_id, &p)) == NULL)
		goto fail;
	if (PQntuples(r) != 1) {
		PQclear(r);
		goto fail;
	}
	req->out = task_row(r, 0);
	PQclear(r);
	json_object_set_new(req->out, "contact_status", json_string(closes ? "closed" : cs.status));
	json_object_set_new(req->out, "contact_previous_status", json_string(cs.status));
	json_object_set_new(req->out, "channel", json_string(cs.channel));
	return 0;
fail:
	return pg_write_fail(c, req);
}

static int
op_token_put(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] = "INSERT INTO tokens (name, hash, role, departments, organisation,"
				  " created_at) VALUES ($1, $2, $3, $4::jsonb, $5, " PG_TS(6) ")"
				  " ON CONFLICT (name) DO UPDATE SET hash = EXCLUDED.hash,"
				  " role = EXCLUDED.role, departments = EXCLUDED.departments,"
				  " organisation = EXCLUDED.organisation,"
				  " created_at = EXCLUDED.created_at, revoked_at = NULL"
				  " WHERE tokens.revoked_at IS NOT NULL";
	json_t *in = req->in;
	struct pg_params p;
	int64_t n;

	pg_params_init(&p);
	pg_p_jtext(&p, in, "name");
	pg_p_jtext(&p, in, "hash");
	pg_p_jtext(&p, in, "role");
	pg_p_json(&p, json_object_get(in, "departments"), "[]");
	pg_p_jtext(&p, in, "organisation");
	pg_p_jint(&p, in, "created_at");
	if ((n = pg_q_exec(c, sql, &p)) < 0)
		return pg_write_fail(c, req);
	if (n == 0)
		pg_host->req_fail(req, STORE_CONFLICT, "a token named '%s' exists; revoke it first",
		    pg_jstr(in, "name") != NULL ? pg_jstr(in, "name") : "");
	return 0;
}

static int
op_token_revoke(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] = "UPDATE tokens SET revoked_at = " PG_TS(2) " WHERE name = $1 AND"
				  " revoked_at IS NULL";
	struct pg_params p;
	int64_t n;

	pg_params_init(&p);
	pg_p_jtext(&p, req->in, "name");
	pg_p_jint(&p, req->in, "at");
	if ((n = pg_q_exec(c, sql, &p)) < 0)
		return pg_write_fail(c, req);
	if (n == 0)
		pg_host->req_fail(req, STORE_NOT_FOUND, "no active token named '%s'",
		    pg_jstr(req->in, "name") != NULL ? pg_jstr(req->in, "name") : "");
	return 0;
}

static int
op_audit(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] = "INSERT INTO audit (at, token, action, object) VALUES (" PG_TS(1)
				  ", $2, $3, $4)";
	struct pg_params p;
	json_t *row;
	size_t i;

	json_array_foreach(json_object_get(req->in, "rows"), i, row) {
		pg_params_init(&p);
		pg_p_jint(&p, row, "at");
		pg_p_text(&p, pg_jstr(row, "token") != NULL ? pg_jstr(row, "token") : "");
		pg_p_text(&p, pg_jstr(row, "action") != NULL ? pg_jstr(row, "action") : "");
		pg_p_text(&p, pg_jstr(row, "object") != NULL ? pg_jstr(row, "object") : "");
		if (pg_q_exec(c, sql, &p) < 0)
			return pg_write_fail(c, req);
	}
	return 0;
}

static int
op_timer_done(struct pg_conn *c, struct store_req *req)
{
	/* A timer closed without action (its contact moved on): no event to tell. */
	if (timer_done(c, req, json_integer_value(json_object_get(req->in, "id")),
		json_integer_value(json_object_get(req->in, "at")), 0) < 0)
		return pg_write_fail(c, req);
	return 0;
}

/* Whether the contact came in as automatic mail (out-of-office, bounce, list); -1 failed. */
static int
contact_automatic(struct pg_conn *c, int64_t id)
{
	static const char sql[] = "SELECT 1 FROM messages WHERE contact_id = $1 AND"
				  " direction = 'in' AND automatic IS NOT NULL LIMIT 1";
	struct pg_params p;
	PGresult *r;
	int found;

	pg_params_init(&p);
	pg_p_int(&p, id);
	if ((r = pg_q(c, sql, &p)) == NULL)
		return -1;
	found = PQntuples(r) > 0;
	PQclear(r);
	return found;
}

/*
 * A message on an existing contact: a citizen's reply threaded by a channel,
 * or a staff message with its outbox row. A reply reopens a resolved or
 * closed contact. Exactly once per message key: the keys are claimed first,
 * and a key another write holds makes this one its duplicate.
 */
static int
op_message_add(struct pg_conn *c, struct store_req *req)
{
	static const char sql_reopen[] = "UPDATE contacts SET status = 'open', line = 1,"
					 " updated_at = " PG_TS(2) " WHERE id = $1";
	static const char sql_touch[] = "UPDATE contacts SET updated_at = " PG_TS(2) " WHERE id = $1";
	json_t *in = req->in, *msg = json_object_get(in, "message"), *v, *keys;
	int64_t id = json_integer_value(json_object_get(in, "id"));
	int64_t now = json_integer_value(json_object_get(in, "at"));
	const char *actor = pg_jstr(in, "actor");
	const char *dir = pg_jstr(msg, "direction") != NULL ? pg_jstr(msg, "direction") : "in";
	struct contact_state cs;
	int64_t dup, msg_row;
	struct pg_params p;
	int reopen, found, rc;
	size_t i;

	keys = json_object_get(in, "keys");
	if ((dup = keys_find(c, keys)) < 0)
		goto fail;
	if (dup > 0)
		return duplicate_out(c, req, dup) < 0 ? pg_write_fail(c, req) : 0;
	if ((found = contact_state(c, id, &cs)) < 0)
		goto fail;
	if (!found) {
		pg_host->req_fail(req, STORE_NOT_FOUND, "no contact with id %lld", (long long)id);
		return 0;
	}
	if (!pg_scope_allows(json_object_get(in, "scope"), cs.has_department ? cs.department : NULL,
		cs.organisation, cs.confidential)) {
		pg_host->req_fail(req, STORE_FORBIDDEN, "this token may not change that contact");
		return 0;
	}
	if (json_is_true(json_object_get(in, "staff"))) {
		if ((rc = contact_automatic(c, id)) < 0)
			goto fail;
		if (rc > 0) {
			pg_host->req_fail(req, STORE_CONFLICT,
			    "this contact is an automatic mail (an out-of-office, a "
			    "bounce, a list); loket does not answer it");
			return 0;
		}
	}
	/* Staff see where a message without "to" goes: the address the contact came in with. */
	if (json_is_true(json_object_get(in, "staff")) &&
	    json_array_size(json_object_get(msg, "recipients")) == 0) {
		json_t *reply_to = text_of(c, sql_reply_to, id);
		const char *via = pg_jstr(json_array_get(json_object_get(in, "outbox"), 0), "via");

		if (reply_to == NULL)
			goto fail;
		/*
		 * A contact that came in by phone or at the counter has no mail address of
		 * its own; the party's would be unverified. Staff give "to" on purpose.
		 */
		if (strcmp(via != NULL ? via : cs.channel, "email") == 0 &&
		    (!json_is_string(reply_to) || strchr(json_string_value(reply_to), '@') == NULL)) {
			json_decref(reply_to);
			pg_host->req_fail(req, STORE_INVALID,
			    "to: this contact did not come in by mail, so it has no address to answer "
			    "to; give \"to\", an address the citizen confirmed");
			return 0;
		}
		if (json_is_string(reply_to) && json_is_object(msg))
			json_object_set_new(msg, "recipients", json_pack("[O]", reply_to));
		json_decref(reply_to);
	}
	reopen = json_is_true(json_object_get(in, "reopen")) &&
	    (strcmp(cs.status, "resolved") == 0 || strcmp(cs.status, "closed") == 0);
	if (pg_exec(c, "SAVEPOINT add_message") < 0 ||
	    message_insert(c, id, msg, cs.channel, now, actor, &msg_row) < 0 ||
	    (rc = keys_claim(c, keys, id)) < 0)
		goto fail;
	if (rc > 0) {
		/* A concurrent write stored this message first: this one is its duplicate. */
		if (pg_exec(c, "ROLLBACK TO SAVEPOINT add_message") < 0 ||
		    (dup = keys_find(c, keys)) < 0)
			goto fail;
		if (dup > 0)
			return duplicate_out(c, req, dup) < 0 ? pg_write_fail(c, req) : 0;
		pg_host->req_fail(req, STORE_UNAVAILABLE,
		    "a concurrent request with the same key was being stored; try again");
		return 0;
	}
	pg_params_init(&p);
	pg_p_int(&p, id);
	pg_p_int(&p, now);
	if (pg_history_add(c, id, now, actor, "message", NULL, NULL, dir) < 0 ||
	    pg_q_exec(c, reopen ? sql_reopen : sql_touch, &p) < 0)
		goto fail;
	if (pg_event(req, LOKET_EVENT_MESSAGE_ADDED, now, id, 0,
		"{\"message\":%lld,\"direction\":\"%s\"}", (long long)msg_row,
		strcmp(dir, "out") == 0 ? "out" : "in") < 0)
		goto fail;
	/* The rules of "reply" run for this, not those of "reopened": the cause says why. */
	if (reopen &&
	    (pg_history_add(c, id, now, actor, "reopen", cs.status, "open", "reply") < 0 ||
		counts_add(c, cs.channel, cs.status, -1) < 0 ||
		counts_add(c, cs.channel, "open", 1) < 0 ||
		contact_event(req, LOKET_EVENT_CONTACT_CHANGED, now, id, "open", cs.status,
		    cs.channel, "reply") < 0))
		goto fail;
	json_array_foreach(json_object_get(in, "outbox"), i, v)
		json_object_set_new(v, "message_row", json_integer(msg_row));
	if (outbox_rows(c, id, in, now, cs.channel) < 0 ||
	    (req->out = contact_load(c, id, 1)) == NULL)
		goto fail;
	json_object_set_new(req->out, "message_row", json_integer(msg_row));
	pg_params_init(&p);
	pg_p_int(&p, msg_row);
	{
		PGresult *r = pg_q(c, sql_message, &p);

		if (r == NULL)
			goto fail;
		json_object_set_new(
		    req->out, "message", PQntuples(r) == 1 ? message_row(r, 0) : json_null());
		PQclear(r);
	}
	json_object_set_new(req->out, "previous_status", json_string(cs.status));
	return 0;
fail:
	return pg_write_fail(c, req);
}

/*
 * A sender's outcome: sent (with the message as it went out, so a reply to
 * it threads back), to be retried at next_at, or failed for good. The row
 * is locked: a second outcome (another node's) finds it no longer pending.
 */
static int
op_outbox_done(struct pg_conn *c, struct store_req *req)
{
	static const char sql_row[] = "SELECT contact_id, message_row, template, rule, channel"
				      " FROM outbox WHERE id = $1 AND status = 'pending' FOR UPDATE";
	static const char sql_upd[] = "UPDATE outbox SET status = $2, attempts = attempts + 1,"
				      " next_at = coalesce(" PG_TS(3) ", next_at), sent_at = CASE WHEN"
				      " $2 = 'sent' THEN " PG_TS(4) " END, error = $5,"
				      " recipient = coalesce($6, recipient), claimed_by = NULL,"
				      " claim_until = NULL WHERE id = $1";
	static const char sql_msg[] = "UPDATE messages SET status = $2, message_id ="
				      " coalesce($3, message_id), subject = coalesce($4, subject),"
				      " body = coalesce($5, body), sender = coalesce($6, sender),"
				      " recipients = coalesce($7::jsonb, recipients) WHERE id = $1";
	json_t *in = req->in, *sent = json_object_get(in, "sent");
	int64_t id = json_integer_value(json_object_get(in, "id"));
	int64_t now = json_integer_value(json_object_get(in, "at"));
	const char *result = pg_jstr(in, "result") != NULL ? pg_jstr(in, "result") : "failed";
	const char *status = strcmp(result, "retry") == 0 ? "pending" : result;
	int64_t contact_id, msg_row = 0;
	char actor[300], detail[300], channel[32];
	struct pg_params p;
	PGresult *r;

	pg_params_init(&p);
	pg_p_int(&p, id);
	if ((r = pg_q(c, sql_row, &p)) == NULL)
		goto fail;
	if (PQntuples(r) != 1) {
		PQclear(r);
		pg_host->req_fail(req, STORE_NOT_FOUND, "no pending outbox row %lld", (long long)id);
		return 0;
	}
	contact_id = pg_int(r, 0, 0);
	if (!pg_isnull(r, 0, 1))
		msg_row = pg_int(r, 0, 1);
	snprintf(actor, sizeof(actor), "%s%s", !pg_isnull(r, 0, 3) ? "rule:" : "outbox",
	    !pg_isnull(r, 0, 3) ? pg_str(r, 0, 3) : "");
	snprintf(detail, sizeof(detail), "%s %s", status, !pg_isnull(r, 0, 2) ? pg_str(r, 0, 2) : "");
	snprintf(channel, sizeof(channel), "%s", !pg_isnull(r, 0, 4) ? pg_str(r, 0, 4) : "");
	PQclear(r);
	pg_params_init(&p);
	pg_p_int(&p, id);
	pg_p_text(&p, status);
	pg_p_jint(&p, in, "next_at");
	pg_p_int(&p, now);
	pg_p_jtext(&p, in, "error");
	pg_p_jtext(&p, in, "recipient");
	if (pg_q_exec(c, sql_upd, &p) < 0)
		goto fail;
	if (strcmp(status, "pending") != 0) {
		if (msg_row == 0) {
			/* A rule's reply: the message exists from now on, as it went out. */
			json_t *msg = json_pack("{s:s, s:s}", "direction", "out", "status", status);

			if (msg == NULL)
				goto fail;
			if (json_is_object(sent))
				json_object_update_missing(msg, sent);
			json_object_set_new(msg, "meta", json_pack("{s:I}", "outbox", (json_int_t)id));
			if (message_insert(c, contact_id, msg, channel, now, actor, &msg_row) < 0 ||
			    pg_event(req, LOKET_EVENT_MESSAGE_ADDED, now, contact_id, 0,
				"{\"message\":%lld,\"direction\":\"out\"}", (long long)msg_row) < 0) {
				json_decref(msg);
				goto fail;
			}
			json_decref(msg);
		} else {
			pg_params_init(&p);
			pg_p_int(&p, msg_row);
			pg_p_text(&p, status);
			pg_p_jtext(&p, sent, "message_id");
			pg_p_jtext(&p, sent, "subject");
			pg_p_jtext(&p, sent, "body");
			pg_p_jtext(&p, sent, "sender");
			pg_p_json(&p, json_object_get(sent, "recipients"), NULL);
			if (pg_q_exec(c, sql_msg, &p) < 0)
				goto fail;
		}
		if (pg_history_add(c, contact_id, now, actor, "message", NULL, NULL, detail) < 0)
			goto fail;
	}
	req->out = json_pack("{s:I, s:s, s:I}", "id", (json_int_t)id, "status", status,
	    "contact_id", (json_int_t)contact_id);
	return 0;
fail:
	return pg_write_fail(c, req);
}

int
pg_write_run(struct pg_conn *c, struct store_req *req)
{
	switch (req->op) {
	case STORE_CONTACT_CREATE:
		return op_contact_create(c, req);
	case STORE_CONTACT_UPDATE:
		return op_contact_update(c, req);
	case STORE_TASK_DONE:
		return op_task_done(c, req);
	case STORE_TOKEN_PUT:
		return op_token_put(c, req);
	case STORE_TOKEN_REVOKE:
		return op_token_revoke(c, req);
	case STORE_AUDIT:
		return op_audit(c, req);
	case STORE_TIMER_DONE:
		return op_timer_done(c, req);
	case STORE_MESSAGE_ADD:
		return op_message_add(c, req);
	case STORE_OUTBOX_DONE:
		return op_outbox_done(c, req);
	case STORE_PARTY_UPDATE:
		return pg_party_update(c, req);
	case STORE_PARTY_MERGE:
		return pg_party_merge(c, req);
	case STORE_USER_ADD:
	case STORE_USER_UPDATE:
	case STORE_SIGNIN_FAIL:
	case STORE_SESSION_PUT:
	case STORE_SESSION_TOUCH:
	case STORE_SESSION_END:
		return pg_users_write(c, req);
	default:
		pg_host->req_fail(req, STORE_FAILED, "the register cannot do this");
		pg_logf("writer: %s is not a write", pg_host->op_name(req->op));
		return 0;
	}
}
