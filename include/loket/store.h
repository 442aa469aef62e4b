/*
 * The loket storage driver ABI: the one public header a storage driver
 * compiles against (with loket/plugin.h, which it includes, libevent and
 * jansson). docs/storage.md states what every request kind carries in and
 * out; this header states the types.
 *
 * A driver is either built in (sqlite) or a shared object
 * plugin_dir/store_NAME.so, loaded for `[storage] driver = NAME`, which
 * exports one symbol, LOKET_STORE_DRIVER_SYMBOL: a const struct
 * store_driver stamped with the LOKET_STORE_ABI version it was built for.
 * The core refuses a driver built for another major version or for a newer
 * minor version. At open the core hands the driver a table of its own
 * functions, struct loket_store_host, whose first member is its size: the
 * table only ever grows at its end (a minor version), so a driver tests for
 * a newer entry with LOKET_STORE_HOST_HAS().
 *
 * Threads: open, submit, close and health are called on the loop thread;
 * blob_put, blob_sync, blob_get and lease from any thread, concurrently; replay
 * from a process of its own (loketctl). A completion (host->req_complete)
 * runs on the loop thread only: a driver that works on threads of its own
 * hands finished requests back with an event on host->base.
 */
#ifndef LOKET_STORE_ABI_H
#define LOKET_STORE_ABI_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "loket/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LOKET_STORE_ABI_MAJOR 1
#define LOKET_STORE_ABI_MINOR 4

/* The symbol a driver .so exports: const struct store_driver loket_store_driver. */
#define LOKET_STORE_DRIVER_SYMBOL "loket_store_driver"

struct event_base;
/* Opaque to a driver: a metric series the core keeps. */
struct loket_store_metric;

/*
 * Request kinds. The values are ABI: a new kind is added at the end (minor
 * version), never in the middle. Writes and reads are told apart by
 * host->op_is_write, not by the order here.
 */
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
	/* reads (minor 2): a task by id; a party's probable duplicates */
	STORE_TASK_GET,
	STORE_PARTY_DUPLICATES,
	/* Staff users, their sessions and failed sign-ins (docs/storage.md, "Users and sessions"). */
	STORE_USER_ADD,        /* write */
	STORE_USER_UPDATE,     /* write */
	STORE_USER_LIST,       /* read */
	STORE_SIGNIN_GET,      /* read */
	STORE_SIGNIN_FAIL,     /* write */
	STORE_SESSION_PUT,     /* write */
	STORE_SESSION_GET,     /* read */
	STORE_SESSION_TOUCH,   /* write */
	STORE_SESSION_END,     /* write */
	/* Search over contacts and parties (docs/storage.md, "Search"). */
	STORE_SEARCH,
	/* read (minor 3): what a citizen may know of one contact (docs/storage.md) */
	STORE_CONTACT_STATUS,
	/* read (minor 4): the audit trail, filtered, newest first (docs/storage.md) */
	STORE_AUDIT_LIST,
	STORE_OP_COUNT,
};

/* How many of a contact's last staff messages STORE_CONTACT_STATUS answers. */
#define STORE_STATUS_REPLIES 20
#define STORE_STATUS_REPLIES_STR "20"

/*
 * What became of a request, in storage words: the core alone turns it into
 * an HTTP status. The values are ABI.
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

/*
 * A register event a write made, stored in the same transaction as the
 * write (so its id is durable once the write is) and handed back with the
 * completion through host->req_event. payload is the JSON object text as
 * stored: ids and statuses only, never personal data.
 */
#define STORE_EVENT_PAYLOAD 192
struct store_event {
	int64_t id;         /* only increases, also across restarts */
	int64_t at;         /* ms since the epoch */
	enum loket_event_kind kind;
	int64_t contact_id; /* 0: none */
	int64_t task_id;    /* 0: none */
	char payload[STORE_EVENT_PAYLOAD];
};

/*
 * One request. The core allocates and frees it; the driver reads op and in,
 * sets out (or fails it through host->req_fail), records the events a write
 * stored (host->req_event) and completes it once (host->req_complete).
 */
