/* test_events.c: register events: the bus's order and nesting, and the ids writes store. */
#include <event2/event.h>
#include <event2/thread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "events.h"
#include "log.h"
#include "loketd.h"
#include "metrics.h"
#include "store.h"
#include "util.h"

/* What the subscribers saw, in order: "A:contact.created", "B:x", ... */
struct seen {
	char log[64][48];
	size_t n;
	struct events *bus;
	int unsubscribe_b; /* A ends B's subscription on the first event */
	int publish_inner; /* A publishes "inner" from inside its first delivery */
};

static struct seen seen;

static void
note(const char *who, const struct events_event *ev)
{
	assert_true(seen.n < 64);
	snprintf(seen.log[seen.n++], sizeof(seen.log[0]), "%s:%s", who, ev->pub.name);
}

static void b_cb(const struct events_event *ev, void *arg);
static void c_cb(const struct events_event *ev, void *arg);

static void
publish_named(struct events *bus, const char *name, enum loket_event_kind kind)
{
	struct events_event ev = { 0 };

	ev.pub.kind = kind;
	ev.pub.name = name;
	ev.pub.json = "{\"status\":\"open\"}";
	events_publish(bus, &ev);
}

static void
a_cb(const struct events_event *ev, void *arg)
{
	note("A", ev);
	/* The payload comes parsed for core subscribers. */
	assert_string_equal(json_string_value(json_object_get(ev->payload, "status")), "open");
	if (seen.unsubscribe_b) {
		seen.unsubscribe_b = 0;
		events_unsubscribe(seen.bus, b_cb, NULL, NULL);
	}
	if (seen.publish_inner) {
		seen.publish_inner = 0;
		publish_named(seen.bus, "inner", LOKET_EVENT_CONTACT_CHANGED);
		/* Queued, not delivered inside this call: nobody saw it yet. */
		assert_string_equal(seen.log[seen.n - 1], "A:outer");
	}
}

static void
b_cb(const struct events_event *ev, void *arg)
{
	note("B", ev);
}

static void
c_cb(const struct events_event *ev, void *arg)
{
	note("C", ev);
}

static void
test_subscribers_in_registration_order(void **state)
{
	struct events *bus = events_new();

	memset(&seen, 0, sizeof(seen));
	seen.bus = bus;
	assert_int_equal(events_subscribe(bus, LOKET_EVENT_ALL, b_cb, NULL, NULL), 0);
	assert_int_equal(events_subscribe(bus, LOKET_EVENT_CONTACT_CREATED, a_cb, NULL, NULL), 0);
	assert_int_equal(events_subscribe(bus, LOKET_EVENT_TASK_DONE, c_cb, NULL, NULL), 0);
	publish_named(bus, "one", LOKET_EVENT_CONTACT_CREATED);
	publish_named(bus, "two", LOKET_EVENT_TASK_DONE);
	assert_int_equal(seen.n, 4);
	/* B subscribed first, so it hears first; each hears only its kinds. */
	assert_string_equal(seen.log[0], "B:one");
	assert_string_equal(seen.log[1], "A:one");
	assert_string_equal(seen.log[2], "B:two");
	assert_string_equal(seen.log[3], "C:two");
	assert_int_equal(events_published(bus), 2);
	events_free(bus);
}

static void
test_unsubscribe_during_delivery(void **state)
{
	struct events *bus = events_new();

	memset(&seen, 0, sizeof(seen));
	seen.bus = bus;
	seen.unsubscribe_b = 1;
	events_subscribe(bus, LOKET_EVENT_ALL, a_cb, NULL, NULL);
	events_subscribe(bus, LOKET_EVENT_ALL, b_cb, NULL, NULL);
	events_subscribe(bus, LOKET_EVENT_ALL, c_cb, NULL, NULL);
	publish_named(bus, "first", LOKET_EVENT_CONTACT_CREATED);
	publish_named(bus, "second", LOKET_EVENT_CONTACT_CREATED);
	/* B was ended by A before its turn: it hears neither; C still hears both. */
	assert_int_equal(seen.n, 4);
	assert_string_equal(seen.log[0], "A:first");
	assert_string_equal(seen.log[1], "C:first");
	assert_string_equal(seen.log[2], "A:second");
	assert_string_equal(seen.log[3], "C:second");
	events_free(bus);
}

