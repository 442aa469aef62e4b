/* store_sqlite_workflow.c: the back office's reads: one task by id, a party's probable duplicates. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_sqlite.h"

/* A task with what a hand-over needs of its contact (docs/storage.md, STORE_TASK_GET). */
void
sq_op_task_get(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT " SQ_TASK_COLS ", c.product, c.status"
				  " FROM tasks t JOIN contacts c ON c.id = t.contact_id WHERE t.id = ?1";
	static const char sql_scope[] = "SELECT 1 FROM tasks t JOIN contacts c ON c.id = t.contact_id"
					" WHERE t.id = ?1" SQ_SCOPE_SQL(2, 3, 4);
	sqlite3_int64 id = json_integer_value(json_object_get(req->in, "id"));
	sqlite3_stmt *st;
	json_t *task;
	int rc;

	if ((st = sq_stmt(c, sql)) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			goto fail;
		store_req_fail(req, STORE_NOT_FOUND, "no task with id %lld", (long long)id);
		return;
	}
	task = sq_task_row(st);
	json_object_set_new(task, "product", sq_col_text(st, 12));
	json_object_set_new(task, "contact_status", sq_col_text(st, 13));
	sqlite3_reset(st);
	/* Who may see a task follows its contact, wherever the contact went since. */
	if ((st = sq_stmt(c, sql_scope)) == NULL) {
		json_decref(task);
		goto fail;
	}
	sqlite3_bind_int64(st, 1, id);
	sq_bind_scope(st, 2, json_object_get(req->in, "scope"));
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW) {
		json_decref(task);
		if (rc != SQLITE_DONE)
			goto fail;
		store_req_fail(req, STORE_FORBIDDEN, "this token may not act on that task");
		return;
	}
	req->out = task;
	return;
fail:
	sq_step_error(c, req, SQLITE_ERROR);
}

/*
 * Letters with a diacritic and the plain letter they fold to, upper case
 * first; the PostgreSQL driver folds with the same two strings (translate),
 * so both registers find the same duplicates.
 */
static const char sq_fold_from[] = "ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöøùúûüýÿ";
static const char sq_fold_to[] = "AAAAAACEEEEIIIINOOOOOOUUUUYaaaaaaceeeeiiiinoooooouuuuyy";

/* The next UTF-8 sequence of s: its length (1 for a stray byte). */
static size_t
sq_fold_seq(const char *s)
{
	unsigned char b = (unsigned char)*s;
	size_t n = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;

	for (size_t i = 1; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			return 1;
	return n;
}

/* A name without case, the diacritics above and white space; malloc'ed, NULL without memory. */
static char *
sq_fold_name(const char *name)
{
	size_t len = strlen(name), o = 0;
	char *out = malloc(len + 1);

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len;) {
		size_t n = sq_fold_seq(name + i), k = 0, at = 0;
		char ch = 0;

		if (n == 1) {
			unsigned char b = (unsigned char)name[i];

			if (b != ' ' && b != '\t' && b != '\n' && b != '\r' && b != '\v' && b != '\f')
				out[o++] = (char)(b >= 'A' && b <= 'Z' ? b + 32 : b);
			i++;
			continue;
		}
		/* The k-th sequence of the table maps to the k-th letter. */
		while (at < sizeof(sq_fold_from) - 1) {
			size_t m = sq_fold_seq(sq_fold_from + at);

			if (m == n && memcmp(sq_fold_from + at, name + i, n) == 0) {
				ch = sq_fold_to[k];
				break;
			}
			at += m;
			k++;
		}
		if (ch != 0) {
			out[o++] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
		} else {
			memcpy(out + o, name + i, n);
			o += n;
		}
		i += n;
	}
	out[o] = '\0';
	return out;
}

/* An email's variant key: the local part up to a '+', without dots, '@', the domain. */
static char *
sq_fold_email(const char *email)
{
	const char *at = strrchr(email, '@');
	size_t o = 0;
	char *out = malloc(strlen(email) + 1);

	if (out == NULL || at == NULL) {
		free(out);
		return NULL;
	}
	for (const char *p = email; p < at && *p != '+'; p++)
		if (*p != '.')
			out[o++] = *p;
	strcpy(out + o, at);
	return out;
}

/* Whether party id is already among the items. */
static int
sq_dup_seen(json_t *ids, sqlite3_int64 id)
{
	size_t i;
	json_t *v;

	json_array_foreach(ids, i, v)
		if (json_integer_value(v) == id)
			return 1;
	return 0;
}

/*
 * Other live parties that are probably the same person: the same folded
 * name and no different RRN or BSN, or an email whose variant key equals
 * one of this party's. A scan of the parties: the register keeps no folded
 * column, and a citizen page asks once.
 */
