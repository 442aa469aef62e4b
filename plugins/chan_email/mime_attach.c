/*
 * mime_attach.c: attachments and blobs: file names made safe, limits on
 * sizes, each attachment and the raw mail kept by SHA-256, and the mail's
 * own key (its SHA-256 without the trace fields).
 */
#include "config.h"

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkstemp, fsync, strndup when built by hand with -std=c11 */
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include <sodium.h>
#include "email.h"
#include "mime.h"

/* A filename longer than this is cut (at a character boundary) for display. */
#define MIME_FILENAME_MAX 200

static void
mime_sha256_hex(const void *data, size_t len, char hex[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, data, len);
	sodium_bin2hex(hex, 65, h, sizeof(h));
}

static char *
mime_filename(GMimeObject *o)
{
	const char *fn = NULL;
	char *line;
	size_t n = 0;

	if (GMIME_IS_MESSAGE_PART(o))
		return strdup("message.eml");
	if (GMIME_IS_PART(o))
		fn = g_mime_part_get_filename((GMimePart *)o);
	if (fn == NULL || (line = mime_text_one_line(fn, 1)) == NULL)
		return strdup("attachment");
	for (char *q = line; *q != '\0'; q++)
		if (*q != '/' && *q != '\\')
			line[n++] = *q;
	line[n] = '\0';
	if (n > MIME_FILENAME_MAX) {
		char *end = line + MIME_FILENAME_MAX;

		/* cut before a UTF-8 continuation byte */
		while (end > line && ((unsigned char)*end & 0xc0) == 0x80)
			end--;
		*end = '\0';
	}
	g_strstrip(line);
	if (*line == '\0' || strcmp(line, ".") == 0 || strcmp(line, "..") == 0) {
		free(line);
		return strdup("attachment");
	}
	return line;
}

int
mime_attach_collect(struct email_msg *msg, struct mime_parse *p, const char **error_r)
{
	const struct email_limits *lim = p->lim;

	msg->attachments
	    = calloc(p->leaves->len > 0 ? p->leaves->len : 1, sizeof(*msg->attachments));
	if (msg->attachments == NULL)
		return mime_fail(error_r, "out of memory");
	for (guint i = 0; i < p->leaves->len; i++) {
		GMimeObject *o = p->leaves->pdata[i];
		struct email_attachment *a;
		GByteArray *ba;
		char *ct;

		if (o == p->body_part)
			continue;
		if (!GMIME_IS_MESSAGE_PART(o) && !mime_walk_is_attachmentish(o)
		    && (mime_walk_is_type(o, "text", "plain")
		        || mime_walk_is_type(o, "text", "html")))
			continue;
		ba = mime_walk_content(o);
		g_ptr_array_add(p->contents, ba);
		if (ba->len > lim->max_attachment)
			return mime_fail(error_r,
			    "an attachment is %u bytes, over the limit of %zu", ba->len,
			    lim->max_attachment);
		p->total += ba->len;
		if (p->total > lim->max_total)
			return mime_fail(error_r,
			    "attachments total at least %zu bytes, over the limit of %zu", p->total,
			    lim->max_total);
		a = &msg->attachments[msg->n_attachments++];
		a->size = ba->len;
		a->filename = mime_filename(o);
		ct = g_mime_content_type_get_mime_type(g_mime_object_get_content_type(o));
		for (char *c = ct; c != NULL && *c != '\0'; c++)
			*c = g_ascii_tolower(*c);
		a->content_type = mime_text_one_line(ct != NULL ? ct : "", 0);
		g_free(ct);
		mime_sha256_hex(ba->data, ba->len, a->sha256);
		if (a->filename == NULL || a->content_type == NULL)
			return mime_fail(error_r, "out of memory");
	}
	return 0;
}

/*
 * The SHA-256 of raw from its first header field that is not a trace field.
 * Servers prepend those (RFC 5321 4.4) for each delivery, so two copies of one
 * mail in two mailboxes differ there and only there.
 */
static void
mime_mail_sha256(const char *raw, size_t len, char hex[65])
{
	static const char *const trace[] = { "return-path", "received", "delivered-to",
		"x-original-to", "envelope-to", "x-envelope-to", "x-delivered-to",
		"authentication-results", "received-spf", "arc-seal", "arc-message-signature",
		"arc-authentication-results", "x-spam-flag", "x-spam-status", "x-spam-score",
		"x-spam-level", "x-virus-scanned", NULL };
	size_t i = 0;

	while (i < len) {
		const char *colon = memchr(raw + i, ':', len - i);
		const char *const *t;
		size_t name = colon != NULL ? (size_t)(colon - raw) - i : 0;

		for (t = trace; colon != NULL && *t != NULL; t++)
			if (strlen(*t) == name && g_ascii_strncasecmp(raw + i, *t, name) == 0)
				break;
		if (colon == NULL || *t == NULL)
			break;
		/* the field and its folded continuation lines */
		do {
			const char *eol = memchr(raw + i, '\n', len - i);

			i = eol != NULL ? (size_t)(eol - raw) + 1 : len;
		} while (i < len && (raw[i] == ' ' || raw[i] == '\t'));
	}
	mime_sha256_hex(raw + i, len - i, hex);
}

int
mime_attach_store(
    struct email_msg *msg, struct mime_parse *p, const char *raw, size_t len, const char **error_r)
{
	const struct email_limits *lim = p->lim;

	mime_sha256_hex(raw, len, msg->raw_sha256);
	mime_mail_sha256(raw, len, msg->mail_sha256);
	msg->raw_size = len;
	if (lim->blob_put == NULL)
		return 0;
	for (guint i = 0; i < p->contents->len; i++) {
		GByteArray *ba = p->contents->pdata[i];

		if (lim->blob_put(
		        lim->blob_arg, ba->data, ba->len, msg->attachments[i].sha256, error_r)
		    < 0)
			return -1;
	}
	return lim->blob_put(lim->blob_arg, raw, len, msg->raw_sha256, error_r);
}
