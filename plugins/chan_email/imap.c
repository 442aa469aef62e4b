/* imap.c: a blocking IMAP session over libcurl, one per mailbox worker thread. */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "email.h"
#include "imap.h"

void
imap_buf_reset(struct imap_buf *b)
{
	b->len = 0;
	b->oom = 0;
}

int
imap_buf_add(struct imap_buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap == 0 ? 4096 : b->cap;
		char *d;

		while (cap < b->len + n + 1)
			cap *= 2;
		if ((d = realloc(b->data, cap)) == NULL) {
			b->oom = 1;
			return -1;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static void
imap_buf_free(struct imap_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void
imap_seterr(const char **error_r, const char *fmt, ...)
{
	va_list ap;

	if (error_r == NULL)
		return;
	va_start(ap, fmt);
	*error_r = email_verror(fmt, ap);
	va_end(ap);
}

static size_t
imap_write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct imap_buf *b = arg;

	if (imap_buf_add(b, p, size * n) == -1)
		return 0;
	return size * n;
}

/*
 * libcurl hands every response line to the header callback; the last tagged
 * one carries the server's reason for a failure ("NO [ALREADYEXISTS] ...").
 */
size_t
imap_header_cb(char *p, size_t size, size_t n, void *arg)
{
	struct imap *im = arg;
	size_t len = size * n;
	const char *sp;

	if (len == 0 || p[0] == '*' || p[0] == '+')
		return len;
	/* After a failure libcurl logs out; keep the NO, not the LOGOUT's OK. */
	if (strncmp(im->resp, "NO ", 3) == 0 || strncmp(im->resp, "BAD ", 4) == 0)
		return len;
	while (len > 0 && (p[len - 1] == '\r' || p[len - 1] == '\n'))
		len--;
	/* Skip the tag: the text after it is what a person can read. */
	if ((sp = memchr(p, ' ', len)) != NULL) {
		len -= (size_t)(sp + 1 - p);
		p = (char *)sp + 1;
	}
	if (len >= sizeof(im->resp))
		len = sizeof(im->resp) - 1;
	memcpy(im->resp, p, len);
	im->resp[len] = '\0';
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)im->resp[i] < 0x20)
			im->resp[i] = ' ';
	return size * n;
}

/* Rejects what could end a command line early or be read as a second command. */
int
imap_safe(const char *s)
{
	return s != NULL && strpbrk(s, "\r\n") == NULL;
}

/* A quoted string for a command; NULL when out of memory. */
static char *
imap_quote(const char *s)
{
	size_t n = 0;
	char *q, *d;

	for (const char *p = s; *p != '\0'; p++)
		n += (*p == '"' || *p == '\\') ? 2 : 1;
	if ((q = malloc(n + 3)) == NULL)
		return NULL;
	d = q;
	*d++ = '"';
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			*d++ = '\\';
		*d++ = *p;
	}
	*d++ = '"';
	*d = '\0';
	return q;
}

void
imap_common_opts(struct imap *im, CURL *h)
{
	long secs = (im->timeout_ms + 999) / 1000;

	if (secs < 1)
		secs = 1;
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERNAME, im->user);
	curl_easy_setopt(h, CURLOPT_PASSWORD, im->password);
	curl_easy_setopt(h, CURLOPT_USE_SSL,
	    im->starttls == 0       ? (long)CURLUSESSL_NONE
	        : im->starttls == 1 ? (long)CURLUSESSL_TRY
	                            : (long)CURLUSESSL_ALL);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, im->verify_tls ? 1L : 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, im->verify_tls ? 2L : 0L);
	if (im->ca_file != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, im->ca_file);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, im->timeout_ms);
	/*
	 * Not CURLOPT_TIMEOUT_MS: a large message on a slow link may take longer
	 * than a command; what must end is a server that stops answering.
	 */
	curl_easy_setopt(h, CURLOPT_SERVER_RESPONSE_TIMEOUT, secs);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, secs);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, im->errbuf);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
}

