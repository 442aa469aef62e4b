/* test_rules.c: the Lua engine: handlers and decisions, named results, the sandbox's fences. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rules.h"
#include "util.h"

static char dir[64];

static void
write_rule(const char *name, const char *text)
{
	char path[160];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	fputs(text, fp);
	fclose(fp);
}

static int
setup(void **state)
{
	strcpy(dir, "/tmp/loket-test-rules-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static int
known_cb(void *arg, const char *department)
{
	return strcmp(department, "omgeving") == 0 || strcmp(department, "onthaal") == 0;
}

/* Roomy defaults so each case ends on the limit it is about, whatever the machine's speed. */
static struct rules_limits limits = { .instructions = 200000, .wall_ms = 5000, .memory = 8 << 20 };

static struct rules *
load(const char *want_error)
{
	struct rules_host host = { .department_known = known_cb };
	struct rules *r = NULL;
	const char *err = NULL;
	int rc = rules_load(dir, &limits, &host, &r, &err);

	if (want_error == NULL) {
		if (rc < 0)
			fail_msg("rules did not load: %s", err);
		return r;
	}
	assert_int_equal(rc, -1);
	if (err == NULL || strstr(err, want_error) == NULL)
		fail_msg("error '%s' lacks '%s'", err != NULL ? err : "(none)", want_error);
	return NULL;
}

static json_t *
run(struct rules *r)
{
	json_t *contact = json_pack("{s:s, s:s, s:i, s:s, s:[]}", "channel", "email", "subject",
	    "Vraag over mijn omgevingsvergunning", "line", 1, "status", "open", "tags");
	json_t *out = rules_run(r, "contact", contact, NULL, util_time_ms());

	json_decref(contact);
	return out;
}

/* The index-th decision's field, as text. */
static const char *
field(json_t *decisions, size_t index, const char *key)
{
	return json_string_value(json_object_get(json_array_get(decisions, index), key));
}

/* A rules folder with no rule in it loads (a daemon may start with one) and decides nothing. */
static void
test_empty_folder(void **state)
{
	struct rules *r = load(NULL);
	json_t *d;

	assert_int_equal(rules_handler_count(r, "contact"), 0);
	d = run(r);
	assert_int_equal(json_array_size(d), 0);
	json_decref(d);
	rules_free(r);
}

static void
test_decisions_in_order(void **state)
{
	struct rules *r;
	json_t *d;

	write_rule("20-b.lua", "loket.on('contact', function(c) c.product = 'x' end)\n");
	write_rule("10-a.lua", "loket.on('contact', function(c)\n"
			       "  if c.subject:lower():find('omgevingsvergunning', 1, true) then\n"
			       "    c:tag('omgeving') end end)\n"
			       "loket.on('contact', function(c) c.priority = 'high' end, {priority = 5})\n");
	r = load(NULL);
	assert_int_equal(rules_handler_count(r, "contact"), 3);
	d = run(r);
	assert_int_equal(json_array_size(d), 3);
	/* Priority first, then file name order, then order within the file. */
	assert_string_equal(field(d, 0, "rule"), "10-a.lua:4");
	assert_string_equal(field(d, 0, "field"), "priority");
	assert_string_equal(field(d, 1, "type"), "tag");
	assert_string_equal(field(d, 1, "rule"), "10-a.lua:1");
	assert_string_equal(field(d, 2, "rule"), "20-b.lua:1");
	json_decref(d);
	rules_free(r);
}

/* Counts per rule and outcome through the host's cache slot, as rulebook.c does. */
static int count_lookups, count_calls[8];

static void
count_cb(void *arg, const char *rule, enum rules_result result, void **cache)
{
	(void)arg;
	(void)rule;
	if (*cache == NULL) {
		count_lookups++;
		*cache = &count_calls[result];
	}
	(*(int *)*cache)++;
}

/*
 * What a rule sees of the contact: fields as they came in, what earlier
 * handlers wrote (nil included), the methods, and nothing of a contact kept
 * from an earlier run but what that run read. A failed handler in between
 * loses its own decisions only.
 */
