/*
 * pg_copy.c: the PostgreSQL register read out whole and filled whole, in the
 * driver-neutral row shape of a register copy (loketctl migrate; the row
 * shape is in docs/migrate.md, the entries in loket/store.h).
 *
 * A dump reads every table in one REPEATABLE READ snapshot through a cursor,
 * so a large register never sits in memory at once. A load runs in one
 * transaction on a connection of its own: the schema is migrated first, the
 * copied tables are locked against any loketd and must be empty, rows go in
 * with COPY (identity values as given, events' ids too), and the caller
 * verifies the copy through dump on the same transaction before load_end
 * commits it.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg.h"

/* How many rows a cursor hands over at once; blobs are big, so fewer of them. */
#define PG_COPY_FETCH "FETCH 500 FROM loket_copy"
#define PG_COPY_FETCH_BLOBS "FETCH 8 FROM loket_copy"

/*
 * One copied table. declare: a cursor over the table in the neutral shape
 * and in key order (text keys bytewise, as SQLite orders them); copy: the
 * COPY that loads it, whose columns are cols, in order; types: a letter per
 * column, i integer, t text, m ms since the epoch (timestamptz), j JSON
 * (jsonb), b boolean, x bytes (bytea; base64 in the row).
 */
struct pg_copy_table {
	const char *name;
	const char *count_sql;
	const char *declare;
	const char *copy;
	const char *const *cols;
	const char *types;
};

static const char *const pg_cols_parties[] = { "id", "kind", "name", "rrn", "bsn",
	"preferred_channel", "confidential", "created_at", "merged_into", NULL };
static const char *const pg_cols_party_emails[] = { "email", "party_id", NULL };
static const char *const pg_cols_party_phones[] = { "phone", "party_id", NULL };
static const char *const pg_cols_contacts[] = { "id", "reference", "channel", "direction",
	"received_at", "handled_at", "updated_at", "party_id", "subject", "body", "answer",
	"product", "department", "organisation", "line", "status", "priority", "tags", "language",
	"confidential", "location", "meta", "created_by", "assignee", "reply_to", "party_conflict",
	NULL };
static const char *const pg_cols_contact_keys[] = { "key", "contact_id", NULL };
static const char *const pg_cols_tasks[] = { "id", "contact_id", "department", "assignee",
	"reason", "due_at", "status", "created_at", "created_by", "done_at", "done_by", NULL };
static const char *const pg_cols_history[] = { "id", "contact_id", "at", "actor", "action",
	"from_status", "to_status", "detail", NULL };
static const char *const pg_cols_messages[] = { "id", "contact_id", "direction", "channel", "at",
	"actor", "sender", "recipients", "subject", "body", "message_id", "automatic",
	"attachments", "meta", "status", NULL };
static const char *const pg_cols_timers[] = { "id", "contact_id", "task_id", "kind", "due_at",
	"payload", "rule", "status", "created_at", "done_at", NULL };
static const char *const pg_cols_outbox[] = { "id", "contact_id", "channel", "template", "rule",
	"status", "attempts", "next_at", "created_at", "sent_at", "error", "message_row",
	"recipient", "automatic", "payload", NULL };
static const char *const pg_cols_audit[] = { "id", "at", "token", "action", "object", NULL };
static const char *const pg_cols_tokens[] = { "name", "hash", "role", "departments",
	"organisation", "created_at", "revoked_at", NULL };
static const char *const pg_cols_events[] = { "id", "at", "kind", "contact_id", "task_id",
	"payload", NULL };
static const char *const pg_cols_counts[] = { "channel", "status", "n", NULL };
static const char *const pg_cols_refseq[] = { "year", "last", NULL };
static const char *const pg_cols_blobs[] = { "sha256", "data", NULL };
static const char *const pg_cols_users[] = { "name", "hash", "role", "departments",
	"organisation", "extension", "disabled", "created_at", "changed_at", NULL };

#define DECLARE "DECLARE loket_copy NO SCROLL CURSOR FOR SELECT "

