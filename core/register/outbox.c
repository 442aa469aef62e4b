/*
 * outbox.c: hands durable outbox rows to the plugin that sends their channel.
 *
 * Rows are written with the contact (rules' replies) or a staff message, so
 * nothing is sent that is not stored. One event is armed for the earliest
 * pending row; when it fires, the due rows go to their senders, and each
 * sender's outcome is written back (sent, retry at a later time, failed)
 * before the row can be picked up again. A restart finds pending rows where
 * the last run left them.
 *
 * A row stays "in flight" here from the scan that handed it to a sender
 * until its outcome is stored; a scan skips rows in flight and counts the
 * automatic ones to the same address (ack_per_day). That only holds when a
 * scan's answer and the outcomes agree on what is stored, and a driver may
 * answer a read after writes that completed while it was out (store_pgsql
 * reads on threads of its own): a row whose outcome was stored meanwhile
 * would come back pending and go out twice, and the count would miss it.
 * So scans and outcome writes take turns: a scan waits for the outcomes
 * being written (a read sees every write completed before it), and an
 * outcome waits while a scan is out (the scan's answer cannot hold it, and
 * its row is still in flight when the answer is handed out).
 */
#include "config.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "log.h"
#include "loketd.h"
#include "metrics.h"
#include "outbox.h"
#include "store.h"
#include "util.h"

#define OUTBOX_BATCH 64
#define OUTBOX_SENDERS 8

struct outbox_sender {
	char channel[32];
	struct loket_plugin *plugin;
	void (*send)(struct loket_outbound *o, const char *item_json, void *arg);
	void *arg;
};

struct loket_outbound {
	struct outbox *ob;
	json_int_t id;
	char channel[32];
	char recipient[320];
	int automatic;
	int answered;
	struct store_req *held; /* the outcome, held while a scan is out */
	struct loket_outbound *next;
};

struct outbox {
	struct loketd *d;
	struct event *ev;
	struct outbox_sender senders[OUTBOX_SENDERS];
	size_t nsenders;
	struct loket_outbound *inflight;
	size_t ninflight;
	size_t writing; /* outcomes submitted and not yet stored */
	int scanning;
	int rescan;
	char unsent[OUTBOX_SENDERS][32]; /* channels rules asked for without a sender, logged */
	size_t nunsent;
};

static void outbox_scan(struct outbox *ob);

static void
outbox_fire_cb(evutil_socket_t fd, short what, void *arg)
{
	outbox_scan(arg);
}

static void
outbox_arm(struct outbox *ob, int64_t at_ms)
{
	int64_t now = util_time_ms(), wait = at_ms > now ? at_ms - now : 0;
	struct timeval tv = { .tv_sec = wait / 1000, .tv_usec = (wait % 1000) * 1000 };

	evtimer_add(ob->ev, &tv);
}

static void
outbox_next_cb(struct store_req *sr, void *arg)
{
	struct outbox *ob = arg;
	json_t *next = json_object_get(sr->out, "next_at");

	if (sr->result != STORE_OK || !json_is_integer(next))
		return;
	/* Due rows that are all in flight wait for their outcome, which scans again. */
	if (json_integer_value(next) <= util_time_ms() && ob->ninflight > 0)
		return;
	outbox_arm(ob, json_integer_value(next));
}

static struct outbox_sender *
outbox_sender_of(struct outbox *ob, const char *channel)
{
	for (size_t i = 0; channel != NULL && i < ob->nsenders; i++)
		if (strcmp(ob->senders[i].channel, channel) == 0)
			return &ob->senders[i];
	return NULL;
}

static int
outbox_in_flight(struct outbox *ob, json_int_t id)
{
	for (struct loket_outbound *o = ob->inflight; o != NULL; o = o->next)
		if (o->id == id)
			return 1;
	return 0;
}

static json_int_t
outbox_automatic_in_flight(struct outbox *ob, const char *recipient)
{
	json_int_t n = 0;

	for (struct loket_outbound *o = ob->inflight; o != NULL; o = o->next)
		n += o->automatic && strcmp(o->recipient, recipient) == 0;
	return n;
}

static void
outbox_count(struct outbox *ob, const char *channel, const char *result)
{
	char labels[128], esc[64];

	snprintf(labels, sizeof(labels), "channel=\"%s\",result=\"%s\"",
	    metrics_label_escape(esc, sizeof(esc), channel), result);
	metrics_add(
	    metrics_series(ob->d->metrics, METRIC_COUNTER, "loket_outbox_total",
	        "Outbound messages by channel and outcome (sent, retry, failed).", labels, NULL, 0),
	    1);
}

/* A row leaves the flight: a later scan may hand it out again if it is still pending. */
static void
outbox_land(struct outbox *ob, struct loket_outbound *o)
{
	for (struct loket_outbound **pp = &ob->inflight; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == o) {
			*pp = o->next;
			ob->ninflight--;
			break;
		}
	}
	if (o->held != NULL)
		store_req_free(o->held);
	free(o);
}

