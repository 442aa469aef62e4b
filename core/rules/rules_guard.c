/*
 * rules_guard.c: the limits of one rule call: its instruction budget (a
 * count hook), its wall-clock limit, the work charged by the library
 * functions that loop in C, and the name of how the call ended.
 *
 * Three guards keep a rule from hurting the daemon (as HAProxy does for its
 * Lua): a counting allocator caps the state's memory (rules_alloc.c), a
 * count hook ends a call that runs over its instruction budget or wall-clock
 * limit, and every call runs under a protected call whose outcome has a name.
 */
#include "config.h"

#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#include "rules_int.h"
#include "util.h"

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
		rules_guard_stop(L, r, r->stop,
		    r->stop == RULES_BUDGET	 ? "instruction budget exceeded" :
			r->stop == RULES_TIMEOUT ? "wall-clock limit exceeded" :
						   "memory cap exceeded");
}

/*
 * Ends the handler: from now on every instruction fails, so a pcall inside
 * the rule cannot hold on. The message names the rule's file:line.
 */
void
rules_guard_stop(lua_State *L, struct rules *r, enum rules_result why, const char *what)
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
void
rules_guard_begin(struct rules *r, uint64_t budget)
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
void
rules_guard_arm(struct rules *r, uint64_t budget)
{
	rules_guard_begin(r, budget);
	r->armed = 1;
	lua_sethook(r->L, rules_hook, LUA_MASKCOUNT, RULES_HOOK_EVERY);
}

static void rules_memo_clear(struct rules *r);

void
rules_guard_disarm(struct rules *r)
{
	lua_sethook(r->L, NULL, 0, 0);
	r->armed = 0;
	r->deadline_ns = 0;
	rules_memo_clear(r);
}

/* The name of how a protected call ended. */
enum rules_result
rules_guard_outcome(struct rules *r, int rc)
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

int
rules_guard_msgh(lua_State *L)
{
	/* Keep the message as it is: it already names file:line. */
	if (!lua_isstring(L, 1))
		lua_pushstring(L, "error object is not a string");
	return 1;
}

/* Runs the function on top of the stack with nargs under the guards; names the outcome. */
enum rules_result
rules_guard_pcall(struct rules *r, int nargs, uint64_t budget, const char **msg_r)
{
	lua_State *L = r->L;
	int base = lua_gettop(L) - nargs, rc;

	lua_pushcfunction(L, rules_guard_msgh);
	lua_insert(L, base);
	rules_guard_arm(r, budget);
	rc = lua_pcall(L, nargs, 0, base);
	rules_guard_disarm(r);
	*msg_r = NULL;
	if (rc != LUA_OK) {
		*msg_r = lua_tostring(L, -1);
		lua_pushvalue(L, -1);
		lua_replace(L, base); /* keep the message alive below the popped area */
		lua_settop(L, base);
	} else {
		lua_settop(L, base - 1);
	}
	return rules_guard_outcome(r, rc);
}

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
 * What a guard wraps: upvalue 2 of its closure keeps it alive (upvalue 1 is
 * the library function), and the engine's guard[] finds it by the slot its
 * C function stands for, without reading an upvalue on every call.
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
	/*
	 * The text of the string in upvalue 3, NULL when none: while that upvalue
	 * holds the string no other string has this address, so the same address
	 * is the same string, at the price of a pointer comparison.
	 */
	const char *memo_key;
};

/*
 * string.find(s, p [, init], true) on s (ls bytes), as lstrlib's plain
 * search does it (init relative to the end when negative, nothing found past
 * the end), without checking s again: the guard has, and rules search
 * plainly more than anything else.
 */
/* lstrlib's lmemfind: memchr for the first byte, then the rest; shorter than memmem here. */
static const char *
rules_memfind(const char *s, size_t ls, const char *p, size_t lp)
{
	const char *init;

	if (lp == 0)
		return s;
	if (lp > ls)
		return NULL;
	lp--;
	ls -= lp;
	while (ls > 0 && (init = memchr(s, *p, ls)) != NULL) {
		init++;
		if (memcmp(init, p + 1, lp) == 0)
			return init - 1;
		ls -= (size_t)(init - s);
		s = init;
	}
	return NULL;
}

static int
rules_find_plain(lua_State *L, const char *s, size_t ls)
{
	size_t lp, init;
	const char *p = luaL_checklstring(L, 2, &lp), *found;
	lua_Integer pos = lua_isnoneornil(L, 3) ? 1 : luaL_checkinteger(L, 3);

	if (pos > 0)
		init = (size_t)pos - 1;
	else if (pos == 0 || pos < -(lua_Integer)ls)
		init = 0;
	else
		init = ls + (size_t)pos;
	if (init > ls) {
		lua_pushnil(L);
		return 1;
	}
	found = rules_memfind(s + init, ls - init, p, lp);
	if (found == NULL) {
		lua_pushnil(L);
		return 1;
	}
	lua_pushinteger(L, (lua_Integer)(found - s) + 1);
	lua_pushinteger(L, (lua_Integer)(found - s) + (lua_Integer)lp);
	return 2;
}

