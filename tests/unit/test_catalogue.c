/* test_catalogue.c: the catalogue reader: the shipped file, quoting, and file:line errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "catalogue.h"

/* Most tests write the header of before the theme column: it must keep reading. */
#define HEADER "code,name,line,department,organisation,service_time,appointment,digital,keywords\n"
#define HEADER_THEME CATALOGUE_HEADER "\n"

/* The departments and organisations etc/catalogue.csv needs in loket.conf. */
static const char *const known_departments[] = {
	"burgerzaken",
	"omgeving",
	"openbaar_domein",
	"mobiliteit",
	"vrije_tijd",
	"wonen",
	"kinderopvang",
	"sociale_dienst",
	"thuiszorg",
};
static const char *const known_organisations[] = { "gemeente", "ocmw" };

static int
known_cb(const char *kind, const char *name, void *arg)
{
	int *calls = arg;

	if (calls != NULL)
		(*calls)++;
	if (strcmp(kind, "department") == 0) {
		for (size_t i = 0; i < sizeof(known_departments) / sizeof(known_departments[0]);
		     i++)
			if (strcmp(name, known_departments[i]) == 0)
				return 1;
		return 0;
	}
	assert_string_equal(kind, "organisation");
	for (size_t i = 0; i < sizeof(known_organisations) / sizeof(known_organisations[0]); i++)
		if (strcmp(name, known_organisations[i]) == 0)
			return 1;
	return 0;
}

static struct catalogue *
parse_ok(const char *text)
{
	struct catalogue *cat = NULL;
	const char *err = NULL;

	if (catalogue_parse("test.csv", text, strlen(text), known_cb, NULL, &cat, &err) < 0)
		fail_msg("unexpected error: %s", err);
	assert_null(err);
	assert_non_null(cat);
	return cat;
}

/* Parses len bytes and expects an error "test.csv:LINE: ..." that contains want. */
static void
expect_error_len(const char *text, size_t len, int line, const char *want)
{
	struct catalogue *cat = (struct catalogue *)1;
	const char *err = NULL;
	char prefix[64];

	assert_int_equal(catalogue_parse("test.csv", text, len, known_cb, NULL, &cat, &err), -1);
	assert_null(cat);
	assert_non_null(err);
	snprintf(prefix, sizeof(prefix), "test.csv:%d: ", line);
	if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, want) == NULL)
		fail_msg("for %s\nexpected \"%s...%s\"\n     got \"%s\"", text, prefix, want, err);
}

static void
expect_error(const char *text, int line, const char *want)
{
	expect_error_len(text, strlen(text), line, want);
}

static void
test_shipped(void **state __attribute__((unused)))
{
	const char *srcdir = getenv("LOKET_SRCDIR");
	const struct catalogue_product *p;
	struct catalogue *cat = NULL;
	char path[4096];
	const char *err = NULL;
	int calls = 0, line1 = 0;

	snprintf(path, sizeof(path), "%s/etc/catalogue.csv", srcdir != NULL ? srcdir : ".");
	if (catalogue_load(path, known_cb, &calls, &cat, &err) < 0)
		fail_msg("%s", err);
	assert_string_equal(cat->path, path);
	assert_true(cat->nproducts >= 35 && cat->nproducts <= 50);
	assert_true(calls > 0);
	for (size_t i = 0; i < cat->nproducts; i++) {
		p = &cat->products[i];
		if (p->line == 1) {
			line1++;
			continue;
		}
		/* A hand-over needs someone to hand it to and a deadline. */
		assert_non_null(p->department);
		assert_non_null(p->service_time);
		assert_true(p->nkeywords > 0);
	}
	assert_true(line1 >= 5 && line1 < (int)cat->nproducts / 2);

	p = catalogue_find(cat, "omgevingsvergunning");
	assert_non_null(p);
	assert_int_equal(p->line, 2);
	assert_string_equal(p->department, "omgeving");
	assert_string_equal(p->organisation, "gemeente");
	assert_int_equal(p->digital, 1);
	p = catalogue_find(cat, "afvalkalender");
	assert_non_null(p);
	assert_int_equal(p->line, 1);
	assert_null(p->department);
	assert_null(p->service_time);
	p = catalogue_find(cat, "leefloon");
	assert_non_null(p);
	assert_string_equal(p->organisation, "ocmw");
	assert_int_equal(p->appointment, 1);
	assert_null(catalogue_find(cat, "bestaat-niet"));

	p = catalogue_match(cat, "Vraag over mijn OMGEVINGSVERGUNNING");
	assert_non_null(p);
	assert_string_equal(p->code, "omgevingsvergunning");
	p = catalogue_match(cat, "Re: mijn identiteitskaart verloren");
	assert_non_null(p);
	assert_string_equal(p->code, "eid");
	p = catalogue_match(cat, "Wanneer is de ophaling van grofvuil?");
	assert_non_null(p);
	assert_string_equal(p->code, "grofvuil");
	assert_null(catalogue_match(cat, "Dank u voor de snelle hulp"));
	catalogue_free(cat);
}

