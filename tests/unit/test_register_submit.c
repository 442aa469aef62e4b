/*
 * test_register_submit.c: the one door for new contacts against a store that
 * answers on a later turn of the loop, reads included, as a driver with its
 * own reader threads does.
 */
#include <event2/event.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "contact.h"
#include "daemon.h"
#include "loketd.h"
#include "plugin.h"
#include "register.h"
#include "store.h"

/* What the fake store was asked, and what it answers a thread lookup with. */
struct fake {
	enum store_op ops[8];
	json_t *ins[8];
	size_t n;
	json_t *thread_answer; /* STORE_THREAD_FIND's out; NULL: fail it with 503 */
	int hold_lookups;      /* keep thread lookups unanswered in held[] until the test answers */
	struct store_req *held[4];
	size_t nheld;
};

static struct fake fake;
static struct loketd d;
static struct store fake_store;

/* What the submitter heard; the strings copied, the result is only borrowed. */
struct heard {
	int calls;
	enum store_result result; /* what register_submit answered */
	int status;               /* what the ABI's loket_submit_result said */
	char error[256];
	int duplicate, threaded;
	json_int_t contact_id;
	char reference[32];
};

static void
fake_complete_cb(evutil_socket_t fd, short what, void *arg)
{
	struct store_req *req = arg;

	(void)fd;
	(void)what;
	switch (req->op) {
	case STORE_THREAD_FIND:
		if (fake.thread_answer == NULL)
			store_req_fail(req, STORE_UNAVAILABLE, "the register is busy");
		else
			req->out = json_deep_copy(fake.thread_answer);
		break;
	case STORE_MESSAGE_ADD:
		req->out = json_pack("{s:O, s:s}", "id", json_object_get(req->in, "id"), "reference",
		    "2026-000007");
		break;
	case STORE_CONTACT_CREATE:
		req->out = json_pack("{s:i, s:s, s:n}", "id", 12, "reference", "2026-000012",
		    "party_id");
		break;
	default:
		store_req_fail(req, STORE_FAILED, "unexpected request");
	}
	store_req_complete(req);
}

/* Every request, reads too, completes on the next turn of the loop, never inside submit. */
static void
fake_submit(void *impl, struct store_req *req)
{
	assert_true(fake.n < 8);
	fake.ops[fake.n] = req->op;
	fake.ins[fake.n++] = json_deep_copy(req->in);
	if (fake.hold_lookups && req->op == STORE_THREAD_FIND) {
		assert_true(fake.nheld < 4);
		fake.held[fake.nheld++] = req;
		return;
	}
	assert_int_equal(
	    event_base_once((struct event_base *)impl, -1, EV_TIMEOUT, fake_complete_cb, req, NULL), 0);
}

static const struct store_driver fake_driver = { .name = "later", .submit = fake_submit };

static void
heard_cb(const struct register_result *res, void *arg)
{
	struct heard *h = arg;

	h->calls++;
	h->result = res->result;
	snprintf(h->error, sizeof(h->error), "%s", res->error != NULL ? res->error : "");
	h->duplicate = res->duplicate;
	h->threaded = res->threaded;
	h->contact_id = res->contact_id;
	snprintf(h->reference, sizeof(h->reference), "%s",
	    res->reference != NULL ? res->reference : "");
}

static int
setup(void **state)
{
	char path[] = "/tmp/loket-test-register-submit-XXXXXX";
	int fd = mkstemp(path);
	const char *err = NULL;
	FILE *fp = fdopen(fd, "w");

	(void)state;
	fputs("[loketd]\ndata_dir = /tmp\n[organisation.gemeente]\n"
	      "[department.burgerzaken]\norganisation = gemeente\n",
	    fp);
	fclose(fp);
	if (conf_load(path, &d.conf, &err) < 0)
		fail_msg("%s", err);
	unlink(path);
	d.base = event_base_new();
	fake_store.driver = &fake_driver;
	fake_store.base = d.base;
	fake_store.impl = d.base; /* the fake driver's state: the loop it answers on */
	d.store = &fake_store;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	event_base_free(d.base);
	conf_free(d.conf);
	return 0;
}

static int
reset(void **state)
{
	(void)state;
	for (size_t i = 0; i < fake.n; i++)
		json_decref(fake.ins[i]);
	json_decref(fake.thread_answer);
	memset(&fake, 0, sizeof(fake));
	return 0;
}

/*
 * Submits c as the plugin "mail" would and runs the loop until every
 * completion came. The submission's steps live on the heap: were any step's
 * argument on this function's stack frame (or contact_submit's), a lookup
 * answered after the call returned would write into a dead frame, which
 * ASan reports with detect_stack_use_after_return=1.
 */
