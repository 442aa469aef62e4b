/*
 * email.h: the email channel's parts, each in its own file:
 *   mime.c       parse a raw message with GMime 3 (mime_walk.c the MIME tree,
 *                mime_text.c the text, mime_headers.c the header fields,
 *                mime_attach.c attachments and blobs, mime_html.c HTML to text);
 *                mime_compose.c composes an outgoing one
 *   email_error.c the plugin's error sentences (const char **error_r)
 *   imap.c       a blocking IMAP session over libcurl (runs on an intake thread)
 *   smtp.c       a blocking SMTP submission over libesmtp (runs on the sender thread)
 *   chan_email.c the plugin: config, intake threads, submit, acknowledge, outbox sender
 *   settings.c   the settings the threads read, copied at load and reload
 * Nothing here touches the event loop except chan_email.c.
 */
#ifndef LOKET_CHAN_EMAIL_H
#define LOKET_CHAN_EMAIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---- email_error.c --------------------------------------------------------------------- */

/*
 * The plugin's one error convention, core/lib's util_error made its own (a
 * plugin cannot link core/lib): a function that fails returns -1 and sets
 * const char **error_r to a sentence the caller does not free. It lives in
 * one of EMAIL_ERROR_SLOTS thread-local buffers, valid until this thread
 * formats that many more; whoever keeps it longer copies it.
 */
