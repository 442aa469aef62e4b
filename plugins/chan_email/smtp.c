/* smtp.c: one blocking SMTP submission over libESMTP, run on the outbox sender thread. */
#include "config.h"

/* libesmtp.h uses size_t without including what defines it. */
#include <stddef.h>

/* Before libesmtp.h, which declares smtp_starttls_set_ctx only after it. */
#include <openssl/ssl.h>

#include <auth-client.h>
#include <libesmtp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "email.h"

/* libESMTP takes message data as int-sized pieces. */
#define SMTP_CHUNK (64 * 1024)

struct smtp_data {
	const char *data;
	size_t len;
	size_t off;
};

struct smtp_run {
	const struct smtp_conf *cf;
	int worst; /* the worst status class seen so far: 0, 4 or 5 */
	char what[8];
	int code;
	char text[200];
	/*
	 * libESMTP goes on to MAIL unauthenticated when AUTH fails; the
	 * transcript is the only place that says so.
	 */
	int in_auth;
	int authed;
	int tls_refused; /* a certificate failed verification */
	int auth_code;
	char auth_text[200];
};

static void
smtp_seterr(const char **error_r, const char *fmt, ...)
{
	va_list ap;

	if (error_r == NULL)
		return;
	va_start(ap, fmt);
	*error_r = email_verror(fmt, ap);
	va_end(ap);
}

/*
 * Copies server text for an error message. Servers quote the recipient
 * ("<someone@example.be>: Recipient address rejected"), and addresses must
 * not reach the logs, so every word with an '@' is replaced.
 */
