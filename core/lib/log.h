/* log.h: one line per event on stderr, "ts level component msg key=value...". */
#ifndef LOKET_LOG_H
#define LOKET_LOG_H

#include <stdarg.h>

#include "loket/plugin.h"

void log_init(enum loket_log_level min_level);
void log_set_level(enum loket_log_level min_level);
int log_level_parse(const char *s, enum loket_log_level *level_r);
void log_vemit(enum loket_log_level level, const char *component, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
void log_debug(const char *component, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_info(const char *component, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* log_warn and log_error append the current errno; the *x variants do not. */
void log_warn(const char *component, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_warnx(const char *component, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_error(const char *component, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_errorx(const char *component, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
