/*
 * intake.c: one thread per mailbox fetches and parses new mail; the loop
 * submits each as a contact (or a reply on one); only after the register
 * says it is durable does the thread move or flag it on the server.
 *
 * Exactly once: every submit carries the keys mailbox+UIDVALIDITY+UID and
 * the SHA-256 of the mail's bytes (trace fields left out), so a mail read
 * again after a crash between commit and acknowledgement, after a reconnect,
 * after the server renumbered the folder, or from a second mailbox is found
 * in the register and only acknowledged.
 *
 * Several nodes on one register: a mailbox is read by the node that holds
 * its lease "mailbox:NAME" (loket_api.lease) and by no other, so that two
 * nodes never fight over its flags, moves and quarantine. The thread
 * renews the lease every third of its length, also while it waits; it
 * stops before its next fetch once the lease is lost, and a node that
 * waits asks again every second, so it takes the mailbox over once the
 * holder died and its lease ran out.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chan_email.h"

#define INTAKE_BATCH 256
#define INTAKE_SUBJECT_MAX 1000
#define INTAKE_BODY_MAX (512 * 1024)
/* How often a node that waits for a mailbox another node reads asks for its lease. */
#define INTAKE_LEASE_RETRY_MS 1000

void
intake_item_free(struct intake_item *it)
{
	if (it == NULL)
		return;
	email_msg_free(it->msg);
	free(it);
}

/* Hands an item to the loop; 0, or -1 when stopping (the item is freed). */
static int
intake_queue(struct chan_email *ce, struct intake_item *it)
{
	pthread_mutex_lock(&ce->qmu);
	if (ce->stopping) {
		pthread_mutex_unlock(&ce->qmu);
		intake_item_free(it);
		return -1;
	}
	if (ce->in_tail != NULL)
		ce->in_tail->next = it;
	else
		ce->in_head = it;
	ce->in_tail = it;
	chan_email_wake(ce);
	pthread_mutex_unlock(&ce->qmu);
	return 0;
}

/* Threads log through the loop; the line never holds an address or a subject. */
static void __attribute__((format(printf, 3, 4)))
intake_log(struct mailbox *mb, enum loket_log_level level, const char *fmt, ...)
{
	struct intake_item *it = calloc(1, sizeof(*it));
	va_list ap;

	if (it == NULL)
		return;
	it->mb = mb;
	it->is_log = 1;
	it->level = level;
	va_start(ap, fmt);
	vsnprintf(it->error, sizeof(it->error), fmt, ap);
	va_end(ap);
	intake_queue(mb->ce, it);
}

/* The mailbox's health for /metrics (loket_email_mailbox_up), sent when it changes. */
static void
intake_state(struct mailbox *mb, int up)
{
	struct intake_item *it = calloc(1, sizeof(*it));

	if (it == NULL)
		return;
	it->mb = mb;
	it->is_log = 2;
	it->up = up;
	intake_queue(mb->ce, it);
}

static int
intake_stopping(struct chan_email *ce)
{
	int s;

	pthread_mutex_lock(&ce->qmu);
	s = ce->stopping;
	pthread_mutex_unlock(&ce->qmu);
	return s;
}

/* Whether the mailbox's line left the config (reload): its thread ends. */
static int
intake_retired(struct mailbox *mb)
{
	int r;

	pthread_mutex_lock(&mb->mu);
	r = mb->retired;
	pthread_mutex_unlock(&mb->mu);
	return r;
}

static int
intake_ending(struct mailbox *mb)
{
	return intake_stopping(mb->ce) || intake_retired(mb);
}

/* Sleeps up to ms, or until the wake pipe has a byte; returns 1 when woken. */
static int
intake_sleep(struct mailbox *mb, long ms)
{
	struct pollfd p = { .fd = mb->wake[0], .events = POLLIN };

	return poll(&p, 1, (int)ms) > 0;
}

static uint64_t
intake_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The mailbox's lease for /metrics (loket_email_mailbox_held), sent when it changes. */
static void
intake_held(struct mailbox *mb, int held)
{
	struct intake_item *it = calloc(1, sizeof(*it));

	if (it == NULL)
		return;
	it->mb = mb;
	it->is_log = 3;
	it->up = held;
	intake_queue(mb->ce, it);
}

