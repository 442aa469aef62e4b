/*
 * web_guard.c: what keeps the public form usable for citizens and useless
 * for abuse: CSRF tokens that any node can check without shared state, a
 * per-client rate limit, attachments judged by their bytes, and the checks
 * of what a citizen types that can be told at once (so that the error is
 * shown next to its field instead of as a refusal of the whole form).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>
#include <sodium.h>

#include "web.h"

#define WEB_NONCE_BYTES 16
#define WEB_MAC_BYTES 32

void
web_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, data, len);
	sodium_bin2hex(out, 65, h, sizeof(h));
}

void
web_csrf_secret_new(char out[WEB_CSRF_SECRET_LEN + 1])
{
	unsigned char raw[32];

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(out, WEB_CSRF_SECRET_LEN + 1, raw, sizeof(raw),
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static int
web_b64_decode(const char *s, size_t slen, unsigned char *out, size_t outlen)
{
	size_t n = 0;

	if (sodium_base642bin(out, outlen, s, slen, NULL, &n, NULL,
		sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    n != outlen)
		return -1;
	return 0;
}

int
web_csrf_secret_ok(const char *s)
{
	unsigned char raw[32];

	return s != NULL && strlen(s) == WEB_CSRF_SECRET_LEN &&
	    web_b64_decode(s, WEB_CSRF_SECRET_LEN, raw, sizeof(raw)) == 0;
}

int
web_csrf_cookie(const char *h, char out[WEB_CSRF_SECRET_LEN + 1])
{
	const size_t klen = strlen(WEB_CSRF_COOKIE);

	/* Cookie: a=b; loket_csrf=...; c=d: the first of our name that is well-formed wins. */
	for (const char *p = h; p != NULL && *p != '\0';) {
		size_t n;

		p += strspn(p, " \t;");
		n = strcspn(p, ";");
		if (n == klen + 1 + WEB_CSRF_SECRET_LEN && strncmp(p, WEB_CSRF_COOKIE, klen) == 0 &&
		    p[klen] == '=') {
			memcpy(out, p + klen + 1, WEB_CSRF_SECRET_LEN);
			out[WEB_CSRF_SECRET_LEN] = '\0';
			if (web_csrf_secret_ok(out))
				return 0;
		}
		p += n;
	}
	return -1;
}

/* The MAC of a nonce under the cookie's secret: keyed BLAKE2b. */
static int
web_csrf_mac(const char *secret, const unsigned char nonce[WEB_NONCE_BYTES],
    unsigned char mac[WEB_MAC_BYTES])
{
	unsigned char key[32];

	if (web_b64_decode(secret, strlen(secret), key, sizeof(key)) < 0)
		return -1;
	crypto_generichash(mac, WEB_MAC_BYTES, nonce, WEB_NONCE_BYTES, key, sizeof(key));
	sodium_memzero(key, sizeof(key));
	return 0;
}

