/*
 * pg_read.c: the register's reads on PostgreSQL, one function per read
 * kind, and the replay loketctl runs. Each answers in the storage shapes of
 * docs/storage.md, exactly as the SQLite driver does (core/store/
 * store_sqlite_ops.c, _msgs.c, _parties.c): a client sees the same JSON
 * whichever driver holds the register.
 *
 * A read that takes more than one statement runs in one REPEATABLE READ
 * READ ONLY transaction: a contact and its history, a party and its
 * addresses, come from the same snapshot even while the writer commits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg.h"

#define DAY_MS (24LL * 3600 * 1000)

#define CONTACT_COLS PG_READ_CONTACT_COLS

#define TASK_COLS                                                                         \
	"t.id, t.contact_id, c.reference, t.department, t.assignee, t.reason, "             \
	PG_MS("t.due_at") ", t.status, " PG_MS("t.created_at") ", t.created_by, "          \
	PG_MS("t.done_at") ", t.done_by "

#define MESSAGE_COLS                                                                      \
	"id, contact_id, direction, channel, " PG_MS("at") ", actor, sender, recipients,"   \
	" subject, body, message_id, automatic, attachments, meta, status "

/* A read that failed: the cause went to the log (pg_run), the client gets a fixed sentence. */
static void
read_fail(struct pg_conn *c, struct store_req *req)
{
	if (c->fault == PG_FAULT_CONNECTION)
		pg_host->req_fail(req, STORE_UNAVAILABLE,
		    "the register cannot be reached; try again later");
	else
		pg_host->req_fail(req, STORE_FAILED,
		    "the register could not read this; try again later");
}

/*
 * Milliseconds since the epoch as ISO 8601 text, YYYY-MM-DDTHH:MM:SS.mmmZ,
 * the way the core's util_time_format writes the times of message, token
 * and party rows (docs/storage.md: they are still text in this ABI).
 */
static void
pg_time_format(int64_t ms, char *buf, size_t len)
{
	/* Floor division: -1 ms is 1969-12-31T23:59:59.999Z, not a negative fraction. */
	int64_t secs = ms / 1000 - (ms % 1000 < 0 ? 1 : 0);
	int frac = (int)(ms % 1000 + (ms % 1000 < 0 ? 1000 : 0));
	time_t t = (time_t)secs;
	struct tm tm;
	char base[64];

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		snprintf(buf, len, "(invalid time)");
		return;
	}
	snprintf(buf, len, "%s.%03dZ", base, frac);
}

/* A column of milliseconds (PG_MS) as ISO text; NULL stays null. */
static json_t *
col_iso(const PGresult *r, int row, int col)
{
	char buf[96];

	if (pg_isnull(r, row, col))
		return json_null();
	pg_time_format(pg_int(r, row, col), buf, sizeof(buf));
	return json_string(buf);
}

/*
 * Opens the snapshot a read of several statements answers from, unless the
 * caller (the reader thread) runs the read in a transaction already; *own
 * says whether this one began it. -1 with c->fault.
 */
static int
snapshot_begin(struct pg_conn *c, int *own)
{
	*own = 0;
	if (c->conn != NULL && PQtransactionStatus(c->conn) != PQTRANS_IDLE)
		return 0;
	if (pg_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") < 0)
		return -1;
	*own = 1;
	return 0;
}

/* Ends the snapshot it began; a read-only transaction has nothing to keep. */
static void
snapshot_end(struct pg_conn *c, int own)
{
	if (own && c->conn != NULL && PQtransactionStatus(c->conn) != PQTRANS_IDLE)
		pg_exec(c, "ROLLBACK");
}

/* A contact in the storage shape from a row of CONTACT_COLS. */
static json_t *
contact_row(const PGresult *r, int i)
{
	return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
			 " s:I, s:o, s:o, s:o, s:o, s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
	    "id", (json_int_t)pg_int(r, i, 0), "reference", pg_col_text(r, i, 1), "channel",
	    pg_col_text(r, i, 2), "direction", pg_col_text(r, i, 3), "received_at",
	    pg_col_int(r, i, 4), "handled_at", pg_col_int(r, i, 5), "updated_at",
	    pg_col_int(r, i, 6), "party_id", pg_col_int(r, i, 7), "subject", pg_col_text(r, i, 8),
	    "body", pg_col_text(r, i, 9), "answer", pg_col_text(r, i, 10), "product",
	    pg_col_text(r, i, 11), "department", pg_col_text(r, i, 12), "organisation",
	    pg_col_text(r, i, 13), "line", (json_int_t)pg_int(r, i, 14), "status",
	    pg_col_text(r, i, 15), "priority", pg_col_text(r, i, 16), "tags",
	    pg_col_json(r, i, 17), "language", pg_col_text(r, i, 18), "confidential",
	    pg_str(r, i, 19) != NULL && pg_str(r, i, 19)[0] == 't', "location",
	    pg_col_text(r, i, 20), "meta", pg_col_json(r, i, 21), "created_by",
	    pg_col_text(r, i, 22), "party_name", pg_col_text(r, i, 23), "assignee",
	    pg_col_text(r, i, 24), "reply_to", pg_col_text(r, i, 25), "party_conflict",
	    pg_col_json(r, i, 26));
}

static json_t *
task_row(const PGresult *r, int i)
{
	return json_pack("{s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
	    (json_int_t)pg_int(r, i, 0), "contact_id", (json_int_t)pg_int(r, i, 1), "reference",
	    pg_col_text(r, i, 2), "department", pg_col_text(r, i, 3), "assignee",
	    pg_col_text(r, i, 4), "reason", pg_col_text(r, i, 5), "due_at", pg_col_int(r, i, 6),
	    "status", pg_col_text(r, i, 7), "created_at", pg_col_int(r, i, 8), "created_by",
	    pg_col_text(r, i, 9), "done_at", pg_col_int(r, i, 10), "done_by",
	    pg_col_text(r, i, 11));
}

/* A history row as stored (a "rules" row keeps its entries packed in detail). */
static json_t *
history_row(const PGresult *r, int i)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "at", pg_col_int(r, i, 0), "actor",
	    pg_col_text(r, i, 1), "action", pg_col_text(r, i, 2), "from", pg_col_text(r, i, 3),
	    "to", pg_col_text(r, i, 4), "detail", pg_col_text(r, i, 5));
}

static json_t *
message_row(const PGresult *r, int i)
{
	return json_pack("{s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
			 " s:o}",
	    "id", (json_int_t)pg_int(r, i, 0), "contact_id", (json_int_t)pg_int(r, i, 1),
	    "direction", pg_col_text(r, i, 2), "channel", pg_col_text(r, i, 3), "at",
	    col_iso(r, i, 4), "actor", pg_col_text(r, i, 5), "sender", pg_col_text(r, i, 6),
	    "recipients", pg_col_json(r, i, 7), "subject", pg_col_text(r, i, 8), "body",
	    pg_col_text(r, i, 9), "message_id", pg_col_text(r, i, 10), "automatic",
	    pg_col_text(r, i, 11), "attachments", pg_col_json(r, i, 12), "meta",
	    pg_col_json(r, i, 13), "status", pg_col_text(r, i, 14));
}

/* Appends every row of r, made JSON by row, to list; -1 without memory. */
static int
rows_append(json_t *list, const PGresult *r, json_t *(*row)(const PGresult *, int))
{
	for (int i = 0; i < PQntuples(r); i++)
		if (json_array_append_new(list, row(r, i)) < 0)
			return -1;
	return 0;
}

static const char sql_contact_by_id[] = "SELECT " CONTACT_COLS
					"FROM contacts c LEFT JOIN parties p ON p.id = c.party_id"
					" WHERE c.id = $1::bigint";
static const char sql_history[] = "SELECT " PG_MS("at") ", actor, action, from_status,"
				  " to_status, detail FROM contact_history"
				  " WHERE contact_id = $1::bigint ORDER BY id";
