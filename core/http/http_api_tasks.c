/*
 * http_api_tasks.c: /api/v1/tasks: the second line's work list, claiming,
 * forwarding, returning and finishing a task; /api/v1/due: when a hand-over
 * to a department would be due.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "calendar.h"
#include "catalogue.h"
#include "conf.h"
#include "http_api.h"
#include "http_status.h"
#include "loketd.h"
#include "register.h"
#include "units.h"
#include "util.h"

/* The service time of a product without one, and of a hand-over without a product. */
#define TASKS_DEFAULT_WITHIN "5d"
/* The longest reason of a forward or a return, in bytes. */
#define TASKS_REASON_MAX 10000

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

/*
 * When a hand-over to department would be due: the product's service time
 * (else 5d) counted in the department's calendar from from_ms, exactly as
 * a rule's `escalate{within}` counts it (whole seconds). 0 with *due_r,
 * *within_r and *calendar_r (borrowed from the loaded units), or -1 with
 * *error_r naming the parameter.
 */
static int
tasks_due(struct loketd *d, const char *department, const char *product, int64_t from_ms,
    int64_t *due_r, const char **within_r, const char **calendar_r, const char **error_r)
{
	const struct catalogue *cat = d->units != NULL ? units_catalogue(d->units) : NULL;
	const struct catalogue_product *p = NULL;
	const struct calendar *cal;
	struct calendar_duration dur;
	const char *within = TASKS_DEFAULT_WITHIN, *why = NULL;
	time_t due;

	if (department == NULL || conf_department(d->conf, department) == NULL ||
	    d->units == NULL || (cal = units_calendar(d->units, department)) == NULL) {
		*error_r = department == NULL ? "department: required"
					      : util_error("department: no department '%.*s' is "
							   "configured",
						    (int)util_utf8_prefix(department, 64), department);
		return -1;
	}
	if (product != NULL && (cat == NULL || (p = catalogue_find(cat, product)) == NULL)) {
		*error_r = util_error("product: no product '%.*s' in the catalogue",
		    (int)util_utf8_prefix(product, 64), product);
		return -1;
	}
	if (p != NULL && p->service_time != NULL)
		within = p->service_time;
	if (calendar_parse_duration(within, &dur, &why) < 0 ||
	    (due = calendar_add(cal, (time_t)(from_ms / 1000), &dur)) == (time_t)-1) {
		*error_r = util_error("department: the calendar of '%s' has no open time for %s",
		    department, within);
		return -1;
	}
	*due_r = (int64_t)due * 1000;
	*within_r = within;
	*calendar_r = units_calendar_source(d->units, department);
	return 0;
}

static void
tasks_due_get(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	const char *from = http_query(req, "from"), *within, *calendar, *error = NULL;
	int64_t from_ms = util_time_ms(), due;
	char when[40];

	if (auth_require(req, AUTH_STAFF) < 0)
		return;
	if (from != NULL && util_time_parse(from, &from_ms) < 0) {
		http_problem(req, 422, "from: expected an RFC 3339 time");
		return;
	}
	if (tasks_due(d, http_query(req, "department"), http_query(req, "product"), from_ms, &due,
		&within, &calendar, &error) < 0) {
		http_problem(req, 422, error);
		return;
	}
	util_time_format(due, when, sizeof(when));
	api_reply(req, 200, json_pack("{s:s, s:s, s:s}", "due_at", when, "within", within,
				"calendar", calendar));
}

enum tasks_action {
	TASKS_CLAIM,
	TASKS_FORWARD,
	TASKS_RETURN,
};

/* A claim, forward or return between its read of the task and its write. */
struct tasks_handover {
	struct loketd *d;
	struct loket_http_req *req;
	enum tasks_action action;
	json_int_t id;
	json_t *body; /* owned */
};

/* A claim answers with the task: the one the contact's tasks name. */
static void
tasks_claimed_cb(struct api_call *call, struct store_req *sr)
{
	json_t *tasks = json_object_get(sr->out, "tasks"), *t;
	json_int_t id = json_integer_value(
	    json_object_get(json_object_get(sr->in, "on_task"), "id"));
	size_t i;

	(void)call;
	json_array_foreach(tasks, i, t) {
		if (json_integer_value(json_object_get(t, "id")) == id) {
			json_t *task = json_incref(t);

			json_object_clear(sr->out);
			json_object_update(sr->out, task);
			json_decref(task);
			return;
		}
	}
}

