/*
 * store_pgsql.c: the PostgreSQL register: the driver table, its threads and
 * group commit.
 *
 * The loop never calls libpq. Writes are queued to a writer thread with a
 * connection of its own, which commits whatever has queued in one
 * transaction (group commit): each write in a savepoint of its own (a
 * refused write rolls back only itself), the batch's events inserted last
 * under an advisory lock held to COMMIT (so event ids increase in commit
 * order across nodes), and the completions handed to the loop only after
 * COMMIT returned. Reads go to a pool of reader threads (`[storage] pool`),
 * each with a connection of its own; the daemon's own repeated reads (what
 * is due, the next due time, counts, events, tokens, threads) go to one
 * reader of their own, in submit order, so an older answer never arrives
 * after a newer one.
 *
 * PostgreSQL restarted or unreachable: the writer notices (an idle check,
 * or the batch that meets it), fails the writes of a broken batch with
 * STORE_UNAVAILABLE (the HTTP layer answers 503 with Retry-After) unless
 * the commit's outcome is known, and reconnects with backoff (100 ms
 * doubling to 5 s); writes submitted while it is down fail at once. A
 * COMMIT whose answer was lost is decided by txid_status() on a new
 * connection, never guessed.
 *
 * Several nodes may share the register: a batch that stores events notifies
 * loket_events, and each node's listener (pg_listen.c) hands the events
 * other nodes stored, and their broadcasts, to its core, in id order with
 * this node's own completions.
 */
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "pg.h"

#define PG_BATCH_MAX 512
/* Statement times kept per kind of connection between two completions on the loop. */
#define PG_STMT_TIMES 8192
#define PG_BACKOFF_MIN_MS 100
#define PG_BACKOFF_MAX_MS 5000
/* How often an idle writer looks whether its connection is still there. */
#define PG_IDLE_CHECK_MS 1000
/* How long a lost COMMIT's outcome is looked for before the writes are answered 503. */
#define PG_RESOLVE_TRIES 8
/* Any number the daemons agree on: the lock a batch holds while it stores its events. */
#define PG_EVENTS_LOCK "7155390202"

/*
 * Test hook, read once at open: LOKET_PGSQL_FAULT=commit-lost:N makes the
 * writer send its Nth COMMIT (counted from open, batches only) and drop the
 * connection without reading the answer, as a network cut right after the
 * COMMIT left would; commit-unsent:N drops it just before that COMMIT is
 * sent. Either way the writer does not know whether the batch committed and
 * must ask the server (txid_status) on a new connection. The integration
 * tests (tests/integration/test_pgsql.py) switch it on; docs/storage.md,
 * "Testing the PostgreSQL driver", says so. Unset in production.
 */
enum pg_test_fault {
	PG_TEST_FAULT_NONE = 0,
	PG_TEST_FAULT_COMMIT_LOST,
	PG_TEST_FAULT_COMMIT_UNSENT,
};

const struct loket_store_host *pg_host;

struct pg_store;

struct pg_reader {
	struct pg_store *st;
	struct pg_conn conn;
	pthread_t thread;
	int started;
	int ordered; /* takes the ordered queue only */
	char who[32];
};

/* A queue of requests under its store's lock. */
struct pg_queue {
	struct store_req *head, **tail;
	size_t n;
};

struct pg_store {
	const struct loket_store_host *host;
	char *conninfo;

	/* The writer. Under mu: its queue, the answered writes, its state. */
	struct pg_conn w;
	pthread_t wthread;
	int wstarted;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct pg_queue wq, wdone;
	int stopping;  /* close asked the writer to finish */
	int wclosed;   /* the writer ended: later writes fail at once */
	int down;      /* the writer cannot reach PostgreSQL */
	unsigned long reconnects, reconnects_counted;
	struct event *wdone_ev;

	/* The readers. Under rmu: their queues, the answered reads. */
	struct pg_reader *readers;
	unsigned int nreaders;
	pthread_mutex_t rmu;
	pthread_cond_t rcv;
	struct pg_queue rq, oq, rdone;
	int rstopping;
	int rclosed; /* loop thread: readers are gone, reads fail at once */
	struct event *rdone_ev;

	/* Connections open now (writer and readers); under mu. */
	int live;

	/* Other nodes' events and broadcasts; NULL for a core without the host entries. */
	struct pg_listen *listen;
	int lheld;            /* writer: holds the listener's order lock for this batch */
	int64_t own_lo, own_hi; /* writer: the ids of this batch's events, 0 when none */
	int closing;          /* loop: close drops what the listener still queued */

	struct loket_store_metric *batch_size, *commit_latency, *read_latency;
	struct loket_store_metric *commits, *commit_failures, *reconnects_total;

	/*
	 * Statement times from the writer's and the readers' threads, under smu,
	 * until the loop puts them on loket_store_statement_seconds (metrics are
	 * the loop's): at each completion, which every statement precedes.
	 */
	pthread_mutex_t smu;
	struct pg_stmt_times {
		uint64_t ns[PG_STMT_TIMES];
		size_t n;
		struct loket_store_metric *metric;
	} stimes[2]; /* 0: writer, 1: readers */
	struct loket_store_metric *stimes_dropped;
	unsigned long stimes_lost;

	/* The test hook (LOKET_PGSQL_FAULT): which COMMIT, and how it is lost. */
	enum pg_test_fault test_fault;
	unsigned long test_fault_at;
	unsigned long wcommits; /* COMMITs the writer sent; writer thread only */
};

static const double pg_batch_bounds[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512 };

static void
pg_vlog(enum loket_log_level level, const char *fmt, va_list ap)
{
	char buf[1024];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (pg_host != NULL)
		pg_host->log(level, "pgsql", "%s", buf);
}

void
pg_logf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pg_vlog(LOKET_LOG_ERROR, fmt, ap);
	va_end(ap);
}

void
pg_log(enum loket_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pg_vlog(level, fmt, ap);
	va_end(ap);
}

const char *
pg_store_conninfo(void *impl)
{
	struct pg_store *st = impl;

	if (st != NULL)
		return st->conninfo;
	return pg_host != NULL ? pg_host->conf_get(pg_host, "conninfo") : "";
}

static uint64_t
pg_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
pg_queue_init(struct pg_queue *q)
{
	q->head = NULL;
	q->tail = &q->head;
	q->n = 0;
}

static void
pg_queue_push(struct pg_queue *q, struct store_req *req)
{
	req->next = NULL;
	*q->tail = req;
	q->tail = &req->next;
	q->n++;
}

static struct store_req *
pg_queue_pop(struct pg_queue *q)
{
	struct store_req *req = q->head;

	if (req == NULL)
		return NULL;
	if ((q->head = req->next) == NULL)
		q->tail = &q->head;
	req->next = NULL;
	q->n--;
	return req;
}

/* Takes the whole queue: its first request, the rest linked by next. */
static struct store_req *
pg_queue_take(struct pg_queue *q)
{
	struct store_req *all = q->head;

	pg_queue_init(q);
	return all;
}

