/*
 * http_guard.c: per-connection limits enforced before evhttp parses a request.
 *
 * libevent 2.1's evhttp answers an oversized header block with an HTML 413
 * and has no cap on concurrent connections. The guard watches the bytes of
 * each connection as they arrive (an evbuffer callback on the input, which
 * runs before evhttp reads them), and answers 431 (headers), 413 (declared
 * body) or 503 (too many connections) as problem+json itself, discarding the
 * request before evhttp sees the rest of it. Connections are counted from
 * accept until evhttp frees them (its close callback).
 */
#include "config.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "http.h"
#include "log.h"
#include "metrics.h"

enum guard_state {
	GUARD_HEADERS, /* reading a header block */
	GUARD_BODY,    /* body_left more bytes belong to the current request */
	GUARD_PASS,    /* a chunked body: counted; the connection closes after its answer */
	GUARD_CLOSING, /* answered and closing: input is discarded */
};

struct guard_conn;

struct http_guard {
	struct http_limits limits;
	unsigned int connections;
	LIST_HEAD(, guard_conn) conns; /* every connection the guard watches */
	struct metric_series *rejected_headers;
	struct metric_series *rejected_body;
	struct metric_series *rejected_busy;
	struct metric_series *rejected_malformed;
};

struct guard_conn {
	struct http_guard *g;
	struct bufferevent *bev;
	struct evbuffer_cb_entry *watch;
	struct event *adopt;
	enum guard_state state;
	uint64_t body_left;
	uint64_t passed; /* bytes seen since a chunked request started */
	char *head; /* the header block so far, at most max_header_size bytes */
	size_t head_len;
	int over_cap;
	/* A long-lived answer's owner, told once when the connection goes (http_guard_on_close). */
	void (*close_hook)(void *arg);
	void *close_arg;
	LIST_ENTRY(guard_conn) link;
};

static double
http_guard_connections_cb(void *arg)
{
	return ((struct http_guard *)arg)->connections;
}

struct http_guard *
http_guard_new(struct metrics *metrics)
{
	struct http_guard *g = calloc(1, sizeof(*g));
	const char *name = "loket_http_rejected_total";
	const char *help = "Requests answered by the guard before routing, by reason.";

	if (g == NULL)
		return NULL;
	LIST_INIT(&g->conns);
	g->limits.max_header_size = 8192;
	g->limits.max_body_size = 1 << 20;
	g->limits.max_connections = 1024;
	g->rejected_headers = metrics_series(metrics, METRIC_COUNTER, name, help,
	    "reason=\"header_too_large\"", NULL, 0);
	g->rejected_body = metrics_series(metrics, METRIC_COUNTER, name, help,
	    "reason=\"body_too_large\"", NULL, 0);
	g->rejected_busy = metrics_series(metrics, METRIC_COUNTER, name, help,
	    "reason=\"too_many_connections\"", NULL, 0);
	g->rejected_malformed = metrics_series(metrics, METRIC_COUNTER, name, help,
	    "reason=\"malformed\"", NULL, 0);
	metrics_gauge_fn(metrics, "loket_http_connections", "Open HTTP connections.", "",
	    http_guard_connections_cb, g);
	return g;
}

void
http_guard_free(struct http_guard *g)
{
	free(g);
}

void
http_guard_set_limits(struct http_guard *g, const struct http_limits *limits)
{
	g->limits = *limits;
}

unsigned int
http_guard_connections(const struct http_guard *g)
{
	return g->connections;
}

/*
 * Answers on the socket directly: evhttp never saw a complete request, so
 * it has nothing to send; the half-close tells the client the answer is whole.
 */
static void
guard_answer(struct guard_conn *c, int status, const char *detail)
{
	char *body = http_problem_body(status, detail);
	char buf[1024];
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	int n;

	c->state = GUARD_CLOSING;
	free(c->head);
	c->head = NULL;
	n = snprintf(buf, sizeof(buf),
	    "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\n"
	    "Content-Length: %zu\r\n%sConnection: close\r\n\r\n%s",
	    status, http_status_title(status), body != NULL ? strlen(body) : 0,
	    status == 503 ? "Retry-After: " HTTP_RETRY_AFTER "\r\n" : "", body != NULL ? body : "");
	free(body);
	if (fd >= 0 && n > 0 && (size_t)n < sizeof(buf))
		(void)send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (fd >= 0)
		shutdown(fd, SHUT_WR);
}

/*
 * Checks what evhttp would otherwise refuse with an HTML page (request line,
 * method, Content-Length), and reads the body framing. Returns an HTTP status
 * (0 when the block is acceptable) with *detail_r for a person.
 */