struct imap *
imap_open(const struct imap_conf *cf, const char **error_r)
{
	struct imap *im;
	size_t n;

	if (cf == NULL || cf->url == NULL
	    || (strncasecmp(cf->url, "imap://", 7) != 0 && strncasecmp(cf->url, "imaps://", 8) != 0)
	    || !imap_safe(cf->url)) {
		imap_seterr(error_r, "imap: url must start with imap:// or imaps://");
		return NULL;
	}
	if ((im = calloc(1, sizeof(*im))) == NULL)
		goto nomem;
	if ((im->base = strdup(cf->url)) == NULL)
		goto nomem;
	n = strlen(im->base);
	while (n > 0 && im->base[n - 1] == '/')
		im->base[--n] = '\0';
	if ((cf->user != NULL && (im->user = strdup(cf->user)) == NULL)
	    || (cf->password != NULL && (im->password = strdup(cf->password)) == NULL)
	    || (cf->ca_file != NULL && (im->ca_file = strdup(cf->ca_file)) == NULL))
		goto nomem;
	im->starttls = cf->starttls;
	im->verify_tls = cf->verify_tls;
	im->timeout_ms = cf->timeout_ms > 0 ? cf->timeout_ms : 30000;

	if ((im->curl = curl_easy_init()) == NULL)
		goto nomem;
	imap_common_opts(im, im->curl);
	curl_easy_setopt(im->curl, CURLOPT_WRITEFUNCTION, imap_write_cb);
	curl_easy_setopt(im->curl, CURLOPT_WRITEDATA, &im->out);
	curl_easy_setopt(im->curl, CURLOPT_HEADERFUNCTION, imap_header_cb);
	curl_easy_setopt(im->curl, CURLOPT_HEADERDATA, im);
	curl_easy_setopt(im->curl, CURLOPT_BUFFERSIZE, IMAP_RECV_BUFFER);
	/* One cached connection: a replaced one is closed rather than kept idle. */
	curl_easy_setopt(im->curl, CURLOPT_MAXCONNECTS, 1L);
	return im;

nomem:
	imap_seterr(error_r, "imap: out of memory");
	imap_close(im);
	return NULL;
}

void
imap_idle_drop(struct imap *im)
{
	if (im->idle != NULL)
		curl_easy_cleanup(im->idle);
	im->idle = NULL;
	free(im->idle_mailbox);
	im->idle_mailbox = NULL;
	imap_buf_reset(&im->idle_in);
}

void
imap_close(struct imap *im)
{
	if (im == NULL)
		return;
	imap_idle_drop(im);
	imap_buf_free(&im->idle_in);
	for (size_t i = 0; i < im->n_known; i++)
		free(im->known[i]);
	if (im->curl != NULL)
		curl_easy_cleanup(im->curl);
	imap_buf_free(&im->out);
	free(im->ca_file);
	if (im->password != NULL) {
		explicit_bzero(im->password, strlen(im->password));
		free(im->password);
	}
	free(im->user);
	free(im->base);
	free(im);
}

/* Errors after which the same command may well pass on a new connection. */
static int
imap_conn_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_PARTIAL_FILE:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_SSL_CONNECT_ERROR:
		return 1;
	default:
		return 0;
	}
}

void
imap_curl_err(struct imap *im, CURLcode rc, const char *what, const char **error_r)
{
	imap_seterr(error_r, "imap %s: %s%s%s%s%s", what, curl_easy_strerror(rc),
	    im->errbuf[0] != '\0' ? ": " : "", im->errbuf, im->resp[0] != '\0' ? "; server: " : "",
	    im->resp);
}

/*
 * Runs one command: url is "<base>" or "<base>/<mailbox>[;UID=n]", custom the
 * command line or NULL for a fetch. Returns the curl code; *error_r is set on failure.
 */
static CURLcode
imap_perform(
    struct imap *im, const char *url, const char *custom, const char *what, const char **error_r)
{
	CURLcode rc;

