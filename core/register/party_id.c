/* party_id.c: normalise and validate phone numbers, national register numbers and emails. */
#include <stdbool.h>
#include <string.h>

#include "party_id.h"

/* Longest digit run worth looking at: "00" + 15 E.164 digits. */
#define PHONE_SCAN_MAX 17
#define E164_MIN_DIGITS 8
#define E164_MAX_DIGITS 15
#define EMAIL_MAX_LEN 254

/* Hand-rolled instead of <ctype.h> so results never depend on the locale;
   in a Latin-1 locale isspace(0xa0) would eat half a UTF-8 sequence. */
static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_ascii_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
		c == '\v' || c == '\f';
}

static char
ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool
phone_is_separator(char c)
{
	return c == ' ' || c == '\t' || c == '.' || c == '/' || c == '-' ||
		c == '(' || c == ')';
}

/* Number of digits that belong to the international prefix ("+" counts as
   none, "00" as two), or -1 while the number still looks national. */
static int
phone_intl_prefix_len(bool plus, const char *digits, size_t n)
{
	if (plus)
		return 0;
	if (n >= 2 && digits[0] == '0' && digits[1] == '0')
		return 2;
	return -1;
}

/* A "(0)" is only a trunk prefix once a country code has started; in a
   national number it is just a parenthesised 0. */
static bool
phone_past_intl_prefix(bool plus, const char *digits, size_t n)
{
	int prefix = phone_intl_prefix_len(plus, digits, n);

	return prefix >= 0 && n > (size_t)prefix;
}

static int
phone_check_be(const char *nsn, size_t len, const char **error_r)
{
	if (nsn[0] == '0') {
		*error_r = "phone: drop the 0 after country code +32";
		return -1;
	}
	/* 045-049 are mobile with 9 digits; 040-044 is the Liège landline
	   zone (04) with 8 digits like every other landline. */
	if (nsn[0] == '4' && nsn[1] >= '5') {
		if (len == 9)
			return 0;
	} else if (len == 8) {
		return 0;
	}
	*error_r = "phone: not a valid Belgian number (wrong number of digits)";
	return -1;
}

static int
phone_check_nl(const char *nsn, size_t len, const char **error_r)
{
	if (nsn[0] == '0') {
		*error_r = "phone: drop the 0 after country code +31";
		return -1;
	}
	if (len != 9) {
		*error_r = "phone: not a valid Dutch number (wrong number of digits)";
		return -1;
	}
	return 0;
}

