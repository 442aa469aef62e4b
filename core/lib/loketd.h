/*
 * loketd.h: the daemon's one mutable state, handed to every layer. It holds
 * each layer's handle and declares no function, so including it calls
 * nothing: a file still reaches another layer only through that layer's
 * own header, which tests/layers.sh checks goes down.
 */
#ifndef LOKET_LOKETD_H
#define LOKET_LOKETD_H

#include <stdint.h>
#include <time.h>

struct auth;
struct conf;
struct ctl;
struct event;
struct events;
struct event_base;
struct http;
struct metrics;
struct outbox;
struct plugins;
struct register_rules_hooks;
struct register_submission;
struct rulebook_host;
struct rules;
struct store;
struct units;

struct loketd {
	struct event_base *base;
	struct conf *conf; /* the current snapshot; reload swaps it */
	const char *conf_path;
	struct metrics *metrics;
	struct http *http;
	struct ctl *ctl;
	struct plugins *plugins;
	struct store *store;
	struct auth *auth;
	struct rulebook_host *rulebook;
	struct units *units;
	struct rules *rules;
	struct outbox *outbox;
	struct events *events; /* register events to subscribers */
	/* Installed by the rules layer: how the register runs rules during intake. */
	const struct register_rules_hooks *rules_hooks;
	/* register_submit.c: submissions behind a thread lookup, in the order they came. */
	struct register_submission *submissions;
	struct event *timer_ev;
	int64_t timer_armed_ms; /* when timer_ev fires; 0 when not armed */
	int timers_busy;
	void *timers_inflight; /* json_t: fired timers whose action is not settled yet */
	struct event *sig_term;
	struct event *sig_int;
	struct event *sig_hup;
	struct event *drain_timer;
	int stopping;
	int exit_code;
	time_t started;
	uint64_t reloads;
	uint64_t reload_failures;
	/*
	 * Installed by the daemon: what loketctl reload does (reload this node,
	 * then ask the other nodes sharing the register), for layers that may
	 * not call the daemon (POST /api/v1/rules/reload). *told_r: whether the
	 * other nodes were asked.
	 */
	int (*reload_all)(struct loketd *d, int *told_r, const char **error_r);
	/* Why the last reload failed ("" after a good one) and when (ms; 0: never). */
	char reload_error[512];
	int64_t reload_failed_at;
};

#endif
