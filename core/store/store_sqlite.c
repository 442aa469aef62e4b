/*
 * store_sqlite.c: the embedded register: SQLite in WAL mode with a writer
 * thread that commits whatever has queued in one transaction (group commit).
 *
 * Writes are queued from the loop, run by the writer thread, each in its own
 * savepoint inside the batch's transaction, and completed on the loop only
 * after COMMIT returned (with synchronous=FULL, after the fsync). Reads run
 * on a pool of reader threads (`[storage] readers`), each with its own
 * read-only connection, and complete on the loop the way writes do: WAL lets
 * them proceed while the writer commits, one slow read holds up neither
 * intake nor the other reads, and a read takes its snapshot when a reader
 * starts it, so it sees every write that was acknowledged before it was
 * submitted. The few reads whose callers need the answer before
 * store_submit returns run on the loop, on a connection of their own.
 *
 * A batch is all or nothing. A write's own error (a constraint) rolls back
 * its savepoint only; a full disk, no memory or an I/O error anywhere in the
 * batch (SQLite may have rolled the whole transaction back already) fails
 * every write of it with 503. An I/O error or a failed fsync stops the
 * register for good: after it the page cache cannot be trusted, so the WAL is
 * cut back to the last commit that succeeded and the daemon is told to stop.
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store_sqlite.h"
#include "store_sqlite_fold.h"
#include "util.h"

#define SQ_APPLICATION_ID 0x4c4f4b54 /* "LOKT" */
#define SQ_BATCH_MAX 1024
/* SQLite's own default for the automatic checkpoint, which ours replaces to see its errors. */
#define SQ_CHECKPOINT_FRAMES 1000
/* While the register cannot commit, the writer tries an empty write this often. */
#define SQ_PROBE_SECONDS 2

/* What a storage error means for the batch that met it. */
enum sq_fault {
	SQ_FAULT_NONE, /* the write's own error (a constraint): its savepoint is rolled back */
	SQ_FAULT_BATCH, /* full disk, no memory, busy: the batch fails, the next one may work */
	SQ_FAULT_FATAL, /* I/O error, failed fsync, corruption: the register stops */
};

/* One thread of the read pool with its own connection (and so its own prepared statements). */
struct sq_reader {
	struct sq_store *sq;
	struct sq_conn conn;
	pthread_t thread;
	int started;
};

/* One queue's depth under its lock, for the two queue gauges. */
struct sq_depth {
	pthread_mutex_t *mu;
	size_t *n;
};

struct sq_store {
	const struct loket_store_host *host;
	struct sq_conn writer;
	/* The loop's own read-only connection, for the reads answered inline (sq_read_inline). */
	struct sq_conn reader;
	/* The read pool. Under rmu: the queue the readers take from, the answered reads. */
	struct sq_reader *readers;
	unsigned int nreaders;
	int readers_open; /* loop thread only: whether reads go to the pool */
	pthread_mutex_t rmu;
	pthread_cond_t rcv;
	struct store_req *rq_head, **rq_tail;
	size_t rqueued;
	struct store_req *rdone_head, **rdone_tail;
	int rstopping;
	struct event *rdone_ev;
	char *path;
	int shm_fd; /* opened after an I/O error to read where the last good commit ends */
	pthread_t thread;
	int thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct store_req *queue_head, **queue_tail;
	size_t queued;
	struct store_req *done_head, **done_tail;
	int stopping;
	/* Under mu: the error of the last failed commit (0 when the last one worked). */
	int failing_rc;
	/* Under mu: the I/O error that stopped the register (0 while it runs). */
	int fatal_rc;
	int fatal_told;
	int commit_allowed; /* writer thread: set only around its own COMMIT */
	unsigned long checkpoint_failures, checkpoint_failures_counted;
	struct event *done_ev;
	struct loket_store_metric *batch_size;
	struct loket_store_metric *commit_latency;
	struct loket_store_metric *commits;
	struct loket_store_metric *commit_failures;
	struct loket_store_metric *checkpoint_failed;
	struct sq_depth write_depth, read_depth; /* what the queue gauges read */
	/* Under lease_mu: the leases (one node: this process's control socket keeps others out). */
	pthread_mutex_t lease_mu;
	struct sq_lease *leases;
};

/* A lease as the SQLite register keeps it: in memory, for the one process that runs on it. */
struct sq_lease {
	struct sq_lease *next;
	char holder[STORE_LEASE_HOLDER_MAX];
	uint64_t until_ns; /* on the monotonic clock */
	char name[];
};

/*
 * The worst storage error SQLite reported on this thread since the writer
 * last reset it. SQLite reports every failed statement through its error
 * log, also the ones a request's code handled and turned into its own
 * error, so a full disk inside a write cannot hide behind a 500.
 */
