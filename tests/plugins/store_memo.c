/*
 * store_memo.c: the smallest storage driver, built by
 * tests/integration/test_plugin_abi.py against the installed
 * loket/store.h alone (pkg-config loket), to prove a driver needs nothing
 * else. It keeps nothing: open reads its [storage] settings through the
 * host table, refuses when conninfo says so, and otherwise answers every
 * request "unavailable" on a later turn of the loop.
 *
 * -DMEMO_WRONG_MAJOR stamps it with another ABI major version.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "loket/store.h"

struct memo {
	const struct loket_store_host *host;
};

static int
memo_open(const struct loket_store_host *host, void **impl_r, const char **error_r)
{
	struct memo *m;

	host->log(LOKET_LOG_INFO, "memo", "opening pool=%lld lease_ms=%lld readers=%lld",
	    (long long)host->conf_int(host, "pool"), (long long)host->conf_int(host, "lease"),
	    (long long)host->conf_int(host, "readers"));
	if (strcmp(host->conf_get(host, "conninfo"), "refuse") == 0) {
		*error_r = "memo: the test asked this register to refuse (conninfo = refuse)";
		return -1;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		*error_r = "memo: out of memory";
		return -1;
	}
	m->host = host;
	*impl_r = m;
	return 0;
}

struct memo_later {
	const struct loket_store_host *host;
	struct store_req *req;
};

static void
memo_later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct memo_later *l = arg;

	(void)fd;
	(void)what;
	l->host->req_complete(l->req);
	free(l);
}

static void
memo_submit(void *impl, struct store_req *req)
{
	struct memo *m = impl;
	struct memo_later *l = malloc(sizeof(*l));

	m->host->req_fail(req, STORE_UNAVAILABLE, "memo keeps nothing");
	if (l == NULL) {
		m->host->req_complete(req);
		return;
	}
	l->host = m->host;
	l->req = req;
	if (event_base_once(m->host->base, -1, EV_TIMEOUT, memo_later_cb, l, NULL) < 0)
		memo_later_cb(-1, 0, l);
}

static void
memo_close(void *impl)
{
	free(impl);
}

static int
memo_health(void *impl, const char **why_r)
{
	(void)impl;
	*why_r = "memo keeps nothing: the test driver cannot commit";
	return -1;
}

const struct store_driver loket_store_driver = {
#ifdef MEMO_WRONG_MAJOR
	.abi_major = LOKET_STORE_ABI_MAJOR + 1,
#else
	.abi_major = LOKET_STORE_ABI_MAJOR,
#endif
	.abi_minor = LOKET_STORE_ABI_MINOR,
	.name = "memo",
	.open = memo_open,
	.submit = memo_submit,
	.close = memo_close,
	.health = memo_health,
};
