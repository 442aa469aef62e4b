/*
 * hello.c: the smallest complete loket plugin: config keys and sub-sections, a
 * timer, HTTP routes that know who calls, a contact submitted as a channel
 * does, a reload, register events (subscribing, and publishing one for a
 * role or user), blobs kept and read back, and a lease held by one node of
 * those that share a register, and what a citizen may know of a contact.
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

/* [plugin.hello.greeting.ID]: as many as the config has, listed by GET /hello/greetings. */
static const struct loket_config_key hello_greeting_keys[] = {
	{ "text", LOKET_CONFIG_STRING, NULL, "the greeting itself" },
	{ "language", LOKET_CONFIG_STRING, "nl", "the language it is in" },
	{ NULL, 0, NULL, NULL },
};

static const struct loket_config_section hello_sections[] = {
	{ "greeting", hello_greeting_keys, "a greeting in some language", NULL },
	{ NULL, NULL, NULL, NULL },
};

/* A growing JSON text; a failed allocation marks it broken and the route answers 503. */
struct hello_buf {
	char *data;
	size_t len, size;
	int broken;
};

static void
hello_put(struct hello_buf *b, const char *s, size_t n)
{
	char *data;

	if (b->broken)
		return;
	if (b->len + n + 1 > b->size) {
		size_t size = (b->len + n + 1) * 2;

		if ((data = realloc(b->data, size)) == NULL) {
			b->broken = 1;
			return;
		}
		b->data = data;
		b->size = size;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
hello_raw(struct hello_buf *b, const char *s)
{
	hello_put(b, s, strlen(s));
}

/* A JSON string, or null for NULL: quotes, backslashes and control characters escaped. */
static void
hello_str(struct hello_buf *b, const char *s)
{
	char esc[8];

	if (s == NULL) {
		hello_raw(b, "null");
		return;
	}
	hello_raw(b, "\"");
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", (unsigned int)(unsigned char)*s);
			hello_raw(b, esc);
		} else {
			hello_put(b, s, 1);
		}
	}
	hello_raw(b, "\"");
}

static void
hello_send(const struct loket_api *api, struct loket_http_req *req, int status,
    struct hello_buf *b)
{
	if (b->broken)
		api->http_problem(req, 503, "out of memory");
	else
		api->http_reply(req, status, "application/json", b->data, b->len);
	free(b->data);
}

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

/* GET /hello/whoami: who calls, as the core tells a route handler; null without a token. */
static void
hello_whoami_cb(struct loket_http_req *req, void *arg)
{
	struct hello *h = arg;
	const struct loket_caller *c = h->api->http_caller(req);
	struct hello_buf b = { 0 };

	hello_raw(&b, "{\"caller\":");
	if (c == NULL) {
		hello_raw(&b, "null}");
		hello_send(h->api, req, 200, &b);
		return;
	}
	hello_raw(&b, "{\"name\":");
	hello_str(&b, c->name);
	hello_raw(&b, ",\"kind\":");
	hello_str(&b, c->kind);
	hello_raw(&b, ",\"role\":");
	hello_str(&b, c->role);
	hello_raw(&b, ",\"departments\":[");
	for (size_t i = 0; i < c->n_departments; i++) {
		hello_raw(&b, i > 0 ? "," : "");
		hello_str(&b, c->departments[i]);
	}
	hello_raw(&b, "],\"organisation\":");
	hello_str(&b, c->organisation);
	hello_raw(&b, "}}");
	hello_send(h->api, req, 200, &b);
}

/* GET /hello/greetings: every [plugin.hello.greeting.ID], in the order of the config file. */
static void
hello_greetings_cb(struct loket_http_req *req, void *arg)
{
	struct hello *h = arg;
	const char *const *ids;
	size_t n = h->api->config_sections(h->self, "greeting", &ids);
	struct hello_buf b = { 0 };

	hello_raw(&b, "{\"greetings\":[");
	for (size_t i = 0; i < n; i++) {
		hello_raw(&b, i > 0 ? ",{\"id\":" : "{\"id\":");
		hello_str(&b, ids[i]);
		hello_raw(&b, ",\"text\":");
		hello_str(&b, h->api->config_section_get(h->self, "greeting", ids[i], "text"));
		hello_raw(&b, ",\"language\":");
		hello_str(&b, h->api->config_section_get(h->self, "greeting", ids[i], "language"));
		hello_raw(&b, "}");
	}
	hello_raw(&b, "]}");
	hello_send(h->api, req, 200, &b);
}

/* A contact on its way to the register: freed when the register answered. */
struct hello_submit {
	struct hello *h;
	struct loket_http_req *req;
};

