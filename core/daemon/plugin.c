/* plugin.c: the plugin loader: dlopen, ABI and permission checks, config keys, lifecycle. */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "events.h"
#include "log.h"
#include "loketd.h"
#include "outbox.h"
#include "plugin.h"
#include "util.h"

#if defined(__SANITIZE_ADDRESS__)
/*
 * Plugins are dlopen()ed libraries with thread-local data of their own
 * (GnuTLS, GPGME, krb5 under chan_email). Up to GCC 13 the sanitizer's
 * __tls_get_addr hook takes a dynamic TLS block that happens to start at
 * page offset 16 for a pre-2.25 glibc header and reads garbage as its
 * bounds; LeakSanitizer's tracer then dies at exit ("Tracer caught signal
 * 11"), by the luck of the heap's layout. The blocks stay reachable from
 * each thread's DTV, which LeakSanitizer scans anyway.
 */
const char *__asan_default_options(void);

const char *
__asan_default_options(void)
{
	return "intercept_tls_get_addr=0";
}
#endif

/* Group or other write on a folder lets them swap its entries, unless the sticky bit stops them. */
static int
plugin_writable_by_others(const struct stat *st)
{
	return (st->st_mode & (S_IWGRP | S_IWOTH)) != 0 &&
	    !(S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX) != 0);
}

static char *
plugin_check_stat(const char *name, const char *path, const char *what, const struct stat *st)
{
	if (plugin_writable_by_others(st))
		return util_printf("plugin %s: %s %s is writable by others (mode %04o); refusing "
				     "to load it",
		    name, what, path, (unsigned int)(st->st_mode & 07777));
	if (st->st_uid != 0 && st->st_uid != geteuid())
		return util_printf("plugin %s: %s %s is owned by uid %u, not by root or loketd; "
				     "refusing to load it",
		    name, what, path, (unsigned int)st->st_uid);
	return NULL;
}

/*
 * A plugin file anyone can replace is code anyone can run as loketd, and so
 * is one in a folder, or below a folder, that others can write to: they can
 * rename a folder on the way and put one of their own in its place. dir is
 * a real path (no symbolic links): every folder from it up to / is checked
 * for group and other write (a sticky folder such as /tmp is fine: others
 * cannot rename what they do not own in it); dir itself must also belong to
 * root or to loketd.
 */
static char *
plugin_check_folders(const char *name, const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	char *slash;

	if (strlen(dir) >= sizeof(path))
		return util_printf("plugin %s: plugin_dir path too long", name);
	strcpy(path, dir);
	for (int first = 1;; first = 0) {
		if (lstat(path, &st) < 0)
			return util_printf("plugin %s: cannot open directory %s: %s", name, path,
			    strerror(errno));
		if (!S_ISDIR(st.st_mode))
			return util_printf("plugin %s: %s is not a directory", name, path);
		if (first) {
			char *err = plugin_check_stat(name, path, "directory", &st);

			if (err != NULL)
				return err;
		} else if (plugin_writable_by_others(&st)) {
			return util_printf("plugin %s: directory %s, above plugin_dir %s, is "
					   "writable by others (mode %04o); refusing to load from it",
			    name, path, dir, (unsigned int)(st.st_mode & 07777));
		}
		if (strcmp(path, "/") == 0)
			return NULL;
		if ((slash = strrchr(path, '/')) == NULL)
			return NULL;
		if (slash == path)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
}

/*
 * Opens the plugin file for loading and checks what was opened, not a name:
 * O_NOFOLLOW refuses a symbolic link in the last place, fstat checks the
 * opened file's mode and owner, and the caller dlopen()s /proc/self/fd/N,
 * which the kernel resolves to this very open file. A file renamed or
 * swapped between the check and the load therefore cannot be the one that
 * runs; the folders above it were checked to be writable by no one else.
 */
static char *
plugin_open_file(const char *name, const char *path, int *fd_r)
{
	struct stat st;
	char *err;
	int fd;

	*fd_r = -1;
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)) < 0) {
		if (errno == ELOOP)
			return util_printf("plugin %s: file %s is a symbolic link; refusing to load "
					   "it (install the file itself)",
			    name, path);
		return util_printf("plugin %s: cannot open file %s: %s", name, path,
		    strerror(errno));
	}
	if (fstat(fd, &st) < 0) {
		err = util_printf("plugin %s: cannot open file %s: %s", name, path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		err = util_printf("plugin %s: file %s is not a regular file", name, path);
		goto fail;
	}
	if ((err = plugin_check_stat(name, path, "file", &st)) != NULL)
		goto fail;
	*fd_r = fd;
	return NULL;
fail:
	close(fd);
	return err;
}

