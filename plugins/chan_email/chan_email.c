/*
 * chan_email.c: the email channel plugin: its config, the mailboxes it reads,
 * the loop's side of the queues, the quarantine list and its API route.
 */
#include "config.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chan_email.h"

static const struct loket_config_key email_keys[] = {
	{ "mailbox1", LOKET_CONFIG_STRING, "",
	    "a mailbox to read: NAME URL user=U password=P|password_file=F organisation=O "
	    "department=D address=A from_name=\"N\" (mailbox2 .. mailbox8 likewise)" },
	{ "mailbox2", LOKET_CONFIG_STRING, "", "see mailbox1" },
	{ "mailbox3", LOKET_CONFIG_STRING, "", "see mailbox1" },
	{ "mailbox4", LOKET_CONFIG_STRING, "", "see mailbox1" },
	{ "mailbox5", LOKET_CONFIG_STRING, "", "see mailbox1" },
	{ "mailbox6", LOKET_CONFIG_STRING, "", "see mailbox1" },
	{ "mailbox7", LOKET_CONFIG_STRING, "", "see mailbox1" },
	{ "mailbox8", LOKET_CONFIG_STRING, "", "see mailbox1" },
	{ "acknowledge", LOKET_CONFIG_STRING, "move",
	    "what marks a mail as registered on the server: move (to processed_folder) or flag" },
	{ "processed_folder", LOKET_CONFIG_STRING, "Processed", "where registered mail goes" },
	{ "quarantine_folder", LOKET_CONFIG_STRING, "Quarantine",
	    "where mail that cannot be registered goes, bytes untouched" },
	{ "flag", LOKET_CONFIG_STRING, "$Loket", "the keyword set when acknowledge = flag" },
	{ "idle", LOKET_CONFIG_BOOL, "yes", "wait with IMAP IDLE where the server offers it" },
	{ "poll", LOKET_CONFIG_DURATION, "60s",
	    "how often to look without IDLE (and the longest IDLE)" },
	{ "starttls", LOKET_CONFIG_STRING, "auto",
	    "IMAP and SMTP STARTTLS: auto (require, or try for a server on loopback), no, try or "
	    "require (imaps:// is always TLS)" },
	{ "insecure_auth", LOKET_CONFIG_BOOL, "no",
	    "yes: the IMAP and SMTP passwords may be sent without TLS (a test server on loopback)" },
	{ "verify_tls", LOKET_CONFIG_BOOL, "yes", "check the servers' certificates and names" },
	{ "ca_file", LOKET_CONFIG_STRING, "", "CA bundle to check them with; empty: the system's" },
	{ "timeout", LOKET_CONFIG_DURATION, "30s", "connect and command timeout" },
	{ "max_message", LOKET_CONFIG_SIZE, "25m", "a larger mail is quarantined" },
	{ "max_attachment", LOKET_CONFIG_SIZE, "15m", "a larger attachment quarantines its mail" },
	{ "max_attachments_total", LOKET_CONFIG_SIZE, "25m", "all attachments of one mail" },
	{ "max_depth", LOKET_CONFIG_INT, "30", "deepest MIME nesting" },
	{ "max_addresses", LOKET_CONFIG_INT, "500", "most To and Cc addresses" },
	{ "smtp_host", LOKET_CONFIG_STRING, "127.0.0.1", "the submission server" },
	{ "smtp_port", LOKET_CONFIG_STRING, "25", "its port (587 for submission)" },
	{ "smtp_user", LOKET_CONFIG_STRING, "", "AUTH user; empty: no AUTH" },
	{ "smtp_password_file", LOKET_CONFIG_STRING, "", "a file holding the AUTH password" },
	{ "from_name", LOKET_CONFIG_STRING, "", "the display name replies come from" },
	{ "templates", LOKET_CONFIG_STRING, SYSCONFDIR "/loket/templates",
	    "the folder of reply templates (NAME.LANG.txt)" },
	{ "language", LOKET_CONFIG_STRING, "nl", "template language when the contact has none" },
	{ "ack_per_day", LOKET_CONFIG_INT, "5",
	    "most automatic messages one address gets a day (loop guard)" },
	{ "retry_min", LOKET_CONFIG_DURATION, "30s", "first wait before sending again" },
	{ "retry_max", LOKET_CONFIG_DURATION, "1h", "longest wait between attempts" },
	{ "max_attempts", LOKET_CONFIG_INT, "50", "attempts before a message is given up" },
	{ NULL, 0, NULL, NULL },
};

