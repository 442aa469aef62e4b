/* mime_html.c: HTML mail bodies to plain text: tags dropped, entities decoded, blocks as lines. */
#include "config.h"

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "email.h"
#include "mime.h"

struct html_out {
	GString *s;
	int space;
	int breaks;
	int no_head_end; /* "</head" was looked for and is not there */
};

static const struct {
	const char *name;
	gunichar c;
} html_entities[] = {
	{ "amp", '&' },
	{ "lt", '<' },
	{ "gt", '>' },
	{ "quot", '"' },
	{ "apos", '\'' },
	{ "nbsp", 0xa0 },
	{ "euro", 0x20ac },
	{ "copy", 0xa9 },
	{ "reg", 0xae },
	{ "trade", 0x2122 },
	{ "hellip", 0x2026 },
	{ "ndash", 0x2013 },
	{ "mdash", 0x2014 },
	{ "lsquo", 0x2018 },
	{ "rsquo", 0x2019 },
	{ "sbquo", 0x201a },
	{ "ldquo", 0x201c },
	{ "rdquo", 0x201d },
	{ "bdquo", 0x201e },
	{ "laquo", 0xab },
	{ "raquo", 0xbb },
	{ "bull", 0x2022 },
	{ "middot", 0xb7 },
	{ "deg", 0xb0 },
	{ "sect", 0xa7 },
	{ "para", 0xb6 },
	{ "shy", 0xad },
	{ "times", 0xd7 },
	{ "divide", 0xf7 },
	{ "plusmn", 0xb1 },
	{ "frac12", 0xbd },
	{ "frac14", 0xbc },
	{ "frac34", 0xbe },
	{ "sup2", 0xb2 },
	{ "sup3", 0xb3 },
	{ "micro", 0xb5 },
	{ "pound", 0xa3 },
	{ "cent", 0xa2 },
	{ "yen", 0xa5 },
	{ "iexcl", 0xa1 },
	{ "iquest", 0xbf },
	{ "ordf", 0xaa },
	{ "ordm", 0xba },
	{ "szlig", 0xdf },
	{ "thinsp", 0x2009 },
	{ "ensp", 0x2002 },
	{ "emsp", 0x2003 },
	{ "zwnj", 0x200c },
	{ "zwj", 0x200d },
	{ "Agrave", 0xc0 },
	{ "Aacute", 0xc1 },
	{ "Acirc", 0xc2 },
	{ "Atilde", 0xc3 },
	{ "Auml", 0xc4 },
	{ "Aring", 0xc5 },
	{ "AElig", 0xc6 },
	{ "Ccedil", 0xc7 },
	{ "Egrave", 0xc8 },
	{ "Eacute", 0xc9 },
	{ "Ecirc", 0xca },
	{ "Euml", 0xcb },
	{ "Igrave", 0xcc },
	{ "Iacute", 0xcd },
	{ "Icirc", 0xce },
	{ "Iuml", 0xcf },
	{ "Ntilde", 0xd1 },
	{ "Ograve", 0xd2 },
	{ "Oacute", 0xd3 },
	{ "Ocirc", 0xd4 },
	{ "Otilde", 0xd5 },
	{ "Ouml", 0xd6 },
	{ "Oslash", 0xd8 },
	{ "Ugrave", 0xd9 },
	{ "Uacute", 0xda },
	{ "Ucirc", 0xdb },
	{ "Uuml", 0xdc },
	{ "Yacute", 0xdd },
	{ "agrave", 0xe0 },
	{ "aacute", 0xe1 },
	{ "acirc", 0xe2 },
	{ "atilde", 0xe3 },
	{ "auml", 0xe4 },
	{ "aring", 0xe5 },
	{ "aelig", 0xe6 },
	{ "ccedil", 0xe7 },
	{ "egrave", 0xe8 },
	{ "eacute", 0xe9 },
	{ "ecirc", 0xea },
	{ "euml", 0xeb },
	{ "igrave", 0xec },
	{ "iacute", 0xed },
	{ "icirc", 0xee },
	{ "iuml", 0xef },
	{ "ntilde", 0xf1 },
	{ "ograve", 0xf2 },
	{ "oacute", 0xf3 },
	{ "ocirc", 0xf4 },
	{ "otilde", 0xf5 },
	{ "ouml", 0xf6 },
	{ "oslash", 0xf8 },
	{ "ugrave", 0xf9 },
	{ "uacute", 0xfa },
	{ "ucirc", 0xfb },
	{ "uuml", 0xfc },
	{ "yacute", 0xfd },
	{ "yuml", 0xff },
	{ "OElig", 0x152 },
	{ "oelig", 0x153 },
	{ "Scaron", 0x160 },
	{ "scaron", 0x161 },
	{ "Yuml", 0x178 },
	{ "fnof", 0x192 },
	{ "circ", 0x2c6 },
	{ "tilde", 0x2dc },
	{ "dagger", 0x2020 },
	{ "Dagger", 0x2021 },
	{ "permil", 0x2030 },
	{ "lsaquo", 0x2039 },
	{ "rsaquo", 0x203a },
	{ "larr", 0x2190 },
	{ "rarr", 0x2192 },
	{ "uarr", 0x2191 },
	{ "darr", 0x2193 },
};

