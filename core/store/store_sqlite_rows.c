/*
 * store_sqlite_rows.c: what the SQLite request files share: values bound in,
 * rows read out in the storage shapes, the events stored with a write, and
 * the one door to a contact a request names.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_sqlite.h"
#include "util.h"

const char *
sq_jstr(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

void
sq_bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v != NULL)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

void
sq_bind_json_text(sqlite3_stmt *st, int i, json_t *obj, const char *key)
{
	sq_bind_text(st, i, sq_jstr(obj, key));
}

void
sq_bind_json_int(sqlite3_stmt *st, int i, json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_integer(v))
		sqlite3_bind_int64(st, i, json_integer_value(v));
	else
		sqlite3_bind_null(st, i);
}

void
sq_bind_dump(sqlite3_stmt *st, int i, json_t *v, const char *fallback)
{
	char *s = v != NULL ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

	sqlite3_bind_text(st, i, s != NULL ? s : fallback, -1, SQLITE_TRANSIENT);
	free(s);
}

json_t *
sq_col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s != NULL ? json_stringn((const char *)s, (size_t)sqlite3_column_bytes(st, i))
	                 : json_null();
}

json_t *
sq_col_time(sqlite3_stmt *st, int i)
{
	char buf[40];

	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return json_null();
	util_time_format(sqlite3_column_int64(st, i), buf, sizeof(buf));
	return json_string(buf);
}

json_t *
sq_col_json(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	json_t *v = s != NULL ? json_loads(s, JSON_ALLOW_NUL, NULL) : NULL;

	return v != NULL ? v : json_null();
}

const char *
sq_event_str(char *buf, size_t len, const char *s)
{
	size_t n = 0;

	for (; s != NULL && *s != '\0' && n + 7 < len; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			buf[n++] = '\\';
			buf[n++] = (char)ch;
		} else if (ch < 0x20) {
			n += (size_t)snprintf(buf + n, len - n, "\\u%04x", ch);
		} else {
			buf[n++] = (char)ch;
		}
	}
	buf[n] = '\0';
	return buf;
}

/*
 * The contact's scope fields as this write has left them so far, added to
 * the payload: every event of a contact carries what a reader's scope is
 * checked against.
 */