/* Sleeps ms on cv unless woken first; under mu. */
static void
pg_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, long ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(cv, mu, &until);
}

static void
pg_live_add(struct pg_store *st, int delta)
{
	pthread_mutex_lock(&st->mu);
	st->live += delta;
	pthread_mutex_unlock(&st->mu);
}

/* A statement's time (any worker thread); past PG_STMT_TIMES unread, counted as lost. */
static void
pg_stmt_timed(struct pg_stmt_times *t, struct pg_store *st, uint64_t ns)
{
	pthread_mutex_lock(&st->smu);
	if (t->n < PG_STMT_TIMES)
		t->ns[t->n++] = ns;
	else
		st->stimes_lost++;
	pthread_mutex_unlock(&st->smu);
}

static void
pg_stmt_timed_writer_cb(void *arg, uint64_t ns)
{
	struct pg_store *st = arg;

	pg_stmt_timed(&st->stimes[0], st, ns);
}

static void
pg_stmt_timed_reader_cb(void *arg, uint64_t ns)
{
	struct pg_store *st = arg;

	pg_stmt_timed(&st->stimes[1], st, ns);
}

/* The statement times gathered so far onto their histograms; on the loop. */
static void
pg_stmt_times_flush(struct pg_store *st)
{
	unsigned long lost;

	pthread_mutex_lock(&st->smu);
	for (int k = 0; k < 2; k++) {
		struct pg_stmt_times *t = &st->stimes[k];

		for (size_t i = 0; i < t->n; i++)
			st->host->metric_observe(t->metric, (double)t->ns[i] / 1e9);
		t->n = 0;
	}
	lost = st->stimes_lost;
	st->stimes_lost = 0;
	pthread_mutex_unlock(&st->smu);
	if (lost > 0)
		st->host->metric_add(st->stimes_dropped, (double)lost);
}

/* Connects c (closing what it had); 0, or -1 with the cause logged once per outage. */
static int
pg_reconnect(struct pg_store *st, struct pg_conn *c, const char *who, int quiet)
{
	void (*timed)(void *, uint64_t) = c->timed;
	void *timed_arg = c->timed_arg;
	const char *err;
	int rc = 0;

	if (c->conn != NULL) {
		pg_disconnect(c);
		pg_live_add(st, -1);
	}
	if (pg_connect(c, st->conninfo, who, &err) < 0) {
		if (!quiet)
			pg_log(LOKET_LOG_WARN, "%s: %s", who, err);
		rc = -1;
	} else {
		pg_live_add(st, 1);
	}
	/* The connection's statement metric stays with it across reconnects. */
	c->timed = timed;
	c->timed_arg = timed_arg;
	return rc;
}

/*
 * Whether an idle connection is still there: a server that restarted or
 * ended it has sent its last words and closed the socket, which libpq
 * notices only when it reads.
 */
static int
pg_idle_ok(struct pg_conn *c)
{
	if (!pg_alive(c))
		return 0;
	if (PQconsumeInput(c->conn) == 0 || PQstatus(c->conn) != CONNECTION_OK)
		return 0;
	return 1;
}

/* ---- events and counts: each write's, kept until the batch stores them before COMMIT ---- */

/*
 * An event of a write, or (count_delta != 0) a change of the per channel
 * and status counts. Both wait for the end of the batch: a failed write
 * drops its own with its savepoint (pg_event_rewind), whichever they are.
 */
struct pg_pending {
	struct store_req *req;
	struct store_event ev;
	int count_delta;
	char count_channel[64], count_status[32];
};

/* Writer thread only. */
static struct pg_pending *pg_pend;
static size_t pg_npend, pg_pend_cap;

const char *
pg_event_str(char *buf, size_t len, const char *s)
{
	size_t n = 0;

	for (; s != NULL && *s != '\0' && n + 7 < len; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			buf[n++] = '\\';
			buf[n++] = (char)ch;
		} else if (ch < 0x20) {
			n += (size_t)snprintf(buf + n, len - n, "\\u%04x", ch);
		} else {
			buf[n++] = (char)ch;
		}
	}
	buf[n] = '\0';
	return buf;
}

int
pg_event(struct store_req *req, enum loket_event_kind kind, int64_t at, int64_t contact_id,
    int64_t task_id, const char *payload_fmt, ...)
{
	struct pg_pending *p;
	va_list ap;
	int n;

	if (pg_npend == pg_pend_cap) {
		size_t cap = pg_pend_cap > 0 ? pg_pend_cap * 2 : 64;

		if ((p = realloc(pg_pend, cap * sizeof(*p))) == NULL)
			return -1;
		pg_pend = p;
		pg_pend_cap = cap;
	}
	p = &pg_pend[pg_npend];
	memset(p, 0, sizeof(*p));
	p->req = req;
	p->ev.kind = kind;
	p->ev.at = at;
	p->ev.contact_id = contact_id;
	p->ev.task_id = task_id;
	va_start(ap, payload_fmt);
	n = vsnprintf(p->ev.payload, sizeof(p->ev.payload), payload_fmt, ap);
	va_end(ap);
	/* A cut payload would not parse: the ids alone still say what happened. */
	if (n < 0 || (size_t)n >= sizeof(p->ev.payload))
		snprintf(p->ev.payload, sizeof(p->ev.payload), "{}");
	pg_npend++;
	return 0;
}

/*
 * The counts rows are the register's hottest: every new contact and every
 * status change moves one. Updated in each write's order they are locked
 * in a different order by each node's batch, and two nodes' batches
 * deadlock (PostgreSQL ends one after deadlock_timeout: seconds of
 * latency, a write answered 503). So they are summed per row and updated
 * at the end of the batch, in (channel, status) order, before the events
 * lock: every node takes these locks in one order.
 */
int
pg_count(const char *channel, const char *status, int delta)
{
	struct pg_pending *p;

	if (channel == NULL)
		channel = "";
	if (status == NULL)
		status = "";
	if (strlen(channel) >= sizeof(p->count_channel) ||
	    strlen(status) >= sizeof(p->count_status)) {
		pg_logf("writer: a channel or status name too long for the counts (%zu, %zu bytes)",
		    strlen(channel), strlen(status));
		return -1;
	}
	if (pg_npend == pg_pend_cap) {
		size_t cap = pg_pend_cap > 0 ? pg_pend_cap * 2 : 64;

		if ((p = realloc(pg_pend, cap * sizeof(*p))) == NULL)
			return -1;
		pg_pend = p;
		pg_pend_cap = cap;
	}
	p = &pg_pend[pg_npend++];
	memset(p, 0, sizeof(*p));
	p->count_delta = delta;
	snprintf(p->count_channel, sizeof(p->count_channel), "%s", channel);
	snprintf(p->count_status, sizeof(p->count_status), "%s", status);
	return 0;
}

static int
pg_count_cmp(const void *a, const void *b)
{
	const struct pg_pending *x = *(const struct pg_pending *const *)a;
	const struct pg_pending *y = *(const struct pg_pending *const *)b;
	int c = strcmp(x->count_channel, y->count_channel);

	return c != 0 ? c : strcmp(x->count_status, y->count_status);
}

