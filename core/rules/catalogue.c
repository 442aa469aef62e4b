/* catalogue.c: reads the products-and-services catalogue from strict CSV and checks each record. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalogue.h"
#include "util.h"

/* Far beyond any municipality's catalogue; a bigger file is a mistake, not a catalogue. */
#define CATALOGUE_MAX_SIZE (16u * 1024 * 1024)
#define CATALOGUE_MAX_CODE 64
#define CATALOGUE_MAX_NAME 200
#define CATALOGUE_MAX_IDENT 64
#define CATALOGUE_MAX_THEME 100
/* Six digits per part: 999999d is already absurd, and the sum cannot overflow. */
#define CATALOGUE_MAX_DIGITS 6

enum catalogue_column {
	CATALOGUE_CODE,
	CATALOGUE_NAME,
	CATALOGUE_LINE,
	CATALOGUE_DEPARTMENT,
	CATALOGUE_ORGANISATION,
	CATALOGUE_SERVICE_TIME,
	CATALOGUE_APPOINTMENT,
	CATALOGUE_DIGITAL,
	CATALOGUE_KEYWORDS,
	CATALOGUE_THEME, /* optional: a catalogue written before it has the first nine */
	CATALOGUE_NCOLUMNS,
};

static const char *const catalogue_columns[CATALOGUE_NCOLUMNS] = {
	"code",
	"name",
	"line",
	"department",
	"organisation",
	"service_time",
	"appointment",
	"digital",
	"keywords",
	"theme",
};

struct catalogue_field {
	char *buf;
	size_t len;
	size_t cap;
};

struct catalogue_record {
	struct catalogue_field fields[CATALOGUE_NCOLUMNS];
	size_t nfields; /* as found; only the first CATALOGUE_NCOLUMNS are kept */
	int line;
};

struct catalogue_reader {
	const char *name;
	const unsigned char *p;
	const unsigned char *end;
	int line;
	size_t ncolumns; /* as the header has them: CATALOGUE_NCOLUMNS, or one less */
};

