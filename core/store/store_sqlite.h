/* store_sqlite.h: what the SQLite driver's files share, grouped by the defining file. */
#ifndef LOKET_STORE_SQLITE_H
#define LOKET_STORE_SQLITE_H

#include <jansson.h>
#include <sqlite3.h>

#include "store.h"

#define SQ_STMT_CACHE 128

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
	/* The request sq_op_run is running: where sq_event puts the events it stores. */
	struct store_req *req;
};

/* store_sqlite.c */
sqlite3_stmt *sq_stmt(struct sq_conn *c, const char *sql);
int sq_exec(struct sq_conn *c, const char *sql);

/* store_sqlite_ops.c: one function per request kind; they report errors in req. */
void sq_op_run(struct sq_conn *c, struct store_req *req);

/* store_sqlite_blobs.c: files by SHA-256 under data_dir/attachments; thread-safe. */
enum store_result sq_blob_put(
    const char *data_dir, const void *data, size_t len, unsigned int flags, char sha256_hex[65]);
enum store_result sq_blob_sync(const char *data_dir);
enum store_result sq_blob_get(
    const char *data_dir, const char *sha256_hex, void **data_r, size_t *len_r);

/* store_sqlite_replay.c: the driver's replay: read-only, beside a live loketd (WAL). */
int sq_replay(const struct loket_store_host *host, int64_t since_ms,
    int (*cb)(json_t *contact, void *arg), void *arg, const char **error_r);

/* store_sqlite_copy.c: the driver's dump (loketctl migrate): read-only, one snapshot. */
int sq_dump(const struct loket_store_host *host, void *load,
    int (*cb)(const char *table, int64_t total, json_t *row, void *arg), void *arg,
    const char **error_r);

/* store_sqlite_schema.c */
extern const char *const sq_migrations[];
extern const int sq_schema_version;

/* store_sqlite_rows.c: what the request files share. */
struct sq_contact_state {
	char status[16];
	char department[128];
	char organisation[128];
	char channel[32];
	int has_department;
	int confidential;
};

const char *sq_jstr(json_t *obj, const char *key);
void sq_bind_text(sqlite3_stmt *st, int i, const char *v);
void sq_bind_json_text(sqlite3_stmt *st, int i, json_t *obj, const char *key);
void sq_bind_json_int(sqlite3_stmt *st, int i, json_t *obj, const char *key);
void sq_bind_dump(sqlite3_stmt *st, int i, json_t *v, const char *fallback);
json_t *sq_col_text(sqlite3_stmt *st, int i);
json_t *sq_col_time(sqlite3_stmt *st, int i);
json_t *sq_col_json(sqlite3_stmt *st, int i);
/* A column holding ms since the epoch, or NULL. */
json_t *sq_col_ms(sqlite3_stmt *st, int i);
int sq_step_error(struct sq_conn *c, struct store_req *req, int rc);
/* The columns sq_contact_row reads, on contacts c LEFT JOIN parties p. */
#define SQ_CONTACT_COLS                                                                            \
	"c.id, c.reference, c.channel, c.direction, c.received_at, c.handled_at, c.updated_at,   \
	c.party_id, c.subject, c.body, c.answer, c.product, c.department, c.organisation, c.line, \
	c.status, c.priority, c.tags, c.language, c.confidential, c.location, c.meta,            \
	c.created_by, p.name, c.assignee, c.reply_to, c.party_conflict "
/* The columns sq_task_row reads, on tasks t JOIN contacts c. */
#define SQ_TASK_COLS                                                                               \
	"t.id, t.contact_id, c.reference, t.department, t.assignee, t.reason, t.due_at, t.status, \
	t.created_at, t.created_by, t.done_at, t.done_by "
/* A contact in the storage shape (docs/storage.md), from SQ_CONTACT_COLS. */
json_t *sq_contact_row(sqlite3_stmt *st);
/* A task in the storage shape, from SQ_TASK_COLS. */
json_t *sq_task_row(sqlite3_stmt *st);
/* The contact in the storage shape; with details, its history and tasks too. */
json_t *sq_contact_load(struct sq_conn *c, sqlite3_int64 id, int details);
int sq_history_add(struct sq_conn *c, sqlite3_int64 contact_id, sqlite3_int64 at, const char *actor,
    const char *action, const char *from, const char *to, const char *detail);
int sq_counts_add(struct sq_conn *c, const char *channel, const char *status, int delta);
/*
 * The one door to a contact a request names by id: reads its state into
 * *cs and applies the request's scope (in.scope) and, when given, the
 * caller's condition expect (a filter of the same shape) to it. -1 with req
 * answered: NOT_FOUND, FORBIDDEN with the sentence forbidden for the scope,
 * FORBIDDEN with out {department, organisation, confidential} for expect.
 */