void
sq_op_party_duplicates(struct sq_conn *c, struct store_req *req)
{
	static const char sql_me[] = "SELECT name, rrn, bsn FROM parties WHERE id = ?1";
	static const char sql_names[] = "SELECT id, name, rrn, bsn FROM parties"
					" WHERE merged_into IS NULL AND id <> ?1 AND name IS NOT NULL"
					" ORDER BY id";
	static const char sql_my_emails[] = "SELECT email FROM party_emails WHERE party_id = ?1";
	static const char sql_emails[] = "SELECT e.party_id, e.email FROM party_emails e JOIN parties p"
					 " ON p.id = e.party_id WHERE p.merged_into IS NULL"
					 " AND e.party_id <> ?1 ORDER BY e.party_id";
	json_t *in = req->in, *cand = json_array(), *keys = json_array(), *items = json_array(), *v;
	sqlite3_int64 id = json_integer_value(json_object_get(in, "id"));
	int limit = json_is_integer(json_object_get(in, "limit"))
			? (int)json_integer_value(json_object_get(in, "limit")) : 20;
	char *my_name = NULL, *my_rrn = NULL, *my_bsn = NULL, *f;
	struct sq_party_row p;
	sqlite3_stmt *st;
	size_t i;

	if (cand == NULL || keys == NULL || items == NULL)
		goto fail;
	if (sq_party_open(c, req, id, json_object_get(in, "scope"), &p) < 0)
		goto out;
	if ((st = sq_stmt(c, sql_me)) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		if (sqlite3_column_type(st, 0) != SQLITE_NULL)
			my_name = sq_fold_name((const char *)sqlite3_column_text(st, 0));
		if (sqlite3_column_type(st, 1) != SQLITE_NULL)
			my_rrn = strdup((const char *)sqlite3_column_text(st, 1));
		if (sqlite3_column_type(st, 2) != SQLITE_NULL)
			my_bsn = strdup((const char *)sqlite3_column_text(st, 2));
	}
	sqlite3_reset(st);
	if (my_name != NULL && my_name[0] != '\0') {
		if ((st = sq_stmt(c, sql_names)) == NULL)
			goto fail;
		sqlite3_bind_int64(st, 1, id);
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *rrn = (const char *)sqlite3_column_text(st, 2);
			const char *bsn = (const char *)sqlite3_column_text(st, 3);

			/* A different national number says: another person of the same name. */
			if ((my_rrn != NULL && rrn != NULL && strcmp(my_rrn, rrn) != 0) ||
			    (my_bsn != NULL && bsn != NULL && strcmp(my_bsn, bsn) != 0))
				continue;
			if ((f = sq_fold_name((const char *)sqlite3_column_text(st, 1))) == NULL) {
				sqlite3_reset(st);
				goto fail;
			}
			if (strcmp(f, my_name) == 0)
				json_array_append_new(cand, json_integer(sqlite3_column_int64(st, 0)));
			free(f);
		}
		sqlite3_reset(st);
	}
	if ((st = sq_stmt(c, sql_my_emails)) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if ((f = sq_fold_email((const char *)sqlite3_column_text(st, 0))) == NULL)
			continue;
		json_array_append_new(keys, json_string(f));
		free(f);
	}
	sqlite3_reset(st);
	if (json_array_size(keys) > 0) {
		if ((st = sq_stmt(c, sql_emails)) == NULL)
			goto fail;
		sqlite3_bind_int64(st, 1, id);
		while (sqlite3_step(st) == SQLITE_ROW) {
			sqlite3_int64 other = sqlite3_column_int64(st, 0);

			if (sq_dup_seen(cand, other) ||
			    (f = sq_fold_email((const char *)sqlite3_column_text(st, 1))) == NULL)
				continue;
			json_array_foreach(keys, i, v)
				if (strcmp(json_string_value(v), f) == 0) {
					json_array_append_new(cand, json_integer(other));
					break;
				}
			free(f);
		}
		sqlite3_reset(st);
	}
	/* In id order, as the PostgreSQL driver answers, so both stop at the same limit. */
	for (i = 1; i < json_array_size(cand); i++)
		for (size_t j = i; j > 0 && json_integer_value(json_array_get(cand, j)) <
					       json_integer_value(json_array_get(cand, j - 1));
		     j--) {
			json_t *t = json_incref(json_array_get(cand, j));

			json_array_set(cand, j, json_array_get(cand, j - 1));
			json_array_set_new(cand, j - 1, t);
		}
	json_array_foreach(cand, i, v) {
		json_t *party;

		if ((int)json_array_size(items) >= limit)
			break;
		/* Hidden as a party lookup hides it: store_req_fail would answer the whole read. */
		if (sq_party_visible(c, json_integer_value(v), json_object_get(in, "scope")) != 1)
			continue;
		if ((party = sq_party_load(c, json_integer_value(v))) != NULL)
			json_array_append_new(items, party);
	}
	req->out = json_pack("{s:O}", "items", items);
	goto out;
fail:
	sq_step_error(c, req, SQLITE_ERROR);
out:
	free(my_name);
	free(my_rrn);
	free(my_bsn);
	json_decref(cand);
	json_decref(keys);
	json_decref(items);
}
