/*
 * The loket plugin ABI: the one public header a channel or storage plugin
 * compiles against.
 *
 * A plugin is a shared object that exports one symbol, LOKET_PLUGIN_SYMBOL,
 * a const struct loket_plugin_info stamped with the ABI version it was built
 * for. The daemon refuses a plugin built for another major version or for a
 * newer minor version. At load time the core hands the plugin a function
 * table, struct loket_api, whose first member is its own size: the table only
 * ever grows at its end, so a plugin built against an older minor version
 * keeps working, and a plugin can test for a newer entry with LOKET_API_HAS().
 *
 * Memory: what the core hands out is borrowed for the duration of the call
 * unless a comment says otherwise; strings a plugin passes in are copied.
 * Every function runs on the daemon's event loop thread and must not block
 * (the blobs of 1.5 and 1.6 and the lease of 1.7 excepted: they may be
 * called from any thread).
 *
 * Config values: the strings config_get returns belong to the core. They
 * stay valid, unchanged, until the plugin's reload hook has returned after
 * a config reload (SIGHUP); then the core frees them. A plugin that keeps a
 * value beyond that, or reads it from a thread of its own, copies it at
 * load and again in reload, and hands its threads the copies (for example
 * an immutable, reference-counted settings struct that reload replaces). A
 * plugin without a reload hook keeps the values it was loaded with: a
 * changed section is logged and applies at the next restart. When reload
 * fails, the core puts the old values back and frees the new ones. The
 * same rule holds for sub-sections (1.4): the names config_sections hands
 * out and the values config_section_get returns.
 */
#ifndef LOKET_PLUGIN_H
#define LOKET_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LOKET_ABI_MAJOR 1
#define LOKET_ABI_MINOR 8

#define LOKET_PLUGIN_SYMBOL "loket_plugin"

struct event_base;

/* Opaque handles; only the core knows their layout. */
struct loket_plugin;     /* one loaded plugin, passed back on every call */
struct loket_http_req;   /* one HTTP request routed to a plugin */
struct loket_timer;      /* a timer armed on the loop */
struct loket_contact;    /* a contact being built by a channel */

enum loket_log_level {
	LOKET_LOG_DEBUG,
	LOKET_LOG_INFO,
	LOKET_LOG_WARN,
	LOKET_LOG_ERROR,
};

enum loket_config_type {
	LOKET_CONFIG_STRING,
	LOKET_CONFIG_INT,      /* signed decimal */
	LOKET_CONFIG_BOOL,     /* yes/no, true/false, on/off, 1/0 */
	LOKET_CONFIG_DURATION, /* "30s", "5m", "2h", "1d"; read back in ms */
	LOKET_CONFIG_SIZE,     /* "512", "64k", "10m"; read back in bytes */
};

/*
 * A key a plugin accepts in its [plugin.NAME] section. The core checks every
 * key in that section against this list before load() and stops the start
 * with file:line on an unknown key or a value of the wrong type.
 */
struct loket_config_key {
	const char *name;
	enum loket_config_type type;
	const char *default_value; /* NULL: the key is required */
	const char *help;
};

/*
 * A kind of repeated sub-section a plugin accepts (1.4): kind "desk" of
 * plugin chan_counter reads [plugin.chan_counter.desk.ID], as many as the
 * config has, each with its own ID (letters, digits, '_' and '-'). Each is
 * checked against keys like the main section, before load() and before a
 * reload is accepted: an unknown kind, an unknown key or a bad value stops
 * the start with file:line. The plugin reads them with config_sections and
 * config_section_get.
 */
struct loket_config_section {
	const char *kind; /* NULL ends the list */
	const struct loket_config_key *keys; /* ends with a { NULL } entry; may be NULL */
	const char *help;
	/* Optional: as the descriptor's check_value, for this kind's keys. */
	const char *(*check_value)(const char *key, const char *value);
};

/*
 * Who calls a route (1.4), borrowed until the request is answered. A
 * bearer token fills it today (kind "token", name = the token's name); a
 * staff session (a browser cookie) will fill the same struct with kind
 * "session" and the staff member's login as name, so a route handler
 * does not care how the caller signed in.
 */