static _Thread_local int sq_thread_rc;
static _Thread_local char sq_thread_msg[256];
static int sq_errlog_installed;

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
	if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->cache[i].stmt, NULL)
	    != SQLITE_OK) {
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
static int
sq_check_identity(sqlite3 *db, int *version_r, const char **error_r)
{
	int app_id = 0, tables = 0;

	if (sq_pragma_int(db, "PRAGMA application_id", &app_id) < 0
	    || sq_pragma_int(db, "PRAGMA user_version", version_r) < 0
	    || sq_pragma_int(db, "SELECT count(*) FROM sqlite_master", &tables) < 0)
		*error_r = "the file is not an SQLite database or is corrupt; it was left untouched";
	else if (app_id != 0 && app_id != SQ_APPLICATION_ID)
		*error_r = "the file is an SQLite database of another application; it was left "
			   "untouched";
	else if (app_id == 0 && tables > 0)
		*error_r = "the file is an SQLite database that is not a loket register; it was "
			   "left untouched";
	else if (*version_r > sq_schema_version)
		*error_r = "the register was written by a newer loketd (its schema is newer than "
			   "this loketd knows); it was left untouched";
	else
		return 0;
	return -1;
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
sq_open_writer(struct sq_store *sq, const char **error_r)
{
	sqlite3 *db = NULL;
	char mode[16] = "";
	int version = 0, sync = -1,
	    want = strcmp(sq->host->conf_get(sq->host, "durability"), "relaxed") == 0 ? 1 : 2;

	if (sqlite3_open_v2(sq->path, &db,
	        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL)
	    != SQLITE_OK) {
		/* SQLite's text names the file and its cause: the log's, not the sentence's. */
		log_errorx("store", "cannot open path=%s: %s", sq->path,
		    db != NULL ? sqlite3_errmsg(db) : "out of memory");
		*error_r = "cannot open the register file";
		sqlite3_close(db);
		return -1;
	}
	sq->writer.db = db;
	sqlite3_busy_timeout(db, 5000);
	/* The search index's triggers call them on every write, and the migration that builds it. */
	if (sq_fold_functions(db) < 0) {
		*error_r = "cannot register the search index's SQL functions";
		return -1;
	}
	if (sq_check_identity(db, &version, error_r) < 0)
		return -1;
	if (sq_pragma_text(db, "PRAGMA journal_mode = WAL", mode, sizeof(mode)) < 0
	    || strcmp(mode, "wal") != 0) {
		*error_r = "the register cannot use write-ahead logging (journal_mode=WAL)";
		return -1;
	}
	sq_exec(
	    &sq->writer, want == 2 ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
	if (sq_pragma_int(db, "PRAGMA synchronous", &sync) < 0 || sync < want) {
		*error_r = "SQLite refused synchronous=FULL; set [storage] durability = relaxed "
		           "to run without it";
		return -1;
	}
	sq_exec(&sq->writer, "PRAGMA cache_size = -8192; PRAGMA temp_store = MEMORY");
	if (sq_migrate(&sq->writer, version, error_r) < 0)
		return -1;
	if (want == 1)
		log_warnx("store",
		    "durability=relaxed: acknowledged contacts may be lost on a "
		    "power cut");
	return 0;
}

/*
 * A read-only connection. The pool's connections keep a smaller page cache
 * each: the kernel's page cache is shared by all of them, their own is not.
 */
static int
sq_open_reader(struct sq_conn *c, const char *path, int cache_kib, const char **error_r)
{
	char sql[96];

	if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL)
	    != SQLITE_OK) {
		*error_r = "cannot open the register for reading";
		return -1;
	}
	sqlite3_busy_timeout(c->db, 5000);
	snprintf(sql, sizeof(sql), "PRAGMA cache_size = -%d; PRAGMA query_only = 1", cache_kib);
	sq_exec(c, sql);
	return 0;
}

static enum sq_fault
sq_fault_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
	case SQLITE_NOMEM:
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_READONLY:
		return SQ_FAULT_BATCH;
	case SQLITE_IOERR:
		return rc == SQLITE_IOERR_NOMEM ? SQ_FAULT_BATCH : SQ_FAULT_FATAL;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return SQ_FAULT_FATAL;
	default:
		return SQ_FAULT_NONE;
	}
}

/* The system call an I/O error came from, for the log line that stops the register. */
static const char *
sq_ioerr_call(int rc)
{
	switch (rc) {
	case SQLITE_IOERR_FSYNC:
		return " in fsync";
	case SQLITE_IOERR_DIR_FSYNC:
		return " in fsync of the directory";
	case SQLITE_IOERR_WRITE:
		return " in write";
	case SQLITE_IOERR_READ:
	case SQLITE_IOERR_SHORT_READ:
		return " in read";
	case SQLITE_IOERR_TRUNCATE:
		return " in truncate";
	case SQLITE_IOERR_SHMOPEN:
	case SQLITE_IOERR_SHMSIZE:
	case SQLITE_IOERR_SHMMAP:
		return " in the WAL index (-shm)";
	default:
		return "";
	}
}

/* A word for a metric label and the client's message. */
static const char *
sq_fault_cause(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return "disk_full";
	case SQLITE_NOMEM:
		return "no_memory";
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return "busy";
	case SQLITE_READONLY:
		return "read_only";
	case SQLITE_IOERR:
		return rc == SQLITE_IOERR_NOMEM ? "no_memory" : "io_error";
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return "corrupt";
	default:
		return "error";
	}
}

/* SQLite's error log: runs on the thread that met the error; calls no SQLite function. */
static void
sq_errlog_cb(void *arg, int rc, const char *msg)
{
	enum sq_fault f = sq_fault_of(rc);

	(void)arg;
	if (f == SQ_FAULT_NONE)
		return;
	if (sq_thread_rc == 0 || f > sq_fault_of(sq_thread_rc)) {
		sq_thread_rc = rc;
		/* SQLite's own words name the file, the call and errno; never a value. */
		snprintf(sq_thread_msg, sizeof(sq_thread_msg), "%s", msg != NULL ? msg : "");
	}
	if (f == SQ_FAULT_FATAL)
		log_warnx("store", "sqlite: %s (code %d)", msg != NULL ? msg : "", rc);
}

