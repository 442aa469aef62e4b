/*
 * pg_search.c: STORE_SEARCH on PostgreSQL, over the search vectors the
 * schema's triggers keep (pg_schema.c, 1 -> 2): the same answers as the
 * SQLite driver's FTS5 index (core/store/store_sqlite_search.c) for the
 * same request, since both index the same folded words.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

/* Grows the query text by one piece; -1 without memory. */
struct q_text {
	char *s;
	size_t len, cap;
};

static int
q_add(struct q_text *q, const char *piece)
{
	size_t n = strlen(piece);

	if (q->len + n + 1 > q->cap) {
		size_t cap = (q->len + n + 1) * 2;
		char *grown = realloc(q->s, cap);

		if (grown == NULL)
			return -1;
		q->s = grown;
		q->cap = cap;
	}
	memcpy(q->s + q->len, piece, n + 1);
	q->len += n;
	return 0;
}

/* Appends hex(v) to q; -1 without memory. */
static int
q_hex(struct q_text *q, const char *v)
{
	static const char hex[] = "0123456789abcdef";
	char two[3] = { 0, 0, 0 };

	for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
		two[0] = hex[*p >> 4];
		two[1] = hex[*p & 0xF];
		if (q_add(q, two) < 0)
			return -1;
	}
	return 0;
}

/*
 * The scope lexeme "#" kind hex(v) [tail], or with kind2 "#" kind hex(v)
 * kind2 hex(v2), quoted for tsquery; as loket_contact_search() writes it
 * (pg_schema.c, 3 -> 4). Hex: any department name is one quoted lexeme.
 */
static int
q_token(struct q_text *q, char kind, const char *v, const char *tail, char kind2, const char *v2)
{
	char head[4] = { '\'', '#', kind, 0 }, two[2] = { kind2, 0 };

	if (q_add(q, head) < 0 || q_hex(q, v) < 0)
		return -1;
	if (tail != NULL && q_add(q, tail) < 0)
		return -1;
	if (v2 != NULL && (q_add(q, two) < 0 || q_hex(q, v2) < 0))
		return -1;
	return q_add(q, "'");
}

/* Whether w is one folded word (fold_text's letters): it can then be quoted as it is. */
static int
folded_word(const char *w)
{
	if (w == NULL || *w == '\0')
		return 0;
	for (; *w != '\0'; w++)
		if (!((*w >= 'a' && *w <= 'z') || (*w >= '0' && *w <= '9')))
			return 0;
	return 1;
}

/*
 * The tsquery of words (whole, or prefixes) and, for contacts, of the
 * scope's lexemes: the SQLite driver's FTS5 query, term for term
 * (store_sqlite_search.c, match_of):
 *   departments D..., organisation O:  & ('#dDc0' | '#dDoO' ...)
 *   every department, organisation O:  & !('#c1' & !'#oO')
 *   every department, no organisation: & !'#c1'
 * 0 with *none_r when the scope sees nothing; -1 without memory.
 */
static int
query_of(json_t *words, int prefix, json_t *scope, struct q_text *q, int *none_r)
{
	json_t *w, *deps = json_object_get(scope, "departments");
	const char *org, *dep;
	size_t i;

	*none_r = 0;
	json_array_foreach(words, i, w)
	{
		if ((i > 0 && q_add(q, " & ") < 0) || q_add(q, "'") < 0
		    || q_add(q, json_string_value(w)) < 0 || q_add(q, prefix ? "':*" : "'") < 0)
			return -1;
	}
	if (scope == NULL || json_is_true(json_object_get(scope, "all")))
		return 0;
	org = json_string_value(json_object_get(scope, "organisation"));
	if (!json_is_array(deps)) {
		if (org == NULL)
			return q_add(q, " & !'#c1'");
		if (q_add(q, " & !('#c1' & !") < 0 || q_token(q, 'o', org, NULL, 0, NULL) < 0)
			return -1;
		return q_add(q, ")");
	}
	if (json_array_size(deps) == 0) {
		*none_r = 1;
		return 0;
	}
	if (q_add(q, " & (") < 0)
		return -1;
	json_array_foreach(deps, i, w)
	{
		dep = json_string_value(w) != NULL ? json_string_value(w) : "";
		if ((i > 0 && q_add(q, " | ") < 0) || q_token(q, 'd', dep, "c0", 0, NULL) < 0)
			return -1;
		/* Confidential contacts only within the caller's organisation. */
		if (org != NULL
		    && (q_add(q, " | ") < 0 || q_token(q, 'd', dep, NULL, 'o', org) < 0))
			return -1;
	}
	return q_add(q, ")");
}

