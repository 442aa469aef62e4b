/*
 * store.h: the core's side of the register's storage: open, submit, close.
 *
 * The driver contract (request kinds, results, the driver table, the host
 * table) is public, in include/loket/store.h, so that a driver can be built
 * outside the tree; docs/storage.md states every request kind. A request
 * carries a JSON document in and gets one out; writes complete on the loop
 * only once durable; reads may complete before store_submit returns.
 */
#ifndef LOKET_STORE_H
#define LOKET_STORE_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

#include "loket/plugin.h"
#include "loket/store.h"

struct conf;
struct event_base;
struct metrics;
struct store_lease;

/*
 * The core's side of an open register. The host table comes first so that
 * the host functions find the store from the table the driver passes back.
 */
struct store {
	struct loket_store_host host;
	const struct store_driver *driver;
	void *impl;   /* the driver's, from its open */
	void *dl;     /* a loaded driver's dlopen handle; NULL for the built-in one */
	int dl_fd;    /* its checked file, open while loaded; -1 when none */
	json_t *settings;     /* [storage] as text, copied at open: host.conf_get */
	json_t *settings_int; /* its numeric keys, parsed: host.conf_int */
	char *data_dir; /* the config's, copied at open */
	struct event_base *base;
	struct metrics *metrics;
	/*
	 * Called for every completed request first: turns what the driver
	 * returned (the storage shape) into what callers see (contact_view_req
	 * in the register). On the loop, or for a read on the driver's thread
	 * (store_req_view): for a read it must touch nothing but the request.
	 */
	void (*view_hook)(struct store_req *req, void *arg);
	void *view_arg;
	/*
	 * Called on the loop for every completed write, stored or not, after view_hook and before
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
	/*
	 * Called on the loop with events other nodes stored (host->remote_events),
	 * in id order: the register publishes them from here.
	 */
	void (*remote_hook)(const struct store_event *evs, size_t n, void *arg);
	void *remote_arg;
	/* Called on the loop when another node broadcast what ("reload"): the daemon's. */
	void (*control_hook)(const char *what, void *arg);
	void *control_arg;
	/*
	 * This process in the register's leases: the node's name ([storage]
	 * node, else the host name) and the pid, so that two daemons given
	 * the same node name by mistake still never both hold one lease.
	 */
	char holder[STORE_LEASE_HOLDER_MAX];
	pthread_mutex_t lease_mu; /* guards leases */
	struct store_lease *leases; /* the ones this process holds, for the log and close */
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
 * conf names, read-only (loketctl rules replay). -1 with *error_r when it
 * cannot be read.
 */
int store_replay(const struct conf *conf, int64_t since_ms, int (*cb)(json_t *contact, void *arg),
    void *arg, const char **error_r);
/*
 * Finds the driver conf names without opening the register (loketd -t):
 * the built-in one, or plugin_dir/store_NAME.so, loaded, its ABI checked,
 * and unloaded. -1 with *error_r naming the file and what is wrong.
 */
int store_check(const struct conf *conf, const char **error_r);
/*
 * A register to copy from or into (loketctl migrate): driver found as
 * loketd finds it (built in, or in conf's plugin_dir), with [storage] path
 * (sqlite) or conninfo (any other driver) set to where and its blobs under
 * data_dir. Never opened: only the copy entries below run on it, each
 * connecting by itself. Free it with store_copy_free.
 */
int store_copy_prepare(const struct conf *conf, const char *driver, const char *where,
    const char *data_dir, struct store **store_r, const char **error_r);
void store_copy_free(struct store *s);
/*
 * The driver's copy entries (include/loket/store.h, minor version 1): every
 * row of the register in the neutral shape, table by table (load non-NULL:
 * what that load wrote, inside its transaction); a load into an empty
 * register in one transaction, committed or rolled back by load_end.
 * -1 with *error_r, a sentence, when the driver cannot or failed.
 */
int store_copy_dump(struct store *s, void *load,
    int (*cb)(const char *table, int64_t total, json_t *row, void *arg), void *arg,
    const char **error_r);
int store_copy_load_begin(struct store *s, void **load_r, const char **error_r);
int store_copy_load_rows(struct store *s, void *load, const char *table, json_t *rows,
    const char **error_r);
int store_copy_load_end(struct store *s, void *load, int commit, const char **error_r);
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
/*
 * The bytes of the blob sha256_hex in *data_r (free() them) and *len_r;
 * s as for store_blob_put. STORE_NOT_FOUND: no such blob. Thread-safe.
 */
enum store_result store_blob_get(struct store *s, const char *sha256_hex, void **data_r,
    size_t *len_r);
/*
 * Tells the other nodes sharing the register what ("reload"); they hear it
 * through their control_hook, this node does not. 0 when sent or queued (or
 * when the driver's register has one node: nothing to tell), -1 when not.
 */
int store_broadcast(struct store *s, const char *what);
/*
 * Takes or renews the lease name (a plugin's, prefixed with its name) for
 * this process, for ttl_ms from now (0: [storage] lease), or with release
 * gives it up; s as for store_blob_put. STORE_OK: held, for *ttl_r ms
 * (may be NULL) from now; anything else: not held (CONFLICT: another node
 * holds it; UNAVAILABLE: the register cannot be asked, or is closed). The
 * log says when a lease is taken, taken over from another node, lost or
 * released; store_close releases every lease still held. Thread-safe.
 */
enum store_result store_lease(struct store *s, const char *name, int64_t ttl_ms, int release,
    int64_t *ttl_r);
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
/* req->core_flags */
enum {
	/* view_hook has run (on the driver's thread: store_req_view). */
	STORE_REQ_VIEWED = 1u << 0,
	/*
	 * The caller sends a list read's items as they are: the view also
	 * writes them as text (out's "items_json", "items" dropped), off the loop.
	 */
	STORE_REQ_TEXT = 1u << 1,
};
/*
 * view_hook for a finished read, on the thread that read it (the host
 * table's req_view); store_req_complete then skips it. Writes are left to
 * store_req_complete: their view may touch what only the loop may.
 */
void store_req_view(struct store_req *req);
/* The durable name of an event kind ("contact.created"), or NULL for one never stored. */
const char *store_event_name(enum loket_event_kind kind);
/*
 * Records an event of the write req in the driver's list (the driver has
 * stored it with the id given). Returns -1 without memory.
 */
int store_req_event(struct store_req *req, const struct store_event *ev);

/*
 * Whether scope (the "scope" document of a read: all, departments,
 * organisation) may see a contact of department (NULL: none) and
 * organisation, confidential or not.
 */
int store_scope_allows(json_t *scope, const char *department, const char *organisation,
    int confidential);

/*
 * Adds "scope": {department, organisation, confidential} (the contact's,
 * as the write left it) to an event's payload text, so that a subscriber
 * filtering by scope (the event stream) needs no read of the register.
 * Names too long to fit leave {"scope": {"confidential": true}}, which only
 * a scope that sees everything passes.
 */
void store_event_scope_add(char payload[STORE_EVENT_PAYLOAD], const char *department,
    const char *organisation, int confidential);

/* store_sqlite.c */
extern const struct store_driver store_sqlite_driver;

#endif
