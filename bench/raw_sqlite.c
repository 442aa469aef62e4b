/* raw_sqlite.c: the disk baseline for bench/intake: SQLite group commit of contact-shaped rows,
 * with nothing else around it (no HTTP, no JSON, no party matching).
 *
 * P producer threads each hand one row to the committer and wait until it is durable; one
 * committer thread inserts whatever has queued in one transaction and commits it (WAL,
 * synchronous=FULL: the commit fsyncs the WAL). This is the fastest loketd could possibly
 * acknowledge durable contacts on this disk with the same write pattern.
 *
 * usage: raw_sqlite -f FILE [-t PRODUCERS] [-d SECONDS] [-p PARTIES] [-s off|normal|full]
 * Prints one line of key=value pairs: rows, seconds, rows_per_s, commits, avg_batch,
 * p50_ms, p99_ms, max_ms (the wait from hand-over to durable, as a producer sees it).
 */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RAW_SUBJECT_MAX 128
#define RAW_FIELD_MAX 64

/* The shape of loketd's contacts table (integer ms timestamps, the same three secondary
 * indexes), with the party's fields inline instead of in a parties table. */
static const char raw_schema[] =
    "CREATE TABLE IF NOT EXISTS contacts ("
    " id INTEGER PRIMARY KEY,"
    " reference TEXT NOT NULL UNIQUE,"
    " channel TEXT NOT NULL,"
    " direction TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " line INTEGER NOT NULL,"
    " subject TEXT,"
    " body TEXT,"
    " department TEXT,"
    " organisation TEXT NOT NULL,"
    " party_id INTEGER,"
    " party_name TEXT,"
    " party_email TEXT,"
    " party_phone TEXT,"
    " received_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " created_by TEXT);"
    "CREATE INDEX IF NOT EXISTS contacts_party ON contacts(party_id, id);"
    "CREATE INDEX IF NOT EXISTS contacts_status ON contacts(status, id);"
    "CREATE INDEX IF NOT EXISTS contacts_department ON contacts(department, id);";

static const char raw_insert[] =
    "INSERT INTO contacts (reference, channel, direction, status, line, subject, body,"
    " department, organisation, party_id, party_name, party_email, party_phone, received_at,"
    " updated_at, created_by)"
    " VALUES (?1, ?2, 'in', 'open', 1, ?3, ?4, ?5, 'gemeente', ?6, ?7, ?8, ?9, ?10, ?10,"
    " 'bench')";

static const char raw_body[] =
    "Goedemiddag, ik had graag geweten wanneer ik mijn nieuwe identiteitskaart kan afhalen en "
    "of ik daarvoor een afspraak moet maken aan de balie. Met vriendelijke groeten.";

static const char *const raw_channels[] = { "phone", "email", "web", "counter" };
static const char *const raw_departments[] = { "burgerzaken", "omgeving", "sociale_dienst" };

/* One row handed from a producer to the committer; lives on the producer's stack. */
struct raw_row {
	struct raw_row *next;
	uint64_t n;
	unsigned int party;
	char reference[RAW_FIELD_MAX];
	char subject[RAW_SUBJECT_MAX];
	char party_name[RAW_FIELD_MAX];
	char party_email[RAW_FIELD_MAX];
	char party_phone[RAW_FIELD_MAX];
	int64_t ms;
	int done;
	pthread_cond_t cond;
};

struct raw_waits {
	double *ms;
	size_t n, cap;
};

struct raw {
	sqlite3 *db;
	sqlite3_stmt *insert;
	pthread_mutex_t lock;
	pthread_cond_t queued;
	struct raw_row *head, *tail;
	int stop;
	uint64_t next_n;
	unsigned int parties;
	uint64_t rows, commits;
	struct timespec last_commit;
};

struct raw_producer {
	struct raw *raw;
	pthread_t thread;
	struct raw_waits waits;
};

