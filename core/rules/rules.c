/*
 * rules.c: the Lua rules engine: one sandboxed state, handlers per event,
 * and the decisions they take, handed back as JSON for the register to apply.
 *
 * Three guards keep a rule from hurting the daemon (as HAProxy does for its
 * Lua): a counting allocator caps the state's memory, a count hook ends a
 * call that runs over its instruction budget or wall-clock limit, and every
 * call runs under a protected call whose outcome has a name. Rules see only
 * base, string, table, math, utf8 and os.time/os.date; the shared libraries
 * are read-only, each rule file has its own globals, and code is loaded as
 * text only. Rules decide; they never write: the decisions come back as
 * JSON and the register stores them with the contact.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "calendar.h"
#include "catalogue.h"
#include "register.h"
#include "rules.h"
#include "util.h"

#define RULES_HOOK_EVERY 1000
/* Lua's small blocks (strings, tables, closures) come from slabs of the state's own. */
#define RULES_POOL_STEP 16
#define RULES_POOL_MAX 256
#define RULES_POOL_CLASSES (RULES_POOL_MAX / RULES_POOL_STEP)
#define RULES_SLAB_SIZE (128 * 1024)
#define RULES_FILE_MAX (1024 * 1024)
#define RULES_JSON_DEPTH 16
/* What a rule may hand to the register: the longest texts, and labels (names, durations). */
#define RULES_REASON_MAX 1000
#define RULES_ANSWER_MAX 10000
#define RULES_LABEL_MAX 64
/* A failure's message as kept in the decision, and what loket.log writes. */
#define RULES_MESSAGE_MAX 500
#define RULES_LOG_PER_CALL 20
/* Decisions one handler call may make: far more than a rule needs, far less than a loop makes. */
#define RULES_DECISIONS_PER_CALL 100
/* Guarded library functions that keep their last result during a run (lower, upper). */
#define RULES_MEMO_MAX 2

struct rules_handler {
	char *event;
	char *where; /* "routing.lua:12" */
	int ref;     /* the function, in the registry */
	int priority;
	size_t order;
	void *counter[RULES_RESULT_COUNT]; /* the host's, per outcome (rules_host.count) */
};

#define RULES_NEVENTS 9

struct rules_slab {
	struct rules_slab *next;
	size_t used;
	_Alignas(16) unsigned char mem[];
};

struct rules {
	lua_State *L;
	void *pool[RULES_POOL_CLASSES]; /* free blocks per size class, linked through their first word */
	struct rules_slab *slabs;
	struct rules_limits limits;
	struct rules_host host;
	char *dir;
	size_t mem;
	int oom;
	enum rules_result stop; /* set by a guard; RULES_OK while running normally */
	uint64_t ticks;
	uint64_t budget; /* instructions the running call may take */
	double work; /* C work charged by the guards during this handler call */
	unsigned int guard_calls;
	int memo_ref[RULES_MEMO_MAX]; /* the guards that keep a run's last result */
	int nmemo;
	int memo_dirty; /* one of them holds strings of the running call */
	int armed;	      /* a guarded call runs */
	uint64_t deadline_ns; /* of the running call; 0 until its first check */
	int loading;
	int64_t now_ms;
	const char *current; /* the handler running now, for decisions and logs */
	struct rules_handler *handlers;
	size_t nhandlers;
	/* Per event (rules_events order): the handlers' indexes, in running order. */
	size_t *by_event[RULES_NEVENTS];
	size_t nby_event[RULES_NEVENTS];
	/* The run in progress: its handlers, the one running, its decisions. */
	const size_t *run_list;
	size_t run_n, run_pos;
	json_t *decisions; /* of the run, in the order the handlers ran */
	size_t run_before;  /* how many there were when the running handler began */
	json_t *run_contact;  /* what lazy reads of the contact come from; NULL after the run */
	int run_data_ref;     /* the run's contact data table, in the registry */
	unsigned int run_nils; /* writable fields a rule set to nil (bit per rules_writable) */
	unsigned int log_lines; /* loket.log lines of the running handler call */
	int run_event;		/* the run's event, its index in rules_events */
};

static const char *const rules_events[RULES_NEVENTS + 1] = { "contact", "reply", "escalated",
	"resolved", "closed", "reopened", "overdue", "missed_call", "reminder", NULL };

static const char *const rules_result_names[RULES_RESULT_COUNT] = {
	[RULES_OK] = "ok",
	[RULES_ERROR] = "error",
	[RULES_BUDGET] = "budget",
	[RULES_TIMEOUT] = "timeout",
	[RULES_MEMORY] = "memory",
	[RULES_ERRERR] = "error_in_error_handler",
};

/* Keys for the registry and metatables: their addresses are unique. */
static const char rules_key_base = 'b';
static const char rules_key_modules = 'm';
static const char rules_key_contact_mt = 'c';
static const char rules_key_data_mt = 'd';

const char *
rules_result_name(enum rules_result result)
{
	return result < RULES_RESULT_COUNT ? rules_result_names[result] : "?";
}

/* The engine of a state, kept in the state's extra space: every guarded call asks for it. */
static struct rules *
rules_of(lua_State *L)
{
	return *(struct rules **)lua_getextraspace(L);
}

/*
 * Small blocks by size class from the state's slabs: a rule's objects sit
 * together instead of among the daemon's, which keeps a run's working set in
 * fewer cache lines, and freeing one is a push on a list. Freed blocks serve
 * the state again; slabs go back with the state.
 */
static void *
rules_pool_get(struct rules *r, size_t cls)
{
	size_t size = (cls + 1) * RULES_POOL_STEP;
	struct rules_slab *slab = r->slabs;
	void *p = r->pool[cls];

	if (p != NULL) {
		r->pool[cls] = *(void **)p;
		return p;
	}
	if (slab == NULL || slab->used + size > RULES_SLAB_SIZE) {
		if ((slab = malloc(sizeof(*slab) + RULES_SLAB_SIZE)) == NULL)
			return NULL;
		slab->next = r->slabs;
		slab->used = 0;
		r->slabs = slab;
	}
	p = slab->mem + slab->used;
	slab->used += size;
	return p;
}

static void *
rules_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct rules *r = ud;
	size_t old = ptr != NULL ? osize : 0;
	/* Size classes: 1..16 bytes is class 0, 241..256 class 15; larger blocks go to malloc. */
	size_t ocls = old > 0 && old <= RULES_POOL_MAX ? (old - 1) / RULES_POOL_STEP : SIZE_MAX;
	size_t ncls = nsize > 0 && nsize <= RULES_POOL_MAX ? (nsize - 1) / RULES_POOL_STEP : SIZE_MAX;
	void *p;

	if (nsize == 0) {
		if (ptr != NULL && ocls != SIZE_MAX) {
			*(void **)ptr = r->pool[ocls];
			r->pool[ocls] = ptr;
		} else {
			free(ptr);
		}
		r->mem -= old;
		return NULL;
	}
	if (nsize > old && r->mem - old + nsize > r->limits.memory) {
		r->oom = 1;
		return NULL;
	}
	if (ptr != NULL && ocls == ncls && ocls != SIZE_MAX) {
		p = ptr;
	} else if (ncls == SIZE_MAX && (ptr == NULL || ocls == SIZE_MAX)) {
		p = realloc(ptr, nsize);
	} else {
		p = ncls != SIZE_MAX ? rules_pool_get(r, ncls) : malloc(nsize);
		if (p != NULL && ptr != NULL) {
			memcpy(p, ptr, old < nsize ? old : nsize);
			rules_alloc(ud, ptr, osize, 0);
			r->mem += old; /* the free above took it off; the line below counts the move */
		}
	}
	if (p != NULL)
		r->mem = r->mem - old + nsize;
	return p;
}

static void rules_stop(lua_State *L, struct rules *r, enum rules_result why, const char *what);

/*
 * The wall-clock limit of a call counts from its first check (the first
 * hook tick or the 16th guarded call), not from the call itself: most
 * handlers end before either, and so never read the clock. Until then a call
 * has done at most RULES_HOOK_EVERY instructions and 15 guarded calls.
 */
static int
rules_past_deadline(struct rules *r)
{
	uint64_t now = util_now_ns();

	if (r->deadline_ns == 0) {
		r->deadline_ns = now + r->limits.wall_ms * 1000000;
		return 0;
	}
	return now > r->deadline_ns;
}

