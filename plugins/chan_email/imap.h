/* imap.h: what imap.c (commands) and imap_idle.c (waiting in IDLE) share. */
#ifndef LOKET_CHAN_EMAIL_IMAP_H
#define LOKET_CHAN_EMAIL_IMAP_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

/* UID sets longer than this are sent as several commands; servers cap command lines. */
#define IMAP_SET_MAX 4000
/* libcurl's largest receive buffer; it clips longer response lines (long SEARCH results). */
#define IMAP_RECV_BUFFER (512L * 1024)
#define IMAP_KNOWN_MAX 16

struct imap_buf {
	char *data;
	size_t len;
	size_t cap;
	int oom;
};

struct imap {
	CURL *curl;
	char *base; /* the configured URL without a trailing slash */
	char *user;
	char *password;
	char *ca_file;
	int starttls;
	int verify_tls;
	long timeout_ms;

	char errbuf[CURL_ERROR_SIZE];
	char resp[256]; /* the last tagged response line of the last command */
	struct imap_buf out; /* untagged lines, or the fetched literal */

	int caps_known;
	int has_move;
	int has_esearch;
	int has_idle;

	/* Mailboxes seen to exist, so a move does not CREATE (and fail) each time. */
	char *known[IMAP_KNOWN_MAX];
	size_t n_known;

	/* The IDLE connection stays logged in with idle_mailbox selected between waits. */
	CURL *idle;
	char *idle_mailbox;
	unsigned int idle_tag;
	struct imap_buf idle_in;
};

/* imap.c */
void imap_buf_reset(struct imap_buf *b);
int imap_buf_add(struct imap_buf *b, const void *p, size_t n);
/* Sets *error_r (when error_r is not NULL) to the formatted sentence (email_error). */
void imap_seterr(const char **error_r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t imap_header_cb(char *p, size_t size, size_t n, void *arg);
/* Whether a mailbox name or flag can go into a command (no CR, LF, NUL). */
int imap_safe(const char *s);
/* The options every handle shares: TLS, credentials, timeouts. */
void imap_common_opts(struct imap *im, CURL *h);
void imap_curl_err(struct imap *im, CURLcode rc, const char *what, const char **error_r);
/* "VERB \"mailbox\"rest", quoted; malloc'd. */
char *imap_cmd_mailbox(const char *verb, const char *mailbox, const char *rest);
int imap_parse_u32(const char **pp, uint32_t *v_r);
/* Closes the IDLE connection; the next wait opens a new one. */
void imap_idle_drop(struct imap *im);

#endif
