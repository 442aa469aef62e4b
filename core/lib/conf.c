/* conf.c: reads loket.conf with inih, checks every section, key and value, keeps a snapshot. */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "util.h"

enum conf_kind {
	CONF_STRING,
	CONF_PATH,
	CONF_HOSTPORT,
	CONF_LIST,
	CONF_LOGLEVEL,
	CONF_DURATION,
	CONF_SIZE,
	CONF_COUNT,
	CONF_CHOICE,
	CONF_BOOL,
};

struct conf_key {
	const char *section; /* "loketd", or "organisation.*" for every organisation */
	const char *key;
	enum conf_kind kind;
	const char *default_value; /* NULL: required; "" : optional and empty */
	size_t offset;             /* into struct conf, or the organisation/department */
	const char *choices;       /* for CONF_CHOICE, space-separated */
};

#define OFF(member) offsetof(struct conf, member)
#define ORG(member) offsetof(struct conf_organisation, member)
#define DEP(member) offsetof(struct conf_department, member)

static const struct conf_key conf_keys[] = {
	{ "loketd", "listen", CONF_HOSTPORT, "127.0.0.1:8080", OFF(listen), NULL },
	{ "loketd", "data_dir", CONF_PATH, NULL, OFF(data_dir), NULL },
	{ "loketd", "plugin_dir", CONF_PATH, PKGLIBDIR, OFF(plugin_dir), NULL },
	{ "loketd", "plugins", CONF_LIST, "", OFF(plugins), NULL },
	{ "loketd", "log_level", CONF_LOGLEVEL, "info", OFF(log_level), NULL },
	{ "loketd", "control_socket", CONF_PATH, "", OFF(control_socket), NULL },
	{ "loketd", "web_dir", CONF_PATH, PKGDATADIR "/web", OFF(web_dir), NULL },
	{ "loketd", "timezone", CONF_STRING, "Europe/Brussels", OFF(timezone), NULL },
	{ "http", "max_header_size", CONF_SIZE, "8k", OFF(http_max_header_size), NULL },
	{ "http", "max_body_size", CONF_SIZE, "1m", OFF(http_max_body_size), NULL },
	{ "http", "timeout", CONF_DURATION, "30s", OFF(http_timeout_ms), NULL },
	{ "http", "max_connections", CONF_COUNT, "1024", OFF(http_max_connections), NULL },
	{ "http", "metrics_public", CONF_BOOL, "no", OFF(http_metrics_public), NULL },
	{ "http", "max_streams", CONF_COUNT, "1000", OFF(http_max_streams), NULL },
	{ "http", "stream_keepalive", CONF_DURATION, "15s", OFF(http_stream_keepalive_ms), NULL },
	{ "http", "events_window", CONF_DURATION, "1h", OFF(http_events_window_ms), NULL },
	{ "http", "events_backlog", CONF_COUNT, "1000", OFF(http_events_backlog), NULL },
	{ "http", "secure_cookies", CONF_BOOL, "no", OFF(http_secure_cookies), NULL },
	{ "http", "session_idle", CONF_DURATION, "30m", OFF(http_session_idle_ms), NULL },
	{ "http", "trusted_proxies", CONF_LIST, "", OFF(http_trusted_proxies), NULL },
	{ "http", "signin_window", CONF_DURATION, "15m", OFF(http_signin_window_ms), NULL },
	{ "http", "signin_user_failures", CONF_COUNT, "5", OFF(http_signin_user_failures), NULL },
	{ "http", "signin_address_failures", CONF_COUNT, "20", OFF(http_signin_address_failures),
	    NULL },
	{ "storage", "driver", CONF_STRING, "sqlite", OFF(storage_driver), NULL },
	{ "storage", "path", CONF_PATH, "", OFF(storage_path), NULL },
	{ "storage", "conninfo", CONF_STRING, "", OFF(storage_conninfo), NULL },
	{ "storage", "durability", CONF_CHOICE, "full", 0, "full relaxed" },
	{ "storage", "readers", CONF_COUNT, "4", OFF(storage_readers), NULL },
	{ "storage", "pool", CONF_COUNT, "4", OFF(storage_pool), NULL },
	{ "storage", "lease", CONF_DURATION, "30s", OFF(storage_lease_ms), NULL },
	{ "storage", "node", CONF_STRING, "", OFF(storage_node), NULL },
	{ "rules", "dir", CONF_PATH, "", OFF(rules_dir), NULL },
	{ "rules", "catalogue", CONF_PATH, "", OFF(rules_catalogue), NULL },
	{ "rules", "answers", CONF_PATH, "", OFF(rules_answers), NULL },
	{ "rules", "instructions", CONF_COUNT, "1000000", OFF(rules_instructions), NULL },
	{ "rules", "timeout", CONF_DURATION, "50ms", OFF(rules_timeout_ms), NULL },
	{ "rules", "memory", CONF_SIZE, "64m", OFF(rules_memory), NULL },
	{ "organisation.*", "name", CONF_STRING, "", ORG(name), NULL },
	{ "organisation.*", "calendar", CONF_PATH, "", ORG(calendar), NULL },
	{ "department.*", "name", CONF_STRING, "", DEP(name), NULL },
	{ "department.*", "organisation", CONF_STRING, NULL, DEP(organisation), NULL },
	{ "department.*", "calendar", CONF_PATH, "", DEP(calendar), NULL },
};

