/*
 * mime_text.c: text extraction: declared charsets to UTF-8, display lines,
 * and the body a person reads (plain text, or HTML made plain).
 */
#include "config.h"

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkstemp, fsync, strndup when built by hand with -std=c11 */
#endif

#include <iconv.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "email.h"
#include "mime.h"

/*
 * One line of display text: invalid UTF-8 replaced, every run of white space
 * and control characters (CR, LF, tab, C1) made one space, ends trimmed. This
 * is what keeps an encoded CR/LF in a subject from reaching any header.
 */
char *
mime_text_one_line(const char *in, int drop_format)
{
	char *valid;
	const char *p;
	GString *s;
	int space = 0;

	if (in == NULL)
		return NULL;
	valid = g_utf8_make_valid(in, -1);
	s = g_string_sized_new(strlen(valid));
	for (p = valid; *p != '\0'; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);

		if (g_unichar_isspace(c) || g_unichar_iscntrl(c)) {
			space = s->len > 0;
			continue;
		}
		/* bidi overrides make "doc\u202Efdp.exe" read as "docexe.pdf" */
		if (drop_format && g_unichar_type(c) == G_UNICODE_FORMAT)
			continue;
		if (space)
			g_string_append_c(s, ' ');
		space = 0;
		g_string_append_unichar(s, c);
	}
	g_free(valid);
	return mime_take(g_string_free(s, FALSE));
}

static int
mime_is_charset(const char *cs, const char *const *names)
{
	for (; *names != NULL; names++)
		if (g_ascii_strcasecmp(cs, *names) == 0)
			return 1;
	return 0;
}

/* iconv into UTF-8, one U+FFFD for each byte that does not convert. */
static char *
mime_iconv(iconv_t cd, const char *data, size_t len)
{
	GString *s = g_string_sized_new(len + len / 2 + 16);
	char buf[4096];
	char *in = (char *)data;
	size_t inleft = len;

	while (inleft > 0) {
		char *out = buf;
		size_t outleft = sizeof(buf);
		size_t r = iconv(cd, &in, &inleft, &out, &outleft);

		g_string_append_len(s, buf, out - buf);
		if (r != (size_t)-1 || errno == E2BIG)
			continue;
		g_string_append(s, "\xEF\xBF\xBD");
		in++;
		inleft--;
		iconv(cd, NULL, NULL, NULL, NULL);
	}
	return g_string_free(s, FALSE);
}

/*
 * Decoded bytes in a declared charset to UTF-8 (g_malloc'd). ISO-8859-1 is
 * read as windows-1252, as browsers do, because Outlook labels "€" and curly
 * quotes that way; unlabelled or ASCII-labelled 8-bit text is UTF-8 when it
 * is valid, else windows-1252.
 */
static char *
mime_to_utf8(const char *charset, const char *data, size_t len)
{
	static const char *const latin1[] = { "iso-8859-1", "iso8859-1", "latin1", "l1",
		"iso_8859-1", "cp819", "ibm819", "iso-ir-100", NULL };
	static const char *const ascii[] = { "us-ascii", "ascii", "us", NULL };
	static const char *const utf8[] = { "utf-8", "utf8", NULL };
	const char *from;
	iconv_t cd;
	char *s;

	/* An empty part's byte array may have no data at all (found by tests/fuzz/fuzz_mime.c). */
	if (len == 0 || data == NULL)
		return g_strdup("");
	if (charset == NULL || mime_is_charset(charset, utf8) || mime_is_charset(charset, ascii)) {
		if (g_utf8_validate(data, len, NULL))
			return g_strndup(data, len);
		if (charset != NULL && mime_is_charset(charset, utf8))
			return g_utf8_make_valid(data, len);
		from = "WINDOWS-1252";
	} else if (mime_is_charset(charset, latin1)) {
		from = "WINDOWS-1252";
	} else {
		from = g_mime_charset_iconv_name(charset);
	}
	cd = iconv_open("UTF-8", from);
	if (cd == (iconv_t)-1)
		return g_utf8_make_valid(data, len);
	s = mime_iconv(cd, data, len);
	iconv_close(cd);
	if (!g_utf8_validate(s, -1, NULL)) {
		char *v = g_utf8_make_valid(s, -1);

		g_free(s);
		s = v;
	}
	return s;
}

/* Line ends made LF, NULs dropped; takes over s. */
static char *
mime_text_lines(char *s, size_t len)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '\r') {
			s[o++] = '\n';
			if (i + 1 < len && s[i + 1] == '\n')
				i++;
		} else if (s[i] != '\0') {
			s[o++] = s[i];
		}
	}
	s[o] = '\0';
	return s;
}

void
mime_text_body(struct email_msg *msg, struct mime_parse *p)
{
	GMimeObject *html = NULL;
	const char *cs;
	GByteArray *ba;
	char *text;

	for (guint i = 0; i < p->leaves->len && p->body_part == NULL; i++) {
		GMimeObject *o = p->leaves->pdata[i];

		if (!mime_walk_is_shown_text(o))
			continue;
		if (mime_walk_is_type(o, "text", "plain"))
			p->body_part = o;
		else if (html == NULL && mime_walk_is_type(o, "text", "html"))
			html = o;
	}
	if (p->body_part == NULL && html != NULL) {
		p->body_part = html;
		msg->body_from_html = 1;
	}
	if (p->body_part == NULL) {
		msg->body = strdup("");
		return;
	}
	ba = mime_walk_content(p->body_part);
	cs = g_mime_object_get_content_type_parameter(p->body_part, "charset");
	/* a NUL would end the C string early; only UTF-16/32 text holds NUL bytes */
	if (cs == NULL
	    || (strstr(cs, "16") == NULL && strstr(cs, "32") == NULL
	        && g_ascii_strncasecmp(cs, "ucs", 3) != 0)) {
		guint o = 0;

		for (guint i = 0; i < ba->len; i++)
			if (ba->data[i] != '\0')
				ba->data[o++] = ba->data[i];
		g_byte_array_set_size(ba, o);
	}
	text = mime_to_utf8(cs, (const char *)ba->data, ba->len);
	g_byte_array_free(ba, TRUE);
	if (text == NULL)
		text = g_strdup("");
	if (msg->body_from_html) {
		char *t = mime_html_to_text(text);

		g_free(text);
		text = t;
	}
	msg->body = mime_take(mime_text_lines(text, strlen(text)));
}
