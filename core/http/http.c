/* http.c: the HTTP server: evhttp with limits, a route table plugins extend, JSON problems. */
#include "config.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "http.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

struct http_route {
	char *owner;
	char *pattern;
	char **segs;
	size_t nsegs;
	unsigned int methods;
	enum loket_http_access access;
	void (*fn)(struct loket_http_req *req, void *arg);
	void *arg;
	struct metric_series *latency;
	/* The request counters this route has used, so the hot path skips the lookup. */
	struct {
		int method;
		int status;
		struct metric_series *series;
	} counted[8];
};

/* An answer kept open (http_stream_start). */
struct http_stream {
	struct loket_http_req *req;
	struct bufferevent *bev; /* its connection's */
	struct evbuffer *chunk;
	size_t cap;
	void (*closed_cb)(void *arg);
	void *arg;
	LIST_ENTRY(http_stream) link;
};

struct http {
	struct event_base *base;
	struct evhttp *evhttp;
	struct evhttp_bound_socket *bound;
	struct http_guard *guard;
	struct metrics *metrics;
	struct http_route **routes;
	size_t nroutes;
	unsigned int inflight;
	int stopping;
	void (*drained_cb)(void *arg);
	void *drained_arg;
	int (*auth_fn)(struct loket_http_req *req, enum loket_http_access access, void *arg);
	void *auth_arg;
	const struct loket_caller *(*caller_fn)(struct loket_http_req *req, void *arg);
	void (*fallback_fn)(struct loket_http_req *req, void *arg);
	void *fallback_arg;
	struct metric_series *unmatched_latency;
	struct timeval timeout; /* [http] timeout */
	LIST_HEAD(, http_stream) streams;
	unsigned int nstreams;
};

static const struct {
	int status;
	const char *title;
} http_titles[] = {
	{ 200, "OK" },
	{ 201, "Created" },
	{ 202, "Accepted" },
	{ 204, "No Content" },
	{ 304, "Not Modified" },
	{ 400, "Bad Request" },
	{ 401, "Unauthorized" },
	{ 403, "Forbidden" },
	{ 404, "Not Found" },
	{ 405, "Method Not Allowed" },
	{ 408, "Request Timeout" },
	{ 409, "Conflict" },
	{ 413, "Content Too Large" },
	{ 415, "Unsupported Media Type" },
	{ 422, "Unprocessable Content" },
	{ 429, "Too Many Requests" },
	{ 431, "Request Header Fields Too Large" },
	{ 500, "Internal Server Error" },
	{ 501, "Not Implemented" },
	{ 503, "Service Unavailable" },
};

static const struct {
	enum loket_http_method method;
	enum evhttp_cmd_type cmd;
	const char *name;
} http_methods[] = {
	{ LOKET_HTTP_GET, EVHTTP_REQ_GET, "GET" },
	{ LOKET_HTTP_HEAD, EVHTTP_REQ_HEAD, "HEAD" },
	{ LOKET_HTTP_POST, EVHTTP_REQ_POST, "POST" },
	{ LOKET_HTTP_PUT, EVHTTP_REQ_PUT, "PUT" },
	{ LOKET_HTTP_PATCH, EVHTTP_REQ_PATCH, "PATCH" },
	{ LOKET_HTTP_DELETE, EVHTTP_REQ_DELETE, "DELETE" },
};

const char *
http_status_title(int status)
{
	for (size_t i = 0; i < sizeof(http_titles) / sizeof(http_titles[0]); i++)
		if (http_titles[i].status == status)
			return http_titles[i].title;
	return status >= 500 ? "Server Error" : "Error";
}

