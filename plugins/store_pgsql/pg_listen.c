/*
 * pg_listen.c: several nodes, one register: the events other nodes stored,
 * and their broadcasts (a reload), handed to this node's core.
 *
 * Every batch that stores events also runs pg_notify('loket_events', last
 * id) in its transaction, so the notification goes out only on COMMIT.
 * Each node keeps one connection of its own on a thread of its own that
 * LISTENs on loket_events and loket_control; the loop never calls libpq.
 * On a notification (and after every (re)connect, so that nothing written
 * while it was away is missed) it reads the events after the last id it
 * handed on, oldest first, from the events table itself: the notification
 * carries no more than an id.
 *
 * One order for every node. Event ids increase in commit order across
 * nodes (the writer stores a batch's events under an advisory lock held to
 * COMMIT). This node's own events are published by the core when their
 * write completes (before its answer, as on SQLite); the others' come from
 * here. To hand both in id order through the one queue the loop drains
 * (the writer's completions), the writer takes this file's order lock just
 * before its COMMIT and keeps it until its batch is queued for the loop:
 *  - the listener reads only under that lock, so it can never see a
 *    batch of this node's that is committed but not yet queued, and so
 *    never hands this node's own events (nothing is published twice);
 *  - before queuing its batch (ids lo..hi), the writer hands the events
 *    other nodes stored after the last id handed and before lo, read on
 *    its own connection (they are committed: lo was taken after them), so
 *    every event reaches the loop in id order; then the last id handed is
 *    hi.
 * Should that read fail (the connection went right after COMMIT), lo..hi
 * is remembered as this node's own and skipped when the listener reads on;
 * the events before lo then come late, after the batch: the one case where
 * a subscriber sees ids out of order, logged.
 *
 * Broadcasts: driver->broadcast queues `what` for this thread, which runs
 * pg_notify('loket_control', what) on its connection; every other node's
 * listener hands it to its core (host->remote_control); this node's own
 * notification comes back from its own backend and is dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg.h"

#define PG_LISTEN_PAGE 256
#define PG_LISTEN_BACKOFF_MIN_MS 100
#define PG_LISTEN_BACKOFF_MAX_MS 5000
/* How often an idle listener looks whether its connection is still there. */
#define PG_LISTEN_IDLE_MS 1000
#define PG_LISTEN_WHAT_MAX 32
#define PG_LISTEN_QUEUE 8
#define PG_LISTEN_SKIPS 64

/* What the loop is handed: a request the writer's completion queue carries in order. */
struct pg_listen_item {
	struct store_req req; /* first: op STORE_OP_COUNT marks it; events, nevents */
	int control;
	char what[PG_LISTEN_WHAT_MAX + 1];
};

struct pg_listen {
	const struct loket_store_host *host;
	char *conninfo;
	void (*hand)(struct store_req *item, void *arg);
	void *hand_arg;

	/*
	 * The order lock: held by whoever reads events to hand them (this
	 * thread, or the writer from before its COMMIT until its batch is
	 * queued). Under it: handed, skips.
	 */
	pthread_mutex_t omu;
	int64_t handed; /* the last event id handed to the loop or queued as this node's */
	struct {
		int64_t lo, hi;
	} skips[PG_LISTEN_SKIPS]; /* this node's own ids above handed (a failed gap read) */
	size_t nskips;

	/* Under mu (never held across a query: the loop takes it). */
	pthread_mutex_t mu;
	char queue[PG_LISTEN_QUEUE][PG_LISTEN_WHAT_MAX + 1]; /* broadcasts to send */
	size_t nqueue;
	int stopping;

	int wake[2]; /* the loop and stop wake the thread */
	pthread_t thread;
	int started;
	struct pg_conn c; /* this thread's */
};

struct pg_listen *
pg_listen_new(const struct loket_store_host *host, const char *conninfo, int64_t after,
    void (*hand)(struct store_req *item, void *arg), void *arg)
{
	struct pg_listen *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	l->wake[0] = l->wake[1] = -1;
	if ((l->conninfo = strdup(conninfo)) == NULL || pipe(l->wake) < 0) {
		free(l->conninfo);
		free(l);
		return NULL;
	}
	for (int i = 0; i < 2; i++) {
		fcntl(l->wake[i], F_SETFL, fcntl(l->wake[i], F_GETFL) | O_NONBLOCK);
		fcntl(l->wake[i], F_SETFD, FD_CLOEXEC);
	}
	l->host = host;
	l->handed = after;
	l->hand = hand;
	l->hand_arg = arg;
	pthread_mutex_init(&l->omu, NULL);
	pthread_mutex_init(&l->mu, NULL);
	return l;
}

