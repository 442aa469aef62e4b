/* store_sqlite_ops.c: the register's SQL: one function per request kind, JSON in and out. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "store_sqlite.h"
#include "util.h"

const char *const sq_migrations[] = {
	/* 0 -> 1: the first register */
	"CREATE TABLE parties ("
	"  id INTEGER PRIMARY KEY,"
	"  kind TEXT NOT NULL DEFAULT 'person',"
	"  name TEXT,"
	"  rrn TEXT UNIQUE,"
	"  bsn TEXT UNIQUE,"
	"  preferred_channel TEXT,"
	"  confidential INTEGER NOT NULL DEFAULT 0,"
	"  created_at INTEGER NOT NULL);"
	"CREATE TABLE party_emails (email TEXT PRIMARY KEY, party_id INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX party_emails_party ON party_emails(party_id);"
	"CREATE TABLE party_phones (phone TEXT PRIMARY KEY, party_id INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX party_phones_party ON party_phones(party_id);"
	"CREATE TABLE contacts ("
	"  id INTEGER PRIMARY KEY,"
	"  reference TEXT NOT NULL UNIQUE,"
	"  channel TEXT NOT NULL,"
	"  direction TEXT NOT NULL DEFAULT 'in',"
	"  received_at INTEGER NOT NULL,"
	"  handled_at INTEGER,"
	"  updated_at INTEGER NOT NULL,"
	"  party_id INTEGER,"
	"  subject TEXT NOT NULL DEFAULT '',"
	"  body TEXT NOT NULL DEFAULT '',"
	"  answer TEXT,"
	"  product TEXT,"
	"  department TEXT,"
	"  organisation TEXT NOT NULL,"
	"  line INTEGER NOT NULL DEFAULT 1,"
	"  status TEXT NOT NULL DEFAULT 'open',"
	"  priority TEXT NOT NULL DEFAULT 'normal',"
	"  tags TEXT NOT NULL DEFAULT '[]',"
	"  language TEXT,"
	"  confidential INTEGER NOT NULL DEFAULT 0,"
	"  location TEXT,"
	"  meta TEXT NOT NULL DEFAULT '{}',"
	"  created_by TEXT NOT NULL);"
	"CREATE INDEX contacts_party ON contacts(party_id, id);"
	"CREATE INDEX contacts_status ON contacts(status, id);"
	"CREATE INDEX contacts_department ON contacts(department, id);"
	"CREATE TABLE tasks ("
	"  id INTEGER PRIMARY KEY,"
	"  contact_id INTEGER NOT NULL,"
	"  department TEXT,"
	"  assignee TEXT,"
	"  reason TEXT NOT NULL DEFAULT '',"
	"  due_at INTEGER,"
	"  status TEXT NOT NULL DEFAULT 'open',"
	"  created_at INTEGER NOT NULL,"
	"  created_by TEXT NOT NULL,"
	"  done_at INTEGER,"
	"  done_by TEXT);"
	"CREATE INDEX tasks_contact ON tasks(contact_id);"
	"CREATE INDEX tasks_department ON tasks(department, status, id);"
	"CREATE TABLE contact_history ("
	"  id INTEGER PRIMARY KEY,"
	"  contact_id INTEGER NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  actor TEXT NOT NULL,"
	"  action TEXT NOT NULL,"
	"  from_status TEXT,"
	"  to_status TEXT,"
	"  detail TEXT);"
	"CREATE INDEX contact_history_contact ON contact_history(contact_id, id);"
	"CREATE TABLE audit (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, token TEXT NOT NULL,"
	"  action TEXT NOT NULL, object TEXT NOT NULL);"
	"CREATE TABLE tokens (name TEXT PRIMARY KEY, hash TEXT NOT NULL, role TEXT NOT NULL,"
	"  departments TEXT NOT NULL DEFAULT '[]', organisation TEXT, created_at INTEGER NOT NULL,"
	"  revoked_at INTEGER);"
	"CREATE TABLE refseq (year INTEGER PRIMARY KEY, last INTEGER NOT NULL);"
	"CREATE TABLE counts (channel TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL,"
	"  PRIMARY KEY (channel, status)) WITHOUT ROWID;",
	/* 1 -> 2: rules: assignees, durable timers, the outbox of replies */
	"ALTER TABLE contacts ADD COLUMN assignee TEXT;"
	"CREATE TABLE timers ("
	"  id INTEGER PRIMARY KEY,"
	"  contact_id INTEGER NOT NULL,"
	"  task_id INTEGER,"
	"  kind TEXT NOT NULL,"
	"  due_at INTEGER NOT NULL,"
	"  payload TEXT NOT NULL DEFAULT '{}',"
	"  rule TEXT,"
	"  status TEXT NOT NULL DEFAULT 'pending',"
	"  created_at INTEGER NOT NULL,"
	"  done_at INTEGER);"
	"CREATE INDEX timers_pending ON timers(due_at) WHERE status = 'pending';"
	"CREATE TABLE outbox ("
	"  id INTEGER PRIMARY KEY,"
	"  contact_id INTEGER NOT NULL,"
	"  channel TEXT,"
	"  template TEXT NOT NULL,"
	"  rule TEXT,"
	"  status TEXT NOT NULL DEFAULT 'pending',"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_at INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  sent_at INTEGER,"
	"  error TEXT);"
	"CREATE INDEX outbox_pending ON outbox(next_at) WHERE status = 'pending';",
	/* 2 -> 3: channels: the messages of a contact, keys that make intake idempotent */
	"CREATE TABLE messages ("
	"  id INTEGER PRIMARY KEY,"
	"  contact_id INTEGER NOT NULL,"
	"  direction TEXT NOT NULL,"
	"  channel TEXT NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  actor TEXT NOT NULL,"
	"  sender TEXT,"
	"  recipients TEXT NOT NULL DEFAULT '[]',"
	"  subject TEXT NOT NULL DEFAULT '',"
	"  body TEXT NOT NULL DEFAULT '',"
	"  message_id TEXT,"
	"  automatic TEXT,"
	"  attachments TEXT NOT NULL DEFAULT '[]',"
	"  meta TEXT NOT NULL DEFAULT '{}',"
	"  status TEXT NOT NULL DEFAULT 'received');"
	"CREATE INDEX messages_contact ON messages(contact_id, id);"
	"CREATE INDEX messages_message_id ON messages(message_id) WHERE message_id IS NOT NULL;"
	"CREATE TABLE contact_keys (key TEXT PRIMARY KEY, contact_id INTEGER NOT NULL)"
	"  WITHOUT ROWID;"
	"ALTER TABLE outbox ADD COLUMN message_row INTEGER;"
	"ALTER TABLE outbox ADD COLUMN recipient TEXT;"
	"ALTER TABLE outbox ADD COLUMN automatic INTEGER NOT NULL DEFAULT 1;"
	"ALTER TABLE outbox ADD COLUMN payload TEXT NOT NULL DEFAULT '{}';"
	"CREATE INDEX outbox_recipient ON outbox(recipient, sent_at) WHERE recipient IS NOT NULL;",
	/*
	 * 3 -> 4: identifiers from channels no longer extend parties. A contact
	 * keeps the address it came in with (reply_to) and a flag when its
	 * identifiers disagreed with the register; a merged party points at the
	 * party that took it over. Existing contacts answer to the sender of their
	 * first mail, else to their party's first email or phone, as before.
	 */
	"ALTER TABLE contacts ADD COLUMN reply_to TEXT;"
	"ALTER TABLE contacts ADD COLUMN party_conflict TEXT;"
	"ALTER TABLE parties ADD COLUMN merged_into INTEGER;"
	"UPDATE contacts SET reply_to = coalesce("
	"  (SELECT m.sender FROM messages m WHERE m.contact_id = contacts.id AND m.direction = 'in'"
	"   AND m.sender IS NOT NULL ORDER BY m.id LIMIT 1),"
	"  (SELECT min(e.email) FROM party_emails e WHERE e.party_id = contacts.party_id),"
	"  (SELECT min(f.phone) FROM party_phones f WHERE f.party_id = contacts.party_id));"
	"UPDATE parties SET confidential ="
	"  EXISTS (SELECT 1 FROM contacts c WHERE c.party_id = parties.id) AND"
	"  NOT EXISTS (SELECT 1 FROM contacts c WHERE c.party_id = parties.id AND c.confidential = 0);",
	/*
	 * 4 -> 5: register events, each written in the transaction of the write
	 * that made it. AUTOINCREMENT: an id is never handed out twice, also
	 * after old events are pruned (by age, hence the index on at), so a
	 * reader resuming from the last id it saw misses nothing and sees
	 * nothing twice. payload holds ids and statuses, no personal data.
	 */
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  at INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  contact_id INTEGER,"
	"  task_id INTEGER,"
	"  payload TEXT NOT NULL DEFAULT '{}');"
	"CREATE INDEX events_at ON events(at);",
};
const int sq_schema_version = (int)(sizeof(sq_migrations) / sizeof(sq_migrations[0]));

