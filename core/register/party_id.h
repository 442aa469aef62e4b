/* party_id.h: normalise and validate the identifiers by which a party is matched across channels. */
#ifndef LOKET_PARTY_ID_H
#define LOKET_PARTY_ID_H

#include <stddef.h>

#define PARTY_E164_MAX 17   /* "+" + up to 15 digits + NUL */

/* All functions return 0 on success and -1 on error. On error *error_r points
   to a static, human-readable message and the output buffer holds "" (if it
   has room for one byte). */

/* Phone number to E.164 ("+32470123456"). National numbers are taken as
   Belgian; Dutch numbers must carry +31 or 0031. */
int party_id_phone(const char *in, char out[PARTY_E164_MAX], const char **error_r);

/* Belgian rijksregisternummer to its 11 bare digits. */
int party_id_rrn(const char *in, char out[12], const char **error_r);

/* Dutch burgerservicenummer to its 9 bare digits; 8-digit input gets a
   leading 0. */
int party_id_bsn(const char *in, char out[10], const char **error_r);

/* Email address, trimmed and lower-cased in full so that matching can use
   plain strcmp(). outlen must leave room for the result plus NUL. */
int party_id_email(const char *in, char *out, size_t outlen, const char **error_r);

#endif
