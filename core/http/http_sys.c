/* http_sys.c: the daemon's own endpoints: /healthz and /metrics. */
#include "config.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "conf.h"
#include "auth.h"
#include "http.h"
#include "http_sys.h"
#include "loketd.h"
#include "metrics.h"
#include "store.h"

static void
http_sys_healthz(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	const char *why = NULL;

	if (d->stopping) {
		http_problem(req, 503, "loketd is shutting down");
		return;
	}
	/* A daemon that answers but cannot store is not healthy: intake would only get 503s. */
	if (store_health(d->store, &why) < 0) {
		http_problem(req, 503, why);
		return;
	}
	/* Until the tokens are read every request would be 401: not ready yet. */
	if (!auth_loaded(d->auth)) {
		http_problem(req, 503, "loketd is starting: the tokens are being read from the register");
		return;
	}
	http_reply_json(req, 200, json_pack("{s:s, s:s}", "status", "ok", "version",
				       PACKAGE_VERSION));
}

static void
http_sys_metrics(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	struct evbuffer *buf = evbuffer_new();
	size_t len;

	if (buf == NULL) {
		http_problem(req, 503, "out of memory");
		return;
	}
	metrics_render(d->metrics, buf);
	len = evbuffer_get_length(buf);
	http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8",
	    evbuffer_pullup(buf, (ev_ssize_t)len), len);
	evbuffer_free(buf);
}

static double
http_sys_uptime_cb(void *arg)
{
	return (double)(time(NULL) - ((struct loketd *)arg)->started);
}

int
http_sys_init(struct loketd *d, const char **error_r)
{
	char labels[128];

	snprintf(labels, sizeof(labels), "version=\"%s\",abi=\"%d.%d\"", PACKAGE_VERSION,
	    LOKET_ABI_MAJOR, LOKET_ABI_MINOR);
	metrics_set(metrics_series(d->metrics, METRIC_GAUGE, "loket_build_info",
			"Version and plugin ABI of this loketd.", labels, NULL, 0),
	    1);
	metrics_set(metrics_series(d->metrics, METRIC_GAUGE, "loket_start_time_seconds",
			"Unix time loketd started.", "", NULL, 0),
	    (double)d->started);
	metrics_gauge_fn(d->metrics, "loket_uptime_seconds", "Seconds since loketd started.", "",
	    http_sys_uptime_cb, d);
	if (http_route_add(d->http, "core", LOKET_HTTP_GET, "/healthz", LOKET_ACCESS_PUBLIC,
		http_sys_healthz, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_GET, "/metrics",
		d->conf->http_metrics_public ? LOKET_ACCESS_PUBLIC : LOKET_ACCESS_ADMIN,
		http_sys_metrics, d, error_r) < 0)
		return -1;
	return 0;
}
