/*
 * chan_email.h: the email plugin's own state, shared by chan_email.c (load,
 * reload, mailboxes, quarantine list), settings.c (the settings threads
 * read, value checks, TLS rules), intake.c (mailbox threads, submit,
 * acknowledge) and send.c (templates, the sender thread).
 *
 * Threads never call the loket API: they hand their results to the loop
 * through a queue and one event (wake), and the loop answers them.
 */
#ifndef LOKET_CHAN_EMAIL_PLUGIN_H
#define LOKET_CHAN_EMAIL_PLUGIN_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

#include <loket/plugin.h>

#include "email.h"

#define EMAIL_MAILBOXES 8
#define EMAIL_QUARANTINE_KEPT 1000

struct event;
struct chan_email;

enum email_ack {
	EMAIL_ACK_MOVE, /* to the processed folder */
	EMAIL_ACK_FLAG, /* a keyword, the message stays */
};

/* starttls as written; AUTO is require, or try for a server on loopback. */
enum email_starttls {
	EMAIL_STARTTLS_AUTO,
	EMAIL_STARTTLS_NO,
	EMAIL_STARTTLS_TRY,
	EMAIL_STARTTLS_REQUIRE,
};

/*
 * What the threads read of the config: copied from config_get at load and
 * at each reload (the core frees its strings after reload), never changed
 * once built. The loop swaps ce->settings under setmu; a thread takes a
 * reference for one job (a mailbox round, one outgoing mail) and so sees
 * the old settings or the new ones, never freed memory.
 */
struct email_settings {
	unsigned int refs; /* guarded by chan_email.setmu */
	enum email_ack ack;
	char *processed_folder;
	char *quarantine_folder;
	char *flag;
	int idle;
	int64_t poll_ms;
	struct email_limits limits;
	enum email_starttls starttls;
	int insecure_auth; /* AUTH (IMAP LOGIN, SMTP AUTH) may go without TLS */
	int verify_tls;
	char *ca_file; /* NULL: the system's */
	long timeout_ms;
	struct smtp_conf smtp; /* its strings are owned here */
	char *templates_dir;
	char *language;
	char *from_name;
	int64_t ack_per_day;
	int64_t retry_min_ms, retry_max_ms, max_attempts;
};

/* What the loop decided about one fetched mail. */
enum intake_outcome {
	INTAKE_PENDING,
	INTAKE_DONE, /* durable (new, threaded or seen before): acknowledge */
	INTAKE_QUARANTINE, /* move to the quarantine folder */
	INTAKE_RETRY, /* the register could not take it now: leave it */
};

struct mailbox {
	struct chan_email *ce;
	char name[32];
	char *base_url; /* "imap://host:port" */
	char *folder; /* "INBOX" */
	char *user;
	char *password;
	char *organisation;
	char *department;
	char *address; /* what replies come from */
	char *from_name; /* their display name; NULL: the plugin's from_name */
	char *config_line; /* the mailboxN value it was read from: a reload cannot change it */
	pthread_t thread;
	int started;
	int wake[2]; /* a byte here ends an IDLE or a sleep early */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t unresolved; /* mails of the current batch the loop has not answered */
	enum intake_outcome *outcomes; /* the current batch's, by slot */
	int retired; /* under mu: the line left the config on reload; the thread ends */
	/*
	 * Its thread's alone: the lease "mailbox:NAME" that lets one node of
	 * those sharing a register read the mailbox; how long the register
	 * granted it last (0: not held now), and when that was asked
	 * (monotonic).
	 */
	char lease_name[48];
	int64_t lease_ms;
	uint64_t lease_at_ns;
	int lease_known; /* -1: not asked yet; else whether the last answer was held */
};

/*
 * One fetched mail on its way from a mailbox thread to the loop, which owns
 * it from then on; the loop writes its outcome into the thread's batch.
 */
