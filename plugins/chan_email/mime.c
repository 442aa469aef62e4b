/* mime.c: turns a raw mail into a struct email_msg with GMime 3; blobs by SHA-256. */
#include "config.h"

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkstemp, fsync, strndup when built by hand with -std=c11 */
#endif

#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmime/gmime.h>
#include <sodium.h>

#include "email.h"
#include "mime.h"

/* A filename longer than this is cut (at a character boundary) for display. */
#define MIME_FILENAME_MAX 200

struct mime_frame {
	GMimeObject *obj;
	unsigned int depth;
	int inner; /* inside an attached message: counted for depth, not read */
};

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

static void
mime_sha256_hex(const void *data, size_t len, char hex[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, data, len);
	sodium_bin2hex(hex, 65, h, sizeof(h));
}

/* Copies a GLib string into malloc'd memory, so that email_msg_free() can use free(). */
static char *
mime_take(char *gstr)
{
	char *s;

	if (gstr == NULL)
		return NULL;
	s = strdup(gstr);
	g_free(gstr);
	return s;
}

/*
 * One line of display text: invalid UTF-8 replaced, every run of white space
 * and control characters (CR, LF, tab, C1) made one space, ends trimmed. This
 * is what keeps an encoded CR/LF in a subject from reaching any header.
 */
char *
mime_one_line(const char *in, int drop_format)
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

/* An address as given, or NULL when it holds something no address can hold. */
static char *
mime_clean_addr(const char *a)
{
	const unsigned char *p;

	if (a == NULL || *a == '\0' || !g_utf8_validate(a, -1, NULL))
		return NULL;
	for (p = (const unsigned char *)a; *p != '\0'; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>')
			return NULL;
	return strdup(a);
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

/* ---- parsing ------------------------------------------------------------------------ */

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

/* The decoded content of a part or an attached message (transfer encoding undone). */
static GByteArray *
mime_content(GMimeObject *obj)
{
	GMimeStream *mem = g_mime_stream_mem_new();
	GByteArray *ba;

	if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *inner = g_mime_message_part_get_message((GMimeMessagePart *)obj);

		if (inner != NULL)
			g_mime_object_write_to_stream((GMimeObject *)inner, NULL, mem);
	} else if (GMIME_IS_PART(obj)) {
		GMimeDataWrapper *dw = g_mime_part_get_content((GMimePart *)obj);

		if (dw != NULL)
			g_mime_data_wrapper_write_to_stream(dw, mem);
	}
	g_mime_stream_mem_set_owner((GMimeStreamMem *)mem, FALSE);
	ba = g_mime_stream_mem_get_byte_array((GMimeStreamMem *)mem);
	g_object_unref(mem);
	return ba;
}

static int
mime_is_type(GMimeObject *obj, const char *type, const char *subtype)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);

	return ct != NULL && g_mime_content_type_is_type(ct, type, subtype);
}

static int
mime_is_attachmentish(GMimeObject *obj)
{
	const char *disp = g_mime_object_get_disposition(obj);

	if (disp != NULL && g_ascii_strcasecmp(disp, "attachment") == 0)
		return 1;
	return GMIME_IS_PART(obj) && g_mime_part_get_filename((GMimePart *)obj) != NULL;
}

/*
 * Whether a person sees the part as text in the mail: a text part not marked
 * as an attachment, and without a file name unless it says "inline" (clients
 * show "Content-Disposition: inline; filename=..." text in place).
 */
static int
mime_is_shown_text(GMimeObject *obj)
{
	const char *disp = g_mime_object_get_disposition(obj);

	if (!GMIME_IS_PART(obj) || (disp != NULL && g_ascii_strcasecmp(disp, "attachment") == 0))
		return 0;
	return g_mime_part_get_filename((GMimePart *)obj) == NULL
	    || (disp != NULL && g_ascii_strcasecmp(disp, "inline") == 0);
}

/*
 * "Content-Type: text" without a subtype: GMime gives up on the whole field
 * (application/octet-stream, the charset lost). RFC 2045 has no bare "text",
 * but a person reading the mail sees text: it is read as text/plain with the
 * field's parameters, which GMime parses.
 */
