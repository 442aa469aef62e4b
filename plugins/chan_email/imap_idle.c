/*
 * imap_idle.c: waiting for new mail with IMAP IDLE on a second connection that
 * libcurl opened and logged in (CONNECT_ONLY), spoken over curl_easy_send/recv.
 */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "email.h"
#include "imap.h"

static long
imap_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
imap_idle_fd(struct imap *im)
{
	curl_socket_t s = CURL_SOCKET_BAD;

	if (curl_easy_getinfo(im->idle, CURLINFO_ACTIVESOCKET, &s) != CURLE_OK)
		return -1;
	return s == CURL_SOCKET_BAD ? -1 : (int)s;
}

static int
imap_idle_send(struct imap *im, const char *line, const char **error_r)
{
	size_t len = strlen(line), off = 0;
	long deadline = imap_now_ms() + im->timeout_ms;

	while (off < len) {
		size_t sent = 0;
		CURLcode rc = curl_easy_send(im->idle, line + off, len - off, &sent);
		struct pollfd pfd;

		if (rc == CURLE_OK) {
			off += sent;
			continue;
		}
		if (rc != CURLE_AGAIN) {
			imap_seterr(error_r, "imap IDLE: send: %s", curl_easy_strerror(rc));
			return -1;
		}
		pfd.fd = imap_idle_fd(im);
		pfd.events = POLLOUT;
		if (pfd.fd == -1 || imap_now_ms() >= deadline
		    || poll(&pfd, 1, (int)(deadline - imap_now_ms())) == -1) {
			imap_seterr(error_r, "imap IDLE: send timed out");
			return -1;
		}
	}
	return 0;
}

enum imap_idle_read {
	IMAP_IDLE_LINE,
	IMAP_IDLE_TIMEOUT,
	IMAP_IDLE_STOP,
	IMAP_IDLE_ERROR,
};

/*
 * Reads one response line (CRLF stripped, NUL-terminated, in im->idle_in) before
 * deadline. TLS may hold decrypted bytes the socket no longer shows, so poll()
 * only after curl_easy_recv() has said CURLE_AGAIN.
 */
static enum imap_idle_read
imap_idle_line(struct imap *im, char **line_r, long deadline, int stop_fd, const char **error_r)
{
	struct imap_buf *in = &im->idle_in;

	for (;;) {
		char *nl = in->len > 0 ? memchr(in->data, '\n', in->len) : NULL;
		char chunk[4096];
		struct pollfd pfd[2];
		size_t got = 0;
		CURLcode rc;
		long left;
		int nfd = 1;

		if (nl != NULL) {
			/* Hand out the line; the caller consumes it with imap_idle_consume(). */
			*nl = '\0';
			if (nl > in->data && nl[-1] == '\r')
				nl[-1] = '\0';
			*line_r = in->data;
			return IMAP_IDLE_LINE;
		}
		if (in->len > 64 * 1024) {
			imap_seterr(error_r, "imap IDLE: response line too long");
			return IMAP_IDLE_ERROR;
		}
		rc = curl_easy_recv(im->idle, chunk, sizeof(chunk), &got);
		if (rc == CURLE_OK && got == 0) {
			imap_seterr(error_r, "imap IDLE: connection closed by the server");
			return IMAP_IDLE_ERROR;
		}
		if (rc == CURLE_OK) {
			if (imap_buf_add(in, chunk, got) == -1) {
				imap_seterr(error_r, "imap IDLE: out of memory");
				return IMAP_IDLE_ERROR;
			}
			continue;
		}
		if (rc != CURLE_AGAIN) {
			imap_seterr(error_r, "imap IDLE: receive: %s", curl_easy_strerror(rc));
			return IMAP_IDLE_ERROR;
		}
		if ((left = deadline - imap_now_ms()) <= 0)
			return IMAP_IDLE_TIMEOUT;
		pfd[0].fd = imap_idle_fd(im);
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		if (stop_fd != -1) {
			pfd[1].fd = stop_fd;
			pfd[1].events = POLLIN;
			pfd[1].revents = 0;
			nfd = 2;
		}
		if (pfd[0].fd == -1) {
			imap_seterr(error_r, "imap IDLE: connection lost");
			return IMAP_IDLE_ERROR;
		}
		if (poll(pfd, (nfds_t)nfd, left > 60000 ? 60000 : (int)left) == -1
		    && errno != EINTR) {
			imap_seterr(error_r, "imap IDLE: poll: %s", strerror(errno));
			return IMAP_IDLE_ERROR;
		}
		if (nfd == 2 && pfd[1].revents != 0)
			return IMAP_IDLE_STOP;
	}
}