static void
outbox_done_cb(struct store_req *sr, void *arg)
{
	struct loket_outbound *o = arg;
	struct outbox *ob = o->ob;

	ob->writing--;
	if (sr->result != STORE_OK)
		log_warnx("outbox", "outcome not stored outbox=%lld error=\"%s\"", (long long)o->id,
		    sr->error);
	outbox_land(ob, o);
	/* The scans that waited for the outcomes being written go once the last is stored. */
	outbox_note(ob->d);
}

static void
outbox_write(struct outbox *ob, struct loket_outbound *o, struct store_req *sr)
{
	ob->writing++;
	store_submit(ob->d->store, sr);
}

/* The outcomes that waited for a scan's answer: it has been handed out. */
static void
outbox_write_held(struct outbox *ob)
{
	struct loket_outbound *o, *next;

	for (o = ob->inflight; o != NULL; o = next) {
		struct store_req *sr = o->held;

		next = o->next;
		if (sr == NULL)
			continue;
		o->held = NULL;
		outbox_write(ob, o, sr);
	}
}

void
outbound_done(struct loket_outbound *o, enum loket_send_result result, const char *error,
    uint64_t retry_after_ms, const char *sent_json)
{
	struct outbox *ob = o->ob;
	static const char *const names[] = { "sent", "retry", "failed" };
	const char *name = (unsigned)result < 3 ? names[result] : "failed";
	int64_t now = util_time_ms();
	json_t *in, *sent = sent_json != NULL ? json_loads(sent_json, 0, NULL) : NULL;
	struct store_req *sr;

	if (o->answered)
		return;
	o->answered = 1;
	in = json_pack("{s:I, s:s, s:I, s:o, s:o}", "id", o->id, "result", name, "at",
	    (json_int_t)now, "error", error != NULL ? json_string(error) : json_null(), "sent",
	    sent != NULL ? sent : json_null());
	if (in == NULL) {
		outbox_land(ob, o);
		return;
	}
	if (result == LOKET_SEND_RETRY)
		json_object_set_new(in, "next_at",
		    json_integer(now + (int64_t)(retry_after_ms > 0 ? retry_after_ms : 1000)));
	if (o->recipient[0] != '\0')
		json_object_set_new(in, "recipient", json_string(o->recipient));
	outbox_count(ob, o->channel, name);
	if (result != LOKET_SEND_OK)
		log_warnx("outbox", "not sent outbox=%lld channel=%s result=%s error=\"%s\"",
		    (long long)o->id, o->channel, name, error != NULL ? error : "");
	if ((sr = store_req_new(STORE_OUTBOX_DONE, in, outbox_done_cb, o)) == NULL) {
		/* Not stored: the row is still pending, and a later scan hands it out again. */
		outbox_land(ob, o);
		return;
	}
	if (ob->scanning) {
		o->held = sr;
		return;
	}
	outbox_write(ob, o, sr);
}

static void
outbox_due_cb(struct store_req *sr, void *arg)
{
	struct outbox *ob = arg;
	json_t *item;
	size_t i;

	ob->scanning = 0;
	/* Rows in flight stay so until these are stored, and the answer is in. */
	outbox_write_held(ob);
	if (sr->result != STORE_OK) {
		log_warnx("outbox", "cannot read the outbox error=\"%s\"", sr->error);
		outbox_arm(ob, util_time_ms() + 5000);
		return;
	}
	json_array_foreach(json_object_get(sr->out, "items"), i, item)
	{
		json_int_t id = json_integer_value(json_object_get(item, "id"));
		const char *channel = json_string_value(json_object_get(item, "channel"));
		const char *recipient = json_string_value(json_object_get(item, "recipient"));
		json_t *contact = json_object_get(item, "contact");
		struct outbox_sender *s;
		struct loket_outbound *o;
		char *text;

		if (outbox_in_flight(ob, id) || (o = calloc(1, sizeof(*o))) == NULL)
			continue;
		/*
		 * A contact flagged for its identifiers may have borrowed somebody
		 * else's: a message to the address it came with does not greet the
		 * person the register knows by them.
		 */
		if (json_is_object(json_object_get(contact, "party_conflict"))
		    && json_is_object(json_object_get(contact, "party")))
			json_object_set_new(json_object_get(contact, "party"), "name", json_null());
		o->ob = ob;
		o->id = id;
		snprintf(o->channel, sizeof(o->channel), "%s", channel != NULL ? channel : "");
		snprintf(
		    o->recipient, sizeof(o->recipient), "%s", recipient != NULL ? recipient : "");
		o->automatic = json_is_true(json_object_get(item, "automatic"));
		/*
		 * The register counts what was sent; automatic messages to the same address
		 * still on their way count too, or a burst would pass the daily cap at once.
		 */
		if (o->automatic && recipient != NULL)
			json_object_set_new(item, "sent_today",
			    json_integer(json_integer_value(json_object_get(item, "sent_today"))
			        + outbox_automatic_in_flight(ob, recipient)));
		o->next = ob->inflight;
		ob->inflight = o;
		ob->ninflight++;
		if ((s = outbox_sender_of(ob, channel)) == NULL) {
			char why[96];

			snprintf(why, sizeof(why), "no plugin sends channel %s",
			    channel != NULL ? channel : "(none)");
			outbound_done(o, LOKET_SEND_FAILED, why, 0, NULL);
			continue;
		}
		if ((text = json_dumps(item, JSON_COMPACT)) == NULL) {
			outbound_done(o, LOKET_SEND_RETRY, "out of memory", 60000, NULL);
			continue;
		}
		s->send(o, text, s->arg);
		free(text);
	}
	if (ob->rescan) {
		ob->rescan = 0;
		outbox_scan(ob);
		return;
	}
	if ((sr = store_req_new(STORE_OUTBOX_NEXT,
		 json_pack("{s:I}", "now", (json_int_t)util_time_ms()), outbox_next_cb, ob)) != NULL)
		store_submit(ob->d->store, sr);
}