const char *
jstr(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

void
bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v != NULL)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

void
bind_json_text(sqlite3_stmt *st, int i, json_t *obj, const char *key)
{
	bind_text(st, i, jstr(obj, key));
}

void
bind_json_int(sqlite3_stmt *st, int i, json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_integer(v))
		sqlite3_bind_int64(st, i, json_integer_value(v));
	else
		sqlite3_bind_null(st, i);
}

void
bind_dump(sqlite3_stmt *st, int i, json_t *v, const char *fallback)
{
	char *s = v != NULL ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

	sqlite3_bind_text(st, i, s != NULL ? s : fallback, -1, SQLITE_TRANSIENT);
	free(s);
}

json_t *
col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s != NULL ? json_stringn((const char *)s, (size_t)sqlite3_column_bytes(st, i)) :
			   json_null();
}

json_t *
col_time(sqlite3_stmt *st, int i)
{
	char buf[40];

	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return json_null();
	util_time_format(sqlite3_column_int64(st, i), buf, sizeof(buf));
	return json_string(buf);
}

json_t *
col_json(sqlite3_stmt *st, int i)
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

int
sq_event(struct sq_conn *c, enum loket_event_kind kind, sqlite3_int64 at,
    sqlite3_int64 contact_id, sqlite3_int64 task_id, const char *payload_fmt, ...)
{
	static const char sql[] = "INSERT INTO events (at, kind, contact_id, task_id, payload)"
				  " VALUES (?1, ?2, ?3, ?4, ?5)";
	struct store_event ev = { .at = at, .kind = kind, .contact_id = contact_id,
		.task_id = task_id };
	sqlite3_stmt *st;
	va_list ap;
	int n;

	va_start(ap, payload_fmt);
	n = vsnprintf(ev.payload, sizeof(ev.payload), payload_fmt, ap);
	va_end(ap);
	/* A cut payload would not parse: the ids alone still say what happened. */
	if (n < 0 || (size_t)n >= sizeof(ev.payload))
		snprintf(ev.payload, sizeof(ev.payload), "{}");
	if (c->req == NULL || (st = sq_stmt(c, sql)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, at);
	bind_text(st, 2, store_event_name(kind));
	if (contact_id != 0)
		sqlite3_bind_int64(st, 3, contact_id);
	if (task_id != 0)
		sqlite3_bind_int64(st, 4, task_id);
	bind_text(st, 5, ev.payload);
	if (sqlite3_step(st) != SQLITE_DONE)
		return -1;
	ev.id = sqlite3_last_insert_rowid(c->db);
	return store_req_event(c->req, &ev);
}

/* The payload of a contact's event: its status, where it came from, and the status before. */
static int
contact_event(struct sq_conn *c, enum loket_event_kind kind, sqlite3_int64 at,
    sqlite3_int64 contact_id, const char *status, const char *previous, const char *channel,
    const char *cause)
{
	char st[32], prev[32], ch[64], why[32];

	if (previous == NULL)
		return sq_event(c, kind, at, contact_id, 0, "{\"status\":\"%s\",\"channel\":\"%s\"}",
		    sq_event_str(st, sizeof(st), status), sq_event_str(ch, sizeof(ch), channel));
	return sq_event(c, kind, at, contact_id, 0,
	    "{\"status\":\"%s\",\"previous_status\":\"%s\",\"channel\":\"%s\"%s%s%s}",
	    sq_event_str(st, sizeof(st), status), sq_event_str(prev, sizeof(prev), previous),
	    sq_event_str(ch, sizeof(ch), channel), cause != NULL ? ",\"cause\":\"" : "",
	    cause != NULL ? sq_event_str(why, sizeof(why), cause) : "", cause != NULL ? "\"" : "");
}

/* A task's event: its department (no reason: that is free text). */
static int
task_event(struct sq_conn *c, enum loket_event_kind kind, sqlite3_int64 at,
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
step_error(struct sq_conn *c, struct store_req *req, int rc)
{
	log_warnx("store", "%s: %s (code %d)", store_op_name(req->op), sqlite3_errmsg(c->db),
	    sqlite3_extended_errcode(c->db));
	if (rc == SQLITE_CONSTRAINT)
		store_req_fail(req, STORE_CONFLICT,
		    "the register holds a record that conflicts with this one; reload and try again");
	else
		store_req_fail(req, STORE_FAILED, store_op_is_write(req->op) ?
			"the register could not store this; try again later" :
			"the register could not read this; try again later");
	return -1;
}

#define CONTACT_COLS                                                                         \
	"c.id, c.reference, c.channel, c.direction, c.received_at, c.handled_at, c.updated_at,   \
	c.party_id, c.subject, c.body, c.answer, c.product, c.department, c.organisation, c.line, \
	c.status, c.priority, c.tags, c.language, c.confidential, c.location, c.meta,            \
	c.created_by, p.name, c.assignee, c.reply_to, c.party_conflict "

/* A column holding ms since the epoch, or NULL. */
static json_t *
col_ms(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null() :
							   json_integer(sqlite3_column_int64(st, i));
}

/* A contact in the storage shape (docs/storage.md): times in ms, the party's name plain. */
static json_t *
contact_row(sqlite3_stmt *st)
{
	return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
			 " s:I, s:o, s:o, s:o, s:o, s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
	    "id", (json_int_t)sqlite3_column_int64(st, 0), "reference", col_text(st, 1),
	    "channel", col_text(st, 2), "direction", col_text(st, 3), "received_at",
	    col_ms(st, 4), "handled_at", col_ms(st, 5), "updated_at", col_ms(st, 6),
	    "party_id", col_ms(st, 7),
	    "subject", col_text(st, 8), "body", col_text(st, 9), "answer", col_text(st, 10),
	    "product", col_text(st, 11), "department", col_text(st, 12), "organisation",
	    col_text(st, 13), "line", (json_int_t)sqlite3_column_int64(st, 14), "status",
	    col_text(st, 15), "priority", col_text(st, 16), "tags", col_json(st, 17), "language",
	    col_text(st, 18), "confidential", sqlite3_column_int(st, 19), "location",
	    col_text(st, 20), "meta", col_json(st, 21), "created_by", col_text(st, 22),
	    "party_name", col_text(st, 23), "assignee", col_text(st, 24), "reply_to",
	    col_text(st, 25), "party_conflict", col_json(st, 26));
}

static const char sql_contact_by_id[] = "SELECT " CONTACT_COLS
					"FROM contacts c LEFT JOIN parties p ON p.id = c.party_id "
					"WHERE c.id = ?1";

static const char sql_history[] = "SELECT at, actor, action, from_status, to_status, detail "
				   "FROM contact_history WHERE contact_id = ?1 ORDER BY id";

#define TASK_COLS                                                                            \
	"t.id, t.contact_id, c.reference, t.department, t.assignee, t.reason, t.due_at, t.status, \
	t.created_at, t.created_by, t.done_at, t.done_by "

static const char sql_tasks_of_contact[] = "SELECT " TASK_COLS
					   "FROM tasks t JOIN contacts c ON c.id = t.contact_id "
					   "WHERE t.contact_id = ?1 ORDER BY t.id";

static json_t *
task_row(sqlite3_stmt *st)
{
	return json_pack("{s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
	    (json_int_t)sqlite3_column_int64(st, 0), "contact_id",
	    (json_int_t)sqlite3_column_int64(st, 1), "reference", col_text(st, 2), "department",
	    col_text(st, 3), "assignee", col_text(st, 4), "reason", col_text(st, 5), "due_at",
	    col_ms(st, 6), "status", col_text(st, 7), "created_at", col_ms(st, 8),
	    "created_by", col_text(st, 9), "done_at", col_ms(st, 10), "done_by",
	    col_text(st, 11));
}

/* A history row as stored (a "rules" row holds its entries packed in detail). */
static json_t *
history_row(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "at", col_ms(st, 0), "actor",
	    col_text(st, 1), "action", col_text(st, 2), "from", col_text(st, 3), "to",
	    col_text(st, 4), "detail", col_text(st, 5));
}

