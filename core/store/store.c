/* store.c: finds the storage driver (built in or plugin_dir/store_NAME.so), hands it the host table, carries requests to it and back. */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "util.h"

static const struct store_driver *const store_drivers[] = {
	&store_sqlite_driver,
};

/*
 * The register a plugin's blob_put reaches (store_blob_put with s NULL): the
 * write lock is taken only to open and close, so puts run side by side and
 * store_close waits for those under way.
 */
static pthread_rwlock_t store_blob_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct store *store_blob_store;

/* The [storage] keys a driver reads through the host table, as written or defaulted. */
static const char *
store_host_conf_get(const struct loket_store_host *host, const char *key)
{
	const struct store *s = (const struct store *)host;
	const char *v = json_string_value(json_object_get(s->settings, key));

	return v != NULL ? v : "";
}

static int64_t
store_host_conf_int(const struct loket_store_host *host, const char *key)
{
	const struct store *s = (const struct store *)host;
	json_t *v = json_object_get(s->settings_int, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

static void
store_host_log(enum loket_log_level level, const char *subsystem, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(level, subsystem, fmt, ap);
	va_end(ap);
}

static void
store_host_fatal(const struct loket_store_host *host)
{
	const struct store *s = (const struct store *)host;

	if (s->fatal_hook != NULL)
		s->fatal_hook(s->fatal_arg);
}

static struct loket_store_metric *
store_host_metric(const struct loket_store_host *host, enum loket_store_metric_type type,
    const char *name, const char *help, const char *labels, const double *bounds, size_t nbounds)
{
	const struct store *s = (const struct store *)host;
	enum metric_type t = type == LOKET_STORE_METRIC_COUNTER ? METRIC_COUNTER :
	    type == LOKET_STORE_METRIC_GAUGE                    ? METRIC_GAUGE :
	                                                          METRIC_HISTOGRAM;

	if (s->metrics == NULL)
		return NULL;
	if (t == METRIC_HISTOGRAM && bounds == NULL) {
		bounds = metrics_latency_bounds;
		nbounds = metrics_latency_nbounds;
	}
	return (struct loket_store_metric *)metrics_series(
	    s->metrics, t, name, help, labels != NULL ? labels : "", bounds, nbounds);
}

static void
store_host_metric_add(struct loket_store_metric *m, double v)
{
	if (m != NULL)
		metrics_add((struct metric_series *)m, v);
}

static void
store_host_metric_observe(struct loket_store_metric *m, double v)
{
	if (m != NULL)
		metrics_observe((struct metric_series *)m, v);
}

static int
store_host_metric_gauge_fn(const struct loket_store_host *host, const char *name,
    const char *help, double (*fn)(void *arg), void *arg)
{
	const struct store *s = (const struct store *)host;

	if (s->metrics == NULL)
		return 0;
	return metrics_gauge_fn(s->metrics, name, help, "", fn, arg);
}

static void
store_host_remote_events(const struct loket_store_host *host, const struct store_event *evs,
    size_t n)
{
	const struct store *s = (const struct store *)host;

	if (s->remote_hook != NULL && n > 0)
		s->remote_hook(evs, n, s->remote_arg);
}

static void
store_host_remote_control(const struct loket_store_host *host, const char *what)
{
	const struct store *s = (const struct store *)host;

	if (s->control_hook != NULL && what != NULL)
		s->control_hook(what, s->control_arg);
}

/*
 * Copies what a driver may read of [storage] into s: the store outlives the
 * config snapshot it was opened with (a reload replaces it).
 */
static int
store_settings(struct store *s, const struct conf *conf)
{
	if ((s->settings = json_object()) == NULL || (s->settings_int = json_object()) == NULL)
		return -1;
	for (size_t i = 0; i < conf->nentries; i++) {
		const struct conf_entry *e = &conf->entries[i];

		if (strcmp(e->section, "storage") == 0 && e->key[0] != '\0' &&
		    json_object_set_new(s->settings, e->key, json_string(e->value)) < 0)
			return -1;
	}
	/* The values conf.c resolved or parsed win over the text as written. */
	if (json_object_set_new(s->settings, "driver", json_string(conf->storage_driver)) < 0 ||
	    json_object_set_new(s->settings, "path", json_string(conf->storage_path)) < 0 ||
	    json_object_set_new(s->settings, "conninfo", json_string(conf->storage_conninfo)) < 0 ||
	    json_object_set_new(s->settings, "node", json_string(conf->storage_node)) < 0 ||
	    json_object_set_new(s->settings, "durability",
		json_string(conf->durability == CONF_DURABILITY_RELAXED ? "relaxed" : "full")) < 0 ||
	    json_object_set_new(s->settings_int, "readers", json_integer(conf->storage_readers)) < 0 ||
	    json_object_set_new(s->settings_int, "pool", json_integer(conf->storage_pool)) < 0 ||
	    json_object_set_new(s->settings_int, "lease",
		json_integer((json_int_t)conf->storage_lease_ms)) < 0)
		return -1;
	return 0;
}

/* One lease this process holds: its name as the register keeps it. */
struct store_lease {
	struct store_lease *next;
	char name[];
};

/*
 * This process's name in the register's leases: [storage] node (the host
 * name when it is not set) and the pid. The pid keeps two daemons on one
 * host, or two nodes given one name by mistake, from both holding a lease;
 * a node that restarts waits for its old leases to run out, as a new one
 * would.
 */
static void
store_holder(struct store *s)
{
	const char *node = store_host_conf_get(&s->host, "node");
	char host[256];

	if (*node == '\0') {
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "loketd");
		host[sizeof(host) - 1] = '\0';
		node = host;
	}
	snprintf(s->holder, sizeof(s->holder), "%.200s:%ld", node, (long)getpid());
}

/* A store without a driver yet: the host table filled in, the settings copied. */
static struct store *
store_new(struct event_base *base, struct metrics *metrics, const struct conf *conf)
{
	struct store *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->dl_fd = -1;
	s->base = base;
	s->metrics = metrics;
	if ((s->data_dir = strdup(conf->data_dir)) == NULL || store_settings(s, conf) < 0) {
		json_decref(s->settings);
		json_decref(s->settings_int);
		free(s->data_dir);
		free(s);
		return NULL;
	}
	s->host.size = sizeof(s->host);
	s->host.abi_major = LOKET_STORE_ABI_MAJOR;
	s->host.abi_minor = LOKET_STORE_ABI_MINOR;
	s->host.base = base;
	s->host.data_dir = s->data_dir;
	s->host.conf_get = store_host_conf_get;
	s->host.conf_int = store_host_conf_int;
	s->host.log = store_host_log;
	s->host.req_fail = store_req_fail;
	s->host.req_event = store_req_event;
	s->host.req_complete = store_req_complete;
	s->host.fatal = store_host_fatal;
	s->host.op_name = store_op_name;
	s->host.event_name = store_event_name;
	s->host.op_is_write = store_op_is_write;
	s->host.metric = store_host_metric;
	s->host.metric_add = store_host_metric_add;
	s->host.metric_observe = store_host_metric_observe;
	s->host.metric_gauge_fn = store_host_metric_gauge_fn;
	s->host.remote_events = store_host_remote_events;
	s->host.remote_control = store_host_remote_control;
	s->host.req_view = store_req_view;
	s->host.event_scope_add = store_event_scope_add;
	pthread_mutex_init(&s->lease_mu, NULL);
	store_holder(s);
	return s;
}

/* Unloads the driver and frees s; the driver is closed already. */
static void
store_free(struct store *s)
{
	if (s == NULL)
		return;
	if (s->dl != NULL)
		dlclose(s->dl);
	if (s->dl_fd >= 0)
		close(s->dl_fd);
	json_decref(s->settings);
	json_decref(s->settings_int);
	free(s->data_dir);
	while (s->leases != NULL) {
		struct store_lease *l = s->leases;

		s->leases = l->next;
		free(l);
	}
	pthread_mutex_destroy(&s->lease_mu);
	free(s);
}

/*
 * Loads plugin_dir/store_NAME.so for s. The file is checked as opened, not
 * by name (O_NOFOLLOW, fstat), and dlopen()ed as /proc/self/fd/N, so a file
 * swapped after the check cannot be the one that runs (as plugins are).
 */
static int
store_driver_load(struct store *s, const struct conf *conf, const char **error_r)
{
	const char *name = conf->storage_driver;
	const struct store_driver *d;
	char dir[PATH_MAX], path[PATH_MAX + 64], fdpath[64];
	struct stat st;

	if (realpath(conf->plugin_dir, dir) == NULL) {
		*error_r = util_error("storage driver %s: cannot open plugin_dir %s: %s", name,
		    conf->plugin_dir, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/store_%s.so", dir, name);
	if ((s->dl_fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)) < 0) {
		if (errno == ENOENT)
			*error_r = util_error("storage driver %s: no file %s; install the driver "
					      "there or set [storage] driver = sqlite",
			    name, path);
		else if (errno == ELOOP)
			*error_r = util_error("storage driver %s: file %s is a symbolic link; "
					      "refusing to load it (install the file itself)",
			    name, path);
		else
			*error_r = util_error("storage driver %s: cannot open file %s: %s", name,
			    path, strerror(errno));
		return -1;
	}
	if (fstat(s->dl_fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*error_r = util_error("storage driver %s: file %s is not a regular file", name, path);
		return -1;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 || (st.st_uid != 0 && st.st_uid != geteuid())) {
		*error_r = util_error("storage driver %s: file %s is writable by others or owned by "
				      "another user; refusing to load it",
		    name, path);
		return -1;
	}
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", s->dl_fd);
	dlerror();
	if ((s->dl = dlopen(fdpath, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		*error_r = util_error("storage driver %s: cannot load %s: %s", name, path, dlerror());
		return -1;
	}
	if ((d = dlsym(s->dl, LOKET_STORE_DRIVER_SYMBOL)) == NULL) {
		*error_r = util_error("storage driver %s: %s has no symbol '%s'; is it a loket "
				      "storage driver?",
		    name, path, LOKET_STORE_DRIVER_SYMBOL);
		return -1;
	}
	if (d->abi_major != LOKET_STORE_ABI_MAJOR || d->abi_minor > LOKET_STORE_ABI_MINOR) {
		*error_r = util_error("storage driver %s: %s was built for storage ABI %u.%u, but "
				      "this loketd speaks %d.%d; rebuild the driver%s",
		    name, path, d->abi_major, d->abi_minor, LOKET_STORE_ABI_MAJOR,
		    LOKET_STORE_ABI_MINOR,
		    d->abi_major == LOKET_STORE_ABI_MAJOR ? " or upgrade loketd" : "");
		return -1;
	}
	if (d->name == NULL || strcmp(d->name, name) != 0 || d->open == NULL ||
	    d->submit == NULL || d->close == NULL) {
		*error_r = util_error("storage driver %s: %s does not fill its table (name '%s', "
				      "open, submit and close are required)",
		    name, path, d->name != NULL ? d->name : "");
		return -1;
	}
	s->driver = d;
	return 0;
}

/* A store with its driver found (built in or loaded), not opened. */
static struct store *
store_prepare(struct event_base *base, struct metrics *metrics, const struct conf *conf,
    const char **error_r)
{
	struct store *s = store_new(base, metrics, conf);

	if (s == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	for (size_t i = 0; i < sizeof(store_drivers) / sizeof(store_drivers[0]); i++)
		if (strcmp(store_drivers[i]->name, conf->storage_driver) == 0)
			s->driver = store_drivers[i];
	if (s->driver == NULL && store_driver_load(s, conf, error_r) < 0) {
		store_free(s);
		return NULL;
	}
	return s;
}

int
store_check(const struct conf *conf, const char **error_r)
{
	struct store *s = store_prepare(NULL, NULL, conf, error_r);

	if (s == NULL)
		return -1;
	store_free(s);
	return 0;
}

int
store_replay(const struct conf *conf, int64_t since_ms, int (*cb)(json_t *contact, void *arg),
    void *arg, const char **error_r)
{
	struct store *s = store_prepare(NULL, NULL, conf, error_r);
	int rc;

	if (s == NULL)
		return -1;
	if (s->driver->replay == NULL) {
		*error_r = util_error("rules replay reads the register through its storage driver; "
				      "driver %s cannot replay",
		    conf->storage_driver);
		store_free(s);
		return -1;
	}
	rc = s->driver->replay(&s->host, since_ms, cb, arg, error_r);
	if (rc < 0)
		*error_r = util_error("%s", *error_r != NULL ? *error_r : "the driver did not say why");
	store_free(s);
	return rc;
}

/* Whether a loaded driver's table reaches the copy entries (minor version 1). */
static int
store_copy_supported(const struct store *s)
{
	return s->driver->abi_minor >= 1;
}

int
store_copy_prepare(const struct conf *conf, const char *driver, const char *where,
    const char *data_dir, struct store **store_r, const char **error_r)
{
	struct conf c = *conf;
	struct store *s;

	/* A shallow copy: only these pointers differ, and none of them is freed here. */
	c.storage_driver = (char *)driver;
	if (strcmp(driver, "sqlite") == 0)
		c.storage_path = (char *)where;
	else
		c.storage_conninfo = (char *)where;
	c.data_dir = (char *)data_dir;
	if ((s = store_prepare(NULL, NULL, &c, error_r)) == NULL)
		return -1;
	*store_r = s;
	return 0;
}

void
store_copy_free(struct store *s)
{
	store_free(s);
}

/* The driver's sentence copied: it may live in the driver's file, unmapped at store_free. */
static int
store_copy_failed(const char **error_r)
{
	*error_r = util_error("%s", *error_r != NULL ? *error_r : "the driver did not say why");
	return -1;
}

int
store_copy_dump(struct store *s, void *load,
    int (*cb)(const char *table, int64_t total, json_t *row, void *arg), void *arg,
    const char **error_r)
{
	if (!store_copy_supported(s) || s->driver->dump == NULL) {
		*error_r = util_error("storage driver %s cannot read a register out for a copy",
		    s->driver->name);
		return -1;
	}
	*error_r = NULL;
	if (s->driver->dump(&s->host, load, cb, arg, error_r) < 0)
		return store_copy_failed(error_r);
	return 0;
}

int
store_copy_load_begin(struct store *s, void **load_r, const char **error_r)
{
	if (!store_copy_supported(s) || s->driver->load_begin == NULL
	    || s->driver->load_rows == NULL || s->driver->load_end == NULL
	    || s->driver->dump == NULL) {
		*error_r = util_error("storage driver %s cannot be the target of a register copy",
		    s->driver->name);
		return -1;
	}
	*error_r = NULL;
	if (s->driver->load_begin(&s->host, load_r, error_r) < 0)
		return store_copy_failed(error_r);
	return 0;
}

int
store_copy_load_rows(struct store *s, void *load, const char *table, json_t *rows,
    const char **error_r)
{
	*error_r = NULL;
	if (s->driver->load_rows(load, table, rows, error_r) < 0)
		return store_copy_failed(error_r);
	return 0;
}

int
store_copy_load_end(struct store *s, void *load, int commit, const char **error_r)
{
	*error_r = NULL;
	if (s->driver->load_end(load, commit, error_r) < 0)
		return store_copy_failed(error_r);
	return 0;
}

int
store_open(struct event_base *base, struct metrics *metrics, const struct conf *conf,
    struct store **store_r, const char **error_r)
{
	struct store *s = store_prepare(base, metrics, conf, error_r);

	if (s == NULL)
		return -1;
	if (s->driver->open(&s->host, &s->impl, error_r) < 0) {
		/* The sentence may live in the driver's file, unmapped by store_free. */
		*error_r = util_error("%s", *error_r != NULL ? *error_r : "the driver did not say why");
		store_free(s);
		return -1;
	}
	pthread_rwlock_wrlock(&store_blob_lock);
	store_blob_store = s;
	pthread_rwlock_unlock(&store_blob_lock);
	*store_r = s;
	return 0;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	pthread_rwlock_wrlock(&store_blob_lock);
	if (store_blob_store == s)
		store_blob_store = NULL;
	pthread_rwlock_unlock(&store_blob_lock);
	/*
	 * No lease call reaches s any more: what this node held goes back now,
	 * so that another node takes it over at once rather than when it runs
	 * out (a node that dies leaves them to run out).
	 */
	while (s->leases != NULL) {
		struct store_lease *l = s->leases;

		s->leases = l->next;
		if (s->driver->lease(s->impl, l->name, s->holder, 0, 1, NULL) == STORE_OK)
			log_info("store", "lease released name=%s node=%s", l->name, s->holder);
		free(l);
	}
	s->driver->close(s->impl);
	store_free(s);
}

enum store_result
store_blob_put(struct store *s, const void *data, size_t len, unsigned int flags,
    char sha256_hex[65])
{
	enum store_result res = STORE_UNAVAILABLE;
	struct store *t;

	sha256_hex[0] = '\0';
	pthread_rwlock_rdlock(&store_blob_lock);
	t = s != NULL ? s : store_blob_store;
	if (t != NULL)
		res = t->driver->blob_put != NULL ?
			t->driver->blob_put(t->impl, data, len, flags, sha256_hex) : STORE_FAILED;
	pthread_rwlock_unlock(&store_blob_lock);
	return res;
}

enum store_result
store_blob_sync(struct store *s)
{
	enum store_result res = STORE_UNAVAILABLE;
	struct store *t;

	pthread_rwlock_rdlock(&store_blob_lock);
	t = s != NULL ? s : store_blob_store;
	if (t != NULL)
		res = t->driver->blob_sync != NULL ? t->driver->blob_sync(t->impl) : STORE_OK;
	pthread_rwlock_unlock(&store_blob_lock);
	return res;
}

enum store_result
store_blob_get(struct store *s, const char *sha256_hex, void **data_r, size_t *len_r)
{
	enum store_result res = STORE_UNAVAILABLE;
	struct store *t;

	*data_r = NULL;
	*len_r = 0;
	pthread_rwlock_rdlock(&store_blob_lock);
	t = s != NULL ? s : store_blob_store;
	if (t != NULL)
		res = t->driver->blob_get != NULL ?
			t->driver->blob_get(t->impl, sha256_hex, data_r, len_r) : STORE_NOT_FOUND;
	pthread_rwlock_unlock(&store_blob_lock);
	return res;
}

/* The entry of this process's leases named name, or NULL; under s->lease_mu. */
static struct store_lease **
store_lease_find(struct store *s, const char *name)
{
	struct store_lease **lp;

	for (lp = &s->leases; *lp != NULL; lp = &(*lp)->next)
		if (strcmp((*lp)->name, name) == 0)
			return lp;
	return NULL;
}

/*
 * What the driver answered, as this process's list and the log see it: a
 * lease newly held is taken (from another node when one had it), one held
 * before and not now is lost. Under s->lease_mu.
 */
static void
store_lease_note(struct store *s, const char *name, enum store_result res, int release,
    const char *was)
{
	struct store_lease **lp = store_lease_find(s, name), *l;

	if (res == STORE_OK && !release) {
		if (lp != NULL)
			return;
		if ((l = malloc(sizeof(*l) + strlen(name) + 1)) != NULL) {
			strcpy(l->name, name);
			l->next = s->leases;
			s->leases = l;
		}
		if (*was != '\0' && strcmp(was, s->holder) != 0)
			log_info("store", "lease taken over name=%s node=%s from=%s", name, s->holder,
			    was);
		else
			log_info("store", "lease taken name=%s node=%s", name, s->holder);
		return;
	}
	if (lp == NULL)
		return;
	l = *lp;
	*lp = l->next;
	free(l);
	if (release && res == STORE_OK)
		log_info("store", "lease released name=%s node=%s", name, s->holder);
	else if (release)
		log_warnx("store", "lease left to run out name=%s node=%s: the register cannot be "
		    "asked now", name, s->holder);
	else if (res == STORE_CONFLICT)
		log_warnx("store", "lease lost name=%s node=%s held_by=%s", name, s->holder,
		    *was != '\0' ? was : "another node");
	else
		log_warnx("store", "lease lost name=%s node=%s: the register cannot be asked now",
		    name, s->holder);
}

enum store_result
store_lease(struct store *s, const char *name, int64_t ttl_ms, int release, int64_t *ttl_r)
{
	enum store_result res = STORE_UNAVAILABLE;
	char was[STORE_LEASE_HOLDER_MAX] = "";
	struct store *t;

	if (ttl_r != NULL)
		*ttl_r = 0;
	pthread_rwlock_rdlock(&store_blob_lock);
	t = s != NULL ? s : store_blob_store;
	if (t == NULL) {
		pthread_rwlock_unlock(&store_blob_lock);
		return STORE_UNAVAILABLE;
	}
	if (ttl_ms <= 0)
		ttl_ms = store_host_conf_int(&t->host, "lease");
	if (ttl_ms <= 0)
		ttl_ms = 30000;
	/* One caller at a time per store: the log's taken/lost follows the register's order. */
	pthread_mutex_lock(&t->lease_mu);
	res = LOKET_STORE_DRIVER_HAS(t->driver, 1, lease) ?
		t->driver->lease(t->impl, name, t->holder, ttl_ms, release, was) : STORE_FAILED;
	was[sizeof(was) - 1] = '\0';
	store_lease_note(t, name, res, release, was);
	pthread_mutex_unlock(&t->lease_mu);
	pthread_rwlock_unlock(&store_blob_lock);
	if (res == STORE_OK && ttl_r != NULL)
		*ttl_r = release ? 0 : ttl_ms;
	return res;
}

int
store_health(struct store *s, const char **why_r)
{
	if (s == NULL || s->driver->health == NULL)
		return 0;
	return s->driver->health(s->impl, why_r);
}

int
store_broadcast(struct store *s, const char *what)
{
	/* A driver built for minor 0 has a shorter table: broadcast is not there to read. */
	if (s == NULL || s->driver->abi_minor < 1 || s->driver->broadcast == NULL)
		return 0;
	return s->driver->broadcast(s->impl, what);
}

void
store_submit(struct store *s, struct store_req *req)
{
	req->queued_ns = util_now_ns();
	req->store = s;
	s->driver->submit(s->impl, req);
}

struct store_req *
store_req_new(enum store_op op, json_t *in, void (*cb)(struct store_req *req, void *arg),
    void *arg)
{
	struct store_req *req = calloc(1, sizeof(*req));

	if (req == NULL) {
		json_decref(in);
		return NULL;
	}
	req->op = op;
	req->in = in;
	req->cb = cb;
	req->arg = arg;
	return req;
}

void
store_req_free(struct store_req *req)
{
	if (req == NULL)
		return;
	json_decref(req->in);
	json_decref(req->out);
	free(req->events);
	free(req);
}

static const struct {
	enum loket_event_kind kind;
	const char *name;
} store_event_names[] = {
	{ LOKET_EVENT_CONTACT_CREATED, "contact.created" },
	{ LOKET_EVENT_CONTACT_CHANGED, "contact.changed" },
	{ LOKET_EVENT_MESSAGE_ADDED, "message.added" },
	{ LOKET_EVENT_TASK_CREATED, "task.created" },
	{ LOKET_EVENT_TASK_DUE, "task.due" },
	{ LOKET_EVENT_TASK_DONE, "task.done" },
	{ LOKET_EVENT_TIMER_FIRED, "timer.fired" },
};

const char *
store_event_name(enum loket_event_kind kind)
{
	for (size_t i = 0; i < sizeof(store_event_names) / sizeof(store_event_names[0]); i++)
		if (store_event_names[i].kind == kind)
			return store_event_names[i].name;
	return NULL;
}

int
store_req_event(struct store_req *req, const struct store_event *ev)
{
	struct store_event *grown;

	/* A write makes a handful of events: grow one at a time. */
	if ((grown = realloc(req->events, (req->nevents + 1) * sizeof(*grown))) == NULL)
		return -1;
	req->events = grown;
	req->events[req->nevents++] = *ev;
	return 0;
}

const char *
store_op_name(enum store_op op)
{
	static const char *const names[STORE_OP_COUNT] = {
		[STORE_CONTACT_CREATE] = "contact.create",
		[STORE_CONTACT_UPDATE] = "contact.update",
		[STORE_TASK_DONE] = "task.done",
		[STORE_TOKEN_PUT] = "token.put",
		[STORE_TOKEN_REVOKE] = "token.revoke",
		[STORE_AUDIT] = "audit",
		[STORE_TIMER_DONE] = "timer.done",
		[STORE_MESSAGE_ADD] = "message.add",
		[STORE_OUTBOX_DONE] = "outbox.done",
		[STORE_PARTY_UPDATE] = "party.update",
		[STORE_PARTY_MERGE] = "party.merge",
		[STORE_CONTACT_GET] = "contact.get",
		[STORE_CONTACT_LIST] = "contact.list",
		[STORE_PARTY_GET] = "party.get",
		[STORE_PARTY_FIND] = "party.find",
		[STORE_PARTY_CONTACTS] = "party.contacts",
		[STORE_TASK_LIST] = "task.list",
		[STORE_TOKEN_LIST] = "token.list",
		[STORE_COUNTS] = "counts",
		[STORE_TIMERS_DUE] = "timers.due",
		[STORE_TIMERS_NEXT] = "timers.next",
		[STORE_MESSAGE_LIST] = "message.list",
		[STORE_THREAD_FIND] = "thread.find",
		[STORE_OUTBOX_DUE] = "outbox.due",
		[STORE_OUTBOX_NEXT] = "outbox.next",
		[STORE_EVENTS_AFTER] = "events.after",
		[STORE_TASK_GET] = "task.get",
		[STORE_PARTY_DUPLICATES] = "party.duplicates",
		[STORE_USER_ADD] = "user.add",
		[STORE_USER_UPDATE] = "user.update",
		[STORE_USER_LIST] = "user.list",
		[STORE_SIGNIN_GET] = "signin.get",
		[STORE_SIGNIN_FAIL] = "signin.fail",
		[STORE_SESSION_PUT] = "session.put",
		[STORE_SESSION_GET] = "session.get",
		[STORE_SESSION_TOUCH] = "session.touch",
		[STORE_SESSION_END] = "session.end",
		[STORE_SEARCH] = "search",
		[STORE_CONTACT_STATUS] = "contact.status",
		[STORE_AUDIT_LIST] = "audit.list",
	};

	if ((unsigned int)op >= STORE_OP_COUNT || names[op] == NULL)
		return "unknown";
	return names[op];
}

/*
 * The one check of what a token's scope may see of a contact, for the
 * SQLite driver's reads and writes and for the event stream's per-event
 * filter, so that a stream never shows a contact a read would refuse.
 */
int
store_scope_allows(json_t *scope, const char *department, const char *organisation,
    int confidential)
{
	json_t *deps = json_object_get(scope, "departments");
	const char *org = json_string_value(json_object_get(scope, "organisation"));
	size_t i;
	json_t *d;
	int in = 0;

	if (json_is_true(json_object_get(scope, "all")))
		return 1;
	if (json_is_array(deps)) {
		json_array_foreach(deps, i, d)
			in |= department != NULL && json_is_string(d) &&
			    strcmp(json_string_value(d), department) == 0;
		if (!in)
			return 0;
	}
	return !confidential || (org != NULL && organisation != NULL && strcmp(org, organisation) == 0);
}

/* s as a JSON string (or null) into buf; -1 when it does not fit whole. */
static int
store_event_json_str(char *buf, size_t len, const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return snprintf(buf, len, "null") < (int)len ? 0 : -1;
	buf[n++] = '"';
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (n + 8 >= len)
			return -1;
		if (ch == '"' || ch == '\\') {
			buf[n++] = '\\';
			buf[n++] = (char)ch;
		} else if (ch < 0x20) {
			n += (size_t)snprintf(buf + n, len - n, "\\u%04x", ch);
		} else {
			buf[n++] = (char)ch;
		}
	}
	buf[n++] = '"';
	buf[n] = '\0';
	return 0;
}

void
store_event_scope_add(char payload[STORE_EVENT_PAYLOAD], const char *department,
    const char *organisation, int confidential)
{
	char dep[96], org[96], scope[256];
	size_t n = strlen(payload);
	int k;

	if (store_event_json_str(dep, sizeof(dep), department) < 0 ||
	    store_event_json_str(org, sizeof(org), organisation) < 0)
		goto closed;
	k = snprintf(scope, sizeof(scope),
	    "\"scope\":{\"department\":%s,\"organisation\":%s,\"confidential\":%s}", dep, org,
	    confidential ? "true" : "false");
	if (k < 0 || (size_t)k >= sizeof(scope))
		goto closed;
	/* After the payload's own keys; alone when they leave no room. */
	if (n >= 2 && payload[n - 1] == '}' && n + (size_t)k + 1 < STORE_EVENT_PAYLOAD) {
		size_t at = n - 1;

		if (n > 2)
			payload[at++] = ',';
		memcpy(payload + at, scope, (size_t)k);
		at += (size_t)k;
		payload[at++] = '}';
		payload[at] = '\0';
		return;
	}
	if ((size_t)k + 2 < STORE_EVENT_PAYLOAD) {
		payload[0] = '{';
		memcpy(payload + 1, scope, (size_t)k);
		payload[k + 1] = '}';
		payload[k + 2] = '\0';
		return;
	}
closed:
	/* Names too long to carry: only a scope that sees everything shows the event. */
	snprintf(payload, STORE_EVENT_PAYLOAD, "{\"scope\":{\"confidential\":true}}");
}

int
store_op_is_write(enum store_op op)
{
	/* Kinds added later sit after the reads: each says which it is. */
	switch (op) {
	case STORE_USER_ADD:
	case STORE_USER_UPDATE:
	case STORE_SIGNIN_FAIL:
	case STORE_SESSION_PUT:
	case STORE_SESSION_TOUCH:
	case STORE_SESSION_END:
		return 1;
	default:
		return op < STORE_CONTACT_GET;
	}
}

void
store_req_fail(struct store_req *req, enum store_result result, const char *fmt, ...)
{
	va_list ap;

	req->result = result;
	va_start(ap, fmt);
	vsnprintf(req->error, sizeof(req->error), fmt, ap);
	va_end(ap);
	json_decref(req->out);
	req->out = NULL;
	/* What a failed write stored was rolled back with it: no event of it was. */
	free(req->events);
	req->events = NULL;
	req->nevents = 0;
}

void
store_req_view(struct store_req *req)
{
	struct store *s = req->store;

	if (store_op_is_write(req->op) || (req->core_flags & STORE_REQ_VIEWED) != 0)
		return;
	req->core_flags |= STORE_REQ_VIEWED;
	if (s != NULL && s->view_hook != NULL)
		s->view_hook(req, s->view_arg);
}

void
store_req_complete(struct store_req *req)
{
	struct store *s = req->store;

	if (s != NULL && s->view_hook != NULL && (req->core_flags & STORE_REQ_VIEWED) == 0)
		s->view_hook(req, s->view_arg);
	if (s != NULL && s->done_hook != NULL && store_op_is_write(req->op))
		s->done_hook(req, s->done_arg);
	if (req->cb != NULL)
		req->cb(req, req->arg);
	store_req_free(req);
}
