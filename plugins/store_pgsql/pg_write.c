/* pg_write.c: SCAFFOLD (being written): one function per write kind. */
#include "pg.h"

int
pg_write_run(struct pg_conn *c, struct store_req *req)
{
	(void)c;
	pg_host->req_fail(req, STORE_FAILED, "not written yet");
	return 0;
}