/* The contact in the storage shape; with details, its history and tasks too. */
json_t *
contact_load(struct sq_conn *c, sqlite3_int64 id, int details)
{
	sqlite3_stmt *st = sq_stmt(c, sql_contact_by_id);
	json_t *contact, *list;

	if (st == NULL)
		return NULL;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW)
		return NULL;
	contact = contact_row(st);
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
			json_array_append_new(list, task_row(st));
		sqlite3_reset(st);
	}
	json_object_set_new(contact, "tasks", list);
	return contact;
}

/* Whether a token's scope may see a contact: its departments, and confidential ones of its organisation. */
static int
scope_allows(json_t *scope, const char *department, const char *organisation, int confidential)
{
	json_t *deps = json_object_get(scope, "departments");
	const char *org = jstr(scope, "organisation");
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
history_add(struct sq_conn *c, sqlite3_int64 contact_id, sqlite3_int64 at, const char *actor,
    const char *action, const char *from, const char *to, const char *detail)
{
	static const char sql[] = "INSERT INTO contact_history (contact_id, at, actor, action, "
				  "from_status, to_status, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, contact_id);
	sqlite3_bind_int64(st, 2, at);
	bind_text(st, 3, actor);
	bind_text(st, 4, action);
	bind_text(st, 5, from);
	bind_text(st, 6, to);
	bind_text(st, 7, detail);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

int
counts_add(struct sq_conn *c, const char *channel, const char *status, int delta)
{
	static const char sql[] = "INSERT INTO counts (channel, status, n) VALUES (?1, ?2, ?3) "
				  "ON CONFLICT (channel, status) DO UPDATE SET n = n + ?3";
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL)
		return -1;
	bind_text(st, 1, channel);
	bind_text(st, 2, status);
	sqlite3_bind_int(st, 3, delta);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

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

static int
timer_add(struct sq_conn *c, sqlite3_int64 contact_id, sqlite3_int64 task_id, const char *kind,
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
	bind_text(st, 3, kind);
	sqlite3_bind_int64(st, 4, due_at);
	/* A payload register_apply wrote out as text already is bound as it is. */
	if (json_is_string(payload))
		bind_text(st, 5, json_string_value(payload));
	else
		bind_dump(st, 5, payload, "{}");
	bind_text(st, 6, rule);
	sqlite3_bind_int64(st, 7, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		return -1;
	if (*next_r == 0 || due_at < *next_r)
		*next_r = due_at;
	return 0;
}

static int task_create(struct sq_conn *c, sqlite3_int64 contact_id, json_t *task,
    sqlite3_int64 now, const char *actor);

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
	if (task_event(c, LOKET_EVENT_TASK_CREATED, now, contact_id, task_id,
		jstr(task, "department")) < 0)
		return -1;
	if (!json_is_integer(json_object_get(task, "due_at")))
		return 0;
	return timer_add(c, contact_id, task_id, "overdue",
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

	if (rule_rows(c, id, in, now, jstr(in, "channel"), next_r) < 0)
		return -1;
	if (task != NULL) {
		const char *by = jstr(task, "rule") != NULL ? jstr(task, "rule") : actor;
		char who[300];

		snprintf(who, sizeof(who), "%s%s", jstr(task, "rule") != NULL ? "rule:" : "", by);
		if (task_with_deadline(c, id, task, now, who, next_r) < 0 ||
		    history_add(c, id, now, who, "escalate", "open", "escalated",
			jstr(task, "reason")) < 0)
			return -1;
	} else if (strcmp(jstr(in, "status"), "resolved") == 0) {
		if (history_add(c, id, now, actor, "resolve", "open", "resolved", NULL) < 0)
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
		name = col_text(st, 0);
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
		step_error(c, req, SQLITE_ERROR);
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

static void
op_contact_create(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] =
	    "INSERT INTO contacts (reference, channel, direction, received_at, updated_at, party_id,"
	    " subject, body, product, department, organisation, line, status, priority, tags,"
	    " language, confidential, location, meta, created_by, answer, assignee, handled_at,"
	    " reply_to, party_conflict)"
	    " VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,"
	    " ?17, ?18, ?19, ?20, ?21, CASE WHEN ?22 THEN ?4 END, ?23, ?24)";
	json_t *in = req->in, *party = json_object_get(in, "party");
	sqlite3_int64 now = json_integer_value(json_object_get(in, "received_at")), party_id = 0,
		      id, next_timer = 0;
	/* The address the contact came in with: replies without an explicit "to" go there. */
	const char *reply_to = jstr(party, "email") != NULL ? jstr(party, "email") :
							      jstr(party, "phone");
	char reference[32], *conflict = NULL;
	sqlite3_stmt *st;
	int rc;

	if (idempotency_conflict(c, req))
		return;
	if (sq_create_duplicate(c, req)) {
		/* A client retrying with its Idempotency-Key hears what its first try made. */
		if (json_object_get(in, "idempotency") != NULL && req->result == STORE_OK)
			json_object_set_new(req->out, "contact",
			    contact_load(
			        c, json_integer_value(json_object_get(req->out, "id")), 0));
		return;
	}
	if (sq_party_match(c, party, now, &party_id, &conflict) < 0 ||
	    reference_next(c, util_time_year(now), reference, sizeof(reference)) < 0 ||
	    (st = sq_stmt(c, sql)) == NULL) {
		free(conflict);
		step_error(c, req, SQLITE_ERROR);
		return;
	}
	bind_text(st, 1, reference);
	bind_json_text(st, 2, in, "channel");
	bind_json_text(st, 3, in, "direction");
	sqlite3_bind_int64(st, 4, now);
	if (party_id != 0)
		sqlite3_bind_int64(st, 5, party_id);
	bind_json_text(st, 6, in, "subject");
	bind_json_text(st, 7, in, "body");
	bind_json_text(st, 8, in, "product");
	bind_json_text(st, 9, in, "department");
	bind_json_text(st, 10, in, "organisation");
	bind_json_int(st, 11, in, "line");
	bind_json_text(st, 12, in, "status");
	bind_json_text(st, 13, in, "priority");
	bind_dump(st, 14, json_object_get(in, "tags"), "[]");
	bind_json_text(st, 15, in, "language");
	sqlite3_bind_int(st, 16, json_is_true(json_object_get(in, "confidential")));
	bind_json_text(st, 17, in, "location");
	bind_dump(st, 18, json_object_get(in, "meta"), "{}");
	bind_json_text(st, 19, in, "created_by");
	bind_json_text(st, 20, in, "answer");
	bind_json_text(st, 21, in, "assignee");
	sqlite3_bind_int(st, 22, json_is_true(json_object_get(in, "handled")));
	bind_text(st, 23, reply_to);
	bind_text(st, 24, conflict);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		free(conflict);
		step_error(c, req, rc);
		return;
	}
	id = sqlite3_last_insert_rowid(c->db);
	/* Kinds and party ids only: the history is no second copy of personal data. */
	if (contact_event(c, LOKET_EVENT_CONTACT_CREATED, now, id, jstr(in, "status"), NULL,
		jstr(in, "channel"), NULL) < 0 ||
	    history_add(c, id, now, jstr(in, "created_by"), "created", NULL, "open",
		jstr(in, "channel")) < 0 ||
	    (conflict != NULL && history_add(c, id, now, jstr(in, "created_by"), "party_conflict",
				     NULL, NULL, conflict) < 0) ||
	    (party_id != 0 && sq_party_confidential_refresh(c, party_id) < 0) ||
	    contact_extras(c, id, in, now, jstr(in, "created_by"), &next_timer) < 0 ||
	    sq_create_message(c, id, in, now) < 0 ||
	    counts_add(c, jstr(in, "channel"), jstr(in, "status"), 1) < 0 ||
	    (req->out = json_pack("{s:I, s:s, s:o}", "id", (json_int_t)id, "reference", reference,
		 "party_id", party_id != 0 ? json_integer(party_id) : json_null())) == NULL) {
		free(conflict);
		step_error(c, req, SQLITE_ERROR);
		return;
	}
	if (party_id != 0)
		json_object_set_new(req->out, "party_name", party_name(c, party_id));
	json_object_set_new(req->out, "reply_to", reply_to != NULL ? json_string(reply_to) : json_null());
	json_object_set_new(req->out, "party_conflict",
	    conflict != NULL ? json_loads(conflict, 0, NULL) : json_null());
	free(conflict);
	if (next_timer > 0)
		json_object_set_new(req->out, "timers_next", json_integer(next_timer));
}

static const char sql_contact_state[] = "SELECT status, department, organisation, confidential,"
					" channel FROM contacts WHERE id = ?1";

/* The contact's state, read into *cs: 0, or -1 when there is no such contact (or on error). */
static int
contact_state(struct sq_conn *c, sqlite3_int64 id, struct contact_state *cs)
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
		snprintf(cs->organisation, sizeof(cs->organisation), "%s",
		    sqlite3_column_text(st, 2));
		cs->confidential = sqlite3_column_int(st, 3);
		snprintf(cs->channel, sizeof(cs->channel), "%s", sqlite3_column_text(st, 4));
	}
	sqlite3_reset(st);
	return found ? 0 : -1;
}

int
sq_contact_open(struct sq_conn *c, struct store_req *req, sqlite3_int64 id, json_t *expect,
    const char *forbidden, struct contact_state *cs)
{
	const char *dep;

	if (contact_state(c, id, cs) < 0) {
		store_req_fail(req, STORE_NOT_FOUND, "no contact with id %lld", (long long)id);
		return -1;
	}
	dep = cs->has_department ? cs->department : NULL;
	if (!scope_allows(json_object_get(req->in, "scope"), dep, cs->organisation,
		cs->confidential)) {
		store_req_fail(req, STORE_FORBIDDEN, "%s", forbidden);
		return -1;
	}
	/*
	 * The caller's condition, checked on the row as it is inside this
	 * write; the layer above words the refusal from what out says.
	 */
	if (expect != NULL && !scope_allows(expect, dep, cs->organisation, cs->confidential)) {
		store_req_fail(req, STORE_FORBIDDEN,
		    "the contact no longer meets the condition of this change");
		req->out = json_pack("{s:s?, s:s, s:b}", "department", dep, "organisation",
		    cs->organisation, "confidential", cs->confidential);
		return -1;
	}
	return 0;
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
		json_array_append_new(open, json_pack("{s:I, s:o}", "id",
						(json_int_t)sqlite3_column_int64(st, 0), "department",
						col_text(st, 1)));
	sqlite3_reset(st);
	json_array_foreach(open, i, t) {
		if (rc != SQLITE_DONE ||
		    task_event(c, LOKET_EVENT_TASK_DONE, now, contact_id,
			json_integer_value(json_object_get(t, "id")), jstr(t, "department")) < 0) {
			json_decref(open);
			return -1;
		}
	}
	json_decref(open);
	if (rc != SQLITE_DONE || (st = sq_stmt(c, sql)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, contact_id);
	sqlite3_bind_int64(st, 2, now);
	bind_text(st, 3, actor);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

static int
task_create(struct sq_conn *c, sqlite3_int64 contact_id, json_t *task, sqlite3_int64 now,
    const char *actor)
{
	static const char sql[] = "INSERT INTO tasks (contact_id, department, assignee, reason,"
				  " due_at, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, contact_id);
	bind_json_text(st, 2, task, "department");
	bind_json_text(st, 3, task, "assignee");
	bind_text(st, 4, jstr(task, "reason") != NULL ? jstr(task, "reason") : "");
	bind_json_int(st, 5, task, "due_at");
	sqlite3_bind_int64(st, 6, now);
	bind_text(st, 7, actor);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

/* Field changes of a PATCH (or a transition), one history row each. */
static int
contact_set_fields(struct sq_conn *c, sqlite3_int64 id, json_t *set, sqlite3_int64 now,
    const char *actor)
{
	static const char sql[] =
	    "UPDATE contacts SET"
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
	bind_json_text(st, 2, set, "subject");
	sqlite3_bind_int(st, 3, json_object_get(set, "product") != NULL);
	bind_json_text(st, 4, set, "product");
	sqlite3_bind_int(st, 5, json_object_get(set, "answer") != NULL);
	bind_json_text(st, 6, set, "answer");
	sqlite3_bind_int(st, 7, json_object_get(set, "department") != NULL);
	bind_json_text(st, 8, set, "department");
	bind_json_text(st, 9, set, "organisation");
	bind_json_text(st, 10, set, "priority");
	if (json_object_get(set, "tags") != NULL)
		bind_dump(st, 11, json_object_get(set, "tags"), "[]");
	sqlite3_bind_int64(st, 12, now);
	/* Set by rules in follow-ups (the API's PATCH does not take these). */
	sqlite3_bind_int(st, 13, json_object_get(set, "assignee") != NULL);
	bind_json_text(st, 14, set, "assignee");
	sqlite3_bind_int(st, 15, json_object_get(set, "language") != NULL);
	bind_json_text(st, 16, set, "language");
	if (json_is_boolean(json_object_get(set, "confidential")))
		sqlite3_bind_int(st, 17, json_is_true(json_object_get(set, "confidential")));
	sqlite3_bind_int(st, 18, json_object_get(set, "party_conflict") != NULL);
	if (sqlite3_step(st) != SQLITE_DONE)
		return -1;
	if (json_is_string(json_object_get(set, "department"))) {
		if ((st = sq_stmt(c, sql_tasks)) == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, id);
		bind_json_text(st, 2, set, "department");
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
	json_object_foreach(set, key, v) {
		/* Field names are recorded, not their values: the history is no second copy of personal data. */
		if (strcmp(key, "organisation") != 0 &&
		    history_add(c, id, now, actor, "updated", NULL, NULL, key) < 0)
			return -1;
	}
	return 0;
}

/*
 * Marks a timer done. With acted (the write holds what its firing did) a
 * timer still pending makes its events: timer.fired, and task.due for the
 * deadline of a task still open.
 */
static int
timer_done(struct sq_conn *c, sqlite3_int64 timer_id, sqlite3_int64 now, int acted)
{
	static const char sql_row[] = "SELECT t.contact_id, t.task_id, t.kind, k.status, k.department"
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
		sq_event_str(esc, sizeof(esc), kind)) < 0)
		return -1;
	if (strcmp(kind, "overdue") == 0 && strcmp(task_status, "open") == 0 &&
	    task_event(c, LOKET_EVENT_TASK_DUE, now, contact_id, task_id, has_dep ? dep : NULL) < 0)
		return -1;
	return 0;
}

/*
 * Rule history, reminders, replies (on via, else the contact's channel) and
 * a fired timer: what a contact create or update carries besides its fields.
 */
static int
rule_rows(struct sq_conn *c, sqlite3_int64 id, json_t *in, sqlite3_int64 now,
    const char *channel, sqlite3_int64 *next_r)
{
	json_t *v;
	size_t i;

	/* Rows as they are: register_apply worded (or packed) the decisions of rules. */
	json_array_foreach(json_object_get(in, "history"), i, v)
		if (history_add(c, id, now, jstr(v, "actor"), jstr(v, "action"), NULL, NULL,
			jstr(v, "detail")) < 0)
			return -1;
	json_array_foreach(json_object_get(in, "timers"), i, v)
		if (timer_add(c, id, 0, jstr(v, "kind"), json_integer_value(json_object_get(v, "due_at")),
			json_object_get(v, "payload"), jstr(v, "rule"), now, next_r) < 0)
			return -1;
	if (outbox_rows(c, id, in, now, channel) < 0)
		return -1;
	if (json_is_integer(json_object_get(in, "timer_done")) &&
	    timer_done(c, json_integer_value(json_object_get(in, "timer_done")), now, 1) < 0)
		return -1;
	return 0;
}

static void
op_timer_done(struct sq_conn *c, struct store_req *req)
{
	/* A timer closed without action (its contact moved on): no event to tell. */
	if (timer_done(c, json_integer_value(json_object_get(req->in, "id")),
		json_integer_value(json_object_get(req->in, "at")), 0) < 0)
		step_error(c, req, SQLITE_ERROR);
}

/* Pending timers due by now, with what their firing needs to know of the contact. */
static void
op_timers_due(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT t.id, t.contact_id, t.task_id, t.kind, t.due_at, t.payload,"
				  " t.rule, c.status, k.status FROM timers t"
				  " JOIN contacts c ON c.id = t.contact_id"
				  " LEFT JOIN tasks k ON k.id = t.task_id"
				  " WHERE t.status = 'pending' AND t.due_at <= ?1 ORDER BY t.due_at"
				  " LIMIT ?2";
	sqlite3_stmt *st = sq_stmt(c, sql);
	json_t *items = json_array();

	if (st == NULL) {
		json_decref(items);
		step_error(c, req, SQLITE_ERROR);
		return;
	}
	sqlite3_bind_int64(st, 1, json_integer_value(json_object_get(req->in, "now")));
	sqlite3_bind_int64(st, 2, json_integer_value(json_object_get(req->in, "limit")));
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(items,
		    json_pack("{s:I, s:I, s:o, s:o, s:I, s:o, s:o, s:o, s:o}", "id",
			(json_int_t)sqlite3_column_int64(st, 0), "contact_id",
			(json_int_t)sqlite3_column_int64(st, 1), "task_id",
			sqlite3_column_type(st, 2) == SQLITE_NULL ?
			    json_null() :
			    json_integer(sqlite3_column_int64(st, 2)),
			"kind", col_text(st, 3), "due_at", (json_int_t)sqlite3_column_int64(st, 4),
			"payload", col_json(st, 5), "rule", col_text(st, 6), "contact_status",
			col_text(st, 7), "task_status", col_text(st, 8)));
	sqlite3_reset(st);
	req->out = json_pack("{s:o}", "items", items);
}

void
sq_min_pending(struct sq_conn *c, struct store_req *req, const char *sql, const char *key)
{
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL) {
		step_error(c, req, SQLITE_ERROR);
		return;
	}
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		req->out = json_pack("{s:I}", key, (json_int_t)sqlite3_column_int64(st, 0));
	else
		req->out = json_pack("{s:n}", key);
	sqlite3_reset(st);
}

static void
op_timers_next(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT min(due_at) FROM timers WHERE status = 'pending'";

	sq_min_pending(c, req, sql, "due_at");
}

static void
op_contact_update(struct sq_conn *c, struct store_req *req)
{
	static const char sql_status[] = "UPDATE contacts SET status = ?2, line = coalesce(?3, line),"
					 " handled_at = CASE WHEN ?4 THEN ?5 ELSE handled_at END,"
					 " updated_at = ?5 WHERE id = ?1";
	json_t *in = req->in, *tr = json_object_get(in, "transition");
	sqlite3_int64 id = json_integer_value(json_object_get(in, "id"));
	sqlite3_int64 now = json_integer_value(json_object_get(in, "at"));
	const char *actor = jstr(in, "actor");
	struct contact_state cs;
	sqlite3_int64 next_timer = 0;
	sqlite3_stmt *st;

	if (sq_contact_open(c, req, id, json_object_get(in, "expect"),
		"this token may not change that contact", &cs) < 0)
		return;
	if (tr != NULL && !status_in(json_object_get(tr, "from"), cs.status)) {
		store_req_fail(req, STORE_CONFLICT, "the contact is %s; it cannot be %s from there",
		    cs.status, jstr(tr, "past"));
		req->out = json_pack("{s:s}", "status", cs.status);
		return;
	}
	if (contact_set_fields(c, id, json_object_get(in, "set"), now, actor) < 0)
		goto fail;
	if (tr != NULL) {
		if ((st = sq_stmt(c, sql_status)) == NULL)
			goto fail;
		sqlite3_bind_int64(st, 1, id);
		bind_json_text(st, 2, tr, "to");
		bind_json_int(st, 3, tr, "line");
		sqlite3_bind_int(st, 4, json_is_true(json_object_get(tr, "handled")));
		sqlite3_bind_int64(st, 5, now);
		if (sqlite3_step(st) != SQLITE_DONE ||
		    history_add(c, id, now, actor, jstr(tr, "action"), cs.status, jstr(tr, "to"),
			jstr(tr, "detail")) < 0 ||
		    counts_add(c, cs.channel, cs.status, -1) < 0 ||
		    counts_add(c, cs.channel, jstr(tr, "to"), 1) < 0)
			goto fail;
	}
	/* Every stored change of a contact is news, a status change or not (a tag, a history row). */
	if (contact_event(c, LOKET_EVENT_CONTACT_CHANGED, now, id, tr != NULL ? jstr(tr, "to") :
		cs.status, cs.status, cs.channel, NULL) < 0)
		goto fail;
	if (json_is_true(json_object_get(in, "finish_tasks")) && tasks_finish(c, id, now, actor) < 0)
		goto fail;
	if (json_object_get(in, "task") != NULL &&
	    task_with_deadline(c, id, json_object_get(in, "task"), now, actor, &next_timer) < 0)
		goto fail;
	if (rule_rows(c, id, in, now, cs.channel, &next_timer) < 0)
		goto fail;
	if ((req->out = contact_load(c, id, 1)) == NULL)
		goto fail;
	if (next_timer > 0)
		json_object_set_new(req->out, "timers_next", json_integer(next_timer));
	json_object_set_new(req->out, "previous_status", json_string(cs.status));
	return;
fail:
	step_error(c, req, SQLITE_ERROR);
}

static const char sql_task_by_id[] = "SELECT " TASK_COLS
				     "FROM tasks t JOIN contacts c ON c.id = t.contact_id "
				     "WHERE t.id = ?1";

static void
op_task_done(struct sq_conn *c, struct store_req *req)
{
	static const char sql_done[] = "UPDATE tasks SET status = 'done', done_at = ?2, done_by = ?3"
				       " WHERE id = ?1";
	static const char sql_open_left[] = "SELECT count(*) FROM tasks WHERE contact_id = ?1 AND"
					    " status = 'open'";
	static const char sql_close[] = "UPDATE contacts SET status = 'closed', handled_at = ?2,"
					" updated_at = ?2 WHERE id = ?1";
	json_t *in = req->in, *task;
	sqlite3_int64 id = json_integer_value(json_object_get(in, "id"));
	sqlite3_int64 now = json_integer_value(json_object_get(in, "at"));
	const char *actor = jstr(in, "actor");
	sqlite3_int64 contact_id;
	struct contact_state cs;
	sqlite3_stmt *st;
	int open_left = 0;

	if ((st = sq_stmt(c, sql_task_by_id)) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW) {
		store_req_fail(req, STORE_NOT_FOUND, "no task with id %lld", (long long)id);
		return;
	}
	task = task_row(st);
	sqlite3_reset(st);
	contact_id = json_integer_value(json_object_get(task, "contact_id"));
	/* Who may finish a task follows its contact, wherever the contact went since. */
	if (sq_contact_open(c, req, contact_id, NULL, "this token may not finish that task", &cs) <
	    0) {
		json_decref(task);
		return;
	}
	if (strcmp(jstr(task, "status"), "open") != 0) {
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
	bind_text(st, 3, actor);
	if (sqlite3_step(st) != SQLITE_DONE || (st = sq_stmt(c, sql_open_left)) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, contact_id);
	if (sqlite3_step(st) == SQLITE_ROW)
		open_left = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	if (history_add(c, contact_id, now, actor, "task_done", NULL, NULL, NULL) < 0 ||
	    task_event(c, LOKET_EVENT_TASK_DONE, now, contact_id, id,
		cs.has_department ? cs.department : NULL) < 0)
		goto fail;
	if (open_left == 0 && strcmp(cs.status, "escalated") == 0) {
		if ((st = sq_stmt(c, sql_close)) == NULL)
			goto fail;
		sqlite3_bind_int64(st, 1, contact_id);
		sqlite3_bind_int64(st, 2, now);
		if (sqlite3_step(st) != SQLITE_DONE ||
		    history_add(c, contact_id, now, actor, "close", "escalated", "closed",
			"all tasks done") < 0 ||
		    counts_add(c, cs.channel, "escalated", -1) < 0 ||
		    counts_add(c, cs.channel, "closed", 1) < 0 ||
		    contact_event(c, LOKET_EVENT_CONTACT_CHANGED, now, contact_id, "closed",
			"escalated", cs.channel, NULL) < 0)
			goto fail;
	}
	if ((st = sq_stmt(c, sql_task_by_id)) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto fail;
	req->out = task_row(st);
	sqlite3_reset(st);
	json_object_set_new(req->out, "contact_status",
	    json_string(open_left == 0 && strcmp(cs.status, "escalated") == 0 ? "closed" :
										cs.status));
	json_object_set_new(req->out, "contact_previous_status", json_string(cs.status));
	json_object_set_new(req->out, "channel", json_string(cs.channel));
	return;
fail:
	step_error(c, req, SQLITE_ERROR);
}

static void
op_token_put(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "INSERT INTO tokens (name, hash, role, departments, organisation,"
				  " created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO"
				  " UPDATE SET hash = ?2, role = ?3, departments = ?4,"
				  " organisation = ?5, created_at = ?6, revoked_at = NULL"
				  " WHERE revoked_at IS NOT NULL";
	json_t *in = req->in;
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL) {
		step_error(c, req, SQLITE_ERROR);
		return;
	}
	bind_json_text(st, 1, in, "name");
	bind_json_text(st, 2, in, "hash");
	bind_json_text(st, 3, in, "role");
	bind_dump(st, 4, json_object_get(in, "departments"), "[]");
	bind_json_text(st, 5, in, "organisation");
	bind_json_int(st, 6, in, "created_at");
	if (sqlite3_step(st) != SQLITE_DONE) {
		step_error(c, req, SQLITE_ERROR);
		return;
	}
	if (sqlite3_changes(c->db) == 0)
		store_req_fail(req, STORE_CONFLICT, "a token named '%s' exists; revoke it first", jstr(in, "name"));
}

static void
op_token_revoke(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND"
				  " revoked_at IS NULL";
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL) {
		step_error(c, req, SQLITE_ERROR);
		return;
	}
	bind_json_text(st, 1, req->in, "name");
	bind_json_int(st, 2, req->in, "at");
	if (sqlite3_step(st) != SQLITE_DONE) {
		step_error(c, req, SQLITE_ERROR);
		return;
	}
	if (sqlite3_changes(c->db) == 0)
		store_req_fail(req, STORE_NOT_FOUND, "no active token named '%s'", jstr(req->in, "name"));
}

static void
op_audit(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "INSERT INTO audit (at, token, action, object) VALUES (?1, ?2, ?3, ?4)";
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL) {
		step_error(c, req, SQLITE_ERROR);
		return;
	}
	json_t *row;
	size_t i;

	json_array_foreach(json_object_get(req->in, "rows"), i, row) {
		if (i > 0 && (st = sq_stmt(c, sql)) == NULL)
			break;
		bind_json_int(st, 1, row, "at");
		bind_json_text(st, 2, row, "token");
		bind_json_text(st, 3, row, "action");
		bind_json_text(st, 4, row, "object");
		if (sqlite3_step(st) != SQLITE_DONE) {
			step_error(c, req, SQLITE_ERROR);
			return;
		}
	}
}

static void
op_contact_get(struct sq_conn *c, struct store_req *req)
{
	sqlite3_int64 id = json_integer_value(json_object_get(req->in, "id"));
	struct contact_state cs;

	if (sq_contact_open(c, req, id, NULL, "this token may not read that contact", &cs) < 0)
		return;
	if ((req->out = contact_load(c, id, 1)) == NULL)
		step_error(c, req, SQLITE_ERROR);
}

void
bind_scope(sqlite3_stmt *st, int first, json_t *scope)
{
	json_t *deps = json_object_get(scope, "departments");

	sqlite3_bind_int(st, first, json_is_true(json_object_get(scope, "all")));
	if (json_is_array(deps))
		bind_dump(st, first + 1, deps, "[]");
	else
		sqlite3_bind_null(st, first + 1);
	bind_json_text(st, first + 2, scope, "organisation");
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
		json_array_append_new(items, contact_row(st));
		last = sqlite3_column_int64(st, 0);
		n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		json_decref(items);
		step_error(c, req, rc);
		return;
	}
	snprintf(cursor, sizeof(cursor), "%lld", (long long)last);
	req->out = json_pack("{s:o, s:o}", "items", items, "next_cursor",
	    more ? json_string(cursor) : json_null());
}