char *
http_problem_body(int status, const char *detail)
{
	json_t *j;
	char *s, *text;

	/*
	 * Details quote what clients sent and are cut at byte counts on the way here; jansson
	 * refuses text that is not UTF-8, which would leave the answer with an empty body.
	 */
	if ((text = util_utf8_clean(detail != NULL ? detail : "")) == NULL)
		return NULL;
	j = json_pack("{s:s, s:s, s:i, s:s}", "type", "about:blank", "title",
	    http_status_title(status), "status", status, "detail", text);
	free(text);
	if (j == NULL)
		return NULL;
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

static void http_gen_cb(struct evhttp_request *ev, void *arg);

static double
http_streams_cb(void *arg)
{
	return ((struct http *)arg)->nstreams;
}

struct http *
http_new(struct event_base *base, struct metrics *metrics)
{
	struct http *http = calloc(1, sizeof(*http));

	if (http == NULL)
		return NULL;
	http->base = base;
	http->metrics = metrics;
	LIST_INIT(&http->streams);
	if ((http->evhttp = evhttp_new(base)) == NULL ||
	    (http->guard = http_guard_new(metrics)) == NULL) {
		http_free(http);
		return NULL;
	}
	evhttp_set_allowed_methods(http->evhttp, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
		EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS);
	evhttp_set_default_content_type(http->evhttp, "application/json");
	evhttp_set_bevcb(http->evhttp, http_guard_bev_cb, http->guard);
	evhttp_set_gencb(http->evhttp, http_gen_cb, http);
	http->unmatched_latency = metrics_series(metrics, METRIC_HISTOGRAM,
	    "loket_http_request_duration_seconds", "Time from request to response, by route.",
	    "route=\"unmatched\"", metrics_latency_bounds, metrics_latency_nbounds);
	metrics_gauge_fn(metrics, "loket_http_streams", "Open event streams (server-sent events).",
	    "", http_streams_cb, http);
	return http;
}

void
http_free(struct http *http)
{
	if (http == NULL)
		return;
	if (http->evhttp != NULL)
		evhttp_free(http->evhttp);
	http_guard_free(http->guard);
	for (size_t i = 0; i < http->nroutes; i++) {
		struct http_route *r = http->routes[i];

		for (size_t j = 0; j < r->nsegs; j++)
			free(r->segs[j]);
		free(r->segs);
		free(r->pattern);
		free(r->owner);
		free(r);
	}
	free(http->routes);
	free(http);
}

void
http_set_limits(struct http *http, const struct http_limits *limits)
{
	struct timeval tv = { .tv_sec = (time_t)(limits->timeout_ms / 1000),
		.tv_usec = (suseconds_t)(limits->timeout_ms % 1000) * 1000 };

	/* The guard answers 431/413 first; these are evhttp's own backstops. */
	evhttp_set_max_headers_size(http->evhttp, (ev_ssize_t)(2 * limits->max_header_size));
	evhttp_set_max_body_size(http->evhttp, (ev_ssize_t)limits->max_body_size);
	evhttp_set_timeout_tv(http->evhttp, &tv);
	http->timeout = tv;
	http_guard_set_limits(http->guard, limits);
}

int
http_listen(struct http *http, const char *host, uint16_t port, const char **error_r)
{
	http->bound = evhttp_bind_socket_with_handle(http->evhttp, host, port);
	if (http->bound == NULL) {
		*error_r = strerror(errno != 0 ? errno : EADDRNOTAVAIL);
		return -1;
	}
	return 0;
}

uint16_t
http_bound_port(struct http *http)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	evutil_socket_t fd;

	if (http->bound == NULL)
		return 0;
	fd = evhttp_bound_socket_get_fd(http->bound);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void http_req_free(struct loket_http_req *req);

void
http_stop_accepting(struct http *http)
{
	struct http_stream *s;

	http->stopping = 1;
	/* Streams never end by themselves: a stop ends them all at once, unflushed or not. */
	while ((s = LIST_FIRST(&http->streams)) != NULL) {
		void (*cb)(void *arg) = s->closed_cb;
		void *arg = s->arg;
		struct loket_http_req *req = s->req;

		cb(arg);
		http_stream_end(req);
	}
	if (http->bound != NULL) {
		evhttp_del_accept_socket(http->evhttp, http->bound);
		http->bound = NULL;
	}
	if (http->inflight == 0 && http->drained_cb != NULL)
		http->drained_cb(http->drained_arg);
}

unsigned int
http_inflight(struct http *http)
{
	return http->inflight;
}

unsigned int
http_guard_connections_of(struct http *http)
{
	return http_guard_connections(http->guard);
}

void
http_set_drained_cb(struct http *http, void (*cb)(void *arg), void *arg)
{
	http->drained_cb = cb;
	http->drained_arg = arg;
}

void
http_set_auth(struct http *http,
    int (*fn)(struct loket_http_req *req, enum loket_http_access access, void *arg), void *arg)
{
	http->auth_fn = fn;
	http->auth_arg = arg;
}

void
http_set_caller(struct http *http,
    const struct loket_caller *(*fn)(struct loket_http_req *req, void *arg))
{
	http->caller_fn = fn;
}

void
http_set_fallback(struct http *http, void (*fn)(struct loket_http_req *req, void *arg),
    void *arg)
{
	http->fallback_fn = fn;
	http->fallback_arg = arg;
}

const struct loket_caller *
http_caller(struct loket_http_req *req)
{
	if (req->http->caller_fn == NULL)
		return NULL;
	return req->http->caller_fn(req, req->http->auth_arg);
}

void
http_route_continue(struct loket_http_req *req)
{
	req->route->fn(req, req->route->arg);
}

int
http_route_public(struct loket_http_req *req)
{
	return req->route == NULL || req->route->access == LOKET_ACCESS_PUBLIC;
}

static int
http_split_path(const char *path, char ***segs_r, size_t *nsegs_r)
{
	char **segs = NULL, *copy, *tok, *save = NULL;
	size_t n = 0;

	if ((copy = strdup(path)) == NULL)
		return -1;
	for (tok = strtok_r(copy, "/", &save); tok != NULL; tok = strtok_r(NULL, "/", &save)) {
		char **s = realloc(segs, (n + 1) * sizeof(*s));

		if (s == NULL || (s[n] = strdup(tok)) == NULL) {
			segs = s != NULL ? s : segs;
			goto fail;
		}
		segs = s;
		n++;
	}
	free(copy);
	*segs_r = segs;
	*nsegs_r = n;
	return 0;
fail:
	for (size_t i = 0; i < n; i++)
		free(segs[i]);
	free(segs);
	free(copy);
	return -1;
}

static int
http_seg_is_param(const char *seg)
{
	size_t len = strlen(seg);

	return len > 2 && seg[0] == '{' && seg[len - 1] == '}';
}

int
http_route_add(struct http *http, const char *owner, unsigned int methods, const char *pattern,
    enum loket_http_access access, void (*fn)(struct loket_http_req *req, void *arg), void *arg,
    const char **error_r)
{
	struct http_route *r, **routes;
	size_t nparams = 0;
	char labels[512], esc[256];

	if (pattern[0] != '/' || methods == 0 || fn == NULL) {
		*error_r = "a route needs a pattern starting with '/', methods and a handler";
		return -1;
	}
	for (size_t i = 0; i < http->nroutes; i++) {
		if (strcmp(http->routes[i]->pattern, pattern) == 0 &&
		    (http->routes[i]->methods & methods) != 0) {
			*error_r = "route already registered for that method";
			return -1;
		}
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		goto nomem;
	if ((r->pattern = strdup(pattern)) == NULL || (r->owner = strdup(owner)) == NULL ||
	    http_split_path(pattern, &r->segs, &r->nsegs) < 0)
		goto nomem_route;
	for (size_t i = 0; i < r->nsegs; i++)
		nparams += http_seg_is_param(r->segs[i]);
	if (nparams > HTTP_MAX_PARAMS) {
		*error_r = "too many parameters in the route pattern";
		goto fail_route;
	}
	r->methods = methods;
	r->access = access;
	r->fn = fn;
	r->arg = arg;
	snprintf(labels, sizeof(labels), "route=\"%s\"",
	    metrics_label_escape(esc, sizeof(esc), pattern));
	r->latency = metrics_series(http->metrics, METRIC_HISTOGRAM,
	    "loket_http_request_duration_seconds", "Time from request to response, by route.",
	    labels, metrics_latency_bounds, metrics_latency_nbounds);
	if ((routes = realloc(http->routes, (http->nroutes + 1) * sizeof(*routes))) == NULL)
		goto nomem_route;
	http->routes = routes;
	routes[http->nroutes++] = r;
	return 0;
nomem_route:
	*error_r = "out of memory";
fail_route:
	for (size_t j = 0; j < r->nsegs; j++)
		free(r->segs[j]);
	free(r->segs);
	free(r->pattern);
	free(r->owner);
	free(r);
	return -1;
nomem:
	*error_r = "out of memory";
	return -1;
}

static int
http_route_match(const struct http_route *r, char **segs, size_t nsegs)
{
	if (r->nsegs != nsegs)
		return 0;
	for (size_t i = 0; i < nsegs; i++)
		if (!http_seg_is_param(r->segs[i]) && strcmp(r->segs[i], segs[i]) != 0)
			return 0;
	return 1;
}

const char *
http_param(struct loket_http_req *req, const char *name)
{
	for (size_t i = 0; i < req->nparams; i++) {
		const char *n = req->param_names[i];
		size_t len = strlen(name);

		/* param_names point at "{name}" in the route's pattern. */
		if (strncmp(n + 1, name, len) == 0 && n[len + 1] == '}' && n[len + 2] == '\0')
			return req->params[i];
	}
	return NULL;
}

const char *
http_query(struct loket_http_req *req, const char *name)
{
	return evhttp_find_header(&req->query, name);
}

const char *
http_header(struct loket_http_req *req, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(req->ev), name);
}

void
http_add_header(struct loket_http_req *req, const char *name, const char *value)
{
	evhttp_add_header(evhttp_request_get_output_headers(req->ev), name, value);
}

static void
http_req_free(struct loket_http_req *req)
{
	for (size_t i = 0; i < req->nparams; i++)
		free(req->params[i]);
	evhttp_clear_headers(&req->query);
	free(req->caller);
	free(req->path);
	free(req->body);
	free(req);
}

static void
http_count(struct http *http, struct http_route *route, int method, int status)
{
	struct metric_series *series;
	char labels[512], esc[256];
	const char *mname = "OTHER";
	size_t slot = 0;

	if (route != NULL) {
		for (; slot < 8 && route->counted[slot].series != NULL; slot++) {
			if (route->counted[slot].method == method &&
			    route->counted[slot].status == status) {
				metrics_add(route->counted[slot].series, 1);
				return;
			}
		}
	}

	for (size_t i = 0; i < sizeof(http_methods) / sizeof(http_methods[0]); i++)
		if ((int)http_methods[i].method == method)
			mname = http_methods[i].name;
	snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\",status=\"%d\"",
	    route != NULL ? metrics_label_escape(esc, sizeof(esc), route->pattern) : "unmatched",
	    mname, status);
	series = metrics_series(http->metrics, METRIC_COUNTER, "loket_http_requests_total",
	    "HTTP requests answered, by route, method and status.", labels, NULL, 0);
	metrics_add(series, 1);
	if (route != NULL && slot < 8) {
		route->counted[slot].method = method;
		route->counted[slot].status = status;
		route->counted[slot].series = series;
	}
}