struct store_req {
	enum store_op op;
	json_t *in;  /* owned by the request; the driver must not change it */
	json_t *out; /* set by the driver; owned by the request */
	enum store_result result;
	/* With a result other than STORE_OK: a sentence for a person, never storage error text. */
	char error[256];
	void (*cb)(struct store_req *req, void *arg); /* the core's; a driver never calls it */
	void *arg;
	uint64_t queued_ns;
	/* Set by a driver that batches writes, on the first request of a batch (metrics). */
	uint64_t commit_ns;   /* how long the commit holding this write took */
	unsigned int batch;   /* the batch's size */
	int commit_rc;        /* 0 when the batch committed, else the driver's error code */
	struct store_req *next; /* free for the driver's queues while it holds the request */
	struct store *store;    /* the core's */
	/* Set through host->req_event on a write that completed: its events, in id order. */
	struct store_event *events;
	size_t nevents;
	/* Minor 2: the core's; a driver leaves it alone. */
	unsigned int core_flags;
};

/* The longest lease holder's name a driver hands back, with its NUL. */
#define STORE_LEASE_HOLDER_MAX 256

/* Blob flags. */
#define STORE_BLOB_DEFER_SYNC 0x1

enum loket_store_metric_type {
	LOKET_STORE_METRIC_COUNTER,
	LOKET_STORE_METRIC_GAUGE,
	LOKET_STORE_METRIC_HISTOGRAM,
};

/*
 * What the core hands a driver at open (and at replay, without a loop).
 * Borrowed: valid until close returns (replay: until replay returns).
 */
struct loket_store_host {
	size_t size; /* sizeof the table as the core built it */
	unsigned int abi_major, abi_minor; /* the core's LOKET_STORE_ABI */
	struct event_base *base; /* the loop; NULL in replay */
	const char *data_dir;    /* [loketd] data_dir: where a driver may keep files */

	/*
	 * A [storage] key's value as written, or its default ("" when it has
	 * none): driver, path (the SQLite file, data_dir/loket.db by default),
	 * conninfo, durability (full, relaxed), readers, pool, lease, ... The
	 * core has checked every value's type already.
	 */
	const char *(*conf_get)(const struct loket_store_host *host, const char *key);
	/*
	 * A numeric [storage] key, parsed: counts as they are (readers, pool),
	 * durations in milliseconds (lease). -1 for a key that is not numeric.
	 */
	int64_t (*conf_int)(const struct loket_store_host *host, const char *key);