/*
 * Whether this node may read the mailbox now: it holds the lease, renewed
 * here once a third of it has passed (measured from before the last ask,
 * so that the register's end of the lease always comes later than this
 * thread thinks). A register that cannot be asked counts as not held:
 * nothing is lost while the mailbox waits, the mail stays on its server.
 */
static int
intake_lease(struct mailbox *mb)
{
	struct chan_email *ce = mb->ce;
	uint64_t now = intake_now_ns();
	int64_t got;
	int held;

	if (mb->lease_ms > 0 && now - mb->lease_at_ns < (uint64_t)(mb->lease_ms / 3) * 1000000u)
		return 1;
	got = ce->api->lease(ce->self, mb->lease_name, 0, 0);
	mb->lease_ms = got > 0 ? got : 0;
	mb->lease_at_ns = now;
	held = got > 0;
	if (held == mb->lease_known)
		return held;
	/* Which node: the core's line "lease taken ... node=" beside this one names it. */
	if (held)
		intake_log(mb, LOKET_LOG_INFO, "mailbox taken mailbox=%s: this node reads it now",
		    mb->name);
	else if (mb->lease_known == 1)
		intake_log(mb, LOKET_LOG_WARN,
		    "mailbox let go mailbox=%s: another node reads it now, or the register cannot "
		    "be asked; waiting to take it again",
		    mb->name);
	else
		intake_log(mb, LOKET_LOG_INFO,
		    "mailbox waits mailbox=%s: another node reads it (or the register cannot be "
		    "asked); this node takes it over when that one stops",
		    mb->name);
	intake_held(mb, held);
	mb->lease_known = held;
	return held;
}

/* How long the thread may wait, at most want ms, before its lease needs renewing. */
static long
intake_lease_wait(struct mailbox *mb, long want)
{
	uint64_t due, now = intake_now_ns();

	if (mb->lease_ms <= 0)
		return want < INTAKE_LEASE_RETRY_MS ? want : INTAKE_LEASE_RETRY_MS;
	due = mb->lease_at_ns + (uint64_t)(mb->lease_ms / 3) * 1000000u;
	if (due <= now)
		return 1;
	return (long)((due - now) / 1000000u) + 1 < want ? (long)((due - now) / 1000000u) + 1 :
							    want;
}

/*
 * Sleeps up to ms as intake_sleep does, renewing the lease on the way;
 * returns early (1) when woken, or (0) when the lease was lost.
 */
static int
intake_pause(struct mailbox *mb, long ms)
{
	uint64_t end = intake_now_ns() + (uint64_t)ms * 1000000u;

	for (;;) {
		uint64_t now = intake_now_ns();

		if (now >= end)
			return 0;
		if (intake_sleep(mb, intake_lease_wait(mb, (long)((end - now) / 1000000u) + 1)))
			return 1;
		if (!intake_lease(mb))
			return 0;
	}
}

static void
intake_resolve(struct intake_item *it, enum intake_outcome outcome)
{
	struct mailbox *mb = it->mb;

	pthread_mutex_lock(&mb->mu);
	mb->outcomes[it->slot] = outcome;
	mb->unresolved--;
	pthread_cond_signal(&mb->cv);
	pthread_mutex_unlock(&mb->mu);
	intake_item_free(it);
}

static void
intake_count(struct chan_email *ce, struct mailbox *mb, const char *result)
{
	char labels[96];

	snprintf(labels, sizeof(labels), "mailbox=\"%s\",result=\"%s\"", mb->name, result);
	ce->api->metric(ce->self, 0, "loket_email_intake_total",
	    "Mails read, by mailbox and outcome (contact, reply, duplicate, automatic, "
	    "quarantined, retry).",
	    labels, 1);
}

/* Cuts s to at most max bytes without splitting a UTF-8 character. */
static void
intake_cut(char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return;
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	s[max] = '\0';
}

static json_t *
intake_addresses(const struct email_addr *list, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < n; i++)
		if (list[i].addr != NULL)
			json_array_append_new(a, json_string(list[i].addr));
	return a;
}

