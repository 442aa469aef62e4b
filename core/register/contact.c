/* contact.c: the contact a channel builds before submitting it to the register. */
#include "config.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contact.h"
#include "http_status.h"
#include "loketd.h"
#include "register.h"
#include "rulebook.h"
#include "store.h"
#include "util.h"

static const char *const contact_fields[]
    = { "subject", "body", "product", "department", "organisation", "direction", "language", NULL };
static const char *const party_fields[] = { "name", "email", "phone", "rrn", "bsn", NULL };

struct loket_contact *
contact_from_json(struct loketd *d, const char *source, json_t *fields)
{
	struct loket_contact *c = calloc(1, sizeof(*c));

	if (c == NULL || (c->source = strdup(source)) == NULL) {
		free(c);
		json_decref(fields);
		return NULL;
	}
	c->daemon = d;
	c->fields = fields;
	return c;
}

struct loket_contact *
contact_new(struct loketd *d, const char *source, const char *channel)
{
	json_t *fields = json_pack("{s:s}", "channel", channel);

	return fields != NULL ? contact_from_json(d, source, fields) : NULL;
}

static int
contact_known(const char *const *names, const char *name)
{
	for (size_t i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], name) == 0)
			return 1;
	return 0;
}

int
contact_set(struct loket_contact *c, const char *field, const char *value)
{
	json_t *party;

	if (strncmp(field, "party.", 6) == 0) {
		if (!contact_known(party_fields, field + 6))
			return -1;
		if ((party = json_object_get(c->fields, "party")) == NULL) {
			party = json_object();
			if (party == NULL || json_object_set_new(c->fields, "party", party) < 0)
				return -1;
		}
		return json_object_set_new(party, field + 6, json_string(value));
	}
	if (!contact_known(contact_fields, field))
		return -1;
	return json_object_set_new(c->fields, field, json_string(value));
}

int
contact_meta(struct loket_contact *c, const char *key, const char *value)
{
	json_t *meta = json_object_get(c->fields, "meta");

	if (meta == NULL) {
		meta = json_object();
		if (meta == NULL || json_object_set_new(c->fields, "meta", meta) < 0)
			return -1;
	}
	return json_object_set_new(meta, key, json_string(value));
}

int
contact_key(struct loket_contact *c, const char *key)
{
	if (key == NULL || *key == '\0' || strlen(key) > 1024)
		return -1;
	if (c->keys == NULL && (c->keys = json_array()) == NULL)
		return -1;
	return json_array_append_new(c->keys, json_string(key));
}

int
contact_message(struct loket_contact *c, const char *json)
{
	json_t *msg = json_loads(json, 0, NULL);

	if (!json_is_object(msg)) {
		json_decref(msg);
		return -1;
	}
	json_decref(c->message);
	c->message = msg;
	return 0;
}

void
contact_free(struct loket_contact *c)
{
	if (c == NULL)
		return;
	json_decref(c->keys);
	json_decref(c->message);
	json_decref(c->fields);
	free(c->source);
	free(c);
}

struct contact_pending {
	struct loketd *daemon;
	void (*cb)(const struct loket_submit_result *res, void *arg);
	void *arg;
	char error[256];
	int status;
};

static void
contact_stored_cb(struct store_req *sr, void *arg)
{
	struct contact_pending *p = arg;
	struct loket_submit_result res = { 0 };
	char *json = NULL;

	if (sr->result != STORE_OK) {
		res.status = http_status_of_store(sr->result);
		res.error = sr->error;
	} else {
		res.duplicate = json_is_true(json_object_get(sr->out, "duplicate"));
		json = json_dumps(sr->out, JSON_COMPACT);
		res.contact_id = json_integer_value(json_object_get(sr->out, "id"));
		res.reference = json_string_value(json_object_get(sr->out, "reference"));
		res.json = json;
	}
	p->cb(&res, p->arg);
	free(json);
	free(p);
}

/* A contact refused before the store still gets its answer on a later turn of the loop. */
static void
contact_refused_cb(evutil_socket_t fd, short what, void *arg)
{
	struct contact_pending *p = arg;
	struct loket_submit_result res = { .status = p->status, .error = p->error };

	p->cb(&res, p->arg);
	free(p);
}

static void
contact_refuse(struct contact_pending *p, int status, const char *error)
{
	p->status = status;
	snprintf(p->error, sizeof(p->error), "%s", error);
	event_base_once(p->daemon->base, -1, EV_TIMEOUT, contact_refused_cb, p, NULL);
}

/*
 * A reply stored on its contact: the channel hears (the register published
 * message.added before, for the rules of "reply" and the gauges).
 */
static void
contact_threaded_cb(struct store_req *sr, void *arg)
{
	struct contact_pending *p = arg;
	struct loket_submit_result res = { 0 };
	char *json = NULL;

	if (sr->result != STORE_OK) {
		res.status = http_status_of_store(sr->result);
		res.error = sr->error;
	} else {
		res.duplicate = json_is_true(json_object_get(sr->out, "duplicate"));
		res.threaded = !res.duplicate;
		res.contact_id = json_integer_value(json_object_get(sr->out, "id"));
		res.reference = json_string_value(json_object_get(sr->out, "reference"));
		json = json_dumps(sr->out, JSON_COMPACT);
		res.json = json;
	}
	p->cb(&res, p->arg);
	free(json);
	free(p);
}

/* What the register knows of a channel's message before it is stored. */
struct contact_thread {
	json_int_t contact_id; /* the contact it answers; 0: a new contact */
	json_t *seen; /* {id, reference} of a contact holding its Message-ID already; or NULL */
};

