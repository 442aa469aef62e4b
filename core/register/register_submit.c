/*
 * register_submit.c: the one door into the register for a new contact, from
 * every channel plugin and the HTTP API alike: thread lookup, checks, rules,
 * the durable write and one completion.
 */
#include "config.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contact.h"
#include "log.h"
#include "loketd.h"
#include "register.h"
#include "store.h"
#include "util.h"

/*
 * One submission between register_submit and its completion. Every step
 * that waits for the store carries this heap object as its argument and
 * nothing on a stack, so a driver may answer whenever it likes: inside
 * store_submit or on a later turn of the loop.
 */
struct register_submission {
	struct loketd *d;
	json_t *fields;  /* the contact as posted (or as a channel built it) */
	json_t *message; /* the channel's message, or NULL */
	json_t *keys;    /* the channel's intake keys, or NULL */
	char *actor;
	char *idempotency_key;  /* NULL: none */
	char *idempotency_body; /* the key bound to the request body */
	json_t *seen; /* {id, reference} of a contact that had the message's Message-ID first */
	void (*done_cb)(const struct register_result *res, void *arg);
	void *arg;
	enum store_result result;
	char error[256];
	/* In d->submissions: the thread lookup's answer, kept until this one's turn. */
	struct register_submission *next;
	int waiting;  /* the lookup has not answered yet */
	json_t *found; /* its answer when STORE_OK; NULL: none asked or it failed (result) */
};

static void
register_submission_free(struct register_submission *s)
{
	json_decref(s->fields);
	json_decref(s->message);
	json_decref(s->keys);
	json_decref(s->seen);
	json_decref(s->found);
	free(s->actor);
	free(s->idempotency_key);
	free(s->idempotency_body);
	free(s);
}

static void
register_refused_cb(evutil_socket_t fd, short what, void *arg)
{
	struct register_submission *s = arg;
	struct register_result res = { .result = s->result, .error = s->error };

	(void)fd;
	(void)what;
	s->done_cb(&res, s->arg);
	register_submission_free(s);
}

/*
 * A contact refused before its write still hears on a later turn of the
 * loop, never inside register_submit: a caller may finish setting up after
 * the call returns.
 */
static void
register_refuse(struct register_submission *s, enum store_result result, const char *error)
{
	s->result = result;
	/* A failed lookup's sentence is kept in s->error already. */
	if (error != s->error)
		snprintf(s->error, sizeof(s->error), "%s", error);
	if (event_base_once(s->d->base, -1, EV_TIMEOUT, register_refused_cb, s, NULL) < 0) {
		log_warnx("register", "cannot defer a refusal: answering at once");
		register_refused_cb(-1, 0, s);
	}
}

json_t *
register_result_contact(const struct register_result *res)
{
	if (res->req != NULL && res->req->out == res->contact)
		return contact_view_created_req(res->req);
	return res->contact;
}

/* The completion of the write, whichever it was: a new contact or a message threaded on one. */
static void
register_stored_cb(struct store_req *sr, void *arg)
{
	struct register_submission *s = arg;
	struct register_result res = { 0 };

	if (sr->result != STORE_OK) {
		res.result = sr->result;
		res.error = sr->error;
	} else {
		res.duplicate = json_is_true(json_object_get(sr->out, "duplicate"));
		res.threaded = sr->op == STORE_MESSAGE_ADD && !res.duplicate;
		res.contact_id = json_integer_value(json_object_get(sr->out, "id"));
		res.reference = json_string_value(json_object_get(sr->out, "reference"));
		res.contact = sr->out;
		res.req = sr;
	}
	s->done_cb(&res, s->arg);
	register_submission_free(s);
}

static void
register_write(struct register_submission *s, enum store_op op, json_t *in)
{
	struct store_req *sr;

	if (in == NULL || (sr = store_req_new(op, in, register_stored_cb, s)) == NULL) {
		register_refuse(s, STORE_UNAVAILABLE, "out of memory");
		return;
	}
	store_submit(s->d->store, sr);
}

/*
 * A message whose Message-ID an earlier one has is still a mail of its own
 * (a client that reuses ids, or someone who knows one): it is kept, and
 * flagged with the contact that had the id first, so staff can look.
 */
