/*
 * fuzz_party_id.c: libFuzzer target for the party identifier normalisers in core/register/party_id.c
 * (phone numbers, national register numbers, BSN, email addresses), which read query
 * parameters and contact fields. The first byte picks the parser, the rest is its input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "party_id.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
fuzz_all_digits(const char *s, size_t len)
{
	return strlen(s) == len && strspn(s, "0123456789") == len;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s, out[300];
	const char *error = NULL;
	int rc;

	if (size == 0)
		return 0;
	/* Exactly the input and its NUL, so ASan sees any read past the end. */
	if ((s = malloc(size)) == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 4) {
	case 0:
		rc = party_id_phone(s, out, &error);
		/* E.164: "+" and 8 to 15 digits. */
		if (rc == 0
		    && (out[0] != '+' || strlen(out) < 9 || strlen(out) > 16
		        || !fuzz_all_digits(out + 1, strlen(out + 1))))
			abort();
		break;
	case 1:
		rc = party_id_rrn(s, out, &error);
		if (rc == 0 && !fuzz_all_digits(out, 11))
			abort();
		break;
	case 2:
		rc = party_id_bsn(s, out, &error);
		if (rc == 0 && !fuzz_all_digits(out, 9))
			abort();
		break;
	default:
		rc = party_id_email(s, out, sizeof(out), &error);
		if (rc == 0
		    && (strlen(out) > 254 || strchr(out, '@') == NULL
		        || strchr(out, '@') != strrchr(out, '@') || strpbrk(out, " \r\n") != NULL))
			abort();
		break;
	}
	/* A refusal always says why. */
	if (rc != 0 && (rc != -1 || error == NULL || error[0] == '\0'))
		abort();
	free(s);
	return 0;
}