/* The batch's counts changes, summed per row, in (channel, status) order; -1 when it broke. */
static int
pg_counts_flush(struct pg_conn *c)
{
	static const char sql[] = "INSERT INTO counts (channel, status, n) VALUES ($1, $2, $3)"
				  " ON CONFLICT (channel, status) DO UPDATE SET n = counts.n + EXCLUDED.n";
	struct pg_pending **v;
	size_t n = 0;
	int rc = 0;

	for (size_t i = 0; i < pg_npend; i++)
		n += pg_pend[i].count_delta != 0;
	if (n == 0)
		return 0;
	if ((v = malloc(n * sizeof(*v))) == NULL)
		return -1;
	n = 0;
	for (size_t i = 0; i < pg_npend; i++)
		if (pg_pend[i].count_delta != 0)
			v[n++] = &pg_pend[i];
	qsort(v, n, sizeof(*v), pg_count_cmp);
	for (size_t i = 0; i < n && rc == 0;) {
		struct pg_params p;
		PGresult *r;
		int64_t sum = 0;
		size_t j = i;

		for (; j < n && pg_count_cmp(&v[i], &v[j]) == 0; j++)
			sum += v[j]->count_delta;
		if (sum != 0) {
			pg_params_init(&p);
			pg_p_text(&p, v[i]->count_channel);
			pg_p_text(&p, v[i]->count_status);
			pg_p_int(&p, sum);
			r = pg_run(c, sql, &p);
			pg_params_clear(&p);
			if (r == NULL)
				rc = -1;
			PQclear(r);
		}
		i = j;
	}
	free(v);
	return rc;
}

size_t
pg_event_mark(void)
{
	return pg_npend;
}

void
pg_event_rewind(size_t mark)
{
	if (mark < pg_npend)
		pg_npend = mark;
}

/*
 * The ids of the batch's events (count changes share the pending list but
 * are no events): the first and the last; 0 before pg_events_flush.
 */
static int64_t
pg_events_first_id(void)
{
	for (size_t i = 0; i < pg_npend; i++)
		if (pg_pend[i].count_delta == 0)
			return pg_pend[i].ev.id;
	return 0;
}

static int64_t
pg_events_last_id(void)
{
	for (size_t i = pg_npend; i > 0; i--)
		if (pg_pend[i - 1].count_delta == 0)
			return pg_pend[i - 1].ev.id;
	return 0;
}

/*
 * Each event's contact scope as the batch leaves it, read in one statement
 * (one round trip per batch, not per event) before the events are stored.
 * -1 when the transaction broke.
 */
static int
pg_events_scope(struct pg_conn *c)
{
	static const char sql[] = "SELECT id, department, organisation, confidential"
				  " FROM contacts WHERE id = ANY($1::bigint[])";
	struct pg_params p;
	PGresult *r;
	char *ids;
	size_t len = 0, cap = 2 + pg_npend * 21;
	int rows;

	/* A core older than storage ABI 1.2 writes no scope: its events reach admin only. */
	if (!LOKET_STORE_HOST_HAS(pg_host, event_scope_add))
		return 0;
	if ((ids = malloc(cap)) == NULL)
		return -1;
	ids[len++] = '{';
	for (size_t i = 0; i < pg_npend; i++)
		if (pg_pend[i].count_delta == 0 && pg_pend[i].ev.contact_id != 0)
			len += (size_t)snprintf(ids + len, cap - len, "%s%lld", len > 1 ? "," : "",
			    (long long)pg_pend[i].ev.contact_id);
	if (len == 1) {
		free(ids);
		return 0;
	}
	ids[len++] = '}';
	ids[len] = '\0';
	pg_params_init(&p);
	pg_p_text(&p, ids);
	r = pg_run(c, sql, &p);
	pg_params_clear(&p);
	free(ids);
	if (r == NULL)
		return -1;
	rows = PQntuples(r);
	for (size_t i = 0; i < pg_npend; i++) {
		struct store_event *ev = &pg_pend[i].ev;
		int row = -1;

		if (pg_pend[i].count_delta != 0 || ev->contact_id == 0)
			continue;
		for (int j = 0; j < rows && row < 0; j++)
			if (pg_int(r, j, 0) == ev->contact_id)
				row = j;
		/* The core writes the scope the SQLite driver writes (host->event_scope_add). */
		if (row < 0)
			pg_host->event_scope_add(ev->payload, NULL, NULL, 1);
		else
			pg_host->event_scope_add(ev->payload, pg_str(r, row, 1), pg_str(r, row, 2),
			    pg_str(r, row, 3) != NULL && pg_str(r, row, 3)[0] == 't');
	}
	PQclear(r);
	return 0;
}

/*
 * Stores the batch's events, in the order the writes made them. The lock
 * is held to COMMIT: a batch of another node that stores events after this
 * one gets higher ids and commits after it, so a reader that resumes from
 * the last id it saw misses none. -1 when the transaction broke.
 */
static int
pg_events_flush(struct pg_conn *c)
{
	static const char sql[] = "INSERT INTO events (at, kind, contact_id, task_id, payload)"
				  " VALUES (" PG_TS(1) ", $2, $3, $4, $5::json) RETURNING id";
	struct pg_params p;
	PGresult *r;

	size_t nev = 0;

	for (size_t i = 0; i < pg_npend; i++)
		nev += pg_pend[i].count_delta == 0;
	if (nev == 0)
		return 0;
	if (pg_events_scope(c) < 0 ||
	    pg_exec(c, "SELECT pg_advisory_xact_lock(" PG_EVENTS_LOCK ")") < 0)
		return -1;
	for (size_t i = 0; i < pg_npend; i++) {
		struct store_event *ev = &pg_pend[i].ev;

		if (pg_pend[i].count_delta != 0)
			continue;
		pg_params_init(&p);
		pg_p_int(&p, ev->at);
		pg_p_text(&p, pg_host->event_name(ev->kind));
		if (ev->contact_id != 0)
			pg_p_int(&p, ev->contact_id);
		else
			pg_p_null(&p);
		if (ev->task_id != 0)
			pg_p_int(&p, ev->task_id);
		else
			pg_p_null(&p);
		pg_p_text(&p, ev->payload);
		r = pg_run(c, sql, &p);
		pg_params_clear(&p);
		if (r == NULL || PQntuples(r) != 1) {
			PQclear(r);
			return -1;
		}
		ev->id = pg_int(r, 0, 0);
		PQclear(r);
	}
	/* Delivered on COMMIT only: every node's listener reads the events after its last id. */
	pg_params_init(&p);
	pg_p_int(&p, pg_events_last_id());
	r = pg_run(c, "SELECT pg_notify('loket_events', $1::text)", &p);
	pg_params_clear(&p);
	if (r == NULL)
		return -1;
	PQclear(r);
	return 0;
}

/* After COMMIT: each write's events, in id order, recorded with the write. */
static void
pg_events_deliver(void)
{
	for (size_t i = 0; i < pg_npend; i++)
		if (pg_pend[i].count_delta == 0 && pg_pend[i].req->result == STORE_OK &&
		    pg_host->req_event(pg_pend[i].req, &pg_pend[i].ev) < 0)
			pg_logf("writer: out of memory recording an event of a stored write");
	pg_npend = 0;
}

