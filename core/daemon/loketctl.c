/* loketctl.c: the admin's command line: talks to a running loketd over its control socket. */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "conf.h"
#include "loketctl.h"
#include "loketd.h"
#include "plugin.h"
#include "rulebook.h"

struct ctl_client_cmd {
	const char *name;
	const char *usage;
	int (*fn)(const struct conf *conf, int argc, char **argv);
};

/* Sends one request and returns the daemon's answer object, or NULL after printing why. */
static json_t *
ctl_call(const struct conf *conf, const char *cmd, json_t *args)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	json_t *req = json_pack("{s:s, s:o}", "cmd", cmd, "args", args != NULL ? args : json_array());
	char *line = json_dumps(req, JSON_COMPACT);
	json_t *answer = NULL;
	json_error_t jerr;
	FILE *fp = NULL;
	int fd = -1;

	json_decref(req);
	if (line == NULL)
		goto out;
	if (strlen(conf->control_socket) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "loketctl: control socket path too long\n");
		goto out;
	}
	strcpy(sun.sun_path, conf->control_socket);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == ENOENT || errno == ECONNREFUSED)
			fprintf(stderr, "loketctl: loketd is not running (nothing answers on %s)\n",
			    conf->control_socket);
		else
			fprintf(stderr, "loketctl: cannot reach loketd at %s: %s\n",
			    conf->control_socket, strerror(errno));
		goto out;
	}
	if (write(fd, line, strlen(line)) < 0 || write(fd, "\n", 1) < 0) {
		fprintf(stderr, "loketctl: cannot send to loketd: %s\n", strerror(errno));
		goto out;
	}
	if ((fp = fdopen(fd, "r")) == NULL)
		goto out;
	fd = -1;
	answer = json_loadf(fp, JSON_DISABLE_EOF_CHECK, &jerr);
	if (answer == NULL)
		fprintf(stderr, "loketctl: loketd closed the connection without an answer\n");
out:
	/* The request may carry a password (user add, user passwd). */
	if (line != NULL)
		explicit_bzero(line, strlen(line));
	free(line);
	if (fp != NULL)
		fclose(fp);
	if (fd >= 0)
		close(fd);
	return answer;
}

/* Runs cmd and returns its result (a new reference), or NULL after printing the error. */
static json_t *
ctl_result(const struct conf *conf, const char *cmd, json_t *args)
{
	json_t *answer = ctl_call(conf, cmd, args), *result;

	if (answer == NULL)
		return NULL;
	if (!json_is_true(json_object_get(answer, "ok"))) {
		const char *e = json_string_value(json_object_get(answer, "error"));

		fprintf(stderr, "loketctl: %s: %s\n", cmd, e != NULL ? e : "failed");
		json_decref(answer);
		return NULL;
	}
	result = json_incref(json_object_get(answer, "result"));
	json_decref(answer);
	return result;
}

static void
print_value(const char *key, json_t *v, int indent)
{
	const char *k;
	json_t *sub;
	size_t i;

	if (json_is_object(v)) {
		if (key != NULL)
			printf("%*s%s:\n", indent, "", key);
		json_object_foreach(v, k, sub)
			print_value(k, sub, key != NULL ? indent + 2 : indent);
	} else if (json_is_array(v)) {
		printf("%*s%s:%s\n", indent, "", key, json_array_size(v) == 0 ? " (none)" : "");
		json_array_foreach(v, i, sub) {
			if (json_is_object(sub)) {
				const char *name = json_string_value(json_object_get(sub, "name"));
				char *s = json_dumps(sub, JSON_COMPACT);

				printf("%*s- %s\n", indent + 2, "", name != NULL ? name : s);
				free(s);
			} else if (json_is_string(sub)) {
				printf("%*s- %s\n", indent + 2, "", json_string_value(sub));
			} else {
				print_value("-", sub, indent + 2);
			}
		}
	} else {
		char *s = json_dumps(v, JSON_ENCODE_ANY);

		if (json_is_string(v))
			printf("%*s%s: %s\n", indent, "", key, json_string_value(v));
		else
			printf("%*s%s: %s\n", indent, "", key, s != NULL ? s : "?");
		free(s);
	}
}

