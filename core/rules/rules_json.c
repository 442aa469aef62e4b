/*
 * rules_json.c: the bridge between the register's JSON (jansson) and Lua
 * values, depth-limited both ways.
 */
#include "config.h"

#include <lua.h>

#include "rules_int.h"

/* JSON -> Lua, depth-limited. */
void
rules_json_push(lua_State *L, json_t *v, int depth)
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
			rules_json_push(L, sub, depth + 1);
			lua_setfield(L, -2, key);
		}
		break;
	case JSON_ARRAY:
		lua_createtable(L, (int)json_array_size(v), 0);
		json_array_foreach(v, i, sub) {
			rules_json_push(L, sub, depth + 1);
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
json_t *
rules_json_from_lua(lua_State *L, int idx, int depth)
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
				json_array_append_new(out, rules_json_from_lua(L, -1, depth + 1));
				lua_pop(L, 1);
			}
			return out;
		}
		out = json_object();
		lua_pushnil(L);
		while (lua_next(L, idx) != 0) {
			if (lua_type(L, -2) == LUA_TSTRING)
				json_object_set_new(out, lua_tostring(L, -2),
				    rules_json_from_lua(L, -1, depth + 1));
			lua_pop(L, 1);
		}
		return out;
	default:
		return json_null();
	}
}
