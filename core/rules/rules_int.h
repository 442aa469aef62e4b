/*
 * rules_int.h: the engine's state, shared by the files of the rules engine
 * (rules*.c) and by nobody else; the public interface is rules.h.
 */
#ifndef LOKET_RULES_INT_H
#define LOKET_RULES_INT_H

#include <jansson.h>
#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#include "rules.h"

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
/* Guarded library functions (find, match, ..., move, concat, unpack). */
#define RULES_GUARDS_MAX 16

struct rules_handler {
	char *event;
	char *where; /* "routing.lua:12" */
	int ref;     /* the function, in the registry */
	int priority;
	size_t order;
	/* The channels of its filter (bits of rules.channels); 0: every contact. */
	unsigned int channels;
	void *counter[RULES_RESULT_COUNT]; /* the host's, per outcome (rules_host.count) */
	void *cost; /* the host's (rules_host.cost) */
};

#define RULES_NEVENTS 9
/* Distinct channels that handler filters may name (the register knows four). */
#define RULES_CHANNELS_MAX 16

struct rules_guard;

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
	struct rules_guard *memo_guard[RULES_MEMO_MAX]; /* their state, kept alive by memo_ref */
	/* Every guarded library function's state, by its slot (rules_guard_wrap). */
	struct rules_guard *guard[RULES_GUARDS_MAX];
	int nguards;
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
	/*
	 * The same per event and channel (index + 1 in channels; 0 for a channel
	 * no filter names): the handlers whose filter lets that channel through.
	 */
	size_t *by_channel[RULES_NEVENTS][RULES_CHANNELS_MAX + 1];
	size_t nby_channel[RULES_NEVENTS][RULES_CHANNELS_MAX + 1];
	/* The run in progress: its handlers, the one running, its decisions. */
	const size_t *run_list;
	size_t run_n, run_pos;
	json_t *decisions; /* of the run, in the order the handlers ran */
	size_t run_before;  /* how many there were when the running handler began */
	json_t *run_contact;  /* what lazy reads of the contact come from; NULL after the run */
	const void *run_data; /* the run's contact data table (alive on the stack); NULL after */
	unsigned int run_nils; /* writable fields a rule set to nil (bit per rules_writable) */
	/* The channels handler filters name; a channel's bit is 1 << its index here. */
	char *channels[RULES_CHANNELS_MAX];
	int nchannels;
	unsigned int log_lines; /* loket.log lines of the running handler call */
	int run_event;		/* the run's event, its index in rules_events */
	int trying;		/* a run of rules_run_try: nothing counted */
	/* rules_run_try's loket.log, instead of the host's */
	void (*try_log)(void *arg, const char *rule, const char *msg);
	void *try_log_arg;
	char **files; /* the rule files loaded, in load order */
	size_t nfiles;
};

/* The engine of a state, kept in the state's extra space: every guarded call asks for it. */
static inline struct rules *
rules_of(lua_State *L)
{
	return *(struct rules **)lua_getextraspace(L);
}

/* rules.c */
extern const char *const rules_events[RULES_NEVENTS + 1];

/* rules_alloc.c: the state's allocator, which keeps it under its memory cap */
void *rules_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* Gives back the slabs of r's small blocks; after lua_close only. */
void rules_alloc_free_slabs(struct rules *r);

/* rules_guard.c: the instruction, time and work limits of a call, and its named outcome */
/* Ends the running handler with why; raises a Lua error naming the rule's file:line. */
void rules_guard_stop(lua_State *L, struct rules *r, enum rules_result why, const char *what);
void rules_guard_begin(struct rules *r, uint64_t budget);
void rules_guard_arm(struct rules *r, uint64_t budget);
void rules_guard_disarm(struct rules *r);
enum rules_result rules_guard_outcome(struct rules *r, int rc);
int rules_guard_msgh(lua_State *L);
/* Runs the function on top of the stack with nargs; *msg_r lives on the stack until popped. */
enum rules_result rules_guard_pcall(struct rules *r, int nargs, uint64_t budget,
    const char **msg_r);
enum rules_guard_kind {
	GUARD_PATTERN,	    /* find, match, gmatch, gsub */
	GUARD_PATTERN_FIND, /* find: a plain search (4th argument) is linear */
	GUARD_REP,
	GUARD_LINEAR, /* upper, lower, reverse, format, byte: the subject's length */
	GUARD_MOVE,
	GUARD_CONCAT,
};
/* Wraps lib[name] (lib: the library table's stack index) in a guard of kind. */
void rules_guard_wrap(lua_State *L, int lib, const char *name, enum rules_guard_kind kind,
    int memo);

/* rules_sandbox.c: the environment rules see */
void rules_sandbox_open(struct rules *r);
void rules_sandbox_readonly(lua_State *L, int idx);
void rules_sandbox_push_env(lua_State *L);

/* rules_loket.c: the loket library (loket.on, .log, .classify, .calendar, .catalogue, .now) */
void rules_loket_push(struct rules *r);
const char *rules_loket_clean_message(char *buf, const char *msg);
lua_Integer rules_loket_duration_add(lua_State *L, const struct calendar *cal, lua_Integer t,
    const char *dur);

/* rules_load.c: reading rule files into the state */
/*
 * Loads name of the rules folder: a rule file (nresults 0) runs under its
 * own guards; a module (nresults 1) leaves its result on the stack.
 */
int rules_load_file(struct rules *r, const char *name, int nresults, const char **error_r);
/* Loads every *.lua file of r->dir in name order. */
int rules_load_folder(struct rules *r, const char **error_r);

/* rules_json.c: the bridge between jansson and Lua values */
void rules_json_push(lua_State *L, json_t *v, int depth);
json_t *rules_json_from_lua(lua_State *L, int idx, int depth);

/* rules_contact.c: the contact object handlers see, and the decisions its methods make */
void rules_contact_setup(lua_State *L);
void rules_contact_push(struct rules *r, json_t *contact);
json_t *rules_contact_decide(struct rules *r, const char *type);
void rules_contact_decide_str(json_t *dec, const char *key, const char *value);

#endif