static void
hello_submitted_cb(const struct loket_submit_result *res, void *arg)
{
	struct hello_submit *hs = arg;
	const struct loket_api *api = hs->h->api;
	struct hello_buf b = { 0 };
	char num[32];

	if (res->status != 0) {
		api->http_problem(hs->req, res->status, res->error);
		free(hs);
		return;
	}
	snprintf(num, sizeof(num), "%lld", (long long)res->contact_id);
	hello_raw(&b, "{\"id\":");
	hello_raw(&b, num);
	hello_raw(&b, ",\"reference\":");
	hello_str(&b, res->reference);
	hello_raw(&b, res->duplicate ? ",\"duplicate\":true" : ",\"duplicate\":false");
	hello_raw(&b, res->threaded ? ",\"threaded\":true" : ",\"threaded\":false");
	hello_raw(&b, ",\"contact\":");
	hello_raw(&b, res->json != NULL ? res->json : "null");
	hello_raw(&b, "}");
	hello_send(api, hs->req, 201, &b);
	free(hs);
}

/*
 * POST /hello/contact?channel=web&subject=...&party.email=...: submits a
 * contact as a channel would, with the fields of the query string; answers
 * with what the register answered.
 */
static void
hello_contact_cb(struct loket_http_req *req, void *arg)
{
	static const char *const fields[] = { "subject", "body", "product", "department",
		"organisation", "direction", "language", "party.name", "party.email", "party.phone",
		"party.rrn", "party.bsn", NULL };
	struct hello *h = arg;
	const char *channel = h->api->http_query(req, "channel"), *v;
	struct hello_submit *hs;
	struct loket_contact *c;

	if (channel == NULL) {
		h->api->http_problem(req, 400, "channel: required");
		return;
	}
	if ((hs = malloc(sizeof(*hs))) == NULL || (c = h->api->contact_new(h->self, channel)) == NULL) {
		free(hs);
		h->api->http_problem(req, 503, "out of memory");
		return;
	}
	for (size_t i = 0; fields[i] != NULL; i++)
		if ((v = h->api->http_query(req, fields[i])) != NULL &&
		    h->api->contact_set(c, fields[i], v) < 0) {
			h->api->contact_free(c);
			free(hs);
			h->api->http_problem(req, 503, "out of memory");
			return;
		}
	/* The argument outlives this handler: the register answers on a later turn of the loop. */
	hs->h = h;
	hs->req = req;
	h->api->contact_submit(c, hello_submitted_cb, hs);
}

/* POST /hello/blob: keeps the body as a blob; answers {"sha256": its name}. */
static void
hello_blob_put_cb(struct loket_http_req *req, void *arg)
{
	struct hello *h = arg;
	size_t len = 0;
	const char *body = h->api->http_body(req, &len);
	char hex[65], error[256], out[96];
	int n;

	if (h->api->blob_put(h->self, body != NULL ? body : "", body != NULL ? len : 0, 0, hex,
		error, sizeof(error)) < 0) {
		h->api->http_problem(req, 503, error);
		return;
	}
	n = snprintf(out, sizeof(out), "{\"sha256\":\"%s\"}", hex);
	h->api->http_reply(req, 201, "application/json", out, (size_t)n);
}

/* GET /hello/blob/{sha256}: the blob's bytes, wherever the register keeps them. */
static void
hello_blob_get_cb(struct loket_http_req *req, void *arg)
{
	struct hello *h = arg;
	char error[256];
	void *data;
	size_t len;

	if (h->api->blob_get(h->self, h->api->http_param(req, "sha256"), &data, &len, error,
		sizeof(error)) < 0) {
		h->api->http_problem(req, 404, error);
		return;
	}
	h->api->http_reply(req, 200, "application/octet-stream", data, len);
	free(data);
}

/*
 * POST /hello/lease/{name}?ttl=MS&release=1: takes or renews the lease NAME
 * (the core keeps it as "hello:NAME") for this node, or gives it up;
 * answers {"held_ms": how long this node holds it}, 0 when another node
 * does. A plugin asks from a thread of its own, since lease waits for the
 * register; hello asks on the loop to stay short.
 */
static void
hello_lease_cb(struct loket_http_req *req, void *arg)
{
	struct hello *h = arg;
	const char *ttl = h->api->http_query(req, "ttl");
	const char *release = h->api->http_query(req, "release");
	char out[64];
	int64_t held;
	int n;

	held = h->api->lease(h->self, h->api->http_param(req, "name"),
	    ttl != NULL ? strtoull(ttl, NULL, 10) : 0, release != NULL && strcmp(release, "1") == 0);
	if (held < 0) {
		h->api->http_problem(req, 422,
		    "lease refused: a name of at most 128 bytes without blanks, quotes or "
		    "backslashes, and a ttl of at most 2147483647 ms");
		return;
	}
	n = snprintf(out, sizeof(out), "{\"held_ms\":%lld}", (long long)held);
	h->api->http_reply(req, 200, "application/json", out, (size_t)n);
}

