/* test_register.c: the status machine and the checks a posted contact goes through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "loketd.h"
#include "register.h"

static void
test_transitions(void **state)
{
	static const struct {
		enum register_action action;
		const char *from;
		int allowed;
	} cases[] = {
		{ REGISTER_RESOLVE, "open", 1 },
		{ REGISTER_RESOLVE, "resolved", 0 },
		{ REGISTER_RESOLVE, "escalated", 0 },
		{ REGISTER_RESOLVE, "closed", 0 },
		{ REGISTER_ESCALATE, "open", 1 },
		{ REGISTER_ESCALATE, "escalated", 0 },
		{ REGISTER_ESCALATE, "resolved", 0 },
		{ REGISTER_ESCALATE, "closed", 0 },
		{ REGISTER_CLOSE, "escalated", 1 },
		{ REGISTER_CLOSE, "open", 0 },
		{ REGISTER_CLOSE, "resolved", 0 },
		{ REGISTER_CLOSE, "closed", 0 },
		{ REGISTER_REOPEN, "resolved", 1 },
		{ REGISTER_REOPEN, "closed", 1 },
		{ REGISTER_REOPEN, "open", 0 },
		{ REGISTER_REOPEN, "escalated", 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if ((register_transition_allowed(cases[i].action, cases[i].from) == 0) !=
		    cases[i].allowed)
			fail_msg("%s from %s: expected %s", register_transitions[cases[i].action].name,
			    cases[i].from, cases[i].allowed ? "allowed" : "refused");
	assert_string_equal(register_transitions[REGISTER_ESCALATE].to, "escalated");
	assert_int_equal(register_transitions[REGISTER_ESCALATE].line, 2);
	assert_string_equal(register_transitions[REGISTER_REOPEN].to, "open");
	assert_int_equal(register_transitions[REGISTER_REOPEN].line, 1);
}

static struct loketd d;

static int
setup(void **state)
{
	char path[] = "/tmp/loket-test-register-XXXXXX";
	int fd = mkstemp(path);
	const char *err = NULL;
	FILE *fp = fdopen(fd, "w");

	fputs("[loketd]\ndata_dir = /tmp\n[organisation.gemeente]\n[organisation.ocmw]\n"
	      "[department.burgerzaken]\norganisation = gemeente\n"
	      "[department.sociale_dienst]\norganisation = ocmw\n",
	    fp);
	fclose(fp);
	if (conf_load(path, &d.conf, &err) < 0)
		fail_msg("%s", err);
	unlink(path);
	return 0;
}

static int
teardown(void **state)
{
	conf_free(d.conf);
	return 0;
}

/* Prepares body; returns the store's word for the outcome and copies the message into err. */
static enum store_result
prepare(const char *body, json_t **doc_r, char *err)
{
	json_t *j = json_loads(body, JSON_ALLOW_NUL, NULL);
	const char *error = "";
	enum store_result result;

	assert_non_null(j);
	result = register_prepare(&d, j, "tester", doc_r, &error);
	snprintf(err, 256, "%s", result == STORE_OK ? "" : error);
	json_decref(j);
	return result;
}

static void
test_prepare_normalises(void **state)
{
	json_t *doc = NULL, *party;
	char err[256];

	assert_int_equal(prepare("{\"channel\": \"phone\", \"subject\": \"ID\", \"department\": "
				 "\"sociale_dienst\", \"party\": {\"name\": \"Jan\", \"email\": "
				 "\" Jan@Example.BE \", \"phone\": \"0470 12 34 56\", \"rrn\": "
				 "\"85.07.30-033.28\"}}",
			     &doc, err),
	    0);
	assert_string_equal(json_string_value(json_object_get(doc, "organisation")), "ocmw");
	assert_string_equal(json_string_value(json_object_get(doc, "status")), "open");
	assert_int_equal(json_integer_value(json_object_get(doc, "line")), 1);
	assert_string_equal(json_string_value(json_object_get(doc, "priority")), "normal");
	assert_string_equal(json_string_value(json_object_get(doc, "created_by")), "tester");
	party = json_object_get(doc, "party");
	assert_string_equal(json_string_value(json_object_get(party, "email")), "jan@example.be");
	assert_string_equal(json_string_value(json_object_get(party, "phone")), "+32470123456");
	assert_string_equal(json_string_value(json_object_get(party, "rrn")), "85073003328");
	assert_string_equal(json_string_value(json_object_get(party, "name")), "Jan");
	json_decref(doc);
	assert_int_equal(prepare("{\"channel\": \"web\"}", &doc, err), STORE_OK);
	assert_string_equal(json_string_value(json_object_get(doc, "organisation")), "gemeente");
	assert_null(json_object_get(doc, "party"));
	json_decref(doc);
}