static int
cmd_version(const struct conf *conf, int argc, char **argv)
{
	json_t *r;

	printf("loketctl %s (plugin ABI %d.%d)\n", PACKAGE_VERSION, LOKET_ABI_MAJOR,
	    LOKET_ABI_MINOR);
	if ((r = ctl_result(conf, "version", NULL)) == NULL)
		return 1;
	printf("loketd %s (plugin ABI %s)\n", json_string_value(json_object_get(r, "version")),
	    json_string_value(json_object_get(r, "abi")));
	json_decref(r);
	return 0;
}

static int
cmd_stats(const struct conf *conf, int argc, char **argv)
{
	json_t *r = ctl_result(conf, "stats", NULL);

	if (r == NULL)
		return 1;
	print_value(NULL, r, 0);
	json_decref(r);
	return 0;
}

static int
cmd_reload(const struct conf *conf, int argc, char **argv)
{
	json_t *r = ctl_result(conf, "reload", NULL);

	if (r == NULL)
		return 1;
	printf("reloaded %s\n", json_string_value(json_object_get(r, "config")));
	json_decref(r);
	return 0;
}

static int
cmd_check_config(const struct conf *conf, int argc, char **argv)
{
	struct plugins *plugins = NULL;
	const char *err = NULL;
	struct loketd d = { .conf = (struct conf *)conf };
	struct rulebook_pending *rb;
	const char *rules_err;

	if (plugins_open(conf, NULL, &plugins, &err) < 0) {
		fprintf(stderr, "loketctl: %s\n", err);
		return 2;
	}
	plugins_close(plugins);
	/* What loketd loads at start and on reload: calendars, the catalogue, the rules. */
	if ((rb = rulebook_prepare(&d, conf, &rules_err)) == NULL) {
		fprintf(stderr, "loketctl: %s\n", rules_err);
		return 2;
	}
	rulebook_discard(rb);
	printf("%s: configuration OK\n", conf->path);
	return 0;
}

static int
cmd_token(const struct conf *conf, int argc, char **argv)
{
	json_t *args = json_object(), *deps = json_array(), *r, *row;
	const char *sub = argc > 0 ? argv[0] : "";
	char cmd[32];
	size_t i;
	int positional = 0;

	for (int k = 1; k < argc; k++) {
		if (strcmp(argv[k], "--department") == 0 && k + 1 < argc) {
			json_array_append_new(deps, json_string(argv[++k]));
		} else if (strcmp(argv[k], "--organisation") == 0 && k + 1 < argc) {
			json_object_set_new(args, "organisation", json_string(argv[++k]));
		} else if (argv[k][0] == '-') {
			fprintf(stderr, "loketctl: unknown option %s\n", argv[k]);
			goto usage;
		} else if (positional == 0) {
			json_object_set_new(args, "name", json_string(argv[k]));
			positional++;
		} else if (positional == 1) {
			json_object_set_new(args, "role", json_string(argv[k]));
			positional++;
		} else {
			goto usage;
		}
	}
	json_object_set_new(args, "departments", deps);
	deps = NULL;
	if (!((strcmp(sub, "add") == 0 && positional == 2) ||
		(strcmp(sub, "revoke") == 0 && positional == 1) ||
		(strcmp(sub, "list") == 0 && positional == 0)))
		goto usage;
	snprintf(cmd, sizeof(cmd), "token %s", sub);
	if ((r = ctl_result(conf, cmd, args)) == NULL)
		return 1;
	if (strcmp(sub, "add") == 0) {
		/* Shown once: only its hash is kept. */
		printf("%s\n", json_string_value(json_object_get(r, "token")));
		fprintf(stderr, "token '%s' added; it is shown only now, keep it safe\n",
		    json_string_value(json_object_get(json_object_get(r, "row"), "name")));
	} else if (strcmp(sub, "revoke") == 0) {
		printf("revoked %s\n", json_string_value(json_object_get(r, "revoked")));
	} else {
		printf("%-24s %-11s %-26s %-14s %s\n", "NAME", "ROLE", "CREATED", "ORGANISATION",
		    "DEPARTMENTS / STATE");
		json_array_foreach(json_object_get(r, "items"), i, row) {
			char *deps_s = json_dumps(json_object_get(row, "departments"), JSON_COMPACT);
			const char *org = json_string_value(json_object_get(row, "organisation"));

			printf("%-24s %-11s %-26s %-14s %s%s\n",
			    json_string_value(json_object_get(row, "name")),
			    json_string_value(json_object_get(row, "role")),
			    json_string_value(json_object_get(row, "created_at")),
			    org != NULL ? org : "-", deps_s != NULL ? deps_s : "[]",
			    json_is_string(json_object_get(row, "revoked_at")) ? " revoked" : "");
			free(deps_s);
		}
	}
	json_decref(r);
	return 0;
usage:
	json_decref(deps);
	json_decref(args);
	fprintf(stderr, "usage: loketctl token add NAME ROLE [--department D]... [--organisation O]\n"
			"       loketctl token list\n"
			"       loketctl token revoke NAME\n"
			"roles: agent, backoffice, admin, intake\n");
	return 2;
}