	curl_easy_setopt(im->curl, CURLOPT_URL, url);
	curl_easy_setopt(im->curl, CURLOPT_CUSTOMREQUEST, custom);
	for (int attempt = 0; attempt < 2; attempt++) {
		imap_buf_reset(&im->out);
		im->errbuf[0] = '\0';
		im->resp[0] = '\0';
		/* The retry must not land on the connection that just failed. */
		curl_easy_setopt(im->curl, CURLOPT_FRESH_CONNECT, attempt > 0 ? 1L : 0L);
		rc = curl_easy_perform(im->curl);
		if (rc == CURLE_OK || !imap_conn_error(rc) || im->out.oom)
			break;
	}
	curl_easy_setopt(im->curl, CURLOPT_FRESH_CONNECT, 0L);
	if (rc == CURLE_WRITE_ERROR && im->out.oom)
		imap_seterr(error_r, "imap %s: out of memory", what);
	else if (rc != CURLE_OK)
		imap_curl_err(im, rc, what, error_r);
	return rc;
}

/* "<base>/<escaped mailbox>" plus suffix; NULL when out of memory. */
static char *
imap_url(struct imap *im, const char *mailbox, const char *suffix)
{
	char *esc, *url;
	size_t n;

	if ((esc = curl_easy_escape(im->curl, mailbox, 0)) == NULL)
		return NULL;
	n = strlen(im->base) + strlen(esc) + strlen(suffix) + 2;
	if ((url = malloc(n)) != NULL)
		snprintf(url, n, "%s/%s%s", im->base, esc, suffix);
	curl_free(esc);
	return url;
}

/* A command line "<verb> <quoted mailbox><rest>"; NULL when out of memory. */
char *
imap_cmd_mailbox(const char *verb, const char *mailbox, const char *rest)
{
	char *q, *cmd;
	size_t n;

	if ((q = imap_quote(mailbox)) == NULL)
		return NULL;
	n = strlen(verb) + strlen(q) + strlen(rest) + 2;
	if ((cmd = malloc(n)) != NULL)
		snprintf(cmd, n, "%s %s%s", verb, q, rest);
	free(q);
	return cmd;
}

/* The next untagged line of the collected output starting with prefix, or NULL. */
static char *
imap_next_line(char **cursor, const char *prefix, size_t *len_r)
{
	size_t plen = strlen(prefix);
	char *p = *cursor, *nl;

	while (p != NULL && *p != '\0') {
		size_t len;

		nl = strchr(p, '\n');
		len = nl != NULL ? (size_t)(nl - p) : strlen(p);
		*cursor = nl != NULL ? nl + 1 : p + len;
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len >= plen && strncasecmp(p, prefix, plen) == 0) {
			p[len] = '\0';
			*len_r = len;
			return p;
		}
		p = *cursor;
	}
	return NULL;
}

int
imap_parse_u32(const char **pp, uint32_t *v_r)
{
	const char *p = *pp;
	uint64_t v = 0;

	if (*p < '0' || *p > '9')
		return -1;
	while (*p >= '0' && *p <= '9') {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > UINT32_MAX)
			return -1;
		p++;
	}
	*pp = p;
	*v_r = (uint32_t)v;
	return 0;
}

static int
imap_capabilities(struct imap *im, const char **error_r)
{
	char *cursor, *line;
	size_t len;

	if (im->caps_known)
		return 0;
	if (imap_perform(im, im->base, "CAPABILITY", "CAPABILITY", error_r) != CURLE_OK)
		return -1;
	cursor = im->out.data;
	if ((line = imap_next_line(&cursor, "* CAPABILITY ", &len)) == NULL) {
		imap_seterr(error_r, "imap CAPABILITY: no capability list in the answer");
		return -1;
	}
	/* Each capability is matched as a whole word. */
	for (char *tok = strtok(line + 13, " "); tok != NULL; tok = strtok(NULL, " ")) {
		if (strcasecmp(tok, "MOVE") == 0)
			im->has_move = 1;
		else if (strcasecmp(tok, "ESEARCH") == 0)
			im->has_esearch = 1;
		else if (strcasecmp(tok, "IDLE") == 0)
			im->has_idle = 1;
	}
	im->caps_known = 1;
	return 0;
}

int
imap_has_idle(struct imap *im, const char **error_r)
{
	if (imap_capabilities(im, error_r) == -1)
		return -1;
	return im->has_idle;
}