/*
 * What every answer carries unless its handler chose otherwise: the strict policy (the UI
 * has no inline script or style, so nothing injected into a page runs), no type sniffing
 * (an attachment is never run as a page), and no caching of anything under /api/, where
 * personal data lives, whatever the handler answered (a problem quotes what was sent).
 */
static void
http_security_headers(struct loket_http_req *req, struct evkeyvalq *out)
{
	static const struct {
		const char *name;
		const char *value;
	} headers[] = {
		{ "Content-Security-Policy", HTTP_CSP },
		{ "X-Content-Type-Options", "nosniff" },
		{ "Referrer-Policy", "same-origin" },
	};
	const char *p = req->path;

	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++)
		if (evhttp_find_header(out, headers[i].name) == NULL)
			evhttp_add_header(out, headers[i].name, headers[i].value);
	while (p != NULL && *p == '/')
		p++;
	if (p != NULL && strncmp(p, "api", 3) == 0 && (p[3] == '/' || p[3] == '\0') &&
	    evhttp_find_header(out, "Cache-Control") == NULL)
		evhttp_add_header(out, "Cache-Control", "no-store");
}

void
http_reply(struct loket_http_req *req, int status, const char *content_type, const void *body,
    size_t len)
{
	struct http *http = req->http;
	struct evbuffer *buf = evbuffer_new();
	struct evkeyvalq *out = evhttp_request_get_output_headers(req->ev);
	double secs;

	evhttp_remove_header(out, "Content-Type");
	evhttp_add_header(out, "Content-Type", content_type);
	http_security_headers(req, out);
	/* After a chunked body the guard cannot tell where the next request starts. */
	if (http->stopping || req->chunked)
		evhttp_add_header(out, "Connection", "close");
	/*
	 * HEAD gets the headers GET would, never the body: evhttp writes a body it
	 * is handed even to HEAD, and without a length, so the next answer on a
	 * kept-alive connection would start inside it.
	 */
	if (req->method == LOKET_HTTP_HEAD && status != 304) {
		char n[32];

		snprintf(n, sizeof(n), "%zu", len);
		evhttp_remove_header(out, "Content-Length");
		evhttp_add_header(out, "Content-Length", n);
	} else if (buf != NULL && len > 0) {
		evbuffer_add(buf, body, len);
	}
	evhttp_send_reply(req->ev, status, http_status_title(status), buf);
	if (buf != NULL)
		evbuffer_free(buf);
	secs = (double)(util_now_ns() - req->start_ns) / 1e9;
	metrics_observe(req->route != NULL ? req->route->latency : http->unmatched_latency, secs);
	http_count(http, req->route, req->method, status);
	http_req_free(req);
	http->inflight--;
	if (http->stopping && http->inflight == 0 && http->drained_cb != NULL)
		http->drained_cb(http->drained_arg);
}