static void
op_contact_list(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT " CONTACT_COLS
				  "FROM contacts c LEFT JOIN parties p ON p.id = c.party_id WHERE"
				  " (?1 IS NULL OR c.status = ?1) AND (?2 IS NULL OR c.line = ?2)"
				  " AND (?3 IS NULL OR c.channel = ?3)"
				  " AND (?4 IS NULL OR c.department = ?4)"
				  " AND (?5 IS NULL OR c.received_at >= ?5)"
				  " AND (?6 IS NULL OR c.received_at < ?6)"
				  " AND (?7 IS NULL OR c.id < ?7)" SCOPE_SQL(8, 9, 10)
				  " AND (?12 IS NULL OR c.party_id = ?12)"
				  " ORDER BY c.id DESC LIMIT ?11";
	json_t *in = req->in;
	int limit = (int)json_integer_value(json_object_get(in, "limit"));
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL) {
		step_error(c, req, SQLITE_ERROR);
		return;
	}
	bind_json_text(st, 1, in, "status");
	bind_json_int(st, 2, in, "line");
	bind_json_text(st, 3, in, "channel");
	bind_json_text(st, 4, in, "department");
	bind_json_int(st, 5, in, "since");
	bind_json_int(st, 6, in, "until");
	bind_json_int(st, 7, in, "cursor");
	bind_scope(st, 8, json_object_get(in, "scope"));
	sqlite3_bind_int(st, 11, limit + 1);
	bind_json_int(st, 12, in, "party");
	list_run(c, req, st, limit);
}