/* HTML's reading of &#128;..&#159;: the windows-1252 characters at those bytes. */
static const gunichar html_c1[32] = { 0x20ac, 0xfffd, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021,
	0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0xfffd, 0x17d, 0xfffd, 0xfffd, 0x2018, 0x2019, 0x201c,
	0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122, 0x161, 0x203a, 0x153, 0xfffd, 0x17e, 0x178 };

static void
html_char(struct html_out *o, gunichar c)
{
	if (c == 0xa0 || g_unichar_isspace(c) || c == 0) {
		o->space = 1;
		return;
	}
	if (g_unichar_iscntrl(c))
		return;
	if (o->s->len > 0) {
		if (o->breaks > 0)
			g_string_append_len(o->s, "\n\n", o->breaks);
		else if (o->space)
			g_string_append_c(o->s, ' ');
	}
	o->breaks = 0;
	o->space = 0;
	g_string_append_unichar(o->s, c);
}

static void
html_break(struct html_out *o, int n)
{
	if (o->breaks < n)
		o->breaks = n;
}

/* Decodes the entity at s[i] == '&'; returns the index after it. */
static size_t
html_entity(struct html_out *o, const char *s, size_t i, size_t n)
{
	size_t j = i + 1, k;
	gunichar c = 0;

	if (j < n && s[j] == '#') {
		int hex = j + 1 < n && (s[j + 1] == 'x' || s[j + 1] == 'X');
		size_t start;

		j += hex ? 2 : 1;
		start = j;
		while (j < n && (hex ? g_ascii_isxdigit(s[j]) : g_ascii_isdigit(s[j]))) {
			if (c <= 0x10ffff)
				c = c * (hex ? 16 : 10)
				    + (hex ? (gunichar)g_ascii_xdigit_value(s[j])
				           : (gunichar)(s[j] - '0'));
			j++;
		}
		if (j == start) {
			html_char(o, '&');
			return i + 1;
		}
		if (j < n && s[j] == ';')
			j++;
		if (c >= 0x80 && c <= 0x9f)
			c = html_c1[c - 0x80];
		else if (c == 0 || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			c = 0xfffd;
		html_char(o, c);
		return j;
	}
	while (j < n && j - i <= 10 && g_ascii_isalnum(s[j]))
		j++;
	for (k = 0; k < G_N_ELEMENTS(html_entities); k++) {
		size_t len = strlen(html_entities[k].name);

		if (len != j - i - 1 || strncmp(s + i + 1, html_entities[k].name, len) != 0)
			continue;
		if (j < n && s[j] == ';') {
			html_char(o, html_entities[k].c);
			return j + 1;
		}
		/* without ';' only the few that old mailers leave bare */
		if (k < 6) {
			html_char(o, html_entities[k].c);
			return j;
		}
		break;
	}
	html_char(o, '&');
	return i + 1;
}

static const char *
html_find_ci(const char *s, size_t n, const char *needle)
{
	size_t m = strlen(needle);

	for (size_t i = 0; i + m <= n; i++)
		if (g_ascii_strncasecmp(s + i, needle, m) == 0)
			return s + i;
	return NULL;
}

static int
html_tag_in(const char *name, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(name, *list) == 0)
			return 1;
	return 0;
}

