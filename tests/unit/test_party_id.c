/* test_party_id.c: table-driven cmocka tests for party identifier normalisation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "party_id.h"

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

struct id_case {
	const char *in;
	const char *out;	/* NULL: input must be rejected */
};

static const struct id_case phone_cases[] = {
	/* examples from the specification */
	{ "0470 12 34 56", "+32470123456" },
	{ "09 123 45 67", "+3291234567" },
	{ "+31 6 12345678", "+31612345678" },
	{ "0031 20 123 4567", "+31201234567" },
	{ "+32 (0)470 12 34 56", "+32470123456" },
	{ "+32 470/12.34.56", "+32470123456" },
	{ "0032 9 123 45 67", "+3291234567" },

	/* more valid forms */
	{ "+32470123456", "+32470123456" },
	{ "0470-12-34-56", "+32470123456" },
	{ "0470.12.34.56", "+32470123456" },
	{ "  +32 470 12 34 56  ", "+32470123456" },
	{ "\t0470123456", "+32470123456" },
	{ "(09) 123 45 67", "+3291234567" },
	{ "02/511.22.33", "+3225112233" },
	{ "04 123 45 67", "+3241234567" },	/* Liège landline */
	{ "0455 12 34 56", "+32455123456" },
	{ "0800 12 345", "+3280012345" },
	{ "(0)470 12 34 56", "+32470123456" },	/* national: just a 0 */
	{ "0032 (0)9 123 45 67", "+3291234567" },
	{ "+31 (0)20 123 4567", "+31201234567" },
	{ "0031 (0)6 1234 5678", "+31612345678" },
	{ "+44 20 7946 0958", "+442079460958" },
	{ "+49 (0)30 1234567", "+49301234567" },
	{ "+1 (202) 555-0143", "+12025550143" },
	{ "+12345678", "+12345678" },		/* 8 digits: shortest */
	{ "+123456789012345", "+123456789012345" },	/* 15: longest */
	{ "00123456789012345", "+123456789012345" },

	/* rejected */
	{ "", NULL },
	{ "   ", NULL },
	{ "+", NULL },
	{ "00", NULL },
	{ "0", NULL },
	{ "+ ", NULL },
	{ "+3", NULL },
	{ "0032", NULL },
	{ "+1234567", NULL },			/* 7 digits */
	{ "+1234567890123456", NULL },		/* 16 digits */
	{ "001234567890123456", NULL },
	{ "0470 12 34 567", NULL },		/* mobile, 11 digits */
	{ "0470 12 34 5", NULL },		/* mobile, 9 digits */
	{ "09 123 45 6", NULL },
	{ "09 123 45 678", NULL },		/* landline, 10 digits */
	{ "04 123 45 678", NULL },		/* Liège, 10 digits */
	{ "+32 0470 12 34 56", NULL },
	{ "+32 12345678901", NULL },
	{ "+31 6 1234567", NULL },
	{ "+31 6 123456789", NULL },
	{ "+31 06 12345678", NULL },
	{ "+31 (0)6 1234567", NULL },
	{ "470 12 34 56", NULL },
	{ "32470123456", NULL },
	{ "+0470123456", NULL },
	{ "000032470123456", NULL },
	{ "+(0)32 470 12 34 56", NULL },
	{ "0470 12 34 5X", NULL },
	{ "O470 12 34 56", NULL },		/* letter O */
	{ "tel:0470123456", NULL },
	{ "0470 12 34 56 ext 2", NULL },
	{ "+32+470123456", NULL },
	{ "0470+123456", NULL },
	{ "++32470123456", NULL },
	{ "0470_12_34_56", NULL },
	{ "0470\n123456", NULL },
	{ "\xef\xbc\x90" "470123456", NULL },	/* fullwidth zero */
};

static const struct id_case rrn_cases[] = {
	{ "85073003328", "85073003328" },
	{ "85.07.30-033.28", "85073003328" },
	{ "85 07 30 033 28", "85073003328" },
	{ "17073003384", "17073003384" },	/* born 2017 */
	{ "17.07.30-033.84", "17073003384" },
	{ "17073003355", "17073003355" },	/* born 1917 */
	{ "00010100105", "00010100105" },	/* born 2000-01-01 */
	{ "85003003376", "85003003376" },	/* unknown month */
	{ "85000003306", "85000003306" },	/* unknown month and day */
	{ "85273003371", "85273003371" },	/* bis number */
	{ "97000000097", "97000000097" },	/* checksum 97 */
	{ "12345678901", NULL },
	{ "85073003329", NULL },
	{ "85073003300", NULL },
	{ "8507300332", NULL },
	{ "850730033280", NULL },
	{ "8507300332A", NULL },
	{ "85/07/30-033.28", NULL },
	{ "", NULL },
	{ " . - ", NULL },
};

