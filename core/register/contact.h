/* contact.h: the contact a channel builds before submitting it to the register. */
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
/* Takes over fields (a JSON object as posted to the API). */
struct loket_contact *contact_from_json(struct loketd *d, const char *source, json_t *fields);
int contact_set(struct loket_contact *c, const char *field, const char *value);
int contact_meta(struct loket_contact *c, const char *key, const char *value);
int contact_key(struct loket_contact *c, const char *key);
int contact_message(struct loket_contact *c, const char *json);
/* Takes over c; cb runs on the loop, never before contact_submit returns. */
void contact_submit(struct loket_contact *c,
    void (*cb)(const struct loket_submit_result *res, void *arg), void *arg);
void contact_free(struct loket_contact *c);

#endif