/* The store's refusal of a hand-over, worded for a person. */
static const char *
tasks_refused(struct api_call *call, struct store_req *sr)
{
	json_t *on = json_object_get(sr->in, "on_task");
	const char *status = json_string_value(json_object_get(sr->out, "status"));
	json_t *assignee = json_object_get(sr->out, "assignee");

	if (sr->result != STORE_CONFLICT || status == NULL)
		return NULL;
	if (json_is_string(assignee))
		return util_error("task %lld is claimed by %s; only they or an admin can release it",
		    (long long)json_integer_value(json_object_get(on, "id")),
		    json_string_value(assignee));
	if (json_object_get(sr->out, "assignee") != NULL)
		return util_error("task %lld is claimed by nobody", (long long)json_integer_value(
							   json_object_get(on, "id")));
	if (strcmp(status, "done") == 0)
		return util_error("task %lld is already done",
		    (long long)json_integer_value(json_object_get(on, "id")));
	(void)call;
	return util_error("the contact is %s; only an escalated contact's task can be %s", status,
	    json_string_value(json_object_get(json_object_get(sr->in, "transition"), "past")));
}

/* A forward the wall between organisations refused names both, as a PATCH does. */
static const char *
tasks_forward_refused(struct api_call *call, struct store_req *sr)
{
	const char *from = json_string_value(json_object_get(sr->out, "organisation"));
	const char *to =
	    json_string_value(json_object_get(json_object_get(sr->in, "set"), "organisation"));

	if (sr->result == STORE_FORBIDDEN && from != NULL && to != NULL)
		return util_error("department: this contact is confidential to organisation %s; "
				  "it cannot go to a department of organisation %s",
		    from, to);
	return tasks_refused(call, sr);
}

/* The task as read: now the write, conditioned on what the read saw being still true. */
static void
tasks_handover_read_cb(struct store_req *sr, void *arg)
{
	struct tasks_handover *h = arg;
	struct loket_http_req *req = h->req;
	struct loketd *d = h->d;
	const char *me = auth_name(req), *reason, *dep, *error = NULL;
	json_int_t contact_id;
	json_t *in = NULL, *on;
	struct api_call *call;

	if (sr->result != STORE_OK) {
		if (sr->result == STORE_FORBIDDEN)
			auth_audit(d, req, "task.handover.denied", "task");
		http_add_header(req, "Cache-Control", "no-store");
		http_problem(req, http_status_of_store(sr->result), sr->error);
		goto out;
	}
	contact_id = json_integer_value(json_object_get(sr->out, "contact_id"));
	reason = json_string_value(json_object_get(h->body, "reason"));
	dep = json_string_value(json_object_get(h->body, "department"));
	on = json_pack("{s:I}", "id", h->id);
	in = json_pack("{s:I, s:I, s:s, s:o, s:{}, s:o}", "id", contact_id, "at",
	    (json_int_t)util_time_ms(), "actor", me, "scope", auth_scope(req), "set", "on_task", on);
	if (in == NULL) {
		http_problem(req, 503, "out of memory");
		goto out;
	}
	if ((call = api_call_new(d, req, 200)) == NULL)
		goto out;
	call->refused = tasks_refused;
	switch (h->action) {
	case TASKS_CLAIM:
		if (json_is_true(json_object_get(h->body, "release"))) {
			json_object_set_new(on, "assignee", json_null());
			/* The holder gives it back; an admin may take it from whoever holds it. */
			if (!auth_has_role(req, AUTH_ADMIN))
				json_object_set_new(on, "holders", json_pack("[s, n]", me));
		} else {
			json_object_set_new(on, "assignee", json_string(me));
			json_object_set_new(on, "holders", json_pack("[n, s]", me));
		}
		json_object_set_new(in, "history",
		    json_pack("[{s:s, s:s}]", "actor", me, "action",
			json_is_true(json_object_get(h->body, "release")) ? "release" : "claim"));
		call->after = tasks_claimed_cb;
		break;
	case TASKS_FORWARD: {
		int64_t due = 0, old_due;
		const char *within, *calendar;
		json_t *task;

		old_due = json_integer_value(json_object_get(sr->out, "due_at"));
		/* The product's service time in the new department's calendar, else the old due. */
		if (json_is_string(json_object_get(sr->out, "product")) &&
		    tasks_due(d, dep, json_string_value(json_object_get(sr->out, "product")),
			util_time_ms(), &due, &within, &calendar, &error) < 0)
			due = 0;
		if (due == 0)
			due = old_due;
		task = json_pack("{s:s, s:s}", "department", dep, "reason", reason);
		if (due > 0)
			json_object_set_new(task, "due_at", json_integer(due));
		json_object_set_new(on, "done", json_true());
		json_object_set_new(in, "task", task);
		json_object_set_new(in, "transition",
		    register_transition_json(REGISTER_FORWARD, reason));
		json_object_set_new(json_object_get(in, "set"), "department", json_string(dep));
		json_object_set_new(json_object_get(in, "set"), "organisation",
		    json_string(conf_department(d->conf, dep)->organisation));
		http_api_contacts_wall(call, in);
		break;
	}
	case TASKS_RETURN:
		json_object_set_new(on, "done", json_true());
		json_object_set_new(in, "finish_tasks", json_true());
		json_object_set_new(in, "transition",
		    register_transition_json(REGISTER_RETURN, reason));
		break;
	}
	/* The wall asked its condition: its refusal is worded too, the rest by tasks_refused. */
	if (call->refused != tasks_refused)
		call->refused = tasks_forward_refused;
	api_submit(call, STORE_CONTACT_UPDATE, in);
	in = NULL;
out:
	json_decref(in);
	json_decref(h->body);
	free(h);
}

