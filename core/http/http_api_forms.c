/*
 * http_api_forms.c: POST /api/v1/forms/intake: a submission of an external form engine
 * (Open Formulieren and the like) becomes a web contact with its files, once per
 * Idempotency-Key, whatever the engine retries.
 */
#include "config.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "contact.h"
#include "http_api.h"
#include "http_status.h"
#include "log.h"
#include "loketd.h"
#include "register.h"
#include "util.h"

/*
 * A form engine's keys live apart from POST /api/v1/contacts' keys: the
 * same key sent to both routes names two different submissions.
 */
#define FORMS_KEY_SCOPE "form"

/* An answer held back by LOKET_TEST_HOLD_ANSWER_MS (tests only). */
struct forms_held {
	struct loket_http_req *req;
	json_t *view;
};

static void
forms_held_cb(evutil_socket_t fd, short what, void *arg)
{
	struct forms_held *h = arg;

	(void)fd;
	(void)what;
	api_reply(h->req, 201, h->view);
	free(h);
}

/*
 * Tests only: the contact is durable, the answer not sent yet. A test kills
 * the daemon in this window and retries, as an engine whose connection broke
 * would. Takes over view; 0 when held, -1 to answer now.
 */
static int
forms_hold(struct loket_http_req *req, struct loketd *d, json_t *view)
{
	int64_t ms = util_test_hold_answer_ms();
	struct timeval tv;
	struct forms_held *h;

	if (ms <= 0 || (h = calloc(1, sizeof(*h))) == NULL)
		return -1;
	h->req = req;
	h->view = view;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000 * 1000);
	if (event_base_once(d->base, -1, EV_TIMEOUT, forms_held_cb, h, &tv) < 0) {
		free(h);
		return -1;
	}
	return 0;
}

/*
 * What the engine needs to show its user and to find the contact again:
 * {id, reference, status}, nothing of the party the register matched.
 */
static json_t *
forms_view(json_t *contact)
{
	return json_pack("{s:O?, s:O?, s:O?}", "id", json_object_get(contact, "id"), "reference",
	    json_object_get(contact, "reference"), "status", json_object_get(contact, "status"));
}

/* One submission waiting for register_submit's answer. */
struct forms_call {
	struct loketd *d;
	struct loket_http_req *req;
	size_t files; /* attachments kept, for the log */
};

/* What register_submit answered, as HTTP: 201, 200 for a replay, or a problem. */
static void
forms_posted_cb(const struct register_result *res, void *arg)
{
	struct forms_call *fc = arg;
	struct loket_http_req *req = fc->req;
	json_t *contact, *view;
	char location[64];
	int status = 201;

	if (res->result != STORE_OK) {
		http_add_header(req, "Cache-Control", "no-store");
		http_problem(req, http_status_of_store(res->result), res->error);
		goto out;
	}
	snprintf(location, sizeof(location), "/api/v1/contacts/%lld", (long long)res->contact_id);
	http_add_header(req, "Location", location);
	if (res->duplicate) {
		/* The engine retried: the contact its first try made, and nothing new. */
		http_add_header(req, "Idempotent-Replayed", "true");
		status = 200;
		contact = json_object_get(res->contact, "contact");
	} else {
		contact = register_result_contact(res);
		log_info("forms", "form registered ref=C-%s attachments=%zu",
		    res->reference != NULL ? res->reference : "?", fc->files);
	}
	if ((view = forms_view(contact != NULL ? contact : res->contact)) == NULL) {
		http_problem(req, 503, "out of memory");
		goto out;
	}
	if (status == 201 && forms_hold(req, fc->d, view) == 0)
		goto out;
	api_reply(req, status, view);
out:
	free(fc);
}

/* A body naming a channel names web, the only one a form engine speaks for. */
static int
forms_channel_ok(json_t *body)
{
	json_t *v = json_object_get(body, "channel");

	return v == NULL || (json_is_string(v) && strcmp(json_string_value(v), "web") == 0);
}