static void
test_contact_object(void **state)
{
	struct rules_host host = { .department_known = known_cb, .count = count_cb };
	struct rules *r = NULL;
	const char *err = NULL;
	json_t *contact, *d;

	write_rule("10-write.lua",
	    "loket.on('contact', function(c)\n"
	    "  if old ~= nil then\n"
	    "    c:tag('old-channel-' .. tostring(old.channel), 'old-body-' .. tostring(old.body))\n"
	    "  end\n"
	    "  local _ = c.channel\n"
	    "  old = c\n"
	    "  c.product = nil\n"
	    "  c.priority = 'high'\n"
	    "end)\n");
	write_rule("20-fail.lua", "loket.on('contact', function(c) c:tag('lost') error('boom') end)\n");
	write_rule("30-read.lua",
	    "loket.on('contact', function(c)\n"
	    "  c:tag('product-' .. tostring(c.product), 'priority-' .. c.priority,\n"
	    "        'party-' .. c.party.name, 'meta-' .. tostring(c.meta and c.meta.k))\n"
	    "  if type(c.escalate) ~= 'function' then error('no methods') end\n"
	    "  for k in pairs(c) do error('the proxy shows ' .. k) end\n"
	    "end)\n");
	if (rules_load(dir, &limits, &host, &r, &err) < 0)
		fail_msg("rules did not load: %s", err);
	contact = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:{s:s}}", "channel", "phone", "body",
	    "lang verhaal", "product", "eid", "priority", "normal", "party", "name", "An",
	    "meta", "k", "v");
	for (int round = 0; round < 2; round++) {
		d = rules_run(r, "contact", contact, NULL, util_time_ms());
		/* set product, set priority, failed, tag (and the old contact's tag in round 2) */
		assert_int_equal(json_array_size(d), round == 0 ? 4 : 5);
		if (round == 1) {
			/* The kept contact: its channel was read in its run, its body never was. */
			assert_string_equal(json_string_value(json_array_get(
						json_object_get(json_array_get(d, 0), "tags"), 0)),
			    "old-channel-phone");
			assert_string_equal(json_string_value(json_array_get(
						json_object_get(json_array_get(d, 0), "tags"), 1)),
			    "old-body-nil");
			json_array_remove(d, 0);
		}
		assert_string_equal(field(d, 0, "field"), "product");
		/* A set to nil carries no value. */
		assert_null(json_object_get(json_array_get(d, 0), "value"));
		assert_string_equal(field(d, 2, "type"), "failed");
		assert_string_equal(field(d, 2, "rule"), "20-fail.lua:1");
		assert_string_equal(field(d, 3, "type"), "tag");
		{
			json_t *tags = json_object_get(json_array_get(d, 3), "tags");

			assert_string_equal(json_string_value(json_array_get(tags, 0)), "product-nil");
			assert_string_equal(json_string_value(json_array_get(tags, 1)), "priority-high");
			assert_string_equal(json_string_value(json_array_get(tags, 2)), "party-An");
			assert_string_equal(json_string_value(json_array_get(tags, 3)), "meta-v");
		}
		json_decref(d);
	}
	/* The input is not changed by the rules: they decide, the register applies. */
	assert_string_equal(json_string_value(json_object_get(contact, "product")), "eid");
	/* Six calls counted; each handler's outcome was looked up once, in the first round. */
	assert_int_equal(count_calls[RULES_OK], 4);
	assert_int_equal(count_calls[RULES_ERROR], 2);
	assert_int_equal(count_lookups, 3);
	json_decref(contact);
	rules_free(r);
}

/*
 * A contact kept from an earlier run acts on nothing: its methods and its
 * fields refuse with a message that says why, instead of deciding for the
 * contact being handled now; a method called without the contact says how
 * to call it. The contact of the run itself is untouched by the refusals.
 */
