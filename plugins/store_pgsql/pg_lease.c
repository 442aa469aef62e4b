/*
 * pg_lease.c: the driver table's lease entry: which node of those sharing
 * the register runs a mailbox or a PBX link now, in the leases table.
 *
 * A lease is taken, renewed or taken over in one statement, so two nodes
 * asking at once never both get it: the row's unique name makes one of
 * them wait for the other's commit and then see its holder. Its end is
 * counted by the database's clock, the one clock all nodes share. Lease
 * calls come from plugin threads (a mailbox thread renews its lease every
 * third of its length): they share one connection of their own, never the
 * writer's or a reader's, taken in turn under a mutex, made again when it
 * broke. A register that cannot be reached answers STORE_UNAVAILABLE: the
 * caller stops what the lease guards (mail stays on its server) until it
 * holds the lease again.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "pg.h"

static struct {
	pthread_mutex_t mu;
	struct pg_conn conn;
	int down; /* the last attempt could not reach the register: log only the change */
} pg_lease_state = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
};

/*
 * Takes the lease when it is free, run out, or the holder's already (then
 * it is renewed); answers who holds it now (NULL: not taken) and who held
 * it before (NULL: nobody). prev reads the snapshot before the insert.
 */
static const char sql_lease_take[] =
    "WITH prev AS (SELECT holder FROM leases WHERE name = $1::text),"
    " took AS (INSERT INTO leases (name, holder, until)"
    "  VALUES ($1::text, $2::text, now() + $3::bigint * interval '1 millisecond')"
    "  ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until"
    "  WHERE leases.holder = EXCLUDED.holder OR leases.until < now()"
    "  RETURNING holder)"
    " SELECT (SELECT holder FROM took), (SELECT holder FROM prev)";
static const char sql_lease_release[] =
    "DELETE FROM leases WHERE name = $1::text AND holder = $2::text RETURNING holder";

/* The lease connection, connected; NULL (the cause logged once) when the register is out of reach. */
static struct pg_conn *
lease_conn(void *impl)
{
	struct pg_conn *c = &pg_lease_state.conn;
	const char *error;

	if (pg_alive(c))
		return c;
	pg_disconnect(c);
	if (pg_connect(c, pg_store_conninfo(impl), "leases", &error) < 0) {
		if (!pg_lease_state.down)
			pg_logf("leases: %s; every lease counts as not held until it answers", error);
		pg_lease_state.down = 1;
		return NULL;
	}
	if (pg_lease_state.down)
		pg_log(LOKET_LOG_INFO, "leases: the register answers again");
	pg_lease_state.down = 0;
	return c;
}

enum store_result
pg_lease(void *impl, const char *name, const char *holder, int64_t ttl_ms, int release,
    char was_r[STORE_LEASE_HOLDER_MAX])
{
	enum store_result res = STORE_UNAVAILABLE;
	struct pg_params p;
	struct pg_conn *c;
	PGresult *r = NULL;

	if (was_r != NULL)
		was_r[0] = '\0';
	pg_params_init(&p);
	pg_p_text(&p, name);
	pg_p_text(&p, holder);
	if (!release)
		pg_p_int(&p, ttl_ms);
	pthread_mutex_lock(&pg_lease_state.mu);
	/* A connection cut while idle shows only on its next statement: try once more on a new one. */
	for (int attempt = 0; attempt < 2 && r == NULL; attempt++) {
		if ((c = lease_conn(impl)) == NULL)
			break;
		r = pg_run(c, release ? sql_lease_release : sql_lease_take, &p);
		if (r == NULL && c->fault != PG_FAULT_CONNECTION) {
			res = STORE_FAILED;
			break;
		}
		if (r == NULL)
			pg_disconnect(c);
	}
	if (r != NULL) {
		if (release) {
			res = STORE_OK;
		} else {
			const char *now = pg_str(r, 0, 0), *before = pg_str(r, 0, 1);

			res = now != NULL && strcmp(now, holder) == 0 ? STORE_OK : STORE_CONFLICT;
			if (was_r != NULL && before != NULL)
				snprintf(was_r, STORE_LEASE_HOLDER_MAX, "%s", before);
		}
		PQclear(r);
	}
	pthread_mutex_unlock(&pg_lease_state.mu);
	pg_params_clear(&p);
	return res;
}

void
pg_lease_close(void)
{
	pthread_mutex_lock(&pg_lease_state.mu);
	pg_disconnect(&pg_lease_state.conn);
	pg_lease_state.down = 0;
	pthread_mutex_unlock(&pg_lease_state.mu);
}
