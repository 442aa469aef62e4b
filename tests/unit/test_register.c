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
	char *err = NULL;
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

/* Prepares body; returns the status and leaves the message in err. */
static int
prepare(const char *body, json_t **doc_r, char *err)
{
	json_t *j = json_loads(body, JSON_ALLOW_NUL, NULL);
	int status;

	assert_non_null(j);
	status = register_prepare(&d, j, "tester", doc_r, err, 256);
	json_decref(j);
	return status;
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
	assert_int_equal(prepare("{\"channel\": \"web\"}", &doc, err), 0);
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
		int status = prepare(cases[i].body, &doc, err);

		if (status != 422 || strstr(err, cases[i].detail) == NULL)
			fail_msg("%s: got %d '%s', expected 422 '%s'", cases[i].body, status, err,
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
	assert_int_equal(prepare(body, &doc, err), 422);
	assert_non_null(strstr(err, "subject: longer than 1000 bytes"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transitions),
		cmocka_unit_test(test_prepare_normalises),
		cmocka_unit_test(test_prepare_refuses),
		cmocka_unit_test(test_subject_limit),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
