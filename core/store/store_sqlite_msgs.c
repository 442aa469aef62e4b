/* store_sqlite_msgs.c: the register's messages on contacts, intake keys and the outbox. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_sqlite.h"
#include "util.h"

#define DAY_MS (24LL * 3600 * 1000)

sqlite3_int64
sq_keys_find(struct sq_conn *c, json_t *keys)
{
	static const char sql[] = "SELECT contact_id FROM contact_keys WHERE key = ?1";
	sqlite3_int64 found = 0;
	sqlite3_stmt *st;
	json_t *k;
	size_t i;

	json_array_foreach(keys, i, k)
	{
		if (!json_is_string(k) || (st = sq_stmt(c, sql)) == NULL)
			return -1;
		sq_bind_text(st, 1, json_string_value(k));
		if (sqlite3_step(st) == SQLITE_ROW)
			found = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		if (found != 0)
			break;
	}
	return found;
}

int
sq_keys_add(struct sq_conn *c, json_t *keys, sqlite3_int64 contact_id)
{
	static const char sql[] = "INSERT OR IGNORE INTO contact_keys (key, contact_id)"
	                          " VALUES (?1, ?2)";
	sqlite3_stmt *st;
	json_t *k;
	size_t i;

	json_array_foreach(keys, i, k)
	{
		if ((st = sq_stmt(c, sql)) == NULL)
			return -1;
		sq_bind_text(st, 1, json_string_value(k));
		sqlite3_bind_int64(st, 2, contact_id);
		if (sqlite3_step(st) != SQLITE_DONE)
			return -1;
	}
	return 0;
}

int
sq_message_insert(struct sq_conn *c, sqlite3_int64 contact_id, json_t *msg, const char *channel,
    sqlite3_int64 now, const char *actor, sqlite3_int64 *msg_r)
{
	static const char sql[]
	    = "INSERT INTO messages (contact_id, direction, channel, at, actor,"
	      " sender, recipients, subject, body, message_id, automatic,"
	      " attachments, meta, status)"
	      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";
	sqlite3_stmt *st = sq_stmt(c, sql);
	const char *dir = sq_jstr(msg, "direction") != NULL ? sq_jstr(msg, "direction") : "in";

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, contact_id);
	sq_bind_text(st, 2, dir);
	sq_bind_text(st, 3, sq_jstr(msg, "channel") != NULL ? sq_jstr(msg, "channel") : channel);
	sqlite3_bind_int64(st, 4, now);
	sq_bind_text(st, 5, actor);
	sq_bind_json_text(st, 6, msg, "sender");
	sq_bind_dump(st, 7, json_object_get(msg, "recipients"), "[]");
	sq_bind_text(st, 8, sq_jstr(msg, "subject") != NULL ? sq_jstr(msg, "subject") : "");
	sq_bind_text(st, 9, sq_jstr(msg, "body") != NULL ? sq_jstr(msg, "body") : "");
	sq_bind_json_text(st, 10, msg, "message_id");
	sq_bind_json_text(st, 11, msg, "automatic");
	sq_bind_dump(st, 12, json_object_get(msg, "attachments"), "[]");
	sq_bind_dump(st, 13, json_object_get(msg, "meta"), "{}");
	sq_bind_text(st, 14,
	    sq_jstr(msg, "status") != NULL ? sq_jstr(msg, "status")
	        : strcmp(dir, "in") == 0   ? "received"
	                                   : "queued");
	if (sqlite3_step(st) != SQLITE_DONE)
		return -1;
	*msg_r = sqlite3_last_insert_rowid(c->db);
	return 0;
}

int
sq_outbox_rows(
    struct sq_conn *c, sqlite3_int64 id, json_t *in, sqlite3_int64 now, const char *channel)
{
	static const char sql[]
	    = "INSERT INTO outbox (contact_id, channel, template, rule,"
	      " next_at, created_at, message_row, recipient, automatic, payload)"
	      " VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8, ?9)";
	sqlite3_stmt *st;
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(in, "outbox"), i, v)
	{
		json_t *automatic = json_object_get(v, "automatic");

		if ((st = sq_stmt(c, sql)) == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, id);
		sq_bind_text(st, 2, sq_jstr(v, "via") != NULL ? sq_jstr(v, "via") : channel);
		sq_bind_json_text(st, 3, v, "template");
		sq_bind_json_text(st, 4, v, "rule");
		sqlite3_bind_int64(st, 5, now);
		sq_bind_json_int(st, 6, v, "message_row");
		sq_bind_json_text(st, 7, v, "recipient");
		sqlite3_bind_int(st, 8, automatic == NULL || json_is_true(automatic));
		sq_bind_dump(st, 9, json_object_get(v, "payload"), "{}");
		if (sqlite3_step(st) != SQLITE_DONE)
			return -1;
	}
	return 0;
}

#define MESSAGE_COLS                                                                               \
	"id, contact_id, direction, channel, at, actor, sender, recipients, subject, body,      \
	message_id, automatic, attachments, meta, status "

static json_t *
message_row(sqlite3_stmt *st)
{
	return json_pack("{s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
	                 " s:o}",
	    "id", (json_int_t)sqlite3_column_int64(st, 0), "contact_id",
	    (json_int_t)sqlite3_column_int64(st, 1), "direction", sq_col_text(st, 2), "channel",
	    sq_col_text(st, 3), "at", sq_col_time(st, 4), "actor", sq_col_text(st, 5), "sender",
	    sq_col_text(st, 6), "recipients", sq_col_json(st, 7), "subject", sq_col_text(st, 8),
	    "body", sq_col_text(st, 9), "message_id", sq_col_text(st, 10), "automatic",
	    sq_col_text(st, 11), "attachments", sq_col_json(st, 12), "meta", sq_col_json(st, 13),
	    "status", sq_col_text(st, 14));
}

static json_t *
first_text(sqlite3_stmt *st)
{
	return sq_col_text(st, 0);
}

static json_t *
first_int(sqlite3_stmt *st)
{
	return json_integer(sqlite3_column_int64(st, 0));
}

/* The first row a one-parameter query gives for id, made JSON by row; null when none. */
/* Never "the party's first email": a party's identifiers came from anybody. */
static const char sql_reply_to[] = "SELECT reply_to FROM contacts WHERE id = ?1";