/*
 * Checked in the order that keeps nothing for a submission refused: the
 * role, the key, the fields (register_prepare on the body as it will be
 * submitted), the files decoded; only then the files are kept, durable
 * before the contact naming them is written, so a 201 never names a file
 * the register lost. A retry after a crash keeps the same files again
 * under the same SHA-256: nothing changes.
 */
static void
forms_intake(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	struct register_caller who = { .actor = auth_name(req) };
	struct loket_contact *c = NULL;
	struct forms_call *fc = NULL;
	json_t *body = NULL, *posted = NULL, *files = NULL, *doc = NULL, *msg;
	char *key = NULL, *bound = NULL;
	const char *err = NULL, *subject, *text;
	int status;

	if (auth_require(req, AUTH_ADMIN | AUTH_INTAKE) < 0)
		return;
	if (http_header(req, "Idempotency-Key") == NULL) {
		http_problem(req, 400,
		    "Idempotency-Key: required on this route, so that a retried submission "
		    "never makes a second contact; send one key per submission (a UUID, for "
		    "example) and the same key when you retry it");
		return;
	}
	if (api_idempotency(req, FORMS_KEY_SCOPE, &key, &bound) < 0
	    || (body = api_body(req, 0)) == NULL)
		goto out;
	if (!forms_channel_ok(body)) {
		http_problem(req, 422,
		    "channel: a form submission is a web contact; leave "
		    "channel out or send \"web\"");
		goto out;
	}
	posted = json_incref(json_object_get(body, "attachments"));
	json_object_del(body, "attachments");
	if (json_object_set_new(body, "channel", json_string("web")) < 0) {
		http_problem(req, 503, "out of memory");
		goto out;
	}
	status = http_status_of_store(register_prepare(d, body, auth_name(req), &doc, &err));
	json_decref(doc);
	if (status == 0)
		status = http_api_messages_attachments(d, posted, 0, &files, &err);
	if (status == 0) {
		json_decref(files);
		files = NULL;
		status = http_api_messages_attachments(d, posted, 1, &files, &err);
	}
	if (status != 0) {
		http_add_header(req, "Cache-Control", "no-store");
		http_problem(req, status, err);
		goto out;
	}
	/* The contact's first message carries the files, as a mail's do on chan_email. */
	subject = json_string_value(json_object_get(body, "subject"));
	text = json_string_value(json_object_get(body, "body"));
	msg = json_pack("{s:s, s:s, s:s, s:O}", "direction", "in", "subject",
	    subject != NULL ? subject : "", "body", text != NULL ? text : "", "attachments", files);
	if (msg == NULL || (fc = calloc(1, sizeof(*fc))) == NULL) {
		json_decref(msg);
		http_problem(req, 503, "out of memory");
		goto out;
	}
	/* Takes over body, even when it fails. */
	c = contact_from_json(d, auth_name(req), body);
	body = NULL;
	if (c == NULL) {
		json_decref(msg);
		http_problem(req, 503, "out of memory");
		goto out;
	}
	c->message = msg;
	fc->d = d;
	fc->req = req;
	fc->files = json_array_size(files);
	who.idempotency_key = key;
	who.idempotency_body = bound;
	register_submit(d, c, &who, forms_posted_cb, fc);
	fc = NULL;
out:
	free(fc);
	json_decref(files);
	json_decref(posted);
	json_decref(body);
	free(key);
	free(bound);
}

int
http_api_forms_init(struct loketd *d, const char **error_r)
{
	int64_t hold = util_test_hold_answer_ms();

	if (hold < 0) {
		*error_r = "LOKET_TEST_HOLD_ANSWER_MS: expected milliseconds (0 to 600000)";
		return -1;
	}
	if (hold > 0)
		log_warnx("forms",
		    "test hold on (LOKET_TEST_HOLD_ANSWER_MS=%lld): form intake answers are held "
		    "after the write; never set it outside tests",
		    (long long)hold);
	return http_route_add(d->http, "core", LOKET_HTTP_POST, "/api/v1/forms/intake",
	    LOKET_ACCESS_TOKEN, forms_intake, d, error_r);
}
