/* store.c: picks the storage driver and carries requests to it and back. */
#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "store.h"
#include "util.h"

static const struct store_driver *const store_drivers[] = {
	&store_sqlite_driver,
};

/*
 * The register a plugin's blob_put reaches (store_blob_put with s NULL): the
 * write lock is taken only to open and close, so puts run side by side and
 * store_close waits for those under way.
 */
static pthread_rwlock_t store_blob_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct store *store_blob_store;

static const struct store_driver *
store_driver_find(const char *name)
{
	for (size_t i = 0; i < sizeof(store_drivers) / sizeof(store_drivers[0]); i++)
		if (strcmp(store_drivers[i]->name, name) == 0)
			return store_drivers[i];
	return NULL;
}

int
store_replay(const struct conf *conf, int64_t since_ms, int (*cb)(json_t *contact, void *arg),
    void *arg, char **error_r)
{
	const struct store_driver *driver = store_driver_find(conf->storage_driver);

	*error_r = NULL;
	if (driver == NULL || driver->replay == NULL) {
		*error_r = util_printf("rules replay reads the register through its storage driver; "
		                       "driver %s %s",
		    conf->storage_driver, driver == NULL ? "is not built in" : "cannot replay");
		return -1;
	}
	return driver->replay(conf, since_ms, cb, arg, error_r);
}

int
store_open(struct event_base *base, struct metrics *metrics, const struct conf *conf,
    struct store **store_r, const char **error_r)
{
	const struct store_driver *driver = store_driver_find(conf->storage_driver);
	struct store *s;

