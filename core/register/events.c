/*
 * events.c: register events: a bus that hands each event to its subscribers
 * in the order they subscribed, fed by the register once a write is durable.
 *
 * News travels up: the store completes a write on the loop and calls the
 * one hook it knows (events_store_done_cb), which publishes the events the
 * write stored in the same transaction, with their ids; the rules, timers,
 * gauges, the outbox and plugins subscribe. No subscriber is called back by
 * the module it subscribes to, so no module calls up into another.
 *
 * Several nodes may share one register (PostgreSQL): the driver reads back
 * the events other nodes stored and hands them here (events_remote_cb),
 * each once and in id order, never one this node stored itself. They are
 * published with ev->remote set and reach only the subscribers that asked
 * for every node's events (EVENTS_ALL_NODES: plugins, the gauges); the
 * rules, timers and outbox act on their own node's writes, so that a write
 * is acted on once, by the node that made it.
 *
 * Delivery never nests: an event published from inside a subscriber (a
 * plugin publishing in answer to one, say) is queued and delivered after the
 * current one has reached every subscriber. A subscriber that ends its
 * subscription during a delivery is skipped from then on and freed once the
 * queue is empty; one that subscribes during a delivery sees the events
 * published after it subscribed, never the one in flight.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "log.h"
#include "loketd.h"
#include "register.h"
#include "store.h"
#include "util.h"

#define EVENTS_NAME_MAX 64
#define EVENTS_JSON_MAX 4096
#define EVENTS_USER_MAX 64

struct events_sub {
	unsigned int kinds;
	events_cb cb; /* a core subscriber; or */
	void (*pub_cb)(const struct loket_event *ev, void *arg); /* a plugin */
	void *arg;
	const void *owner;
	uint64_t since; /* the events published before it subscribed */
	int dead;
	struct events_sub *next;
};

/* An event waiting for delivery: the published one, with its strings and documents held. */
struct events_item {
	struct events_event ev;
	uint64_t seq;
	char *name, *json, *user, *role, *source;
	struct events_item *next;
};

struct events {
	struct events_sub *subs;
	struct events_item *head, **tail;
	uint64_t seq;
	int delivering;
	int dead;
};

struct events *
events_new(void)
{
	struct events *bus = calloc(1, sizeof(*bus));

	if (bus == NULL)
		return NULL;
	bus->tail = &bus->head;
	return bus;
}

static void
events_item_free(struct events_item *it)
{
	json_decref(it->ev.payload);
	json_decref(it->ev.contact);
	json_decref(it->ev.detail);
	free(it->name);
	free(it->json);
	free(it->user);
	free(it->role);
	free(it->source);
	free(it);
}

void
events_free(struct events *bus)
{
	if (bus == NULL)
		return;
	while (bus->head != NULL) {
		struct events_item *it = bus->head;

		bus->head = it->next;
		events_item_free(it);
	}
	while (bus->subs != NULL) {
		struct events_sub *s = bus->subs;

		bus->subs = s->next;
		free(s);
	}
	free(bus);
}