struct conf_parse {
	struct conf *conf;
	FILE *fp;
	int line;
	int overlong;
	const char *error; /* util_error's: the first error, which stops the parse */
};

static int conf_handler(void *user, const char *section, const char *name, const char *value);

/*
 * inih reports only keys; a section header is noted here so that a section
 * without keys ([organisation.ocmw]) still exists and an unknown one is named.
 */
static void
conf_section_line(struct conf_parse *p, const char *line)
{
	const char *start = line, *end;
	char section[256];

	while (*start == ' ' || *start == '\t')
		start++;
	if (*start != '[' || (end = strchr(start, ']')) == NULL)
		return;
	start++;
	while (*start == ' ' || *start == '\t')
		start++;
	while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if ((size_t)(end - start) >= sizeof(section))
		return;
	memcpy(section, start, (size_t)(end - start));
	section[end - start] = '\0';
	/* An empty key marks the section itself. */
	conf_handler(p, section, "", "");
}

static char *
conf_reader(char *str, int num, void *stream)
{
	struct conf_parse *p = stream;
	char *r = fgets(str, num, p->fp);
	size_t len;

	if (r == NULL)
		return NULL;
	p->line++;
	len = strlen(str);
	if (len == (size_t)num - 1 && str[len - 1] != '\n' && !feof(p->fp)) {
		/* inih would split the line silently; refuse instead. */
		p->overlong = 1;
		return NULL;
	}
	conf_section_line(p, str);
	return r;
}

static const char *
conf_section_pattern(const char *section)
{
	if (strncmp(section, "organisation.", 13) == 0 && section[13] != '\0')
		return "organisation.*";
	if (strncmp(section, "department.", 11) == 0 && section[11] != '\0')
		return "department.*";
	if (strncmp(section, "plugin.", 7) == 0 && section[7] != '\0')
		return "plugin.*";
	return section;
}

static const struct conf_key *
conf_key_find(const char *pattern, const char *key)
{
	for (size_t i = 0; i < sizeof(conf_keys) / sizeof(conf_keys[0]); i++)
		if (strcmp(conf_keys[i].section, pattern) == 0 && strcmp(conf_keys[i].key, key) == 0)
			return &conf_keys[i];
	return NULL;
}

static int
conf_section_known(const char *pattern)
{
	if (strcmp(pattern, "plugin.*") == 0)
		return 1;
	for (size_t i = 0; i < sizeof(conf_keys) / sizeof(conf_keys[0]); i++)
		if (strcmp(conf_keys[i].section, pattern) == 0)
			return 1;
	return 0;
}