static void
rules_hook(lua_State *L, lua_Debug *ar)
{
	struct rules *r = rules_of(L);

	(void)ar;
	if (r->stop == RULES_OK) {
		r->ticks++;
		/*
		 * The count runs on across a run's handlers, so a handler's first
		 * tick can come after 1 to RULES_HOOK_EVERY of its instructions:
		 * after n ticks it has run more than (n - 1) * RULES_HOOK_EVERY.
		 */
		if (r->oom)
			r->stop = RULES_MEMORY;
		else if ((r->ticks - 1) * RULES_HOOK_EVERY >= r->budget)
			r->stop = RULES_BUDGET;
		else if (rules_past_deadline(r))
			r->stop = RULES_TIMEOUT;
	}
	if (r->stop != RULES_OK)
		rules_stop(L, r, r->stop,
		    r->stop == RULES_BUDGET	 ? "instruction budget exceeded" :
			r->stop == RULES_TIMEOUT ? "wall-clock limit exceeded" :
						   "memory cap exceeded");
}

/*
 * Ends the handler: from now on every instruction fails, so a pcall inside
 * the rule cannot hold on. The message names the rule's file:line.
 */
static void
rules_stop(lua_State *L, struct rules *r, enum rules_result why, const char *what)
{
	lua_Debug ar;
	int level = 0;

	r->stop = why;
	lua_sethook(L, rules_hook, LUA_MASKCOUNT, 1);
	/* The innermost Lua function is where the rule was. */
	while (lua_getstack(L, level, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline < 0)
		level++;
	/* lua_error, not luaL_error: the position is already in the message. */
	if (lua_getstack(L, level, &ar) && ar.currentline >= 0)
		lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, what);
	else
		lua_pushstring(L, what);
	lua_error(L);
}

/*
 * Fresh limits for the next call of budget instructions (and the wall-clock
 * limit) under a hook that is armed already: a run arms the hook once and
 * each handler starts here, without touching the hook.
 */
static void
rules_begin(struct rules *r, uint64_t budget)
{
	r->stop = RULES_OK;
	r->oom = 0;
	r->ticks = 0;
	r->work = 0;
	r->budget = budget;
	r->deadline_ns = 0;
	r->log_lines = 0;
}

/* Arms the count hook, and the guards for one call of budget instructions. */
static void
rules_arm(struct rules *r, uint64_t budget)
{
	rules_begin(r, budget);
	r->armed = 1;
	lua_sethook(r->L, rules_hook, LUA_MASKCOUNT, RULES_HOOK_EVERY);
}

static void rules_memo_clear(struct rules *r);

static void
rules_disarm(struct rules *r)
{
	lua_sethook(r->L, NULL, 0, 0);
	r->armed = 0;
	r->deadline_ns = 0;
	rules_memo_clear(r);
}

/* The name of how a protected call ended. */
static enum rules_result
rules_outcome(struct rules *r, int rc)
{
	if (rc == LUA_OK)
		return RULES_OK;
	if (r->stop != RULES_OK)
		return r->stop;
	if (rc == LUA_ERRMEM || r->oom)
		return RULES_MEMORY;
	if (rc == LUA_ERRERR)
		return RULES_ERRERR;
	return RULES_ERROR;
}

static int
rules_msgh(lua_State *L)
{
	/* Keep the message as it is: it already names file:line. */
	if (!lua_isstring(L, 1))
		lua_pushstring(L, "error object is not a string");
	return 1;
}

/* Runs the function on top of the stack with nargs under the guards; names the outcome. */
static enum rules_result
rules_pcall(struct rules *r, int nargs, uint64_t budget, const char **msg_r)
{
	lua_State *L = r->L;
	int base = lua_gettop(L) - nargs, rc;

	lua_pushcfunction(L, rules_msgh);
	lua_insert(L, base);
	rules_arm(r, budget);
	rc = lua_pcall(L, nargs, 0, base);
	rules_disarm(r);
	*msg_r = NULL;
	if (rc != LUA_OK) {
		*msg_r = lua_tostring(L, -1);
		lua_pushvalue(L, -1);
		lua_replace(L, base); /* keep the message alive below the popped area */
		lua_settop(L, base);
	} else {
		lua_settop(L, base - 1);
	}
	return rules_outcome(r, rc);
}

static int
rules_readonly_newindex(lua_State *L)
{
	return luaL_error(L, "attempt to change a read-only table");
}

/*
 * The iterator pairs() hands out for a proxy: next() over the table behind it, which only
 * this closure holds (upvalue 1). It answers keys and values, whatever state it is given.
 */
static int
rules_readonly_next(lua_State *L)
{
	lua_settop(L, 2);
	if (lua_next(L, lua_upvalueindex(1)) == 0) {
		lua_pushnil(L);
		return 1;
	}
	return 2;
}

/*
 * pairs() on a proxy walks the table behind it. The usual (next, table, nil) would hand
 * that table to the rule, to change for every rule and contact; the state handed out here
 * is the proxy itself.
 */
static int
rules_readonly_pairs(lua_State *L)
{
	lua_getmetatable(L, 1);
	lua_getfield(L, -1, "__index");
	lua_pushcclosure(L, rules_readonly_next, 1);
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	return 3;
}

static int
rules_readonly_len(lua_State *L)
{
	lua_getmetatable(L, 1);
	lua_getfield(L, -1, "__index");
	lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
	return 1;
}

/* Replaces the table at idx by an empty read-only proxy in front of it. */
static void
rules_readonly(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	lua_newtable(L);
	lua_newtable(L);
	lua_pushvalue(L, idx);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, rules_readonly_newindex);
	lua_setfield(L, -2, "__newindex");
	lua_pushcfunction(L, rules_readonly_pairs);
	lua_setfield(L, -2, "__pairs");
	lua_pushcfunction(L, rules_readonly_len);
	lua_setfield(L, -2, "__len");
	lua_pushliteral(L, "read-only");
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	lua_replace(L, idx);
}

int
rules_event_known(const char *event)
{
	for (size_t i = 0; rules_events[i] != NULL; i++)
		if (strcmp(rules_events[i], event) == 0)
			return 1;
	return 0;
}

/* loket.on(event, fn [, {priority = N}]) */
static int
rules_l_on(lua_State *L)
{
	struct rules *r = rules_of(L);
	const char *event = luaL_checkstring(L, 1);
	struct rules_handler *h;
	lua_Debug ar;
	char where[256];
	int priority = 0;

	luaL_checktype(L, 2, LUA_TFUNCTION);
	if (!r->loading)
		return luaL_error(L, "loket.on: handlers are registered when a rule file loads, not "
				     "while rules run");
	if (!rules_event_known(event))
		return luaL_error(L, "loket.on: unknown event '%s'; expected contact, reply, escalated, "
				     "resolved, closed, reopened, overdue, missed_call or reminder",
		    event);
	if (!lua_isnoneornil(L, 3)) {
		lua_Integer p;
		int exact;

		luaL_checktype(L, 3, LUA_TTABLE);
		/* A misspelt option would be ignored without a word: name it. */
		for (lua_pushnil(L); lua_next(L, 3) != 0; lua_pop(L, 1))
			if (lua_type(L, -2) != LUA_TSTRING || strcmp(lua_tostring(L, -2), "priority") != 0)
				return luaL_error(L, "loket.on: unknown option '%s'; the one option is "
						     "priority",
				    lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?");
		lua_getfield(L, 3, "priority");
		p = lua_tointegerx(L, -1, &exact);
		if (!lua_isnil(L, -1) && (!exact || p < -1000000 || p > 1000000))
			return luaL_error(L, "loket.on: priority must be a whole number (higher runs "
					     "first)");
		priority = (int)p;
		lua_pop(L, 1);
	}
	lua_pushvalue(L, 2);
	lua_getinfo(L, ">S", &ar);
	snprintf(where, sizeof(where), "%s:%d", ar.short_src, ar.linedefined);
	h = realloc(r->handlers, (r->nhandlers + 1) * sizeof(*h));
	if (h == NULL)
		return luaL_error(L, "out of memory");
	r->handlers = h;
	h = &h[r->nhandlers];
	memset(h, 0, sizeof(*h));
	h->event = strdup(event);
	h->where = strdup(where);
	h->priority = priority;
	h->order = r->nhandlers;
	lua_pushvalue(L, 2);
	h->ref = luaL_ref(L, LUA_REGISTRYINDEX);
	if (h->event == NULL || h->where == NULL) {
		free(h->event);
		free(h->where);
		return luaL_error(L, "out of memory");
	}
	r->nhandlers++;
	return 0;
}

/*
 * Copies msg into buf (of RULES_MESSAGE_MAX + 1 bytes), cut on a character
 * boundary; control characters become spaces and, when the result is not
 * UTF-8 (a rule's own bytes), so does every non-ASCII byte.
 */
static const char *
rules_clean_message(char *buf, const char *msg)
{
	size_t n = strlen(msg);
	json_t *probe;

	if (n > RULES_MESSAGE_MAX) {
		n = RULES_MESSAGE_MAX;
		while (n > 0 && ((unsigned char)msg[n] & 0xc0) == 0x80)
			n--;
	}
	for (size_t i = 0; i < n; i++)
		buf[i] = (unsigned char)msg[i] < 0x20 || msg[i] == 0x7f ? ' ' : msg[i];
	buf[n] = '\0';
	if ((probe = json_stringn(buf, n)) == NULL)
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)buf[i] >= 0x80)
				buf[i] = '?';
	json_decref(probe);
	return buf;
}