static void
test_kept_contact_acts_not(void **state)
{
	static const char *const attempts[] = {
		"old:tag('x')",
		"old.priority = 'high'",
		"old:escalate{ to = 'omgeving' }",
		"old:resolve{}",
		"old:assign{ to = 'an' }",
		"old:remind{ after = '4h', call = 'terugbellen' }",
		"old:reply{ template = 'ontvangen' }",
	};
	struct rules *r;
	json_t *d;

	for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
		char text[400];

		snprintf(text, sizeof(text),
		    "loket.on('contact', function(c)\n"
		    "  if old ~= nil then %s end\n"
		    "  old = c\n"
		    "end)\n",
		    attempts[i]);
		write_rule("10-keep.lua", text);
		write_rule("20-tag.lua", "loket.on('contact', function(c) c:tag('now') end)\n");
		r = load(NULL);
		d = run(r);
		assert_int_equal(json_array_size(d), 1);
		json_decref(d);
		d = run(r);
		/* The second run: the kept contact's attempt failed, nothing else decided. */
		assert_int_equal(json_array_size(d), 2);
		assert_string_equal(field(d, 0, "type"), "failed");
		assert_string_equal(field(d, 0, "result"), "error");
		if (strstr(field(d, 0, "message"), "not the contact of this run") == NULL)
			fail_msg("%s: %s", attempts[i], field(d, 0, "message"));
		assert_string_equal(field(d, 1, "type"), "tag");
		json_decref(d);
		rules_free(r);
	}
	write_rule("10-keep.lua", "loket.on('contact', function(c) c.tag('x') end)\n");
	r = load(NULL);
	d = run(r);
	assert_string_equal(field(d, 0, "type"), "failed");
	if (strstr(field(d, 0, "message"), "call it on the contact, as c:tag(...)") == NULL)
		fail_msg("%s", field(d, 0, "message"));
	json_decref(d);
	rules_free(r);
}

/*
 * What a rule hands to the register is checked where the rule gives it:
 * bytes that are not UTF-8, a NUL, control characters in a label, a field
 * too long or not of its kind, a timer due at once, a hundred decisions in
 * one call fail the rule with a message naming the field; a reason over
 * several lines with accents is fine.
 */
