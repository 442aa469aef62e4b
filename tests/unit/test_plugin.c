/* test_plugin.c: the plugin loader accepts a good plugin and refuses each kind of bad one by name. */
#include <event2/event.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <dlfcn.h>

#include "conf.h"
#include "events.h"
#include "http.h"
#include "daemon.h"
#include "loketd.h"
#include "metrics.h"
#include "plugin.h"

struct fixture {
	char dir[64];
	char plugin_dir[128];
	char conf_path[128];
	struct loketd d;
};

static const char *
builddir(void)
{
	const char *b = getenv("LOKET_BUILDDIR");

	return b != NULL ? b : ".";
}

static void
copy_plugin(struct fixture *f, const char *from, const char *name, mode_t mode)
{
	char src[512], dst[256], cmd[1024];

	snprintf(src, sizeof(src), "%s/%s/.libs/%s.so", builddir(), from, name);
	snprintf(dst, sizeof(dst), "%s/%s.so", f->plugin_dir, name);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", src, dst);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(chmod(dst, mode), 0);
}

/*
 * Set by a test: the next dlopen() first renames this file over the plugin
 * the loader checked, as someone racing the loader would.
 */
static char swap_from[256], swap_to[256];

/* The loader's dlopen() calls reach this one first: the test binary defines it. */
void *
dlopen(const char *file, int mode)
{
	static void *(*real_dlopen)(const char *, int);

	if (real_dlopen == NULL)
		*(void **)&real_dlopen = dlsym(RTLD_NEXT, "dlopen");
	if (swap_from[0] != '\0') {
		assert_int_equal(rename(swap_from, swap_to), 0);
		swap_from[0] = '\0';
	}
	return real_dlopen(file, mode);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/loket-test-plugin-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->plugin_dir, sizeof(f->plugin_dir), "%s/plugins", f->dir);
	assert_int_equal(mkdir(f->plugin_dir, 0755), 0);
	chmod(f->plugin_dir, 0755);
	snprintf(f->conf_path, sizeof(f->conf_path), "%s/loket.conf", f->dir);
	f->d.base = event_base_new();
	f->d.metrics = metrics_new();
	f->d.http = http_new(f->d.base, f->d.metrics);
	f->d.events = events_new();
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[256];

	events_free(f->d.events);
	http_free(f->d.http);
	metrics_free(f->d.metrics);
	event_base_free(f->d.base);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static struct conf *
load_conf(struct fixture *f, const char *plugins, const char *extra)
{
	struct conf *conf = NULL;
	const char *err = NULL;
	FILE *fp = fopen(f->conf_path, "w");

	fprintf(fp, "[loketd]\ndata_dir = %s\nplugin_dir = %s\nplugins = %s\n%s", f->dir,
	    f->plugin_dir, plugins, extra);
	fclose(fp);
	if (conf_load(f->conf_path, &conf, &err) < 0)
		fail_msg("config: %s", err);
	return conf;
}

/* Opens and loads; returns the error (util_error's) or NULL on success. */
static const char *
open_and_load(struct fixture *f, struct conf *conf, struct plugins **plugins_r)
{
	const char *err = NULL;

	*plugins_r = NULL;
	if (plugins_open(conf, &f->d, plugins_r, &err) < 0)
		return err;
	if (plugins_load(*plugins_r, &api_table, &err) < 0) {
		plugins_close(*plugins_r);
		*plugins_r = NULL;
		return err;
	}
	return NULL;
}

static void
expect_refused(struct fixture *f, const char *plugins, const char *extra, const char *want1,
    const char *want2)
{
	struct conf *conf = load_conf(f, plugins, extra);
	struct plugins *p = NULL;
	const char *err = open_and_load(f, conf, &p);

	if (err == NULL)
		fail_msg("plugins '%s' loaded; expected a refusal with '%s'", plugins, want1);
	if (strstr(err, want1) == NULL || (want2 != NULL && strstr(err, want2) == NULL))
		fail_msg("error '%s' lacks '%s' / '%s'", err, want1, want2 != NULL ? want2 : "");
	assert_null(p);
	conf_free(conf);
}

static void
test_good_plugin(void **state)
{
	struct fixture *f = *state;
	struct conf *conf;
	struct plugins *p = NULL;
	const char *err;

	copy_plugin(f, "plugins", "hello", 0755);
	conf = load_conf(f, "hello", "[plugin.hello]\ngreeting = Goeiedag\n");
	err = open_and_load(f, conf, &p);
	if (err != NULL)
		fail_msg("%s", err);
	assert_int_equal(p->count, 1);
	assert_string_equal(p->head->info->name, "hello");
	assert_true(p->head->loaded);
	assert_string_equal(api_table.config_get(p->head, "greeting"), "Goeiedag");
	assert_int_equal(api_table.config_get_int(p->head, "tick"), 1000);
	assert_true(LOKET_API_HAS(&api_table, get_data));
	plugins_close(p);
	conf_free(conf);
}