/* loket.log(...): one line, at most RULES_LOG_PER_CALL of them per handler call. */
static int
rules_l_log(lua_State *L)
{
	struct rules *r = rules_of(L);
	const char *where = r->current != NULL ? r->current : "load";
	char clean[RULES_MESSAGE_MAX + 1];
	luaL_Buffer b;
	int n = lua_gettop(L);

	if (r->host.log == NULL || ++r->log_lines > RULES_LOG_PER_CALL + 1)
		return 0;
	if (r->log_lines == RULES_LOG_PER_CALL + 1) {
		r->host.log(r->host.arg, where, "(more loket.log lines in this call are left out)");
		return 0;
	}
	luaL_buffinit(L, &b);
	for (int i = 1; i <= n; i++) {
		if (i > 1)
			luaL_addchar(&b, ' ');
		luaL_tolstring(L, i, NULL);
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	r->host.log(r->host.arg, where, rules_clean_message(clean, lua_tostring(L, -1)));
	return 0;
}

/* os.time() without arguments is the rule clock, so a test can run rules at a chosen moment. */
static int
rules_l_time(lua_State *L)
{
	struct rules *r = rules_of(L);

	if (lua_isnoneornil(L, 1)) {
		lua_pushinteger(L, (lua_Integer)(r->now_ms / 1000));
		return 1;
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

/* loket.classify(text): the catalogue product one of whose keywords is a word of text, or nil. */
static int
rules_l_classify(lua_State *L)
{
	struct rules *r = rules_of(L);
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);
	const struct catalogue *cat = r->host.catalogue != NULL ? r->host.catalogue(r->host.arg) : NULL;
	const struct catalogue_product *p;

	r->work += (double)len * (cat != NULL ? (double)cat->nproducts : 0);
	p = cat != NULL ? catalogue_match(cat, text) : NULL;
	if (p == NULL)
		lua_pushnil(L);
	else
		lua_pushstring(L, p->code);
	return 1;
}

static int
rules_l_now(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)(rules_of(L)->now_ms / 1000));
	return 1;
}

static const struct calendar *
rules_check_calendar(lua_State *L, int idx)
{
	struct rules *r = rules_of(L);
	const struct calendar *cal;
	const char *unit;

	luaL_checktype(L, idx, LUA_TTABLE);
	lua_getfield(L, idx, "unit");
	unit = lua_tostring(L, -1);
	lua_pop(L, 1);
	cal = r->host.calendar != NULL && unit != NULL ? r->host.calendar(r->host.arg, unit) : NULL;
	if (cal == NULL)
		luaL_error(L, "no calendar for '%s'", unit != NULL ? unit : "?");
	return cal;
}

static lua_Integer
rules_check_duration_add(lua_State *L, const struct calendar *cal, lua_Integer t, const char *dur)
{
	struct calendar_duration d;
	const char *why = NULL;
	time_t due;

	if (calendar_parse_duration(dur, &d, &why) < 0)
		luaL_error(L, "duration '%s': %s", dur, why != NULL ? why : "not a duration");
	due = calendar_add(cal, (time_t)t, &d);
	if (due == (time_t)-1)
		luaL_error(L, "the calendar has no open time for '%s'", dur);
	return (lua_Integer)due;
}

/* cal:add(t, "4h") -> the moment 4 open hours after t */
static int
rules_l_cal_add(lua_State *L)
{
	const struct calendar *cal = rules_check_calendar(L, 1);

	lua_pushinteger(L, rules_check_duration_add(L, cal, luaL_checkinteger(L, 2),
			       luaL_checkstring(L, 3)));
	return 1;
}

static int
rules_l_cal_is_open(lua_State *L)
{
	const struct calendar *cal = rules_check_calendar(L, 1);

	lua_pushboolean(L, calendar_is_open(cal, (time_t)luaL_optinteger(L, 2,
						     (lua_Integer)(rules_of(L)->now_ms / 1000))));
	return 1;
}

/* loket.calendar(unit) -> an object with :add and :is_open */
static int
rules_l_calendar(lua_State *L)
{
	struct rules *r = rules_of(L);
	const char *unit = luaL_checkstring(L, 1);

	if (r->host.calendar == NULL || r->host.calendar(r->host.arg, unit) == NULL)
		return luaL_error(L, "loket.calendar: no department or organisation '%s'", unit);
	lua_newtable(L);
	lua_pushstring(L, unit);
	lua_setfield(L, -2, "unit");
	lua_pushcfunction(L, rules_l_cal_add);
	lua_setfield(L, -2, "add");
	lua_pushcfunction(L, rules_l_cal_is_open);
	lua_setfield(L, -2, "is_open");
	return 1;
}

/* The catalogue as read-only tables keyed by product code. */
static void
rules_push_catalogue(lua_State *L, const struct catalogue *cat)
{
	lua_newtable(L);
	for (size_t i = 0; cat != NULL && i < cat->nproducts; i++) {
		const struct catalogue_product *p = &cat->products[i];

		lua_newtable(L);
		lua_pushstring(L, p->code);
		lua_setfield(L, -2, "code");
		lua_pushstring(L, p->name);
		lua_setfield(L, -2, "name");
		lua_pushinteger(L, p->line);
		lua_setfield(L, -2, "line");
		if (p->department != NULL && p->department[0] != '\0') {
			lua_pushstring(L, p->department);
			lua_setfield(L, -2, "department");
		}
		lua_pushstring(L, p->organisation);
		lua_setfield(L, -2, "organisation");
		if (p->service_time != NULL && p->service_time[0] != '\0') {
			lua_pushstring(L, p->service_time);
			lua_setfield(L, -2, "service_time");
		}
		lua_pushboolean(L, p->appointment);
		lua_setfield(L, -2, "appointment");
		lua_pushboolean(L, p->digital);
		lua_setfield(L, -2, "digital");
		lua_newtable(L);
		for (size_t k = 0; k < p->nkeywords; k++) {
			lua_pushstring(L, p->keywords[k]);
			lua_rawseti(L, -2, (lua_Integer)k + 1);
		}
		rules_readonly(L, -1);
		lua_setfield(L, -2, "keywords");
		rules_readonly(L, -1);
		lua_setfield(L, -2, p->code);
	}
	rules_readonly(L, -1);
}

/* require(name): another file of the rules folder, loaded once, as text. */
static int rules_load_file(struct rules *r, const char *name, int nresults, char **error_r);

static int
rules_l_require(lua_State *L)
{
	struct rules *r = rules_of(L);
	const char *name = luaL_checkstring(L, 1);
	char *err = NULL;

	if (name[0] == '\0' || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					    "0123456789_") != strlen(name))
		return luaL_error(L, "require '%s': only modules of the rules folder, by plain name",
		    name);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &rules_key_modules);
	if (lua_getfield(L, -1, name) != LUA_TNIL)
		return 1;
	lua_pop(L, 1);
	lua_pushfstring(L, "%s.lua", name);
	if (rules_load_file(r, lua_tostring(L, -1), 1, &err) < 0) {
		/* Prefixed with where the require is: the admin looks for file:line. */
		luaL_where(L, 1);
		lua_pushstring(L, err != NULL ? err : "cannot load the module");
		free(err);
		lua_concat(L, 2);
		return lua_error(L);
	}
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_pushboolean(L, 1);
	}
	lua_pushvalue(L, -1);
	lua_setfield(L, -4, name);
	return 1;
}

static void rules_push_env(lua_State *L);

/*
 * Library functions that loop in C run out of reach of the count hook: a
 * pattern with several repetitions over a long subject can backtrack for
 * minutes, string.rep("", 2^40) spins without allocating, table.move walks
 * any range. Each such function is wrapped: the wrapper checks the clock,
 * estimates the work the call can do (for a pattern: the subject length to
 * the power of its repetitions, balances and back-references, plus one when
 * unanchored), refuses a call that could not finish in time, and charges the
 * estimate to the handler's work budget so that many allowed calls in a row
 * stop too.
 */
#define RULES_WORK_CALL 5e7   /* the most one call may do */
#define RULES_WORK_HANDLER 2e8 /* the most all calls of one handler may do */