static void
mime_fix_bare_text(GMimeObject *obj, GMimeParserOptions *opts)
{
	const char *v = g_mime_object_get_header(obj, "Content-Type");
	GMimeContentType *ct;
	char *fixed;

	if (v == NULL || !GMIME_IS_PART(obj) || !mime_is_type(obj, "application", "octet-stream"))
		return;
	v += strspn(v, " \t\r\n");
	if (g_ascii_strncasecmp(v, "text", 4) != 0)
		return;
	v += 4;
	if (*v == '/')
		v++;
	v += strspn(v, " \t\r\n");
	if (*v != '\0' && *v != ';')
		return;
	fixed = g_strconcat("text/plain", v, NULL);
	ct = g_mime_content_type_parse(opts, fixed);
	g_free(fixed);
	if (ct == NULL)
		return;
	g_mime_object_set_content_type(obj, ct);
	g_object_unref(ct);
}

/*
 * Walks the tree with an explicit stack, so that depth is checked without
 * recursion; collects the leaves outside attached messages in document order.
 */
static int
mime_walk(struct mime_parse *p, GMimeMessage *m, const char **error_r)
{
	GArray *stack = g_array_new(FALSE, FALSE, sizeof(struct mime_frame));
	struct mime_frame f = { g_mime_message_get_mime_part(m), 1, 0 };
	int rc = 0;

	if (f.obj != NULL)
		g_array_append_val(stack, f);
	while (stack->len > 0) {
		f = g_array_index(stack, struct mime_frame, stack->len - 1);
		g_array_set_size(stack, stack->len - 1);
		if (f.depth > p->lim->max_depth) {
			rc = mime_fail(error_r, "MIME nesting is deeper than %u levels",
			    p->lim->max_depth);
			break;
		}
		if (GMIME_IS_MULTIPART(f.obj)) {
			GMimeMultipart *mp = (GMimeMultipart *)f.obj;

			for (int i = g_mime_multipart_get_count(mp) - 1; i >= 0; i--) {
				struct mime_frame c
				    = { g_mime_multipart_get_part(mp, i), f.depth + 1, f.inner };

				if (c.obj != NULL)
					g_array_append_val(stack, c);
			}
			continue;
		}
		if (!f.inner) {
			mime_fix_bare_text(f.obj, p->opts);
			g_ptr_array_add(p->leaves, f.obj);
		}
		if (GMIME_IS_MESSAGE_PART(f.obj)) {
			GMimeMessage *inner
			    = g_mime_message_part_get_message((GMimeMessagePart *)f.obj);
			struct mime_frame c
			    = { inner != NULL ? g_mime_message_get_mime_part(inner) : NULL,
				      f.depth + 1, 1 };

			if (c.obj != NULL)
				g_array_append_val(stack, c);
		}
	}
	g_array_free(stack, TRUE);
	return rc;
}

/* Appends the mailboxes of an address list (group members included) to *v. */
static void
mime_addrs(InternetAddressList *list, struct email_addr **v, size_t *n)
{
	int len = list != NULL ? internet_address_list_length(list) : 0;

	for (int i = 0; i < len; i++) {
		InternetAddress *a = internet_address_list_get_address(list, i);
		InternetAddressList *members = NULL;
		int nm = 1;

		if (INTERNET_ADDRESS_IS_GROUP(a)) {
			members = internet_address_group_get_members((InternetAddressGroup *)a);
			nm = internet_address_list_length(members);
		}
		for (int j = 0; j < nm; j++) {
			InternetAddress *mb
			    = members != NULL ? internet_address_list_get_address(members, j) : a;
			struct email_addr *e;
			const char *name;

			if (!INTERNET_ADDRESS_IS_MAILBOX(mb))
				continue;
			e = &(*v)[(*n)++];
			name = internet_address_get_name(mb);
			e->name = name != NULL && *name != '\0' ? mime_one_line(name, 0) : NULL;
			e->addr = mime_clean_addr(
			    internet_address_mailbox_get_addr((InternetAddressMailbox *)mb));
		}
	}
}

static size_t
mime_count_addrs(InternetAddressList *list)
{
	int len = list != NULL ? internet_address_list_length(list) : 0;
	size_t n = 0;

	for (int i = 0; i < len; i++) {
		InternetAddress *a = internet_address_list_get_address(list, i);

		if (INTERNET_ADDRESS_IS_GROUP(a))
			n += internet_address_list_length(
			    internet_address_group_get_members((InternetAddressGroup *)a));
		else
			n++;
	}
	return n;
}

