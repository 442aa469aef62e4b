/*
 * http_api_messages.c: /api/v1/contacts/{id}/messages: what went back and forth on a
 * contact, and a staff message out through the contact's channel (documents attached).
 */
#include "config.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "conf.h"
#include "http_api.h"
#include "http_status.h"
#include "loketd.h"
#include "register.h"
#include "util.h"

#define MESSAGE_MAX_BODY 100000
#define MESSAGE_MAX_ATTACHMENTS 10

static void
messages_list(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	struct api_call *call;
	json_int_t id;

	if (auth_require(req, AUTH_STAFF) < 0 || api_id(req, "id", &id) < 0
	    || (call = api_call_new(d, req, 200)) == NULL)
		return;
	snprintf(call->audit_action, sizeof(call->audit_action), "contact.messages");
	snprintf(call->audit_object, sizeof(call->audit_object), "contact:%lld", (long long)id);
	api_submit(
	    call, STORE_MESSAGE_LIST, json_pack("{s:I, s:o}", "id", id, "scope", auth_scope(req)));
}

/*
 * Names a document by its SHA-256 and, with keep, keeps it as a blob of
 * the register (durable when this returns 0). Returns 0, or the HTTP status
 * of the failure with a sentence in *error_r: the cause is in the log.
 */
static int
attachment_keep(struct loketd *d, const unsigned char *data, size_t len, int keep, char hex[65],
    const char **error_r)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	enum store_result res;

	if (!keep) {
		crypto_hash_sha256(h, data, len);
		sodium_bin2hex(hex, 65, h, sizeof(h));
		return 0;
	}
	if ((res = store_blob_put(d->store, data, len, 0, hex)) == STORE_OK)
		return 0;
	*error_r = res == STORE_UNAVAILABLE ?
		"attachments: the register cannot store the file right now: the disk is full; "
		"nothing was sent, try again later" :
		"attachments: the register could not store the file; nothing was sent, try again "
		"later";
	return http_status_of_store(res);
}

static int
text_ok(json_t *v, size_t max)
{
	return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v)
	    && json_string_length(v) <= max;
}

/* A file name a mail client can show: no path, no control characters. */
static int
name_ok(const char *s)
{
	if (*s == '\0' || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '/' || *s == '\\')
			return 0;
	return 1;
}

/* Shared with POST /api/v1/forms/intake: one shape and one set of caps for posted files. */
int
http_api_messages_attachments(struct loketd *d, json_t *list, int keep, json_t **out_r,
    const char **error_r)
{
	int status = 422;

	json_t *out = json_array(), *a;
	size_t i;

	if (list != NULL
	    && (!json_is_array(list) || json_array_size(list) > MESSAGE_MAX_ATTACHMENTS)) {
		*error_r = util_error("attachments: expected a list of at most %d files",
		    MESSAGE_MAX_ATTACHMENTS);
		goto fail;
	}
	json_array_foreach(list, i, a)
	{
		json_t *name = json_object_get(a, "name"),
		       *type = json_object_get(a, "content_type");
		json_t *data = json_object_get(a, "data");
		const char *slash;
		unsigned char *bin;
		size_t binlen, cap;
		char hex[65];
		int kept;

		if (!text_ok(name, 255) || !name_ok(json_string_value(name))) {
			*error_r = util_error("attachments[%zu].name: expected a file name", i);
			goto fail;
		}
		if (type != NULL
		    && (!text_ok(type, 127)
		        || (slash = strchr(json_string_value(type), '/')) == NULL
		        || slash == json_string_value(type) || slash[1] == '\0'
		        || strpbrk(json_string_value(type), " \t\r\n;\"") != NULL)) {
			*error_r = util_error("attachments[%zu].content_type: expected type/subtype", i);
			goto fail;
		}
		if (!json_is_string(data)) {
			*error_r = util_error("attachments[%zu].data: expected base64", i);
			goto fail;
		}
		cap = json_string_length(data) / 4 * 3 + 3;
		if ((bin = malloc(cap)) == NULL) {
			*error_r = "out of memory";
			goto fail;
		}
		if (sodium_base642bin(bin, cap, json_string_value(data), json_string_length(data),
		        "\r\n ", &binlen, NULL, sodium_base64_VARIANT_ORIGINAL)
		    != 0) {
			free(bin);
			*error_r = util_error("attachments[%zu].data: expected base64", i);
			goto fail;
		}
		if ((kept = attachment_keep(d, bin, binlen, keep, hex, error_r)) != 0) {
			status = kept;
			free(bin);
			goto fail;
		}
		free(bin);
		json_array_append_new(out,
		    json_pack("{s:O, s:s, s:s, s:I}", "name", name, "content_type",
		        type != NULL ? json_string_value(type) : "application/octet-stream",
		        "sha256", hex, "size", (json_int_t)binlen));
	}
	*out_r = out;
	return 0;
fail:
	json_decref(out);
	return status;
}