static void
http_stream_unlink(struct http_stream *s)
{
	struct http *http = s->req->http;

	http_guard_on_close(http->guard, s->bev, NULL, NULL);
	LIST_REMOVE(s, link);
	http->nstreams--;
	s->req->stream = NULL;
	if (s->chunk != NULL)
		evbuffer_free(s->chunk);
	free(s);
}

/* The client's connection is going (evhttp frees it next). */
static void
http_stream_gone_cb(void *arg)
{
	struct http_stream *s = arg;
	struct loket_http_req *req = s->req;
	void (*cb)(void *arg) = s->closed_cb;
	void *cb_arg = s->arg;

	http_stream_unlink(s);
	cb(cb_arg);
	/*
	 * A client that left: evhttp took the request off its connection and
	 * leaves it to us (ending it frees it); otherwise it goes with the
	 * connection.
	 */
	if (evhttp_request_get_connection(req->ev) == NULL)
		evhttp_send_reply_end(req->ev);
	http_req_free(req);
}

/* Closes the stream's connection now, with whatever it still had to send. */
static void
http_stream_drop(struct loket_http_req *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req->ev);

	http_stream_unlink(req->stream);
	if (evcon != NULL)
		evhttp_connection_free(evcon); /* frees req->ev with it */
	else
		evhttp_send_reply_end(req->ev);
	http_req_free(req);
}