static int
conf_handler(void *user, const char *section, const char *name, const char *value)
{
	struct conf_parse *p = user;
	struct conf *conf = p->conf;
	const char *pattern = conf_section_pattern(section);
	struct conf_entry *e;

	if (p->error != NULL)
		return 0;
	if (section[0] == '\0') {
		p->error = util_error("%s:%d: key '%s' outside any section; expected a [section] first",
		    conf->path, p->line, name);
		return 0;
	}
	if (!conf_section_known(pattern)) {
		p->error = util_error("%s:%d: unknown section [%s]; expected loketd, http, storage, "
				       "rules, organisation.NAME, department.NAME or plugin.NAME",
		    conf->path, p->line, section);
		return 0;
	}
	if (name[0] == '\0') {
		if (conf_find(conf, section, "") != NULL)
			return 1;
	} else if (strcmp(pattern, "plugin.*") != 0 && conf_key_find(pattern, name) == NULL) {
		p->error = util_error("%s:%d: unknown key '%s' in [%s]", conf->path, p->line, name,
		    section);
		return 0;
	}
	if (conf_find(conf, section, name) != NULL) {
		p->error = util_error("%s:%d: key '%s' in [%s] is set twice (first on line %d)",
		    conf->path, p->line, name, section, conf_find(conf, section, name)->line);
		return 0;
	}
	e = realloc(conf->entries, (conf->nentries + 1) * sizeof(*e));
	if (e == NULL)
		goto nomem;
	conf->entries = e;
	e = &conf->entries[conf->nentries];
	e->section = strdup(section);
	e->key = strdup(name);
	e->value = strdup(value);
	e->line = p->line;
	if (e->section == NULL || e->key == NULL || e->value == NULL) {
		free(e->section);
		free(e->key);
		free(e->value);
		goto nomem;
	}
	conf->nentries++;
	return 1;
nomem:
	p->error = util_error("%s:%d: out of memory", conf->path, p->line);
	return 0;
}

const struct conf_entry *
conf_find(const struct conf *conf, const char *section, const char *key)
{
	for (size_t i = 0; i < conf->nentries; i++)
		if (strcmp(conf->entries[i].section, section) == 0 &&
		    strcmp(conf->entries[i].key, key) == 0)
			return &conf->entries[i];
	return NULL;
}

const char *
conf_check_type(enum loket_config_type type, const char *value)
{
	uint64_t u;
	int64_t i;
	int b;

	switch (type) {
	case LOKET_CONFIG_STRING:
		return NULL;
	case LOKET_CONFIG_INT:
		return util_parse_int(value, &i) < 0 ? "an integer" : NULL;
	case LOKET_CONFIG_BOOL:
		return util_parse_bool(value, &b) < 0 ? "yes or no" : NULL;
	case LOKET_CONFIG_DURATION:
		return util_parse_duration_ms(value, &u) < 0 ? "a duration like 30s, 5m, 2h or 1d" :
								   NULL;
	case LOKET_CONFIG_SIZE:
		return util_parse_size(value, &u) < 0 ? "a size like 512, 64k or 10m" : NULL;
	}
	return "a known type";
}

static int
conf_choice_ok(const char *choices, const char *value)
{
	size_t len = strlen(value);

	for (const char *p = choices; *p != '\0';) {
		size_t n = strcspn(p, " ");
		if (n == len && strncmp(p, value, n) == 0)
			return 1;
		p += n;
		while (*p == ' ')
			p++;
	}
	return 0;
}

/* Stores value into the field the key names; returns what was expected on error. */
static const char *
conf_apply(struct conf *conf, void *base, const struct conf_key *k, const char *value)
{
	char **str = (char **)((char *)base + k->offset);
	uint64_t u;
	int64_t i;

	switch (k->kind) {
	case CONF_STRING:
	case CONF_PATH:
	case CONF_LIST:
		break;
	case CONF_HOSTPORT:
		if (util_parse_hostport(value, &conf->listen_host, &conf->listen_port) < 0)
			return "host:port, like 127.0.0.1:8080 or [::1]:8080";
		break;
	case CONF_LOGLEVEL:
		if (log_level_parse(value, &conf->log_level_value) < 0)
			return "one of debug, info, warn, error";
		break;
	case CONF_DURATION:
		if (util_parse_duration_ms(value, &u) < 0 || u == 0)
			return "a duration like 30s, 5m, 2h or 1d";
		*(uint64_t *)((char *)base + k->offset) = u;
		return NULL;
	case CONF_SIZE:
		if (util_parse_size(value, &u) < 0 || u == 0)
			return "a size like 512, 64k or 10m";
		*(uint64_t *)((char *)base + k->offset) = u;
		return NULL;
	case CONF_COUNT:
		if (util_parse_int(value, &i) < 0 || i <= 0)
			return "a positive integer";
		*(int64_t *)((char *)base + k->offset) = i;
		return NULL;
	case CONF_BOOL:
		if (util_parse_bool(value, (int *)((char *)base + k->offset)) < 0)
			return "yes or no";
		return NULL;
	case CONF_CHOICE:
		if (!conf_choice_ok(k->choices, value))
			return k->choices;
		if (strcmp(k->key, "durability") == 0) {
			conf->durability = strcmp(value, "relaxed") == 0 ? CONF_DURABILITY_RELAXED :
									   CONF_DURABILITY_FULL;
			return NULL;
		}
		break;
	}
	if (k->kind == CONF_PATH && value[0] != '\0' && value[0] != '/')
		return "an absolute path";
	free(*str);
	*str = strdup(value);
	return *str == NULL ? "memory to store it" : NULL;
}

