/*
 * contact_view.c: the API's view of what the storage driver returns.
 *
 * A driver returns records in the storage shape docs/storage.md states
 * (times as integer ms since the epoch, the party's name as a plain
 * party_name, a history as stored). What clients, rules and plugins see
 * (ISO 8601 times, the party as {id, name}, a rules row unfolded into one
 * entry per rule) is made here, once, on the loop, as every completion
 * passes through the store (store->view_hook), before the register
 * publishes the write's events and before the caller's callback. It
 * changes the rows in place: no copy, no text dumped and parsed again.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "register.h"
#include "store.h"
#include "util.h"

/* key's integer ms as ISO 8601 text; null stays null. */
static void
view_time(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	char when[40];

	if (!json_is_integer(v))
		return;
	util_time_format(json_integer_value(v), when, sizeof(when));
	json_object_set_new(obj, key, json_string(when));
}

/* A stored history row as entries of the API: a "rules" row (register_rules.c) unfolds. */
static void
view_history_row(json_t *list, json_t *row)
{
	const char *actor = json_string_value(json_object_get(row, "actor"));
	const char *action = json_string_value(json_object_get(row, "action"));
	const char *detail = json_string_value(json_object_get(row, "detail"));
	json_t *packed = NULL, *at, *e;
	size_t i;

	view_time(row, "at");
	at = json_object_get(row, "at");
	if (actor != NULL && action != NULL && detail != NULL && strcmp(actor, "rules") == 0 &&
	    strcmp(action, "rules") == 0)
		packed = json_loads(detail, 0, NULL);
	if (!json_is_array(packed)) {
		json_decref(packed);
		/* An internal note (POST .../notes) reads as one: its text is the row's detail. */
		if (action != NULL && strcmp(action, "note") == 0 && detail != NULL) {
			json_object_set_new(row, "kind", json_string("note"));
			json_object_set(row, "text", json_object_get(row, "detail"));
		}
		json_array_append(list, row);
		return;
	}
	/* actor, action, detail, actor, ... (see history_rows in register_rules.c) */
	for (i = 0; i + 2 < json_array_size(packed) && json_is_string(json_array_get(packed, 0));
	     i += 3)
		json_array_append_new(list,
		    json_pack("{s:O, s:O, s:O, s:n, s:n, s:O}", "at", at, "actor",
			json_array_get(packed, i), "action", json_array_get(packed, i + 1), "from",
			"to", "detail", json_array_get(packed, i + 2)));
	/* Rows written before 7b995df list {rule, action, decision or detail} objects. */
	json_array_foreach(packed, i, e) {
		char who[300], worded[512];

		if (!json_is_object(e))
			break;
		register_history_entry(e, who, sizeof(who), worded, sizeof(worded));
		json_array_append_new(list,
		    json_pack("{s:O, s:s, s:s?, s:n, s:n, s:s?}", "at", at, "actor", who, "action",
			json_string_value(json_object_get(e, "action")), "from", "to", "detail",
			worded[0] != '\0' ? worded : NULL));
	}
	json_decref(packed);
}

void
task_view(json_t *task)
{
	if (!json_is_object(task))
		return;
	view_time(task, "due_at");
	view_time(task, "created_at");
	view_time(task, "done_at");
}

void
contact_view(json_t *c)
{
	json_t *party_id, *history, *list, *row, *task;
	size_t i;

	if (!json_is_object(c))
		return;
	view_time(c, "received_at");
	view_time(c, "handled_at");
	view_time(c, "updated_at");
	party_id = json_object_get(c, "party_id");
	json_object_set_new(c, "party",
	    json_is_integer(party_id) ?
		json_pack("{s:O, s:O}", "id", party_id, "name",
		    json_object_get(c, "party_name") != NULL ? json_object_get(c, "party_name") :
							       json_null()) :
		json_null());
	json_object_del(c, "party_name");
	if (json_is_array(history = json_object_get(c, "history")) && (list = json_array()) != NULL) {
		json_array_foreach(history, i, row)
			view_history_row(list, row);
		json_object_set_new(c, "history", list);
	}
	json_array_foreach(json_object_get(c, "tasks"), i, task)
		task_view(task);
}

/*
 * A new contact as the API shows it, built on the loop from what was
 * written and the few values the driver assigned (id, reference, party):
 * the driver's thread, which every write waits for, does not spend its time
 * on JSON.
 */
