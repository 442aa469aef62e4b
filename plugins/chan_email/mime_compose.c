/* mime_compose.c: outgoing mail built with GMime: headers no field can add to, CRLF lines. */
#include "config.h"

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>
#include <sodium.h>

#include "email.h"
#include "mime.h"

/* Refuses what could end the address or start another one inside a header. */
static int
mime_addr_ok(const char *a)
{
	if (a == NULL || *a == '\0' || strchr(a, '@') == NULL || strlen(a) > 320
	    || !g_utf8_validate(a, -1, NULL))
		return 0;
	for (const unsigned char *p = (const unsigned char *)a; *p != '\0'; p++)
		if (*p <= ' ' || *p == 0x7f || strchr("<>()[],;:\"\\", *p) != NULL)
			return 0;
	return 1;
}

static int
mime_id_ok(const char *id)
{
	if (id == NULL || *id == '\0' || strlen(id) > 900 || !g_utf8_validate(id, -1, NULL))
		return 0;
	for (const unsigned char *p = (const unsigned char *)id; *p != '\0'; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>')
			return 0;
	return 1;
}

/* "<a> <b>" from "a b" (brackets in the input tolerated); NULL when an id is unfit. */
static char *
mime_references(const char *refs)
{
	char **ids = g_strsplit_set(refs, " \t\r\n", -1);
	GString *s = g_string_new(NULL);
	int ok = 1;

	for (char **id = ids; *id != NULL && ok; id++) {
		char *v = *id;
		size_t n = strlen(v);

		if (n == 0)
			continue;
		if (v[0] == '<' && v[n - 1] == '>' && n > 2) {
			v[n - 1] = '\0';
			v++;
		}
		ok = mime_id_ok(v);
		g_string_append_printf(s, "%s<%s>", s->len > 0 ? " " : "", v);
	}
	g_strfreev(ids);
	if (!ok || s->len == 0) {
		g_string_free(s, TRUE);
		return NULL;
	}
	return g_string_free(s, FALSE);
}

static GMimeObject *
mime_compose_text(const char *body)
{
	char *valid = g_utf8_make_valid(body != NULL ? body : "", -1);
	GMimePart *part = g_mime_part_new_with_type("text", "plain");
	GMimeStream *mem = g_mime_stream_mem_new_with_buffer(valid, strlen(valid));
	GMimeDataWrapper *dw
	    = g_mime_data_wrapper_new_with_stream(mem, GMIME_CONTENT_ENCODING_DEFAULT);

	g_mime_object_set_content_type_parameter((GMimeObject *)part, "charset", "utf-8");
	g_mime_part_set_content(part, dw);
	g_mime_part_set_content_encoding(
	    part, g_mime_part_get_best_content_encoding(part, GMIME_ENCODING_CONSTRAINT_7BIT));
	g_object_unref(dw);
	g_object_unref(mem);
	g_free(valid);
	return (GMimeObject *)part;
}

static GMimeObject *
mime_compose_attachment(const struct email_out_attachment *a, size_t i, const char **error_r)
{
	GMimeContentDisposition *disp;
	GMimeContentType *ct = NULL;
	GMimeDataWrapper *dw;
	GMimeStream *mem;
	GMimePart *part;
	char *data, *fn;
	const char *name;
	gsize len;

	if (a->data == NULL && a->len > 0) {
		mime_fail(error_r, "cannot read attachment %zu: its bytes are missing", i + 1);
		return NULL;
	}
	/* GMime takes over a GLib buffer: the caller's bytes are copied once. */
	data = g_malloc(a->len > 0 ? a->len : 1);
	if (a->len > 0)
		memcpy(data, a->data, a->len);
	len = a->len;
	if (a->content_type != NULL && strpbrk(a->content_type, "\r\n") == NULL)
		ct = g_mime_content_type_parse(NULL, a->content_type);
	if (ct == NULL || g_mime_content_type_get_media_type(ct) == NULL
	    || g_mime_content_type_get_media_subtype(ct) == NULL) {
		if (ct != NULL)
			g_object_unref(ct);
		ct = g_mime_content_type_new("application", "octet-stream");
	}
	fn = mime_text_one_line(a->filename != NULL ? a->filename : "", 1);
	name = fn != NULL && *fn != '\0' ? g_strdelimit(fn, "/\\", '_') : "attachment";
	disp = g_mime_content_disposition_new();
	g_mime_content_disposition_set_disposition(disp, "attachment");
	/* set up whole before handing over: GMime writes the header when it is set */
	g_mime_content_disposition_set_parameter(disp, "filename", name);
	g_mime_param_set_charset(g_mime_param_list_get_parameter(
	                             g_mime_content_disposition_get_parameters(disp), "filename"),
	    "UTF-8");
	g_mime_content_type_set_parameter(ct, "name", name);
	g_mime_param_set_charset(
	    g_mime_param_list_get_parameter(g_mime_content_type_get_parameters(ct), "name"),
	    "UTF-8");
	free(fn);
	part = g_mime_part_new();
	g_mime_object_set_content_type((GMimeObject *)part, ct);
	g_mime_object_set_content_disposition((GMimeObject *)part, disp);
	g_object_unref(disp);
	g_object_unref(ct);
	mem = g_mime_stream_mem_new_with_byte_array(g_byte_array_new_take((guint8 *)data, len));
	dw = g_mime_data_wrapper_new_with_stream(mem, GMIME_CONTENT_ENCODING_DEFAULT);
	g_mime_part_set_content(part, dw);
	g_object_unref(dw);
	g_object_unref(mem);
	g_mime_part_set_content_encoding(part, GMIME_CONTENT_ENCODING_BASE64);
	return (GMimeObject *)part;
}

/* The written message with every line end made CRLF, copied to malloc'd memory. */
static int
mime_crlf_copy(const GByteArray *ba, char **data_r, size_t *len_r)
{
	size_t n = 0, o = 0;
	char *out;

	for (guint i = 0; i < ba->len; i++)
		n += ba->data[i] == '\n' && (i == 0 || ba->data[i - 1] != '\r') ? 2 : 1;
	if ((out = malloc(n + 1)) == NULL)
		return -1;
	for (guint i = 0; i < ba->len; i++) {
		if (ba->data[i] == '\n' && (i == 0 || ba->data[i - 1] != '\r'))
			out[o++] = '\r';
		out[o++] = (char)ba->data[i];
	}
	out[o] = '\0';
	*data_r = out;
	*len_r = o;
	return 0;
}

/*
 * GMime would encode a name in the smallest charset that holds it, which can
 * be windows-1251 for a name with an en dash; UTF-8 is what every client reads.
 */
static void
mime_compose_mailbox(GMimeMessage *m, GMimeAddressType type, const char *name, const char *addr)
{
	InternetAddress *ia = internet_address_mailbox_new(name, addr);

	internet_address_set_charset(ia, "UTF-8");
	internet_address_list_add(g_mime_message_get_addresses(m, type), ia);
	g_object_unref(ia);
}

static int
mime_compose_headers(GMimeMessage *m, const struct email_out *o, const char **error_r)
{
	GMimeObject *obj = (GMimeObject *)m;
	char *from_name = mime_text_one_line(o->from_name, 0);
	char *to_name = mime_text_one_line(o->to_name, 0);
	char *subj = mime_text_one_line(o->subject != NULL ? o->subject : "", 0);
	GDateTime *date;
	int rc = -1;

	mime_compose_mailbox(m, GMIME_ADDRESS_TYPE_FROM, from_name, o->from_addr);
	mime_compose_mailbox(m, GMIME_ADDRESS_TYPE_TO, to_name, o->to_addr);
	g_mime_message_set_subject(m, subj != NULL ? subj : "", "utf-8");
	date = o->date_ms != 0 ? g_date_time_new_from_unix_utc(o->date_ms / 1000)
	                       : g_date_time_new_now_utc();
	g_mime_message_set_date(m, date);
	g_date_time_unref(date);
	g_mime_message_set_message_id(m, o->message_id);
	if (o->in_reply_to != NULL) {
		char *v;

		if (!mime_id_ok(o->in_reply_to)) {
			mime_fail(error_r, "in-reply-to is not valid");
			goto fail;
		}
		v = g_strdup_printf("<%s>", o->in_reply_to);
		g_mime_object_set_header(obj, "In-Reply-To", v, NULL);
		g_free(v);
	}
	if (o->references != NULL && strspn(o->references, " \t\r\n") < strlen(o->references)) {
		char *v = mime_references(o->references);

		if (v == NULL) {
			mime_fail(error_r, "references are not valid");
			goto fail;
		}
		g_mime_object_set_header(obj, "References", v, NULL);
		g_free(v);
	}
	if (o->auto_submitted != NULL) {
		if (strcmp(o->auto_submitted, "auto-replied") != 0
		    && strcmp(o->auto_submitted, "auto-generated") != 0) {
			mime_fail(error_r, "auto-submitted is not valid");
			goto fail;
		}
		g_mime_object_set_header(obj, "Auto-Submitted", o->auto_submitted, NULL);
		/* Exchange then sends no out-of-office answer to our answer */
		g_mime_object_set_header(obj, "X-Auto-Response-Suppress", "All", NULL);
	}
	if (o->reference != NULL) {
		char *ref = mime_text_one_line(o->reference, 0);

		g_mime_object_set_header(obj, "X-Loket-Reference", ref != NULL ? ref : "", NULL);
		free(ref);
	}
	g_mime_object_set_header(obj, "MIME-Version", "1.0", NULL);
	rc = 0;
fail:
	free(subj);
	free(to_name);
	free(from_name);
	return rc;
}

int
email_compose(const struct email_out *o, char **data_r, size_t *len_r, const char **error_r)
{
	GMimeFormatOptions *fo = NULL;
	GMimeStream *mem = NULL;
	GMimeMessage *m = NULL;
	GMimeObject *top;
	int rc = -1;

	*data_r = NULL;
	*len_r = 0;
	if (!mime_addr_ok(o->from_addr))
		return mime_fail(error_r, "from address is not valid");
	if (!mime_addr_ok(o->to_addr))
		return mime_fail(error_r, "to address is not valid");
	if (!mime_id_ok(o->message_id))
		return mime_fail(error_r, "message id is not valid");

	m = g_mime_message_new(TRUE);
	if (mime_compose_headers(m, o, error_r) < 0)
		goto fail;
	top = mime_compose_text(o->body);
	if (o->n_attachments > 0) {
		GMimeMultipart *mp = g_mime_multipart_new_with_subtype("mixed");

		g_mime_multipart_add(mp, top);
		g_object_unref(top);
		top = (GMimeObject *)mp;
		for (size_t i = 0; i < o->n_attachments; i++) {
			GMimeObject *a = mime_compose_attachment(&o->attachments[i], i, error_r);

			if (a == NULL) {
				g_object_unref(top);
				goto fail;
			}
			g_mime_multipart_add(mp, a);
			g_object_unref(a);
		}
	}
	g_mime_message_set_mime_part(m, top);
	g_object_unref(top);

	fo = g_mime_format_options_new();
	g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
	mem = g_mime_stream_mem_new();
	if (g_mime_object_write_to_stream((GMimeObject *)m, fo, mem) < 0) {
		mime_fail(error_r, "cannot write the message");
		goto fail;
	}
	if (mime_crlf_copy(g_mime_stream_mem_get_byte_array((GMimeStreamMem *)mem), data_r, len_r)
	    < 0) {
		mime_fail(error_r, "out of memory");
		goto fail;
	}
	rc = 0;
fail:
	if (mem != NULL)
		g_object_unref(mem);
	if (fo != NULL)
		g_mime_format_options_free(fo);
	if (m != NULL)
		g_object_unref(m);
	return rc;
}

void
email_mime_init(void)
{
	g_mime_init();
	/* crypto_hash_sha256 works without it; sodium_init only picks the fast implementation */
	int rc = sodium_init();

	(void)rc;
}

void
email_mime_shutdown(void)
{
	g_mime_shutdown();
}