/* Checks the body of a forward or return and reads the task; the write follows. */
static void
tasks_handover(struct loket_http_req *req, struct loketd *d, enum tasks_action action)
{
	struct tasks_handover *h;
	struct store_req *sr;
	json_t *body, *v;
	const char *key, *err = NULL;
	json_int_t id;

	if (auth_require(req, AUTH_BACKOFFICE | AUTH_ADMIN) < 0 || api_id(req, "id", &id) < 0 ||
	    (body = api_body(req, action == TASKS_CLAIM)) == NULL)
		return;
	json_object_foreach(body, key, v) {
		int known = action == TASKS_CLAIM ? strcmp(key, "release") == 0
			    : action == TASKS_FORWARD
				? strcmp(key, "reason") == 0 || strcmp(key, "department") == 0
				: strcmp(key, "reason") == 0;

		if (!known && err == NULL)
			err = util_error("%.*s: unknown field; expected %s",
			    (int)util_utf8_prefix(key, 40), key,
			    action == TASKS_CLAIM     ? "release"
			    : action == TASKS_FORWARD ? "department and reason"
						      : "reason");
	}
	if (err == NULL && action == TASKS_CLAIM && (v = json_object_get(body, "release")) != NULL &&
	    !json_is_boolean(v))
		err = "release: expected true or false";
	if (err == NULL && action != TASKS_CLAIM) {
		v = json_object_get(body, "reason");
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > TASKS_REASON_MAX ||
		    strlen(json_string_value(v)) != json_string_length(v) ||
		    strspn(json_string_value(v), " \t\r\n") == json_string_length(v))
			err = "reason: required, 1 to 10000 bytes of text saying why";
	}
	if (err == NULL && action == TASKS_FORWARD) {
		v = json_object_get(body, "department");
		if (!json_is_string(v))
			err = "department: required, the department to forward to";
		else if (conf_department(d->conf, json_string_value(v)) == NULL)
			err = util_error("department: no department '%.*s' is configured",
			    (int)util_utf8_prefix(json_string_value(v), 64), json_string_value(v));
	}
	if (err != NULL) {
		json_decref(body);
		http_problem(req, 422, err);
		return;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		json_decref(body);
		http_problem(req, 503, "out of memory");
		return;
	}
	h->d = d;
	h->req = req;
	h->action = action;
	h->id = id;
	h->body = body;
	if ((sr = store_req_new(STORE_TASK_GET,
		 json_pack("{s:I, s:o}", "id", id, "scope", auth_scope(req)),
		 tasks_handover_read_cb, h)) == NULL) {
		json_decref(body);
		free(h);
		http_problem(req, 503, "out of memory");
		return;
	}
	store_submit(d->store, sr);
}

static void
tasks_claim(struct loket_http_req *req, void *arg)
{
	tasks_handover(req, arg, TASKS_CLAIM);
}

static void
tasks_forward(struct loket_http_req *req, void *arg)
{
	tasks_handover(req, arg, TASKS_FORWARD);
}

static void
tasks_return(struct loket_http_req *req, void *arg)
{
	tasks_handover(req, arg, TASKS_RETURN);
}

int
http_api_tasks_init(struct loketd *d, const char **error_r)
{
	if (http_route_add(d->http, "core", LOKET_HTTP_GET, "/api/v1/tasks", LOKET_ACCESS_TOKEN,
		tasks_list, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_POST, "/api/v1/tasks/{id}/done",
		LOKET_ACCESS_TOKEN, tasks_done, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_POST, "/api/v1/tasks/{id}/claim",
		LOKET_ACCESS_TOKEN, tasks_claim, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_POST, "/api/v1/tasks/{id}/forward",
		LOKET_ACCESS_TOKEN, tasks_forward, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_POST, "/api/v1/tasks/{id}/return",
		LOKET_ACCESS_TOKEN, tasks_return, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_GET, "/api/v1/due", LOKET_ACCESS_TOKEN,
		tasks_due_get, d, error_r) < 0)
		return -1;
	return 0;
}