static int
mime_fill_addrs(struct email_msg *msg, GMimeMessage *m, const struct email_limits *lim, const char **error_r)
{
	InternetAddressList *to = g_mime_message_get_addresses(m, GMIME_ADDRESS_TYPE_TO);
	InternetAddressList *cc = g_mime_message_get_addresses(m, GMIME_ADDRESS_TYPE_CC);
	size_t nto = mime_count_addrs(to), ncc = mime_count_addrs(cc);
	struct email_addr *from = NULL, *rt = NULL;
	size_t nfrom = 0, nrt = 0;

	if (nto + ncc > lim->max_addresses)
		return mime_fail(error_r, "To and Cc hold %zu addresses, over the limit of %u",
		    nto + ncc, lim->max_addresses);
	if (nto > 0 && (msg->to = calloc(nto, sizeof(*msg->to))) == NULL)
		return mime_fail(error_r, "out of memory");
	if (ncc > 0 && (msg->cc = calloc(ncc, sizeof(*msg->cc))) == NULL)
		return mime_fail(error_r, "out of memory");
	mime_addrs(to, &msg->to, &msg->n_to);
	mime_addrs(cc, &msg->cc, &msg->n_cc);

	/* From and Reply-To: only the first mailbox counts */
	nfrom = mime_count_addrs(g_mime_message_get_from(m));
	if (nfrom > 0 && (from = calloc(nfrom, sizeof(*from))) != NULL) {
		size_t k = 0;

		mime_addrs(g_mime_message_get_from(m), &from, &k);
		if (k > 0)
			msg->from = from[0];
		for (size_t i = 1; i < k; i++) {
			free(from[i].name);
			free(from[i].addr);
		}
		free(from);
	}
	nrt = mime_count_addrs(g_mime_message_get_reply_to(m));
	if (nrt > 0 && (rt = calloc(nrt, sizeof(*rt))) != NULL) {
		size_t k = 0;

		mime_addrs(g_mime_message_get_reply_to(m), &rt, &k);
		for (size_t i = 0; i < k; i++) {
			if (msg->reply_to == NULL && rt[i].addr != NULL) {
				msg->reply_to = rt[i].addr;
				rt[i].addr = NULL;
			}
			free(rt[i].name);
			free(rt[i].addr);
		}
		free(rt);
	}
	return 0;
}

static char *
mime_return_path(const char *v)
{
	const char *lt, *gt;
	char *s, *out;
	size_t o = 0;

	if (v == NULL)
		return NULL;
	if ((lt = strchr(v, '<')) != NULL && (gt = strchr(lt, '>')) != NULL)
		s = strndup(lt + 1, (size_t)(gt - lt - 1));
	else
		s = strdup(v);
	if (s == NULL)
		return NULL;
	out = s;
	for (char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p > ' ' && *p != 0x7f)
			out[o++] = *p;
	out[o] = '\0';
	if (!g_utf8_validate(out, -1, NULL)) {
		free(s);
		return NULL;
	}
	return out;
}

static void
mime_fill_ids(struct email_msg *msg, GMimeMessage *m, GMimeParserOptions *opts)
{
	GMimeObject *obj = (GMimeObject *)m;
	const char *v;

	msg->message_id = mime_clean_addr(g_mime_message_get_message_id(m));
	if ((v = g_mime_object_get_header(obj, "In-Reply-To")) != NULL) {
		char *id = g_mime_utils_decode_message_id(v);

		msg->in_reply_to = mime_clean_addr(id);
		g_free(id);
	}
	if ((v = g_mime_object_get_header(obj, "References")) != NULL) {
		GMimeReferences *refs = g_mime_references_parse(opts, v);
		int n = refs != NULL ? g_mime_references_length(refs) : 0;

		if (n > 0)
			msg->references = calloc((size_t)n, sizeof(char *));
		for (int i = 0; i < n && msg->references != NULL; i++) {
			char *id = mime_clean_addr(g_mime_references_get_message_id(refs, i));

			if (id != NULL)
				msg->references[msg->n_references++] = id;
		}
		if (refs != NULL)
			g_mime_references_free(refs);
	}
}

/* "2026-000123" from "[loket 2026-000123]" anywhere in the subject. */
static char *
mime_token(const char *subj)
{
	for (const char *p = strchr(subj, '['); p != NULL; p = strchr(p + 1, '[')) {
		const char *q = p + 1;
		int ok = 1;

		if (g_ascii_strncasecmp(q, "loket", 5) != 0 || q[5] != ' ')
			continue;
		q += 5;
		while (*q == ' ')
			q++;
		for (int i = 0; i < 11 && ok; i++)
			ok = i == 4 ? q[i] == '-' : g_ascii_isdigit(q[i]);
		if (ok && q[11] == ']')
			return strndup(q, 11);
	}
	return NULL;
}

