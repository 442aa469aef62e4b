/*
 * rules.c: the Lua rules engine's door: load a rules folder, run an
 * event's handlers on a contact, hand back their decisions as JSON.
 * Each handler runs under its own limits; a failing one is skipped and
 * named. The parts live beside it: the memory cap
 * (rules_alloc.c), the instruction, time and work limits (rules_guard.c),
 * the sandbox (rules_sandbox.c), the loket library (rules_loket.c), reading
 * rule files (rules_load.c), the JSON bridge (rules_json.c) and the contact
 * object with its decisions (rules_contact.c). Rules decide; they never
 * write: the decisions come back as JSON and the register stores them.
 */
#include "config.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "rules_int.h"
#include "util.h"

const char *const rules_events[RULES_NEVENTS + 1] = { "contact", "reply", "escalated",
	"resolved", "closed", "reopened", "overdue", "missed_call", "reminder", NULL };

static const char *const rules_result_names[RULES_RESULT_COUNT] = {
	[RULES_OK] = "ok",
	[RULES_ERROR] = "error",
	[RULES_BUDGET] = "budget",
	[RULES_TIMEOUT] = "timeout",
	[RULES_MEMORY] = "memory",
	[RULES_ERRERR] = "error_in_error_handler",
};

const char *
rules_result_name(enum rules_result result)
{
	return result < RULES_RESULT_COUNT ? rules_result_names[result] : "?";
}

int
rules_event_known(const char *event)
{
	for (size_t i = 0; rules_events[i] != NULL; i++)
		if (strcmp(rules_events[i], event) == 0)
			return 1;
	return 0;
}