static int
events_add(struct events *bus, unsigned int kinds, events_cb cb,
    void (*pub_cb)(const struct loket_event *ev, void *arg), void *arg, const void *owner)
{
	struct events_sub *s, **pp;

	if (bus == NULL || (cb == NULL && pub_cb == NULL) || (s = calloc(1, sizeof(*s))) == NULL)
		return -1;
	s->kinds = kinds;
	s->cb = cb;
	s->pub_cb = pub_cb;
	s->arg = arg;
	s->owner = owner;
	s->since = bus->seq;
	/* At the end: registration order is delivery order. */
	for (pp = &bus->subs; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = s;
	return 0;
}

int
events_subscribe(struct events *bus, unsigned int kinds, events_cb cb, void *arg,
    const void *owner)
{
	return cb != NULL ? events_add(bus, kinds, cb, NULL, arg, owner) : -1;
}

int
events_subscribe_plugin(struct events *bus, unsigned int kinds,
    void (*cb)(const struct loket_event *ev, void *arg), void *arg, const void *owner)
{
	/* A plugin sees the register as a whole, whichever node wrote. */
	return cb != NULL ? events_add(bus, kinds | EVENTS_ALL_NODES, NULL, cb, arg, owner) : -1;
}

/* Frees the subscriptions marked dead; only between deliveries, when nobody walks the list. */
static void
events_sweep(struct events *bus)
{
	struct events_sub **pp = &bus->subs;

	if (bus->delivering || !bus->dead)
		return;
	while (*pp != NULL) {
		struct events_sub *s = *pp;

		if (s->dead) {
			*pp = s->next;
			free(s);
		} else {
			pp = &s->next;
		}
	}
	bus->dead = 0;
}

static void
events_remove(struct events *bus, events_cb cb,
    void (*pub_cb)(const struct loket_event *ev, void *arg), void *arg, const void *owner)
{
	if (bus == NULL)
		return;
	for (struct events_sub *s = bus->subs; s != NULL; s = s->next) {
		if (s->cb == cb && s->pub_cb == pub_cb && s->arg == arg && s->owner == owner &&
		    !s->dead) {
			s->dead = 1;
			bus->dead = 1;
		}
	}
	events_sweep(bus);
}

void
events_unsubscribe(struct events *bus, events_cb cb, void *arg, const void *owner)
{
	events_remove(bus, cb, NULL, arg, owner);
}

void
events_unsubscribe_plugin(struct events *bus,
    void (*cb)(const struct loket_event *ev, void *arg), void *arg, const void *owner)
{
	events_remove(bus, NULL, cb, arg, owner);
}

void
events_unsubscribe_owner(struct events *bus, const void *owner)
{
	if (bus == NULL || owner == NULL)
		return;
	for (struct events_sub *s = bus->subs; s != NULL; s = s->next) {
		if (s->owner == owner && !s->dead) {
			s->dead = 1;
			bus->dead = 1;
		}
	}
	events_sweep(bus);
}

uint64_t
events_published(const struct events *bus)
{
	return bus != NULL ? bus->seq : 0;
}

static char *
events_dup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static void
events_deliver(struct events *bus, struct events_item *it)
{
	unsigned int kind = (unsigned int)it->ev.pub.kind;

	/* Subscribers added meanwhile are appended, so walking on reaches them too. */
	for (struct events_sub *s = bus->subs; s != NULL; s = s->next) {
		if (s->dead || (s->kinds & kind) == 0 || it->seq <= s->since)
			continue;
		if (it->ev.remote && (s->kinds & EVENTS_ALL_NODES) == 0)
			continue;
		if (s->cb != NULL)
			s->cb(&it->ev, s->arg);
		else
			s->pub_cb(&it->ev.pub, s->arg);
	}
}

json_t *
events_contact(const struct events_event *ev)
{
	if (ev->contact == NULL && ev->req != NULL)
		return contact_view_created_req(ev->req);
	return ev->contact;
}

void
events_publish(struct events *bus, const struct events_event *ev)
{
	struct events_item *it;

	if (bus == NULL || (it = calloc(1, sizeof(*it))) == NULL)
		return;
	it->ev = *ev;
	it->ev.payload = ev->payload != NULL ? json_incref(ev->payload) :
	    ev->pub.json != NULL		    ? json_loads(ev->pub.json, 0, NULL) :
						      NULL;
	if (!json_is_object(it->ev.payload)) {
		json_decref(it->ev.payload);
		it->ev.payload = json_object();
	}
	/* Delivered later (from inside another delivery): the write will be gone by then. */
	if (it->ev.req != NULL && bus->delivering) {
		it->ev.contact = contact_view_created_req(it->ev.req);
		it->ev.req = NULL;
	}
	json_incref(it->ev.contact);
	json_incref(it->ev.detail);
	it->name = events_dup(ev->pub.name);
	it->json = ev->pub.json != NULL ?
	    strdup(ev->pub.json) :
	    json_dumps(it->ev.payload, JSON_COMPACT | JSON_SORT_KEYS);
	it->user = events_dup(ev->pub.audience_user);
	it->role = events_dup(ev->pub.audience_role);
	it->source = events_dup(ev->pub.source != NULL ? ev->pub.source : "register");
	if (it->ev.payload == NULL || it->json == NULL || it->source == NULL ||
	    (ev->pub.name != NULL && it->name == NULL) ||
	    (ev->pub.audience_user != NULL && it->user == NULL) ||
	    (ev->pub.audience_role != NULL && it->role == NULL)) {
		log_warnx("events", "an event was not delivered: out of memory kind=%s",
		    ev->pub.name != NULL ? ev->pub.name : "?");
		events_item_free(it);
		return;
	}
	it->ev.pub.name = it->name;
	it->ev.pub.json = it->json;
	it->ev.pub.audience_user = it->user;
	it->ev.pub.audience_role = it->role;
	it->ev.pub.source = it->source;
	it->seq = ++bus->seq;
	*bus->tail = it;
	bus->tail = &it->next;
	if (bus->delivering)
		return;
	bus->delivering = 1;
	while ((it = bus->head) != NULL) {
		events_deliver(bus, it);
		if ((bus->head = it->next) == NULL)
			bus->tail = &bus->head;
		events_item_free(it);
	}
	bus->delivering = 0;
	events_sweep(bus);
}

/* Which writes leave the contact itself in their answer. */
static int
events_out_is_contact(enum store_op op)
{
	return op == STORE_CONTACT_CREATE || op == STORE_CONTACT_UPDATE || op == STORE_MESSAGE_ADD;
}

/*
 * A write completed. Its events are durable now (they were committed with
 * it): publish them in id order, then tell the timers whether a write that
 * closes a timer was stored. The write's internal answers (the earliest
 * timer it added, the status before) go to subscribers, not to clients.
 */
static void
events_store_done_cb(struct store_req *req, void *arg)
{
	struct loketd *d = arg;
	json_t *in = req->in, *out = req->out, *timer;
	int64_t timers_next = 0;
	int outbox = 0;

	if (req->result == STORE_OK && out != NULL) {
		if (json_is_integer(json_object_get(out, "timers_next")))
			timers_next = json_integer_value(json_object_get(out, "timers_next"));
		json_object_del(out, "timers_next");
		json_object_del(out, "previous_status");
		json_object_del(out, "message_row");
		outbox = json_array_size(json_object_get(in, "outbox")) > 0;
	}
	for (size_t i = 0; i < req->nevents; i++) {
		const struct store_event *se = &req->events[i];
		struct events_event ev = { 0 };

		ev.pub.id = (uint64_t)se->id;
		ev.pub.kind = se->kind;
		ev.pub.name = store_event_name(se->kind);
		ev.pub.at = se->at;
		ev.pub.contact_id = se->contact_id;
		ev.pub.task_id = se->task_id;
		/*
		 * The payload as the driver stored it: every node reads the same
		 * text (PostgreSQL keeps it as json, not jsonb, so its keys stay in
		 * the order they were written); events_publish parses it once.
		 */
		ev.pub.json = se->payload;
		ev.pub.source = "register";
		if (req->op == STORE_CONTACT_CREATE && !json_is_true(json_object_get(out, "duplicate")))
			ev.req = req;
		else if (events_out_is_contact(req->op))
			ev.contact = out;
		if (se->kind == LOKET_EVENT_MESSAGE_ADDED && req->op == STORE_MESSAGE_ADD)
			ev.detail = json_object_get(in, "message");
		ev.timers_next = timers_next;
		ev.outbox = outbox;
		events_publish(d->events, &ev);
	}
	timer = req->op == STORE_TIMER_DONE ? json_object_get(in, "id") :
					      json_object_get(in, "timer_done");
	if (json_is_integer(timer)) {
		struct events_event ev = { 0 };

		ev.pub.kind = (enum loket_event_kind)EVENTS_TIMER_SETTLED;
		ev.pub.name = "timer.settled";
		ev.pub.at = util_time_ms();
		ev.pub.json = "{}";
		ev.timer_id = json_integer_value(timer);
		ev.stored = req->result == STORE_OK;
		events_publish(d->events, &ev);
	}
}

/* Events other nodes stored, in id order, each once: for EVENTS_ALL_NODES subscribers. */
static void
events_remote_cb(const struct store_event *evs, size_t n, void *arg)
{
	struct loketd *d = arg;

	for (size_t i = 0; i < n; i++) {
		const struct store_event *se = &evs[i];
		struct events_event ev = { 0 };

		ev.pub.id = (uint64_t)se->id;
		ev.pub.kind = se->kind;
		ev.pub.name = store_event_name(se->kind);
		ev.pub.at = se->at;
		ev.pub.contact_id = se->contact_id;
		ev.pub.task_id = se->task_id;
		ev.pub.source = "register";
		ev.pub.json = se->payload;
		ev.remote = 1;
		if (ev.pub.name != NULL)
			events_publish(d->events, &ev);
	}
}

int
events_init(struct loketd *d)
{
	if (d->events == NULL && (d->events = events_new()) == NULL)
		return -1;
	d->store->view_hook = contact_view_req;
	d->store->view_arg = d;
	d->store->done_hook = events_store_done_cb;
	d->store->done_arg = d;
	d->store->remote_hook = events_remote_cb;
	d->store->remote_arg = d;
	return 0;
}

static int
events_name_ok(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n == 0 || n > EVENTS_NAME_MAX)
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* A user name as tokens and staff accounts have them: printable, no quotes or backslashes. */
static int
events_user_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x21 || *s == '"' || *s == '\\' || *s == 0x7f)
			return 0;
	return 1;
}

