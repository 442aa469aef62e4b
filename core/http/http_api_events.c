/*
 * http_api_events.c: GET /api/v1/events: the register's events as
 * server-sent events, each one checked against the reader's scope.
 *
 * A stream subscribes to the register's events of every node (the staff
 * UI on node B shows what node A stored) and sends each one its scope may
 * read, decided once at connect (auth_scope) and applied to every event
 * with the register's own check (store_scope_allows) against the "scope"
 * the driver wrote into the event's payload: a memory comparison per
 * event, no read.
 *
 * Resume (Last-Event-ID, or ?last_event_id=N on a first connect): the
 * stream subscribes first, then reads the events after N from the register
 * (STORE_EVENTS_AFTER, in pages), while the live events that arrive
 * meanwhile wait in a list. Anything published before the subscription was
 * committed before the read began, so the read has it; anything published
 * after it is in the list; an event in both is sent once (ids only
 * increase, and nothing at or below the last id sent goes out again). Then
 * the list, then live. N older than [http] events_window, more missed
 * events than [http] events_backlog, or an N the register has not reached
 * get `event: reset` (with the newest id) instead: the client reloads.
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "session.h"
#include "conf.h"
#include "events.h"
#include "http_api.h"
#include "log.h"
#include "loketd.h"
#include "util.h"

#define EVENTS_STREAM_KINDS                                                            \
	(LOKET_EVENT_CONTACT_CREATED | LOKET_EVENT_CONTACT_CHANGED |                     \
	    LOKET_EVENT_MESSAGE_ADDED | LOKET_EVENT_TASK_CREATED | LOKET_EVENT_TASK_DUE | \
	    LOKET_EVENT_TASK_DONE)
/* A client that falls this far behind is cut off, not buffered for. */
#define EVENTS_STREAM_CAP (1u << 20)
/* The largest page STORE_EVENTS_AFTER hands out. */
#define EVENTS_PAGE 1000
/* Live events held while a resume reads the register; more and the stream ends. */
#define EVENTS_HELD_MAX 10000
/* EventSource waits this long before it reconnects (ms). */
#define EVENTS_RETRY "3000"

/* A live event that came while the backlog was being read: its frame, sent after it. */
struct events_held {
	int64_t id;
	char *frame;
	struct events_held *next;
};

struct events_stream {
	struct loketd *d;
	struct loket_http_req *req; /* NULL once the HTTP side ended */
	json_t *scope;              /* what this reader may see, decided at connect */
	int64_t last_id;            /* the highest event id sent */
	int64_t window_ms, backlog_max;
	int64_t read_total; /* events read back so far in this resume */
	int catching_up;    /* a resume is reading the register */
	int read_pending;   /* a read is out: the stream lives until it returns */
	int check_pending;  /* a check of its session is out: likewise */
	/*
	 * Who opened it: a token's or a session's hash. Checked again at every
	 * keep-alive, so a stream ends once its session was signed out, timed
	 * out or its user disabled, or its token revoked.
	 */
	char auth_hash[65];
	int auth_session;
	int subscribed;
	struct events_held *held, **held_tail;
	size_t nheld;
	struct event *keepalive;
};

static void events_stream_read(struct events_stream *st, int64_t after);

/* The kind a stream sends, by its durable name, or 0. */
static unsigned int
events_stream_kind(const char *name)
{
	static const unsigned int kinds[] = { LOKET_EVENT_CONTACT_CREATED,
		LOKET_EVENT_CONTACT_CHANGED, LOKET_EVENT_MESSAGE_ADDED, LOKET_EVENT_TASK_CREATED,
		LOKET_EVENT_TASK_DUE, LOKET_EVENT_TASK_DONE };

	for (size_t i = 0; name != NULL && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(store_event_name((enum loket_event_kind)kinds[i]), name) == 0)
			return kinds[i];
	return 0;
}

/*
 * Whether the reader may see the event's contact. An event without the
 * scope its driver writes (stored before it did) is unknown: only a scope
 * that sees everything passes it.
 */
static int
events_stream_allows(const struct events_stream *st, json_t *payload)
{
	json_t *scope = json_object_get(payload, "scope"), *conf;

	conf = json_object_get(scope, "confidential");
	return store_scope_allows(st->scope, json_string_value(json_object_get(scope, "department")),
	    json_string_value(json_object_get(scope, "organisation")),
	    json_is_boolean(conf) ? json_is_true(conf) : 1);
}