/* The reference counters are sequences (pg_write.c): refseq_YYYY, read where they stand. */
#define PG_REFSEQ_WHERE                                                                   \
	" FROM pg_sequences WHERE schemaname = current_schema()"                          \
	" AND sequencename ~ '^refseq_[0-9]{4}$' AND last_value IS NOT NULL"

/* clang-format off: one SQL string per line reads better than the formatter's columns */
static const struct pg_copy_table pg_copy_tables[] = {
	{ "parties", "SELECT count(*) FROM parties",
	    DECLARE "id, kind, name, rrn, bsn, preferred_channel, confidential,"
	    " " PG_MS("created_at") " AS created_at, merged_into FROM parties ORDER BY id",
	    "COPY parties (id, kind, name, rrn, bsn, preferred_channel, confidential, created_at,"
	    " merged_into) FROM STDIN",
	    pg_cols_parties, "itttttbmi" },
	{ "party_emails", "SELECT count(*) FROM party_emails",
	    DECLARE "email, party_id FROM party_emails ORDER BY email COLLATE \"C\"",
	    "COPY party_emails (email, party_id) FROM STDIN", pg_cols_party_emails, "ti" },
	{ "party_phones", "SELECT count(*) FROM party_phones",
	    DECLARE "phone, party_id FROM party_phones ORDER BY phone COLLATE \"C\"",
	    "COPY party_phones (phone, party_id) FROM STDIN", pg_cols_party_phones, "ti" },
	{ "contacts", "SELECT count(*) FROM contacts",
	    DECLARE "id, reference, channel, direction,"
	    " " PG_MS("received_at") " AS received_at,"
	    " " PG_MS("handled_at") " AS handled_at,"
	    " " PG_MS("updated_at") " AS updated_at,"
	    " party_id, subject, body, answer, product, department, organisation, line, status,"
	    " priority, tags, language, confidential, location, meta, created_by, assignee,"
	    " reply_to, party_conflict FROM contacts ORDER BY id",
	    "COPY contacts (id, reference, channel, direction, received_at, handled_at, updated_at,"
	    " party_id, subject, body, answer, product, department, organisation, line, status,"
	    " priority, tags, language, confidential, location, meta, created_by, assignee,"
	    " reply_to, party_conflict) FROM STDIN",
	    pg_cols_contacts, "itttmmmittttttittjtbtjtttj" },
	{ "contact_keys", "SELECT count(*) FROM contact_keys",
	    DECLARE "key, contact_id FROM contact_keys ORDER BY key COLLATE \"C\"",
	    "COPY contact_keys (key, contact_id) FROM STDIN", pg_cols_contact_keys, "ti" },
	{ "tasks", "SELECT count(*) FROM tasks",
	    DECLARE "id, contact_id, department, assignee, reason,"
	    " " PG_MS("due_at") " AS due_at, status,"
	    " " PG_MS("created_at") " AS created_at, created_by,"
	    " " PG_MS("done_at") " AS done_at, done_by FROM tasks ORDER BY id",
	    "COPY tasks (id, contact_id, department, assignee, reason, due_at, status, created_at,"
	    " created_by, done_at, done_by) FROM STDIN",
	    pg_cols_tasks, "iitttmtmtmt" },
	{ "contact_history", "SELECT count(*) FROM contact_history",
	    DECLARE "id, contact_id, " PG_MS("at") " AS at, actor, action, from_status, to_status,"
	    " detail FROM contact_history ORDER BY id",
	    "COPY contact_history (id, contact_id, at, actor, action, from_status, to_status,"
	    " detail) FROM STDIN",
	    pg_cols_history, "iimttttt" },
	{ "messages", "SELECT count(*) FROM messages",
	    DECLARE "id, contact_id, direction, channel, " PG_MS("at") " AS at, actor, sender,"
	    " recipients, subject, body, message_id, automatic, attachments, meta, status"
	    " FROM messages ORDER BY id",
	    "COPY messages (id, contact_id, direction, channel, at, actor, sender, recipients,"
	    " subject, body, message_id, automatic, attachments, meta, status) FROM STDIN",
	    pg_cols_messages, "iittmttjttttjjt" },
	{ "timers", "SELECT count(*) FROM timers",
	    DECLARE "id, contact_id, task_id, kind, " PG_MS("due_at") " AS due_at, payload, rule,"
	    " status, " PG_MS("created_at") " AS created_at,"
	    " " PG_MS("done_at") " AS done_at FROM timers ORDER BY id",
	    "COPY timers (id, contact_id, task_id, kind, due_at, payload, rule, status, created_at,"
	    " done_at) FROM STDIN",
	    pg_cols_timers, "iiitmjttmm" },
	{ "outbox", "SELECT count(*) FROM outbox",
	    DECLARE "id, contact_id, channel, template, rule, status, attempts,"
	    " " PG_MS("next_at") " AS next_at,"
	    " " PG_MS("created_at") " AS created_at,"
	    " " PG_MS("sent_at") " AS sent_at,"
	    " error, message_row, recipient, automatic, payload FROM outbox ORDER BY id",
	    "COPY outbox (id, contact_id, channel, template, rule, status, attempts, next_at,"
	    " created_at, sent_at, error, message_row, recipient, automatic, payload) FROM STDIN",
	    pg_cols_outbox, "iittttimmmtitbj" },
	{ "audit", "SELECT count(*) FROM audit",
	    DECLARE "id, " PG_MS("at") " AS at, token, action, object FROM audit ORDER BY id",
	    "COPY audit (id, at, token, action, object) FROM STDIN", pg_cols_audit, "imttt" },
	{ "tokens", "SELECT count(*) FROM tokens",
	    DECLARE "name, hash, role, departments, organisation,"
	    " " PG_MS("created_at") " AS created_at,"
	    " " PG_MS("revoked_at") " AS revoked_at FROM tokens ORDER BY name COLLATE \"C\"",
	    "COPY tokens (name, hash, role, departments, organisation, created_at, revoked_at)"
	    " FROM STDIN",
	    pg_cols_tokens, "tttjtmm" },
	{ "events", "SELECT count(*) FROM events",
	    DECLARE "id, " PG_MS("at") " AS at, kind, contact_id, task_id, payload FROM events"
	    " ORDER BY id",
	    "COPY events (id, at, kind, contact_id, task_id, payload) FROM STDIN",
	    pg_cols_events, "imtiij" },
	{ "counts", "SELECT count(*) FROM counts",
	    DECLARE "channel, status, n FROM counts"
	    " ORDER BY channel COLLATE \"C\", status COLLATE \"C\"",
	    "COPY counts (channel, status, n) FROM STDIN", pg_cols_counts, "tti" },
	{ "refseq", "SELECT count(*)" PG_REFSEQ_WHERE,
	    DECLARE "substr(sequencename, 8)::bigint AS year, last_value AS last" PG_REFSEQ_WHERE
	    " ORDER BY 1",
	    NULL, pg_cols_refseq, "ii" },
	{ "blobs", "SELECT count(*) FROM blobs",
	    DECLARE "sha256, data FROM blobs ORDER BY sha256 COLLATE \"C\"",
	    "COPY blobs (sha256, data) FROM STDIN", pg_cols_blobs, "tx" },
	{ "users", "SELECT count(*) FROM users",
	    DECLARE "name, hash, role, departments, organisation, extension, disabled,"
	    " " PG_MS("created_at") " AS created_at,"
	    " " PG_MS("changed_at") " AS changed_at FROM users ORDER BY name COLLATE \"C\"",
	    "COPY users (name, hash, role, departments, organisation, extension, disabled,"
	    " created_at, changed_at) FROM STDIN",
	    pg_cols_users, "tttjttbmm" },
};
/* clang-format on */
#define PG_COPY_NTABLES (sizeof(pg_copy_tables) / sizeof(pg_copy_tables[0]))

