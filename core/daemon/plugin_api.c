/* api.c: the function table the core hands to plugins (struct loket_api). */
#include "config.h"

#include <event2/event.h>
#include <event2/http.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "catalogue.h"
#include "conf.h"
#include "contact.h"
#include "events.h"
#include "http.h"
#include "http_status.h"
#include "log.h"
#include "daemon.h"
#include "loketd.h"
#include "metrics.h"
#include "outbox.h"
#include "plugin.h"
#include "register.h"
#include "store.h"
#include "units.h"
#include "util.h"

struct loket_timer {
	struct event *ev;
	void (*cb)(void *arg);
	void *arg;
};

static void
api_log(struct loket_plugin *self, enum loket_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(level, self->name, fmt, ap);
	va_end(ap);
}

static const char *
api_config_get(struct loket_plugin *self, const char *key)
{
	for (size_t i = 0; i < self->config->nvalues; i++)
		if (strcmp(self->info->config_keys[i].name, key) == 0)
			return self->config->values[i];
	return NULL;
}

/* Ints, durations (ms), sizes (bytes) and booleans (0/1) all read back as numbers. */
static int64_t
api_config_int(enum loket_config_type type, const char *v)
{
	uint64_t u;
	int64_t i;
	int b;

	if (v == NULL)
		return 0;
	switch (type) {
	case LOKET_CONFIG_INT:
		return util_parse_int(v, &i) == 0 ? i : 0;
	case LOKET_CONFIG_BOOL:
		return util_parse_bool(v, &b) == 0 ? b : 0;
	case LOKET_CONFIG_DURATION:
		return util_parse_duration_ms(v, &u) == 0 ? (int64_t)u : 0;
	case LOKET_CONFIG_SIZE:
		return util_parse_size(v, &u) == 0 ? (int64_t)u : 0;
	case LOKET_CONFIG_STRING:
		return util_parse_int(v, &i) == 0 ? i : 0;
	}
	return 0;
}

static int64_t
api_config_get_int(struct loket_plugin *self, const char *key)
{
	for (size_t i = 0; i < self->config->nvalues; i++)
		if (strcmp(self->info->config_keys[i].name, key) == 0)
			return api_config_int(self->info->config_keys[i].type, self->config->values[i]);
	return 0;
}

static const struct plugin_kind *
api_kind(struct loket_plugin *self, const char *kind)
{
	for (size_t i = 0; kind != NULL && i < self->config->nkinds; i++)
		if (strcmp(self->config->kinds[i].decl->kind, kind) == 0)
			return &self->config->kinds[i];
	return NULL;
}

static size_t
api_config_sections(struct loket_plugin *self, const char *kind, const char *const **names_r)
{
	const struct plugin_kind *k = api_kind(self, kind);
	static const char *const none[] = { NULL };

	if (names_r != NULL)
		*names_r = k != NULL && k->names != NULL ? k->names : none;
	return k != NULL ? k->nsubs : 0;
}

/* The key's index in the kind and the sub-section's values, or -1. */
static int
api_section_key(struct loket_plugin *self, const char *kind, const char *name, const char *key,
    const struct loket_config_key **key_r, const char **value_r)
{
	const struct plugin_kind *k = api_kind(self, kind);

	if (k == NULL || name == NULL || key == NULL)
		return -1;
	for (size_t j = 0; j < k->nsubs; j++) {
		if (strcmp(k->subs[j].name, name) != 0)
			continue;
		for (size_t i = 0; i < k->nkeys; i++) {
			if (strcmp(k->decl->keys[i].name, key) == 0) {
				*key_r = &k->decl->keys[i];
				*value_r = k->subs[j].values[i];
				return 0;
			}
		}
	}
	return -1;
}

static const char *
api_config_section_get(struct loket_plugin *self, const char *kind, const char *name,
    const char *key)
{
	const struct loket_config_key *k;
	const char *v;

	return api_section_key(self, kind, name, key, &k, &v) == 0 ? v : NULL;
}

static int64_t
api_config_section_get_int(struct loket_plugin *self, const char *kind, const char *name,
    const char *key)
{
	const struct loket_config_key *k;
	const char *v;

	return api_section_key(self, kind, name, key, &k, &v) == 0 ? api_config_int(k->type, v) : 0;
}

static struct event_base *
api_event_base(struct loket_plugin *self)
{
	return self->daemon->base;
}