/* Whether addr's local part starts with prefix or ends with suffix (either may be NULL). */
static int
mime_local_part_is(const char *addr, const char *prefix, const char *suffix)
{
	const char *at = addr != NULL ? strrchr(addr, '@') : NULL;
	size_t n = at != NULL ? (size_t)(at - addr) : 0, k;

	if (at == NULL)
		return 0;
	if (prefix != NULL && n > (k = strlen(prefix)) && g_ascii_strncasecmp(addr, prefix, k) == 0)
		return 1;
	return suffix != NULL && n > (k = strlen(suffix))
	    && g_ascii_strncasecmp(at - k, suffix, k) == 0;
}

/* The first mailbox's address of the Sender field; NULL when none. */
static const char *
mime_sender_addr(GMimeMessage *m)
{
	InternetAddressList *l = g_mime_message_get_sender(m);
	InternetAddress *a = l != NULL && internet_address_list_length(l) > 0
	    ? internet_address_list_get_address(l, 0)
	    : NULL;

	return a != NULL && INTERNET_ADDRESS_IS_MAILBOX(a)
	    ? internet_address_mailbox_get_addr((InternetAddressMailbox *)a)
	    : NULL;
}

/*
 * A mailing list robot that sets none of the headers above: Mailman digests
 * and admin mail come from LIST-request@, LISTSERV and Majordomo posts carry
 * Sender (and the envelope) owner-LIST@ or LIST-owner@, Mailman's LIST-bounces@,
 * and Mailman stamps X-Mailman-Version on what it sends.
 */
static const char *
mime_list_reason(const struct email_msg *msg, GMimeMessage *m)
{
	const char *sender = mime_sender_addr(m);

	if (mime_local_part_is(msg->from.addr, NULL, "-request")
	    || mime_local_part_is(sender, NULL, "-request"))
		return "list-request";
	if (mime_local_part_is(sender, "owner-", "-owner")
	    || mime_local_part_is(sender, NULL, "-bounces")
	    || mime_local_part_is(msg->return_path, "owner-", "-owner")
	    || mime_local_part_is(msg->return_path, NULL, "-bounces"))
		return "list-owner";
	if (g_mime_object_get_header((GMimeObject *)m, "X-Mailman-Version") != NULL)
		return "x-mailman";
	return NULL;
}

static const char *
mime_auto_reason(const struct email_msg *msg, GMimeMessage *m)
{
	GMimeObject *obj = (GMimeObject *)m;
	GMimeObject *top = g_mime_message_get_mime_part(m);
	const char *v;

	if (top != NULL && mime_is_type(top, "multipart", "report"))
		return "bounce";
	if (msg->from.addr != NULL) {
		const char *at = strchr(msg->from.addr, '@');
		size_t n = at != NULL ? (size_t)(at - msg->from.addr) : strlen(msg->from.addr);

		if ((n == 13 && g_ascii_strncasecmp(msg->from.addr, "mailer-daemon", n) == 0)
		    || (n == 10 && g_ascii_strncasecmp(msg->from.addr, "postmaster", n) == 0))
			return "mailer-daemon";
	}
	if (msg->return_path != NULL && *msg->return_path == '\0')
		return "return-path";
	if ((v = g_mime_object_get_header(obj, "Auto-Submitted")) != NULL) {
		v += strspn(v, " \t\r\n");
		if (g_ascii_strncasecmp(v, "no", 2) != 0
		    || (v[2] != '\0' && strchr(" \t\r\n;(", v[2]) == NULL))
			return "auto-submitted";
	}
	if (g_mime_object_get_header(obj, "X-Autoreply") != NULL
	    || g_mime_object_get_header(obj, "X-Autorespond") != NULL)
		return "x-autoreply";
	if (g_mime_object_get_header(obj, "X-Auto-Response-Suppress") != NULL)
		return "x-auto-response-suppress";
	if ((v = g_mime_object_get_header(obj, "Precedence")) != NULL) {
		char *p = g_strstrip(g_strdup(v));
		int bulk = g_ascii_strcasecmp(p, "bulk") == 0 || g_ascii_strcasecmp(p, "junk") == 0
		    || g_ascii_strcasecmp(p, "list") == 0;

		g_free(p);
		if (bulk)
			return "precedence";
	}
	if (g_mime_object_get_header(obj, "List-Id") != NULL)
		return "list-id";
	return mime_list_reason(msg, m);
}

static int
mime_has_mail_headers(GMimeMessage *m)
{
	static const char *const names[]
	    = { "From", "To", "Cc", "Subject", "Date", "Message-ID", "Received", "Return-Path",
		      "MIME-Version", "Sender", "Reply-To", "In-Reply-To", "References", NULL };

	for (const char *const *n = names; *n != NULL; n++)
		if (g_mime_object_get_header((GMimeObject *)m, *n) != NULL)
			return 1;
	return 0;
}