/* Every copied table locked against writers, and which of them hold rows. */
static const char pg_copy_lock[]
    = "LOCK TABLE parties, party_emails, party_phones, contacts, contact_keys, tasks,"
      " contact_history, messages, timers, outbox, audit, tokens, events, counts, blobs,"
      " users IN ACCESS EXCLUSIVE MODE";
static const char pg_copy_nonempty[]
    = "SELECT t FROM (VALUES"
      " ('parties', EXISTS (SELECT 1 FROM parties)),"
      " ('party_emails', EXISTS (SELECT 1 FROM party_emails)),"
      " ('party_phones', EXISTS (SELECT 1 FROM party_phones)),"
      " ('contacts', EXISTS (SELECT 1 FROM contacts)),"
      " ('contact_keys', EXISTS (SELECT 1 FROM contact_keys)),"
      " ('tasks', EXISTS (SELECT 1 FROM tasks)),"
      " ('contact_history', EXISTS (SELECT 1 FROM contact_history)),"
      " ('messages', EXISTS (SELECT 1 FROM messages)),"
      " ('timers', EXISTS (SELECT 1 FROM timers)),"
      " ('outbox', EXISTS (SELECT 1 FROM outbox)),"
      " ('audit', EXISTS (SELECT 1 FROM audit)),"
      " ('tokens', EXISTS (SELECT 1 FROM tokens)),"
      " ('events', EXISTS (SELECT 1 FROM events)),"
      " ('counts', EXISTS (SELECT 1 FROM counts)),"
      " ('blobs', EXISTS (SELECT 1 FROM blobs)),"
      " ('users', EXISTS (SELECT 1 FROM users))) v(t, rows) WHERE rows";