#define CTL_PASSWORD_MAX 1024
#define CTL_PASSWORD_MIN 10

static void
ctl_wipe(char *s, size_t len)
{
	volatile char *p = s;

	while (len-- > 0)
		*p++ = '\0';
}

/* One line from fp without its line end; -1 at end of file or when it is too long. */
static int
ctl_read_line(FILE *fp, char *buf, size_t len)
{
	size_t n;

	if (fgets(buf, (int)len, fp) == NULL)
		return -1;
	n = strlen(buf);
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	else if (!feof(fp))
		return -1; /* longer than the buffer */
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	return 0;
}

/* Asks on the terminal without echo; -1 when it cannot. */
static int
ctl_ask(const char *prompt, char *buf, size_t len)
{
	struct termios old, quiet;
	int rc;

	fprintf(stderr, "%s", prompt);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &old) < 0)
		return -1;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0)
		return -1;
	rc = ctl_read_line(stdin, buf, len);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	return rc;
}

/*
 * The new password: one line of standard input when that is not a
 * terminal (a script, a pipe), else asked twice without echo. Checked here
 * too, so a typo is caught before it travels; the daemon checks again.
 */
static int
ctl_password(char *buf, size_t len)
{
	char again[CTL_PASSWORD_MAX + 2];
	size_t chars = 0;
	int rc = -1;

	if (!isatty(STDIN_FILENO)) {
		if (ctl_read_line(stdin, buf, len) < 0) {
			fprintf(stderr, "loketctl: expected the password as one line on standard "
					"input (at most %d bytes)\n", CTL_PASSWORD_MAX);
			return -1;
		}
	} else {
		if (ctl_ask("Password: ", buf, len) < 0 ||
		    ctl_ask("Password again: ", again, sizeof(again)) < 0) {
			fprintf(stderr, "loketctl: cannot read the password from the terminal\n");
			goto out;
		}
		if (strcmp(buf, again) != 0) {
			fprintf(stderr, "loketctl: the two passwords differ; nothing was changed\n");
			goto out;
		}
	}
	for (const char *p = buf; *p != '\0'; p++)
		chars += ((unsigned char)*p & 0xc0) != 0x80;
	if (chars == 0) {
		fprintf(stderr, "loketctl: the password is empty; nothing was changed\n");
		goto out;
	}
	if (chars < CTL_PASSWORD_MIN) {
		fprintf(stderr, "loketctl: the password is too short: use at least %d characters; "
				"nothing was changed\n", CTL_PASSWORD_MIN);
		goto out;
	}
	rc = 0;
out:
	ctl_wipe(again, sizeof(again));
	if (rc < 0)
		ctl_wipe(buf, len);
	return rc;
}

