/* loketctl_rules.c: `loketctl rules test` and `rules replay`: rules tried out without side effects. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "loketctl.h"
#include "loketd.h"
#include "register.h"
#include "rulebook.h"
#include "rules.h"
#include "store.h"
#include "units.h"
#include "util.h"

static void
rules_test_log_cb(void *arg, const char *rule, const char *msg)
{
	printf("  %-28s log: %s\n", rule, msg);
}

static int
rules_setup(const struct conf *conf, const char *dir, struct units **units_r,
    struct rules **rules_r)
{
	struct rules_limits limits = { .instructions = (uint64_t)conf->rules_instructions,
		.wall_ms = conf->rules_timeout_ms, .memory = (size_t)conf->rules_memory };
	struct rules_host host = { 0 };
	const char *err = NULL;

	if (units_load(conf, units_r, &err) < 0) {
		fprintf(stderr, "loketctl: %s\n", err);
		return -1;
	}
	units_rules_host(*units_r, &host);
	host.log = rules_test_log_cb;
	if (rules_load(dir, &limits, &host, rules_r, &err) < 0) {
		fprintf(stderr, "loketctl: the rules do not load: %s\n", err);
		units_free(*units_r);
		return -1;
	}
	return 0;
}

static int
rules_test_usage(void)
{
	fprintf(stderr, "usage: loketctl rules test DIR CONTACT.json [--at \"YYYY-MM-DD HH:MM\"] "
			"[--event EVENT]\n");
	return 2;
}

static int
cmd_rules_test(const struct conf *conf, int argc, char **argv)
{
	struct loketd d = { .conf = (struct conf *)conf, .rules_hooks = &rulebook_register_hooks };
	struct units *units = NULL;
	struct rules *rules = NULL;
	json_t *body, *out = NULL, *line;
	json_error_t jerr;
	int64_t at = util_time_ms();
	const char *event = "contact", *pos[2], *given;
	const char *error = NULL;
	int npos = 0, rc;
	size_t i;

	for (int k = 0; k < argc; k++) {
		if (strcmp(argv[k], "--at") == 0 && k + 1 < argc) {
			if (util_time_parse_local(argv[++k], &at) < 0) {
				fprintf(stderr, "loketctl: --at: expected \"2026-12-24 16:55\", got '%s'\n",
				    argv[k]);
				return 2;
			}
		} else if (strcmp(argv[k], "--event") == 0 && k + 1 < argc) {
			event = argv[++k];
		} else if (argv[k][0] == '-' || npos == 2) {
			return rules_test_usage();
		} else {
			pos[npos++] = argv[k];
		}
	}
	if (npos != 2)
		return rules_test_usage();
	if (!rules_event_known(event)) {
		fprintf(stderr, "loketctl: --event: '%s' is no event; expected contact, reply, "
				"escalated, resolved, closed, reopened, overdue, missed_call or reminder\n",
		    event);
		return 2;
	}
	if ((body = json_load_file(pos[1], JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		fprintf(stderr, "loketctl: %s:%d: %s\n", pos[1], jerr.line, jerr.text);
		return 2;
	}
	/* The sample is checked before the rules load: its mistakes are the likelier ones. */
	if (json_is_object(body) && strcmp(event, "contact") != 0 &&
	    json_object_get(body, "status") != NULL &&
	    register_status_name(json_string_value(json_object_get(body, "status"))) == NULL) {
		fprintf(stderr, "loketctl: %s: status: expected open, escalated, resolved or closed\n",
		    pos[1]);
		json_decref(body);
		return 2;
	}
	if (rules_setup(conf, pos[0], &units, &rules) < 0) {
		json_decref(body);
		return 2;
	}
	d.units = units;
	rc = rulebook_try(&d, rules, event, body, at, &out, &error);
	json_decref(body);
	if (rc < 0) {
		fprintf(stderr, "loketctl: %s: %s\n", pos[1], error);
		rules_free(rules);
		units_free(units);
		return 2;
	}
	given = json_string_value(json_object_get(json_object_get(out, "contact"), "status"));
	if (strcmp(event, "contact") == 0)
		printf("rules of %s on %s\n", pos[0], pos[1]);
	else
		printf("rules of \"%s\" in %s on %s (status %s)\n", event, pos[0], pos[1],
		    json_string_value(json_object_get(out, "status_before")) != NULL ?
			json_string_value(json_object_get(out, "status_before")) :
			given);
	json_array_foreach(json_object_get(out, "lines"), i, line)
		printf("%s\n", json_string_value(line));
	rc = json_integer_value(json_object_get(out, "failed")) > 0 ? 1 : 0;
	json_decref(out);
	rules_free(rules);
	units_free(units);
	return rc;
}

static void
replay_progress_cb(size_t seen, size_t changed, void *arg)
{
	fprintf(stderr, "\rreplay: %zu contacts, %zu would change", seen, changed);
	fflush(stderr);
}

static int
cmd_rules_replay(const struct conf *conf, int argc, char **argv)
{
	struct loketd d = { .conf = (struct conf *)conf, .rules_hooks = &rulebook_register_hooks };
	struct units *units = NULL;
	struct rules *rules = NULL;
	int64_t since = 0;
	const char *err = NULL;
	json_t *out = NULL, *line;
	size_t i;
	int rc, tty;

	if (argc == 3 && strcmp(argv[1], "--since") == 0) {
		if (util_time_parse_local(argv[2], &since) < 0) {
			fprintf(stderr, "loketctl: --since: expected a date like 2026-11-01\n");
			return 2;
		}
	} else if (argc != 1) {
		fprintf(stderr, "usage: loketctl rules replay DIR [--since YYYY-MM-DD]\n");
		return 2;
	}
	if (rules_setup(conf, argv[0], &units, &rules) < 0)
		return 2;
	d.units = units;
	tty = isatty(STDERR_FILENO);
	rc = rulebook_replay(&d, rules, since, 0, 0, tty ? replay_progress_cb : NULL, NULL, &out,
	    &err);
	if (tty)
		fprintf(stderr, "\r%60s\r", "");
	if (rc < 0)
		fprintf(stderr, "loketctl: %s\n", err != NULL ? err : "replay failed");
	json_array_foreach(json_object_get(out, "lines"), i, line)
		printf("%s\n", json_string_value(line));
	json_decref(out);
	rules_free(rules);
	units_free(units);
	return rc < 0 ? 2 : 0;
}

int
cmd_rules(const struct conf *conf, int argc, char **argv)
{
	if (argc >= 1 && strcmp(argv[0], "test") == 0)
		return cmd_rules_test(conf, argc - 1, argv + 1);
	if (argc >= 1 && strcmp(argv[0], "replay") == 0)
		return cmd_rules_replay(conf, argc - 1, argv + 1);
	fprintf(stderr, "usage: loketctl rules test DIR CONTACT.json [--at \"YYYY-MM-DD HH:MM\"] "
			"[--event EVENT]\n"
			"       loketctl rules replay DIR [--since YYYY-MM-DD]\n");
	return 2;
}
