/*
 * send.c: the email channel's outbound sender: one thread takes outbox rows
 * from the loop, writes the message (a template, or what staff wrote),
 * submits it over SMTP, and hands the outcome back to the loop.
 *
 * The loop guard lives here too: automatic mail is never answered
 * automatically, and one address gets at most ack_per_day automatic
 * messages a day.
 */
#include "config.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chan_email.h"

#define SEND_TEMPLATE_MAX (64 * 1024)

static const char *
jstr(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* "{{name}}" replaced by vars' string value; unknown names become empty. */
char *
send_render(const char *text, json_t *vars)
{
	size_t cap = strlen(text) + 256, len = 0;
	char *out = malloc(cap);
	const char *p = text;

	if (out == NULL)
		return NULL;
	while (*p != '\0') {
		const char *open = strstr(p, "{{"), *close, *v = NULL;
		size_t chunk = open != NULL ? (size_t)(open - p) : strlen(p), vlen = 0;
		char name[64];

		if (open != NULL && (close = strstr(open + 2, "}}")) != NULL
		    && (size_t)(close - open - 2) < sizeof(name)) {
			memcpy(name, open + 2, (size_t)(close - open - 2));
			name[close - open - 2] = '\0';
			v = jstr(vars, name);
			vlen = v != NULL ? strlen(v) : 0;
		} else {
			chunk = open != NULL ? chunk + 2 : chunk;
			close = NULL;
		}
		if (len + chunk + vlen + 1 > cap) {
			char *grown;

			cap = (len + chunk + vlen + 1) * 2;
			if ((grown = realloc(out, cap)) == NULL) {
				free(out);
				return NULL;
			}
			out = grown;
		}
		memcpy(out + len, p, chunk);
		len += chunk;
		if (close != NULL) {
			if (vlen > 0)
				memcpy(out + len, v, vlen);
			len += vlen;
			p = close + 2;
		} else {
			p += chunk;
		}
	}
	out[len] = '\0';
	return out;
}

static char *
send_read_file(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;

	if (f == NULL)
		return NULL;
	if ((buf = malloc(SEND_TEMPLATE_MAX + 1)) != NULL) {
		n = fread(buf, 1, SEND_TEMPLATE_MAX, f);
		buf[n] = '\0';
	}
	fclose(f);
	return buf;
}

/* A day and date a citizen reads ("maandag 7 december 2026"), in the template's language. */
static void
send_date(int64_t ms, const char *lang, char *buf, size_t len)
{
	static const char *const nl_days[]
	    = { "zondag", "maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag" };
	static const char *const nl_months[] = { "januari", "februari", "maart", "april", "mei",
		"juni", "juli", "augustus", "september", "oktober", "november", "december" };
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0 || localtime_r(&t, &tm) == NULL) {
		buf[0] = '\0';
		return;
	}
	if (strcmp(lang, "nl") == 0)
		snprintf(buf, len, "%s %d %s %d", nl_days[tm.tm_wday], tm.tm_mday,
		    nl_months[tm.tm_mon], tm.tm_year + 1900);
	else
		strftime(buf, len, "%A %e %B %Y", &tm);
}

/* The mailbox that speaks for the contact's organisation (and department, when one matches). */
static const struct mailbox *
send_mailbox(struct chan_email *ce, json_t *contact)
{
	const char *org = jstr(contact, "organisation"), *dep = jstr(contact, "department");
	const struct mailbox *best = ce->nmailboxes > 0 ? &ce->mailboxes[0] : NULL;

	for (size_t i = 0; i < ce->nmailboxes; i++) {
		const struct mailbox *mb = &ce->mailboxes[i];

		if (dep != NULL && mb->department != NULL && strcmp(dep, mb->department) == 0)
			return mb;
		if (org != NULL && mb->organisation != NULL && strcmp(org, mb->organisation) == 0
		    && (best == &ce->mailboxes[0] || best == NULL))
			best = mb;
	}
	return best;
}