int
http_stream_start(struct loket_http_req *req, const char *content_type, size_t cap,
    void (*closed_cb)(void *arg), void *arg)
{
	struct http *http = req->http;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req->ev);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req->ev);
	struct http_stream *s;
	double secs;

	if (http->stopping || evcon == NULL || closed_cb == NULL ||
	    (s = calloc(1, sizeof(*s))) == NULL)
		return -1;
	s->req = req;
	s->bev = evhttp_connection_get_bufferevent(evcon);
	s->cap = cap;
	s->closed_cb = closed_cb;
	s->arg = arg;
	if ((s->chunk = evbuffer_new()) == NULL ||
	    http_guard_on_close(http->guard, s->bev, http_stream_gone_cb, s) < 0) {
		if (s->chunk != NULL)
			evbuffer_free(s->chunk);
		free(s);
		return -1;
	}
	req->stream = s;
	LIST_INSERT_HEAD(&http->streams, s, link);
	http->nstreams++;
	evhttp_remove_header(out, "Content-Type");
	evhttp_add_header(out, "Content-Type", content_type);
	/* A stream ends only when one side leaves; a client reconnects for the next one. */
	evhttp_add_header(out, "Connection", "close");
	evhttp_send_reply_start(req->ev, 200, http_status_title(200));
	/*
	 * The client sends nothing more: reading must not time out. Writing
	 * still does, so a client that takes nothing while data waits goes.
	 */
	bufferevent_set_timeouts(s->bev, NULL, &http->timeout);
	secs = (double)(util_now_ns() - req->start_ns) / 1e9;
	metrics_observe(req->route != NULL ? req->route->latency : http->unmatched_latency, secs);
	http_count(http, req->route, req->method, 200);
	/* Answered, as far as a drain is concerned. */
	http->inflight--;
	return 0;
}

