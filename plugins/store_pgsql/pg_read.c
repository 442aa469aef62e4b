/* pg_read.c: SCAFFOLD (being written): one function per read kind. */
#include "pg.h"

void
pg_read_run(struct pg_conn *c, struct store_req *req)
{
	(void)c;
	pg_host->req_fail(req, STORE_FAILED, "not written yet");
}