/*
 * Checkpoints as SQLite's automatic checkpoint does, but a failure is logged
 * (and counted) instead of ignored. The commit that ran the hook stands
 * either way; an I/O error still stops the register, as a failed fsync does.
 */
static int
sq_wal_hook_cb(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct sq_store *sq = arg;
	int rc;

	if (frames < SQ_CHECKPOINT_FRAMES)
		return SQLITE_OK;
	rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	if (rc == SQLITE_OK || rc == SQLITE_BUSY)
		return SQLITE_OK;
	rc = sqlite3_extended_errcode(db);
	log_errorx("store",
	    "automatic checkpoint failed: %s (code %d) wal_frames=%d; the WAL "
	    "keeps the writes and grows until a checkpoint succeeds",
	    sqlite3_errstr(rc), rc, frames);
	pthread_mutex_lock(&sq->mu);
	sq->checkpoint_failures++;
	pthread_mutex_unlock(&sq->mu);
	if (sq_fault_of(rc) == SQ_FAULT_FATAL && sq_fault_of(sq_thread_rc) != SQ_FAULT_FATAL)
		sq_thread_rc = rc;
	return SQLITE_OK;
}

/*
 * Only the writer's own COMMIT may commit. When SQLite has rolled the batch's
 * transaction back by itself, a statement a write runs after that (one
 * whose error the write's code ignored) would start and commit a
 * transaction of its own before the writer can look: this turns such a
 * commit into a rollback, so nothing of a failed batch is ever stored.
 */
static int
sq_commit_hook_cb(void *arg)
{
	return ((struct sq_store *)arg)->commit_allowed ? 0 : 1;
}