/* Identities past the copied ids: a new row never takes a copied row's id. */
static const char pg_copy_identities[]
    = "SELECT setval(pg_get_serial_sequence(t, 'id'), m) FROM (VALUES"
      " ('parties', (SELECT max(id) FROM parties)),"
      " ('contacts', (SELECT max(id) FROM contacts)),"
      " ('tasks', (SELECT max(id) FROM tasks)),"
      " ('contact_history', (SELECT max(id) FROM contact_history)),"
      " ('messages', (SELECT max(id) FROM messages)),"
      " ('timers', (SELECT max(id) FROM timers)),"
      " ('outbox', (SELECT max(id) FROM outbox)),"
      " ('audit', (SELECT max(id) FROM audit)),"
      " ('events', (SELECT max(id) FROM events))) v(t, m) WHERE m IS NOT NULL";
/* The highest reference number of every year ("2026-000123"). */
static const char pg_copy_ref_max[]
    = "SELECT substr(reference, 1, 4)::integer, max(substr(reference, 6)::bigint)"
      " FROM contacts WHERE reference ~ '^[0-9]{4}-[0-9]{1,18}$' GROUP BY 1 ORDER BY 1";
/* A year's counter set to at least $2 ($1: its sequence, which exists). */
static const char pg_copy_ref_raise[]
    = "SELECT setval(to_regclass($1), $2::bigint) WHERE $2::bigint > coalesce("
      "(SELECT last_value FROM pg_sequences WHERE schemaname = current_schema()"
      " AND sequencename = $1), 0)";

struct pg_copy_load {
	struct pg_conn c;
	int failed; /* a statement failed: the transaction is lost, only rollback remains */
};

static const struct pg_copy_table *
pg_copy_table_find(const char *name)
{
	for (size_t i = 0; i < PG_COPY_NTABLES; i++)
		if (strcmp(pg_copy_tables[i].name, name) == 0)
			return &pg_copy_tables[i];
	return NULL;
}

/* A column of a fetched row in the neutral shape; NULL without memory. */
static json_t *
pg_copy_value(const PGresult *r, int row, int col, char type)
{
	const char *v = PQgetvalue(r, row, col);

	if (PQgetisnull(r, row, col))
		return json_null();
	switch (type) {
	case 'i':
	case 'm':
		return json_integer((json_int_t)strtoll(v, NULL, 10));
	case 'b':
		return json_boolean(v[0] == 't');
	case 'j':
		return json_loads(v, JSON_DECODE_ANY, NULL);
	case 'x': {
		size_t len = 0, b64len;
		unsigned char *bytes = PQunescapeBytea((const unsigned char *)v, &len);
		json_t *out = NULL;
		char *b64;

		if (bytes == NULL)
			return NULL;
		b64len = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
		if ((b64 = malloc(b64len)) != NULL) {
			sodium_bin2base64(b64, b64len, bytes, len, sodium_base64_VARIANT_ORIGINAL);
			out = json_string(b64);
			free(b64);
		}
		PQfreemem(bytes);
		return out;
	}
	default:
		return json_string(v);
	}
}