	if (driver == NULL) {
		*error_r = "no such storage driver (pgsql needs the store_pgsql plugin)";
		return -1;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	s->driver = driver;
	s->base = base;
	s->metrics = metrics;
	if ((s->data_dir = strdup(conf->data_dir)) == NULL) {
		free(s);
		*error_r = "out of memory";
		return -1;
	}
	if (s->driver->open(s, conf, error_r) < 0) {
		free(s->data_dir);
		free(s);
		return -1;
	}
	pthread_rwlock_wrlock(&store_blob_lock);
	store_blob_store = s;
	pthread_rwlock_unlock(&store_blob_lock);
	*store_r = s;
	return 0;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	pthread_rwlock_wrlock(&store_blob_lock);
	if (store_blob_store == s)
		store_blob_store = NULL;
	pthread_rwlock_unlock(&store_blob_lock);
	s->driver->close(s);
	free(s->data_dir);
	free(s);
}

enum store_result
store_blob_put(struct store *s, const void *data, size_t len, unsigned int flags,
    char sha256_hex[65])
{
	enum store_result res = STORE_UNAVAILABLE;
	struct store *t;

	sha256_hex[0] = '\0';
	pthread_rwlock_rdlock(&store_blob_lock);
	t = s != NULL ? s : store_blob_store;
	if (t != NULL)
		res = t->driver->blob_put != NULL ?
			t->driver->blob_put(t, data, len, flags, sha256_hex) : STORE_FAILED;
	pthread_rwlock_unlock(&store_blob_lock);
	return res;
}

enum store_result
store_blob_sync(struct store *s)
{
	enum store_result res = STORE_UNAVAILABLE;
	struct store *t;

	pthread_rwlock_rdlock(&store_blob_lock);
	t = s != NULL ? s : store_blob_store;
	if (t != NULL)
		res = t->driver->blob_sync != NULL ? t->driver->blob_sync(t) : STORE_OK;
	pthread_rwlock_unlock(&store_blob_lock);
	return res;
}

int
store_health(struct store *s, const char **why_r)
{
	if (s == NULL || s->driver->health == NULL)
		return 0;
	return s->driver->health(s, why_r);
}

void
store_submit(struct store *s, struct store_req *req)
{
	req->queued_ns = util_now_ns();
	req->store = s;
	s->driver->submit(s, req);
}

struct store_req *
store_req_new(enum store_op op, json_t *in, void (*cb)(struct store_req *req, void *arg),
    void *arg)
{
	struct store_req *req = calloc(1, sizeof(*req));

	if (req == NULL) {
		json_decref(in);
		return NULL;
	}
	req->op = op;
	req->in = in;
	req->cb = cb;
	req->arg = arg;
	return req;
}

void
store_req_free(struct store_req *req)
{
	if (req == NULL)
		return;
	json_decref(req->in);
	json_decref(req->out);
	free(req->events);
	free(req);
}

static const struct {
	enum loket_event_kind kind;
	const char *name;
} store_event_names[] = {
	{ LOKET_EVENT_CONTACT_CREATED, "contact.created" },
	{ LOKET_EVENT_CONTACT_CHANGED, "contact.changed" },
	{ LOKET_EVENT_MESSAGE_ADDED, "message.added" },
	{ LOKET_EVENT_TASK_CREATED, "task.created" },
	{ LOKET_EVENT_TASK_DUE, "task.due" },
	{ LOKET_EVENT_TASK_DONE, "task.done" },
	{ LOKET_EVENT_TIMER_FIRED, "timer.fired" },
};

const char *
store_event_name(enum loket_event_kind kind)
{
	for (size_t i = 0; i < sizeof(store_event_names) / sizeof(store_event_names[0]); i++)
		if (store_event_names[i].kind == kind)
			return store_event_names[i].name;
	return NULL;
}

int
store_req_event(struct store_req *req, const struct store_event *ev)
{
	struct store_event *grown;

	/* A write makes a handful of events: grow one at a time. */
	if ((grown = realloc(req->events, (req->nevents + 1) * sizeof(*grown))) == NULL)
		return -1;
	req->events = grown;
	req->events[req->nevents++] = *ev;
	return 0;
}

const char *
store_op_name(enum store_op op)
{
	static const char *const names[STORE_OP_COUNT] = {
		[STORE_CONTACT_CREATE] = "contact.create",
		[STORE_CONTACT_UPDATE] = "contact.update",
		[STORE_TASK_DONE] = "task.done",
		[STORE_TOKEN_PUT] = "token.put",
		[STORE_TOKEN_REVOKE] = "token.revoke",
		[STORE_AUDIT] = "audit",
		[STORE_TIMER_DONE] = "timer.done",
		[STORE_MESSAGE_ADD] = "message.add",
		[STORE_OUTBOX_DONE] = "outbox.done",
		[STORE_PARTY_UPDATE] = "party.update",
		[STORE_PARTY_MERGE] = "party.merge",
		[STORE_CONTACT_GET] = "contact.get",
		[STORE_CONTACT_LIST] = "contact.list",
		[STORE_PARTY_GET] = "party.get",
		[STORE_PARTY_FIND] = "party.find",
		[STORE_PARTY_CONTACTS] = "party.contacts",
		[STORE_TASK_LIST] = "task.list",
		[STORE_TOKEN_LIST] = "token.list",
		[STORE_COUNTS] = "counts",
		[STORE_TIMERS_DUE] = "timers.due",
		[STORE_TIMERS_NEXT] = "timers.next",
		[STORE_MESSAGE_LIST] = "message.list",
		[STORE_THREAD_FIND] = "thread.find",
		[STORE_OUTBOX_DUE] = "outbox.due",
		[STORE_OUTBOX_NEXT] = "outbox.next",
		[STORE_EVENTS_AFTER] = "events.after",
	};

	if ((unsigned int)op >= STORE_OP_COUNT || names[op] == NULL)
		return "unknown";
	return names[op];
}

int
store_op_is_write(enum store_op op)
{
	return op < STORE_CONTACT_GET;
}

void
store_req_fail(struct store_req *req, enum store_result result, const char *fmt, ...)
{
	va_list ap;

	req->result = result;
	va_start(ap, fmt);
	vsnprintf(req->error, sizeof(req->error), fmt, ap);
	va_end(ap);
	json_decref(req->out);
	req->out = NULL;
	/* What a failed write stored was rolled back with it: no event of it was. */
	free(req->events);
	req->events = NULL;
	req->nevents = 0;
}

/*
 * A new contact as the API shows it, built on the loop from what was
 * written and the few values the driver assigned (id, reference, party):
 * the storage thread, which every write waits for, does not spend its time
 * on JSON, and the memory is let go on the thread that allocated it.
 */
static json_t *
store_contact_view(json_t *in, json_t *assigned)
{
	static const char *const nullable[] = { "answer", "product", "department", "language",
		"location", "handled_at", "assignee", NULL };
	static const char *const internal[] = { "task", "timers", "history", "outbox", "handled",
		"party", "message", "keys", "idempotency", NULL };
	json_t *out = json_copy(in), *party_id = json_object_get(assigned, "party_id");
	char when[40];

	if (out == NULL)
		return NULL;
	util_time_format(json_integer_value(json_object_get(in, "received_at")), when, sizeof(when));
	/* What rules added travels to the store, not back to the client. */
	for (size_t i = 0; internal[i] != NULL; i++)
		json_object_del(out, internal[i]);
	json_object_set(out, "id", json_object_get(assigned, "id"));
	json_object_set(out, "reference", json_object_get(assigned, "reference"));
	json_object_set_new(out, "received_at", json_string(when));
	json_object_set_new(out, "updated_at", json_string(when));
	if (json_is_true(json_object_get(in, "handled")))
		json_object_set_new(out, "handled_at", json_string(when));
	for (size_t i = 0; nullable[i] != NULL; i++)
		if (json_object_get(out, nullable[i]) == NULL)
			json_object_set_new(out, nullable[i], json_null());
	json_object_set(out, "party_id", party_id != NULL ? party_id : json_null());
	json_object_set_new(out, "party",
	    json_is_integer(party_id) ?
		json_pack("{s:O, s:O}", "id", party_id, "name",
		    json_object_get(assigned, "party_name") != NULL ?
			json_object_get(assigned, "party_name") :
			json_null()) :
		json_null());
	json_object_set(out, "reply_to", json_object_get(assigned, "reply_to") != NULL ?
		json_object_get(assigned, "reply_to") : json_null());
	json_object_set(out, "party_conflict", json_object_get(assigned, "party_conflict") != NULL ?
		json_object_get(assigned, "party_conflict") : json_null());
	if (json_object_get(assigned, "timers_next") != NULL)
		json_object_set(out, "timers_next", json_object_get(assigned, "timers_next"));
	return out;
}

void
store_req_complete(struct store_req *req)
{
	struct store *s = req->store;

	if (req->op == STORE_CONTACT_CREATE && req->result == STORE_OK && req->out != NULL &&
	    !json_is_true(json_object_get(req->out, "duplicate"))) {
		json_t *view = store_contact_view(req->in, req->out);

		json_decref(req->out);
		req->out = view;
		if (view == NULL)
			store_req_fail(req, STORE_UNAVAILABLE, "out of memory");
	}
	if (s != NULL && s->done_hook != NULL && store_op_is_write(req->op))
		s->done_hook(req, s->done_arg);
	if (req->cb != NULL)
		req->cb(req, req->arg);
	store_req_free(req);
}