static void
smtp_clean_text(char *dst, size_t dstlen, const char *src)
{
	size_t n = 0;

	if (dstlen == 0)
		return;
	while (src != NULL && *src != '\0' && n + 1 < dstlen) {
		size_t w = strcspn(src, " \t\r\n");

		if (w == 0) {
			if (n > 0 && dst[n - 1] != ' ')
				dst[n++] = ' ';
			src++;
			continue;
		}
		if (memchr(src, '@', w) != NULL) {
			const char *r = "[address]";
			size_t rl = strlen(r);

			if (n + rl >= dstlen)
				break;
			memcpy(dst + n, r, rl);
			n += rl;
		} else {
			for (size_t i = 0; i < w && n + 1 < dstlen; i++) {
				unsigned char c = (unsigned char)src[i];

				dst[n++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
			}
		}
		src += w;
	}
	while (n > 0 && dst[n - 1] == ' ')
		n--;
	dst[n] = '\0';
}

/* Keeps the first 4xx or 5xx answer of the worst class: that is the one to report. */
static void
smtp_note(struct smtp_run *run, const char *what, const smtp_status_t *st)
{
	int cls;

	if (st == NULL)
		return;
	cls = st->code / 100;
	if ((cls != 4 && cls != 5) || cls <= run->worst)
		return;
	run->worst = cls;
	snprintf(run->what, sizeof(run->what), "%s", what);
	run->code = st->code;
	smtp_clean_text(run->text, sizeof(run->text), st->text);
}

static void
smtp_rcpt_cb(smtp_recipient_t rcpt, const char *mailbox, void *arg)
{
	(void)mailbox;
	smtp_note(arg, "RCPT", smtp_recipient_status(rcpt));
}

/*
 * libESMTP asks whether to go on after a certificate problem; the answer is
 * yes only when verification is turned off. The context (smtp_tls) checks
 * against the system store.
 */
static void
smtp_event_cb(smtp_session_t session, int event, void *arg, ...)
{
	struct smtp_run *run = arg;
	va_list ap;
	int *ok = NULL;

	(void)session;
	va_start(ap, arg);
	switch (event) {
	case SMTP_EV_INVALID_PEER_CERTIFICATE:
		(void)va_arg(ap, long);
		ok = va_arg(ap, int *);
		break;
	case SMTP_EV_NO_PEER_CERTIFICATE:
	case SMTP_EV_WRONG_PEER_CERTIFICATE:
		ok = va_arg(ap, int *);
		break;
	default:
		break;
	}
	va_end(ap);
	if (ok != NULL) {
		*ok = run->cf->verify_tls ? 0 : 1;
		run->tls_refused |= !*ok;
	}
}

/*
 * A TLS context of our own for a session, checking against the system store.
 * libESMTP 1.1's default context is one per process that every session frees
 * when it is destroyed, so a second STARTTLS session in the same process used
 * a freed context. smtp_starttls_set_ctx takes a reference of its own; the
 * caller lets go of this one after the session.
 *
 * At most TLS 1.2: a TLS 1.3 server sends its session tickets after the
 * handshake, and when they arrive before libESMTP has written its EHLO, it
 * reads them as if they were the answer, finds no data in them, and waits
 * for one until the timeout while the server waits for the EHLO (strace:
 * a 250-byte record read, then poll for input with nothing written; about
 * one submission in three after the first of a process). TLS 1.2 has no
 * messages after the handshake; OpenSSL's defaults keep it to forward-secret
 * suites.
 */
static SSL_CTX *
smtp_tls(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx != NULL && SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION) != 1) {
		SSL_CTX_free(ctx);
		ctx = NULL;
	}
	if (ctx != NULL && SSL_CTX_set_default_verify_paths(ctx) != 1) {
		SSL_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

static void
smtp_monitor_cb(const char *buf, int len, int writing, void *arg)
{
	struct smtp_run *run = arg;
	const char *p = buf, *end = buf + (len > 0 ? len : 0);

	if (writing) {
		if (len >= 5 && strncasecmp(buf, "AUTH ", 5) == 0)
			run->in_auth = 1;
		return;
	}
	while (run->in_auth && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

		/* "334" asks for more; a final line of another class ends AUTH. */
		if (n >= 4 && p[3] == ' ' && p[0] >= '2' && p[0] <= '5' && p[0] != '3') {
			char line[sizeof(run->auth_text)];

			run->in_auth = 0;
			if (p[0] == '2') {
				run->authed = 1;
			} else if (run->auth_code == 0) {
				/* The first refusal; later mechanisms tend to fail alike. */
				run->auth_code = atoi(p);
				if (n - 4 >= sizeof(line))
					n = sizeof(line) + 3;
				memcpy(line, p + 4, n - 4);
				line[n - 4] = '\0';
				smtp_clean_text(run->auth_text, sizeof(run->auth_text), line);
			}
		}
		p += n + 1;
	}
}

static int
smtp_interact_cb(auth_client_request_t req, char **result, int fields, void *arg)
{
	const struct smtp_conf *cf = arg;

	for (int i = 0; i < fields; i++) {
		if (req[i].flags & AUTH_USER)
			result[i] = (char *)cf->user;
		else if (req[i].flags & AUTH_PASS)
			result[i] = (char *)(cf->password != NULL ? cf->password : "");
		else
			result[i] = NULL;
		if (result[i] == NULL)
			return 0;
	}
	return 1;
}

/* Hands out the message in pieces; libESMTP rewinds with len == NULL. */
static const char *
smtp_message_cb(void **ctx, int *len, void *arg)
{
	struct smtp_data *d = arg;
	const char *p;
	size_t n;

	(void)ctx;
	if (len == NULL) {
		d->off = 0;
		return NULL;
	}
	if (d->off >= d->len) {
		*len = 0;
		return NULL;
	}
	n = d->len - d->off;
	if (n > SMTP_CHUNK)
		n = SMTP_CHUNK;
	p = d->data + d->off;
	d->off += n;
	*len = (int)n;
	return p;
}

/*
 * libESMTP wants CRLF line ends; a message with bare LF (or CR) gets a CRLF
 * copy in *copy_r, and a last line without an end gets one.
 */
static int
smtp_crlf(const char *data, size_t len, char **copy_r, size_t *len_r)
{
	size_t extra = 0, n = 0;
	char *c;

	*copy_r = NULL;
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			extra++;
		else if (data[i] == '\r' && (i + 1 == len || data[i + 1] != '\n'))
			extra++;
	}
	if (len > 0 && data[len - 1] != '\n' && data[len - 1] != '\r')
		extra += 2;
	if (extra == 0) {
		*len_r = len;
		return 0;
	}
	if ((c = malloc(len + extra)) == NULL)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r')) {
			c[n++] = '\r';
			c[n++] = '\n';
		} else if (data[i] == '\r' && (i + 1 == len || data[i + 1] != '\n')) {
			c[n++] = '\r';
			c[n++] = '\n';
		} else {
			c[n++] = data[i];
		}
	}
	if (len > 0 && data[len - 1] != '\n' && data[len - 1] != '\r') {
		c[n++] = '\r';
		c[n++] = '\n';
	}
	*copy_r = c;
	*len_r = n;
	return 0;
}