static void
api_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loket_timer *t = arg;

	t->cb(t->arg);
}

static struct loket_timer *
api_timer_new(struct loket_plugin *self, void (*cb)(void *arg), void *arg)
{
	struct loket_timer *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->cb = cb;
	t->arg = arg;
	if ((t->ev = evtimer_new(self->daemon->base, api_timer_cb, t)) == NULL) {
		free(t);
		return NULL;
	}
	return t;
}

static int
api_timer_arm(struct loket_timer *t, uint64_t after_ms)
{
	struct timeval tv = { .tv_sec = (time_t)(after_ms / 1000),
		.tv_usec = (suseconds_t)(after_ms % 1000) * 1000 };

	return evtimer_add(t->ev, &tv);
}

static void
api_timer_cancel(struct loket_timer *t)
{
	evtimer_del(t->ev);
}

static void
api_timer_free(struct loket_timer *t)
{
	if (t == NULL)
		return;
	event_free(t->ev);
	free(t);
}

static int
api_http_route(struct loket_plugin *self, unsigned int methods, const char *pattern,
    enum loket_http_access access, void (*fn)(struct loket_http_req *req, void *arg), void *arg)
{
	const char *err = NULL;

	if (http_route_add(self->daemon->http, self->name, methods, pattern, access, fn, arg,
		&err) < 0) {
		log_warnx(self->name, "cannot add route pattern=%s reason=\"%s\"", pattern, err);
		return -1;
	}
	return 0;
}

static const char *
api_http_body(struct loket_http_req *req, size_t *len_r)
{
	if (len_r != NULL)
		*len_r = req->body_len;
	return req->body;
}

static struct loket_contact *
api_contact_new(struct loket_plugin *self, const char *channel)
{
	return contact_new(self->daemon, self->name, channel);
}

/* A plugin's submit waiting for the register: the plugin's callback and its argument. */
struct api_submit {
	void (*cb)(const struct loket_submit_result *res, void *arg);
	void *arg;
};

static void
api_contact_submitted_cb(const struct register_result *res, void *arg)
{
	struct api_submit *p = arg;
	struct loket_submit_result out = { .status = http_status_of_store(res->result),
		.error = res->error,
		.contact_id = res->contact_id, .reference = res->reference,
		.duplicate = res->duplicate, .threaded = res->threaded };
	json_t *contact = res->result == STORE_OK ? register_result_contact(res) : res->contact;
	char *json = contact != NULL ? json_dumps(contact, JSON_COMPACT) : NULL;

	out.json = json;
	p->cb(&out, p->arg);
	free(json);
	free(p);
}

/*
 * A channel's contact enters the register through the same door as the
 * API's: register_submit. The channel's keys and thread hints travel on
 * the contact (contact_key, contact_message); the actor is the plugin.
 */
static void
api_contact_submit(struct loket_contact *c,
    void (*cb)(const struct loket_submit_result *res, void *arg), void *arg)
{
	struct api_submit *p = malloc(sizeof(*p));
	struct register_caller who = { .actor = c->source };

	if (p == NULL) {
		struct loket_submit_result out = { .status = 503, .error = "out of memory" };

		contact_free(c);
		cb(&out, arg);
		return;
	}
	p->cb = cb;
	p->arg = arg;
	register_submit(c->daemon, c, &who, api_contact_submitted_cb, p);
}

static void
api_set_data(struct loket_plugin *self, void *data)
{
	self->data = data;
}

static void *
api_get_data(struct loket_plugin *self)
{
	return self->data;
}

static void
api_metric(struct loket_plugin *self, int gauge, const char *name, const char *help,
    const char *labels, double value)
{
	struct metric_series *s;

	/* A plugin's families carry the loket_ prefix like the core's. */
	if (name == NULL || strncmp(name, "loket_", 6) != 0)
		return;
	s = metrics_series(self->daemon->metrics, gauge ? METRIC_GAUGE : METRIC_COUNTER, name,
	    help != NULL ? help : "", labels != NULL ? labels : "", NULL, 0);
	if (s == NULL)
		return;
	if (gauge)
		metrics_set(s, value);
	else
		metrics_add(s, value);
}

static const char *
api_data_dir(struct loket_plugin *self)
{
	return self->daemon->conf->data_dir;
}

/*
 * Any thread: the register is reached through the store's own lock, never
 * through the daemon's state, which belongs to the loop.
 */