static int
sq_event_scope(struct sq_conn *c, sqlite3_int64 contact_id, char *payload)
{
	static const char sql[] = "SELECT department, organisation, confidential FROM contacts"
	                          " WHERE id = ?1";
	sqlite3_stmt *st = sq_stmt(c, sql);
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, contact_id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		store_event_scope_add(payload, (const char *)sqlite3_column_text(st, 0),
		    (const char *)sqlite3_column_text(st, 1), sqlite3_column_int(st, 2));
	else
		store_event_scope_add(payload, NULL, NULL, 1);
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int
sq_event(struct sq_conn *c, enum loket_event_kind kind, sqlite3_int64 at, sqlite3_int64 contact_id,
    sqlite3_int64 task_id, const char *payload_fmt, ...)
{
	static const char sql[] = "INSERT INTO events (at, kind, contact_id, task_id, payload)"
	                          " VALUES (?1, ?2, ?3, ?4, ?5)";
	struct store_event ev
	    = { .at = at, .kind = kind, .contact_id = contact_id, .task_id = task_id };
	sqlite3_stmt *st;
	va_list ap;
	int n;

	va_start(ap, payload_fmt);
	n = vsnprintf(ev.payload, sizeof(ev.payload), payload_fmt, ap);
	va_end(ap);
	/* A cut payload would not parse: the ids alone still say what happened. */
	if (n < 0 || (size_t)n >= sizeof(ev.payload))
		snprintf(ev.payload, sizeof(ev.payload), "{}");
	if (c->req == NULL)
		return -1;
	if (contact_id != 0 && sq_event_scope(c, contact_id, ev.payload) < 0)
		return -1;
	if ((st = sq_stmt(c, sql)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, at);
	sq_bind_text(st, 2, store_event_name(kind));
	if (contact_id != 0)
		sqlite3_bind_int64(st, 3, contact_id);
	if (task_id != 0)
		sqlite3_bind_int64(st, 4, task_id);
	sq_bind_text(st, 5, ev.payload);
	if (sqlite3_step(st) != SQLITE_DONE)
		return -1;
	ev.id = sqlite3_last_insert_rowid(c->db);
	return store_req_event(c->req, &ev);
}

/* The payload of a contact's event: its status, where it came from, and the status before. */
int
sq_contact_event(struct sq_conn *c, enum loket_event_kind kind, sqlite3_int64 at,
    sqlite3_int64 contact_id, const char *status, const char *previous, const char *channel,
    const char *cause)
{
	char st[32], prev[32], ch[64], why[32];

	if (previous == NULL)
		return sq_event(c, kind, at, contact_id, 0,
		    "{\"status\":\"%s\",\"channel\":\"%s\"}", sq_event_str(st, sizeof(st), status),
		    sq_event_str(ch, sizeof(ch), channel));
	return sq_event(c, kind, at, contact_id, 0,
	    "{\"status\":\"%s\",\"previous_status\":\"%s\",\"channel\":\"%s\"%s%s%s}",
	    sq_event_str(st, sizeof(st), status), sq_event_str(prev, sizeof(prev), previous),
	    sq_event_str(ch, sizeof(ch), channel), cause != NULL ? ",\"cause\":\"" : "",
	    cause != NULL ? sq_event_str(why, sizeof(why), cause) : "", cause != NULL ? "\"" : "");
}

/* A task's event: its department (no reason: that is free text). */
int
sq_task_event(struct sq_conn *c, enum loket_event_kind kind, sqlite3_int64 at,
    sqlite3_int64 contact_id, sqlite3_int64 task_id, const char *department)
{
	char dep[160];

	if (department == NULL)
		return sq_event(c, kind, at, contact_id, task_id, "{}");
	return sq_event(c, kind, at, contact_id, task_id, "{\"department\":\"%s\"}",
	    sq_event_str(dep, sizeof(dep), department));
}

/*
 * SQLite's own text names tables and constraints: it goes to the log with
 * the request kind, and the client gets a sentence written for a person.
 */
int
sq_step_error(struct sq_conn *c, struct store_req *req, int rc)
{
	log_warnx("store", "%s: %s (code %d)", store_op_name(req->op), sqlite3_errmsg(c->db),
	    sqlite3_extended_errcode(c->db));
	if (rc == SQLITE_CONSTRAINT)
		store_req_fail(req, STORE_CONFLICT,
		    "the register holds a record that conflicts with this one; reload and try "
		    "again");
	else
		store_req_fail(req, STORE_FAILED,
		    store_op_is_write(req->op)
		        ? "the register could not store this; try again later"
		        : "the register could not read this; try again later");
	return -1;
}

/* A column holding ms since the epoch, or NULL. */
json_t *
sq_col_ms(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL
	    ? json_null()
	    : json_integer(sqlite3_column_int64(st, i));
}

/*
 * A contact in the storage shape (docs/storage.md): times in ms, the party's
 * name plain. Built key by key rather than with json_pack: a history or a
 * list makes one per row, and parsing the format string for every row cost
 * as much as the values themselves. The keys are literals, so they are set
 * without jansson checking them again.
 */
json_t *
sq_contact_row(sqlite3_stmt *st)
{
	static const struct {
		const char *key;
		char kind; /* I: integer, t: text, m: ms or null, j: JSON text, b: boolean */
	} cols[] = {
		{ "id", 'I' }, { "reference", 't' }, { "channel", 't' }, { "direction", 't' },
		{ "received_at", 'm' }, { "handled_at", 'm' }, { "updated_at", 'm' },
		{ "party_id", 'm' }, { "subject", 't' }, { "body", 't' }, { "answer", 't' },
		{ "product", 't' }, { "department", 't' }, { "organisation", 't' }, { "line", 'I' },
		{ "status", 't' }, { "priority", 't' }, { "tags", 'j' }, { "language", 't' },
		{ "confidential", 'b' }, { "location", 't' }, { "meta", 'j' }, { "created_by", 't' },
		{ "party_name", 't' }, { "assignee", 't' }, { "reply_to", 't' },
		{ "party_conflict", 'j' },
	};
	json_t *o = json_object(), *v;

	for (int i = 0; o != NULL && i < (int)(sizeof(cols) / sizeof(cols[0])); i++) {
		switch (cols[i].kind) {
		case 'I':
			v = json_integer((json_int_t)sqlite3_column_int64(st, i));
			break;
		case 'm':
			v = sq_col_ms(st, i);
			break;
		case 'j':
			v = sq_col_json(st, i);
			break;
		case 'b':
			v = json_boolean(sqlite3_column_int(st, i));
			break;
		default:
			v = sq_col_text(st, i);
			break;
		}
		if (v == NULL || json_object_set_new_nocheck(o, cols[i].key, v) < 0) {
			json_decref(o);
			o = NULL;
		}
	}
	return o;
}

static const char sql_contact_by_id[]
    = "SELECT " SQ_CONTACT_COLS "FROM contacts c LEFT JOIN parties p ON p.id = c.party_id "
      "WHERE c.id = ?1";

static const char sql_history[] = "SELECT at, actor, action, from_status, to_status, detail "
                                  "FROM contact_history WHERE contact_id = ?1 ORDER BY id";

static const char sql_tasks_of_contact[]
    = "SELECT " SQ_TASK_COLS "FROM tasks t JOIN contacts c ON c.id = t.contact_id "
      "WHERE t.contact_id = ?1 ORDER BY t.id";

json_t *
sq_task_row(sqlite3_stmt *st)
{
	return json_pack("{s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
	    (json_int_t)sqlite3_column_int64(st, 0), "contact_id",
	    (json_int_t)sqlite3_column_int64(st, 1), "reference", sq_col_text(st, 2), "department",
	    sq_col_text(st, 3), "assignee", sq_col_text(st, 4), "reason", sq_col_text(st, 5),
	    "due_at", sq_col_ms(st, 6), "status", sq_col_text(st, 7), "created_at",
	    sq_col_ms(st, 8), "created_by", sq_col_text(st, 9), "done_at", sq_col_ms(st, 10),
	    "done_by", sq_col_text(st, 11));
}

/* A history row as stored (a "rules" row holds its entries packed in detail). */
static json_t *
history_row(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "at", sq_col_ms(st, 0), "actor",
	    sq_col_text(st, 1), "action", sq_col_text(st, 2), "from", sq_col_text(st, 3), "to",
	    sq_col_text(st, 4), "detail", sq_col_text(st, 5));
}

/* The contact in the storage shape; with details, its history and tasks too. */
json_t *
sq_contact_load(struct sq_conn *c, sqlite3_int64 id, int details)
{
	sqlite3_stmt *st = sq_stmt(c, sql_contact_by_id);
	json_t *contact, *list;

	if (st == NULL)
		return NULL;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW)
		return NULL;
	contact = sq_contact_row(st);
	sqlite3_reset(st);
	if (!details || contact == NULL)
		return contact;
	list = json_array();
	if ((st = sq_stmt(c, sql_history)) != NULL) {
		sqlite3_bind_int64(st, 1, id);
		while (sqlite3_step(st) == SQLITE_ROW)
			json_array_append_new(list, history_row(st));
		sqlite3_reset(st);
	}
	json_object_set_new(contact, "history", list);
	list = json_array();
	if ((st = sq_stmt(c, sql_tasks_of_contact)) != NULL) {
		sqlite3_bind_int64(st, 1, id);
		while (sqlite3_step(st) == SQLITE_ROW)
			json_array_append_new(list, sq_task_row(st));
		sqlite3_reset(st);
	}
	json_object_set_new(contact, "tasks", list);
	return contact;
}