static const struct loket_config_key *
plugin_key(const struct loket_plugin_info *info, const char *key)
{
	if (info->config_keys == NULL)
		return NULL;
	for (const struct loket_config_key *k = info->config_keys; k->name != NULL; k++)
		if (strcmp(k->name, key) == 0)
			return k;
	return NULL;
}

static size_t
plugin_nkeys(const struct loket_plugin_info *info)
{
	size_t n = 0;

	if (info->config_keys != NULL)
		while (info->config_keys[n].name != NULL)
			n++;
	return n;
}

/* Validates [plugin.NAME] against the plugin's declared keys; fills values_r when not NULL. */
static char *
plugin_conf_values(const struct loket_plugin *p, const struct conf *conf, char ***values_r)
{
	char section[128];
	size_t nkeys = plugin_nkeys(p->info);
	char **values = NULL;

	snprintf(section, sizeof(section), "plugin.%s", p->name);
	for (size_t i = 0; i < conf->nentries; i++) {
		const struct conf_entry *e = &conf->entries[i];
		const struct loket_config_key *k;
		const char *expected;

		if (strcmp(e->section, section) != 0 || strcmp(e->key, "optional") == 0 ||
		    e->key[0] == '\0')
			continue;
		if ((k = plugin_key(p->info, e->key)) == NULL)
			return util_printf("%s:%d: unknown key '%s' in [%s]", conf->path, e->line,
			    e->key, section);
		if ((expected = conf_check_type(k->type, e->value)) != NULL)
			return util_printf("%s:%d: %s: expected %s, got '%s'", conf->path,
			    e->line, e->key, expected, e->value);
		if (p->info->abi_minor >= 2 && p->info->check_value != NULL &&
		    (expected = p->info->check_value(e->key, e->value)) != NULL)
			return util_printf("%s:%d: %s: %s, got '%s'", conf->path, e->line, e->key,
			    expected, e->value);
	}
	for (size_t i = 0; i < nkeys; i++) {
		const struct loket_config_key *k = &p->info->config_keys[i];

		if (k->default_value == NULL && conf_find(conf, section, k->name) == NULL)
			return util_printf("%s: [%s] %s is required (%s)", conf->path, section,
			    k->name, k->help != NULL ? k->help : "no default");
	}
	if (values_r == NULL)
		return NULL;
	if ((values = calloc(nkeys + 1, sizeof(*values))) == NULL)
		return util_printf("plugin %s: out of memory", p->name);
	for (size_t i = 0; i < nkeys; i++) {
		const struct loket_config_key *k = &p->info->config_keys[i];
		const struct conf_entry *e = conf_find(conf, section, k->name);

		values[i] = strdup(e != NULL ? e->value : k->default_value);
		if (values[i] == NULL) {
			for (size_t j = 0; j < i; j++)
				free(values[j]);
			free(values);
			return util_printf("plugin %s: out of memory", p->name);
		}
	}
	*values_r = values;
	return NULL;
}

