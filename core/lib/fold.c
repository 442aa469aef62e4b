/* fold.c: the accent- and case-blind words of a text, as the search index keeps them. */
/* No config.h: bench/history_load.c builds this file outside the autotools build. */
#include "fold.h"

/*
 * U+00C0..U+017F to the ASCII they fold to: one or two letters, "" for a
 * separator (the multiplication and division signs). The PostgreSQL
 * driver's loket_fold() holds the same table as translate() and replace()
 * arguments: change both together.
 */
/* clang-format off */
static const char *const fold_latin[0x180 - 0xC0] = {
	/* U+00C0 */ "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
	/* U+00D0 */ "d", "n", "o", "o", "o", "o", "o", "", "o", "u", "u", "u", "u", "y", "th", "ss",
	/* U+00E0 */ "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
	/* U+00F0 */ "d", "n", "o", "o", "o", "o", "o", "", "o", "u", "u", "u", "u", "y", "th", "y",
	/* U+0100 */ "a", "a", "a", "a", "a", "a", "c", "c", "c", "c", "c", "c", "c", "c", "d", "d",
	/* U+0110 */ "d", "d", "e", "e", "e", "e", "e", "e", "e", "e", "e", "e", "g", "g", "g", "g",
	/* U+0120 */ "g", "g", "g", "g", "h", "h", "h", "h", "i", "i", "i", "i", "i", "i", "i", "i",
	/* U+0130 */ "i", "i", "ij", "ij", "j", "j", "k", "k", "k", "l", "l", "l", "l", "l", "l", "l",
	/* U+0140 */ "l", "l", "l", "n", "n", "n", "n", "n", "n", "n", "n", "n", "o", "o", "o", "o",
	/* U+0150 */ "o", "o", "oe", "oe", "r", "r", "r", "r", "r", "r", "s", "s", "s", "s", "s", "s",
	/* U+0160 */ "s", "s", "t", "t", "t", "t", "t", "t", "u", "u", "u", "u", "u", "u", "u", "u",
	/* U+0170 */ "u", "u", "u", "u", "w", "w", "y", "y", "y", "z", "z", "z", "z", "z", "z", "s",
};
/* clang-format on */

/* The code point at *p (advancing *p), or -1 for a byte that does not start valid UTF-8. */
static long
fold_next(const unsigned char **p, const unsigned char *end)
{
	const unsigned char *s = *p;
	long cp;
	int n;

	if (s[0] < 0x80) {
		*p = s + 1;
		return s[0];
	}
	if (s[0] >= 0xC2 && s[0] <= 0xDF) {
		n = 1;
		cp = s[0] & 0x1F;
	} else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		n = 2;
		cp = s[0] & 0x0F;
	} else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
		n = 3;
		cp = s[0] & 0x07;
	} else {
		*p = s + 1;
		return -1;
	}
	if (end - s <= n) {
		*p = s + 1;
		return -1;
	}
	for (int i = 1; i <= n; i++) {
		if ((s[i] & 0xC0) != 0x80) {
			*p = s + 1;
			return -1;
		}
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	/* Overlong forms and surrogates are not UTF-8: separators, like any other junk. */
	if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 3 && cp < 0x10000)
	    || cp > 0x10FFFF) {
		*p = s + 1;
		return -1;
	}
	*p = s + n + 1;
	return cp;
}

/* A word just ended at n: dropped, with the space before it, when longer than FOLD_WORD_MAX. */
static size_t
fold_word_end(size_t n, size_t start)
{
	if (n - start <= FOLD_WORD_MAX)
		return n;
	return start > 0 ? start - 1 : 0;
}

size_t
fold_text(const char *in, size_t len, char *out)
{
	const unsigned char *p = (const unsigned char *)in, *end = p + len;
	size_t n = 0, start = 0;
	int in_word = 0;

	while (p < end) {
		long cp = fold_next(&p, end);
		const char *to = NULL;
		char one[2] = { 0, 0 };

		if (cp >= 'A' && cp <= 'Z') {
			one[0] = (char)(cp - 'A' + 'a');
			to = one;
		} else if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9')) {
			one[0] = (char)cp;
			to = one;
		} else if (cp >= 0x300 && cp <= 0x36F) {
			/* A combining accent belongs to its letter: "e" + U+0301 is "e". */
			continue;
		} else if (cp >= 0xC0 && cp < 0x180 && fold_latin[cp - 0xC0][0] != '\0') {
			to = fold_latin[cp - 0xC0];
		}
		if (to == NULL) {
			if (in_word)
				n = fold_word_end(n, start);
			in_word = 0;
			continue;
		}
		/* Never longer than the source: n bytes fold to n letters at most. */
		if (!in_word) {
			if (n > 0)
				out[n++] = ' ';
			start = n;
			in_word = 1;
		}
		for (; *to != '\0'; to++)
			out[n++] = *to;
	}
	if (in_word)
		n = fold_word_end(n, start);
	out[n] = '\0';
	return n;
}

size_t
fold_words_keep(char *text, size_t len, size_t *left)
{
	size_t i;

	if (len == 0)
		return 0;
	if (*left == 0) {
		text[0] = '\0';
		return 0;
	}
	for (i = 0; i < len; i++)
		if (text[i] == ' ' && --*left == 0) {
			text[i] = '\0';
			return i;
		}
	/* The last word ends the text. */
	--*left;
	return len;
}
