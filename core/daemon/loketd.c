/* loketd.c: the daemon: start-up in order, signals, reload, drain and shut down in reverse. */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "auth.h"
#include "conf.h"
#include "ctl.h"
#include "events.h"
#include "http.h"
#include "http_api.h"
#include "http_sys.h"
#include "log.h"
#include "outbox.h"
#include "daemon.h"
#include "loketd.h"
#include "metrics.h"
#include "plugin.h"
#include "register.h"
#include "rulebook.h"
#include "timers.h"
#include "util.h"
#include "store.h"

#define LOKETD_DRAIN_SECONDS 5

static void
loketd_notify(const char *state)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, state);
#else
	(void)state;
#endif
}

static void
usage(void)
{
	fprintf(stderr, "usage: loketd -c FILE [-t] [-V]\n"
			"  -c FILE  configuration file\n"
			"  -t       check the configuration and plugins, then exit (0 ok, 2 bad)\n"
			"  -V       print the version and plugin ABI version\n");
}

static void
loketd_limits(const struct conf *conf, struct http_limits *limits)
{
	limits->max_header_size = conf->http_max_header_size;
	limits->max_body_size = conf->http_max_body_size;
	limits->timeout_ms = conf->http_timeout_ms;
	limits->max_connections = conf->http_max_connections;
}

int
loketd_reload(struct loketd *d, const char **error_r)
{
	struct conf *conf = NULL;
	struct rulebook_pending *pending = NULL;
	struct http_limits limits;
	const char *rules_error;

	loketd_notify("RELOADING=1");
	log_info("loketd", "reloading config=%s", d->conf_path);
	if (conf_load(d->conf_path, &conf, error_r) < 0 ||
	    plugins_check_conf(d->plugins, conf, error_r) < 0)
		goto fail;
	/* What is bound or loaded at start cannot change under running connections. */
	if (strcmp(conf->listen, d->conf->listen) != 0)
		log_warnx("loketd", "listen changed; restart loketd to apply it");
	if (strcmp(conf->plugins, d->conf->plugins) != 0)
		log_warnx("loketd", "plugins changed; restart loketd to apply it");
	if (strcmp(conf->control_socket, d->conf->control_socket) != 0)
		log_warnx("loketd", "control_socket changed; restart loketd to apply it");
	if (conf->http_metrics_public != d->conf->http_metrics_public)
		log_warnx("loketd", "metrics_public changed; restart loketd to apply it");
	if (strcmp(conf->data_dir, d->conf->data_dir) != 0 ||
	    strcmp(conf->storage_path, d->conf->storage_path) != 0)
		log_warnx("loketd", "data_dir or storage changed; restart loketd to apply it");
	/* A broken rule file or calendar keeps the old config and rules. */
	if ((pending = rulebook_prepare(d, conf, &rules_error)) == NULL) {
		*error_r = rules_error;
		goto fail;
	}
	if (plugins_reload(d->plugins, conf, error_r) < 0)
		goto fail;
	rulebook_commit(d, pending);
	log_set_level(conf->log_level_value);
	loketd_limits(conf, &limits);
	http_set_limits(d->http, &limits);
	conf_free(d->conf);
	d->conf = conf;
	d->reloads++;
	d->reload_error[0] = '\0';
	d->reload_failed_at = 0;
	log_info("loketd", "reloaded config=%s", d->conf_path);
	loketd_notify("READY=1");
	return 0;
fail:
	rulebook_discard(pending);
	conf_free(conf);
	d->reload_failures++;
	/* Kept for the admin (GET /api/v1/rules): the old rules keep running until a good one. */
	snprintf(d->reload_error, sizeof(d->reload_error), "%s",
	    *error_r != NULL ? *error_r : "unknown error");
	d->reload_failed_at = util_time_ms();
	log_errorx("loketd", "reload failed, keeping the running config: %s",
	    *error_r != NULL ? *error_r : "unknown error");
	loketd_notify("READY=1");
	return -1;
}

/*
 * loketctl reload's work, for the HTTP API: this node, then the other nodes
 * sharing the register. A reload that failed here tells nobody.
 */
static int
loketd_reload_all(struct loketd *d, int *told_r, const char **error_r)
{
	*told_r = 0;
	if (loketd_reload(d, error_r) < 0)
		return -1;
	*told_r = store_broadcast(d->store, "reload") == 0;
	if (!*told_r)
		log_warnx("loketd", "reloaded here, but could not ask the other nodes to reload");
	return 0;
}

static void
loketd_exit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loketd *d = arg;

	event_base_loopexit(d->base, NULL);
}

static void
loketd_drained_cb(void *arg)
{
	struct loketd *d = arg;

	log_info("loketd", "drained; stopping");
	/* Leave the loop on its next turn, after the last answers are flushed. */
	event_base_once(d->base, -1, EV_TIMEOUT, loketd_exit_cb, d, NULL);
}

