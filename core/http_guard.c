/*
 * http_guard.c: per-connection limits enforced before evhttp parses a request.
 *
 * libevent 2.1's evhttp answers an oversized header block with an HTML 413
 * and has no cap on concurrent connections. Each accepted connection is
 * therefore wrapped in a filtering bufferevent that holds a request's header
 * block until it is complete, answers 431 (headers), 413 (declared body) or
 * 503 (too many connections) as problem+json itself, and otherwise hands the
 * bytes to evhttp untouched.
 */
#include "config.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "http.h"
#include "log.h"
#include "metrics.h"

enum guard_state {
	GUARD_HEADERS, /* holding bytes until the header block is complete */
	GUARD_BODY,    /* passing body_left more bytes */
	GUARD_PASS,    /* chunked body: evhttp's own limits apply from here */
	GUARD_CLOSING, /* answered and closing: input is discarded */
};

struct http_guard {
	struct http_limits limits;
	unsigned int connections;
	struct metric_series *rejected_headers;
	struct metric_series *rejected_body;
	struct metric_series *rejected_busy;
};

struct guard_conn {
	struct http_guard *g;
	struct bufferevent *underlying;
	enum guard_state state;
	uint64_t body_left;
	size_t scanned; /* header bytes already searched for the blank line */
	int over_cap;
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
	const char *help = "Connections answered by the guard before routing, by reason.";

	if (g == NULL)
		return NULL;
	g->limits.max_header_size = 8192;
	g->limits.max_body_size = 1 << 20;
	g->limits.max_connections = 1024;
	g->rejected_headers = metrics_series(metrics, METRIC_COUNTER, name, help,
	    "reason=\"header_too_large\"", NULL, 0);
	g->rejected_body = metrics_series(metrics, METRIC_COUNTER, name, help,
	    "reason=\"body_too_large\"", NULL, 0);
	g->rejected_busy = metrics_series(metrics, METRIC_COUNTER, name, help,
	    "reason=\"too_many_connections\"", NULL, 0);
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

static void
guard_output_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct guard_conn *c = arg;

	/* Once the answer is on the wire, half-close so the client sees it and EOF. */
	if (info->n_deleted > 0 && evbuffer_get_length(buf) == 0)
		shutdown(bufferevent_getfd(c->underlying), SHUT_WR);
}

static void
guard_answer(struct guard_conn *c, int status, const char *detail)
{
	char *body = http_problem_body(status, detail);
	struct evbuffer *out = bufferevent_get_output(c->underlying);

	c->state = GUARD_CLOSING;
	evbuffer_add_printf(out,
	    "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	    status, http_status_title(status), body != NULL ? strlen(body) : 0,
	    body != NULL ? body : "");
	free(body);
	evbuffer_add_cb(out, guard_output_cb, c);
	bufferevent_enable(c->underlying, EV_WRITE);
}

/* Reads Content-Length and Transfer-Encoding from a complete header block. */
static void
guard_scan_headers(const char *head, size_t len, uint64_t *content_length_r, int *chunked_r)
{
	const char *p = head, *end = head + len;

	*content_length_r = 0;
	*chunked_r = 0;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t linelen = (size_t)((eol != NULL ? eol : end) - p);

		if (linelen > 15 && strncasecmp(p, "content-length:", 15) == 0) {
			char num[32];
			size_t n = linelen - 15 < sizeof(num) - 1 ? linelen - 15 : sizeof(num) - 1;

			memcpy(num, p + 15, n);
			num[n] = '\0';
			*content_length_r = strtoull(num, NULL, 10);
		} else if (linelen > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0) {
			*chunked_r = 1;
		}
		if (eol == NULL)
			break;
		p = eol + 1;
	}
}

static enum bufferevent_filter_result
guard_input_cb(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t limit,
    enum bufferevent_flush_mode mode, void *arg)
{
	struct guard_conn *c = arg;
	struct http_guard *g = c->g;

	for (;;) {
		size_t avail = evbuffer_get_length(src);
		struct evbuffer_ptr pos;
		uint64_t content_length;
		size_t head_len, from;
		int chunked;

		if (avail == 0)
			return BEV_OK;
		switch (c->state) {
		case GUARD_CLOSING:
			evbuffer_drain(src, avail);
			return BEV_OK;
		case GUARD_PASS:
			evbuffer_remove_buffer(src, dst, avail);
			return BEV_OK;
		case GUARD_BODY:
			if (avail > c->body_left)
				avail = (size_t)c->body_left;
			evbuffer_remove_buffer(src, dst, avail);
			c->body_left -= avail;
			if (c->body_left == 0)
				c->state = GUARD_HEADERS;
			continue;
		case GUARD_HEADERS:
			break;
		}
		/* Search only what is new, backing up over a split "\r\n\r\n". */
		from = c->scanned > 3 ? c->scanned - 3 : 0;
		evbuffer_ptr_set(src, &pos, from, EVBUFFER_PTR_SET);
		pos = evbuffer_search(src, "\r\n\r\n", 4, &pos);
		if (pos.pos < 0) {
			c->scanned = avail;
			if (avail > g->limits.max_header_size) {
				metrics_add(g->rejected_headers, 1);
				guard_answer(c, 431, "the request headers are larger than allowed");
				evbuffer_drain(src, avail);
			}
			return BEV_NEED_MORE;
		}
		head_len = (size_t)pos.pos + 4;
		c->scanned = 0;
		if (head_len > g->limits.max_header_size) {
			metrics_add(g->rejected_headers, 1);
			guard_answer(c, 431, "the request headers are larger than allowed");
			continue;
		}
		if (c->over_cap) {
			metrics_add(g->rejected_busy, 1);
			guard_answer(c, 503, "the server has too many open connections; try again");
			continue;
		}
		guard_scan_headers((const char *)evbuffer_pullup(src, (ev_ssize_t)head_len), head_len,
		    &content_length, &chunked);
		if (content_length > g->limits.max_body_size) {
			metrics_add(g->rejected_body, 1);
			guard_answer(c, 413, "the request body is larger than allowed");
			continue;
		}
		evbuffer_remove_buffer(src, dst, head_len);
		if (chunked) {
			c->state = GUARD_PASS;
		} else if (content_length > 0) {
			c->state = GUARD_BODY;
			c->body_left = content_length;
		}
	}
}

static void
guard_free_cb(void *arg)
{
	struct guard_conn *c = arg;

	c->g->connections--;
	free(c);
}

struct bufferevent *
http_guard_bev_cb(struct event_base *base, void *arg)
{
	struct http_guard *g = arg;
	struct guard_conn *c = calloc(1, sizeof(*c));
	struct bufferevent *filter;

	if (c == NULL)
		return NULL;
	c->g = g;
	c->over_cap = g->connections >= (unsigned int)g->limits.max_connections;
	c->underlying = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->underlying == NULL) {
		free(c);
		return NULL;
	}
	filter = bufferevent_filter_new(c->underlying, guard_input_cb, NULL, BEV_OPT_CLOSE_ON_FREE,
	    guard_free_cb, c);
	if (filter == NULL) {
		bufferevent_free(c->underlying);
		free(c);
		return NULL;
	}
	g->connections++;
	return filter;
}