static int
guard_scan_headers(const char *head, size_t len, uint64_t *content_length_r, int *chunked_r,
    const char **detail_r)
{
	static const char *const methods[] = { "GET ", "HEAD ", "POST ", "PUT ", "PATCH ",
		"DELETE ", "OPTIONS ", NULL };
	const char *p = head, *end = head + len, *eol = memchr(head, '\n', len);
	size_t i;
	int seen_length = 0;

	*content_length_r = 0;
	*chunked_r = 0;
	for (i = 0; methods[i] != NULL; i++)
		if (len > strlen(methods[i]) && memcmp(head, methods[i], strlen(methods[i])) == 0)
			break;
	if (methods[i] == NULL) {
		const char *sp = memchr(head, ' ', (size_t)(end - head));

		*detail_r = sp != NULL && (eol == NULL || sp < eol) ?
		    "this server does not implement that method" :
		    "the request line is not 'METHOD /path HTTP/1.1'";
		return sp != NULL && (eol == NULL || sp < eol) ? 501 : 400;
	}
	if (eol == NULL || eol - head < 10 ||
	    memcmp(eol - ((eol[-1] == '\r') ? 10 : 9), " HTTP/1.", 8) != 0) {
		*detail_r = "the request line is not 'METHOD /path HTTP/1.1'";
		return 400;
	}
	for (p = eol + 1; p < end;) {
		const char *next = memchr(p, '\n', (size_t)(end - p));
		size_t linelen = (size_t)((next != NULL ? next : end) - p);

		if (linelen > 15 && strncasecmp(p, "content-length:", 15) == 0) {
			const char *v = p + 15, *vend = p + linelen;
			uint64_t n = 0;
			int digits = 0;

			while (v < vend && (*v == ' ' || *v == '\t'))
				v++;
			while (vend > v && (vend[-1] == '\r' || vend[-1] == ' ' || vend[-1] == '\t'))
				vend--;
			for (; v < vend && *v >= '0' && *v <= '9' && digits < 19; v++, digits++)
				n = n * 10 + (uint64_t)(*v - '0');
			if (digits == 0 || v != vend || (seen_length && n != *content_length_r)) {
				*detail_r = "the Content-Length header is not a number of bytes";
				return 400;
			}
			seen_length = 1;
			*content_length_r = n;
		} else if (linelen > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0) {
			*chunked_r = 1;
		}
		if (next == NULL)
			break;
		p = next + 1;
	}
	return 0;
}

/* The header block ends at the first blank line; tolerate bare LF as evhttp does. */
static const char *
guard_head_end(const char *head, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (head[i] != '\n')
			continue;
		if (head[i + 1] == '\n')
			return head + i + 2;
		if (head[i + 1] == '\r' && i + 2 < len && head[i + 2] == '\n')
			return head + i + 3;
	}
	return NULL;
}

/* Feeds newly arrived bytes through the request framing; returns bytes used. */
static size_t
guard_feed(struct guard_conn *c, const char *data, size_t len)
{
	struct http_guard *g = c->g;
	size_t room, take;
	const char *end;
	uint64_t content_length;
	const char *detail = NULL;
	int chunked, status;

	switch (c->state) {
	case GUARD_CLOSING:
		return len;
	case GUARD_PASS:
		/* The chunk framing counts too, so this trips no later than evhttp's own limit. */
		c->passed += len;
		if (c->passed > g->limits.max_body_size) {
			metrics_add(g->rejected_body, 1);
			guard_answer(c, 413, "the request body is larger than allowed");
		}
		return len;
	case GUARD_BODY:
		take = len < c->body_left ? len : (size_t)c->body_left;
		c->body_left -= take;
		if (c->body_left == 0)
			c->state = GUARD_HEADERS;
		return take;
	case GUARD_HEADERS:
		break;
	}
	if (c->head_len == 0 && (data[0] == '\r' || data[0] == '\n'))
		return 1; /* blank lines between requests */
	if (c->head == NULL && (c->head = malloc(g->limits.max_header_size + 1)) == NULL) {
		guard_answer(c, 503, "the server is out of memory");
		return len;
	}
	room = g->limits.max_header_size + 1 - c->head_len;
	take = len < room ? len : room;
	memcpy(c->head + c->head_len, data, take);
	c->head_len += take;
	end = guard_head_end(c->head, c->head_len);
	if (end == NULL) {
		if (c->head_len > g->limits.max_header_size) {
			metrics_add(g->rejected_headers, 1);
			guard_answer(c, 431, "the request headers are larger than allowed");
			return len;
		}
		return take;
	}
	/* Only the part of this chunk up to the blank line belongs to the header block. */
	take -= (size_t)(c->head + c->head_len - end);
	c->head_len = (size_t)(end - c->head);
	if (c->head_len > g->limits.max_header_size) {
		metrics_add(g->rejected_headers, 1);
		guard_answer(c, 431, "the request headers are larger than allowed");
		return len;
	}
	if (c->over_cap) {
		metrics_add(g->rejected_busy, 1);
		guard_answer(c, 503, "the server has too many open connections; try again");
		return len;
	}
	status = guard_scan_headers(c->head, c->head_len, &content_length, &chunked, &detail);
	c->head_len = 0;
	if (status != 0) {
		metrics_add(g->rejected_malformed, 1);
		guard_answer(c, status, detail);
		return len;
	}
	if (content_length > g->limits.max_body_size) {
		metrics_add(g->rejected_body, 1);
		guard_answer(c, 413, "the request body is larger than allowed");
		return len;
	}
	if (chunked) {
		c->state = GUARD_PASS;
		c->passed = 0;
	} else if (content_length > 0) {
		c->state = GUARD_BODY;
		c->body_left = content_length;
	}
	return take;
}