char *
web_csrf_token(const char *secret)
{
	unsigned char nonce[WEB_NONCE_BYTES], mac[WEB_MAC_BYTES];
	char n64[sodium_base64_ENCODED_LEN(WEB_NONCE_BYTES,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	char m64[sodium_base64_ENCODED_LEN(WEB_MAC_BYTES,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	char *out;

	randombytes_buf(nonce, sizeof(nonce));
	if (web_csrf_mac(secret, nonce, mac) < 0)
		return NULL;
	sodium_bin2base64(n64, sizeof(n64), nonce, sizeof(nonce),
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_bin2base64(m64, sizeof(m64), mac, sizeof(mac),
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	if ((out = malloc(strlen(n64) + 1 + strlen(m64) + 1)) == NULL)
		return NULL;
	strcpy(out, n64);
	strcat(out, ".");
	strcat(out, m64);
	return out;
}

int
web_csrf_check(const char *secret, const char *token)
{
	unsigned char nonce[WEB_NONCE_BYTES], mac[WEB_MAC_BYTES], want[WEB_MAC_BYTES];
	const char *dot;

	if (secret == NULL || token == NULL || (dot = strchr(token, '.')) == NULL ||
	    web_b64_decode(token, (size_t)(dot - token), nonce, sizeof(nonce)) < 0 ||
	    web_b64_decode(dot + 1, strlen(dot + 1), mac, sizeof(mac)) < 0 ||
	    web_csrf_mac(secret, nonce, want) < 0)
		return -1;
	return sodium_memcmp(mac, want, sizeof(mac)) == 0 ? 0 : -1;
}

/* ---- rate limits ---- */

#define WEB_RATE_SLOTS 4096
#define WEB_RATE_PROBE 16

struct web_rate_slot {
	char client[64];
	int64_t start_ms;
	int64_t count;
};

struct web_rate {
	struct web_rate_slot slots[WEB_RATE_SLOTS];
};

static int64_t
web_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct web_rate *
web_rate_new(void)
{
	return calloc(1, sizeof(struct web_rate));
}

void
web_rate_free(struct web_rate *r)
{
	free(r);
}

int64_t
web_rate_hit(struct web_rate *r, const char *client, int64_t limit, int64_t window_ms)
{
	int64_t now = web_now_ms();
	uint32_t h = 2166136261u;
	struct web_rate_slot *slot = NULL, *oldest = NULL;
	char key[64];

	if (limit <= 0)
		return 0; /* no limit configured */
	snprintf(key, sizeof(key), "%s", client);
	for (const char *p = key; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	/*
	 * A small open table: the client's slot, else a free or run-out one
	 * near it, else the oldest near it. Many clients at once can push a
	 * counting client out early; that errs towards letting citizens in.
	 */
	for (size_t i = 0; i < WEB_RATE_PROBE; i++) {
		struct web_rate_slot *s = &r->slots[(h + i) % WEB_RATE_SLOTS];

		if (s->client[0] != '\0' && strcmp(s->client, key) == 0) {
			slot = s;
			break;
		}
		if (oldest == NULL || s->client[0] == '\0' ||
		    (oldest->client[0] != '\0' && s->start_ms < oldest->start_ms))
			oldest = s;
	}
	if (slot == NULL) {
		slot = oldest;
		snprintf(slot->client, sizeof(slot->client), "%s", key);
		slot->start_ms = now;
		slot->count = 0;
	}
	if (now - slot->start_ms >= window_ms) {
		slot->start_ms = now;
		slot->count = 0;
	}
	if (slot->count >= limit) {
		int64_t left = slot->start_ms + window_ms - now;

		return left <= 0 ? 1 : (left + 999) / 1000;
	}
	slot->count++;
	return 0;
}

/* ---- what a file is, by its bytes ---- */

const char *
web_sniff(const void *data, size_t len)
{
	const unsigned char *p = data;

	if (len >= 5 && memcmp(p, "%PDF-", 5) == 0)
		return "application/pdf";
	if (len >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0)
		return "image/png";
	if (len >= 3 && memcmp(p, "\xff\xd8\xff", 3) == 0)
		return "image/jpeg";
	if (len >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0))
		return "image/gif";
	if (len >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
		return "image/webp";
	return NULL;
}

/* ---- what a citizen types ---- */

int
web_rrn_ok(const char *s)
{
	char d[12];
	size_t n = 0;
	unsigned long long base = 0, check;

	for (; *s != '\0'; s++) {
		if (isdigit((unsigned char)*s)) {
			if (n == 11)
				return 0;
			d[n++] = *s;
		} else if (strchr(" .-\t", *s) == NULL) {
			return 0;
		}
	}
	if (n != 11)
		return 0;
	for (size_t i = 0; i < 9; i++)
		base = base * 10 + (unsigned long long)(d[i] - '0');
	check = (unsigned long long)(d[9] - '0') * 10 + (unsigned long long)(d[10] - '0');
	/* Born from 2000 on, the checksum covers a 2 in front of the nine digits. */
	return 97 - base % 97 == check || 97 - (2000000000ULL + base) % 97 == check;
}

int
web_email_ok(const char *s)
{
	const char *at = strchr(s, '@'), *dot;

	if (at == NULL || at == s || strchr(at + 1, '@') != NULL || strlen(s) > 254)
		return 0;
	for (const char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || strchr("<>()[]\\,;:\"", *p) != NULL)
			return 0;
	dot = strrchr(at + 1, '.');
	return dot != NULL && dot > at + 1 && dot[1] != '\0';
}

int
web_phone_ok(const char *s)
{
	size_t digits = 0;

	for (const char *p = s; *p != '\0'; p++) {
		if (isdigit((unsigned char)*p))
			digits++;
		else if (strchr(" +./-()", *p) == NULL)
			return 0;
	}
	return digits >= 8 && digits <= 15;
}

int
web_text_ok(const char *s, size_t len)
{
	if (!g_utf8_validate(s, (gssize)len, NULL))
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
			return 0;
	}
	return 1;
}