static const char sql_tasks_of_contact[] = "SELECT " TASK_COLS
					   "FROM tasks t JOIN contacts c ON c.id = t.contact_id"
					   " WHERE t.contact_id = $1::bigint ORDER BY t.id";

/* The rows sql gives for one id, appended to a new array; NULL on failure. */
static json_t *
list_of(struct pg_conn *c, const char *sql, int64_t id, json_t *(*row)(const PGresult *, int))
{
	struct pg_params p;
	PGresult *r;
	json_t *list;

	pg_params_init(&p);
	pg_p_int(&p, id);
	r = pg_run(c, sql, &p);
	pg_params_clear(&p);
	if (r == NULL)
		return NULL;
	if ((list = json_array()) == NULL || rows_append(list, r, row) < 0) {
		json_decref(list);
		list = NULL;
	}
	PQclear(r);
	return list;
}

/*
 * The contact in the storage shape into *out; with details, its history and
 * tasks too. 0 found, 1 no such contact, -1 failed (c->fault says how).
 */
static int
contact_load(struct pg_conn *c, int64_t id, int details, json_t **out)
{
	struct pg_params p;
	json_t *contact, *list;
	PGresult *r;

	*out = NULL;
	pg_params_init(&p);
	pg_p_int(&p, id);
	r = pg_run(c, sql_contact_by_id, &p);
	pg_params_clear(&p);
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 1;
	}
	contact = contact_row(r, 0);
	PQclear(r);
	if (contact == NULL)
		return -1;
	if (details) {
		if ((list = list_of(c, sql_history, id, history_row)) == NULL ||
		    json_object_set_new(contact, "history", list) < 0 ||
		    (list = list_of(c, sql_tasks_of_contact, id, task_row)) == NULL ||
		    json_object_set_new(contact, "tasks", list) < 0) {
			json_decref(contact);
			return -1;
		}
	}
	*out = contact;
	return 0;
}

static void
op_contact_get(struct pg_conn *c, struct store_req *req)
{
	int own = 0;
	int64_t id = json_integer_value(json_object_get(req->in, "id"));
	json_t *contact;
	int rc;

	if (snapshot_begin(c, &own) < 0) {
		read_fail(c, req);
		return;
	}
	rc = contact_load(c, id, 1, &contact);
	if (rc < 0) {
		read_fail(c, req);
	} else if (rc > 0) {
		pg_host->req_fail(req, STORE_NOT_FOUND, "no contact with id %lld", (long long)id);
	} else if (!pg_scope_allows(json_object_get(req->in, "scope"), pg_jstr(contact, "department"),
		       pg_jstr(contact, "organisation"),
		       json_is_true(json_object_get(contact, "confidential")))) {
		json_decref(contact);
		pg_host->req_fail(req, STORE_FORBIDDEN, "this token may not read that contact");
	} else {
		req->out = contact;
	}
	snapshot_end(c, own);
}

/* A list answer from r: at most limit rows by id descending, next_cursor when more follow. */
static void
list_answer(struct pg_conn *c, struct store_req *req, PGresult *r, int limit,
    json_t *(*row)(const PGresult *, int))
{
	json_t *items = json_array();
	int n = PQntuples(r), more = 0;
	int64_t last = 0;
	char cursor[32];

	(void)c;
	if (n > limit) {
		more = 1;
		n = limit;
	}
	for (int i = 0; items != NULL && i < n; i++) {
		json_array_append_new(items, row(r, i));
		last = pg_int(r, i, 0);
	}
	PQclear(r);
	snprintf(cursor, sizeof(cursor), "%lld", (long long)last);
	req->out = json_pack("{s:o, s:o}", "items", items, "next_cursor",
	    more ? json_string(cursor) : json_null());
}

static void
op_contact_list(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT " CONTACT_COLS
				  "FROM contacts c LEFT JOIN parties p ON p.id = c.party_id WHERE"
				  " ($1::text IS NULL OR c.status = $1::text)"
				  " AND ($2::bigint IS NULL OR c.line = $2::bigint)"
				  " AND ($3::text IS NULL OR c.channel = $3::text)"
				  " AND ($4::text IS NULL OR c.department = $4::text)"
				  " AND ($5::bigint IS NULL OR c.received_at >= " PG_TS(5) ")"
				  " AND ($6::bigint IS NULL OR c.received_at < " PG_TS(6) ")"
				  " AND ($7::bigint IS NULL OR c.id < $7::bigint)" PG_SCOPE(8, 9, 10)
				  " AND ($12::bigint IS NULL OR c.party_id = $12::bigint)"
				  " ORDER BY c.id DESC LIMIT $11::bigint";
	json_t *in = req->in;
	int limit = (int)json_integer_value(json_object_get(in, "limit"));
	struct pg_params p;
	PGresult *r;

	pg_params_init(&p);
	pg_p_jtext(&p, in, "status");
	pg_p_jint(&p, in, "line");
	pg_p_jtext(&p, in, "channel");
	pg_p_jtext(&p, in, "department");
	pg_p_jint(&p, in, "since");
	pg_p_jint(&p, in, "until");
	pg_p_jint(&p, in, "cursor");
	pg_p_scope(&p, json_object_get(in, "scope"));
	pg_p_int(&p, (int64_t)limit + 1);
	pg_p_jint(&p, in, "party");
	r = pg_run(c, sql, &p);
	pg_params_clear(&p);
	if (r == NULL) {
		read_fail(c, req);
		return;
	}
	list_answer(c, req, r, limit, contact_row);
}

static void
op_task_list(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT " TASK_COLS
				  "FROM tasks t JOIN contacts c ON c.id = t.contact_id WHERE"
				  " ($1::text IS NULL OR t.department = $1::text)"
				  " AND ($2::text IS NULL OR t.status = $2::text)"
				  " AND ($3::bigint IS NULL OR t.id < $3::bigint)" PG_SCOPE(4, 5, 6)
				  " ORDER BY t.id DESC LIMIT $7::bigint";
	json_t *in = req->in;
	int limit = (int)json_integer_value(json_object_get(in, "limit"));
	struct pg_params p;
	PGresult *r;

	pg_params_init(&p);
	pg_p_jtext(&p, in, "department");
	pg_p_jtext(&p, in, "status");
	pg_p_jint(&p, in, "cursor");
	pg_p_scope(&p, json_object_get(in, "scope"));
	pg_p_int(&p, (int64_t)limit + 1);
	r = pg_run(c, sql, &p);
	pg_params_clear(&p);
	if (r == NULL) {
		read_fail(c, req);
		return;
	}
	list_answer(c, req, r, limit, task_row);
}

/* ---- parties ---- */

static const char sql_party_by_rrn[] = "SELECT id FROM parties WHERE rrn = $1::text";
static const char sql_party_by_bsn[] = "SELECT id FROM parties WHERE bsn = $1::text";
static const char sql_party_by_email[] = "SELECT party_id FROM party_emails WHERE email = $1::text";
static const char sql_party_by_phone[] = "SELECT party_id FROM party_phones WHERE phone = $1::text";

/* The identifier kinds, strongest first: the order a lookup tries them in. */
static const struct {
	const char *key;
	const char *sql;
} party_ids[] = {
	{ "rrn", sql_party_by_rrn },
	{ "bsn", sql_party_by_bsn },
	{ "email", sql_party_by_email },
	{ "phone", sql_party_by_phone },
};

#define PARTY_ID_KINDS (sizeof(party_ids) / sizeof(party_ids[0]))

/* What deciding on a party needs of its row. */
struct party_state {
	int64_t id;
	int64_t merged_into;
	int confidential;
};

/* The party an identifier belongs to: 0 when none, -1 on failure. */
static int64_t
party_by(struct pg_conn *c, const char *sql, const char *value)
{
	struct pg_params p;
	PGresult *r;
	int64_t id = 0;

	pg_params_init(&p);
	pg_p_text(&p, value);
	r = pg_run(c, sql, &p);
	pg_params_clear(&p);
	if (r == NULL)
		return -1;
	if (PQntuples(r) > 0)
		id = pg_int(r, 0, 0);
	PQclear(r);
	return id;
}