static void
plugin_values_free(char **values, size_t n)
{
	if (values == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(values[i]);
	free(values);
}

static void
plugin_free_values(struct loket_plugin *p)
{
	plugin_values_free(p->values, p->nvalues);
	p->values = NULL;
	p->nvalues = 0;
}

static void
plugin_free(struct loket_plugin *p)
{
	plugin_free_values(p);
	if (p->dl != NULL)
		dlclose(p->dl);
	if (p->fd >= 0)
		close(p->fd);
	free(p->name);
	free(p->path);
	free(p);
}

static char *
plugin_open_one(const struct conf *conf, struct plugins *plugins, const char *name,
    struct loket_plugin **p_r)
{
	struct loket_plugin *p;
	char path[PATH_MAX], dir[PATH_MAX], fdpath[64];
	char *err;
	int fd = -1;

	if (realpath(conf->plugin_dir, dir) == NULL)
		return util_printf("plugin %s: cannot open directory %s: %s", name,
		    conf->plugin_dir, strerror(errno));
	if (util_path_join(path, sizeof(path), dir, name) < 0 || strlen(path) + 4 >= sizeof(path))
		return util_printf("plugin %s: plugin_dir path too long", name);
	strcat(path, ".so");
	if ((err = plugin_check_folders(name, dir)) != NULL ||
	    (err = plugin_open_file(name, path, &fd)) != NULL)
		return err;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		close(fd);
		return util_printf("plugin %s: out of memory", name);
	}
	p->fd = fd;
	if ((p->name = strdup(name)) == NULL || (p->path = strdup(path)) == NULL) {
		plugin_free(p);
		return util_printf("plugin %s: out of memory", name);
	}
	/* The descriptor stays open while the plugin is loaded: the name stays its own. */
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", p->fd);
	dlerror();
	if ((p->dl = dlopen(fdpath, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		err = util_printf("plugin %s: cannot load %s: %s", name, path, dlerror());
		goto fail;
	}
	if ((p->info = dlsym(p->dl, LOKET_PLUGIN_SYMBOL)) == NULL) {
		err = util_printf("plugin %s: %s has no symbol '%s'; is it a loket plugin?", name,
		    path, LOKET_PLUGIN_SYMBOL);
		goto fail;
	}
	if (p->info->abi_major != LOKET_ABI_MAJOR) {
		err = util_printf("plugin %s: built for plugin ABI %u.%u, but this loketd speaks "
				    "ABI %d.%d (major versions differ); rebuild the plugin",
		    name, p->info->abi_major, p->info->abi_minor, LOKET_ABI_MAJOR, LOKET_ABI_MINOR);
		goto fail;
	}
	if (p->info->abi_minor > LOKET_ABI_MINOR) {
		err = util_printf("plugin %s: built for plugin ABI %u.%u, newer than this loketd's "
				    "ABI %d.%d; upgrade loketd or rebuild the plugin",
		    name, p->info->abi_major, p->info->abi_minor, LOKET_ABI_MAJOR, LOKET_ABI_MINOR);
		goto fail;
	}
	if (p->info->name == NULL || p->info->load == NULL) {
		err = util_printf("plugin %s: its descriptor has no %s", name,
		    p->info->name == NULL ? "name" : "load function");
		goto fail;
	}
	for (struct loket_plugin *q = plugins->head; q != NULL; q = q->next) {
		if (strcmp(q->info->name, p->info->name) == 0) {
			err = util_printf("plugin %s: declares the name '%s', already taken by "
					    "plugin %s (%s)",
			    name, p->info->name, q->name, q->path);
			goto fail;
		}
	}
	if ((err = plugin_conf_values(p, conf, &p->values)) != NULL)
		goto fail;
	p->nvalues = plugin_nkeys(p->info);
	*p_r = p;
	return NULL;
fail:
	plugin_free(p);
	return err;
}

static int
plugin_optional(const struct conf *conf, const char *name)
{
	char section[128];
	const struct conf_entry *e;
	int b = 0;

	snprintf(section, sizeof(section), "plugin.%s", name);
	e = conf_find(conf, section, "optional");
	return e != NULL && util_parse_bool(e->value, &b) == 0 && b;
}

int
plugins_open(const struct conf *conf, struct loketd *daemon, struct plugins **plugins_r,
    char **error_r)
{
	struct plugins *plugins = calloc(1, sizeof(*plugins));
	struct loket_plugin **tail;

	*error_r = NULL;
	if (plugins == NULL) {
		*error_r = util_printf("out of memory");
		return -1;
	}
	tail = &plugins->head;
	for (size_t i = 0; i < conf->nplugins; i++) {
		const char *name = conf->plugin_names[i];
		struct loket_plugin *p = NULL;
		char section[128];
		const struct conf_entry *opt;
		int b;
		char *err;

		snprintf(section, sizeof(section), "plugin.%s", name);
		opt = conf_find(conf, section, "optional");
		if (opt != NULL && util_parse_bool(opt->value, &b) < 0) {
			*error_r = util_printf("%s:%d: optional: expected yes or no, got '%s'",
			    conf->path, opt->line, opt->value);
			goto fail;
		}
		if ((err = plugin_open_one(conf, plugins, name, &p)) != NULL) {
			if (!plugin_optional(conf, name)) {
				*error_r = err;
				goto fail;
			}
			log_warnx("plugin", "skipping optional plugin: %s", err);
			free(err);
			continue;
		}
		p->optional = plugin_optional(conf, name);
		p->daemon = daemon;
		*tail = p;
		tail = &p->next;
		plugins->count++;
	}
	*plugins_r = plugins;
	return 0;
fail:
	plugins_close(plugins);
	return -1;
}

int
plugins_load(struct plugins *plugins, const struct loket_api *api, char **error_r)
{
	struct loket_plugin **pp = &plugins->head;

	*error_r = NULL;
	while (*pp != NULL) {
		struct loket_plugin *p = *pp;
		const char *err = NULL;

		p->api = api;
		if (p->info->load(p, api, &err) < 0) {
			if (!p->optional) {
				*error_r = util_printf("plugin %s: load failed: %s", p->name,
				    err != NULL ? err : "no reason given");
				return -1;
			}
			log_warnx("plugin", "skipping optional plugin %s: load failed: %s", p->name,
			    err != NULL ? err : "no reason given");
			/* What it subscribed before failing would call into an unmapped object. */
			if (p->daemon != NULL)
				events_unsubscribe_owner(p->daemon->events, p);
			*pp = p->next;
			plugins->count--;
			plugin_free(p);
			continue;
		}
		p->loaded = 1;
		log_info("plugin", "loaded name=%s version=%s abi=%u.%u", p->name,
		    p->info->version != NULL ? p->info->version : "?", p->info->abi_major,
		    p->info->abi_minor);
		pp = &p->next;
	}
	return 0;
}

int
plugins_check_conf(struct plugins *plugins, const struct conf *conf, char **error_r)
{
	*error_r = NULL;
	for (struct loket_plugin *p = plugins->head; p != NULL; p = p->next)
		if ((*error_r = plugin_conf_values(p, conf, NULL)) != NULL)
			return -1;
	return 0;
}

/* Whether two value lists (of the same plugin's keys) say the same. */
static int
plugin_values_equal(char **a, char **b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 0;
	return 1;
}

/*
 * The values config_get returned stay valid until the plugin's reload hook
 * has returned (see include/loket/plugin.h): the old ones are freed only
 * then, and a plugin without the hook keeps the values it was loaded with,
 * since it may still point at them.
 */
int
plugins_reload(struct plugins *plugins, const struct conf *conf, char **error_r)
{
	*error_r = NULL;
	for (struct loket_plugin *p = plugins->head; p != NULL; p = p->next) {
		size_t n = plugin_nkeys(p->info);
		char **values = NULL, **old;
		const char *err = NULL;

		if ((*error_r = plugin_conf_values(p, conf, &values)) != NULL)
			return -1;
		if (p->info->reload == NULL) {
			if (!plugin_values_equal(values, p->values, n))
				log_warnx("plugin", "config changed name=%s; the plugin cannot reload, "
						    "restart loketd to apply it",
				    p->name);
			plugin_values_free(values, n);
			continue;
		}
		/* Called even when no value changed: a file a value names may have (a password). */
		old = p->values;
		p->values = values;
		if (p->info->reload(p, p->api, &err) < 0) {
			/* It runs on: config_get answers what it runs with. */
			log_warnx("plugin", "reload failed name=%s reason=\"%s\"; keeping its "
					    "running config",
			    p->name, err != NULL ? err : "no reason given");
			p->values = old;
			plugin_values_free(values, n);
			continue;
		}
		plugin_values_free(old, n);
		log_info("plugin", "reloaded name=%s", p->name);
	}
	return 0;
}

static void
plugins_unload_from(struct loket_plugin *p)
{
	if (p == NULL)
		return;
	plugins_unload_from(p->next);
	if (p->loaded)
		outbox_forget(p);
	/* Before unload: no event reaches a plugin that is tearing down, or code unmapped. */
	if (p->daemon != NULL)
		events_unsubscribe_owner(p->daemon->events, p);
	if (p->loaded && p->info->unload != NULL)
		p->info->unload(p, p->api);
	plugin_free(p);
}

void
plugins_close(struct plugins *plugins)
{
	if (plugins == NULL)
		return;
	plugins_unload_from(plugins->head);
	free(plugins);
}
