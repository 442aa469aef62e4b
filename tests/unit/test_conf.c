/* test_conf.c: config parsing: defaults, typed values, and file:line errors for bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"

static char conf_path[64];

static void
write_conf(const char *text)
{
	FILE *fp;
	int fd;

	strcpy(conf_path, "/tmp/loket-test-conf-XXXXXX");
	fd = mkstemp(conf_path);
	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	fputs(text, fp);
	fclose(fp);
}

/* Loads text and expects an error containing want, prefixed by path:line. */
static void
expect_error(const char *text, int line, const char *want)
{
	struct conf *conf = NULL;
	const char *err = NULL;
	char prefix[128];

	write_conf(text);
	assert_int_equal(conf_load(conf_path, &conf, &err), -1);
	assert_null(conf);
	assert_non_null(err);
	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%d: ", conf_path, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", conf_path);
	if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, want) == NULL)
		fail_msg("error '%s' lacks prefix '%s' or text '%s'", err, prefix, want);
	unlink(conf_path);
}

static void
test_defaults(void **state)
{
	struct conf *conf = NULL;
	const char *err = NULL;

	write_conf("[loketd]\ndata_dir = /tmp/x\n");
	assert_int_equal(conf_load(conf_path, &conf, &err), 0);
	assert_string_equal(conf->listen_host, "127.0.0.1");
	assert_int_equal(conf->listen_port, 8080);
	assert_string_equal(conf->data_dir, "/tmp/x");
	assert_string_equal(conf->control_socket, "/tmp/x/loketd.sock");
	assert_string_equal(conf->storage_path, "/tmp/x/loket.db");
	assert_string_equal(conf->storage_driver, "sqlite");
	assert_int_equal(conf->durability, CONF_DURABILITY_FULL);
	assert_int_equal(conf->storage_readers, 4);
	{
		char host[256] = "";

		/* [storage] node: the host name unless set (a name per node sharing a register). */
		assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
		assert_string_equal(conf->storage_node, host);
	}
	assert_int_equal(conf->http_max_header_size, 8192);
	assert_int_equal(conf->http_max_body_size, 1024 * 1024);
	assert_int_equal(conf->http_timeout_ms, 30000);
	assert_int_equal(conf->http_max_connections, 1024);
	assert_int_equal(conf->nplugins, 0);
	assert_int_equal(conf->log_level_value, LOKET_LOG_INFO);
	conf_free(conf);
	unlink(conf_path);
}

static void
test_values(void **state)
{
	struct conf *conf = NULL;
	const char *err = NULL;

	write_conf("; comment\n[loketd]\nlisten = [::1]:9090\ndata_dir = /srv/loket\n"
		   "plugins = chan_web  chan_email\nlog_level = debug\n"
		   "[http]\nmax_header_size = 16k\nmax_body_size = 2m\ntimeout = 250ms\n"
		   "max_connections = 10\n[storage]\ndurability = relaxed\nnode = node-2.a_b\n"
		   "[organisation.gemeente]\nname = Gemeente Gent\n"
		   "[department.burgerzaken]\norganisation = gemeente\nname = Burgerzaken\n"
		   "[plugin.chan_web]\nanything = goes here\n");
	assert_int_equal(conf_load(conf_path, &conf, &err), 0);
	assert_string_equal(conf->listen_host, "::1");
	assert_int_equal(conf->listen_port, 9090);
	assert_int_equal(conf->nplugins, 2);
	assert_string_equal(conf->plugin_names[0], "chan_web");
	assert_string_equal(conf->plugin_names[1], "chan_email");
	assert_int_equal(conf->log_level_value, LOKET_LOG_DEBUG);
	assert_int_equal(conf->http_max_header_size, 16384);
	assert_int_equal(conf->http_max_body_size, 2 * 1024 * 1024);
	assert_int_equal(conf->http_timeout_ms, 250);
	assert_int_equal(conf->http_max_connections, 10);
	assert_int_equal(conf->durability, CONF_DURABILITY_RELAXED);
	assert_string_equal(conf->storage_node, "node-2.a_b");
	assert_int_equal(conf->norganisations, 1);
	assert_string_equal(conf_organisation(conf, "gemeente")->name, "Gemeente Gent");
	assert_string_equal(conf_department(conf, "burgerzaken")->organisation, "gemeente");
	assert_null(conf_department(conf, "nope"));
	assert_string_equal(conf_find(conf, "plugin.chan_web", "anything")->value, "goes here");
	assert_int_equal(conf_find(conf, "plugin.chan_web", "anything")->line, 21);
	conf_free(conf);
	unlink(conf_path);
}

