/* plugin.h: the plugin loader: dlopen, ABI and permission checks, config keys, lifecycle. */
#ifndef LOKET_PLUGIN_LOADER_H
#define LOKET_PLUGIN_LOADER_H

#include "loket/plugin.h"

struct conf;
struct loketd;

/* One [plugin.NAME.KIND.ID] sub-section: its ID and values, parallel to the kind's keys. */
struct plugin_sub {
	char *name;
	char **values;
};

/* The sub-sections of one declared kind, in file order. */
struct plugin_kind {
	const struct loket_config_section *decl;
	size_t nkeys;
	struct plugin_sub *subs;
	const char **names; /* subs[i].name: what config_sections hands out */
	size_t nsubs;
};

/* All that config_get and config_section_get answer; a reload swaps it whole. */
struct plugin_config {
	char **values; /* resolved values of [plugin.NAME], parallel to info->config_keys */
	size_t nvalues;
	struct plugin_kind *kinds; /* parallel to info->config_sections */
	size_t nkinds;
};

struct loket_plugin {
	char *name; /* the file's base name, also its [plugin.NAME] section */
	char *path;
	void *dl;
	int fd; /* the checked file, open while loaded: dlopen()ed as /proc/self/fd/N */
	const struct loket_plugin_info *info;
	int optional;
	int loaded;
	void *data;
	struct plugin_config *config;
	struct loketd *daemon;
	const struct loket_api *api;
	struct loket_plugin *next;
};

struct plugins {
	struct loket_plugin *head;
	size_t count;
};

/*
 * Opens and checks every plugin the config names, without calling load().
 * A required plugin that fails returns -1 with *error_r (util_error's);
 * an optional one is logged and skipped.
 */
int plugins_open(const struct conf *conf, struct loketd *daemon, struct plugins **plugins_r,
    const char **error_r);
/* Calls load() in config order; on error unloads what was loaded. */
int plugins_load(struct plugins *plugins, const struct loket_api *api, const char **error_r);
/* Checks a new config's plugin sections against the loaded plugins' keys. */
int plugins_check_conf(struct plugins *plugins, const struct conf *conf, const char **error_r);
/*
 * Installs a checked config's values and calls each plugin's reload(); the
 * old values are freed after reload() returns. A plugin without reload(),
 * or whose reload() fails, keeps the values it runs with.
 */
int plugins_reload(struct plugins *plugins, const struct conf *conf, const char **error_r);
/* The kinds of sub-sections a plugin declares (none for a plugin built before ABI 1.3). */
const struct loket_config_section *plugin_sections_of(const struct loket_plugin_info *info);
/* unload() in reverse order, then dlclose. */
void plugins_close(struct plugins *plugins);

#endif