static void
op_party_contacts(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT " CONTACT_COLS
				  "FROM contacts c LEFT JOIN parties p ON p.id = c.party_id"
				  " WHERE c.party_id = ?1 AND (?2 IS NULL OR c.id < ?2)" SCOPE_SQL(3, 4, 5)
				  " ORDER BY c.id DESC LIMIT ?6";
	json_t *in = req->in;
	sqlite3_int64 id = json_integer_value(json_object_get(in, "id"));
	int limit = (int)json_integer_value(json_object_get(in, "limit"));
	struct party_row p;
	sqlite3_stmt *st;

	/* The history of a party this token may not see is as closed as the party. */
	if (sq_party_open(c, req, id, json_object_get(in, "scope"), &p) < 0)
		return;
	if ((st = sq_stmt(c, sql)) == NULL) {
		step_error(c, req, SQLITE_ERROR);
		return;
	}
	sqlite3_bind_int64(st, 1, id);
	bind_json_int(st, 2, in, "cursor");
	bind_scope(st, 3, json_object_get(in, "scope"));
	sqlite3_bind_int(st, 6, limit + 1);
	list_run(c, req, st, limit);
}

static void
op_task_list(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT " TASK_COLS
				  "FROM tasks t JOIN contacts c ON c.id = t.contact_id WHERE"
				  " (?1 IS NULL OR t.department = ?1) AND (?2 IS NULL OR t.status = ?2)"
				  " AND (?3 IS NULL OR t.id < ?3)" SCOPE_SQL(4, 5, 6)
				  " ORDER BY t.id DESC LIMIT ?7";
	json_t *in = req->in, *items = json_array();
	int limit = (int)json_integer_value(json_object_get(in, "limit")), n = 0, more = 0;
	sqlite3_int64 last = 0;
	sqlite3_stmt *st = sq_stmt(c, sql);
	char cursor[32];

	if (st == NULL) {
		json_decref(items);
		step_error(c, req, SQLITE_ERROR);
		return;
	}
	bind_json_text(st, 1, in, "department");
	bind_json_text(st, 2, in, "status");
	bind_json_int(st, 3, in, "cursor");
	bind_scope(st, 4, json_object_get(in, "scope"));
	sqlite3_bind_int(st, 7, limit + 1);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n == limit) {
			more = 1;
			break;
		}
		last = sqlite3_column_int64(st, 0);
		json_array_append_new(items, task_row(st));
		n++;
	}
	sqlite3_reset(st);
	snprintf(cursor, sizeof(cursor), "%lld", (long long)last);
	req->out = json_pack("{s:o, s:o}", "items", items, "next_cursor",
	    more ? json_string(cursor) : json_null());
}

