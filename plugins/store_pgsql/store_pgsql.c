/* store_pgsql.c: SCAFFOLD (being written): the driver table, its threads and group commit. */
#include <stdarg.h>
#include <stdio.h>

#include "pg.h"

const struct loket_store_host *pg_host;

void
pg_logf(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (pg_host != NULL)
		pg_host->log(LOKET_LOG_ERROR, "pgsql", "%s", buf);
}

const char *
pg_store_conninfo(void *impl)
{
	(void)impl;
	return pg_host != NULL ? pg_host->conf_get(pg_host, "conninfo") : "";
}

static int
pg_open(const struct loket_store_host *host, void **impl_r, const char **error_r)
{
	pg_host = host;
	*impl_r = NULL;
	*error_r = "store_pgsql is being written (scaffold)";
	return -1;
}

__attribute__((visibility("default"))) const struct store_driver loket_store_driver = {
	.abi_major = LOKET_STORE_ABI_MAJOR,
	.abi_minor = LOKET_STORE_ABI_MINOR,
	.name = "pgsql",
	.open = pg_open,
};