/* The message as the register keeps it, with what threads it onto an earlier contact. */
static char *
intake_message_json(struct intake_item *it)
{
	const struct email_msg *m = it->msg;
	json_t *doc, *atts = json_array(), *refs = json_array(), *ids = json_array();
	char *text;

	for (size_t i = 0; i < m->n_attachments; i++)
		json_array_append_new(atts,
		    json_pack("{s:s, s:s, s:s, s:I}", "name", m->attachments[i].filename,
		        "content_type", m->attachments[i].content_type, "sha256",
		        m->attachments[i].sha256, "size", (json_int_t)m->attachments[i].size));
	for (size_t i = 0; i < m->n_references; i++)
		json_array_append_new(refs, json_string(m->references[i]));
	/* The most recent first: In-Reply-To, then References from the end. */
	if (m->in_reply_to != NULL)
		json_array_append_new(ids, json_string(m->in_reply_to));
	for (size_t i = m->n_references; i > 0; i--)
		json_array_append_new(ids, json_string(m->references[i - 1]));
	doc = json_pack("{s:s?, s:o, s:s, s:s, s:s?, s:s?, s:o, s:{s:s, s:I, s:I, s:s?, s:o, s:s,"
	                " s:I, s:o, s:b}}",
	    "sender", m->from.addr, "recipients", intake_addresses(m->to, m->n_to), "subject",
	    m->subject, "body", m->body, "message_id", m->message_id, "automatic", m->auto_reason,
	    "attachments", atts, "meta", "mailbox", it->mb->name, "uidvalidity",
	    (json_int_t)it->uidvalidity, "uid", (json_int_t)it->uid, "in_reply_to", m->in_reply_to,
	    "references", refs, "raw_sha256", m->raw_sha256, "raw_size", (json_int_t)m->raw_size,
	    "cc", intake_addresses(m->cc, m->n_cc), "from_html", m->body_from_html);
	if (doc == NULL) {
		json_decref(ids);
		return NULL;
	}
	/* Automatic mail never threads: an out-of-office must not reopen a contact. */
	if (m->auto_reason == NULL && (m->token != NULL || json_array_size(ids) > 0))
		json_object_set_new(doc, "thread",
		    json_pack("{s:s?, s:O}", "reference", m->token, "message_ids", ids));
	json_decref(ids);
	text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	return text;
}

static void intake_submit(struct chan_email *ce, struct intake_item *it);

/* Whether the register flagged the mail for a Message-ID an earlier mail has (contact.c). */
static int
intake_flagged(const char *result_json)
{
	json_t *doc = result_json != NULL ? json_loads(result_json, 0, NULL) : NULL, *tag, *meta;
	int flagged = 0;
	size_t i;

	json_array_foreach(json_object_get(doc, "tags"), i, tag)
	{
		if (json_is_string(tag) && strcmp(json_string_value(tag), "message-id-seen") == 0)
			flagged = 1;
	}
	meta = json_object_get(json_object_get(doc, "message"), "meta");
	if (json_object_get(meta, "message_id_seen") != NULL)
		flagged = 1;
	json_decref(doc);
	return flagged;
}

static void
intake_submitted_cb(const struct loket_submit_result *res, void *arg)
{
	struct intake_item *it = arg;
	struct mailbox *mb = it->mb;
	struct chan_email *ce = mb->ce;
	const char *result;

	if (res->status == 422 && !it->without_party && it->msg->from.addr != NULL
	    && res->error != NULL && strncmp(res->error, "party", 5) == 0) {
		/* A sender address the register will not take still leaves a contact. */
		it->without_party = 1;
		intake_submit(ce, it);
		return;
	}
	if (res->status >= 400 && res->status < 500) {
		snprintf(it->error, sizeof(it->error), "the register refused it: %s",
		    res->error != NULL ? res->error : "?");
		chan_email_quarantined(ce, it);
		intake_count(ce, mb, "quarantined");
		intake_resolve(it, INTAKE_QUARANTINE);
		return;
	}
	if (res->status != 0) {
		ce->api->log(ce->self, LOKET_LOG_WARN,
		    "mail not registered yet mailbox=%s uid=%u status=%d error=\"%s\"", mb->name,
		    it->uid, res->status, res->error != NULL ? res->error : "?");
		intake_count(ce, mb, "retry");
		intake_resolve(it, INTAKE_RETRY);
		return;
	}
	result = res->duplicate            ? "duplicate"
	    : res->threaded                ? "reply"
	    : it->msg->auto_reason != NULL ? "automatic"
	                                   : "contact";
	ce->api->log(ce->self, LOKET_LOG_INFO,
	    "mail registered mailbox=%s uid=%u reference=%s result=%s%s%s%s", mb->name, it->uid,
	    res->reference != NULL ? res->reference : "?", result,
	    it->msg->auto_reason != NULL ? " automatic=" : "",
	    it->msg->auto_reason != NULL ? it->msg->auto_reason : "",
	    !res->duplicate && intake_flagged(res->json) ? " flagged=message-id-seen" : "");
	intake_count(ce, mb, result);
	intake_resolve(it, INTAKE_DONE);
}

