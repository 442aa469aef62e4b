/*
 * hello.c: the smallest complete loket plugin: config keys, a timer, an HTTP
 * route, a reload, and register events (subscribing, and publishing one for
 * a role or user).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <loket/plugin.h>

#define HELLO_IDS 16

struct hello {
	const struct loket_api *api;
	struct loket_plugin *self;
	struct loket_timer *timer;
	unsigned long ticks;
	/* What register events told: contacts created, the last ids seen, the last payload. */
	unsigned long created;
	uint64_t ids[HELLO_IDS];
	size_t nids;
	char last_created[256];
	/* The last published event heard, as JSON (its strings are checked by the core). */
	char published[5120];
};

static const struct loket_config_key hello_keys[] = {
	{ "greeting", LOKET_CONFIG_STRING, "Hallo", "the word GET /hello/{name} greets with" },
	{ "tick", LOKET_CONFIG_DURATION, "1s", "how often the tick counter goes up" },
	{ NULL, 0, NULL, NULL },
};

static void
hello_tick_cb(void *arg)
{
	struct hello *h = arg;

	h->ticks++;
	h->api->timer_arm(h->timer, (uint64_t)h->api->config_get_int(h->self, "tick"));
}

static void
hello_route_cb(struct loket_http_req *req, void *arg)
{
	struct hello *h = arg;
	const char *name = h->api->http_param(req, "name");
	char body[512];
	int n;

	/* Only letters keep the hand-made JSON below valid; anything else is refused. */
	for (const char *c = name; *c != '\0'; c++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z'))) {
			h->api->http_problem(req, 400, "a name has letters only");
			return;
		}
	}
	n = snprintf(body, sizeof(body), "{\"greeting\":\"%s, %s\",\"ticks\":%lu}",
	    h->api->config_get(h->self, "greeting"), name, h->ticks);
	if (n < 0 || (size_t)n >= sizeof(body)) {
		h->api->http_problem(req, 400, "that name is too long");
		return;
	}
	h->api->http_reply(req, 200, "application/json", body, (size_t)n);
}

/* Called on the loop for each event; what it points at is borrowed: copy what is kept. */
static void
hello_event_cb(const struct loket_event *ev, void *arg)
{
	struct hello *h = arg;

	if (ev->kind == LOKET_EVENT_CONTACT_CREATED) {
		h->created++;
		if (h->nids == HELLO_IDS) {
			memmove(h->ids, h->ids + 1, (HELLO_IDS - 1) * sizeof(h->ids[0]));
			h->nids--;
		}
		h->ids[h->nids++] = ev->id;
		snprintf(h->last_created, sizeof(h->last_created), "%s", ev->json);
		return;
	}
	if (ev->kind == LOKET_EVENT_PUBLISHED)
		snprintf(h->published, sizeof(h->published),
		    "{\"id\":%llu,\"name\":\"%s\",\"source\":\"%s\",\"user\":%s%s%s,"
		    "\"role\":%s%s%s,\"json\":%s}",
		    (unsigned long long)ev->id, ev->name, ev->source,
		    ev->audience_user != NULL ? "\"" : "",
		    ev->audience_user != NULL ? ev->audience_user : "null",
		    ev->audience_user != NULL ? "\"" : "", ev->audience_role != NULL ? "\"" : "",
		    ev->audience_role != NULL ? ev->audience_role : "null",
		    ev->audience_role != NULL ? "\"" : "", ev->json);
}

/* GET /hello-events: what the subscription heard (no personal data: ids and statuses). */
static void
hello_events_cb(struct loket_http_req *req, void *arg)
{
	struct hello *h = arg;
	char body[8192], ids[HELLO_IDS * 24] = "";
	size_t used = 0;
	int n;

	for (size_t i = 0; i < h->nids; i++)
		used += (size_t)snprintf(ids + used, sizeof(ids) - used, "%s%llu", i > 0 ? "," : "",
		    (unsigned long long)h->ids[i]);
	n = snprintf(body, sizeof(body),
	    "{\"contacts_created\":%lu,\"ids\":[%s],\"last_created\":%s,\"published\":%s}",
	    h->created, ids, h->last_created[0] != '\0' ? h->last_created : "null",
	    h->published[0] != '\0' ? h->published : "null");
	h->api->http_reply(req, 200, "application/json", body, (size_t)n);
}

