/* rulebook.h: the daemon's running rules, calendars and catalogue: load, reload, run, count. */
#ifndef LOKET_RULEBOOK_H
#define LOKET_RULEBOOK_H

#include <jansson.h>

struct conf;
struct loketd;

/* rulebook.c */
int rulebook_init(struct loketd *d, const char **error_r);
/*
 * Reload in two steps: prepare builds the new config's rules and calendars
 * (NULL with *error_r when any fails to load); commit swaps them in together
 * with the config they point into, discard drops them.
 */
struct rulebook_pending;
struct rulebook_pending *rulebook_prepare(struct loketd *d, const struct conf *conf,
    const char **error_r);
void rulebook_commit(struct loketd *d, struct rulebook_pending *p);
void rulebook_discard(struct rulebook_pending *p);
void rulebook_free(struct loketd *d);
/*
 * Logs that a rule failed (rule "file:line", result "error", ...) and where
 * the message says it failed (its leading "file.lua:N:", never the rest,
 * which can quote contact data): the first time at once, then at most once a
 * minute per rule and result, with how many failures there were in between.
 * Without a running rulebook (loketctl), every time.
 */
void rulebook_failed(struct loketd *d, const char *rule, const char *result,
    const char *message);
/*
 * For loketctl stats: the rules folder, the handlers per event, and the rules
 * that failed since they were loaded ("file:line result").
 */
json_t *rulebook_stats(struct loketd *d);
/*
 * For the admin (GET /api/v1/rules): the running rules (rules_describe),
 * each handler with its runs, errors and instructions as the metrics keep
 * them (since loketd started, across reloads), and the rules that failed
 * since they were loaded.
 */
json_t *rulebook_describe(struct loketd *d);
/*
 * Tries rules out on a sample contact, storing and sending nothing: the
 * engine of loketctl rules test and POST /api/v1/rules/test (rules_try.c).
 * sample: the contact as posted (borrowed; status and extra for an event
 * other than "contact"). *out_r: {"decisions": [{"rule", "line", "text"}],
 * "contact": {...as it would be stored}, "event", "then": {"event",
 * "decisions"} or null, "failed": n, "lines": [the printed lines]}. -1 with
 * *error_r naming the field when the sample is refused.
 */
int rulebook_try(struct loketd *d, struct rules *rules, const char *event, json_t *sample,
    int64_t at, json_t **out_r, const char **error_r);
/*
 * Replays rules on the contacts received from from (ms) until to (ms; 0:
 * now), read-only, at most limit of them (0: all): the engine of loketctl
 * rules replay and POST /api/v1/rules/replay. *out_r: {"contacts",
 * "changed", "failed", "complete" (false when limit stopped it), "rules":
 * [{"rule", "changed", "failed", "examples"}], "lines": [the printed
 * lines]}. progress (may be NULL) hears every 100 contacts.
 */
int rulebook_replay(struct loketd *d, struct rules *rules, int64_t from, int64_t to, size_t limit,
    void (*progress)(size_t seen, size_t changed, void *arg), void *progress_arg,
    json_t **out_r, const char **error_r);
/* Runs the contact rules on a prepared contact and applies their decisions to it. */
void rulebook_contact(struct loketd *d, json_t *doc);
/* The register's hooks into the rules (rulebook_init installs them in d->rules_hooks). */
extern const struct register_rules_hooks rulebook_register_hooks;
/*
 * Runs an event's rules after a write (escalated, resolved, ...) on the
 * stored contact; their decisions go to the register as a follow-up update.
 */
/* Takes over extra. */
void rulebook_event(struct loketd *d, const char *event, json_t *contact, json_t *extra);

/*
 * Subscribes the running rules to the register's events: the follow-up
 * events (escalated, resolved, reopened, closed, reply) and fired timers
 * (reminder, overdue; their action is written with the timer closed).
 */
int rulebook_subscribe(struct loketd *d);

#endif
