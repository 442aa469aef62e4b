/*
 * store_sqlite.c: the embedded register: SQLite in WAL mode with a writer
 * thread that commits whatever has queued in one transaction (group commit).
 *
 * Writes are queued from the loop, run by the writer thread, each in its own
 * savepoint inside the batch's transaction, and completed on the loop only
 * after COMMIT returned (with synchronous=FULL, after the fsync). Reads run
 * on the loop on a second, read-only connection: WAL lets them proceed while
 * the writer commits, and they see every write that was acknowledged.
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf.h"
#include "log.h"
#include "metrics.h"
#include "store_sqlite.h"
#include "util.h"

#define SQ_APPLICATION_ID 0x4c4f4b54 /* "LOKT" */
#define SQ_BATCH_MAX 1024

struct sq_store {
	struct store *store;
	struct sq_conn writer;
	struct sq_conn reader;
	pthread_t thread;
	int thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct store_req *queue_head, **queue_tail;
	size_t queued;
	struct store_req *done_head, **done_tail;
	int stopping;
	struct event *done_ev;
	struct metric_series *batch_size;
	struct metric_series *commit_latency;
	struct metric_series *commits;
	struct metric_series *commit_failures;
};

static const double sq_batch_bounds[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024 };

sqlite3_stmt *
sq_stmt(struct sq_conn *c, const char *sql)
{
	size_t i;

	for (i = 0; i < SQ_STMT_CACHE && c->cache[i].sql != NULL; i++) {
		if (c->cache[i].sql == sql) {
			sqlite3_reset(c->cache[i].stmt);
			sqlite3_clear_bindings(c->cache[i].stmt);
			return c->cache[i].stmt;
		}
	}
	if (i == SQ_STMT_CACHE)
		return NULL;
	if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->cache[i].stmt,
		NULL) != SQLITE_OK) {
		log_errorx("store", "cannot prepare a statement: %s", sqlite3_errmsg(c->db));
		return NULL;
	}
	c->cache[i].sql = sql;
	return c->cache[i].stmt;
}

