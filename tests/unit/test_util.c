/* test_util.c: the value parsers behind every config key and query parameter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "util.h"

static void
test_duration(void **state)
{
	uint64_t ms;

	assert_int_equal(util_parse_duration_ms("30s", &ms), 0);
	assert_int_equal(ms, 30000);
	assert_int_equal(util_parse_duration_ms("250ms", &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(util_parse_duration_ms("5m", &ms), 0);
	assert_int_equal(ms, 300000);
	assert_int_equal(util_parse_duration_ms("2h", &ms), 0);
	assert_int_equal(ms, 7200000);
	assert_int_equal(util_parse_duration_ms("1d", &ms), 0);
	assert_int_equal(ms, 86400000);
	assert_int_equal(util_parse_duration_ms("7", &ms), 0);
	assert_int_equal(ms, 7000);
	assert_int_equal(util_parse_duration_ms("", &ms), -1);
	assert_int_equal(util_parse_duration_ms("s", &ms), -1);
	assert_int_equal(util_parse_duration_ms("-5s", &ms), -1);
	assert_int_equal(util_parse_duration_ms("5 weeks", &ms), -1);
	assert_int_equal(util_parse_duration_ms("99999999999999999999s", &ms), -1);
}

static void
test_size(void **state)
{
	uint64_t b;

	assert_int_equal(util_parse_size("512", &b), 0);
	assert_int_equal(b, 512);
	assert_int_equal(util_parse_size("64k", &b), 0);
	assert_int_equal(b, 65536);
	assert_int_equal(util_parse_size("10M", &b), 0);
	assert_int_equal(b, 10485760);
	assert_int_equal(util_parse_size("1GiB", &b), 0);
	assert_int_equal(b, 1073741824);
	assert_int_equal(util_parse_size("1x", &b), -1);
	assert_int_equal(util_parse_size("k", &b), -1);
}

static void
test_bool_int(void **state)
{
	int b;
	int64_t v;

	assert_int_equal(util_parse_bool("on", &b), 0);
	assert_int_equal(b, 1);
	assert_int_equal(util_parse_bool("FALSE", &b), 0);
	assert_int_equal(b, 0);
	assert_int_equal(util_parse_bool("ja", &b), -1);
	assert_int_equal(util_parse_int("-42", &v), 0);
	assert_int_equal(v, -42);
	assert_int_equal(util_parse_int("4 2", &v), -1);
	assert_int_equal(util_parse_int("", &v), -1);
}

static void
test_hostport(void **state)
{
	char *host = NULL;
	uint16_t port;

	assert_int_equal(util_parse_hostport("127.0.0.1:8080", &host, &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 8080);
	free(host);
	assert_int_equal(util_parse_hostport("[::1]:443", &host, &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 443);
	free(host);
	assert_int_equal(util_parse_hostport("localhost", &host, &port), -1);
	assert_int_equal(util_parse_hostport(":80", &host, &port), -1);
	assert_int_equal(util_parse_hostport("[::1]80", &host, &port), -1);
	assert_int_equal(util_parse_hostport("h:70000", &host, &port), -1);
}

/*
 * s copied so that its NUL is the last byte of a page and the next page is unmapped: a
 * parser reading one byte past the end faults here, with or without ASan.
 */
static char *
at_page_end(const char *s, void **map_r)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), len = strlen(s) + 1;
	char *map = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(map != MAP_FAILED);
	assert_int_equal(mprotect(map + page, page, PROT_NONE), 0);
	*map_r = map;
	return memcpy(map + page - len, s, len);
}

static int
time_parse_at_page_end(const char *s, int64_t *ms_r)
{
	void *map;
	char *copy = at_page_end(s, &map);
	int rc = util_time_parse(copy, ms_r);

	munmap(map, 2 * (size_t)sysconf(_SC_PAGESIZE));
	return rc;
}