/* 0 found, 1 no such party, -1 failed. */
static int
party_state(struct pg_conn *c, int64_t id, struct party_state *ps)
{
	static const char sql[] = "SELECT merged_into, confidential FROM parties WHERE id = $1::bigint";
	struct pg_params p;
	PGresult *r;
	int rc = 1;

	memset(ps, 0, sizeof(*ps));
	pg_params_init(&p);
	pg_p_int(&p, id);
	r = pg_run(c, sql, &p);
	pg_params_clear(&p);
	if (r == NULL)
		return -1;
	if (PQntuples(r) > 0) {
		ps->id = id;
		ps->merged_into = pg_int(r, 0, 0);
		ps->confidential = pg_str(r, 0, 1) != NULL && pg_str(r, 0, 1)[0] == 't';
		rc = 0;
	}
	PQclear(r);
	return rc;
}

/*
 * Whether scope may see a party: every staff member sees an ordinary party;
 * one whose contacts are all confidential only through one of those contacts.
 * 1 yes, 0 no, -1 failed.
 */
static int
party_visible(struct pg_conn *c, const struct party_state *ps, json_t *scope)
{
	static const char sql[] = "SELECT 1 FROM contacts c WHERE c.party_id = $1::bigint"
	    PG_SCOPE(2, 3, 4) " LIMIT 1";
	struct pg_params p;
	PGresult *r;
	int seen;

	if (!ps->confidential || json_is_true(json_object_get(scope, "all")))
		return 1;
	pg_params_init(&p);
	pg_p_int(&p, ps->id);
	pg_p_scope(&p, scope);
	r = pg_run(c, sql, &p);
	pg_params_clear(&p);
	if (r == NULL)
		return -1;
	seen = PQntuples(r) > 0;
	PQclear(r);
	return seen;
}

static json_t *
first_text(const PGresult *r, int i)
{
	return pg_col_text(r, i, 0);
}

/* The party as the API shows it; NULL on failure or when it is gone. */
static json_t *
party_load(struct pg_conn *c, int64_t id)
{
	static const char sql[] = "SELECT id, kind, name, rrn, bsn, preferred_channel,"
				  " confidential, " PG_MS("created_at") " FROM parties"
				  " WHERE id = $1::bigint";
	static const char sql_emails[] = "SELECT email FROM party_emails WHERE party_id = $1::bigint"
					 " ORDER BY email COLLATE \"C\"";
	static const char sql_phones[] = "SELECT phone FROM party_phones WHERE party_id = $1::bigint"
					 " ORDER BY phone COLLATE \"C\"";
	struct pg_params p;
	json_t *party, *list;
	PGresult *r;

	pg_params_init(&p);
	pg_p_int(&p, id);
	r = pg_run(c, sql, &p);
	pg_params_clear(&p);
	if (r == NULL || PQntuples(r) == 0) {
		PQclear(r);
		return NULL;
	}
	party = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:b, s:o}", "id",
	    (json_int_t)pg_int(r, 0, 0), "kind", pg_col_text(r, 0, 1), "name",
	    pg_col_text(r, 0, 2), "rrn", pg_col_text(r, 0, 3), "bsn", pg_col_text(r, 0, 4),
	    "preferred_channel", pg_col_text(r, 0, 5), "confidential",
	    pg_str(r, 0, 6) != NULL && pg_str(r, 0, 6)[0] == 't', "created_at", col_iso(r, 0, 7));
	PQclear(r);
	if (party == NULL)
		return NULL;
	if ((list = list_of(c, sql_emails, id, first_text)) == NULL ||
	    json_object_set_new(party, "emails", list) < 0 ||
	    (list = list_of(c, sql_phones, id, first_text)) == NULL ||
	    json_object_set_new(party, "phones", list) < 0) {
		json_decref(party);
		return NULL;
	}
	return party;
}

/* A live party scope may see (0), or the request answered (404, 403, failure) and -1. */
static int
party_open(struct pg_conn *c, struct store_req *req, int64_t id, json_t *scope,
    struct party_state *ps)
{
	int rc = party_state(c, id, ps);

	if (rc < 0) {
		read_fail(c, req);
		return -1;
	}
	if (rc > 0) {
		pg_host->req_fail(req, STORE_NOT_FOUND, "no party with id %lld", (long long)id);
		return -1;
	}
	if (ps->merged_into != 0) {
		pg_host->req_fail(req, STORE_NOT_FOUND, "party %lld was merged into party %lld",
		    (long long)id, (long long)ps->merged_into);
		return -1;
	}
	if ((rc = party_visible(c, ps, scope)) <= 0) {
		if (rc < 0)
			read_fail(c, req);
		else
			pg_host->req_fail(req, STORE_FORBIDDEN,
			    "this token may not see party %lld: all its contacts are confidential "
			    "and none is in this token's scope",
			    (long long)id);
		return -1;
	}
	return 0;
}

static void
op_party_get(struct pg_conn *c, struct store_req *req)
{
	int own = 0;
	int64_t id = json_integer_value(json_object_get(req->in, "id"));
	struct party_state ps;

	if (snapshot_begin(c, &own) < 0) {
		read_fail(c, req);
		return;
	}
	if (party_open(c, req, id, json_object_get(req->in, "scope"), &ps) == 0 &&
	    (req->out = party_load(c, id)) == NULL)
		read_fail(c, req);
	snapshot_end(c, own);
}

/* A lookup answers like a list: a party the token may not see is not among the items. */
static void
op_party_find(struct pg_conn *c, struct store_req *req)
{
	int own = 0;
	json_t *in = req->in, *items, *party;
	struct party_state ps;
	int64_t id = 0;
	int rc;

	if (snapshot_begin(c, &own) < 0) {
		read_fail(c, req);
		return;
	}
	for (size_t i = 0; i < PARTY_ID_KINDS && id == 0; i++)
		if (pg_jstr(in, party_ids[i].key) != NULL)
			id = party_by(c, party_ids[i].sql, pg_jstr(in, party_ids[i].key));
	if (id < 0)
		goto fail;
	items = json_array();
	if (id > 0) {
		if ((rc = party_state(c, id, &ps)) < 0)
			goto fail_items;
		if (rc == 0 && ps.merged_into == 0) {
			if ((rc = party_visible(c, &ps, json_object_get(in, "scope"))) < 0)
				goto fail_items;
			if (rc > 0) {
				if ((party = party_load(c, id)) == NULL)
					goto fail_items;
				json_array_append_new(items, party);
			}
		}
	}
	req->out = json_pack("{s:o}", "items", items);
	snapshot_end(c, own);
	return;
fail_items:
	json_decref(items);
fail:
	read_fail(c, req);
	snapshot_end(c, own);
}

/*
 * Letters with a diacritic, then A-Z, and what they fold to: the SQLite
 * driver's table (store_sqlite_workflow.c) with upper case folded to lower
 * in the same pass, as translate() makes one pass.
 */
static const char pg_fold_from[] = "ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöøùúûüýÿ"
				   "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
static const char pg_fold_to[] = "aaaaaaceeeeiiiinoooooouuuuyaaaaaaceeeeiiiinoooooouuuuyy"
				 "abcdefghijklmnopqrstuvwxyz";
#define PG_FOLD_NAME(col) "regexp_replace(translate(" col ", $2::text, $3::text), '[ \\t\\n\\r\\v\\f]', '', 'g')"
#define PG_FOLD_EMAIL(col)                                                                \
	"(replace(regexp_replace(substring(" col " from '^(.*)@'), '\\+.*$', ''), '.', '')" \
	" || substring(" col " from '@[^@]*$'))"