struct loket_caller {
	const char *name; /* the token's name or the staff member's login; no personal data */
	const char *kind; /* "token" or "session" */
	const char *role; /* "agent", "backoffice", "admin" or "intake" */
	/* The only departments whose contacts the caller sees; none: not limited to departments. */
	const char *const *departments;
	size_t n_departments;
	/* The organisation whose confidential contacts the caller sees; NULL: none (admin: all). */
	const char *organisation;
	/* The struct grows only at its end, like struct loket_api. */
};

enum loket_http_method {
	LOKET_HTTP_GET = 1 << 0,
	LOKET_HTTP_POST = 1 << 1,
	LOKET_HTTP_PUT = 1 << 2,
	LOKET_HTTP_PATCH = 1 << 3,
	LOKET_HTTP_DELETE = 1 << 4,
	LOKET_HTTP_HEAD = 1 << 5,
};

/* Who may call a route. Public routes are reachable without a token. */
enum loket_http_access {
	LOKET_ACCESS_PUBLIC,
	LOKET_ACCESS_TOKEN, /* any valid bearer token */
	LOKET_ACCESS_ADMIN,
	LOKET_ACCESS_INTAKE, /* intake or admin tokens */
};

/* The outcome of a contact submit, borrowed for the duration of the callback. */
struct loket_submit_result {
	int status;            /* 0 when the contact is durable, else an HTTP-like code (422, 503, ...) */
	const char *error;     /* a message a person can read, NULL on success */
	int64_t contact_id;
	const char *reference; /* "2026-000123" */
	const char *json;      /* the stored contact as the API shows it */
	/* 1.1 */
	int duplicate; /* a key was seen before: nothing was written; contact_id is the earlier one */
	int threaded;  /* the message went onto the existing contact contact_id (event "reply") */
};

/* What an outbound sender tells the core about one message (ABI 1.1). */
enum loket_send_result {
	LOKET_SEND_OK,     /* handed to the next hop */
	LOKET_SEND_RETRY,  /* may pass later: try again after retry_after_ms */
	LOKET_SEND_FAILED, /* will never pass; the contact's history says why */
};

struct loket_outbound; /* one outbox row being sent; valid until outbound_done */

/*
 * Register events (ABI 1.3). The register publishes one after the write
 * that made it is durable, never before; each carries an id from the
 * register's events table that only ever increases, so a reader that saw
 * id N can ask for what came after N (later, on any node sharing the
 * register). Events a plugin publishes (LOKET_EVENT_PUBLISHED) are not
 * durable: their id is 0, they reach the subscribers that are there at that
 * moment and are never read back. The kinds are bits, so a subscriber asks
 * for several at once.
 */
enum loket_event_kind {
	LOKET_EVENT_CONTACT_CREATED = 1 << 0, /* "contact.created" */
	LOKET_EVENT_CONTACT_CHANGED = 1 << 1, /* "contact.changed": fields, status, history */
	LOKET_EVENT_MESSAGE_ADDED = 1 << 2,   /* "message.added": a reply, a staff message, a sent reply */
	LOKET_EVENT_TASK_CREATED = 1 << 3,    /* "task.created": a hand-over to the second line */
	LOKET_EVENT_TASK_DUE = 1 << 4,        /* "task.due": an open task passed its due time */
	LOKET_EVENT_TASK_DONE = 1 << 5,       /* "task.done" */
	LOKET_EVENT_TIMER_FIRED = 1 << 6,     /* "timer.fired": a reminder or deadline was acted on */
	LOKET_EVENT_PUBLISHED = 1 << 7,       /* a plugin's own event for a user or role; not durable */
};
#define LOKET_EVENT_ALL 0xffu

/*
 * One event, borrowed for the duration of the callback (copy what you keep).
 * json is a small JSON object of ids and statuses, never personal data:
 * {"status":"escalated","previous_status":"open","channel":"email"} for a
 * contact, {"department":"burgerzaken"} for a task, {"message":12,
 * "direction":"in"} for a message, {"timer":7,"kind":"reminder"} for a
 * timer; for a published event, the object its publisher gave.
 */
struct loket_event {
	uint64_t id;                /* durable and increasing; 0 for a published event */
	enum loket_event_kind kind;
	const char *name;           /* "contact.created", ...; a published event's own name */
	int64_t at;                 /* when, in ms since the epoch */
	int64_t contact_id;         /* 0 when the event names no contact */
	int64_t task_id;            /* 0 when the event names no task */
	const char *json;
	const char *audience_user;  /* a published event: the user it is for, or NULL */
	const char *audience_role;  /* a published event: the role it is for, or NULL */
	const char *source;         /* "register", or the name of the plugin that published it */
};

