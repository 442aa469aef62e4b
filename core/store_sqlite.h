/* store_sqlite.h: what store_sqlite.c and store_sqlite_ops.c share. */
#ifndef LOKET_STORE_SQLITE_H
#define LOKET_STORE_SQLITE_H

#include <sqlite3.h>

#include "store.h"

#define SQ_STMT_CACHE 64

/* One connection with its prepared statements, keyed by the SQL literal's address. */
struct sq_conn {
	sqlite3 *db;
	struct {
		const char *sql;
		sqlite3_stmt *stmt;
	} cache[SQ_STMT_CACHE];
	/* The writer's reference counter during a batch (see reference_next). */
	int ref_year;
	sqlite3_int64 ref_last;
	int ref_dirty;
};

/* store_sqlite.c */
sqlite3_stmt *sq_stmt(struct sq_conn *c, const char *sql);
int sq_exec(struct sq_conn *c, const char *sql);

/* store_sqlite_ops.c: one function per request kind; they report errors in req. */
void sq_op_run(struct sq_conn *c, struct store_req *req);
/* Writes the batch's reference counter; called before COMMIT. */
int sq_refseq_flush(struct sq_conn *c);
extern const char *const sq_migrations[];
extern const int sq_schema_version;

#endif