static int catalogue_fail(const char **error_r, const char *name, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Sets *error_r to "name:line: message" (no line when line is 0) and returns -1. */
static int
catalogue_fail(const char **error_r, const char *name, int line, const char *fmt, ...)
{
	char msg[UTIL_ERROR_MAX];
	va_list ap;

	if (error_r == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	*error_r = line > 0 ? util_error("%s:%d: %s", name, line, msg) :
			      util_error("%s: %s", name, msg);
	return -1;
}

static char *
catalogue_strdup(const char *s)
{
	size_t len = strlen(s) + 1;
	char *copy = malloc(len);

	if (copy != NULL)
		memcpy(copy, s, len);
	return copy;
}

/*
 * A value as it may appear in an error message: a typo in a catalogue is
 * usually a misplaced quote that swallowed several lines, so long values are
 * cut (on a character boundary) and control characters shown as '?'.
 */
static const char *
catalogue_shown_len(char *buf, size_t size, const char *s, size_t len)
{
	size_t n = len;

	if (n > size - 4) {
		n = size - 4;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	for (size_t i = 0; i < n; i++)
		buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	if (n < len)
		memcpy(buf + n, "...", 4);
	else
		buf[n] = '\0';
	return buf;
}

static const char *
catalogue_shown(char *buf, size_t size, const char *s)
{
	return catalogue_shown_len(buf, size, s, strlen(s));
}

/* Empties f, keeping its buffer; an empty field is still a NUL-terminated string. */
static int
catalogue_field_reset(struct catalogue_field *f)
{
	if (f->cap == 0) {
		if ((f->buf = malloc(64)) == NULL)
			return -1;
		f->cap = 64;
	}
	f->len = 0;
	f->buf[0] = '\0';
	return 0;
}

static int
catalogue_field_append(struct catalogue_field *f, unsigned char c)
{
	if (f->len + 1 >= f->cap) {
		size_t cap = f->cap == 0 ? 64 : f->cap * 2;
		char *buf = realloc(f->buf, cap);

		if (buf == NULL)
			return -1;
		f->buf = buf;
		f->cap = cap;
	}
	f->buf[f->len++] = (char)c;
	f->buf[f->len] = '\0';
	return 0;
}

static int
catalogue_utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		uint32_t cp;
		size_t n;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (len - i <= n)
			return 0;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		/* Overlong forms, UTF-16 surrogates and beyond U+10FFFF. */
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff
		    || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

/*
 * Reads the next record into rec, skipping comment and empty lines between
 * records. Returns 1 with a record, 0 at the end of the data, -1 on error.
 */
static int
catalogue_read_record(struct catalogue_reader *r, struct catalogue_record *rec, const char **error_r)
{
	const unsigned char *p = r->p, *end = r->end;
	struct catalogue_field *f;
	int ret = 1;

	for (;;) {
		if (p == end) {
			r->p = p;
			return 0;
		}
		if (*p == '#') {
			while (p < end && *p != '\n')
				p++;
		} else if (*p == '\r' && end - p > 1 && p[1] == '\n') {
			p++;
		} else if (*p != '\n') {
			break;
		}
		if (p < end) {
			p++;
			r->line++;
		}
	}

	rec->line = r->line;
	rec->nfields = 0;
	for (;;) {
		f = rec->nfields < CATALOGUE_NCOLUMNS ? &rec->fields[rec->nfields] : NULL;
		rec->nfields++;
		if (f != NULL && catalogue_field_reset(f) < 0)
			goto nomem;
		if (p < end && *p == '"') {
			int start_line = r->line;

			for (p++;; p++) {
				if (p == end) {
					ret = catalogue_fail(error_r, r->name, rec->line,
					    "field %zu (%s): the quote opened on line %d is never "
					    "closed",
					    rec->nfields,
					    rec->nfields <= CATALOGUE_NCOLUMNS
					        ? catalogue_columns[rec->nfields - 1]
					        : "extra",
					    start_line);
					goto done;
				}
				if (*p == '"') {
					if (end - p > 1 && p[1] == '"')
						p++;
					else
						break;
				} else if (*p == '\r' && end - p > 1 && p[1] == '\n') {
					/* A file saved on Windows gives the same value. */
					continue;
				} else if (*p == '\n') {
					r->line++;
				} else if (*p == '\0') {
					goto nul;
				}
				if (f != NULL && catalogue_field_append(f, *p) < 0)
					goto nomem;
			}
			p++;
			if (p == end)
				goto done;
			if (*p == ',') {
				p++;
				continue;
			}
			if (*p == '\n' || (*p == '\r' && end - p > 1 && p[1] == '\n'))
				goto eol;
			ret = catalogue_fail(error_r, r->name, rec->line,
			    "field %zu: '%c' after a closing quote; a quote inside a quoted field "
			    "is written as \"\"",
			    rec->nfields, *p >= 0x20 && *p < 0x7f ? *p : '?');
			goto done;
		}
		for (;; p++) {
			if (p == end)
				goto done;
			if (*p == ',')
				break;
			if (*p == '\n' || (*p == '\r' && end - p > 1 && p[1] == '\n'))
				goto eol;
			if (*p == '\r') {
				ret = catalogue_fail(error_r, r->name, rec->line,
				    "field %zu: carriage return without line feed", rec->nfields);
				goto done;
			}
			if (*p == '"') {
				ret = catalogue_fail(error_r, r->name, rec->line,
				    "field %zu: quote inside an unquoted field; quote the whole "
				    "field and write the quote as \"\"",
				    rec->nfields);
				goto done;
			}
			if (*p == '\0')
				goto nul;
			if (f != NULL && catalogue_field_append(f, *p) < 0)
				goto nomem;
		}
		p++;
	}

eol:
	if (*p == '\r')
		p++;
	p++;
	r->line++;
	goto done;
nul:
	ret = catalogue_fail(error_r, r->name, rec->line, "NUL byte; the catalogue must be text");
	goto done;
nomem:
	ret = catalogue_fail(error_r, r->name, rec->line, "out of memory");
done:
	r->p = p;
	return ret;
}

static int
catalogue_check_header(struct catalogue_reader *r, struct catalogue_record *rec, const char **error_r)
{
	char shown[72];

	/* The header without theme (before it was added) still reads: no product has one. */
	if (rec->nfields != CATALOGUE_NCOLUMNS && rec->nfields != CATALOGUE_THEME)
		return catalogue_fail(error_r, r->name, rec->line,
		    "the header has %zu columns; expected exactly \"%s\"", rec->nfields,
		    CATALOGUE_HEADER);
	r->ncolumns = rec->nfields;
	for (size_t i = 0; i < r->ncolumns; i++)
		if (strcmp(rec->fields[i].buf, catalogue_columns[i]) != 0)
			return catalogue_fail(error_r, r->name, rec->line,
			    "header column %zu is '%s' where '%s' was expected; the header must be "
			    "exactly \"%s\"",
			    i + 1, catalogue_shown(shown, sizeof(shown), rec->fields[i].buf),
			    catalogue_columns[i], CATALOGUE_HEADER);
	return 0;
}

/* 1 when s is 1..max characters of a-z, 0-9, '_' and the characters in extra. */
static int
catalogue_ident_valid(const char *s, const char *extra, size_t max)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_'
		        || strchr(extra, s[n]) != NULL))
			return 0;
	return n >= 1 && n <= max;
}

