/*
 * timers.c: durable timers (reminders, task deadlines) kept in the register
 * and armed on the loop for the earliest one due.
 *
 * The timers hear of new timers and of settled ones through register
 * events: a write that added timers names the earliest, and every write
 * that closes a timer is reported stored or not (EVENTS_TIMER_SETTLED).
 * A timer whose action is the rules' (a plain reminder, a deadline) is
 * handed on as EVENTS_TIMER_DUE; whoever runs those rules writes the
 * action with the timer closed, and the settlement comes back the same way.
 *
 * No scan runs on a clock: one libevent timer waits for the earliest pending
 * timer; when it fires, the due ones are read, acted on (each action written
 * together with marking its timer done), and the next earliest is armed. A
 * restart arms the earliest again, so a timer due while loketd was down
 * fires right after start. A crash between an action and its commit fires
 * the timer again; the actions are checked against the contact's status, so
 * firing twice does not escalate twice.
 *
 * Several nodes sharing one register (docs/storage.md): the due read hands
 * a node only the timers no live claim holds and claims them for it for one
 * lease; the next-due answer counts a claim at its end, and is one lease
 * ahead at the latest, so a node wakes when a dead node's claims run out
 * (or its timers fall due) without a word from it. A timer's action is
 * written with the timer closed (timer_done) and only while it is pending:
 * fired again across a hand-over, the second action stores nothing.
 */
#include "config.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "events.h"
#include "log.h"
#include "loketd.h"
#include "metrics.h"
#include "register.h"
#include "rulebook.h"
#include "timers.h"
#include "store.h"
#include "util.h"

#define TIMERS_BATCH 200

static void timers_fire_cb(evutil_socket_t fd, short what, void *arg);
static void timers_rearm(struct loketd *d);

static void
timers_arm(struct loketd *d, int64_t due_ms)
{
	int64_t now = util_time_ms(), delay = due_ms > now ? due_ms - now : 0;
	struct timeval tv = { .tv_sec = (time_t)(delay / 1000),
		.tv_usec = (suseconds_t)(delay % 1000) * 1000 };

	if (d->timer_armed_ms != 0 && d->timer_armed_ms <= due_ms)
		return;
	d->timer_armed_ms = due_ms;
	evtimer_add(d->timer_ev, &tv);
}

void
timers_note(struct loketd *d, json_int_t due_ms)
{
	if (d->timer_ev != NULL)
		timers_arm(d, (int64_t)due_ms);
}

void
timers_clock_moved(struct loketd *d)
{
	if (d->timer_ev == NULL)
		return;
	/* The armed delay was counted on the old time; the store knows the earliest due. */
	evtimer_del(d->timer_ev);
	d->timer_armed_ms = 0;
	if (d->timers_busy == 0)
		timers_rearm(d);
}

static void
timers_next_cb(struct store_req *sr, void *arg)
{
	struct loketd *d = arg;
	json_t *due;

	if (sr->result != STORE_OK) {
		log_warnx("timers", "cannot read the next timer: %s", sr->error);
		return;
	}
	due = json_object_get(sr->out, "due_at");
	if (json_is_integer(due))
		timers_arm(d, json_integer_value(due));
}

static void
timers_rearm(struct loketd *d)
{
	/* now: a shared register answers a time one lease ahead at the latest (a node that died). */
	struct store_req *sr = store_req_new(STORE_TIMERS_NEXT,
	    json_pack("{s:I}", "now", (json_int_t)util_time_ms()), timers_next_cb, d);

	if (sr != NULL)
		store_submit(d->store, sr);
}

/* One follow-up of a fired timer finished; when the batch is through, look further. */
static void
timers_settled(struct loketd *d)
{
	if (--d->timers_busy > 0)
		return;
	timers_rearm(d);
}

/* A fired timer's action settled (first word wins; a second one is not counted twice). */
static void
timers_settle(struct loketd *d, json_int_t id)
{
	char key[32];

	snprintf(key, sizeof(key), "%lld", (long long)id);
	if (json_object_get(d->timers_inflight, key) == NULL)
		return;
	json_object_del(d->timers_inflight, key);
	timers_settled(d);
}