static const struct id_case bsn_cases[] = {
	{ "111222333", "111222333" },
	{ "123456782", "123456782" },
	{ "12345672", "012345672" },
	{ "1234.56.782", "123456782" },
	{ "123 456 782", "123456782" },
	{ "999999990", "999999990" },
	{ "111252333", NULL },
	{ "000000000", NULL },
	{ "00000000", NULL },
	{ "123456783", NULL },
	{ "1234567", NULL },
	{ "1234567820", NULL },
	{ "12345678a", NULL },
	{ "", NULL },
};

static const struct id_case email_cases[] = {
	{ "Jan.Peeters@Gent.BE", "jan.peeters@gent.be" },
	{ "a@b.c", "a@b.c" },
	{ "  user@example.com\r\n", "user@example.com" },
	{ "\tX@Y.NL ", "x@y.nl" },
	{ "First+Tag@Sub.Example.org", "first+tag@sub.example.org" },
	/* non-ASCII bytes pass through; only ASCII is lower-cased */
	{ "\xc3\x84" "BC@example.de", "\xc3\x84" "bc@example.de" },
	{ "", NULL },
	{ "   ", NULL },
	{ "userexample.com", NULL },
	{ "@example.com", NULL },
	{ "user@", NULL },
	{ "user@localhost", NULL },
	{ "user@.example.com", NULL },
	{ "user@example.com.", NULL },
	{ "user@example..com", NULL },
	{ "a@b@c.com", NULL },
	{ "user name@example.com", NULL },
	{ "user@exa mple.com", NULL },
	{ "user@example.com\r\nBcc: x@y.z", NULL },
	{ "user\n@example.com", NULL },
	{ "user\x01@example.com", NULL },
	{ "user@example.com\x7f", NULL },
};

static void
check_result(const struct id_case *c, int ret, const char *out,
    const char *error, const char *error_prefix)
{
	if (c->out != NULL) {
		if (ret != 0)
			fail_msg("\"%s\" rejected: %s", c->in,
				 error != NULL ? error : "(no error)");
		assert_string_equal(out, c->out);
	} else {
		if (ret != -1)
			fail_msg("\"%s\" accepted as \"%s\"", c->in, out);
		assert_non_null(error);
		assert_true(strncmp(error, error_prefix, strlen(error_prefix)) == 0);
		assert_true(strlen(error) > strlen(error_prefix));
		assert_string_equal(out, "");
	}
}

static void
test_phone_case(void **state)
{
	const struct id_case *c = *state;
	char out[PARTY_E164_MAX];
	const char *error = NULL;
	int ret;

	memset(out, 'x', sizeof(out));
	ret = party_id_phone(c->in, out, &error);
	check_result(c, ret, out, error, "phone: ");
}

static void
test_rrn_case(void **state)
{
	const struct id_case *c = *state;
	char out[12];
	const char *error = NULL;
	int ret;

	memset(out, 'x', sizeof(out));
	ret = party_id_rrn(c->in, out, &error);
	check_result(c, ret, out, error, "rrn: ");
}

static void
test_bsn_case(void **state)
{
	const struct id_case *c = *state;
	char out[10];
	const char *error = NULL;
	int ret;

	memset(out, 'x', sizeof(out));
	ret = party_id_bsn(c->in, out, &error);
	check_result(c, ret, out, error, "bsn: ");
}

static void
test_email_case(void **state)
{
	const struct id_case *c = *state;
	char out[255];
	const char *error = NULL;
	int ret;

	memset(out, 'x', sizeof(out));
	ret = party_id_email(c->in, out, sizeof(out), &error);
	check_result(c, ret, out, error, "email: ");
}

/* Heap buffers so that ASan flags any read past the terminator. */
static char *
repeat(const char *head, char fill, size_t count, const char *tail)
{
	size_t head_len = strlen(head), tail_len = strlen(tail);
	char *s = malloc(head_len + count + tail_len + 1);

	assert_non_null(s);
	memcpy(s, head, head_len);
	memset(s + head_len, fill, count);
	memcpy(s + head_len + count, tail, tail_len + 1);
	return s;
}

static void
test_phone_long_input(void **state)
{
	char out[PARTY_E164_MAX];
	const char *error = NULL;
	char *in;

	(void)state;
	in = repeat("", '1', 100000, "");
	assert_int_equal(party_id_phone(in, out, &error), -1);
	assert_string_equal(error, "phone: too many digits");
	free(in);

	in = repeat("+", '9', 100000, "");
	assert_int_equal(party_id_phone(in, out, &error), -1);
	assert_string_equal(out, "");
	free(in);

	/* Length limits count digits, not characters. */
	in = repeat("0470", ' ', 100000, "123456");
	assert_int_equal(party_id_phone(in, out, &error), 0);
	assert_string_equal(out, "+32470123456");
	free(in);

	in = repeat("", ' ', 100000, "");
	assert_int_equal(party_id_phone(in, out, &error), -1);
	assert_string_equal(error, "phone: no number given");
	free(in);
}

