/* http_status.h: the one place a storage result becomes an HTTP status. */
#ifndef LOKET_HTTP_STATUS_H
#define LOKET_HTTP_STATUS_H

#include "store.h"

/*
 * The HTTP status of a storage result (0 for STORE_OK). API clients get it
 * through api_submit, channels the same code through loket_submit_result.
 * A file of its own, so that the register links it without the HTTP server.
 */
int http_status_of_store(enum store_result result);

#endif