/* A staff message with documents, waiting for the access check before they are written. */
struct messages_pending {
	struct api_call *call;
	json_t *in; /* the STORE_MESSAGE_ADD request */
	json_t *files; /* the posted attachments, decoded again to be kept */
};

/*
 * A web contact has no way back of its own (the e-loket is a page the
 * citizen left): a staff message on it without "via" goes out by email when
 * the citizen gave an address (the contact's reply_to) or staff give "to",
 * as a rule's `via = "email"` reply would. Without one it stays on the
 * channel "web", which no plugin sends, as before.
 */
static void
messages_web_by_email(json_t *in, json_t *contact)
{
	json_t *outbox = json_array_get(json_object_get(in, "outbox"), 0);
	json_t *msg = json_object_get(in, "message");
	const char *channel = json_string_value(json_object_get(contact, "channel"));
	const char *reply_to = json_string_value(json_object_get(contact, "reply_to"));

	if (outbox == NULL || json_is_string(json_object_get(outbox, "via")) || channel == NULL ||
	    strcmp(channel, "web") != 0)
		return;
	if (json_array_size(json_object_get(msg, "recipients")) > 0 ||
	    (reply_to != NULL && strchr(reply_to, '@') != NULL)) {
		json_object_set_new(outbox, "via", json_string("email"));
		json_object_set_new(msg, "channel", json_string("email"));
	}
}

static void
messages_access_cb(struct store_req *sr, void *arg)
{
	struct messages_pending *p = arg;
	json_t *kept = NULL;
	const char *err = sr->error;
	int status = http_status_of_store(sr->result);

	if (status == 0)
		messages_web_by_email(p->in, sr->out);
	if (status == 0 && json_array_size(p->files) > 0)
		status = http_api_messages_attachments(p->call->d, p->files, 1, &kept, &err);
	json_decref(kept);
	if (status != 0) {
		http_add_header(p->call->req, "Cache-Control", "no-store");
		http_problem(p->call->req, status, err);
		free(p->call);
		json_decref(p->in);
	} else {
		api_submit(p->call, STORE_MESSAGE_ADD, p->in);
	}
	json_decref(p->files);
	free(p);
}

/*
 * Documents are written only once the token may see the contact: a token
 * without access must not be able to fill the disk or plant files. A message
 * without "via" waits for the same read, which tells the contact's channel
 * (messages_web_by_email). Takes over in and files.
 */
static void
messages_submit(struct api_call *call, json_t *in, json_t *files)
{
	struct messages_pending *p;
	struct store_req *sr;

	/* Without documents or a channel to decide, the write checks access itself. */
	if (json_array_size(files) == 0 &&
	    json_is_string(json_object_get(json_array_get(json_object_get(in, "outbox"), 0), "via"))) {
		json_decref(files);
		api_submit(call, STORE_MESSAGE_ADD, in);
		return;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		json_decref(in);
		json_decref(files);
		http_problem(call->req, 503, "out of memory");
		free(call);
		return;
	}
	p->call = call;
	p->in = in;
	p->files = files;
	sr = store_req_new(STORE_CONTACT_GET,
	    json_pack("{s:O, s:O}", "id", json_object_get(in, "id"), "scope",
	        json_object_get(in, "scope")),
	    messages_access_cb, p);
	if (sr == NULL) {
		json_decref(in);
		json_decref(files);
		free(p);
		http_problem(call->req, 503, "out of memory");
		free(call);
		return;
	}
	store_submit(call->d->store, sr);
}