static int
api_blob_fail(enum store_result res, char *error, size_t errlen)
{
	snprintf(error, errlen, "%s",
	    res == STORE_UNAVAILABLE ?
		"the register cannot store the file right now (the disk is full, or it is closed)" :
		"the register could not store the file");
	return -1;
}

static int
api_blob_put(struct loket_plugin *self, const void *data, size_t len, unsigned int flags,
    char sha256_hex[65], char *error, size_t errlen)
{
	enum store_result res = store_blob_put(NULL, data, len,
	    flags & LOKET_BLOB_DEFER_SYNC ? STORE_BLOB_DEFER_SYNC : 0, sha256_hex);

	return res == STORE_OK ? 0 : api_blob_fail(res, error, errlen);
}

static int
api_blob_sync(struct loket_plugin *self, char *error, size_t errlen)
{
	enum store_result res = store_blob_sync(NULL);

	return res == STORE_OK ? 0 : api_blob_fail(res, error, errlen);
}

static int
api_blob_get(struct loket_plugin *self, const char *sha256_hex, void **data_r, size_t *len_r,
    char *error, size_t errlen)
{
	enum store_result res;

	(void)self;
	if (sha256_hex == NULL || data_r == NULL || len_r == NULL) {
		snprintf(error, errlen, "blob_get: no blob name or no place for the bytes");
		return -1;
	}
	res = store_blob_get(NULL, sha256_hex, data_r, len_r);
	if (res == STORE_OK)
		return 0;
	snprintf(error, errlen, "%s",
	    res == STORE_NOT_FOUND ? "the register keeps no file with that SHA-256" :
	    res == STORE_UNAVAILABLE ?
				     "the register cannot read the file right now (it is closed)" :
				     "the register could not read the file");
	return -1;
}

/*
 * Any thread, as the blobs: the register's lease under the plugin's own
 * name, so that one plugin cannot take or give up another's.
 */
static int64_t
api_lease(struct loket_plugin *self, const char *name, uint64_t ttl_ms, int release)
{
	char full[320];
	int64_t ttl = 0;
	size_t len = name != NULL ? strlen(name) : 0;

	if (len == 0 || len > 128) {
		log_warnx(self->name, "lease refused: a lease name has 1 to 128 bytes");
		return -1;
	}
	/* The name goes into log lines: nothing that could split or fake one. */
	for (const unsigned char *c = (const unsigned char *)name; *c != '\0'; c++)
		if (*c <= ' ' || *c == 0x7f || *c == '"' || *c == '\\') {
			log_warnx(self->name, "lease refused: a lease name has no blanks, control "
			    "characters, quotes or backslashes");
			return -1;
		}
	if (ttl_ms > (uint64_t)INT32_MAX) {
		log_warnx(self->name, "lease refused: a lease lasts at most %d ms", INT32_MAX);
		return -1;
	}
	snprintf(full, sizeof(full), "%s:%s", self->name, name);
	if (store_lease(NULL, full, (int64_t)ttl_ms, release, &ttl) != STORE_OK)
		return 0;
	return ttl;
}

/* 1.8: the catalogue as loaded now, for a public form; never the standard answers. */
static char *
api_catalogue_json(struct loket_plugin *self)
{
	struct loketd *d = self->daemon;
	const struct catalogue *cat = d->units != NULL ? units_catalogue(d->units) : NULL;
	json_t *items = json_array();
	char *text;

	for (size_t i = 0; items != NULL && cat != NULL && i < cat->nproducts; i++)
		if (json_array_append_new(items, catalogue_product_json(&cat->products[i], 0)) < 0) {
			json_decref(items);
			items = NULL;
		}
	text = items != NULL ? json_dumps(items, JSON_COMPACT) : NULL;
	json_decref(items);
	return text;
}

static int
api_expected_answer(struct loket_plugin *self, const char *product, int64_t from_ms,
    int64_t *due_ms_r)
{
	struct loketd *d = self->daemon;
	const char *error = "no calendars are loaded";
	long long due;

	if (due_ms_r == NULL || d->units == NULL ||
	    units_expected(d->units, product, from_ms, &due, &error) < 0) {
		log_warnx(self->name, "no expected answer date: %s", error);
		return -1;
	}
	*due_ms_r = due;
	return 0;
}