/* Appends the contact rows of r to items and frees r. */
static void
contacts_add(json_t *items, PGresult *r)
{
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(items, pg_read_contact_row(r, i));
	PQclear(r);
}

/* Appends the parties whose ids r holds (column 0) to items and frees r; -1 on failure. */
static int
parties_add(struct pg_conn *c, json_t *items, PGresult *r)
{
	json_t *p;

	for (int i = 0; i < PQntuples(r); i++) {
		if ((p = pg_read_party_load(c, pg_int(r, i, 0))) == NULL) {
			PQclear(r);
			return -1;
		}
		json_array_append_new(items, p);
	}
	PQclear(r);
	return 0;
}

/*
 * A party scope may see: live, and not one whose contacts are all
 * confidential unless one of them is in the scope (the party lookup's rule).
 */
#define PARTY_VISIBLE(n_all, n_deps, n_org)                                                        \
	" AND p.merged_into IS NULL AND (NOT p.confidential OR $" #n_all "::boolean OR EXISTS"     \
	" (SELECT 1 FROM contacts c WHERE c.party_id = p.id" PG_SCOPE(n_all, n_deps, n_org) "))"

static int
search_words(struct pg_conn *c, json_t *in, int want_contacts, int want_parties, int limit,
    json_t *contacts, json_t *parties)
{
	static const char sql_contacts[]
	    = "SELECT " PG_READ_CONTACT_COLS
	      "FROM contacts c LEFT JOIN parties p ON p.id = c.party_id"
	      " WHERE c.search @@ $1::tsquery" PG_SCOPE(
	          2, 3, 4) " ORDER BY c.id DESC LIMIT $5::bigint";
	static const char sql_parties[]
	    = "SELECT p.id FROM parties p WHERE p.search @@ $1::tsquery" PARTY_VISIBLE(
	        2, 3, 4) " ORDER BY p.id DESC LIMIT $5::bigint";
	json_t *words = json_object_get(in, "words"), *scope = json_object_get(in, "scope");
	struct q_text q = { NULL, 0, 0 };
	struct pg_params p;
	PGresult *r;
	int none;

	if (want_contacts) {
		if (query_of(words, 0, scope, &q, &none) < 0)
			goto fail;
		if (!none) {
			pg_params_init(&p);
			pg_p_text(&p, q.s);
			pg_p_scope(&p, scope);
			pg_p_int(&p, limit);
			if ((r = pg_q(c, sql_contacts, &p)) == NULL)
				goto fail;
			contacts_add(contacts, r);
		}
		free(q.s);
		q = (struct q_text) { NULL, 0, 0 };
	}
	if (want_parties) {
		if (query_of(words, 1, NULL, &q, &none) < 0)
			goto fail;
		pg_params_init(&p);
		pg_p_text(&p, q.s);
		pg_p_scope(&p, scope);
		pg_p_int(&p, limit);
		if ((r = pg_q(c, sql_parties, &p)) == NULL || parties_add(c, parties, r) < 0)
			goto fail;
	}
	free(q.s);
	return 0;
fail:
	free(q.s);
	return -1;
}