static void
test_prepare_refuses(void **state)
{
	static const struct {
		const char *body;
		const char *detail;
	} cases[] = {
		{ "{}", "channel: required" },
		{ "{\"channel\": \"fax\"}", "channel: expected phone" },
		{ "{\"channel\": 7}", "channel: expected phone" },
		{ "{\"channel\": \"phone\", \"colour\": 1}", "colour: unknown field" },
		{ "{\"channel\": \"phone\", \"subject\": 5}", "subject: expected a string" },
		{ "{\"channel\": \"phone\", \"subject\": \"a\\u0000b\"}", "subject: contains a NUL" },
		{ "{\"channel\": \"phone\", \"department\": \"nope\"}", "department: no department 'nope'" },
		{ "{\"channel\": \"phone\", \"organisation\": \"nope\"}", "organisation: no organisation" },
		{ "{\"channel\": \"phone\", \"priority\": \"asap\"}", "priority: expected low" },
		{ "{\"channel\": \"phone\", \"direction\": \"up\"}", "direction: expected in or out" },
		{ "{\"channel\": \"phone\", \"confidential\": \"yes\"}", "confidential: expected true" },
		{ "{\"channel\": \"phone\", \"tags\": \"a\"}", "tags: expected a list" },
		{ "{\"channel\": \"phone\", \"tags\": [1]}", "tags: expected strings" },
		{ "{\"channel\": \"phone\", \"meta\": []}", "meta: expected an object" },
		{ "{\"channel\": \"phone\", \"meta\": {\"k\": 1}}", "meta.k: expected a string" },
		{ "{\"channel\": \"phone\", \"party\": \"Jan\"}", "party: expected an object" },
		{ "{\"channel\": \"phone\", \"party\": {\"age\": \"3\"}}", "party.age: unknown field" },
		{ "{\"channel\": \"phone\", \"party\": {\"rrn\": \"12345678901\"}}", "party.rrn: " },
		{ "{\"channel\": \"phone\", \"party\": {\"bsn\": \"111252333\"}}", "party.bsn: " },
		{ "{\"channel\": \"phone\", \"party\": {\"email\": \"nobody\"}}", "party.email: " },
		{ "{\"channel\": \"phone\", \"party\": {\"phone\": \"12ab\"}}", "party.phone: " },
	};
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *doc = NULL;
		enum store_result result = prepare(cases[i].body, &doc, err);

		if (result != STORE_INVALID || strstr(err, cases[i].detail) == NULL)
			fail_msg("%s: got %d '%s', expected STORE_INVALID '%s'", cases[i].body, result, err,
			    cases[i].detail);
		assert_null(doc);
	}
}

static void
test_subject_limit(void **state)
{
	char body[1200], err[256];
	json_t *doc = NULL;

	snprintf(body, sizeof(body), "{\"channel\": \"phone\", \"subject\": \"%01001d\"}", 0);
	assert_int_equal(prepare(body, &doc, err), STORE_INVALID);
	assert_non_null(strstr(err, "subject: longer than 1000 bytes"));
}

/* The string at key of the i-th entry of doc's history. */
static const char *
hist(json_t *doc, size_t i, const char *key)
{
	return json_string_value(json_object_get(json_array_get(json_object_get(doc, "history"), i),
	    key));
}

