/*
 * pg_parties.c: parties in PostgreSQL: matching at intake, staff changes,
 * merges (store_sqlite_parties.c does the same in SQLite).
 *
 * A party's identifiers (RRN, BSN, email addresses, phone numbers) are
 * unique constraints. Two nodes taking in the first contact of one person
 * at once both find no party; the one whose identifiers land second sees
 * ON CONFLICT DO NOTHING return nothing, rolls its new party back and
 * matches the party the other made. Never check-then-insert.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

static const char sql_party_by_rrn[] = "SELECT id FROM parties WHERE rrn = $1";
static const char sql_party_by_bsn[] = "SELECT id FROM parties WHERE bsn = $1";
static const char sql_party_by_email[] = "SELECT party_id FROM party_emails WHERE email = $1";
static const char sql_party_by_phone[] = "SELECT party_id FROM party_phones WHERE phone = $1";

/* The identifier kinds, strongest first: the order a contact is matched in. */
static const struct {
	const char *key;
	const char *sql;
} party_ids[] = {
	{ "rrn", sql_party_by_rrn },
	{ "bsn", sql_party_by_bsn },
	{ "email", sql_party_by_email },
	{ "phone", sql_party_by_phone },
};
#define PARTY_ID_KINDS (sizeof(party_ids) / sizeof(party_ids[0]))

static const char *const party_id_words[] = { "RRN", "BSN", "email address", "phone number" };

/* What matching, merging and visibility need of a party's row. */
struct party_row {
	int64_t id;
	int64_t created_at;
	int64_t merged_into;
	int confidential;
	char rrn[32];
	char bsn[32];
	int has_rrn, has_bsn;
};

/* The SQL condition of a scope bound by pg_p_scope at n, n+1, n+2, on contacts aliased c. */
#define SCOPE_SQL(n_all, n_deps, n_org)                                                       \
	" AND ($" #n_all "::boolean OR (($" #n_deps "::jsonb IS NULL OR c.department IN"       \
	" (SELECT jsonb_array_elements_text($" #n_deps "::jsonb))) AND (NOT c.confidential"    \
	" OR c.organisation = $" #n_org ")))"

/* The party an identifier belongs to, 0 when none, -1 on error. */
static int64_t
party_by(struct pg_conn *c, const char *sql, const char *value)
{
	struct pg_params p;
	PGresult *r;
	int64_t id = 0;

	if (value == NULL)
		return 0;
	pg_params_init(&p);
	pg_p_text(&p, value);
	if ((r = pg_q(c, sql, &p)) == NULL)
		return -1;
	if (PQntuples(r) > 0)
		id = pg_int(r, 0, 0);
	PQclear(r);
	return id;
}

static const char sql_add_email[] = "INSERT INTO party_emails (party_id, email) VALUES ($1, $2)"
				    " ON CONFLICT (email) DO NOTHING RETURNING party_id";
static const char sql_add_phone[] = "INSERT INTO party_phones (party_id, phone) VALUES ($1, $2)"
				    " ON CONFLICT (phone) DO NOTHING RETURNING party_id";

/* Gives party id an email or phone; 1 when another party holds it (nothing changed), 0, -1. */
static int
party_add_contact_id(struct pg_conn *c, int64_t id, const char *sql, const char *value)
{
	struct pg_params p;
	PGresult *r;
	int taken;

	pg_params_init(&p);
	pg_p_int(&p, id);
	pg_p_text(&p, value);
	if ((r = pg_q(c, sql, &p)) == NULL)
		return -1;
	taken = PQntuples(r) == 0;
	PQclear(r);
	return taken;
}

/*
 * A new party with what the contact brought. 0 and *id_r, 1 when one of
 * its identifiers was taken meanwhile (the new party is rolled back; match
 * again), -1 when a statement failed.
 */