static int
cmd_user(const struct conf *conf, int argc, char **argv)
{
	json_t *args = json_object(), *deps = json_array(), *r, *row;
	const char *sub = argc > 0 ? argv[0] : "";
	char cmd[32], pw[CTL_PASSWORD_MAX + 2];
	size_t i;
	int positional = 0, rc = 1;

	for (int k = 1; k < argc; k++) {
		if (strcmp(argv[k], "--department") == 0 && k + 1 < argc) {
			json_array_append_new(deps, json_string(argv[++k]));
		} else if (strcmp(argv[k], "--organisation") == 0 && k + 1 < argc) {
			json_object_set_new(args, "organisation", json_string(argv[++k]));
		} else if (strcmp(argv[k], "--extension") == 0 && k + 1 < argc) {
			json_object_set_new(args, "extension", json_string(argv[++k]));
		} else if (argv[k][0] == '-') {
			fprintf(stderr, "loketctl: unknown option %s\n", argv[k]);
			goto usage;
		} else if (positional == 0) {
			json_object_set_new(args, "name", json_string(argv[k]));
			positional++;
		} else if (positional == 1) {
			json_object_set_new(args, "role", json_string(argv[k]));
			positional++;
		} else {
			goto usage;
		}
	}
	if (strcmp(sub, "add") == 0)
		json_object_set_new(args, "departments", json_incref(deps));
	else if (json_array_size(deps) > 0 || json_object_get(args, "organisation") != NULL ||
		 json_object_get(args, "extension") != NULL)
		goto usage;
	if (!((strcmp(sub, "add") == 0 && positional == 2) ||
		(strcmp(sub, "passwd") == 0 && positional == 1) ||
		(strcmp(sub, "disable") == 0 && positional == 1) ||
		(strcmp(sub, "list") == 0 && positional == 0)))
		goto usage;
	json_decref(deps);
	deps = NULL;
	if (strcmp(sub, "add") == 0 || strcmp(sub, "passwd") == 0) {
		json_t *pwv;

		if (ctl_password(pw, sizeof(pw)) < 0) {
			json_decref(args);
			return 1;
		}
		pwv = json_string(pw);
		ctl_wipe(pw, sizeof(pw));
		if (pwv == NULL) {
			fprintf(stderr, "loketctl: the password is not valid UTF-8\n");
			json_decref(args);
			return 1;
		}
		json_object_set_new(args, "password", pwv);
	}
	snprintf(cmd, sizeof(cmd), "user %s", sub);
	/* ctl_call's request text is freed by it; the password goes with the request only. */
	if ((r = ctl_result(conf, cmd, args)) == NULL)
		return 1;
	if (strcmp(sub, "add") == 0) {
		row = json_object_get(r, "user");
		printf("added %s (%s)\n", json_string_value(json_object_get(row, "name")),
		    json_string_value(json_object_get(row, "role")));
	} else if (strcmp(sub, "passwd") == 0 || strcmp(sub, "disable") == 0) {
		printf("%s %s; %lld session(s) ended\n",
		    strcmp(sub, "passwd") == 0 ? "new password for" : "disabled",
		    json_string_value(json_object_get(r, "name")),
		    (long long)json_integer_value(json_object_get(r, "sessions_ended")));
	} else {
		printf("%-24s %-11s %-9s %-14s %-10s %s\n", "NAME", "ROLE", "STATE", "ORGANISATION",
		    "EXTENSION", "DEPARTMENTS");
		json_array_foreach(json_object_get(r, "items"), i, row) {
			char *deps_s = json_dumps(json_object_get(row, "departments"), JSON_COMPACT);
			const char *org = json_string_value(json_object_get(row, "organisation"));
			const char *ext = json_string_value(json_object_get(row, "extension"));

			printf("%-24s %-11s %-9s %-14s %-10s %s\n",
			    json_string_value(json_object_get(row, "name")),
			    json_string_value(json_object_get(row, "role")),
			    json_is_true(json_object_get(row, "disabled")) ? "disabled" : "active",
			    org != NULL ? org : "-", ext != NULL ? ext : "-",
			    deps_s != NULL ? deps_s : "[]");
			free(deps_s);
		}
	}
	rc = 0;
	json_decref(r);
	return rc;
usage:
	json_decref(deps);
	json_decref(args);
	fprintf(stderr,
	    "usage: loketctl user add NAME ROLE [--department D]... [--organisation O] "
	    "[--extension N]\n"
	    "       loketctl user passwd NAME\n"
	    "       loketctl user disable NAME\n"
	    "       loketctl user list\n"
	    "roles: agent, backoffice, admin; the password is read from standard input when it "
	    "is not a terminal (one line), else asked twice\n");
	return 2;
}