static void
messages_post_cb(struct api_call *call, struct store_req *sr)
{
	json_t *msg = json_incref(json_object_get(sr->out, "message"));
	json_t *ref = json_incref(json_object_get(sr->out, "reference"));

	/* The answer is the queued message; the contact stays where it was. */
	json_object_clear(sr->out);
	json_object_set_new(sr->out, "reference", ref);
	json_object_update(sr->out, msg);
	json_decref(msg);
}

static void
messages_post(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	json_t *body, *subject, *text, *to, *via, *files = NULL, *msg, *in, *posted;
	struct api_call *call;
	char norm[320];
	const char *why, *err = NULL;
	json_int_t id;

	if (auth_require(req, AUTH_STAFF) < 0 || api_id(req, "id", &id) < 0
	    || (body = api_body(req, 0)) == NULL)
		return;
	subject = json_object_get(body, "subject");
	text = json_object_get(body, "body");
	to = json_object_get(body, "to");
	via = json_object_get(body, "via");
	if (!text_ok(text, MESSAGE_MAX_BODY) || json_string_length(text) == 0)
		err = util_error("body: expected the message text (at most %d bytes)",
		    MESSAGE_MAX_BODY);
	else if (subject != NULL && !text_ok(subject, 300))
		err = "subject: expected a line of at most 300 bytes";
	else if (via != NULL && (!text_ok(via, 31) || json_string_length(via) == 0))
		err = "via: expected a channel name";
	else if (to != NULL
	    && (!text_ok(to, 254)
	        || register_party_id("email", json_string_value(to), norm, sizeof(norm), &why) < 0))
		err = "to: expected an email address";
	if (err != NULL
	    || http_api_messages_attachments(d, json_object_get(body, "attachments"), 0, &files, &err)
	        != 0) {
		json_decref(body);
		http_problem(req, 422, err);
		return;
	}
	posted = json_incref(json_object_get(body, "attachments"));
	msg = json_pack("{s:s, s:s, s:O, s:o, s:o}", "direction", "out", "subject",
	    subject != NULL ? json_string_value(subject) : "", "body", text, "attachments", files,
	    "recipients", to != NULL ? json_pack("[s]", norm) : json_array());
	in = json_pack("{s:I, s:I, s:s, s:o, s:o, s:b, s:[{s:s, s:s?, s:b}]}", "id", id, "at",
	    (json_int_t)util_time_ms(), "actor", auth_name(req), "scope", auth_scope(req),
	    "message", msg, "staff", 1, "outbox", "template", "message", "via",
	    via != NULL ? json_string_value(via) : NULL, "automatic", 0);
	json_decref(body);
	if (in == NULL || (call = api_call_new(d, req, 202)) == NULL) {
		json_decref(in);
		json_decref(posted);
		return;
	}
	call->after = messages_post_cb;
	messages_submit(call, in, posted);
}

/* GET /api/v1/contacts/{id}/attachments/{sha256}: one document of the contact's messages. */
struct attachment_get {
	struct loketd *d;
	struct loket_http_req *req;
	json_int_t id;
	char sha[65];
};

/* The attachment entry named sha on any of the messages in list, or NULL. */
static json_t *
attachment_find(json_t *list, const char *sha)
{
	json_t *m, *a;
	size_t i, j;

	json_array_foreach(list, i, m)
		json_array_foreach(json_object_get(m, "attachments"), j, a)
			if (json_is_string(json_object_get(a, "sha256")) &&
			    strcmp(json_string_value(json_object_get(a, "sha256")), sha) == 0)
				return a;
	return NULL;
}

/* name as a Content-Disposition filename* value (RFC 8187: UTF-8, percent-encoded). */
static void
attachment_filename(const char *name, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)name; *p != '\0' && n + 4 < len; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("!#$&+-.^_`|~", *p) != NULL) {
			out[n++] = (char)*p;
		} else {
			out[n++] = '%';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 0xF];
		}
	}
	out[n] = '\0';
}

/* Whether ct is a plain type/subtype a browser may be told (else octet-stream). */
static int
attachment_type_ok(const char *ct)
{
	const char *slash;

	if (ct == NULL || strlen(ct) > 100 || (slash = strchr(ct, '/')) == NULL || slash == ct ||
	    slash[1] == '\0')
		return 0;
	for (const char *p = ct; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			strchr("/+-.", *p) != NULL))
			return 0;
	return 1;
}