enum rules_guard_kind {
	GUARD_PATTERN,      /* find, match, gmatch, gsub */
	GUARD_PATTERN_FIND, /* find: a plain search (4th argument) is linear */
	GUARD_REP,
	GUARD_LINEAR, /* upper, lower, reverse, format, byte: the subject's length */
	GUARD_MOVE,
	GUARD_CONCAT,
};

static void rules_stop(lua_State *L, struct rules *r, enum rules_result why, const char *what);

static double
rules_pattern_cost(const char *pat, size_t plen, size_t n)
{
	int reps = 0, anchored = plen > 0 && pat[0] == '^';
	double cost = (double)(n + 1) * (double)(plen + 1);

	for (size_t i = 0; i < plen; i++) {
		if (pat[i] == '%' && i + 1 < plen) {
			i++;
			/* %b scans to the balance, %1 compares a capture: each a factor of n. */
			if (pat[i] == 'b' || (pat[i] >= '1' && pat[i] <= '9'))
				reps++;
		} else if (pat[i] == '[') {
			for (i++; i < plen && pat[i] != ']'; i++)
				if (pat[i] == '%')
					i++;
		} else if (i > 0 && (pat[i] == '*' || pat[i] == '+' || pat[i] == '-' ||
				       pat[i] == '?')) {
			reps++;
		}
	}
	for (int k = 0; k < reps + !anchored - 1 && cost <= 1e18; k++)
		cost *= (double)(n + 1);
	return cost;
}

/*
 * What a guard wraps, read with one lookup per call (upvalue 2 of its
 * closure; upvalue 1 is the library function).
 */
struct rules_guard {
	enum rules_guard_kind kind;
	/* The library function when it has no upvalues: it runs in the guard's frame. */
	lua_CFunction direct;
	/*
	 * A pure function of one string (lower, upper): the last argument and
	 * result of the run are upvalues 3 and 4. A run's handlers often lower
	 * the same subject, one after the other.
	 */
	int memo;
};

static int
rules_l_guard(lua_State *L)
{
	struct rules *r = rules_of(L);
	const struct rules_guard *g = lua_touserdata(L, lua_upvalueindex(2));
	enum rules_guard_kind kind = g->kind;
	double work = 0;
	size_t n = 0, plen = 0;
	const char *pat;

	/* The clock every 16 calls: a call's own work is bounded by the charge below. */
	if (r->armed && (++r->guard_calls & 15) == 0 && rules_past_deadline(r))
		rules_stop(L, r, RULES_TIMEOUT, "wall-clock limit exceeded");
	switch (kind) {
	case GUARD_PATTERN_FIND:
		if (lua_toboolean(L, 4)) {
			luaL_checklstring(L, 1, &n);
			work = (double)n;
			break;
		}
		/* FALLTHROUGH */
	case GUARD_PATTERN:
		luaL_checklstring(L, 1, &n);
		pat = luaL_checklstring(L, 2, &plen);
		work = rules_pattern_cost(pat, plen, n);
		if (work > RULES_WORK_CALL)
			return luaL_error(L, "pattern too complex for a subject of %d bytes; anchor it "
					     "with ^, repeat less, or search plainly with find(s, 1, true)",
			    (int)n);
		break;
	case GUARD_REP: {
		size_t seplen = 0;
		lua_Integer times = luaL_checkinteger(L, 2);

		luaL_checklstring(L, 1, &n);
		luaL_optlstring(L, 3, "", &seplen);
		work = times <= 0 ? 0 : (double)times * (double)(n + seplen + 1);
		if (times > 0 && (double)times * (double)(n + seplen) > (double)r->limits.memory)
			rules_stop(L, r, RULES_MEMORY, "string.rep would exceed the memory cap");
		if (work > RULES_WORK_CALL)
			rules_stop(L, r, RULES_BUDGET, "string.rep: more repetitions than a rule may make");
		break;
	}
	case GUARD_LINEAR:
		if (lua_type(L, 1) == LUA_TSTRING)
			work = (double)lua_rawlen(L, 1);
		break;
	case GUARD_MOVE: {
		lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);

		work = e >= f ? (double)e - (double)f + 1 : 0;
		if (work > RULES_WORK_CALL)
			rules_stop(L, r, RULES_BUDGET, "table.move: a larger range than a rule may move");
		break;
	}
	case GUARD_CONCAT:
		if (lua_type(L, 1) == LUA_TTABLE)
			work = (double)lua_rawlen(L, 1);
		break;
	}
	r->work += work;
	if (r->work > RULES_WORK_HANDLER)
		rules_stop(L, r, RULES_BUDGET, "work budget exceeded");
	/*
	 * The same string as last time in this run: the same result, charged as
	 * if made again. The strings are dropped at the end of the run
	 * (rules_memo_clear), so they do not count against the memory cap after it.
	 */
	if (g->memo && lua_type(L, 1) == LUA_TSTRING) {
		int nres;

		if (lua_rawequal(L, 1, lua_upvalueindex(3))) {
			lua_pushvalue(L, lua_upvalueindex(4));
			return 1;
		}
		if ((nres = g->direct(L)) == 1 && lua_type(L, -1) == LUA_TSTRING) {
			lua_pushvalue(L, 1);
			lua_replace(L, lua_upvalueindex(3));
			lua_pushvalue(L, -1);
			lua_replace(L, lua_upvalueindex(4));
			r->memo_dirty = 1;
		}
		return nres;
	}
	/* A library function without upvalues runs in this frame, on these arguments. */
	if (g->direct != NULL)
		return g->direct(L);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

/*
 * Wraps lib[name] (the table at idx) in the guard. memo: a pure function of
 * one string whose last result a run keeps (see struct rules_guard).
 */
static void
rules_guard_fn(lua_State *L, int lib, const char *name, enum rules_guard_kind kind, int memo)
{
	struct rules *r = rules_of(L);
	struct rules_guard *g;

	lua_getfield(L, lib, name);
	g = lua_newuserdatauv(L, sizeof(*g), 0);
	g->kind = kind;
	g->direct = lua_tocfunction(L, -2);
	if (g->direct != NULL && lua_getupvalue(L, -2, 1) != NULL) {
		lua_pop(L, 1);
		g->direct = NULL;
	}
	g->memo = memo && g->direct != NULL && r->nmemo < RULES_MEMO_MAX;
	if (g->memo) {
		lua_pushnil(L);
		lua_pushnil(L);
	}
	lua_pushcclosure(L, rules_l_guard, g->memo ? 4 : 2);
	if (g->memo) {
		lua_pushvalue(L, -1);
		r->memo_ref[r->nmemo++] = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	lua_setfield(L, lib, name);
}

/* Drops the strings the memo guards kept during a run. */
static void
rules_memo_clear(struct rules *r)
{
	lua_State *L = r->L;

	if (!r->memo_dirty)
		return;
	for (int i = 0; i < r->nmemo; i++) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, r->memo_ref[i]);
		lua_pushnil(L);
		lua_setupvalue(L, -2, 3);
		lua_pushnil(L);
		lua_setupvalue(L, -2, 4);
		lua_pop(L, 1);
	}
	r->memo_dirty = 0;
}

/* setmetatable without __gc: finalizers run with hooks off, out of reach of every limit. */
static int
rules_l_setmetatable(lua_State *L)
{
	if (lua_istable(L, 2) && lua_getfield(L, 2, "__gc") != LUA_TNIL)
		return luaL_error(L, "setmetatable: __gc finalizers are not allowed in rules");
	lua_settop(L, 2);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, 2, 1);
	return 1;
}

/* load(chunk [, name [, mode [, env]]]): text only, with the rule's globals by default. */
static int
rules_l_load(lua_State *L)
{
	size_t len;
	const char *chunk = luaL_checklstring(L, 1, &len);
	const char *name = luaL_optstring(L, 2, "=(load)");

	if (luaL_loadbufferx(L, chunk, len, name, "t") != LUA_OK) {
		lua_pushnil(L);
		lua_insert(L, -2);
		return 2;
	}
	/* Never the real globals: a chunk runs with the given env or fresh rule globals. */
	if (!lua_isnoneornil(L, 4))
		lua_pushvalue(L, 4);
	else
		rules_push_env(L);
	if (lua_setupvalue(L, -2, 1) == NULL)
		lua_pop(L, 1);
	return 1;
}

