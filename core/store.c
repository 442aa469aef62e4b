/* store.c: picks the storage driver and carries requests to it and back. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "store.h"
#include "util.h"

static const struct store_driver *const store_drivers[] = {
	&store_sqlite_driver,
};

int
store_open(struct event_base *base, struct metrics *metrics, const struct conf *conf,
    struct store **store_r, const char **error_r)
{
	struct store *s;

	for (size_t i = 0; i < sizeof(store_drivers) / sizeof(store_drivers[0]); i++) {
		if (strcmp(store_drivers[i]->name, conf->storage_driver) != 0)
			continue;
		if ((s = calloc(1, sizeof(*s))) == NULL) {
			*error_r = "out of memory";
			return -1;
		}
		s->driver = store_drivers[i];
		s->base = base;
		s->metrics = metrics;
		if (s->driver->open(s, conf, error_r) < 0) {
			free(s);
			return -1;
		}
		*store_r = s;
		return 0;
	}
	*error_r = "no such storage driver (pgsql needs the store_pgsql plugin)";
	return -1;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	s->driver->close(s);
	free(s);
}

void
store_submit(struct store *s, struct store_req *req)
{
	req->queued_ns = util_now_ns();
	s->driver->submit(s, req);
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
	free(req);
}

int
store_op_is_write(enum store_op op)
{
	return op < STORE_CONTACT_GET;
}

void
store_req_fail(struct store_req *req, int status, const char *fmt, ...)
{
	va_list ap;

	req->status = status;
	va_start(ap, fmt);
	vsnprintf(req->error, sizeof(req->error), fmt, ap);
	va_end(ap);
	json_decref(req->out);
	req->out = NULL;
}

void
store_req_complete(struct store_req *req)
{
	if (req->cb != NULL)
		req->cb(req, req->arg);
	store_req_free(req);
}