/* One SSE frame for an event (malloc()ed), or NULL without memory. */
static char *
events_stream_frame(int64_t id, const char *kind, int64_t at, int64_t contact_id,
    int64_t task_id, json_t *payload, int with_id)
{
	char when[40], *data, *frame;
	json_t *doc;

	util_time_format(at, when, sizeof(when));
	doc = json_pack("{s:I, s:s, s:s}", "id", (json_int_t)id, "kind", kind, "at", when);
	if (doc == NULL)
		return NULL;
	json_object_set_new(doc, "contact_id",
	    contact_id != 0 ? json_integer(contact_id) : json_null());
	json_object_set_new(doc, "task_id", task_id != 0 ? json_integer(task_id) : json_null());
	json_object_update_missing(doc, payload);
	data = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(doc);
	if (data == NULL)
		return NULL;
	/*
	 * Without an id line the client's Last-Event-ID stays the highest it
	 * has: an event that arrives after a higher one is not asked for again.
	 */
	if (with_id)
		frame = util_printf("id: %lld\nevent: %s\ndata: %s\n\n", (long long)id, kind, data);
	else
		frame = util_printf("event: %s\ndata: %s\n\n", kind, data);
	free(data);
	return frame;
}

static void
events_stream_free(struct events_stream *st)
{
	while (st->held != NULL) {
		struct events_held *h = st->held;

		st->held = h->next;
		free(h->frame);
		free(h);
	}
	json_decref(st->scope);
	free(st);
}

static void events_stream_cb(const struct events_event *ev, void *arg);

/* The HTTP side is gone (req too): stop listening; free unless a read still holds it. */
static void
events_stream_gone(struct events_stream *st)
{
	st->req = NULL;
	if (st->subscribed)
		events_unsubscribe(st->d->events, events_stream_cb, st, NULL);
	st->subscribed = 0;
	if (st->keepalive != NULL)
		event_free(st->keepalive);
	st->keepalive = NULL;
	if (!st->read_pending && !st->check_pending)
		events_stream_free(st);
}

/* Sends text; -1 when the stream closed under it (the client is gone or too slow). */
static int
events_stream_send(struct events_stream *st, const char *text)
{
	if (http_stream_write(st->req, text, strlen(text)) < 0) {
		events_stream_gone(st);
		return -1;
	}
	return 0;
}

static void
events_stream_end(struct events_stream *st)
{
	http_stream_end(st->req);
	events_stream_gone(st);
}

static void
events_stream_closed_cb(void *arg)
{
	events_stream_gone(arg);
}

/* Whether the stream's session still stands (sessions_check's answer). */
static void
events_stream_auth_cb(int live, void *arg)
{
	struct events_stream *st = arg;

	st->check_pending = 0;
	if (st->req == NULL) {
		if (!st->read_pending)
			events_stream_free(st);
		return;
	}
	if (!live)
		events_stream_end(st);
}

static void
events_stream_keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
	struct events_stream *st = arg;

	(void)fd;
	(void)what;
	if (events_stream_send(st, ": keep-alive\n\n") < 0)
		return;
	if (!st->auth_session) {
		if (!auth_token_live(st->d->auth, st->auth_hash))
			events_stream_end(st);
	} else if (!st->check_pending) {
		/* May answer at once (a session read lately): st is not touched after. */
		st->check_pending = 1;
		sessions_check(auth_sessions(st->d->auth), st->auth_hash, events_stream_auth_cb, st);
	}
}