static void
test_fields(void **state __attribute__((unused)))
{
	const struct catalogue_product *p;
	struct catalogue *cat;

	cat = parse_ok(
	    HEADER "a,\"Uittreksel, afschrift\",2,burgerzaken,gemeente,2d,yes,no,akte\n"
	           "b,\"Het \"\"e-loket\"\"\",1,,gemeente,,no,yes,\"een\ntwee;drie\r\nvier\"\r\n"
	           "\"c\",C,1,omgeving,ocmw,1d4h30m,true,off,\n"
	           "d,D,2,wonen,gemeente,30m,1,0,x");
	assert_int_equal(cat->nproducts, 4);

	p = &cat->products[0];
	assert_string_equal(p->code, "a");
	assert_string_equal(p->name, "Uittreksel, afschrift");
	assert_int_equal(p->line, 2);
	assert_string_equal(p->department, "burgerzaken");
	assert_string_equal(p->service_time, "2d");
	assert_int_equal(p->appointment, 1);
	assert_int_equal(p->digital, 0);
	assert_int_equal(p->source_line, 2);

	p = &cat->products[1];
	assert_string_equal(p->name, "Het \"e-loket\"");
	assert_null(p->department);
	assert_null(p->service_time);
	/* Line breaks inside quotes separate keywords, whatever the file's line ends. */
	assert_int_equal(p->nkeywords, 4);
	assert_string_equal(p->keywords[0], "een");
	assert_string_equal(p->keywords[1], "twee");
	assert_string_equal(p->keywords[2], "drie");
	assert_string_equal(p->keywords[3], "vier");
	assert_int_equal(p->source_line, 3);

	/* The quoted record spanned three lines. */
	p = &cat->products[2];
	assert_string_equal(p->code, "c");
	assert_string_equal(p->service_time, "1d4h30m");
	assert_int_equal(p->appointment, 1);
	assert_int_equal(p->digital, 0);
	assert_int_equal(p->nkeywords, 0);
	assert_int_equal(p->source_line, 6);

	/* The last record has no line break after it. */
	p = &cat->products[3];
	assert_string_equal(p->service_time, "30m");
	assert_int_equal(p->source_line, 7);
	assert_ptr_equal(catalogue_find(cat, "d"), p);
	catalogue_free(cat);
}

static void
test_bom_comments(void **state __attribute__((unused)))
{
	struct catalogue *cat;

	cat = parse_ok("\xef\xbb\xbf# the catalogue\n"
	               "#\n"
	               "\n" HEADER "# eerste lijn\n"
	               "a,A,1,,gemeente,,no,no,\n"
	               "\r\n"
	               "# tweede lijn\n"
	               "b,B,2,omgeving,gemeente,4h,no,no,\n"
	               "\n"
	               "# the end, without a line break");
	assert_int_equal(cat->nproducts, 2);
	assert_int_equal(cat->products[0].source_line, 6);
	assert_int_equal(cat->products[1].source_line, 9);
	assert_string_equal(cat->path, "test.csv");
	catalogue_free(cat);

	/* A header alone is an empty catalogue, not an error. */
	cat = parse_ok(HEADER);
	assert_int_equal(cat->nproducts, 0);
	catalogue_free(cat);

	/* A BOM anywhere but at the start is part of the text. */
	expect_error("\n\xef\xbb\xbf" HEADER, 2, "header column 1");
}