int
http_stream_write(struct loket_http_req *req, const void *data, size_t len)
{
	struct http_stream *s = req->stream;

	if (evbuffer_get_length(bufferevent_get_output(s->bev)) > s->cap) {
		log_warnx("http", "an event stream's client fell more than %zu bytes behind; "
				  "closing it",
		    s->cap);
		http_stream_drop(req);
		return -1;
	}
	if (evbuffer_add(s->chunk, data, len) < 0) {
		http_stream_drop(req);
		return -1;
	}
	evhttp_send_reply_chunk(req->ev, s->chunk);
	return 0;
}

void
http_stream_end(struct loket_http_req *req)
{
	http_stream_unlink(req->stream);
	/* Connection: close was sent: evhttp closes it once the last chunk is out. */
	evhttp_send_reply_end(req->ev);
	http_req_free(req);
}

unsigned int
http_streams(struct http *http)
{
	return http->nstreams;
}

void
http_reply_json(struct loket_http_req *req, int status, json_t *json)
{
	char *s = json != NULL ? json_dumps(json, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;

	json_decref(json);
	if (s == NULL) {
		http_problem(req, 500, "could not encode the response");
		return;
	}
	http_reply(req, status, "application/json", s, strlen(s));
	free(s);
}

void
http_problem(struct loket_http_req *req, int status, const char *detail)
{
	char *s = http_problem_body(status, detail);

	/* A 503 is a state that passes (a full disk, a drain, memory): say when to try again. */
	if (status == 503
	    && evhttp_find_header(evhttp_request_get_output_headers(req->ev), "Retry-After")
	        == NULL)
		http_add_header(req, "Retry-After", HTTP_RETRY_AFTER);
	http_reply(req, status, "application/problem+json", s, s != NULL ? strlen(s) : 0);
	free(s);
}

static int
http_method_of(enum evhttp_cmd_type cmd)
{
	for (size_t i = 0; i < sizeof(http_methods) / sizeof(http_methods[0]); i++)
		if (http_methods[i].cmd == cmd)
			return (int)http_methods[i].method;
	return 0;
}

static void
http_allow_header(struct loket_http_req *req, unsigned int methods)
{
	char allow[128] = "";

	if (methods & LOKET_HTTP_GET)
		methods |= LOKET_HTTP_HEAD;
	for (size_t i = 0; i < sizeof(http_methods) / sizeof(http_methods[0]); i++) {
		if ((methods & http_methods[i].method) == 0)
			continue;
		if (allow[0] != '\0')
			strcat(allow, ", ");
		strcat(allow, http_methods[i].name);
	}
	http_add_header(req, "Allow", allow);
}

static int
http_read_body(struct loket_http_req *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req->ev);
	size_t len = evbuffer_get_length(in);

	if ((req->body = malloc(len + 1)) == NULL)
		return -1;
	evbuffer_remove(in, req->body, len);
	req->body[len] = '\0';
	req->body_len = len;
	return 0;
}

