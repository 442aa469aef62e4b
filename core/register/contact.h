/* contact.h: the contact a channel or the API builds before register_submit takes it. */
#ifndef LOKET_CONTACT_H
#define LOKET_CONTACT_H

#include <jansson.h>

#include "loket/plugin.h"

struct loketd;

struct loket_contact {
	struct loketd *daemon;
	char *source; /* the plugin (or "api") that built it */
	json_t *fields; /* the same shape as the body of POST /api/v1/contacts */
	json_t *keys;    /* intake keys (ABI 1.1), NULL when none */
	json_t *message; /* the channel's message (ABI 1.1), NULL when none */
};

/* contact.c */
struct loket_contact *contact_new(struct loketd *d, const char *source, const char *channel);
/*
 * The one JSON-to-contact step: the API's body and a channel's contact_new
 * both become a contact here. Takes over fields (a JSON object in the shape
 * of POST /api/v1/contacts' body; register_prepare checks it). Keys and a
 * message are channel facts: only the ABI's contact_key and contact_message
 * add them.
 */
struct loket_contact *contact_from_json(struct loketd *d, const char *source, json_t *fields);
int contact_set(struct loket_contact *c, const char *field, const char *value);
int contact_meta(struct loket_contact *c, const char *key, const char *value);
int contact_key(struct loket_contact *c, const char *key);
int contact_message(struct loket_contact *c, const char *json);
void contact_free(struct loket_contact *c);

#endif
