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