int
events_publish_audience(struct loketd *d, const char *source, const char *name,
    const char *json, const char *user, const char *role, const char **error_r)
{
	static const char *const roles[] = { "agent", "backoffice", "admin", "intake", NULL };
	struct events_event ev = { 0 };
	json_t *payload;
	size_t i;

	if (!events_name_ok(name)) {
		*error_r = "name: expected 1 to 64 lower case letters, digits, '.', '_' or '-'";
		return -1;
	}
	if (user == NULL && role == NULL) {
		*error_r = "an event needs an audience: a user, a role or both";
		return -1;
	}
	if (user != NULL && (user[0] == '\0' || strlen(user) > EVENTS_USER_MAX ||
				!events_user_ok(user))) {
		*error_r = "user: expected a user name of at most 64 characters";
		return -1;
	}
	for (i = 0; role != NULL && roles[i] != NULL && strcmp(roles[i], role) != 0; i++)
		;
	if (role != NULL && roles[i] == NULL) {
		*error_r = "role: expected agent, backoffice, admin or intake";
		return -1;
	}
	payload = json != NULL && strlen(json) <= EVENTS_JSON_MAX ?
	    json_loads(json, JSON_REJECT_DUPLICATES, NULL) :
	    NULL;
	if (!json_is_object(payload)) {
		json_decref(payload);
		*error_r = "json: expected a JSON object of at most 4 KiB";
		return -1;
	}
	ev.pub.kind = LOKET_EVENT_PUBLISHED;
	ev.pub.name = name;
	ev.pub.at = util_time_ms();
	ev.pub.audience_user = user;
	ev.pub.audience_role = role;
	ev.pub.source = source;
	ev.payload = payload;
	/* Re-encoded: subscribers get one compact object, whatever spacing the plugin used. */
	events_publish(d->events, &ev);
	json_decref(payload);
	return 0;
}