static void
op_token_list(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT name, hash, role, departments, organisation, created_at,"
				  " revoked_at FROM tokens ORDER BY name";
	sqlite3_stmt *st = sq_stmt(c, sql);
	json_t *items = json_array();

	if (st == NULL) {
		json_decref(items);
		step_error(c, req, SQLITE_ERROR);
		return;
	}
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(items,
		    json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "name", col_text(st, 0), "hash",
			col_text(st, 1), "role", col_text(st, 2), "departments", col_json(st, 3),
			"organisation", col_text(st, 4), "created_at", col_time(st, 5),
			"revoked_at", col_time(st, 6)));
	sqlite3_reset(st);
	req->out = json_pack("{s:o}", "items", items);
}

static void
op_counts(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT channel, status, n FROM counts";
	sqlite3_stmt *st = sq_stmt(c, sql);
	json_t *items = json_array();

	if (st == NULL) {
		json_decref(items);
		step_error(c, req, SQLITE_ERROR);
		return;
	}
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(items, json_pack("{s:o, s:o, s:I}", "channel", col_text(st, 0),
						 "status", col_text(st, 1), "n",
						 (json_int_t)sqlite3_column_int64(st, 2)));
	sqlite3_reset(st);
	req->out = json_pack("{s:o}", "items", items);
}