/* A plugin hears the public part of an event, its own kinds only. */
static int
api_events_subscribe(struct loket_plugin *self, unsigned int kinds,
    void (*cb)(const struct loket_event *ev, void *arg), void *arg)
{
	if (cb == NULL || (kinds & EVENTS_PUBLIC) == 0) {
		log_warnx(self->name, "cannot subscribe to events: %s",
		    cb == NULL ? "no callback" : "no known event kind");
		return -1;
	}
	return events_subscribe_plugin(self->daemon->events, kinds & EVENTS_PUBLIC, cb, arg, self);
}

static void
api_events_unsubscribe(struct loket_plugin *self,
    void (*cb)(const struct loket_event *ev, void *arg), void *arg)
{
	events_unsubscribe_plugin(self->daemon->events, cb, arg, self);
}

static int
api_event_publish(struct loket_plugin *self, const char *name, const char *json,
    const char *user, const char *role)
{
	const char *err = NULL;

	if (events_publish_audience(self->daemon, self->name, name, json, user, role, &err) < 0) {
		log_warnx(self->name, "event not published: %s", err);
		return -1;
	}
	return 0;
}

static int
api_outbox_sender(struct loket_plugin *self, const char *channel,
    void (*send)(struct loket_outbound *o, const char *item_json, void *arg), void *arg)
{
	return outbox_sender(self->daemon, self, channel, send, arg);
}

/* A header a plugin adds: never one that could split the answer or contradict the core. */
static int
api_http_header_set(struct loket_http_req *req, const char *name, const char *value)
{
	static const char *const core_owned[] = { "Content-Type", "Content-Length",
		"Transfer-Encoding", "Connection", NULL };

	if (req == NULL || name == NULL || value == NULL || *name == '\0')
		return -1;
	for (const char *p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			(*p >= '0' && *p <= '9') || strchr("!#$%&'*+-.^_`|~", *p) != NULL))
			return -1;
	for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return -1;
	for (size_t i = 0; core_owned[i] != NULL; i++)
		if (strcasecmp(name, core_owned[i]) == 0)
			return -1;
	http_add_header(req, name, value);
	return 0;
}

static const char *
api_http_peer(struct loket_http_req *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req->ev);
	char *addr = NULL;
	ev_uint16_t port = 0;

	if (conn != NULL)
		evhttp_connection_get_peer(conn, &addr, &port);
	return addr != NULL ? addr : "";
}

const struct loket_api api_table = {
	.size = sizeof(struct loket_api),
	.abi_major = LOKET_ABI_MAJOR,
	.abi_minor = LOKET_ABI_MINOR,
	.log = api_log,
	.config_get = api_config_get,
	.config_get_int = api_config_get_int,
	.event_base = api_event_base,
	.timer_new = api_timer_new,
	.timer_arm = api_timer_arm,
	.timer_cancel = api_timer_cancel,
	.timer_free = api_timer_free,
	.http_route = api_http_route,
	.http_param = http_param,
	.http_query = http_query,
	.http_header = http_header,
	.http_body = api_http_body,
	.http_reply = http_reply,
	.http_problem = http_problem,
	.contact_new = api_contact_new,
	.contact_set = contact_set,
	.contact_meta = contact_meta,
	.contact_submit = api_contact_submit,
	.contact_free = contact_free,
	.set_data = api_set_data,
	.get_data = api_get_data,
	.contact_key = contact_key,
	.contact_message = contact_message,
	.data_dir = api_data_dir,
	.outbox_sender = api_outbox_sender,
	.outbound_done = outbound_done,
	.metric = api_metric,
	/* 1.3: register events */
	.events_subscribe = api_events_subscribe,
	.events_unsubscribe = api_events_unsubscribe,
	.event_publish = api_event_publish,
	/* 1.4: caller identity and sub-sections */
	.http_caller = http_caller,
	.config_sections = api_config_sections,
	.config_section_get = api_config_section_get,
	.config_section_get_int = api_config_section_get_int,
	/* 1.5: blobs */
	.blob_put = api_blob_put,
	.blob_sync = api_blob_sync,
	/* 1.6: blob reads */
	.blob_get = api_blob_get,
	/* 1.7: leases */
	.lease = api_lease,
	/* 1.8: the e-loket */
	.catalogue_json = api_catalogue_json,
	.expected_answer = api_expected_answer,
	/* 1.8: what a public channel's pages need besides (added after contact_status) */
	.http_header_set = api_http_header_set,
	.http_peer = api_http_peer,
};