static void
intake_submit(struct chan_email *ce, struct intake_item *it)
{
	const struct loket_api *api = ce->api;
	struct email_msg *m = it->msg;
	struct mailbox *mb = it->mb;
	struct loket_contact *c = api->contact_new(ce->self, "email");
	char key[512], *msg_json;

	if (c == NULL) {
		intake_resolve(it, INTAKE_RETRY);
		return;
	}
	intake_cut(m->subject, INTAKE_SUBJECT_MAX);
	intake_cut(m->body, INTAKE_BODY_MAX);
	api->contact_set(c, "subject", m->subject);
	api->contact_set(c, "body", m->body);
	if (mb->department != NULL)
		api->contact_set(c, "department", mb->department);
	if (mb->organisation != NULL)
		api->contact_set(c, "organisation", mb->organisation);
	if (!it->without_party && m->from.addr != NULL) {
		api->contact_set(c, "party.email", m->from.addr);
		if (m->from.name != NULL && *m->from.name != '\0')
			api->contact_set(c, "party.name", m->from.name);
	}
	api->contact_meta(c, "mailbox", mb->name);
	snprintf(key, sizeof(key), "email:uid:%s:%u:%u", mb->name, it->uidvalidity, it->uid);
	api->contact_key(c, key);
	/*
	 * The same mail again, also from a second mailbox, is its bytes again. Not
	 * its Message-ID: a buggy client or anyone who knows one can give a new mail
	 * an old id, and that mail must not vanish as a duplicate (the register
	 * keeps it and flags it instead).
	 */
	snprintf(key, sizeof(key), "email:sha256:%s", m->mail_sha256);
	api->contact_key(c, key);
	if ((msg_json = intake_message_json(it)) == NULL || api->contact_message(c, msg_json) < 0) {
		free(msg_json);
		api->contact_free(c);
		intake_resolve(it, INTAKE_RETRY);
		return;
	}
	free(msg_json);
	api->contact_submit(c, intake_submitted_cb, it);
}

void
intake_take(struct chan_email *ce, struct intake_item *it)
{
	if (it->is_log == 3) {
		char labels[96];

		snprintf(labels, sizeof(labels), "mailbox=\"%s\"", it->mb->name);
		ce->api->metric(ce->self, 1, "loket_email_mailbox_held",
		    "1 while this node holds the mailbox's lease and reads it, 0 while another "
		    "node does (or the register cannot be asked).",
		    labels, it->up);
		free(it);
		return;
	}
	if (it->is_log == 2) {
		char labels[96];

		snprintf(labels, sizeof(labels), "mailbox=\"%s\"", it->mb->name);
		ce->api->metric(ce->self, 1, "loket_email_mailbox_up",
		    "1 while the mailbox answers, 0 while it cannot be read.", labels, it->up);
		free(it);
		return;
	}
	if (it->is_log) {
		ce->api->log(ce->self, it->level, "%s", it->error);
		free(it);
		return;
	}
	if (it->msg == NULL) {
		chan_email_quarantined(ce, it);
		intake_count(ce, it->mb, "quarantined");
		intake_resolve(it, INTAKE_QUARANTINE);
		return;
	}
	intake_submit(ce, it);
}