/* Tests only: see util.h, "The test clock". */
static int
cmd_debug(const struct conf *conf, int argc, char **argv)
{
	json_t *r;

	if (argc != 2 || strcmp(argv[0], "clock") != 0 || argv[1][0] != '+') {
		fprintf(stderr,
		    "usage: loketctl debug clock +DURATION   (tests only: loketd must "
		    "run with LOKET_TEST_CLOCK=1)\n");
		return 2;
	}
	if ((r = ctl_result(conf, "debug clock", json_pack("{s:s}", "by", argv[1] + 1))) == NULL)
		return 1;
	printf("clock now %s\n", json_string_value(json_object_get(r, "now")));
	json_decref(r);
	return 0;
}

static const struct ctl_client_cmd ctl_client_cmds[] = {
	{ "version", "version", cmd_version },
	{ "stats", "stats", cmd_stats },
	{ "reload", "reload", cmd_reload },
	{ "check-config", "check-config", cmd_check_config },
	{ "token", "token add NAME ROLE [--department D]... [--organisation O] | list | revoke NAME",
	    cmd_token },
	{ "user",
	    "user add NAME ROLE [--department D]... [--organisation O] [--extension N] | passwd NAME "
	    "| disable NAME | list",
	    cmd_user },
	{ "rules", "rules test DIR CONTACT.json [--at TIME] [--event EVENT] | replay DIR [--since DATE]",
	    cmd_rules },
	{ "migrate", "migrate --from sqlite:PATH --to pgsql:CONNINFO", cmd_migrate },
	{ "debug", "debug clock +DURATION (tests only)", cmd_debug },
	{ NULL, NULL, NULL },
};

static void
usage(void)
{
	fprintf(stderr, "usage: loketctl [-c FILE] COMMAND [ARGS...]\ncommands:\n");
	for (const struct ctl_client_cmd *c = ctl_client_cmds; c->name != NULL; c++)
		fprintf(stderr, "  %s\n", c->usage);
}

int
main(int argc, char *argv[])
{
	const char *path = SYSCONFDIR "/loket/loket.conf";
	struct conf *conf = NULL;
	const char *err = NULL;
	int ch, rc;

	while ((ch = getopt(argc, argv, "+c:h")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'h':
			usage();
			return 0;
		default:
			usage();
			return 2;
		}
	}
	if (optind >= argc) {
		usage();
		return 2;
	}
	for (const struct ctl_client_cmd *c = ctl_client_cmds; c->name != NULL; c++) {
		if (strcmp(c->name, argv[optind]) != 0)
			continue;
		if (conf_load(path, &conf, &err) < 0) {
			fprintf(stderr, "loketctl: %s\n", err);
			return 2;
		}
		setenv("TZ", conf->timezone, 1);
		tzset();
		rc = c->fn(conf, argc - optind - 1, argv + optind + 1);
		conf_free(conf);
		return rc;
	}
	fprintf(stderr, "loketctl: unknown command '%s'\n", argv[optind]);
	usage();
	return 2;
}