static void
test_publish_from_a_callback_waits_its_turn(void **state)
{
	struct events *bus = events_new();

	memset(&seen, 0, sizeof(seen));
	seen.bus = bus;
	seen.publish_inner = 1;
	events_subscribe(bus, LOKET_EVENT_ALL, a_cb, NULL, NULL);
	events_subscribe(bus, LOKET_EVENT_ALL, b_cb, NULL, NULL);
	publish_named(bus, "outer", LOKET_EVENT_CONTACT_CREATED);
	/* "outer" reached every subscriber before "inner" reached any. */
	assert_int_equal(seen.n, 4);
	assert_string_equal(seen.log[0], "A:outer");
	assert_string_equal(seen.log[1], "B:outer");
	assert_string_equal(seen.log[2], "A:inner");
	assert_string_equal(seen.log[3], "B:inner");
	events_free(bus);
}

/* A plugin's callback sees the public part; its owner's subscriptions end at once. */
static int plugin_heard;

static void
plugin_cb(const struct loket_event *ev, void *arg)
{
	plugin_heard++;
	assert_string_equal(ev->json, "{\"status\":\"open\"}");
	assert_string_equal(ev->source, "register");
}

static void
test_owner_unsubscribed_at_once(void **state)
{
	struct events *bus = events_new();
	int owner;

	plugin_heard = 0;
	events_subscribe_plugin(bus, LOKET_EVENT_CONTACT_CREATED, plugin_cb, NULL, &owner);
	events_subscribe_plugin(bus, LOKET_EVENT_ALL, plugin_cb, &owner, &owner);
	publish_named(bus, "x", LOKET_EVENT_CONTACT_CREATED);
	assert_int_equal(plugin_heard, 2);
	events_unsubscribe_owner(bus, &owner);
	publish_named(bus, "y", LOKET_EVENT_CONTACT_CREATED);
	assert_int_equal(plugin_heard, 2);
	events_free(bus);
}

/* The register side: ids from the writes' own transaction, increasing, read back after N. */
struct fixture {
	char dir[64];
	struct conf *conf;
	struct event_base *base;
	struct metrics *metrics;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *err = NULL;
	char path[160];
	FILE *fp;

	evthread_use_pthreads();
	strcpy(f->dir, "/tmp/loket-test-events-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(path, sizeof(path), "%s/loket.conf", f->dir);
	fp = fopen(path, "w");
	fprintf(fp, "[loketd]\ndata_dir = %s\n", f->dir);
	fclose(fp);
	if (conf_load(path, &f->conf, &err) < 0)
		fail_msg("%s", err);
	f->base = event_base_new();
	f->metrics = metrics_new();
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	conf_free(f->conf);
	metrics_free(f->metrics);
	event_base_free(f->base);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

struct heard {
	uint64_t ids[64];
	char kinds[64][24];
	size_t n;
	int writes_done;
	int contact_before_answer; /* the contact's event came before the write's callback */
};

static struct heard heard;

static void
register_cb(const struct events_event *ev, void *arg)
{
	assert_true(heard.n < 64);
	heard.ids[heard.n] = ev->pub.id;
	snprintf(heard.kinds[heard.n], sizeof(heard.kinds[0]), "%s", ev->pub.name);
	heard.n++;
	/* A subscriber that asks gets the new contact as the API shows it. */
	if (ev->pub.kind == LOKET_EVENT_CONTACT_CREATED) {
		assert_non_null(events_contact(ev));
		assert_non_null(json_object_get(events_contact(ev), "channel"));
		assert_non_null(json_object_get(events_contact(ev), "received_at"));
	}
}

static void
written_cb(struct store_req *req, void *arg)
{
	assert_int_equal(req->result, STORE_OK);
	/* Published already, and the internal answers are gone from what the client gets. */
	heard.contact_before_answer += heard.n > 0;
	assert_null(json_object_get(req->out, "timers_next"));
	assert_null(json_object_get(req->out, "previous_status"));
	heard.writes_done++;
}

static json_t *
contact_doc(void)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:i, s:s, s:s, s:b, s:[], s:{}}",
	    "channel", "phone", "organisation", "gemeente", "status", "open", "created_by", "test",
	    "direction", "in", "received_at", (json_int_t)util_time_ms(), "priority", "normal",
	    "line", 1, "subject", "vraag", "body", "", "confidential", 0, "tags", "meta");
}

