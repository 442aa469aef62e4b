/* contact.c: the contact a channel or the API builds before register_submit takes it. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contact.h"
#include "loketd.h"

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
