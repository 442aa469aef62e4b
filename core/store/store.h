/*
 * store.h: the register's storage interface: requests in, completions on the loop.
 *
 * One vtable per driver, one file each (store_sqlite.c is built in). A
 * request carries a JSON document in and gets one out; writes are queued
 * to the driver's writer and complete on the loop only after the
 * transaction holding them is durable (group commit); reads may complete
 * before store_submit returns.
 */
#ifndef LOKET_STORE_H
#define LOKET_STORE_H

#include <jansson.h>
#include <stdint.h>

#include "loket/plugin.h"

struct conf;
struct event_base;
struct metrics;
struct store;

enum store_op {
	/* writes */
	STORE_CONTACT_CREATE,
	STORE_CONTACT_UPDATE,
	STORE_TASK_DONE,
	STORE_TOKEN_PUT,
	STORE_TOKEN_REVOKE,
	STORE_AUDIT,
	STORE_TIMER_DONE,
	STORE_MESSAGE_ADD,
	STORE_OUTBOX_DONE,
	STORE_PARTY_UPDATE,
	STORE_PARTY_MERGE,
	/* reads */
	STORE_CONTACT_GET,
	STORE_CONTACT_LIST,
	STORE_PARTY_GET,
	STORE_PARTY_FIND,
	STORE_PARTY_CONTACTS,
	STORE_TASK_LIST,
	STORE_TOKEN_LIST,
	STORE_COUNTS,
	STORE_TIMERS_DUE,
	STORE_TIMERS_NEXT,
	STORE_MESSAGE_LIST,
	STORE_THREAD_FIND,
	STORE_OUTBOX_DUE,
	STORE_OUTBOX_NEXT,
	STORE_EVENTS_AFTER,
	STORE_OP_COUNT,
};

/*
 * A register event a write made, stored in the same transaction as the
 * write (so its id is durable once the write is) and handed back with the
 * completion. payload is the JSON text as stored: ids and statuses only.
 */
#define STORE_EVENT_PAYLOAD 192
struct store_event {
	int64_t id;
	int64_t at;
	enum loket_event_kind kind;
	int64_t contact_id; /* 0: none */
	int64_t task_id;    /* 0: none */
	char payload[STORE_EVENT_PAYLOAD];
};

/*
 * What became of a request, in storage words: the HTTP layer alone turns
 * it into a status (http_api.c api_store_status()).
 */
enum store_result {
	STORE_OK = 0,
	STORE_NOT_FOUND,
	/*
	 * The filter the caller passed excludes it: the driver applies the
	 * filter it is given as data; what filter a role gets is decided above.
	 */
	STORE_FORBIDDEN,
	STORE_CONFLICT,    /* the record's state forbids it; out holds {"status": the current one} */
	STORE_INVALID,     /* the request contradicts what is stored (merge a party with itself) */
	STORE_UNAVAILABLE, /* nothing was stored; retry later */
	STORE_FAILED,      /* the driver failed; the cause is in the log, never in error */
};

struct store_req {
	enum store_op op;
	json_t *in;  /* owned by the request */
	json_t *out; /* set by the driver; owned by the request */
	enum store_result result;
	/* With a result other than STORE_OK: a sentence for a person, never storage error text. */
	char error[256];
	void (*cb)(struct store_req *req, void *arg); /* NULL: nobody waits */
	void *arg;
	uint64_t queued_ns;
	uint64_t commit_ns;   /* how long the commit holding this write took */
	unsigned int batch; /* set on the first request of each batch: its size */
	int commit_rc; /* with batch: 0 when the batch committed, else the driver's error */
	struct store_req *next;
	struct store *store; /* set by store_submit */
	/* Set by the driver on a write that completed: the events it stored, in id order. */
	struct store_event *events;
	size_t nevents;
};