int
smtp_send(const struct smtp_conf *cf, const char *mail_from, const char *const *rcpts,
    size_t n_rcpts, const char *data, size_t len, int *permanent_r, const char **error_r)
{
	struct smtp_run run = { .cf = cf };
	struct smtp_data md = { data, len, 0 };
	smtp_session_t session = NULL;
	smtp_message_t msg;
	auth_context_t auth = NULL;
	SSL_CTX *tls = NULL;
	const smtp_status_t *st;
	char server[512], ebuf[128], *copy = NULL;
	long tmo;
	int ret = -1;

	*permanent_r = 0;
	if (cf == NULL || cf->host == NULL || cf->port == NULL || mail_from == NULL || n_rcpts == 0
	    || data == NULL) {
		smtp_seterr(error_r, "smtp: no server, sender, recipient or data");
		*permanent_r = 1;
		return -1;
	}
	if (strpbrk(mail_from, "\r\n") != NULL) {
		smtp_seterr(error_r, "smtp: bad sender address");
		*permanent_r = 1;
		return -1;
	}
	for (size_t i = 0; i < n_rcpts; i++) {
		if (rcpts[i] == NULL || rcpts[i][0] == '\0' || strpbrk(rcpts[i], "\r\n") != NULL) {
			smtp_seterr(error_r, "smtp: bad recipient address (#%zu)", i + 1);
			*permanent_r = 1;
			return -1;
		}
	}
	if (smtp_crlf(data, len, &copy, &md.len) == -1) {
		smtp_seterr(error_r, "smtp: out of memory");
		return -1;
	}
	if (copy != NULL)
		md.data = copy;
	/* An IPv6 literal needs brackets to keep its colons apart from the port. */
	snprintf(server, sizeof(server), strchr(cf->host, ':') != NULL ? "[%s]:%s" : "%s:%s",
	    cf->host, cf->port);

	if ((session = smtp_create_session()) == NULL)
		goto esmtp_fail;
	if (!smtp_set_server(session, server)
	    || (cf->helo != NULL && !smtp_set_hostname(session, cf->helo))
	    || !smtp_set_eventcb(session, smtp_event_cb, &run)
	    || !smtp_starttls_enable(session,
	        cf->starttls == 0       ? Starttls_DISABLED
	            : cf->starttls == 1 ? Starttls_ENABLED
	                                : Starttls_REQUIRED))
		goto esmtp_fail;
	if (cf->starttls != 0) {
		if ((tls = smtp_tls()) == NULL) {
			smtp_seterr(error_r, "smtp: cannot set up TLS (OpenSSL)");
			goto out;
		}
		if (!smtp_starttls_set_ctx(session, tls))
			goto esmtp_fail;
	}
	tmo = cf->timeout_ms > 0 ? cf->timeout_ms : 30000;
	/* The RFC 5321 minimums are minutes; the caller's timeout is what it can wait. */
	smtp_set_timeout(session, Timeout_GREETING | Timeout_OVERRIDE_RFC2822_MINIMUM, tmo);
	smtp_set_timeout(session, Timeout_ENVELOPE | Timeout_OVERRIDE_RFC2822_MINIMUM, tmo);
	smtp_set_timeout(session, Timeout_DATA | Timeout_OVERRIDE_RFC2822_MINIMUM, tmo);
	smtp_set_timeout(session, Timeout_TRANSFER | Timeout_OVERRIDE_RFC2822_MINIMUM, tmo);
	smtp_set_timeout(session, Timeout_DATA2 | Timeout_OVERRIDE_RFC2822_MINIMUM, tmo);

	if (cf->user != NULL) {
		auth_client_init();
		if ((auth = auth_create_context()) == NULL)
			goto esmtp_fail;
		auth_set_mechanism_flags(auth, AUTH_PLUGIN_PLAIN, 0);
		auth_set_interact_cb(auth, smtp_interact_cb, (void *)cf);
		if (!smtp_auth_set_context(session, auth)
		    || !smtp_set_monitorcb(session, smtp_monitor_cb, &run, 0))
			goto esmtp_fail;
	}

	if ((msg = smtp_add_message(session)) == NULL || !smtp_set_reverse_path(msg, mail_from)
	    || !smtp_set_messagecb(msg, smtp_message_cb, &md))
		goto esmtp_fail;
	for (size_t i = 0; i < n_rcpts; i++)
		if (smtp_add_recipient(msg, rcpts[i]) == NULL)
			goto esmtp_fail;

	if (!smtp_start_session(session)) {
		smtp_seterr(error_r, "smtp: %s", smtp_strerror(smtp_errno(), ebuf, sizeof(ebuf)));
		goto out;
	}

	smtp_note(&run, "MAIL", smtp_reverse_path_status(msg));
	smtp_enumerate_recipients(msg, smtp_rcpt_cb, &run);
	st = smtp_message_transfer_status(msg);
	if (run.worst == 0 && st != NULL && st->code / 100 == 2) {
		ret = 0;
		goto out;
	}
	smtp_note(&run, "DATA", st);
	if (run.tls_refused) {
		smtp_seterr(error_r, "smtp: the server's TLS certificate did not verify");
	} else if (run.auth_code != 0) {
		/* Wrong credentials are the configuration's fault, not the message's. */
		smtp_seterr(error_r, "smtp AUTH: %d %s", run.auth_code, run.auth_text);
	} else if (run.worst == 5 || run.worst == 4) {
		*permanent_r = run.worst == 5;
		smtp_seterr(error_r, "smtp %s: %d %s", run.what, run.code, run.text);
	} else {
		/* No answer to report: the session broke off before the data went out. */
		int e = smtp_errno();

		smtp_seterr(error_r, "smtp: message not sent%s%s", e != 0 ? ": " : "",
		    e != 0 ? smtp_strerror(e, ebuf, sizeof(ebuf)) : "");
	}
	goto out;

esmtp_fail:
	smtp_seterr(error_r, "smtp: %s", smtp_strerror(smtp_errno(), ebuf, sizeof(ebuf)));
out:
	if (session != NULL)
		smtp_destroy_session(session);
	SSL_CTX_free(tls);
	if (auth != NULL)
		auth_destroy_context(auth);
	free(copy);
	return ret;
}

void
smtp_cleanup(void)
{
	auth_client_exit();
}