static void
test_errors(void **state)
{
	expect_error("[loketd]\ndata_dir = /x\n[nonsense]\nkey = 1\n", 3, "unknown section [nonsense]");
	expect_error("[loketd]\ndata_dir = /x\n[empty.section]\n", 3, "unknown section [empty.section]");
	expect_error("[loketd]\ndata_dir = /x\ncolour = blue\n", 3, "unknown key 'colour' in [loketd]");
	expect_error("[loketd]\ndata_dir = /x\n[http]\ntimeout = soon\n", 4,
	    "timeout: expected a duration like 30s");
	expect_error("[loketd]\ndata_dir = /x\n[http]\nmax_body_size = lots\n", 4,
	    "max_body_size: expected a size");
	expect_error("[loketd]\ndata_dir = /x\n[http]\nmax_connections = -3\n", 4,
	    "expected a positive integer");
	expect_error("[loketd]\nlisten = nope\ndata_dir = /x\n", 2, "expected host:port");
	expect_error("[loketd]\nlisten = 1.2.3.4:99999\ndata_dir = /x\n", 2, "expected host:port");
	expect_error("[loketd]\ndata_dir = relative/path\n", 2, "expected an absolute path");
	expect_error("[loketd]\nlog_level = loud\ndata_dir = /x\n", 2, "one of debug, info");
	expect_error("[loketd]\ndata_dir = /x\nno equals sign here\n", 3, "expected '[section]'");
	expect_error("[loketd]\ndata_dir = /x\n[storage]\ndriver = ../oracle\n", 4,
	    "driver: expected sqlite or the NAME of a driver plugin_dir/store_NAME.so");
	expect_error("[loketd]\ndata_dir = /x\n[storage]\ndriver = pgsql\n", 0, "needs conninfo");
	expect_error("[loketd]\ndata_dir = /x\n[storage]\nreaders = 65\n", 4,
	    "readers: expected 1 to 64 reader threads, got 65");
	expect_error("[loketd]\ndata_dir = /x\n[storage]\nreaders = 0\n", 4,
	    "readers: expected a positive integer");
	expect_error("[loketd]\ndata_dir = /x\n[storage]\nnode = two words\n", 4,
	    "node: expected a name of 1 to 255 letters, digits, '.', '_' or '-' (distinct per node),"
	    " got 'two words'");
	expect_error("[loketd]\n", 0, "[loketd] data_dir is required");
	expect_error("[loketd]\ndata_dir = /x\ndata_dir = /y\n", 3, "set twice (first on line 2)");
	expect_error("[loketd]\ndata_dir = /x\nplugins = a b a\n", 3, "'a' is listed twice");
	expect_error("[loketd]\ndata_dir = /x\nplugins = ../evil\n", 3, "plugin names");
	expect_error("[loketd]\ndata_dir = /x\n\n[plugin.ghost]\nk = v\n", 4,
	    "not in [loketd] plugins");
	expect_error("[loketd]\ndata_dir = /x\n[organisation.g]\n[department.d]\norganisation = "
		     "nowhere\n",
	    5, "got 'nowhere'");
	expect_error("[loketd]\ndata_dir = /x\n[department.d]\nname = D\n", 0,
	    "[department.d] organisation is required");
	expect_error("key = 1\n", 1, "outside any section");
}

static void
test_long_line(void **state)
{
	char text[600];

	snprintf(text, sizeof(text), "[loketd]\ndata_dir = /x\nplugins = %0400d\n", 0);
	expect_error(text, 3, "line too long");
}

static void
test_missing_file(void **state)
{
	struct conf *conf = NULL;
	const char *err = NULL;

	assert_int_equal(conf_load("/nonexistent/loket.conf", &conf, &err), -1);
	assert_non_null(strstr(err, "/nonexistent/loket.conf: cannot read: No such file"));
}

static void
test_check_type(void **state)
{
	assert_null(conf_check_type(LOKET_CONFIG_INT, "-12"));
	assert_non_null(conf_check_type(LOKET_CONFIG_INT, "12x"));
	assert_null(conf_check_type(LOKET_CONFIG_BOOL, "Yes"));
	assert_non_null(conf_check_type(LOKET_CONFIG_BOOL, "maybe"));
	assert_null(conf_check_type(LOKET_CONFIG_DURATION, "5m"));
	assert_non_null(conf_check_type(LOKET_CONFIG_DURATION, "5 minutes"));
	assert_null(conf_check_type(LOKET_CONFIG_SIZE, "10m"));
	assert_non_null(conf_check_type(LOKET_CONFIG_SIZE, "10q"));
	assert_null(conf_check_type(LOKET_CONFIG_STRING, "anything"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_check_type),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