/* Applies the keys of one section (file values over defaults) to base. */
static int
conf_apply_section(struct conf *conf, const char *pattern, const char *section, void *base,
    const char **error_r)
{
	for (size_t i = 0; i < sizeof(conf_keys) / sizeof(conf_keys[0]); i++) {
		const struct conf_key *k = &conf_keys[i];
		const struct conf_entry *e;
		const char *value, *expected;

		if (strcmp(k->section, pattern) != 0)
			continue;
		e = conf_find(conf, section, k->key);
		value = e != NULL ? e->value : k->default_value;
		if (value == NULL) {
			*error_r = util_error("%s: [%s] %s is required", conf->path, section, k->key);
			return -1;
		}
		expected = conf_apply(conf, base, k, value);
		if (expected != NULL) {
			if (e != NULL)
				*error_r = util_error("%s:%d: %s: expected %s, got '%s'", conf->path,
				    e->line, k->key, expected, value);
			else
				*error_r = util_error("%s: [%s] %s: built-in default '%s' is not %s",
				    conf->path, section, k->key, value, expected);
			return -1;
		}
	}
	return 0;
}

static int
conf_split_plugins(struct conf *conf, const char **error_r)
{
	const struct conf_entry *e = conf_find(conf, "loketd", "plugins");
	char *copy, *tok, *save = NULL;

	copy = strdup(conf->plugins);
	if (copy == NULL)
		return -1;
	for (tok = strtok_r(copy, " \t,", &save); tok != NULL; tok = strtok_r(NULL, " \t,", &save)) {
		char **names;

		for (const char *c = tok; *c != '\0'; c++) {
			if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) {
				*error_r = util_error("%s:%d: plugins: expected plugin names of "
						       "a-z, 0-9 and _, got '%s'",
				    conf->path, e->line, tok);
				goto fail;
			}
		}
		for (size_t i = 0; i < conf->nplugins; i++) {
			if (strcmp(conf->plugin_names[i], tok) == 0) {
				*error_r = util_error("%s:%d: plugins: '%s' is listed twice",
				    conf->path, e->line, tok);
				goto fail;
			}
		}
		names = realloc(conf->plugin_names, (conf->nplugins + 1) * sizeof(*names));
		if (names == NULL)
			goto fail;
		conf->plugin_names = names;
		if ((names[conf->nplugins] = strdup(tok)) == NULL)
			goto fail;
		conf->nplugins++;
	}
	free(copy);
	return 0;
fail:
	free(copy);
	return -1;
}

static int
conf_collect_units(struct conf *conf, const char **error_r)
{
	for (size_t i = 0; i < conf->nentries; i++) {
		const char *section = conf->entries[i].section;
		const char *pattern = conf_section_pattern(section);
		int seen = 0;

		if (strcmp(pattern, "organisation.*") == 0) {
			struct conf_organisation *o;

			for (size_t j = 0; j < conf->norganisations; j++)
				seen |= strcmp(conf->organisations[j].id, section + 13) == 0;
			if (seen)
				continue;
			o = realloc(conf->organisations, (conf->norganisations + 1) * sizeof(*o));
			if (o == NULL)
				return -1;
			conf->organisations = o;
			o = &o[conf->norganisations++];
			memset(o, 0, sizeof(*o));
			if ((o->id = strdup(section + 13)) == NULL ||
			    conf_apply_section(conf, pattern, section, o, error_r) < 0)
				return -1;
		} else if (strcmp(pattern, "department.*") == 0) {
			struct conf_department *d;

			for (size_t j = 0; j < conf->ndepartments; j++)
				seen |= strcmp(conf->departments[j].id, section + 11) == 0;
			if (seen)
				continue;
			d = realloc(conf->departments, (conf->ndepartments + 1) * sizeof(*d));
			if (d == NULL)
				return -1;
			conf->departments = d;
			d = &d[conf->ndepartments++];
			memset(d, 0, sizeof(*d));
			if ((d->id = strdup(section + 11)) == NULL ||
			    conf_apply_section(conf, pattern, section, d, error_r) < 0)
				return -1;
		} else if (strcmp(pattern, "plugin.*") == 0) {
			/* [plugin.NAME] or a sub-section [plugin.NAME.KIND.ID]: plugin.c checks those. */
			size_t len = strcspn(section + 7, ".");

			for (size_t j = 0; j < conf->nplugins; j++)
				seen |= strlen(conf->plugin_names[j]) == len &&
				    strncmp(conf->plugin_names[j], section + 7, len) == 0;
			if (!seen) {
				*error_r = util_error("%s:%d: section [%s] is for plugin '%.*s', which "
						       "is not in [loketd] plugins",
				    conf->path, conf->entries[i].line, section, (int)len, section + 7);
				return -1;
			}
		}
	}
	for (size_t j = 0; j < conf->ndepartments; j++) {
		struct conf_department *d = &conf->departments[j];

		if (conf_organisation(conf, d->organisation) == NULL) {
			char section[256];

			snprintf(section, sizeof(section), "department.%s", d->id);
			*error_r = util_error("%s:%d: organisation: expected one of the "
					       "[organisation.NAME] sections, got '%s'",
			    conf->path, conf_find(conf, section, "organisation")->line, d->organisation);
			return -1;
		}
	}
	return 0;
}