int
imap_status(struct imap *im, const char *mailbox, uint32_t *uidvalidity_r, uint32_t *uidnext_r,
    uint32_t *messages_r, const char **error_r)
{
	char *cmd, *cursor, *line, *p;
	uint32_t vals[3] = { 0, 0, 0 };
	int seen = 0;
	size_t len;

	if (!imap_safe(mailbox)) {
		imap_seterr(error_r, "imap STATUS: bad mailbox name");
		return -1;
	}
	if ((cmd = imap_cmd_mailbox("STATUS", mailbox, " (UIDVALIDITY UIDNEXT MESSAGES)"))
	    == NULL) {
		imap_seterr(error_r, "imap STATUS: out of memory");
		return -1;
	}
	/* On the base URL: a mailbox in the URL would make libcurl SELECT it first. */
	if (imap_perform(im, im->base, cmd, "STATUS", error_r) != CURLE_OK) {
		free(cmd);
		return -1;
	}
	free(cmd);
	cursor = im->out.data;
	while ((line = imap_next_line(&cursor, "* STATUS ", &len)) != NULL) {
		/* The name may be quoted and hold anything but the item list is last. */
		if ((p = strrchr(line, '(')) == NULL)
			continue;
		p++;
		while (*p != '\0' && *p != ')') {
			const char *name = p, *q;
			uint32_t v;
			int k;

			while (*p != '\0' && *p != ' ' && *p != ')')
				p++;
			if (*p != ' ')
				break;
			k = strncasecmp(name, "UIDVALIDITY ", 12) == 0 ? 0
			    : strncasecmp(name, "UIDNEXT ", 8) == 0    ? 1
			    : strncasecmp(name, "MESSAGES ", 9) == 0   ? 2
			                                               : -1;
			q = ++p;
			if (imap_parse_u32(&q, &v) == -1)
				break;
			p = (char *)q;
			if (k >= 0) {
				vals[k] = v;
				seen |= 1 << k;
			}
			while (*p == ' ')
				p++;
		}
	}
	if (seen != 7) {
		imap_seterr(error_r, "imap STATUS: incomplete answer");
		return -1;
	}
	*uidvalidity_r = vals[0];
	*uidnext_r = vals[1];
	*messages_r = vals[2];
	return 0;
}

static int
imap_uid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int
imap_uids_add(uint32_t **uids, size_t *n, size_t *cap, uint32_t v)
{
	if (*n == *cap) {
		size_t ncap = *cap == 0 ? 64 : *cap * 2;
		uint32_t *u = reallocarray(*uids, ncap, sizeof(**uids));

		if (u == NULL)
			return -1;
		*uids = u;
		*cap = ncap;
	}
	(*uids)[(*n)++] = v;
	return 0;
}

/* Reads "1:3,7" (ESEARCH) or "1 2 3" (SEARCH) into uids. */
static int
imap_parse_uids(const char *p, int sets, uint32_t **uids, size_t *n, size_t *cap)
{
	while (*p != '\0') {
		uint32_t a, b;

		if (*p == ' ' || *p == ',') {
			p++;
			continue;
		}
		if (imap_parse_u32(&p, &a) == -1)
			return -1;
		b = a;
		if (sets && *p == ':') {
			p++;
			if (imap_parse_u32(&p, &b) == -1)
				return -1;
			if (b < a) {
				uint32_t t = a;
				a = b;
				b = t;
			}
		}
		for (uint64_t u = a; u <= b; u++)
			if (imap_uids_add(uids, n, cap, (uint32_t)u) == -1)
				return -1;
	}
	return 0;
}