int
party_id_phone(const char *in, char out[PARTY_E164_MAX], const char **error_r)
{
	char digits[PHONE_SCAN_MAX];
	const char *cc, *national = NULL;
	size_t n = 0, cc_len, national_len = 0, total;
	bool plus = false;
	int prefix;

	out[0] = '\0';
	for (const char *p = in; *p != '\0'; p++) {
		if (is_digit(*p)) {
			if (n == sizeof(digits)) {
				*error_r = "phone: too many digits";
				return -1;
			}
			digits[n++] = *p;
		} else if (*p == '+') {
			if (plus || n > 0) {
				*error_r = "phone: '+' is only allowed at the start";
				return -1;
			}
			plus = true;
		} else if (*p == '(' && p[1] == '0' && p[2] == ')' &&
		    phone_past_intl_prefix(plus, digits, n)) {
			/* "+32 (0)470 ...": the trunk prefix is only
			   dialled from inside the country, so it is not
			   part of the E.164 number. */
			p += 2;
		} else if (!phone_is_separator(*p)) {
			*error_r = "phone: contains characters other than digits and separators";
			return -1;
		}
	}

	if (n == 0) {
		*error_r = plus ? "phone: missing digits after '+'" :
			"phone: no number given";
		return -1;
	}
	prefix = phone_intl_prefix_len(plus, digits, n);
	if (prefix >= 0) {
		cc = digits + prefix;
		cc_len = n - (size_t)prefix;
		if (cc_len == 0) {
			*error_r = "phone: missing digits after international prefix 00";
			return -1;
		}
		if (cc[0] == '0') {
			*error_r = "phone: country code cannot start with 0";
			return -1;
		}
		total = cc_len;
	} else if (digits[0] == '0') {
		/* National form: loket serves Belgian municipalities, so a
		   bare trunk 0 means +32. */
		cc = "32";
		cc_len = 2;
		national = digits + 1;
		national_len = n - 1;
		total = cc_len + national_len;
	} else {
		*error_r = "phone: must start with +, 00 or 0";
		return -1;
	}
	if (total < E164_MIN_DIGITS) {
		*error_r = "phone: too few digits";
		return -1;
	}
	if (total > E164_MAX_DIGITS) {
		*error_r = "phone: too many digits";
		return -1;
	}

	out[0] = '+';
	memcpy(out + 1, cc, cc_len);
	if (national != NULL)
		memcpy(out + 1 + cc_len, national, national_len);
	out[1 + total] = '\0';

	/* Country codes are prefix-free, so "32..." is always Belgium. */
	if (strncmp(out + 1, "32", 2) == 0 &&
	    phone_check_be(out + 3, total - 2, error_r) < 0) {
		out[0] = '\0';
		return -1;
	}
	if (strncmp(out + 1, "31", 2) == 0 &&
	    phone_check_nl(out + 3, total - 2, error_r) < 0) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

static bool
id_is_separator(char c)
{
	return c == ' ' || c == '\t' || c == '.' || c == '-';
}

/* Returns the number of digits copied from in (separators skipped), or -1
   for stray characters or more than max digits. */
static int
id_collect_digits(const char *in, char *digits, size_t max,
    const char *char_error, const char *length_error, const char **error_r)
{
	size_t n = 0;

	for (const char *p = in; *p != '\0'; p++) {
		if (is_digit(*p)) {
			if (n == max) {
				*error_r = length_error;
				return -1;
			}
			digits[n++] = *p;
		} else if (!id_is_separator(*p)) {
			*error_r = char_error;
			return -1;
		}
	}
	return (int)n;
}

static unsigned long long
digits_value(const char *digits, size_t n)
{
	unsigned long long v = 0;

	for (size_t i = 0; i < n; i++)
		v = v * 10 + (unsigned long long)(digits[i] - '0');
	return v;
}

int
party_id_rrn(const char *in, char out[12], const char **error_r)
{
	static const char length_error[] = "rrn: must have 11 digits";
	char digits[11];
	unsigned long long base, check;
	int n;

	out[0] = '\0';
	n = id_collect_digits(in, digits, sizeof(digits),
	    "rrn: contains characters other than digits and separators",
	    length_error, error_r);
	if (n < 0)
		return -1;
	if (n != 11) {
		*error_r = length_error;
		return -1;
	}

	/* Birth date fields are deliberately not checked: unknown dates use
	   00 and bis numbers add 20 or 40 to the month, so only the checksum
	   is reliable. */
	base = digits_value(digits, 9);
	check = digits_value(digits + 9, 2);
	/* For births from 2000 on the checksum covers a "2" in front of the
	   nine digits, which the number itself cannot show. */
	if (97 - base % 97 != check &&
	    97 - (2000000000ULL + base) % 97 != check) {
		*error_r = "rrn: checksum does not match";
		return -1;
	}
	memcpy(out, digits, 11);
	out[11] = '\0';
	return 0;
}

int
party_id_bsn(const char *in, char out[10], const char **error_r)
{
	static const char length_error[] = "bsn: must have 9 digits (or 8 without the leading 0)";
	char digits[9];
	int n, sum = 0;

	out[0] = '\0';
	n = id_collect_digits(in, digits, sizeof(digits),
	    "bsn: contains characters other than digits and separators",
	    length_error, error_r);
	if (n < 0)
		return -1;
	if (n == 8) {
		memmove(digits + 1, digits, 8);
		digits[0] = '0';
	} else if (n != 9) {
		*error_r = length_error;
		return -1;
	}

	for (int i = 0; i < 8; i++)
		sum += (9 - i) * (digits[i] - '0');
	sum -= digits[8] - '0';
	/* All zeros passes the plain 11-test but is never issued. */
	if (sum == 0 || sum % 11 != 0) {
		*error_r = "bsn: fails the 11-test";
		return -1;
	}
	memcpy(out, digits, 9);
	out[9] = '\0';
	return 0;
}

int
party_id_email(const char *in, char *out, size_t outlen, const char **error_r)
{
	const char *start = in, *end, *at = NULL, *domain, *p;
	size_t len;

	if (outlen > 0)
		out[0] = '\0';
	while (is_ascii_space(*start))
		start++;
	end = start + strlen(start);
	while (end > start && is_ascii_space(end[-1]))
		end--;
	len = (size_t)(end - start);

	if (len == 0) {
		*error_r = "email: no address given";
		return -1;
	}
	if (len > EMAIL_MAX_LEN) {
		*error_r = "email: longer than 254 characters";
		return -1;
	}
	for (p = start; p < end; p++) {
		unsigned char c = (unsigned char)*p;

		/* CR/LF inside would let the address smuggle extra mail
		   headers through. */
		if (c < 0x20 || c == 0x7f) {
			*error_r = "email: contains control characters";
			return -1;
		}
		if (c == ' ') {
			*error_r = "email: contains a space";
			return -1;
		}
		if (c == '@') {
			if (at != NULL) {
				*error_r = "email: contains more than one '@'";
				return -1;
			}
			at = p;
		}
	}
	if (at == NULL) {
		*error_r = "email: missing '@'";
		return -1;
	}
	if (at == start) {
		*error_r = "email: nothing before the '@'";
		return -1;
	}

	domain = at + 1;
	if (domain == end) {
		*error_r = "email: nothing after the '@'";
		return -1;
	}
	if (memchr(domain, '.', (size_t)(end - domain)) == NULL) {
		*error_r = "email: domain has no dot";
		return -1;
	}
	if (*domain == '.' || end[-1] == '.') {
		*error_r = "email: domain has an empty label";
		return -1;
	}
	for (p = domain; p + 1 < end; p++) {
		if (p[0] == '.' && p[1] == '.') {
			*error_r = "email: domain has an empty label";
			return -1;
		}
	}

	if (outlen < len + 1) {
		*error_r = "email: output buffer too small";
		return -1;
	}
	for (size_t i = 0; i < len; i++)
		out[i] = ascii_lower(start[i]);
	out[len] = '\0';
	return 0;
}
