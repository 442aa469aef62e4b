/*
 * pg.h: what the files of the PostgreSQL driver share: a connection with
 * its prepared statements, parameters built from JSON, and columns read
 * back into JSON.
 *
 * Each connection belongs to one thread (the writer or a reader) and runs
 * its statements with libpq's blocking calls there; the daemon's loop never
 * waits on PostgreSQL: it only hands requests to those threads and takes
 * completions back (as the SQLite driver does).
 *
 * Times are timestamptz in the database and integer milliseconds since the
 * epoch in JSON; PG_TS() and PG_MS() convert exactly (no floating point).
 */
#ifndef LOKET_PG_H
#define LOKET_PG_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "loket/store.h"

#define PG_STMT_CACHE 128
#define PG_PARAMS_MAX 24

/* SQL: integer milliseconds (parameter $n) to timestamptz, and back. */
#define PG_TS(n) "('epoch'::timestamptz + ($" #n ")::bigint * interval '1 millisecond')"
#define PG_MS(col) "((extract(epoch FROM " col ") * 1000)::bigint)"
/* SQL: a timestamptz as the ISO 8601 text message, token and party rows still carry. */
#define PG_ISO(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* What a failed statement means for the request that ran it. */
enum pg_fault {
	PG_FAULT_NONE = 0,
	PG_FAULT_CONFLICT,    /* a unique or exclusion constraint: 23505, 23P01 */
	PG_FAULT_RETRY,       /* serialization failure or deadlock: 40001, 40P01 */
	PG_FAULT_CONNECTION,  /* the connection is gone (class 08, 57P01-57P03, no result) */
	PG_FAULT_FAILED,      /* anything else: a bug or a broken register */
};

struct pg_conn {
	PGconn *conn;
	/* Prepared statements, keyed by the SQL literal's address (static strings only). */
	struct {
		const char *sql;
		int n;
	} cache[PG_STMT_CACHE];
	int ncache;
	/* The last failure: its class and SQLSTATE (the text went to the log). */
	enum pg_fault fault;
	/*
	 * A deadlock or serialization failure happened since the owner last
	 * cleared this: the writer then runs its whole batch again (sticky,
	 * because the statements after it fail for another reason).
	 */
	int retry_seen;
	char sqlstate[6];
	/* For the log: "writer", "reader 2". */
	char who[32];
	/*
	 * When set, each statement's duration in ns (loket_store_statement_seconds);
	 * called on the connection's thread. pg_connect clears it (c may be
	 * uninitialised): whoever connects sets it after.
	 */
	void (*timed)(void *arg, uint64_t ns);
	void *timed_arg;
};

/* Parameters of one statement, as text (PostgreSQL casts them by the statement's types). */
struct pg_params {
	const char *v[PG_PARAMS_MAX];
	char *owned[PG_PARAMS_MAX]; /* freed by pg_params_clear */
	char num[PG_PARAMS_MAX][24];
	int n;
};

/*
 * store_pgsql.c: the driver's log line (through the host's logger: the
 * subsystem is "pgsql"). Never personal data: statements' parameters are
 * not logged, only their first words and the server's message.
 */