/* Waits until the loop answered every mail of the batch; 0, or -1 when stopping. */
static int
intake_wait_batch(struct mailbox *mb)
{
	int rc;

	pthread_mutex_lock(&mb->mu);
	while (mb->unresolved > 0 && !intake_stopping(mb->ce)) {
		struct timespec ts;
		long ms = intake_lease_wait(mb, 1000);

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += ms / 1000;
		ts.tv_nsec += (ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&mb->cv, &mb->mu, &ts);
		/* The lease is kept while the register takes the batch; never asked under mu. */
		pthread_mutex_unlock(&mb->mu);
		(void)intake_lease(mb);
		pthread_mutex_lock(&mb->mu);
	}
	rc = mb->unresolved > 0 ? -1 : 0;
	pthread_mutex_unlock(&mb->mu);
	return rc;
}

/* Moves or flags what the register holds, and quarantines what it cannot take. */
static int
intake_acknowledge(struct mailbox *mb, const struct email_settings *set, struct imap *im,
    const uint32_t *uids, size_t n)
{
	uint32_t *done = calloc(n + 1, sizeof(*done)), *bad = calloc(n + 1, sizeof(*bad));
	size_t ndone = 0, nbad = 0;
	char why[512]; /* the ABI's blob_sync writes into a buffer */
	const char *err = NULL;
	int rc = 0;

	if (done == NULL || bad == NULL) {
		free(done);
		free(bad);
		return -1;
	}
	/*
	 * Another node reads the mailbox now: it finds these mails in the
	 * register (their keys) and acknowledges them itself; two nodes moving
	 * one mail would fight.
	 */
	if (!intake_lease(mb)) {
		free(done);
		free(bad);
		return -1;
	}
	/* Blobs were written unsynced, one batch at a time: one sync before the server hears. */
	if (mb->ce->api->blob_sync(mb->ce->self, why, sizeof(why)) < 0) {
		intake_log(mb, LOKET_LOG_WARN, "cannot sync the attachments: %s", why);
		free(done);
		free(bad);
		return -1;
	}
	pthread_mutex_lock(&mb->mu);
	for (size_t i = 0; i < n; i++) {
		if (mb->outcomes[i] == INTAKE_DONE)
			done[ndone++] = uids[i];
		else if (mb->outcomes[i] == INTAKE_QUARANTINE)
			bad[nbad++] = uids[i];
	}
	pthread_mutex_unlock(&mb->mu);
	if (ndone > 0
	    && (set->ack == EMAIL_ACK_MOVE
	               ? imap_move(im, mb->folder, done, ndone, set->processed_folder, &err)
	               : imap_flag(im, mb->folder, done, ndone, set->flag, &err))
	        < 0) {
		intake_log(mb, LOKET_LOG_WARN, "cannot acknowledge mailbox=%s count=%zu: %s",
		    mb->name, ndone, err);
		rc = -1;
	}
	if (nbad > 0 && imap_move(im, mb->folder, bad, nbad, set->quarantine_folder, &err) < 0) {
		intake_log(mb, LOKET_LOG_WARN, "cannot move to quarantine mailbox=%s count=%zu: %s",
		    mb->name, nbad, err);
		rc = -1;
	}
	free(done);
	free(bad);
	return rc;
}

/* Fetches, parses and hands over one batch; returns how many went to the loop. */
static size_t
intake_batch(struct mailbox *mb, const struct email_settings *set, struct imap *im,
    uint32_t uidvalidity, const uint32_t *uids, size_t n)
{
	struct chan_email *ce = mb->ce;
	size_t queued = 0;
	const char *err = NULL;

	pthread_mutex_lock(&mb->mu);
	for (size_t i = 0; i < n; i++)
		mb->outcomes[i] = INTAKE_RETRY;
	pthread_mutex_unlock(&mb->mu);
	for (size_t i = 0; i < n && !intake_ending(mb); i++) {
		struct intake_item *it;
		char *raw = NULL;
		size_t len = 0;
		int rc;

		/* Lost the mailbox to another node: not one fetch more. */
		if (!intake_lease(mb))
			break;
		rc = imap_fetch(im, mb->folder, uids[i], &raw, &len, &err);

		if (rc != 0) {
			if (rc < 0)
				intake_log(mb, LOKET_LOG_WARN, "cannot fetch mailbox=%s uid=%u: %s",
				    mb->name, uids[i], err);
			free(raw);
			if (rc < 0)
				break;
			continue;
		}
		if ((it = calloc(1, sizeof(*it))) == NULL) {
			free(raw);
			break;
		}
		it->mb = mb;
		it->slot = i;
		it->uid = uids[i];
		it->uidvalidity = uidvalidity;
		if (email_parse(raw, len, &set->limits, &it->msg, &err) < 0) {
			unsigned char h[crypto_hash_sha256_BYTES];

			/* Kept with the item: the quarantine list shows it later. */
			snprintf(it->error, sizeof(it->error), "%s", err);
			/* The quarantine list names the bytes the folder keeps. */
			it->msg = NULL;
			crypto_hash_sha256(h, (const unsigned char *)raw, len);
			sodium_bin2hex(it->raw_sha256, sizeof(it->raw_sha256), h, sizeof(h));
			it->raw_size = len;
		}
		free(raw);
		pthread_mutex_lock(&mb->mu);
		mb->unresolved++;
		pthread_mutex_unlock(&mb->mu);
		if (intake_queue(ce, it) < 0)
			break;
		queued++;
	}
	return queued;
}