/*
 * POST /hello-events/offer?role=agent&user=jan: publishes "call.offered" for
 * that role and user, as a channel offering a waiting call would.
 */
static void
hello_offer_cb(struct loket_http_req *req, void *arg)
{
	struct hello *h = arg;
	const char *role = h->api->http_query(req, "role");
	const char *user = h->api->http_query(req, "user");

	if (h->api->event_publish(h->self, "call.offered", "{\"queue\":\"algemeen\"}", user, role) <
	    0) {
		h->api->http_problem(req, 422,
		    "the event was refused: give role (agent, backoffice, admin or intake), user, "
		    "or both");
		return;
	}
	h->api->http_reply(req, 202, "application/json", "{\"published\":true}", 18);
}

static int
hello_load(struct loket_plugin *self, const struct loket_api *api, const char **error_r)
{
	struct hello *h = calloc(1, sizeof(*h));

	if (h == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	h->api = api;
	h->self = self;
	if ((h->timer = api->timer_new(self, hello_tick_cb, h)) == NULL ||
	    api->http_route(self, LOKET_HTTP_GET, "/hello/{name}", LOKET_ACCESS_PUBLIC,
		hello_route_cb, h) < 0) {
		api->timer_free(h->timer);
		free(h);
		*error_r = "cannot set up the timer or the route";
		return -1;
	}
	/* Events came with ABI 1.3: a plugin that can run on an older core asks first. */
	if (LOKET_API_HAS(api, events_subscribe) &&
	    (api->events_subscribe(self, LOKET_EVENT_CONTACT_CREATED | LOKET_EVENT_PUBLISHED,
		 hello_event_cb, h) < 0 ||
		api->http_route(self, LOKET_HTTP_GET, "/hello-events", LOKET_ACCESS_ADMIN,
		    hello_events_cb, h) < 0 ||
		api->http_route(self, LOKET_HTTP_POST, "/hello-events/offer", LOKET_ACCESS_ADMIN,
		    hello_offer_cb, h) < 0)) {
		api->timer_free(h->timer);
		free(h);
		*error_r = "cannot subscribe to register events or add their routes";
		return -1;
	}
	api->timer_arm(h->timer, (uint64_t)api->config_get_int(self, "tick"));
	api->set_data(self, h);
	api->log(self, LOKET_LOG_INFO, "ready greeting=%s", api->config_get(self, "greeting"));
	return 0;
}

/*
 * SIGHUP: config_get now answers the new values. hello keeps no pointer to
 * a value (it asks config_get each time, on the loop), so it only re-arms
 * its timer with the new tick; a plugin that kept a value would copy the
 * new one here, since the old one is freed when this returns.
 */
static int
hello_reload(struct loket_plugin *self, const struct loket_api *api, const char **error_r)
{
	struct hello *h = api->get_data(self);

	(void)error_r;
	api->timer_arm(h->timer, (uint64_t)api->config_get_int(self, "tick"));
	api->log(self, LOKET_LOG_INFO, "reloaded greeting=%s", api->config_get(self, "greeting"));
	return 0;
}

/* The core ends the event subscriptions itself at unload; nothing of them is left to free. */
static void
hello_unload(struct loket_plugin *self, const struct loket_api *api)
{
	struct hello *h = api->get_data(self);

	api->timer_free(h->timer);
	free(h);
}

LOKET_PLUGIN_DEFINE(.name = "hello", .version = "1.0", .description = "greets by name",
    .config_keys = hello_keys, .load = hello_load, .unload = hello_unload,
    .reload = hello_reload);