static void
loketd_drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loketd *d = arg;

	log_warnx("loketd", "drain timed out inflight=%u; stopping anyway", http_inflight(d->http));
	event_base_loopexit(d->base, NULL);
}

void
loketd_stop(struct loketd *d)
{
	struct timeval tv = { LOKETD_DRAIN_SECONDS, 0 };

	if (d->stopping)
		return;
	d->stopping = 1;
	loketd_notify("STOPPING=1");
	log_info("loketd", "stopping inflight=%u", http_inflight(d->http));
	d->drain_timer = evtimer_new(d->base, loketd_drain_timeout_cb, d);
	if (d->drain_timer != NULL)
		evtimer_add(d->drain_timer, &tv);
	http_stop_accepting(d->http);
}

/* The register met an I/O error: it logged why; loketd drains what waits and exits 1. */
static void
loketd_store_fatal_cb(void *arg)
{
	struct loketd *d = arg;

	d->exit_code = 1;
	loketd_stop(d);
}

/*
 * Another node sharing the register broadcast a reload (loketctl reload
 * there): this node reloads its own files, and tells nobody (the node that
 * was asked has told every node already).
 */
static void
loketd_store_control_cb(const char *what, void *arg)
{
	struct loketd *d = arg;
	const char *err = NULL;

	if (strcmp(what, "reload") != 0) {
		log_warnx("loketd", "another node asked for '%s', which this loketd does not know; "
				    "ignored", what);
		return;
	}
	if (d->stopping)
		return;
	log_info("loketd", "another node asked for a reload");
	/* A failure is logged by loketd_reload itself. */
	(void)loketd_reload(d, &err);
}

static void
loketd_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct loketd *d = arg;
	const char *err = NULL;

	switch (sig) {
	case SIGTERM:
	case SIGINT:
		loketd_stop(d);
		break;
	case SIGHUP:
		/* A failure is logged by loketd_reload itself: nobody else waits for it. */
		(void)loketd_reload(d, &err);
		break;
	}
}