static void
test_time_parse_rejects_truncated_offset(void **state)
{
	static const char *const bad[] = { "2026-01-01T00:00:00+1:2", "2026-01-01T00:00:00+01:2",
		"2026-01-01T00:00:00+1", "2026-01-01T00:00:00+", "2026-01-01T00:00:00-01:",
		"2026-01-01T00:00:00+01", "2026-01-01T00:00:00+0100", "2026-01-01T00:00:00+ 1:02",
		"2026-01-01T00:00:00+01:02:", "2026-01-01T00:00:00.", "2026-01-01T00:00:00.Z",
		"2026-01-01T00:00:0", "2026-01-01T00:00", "2026-01-01T", "2026-01-0", "2026-1-01",
		"2026", "", "2026-01-01T0:00:00Z", "2026-01-01T00:00:00+24:00",
		"2026-01-01T00:00:00+01:60", "2026-01-01X00:00:00Z" };
	int64_t ms;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = 12345;
		if (time_parse_at_page_end(bad[i], &ms) != -1)
			fail_msg("accepted '%s'", bad[i]);
		assert_int_equal(ms, 12345);
	}
}

static void
test_time_parse_reads_rfc3339(void **state)
{
	int64_t ms;

	assert_int_equal(time_parse_at_page_end("2026-01-01T00:00:00+01:00", &ms), 0);
	assert_int_equal(ms, 1767222000000LL);
	assert_int_equal(time_parse_at_page_end("2026-01-01T00:00:00-02:30", &ms), 0);
	assert_int_equal(ms, 1767225600000LL + 9000000LL);
	assert_int_equal(time_parse_at_page_end("2026-11-28T10:37:44.123Z", &ms), 0);
	assert_int_equal(ms, 1795862264123LL);
	assert_int_equal(time_parse_at_page_end("2026-11-28t10:37:44.1z", &ms), 0);
	assert_int_equal(ms, 1795862264100LL);
	assert_int_equal(time_parse_at_page_end("2026-11-28 10:37:44.123456Z", &ms), 0);
	assert_int_equal(ms, 1795862264123LL);
	assert_int_equal(time_parse_at_page_end("2026-11-01", &ms), 0);
	assert_int_equal(ms, 1793491200000LL);
	assert_int_equal(time_parse_at_page_end("1969-12-31T23:59:59.999Z", &ms), 0);
	assert_int_equal(ms, -1);
	assert_int_equal(time_parse_at_page_end("2028-02-29", &ms), 0);
	/* A leap second counts as the first second of the next minute. */
	assert_int_equal(time_parse_at_page_end("2016-12-31T23:59:60Z", &ms), 0);
	assert_int_equal(ms, 1483228800000LL);
}

static void
test_time_parse_rejects_days_a_month_has_not(void **state)
{
	int64_t ms;

	assert_int_equal(util_time_parse("2026-02-29", &ms), -1);
	assert_int_equal(util_time_parse("2026-04-31T10:00:00Z", &ms), -1);
	assert_int_equal(util_time_parse("2026-13-01", &ms), -1);
	assert_int_equal(util_time_parse("2026-00-10", &ms), -1);
	assert_int_equal(util_time_parse("2026-01-00", &ms), -1);
	assert_int_equal(util_time_parse("2100-02-29", &ms), -1);
	assert_int_equal(util_time_parse("2026-01-01T24:00:00Z", &ms), -1);
	assert_int_equal(util_time_parse("2026-01-01T23:60:00Z", &ms), -1);
	assert_int_equal(util_time_parse("2026-01-01T23:59:61Z", &ms), -1);
	assert_int_equal(util_time_parse_local("2026-02-30 10:00", &ms), -1);
	assert_int_equal(util_time_parse_local("2026-02-28 10:00", &ms), 0);
}

