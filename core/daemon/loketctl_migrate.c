/*
 * loketctl_migrate.c: `loketctl migrate --from DRIVER:WHERE --to DRIVER:WHERE`:
 * copies a whole register into an empty one (SQLite to PostgreSQL), then
 * verifies it table by table before it commits.
 *
 * Both registers are reached through their storage drivers, loaded as
 * loketd loads them: loketctl never speaks SQL. The source is read once,
 * in one snapshot, and its rows are handed to the target in batches inside
 * one transaction; then the target is read back inside that transaction
 * and every table's row count and checksum (SHA-256 over the canonical JSON
 * of its rows, in key order) must equal the source's, or nothing is kept.
 * The conninfo may hold a password: it is never printed.
 */
#include "config.h"

#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "loketctl.h"
#include "store.h"
#include "util.h"

/* A batch handed to the target at once: rows, or bytes for the blobs. */
#define MIGRATE_BATCH_ROWS 500
#define MIGRATE_BATCH_BYTES (8u << 20)

static const char *const migrate_tables[] = { LOKET_STORE_COPY_TABLES };
#define MIGRATE_NTABLES (sizeof(migrate_tables) / sizeof(migrate_tables[0]))

/* What one side holds of a table: its rows counted and hashed in key order. */
struct migrate_sum {
	int seen;
	int64_t announced; /* the driver's count before the rows */
	int64_t rows;
	crypto_hash_sha256_state h;
	char hex[65];
};

struct migrate {
	struct store *to;
	void *load;
	struct migrate_sum src[MIGRATE_NTABLES], dst[MIGRATE_NTABLES];
	struct migrate_sum *sums; /* the side being read */
	int cur;                  /* the table being read, or -1 */
	json_t *batch;
	size_t batch_bytes;
	const char *error;
	/* Progress: a bar on a terminal, a line per table otherwise. */
	int tty;
	const char *phase;
	uint64_t drawn_ns;
};

/* Where a table sits in the copy's order, or -1. */
static int
migrate_table_index(const char *table)
{
	for (size_t i = 0; i < MIGRATE_NTABLES; i++)
		if (strcmp(migrate_tables[i], table) == 0)
			return (int)i;
	return -1;
}

/*
 * The canonical form of a row: compact JSON with every object's keys
 * sorted, so that both drivers' dumps of the same row hash the same.
 * Returned malloc()ed, or NULL without memory.
 */