const struct conf_department *
conf_department(const struct conf *conf, const char *id)
{
	for (size_t i = 0; i < conf->ndepartments; i++)
		if (strcmp(conf->departments[i].id, id) == 0)
			return &conf->departments[i];
	return NULL;
}

const struct conf_organisation *
conf_organisation(const struct conf *conf, const char *id)
{
	for (size_t i = 0; i < conf->norganisations; i++)
		if (strcmp(conf->organisations[i].id, id) == 0)
			return &conf->organisations[i];
	return NULL;
}

/*
 * [storage] node: the name this node's claims on shared work (timers, the
 * outbox) carry in a register several nodes share. It defaults to the host
 * name; nodes on one host need one each. It is written into the register and
 * the log, so it is kept to letters, digits and . _ - (at most 255).
 */
static int
conf_node(struct conf *conf, const char **error_r)
{
	const struct conf_entry *e = conf_find(conf, "storage", "node");
	char host[256];
	size_t len;

	if (conf->storage_node[0] == '\0') {
		if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
			snprintf(host, sizeof(host), "loketd");
		host[sizeof(host) - 1] = '\0';
		free(conf->storage_node);
		if ((conf->storage_node = strdup(host)) == NULL)
			return -1;
	}
	len = strlen(conf->storage_node);
	if (len == 0 || len > 255 ||
	    strspn(conf->storage_node, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				       "0123456789._-") != len) {
		if (e == NULL)
			*error_r = util_error("%s: [storage] node is the host name by default, and"
					       " '%s' is no node name: set node (1 to 255 letters,"
					       " digits, '.', '_' or '-', distinct per node)",
			    conf->path, conf->storage_node);
		else
			*error_r = util_error("%s:%d: node: expected a name of 1 to 255 letters,"
					       " digits, '.', '_' or '-' (distinct per node), got '%s'",
			    conf->path, e->line, conf->storage_node);
		return -1;
	}
	return 0;
}

static int
conf_derive(struct conf *conf, const char **error_r)
{
	char buf[4096];

	if (conf->control_socket[0] == '\0') {
		if (util_path_join(buf, sizeof(buf), conf->data_dir, "loketd.sock") < 0 ||
		    strlen(buf) >= 108) {
			*error_r = util_error("%s: data_dir is too long for the control socket path; "
					       "set [loketd] control_socket",
			    conf->path);
			return -1;
		}
		free(conf->control_socket);
		if ((conf->control_socket = strdup(buf)) == NULL)
			return -1;
	}
	if (conf->storage_path[0] == '\0') {
		if (util_path_join(buf, sizeof(buf), conf->data_dir, "loket.db") < 0)
			return -1;
		free(conf->storage_path);
		if ((conf->storage_path = strdup(buf)) == NULL)
			return -1;
	}
	if (conf->storage_readers > CONF_STORAGE_READERS_MAX) {
		const struct conf_entry *e = conf_find(conf, "storage", "readers");

		*error_r = util_error("%s:%d: readers: expected 1 to %d reader threads, got %lld",
		    conf->path, e != NULL ? e->line : 0, CONF_STORAGE_READERS_MAX,
		    (long long)conf->storage_readers);
		return -1;
	}
	/* The name becomes a file name, plugin_dir/store_NAME.so: nothing that leaves the folder. */
	if (conf->storage_driver[0] == '\0' ||
	    strspn(conf->storage_driver, "abcdefghijklmnopqrstuvwxyz0123456789_") !=
		strlen(conf->storage_driver)) {
		const struct conf_entry *e = conf_find(conf, "storage", "driver");

		*error_r = util_error("%s:%d: driver: expected sqlite or the NAME of a driver "
				      "plugin_dir/store_NAME.so (a-z, 0-9, _), got '%s'",
		    conf->path, e != NULL ? e->line : 0, conf->storage_driver);
		return -1;
	}
	if (conf_node(conf, error_r) < 0)
		return -1;
	if (strcmp(conf->storage_driver, "pgsql") == 0 && conf->storage_conninfo[0] == '\0') {
		*error_r = util_error("%s: [storage] driver = pgsql needs conninfo", conf->path);
		return -1;
	}
	return 0;
}