/* A task with what a hand-over needs of its contact (docs/storage.md, STORE_TASK_GET). */
static void
op_task_get(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT " TASK_COLS ", c.product, c.status, c.department,"
				  " c.organisation, c.confidential"
				  " FROM tasks t JOIN contacts c ON c.id = t.contact_id"
				  " WHERE t.id = $1::bigint";
	int64_t id = json_integer_value(json_object_get(req->in, "id"));
	struct pg_params p;
	json_t *task;
	PGresult *r;

	pg_params_init(&p);
	pg_p_int(&p, id);
	r = pg_run(c, sql, &p);
	pg_params_clear(&p);
	if (r == NULL) {
		read_fail(c, req);
		return;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		pg_host->req_fail(req, STORE_NOT_FOUND, "no task with id %lld", (long long)id);
		return;
	}
	/* Who may see a task follows its contact, wherever the contact went since. */
	if (!pg_scope_allows(json_object_get(req->in, "scope"), pg_str(r, 0, 14), pg_str(r, 0, 15),
		pg_str(r, 0, 16) != NULL && pg_str(r, 0, 16)[0] == 't')) {
		PQclear(r);
		pg_host->req_fail(req, STORE_FORBIDDEN, "this token may not act on that task");
		return;
	}
	if ((task = task_row(r, 0)) != NULL) {
		json_object_set_new(task, "product", pg_col_text(r, 0, 12));
		json_object_set_new(task, "contact_status", pg_col_text(r, 0, 13));
	}
	PQclear(r);
	req->out = task;
}

/*
 * Other live parties that are probably the same person: the same folded
 * name and no different RRN or BSN, or an email whose variant key equals
 * one of this party's; in id order, those scope may see, up to limit.
 */
static void
op_party_duplicates(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] =
	    "SELECT p.id FROM parties p, parties me WHERE me.id = $1::bigint"
	    " AND p.merged_into IS NULL AND p.id <> me.id AND p.name IS NOT NULL"
	    " AND me.name IS NOT NULL AND " PG_FOLD_NAME("me.name") " <> ''"
	    " AND " PG_FOLD_NAME("p.name") " = " PG_FOLD_NAME("me.name")
	    " AND NOT (me.rrn IS NOT NULL AND p.rrn IS NOT NULL AND p.rrn <> me.rrn)"
	    " AND NOT (me.bsn IS NOT NULL AND p.bsn IS NOT NULL AND p.bsn <> me.bsn)"
	    " UNION SELECT e.party_id FROM party_emails e JOIN parties p ON p.id = e.party_id"
	    " WHERE p.merged_into IS NULL AND e.party_id <> $1::bigint"
	    " AND " PG_FOLD_EMAIL("e.email") " IN (SELECT " PG_FOLD_EMAIL("m.email")
	    " FROM party_emails m WHERE m.party_id = $1::bigint) ORDER BY 1";
	json_t *in = req->in, *items = NULL, *party;
	int64_t id = json_integer_value(json_object_get(in, "id"));
	int limit = json_is_integer(json_object_get(in, "limit"))
			? (int)json_integer_value(json_object_get(in, "limit")) : 20;
	struct party_state ps;
	struct pg_params p;
	PGresult *r = NULL;
	int own = 0, rc;

	if (snapshot_begin(c, &own) < 0) {
		read_fail(c, req);
		return;
	}
	if (party_open(c, req, id, json_object_get(in, "scope"), &ps) < 0) {
		snapshot_end(c, own);
		return;
	}
	pg_params_init(&p);
	pg_p_int(&p, id);
	pg_p_text(&p, pg_fold_from);
	pg_p_text(&p, pg_fold_to);
	r = pg_run(c, sql, &p);
	pg_params_clear(&p);
	if (r == NULL || (items = json_array()) == NULL)
		goto fail;
	for (int i = 0; i < PQntuples(r) && (int)json_array_size(items) < limit; i++) {
		int64_t other = pg_int(r, i, 0);

		/* Hidden as a party lookup hides it. */
		if ((rc = party_state(c, other, &ps)) < 0)
			goto fail;
		if (rc > 0 || ps.merged_into != 0)
			continue;
		if ((rc = party_visible(c, &ps, json_object_get(in, "scope"))) < 0)
			goto fail;
		if (rc == 0)
			continue;
		if ((party = party_load(c, other)) == NULL)
			goto fail;
		json_array_append_new(items, party);
	}
	PQclear(r);
	req->out = json_pack("{s:o}", "items", items);
	snapshot_end(c, own);
	return;
fail:
	PQclear(r);
	json_decref(items);
	read_fail(c, req);
	snapshot_end(c, own);
}

static void
op_party_contacts(struct pg_conn *c, struct store_req *req)
{
	int own = 0;
	static const char sql[] = "SELECT " CONTACT_COLS
				  "FROM contacts c LEFT JOIN parties p ON p.id = c.party_id"
				  " WHERE c.party_id = $1::bigint"
				  " AND ($2::bigint IS NULL OR c.id < $2::bigint)" PG_SCOPE(3, 4, 5)
				  " ORDER BY c.id DESC LIMIT $6::bigint";
	json_t *in = req->in;
	int64_t id = json_integer_value(json_object_get(in, "id"));
	int limit = (int)json_integer_value(json_object_get(in, "limit"));
	struct party_state ps;
	struct pg_params p;
	PGresult *r;

	if (snapshot_begin(c, &own) < 0) {
		read_fail(c, req);
		return;
	}
	/* The history of a party this token may not see is as closed as the party. */
	if (party_open(c, req, id, json_object_get(in, "scope"), &ps) < 0) {
		snapshot_end(c, own);
		return;
	}
	pg_params_init(&p);
	pg_p_int(&p, id);
	pg_p_jint(&p, in, "cursor");
	pg_p_scope(&p, json_object_get(in, "scope"));
	pg_p_int(&p, (int64_t)limit + 1);
	r = pg_run(c, sql, &p);
	pg_params_clear(&p);
	if (r == NULL)
		read_fail(c, req);
	else
		list_answer(c, req, r, limit, contact_row);
	snapshot_end(c, own);
}

/* ---- tokens, counts, timers, events ---- */

static void
op_token_list(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT name, hash, role, departments, organisation, "
				  PG_MS("created_at") ", " PG_MS("revoked_at")
				  " FROM tokens ORDER BY name COLLATE \"C\"";
	PGresult *r = pg_run(c, sql, NULL);
	json_t *items;

	if (r == NULL) {
		read_fail(c, req);
		return;
	}
	items = json_array();
	for (int i = 0; items != NULL && i < PQntuples(r); i++)
		json_array_append_new(items,
		    json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "name", pg_col_text(r, i, 0),
			"hash", pg_col_text(r, i, 1), "role", pg_col_text(r, i, 2), "departments",
			pg_col_json(r, i, 3), "organisation", pg_col_text(r, i, 4), "created_at",
			col_iso(r, i, 5), "revoked_at", col_iso(r, i, 6)));
	PQclear(r);
	req->out = json_pack("{s:o}", "items", items);
}

/* The count per channel and status (the writer keeps them): /metrics at start-up. */
static void
op_counts(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT channel, status, n FROM counts";
	PGresult *r = pg_run(c, sql, NULL);
	json_t *items;

	if (r == NULL) {
		read_fail(c, req);
		return;
	}
	items = json_array();
	for (int i = 0; items != NULL && i < PQntuples(r); i++)
		json_array_append_new(items,
		    json_pack("{s:o, s:o, s:I}", "channel", pg_col_text(r, i, 0), "status",
			pg_col_text(r, i, 1), "n", (json_int_t)pg_int(r, i, 2)));
	PQclear(r);
	req->out = json_pack("{s:o}", "items", items);
}

/* How long this node's claims on due work last ([storage] lease), in ms. */
static int64_t
claim_lease_ms(void)
{
	int64_t lease = pg_host->conf_int(pg_host, "lease");

	return lease > 0 ? lease : 30000;
}

/*
 * Pending timers due by now that no live claim holds, claimed for this node
 * for one lease, with what their firing needs to know of the contact. One
 * statement: SKIP LOCKED passes over rows another node is claiming right
 * now, and under READ COMMITTED a row another node finished since this
 * statement began is checked again as it is now (no longer pending: left).
 * A node that dies holding claims leaves them to run out: then another
 * node's read takes them.
 */
