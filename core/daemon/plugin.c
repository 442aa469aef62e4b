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

static const char *
plugin_check_stat(const char *name, const char *path, const char *what, const struct stat *st)
{
	if (plugin_writable_by_others(st))
		return util_error("plugin %s: %s %s is writable by others (mode %04o); refusing "
				     "to load it",
		    name, what, path, (unsigned int)(st->st_mode & 07777));
	if (st->st_uid != 0 && st->st_uid != geteuid())
		return util_error("plugin %s: %s %s is owned by uid %u, not by root or loketd; "
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
static const char *
plugin_check_folders(const char *name, const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	char *slash;

	if (strlen(dir) >= sizeof(path))
		return util_error("plugin %s: plugin_dir path too long", name);
	strcpy(path, dir);
	for (int first = 1;; first = 0) {
		if (lstat(path, &st) < 0)
			return util_error("plugin %s: cannot open directory %s: %s", name, path,
			    strerror(errno));
		if (!S_ISDIR(st.st_mode))
			return util_error("plugin %s: %s is not a directory", name, path);
		if (first) {
			const char *err = plugin_check_stat(name, path, "directory", &st);

			if (err != NULL)
				return err;
		} else if (plugin_writable_by_others(&st)) {
			return util_error("plugin %s: directory %s, above plugin_dir %s, is "
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
static const char *
plugin_open_file(const char *name, const char *path, int *fd_r)
{
	struct stat st;
	const char *err;
	int fd;

	*fd_r = -1;
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)) < 0) {
		if (errno == ELOOP)
			return util_error("plugin %s: file %s is a symbolic link; refusing to load "
					   "it (install the file itself)",
			    name, path);
		return util_error("plugin %s: cannot open file %s: %s", name, path,
		    strerror(errno));
	}
	if (fstat(fd, &st) < 0) {
		err = util_error("plugin %s: cannot open file %s: %s", name, path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		err = util_error("plugin %s: file %s is not a regular file", name, path);
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
plugin_key(const struct loket_config_key *keys, const char *key)
{
	if (keys == NULL)
		return NULL;
	for (const struct loket_config_key *k = keys; k->name != NULL; k++)
		if (strcmp(k->name, key) == 0)
			return k;
	return NULL;
}

static size_t
plugin_nkeys(const struct loket_config_key *keys)
{
	size_t n = 0;

	if (keys != NULL)
		while (keys[n].name != NULL)
			n++;
	return n;
}

const struct loket_config_section *
plugin_sections_of(const struct loket_plugin_info *info)
{
	/* Older descriptors end before the member: reading it would read past them. */
	return info->abi_minor >= 4 ? info->config_sections : NULL;
}

static size_t
plugin_nkinds(const struct loket_plugin_info *info)
{
	const struct loket_config_section *k = plugin_sections_of(info);
	size_t n = 0;

	if (k != NULL)
		while (k[n].kind != NULL)
			n++;
	return n;
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
plugin_config_free(struct plugin_config *c)
{
	if (c == NULL)
		return;
	plugin_values_free(c->values, c->nvalues);
	for (size_t i = 0; i < c->nkinds; i++) {
		struct plugin_kind *k = &c->kinds[i];

		for (size_t j = 0; j < k->nsubs; j++) {
			free(k->subs[j].name);
			plugin_values_free(k->subs[j].values, k->nkeys);
		}
		free(k->subs);
		free(k->names);
	}
	free(c->kinds);
	free(c);
}

/* Checks one key = value of a section against keys (of the main section or a kind). */
static const char *
plugin_check_entry(const struct conf *conf, const struct conf_entry *e,
    const struct loket_config_key *keys, const char *(*check_value)(const char *, const char *))
{
	const struct loket_config_key *k;
	const char *expected;

	if ((k = plugin_key(keys, e->key)) == NULL)
		return util_error("%s:%d: unknown key '%s' in [%s]", conf->path, e->line, e->key,
		    e->section);
	if ((expected = conf_check_type(k->type, e->value)) != NULL)
		return util_error("%s:%d: %s: expected %s, got '%s'", conf->path, e->line, e->key,
		    expected, e->value);
	if (check_value != NULL && (expected = check_value(e->key, e->value)) != NULL)
		return util_error("%s:%d: %s: %s, got '%s'", conf->path, e->line, e->key, expected,
		    e->value);
	return NULL;
}

/* Every required key of keys is in section; line is where the section starts (0: unknown). */
static const char *
plugin_check_required(const struct conf *conf, const char *section, int line,
    const struct loket_config_key *keys)
{
	for (size_t i = 0; i < plugin_nkeys(keys); i++) {
		const struct loket_config_key *k = &keys[i];
		const char *help = k->help != NULL ? k->help : "no default";

		if (k->default_value != NULL || conf_find(conf, section, k->name) != NULL)
			continue;
		if (line > 0)
			return util_error("%s:%d: [%s] %s is required (%s)", conf->path, line,
			    section, k->name, help);
		return util_error("%s: [%s] %s is required (%s)", conf->path, section, k->name,
		    help);
	}
	return NULL;
}

/* The values of section for keys, defaults applied; NULL when memory runs out. */
static char **
plugin_resolve(const struct conf *conf, const char *section, const struct loket_config_key *keys)
{
	size_t n = plugin_nkeys(keys);
	char **values = calloc(n + 1, sizeof(*values));

	if (values == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const struct conf_entry *e = conf_find(conf, section, keys[i].name);

		if ((values[i] = strdup(e != NULL ? e->value : keys[i].default_value)) == NULL) {
			plugin_values_free(values, i);
			return NULL;
		}
	}
	return values;
}

static int
plugin_id_ok(const char *id)
{
	size_t len = strlen(id);

	return len > 0 && len <= 64 &&
	    strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == len;
}

/*
 * Checks the name of a [plugin.NAME.KIND.ID] section: the kind is declared
 * and the ID well formed. Returns the kind's index in *kind_r.
 */
static const char *
plugin_check_sub(const struct loket_plugin *p, const struct conf *conf,
    const struct conf_entry *e, size_t *kind_r)
{
	const struct loket_config_section *kinds = plugin_sections_of(p->info);
	const char *rest = e->section + strlen("plugin.") + strlen(p->name) + 1;
	const char *dot = strchr(rest, '.');
	size_t klen = dot != NULL ? (size_t)(dot - rest) : strlen(rest);
	char known[256] = "";

	for (size_t i = 0; i < plugin_nkinds(p->info); i++) {
		size_t used = strlen(known);

		if (strlen(kinds[i].kind) == klen && strncmp(kinds[i].kind, rest, klen) == 0) {
			if (dot == NULL || !plugin_id_ok(dot + 1))
				return util_error("%s:%d: section [%s]: expected [plugin.%s.%s.ID], "
						   "an ID of 1 to 64 letters, digits, '_' or '-'",
				    conf->path, e->line, e->section, p->name, kinds[i].kind);
			*kind_r = i;
			return NULL;
		}
		snprintf(known + used, sizeof(known) - used, "%s%s", used > 0 ? ", " : "",
		    kinds[i].kind);
	}
	if (known[0] == '\0')
		return util_error("%s:%d: unknown section [%s]: plugin %s has no sub-sections",
		    conf->path, e->line, e->section, p->name);
	return util_error("%s:%d: unknown section [%s]: plugin %s has sub-sections of kind %s "
			   "([plugin.%s.KIND.ID])",
	    conf->path, e->line, e->section, p->name, known, p->name);
}

/* Adds the sub-section named section, ID id, to kind k, its values resolved. */
static int
plugin_add_sub(struct plugin_kind *k, const struct conf *conf, const char *section,
    const char *id)
{
	struct plugin_sub *subs = realloc(k->subs, (k->nsubs + 1) * sizeof(*subs));
	const char **names;

	if (subs == NULL)
		return -1;
	k->subs = subs;
	if ((names = realloc(k->names, (k->nsubs + 2) * sizeof(*names))) == NULL)
		return -1;
	k->names = names;
	subs[k->nsubs].values = plugin_resolve(conf, section, k->decl->keys);
	subs[k->nsubs].name = strdup(id);
	if (subs[k->nsubs].values == NULL || subs[k->nsubs].name == NULL) {
		plugin_values_free(subs[k->nsubs].values, k->nkeys);
		free(subs[k->nsubs].name);
		return -1;
	}
	names[k->nsubs] = subs[k->nsubs].name;
	names[++k->nsubs] = NULL;
	return 0;
}

/*
 * Validates [plugin.NAME] and its [plugin.NAME.KIND.ID] sub-sections
 * against the plugin's declared keys and kinds; fills config_r when not
 * NULL.
 */
static const char *
plugin_conf_values(const struct loket_plugin *p, const struct conf *conf,
    struct plugin_config **config_r)
{
	char section[128], prefix[130];
	const struct loket_config_section *kinds = plugin_sections_of(p->info);
	const char *(*check)(const char *, const char *) =
	    p->info->abi_minor >= 2 ? p->info->check_value : NULL;
	struct plugin_config *c = NULL;
	const char *err;

	snprintf(section, sizeof(section), "plugin.%s", p->name);
	snprintf(prefix, sizeof(prefix), "plugin.%s.", p->name);
	for (size_t i = 0; i < conf->nentries; i++) {
		const struct conf_entry *e = &conf->entries[i];
		size_t kind;

		if (strcmp(e->section, section) == 0) {
			if (strcmp(e->key, "optional") == 0 || e->key[0] == '\0')
				continue;
			if ((err = plugin_check_entry(conf, e, p->info->config_keys, check)) != NULL)
				return err;
			continue;
		}
		if (strncmp(e->section, prefix, strlen(prefix)) != 0)
			continue;
		if ((err = plugin_check_sub(p, conf, e, &kind)) != NULL)
			return err;
		/* The header entry (empty key) stands for the section: its line names it. */
		if (e->key[0] == '\0')
			err = plugin_check_required(conf, e->section, e->line, kinds[kind].keys);
		else
			err = plugin_check_entry(conf, e, kinds[kind].keys, kinds[kind].check_value);
		if (err != NULL)
			return err;
	}
	if ((err = plugin_check_required(conf, section, 0, p->info->config_keys)) != NULL)
		return err;
	if (config_r == NULL)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto nomem;
	c->nvalues = plugin_nkeys(p->info->config_keys);
	if ((c->values = plugin_resolve(conf, section, p->info->config_keys)) == NULL)
		goto nomem;
	if (plugin_nkinds(p->info) > 0) {
		if ((c->kinds = calloc(plugin_nkinds(p->info), sizeof(*c->kinds))) == NULL)
			goto nomem;
		c->nkinds = plugin_nkinds(p->info);
	}
	for (size_t i = 0; i < c->nkinds; i++) {
		c->kinds[i].decl = &kinds[i];
		c->kinds[i].nkeys = plugin_nkeys(kinds[i].keys);
	}
	/* One header entry per section, in file order: the order config_sections answers. */
	for (size_t i = 0; i < conf->nentries; i++) {
		const struct conf_entry *e = &conf->entries[i];
		size_t kind = 0;

		if (e->key[0] != '\0' || strncmp(e->section, prefix, strlen(prefix)) != 0)
			continue;
		if ((err = plugin_check_sub(p, conf, e, &kind)) != NULL) {
			plugin_config_free(c);
			return err;
		}
		if (plugin_add_sub(&c->kinds[kind], conf, e->section,
			strchr(e->section + strlen(prefix), '.') + 1) < 0)
			goto nomem;
	}
	*config_r = c;
	return NULL;
nomem:
	plugin_config_free(c);
	return util_error("plugin %s: out of memory", p->name);
}

static void
plugin_free(struct loket_plugin *p)
{
	plugin_config_free(p->config);
	if (p->dl != NULL)
		dlclose(p->dl);
	if (p->fd >= 0)
		close(p->fd);
	free(p->name);
	free(p->path);
	free(p);
}

static const char *
plugin_open_one(const struct conf *conf, struct plugins *plugins, const char *name,
    struct loket_plugin **p_r)
{
	struct loket_plugin *p;
	char path[PATH_MAX], dir[PATH_MAX], fdpath[64];
	const char *err;
	int fd = -1;

	if (realpath(conf->plugin_dir, dir) == NULL)
		return util_error("plugin %s: cannot open directory %s: %s", name,
		    conf->plugin_dir, strerror(errno));
	if (util_path_join(path, sizeof(path), dir, name) < 0 || strlen(path) + 4 >= sizeof(path))
		return util_error("plugin %s: plugin_dir path too long", name);
	strcat(path, ".so");
	if ((err = plugin_check_folders(name, dir)) != NULL ||
	    (err = plugin_open_file(name, path, &fd)) != NULL)
		return err;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		close(fd);
		return util_error("plugin %s: out of memory", name);
	}
	p->fd = fd;
	if ((p->name = strdup(name)) == NULL || (p->path = strdup(path)) == NULL) {
		plugin_free(p);
		return util_error("plugin %s: out of memory", name);
	}
	/* The descriptor stays open while the plugin is loaded: the name stays its own. */
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", p->fd);
	dlerror();
	if ((p->dl = dlopen(fdpath, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		err = util_error("plugin %s: cannot load %s: %s", name, path, dlerror());
		goto fail;
	}
	if ((p->info = dlsym(p->dl, LOKET_PLUGIN_SYMBOL)) == NULL) {
		err = util_error("plugin %s: %s has no symbol '%s'; is it a loket plugin?", name,
		    path, LOKET_PLUGIN_SYMBOL);
		goto fail;
	}
	if (p->info->abi_major != LOKET_ABI_MAJOR) {
		err = util_error("plugin %s: built for plugin ABI %u.%u, but this loketd speaks "
				    "ABI %d.%d (major versions differ); rebuild the plugin",
		    name, p->info->abi_major, p->info->abi_minor, LOKET_ABI_MAJOR, LOKET_ABI_MINOR);
		goto fail;
	}
	if (p->info->abi_minor > LOKET_ABI_MINOR) {
		err = util_error("plugin %s: built for plugin ABI %u.%u, newer than this loketd's "
				    "ABI %d.%d; upgrade loketd or rebuild the plugin",
		    name, p->info->abi_major, p->info->abi_minor, LOKET_ABI_MAJOR, LOKET_ABI_MINOR);
		goto fail;
	}
	if (p->info->name == NULL || p->info->load == NULL) {
		err = util_error("plugin %s: its descriptor has no %s", name,
		    p->info->name == NULL ? "name" : "load function");
		goto fail;
	}
	for (struct loket_plugin *q = plugins->head; q != NULL; q = q->next) {
		if (strcmp(q->info->name, p->info->name) == 0) {
			err = util_error("plugin %s: declares the name '%s', already taken by "
					    "plugin %s (%s)",
			    name, p->info->name, q->name, q->path);
			goto fail;
		}
	}
	if ((err = plugin_conf_values(p, conf, &p->config)) != NULL)
		goto fail;
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
    const char **error_r)
{
	struct plugins *plugins = calloc(1, sizeof(*plugins));
	struct loket_plugin **tail;

	*error_r = NULL;
	if (plugins == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	tail = &plugins->head;
	for (size_t i = 0; i < conf->nplugins; i++) {
		const char *name = conf->plugin_names[i];
		struct loket_plugin *p = NULL;
		char section[128];
		const struct conf_entry *opt;
		int b;
		const char *err;

		snprintf(section, sizeof(section), "plugin.%s", name);
		opt = conf_find(conf, section, "optional");
		if (opt != NULL && util_parse_bool(opt->value, &b) < 0) {
			*error_r = util_error("%s:%d: optional: expected yes or no, got '%s'",
			    conf->path, opt->line, opt->value);
			goto fail;
		}
		if ((err = plugin_open_one(conf, plugins, name, &p)) != NULL) {
			if (!plugin_optional(conf, name)) {
				*error_r = err;
				goto fail;
			}
			log_warnx("plugin", "skipping optional plugin: %s", err);
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
plugins_load(struct plugins *plugins, const struct loket_api *api, const char **error_r)
{
	struct loket_plugin **pp = &plugins->head;

	*error_r = NULL;
	while (*pp != NULL) {
		struct loket_plugin *p = *pp;
		const char *err = NULL;

		p->api = api;
		if (p->info->load(p, api, &err) < 0) {
			if (!p->optional) {
				*error_r = util_error("plugin %s: load failed: %s", p->name,
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
plugins_check_conf(struct plugins *plugins, const struct conf *conf, const char **error_r)
{
	*error_r = NULL;
	for (struct loket_plugin *p = plugins->head; p != NULL; p = p->next)
		if ((*error_r = plugin_conf_values(p, conf, NULL)) != NULL)
			return -1;
	return 0;
}

static int
plugin_values_equal(char **a, char **b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 0;
	return 1;
}

/* Whether two configs (of the same plugin's keys and kinds) say the same. */
static int
plugin_config_equal(const struct plugin_config *a, const struct plugin_config *b)
{
	if (!plugin_values_equal(a->values, b->values, a->nvalues))
		return 0;
	for (size_t i = 0; i < a->nkinds; i++) {
		const struct plugin_kind *ka = &a->kinds[i], *kb = &b->kinds[i];

		if (ka->nsubs != kb->nsubs)
			return 0;
		for (size_t j = 0; j < ka->nsubs; j++)
			if (strcmp(ka->subs[j].name, kb->subs[j].name) != 0 ||
			    !plugin_values_equal(ka->subs[j].values, kb->subs[j].values, ka->nkeys))
				return 0;
	}
	return 1;
}

/*
 * The values config_get and config_section_get returned stay valid until
 * the plugin's reload hook has returned (see include/loket/plugin.h): the
 * old ones are freed only then, and a plugin without the hook keeps the
 * values it was loaded with, since it may still point at them.
 */
int
plugins_reload(struct plugins *plugins, const struct conf *conf, const char **error_r)
{
	*error_r = NULL;
	for (struct loket_plugin *p = plugins->head; p != NULL; p = p->next) {
		struct plugin_config *config = NULL, *old;
		const char *err = NULL;

		if ((*error_r = plugin_conf_values(p, conf, &config)) != NULL)
			return -1;
		if (p->info->reload == NULL) {
			if (!plugin_config_equal(config, p->config))
				log_warnx("plugin", "config changed name=%s; the plugin cannot reload, "
						    "restart loketd to apply it",
				    p->name);
			plugin_config_free(config);
			continue;
		}
		/* Called even when no value changed: a file a value names may have (a password). */
		old = p->config;
		p->config = config;
		if (p->info->reload(p, p->api, &err) < 0) {
			/* It runs on: config_get answers what it runs with. */
			log_warnx("plugin", "reload failed name=%s reason=\"%s\"; keeping its "
					    "running config",
			    p->name, err != NULL ? err : "no reason given");
			p->config = old;
			plugin_config_free(config);
			continue;
		}
		plugin_config_free(old);
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
		outbox_forget(p->daemon, p);
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