/*
 * hello subscribes to contact.created at load; once it is unloaded (and its
 * code unmapped) an event must reach nobody: a subscription left behind
 * would call into the closed object.
 */
static void
test_unload_ends_event_subscriptions(void **state)
{
	struct fixture *f = *state;
	struct events_event ev = { 0 };
	struct conf *conf;
	struct plugins *p = NULL;
	const char *err;

	copy_plugin(f, "plugins", "hello", 0755);
	conf = load_conf(f, "hello", "");
	if ((err = open_and_load(f, conf, &p)) != NULL)
		fail_msg("%s", err);
	ev.pub.kind = LOKET_EVENT_CONTACT_CREATED;
	ev.pub.name = "contact.created";
	ev.pub.json = "{\"status\":\"open\",\"channel\":\"phone\"}";
	ev.pub.id = 1;
	events_publish(f->d.events, &ev);
	plugins_close(p);
	ev.pub.id = 2;
	events_publish(f->d.events, &ev);
	assert_int_equal(events_published(f->d.events), 2);
	conf_free(conf);
}

static void
test_wrong_major(void **state)
{
	struct fixture *f = *state;
	char speaks[64];

	/* The version this build speaks, whatever minor it has grown to. */
	snprintf(speaks, sizeof(speaks), "this loketd speaks ABI %d.%d", LOKET_ABI_MAJOR,
	    LOKET_ABI_MINOR);
	copy_plugin(f, "tests/plugins", "bad_major", 0755);
	expect_refused(f, "bad_major", "", "plugin bad_major: built for plugin ABI 2.0", speaks);
}

static void
test_newer_minor(void **state)
{
	struct fixture *f = *state;
	char built[64], speaks[32];

	snprintf(built, sizeof(built), "built for plugin ABI %d.%d, newer than", LOKET_ABI_MAJOR,
	    LOKET_ABI_MINOR + 1);
	snprintf(speaks, sizeof(speaks), "ABI %d.%d", LOKET_ABI_MAJOR, LOKET_ABI_MINOR);
	copy_plugin(f, "tests/plugins", "newer_minor", 0755);
	expect_refused(f, "newer_minor", "", built, speaks);
}

static void
test_duplicate(void **state)
{
	struct fixture *f = *state;

	copy_plugin(f, "plugins", "hello", 0755);
	copy_plugin(f, "tests/plugins", "dup_name", 0755);
	expect_refused(f, "hello dup_name", "",
	    "plugin dup_name: declares the name 'hello', already taken by plugin hello", NULL);
}

static void
test_missing_symbol(void **state)
{
	struct fixture *f = *state;

	copy_plugin(f, "tests/plugins", "no_symbol", 0755);
	expect_refused(f, "no_symbol", "", "has no symbol 'loket_plugin'", NULL);
}

static void
test_missing_file(void **state)
{
	struct fixture *f = *state;

	expect_refused(f, "absent", "", "plugin absent: cannot open file", "absent.so");
}

static void
test_not_a_shared_object(void **state)
{
	struct fixture *f = *state;
	char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/junk.so", f->plugin_dir);
	fp = fopen(path, "w");
	fputs("not an ELF file\n", fp);
	fclose(fp);
	chmod(path, 0644);
	expect_refused(f, "junk", "", "plugin junk: cannot load", NULL);
}

static void
test_world_writable_dir(void **state)
{
	struct fixture *f = *state;

	copy_plugin(f, "plugins", "hello", 0755);
	assert_int_equal(chmod(f->plugin_dir, 0777), 0);
	expect_refused(f, "hello", "", "is writable by others (mode 0777)", "directory");
}

static void
test_world_writable_file(void **state)
{
	struct fixture *f = *state;

	copy_plugin(f, "plugins", "hello", 0666);
	expect_refused(f, "hello", "", "is writable by others (mode 0666)", "file");
}

static void
test_load_fails(void **state)
{
	struct fixture *f = *state;

	copy_plugin(f, "tests/plugins", "load_fails", 0755);
	expect_refused(f, "load_fails", "", "plugin load_fails: load failed: the variant was told",
	    NULL);
}