/* Handles the markup at s[i] == '<'; returns the index after it. */
static size_t
html_tag(struct html_out *o, const char *s, size_t i, size_t n)
{
	static const char *const para[] = { "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
		"ul", "ol", "dl", "table", "pre", "hr", NULL };
	static const char *const line[] = { "br", "div", "tr", "li", "dt", "dd", "section",
		"article", "header", "footer", "address", "center", "form", "fieldset", "caption",
		"nav", "main", "aside", "figure", "figcaption", "tbody", "thead", "tfoot", NULL };
	static const char *const hidden[]
	    = { "script", "style", "title", "head", "template", NULL };
	char name[16];
	size_t j = i + 1, nlen = 0;
	int closing = 0, quote = 0, after_eq = 0;

	if (j < n && (s[j] == '!' || s[j] == '?')) {
		const char *end;

		if (n - j >= 3 && strncmp(s + j, "!--", 3) == 0) {
			end = html_find_ci(s + j + 3, n - j - 3, "-->");
			return end != NULL ? (size_t)(end - s) + 3 : n;
		}
		end = memchr(s + j, '>', n - j);
		return end != NULL ? (size_t)(end - s) + 1 : n;
	}
	if (j < n && s[j] == '/') {
		closing = 1;
		j++;
	}
	if (j >= n || !g_ascii_isalpha(s[j])) {
		html_char(o, '<');
		return i + 1;
	}
	while (j < n && g_ascii_isalnum(s[j])) {
		if (nlen < sizeof(name) - 1)
			name[nlen++] = g_ascii_tolower(s[j]);
		j++;
	}
	name[nlen] = '\0';
	/* a quote opens a value only after '=', so a stray apostrophe does not eat the page */
	for (; j < n; j++) {
		if (quote != 0) {
			if (s[j] == quote)
				quote = 0;
		} else if (s[j] == '>') {
			break;
		} else if ((s[j] == '"' || s[j] == '\'') && after_eq) {
			quote = s[j];
		} else if (s[j] == '=') {
			after_eq = 1;
			continue;
		}
		if (!g_ascii_isspace(s[j]))
			after_eq = 0;
	}
	if (j >= n)
		return n;
	j++;
	if (html_tag_in(name, para))
		html_break(o, 2);
	else if (html_tag_in(name, line))
		html_break(o, 1);
	else if (strcmp(name, "td") == 0 || strcmp(name, "th") == 0)
		o->space = 1;
	if (!closing && s[j - 2] != '/' && html_tag_in(name, hidden)) {
		char end[20];
		const char *e;

		if (strcmp(name, "head") == 0 && o->no_head_end)
			return j;
		snprintf(end, sizeof(end), "</%s", name);
		e = html_find_ci(s + j, n - j, end);
		if (e == NULL && strcmp(name, "head") == 0) {
			/* an unclosed <head> still holds the page; looking once is enough */
			o->no_head_end = 1;
			return j;
		}
		if (e == NULL)
			return n;
		e = memchr(e, '>', n - (size_t)(e - s));
		return e != NULL ? (size_t)(e - s) + 1 : n;
	}
	return j;
}

/* HTML (already UTF-8) to plain text; g_malloc'd. */
char *
mime_html_to_text(const char *s)
{
	struct html_out o = { g_string_new(NULL), 0, 0, 0 };
	size_t n = strlen(s), i = 0;

	while (i < n) {
		if (s[i] == '<') {
			i = html_tag(&o, s, i, n);
		} else if (s[i] == '&') {
			i = html_entity(&o, s, i, n);
		} else {
			const char *next = g_utf8_next_char(s + i);

			html_char(&o, g_utf8_get_char(s + i));
			i = (size_t)(next - s);
		}
	}
	return g_string_free(o.s, FALSE);
}