static void
op_timers_due(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] = "WITH claimed AS (UPDATE timers SET claimed_by = $3::text,"
				  " claim_until = " PG_TS(4) " WHERE id IN (SELECT id FROM timers"
				  " WHERE status = 'pending' AND due_at <= " PG_TS(1)
				  " AND (claim_until IS NULL OR claim_until <= " PG_TS(1) ")"
				  " ORDER BY due_at, id LIMIT $2::bigint FOR UPDATE SKIP LOCKED)"
				  " RETURNING id, contact_id, task_id, kind, due_at, payload, rule)"
				  " SELECT t.id, t.contact_id, t.task_id, t.kind, "
				  PG_MS("t.due_at") ", t.payload, t.rule, c.status, k.status"
				  " FROM claimed t JOIN contacts c ON c.id = t.contact_id"
				  " LEFT JOIN tasks k ON k.id = t.task_id ORDER BY t.due_at, t.id";
	int64_t now = json_integer_value(json_object_get(req->in, "now"));
	struct pg_params p;
	PGresult *r;
	json_t *items;

	pg_params_init(&p);
	pg_p_int(&p, now);
	pg_p_int(&p, json_integer_value(json_object_get(req->in, "limit")));
	pg_p_text(&p, pg_host->conf_get(pg_host, "node"));
	pg_p_int(&p, now + claim_lease_ms());
	r = pg_run(c, sql, &p);
	pg_params_clear(&p);
	if (r == NULL) {
		read_fail(c, req);
		return;
	}
	items = json_array();
	for (int i = 0; items != NULL && i < PQntuples(r); i++)
		json_array_append_new(items,
		    json_pack("{s:I, s:I, s:o, s:o, s:I, s:o, s:o, s:o, s:o}", "id",
			(json_int_t)pg_int(r, i, 0), "contact_id", (json_int_t)pg_int(r, i, 1),
			"task_id", pg_col_int(r, i, 2), "kind", pg_col_text(r, i, 3), "due_at",
			(json_int_t)pg_int(r, i, 4), "payload", pg_col_json(r, i, 5), "rule",
			pg_col_text(r, i, 6), "contact_status", pg_col_text(r, i, 7), "task_status",
			pg_col_text(r, i, 8)));
	PQclear(r);
	req->out = json_pack("{s:o}", "items", items);
}

/*
 * {key: ms} or {key: null}: when something pending may next become due for
 * this node, from a one-value query (a row held by a live claim counts at
 * the end of its claim: when its node died, it is this node's then). In a
 * register other nodes share, a node looks again one lease after in.now at
 * the latest: a node that dies may leave timers or rows this node never
 * heard of, and they are taken over within a lease of falling due.
 */
static void
min_pending(struct pg_conn *c, struct store_req *req, const char *sql, const char *key)
{
	json_t *now = json_object_get(req->in, "now");
	PGresult *r = pg_run(c, sql, NULL);
	int64_t next = -1;

	if (r == NULL) {
		read_fail(c, req);
		return;
	}
	if (PQntuples(r) > 0 && !pg_isnull(r, 0, 0))
		next = pg_int(r, 0, 0);
	PQclear(r);
	if (json_is_integer(now)) {
		int64_t look = json_integer_value(now) + claim_lease_ms();

		if (next < 0 || look < next)
			next = look;
	}
	if (next >= 0)
		req->out = json_pack("{s:I}", key, (json_int_t)next);
	else
		req->out = json_pack("{s:n}", key);
}

static void
op_timers_next(struct pg_conn *c, struct store_req *req)
{
	/* greatest() passes over a null: an unclaimed row counts at its due time. */
	static const char sql[] = "SELECT " PG_MS("min(greatest(due_at, claim_until))")
				  " FROM timers WHERE status = 'pending'";

	min_pending(c, req, sql, "due_at");
}

static void
op_outbox_next(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT " PG_MS("min(greatest(next_at, claim_until))")
				  " FROM outbox WHERE status = 'pending'";

	min_pending(c, req, sql, "next_at");
}

/*
 * Events after the id a reader saw last, oldest first, at most limit: what
 * a client that lost its stream (or a node that was down) catches up with.
 */
static void
op_events_after(struct pg_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT id, " PG_MS("at") ", kind, contact_id, task_id, payload"
				  " FROM events WHERE id > $1::bigint ORDER BY id LIMIT $2::bigint";
	json_int_t limit = json_integer_value(json_object_get(req->in, "limit"));
	struct pg_params p;
	PGresult *r;
	json_t *items;
	int64_t last;

	pg_params_init(&p);
	pg_p_int(&p, json_integer_value(json_object_get(req->in, "after")));
	pg_p_int(&p, limit > 0 && limit <= 1000 ? limit : 100);
	r = pg_run(c, sql, &p);
	pg_params_clear(&p);
	if (r == NULL) {
		read_fail(c, req);
		return;
	}
	items = json_array();
	/* No contact or task is 0, as the SQLite driver answers. */
	for (int i = 0; items != NULL && i < PQntuples(r); i++)
		json_array_append_new(items,
		    json_pack("{s:I, s:I, s:o, s:I, s:I, s:o}", "id", (json_int_t)pg_int(r, i, 0),
			"at", (json_int_t)pg_int(r, i, 1), "kind", pg_col_text(r, i, 2),
			"contact_id", (json_int_t)pg_int(r, i, 3), "task_id",
			(json_int_t)pg_int(r, i, 4), "payload", pg_col_json(r, i, 5)));
	PQclear(r);
	/* The newest id: a reader that claims to have seen more has another register's ids. */
	if ((r = pg_run(c, "SELECT coalesce(max(id), 0) FROM events", NULL)) == NULL) {
		json_decref(items);
		read_fail(c, req);
		return;
	}
	last = PQntuples(r) == 1 ? pg_int(r, 0, 0) : 0;
	PQclear(r);
	req->out = json_pack("{s:o, s:I}", "items", items, "last", (json_int_t)last);
}

/* ---- messages, threads, the outbox ---- */

static void
op_message_list(struct pg_conn *c, struct store_req *req)
{
	int own = 0;
	static const char sql_state[] = "SELECT department, organisation, confidential"
					" FROM contacts WHERE id = $1::bigint";
	static const char sql[] = "SELECT " MESSAGE_COLS
				  "FROM messages WHERE contact_id = $1::bigint ORDER BY id";
	int64_t id = json_integer_value(json_object_get(req->in, "id"));
	struct pg_params p;
	PGresult *r;
	json_t *items;
	int allowed;

	if (snapshot_begin(c, &own) < 0) {
		read_fail(c, req);
		return;
	}
	pg_params_init(&p);
	pg_p_int(&p, id);
	if ((r = pg_run(c, sql_state, &p)) == NULL)
		goto fail;
	if (PQntuples(r) == 0) {
		PQclear(r);
		pg_host->req_fail(req, STORE_NOT_FOUND, "no contact with id %lld", (long long)id);
		goto out;
	}
	allowed = pg_scope_allows(json_object_get(req->in, "scope"), pg_str(r, 0, 0), pg_str(r, 0, 1),
	    pg_str(r, 0, 2) != NULL && pg_str(r, 0, 2)[0] == 't');
	PQclear(r);
	if (!allowed) {
		pg_host->req_fail(req, STORE_FORBIDDEN, "this token may not see that contact");
		goto out;
	}
	if ((r = pg_run(c, sql, &p)) == NULL)
		goto fail;
	if ((items = json_array()) == NULL || rows_append(items, r, message_row) < 0) {
		json_decref(items);
		PQclear(r);
		pg_host->req_fail(req, STORE_FAILED, "out of memory");
		goto out;
	}
	PQclear(r);
	req->out = json_pack("{s:o}", "items", items);
	goto out;
fail:
	read_fail(c, req);
out:
	pg_params_clear(&p);
	snapshot_end(c, own);
}