	/* Logs under subsystem ("store"); any thread. Never personal data. */
	void (*log)(enum loket_log_level level, const char *subsystem, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

	/*
	 * Fails req with result and a sentence for a person (it may reach a
	 * client: log the driver's own error text, pass a fixed sentence here).
	 * Drops req->out and the events recorded so far. Any thread.
	 */
	void (*req_fail)(struct store_req *req, enum store_result result, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
	/* Records an event the write req stored, with its id. -1 without memory. Any thread. */
	int (*req_event)(struct store_req *req, const struct store_event *ev);
	/*
	 * Hands a finished request back: the register publishes its events,
	 * its caller's callback runs, the request is freed. Loop thread only;
	 * once per request.
	 */
	void (*req_complete)(struct store_req *req);
	/*
	 * The register stopped after an I/O error that may have lost a commit:
	 * the driver fails every write from then on and the daemon stops.
	 * Loop thread; once.
	 */
	void (*fatal)(const struct loket_store_host *host);

	/* Names for the log: "contact.create", "contact.created" (NULL: never stored). */
	const char *(*op_name)(enum store_op op);
	const char *(*event_name)(enum loket_event_kind kind);
	int (*op_is_write)(enum store_op op);

	/*
	 * Metrics (Prometheus, on /metrics); loop thread or open. labels is
	 * the label text without braces, or "". For a histogram, bounds
	 * (ascending, borrowed for the store's lifetime); NULL for the
	 * latency bounds every loket histogram of seconds uses.
	 */
	struct loket_store_metric *(*metric)(const struct loket_store_host *host,
	    enum loket_store_metric_type type, const char *name, const char *help,
	    const char *labels, const double *bounds, size_t nbounds);
	void (*metric_add)(struct loket_store_metric *m, double v);
	void (*metric_observe)(struct loket_store_metric *m, double v);
	/* A gauge fn computes when /metrics is read (on the loop). */
	int (*metric_gauge_fn)(const struct loket_store_host *host, const char *name,
	    const char *help, double (*fn)(void *arg), void *arg);

	/* Minor 1: several nodes sharing one register (docs/storage.md, "Several nodes"). */
	/*
	 * Events another node stored, read back from the register, in id order
	 * and each once: the register publishes them to the subscribers that
	 * take every node's events. A driver hands only events this node did
	 * not record through req_event, and never one twice. Loop thread only.
	 */
	void (*remote_events)(const struct loket_store_host *host, const struct store_event *evs,
	    size_t n);
	/*
	 * Another node broadcast what (driver->broadcast): "reload" makes this
	 * node reload its own files. Loop thread only.
	 */
	void (*remote_control)(const struct loket_store_host *host, const char *what);

	/* Minor 2. */
	/*
	 * Makes what the core makes of a finished read (the API's view of its
	 * rows, and for a list the text a caller sends as it is) on the
	 * driver's thread, so the loop does not spend its time on it. Call it
	 * after the read succeeded or failed and before handing the request to
	 * the loop; a driver that does not leaves it to req_complete. Reads
	 * only (a write is left alone). Any thread; once per request.
	 */
	void (*req_view)(struct store_req *req);
	/*
	 * Adds "scope": {department, organisation, confidential} (the event's
	 * contact as the write left it) to an event's payload text before the
	 * driver stores it: what the event stream checks a reader against
	 * without a read. Names too long to fit leave {"scope":
	 * {"confidential": true}}, which only a scope that sees everything
	 * passes. Any thread.
	 */
	void (*event_scope_add)(char payload[STORE_EVENT_PAYLOAD], const char *department,
	    const char *organisation, int confidential);
};

/* Whether the core's host table has entry (a driver built for a newer minor version). */
#define LOKET_STORE_HOST_HAS(host, entry)                                              \
	((host)->size >= offsetof(struct loket_store_host, entry) + sizeof((host)->entry))

/*
 * The driver's table. impl is what open set in *impl_r: the driver's own
 * state, passed back on every call.
 */
struct store_driver {
	unsigned int abi_major; /* LOKET_STORE_ABI_MAJOR */
	unsigned int abi_minor; /* LOKET_STORE_ABI_MINOR */
	const char *name;
	/*
	 * Opens the register: connects, runs every pending migration in one
	 * transaction, starts what the driver runs on. -1 with *error_r, a
	 * sentence the core logs and loketd exits on (the driver's, static
	 * or thread-local: the core does not free it).
	 */
	int (*open)(const struct loket_store_host *host, void **impl_r, const char **error_r);
	/* Takes over req (docs/storage.md); completes it once, through host->req_complete. */
	void (*submit)(void *impl, struct store_req *req);
	/* Finishes what is queued (each write completes, stored or failed), then closes. */
	void (*close)(void *impl);
	/* 0 when the register can commit; -1 with *why_r (a sentence) when it cannot. */
	int (*health)(void *impl, const char **why_r);
	/*
	 * Every contact received since since_ms, in id order, read-only and
	 * without an open store (beside a running daemon); cb returning -1
	 * stops. -1 with *error_r when the register cannot be read. NULL: the
	 * driver cannot replay.
	 */
	int (*replay)(const struct loket_store_host *host, int64_t since_ms,
	    int (*cb)(json_t *contact, void *arg), void *arg, const char **error_r);
	/*
	 * Keeps bytes under the name of their SHA-256 (lower-case hex, written
	 * to sha256_hex), unless the same bytes are kept already; durable on
	 * STORE_OK unless flags has STORE_BLOB_DEFER_SYNC (then blob_sync makes
	 * it durable). Any thread, concurrently; logs the cause of a failure.
	 * STORE_UNAVAILABLE: no room.
	 */
	enum store_result (*blob_put)(void *impl, const void *data, size_t len, unsigned int flags,
	    char sha256_hex[65]);
	/* Makes every blob put with STORE_BLOB_DEFER_SYNC before this call durable. */
	enum store_result (*blob_sync)(void *impl);
	/*
	 * The bytes kept under sha256_hex, in *data_r (malloc()ed: the caller
	 * free()s it) and *len_r. STORE_NOT_FOUND: no such blob (or not 64
	 * lower-case hex digits). Any thread. Nodes sharing one register keep
	 * blobs in it: the core reads blobs only through here.
	 */
	enum store_result (*blob_get)(void *impl, const char *sha256_hex, void **data_r,
	    size_t *len_r);

	/* Minor 1 (the core reads the entries below only from a driver of minor >= 1). */
	/*
	 * Tells every other node sharing the register what ("reload": 1 to 32
	 * lower-case letters), through host->remote_control there, never here.
	 * Loop thread; never blocks (a driver queues it). 0 when sent or
	 * queued, -1 when it cannot be (out of memory, closing). NULL or a no-op
	 * for a driver whose register has one node.
	 */
	int (*broadcast)(void *impl, const char *what);

	/*
	 * Also minor version 1: copying a whole register (loketctl migrate), without
	 * an open store and with every driver's SQL inside the driver. Rows
	 * travel in a driver-neutral shape (docs/migrate.md): the tables of
	 * LOKET_STORE_COPY_TABLES with their columns by name, times as integer
	 * ms since the epoch, JSON columns as JSON, booleans as booleans, and
	 * blobs as {"sha256": hex, "data": base64}. A driver's own columns
	 * (claims, leases, nodes) are not copied. The core reads these entries
	 * only from a driver whose abi_minor is 1 or more; NULL: not supported.
	 *
	 * dump: every row of every copied table, table by table in the order
	 * of LOKET_STORE_COPY_TABLES, each table's rows in the order of its
	 * key (id; keyless tables by their key, bytewise), all from one
	 * snapshot. Before a table's rows, cb gets row NULL and the table's
	 * row count in total; a row (borrowed) then comes with total -1.
	 * cb returning -1 stops the dump, which then fails. load NULL: the
	 * driver reads the register host names, read-only; a load handle:
	 * what that load has written so far, inside its transaction (the
	 * copy is verified before it commits).
	 */
	int (*dump)(const struct loket_store_host *host, void *load,
	    int (*cb)(const char *table, int64_t total, json_t *row, void *arg), void *arg,
	    const char **error_r);
	/*
	 * Starts filling the register host names: migrates its schema, locks
	 * it against writers and refuses (-1, *error_r a sentence) unless every
	 * copied table is empty. Everything up to load_end is one transaction.
	 */
	int (*load_begin)(const struct loket_store_host *host, void **load_r, const char **error_r);
	/* Adds rows (a JSON array of rows in the neutral shape, borrowed) to table. */
	int (*load_rows)(void *load, const char *table, json_t *rows, const char **error_r);
	/*
	 * commit: sets identities past the copied ids and the reference
	 * counter of every year past its highest reference, then commits;
	 * else rolls everything back. Frees load either way.
	 */
	int (*load_end)(void *load, int commit, const char **error_r);

	/*
	 * Also minor version 1: a named lease on shared work (a mailbox, a PBX link) that several
	 * nodes sharing one register must each leave to one of them. Takes or
	 * renews the lease name for holder, for ttl_ms from now by the
	 * register's clock, when it is free, has run out, or is holder's
	 * already: STORE_OK, holder holds it. STORE_CONFLICT: another holder
	 * does, until its lease runs out. STORE_UNAVAILABLE: the register
	 * cannot be asked now; the caller must act as if it did not hold it.
	 * With release, gives the lease up if holder holds it (STORE_OK either
	 * way). was_r (may be NULL) receives who held it before this call, ""
	 * when nobody did or it is not known; it is cut to
	 * STORE_LEASE_HOLDER_MAX - 1 bytes. Any thread, concurrently.
	 */
	enum store_result (*lease)(void *impl, const char *name, const char *holder,
	    int64_t ttl_ms, int release, char was_r[STORE_LEASE_HOLDER_MAX]);
};

/* Whether the driver's table has entry: d was built for a minor version that has it. */
#define LOKET_STORE_DRIVER_HAS(d, minor, entry) ((d)->abi_minor >= (minor) && (d)->entry != NULL)

/*
 * The tables a register copy carries, in the order dump hands them and a
 * load takes them (parties before their contacts). refseq is
 * the reference counter per year: {"year", "last"}; blobs are attachments
 * and raw mails; users are the staff accounts (their sessions and failed
 * sign-ins are not copied: staff sign in again on the new register).
 */
#define LOKET_STORE_COPY_TABLES                                                        \
	"parties", "party_emails", "party_phones", "contacts", "contact_keys", "tasks",   \
	    "contact_history", "messages", "timers", "outbox", "audit", "tokens", "events", \
	    "counts", "refseq", "blobs", "users"

#ifdef __cplusplus
}
#endif

#endif