static int
loketd_data_dir(const struct conf *conf)
{
	struct stat st;

	if (mkdir(conf->data_dir, 0750) < 0 && errno != EEXIST) {
		log_error("loketd", "cannot create data_dir path=%s", conf->data_dir);
		return -1;
	}
	if (stat(conf->data_dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    access(conf->data_dir, W_OK | X_OK) < 0) {
		log_errorx("loketd", "data_dir is not a writable directory path=%s", conf->data_dir);
		return -1;
	}
	return 0;
}

static int
loketd_start(struct loketd *d)
{
	struct http_limits limits;
	const char *err = NULL, *rules_err = NULL;

	if (loketd_data_dir(d->conf) < 0)
		return -1;
	if (evthread_use_pthreads() < 0 || (d->base = event_base_new()) == NULL ||
	    (d->metrics = metrics_new()) == NULL ||
	    (d->http = http_new(d->base, d->metrics)) == NULL) {
		log_errorx("loketd", "cannot set up the event loop");
		return -1;
	}
	loketd_limits(d->conf, &limits);
	http_set_limits(d->http, &limits);
	http_set_drained_cb(d->http, loketd_drained_cb, d);
	if (store_open(d->base, d->metrics, d->conf, &d->store, &err) < 0) {
		log_errorx("store", "cannot open the register driver=%s: %s",
		    d->conf->storage_driver, err);
		return -1;
	}
	d->store->fatal_hook = loketd_store_fatal_cb;
	d->store->fatal_arg = d;
	d->store->control_hook = loketd_store_control_cb;
	d->store->control_arg = d;
	/* Before every subscriber: the gauges, timers, outbox, rules and plugins. */
	if (events_init(d) < 0) {
		log_errorx("loketd", "cannot set up register events: out of memory");
		return -1;
	}
	if (auth_init(d, &err) < 0 || register_init(d) < 0 || timers_init(d) < 0 ||
	    outbox_init(d) < 0) {
		log_errorx("loketd", "cannot start the register: %s", err != NULL ? err : "?");
		return -1;
	}
	if (rulebook_init(d, &rules_err) < 0) {
		log_errorx("rules", "%s", rules_err != NULL ? rules_err : "cannot load the rules");
		return -1;
	}
	if (rulebook_subscribe(d) < 0) {
		log_errorx("rules", "cannot subscribe the rules to register events: out of memory");
		return -1;
	}
	if (http_sys_init(d, &err) < 0 || http_api_init(d, &err) < 0) {
		log_errorx("loketd", "cannot add core routes: %s", err);
		return -1;
	}
	if (ctl_open(d, d->conf->control_socket, &d->ctl, &err) < 0) {
		log_errorx("loketd", "cannot open the control socket path=%s: %s",
		    d->conf->control_socket, err);
		return -1;
	}
	if (plugins_open(d->conf, d, &d->plugins, &err) < 0 ||
	    plugins_load(d->plugins, &api_table, &err) < 0) {
		log_errorx("loketd", "%s", err);
		return -1;
	}
	outbox_start(d);
	if (http_listen(d->http, d->conf->listen_host, d->conf->listen_port, &err) < 0) {
		log_errorx("loketd", "cannot listen addr=%s: %s", d->conf->listen, err);
		return -1;
	}
	d->sig_term = evsignal_new(d->base, SIGTERM, loketd_signal_cb, d);
	d->sig_int = evsignal_new(d->base, SIGINT, loketd_signal_cb, d);
	d->sig_hup = evsignal_new(d->base, SIGHUP, loketd_signal_cb, d);
	if (d->sig_term == NULL || d->sig_int == NULL || d->sig_hup == NULL ||
	    evsignal_add(d->sig_term, NULL) < 0 || evsignal_add(d->sig_int, NULL) < 0 ||
	    evsignal_add(d->sig_hup, NULL) < 0) {
		log_errorx("loketd", "cannot install signal handlers");
		return -1;
	}
	return 0;
}

static void
loketd_teardown(struct loketd *d)
{
	if (d->sig_hup != NULL)
		event_free(d->sig_hup);
	if (d->sig_int != NULL)
		event_free(d->sig_int);
	if (d->sig_term != NULL)
		event_free(d->sig_term);
	if (d->drain_timer != NULL)
		event_free(d->drain_timer);
	timers_free(d);
	auth_audit_flush(d);
	/*
	 * No news after the loop ended: the writes the last completions would
	 * start (rules' follow-ups) could not be stored any more. The events
	 * are in the register; a reader catches up from there.
	 */
	events_free(d->events);
	d->events = NULL;
	/* The register first: its last completions still reach live plugins and connections. */
	store_close(d->store);
	d->store = NULL;
	/* After the register: its last completions still report outcomes. */
	outbox_free(d);
	rulebook_free(d);
	plugins_close(d->plugins);
	ctl_close(d->ctl);
	auth_free(d->auth);
	http_free(d->http);
	metrics_free(d->metrics);
	if (d->base != NULL)
		event_base_free(d->base);
	conf_free(d->conf);
}

int
main(int argc, char *argv[])
{
	struct loketd d = { 0 };
	const char *err = NULL;
	int ch, check_only = 0;

	log_init(LOKET_LOG_INFO);
	while ((ch = getopt(argc, argv, "c:tVh")) != -1) {
		switch (ch) {
		case 'c':
			d.conf_path = optarg;
			break;
		case 't':
			check_only = 1;
			break;
		case 'V':
			printf("loketd %s (plugin ABI %d.%d)\n", PACKAGE_VERSION, LOKET_ABI_MAJOR,
			    LOKET_ABI_MINOR);
			return 0;
		case 'h':
			usage();
			return 0;
		default:
			usage();
			return 2;
		}
	}
	if (d.conf_path == NULL || optind != argc) {
		usage();
		return 2;
	}
	if (conf_load(d.conf_path, &d.conf, &err) < 0) {
		log_errorx("config", "%s", err);
		return 2;
	}
	log_set_level(d.conf->log_level_value);
	/* Opening hours and references count in the municipality's wall clock. */
	setenv("TZ", d.conf->timezone, 1);
	tzset();
	if (check_only) {
		struct plugins *plugins = NULL;
		const char *serr = NULL;

		if (plugins_open(d.conf, &d, &plugins, &err) < 0) {
			log_errorx("config", "%s", err);
			conf_free(d.conf);
			return 2;
		}
		if (store_check(d.conf, &serr) < 0) {
			log_errorx("config", "%s", serr);
			plugins_close(plugins);
			conf_free(d.conf);
			return 2;
		}
		plugins_close(plugins);
		printf("%s: configuration OK\n", d.conf_path);
		conf_free(d.conf);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	if (util_test_clock_start() < 0) {
		log_errorx("loketd", "LOKET_TEST_CLOCK_OFFSET: expected a duration such as 90s");
		conf_free(d.conf);
		return 2;
	}
	d.started = time(NULL);
	d.reload_all = loketd_reload_all;
	if (loketd_start(&d) < 0) {
		loketd_teardown(&d);
		return 2;
	}
	log_info("loketd", "ready version=%s listen=%s:%u pid=%d", PACKAGE_VERSION,
	    d.conf->listen_host, http_bound_port(d.http), (int)getpid());
	if (util_test_clock_on())
		log_warnx("loketd",
		    "test clock on (LOKET_TEST_CLOCK=1): loketctl debug clock can "
		    "move time forward; never set it outside tests");
	loketd_notify("READY=1");
	event_base_dispatch(d.base);
	log_info("loketd", "stopped");
	loketd_teardown(&d);
	return d.exit_code;
}