static void *
intake_main(void *arg)
{
	struct mailbox *mb = arg;
	struct chan_email *ce = mb->ce;
	struct imap *im = NULL;
	struct imap_conf cf;
	struct email_settings *set = NULL, *now;
	long backoff = 1000;
	int folders_made = 0, idle = -1, up = -1;
	uint32_t last_validity = 0;
	const char *err = NULL;
	char criteria[300];

	if ((mb->outcomes = calloc(INTAKE_BATCH, sizeof(*mb->outcomes))) == NULL)
		return NULL;
	while (!intake_ending(mb)) {
		uint32_t uidvalidity = 0, uidnext = 0, count = 0, *uids = NULL;
		size_t n = 0, off;

		if (!intake_lease(mb)) {
			/* Another node reads it: no session of this one stays on the server. */
			imap_close(im);
			im = NULL;
			folders_made = 0;
			intake_sleep(mb, INTAKE_LEASE_RETRY_MS);
			continue;
		}

		/*
		 * One round, one settings reference: after a reload the next round
		 * takes the new ones (the session reconnects when TLS settings
		 * changed, the folders are made again when their names did).
		 */
		if ((now = settings_get(ce)) != set) {
			if (set != NULL && settings_imap_changed(set, now)) {
				imap_close(im);
				im = NULL;
			}
			settings_put(ce, set);
			set = now;
			folders_made = 0;
		} else {
			settings_put(ce, now);
		}
		/* Moved mail leaves the folder; flagged mail stays, told apart by its keyword. */
		if (set->ack == EMAIL_ACK_MOVE)
			snprintf(criteria, sizeof(criteria), "UNDELETED");
		else
			snprintf(criteria, sizeof(criteria), "UNDELETED UNKEYWORD %s", set->flag);
		settings_imap_conf(mb, set, &cf);
		if (im == NULL && (im = imap_open(&cf, &err)) == NULL) {
			intake_log(mb, LOKET_LOG_ERROR, "mailbox %s: %s", mb->name, err);
			break;
		}
		if (imap_status(im, mb->folder, &uidvalidity, &uidnext, &count, &err) < 0
		    || imap_search(im, mb->folder, criteria, &uids, &n, &err) < 0) {
			intake_log(mb, LOKET_LOG_WARN,
			    "mailbox unreachable mailbox=%s retry_in=%ldms: %s", mb->name, backoff,
			    err);
			if (up != 0)
				intake_state(mb, up = 0);
			intake_pause(mb, backoff);
			backoff = backoff < 60000 ? backoff * 2 : 60000;
			continue;
		}
		backoff = 1000;
		if (up != 1)
			intake_state(mb, up = 1);
		/* New UIDs for old mail: the SHA-256 keys keep it from coming in twice. */
		if (last_validity != 0 && uidvalidity != last_validity)
			intake_log(mb, LOKET_LOG_WARN,
			    "mailbox renumbered mailbox=%s uidvalidity=%u was=%u", mb->name,
			    uidvalidity, last_validity);
		last_validity = uidvalidity;
		if (!folders_made) {
			if ((set->ack == EMAIL_ACK_MOVE
			        && imap_create(im, set->processed_folder, &err) < 0)
			    || imap_create(im, set->quarantine_folder, &err) < 0)
				intake_log(mb, LOKET_LOG_WARN,
				    "cannot create folders mailbox=%s: %s", mb->name, err);
			folders_made = 1;
			idle = set->idle ? imap_has_idle(im, &err) : 0;
			intake_log(mb, LOKET_LOG_INFO, "mailbox open mailbox=%s waiting=%s",
			    mb->name, idle == 1 ? "idle" : "poll");
		}
		for (off = 0; off < n && !intake_ending(mb); off += INTAKE_BATCH) {
			size_t len = n - off < INTAKE_BATCH ? n - off : INTAKE_BATCH;

			intake_batch(mb, set, im, uidvalidity, uids + off, len);
			if (intake_wait_batch(mb) < 0)
				break;
			intake_acknowledge(mb, set, im, uids + off, len);
		}
		free(uids);
		if (intake_ending(mb))
			break;
		if (n > 0)
			continue; /* more may have come while this batch went in */
		if (idle == 1) {
			/* IDLE ends in time to renew the lease; the next round idles again. */
			if (imap_idle_wait(im, mb->folder, intake_lease_wait(mb, (long)set->poll_ms),
				mb->wake[0], &err) < 0) {
				intake_log(mb, LOKET_LOG_WARN, "idle failed mailbox=%s: %s",
				    mb->name, err);
				intake_pause(mb, backoff);
			}
		} else {
			intake_pause(mb, (long)set->poll_ms);
		}
	}
	settings_put(ce, set);
	imap_close(im);
	/* Another node may read it at once (a node that dies leaves the lease to run out). */
	if (mb->lease_known == 1 && ce->api->lease(ce->self, mb->lease_name, 0, 1) == 0)
		intake_log(mb, LOKET_LOG_INFO, "mailbox released mailbox=%s", mb->name);
	return NULL;
}