static void
test_unknown_plugin_key(void **state)
{
	struct fixture *f = *state;

	copy_plugin(f, "plugins", "hello", 0755);
	expect_refused(f, "hello", "[plugin.hello]\ncolour = red\n", "loket.conf:6: unknown key "
								     "'colour' in [plugin.hello]",
	    NULL);
	expect_refused(f, "hello", "[plugin.hello]\ntick = often\n",
	    "loket.conf:6: tick: expected a duration", NULL);
}

static void
test_optional_is_skipped(void **state)
{
	struct fixture *f = *state;
	struct conf *conf;
	struct plugins *p = NULL;
	const char *err;

	copy_plugin(f, "plugins", "hello", 0755);
	copy_plugin(f, "tests/plugins", "bad_major", 0755);
	copy_plugin(f, "tests/plugins", "load_fails", 0755);
	conf = load_conf(f, "bad_major load_fails hello",
	    "[plugin.bad_major]\noptional = yes\n[plugin.load_fails]\noptional = yes\n");
	err = open_and_load(f, conf, &p);
	if (err != NULL)
		fail_msg("%s", err);
	assert_int_equal(p->count, 1);
	assert_string_equal(p->head->name, "hello");
	plugins_close(p);
	conf_free(conf);
}

static void
test_loader_refuses_group_writable_plugin(void **state)
{
	struct fixture *f = *state;

	copy_plugin(f, "plugins", "hello", 0775);
	expect_refused(f, "hello", "", "is writable by others (mode 0775)", "file");
}

static void
test_loader_refuses_group_writable_plugin_folder(void **state)
{
	struct fixture *f = *state;

	copy_plugin(f, "plugins", "hello", 0755);
	assert_int_equal(chmod(f->plugin_dir, 0775), 0);
	expect_refused(f, "hello", "", "is writable by others (mode 0775)", "directory");
}

static void
test_loader_refuses_group_writable_parent_folder(void **state)
{
	struct fixture *f = *state;
	char want[256];

	copy_plugin(f, "plugins", "hello", 0755);
	assert_int_equal(chmod(f->dir, 0775), 0);
	snprintf(want, sizeof(want), "directory %s, above plugin_dir", f->dir);
	expect_refused(f, "hello", "", want, "is writable by others (mode 0775)");
	assert_int_equal(chmod(f->dir, 0757), 0);
	expect_refused(f, "hello", "", want, "is writable by others (mode 0757)");
}

static void
test_loader_accepts_sticky_tmp(void **state)
{
	struct fixture *f = *state;
	struct conf *conf;
	struct plugins *p = NULL;
	const char *err;

	/* The fixture's folder sits in /tmp (mode 1777); one more sticky folder on the way. */
	copy_plugin(f, "plugins", "hello", 0755);
	assert_int_equal(chmod(f->dir, 01777), 0);
	conf = load_conf(f, "hello", "");
	err = open_and_load(f, conf, &p);
	if (err != NULL)
		fail_msg("%s", err);
	assert_int_equal(p->count, 1);
	plugins_close(p);
	conf_free(conf);
}

static void
test_loader_refuses_symlinked_plugin(void **state)
{
	struct fixture *f = *state;
	char target[256], link[256];

	copy_plugin(f, "plugins", "hello", 0755);
	snprintf(target, sizeof(target), "%s/hello.so", f->plugin_dir);
	snprintf(link, sizeof(link), "%s/greeter.so", f->plugin_dir);
	assert_int_equal(symlink(target, link), 0);
	expect_refused(f, "greeter", "", "plugin greeter: file", "is a symbolic link");
}

static void
test_loader_loads_the_file_it_checked(void **state)
{
	struct fixture *f = *state;
	struct conf *conf;
	struct plugins *p = NULL;
	const char *err;

	/* Between the check and the load, another plugin is renamed over the checked one. */
	copy_plugin(f, "plugins", "hello", 0755);
	copy_plugin(f, "tests/plugins", "load_fails", 0755);
	snprintf(swap_from, sizeof(swap_from), "%s/load_fails.so", f->plugin_dir);
	snprintf(swap_to, sizeof(swap_to), "%s/hello.so", f->plugin_dir);
	conf = load_conf(f, "hello", "");
	err = open_and_load(f, conf, &p);
	assert_int_equal(swap_from[0], '\0');
	if (err != NULL)
		fail_msg("the swapped-in file was loaded: %s", err);
	assert_string_equal(p->head->info->name, "hello");
	assert_string_equal(api_table.config_get(p->head, "greeting"), "Hallo");
	plugins_close(p);
	conf_free(conf);
}