static void
test_rule_strings_checked(void **state)
{
	static const struct {
		const char *call, *message;
	} bad[] = {
		{ "c:tag('\\xff')", "tag: not valid UTF-8" },
		{ "c:tag('a\\0b')", "tag: contains a NUL character" },
		{ "c:tag('a\\tb')", "tag: contains a control character" },
		{ "c:tag(string.rep('t', 65))", "tag: expected 1 to 64 bytes, got 65" },
		{ "c.product = '\\xc3'", "product: not valid UTF-8" },
		{ "c.product = string.rep('p', 201)", "product: expected 1 to 200 bytes" },
		{ "c.language = 'Nederlands'", "language: expected a language tag" },
		{ "c.tags = { 'a', {} }", "tags: expected a string" },
		{ "c.tags = { a = 'b' }", "tags: expected a list of at most 32 tags" },
		{ "local t = {} for i = 1, 33 do t[i] = 'x' .. i end c.tags = t",
		    "tags: expected a list of at most 32 tags" },
		{ "c:escalate{ to = 'omgeving', reason = '\\xe2\\x82' }", "reason: not valid UTF-8" },
		{ "c:escalate{ to = 'omgeving', reason = string.rep('r', 1001) }",
		    "reason: expected 1 to 1000 bytes" },
		{ "c:resolve{ answer = 'ok\\0' }", "answer: contains a NUL character" },
		{ "c:assign{ to = 'an\\npeeters' }", "to: contains a control character" },
		{ "c:remind{ after = '4h', call = 'bel\\xffterug' }", "call: not valid UTF-8" },
		{ "c:reply{ template = '../x' }", "template '../x' is not a plain name" },
		{ "c:reply{ template = 'ontvangen', via = 'fax' }", "via 'fax' is not a channel" },
		{ "c:reply{ template = 'ontvangen', unit = 'omgeving' }",
		    "'unit' is the calendar 'within' is counted in; give both" },
		{ "c:reply{ template = 'ontvangen', within = '2d', unit = 'nergens' }",
		    "no calendar for 'nergens'" },
		/* A timer due at once, reminded again from its own handler, would never stop. */
		{ "c:remind{ after = '0h', call = 'x' }", "duration '0h': expected at least 1m" },
		{ "c:escalate{ to = 'omgeving', within = '0d0h0m' }", "expected at least 1m" },
		{ "for i = 1, 101 do c:tag('t' .. i) end", "tag: more than 100 decisions" },
		/* A misspelt status would never hold: the reminder would fire whatever happened. */
		{ "c:remind{ after = '4h', unless = 'resolvd', call = 'x' }",
		    "unless 'resolvd' is not a status" },
	};
	struct rules *r;
	json_t *d;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[400];

		snprintf(text, sizeof(text), "loket.on('contact', function(c) %s end)\n", bad[i].call);
		write_rule("10-bad.lua", text);
		r = load(NULL);
		d = run(r);
		assert_int_equal(json_array_size(d), 1);
		assert_string_equal(field(d, 0, "type"), "failed");
		if (strstr(field(d, 0, "message"), bad[i].message) == NULL)
			fail_msg("%s: '%s' lacks '%s'", bad[i].call, field(d, 0, "message"),
			    bad[i].message);
		json_decref(d);
		rules_free(r);
	}
	write_rule("10-bad.lua",
	    "loket.on('contact', function(c)\n"
	    "  c:escalate{ to = 'omgeving', reason = 'lijn 1\\nlijn 2: één aanvraag' }\n"
	    "  c.language = 'nl-BE'\n"
	    "  c.tags = { 'afspraak', 'dringend' }\n"
	    "end)\n");
	r = load(NULL);
	d = run(r);
	assert_int_equal(json_array_size(d), 3);
	assert_string_equal(field(d, 0, "reason"), "lijn 1\nlijn 2: één aanvraag");
	assert_string_equal(field(d, 1, "type"), "set");
	assert_string_equal(field(d, 2, "field"), "tags");
	json_decref(d);
	rules_free(r);
	/* A failure's message is kept as text: cut to 500 bytes, not UTF-8 bytes made '?'. */
	write_rule("10-bad.lua", "loket.on('contact', function(c) error(('\\xc3\\xa9'):rep(400) .. "
				 "'\\xff', 0) end)\n");
	r = load(NULL);
	d = run(r);
	assert_true(strlen(field(d, 0, "message")) <= 500);
	{
		char *text = json_dumps(d, 0);

		assert_non_null(text);
		free(text);
	}
	json_decref(d);
	write_rule("10-bad.lua", "loket.on('contact', function(c) error('\\xff\\xfe', 0) end)\n");
	rules_free(r);
	r = load(NULL);
	d = run(r);
	assert_string_equal(field(d, 0, "message"), "??");
	json_decref(d);
	rules_free(r);
}

static void
expect_result(const char *body, const char *result)
{
	struct rules *r;
	json_t *d;

	write_rule("50-bad.lua", body);
	write_rule("60-good.lua", "loket.on('contact', function(c) c:tag('still-runs') end)\n");
	r = load(NULL);
	d = run(r);
	assert_string_equal(field(d, 0, "type"), "failed");
	if (strcmp(field(d, 0, "result"), result) != 0)
		fail_msg("%s: got %s (%s), expected %s", body, field(d, 0, "result"),
		    field(d, 0, "message"), result);
	assert_string_equal(field(d, 1, "type"), "tag");
	json_decref(d);
	/* The state stays usable for the next contact. */
	d = run(r);
	assert_string_equal(field(d, 1, "type"), "tag");
	json_decref(d);
	rules_free(r);
}