/*
 * register_apply hands the store rows to write as they are: decisions of
 * rules in a row packed into one "rules" row, a lone one worded, a
 * reminder's payload as text.
 */
static void
test_apply_history_rows(void **state)
{
	json_t *doc = json_pack("{s:s, s:s, s:s, s:[]}", "channel", "phone", "status", "open",
	    "organisation", "gemeente", "tags");
	json_t *decisions = json_pack("[{s:s, s:s, s:s, s:s}, {s:s, s:s, s:s}, {s:s, s:s, s:[s]}]",
	    "type", "set", "rule", "10-a.lua:1", "field", "product", "value", "eid", "type",
	    "failed", "rule", "20-b.lua:4", "result", "budget", "type", "tag", "rule", "30-c.lua:2",
	    "tags", "x");
	json_t *one = json_pack("[{s:s, s:s, s:s, s:I, s:s, s:{s:s, s:s}}]", "type", "remind",
	    "rule", "40-d.lua:3", "after", "4h", "due_at", (json_int_t)1764662400000LL, "unless",
	    "resolved", "escalate", "to", "burgerzaken", "reason", "te laat");
	json_t *packed, *payload;

	assert_int_equal(register_apply(&d, doc, decisions), 0);
	assert_string_equal(json_string_value(json_object_get(doc, "product")), "eid");
	assert_int_equal(json_array_size(json_object_get(doc, "tags")), 1);
	assert_string_equal(json_string_value(json_array_get(json_object_get(doc, "tags"), 0)), "x");
	assert_int_equal(json_array_size(json_object_get(doc, "history")), 1);
	assert_string_equal(hist(doc, 0, "actor"), "rules");
	assert_string_equal(hist(doc, 0, "action"), "rules");
	packed = json_loads(hist(doc, 0, "detail"), 0, NULL);
	/* actor, action, detail of each decision */
	assert_int_equal(json_array_size(packed), 9);
	assert_string_equal(json_string_value(json_array_get(packed, 0)), "rule:10-a.lua:1");
	assert_string_equal(json_string_value(json_array_get(packed, 2)), "set product = \"eid\"");
	assert_string_equal(json_string_value(json_array_get(packed, 3)), "rule:20-b.lua:4");
	assert_string_equal(json_string_value(json_array_get(packed, 4)), "rule_failed");
	assert_string_equal(json_string_value(json_array_get(packed, 5)), "budget");
	assert_string_equal(json_string_value(json_array_get(packed, 8)), "tag [\"x\"]");
	json_decref(packed);

	/* A second event's lone decision after the first's row: worded, the first row kept. */
	assert_int_equal(register_apply(&d, doc, one), 0);
	assert_int_equal(json_array_size(json_object_get(doc, "history")), 2);
	assert_string_equal(hist(doc, 0, "actor"), "rules");
	assert_string_equal(hist(doc, 1, "actor"), "rule:40-d.lua:3");
	assert_non_null(strstr(hist(doc, 1, "detail"),
	    "remind after 4h (at 2025-12-02T08:00:00.000Z) unless resolved, then escalate to "
	    "burgerzaken"));
	payload = json_loads(json_string_value(json_object_get(
	    json_array_get(json_object_get(doc, "timers"), 0), "payload")), 0, NULL);
	assert_string_equal(json_string_value(json_object_get(payload, "unless")), "resolved");
	assert_string_equal(json_string_value(json_object_get(json_object_get(payload, "escalate"),
	    "to")), "burgerzaken");
	assert_null(json_object_get(payload, "rule"));
	json_decref(payload);
	json_decref(decisions);
	json_decref(one);
	json_decref(doc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transitions),
		cmocka_unit_test(test_prepare_normalises),
		cmocka_unit_test(test_prepare_refuses),
		cmocka_unit_test(test_subject_limit),
		cmocka_unit_test(test_apply_history_rows),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