static void
test_id_long_input(void **state)
{
	char rrn[12], bsn[10];
	const char *error = NULL;
	char *in;

	(void)state;
	in = repeat("85073003328", '0', 100000, "");
	assert_int_equal(party_id_rrn(in, rrn, &error), -1);
	assert_int_equal(party_id_bsn(in, bsn, &error), -1);
	free(in);

	in = repeat("85073003328", ' ', 100000, "");
	assert_int_equal(party_id_rrn(in, rrn, &error), 0);
	assert_string_equal(rrn, "85073003328");
	free(in);
}

static void
test_email_length(void **state)
{
	char out[300];
	const char *error = NULL;
	char *in;

	(void)state;
	/* 243 + strlen("@example.be") = 254 */
	in = repeat("", 'A', 243, "@example.be");
	assert_int_equal(party_id_email(in, out, sizeof(out), &error), 0);
	assert_int_equal(strlen(out), 254);
	assert_true(out[0] == 'a' && out[242] == 'a');
	free(in);

	in = repeat("", 'a', 244, "@example.be");
	assert_int_equal(party_id_email(in, out, sizeof(out), &error), -1);
	assert_string_equal(error, "email: longer than 254 characters");
	free(in);

	/* Only what is left after trimming counts. */
	in = repeat("", ' ', 100000, "a@example.be  ");
	assert_int_equal(party_id_email(in, out, sizeof(out), &error), 0);
	assert_string_equal(out, "a@example.be");
	free(in);
}

static void
test_email_outlen(void **state)
{
	const char *in = " Jan@Gent.be ";
	const char *error = NULL;
	size_t need = strlen("jan@gent.be") + 1;
	char *out;

	(void)state;
	out = malloc(need);
	assert_non_null(out);
	assert_int_equal(party_id_email(in, out, need, &error), 0);
	assert_string_equal(out, "jan@gent.be");

	error = NULL;
	assert_int_equal(party_id_email(in, out, need - 1, &error), -1);
	assert_string_equal(error, "email: output buffer too small");
	assert_string_equal(out, "");

	/* outlen 0 must not touch out at all */
	out[0] = 'x';
	assert_int_equal(party_id_email(in, out, 0, &error), -1);
	assert_true(out[0] == 'x');
	free(out);
}

#define N_CASES (N_ELEMENTS(phone_cases) + N_ELEMENTS(rrn_cases) + \
		 N_ELEMENTS(bsn_cases) + N_ELEMENTS(email_cases))
#define N_EXTRA 4
#define NAME_MAX_LEN 80

static struct CMUnitTest tests[N_CASES + N_EXTRA];
static char test_names[N_CASES][NAME_MAX_LEN];

/* Test names end up on the terminal, so control bytes are escaped. */
static void
case_name(char *dest, const char *kind, const char *in)
{
	size_t pos = (size_t)snprintf(dest, NAME_MAX_LEN, "%s \"", kind);
	const size_t room = NAME_MAX_LEN - 8;	/* escape + "..." + quote + NUL */

	for (; *in != '\0' && pos < room; in++) {
		unsigned char c = (unsigned char)*in;

		if (c < 0x20 || c >= 0x7f)
			pos += (size_t)snprintf(dest + pos, NAME_MAX_LEN - pos, "\\x%02x", c);
		else
			dest[pos++] = (char)c;
	}
	if (*in != '\0')
		pos += (size_t)snprintf(dest + pos, NAME_MAX_LEN - pos, "...");
	snprintf(dest + pos, NAME_MAX_LEN - pos, "\"");
}

static size_t
add_cases(size_t n, const char *kind, const struct id_case *cases,
    size_t count, CMUnitTestFunction func)
{
	for (size_t i = 0; i < count; i++, n++) {
		case_name(test_names[n], kind, cases[i].in);
		tests[n].name = test_names[n];
		tests[n].test_func = func;
		/* cmocka's state is a plain void *; the cases are never written. */
		tests[n].initial_state = (void *)(uintptr_t)&cases[i];
	}
	return n;
}

int
main(void)
{
	const struct CMUnitTest extra[N_EXTRA] = {
		cmocka_unit_test(test_phone_long_input),
		cmocka_unit_test(test_id_long_input),
		cmocka_unit_test(test_email_length),
		cmocka_unit_test(test_email_outlen),
	};
	size_t n = 0;

	n = add_cases(n, "phone", phone_cases, N_ELEMENTS(phone_cases), test_phone_case);
	n = add_cases(n, "rrn", rrn_cases, N_ELEMENTS(rrn_cases), test_rrn_case);
	n = add_cases(n, "bsn", bsn_cases, N_ELEMENTS(bsn_cases), test_bsn_case);
	n = add_cases(n, "email", email_cases, N_ELEMENTS(email_cases), test_email_case);
	memcpy(tests + n, extra, sizeof(extra));

	return cmocka_run_group_tests_name("party_id", tests, NULL, NULL);
}