static int
pg_copy_table_dump(struct pg_conn *c, const struct pg_copy_table *t,
    int (*cb)(const char *table, int64_t total, json_t *row, void *arg), void *arg,
    const char **error_r)
{
	const char *fetch = t->types[1] == 'x' ? PG_COPY_FETCH_BLOBS : PG_COPY_FETCH;
	size_t ncols = strlen(t->types);
	PGresult *r;
	int rc = -1, n;

	if ((r = pg_run(c, t->count_sql, NULL)) == NULL)
		goto sql_fail;
	n = cb(t->name, pg_int(r, 0, 0), NULL, arg);
	PQclear(r);
	if (n < 0) {
		*error_r = "the copy stopped while reading the register";
		return -1;
	}
	if (pg_exec(c, t->declare) < 0)
		goto sql_fail;
	do {
		r = PQexec(c->conn, fetch);
		if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
			pg_logf("copy: reading table %s failed: %.300s", t->name,
			    PQerrorMessage(c->conn));
			PQclear(r);
			goto sql_fail;
		}
		if ((size_t)PQnfields(r) != ncols) {
			PQclear(r);
			*error_r = "the copy's column list is wrong";
			return -1;
		}
		n = PQntuples(r);
		for (int i = 0; i < n; i++) {
			json_t *row = json_object(), *v;
			int stop = row == NULL;

			for (size_t k = 0; k < ncols && !stop; k++)
				stop = (v = pg_copy_value(r, i, (int)k, t->types[k])) == NULL
				    || json_object_set_new(row, PQfname(r, (int)k), v) < 0;
			if (!stop)
				stop = cb(t->name, -1, row, arg) < 0;
			json_decref(row);
			if (stop) {
				PQclear(r);
				*error_r = "the copy stopped while reading the register";
				return -1;
			}
		}
		PQclear(r);
	} while (n > 0);
	if (pg_exec(c, "CLOSE loket_copy") < 0)
		goto sql_fail;
	rc = 0;
	return rc;
sql_fail:
	*error_r = "cannot read the register for the copy (the cause is in the log)";
	return -1;
}

/*
 * Connects for a copy. The conninfo comes from a command line here: one
 * libpq cannot parse is refused with a fixed sentence, since libpq's own
 * would quote a piece of it, which may be the password.
 */
static int
pg_copy_connect(struct pg_conn *c, const struct loket_store_host *host, const char **error_r)
{
	const char *conninfo = host->conf_get(host, "conninfo");
	char *why = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &why);

	if (opts == NULL) {
		PQfreemem(why);
		*error_r = "the PostgreSQL conninfo is not valid: write keyword=value pairs "
		           "(host=... dbname=... user=...) or a postgresql:// URI";
		return -1;
	}
	PQconninfoFree(opts);
	return pg_connect(c, conninfo, "copy", error_r);
}

int
pg_dump(const struct loket_store_host *host, void *load,
    int (*cb)(const char *table, int64_t total, json_t *row, void *arg), void *arg,
    const char **error_r)
{
	struct pg_copy_load *l = load;
	struct pg_conn own, *c = &own;
	PGresult *r;
	int rc = -1, version;

	if (pg_host == NULL)
		pg_host = host;
	if (l != NULL) {
		if (l->failed) {
			*error_r = "the copy failed before it could be verified";
			return -1;
		}
		c = &l->c;
	} else {
		if (pg_copy_connect(&own, host, error_r) < 0)
			return -1;
		if (pg_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") < 0) {
			*error_r = "cannot read the register (the cause is in the log)";
			goto out;
		}
		r = PQexec(c->conn, "SELECT max(version) FROM loket_schema");
		version = r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK && !PQgetisnull(r, 0, 0)
		    ? atoi(PQgetvalue(r, 0, 0))
		    : 0;
		PQclear(r);
		if (version != pg_schema_version) {
			*error_r = version == 0
			    ? "the database holds no loket register (no schema version)"
			    : "the register's schema version is not the one this driver copies: "
			      "start loketd on it once, or use the loketctl of the loketd that wrote it";
			goto out;
		}
	}
	for (size_t i = 0; i < PG_COPY_NTABLES; i++)
		if (pg_copy_table_dump(c, &pg_copy_tables[i], cb, arg, error_r) < 0) {
			if (l != NULL)
				l->failed = 1;
			goto out;
		}
	rc = 0;
out:
	if (l == NULL) {
		pg_exec(c, "ROLLBACK");
		pg_disconnect(c);
	}
	return rc;
}

