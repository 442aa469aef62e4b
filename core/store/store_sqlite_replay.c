/* store_sqlite_replay.c: contacts since a time, read-only, beside a live loketd. */
#include "config.h"

#include "store_sqlite.h"
#include "util.h"

int
sq_replay(const struct loket_store_host *host, int64_t since_ms,
    int (*cb)(json_t *contact, void *arg), void *arg, const char **error_r)
{
	const char *path = host->conf_get(host, "path");
	static const char sql[]
	    = "SELECT " SQ_CONTACT_COLS "FROM contacts c LEFT JOIN parties p ON p.id = c.party_id"
	      " WHERE c.received_at >= ?1 ORDER BY c.id";
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = -1, step;

	/* Read-only and without the daemon: WAL lets it run beside a live loketd. */
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK
	    || sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		*error_r = util_error("%s: cannot read the register: %s", path,
		    db != NULL ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	sqlite3_bind_int64(st, 1, since_ms);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *contact = sq_contact_row(st);
		int stop = contact == NULL || cb(contact, arg) < 0;

		json_decref(contact);
		if (stop)
			break;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}