static void
test_named_results(void **state)
{
	expect_result("loket.on('contact', function(c) error('boom') end)\n", "error");
	expect_result("loket.on('contact', function(c) while true do end end)\n", "budget");
	expect_result("loket.on('contact', function(c)\n"
		      "  while true do pcall(function() while true do end end) end end)\n",
	    "budget");
	expect_result("loket.on('contact', function(c) local t = {}\n"
		      "  for i = 1, 1e9 do t[i] = string.rep('x', 100000) .. i end end)\n",
	    "memory");
	expect_result("loket.on('contact', function(c) return string.rep('x', 2^30) end)\n",
	    "memory");
	expect_result("loket.on('contact', function(c)\n"
		      "  return string.rep('a', 50000):find('.-.-.-.-b') end)\n",
	    "error");
	/* With a budget out of reach, the clock ends the loop. */
	limits.instructions = UINT64_MAX / 2;
	limits.wall_ms = 20;
	expect_result("loket.on('contact', function(c) while true do end end)\n", "timeout");
	limits.instructions = 200000;
	limits.wall_ms = 5000;
	expect_result("loket.on('contact', function(c) local function f(n) return 1 + f(n + 1) end\n"
		      "  f(1) end)\n",
	    "budget");
	expect_result("loket.on('contact', function(c) c.status = 'closed' end)\n", "error");
	expect_result("loket.on('contact', function(c) c:escalate{to = 'nowhere'} end)\n", "error");
}

/*
 * A run arms the count hook once for all its handlers, yet each handler has
 * the whole budget: five that each run just under it all finish (they would
 * not if the budget were shared, or a handler were charged the count left
 * over from the one before), and one just over it is stopped. The budget is
 * not a multiple of the hook's period, so a handler charged a whole period
 * for its first tick would be stopped early.
 */
static void
test_budget_per_handler_with_one_hook(void **state)
{
	struct rules *r;
	json_t *d;
	char name[32];

	limits.instructions = 200500;
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "%d-under.lua", 10 + i);
		write_rule(name, "loket.on('contact', function(c)\n"
				 "  for i = 1, 200480 do end\n"
				 "  c:tag('done')\n"
				 "end)\n");
	}
	write_rule("20-over.lua", "loket.on('contact', function(c) for i = 1, 202000 do end end)\n");
	write_rule("30-after.lua", "loket.on('contact', function(c) c:tag('after') end)\n");
	r = load(NULL);
	for (int k = 0; k < 2; k++) {
		d = run(r);
		if (json_array_size(d) != 7) {
			char *s = json_dumps(d, 0);

			fail_msg("run %d: %s", k, s);
		}
		for (int i = 0; i < 5; i++)
			assert_string_equal(field(d, (size_t)i, "type"), "tag");
		assert_string_equal(field(d, 5, "type"), "failed");
		assert_string_equal(field(d, 5, "result"), "budget");
		assert_string_equal(field(d, 6, "type"), "tag");
		json_decref(d);
	}
	rules_free(r);
	limits.instructions = 200000;
}

/*
 * string.lower and string.upper keep their last result during a run: every
 * handler gets what it would get anyway, a later contact never gets an earlier
 * one's, and a result reused is charged as if made again.
 */
static void
test_lower_kept_within_a_run(void **state)
{
	static const char *const subjects[] = { "Vraag OVER Afval", "Andere VRAAG", "Vraag OVER Afval" };
	struct rules *r;
	json_t *d, *contact;

	write_rule("10-a.lua", "loket.on('contact', function(c)\n"
			       "  local s = c.subject\n"
			       "  assert(s:lower() == s:lower() and s:upper() ~= s:lower())\n"
			       "  assert(('Ab'):lower() == 'ab' and ('Ab'):upper() == 'AB')\n"
			       "  assert(s:lower() ~= ('Ab'):lower())\n"
			       "  c:tag(s:lower(), s:upper())\n"
			       "end)\n");
	write_rule("20-b.lua", "loket.on('contact', function(c) c:tag(string.lower(c.subject)) end)\n");
	r = load(NULL);
	for (size_t k = 0; k < 3; k++) {
		char lower[32], upper[32];

		for (size_t i = 0; i <= strlen(subjects[k]); i++) {
			lower[i] = (char)tolower((unsigned char)subjects[k][i]);
			upper[i] = (char)toupper((unsigned char)subjects[k][i]);
		}
		contact = json_pack("{s:s, s:s}", "channel", "email", "subject", subjects[k]);
		d = rules_run(r, "contact", contact, NULL, util_time_ms());
		json_decref(contact);
		if (json_array_size(d) != 2 || strcmp(field(d, 0, "type"), "tag") != 0) {
			char *s = json_dumps(d, 0);

			fail_msg("contact %zu: %s", k, s);
		}
		assert_string_equal(json_string_value(json_array_get(
					json_object_get(json_array_get(d, 0), "tags"), 0)),
		    lower);
		assert_string_equal(json_string_value(json_array_get(
					json_object_get(json_array_get(d, 0), "tags"), 1)),
		    upper);
		assert_string_equal(json_string_value(json_array_get(
					json_object_get(json_array_get(d, 1), "tags"), 0)),
		    lower);
		json_decref(d);
	}
	rules_free(r);
	for (const char *const *f = (const char *const[]){ "10-a.lua", "20-b.lua", NULL }; *f != NULL;
	     f++) {
		char path[160];

		snprintf(path, sizeof(path), "%s/%s", dir, *f);
		assert_int_equal(unlink(path), 0);
	}
	/* Lowering the same megabyte again and again still runs out of work budget. */
	expect_result("loket.on('contact', function(c) local s = string.rep('A', 1000000)\n"
		      "  for i = 1, 300 do s:lower() end end)\n",
	    "budget");
}