static void
pg_listen_wake(struct pg_listen *l)
{
	char b = 1;

	/* A full pipe wakes it as well. */
	if (write(l->wake[1], &b, 1) < 0 && errno != EAGAIN)
		pg_logf("listener: cannot wake its thread: %s", strerror(errno));
}

static int
pg_listen_stopping(struct pg_listen *l)
{
	int s;

	pthread_mutex_lock(&l->mu);
	s = l->stopping;
	pthread_mutex_unlock(&l->mu);
	return s;
}

/* The kind of an event as stored ("contact.created"); 0 for a name this loketd does not know. */
static enum loket_event_kind
pg_listen_kind(const struct loket_store_host *host, const char *name)
{
	for (unsigned int bit = 1; bit != 0 && bit <= LOKET_EVENT_ALL; bit <<= 1) {
		const char *n = host->event_name((enum loket_event_kind)bit);

		if (n != NULL && name != NULL && strcmp(n, name) == 0)
			return (enum loket_event_kind)bit;
	}
	return (enum loket_event_kind)0;
}

static int
pg_listen_skipped(struct pg_listen *l, int64_t id)
{
	for (size_t i = 0; i < l->nskips; i++)
		if (id >= l->skips[i].lo && id <= l->skips[i].hi)
			return 1;
	return 0;
}

/* Forgets the skipped ranges at or below handed: nothing below it is read again. */
static void
pg_listen_prune(struct pg_listen *l)
{
	size_t j = 0;

	for (size_t i = 0; i < l->nskips; i++)
		if (l->skips[i].hi > l->handed)
			l->skips[j++] = l->skips[i];
	l->nskips = j;
}

/*
 * Under omu: reads the events after l->handed (and before `before`, unless
 * 0) on c, oldest first, and hands those not this node's own to the loop.
 * -1 when a statement failed (the cause is logged); what was handed stays.
 */
static int
pg_listen_fetch(struct pg_listen *l, struct pg_conn *c, int64_t before)
{
	static const char sql[] = "SELECT id, " PG_MS("at") ", kind, contact_id, task_id,"
				  " payload::text FROM events WHERE id > $1::bigint"
				  " AND ($2::bigint = 0 OR id < $2::bigint) ORDER BY id LIMIT $3::bigint";
	for (;;) {
		struct pg_listen_item *it;
		struct pg_params p;
		PGresult *r;
		int rows;
		size_t n = 0;

		pg_params_init(&p);
		pg_p_int(&p, l->handed);
		pg_p_int(&p, before);
		pg_p_int(&p, PG_LISTEN_PAGE);
		r = pg_run(c, sql, &p);
		pg_params_clear(&p);
		if (r == NULL)
			return -1;
		rows = PQntuples(r);
		if (rows == 0) {
			PQclear(r);
			return 0;
		}
		if ((it = calloc(1, sizeof(*it))) == NULL ||
		    (it->req.events = calloc((size_t)rows, sizeof(*it->req.events))) == NULL) {
			free(it);
			PQclear(r);
			pg_logf("listener: out of memory reading other nodes' events");
			return -1;
		}
		it->req.op = STORE_OP_COUNT;
		for (int i = 0; i < rows; i++) {
			struct store_event *ev = &it->req.events[n];
			const char *payload = pg_str(r, i, 5);

			ev->id = pg_int(r, i, 0);
			if (pg_listen_skipped(l, ev->id))
				continue;
			ev->at = pg_int(r, i, 1);
			ev->kind = pg_listen_kind(l->host, pg_str(r, i, 2));
			ev->contact_id = pg_isnull(r, i, 3) ? 0 : pg_int(r, i, 3);
			ev->task_id = pg_isnull(r, i, 4) ? 0 : pg_int(r, i, 4);
			if (payload == NULL || strlen(payload) >= sizeof(ev->payload))
				payload = "{}"; /* the ids alone still say what happened */
			snprintf(ev->payload, sizeof(ev->payload), "%s", payload);
			if (ev->kind != 0)
				n++;
		}
		l->handed = pg_int(r, rows - 1, 0);
		PQclear(r);
		pg_listen_prune(l);
		it->req.nevents = n;
		if (n > 0) {
			l->hand(&it->req, l->hand_arg);
		} else {
			free(it->req.events);
			free(it);
		}
		if (rows < PG_LISTEN_PAGE)
			return 0;
	}
}

void
pg_listen_hold(struct pg_listen *l)
{
	if (l != NULL)
		pthread_mutex_lock(&l->omu);
}