#define EMAIL_ERROR_SLOTS 8
#define EMAIL_ERROR_MAX 1024
const char *email_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *email_verror(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* ---- mime.c ---------------------------------------------------------------------------- */

struct email_addr {
	char *name; /* decoded display name, UTF-8; NULL when absent */
	char *addr; /* "user@example.be"; NULL when absent or unparseable */
};

struct email_attachment {
	char *filename; /* decoded (RFC 2231/2047), path separators removed; never NULL */
	char *content_type; /* "application/pdf" */
	char sha256[65]; /* lower-case hex; the bytes are the register's blob of that name */
	size_t size; /* decoded size in bytes */
};

struct email_limits {
	size_t max_message; /* raw size; larger: quarantine */
	size_t max_attachment; /* one decoded attachment; larger: quarantine */
	size_t max_total; /* all decoded attachments together */
	unsigned int max_depth; /* MIME nesting */
	unsigned int max_addresses; /* To + Cc addresses, and header count guard */
	/*
	 * Keeps bytes by SHA-256 (the register's blob_put; may run on any
	 * thread): 0, or -1 with a sentence in *error_r. NULL: nothing is stored,
	 * the hashes are still computed.
	 */
	int (*blob_put)(
	    void *arg, const void *data, size_t len, char sha256_hex[65], const char **error_r);
	void *blob_arg;
};

struct email_msg {
	struct email_addr from;
	struct email_addr *to;
	size_t n_to;
	struct email_addr *cc;
	size_t n_cc;
	char *reply_to; /* address only; NULL when absent */
	char *return_path; /* address only; "" when the header is "<>"; NULL when absent */
	char *subject; /* decoded, UTF-8, CR/LF folded to spaces; "" when absent */
	char *body; /* UTF-8 text: text/plain preferred, else HTML converted to text */
	int body_from_html;
	char *message_id; /* without angle brackets; NULL when absent */
	char *in_reply_to; /* without angle brackets; NULL when absent */
	char **references; /* without angle brackets */
	size_t n_references;
	char *token; /* "2026-000123" from "[loket 2026-000123]" in the subject; NULL */
	const char *auto_reason; /* static string when automatic mail ("auto-submitted",
	                            "precedence", "x-autoreply", "x-auto-response-suppress",
	                            "return-path", "mailer-daemon", "list-id", "bounce",
	                            "list-request", "list-owner", "x-mailman"); NULL */
	int64_t date_ms; /* Date header as Unix ms; 0 when absent or unparseable */
	struct email_attachment *attachments;
	size_t n_attachments;
	char raw_sha256[65]; /* the raw message, kept as a blob like an attachment */
	size_t raw_size;
	/*
	 * The raw message without the trace fields servers put on top of it on the
	 * way (Received, Return-Path, Delivered-To, ...): the same for one mail
	 * delivered to two mailboxes, different for any two mails that differ.
	 */
	char mail_sha256[65];
};

/*
 * Parses raw bytes (CRLF or LF) into *msg_r. Returns 0, or -1 with a message a
 * person can read in *error_r when the mail must be quarantined (unparseable, over
 * a limit). Never logs personal data. Thread-safe after email_mime_init().
 */
int email_parse(const char *raw, size_t len, const struct email_limits *lim,
    struct email_msg **msg_r, const char **error_r);
void email_msg_free(struct email_msg *m);

struct email_out_attachment {
	const char *filename;
	const char *content_type;
	const void *data; /* the bytes (a blob, read through loket_api.blob_get) */
	size_t len;
};

struct email_out {
	const char *from_name, *from_addr;
	const char *to_name, *to_addr;
	const char *subject; /* CR/LF become spaces; encoded-words as needed */
	const char *body; /* text/plain; charset=utf-8 */
	const char *message_id; /* without brackets */
	const char *in_reply_to; /* without brackets; NULL: none */
	const char *references; /* space-separated ids without brackets; NULL: none */
	const char *auto_submitted; /* "auto-replied", "auto-generated" or NULL */
	const char *reference; /* loket reference, sent as X-Loket-Reference */
	const struct email_out_attachment *attachments;
	size_t n_attachments;
	int64_t date_ms;
};

/*
 * Builds the message with GMime (CRLF line ends). No field can add a header:
 * CR and LF in names and subjects become spaces, an address with them is refused.
 */
int email_compose(const struct email_out *o, char **data_r, size_t *len_r, const char **error_r);

void email_mime_init(void);
void email_mime_shutdown(void);

/* ---- imap.c ---------------------------------------------------------------------------- */

struct imap_conf {
	const char *url; /* "imap://127.0.0.1:1143" or "imaps://host" (no mailbox) */
	const char *user;
	const char *password;
	int starttls; /* 0: never, 1: when offered, 2: required */
	int verify_tls; /* verify peer and host name */
	const char *ca_file; /* NULL: system store */
	long timeout_ms; /* connect and per-command */
};

struct imap;

/* Opens (and logs in lazily on first command); NULL with *error_r on a bad URL. */
struct imap *imap_open(const struct imap_conf *cf, const char **error_r);
void imap_close(struct imap *im);
/* Returns 0, or -1 with *error_r. Each command reconnects on its own after a dropped connection. */
int imap_status(struct imap *im, const char *mailbox, uint32_t *uidvalidity_r, uint32_t *uidnext_r,
    uint32_t *messages_r, const char **error_r);
/* UID SEARCH criteria ("ALL", "UNKEYWORD $Loket") in mailbox; *uids_r malloc'd, ascending. */
int imap_search(struct imap *im, const char *mailbox, const char *criteria, uint32_t **uids_r,
    size_t *n_r, const char **error_r);
/* The whole message, BODY.PEEK[] or BODY[]; *data_r malloc'd. 1 when the UID is gone. */
int imap_fetch(struct imap *im, const char *mailbox, uint32_t uid, char **data_r, size_t *len_r,
    const char **error_r);
/* +FLAGS (flag) on the UIDs. */
int imap_flag(struct imap *im, const char *mailbox, const uint32_t *uids, size_t n,
    const char *flag, const char **error_r);
/* UID MOVE to dest (creates dest when missing); falls back to COPY + \Deleted + UID EXPUNGE. */
int imap_move(struct imap *im, const char *mailbox, const uint32_t *uids, size_t n,
    const char *dest, const char **error_r);
/* Creates a mailbox; an existing one is not an error. */
int imap_create(struct imap *im, const char *mailbox, const char **error_r);
/* 1 when the server's CAPABILITY lists IDLE, 0 when not, -1 on error. */
int imap_has_idle(struct imap *im, const char **error_r);
/*
 * Waits on a second connection in IDLE for news in mailbox (EXISTS/RECENT) up to
 * timeout_ms. Returns 1 on news, 0 on timeout, -1 with *error_r. stop_fd (or -1): a
 * readable fd ends the wait early with 0 (the plugin's wake-up pipe).
 */
int imap_idle_wait(
    struct imap *im, const char *mailbox, long timeout_ms, int stop_fd, const char **error_r);

/* ---- smtp.c ---------------------------------------------------------------------------- */

struct smtp_conf {
	const char *host;
	const char *port; /* "25", "587" */
	int starttls; /* 0: never, 1: when offered, 2: required */
	int verify_tls;
	const char *user; /* NULL: no AUTH */
	const char *password;
	const char *helo; /* NULL: the host name */
	long timeout_ms;
};

/*
 * Sends data (a complete message, CRLF or LF line ends) to rcpts. Returns 0
 * when the server accepted every recipient and the data, else -1 with *error_r
 * and *permanent_r = 1 for a 5xx answer (do not retry), 0 for anything that
 * may pass later (connection refused, 4xx, timeout).
 */
int smtp_send(const struct smtp_conf *cf, const char *mail_from, const char *const *rcpts,
    size_t n_rcpts, const char *data, size_t len, int *permanent_r, const char **error_r);
/*
 * Lets go of what libESMTP keeps for the whole process (the SASL modules AUTH
 * loaded), once no smtp_send runs or will run: when the sender has stopped.
 */
void smtp_cleanup(void);

#endif