static void
submit_and_wait(struct loket_contact *c, struct heard *h, const struct register_caller *who)
{
	struct register_caller plugin = { .actor = "mail" };

	register_submit(&d, c, who != NULL ? who : &plugin, heard_cb, h);
	assert_int_equal(h->calls, 0);
	event_base_dispatch(d.base);
	assert_int_equal(h->calls, 1);
}

static struct loket_contact *
mail_contact(const char *message)
{
	struct loket_contact *c = contact_new(&d, "mail", "email");

	assert_non_null(c);
	assert_int_equal(contact_set(c, "subject", "Re: uw aanvraag"), 0);
	assert_int_equal(contact_set(c, "party.email", "burger@example.be"), 0);
	if (message != NULL)
		assert_int_equal(contact_message(c, message), 0);
	return c;
}

static void
test_a_thread_lookup_answered_later_threads_the_message(void **state)
{
	struct heard h = { 0 };

	(void)state;
	fake.thread_answer = json_pack("{s:i}", "contact_id", 7);
	submit_and_wait(mail_contact("{\"sender\": \"burger@example.be\", \"body\": \"ja\", "
				     "\"thread\": {\"reference\": \"2026-000007\"}}"),
	    &h, NULL);
	assert_int_equal(h.result, STORE_OK);
	assert_int_equal(fake.n, 2);
	assert_int_equal(fake.ops[0], STORE_THREAD_FIND);
	assert_string_equal(
	    json_string_value(json_object_get(fake.ins[0], "reference")), "2026-000007");
	assert_int_equal(fake.ops[1], STORE_MESSAGE_ADD);
	assert_int_equal(json_integer_value(json_object_get(fake.ins[1], "id")), 7);
	assert_string_equal(json_string_value(json_object_get(fake.ins[1], "actor")), "mail");
	assert_null(json_object_get(json_object_get(fake.ins[1], "message"), "thread"));
	assert_true(h.threaded);
	assert_int_equal(h.contact_id, 7);
	assert_string_equal(h.reference, "2026-000007");
}

static void
test_a_message_id_seen_before_flags_the_new_contact(void **state)
{
	struct heard h = { 0 };
	json_t *doc;

	(void)state;
	fake.thread_answer = json_pack(
	    "{s:{s:i, s:s}}", "message_id_seen", "id", 3, "reference", "2026-000003");
	submit_and_wait(mail_contact("{\"sender\": \"burger@example.be\", \"message_id\": "
				     "\"<a@b>\", \"automatic\": \"auto-submitted\"}"),
	    &h, NULL);
	assert_int_equal(h.result, STORE_OK);
	assert_int_equal(fake.n, 2);
	assert_int_equal(fake.ops[1], STORE_CONTACT_CREATE);
	doc = fake.ins[1];
	assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "meta"),
				"message_id_seen")),
	    "2026-000003");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(doc, "meta"), "automatic")),
	    "auto-submitted");
	assert_string_equal(json_string_value(json_array_get(json_object_get(doc, "tags"), 0)),
	    "automatic");
	assert_string_equal(json_string_value(json_array_get(json_object_get(doc, "tags"), 1)),
	    "message-id-seen");
	assert_string_equal(json_string_value(json_object_get(doc, "created_by")), "mail");
	assert_int_equal(h.contact_id, 12);
	assert_false(h.threaded);
}

static void
test_a_failed_thread_lookup_is_heard_not_made_a_new_contact(void **state)
{
	struct heard h = { 0 };

	(void)state;
	submit_and_wait(mail_contact("{\"thread\": {\"message_ids\": [\"<x@y>\"]}}"), &h, NULL);
	assert_int_equal(h.result, STORE_UNAVAILABLE);
	assert_int_equal(fake.n, 1);
}

static void
test_a_refused_contact_is_answered_after_submit_returns(void **state)
{
	struct heard h = { 0 };
	struct loket_contact *c = contact_new(&d, "mail", "email");

	(void)state;
	assert_int_equal(contact_set(c, "department", "nergens"), 0);
	submit_and_wait(c, &h, NULL);
	assert_int_equal(h.result, STORE_INVALID);
	assert_non_null(strstr(h.error, "department"));
	assert_int_equal(fake.n, 0);
}

static void
test_an_api_contact_carries_its_idempotency_keys_and_no_lookup(void **state)
{
	struct register_caller who = { .actor = "balie", .idempotency_key = "idem:h:k",
		.idempotency_body = "idem:h:k#b" };
	struct heard h = { 0 };
	json_t *in;

	(void)state;
	submit_and_wait(contact_from_json(&d, "balie",
			    json_pack("{s:s, s:s}", "channel", "phone", "subject", "paspoort")),
	    &h, &who);
	assert_int_equal(h.result, STORE_OK);
	assert_int_equal(fake.n, 1);
	assert_int_equal(fake.ops[0], STORE_CONTACT_CREATE);
	in = fake.ins[0];
	assert_string_equal(json_string_value(json_array_get(json_object_get(in, "keys"), 0)),
	    "idem:h:k");
	assert_string_equal(json_string_value(json_array_get(json_object_get(in, "keys"), 1)),
	    "idem:h:k#b");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(in, "idempotency"), "body")),
	    "idem:h:k#b");
	assert_string_equal(json_string_value(json_object_get(in, "created_by")), "balie");
	assert_int_equal(h.contact_id, 12);
}

