/* test_util.c: the value parsers behind every config key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_bool_int),
		cmocka_unit_test(test_hostport),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
