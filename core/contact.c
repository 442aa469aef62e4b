/* contact.c: the contact a channel builds before submitting it to the register. */
#include "config.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contact.h"
#include "loketd.h"
#include "register.h"
#include "rulebook.h"
#include "store.h"

static const char *const contact_fields[] = { "subject", "body", "product", "department",
	"organisation", "direction", "language", NULL };
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

void
contact_free(struct loket_contact *c)
{
	if (c == NULL)
		return;
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

	if (sr->status != 0) {
		res.status = sr->status;
		res.error = sr->error;
	} else {
		json = json_dumps(sr->out, JSON_COMPACT);
		res.contact_id = json_integer_value(json_object_get(sr->out, "id"));
		res.reference = json_string_value(json_object_get(sr->out, "reference"));
		res.json = json;
		register_created(p->daemon, sr->out);
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

void
contact_submit(struct loket_contact *c,
    void (*cb)(const struct loket_submit_result *res, void *arg), void *arg)
{
	struct contact_pending *p = calloc(1, sizeof(*p));
	struct loketd *d = c->daemon;
	struct store_req *sr;
	json_t *doc = NULL;

	if (p == NULL) {
		contact_free(c);
		return;
	}
	p->cb = cb;
	p->arg = arg;
	p->daemon = d;
	p->status = register_prepare(d, c->fields, c->source, &doc, p->error, sizeof(p->error));
	contact_free(c);
	if (p->status != 0) {
		event_base_once(d->base, -1, EV_TIMEOUT, contact_refused_cb, p, NULL);
		return;
	}
	rulebook_contact(d, doc);
	if ((sr = store_req_new(STORE_CONTACT_CREATE, doc, contact_stored_cb, p)) == NULL) {
		p->status = 503;
		snprintf(p->error, sizeof(p->error), "out of memory");
		event_base_once(d->base, -1, EV_TIMEOUT, contact_refused_cb, p, NULL);
		return;
	}
	store_submit(d->store, sr);
}
