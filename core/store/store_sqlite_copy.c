/*
 * store_sqlite_copy.c: the SQLite register read out whole, in the
 * driver-neutral row shape of a register copy (loketctl migrate).
 *
 * Read-only and in one read transaction, so every table comes from the same
 * snapshot even beside a live loketd (WAL). Blobs are the files under
 * data_dir/attachments, in name order.
 */
#include "config.h"

#include <dirent.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "store_sqlite.h"
#include "util.h"

/*
 * One copied table: its query, in key order, and a letter per column saying
 * how its value travels: i integer, t text, m ms since the epoch, j JSON
 * kept as text, b boolean kept as 0/1. The column names are the neutral
 * shape's (docs/migrate.md).
 */
struct sq_copy_table {
	const char *name;
	const char *count_sql;
	const char *sql;
	const char *types;
};

static const struct sq_copy_table sq_copy_tables[] = {
	{ "parties", "SELECT count(*) FROM parties",
	    "SELECT id, kind, name, rrn, bsn, preferred_channel, confidential, created_at,"
	    " merged_into FROM parties ORDER BY id",
	    "itttttbmi" },
	{ "party_emails", "SELECT count(*) FROM party_emails",
	    "SELECT email, party_id FROM party_emails ORDER BY email", "ti" },
	{ "party_phones", "SELECT count(*) FROM party_phones",
	    "SELECT phone, party_id FROM party_phones ORDER BY phone", "ti" },
	{ "contacts", "SELECT count(*) FROM contacts",
	    "SELECT id, reference, channel, direction, received_at, handled_at, updated_at,"
	    " party_id, subject, body, answer, product, department, organisation, line, status,"
	    " priority, tags, language, confidential, location, meta, created_by, assignee,"
	    " reply_to, party_conflict FROM contacts ORDER BY id",
	    "itttmmmittttttittjtbtjtttj" },
	{ "contact_keys", "SELECT count(*) FROM contact_keys",
	    "SELECT key, contact_id FROM contact_keys ORDER BY key", "ti" },
	{ "tasks", "SELECT count(*) FROM tasks",
	    "SELECT id, contact_id, department, assignee, reason, due_at, status, created_at,"
	    " created_by, done_at, done_by FROM tasks ORDER BY id",
	    "iitttmtmtmt" },
	{ "contact_history", "SELECT count(*) FROM contact_history",
	    "SELECT id, contact_id, at, actor, action, from_status, to_status, detail"
	    " FROM contact_history ORDER BY id",
	    "iimttttt" },
	{ "messages", "SELECT count(*) FROM messages",
	    "SELECT id, contact_id, direction, channel, at, actor, sender, recipients, subject,"
	    " body, message_id, automatic, attachments, meta, status FROM messages ORDER BY id",
	    "iittmttjttttjjt" },
	{ "timers", "SELECT count(*) FROM timers",
	    "SELECT id, contact_id, task_id, kind, due_at, payload, rule, status, created_at,"
	    " done_at FROM timers ORDER BY id",
	    "iiitmjttmm" },
	{ "outbox", "SELECT count(*) FROM outbox",
	    "SELECT id, contact_id, channel, template, rule, status, attempts, next_at, created_at,"
	    " sent_at, error, message_row, recipient, automatic, payload FROM outbox ORDER BY id",
	    "iittttimmmtitbj" },
	{ "audit", "SELECT count(*) FROM audit",
	    "SELECT id, at, token, action, object FROM audit ORDER BY id", "imttt" },
	{ "tokens", "SELECT count(*) FROM tokens",
	    "SELECT name, hash, role, departments, organisation, created_at, revoked_at"
	    " FROM tokens ORDER BY name",
	    "tttjtmm" },
	{ "events", "SELECT count(*) FROM events",
	    "SELECT id, at, kind, contact_id, task_id, payload FROM events ORDER BY id",
	    "imtiij" },
	{ "counts", "SELECT count(*) FROM counts",
	    "SELECT channel, status, n FROM counts ORDER BY channel, status", "tti" },
	{ "refseq", "SELECT count(*) FROM refseq",
	    "SELECT year, last FROM refseq ORDER BY year", "ii" },
};

