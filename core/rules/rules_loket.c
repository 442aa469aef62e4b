/*
 * rules_loket.c: the loket library rules call: loket.on, loket.log,
 * loket.now, loket.classify, loket.calendar and the read-only catalogue.
 */
#include "config.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calendar.h"
#include "catalogue.h"
#include "register.h"
#include "rules_int.h"

/* The bit of a channel a filter names, adding it to the engine's list; raises an error. */
static unsigned int
rules_channel_bit(lua_State *L, struct rules *r, const char *channel)
{
	int i;

	if (!register_channel_known(channel))
		luaL_error(L, "loket.on: filter channel '%s' is not a channel (phone, email, web or "
			      "counter)", channel);
	for (i = 0; i < r->nchannels; i++)
		if (strcmp(r->channels[i], channel) == 0)
			return 1u << i;
	if (i == RULES_CHANNELS_MAX)
		luaL_error(L, "loket.on: too many channels in filters");
	if ((r->channels[i] = strdup(channel)) == NULL)
		luaL_error(L, "out of memory");
	r->nchannels++;
	return 1u << i;
}

/*
 * The filter table at idx: {channel = "email"} or {channel = {"email", "web"}}.
 * Returns its channel bits; raises an error on anything else, so that a
 * misspelt filter does not quietly match every contact.
 */
static unsigned int
rules_check_filter(lua_State *L, struct rules *r, int idx)
{
	unsigned int bits = 0;

	for (lua_pushnil(L); lua_next(L, idx) != 0; lua_pop(L, 1))
		if (lua_type(L, -2) != LUA_TSTRING || strcmp(lua_tostring(L, -2), "channel") != 0)
			return (unsigned int)luaL_error(L, "loket.on: unknown filter '%s'; the one "
							   "filter is channel",
			    lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?");
	lua_getfield(L, idx, "channel");
	if (lua_type(L, -1) == LUA_TSTRING) {
		bits = rules_channel_bit(L, r, lua_tostring(L, -1));
	} else if (lua_istable(L, -1) && lua_rawlen(L, -1) > 0) {
		for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, -1); i++) {
			if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
				return (unsigned int)luaL_error(L, "loket.on: filter channel: "
								   "expected a list of channel names");
			bits |= rules_channel_bit(L, r, lua_tostring(L, -1));
			lua_pop(L, 1);
		}
	} else {
		return (unsigned int)luaL_error(L, "loket.on: filter channel: expected a channel "
						   "name or a list of them");
	}
	lua_pop(L, 1);
	return bits;
}

/*
 * loket.on(event, [filter,] fn [, {priority = N}]). A filter such as
 * {channel = "email"} keeps the handler from being called at all for
 * contacts it does not match, which costs nothing, where a test at the top
 * of the handler costs a call.
 */
static int
rules_l_on(lua_State *L)
{
	struct rules *r = rules_of(L);
	const char *event = luaL_checkstring(L, 1);
	struct rules_handler *h;
	lua_Debug ar;
	char where[256];
	int priority = 0;
	unsigned int channels = 0;

	if (!r->loading)
		return luaL_error(L, "loket.on: handlers are registered when a rule file loads, not "
				     "while rules run");
	if (!rules_event_known(event))
		return luaL_error(L, "loket.on: unknown event '%s'; expected contact, reply, escalated, "
				     "resolved, closed, reopened, overdue, missed_call or reminder",
		    event);
	/* With a filter, the handler and its options move one place on: drop the filter. */
	if (lua_istable(L, 2) && lua_type(L, 3) == LUA_TFUNCTION) {
		channels = rules_check_filter(L, r, 2);
		lua_remove(L, 2);
	}
	luaL_checktype(L, 2, LUA_TFUNCTION);
	if (!lua_isnoneornil(L, 3)) {
		lua_Integer p;
		int exact;

		luaL_checktype(L, 3, LUA_TTABLE);
		/* A misspelt option would be ignored without a word: name it. */
		for (lua_pushnil(L); lua_next(L, 3) != 0; lua_pop(L, 1))
			if (lua_type(L, -2) != LUA_TSTRING || strcmp(lua_tostring(L, -2), "priority") != 0)
				return luaL_error(L, "loket.on: unknown option '%s'; the one option is "
						     "priority (a filter such as {channel = \"email\"} "
						     "comes before the function)",
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
	h->channels = channels;
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
const char *
rules_loket_clean_message(char *buf, const char *msg)
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
	void (*log)(void *, const char *, const char *) = r->trying ? r->try_log : r->host.log;
	void *log_arg = r->trying ? r->try_log_arg : r->host.arg;

	if (log == NULL || ++r->log_lines > RULES_LOG_PER_CALL + 1)
		return 0;
	if (r->log_lines == RULES_LOG_PER_CALL + 1) {
		log(log_arg, where, "(more loket.log lines in this call are left out)");
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
	log(log_arg, where, rules_loket_clean_message(clean, lua_tostring(L, -1)));
	return 0;
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

lua_Integer
rules_loket_duration_add(lua_State *L, const struct calendar *cal, lua_Integer t, const char *dur)
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

	lua_pushinteger(L, rules_loket_duration_add(L, cal, luaL_checkinteger(L, 2),
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
		if (p->theme != NULL) {
			lua_pushstring(L, p->theme);
			lua_setfield(L, -2, "theme");
		}
		lua_newtable(L);
		for (size_t k = 0; k < p->nkeywords; k++) {
			lua_pushstring(L, p->keywords[k]);
			lua_rawseti(L, -2, (lua_Integer)k + 1);
		}
		rules_sandbox_readonly(L, -1);
		lua_setfield(L, -2, "keywords");
		rules_sandbox_readonly(L, -1);
		lua_setfield(L, -2, p->code);
	}
	rules_sandbox_readonly(L, -1);
}

/* Pushes the loket table (not read-only yet: the sandbox makes it so). */
void
rules_loket_push(struct rules *r)
{
	lua_State *L = r->L;

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
}
