/*
 * events.h: register events: the bus that carries news up from the register
 * to its subscribers (rules, timers, gauges, the outbox, plugins).
 */
#ifndef LOKET_EVENTS_H
#define LOKET_EVENTS_H

#include <jansson.h>
#include <stdint.h>

#include "loket/plugin.h"

struct loketd;
struct store_req;

/*
 * Kinds only the core sees, beyond the public LOKET_EVENT_* bits; never
 * durable, never handed to plugins.
 */
enum events_internal {
	/* A timer came due and needs its rules run; detail is the timer's row. */
	EVENTS_TIMER_DUE = 1u << 16,
	/* A write that closes a timer (timer_id) completed, stored (stored = 1) or not. */
	EVENTS_TIMER_SETTLED = 1u << 17,
	/*
	 * Not a kind, a subscription flag: the subscriber also gets the register
	 * events other nodes sharing the register stored (ev->remote set), read
	 * back by the driver. Without it a subscriber acts on this node's writes
	 * only, as the rules, timers and outbox must (or each node would act on
	 * every write). Plugins always have it.
	 */
	EVENTS_ALL_NODES = 1u << 24,
};
#define EVENTS_PUBLIC LOKET_EVENT_ALL

/* One event as core subscribers see it; borrowed for the duration of the callback. */
struct events_event {
	struct loket_event pub; /* what a plugin sees; pub.json is payload as text */
	json_t *payload;        /* pub.json parsed; an object, never NULL when delivered */
	json_t *contact;        /* the contact as the write left it, or NULL: see events_contact */
	/* A new contact's write, while it is delivered: events_contact builds its view on demand. */
	struct store_req *req;
	json_t *detail;         /* message.added: the message as submitted; EVENTS_TIMER_DUE: the timer */
	int64_t timer_id;       /* EVENTS_TIMER_SETTLED */
	int stored;             /* EVENTS_TIMER_SETTLED: 1 when the write was stored */
	int64_t timers_next;    /* the earliest timer the write added (ms), or 0 */
	int outbox;             /* the write queued outbound messages */
	/*
	 * Another node stored it: only payload and pub are set (contact,
	 * detail NULL); delivered only to EVENTS_ALL_NODES subscribers.
	 */
	int remote;
};

typedef void (*events_cb)(const struct events_event *ev, void *arg);

/* The contact as the write left it (a new contact's view built on the first call), or NULL. */
json_t *events_contact(const struct events_event *ev);

/* events.c */
struct events *events_new(void);
void events_free(struct events *bus);
/*
 * Calls cb for every event of kinds (with EVENTS_ALL_NODES: of every node) published after this call, after the
 * subscribers that came before. owner (a plugin, or NULL for the core) lets
 * events_unsubscribe_owner end them all at once. Returns -1 without memory.
 */
int events_subscribe(struct events *bus, unsigned int kinds, events_cb cb, void *arg,
    const void *owner);
/* Ends the subscriptions of cb with arg (and owner); none is called after this returns. */
void events_unsubscribe(struct events *bus, events_cb cb, void *arg, const void *owner);
/*
 * The same for a plugin (owner), whose callback sees the public part
 * (ev->pub) only, of every node's events (EVENTS_ALL_NODES is implied).
 */
int events_subscribe_plugin(struct events *bus, unsigned int kinds,
    void (*cb)(const struct loket_event *ev, void *arg), void *arg, const void *owner);
void events_unsubscribe_plugin(struct events *bus,
    void (*cb)(const struct loket_event *ev, void *arg), void *arg, const void *owner);
void events_unsubscribe_owner(struct events *bus, const void *owner);
/*
 * Hands ev to the subscribers of its kind, in the order they subscribed.
 * ev is copied: the caller keeps what it passed. Called from inside a
 * subscriber, the event waits until the one being delivered has reached
 * every subscriber, so deliveries never nest and every subscriber sees
 * events in the order they were published. Loop thread only.
 */
void events_publish(struct events *bus, const struct events_event *ev);
/* How many events were published (for tests and stats). */
uint64_t events_published(const struct events *bus);

/*
 * The register's side: the store's completion hook, which publishes the
 * events a write stored (with their ids) on the loop, before the write's own
 * callback runs, and its remote hook, which publishes the events other
 * nodes stored (ev->remote). Installs them on d->store.
 */
int events_init(struct loketd *d);
/* A plugin publishes an event for a user or role (the ABI's event_publish). */
int events_publish_audience(struct loketd *d, const char *source, const char *name,
    const char *json, const char *user, const char *role, const char **error_r);

#endif