static void
guard_input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct guard_conn *c = arg;
	size_t len = evbuffer_get_length(buf), off;
	struct evbuffer_iovec vec[8];
	int n;

	if (info->n_added == 0 || c->state == GUARD_CLOSING)
		goto closing;
	/* The new bytes are the last n_added of the buffer: evhttp has not read them yet. */
	off = len - info->n_added;
	while (off < len && c->state != GUARD_CLOSING) {
		struct evbuffer_ptr pos;
		size_t used;

		evbuffer_ptr_set(buf, &pos, off, EVBUFFER_PTR_SET);
		n = evbuffer_peek(buf, (ev_ssize_t)(len - off), &pos, vec, 1);
		if (n < 1)
			break;
		used = guard_feed(c, vec[0].iov_base, vec[0].iov_len);
		off += used;
	}
closing:
	if (c->state == GUARD_CLOSING && evbuffer_get_length(buf) > 0) {
		/* Nothing of a rejected request may reach evhttp. */
		evbuffer_cb_set_flags(buf, c->watch, 0);
		evbuffer_drain(buf, evbuffer_get_length(buf));
		evbuffer_cb_set_flags(buf, c->watch, EVBUFFER_CB_ENABLED);
	}
}

static void
guard_close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct guard_conn *c = arg;
	void (*hook)(void *arg) = c->close_hook;

	/* evhttp frees the connection next: its owner lets go of it first. */
	c->close_hook = NULL;
	if (hook != NULL)
		hook(c->close_arg);
	LIST_REMOVE(c, link);
	evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->watch);
	c->g->connections--;
	if (c->adopt != NULL)
		event_free(c->adopt);
	free(c->head);
	free(c);
}

/*
 * evhttp sets up its connection right after http_guard_bev_cb returns and
 * leaves its handle as the bufferevent's callback argument; this runs at
 * the highest priority, before any I/O of the connection is handled.
 */
static void
guard_adopt_cb(evutil_socket_t fd, short what, void *arg)
{
	struct guard_conn *c = arg;
	void *cbarg = NULL;
	evutil_socket_t sock = bufferevent_getfd(c->bev);
	int one = 1;

	/*
	 * libevent writes an answer in pieces of at most 16 KiB; without
	 * TCP_NODELAY the last small piece of a larger answer (an e-loket page,
	 * a long list) waits for the client's delayed ACK, some 40 ms, on
	 * every kept-alive request. Failure is harmless: only slower.
	 */
	if (sock >= 0)
		(void)setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	bufferevent_getcb(c->bev, NULL, NULL, NULL, &cbarg);
	if (cbarg == NULL) {
		log_warnx("http", "connection has no evhttp handle; not counted");
		c->g->connections--;
		LIST_REMOVE(c, link);
		return;
	}
	evhttp_connection_set_closecb(cbarg, guard_close_cb, c);
}

struct bufferevent *
http_guard_bev_cb(struct event_base *base, void *arg)
{
	struct http_guard *g = arg;
	struct guard_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->g = g;
	c->over_cap = g->connections >= (unsigned int)g->limits.max_connections;
	c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	c->adopt = event_new(base, -1, 0, guard_adopt_cb, c);
	if (c->bev == NULL || c->adopt == NULL || event_priority_set(c->adopt, 0) < 0 ||
	    (c->watch = evbuffer_add_cb(bufferevent_get_input(c->bev), guard_input_cb, c)) ==
		NULL) {
		if (c->bev != NULL)
			bufferevent_free(c->bev);
		if (c->adopt != NULL)
			event_free(c->adopt);
		free(c);
		return NULL;
	}
	event_active(c->adopt, EV_TIMEOUT, 0);
	g->connections++;
	LIST_INSERT_HEAD(&g->conns, c, link);
	return c->bev;
}

int
http_guard_on_close(struct http_guard *g, struct bufferevent *bev, void (*cb)(void *arg),
    void *arg)
{
	struct guard_conn *c;

	/* A walk, but once per stream start or end, never per request. */
	LIST_FOREACH(c, &g->conns, link)
	{
		if (c->bev == bev) {
			c->close_hook = cb;
			c->close_arg = arg;
			return 0;
		}
	}
	return -1;
}
