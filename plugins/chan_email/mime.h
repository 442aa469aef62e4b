/* mime.h: what the mime*.c files share inside the email plugin. */
#ifndef LOKET_CHAN_EMAIL_MIME_H
#define LOKET_CHAN_EMAIL_MIME_H

#include <stddef.h>

#include <gmime/gmime.h>

struct email_limits;
struct email_msg;

/* One reading of a mail: what email_parse hands from step to step. */
struct mime_parse {
	const struct email_limits *lim;
	GMimeParserOptions *opts;
	int nesting_overflow;
	gint64 bad_header_at; /* where the first line that is no header is; -1: none */
	GPtrArray *leaves; /* GMimeObject *, document order, borrowed */
	GPtrArray *contents; /* GByteArray * per attachment, owned */
	GMimeObject *body_part;
	size_t total;
};

/* mime.c */
/* Sets *error_r (email_error); returns -1, so a caller can "return mime_fail(...)". */
int mime_fail(const char **error_r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Copies a GLib string into malloc'd memory (email_msg_free uses free()); takes over gstr. */
char *mime_take(char *gstr);

/* mime_walk.c */
/*
 * Walks m's MIME tree into p->leaves (document order), at most
 * p->lim->max_depth deep; -1 with *error_r when deeper.
 */
int mime_walk_tree(struct mime_parse *p, GMimeMessage *m, const char **error_r);
/* The decoded content of a part or an attached message (transfer encoding undone). */
GByteArray *mime_walk_content(GMimeObject *obj);
int mime_walk_is_type(GMimeObject *obj, const char *type, const char *subtype);
int mime_walk_is_attachmentish(GMimeObject *obj);
/* Whether a person sees the part as text in the mail. */
int mime_walk_is_shown_text(GMimeObject *obj);

/* mime_text.c */
/*
 * One line of display text (malloc'd): invalid UTF-8 replaced, white space and
 * control characters made single spaces; drop_format also drops format characters.
 */
char *mime_text_one_line(const char *in, int drop_format);
/* The body a person reads, into msg->body (NULL without memory). */
void mime_text_body(struct email_msg *msg, struct mime_parse *p);

/* mime_headers.c */
/* From, To, Cc and Reply-To into msg; -1 with *error_r over the address limit. */
int mime_headers_addrs(
    struct email_msg *msg, GMimeMessage *m, const struct email_limits *lim, const char **error_r);
/* Subject, ids, threading hints, the loket token, the return path. */
void mime_headers_fields(struct email_msg *msg, GMimeMessage *m, GMimeParserOptions *opts);
/* Why the mail is automatic (a bounce, an auto-reply, a list), or NULL. */
const char *mime_headers_auto_reason(const struct email_msg *msg, GMimeMessage *m);
/* Whether m has any header field a mail has. */
int mime_headers_has_mail(GMimeMessage *m);

/* mime_attach.c */
/* The attachments into msg, within the limits; -1 with *error_r over one. */
int mime_attach_collect(struct email_msg *msg, struct mime_parse *p, const char **error_r);
/* Keeps the attachments and the raw mail as blobs; sets msg's SHA-256 keys. */
int mime_attach_store(
    struct email_msg *msg, struct mime_parse *p, const char *raw, size_t len, const char **error_r);

/* mime_html.c */
/* HTML (already UTF-8) to plain text; g_malloc'd. */
char *mime_html_to_text(const char *s);

#endif