int
intake_start(struct chan_email *ce, const char **error_r)
{
	for (size_t i = 0; i < ce->nmailboxes; i++) {
		struct mailbox *mb = &ce->mailboxes[i];

		pthread_mutex_init(&mb->mu, NULL);
		pthread_cond_init(&mb->cv, NULL);
		snprintf(mb->lease_name, sizeof(mb->lease_name), "mailbox:%s", mb->name);
		mb->lease_known = -1;
		if (pipe(mb->wake) < 0) {
			*error_r = "cannot create a pipe";
			return -1;
		}
		if (pthread_create(&mb->thread, NULL, intake_main, mb) != 0) {
			*error_r = "cannot start a mailbox thread";
			return -1;
		}
		mb->started = 1;
	}
	return 0;
}

void
intake_stop(struct chan_email *ce)
{
	for (size_t i = 0; i < ce->nmailboxes; i++) {
		struct mailbox *mb = &ce->mailboxes[i];

		if (!mb->started)
			continue;
		if (write(mb->wake[1], "x", 1) < 0)
			ce->api->log(ce->self, LOKET_LOG_WARN, "cannot wake mailbox %s", mb->name);
		pthread_mutex_lock(&mb->mu);
		pthread_cond_broadcast(&mb->cv);
		pthread_mutex_unlock(&mb->mu);
		if (chan_email_join(ce, mb->thread, "a mailbox thread") < 0) {
			ce->intake_abandoned = 1;
			continue; /* it still uses its mailbox */
		}
		mb->started = 0;
		close(mb->wake[0]);
		close(mb->wake[1]);
		free(mb->outcomes);
		mb->outcomes = NULL;
		pthread_mutex_destroy(&mb->mu);
		pthread_cond_destroy(&mb->cv);
	}
}

void
intake_retire(struct chan_email *ce, struct mailbox *mb)
{
	if (!mb->started)
		return;
	pthread_mutex_lock(&mb->mu);
	mb->retired = 1;
	pthread_cond_broadcast(&mb->cv);
	pthread_mutex_unlock(&mb->mu);
	/* Ends an IDLE or a sleep; the thread is joined at unload, as the others are. */
	if (write(mb->wake[1], "x", 1) < 0)
		ce->api->log(ce->self, LOKET_LOG_WARN, "cannot wake mailbox %s", mb->name);
	ce->api->log(ce->self, LOKET_LOG_INFO,
	    "mailbox removed mailbox=%s: its line left the config; it is read no more", mb->name);
}