static void
rules_open_libs(struct rules *r)
{
	static const char *const base_keep[] = { "assert", "error", "ipairs", "next", "pairs",
		"pcall", "select", "tonumber", "tostring", "type", "xpcall", "_VERSION",
		"setmetatable", "getmetatable", "rawequal", "rawlen", NULL };
	static const struct {
		const char *name;
		lua_CFunction open;
	} libs[] = {
		{ LUA_STRLIBNAME, luaopen_string },
		{ LUA_TABLIBNAME, luaopen_table },
		{ LUA_MATHLIBNAME, luaopen_math },
		{ LUA_UTF8LIBNAME, luaopen_utf8 },
	};
	lua_State *L = r->L;
	int base;

	luaL_requiref(L, LUA_GNAME, luaopen_base, 0);
	lua_pop(L, 1);
	/* The environment rules see: only what is listed here. */
	lua_newtable(L);
	base = lua_gettop(L);
	lua_pushglobaltable(L);
	for (size_t i = 0; base_keep[i] != NULL; i++) {
		lua_getfield(L, -1, base_keep[i]);
		lua_setfield(L, base, base_keep[i]);
	}
	lua_pop(L, 1);
	for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
		luaL_requiref(L, libs[i].name, libs[i].open, 0);
		if (strcmp(libs[i].name, LUA_STRLIBNAME) == 0) {
			int strlib = lua_gettop(L);

			lua_pushnil(L);
			lua_setfield(L, strlib, "dump");
			rules_guard_fn(L, strlib, "find", GUARD_PATTERN_FIND, 0);
			rules_guard_fn(L, strlib, "match", GUARD_PATTERN, 0);
			rules_guard_fn(L, strlib, "gmatch", GUARD_PATTERN, 0);
			rules_guard_fn(L, strlib, "gsub", GUARD_PATTERN, 0);
			rules_guard_fn(L, strlib, "rep", GUARD_REP, 0);
			rules_guard_fn(L, strlib, "upper", GUARD_LINEAR, 1);
			rules_guard_fn(L, strlib, "lower", GUARD_LINEAR, 1);
			for (const char *const *f = (const char *const[]){ "reverse", "format",
				 "byte", NULL };
			     *f != NULL; f++)
				rules_guard_fn(L, strlib, *f, GUARD_LINEAR, 0);
		} else if (strcmp(libs[i].name, LUA_TABLIBNAME) == 0) {
			rules_guard_fn(L, lua_gettop(L), "move", GUARD_MOVE, 0);
			rules_guard_fn(L, lua_gettop(L), "concat", GUARD_CONCAT, 0);
			rules_guard_fn(L, lua_gettop(L), "unpack", GUARD_CONCAT, 0);
		}
		rules_readonly(L, -1);
		lua_setfield(L, base, libs[i].name);
	}
	/* Strings share one metatable; nobody may reach it to change string methods. */
	lua_pushliteral(L, "");
	lua_getmetatable(L, -1);
	lua_pushliteral(L, "read-only");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 2);
	luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
	lua_newtable(L);
	lua_getfield(L, -2, "time");
	lua_pushcclosure(L, rules_l_time, 1);
	lua_setfield(L, -2, "time");
	lua_getfield(L, -2, "date");
	lua_setfield(L, -2, "date");
	rules_readonly(L, -1);
	lua_setfield(L, base, "os");
	lua_pop(L, 1);
	lua_getfield(L, base, "setmetatable");
	lua_pushcclosure(L, rules_l_setmetatable, 1);
	lua_setfield(L, base, "setmetatable");
	lua_pushcfunction(L, rules_l_require);
	lua_setfield(L, base, "require");
	lua_pushcfunction(L, rules_l_load);
	lua_setfield(L, base, "load");
	lua_pushcfunction(L, rules_l_log);
	lua_setfield(L, base, "print");
	/* loket */
	lua_newtable(L);
	lua_pushcfunction(L, rules_l_on);
	lua_setfield(L, -2, "on");
	lua_pushcfunction(L, rules_l_log);
	lua_setfield(L, -2, "log");
	lua_pushcfunction(L, rules_l_calendar);
	lua_setfield(L, -2, "calendar");
	lua_pushcfunction(L, rules_l_now);
	lua_setfield(L, -2, "now");
	lua_pushcfunction(L, rules_l_classify);
	lua_setfield(L, -2, "classify");
	rules_push_catalogue(L, r->host.catalogue != NULL ? r->host.catalogue(r->host.arg) : NULL);
	lua_setfield(L, -2, "catalogue");
	rules_readonly(L, -1);
	lua_setfield(L, base, "loket");
	lua_pushvalue(L, base);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &rules_key_base);
	lua_pop(L, 1);
	lua_newtable(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &rules_key_modules);
	/* The real globals keep nothing a rule could reach through a leaked function. */
	lua_pushglobaltable(L);
	lua_pushnil(L);
	lua_setfield(L, -2, "dofile");
	lua_pushnil(L);
	lua_setfield(L, -2, "loadfile");
	lua_pushnil(L);
	lua_setfield(L, -2, "collectgarbage");
	lua_pop(L, 1);
}

/* A fresh globals table for one file: its own writes, reads falling through to the base. */
static void
rules_push_env(lua_State *L)
{
	lua_newtable(L);
	lua_newtable(L);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &rules_key_base);
	lua_setfield(L, -2, "__index");
	/* getmetatable(_ENV).__index would hand out the shared base. */
	lua_pushliteral(L, "read-only");
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
}

static int
rules_load_file(struct rules *r, const char *name, int nresults, char **error_r)
{
	lua_State *L = r->L;
	char path[4096], chunkname[300];
	FILE *fp;
	char *buf = NULL;
	size_t len;
	struct stat st;
	const char *msg;
	enum rules_result res;
	int top = lua_gettop(L);

	*error_r = NULL;
	if (util_path_join(path, sizeof(path), r->dir, name) < 0 || (fp = fopen(path, "r")) == NULL) {
		*error_r = util_printf("%s: cannot read: %s", name, strerror(errno));
		return -1;
	}
	if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > RULES_FILE_MAX ||
	    (buf = malloc((size_t)st.st_size + 1)) == NULL) {
		fclose(fp);
		*error_r = util_printf("%s: not a regular file of at most 1 MiB", name);
		return -1;
	}
	len = fread(buf, 1, (size_t)st.st_size, fp);
	fclose(fp);
	snprintf(chunkname, sizeof(chunkname), "@%s", name);
	/* Text only: a precompiled chunk could break the VM's own checks. */
	if (luaL_loadbufferx(L, buf, len, chunkname, "t") != LUA_OK) {
		const char *why = lua_tostring(L, -1);
		int named = strncmp(why, name, strlen(name)) == 0;

		free(buf);
		/* Syntax errors name file:line already; others (a binary chunk) get the file. */
		*error_r = util_printf("%s%s%s", named ? "" : name, named ? "" : ": ", why);
		lua_settop(L, top);
		return -1;
	}
	free(buf);
	rules_push_env(L);
	lua_setupvalue(L, -2, 1);
	if (nresults == 0) {
		res = rules_pcall(r, 0, r->limits.instructions * 10, &msg);
		if (res != RULES_OK) {
			int named = msg != NULL && strncmp(msg, name, strlen(name)) == 0;

			*error_r = util_printf("%s%s%s (%s)", named ? "" : name, named ? "" : ": ",
				msg != NULL ? msg : "failed", rules_result_name(res));
			lua_settop(L, top);
			return -1;
		}
		lua_settop(L, top);
		return 0;
	}
	/* A module: call it directly; the caller's guards are already armed. */
	if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
		*error_r = util_printf("%s", lua_tostring(L, -1));
		lua_settop(L, top);
		return -1;
	}
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

static int
rules_name_filter(const struct dirent *e)
{
	size_t len = strlen(e->d_name);

	return e->d_name[0] != '.' && len > 4 && strcmp(e->d_name + len - 4, ".lua") == 0;
}

void
rules_free(struct rules *r)
{
	if (r == NULL)
		return;
	if (r->L != NULL)
		lua_close(r->L);
	while (r->slabs != NULL) {
		struct rules_slab *next = r->slabs->next;

		free(r->slabs);
		r->slabs = next;
	}
	for (size_t i = 0; i < r->nhandlers; i++) {
		free(r->handlers[i].event);
		free(r->handlers[i].where);
	}
	free(r->handlers);
	for (int e = 0; e < RULES_NEVENTS; e++)
		free(r->by_event[e]);
	free(r->dir);
	free(r);
}

static void rules_contact_mt(lua_State *L);
static int rules_event_index(const char *event);

