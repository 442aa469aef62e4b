/*
 * fuzz_util.c: libFuzzer target for the small parsers in core/lib/util.c that read query
 * parameters and config values (RFC 3339 times, durations, sizes, booleans, integers,
 * host:port), and for the UTF-8 cuts that keep problem details readable.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1000-01-01 and 9999-12-31T23:59:59.999Z: the years util_time_format writes with 4 digits. */
#define FUZZ_MS_MIN (-30610224000000LL)
#define FUZZ_MS_MAX 253402300799999LL

static void
fuzz_time(const char *s)
{
	char buf[64];
	int64_t ms, again;

	if (util_time_parse(s, &ms) == 0 && ms >= FUZZ_MS_MIN && ms <= FUZZ_MS_MAX) {
		/* What the API writes, it reads back as the same instant. */
		util_time_format(ms, buf, sizeof(buf));
		if (util_time_parse(buf, &again) < 0 || again != ms)
			abort();
	}
	util_time_parse_local(s, &ms);
	util_time_format((int64_t)strlen(s) * INT64_C(-86400000123), buf, sizeof(buf));
	if (memchr(buf, '\0', sizeof(buf)) == NULL)
		abort();
}

static void
fuzz_values(const char *s)
{
	uint64_t u;
	int64_t v;
	char *host = NULL;
	uint16_t port;
	int b;

	util_parse_duration_ms(s, &u);
	util_parse_size(s, &u);
	util_parse_bool(s, &b);
	util_parse_int(s, &v);
	if (util_parse_hostport(s, &host, &port) == 0) {
		if (host == NULL || host[0] == '\0')
			abort();
		free(host);
	}
}

/* What http_problem_body does with a detail: every cut and cleaned text is JSON text. */
static void
fuzz_utf8(const char *s, size_t len)
{
	size_t max = len / 2, n = util_utf8_prefix(s, max);
	json_t *j = json_stringn(s, len);
	int valid = j != NULL;
	char *clean;

	json_decref(j);

	if (n > max || n > len)
		abort();
	if (valid && (j = json_stringn(s, n)) == NULL)
		abort();
	else if (valid)
		json_decref(j);
	if ((clean = util_utf8_clean(s)) == NULL)
		return;
	if ((j = json_string(clean)) == NULL)
		abort();
	json_decref(j);
	/* Text that was UTF-8 already comes through unchanged. */
	if (valid && strcmp(clean, s) != 0)
		abort();
	free(clean);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exactly size + 1 bytes, so ASan sees any read past the NUL. */
	char *s = malloc(size + 1);
	size_t len;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	len = strlen(s);
	fuzz_time(s);
	fuzz_values(s);
	fuzz_utf8(s, len);
	free(s);
	return 0;
}
