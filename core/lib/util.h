/* util.h: small value parsers and string helpers shared by the core and loketctl. */
#ifndef LOKET_UTIL_H
#define LOKET_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* "30s", "5m", "2h", "1d", "250ms"; a bare number is seconds. */
int util_parse_duration_ms(const char *s, uint64_t *ms_r);
/* "512", "64k", "10M", "1g" (powers of 1024). */
int util_parse_size(const char *s, uint64_t *bytes_r);
int util_parse_bool(const char *s, int *b_r);
int util_parse_int(const char *s, int64_t *v_r);
/* "127.0.0.1:8080", "[::1]:8080", "localhost:80"; host is owned by the caller. */
int util_parse_hostport(const char *s, char **host_r, uint16_t *port_r);
/*
 * The one error convention (Dovecot's): a function that fails returns -1
 * and sets `const char **error_r` to a sentence the caller does not free.
 * A static sentence may be given as it is; a formatted one comes from
 * util_error(), which keeps it in one of UTIL_ERROR_SLOTS thread-local
 * buffers: it stays valid until this thread formats that many more errors,
 * which covers passing it up (and prefixing it: "file:3: %s") through the
 * callers. Whoever keeps an error longer copies it.
 */
#define UTIL_ERROR_SLOTS 8
#define UTIL_ERROR_MAX 1024
const char *util_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A formatted message owned by the caller, or NULL without memory. */
char *util_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The longest prefix of s of at most max bytes that does not end inside a UTF-8 character:
 * the precision for "%.*s" where a byte count would cut one in two. */
size_t util_utf8_prefix(const char *s, size_t max);
/* A copy of s that is valid UTF-8: a character cut at the end is dropped, any other byte
 * that is not UTF-8 becomes U+FFFD. Owned by the caller; NULL without memory. */
char *util_utf8_clean(const char *s);
/* Monotonic clock in nanoseconds. */
uint64_t util_now_ns(void);
/* Writes to the caller's buffer "dir/name"; -1 when it does not fit. */
int util_path_join(char *buf, size_t len, const char *dir, const char *name);

/* Wall-clock time in milliseconds since the epoch (plus the test clock's moves). */
int64_t util_time_ms(void);
/*
 * The test clock: only when loketd runs with LOKET_TEST_CLOCK=1 in its environment
 * (the integration tests' fixtures set it; nothing else does), `loketctl debug clock`
 * moves util_time_ms() forward, so that tests of minute-long timers need not wait.
 */
int util_test_clock_on(void);
/* Moves the wall clock forward by ms (> 0); -1 when the test clock is off. */
int util_test_clock_move(int64_t ms);
/* At start: LOKET_TEST_CLOCK_OFFSET (a duration, "90s") moves the test clock at once, so a
 * restarted daemon can go on where the last one's clock was; -1 on a bad value. */
int util_test_clock_start(void);
/*
 * A test-only hold: LOKET_TEST_HOLD_ANSWER_MS (milliseconds, at most 600000) in loketd's
 * environment holds a fresh POST /api/v1/forms/intake's answer that long after its contact
 * is durable, so a test can kill -9 between the write and the answer. 0 when unset (always
 * outside tests), -1 when set to something else than a number of milliseconds.
 */
int64_t util_test_hold_answer_ms(void);
/* RFC 3339 UTC with milliseconds: "2026-11-28T10:37:44.123Z". */
void util_time_format(int64_t ms, char *buf, size_t len);
/* RFC 3339 time or a date (YYYY-MM-DD, midnight UTC) to ms; -1 when it is neither. */
int util_time_parse(const char *s, int64_t *ms_r);
/* A local wall-clock time ("2026-12-24 16:55") or an RFC 3339 time to ms. */
int util_time_parse_local(const char *s, int64_t *ms_r);
/* The calendar year of ms in local time (Europe/Brussels on a Belgian server). */
int util_time_year(int64_t ms);
#endif