/* Drops the line imap_idle_line() handed out. */
static void
imap_idle_consume(struct imap *im, const char *line)
{
	struct imap_buf *in = &im->idle_in;
	size_t used = strlen(line);

	/* The line ended in "\r\n" or "\n", now one or two NULs. */
	if (used < in->len && in->data[used] == '\0' && used + 1 < in->len
	    && in->data[used + 1] == '\0')
		used++;
	used++;
	if (used > in->len)
		used = in->len;
	memmove(in->data, in->data + used, in->len - used);
	in->len -= used;
	if (in->data != NULL)
		in->data[in->len] = '\0';
}

/* Sends "<tag> <cmd>" and reads to the tagged answer; 0 on OK, -1 with *error_r. */
static int
imap_idle_command(struct imap *im, const char *cmd, const char **error_r)
{
	char tag[16], *line, *buf;
	size_t n, tlen;
	long deadline;
	int ret;

	snprintf(tag, sizeof(tag), "L%u", ++im->idle_tag);
	tlen = strlen(tag);
	n = tlen + strlen(cmd) + 4;
	if ((buf = malloc(n)) == NULL) {
		imap_seterr(error_r, "imap IDLE: out of memory");
		return -1;
	}
	snprintf(buf, n, "%s %s\r\n", tag, cmd);
	ret = imap_idle_send(im, buf, error_r);
	free(buf);
	if (ret == -1)
		return -1;
	deadline = imap_now_ms() + im->timeout_ms;
	for (;;) {
		switch (imap_idle_line(im, &line, deadline, -1, error_r)) {
		case IMAP_IDLE_LINE:
			break;
		case IMAP_IDLE_TIMEOUT:
		case IMAP_IDLE_STOP:
			imap_seterr(error_r, "imap IDLE: no answer from the server");
			return -1;
		case IMAP_IDLE_ERROR:
			return -1;
		}
		if (strncmp(line, tag, tlen) == 0 && line[tlen] == ' ') {
			ret = strncasecmp(line + tlen + 1, "OK", 2) == 0 ? 0 : -1;
			if (ret == -1)
				imap_seterr(error_r, "imap IDLE: %.200s", line + tlen + 1);
			imap_idle_consume(im, line);
			return ret;
		}
		imap_idle_consume(im, line);
	}
}

static int
imap_idle_connect(struct imap *im, const char **error_r)
{
	CURLcode rc;

	imap_idle_drop(im);
	if ((im->idle = curl_easy_init()) == NULL) {
		imap_seterr(error_r, "imap IDLE: out of memory");
		return -1;
	}
	imap_common_opts(im, im->idle);
	curl_easy_setopt(im->idle, CURLOPT_URL, im->base);
	curl_easy_setopt(im->idle, CURLOPT_HEADERFUNCTION, imap_header_cb);
	curl_easy_setopt(im->idle, CURLOPT_HEADERDATA, im);
	/* libcurl 7.88 still greets, does STARTTLS and logs in before it stops. */
	curl_easy_setopt(im->idle, CURLOPT_CONNECT_ONLY, 1L);
	im->errbuf[0] = '\0';
	im->resp[0] = '\0';
	if ((rc = curl_easy_perform(im->idle)) != CURLE_OK) {
		imap_curl_err(im, rc, "IDLE connect", error_r);
		imap_idle_drop(im);
		return -1;
	}
	return 0;
}

/* One wait on a live IDLE connection: 1 news, 0 timeout or stop, -1 error. */
static int
imap_idle_once(
    struct imap *im, const char *mailbox, long timeout_ms, int stop_fd, const char **error_r)
{
	char tag[16], *line;
	long deadline;
	size_t tlen;
	int news = 0, done = 0, selected_now = 0;

	if (im->idle_mailbox == NULL || strcmp(im->idle_mailbox, mailbox) != 0) {
		char *cmd = imap_cmd_mailbox("SELECT", mailbox, "");
		int ret;

		if (cmd == NULL) {
			imap_seterr(error_r, "imap IDLE: out of memory");
			return -1;
		}
		free(im->idle_mailbox);
		im->idle_mailbox = NULL;
		ret = imap_idle_command(im, cmd, error_r);
		free(cmd);
		if (ret == -1 || (im->idle_mailbox = strdup(mailbox)) == NULL) {
			if (ret == 0)
				imap_seterr(error_r, "imap IDLE: out of memory");
			return -1;
		}
		selected_now = 1;
	}