/*
 * Open time as "2d", "4h", "30m" or a combination in that order ("1d4h");
 * a day here is an open day, so the value stays a string for the calendar.
 */
static int
catalogue_service_time_valid(const char *s, const char **why_r)
{
	static const char units[] = "dhm";
	size_t next = 0;
	int nonzero = 0;

	if (*s == '\0') {
		*why_r = "is empty";
		return -1;
	}
	while (*s != '\0') {
		const char *unit;
		size_t digits = 0;

		for (; *s >= '0' && *s <= '9'; s++, digits++)
			if (*s != '0')
				nonzero = 1;
		if (digits == 0 || digits > CATALOGUE_MAX_DIGITS) {
			*why_r = "must be numbers of at most 6 digits, each followed by d, h or m "
			         "(\"2d\", \"4h\", \"1d4h\", \"30m\")";
			return -1;
		}
		if (*s == '\0' || (unit = strchr(units, *s)) == NULL) {
			*why_r = "must be numbers each followed by d (open days), h or m (\"2d\", "
			         "\"4h\", \"1d4h\", \"30m\")";
			return -1;
		}
		if ((size_t)(unit - units) < next) {
			*why_r
			    = "must name d, h and m at most once each, in that order (\"1d4h30m\")";
			return -1;
		}
		next = (size_t)(unit - units) + 1;
		s++;
	}
	if (!nonzero) {
		*why_r = "is zero; leave it empty for no service level";
		return -1;
	}
	return 0;
}

static int
catalogue_word_char(unsigned char c)
{
	/* Bytes of UTF-8 sequences count as letters, so "eid" does not match inside "eidé". */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
	    || c >= 0x80;
}