static void
timers_done_cb(struct store_req *sr, void *arg)
{
	/* Settled through EVENTS_TIMER_SETTLED, which the register published before this. */
	if (sr->result != STORE_OK && sr->result != STORE_CONFLICT)
		log_warnx("timers", "a fired timer's action was not stored: %s", sr->error);
}

static void
timers_submit(struct loketd *d, json_int_t id, enum store_op op, json_t *in)
{
	struct store_req *sr;

	if (in == NULL) {
		log_warnx("timers", "a fired timer's action could not be built");
		timers_settle(d, id);
		return;
	}
	if ((sr = store_req_new(op, in, timers_done_cb, d)) == NULL) {
		timers_settle(d, id);
		return;
	}
	store_submit(d->store, sr);
}

/*
 * News from the register: a write added timers (arm for the earliest), or a
 * write closing a fired timer completed.
 */
static void
timers_event_cb(const struct events_event *ev, void *arg)
{
	struct loketd *d = arg;

	if (ev->pub.kind == (enum loket_event_kind)EVENTS_TIMER_SETTLED) {
		timers_settle(d, ev->timer_id);
		return;
	}
	if (ev->timers_next > 0)
		timers_note(d, ev->timers_next);
}

static void
timers_finish(struct loketd *d, json_int_t id)
{
	timers_submit(d, id, STORE_TIMER_DONE,
	    json_pack("{s:I, s:I}", "id", id, "at", (json_int_t)util_time_ms()));
}

/* "unless = resolved" also holds for a contact closed since. */
static int
timers_unless(const char *unless, const char *status)
{
	if (unless == NULL || status == NULL)
		return 0;
	if (strcmp(unless, status) == 0)
		return 1;
	return strcmp(unless, "resolved") == 0 && strcmp(status, "closed") == 0;
}

static void
timers_remind_escalate(struct loketd *d, json_t *t, json_t *payload)
{
	json_t *esc = json_object_get(payload, "escalate");
	const char *to = json_string_value(json_object_get(esc, "to"));
	const char *reason = json_string_value(json_object_get(esc, "reason"));
	const char *rule = json_string_value(json_object_get(t, "rule"));
	const struct conf_department *dep = to != NULL ? conf_department(d->conf, to) : NULL;
	char actor[300], detail[300];

	snprintf(actor, sizeof(actor), "rule:%s", rule != NULL ? rule : "reminder");
	/*
	 * The department may have gone from loket.conf since the rule decided
	 * (a reload): the contact stays where it is, and its history says why.
	 */
	if (dep == NULL) {
		log_warnx("timers", "a reminder cannot escalate: department=%s is not configured",
		    to != NULL ? to : "?");
		snprintf(detail, sizeof(detail),
		    "not handled in time; not escalated: department '%s' is not configured",
		    to != NULL ? to : "?");
		timers_submit(d, json_integer_value(json_object_get(t, "id")), STORE_CONTACT_UPDATE,
		    json_pack("{s:O, s:I, s:s, s:{s:b}, s:O, s:[{s:s, s:s, s:s}]}", "id",
			json_object_get(t, "contact_id"), "at", (json_int_t)util_time_ms(), "actor",
			actor, "scope", "all", 1, "timer_done", json_object_get(t, "id"), "history",
			"actor", actor, "action", "reminder", "detail", detail));
		return;
	}
	/* As POST .../escalate: the task, and the contact in the department's organisation. */
	timers_submit(d, json_integer_value(json_object_get(t, "id")), STORE_CONTACT_UPDATE,
	    json_pack("{s:O, s:I, s:s, s:{s:b}, s:O, s:o, s:{s:s, s:s}, s:{s:s, s:s},"
		      " s:[{s:s, s:s, s:s}]}",
		"id", json_object_get(t, "contact_id"), "at", (json_int_t)util_time_ms(), "actor",
		actor, "scope", "all", 1, "timer_done", json_object_get(t, "id"), "transition",
		register_transition_json(REGISTER_ESCALATE, reason), "task", "department", to,
		"reason", reason != NULL ? reason : "", "set", "department", to, "organisation",
		dep->organisation, "history", "actor", actor, "action", "reminder", "detail",
		"not handled in time; escalated by a reminder"));
}

/*
 * The rules decide what a plain reminder or a passed deadline does: the
 * timer goes to them as an event, and their action comes back settled.
 */