/*
 * The contact a channel's message belongs to: by its reference token, else by
 * the Message-IDs it answers. Also, for the flag on a mail that reuses one,
 * the contact that already holds a message with the message's own Message-ID.
 * The same rules as the SQLite driver's sq_op_thread_find (its comments say why).
 */
static void
op_thread_find(struct pg_conn *c, struct store_req *req)
{
	int own = 0;
	static const char sql_ref[]
	    = "SELECT c.id FROM contacts c WHERE c.reference = $1::text AND ("
	      " EXISTS (SELECT 1 FROM party_emails e WHERE e.party_id = c.party_id"
	      "  AND e.email = lower($2::text))"
	      " OR EXISTS (SELECT 1 FROM messages m WHERE m.contact_id = c.id"
	      "  AND lower(m.sender) = lower($2::text)))"
	      " ORDER BY c.id LIMIT 1";
	static const char sql_msg[]
	    = "SELECT m.contact_id FROM messages m WHERE m.message_id = $1::text AND"
	      " (m.direction = 'out' OR lower(m.sender) = lower($2::text)"
	      "  OR EXISTS (SELECT 1 FROM contacts kc JOIN party_emails ke"
	      "   ON ke.party_id = kc.party_id WHERE kc.id = m.contact_id"
	      "   AND ke.email = lower($2::text))"
	      "  OR lower($2::text) = (SELECT lower(kf.sender) FROM messages kf"
	      "   WHERE kf.contact_id = m.contact_id AND kf.direction = 'in'"
	      "   ORDER BY kf.id LIMIT 1))"
	      " ORDER BY m.id DESC LIMIT 1";
	static const char sql_seen[] = "SELECT m.contact_id, c.reference FROM messages m"
				       " JOIN contacts c ON c.id = m.contact_id"
				       " WHERE m.message_id = $1::text ORDER BY m.id LIMIT 1";
	const char *sender = pg_jstr(req->in, "sender");
	struct pg_params p;
	int64_t found = 0;
	json_t *v, *seen = NULL;
	PGresult *r;
	size_t i;

	if (snapshot_begin(c, &own) < 0)
		goto fail;
	if (pg_jstr(req->in, "reference") != NULL && sender != NULL) {
		pg_params_init(&p);
		pg_p_jtext(&p, req->in, "reference");
		pg_p_text(&p, sender);
		r = pg_run(c, sql_ref, &p);
		pg_params_clear(&p);
		if (r == NULL)
			goto fail;
		if (PQntuples(r) > 0)
			found = pg_int(r, 0, 0);
		PQclear(r);
	}
	json_array_foreach(json_object_get(req->in, "message_ids"), i, v)
	{
		if (found != 0 || !json_is_string(v))
			break;
		pg_params_init(&p);
		pg_p_text(&p, json_string_value(v));
		pg_p_text(&p, sender);
		r = pg_run(c, sql_msg, &p);
		pg_params_clear(&p);
		if (r == NULL)
			goto fail;
		if (PQntuples(r) > 0)
			found = pg_int(r, 0, 0);
		PQclear(r);
	}
	if (pg_jstr(req->in, "message_id") != NULL) {
		pg_params_init(&p);
		pg_p_jtext(&p, req->in, "message_id");
		r = pg_run(c, sql_seen, &p);
		pg_params_clear(&p);
		if (r == NULL)
			goto fail;
		if (PQntuples(r) > 0)
			seen = json_pack("{s:I, s:o}", "id", (json_int_t)pg_int(r, 0, 0), "reference",
			    pg_col_text(r, 0, 1));
		PQclear(r);
	}
	snapshot_end(c, own);
	req->out = json_pack("{s:o, s:o}", "contact_id", found != 0 ? json_integer(found) : json_null(),
	    "message_id_seen", seen != NULL ? seen : json_null());
	return;
fail:
	read_fail(c, req);
	snapshot_end(c, own);
}

static const char sql_message[] = "SELECT " MESSAGE_COLS "FROM messages WHERE id = $1::bigint";
static const char sql_last_inbound[] = "SELECT " MESSAGE_COLS "FROM messages WHERE"
				       " contact_id = $1::bigint AND direction = 'in'"
				       " ORDER BY id DESC LIMIT 1";
static const char sql_task_due[] = "SELECT " PG_MS("due_at") " FROM tasks"
				   " WHERE contact_id = $1::bigint AND status = 'open'"
				   " AND due_at IS NOT NULL ORDER BY id DESC LIMIT 1";
/* Never "the party's first email": a party's identifiers came from anybody. */
static const char sql_reply_to[] = "SELECT reply_to FROM contacts WHERE id = $1::bigint";
static const char sql_requester[] = "SELECT sender FROM messages WHERE contact_id = $1::bigint"
				    " AND direction = 'in' AND sender IS NOT NULL"
				    " ORDER BY id LIMIT 1";

static json_t *
first_int(const PGresult *r, int i)
{
	return pg_col_int(r, i, 0);
}

/* The first row a one-parameter query gives for id, made JSON by row; null when none; NULL failed. */
static json_t *
row_of(struct pg_conn *c, const char *sql, int64_t id, json_t *(*row)(const PGresult *, int))
{
	struct pg_params p;
	PGresult *r;
	json_t *v;

	pg_params_init(&p);
	pg_p_int(&p, id);
	r = pg_run(c, sql, &p);
	pg_params_clear(&p);
	if (r == NULL)
		return NULL;
	v = PQntuples(r) > 0 ? row(r, 0) : json_null();
	PQclear(r);
	return v;
}

/*
 * Automatic messages sent to recipient in the last day: -1 failed. Recipients
 * are stored lower-case (recipient_normal), so the index answers.
 */
static int64_t
sent_automatically(struct pg_conn *c, const char *recipient, int64_t now)
{
	static const char sql[] = "SELECT count(*) FROM outbox WHERE recipient = $1::text AND"
				  " automatic AND status = 'sent' AND sent_at > " PG_TS(2);
	struct pg_params p;
	PGresult *r;
	int64_t n;

	if (recipient == NULL)
		return 0;
	pg_params_init(&p);
	pg_p_text(&p, recipient);
	pg_p_int(&p, now - DAY_MS);
	r = pg_run(c, sql, &p);
	pg_params_clear(&p);
	if (r == NULL)
		return -1;
	n = PQntuples(r) > 0 ? pg_int(r, 0, 0) : 0;
	PQclear(r);
	return n;
}

/*
 * The recipient of a reply: who the staff addressed, else the address the
 * contact came in with, else the sender of its first mail (a contact from
 * before reply_to was kept). Never merely who wrote last.
 */
static const char *
outbox_recipient(json_t *item)
{
	json_t *msg = json_object_get(item, "message");
	json_t *to = json_array_get(json_object_get(msg, "recipients"), 0);

	if (json_is_string(to))
		return json_string_value(to);
	if (pg_jstr(item, "reply_to") != NULL)
		return pg_jstr(item, "reply_to");
	return pg_jstr(item, "requester");
}