static int
party_new(struct pg_conn *c, json_t *party, int64_t now, int64_t *id_r)
{
	static const char sql_new[] = "INSERT INTO parties (name, created_at, rrn, bsn)"
				      " VALUES ($1, " PG_TS(2) ", $3, $4) ON CONFLICT DO NOTHING"
				      " RETURNING id";
	struct pg_params p;
	PGresult *r;
	int64_t id;
	int taken;

	if (pg_exec(c, "SAVEPOINT party_new") < 0)
		return -1;
	pg_params_init(&p);
	pg_p_jtext(&p, party, "name");
	pg_p_int(&p, now);
	pg_p_jtext(&p, party, "rrn");
	pg_p_jtext(&p, party, "bsn");
	if ((r = pg_q(c, sql_new, &p)) == NULL)
		return -1;
	taken = PQntuples(r) == 0;
	id = taken ? 0 : pg_int(r, 0, 0);
	PQclear(r);
	if (!taken && pg_jstr(party, "email") != NULL &&
	    (taken = party_add_contact_id(c, id, sql_add_email, pg_jstr(party, "email"))) < 0)
		return -1;
	if (!taken && pg_jstr(party, "phone") != NULL &&
	    (taken = party_add_contact_id(c, id, sql_add_phone, pg_jstr(party, "phone"))) < 0)
		return -1;
	if (taken)
		return pg_exec(c, "ROLLBACK TO SAVEPOINT party_new") < 0 ? -1 : 1;
	if (pg_exec(c, "RELEASE SAVEPOINT party_new") < 0)
		return -1;
	*id_r = id;
	return 0;
}

/*
 * Identifiers from a channel (a form, a mail header, a caller ID) were
 * verified by nobody: they find a party, they never extend or overwrite one.
 * The contact goes to the strongest match; identifiers that point at another
 * party, or that the matched party does not hold, flag the contact for staff,
 * who change parties on purpose (PATCH, merge). Only a contact that matches
 * nobody makes a new party, with what it brought.
 */
int
pg_party_match(struct pg_conn *c, json_t *party, int64_t now, int64_t *id_r, char **conflict_r)
{
	int64_t found[PARTY_ID_KINDS], id = 0;
	const char *matched_by = NULL;
	json_t *others, *unknown, *conflict;
	size_t i;
	int attempt, rc;

	*id_r = 0;
	*conflict_r = NULL;
	for (i = 0; i < PARTY_ID_KINDS && pg_jstr(party, party_ids[i].key) == NULL; i++)
		;
	if (i == PARTY_ID_KINDS)
		return 0; /* anonymous: a name alone identifies nobody */
	for (attempt = 0; attempt < 3; attempt++) {
		id = 0;
		for (i = 0; i < PARTY_ID_KINDS; i++) {
			if ((found[i] = party_by(c, party_ids[i].sql,
				 pg_jstr(party, party_ids[i].key))) < 0)
				return -1;
			if (found[i] != 0 && id == 0) {
				id = found[i];
				matched_by = party_ids[i].key;
			}
		}
		if (id != 0)
			break;
		if ((rc = party_new(c, party, now, &id)) < 0)
			return -1;
		if (rc == 0) {
			*id_r = id;
			return 0;
		}
		/* A concurrent write made this person's party first: match it. */
	}
	if (id == 0) {
		pg_logf("writer: a new party's identifiers kept being taken concurrently");
		c->fault = PG_FAULT_RETRY;
		return -1;
	}
	others = json_array();
	unknown = json_array();
	for (i = 0; i < PARTY_ID_KINDS; i++) {
		if (pg_jstr(party, party_ids[i].key) == NULL || found[i] == id)
			continue;
		if (found[i] == 0) {
			json_array_append_new(unknown, json_string(party_ids[i].key));
		} else {
			size_t k;
			json_t *v;
			int seen = 0;

			json_array_foreach(others, k, v)
				seen |= json_integer_value(v) == found[i];
			if (!seen)
				json_array_append_new(others, json_integer(found[i]));
		}
	}
	*id_r = id;
	if (json_array_size(others) == 0 && json_array_size(unknown) == 0) {
		json_decref(others);
		json_decref(unknown);
		return 0;
	}
	conflict = json_pack("{s:s, s:o, s:o}", "matched_by", matched_by, "other_parties", others,
	    "unknown", unknown);
	*conflict_r = conflict != NULL ? json_dumps(conflict, JSON_COMPACT) : NULL;
	json_decref(conflict);
	if (*conflict_r == NULL)
		c->fault = PG_FAULT_FAILED;
	return *conflict_r != NULL ? 0 : -1;
}