static void
test_keywords(void **state __attribute__((unused)))
{
	const struct catalogue_product *p;
	struct catalogue *cat;

	cat = parse_ok(HEADER "a,A,1,,gemeente,,no,no,\"  EID;e-ID;; eid\tCafé  Kids-ID;\"\n");
	p = &cat->products[0];
	assert_int_equal(p->nkeywords, 4);
	assert_string_equal(p->keywords[0], "eid");
	assert_string_equal(p->keywords[1], "e-id");
	assert_string_equal(p->keywords[2], "café");
	assert_string_equal(p->keywords[3], "kids-id");
	catalogue_free(cat);
}

static void
test_match(void **state __attribute__((unused)))
{
	struct catalogue *cat;
	const struct catalogue_product *p;

	cat = parse_ok(HEADER "vergunning,V,2,omgeving,gemeente,5d,no,yes,omgevingsvergunning\n"
	                      "eid,E,2,burgerzaken,gemeente,2d,yes,no,eid;e-id\n"
	                      "cafe,C,1,,gemeente,,no,no,café\n"
	                      "eerste,F,1,,gemeente,,no,no,eid-kaart\n"
	                      "later,L,1,,gemeente,,no,no,kaart eid\n");

	p = catalogue_match(cat, "Vraag over mijn OMGEVINGSVERGUNNING");
	assert_non_null(p);
	assert_string_equal(p->code, "vergunning");

	assert_string_equal(catalogue_match(cat, "EID kwijt")->code, "eid");
	assert_string_equal(catalogue_match(cat, "mijn eid")->code, "eid");
	assert_string_equal(catalogue_match(cat, "(eid)")->code, "eid");
	assert_string_equal(catalogue_match(cat, "nieuwe E-ID?")->code, "eid");
	assert_string_equal(catalogue_match(cat, "x eid-kaart")->code, "eid");
	/* First product in file order, not first position in the text. */
	assert_string_equal(catalogue_match(cat, "kaart en eid")->code, "eid");
	assert_string_equal(catalogue_match(cat, "een kaart")->code, "later");

	/* Whole words only: no match inside a longer word, ASCII or UTF-8. */
	assert_null(catalogue_match(cat, "omgevingsvergunningen"));
	assert_null(catalogue_match(cat, "heidi"));
	assert_null(catalogue_match(cat, "eids"));
	assert_null(catalogue_match(cat, "eidé"));
	assert_null(catalogue_match(cat,
	    "\xc3\xa9"
	    "eid"));
	assert_null(catalogue_match(cat, "kaarten"));
	assert_string_equal(catalogue_match(cat, "in het café.")->code, "cafe");
	/* Only ASCII is case-folded. */
	assert_null(catalogue_match(cat, "CAFÉ"));
	assert_string_equal(catalogue_match(cat, "CAFé")->code, "cafe");
	assert_null(catalogue_match(cat, "cafés"));

	assert_null(catalogue_match(cat, ""));
	assert_null(catalogue_match(cat, NULL));
	assert_null(catalogue_match(NULL, "eid"));
	assert_null(catalogue_find(NULL, "eid"));
	catalogue_free(cat);
}