static json_t *
contact_view_created(json_t *in, json_t *assigned)
{
	static const char *const nullable[] = { "answer", "product", "department", "language",
		"location", "handled_at", "assignee", NULL };
	static const char *const internal[] = { "task", "timers", "history", "outbox", "handled",
		"party", "message", "keys", "idempotency", NULL };
	json_t *out = json_copy(in), *party_id = json_object_get(assigned, "party_id");
	char when[40];

	if (out == NULL)
		return NULL;
	util_time_format(json_integer_value(json_object_get(in, "received_at")), when, sizeof(when));
	/* What rules added travels to the store, not back to the client. */
	for (size_t i = 0; internal[i] != NULL; i++)
		json_object_del(out, internal[i]);
	json_object_set(out, "id", json_object_get(assigned, "id"));
	json_object_set(out, "reference", json_object_get(assigned, "reference"));
	json_object_set_new(out, "received_at", json_string(when));
	json_object_set_new(out, "updated_at", json_string(when));
	if (json_is_true(json_object_get(in, "handled")))
		json_object_set_new(out, "handled_at", json_string(when));
	for (size_t i = 0; nullable[i] != NULL; i++)
		if (json_object_get(out, nullable[i]) == NULL)
			json_object_set_new(out, nullable[i], json_null());
	json_object_set(out, "party_id", party_id != NULL ? party_id : json_null());
	json_object_set_new(out, "party",
	    json_is_integer(party_id) ?
		json_pack("{s:O, s:O}", "id", party_id, "name",
		    json_object_get(assigned, "party_name") != NULL ?
			json_object_get(assigned, "party_name") :
			json_null()) :
		json_null());
	json_object_set(out, "reply_to", json_object_get(assigned, "reply_to") != NULL ?
		json_object_get(assigned, "reply_to") : json_null());
	json_object_set(out, "party_conflict", json_object_get(assigned, "party_conflict") != NULL ?
		json_object_get(assigned, "party_conflict") : json_null());
	if (json_object_get(assigned, "timers_next") != NULL)
		json_object_set(out, "timers_next", json_object_get(assigned, "timers_next"));
	return out;
}

json_t *
contact_view_created_req(struct store_req *req)
{
	json_t *out = req->out, *view;

	if (req->op != STORE_CONTACT_CREATE || req->result != STORE_OK || !json_is_object(out) ||
	    json_is_true(json_object_get(out, "duplicate")) || json_object_get(out, "channel") != NULL)
		return out;
	/*
	 * In place: whoever holds out (the register's result, an event) sees
	 * the view from now on, and nothing is left pointing at a freed one.
	 */
	if ((view = contact_view_created(req->in, out)) == NULL)
		return out;
	json_object_update(out, view);
	json_object_del(out, "party_name");
	json_decref(view);
	return out;
}

/*
 * A list's items as the text its caller sends (STORE_REQ_TEXT): written
 * here, on the reader's thread when the driver calls store_req_view, so
 * the loop only copies bytes. Without memory the items stay as they are.
 */
static void
view_list_text(struct store_req *req)
{
	char *text;
	json_t *s;

	if ((req->core_flags & STORE_REQ_TEXT) == 0 ||
	    (text = json_dumps(json_object_get(req->out, "items"), JSON_COMPACT | JSON_ENSURE_ASCII)) == NULL)
		return;
	s = json_stringn_nocheck(text, strlen(text));
	free(text);
	if (s != NULL && json_object_set_new(req->out, "items_json", s) == 0)
		json_object_del(req->out, "items");
}

void
contact_view_req(struct store_req *req, void *arg)
{
	json_t *out = req->out, *item;
	size_t i;

	(void)arg;
	if (req->result != STORE_OK || out == NULL)
		return;
	switch (req->op) {
	case STORE_CONTACT_CREATE:
		if (json_is_true(json_object_get(out, "duplicate"))) {
			contact_view(json_object_get(out, "contact"));
		} else {
			/*
			 * The full view of a new contact is built when someone asks
			 * for it (contact_view_created_req): an intake caller sees
			 * {id, reference, status} only, and most contacts are
			 * looked at by nobody else on the way in.
			 */
			json_t *status = json_object_get(req->in, "status");

			json_object_set(out, "status", status != NULL ? status : json_string("open"));
		}
		break;
	case STORE_CONTACT_GET:
	case STORE_CONTACT_UPDATE:
	case STORE_MESSAGE_ADD:
		contact_view(out);
		break;
	case STORE_CONTACT_LIST:
	case STORE_PARTY_CONTACTS:
		json_array_foreach(json_object_get(out, "items"), i, item)
			contact_view(item);
		view_list_text(req);
		break;
	case STORE_SEARCH:
		json_array_foreach(json_object_get(out, "contacts"), i, item)
			contact_view(item);
		break;
	case STORE_TASK_LIST:
		json_array_foreach(json_object_get(out, "items"), i, item)
			task_view(item);
		view_list_text(req);
		break;
	case STORE_TASK_DONE:
		task_view(out);
		break;
	case STORE_OUTBOX_DUE:
		json_array_foreach(json_object_get(out, "items"), i, item)
			contact_view(json_object_get(item, "contact"));
		break;
	default:
		break;
	}
}