static void
contact_thread_found_cb(struct store_req *sr, void *arg)
{
	struct contact_thread *t = arg;
	json_t *seen;

	if (sr->result != STORE_OK)
		return;
	if (json_is_integer(json_object_get(sr->out, "contact_id")))
		t->contact_id = json_integer_value(json_object_get(sr->out, "contact_id"));
	if (json_is_object(seen = json_object_get(sr->out, "message_id_seen")))
		t->seen = json_incref(seen);
}

/*
 * A message whose Message-ID an earlier one has is still a mail of its own
 * (a client that reuses ids, or someone who knows one): it is kept, and
 * flagged with the contact that had the id first, so staff can look.
 */
static void
contact_flag_seen(json_t *doc, json_t *message, json_t *seen)
{
	json_t *meta, *tags;

	if (seen == NULL)
		return;
	if (message != NULL) {
		if (!json_is_object(meta = json_object_get(message, "meta")))
			json_object_set_new(message, "meta", meta = json_object());
		json_object_set(meta, "message_id_seen", json_object_get(seen, "reference"));
	}
	if (doc == NULL)
		return;
	if (!json_is_array(tags = json_object_get(doc, "tags")))
		json_object_set_new(doc, "tags", tags = json_array());
	json_array_append_new(tags, json_string("message-id-seen"));
	if (!json_is_object(meta = json_object_get(doc, "meta")))
		json_object_set_new(doc, "meta", meta = json_object());
	json_object_set(meta, "message_id_seen", json_object_get(seen, "reference"));
}

void
contact_submit(struct loket_contact *c,
    void (*cb)(const struct loket_submit_result *res, void *arg), void *arg)
{
	struct contact_pending *p = calloc(1, sizeof(*p));
	struct loketd *d = c->daemon;
	json_t *message = c->message, *keys = c->keys, *doc = NULL, *thread;
	struct contact_thread found = { 0 };
	struct store_req *sr;
	const char *automatic;

	if (p == NULL) {
		contact_free(c);
		return;
	}
	p->cb = cb;
	p->arg = arg;
	p->daemon = d;
	c->message = c->keys = NULL;
	thread = json_object_get(message, "thread");
	if ((json_object_get(thread, "reference") != NULL
	        || json_array_size(json_object_get(thread, "message_ids")) > 0
	        || json_is_string(json_object_get(message, "message_id")))
	    && (sr = store_req_new(STORE_THREAD_FIND,
	            json_pack("{s:O?, s:O?, s:O?, s:O?}", "reference",
	                json_object_get(thread, "reference"), "message_ids",
	                json_object_get(thread, "message_ids"), "sender",
	                json_object_get(message, "sender"), "message_id",
	                json_object_get(message, "message_id")),
	            contact_thread_found_cb, &found))
	        != NULL)
		store_submit(d->store, sr); /* a read: done when this returns */
	json_object_del(message, "thread");
	if (found.contact_id != 0) {
		json_t *in;

		contact_flag_seen(NULL, message, found.seen);
		json_decref(found.seen);
		/*
		 * The channel's own thread found this contact (a token from an address
		 * it knows, an answer to a mail loket sent): the citizen's answer reaches
		 * it whatever its organisation or confidentiality. Staff scopes are for
		 * staff; a 403 here would send a citizen's mail to quarantine.
		 */
		in = json_pack("{s:I, s:I, s:s, s:o, s:o, s:b, s:{s:b}}", "id", found.contact_id,
		    "at", (json_int_t)util_time_ms(), "actor", c->source, "message", message,
		    "keys", keys != NULL ? keys : json_array(), "reopen", 1, "scope", "all", 1);
		contact_free(c);
		if (in == NULL
		    || (sr = store_req_new(STORE_MESSAGE_ADD, in, contact_threaded_cb, p))
		        == NULL) {
			contact_refuse(p, 503, "out of memory");
			return;
		}
		store_submit(d->store, sr);
		return;
	}
	p->status = register_prepare(d, c->fields, c->source, &doc, p->error, sizeof(p->error));
	contact_free(c);
	if (p->status != 0) {
		json_decref(found.seen);
		json_decref(message);
		json_decref(keys);
		event_base_once(d->base, -1, EV_TIMEOUT, contact_refused_cb, p, NULL);
		return;
	}
	automatic = json_string_value(json_object_get(message, "automatic"));
	if (automatic != NULL) {
		json_t *tags = json_object_get(doc, "tags"), *meta = json_object_get(doc, "meta");

		if (!json_is_array(tags))
			json_object_set_new(doc, "tags", tags = json_array());
		json_array_append_new(tags, json_string("automatic"));
		if (!json_is_object(meta))
			json_object_set_new(doc, "meta", meta = json_object());
		json_object_set_new(meta, "automatic", json_string(automatic));
	}
	contact_flag_seen(doc, message, found.seen);
	json_decref(found.seen);
	rulebook_contact(d, doc);
	/* Automatic mail is registered but never answered: no out-of-office ping-pong. */
	if (automatic != NULL)
		json_object_del(doc, "outbox");
	if (message != NULL)
		json_object_set_new(doc, "message", message);
	if (keys != NULL)
		json_object_set_new(doc, "keys", keys);
	if ((sr = store_req_new(STORE_CONTACT_CREATE, doc, contact_stored_cb, p)) == NULL) {
		contact_refuse(p, 503, "out of memory");
		return;
	}
	store_submit(d->store, sr);
}