static void
outbox_scan(struct outbox *ob)
{
	struct store_req *sr;
	json_t *in;

	if (ob->scanning) {
		ob->rescan = 1;
		return;
	}
	if (ob->ninflight >= OUTBOX_BATCH)
		return; /* each outcome scans again */
	if (ob->writing > 0)
		return; /* the last outcome stored scans again (outbox_done_cb) */
	in = json_pack("{s:I, s:I, s:I}", "now", (json_int_t)util_time_ms(), "after", 0, "limit",
	    (json_int_t)(OUTBOX_BATCH + ob->ninflight));
	if (in == NULL || (sr = store_req_new(STORE_OUTBOX_DUE, in, outbox_due_cb, ob)) == NULL)
		return;
	ob->scanning = 1;
	store_submit(ob->d->store, sr);
}

/* A write that queued outbound messages is durable: look for due rows now. */
static void
outbox_event_cb(const struct events_event *ev, void *arg)
{
	if (ev->outbox)
		outbox_note(arg);
}

void
outbox_note(struct loketd *d)
{
	if (d->outbox == NULL || d->stopping)
		return;
	outbox_arm(d->outbox, 0);
}

int
outbox_init(struct loketd *d)
{
	struct outbox *ob = calloc(1, sizeof(*ob));

	if (ob == NULL || (ob->ev = evtimer_new(d->base, outbox_fire_cb, ob)) == NULL) {
		free(ob);
		return -1;
	}
	ob->d = d;
	d->outbox = ob;
	if (events_subscribe(d->events, EVENTS_PUBLIC, outbox_event_cb, d, NULL) < 0) {
		outbox_free(d);
		return -1;
	}
	return 0;
}

/* After the plugins loaded: senders are known, so pending rows can go. */
void
outbox_start(struct loketd *d)
{
	if (d->outbox != NULL)
		outbox_arm(d->outbox, 0);
}

void
outbox_free(struct loketd *d)
{
	struct outbox *ob = d->outbox;

	if (ob == NULL)
		return;
	events_unsubscribe(d->events, outbox_event_cb, d, NULL);
	while (ob->inflight != NULL)
		outbox_land(ob, ob->inflight);
	event_free(ob->ev);
	free(ob);
	d->outbox = NULL;
}

int
outbox_sender(struct loketd *d, struct loket_plugin *self, const char *channel,
    void (*send)(struct loket_outbound *o, const char *item_json, void *arg), void *arg)
{
	struct outbox *ob = d->outbox;
	struct outbox_sender *s;

	if (ob == NULL || channel == NULL || strlen(channel) >= sizeof(s->channel)
	    || outbox_sender_of(ob, channel) != NULL || ob->nsenders >= OUTBOX_SENDERS)
		return -1;
	s = &ob->senders[ob->nsenders++];
	snprintf(s->channel, sizeof(s->channel), "%s", channel);
	s->plugin = self;
	s->send = send;
	s->arg = arg;
	return 0;
}

int
outbox_has_sender(struct loketd *d, const char *channel)
{
	struct outbox *ob = d->outbox;

	/* Without a dispatcher (loketctl rules test) every reply is shown as decided. */
	if (ob == NULL)
		return 1;
	if (channel != NULL && outbox_sender_of(ob, channel) != NULL)
		return 1;
	for (size_t i = 0; i < ob->nunsent; i++)
		if (strcmp(ob->unsent[i], channel != NULL ? channel : "") == 0)
			return 0;
	log_warnx("outbox",
	    "rules reply via a channel no plugin sends; such replies are dropped"
	    " channel=%s",
	    channel != NULL ? channel : "(none)");
	if (ob->nunsent < OUTBOX_SENDERS)
		snprintf(ob->unsent[ob->nunsent++], sizeof(ob->unsent[0]), "%s",
		    channel != NULL ? channel : "");
	return 0;
}

/* A plugin going away stops sending; its rows wait for the next start. */
void
outbox_forget(struct loketd *d, struct loket_plugin *self)
{
	struct outbox *ob = d->outbox;

	for (size_t i = 0; ob != NULL && i < ob->nsenders; i++) {
		if (ob->senders[i].plugin != self)
			continue;
		memmove(&ob->senders[i], &ob->senders[i + 1],
		    (ob->nsenders - i - 1) * sizeof(ob->senders[0]));
		ob->nsenders--;
		i--;
	}
}
