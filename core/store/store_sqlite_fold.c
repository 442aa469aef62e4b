/* store_sqlite_fold.c: the SQL functions the SQLite search index's triggers call. */
/* No config.h: bench/history_load.c builds this file outside the autotools build. */
#include "fold.h"
#include "store_sqlite_fold.h"

void
sq_fold_scope_token(sqlite3_str *s, char kind, const char *v)
{
	static const char hex[] = "0123456789abcdef";

	sqlite3_str_appendchar(s, 1, kind);
	for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
		sqlite3_str_appendchar(s, 1, hex[*p >> 4]);
		sqlite3_str_appendchar(s, 1, hex[*p & 0xF]);
	}
}

/* loket_fold(text, ...): the folded words of its arguments (NULLs skipped), one text, the first FOLD_WORDS_MAX. */
static void
sq_fold_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	sqlite3_str *s = sqlite3_str_new(NULL);
	char *buf = NULL, *text;
	size_t cap = 0, left = FOLD_WORDS_MAX;
	int n;

	for (int i = 0; i < argc && left > 0; i++) {
		const char *t = (const char *)sqlite3_value_text(argv[i]);
		size_t len = (size_t)sqlite3_value_bytes(argv[i]), folded;

		if (t == NULL || len == 0)
			continue;
		if (len + 1 > cap) {
			char *grown = sqlite3_realloc64(buf, len + 1);

			if (grown == NULL) {
				sqlite3_free(buf);
				sqlite3_free(sqlite3_str_finish(s));
				sqlite3_result_error_nomem(ctx);
				return;
			}
			buf = grown;
			cap = len + 1;
		}
		if ((folded = fold_words_keep(buf, fold_text(t, len, buf), &left)) == 0)
			continue;
		if (sqlite3_str_length(s) > 0)
			sqlite3_str_appendchar(s, 1, ' ');
		sqlite3_str_append(s, buf, (int)folded);
	}
	sqlite3_free(buf);
	if (sqlite3_str_errcode(s) != SQLITE_OK) {
		sqlite3_free(sqlite3_str_finish(s));
		sqlite3_result_error_nomem(ctx);
		return;
	}
	n = sqlite3_str_length(s);
	/* An empty sqlite3_str finishes as NULL: the words of a text without any are "". */
	if ((text = sqlite3_str_finish(s)) == NULL)
		sqlite3_result_text(ctx, "", 0, SQLITE_STATIC);
	else
		sqlite3_result_text(ctx, text, n, sqlite3_free);
}

/*
 * loket_scope(department, organisation, confidential): the scope tokens of a
 * contact (store_sqlite_schema.c, 8 -> 9), each as selective as the scopes
 * that ask for it, so that a scoped query never intersects the words with
 * a list holding nearly every contact:
 *   "d" hex(department) "c0"             not confidential, in that department;
 *   "d" hex(department) "o" hex(org)     confidential, in that department,
 *                                        seen within that organisation;
 *   "c1", "o" hex(org)                   confidential (org when it has one),
 *                                        for the scopes of every department.
 * A token reads back one way only (hex holds no "o"; "c0" is the last two
 * letters of a token without one), and no department name can make it
 * anything but one FTS5 token. A contact without a department, or a
 * confidential one without an organisation, gets no department token: no
 * department-scoped caller sees it (SQ_SCOPE_SQL).
 */
static void
sq_scope_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	sqlite3_str *s = sqlite3_str_new(NULL);
	const char *dep = (const char *)sqlite3_value_text(argv[0]);
	const char *org = (const char *)sqlite3_value_text(argv[1]);
	int n;
	char *text;

	(void)argc;
	if (sqlite3_value_int(argv[2]) == 0) {
		if (dep != NULL) {
			sq_fold_scope_token(s, 'd', dep);
			sqlite3_str_appendall(s, "c0");
		}
	} else {
		sqlite3_str_appendall(s, "c1");
		if (org != NULL) {
			sqlite3_str_appendchar(s, 1, ' ');
			sq_fold_scope_token(s, 'o', org);
			if (dep != NULL) {
				sqlite3_str_appendchar(s, 1, ' ');
				sq_fold_scope_token(s, 'd', dep);
				sq_fold_scope_token(s, 'o', org);
			}
		}
	}
	n = sqlite3_str_length(s);
	if (sqlite3_str_errcode(s) != SQLITE_OK) {
		sqlite3_free(sqlite3_str_finish(s));
		sqlite3_result_error_nomem(ctx);
		return;
	}
	/* A contact of no department and not confidential has no token: "". */
	if ((text = sqlite3_str_finish(s)) == NULL)
		sqlite3_result_text(ctx, "", 0, SQLITE_STATIC);
	else
		sqlite3_result_text(ctx, text, n, sqlite3_free);
}

int
sq_fold_functions(sqlite3 *db)
{
	int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;

	if (sqlite3_create_function(db, "loket_fold", -1, flags, NULL, sq_fold_fn, NULL, NULL)
	        != SQLITE_OK
	    || sqlite3_create_function(db, "loket_scope", 3, flags, NULL, sq_scope_fn, NULL, NULL)
	        != SQLITE_OK)
		return -1;
	return 0;
}
