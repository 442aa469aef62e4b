/* test_http.c: the HTTP server's routing and limits, seen from a raw socket client. */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "http.h"
#include "metrics.h"

struct server {
	struct event_base *base;
	struct metrics *metrics;
	struct http *http;
	uint16_t port;
	struct event *poll;
	volatile int done;
};

struct client_job {
	struct server *srv;
	const char *request;
	size_t request_len;
	int hold_open; /* connections to open (idle) before sending */
	int responses; /* complete responses to read before closing (0: one) */
	char response[16384];
};

/* How many complete responses (headers and a Content-Length body) text holds. */
static int
complete_responses(const char *text, size_t len)
{
	const char *p = text, *end = text + len, *head_end, *cl;
	int n = 0;

	while (p < end && (head_end = strstr(p, "\r\n\r\n")) != NULL) {
		size_t body_len = 0;

		cl = strstr(p, "Content-Length: ");
		if (cl != NULL && cl < head_end)
			body_len = strtoul(cl + 16, NULL, 10);
		if ((size_t)(end - (head_end + 4)) < body_len)
			break;
		p = head_end + 4 + body_len;
		n++;
	}
	return n;
}

static void
echo_cb(struct loket_http_req *req, void *arg)
{
	char body[256];
	size_t len;

	snprintf(body, sizeof(body), "{\"id\":\"%s\"}", http_param(req, "id"));
	len = strlen(body);
	http_reply(req, 200, "application/json", body, len);
}

/* A detail cut at a byte count inside a character still makes a problem body a client reads. */
static void
test_problem_detail_cut_on_character_boundary(void **state)
{
	char detail[64];
	char *body;
	json_t *doc;

	/* What "%.40s" makes of 39 ASCII bytes and an "é": the é's first byte only. */
	snprintf(detail, sizeof(detail), "status: '%.40s'", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9");
	body = http_problem_body(400, detail);
	assert_non_null(body);
	doc = json_loads(body, 0, NULL);
	assert_non_null(doc);
	assert_string_equal(json_string_value(json_object_get(doc, "detail")),
	    "status: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xef\xbf\xbd'");
	assert_int_equal(json_integer_value(json_object_get(doc, "status")), 400);
	json_decref(doc);
	free(body);

	/* Cut at the very end: the half character is left out. */
	body = http_problem_body(422, "caf\xc3");
	assert_non_null(body);
	doc = json_loads(body, 0, NULL);
	assert_non_null(doc);
	assert_string_equal(json_string_value(json_object_get(doc, "detail")), "caf");
	json_decref(doc);
	free(body);
}

static void
poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	if (srv->done)
		event_base_loopbreak(srv->base);
}