static json_t *
row_of(struct sq_conn *c, const char *sql, sqlite3_int64 id, json_t *(*row)(sqlite3_stmt *st))
{
	sqlite3_stmt *st = sq_stmt(c, sql);
	json_t *v = NULL;

	if (st == NULL)
		return json_null();
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = row(st);
	sqlite3_reset(st);
	return v != NULL ? v : json_null();
}

static const char sql_reference[] = "SELECT reference FROM contacts WHERE id = ?1";
static const char sql_message[] = "SELECT " MESSAGE_COLS "FROM messages WHERE id = ?1";

/* What a write answers when one of its keys was seen before: the contact that has it. */
static void
duplicate_out(struct sq_conn *c, struct store_req *req, sqlite3_int64 id)
{
	req->out = json_pack("{s:b, s:I, s:o}", "duplicate", 1, "id", (json_int_t)id, "reference",
	    row_of(c, sql_reference, id, first_text));
}

int
sq_create_duplicate(struct sq_conn *c, struct store_req *req)
{
	sqlite3_int64 dup = sq_keys_find(c, json_object_get(req->in, "keys"));

	if (dup < 0) {
		sq_step_error(c, req, SQLITE_ERROR);
		return 1;
	}
	if (dup > 0) {
		duplicate_out(c, req, dup);
		return 1;
	}
	return 0;
}

int
sq_create_message(struct sq_conn *c, sqlite3_int64 id, json_t *in, sqlite3_int64 now)
{
	sqlite3_int64 msg_row;

	if (json_object_get(in, "message") != NULL
	    && sq_message_insert(c, id, json_object_get(in, "message"), sq_jstr(in, "channel"), now,
	           sq_jstr(in, "created_by"), &msg_row)
	        < 0)
		return -1;
	return sq_keys_add(c, json_object_get(in, "keys"), id);
}

/* Whether the contact came in as automatic mail (out-of-office, bounce, list). */
static int
contact_automatic(struct sq_conn *c, sqlite3_int64 id)
{
	static const char sql[] = "SELECT 1 FROM messages WHERE contact_id = ?1 AND"
	                          " direction = 'in' AND automatic IS NOT NULL LIMIT 1";
	sqlite3_stmt *st = sq_stmt(c, sql);
	int found;

	if (st == NULL)
		return 0;
	sqlite3_bind_int64(st, 1, id);
	found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	return found;
}