static void
events_stream_cb(const struct events_event *ev, void *arg)
{
	struct events_stream *st = arg;
	int64_t id = (int64_t)ev->pub.id;
	struct events_held *h;
	char *frame;

	if (st->req == NULL || id <= 0 || ev->pub.name == NULL ||
	    (ev->pub.kind & EVENTS_STREAM_KINDS) == 0 || !events_stream_allows(st, ev->payload))
		return;
	if (!st->catching_up && id <= st->last_id) {
		/*
		 * A node whose catch-up read failed right after its commit hands
		 * other nodes' earlier events after its own (docs/storage.md): sent
		 * without an id line, so Last-Event-ID keeps the highest.
		 */
		frame = events_stream_frame(id, ev->pub.name, ev->pub.at, ev->pub.contact_id,
		    ev->pub.task_id, ev->payload, 0);
	} else {
		frame = events_stream_frame(id, ev->pub.name, ev->pub.at, ev->pub.contact_id,
		    ev->pub.task_id, ev->payload, 1);
	}
	if (frame == NULL) {
		log_warnx("http", "an event stream lost event %lld: out of memory; ending it",
		    (long long)id);
		events_stream_end(st);
		return;
	}
	if (!st->catching_up) {
		if (id > st->last_id)
			st->last_id = id;
		events_stream_send(st, frame);
		free(frame);
		return;
	}
	if (st->nheld >= EVENTS_HELD_MAX || (h = calloc(1, sizeof(*h))) == NULL) {
		/* The client resumes from what it has when it reconnects. */
		free(frame);
		events_stream_end(st);
		return;
	}
	h->id = id;
	h->frame = frame;
	*st->held_tail = h;
	st->held_tail = &h->next;
	st->nheld++;
}

/* The backlog is sent: the held live events after it, then live. */
static void
events_stream_go_live(struct events_stream *st)
{
	st->catching_up = 0;
	while (st->held != NULL) {
		struct events_held *h = st->held;
		int rc = 0;

		st->held = h->next;
		st->nheld--;
		if (h->id > st->last_id) {
			st->last_id = h->id;
			rc = events_stream_send(st, h->frame);
		}
		free(h->frame);
		free(h);
		if (rc < 0)
			return;
	}
	st->held_tail = &st->held;
}

/* The client must reload: what it missed is beyond what a resume sends. */
static void
events_stream_reset(struct events_stream *st, int64_t newest, const char *why)
{
	char *frame;

	if (newest > st->last_id)
		st->last_id = newest;
	frame = util_printf("id: %lld\nevent: reset\ndata: {\"last_event_id\":%lld,\"reason\":\"%s\"}"
			    "\n\n",
	    (long long)st->last_id, (long long)st->last_id, why);
	if (frame == NULL) {
		events_stream_end(st);
		return;
	}
	if (events_stream_send(st, frame) == 0)
		events_stream_go_live(st);
	free(frame);
}

static void
events_stream_read_cb(struct store_req *sr, void *arg)
{
	struct events_stream *st = arg;
	json_t *items = json_object_get(sr->out, "items"), *item;
	int64_t newest = json_integer_value(json_object_get(sr->out, "last"));
	int64_t after = json_integer_value(json_object_get(sr->in, "after"));
	size_t i, n = json_array_size(items);

	st->read_pending = 0;
	if (st->req == NULL) {
		if (!st->check_pending)
			events_stream_free(st);
		return;
	}
	if (sr->result != STORE_OK) {
		/* The client reconnects and asks again from the same id. */
		log_warnx("http", "an event stream could not read the register's events after "
				  "%lld: %s",
		    (long long)after, sr->error);
		events_stream_end(st);
		return;
	}
	if (st->read_total == 0) {
		const char *why = NULL;

		if (after > newest)
			why = "Last-Event-ID is newer than any event in the register";
		else if (n > 0 &&
		    json_integer_value(json_object_get(json_array_get(items, 0), "at")) <
			util_time_ms() - st->window_ms)
			why = "Last-Event-ID is older than the events window";
		if (why != NULL) {
			events_stream_reset(st, newest, why);
			return;
		}
	}
	st->read_total += (int64_t)n;
	if (st->read_total > st->backlog_max) {
		events_stream_reset(st, newest, "more events were missed than a resume sends");
		return;
	}
	json_array_foreach(items, i, item)
	{
		int64_t id = json_integer_value(json_object_get(item, "id"));
		const char *kind = json_string_value(json_object_get(item, "kind"));
		json_t *payload = json_object_get(item, "payload");
		char *frame;

		if (id <= st->last_id)
			continue;
		st->last_id = id;
		if (events_stream_kind(kind) == 0 || !json_is_object(payload) ||
		    !events_stream_allows(st, payload))
			continue;
		frame = events_stream_frame(id, kind, json_integer_value(json_object_get(item, "at")),
		    json_integer_value(json_object_get(item, "contact_id")),
		    json_integer_value(json_object_get(item, "task_id")), payload, 1);
		if (frame == NULL) {
			events_stream_end(st);
			return;
		}
		if (events_stream_send(st, frame) < 0) {
			free(frame);
			return;
		}
		free(frame);
	}
	if (n >= (size_t)json_integer_value(json_object_get(sr->in, "limit")) && n > 0)
		events_stream_read(st, st->last_id);
	else
		events_stream_go_live(st);
}