/*
 * Events after the id a reader saw last, oldest first, at most limit: what
 * a client that lost its stream (or a node that was down) catches up with.
 */
static void
op_events_after(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT id, at, kind, contact_id, task_id, payload FROM events"
				  " WHERE id > ?1 ORDER BY id LIMIT ?2";
	sqlite3_stmt *st = sq_stmt(c, sql);
	json_int_t limit = json_integer_value(json_object_get(req->in, "limit"));
	json_t *items = json_array();

	if (st == NULL || items == NULL) {
		json_decref(items);
		step_error(c, req, SQLITE_ERROR);
		return;
	}
	sqlite3_bind_int64(st, 1, json_integer_value(json_object_get(req->in, "after")));
	sqlite3_bind_int64(st, 2, limit > 0 && limit <= 1000 ? limit : 100);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(items,
		    json_pack("{s:I, s:I, s:o, s:I, s:I, s:o}", "id",
			(json_int_t)sqlite3_column_int64(st, 0), "at",
			(json_int_t)sqlite3_column_int64(st, 1), "kind", col_text(st, 2), "contact_id",
			(json_int_t)sqlite3_column_int64(st, 3), "task_id",
			(json_int_t)sqlite3_column_int64(st, 4), "payload", col_json(st, 5)));
	sqlite3_reset(st);
	req->out = json_pack("{s:o}", "items", items);
}