/* ---- the writer ---- */

enum pg_batch_end {
	PG_BATCH_COMMITTED,
	PG_BATCH_FAILED,    /* rolled back (or never began): nothing of it is stored */
	PG_BATCH_BROKEN,    /* the connection broke before COMMIT was sent: nothing is stored */
	PG_BATCH_UNKNOWN,   /* the connection broke during COMMIT: the outcome must be asked */
	PG_BATCH_RETRY,     /* a deadlock or serialization failure: rolled back, to run again */
};

static const char sql_txid[] = "SELECT txid_current()";

/* Puts back what a write run made: out, its error, events (the batch runs again). */
static void
pg_req_reset(struct store_req *req)
{
	pg_host->req_fail(req, STORE_OK, "%s", "");
	req->result = STORE_OK;
	req->error[0] = '\0';
}

/*
 * The test hook's COMMIT (LOKET_PGSQL_FAULT): the connection is cut in both
 * directions right after the COMMIT was sent (commit-lost: the server still
 * reads and commits it, its answer is never read) or before (commit-unsent:
 * the server sees the session end inside the transaction and rolls it back).
 * Either way, for the writer, the connection broke during COMMIT.
 */
static enum pg_batch_end
pg_test_fault_commit(struct pg_store *st)
{
	struct pg_conn *w = &st->w;
	int fd = PQsocket(w->conn);

	if (st->test_fault == PG_TEST_FAULT_COMMIT_LOST) {
		if (PQsendQuery(w->conn, "COMMIT") == 1) {
			while (PQflush(w->conn) == 1)
				;
		}
	}
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
	pg_log(LOKET_LOG_WARN, "writer: test fault %s:%lu: connection cut %s COMMIT",
	    st->test_fault == PG_TEST_FAULT_COMMIT_LOST ? "commit-lost" : "commit-unsent",
	    st->test_fault_at,
	    st->test_fault == PG_TEST_FAULT_COMMIT_LOST ? "after sending" : "before sending");
	w->fault = PG_FAULT_CONNECTION;
	return PG_BATCH_UNKNOWN;
}

/* Reads LOKET_PGSQL_FAULT (the test hook above); -1 with *error_r when it does not parse. */
static int
pg_test_fault_parse(struct pg_store *st, const char **error_r)
{
	const char *v = getenv("LOKET_PGSQL_FAULT");
	const char *num;
	char *end;
	unsigned long n;

	if (v == NULL || v[0] == '\0')
		return 0;
	if (strncmp(v, "commit-lost:", 12) == 0) {
		st->test_fault = PG_TEST_FAULT_COMMIT_LOST;
		num = v + 12;
	} else if (strncmp(v, "commit-unsent:", 14) == 0) {
		st->test_fault = PG_TEST_FAULT_COMMIT_UNSENT;
		num = v + 14;
	} else {
		*error_r = "LOKET_PGSQL_FAULT (a test hook) is not commit-lost:N or commit-unsent:N; "
			   "unset it outside tests";
		return -1;
	}
	errno = 0;
	n = strtoul(num, &end, 10);
	if (errno != 0 || end == num || *end != '\0' || n == 0 || num[0] == '-') {
		*error_r = "LOKET_PGSQL_FAULT (a test hook): N in commit-lost:N or commit-unsent:N "
			   "must be a whole number from 1";
		return -1;
	}
	st->test_fault_at = n;
	pg_log(LOKET_LOG_WARN, "test hook LOKET_PGSQL_FAULT=%s is on: the writer's COMMIT %lu "
			       "will be cut off", v, n);
	return 0;
}

static enum pg_batch_end
pg_batch_run(struct pg_store *st, struct store_req *batch, int64_t *txid_r)
{
	struct pg_conn *w = &st->w;
	PGresult *r;

	pg_npend = 0;
	*txid_r = 0;
	st->own_lo = st->own_hi = 0;
	w->retry_seen = 0;
	if (pg_exec(w, "BEGIN") < 0)
		goto broke;
	if ((r = pg_run(w, sql_txid, NULL)) == NULL)
		goto broke;
	*txid_r = pg_int(r, 0, 0);
	PQclear(r);
	for (struct store_req *req = batch; req != NULL; req = req->next) {
		size_t mark = pg_event_mark();

		if (pg_exec(w, "SAVEPOINT req") < 0)
			goto broke;
		if (pg_write_run(w, req) < 0 || w->retry_seen) {
			/*
			 * The transaction itself broke (the connection went), or
			 * PostgreSQL chose it as a deadlock's victim (two nodes
			 * locked the same rows in turn): the batch with it.
			 */
			goto broke;
		}
		if (req->result != STORE_OK) {
			pg_event_rewind(mark);
			if (pg_exec(w, "ROLLBACK TO SAVEPOINT req") < 0)
				goto broke;
		}
		if (pg_exec(w, "RELEASE SAVEPOINT req") < 0)
			goto broke;
	}
	/* Counts first, then the events lock: the order every node takes them in. */
	if (pg_counts_flush(w) < 0 || pg_events_flush(w) < 0)
		goto broke;
	if (pg_events_last_id() > 0 && st->listen != NULL) {
		/* Until this batch is queued for the loop: see pg_listen.c, "One order". */
		st->own_lo = pg_events_first_id();
		st->own_hi = pg_events_last_id();
		pg_listen_hold(st->listen);
		st->lheld = 1;
	}
	if (++st->wcommits == st->test_fault_at && st->test_fault != PG_TEST_FAULT_NONE)
		return pg_test_fault_commit(st);
	if (pg_exec(w, "COMMIT") < 0)
		return w->fault == PG_FAULT_CONNECTION ? PG_BATCH_UNKNOWN : PG_BATCH_FAILED;
	return PG_BATCH_COMMITTED;
broke:
	if (w->fault == PG_FAULT_CONNECTION)
		return PG_BATCH_BROKEN;
	pg_exec(w, "ROLLBACK");
	return w->retry_seen ? PG_BATCH_RETRY : PG_BATCH_FAILED;
}

/*
 * The connection broke during COMMIT: the server may have committed or not.
 * A new connection asks it (txid_status), a few times while the server
 * comes back; 1 committed, 0 not, -1 still unknown.
 */