static void
register_flag_seen(json_t *doc, json_t *message, json_t *seen)
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

/*
 * The channel's own thread found this contact (a token from an address it
 * knows, an answer to a mail loket sent): the citizen's answer reaches it
 * whatever its organisation or confidentiality. Staff scopes are for staff;
 * a 403 here would send a citizen's mail to quarantine. The new contact's
 * fields are not used, so they are not checked either.
 */
static void
register_thread(struct register_submission *s, json_int_t contact_id)
{
	json_t *message = s->message, *keys = s->keys;

	s->message = s->keys = NULL;
	register_flag_seen(NULL, message, s->seen);
	register_write(s, STORE_MESSAGE_ADD,
	    json_pack("{s:I, s:I, s:s, s:o, s:o, s:b, s:{s:b}}", "id", contact_id, "at",
		(json_int_t)util_time_ms(), "actor", s->actor, "message", message, "keys",
		keys != NULL ? keys : json_array(), "reopen", 1, "scope", "all", 1));
}

/* Both keys of an Idempotency-Key go with the contact, the channel's keys beside them. */
static int
register_idempotency(struct register_submission *s, json_t *doc)
{
	json_t *keys = json_object_get(doc, "keys");

	if (s->idempotency_key == NULL)
		return 0;
	if (!json_is_array(keys) && json_object_set_new(doc, "keys", keys = json_array()) < 0)
		return -1;
	if (json_array_append_new(keys, json_string(s->idempotency_key)) < 0 ||
	    json_array_append_new(keys, json_string(s->idempotency_body)) < 0 ||
	    json_object_set_new(doc, "idempotency",
		json_pack("{s:s, s:s}", "key", s->idempotency_key, "body", s->idempotency_body)) <
		0)
		return -1;
	return 0;
}

static void
register_create(struct register_submission *s)
{
	json_t *doc = NULL, *message, *keys;
	const char *automatic, *error;
	enum store_result result;

	result = register_prepare(s->d, s->fields, s->actor, &doc, &error);
	if (result != STORE_OK) {
		register_refuse(s, result, error);
		return;
	}
	message = s->message;
	keys = s->keys;
	s->message = s->keys = NULL;
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
	register_flag_seen(doc, message, s->seen);
	/* Before the write, so the rules' decisions are stored with the contact. */
	if (s->d->rules_hooks != NULL && s->d->rules_hooks->contact != NULL)
		s->d->rules_hooks->contact(s->d, doc);
	/* Automatic mail is registered but never answered: no out-of-office ping-pong. */
	if (automatic != NULL)
		json_object_del(doc, "outbox");
	/* After the rules: they need not see the keys, which name a token or a mailbox. */
	if (message != NULL)
		json_object_set_new(doc, "message", message);
	if (keys != NULL)
		json_object_set_new(doc, "keys", keys);
	if (register_idempotency(s, doc) < 0) {
		json_decref(doc);
		register_refuse(s, STORE_UNAVAILABLE, "out of memory");
		return;
	}
	register_write(s, STORE_CONTACT_CREATE, doc);
}

/* What a lookup answered, on this submission's turn: a thread, a new contact or the failure. */
static void
register_proceed(struct register_submission *s)
{
	json_t *seen, *found = s->found;

	/*
	 * Not knowing whether a message answers a contact is no reason to make
	 * a new one: the channel hears the error and tries again later.
	 */
	if (s->result != STORE_OK) {
		register_refuse(s, s->result, s->error);
		return;
	}
	if (json_is_object(seen = json_object_get(found, "message_id_seen")))
		s->seen = json_incref(seen);
	json_object_del(s->message, "thread");
	if (json_is_integer(json_object_get(found, "contact_id")))
		register_thread(s, json_integer_value(json_object_get(found, "contact_id")));
	else
		register_create(s);
}

/* Whether a submission of the same caller that came before s still waits for its lookup. */
static int
register_behind(struct register_submission *head, struct register_submission *s)
{
	for (; head != s; head = head->next)
		if (head->waiting && strcmp(head->actor, s->actor) == 0)
			return 1;
	return 0;
}