/* An address as loket keeps a recipient: ASCII letters in lower case. NULL stays null. */
static json_t *
recipient_normal(const char *addr)
{
	char *low;
	json_t *v;

	if (addr == NULL || (low = strdup(addr)) == NULL)
		return json_null();
	for (char *s = low; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
	v = json_string(low);
	free(low);
	return v != NULL ? v : json_null();
}

/* Sets key on item to v; -1 when v is NULL (its query failed). */
static int
item_set(json_t *item, const char *key, json_t *v)
{
	if (v == NULL)
		return -1;
	return json_object_set_new(item, key, v);
}

/* What a sender needs besides the outbox row; -1 failed. */
static int
outbox_details(struct pg_conn *c, json_t *item, int64_t now)
{
	int64_t cid = json_integer_value(json_object_get(item, "contact_id"));
	json_t *row = json_object_get(item, "message_row"), *contact;
	int64_t sent;

	if (contact_load(c, cid, 0, &contact) < 0)
		return -1;
	/* A contact that is gone leaves the key out, as the SQLite driver does. */
	if (contact != NULL)
		json_object_set_new(item, "contact", contact);
	if (item_set(item, "message",
		json_is_integer(row) ? row_of(c, sql_message, json_integer_value(row), message_row) :
				       json_null()) < 0 ||
	    item_set(item, "last_in", row_of(c, sql_last_inbound, cid, message_row)) < 0 ||
	    item_set(item, "reply_to", row_of(c, sql_reply_to, cid, first_text)) < 0 ||
	    item_set(item, "requester", row_of(c, sql_requester, cid, first_text)) < 0 ||
	    item_set(item, "due_at", row_of(c, sql_task_due, cid, first_int)) < 0)
		return -1;
	json_object_set_new(item, "recipient", recipient_normal(outbox_recipient(item)));
	if ((sent = sent_automatically(c, pg_jstr(item, "recipient"), now)) < 0)
		return -1;
	json_object_set_new(item, "sent_today", json_integer(sent));
	return 0;
}

/*
 * Pending outbox rows due at in.now after in.after that no live claim holds,
 * claimed for this node for one lease (as op_timers_due), each with what a
 * sender needs to write the message: the contact, the message staff wrote (if any),
 * the last inbound message, the address the contact came in with, the open
 * task's deadline and how many automatic messages its recipient got in the
 * last day.
 */
static void
op_outbox_due(struct pg_conn *c, struct store_req *req)
{
	int own = 0;
	static const char sql[] = "WITH claimed AS (UPDATE outbox SET claimed_by = $4::text,"
				  " claim_until = " PG_TS(5) " WHERE id IN (SELECT id FROM outbox"
				  " WHERE status = 'pending' AND next_at <= " PG_TS(1)
				  " AND (claim_until IS NULL OR claim_until <= " PG_TS(1) ")"
				  " AND id > $2::bigint ORDER BY id LIMIT $3::bigint"
				  " FOR UPDATE SKIP LOCKED) RETURNING id, contact_id, channel,"
				  " template, rule, attempts, automatic, message_row, payload)"
				  " SELECT id, contact_id, channel, template, rule, attempts,"
				  " automatic, message_row, payload FROM claimed ORDER BY id";
	int64_t now = json_integer_value(json_object_get(req->in, "now"));
	struct pg_params p;
	json_t *items = NULL;
	PGresult *r;

	if (snapshot_begin(c, &own) < 0)
		goto fail;
	pg_params_init(&p);
	pg_p_int(&p, now);
	pg_p_int(&p, json_integer_value(json_object_get(req->in, "after")));
	pg_p_int(&p, json_integer_value(json_object_get(req->in, "limit")));
	pg_p_text(&p, pg_host->conf_get(pg_host, "node"));
	pg_p_int(&p, now + claim_lease_ms());
	r = pg_run(c, sql, &p);
	pg_params_clear(&p);
	if (r == NULL)
		goto fail;
	items = json_array();
	for (int i = 0; items != NULL && i < PQntuples(r); i++) {
		json_t *item = json_pack("{s:I, s:I, s:o, s:o, s:o, s:I, s:b}", "id",
		    (json_int_t)pg_int(r, i, 0), "contact_id", (json_int_t)pg_int(r, i, 1),
		    "channel", pg_col_text(r, i, 2), "template", pg_col_text(r, i, 3), "rule",
		    pg_col_text(r, i, 4), "attempts", (json_int_t)pg_int(r, i, 5), "automatic",
		    pg_str(r, i, 6) != NULL && pg_str(r, i, 6)[0] == 't');

		if (item == NULL)
			continue;
		json_object_set_new(item, "payload", pg_col_json(r, i, 8));
		if (!pg_isnull(r, i, 7))
			json_object_set_new(item, "message_row", json_integer(pg_int(r, i, 7)));
		json_array_append_new(items, item);
	}
	PQclear(r);
	for (size_t i = 0; i < json_array_size(items); i++)
		if (outbox_details(c, json_array_get(items, i), now) < 0)
			goto fail;
	snapshot_end(c, own);
	req->out = json_pack("{s:o}", "items", items);
	return;
fail:
	json_decref(items);
	read_fail(c, req);
	snapshot_end(c, own);
}

/*
 * What a citizen may know of one contact (the e-loket's status page), in one
 * snapshot: the contact by its reference with its tasks, its party's
 * addresses and the last staff reply that went out. The same answer as the
 * SQLite driver's sq_op_contact_status (its comments say why a staff reply
 * is told by its outbox row); whether the citizen may see it is the core's.
 */
static void
op_contact_status(struct pg_conn *c, struct store_req *req)
{
	static const char sql_id[] = "SELECT id, party_id FROM contacts WHERE reference = $1::text";
	static const char sql_reply[] = "SELECT m.body, " PG_MS("o.sent_at") ", m.recipients::text"
					" FROM messages m JOIN outbox o ON o.message_row = m.id"
					" WHERE m.contact_id = $1::bigint AND m.direction = 'out'"
					" AND m.status = 'sent' AND o.status = 'sent'"
					" AND NOT o.automatic ORDER BY o.sent_at DESC, m.id DESC"
					" LIMIT " STORE_STATUS_REPLIES_STR;
	const char *reference = pg_jstr(req->in, "reference");
	int own = 0;
	int64_t id, party_id = 0;
	struct pg_params p;
	json_t *out = NULL, *party = NULL, *reply;
	PGresult *r;

	if (snapshot_begin(c, &own) < 0) {
		read_fail(c, req);
		return;
	}
	pg_params_init(&p);
	pg_p_text(&p, reference != NULL ? reference : "");
	r = pg_run(c, sql_id, &p);
	pg_params_clear(&p);
	if (r == NULL)
		goto fail;
	if (PQntuples(r) == 0) {
		PQclear(r);
		pg_host->req_fail(req, STORE_NOT_FOUND, "no such contact");
		goto out;
	}
	id = pg_int(r, 0, 0);
	if (!pg_isnull(r, 0, 1))
		party_id = pg_int(r, 0, 1);
	PQclear(r);
	if (contact_load(c, id, 1, &out) != 0)
		goto fail;
	if (party_id != 0 && (party = party_load(c, party_id)) == NULL && c->fault != 0)
		goto fail;
	json_object_set_new(out, "emails",
	    party != NULL ? json_incref(json_object_get(party, "emails")) : json_array());
	json_object_set_new(out, "phones",
	    party != NULL ? json_incref(json_object_get(party, "phones")) : json_array());
	json_decref(party);
	pg_params_init(&p);
	pg_p_int(&p, id);
	r = pg_run(c, sql_reply, &p);
	pg_params_clear(&p);
	if (r == NULL)
		goto fail;
	reply = json_array();
	for (int i = 0; reply != NULL && i < PQntuples(r); i++) {
		json_t *to = pg_isnull(r, i, 2) ? NULL : json_loads(PQgetvalue(r, i, 2), 0, NULL);

		json_array_append_new(reply, json_pack("{s:o, s:o, s:o}", "body",
		    pg_col_text(r, i, 0), "sent_at", pg_col_int(r, i, 1), "recipients",
		    to != NULL ? to : json_array()));
	}
	PQclear(r);
	json_object_set_new(out, "replies", reply != NULL ? reply : json_array());
	req->out = out;
	goto out;
fail:
	json_decref(out);
	read_fail(c, req);
out:
	snapshot_end(c, own);
}

/* What pg_search.c reads with (pg.h). */
void
pg_read_fail(struct pg_conn *c, struct store_req *req)
{
	read_fail(c, req);
}

json_t *
pg_read_contact_row(const PGresult *r, int i)
{
	return contact_row(r, i);
}

json_t *
pg_read_party_load(struct pg_conn *c, int64_t id)
{
	return party_load(c, id);
}

/*
 * The audit trail, newest first, as the SQLite driver's sq_op_audit_list:
 * every filter is answered from an index of 4 -> 5; a party's rows by
 * object ("party:N", "party:N ...", "contact:ID" of each of its contacts).
 */
static void
op_audit_list(struct pg_conn *c, struct store_req *req)
{
	json_t *in = req->in, *items;
	json_int_t limit = json_integer_value(json_object_get(in, "limit"));
	json_int_t party = json_integer_value(json_object_get(in, "party"));
	json_int_t contact = json_integer_value(json_object_get(in, "contact"));
	char sql[1400], obj[48], cursor[32];
	struct pg_params p;
	size_t len;
	int64_t last = 0;
	int n, more = 0;
	PGresult *r;

	pg_params_init(&p);
	len = (size_t)snprintf(sql, sizeof(sql), "SELECT id, " PG_MS("at")
	    ", token, action, object FROM audit WHERE true");
#define AUDIT_SQL(...) len += (size_t)snprintf(sql + len, sizeof(sql) - len, __VA_ARGS__)
	if (json_is_string(json_object_get(in, "actor"))) {
		pg_p_jtext(&p, in, "actor");
		AUDIT_SQL(" AND token = $%d", p.n);
	}
	if (json_is_string(json_object_get(in, "action"))) {
		pg_p_jtext(&p, in, "action");
		AUDIT_SQL(" AND action = $%d", p.n);
	}
	if (contact > 0) {
		snprintf(obj, sizeof(obj), "contact:%lld", (long long)contact);
		pg_p_text(&p, obj);
		AUDIT_SQL(" AND object COLLATE \"C\" = $%d", p.n);
	}
	if (party > 0) {
		snprintf(obj, sizeof(obj), "party:%lld", (long long)party);
		pg_p_text(&p, obj);
		pg_p_int(&p, party);
		/* "party:N " up to "party:N!" is what follows N after a space, never party:N0. */
		AUDIT_SQL(" AND id IN (SELECT id FROM audit WHERE object COLLATE \"C\" = $%d"
			  " UNION ALL SELECT id FROM audit WHERE object COLLATE \"C\" > ($%d || ' ')"
			  " AND object COLLATE \"C\" < ($%d || '!')"
			  " UNION ALL SELECT a.id FROM contacts k JOIN audit a"
			  " ON a.object COLLATE \"C\" = 'contact:' || k.id WHERE k.party_id = $%d::bigint)",
		    p.n - 1, p.n - 1, p.n - 1, p.n);
	}
	if (json_is_integer(json_object_get(in, "from"))) {
		pg_p_jint(&p, in, "from");
		AUDIT_SQL(" AND at >= " PG_TS(%d), p.n);
	}
	if (json_is_integer(json_object_get(in, "to"))) {
		pg_p_jint(&p, in, "to");
		AUDIT_SQL(" AND at <= " PG_TS(%d), p.n);
	}
	if (json_is_integer(json_object_get(in, "cursor"))) {
		pg_p_jint(&p, in, "cursor");
		AUDIT_SQL(" AND id < $%d::bigint", p.n);
	}
	pg_p_int(&p, limit + 1);
	AUDIT_SQL(" ORDER BY id DESC LIMIT $%d::bigint", p.n);
#undef AUDIT_SQL
	if (len >= sizeof(sql)) {
		pg_params_clear(&p);
		pg_host->req_fail(req, STORE_FAILED, "the audit filter is too long");
		return;
	}
	if ((r = pg_q_once(c, sql, &p)) == NULL) {
		read_fail(c, req);
		return;
	}
	items = json_array();
	for (n = 0; items != NULL && n < PQntuples(r); n++) {
		if (n == limit) {
			more = 1;
			break;
		}
		json_array_append_new(items,
		    json_pack("{s:I, s:o, s:o, s:o, s:o}", "id", (json_int_t)pg_int(r, n, 0), "at",
			pg_col_int(r, n, 1), "actor", pg_col_text(r, n, 2), "action",
			pg_col_text(r, n, 3), "object", pg_col_text(r, n, 4)));
		last = pg_int(r, n, 0);
	}
	PQclear(r);
	snprintf(cursor, sizeof(cursor), "%lld", (long long)last);
	req->out = json_pack(
	    "{s:o, s:o}", "items", items, "next_cursor", more ? json_string(cursor) : json_null());
}

void
pg_read_run(struct pg_conn *c, struct store_req *req)
{
	static void (*const ops[STORE_OP_COUNT])(struct pg_conn *, struct store_req *) = {
		[STORE_CONTACT_GET] = op_contact_get,
		[STORE_CONTACT_LIST] = op_contact_list,
		[STORE_PARTY_GET] = op_party_get,
		[STORE_PARTY_FIND] = op_party_find,
		[STORE_PARTY_CONTACTS] = op_party_contacts,
		[STORE_TASK_LIST] = op_task_list,
		[STORE_TOKEN_LIST] = op_token_list,
		[STORE_COUNTS] = op_counts,
		[STORE_TIMERS_DUE] = op_timers_due,
		[STORE_TIMERS_NEXT] = op_timers_next,
		[STORE_MESSAGE_LIST] = op_message_list,
		[STORE_THREAD_FIND] = op_thread_find,
		[STORE_OUTBOX_DUE] = op_outbox_due,
		[STORE_OUTBOX_NEXT] = op_outbox_next,
		[STORE_EVENTS_AFTER] = op_events_after,
		[STORE_TASK_GET] = op_task_get,
		[STORE_PARTY_DUPLICATES] = op_party_duplicates,
		[STORE_USER_LIST] = pg_users_read,
		[STORE_SIGNIN_GET] = pg_users_read,
		[STORE_SESSION_GET] = pg_users_read,
		[STORE_SEARCH] = pg_op_search,
		[STORE_CONTACT_STATUS] = op_contact_status,
		[STORE_AUDIT_LIST] = op_audit_list,
	};

	if ((unsigned int)req->op >= STORE_OP_COUNT || ops[req->op] == NULL) {
		pg_host->req_fail(req, STORE_FAILED, "unknown storage request");
		return;
	}
	ops[req->op](c, req);
	if (req->result == STORE_OK && req->out == NULL)
		pg_host->req_fail(req, STORE_FAILED, "out of memory");
}

/* ---- replay (loketctl rules replay) ---- */

int
pg_replay(const struct loket_store_host *host, int64_t since_ms,
    int (*cb)(json_t *contact, void *arg), void *arg, const char **error_r)
{
	/* Keyset pages in one snapshot: a large register never sits in memory at once. */
	static const char sql[] = "SELECT " CONTACT_COLS
				  "FROM contacts c LEFT JOIN parties p ON p.id = c.party_id"
				  " WHERE c.received_at >= " PG_TS(1) " AND c.id > $2::bigint"
				  " ORDER BY c.id LIMIT 500";
	struct pg_conn c;
	struct pg_params p;
	int64_t last = 0;
	int rc = -1, stop = 0;
	PGresult *r;

	if (pg_host == NULL)
		pg_host = host;
	if (pg_connect(&c, host->conf_get(host, "conninfo"), "replay", error_r) < 0)
		return -1;
	/* Read-only by the server's word, beside a running daemon that writes. */
	if (pg_exec(&c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") < 0) {
		*error_r = "cannot read the register (the cause is in the log)";
		goto out;
	}
	while (!stop) {
		int n;

		pg_params_init(&p);
		pg_p_int(&p, since_ms);
		pg_p_int(&p, last);
		r = pg_run(&c, sql, &p);
		pg_params_clear(&p);
		if (r == NULL) {
			*error_r = "cannot read the register's contacts (the cause is in the log)";
			goto out;
		}
		n = PQntuples(r);
		for (int i = 0; i < n && !stop; i++) {
			json_t *contact = contact_row(r, i);

			stop = contact == NULL || cb(contact, arg) < 0;
			json_decref(contact);
			last = pg_int(r, i, 0);
		}
		PQclear(r);
		if (n < 500)
			break;
	}
	rc = 0;
out:
	pg_exec(&c, "ROLLBACK");
	pg_disconnect(&c);
	return rc;
}
