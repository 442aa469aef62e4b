/*
 * rules.h: the Lua rules engine: one sandboxed state, handlers per event,
 * and the decisions they take, handed back as JSON for the register to apply.
 */
#ifndef LOKET_RULES_H
#define LOKET_RULES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct rules;
struct catalogue;
struct calendar;

/* How a rule call ended; every call ends in exactly one of these. */
enum rules_result {
	RULES_OK,
	RULES_ERROR,   /* the rule raised an error */
	RULES_BUDGET,  /* it ran over its instruction budget */
	RULES_TIMEOUT, /* it ran over its wall-clock limit */
	RULES_MEMORY,  /* the state ran out of its memory cap */
	RULES_ERRERR,  /* the error handler itself failed */
	RULES_RESULT_COUNT,
};

struct rules_limits {
	uint64_t instructions; /* per handler call */
	uint64_t wall_ms;      /* per handler call */
	size_t memory;         /* for the whole state */
};

/* What the engine needs from its host (loketd, or loketctl for rule tests). */
struct rules_host {
	void *arg;
	const struct catalogue *(*catalogue)(void *arg);
	/* The calendar of a department (or organisation); NULL when unknown. */
	const struct calendar *(*calendar)(void *arg, const char *unit);
	int (*department_known)(void *arg, const char *department);
	/*
	 * Called once per handler call with its outcome; may be NULL. cache is the
	 * host's own slot for this rule and outcome (NULL at first), kept as long as
	 * these rules, so that counting can skip the lookup of the rule.
	 */
	void (*count)(void *arg, const char *rule, enum rules_result result, void **cache);
	/*
	 * Called once per handler call with about how many Lua instructions it
	 * took (counted in steps of the hook, 1000); may be NULL. cache as for count.
	 */
	void (*cost)(void *arg, const char *rule, uint64_t instructions, void **cache);
	/* A line from loket.log(); may be NULL. */
	void (*log)(void *arg, const char *rule, const char *msg);
};

const char *rules_result_name(enum rules_result result);
/*
 * Compiles every *.lua file of dir in name order into a fresh state. On
 * error nothing is kept and *error_r is "file:line: ..." (util_error).
 */
int rules_load(const char *dir, const struct rules_limits *limits, const struct rules_host *host,
    struct rules **rules_r, const char **error_r);
void rules_free(struct rules *r);
size_t rules_handler_count(const struct rules *r, const char *event);
/* The events rules can handle, in their order: the i-th name, or NULL past the last. */
const char *rules_event_name(int i);
/* Whether rules can handle event ("contact", "escalated", ...). */
int rules_event_known(const char *event);
/*
 * Runs the handlers of event on contact (borrowed; the register's JSON), at
 * now_ms (the real or a test clock). Returns the decisions as a new JSON
 * array of {"rule", "type", ...}; a failing handler is skipped and shows as
 * {"rule", "type": "failed", "result", "message"}.
 */
json_t *rules_run(struct rules *r, const char *event, json_t *contact, json_t *extra,
    int64_t now_ms);

/*
 * rules_run for trying rules out (loketctl rules test, the admin's test in
 * the browser): neither count nor cost is called, so the metrics hold live
 * contacts only, and loket.log lines go to log (with log_arg) instead of the
 * host's. The same decisions as rules_run.
 */
json_t *rules_run_try(struct rules *r, const char *event, json_t *contact, json_t *extra,
    int64_t now_ms, void (*log)(void *arg, const char *rule, const char *msg), void *log_arg);
/*
 * The loaded rules as JSON: {"dir", "files": [names of *.lua, in load
 * order], "handlers": [{"event", "rule": "file:line", "file", "line",
 * "channels": [...] or null for every contact, "priority"}]} in running
 * order per event. each (may be NULL) is called per handler with its JSON
 * object and the host's caches (rules_host.count, .cost) to add to it.
 */
json_t *rules_describe(const struct rules *r,
    void (*each)(void *arg, json_t *handler, void *const *count_cache, void *cost_cache),
    void *arg);

#endif
