/* http.h: the HTTP server: evhttp with limits, a route table plugins extend, JSON problems. */
#ifndef LOKET_HTTP_H
#define LOKET_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "loket/plugin.h"

struct event_base;
struct evhttp_request;
struct metrics;
struct http;
struct http_route;

#define HTTP_MAX_PARAMS 4

struct http_limits {
	uint64_t max_header_size;
	uint64_t max_body_size;
	uint64_t timeout_ms;
	int64_t max_connections;
};

struct loket_http_req {
	struct http *http;
	struct evhttp_request *ev;
	struct http_route *route;
	enum loket_http_method method;
	char *path;
	struct evkeyvalq query;
	const char *param_names[HTTP_MAX_PARAMS];
	char *params[HTTP_MAX_PARAMS];
	size_t nparams;
	char *body;
	size_t body_len;
	uint64_t start_ns;
	void *auth; /* set by the authenticator for non-public routes */
	/* The struct loket_caller handed to plugins, one block built on demand and freed with req. */
	void *caller;
	int chunked; /* the body came chunked: the connection closes after the answer */
	struct http_stream *stream; /* set while the answer is a stream (http_stream_start) */
};

struct http *http_new(struct event_base *base, struct metrics *metrics);
void http_free(struct http *http);
void http_set_limits(struct http *http, const struct http_limits *limits);
int http_listen(struct http *http, const char *host, uint16_t port, const char **error_r);
/* The port actually bound (useful with port 0). */
uint16_t http_bound_port(struct http *http);
void http_stop_accepting(struct http *http);
unsigned int http_inflight(struct http *http);
unsigned int http_guard_connections_of(struct http *http);
/* Called once every request has answered after http_stop_accepting. */
void http_set_drained_cb(struct http *http, void (*cb)(void *arg), void *arg);
/*
 * The authenticator decides non-public routes: it returns 0 to let the
 * request through, or -1 after answering it (401/403) or taking it over
 * (a session read from the register): it then answers it later, or lets it
 * through with http_route_continue.
 */
void http_set_auth(struct http *http,
    int (*fn)(struct loket_http_req *req, enum loket_http_access access, void *arg), void *arg);
/*
 * Who calls, as plugins see it (the loket_api http_caller entry): the
 * identifier set here (auth.c) answers with the authenticator's arg; NULL
 * without one.
 */
void http_set_caller(struct http *http,
    const struct loket_caller *(*fn)(struct loket_http_req *req, void *arg));
const struct loket_caller *http_caller(struct loket_http_req *req);
/* Runs the handler of the route req matched: an authenticator that took req over lets it on. */
void http_route_continue(struct loket_http_req *req);
/*
 * The handler of requests no route matches (the static files, http_static.c); it
 * answers every method and path, 404 included. Without one they get a 404 problem.
 */
void http_set_fallback(struct http *http, void (*fn)(struct loket_http_req *req, void *arg),
    void *arg);
/* Whether the route the request matched is public. */
int http_route_public(struct loket_http_req *req);
int http_route_add(struct http *http, const char *owner, unsigned int methods,
    const char *pattern, enum loket_http_access access,
    void (*fn)(struct loket_http_req *req, void *arg), void *arg, const char **error_r);

const char *http_param(struct loket_http_req *req, const char *name);
const char *http_query(struct loket_http_req *req, const char *name);
const char *http_header(struct loket_http_req *req, const char *name);
void http_add_header(struct loket_http_req *req, const char *name, const char *value);
void http_reply(struct loket_http_req *req, int status, const char *content_type, const void *body,
    size_t len);
/* Takes over json. */
void http_reply_json(struct loket_http_req *req, int status, json_t *json);
/* A 503 gets Retry-After: HTTP_RETRY_AFTER seconds unless the caller set one. */
void http_problem(struct loket_http_req *req, int status, const char *detail);
#define HTTP_RETRY_AFTER "5"
/* The Content-Security-Policy of every answer (docs/ui.md). */
#define HTTP_CSP                                                                          \
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "  \
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "         \
	"form-action 'self'; frame-ancestors 'none'"
const char *http_status_title(int status);
/* A complete problem+json document; owned by the caller. */
char *http_problem_body(int status, const char *detail);

/*
 * Long-lived answers (server-sent events). http_stream_start sends a 200
 * with content_type and keeps the answer open, chunk by chunk: from then
 * on the request no longer counts as in flight (a drain does not wait for
 * it), reading no longer times out (the [http] timeout still ends a client
 * that takes nothing for that long while data waits), and it is ended by
 * http_stream_end, or when the client goes, or when the server stops:
 * then closed_cb(arg) runs once and req is gone after it returns. -1 when
 * the server is stopping or out of memory: nothing was sent and req is
 * still the caller's to answer.
 */
struct http_stream;
int http_stream_start(struct loket_http_req *req, const char *content_type, size_t cap,
    void (*closed_cb)(void *arg), void *arg);
/*
 * Queues data on the stream. -1 when more than cap bytes already wait for
 * the client (it reads slower than the stream writes) or the client is
 * gone: the stream is closed then, req is gone and closed_cb does not run.
 */
int http_stream_write(struct loket_http_req *req, const void *data, size_t len);
/* Ends the stream; req is gone and closed_cb does not run. */
void http_stream_end(struct loket_http_req *req);
/* How many streams are open. */
unsigned int http_streams(struct http *http);

/* http_guard.c: per-connection limits enforced before evhttp parses a request. */
struct http_guard;
struct bufferevent;
struct http_guard *http_guard_new(struct metrics *metrics);
void http_guard_free(struct http_guard *g);
void http_guard_set_limits(struct http_guard *g, const struct http_limits *limits);
unsigned int http_guard_connections(const struct http_guard *g);
/*
 * cb(arg) runs once when the connection of bev closes, before evhttp frees
 * it; cb NULL forgets it. -1 when bev is not a connection the guard watches.
 */
int http_guard_on_close(struct http_guard *g, struct bufferevent *bev, void (*cb)(void *arg),
    void *arg);
/* evhttp's bevcb: wraps each new connection in the guard. */
struct bufferevent *http_guard_bev_cb(struct event_base *base, void *arg);

#endif