/* The theme column: optional, shown as given, refused with file:line when too long. */
static void
test_theme(void **state __attribute__((unused)))
{
	struct catalogue *cat;
	char text[512], theme[102];
	json_t *j;

	cat = parse_ok(HEADER_THEME "a,A,2,omgeving,gemeente,2d,no,yes,bouw,Wonen en bouwen\n"
	                            "b,B,1,,gemeente,,no,no,,\n");
	assert_string_equal(cat->products[0].theme, "Wonen en bouwen");
	assert_null(cat->products[1].theme);
	j = catalogue_product_json(&cat->products[0], 0);
	assert_string_equal(json_string_value(json_object_get(j, "theme")), "Wonen en bouwen");
	json_decref(j);
	j = catalogue_product_json(&cat->products[1], 0);
	assert_true(json_is_null(json_object_get(j, "theme")));
	json_decref(j);
	catalogue_free(cat);

	/* The old header: no product has a theme, and the JSON says null. */
	cat = parse_ok(HEADER "a,A,2,omgeving,gemeente,2d,no,yes,bouw\n");
	assert_null(cat->products[0].theme);
	j = catalogue_product_json(&cat->products[0], 0);
	assert_true(json_is_null(json_object_get(j, "theme")));
	json_decref(j);
	catalogue_free(cat);

	memset(theme, 't', 101);
	theme[101] = '\0';
	snprintf(text, sizeof(text), HEADER_THEME "# x\na,A,1,,gemeente,,no,no,,%s\n", theme);
	expect_error(text, 3, "theme is 101 bytes; at most 100");
	theme[100] = '\0';
	snprintf(text, sizeof(text), HEADER_THEME "a,A,1,,gemeente,,no,no,,%s\n", theme);
	catalogue_free(parse_ok(text));
	/* A record of the old width under the new header is refused, and the other way round. */
	expect_error(HEADER_THEME "a,A,1,,gemeente,,no,no,\n", 2, "9 fields where 10");
	expect_error(HEADER "a,A,1,,gemeente,,no,no,,Burgerzaken\n", 2, "10 fields where 9");
	expect_error(HEADER_THEME "a,A,1,,gemeente,,no,no,,Burger\001zaken\n", 2,
	    "theme 'Burger");
}

static void
test_values_accepted(void **state __attribute__((unused)))
{
	struct catalogue *cat;

	cat = parse_ok(HEADER "a,A,2,omgeving,gemeente,0d4h,on,TRUE,\n"
	                      "b,B,1,omgeving,ocmw,1h,No,false,\n"
	                      "c_d-9,C,1,,gemeente,,yes,yes,\n");
	assert_int_equal(cat->products[0].appointment, 1);
	assert_int_equal(cat->products[0].digital, 1);
	assert_int_equal(cat->products[1].appointment, 0);
	assert_int_equal(cat->products[1].digital, 0);
	assert_string_equal(cat->products[1].department, "omgeving");
	assert_string_equal(cat->products[2].code, "c_d-9");
	catalogue_free(cat);

	/* Without a callback every department and organisation is accepted. */
	{
		const char *text = HEADER "a,A,2,elders,overal,1d,no,no,\n";
		const char *err = NULL;

		cat = NULL;
		assert_int_equal(
		    catalogue_parse("x", text, strlen(text), NULL, NULL, &cat, &err), 0);
		assert_string_equal(cat->products[0].department, "elders");
		catalogue_free(cat);
	}
}