/*
 * Lookups run on the driver's reader threads and may answer in any order;
 * one caller's submissions still go on in the order the caller made them,
 * so a mailbox's mails are stored (and their messages listed) in mailbox
 * order. Starts again from the head after each: what a step calls may
 * submit again.
 */
static void
register_drain(struct loketd *d)
{
	struct register_submission **pp, *s;

	for (;;) {
		for (pp = &d->submissions; (s = *pp) != NULL; pp = &s->next)
			if (!s->waiting && !register_behind(d->submissions, s))
				break;
		if (s == NULL)
			return;
		*pp = s->next;
		s->next = NULL;
		register_proceed(s);
	}
}

static void
register_enqueue(struct loketd *d, struct register_submission *s)
{
	struct register_submission **pp = &d->submissions;

	while (*pp != NULL)
		pp = &(*pp)->next;
	*pp = s;
}

static void
register_thread_found_cb(struct store_req *sr, void *arg)
{
	struct register_submission *s = arg;

	s->waiting = 0;
	s->result = sr->result;
	if (sr->result != STORE_OK)
		snprintf(s->error, sizeof(s->error), "%s", sr->error);
	else
		s->found = json_incref(sr->out);
	register_drain(s->d);
}

/* Whether an earlier submission of the same caller still waits for its lookup. */
static int
register_caller_waits(struct loketd *d, const char *actor)
{
	for (struct register_submission *w = d->submissions; w != NULL; w = w->next)
		if (w->waiting && strcmp(w->actor, actor) == 0)
			return 1;
	return 0;
}

/* Whether the channel's message names something to look up: a thread, or its own Message-ID. */
static int
register_has_thread_hints(json_t *message)
{
	json_t *thread = json_object_get(message, "thread");

	return json_object_get(thread, "reference") != NULL ||
	    json_array_size(json_object_get(thread, "message_ids")) > 0 ||
	    json_is_string(json_object_get(message, "message_id"));
}

void
register_submit(struct loketd *d, struct loket_contact *c, const struct register_caller *who,
    void (*done_cb)(const struct register_result *res, void *arg), void *arg)
{
	struct register_submission *s = calloc(1, sizeof(*s));
	json_t *thread, *in;
	struct store_req *sr;

	if (s == NULL || (s->actor = strdup(who->actor)) == NULL ||
	    (who->idempotency_key != NULL &&
		((s->idempotency_key = strdup(who->idempotency_key)) == NULL ||
		    (s->idempotency_body = strdup(who->idempotency_body)) == NULL))) {
		struct register_result res = { .result = STORE_UNAVAILABLE,
			.error = "out of memory" };

		if (s != NULL)
			register_submission_free(s);
		contact_free(c);
		/* Not even the memory to defer the answer: the caller hears now. */
		done_cb(&res, arg);
		return;
	}
	s->d = d;
	s->done_cb = done_cb;
	s->arg = arg;
	s->fields = c->fields;
	s->message = c->message;
	s->keys = c->keys;
	c->fields = c->message = c->keys = NULL;
	contact_free(c);
	if (!register_has_thread_hints(s->message)) {
		json_object_del(s->message, "thread");
		/* Nothing to look up, but its turn still comes after the caller's earlier ones. */
		if (register_caller_waits(d, s->actor)) {
			register_enqueue(d, s);
			return;
		}
		register_create(s);
		return;
	}
	thread = json_object_get(s->message, "thread");
	in = json_pack("{s:O?, s:O?, s:O?, s:O?}", "reference", json_object_get(thread, "reference"),
	    "message_ids", json_object_get(thread, "message_ids"), "sender",
	    json_object_get(s->message, "sender"), "message_id",
	    json_object_get(s->message, "message_id"));
	if (in == NULL ||
	    (sr = store_req_new(STORE_THREAD_FIND, in, register_thread_found_cb, s)) == NULL) {
		register_refuse(s, STORE_UNAVAILABLE, "out of memory");
		return;
	}
	s->waiting = 1;
	register_enqueue(d, s);
	store_submit(d->store, sr);
}