static void
test_reload_gives_new_values_and_frees_old_after_hook(void **state)
{
	struct fixture *f = *state;
	struct conf *conf, *conf2;
	struct plugins *p = NULL;
	const char *err;

	copy_plugin(f, "plugins", "hello", 0755);
	conf = load_conf(f, "hello", "[plugin.hello]\ngreeting = Goeiedag\n");
	err = open_and_load(f, conf, &p);
	if (err != NULL)
		fail_msg("%s", err);
	conf2 = load_conf(f, "hello", "[plugin.hello]\ngreeting = Dag\n");
	assert_int_equal(plugins_check_conf(p, conf2, &err), 0);
	assert_int_equal(plugins_reload(p, conf2, &err), 0);
	assert_string_equal(api_table.config_get(p->head, "greeting"), "Dag");
	plugins_close(p);
	conf_free(conf);
	conf_free(conf2);
}

static void
test_sub_sections_are_read_in_file_order_and_reload_swaps_them(void **state)
{
	struct fixture *f = *state;
	struct conf *conf, *conf2;
	struct plugins *p = NULL;
	const char *const *ids;
	const char *err;

	copy_plugin(f, "plugins", "hello", 0755);
	conf = load_conf(f, "hello",
	    "[plugin.hello.greeting.b]\ntext = B\nlanguage = en\n[plugin.hello.greeting.a]\n"
	    "text = A\n");
	err = open_and_load(f, conf, &p);
	if (err != NULL)
		fail_msg("%s", err);
	assert_true(LOKET_API_HAS(&api_table, config_section_get_int));
	assert_int_equal(api_table.config_sections(p->head, "greeting", &ids), 2);
	assert_string_equal(ids[0], "b");
	assert_string_equal(ids[1], "a");
	assert_null(ids[2]);
	assert_string_equal(api_table.config_section_get(p->head, "greeting", "b", "language"), "en");
	assert_string_equal(api_table.config_section_get(p->head, "greeting", "a", "language"), "nl");
	assert_null(api_table.config_section_get(p->head, "greeting", "c", "text"));
	assert_null(api_table.config_section_get(p->head, "greeting", "a", "colour"));
	assert_int_equal(api_table.config_sections(p->head, "desk", &ids), 0);
	assert_null(ids[0]);

	conf2 = load_conf(f, "hello", "[plugin.hello.greeting.c]\ntext = C\n");
	assert_int_equal(plugins_check_conf(p, conf2, &err), 0);
	assert_int_equal(plugins_reload(p, conf2, &err), 0);
	assert_int_equal(api_table.config_sections(p->head, "greeting", &ids), 1);
	assert_string_equal(ids[0], "c");
	assert_string_equal(api_table.config_section_get(p->head, "greeting", "c", "text"), "C");
	assert_null(api_table.config_section_get(p->head, "greeting", "a", "text"));
	plugins_close(p);
	conf_free(conf);
	conf_free(conf2);
}

static void
test_bad_sub_sections_are_refused_with_file_line(void **state)
{
	struct fixture *f = *state;

	copy_plugin(f, "plugins", "hello", 0755);
	expect_refused(f, "hello", "[plugin.hello.greeting.x]\ntext = X\ncolour = red\n",
	    "loket.conf:7: unknown key 'colour' in [plugin.hello.greeting.x]", NULL);
	expect_refused(f, "hello", "[plugin.hello.greeting.x]\nlanguage = fr\n",
	    "loket.conf:5: [plugin.hello.greeting.x] text is required", NULL);
	expect_refused(f, "hello", "[plugin.hello.desk.x]\n",
	    "loket.conf:5: unknown section [plugin.hello.desk.x]", "kind greeting");
	expect_refused(f, "hello", "[plugin.hello.greeting.a.b]\ntext = X\n",
	    "loket.conf:5: section [plugin.hello.greeting.a.b]: expected [plugin.hello.greeting.ID]",
	    NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good_plugin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unload_ends_event_subscriptions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_major, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_minor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_symbol, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_shared_object, setup, teardown),
		cmocka_unit_test_setup_teardown(test_world_writable_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_world_writable_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_plugin_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_optional_is_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_loader_refuses_group_writable_plugin, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_loader_refuses_group_writable_plugin_folder, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_loader_refuses_group_writable_parent_folder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loader_accepts_sticky_tmp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loader_refuses_symlinked_plugin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loader_loads_the_file_it_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_reload_gives_new_values_and_frees_old_after_hook, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_sub_sections_are_read_in_file_order_and_reload_swaps_them, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_bad_sub_sections_are_refused_with_file_line, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