static void
test_errors_syntax(void **state __attribute__((unused)))
{
	char nul[] = HEADER "a,A\0,1,,gemeente,,no,no,\n";

	expect_error("", 1, "no header");
	expect_error("# only a comment\n\n", 3, "no header");
	expect_error("code,name,lijn,department,organisation,service_time,appointment,digital,"
	             "keywords\n",
	    1, "header column 3 is 'lijn' where 'line' was expected");
	expect_error("# comment\n# comment\nCode,name,line,department,organisation,service_time,"
	             "appointment,digital,keywords\n",
	    3, "header column 1");
	expect_error("code,name,line\n", 1, "the header has 3 columns");
	expect_error(CATALOGUE_HEADER ",extra\n", 1, "the header has 11 columns");
	expect_error("code,name,line,department,organisation,service_time,appointment,digital,"
	             "keywords,extra\n",
	    1, "header column 10 is 'extra' where 'theme' was expected");

	expect_error(HEADER "a,A,1,,gemeente,,no,no\n", 2, "8 fields where 9 were expected");
	expect_error(HEADER "a,A,1,,gemeente,,no,no,,\n", 2, "10 fields where 9");
	expect_error(HEADER "a,A,1,,gemeente,,no,no,\n"
	                    "b,Uittreksel, afschrift,1,,gemeente,,no,no,\n",
	    3, "a field holding a comma must be quoted");
	expect_error(HEADER "a,A,1,,gemeente,,no,no,\n"
	                    "b,\"B\n\nmore,1,,gemeente,,no,no,\n"
	                    "c,C,1,,gemeente,,no,no,\n",
	    3, "field 2 (name): the quote opened on line 3 is never closed");
	expect_error(HEADER "a,A,1,,gemeente,,no,no,\"eid\n", 2, "never closed");
	/* A '#' inside quotes is data, not a comment. */
	expect_error(HEADER "a,A,1,,gemeente,,no,no,\"eid\n# not a comment\"\n", 2, "keyword '#'");
	expect_error(
	    HEADER "a,\"A\"x,1,,gemeente,,no,no,\n", 2, "field 2: 'x' after a closing quote");
	expect_error(HEADER "a,A \"B\",1,,gemeente,,no,no,\n", 2, "quote inside an unquoted field");
	expect_error(HEADER "a,A\r,1,,gemeente,,no,no,\n", 2, "carriage return without line feed");
	expect_error_len(nul, sizeof(nul) - 1, 2, "NUL byte");
	expect_error(HEADER "a,\"\xc3\x28\",1,,gemeente,,no,no,\n", 2, "name is not valid UTF-8");
	expect_error(HEADER "a,\xc0\xaf,1,,gemeente,,no,no,\n", 2, "not valid UTF-8");
	expect_error(HEADER "a,\xed\xa0\x80,1,,gemeente,,no,no,\n", 2, "not valid UTF-8");
	expect_error(HEADER "a,A,1,,gemeente,,no,no,\xe2\x82\n", 2, "keywords is not valid UTF-8");
}

static void
test_errors_values(void **state __attribute__((unused)))
{
	char longname[300], text[512];

	expect_error(HEADER "Eid,A,1,,gemeente,,no,no,\n", 2, "code 'Eid' must be 1-64");
	expect_error(HEADER ",A,1,,gemeente,,no,no,\n", 2, "code '' must be");
	expect_error(HEADER "a b,A,1,,gemeente,,no,no,\n", 2, "code 'a b'");
	expect_error(HEADER "eid,A,1,,gemeente,,no,no,\n"
	                    "# comment\n"
	                    "x,X,1,,gemeente,,no,no,\n"
	                    "eid,B,1,,gemeente,,no,no,\n",
	    5, "code 'eid' is used twice, on lines 2 and 5");

	expect_error(HEADER "a,,1,,gemeente,,no,no,\n", 2, "name is empty");
	memset(longname, 'n', 201);
	longname[201] = '\0';
	snprintf(text, sizeof(text), HEADER "a,%s,1,,gemeente,,no,no,\n", longname);
	expect_error(text, 2, "name is 201 bytes; at most 200");
	longname[200] = '\0';
	snprintf(text, sizeof(text), HEADER "a,%s,1,,gemeente,,no,no,\n", longname);
	catalogue_free(parse_ok(text));
	expect_error(HEADER "a,\"two\nlines\",1,,gemeente,,no,no,\n", 2,
	    "name 'two?lines' holds a line break");

	expect_error(
	    HEADER "a,A,3,,gemeente,,no,no,\n", 2, "line '3' must be 1 (front office) or 2");
	expect_error(HEADER "a,A,,,gemeente,,no,no,\n", 2, "line '' must be");
	expect_error(HEADER "a,A, 1,,gemeente,,no,no,\n", 2, "line ' 1' must be");

	expect_error(
	    HEADER "a,A,2,,gemeente,1d,no,no,\n", 2, "a line 2 product needs the department");
	expect_error(HEADER "a,A,2,Omgeving,gemeente,1d,no,no,\n", 2,
	    "department 'Omgeving' must be 1-64 characters of a-z, 0-9 and '_'");
	expect_error(HEADER "a,A,1,,gemeente,,no,no,\n"
	                    "b,B,2,financien,gemeente,1d,no,no,\n",
	    3, "unknown department 'financien'; it must be configured as [department.financien]");
	expect_error(HEADER "a,A,1,,,,no,no,\n", 2, "organisation is empty");
	expect_error(HEADER "a,A,1,,cpas,,no,no,\n", 2, "unknown organisation 'cpas'");
	expect_error(HEADER "a,A,1,,ge-meente,,no,no,\n", 2, "organisation 'ge-meente' must be");

	expect_error(HEADER "a,A,2,omgeving,gemeente,2x,no,no,\n", 2, "service_time '2x' must be");
	expect_error(HEADER "a,A,2,omgeving,gemeente,0h,no,no,\n", 2, "service_time '0h' is zero");
	expect_error(HEADER "a,A,1,,gemeente,0d0h0m,no,no,\n", 2, "is zero");
	expect_error(HEADER "a,A,2,omgeving,gemeente,,no,no,\n", 2,
	    "service_time '' is empty; a line 2 product needs one");
	expect_error(HEADER "a,A,2,omgeving,gemeente,h,no,no,\n", 2, "service_time 'h' must be");
	expect_error(HEADER "a,A,2,omgeving,gemeente,4,no,no,\n", 2, "service_time '4' must be");
	expect_error(HEADER "a,A,2,omgeving,gemeente,4h1d,no,no,\n", 2, "in that order");
	expect_error(HEADER "a,A,2,omgeving,gemeente,1h1h,no,no,\n", 2, "at most once");
	expect_error(HEADER "a,A,2,omgeving,gemeente,2 d,no,no,\n", 2, "service_time '2 d'");
	expect_error(HEADER "a,A,2,omgeving,gemeente,1234567h,no,no,\n", 2, "at most 6 digits");
	expect_error(HEADER "a,A,2,omgeving,gemeente,2D,no,no,\n", 2, "service_time '2D'");

	expect_error(HEADER "a,A,1,,gemeente,,ja,no,\n", 2, "appointment 'ja' must be yes or no");
	expect_error(HEADER "a,A,1,,gemeente,,no,,\n", 2, "digital '' must be yes or no");
	expect_error(HEADER "a,A,1,,gemeente,,no,yes ,\n", 2, "digital 'yes '");

	expect_error(HEADER "a,A,1,,gemeente,,no,no,\"eid,kaart\"\n", 2,
	    "keyword 'eid,kaart' may hold only letters, digits and '-'");
	expect_error(HEADER "a,A,1,,gemeente,,no,no,- eid\n", 2, "keyword '-'");
}

