/* catalogue.h: the products-and-services catalogue, loaded from a strict CSV file and validated. */
#ifndef LOKET_CATALOGUE_H
#define LOKET_CATALOGUE_H

#include <stddef.h>

#include <jansson.h>

/*
 * The columns, in this order, that the header line must name exactly; a
 * header without the last one (theme, added later) still reads.
 */
#define CATALOGUE_HEADER                                                                           \
	"code,name,line,department,organisation,service_time,appointment,digital,keywords,theme"

struct catalogue_product {
	char *code; /* [a-z0-9_-]{1,64}, unique in the catalogue */
	char *name; /* what citizens and staff read, at most 200 bytes */
	char *department; /* NULL for a first-line product without one */
	char *organisation;
	char *service_time; /* open time, "4h", "2d", "1d4h"; NULL: no service level */
	int line; /* 1 (front office) or 2 (back office) */
	int appointment; /* 1: served by appointment */
	int digital; /* 1: can be delivered digitally */
	char **keywords; /* lower-cased, without duplicates */
	char *theme; /* groups products on a citizen's form, at most 100 bytes; NULL: none */
	size_t nkeywords;
	int source_line; /* where its record starts in the file, for messages */
	char *answer; /* the standard answer (catalogue_answers.c), NULL: none */
};

struct catalogue {
	struct catalogue_product *products; /* in file order */
	size_t nproducts;
	char *path;
	char *answers_dir; /* where the standard answers are kept, NULL: none */
};

/*
 * Reads and validates the catalogue at path. known(kind, name, arg) returns 1
 * when the department or organisation (kind is "department" or
 * "organisation") is configured; a NULL known accepts every name. On success
 * *cat_r is owned by the caller (catalogue_free); on error *error_r is
 * "path:line: what was expected" (util_error, not freed by the caller).
 */
int catalogue_load(const char *path, int (*known)(const char *kind, const char *name, void *arg),
    void *arg, struct catalogue **cat_r, const char **error_r);
/* As catalogue_load, from len bytes of data (need not end in NUL); name is used in messages. */
int catalogue_parse(const char *name, const char *data, size_t len,
    int (*known)(const char *, const char *, void *), void *arg, struct catalogue **cat_r,
    const char **error_r);
void catalogue_free(struct catalogue *cat);

/* The product with this code, or NULL; borrowed from cat. */
const struct catalogue_product *catalogue_find(const struct catalogue *cat, const char *code);
/*
 * The first product, in file order, with a keyword that occurs as a whole
 * word in text (ASCII case-insensitive; UTF-8 letters count as part of a
 * word), or NULL; borrowed from cat.
 */
const struct catalogue_product *catalogue_match(const struct catalogue *cat, const char *text);

/* catalogue_answers.c */
/* The longest standard answer, in bytes. */
#define CATALOGUE_ANSWER_MAX (64 * 1024)
/*
 * Reads the standard answers, dir/CODE.txt, of every product of cat (a
 * missing folder or file: no answer); dir is kept for catalogue_answer_set.
 * On error *error_r is "path: what is wrong" (util_error).
 */
int catalogue_answers_load(struct catalogue *cat, const char *dir, const char **error_r);
/*
 * Replaces the standard answer of product code ("" or NULL: removes it) in
 * its file, atomically and durably (a temporary file, fsync, rename, fsync
 * of the folder), then in cat. -1 with *error_r for a person; the cause with
 * the file name goes to the log.
 */
int catalogue_answer_set(struct catalogue *cat, const char *code, const char *text,
    const char **error_r);

/*
 * One product as the API shows it ({code, name, line, department, ...,
 * keywords}), with its standard answer when with_answer is set. A new
 * reference; NULL when out of memory.
 */
json_t *catalogue_product_json(const struct catalogue_product *p, int with_answer);

#endif
