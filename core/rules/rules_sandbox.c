/*
 * rules_sandbox.c: the environment rules see: base, string, table, math,
 * utf8 and os.time/os.date; the shared libraries are read-only, each rule
 * file has its own globals, code is loaded as text only, and require() reads
 * only modules of the rules folder.
 */
#include "config.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include "rules_int.h"

/* Keys for the registry: their addresses are unique. */
static const char rules_key_base = 'b';
static const char rules_key_modules = 'm';

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
void
rules_sandbox_readonly(lua_State *L, int idx)
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

/* require(name): another file of the rules folder, loaded once, as text. */
static int
rules_l_require(lua_State *L)
{
	struct rules *r = rules_of(L);
	const char *name = luaL_checkstring(L, 1);
	const char *err = NULL;

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
		rules_sandbox_push_env(L);
	if (lua_setupvalue(L, -2, 1) == NULL)
		lua_pop(L, 1);
	return 1;
}

void
rules_sandbox_open(struct rules *r)
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
			rules_guard_wrap(L, strlib, "find", GUARD_PATTERN_FIND, 0);
			rules_guard_wrap(L, strlib, "match", GUARD_PATTERN, 0);
			rules_guard_wrap(L, strlib, "gmatch", GUARD_PATTERN, 0);
			rules_guard_wrap(L, strlib, "gsub", GUARD_PATTERN, 0);
			rules_guard_wrap(L, strlib, "rep", GUARD_REP, 0);
			rules_guard_wrap(L, strlib, "upper", GUARD_LINEAR, 1);
			rules_guard_wrap(L, strlib, "lower", GUARD_LINEAR, 1);
			for (const char *const *f = (const char *const[]){ "reverse", "format",
				 "byte", NULL };
			     *f != NULL; f++)
				rules_guard_wrap(L, strlib, *f, GUARD_LINEAR, 0);
		} else if (strcmp(libs[i].name, LUA_TABLIBNAME) == 0) {
			rules_guard_wrap(L, lua_gettop(L), "move", GUARD_MOVE, 0);
			rules_guard_wrap(L, lua_gettop(L), "concat", GUARD_CONCAT, 0);
			rules_guard_wrap(L, lua_gettop(L), "unpack", GUARD_CONCAT, 0);
		}
		rules_sandbox_readonly(L, -1);
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
	rules_sandbox_readonly(L, -1);
	lua_setfield(L, base, "os");
	lua_pop(L, 1);
	lua_getfield(L, base, "setmetatable");
	lua_pushcclosure(L, rules_l_setmetatable, 1);
	lua_setfield(L, base, "setmetatable");
	lua_pushcfunction(L, rules_l_require);
	lua_setfield(L, base, "require");
	lua_pushcfunction(L, rules_l_load);
	lua_setfield(L, base, "load");
	/* loket, and print() as loket.log() */
	rules_loket_push(r);
	lua_getfield(L, -1, "log");
	lua_setfield(L, base, "print");
	rules_sandbox_readonly(L, -1);
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
void
rules_sandbox_push_env(lua_State *L)
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
