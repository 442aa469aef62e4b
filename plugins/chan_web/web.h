/*
 * web.h: the e-loket channel (chan_web): a public form at /loket and a status
 * page at /loket/status, served by loketd without a staff session.
 * chan_web.c holds the plugin and its routes, web_form.c reads what a browser
 * posts (multipart/form-data through GMime), web_guard.c the abuse guards
 * (CSRF tokens, rate limits, content sniffing, identifier checks) and
 * web_page.c writes the pages, Dutch first, English on request.
 */
#ifndef CHAN_WEB_H
#define CHAN_WEB_H

#include <stddef.h>
#include <stdint.h>

#include <loket/plugin.h>

enum web_lang { WEB_NL, WEB_EN };

/* Picks the Dutch or the English text. */
#define WEB_TX(lang, nl, en) ((lang) == WEB_EN ? (en) : (nl))

/* ---- a growing text; a failed allocation marks it broken (the page answers 503) ---- */
struct web_buf {
	char *data;
	size_t len, size;
	int broken;
};

void web_buf_put(struct web_buf *b, const char *s, size_t n);
void web_buf_raw(struct web_buf *b, const char *s);
void web_buf_printf(struct web_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* HTML text or attribute value: & < > " ' escaped, NUL-free. */
void web_buf_esc(struct web_buf *b, const char *s);
void web_buf_esc_n(struct web_buf *b, const char *s, size_t n);
void web_buf_free(struct web_buf *b);

/* ---- a posted form ---- */
struct web_field {
	char *name;
	char *value; /* NUL-terminated (a file may hold NULs too: use len) */
	size_t len;
	char *filename; /* a file part: the name the browser gave, else NULL */
};

struct web_form {
	struct web_field *fields;
	size_t n;
};

/*
 * Reads a multipart/form-data body (content_type is the request's header,
 * with its boundary) through GMime, or an application/x-www-form-urlencoded
 * one when urlencoded_ok. -1 with a sentence in *error_r.
 */
int web_form_parse(const char *content_type, const char *body, size_t len, int urlencoded_ok,
    struct web_form *form, const char **error_r);
/* The first field called name, or NULL. */
const struct web_field *web_form_get(const struct web_form *form, const char *name);
/* The first field's text with blanks trimmed at both ends (malloc()ed), or NULL when absent. */
char *web_form_text(const struct web_form *form, const char *name);
void web_form_free(struct web_form *form);
void web_form_init(void);
void web_form_shutdown(void);

/* ---- guards ---- */
#define WEB_CSRF_COOKIE "loket_csrf"
/* The cookie's secret in base64url: 32 random bytes. */
#define WEB_CSRF_SECRET_LEN 43

/* A new cookie secret, NUL-terminated, in out. */
void web_csrf_secret_new(char out[WEB_CSRF_SECRET_LEN + 1]);
/* Whether s looks like a secret web_csrf_secret_new made. */
int web_csrf_secret_ok(const char *s);
/* The cookie secret the request's Cookie header carries (copied to out), else -1. */
int web_csrf_cookie(const char *cookie_header, char out[WEB_CSRF_SECRET_LEN + 1]);
/* A form token bound to the secret (nonce "." MAC), malloc()ed; NULL when out of memory. */
char *web_csrf_token(const char *secret);
/* 0 when token was made by web_csrf_token for secret, compared in constant time. */
int web_csrf_check(const char *secret, const char *token);
/* The SHA-256 of s in lower-case hex. */
void web_sha256_hex(const void *data, size_t len, char out[65]);

/* A per-client counter over a fixed window (one per guarded route, in memory per node). */
struct web_rate;
struct web_rate *web_rate_new(void);
void web_rate_free(struct web_rate *r);
/*
 * Counts one hit of client; returns 0 when it stays within limit hits per
 * window_ms, else the seconds until the window ends (for Retry-After).
 */
int64_t web_rate_hit(struct web_rate *r, const char *client, int64_t limit, int64_t window_ms);

/* The content type the bytes show (PDF, PNG, JPEG, GIF, WebP), else NULL. */
const char *web_sniff(const void *data, size_t len);
/* Whether s is a Belgian national register number with a right checksum (separators allowed). */
int web_rrn_ok(const char *s);
/* A plausible email address: one @, something on both sides, a dot in the domain, no blanks. */
int web_email_ok(const char *s);
/* A plausible phone number: digits (at least 8), spaces, + . / - ( ) only. */
int web_phone_ok(const char *s);
/* Whether s is valid UTF-8 without control characters other than tab and line breaks. */
int web_text_ok(const char *s, size_t len);

/* ---- page layout (web_page.c) ---- */
/* Up to here: doctype, head (stylesheet, the module script), skip link, header with the language switch. */
void web_page_begin(struct web_buf *b, enum web_lang lang, const char *title, const char *org,
    const char *path);
void web_page_end(struct web_buf *b, enum web_lang lang);
/* A date (local time) as <time datetime="YYYY-MM-DD">weekday d month yyyy</time>, with an id. */
void web_page_date(struct web_buf *b, enum web_lang lang, const char *id, int64_t ms);

/* What went wrong with a posted form, field by field, in the order of the form. */
#define WEB_MAX_ERRORS 16
struct web_errors {
	const char *field[WEB_MAX_ERRORS];
	char *msg[WEB_MAX_ERRORS];
	size_t n;
};

void web_errors_add(struct web_errors *e, const char *field, const char *msg);
const char *web_errors_of(const struct web_errors *e, const char *field);
void web_errors_free(struct web_errors *e);
/* The summary at the top: role=alert, a link to each field. */
void web_page_error_summary(struct web_buf *b, enum web_lang lang, const struct web_errors *e);
/* A field's message (id FIELD-error), when it has one. */
void web_page_field_error(struct web_buf *b, enum web_lang lang, const struct web_errors *e,
    const char *field);
/* aria-invalid and aria-describedby for a field (with its hint when hint_id is not NULL). */
void web_page_field_aria(struct web_buf *b, const struct web_errors *e, const char *field,
    const char *hint_id);

#endif