/* Errors while reading name the file: the daemon logs them as they are. */
static void
test_load_errors(void **state __attribute__((unused)))
{
	struct catalogue *cat = (struct catalogue *)1;
	char path[] = "/tmp/loket-test-catalogue-XXXXXX", want[128];
	const char *err = NULL;
	FILE *fp;
	int fd;

	assert_int_equal(
	    catalogue_load("/nonexistent/catalogue.csv", known_cb, NULL, &cat, &err), -1);
	assert_null(cat);
	assert_string_equal(
	    err, "/nonexistent/catalogue.csv: cannot open: No such file or directory");

	fd = mkstemp(path);
	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	fputs(HEADER "a,A,1,,gemeente,,no,no,\na,A,1,,gemeente,,no,no,\n", fp);
	fclose(fp);
	err = NULL;
	assert_int_equal(catalogue_load(path, known_cb, NULL, &cat, &err), -1);
	snprintf(want, sizeof(want), "%s:3: code 'a' is used twice, on lines 2 and 3", path);
	assert_string_equal(err, want);

	/* A huge file is refused before it is parsed, and without reading all of it. */
	assert_int_equal(truncate(path, 64 * 1024 * 1024), 0);
	err = NULL;
	assert_int_equal(catalogue_load(path, known_cb, NULL, &cat, &err), -1);
	snprintf(want, sizeof(want), "%s: larger than 16 MiB; not a catalogue", path);
	assert_string_equal(err, want);
	unlink(path);

	/* error_r may be NULL when only success matters. */
	assert_int_equal(catalogue_parse("x", "", 0, NULL, NULL, &cat, NULL), -1);
	assert_null(cat);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shipped),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_bom_comments),
		cmocka_unit_test(test_keywords),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_values_accepted),
		cmocka_unit_test(test_theme),
		cmocka_unit_test(test_errors_syntax),
		cmocka_unit_test(test_errors_values),
		cmocka_unit_test(test_load_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