/* A status request on its way to the register: freed when the core answered. */
struct hello_status {
	struct hello *h;
	struct loket_http_req *req;
};

/* Called on the loop, once, never inside contact_status: json is borrowed. */
static void
hello_status_done_cb(int status, const char *json, void *arg)
{
	struct hello_status *hs = arg;
	const struct loket_api *api = hs->h->api;

	if (status == 0)
		api->http_reply(hs->req, 200, "application/json", json, strlen(json));
	else if (status == 404)
		api->http_problem(hs->req, 404, "no contact with that reference and address");
	else
		api->http_problem(hs->req, 503, "the register cannot be read now; try again later");
	free(hs);
}

/*
 * POST /hello/status?reference=2026-000123&contact=jan@example.org: what the
 * citizen who gave that address (or phone number) with the contact may know
 * of it, as a public channel's status page would show it.
 */
static void
hello_status_cb(struct loket_http_req *req, void *arg)
{
	struct hello *h = arg;
	const char *reference = h->api->http_query(req, "reference");
	const char *contact = h->api->http_query(req, "contact");
	struct hello_status *hs;

	if (reference == NULL || contact == NULL) {
		h->api->http_problem(req, 400, "reference and contact: both required");
		return;
	}
	if ((hs = malloc(sizeof(*hs))) == NULL) {
		h->api->http_problem(req, 503, "out of memory");
		return;
	}
	hs->h = h;
	hs->req = req;
	if (h->api->contact_status(h->self, reference, contact, hello_status_done_cb, hs) < 0) {
		free(hs);
		h->api->http_problem(req, 503, "out of memory");
	}
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
	/* The first route that matches answers: the fixed paths go before /hello/{name}. */
	if ((h->timer = api->timer_new(self, hello_tick_cb, h)) == NULL ||
	    api->http_route(self, LOKET_HTTP_GET, "/hello/whoami", LOKET_ACCESS_PUBLIC,
		hello_whoami_cb, h) < 0 ||
	    api->http_route(self, LOKET_HTTP_GET, "/hello/greetings", LOKET_ACCESS_TOKEN,
		hello_greetings_cb, h) < 0 ||
	    api->http_route(self, LOKET_HTTP_POST, "/hello/contact", LOKET_ACCESS_INTAKE,
		hello_contact_cb, h) < 0 ||
	    api->http_route(self, LOKET_HTTP_GET, "/hello/{name}", LOKET_ACCESS_PUBLIC,
		hello_route_cb, h) < 0) {
		api->timer_free(h->timer);
		free(h);
		*error_r = "cannot set up the timer or the routes";
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
	/* Blob reads came with ABI 1.6; hello needs both entries for its blob routes. */
	if (LOKET_API_HAS(api, blob_get) &&
	    (api->http_route(self, LOKET_HTTP_POST, "/hello/blob", LOKET_ACCESS_ADMIN,
		 hello_blob_put_cb, h) < 0 ||
		api->http_route(self, LOKET_HTTP_GET, "/hello/blob/{sha256}", LOKET_ACCESS_ADMIN,
		    hello_blob_get_cb, h) < 0)) {
		api->timer_free(h->timer);
		free(h);
		*error_r = "cannot add the blob routes";
		return -1;
	}
	/* Leases came with ABI 1.7. */
	if (LOKET_API_HAS(api, lease) &&
	    api->http_route(self, LOKET_HTTP_POST, "/hello/lease/{name}", LOKET_ACCESS_ADMIN,
		hello_lease_cb, h) < 0) {
		api->timer_free(h->timer);
		free(h);
		*error_r = "cannot add the lease route";
		return -1;
	}
	/* A citizen's view of a contact came with ABI 1.8. */
	if (LOKET_API_HAS(api, contact_status) &&
	    api->http_route(self, LOKET_HTTP_POST, "/hello/status", LOKET_ACCESS_ADMIN,
		hello_status_cb, h) < 0) {
		api->timer_free(h->timer);
		free(h);
		*error_r = "cannot add the status route";
		return -1;
	}
	api->timer_arm(h->timer, (uint64_t)api->config_get_int(self, "tick"));
	api->set_data(self, h);
	api->log(self, LOKET_LOG_INFO, "ready greeting=%s", api->config_get(self, "greeting"));
	return 0;
}

/*
 * SIGHUP: config_get and config_section_get now answer the new values and
 * sub-sections. hello keeps no pointer to a value (it asks each time, on
 * the loop), so it only re-arms its timer with the new tick; a plugin that
 * kept a value would copy the new one here, since the old one is freed
 * when this returns.
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
    .config_keys = hello_keys, .config_sections = hello_sections, .load = hello_load,
    .unload = hello_unload, .reload = hello_reload);