static int
pg_batch_resolve(struct pg_store *st, int64_t txid)
{
	static const char sql[] = "SELECT txid_status($1)";
	long wait = PG_BACKOFF_MIN_MS;

	for (int i = 0; i < PG_RESOLVE_TRIES; i++) {
		struct pg_params p;
		PGresult *r;

		if (i > 0) {
			struct timespec ts = { wait / 1000, (wait % 1000) * 1000000L };

			nanosleep(&ts, NULL);
			wait = wait * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS : wait * 2;
		}
		if (pg_reconnect(st, &st->w, "writer", i > 0) < 0)
			continue;
		pg_params_init(&p);
		pg_p_int(&p, txid);
		r = pg_run(&st->w, sql, &p);
		pg_params_clear(&p);
		if (r == NULL)
			continue;
		if (!pg_isnull(r, 0, 0) && strcmp(pg_str(r, 0, 0), "committed") == 0) {
			PQclear(r);
			return 1;
		}
		if (!pg_isnull(r, 0, 0) && strcmp(pg_str(r, 0, 0), "aborted") == 0) {
			PQclear(r);
			return 0;
		}
		/* "in progress": the old session is still ending; NULL: too old to tell. */
		if (pg_isnull(r, 0, 0)) {
			PQclear(r);
			return -1;
		}
		PQclear(r);
	}
	return -1;
}

static void
pg_batch_fail(struct store_req *batch, const char *why)
{
	for (struct store_req *req = batch; req != NULL; req = req->next)
		pg_host->req_fail(req, STORE_UNAVAILABLE,
		    "%s; nothing of this request was stored, try again later", why);
}

static void
pg_set_down(struct pg_store *st, int down)
{
	int was;

	pthread_mutex_lock(&st->mu);
	was = st->down;
	st->down = down;
	if (!down && was)
		st->reconnects++;
	pthread_mutex_unlock(&st->mu);
	if (was != down)
		pg_log(down ? LOKET_LOG_ERROR : LOKET_LOG_INFO,
		    down ? "PostgreSQL is unreachable: writes are answered 503 until it is back"
			 : "PostgreSQL is reachable again: the writer reconnected");
}

/* How often a batch that lost a deadlock runs again before its writes are answered 503. */
#define PG_BATCH_RETRIES 5

/* Runs one batch to its end, reconnecting once when the connection was gone before it. */
static void
pg_writer_batch(struct pg_store *st, struct store_req *batch, unsigned int n)
{
	uint64_t t0 = pg_now_ns();
	enum pg_batch_end end;
	int64_t txid;
	int tries = 0, retries = 0;

	for (;;) {
		if (!pg_idle_ok(&st->w)) {
			if (pg_reconnect(st, &st->w, "writer", 0) < 0) {
				pg_set_down(st, 1);
				pg_batch_fail(batch, "the register (PostgreSQL) cannot be reached");
				end = PG_BATCH_FAILED;
				break;
			}
			pg_set_down(st, 0);
		}
		end = pg_batch_run(st, batch, &txid);
		if (end == PG_BATCH_RETRY && retries++ < PG_BATCH_RETRIES) {
			/* Rolled back whole: the other transaction goes on, this one runs again. */
			pg_log(LOKET_LOG_INFO, "writer: a batch of %u writes lost a deadlock to another "
					       "node; running it again (try %d)", n, retries + 1);
			for (struct store_req *req = batch; req != NULL; req = req->next)
				pg_req_reset(req);
			pg_npend = 0;
			continue;
		}
		if (end == PG_BATCH_RETRY) {
			end = PG_BATCH_FAILED;
			pg_npend = 0;
			pg_batch_fail(batch, "the register was too busy to store this");
			break;
		}
		if (end != PG_BATCH_BROKEN || tries++ > 0)
			break;
		/* Nothing was committed: the same writes run again on a new connection. */
		pg_log(LOKET_LOG_WARN, "writer: the connection broke in a batch of %u writes; "
				       "running it again on a new connection", n);
		for (struct store_req *req = batch; req != NULL; req = req->next)
			pg_req_reset(req);
		pg_npend = 0;
	}
	if (end == PG_BATCH_UNKNOWN) {
		int done = pg_batch_resolve(st, txid);

		pg_log(done == 1 ? LOKET_LOG_WARN : LOKET_LOG_ERROR,
		    "writer: the connection broke during COMMIT of %u writes (txid %lld); "
		    "the server says: %s", n, (long long)txid,
		    done == 1 ? "committed" : done == 0 ? "aborted" : "unknown (answered 503)");
		pg_set_down(st, !pg_alive(&st->w));
		end = done == 1 ? PG_BATCH_COMMITTED : PG_BATCH_FAILED;
		if (done == 0) {
			pg_npend = 0;
			pg_batch_fail(batch, "the register could not commit");
		} else if (done < 0) {
			/* Not known either way: say so, never that nothing was stored. */
			pg_npend = 0;
			for (struct store_req *req = batch; req != NULL; req = req->next)
				pg_host->req_fail(req, STORE_UNAVAILABLE,
				    "the connection to the register broke while it committed and "
				    "whether this request was stored is not known yet; try again "
				    "later with the same Idempotency-Key");
		}
	} else if (end == PG_BATCH_BROKEN) {
		pg_npend = 0;
		pg_set_down(st, 1);
		pg_batch_fail(batch, "the register (PostgreSQL) cannot be reached");
		end = PG_BATCH_FAILED;
	} else if (end == PG_BATCH_FAILED) {
		/* Failed writes before a failed COMMIT keep their own answers; the rest 503. */
		pg_npend = 0;
		for (struct store_req *req = batch; req != NULL; req = req->next)
			if (req->result == STORE_OK)
				pg_host->req_fail(req, STORE_UNAVAILABLE,
				    "the register could not commit; nothing of this request was "
				    "stored, try again later");
	}
	if (end == PG_BATCH_COMMITTED)
		pg_events_deliver();
	batch->batch = n;
	batch->commit_rc = end == PG_BATCH_COMMITTED ? 0 : -1;
	batch->commit_ns = pg_now_ns() - t0;
}

static void *
pg_writer_main(void *arg)
{
	struct pg_store *st = arg;
	long backoff = PG_BACKOFF_MIN_MS;

	for (;;) {
		struct store_req *batch, *last = NULL, *r;
		unsigned int n = 0;

		pthread_mutex_lock(&st->mu);
		while (st->wq.head == NULL && !st->stopping) {
			pg_cond_wait_ms(&st->cv, &st->mu, st->down ? backoff : PG_IDLE_CHECK_MS);
			if (st->wq.head != NULL || st->stopping)
				break;
			pthread_mutex_unlock(&st->mu);
			/* Idle: see the connection is there, and bring it back when it is not. */
			if (!pg_idle_ok(&st->w)) {
				if (pg_reconnect(st, &st->w, "writer", st->down) < 0) {
					pg_set_down(st, 1);
					backoff = backoff * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS
										  : backoff * 2;
				} else {
					pg_set_down(st, 0);
					backoff = PG_BACKOFF_MIN_MS;
				}
			}
			pthread_mutex_lock(&st->mu);
		}
		if (st->wq.head == NULL && st->stopping) {
			pthread_mutex_unlock(&st->mu);
			break;
		}
		batch = st->wq.head;
		for (r = batch; r != NULL && n < PG_BATCH_MAX; r = r->next) {
			last = r;
			n++;
		}
		st->wq.head = last->next;
		if (st->wq.head == NULL)
			st->wq.tail = &st->wq.head;
		st->wq.n -= n;
		last->next = NULL;
		pthread_mutex_unlock(&st->mu);

		pg_writer_batch(st, batch, n);
		if (!st->down)
			backoff = PG_BACKOFF_MIN_MS;
		/* Other nodes' events before this batch's go to the loop first. */
		if (st->lheld && batch->commit_rc == 0 && st->own_hi > 0)
			pg_listen_own(st->listen, &st->w, st->own_lo, st->own_hi);

		pthread_mutex_lock(&st->mu);
		*st->wdone.tail = batch;
		st->wdone.tail = &last->next;
		pthread_mutex_unlock(&st->mu);
		event_active(st->wdone_ev, EV_READ, 0);
		if (st->lheld) {
			st->lheld = 0;
			pg_listen_release(st->listen);
		}
	}
	if (st->w.conn != NULL) {
		pg_disconnect(&st->w);
		pg_live_add(st, -1);
	}
	free(pg_pend);
	pg_pend = NULL;
	pg_npend = pg_pend_cap = 0;
	return NULL;
}

