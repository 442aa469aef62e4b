/* pg_conn.c: one PostgreSQL connection: prepared statements, parameters, columns, faults. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg.h"

/* The statement's first words, for a log line that names it without its values. */
static void
pg_sql_head(const char *sql, char *buf, size_t len)
{
	size_t n = 0;

	while (sql[n] != '\0' && n + 1 < len && n < 48)
		n++;
	memcpy(buf, sql, n);
	buf[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (buf[i] == '\n' || buf[i] == '\t')
			buf[i] = ' ';
}

static enum pg_fault
pg_fault_of(const char *state)
{
	if (state == NULL || state[0] == '\0')
		return PG_FAULT_CONNECTION;
	if (strcmp(state, "23505") == 0 || strcmp(state, "23P01") == 0)
		return PG_FAULT_CONFLICT;
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
		return PG_FAULT_RETRY;
	if (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
	    strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0 ||
	    strcmp(state, "53300") == 0)
		return PG_FAULT_CONNECTION;
	return PG_FAULT_FAILED;
}

/* Sets c->fault from a failed result (or none: the connection broke); logs the cause. */
static void
pg_note_failure(struct pg_conn *c, const PGresult *r, const char *sql)
{
	const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char head[64];

	if (PQstatus(c->conn) != CONNECTION_OK)
		state = NULL;
	c->fault = pg_fault_of(state);
	if (c->fault == PG_FAULT_RETRY)
		c->retry_seen = 1;
	snprintf(c->sqlstate, sizeof(c->sqlstate), "%s", state != NULL ? state : "");
	/* A conflict is an answer, not a failure: the caller decides what it means. */
	if (c->fault == PG_FAULT_CONFLICT)
		return;
	pg_sql_head(sql, head, sizeof(head));
	if (msg == NULL)
		msg = PQerrorMessage(c->conn);
	pg_logf("%s: statement failed sqlstate=%s stmt=\"%s...\": %.300s", c->who,
	    state != NULL ? state : "none", head, msg != NULL ? msg : "?");
}

/* Notices ("relation already exists, skipping") are no news for an operator. */
static void
pg_notice_cb(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

int
pg_connect(struct pg_conn *c, const char *conninfo, const char *who, const char **error_r)
{
	static char err[512];
	PGresult *r;

	memset(c, 0, sizeof(*c));
	snprintf(c->who, sizeof(c->who), "%s", who);
	c->conn = PQconnectdb(conninfo);
	if (c->conn == NULL || PQstatus(c->conn) != CONNECTION_OK) {
		/* libpq's text names host and port, never the password. */
		snprintf(err, sizeof(err), "cannot connect to PostgreSQL: %s",
		    c->conn != NULL ? PQerrorMessage(c->conn) : "out of memory");
		for (char *p = err; *p != '\0'; p++)
			if (*p == '\n')
				*p = ' ';
		*error_r = err;
		pg_disconnect(c);
		return -1;
	}
	PQsetNoticeProcessor(c->conn, pg_notice_cb, NULL);
	/*
	 * The register's times are timestamptz and compared in SQL; UTC keeps
	 * text output (the log, psql) the same on every node.
	 */
	r = PQexec(c->conn, "SET TIME ZONE 'UTC'");
	PQclear(r);
	return 0;
}

void
pg_disconnect(struct pg_conn *c)
{
	if (c->conn != NULL)
		PQfinish(c->conn);
	c->conn = NULL;
	c->ncache = 0;
}

int
pg_alive(struct pg_conn *c)
{
	return c->conn != NULL && PQstatus(c->conn) == CONNECTION_OK;
}

static uint64_t
pg_clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The statement that began at t0 ended: its time to the connection's metric, if any. */
static void
pg_timed(struct pg_conn *c, uint64_t t0)
{
	if (c->timed != NULL)
		c->timed(c->timed_arg, pg_clock_ns() - t0);
}

static PGresult *pg_run_untimed(struct pg_conn *c, const char *sql, const struct pg_params *p);
static int pg_exec_untimed(struct pg_conn *c, const char *sql);

PGresult *
pg_run(struct pg_conn *c, const char *sql, const struct pg_params *p)
{
	uint64_t t0 = c->timed != NULL ? pg_clock_ns() : 0;
	PGresult *r = pg_run_untimed(c, sql, p);

	pg_timed(c, t0);
	return r;
}

int
pg_exec(struct pg_conn *c, const char *sql)
{
	uint64_t t0 = c->timed != NULL ? pg_clock_ns() : 0;
	int rc = pg_exec_untimed(c, sql);

	pg_timed(c, t0);
	return rc;
}

static PGresult *
pg_run_untimed(struct pg_conn *c, const char *sql, const struct pg_params *p)
{
	char name[16];
	PGresult *r;
	int i, n = -1;

	c->fault = PG_FAULT_NONE;
	c->sqlstate[0] = '\0';
	if (c->conn == NULL) {
		c->fault = PG_FAULT_CONNECTION;
		return NULL;
	}
	for (i = 0; i < c->ncache; i++)
		if (c->cache[i].sql == sql) {
			n = c->cache[i].n;
			break;
		}
	if (n < 0) {
		n = c->ncache;
		/* More statements than the cache holds: the unnamed one, prepared each time. */
		if (n < PG_STMT_CACHE)
			snprintf(name, sizeof(name), "s%d", n);
		else
			name[0] = '\0';
		r = PQprepare(c->conn, name, sql, 0, NULL);
		if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
			pg_note_failure(c, r, sql);
			PQclear(r);
			return NULL;
		}
		PQclear(r);
		if (c->ncache < PG_STMT_CACHE) {
			c->cache[c->ncache].sql = sql;
			c->cache[c->ncache].n = n;
			c->ncache++;
		}
	} else {
		snprintf(name, sizeof(name), "s%d", n);
	}
	r = PQexecPrepared(c->conn, name, p != NULL ? p->n : 0, p != NULL ? p->v : NULL, NULL, NULL,
	    0);
	if (r == NULL ||
	    (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)) {
		pg_note_failure(c, r, sql);
		PQclear(r);
		return NULL;
	}
	return r;
}

static int
pg_exec_untimed(struct pg_conn *c, const char *sql)
{
	PGresult *r;

	c->fault = PG_FAULT_NONE;
	c->sqlstate[0] = '\0';
	if (c->conn == NULL) {
		c->fault = PG_FAULT_CONNECTION;
		return -1;
	}
	r = PQexec(c->conn, sql);
	if (r == NULL ||
	    (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)) {
		pg_note_failure(c, r, sql);
		PQclear(r);
		return -1;
	}
	PQclear(r);
	return 0;
}

PGresult *
pg_q(struct pg_conn *c, const char *sql, struct pg_params *p)
{
	PGresult *r = pg_run(c, sql, p);

	pg_params_clear(p);
	return r;
}

PGresult *
pg_q_once(struct pg_conn *c, const char *sql, struct pg_params *p)
{
	PGresult *r;

	c->fault = PG_FAULT_NONE;
	c->sqlstate[0] = '\0';
	if (c->conn == NULL) {
		c->fault = PG_FAULT_CONNECTION;
		pg_params_clear(p);
		return NULL;
	}
	r = PQexecParams(c->conn, sql, p->n, NULL, p->v, NULL, NULL, 0);
	pg_params_clear(p);
	if (r == NULL ||
	    (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)) {
		pg_note_failure(c, r, sql);
		PQclear(r);
		return NULL;
	}
	return r;
}

int64_t
pg_q_exec(struct pg_conn *c, const char *sql, struct pg_params *p)
{
	PGresult *r = pg_q(c, sql, p);
	int64_t n;

	if (r == NULL)
		return -1;
	n = strtoll(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return n;
}

void
pg_p_scope(struct pg_params *p, json_t *scope)
{
	json_t *deps = json_object_get(scope, "departments");

	pg_p_bool(p, json_is_true(json_object_get(scope, "all")));
	if (json_is_array(deps))
		pg_p_json(p, deps, "[]");
	else
		pg_p_null(p);
	pg_p_jtext(p, scope, "organisation");
}

void
pg_params_init(struct pg_params *p)
{
	memset(p, 0, sizeof(*p));
}

void
pg_params_clear(struct pg_params *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->owned[i]);
	pg_params_init(p);
}

/* The next slot, or NULL past PG_PARAMS_MAX (a bug: the statement then fails on its count). */
static int
pg_p_next(struct pg_params *p)
{
	if (p->n >= PG_PARAMS_MAX) {
		pg_logf("a statement has more than %d parameters", PG_PARAMS_MAX);
		return -1;
	}
	p->v[p->n] = NULL;
	p->owned[p->n] = NULL;
	return p->n++;
}

void
pg_p_text(struct pg_params *p, const char *s)
{
	int i = pg_p_next(p);

	if (i >= 0)
		p->v[i] = s;
}

void
pg_p_int(struct pg_params *p, int64_t v)
{
	int i = pg_p_next(p);

	if (i < 0)
		return;
	snprintf(p->num[i], sizeof(p->num[i]), "%" PRId64, v);
	p->v[i] = p->num[i];
}

void
pg_p_null(struct pg_params *p)
{
	pg_p_next(p);
}

void
pg_p_bool(struct pg_params *p, int b)
{
	pg_p_text(p, b ? "true" : "false");
}

void
pg_p_jtext(struct pg_params *p, json_t *obj, const char *key)
{
	pg_p_text(p, pg_jstr(obj, key));
}

void
pg_p_jint(struct pg_params *p, json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_integer(v))
		pg_p_int(p, json_integer_value(v));
	else
		pg_p_null(p);
}

void
pg_p_json(struct pg_params *p, json_t *v, const char *fallback)
{
	int i = pg_p_next(p);

	if (i < 0)
		return;
	if (v != NULL && !json_is_null(v) &&
	    (p->owned[i] = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)) != NULL)
		p->v[i] = p->owned[i];
	else
		p->v[i] = fallback;
}

json_t *
pg_col_text(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return json_null();
	return json_stringn(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

json_t *
pg_col_int(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return json_null();
	return json_integer((json_int_t)strtoll(PQgetvalue(r, row, col), NULL, 10));
}

json_t *
pg_col_bool(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return json_null();
	return json_boolean(PQgetvalue(r, row, col)[0] == 't');
}

json_t *
pg_col_json(const PGresult *r, int row, int col)
{
	json_t *v;

	if (PQgetisnull(r, row, col))
		return json_null();
	v = json_loadb(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col),
	    JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	return v != NULL ? v : json_null();
}

int64_t
pg_int(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return 0;
	return (int64_t)strtoll(PQgetvalue(r, row, col), NULL, 10);
}

int
pg_isnull(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col);
}

const char *
pg_str(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

const char *
pg_jstr(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}
