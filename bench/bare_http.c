/* bare_http.c: the baseline for bench/intake: a bare libevent evhttp server that answers every
 * POST with one fixed 201 JSON body and does nothing else (no parsing, no storage, no fsync).
 *
 * usage: bare_http [-a ADDR] [-p PORT] [-b BODYFILE]
 *   -a ADDR      address to listen on (default 127.0.0.1)
 *   -p PORT      port (default 0: any free port)
 *   -b BODYFILE  the 201 body to answer with (default: a contact of loketd's shape, ~700 bytes)
 *
 * Prints "listening port=N" on stdout once it accepts connections; SIGTERM or SIGINT stop it.
 * GET answers 200 {"status":"ok"} so that a script can wait for it like for loketd's /healthz.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char bare_http_default_body[] =
    "{\"id\":123456,\"reference\":\"2026-123456\",\"channel\":\"phone\",\"direction\":\"in\","
    "\"status\":\"open\",\"line\":1,\"subject\":\"Vraag 123456 over de identiteitskaart\","
    "\"body\":\"Goedemiddag, ik had graag geweten wanneer ik mijn nieuwe identiteitskaart kan "
    "afhalen en of ik daarvoor een afspraak moet maken aan de balie. Met vriendelijke groeten.\","
    "\"answer\":null,\"product\":null,\"department\":\"burgerzaken\",\"organisation\":\"gemeente\","
    "\"priority\":\"normal\",\"tags\":[],\"language\":null,\"confidential\":false,\"location\":null,"
    "\"meta\":{},\"party_id\":457,\"party\":{\"id\":457,\"name\":\"Burger 456\"},"
    "\"received_at\":\"2026-11-28T10:37:44.123Z\",\"handled_at\":null,"
    "\"updated_at\":\"2026-11-28T10:37:44.123Z\",\"created_by\":\"bench\"}";

struct bare_http {
	struct event_base *base;
	const char *body;
	size_t body_len;
};

static void
bare_http_request_cb(struct evhttp_request *req, void *arg)
{
	struct bare_http *b = arg;
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct evbuffer *reply = evbuffer_new();

	if (reply == NULL) {
		evhttp_send_error(req, 503, NULL);
		return;
	}
	/* The request body is read by evhttp already; drop it without looking at it. */
	evbuffer_drain(evhttp_request_get_input_buffer(req),
	    evbuffer_get_length(evhttp_request_get_input_buffer(req)));
	evhttp_add_header(out, "Content-Type", "application/json");
	evhttp_add_header(out, "Cache-Control", "no-store");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
		evbuffer_add_reference(reply, b->body, b->body_len, NULL, NULL);
		evhttp_send_reply(req, 201, "Created", reply);
	} else {
		evbuffer_add(reply, "{\"status\":\"ok\"}", 15);
		evhttp_send_reply(req, 200, "OK", reply);
	}
	evbuffer_free(reply);
}

static void
bare_http_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct bare_http *b = arg;

	(void)sig;
	(void)what;
	event_base_loopexit(b->base, NULL);
}

static char *
bare_http_read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) < 0 || (buf = malloc((size_t)n + 1)) == NULL ||
	    fread(buf, 1, (size_t)n, f) != (size_t)n) {
		perror(path);
		free(buf);
		if (f != NULL)
			fclose(f);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*len_r = (size_t)n;
	return buf;
}

int
main(int argc, char *argv[])
{
	struct bare_http b = { 0 };
	struct evhttp *http = NULL;
	struct evhttp_bound_socket *sock;
	struct event *sig_term = NULL, *sig_int = NULL;
	const char *addr = "127.0.0.1", *body_path = NULL;
	char *body_file = NULL;
	unsigned short port = 0;
	int ch, rc = 1;

	while ((ch = getopt(argc, argv, "a:p:b:h")) != -1) {
		switch (ch) {
		case 'a':
			addr = optarg;
			break;
		case 'p':
			port = (unsigned short)atoi(optarg);
			break;
		case 'b':
			body_path = optarg;
			break;
		default:
			fprintf(stderr, "usage: bare_http [-a ADDR] [-p PORT] [-b BODYFILE]\n");
			return ch == 'h' ? 0 : 2;
		}
	}
	if (body_path != NULL) {
		if ((body_file = bare_http_read_file(body_path, &b.body_len)) == NULL)
			return 1;
		b.body = body_file;
	} else {
		b.body = bare_http_default_body;
		b.body_len = sizeof(bare_http_default_body) - 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if ((b.base = event_base_new()) == NULL || (http = evhttp_new(b.base)) == NULL) {
		fprintf(stderr, "bare_http: cannot set up the event loop\n");
		goto out;
	}
	evhttp_set_gencb(http, bare_http_request_cb, &b);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
	if ((sock = evhttp_bind_socket_with_handle(http, addr, port)) == NULL) {
		fprintf(stderr, "bare_http: cannot listen on %s:%u\n", addr, port);
		goto out;
	}
	sig_term = evsignal_new(b.base, SIGTERM, bare_http_signal_cb, &b);
	sig_int = evsignal_new(b.base, SIGINT, bare_http_signal_cb, &b);
	if (sig_term == NULL || sig_int == NULL || evsignal_add(sig_term, NULL) < 0 ||
	    evsignal_add(sig_int, NULL) < 0) {
		fprintf(stderr, "bare_http: cannot install signal handlers\n");
		goto out;
	}
	{
		struct sockaddr_storage ss;
		ev_socklen_t len = sizeof(ss);
		evutil_socket_t fd = evhttp_bound_socket_get_fd(sock);

		if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	printf("listening port=%u body_bytes=%zu\n", port, b.body_len);
	fflush(stdout);
	event_base_dispatch(b.base);
	rc = 0;
out:
	if (sig_int != NULL)
		event_free(sig_int);
	if (sig_term != NULL)
		event_free(sig_term);
	if (http != NULL)
		evhttp_free(http);
	if (b.base != NULL)
		event_base_free(b.base);
	free(body_file);
	return rc;
}