void pg_logf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* store_pgsql.c: the core's table, set at open (and at replay). */
extern const struct loket_store_host *pg_host;
/* store_pgsql.c: a log line at level (pg_logf logs errors); same rules as pg_logf. */
void pg_log(enum loket_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * store_pgsql.c, writer thread only: an event of the write req that
 * pg_write_run is running. The batch stores its writes' events after the
 * last write, under a lock held to COMMIT (ids in commit order across
 * nodes), and records them with their writes once COMMIT returned. A write
 * that fails has its events dropped with its savepoint. payload_fmt builds
 * JSON object text: ids and statuses only, strings through pg_event_str.
 */
int pg_event(struct store_req *req, enum loket_event_kind kind, int64_t at, int64_t contact_id,
    int64_t task_id, const char *payload_fmt, ...) __attribute__((format(printf, 6, 7)));
/*
 * store_pgsql.c, writer thread only: the write being run moves the count of
 * (channel, status) by delta; the batch applies the sum per row at its end
 * (one lock order across nodes). Rewound with the write's events.
 */
int pg_count(const char *channel, const char *status, int delta);
/* Where the events (and counts) stand now, and back to there (a savepoint rolled back). */
size_t pg_event_mark(void);
void pg_event_rewind(size_t mark);
/* s as the inside of a JSON string (quotes, backslashes, controls escaped), into buf. */
const char *pg_event_str(char *buf, size_t len, const char *s);

/*
 * pg_write.c (and pg_parties.c): runs one write on the writer's connection,
 * inside the batch's transaction and a savepoint of its own that the
 * caller rolls back when the write fails; stores the write's events
 * (pg_event) and sets req->out, or fails req through pg_host->req_fail.
 * Returns -1 when the transaction itself broke (c->fault says how), else 0.
 */
int pg_write_run(struct pg_conn *c, struct store_req *req);

/*
 * pg_write.c: a statement of the write req failed: -1 when the connection
 * went (the batch goes with it), else req answered for a person (CONFLICT
 * for a unique constraint, UNAVAILABLE for a deadlock, else FAILED) and 0.
 */
int pg_write_fail(struct pg_conn *c, struct store_req *req);
/* pg_write.c: whether scope (docs/storage.md) may see a record with these fields. */
int pg_scope_allows(json_t *scope, const char *department, const char *organisation,
    int confidential);
int pg_history_add(struct pg_conn *c, int64_t contact_id, int64_t at, const char *actor,
    const char *action, const char *from, const char *to, const char *detail);

/*
 * pg_parties.c: the party of a new contact (*id_r, 0 when it names no
 * identifier) and, when its identifiers disagree with the register, what
 * disagreed (*conflict_r, JSON text the caller frees). A party made here
 * is made once across nodes: its identifiers are unique constraints, and
 * one a concurrent write took first makes this write match that party.
 * -1 when a statement failed.
 */
int pg_party_match(struct pg_conn *c, json_t *party, int64_t now, int64_t *id_r,
    char **conflict_r);
/* Sets parties.confidential: whether every contact of the party is confidential. */
int pg_party_confidential_refresh(struct pg_conn *c, int64_t party_id);
/* pg_parties.c: STORE_PARTY_UPDATE and STORE_PARTY_MERGE; as pg_write_run. */
int pg_party_update(struct pg_conn *c, struct store_req *req);
int pg_party_merge(struct pg_conn *c, struct store_req *req);

/* pg_read.c: runs one read on a reader's connection; sets req->out or fails req. */
void pg_read_run(struct pg_conn *c, struct store_req *req);
/* pg_read.c, for pg_search.c: a failed read answered; a contact row of PG_READ_CONTACT_COLS; a
 * party as the API shows it (NULL on failure or when it is gone). */
void pg_read_fail(struct pg_conn *c, struct store_req *req);
json_t *pg_read_contact_row(const PGresult *r, int i);
json_t *pg_read_party_load(struct pg_conn *c, int64_t id);
/* pg_search.c: STORE_SEARCH on the schema's search vectors (pg_schema.c, 1 -> 2). */
void pg_op_search(struct pg_conn *c, struct store_req *req);

/*
 * The scope of a request as three parameters (all, departments as jsonb or
 * NULL, organisation) and its condition on contacts aliased c: the rule of
 * docs/storage.md, the same as the SQLite driver's SCOPE_SQL.
 */
#define PG_SCOPE(n_all, n_deps, n_org)                                                     \
	" AND ($" #n_all "::boolean OR (($" #n_deps "::jsonb IS NULL OR c.department IN"   \
	" (SELECT jsonb_array_elements_text($" #n_deps "::jsonb)))"                          \
	" AND (NOT c.confidential OR c.organisation = $" #n_org "::text)))"

#define PG_READ_CONTACT_COLS                                                                      \
	"c.id, c.reference, c.channel, c.direction, " PG_MS("c.received_at") ", "           \
	PG_MS("c.handled_at") ", " PG_MS("c.updated_at") ", c.party_id, c.subject, c.body," \
	" c.answer, c.product, c.department, c.organisation, c.line, c.status, c.priority," \
	" c.tags, c.language, c.confidential, c.location, c.meta, c.created_by, p.name,"    \
	" c.assignee, c.reply_to, c.party_conflict "

/*
 * pg_read.c: the driver table's replay entry (loketctl rules replay):
 * connects itself with [storage] conninfo, reads in one read-only snapshot.
 */
int pg_replay(const struct loket_store_host *host, int64_t since_ms,
    int (*cb)(json_t *contact, void *arg), void *arg, const char **error_r);

/* pg_copy.c: the driver table's copy entries (loketctl migrate; see loket/store.h). */
int pg_dump(const struct loket_store_host *host, void *load,
    int (*cb)(const char *table, int64_t total, json_t *row, void *arg), void *arg,
    const char **error_r);
int pg_load_begin(const struct loket_store_host *host, void **load_r, const char **error_r);
int pg_load_rows(void *load, const char *table, json_t *rows, const char **error_r);
int pg_load_end(void *load, int commit, const char **error_r);

/* pg_blobs.c: the driver table's blob entries (any thread; see loket/store.h). */
struct pg_store;
enum store_result pg_blob_put(void *impl, const void *data, size_t len, unsigned int flags,
    char sha256_hex[65]);
enum store_result pg_blob_sync(void *impl);
enum store_result pg_blob_get(void *impl, const char *sha256_hex, void **data_r, size_t *len_r);
/*
 * The blob entries keep a pool of connections of their own, made on first
 * use; the store's close ends them (a later store connects again).
 */
void pg_blobs_close(void);
/* The conninfo the blob entries connect with (store_pgsql.c): impl is struct pg_store. */
const char *pg_store_conninfo(void *impl);

/*
 * pg_listen.c: this node's listener (other nodes' events and broadcasts;
 * the design is at the top of pg_listen.c). after: the last event id in
 * the register at open. hand(item, arg) queues an item for the loop behind
 * the writer's completions, from the listener's thread or the writer's;
 * the loop passes it to pg_listen_deliver.
 */
struct pg_listen;
struct pg_listen *pg_listen_new(const struct loket_store_host *host, const char *conninfo,
    int64_t after, void (*hand)(struct store_req *item, void *arg), void *arg);
int pg_listen_start(struct pg_listen *l, const char **error_r);
/* Ends the thread (the writer may still call the three below); free ends it too. */
void pg_listen_stop(struct pg_listen *l);
void pg_listen_free(struct pg_listen *l);
/*
 * Writer thread: hold right before a COMMIT that stores events; after it,
 * with the batch committed (ids lo..hi), own hands the other nodes' events
 * before lo; release once the batch is queued for the loop. l may be NULL.
 */
void pg_listen_hold(struct pg_listen *l);
void pg_listen_own(struct pg_listen *l, struct pg_conn *c, int64_t lo, int64_t hi);
void pg_listen_release(struct pg_listen *l);
/* Loop thread: queues what for the other nodes; -1 when it cannot (malformed, full, stopping). */
int pg_listen_broadcast(struct pg_listen *l, const char *what);
/* Loop thread: whether a completed request is the listener's item, and hands it on (or drops it). */
int pg_listen_is_item(const struct store_req *req);
void pg_listen_deliver(const struct loket_store_host *host, struct store_req *req, int drop);
/* pg_lease.c: the driver table's lease entry (any thread; see loket/store.h). */
enum store_result pg_lease(void *impl, const char *name, const char *holder, int64_t ttl_ms,
    int release, char was_r[STORE_LEASE_HOLDER_MAX]);
/* Ends the lease connection (the store's close); a later lease connects again. */
void pg_lease_close(void);

/* pg_conn.c */
/* Connects with conninfo; -1 with *error_r (a sentence without the password) when it cannot. */
int pg_connect(struct pg_conn *c, const char *conninfo, const char *who, const char **error_r);
void pg_disconnect(struct pg_conn *c);
/* Whether the connection still answers (it was not reset under us). */
int pg_alive(struct pg_conn *c);
/*
 * Runs sql (a static string: it is prepared once per connection under a
 * name of its own) with the parameters. Returns the result (PGRES_TUPLES_OK
 * or PGRES_COMMAND_OK) to PQclear, or NULL with c->fault and c->sqlstate
 * set and the server's message logged with the statement's first words.
 */
PGresult *pg_run(struct pg_conn *c, const char *sql, const struct pg_params *p);
/*
 * pg_run for a statement made at run time (a filter's own SQL): unprepared,
 * so no cached statement is ever taken for it; then the parameters cleared.
 */
PGresult *pg_q_once(struct pg_conn *c, const char *sql, struct pg_params *p);
/* Runs sql without parameters, unprepared (BEGIN, COMMIT, DDL); 0 or -1 as pg_run. */
int pg_exec(struct pg_conn *c, const char *sql);

/* pg_run, then the parameters cleared; the result or NULL (c->fault says why). */
PGresult *pg_q(struct pg_conn *c, const char *sql, struct pg_params *p);
/* pg_q for a statement's effect: the rows it changed, or -1. */
int64_t pg_q_exec(struct pg_conn *c, const char *sql, struct pg_params *p);
/* A scope's three parameters (all, departments as JSON or NULL, organisation), in that order. */
void pg_p_scope(struct pg_params *p, json_t *scope);

void pg_params_init(struct pg_params *p);
void pg_params_clear(struct pg_params *p);
/* Each adds the next parameter ($1, $2, ...); NULL or a missing key binds NULL. */
void pg_p_text(struct pg_params *p, const char *s);
void pg_p_int(struct pg_params *p, int64_t v);
void pg_p_null(struct pg_params *p);
void pg_p_bool(struct pg_params *p, int b);
void pg_p_jtext(struct pg_params *p, json_t *obj, const char *key);
/* An integer member, or NULL when it is missing or not an integer. */
void pg_p_jint(struct pg_params *p, json_t *obj, const char *key);
/* A JSON value as its text (for jsonb); NULL v binds fallback ("[]", "{}") or NULL. */
void pg_p_json(struct pg_params *p, json_t *v, const char *fallback);

/* Columns: NULL becomes JSON null. */
json_t *pg_col_text(const PGresult *r, int row, int col);
json_t *pg_col_int(const PGresult *r, int row, int col);
json_t *pg_col_bool(const PGresult *r, int row, int col);
/* A json/jsonb column parsed. */
json_t *pg_col_json(const PGresult *r, int row, int col);
int64_t pg_int(const PGresult *r, int row, int col);
int pg_isnull(const PGresult *r, int row, int col);
const char *pg_str(const PGresult *r, int row, int col); /* NULL for SQL NULL */

/* jansson's string member, or NULL. */
const char *pg_jstr(json_t *obj, const char *key);

/* pg_users.c: staff users, sessions, failed sign-ins; as pg_write_run and pg_read_run. */
int pg_users_write(struct pg_conn *c, struct store_req *req);
void pg_users_read(struct pg_conn *c, struct store_req *req);

/* pg_schema.c */
extern const char *const pg_migrations[];
extern const int pg_schema_version;
/*
 * Brings the register to pg_schema_version in one transaction, under an
 * advisory lock so that nodes starting together migrate once. -1 with
 * *error_r when it cannot (a newer register than this loketd knows, a
 * failed step: the register is left as it was).
 */
int pg_migrate(struct pg_conn *c, const char **error_r);

#endif