int
pg_party_confidential_refresh(struct pg_conn *c, int64_t party_id)
{
	static const char sql[] =
	    "UPDATE parties SET confidential ="
	    " EXISTS (SELECT 1 FROM contacts c WHERE c.party_id = $1) AND"
	    " NOT EXISTS (SELECT 1 FROM contacts c WHERE c.party_id = $1 AND NOT c.confidential)"
	    " WHERE id = $1";
	struct pg_params p;

	pg_params_init(&p);
	pg_p_int(&p, party_id);
	return pg_q_exec(c, sql, &p) < 0 ? -1 : 0;
}

/* The party's row, locked to the end of the batch; 1 found, 0 none, -1 failed. */
static int
party_row(struct pg_conn *c, int64_t id, struct party_row *pr)
{
	static const char sql[] = "SELECT " PG_MS("created_at") ", merged_into, confidential,"
				  " rrn, bsn FROM parties WHERE id = $1 FOR UPDATE";
	struct pg_params p;
	PGresult *r;
	int found;

	memset(pr, 0, sizeof(*pr));
	pg_params_init(&p);
	pg_p_int(&p, id);
	if ((r = pg_q(c, sql, &p)) == NULL)
		return -1;
	if ((found = PQntuples(r) == 1)) {
		pr->id = id;
		pr->created_at = pg_int(r, 0, 0);
		pr->merged_into = pg_int(r, 0, 1);
		pr->confidential = pg_str(r, 0, 2)[0] == 't';
		if ((pr->has_rrn = !pg_isnull(r, 0, 3)))
			snprintf(pr->rrn, sizeof(pr->rrn), "%s", pg_str(r, 0, 3));
		if ((pr->has_bsn = !pg_isnull(r, 0, 4)))
			snprintf(pr->bsn, sizeof(pr->bsn), "%s", pg_str(r, 0, 4));
	}
	PQclear(r);
	return found;
}

/*
 * Whether scope may see a party: every staff member sees an ordinary party;
 * one whose contacts are all confidential only through one of those contacts.
 * 1, 0, or -1 when the statement failed.
 */
static int
party_visible(struct pg_conn *c, const struct party_row *pr, json_t *scope)
{
	static const char sql[] =
	    "SELECT 1 FROM contacts c WHERE c.party_id = $1" SCOPE_SQL(2, 3, 4) " LIMIT 1";
	struct pg_params p;
	PGresult *r;
	int seen;

	if (!pr->confidential || json_is_true(json_object_get(scope, "all")))
		return 1;
	pg_params_init(&p);
	pg_p_int(&p, pr->id);
	pg_p_scope(&p, scope);
	if ((r = pg_q(c, sql, &p)) == NULL)
		return -1;
	seen = PQntuples(r) > 0;
	PQclear(r);
	return seen;
}