void
pg_listen_release(struct pg_listen *l)
{
	if (l != NULL)
		pthread_mutex_unlock(&l->omu);
}

void
pg_listen_own(struct pg_listen *l, struct pg_conn *c, int64_t lo, int64_t hi)
{
	if (l == NULL || hi < lo || hi <= l->handed)
		return;
	if (lo > l->handed + 1 && pg_listen_fetch(l, c, lo) < 0) {
		/* The listener reads on from handed: it must not hand these as another node's. */
		if (l->nskips == PG_LISTEN_SKIPS) {
			memmove(&l->skips[0], &l->skips[1], (PG_LISTEN_SKIPS - 1) * sizeof(l->skips[0]));
			l->nskips--;
		}
		l->skips[l->nskips].lo = lo;
		l->skips[l->nskips].hi = hi;
		l->nskips++;
		pg_log(LOKET_LOG_WARN, "listener: could not read other nodes' events before id %lld "
				       "after a commit; they are handed on after it",
		    (long long)lo);
		return;
	}
	l->handed = hi;
	pg_listen_prune(l);
}

static void
pg_listen_hand_control(struct pg_listen *l, const char *what)
{
	struct pg_listen_item *it = calloc(1, sizeof(*it));

	if (it == NULL) {
		pg_logf("listener: out of memory handing on another node's %s", what);
		return;
	}
	it->req.op = STORE_OP_COUNT;
	it->control = 1;
	snprintf(it->what, sizeof(it->what), "%s", what);
	l->hand(&it->req, l->hand_arg);
}

/* A broadcast's word: 1 to 32 lower-case letters (it becomes a NOTIFY payload). */
static int
pg_listen_what_ok(const char *what)
{
	size_t n = what != NULL ? strlen(what) : 0;

	return n > 0 && n <= PG_LISTEN_WHAT_MAX && strspn(what, "abcdefghijklmnopqrstuvwxyz") == n;
}

int
pg_listen_broadcast(struct pg_listen *l, const char *what)
{
	if (l == NULL || !pg_listen_what_ok(what))
		return -1;
	pthread_mutex_lock(&l->mu);
	if (l->stopping || l->nqueue == PG_LISTEN_QUEUE) {
		pthread_mutex_unlock(&l->mu);
		return -1;
	}
	snprintf(l->queue[l->nqueue++], sizeof(l->queue[0]), "%s", what);
	pthread_mutex_unlock(&l->mu);
	pg_listen_wake(l);
	return 0;
}

/* Sends the queued broadcasts; -1 when the connection failed (they stay queued). */
static int
pg_listen_send(struct pg_listen *l)
{
	static const char sql[] = "SELECT pg_notify('loket_control', $1)";

	for (;;) {
		char what[PG_LISTEN_WHAT_MAX + 1];
		struct pg_params p;
		PGresult *r;

		pthread_mutex_lock(&l->mu);
		if (l->nqueue == 0) {
			pthread_mutex_unlock(&l->mu);
			return 0;
		}
		snprintf(what, sizeof(what), "%s", l->queue[0]);
		pthread_mutex_unlock(&l->mu);
		pg_params_init(&p);
		pg_p_text(&p, what);
		r = pg_run(&l->c, sql, &p);
		pg_params_clear(&p);
		if (r == NULL)
			return -1;
		PQclear(r);
		pthread_mutex_lock(&l->mu);
		memmove(&l->queue[0], &l->queue[1], (l->nqueue - 1) * sizeof(l->queue[0]));
		l->nqueue--;
		pthread_mutex_unlock(&l->mu);
		pg_log(LOKET_LOG_INFO, "listener: asked the other nodes to %s", what);
	}
}

/* Waits ms, or until woken (a broadcast, stop); empties the wake pipe. */
static void
pg_listen_sleep(struct pg_listen *l, int fd, int ms, int *readable_r)
{
	struct pollfd pf[2] = { { l->wake[0], POLLIN, 0 }, { fd, POLLIN, 0 } };
	char buf[64];

	*readable_r = 0;
	if (poll(pf, fd >= 0 ? 2 : 1, ms) <= 0)
		return;
	while (read(l->wake[0], buf, sizeof(buf)) > 0)
		;
	if (fd >= 0 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0)
		*readable_r = 1;
}

