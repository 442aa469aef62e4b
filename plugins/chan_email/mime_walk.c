/*
 * mime_walk.c: walks a parsed mail's MIME tree (depth-checked, attached
 * messages counted but not read) into the leaves the other steps read, and
 * answers what a part is.
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

struct mime_frame {
	GMimeObject *obj;
	unsigned int depth;
	int inner; /* inside an attached message: counted for depth, not read */
};

/* The decoded content of a part or an attached message (transfer encoding undone). */
GByteArray *
mime_walk_content(GMimeObject *obj)
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

int
mime_walk_is_type(GMimeObject *obj, const char *type, const char *subtype)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);

	return ct != NULL && g_mime_content_type_is_type(ct, type, subtype);
}

int
mime_walk_is_attachmentish(GMimeObject *obj)
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
int
mime_walk_is_shown_text(GMimeObject *obj)
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

	if (v == NULL || !GMIME_IS_PART(obj)
	    || !mime_walk_is_type(obj, "application", "octet-stream"))
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
int
mime_walk_tree(struct mime_parse *p, GMimeMessage *m, const char **error_r)
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
			rc = mime_fail(
			    error_r, "MIME nesting is deeper than %u levels", p->lim->max_depth);
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
