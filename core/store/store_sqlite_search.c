/*
 * store_sqlite_search.c: STORE_SEARCH on the FTS5 index the schema's
 * triggers keep (store_sqlite_schema.c, 6 -> 7; their SQL functions are in
 * store_sqlite_fold.c).
 */
#include "config.h"

#include <string.h>

#include "store_sqlite.h"
#include "store_sqlite_fold.h"

int
sq_search_flush(struct sq_conn *c)
{
	static const char *const sql[] = { SQ_FOLD_FLUSH_1, SQ_FOLD_FLUSH_2, SQ_FOLD_FLUSH_3,
		SQ_FOLD_FLUSH_4, SQ_FOLD_FLUSH_5, SQ_FOLD_FLUSH_6 };

	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		sqlite3_stmt *st = sq_stmt(c, sql[i]);
		int rc;

		if (st == NULL)
			return -1;
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return -1;
	}
	return 0;
}

/* Whether w is one folded word: what fold_text() makes, so it cannot be FTS5 syntax. */
static int
folded_word(const char *w)
{
	if (w == NULL || *w == '\0')
		return 0;
	for (; *w != '\0'; w++)
		if (!((*w >= 'a' && *w <= 'z') || (*w >= '0' && *w <= '9')))
			return 0;
	return 1;
}

/*
 * The FTS5 query of words (each a whole word of column col, or of any column
 * when col is NULL (a table of detail = none has no column filters), or a prefix)
 * and, for contacts, of the scope's tokens (loket_scope(), store_sqlite_fold.c):
 *   departments D..., organisation O:  AND (scope:"dDc0" OR scope:"dDoO" ...)
 *   every department, organisation O:  NOT (scope:"c1" NOT scope:"oO")
 *   every department, no organisation: NOT scope:"c1"
 * Each list is at most a department's: the words' lists are never
 * intersected with one holding nearly every contact. The same contacts as
 * SQ_SCOPE_SQL. NULL with *none_r set when the scope sees nothing (no
 * departments); NULL alone without memory.
 */
static char *
match_of(json_t *words, const char *col, int prefix, json_t *scope, int *none_r)
{
	sqlite3_str *s = sqlite3_str_new(NULL);
	json_t *w, *deps = json_object_get(scope, "departments");
	const char *org, *dep;
	size_t i;

	*none_r = 0;
	sqlite3_str_appendchar(s, 1, '(');
	json_array_foreach(words, i, w)
	{
		sqlite3_str_appendf(s, "%s%s%s\"%s\"%s", i > 0 ? " AND " : "",
		    col != NULL ? col : "", col != NULL ? ":" : "", json_string_value(w),
		    prefix ? "*" : "");
	}
	sqlite3_str_appendchar(s, 1, ')');
	org = json_string_value(json_object_get(scope, "organisation"));
	if (scope == NULL || json_is_true(json_object_get(scope, "all"))) {
		/* every contact */
	} else if (json_is_array(deps)) {
		if (json_array_size(deps) == 0) {
			*none_r = 1;
			sqlite3_free(sqlite3_str_finish(s));
			return NULL;
		}
		sqlite3_str_appendall(s, " AND (");
		json_array_foreach(deps, i, w)
		{
			dep = json_string_value(w) != NULL ? json_string_value(w) : "";
			sqlite3_str_appendall(s, i > 0 ? " OR scope:\"" : "scope:\"");
			sq_fold_scope_token(s, 'd', dep);
			sqlite3_str_appendall(s, "c0\"");
			/* Confidential contacts only within the caller's organisation. */
			if (org != NULL) {
				sqlite3_str_appendall(s, " OR scope:\"");
				sq_fold_scope_token(s, 'd', dep);
				sq_fold_scope_token(s, 'o', org);
				sqlite3_str_appendall(s, "\"");
			}
		}
		sqlite3_str_appendall(s, ")");
	} else if (org != NULL) {
		sqlite3_str_appendall(s, " NOT (scope:\"c1\" NOT scope:\"");
		sq_fold_scope_token(s, 'o', org);
		sqlite3_str_appendall(s, "\")");
	} else {
		sqlite3_str_appendall(s, " NOT scope:\"c1\"");
	}
	if (sqlite3_str_errcode(s) != SQLITE_OK) {
		sqlite3_free(sqlite3_str_finish(s));
		return NULL;
	}
	return sqlite3_str_finish(s);
}

