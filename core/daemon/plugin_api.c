/* api.c: the function table the core hands to plugins (struct loket_api). */
#include "config.h"

#include <event2/event.h>
#include <event2/http.h>
#include <sodium.h>
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

/*
 * 1.8: what a citizen may know of one contact. The register is read on a
 * reader thread (STORE_CONTACT_STATUS); whether the pair matches is decided
 * here, on the loop, comparing BLAKE2b hashes of the normalised values with
 * sodium_memcmp, so that the time taken tells as little as the answer.
 */
#define STATUS_REFERENCE_MAX 32

struct api_status {
	struct loket_plugin *self;
	void (*cb)(int status, const char *json, void *arg);
	void *arg;
	/* The hash of the normalised value the citizen gave, and which kind it is. */
	unsigned char want[crypto_generichash_BYTES];
	enum { STATUS_EMAIL, STATUS_PHONE, STATUS_NONE } kind;
	int inside;   /* store_submit has not returned yet */
	int now;      /* answered inside and nothing could wait: answer once it returned */
	int status;   /* the answer, kept when it must wait for the next loop turn */
	char *json;
};

static void
status_hash(const char *value, unsigned char out[crypto_generichash_BYTES])
{
	crypto_generichash(out, crypto_generichash_BYTES, (const unsigned char *)value,
	    strlen(value), NULL, 0);
}

/* Whether any of the party's values (emails or phones) hashes to want; every one is compared. */
static int
status_match(json_t *values, const unsigned char want[crypto_generichash_BYTES])
{
	unsigned char have[crypto_generichash_BYTES];
	int match = 0;
	json_t *v;
	size_t i;

	json_array_foreach(values, i, v) {
		status_hash(json_is_string(v) ? json_string_value(v) : "", have);
		match |= sodium_memcmp(have, want, sizeof(have)) == 0;
	}
	return match;
}

/*
 * The newest staff message that went to the citizen: one of its recipients
 * is an address of the contact's party. A message staff sent someone else
 * on the contact (a colleague, a contractor) is never the citizen's answer.
 */
static json_t *
status_reply(json_t *replies, json_t *emails)
{
	json_t *r, *to, *e;
	size_t i, j, k;

	json_array_foreach(replies, i, r) {
		json_array_foreach(json_object_get(r, "recipients"), j, to) {
			const char *v = json_string_value(to), *lt;
			char addr[320], norm[320];
			const char *why;
			size_t n;

			if (v == NULL)
				continue;
			/* "Name <a@b>" or a plain a@b */
			if ((lt = strrchr(v, '<')) != NULL && (n = strcspn(lt + 1, ">")) < sizeof(addr)) {
				memcpy(addr, lt + 1, n);
				addr[n] = '\0';
			} else {
				snprintf(addr, sizeof(addr), "%s", v);
			}
			if (register_party_id("email", addr, norm, sizeof(norm), &why) < 0)
				continue;
			json_array_foreach(emails, k, e)
				if (json_is_string(e) && strcmp(json_string_value(e), norm) == 0)
					return r;
		}
	}
	return NULL;
}

/* A time as the API shows it (ISO 8601), or null. */
static json_t *
status_time(json_t *ms)
{
	char when[40];

	if (!json_is_integer(ms))
		return json_null();
	util_time_format(json_integer_value(ms), when, sizeof(when));
	return json_string(when);
}

/*
 * When the citizen can expect the answer: the due time of the contact's open
 * task, else its product's service time from when it was received; null once
 * it is answered (resolved, closed).
 */
static json_t *
status_expected(struct loketd *d, json_t *contact)
{
	const char *status = json_string_value(json_object_get(contact, "status"));
	const char *error = "no calendars are loaded";
	json_t *task, *due = NULL;
	long long at;
	size_t i;

	if (status == NULL || strcmp(status, "resolved") == 0 || strcmp(status, "closed") == 0)
		return json_null();
	json_array_foreach(json_object_get(contact, "tasks"), i, task) {
		const char *ts = json_string_value(json_object_get(task, "status"));
		json_t *t = json_object_get(task, "due_at");

		if (ts != NULL && strcmp(ts, "open") == 0 && json_is_integer(t) &&
		    (due == NULL || json_integer_value(t) < json_integer_value(due)))
			due = t;
	}
	if (due != NULL)
		return status_time(due);
	if (d->units == NULL ||
	    units_expected(d->units, json_string_value(json_object_get(contact, "product")),
		json_integer_value(json_object_get(contact, "received_at")), &at, &error) < 0) {
		log_warnx("loket", "no expected answer date for a status request: %s", error);
		return json_null();
	}
	{
		json_t *ms = json_integer(at), *iso = status_time(ms);

		json_decref(ms);
		return iso;
	}
}