int
rules_load(const char *dir, const struct rules_limits *limits, const struct rules_host *host,
    struct rules **rules_r, char **error_r)
{
	struct rules *r = calloc(1, sizeof(*r));
	struct dirent **names = NULL;
	int n = 0;

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
	rules_open_libs(r);
	rules_contact_mt(r->L);
	if ((n = scandir(dir, &names, rules_name_filter, alphasort)) < 0) {
		*error_r = util_printf("%s: cannot read the rules folder: %s", dir, strerror(errno));
		goto fail;
	}
	r->loading = 1;
	for (int i = 0; i < n; i++) {
		if (rules_load_file(r, names[i]->d_name, 0, error_r) < 0)
			goto fail;
	}
	r->loading = 0;
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	/* A folder without rules has no handlers array: qsort must not see NULL. */
	if (r->nhandlers > 0)
		qsort(r->handlers, r->nhandlers, sizeof(*r->handlers), rules_handler_cmp);
	for (int e = 0; e < RULES_NEVENTS; e++) {
		if ((r->by_event[e] = calloc(r->nhandlers + 1, sizeof(size_t))) == NULL)
			goto nomem;
		for (size_t i = 0; i < r->nhandlers; i++)
			if (strcmp(r->handlers[i].event, rules_events[e]) == 0)
				r->by_event[e][r->nby_event[e]++] = i;
	}
	lua_gc(r->L, LUA_GCCOLLECT);
	*rules_r = r;
	return 0;
nomem:
	if (*error_r == NULL)
		*error_r = util_printf("%s: out of memory loading the rules", dir);
fail:
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	rules_free(r);
	return -1;
}

size_t
rules_handler_count(const struct rules *r, const char *event)
{
	int ev = rules_event_index(event);

	return r != NULL && ev >= 0 ? r->nby_event[ev] : 0;
}

/* JSON -> Lua, depth-limited. */
static void
rules_push_json(lua_State *L, json_t *v, int depth)
{
	const char *key;
	json_t *sub;
	size_t i;

	if (depth > RULES_JSON_DEPTH) {
		lua_pushnil(L);
		return;
	}
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		lua_createtable(L, 0, (int)json_object_size(v));
		json_object_foreach(v, key, sub) {
			rules_push_json(L, sub, depth + 1);
			lua_setfield(L, -2, key);
		}
		break;
	case JSON_ARRAY:
		lua_createtable(L, (int)json_array_size(v), 0);
		json_array_foreach(v, i, sub) {
			rules_push_json(L, sub, depth + 1);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		break;
	case JSON_STRING:
		lua_pushlstring(L, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		lua_pushinteger(L, (lua_Integer)json_integer_value(v));
		break;
	case JSON_REAL:
		lua_pushnumber(L, json_real_value(v));
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		lua_pushboolean(L, json_is_true(v));
		break;
	case JSON_NULL:
		lua_pushnil(L);
		break;
	}
}

/* Lua -> JSON for decisions: strings, numbers, booleans, and tables of them. */
static json_t *
rules_to_json(lua_State *L, int idx, int depth)
{
	json_t *out;

	idx = lua_absindex(L, idx);
	switch (lua_type(L, idx)) {
	case LUA_TSTRING: {
		size_t len;
		const char *s = lua_tolstring(L, idx, &len);

		return json_stringn_nocheck(s, len);
	}
	case LUA_TNUMBER:
		return lua_isinteger(L, idx) ? json_integer(lua_tointeger(L, idx)) :
					       json_real(lua_tonumber(L, idx));
	case LUA_TBOOLEAN:
		return json_boolean(lua_toboolean(L, idx));
	case LUA_TTABLE:
		if (depth > RULES_JSON_DEPTH)
			return json_null();
		if (lua_rawlen(L, idx) > 0) {
			out = json_array();
			for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, idx); i++) {
				lua_rawgeti(L, idx, i);
				json_array_append_new(out, rules_to_json(L, -1, depth + 1));
				lua_pop(L, 1);
			}
			return out;
		}
		out = json_object();
		lua_pushnil(L);
		while (lua_next(L, idx) != 0) {
			if (lua_type(L, -2) == LUA_TSTRING)
				json_object_set_new(out, lua_tostring(L, -2),
				    rules_to_json(L, -1, depth + 1));
			lua_pop(L, 1);
		}
		return out;
	default:
		return json_null();
	}
}

/*
 * A new decision of the running handler, appended to the run's list (which
 * owns it): methods add their fields once every check that could raise an
 * error has passed.
 */
static json_t *
rules_decide(struct rules *r, const char *type)
{
	json_t *dec = json_object();

	json_object_set_new(dec, "type", json_string(type));
	json_object_set_new(dec, "rule", json_string(r->current != NULL ? r->current : "?"));
	json_array_append_new(r->decisions, dec);
	return dec;
}

/* A string a rule gave, into a decision. */
static void
rules_decide_str(json_t *dec, const char *key, const char *value)
{
	if (value != NULL)
		json_object_set_new(dec, key, json_stringn_nocheck(value, strlen(value)));
}

/* The contact's backing data table, from its metatable. */
static void
rules_contact_data(lua_State *L, int idx)
{
	if (!lua_getmetatable(L, idx))
		luaL_error(L, "not a contact");
	lua_getfield(L, -1, "__index");
	lua_remove(L, -2);
	if (!lua_istable(L, -1))
		luaL_error(L, "not a contact");
}

/*
 * A rule acts on the contact its handler was called with. A contact kept
 * from an earlier run (in an upvalue or a global) still reads what that run
 * read, but its methods and fields refuse: a decision made through it would
 * land on whichever contact is being handled now. And a handler call makes
 * at most RULES_DECISIONS_PER_CALL decisions. what names the method.
 */
static void
rules_check_self(lua_State *L, const char *what)
{
	struct rules *r = rules_of(L);

	if (lua_type(L, 1) != LUA_TTABLE || !lua_getmetatable(L, 1))
		luaL_error(L, "%s: call it on the contact, as c:%s(...)", what, what);
	lua_getfield(L, -1, "__index");
	if (r->run_contact != NULL)
		lua_rawgeti(L, LUA_REGISTRYINDEX, r->run_data_ref);
	else
		lua_pushnil(L);
	if (!lua_istable(L, -2) || !lua_rawequal(L, -1, -2))
		luaL_error(L, "%s: not the contact of this run; a rule acts only on the contact "
			      "its handler was called with", what);
	lua_pop(L, 3);
	if (json_array_size(r->decisions) - r->run_before >= RULES_DECISIONS_PER_CALL)
		luaL_error(L, "%s: more than %d decisions in one handler call", what,
		    RULES_DECISIONS_PER_CALL);
}

/*
 * What a rule hands to the register as text must read back as it was meant:
 * valid UTF-8 (jansson's check; the register is JSON), no NUL, at most max
 * bytes, and for a label (a name, a tag, a duration) no control characters.
 * Raises an error naming what; returns the string at idx.
 */
static const char *
rules_check_string(lua_State *L, int idx, const char *what, size_t max, int label)
{
	size_t len;
	const char *s;
	json_t *probe;
	int ascii = 1;

	if (lua_type(L, idx) != LUA_TSTRING)
		luaL_error(L, "%s: expected a string", what);
	s = lua_tolstring(L, idx, &len);
	if (len == 0 || len > max)
		luaL_error(L, "%s: expected 1 to %d bytes, got %d", what, (int)max, (int)len);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '\0')
			luaL_error(L, "%s: contains a NUL character", what);
		if (label && (ch < 0x20 || ch == 0x7f))
			luaL_error(L, "%s: contains a control character", what);
		ascii &= ch < 0x80;
	}
	/* ASCII is UTF-8; anything else jansson checks. */
	if (!ascii) {
		if ((probe = json_stringn(s, len)) == NULL)
			luaL_error(L, "%s: not valid UTF-8", what);
		json_decref(probe);
	}
	return s;
}

/*
 * Escalating and resolving change the status of an open contact only, as
 * through the API: in the events of a contact that is escalated, resolved or
 * closed already, they fail instead of leaving a history that claims them.
 * The status is the stored one (a new contact is open).
 */
static void
rules_check_open(lua_State *L, const char *what)
{
	const char *status = json_string_value(json_object_get(rules_of(L)->run_contact, "status"));

	if (status != NULL && strcmp(status, "open") != 0)
		luaL_error(L, "%s: the contact is %s; rules escalate and resolve open contacts only",
		    what, status);
}

/* tbl[key] as a checked string (rules_check_string), or NULL when it is nil. */
static const char *
rules_opt_field(lua_State *L, int tbl, const char *key, size_t max, int label)
{
	const char *v;

	lua_getfield(L, tbl, key);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return NULL;
	}
	v = rules_check_string(L, -1, key, max, label);
	lua_pop(L, 1); /* the string stays alive in tbl */
	return v;
}

static void
rules_check_department(lua_State *L, const char *dep)
{
	struct rules *r = rules_of(L);

	if (r->host.department_known != NULL && !r->host.department_known(r->host.arg, dep))
		luaL_error(L, "no department '%s' is configured", dep);
}

