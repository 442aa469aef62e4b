/* ctl_cmd.c: the daemon side of every loketctl sub-command, one table entry each. */
#include "config.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "ctl.h"
#include "http.h"
#include "loketd.h"
#include "plugin.h"
#include "rulebook.h"

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

static void
ctl_cmd_reload(struct ctl_conn *conn, struct loketd *d, json_t *args)
{
	char *err = NULL;

	if (loketd_reload(d, &err) < 0) {
		ctl_fail(conn, err != NULL ? err : "reload failed");
		free(err);
		return;
	}
	ctl_reply(conn, json_pack("{s:s}", "config", d->conf_path));
}

const struct ctl_cmd ctl_cmds[] = {
	{ "version", ctl_cmd_version },
	{ "stats", ctl_cmd_stats },
	{ "reload", ctl_cmd_reload },
	{ "token add", auth_ctl_add },
	{ "token list", auth_ctl_list },
	{ "token revoke", auth_ctl_revoke },
	{ NULL, NULL },
};