static void
status_deliver(struct api_status *p)
{
	p->cb(p->status, p->json, p->arg);
	free(p->json);
	sodium_memzero(p->want, sizeof(p->want));
	free(p);
}

static void
status_later_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	status_deliver(arg);
}

static void
api_contact_status_cb(struct store_req *req, void *arg)
{
	struct api_status *p = arg;
	struct loketd *d = p->self->daemon;
	json_t *c = req->out, *reply, *answer;
	unsigned char dummy[crypto_generichash_BYTES];
	int match;

	p->status = 404;
	if (req->result != STORE_OK && req->result != STORE_NOT_FOUND) {
		p->status = 503;
	} else if (req->result == STORE_NOT_FOUND || c == NULL) {
		/* No such reference: the same comparison as for a party with one address. */
		status_hash("", dummy);
		match = sodium_memcmp(dummy, p->want, sizeof(dummy)) == 0;
		p->status = 404 + 0 * match; /* either way: no such pair */
	} else {
		match = status_match(json_object_get(c, "emails"), p->want) &
		    (p->kind == STATUS_EMAIL);
		match |= status_match(json_object_get(c, "phones"), p->want) &
		    (p->kind == STATUS_PHONE);
		/* A confidential contact is shown to nobody outside its organisation. */
		if (match && !json_is_true(json_object_get(c, "confidential"))) {
			json_t *out;

			reply = status_reply(json_object_get(c, "replies"), json_object_get(c, "emails"));
			answer = json_object_get(reply, "body");
			out = json_pack("{s:O, s:O, s:o, s:o, s:o, s:O}", "reference",
			    json_object_get(c, "reference"), "status", json_object_get(c, "status"),
			    "received_at", status_time(json_object_get(c, "received_at")),
			    "expected_at", status_expected(d, c), "answered_at",
			    status_time(json_object_get(reply, "sent_at")), "answer",
			    json_is_string(answer) ? answer : json_null());
			if (out == NULL || (p->json = json_dumps(out, JSON_COMPACT)) == NULL)
				p->status = 503;
			else
				p->status = 0;
			json_decref(out);
		}
	}
	if (!p->inside) {
		status_deliver(p);
		return;
	}
	/* Answered before store_submit returned: the plugin hears it on the next turn. */
	if (event_base_once(d->base, -1, EV_TIMEOUT, status_later_cb, p, &(struct timeval){ 0, 0 }) < 0) {
		log_warnx(p->self->name, "cannot schedule a status answer; answering at once");
		p->now = 1;
	}
}

static int
api_contact_status(struct loket_plugin *self, const char *reference, const char *contact_value,
    void (*cb)(int status, const char *json, void *arg), void *arg)
{
	char ref[STATUS_REFERENCE_MAX + 1] = "", norm[320];
	const char *why, *r = reference;
	struct api_status *p;
	struct store_req *req;
	size_t len;

	if (reference == NULL || contact_value == NULL || cb == NULL)
		return -1;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -1;
	p->self = self;
	p->cb = cb;
	p->arg = arg;
	/* "C-2026-000123", " 2026-000123 ": the register keeps "2026-000123". */
	while (*r == ' ' || *r == '\t')
		r++;
	if ((r[0] == 'C' || r[0] == 'c') && r[1] == '-')
		r += 2;
	len = strlen(r);
	while (len > 0 && (r[len - 1] == ' ' || r[len - 1] == '\t'))
		len--;
	if (len <= STATUS_REFERENCE_MAX) {
		memcpy(ref, r, len);
		ref[len] = '\0';
	}
	/* An address is an email; anything else is read as a phone number. */
	p->kind = strchr(contact_value, '@') != NULL ? STATUS_EMAIL : STATUS_PHONE;
	if (register_party_id(p->kind == STATUS_EMAIL ? "email" : "phone", contact_value, norm,
		sizeof(norm), &why) < 0) {
		p->kind = STATUS_NONE;
		norm[0] = '\0';
	}
	status_hash(norm, p->want);
	sodium_memzero(norm, sizeof(norm));
	req = store_req_new(STORE_CONTACT_STATUS, json_pack("{s:s}", "reference", ref),
	    api_contact_status_cb, p);
	if (req == NULL) {
		free(p);
		return -1;
	}
	p->inside = 1;
	store_submit(self->daemon->store, req);
	p->inside = 0;
	if (p->now)
		status_deliver(p);
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
	.contact_status = api_contact_status,
	/* 1.8: what a public channel's pages need besides (added after contact_status) */
	.http_header_set = api_http_header_set,
	.http_peer = api_http_peer,
};