static double
raw_ms_between(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

static void
raw_row_fill(struct raw_row *r, uint64_t n, unsigned int parties)
{
	unsigned int party = (unsigned int)(n % parties);
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	r->ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	r->party = party + 1;
	r->n = n;
	snprintf(r->reference, sizeof(r->reference), "%04d-%06llu", tm.tm_year + 1900,
	    (unsigned long long)n);
	snprintf(r->subject, sizeof(r->subject), "Vraag %llu over de identiteitskaart",
	    (unsigned long long)n);
	snprintf(r->party_name, sizeof(r->party_name), "Burger %u", party);
	snprintf(r->party_email, sizeof(r->party_email), "burger%u@example.be", party);
	snprintf(r->party_phone, sizeof(r->party_phone), "+32470%06u", party);
}

static int
raw_waits_add(struct raw_waits *w, double ms)
{
	if (w->n == w->cap) {
		size_t cap = w->cap != 0 ? w->cap * 2 : 4096;
		double *p = realloc(w->ms, cap * sizeof(*p));

		if (p == NULL)
			return -1;
		w->ms = p;
		w->cap = cap;
	}
	w->ms[w->n++] = ms;
	return 0;
}

static void *
raw_producer_main(void *arg)
{
	struct raw_producer *p = arg;
	struct raw *raw = p->raw;
	struct raw_row row;
	struct timespec t0, t1;

	pthread_cond_init(&row.cond, NULL);
	for (;;) {
		uint64_t n;

		pthread_mutex_lock(&raw->lock);
		if (raw->stop) {
			pthread_mutex_unlock(&raw->lock);
			break;
		}
		n = ++raw->next_n;
		pthread_mutex_unlock(&raw->lock);

		clock_gettime(CLOCK_MONOTONIC, &t0);
		raw_row_fill(&row, n, raw->parties);
		row.done = 0;
		row.next = NULL;
		pthread_mutex_lock(&raw->lock);
		/* Checked again under the lock: the committer may have left once stop was set. */
		if (raw->stop) {
			pthread_mutex_unlock(&raw->lock);
			break;
		}
		if (raw->tail != NULL)
			raw->tail->next = &row;
		else
			raw->head = &row;
		raw->tail = &row;
		pthread_cond_signal(&raw->queued);
		while (!row.done)
			pthread_cond_wait(&row.cond, &raw->lock);
		pthread_mutex_unlock(&raw->lock);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (raw_waits_add(&p->waits, raw_ms_between(&t0, &t1)) < 0)
			break;
	}
	pthread_cond_destroy(&row.cond);
	return NULL;
}

static int
raw_insert_row(struct raw *raw, const struct raw_row *r)
{
	sqlite3_stmt *st = raw->insert;
	int rc;

	sqlite3_bind_text(st, 1, r->reference, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, raw_channels[r->n % 4], -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, r->subject, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, raw_body, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, raw_departments[r->n % 3], -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, r->party);
	sqlite3_bind_text(st, 7, r->party_name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, r->party_email, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, r->party_phone, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 10, r->ms);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void *
raw_committer_main(void *arg)
{
	struct raw *raw = arg;

	for (;;) {
		struct raw_row *batch, *r, *next;
		uint64_t nrows = 0;
		int ok;

		pthread_mutex_lock(&raw->lock);
		while (raw->head == NULL && !raw->stop)
			pthread_cond_wait(&raw->queued, &raw->lock);
		if (raw->head == NULL) {
			pthread_mutex_unlock(&raw->lock);
			break;
		}
		batch = raw->head;
		raw->head = raw->tail = NULL;
		pthread_mutex_unlock(&raw->lock);

		ok = sqlite3_exec(raw->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
		for (r = batch; ok && r != NULL; r = r->next, nrows++)
			ok = raw_insert_row(raw, r) == 0;
		ok = ok && sqlite3_exec(raw->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
		if (!ok) {
			/* Producers may already be queued behind this batch: no clean way out. */
			fprintf(stderr, "raw_sqlite: %s\n", sqlite3_errmsg(raw->db));
			exit(1);
		}

		pthread_mutex_lock(&raw->lock);
		clock_gettime(CLOCK_MONOTONIC, &raw->last_commit);
		raw->rows += nrows;
		raw->commits++;
		for (r = batch; r != NULL; r = next) {
			next = r->next; /* r belongs to its producer again once done is set */
			r->done = 1;
			pthread_cond_signal(&r->cond);
		}
		pthread_mutex_unlock(&raw->lock);
	}
	return NULL;
}

static int
raw_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
raw_percentile(const double *sorted, size_t n, double pct)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(pct / 100.0 * (double)(n - 1) + 0.5);
	return sorted[i < n ? i : n - 1];
}

static int
raw_open(struct raw *raw, const char *path, const char *sync)
{
	char pragmas[256];

	snprintf(pragmas, sizeof(pragmas),
	    "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA busy_timeout=5000;", sync);
	if (sqlite3_open(path, &raw->db) != SQLITE_OK ||
	    sqlite3_exec(raw->db, pragmas, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(raw->db, raw_schema, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(raw->db, raw_insert, -1, &raw->insert, NULL) != SQLITE_OK) {
		fprintf(stderr, "raw_sqlite: %s: %s\n", path,
		    raw->db != NULL ? sqlite3_errmsg(raw->db) : "cannot open");
		return -1;
	}
	return 0;
}

int
main(int argc, char *argv[])
{
	struct raw raw = { 0 };
	struct raw_producer *prod = NULL;
	pthread_t committer;
	struct timespec t0, pause;
	const char *path = NULL, *sync = "FULL";
	unsigned int nprod = 64, i;
	double seconds = 10, elapsed, *all = NULL;
	size_t nall = 0, k;
	int ch, rc = 1;

	raw.parties = 1000;
	while ((ch = getopt(argc, argv, "f:t:d:p:s:h")) != -1) {
		switch (ch) {
		case 'f':
			path = optarg;
			break;
		case 't':
			nprod = (unsigned int)atoi(optarg);
			break;
		case 'd':
			seconds = atof(optarg);
			break;
		case 'p':
			raw.parties = (unsigned int)atoi(optarg);
			break;
		case 's':
			sync = optarg;
			break;
		default:
			fprintf(stderr, "usage: raw_sqlite -f FILE [-t PRODUCERS] [-d SECONDS] "
					"[-p PARTIES] [-s off|normal|full]\n");
			return ch == 'h' ? 0 : 2;
		}
	}
	if (path == NULL || nprod == 0 || raw.parties == 0 || seconds <= 0) {
		fprintf(stderr, "raw_sqlite: -f FILE is required; -t, -p, -d must be > 0\n");
		return 2;
	}
	pthread_mutex_init(&raw.lock, NULL);
	pthread_cond_init(&raw.queued, NULL);
	if (raw_open(&raw, path, sync) < 0)
		goto out;
	if ((prod = calloc(nprod, sizeof(*prod))) == NULL)
		goto out;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	raw.last_commit = t0;
	if (pthread_create(&committer, NULL, raw_committer_main, &raw) != 0)
		goto out;
	for (i = 0; i < nprod; i++) {
		prod[i].raw = &raw;
		if (pthread_create(&prod[i].thread, NULL, raw_producer_main, &prod[i]) != 0) {
			fprintf(stderr, "raw_sqlite: cannot start producer %u: %s\n", i,
			    strerror(errno));
			nprod = i;
			break;
		}
	}
	pause.tv_sec = (time_t)seconds;
	pause.tv_nsec = (long)((seconds - (double)pause.tv_sec) * 1e9);
	while (nanosleep(&pause, &pause) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&raw.lock);
	raw.stop = 1;
	pthread_cond_broadcast(&raw.queued);
	pthread_mutex_unlock(&raw.lock);
	for (i = 0; i < nprod; i++)
		pthread_join(prod[i].thread, NULL);
	pthread_join(committer, NULL);

	for (i = 0; i < nprod; i++)
		nall += prod[i].waits.n;
	if ((all = malloc((nall + 1) * sizeof(*all))) == NULL)
		goto out;
	for (i = 0, k = 0; i < nprod; i++) {
		memcpy(all + k, prod[i].waits.ms, prod[i].waits.n * sizeof(*all));
		k += prod[i].waits.n;
	}
	qsort(all, nall, sizeof(*all), raw_cmp_double);
	elapsed = raw_ms_between(&t0, &raw.last_commit) / 1e3;
	printf("rows=%llu seconds=%.3f rows_per_s=%.0f commits=%llu avg_batch=%.1f p50_ms=%.3f "
	       "p99_ms=%.3f max_ms=%.3f producers=%u synchronous=%s\n",
	    (unsigned long long)raw.rows, elapsed, elapsed > 0 ? (double)raw.rows / elapsed : 0,
	    (unsigned long long)raw.commits,
	    raw.commits != 0 ? (double)raw.rows / (double)raw.commits : 0,
	    raw_percentile(all, nall, 50), raw_percentile(all, nall, 99),
	    nall != 0 ? all[nall - 1] : 0, nprod, sync);
	rc = 0;
out:
	free(all);
	if (prod != NULL)
		for (i = 0; i < nprod; i++)
			free(prod[i].waits.ms);
	free(prod);
	if (raw.insert != NULL)
		sqlite3_finalize(raw.insert);
	if (raw.db != NULL)
		sqlite3_close(raw.db);
	pthread_cond_destroy(&raw.queued);
	pthread_mutex_destroy(&raw.lock);
	return rc;
}