int
conf_load(const char *path, struct conf **conf_r, const char **error_r)
{
	struct conf_parse p = { 0 };
	struct conf *conf;
	struct stat st = { 0 };
	int rc;

	*error_r = NULL;
	if ((conf = calloc(1, sizeof(*conf))) == NULL || (conf->path = strdup(path)) == NULL) {
		free(conf);
		*error_r = util_error("%s: out of memory", path);
		return -1;
	}
	p.conf = conf;
	if ((p.fp = fopen(path, "r")) == NULL) {
		*error_r = util_error("%s: cannot read: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(fileno(p.fp), &st) < 0 || !S_ISREG(st.st_mode)) {
		*error_r = util_error("%s: cannot read: %s", path,
		    S_ISDIR(st.st_mode) ? "it is a directory" : "not a regular file");
		fclose(p.fp);
		goto fail;
	}
	rc = ini_parse_stream(conf_reader, &p, conf_handler, &p);
	fclose(p.fp);
	if (p.overlong) {
		*error_r = util_error("%s:%d: line too long; expected at most 199 characters",
		    path, p.line);
		goto fail;
	}
	if (p.error != NULL) {
		*error_r = p.error;
		goto fail;
	}
	if (rc > 0) {
		*error_r = util_error("%s:%d: expected '[section]' or 'key = value'", path, rc);
		goto fail;
	}
	if (rc < 0) {
		*error_r = util_error("%s: cannot parse (error %d)", path, rc);
		goto fail;
	}
	if (conf_apply_section(conf, "loketd", "loketd", conf, error_r) < 0 ||
	    conf_apply_section(conf, "http", "http", conf, error_r) < 0 ||
	    conf_apply_section(conf, "storage", "storage", conf, error_r) < 0 ||
	    conf_apply_section(conf, "rules", "rules", conf, error_r) < 0 ||
	    conf_split_plugins(conf, error_r) < 0 || conf_collect_units(conf, error_r) < 0 ||
	    conf_derive(conf, error_r) < 0)
		goto fail;
	*conf_r = conf;
	return 0;
fail:
	if (*error_r == NULL)
		*error_r = util_error("%s: out of memory", path);
	conf_free(conf);
	return -1;
}

void
conf_free(struct conf *conf)
{
	if (conf == NULL)
		return;
	for (size_t i = 0; i < conf->nentries; i++) {
		free(conf->entries[i].section);
		free(conf->entries[i].key);
		free(conf->entries[i].value);
	}
	free(conf->entries);
	for (size_t i = 0; i < conf->nplugins; i++)
		free(conf->plugin_names[i]);
	free(conf->plugin_names);
	for (size_t i = 0; i < conf->norganisations; i++) {
		free(conf->organisations[i].id);
		free(conf->organisations[i].name);
		free(conf->organisations[i].calendar);
	}
	free(conf->organisations);
	for (size_t i = 0; i < conf->ndepartments; i++) {
		free(conf->departments[i].id);
		free(conf->departments[i].name);
		free(conf->departments[i].organisation);
		free(conf->departments[i].calendar);
	}
	free(conf->departments);
	free(conf->listen);
	free(conf->listen_host);
	free(conf->data_dir);
	free(conf->plugin_dir);
	free(conf->plugins);
	free(conf->log_level);
	free(conf->control_socket);
	free(conf->web_dir);
	free(conf->storage_driver);
	free(conf->storage_path);
	free(conf->storage_conninfo);
	free(conf->storage_node);
	free(conf->http_trusted_proxies);
	free(conf->rules_dir);
	free(conf->rules_catalogue);
	free(conf->rules_answers);
	free(conf->timezone);
	free(conf->path);
	free(conf);
}