static void
test_time_format_before_1970_and_out_of_range(void **state)
{
	char buf[64];

	util_time_format(-1, buf, sizeof(buf));
	assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
	util_time_format(1795862264123LL, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-28T10:37:44.123Z");
	util_time_format(1795862264045LL, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-28T10:37:44.045Z");
	util_time_format(1795862264000LL, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-28T10:37:44.000Z");
	/* What a rule may store as a due time: the extremes print, without overflow. */
	util_time_format(INT64_MAX, buf, sizeof(buf));
	assert_string_equal(buf + strlen(buf) - 5, ".807Z");
	util_time_format(INT64_MIN, buf, sizeof(buf));
	assert_string_equal(buf + strlen(buf) - 5, ".192Z");
}

static void
test_utf8_prefix_cuts_on_character_boundary(void **state)
{
	/* "é" is 2 bytes, "€" 3, "😀" 4. */
	assert_int_equal(util_utf8_prefix("abc", 40), 3);
	assert_int_equal(util_utf8_prefix("ab\xc3\xa9", 3), 2);
	assert_int_equal(util_utf8_prefix("ab\xc3\xa9", 4), 4);
	assert_int_equal(util_utf8_prefix("\xe2\x82\xac\xe2\x82\xac", 5), 3);
	assert_int_equal(util_utf8_prefix("\xf0\x9f\x98\x80", 3), 0);
	assert_int_equal(util_utf8_prefix("\xf0\x9f\x98\x80x", 4), 4);
	/* A stray byte is one unit of its own: cutting after it splits nothing. */
	assert_int_equal(util_utf8_prefix("a\xff" "b", 2), 2);
}

static void
test_utf8_clean_drops_cut_character_and_marks_bad_bytes(void **state)
{
	char *s;

	s = util_utf8_clean("caf\xc3");
	assert_string_equal(s, "caf");
	free(s);
	s = util_utf8_clean("\xe2\x82");
	assert_string_equal(s, "");
	free(s);
	s = util_utf8_clean("a\xff" "b\xc3\xa9");
	assert_string_equal(s, "a\xef\xbf\xbd" "b\xc3\xa9");
	free(s);
	/* A character cut in the middle of the text, as "%.40s" leaves it. */
	s = util_utf8_clean("'x\xc3' is not");
	assert_string_equal(s, "'x\xef\xbf\xbd' is not");
	free(s);
	/* Overlong forms and surrogates are not UTF-8 either. */
	s = util_utf8_clean("\xc0\xaf\xed\xa0\x80");
	assert_string_equal(s, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	free(s);
}

/* An error passed up through callers that each prefix it stays whole; a long one is cut, not overrun. */
static void
test_error_survives_prefixing_by_its_callers(void **state)
{
	const char *e = util_error("bad value '%s'", "x");
	char longer[UTIL_ERROR_MAX * 2];
	int i;

	(void)state;
	for (i = 0; i < UTIL_ERROR_SLOTS - 1; i++)
		e = util_error("level %d: %s", i, e);
	assert_string_equal(e, "level 6: level 5: level 4: level 3: level 2: level 1: level 0: "
			       "bad value 'x'");
	memset(longer, 'a', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	e = util_error("%s", longer);
	assert_int_equal(strlen(e), UTIL_ERROR_MAX - 1);
}

/* The test hold is off unless asked for, and a value that is no number is refused, not 0. */
static void
test_hold_answer_only_when_set_and_refused_when_no_number(void **state)
{
	(void)state;
	unsetenv("LOKET_TEST_HOLD_ANSWER_MS");
	assert_int_equal(util_test_hold_answer_ms(), 0);
	setenv("LOKET_TEST_HOLD_ANSWER_MS", "", 1);
	assert_int_equal(util_test_hold_answer_ms(), 0);
	setenv("LOKET_TEST_HOLD_ANSWER_MS", "2500", 1);
	assert_int_equal(util_test_hold_answer_ms(), 2500);
	setenv("LOKET_TEST_HOLD_ANSWER_MS", "600000", 1);
	assert_int_equal(util_test_hold_answer_ms(), 600000);
	for (const char *const *v = (const char *const[]){ "2s", "-1", "600001", "abc",
		 "99999999999999999999", NULL };
	     *v != NULL; v++) {
		setenv("LOKET_TEST_HOLD_ANSWER_MS", *v, 1);
		assert_int_equal(util_test_hold_answer_ms(), -1);
	}
	unsetenv("LOKET_TEST_HOLD_ANSWER_MS");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_bool_int),
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_time_parse_rejects_truncated_offset),
		cmocka_unit_test(test_time_parse_reads_rfc3339),
		cmocka_unit_test(test_time_parse_rejects_days_a_month_has_not),
		cmocka_unit_test(test_time_format_before_1970_and_out_of_range),
		cmocka_unit_test(test_utf8_prefix_cuts_on_character_boundary),
		cmocka_unit_test(test_utf8_clean_drops_cut_character_and_marks_bad_bytes),
		cmocka_unit_test(test_error_survives_prefixing_by_its_callers),
		cmocka_unit_test(test_hold_answer_only_when_set_and_refused_when_no_number),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
