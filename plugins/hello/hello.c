/* hello.c: the smallest complete loket plugin: config keys, a timer, an HTTP route, a reload. */
#include <stdio.h>
#include <stdlib.h>

#include <loket/plugin.h>

struct hello {
	const struct loket_api *api;
	struct loket_plugin *self;
	struct loket_timer *timer;
	unsigned long ticks;
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
