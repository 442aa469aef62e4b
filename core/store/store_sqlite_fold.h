/*
 * store_sqlite_fold.h: the SQL functions the SQLite search index's triggers
 * call (loket_fold, loket_scope), for every connection that writes contacts
 * or parties: loketd's writer, and bench/history_load, which builds this
 * file and core/lib/fold.c on their own (sqlite3 is all they need).
 */
#ifndef LOKET_STORE_SQLITE_FOLD_H
#define LOKET_STORE_SQLITE_FOLD_H

#include <sqlite3.h>

/*
 * Registers loket_fold(text, ...) (the folded words of its arguments, NULLs
 * skipped: fold_text()) and loket_scope(department, organisation,
 * confidential) (a contact's scope tokens) on db. -1 when SQLite refuses.
 */
int sq_fold_functions(sqlite3 *db);
/* Appends the scope token kind + hex of v's bytes ("d6275..."): one token whatever v holds. */
void sq_fold_scope_token(sqlite3_str *s, char kind, const char *v);

/*
 * What the search index's triggers queued (store_sqlite_schema.c, 6 -> 7),
 * put into the FTS5 tables: each row's old words taken out, its words as
 * they are now put in, the queue emptied. One statement each, in this
 * order; the writer runs them once per batch, before COMMIT. A contact's
 * row in contacts_fts is its id negated (9 -> 10): newest first is then
 * FTS5's ascending order, which seeks through the long lists of common
 * words and scope tokens instead of reading them whole backwards. The rows
 * go in by id descending: FTS5 writes its pending terms out as a new
 * segment whenever a rowid is not above the one before, so in id order
 * every contact of a batch would be a segment of its own.
 */
#define SQ_FOLD_FLUSH_1                                                                            \
	"INSERT INTO contacts_fts (contacts_fts, rowid, words, scope) SELECT 'delete', -id, words,"\
	" scope FROM contacts_fts_pending WHERE words IS NOT NULL ORDER BY id DESC"
#define SQ_FOLD_FLUSH_2                                                                            \
	"INSERT INTO contacts_fts (rowid, words, scope) SELECT -c.id, loket_fold(c.reference,"     \
	" c.subject, c.body, c.answer), loket_scope(c.department, c.organisation, c.confidential)" \
	" FROM contacts_fts_pending q JOIN contacts c ON c.id = q.id ORDER BY q.id DESC"
#define SQ_FOLD_FLUSH_3 "DELETE FROM contacts_fts_pending"
#define SQ_FOLD_FLUSH_4                                                                            \
	"INSERT INTO parties_fts (parties_fts, rowid, name) SELECT 'delete', id, name"             \
	" FROM parties_fts_pending WHERE name IS NOT NULL"
#define SQ_FOLD_FLUSH_5                                                                            \
	"INSERT INTO parties_fts (rowid, name) SELECT p.id, loket_fold(p.name)"                    \
	" FROM parties_fts_pending q JOIN parties p ON p.id = q.id"
#define SQ_FOLD_FLUSH_6 "DELETE FROM parties_fts_pending"
/* The six as one text for sqlite3_exec (history_load). */
#define SQ_FOLD_FLUSH_SQL                                                                          \
	SQ_FOLD_FLUSH_1 ";" SQ_FOLD_FLUSH_2 ";" SQ_FOLD_FLUSH_3 ";" SQ_FOLD_FLUSH_4                \
	                ";" SQ_FOLD_FLUSH_5 ";" SQ_FOLD_FLUSH_6 ";"

#endif