static void
test_sandbox(void **state)
{
	struct rules *r;
	json_t *d;

	write_rule("10-probe.lua",
	    "loket.on('contact', function(c)\n"
	    "  assert(io == nil and debug == nil and package == nil and dofile == nil)\n"
	    "  assert(loadfile == nil and collectgarbage == nil and rawset == nil)\n"
	    "  assert(os.execute == nil and os.exit == nil and os.remove == nil)\n"
	    "  assert(string.dump == nil)\n"
	    "  assert(load(string.char(27) .. 'Lua') == nil)\n"
	    "  assert(load('return rawset')() == nil)\n"
	    "  assert(not pcall(function() string.upper = nil end))\n"
	    "  assert(getmetatable('') == 'read-only')\n"
	    "  assert(not pcall(setmetatable, loket, nil))\n"
	    "  assert(not pcall(function() loket.on = nil end))\n"
	    "  assert(not pcall(require, '../../etc/passwd'))\n"
	    "  assert(not pcall(require, 'io'))\n"
	    "  assert(type(os.time()) == 'number' and type(os.date('%Y')) == 'string')\n"
	    "  leaked = 'from probe'\n"
	    "  c:tag('sandbox-ok')\n"
	    "end)\n");
	write_rule("20-other.lua", "loket.on('contact', function(c)\n"
				   "  if leaked == nil and string.upper('a') == 'A' then c:tag('isolated') end\n"
				   "end)\n");
	r = load(NULL);
	d = run(r);
	if (json_array_size(d) != 2 || strcmp(field(d, 0, "type"), "tag") != 0) {
		char *s = json_dumps(d, 0);
		fail_msg("sandbox probe: %s", s);
	}
	assert_string_equal(field(d, 1, "type"), "tag");
	json_decref(d);
	rules_free(r);
}