struct store_driver {
	const char *name;
	int (*open)(struct store *s, const struct conf *conf, const char **error_r);
	void (*submit)(struct store *s, struct store_req *req);
	/* Finishes what is queued, then closes. */
	void (*close)(struct store *s);
	/* 0 when the register can commit; -1 with *why_r (a sentence) when it cannot. */
	int (*health)(struct store *s, const char **why_r);
	/*
	 * Every contact received since since_ms, in id order, read-only and
	 * without an open store (beside a running daemon); cb returning -1
	 * stops. -1 with *error_r (allocated) when the register cannot be read.
	 * NULL: the driver cannot replay.
	 */
	int (*replay)(const struct conf *conf, int64_t since_ms,
	    int (*cb)(json_t *contact, void *arg), void *arg, char **error_r);
	/*
	 * Keeps bytes under the name of their SHA-256 (lower-case hex in
	 * sha256_hex), unless the same bytes are kept already; durable on
	 * STORE_OK unless flags has STORE_BLOB_DEFER_SYNC (then blob_sync
	 * makes it durable). Called from any thread, concurrently; logs the
	 * cause of a failure. STORE_UNAVAILABLE: the disk is full.
	 */
	enum store_result (*blob_put)(struct store *s, const void *data, size_t len,
	    unsigned int flags, char sha256_hex[65]);
	/* Makes every blob put with STORE_BLOB_DEFER_SYNC before this call durable. */
	enum store_result (*blob_sync)(struct store *s);
};

#define STORE_BLOB_DEFER_SYNC 0x1

struct store {
	const struct store_driver *driver;
	char *data_dir; /* the config's, copied at open: where a driver keeps its files */
	struct event_base *base;
	struct metrics *metrics;
	void *impl;
	/*
	 * Called on the loop for every completed write, stored or not, before
	 * its callback: the register publishes the write's events from here.
	 * The store knows nobody above it but this pointer.
	 */
	void (*done_hook)(struct store_req *req, void *arg);
	void *done_arg;
	/*
	 * Called once on the loop when the register stopped after an I/O error
	 * (a failed write or fsync): the driver fails every write from then on
	 * and the daemon must stop; the driver has logged the cause.
	 */
	void (*fatal_hook)(void *arg);
	void *fatal_arg;
};

/* store.c */
/* The request kind's name, for the log ("contact.create"). */
const char *store_op_name(enum store_op op);
int store_open(struct event_base *base, struct metrics *metrics, const struct conf *conf,
    struct store **store_r, const char **error_r);
void store_close(struct store *s);
/* 0 when the register can commit; -1 with *why_r (a sentence for /healthz) when it cannot. */
int store_health(struct store *s, const char **why_r);
/*
 * Every contact received since since_ms, in id order, from the register
 * conf names, read-only (loketctl rules replay). -1 with *error_r
 * (allocated) when it cannot be read.
 */
int store_replay(const struct conf *conf, int64_t since_ms, int (*cb)(json_t *contact, void *arg),
    void *arg, char **error_r);
/*
 * Keeps bytes as a blob named by their SHA-256 (staff attachments, mail
 * intake, plugins). s NULL: the register this process opened last and has
 * not closed, so that a plugin's thread may call this until store_close
 * (which waits for the puts under way; later ones get STORE_UNAVAILABLE).
 * Thread-safe. Durable on STORE_OK unless flags has STORE_BLOB_DEFER_SYNC.
 */
enum store_result store_blob_put(struct store *s, const void *data, size_t len,
    unsigned int flags, char sha256_hex[65]);
/* Makes the blobs put with STORE_BLOB_DEFER_SYNC so far durable; s as for store_blob_put. */
enum store_result store_blob_sync(struct store *s);
/* Takes over req; req->cb runs on the loop, then the request is freed. */
void store_submit(struct store *s, struct store_req *req);
/* Takes over in. */
struct store_req *store_req_new(enum store_op op, json_t *in,
    void (*cb)(struct store_req *req, void *arg), void *arg);
void store_req_free(struct store_req *req);
int store_op_is_write(enum store_op op);
/*
 * Fails req with result and a sentence for a person (it may reach a client:
 * a driver logs its own error text and passes a fixed sentence here).
 */
void store_req_fail(struct store_req *req, enum store_result result, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Runs a completed request's callback and frees it. */
void store_req_complete(struct store_req *req);
/* The durable name of an event kind ("contact.created"), or NULL for one never stored. */
const char *store_event_name(enum loket_event_kind kind);
/*
 * Records an event of the write req in the driver's list (the driver has
 * stored it with the id given). Returns -1 without memory.
 */
int store_req_event(struct store_req *req, const struct store_event *ev);

/* store_sqlite.c */
extern const struct store_driver store_sqlite_driver;

#endif