static void
timers_hand_to_rules(struct loketd *d, json_t *t)
{
	struct events_event ev = { 0 };

	ev.pub.kind = (enum loket_event_kind)EVENTS_TIMER_DUE;
	ev.pub.name = "timer.due";
	ev.pub.at = util_time_ms();
	ev.pub.contact_id = json_integer_value(json_object_get(t, "contact_id"));
	ev.pub.task_id = json_integer_value(json_object_get(t, "task_id"));
	ev.pub.json = "{}";
	ev.detail = t;
	ev.timer_id = json_integer_value(json_object_get(t, "id"));
	events_publish(d->events, &ev);
}

static void
timers_fire_one(struct loketd *d, json_t *t)
{
	const char *kind = json_string_value(json_object_get(t, "kind"));
	const char *status = json_string_value(json_object_get(t, "contact_status"));
	json_t *payload = json_object_get(t, "payload");
	json_int_t id = json_integer_value(json_object_get(t, "id"));
	char key[32];

	snprintf(key, sizeof(key), "%lld", (long long)id);
	/* Fired already and not settled (its action is still being written): not twice. */
	if (json_object_get(d->timers_inflight, key) != NULL)
		return;
	json_object_set_new(d->timers_inflight, key, json_true());
	d->timers_busy++;
	if (strcmp(kind, "overdue") == 0) {
		const char *task_status = json_string_value(json_object_get(t, "task_status"));

		if (task_status == NULL || strcmp(task_status, "open") != 0) {
			timers_finish(d, id);
			return;
		}
		metrics_add(metrics_series(d->metrics, METRIC_COUNTER, "loket_tasks_overdue_total",
				"Tasks still open at their due time.", "", NULL, 0),
		    1);
		log_info("timers", "task overdue contact=%lld",
		    (long long)json_integer_value(json_object_get(t, "contact_id")));
		timers_hand_to_rules(d, t);
		return;
	}
	if (timers_unless(json_string_value(json_object_get(payload, "unless")), status)) {
		timers_finish(d, id);
		return;
	}
	if (json_object_get(payload, "escalate") != NULL) {
		if (status == NULL || strcmp(status, "open") != 0) {
			timers_finish(d, id);
			return;
		}
		timers_remind_escalate(d, t, payload);
		return;
	}
	timers_hand_to_rules(d, t);
}

static void
timers_due_cb(struct store_req *sr, void *arg)
{
	struct loketd *d = arg;
	json_t *items, *t;
	size_t i;

	d->timers_busy--;
	if (sr->result != STORE_OK) {
		log_warnx("timers", "cannot read due timers: %s", sr->error);
		return;
	}
	items = json_object_get(sr->out, "items");
	d->timers_busy++; /* held while the batch is handed out */
	json_array_foreach(items, i, t)
		timers_fire_one(d, t);
	metrics_add(metrics_series(d->metrics, METRIC_COUNTER, "loket_timers_fired_total",
			"Durable timers that came due.", "", NULL, 0),
	    (double)json_array_size(items));
	timers_settled(d);
}

static void
timers_fire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loketd *d = arg;
	struct store_req *sr;

	d->timer_armed_ms = 0;
	/* A batch still settling re-reads when it is through. */
	if (d->timers_busy > 0)
		return;
	sr = store_req_new(STORE_TIMERS_DUE,
	    json_pack("{s:I, s:i}", "now", (json_int_t)util_time_ms(), "limit", TIMERS_BATCH),
	    timers_due_cb, d);
	if (sr == NULL)
		return;
	d->timers_busy++;
	store_submit(d->store, sr);
}

int
timers_init(struct loketd *d)
{
	if ((d->timers_inflight = json_object()) == NULL ||
	    (d->timer_ev = evtimer_new(d->base, timers_fire_cb, d)) == NULL ||
	    events_subscribe(d->events, EVENTS_PUBLIC | EVENTS_TIMER_SETTLED, timers_event_cb, d,
		NULL) < 0)
		return -1;
	timers_rearm(d);
	return 0;
}

void
timers_free(struct loketd *d)
{
	events_unsubscribe(d->events, timers_event_cb, d, NULL);
	if (d->timer_ev != NULL)
		event_free(d->timer_ev);
	d->timer_ev = NULL;
	json_decref(d->timers_inflight);
	d->timers_inflight = NULL;
}