int
sq_history_add(struct sq_conn *c, sqlite3_int64 contact_id, sqlite3_int64 at, const char *actor,
    const char *action, const char *from, const char *to, const char *detail)
{
	static const char sql[]
	    = "INSERT INTO contact_history (contact_id, at, actor, action, "
	      "from_status, to_status, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, contact_id);
	sqlite3_bind_int64(st, 2, at);
	sq_bind_text(st, 3, actor);
	sq_bind_text(st, 4, action);
	sq_bind_text(st, 5, from);
	sq_bind_text(st, 6, to);
	sq_bind_text(st, 7, detail);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

int
sq_counts_add(struct sq_conn *c, const char *channel, const char *status, int delta)
{
	static const char sql[] = "INSERT INTO counts (channel, status, n) VALUES (?1, ?2, ?3) "
	                          "ON CONFLICT (channel, status) DO UPDATE SET n = n + ?3";
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL)
		return -1;
	sq_bind_text(st, 1, channel);
	sq_bind_text(st, 2, status);
	sqlite3_bind_int(st, 3, delta);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

static const char sql_contact_state[] = "SELECT status, department, organisation, confidential,"
                                        " channel FROM contacts WHERE id = ?1";

/* The contact's state, read into *cs: 0, or -1 when there is no such contact (or on error). */
static int
contact_state_read(struct sq_conn *c, sqlite3_int64 id, struct sq_contact_state *cs)
{
	sqlite3_stmt *st = sq_stmt(c, sql_contact_state);
	int found;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	found = sqlite3_step(st) == SQLITE_ROW;
	if (found) {
		snprintf(cs->status, sizeof(cs->status), "%s", sqlite3_column_text(st, 0));
		cs->has_department = sqlite3_column_type(st, 1) != SQLITE_NULL;
		snprintf(cs->department, sizeof(cs->department), "%s",
		    cs->has_department ? (const char *)sqlite3_column_text(st, 1) : "");
		snprintf(
		    cs->organisation, sizeof(cs->organisation), "%s", sqlite3_column_text(st, 2));
		cs->confidential = sqlite3_column_int(st, 3);
		snprintf(cs->channel, sizeof(cs->channel), "%s", sqlite3_column_text(st, 4));
	}
	sqlite3_reset(st);
	return found ? 0 : -1;
}

int
sq_contact_open(struct sq_conn *c, struct store_req *req, sqlite3_int64 id, json_t *expect,
    const char *forbidden, struct sq_contact_state *cs)
{
	const char *dep;

	if (contact_state_read(c, id, cs) < 0) {
		store_req_fail(req, STORE_NOT_FOUND, "no contact with id %lld", (long long)id);
		return -1;
	}
	dep = cs->has_department ? cs->department : NULL;
	if (!store_scope_allows(
	        json_object_get(req->in, "scope"), dep, cs->organisation, cs->confidential)) {
		store_req_fail(req, STORE_FORBIDDEN, "%s", forbidden);
		return -1;
	}
	/*
	 * The caller's condition, checked on the row as it is inside this
	 * write; the layer above words the refusal from what out says.
	 */
	if (expect != NULL && !store_scope_allows(expect, dep, cs->organisation, cs->confidential)) {
		store_req_fail(req, STORE_FORBIDDEN,
		    "the contact no longer meets the condition of this change");
		req->out = json_pack("{s:s?, s:s, s:b}", "department", dep, "organisation",
		    cs->organisation, "confidential", cs->confidential);
		return -1;
	}
	return 0;
}

void
sq_min_pending(struct sq_conn *c, struct store_req *req, const char *sql, const char *key)
{
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		req->out = json_pack("{s:I}", key, (json_int_t)sqlite3_column_int64(st, 0));
	else
		req->out = json_pack("{s:n}", key);
	sqlite3_reset(st);
}

void
sq_bind_scope(sqlite3_stmt *st, int first, json_t *scope)
{
	json_t *deps = json_object_get(scope, "departments");

	sqlite3_bind_int(st, first, json_is_true(json_object_get(scope, "all")));
	if (json_is_array(deps))
		sq_bind_dump(st, first + 1, deps, "[]");
	else
		sqlite3_bind_null(st, first + 1);
	sq_bind_json_text(st, first + 2, scope, "organisation");
}
