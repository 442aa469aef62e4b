/*
 * mime.c: turns a raw mail into a struct email_msg with GMime 3: the checks
 * on the raw bytes, the second reading GMime leaves to the caller, and the
 * order of the steps the other mime_*.c files take.
 */
#include "config.h"

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkstemp, fsync, strndup when built by hand with -std=c11 */
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "email.h"
#include "mime.h"

int
mime_fail(const char **error_r, const char *fmt, ...)
{
	va_list ap;

	if (error_r != NULL) {
		va_start(ap, fmt);
		*error_r = email_verror(fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Copies a GLib string into malloc'd memory, so that email_msg_free() can use free(). */
char *
mime_take(char *gstr)
{
	char *s;

	if (gstr == NULL)
		return NULL;
	s = strdup(gstr);
	g_free(gstr);
	return s;
}

static void
mime_warning_cb(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer arg)
{
	struct mime_parse *p = arg;

	(void)offset;
	(void)item;
	if (code == GMIME_CRIT_NESTING_OVERFLOW)
		p->nesting_overflow = 1;
	if (code == GMIME_CRIT_INVALID_HEADER_NAME && p->bad_header_at < 0)
		p->bad_header_at = offset;
}

/*
 * A rough count of the addresses in the top-level To and Cc fields, read from
 * the raw bytes before GMime builds an object per address: '@' and commas
 * outside quoted strings and comments. It can run high (a name holding an
 * address), so only a count far over the limit is refused on it.
 */
static size_t
mime_rough_addr_count(const char *raw, size_t len)
{
	size_t at = 0, commas = 0, fields = 0, i = 0;
	int in = 0, quote = 0, comment = 0;

	while (i < len) {
		const char *eol = memchr(raw + i, '\n', len - i);
		size_t end = eol != NULL ? (size_t)(eol - raw) : len, j = i;

		if (end == i || (end == i + 1 && raw[i] == '\r'))
			break;
		if (raw[i] != ' ' && raw[i] != '\t') {
			in = end - i >= 3 && raw[i + 2] == ':'
			    && (g_ascii_strncasecmp(raw + i, "to", 2) == 0
			        || g_ascii_strncasecmp(raw + i, "cc", 2) == 0);
			if (in) {
				fields++;
				j = i + 3;
				quote = comment = 0;
			}
		}
		for (; in && j < end; j++) {
			if (quote) {
				if (raw[j] == '\\')
					j++;
				else if (raw[j] == '"')
					quote = 0;
			} else if (raw[j] == '"' && comment == 0) {
				quote = 1;
			} else if (raw[j] == '(') {
				comment++;
			} else if (raw[j] == ')' && comment > 0) {
				comment--;
			} else if (comment == 0 && raw[j] == '@') {
				at++;
			} else if (comment == 0 && raw[j] == ',') {
				commas++;
			}
		}
		i = end + 1;
	}
	return at > commas + fields ? at : commas + fields;
}

/*
 * Whether the headers ended without the blank line: GMime met a line that is
 * no header (and dropped it, and all after it) where no header follows and
 * no blank line came before. That line and the rest are the text a person
 * sees, so the mail is read again with the blank line put in.
 */
static int
mime_blank_line_missing(
    struct mime_parse *p, GMimeParser *parser, GMimeMessage *m, const char *raw, size_t len)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list((GMimeObject *)m);
	int n = hl != NULL ? g_mime_header_list_get_count(hl) : 0;
	size_t at = (size_t)p->bad_header_at;

	if (p->bad_header_at <= 0 || at >= len || g_mime_parser_get_headers_end(parser) >= 0)
		return 0;
	for (int i = 0; i < n; i++)
		if (g_mime_header_get_offset(g_mime_header_list_get_header_at(hl, i))
		    > p->bad_header_at)
			return 0;
	return memmem(raw, at, "\n\n", 2) == NULL && memmem(raw, at, "\n\r\n", 3) == NULL;
}

/* raw with an empty line (in its own line-end style) put in at offset at; g_malloc'd. */
static char *
mime_with_blank_line(const char *raw, size_t len, size_t at, size_t *len_r)
{
	const char *eol = at >= 2 && raw[at - 2] == '\r' ? "\r\n" : "\n";
	size_t n = strlen(eol);
	char *s = g_malloc(len + n);

	memcpy(s, raw, at);
	memcpy(s + at, eol, n);
	memcpy(s + at + n, raw + at, len - at);
	*len_r = len + n;
	return s;
}

/* Whether a top-level header holds raw 8-bit text that is no UTF-8. */
static int
mime_headers_8bit(GMimeMessage *m)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list((GMimeObject *)m);
	int n = hl != NULL ? g_mime_header_list_get_count(hl) : 0;

	for (int i = 0; i < n; i++) {
		const char *v
		    = g_mime_header_get_raw_value(g_mime_header_list_get_header_at(hl, i));

		if (v != NULL && !g_utf8_validate(v, -1, NULL))
			return 1;
	}
	return 0;
}

/*
 * The charsets to read raw 8-bit headers in: those the mail's parts declare
 * (a mail that writes its text in KOI8-R wrote its subject so too), then
 * UTF-8, then windows-1252. NULL when the mail declares none but those.
 */
static char **
mime_declared_charsets(struct mime_parse *p)
{
	GPtrArray *v = g_ptr_array_new();

	for (guint i = 0; i < p->leaves->len && v->len < 4; i++) {
		const char *cs
		    = g_mime_object_get_content_type_parameter(p->leaves->pdata[i], "charset");
		const char *name = cs != NULL ? g_mime_charset_canon_name(cs) : NULL;
		int known = name == NULL || g_ascii_strcasecmp(name, "utf-8") == 0
		    || g_ascii_strcasecmp(name, "us-ascii") == 0;

		for (guint j = 0; !known && j < v->len; j++)
			known = g_ascii_strcasecmp(v->pdata[j], name) == 0;
		if (!known)
			g_ptr_array_add(v, g_strdup(name));
	}
	if (v->len == 0) {
		g_ptr_array_free(v, TRUE);
		return NULL;
	}
	g_ptr_array_add(v, g_strdup("UTF-8"));
	g_ptr_array_add(v, g_strdup("windows-1252"));
	g_ptr_array_add(v, NULL);
	return (char **)g_ptr_array_free(v, FALSE);
}

int
email_parse(const char *raw, size_t len, const struct email_limits *lim, struct email_msg **msg_r,
    const char **error_r)
{
	static const char *fallback[] = { "UTF-8", "windows-1252", NULL };
	struct mime_parse p = { .lim = lim };
	struct email_msg *msg = NULL;
	GMimeStream *stream = NULL;
	GMimeParser *parser = NULL;
	GMimeMessage *m = NULL;
	char *fixed = NULL, **charsets = NULL;
	size_t rough, fixed_len = 0;
	int rc = -1;

	*msg_r = NULL;
	if (len > lim->max_message)
		return mime_fail(
		    error_r, "message is %zu bytes, over the limit of %zu", len, lim->max_message);
	if (len == 0)
		return mime_fail(error_r, "not a mail message: no headers");
	if ((rough = mime_rough_addr_count(raw, len)) / 2 > lim->max_addresses)
		return mime_fail(error_r,
		    "To and Cc hold about %zu addresses, over the limit of %u", rough,
		    lim->max_addresses);

	p.opts = g_mime_parser_options_new();
	/* raw 8-bit headers: UTF-8 (RFC 6532) when valid, else what Outlook sends */
	g_mime_parser_options_set_fallback_charsets(p.opts, fallback);
	g_mime_parser_options_set_warning_callback(p.opts, mime_warning_cb, &p);
	p.leaves = g_ptr_array_new();
	p.contents = g_ptr_array_new_with_free_func((GDestroyNotify)g_byte_array_unref);

	/* A second reading only for what GMime leaves to the caller; see the helpers. */
	for (int pass = 0;; pass++) {
		p.bad_header_at = -1;
		p.nesting_overflow = 0;
		g_ptr_array_set_size(p.leaves, 0);
		stream = g_mime_stream_mem_new_with_buffer(
		    fixed != NULL ? fixed : raw, fixed != NULL ? fixed_len : len);
		parser = g_mime_parser_new_with_stream(stream);
		g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
		m = g_mime_parser_construct_message(parser, p.opts);
		if (m == NULL || !mime_headers_has_mail(m)) {
			mime_fail(error_r, "not a mail message: no headers");
			goto fail;
		}
		if (p.nesting_overflow) {
			mime_fail(error_r, "MIME nesting is deeper than %u levels", lim->max_depth);
			goto fail;
		}
		if (mime_walk_tree(&p, m, error_r) < 0)
			goto fail;
		if (pass > 0)
			break;
		if (mime_blank_line_missing(&p, parser, m, raw, len))
			fixed = mime_with_blank_line(raw, len, (size_t)p.bad_header_at, &fixed_len);
		if (mime_headers_8bit(m) && (charsets = mime_declared_charsets(&p)) != NULL)
			g_mime_parser_options_set_fallback_charsets(
			    p.opts, (const char **)charsets);
		if (fixed == NULL && charsets == NULL)
			break;
		g_object_unref(m);
		g_object_unref(parser);
		g_object_unref(stream);
		m = NULL;
		parser = NULL;
		stream = NULL;
	}
	if ((msg = calloc(1, sizeof(*msg))) == NULL) {
		mime_fail(error_r, "out of memory");
		goto fail;
	}
	if (mime_headers_addrs(msg, m, lim, error_r) < 0)
		goto fail;
	mime_headers_fields(msg, m, p.opts);
	mime_text_body(msg, &p);
	if (msg->subject == NULL || msg->body == NULL) {
		mime_fail(error_r, "out of memory");
		goto fail;
	}
	if (mime_attach_collect(msg, &p, error_r) < 0)
		goto fail;
	msg->auto_reason = mime_headers_auto_reason(msg, m);
	if (mime_attach_store(msg, &p, raw, len, error_r) < 0)
		goto fail;
	*msg_r = msg;
	msg = NULL;
	rc = 0;
fail:
	email_msg_free(msg);
	if (m != NULL)
		g_object_unref(m);
	if (parser != NULL)
		g_object_unref(parser);
	if (stream != NULL)
		g_object_unref(stream);
	g_ptr_array_free(p.contents, TRUE);
	g_ptr_array_free(p.leaves, TRUE);
	/* after the message: its headers decode lazily with these options */
	g_mime_parser_options_free(p.opts);
	g_strfreev(charsets);
	g_free(fixed);
	return rc;
}

static void
mime_addr_free(struct email_addr *a)
{
	free(a->name);
	free(a->addr);
}

void
email_msg_free(struct email_msg *m)
{
	if (m == NULL)
		return;
	mime_addr_free(&m->from);
	for (size_t i = 0; i < m->n_to; i++)
		mime_addr_free(&m->to[i]);
	free(m->to);
	for (size_t i = 0; i < m->n_cc; i++)
		mime_addr_free(&m->cc[i]);
	free(m->cc);
	free(m->reply_to);
	free(m->return_path);
	free(m->subject);
	free(m->body);
	free(m->message_id);
	free(m->in_reply_to);
	for (size_t i = 0; i < m->n_references; i++)
		free(m->references[i]);
	free(m->references);
	free(m->token);
	for (size_t i = 0; i < m->n_attachments; i++) {
		free(m->attachments[i].filename);
		free(m->attachments[i].content_type);
	}
	free(m->attachments);
	free(m);
}