static int
rules_handler_cmp(const void *a, const void *b)
{
	const struct rules_handler *x = a, *y = b;

	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int rules_event_index(const char *event);

int
rules_load(const char *dir, const struct rules_limits *limits, const struct rules_host *host,
    struct rules **rules_r, const char **error_r)
{
	struct rules *r = calloc(1, sizeof(*r));

	*rules_r = NULL;
	*error_r = NULL;
	if (r == NULL || (r->dir = strdup(dir)) == NULL)
		goto nomem;
	r->limits = *limits;
	r->host = *host;
	r->now_ms = util_time_ms();
	if ((r->L = lua_newstate(rules_alloc, r)) == NULL)
		goto nomem;
	*(struct rules **)lua_getextraspace(r->L) = r;
	rules_sandbox_open(r);
	rules_contact_setup(r->L);
	if (rules_load_folder(r, error_r) < 0)
		goto fail;
	/* A folder without rules has no handlers array: qsort must not see NULL. */
	if (r->nhandlers > 0)
		qsort(r->handlers, r->nhandlers, sizeof(*r->handlers), rules_handler_cmp);
	for (int e = 0; e < RULES_NEVENTS; e++) {
		if ((r->by_event[e] = calloc(r->nhandlers + 1, sizeof(size_t))) == NULL)
			goto nomem;
		for (size_t i = 0; i < r->nhandlers; i++)
			if (strcmp(r->handlers[i].event, rules_events[e]) == 0)
				r->by_event[e][r->nby_event[e]++] = i;
		/* A run walks only the handlers its contact's channel lets through. */
		for (int c = 0; c <= r->nchannels; c++) {
			size_t *list = calloc(r->nby_event[e] + 1, sizeof(size_t));

			if ((r->by_channel[e][c] = list) == NULL)
				goto nomem;
			for (size_t k = 0; k < r->nby_event[e]; k++) {
				const struct rules_handler *h = &r->handlers[r->by_event[e][k]];

				if (h->channels == 0 || (c > 0 && (h->channels & (1u << (c - 1))) != 0))
					list[r->nby_channel[e][c]++] = r->by_event[e][k];
			}
		}
	}
	lua_gc(r->L, LUA_GCCOLLECT);
	*rules_r = r;
	return 0;
nomem:
	if (*error_r == NULL)
		*error_r = util_error("%s: out of memory loading the rules", dir);
fail:
	rules_free(r);
	return -1;
}

void
rules_free(struct rules *r)
{
	if (r == NULL)
		return;
	if (r->L != NULL)
		lua_close(r->L);
	rules_alloc_free_slabs(r);
	for (size_t i = 0; i < r->nhandlers; i++) {
		free(r->handlers[i].event);
		free(r->handlers[i].where);
	}
	free(r->handlers);
	for (int e = 0; e < RULES_NEVENTS; e++) {
		free(r->by_event[e]);
		for (int c = 0; c <= RULES_CHANNELS_MAX; c++)
			free(r->by_channel[e][c]);
	}
	for (int i = 0; i < r->nchannels; i++)
		free(r->channels[i]);
	for (size_t i = 0; i < r->nfiles; i++)
		free(r->files[i]);
	free(r->files);
	free(r->dir);
	free(r);
}

size_t
rules_handler_count(const struct rules *r, const char *event)
{
	int ev = rules_event_index(event);

	return r != NULL && ev >= 0 ? r->nby_event[ev] : 0;
}

static void
rules_count(struct rules *r, struct rules_handler *h, enum rules_result res)
{
	if (r->trying)
		return;
	if (r->host.count != NULL)
		r->host.count(r->host.arg, h->where, res, &h->counter[res]);
	/* The ticks of this call: rules_guard_begin zeroes them per handler. */
	if (r->host.cost != NULL)
		r->host.cost(r->host.arg, h->where, r->ticks * RULES_HOOK_EVERY, &h->cost);
}

/*
 * Calls the run's handlers from run_pos on, each with a fresh budget, all in
 * the one protected call of rules_run; a handler that fails ends this call
 * with run_pos still on it, and rules_run resumes after it.
 */
static int
rules_l_dispatch(lua_State *L)
{
	struct rules *r = rules_of(L);

	for (; r->run_pos < r->run_n; r->run_pos++) {
		struct rules_handler *h = &r->handlers[r->run_list[r->run_pos]];

		r->current = h->where;
		r->run_before = json_array_size(r->decisions);
		rules_guard_begin(r, r->limits.instructions);
		lua_rawgeti(L, LUA_REGISTRYINDEX, h->ref);
		lua_pushvalue(L, 1);
		lua_pushvalue(L, 2);
		lua_call(L, 2, 0);
		rules_count(r, h, RULES_OK);
	}
	return 0;
}

const char *
rules_event_name(int i)
{
	return i >= 0 && i < RULES_NEVENTS ? rules_events[i] : NULL;
}

static int
rules_event_index(const char *event)
{
	for (int i = 0; i < RULES_NEVENTS; i++)
		if (strcmp(rules_events[i], event) == 0)
			return i;
	return -1;
}

/* The contact's channel as an index of by_channel: 0 when no handler filter names it. */
static int
rules_channel_of(const struct rules *r, json_t *contact)
{
	const char *channel;

	if (r->nchannels == 0)
		return 0;
	channel = json_string_value(json_object_get(contact, "channel"));
	for (int i = 0; channel != NULL && i < r->nchannels; i++)
		if (strcmp(r->channels[i], channel) == 0)
			return i + 1;
	return 0;
}

json_t *
rules_run(struct rules *r, const char *event, json_t *contact, json_t *extra, int64_t now_ms)
{
	lua_State *L = r->L;
	json_t *out;
	int top = lua_gettop(L), ev = rules_event_index(event), ch;

	if ((out = json_array()) == NULL || ev < 0 || r->nby_event[ev] == 0)
		return out;
	r->now_ms = now_ms;
	r->run_event = ev;
	ch = rules_channel_of(r, contact);
	r->run_list = r->by_channel[ev][ch];
	r->run_n = r->nby_channel[ev][ch];
	r->run_pos = 0;
	/* A contact every handler's filter passes by costs no contact object. */
	if (r->run_n == 0)
		return out;
	r->decisions = out;
	lua_pushcfunction(L, rules_guard_msgh);	/* top + 1 */
	lua_pushcfunction(L, rules_l_dispatch); /* top + 2 */
	rules_contact_push(r, contact);		/* top + 3 */
	if (extra != NULL)			/* top + 4 */
		rules_json_push(L, extra, 0);
	else
		lua_pushnil(L);
	while (r->run_pos < r->run_n) {
		struct rules_handler *h;
		enum rules_result res;
		const char *msg;
		char clean[RULES_MESSAGE_MAX + 1];
		json_t *failed;
		int rc;

		lua_pushvalue(L, top + 2);
		lua_pushvalue(L, top + 3);
		lua_pushvalue(L, top + 4);
		/*
		 * One armed hook for all the handlers up to a failure (a failure
		 * leaves it firing on every instruction): setting it is not free.
		 */
		rules_guard_arm(r, r->limits.instructions);
		rc = lua_pcall(L, 2, 0, top + 1);
		rules_guard_disarm(r);
		if (rc == LUA_OK)
			break;
		/* A failed handler is skipped whole: what it decided before failing is dropped. */
		h = &r->handlers[r->run_list[r->run_pos]];
		res = rules_guard_outcome(r, rc);
		rules_count(r, h, res);
		msg = lua_tostring(L, -1);
		while (json_array_size(out) > r->run_before)
			json_array_remove(out, json_array_size(out) - 1);
		failed = rules_contact_decide(r, "failed");
		json_object_set_new(failed, "rule", json_string(h->where));
		json_object_set_new(failed, "result", json_string(rules_result_name(res)));
		rules_contact_decide_str(failed, "message", rules_loket_clean_message(clean, msg != NULL ? msg : "?"));
		lua_pop(L, 1); /* the message */
		r->run_pos++;
	}
	r->current = NULL;
	r->run_contact = NULL;
	r->decisions = NULL;
	r->run_data = NULL;
	/* Garbage is left to the collector's own pace; at the cap it runs in full first. */
	lua_settop(L, top);
	return out;
}

json_t *
rules_run_try(struct rules *r, const char *event, json_t *contact, json_t *extra,
    int64_t now_ms, void (*log)(void *arg, const char *rule, const char *msg), void *log_arg)
{
	json_t *out;

	r->trying = 1;
	r->try_log = log;
	r->try_log_arg = log_arg;
	out = rules_run(r, event, contact, extra, now_ms);
	r->try_log = NULL;
	r->try_log_arg = NULL;
	r->trying = 0;
	return out;
}

static const char *
rules_basename(const char *where, size_t *len_r)
{
	const char *colon = strrchr(where, ':');

	*len_r = colon != NULL ? (size_t)(colon - where) : strlen(where);
	return where;
}

json_t *
rules_describe(const struct rules *r,
    void (*each)(void *arg, json_t *handler, void *const *count_cache, void *cost_cache),
    void *arg)
{
	json_t *files = json_array(), *handlers = json_array();

	for (int e = 0; e < RULES_NEVENTS; e++)
		for (size_t k = 0; k < r->nby_event[e]; k++) {
			const struct rules_handler *h = &r->handlers[r->by_event[e][k]];
			json_t *channels = json_null(), *one;
			const char *colon = strrchr(h->where, ':');
			size_t flen;
			const char *file = rules_basename(h->where, &flen);

			if (h->channels != 0) {
				channels = json_array();
				for (int c = 0; c < r->nchannels; c++)
					if ((h->channels & (1u << c)) != 0)
						json_array_append_new(channels,
						    json_string(r->channels[c]));
			}
			one = json_pack("{s:s, s:s, s:s%, s:I, s:o, s:i}", "event", h->event,
			    "rule", h->where, "file", file, flen, "line",
			    (json_int_t)(colon != NULL ? atoll(colon + 1) : 0), "channels", channels,
			    "priority", h->priority);
			if (one == NULL)
				continue;
			if (each != NULL)
				each(arg, one, h->counter, h->cost);
			json_array_append_new(handlers, one);
		}
	for (size_t i = 0; i < r->nfiles; i++)
		json_array_append_new(files, json_string(r->files[i]));
	return json_pack("{s:s, s:o, s:o}", "dir", r->dir, "files", files, "handlers", handlers);
}
