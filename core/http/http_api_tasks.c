/* http_api_tasks.c: /api/v1/tasks: the second line's work list and finishing a task. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "conf.h"
#include "http_api.h"
#include "loketd.h"
#include "register.h"
#include "util.h"

static void
tasks_list(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	const char *dep = http_query(req, "department"), *status = http_query(req, "status");
	struct api_call *call;
	json_t *in;

	if (auth_require(req, AUTH_STAFF) < 0)
		return;
	if (status != NULL && strcmp(status, "open") != 0 && strcmp(status, "done") != 0) {
		http_problem(req, 400, "status: expected open or done");
		return;
	}
	if (dep != NULL && conf_department(d->conf, dep) == NULL) {
		http_problem(req, 400, "department: no such department is configured");
		return;
	}
	if (dep != NULL && !auth_department_ok(req, dep)) {
		auth_audit(d, req, "task.list.denied", "tasks?department");
		http_problem(req, 403, "this token may not see that department's tasks");
		return;
	}
	in = json_pack("{s:s?, s:s?, s:o}", "department", dep, "status", status, "scope",
	    auth_scope(req));
	if (api_paging(req, in) < 0 || (call = api_call_new(d, req, 200)) == NULL) {
		json_decref(in);
		return;
	}
	/* A task names its contact's reference and the reason: a read of contacts. */
	snprintf(call->audit_action, sizeof(call->audit_action), "task.list");
	snprintf(call->audit_object, sizeof(call->audit_object), "tasks");
	api_submit(call, STORE_TASK_LIST, in);
}

/*
 * The task as the client sees it. A contact the task closed is news for the
 * gauges and the rules of "closed": the register published that already.
 */
static void
tasks_done_cb(struct api_call *call, struct store_req *sr)
{
	json_object_del(sr->out, "contact_previous_status");
	json_object_del(sr->out, "channel");
}

static void
tasks_done(struct loket_http_req *req, void *arg)
{
	struct api_call *call;
	json_int_t id;

	if (auth_require(req, AUTH_BACKOFFICE | AUTH_ADMIN) < 0 || api_id(req, "id", &id) < 0 ||
	    (call = api_call_new(arg, req, 200)) == NULL)
		return;
	call->after = tasks_done_cb;
	api_submit(call, STORE_TASK_DONE,
	    json_pack("{s:I, s:I, s:s, s:o}", "id", id, "at", (json_int_t)util_time_ms(), "actor",
		auth_name(req), "scope", auth_scope(req)));
}

int
http_api_tasks_init(struct loketd *d, const char **error_r)
{
	if (http_route_add(d->http, "core", LOKET_HTTP_GET, "/api/v1/tasks", LOKET_ACCESS_TOKEN,
		tasks_list, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_POST, "/api/v1/tasks/{id}/done",
		LOKET_ACCESS_TOKEN, tasks_done, d, error_r) < 0)
		return -1;
	return 0;
}
