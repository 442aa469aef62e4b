/* mime.h: what mime.c, mime_html.c and mime_compose.c share inside the email plugin. */
#ifndef LOKET_CHAN_EMAIL_MIME_H
#define LOKET_CHAN_EMAIL_MIME_H

#include <stddef.h>

/* mime.c */
/* Sets *error_r (email_error); returns -1, so a caller can "return mime_fail(...)". */
int mime_fail(const char **error_r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * One line of display text (malloc'd): invalid UTF-8 replaced, white space and
 * control characters made single spaces; drop_format also drops format characters.
 */
char *mime_one_line(const char *in, int drop_format);

/* mime_html.c */
/* HTML (already UTF-8) to plain text; g_malloc'd. */
char *mime_html_to_text(const char *s);

#endif