void
sq_op_run(struct sq_conn *c, struct store_req *req)
{
	static void (*const ops[STORE_OP_COUNT])(struct sq_conn *, struct store_req *) = {
		[STORE_CONTACT_CREATE] = op_contact_create,
		[STORE_CONTACT_UPDATE] = op_contact_update,
		[STORE_TASK_DONE] = op_task_done,
		[STORE_TOKEN_PUT] = op_token_put,
		[STORE_TOKEN_REVOKE] = op_token_revoke,
		[STORE_AUDIT] = op_audit,
		[STORE_CONTACT_GET] = op_contact_get,
		[STORE_CONTACT_LIST] = op_contact_list,
		[STORE_PARTY_GET] = sq_op_party_get,
		[STORE_PARTY_FIND] = sq_op_party_find,
		[STORE_PARTY_UPDATE] = sq_op_party_update,
		[STORE_PARTY_MERGE] = sq_op_party_merge,
		[STORE_PARTY_CONTACTS] = op_party_contacts,
		[STORE_TASK_LIST] = op_task_list,
		[STORE_TOKEN_LIST] = op_token_list,
		[STORE_COUNTS] = op_counts,
		[STORE_TIMER_DONE] = op_timer_done,
		[STORE_TIMERS_DUE] = op_timers_due,
		[STORE_TIMERS_NEXT] = op_timers_next,
		[STORE_MESSAGE_ADD] = sq_op_message_add,
		[STORE_OUTBOX_DONE] = sq_op_outbox_done,
		[STORE_MESSAGE_LIST] = sq_op_message_list,
		[STORE_THREAD_FIND] = sq_op_thread_find,
		[STORE_OUTBOX_DUE] = sq_op_outbox_due,
		[STORE_OUTBOX_NEXT] = sq_op_outbox_next,
		[STORE_EVENTS_AFTER] = op_events_after,
	};

	if (req->op >= STORE_OP_COUNT || ops[req->op] == NULL) {
		store_req_fail(req, STORE_FAILED, "unknown storage request");
		return;
	}
	c->req = req;
	ops[req->op](c, req);
	c->req = NULL;
	if (req->result == STORE_OK && req->out == NULL && !store_op_is_write(req->op))
		store_req_fail(req, STORE_FAILED, "out of memory");
}

int
sq_replay(const struct loket_store_host *host, int64_t since_ms,
    int (*cb)(json_t *contact, void *arg), void *arg, const char **error_r)
{
	const char *path = host->conf_get(host, "path");
	static const char sql[] = "SELECT " CONTACT_COLS
				  "FROM contacts c LEFT JOIN parties p ON p.id = c.party_id"
				  " WHERE c.received_at >= ?1 ORDER BY c.id";
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = -1, step;

	/* Read-only and without the daemon: WAL lets it run beside a live loketd. */
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		*error_r = util_error("%s: cannot read the register: %s", path,
			db != NULL ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	sqlite3_bind_int64(st, 1, since_ms);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *contact = contact_row(st);
		int stop = contact == NULL || cb(contact, arg) < 0;

		json_decref(contact);
		if (stop)
			break;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}
