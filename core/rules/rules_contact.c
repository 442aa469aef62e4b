/*
 * rules_contact.c: the contact object a handler sees: fields read lazily
 * from the register's JSON, writes checked, and the methods (escalate,
 * resolve, assign, tag, remind, reply) that turn into decisions.
 */
#include "config.h"

#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#include "calendar.h"
#include "register.h"
#include "rules_int.h"

/* The key of the data tables' metatable in the registry: its address is unique. */
static const char rules_key_data_mt = 'd';

/*
 * A new decision of the running handler, appended to the run's list (which
 * owns it): methods add their fields once every check that could raise an
 * error has passed.
 */
json_t *
rules_contact_decide(struct rules *r, const char *type)
{
	json_t *dec = json_object();

	json_object_set_new(dec, "type", json_string(type));
	json_object_set_new(dec, "rule", json_string(r->current != NULL ? r->current : "?"));
	json_array_append_new(r->decisions, dec);
	return dec;
}

/* A string a rule gave, into a decision. */
void
rules_contact_decide_str(json_t *dec, const char *key, const char *value)
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
	/* The run's data table is alive, so no other table has its address. */
	if (r->run_data == NULL || lua_type(L, -1) != LUA_TTABLE || lua_topointer(L, -1) != r->run_data)
		luaL_error(L, "%s: not the contact of this run; a rule acts only on the contact "
			      "its handler was called with", what);
	lua_pop(L, 2);
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
	return rules_loket_duration_add(L, cal, (lua_Integer)(r->now_ms / 1000), within) * 1000;
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
	dec = rules_contact_decide(rules_of(L), "escalate");
	rules_contact_decide_str(dec, "to", to);
	rules_contact_decide_str(dec, "reason", reason);
	if (within != NULL) {
		rules_contact_decide_str(dec, "within", within);
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
	rules_contact_decide_str(rules_contact_decide(rules_of(L), "resolve"), "answer", answer);
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
	rules_contact_decide_str(rules_contact_decide(rules_of(L), "assign"), "to", to);
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
	json_object_set_new(rules_contact_decide(rules_of(L), "tag"), "tags", tags);
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
	dec = rules_contact_decide(rules_of(L), "remind");
	rules_contact_decide_str(dec, "after", after);
	json_object_set_new(dec, "due_at", json_integer(due));
	rules_contact_decide_str(dec, "unless", unless);
	rules_contact_decide_str(dec, "call", call);
	if (has_escalate) {
		json_t *esc = json_object();

		rules_contact_decide_str(esc, "to", to);
		rules_contact_decide_str(esc, "reason", reason);
		json_object_set_new(dec, "escalate", esc);
	}
	return 0;
}

/*
 * c:reply{template = "escalated", via = "email", within = "2d", unit = "omgeving"}:
 * within is the answer the template promises, counted in the calendar of unit,
 * else of the contact's department or organisation.
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
	/*
	 * unit: whose calendar counts within (a department or an organisation);
	 * by default the contact's department, else its organisation. An
	 * acknowledgement promises what the e-loket's confirmation page shows:
	 * the product's service time in the calendar of the product's unit.
	 */
	unit = rules_opt_field(L, 2, "unit", RULES_LABEL_MAX, 1);
	within = rules_opt_field(L, 2, "within", RULES_LABEL_MAX, 1);
	if (unit != NULL && within == NULL)
		return luaL_error(L, "reply: 'unit' is the calendar 'within' is counted in; give both");
	if (unit != NULL) {
		due = rules_due(L, unit, within);
	} else if (within != NULL) {
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
	dec = rules_contact_decide(rules_of(L), "reply");
	if (within != NULL) {
		rules_contact_decide_str(dec, "within", within);
		json_object_set_new(dec, "due_at", json_integer(due));
	}
	rules_contact_decide_str(dec, "template", tpl);
	rules_contact_decide_str(dec, "via", via);
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
	dec = rules_contact_decide(rules_of(L), "set");
	rules_contact_decide_str(dec, "field", key);
	if (!lua_isnil(L, 3))
		json_object_set_new(dec, "value", rules_json_from_lua(L, 3, 0));
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
	/* The methods (upvalue 1) first: a contact's field cannot hide them. */
	lua_pushvalue(L, 2);
	if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
		return 1;
	lua_pop(L, 1);
	if (r->run_contact == NULL || lua_topointer(L, 1) != r->run_data)
		return 0;
	key = lua_tostring(L, 2);
	/* A field a rule set to nil reads as nil, not as it came in. */
	if (r->run_nils != 0 && (i = rules_writable_index(key)) >= 0 && (r->run_nils & (1u << i)))
		return 0;
	if ((v = json_object_get(r->run_contact, key)) == NULL)
		return 0;
	rules_json_push(L, v, 0);
	lua_pushvalue(L, 2);
	lua_pushvalue(L, -2);
	lua_rawset(L, 1);
	return 1;
}

/* The metatable of the contacts' data tables, with the shared methods, in the registry. */
void
rules_contact_setup(lua_State *L)
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

	lua_createtable(L, 0, 1);
	luaL_newlib(L, methods);
	lua_pushcclosure(L, rules_contact_lazy, 1);
	lua_setfield(L, -2, "__index");
	lua_rawsetp(L, LUA_REGISTRYINDEX, &rules_key_data_mt);
}

/*
 * A contact object for one run: an empty proxy whose metatable's __index is
 * its data table, so reading a field is a table lookup (the first read of
 * each field fills it from the JSON, see rules_contact_lazy); writes go
 * through __newindex and are checked. Leaves the data table's address in
 * r->run_data: the proxy on the stack keeps it alive for the run.
 */
void
rules_contact_push(struct rules *r, json_t *contact)
{
	lua_State *L = r->L;

	lua_newtable(L);	  /* the proxy */
	lua_createtable(L, 0, 3); /* its metatable */
	lua_createtable(L, 0, 8); /* the data */
	lua_rawgetp(L, LUA_REGISTRYINDEX, &rules_key_data_mt);
	lua_setmetatable(L, -2);
	r->run_data = lua_topointer(L, -1);
	r->run_contact = contact;
	r->run_nils = 0;
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, rules_contact_newindex);
	lua_setfield(L, -2, "__newindex");
	lua_pushliteral(L, "contact");
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
}
