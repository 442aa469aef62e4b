/*
 * email_error.c: the plugin's error sentences, the way core/lib's
 * util_error makes them (a plugin cannot link core/lib): a function that
 * fails returns -1 and sets const char **error_r to a sentence the caller
 * does not free.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>

#include "email.h"

const char *
email_verror(const char *fmt, va_list ap)
{
	static _Thread_local char slots[EMAIL_ERROR_SLOTS][EMAIL_ERROR_MAX];
	static _Thread_local unsigned int next;
	char *buf = slots[next++ % EMAIL_ERROR_SLOTS];

	vsnprintf(buf, EMAIL_ERROR_MAX, fmt, ap);
	return buf;
}

const char *
email_error(const char *fmt, ...)
{
	const char *s;
	va_list ap;

	va_start(ap, fmt);
	s = email_verror(fmt, ap);
	va_end(ap);
	return s;
}