/* Connects and LISTENs; 0, or -1 with the connection closed. */
static int
pg_listen_connect(struct pg_listen *l, int quiet)
{
	const char *err;

	if (pg_connect(&l->c, l->conninfo, "listener", &err) < 0) {
		if (!quiet)
			pg_log(LOKET_LOG_WARN, "listener: %s", err);
		return -1;
	}
	if (pg_exec(&l->c, "LISTEN loket_events") < 0 ||
	    pg_exec(&l->c, "LISTEN loket_control") < 0) {
		pg_disconnect(&l->c);
		return -1;
	}
	return 0;
}

static void *
pg_listen_main(void *arg)
{
	struct pg_listen *l = arg;
	long backoff = PG_LISTEN_BACKOFF_MIN_MS;
	int down = 0, need_read = 1, readable;

	while (!pg_listen_stopping(l)) {
		PGnotify *nf;

		if (l->c.conn == NULL) {
			if (pg_listen_connect(l, down) < 0) {
				if (!down)
					pg_log(LOKET_LOG_WARN, "listener: other nodes' events and "
							       "broadcasts wait until PostgreSQL is back");
				down = 1;
				pg_listen_sleep(l, -1, (int)backoff, &readable);
				backoff = backoff * 2 > PG_LISTEN_BACKOFF_MAX_MS ? PG_LISTEN_BACKOFF_MAX_MS
										 : backoff * 2;
				continue;
			}
			pthread_mutex_lock(&l->omu);
			pg_log(down ? LOKET_LOG_INFO : LOKET_LOG_DEBUG,
			    "listener: %s; reading the events after id %lld",
			    down ? "reconnected" : "connected", (long long)l->handed);
			pthread_mutex_unlock(&l->omu);
			down = 0;
			backoff = PG_LISTEN_BACKOFF_MIN_MS;
			/* LISTEN came first: whatever committed since is read now or notified. */
			need_read = 1;
		}
		if (pg_listen_send(l) < 0)
			goto lost;
		if (need_read) {
			int rc;

			pthread_mutex_lock(&l->omu);
			rc = pg_listen_fetch(l, &l->c, 0);
			pthread_mutex_unlock(&l->omu);
			if (rc < 0)
				goto lost;
			need_read = 0;
		}
		pg_listen_sleep(l, PQsocket(l->c.conn), PG_LISTEN_IDLE_MS, &readable);
		if (PQconsumeInput(l->c.conn) == 0 || PQstatus(l->c.conn) != CONNECTION_OK)
			goto lost;
		while ((nf = PQnotifies(l->c.conn)) != NULL) {
			if (strcmp(nf->relname, "loket_events") == 0) {
				need_read = 1;
			} else if (strcmp(nf->relname, "loket_control") == 0 &&
				   nf->be_pid != PQbackendPID(l->c.conn)) {
				if (pg_listen_what_ok(nf->extra))
					pg_listen_hand_control(l, nf->extra);
				else
					pg_log(LOKET_LOG_WARN, "listener: ignored a malformed "
							       "broadcast on loket_control");
			}
			PQfreemem(nf);
		}
		continue;
	lost:
		pg_log(LOKET_LOG_WARN, "listener: lost its connection to PostgreSQL; reconnecting");
		pg_disconnect(&l->c);
		down = 1;
	}
	pg_disconnect(&l->c);
	return NULL;
}

int
pg_listen_start(struct pg_listen *l, const char **error_r)
{
	if (pthread_create(&l->thread, NULL, pg_listen_main, l) != 0) {
		*error_r = "cannot start the listener thread";
		return -1;
	}
	l->started = 1;
	return 0;
}

void
pg_listen_stop(struct pg_listen *l)
{
	if (l == NULL || !l->started)
		return;
	pthread_mutex_lock(&l->mu);
	l->stopping = 1;
	pthread_mutex_unlock(&l->mu);
	pg_listen_wake(l);
	pthread_join(l->thread, NULL);
	l->started = 0;
}

void
pg_listen_free(struct pg_listen *l)
{
	if (l == NULL)
		return;
	pg_listen_stop(l);
	close(l->wake[0]);
	close(l->wake[1]);
	pthread_mutex_destroy(&l->omu);
	pthread_mutex_destroy(&l->mu);
	free(l->conninfo);
	free(l);
}

int
pg_listen_is_item(const struct store_req *req)
{
	return req->op == STORE_OP_COUNT;
}

void
pg_listen_deliver(const struct loket_store_host *host, struct store_req *req, int drop)
{
	struct pg_listen_item *it = (struct pg_listen_item *)req;

	if (!drop) {
		if (it->control)
			host->remote_control(host, it->what);
		else
			host->remote_events(host, req->events, req->nevents);
	}
	free(req->events);
	free(it);
}