	snprintf(tag, sizeof(tag), "L%u", ++im->idle_tag);
	tlen = strlen(tag);
	{
		char buf[32];

		snprintf(buf, sizeof(buf), "%s IDLE\r\n", tag);
		if (imap_idle_send(im, buf, error_r) == -1)
			return -1;
	}
	deadline = imap_now_ms() + im->timeout_ms;
	for (;;) {
		enum imap_idle_read r = imap_idle_line(im, &line, deadline, -1, error_r);

		if (r == IMAP_IDLE_ERROR)
			return -1;
		if (r != IMAP_IDLE_LINE) {
			imap_seterr(error_r, "imap IDLE: no continuation from the server");
			return -1;
		}
		if (line[0] == '+') {
			imap_idle_consume(im, line);
			break;
		}
		if (strncmp(line, tag, tlen) == 0 && line[tlen] == ' ') {
			imap_seterr(error_r, "imap IDLE: %.200s", line + tlen + 1);
			imap_idle_consume(im, line);
			return -1;
		}
		imap_idle_consume(im, line);
	}

	/*
	 * Changes queued since the last wait are reported right here, none are lost;
	 * but a mail that came between the caller's SEARCH and this connection's
	 * SELECT is in the SELECT's count, not news to IDLE: after a fresh SELECT the
	 * caller searches once more before the first real wait.
	 */
	deadline = imap_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	news = selected_now;
	while (!news) {
		enum imap_idle_read r = imap_idle_line(im, &line, deadline, stop_fd, error_r);
		const char *p;
		uint32_t v;

		if (r == IMAP_IDLE_ERROR)
			return -1;
		if (r != IMAP_IDLE_LINE)
			break;
		if (strncmp(line, tag, tlen) == 0 && line[tlen] == ' ') {
			/* The server ended IDLE on its own. */
			done = 1;
			imap_idle_consume(im, line);
			break;
		}
		p = line + 2;
		if (strncmp(line, "* ", 2) == 0 && imap_parse_u32(&p, &v) == 0
		    && (strcasecmp(p, " EXISTS") == 0 || strcasecmp(p, " RECENT") == 0))
			news = 1;
		else if (strncasecmp(line, "* BYE", 5) == 0) {
			imap_seterr(error_r, "imap IDLE: %.200s", line + 2);
			imap_idle_consume(im, line);
			return -1;
		}
		imap_idle_consume(im, line);
	}
	if (!done) {
		if (imap_idle_send(im, "DONE\r\n", error_r) == -1)
			return -1;
		deadline = imap_now_ms() + im->timeout_ms;
		for (;;) {
			enum imap_idle_read r = imap_idle_line(im, &line, deadline, -1, error_r);

			if (r == IMAP_IDLE_ERROR)
				return -1;
			if (r != IMAP_IDLE_LINE) {
				imap_seterr(error_r, "imap IDLE: no answer to DONE");
				return -1;
			}
			if (strncmp(line, tag, tlen) == 0 && line[tlen] == ' ') {
				imap_idle_consume(im, line);
				break;
			}
			if (strncmp(line, "* ", 2) == 0) {
				const char *p = line + 2;
				uint32_t v;

				if (imap_parse_u32(&p, &v) == 0
				    && (strcasecmp(p, " EXISTS") == 0
				        || strcasecmp(p, " RECENT") == 0))
					news = 1;
			}
			imap_idle_consume(im, line);
		}
	}
	return news;
}

int
imap_idle_wait(
    struct imap *im, const char *mailbox, long timeout_ms, int stop_fd, const char **error_r)
{
	int ret;

	if (!imap_safe(mailbox)) {
		imap_seterr(error_r, "imap IDLE: bad mailbox name");
		return -1;
	}
	/* A kept connection may have died quietly: one retry on a new one. */
	for (int attempt = 0; attempt < 2; attempt++) {
		int fresh = im->idle == NULL;

		if (fresh && imap_idle_connect(im, error_r) == -1)
			return -1;
		if ((ret = imap_idle_once(im, mailbox, timeout_ms, stop_fd, error_r)) != -1)
			return ret;
		imap_idle_drop(im);
		if (fresh)
			break;
	}
	return -1;
}