static char *
migrate_canonical(json_t *row)
{
	return json_dumps(row, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

static void
migrate_progress(struct migrate *m, int done)
{
	const struct migrate_sum *s;
	uint64_t now;

	if (m->cur < 0)
		return;
	s = &m->sums[m->cur];
	if (!m->tty) {
		if (done)
			fprintf(stderr, "%s %s: %lld rows\n", m->phase, migrate_tables[m->cur],
			    (long long)s->rows);
		return;
	}
	now = util_now_ns();
	if (!done && now - m->drawn_ns < 100000000ull)
		return;
	m->drawn_ns = now;
	{
		int64_t total = s->announced > 0 ? s->announced : 1;
		int pct = (int)(s->rows * 100 / total), fill;
		char bar[31];

		if (pct > 100)
			pct = 100;
		if (s->announced == 0)
			pct = 100;
		fill = pct * 30 / 100;
		memset(bar, '#', (size_t)fill);
		memset(bar + fill, '.', (size_t)(30 - fill));
		bar[30] = '\0';
		fprintf(stderr, "\r%-9s %-16s [%s] %3d%% %lld/%lld", m->phase,
		    migrate_tables[m->cur], bar, pct, (long long)s->rows, (long long)s->announced);
		if (done)
			fputc('\n', stderr);
		fflush(stderr);
	}
}

/* Hands the rows gathered so far to the target. */
static int
migrate_flush(struct migrate *m)
{
	const char *err;

	if (m->batch == NULL || json_array_size(m->batch) == 0)
		return 0;
	if (store_copy_load_rows(m->to, m->load, migrate_tables[m->cur], m->batch, &err) < 0) {
		m->error = util_error("copying table %s: %s", migrate_tables[m->cur], err);
		return -1;
	}
	json_array_clear(m->batch);
	m->batch_bytes = 0;
	return 0;
}

/* The end of the table being read: its checksum, and its rows all handed over. */
static int
migrate_table_end(struct migrate *m)
{
	struct migrate_sum *s;
	unsigned char h[crypto_hash_sha256_BYTES];

	if (m->cur < 0)
		return 0;
	if (m->batch != NULL && migrate_flush(m) < 0)
		return -1;
	s = &m->sums[m->cur];
	crypto_hash_sha256_final(&s->h, h);
	sodium_bin2hex(s->hex, sizeof(s->hex), h, sizeof(h));
	migrate_progress(m, 1);
	m->cur = -1;
	return 0;
}

static int
migrate_row_cb(const char *table, int64_t total, json_t *row, void *arg)
{
	struct migrate *m = arg;
	struct migrate_sum *s;
	char *text;
	size_t len;
	int i;

	if (row == NULL) {
		if (migrate_table_end(m) < 0)
			return -1;
		if ((i = migrate_table_index(table)) < 0 || m->sums[i].seen) {
			m->error = util_error("the driver handed an unknown or repeated table '%s'",
			    table);
			return -1;
		}
		m->cur = i;
		s = &m->sums[i];
		s->seen = 1;
		s->announced = total;
		crypto_hash_sha256_init(&s->h);
		migrate_progress(m, 0);
		return 0;
	}
	if (m->cur < 0 || strcmp(migrate_tables[m->cur], table) != 0) {
		m->error = util_error("the driver handed rows of table '%s' out of order", table);
		return -1;
	}
	s = &m->sums[m->cur];
	if ((text = migrate_canonical(row)) == NULL) {
		m->error = "out of memory";
		return -1;
	}
	len = strlen(text);
	crypto_hash_sha256_update(&s->h, (const unsigned char *)text, len);
	crypto_hash_sha256_update(&s->h, (const unsigned char *)"\n", 1);
	free(text);
	s->rows++;
	if (m->batch != NULL) {
		if (json_array_append(m->batch, row) < 0) {
			m->error = "out of memory";
			return -1;
		}
		m->batch_bytes += len;
		if ((json_array_size(m->batch) >= MIGRATE_BATCH_ROWS
		        || m->batch_bytes >= MIGRATE_BATCH_BYTES)
		    && migrate_flush(m) < 0)
			return -1;
	}
	migrate_progress(m, 0);
	return 0;
}

/* Reads one side whole: from (and into the load, batch non-NULL), or the load back. */
static int
migrate_read(struct migrate *m, struct store *s, void *load, struct migrate_sum *sums,
    const char *phase, int copy)
{
	const char *err = NULL;

	m->sums = sums;
	m->cur = -1;
	m->phase = phase;
	if (copy && (m->batch = json_array()) == NULL) {
		m->error = "out of memory";
		return -1;
	}
	m->error = NULL;
	if (store_copy_dump(s, load, migrate_row_cb, m, &err) < 0
	    || migrate_table_end(m) < 0) {
		if (m->tty)
			fputc('\n', stderr);
		if (m->error == NULL)
			m->error = err;
		json_decref(m->batch);
		m->batch = NULL;
		return -1;
	}
	json_decref(m->batch);
	m->batch = NULL;
	for (size_t i = 0; i < MIGRATE_NTABLES; i++)
		if (!sums[i].seen) {
			m->error = util_error("the driver did not hand table %s", migrate_tables[i]);
			return -1;
		}
	return 0;
}

/* DRIVER:WHERE split; -1 when it is not that shape. */
static int
migrate_spec(const char *spec, char *driver, size_t len, const char **where_r)
{
	const char *colon = strchr(spec, ':');
	size_t n = colon != NULL ? (size_t)(colon - spec) : 0;

	if (colon == NULL || n == 0 || n >= len || colon[1] == '\0'
	    || strspn(spec, "abcdefghijklmnopqrstuvwxyz0123456789_") != n)
		return -1;
	memcpy(driver, spec, n);
	driver[n] = '\0';
	*where_r = colon + 1;
	return 0;
}

/*
 * Where a SQLite register's blobs are: data_dir when path is the register
 * the config names, else the folder the file is in (data_dir holds
 * loket.db and attachments/ side by side by default).
 */
static const char *
migrate_sqlite_data_dir(const struct conf *conf, const char *path, char *buf, size_t len)
{
	char a[PATH_MAX], b[PATH_MAX], copy[PATH_MAX];

	if (realpath(path, a) != NULL && conf->storage_path != NULL
	    && realpath(conf->storage_path, b) != NULL && strcmp(a, b) == 0)
		return conf->data_dir;
	snprintf(copy, sizeof(copy), "%s", path);
	snprintf(buf, len, "%s", dirname(copy));
	return buf;
}

static int
migrate_usage(const char *why)
{
	if (why != NULL)
		fprintf(stderr, "loketctl: migrate: %s\n", why);
	fprintf(stderr, "usage: loketctl migrate --from sqlite:PATH --to pgsql:CONNINFO\n"
	                "copies a whole register into an empty one and verifies it\n");
	return 2;
}

int
cmd_migrate(const struct conf *conf, int argc, char **argv)
{
	const char *from = NULL, *to = NULL, *from_where, *to_where, *err = NULL;
	char from_driver[64], to_driver[64], dirbuf[PATH_MAX];
	const char *from_dir = conf->data_dir;
	struct store *src = NULL, *dst = NULL;
	struct migrate m = { .cur = -1 };
	int rc = 1, bad = 0;
	int64_t rows = 0;

	for (int k = 0; k < argc; k++) {
		if ((strcmp(argv[k], "--from") == 0 || strcmp(argv[k], "--to") == 0)
		    && k + 1 < argc) {
			*(argv[k][2] == 'f' ? &from : &to) = argv[k + 1];
			k++;
		} else if (strncmp(argv[k], "--from=", 7) == 0) {
			from = argv[k] + 7;
		} else if (strncmp(argv[k], "--to=", 5) == 0) {
			to = argv[k] + 5;
		} else {
			/* Not echoed: a stray argument may be a conninfo with a password. */
			return migrate_usage(argv[k][0] == '-' ? "unknown option or an option "
			                                         "without its value"
			                                       : "unexpected argument");
		}
	}
	if (from == NULL || to == NULL)
		return migrate_usage("both --from and --to are required");
	if (migrate_spec(from, from_driver, sizeof(from_driver), &from_where) < 0)
		return migrate_usage("--from must be DRIVER:WHERE, e.g. sqlite:/var/lib/loket/loket.db");
	if (migrate_spec(to, to_driver, sizeof(to_driver), &to_where) < 0)
		return migrate_usage("--to must be DRIVER:WHERE, e.g. pgsql:'host=db dbname=loket'");
	if (strcmp(from_driver, to_driver) == 0)
		return migrate_usage("--from and --to name the same driver: a copy moves a "
		                     "register to another driver");
	if (strcmp(from_driver, "sqlite") == 0) {
		if (access(from_where, R_OK) < 0) {
			fprintf(stderr, "loketctl: migrate: no readable register file at %s\n",
			    from_where);
			return 2;
		}
		from_dir = migrate_sqlite_data_dir(conf, from_where, dirbuf, sizeof(dirbuf));
	}
	if (store_copy_prepare(conf, from_driver, from_where, from_dir, &src, &err) < 0
	    || store_copy_prepare(conf, to_driver, to_where, conf->data_dir, &dst, &err) < 0) {
		fprintf(stderr, "loketctl: migrate: %s\n", err);
		rc = 2;
		goto out;
	}
	m.to = dst;
	m.tty = isatty(STDERR_FILENO);
	/* Names the target by its driver only: its conninfo may hold a password. */
	fprintf(stderr, "copying the register from %s:%s to %s\n", from_driver,
	    strcmp(from_driver, "sqlite") == 0 ? from_where : "(conninfo)", to_driver);
	if (store_copy_load_begin(dst, &m.load, &err) < 0) {
		fprintf(stderr, "loketctl: migrate: %s\n", err);
		goto out;
	}
	if (migrate_read(&m, src, NULL, m.src, "copying", 1) < 0) {
		fprintf(stderr, "loketctl: migrate: %s; nothing was written\n", m.error);
		goto abort;
	}
	if (migrate_read(&m, dst, m.load, m.dst, "verifying", 0) < 0) {
		fprintf(stderr, "loketctl: migrate: verifying the copy: %s; nothing was written\n",
		    m.error);
		goto abort;
	}
	printf("%-16s %10s %10s  %s\n", "TABLE", "SOURCE", "TARGET", "SHA-256");
	for (size_t i = 0; i < MIGRATE_NTABLES; i++) {
		int same = m.src[i].rows == m.dst[i].rows && strcmp(m.src[i].hex, m.dst[i].hex) == 0;

		printf("%-16s %10lld %10lld  %.16s %s\n", migrate_tables[i],
		    (long long)m.src[i].rows, (long long)m.dst[i].rows, m.src[i].hex,
		    same ? "ok" : "MISMATCH");
		if (!same) {
			printf("%-16s %10s %10s  %.16s (target)\n", "", "", "", m.dst[i].hex);
			bad++;
		}
		rows += m.src[i].rows;
	}
	fflush(stdout);
	if (bad > 0) {
		fprintf(stderr, "loketctl: migrate: %d table%s of the copy differ from the source; "
		                "nothing was written\n",
		    bad, bad == 1 ? "" : "s");
		goto abort;
	}
	if (store_copy_load_end(dst, m.load, 1, &err) < 0) {
		m.load = NULL;
		fprintf(stderr, "loketctl: migrate: %s\n", err);
		goto out;
	}
	m.load = NULL;
	printf("copied and verified %lld rows in %zu tables\n", (long long)rows, MIGRATE_NTABLES);
	rc = 0;
	goto out;
abort:
	if (m.load != NULL)
		store_copy_load_end(dst, m.load, 0, &err);
	m.load = NULL;
out:
	store_copy_free(dst);
	store_copy_free(src);
	return rc;
}