/* Subject and body from NAME.LANG.txt: a "Subject:" line, an empty line, the text. */
static int
send_template(const struct email_settings *set, const char *name, const char *lang, json_t *vars,
    char **subject_r, char **body_r, const char **error_r)
{
	char path[4200], *text, *subj, *body, *nl;

	for (const char *p = name; *p != '\0'; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'
		        || *p == '_')) {
			*error_r = email_error("template name '%.40s' is not a plain name", name);
			return -1;
		}
	}
	snprintf(path, sizeof(path), "%s/%s.%s.txt", set->templates_dir, name, lang);
	if ((text = send_read_file(path)) == NULL) {
		snprintf(
		    path, sizeof(path), "%s/%s.%s.txt", set->templates_dir, name, set->language);
		if ((text = send_read_file(path)) == NULL) {
			*error_r = email_error(
			    "no template %s.%s.txt in %s", name, set->language, set->templates_dir);
			return -1;
		}
	}
	if (strncmp(text, "Subject:", 8) != 0 || (nl = strchr(text, '\n')) == NULL) {
		*error_r = email_error("%.200s:1: expected 'Subject: ...' as the first line", path);
		free(text);
		return -1;
	}
	*nl = '\0';
	if (nl > text && nl[-1] == '\r')
		nl[-1] = '\0';
	subj = text + 8;
	while (*subj == ' ')
		subj++;
	body = nl + 1;
	while (*body == '\n' || *body == '\r')
		body++;
	*subject_r = send_render(subj, vars);
	*body_r = send_render(body, vars);
	free(text);
	if (*subject_r == NULL || *body_r == NULL) {
		free(*subject_r);
		free(*body_r);
		*error_r = "out of memory";
		return -1;
	}
	return 0;
}

static uint64_t
send_backoff(const struct email_settings *set, json_int_t attempts)
{
	uint64_t wait = (uint64_t)set->retry_min_ms;

	for (json_int_t i = 0; i < attempts && wait < (uint64_t)set->retry_max_ms; i++)
		wait *= 2;
	return wait < (uint64_t)set->retry_max_ms ? wait : (uint64_t)set->retry_max_ms;
}

/* "References" of a reply: what the answered mail referenced, then the mail itself. */
static char *
send_references(json_t *last_in)
{
	json_t *refs = json_object_get(json_object_get(last_in, "meta"), "references"), *v;
	size_t len = 1, i;
	char *out;

	json_array_foreach(refs, i, v) len += json_string_length(v) + 1;
	len += jstr(last_in, "message_id") != NULL ? strlen(jstr(last_in, "message_id")) + 1 : 0;
	if ((out = calloc(1, len)) == NULL)
		return NULL;
	json_array_foreach(refs, i, v)
	{
		if (!json_is_string(v))
			continue;
		strcat(out, json_string_value(v));
		strcat(out, " ");
	}
	if (jstr(last_in, "message_id") != NULL)
		strcat(out, jstr(last_in, "message_id"));
	return out;
}