/* The party as the API shows it; NULL when the statements failed. */
static json_t *
party_load(struct pg_conn *c, int64_t id)
{
	static const char sql[] = "SELECT id, kind, name, rrn, bsn, preferred_channel,"
				  " confidential, " PG_ISO("created_at") " FROM parties WHERE id = $1";
	static const char sql_emails[] = "SELECT email FROM party_emails WHERE party_id = $1"
					 " ORDER BY email";
	static const char sql_phones[] = "SELECT phone FROM party_phones WHERE party_id = $1"
					 " ORDER BY phone";
	const char *lists[2] = { sql_emails, sql_phones };
	const char *names[2] = { "emails", "phones" };
	struct pg_params p;
	json_t *party, *list;
	PGresult *r;

	pg_params_init(&p);
	pg_p_int(&p, id);
	if ((r = pg_q(c, sql, &p)) == NULL)
		return NULL;
	if (PQntuples(r) != 1) {
		PQclear(r);
		c->fault = PG_FAULT_FAILED;
		return NULL;
	}
	party = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id", pg_col_int(r, 0, 0),
	    "kind", pg_col_text(r, 0, 1), "name", pg_col_text(r, 0, 2), "rrn", pg_col_text(r, 0, 3),
	    "bsn", pg_col_text(r, 0, 4), "preferred_channel", pg_col_text(r, 0, 5), "confidential",
	    pg_col_bool(r, 0, 6), "created_at", pg_col_text(r, 0, 7));
	PQclear(r);
	if (party == NULL)
		return NULL;
	for (int k = 0; k < 2; k++) {
		pg_params_init(&p);
		pg_p_int(&p, id);
		if ((r = pg_q(c, lists[k], &p)) == NULL) {
			json_decref(party);
			return NULL;
		}
		list = json_array();
		for (int i = 0; i < PQntuples(r); i++)
			json_array_append_new(list, pg_col_text(r, i, 0));
		PQclear(r);
		json_object_set_new(party, names[k], list);
	}
	return party;
}

/* A live party scope may see, into *pr: 0; answered (404, 403): 1; failed: -1. */
static int
party_open(struct pg_conn *c, struct store_req *req, int64_t id, json_t *scope,
    struct party_row *pr)
{
	int rc;

	if ((rc = party_row(c, id, pr)) < 0)
		return -1;
	if (rc == 0) {
		pg_host->req_fail(req, STORE_NOT_FOUND, "no party with id %lld", (long long)id);
		return 1;
	}
	if (pr->merged_into != 0) {
		pg_host->req_fail(req, STORE_NOT_FOUND, "party %lld was merged into party %lld",
		    (long long)id, (long long)pr->merged_into);
		return 1;
	}
	if ((rc = party_visible(c, pr, scope)) < 0)
		return -1;
	if (rc == 0) {
		pg_host->req_fail(req, STORE_FORBIDDEN,
		    "this token may not see party %lld: all its contacts are confidential and none "
		    "is in this token's scope",
		    (long long)id);
		return 1;
	}
	return 0;
}

/* Removes identifier kind = value from party pr: 0; answered 409: 1; failed: -1. */
static int
party_remove_id(struct pg_conn *c, struct store_req *req, const struct party_row *pr, size_t kind,
    const char *value)
{
	static const char *const sql[] = {
		"UPDATE parties SET rrn = NULL WHERE id = $1 AND rrn = $2",
		"UPDATE parties SET bsn = NULL WHERE id = $1 AND bsn = $2",
		"DELETE FROM party_emails WHERE party_id = $1 AND email = $2",
		"DELETE FROM party_phones WHERE party_id = $1 AND phone = $2",
	};
	struct pg_params p;
	int64_t n;

	pg_params_init(&p);
	pg_p_int(&p, pr->id);
	pg_p_text(&p, value);
	if ((n = pg_q_exec(c, sql[kind], &p)) < 0)
		return -1;
	if (n == 0) {
		pg_host->req_fail(req, STORE_CONFLICT, "remove.%s: party %lld does not hold that %s",
		    party_ids[kind].key, (long long)pr->id, party_id_words[kind]);
		return 1;
	}
	return 0;
}

/*
 * Gives party pr identifier kind = value: 0; answered 409 (another party
 * holds it, or pr has another RRN or BSN): 1; failed: -1.
 */