void
chan_email_wake(struct chan_email *ce)
{
	event_active(ce->wake_ev, EV_READ, 0);
}

int
chan_email_join(struct chan_email *ce, pthread_t thread, const char *what)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 3;
	if (pthread_timedjoin_np(thread, NULL, &ts) == 0)
		return 0;
	/* A server that does not answer must not hold up the stop; nothing it does is lost. */
	ce->api->log(ce->self, LOKET_LOG_WARN,
	    "%s still waits for its mail server; stopping without it", what);
	ce->abandoned = 1;
	/*
	 * The thread returns into this plugin's code when its server answers or
	 * times out, which may be while the process exits: keep the plugin mapped
	 * (loketd's dlclose at unload then leaves it in place).
	 */
	{
		Dl_info self;

		if (dladdr((void *)chan_email_join, &self) != 0 && self.dli_fname != NULL)
			(void)dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
	}
	return -1;
}

static void
email_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct chan_email *ce = arg;
	struct intake_item *items;
	struct send_job *jobs;

	pthread_mutex_lock(&ce->qmu);
	items = ce->in_head;
	jobs = ce->done_head;
	ce->in_head = ce->in_tail = NULL;
	ce->done_head = ce->done_tail = NULL;
	pthread_mutex_unlock(&ce->qmu);
	while (items != NULL) {
		struct intake_item *it = items;

		items = it->next;
		it->next = NULL;
		intake_take(ce, it);
	}
	while (jobs != NULL) {
		struct send_job *j = jobs;

		jobs = j->next;
		ce->api->outbound_done(j->o, j->result, j->error[0] != '\0' ? j->error : NULL,
		    j->retry_ms, j->sent_json);
		free(j->item_json);
		free(j->sent_json);
		free(j);
	}
}