/* Adds within to now in the calendar of unit; returns ms, or 0 when within is NULL. */
static lua_Integer
rules_due(lua_State *L, const char *unit, const char *within)
{
	struct rules *r = rules_of(L);
	const struct calendar *cal;
	struct calendar_duration d;
	const char *why = NULL;

	if (within == NULL)
		return 0;
	/*
	 * A reminder or deadline due at once fires at once, and a rule that
	 * reminds again from its handler would write as fast as the disk goes.
	 */
	if (calendar_parse_duration(within, &d, &why) == 0 && d.days == 0 && d.seconds < 60)
		luaL_error(L, "duration '%s': expected at least 1m", within);
	cal = r->host.calendar != NULL ? r->host.calendar(r->host.arg, unit) : NULL;
	if (cal == NULL)
		luaL_error(L, "no calendar for '%s'", unit);
	return rules_check_duration_add(L, cal, (lua_Integer)(r->now_ms / 1000), within) * 1000;
}

/* c:escalate{to = "omgeving", reason = "...", within = "2d"} */
static int
rules_m_escalate(lua_State *L)
{
	const char *to, *reason, *within;
	lua_Integer due;
	json_t *dec;

	rules_check_self(L, "escalate");
	rules_check_open(L, "escalate");
	luaL_checktype(L, 2, LUA_TTABLE);
	if ((to = rules_opt_field(L, 2, "to", REGISTER_SHORT_MAX, 1)) == NULL)
		return luaL_error(L, "escalate: 'to' (a department) is required");
	rules_check_department(L, to);
	reason = rules_opt_field(L, 2, "reason", RULES_REASON_MAX, 0);
	within = rules_opt_field(L, 2, "within", RULES_LABEL_MAX, 1);
	due = rules_due(L, to, within);
	dec = rules_decide(rules_of(L), "escalate");
	rules_decide_str(dec, "to", to);
	rules_decide_str(dec, "reason", reason);
	if (within != NULL) {
		rules_decide_str(dec, "within", within);
		json_object_set_new(dec, "due_at", json_integer(due));
	}
	/* Later rules see the contact as it will be stored. */
	rules_contact_data(L, 1);
	lua_pushliteral(L, "escalated");
	lua_setfield(L, -2, "status");
	lua_pushinteger(L, 2);
	lua_setfield(L, -2, "line");
	lua_pushstring(L, to);
	lua_setfield(L, -2, "department");
	return 0;
}

/* c:resolve{answer = "..."} */
static int
rules_m_resolve(lua_State *L)
{
	const char *answer = NULL;

	rules_check_self(L, "resolve");
	rules_check_open(L, "resolve");
	if (lua_istable(L, 2))
		answer = rules_opt_field(L, 2, "answer", RULES_ANSWER_MAX, 0);
	rules_decide_str(rules_decide(rules_of(L), "resolve"), "answer", answer);
	rules_contact_data(L, 1);
	lua_pushliteral(L, "resolved");
	lua_setfield(L, -2, "status");
	return 0;
}

/* c:assign{to = "person or department"} */
static int
rules_m_assign(lua_State *L)
{
	const char *to;

	rules_check_self(L, "assign");
	luaL_checktype(L, 2, LUA_TTABLE);
	if ((to = rules_opt_field(L, 2, "to", REGISTER_SHORT_MAX, 1)) == NULL)
		return luaL_error(L, "assign: 'to' is required");
	rules_decide_str(rules_decide(rules_of(L), "assign"), "to", to);
	return 0;
}

/* c:tag("a", "b") */
static int
rules_m_tag(lua_State *L)
{
	int n = lua_gettop(L);
	json_t *tags;

	rules_check_self(L, "tag");
	for (int i = 2; i <= n; i++)
		rules_check_string(L, i, "tag", REGISTER_TAG_MAX, 1);
	/* The checks are done: nothing below raises an error. */
	tags = json_array();
	for (int i = 2; i <= n; i++) {
		size_t len;
		const char *t = lua_tolstring(L, i, &len);

		json_array_append_new(tags, json_stringn_nocheck(t, strlen(t)));
	}
	json_object_set_new(rules_decide(rules_of(L), "tag"), "tags", tags);
	return 0;
}

/* c:remind{after = "4h", unless = "resolved", escalate = {to=, reason=} | call = "label"} */
static int
rules_m_remind(lua_State *L)
{
	const char *after, *unless, *call, *unit, *to = NULL, *reason = NULL;
	lua_Integer due;
	int has_escalate;
	json_t *dec;

	rules_check_self(L, "remind");
	luaL_checktype(L, 2, LUA_TTABLE);
	if ((after = rules_opt_field(L, 2, "after", RULES_LABEL_MAX, 1)) == NULL)
		return luaL_error(L, "remind: 'after' (a duration like \"4h\") is required");
	unless = rules_opt_field(L, 2, "unless", RULES_LABEL_MAX, 1);
	/* A misspelt status would never hold, and the reminder would always fire. */
	if (unless != NULL && register_status_name(unless) == NULL)
		return luaL_error(L, "remind: unless '%s' is not a status (open, escalated, "
				     "resolved or closed)",
		    unless);
	call = rules_opt_field(L, 2, "call", RULES_LABEL_MAX, 1);
	lua_getfield(L, 2, "escalate");
	has_escalate = lua_istable(L, -1);
	if (!has_escalate && !lua_isnil(L, -1))
		return luaL_error(L, "remind: 'escalate' must be a table {to = ..., reason = ...}");
	if (has_escalate == (call != NULL))
		return luaL_error(L, "remind: give either 'escalate' or 'call'");
	if (has_escalate) {
		if ((to = rules_opt_field(L, -1, "to", REGISTER_SHORT_MAX, 1)) == NULL)
			return luaL_error(L, "remind: escalate needs 'to'");
		rules_check_department(L, to);
		reason = rules_opt_field(L, -1, "reason", RULES_REASON_MAX, 0);
	}
	/* The reminder counts in the calendar of where the contact is now. */
	rules_contact_data(L, 1);
	lua_getfield(L, -1, "department");
	if (lua_isstring(L, -1))
		unit = lua_tostring(L, -1);
	else {
		lua_getfield(L, -2, "organisation");
		unit = lua_tostring(L, -1);
	}
	due = rules_due(L, unit != NULL ? unit : "", after);
	dec = rules_decide(rules_of(L), "remind");
	rules_decide_str(dec, "after", after);
	json_object_set_new(dec, "due_at", json_integer(due));
	rules_decide_str(dec, "unless", unless);
	rules_decide_str(dec, "call", call);
	if (has_escalate) {
		json_t *esc = json_object();

		rules_decide_str(esc, "to", to);
		rules_decide_str(esc, "reason", reason);
		json_object_set_new(dec, "escalate", esc);
	}
	return 0;
}

/*
 * c:reply{template = "escalated", via = "email", within = "2d"}: within is the
 * answer the template promises, counted in the contact's calendar.
 */
static int
rules_m_reply(lua_State *L)
{
	const char *tpl, *via, *within, *unit;
	lua_Integer due = 0;
	json_t *dec;

	rules_check_self(L, "reply");
	luaL_checktype(L, 2, LUA_TTABLE);
	if ((tpl = rules_opt_field(L, 2, "template", RULES_LABEL_MAX, 1)) == NULL)
		return luaL_error(L, "reply: 'template' is required");
	/* A file name in the templates folder: NAME.LANG.txt. */
	if (tpl[strspn(tpl, "abcdefghijklmnopqrstuvwxyz0123456789_-")] != '\0')
		return luaL_error(L, "reply: template '%s' is not a plain name (a-z, 0-9, - and _)",
		    tpl);
	via = rules_opt_field(L, 2, "via", RULES_LABEL_MAX, 1);
	if (via != NULL && !register_channel_known(via))
		return luaL_error(L, "reply: via '%s' is not a channel (phone, email, web or counter)",
		    via);
	if ((within = rules_opt_field(L, 2, "within", RULES_LABEL_MAX, 1)) != NULL) {
		rules_contact_data(L, 1);
		lua_getfield(L, -1, "department");
		if (!lua_isstring(L, -1)) {
			lua_pop(L, 1);
			lua_getfield(L, -1, "organisation");
		}
		unit = lua_tostring(L, -1);
		due = rules_due(L, unit != NULL ? unit : "", within);
		lua_pop(L, 2);
	}
	dec = rules_decide(rules_of(L), "reply");
	if (within != NULL) {
		rules_decide_str(dec, "within", within);
		json_object_set_new(dec, "due_at", json_integer(due));
	}
	rules_decide_str(dec, "template", tpl);
	rules_decide_str(dec, "via", via);
	return 0;
}

static const char *const rules_writable[] = { "product", "department", "priority", "tags", "line",
	"confidential", "language", NULL };