int
imap_search(struct imap *im, const char *mailbox, const char *criteria, uint32_t **uids_r,
    size_t *n_r, const char **error_r)
{
	char *url = NULL, *cmd = NULL, *cursor, *line;
	uint32_t *uids = NULL;
	size_t n = 0, cap = 0, len, clen;
	int ret = -1;

	*uids_r = NULL;
	*n_r = 0;
	if (!imap_safe(mailbox) || !imap_safe(criteria)) {
		imap_seterr(error_r, "imap SEARCH: bad mailbox name or criteria");
		return -1;
	}
	if (imap_capabilities(im, error_r) == -1)
		return -1;
	clen = strlen(criteria) + 32;
	if ((url = imap_url(im, mailbox, "")) == NULL || (cmd = malloc(clen)) == NULL) {
		imap_seterr(error_r, "imap SEARCH: out of memory");
		goto out;
	}
	/*
	 * A selected mailbox's view only takes in new mail when a command ends, and a
	 * SEARCH runs on the view it started with: a NOOP first, so that mail another
	 * connection (IDLE) has just seen is searched too.
	 */
	if (imap_perform(im, url, "NOOP", "NOOP", error_r) != CURLE_OK)
		goto out;
	/* ESEARCH answers with ranges: one short line even for a large mailbox. */
	snprintf(cmd, clen, "UID SEARCH %s%s", im->has_esearch ? "RETURN (ALL) " : "", criteria);
	if (imap_perform(im, url, cmd, "SEARCH", error_r) != CURLE_OK)
		goto out;
	cursor = im->out.data;
	while ((line = imap_next_line(&cursor, "* ", &len)) != NULL) {
		const char *p;

		if (strncasecmp(line, "* SEARCH", 8) == 0 && (line[8] == ' ' || line[8] == '\0')) {
			if (imap_parse_uids(line + 8, 0, &uids, &n, &cap) == -1)
				goto bad;
		} else if (strncasecmp(line, "* ESEARCH ", 10) == 0) {
			/* "* ESEARCH (TAG "A5") UID ALL 1:3,5"; no ALL when nothing matched. */
			if ((p = strstr(line, " ALL ")) == NULL)
				continue;
			if (imap_parse_uids(p + 5, 1, &uids, &n, &cap) == -1)
				goto bad;
		}
	}
	if (n > 1) {
		size_t j = 0;

		qsort(uids, n, sizeof(*uids), imap_uid_cmp);
		for (size_t i = 0; i < n; i++)
			if (j == 0 || uids[j - 1] != uids[i])
				uids[j++] = uids[i];
		n = j;
	}
	*uids_r = uids;
	*n_r = n;
	uids = NULL;
	ret = 0;
	goto out;
bad:
	imap_seterr(error_r, "imap SEARCH: unparseable answer or out of memory");
out:
	free(uids);
	free(cmd);
	free(url);
	return ret;
}

int
imap_fetch(struct imap *im, const char *mailbox, uint32_t uid, char **data_r, size_t *len_r,
    const char **error_r)
{
	char suffix[32], *url, *data;
	CURLcode rc;

	*data_r = NULL;
	*len_r = 0;
	if (!imap_safe(mailbox)) {
		imap_seterr(error_r, "imap FETCH: bad mailbox name");
		return -1;
	}
	snprintf(suffix, sizeof(suffix), ";UID=%" PRIu32, uid);
	if ((url = imap_url(im, mailbox, suffix)) == NULL) {
		imap_seterr(error_r, "imap FETCH: out of memory");
		return -1;
	}
	/*
	 * No custom request: libcurl then sends "UID FETCH n BODY[]", and skips the
	 * SELECT when the cached connection has this mailbox selected already.
	 */
	rc = imap_perform(im, url, NULL, "FETCH", error_r);
	free(url);
	if (rc == CURLE_REMOTE_FILE_NOT_FOUND)
		return 1;
	if (rc != CURLE_OK)
		return -1;
	/* The caller owns the buffer; the next fetch starts a new one. */
	if (im->out.data == NULL) {
		if ((data = malloc(1)) == NULL) {
			imap_seterr(error_r, "imap FETCH: out of memory");
			return -1;
		}
		data[0] = '\0';
	} else {
		data = im->out.data;
		if (im->out.cap > 4 * (im->out.len + 1)) {
			char *shrunk = realloc(data, im->out.len + 1);

			if (shrunk != NULL)
				data = shrunk;
		}
	}
	*data_r = data;
	*len_r = im->out.len;
	memset(&im->out, 0, sizeof(im->out));
	return 0;
}

/*
 * Calls fn for each compact UID set ("1:5,7,9:12") of at most IMAP_SET_MAX
 * characters covering uids. Returns -1 as soon as fn fails.
 */