/* Reads a secret from a file: the first line, without its end. */
static char *
email_read_secret(const char *path, const char **error_r)
{
	char buf[512];
	FILE *f = fopen(path, "re");
	size_t n;

	if (f == NULL) {
		*error_r = "cannot read a password_file";
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return strdup(buf);
}

/*
 * The next word of a mailbox line, in place: words are separated by blanks, and a
 * value in double quotes (from_name="OCMW Voorbeeld") keeps its blanks.
 */
static char *
email_token(char **cursor)
{
	char *p = *cursor, *start, *out;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
		return NULL;
	start = out = p;
	for (int quoted = 0; *p != '\0' && (quoted || (*p != ' ' && *p != '\t')); p++) {
		if (*p == '"')
			quoted = !quoted;
		else
			*out++ = *p;
	}
	if (*p != '\0')
		p++;
	*out = '\0';
	*cursor = p;
	return start;
}

/* "info imap://127.0.0.1:1143/INBOX user=... organisation=..." */
static int
email_mailbox_parse(struct chan_email *ce, const char *key, const char *value, const char **error_r)
{
	struct mailbox *mb = &ce->mailboxes[ce->nmailboxes];
	char *copy = strdup(value), *save, *tok, *url, *slash;
	int field = 0;

	if (copy == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	memset(mb, 0, sizeof(*mb));
	mb->ce = ce;
	save = copy;
	while ((tok = email_token(&save)) != NULL) {
		char *eq = strchr(tok, '=');

		if (field == 0) {
			snprintf(mb->name, sizeof(mb->name), "%s", tok);
		} else if (field == 1) {
			url = tok;
			if (strncmp(url, "imap://", 7) != 0 && strncmp(url, "imaps://", 8) != 0) {
				*error_r = "a mailbox URL starts with imap:// or imaps://";
				goto fail;
			}
			slash = strchr(url + (url[4] == 's' ? 8 : 7), '/');
			mb->folder
			    = strdup(slash != NULL && slash[1] != '\0' ? slash + 1 : "INBOX");
			if (slash != NULL)
				*slash = '\0';
			mb->base_url = strdup(url);
		} else if (eq == NULL) {
			*error_r = "expected key=value after a mailbox's URL";
			goto fail;
		} else {
			*eq++ = '\0';
			if (strcmp(tok, "user") == 0)
				mb->user = strdup(eq);
			else if (strcmp(tok, "password") == 0)
				mb->password = strdup(eq);
			else if (strcmp(tok, "password_file") == 0) {
				if ((mb->password = email_read_secret(eq, error_r)) == NULL)
					goto fail;
			} else if (strcmp(tok, "organisation") == 0)
				mb->organisation = strdup(eq);
			else if (strcmp(tok, "department") == 0)
				mb->department = strdup(eq);
			else if (strcmp(tok, "address") == 0)
				mb->address = strdup(eq);
			else if (strcmp(tok, "from_name") == 0)
				mb->from_name = strdup(eq);
			else {
				*error_r = "unknown mailbox setting; expected user, password, "
				           "password_file, organisation, department or address";
				goto fail;
			}
		}
		field++;
	}
	free(copy);
	if (field < 2 || mb->base_url == NULL || mb->user == NULL || mb->password == NULL) {
		*error_r = "a mailbox needs NAME URL user=... and password= or password_file=";
		return -1;
	}
	(void)key;
	if (mb->address == NULL)
		mb->address = strdup(strchr(mb->user, '@') != NULL ? mb->user : "loket@localhost");
	ce->nmailboxes++;
	return 0;
fail:
	free(copy);
	return -1;
}

static int
email_starttls_parse(const char *v, enum email_starttls *tls_r)
{
	if (strcmp(v, "auto") == 0)
		*tls_r = EMAIL_STARTTLS_AUTO;
	else if (strcmp(v, "no") == 0)
		*tls_r = EMAIL_STARTTLS_NO;
	else if (strcmp(v, "try") == 0)
		*tls_r = EMAIL_STARTTLS_TRY;
	else if (strcmp(v, "require") == 0)
		*tls_r = EMAIL_STARTTLS_REQUIRE;
	else
		return -1;
	return 0;
}

/*
 * RFC 3501 flag-keyword: an atom, one or more CHARs (0x01-0x7f) that are
 * not atom-specials: "(" ")" "{" SP CTL "%" "*" DQUOTE "\" "]". The keyword
 * goes into STORE and SEARCH commands unquoted; anything else would end or
 * change the command.
 */
static int
email_is_atom(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return 0;
	}
	return 1;
}

/* The core calls this for every value of [plugin.chan_email], with file:line on a refusal. */
static const char *
email_check_value(const char *key, const char *value)
{
	enum email_starttls tls;

	if (strcmp(key, "flag") == 0 && !email_is_atom(value))
		return "expected an IMAP keyword such as $Loket (an atom: no spaces, control "
		       "characters or any of ( ) { % * \" \\ ])";
	if (strcmp(key, "acknowledge") == 0 && strcmp(value, "move") != 0 &&
	    strcmp(value, "flag") != 0)
		return "expected move or flag";
	if (strcmp(key, "starttls") == 0 && email_starttls_parse(value, &tls) < 0)
		return "expected auto, no, try or require";
	if ((strcmp(key, "processed_folder") == 0 || strcmp(key, "quarantine_folder") == 0) &&
	    *value == '\0')
		return "expected a folder name";
	return NULL;
}

/* Whether host (len bytes, an IPv6 literal without its brackets) is this machine. */
static int
email_loopback(const char *host, size_t len)
{
	char buf[64];
	struct in_addr a4;
	struct in6_addr a6;

	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, host, len);
	buf[len] = '\0';
	if (strcasecmp(buf, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, buf, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, buf, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

/* The host of "imap://host:port" or "imaps://[::1]:993" is on loopback. */
static int
email_url_loopback(const char *url)
{
	const char *h = strstr(url, "://"), *end;

	if (h == NULL)
		return 0;
	h += 3;
	if (*h == '[') {
		h++;
		end = strchr(h, ']');
	} else {
		end = h + strcspn(h, ":/");
	}
	return end != NULL && email_loopback(h, (size_t)(end - h));
}

/*
 * What STARTTLS means for one connection: auto is require, except to a
 * server on loopback (try); and a connection that authenticates requires
 * TLS unless the admin wrote insecure_auth = yes, so a machine in the
 * middle that strips STARTTLS gets a failed connection, not a password.
 * Returns the imap_conf / smtp_conf value: 0 never, 1 when offered, 2 required.
 */
static int
email_tls_mode(const struct email_settings *set, int loopback, int authenticates)
{
	enum email_starttls t = set->starttls;

	if (t == EMAIL_STARTTLS_AUTO)
		t = loopback ? EMAIL_STARTTLS_TRY : EMAIL_STARTTLS_REQUIRE;
	if (authenticates && !set->insecure_auth && t == EMAIL_STARTTLS_TRY)
		t = EMAIL_STARTTLS_REQUIRE;
	return t == EMAIL_STARTTLS_NO ? 0 : t == EMAIL_STARTTLS_TRY ? 1 : 2;
}

void
chan_email_imap_conf(
    const struct mailbox *mb, const struct email_settings *set, struct imap_conf *cf_r)
{
	memset(cf_r, 0, sizeof(*cf_r));
	cf_r->url = mb->base_url;
	cf_r->user = mb->user;
	cf_r->password = mb->password;
	/* IMAP always logs in. */
	cf_r->starttls = email_tls_mode(set, email_url_loopback(mb->base_url), 1);
	cf_r->verify_tls = set->verify_tls;
	cf_r->ca_file = set->ca_file;
	cf_r->timeout_ms = set->timeout_ms;
}

int
chan_email_imap_changed(const struct email_settings *a, const struct email_settings *b)
{
	if (a == b)
		return 0;
	return a->starttls != b->starttls || a->insecure_auth != b->insecure_auth ||
	    a->verify_tls != b->verify_tls || a->timeout_ms != b->timeout_ms ||
	    (a->ca_file == NULL) != (b->ca_file == NULL) ||
	    (a->ca_file != NULL && strcmp(a->ca_file, b->ca_file) != 0);
}

struct email_settings *
chan_email_settings_get(struct chan_email *ce)
{
	struct email_settings *set;

	pthread_mutex_lock(&ce->setmu);
	set = ce->settings;
	set->refs++;
	pthread_mutex_unlock(&ce->setmu);
	return set;
}

static void
email_settings_free(struct email_settings *set)
{
	if (set == NULL)
		return;
	free(set->processed_folder);
	free(set->quarantine_folder);
	free(set->flag);
	free(set->ca_file);
	free((char *)set->smtp.host);
	free((char *)set->smtp.port);
	free((char *)set->smtp.user);
	if (set->smtp.password != NULL) {
		explicit_bzero((char *)set->smtp.password, strlen(set->smtp.password));
		free((char *)set->smtp.password);
	}
	free(set->templates_dir);
	free(set->language);
	free(set->from_name);
	free(set);
}

void
chan_email_settings_put(struct chan_email *ce, struct email_settings *set)
{
	int last;

	if (set == NULL)
		return;
	pthread_mutex_lock(&ce->setmu);
	last = --set->refs == 0;
	pthread_mutex_unlock(&ce->setmu);
	if (last)
		email_settings_free(set);
}

/* A copy of a config value, or NULL for an empty one when empty_is_null. */
static int
email_dup(const struct chan_email *ce, const char *key, int empty_is_null, char **out_r)
{
	const char *v = ce->api->config_get(ce->self, key);

	*out_r = NULL;
	if (v == NULL || (empty_is_null && *v == '\0'))
		return 0;
	return (*out_r = strdup(v)) != NULL ? 0 : -1;
}

/* Reads the config into new settings (one reference, the caller's); NULL with *error_r. */
static struct email_settings *
email_settings_new(struct chan_email *ce, const char **error_r)
{
	const struct loket_api *api = ce->api;
	struct loket_plugin *self = ce->self;
	struct email_settings *set = calloc(1, sizeof(*set));
	const char *pwfile = api->config_get(self, "smtp_password_file");
	char *host = NULL, *port = NULL, *user = NULL;

	if (set == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	set->refs = 1;
	/* check_value refused anything else before load and before a reload. */
	set->ack = strcmp(api->config_get(self, "acknowledge"), "flag") == 0 ? EMAIL_ACK_FLAG
	                                                                      : EMAIL_ACK_MOVE;
	if (email_starttls_parse(api->config_get(self, "starttls"), &set->starttls) < 0) {
		*error_r = "starttls: expected auto, no, try or require";
		goto fail;
	}
	if (!email_is_atom(api->config_get(self, "flag"))) {
		*error_r = "flag: expected an IMAP keyword such as $Loket";
		goto fail;
	}
	set->insecure_auth = api->config_get_int(self, "insecure_auth") != 0;
	set->idle = api->config_get_int(self, "idle") != 0;
	set->poll_ms = api->config_get_int(self, "poll");
	set->limits.max_message = (size_t)api->config_get_int(self, "max_message");
	set->limits.max_attachment = (size_t)api->config_get_int(self, "max_attachment");
	set->limits.max_total = (size_t)api->config_get_int(self, "max_attachments_total");
	set->limits.max_depth = (unsigned int)api->config_get_int(self, "max_depth");
	set->limits.max_addresses = (unsigned int)api->config_get_int(self, "max_addresses");
	set->limits.blob_dir = ce->blob_dir;
	set->limits.defer_sync = 1;
	set->verify_tls = api->config_get_int(self, "verify_tls") != 0;
	set->timeout_ms = (long)api->config_get_int(self, "timeout");
	set->ack_per_day = api->config_get_int(self, "ack_per_day");
	set->retry_min_ms = api->config_get_int(self, "retry_min");
	set->retry_max_ms = api->config_get_int(self, "retry_max");
	set->max_attempts = api->config_get_int(self, "max_attempts");
	if (email_dup(ce, "processed_folder", 0, &set->processed_folder) < 0 ||
	    email_dup(ce, "quarantine_folder", 0, &set->quarantine_folder) < 0 ||
	    email_dup(ce, "flag", 0, &set->flag) < 0 ||
	    email_dup(ce, "ca_file", 1, &set->ca_file) < 0 ||
	    email_dup(ce, "templates", 0, &set->templates_dir) < 0 ||
	    email_dup(ce, "language", 0, &set->language) < 0 ||
	    email_dup(ce, "from_name", 0, &set->from_name) < 0 ||
	    email_dup(ce, "smtp_host", 0, &host) < 0 || email_dup(ce, "smtp_port", 0, &port) < 0 ||
	    email_dup(ce, "smtp_user", 1, &user) < 0) {
		free(host);
		free(port);
		free(user);
		*error_r = "out of memory";
		goto fail;
	}
	set->smtp.host = host;
	set->smtp.port = port;
	set->smtp.user = user;
	set->smtp.timeout_ms = set->timeout_ms;
	set->smtp.verify_tls = set->verify_tls;
	set->smtp.starttls = email_tls_mode(set, email_loopback(host, strlen(host)), user != NULL);
	if (*pwfile != '\0' && (set->smtp.password = email_read_secret(pwfile, error_r)) == NULL)
		goto fail;
	/* Said at start, not found out from a server that was never asked for TLS. */
	if (set->starttls == EMAIL_STARTTLS_NO && !set->insecure_auth) {
		if (user != NULL) {
			*error_r = "starttls = no would send the SMTP password without TLS; use "
			           "starttls = require (or insecure_auth = yes for a test server)";
			goto fail;
		}
		for (size_t i = 0; i < ce->nmailboxes; i++) {
			if (strncmp(ce->mailboxes[i].base_url, "imap://", 7) == 0) {
				*error_r = "starttls = no would send an IMAP password without TLS "
				           "(an imap:// mailbox); use imaps:// or starttls = require "
				           "(or insecure_auth = yes for a test server)";
				goto fail;
			}
		}
	}
	return set;
fail:
	email_settings_free(set);
	return NULL;
}

/* Reads the mailboxN lines; they are kept from load to unload (a reload cannot change them). */
static int
email_mailboxes(struct chan_email *ce, const char **error_r)
{
	char key[16];

	for (int i = 1; i <= EMAIL_MAILBOXES; i++) {
		const char *v;
		struct mailbox *mb;

		snprintf(key, sizeof(key), "mailbox%d", i);
		v = ce->api->config_get(ce->self, key);
		if (v == NULL || *v == '\0')
			continue;
		if (email_mailbox_parse(ce, key, v, error_r) < 0)
			return -1;
		mb = &ce->mailboxes[ce->nmailboxes - 1];
		if ((mb->config_line = strdup(v)) == NULL) {
			*error_r = "out of memory";
			return -1;
		}
	}
	return 0;
}

/* Whether the mailboxN lines still say what the threads were started with. */
static int
email_mailboxes_changed(struct chan_email *ce)
{
	size_t n = 0;
	char key[16];

	for (int i = 1; i <= EMAIL_MAILBOXES; i++) {
		const char *v;

		snprintf(key, sizeof(key), "mailbox%d", i);
		v = ce->api->config_get(ce->self, key);
		if (v == NULL || *v == '\0')
			continue;
		if (n >= ce->nmailboxes || strcmp(ce->mailboxes[n].config_line, v) != 0)
			return 1;
		n++;
	}
	return n != ce->nmailboxes;
}

/* The quarantine list survives restarts as JSON lines next to the register. */
static void
email_quarantine_load(struct chan_email *ce)
{
	FILE *f = fopen(ce->quarantine_path, "re");
	char *line = NULL;
	size_t cap = 0;

	ce->quarantine = json_array();
	if (f == NULL)
		return;
	while (getline(&line, &cap, f) > 0) {
		json_t *e = json_loads(line, 0, NULL);

		if (e != NULL)
			json_array_append_new(ce->quarantine, e);
		if (json_array_size(ce->quarantine) > EMAIL_QUARANTINE_KEPT)
			json_array_remove(ce->quarantine, 0);
	}
	free(line);
	fclose(f);
}

void
chan_email_quarantined(struct chan_email *ce, struct intake_item *it)
{
	char labels[96], *line;
	json_t *e;
	int fd;

	e = json_pack("{s:I, s:s, s:I, s:I, s:s, s:s?, s:I}", "at", (json_int_t)time(NULL) * 1000,
	    "mailbox", it->mb->name, "uidvalidity", (json_int_t)it->uidvalidity, "uid",
	    (json_int_t)it->uid, "error", it->error, "raw_sha256",
	    it->msg != NULL ? it->msg->raw_sha256 : it->raw_sha256, "raw_size",
	    (json_int_t)(it->msg != NULL ? it->msg->raw_size : it->raw_size));
	if (e == NULL)
		return;
	/* The loop is the only one that replaces ce->settings: it reads them without a reference. */
	json_object_set_new(e, "folder", json_string(ce->settings->quarantine_folder));
	/* The reason, never who wrote or what: the log is no copy of the mail. */
	ce->api->log(ce->self, LOKET_LOG_WARN,
	    "mail quarantined mailbox=%s uid=%u uidvalidity=%u error=\"%s\"", it->mb->name, it->uid,
	    it->uidvalidity, it->error);
	snprintf(labels, sizeof(labels), "mailbox=\"%s\"", it->mb->name);
	ce->api->metric(ce->self, 0, "loket_email_quarantined_total",
	    "Mails moved to the quarantine folder, by mailbox.", labels, 1);
	if ((line = json_dumps(e, JSON_COMPACT)) != NULL
	    && (fd = open(ce->quarantine_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640))
	        >= 0) {
		if (write(fd, line, strlen(line)) < 0 || write(fd, "\n", 1) < 0)
			ce->api->log(ce->self, LOKET_LOG_WARN,
			    "cannot write the quarantine list: %s", strerror(errno));
		close(fd);
	}
	free(line);
	json_array_append_new(ce->quarantine, e);
	if (json_array_size(ce->quarantine) > EMAIL_QUARANTINE_KEPT)
		json_array_remove(ce->quarantine, 0);
}

/* GET /api/v1/email/quarantine: newest first, for the operator. */
static void
email_quarantine_route_cb(struct loket_http_req *req, void *arg)
{
	struct chan_email *ce = arg;
	json_t *items = json_array(), *doc;
	char *text;

	for (size_t i = json_array_size(ce->quarantine); i > 0; i--)
		json_array_append(items, json_array_get(ce->quarantine, i - 1));
	doc = json_pack("{s:o}", "items", items);
	if (doc == NULL || (text = json_dumps(doc, JSON_COMPACT)) == NULL) {
		json_decref(doc);
		ce->api->http_problem(req, 503, "out of memory");
		return;
	}
	ce->api->http_reply(req, 200, "application/json", text, strlen(text));
	free(text);
	json_decref(doc);
}

static void
email_free(struct chan_email *ce)
{
	for (size_t i = 0; i < ce->nmailboxes; i++) {
		struct mailbox *mb = &ce->mailboxes[i];

		free(mb->base_url);
		free(mb->folder);
		free(mb->user);
		free(mb->password);
		free(mb->organisation);
		free(mb->department);
		free(mb->address);
		free(mb->from_name);
		free(mb->config_line);
	}
	chan_email_settings_put(ce, ce->settings);
	if (ce->wake_ev != NULL)
		event_free(ce->wake_ev);
	json_decref(ce->quarantine);
	pthread_mutex_destroy(&ce->qmu);
	pthread_mutex_destroy(&ce->setmu);
	pthread_cond_destroy(&ce->scv);
	free(ce);
}

static int
email_load(struct loket_plugin *self, const struct loket_api *api, const char **error_r)
{
	struct chan_email *ce;
	char dir[4096];

	if (!LOKET_API_HAS(api, metric)) {
		*error_r = "this loketd is too old for chan_email (needs plugin ABI 1.1)";
		return -1;
	}
	if ((ce = calloc(1, sizeof(*ce))) == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	ce->api = api;
	ce->self = self;
	pthread_mutex_init(&ce->qmu, NULL);
	pthread_mutex_init(&ce->setmu, NULL);
	pthread_cond_init(&ce->scv, NULL);
	snprintf(ce->blob_dir, sizeof(ce->blob_dir), "%s/attachments", api->data_dir(self));
	snprintf(dir, sizeof(dir), "%s/email", api->data_dir(self));
	snprintf(ce->quarantine_path, sizeof(ce->quarantine_path), "%s/quarantine.jsonl", dir);
	if ((mkdir(dir, 0750) < 0 && errno != EEXIST)
	    || (mkdir(ce->blob_dir, 0750) < 0 && errno != EEXIST)) {
		*error_r = "cannot create the email folders in data_dir";
		goto fail;
	}
	if (email_mailboxes(ce, error_r) < 0 || (ce->settings = email_settings_new(ce, error_r)) == NULL)
		goto fail;
	email_quarantine_load(ce);
	if ((ce->wake_ev = event_new(api->event_base(self), -1, 0, email_wake_cb, ce)) == NULL) {
		*error_r = "out of memory";
		goto fail;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		*error_r = "cannot initialise libcurl";
		goto fail;
	}
	email_mime_init();
	api->set_data(self, ce);
	if (api->http_route(self, LOKET_HTTP_GET, "/api/v1/email/quarantine", LOKET_ACCESS_ADMIN,
	        email_quarantine_route_cb, ce)
	        < 0
	    || api->outbox_sender(self, "email", send_outbound_cb, ce) < 0
	    || send_start(ce, error_r) < 0 || intake_start(ce, error_r) < 0) {
		if (*error_r == NULL)
			*error_r = "cannot register the email routes or sender";
		send_stop(ce);
		intake_stop(ce);
		api->set_data(self, NULL);
		goto fail;
	}
	api->log(self, LOKET_LOG_INFO, "email ready mailboxes=%zu acknowledge=%s smtp=%s:%s",
	    ce->nmailboxes, ce->settings->ack == EMAIL_ACK_MOVE ? "move" : "flag",
	    ce->settings->smtp.host, ce->settings->smtp.port);
	return 0;
fail:
	email_free(ce);
	return -1;
}

static void
email_unload(struct loket_plugin *self, const struct loket_api *api)
{
	struct chan_email *ce = api->get_data(self);

	if (ce == NULL)
		return;
	pthread_mutex_lock(&ce->qmu);
	ce->stopping = 1;
	pthread_mutex_unlock(&ce->qmu);
	intake_stop(ce);
	send_stop(ce);
	/* What the threads queued last is dropped: unacknowledged mail is read again at start. */
	for (struct intake_item *it = ce->in_head, *next; it != NULL; it = next) {
		next = it->next;
		intake_item_free(it);
	}
	for (struct send_job *j = ce->done_head, *next; j != NULL; j = next) {
		next = j->next;
		free(j->item_json);
		free(j->sent_json);
		free(j);
	}
	api->set_data(self, NULL);
	/* A sender left behind waits in SMTP: it uses neither GMime nor libcurl any more. */
	if (!ce->intake_abandoned) {
		email_mime_shutdown();
		curl_global_cleanup();
	}
	/* A thread left behind still reads ce; the process is about to end anyway. */
	if (ce->abandoned)
		return;
	email_free(ce);
}

/*
 * SIGHUP: new settings, copied from the new config while the core still
 * holds the old one, replace the current ones; each thread goes on with the
 * settings it holds for its job and takes the new ones for the next (a
 * mailbox at its next round, within poll; the sender at its next mail).
 * The mailbox lines themselves start threads and connections: they change
 * at a restart.
 */
static int
email_reload(struct loket_plugin *self, const struct loket_api *api, const char **error_r)
{
	struct chan_email *ce = api->get_data(self);
	struct email_settings *set, *old;

	if (ce == NULL)
		return 0;
	if ((set = email_settings_new(ce, error_r)) == NULL)
		return -1;
	/* The lines hold passwords: the log names none of them. */
	if (email_mailboxes_changed(ce))
		api->log(self, LOKET_LOG_WARN,
		    "mailbox lines changed; restart loketd to apply them (the other settings "
		    "apply now)");
	pthread_mutex_lock(&ce->setmu);
	old = ce->settings;
	ce->settings = set;
	pthread_mutex_unlock(&ce->setmu);
	chan_email_settings_put(ce, old);
	api->log(self, LOKET_LOG_INFO, "email settings reloaded acknowledge=%s smtp=%s:%s",
	    set->ack == EMAIL_ACK_MOVE ? "move" : "flag", set->smtp.host, set->smtp.port);
	return 0;
}

LOKET_PLUGIN_DEFINE(.name = "chan_email", .version = "1.0",
    .description = "email: IMAP intake, threading, acknowledgements and replies over SMTP",
    .config_keys = email_keys, .load = email_load, .unload = email_unload,
    .reload = email_reload, .check_value = email_check_value);
