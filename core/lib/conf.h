/* conf.h: the daemon's configuration snapshot, parsed from one INI file and validated. */
#ifndef LOKET_CONF_H
#define LOKET_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "loket/plugin.h"

/* One key = value line as read, for plugin sections and error messages. */
struct conf_entry {
	char *section;
	char *key;
	char *value;
	int line;
};

struct conf_organisation {
	char *id; /* the part after "organisation." */
	char *name;
	char *calendar;
};

struct conf_department {
	char *id;
	char *name;
	char *organisation;
	char *calendar;
};

/* More reader threads than this only add connections that wait for the disk. */
#define CONF_STORAGE_READERS_MAX 64

enum conf_durability {
	CONF_DURABILITY_FULL,
	CONF_DURABILITY_RELAXED,
};

struct conf {
	char *path;

	/* [loketd] */
	char *listen;
	char *listen_host;
	uint16_t listen_port;
	char *data_dir;
	char *plugin_dir;
	char *plugins; /* space-separated, as written */
	char **plugin_names;
	size_t nplugins;
	char *log_level;
	enum loket_log_level log_level_value;
	char *control_socket;
	char *web_dir;
	char *timezone;

	/* [http] */
	uint64_t http_max_header_size;
	uint64_t http_max_body_size;
	uint64_t http_timeout_ms;
	int64_t http_max_connections;
	int http_metrics_public;
	int64_t http_max_streams;          /* open event streams per node; more get 503 */
	uint64_t http_stream_keepalive_ms; /* a comment on every idle stream this often */
	uint64_t http_events_window_ms;    /* how far back a stream resumes (Last-Event-ID) */
	int64_t http_events_backlog;       /* how many missed events a resume sends at most */
	/* Staff sign-in (core/http/session.c) */
	int http_secure_cookies;
	uint64_t http_session_idle_ms;
	char *http_trusted_proxies; /* space-separated addresses, as written */
	uint64_t http_signin_window_ms;
	int64_t http_signin_user_failures;
	int64_t http_signin_address_failures;

	/* [storage] */
	char *storage_driver;
	char *storage_path;
	char *storage_conninfo;
	enum conf_durability durability;
	int64_t storage_readers; /* reader threads of the SQLite driver, 1..CONF_STORAGE_READERS_MAX */
	int64_t storage_pool;      /* connections of a networked driver (pgsql) */
	uint64_t storage_lease_ms; /* how long a node's lease on shared work lasts (pgsql) */

	/* [rules] */
	char *rules_dir;
	char *rules_catalogue;
	char *rules_answers; /* "": the answers folder beside the catalogue */
	int64_t rules_instructions;
	uint64_t rules_timeout_ms;
	uint64_t rules_memory;

	struct conf_organisation *organisations;
	size_t norganisations;
	struct conf_department *departments;
	size_t ndepartments;

	struct conf_entry *entries;
	size_t nentries;

	/* [storage] node: this node's name on work it claims in a shared register */
	char *storage_node;
};

/* Reads and validates path; on error *error_r is "file:line: what was expected" (util_error). */
int conf_load(const char *path, struct conf **conf_r, const char **error_r);
void conf_free(struct conf *conf);
/* Entries of section "plugin.NAME", in file order. */
const struct conf_entry *conf_find(const struct conf *conf, const char *section, const char *key);
/* Checks one value against a type; on error returns a description of what was expected. */
const char *conf_check_type(enum loket_config_type type, const char *value);
const struct conf_department *conf_department(const struct conf *conf, const char *id);
const struct conf_organisation *conf_organisation(const struct conf *conf, const char *id);

#endif