/* pairs() on a read-only library hands out keys and values, never the table behind it. */
static void
test_pairs_cannot_reach_string_table(void **state)
{
	struct rules *r;
	json_t *d;

	write_rule("10-attack.lua",
	    "local function pwn() return 'pwned' end\n"
	    "loket.on('contact', function(c)\n"
	    "  local f, s, k = pairs(string)\n"
	    "  pcall(function() s.lower = pwn end)\n"
	    "  pcall(function() local _, t = pairs(table); t.concat = pwn end)\n"
	    "  pcall(function() select(2, f(s, nil)).x = 1 end)\n"
	    "  pcall(function() f({}, nil).x = 1 end)\n"
	    "  assert(rawequal(s, string) and k == nil, 'pairs handed out another table')\n"
	    "  assert(next(string) == nil and getmetatable(string) == 'read-only')\n"
	    "  local n = 0\n"
	    "  for name, fn in pairs(string) do\n"
	    "    assert(type(name) == 'string' and type(fn) == 'function')\n"
	    "    n = n + 1\n"
	    "  end\n"
	    "  if n > 10 and string.lower('A') == 'a' then c:tag('pairs-walks') end\n"
	    "end)\n");
	write_rule("20-later.lua", "loket.on('contact', function(c)\n"
				   "  if string.lower('A') == 'a' and ('A'):lower() == 'a' and\n"
				   "     table.concat({'a', 'b'}) == 'ab' then c:tag('intact') end\n"
				   "end)\n");
	r = load(NULL);
	/* A later contact too: a change would outlive the run that made it. */
	for (int i = 0; i < 2; i++) {
		d = run(r);
		const char *t0 = json_string_value(
		    json_array_get(json_object_get(json_array_get(d, 0), "tags"), 0));
		const char *t1 = json_string_value(
		    json_array_get(json_object_get(json_array_get(d, 1), "tags"), 0));

		if (json_array_size(d) != 2 || t0 == NULL || strcmp(t0, "pairs-walks") != 0 ||
		    t1 == NULL || strcmp(t1, "intact") != 0) {
			char *s = json_dumps(d, 0);
			fail_msg("run %d: %s", i, s);
		}
		json_decref(d);
	}
	rules_free(r);
}

static void
test_load_errors(void **state)
{
	write_rule("10-syntax.lua", "loket.on('contact', function(c)\n  if then end)\n");
	load("10-syntax.lua:2:");
	write_rule("10-syntax.lua", "loket.on('nonsense', function(c) end)\n");
	load("unknown event 'nonsense'");
	/* Options: a misspelt one is named, a priority is a whole number. */
	write_rule("10-syntax.lua", "loket.on('contact', function(c) end, { prio = 1 })\n");
	load("10-syntax.lua:1: loket.on: unknown option 'prio'; the one option is priority");
	write_rule("10-syntax.lua", "loket.on('contact', function(c) end, { priority = 'high' })\n");
	load("loket.on: priority must be a whole number");
	write_rule("10-syntax.lua", "loket.on('contact', function(c) end, { priority = 0.5 })\n");
	load("loket.on: priority must be a whole number");
	write_rule("10-syntax.lua", "while true do end\n");
	load("budget");
	write_rule("10-syntax.lua", "\x1bLua binary chunk\n");
	load("10-syntax.lua");
}

/* The decisions of a run on a contact of channel, one tag per handler that ran. */
static json_t *
run_channel(struct rules *r, const char *channel)
{
	json_t *contact = json_pack("{s:s, s:s}", "channel", channel, "status", "open");
	json_t *out = rules_run(r, "contact", contact, NULL, util_time_ms());

	json_decref(contact);
	return out;
}

/*
 * loket.on(event, {channel = ...}, fn [, options]): the handler is called
 * for contacts of those channels only, in its place by priority; the old
 * form without a filter still sees every contact, and a filter that names
 * something else is refused at load, naming the file and line.
 */