/* Appends the contact rows st selects to items; the step's code. */
static int
contacts_run(sqlite3_stmt *st, json_t *items)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(items, sq_contact_row(st));
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int
search_words(struct sq_conn *c, json_t *in, int want_contacts, int want_parties, int limit,
    json_t *contacts, json_t *parties)
{
	static const char sql_contacts[]
	    = "SELECT " SQ_CONTACT_COLS "FROM contacts c LEFT JOIN parties p ON p.id = c.party_id"
	      " WHERE c.id IN (SELECT -rowid FROM contacts_fts WHERE contacts_fts MATCH ?1"
	      " ORDER BY rowid LIMIT ?2)" SQ_SCOPE_SQL(3, 4, 5) " ORDER BY c.id DESC";
	static const char sql_parties[]
	    = "SELECT rowid FROM parties_fts WHERE parties_fts MATCH ?1 ORDER BY rowid DESC";
	json_t *words = json_object_get(in, "words"), *scope = json_object_get(in, "scope"), *p;
	sqlite3_stmt *st;
	char *match;
	int none, rc = SQLITE_OK;

	if (want_contacts) {
		if ((match = match_of(words, "words", 0, scope, &none)) == NULL)
			return none ? SQLITE_OK : SQLITE_NOMEM;
		if ((st = sq_stmt(c, sql_contacts)) == NULL) {
			sqlite3_free(match);
			return SQLITE_ERROR;
		}
		sqlite3_bind_text(st, 1, match, -1, sqlite3_free);
		sqlite3_bind_int(st, 2, limit);
		sq_bind_scope(st, 3, scope);
		if ((rc = contacts_run(st, contacts)) != SQLITE_OK)
			return rc;
	}
	if (want_parties) {
		if ((match = match_of(words, NULL, 1, NULL, &none)) == NULL)
			return SQLITE_NOMEM;
		if ((st = sq_stmt(c, sql_parties)) == NULL) {
			sqlite3_free(match);
			return SQLITE_ERROR;
		}
		sqlite3_bind_text(st, 1, match, -1, sqlite3_free);
		/*
		 * Newest first, as far as the limit: a merged party, or one whose
		 * contacts are all confidential outside the scope, is passed over.
		 */
		while (
		    (int)json_array_size(parties) < limit && (rc = sqlite3_step(st)) == SQLITE_ROW)
			if ((p = sq_party_if_visible(c, sqlite3_column_int64(st, 0), scope))
			    != NULL)
				json_array_append_new(parties, p);
		sqlite3_reset(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE && rc != SQLITE_OK)
			return rc;
		rc = SQLITE_OK;
	}
	return rc;
}

/* A query that is an identifier: the party holding it and its contacts, newest first. */
static int
search_identifier(struct sq_conn *c, json_t *in, int want_contacts, int want_parties, int limit,
    json_t *contacts, json_t *parties)
{
	static const struct {
		const char *key, *sql;
	} ids[] = {
		{ "rrn", "SELECT id FROM parties WHERE rrn = ?1 AND merged_into IS NULL" },
		{ "email", "SELECT party_id FROM party_emails WHERE email = ?1" },
		{ "phone", "SELECT party_id FROM party_phones WHERE phone = ?1" },
	};
	static const char sql_contacts[]
	    = "SELECT " SQ_CONTACT_COLS "FROM contacts c LEFT JOIN parties p ON p.id = c.party_id"
	      " WHERE c.party_id = ?1" SQ_SCOPE_SQL(2, 3, 4) " ORDER BY c.id DESC LIMIT ?5";
	static const char sql_reference[]
	    = "SELECT " SQ_CONTACT_COLS "FROM contacts c LEFT JOIN parties p ON p.id = c.party_id"
	      " WHERE c.reference = ?1" SQ_SCOPE_SQL(2, 3, 4);
	json_t *scope = json_object_get(in, "scope"), *p;
	sqlite3_int64 id = 0;
	sqlite3_stmt *st;

	if (sq_jstr(in, "reference") != NULL) {
		if (!want_contacts)
			return SQLITE_OK;
		if ((st = sq_stmt(c, sql_reference)) == NULL)
			return SQLITE_ERROR;
		sq_bind_json_text(st, 1, in, "reference");
		sq_bind_scope(st, 2, scope);
		return contacts_run(st, contacts);
	}
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]) && id == 0; i++) {
		if (sq_jstr(in, ids[i].key) == NULL)
			continue;
		if ((st = sq_stmt(c, ids[i].sql)) == NULL)
			return SQLITE_ERROR;
		sq_bind_json_text(st, 1, in, ids[i].key);
		if (sqlite3_step(st) == SQLITE_ROW)
			id = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
	}
	if (id == 0)
		return SQLITE_OK;
	if (want_parties && (p = sq_party_if_visible(c, id, scope)) != NULL)
		json_array_append_new(parties, p);
	if (!want_contacts)
		return SQLITE_OK;
	if ((st = sq_stmt(c, sql_contacts)) == NULL)
		return SQLITE_ERROR;
	sqlite3_bind_int64(st, 1, id);
	sq_bind_scope(st, 2, scope);
	sqlite3_bind_int(st, 5, limit);
	return contacts_run(st, contacts);
}

void
sq_op_search(struct sq_conn *c, struct store_req *req)
{
	json_t *in = req->in, *words = json_object_get(in, "words"), *w;
	const char *type = sq_jstr(in, "type");
	int limit = (int)json_integer_value(json_object_get(in, "limit"));
	int want_contacts = type == NULL || strcmp(type, "parties") != 0;
	int want_parties = type == NULL || strcmp(type, "contacts") != 0;
	json_t *contacts = json_array(), *parties = json_array();
	size_t i;
	int rc;

	if (limit <= 0 || limit > 1000)
		limit = 20;
	if (words != NULL) {
		int ok = json_is_array(words) && json_array_size(words) > 0;

		json_array_foreach(words, i, w) ok = ok && folded_word(json_string_value(w));
		if (!ok) {
			json_decref(contacts);
			json_decref(parties);
			store_req_fail(
			    req, STORE_INVALID, "search: the words are not folded words");
			return;
		}
		rc = search_words(c, in, want_contacts, want_parties, limit, contacts, parties);
	} else {
		rc = search_identifier(
		    c, in, want_contacts, want_parties, limit, contacts, parties);
	}
	if (rc != SQLITE_OK) {
		json_decref(contacts);
		json_decref(parties);
		sq_step_error(c, req, rc);
		return;
	}
	req->out = json_pack("{s:o, s:o}", "contacts", contacts, "parties", parties);
}
