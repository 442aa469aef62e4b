/*
 * web_form.c: what a browser posts. multipart/form-data is MIME (RFC 7578),
 * so GMime reads it as it reads mail: the request's Content-Type header is
 * put in front of the body and the whole is parsed as one MIME part, whose
 * sub-parts are the form's fields; a field's name and a file's name come
 * from each part's Content-Disposition. The short status form may also
 * come urlencoded, which GLib decodes.
 */
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "web.h"

/* How many fields a form may have: a real one has about a dozen. */
#define WEB_MAX_FIELDS 64

void
web_form_init(void)
{
	/* GMime counts its users: chan_email and chan_web may both init and shut down. */
	g_mime_init();
}

void
web_form_shutdown(void)
{
	g_mime_shutdown();
}

static int
web_form_add(struct web_form *form, const char *name, const char *value, size_t len,
    const char *filename)
{
	struct web_field *f, *fields;

	if (form->n == WEB_MAX_FIELDS)
		return -1;
	if ((fields = realloc(form->fields, (form->n + 1) * sizeof(*fields))) == NULL)
		return -1;
	form->fields = fields;
	f = &fields[form->n];
	memset(f, 0, sizeof(*f));
	f->name = strdup(name);
	f->value = malloc(len + 1);
	f->filename = filename != NULL ? strdup(filename) : NULL;
	if (f->name == NULL || f->value == NULL || (filename != NULL && f->filename == NULL)) {
		free(f->name);
		free(f->value);
		free(f->filename);
		return -1;
	}
	if (len > 0) /* an empty field may come without bytes at all */
		memcpy(f->value, value, len);
	f->value[len] = '\0';
	f->len = len;
	form->n++;
	return 0;
}

static int
web_form_multipart(const char *content_type, const char *body, size_t len,
    struct web_form *form, const char **error_r)
{
	GMimeStream *in = g_mime_stream_mem_new();
	GMimeParser *parser = NULL;
	GMimeObject *top = NULL;
	int rc = -1;

	g_mime_stream_write_string(in, "Content-Type: ");
	g_mime_stream_write_string(in, content_type);
	g_mime_stream_write_string(in, "\r\n\r\n");
	if (len > 0)
		g_mime_stream_write(in, body, len);
	g_mime_stream_reset(in);
	parser = g_mime_parser_new_with_stream(in);
	top = g_mime_parser_construct_part(parser, NULL);
	if (top == NULL || !GMIME_IS_MULTIPART(top)) {
		*error_r = "the form could not be read";
		goto fail;
	}
	for (int i = 0; i < g_mime_multipart_get_count(GMIME_MULTIPART(top)); i++) {
		GMimeObject *part = g_mime_multipart_get_part(GMIME_MULTIPART(top), i);
		const char *name, *filename;
		GMimeDataWrapper *content;
		GMimeStream *out;
		GByteArray *bytes;
		int added;

		if (!GMIME_IS_PART(part))
			continue; /* a nested multipart (RFC 2388 mixed files): no browser sends it now */
		name = g_mime_object_get_content_disposition_parameter(part, "name");
		if (name == NULL)
			continue;
		filename = g_mime_object_get_content_disposition_parameter(part, "filename");
		content = g_mime_part_get_content(GMIME_PART(part));
		out = g_mime_stream_mem_new();
		if (content != NULL)
			g_mime_data_wrapper_write_to_stream(content, out);
		bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
		added = web_form_add(form, name, bytes != NULL ? (const char *)bytes->data : "",
		    bytes != NULL ? bytes->len : 0, filename);
		g_object_unref(out);
		if (added < 0) {
			*error_r = "the form has too many fields";
			goto fail;
		}
	}
	rc = 0;
fail:
	if (top != NULL)
		g_object_unref(top);
	if (parser != NULL)
		g_object_unref(parser);
	g_object_unref(in);
	return rc;
}

static int
web_form_urlencoded(const char *body, size_t len, struct web_form *form, const char **error_r)
{
	char *text = g_strndup(body != NULL ? body : "", len);
	char **pairs = g_strsplit(text, "&", WEB_MAX_FIELDS + 1);
	int rc = -1;

	for (size_t i = 0; pairs[i] != NULL; i++) {
		char *eq, *name, *value;

		if (pairs[i][0] == '\0')
			continue;
		for (char *p = pairs[i]; *p != '\0'; p++)
			if (*p == '+')
				*p = ' ';
		eq = strchr(pairs[i], '=');
		if (eq != NULL)
			*eq = '\0';
		name = g_uri_unescape_string(pairs[i], NULL);
		value = g_uri_unescape_string(eq != NULL ? eq + 1 : "", NULL);
		if (name == NULL || value == NULL ||
		    web_form_add(form, name, value, strlen(value), NULL) < 0) {
			g_free(name);
			g_free(value);
			*error_r = "the form could not be read";
			goto fail;
		}
		g_free(name);
		g_free(value);
	}
	rc = 0;
fail:
	g_strfreev(pairs);
	g_free(text);
	return rc;
}

int
web_form_parse(const char *content_type, const char *body, size_t len, int urlencoded_ok,
    struct web_form *form, const char **error_r)
{
	memset(form, 0, sizeof(*form));
	if (content_type != NULL &&
	    g_ascii_strncasecmp(content_type, "multipart/form-data", 19) == 0)
		return web_form_multipart(content_type, body, len, form, error_r);
	if (urlencoded_ok && content_type != NULL &&
	    g_ascii_strncasecmp(content_type, "application/x-www-form-urlencoded", 33) == 0)
		return web_form_urlencoded(body, len, form, error_r);
	*error_r = "the form was not sent as a form";
	return -1;
}

const struct web_field *
web_form_get(const struct web_form *form, const char *name)
{
	for (size_t i = 0; i < form->n; i++)
		if (strcmp(form->fields[i].name, name) == 0)
			return &form->fields[i];
	return NULL;
}

char *
web_form_text(const struct web_form *form, const char *name)
{
	const struct web_field *f = web_form_get(form, name);
	const char *s, *e;
	char *out;

	if (f == NULL || f->filename != NULL)
		return NULL;
	s = f->value;
	e = f->value + strlen(f->value);
	while (s < e && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		e--;
	if ((out = malloc((size_t)(e - s) + 1)) == NULL)
		return NULL;
	memcpy(out, s, (size_t)(e - s));
	out[e - s] = '\0';
	return out;
}

void
web_form_free(struct web_form *form)
{
	for (size_t i = 0; i < form->n; i++) {
		free(form->fields[i].name);
		free(form->fields[i].value);
		free(form->fields[i].filename);
	}
	free(form->fields);
	form->fields = NULL;
	form->n = 0;
}