static void
test_channel_filter(void **state)
{
	struct rules_host host = { .department_known = known_cb, .count = count_cb };
	struct rules *r = NULL;
	const char *err = NULL;
	json_t *d;

	memset(count_calls, 0, sizeof(count_calls));
	write_rule("10-filter.lua",
	    "loket.on('contact', {channel = 'email'}, function(c) c:tag('email-only') end)\n"
	    "loket.on('contact', {channel = {'phone', 'web'}}, function(c)\n"
	    "  c:tag('phone-or-web-' .. c.channel) end)\n"
	    "loket.on('contact', function(c) c:tag('every') end)\n"
	    "loket.on('contact', {channel = 'web'}, function(c) c:tag('web-first') end,\n"
	    "  {priority = 10})\n");
	if (rules_load(dir, &limits, &host, &r, &err) < 0)
		fail_msg("rules did not load: %s", err);
	assert_int_equal(rules_handler_count(r, "contact"), 4);

	d = run_channel(r, "email");
	assert_int_equal(json_array_size(d), 2);
	assert_string_equal(json_string_value(json_array_get(json_object_get(json_array_get(d, 0),
						  "tags"), 0)), "email-only");
	assert_string_equal(field(d, 1, "rule"), "10-filter.lua:4");
	json_decref(d);

	d = run_channel(r, "web");
	assert_int_equal(json_array_size(d), 3);
	assert_string_equal(field(d, 0, "rule"), "10-filter.lua:5");
	assert_string_equal(json_string_value(json_array_get(json_object_get(json_array_get(d, 1),
						  "tags"), 0)), "phone-or-web-web");
	json_decref(d);

	/* No filter names counter: only the handler without one runs. */
	d = run_channel(r, "counter");
	assert_int_equal(json_array_size(d), 1);
	assert_string_equal(field(d, 0, "rule"), "10-filter.lua:4");
	json_decref(d);
	/* Handlers passed by were not called, so they were not counted: 2 + 3 + 1 calls. */
	assert_int_equal(count_calls[RULES_OK], 6);
	rules_free(r);

	write_rule("10-filter.lua", "loket.on('contact', {chanel = 'email'}, function(c) end)\n");
	load("10-filter.lua:1: loket.on: unknown filter 'chanel'");
	write_rule("10-filter.lua", "loket.on('contact', {channel = 'fax'}, function(c) end)\n");
	load("10-filter.lua:1: loket.on: filter channel 'fax' is not a channel");
	write_rule("10-filter.lua", "loket.on('contact', {channel = 3}, function(c) end)\n");
	load("loket.on: filter channel: expected a channel name or a list of them");
	write_rule("10-filter.lua",
	    "loket.on('contact', function(c) end, {channel = 'email'})\n");
	load("loket.on: unknown option 'channel'");
}

/*
 * A plain s:find(p, init, true) is done by the guard itself: it must answer
 * as the library does, which a pattern without special characters shows
 * (the library searches that plainly too): every init from before the start
 * to past the end, empty and missing needles, and init given as text.
 */
static void
test_plain_find_as_the_library(void **state)
{
	struct rules *r;
	json_t *d;

	write_rule("10-find.lua",
	    "loket.on('contact', function(c)\n"
	    "  local n = 0\n"
	    "  for _, s in ipairs({'hello world', '', 'aaa', 'abcabc'}) do\n"
	    "    for _, p in ipairs({'o', '', 'world', 'xyz', 'a', 'aa', 'abc', 'c', 'hello world!'}) do\n"
	    "      for init = -15, 15 do\n"
	    "        local a1, a2 = s:find(p, init, true)\n"
	    "        local b1, b2 = s:find(p, init)\n"
	    "        if a1 ~= b1 or a2 ~= b2 then\n"
	    "          error(('%q:find(%q, %d): %s %s, not %s %s'):format(s, p, init,\n"
	    "            tostring(a1), tostring(a2), tostring(b1), tostring(b2)))\n"
	    "        end\n"
	    "        n = n + 1\n"
	    "      end\n"
	    "    end\n"
	    "  end\n"
	    "  local a, b = ('hello world'):find('o', '6', true)\n"
	    "  local e, f = ('hello world'):find('o', nil, true)\n"
	    "  if a ~= 8 or b ~= 8 or e ~= 5 or f ~= 5 then error('init as text or nil') end\n"
	    "  if pcall(string.find, 'x', nil, 1, true) then error('a nil needle passed') end\n"
	    "  c:tag('checked-' .. n)\n"
	    "end)\n");
	r = load(NULL);
	d = run(r);
	assert_int_equal(json_array_size(d), 1);
	if (strcmp(field(d, 0, "type"), "tag") != 0)
		fail_msg("%s", field(d, 0, "message"));
	assert_string_equal(json_string_value(json_array_get(json_object_get(json_array_get(d, 0),
						  "tags"), 0)), "checked-1116");
	json_decref(d);
	rules_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty_folder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decisions_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_named_results, setup, teardown),
		cmocka_unit_test_setup_teardown(test_contact_object, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kept_contact_acts_not, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rule_strings_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_per_handler_with_one_hook, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_lower_kept_within_a_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sandbox, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pairs_cannot_reach_string_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_channel_filter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plain_find_as_the_library, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