/* Runs one of the writer's fixed statements (savepoints), prepared once; its result code. */
static int
sq_step_once(struct sq_conn *c, const char *sql)
{
	sqlite3_stmt *st = sq_stmt(c, sql);
	int rc;

	if (st == NULL)
		return sqlite3_extended_errcode(c->db) != SQLITE_OK
		    ? sqlite3_extended_errcode(c->db)
		    : SQLITE_ERROR;
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int
sq_exec_rc(struct sq_conn *c, const char *sql)
{
	return sqlite3_exec(c->db, sql, NULL, NULL, NULL);
}

static const char sql_savepoint[] = "SAVEPOINT req";
static const char sql_rollback_to[] = "ROLLBACK TO req";
static const char sql_release[] = "RELEASE req";

/*
 * Whether the batch's transaction is still whole after a write: SQLite rolls
 * a transaction back by itself on some errors, and what would follow would
 * run (and commit) on its own. Returns a result code to fail the batch with.
 */
static int
sq_batch_intact(struct sq_conn *c)
{
	if (sq_fault_of(sq_thread_rc) != SQ_FAULT_NONE)
		return sq_thread_rc;
	if (sqlite3_get_autocommit(c->db))
		return SQLITE_ABORT_ROLLBACK;
	return SQLITE_OK;
}

/*
 * Cuts the WAL back to the end of the last commit that succeeded. A commit
 * whose fsync failed may have left its frames, commit mark included, in the
 * WAL: SQLite would recover them at the next start and writes answered 503
 * would come back. The WAL-index header (in the -shm file, see SQLite's
 * walformat.html) is only updated after a successful commit, so it still
 * says where that end is. Returns 0, or -1 when the cut could not be made.
 */
static int
sq_wal_cut(struct sq_store *sq)
{
	unsigned char hdr[96];
	uint32_t version, frames, frames2;
	uint16_t page;
	off_t end;
	char path[4200];
	struct stat stw;
	int fd, rc = -1;

	if (sq->shm_fd < 0) {
		snprintf(path, sizeof(path), "%s-shm", sq->path);
		/* Kept open until the connections are closed: closing it would drop their locks. */
		sq->shm_fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (sq->shm_fd < 0 || pread(sq->shm_fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
		return -1;
	memcpy(&version, hdr, 4);
	memcpy(&page, hdr + 14, 2);
	memcpy(&frames, hdr + 16, 4);
	memcpy(&frames2, hdr + 48 + 16, 4);
	if (version != 3007000 || hdr[12] != 1 || memcmp(hdr, hdr + 48, 48) != 0
	    || frames != frames2)
		return -1;
	end = frames == 0 ? 0 : 32 + (off_t)frames * ((page == 1 ? 65536 : page) + 24);
	snprintf(path, sizeof(path), "%s-wal", sq->path);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : -1;
	if (fstat(fd, &stw) == 0 && stw.st_size <= end)
		rc = 0;
	else if (ftruncate(fd, end) == 0 && fsync(fd) == 0)
		rc = 0;
	close(fd);
	if (rc == 0)
		log_info("store", "WAL cut back to the last good commit wal_frames=%u", frames);
	return rc;
}

/* The register stops: nothing is acknowledged after an I/O error. Writer thread. */
static void
sq_go_fatal(struct sq_store *sq, int rc)
{
	const char *os = strstr(sq_thread_msg, ": (");
	int cut = sq_wal_cut(sq), err = 0;
	char why[64] = "";

	/* SQLite's message carries errno as a number (its text may be empty): say it in words. */
	if (os != NULL && sscanf(os, ": (%d)", &err) == 1 && err > 0)
		snprintf(why, sizeof(why), " (errno %d: %s)", err, strerror(err));

	log_errorx("store",
	    "the register stopped after an I/O error%s: %s (code %d)%s%s%s; loketd "
	    "stops because after a failed write or fsync the page cache can no longer "
	    "be trusted; check the disk, then start loketd again%s",
	    sq_ioerr_call(rc), sqlite3_errstr(rc), rc, sq_thread_msg[0] != '\0' ? ": " : "",
	    sq_thread_msg, why,
	    cut == 0 ? ""
	             : " (the WAL could not be cut back: the last unacknowledged batch may "
	               "come back at the next start)");
	pthread_mutex_lock(&sq->mu);
	sq->fatal_rc = rc;
	sq->failing_rc = rc;
	pthread_mutex_unlock(&sq->mu);
}

/*
 * Runs and commits one batch. Completions are made by the caller after this
 * returns, so none is delivered before COMMIT returned.
 */
static void
sq_run_batch(struct sq_store *sq, struct store_req *batch, unsigned int n)
{
	struct sq_conn *w = &sq->writer;
	uint64_t t0 = util_now_ns();
	int rc, fatal;

	pthread_mutex_lock(&sq->mu);
	fatal = sq->fatal_rc;
	pthread_mutex_unlock(&sq->mu);
	if (fatal != 0) {
		for (struct store_req *r = batch; r != NULL; r = r->next)
			store_req_fail(r, STORE_UNAVAILABLE,
			    "the register stopped after an I/O error; nothing "
			    "of this request was stored, try again later");
		return;
	}
	sq_thread_rc = 0;
	sq_thread_msg[0] = '\0';
	rc = sq_exec_rc(w, "BEGIN IMMEDIATE");
	for (struct store_req *r = batch; r != NULL && rc == SQLITE_OK; r = r->next) {
		if ((rc = sq_step_once(w, sql_savepoint)) != SQLITE_OK)
			break;
		sq_op_run(w, r);
		if (r->result != STORE_OK && (rc = sq_step_once(w, sql_rollback_to)) != SQLITE_OK)
			break;
		if ((rc = sq_step_once(w, sql_release)) != SQLITE_OK)
			break;
		rc = sq_batch_intact(w);
	}
	if (rc == SQLITE_OK && sq_refseq_flush(w) < 0)
		rc = sqlite3_extended_errcode(w->db) != SQLITE_OK ? sqlite3_extended_errcode(w->db)
		                                                  : SQLITE_ERROR;
	if (rc == SQLITE_OK && sq_search_flush(w) < 0)
		rc = sqlite3_extended_errcode(w->db) != SQLITE_OK ? sqlite3_extended_errcode(w->db)
		                                                  : SQLITE_ERROR;
	if (rc == SQLITE_OK)
		rc = sq_batch_intact(w);
	if (rc == SQLITE_OK) {
		sq->commit_allowed = 1;
		rc = sq_exec_rc(w, "COMMIT");
		sq->commit_allowed = 0;
	}
	if (rc == SQLITE_OK) {
		batch->batch = n;
		batch->commit_ns = util_now_ns() - t0;
		pthread_mutex_lock(&sq->mu);
		sq->failing_rc = 0;
		pthread_mutex_unlock(&sq->mu);
		/* The commit stands; an I/O error its checkpoint met still stops what follows. */
		if (sq_fault_of(sq_thread_rc) == SQ_FAULT_FATAL)
			sq_go_fatal(sq, sq_thread_rc);
		return;
	}
	/* The error SQLite logged first says more than the ROLLBACK it caused. */
	if (sq_fault_of(sq_thread_rc) > sq_fault_of(rc))
		rc = sq_thread_rc;
	if (sq_fault_of(rc) == SQ_FAULT_FATAL) {
		sq_go_fatal(sq, rc);
	} else {
		sq_exec_rc(w, "ROLLBACK");
		if (sq_fault_of(rc) == SQ_FAULT_NONE)
			rc = SQLITE_ERROR;
		log_warnx("store", "a batch failed and was rolled back: %s (code %d) writes=%u",
		    sqlite3_errstr(rc), rc, n);
		pthread_mutex_lock(&sq->mu);
		sq->failing_rc = rc;
		pthread_mutex_unlock(&sq->mu);
	}
	/* Nothing of this batch is durable: every waiter hears so, none gets an id or number. */
	for (struct store_req *r = batch; r != NULL; r = r->next)
		store_req_fail(r, STORE_UNAVAILABLE,
		    "%s; nothing of this request was stored, try again later",
		    (rc & 0xff) == SQLITE_FULL ? "the register cannot store right now: the disk is "
		                                 "full"
		        : sq_fault_of(rc) == SQ_FAULT_FATAL
		        ? "the register stopped after an I/O error"
		        : "the register could not commit");
	/* Reread after a rollback: a later batch must not reuse the numbers either way. */
	w->ref_year = 0;
	w->ref_dirty = 0;
	batch->batch = n;
	batch->commit_rc = rc;
	batch->commit_ns = util_now_ns() - t0;
}

/*
 * While the register cannot commit and nothing is queued, an empty write
 * (the schema version written again) tells when space has returned, so
 * /healthz recovers without waiting for a client to try.
 */
static void
sq_probe(struct sq_store *sq)
{
	char sql[96];
	int rc;

	sq_thread_rc = 0;
	sq_thread_msg[0] = '\0';
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", sq_schema_version);
	rc = sq_exec_rc(&sq->writer, "BEGIN IMMEDIATE");
	if (rc == SQLITE_OK)
		rc = sq_exec_rc(&sq->writer, sql);
	if (rc == SQLITE_OK && (rc = sq_batch_intact(&sq->writer)) == SQLITE_OK) {
		sq->commit_allowed = 1;
		rc = sq_exec_rc(&sq->writer, "COMMIT");
		sq->commit_allowed = 0;
	}
	if (rc == SQLITE_OK) {
		log_info("store", "the register commits again");
		pthread_mutex_lock(&sq->mu);
		sq->failing_rc = 0;
		pthread_mutex_unlock(&sq->mu);
		return;
	}
	if (sq_fault_of(sq_thread_rc) > sq_fault_of(rc))
		rc = sq_thread_rc;
	if (sq_fault_of(rc) == SQ_FAULT_FATAL)
		sq_go_fatal(sq, rc);
	else
		sq_exec_rc(&sq->writer, "ROLLBACK");
}

static void *
sq_writer_main(void *arg)
{
	struct sq_store *sq = arg;

	for (;;) {
		struct store_req *batch, *last = NULL;
		unsigned int n = 0;

		pthread_mutex_lock(&sq->mu);
		while (sq->queue_head == NULL && !sq->stopping) {
			struct timespec until;

			if (sq->failing_rc == 0 || sq->fatal_rc != 0) {
				pthread_cond_wait(&sq->cv, &sq->mu);
				continue;
			}
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += SQ_PROBE_SECONDS;
			if (pthread_cond_timedwait(&sq->cv, &sq->mu, &until) == ETIMEDOUT
			    && sq->queue_head == NULL && !sq->stopping) {
				pthread_mutex_unlock(&sq->mu);
				sq_probe(sq);
				pthread_mutex_lock(&sq->mu);
			}
		}
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

static const char sql_begin[] = "BEGIN";
static const char sql_commit[] = "COMMIT";

/*
 * Runs one read in a transaction of its own: its statements share one
 * snapshot, taken by the first of them, so after the request was taken and
 * after every commit whose completion the caller had seen.
 */
static void
sq_read_run(struct sq_conn *c, struct store_req *req)
{
	if (sq_step_once(c, sql_begin) != SQLITE_OK) {
		store_req_fail(req, STORE_UNAVAILABLE,
		    "the register cannot be read right now; try again later");
		return;
	}
	sq_op_run(c, req);
	/*
	 * A statement left on a row would keep this snapshot alive past COMMIT,
	 * and the next read would not see the writes committed meanwhile.
	 */
	for (size_t i = 0; i < SQ_STMT_CACHE && c->cache[i].sql != NULL; i++)
		sqlite3_reset(c->cache[i].stmt);
	if (sq_step_once(c, sql_commit) != SQLITE_OK)
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

/*
 * Reads answered on the loop, before store_submit returns. Their callers
 * need the answer at once: the tokens must be known before the first
 * request is served. Or they are the
 * daemon's own repeated reads (what is due, when the next is due, the
 * counts, the events after an id), where an older answer arriving after a
 * newer one would undo it and an answer arriving at shut-down would reach
 * timers already freed. All are keyed or bounded lookups, not lists a
 * client asks for.
 */
static int
sq_read_inline(enum store_op op)
{
	switch (op) {
	case STORE_TOKEN_LIST:
	case STORE_TIMERS_DUE:
	case STORE_TIMERS_NEXT:
	case STORE_OUTBOX_DUE:
	case STORE_OUTBOX_NEXT:
	case STORE_COUNTS:
	case STORE_EVENTS_AFTER:
		return 1;
	default:
		return 0;
	}
}

/* The next queued read, or NULL when there is none; under rmu. */
static struct store_req *
sq_read_take(struct sq_store *sq)
{
	struct store_req *req = sq->rq_head;

	if (req == NULL)
		return NULL;
	if ((sq->rq_head = req->next) == NULL)
		sq->rq_tail = &sq->rq_head;
	req->next = NULL;
	sq->rqueued--;
	return req;
}

static void *
sq_reader_main(void *arg)
{
	struct sq_reader *r = arg;
	struct sq_store *sq = r->sq;

	for (;;) {
		struct store_req *req;

		pthread_mutex_lock(&sq->rmu);
		while ((req = sq_read_take(sq)) == NULL && !sq->rstopping)
			pthread_cond_wait(&sq->rcv, &sq->rmu);
		pthread_mutex_unlock(&sq->rmu);
		/* Stopping: what was queued has been answered, by this reader or another. */
		if (req == NULL)
			break;
		sq_read_run(&r->conn, req);
		store_req_view(req);
		pthread_mutex_lock(&sq->rmu);
		*sq->rdone_tail = req;
		sq->rdone_tail = &req->next;
		pthread_mutex_unlock(&sq->rmu);
		event_active(sq->rdone_ev, EV_READ, 0);
	}
	return NULL;
}

/* Completes the reads the pool answered; on the loop. */
static void
sq_read_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sq_store *sq = arg;
	struct store_req *r, *next;

	pthread_mutex_lock(&sq->rmu);
	r = sq->rdone_head;
	sq->rdone_head = NULL;
	sq->rdone_tail = &sq->rdone_head;
	pthread_mutex_unlock(&sq->rmu);
	for (; r != NULL; r = next) {
		next = r->next;
		r->next = NULL;
		store_req_complete(r);
	}
}

static int
sq_readers_start(struct sq_store *sq, const char **error_r)
{
	int64_t readers = sq->host->conf_int(sq->host, "readers");
	unsigned int n = readers > 0 ? (unsigned int)readers : 1;

	if ((sq->readers = calloc(n, sizeof(*sq->readers))) == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	sq->nreaders = n;
	for (unsigned int i = 0; i < n; i++) {
		sq->readers[i].sq = sq;
		if (sq_open_reader(&sq->readers[i].conn, sq->path, 2048, error_r) < 0)
			return -1;
	}
	for (unsigned int i = 0; i < n; i++) {
		if (pthread_create(&sq->readers[i].thread, NULL, sq_reader_main, &sq->readers[i])
		    != 0) {
			*error_r = "cannot start the storage reader threads";
			return -1;
		}
		sq->readers[i].started = 1;
	}
	sq->readers_open = 1;
	return 0;
}

/*
 * Lets the readers answer what is queued, joins them and completes their
 * answers. Reads asked from then on (by those completions, say) run on the
 * loop; writes they submit still reach the writer, which stops after this.
 */
static void
sq_readers_stop(struct sq_store *sq)
{
	pthread_mutex_lock(&sq->rmu);
	sq->rstopping = 1;
	pthread_cond_broadcast(&sq->rcv);
	pthread_mutex_unlock(&sq->rmu);
	for (unsigned int i = 0; i < sq->nreaders; i++)
		if (sq->readers[i].started)
			pthread_join(sq->readers[i].thread, NULL);
	sq->readers_open = 0;
	if (sq->rdone_ev != NULL)
		sq_read_done_cb(-1, 0, sq);
}

static const struct timeval sq_fatal_delay = { 0, 200000 };

static void
sq_fatal_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sq_store *sq = arg;

	sq->host->fatal(sq->host);
}

static void
sq_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sq_store *sq = arg;
	struct store_req *r, *next;
	unsigned long ckpt_failed;
	int fatal;

	pthread_mutex_lock(&sq->mu);
	r = sq->done_head;
	sq->done_head = NULL;
	sq->done_tail = &sq->done_head;
	ckpt_failed = sq->checkpoint_failures - sq->checkpoint_failures_counted;
	sq->checkpoint_failures_counted = sq->checkpoint_failures;
	fatal = sq->fatal_rc != 0 && !sq->fatal_told;
	if (fatal)
		sq->fatal_told = 1;
	pthread_mutex_unlock(&sq->mu);
	if (ckpt_failed > 0)
		sq->host->metric_add(sq->checkpoint_failed, (double)ckpt_failed);
	for (; r != NULL; r = next) {
		next = r->next;
		if (r->batch > 0 && r->commit_rc == 0) {
			sq->host->metric_observe(sq->batch_size, r->batch);
			sq->host->metric_observe(sq->commit_latency, (double)r->commit_ns / 1e9);
			sq->host->metric_add(sq->commits, 1);
		} else if (r->batch > 0) {
			char labels[64];

			snprintf(
			    labels, sizeof(labels), "cause=\"%s\"", sq_fault_cause(r->commit_rc));
			sq->host->metric_add(
			    sq->host->metric(sq->host, LOKET_STORE_METRIC_COUNTER,
			        "loket_store_failed_commits_total",
			        "Transactions the writer could not commit (every write in them "
			        "was answered 503), by cause.",
			        labels, NULL, 0),
			    1);
		}
		if (r->result == STORE_UNAVAILABLE)
			sq->host->metric_add(sq->commit_failures, 1);
		store_req_complete(r);
	}
	/* A moment after the completions, so that the 503s of the failed batch leave first. */
	if (fatal
	    && (sq->stopping
	        || event_base_once(sq->host->base, -1, EV_TIMEOUT, sq_fatal_cb, sq, &sq_fatal_delay)
	            < 0))
		sq_fatal_cb(-1, 0, sq);
}

static int
sq_health(void *impl, const char **why_r)
{
	struct sq_store *sq = impl;
	int rc, fatal;

	pthread_mutex_lock(&sq->mu);
	rc = sq->failing_rc;
	fatal = sq->fatal_rc;
	pthread_mutex_unlock(&sq->mu);
	if (rc == 0)
		return 0;
	if (fatal != 0)
		*why_r = "the register stopped after an I/O error and cannot commit";
	else if ((rc & 0xff) == SQLITE_FULL)
		*why_r = "the register cannot commit: the disk is full";
	else
		*why_r = "the register cannot commit";
	return -1;
}

static double
sq_writable_cb(void *arg)
{
	const char *why;

	return sq_health(arg, &why) == 0 ? 1 : 0;
}

/* The depth of one queue (writes or reads) under its lock, for its gauge. */
static double
sq_depth_cb(void *arg)
{
	const struct sq_depth *d = arg;
	size_t n;

	pthread_mutex_lock(d->mu);
	n = *d->n;
	pthread_mutex_unlock(d->mu);
	return (double)n;
}

static void sq_close(void *impl);

static int
sq_open(const struct loket_store_host *host, void **impl_r, const char **error_r)
{
	struct sq_store *sq = calloc(1, sizeof(*sq));
	const char *path = host->conf_get(host, "path");

	*impl_r = NULL;
	if (sq == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	sq->host = host;
	sq->shm_fd = -1;
	pthread_mutex_init(&sq->lease_mu, NULL);
	pthread_mutex_init(&sq->mu, NULL);
	pthread_cond_init(&sq->cv, NULL);
	sq->queue_tail = &sq->queue_head;
	sq->done_tail = &sq->done_head;
	pthread_mutex_init(&sq->rmu, NULL);
	pthread_cond_init(&sq->rcv, NULL);
	sq->rq_tail = &sq->rq_head;
	sq->rdone_tail = &sq->rdone_head;
	if ((sq->path = strdup(path)) == NULL) {
		*error_r = "out of memory";
		goto fail;
	}
	/*
	 * Before the first connection: SQLite takes its error log only before it
	 * starts. And no memory statistics (loketd reads none): with them every
	 * allocation of every connection takes one global mutex, which the
	 * writer and the reader threads then queue on.
	 */
	if (!sq_errlog_installed
	    && sqlite3_config(SQLITE_CONFIG_LOG, sq_errlog_cb, NULL) == SQLITE_OK) {
		sq_errlog_installed = 1;
		sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	}
	if (!sq_errlog_installed)
		log_warnx("store",
		    "SQLite's error log is taken; a full disk is seen only where a "
		    "statement reports it");
	if (sq_open_writer(sq, error_r) < 0
	    || sq_open_reader(&sq->reader, sq->path, 8192, error_r) < 0)
		goto fail;
	sqlite3_extended_result_codes(sq->writer.db, 1);
	sqlite3_wal_hook(sq->writer.db, sq_wal_hook_cb, sq);
	sqlite3_commit_hook(sq->writer.db, sq_commit_hook_cb, sq);
	if ((sq->done_ev = event_new(host->base, -1, 0, sq_done_cb, sq)) == NULL
	    || (sq->rdone_ev = event_new(host->base, -1, 0, sq_read_done_cb, sq)) == NULL) {
		*error_r = "out of memory";
		goto fail;
	}
	sq->batch_size
	    = host->metric(host, LOKET_STORE_METRIC_HISTOGRAM, "loket_store_commit_batch_size",
	        "Writes committed together in one transaction (group commit).", "", sq_batch_bounds,
	        sizeof(sq_batch_bounds) / sizeof(sq_batch_bounds[0]));
	sq->commit_latency
	    = host->metric(host, LOKET_STORE_METRIC_HISTOGRAM, "loket_store_commit_seconds",
	        "Time to run and commit one batch, fsync included.", "", NULL, 0);
	sq->commits = host->metric(host, LOKET_STORE_METRIC_COUNTER, "loket_store_commits_total",
	    "Transactions committed by the writer.", "", NULL, 0);
	sq->commit_failures
	    = host->metric(host, LOKET_STORE_METRIC_COUNTER, "loket_store_commit_failures_total",
	        "Writes that failed because a commit failed.", "", NULL, 0);
	sq->checkpoint_failed = host->metric(host, LOKET_STORE_METRIC_COUNTER,
	    "loket_store_checkpoint_failures_total",
	    "Automatic WAL checkpoints that failed (each is logged).", "", NULL, 0);
	host->metric_gauge_fn(host, "loket_store_writable",
	    "1 when the register's last commit succeeded, 0 when it cannot commit.", sq_writable_cb,
	    sq);
	sq->write_depth = (struct sq_depth) { &sq->mu, &sq->queued };
	sq->read_depth = (struct sq_depth) { &sq->rmu, &sq->rqueued };
	host->metric_gauge_fn(host, "loket_store_queue_depth", "Writes waiting for the writer.",
	    sq_depth_cb, &sq->write_depth);
	host->metric_gauge_fn(host, "loket_store_read_queue_depth",
	    "Reads waiting for a reader thread.", sq_depth_cb, &sq->read_depth);
	if (pthread_create(&sq->thread, NULL, sq_writer_main, sq) != 0) {
		*error_r = "cannot start the storage thread";
		goto fail;
	}
	sq->thread_started = 1;
	if (sq_readers_start(sq, error_r) < 0)
		goto fail;
	log_info("store", "opened driver=sqlite path=%s schema=%d readers=%u", sq->path,
	    sq_schema_version, sq->nreaders);
	*impl_r = sq;
	return 0;
fail:
	sq_close(sq);
	return -1;
}

static void
sq_submit_read(struct sq_store *sq, struct store_req *req)
{
	json_t *own;

	req->next = NULL;
	if (sq_read_inline(req->op) || !sq->readers_open) {
		sq_read_run(&sq->reader, req);
		store_req_complete(req);
		return;
	}
	/*
	 * The reader gets a document nobody else holds: the caller's may share
	 * parts (a token's scope) that the loop goes on using meanwhile.
	 */
	if ((own = json_deep_copy(req->in)) == NULL && req->in != NULL) {
		store_req_fail(req, STORE_UNAVAILABLE, "out of memory");
		store_req_complete(req);
		return;
	}
	json_decref(req->in);
	req->in = own;
	pthread_mutex_lock(&sq->rmu);
	*sq->rq_tail = req;
	sq->rq_tail = &req->next;
	sq->rqueued++;
	pthread_cond_signal(&sq->rcv);
	pthread_mutex_unlock(&sq->rmu);
}

static void
sq_submit(void *impl, struct store_req *req)
{
	struct sq_store *sq = impl;

	if (!store_op_is_write(req->op)) {
		sq_submit_read(sq, req);
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
sq_close(void *impl)
{
	struct sq_store *sq = impl;

	if (sq == NULL)
		return;
	/* Readers first: writes the answered reads lead to still reach the writer. */
	sq_readers_stop(sq);
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
	if (sq->rdone_ev != NULL)
		event_free(sq->rdone_ev);
	if (sq->fatal_rc != 0) {
		/* No more writes to a disk that failed: what the WAL holds is recovered at start.
		 */
		if (sq->reader.db != NULL)
			sqlite3_db_config(sq->reader.db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
		for (unsigned int i = 0; i < sq->nreaders; i++)
			if (sq->readers[i].conn.db != NULL)
				sqlite3_db_config(sq->readers[i].conn.db,
				    SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
		if (sq->writer.db != NULL)
			sqlite3_db_config(sq->writer.db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	}
	for (unsigned int i = 0; i < sq->nreaders; i++)
		sq_conn_close(&sq->readers[i].conn);
	free(sq->readers);
	sq_conn_close(&sq->reader);
	if (sq->writer.db != NULL && sq->fatal_rc == 0)
		sq_exec(&sq->writer, "PRAGMA wal_checkpoint(TRUNCATE)");
	sq_conn_close(&sq->writer);
	if (sq->shm_fd >= 0)
		close(sq->shm_fd);
	free(sq->path);
	pthread_cond_destroy(&sq->rcv);
	pthread_mutex_destroy(&sq->rmu);
	pthread_cond_destroy(&sq->cv);
	pthread_mutex_destroy(&sq->mu);
	while (sq->leases != NULL) {
		struct sq_lease *l = sq->leases;

		sq->leases = l->next;
		free(l);
	}
	pthread_mutex_destroy(&sq->lease_mu);
	free(sq);
}

static enum store_result
sq_blob_put_cb(void *impl, const void *data, size_t len, unsigned int flags, char sha256_hex[65])
{
	return sq_blob_put(((struct sq_store *)impl)->host->data_dir, data, len, flags, sha256_hex);
}

static enum store_result
sq_blob_sync_cb(void *impl)
{
	return sq_blob_sync(((struct sq_store *)impl)->host->data_dir);
}

static enum store_result
sq_blob_get_cb(void *impl, const char *sha256_hex, void **data_r, size_t *len_r)
{
	return sq_blob_get(((struct sq_store *)impl)->host->data_dir, sha256_hex, data_r, len_r);
}

/* One node owns a SQLite register: there is nobody to tell. */
static int
sq_broadcast(void *impl, const char *what)
{
	(void)impl;
	(void)what;
	return 0;
}

/*
 * Only one process runs on a SQLite register (its control socket refuses a
 * second loketd on the data_dir), so its leases live in that process: the
 * same rules as on a shared register, without the database.
 */
static enum store_result
sq_lease_cb(void *impl, const char *name, const char *holder, int64_t ttl_ms, int release,
    char was_r[STORE_LEASE_HOLDER_MAX])
{
	struct sq_store *sq = impl;
	struct sq_lease **lp, *l;
	uint64_t now = util_now_ns();
	enum store_result res = STORE_OK;

	if (was_r != NULL)
		was_r[0] = '\0';
	pthread_mutex_lock(&sq->lease_mu);
	for (lp = &sq->leases; *lp != NULL && strcmp((*lp)->name, name) != 0; lp = &(*lp)->next)
		;
	l = *lp;
	/* Also one that ran out: the log says whose lease was taken over. */
	if (l != NULL && was_r != NULL)
		snprintf(was_r, STORE_LEASE_HOLDER_MAX, "%s", l->holder);
	if (release) {
		if (l != NULL && strcmp(l->holder, holder) == 0) {
			*lp = l->next;
			free(l);
		}
	} else if (l != NULL && l->until_ns > now && strcmp(l->holder, holder) != 0) {
		res = STORE_CONFLICT;
	} else {
		if (l == NULL) {
			if ((l = calloc(1, sizeof(*l) + strlen(name) + 1)) == NULL) {
				pthread_mutex_unlock(&sq->lease_mu);
				return STORE_UNAVAILABLE;
			}
			strcpy(l->name, name);
			l->next = sq->leases;
			sq->leases = l;
		}
		snprintf(l->holder, sizeof(l->holder), "%s", holder);
		l->until_ns = now + (uint64_t)ttl_ms * 1000000u;
	}
	pthread_mutex_unlock(&sq->lease_mu);
	return res;
}

const struct store_driver store_sqlite_driver = {
	.abi_major = LOKET_STORE_ABI_MAJOR,
	.abi_minor = LOKET_STORE_ABI_MINOR,
	.name = "sqlite",
	.open = sq_open,
	.submit = sq_submit,
	.close = sq_close,
	.health = sq_health,
	.replay = sq_replay,
	.blob_put = sq_blob_put_cb,
	.blob_sync = sq_blob_sync_cb,
	.blob_get = sq_blob_get_cb,
	.broadcast = sq_broadcast,
	.dump = sq_dump,
	.lease = sq_lease_cb,
};