static unsigned char
catalogue_ascii_lower(unsigned char c)
{
	/* Not tolower(): a locale must not rewrite the bytes of UTF-8 text. */
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static void
catalogue_product_clear(struct catalogue_product *p)
{
	free(p->code);
	free(p->name);
	free(p->department);
	free(p->organisation);
	free(p->service_time);
	free(p->theme);
	free(p->answer);
	for (size_t i = 0; i < p->nkeywords; i++)
		free(p->keywords[i]);
	free(p->keywords);
	memset(p, 0, sizeof(*p));
}

/* Splits on ';' and white space, lower-cases, drops duplicates; the words go into p. */
static int
catalogue_keywords(
    struct catalogue_reader *r, int line, char *s, struct catalogue_product *p, const char **error_r)
{
	char shown[72];

	while (*s != '\0') {
		char *word, **keywords;
		int letters = 0, others = 0, dup = 0;
		size_t len = 0;

		if (*s == ';' || *s == ' ' || (*s >= '\t' && *s <= '\r')) {
			s++;
			continue;
		}
		word = s;
		while (s[len] != '\0' && s[len] != ';' && s[len] != ' '
		    && !(s[len] >= '\t' && s[len] <= '\r'))
			len++;
		s += len;
		for (size_t i = 0; i < len; i++) {
			if (catalogue_word_char((unsigned char)word[i]))
				letters = 1;
			else if (word[i] != '-')
				others = 1;
		}
		if (!letters || others)
			return catalogue_fail(error_r, r->name, line,
			    "keyword '%s' may hold only letters, digits and '-'; separate keywords "
			    "with ';' or spaces",
			    catalogue_shown_len(shown, sizeof(shown), word, len));
		for (size_t i = 0; i < len; i++)
			word[i] = (char)catalogue_ascii_lower((unsigned char)word[i]);
		for (size_t i = 0; i < p->nkeywords && !dup; i++)
			dup = strlen(p->keywords[i]) == len
			    && memcmp(p->keywords[i], word, len) == 0;
		if (dup)
			continue;
		keywords = realloc(p->keywords, (p->nkeywords + 1) * sizeof(*keywords));
		if (keywords == NULL)
			return catalogue_fail(error_r, r->name, line, "out of memory");
		p->keywords = keywords;
		if ((keywords[p->nkeywords] = malloc(len + 1)) == NULL)
			return catalogue_fail(error_r, r->name, line, "out of memory");
		memcpy(keywords[p->nkeywords], word, len);
		keywords[p->nkeywords++][len] = '\0';
	}
	return 0;
}

/* Checks a department or organisation name, and asks the config about it. */
static int
catalogue_check_unit(struct catalogue_reader *r, int line, const char *kind, const char *value,
    int (*known)(const char *, const char *, void *), void *arg, const char **error_r)
{
	char shown[72];

	if (!catalogue_ident_valid(value, "", CATALOGUE_MAX_IDENT))
		return catalogue_fail(error_r, r->name, line,
		    "%s '%s' must be 1-%d characters of a-z, 0-9 and '_'", kind,
		    catalogue_shown(shown, sizeof(shown), value), CATALOGUE_MAX_IDENT);
	if (known != NULL && known(kind, value, arg) != 1)
		return catalogue_fail(error_r, r->name, line,
		    "unknown %s '%s'; it must be configured as [%s.%s]", kind, value, kind, value);
	return 0;
}

/* Validates one record and fills p, owned by the caller even on error. */
static int
catalogue_product_build(struct catalogue_reader *r, const struct catalogue *cat,
    struct catalogue_record *rec, int (*known)(const char *, const char *, void *), void *arg,
    struct catalogue_product *p, const char **error_r)
{
	char *field[CATALOGUE_NCOLUMNS], shown[72];
	const char *why;
	int line = rec->line;

	if (rec->nfields != r->ncolumns)
		return catalogue_fail(error_r, r->name, line,
		    "%zu fields where %zu were expected (as the header has them); a field holding "
		    "a comma must be quoted",
		    rec->nfields, r->ncolumns);
	field[CATALOGUE_THEME] = (char *)"";
	for (size_t i = 0; i < r->ncolumns; i++) {
		field[i] = rec->fields[i].buf;
		if (!catalogue_utf8_valid((const unsigned char *)field[i], rec->fields[i].len))
			return catalogue_fail(error_r, r->name, line,
			    "%s is not valid UTF-8; save the file as UTF-8", catalogue_columns[i]);
	}

	if (!catalogue_ident_valid(field[CATALOGUE_CODE], "-", CATALOGUE_MAX_CODE))
		return catalogue_fail(error_r, r->name, line,
		    "code '%s' must be 1-%d characters of a-z, 0-9, '_' and '-'",
		    catalogue_shown(shown, sizeof(shown), field[CATALOGUE_CODE]),
		    CATALOGUE_MAX_CODE);
	for (size_t i = 0; i < cat->nproducts; i++)
		if (strcmp(cat->products[i].code, field[CATALOGUE_CODE]) == 0)
			return catalogue_fail(error_r, r->name, line,
			    "code '%s' is used twice, on lines %d and %d", field[CATALOGUE_CODE],
			    cat->products[i].source_line, line);

	if (field[CATALOGUE_NAME][0] == '\0')
		return catalogue_fail(error_r, r->name, line, "name is empty");
	if (rec->fields[CATALOGUE_NAME].len > CATALOGUE_MAX_NAME)
		return catalogue_fail(error_r, r->name, line, "name is %zu bytes; at most %d",
		    rec->fields[CATALOGUE_NAME].len, CATALOGUE_MAX_NAME);
	for (const char *c = field[CATALOGUE_NAME]; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return catalogue_fail(error_r, r->name, line,
			    "name '%s' holds a line break or control character",
			    catalogue_shown(shown, sizeof(shown), field[CATALOGUE_NAME]));

	if (strcmp(field[CATALOGUE_LINE], "1") == 0)
		p->line = 1;
	else if (strcmp(field[CATALOGUE_LINE], "2") == 0)
		p->line = 2;
	else
		return catalogue_fail(error_r, r->name, line,
		    "line '%s' must be 1 (front office) or 2 (back office)",
		    catalogue_shown(shown, sizeof(shown), field[CATALOGUE_LINE]));

	if (field[CATALOGUE_DEPARTMENT][0] == '\0') {
		if (p->line == 2)
			return catalogue_fail(error_r, r->name, line,
			    "a line 2 product needs the department that handles it");
	} else if (catalogue_check_unit(
	               r, line, "department", field[CATALOGUE_DEPARTMENT], known, arg, error_r)
	    < 0) {
		return -1;
	}
	if (field[CATALOGUE_ORGANISATION][0] == '\0')
		return catalogue_fail(error_r, r->name, line, "organisation is empty");
	if (catalogue_check_unit(
	        r, line, "organisation", field[CATALOGUE_ORGANISATION], known, arg, error_r)
	    < 0)
		return -1;

	/* A hand-over to the back office always has a deadline; line 1 answers now. */
	if (field[CATALOGUE_SERVICE_TIME][0] != '\0' || p->line == 2) {
		if (catalogue_service_time_valid(field[CATALOGUE_SERVICE_TIME], &why) < 0)
			return catalogue_fail(error_r, r->name, line, "service_time '%s' %s%s",
			    catalogue_shown(shown, sizeof(shown), field[CATALOGUE_SERVICE_TIME]),
			    why,
			    field[CATALOGUE_SERVICE_TIME][0] == '\0'
			        ? "; a line 2 product needs one (\"2d\", \"4h\")"
			        : "");
	}

	if (util_parse_bool(field[CATALOGUE_APPOINTMENT], &p->appointment) < 0)
		return catalogue_fail(error_r, r->name, line, "appointment '%s' must be yes or no",
		    catalogue_shown(shown, sizeof(shown), field[CATALOGUE_APPOINTMENT]));
	if (util_parse_bool(field[CATALOGUE_DIGITAL], &p->digital) < 0)
		return catalogue_fail(error_r, r->name, line, "digital '%s' must be yes or no",
		    catalogue_shown(shown, sizeof(shown), field[CATALOGUE_DIGITAL]));

	if (catalogue_keywords(r, line, field[CATALOGUE_KEYWORDS], p, error_r) < 0)
		return -1;
	if (strlen(field[CATALOGUE_THEME]) > CATALOGUE_MAX_THEME)
		return catalogue_fail(error_r, r->name, line, "theme is %zu bytes; at most %d",
		    strlen(field[CATALOGUE_THEME]), CATALOGUE_MAX_THEME);
	for (const char *c = field[CATALOGUE_THEME]; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return catalogue_fail(error_r, r->name, line,
			    "theme '%s' holds a line break or control character",
			    catalogue_shown(shown, sizeof(shown), field[CATALOGUE_THEME]));

	p->source_line = line;
	if ((p->code = catalogue_strdup(field[CATALOGUE_CODE])) == NULL
	    || (p->name = catalogue_strdup(field[CATALOGUE_NAME])) == NULL
	    || (p->organisation = catalogue_strdup(field[CATALOGUE_ORGANISATION])) == NULL
	    || (field[CATALOGUE_DEPARTMENT][0] != '\0'
	        && (p->department = catalogue_strdup(field[CATALOGUE_DEPARTMENT])) == NULL)
	    || (field[CATALOGUE_SERVICE_TIME][0] != '\0'
	        && (p->service_time = catalogue_strdup(field[CATALOGUE_SERVICE_TIME])) == NULL)
	    || (field[CATALOGUE_THEME][0] != '\0'
	        && (p->theme = catalogue_strdup(field[CATALOGUE_THEME])) == NULL))
		return catalogue_fail(error_r, r->name, line, "out of memory");
	return 0;
}

static int
catalogue_add(struct catalogue *cat, size_t *cap, struct catalogue_product *p)
{
	if (cat->nproducts == *cap) {
		size_t ncap = *cap == 0 ? 32 : *cap * 2;
		struct catalogue_product *products
		    = realloc(cat->products, ncap * sizeof(*products));

		if (products == NULL)
			return -1;
		cat->products = products;
		*cap = ncap;
	}
	cat->products[cat->nproducts++] = *p;
	return 0;
}

int
catalogue_parse(const char *name, const char *data, size_t len,
    int (*known)(const char *, const char *, void *), void *arg, struct catalogue **cat_r,
    const char **error_r)
{
	struct catalogue_reader r
	    = { name, (const unsigned char *)data, (const unsigned char *)data + len, 1, 0 };
	struct catalogue_record rec;
	struct catalogue_product p;
	struct catalogue *cat = NULL;
	size_t cap = 0;
	int ret;

	memset(&rec, 0, sizeof(rec));
	*cat_r = NULL;
	if (len > CATALOGUE_MAX_SIZE) {
		catalogue_fail(error_r, name, 0, "larger than %u MiB; not a catalogue",
		    CATALOGUE_MAX_SIZE / 1024 / 1024);
		goto fail;
	}
	if ((cat = calloc(1, sizeof(*cat))) == NULL
	    || (cat->path = catalogue_strdup(name)) == NULL) {
		catalogue_fail(error_r, name, 0, "out of memory");
		goto fail;
	}
	/* Spreadsheet programs write a byte order mark; it is not part of the header. */
	if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
		r.p += 3;

	if ((ret = catalogue_read_record(&r, &rec, error_r)) < 0)
		goto fail;
	if (ret == 0) {
		catalogue_fail(error_r, name, r.line, "no header; the first line must be \"%s\"",
		    CATALOGUE_HEADER);
		goto fail;
	}
	if (catalogue_check_header(&r, &rec, error_r) < 0)
		goto fail;

	while ((ret = catalogue_read_record(&r, &rec, error_r)) > 0) {
		memset(&p, 0, sizeof(p));
		if (catalogue_product_build(&r, cat, &rec, known, arg, &p, error_r) < 0) {
			catalogue_product_clear(&p);
			goto fail;
		}
		if (catalogue_add(cat, &cap, &p) < 0) {
			catalogue_product_clear(&p);
			catalogue_fail(error_r, name, rec.line, "out of memory");
			goto fail;
		}
	}
	if (ret < 0)
		goto fail;

	for (size_t i = 0; i < CATALOGUE_NCOLUMNS; i++)
		free(rec.fields[i].buf);
	*cat_r = cat;
	return 0;

fail:
	for (size_t i = 0; i < CATALOGUE_NCOLUMNS; i++)
		free(rec.fields[i].buf);
	catalogue_free(cat);
	return -1;
}

int
catalogue_load(const char *path, int (*known)(const char *kind, const char *name, void *arg),
    void *arg, struct catalogue **cat_r, const char **error_r)
{
	char *data = NULL, *grown;
	size_t len = 0, cap = 0, n;
	FILE *fp;
	int ret;

	*cat_r = NULL;
	if ((fp = fopen(path, "rb")) == NULL)
		return catalogue_fail(error_r, path, 0, "cannot open: %s", strerror(errno));
	for (;;) {
		/* One byte past the limit is enough for catalogue_parse to refuse it. */
		if (len > CATALOGUE_MAX_SIZE)
			break;
		if (len == cap) {
			cap = cap == 0 ? 64 * 1024 : cap * 2;
			if (cap > CATALOGUE_MAX_SIZE + 1)
				cap = CATALOGUE_MAX_SIZE + 1;
			if ((grown = realloc(data, cap)) == NULL) {
				catalogue_fail(error_r, path, 0, "out of memory");
				goto fail;
			}
			data = grown;
		}
		n = fread(data + len, 1, cap - len, fp);
		len += n;
		if (n == 0) {
			if (ferror(fp)) {
				catalogue_fail(
				    error_r, path, 0, "cannot read: %s", strerror(errno));
				goto fail;
			}
			break;
		}
	}
	fclose(fp);
	fp = NULL;
	ret = catalogue_parse(path, data != NULL ? data : "", len, known, arg, cat_r, error_r);
	free(data);
	return ret;

fail:
	free(data);
	if (fp != NULL)
		fclose(fp);
	return -1;
}

void
catalogue_free(struct catalogue *cat)
{
	if (cat == NULL)
		return;
	for (size_t i = 0; i < cat->nproducts; i++)
		catalogue_product_clear(&cat->products[i]);
	free(cat->products);
	free(cat->path);
	free(cat->answers_dir);
	free(cat);
}

const struct catalogue_product *
catalogue_find(const struct catalogue *cat, const char *code)
{
	if (cat == NULL || code == NULL)
		return NULL;
	for (size_t i = 0; i < cat->nproducts; i++)
		if (strcmp(cat->products[i].code, code) == 0)
			return &cat->products[i];
	return NULL;
}

/* 1 when the lower-case word occurs in text with no letter or digit on either side. */
static int
catalogue_has_word(const unsigned char *text, size_t tlen, const char *word)
{
	size_t wlen = strlen(word);

	if (wlen == 0 || wlen > tlen)
		return 0;
	for (size_t i = 0; i + wlen <= tlen; i++) {
		size_t k = 0;

		if (i > 0 && catalogue_word_char(text[i - 1]))
			continue;
		while (k < wlen && catalogue_ascii_lower(text[i + k]) == (unsigned char)word[k])
			k++;
		if (k == wlen && (i + wlen == tlen || !catalogue_word_char(text[i + wlen])))
			return 1;
	}
	return 0;
}

const struct catalogue_product *
catalogue_match(const struct catalogue *cat, const char *text)
{
	size_t tlen;

	if (cat == NULL || text == NULL)
		return NULL;
	tlen = strlen(text);
	for (size_t i = 0; i < cat->nproducts; i++)
		for (size_t k = 0; k < cat->products[i].nkeywords; k++)
			if (catalogue_has_word(
			        (const unsigned char *)text, tlen, cat->products[i].keywords[k]))
				return &cat->products[i];
	return NULL;
}

json_t *
catalogue_product_json(const struct catalogue_product *p, int with_answer)
{
	json_t *kw = json_array(), *o;

	for (size_t k = 0; kw != NULL && k < p->nkeywords; k++)
		json_array_append_new(kw, json_string(p->keywords[k]));
	o = json_pack("{s:s, s:s, s:s?, s:i, s:s?, s:s, s:s?, s:b, s:b, s:o}", "code", p->code,
	    "name", p->name, "theme", p->theme, "line", p->line, "department", p->department, "organisation", p->organisation,
	    "service_time", p->service_time, "appointment", p->appointment, "digital", p->digital,
	    "keywords", kw);
	if (o != NULL && with_answer)
		json_object_set_new(o, "standard_answer", p->answer != NULL ? json_string(p->answer)
									    : json_null());
	return o;
}