struct intake_item {
	struct mailbox *mb;
	size_t slot; /* index in mb->outcomes */
	uint32_t uid;
	uint32_t uidvalidity;
	struct email_msg *msg; /* NULL: quarantine with error */
	char error[256];
	char raw_sha256[65]; /* of a mail that did not parse */
	size_t raw_size;
	int without_party; /* resubmitted without the sender as party */
	/* 1: a log line from the thread, in error; 2: the mailbox health, 3: its lease, in up */
	int is_log;
	int up;
	enum loket_log_level level;
	struct intake_item *next;
};

struct send_job {
	struct loket_outbound *o;
	char *item_json;
	enum loket_send_result result;
	char error[256];
	uint64_t retry_ms;
	char *sent_json;
	struct send_job *next;
};

struct chan_email {
	const struct loket_api *api;
	struct loket_plugin *self;
	struct mailbox mailboxes[EMAIL_MAILBOXES];
	size_t nmailboxes;
	pthread_mutex_t setmu; /* guards settings (the pointer) and every settings' refs */
	struct email_settings *settings; /* the current ones; replaced by reload */
	char quarantine_path[4200];
	json_t *quarantine; /* the newest EMAIL_QUARANTINE_KEPT entries, oldest first */
	struct event *wake_ev;
	pthread_mutex_t qmu; /* guards the two queues below and stopping */
	struct intake_item *in_head, *in_tail;
	struct send_job *done_head, *done_tail;
	int stopping; /* set under qmu: from then on no thread queues or wakes the loop */
	int abandoned; /* a thread did not stop in time: ce stays allocated */
	int intake_abandoned; /* ... and it was a mailbox thread (it may be in GMime or libcurl) */
	/* the sender */
	pthread_t sender;
	int sender_started;
	pthread_cond_t scv;
	struct send_job *send_head, *send_tail;
};

/* chan_email.c */
/* Wakes the loop to drain the queues; threads call it holding qmu, unless stopping. */
void chan_email_wake(struct chan_email *ce);
/* Joins a thread, waiting at most 3 s; -1 (and ce->abandoned) when it did not end. */
int chan_email_join(struct chan_email *ce, pthread_t thread, const char *what);
/* A mail that could not be parsed or was over a limit: log, metric, the API's list. */
void chan_email_quarantined(struct chan_email *ce, struct intake_item *it);

/* settings.c */
/* New settings from the config (one reference, the caller's); NULL with *error_r. */
struct email_settings *settings_new(struct chan_email *ce, const char **error_r);
/* A reference to the current settings, for one job; let go of it with settings_put. */
struct email_settings *settings_get(struct chan_email *ce);
void settings_put(struct chan_email *ce, struct email_settings *set);
/* The descriptor's check_value: NULL, or what is wrong with a value of key. */
const char *settings_check_value(const char *key, const char *value);
/* Whether an IMAP session opened under a must be opened again under b. */
int settings_imap_changed(const struct email_settings *a, const struct email_settings *b);
/* A mailbox's IMAP connection under set; cf_r's strings are borrowed from mb and set. */
void settings_imap_conf(
    const struct mailbox *mb, const struct email_settings *set, struct imap_conf *cf_r);
/* The first line of a file (a password), malloc'd; NULL with *error_r. */
char *settings_read_secret(const char *path, const char **error_r);

/* intake.c */
int intake_start(struct chan_email *ce, const char **error_r);
void intake_stop(struct chan_email *ce);
/*
 * Ends the thread of a mailbox whose line left the config (reload): it
 * stops before its next fetch and gives its lease back. Loop thread.
 */
void intake_retire(struct chan_email *ce, struct mailbox *mb);
/* The loop takes a queued item over: submits it, or answers it. */
void intake_take(struct chan_email *ce, struct intake_item *it);
/* Drops an item the loop will not handle (unload). */
void intake_item_free(struct intake_item *it);

/* send.c */
int send_start(struct chan_email *ce, const char **error_r);
void send_stop(struct chan_email *ce);
void send_outbound_cb(struct loket_outbound *o, const char *item_json, void *arg);
/* Renders a template file's text with the item's values ("{{reference}}"); malloc'd. */
char *send_render(const char *text, json_t *vars);

#endif