/* A growing buffer for COPY's text format. */
struct pg_copy_buf {
	char *p;
	size_t len, cap;
	int oom;
};

static void
pg_copy_put(struct pg_copy_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap * 2 + n + 4096;
		char *grown = realloc(b->p, cap);

		if (grown == NULL) {
			b->oom = 1;
			return;
		}
		b->p = grown;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* Text as COPY reads it: backslash, tab, newline and carriage return escaped. */
static void
pg_copy_put_text(struct pg_copy_buf *b, const char *s, size_t n)
{
	size_t from = 0;

	for (size_t i = 0; i < n; i++) {
		const char *esc = s[i] == '\\' ? "\\\\" :
		    s[i] == '\t'                 ? "\\t" :
		    s[i] == '\n'                 ? "\\n" :
		    s[i] == '\r'                 ? "\\r" :
		                                   NULL;

		if (esc == NULL)
			continue;
		pg_copy_put(b, s + from, i - from);
		pg_copy_put(b, esc, 2);
		from = i + 1;
	}
	pg_copy_put(b, s + from, n - from);
}

/* ms since the epoch as a timestamptz literal in UTC, exact to the millisecond. */
static int
pg_copy_put_time(struct pg_copy_buf *b, int64_t ms)
{
	int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
	time_t t = (time_t)secs;
	char buf[64];
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 1 || tm.tm_year + 1900 > 9999)
		return -1;
	snprintf(buf, sizeof(buf), "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms - secs * 1000));
	pg_copy_put(b, buf, strlen(buf));
	return 0;
}

/*
 * A blob's bytes (base64 in the row) as bytea's hex form, after checking
 * they are the bytes its name says: a copy never stores a blob under a
 * wrong name.
 */
static int
pg_copy_put_blob(struct pg_copy_buf *b, const char *sha256, const char *b64,
    const char **error_r)
{
	static const char hex[] = "0123456789abcdef";
	size_t cap = strlen(b64), len = 0;
	unsigned char h[crypto_hash_sha256_BYTES];
	char name[65];
	unsigned char *bytes = malloc(cap + 1);

	if (bytes == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	if (sodium_base642bin(bytes, cap + 1, b64, cap, NULL, &len, NULL,
	        sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(bytes);
		*error_r = "a blob's data is not base64";
		return -1;
	}
	crypto_hash_sha256(h, bytes, len);
	sodium_bin2hex(name, sizeof(name), h, sizeof(h));
	if (strcmp(name, sha256) != 0) {
		free(bytes);
		*error_r = "a blob's bytes do not match its SHA-256 name: the source's "
		           "attachments folder holds a damaged file";
		return -1;
	}
	pg_copy_put(b, "\\\\x", 3);
	for (size_t i = 0; i < len; i++) {
		char pair[2] = { hex[bytes[i] >> 4], hex[bytes[i] & 0xf] };

		pg_copy_put(b, pair, 2);
	}
	free(bytes);
	return 0;
}

/* One row as a line of COPY text; -1 with *error_r when a value does not fit its column. */
static int
pg_copy_put_row(struct pg_copy_buf *b, const struct pg_copy_table *t, json_t *row,
    const char **error_r)
{
	for (size_t k = 0; t->cols[k] != NULL; k++) {
		json_t *v = json_object_get(row, t->cols[k]);
		char num[32];

		if (k > 0)
			pg_copy_put(b, "\t", 1);
		if (v == NULL || json_is_null(v)) {
			pg_copy_put(b, "\\N", 2);
			continue;
		}
		switch (t->types[k]) {
		case 'i':
			if (!json_is_integer(v))
				goto bad;
			snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
			pg_copy_put(b, num, strlen(num));
			break;
		case 'm':
			if (!json_is_integer(v) || pg_copy_put_time(b, json_integer_value(v)) < 0)
				goto bad;
			break;
		case 'b':
			if (!json_is_boolean(v))
				goto bad;
			pg_copy_put(b, json_is_true(v) ? "t" : "f", 1);
			break;
		case 'j': {
			char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

			if (text == NULL)
				goto bad;
			pg_copy_put_text(b, text, strlen(text));
			free(text);
			break;
		}
		case 'x':
			if (!json_is_string(v)
			    || pg_copy_put_blob(b, pg_jstr(row, "sha256") != NULL ?
			               pg_jstr(row, "sha256") : "",
			           json_string_value(v), error_r)
			        < 0)
				goto bad_set;
			break;
		default:
			if (!json_is_string(v))
				goto bad;
			pg_copy_put_text(b, json_string_value(v), json_string_length(v));
			break;
		}
	}
	pg_copy_put(b, "\n", 1);
	return 0;
bad:
	*error_r = "a row's value does not fit its column's type";
bad_set:
	return -1;
}

/* A year's reference counter (refseq_YYYY, as pg_write.c names it) set to last. */
static int
pg_copy_refseq(struct pg_conn *c, json_t *row, int raise_only, const char **error_r)
{
	static const char sql_set[] = "SELECT setval(to_regclass($1), $2::bigint)";
	json_t *year = json_object_get(row, "year"), *last = json_object_get(row, "last");
	struct pg_params p;
	char name[32], ddl[96];
	PGresult *r;

	if (!json_is_integer(year) || !json_is_integer(last) || json_integer_value(year) < 1000
	    || json_integer_value(year) > 9999 || json_integer_value(last) < 1) {
		*error_r = "a reference counter row is not a year with a positive count";
		return -1;
	}
	/* An identifier cannot be a parameter; it is built from a checked 4-digit year only. */
	snprintf(name, sizeof(name), "refseq_%04d", (int)json_integer_value(year));
	snprintf(ddl, sizeof(ddl), "CREATE SEQUENCE IF NOT EXISTS %s", name);
	if (pg_exec(c, ddl) < 0)
		goto fail;
	pg_params_init(&p);
	pg_p_text(&p, name);
	pg_p_int(&p, json_integer_value(last));
	r = pg_run(c, raise_only ? pg_copy_ref_raise : sql_set, &p);
	pg_params_clear(&p);
	if (r == NULL)
		goto fail;
	PQclear(r);
	return 0;
fail:
	*error_r = "cannot set a reference counter (the cause is in the log)";
	return -1;
}

int
pg_load_begin(const struct loket_store_host *host, void **load_r, const char **error_r)
{
	struct pg_copy_load *l = calloc(1, sizeof(*l));
	static char err[512];
	PGresult *r = NULL;
	size_t off;

	if (pg_host == NULL)
		pg_host = host;
	if (l == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	if (pg_copy_connect(&l->c, host, error_r) < 0) {
		free(l);
		return -1;
	}
	if (pg_migrate(&l->c, error_r) < 0)
		goto fail;
	if (pg_exec(&l->c, "BEGIN") < 0 || pg_exec(&l->c, pg_copy_lock) < 0
	    || (r = pg_run(&l->c, pg_copy_nonempty, NULL)) == NULL) {
		*error_r = "cannot lock the target register's tables (the cause is in the log)";
		goto fail;
	}
	if (PQntuples(r) > 0) {
		off = (size_t)snprintf(err, sizeof(err), "the target register is not empty (");
		for (int i = 0; i < PQntuples(r) && off < sizeof(err); i++)
			off += (size_t)snprintf(err + off, sizeof(err) - off, "%s%s", i > 0 ? ", " : "",
			    PQgetvalue(r, i, 0));
		if (off < sizeof(err))
			snprintf(err + off, sizeof(err) - off,
			    " hold rows): a copy goes only into an empty register, nothing was "
			    "written");
		*error_r = err;
		goto fail;
	}
	PQclear(r);
	*load_r = l;
	return 0;
fail:
	PQclear(r);
	pg_exec(&l->c, "ROLLBACK");
	pg_disconnect(&l->c);
	free(l);
	return -1;
}

int
pg_load_rows(void *load, const char *table, json_t *rows, const char **error_r)
{
	struct pg_copy_load *l = load;
	const struct pg_copy_table *t = pg_copy_table_find(table);
	struct pg_copy_buf b = { 0 };
	PGresult *r;
	json_t *row;
	size_t i;
	int rc = -1;

	if (l->failed) {
		*error_r = "the copy failed already";
		return -1;
	}
	if (t == NULL) {
		*error_r = "no such table in a register copy";
		return -1;
	}
	if (t->copy == NULL) {
		json_array_foreach(rows, i, row)
			if (pg_copy_refseq(&l->c, row, 0, error_r) < 0)
				goto out;
		return 0;
	}
	json_array_foreach(rows, i, row)
		if (pg_copy_put_row(&b, t, row, error_r) < 0)
			goto out;
	if (b.oom) {
		*error_r = "out of memory";
		goto out;
	}
	r = PQexec(l->c.conn, t->copy);
	if (r == NULL || PQresultStatus(r) != PGRES_COPY_IN) {
		pg_logf("copy: COPY %s did not start: %.300s", t->name, PQerrorMessage(l->c.conn));
		PQclear(r);
		*error_r = "PostgreSQL refused the copy (the cause is in the log)";
		goto out;
	}
	PQclear(r);
	if (PQputCopyData(l->c.conn, b.p != NULL ? b.p : "", (int)b.len) != 1
	    || PQputCopyEnd(l->c.conn, NULL) != 1) {
		pg_logf("copy: sending rows of %s failed: %.300s", t->name, PQerrorMessage(l->c.conn));
		*error_r = "the connection to PostgreSQL failed during the copy";
		goto out;
	}
	rc = 0;
	while ((r = PQgetResult(l->c.conn)) != NULL) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);

			/* The primary message names a constraint, never a value (those are in DETAIL). */
			pg_logf("copy: rows of %s refused: %.300s", t->name, msg != NULL ? msg : "?");
			*error_r = "PostgreSQL refused rows of the copy (the cause is in the log)";
			rc = -1;
		}
		PQclear(r);
	}
out:
	if (rc < 0)
		l->failed = 1;
	free(b.p);
	return rc;
}

int
pg_load_end(void *load, int commit, const char **error_r)
{
	struct pg_copy_load *l = load;
	PGresult *r = NULL;
	int rc = -1;

	if (!commit || l->failed) {
		pg_exec(&l->c, "ROLLBACK");
		rc = commit ? -1 : 0;
		if (commit)
			*error_r = "the copy failed: nothing was written";
		goto out;
	}
	if ((r = pg_run(&l->c, pg_copy_identities, NULL)) == NULL)
		goto fail;
	PQclear(r);
	if ((r = pg_run(&l->c, pg_copy_ref_max, NULL)) == NULL)
		goto fail;
	for (int i = 0; i < PQntuples(r); i++) {
		json_t *row = json_pack("{s:I, s:I}", "year", (json_int_t)pg_int(r, i, 0), "last",
		    (json_int_t)pg_int(r, i, 1));

		if (row == NULL || pg_copy_refseq(&l->c, row, 1, error_r) < 0) {
			json_decref(row);
			PQclear(r);
			pg_exec(&l->c, "ROLLBACK");
			goto out;
		}
		json_decref(row);
	}
	PQclear(r);
	if (pg_exec(&l->c, "COMMIT") < 0)
		goto fail;
	rc = 0;
	goto out;
fail:
	pg_exec(&l->c, "ROLLBACK");
	*error_r = "cannot finish the copy (the cause is in the log); nothing was written";
out:
	pg_disconnect(&l->c);
	free(l);
	return rc;
}