static void
attachment_got_cb(struct store_req *sr, void *arg)
{
	struct attachment_get *g = arg;
	struct loket_http_req *req = g->req;
	char object[48], disp[1200], fname[1024];
	const char *name, *ct;
	enum store_result res;
	void *data = NULL;
	size_t len = 0;
	json_t *a;

	http_add_header(req, "Cache-Control", "no-store");
	snprintf(object, sizeof(object), "contact:%lld", (long long)g->id);
	if (sr->result != STORE_OK) {
		/* A read refused for its scope is recorded too: probing leaves a trace. */
		if (sr->result == STORE_FORBIDDEN)
			auth_audit(g->d, req, "attachment.read.denied", object);
		http_problem(req, http_status_of_store(sr->result), sr->error);
		goto out;
	}
	if ((a = attachment_find(json_object_get(sr->out, "items"), g->sha)) == NULL) {
		http_problem(req, 404, "no message of this contact has an attachment with that SHA-256");
		goto out;
	}
	if ((res = store_blob_get(g->d->store, g->sha, &data, &len)) != STORE_OK) {
		http_problem(req, res == STORE_NOT_FOUND ? 404 : 503,
		    res == STORE_NOT_FOUND ? "the register no longer keeps this attachment" :
					     "the register cannot read the attachment now; try again");
		goto out;
	}
	name = json_string_value(json_object_get(a, "name"));
	ct = json_string_value(json_object_get(a, "content_type"));
	attachment_filename(name != NULL && *name != '\0' ? name : "bijlage", fname, sizeof(fname));
	/* Always a download, never shown in loketd's origin: a document may be HTML or SVG. */
	snprintf(disp, sizeof(disp), "attachment; filename=\"bijlage\"; filename*=UTF-8''%s", fname);
	http_add_header(req, "Content-Disposition", disp);
	http_add_header(req, "Content-Security-Policy", "sandbox; default-src 'none'");
	auth_audit(g->d, req, "attachment.read", object);
	http_reply(req, 200, attachment_type_ok(ct) ? ct : "application/octet-stream", data, len);
	free(data);
out:
	free(g);
}

static void
attachment_get(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	const char *sha = http_param(req, "sha256");
	struct attachment_get *g;
	struct store_req *sr;
	json_int_t id;

	if (auth_require(req, AUTH_STAFF) < 0 || api_id(req, "id", &id) < 0)
		return;
	if (sha == NULL || strlen(sha) != 64 || strspn(sha, "0123456789abcdef") != 64) {
		http_problem(req, 404, "no such attachment: expected its SHA-256 in lower-case hex");
		return;
	}
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		http_problem(req, 503, "out of memory");
		return;
	}
	g->d = d;
	g->req = req;
	g->id = id;
	memcpy(g->sha, sha, sizeof(g->sha));
	/* The contact's messages, read in the caller's scope: what it may not read it cannot fetch. */
	sr = store_req_new(STORE_MESSAGE_LIST, json_pack("{s:I, s:o}", "id", id, "scope", auth_scope(req)),
	    attachment_got_cb, g);
	if (sr == NULL) {
		free(g);
		http_problem(req, 503, "out of memory");
		return;
	}
	store_submit(d->store, sr);
}

int
http_api_messages_init(struct loketd *d, const char **error_r)
{
	if (http_route_add(d->http, "core", LOKET_HTTP_GET, "/api/v1/contacts/{id}/messages",
	        LOKET_ACCESS_TOKEN, messages_list, d, error_r)
	        < 0
	    || http_route_add(d->http, "core", LOKET_HTTP_POST, "/api/v1/contacts/{id}/messages",
	           LOKET_ACCESS_TOKEN, messages_post, d, error_r)
	        < 0
	    || http_route_add(d->http, "core", LOKET_HTTP_GET,
	           "/api/v1/contacts/{id}/attachments/{sha256}", LOKET_ACCESS_TOKEN, attachment_get, d,
	           error_r)
	        < 0)
		return -1;
	return 0;
}