struct loket_api {
	size_t size; /* sizeof(struct loket_api) as the core was built; always first */
	uint16_t abi_major;
	uint16_t abi_minor;

	/* Logging: one line per event, "msg key=value ..."; never personal data. */
	void (*log)(struct loket_plugin *self, enum loket_log_level level, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

	/* Config of this plugin's [plugin.NAME] section, defaults applied. */
	const char *(*config_get)(struct loket_plugin *self, const char *key);
	int64_t (*config_get_int)(struct loket_plugin *self, const char *key);

	/* The daemon's libevent base; borrowed for the plugin's lifetime. */
	struct event_base *(*event_base)(struct loket_plugin *self);

	/* Timers on the loop. The returned timer is owned by the plugin until timer_free. */
	struct loket_timer *(*timer_new)(struct loket_plugin *self, void (*cb)(void *arg), void *arg);
	int (*timer_arm)(struct loket_timer *t, uint64_t after_ms);
	void (*timer_cancel)(struct loket_timer *t);
	void (*timer_free)(struct loket_timer *t);

	/*
	 * HTTP routes: pattern segments in braces are parameters ("/hello/{name}").
	 * The handler must answer exactly once, with http_reply or http_problem,
	 * now or later on the loop (after an asynchronous submit, for example);
	 * until then req stays valid.
	 */
	int (*http_route)(struct loket_plugin *self, unsigned int methods, const char *pattern,
	    enum loket_http_access access, void (*fn)(struct loket_http_req *req, void *arg),
	    void *arg);
	const char *(*http_param)(struct loket_http_req *req, const char *name);
	const char *(*http_query)(struct loket_http_req *req, const char *name);
	const char *(*http_header)(struct loket_http_req *req, const char *name);
	const char *(*http_body)(struct loket_http_req *req, size_t *len_r);
	void (*http_reply)(struct loket_http_req *req, int status, const char *content_type,
	    const void *body, size_t len);
	void (*http_problem)(struct loket_http_req *req, int status, const char *detail);

	/*
	 * Contacts: contact_new starts one for a channel; contact_set sets a field
	 * ("subject", "body", "product", "department", "organisation",
	 * "direction", "language", "party.name", "party.email", "party.phone",
	 * "party.rrn"); contact_meta adds channel metadata. contact_submit takes
	 * the contact over and calls cb on the loop once it is durable, or with an
	 * error; contact_free drops one that was not submitted.
	 */
	struct loket_contact *(*contact_new)(struct loket_plugin *self, const char *channel);
	int (*contact_set)(struct loket_contact *c, const char *field, const char *value);
	int (*contact_meta)(struct loket_contact *c, const char *key, const char *value);
	void (*contact_submit)(struct loket_contact *c,
	    void (*cb)(const struct loket_submit_result *res, void *arg), void *arg);
	void (*contact_free)(struct loket_contact *c);

	/* A pointer the plugin keeps with its handle. */
	void (*set_data)(struct loket_plugin *self, void *data);
	void *(*get_data)(struct loket_plugin *self);

	/* ---- 1.1 ---- */

	/*
	 * A key that makes intake idempotent ("email:uid:info:1700000000:42",
	 * "email:message-id:<id>"): a later submit with a key already stored
	 * writes nothing and answers duplicate with the earlier contact.
	 */
	int (*contact_key)(struct loket_contact *c, const char *key);
	/*
	 * The channel's message with the contact, as a JSON object: sender,
	 * recipients [..], subject, body, message_id, automatic (a reason, for
	 * out-of-office and the like: the contact is tagged and never answered
	 * automatically), attachments [{name, content_type, sha256, size}], meta {..},
	 * and thread {reference, message_ids [..]}: when those name a stored
	 * contact (a reference only from a sender the contact knows) the message
	 * goes onto it (a resolved or closed one reopens, rules see event "reply")
	 * instead of making a new contact.
	 */
	int (*contact_message)(struct loket_contact *c, const char *json);
	/* Where the daemon keeps its files; plugins keep theirs in a folder below it. */
	const char *(*data_dir)(struct loket_plugin *self);
	/*
	 * Registers the plugin as the outbound sender of a channel. send runs on
	 * the loop with one outbox row as JSON (contact, template or staff
	 * message, recipient, last inbound message, deadline, attempts, ...) and
	 * must not block; the plugin answers each with outbound_done, now or later.
	 */
	int (*outbox_sender)(struct loket_plugin *self, const char *channel,
	    void (*send)(struct loket_outbound *o, const char *item_json, void *arg), void *arg);
	/* sent_json: the message as it went out ({message_id, subject, body, sender, recipients}). */
	void (*outbound_done)(struct loket_outbound *o, enum loket_send_result result,
	    const char *error, uint64_t retry_after_ms, const char *sent_json);

	/*
	 * A counter (gauge = 0: value is added) or gauge (value is set) in
	 * /metrics; name starts with "loket_", labels as Prometheus text without
	 * braces ("mailbox=\"info\"") or NULL.
	 */
	void (*metric)(struct loket_plugin *self, int gauge, const char *name, const char *help,
	    const char *labels, double value);

	/* ---- 1.3: register events ---- */

	/*
	 * Calls cb on the loop for every event of kinds (LOKET_EVENT_* bits)
	 * from now on, after the subscribers that came before it. An event
	 * published from inside a callback is delivered once the current one
	 * has reached every subscriber, so callbacks never nest. A plugin is
	 * unsubscribed when it unloads. Returns -1 when kinds names no kind or
	 * cb is NULL.
	 */
	int (*events_subscribe)(struct loket_plugin *self, unsigned int kinds,
	    void (*cb)(const struct loket_event *ev, void *arg), void *arg);
	/* Ends the subscriptions of cb with arg; none is called after this returns. */
	void (*events_unsubscribe)(struct loket_plugin *self,
	    void (*cb)(const struct loket_event *ev, void *arg), void *arg);
	/*
	 * Publishes an event for one user, one role ("agent", "backoffice",
	 * "admin", "intake"), or both (a call offered to an agent): name is
	 * lower case letters, digits, '.', '_' or '-' (at most 64), json a JSON
	 * object (at most 4 KiB; no personal data: it may be shown on a screen).
	 * It goes through the same bus as the register's events, as
	 * LOKET_EVENT_PUBLISHED with id 0: not durable, never read back. Returns
	 * -1 (and logs why) when an argument is refused.
	 */
	int (*event_publish)(struct loket_plugin *self, const char *name, const char *json,
	    const char *user, const char *role);

	/* ---- 1.4: caller identity and sub-sections ---- */

	/*
	 * Who calls: on a route with token, admin or intake access the
	 * authenticated caller; on a public route the caller a valid
	 * Authorization header names, else NULL (a public route never refuses
	 * a request for its credentials). Borrowed until the request is
	 * answered.
	 */
	const struct loket_caller *(*http_caller)(struct loket_http_req *req);
	/*
	 * The IDs of the [plugin.NAME.KIND.ID] sub-sections of one kind, in
	 * file order: *names_r points at an array the core owns (valid as
	 * config_get's values are); returns how many. 0 for an unknown kind.
	 */
	size_t (*config_sections)(struct loket_plugin *self, const char *kind,
	    const char *const **names_r);
	/* A key of one sub-section, default applied; NULL for an unknown kind, ID or key. */
	const char *(*config_section_get)(struct loket_plugin *self, const char *kind,
	    const char *name, const char *key);
	/* As config_get_int: ints, durations (ms), sizes (bytes), booleans (0/1). */
	int64_t (*config_section_get_int)(struct loket_plugin *self, const char *kind,
	    const char *name, const char *key);

	/* ---- 1.5: blobs ---- */

	/*
	 * Keeps bytes (an attachment, a raw mail) in the register's blob
	 * storage under the name of their SHA-256, written as lower-case hex
	 * to sha256_hex, unless the same bytes are kept already. Durable when
	 * it returns 0, unless flags has LOKET_BLOB_DEFER_SYNC: then blob_sync
	 * must return 0 before anything that names the blob is acknowledged.
	 * Unlike the rest of this table, both are thread-safe and may be called
	 * from a plugin's own threads (a mailbox thread), concurrently, until
	 * the plugin's unload; they block on disk I/O, so call them off the loop
	 * for large or many blobs. -1 with a sentence in error (the cause is
	 * logged): the disk is full, or the register is closed or failing.
	 */
	int (*blob_put)(struct loket_plugin *self, const void *data, size_t len,
	    unsigned int flags, char sha256_hex[65], char *error, size_t errlen);
	/* Makes every blob this process put with LOKET_BLOB_DEFER_SYNC durable. */
	int (*blob_sync)(struct loket_plugin *self, char *error, size_t errlen);

	/* ---- 1.6: blob reads ---- */

	/*
	 * The bytes of the blob named sha256_hex (64 lower-case hex digits, as
	 * blob_put wrote them), wherever the register keeps its blobs: in files
	 * under data_dir, or in a database that several nodes share. A plugin
	 * reads stored blobs (an attachment to send, a raw mail) only through
	 * this, never from data_dir. On 0, *data_r holds them (malloc()ed; the
	 * plugin free()s it) and *len_r their size. Thread-safe like blob_put;
	 * it blocks on I/O. -1 with a sentence in error and *data_r NULL: no
	 * such blob is kept, or the register cannot read it now.
	 */
	int (*blob_get)(struct loket_plugin *self, const char *sha256_hex, void **data_r,
	    size_t *len_r, char *error, size_t errlen);

	/* ---- 1.7: leases, for nodes that share one register ---- */

	/*
	 * Several loketd nodes may share one register (PostgreSQL). Work that
	 * must run on one of them at a time (reading a mailbox, holding a PBX
	 * link) runs only while this node holds its lease, and another node
	 * takes it over when this one dies. lease takes or renews the lease
	 * name (no blanks, quotes or backslashes; at most 128 bytes; the core
	 * puts the plugin's name and ':' before it, so plugins never take each
	 * other's) for ttl_ms from now, by the register's clock (0: [storage]
	 * lease, 30 s unless configured), when it is free, has run out, or is
	 * this node's already. Returns how long this node holds it from now, in
	 * ms: renew well before that (every third of it), and stop the work
	 * before its next step once a call returns 0: another node holds it,
	 * or the register cannot be asked (then nobody can tell, so it counts
	 * as not held; retry later). With release, gives the lease up and
	 * returns 0. -1 (and the reason logged): the name is refused. The log
	 * says when a lease is taken, taken over from another node (naming
	 * both), lost or released. Leases still held when loketd stops are
	 * released; a node that dies leaves them to run out. On a register
	 * only one node runs on (SQLite) every lease is this node's. Unlike
	 * most of this table, lease is thread-safe and may be called from a
	 * plugin's own threads, concurrently; it blocks on the register.
	 */
	int64_t (*lease)(struct loket_plugin *self, const char *name, uint64_t ttl_ms, int release);

	/* ---- 1.8: what a public channel (the e-loket) shows a citizen ---- */

	/*
	 * The products-and-services catalogue as it is loaded now (a reload
	 * replaces it), as the JSON text of an array in file order:
	 * [{"code", "name", "theme" (null when the catalogue has none),
	 * "line", "department", "organisation", "service_time", "appointment",
	 * "digital", "keywords": [..]}], the fields as GET /api/v1/catalogue
	 * shows them without the standard answers. malloc()ed: the plugin
	 * free()s it. NULL when out of memory; "[]" without a catalogue.
	 */
	char *(*catalogue_json)(struct loket_plugin *self);
	/*
	 * When a citizen who asks about product (a catalogue code; NULL or
	 * unknown: none) at from_ms can expect an answer: the product's
	 * service time (else the default of 5 open days) counted in the
	 * calendar of the product's department, else its organisation, else
	 * the default calendar. 0 with *due_ms_r; -1 (and the reason logged)
	 * when that calendar never opens.
	 */
	int (*expected_answer)(struct loket_plugin *self, const char *product, int64_t from_ms,
	    int64_t *due_ms_r);
	/*
	 * What the citizen who asked may know of one contact: reference
	 * ("2026-000123", with or without the "C-" in front) and a contact
	 * value the citizen gave with it (the party's email address, compared
	 * without regard to case, or phone number, compared by its digits).
	 * cb runs once on the loop, later, never inside this call: with status
	 * 0 and json {"reference" (as stored, "2026-000123"), "status" (open,
	 * resolved, escalated, closed), "received_at", "expected_at" (the due
	 * time of its open task, else its product's service time from
	 * received_at; null once resolved or closed or when unknown),
	 * "answered_at" (when that reply went out, or null), "answer": the text
	 * of the last staff reply sent to the citizen (a rule's automatic reply,
	 * such as the acknowledgement, is none), or null}, times as ISO 8601
	 * UTC text (borrowed for the callback); 404 and json NULL when the pair
	 * does not match,
	 * whatever is wrong (no such reference, another address, a
	 * confidential contact) so that the answer tells nothing; 503 when the
	 * register cannot be read now. Returns -1 (cb is not called) when an
	 * argument is NULL.
	 */
	int (*contact_status)(struct loket_plugin *self, const char *reference,
	    const char *contact_value, void (*cb)(int status, const char *json, void *arg),
	    void *arg);
	/*
	 * Adds a header line to the answer req will get (Set-Cookie,
	 * Retry-After, Cache-Control, ...); call it before http_reply. Each call
	 * adds a line, so two cookies are two calls. Returns -1 (nothing added)
	 * when the name is no HTTP token, the value holds a control character
	 * (a line break), or the name is one the core writes itself
	 * (Content-Type, Content-Length, Transfer-Encoding, Connection).
	 */
	int (*http_header_set)(struct loket_http_req *req, const char *name, const char *value);
	/*
	 * The address of the connection's peer as text ("127.0.0.1", "::1"):
	 * the client, or a reverse proxy in front of it; "" when unknown.
	 * Borrowed until the request is answered.
	 */
	const char *(*http_peer)(struct loket_http_req *req);

	/* New entries go here, at the end, with a minor version bump. */
};

/* blob_put flags (1.5) */
#define LOKET_BLOB_DEFER_SYNC 0x1 /* unsynced; blob_sync before acknowledging */

/* True when the core's table has the entry (built with a newer or equal minor). */
#define LOKET_API_HAS(api, member)                                                         \
	((api)->size >= offsetof(struct loket_api, member) + sizeof((api)->member) &&          \
	    (api)->member != NULL)

struct loket_plugin_info {
	uint16_t abi_major; /* LOKET_ABI_MAJOR at build time */
	uint16_t abi_minor; /* LOKET_ABI_MINOR at build time */
	const char *name;
	const char *version;
	const char *description;
	const struct loket_config_key *config_keys; /* ends with a { NULL } entry; may be NULL */

