/*
 * mime_headers.c: what the header fields say: addresses, ids and threading
 * hints, the loket token in a subject, and whether the mail is automatic.
 */
#include "config.h"

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkstemp, fsync, strndup when built by hand with -std=c11 */
#endif

#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "email.h"
#include "mime.h"

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
			e->name
			    = name != NULL && *name != '\0' ? mime_text_one_line(name, 0) : NULL;
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

int
mime_headers_addrs(
    struct email_msg *msg, GMimeMessage *m, const struct email_limits *lim, const char **error_r)
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

const char *
mime_headers_auto_reason(const struct email_msg *msg, GMimeMessage *m)
{
	GMimeObject *obj = (GMimeObject *)m;
	GMimeObject *top = g_mime_message_get_mime_part(m);
	const char *v;

	if (top != NULL && mime_walk_is_type(top, "multipart", "report"))
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

int
mime_headers_has_mail(GMimeMessage *m)
{
	static const char *const names[]
	    = { "From", "To", "Cc", "Subject", "Date", "Message-ID", "Received", "Return-Path",
		      "MIME-Version", "Sender", "Reply-To", "In-Reply-To", "References", NULL };

	for (const char *const *n = names; *n != NULL; n++)
		if (g_mime_object_get_header((GMimeObject *)m, *n) != NULL)
			return 1;
	return 0;
}

void
mime_headers_fields(struct email_msg *msg, GMimeMessage *m, GMimeParserOptions *opts)
{
	const char *subj = g_mime_message_get_subject(m);
	GDateTime *date = g_mime_message_get_date(m);

	msg->subject = mime_text_one_line(subj != NULL ? subj : "", 0);
	msg->return_path
	    = mime_return_path(g_mime_object_get_header((GMimeObject *)m, "Return-Path"));
	mime_fill_ids(msg, m, opts);
	if (msg->subject != NULL)
		msg->token = mime_token(msg->subject);
	if (date != NULL)
		msg->date_ms = (int64_t)g_date_time_to_unix(date) * 1000;
}