static int
party_give_id(struct pg_conn *c, struct store_req *req, struct party_row *pr, size_t kind,
    const char *value)
{
	static const char sql_set_rrn[] = "UPDATE parties SET rrn = $2 WHERE id = $1";
	static const char sql_set_bsn[] = "UPDATE parties SET bsn = $2 WHERE id = $1";
	int64_t holder = party_by(c, party_ids[kind].sql, value);
	struct pg_params p;
	int taken = 0;

	if (holder < 0)
		return -1;
	if (holder == pr->id)
		return 0;
	if (holder == 0 && ((kind == 0 && pr->has_rrn) || (kind == 1 && pr->has_bsn))) {
		pg_host->req_fail(req, STORE_CONFLICT,
		    "add.%s: party %lld has another %s; remove that one first", party_ids[kind].key,
		    (long long)pr->id, party_id_words[kind]);
		return 1;
	}
	if (holder == 0) {
		if (kind >= 2) {
			taken = party_add_contact_id(
			    c, pr->id, kind == 2 ? sql_add_email : sql_add_phone, value);
		} else {
			pg_params_init(&p);
			pg_p_int(&p, pr->id);
			pg_p_text(&p, value);
			if (pg_q_exec(c, kind == 0 ? sql_set_rrn : sql_set_bsn, &p) < 0)
				taken = c->fault == PG_FAULT_CONFLICT ? 1 : -1;
		}
		if (taken < 0)
			return -1;
		if (taken == 0)
			return 0;
		/* Another party took it concurrently; name that one. */
		if ((holder = party_by(c, party_ids[kind].sql, value)) < 0)
			return -1;
	}
	pg_host->req_fail(req, STORE_CONFLICT,
	    "add.%s: that %s belongs to party %lld; merge the two parties if they are one "
	    "person",
	    party_ids[kind].key, party_id_words[kind], (long long)holder);
	return 1;
}

/*
 * A staff change of a party, after the citizen confirmed it: identifiers
 * removed, then added, and the name. in: {id, scope, add?, remove?, name?}.
 */
int
pg_party_update(struct pg_conn *c, struct store_req *req)
{
	static const char sql_name[] = "UPDATE parties SET name = $2 WHERE id = $1";
	json_t *in = req->in, *add = json_object_get(in, "add"),
	       *remove = json_object_get(in, "remove");
	int64_t id = json_integer_value(json_object_get(in, "id"));
	struct party_row pr;
	struct pg_params p;
	size_t i;
	int rc;

	if ((rc = party_open(c, req, id, json_object_get(in, "scope"), &pr)) != 0)
		return rc < 0 ? pg_write_fail(c, req) : 0;
	for (i = 0; i < PARTY_ID_KINDS; i++)
		if (pg_jstr(remove, party_ids[i].key) != NULL &&
		    (rc = party_remove_id(c, req, &pr, i, pg_jstr(remove, party_ids[i].key))) != 0)
			return rc < 0 ? pg_write_fail(c, req) : 0;
	if (party_row(c, id, &pr) <= 0)
		return pg_write_fail(c, req);
	for (i = 0; i < PARTY_ID_KINDS; i++)
		if (pg_jstr(add, party_ids[i].key) != NULL &&
		    (rc = party_give_id(c, req, &pr, i, pg_jstr(add, party_ids[i].key))) != 0)
			return rc < 0 ? pg_write_fail(c, req) : 0;
	if (json_object_get(in, "name") != NULL) {
		pg_params_init(&p);
		pg_p_int(&p, id);
		pg_p_jtext(&p, in, "name");
		if (pg_q_exec(c, sql_name, &p) < 0)
			return pg_write_fail(c, req);
	}
	if ((req->out = party_load(c, id)) == NULL)
		return pg_write_fail(c, req);
	return 0;
}

/*
 * Two parties found to be one person: the older survives and takes the
 * other's contacts, emails and phones (and RRN, BSN, name where it has none),
 * in this one write. The other stays as a pointer to the survivor. Each
 * moved contact gets a history row. in: {id, other, scope, actor, at}.
 */