/* The ABI's contact_submit is the same door: the plugin's name is the actor. */
static void
abi_heard_cb(const struct loket_submit_result *res, void *arg)
{
	struct heard *h = arg;

	h->calls++;
	h->status = res->status;
	h->threaded = res->threaded;
	h->contact_id = res->contact_id;
	assert_non_null(res->json);
}

static void
test_the_abi_submit_goes_through_the_same_door(void **state)
{
	struct loket_plugin self = { .name = "mail", .daemon = &d };
	struct loket_contact *c = api_table.contact_new(&self, "email");
	struct heard h = { 0 };

	(void)state;
	fake.thread_answer = json_pack("{s:i}", "contact_id", 9);
	assert_int_equal(api_table.contact_message(c, "{\"thread\": {\"reference\": "
						      "\"2026-000009\"}}"),
	    0);
	api_table.contact_submit(c, abi_heard_cb, &h);
	assert_int_equal(h.calls, 0);
	event_base_dispatch(d.base);
	assert_int_equal(h.calls, 1);
	assert_int_equal(h.status, 0);
	assert_true(h.threaded);
	assert_int_equal(h.contact_id, 9);
	assert_int_equal(fake.ops[0], STORE_THREAD_FIND);
	assert_int_equal(fake.ops[1], STORE_MESSAGE_ADD);
	assert_string_equal(json_string_value(json_object_get(fake.ins[1], "actor")), "mail");
}

static const char *
subject_of(size_t i)
{
	return json_string_value(json_object_get(fake.ins[i], "subject"));
}

/*
 * A driver's reader threads may answer two lookups in either order; a
 * mailbox's mails are still stored in the order the channel submitted them
 * (its list of messages follows the mailbox), and a mail of the same
 * channel without anything to look up waits its turn too. Another caller
 * does not wait for the channel.
 */
static void
test_lookups_answered_out_of_order_keep_the_callers_order(void **state)
{
	struct heard h[4] = { { 0 } };
	struct register_caller api = { .actor = "balie" };
	struct loket_contact *c;
	const char *subjects[] = { "eerste", "tweede", "derde" };

	(void)state;
	fake.thread_answer = json_object();
	fake.hold_lookups = 1;
	for (size_t i = 0; i < 3; i++) {
		struct register_caller mail = { .actor = "mail" };

		c = mail_contact(i < 2 ? "{\"message_id\": \"<m@burger.example>\"}" : NULL);
		assert_int_equal(contact_set(c, "subject", subjects[i]), 0);
		register_submit(&d, c, &mail, heard_cb, &h[i]);
	}
	c = contact_new(&d, "balie", "counter");
	assert_int_equal(contact_set(c, "subject", "aan de balie"), 0);
	register_submit(&d, c, &api, heard_cb, &h[3]);
	/* The counter's contact went on at once; the mails wait for their lookups. */
	assert_int_equal(fake.n, 3);
	assert_int_equal(fake.ops[2], STORE_CONTACT_CREATE);
	assert_string_equal(subject_of(2), "aan de balie");

	/* The second mail's lookup answers first: nothing is written for it yet. */
	fake_complete_cb(-1, 0, fake.held[1]);
	assert_int_equal(fake.n, 3);
	fake_complete_cb(-1, 0, fake.held[0]);
	assert_int_equal(fake.n, 6);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(fake.ops[3 + i], STORE_CONTACT_CREATE);
		assert_string_equal(subject_of(3 + i), subjects[i]);
	}
	event_base_dispatch(d.base);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(h[i].calls, 1);
		assert_int_equal(h[i].result, STORE_OK);
	}
	assert_null(d.submissions);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_a_thread_lookup_answered_later_threads_the_message, reset, reset),
		cmocka_unit_test_setup_teardown(
		    test_a_message_id_seen_before_flags_the_new_contact, reset, reset),
		cmocka_unit_test_setup_teardown(
		    test_a_failed_thread_lookup_is_heard_not_made_a_new_contact, reset, reset),
		cmocka_unit_test_setup_teardown(
		    test_a_refused_contact_is_answered_after_submit_returns, reset, reset),
		cmocka_unit_test_setup_teardown(
		    test_an_api_contact_carries_its_idempotency_keys_and_no_lookup, reset, reset),
		cmocka_unit_test_setup_teardown(
		    test_the_abi_submit_goes_through_the_same_door, reset, reset),
		cmocka_unit_test_setup_teardown(
		    test_lookups_answered_out_of_order_keep_the_callers_order, reset, reset),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