int
sq_exec(struct sq_conn *c, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(c->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		log_errorx("store", "statement failed: %s", err != NULL ? err : "?");
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

static void
sq_conn_close(struct sq_conn *c)
{
	for (size_t i = 0; i < SQ_STMT_CACHE && c->cache[i].sql != NULL; i++)
		sqlite3_finalize(c->cache[i].stmt);
	memset(c->cache, 0, sizeof(c->cache));
	if (c->db != NULL)
		sqlite3_close(c->db);
	c->db = NULL;
}

static int
sq_pragma_int(sqlite3 *db, const char *sql, int *v_r)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v_r = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

static int
sq_pragma_text(sqlite3 *db, const char *sql, char *buf, size_t len)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

/*
 * Refuses a file that is not ours before anything is written to it: a
 * foreign or corrupt database is never turned into a register.
 */
static const char *
sq_check_identity(sqlite3 *db, int *version_r)
{
	int app_id = 0, tables = 0;

	if (sq_pragma_int(db, "PRAGMA application_id", &app_id) < 0 ||
	    sq_pragma_int(db, "PRAGMA user_version", version_r) < 0 ||
	    sq_pragma_int(db, "SELECT count(*) FROM sqlite_master", &tables) < 0)
		return "the file is not an SQLite database or is corrupt; it was left untouched";
	if (app_id != 0 && app_id != SQ_APPLICATION_ID)
		return "the file is an SQLite database of another application; it was left "
		       "untouched";
	if (app_id == 0 && tables > 0)
		return "the file is an SQLite database that is not a loket register; it was "
		       "left untouched";
	if (*version_r > sq_schema_version)
		return "the register was written by a newer loketd (its schema is newer than "
		       "this loketd knows); it was left untouched";
	return NULL;
}

static int
sq_migrate(struct sq_conn *c, int from, const char **error_r)
{
	char sql[128];

	if (from == sq_schema_version)
		return 0;
	if (sq_exec(c, "BEGIN IMMEDIATE") < 0) {
		*error_r = "cannot start the schema migration";
		return -1;
	}
	for (int v = from; v < sq_schema_version; v++) {
		if (sq_exec(c, sq_migrations[v]) < 0) {
			sq_exec(c, "ROLLBACK");
			*error_r = "a schema migration failed; the register was left as it was";
			return -1;
		}
	}
	snprintf(sql, sizeof(sql), "PRAGMA application_id = %d; PRAGMA user_version = %d",
	    SQ_APPLICATION_ID, sq_schema_version);
	if (sq_exec(c, sql) < 0 || sq_exec(c, "COMMIT") < 0) {
		sq_exec(c, "ROLLBACK");
		*error_r = "cannot commit the schema migration";
		return -1;
	}
	log_info("store", "migrated schema from=%d to=%d", from, sq_schema_version);
	return 0;
}

static int
sq_open_writer(struct sq_store *sq, const struct conf *conf, const char **error_r)
{
	sqlite3 *db = NULL;
	char mode[16] = "";
	int version = 0, sync = -1, want = conf->durability == CONF_DURABILITY_FULL ? 2 : 1;
	const char *why;

	if (sqlite3_open_v2(conf->storage_path, &db,
		SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		*error_r = db != NULL ? sqlite3_errmsg(db) : "cannot open the register";
		log_errorx("store", "cannot open path=%s: %s", conf->storage_path, *error_r);
		*error_r = "cannot open the register file";
		sqlite3_close(db);
		return -1;
	}
	sq->writer.db = db;
	sqlite3_busy_timeout(db, 5000);
	if ((why = sq_check_identity(db, &version)) != NULL) {
		*error_r = why;
		return -1;
	}
	if (sq_pragma_text(db, "PRAGMA journal_mode = WAL", mode, sizeof(mode)) < 0 ||
	    strcmp(mode, "wal") != 0) {
		*error_r = "the register cannot use write-ahead logging (journal_mode=WAL)";
		return -1;
	}
	sq_exec(&sq->writer, want == 2 ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
	if (sq_pragma_int(db, "PRAGMA synchronous", &sync) < 0 || sync < want) {
		*error_r = "SQLite refused synchronous=FULL; set [storage] durability = relaxed "
			   "to run without it";
		return -1;
	}
	sq_exec(&sq->writer, "PRAGMA cache_size = -8192; PRAGMA temp_store = MEMORY");
	if (sq_migrate(&sq->writer, version, error_r) < 0)
		return -1;
	if (want == 1)
		log_warnx("store", "durability=relaxed: acknowledged contacts may be lost on a "
				   "power cut");
	return 0;
}

static int
sq_open_reader(struct sq_store *sq, const struct conf *conf, const char **error_r)
{
	if (sqlite3_open_v2(conf->storage_path, &sq->reader.db,
		SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		*error_r = "cannot open the register for reading";
		return -1;
	}
	sqlite3_busy_timeout(sq->reader.db, 5000);
	sq_exec(&sq->reader, "PRAGMA cache_size = -8192; PRAGMA query_only = 1");
	return 0;
}

/* Runs one of the writer's fixed statements (savepoints), prepared once. */
static int
sq_step_once(struct sq_conn *c, const char *sql)
{
	sqlite3_stmt *st = sq_stmt(c, sql);

	return st != NULL && sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

static const char sql_savepoint[] = "SAVEPOINT req";
static const char sql_rollback_to[] = "ROLLBACK TO req";
static const char sql_release[] = "RELEASE req";

static void
sq_run_batch(struct sq_store *sq, struct store_req *batch, unsigned int n)
{
	uint64_t t0 = util_now_ns();
	int ok = sq_exec(&sq->writer, "BEGIN IMMEDIATE") == 0;

	for (struct store_req *r = batch; r != NULL && ok; r = r->next) {
		sq_step_once(&sq->writer, sql_savepoint);
		sq_op_run(&sq->writer, r);
		if (r->status != 0)
			sq_step_once(&sq->writer, sql_rollback_to);
		sq_step_once(&sq->writer, sql_release);
	}
	if (!ok || sq_refseq_flush(&sq->writer) < 0 || sq_exec(&sq->writer, "COMMIT") < 0) {
		/* Nothing of this batch is durable: every waiter hears so. */
		sq_exec(&sq->writer, "ROLLBACK");
		for (struct store_req *r = batch; r != NULL; r = r->next)
			store_req_fail(r, 503, "the register could not commit; try again");
		/* Reread after a rollback: a later batch must not reuse the numbers either way. */
		sq->writer.ref_year = 0;
	}
	batch->batch = n;
	batch->commit_ns = util_now_ns() - t0;
}

static void *
sq_writer_main(void *arg)
{
	struct sq_store *sq = arg;

	for (;;) {
		struct store_req *batch, *last = NULL;
		unsigned int n = 0;

		pthread_mutex_lock(&sq->mu);
		while (sq->queue_head == NULL && !sq->stopping)
			pthread_cond_wait(&sq->cv, &sq->mu);
		if (sq->queue_head == NULL && sq->stopping) {
			pthread_mutex_unlock(&sq->mu);
			break;
		}
		batch = sq->queue_head;
		for (struct store_req *r = batch; r != NULL && n < SQ_BATCH_MAX; r = r->next) {
			last = r;
			n++;
		}
		sq->queue_head = last->next;
		if (sq->queue_head == NULL)
			sq->queue_tail = &sq->queue_head;
		sq->queued -= n;
		last->next = NULL;
		pthread_mutex_unlock(&sq->mu);

		sq_run_batch(sq, batch, n);

		pthread_mutex_lock(&sq->mu);
		*sq->done_tail = batch;
		sq->done_tail = &last->next;
		pthread_mutex_unlock(&sq->mu);
		event_active(sq->done_ev, EV_READ, 0);
	}
	return NULL;
}

static void
sq_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sq_store *sq = arg;
	struct store_req *r, *next;

	pthread_mutex_lock(&sq->mu);
	r = sq->done_head;
	sq->done_head = NULL;
	sq->done_tail = &sq->done_head;
	pthread_mutex_unlock(&sq->mu);
	for (; r != NULL; r = next) {
		next = r->next;
		if (r->batch > 0) {
			metrics_observe(sq->batch_size, r->batch);
			metrics_observe(sq->commit_latency, (double)r->commit_ns / 1e9);
			metrics_add(sq->commits, 1);
		}
		if (r->status == 503)
			metrics_add(sq->commit_failures, 1);
		store_req_complete(r);
	}
}

static double
sq_queue_depth_cb(void *arg)
{
	struct sq_store *sq = arg;
	size_t n;

	pthread_mutex_lock(&sq->mu);
	n = sq->queued;
	pthread_mutex_unlock(&sq->mu);
	return (double)n;
}

static void sq_close(struct store *s);

static int
sq_open(struct store *s, const struct conf *conf, const char **error_r)
{
	struct sq_store *sq = calloc(1, sizeof(*sq));

	if (sq == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	s->impl = sq;
	sq->store = s;
	pthread_mutex_init(&sq->mu, NULL);
	pthread_cond_init(&sq->cv, NULL);
	sq->queue_tail = &sq->queue_head;
	sq->done_tail = &sq->done_head;
	if (sq_open_writer(sq, conf, error_r) < 0 || sq_open_reader(sq, conf, error_r) < 0)
		goto fail;
	if ((sq->done_ev = event_new(s->base, -1, 0, sq_done_cb, sq)) == NULL) {
		*error_r = "out of memory";
		goto fail;
	}
	sq->batch_size = metrics_series(s->metrics, METRIC_HISTOGRAM, "loket_store_commit_batch_size",
	    "Writes committed together in one transaction (group commit).", "", sq_batch_bounds,
	    sizeof(sq_batch_bounds) / sizeof(sq_batch_bounds[0]));
	sq->commit_latency = metrics_series(s->metrics, METRIC_HISTOGRAM,
	    "loket_store_commit_seconds", "Time to run and commit one batch, fsync included.", "",
	    metrics_latency_bounds, metrics_latency_nbounds);
	sq->commits = metrics_series(s->metrics, METRIC_COUNTER, "loket_store_commits_total",
	    "Transactions committed by the writer.", "", NULL, 0);
	sq->commit_failures = metrics_series(s->metrics, METRIC_COUNTER,
	    "loket_store_commit_failures_total", "Writes that failed because a commit failed.", "",
	    NULL, 0);
	metrics_gauge_fn(s->metrics, "loket_store_queue_depth", "Writes waiting for the writer.",
	    "", sq_queue_depth_cb, sq);
	if (pthread_create(&sq->thread, NULL, sq_writer_main, sq) != 0) {
		*error_r = "cannot start the storage thread";
		goto fail;
	}
	sq->thread_started = 1;
	log_info("store", "opened driver=sqlite path=%s schema=%d", conf->storage_path,
	    sq_schema_version);
	return 0;
fail:
	sq_close(s);
	return -1;
}

static void
sq_submit(struct store *s, struct store_req *req)
{
	struct sq_store *sq = s->impl;

	if (!store_op_is_write(req->op)) {
		sq_op_run(&sq->reader, req);
		store_req_complete(req);
		return;
	}
	req->next = NULL;
	pthread_mutex_lock(&sq->mu);
	*sq->queue_tail = req;
	sq->queue_tail = &req->next;
	sq->queued++;
	pthread_cond_signal(&sq->cv);
	pthread_mutex_unlock(&sq->mu);
}

static void
sq_close(struct store *s)
{
	struct sq_store *sq = s->impl;

	if (sq == NULL)
		return;
	if (sq->thread_started) {
		pthread_mutex_lock(&sq->mu);
		sq->stopping = 1;
		pthread_cond_signal(&sq->cv);
		pthread_mutex_unlock(&sq->mu);
		pthread_join(sq->thread, NULL);
		/* Everything queued is committed now; let the waiters hear it. */
		sq_done_cb(-1, 0, sq);
	}
	if (sq->done_ev != NULL)
		event_free(sq->done_ev);
	sq_conn_close(&sq->reader);
	if (sq->writer.db != NULL)
		sq_exec(&sq->writer, "PRAGMA wal_checkpoint(TRUNCATE)");
	sq_conn_close(&sq->writer);
	pthread_cond_destroy(&sq->cv);
	pthread_mutex_destroy(&sq->mu);
	free(sq);
	s->impl = NULL;
}

const struct store_driver store_sqlite_driver = {
	.name = "sqlite",
	.open = sq_open,
	.submit = sq_submit,
	.close = sq_close,
};
