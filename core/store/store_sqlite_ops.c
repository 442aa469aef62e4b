/* store_sqlite_ops.c: routes a request to the one function of its kind. */
#include "config.h"

#include "store_sqlite.h"

void
sq_op_run(struct sq_conn *c, struct store_req *req)
{
	static void (*const ops[STORE_OP_COUNT])(struct sq_conn *, struct store_req *) = {
		[STORE_CONTACT_CREATE] = sq_op_contact_create,
		[STORE_CONTACT_UPDATE] = sq_op_contact_update,
		[STORE_TASK_DONE] = sq_op_task_done,
		[STORE_TOKEN_PUT] = sq_op_token_put,
		[STORE_TOKEN_REVOKE] = sq_op_token_revoke,
		[STORE_AUDIT] = sq_op_audit,
		[STORE_AUDIT_LIST] = sq_op_audit_list,
		[STORE_CONTACT_GET] = sq_op_contact_get,
		[STORE_CONTACT_LIST] = sq_op_contact_list,
		[STORE_PARTY_GET] = sq_op_party_get,
		[STORE_PARTY_FIND] = sq_op_party_find,
		[STORE_PARTY_UPDATE] = sq_op_party_update,
		[STORE_PARTY_MERGE] = sq_op_party_merge,
		[STORE_PARTY_CONTACTS] = sq_op_party_contacts,
		[STORE_TASK_LIST] = sq_op_task_list,
		[STORE_TOKEN_LIST] = sq_op_token_list,
		[STORE_COUNTS] = sq_op_counts,
		[STORE_TIMER_DONE] = sq_op_timer_done,
		[STORE_TIMERS_DUE] = sq_op_timers_due,
		[STORE_TIMERS_NEXT] = sq_op_timers_next,
		[STORE_MESSAGE_ADD] = sq_op_message_add,
		[STORE_OUTBOX_DONE] = sq_op_outbox_done,
		[STORE_MESSAGE_LIST] = sq_op_message_list,
		[STORE_THREAD_FIND] = sq_op_thread_find,
		[STORE_OUTBOX_DUE] = sq_op_outbox_due,
		[STORE_OUTBOX_NEXT] = sq_op_outbox_next,
		[STORE_EVENTS_AFTER] = sq_op_events_after,
		[STORE_TASK_GET] = sq_op_task_get,
		[STORE_PARTY_DUPLICATES] = sq_op_party_duplicates,
		[STORE_USER_ADD] = sq_op_user_add,
		[STORE_USER_UPDATE] = sq_op_user_update,
		[STORE_USER_LIST] = sq_op_user_list,
		[STORE_SIGNIN_GET] = sq_op_signin_get,
		[STORE_SIGNIN_FAIL] = sq_op_signin_fail,
		[STORE_SESSION_PUT] = sq_op_session_put,
		[STORE_SESSION_GET] = sq_op_session_get,
		[STORE_SESSION_TOUCH] = sq_op_session_touch,
		[STORE_SESSION_END] = sq_op_session_end,
		[STORE_SEARCH] = sq_op_search,
		[STORE_CONTACT_STATUS] = sq_op_contact_status,
	};

	if (req->op >= STORE_OP_COUNT || ops[req->op] == NULL) {
		store_req_fail(req, STORE_FAILED, "unknown storage request");
		return;
	}
	c->req = req;
	ops[req->op](c, req);
	c->req = NULL;
	if (req->result == STORE_OK && req->out == NULL && !store_op_is_write(req->op))
		store_req_fail(req, STORE_FAILED, "out of memory");
}