static void
send_job_run(struct chan_email *ce, struct send_job *j)
{
	/* One mail, one settings reference: a reload meanwhile takes effect at the next. */
	struct email_settings *set = settings_get(ce);
	json_t *item = json_loads(j->item_json, 0, NULL), *contact, *last_in, *msg, *vars = NULL;
	json_t *payload;
	const char *tpl, *recipient, *ref, *lang, *domain, *from_name, *err = NULL;
	const struct mailbox *mb;
	struct email_out out = { 0 };
	struct email_out_attachment atts[16];
	char *subject = NULL, *body = NULL, *refs = NULL, *data = NULL, *tagged = NULL;
	char message_id[256], due[64], rnd[17], why[160];
	void *blobs[16] = { NULL };
	unsigned char rb[8];
	size_t len, natt = 0;
	int automatic, permanent = 0;

	j->result = LOKET_SEND_FAILED;
	if (item == NULL) {
		snprintf(j->error, sizeof(j->error), "the outbox row is not readable");
		goto out;
	}
	contact = json_object_get(item, "contact");
	last_in = json_object_get(item, "last_in");
	msg = json_object_get(item, "message");
	payload = json_object_get(item, "payload");
	tpl = jstr(item, "template");
	recipient = jstr(item, "recipient");
	ref = jstr(contact, "reference");
	automatic = json_is_true(json_object_get(item, "automatic"));
	lang = jstr(contact, "language") != NULL ? jstr(contact, "language") : set->language;
	/* The language names a template file: letters and dashes only, else the default. */
	if (strspn(lang, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-") != strlen(lang)
	    || *lang == '\0')
		lang = set->language;
	if (automatic && jstr(last_in, "automatic") != NULL) {
		snprintf(j->error, sizeof(j->error),
		    "not sent: the contact is automatic mail (%s); loket never answers it",
		    jstr(last_in, "automatic"));
		goto out;
	}
	if (automatic
	    && json_integer_value(json_object_get(item, "sent_today")) >= set->ack_per_day) {
		snprintf(j->error, sizeof(j->error),
		    "not sent: the recipient had %lld automatic messages today (ack_per_day)",
		    (long long)set->ack_per_day);
		goto out;
	}
	if (recipient == NULL || strchr(recipient, '@') == NULL
	    || strpbrk(recipient, "\r\n <>") != NULL) {
		snprintf(j->error, sizeof(j->error), "no email address to answer to");
		goto out;
	}
	if (ref == NULL || (mb = send_mailbox(ce, contact)) == NULL) {
		snprintf(j->error, sizeof(j->error), "no mailbox to send from");
		goto out;
	}
	from_name = mb->from_name != NULL ? mb->from_name
	    : *set->from_name != '\0'     ? set->from_name
	                                  : NULL;
	send_date(json_is_integer(json_object_get(payload, "due_at"))
	        ? json_integer_value(json_object_get(payload, "due_at"))
	        : json_integer_value(json_object_get(item, "due_at")),
	    lang, due, sizeof(due));
	vars = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "reference", ref, "subject",
	    jstr(contact, "subject") != NULL ? jstr(contact, "subject") : "", "name",
	    jstr(json_object_get(contact, "party"), "name") != NULL
	        ? jstr(json_object_get(contact, "party"), "name")
	        : strcmp(lang, "nl") == 0 ? "mevrouw, meneer"
	                                  : "Sir or Madam",
	    "organisation",
	    from_name != NULL                           ? from_name
	        : jstr(contact, "organisation") != NULL ? jstr(contact, "organisation")
	                                                : "",
	    "department", jstr(contact, "department") != NULL ? jstr(contact, "department") : "",
	    "due", due);
	if (tpl != NULL && strcmp(tpl, "message") == 0 && json_is_object(msg)) {
		const char *s = jstr(msg, "subject");

		subject
		    = s != NULL && *s != '\0' ? strdup(s) : send_render("Re: {{subject}}", vars);
		body = strdup(jstr(msg, "body") != NULL ? jstr(msg, "body") : "");
	} else if (tpl == NULL) {
		goto out;
	} else if (send_template(set, tpl, lang, vars, &subject, &body, &err) < 0) {
		snprintf(j->error, sizeof(j->error), "%s", err);
		goto out;
	}
	if (subject == NULL || body == NULL) {
		snprintf(j->error, sizeof(j->error), "out of memory");
		goto out;
	}
	/* The token threads the citizen's answer back onto this contact. */
	if (strstr(subject, ref) == NULL) {
		size_t n = strlen(subject) + strlen(ref) + 10;

		if ((tagged = malloc(n)) == NULL)
			goto out;
		snprintf(tagged, n, "%s [loket %s]", subject, ref);
		free(subject);
		subject = tagged;
		tagged = NULL;
	}
	randombytes_buf(rb, sizeof(rb));
	sodium_bin2hex(rnd, sizeof(rnd), rb, sizeof(rb));
	domain = strchr(mb->address, '@') != NULL ? strchr(mb->address, '@') + 1 : "localhost";
	snprintf(message_id, sizeof(message_id), "loket.%s.%lld.%s@%s", ref,
	    (long long)json_integer_value(json_object_get(item, "id")), rnd, domain);
	refs = send_references(last_in);
	{
		json_t *a;
		size_t i;

		json_array_foreach(json_object_get(msg, "attachments"), i, a)
		{
			if (natt >= sizeof(atts) / sizeof(atts[0]) || jstr(a, "sha256") == NULL
			    || strspn(jstr(a, "sha256"), "0123456789abcdef") != 64)
				continue;
			/* Through the register: its blobs may live in a database nodes share. */
			if (ce->api->blob_get(ce->self, jstr(a, "sha256"), &blobs[natt],
			        &atts[natt].len, why, sizeof(why))
			    < 0) {
				snprintf(j->error, sizeof(j->error), "cannot read attachment %zu: %s",
				    natt + 1, why);
				goto out;
			}
			atts[natt].filename = jstr(a, "name") != NULL ? jstr(a, "name") : "bijlage";
			atts[natt].content_type = jstr(a, "content_type") != NULL
			    ? jstr(a, "content_type")
			    : "application/octet-stream";
			atts[natt].data = blobs[natt];
			natt++;
		}
	}
	out.from_name = from_name;
	out.from_addr = mb->address;
	out.to_name = jstr(json_object_get(contact, "party"), "name");
	out.to_addr = recipient;
	out.subject = subject;
	out.body = body;
	out.message_id = message_id;
	out.in_reply_to = jstr(last_in, "message_id");
	out.references = refs != NULL && *refs != '\0' ? refs : NULL;
	out.auto_submitted = automatic ? "auto-replied" : NULL;
	out.reference = ref;
	out.attachments = atts;
	out.n_attachments = natt;
	out.date_ms = (int64_t)time(NULL) * 1000;
	if (email_compose(&out, &data, &len, &err) < 0) {
		snprintf(j->error, sizeof(j->error), "%s", err);
		goto out;
	}
	/* Automatic mail goes out with an empty envelope sender, so it draws no bounce loop. */
	if (smtp_send(&set->smtp, automatic ? "" : mb->address, &recipient, 1, data, len,
	        &permanent, &err)
	    < 0) {
		json_int_t attempts = json_integer_value(json_object_get(item, "attempts")) + 1;

		snprintf(j->error, sizeof(j->error), "%s", err);
		if (!permanent && attempts < set->max_attempts) {
			j->result = LOKET_SEND_RETRY;
			j->retry_ms = send_backoff(set, attempts - 1);
		}
		goto out;
	}
	j->result = LOKET_SEND_OK;
	j->error[0] = '\0';
	{
		json_t *sent
		    = json_pack("{s:s, s:s, s:s, s:s, s:[s]}", "message_id", message_id, "subject",
		        subject, "body", body, "sender", mb->address, "recipients", recipient);

		j->sent_json = sent != NULL ? json_dumps(sent, JSON_COMPACT) : NULL;
		json_decref(sent);
	}
out:
	for (size_t k = 0; k < sizeof(blobs) / sizeof(blobs[0]); k++)
		free(blobs[k]);
	free(data);
	free(refs);
	free(subject);
	free(body);
	json_decref(vars);
	json_decref(item);
	settings_put(ce, set);
}

