/* fold.h: the accent- and case-blind words the search index holds and a query is matched by. */
#ifndef LOKET_FOLD_H
#define LOKET_FOLD_H

#include <stddef.h>

/*
 * The words of len bytes of UTF-8 text, folded: ASCII letters lower-cased,
 * the letters of Latin-1 Supplement and Latin Extended-A reduced to their
 * base letters ("Peetërs" -> "peeters", "Straße" -> "strasse", "Œuvre" ->
 * "oeuvre"), combining accents (U+0300-U+036F) dropped, and everything else
 * (punctuation, symbols, other scripts, bytes that are not UTF-8) a
 * separator; a word longer than FOLD_WORD_MAX is dropped. The words are written to out separated by one space, with no
 * space before the first or after the last, and a NUL: out must hold len + 1
 * bytes (a folded text is never longer than its source). Returns the length
 * written. Both storage drivers index exactly this text (PostgreSQL's
 * loket_fold() in plugins/store_pgsql/pg_schema.c is the same fold written
 * in SQL), so the same query finds the same contacts on either.
 */
size_t fold_text(const char *in, size_t len, char *out);

/*
 * What the index keeps, the same on both drivers: a folded word longer than
 * FOLD_WORD_MAX letters is no word (fold_text drops it: no one searches for
 * one, and PostgreSQL refuses a lexeme over 2047 bytes), and of a contact's
 * text only its first FOLD_WORDS_MAX words are indexed (so its index entry
 * stays well under PostgreSQL's 1 MB tsvector whatever a body holds).
 */
#define FOLD_WORD_MAX 64
#define FOLD_WORDS_MAX 10000

/*
 * Keeps at most *left of the words of a folded text of len bytes (as
 * fold_text wrote it), cutting it with a NUL, and takes the words kept off
 * *left. Returns the length kept.
 */
size_t fold_words_keep(char *text, size_t len, size_t *left);

#endif