/* Completes the writes the writer finished; on the loop. */
static void
pg_wdone_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pg_store *st = arg;
	struct store_req *r, *next;
	unsigned long reconnects;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&st->mu);
	r = pg_queue_take(&st->wdone);
	reconnects = st->reconnects - st->reconnects_counted;
	st->reconnects_counted = st->reconnects;
	pthread_mutex_unlock(&st->mu);
	if (reconnects > 0)
		st->host->metric_add(st->reconnects_total, (double)reconnects);
	pg_stmt_times_flush(st);
	for (; r != NULL; r = next) {
		next = r->next;
		r->next = NULL;
		if (pg_listen_is_item(r)) {
			pg_listen_deliver(st->host, r, st->closing);
			continue;
		}
		if (r->batch > 0) {
			st->host->metric_observe(st->batch_size, r->batch);
			st->host->metric_observe(st->commit_latency, (double)r->commit_ns / 1e9);
			if (r->commit_rc == 0)
				st->host->metric_add(st->commits, 1);
		}
		if (r->result == STORE_UNAVAILABLE)
			st->host->metric_add(st->commit_failures, 1);
		st->host->req_complete(r);
	}
}

/* ---- the readers ---- */

/*
 * The daemon's own repeated reads: an older answer arriving after a newer
 * one would undo it, so they are answered one after another, in submit
 * order, by a reader of their own.
 */