static inline int
rules_l_guard(lua_State *L, int slot)
{
	struct rules *r = rules_of(L);
	struct rules_guard *g = r->guard[slot];
	enum rules_guard_kind kind = g->kind;
	double work = 0;
	size_t n = 0, plen = 0;
	const char *pat, *text = NULL;
	int plain = 0;

	/* The clock every 16 calls: a call's own work is bounded by the charge below. */
	if (r->armed && (++r->guard_calls & 15) == 0 && rules_past_deadline(r))
		rules_guard_stop(L, r, RULES_TIMEOUT, "wall-clock limit exceeded");
	switch (kind) {
	case GUARD_PATTERN_FIND:
		if (lua_toboolean(L, 4)) {
			text = luaL_checklstring(L, 1, &n);
			work = (double)n;
			plain = 1;
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
			rules_guard_stop(L, r, RULES_MEMORY, "string.rep would exceed the memory cap");
		if (work > RULES_WORK_CALL)
			rules_guard_stop(L, r, RULES_BUDGET, "string.rep: more repetitions than a rule may make");
		break;
	}
	case GUARD_LINEAR:
		if (lua_type(L, 1) == LUA_TSTRING) {
			text = lua_tolstring(L, 1, &n);
			work = (double)n;
		}
		break;
	case GUARD_MOVE: {
		lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);

		work = e >= f ? (double)e - (double)f + 1 : 0;
		if (work > RULES_WORK_CALL)
			rules_guard_stop(L, r, RULES_BUDGET, "table.move: a larger range than a rule may move");
		break;
	}
	case GUARD_CONCAT:
		if (lua_type(L, 1) == LUA_TTABLE)
			work = (double)lua_rawlen(L, 1);
		break;
	}
	r->work += work;
	if (r->work > RULES_WORK_HANDLER)
		rules_guard_stop(L, r, RULES_BUDGET, "work budget exceeded");
	/*
	 * The same string as last time in this run: the same result, charged as
	 * if made again. The strings are dropped at the end of the run
	 * (rules_memo_clear), so they do not count against the memory cap after it.
	 */
	if (g->memo && text != NULL) {
		int nres;

		if (text == g->memo_key) {
			lua_pushvalue(L, lua_upvalueindex(4));
			return 1;
		}
		if ((nres = g->direct(L)) == 1 && lua_type(L, -1) == LUA_TSTRING) {
			lua_pushvalue(L, 1);
			lua_replace(L, lua_upvalueindex(3));
			lua_pushvalue(L, -1);
			lua_replace(L, lua_upvalueindex(4));
			g->memo_key = text;
			r->memo_dirty = 1;
		}
		return nres;
	}
	if (plain)
		return rules_find_plain(L, text, n);
	/* A library function without upvalues runs in this frame, on these arguments. */
	if (g->direct != NULL)
		return g->direct(L);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

/* One C function per guarded library function: each knows its slot in r->guard. */
#define RULES_GUARD_FN(n)                                                                          \
	static int rules_l_guard_##n(lua_State *L)                                                 \
	{                                                                                          \
		return rules_l_guard(L, n);                                                        \
	}
RULES_GUARD_FN(0)
RULES_GUARD_FN(1)
RULES_GUARD_FN(2)
RULES_GUARD_FN(3)
RULES_GUARD_FN(4)
RULES_GUARD_FN(5)
RULES_GUARD_FN(6)
RULES_GUARD_FN(7)
RULES_GUARD_FN(8)
RULES_GUARD_FN(9)
RULES_GUARD_FN(10)
RULES_GUARD_FN(11)
RULES_GUARD_FN(12)
RULES_GUARD_FN(13)
RULES_GUARD_FN(14)
RULES_GUARD_FN(15)

static const lua_CFunction rules_guard_fns[RULES_GUARDS_MAX] = { rules_l_guard_0,
	rules_l_guard_1, rules_l_guard_2, rules_l_guard_3, rules_l_guard_4, rules_l_guard_5,
	rules_l_guard_6, rules_l_guard_7, rules_l_guard_8, rules_l_guard_9, rules_l_guard_10,
	rules_l_guard_11, rules_l_guard_12, rules_l_guard_13, rules_l_guard_14, rules_l_guard_15 };

/*
 * Wraps lib[name] (the table at idx) in the guard. memo: a pure function of
 * one string whose last result a run keeps (see struct rules_guard).
 */
void
rules_guard_wrap(lua_State *L, int lib, const char *name, enum rules_guard_kind kind, int memo)
{
	struct rules *r = rules_of(L);
	struct rules_guard *g;

	if (r->nguards == RULES_GUARDS_MAX)
		luaL_error(L, "too many guarded library functions");
	lua_getfield(L, lib, name);
	g = lua_newuserdatauv(L, sizeof(*g), 0);
	r->guard[r->nguards] = g;
	g->kind = kind;
	g->memo_key = NULL;
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
	lua_pushcclosure(L, rules_guard_fns[r->nguards++], g->memo ? 4 : 2);
	if (g->memo) {
		lua_pushvalue(L, -1);
		r->memo_guard[r->nmemo] = g;
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
		r->memo_guard[i]->memo_key = NULL;
		lua_rawgeti(L, LUA_REGISTRYINDEX, r->memo_ref[i]);
		lua_pushnil(L);
		lua_setupvalue(L, -2, 3);
		lua_pushnil(L);
		lua_setupvalue(L, -2, 4);
		lua_pop(L, 1);
	}
	r->memo_dirty = 0;
}