static void *
send_main(void *arg)
{
	struct chan_email *ce = arg;

	pthread_mutex_lock(&ce->qmu);
	for (;;) {
		struct send_job *j;

		while (ce->send_head == NULL && !ce->stopping)
			pthread_cond_wait(&ce->scv, &ce->qmu);
		if (ce->stopping)
			break;
		j = ce->send_head;
		if ((ce->send_head = j->next) == NULL)
			ce->send_tail = NULL;
		j->next = NULL;
		pthread_mutex_unlock(&ce->qmu);
		send_job_run(ce, j);
		pthread_mutex_lock(&ce->qmu);
		if (ce->stopping) {
			/* Its row stays pending and goes at the next start. */
			free(j->item_json);
			free(j->sent_json);
			free(j);
			break;
		}
		if (ce->done_tail != NULL)
			ce->done_tail->next = j;
		else
			ce->done_head = j;
		ce->done_tail = j;
		chan_email_wake(ce);
	}
	pthread_mutex_unlock(&ce->qmu);
	return NULL;
}

void
send_outbound_cb(struct loket_outbound *o, const char *item_json, void *arg)
{
	struct chan_email *ce = arg;
	struct send_job *j = calloc(1, sizeof(*j));

	if (j == NULL || (j->item_json = strdup(item_json)) == NULL) {
		free(j);
		ce->api->outbound_done(o, LOKET_SEND_RETRY, "out of memory", 60000, NULL);
		return;
	}
	j->o = o;
	pthread_mutex_lock(&ce->qmu);
	if (ce->send_tail != NULL)
		ce->send_tail->next = j;
	else
		ce->send_head = j;
	ce->send_tail = j;
	pthread_cond_signal(&ce->scv);
	pthread_mutex_unlock(&ce->qmu);
}

int
send_start(struct chan_email *ce, const char **error_r)
{
	if (pthread_create(&ce->sender, NULL, send_main, ce) != 0) {
		*error_r = "cannot start the sender thread";
		return -1;
	}
	ce->sender_started = 1;
	return 0;
}

void
send_stop(struct chan_email *ce)
{
	if (!ce->sender_started)
		return;
	pthread_mutex_lock(&ce->qmu);
	ce->stopping = 1;
	pthread_cond_broadcast(&ce->scv);
	pthread_mutex_unlock(&ce->qmu);
	if (chan_email_join(ce, ce->sender, "the sender") < 0)
		return;
	ce->sender_started = 0;
	smtp_cleanup();
	/* Rows not sent stay pending in the register and go at the next start. */
	while (ce->send_head != NULL) {
		struct send_job *j = ce->send_head;

		ce->send_head = j->next;
		free(j->item_json);
		free(j);
	}
	ce->send_tail = NULL;
}
