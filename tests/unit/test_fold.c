/* test_fold.c: the words the search index keeps, accent- and case-blind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fold.h"

static char *
fold(const char *s)
{
	static char out[1024];
	size_t n;

	assert_true(strlen(s) < sizeof(out));
	n = fold_text(s, strlen(s), out);
	assert_int_equal(n, strlen(out));
	assert_true(n <= strlen(s));
	return out;
}

static void
test_fold_accents_and_case_either_way(void **state)
{
	(void)state;
	assert_string_equal(fold("Peetërs"), "peeters");
	assert_string_equal(fold("peeters"), "peeters");
	assert_string_equal(fold("PEETËRS"), "peeters");
	assert_string_equal(fold("Çédille à l'école"), "cedille a l ecole");
	assert_string_equal(fold("Łódź Dvořák Šafránek Øresund"), "lodz dvorak safranek oresund");
	assert_string_equal(fold("ÀÁÂÃÄÅàáâãäåĀāĂăĄą"), "aaaaaaaaaaaaaaaaaa");
}

static void
test_fold_letters_that_become_two(void **state)
{
	(void)state;
	assert_string_equal(fold("Straße"), "strasse");
	assert_string_equal(fold("Æsop Œuvre Ĳssel þorn"), "aesop oeuvre ijssel thorn");
}

static void
test_fold_combining_accents_stay_with_their_letter(void **state)
{
	(void)state;
	/* "Peetërs" typed with a combining diaeresis (NFD) is the same word. */
	assert_string_equal(fold("Peete\xcc\x88rs"), "peeters");
}

static void
test_fold_separators(void **state)
{
	(void)state;
	assert_string_equal(fold("  jan.peeters@example.be "), "jan peeters example be");
	assert_string_equal(fold("2026-000123"), "2026 000123");
	assert_string_equal(fold("0471/12.34.56"), "0471 12 34 56");
	assert_string_equal(fold("3×4÷2"), "3 4 2");
	assert_string_equal(fold("«citaat» — €5"), "citaat 5");
	assert_string_equal(fold("...!?"), "");
	assert_string_equal(fold(""), "");
	/* Other scripts are not folded: they separate, on both storage drivers alike. */
	assert_string_equal(fold("Иван jan"), "jan");
}

static void
test_fold_bad_utf8_is_a_separator(void **state)
{
	(void)state;
	assert_string_equal(fold("ab\xff" "cd"), "ab cd");
	assert_string_equal(fold("ab\xc3"), "ab");
	assert_string_equal(fold("ab\xc0\xaf" "cd"), "ab cd");
	assert_string_equal(fold("ab\xed\xa0\x80" "cd"), "ab cd");
}

static void
test_fold_drops_words_longer_than_the_index_keeps(void **state)
{
	char word[FOLD_WORD_MAX + 2], text[3 * sizeof(word) + 16];

	(void)state;
	memset(word, 'x', FOLD_WORD_MAX);
	word[FOLD_WORD_MAX] = '\0';
	snprintf(text, sizeof(text), "%s kort", word);
	/* FOLD_WORD_MAX letters is still a word */
	assert_int_equal(strlen(fold(text)), FOLD_WORD_MAX + 5);
	word[FOLD_WORD_MAX] = 'x';
	word[FOLD_WORD_MAX + 1] = '\0';
	snprintf(text, sizeof(text), "%s kort %s", word, word);
	assert_string_equal(fold(text), "kort");
	snprintf(text, sizeof(text), "voor %s na", word);
	assert_string_equal(fold(text), "voor na");
	snprintf(text, sizeof(text), "%s", word);
	assert_string_equal(fold(text), "");
}

static void
test_fold_words_keep_counts_across_texts(void **state)
{
	char a[] = "een twee drie", b[] = "vier vijf";
	size_t left = 4;

	(void)state;
	assert_int_equal(fold_words_keep(a, strlen(a), &left), strlen(a));
	assert_int_equal(left, 1);
	assert_int_equal(fold_words_keep(b, strlen(b), &left), 4);
	assert_string_equal(b, "vier");
	assert_int_equal(left, 0);
	assert_int_equal(fold_words_keep(a, strlen(a), &left), 0);
	assert_string_equal(a, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fold_accents_and_case_either_way),
		cmocka_unit_test(test_fold_letters_that_become_two),
		cmocka_unit_test(test_fold_combining_accents_stay_with_their_letter),
		cmocka_unit_test(test_fold_separators),
		cmocka_unit_test(test_fold_bad_utf8_is_a_separator),
		cmocka_unit_test(test_fold_drops_words_longer_than_the_index_keeps),
		cmocka_unit_test(test_fold_words_keep_counts_across_texts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
