/* http_status.c: the one place a storage result becomes an HTTP status. */
#include "config.h"

#include "http_status.h"

int
http_status_of_store(enum store_result result)
{
	switch (result) {
	case STORE_OK:
		return 0;
	case STORE_NOT_FOUND:
		return 404;
	case STORE_FORBIDDEN:
		return 403;
	case STORE_CONFLICT:
		return 409;
	case STORE_INVALID:
		return 422;
	case STORE_UNAVAILABLE:
		return 503; /* http_problem adds Retry-After */
	case STORE_FAILED:
		break;
	}
	return 500;
}
