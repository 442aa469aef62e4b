/* register.h: the contact register's rules: validation, party identifiers, the status machine. */
#ifndef LOKET_REGISTER_H
#define LOKET_REGISTER_H

#include <jansson.h>

#include "loket/plugin.h"
#include "store.h"

struct loket_contact;
struct loketd;
struct store_req;

/* What a contact's fields may hold, through the API and through rules alike. */
#define REGISTER_SUBJECT_MAX 1000
#define REGISTER_SHORT_MAX 200 /* product, department, location, a party's name, ... */
#define REGISTER_TAGS_MAX 32
#define REGISTER_TAG_MAX 64
#define REGISTER_META_MAX 64

enum register_action {
	REGISTER_RESOLVE,
	REGISTER_ESCALATE,
	REGISTER_CLOSE,
	REGISTER_REOPEN,
	REGISTER_FORWARD, /* the back office hands its task on to another department */
	REGISTER_RETURN,  /* the back office sends it back to the first line */
	REGISTER_ACTION_COUNT,
};

struct register_transition {
	const char *name;     /* "resolve" */
	const char *past;     /* "resolved", for messages */
	const char *from[3];  /* allowed current statuses, NULL-terminated */
	const char *to;
	int line;             /* the line afterwards, 0 = unchanged */
	int handled;          /* sets handled_at */
};

extern const struct register_transition register_transitions[REGISTER_ACTION_COUNT];

/* register.c */
int register_init(struct loketd *d);
/*
 * Checks and normalises a contact as posted (fields, types, party
 * identifiers) into the document the store writes (*doc_r, owned by the
 * caller). STORE_INVALID with *error_r naming the field, STORE_UNAVAILABLE
 * without memory: the register's words, which the HTTP layer alone maps.
 */
enum store_result register_prepare(struct loketd *d, json_t *body, const char *actor,
    json_t **doc_r, const char **error_r);
/* "nl", "en", "nl-BE": a language tag in BCP 47 shape. */
int register_language_ok(const char *s);
/* s as one of the contact statuses (open, escalated, resolved, closed), or NULL. */
const char *register_status_name(const char *s);
/* Whether s is a channel: phone, email, web or counter. */
int register_channel_known(const char *s);
/* Whether status may go to action's target: 0, or -1 (a 409). */
int register_transition_allowed(enum register_action action, const char *status);
/* Keeps the contacts-by-channel-and-status gauges in step with a write that completed. */
void register_count(struct loketd *d, const char *channel, const char *from, const char *to);
/* The "transition" of a STORE_CONTACT_UPDATE for action, with detail (a reason) or NULL. */
json_t *register_transition_json(enum register_action action, const char *detail);
/* Normalises one party identifier ("email", "phone", "rrn", "bsn"). */
int register_party_id(const char *field, const char *value, char *out, size_t outlen,
    const char **error_r);

/* Who submits a contact: what the register needs of the caller, nothing of its channel. */
struct register_caller {
	const char *actor; /* created_by and the history's actor: a token's or a plugin's name */
	/*
	 * An Idempotency-Key scoped to its caller ("idem:<token hash>:<key>") and
	 * the same bound to the request body ("...#<sha256>"); NULL: none. Stored
	 * with the contact in the transaction that writes it: a second submit with
	 * the key answers duplicate, with another body 422.
	 */
	const char *idempotency_key;
	const char *idempotency_body;
};

/* The outcome of a submit, borrowed for the duration of the callback. */
struct register_result {
	/*
	 * STORE_OK when durable; else what failed, in the store's words
	 * (STORE_INVALID: a field the checks refused; STORE_UNAVAILABLE: try
	 * again later). The HTTP layer maps it (http_status_of_store).
	 */
	enum store_result result;
	const char *error; /* a sentence a person can read; NULL on success */
	int duplicate;     /* a key was seen before: nothing was written */
	int threaded;      /* the message went onto the existing contact contact_id */
	json_int_t contact_id;
	const char *reference;
	/*
	 * The store's answer: a new contact as the API shows it; a threaded
	 * message's {id, reference, message}; a duplicate's {duplicate, id,
	 * reference} and, after an Idempotency-Key, the first try's "contact".
	 */
	json_t *contact;
	/* The write, while done_cb runs: register_result_contact builds the view from it. */
	struct store_req *req;
};

/*
 * res->contact as the API shows it: a new contact's full view is built on
 * the first call (an intake caller needs only id, reference and status,
 * which res->contact always has).
 */
json_t *register_result_contact(const struct register_result *res);

/* register_submit.c */
/*
 * The one way a new contact enters the register, for the HTTP API and every
 * channel plugin: a thread lookup when the channel's message has hints, the
 * checks of register_prepare, automatic-mail and Message-ID flags, the
 * contact rules, the durable write. Takes over c. done_cb runs on the loop
 * once, never before this returns (unless not even the memory to wait was
 * there: then at once, with STORE_UNAVAILABLE). One caller's (who->actor's)
 * submissions reach their writes in the order of the calls, whatever order
 * the thread lookups answer in.
 */
void register_submit(struct loketd *d, struct loket_contact *c, const struct register_caller *who,
    void (*done_cb)(const struct register_result *res, void *arg), void *arg);

/*
 * What the rules lend the register during intake, installed in
 * d->rules_hooks by the rules layer (rulebook_init), as events.c installs
 * the store's done_hook: the register includes nothing of core/rules and
 * calls up only through these. NULL (or a NULL member): no rules run.
 */
struct register_rules_hooks {
	/* Runs the contact rules on a prepared contact and applies their decisions to it. */
	void (*contact)(struct loketd *d, json_t *doc);
	/* A rule that failed, for the log (the message may quote contact data: never logged). */
	void (*failed)(struct loketd *d, const char *rule, const char *result,
	    const char *message);
};

/* register_rules.c */
/*
 * Applies rule decisions to a prepared contact: field changes, escalation
 * with its task, resolution, tags, reminders as timers, replies for the
 * outbox, and the history rows naming each decision's rule (several
 * decisions of one call packed into one "rules" row), ready to be written.
 */
int register_apply(struct loketd *d, json_t *doc, json_t *decisions);
/*
 * 1 when register_apply would change doc (each decision it applies leaves a
 * history entry); replies nobody sends do not count.
 */
int register_decides(struct loketd *d, json_t *doc, json_t *decisions);
/* One line a person can read for a decision ("escalate to omgeving within 2d, due ..."). */
void register_describe(json_t *decision, char *buf, size_t len);
/*
 * The actor and detail of an entry {rule, action, decision or detail} of a
 * "rules" history row as loketd wrote them before 7b995df: given, or
 * worded from the rule's decision.
 */
void register_history_entry(json_t *entry, char *actor, size_t actor_len, char *detail,
    size_t detail_len);

/* contact_view.c: the API's view of the driver's storage shape (docs/storage.md). */
struct store_req;
/* A contact row (with its history and tasks, if any) as the API shows it, in place. */
void contact_view(json_t *contact);
/* A task row as the API shows it, in place. */
void task_view(json_t *task);
/* The store's view_hook: the API view of a completed request's out, by request kind. */
void contact_view_req(struct store_req *req, void *arg);
/*
 * A new contact's full API view, built the first time it is asked for, in
 * place in req->out (before that, out holds what the driver assigned and
 * the status: {id, reference, status, party_id, ...}). Any other request:
 * req->out as it is.
 */
json_t *contact_view_created_req(struct store_req *req);

#endif