/* Tables after the blobs (LOKET_STORE_COPY_TABLES): added once blobs had their place. */
static const struct sq_copy_table sq_copy_tables_after[] = {
	{ "users", "SELECT count(*) FROM users",
	    "SELECT name, hash, role, departments, organisation, extension, disabled, created_at,"
	    " changed_at FROM users ORDER BY name",
	    "tttjttbmm" },
};

/* A column's value in the neutral shape; NULL without memory. */
static json_t *
sq_copy_value(sqlite3_stmt *st, int i, char type)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return json_null();
	switch (type) {
	case 'i':
	case 'm':
		return json_integer(sqlite3_column_int64(st, i));
	case 'b':
		return json_boolean(sqlite3_column_int64(st, i) != 0);
	case 'j': {
		const char *text = (const char *)sqlite3_column_text(st, i);
		json_t *v = json_loads(text != NULL ? text : "", JSON_DECODE_ANY, NULL);

		/* Text that is not JSON travels as the string it is: nothing is dropped. */
		return v != NULL ? v : json_string(text != NULL ? text : "");
	}
	default:
		return json_stringn((const char *)sqlite3_column_text(st, i),
		    (size_t)sqlite3_column_bytes(st, i));
	}
}

static int
sq_copy_table_dump(sqlite3 *db, const struct sq_copy_table *t,
    int (*cb)(const char *table, int64_t total, json_t *row, void *arg), void *arg,
    const char **error_r)
{
	sqlite3_stmt *st = NULL;
	int64_t total = 0;
	int rc = -1, step, ncols;

	if (sqlite3_prepare_v2(db, t->count_sql, -1, &st, NULL) != SQLITE_OK
	    || sqlite3_step(st) != SQLITE_ROW)
		goto sql_fail;
	total = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (cb(t->name, total, NULL, arg) < 0) {
		*error_r = util_error("the copy stopped at table %s", t->name);
		return -1;
	}
	if (sqlite3_prepare_v2(db, t->sql, -1, &st, NULL) != SQLITE_OK)
		goto sql_fail;
	if ((ncols = sqlite3_column_count(st)) != (int)strlen(t->types)) {
		*error_r = util_error("table %s: the copy's column list is wrong", t->name);
		goto out;
	}
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *row = json_object(), *v;

		if (row == NULL) {
			*error_r = "out of memory";
			goto out;
		}
		for (int i = 0; i < ncols; i++) {
			if ((v = sq_copy_value(st, i, t->types[i])) == NULL
			    || json_object_set_new(row, sqlite3_column_name(st, i), v) < 0) {
				json_decref(row);
				*error_r = util_error("table %s, row %lld: column %s cannot be copied "
				                      "(text that is not UTF-8?)",
				    t->name, (long long)sqlite3_column_int64(st, 0),
				    sqlite3_column_name(st, i));
				goto out;
			}
		}
		if (cb(t->name, -1, row, arg) < 0) {
			json_decref(row);
			*error_r = util_error("the copy stopped in table %s", t->name);
			goto out;
		}
		json_decref(row);
	}
	if (step != SQLITE_DONE)
		goto sql_fail;
	rc = 0;
	goto out;
sql_fail:
	*error_r = util_error("cannot read table %s of the register: %s", t->name,
	    sqlite3_errmsg(db));
out:
	sqlite3_finalize(st);
	return rc;
}

static int
sq_copy_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether name is a blob's: 64 lower-case hex digits (a temporary file is not). */
static int
sq_copy_blob_name(const char *name)
{
	size_t n = strspn(name, "0123456789abcdef");

	return n == 64 && name[64] == '\0';
}