static int
connect_server(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	/* A response that never comes ends the read (and fails the test), not the run. */
	struct timeval tv = { 5, 0 };

	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void *
client_main(void *arg)
{
	struct client_job *job = arg;
	int idle[16], fd;
	size_t got = 0;
	ssize_t n;

	for (int i = 0; i < job->hold_open; i++)
		idle[i] = connect_server(job->srv->port);
	/* Give the loop a moment to accept the idle connections first. */
	if (job->hold_open > 0)
		usleep(100000);
	fd = connect_server(job->srv->port);
	for (size_t off = 0; off < job->request_len;) {
		n = send(fd, job->request + off, job->request_len - off, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	while (got < sizeof(job->response) - 1 &&
	    (n = recv(fd, job->response + got, sizeof(job->response) - 1 - got, 0)) > 0) {
		got += (size_t)n;
		job->response[got] = '\0';
		/* Stop after the responses asked for when the server keeps the connection. */
		if (complete_responses(job->response, got)
		    >= (job->responses > 0 ? job->responses : 1))
			break;
	}
	job->response[got] = '\0';
	close(fd);
	for (int i = 0; i < job->hold_open; i++)
		close(idle[i]);
	job->srv->done = 1;
	return NULL;
}

static const char *
run_n(struct server *srv, const char *request, size_t len, int hold_open, int responses)
{
	static struct client_job job;
	struct timeval tv = { 0, 10000 };
	pthread_t t;

	memset(&job, 0, sizeof(job));
	job.srv = srv;
	job.request = request;
	job.request_len = len;
	job.hold_open = hold_open;
	job.responses = responses;
	srv->done = 0;
	event_add(srv->poll, &tv);
	pthread_create(&t, NULL, client_main, &job);
	event_base_dispatch(srv->base);
	pthread_join(t, NULL);
	return job.response;
}

static const char *
run(struct server *srv, const char *request, size_t len, int hold_open)
{
	return run_n(srv, request, len, hold_open, 1);
}

static int
setup(void **state)
{
	struct server *srv = calloc(1, sizeof(*srv));
	struct http_limits limits = { .max_header_size = 1024, .max_body_size = 2048,
		.timeout_ms = 5000, .max_connections = 3 };
	const char *err = NULL;

	evthread_use_pthreads();
	srv->base = event_base_new();
	srv->metrics = metrics_new();
	srv->http = http_new(srv->base, srv->metrics);
	http_set_limits(srv->http, &limits);
	assert_int_equal(http_route_add(srv->http, "test", LOKET_HTTP_GET | LOKET_HTTP_POST,
			     "/things/{id}", LOKET_ACCESS_PUBLIC, echo_cb, NULL, &err),
	    0);
	assert_int_equal(http_route_add(srv->http, "test", LOKET_HTTP_GET, "/things/{id}",
			     LOKET_ACCESS_PUBLIC, echo_cb, NULL, &err),
	    -1);
	assert_int_equal(http_route_add(srv->http, "test", LOKET_HTTP_GET, "/secret",
			     LOKET_ACCESS_ADMIN, echo_cb, NULL, &err),
	    0);
	assert_int_equal(http_listen(srv->http, "127.0.0.1", 0, &err), 0);
	srv->port = http_bound_port(srv->http);
	srv->poll = event_new(srv->base, -1, EV_PERSIST, poll_cb, srv);
	*state = srv;
	return 0;
}

static int
teardown(void **state)
{
	struct server *srv = *state;

	event_free(srv->poll);
	http_free(srv->http);
	metrics_free(srv->metrics);
	event_base_free(srv->base);
	free(srv);
	return 0;
}

#define REQ(s) s, sizeof(s) - 1

static void
test_route_param(void **state)
{
	const char *r = run(*state, REQ("GET /things/B012 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);

	assert_non_null(strstr(r, "HTTP/1.1 200 OK"));
	assert_non_null(strstr(r, "{\"id\":\"B012\"}"));
}

static void
test_not_found(void **state)
{
	const char *r = run(*state, REQ("GET /nothing/here HTTP/1.1\r\nHost: x\r\n\r\n"), 0);

	assert_non_null(strstr(r, "HTTP/1.1 404 Not Found"));
	assert_non_null(strstr(r, "Content-Type: application/problem+json"));
	assert_non_null(strstr(r, "\"status\":404"));
	assert_non_null(strstr(r, "\"title\":\"Not Found\""));
}

static void
test_wrong_method(void **state)
{
	const char *r = run(*state, REQ("DELETE /things/1 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);

	assert_non_null(strstr(r, "HTTP/1.1 405 Method Not Allowed"));
	assert_non_null(strstr(r, "Allow: GET, HEAD, POST"));
}

static void
test_auth_required(void **state)
{
	const char *r = run(*state, REQ("GET /secret HTTP/1.1\r\nHost: x\r\n\r\n"), 0);

	assert_non_null(strstr(r, "HTTP/1.1 401 Unauthorized"));
}

static void
test_header_too_large(void **state)
{
	static char req[4096];
	int n = snprintf(req, sizeof(req), "GET /things/1 HTTP/1.1\r\nHost: x\r\nX-Pad: %01500d\r\n\r\n", 0);
	const char *r = run(*state, req, (size_t)n, 0);

	assert_non_null(strstr(r, "HTTP/1.1 431 Request Header Fields Too Large"));
	assert_non_null(strstr(r, "application/problem+json"));
	assert_non_null(strstr(r, "\"status\":431"));
}

static void
test_header_never_ends(void **state)
{
	static char req[4096];
	int n = snprintf(req, sizeof(req), "GET /things/1 HTTP/1.1\r\nX-Pad: %03000d", 0);
	const char *r = run(*state, req, (size_t)n, 0);

	assert_non_null(strstr(r, "HTTP/1.1 431"));
}

static void
test_body_too_large(void **state)
{
	static char req[8192];
	int n = snprintf(req, sizeof(req),
	    "POST /things/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n%03000d", 0);
	const char *r = run(*state, req, (size_t)n, 0);

	assert_non_null(strstr(r, "HTTP/1.1 413 Content Too Large"));
	assert_non_null(strstr(r, "\"status\":413"));
}

static void
test_body_within_limit(void **state)
{
	static char req[8192];
	int n = snprintf(req, sizeof(req),
	    "POST /things/7 HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n%02000d", 0);
	const char *r = run(*state, req, (size_t)n, 0);

	assert_non_null(strstr(r, "HTTP/1.1 200 OK"));
	assert_non_null(strstr(r, "{\"id\":\"7\"}"));
}

static void
test_too_many_connections(void **state)
{
	const char *r = run(*state, REQ("GET /things/1 HTTP/1.1\r\nHost: x\r\n\r\n"), 3);

	assert_non_null(strstr(r, "HTTP/1.1 503 Service Unavailable"));
	assert_non_null(strstr(r, "too many open connections"));
}

static void
test_malformed(void **state)
{
	static const struct {
		const char *request;
		const char *status;
	} cases[] = {
		{ "GARBAGE\r\n\r\n", "HTTP/1.1 400 " },
		{ "GET /things/1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 " },
		{ "BREW /things/1 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 501 " },
		{ "POST /things/1 HTTP/1.1\r\nContent-Length: ten\r\n\r\n", "HTTP/1.1 400 " },
		{ "POST /things/1 HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		    "HTTP/1.1 400 " },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *r = run(*state, cases[i].request, strlen(cases[i].request), 0);

		if (strncmp(r, cases[i].status, strlen(cases[i].status)) != 0 ||
		    strstr(r, "application/problem+json") == NULL)
			fail_msg("%s: got '%.60s'", cases[i].request, r);
	}
}

/* Every closed connection is uncounted, or the cap would lock clients out over time. */
static void
test_connections_uncounted(void **state)
{
	struct server *srv = *state;
	struct timeval tv = { 0, 20000 };

	run(srv, REQ("GET /things/1 HTTP/1.1\r\nHost: x\r\n\r\n"), 3);
	run(srv, REQ("GET /things/1 HTTP/1.1\r\nHost: x\r\nX-Pad: 1\r\n\r\n"), 0);
	for (int i = 0; i < 100 && http_guard_connections_of(srv->http) > 0; i++) {
		event_base_loopexit(srv->base, &tv);
		event_base_dispatch(srv->base);
	}
	assert_int_equal(http_guard_connections_of(srv->http), 0);
	/* With the connections gone, a request is served again. */
	assert_non_null(strstr(run(srv, REQ("GET /things/9 HTTP/1.1\r\nHost: x\r\n\r\n"), 0),
	    "HTTP/1.1 200 OK"));
}

static void
test_pipelined(void **state)
{
	const char *r = run_n(*state,
	    REQ("POST /things/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
		"GET /things/2 HTTP/1.1\r\nHost: x\r\n\r\n"),
	    0, 2);
	const char *first, *second;

	/* Two requests in one write: the guard frames both, evhttp answers both, in turn. */
	assert_int_equal(complete_responses(r, strlen(r)), 2);
	assert_true(strncmp(r, "HTTP/1.1 200 OK", 15) == 0);
	first = strstr(r, "{\"id\":\"1\"}");
	assert_non_null(first);
	second = strstr(first, "HTTP/1.1 200 OK");
	assert_non_null(second);
	assert_non_null(strstr(second, "{\"id\":\"2\"}"));
}

static void
test_metrics_count(void **state)
{
	struct server *srv = *state;
	struct evbuffer *buf = evbuffer_new();
	char *text;

	run(srv, REQ("GET /things/1 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	run(srv, REQ("GET /things/2 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	metrics_render(srv->metrics, buf);
	evbuffer_add(buf, "", 1);
	text = (char *)evbuffer_pullup(buf, -1);
	assert_non_null(strstr(text, "loket_http_requests_total{route=\"/things/{id}\","
				     "method=\"GET\",status=\"200\"} 2\n"));
	assert_non_null(strstr(text,
	    "loket_http_request_duration_seconds_count{route=\"/things/{id}\"} 2\n"));
	evbuffer_free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_problem_detail_cut_on_character_boundary),
		cmocka_unit_test_setup_teardown(test_route_param, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_method, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_required, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_too_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_never_ends, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_too_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_within_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many_connections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connections_uncounted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_count, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
