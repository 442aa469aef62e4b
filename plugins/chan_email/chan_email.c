/*
 * chan_email.c: the email channel plugin: its config, the mailboxes it reads,
 * the loop's side of the queues, the quarantine list and its API route.
 */
#include "config.h"

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
	    "yes: the IMAP and SMTP passwords may be sent without TLS (a test server on "
	    "loopback)" },
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
			/* The name goes into metric labels, log lines and the mailbox's lease. */
			if (strlen(tok) >= sizeof(mb->name)
			    || strspn(tok, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			                   "0123456789._-")
			        != strlen(tok)) {
				*error_r = "a mailbox's NAME has letters, digits, '.', '_' and '-' "
				           "only, at most 31 of them";
				goto fail;
			}
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
				if ((mb->password = settings_read_secret(eq, error_r)) == NULL)
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

/*
 * A mailbox whose line is in no mailboxN key any more is read no more, and
 * its lease goes back so that the node it moved to (with a config that
 * has it) reads it at once. New and changed lines wait for a restart.
 */
static void
email_mailboxes_retire(struct chan_email *ce)
{
	char key[16];

	for (size_t n = 0; n < ce->nmailboxes; n++) {
		struct mailbox *mb = &ce->mailboxes[n];
		int kept = 0;

		for (int i = 1; i <= EMAIL_MAILBOXES && !kept; i++) {
			const char *v;

			snprintf(key, sizeof(key), "mailbox%d", i);
			v = ce->api->config_get(ce->self, key);
			kept = v != NULL && strcmp(v, mb->config_line) == 0;
		}
		if (!kept && !mb->retired)
			intake_retire(ce, mb);
	}
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
	/* Only the loop replaces ce->settings: it reads them without a reference. */
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
	settings_put(ce, ce->settings);
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

	if (!LOKET_API_HAS(api, metric) || !LOKET_API_HAS(api, lease)) {
		*error_r = "this loketd is too old for chan_email (needs plugin ABI 1.7)";
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
	snprintf(dir, sizeof(dir), "%s/email", api->data_dir(self));
	snprintf(ce->quarantine_path, sizeof(ce->quarantine_path), "%s/quarantine.jsonl", dir);
	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		*error_r = "cannot create the email folders in data_dir";
		goto fail;
	}
	if (email_mailboxes(ce, error_r) < 0 || (ce->settings = settings_new(ce, error_r)) == NULL)
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
	if ((set = settings_new(ce, error_r)) == NULL)
		return -1;
	/* The lines hold passwords: the log names none of them. */
	if (email_mailboxes_changed(ce))
		api->log(self, LOKET_LOG_WARN,
		    "mailbox lines changed; restart loketd to apply new or changed ones (a removed "
		    "one stops now, the other settings apply now)");
	email_mailboxes_retire(ce);
	pthread_mutex_lock(&ce->setmu);
	old = ce->settings;
	ce->settings = set;
	pthread_mutex_unlock(&ce->setmu);
	settings_put(ce, old);
	api->log(self, LOKET_LOG_INFO, "email settings reloaded acknowledge=%s smtp=%s:%s",
	    set->ack == EMAIL_ACK_MOVE ? "move" : "flag", set->smtp.host, set->smtp.port);
	return 0;
}

LOKET_PLUGIN_DEFINE(.name = "chan_email", .version = "1.0",
    .description = "email: IMAP intake, threading, acknowledgements and replies over SMTP",
    .config_keys = email_keys, .load = email_load, .unload = email_unload, .reload = email_reload,
    .check_value = settings_check_value);