static void
events_stream_read(struct events_stream *st, int64_t after)
{
	int64_t left = st->backlog_max + 1 - st->read_total;
	struct store_req *sr;

	sr = store_req_new(STORE_EVENTS_AFTER,
	    json_pack("{s:I, s:I}", "after", (json_int_t)after, "limit",
		(json_int_t)(left < EVENTS_PAGE ? left : EVENTS_PAGE)),
	    events_stream_read_cb, st);
	if (sr == NULL) {
		events_stream_end(st);
		return;
	}
	st->read_pending = 1;
	store_submit(st->d->store, sr);
}

/* The id to resume after: Last-Event-ID (a reconnect) wins over ?last_event_id. -1: none. */
static int
events_resume_id(struct loket_http_req *req, int64_t *id_r)
{
	const char *s = http_header(req, "Last-Event-ID");
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		s = http_query(req, "last_event_id");
	*id_r = -1;
	if (s == NULL || *s == '\0')
		return 0;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end != '\0' || errno != 0 || v < 0 || s[0] == '-' || s[0] == '+' || s[0] == ' ')
		return -1;
	*id_r = v;
	return 0;
}

static void
events_get(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	const struct conf *conf = d->conf;
	struct events_stream *st;
	struct timeval tv;
	int64_t after;

	if (auth_require(req, AUTH_STAFF) < 0)
		return;
	if (events_resume_id(req, &after) < 0) {
		http_problem(req, 400, "Last-Event-ID (or last_event_id): expected an event id, a "
				       "whole number from 0");
		return;
	}
	http_add_header(req, "Cache-Control", "no-store");
	if (req->method == LOKET_HTTP_HEAD) {
		http_reply(req, 200, "text/event-stream", NULL, 0);
		return;
	}
	if ((int64_t)http_streams(d->http) >= conf->http_max_streams) {
		http_problem(req, 503, "too many event streams are open on this node; try again later");
		return;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL || (st->scope = auth_scope(req)) == NULL) {
		free(st);
		http_problem(req, 503, "out of memory");
		return;
	}
	st->d = d;
	st->req = req;
	st->held_tail = &st->held;
	snprintf(st->auth_hash, sizeof(st->auth_hash), "%s", ((const struct auth_token *)req->auth)->hash);
	st->auth_session = ((const struct auth_token *)req->auth)->session;
	st->window_ms = (int64_t)conf->http_events_window_ms;
	st->backlog_max = conf->http_events_backlog;
	st->catching_up = after >= 0;
	/* Before the read: an event published from here on is held or sent, never missed. */
	if (events_subscribe(d->events, EVENTS_STREAM_KINDS | EVENTS_ALL_NODES, events_stream_cb,
		st, NULL) < 0 ||
	    (st->keepalive = event_new(d->base, -1, EV_PERSIST, events_stream_keepalive_cb, st)) ==
		NULL) {
		events_unsubscribe(d->events, events_stream_cb, st, NULL);
		events_stream_free(st);
		http_problem(req, 503, "out of memory");
		return;
	}
	st->subscribed = 1;
	http_add_header(req, "X-Accel-Buffering", "no");
	if (http_stream_start(req, "text/event-stream", EVENTS_STREAM_CAP, events_stream_closed_cb,
		st) < 0) {
		event_free(st->keepalive);
		events_unsubscribe(d->events, events_stream_cb, st, NULL);
		events_stream_free(st);
		http_problem(req, 503, "the server is stopping; try again on another node");
		return;
	}
	tv.tv_sec = (time_t)(conf->http_stream_keepalive_ms / 1000);
	tv.tv_usec = (suseconds_t)(conf->http_stream_keepalive_ms % 1000) * 1000;
	event_add(st->keepalive, &tv);
	if (events_stream_send(st, "retry: " EVENTS_RETRY "\n: connected\n\n") < 0)
		return;
	if (after >= 0)
		events_stream_read(st, after);
}

int
http_api_events_init(struct loketd *d, const char **error_r)
{
	return http_route_add(d->http, "core", LOKET_HTTP_GET, "/api/v1/events",
	    LOKET_ACCESS_TOKEN, events_get, d, error_r);
}
