/* pg_blobs.c: SCAFFOLD (being written): blobs by SHA-256 in the register. */
#include "pg.h"

enum store_result
pg_blob_put(void *impl, const void *data, size_t len, unsigned int flags, char sha256_hex[65])
{
	(void)impl, (void)data, (void)len, (void)flags, (void)sha256_hex;
	return STORE_FAILED;
}

enum store_result
pg_blob_sync(void *impl)
{
	(void)impl;
	return STORE_OK;
}

enum store_result
pg_blob_get(void *impl, const char *sha256_hex, void **data_r, size_t *len_r)
{
	(void)impl, (void)sha256_hex, (void)data_r, (void)len_r;
	return STORE_NOT_FOUND;
}