int sq_contact_open(struct sq_conn *c, struct store_req *req, sqlite3_int64 id, json_t *expect,
    const char *forbidden, struct sq_contact_state *cs);
/* Binds a token's scope as three parameters from first: all, departments (JSON or NULL),
 * organisation. */
void sq_bind_scope(sqlite3_stmt *st, int first, json_t *scope);
/* The SQL condition of a scope bound by sq_bind_scope, on contacts aliased c. */
#define SQ_SCOPE_SQL(n_all, n_deps, n_org)                                                         \
	" AND (?" #n_all " OR ((?" #n_deps " IS NULL OR c.department IN (SELECT value FROM"        \
	" json_each(?" #n_deps "))) AND (c.confidential = 0 OR c.organisation = ?" #n_org ")))"
/*
 * Stores a register event of the running request (c->req) in the events
 * table and adds it to the request's list. payload_fmt builds the JSON
 * object text (ids and statuses only; strings through sq_event_str).
 */
int sq_event(struct sq_conn *c, enum loket_event_kind kind, sqlite3_int64 at,
    sqlite3_int64 contact_id, sqlite3_int64 task_id, const char *payload_fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* s as the inside of a JSON string (quotes, backslashes, controls escaped), into buf. */
const char *sq_event_str(char *buf, size_t len, const char *s);
/* A contact's event: its status, where it came from, the status before (or NULL) and why. */
int sq_contact_event(struct sq_conn *c, enum loket_event_kind kind, sqlite3_int64 at,
    sqlite3_int64 contact_id, const char *status, const char *previous, const char *channel,
    const char *cause);
/* A task's event: its department. */
int sq_task_event(struct sq_conn *c, enum loket_event_kind kind, sqlite3_int64 at,
    sqlite3_int64 contact_id, sqlite3_int64 task_id, const char *department);
/* Answers {key: the single value sql selects (the earliest pending time), or null}. */
void sq_min_pending(struct sq_conn *c, struct store_req *req, const char *sql, const char *key);

/* store_sqlite_write.c: contacts and their tasks. */
void sq_op_contact_create(struct sq_conn *c, struct store_req *req);
void sq_op_contact_update(struct sq_conn *c, struct store_req *req);
void sq_op_task_done(struct sq_conn *c, struct store_req *req);
/* Writes the batch's reference counter; called before COMMIT. */
int sq_refseq_flush(struct sq_conn *c);

/* store_sqlite_timers.c */
/* A timer of contact_id (and task_id, or 0); *next_r becomes due_at when it is earlier (or 0). */
int sq_timer_add(struct sq_conn *c, sqlite3_int64 contact_id, sqlite3_int64 task_id,
    const char *kind, sqlite3_int64 due_at, json_t *payload, const char *rule, sqlite3_int64 now,
    sqlite3_int64 *next_r);
int sq_timer_done(struct sq_conn *c, sqlite3_int64 timer_id, sqlite3_int64 now, int acted);
int sq_timer_still_pending(struct sq_conn *c, struct store_req *req, sqlite3_int64 timer_id);
void sq_op_timer_done(struct sq_conn *c, struct store_req *req);
void sq_op_timers_due(struct sq_conn *c, struct store_req *req);
void sq_op_timers_next(struct sq_conn *c, struct store_req *req);

/* store_sqlite_parties.c: the live party id when scope may see it, else NULL (search). */
json_t *sq_party_if_visible(struct sq_conn *c, sqlite3_int64 id, json_t *scope);

/* store_sqlite_search.c: STORE_SEARCH. */
void sq_op_search(struct sq_conn *c, struct store_req *req);
/* Puts what the index's triggers queued during a batch into the index; called before COMMIT. */
int sq_search_flush(struct sq_conn *c);

/* store_sqlite_tokens.c */
void sq_op_token_put(struct sq_conn *c, struct store_req *req);
void sq_op_token_revoke(struct sq_conn *c, struct store_req *req);
void sq_op_token_list(struct sq_conn *c, struct store_req *req);
void sq_op_audit(struct sq_conn *c, struct store_req *req);
void sq_op_audit_list(struct sq_conn *c, struct store_req *req);

/* store_sqlite_users.c */
void sq_op_user_add(struct sq_conn *c, struct store_req *req);
void sq_op_user_update(struct sq_conn *c, struct store_req *req);
void sq_op_user_list(struct sq_conn *c, struct store_req *req);
void sq_op_signin_get(struct sq_conn *c, struct store_req *req);
void sq_op_signin_fail(struct sq_conn *c, struct store_req *req);
void sq_op_session_put(struct sq_conn *c, struct store_req *req);
void sq_op_session_get(struct sq_conn *c, struct store_req *req);
void sq_op_session_touch(struct sq_conn *c, struct store_req *req);
void sq_op_session_end(struct sq_conn *c, struct store_req *req);

/* store_sqlite_read.c */
void sq_op_contact_get(struct sq_conn *c, struct store_req *req);
void sq_op_contact_list(struct sq_conn *c, struct store_req *req);
void sq_op_party_contacts(struct sq_conn *c, struct store_req *req);
void sq_op_task_list(struct sq_conn *c, struct store_req *req);
void sq_op_counts(struct sq_conn *c, struct store_req *req);
void sq_op_events_after(struct sq_conn *c, struct store_req *req);
void sq_op_contact_status(struct sq_conn *c, struct store_req *req);

/* store_sqlite_parties.c: parties: matching at intake, reads, staff changes and merges. */
/*
 * The party of a new contact (*id_r, 0 when it names no identifier) and, when
 * its identifiers disagree with the register, what disagreed (*conflict_r, a
 * JSON text of identifier kinds and party ids, owned by the caller).
 */
int sq_party_match(
    struct sq_conn *c, json_t *party, sqlite3_int64 now, sqlite3_int64 *id_r, char **conflict_r);
/* Sets parties.confidential: whether every contact of the party is confidential. */
int sq_party_confidential_refresh(struct sq_conn *c, sqlite3_int64 party_id);
/* What matching, merging and visibility need of a party's row. */
struct sq_party_row {
	sqlite3_int64 id;
	sqlite3_int64 created_at;
	sqlite3_int64 merged_into;
	int confidential;
	char rrn[32];
	char bsn[32];
	int has_rrn, has_bsn;
};
/* A live party scope may see, read into *p; or req answered (404, 403) and -1. */
int sq_party_open(struct sq_conn *c, struct store_req *req, sqlite3_int64 id, json_t *scope,
    struct sq_party_row *p);
void sq_op_party_get(struct sq_conn *c, struct store_req *req);
void sq_op_party_find(struct sq_conn *c, struct store_req *req);
void sq_op_party_update(struct sq_conn *c, struct store_req *req);
void sq_op_party_merge(struct sq_conn *c, struct store_req *req);
/* 1 when party id is live and scope may see it (as a lookup decides), else 0. */
int sq_party_visible(struct sq_conn *c, sqlite3_int64 id, json_t *scope);
/* The party as the API shows it, or NULL. */
json_t *sq_party_load(struct sq_conn *c, sqlite3_int64 id);

/* store_sqlite_workflow.c: a task by id, a party's probable duplicates. */
void sq_op_task_get(struct sq_conn *c, struct store_req *req);
void sq_op_party_duplicates(struct sq_conn *c, struct store_req *req);

/* store_sqlite_msgs.c: messages on contacts, dedup keys, the outbox. */
/* Whether one of keys already names a contact: its id, 0 when none, -1 on error. */
sqlite3_int64 sq_keys_find(struct sq_conn *c, json_t *keys);
int sq_keys_add(struct sq_conn *c, json_t *keys, sqlite3_int64 contact_id);
/* Writes in's "message" (if any) on contact id; *msg_r gets the row id. */
int sq_message_insert(struct sq_conn *c, sqlite3_int64 contact_id, json_t *msg, const char *channel,
    sqlite3_int64 now, const char *actor, sqlite3_int64 *msg_r);
/* op_contact_create's part: 1 when a key was seen (req answered), 0 to go on. */
int sq_create_duplicate(struct sq_conn *c, struct store_req *req);
/* The created contact's first message and its keys. */
int sq_create_message(struct sq_conn *c, sqlite3_int64 id, json_t *in, sqlite3_int64 now);
/* The replies in in's "outbox" (rules' decisions, a staff message), due now. */
int sq_outbox_rows(
    struct sq_conn *c, sqlite3_int64 id, json_t *in, sqlite3_int64 now, const char *channel);
void sq_op_message_add(struct sq_conn *c, struct store_req *req);
void sq_op_message_list(struct sq_conn *c, struct store_req *req);
void sq_op_thread_find(struct sq_conn *c, struct store_req *req);
void sq_op_outbox_due(struct sq_conn *c, struct store_req *req);
void sq_op_outbox_next(struct sq_conn *c, struct store_req *req);
void sq_op_outbox_done(struct sq_conn *c, struct store_req *req);

#endif
