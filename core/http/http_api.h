/* http_api.h: what the /api/v1 resource files share: calls into the store and their answers. */
#ifndef LOKET_HTTP_API_H
#define LOKET_HTTP_API_H

#include <jansson.h>

#include "http.h"
#include "store.h"

struct loketd;

/* One API request waiting for the store. */
struct api_call {
	struct loketd *d;
	struct loket_http_req *req;
	int ok_status;
	char audit_action[32]; /* empty: the read is not audited */
	char audit_object[64];
	/* Runs after a successful store request, before the answer (counts, events). */
	void (*after)(struct api_call *call, struct store_req *sr);
	/*
	 * Runs when the store refused the request: words the problem from what
	 * the store answered (sr->in, sr->out), or NULL to send sr->error.
	 */
	const char *(*refused)(struct api_call *call, struct store_req *sr);
};

/* http_api.c */
int http_api_init(struct loketd *d, const char **error_r);
struct api_call *api_call_new(struct loketd *d, struct loket_http_req *req, int ok_status);
/* Takes over in; answers req with the store's result (or its problem). */
void api_submit(struct api_call *call, enum store_op op, json_t *in);
/* Parses a positive integer path parameter; answers 404 and returns -1 when it is not one. */
int api_id(struct loket_http_req *req, const char *name, json_int_t *id_r);
/* Parses the JSON body (an object; an empty body when optional); answers 400/415 on error. */
json_t *api_body(struct loket_http_req *req, int optional);
/* limit (1..500, default 50) and cursor query parameters into in; answers 400 on error. */
int api_paging(struct loket_http_req *req, json_t *in);
void api_reply(struct loket_http_req *req, int status, json_t *doc);
/*
 * The Idempotency-Key header checked (400 answered and -1 when it is not 1
 * to 255 printable ASCII characters; 0 without the header, *key_r left
 * alone). With key_r, the key scoped to scope (a route's word: "idem" for
 * POST /api/v1/contacts) and the token in *key_r, and the same bound to the
 * request body in *body_r, both owned by the caller: register_caller's
 * idempotency_key and idempotency_body.
 */
int api_idempotency(struct loket_http_req *req, const char *scope, char **key_r, char **body_r);

/*
 * The wall between organisations on a write that moves a contact to
 * in.set.organisation: asks it of the store as a condition (expect) and
 * words the refusal, naming both organisations (http_api_contacts.c).
 */
void http_api_contacts_wall(struct api_call *call, json_t *in);

/* http_api_contacts.c, _parties.c, _tasks.c, _catalogue.c, _messages.c */
int http_api_contacts_init(struct loketd *d, const char **error_r);
int http_api_parties_init(struct loketd *d, const char **error_r);
int http_api_tasks_init(struct loketd *d, const char **error_r);
int http_api_catalogue_init(struct loketd *d, const char **error_r);
int http_api_messages_init(struct loketd *d, const char **error_r);
/*
 * The posted attachments ([{name, content_type, data (base64)}], at most 10)
 * decoded and, with keep, kept as blobs (durable when this returns 0);
 * their descriptions [{name, content_type, sha256, size}] in *out_r (owned
 * by the caller). Returns 0, or an HTTP status with *error_r: 422 naming
 * attachments[i] for what the client sent, 503 for a full disk, 500 for
 * another failure to write.
 */
int http_api_messages_attachments(struct loketd *d, json_t *list, int keep, json_t **out_r,
    const char **error_r);
/* http_api_forms.c */
int http_api_forms_init(struct loketd *d, const char **error_r);
/* http_api_events.c */
int http_api_events_init(struct loketd *d, const char **error_r);
/* http_api_admin.c: users, tokens and the audit trail (admin only) */
int http_api_admin_init(struct loketd *d, const char **error_r);
/* http_api_rules.c: the rules loaded, tried out, replayed and reloaded (admin only) */
int http_api_rules_init(struct loketd *d, const char **error_r);
/* http_api_search.c */
int http_api_search_init(struct loketd *d, const char **error_r);

#endif