/* The blobs, by name; a register without an attachments folder has none. */
static int
sq_copy_blobs_dump(const char *data_dir,
    int (*cb)(const char *table, int64_t total, json_t *row, void *arg), void *arg,
    const char **error_r)
{
	char dir[4096];
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int rc = -1;

	snprintf(dir, sizeof(dir), "%s/attachments", data_dir);
	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (!sq_copy_blob_name(de->d_name))
				continue;
			if (n == cap) {
				char **grown = realloc(names, (cap = cap * 2 + 64) * sizeof(*names));

				if (grown == NULL)
					break;
				names = grown;
			}
			if ((names[n] = strdup(de->d_name)) == NULL)
				break;
			n++;
		}
		closedir(d);
		if (de != NULL) {
			*error_r = "out of memory listing the attachments";
			goto out;
		}
	}
	if (n > 0)
		qsort(names, n, sizeof(*names), sq_copy_name_cmp);
	if (cb("blobs", (int64_t)n, NULL, arg) < 0) {
		*error_r = "the copy stopped at the blobs";
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		void *data = NULL;
		size_t len = 0, b64len;
		char *b64;
		json_t *row;
		int stop;

		if (sq_blob_get(data_dir, names[i], &data, &len) != STORE_OK) {
			*error_r = util_error("cannot read the blob %s/%s", dir, names[i]);
			goto out;
		}
		b64len = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
		if ((b64 = malloc(b64len)) == NULL) {
			free(data);
			*error_r = "out of memory reading a blob";
			goto out;
		}
		sodium_bin2base64(b64, b64len, data, len, sodium_base64_VARIANT_ORIGINAL);
		free(data);
		row = json_pack("{s:s, s:s}", "sha256", names[i], "data", b64);
		free(b64);
		stop = row == NULL || cb("blobs", -1, row, arg) < 0;
		json_decref(row);
		if (stop) {
			*error_r = "the copy stopped in the blobs";
			goto out;
		}
	}
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

int
sq_dump(const struct loket_store_host *host, void *load,
    int (*cb)(const char *table, int64_t total, json_t *row, void *arg), void *arg,
    const char **error_r)
{
	const char *path = host->conf_get(host, "path");
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;
	int rc = -1, version = -1;

	if (load != NULL) {
		*error_r = "the sqlite driver cannot be the target of a register copy";
		return -1;
	}
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		*error_r = util_error("%s: cannot open the register: %s", path,
		    db != NULL ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	/* One read transaction: every table from the same snapshot. */
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK
	    || sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK
	    || sqlite3_step(st) != SQLITE_ROW) {
		*error_r = util_error("%s: cannot read the register: %s", path, sqlite3_errmsg(db));
		goto out;
	}
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (version == 0) {
		*error_r = util_error("%s is not a loket register (it has no schema)", path);
		goto out;
	}
	if (version != sq_schema_version) {
		*error_r = util_error("%s has schema version %d, this loketctl copies version %d: %s",
		    path, version, sq_schema_version,
		    version < sq_schema_version ? "start loketd on it once to upgrade it"
		                                : "use the loketctl of the loketd that wrote it");
		goto out;
	}
	for (size_t i = 0; i < sizeof(sq_copy_tables) / sizeof(sq_copy_tables[0]); i++)
		if (sq_copy_table_dump(db, &sq_copy_tables[i], cb, arg, error_r) < 0)
			goto out;
	if (sq_copy_blobs_dump(host->data_dir, cb, arg, error_r) < 0)
		goto out;
	for (size_t i = 0; i < sizeof(sq_copy_tables_after) / sizeof(sq_copy_tables_after[0]); i++)
		if (sq_copy_table_dump(db, &sq_copy_tables_after[i], cb, arg, error_r) < 0)
			goto out;
	rc = 0;
out:
	sqlite3_finalize(st);
	if (db != NULL)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	return rc;
}
