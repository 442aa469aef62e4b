/* http_api_catalogue.c: /api/v1/catalogue: the products and services, as loaded. */
#include "config.h"

#include <string.h>

#include "catalogue.h"
#include "http_api.h"
#include "loketd.h"
#include "units.h"

static void
catalogue_get(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	const struct catalogue *cat = d->units != NULL ? units_catalogue(d->units) : NULL;
	json_t *items = json_array();

	for (size_t i = 0; cat != NULL && i < cat->nproducts; i++) {
		const struct catalogue_product *p = &cat->products[i];
		json_t *kw = json_array();

		for (size_t k = 0; k < p->nkeywords; k++)
			json_array_append_new(kw, json_string(p->keywords[k]));
		json_array_append_new(items,
		    json_pack("{s:s, s:s, s:i, s:s?, s:s, s:s?, s:b, s:b, s:o}", "code", p->code,
			"name", p->name, "line", p->line, "department", p->department,
			"organisation", p->organisation, "service_time", p->service_time,
			"appointment", p->appointment, "digital", p->digital, "keywords", kw));
	}
	http_reply_json(req, 200, json_pack("{s:o}", "items", items));
}

int
http_api_catalogue_init(struct loketd *d, const char **error_r)
{
	return http_route_add(d->http, "core", LOKET_HTTP_GET, "/api/v1/catalogue",
	    LOKET_ACCESS_TOKEN, catalogue_get, d, error_r);
}