static int
pg_read_ordered(enum store_op op)
{
	switch (op) {
	case STORE_THREAD_FIND:
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

/* The reads whose callers the daemon frees before it closes the register. */
static int
pg_read_refused_at_close(enum store_op op)
{
	return op == STORE_TIMERS_DUE || op == STORE_TIMERS_NEXT || op == STORE_EVENTS_AFTER;
}

/*
 * The reads that claim what they hand out (docs/storage.md: TIMERS_DUE,
 * OUTBOX_DUE): they write the claim, so they cannot run read-only, and they
 * run READ COMMITTED: a row another node changed since the transaction
 * began is passed over or checked again as it is now, never an error.
 */
static int
pg_read_claims(enum store_op op)
{
	return op == STORE_TIMERS_DUE || op == STORE_OUTBOX_DUE;
}

/*
 * Runs one read in a read-only transaction of its own (one snapshot for all
 * its statements); once more on a new connection when the connection had
 * gone (a restarted server ends idle sessions). A claiming read hands out
 * only what it claimed: when its COMMIT fails it fails, and the rows stay
 * for whoever claims them next.
 */
static void
pg_reader_run(struct pg_reader *rd, struct store_req *req)
{
	struct pg_conn *c = &rd->conn;
	int claims = pg_read_claims(req->op);

	for (int attempt = 0; attempt < 2; attempt++) {
		if (!pg_idle_ok(c) && pg_reconnect(rd->st, c, rd->who, attempt > 0) < 0)
			break;
		if (pg_exec(c, claims ? "BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE"
				      : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") < 0) {
			if (c->fault == PG_FAULT_CONNECTION)
				continue;
			break;
		}
		pg_read_run(c, req);
		if (!pg_alive(c)) {
			pg_req_reset(req);
			continue;
		}
		if (claims && req->result != STORE_OK) {
			pg_exec(c, "ROLLBACK");
			return;
		}
		if (pg_exec(c, "COMMIT") < 0) {
			pg_exec(c, "ROLLBACK");
			if (claims)
				pg_host->req_fail(req, STORE_UNAVAILABLE,
				    "the register could not store this node's claims; try again later");
		}
		return;
	}
	pg_host->req_fail(req, STORE_UNAVAILABLE,
	    "the register (PostgreSQL) cannot be reached; try again later");
}

static void *
pg_reader_main(void *arg)
{
	struct pg_reader *rd = arg;
	struct pg_store *st = rd->st;

	for (;;) {
		struct pg_queue *q = rd->ordered ? &st->oq : &st->rq;
		struct store_req *req;
		uint64_t t0;

		pthread_mutex_lock(&st->rmu);
		while ((req = pg_queue_pop(q)) == NULL && !st->rstopping)
			pthread_cond_wait(&st->rcv, &st->rmu);
		pthread_mutex_unlock(&st->rmu);
		/* Stopping: every queued read has been answered, by this reader or another. */
		if (req == NULL)
			break;
		t0 = pg_now_ns();
		pg_reader_run(rd, req);
		req->commit_ns = pg_now_ns() - t0;
		/* The view of what was read, here rather than on the loop (a core older than minor 2 makes it there). */
		if (LOKET_STORE_HOST_HAS(st->host, req_view))
			st->host->req_view(req);
		pthread_mutex_lock(&st->rmu);
		pg_queue_push(&st->rdone, req);
		pthread_mutex_unlock(&st->rmu);
		event_active(st->rdone_ev, EV_READ, 0);
	}
	if (rd->conn.conn != NULL) {
		pg_disconnect(&rd->conn);
		pg_live_add(st, -1);
	}
	return NULL;
}

/* Completes the reads the pool answered; on the loop. */
static void
pg_rdone_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pg_store *st = arg;
	struct store_req *r, *next;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&st->rmu);
	r = pg_queue_take(&st->rdone);
	pthread_mutex_unlock(&st->rmu);
	pg_stmt_times_flush(st);
	for (; r != NULL; r = next) {
		next = r->next;
		r->next = NULL;
		/*
		 * At close the timers' and the event stream's reads are refused: the
		 * daemon frees those before the register, and an answer would reach
		 * them freed. Every other read is answered as it was read.
		 */
		if (st->rclosed && pg_read_refused_at_close(r->op))
			pg_host->req_fail(r, STORE_UNAVAILABLE, "the register is closing");
		st->host->metric_observe(st->read_latency, (double)r->commit_ns / 1e9);
		r->commit_ns = 0;
		st->host->req_complete(r);
	}
}

static int
pg_readers_start(struct pg_store *st, const char **error_r)
{
	int64_t pool = st->host->conf_int(st->host, "pool");
	unsigned int n = (pool > 0 ? (unsigned int)pool : 4) + 1;

	if ((st->readers = calloc(n, sizeof(*st->readers))) == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	st->nreaders = n;
	for (unsigned int i = 0; i < n; i++) {
		struct pg_reader *rd = &st->readers[i];

		rd->st = st;
		rd->ordered = i == 0;
		snprintf(rd->who, sizeof(rd->who), i == 0 ? "reader (daemon)" : "reader %u", i);
		if (pg_connect(&rd->conn, st->conninfo, rd->who, error_r) < 0)
			return -1;
		rd->conn.timed = pg_stmt_timed_reader_cb;
		rd->conn.timed_arg = st;
		pg_live_add(st, 1);
	}
	for (unsigned int i = 0; i < n; i++) {
		if (pthread_create(&st->readers[i].thread, NULL, pg_reader_main, &st->readers[i]) !=
		    0) {
			*error_r = "cannot start the storage reader threads";
			return -1;
		}
		st->readers[i].started = 1;
	}
	return 0;
}

static void
pg_readers_stop(struct pg_store *st)
{
	struct store_req *left, *next;

	pthread_mutex_lock(&st->rmu);
	st->rstopping = 1;
	pthread_cond_broadcast(&st->rcv);
	pthread_mutex_unlock(&st->rmu);
	for (unsigned int i = 0; i < st->nreaders; i++) {
		if (st->readers[i].started)
			pthread_join(st->readers[i].thread, NULL);
		else if (st->readers[i].conn.conn != NULL) {
			pg_disconnect(&st->readers[i].conn);
			pg_live_add(st, -1);
		}
	}
	st->rclosed = 1;
	/* What no reader took is refused: nothing reads any more. */
	pthread_mutex_lock(&st->rmu);
	for (int k = 0; k < 2; k++) {
		left = pg_queue_take(k == 0 ? &st->rq : &st->oq);
		for (; left != NULL; left = next) {
			next = left->next;
			pg_host->req_fail(left, STORE_UNAVAILABLE, "the register is closing");
			pg_queue_push(&st->rdone, left);
		}
	}
	pthread_mutex_unlock(&st->rmu);
	if (st->rdone_ev != NULL)
		pg_rdone_cb(-1, 0, st);
}

/* ---- the driver table ---- */

static void pg_close(void *impl);

static double
pg_wdepth_cb(void *arg)
{
	struct pg_store *st = arg;
	size_t n;

	pthread_mutex_lock(&st->mu);
	n = st->wq.n;
	pthread_mutex_unlock(&st->mu);
	return (double)n;
}

static double
pg_rdepth_cb(void *arg)
{
	struct pg_store *st = arg;
	size_t n;

	pthread_mutex_lock(&st->rmu);
	n = st->rq.n + st->oq.n;
	pthread_mutex_unlock(&st->rmu);
	return (double)n;
}

static double
pg_live_cb(void *arg)
{
	struct pg_store *st = arg;
	int n;

	pthread_mutex_lock(&st->mu);
	n = st->live;
	pthread_mutex_unlock(&st->mu);
	return (double)n;
}

static int pg_health(void *impl, const char **why_r);

static double
pg_writable_cb(void *arg)
{
	const char *why;

	return pg_health(arg, &why) == 0 ? 1 : 0;
}

/* The listener's item for the loop, behind the completions queued before it; any thread. */
static void
pg_listen_hand_cb(struct store_req *item, void *arg)
{
	struct pg_store *st = arg;

	item->next = NULL;
	pthread_mutex_lock(&st->mu);
	pg_queue_push(&st->wdone, item);
	pthread_mutex_unlock(&st->mu);
	event_active(st->wdone_ev, EV_READ, 0);
}

/* The listener, from the register's last event id now: what came before is not news. */
static int
pg_listen_open(struct pg_store *st, const char **error_r)
{
	PGresult *r;
	int64_t last;

	if (!LOKET_STORE_HOST_HAS(st->host, remote_control)) {
		pg_log(LOKET_LOG_WARN, "this loketd cannot take other nodes' events: "
				       "each node's subscribers see its own writes only");
		return 0;
	}
	if ((r = pg_run(&st->w, "SELECT coalesce(max(id), 0) FROM events", NULL)) == NULL) {
		*error_r = "cannot read the register's last event id";
		return -1;
	}
	last = pg_int(r, 0, 0);
	PQclear(r);
	if ((st->listen = pg_listen_new(st->host, st->conninfo, last, pg_listen_hand_cb, st)) ==
	    NULL) {
		*error_r = "out of memory";
		return -1;
	}
	return pg_listen_start(st->listen, error_r);
}

static int
pg_broadcast(void *impl, const char *what)
{
	struct pg_store *st = impl;

	return st->listen != NULL ? pg_listen_broadcast(st->listen, what) : -1;
}

static int
pg_open(const struct loket_store_host *host, void **impl_r, const char **error_r)
{
	struct pg_store *st;
	const char *conninfo = host->conf_get(host, "conninfo");

	pg_host = host;
	*impl_r = NULL;
	if (conninfo == NULL || conninfo[0] == '\0') {
		*error_r = "[storage] conninfo is empty: driver = pgsql needs the PostgreSQL "
			   "connection string (for example host=db dbname=loket user=loket)";
		return -1;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	st->host = host;
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	pthread_mutex_init(&st->rmu, NULL);
	pthread_cond_init(&st->rcv, NULL);
	pthread_mutex_init(&st->smu, NULL);
	pg_queue_init(&st->wq);
	pg_queue_init(&st->wdone);
	pg_queue_init(&st->rq);
	pg_queue_init(&st->oq);
	pg_queue_init(&st->rdone);
	if ((st->conninfo = strdup(conninfo)) == NULL) {
		*error_r = "out of memory";
		goto fail;
	}
	if (pg_test_fault_parse(st, error_r) < 0)
		goto fail;
	if (pg_connect(&st->w, st->conninfo, "writer", error_r) < 0)
		goto fail;
	st->live = 1;
	if (pg_migrate(&st->w, error_r) < 0)
		goto fail;
	if ((st->wdone_ev = event_new(host->base, -1, 0, pg_wdone_cb, st)) == NULL ||
	    (st->rdone_ev = event_new(host->base, -1, 0, pg_rdone_cb, st)) == NULL) {
		*error_r = "out of memory";
		goto fail;
	}
	st->batch_size = host->metric(host, LOKET_STORE_METRIC_HISTOGRAM,
	    "loket_store_commit_batch_size",
	    "Writes committed together in one transaction (group commit).", "", pg_batch_bounds,
	    sizeof(pg_batch_bounds) / sizeof(pg_batch_bounds[0]));
	st->commit_latency = host->metric(host, LOKET_STORE_METRIC_HISTOGRAM,
	    "loket_store_commit_seconds", "Time to run and commit one batch.", "", NULL, 0);
	st->read_latency = host->metric(host, LOKET_STORE_METRIC_HISTOGRAM,
	    "loket_store_read_seconds", "Time a reader thread took to answer one read.", "", NULL,
	    0);
	st->commits = host->metric(host, LOKET_STORE_METRIC_COUNTER, "loket_store_commits_total",
	    "Transactions committed by the writer.", "", NULL, 0);
	st->commit_failures = host->metric(host, LOKET_STORE_METRIC_COUNTER,
	    "loket_store_commit_failures_total", "Writes that failed because a commit failed.", "",
	    NULL, 0);
	st->reconnects_total = host->metric(host, LOKET_STORE_METRIC_COUNTER,
	    "loket_store_reconnects_total",
	    "Times the writer reconnected to PostgreSQL after losing it.", "", NULL, 0);
	st->stimes[0].metric = host->metric(host, LOKET_STORE_METRIC_HISTOGRAM,
	    "loket_store_statement_seconds",
	    "Time one SQL statement took, from sending it to its result.", "conn=\"writer\"",
	    NULL, 0);
	st->stimes[1].metric = host->metric(host, LOKET_STORE_METRIC_HISTOGRAM,
	    "loket_store_statement_seconds",
	    "Time one SQL statement took, from sending it to its result.", "conn=\"reader\"",
	    NULL, 0);
	st->stimes_dropped = host->metric(host, LOKET_STORE_METRIC_COUNTER,
	    "loket_store_statement_times_dropped_total",
	    "Statement times not put on loket_store_statement_seconds (too many between two "
	    "completions).", "", NULL, 0);
	st->w.timed = pg_stmt_timed_writer_cb;
	st->w.timed_arg = st;
	host->metric_gauge_fn(host, "loket_store_writable",
	    "1 when the register can commit, 0 when it cannot.", pg_writable_cb, st);
	host->metric_gauge_fn(host, "loket_store_queue_depth", "Writes waiting for the writer.",
	    pg_wdepth_cb, st);
	host->metric_gauge_fn(host, "loket_store_read_queue_depth",
	    "Reads waiting for a reader thread.", pg_rdepth_cb, st);
	host->metric_gauge_fn(host, "loket_store_connections",
	    "Connections to PostgreSQL open now (the writer's and the readers').", pg_live_cb, st);
	if (pg_readers_start(st, error_r) < 0 || pg_listen_open(st, error_r) < 0)
		goto fail;
	if (pthread_create(&st->wthread, NULL, pg_writer_main, st) != 0) {
		*error_r = "cannot start the storage thread";
		goto fail;
	}
	st->wstarted = 1;
	pg_log(LOKET_LOG_INFO, "opened driver=pgsql schema=%d readers=%u", pg_schema_version,
	    st->nreaders - 1);
	*impl_r = st;
	return 0;
fail:
	pg_close(st);
	return -1;
}

static void
pg_submit(void *impl, struct store_req *req)
{
	struct pg_store *st = impl;
	json_t *own;

	req->next = NULL;
	if (!st->host->op_is_write(req->op)) {
		if (st->rclosed) {
			pg_host->req_fail(req, STORE_UNAVAILABLE, "the register is closing");
			st->host->req_complete(req);
			return;
		}
		/*
		 * The reader gets a document nobody else holds: the caller's may share
		 * parts (a token's scope) that the loop goes on using meanwhile.
		 */
		if ((own = json_deep_copy(req->in)) == NULL && req->in != NULL) {
			pg_host->req_fail(req, STORE_UNAVAILABLE, "out of memory");
			st->host->req_complete(req);
			return;
		}
		json_decref(req->in);
		req->in = own;
		pthread_mutex_lock(&st->rmu);
		pg_queue_push(pg_read_ordered(req->op) ? &st->oq : &st->rq, req);
		pthread_cond_broadcast(&st->rcv);
		pthread_mutex_unlock(&st->rmu);
		return;
	}
	if ((own = json_deep_copy(req->in)) == NULL && req->in != NULL) {
		pg_host->req_fail(req, STORE_UNAVAILABLE, "out of memory");
		st->host->req_complete(req);
		return;
	}
	json_decref(req->in);
	req->in = own;
	pthread_mutex_lock(&st->mu);
	/* Down with nothing queued before it: answered at once, in submit order still. */
	if (st->wclosed || (st->down && st->wq.head == NULL && st->wdone.head == NULL)) {
		int closed = st->wclosed;

		pthread_mutex_unlock(&st->mu);
		pg_host->req_fail(req, STORE_UNAVAILABLE,
		    closed ? "the register is closing; nothing of this request was stored"
			   : "the register (PostgreSQL) cannot be reached; nothing of this request "
			     "was stored, try again later");
		st->host->metric_add(st->commit_failures, 1);
		st->host->req_complete(req);
		return;
	}
	pg_queue_push(&st->wq, req);
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
}

static int
pg_health(void *impl, const char **why_r)
{
	struct pg_store *st = impl;
	int down;

	pthread_mutex_lock(&st->mu);
	down = st->down;
	pthread_mutex_unlock(&st->mu);
	if (!down)
		return 0;
	*why_r = "PostgreSQL unreachable: the register cannot commit";
	return -1;
}

static void
pg_close(void *impl)
{
	struct pg_store *st = impl;

	if (st == NULL)
		return;
	/* No news while closing: the core is going; the writer may still hand some. */
	st->closing = 1;
	pg_listen_stop(st->listen);
	/* Readers first: writes the answered reads lead to still reach the writer. */
	if (st->readers != NULL)
		pg_readers_stop(st);
	if (st->wstarted) {
		pthread_mutex_lock(&st->mu);
		st->stopping = 1;
		pthread_cond_signal(&st->cv);
		pthread_mutex_unlock(&st->mu);
		pthread_join(st->wthread, NULL);
		pthread_mutex_lock(&st->mu);
		st->wclosed = 1;
		pthread_mutex_unlock(&st->mu);
		/* Everything queued is committed or failed now; let the waiters hear it. */
		pg_wdone_cb(-1, 0, st);
	} else if (st->w.conn != NULL) {
		pg_disconnect(&st->w);
	}
	/* The writer is gone: nobody holds the listener now. */
	pg_listen_free(st->listen);
	/* The core calls no blob entry during or after close: their connections go too. */
	pg_blobs_close();
	pg_lease_close();
	if (st->wdone_ev != NULL)
		event_free(st->wdone_ev);
	if (st->rdone_ev != NULL)
		event_free(st->rdone_ev);
	free(st->readers);
	free(st->conninfo);
	pthread_cond_destroy(&st->rcv);
	pthread_mutex_destroy(&st->rmu);
	pthread_mutex_destroy(&st->smu);
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->mu);
	free(st);
}

__attribute__((visibility("default"))) const struct store_driver loket_store_driver = {
	.abi_major = LOKET_STORE_ABI_MAJOR,
	.abi_minor = LOKET_STORE_ABI_MINOR,
	.name = "pgsql",
	.open = pg_open,
	.submit = pg_submit,
	.close = pg_close,
	.health = pg_health,
	.replay = pg_replay,
	.blob_put = pg_blob_put,
	.blob_sync = pg_blob_sync,
	.blob_get = pg_blob_get,
	.broadcast = pg_broadcast,
	.dump = pg_dump, .load_begin = pg_load_begin, .load_rows = pg_load_rows, .load_end = pg_load_end,
	.lease = pg_lease,
};