static int
imap_for_sets(struct imap *im, const uint32_t *uids, size_t n,
    int (*fn)(struct imap *, const char *, void *, const char **), void *arg, const char **error_r)
{
	uint32_t *s;
	char set[IMAP_SET_MAX + 32];
	size_t len = 0, i = 0, m = 0;
	int ret = 0;

	if (n == 0)
		return 0;
	if ((s = malloc(n * sizeof(*s))) == NULL) {
		imap_seterr(error_r, "imap: out of memory");
		return -1;
	}
	memcpy(s, uids, n * sizeof(*s));
	qsort(s, n, sizeof(*s), imap_uid_cmp);
	for (size_t k = 0; k < n; k++)
		if (s[k] != 0 && (m == 0 || s[m - 1] != s[k]))
			s[m++] = s[k];
	while (i < m) {
		size_t j = i;
		char piece[24];
		int plen;

		while (j + 1 < m && s[j + 1] == s[j] + 1)
			j++;
		if (j > i)
			plen = snprintf(piece, sizeof(piece), "%" PRIu32 ":%" PRIu32, s[i], s[j]);
		else
			plen = snprintf(piece, sizeof(piece), "%" PRIu32, s[i]);
		if (len > 0 && len + 1 + (size_t)plen > IMAP_SET_MAX) {
			if ((ret = fn(im, set, arg, error_r)) == -1)
				goto out;
			len = 0;
		}
		if (len > 0)
			set[len++] = ',';
		memcpy(set + len, piece, (size_t)plen + 1);
		len += (size_t)plen;
		i = j + 1;
	}
	if (len > 0)
		ret = fn(im, set, arg, error_r);
out:
	free(s);
	return ret;
}

/* "UID <verb> <set><tail>": the set is the only part built per call. */
struct imap_setcmd {
	const char *url;
	const char *verb; /* "MOVE", "STORE" */
	const char *tail; /* " \"Processed\"", " +FLAGS.SILENT (\\Deleted)" */
	const char *what;
};

static int
imap_setcmd_cb(struct imap *im, const char *set, void *arg, const char **error_r)
{
	struct imap_setcmd *sc = arg;
	size_t n = strlen(sc->verb) + strlen(set) + strlen(sc->tail) + 8;
	char *cmd;
	CURLcode rc;

	if ((cmd = malloc(n)) == NULL) {
		imap_seterr(error_r, "imap %s: out of memory", sc->what);
		return -1;
	}
	snprintf(cmd, n, "UID %s %s%s", sc->verb, set, sc->tail);
	rc = imap_perform(im, sc->url, cmd, sc->what, error_r);
	free(cmd);
	return rc == CURLE_OK ? 0 : -1;
}

static int
imap_setcmd(struct imap *im, const char *mailbox, const uint32_t *uids, size_t n, const char *verb,
    const char *tail, const char *what, const char **error_r)
{
	struct imap_setcmd sc = { NULL, verb, tail, what };
	char *url;
	int ret;

	if ((url = imap_url(im, mailbox, "")) == NULL) {
		imap_seterr(error_r, "imap %s: out of memory", what);
		return -1;
	}
	sc.url = url;
	ret = imap_for_sets(im, uids, n, imap_setcmd_cb, &sc, error_r);
	free(url);
	return ret;
}

int
imap_flag(struct imap *im, const char *mailbox, const uint32_t *uids, size_t n, const char *flag,
    const char **error_r)
{
	if (!imap_safe(mailbox) || !imap_safe(flag) || flag[0] == '\0'
	    || strpbrk(flag, " ()\"") != NULL) {
		imap_seterr(error_r, "imap STORE: bad mailbox name or flag");
		return -1;
	}
	char tail[300];

	snprintf(tail, sizeof(tail), " +FLAGS.SILENT (%s)", flag);
	return imap_setcmd(im, mailbox, uids, n, "STORE", tail, "STORE", error_r);
}

static int
imap_known(struct imap *im, const char *mailbox)
{
	for (size_t i = 0; i < im->n_known; i++)
		if (strcmp(im->known[i], mailbox) == 0)
			return 1;
	return 0;
}

