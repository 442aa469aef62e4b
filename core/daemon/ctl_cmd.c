/* ctl_cmd.c: the daemon side of every loketctl sub-command, one table entry each. */
#include "config.h"

#include <sodium.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "ctl.h"
#include "http.h"
#include "log.h"
#include "daemon.h"
#include "loketd.h"
#include "plugin.h"
#include "rulebook.h"
#include "session.h"
#include "store.h"
#include "timers.h"
#include "util.h"

static void
ctl_cmd_version(struct ctl_conn *conn, struct loketd *d, json_t *args)
{
	char abi[32];

	snprintf(abi, sizeof(abi), "%d.%d", LOKET_ABI_MAJOR, LOKET_ABI_MINOR);
	ctl_reply(conn, json_pack("{s:s, s:s}", "version", PACKAGE_VERSION, "abi", abi));
}

static void
ctl_cmd_stats(struct ctl_conn *conn, struct loketd *d, json_t *args)
{
	json_t *plugins = json_array();

	for (struct loket_plugin *p = d->plugins != NULL ? d->plugins->head : NULL; p != NULL;
	     p = p->next)
		json_array_append_new(plugins, json_pack("{s:s, s:s}", "name", p->name, "version",
						   p->info->version != NULL ? p->info->version : ""));
	ctl_reply(conn,
	    json_pack("{s:s, s:i, s:I, s:I, s:I, s:i, s:i, s:o, s:o}", "version", PACKAGE_VERSION,
		"pid", (int)getpid(), "uptime_seconds", (json_int_t)(time(NULL) - d->started),
		"reloads", (json_int_t)d->reloads, "reload_failures", (json_int_t)d->reload_failures,
		"http_inflight", (int)http_inflight(d->http), "http_connections",
		(int)http_guard_connections_of(d->http), "plugins", plugins, "rules",
		rulebook_stats(d)));
}

/*
 * Reloads this node, then tells the other nodes sharing the register, each
 * of which reloads its own files (docs/storage.md, "Several nodes"). A
 * reload that failed here tells nobody: the operator fixes it and asks
 * again. SIGHUP reloads this node only.
 */
static void
ctl_cmd_reload(struct ctl_conn *conn, struct loketd *d, json_t *args)
{
	const char *err = NULL;
	int told;

	if (loketd_reload(d, &err) < 0) {
		ctl_fail(conn, err != NULL ? err : "reload failed");
		return;
	}
	told = store_broadcast(d->store, "reload") == 0;
	if (!told)
		log_warnx("loketd", "reloaded here, but could not ask the other nodes to reload");
	ctl_reply(conn, json_pack("{s:s, s:b}", "config", d->conf_path, "nodes_told", told));
}

/* Tests only: moves the daemon's clock forward (util.h, "The test clock"). */
static void
ctl_cmd_debug_clock(struct ctl_conn *conn, struct loketd *d, json_t *args)
{
	const char *by = json_string_value(json_object_get(args, "by"));
	uint64_t ms;
	char now[40];

	if (!util_test_clock_on()) {
		ctl_fail(conn,
		    "the test clock is off: it is for tests only, and on only when "
		    "loketd was started with LOKET_TEST_CLOCK=1 in its environment");
		return;
	}
	if (by == NULL || util_parse_duration_ms(by, &ms) < 0 || ms == 0 || ms > INT64_MAX / 2
	    || util_test_clock_move((int64_t)ms) < 0) {
		ctl_fail(conn, "expected how far to move the clock forward, such as 90s, 5m or 2h");
		return;
	}
	log_warnx("loketd", "test clock moved forward by %s", by);
	timers_clock_moved(d);
	util_time_format(util_time_ms(), now, sizeof(now));
	ctl_reply(conn, json_pack("{s:s}", "now", now));
}

/* The answer of a token command, on its connection. */
static void
ctl_cmd_answer_cb(json_t *answer, const char *error, void *arg)
{
	struct ctl_conn *conn = arg;

	if (error != NULL)
		ctl_fail(conn, error);
	else
		ctl_reply(conn, answer);
}

static void
ctl_cmd_token_add(struct ctl_conn *conn, struct loketd *d, json_t *args)
{
	auth_token_add(d, args, ctl_cmd_answer_cb, conn);
}

static void
ctl_cmd_token_list(struct ctl_conn *conn, struct loketd *d, json_t *args)
{
	(void)args;
	auth_token_list(d, ctl_cmd_answer_cb, conn);
}

static void
ctl_cmd_token_revoke(struct ctl_conn *conn, struct loketd *d, json_t *args)
{
	auth_token_revoke(d, args, ctl_cmd_answer_cb, conn);
}

/* The password was copied for hashing: the request's copy is wiped now. */
static void
ctl_cmd_wipe_password(json_t *args)
{
	json_t *pw = json_object_get(args, "password");

	if (json_is_string(pw))
		sodium_memzero((char *)json_string_value(pw), json_string_length(pw));
}

static void
ctl_cmd_user_add(struct ctl_conn *conn, struct loketd *d, json_t *args)
{
	users_add(d, args, ctl_cmd_answer_cb, conn);
	ctl_cmd_wipe_password(args);
}

static void
ctl_cmd_user_passwd(struct ctl_conn *conn, struct loketd *d, json_t *args)
{
	users_passwd(d, args, ctl_cmd_answer_cb, conn);
	ctl_cmd_wipe_password(args);
}

static void
ctl_cmd_user_disable(struct ctl_conn *conn, struct loketd *d, json_t *args)
{
	users_disable(d, args, ctl_cmd_answer_cb, conn);
}

static void
ctl_cmd_user_list(struct ctl_conn *conn, struct loketd *d, json_t *args)
{
	(void)args;
	users_list(d, ctl_cmd_answer_cb, conn);
}

const struct ctl_cmd ctl_cmds[] = {
	{ "version", ctl_cmd_version },
	{ "stats", ctl_cmd_stats },
	{ "reload", ctl_cmd_reload },
	{ "token add", ctl_cmd_token_add },
	{ "token list", ctl_cmd_token_list },
	{ "token revoke", ctl_cmd_token_revoke },
	{ "debug clock", ctl_cmd_debug_clock },
	{ "user add", ctl_cmd_user_add },
	{ "user passwd", ctl_cmd_user_passwd },
	{ "user disable", ctl_cmd_user_disable },
	{ "user list", ctl_cmd_user_list },
	{ NULL, NULL },
};