int
pg_party_merge(struct pg_conn *c, struct store_req *req)
{
	static const char sql_retire[] = "UPDATE parties SET rrn = NULL, bsn = NULL,"
					 " merged_into = $2 WHERE id = $1";
	static const char sql_take[] =
	    "UPDATE parties SET rrn = coalesce(rrn, $2), bsn = coalesce(bsn, $3),"
	    " name = coalesce(name, (SELECT name FROM parties WHERE id = $4)) WHERE id = $1";
	static const char sql_emails[] = "UPDATE party_emails SET party_id = $1 WHERE party_id = $2";
	static const char sql_phones[] = "UPDATE party_phones SET party_id = $1 WHERE party_id = $2";
	static const char sql_move[] = "UPDATE contacts SET party_id = $1 WHERE party_id = $2";
	static const char sql_contacts[] = "SELECT id FROM contacts WHERE party_id = $1 ORDER BY id"
					   " FOR UPDATE";
	const char *moves[] = { sql_emails, sql_phones, sql_move };
	json_t *in = req->in, *scope = json_object_get(in, "scope"), *moved;
	int64_t a_id = json_integer_value(json_object_get(in, "id"));
	int64_t b_id = json_integer_value(json_object_get(in, "other"));
	int64_t now = json_integer_value(json_object_get(in, "at"));
	struct party_row a, b, *keep, *gone;
	struct pg_params p;
	char detail[96];
	PGresult *r;
	int rc;

	if ((rc = party_open(c, req, a_id, scope, &a)) != 0 ||
	    (rc = party_open(c, req, b_id, scope, &b)) != 0)
		return rc < 0 ? pg_write_fail(c, req) : 0;
	if (a_id == b_id) {
		pg_host->req_fail(req, STORE_INVALID, "party: a party cannot be merged with itself");
		return 0;
	}
	keep = a.created_at < b.created_at || (a.created_at == b.created_at && a.id < b.id) ? &a : &b;
	gone = keep == &a ? &b : &a;
	if ((keep->has_rrn && gone->has_rrn && strcmp(keep->rrn, gone->rrn) != 0) ||
	    (keep->has_bsn && gone->has_bsn && strcmp(keep->bsn, gone->bsn) != 0)) {
		pg_host->req_fail(req, STORE_CONFLICT,
		    "parties %lld and %lld have different national register numbers: they are two "
		    "people and are not merged",
		    (long long)keep->id, (long long)gone->id);
		return 0;
	}
	pg_params_init(&p);
	pg_p_int(&p, gone->id);
	if ((r = pg_q(c, sql_contacts, &p)) == NULL)
		return pg_write_fail(c, req);
	moved = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(moved, json_integer(pg_int(r, i, 0)));
	PQclear(r);
	snprintf(detail, sizeof(detail), "party %lld merged into party %lld", (long long)gone->id,
	    (long long)keep->id);
	for (size_t i = 0; i < json_array_size(moved); i++)
		if (pg_history_add(c, json_integer_value(json_array_get(moved, i)), now,
			pg_jstr(in, "actor"), "party_merged", NULL, NULL, detail) < 0)
			goto fail;
	/* The retired row lets go of its RRN and BSN first: both columns are unique. */
	pg_params_init(&p);
	pg_p_int(&p, gone->id);
	pg_p_int(&p, keep->id);
	if (pg_q_exec(c, sql_retire, &p) < 0)
		goto fail;
	pg_params_init(&p);
	pg_p_int(&p, keep->id);
	pg_p_text(&p, gone->has_rrn ? gone->rrn : NULL);
	pg_p_text(&p, gone->has_bsn ? gone->bsn : NULL);
	pg_p_int(&p, gone->id);
	if (pg_q_exec(c, sql_take, &p) < 0)
		goto fail;
	for (size_t i = 0; i < sizeof(moves) / sizeof(moves[0]); i++) {
		pg_params_init(&p);
		pg_p_int(&p, keep->id);
		pg_p_int(&p, gone->id);
		if (pg_q_exec(c, moves[i], &p) < 0)
			goto fail;
	}
	if (pg_party_confidential_refresh(c, keep->id) < 0 ||
	    pg_party_confidential_refresh(c, gone->id) < 0 ||
	    (req->out = party_load(c, keep->id)) == NULL)
		goto fail;
	json_object_set_new(req->out, "merged",
	    json_pack("{s:I, s:O}", "party", (json_int_t)gone->id, "contacts", moved));
	json_decref(moved);
	return 0;
fail:
	json_decref(moved);
	return pg_write_fail(c, req);
}