static void
http_gen_cb(struct evhttp_request *ev, void *arg)
{
	struct http *http = arg;
	struct loket_http_req *req;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
	const char *raw_path, *raw_query;
	char **segs = NULL;
	size_t nsegs = 0;
	unsigned int allowed = 0;
	struct http_route *route = NULL;
	size_t path_len = 0;

	if (uri == NULL) {
		struct http_stream *s;

		/*
		 * evhttp calls back with the URI gone when a connection fails
		 * under a request it still holds: for a stream, the client is gone.
		 */
		LIST_FOREACH(s, &http->streams, link)
		{
			if (s->req->ev == ev) {
				void (*cb)(void *arg) = s->closed_cb;
				void *cb_arg = s->arg;

				http_stream_drop(s->req);
				cb(cb_arg);
				return;
			}
		}
	}
	if ((req = calloc(1, sizeof(*req))) == NULL) {
		evhttp_send_error(ev, 503, "out of memory");
		return;
	}
	http->inflight++;
	req->http = http;
	req->ev = ev;
	req->start_ns = util_now_ns();
	req->method = http_method_of(evhttp_request_get_command(ev));
	req->chunked = evhttp_find_header(evhttp_request_get_input_headers(ev),
			   "Transfer-Encoding") != NULL;
	TAILQ_INIT(&req->query);
	raw_path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	raw_query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	/* A decoded %00 would cut the path short of what was asked: refused like CR and LF. */
	if (raw_path == NULL || raw_path[0] != '/' ||
	    (req->path = evhttp_uridecode(raw_path, 0, &path_len)) == NULL ||
	    strlen(req->path) != path_len || path_len != strcspn(req->path, "\r\n")) {
		http_problem(req, 400, "the request path is not valid");
		return;
	}
	if (raw_query != NULL && evhttp_parse_query_str(raw_query, &req->query) < 0) {
		http_problem(req, 400, "the query string is not valid");
		return;
	}
	if (http_read_body(req) < 0 || http_split_path(req->path, &segs, &nsegs) < 0) {
		http_problem(req, 503, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < http->nroutes; i++) {
		struct http_route *r = http->routes[i];
		unsigned int m = r->methods;

		if (!http_route_match(r, segs, nsegs))
			continue;
		if (m & LOKET_HTTP_GET)
			m |= LOKET_HTTP_HEAD;
		allowed |= m;
		if ((m & (unsigned int)req->method) != 0) {
			route = r;
			break;
		}
	}
	if (route == NULL) {
		if (allowed != 0) {
			http_allow_header(req, allowed);
			http_problem(req, 405, "this resource does not accept that method");
		} else if (http->fallback_fn != NULL) {
			http->fallback_fn(req, http->fallback_arg);
		} else {
			http_problem(req, 404, "no such resource");
		}
		goto out;
	}
	req->route = route;
	for (size_t i = 0; i < route->nsegs; i++) {
		if (!http_seg_is_param(route->segs[i]))
			continue;
		req->param_names[req->nparams] = route->segs[i];
		req->params[req->nparams++] = segs[i];
		segs[i] = NULL;
	}
	if (route->access != LOKET_ACCESS_PUBLIC) {
		if (http->auth_fn == NULL) {
			http_problem(req, 401, "a bearer token is required");
			goto out;
		}
		if (http->auth_fn(req, route->access, http->auth_arg) < 0)
			goto out;
	}
	route->fn(req, route->arg);
out:
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i]);
	free(segs);
}