static void
imap_remember(struct imap *im, const char *mailbox)
{
	char *dup;

	if (imap_known(im, mailbox) || (dup = strdup(mailbox)) == NULL)
		return;
	if (im->n_known == IMAP_KNOWN_MAX) {
		free(im->known[0]);
		memmove(im->known, im->known + 1, (IMAP_KNOWN_MAX - 1) * sizeof(im->known[0]));
		im->n_known--;
	}
	im->known[im->n_known++] = dup;
}

static void
imap_forget(struct imap *im, const char *mailbox)
{
	for (size_t i = 0; i < im->n_known; i++) {
		if (strcmp(im->known[i], mailbox) != 0)
			continue;
		free(im->known[i]);
		memmove(
		    im->known + i, im->known + i + 1, (im->n_known - i - 1) * sizeof(im->known[0]));
		im->n_known--;
		return;
	}
}

int
imap_create(struct imap *im, const char *mailbox, const char **error_r)
{
	char *cmd, *cursor;
	size_t len;
	CURLcode rc;

	if (!imap_safe(mailbox) || mailbox[0] == '\0') {
		imap_seterr(error_r, "imap CREATE: bad mailbox name");
		return -1;
	}
	if (imap_known(im, mailbox))
		return 0;
	/*
	 * LIST first: a failed command makes libcurl drop the connection, and
	 * CREATE fails whenever the mailbox exists.
	 */
	if ((cmd = imap_cmd_mailbox("LIST \"\"", mailbox, "")) == NULL) {
		imap_seterr(error_r, "imap LIST: out of memory");
		return -1;
	}
	rc = imap_perform(im, im->base, cmd, "LIST", error_r);
	free(cmd);
	if (rc != CURLE_OK)
		return -1;
	cursor = im->out.data;
	if (imap_next_line(&cursor, "* LIST ", &len) != NULL) {
		imap_remember(im, mailbox);
		return 0;
	}
	if ((cmd = imap_cmd_mailbox("CREATE", mailbox, "")) == NULL) {
		imap_seterr(error_r, "imap CREATE: out of memory");
		return -1;
	}
	rc = imap_perform(im, im->base, cmd, "CREATE", error_r);
	free(cmd);
	/* Another client may have created it since the LIST. */
	if (rc != CURLE_OK && strcasestr(im->resp, "ALREADYEXISTS") == NULL
	    && strcasestr(im->resp, "already exists") == NULL)
		return -1;
	imap_remember(im, mailbox);
	return 0;
}

int
imap_move(struct imap *im, const char *mailbox, const uint32_t *uids, size_t n, const char *dest,
    const char **error_r)
{
	char *qdest, *tail;
	int ret;

	if (!imap_safe(mailbox) || !imap_safe(dest)) {
		imap_seterr(error_r, "imap MOVE: bad mailbox name");
		return -1;
	}
	if (n == 0)
		return 0;
	if (imap_create(im, dest, error_r) == -1 || imap_capabilities(im, error_r) == -1)
		return -1;
	if ((qdest = imap_quote(dest)) == NULL) {
		imap_seterr(error_r, "imap MOVE: out of memory");
		return -1;
	}
	if ((tail = malloc(strlen(qdest) + 2)) == NULL) {
		free(qdest);
		imap_seterr(error_r, "imap MOVE: out of memory");
		return -1;
	}
	snprintf(tail, strlen(qdest) + 2, " %s", qdest);
	if (im->has_move) {
		ret = imap_setcmd(im, mailbox, uids, n, "MOVE", tail, "MOVE", error_r);
	} else {
		ret = imap_setcmd(im, mailbox, uids, n, "COPY", tail, "COPY", error_r);
		if (ret == 0)
			ret = imap_setcmd(im, mailbox, uids, n, "STORE",
			    " +FLAGS.SILENT (\\Deleted)", "STORE", error_r);
		if (ret == 0)
			ret = imap_setcmd(im, mailbox, uids, n, "EXPUNGE", "", "EXPUNGE", error_r);
	}
	free(tail);
	/* Deleted behind our back: the next move creates it again. */
	if (ret == -1 && strcasestr(im->resp, "TRYCREATE") != NULL)
		imap_forget(im, dest);
	free(qdest);
	return ret;
}