/* key's place in rules_writable (its bit in run_nils), or -1 when rules cannot write it. */
static int
rules_writable_index(const char *key)
{
	for (int i = 0; rules_writable[i] != NULL; i++)
		if (strcmp(rules_writable[i], key) == 0)
			return i;
	return -1;
}

static int
rules_contact_newindex(lua_State *L)
{
	const char *key = luaL_checkstring(L, 2);
	int i = rules_writable_index(key);
	json_t *dec;

	if (i < 0)
		return luaL_error(L, "contact field '%s' cannot be changed by a rule", key);
	rules_check_self(L, key);
	if (strcmp(key, "line") == 0) {
		lua_Integer line = luaL_checkinteger(L, 3);

		/* After intake the line follows the status (escalate moves it to 2). */
		if (rules_of(L)->run_event != 0)
			return luaL_error(L, "line: rules set the line of a new contact only");
		if (line != 1 && line != 2)
			return luaL_error(L, "line: expected 1 or 2");
	} else if (strcmp(key, "confidential") == 0) {
		luaL_checktype(L, 3, LUA_TBOOLEAN);
	} else if (strcmp(key, "tags") == 0) {
		lua_Integer n;
		int keys = 0;

		luaL_checktype(L, 3, LUA_TTABLE);
		n = (lua_Integer)lua_rawlen(L, 3);
		/* A list of tags and nothing else: no holes, no other keys. */
		for (lua_pushnil(L); lua_next(L, 3) != 0 && keys <= REGISTER_TAGS_MAX; lua_pop(L, 1))
			keys++;
		if (keys > REGISTER_TAGS_MAX || keys != n)
			return luaL_error(L, "tags: expected a list of at most %d tags",
			    REGISTER_TAGS_MAX);
		for (lua_Integer k = 1; k <= n; k++) {
			lua_rawgeti(L, 3, k);
			rules_check_string(L, -1, "tags", REGISTER_TAG_MAX, 1);
			lua_pop(L, 1);
		}
	} else if (strcmp(key, "priority") == 0) {
		const char *p = luaL_checkstring(L, 3);

		if (strcmp(p, "low") != 0 && strcmp(p, "normal") != 0 && strcmp(p, "high") != 0 &&
		    strcmp(p, "urgent") != 0)
			return luaL_error(L, "priority: expected low, normal, high or urgent");
	} else if (strcmp(key, "department") == 0) {
		rules_check_department(L, luaL_checkstring(L, 3));
	} else if (strcmp(key, "language") == 0 && !lua_isnil(L, 3)) {
		if (!register_language_ok(rules_check_string(L, 3, key, 16, 1)))
			return luaL_error(L, "language: expected a language tag such as nl, en or nl-BE");
	} else if (!lua_isnil(L, 3)) {
		rules_check_string(L, 3, key, REGISTER_SHORT_MAX, 1);
	}
	if (lua_isnil(L, 3))
		rules_of(L)->run_nils |= 1u << i;
	else
		rules_of(L)->run_nils &= ~(1u << i);
	rules_contact_data(L, 1);
	dec = rules_decide(rules_of(L), "set");
	rules_decide_str(dec, "field", key);
	if (!lua_isnil(L, 3))
		json_object_set_new(dec, "value", rules_to_json(L, 3, 0));
	lua_pushvalue(L, 2);
	lua_pushvalue(L, 3);
	lua_rawset(L, -3);
	return 0;
}

/*
 * A field of the contact read for the first time (or a method): __index of
 * the data table. Fields come from the run's JSON and stay in the table, so
 * the next read is a plain lookup; only what rules read is ever turned into
 * Lua. A contact kept past its run has only what was read during it.
 */
static int
rules_contact_lazy(lua_State *L)
{
	struct rules *r = rules_of(L);
	const char *key;
	json_t *v;
	int i;

	if (lua_type(L, 2) != LUA_TSTRING)
		return 0;
	lua_rawgetp(L, LUA_REGISTRYINDEX, &rules_key_contact_mt);
	lua_pushvalue(L, 2);
	if (lua_rawget(L, -2) != LUA_TNIL)
		return 1;
	lua_pop(L, 2);
	if (r->run_contact == NULL)
		return 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, r->run_data_ref);
	if (!lua_rawequal(L, 1, -1))
		return 0;
	lua_pop(L, 1);
	key = lua_tostring(L, 2);
	/* A field a rule set to nil reads as nil, not as it came in. */
	if (r->run_nils != 0 && (i = rules_writable_index(key)) >= 0 && (r->run_nils & (1u << i)))
		return 0;
	if ((v = json_object_get(r->run_contact, key)) == NULL)
		return 0;
	rules_push_json(L, v, 0);
	lua_pushvalue(L, 2);
	lua_pushvalue(L, -2);
	lua_rawset(L, 1);
	return 1;
}

/* The contacts' shared method table and the metatable of their data tables, in the registry. */
static void
rules_contact_mt(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{ "escalate", rules_m_escalate },
		{ "resolve", rules_m_resolve },
		{ "assign", rules_m_assign },
		{ "tag", rules_m_tag },
		{ "remind", rules_m_remind },
		{ "reply", rules_m_reply },
		{ NULL, NULL },
	};

	luaL_newlib(L, methods);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &rules_key_contact_mt);
	lua_createtable(L, 0, 1);
	lua_pushcfunction(L, rules_contact_lazy);
	lua_setfield(L, -2, "__index");
	lua_rawsetp(L, LUA_REGISTRYINDEX, &rules_key_data_mt);
}

/*
 * A contact object for one run: an empty proxy whose metatable's __index is
 * its data table, so reading a field is a table lookup (the first read of
 * each field fills it from the JSON, see rules_contact_lazy); writes go
 * through __newindex and are checked. Leaves the data table's reference in
 * r->run_data_ref.
 */
static void
rules_push_contact(struct rules *r, json_t *contact)
{
	lua_State *L = r->L;

	lua_newtable(L);	  /* the proxy */
	lua_createtable(L, 0, 3); /* its metatable */
	lua_createtable(L, 0, 8); /* the data */
	lua_rawgetp(L, LUA_REGISTRYINDEX, &rules_key_data_mt);
	lua_setmetatable(L, -2);
	lua_pushvalue(L, -1);
	r->run_data_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	r->run_contact = contact;
	r->run_nils = 0;
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, rules_contact_newindex);
	lua_setfield(L, -2, "__newindex");
	lua_pushliteral(L, "contact");
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
}

static void
rules_count(struct rules *r, struct rules_handler *h, enum rules_result res)
{
	if (r->host.count != NULL)
		r->host.count(r->host.arg, h->where, res, &h->counter[res]);
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
		rules_begin(r, r->limits.instructions);
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

json_t *
rules_run(struct rules *r, const char *event, json_t *contact, json_t *extra, int64_t now_ms)
{
	lua_State *L = r->L;
	json_t *out;
	int top = lua_gettop(L), ev = rules_event_index(event);

	if ((out = json_array()) == NULL || ev < 0 || r->nby_event[ev] == 0)
		return out;
	r->now_ms = now_ms;
	r->run_event = ev;
	r->run_list = r->by_event[ev];
	r->run_n = r->nby_event[ev];
	r->run_pos = 0;
	r->decisions = out;
	lua_pushcfunction(L, rules_msgh);	/* top + 1 */
	lua_pushcfunction(L, rules_l_dispatch); /* top + 2 */
	rules_push_contact(r, contact);		/* top + 3 */
	if (extra != NULL)			/* top + 4 */
		rules_push_json(L, extra, 0);
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
		rules_arm(r, r->limits.instructions);
		rc = lua_pcall(L, 2, 0, top + 1);
		rules_disarm(r);
		if (rc == LUA_OK)
			break;
		/* A failed handler is skipped whole: what it decided before failing is dropped. */
		h = &r->handlers[r->run_list[r->run_pos]];
		res = rules_outcome(r, rc);
		rules_count(r, h, res);
		msg = lua_tostring(L, -1);
		while (json_array_size(out) > r->run_before)
			json_array_remove(out, json_array_size(out) - 1);
		failed = rules_decide(r, "failed");
		json_object_set_new(failed, "rule", json_string(h->where));
		json_object_set_new(failed, "result", json_string(rules_result_name(res)));
		rules_decide_str(failed, "message", rules_clean_message(clean, msg != NULL ? msg : "?"));
		lua_pop(L, 1); /* the message */
		r->run_pos++;
	}
	r->current = NULL;
	r->run_contact = NULL;
	r->decisions = NULL;
	luaL_unref(L, LUA_REGISTRYINDEX, r->run_data_ref);
	/* Garbage is left to the collector's own pace; at the cap it runs in full first. */
	lua_settop(L, top);
	return out;
}