	/* Called once after config validation; return -1 with *error_r to stop the start. */
	int (*load)(struct loket_plugin *self, const struct loket_api *api, const char **error_r);
	/* Called at shutdown, in reverse load order; free what get_data holds. */
	void (*unload)(struct loket_plugin *self, const struct loket_api *api);
	/*
	 * Optional: the config was reloaded (SIGHUP); read it again. config_get
	 * answers the new values; those of before stay valid until this returns.
	 * On -1 the plugin runs on with what it had, and config_get answers the
	 * old values again.
	 */
	int (*reload)(struct loket_plugin *self, const struct loket_api *api, const char **error_r);

	/* ---- 1.2: read only from a plugin built for 1.2 or newer ---- */

	/*
	 * Optional: checks one value of the plugin's section beyond its type,
	 * at start, in `loketd -t` and before a reload is accepted. Returns
	 * NULL when the value is good, else what is wrong ("expected an IMAP
	 * keyword ..."), a static string; the core prefixes file:line and the
	 * key. Called before load(), so it must not use the plugin's state.
	 */
	const char *(*check_value)(const char *key, const char *value);

	/* ---- 1.4: read only from a plugin built for 1.4 or newer ---- */

	/* Kinds of repeated sub-sections; ends with a { NULL } entry; may be NULL. */
	const struct loket_config_section *config_sections;
};

/* Declares the descriptor: LOKET_PLUGIN_DEFINE(.name = "x", .load = x_load, ...). */
#define LOKET_PLUGIN_DEFINE(...)                                                            \
	__attribute__((visibility("default"))) const struct loket_plugin_info loket_plugin = { \
		.abi_major = LOKET_ABI_MAJOR, .abi_minor = LOKET_ABI_MINOR, __VA_ARGS__            \
	}

#ifdef __cplusplus
}
#endif

#endif