static void
run_writes(struct loketd *d, struct fixture *f, int n)
{
	int want = heard.writes_done + n;

	for (int i = 0; i < n; i++)
		store_submit(d->store, store_req_new(STORE_CONTACT_CREATE, contact_doc(), written_cb,
					   NULL));
	while (heard.writes_done < want)
		event_base_loop(f->base, EVLOOP_ONCE);
}

static void
after_cb(struct store_req *req, void *arg)
{
	json_t **out = arg;

	assert_int_equal(req->result, STORE_OK);
	*out = json_incref(json_object_get(req->out, "items"));
}

/* Reads are answered on the loop by the store's readers: wait for it. */
static json_t *
events_after(struct loketd *d, uint64_t after)
{
	json_t *items = NULL;

	store_submit(d->store, store_req_new(STORE_EVENTS_AFTER,
				   json_pack("{s:I, s:i}", "after", (json_int_t)after, "limit", 100),
				   after_cb, &items));
	while (items == NULL)
		event_base_loop(d->base, EVLOOP_ONCE);
	return items;
}

static void
open_register(struct loketd *d, struct fixture *f)
{
	const char *err = NULL;

	memset(d, 0, sizeof(*d));
	d->base = f->base;
	d->conf = f->conf;
	if (store_open(f->base, f->metrics, f->conf, &d->store, &err) < 0)
		fail_msg("%s", err);
	assert_int_equal(events_init(d), 0);
	assert_int_equal(events_subscribe(d->events, LOKET_EVENT_ALL, register_cb, NULL, NULL), 0);
}

static void
close_register(struct loketd *d)
{
	store_close(d->store);
	events_free(d->events);
}

static void
test_event_ids_durable_and_increasing(void **state)
{
	struct fixture *f = *state;
	struct loketd d;
	uint64_t last_before;
	json_t *items, *item;
	size_t i;

	memset(&heard, 0, sizeof(heard));
	open_register(&d, f);
	run_writes(&d, f, 3);
	assert_int_equal(heard.n, 3);
	assert_int_equal(heard.contact_before_answer, 3);
	for (i = 0; i < heard.n; i++) {
		assert_string_equal(heard.kinds[i], "contact.created");
		assert_true(heard.ids[i] > 0);
		if (i > 0)
			assert_true(heard.ids[i] > heard.ids[i - 1]);
	}
	last_before = heard.ids[heard.n - 1];
	close_register(&d);

	/* A restart: new ids go on above the old ones, never reused. */
	open_register(&d, f);
	run_writes(&d, f, 2);
	assert_int_equal(heard.n, 5);
	assert_true(heard.ids[3] > last_before);
	assert_true(heard.ids[4] > heard.ids[3]);

	/* After id N: exactly the later events, in id order, as they were published. */
	items = events_after(&d, heard.ids[1]);
	assert_int_equal(json_array_size(items), 3);
	json_array_foreach(items, i, item) {
		assert_int_equal(json_integer_value(json_object_get(item, "id")),
		    (json_int_t)heard.ids[2 + i]);
		assert_string_equal(json_string_value(json_object_get(item, "kind")),
		    "contact.created");
		assert_string_equal(json_string_value(json_object_get(json_object_get(item,
									  "payload"),
					"status")),
		    "open");
		assert_true(json_integer_value(json_object_get(item, "contact_id")) > 0);
	}
	json_decref(items);
	items = events_after(&d, heard.ids[4]);
	assert_int_equal(json_array_size(items), 0);
	json_decref(items);
	close_register(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_subscribers_in_registration_order),
		cmocka_unit_test(test_unsubscribe_during_delivery),
		cmocka_unit_test(test_publish_from_a_callback_waits_its_turn),
		cmocka_unit_test(test_owner_unsubscribed_at_once),
		cmocka_unit_test_setup_teardown(test_event_ids_durable_and_increasing, setup,
		    teardown),
	};

	log_init(LOKET_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
