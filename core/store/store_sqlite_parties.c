/* store_sqlite_parties.c: parties: matching at intake, reads, staff changes, merges. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_sqlite.h"
#include "util.h"

static const char sql_party_by_rrn[] = "SELECT id FROM parties WHERE rrn = ?1";
static const char sql_party_by_bsn[] = "SELECT id FROM parties WHERE bsn = ?1";
static const char sql_party_by_email[] = "SELECT party_id FROM party_emails WHERE email = ?1";
static const char sql_party_by_phone[] = "SELECT party_id FROM party_phones WHERE phone = ?1";

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

/* The party an identifier belongs to, 0 when none, -1 on error. */
static sqlite3_int64
party_by(struct sq_conn *c, const char *sql, const char *value)
{
	sqlite3_stmt *st;
	sqlite3_int64 id = 0;
	int rc;

	if (value == NULL)
		return 0;
	if ((st = sq_stmt(c, sql)) == NULL)
		return -1;
	sq_bind_text(st, 1, value);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		id = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? id : -1;
}

static int
party_run(struct sq_conn *c, const char *sql, sqlite3_int64 id, const char *value)
{
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sq_bind_text(st, 2, value);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

static const char sql_add_email[] = "INSERT INTO party_emails (party_id, email) VALUES (?1, ?2)";
static const char sql_add_phone[] = "INSERT INTO party_phones (party_id, phone) VALUES (?1, ?2)";
static const char sql_set_rrn[] = "UPDATE parties SET rrn = ?2 WHERE id = ?1";
static const char sql_set_bsn[] = "UPDATE parties SET bsn = ?2 WHERE id = ?1";

/* Gives party id the identifier kind = value (nobody else holds it). */
static int
party_add_id(struct sq_conn *c, sqlite3_int64 id, const char *kind, const char *value)
{
	const char *sql = strcmp(kind, "email") == 0 ? sql_add_email
	    : strcmp(kind, "phone") == 0             ? sql_add_phone
	    : strcmp(kind, "rrn") == 0               ? sql_set_rrn
	                                             : sql_set_bsn;

	return party_run(c, sql, id, value);
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
sq_party_match(
    struct sq_conn *c, json_t *party, sqlite3_int64 now, sqlite3_int64 *id_r, char **conflict_r)
{
	static const char sql_new[] = "INSERT INTO parties (name, created_at) VALUES (?1, ?2)";
	sqlite3_int64 found[PARTY_ID_KINDS], id = 0;
	const char *matched_by = NULL;
	json_t *others = NULL, *unknown = NULL, *conflict;
	sqlite3_stmt *st;
	size_t i;

	*id_r = 0;
	*conflict_r = NULL;
	for (i = 0; i < PARTY_ID_KINDS; i++) {
		if ((found[i] = party_by(c, party_ids[i].sql, sq_jstr(party, party_ids[i].key)))
		    < 0)
			return -1;
		if (found[i] != 0 && id == 0) {
			id = found[i];
			matched_by = party_ids[i].key;
		}
	}
	if (id == 0) {
		for (i = 0; i < PARTY_ID_KINDS && sq_jstr(party, party_ids[i].key) == NULL; i++)
			;
		if (i == PARTY_ID_KINDS)
			return 0; /* anonymous: a name alone identifies nobody */
		if ((st = sq_stmt(c, sql_new)) == NULL)
			return -1;
		sq_bind_json_text(st, 1, party, "name");
		sqlite3_bind_int64(st, 2, now);
		if (sqlite3_step(st) != SQLITE_DONE)
			return -1;
		id = sqlite3_last_insert_rowid(c->db);
		for (i = 0; i < PARTY_ID_KINDS; i++)
			if (sq_jstr(party, party_ids[i].key) != NULL
			    && party_add_id(
			           c, id, party_ids[i].key, sq_jstr(party, party_ids[i].key))
			        < 0)
				return -1;
		*id_r = id;
		return 0;
	}
	others = json_array();
	unknown = json_array();
	for (i = 0; i < PARTY_ID_KINDS; i++) {
		if (sq_jstr(party, party_ids[i].key) == NULL || found[i] == id)
			continue;
		if (found[i] == 0) {
			json_array_append_new(unknown, json_string(party_ids[i].key));
		} else {
			size_t k;
			json_t *v;
			int seen = 0;

			json_array_foreach(others, k, v) seen |= json_integer_value(v) == found[i];
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
	return *conflict_r != NULL ? 0 : -1;
}

int
sq_party_confidential_refresh(struct sq_conn *c, sqlite3_int64 party_id)
{
	static const char sql[]
	    = "UPDATE parties SET confidential ="
	      " EXISTS (SELECT 1 FROM contacts c WHERE c.party_id = ?1) AND"
	      " NOT EXISTS (SELECT 1 FROM contacts c WHERE c.party_id = ?1 AND c.confidential = 0)"
	      " WHERE id = ?1";
	sqlite3_stmt *st = sq_stmt(c, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, party_id);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

/* The party's row as matching and merging need it; -1 when there is none. */
static int
party_row(struct sq_conn *c, sqlite3_int64 id, struct sq_party_row *p)
{
	static const char sql[] = "SELECT created_at, merged_into, confidential, rrn, bsn"
	                          " FROM parties WHERE id = ?1";
	sqlite3_stmt *st = sq_stmt(c, sql);
	int found;

	memset(p, 0, sizeof(*p));
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	if ((found = sqlite3_step(st) == SQLITE_ROW)) {
		p->id = id;
		p->created_at = sqlite3_column_int64(st, 0);
		p->merged_into = sqlite3_column_int64(st, 1);
		p->confidential = sqlite3_column_int(st, 2);
		if ((p->has_rrn = sqlite3_column_type(st, 3) != SQLITE_NULL))
			snprintf(p->rrn, sizeof(p->rrn), "%s", sqlite3_column_text(st, 3));
		if ((p->has_bsn = sqlite3_column_type(st, 4) != SQLITE_NULL))
			snprintf(p->bsn, sizeof(p->bsn), "%s", sqlite3_column_text(st, 4));
	}
	sqlite3_reset(st);
	return found ? 0 : -1;
}

/*
 * Whether scope may see a party: every staff member sees an ordinary party;
 * one whose contacts are all confidential only through one of those contacts.
 */
static int
party_visible(struct sq_conn *c, const struct sq_party_row *p, json_t *scope)
{
	static const char sql[]
	    = "SELECT 1 FROM contacts c WHERE c.party_id = ?1" SQ_SCOPE_SQL(2, 3, 4) " LIMIT 1";
	sqlite3_stmt *st;
	int seen;

	if (!p->confidential || json_is_true(json_object_get(scope, "all")))
		return 1;
	if ((st = sq_stmt(c, sql)) == NULL)
		return 0;
	sqlite3_bind_int64(st, 1, p->id);
	sq_bind_scope(st, 2, scope);
	seen = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	return seen;
}

/* The party as the API shows it. */
static json_t *
party_load(struct sq_conn *c, sqlite3_int64 id)
{
	static const char sql[] = "SELECT id, kind, name, rrn, bsn, preferred_channel,"
	                          " confidential, created_at FROM parties WHERE id = ?1";
	static const char sql_emails[] = "SELECT email FROM party_emails WHERE party_id = ?1"
	                                 " ORDER BY email";
	static const char sql_phones[] = "SELECT phone FROM party_phones WHERE party_id = ?1"
	                                 " ORDER BY phone";
	sqlite3_stmt *st = sq_stmt(c, sql);
	json_t *party, *list;

	if (st == NULL)
		return NULL;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		return NULL;
	}
	party = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:b, s:o}", "id",
	    (json_int_t)sqlite3_column_int64(st, 0), "kind", sq_col_text(st, 1), "name",
	    sq_col_text(st, 2), "rrn", sq_col_text(st, 3), "bsn", sq_col_text(st, 4),
	    "preferred_channel", sq_col_text(st, 5), "confidential", sqlite3_column_int(st, 6),
	    "created_at", sq_col_time(st, 7));
	sqlite3_reset(st);
	if (party == NULL)
		return NULL;
	list = json_array();
	if ((st = sq_stmt(c, sql_emails)) != NULL) {
		sqlite3_bind_int64(st, 1, id);
		while (sqlite3_step(st) == SQLITE_ROW)
			json_array_append_new(list, sq_col_text(st, 0));
		sqlite3_reset(st);
	}
	json_object_set_new(party, "emails", list);
	list = json_array();
	if ((st = sq_stmt(c, sql_phones)) != NULL) {
		sqlite3_bind_int64(st, 1, id);
		while (sqlite3_step(st) == SQLITE_ROW)
			json_array_append_new(list, sq_col_text(st, 0));
		sqlite3_reset(st);
	}
	json_object_set_new(party, "phones", list);
	return party;
}

int
sq_party_visible(struct sq_conn *c, sqlite3_int64 id, json_t *scope)
{
	struct sq_party_row p;

	if (party_row(c, id, &p) < 0 || p.merged_into != 0)
		return 0;
	return party_visible(c, &p, scope);
}

json_t *
sq_party_load(struct sq_conn *c, sqlite3_int64 id)
{
	return party_load(c, id);
}

/* A live party scope may see, or the request answered (404, 403) and -1. */
int
sq_party_open(struct sq_conn *c, struct store_req *req, sqlite3_int64 id, json_t *scope,
    struct sq_party_row *p)
{
	if (party_row(c, id, p) < 0) {
		store_req_fail(req, STORE_NOT_FOUND, "no party with id %lld", (long long)id);
		return -1;
	}
	if (p->merged_into != 0) {
		store_req_fail(req, STORE_NOT_FOUND, "party %lld was merged into party %lld",
		    (long long)id, (long long)p->merged_into);
		return -1;
	}
	if (!party_visible(c, p, scope)) {
		store_req_fail(req, STORE_FORBIDDEN,
		    "this token may not see party %lld: all its contacts are confidential and none "
		    "is in this token's scope",
		    (long long)id);
		return -1;
	}
	return 0;
}

void
sq_op_party_get(struct sq_conn *c, struct store_req *req)
{
	sqlite3_int64 id = json_integer_value(json_object_get(req->in, "id"));
	struct sq_party_row p;

	if (sq_party_open(c, req, id, json_object_get(req->in, "scope"), &p) < 0)
		return;
	if ((req->out = party_load(c, id)) == NULL)
		sq_step_error(c, req, SQLITE_ERROR);
}

/* The live party id as the API shows it when scope may see it, else NULL (search). */
json_t *
sq_party_if_visible(struct sq_conn *c, sqlite3_int64 id, json_t *scope)
{
	struct sq_party_row p;

	if (party_row(c, id, &p) < 0 || p.merged_into != 0 || !party_visible(c, &p, scope))
		return NULL;
	return party_load(c, id);
}

/* A lookup answers like a list: a party the token may not see is not among the items. */
void
sq_op_party_find(struct sq_conn *c, struct store_req *req)
{
	json_t *in = req->in, *items = json_array(), *party;
	sqlite3_int64 id = 0;
	struct sq_party_row p;
	size_t i;

	for (i = 0; i < PARTY_ID_KINDS && id == 0; i++)
		if (sq_jstr(in, party_ids[i].key) != NULL)
			id = party_by(c, party_ids[i].sql, sq_jstr(in, party_ids[i].key));
	if (id > 0 && party_row(c, id, &p) == 0 && p.merged_into == 0
	    && party_visible(c, &p, json_object_get(in, "scope"))
	    && (party = party_load(c, id)) != NULL)
		json_array_append_new(items, party);
	req->out = json_pack("{s:o}", "items", items);
}

static const char *const party_id_words[] = { "RRN", "BSN", "email address", "phone number" };

/* Removes identifier kind = value from party p; 409 when p does not hold it. */
static int
party_remove_id(struct sq_conn *c, struct store_req *req, const struct sq_party_row *p, size_t kind,
    const char *value)
{
	static const char *const sql[] = {
		"UPDATE parties SET rrn = NULL WHERE id = ?1 AND rrn = ?2",
		"UPDATE parties SET bsn = NULL WHERE id = ?1 AND bsn = ?2",
		"DELETE FROM party_emails WHERE party_id = ?1 AND email = ?2",
		"DELETE FROM party_phones WHERE party_id = ?1 AND phone = ?2",
	};

	if (party_run(c, sql[kind], p->id, value) < 0) {
		sq_step_error(c, req, SQLITE_ERROR);
		return -1;
	}
	if (sqlite3_changes(c->db) == 0) {
		store_req_fail(req, STORE_CONFLICT, "remove.%s: party %lld does not hold that %s",
		    party_ids[kind].key, (long long)p->id, party_id_words[kind]);
		return -1;
	}
	return 0;
}

/* Gives party p identifier kind = value; 409 when another party holds it or p has another. */
static int
party_give_id(struct sq_conn *c, struct store_req *req, struct sq_party_row *p, size_t kind,
    const char *value)
{
	sqlite3_int64 holder = party_by(c, party_ids[kind].sql, value);

	if (holder < 0) {
		sq_step_error(c, req, SQLITE_ERROR);
		return -1;
	}
	if (holder == p->id)
		return 0;
	if (holder != 0) {
		store_req_fail(req, STORE_CONFLICT,
		    "add.%s: that %s belongs to party %lld; merge the two parties if they are one "
		    "person",
		    party_ids[kind].key, party_id_words[kind], (long long)holder);
		return -1;
	}
	if ((kind == 0 && p->has_rrn) || (kind == 1 && p->has_bsn)) {
		store_req_fail(req, STORE_CONFLICT,
		    "add.%s: party %lld has another %s; remove that one first", party_ids[kind].key,
		    (long long)p->id, party_id_words[kind]);
		return -1;
	}
	if (party_add_id(c, p->id, party_ids[kind].key, value) < 0) {
		sq_step_error(c, req, SQLITE_ERROR);
		return -1;
	}
	return 0;
}

/*
 * A staff change of a party, after the citizen confirmed it: identifiers
 * removed, then added, and the name. in: {id, scope, add?, remove?, name?}.
 */
void
sq_op_party_update(struct sq_conn *c, struct store_req *req)
{
	static const char sql_name[] = "UPDATE parties SET name = ?2 WHERE id = ?1";
	json_t *in = req->in, *add = json_object_get(in, "add"),
	       *remove = json_object_get(in, "remove");
	sqlite3_int64 id = json_integer_value(json_object_get(in, "id"));
	struct sq_party_row p;
	size_t i;

	if (sq_party_open(c, req, id, json_object_get(in, "scope"), &p) < 0)
		return;
	for (i = 0; i < PARTY_ID_KINDS; i++)
		if (sq_jstr(remove, party_ids[i].key) != NULL
		    && party_remove_id(c, req, &p, i, sq_jstr(remove, party_ids[i].key)) < 0)
			return;
	if (party_row(c, id, &p) < 0) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	for (i = 0; i < PARTY_ID_KINDS; i++)
		if (sq_jstr(add, party_ids[i].key) != NULL
		    && party_give_id(c, req, &p, i, sq_jstr(add, party_ids[i].key)) < 0)
			return;
	if (json_object_get(in, "name") != NULL
	    && party_run(c, sql_name, id, sq_jstr(in, "name")) < 0) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	if ((req->out = party_load(c, id)) == NULL)
		sq_step_error(c, req, SQLITE_ERROR);
}

/*
 * Two parties found to be one person: the older survives and takes the
 * other's contacts, emails and phones (and RRN, BSN, name where it has none),
 * in this one write. The other stays as a pointer to the survivor. Each
 * moved contact gets a history row. in: {id, other, scope, actor, at}.
 */
void
sq_op_party_merge(struct sq_conn *c, struct store_req *req)
{
	static const char sql_retire[] = "UPDATE parties SET rrn = NULL, bsn = NULL,"
	                                 " merged_into = ?2 WHERE id = ?1";
	static const char sql_take[]
	    = "UPDATE parties SET rrn = coalesce(rrn, ?2), bsn = coalesce(bsn, ?3),"
	      " name = coalesce(name, (SELECT name FROM parties WHERE id = ?4)) WHERE id = ?1";
	static const char sql_emails[]
	    = "UPDATE party_emails SET party_id = ?1 WHERE party_id = ?2";
	static const char sql_phones[]
	    = "UPDATE party_phones SET party_id = ?1 WHERE party_id = ?2";
	static const char sql_contacts[]
	    = "SELECT id FROM contacts WHERE party_id = ?1 ORDER BY id";
	static const char sql_move[] = "UPDATE contacts SET party_id = ?1 WHERE party_id = ?2";
	json_t *in = req->in, *scope = json_object_get(in, "scope"), *moved = json_array();
	sqlite3_int64 a_id = json_integer_value(json_object_get(in, "id"));
	sqlite3_int64 b_id = json_integer_value(json_object_get(in, "other"));
	sqlite3_int64 now = json_integer_value(json_object_get(in, "at"));
	struct sq_party_row a, b, *keep, *gone;
	char detail[96];
	sqlite3_stmt *st;
	size_t i;
	json_t *v;

	if (moved == NULL || sq_party_open(c, req, a_id, scope, &a) < 0
	    || sq_party_open(c, req, b_id, scope, &b) < 0)
		goto out;
	if (a_id == b_id) {
		store_req_fail(req, STORE_INVALID, "party: a party cannot be merged with itself");
		goto out;
	}
	keep = a.created_at < b.created_at || (a.created_at == b.created_at && a.id < b.id) ? &a
	                                                                                    : &b;
	gone = keep == &a ? &b : &a;
	if ((keep->has_rrn && gone->has_rrn && strcmp(keep->rrn, gone->rrn) != 0)
	    || (keep->has_bsn && gone->has_bsn && strcmp(keep->bsn, gone->bsn) != 0)) {
		store_req_fail(req, STORE_CONFLICT,
		    "parties %lld and %lld have different national register numbers: they are two "
		    "people and are not merged",
		    (long long)keep->id, (long long)gone->id);
		goto out;
	}
	if ((st = sq_stmt(c, sql_contacts)) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, gone->id);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(moved, json_integer(sqlite3_column_int64(st, 0)));
	sqlite3_reset(st);
	snprintf(detail, sizeof(detail), "party %lld merged into party %lld", (long long)gone->id,
	    (long long)keep->id);
	json_array_foreach(
	    moved, i, v) if (sq_history_add(c, json_integer_value(v), now, sq_jstr(in, "actor"),
	                         "party_merged", NULL, NULL, detail)
	    < 0) goto fail;
	/* The retired row lets go of its RRN and BSN first: both columns are unique. */
	if ((st = sq_stmt(c, sql_retire)) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, gone->id);
	sqlite3_bind_int64(st, 2, keep->id);
	if (sqlite3_step(st) != SQLITE_DONE || (st = sq_stmt(c, sql_take)) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, keep->id);
	sq_bind_text(st, 2, gone->has_rrn ? gone->rrn : NULL);
	sq_bind_text(st, 3, gone->has_bsn ? gone->bsn : NULL);
	sqlite3_bind_int64(st, 4, gone->id);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail;
	for (const char *const *sql
	     = (const char *const[]) { sql_emails, sql_phones, sql_move, NULL };
	     *sql != NULL; sql++) {
		if ((st = sq_stmt(c, *sql)) == NULL)
			goto fail;
		sqlite3_bind_int64(st, 1, keep->id);
		sqlite3_bind_int64(st, 2, gone->id);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto fail;
	}
	if (sq_party_confidential_refresh(c, keep->id) < 0
	    || sq_party_confidential_refresh(c, gone->id) < 0
	    || (req->out = party_load(c, keep->id)) == NULL)
		goto fail;
	json_object_set_new(req->out, "merged",
	    json_pack("{s:I, s:O}", "party", (json_int_t)gone->id, "contacts", moved));
	goto out;
fail:
	sq_step_error(c, req, SQLITE_ERROR);
out:
	json_decref(moved);
}
