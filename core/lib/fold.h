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
 * separator. The words are written to out separated by one space, with no
 * space before the first or after the last, and a NUL: out must hold len + 1
 * bytes (a folded text is never longer than its source). Returns the length
 * written. Both storage drivers index exactly this text (PostgreSQL's
 * loket_fold() in plugins/store_pgsql/pg_schema.c is the same fold written
 * in SQL), so the same query finds the same contacts on either.
 */
size_t fold_text(const char *in, size_t len, char *out);

#endif