static void
mime_body(struct email_msg *msg, struct mime_parse *p)
{
	GMimeObject *html = NULL;
	const char *cs;
	GByteArray *ba;
	char *text;

	for (guint i = 0; i < p->leaves->len && p->body_part == NULL; i++) {
		GMimeObject *o = p->leaves->pdata[i];

		if (!mime_is_shown_text(o))
			continue;
		if (mime_is_type(o, "text", "plain"))
			p->body_part = o;
		else if (html == NULL && mime_is_type(o, "text", "html"))
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
	ba = mime_content(p->body_part);
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
	if (fn == NULL || (line = mime_one_line(fn, 1)) == NULL)
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

static int
mime_attachments(struct email_msg *msg, struct mime_parse *p, const char **error_r)
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
		if (!GMIME_IS_MESSAGE_PART(o) && !mime_is_attachmentish(o)
		    && (mime_is_type(o, "text", "plain") || mime_is_type(o, "text", "html")))
			continue;
		ba = mime_content(o);
		g_ptr_array_add(p->contents, ba);
		if (ba->len > lim->max_attachment)
			return mime_fail(error_r, "an attachment is %u bytes, over the limit of %zu", ba->len,
			    lim->max_attachment);
		p->total += ba->len;
		if (p->total > lim->max_total)
			return mime_fail(error_r, "attachments total at least %zu bytes, over the limit of %zu", p->total,
			    lim->max_total);
		a = &msg->attachments[msg->n_attachments++];
		a->size = ba->len;
		a->filename = mime_filename(o);
		ct = g_mime_content_type_get_mime_type(g_mime_object_get_content_type(o));
		for (char *c = ct; c != NULL && *c != '\0'; c++)
			*c = g_ascii_tolower(*c);
		a->content_type = mime_one_line(ct != NULL ? ct : "", 0);
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

static int
mime_store(struct email_msg *msg, struct mime_parse *p, const char *raw, size_t len, const char **error_r)
{
	const struct email_limits *lim = p->lim;

	mime_sha256_hex(raw, len, msg->raw_sha256);
	mime_mail_sha256(raw, len, msg->mail_sha256);
	msg->raw_size = len;
	if (lim->blob_put == NULL)
		return 0;
	for (guint i = 0; i < p->contents->len; i++) {
		GByteArray *ba = p->contents->pdata[i];

		if (lim->blob_put(lim->blob_arg, ba->data, ba->len, msg->attachments[i].sha256, error_r)
		    < 0)
			return -1;
	}
	return lim->blob_put(lim->blob_arg, raw, len, msg->raw_sha256, error_r);
}

static void
mime_fill_header_fields(struct email_msg *msg, GMimeMessage *m, GMimeParserOptions *opts)
{
	const char *subj = g_mime_message_get_subject(m);
	GDateTime *date = g_mime_message_get_date(m);

	msg->subject = mime_one_line(subj != NULL ? subj : "", 0);
	msg->return_path
	    = mime_return_path(g_mime_object_get_header((GMimeObject *)m, "Return-Path"));
	mime_fill_ids(msg, m, opts);
	if (msg->subject != NULL)
		msg->token = mime_token(msg->subject);
	if (date != NULL)
		msg->date_ms = (int64_t)g_date_time_to_unix(date) * 1000;
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
		return mime_fail(error_r, "message is %zu bytes, over the limit of %zu", len,
		    lim->max_message);
	if (len == 0)
		return mime_fail(error_r, "not a mail message: no headers");
	if ((rough = mime_rough_addr_count(raw, len)) / 2 > lim->max_addresses)
		return mime_fail(error_r, "To and Cc hold about %zu addresses, over the limit of %u", rough,
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
		if (m == NULL || !mime_has_mail_headers(m)) {
			mime_fail(error_r, "not a mail message: no headers");
			goto fail;
		}
		if (p.nesting_overflow) {
			mime_fail(error_r, "MIME nesting is deeper than %u levels", lim->max_depth);
			goto fail;
		}
		if (mime_walk(&p, m, error_r) < 0)
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
	if (mime_fill_addrs(msg, m, lim, error_r) < 0)
		goto fail;
	mime_fill_header_fields(msg, m, p.opts);
	mime_body(msg, &p);
	if (msg->subject == NULL || msg->body == NULL) {
		mime_fail(error_r, "out of memory");
		goto fail;
	}
	if (mime_attachments(msg, &p, error_r) < 0)
		goto fail;
	msg->auto_reason = mime_auto_reason(msg, m);
	if (mime_store(msg, &p, raw, len, error_r) < 0)
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