/* A query that is an identifier: the party holding it and its contacts, newest first. */
static int
search_identifier(struct pg_conn *c, json_t *in, int want_contacts, int want_parties, int limit,
    json_t *contacts, json_t *parties)
{
	static const char sql_rrn[] = "SELECT id FROM parties WHERE rrn = $1::text"
	                              " AND merged_into IS NULL";
	static const char sql_email[] = "SELECT party_id FROM party_emails WHERE email = $1::text";
	static const char sql_phone[] = "SELECT party_id FROM party_phones WHERE phone = $1::text";
	static const struct {
		const char *key, *sql;
	} ids[] = { { "rrn", sql_rrn }, { "email", sql_email }, { "phone", sql_phone } };
	static const char sql_contacts[]
	    = "SELECT " PG_READ_CONTACT_COLS
	      "FROM contacts c LEFT JOIN parties p ON p.id = c.party_id"
	      " WHERE c.party_id = $1::bigint" PG_SCOPE(
	          2, 3, 4) " ORDER BY c.id DESC LIMIT $5::bigint";
	static const char sql_reference[]
	    = "SELECT " PG_READ_CONTACT_COLS
	      "FROM contacts c LEFT JOIN parties p ON p.id = c.party_id"
	      " WHERE c.reference = $1::text" PG_SCOPE(2, 3, 4);
	static const char sql_party[]
	    = "SELECT p.id FROM parties p WHERE p.id = $1::bigint" PARTY_VISIBLE(2, 3, 4);
	json_t *scope = json_object_get(in, "scope");
	struct pg_params p;
	int64_t id = 0;
	PGresult *r;

	if (pg_jstr(in, "reference") != NULL) {
		if (!want_contacts)
			return 0;
		pg_params_init(&p);
		pg_p_jtext(&p, in, "reference");
		pg_p_scope(&p, scope);
		if ((r = pg_q(c, sql_reference, &p)) == NULL)
			return -1;
		contacts_add(contacts, r);
		return 0;
	}
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]) && id == 0; i++) {
		if (pg_jstr(in, ids[i].key) == NULL)
			continue;
		pg_params_init(&p);
		pg_p_jtext(&p, in, ids[i].key);
		if ((r = pg_q(c, ids[i].sql, &p)) == NULL)
			return -1;
		if (PQntuples(r) > 0)
			id = pg_int(r, 0, 0);
		PQclear(r);
	}
	if (id == 0)
		return 0;
	if (want_parties) {
		pg_params_init(&p);
		pg_p_int(&p, id);
		pg_p_scope(&p, scope);
		if ((r = pg_q(c, sql_party, &p)) == NULL || parties_add(c, parties, r) < 0)
			return -1;
	}
	if (!want_contacts)
		return 0;
	pg_params_init(&p);
	pg_p_int(&p, id);
	pg_p_scope(&p, scope);
	pg_p_int(&p, limit);
	if ((r = pg_q(c, sql_contacts, &p)) == NULL)
		return -1;
	contacts_add(contacts, r);
	return 0;
}

void
pg_op_search(struct pg_conn *c, struct store_req *req)
{
	json_t *in = req->in, *words = json_object_get(in, "words"), *w;
	const char *type = pg_jstr(in, "type");
	int limit = (int)json_integer_value(json_object_get(in, "limit"));
	int want_contacts = type == NULL || strcmp(type, "parties") != 0;
	int want_parties = type == NULL || strcmp(type, "contacts") != 0;
	json_t *contacts = json_array(), *parties = json_array();
	size_t i;
	int rc;

	if (limit <= 0 || limit > 1000)
		limit = 20;
	if (words != NULL) {
		int ok = json_is_array(words) && json_array_size(words) > 0;

		json_array_foreach(words, i, w) ok = ok && folded_word(json_string_value(w));
		if (!ok) {
			json_decref(contacts);
			json_decref(parties);
			pg_host->req_fail(
			    req, STORE_INVALID, "search: the words are not folded words");
			return;
		}
		rc = search_words(c, in, want_contacts, want_parties, limit, contacts, parties);
	} else {
		rc = search_identifier(
		    c, in, want_contacts, want_parties, limit, contacts, parties);
	}
	if (rc < 0 || contacts == NULL || parties == NULL) {
		json_decref(contacts);
		json_decref(parties);
		pg_read_fail(c, req);
		return;
	}
	req->out = json_pack("{s:o, s:o}", "contacts", contacts, "parties", parties);
}
