/* http_api_catalogue.c: /api/v1/catalogue: the products and services, as loaded, and their standard answers. */
#include "config.h"

#include <string.h>

#include "auth.h"
#include "catalogue.h"
#include "http_api.h"
#include "log.h"
#include "loketd.h"
#include "units.h"
#include "util.h"

static void
catalogue_get(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	const struct catalogue *cat = d->units != NULL ? units_catalogue(d->units) : NULL;
	json_t *items = json_array();

	for (size_t i = 0; cat != NULL && i < cat->nproducts; i++)
		json_array_append_new(items, catalogue_product_json(&cat->products[i], 1));
	http_reply_json(req, 200, json_pack("{s:o}", "items", items));
}

/*
 * The admin sets (PUT {"text": ...}) or removes (DELETE, or an empty text)
 * a product's standard answer: written to its file beside the catalogue,
 * then served at once; a reload reads the files again.
 */
static void
catalogue_answer(struct loket_http_req *req, struct loketd *d, int remove)
{
	struct catalogue *cat = d->units != NULL ? units_catalogue_rw(d->units) : NULL;
	const char *code = http_param(req, "code"), *error = NULL;
	const struct catalogue_product *p;
	json_t *body = NULL, *text = NULL, *v;
	const char *key;

	if (auth_require(req, AUTH_ADMIN) < 0)
		return;
	if (code == NULL || (p = catalogue_find(cat, code)) == NULL) {
		http_problem(req, 404, "no product with this code in the catalogue");
		return;
	}
	if (!remove) {
		if ((body = api_body(req, 0)) == NULL)
			return;
		json_object_foreach(body, key, v) {
			if (strcmp(key, "text") != 0) {
				error = util_error("%.*s: unknown field; expected text",
				    (int)util_utf8_prefix(key, 40), key);
				break;
			}
		}
		text = json_object_get(body, "text");
		if (error == NULL && (!json_is_string(text) ||
					 strlen(json_string_value(text)) != json_string_length(text)))
			error = "text: expected the standard answer as a string (\"\" removes it)";
		if (error != NULL) {
			json_decref(body);
			http_problem(req, 422, error);
			return;
		}
	}
	if (catalogue_answer_set(cat, p->code, text != NULL ? json_string_value(text) : NULL,
		&error) < 0) {
		json_decref(body);
		http_problem(req, strncmp(error, "text:", 5) == 0 ? 422 : 503, error);
		return;
	}
	json_decref(body);
	log_info("catalogue", "standard answer of %s %s by %s", p->code,
	    p->answer != NULL ? "set" : "removed", auth_name(req));
	auth_audit(d, req, "catalogue.answer", p->code);
	api_reply(req, 200, json_pack("{s:s, s:s?}", "code", p->code, "standard_answer", p->answer));
}

static void
catalogue_answer_put(struct loket_http_req *req, void *arg)
{
	catalogue_answer(req, arg, 0);
}

static void
catalogue_answer_delete(struct loket_http_req *req, void *arg)
{
	catalogue_answer(req, arg, 1);
}

int
http_api_catalogue_init(struct loketd *d, const char **error_r)
{
	if (http_route_add(d->http, "core", LOKET_HTTP_GET, "/api/v1/catalogue",
		LOKET_ACCESS_TOKEN, catalogue_get, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_PUT, "/api/v1/catalogue/{code}/answer",
		LOKET_ACCESS_TOKEN, catalogue_answer_put, d, error_r) < 0 ||
	    http_route_add(d->http, "core", LOKET_HTTP_DELETE, "/api/v1/catalogue/{code}/answer",
		LOKET_ACCESS_TOKEN, catalogue_answer_delete, d, error_r) < 0)
		return -1;
	return 0;
}
