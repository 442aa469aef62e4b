/*
 * pg_blobs.c: attachments and raw mails in the register, under the SHA-256
 * of their bytes, so that nodes sharing one register share them too.
 *
 * blob_put and blob_get run on any thread, concurrently (a mailbox thread
 * puts through the plugin ABI while the loop reads one for an API client):
 * they take a connection from a small pool of their own, never the
 * writer's or a reader's, which belong to their threads. A connection that
 * broke is dropped and made again on its next use. Each put is a statement
 * of its own, committed (and so durable) when it returns: the register
 * runs with synchronous_commit on, so STORE_BLOB_DEFER_SYNC needs no
 * second step and blob_sync has nothing left to do.
 */
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

#define PG_BLOB_POOL 4

static struct {
	pthread_mutex_t mu;
	pthread_cond_t freed;
	struct pg_conn conn[PG_BLOB_POOL];
	int busy[PG_BLOB_POOL];
} pg_blob_pool = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.freed = PTHREAD_COND_INITIALIZER,
};

/* SQLSTATE class 53 is "insufficient resources": a full disk, no memory, too many clients. */
static enum store_result
blob_failure(const PGconn *conn, const PGresult *r, const char *what)
{
	const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char line[320];

	if (msg == NULL)
		msg = PQerrorMessage(conn);
	/* libpq's text runs over lines; the log keeps one line per event. */
	snprintf(line, sizeof(line), "%s", msg != NULL ? msg : "?");
	for (char *p = line; *p != '\0'; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	pg_logf("blob %s failed sqlstate=%s: %s", what, state != NULL ? state : "none", line);
	if (PQstatus(conn) != CONNECTION_OK || state == NULL || strncmp(state, "53", 2) == 0 ||
	    strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
		return STORE_UNAVAILABLE;
	return STORE_FAILED;
}

/*
 * A connection of the pool, connected, in *slot_r; waits while all are
 * taken. NULL (and the cause logged) when the register cannot be reached.
 */
static struct pg_conn *
blob_conn_take(void *impl, int *slot_r)
{
	struct pg_conn *c;
	const char *error;
	int slot = -1;

	pthread_mutex_lock(&pg_blob_pool.mu);
	for (;;) {
		for (int i = 0; i < PG_BLOB_POOL && slot < 0; i++)
			if (!pg_blob_pool.busy[i])
				slot = i;
		if (slot >= 0)
			break;
		pthread_cond_wait(&pg_blob_pool.freed, &pg_blob_pool.mu);
	}
	pg_blob_pool.busy[slot] = 1;
	pthread_mutex_unlock(&pg_blob_pool.mu);
	c = &pg_blob_pool.conn[slot];
	/* Connected outside the lock: the other slots stay usable meanwhile. */
	if (!pg_alive(c)) {
		pg_disconnect(c);
		if (pg_connect(c, pg_store_conninfo(impl), "blobs", &error) < 0) {
			pg_logf("blobs: %s", error);
			pthread_mutex_lock(&pg_blob_pool.mu);
			pg_blob_pool.busy[slot] = 0;
			pthread_cond_broadcast(&pg_blob_pool.freed);
			pthread_mutex_unlock(&pg_blob_pool.mu);
			return NULL;
		}
	}
	*slot_r = slot;
	return c;
}

static void
blob_conn_give(int slot)
{
	pthread_mutex_lock(&pg_blob_pool.mu);
	pg_blob_pool.busy[slot] = 0;
	pthread_cond_broadcast(&pg_blob_pool.freed);
	pthread_mutex_unlock(&pg_blob_pool.mu);
}

/*
 * Runs sql with the parameters (text or binary as formats says) on a pooled
 * connection, once more on a new connection when the first one had broken
 * (the server restarted, an idle connection was cut). *r_r holds the result
 * (PQclear it) on STORE_OK.
 */
static enum store_result
blob_exec(void *impl, const char *what, const char *sql, int n, const char *const *values,
    const int *lengths, const int *formats, int binary_result, PGresult **r_r)
{
	enum store_result res = STORE_UNAVAILABLE;
	struct pg_conn *c;
	PGresult *r;
	int slot;

	*r_r = NULL;
	for (int attempt = 0; attempt < 2; attempt++) {
		if ((c = blob_conn_take(impl, &slot)) == NULL)
			return STORE_UNAVAILABLE;
		r = PQexecParams(c->conn, sql, n, NULL, values, lengths, formats, binary_result);
		if (r != NULL && (PQresultStatus(r) == PGRES_TUPLES_OK ||
				     PQresultStatus(r) == PGRES_COMMAND_OK)) {
			blob_conn_give(slot);
			*r_r = r;
			return STORE_OK;
		}
		res = blob_failure(c->conn, r, what);
		PQclear(r);
		if (pg_alive(c)) {
			blob_conn_give(slot);
			return res;
		}
		/* The connection broke: nothing was stored; try once on a new one. */
		pg_disconnect(c);
		blob_conn_give(slot);
	}
	return res;
}

enum store_result
pg_blob_put(void *impl, const void *data, size_t len, unsigned int flags, char sha256_hex[65])
{
	static const char sql[] = "INSERT INTO blobs (sha256, data) VALUES ($1::text, $2::bytea)"
				  " ON CONFLICT (sha256) DO NOTHING";
	unsigned char digest[crypto_hash_sha256_BYTES];
	const char *values[2];
	int lengths[2], formats[2] = { 0, 1 };
	enum store_result res;
	PGresult *r;

	/* Every put commits at once (see the top): a deferred one is as durable. */
	(void)flags;
	sha256_hex[0] = '\0';
	/* bytea holds up to 1 GB; libpq takes a length as int. */
	if (len > (size_t)0x3fffffff) {
		pg_logf("blob put refused: %zu bytes is more than the register keeps in one blob", len);
		return STORE_FAILED;
	}
	crypto_hash_sha256(digest, data, len);
	sodium_bin2hex(sha256_hex, 65, digest, sizeof(digest));
	values[0] = sha256_hex;
	lengths[0] = 64;
	/* libpq sends a zero-length parameter only from a pointer that is not NULL. */
	values[1] = len > 0 ? data : "";
	lengths[1] = (int)len;
	if ((res = blob_exec(impl, "put", sql, 2, values, lengths, formats, 0, &r)) != STORE_OK)
		return res;
	PQclear(r);
	return STORE_OK;
}

enum store_result
pg_blob_sync(void *impl)
{
	(void)impl;
	return STORE_OK;
}

/* Whether s is a SHA-256 as the register names blobs: 64 lower-case hex digits. */
static int
blob_name_ok(const char *s)
{
	size_t i;

	if (s == NULL)
		return 0;
	for (i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[64] == '\0';
}

enum store_result
pg_blob_get(void *impl, const char *sha256_hex, void **data_r, size_t *len_r)
{
	static const char sql[] = "SELECT data FROM blobs WHERE sha256 = $1::text";
	const char *values[1] = { sha256_hex };
	enum store_result res;
	PGresult *r;
	size_t len;
	void *data;

	*data_r = NULL;
	*len_r = 0;
	if (!blob_name_ok(sha256_hex))
		return STORE_NOT_FOUND;
	/* The bytes in binary: no hex text twice their size on the way. */
	if ((res = blob_exec(impl, "get", sql, 1, values, NULL, NULL, 1, &r)) != STORE_OK)
		return res;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return STORE_NOT_FOUND;
	}
	len = (size_t)PQgetlength(r, 0, 0);
	if ((data = malloc(len > 0 ? len : 1)) == NULL) {
		PQclear(r);
		pg_logf("blob get: out of memory for %zu bytes", len);
		return STORE_FAILED;
	}
	memcpy(data, PQgetvalue(r, 0, 0), len);
	PQclear(r);
	*data_r = data;
	*len_r = len;
	return STORE_OK;
}

/*
 * The core calls no blob entry while the store closes, nor after with this
 * store (store.c holds its blob lock for writing around close): what is
 * busy here finishes first, then the connections go. A store opened later
 * in the same process connects again on its first blob.
 */
void
pg_blobs_close(void)
{
	pthread_mutex_lock(&pg_blob_pool.mu);
	for (int i = 0; i < PG_BLOB_POOL; i++) {
		while (pg_blob_pool.busy[i])
			pthread_cond_wait(&pg_blob_pool.freed, &pg_blob_pool.mu);
		pg_disconnect(&pg_blob_pool.conn[i]);
	}
	pthread_mutex_unlock(&pg_blob_pool.mu);
}