/*
 * A message on an existing contact: a citizen's reply threaded by a channel,
 * or a staff message with its outbox row. A reply reopens a resolved or
 * closed contact.
 */
void
sq_op_message_add(struct sq_conn *c, struct store_req *req)
{
	static const char sql_reopen[] = "UPDATE contacts SET status = 'open', line = 1,"
	                                 " updated_at = ?2 WHERE id = ?1";
	static const char sql_touch[] = "UPDATE contacts SET updated_at = ?2 WHERE id = ?1";
	json_t *in = req->in, *msg = json_object_get(in, "message"), *v;
	sqlite3_int64 id = json_integer_value(json_object_get(in, "id"));
	sqlite3_int64 now = json_integer_value(json_object_get(in, "at"));
	const char *actor = sq_jstr(in, "actor");
	struct sq_contact_state cs;
	sqlite3_int64 dup, msg_row;
	sqlite3_stmt *st;
	char esc[64];
	int reopen;
	size_t i;

	if ((dup = sq_keys_find(c, json_object_get(in, "keys"))) != 0) {
		if (dup < 0)
			sq_step_error(c, req, SQLITE_ERROR);
		else
			duplicate_out(c, req, dup);
		return;
	}
	if (sq_contact_open(c, req, id, NULL, "this token may not change that contact", &cs) < 0)
		return;
	if (json_is_true(json_object_get(in, "staff")) && contact_automatic(c, id)) {
		store_req_fail(req, STORE_CONFLICT,
		    "this contact is an automatic mail (an out-of-office, a "
		    "bounce, a list); loket does not answer it");
		return;
	}
	/* Staff see where a message without "to" goes: the address the contact came in with. */
	if (json_is_true(json_object_get(in, "staff"))
	    && json_array_size(json_object_get(msg, "recipients")) == 0) {
		json_t *reply_to = row_of(c, sql_reply_to, id, first_text);
		const char *via = sq_jstr(json_array_get(json_object_get(in, "outbox"), 0), "via");

		/*
		 * A contact that came in by phone or at the counter has no mail address of
		 * its own; the party's would be unverified. Staff give "to" on purpose.
		 */
		if (strcmp(via != NULL ? via : cs.channel, "email") == 0
		    && (!json_is_string(reply_to)
		        || strchr(json_string_value(reply_to), '@') == NULL)) {
			json_decref(reply_to);
			store_req_fail(req, STORE_INVALID,
			    "to: this contact did not come in by mail, so it has no address to "
			    "answer "
			    "to; give \"to\", an address the citizen confirmed");
			return;
		}
		if (json_is_string(reply_to))
			json_object_set_new(msg, "recipients", json_pack("[O]", reply_to));
		json_decref(reply_to);
	}
	reopen = json_is_true(json_object_get(in, "reopen"))
	    && (strcmp(cs.status, "resolved") == 0 || strcmp(cs.status, "closed") == 0);
	if (sq_message_insert(c, id, msg, cs.channel, now, actor, &msg_row) < 0
	    || sq_keys_add(c, json_object_get(in, "keys"), id) < 0
	    || sq_history_add(c, id, now, actor, "message", NULL, NULL,
	           sq_jstr(msg, "direction") != NULL ? sq_jstr(msg, "direction") : "in")
	        < 0
	    || (st = sq_stmt(c, reopen ? sql_reopen : sql_touch)) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail;
	if (sq_event(c, LOKET_EVENT_MESSAGE_ADDED, now, id, 0,
	        "{\"message\":%lld,\"direction\":\"%s\"}", (long long)msg_row,
	        strcmp(sq_jstr(msg, "direction") != NULL ? sq_jstr(msg, "direction") : "in", "out")
	                == 0
	            ? "out"
	            : "in")
	    < 0)
		goto fail;
	/* The rules of "reply" run for this, not those of "reopened": the cause says why. */
	if (reopen
	    && (sq_history_add(c, id, now, actor, "reopen", cs.status, "open", "reply") < 0
	        || sq_counts_add(c, cs.channel, cs.status, -1) < 0
	        || sq_counts_add(c, cs.channel, "open", 1) < 0
	        || sq_event(c, LOKET_EVENT_CONTACT_CHANGED, now, id, 0,
	               "{\"status\":\"open\",\"previous_status\":\"%s\",\"channel\":\"%s\","
	               "\"cause\":\"reply\"}",
	               cs.status, sq_event_str(esc, sizeof(esc), cs.channel))
	            < 0))
		goto fail;
	json_array_foreach(json_object_get(in, "outbox"), i, v)
	    json_object_set_new(v, "message_row", json_integer(msg_row));
	if (sq_outbox_rows(c, id, in, now, cs.channel) < 0
	    || (req->out = sq_contact_load(c, id, 1)) == NULL)
		goto fail;
	json_object_set_new(req->out, "message_row", json_integer(msg_row));
	json_object_set_new(req->out, "message", row_of(c, sql_message, msg_row, message_row));
	json_object_set_new(req->out, "previous_status", json_string(cs.status));
	return;
fail:
	sq_step_error(c, req, SQLITE_ERROR);
}

void
sq_op_message_list(struct sq_conn *c, struct store_req *req)
{
	static const char sql[]
	    = "SELECT " MESSAGE_COLS "FROM messages WHERE contact_id = ?1 ORDER BY id";
	sqlite3_int64 id = json_integer_value(json_object_get(req->in, "id"));
	struct sq_contact_state cs;
	sqlite3_stmt *st;
	json_t *items;

	if (sq_contact_open(c, req, id, NULL, "this token may not see that contact", &cs) < 0)
		return;
	if ((st = sq_stmt(c, sql)) == NULL || (items = json_array()) == NULL) {
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(items, message_row(st));
	sqlite3_reset(st);
	req->out = json_pack("{s:o}", "items", items);
}

/*
 * The contact a channel's message belongs to: by its reference token, else by
 * the Message-IDs it answers. Also, for the flag on a mail that reuses one,
 * the contact that already holds a message with the message's own Message-ID.
 */
void
sq_op_thread_find(struct sq_conn *c, struct store_req *req)
{
	/*
	 * References count up, so anybody can write one: the token threads a mail only
	 * from an address the contact already knows (its party, or a sender on it).
	 */
	static const char sql_ref[]
	    = "SELECT c.id FROM contacts c WHERE c.reference = ?1 AND ("
	      " EXISTS (SELECT 1 FROM party_emails e WHERE e.party_id = c.party_id"
	      "  AND e.email = lower(?2))"
	      " OR EXISTS (SELECT 1 FROM messages m WHERE m.contact_id = c.id"
	      "  AND lower(m.sender) = lower(?2)))";
	/*
	 * The Message-IDs loket sends carry a random part and only their recipients
	 * know them: an answer to one threads from anybody. A citizen's own Message-ID
	 * is seen by everybody in To and Cc: an answer to it threads only from its
	 * sender or an address the contact knows (its party's, or the one it came in
	 * with), so that a third party's reply-all starts a contact of its own
	 * instead of reopening this one.
	 */
	static const char sql_msg[]
	    = "SELECT m.contact_id FROM messages m WHERE m.message_id = ?1 AND"
	      " (m.direction = 'out' OR lower(m.sender) = lower(?2)"
	      "  OR EXISTS (SELECT 1 FROM contacts kc JOIN party_emails ke"
	      "   ON ke.party_id = kc.party_id WHERE kc.id = m.contact_id"
	      "   AND ke.email = lower(?2))"
	      "  OR lower(?2) = (SELECT lower(kf.sender) FROM messages kf"
	      "   WHERE kf.contact_id = m.contact_id AND kf.direction = 'in'"
	      "   ORDER BY kf.id LIMIT 1))"
	      " ORDER BY m.id DESC LIMIT 1";
	static const char sql_seen[] = "SELECT m.contact_id, c.reference FROM messages m"
	                               " JOIN contacts c ON c.id = m.contact_id"
	                               " WHERE m.message_id = ?1 ORDER BY m.id LIMIT 1";
	sqlite3_int64 found = 0;
	sqlite3_stmt *st;
	json_t *v, *seen = NULL;
	size_t i;

	if (sq_jstr(req->in, "reference") != NULL && sq_jstr(req->in, "sender") != NULL
	    && (st = sq_stmt(c, sql_ref)) != NULL) {
		sq_bind_text(st, 1, sq_jstr(req->in, "reference"));
		sq_bind_text(st, 2, sq_jstr(req->in, "sender"));
		if (sqlite3_step(st) == SQLITE_ROW)
			found = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
	}
	json_array_foreach(json_object_get(req->in, "message_ids"), i, v)
	{
		if (found != 0 || !json_is_string(v) || (st = sq_stmt(c, sql_msg)) == NULL)
			break;
		sq_bind_text(st, 1, json_string_value(v));
		sq_bind_text(st, 2, sq_jstr(req->in, "sender"));
		if (sqlite3_step(st) == SQLITE_ROW)
			found = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
	}
	if (sq_jstr(req->in, "message_id") != NULL && (st = sq_stmt(c, sql_seen)) != NULL) {
		sq_bind_text(st, 1, sq_jstr(req->in, "message_id"));
		if (sqlite3_step(st) == SQLITE_ROW)
			seen
			    = json_pack("{s:I, s:o}", "id", (json_int_t)sqlite3_column_int64(st, 0),
			        "reference", sq_col_text(st, 1));
		sqlite3_reset(st);
	}
	req->out
	    = json_pack("{s:o, s:o}", "contact_id", found != 0 ? json_integer(found) : json_null(),
	        "message_id_seen", seen != NULL ? seen : json_null());
}

static const char sql_last_inbound[] = "SELECT " MESSAGE_COLS "FROM messages WHERE"
                                       " contact_id = ?1 AND direction = 'in'"
                                       " ORDER BY id DESC LIMIT 1";
static const char sql_task_due[] = "SELECT due_at FROM tasks WHERE contact_id = ?1 AND"
                                   " status = 'open' AND due_at IS NOT NULL"
                                   " ORDER BY id DESC LIMIT 1";

static const char sql_requester[] = "SELECT sender FROM messages WHERE contact_id = ?1 AND"
                                    " direction = 'in' AND sender IS NOT NULL ORDER BY id LIMIT 1";

/*
 * Automatic messages sent to recipient in the last day. Recipients are stored
 * the way recipient_normal() writes them, so a case variant of an address is
 * the same row key and the index on (recipient, sent_at) answers.
 */
static json_int_t
sent_automatically(struct sq_conn *c, const char *recipient, sqlite3_int64 now)
{
	static const char sql[] = "SELECT count(*) FROM outbox WHERE recipient = ?1 AND"
	                          " automatic = 1 AND status = 'sent' AND sent_at > ?2";
	sqlite3_stmt *st = sq_stmt(c, sql);
	json_int_t n = 0;

	if (st == NULL || recipient == NULL)
		return 0;
	sq_bind_text(st, 1, recipient);
	sqlite3_bind_int64(st, 2, now - DAY_MS);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return n;
}

/*
 * The recipient of a reply: who the staff addressed, else the address the
 * contact came in with, else (a contact from before schema 4 without one)
 * the sender of its first mail. Never merely who wrote last: a third party
 * whose mail was threaded onto the contact does not get the staff's next
 * answer to the citizen.
 */
static const char *
outbox_recipient(json_t *item)
{
	json_t *msg = json_object_get(item, "message");
	json_t *to = json_array_get(json_object_get(msg, "recipients"), 0);

	if (json_is_string(to))
		return json_string_value(to);
	if (sq_jstr(item, "reply_to") != NULL)
		return sq_jstr(item, "reply_to");
	return sq_jstr(item, "requester");
}

/*
 * An address as loket keeps a recipient: ASCII letters in lower case, the
 * local part too. Mail services treat it case-insensitively, loket does so
 * for a party's address, and ack_per_day must count Victim@Example.be and
 * victim@example.be as the one address they are. NULL stays NULL.
 */
static json_t *
recipient_normal(const char *addr)
{
	char *low;
	json_t *v;

	if (addr == NULL || (low = strdup(addr)) == NULL)
		return json_null();
	for (char *p = low; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	v = json_string(low);
	free(low);
	return v != NULL ? v : json_null();
}

/*
 * Pending outbox rows due at in.now, each with what a sender needs to write
 * the message: the contact, the message staff wrote (if any), the last
 * inbound message (to thread the answer and to keep away from automatic
 * mail), the address the contact came in with, the open task's deadline and how many automatic
 * messages its recipient got in the last day.
 */
void
sq_op_outbox_due(struct sq_conn *c, struct store_req *req)
{
	static const char sql[]
	    = "SELECT id, contact_id, channel, template, rule, attempts,"
	      " automatic, message_row, payload FROM outbox WHERE status = 'pending'"
	      " AND next_at <= ?1 AND id > ?2 ORDER BY id LIMIT ?3";
	sqlite3_int64 now = json_integer_value(json_object_get(req->in, "now"));
	sqlite3_stmt *st = sq_stmt(c, sql);
	json_t *items = json_array();

	if (st == NULL || items == NULL) {
		json_decref(items);
		sq_step_error(c, req, SQLITE_ERROR);
		return;
	}
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, json_integer_value(json_object_get(req->in, "after")));
	sqlite3_bind_int64(st, 3, json_integer_value(json_object_get(req->in, "limit")));
	while (sqlite3_step(st) == SQLITE_ROW) {
		json_t *item = json_pack("{s:I, s:I, s:o, s:o, s:o, s:I, s:b}", "id",
		    (json_int_t)sqlite3_column_int64(st, 0), "contact_id",
		    (json_int_t)sqlite3_column_int64(st, 1), "channel", sq_col_text(st, 2),
		    "template", sq_col_text(st, 3), "rule", sq_col_text(st, 4), "attempts",
		    (json_int_t)sqlite3_column_int64(st, 5), "automatic",
		    sqlite3_column_int(st, 6));

		if (item == NULL)
			continue;
		json_object_set_new(item, "payload", sq_col_json(st, 8));
		if (sqlite3_column_type(st, 7) != SQLITE_NULL)
			json_object_set_new(
			    item, "message_row", json_integer(sqlite3_column_int64(st, 7)));
		json_array_append_new(items, item);
	}
	sqlite3_reset(st);
	/* Details after the scan: the statements above are shared. */
	for (size_t i = 0; i < json_array_size(items); i++) {
		json_t *item = json_array_get(items, i);
		sqlite3_int64 cid = json_integer_value(json_object_get(item, "contact_id"));
		json_t *row = json_object_get(item, "message_row");
		const char *recipient;

		json_object_set_new(item, "contact", sq_contact_load(c, cid, 0));
		json_object_set_new(item, "message",
		    json_is_integer(row)
		        ? row_of(c, sql_message, json_integer_value(row), message_row)
		        : json_null());
		json_object_set_new(item, "last_in", row_of(c, sql_last_inbound, cid, message_row));
		json_object_set_new(item, "reply_to", row_of(c, sql_reply_to, cid, first_text));
		json_object_set_new(item, "requester", row_of(c, sql_requester, cid, first_text));
		json_object_set_new(item, "due_at", row_of(c, sql_task_due, cid, first_int));
		recipient = outbox_recipient(item);
		json_object_set_new(item, "recipient", recipient_normal(recipient));
		json_object_set_new(item, "sent_today",
		    json_integer(sent_automatically(c, sq_jstr(item, "recipient"), now)));
	}
	req->out = json_pack("{s:o}", "items", items);
}

void
sq_op_outbox_next(struct sq_conn *c, struct store_req *req)
{
	static const char sql[] = "SELECT min(next_at) FROM outbox WHERE status = 'pending'";

	sq_min_pending(c, req, sql, "next_at");
}

/*
 * A sender's outcome: sent (with the message as it went out, so a reply to
 * it threads back), to be retried at next_at, or failed for good.
 */
void
sq_op_outbox_done(struct sq_conn *c, struct store_req *req)
{
	static const char sql_row[]
	    = "SELECT contact_id, message_row, template, rule, channel FROM outbox"
	      " WHERE id = ?1 AND status = 'pending'";
	static const char sql_upd[] = "UPDATE outbox SET status = ?2, attempts = attempts + 1,"
	                              " next_at = coalesce(?3, next_at), sent_at = CASE WHEN ?2 ="
	                              " 'sent' THEN ?4 END, error = ?5,"
	                              " recipient = coalesce(?6, recipient) WHERE id = ?1";
	static const char sql_msg[] = "UPDATE messages SET status = ?2, message_id ="
	                              " coalesce(?3, message_id), subject = coalesce(?4, subject),"
	                              " body = coalesce(?5, body), sender = coalesce(?6, sender),"
	                              " recipients = coalesce(?7, recipients) WHERE id = ?1";
	json_t *in = req->in, *sent = json_object_get(in, "sent");
	sqlite3_int64 id = json_integer_value(json_object_get(in, "id"));
	sqlite3_int64 now = json_integer_value(json_object_get(in, "at"));
	const char *result = sq_jstr(in, "result");
	const char *status = strcmp(result, "retry") == 0 ? "pending" : result;
	sqlite3_int64 contact_id, msg_row = 0;
	sqlite3_stmt *st = sq_stmt(c, sql_row);
	char actor[300], detail[300], channel[32];

	if (st == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		store_req_fail(req, STORE_NOT_FOUND, "no pending outbox row %lld", (long long)id);
		return;
	}
	contact_id = sqlite3_column_int64(st, 0);
	if (sqlite3_column_type(st, 1) != SQLITE_NULL)
		msg_row = sqlite3_column_int64(st, 1);
	snprintf(actor, sizeof(actor), "%s%s",
	    sqlite3_column_type(st, 3) != SQLITE_NULL ? "rule:" : "outbox",
	    sqlite3_column_type(st, 3) != SQLITE_NULL ? (const char *)sqlite3_column_text(st, 3)
	                                              : "");
	snprintf(detail, sizeof(detail), "%s %s", status,
	    sqlite3_column_type(st, 2) != SQLITE_NULL ? (const char *)sqlite3_column_text(st, 2)
	                                              : "");
	snprintf(channel, sizeof(channel), "%s",
	    sqlite3_column_type(st, 4) != SQLITE_NULL ? (const char *)sqlite3_column_text(st, 4)
	                                              : "");
	sqlite3_reset(st);
	if ((st = sq_stmt(c, sql_upd)) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	sq_bind_text(st, 2, status);
	sq_bind_json_int(st, 3, in, "next_at");
	sqlite3_bind_int64(st, 4, now);
	sq_bind_json_text(st, 5, in, "error");
	sq_bind_json_text(st, 6, in, "recipient");
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail;
	if (strcmp(status, "pending") != 0) {
		json_t *msg;

		if (msg_row == 0) {
			/* A rule's reply: the message exists from now on, as it went out. */
			msg = json_pack("{s:s, s:s}", "direction", "out", "status", status);
			if (msg == NULL)
				goto fail;
			if (sent != NULL)
				json_object_update_missing(msg, sent);
			json_object_set_new(
			    msg, "meta", json_pack("{s:I}", "outbox", (json_int_t)id));
			if (sq_message_insert(c, contact_id, msg, channel, now, actor, &msg_row) < 0
			    || sq_event(c, LOKET_EVENT_MESSAGE_ADDED, now, contact_id, 0,
			           "{\"message\":%lld,\"direction\":\"out\"}", (long long)msg_row)
			        < 0) {
				json_decref(msg);
				goto fail;
			}
			json_decref(msg);
		} else if ((st = sq_stmt(c, sql_msg)) != NULL) {
			sqlite3_bind_int64(st, 1, msg_row);
			sq_bind_text(st, 2, status);
			sq_bind_json_text(st, 3, sent, "message_id");
			sq_bind_json_text(st, 4, sent, "subject");
			sq_bind_json_text(st, 5, sent, "body");
			sq_bind_json_text(st, 6, sent, "sender");
			if (json_object_get(sent, "recipients") != NULL)
				sq_bind_dump(st, 7, json_object_get(sent, "recipients"), "[]");
			if (sqlite3_step(st) != SQLITE_DONE)
				goto fail;
		} else {
			goto fail;
		}
		if (sq_history_add(c, contact_id, now, actor, "message", NULL, NULL, detail) < 0)
			goto fail;
	}
	req->out = json_pack("{s:I, s:s, s:I}", "id", (json_int_t)id, "status", status,
	    "contact_id", (json_int_t)contact_id);
	return;
fail:
	sq_step_error(c, req, SQLITE_ERROR);
}
