/*
 * chan_web.c: the e-loket, a public channel served by loketd itself:
 * GET /loket shows the form (the catalogue's products grouped by theme,
 * digital ones first, the question, contact details, attachments, the
 * privacy notice), POST /loket registers the contact on channel "web" and
 * shows the reference and the expected answer date, and /loket/status lets
 * the citizen who asked follow the request with its reference and the email
 * address or phone number given with it. Everything works without
 * JavaScript; Dutch is the default, English is one link away.
 *
 * Guards (docs/eloket.md): a double-submit CSRF token (a random secret in
 * an HttpOnly SameSite=Strict cookie and, in the form, a nonce with its MAC
 * under that secret: any node checks it without shared state), the same
 * token as the contact's idempotency key (a double click or a resubmitted
 * page registers one contact), a honeypot field, per-client rate limits,
 * caps on sizes and counts, and attachments accepted by their bytes only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "web.h"

static const struct loket_config_key web_keys[] = {
	{ "organisation", LOKET_CONFIG_STRING, "", "the name shown on every page (empty: a general "
	    "word for the municipality)" },
	{ "retention_nl", LOKET_CONFIG_STRING, "10 jaar", "how long questions are kept, as the "
	    "Dutch privacy notice says it" },
	{ "retention_en", LOKET_CONFIG_STRING, "10 years", "the same in English" },
	{ "privacy_contact", LOKET_CONFIG_STRING, "", "where citizens ask about their data (the "
	    "data protection officer's address); empty: not shown" },
	{ "max_attachments", LOKET_CONFIG_INT, "5", "files one question may carry" },
	{ "max_attachment_size", LOKET_CONFIG_SIZE, "10m", "the largest file" },
	{ "max_body", LOKET_CONFIG_SIZE, "20m", "the largest whole form post (also capped by "
	    "[http] max_body_size)" },
	{ "max_question", LOKET_CONFIG_SIZE, "20k", "the longest question, in bytes" },
	{ "post_limit", LOKET_CONFIG_INT, "10", "form posts one client may make per post_window "
	    "(0: no limit)" },
	{ "post_window", LOKET_CONFIG_DURATION, "10m", "the window of post_limit" },
	{ "status_limit", LOKET_CONFIG_INT, "10", "status look-ups one client may make per "
	    "status_window (0: no limit)" },
	{ "status_window", LOKET_CONFIG_DURATION, "15m", "the window of status_limit" },
	{ "client_header", LOKET_CONFIG_STRING, "", "a header the reverse proxy in front sets to "
	    "the client's address (X-Forwarded-For: its last entry counts); empty: the peer" },
	{ "secure_cookie", LOKET_CONFIG_BOOL, "no", "mark the form's cookie Secure (set it when "
	    "citizens reach the e-loket over HTTPS)" },
	{ NULL, 0, NULL, NULL },
};

struct web {
	const struct loket_api *api;
	struct loket_plugin *self;
	struct web_rate *posts;
	struct web_rate *lookups;
};

/* What the citizen typed, kept to show it again with the errors. */
struct web_values {
	char *product, *question, *name, *email, *phone, *rrn, *csrf;
	int privacy;
};

static void
web_values_free(struct web_values *v)
{
	free(v->product);
	free(v->question);
	free(v->name);
	free(v->email);
	free(v->phone);
	free(v->rrn);
	free(v->csrf);
	memset(v, 0, sizeof(*v));
}

static const char *
web_org(struct web *w, enum web_lang lang)
{
	const char *org = w->api->config_get(w->self, "organisation");

	return org != NULL && *org != '\0' ? org : WEB_TX(lang, "Gemeente", "Municipality");
}

/* ?lang=en, else the form's lang field, else the browser's first preference; Dutch otherwise. */
static enum web_lang
web_lang(struct web *w, struct loket_http_req *req, const struct web_form *form)
{
	const char *q = w->api->http_query(req, "lang"), *al;
	const struct web_field *f;

	if (q != NULL)
		return strncasecmp(q, "en", 2) == 0 ? WEB_EN : WEB_NL;
	if (form != NULL && (f = web_form_get(form, "lang")) != NULL)
		return strncasecmp(f->value, "en", 2) == 0 ? WEB_EN : WEB_NL;
	al = w->api->http_header(req, "Accept-Language");
	if (al != NULL) {
		al += strspn(al, " \t");
		if (strncasecmp(al, "en", 2) == 0 && (al[2] == '\0' || strchr("-,; ", al[2])))
			return WEB_EN;
	}
	return WEB_NL;
}

/* The client a rate limit counts: the proxy's header when configured, else the peer. */
static const char *
web_client(struct web *w, struct loket_http_req *req, char *out, size_t len)
{
	const char *name = w->api->config_get(w->self, "client_header"), *v, *last;

	if (name != NULL && *name != '\0' && (v = w->api->http_header(req, name)) != NULL) {
		/* The last entry is the one the trusted proxy added; earlier ones the client wrote. */
		last = strrchr(v, ',');
		last = last != NULL ? last + 1 : v;
		last += strspn(last, " \t");
		snprintf(out, len, "%.*s", (int)strcspn(last, " \t"), last);
		if (*out != '\0')
			return out;
	}
	snprintf(out, len, "%s", w->api->http_peer(req));
	return out;
}

/* Answers an HTML page; pages may hold personal data, so no cache keeps them. */
static void
web_send(struct web *w, struct loket_http_req *req, int status, struct web_buf *b)
{
	w->api->http_header_set(req, "Cache-Control", "no-store");
	if (b->broken) {
		static const char oom[] = "The page cannot be made now (out of memory); try again.\n";

		w->api->http_reply(req, 503, "text/plain; charset=utf-8", oom, sizeof(oom) - 1);
	} else {
		w->api->http_reply(req, status, "text/html; charset=utf-8", b->data, b->len);
	}
	web_buf_free(b);
}

/* A page with a title and one paragraph of (trusted, escaped) text and a way on. */
static void
web_send_message(struct web *w, struct loket_http_req *req, enum web_lang lang, int status,
    const char *title, const char *text, const char *link, const char *link_text)
{
	struct web_buf b = { 0 };

	web_page_begin(&b, lang, title, web_org(w, lang), link);
	web_buf_raw(&b, "<h1>");
	web_buf_esc(&b, title);
	web_buf_raw(&b, "</h1>\n<p>");
	web_buf_esc(&b, text);
	web_buf_printf(&b, "</p>\n<p><a href=\"%s%s\">", link, WEB_TX(lang, "", "?lang=en"));
	web_buf_esc(&b, link_text);
	web_buf_raw(&b, "</a></p>\n");
	web_page_end(&b, lang);
	web_send(w, req, status, &b);
}

static void
web_send_rate_limited(struct web *w, struct loket_http_req *req, enum web_lang lang,
    int64_t retry_s, const char *back)
{
	char secs[32], text[512];
	int64_t minutes = (retry_s + 59) / 60;

	snprintf(secs, sizeof(secs), "%lld", (long long)retry_s);
	w->api->http_header_set(req, "Retry-After", secs);
	if (lang == WEB_EN)
		snprintf(text, sizeof(text),
		    "You sent this page many times in a short while. To protect the service we "
		    "pause it for you for a moment: please try again in %lld minute%s. What you "
		    "typed was not sent.",
		    (long long)minutes, minutes == 1 ? "" : "s");
	else
		snprintf(text, sizeof(text),
		    "U hebt deze pagina op korte tijd vaak verstuurd. Om de dienst te beschermen "
		    "pauzeren we dat even voor u: probeer het opnieuw over %lld minu%s. Wat u "
		    "invulde, is niet verstuurd.",
		    (long long)minutes, minutes == 1 ? "ut" : "ten");
	web_send_message(w, req, lang, 429, WEB_TX(lang, "Even geduld", "Please wait a moment"),
	    text, back, WEB_TX(lang, "Terug naar het formulier", "Back to the form"));
}

/*
 * The cookie's secret, or a new one set with this answer. The secret stays
 * for the browser's session, so two tabs with the form both work.
 */
static void
web_secret(struct web *w, struct loket_http_req *req, char out[WEB_CSRF_SECRET_LEN + 1])
{
	char cookie[256];

	if (web_csrf_cookie(w->api->http_header(req, "Cookie"), out) == 0)
		return;
	web_csrf_secret_new(out);
	snprintf(cookie, sizeof(cookie), "%s=%s; Path=/loket; HttpOnly; SameSite=Strict%s",
	    WEB_CSRF_COOKIE, out,
	    w->api->config_get_int(w->self, "secure_cookie") ? "; Secure" : "");
	w->api->http_header_set(req, "Set-Cookie", cookie);
}

/* ---- the form ---- */

/* The catalogue's products, a JSON array; an empty one when there is none. */
static json_t *
web_catalogue(struct web *w)
{
	char *text = w->api->catalogue_json(w->self);
	json_t *cat = text != NULL ? json_loads(text, 0, NULL) : NULL;

	free(text);
	if (!json_is_array(cat)) {
		json_decref(cat);
		cat = json_array();
	}
	return cat;
}

static json_t *
web_product(json_t *cat, const char *code)
{
	size_t i;
	json_t *p;

	json_array_foreach(cat, i, p) {
		const char *c = json_string_value(json_object_get(p, "code"));

		if (c != NULL && code != NULL && strcmp(c, code) == 0)
			return p;
	}
	return NULL;
}

static const char *
web_theme(json_t *p)
{
	const char *t = json_string_value(json_object_get(p, "theme"));

	return t != NULL && *t != '\0' ? t : NULL;
}

static void
web_product_option(struct web_buf *b, enum web_lang lang, json_t *p, int *first,
    const struct web_values *v, const struct web_errors *e)
{
	const char *code = json_string_value(json_object_get(p, "code"));
	const char *name = json_string_value(json_object_get(p, "name"));
	json_t *kw;
	size_t k;

	if (code == NULL || name == NULL)
		return;
	/* The search (eloket.js) matches the name and the catalogue's keywords. */
	web_buf_raw(b, "<div class=\"product-option\" data-keywords=\"");
	web_buf_esc(b, name);
	json_array_foreach(json_object_get(p, "keywords"), k, kw) {
		web_buf_raw(b, " ");
		web_buf_esc(b, json_string_value(kw));
	}
	/* The first radio is #product, so the error summary's link lands on the group. */
	if (*first) {
		web_buf_raw(b, "\">\n<input type=\"radio\" id=\"product\" name=\"product\" value=\"");
	} else {
		web_buf_raw(b, "\">\n<input type=\"radio\" id=\"product-");
		web_buf_esc(b, code);
		web_buf_raw(b, "\" name=\"product\" value=\"");
	}
	web_buf_esc(b, code);
	web_buf_raw(b, "\"");
	if (v->product != NULL && strcmp(v->product, code) == 0)
		web_buf_raw(b, " checked");
	if (*first)
		web_page_field_aria(b, e, "product", NULL);
	web_buf_raw(b, ">\n<label for=\"");
	if (*first)
		web_buf_raw(b, "product");
	else {
		web_buf_raw(b, "product-");
		web_buf_esc(b, code);
	}
	web_buf_raw(b, "\">");
	web_buf_esc(b, name);
	if (json_is_true(json_object_get(p, "digital")))
		web_buf_printf(b, " <span class=\"tag\">%s</span>",
		    WEB_TX(lang, "volledig digitaal", "fully digital"));
	if (json_is_true(json_object_get(p, "appointment")))
		web_buf_printf(b, " <span class=\"tag tag-plain\">%s</span>",
		    WEB_TX(lang, "op afspraak", "by appointment"));
	web_buf_raw(b, "</label>\n</div>\n");
	*first = 0;
}

/* One theme's products (theme NULL: those without one), digital ones first. */
static void
web_product_group(struct web_buf *b, enum web_lang lang, json_t *cat, const char *theme,
    const char *legend, int *first, const struct web_values *v, const struct web_errors *e)
{
	size_t i;
	json_t *p;

	web_buf_raw(b, "<fieldset class=\"product-group\">\n<legend>");
	web_buf_esc(b, legend);
	web_buf_raw(b, "</legend>\n");
	for (int digital = 1; digital >= 0; digital--)
		json_array_foreach(cat, i, p) {
			const char *t = web_theme(p);

			if ((theme == NULL) != (t == NULL) || (t != NULL && strcmp(t, theme) != 0))
				continue;
			if (json_is_true(json_object_get(p, "digital")) != digital)
				continue;
			web_product_option(b, lang, p, first, v, e);
		}
	web_buf_raw(b, "</fieldset>\n");
}

static void
web_products(struct web_buf *b, enum web_lang lang, json_t *cat, const struct web_values *v,
    const struct web_errors *e)
{
	int first = 1, themed = 0, unthemed = 0;
	size_t i, j;
	json_t *p, *q;

	web_buf_printf(b,
	    "<fieldset class=\"products\"%s>\n<legend class=\"legend-large\">%s "
	    "<span class=\"required\">%s</span></legend>\n",
	    web_errors_of(e, "product") != NULL ? " aria-describedby=\"product-error\"" : "",
	    WEB_TX(lang, "Waarover gaat uw vraag?", "What is your question about?"),
	    WEB_TX(lang, "(verplicht)", "(required)"));
	web_page_field_error(b, lang, e, "product");
	/* Shown by eloket.js only: without JavaScript the list is all there is. */
	web_buf_printf(b,
	    "<div class=\"product-search\" data-product-search hidden>\n<label "
	    "for=\"product-search\">%s</label>\n<input type=\"search\" id=\"product-search\" "
	    "autocomplete=\"off\" aria-describedby=\"product-search-count\">\n<p "
	    "id=\"product-search-count\" class=\"hint\" aria-live=\"polite\"></p>\n</div>\n",
	    WEB_TX(lang, "Zoek een onderwerp", "Search for a topic"));
	json_array_foreach(cat, i, p) {
		const char *t = web_theme(p);
		int seen = 0;

		if (t == NULL) {
			unthemed = 1;
			continue;
		}
		/* Each theme once, where its first product stands in the catalogue. */
		json_array_foreach(cat, j, q) {
			if (j >= i)
				break;
			if (web_theme(q) != NULL && strcmp(web_theme(q), t) == 0) {
				seen = 1;
				break;
			}
		}
		if (seen)
			continue;
		themed = 1;
		web_product_group(b, lang, cat, t, t, &first, v, e);
	}
	if (unthemed)
		web_product_group(b, lang, cat, NULL,
		    themed ? WEB_TX(lang, "Andere vragen", "Other questions")
			   : WEB_TX(lang, "Alle onderwerpen", "All topics"),
		    &first, v, e);
	web_buf_raw(b, "</fieldset>\n");
}

static void
web_input(struct web_buf *b, enum web_lang lang, const struct web_errors *e, const char *field,
    const char *type, const char *autocomplete, const char *label, const char *hint,
    const char *value)
{
	char hint_id[64];

	snprintf(hint_id, sizeof(hint_id), "%s-hint", field);
	web_buf_printf(b, "<div class=\"field%s\">\n<label for=\"%s\">", web_errors_of(e, field) ?
	    " field-invalid" : "", field);
	web_buf_esc(b, label);
	web_buf_raw(b, "</label>\n");
	if (hint != NULL) {
		web_buf_printf(b, "<p id=\"%s\" class=\"hint\">", hint_id);
		web_buf_esc(b, hint);
		web_buf_raw(b, "</p>\n");
	}
	web_page_field_error(b, lang, e, field);
	web_buf_printf(b, "<input type=\"%s\" id=\"%s\" name=\"%s\" autocomplete=\"%s\"", type,
	    field, field, autocomplete);
	if (strcmp(field, "rrn") == 0)
		web_buf_raw(b, " inputmode=\"numeric\" spellcheck=\"false\"");
	web_page_field_aria(b, e, field, hint != NULL ? hint_id : NULL);
	web_buf_raw(b, " value=\"");
	web_buf_esc(b, value);
	web_buf_raw(b, "\">\n</div>\n");
}

static void
web_privacy_notice(struct web *w, struct web_buf *b, enum web_lang lang)
{
	const char *retention = w->api->config_get(w->self, lang == WEB_EN ? "retention_en" :
									     "retention_nl");
	const char *contact = w->api->config_get(w->self, "privacy_contact");

	web_buf_printf(b, "<section class=\"privacy\" aria-labelledby=\"privacy-title\">\n<h2 "
			  "id=\"privacy-title\">%s</h2>\n<p>",
	    WEB_TX(lang, "Wat gebeurt er met uw gegevens?", "What happens to your data?"));
	web_buf_esc(b, web_org(w, lang));
	web_buf_printf(b, " %s</p>\n<p>",
	    WEB_TX(lang,
		"bewaart uw vraag, uw naam en contactgegevens, het rijksregisternummer als u het "
		"invult, en de bijlagen. We gebruiken ze om uw vraag te beantwoorden en op te "
		"volgen, en voor niets anders.",
		"keeps your question, your name and contact details, your national register "
		"number if you give it, and the attachments. We use them to answer your question "
		"and to follow it up, and for nothing else."));
	web_buf_raw(b, WEB_TX(lang,
	    "Dat doen we omdat het beantwoorden van vragen van burgers een taak van algemeen "
	    "belang van het bestuur is (artikel 6, lid 1, e van de AVG); daarvoor hebben we uw "
	    "toestemming niet nodig. We bewaren uw gegevens ",
	    "We do so because answering citizens' questions is a task the administration carries "
	    "out in the public interest (article 6(1)(e) of the GDPR); this does not depend on "
	    "your consent. We keep your data for "));
	web_buf_esc(b, retention);
	web_buf_raw(b, WEB_TX(lang,
	    " en geven ze aan niemand anders, tenzij de wet het oplegt. U mag uw gegevens inkijken "
	    "en laten verbeteren.",
	    " and give them to nobody else unless the law requires it. You may see your data and "
	    "have it corrected."));
	if (contact != NULL && *contact != '\0') {
		web_buf_raw(b, WEB_TX(lang, " Vragen over uw gegevens: ", " Questions about your data: "));
		web_buf_esc(b, contact);
		web_buf_raw(b, ".");
	}
	web_buf_raw(b, "</p>\n</section>\n");
}

static void
web_form_page(struct web *w, struct loket_http_req *req, enum web_lang lang, int status,
    const struct web_values *v, const struct web_errors *e, const char *token)
{
	struct web_buf b = { 0 };
	json_t *cat = web_catalogue(w);
	char hint[256];
	int64_t max_n = w->api->config_get_int(w->self, "max_attachments");
	int64_t max_mb = (w->api->config_get_int(w->self, "max_attachment_size") + 1048575) / 1048576;

	web_page_begin(&b, lang,
	    e->n > 0 ? WEB_TX(lang, "Fout: stel uw vraag", "Error: ask your question")
		     : WEB_TX(lang, "Stel uw vraag", "Ask your question"),
	    web_org(w, lang), "/loket");
	web_buf_printf(&b, "<h1>%s</h1>\n<p>%s</p>\n",
	    WEB_TX(lang, "Stel uw vraag", "Ask your question"),
	    WEB_TX(lang,
		"Stel hier uw vraag aan de gemeente. U krijgt meteen een referentienummer en de "
		"datum waarop u een antwoord mag verwachten.",
		"Ask the municipality your question here. You get a reference number at once, and "
		"the date by which you can expect an answer."));
	web_page_error_summary(&b, lang, e);
	web_buf_raw(&b, "<form method=\"post\" action=\"/loket\" enctype=\"multipart/form-data\" "
			"novalidate>\n<input type=\"hidden\" name=\"csrf\" id=\"csrf\" value=\"");
	web_buf_esc(&b, token);
	web_buf_printf(&b, "\">\n<input type=\"hidden\" name=\"lang\" value=\"%s\">\n",
	    WEB_TX(lang, "nl", "en"));
	if (json_array_size(cat) > 0)
		web_products(&b, lang, cat, v, e);

	web_buf_printf(&b, "<div class=\"field%s\">\n<label for=\"question\">%s <span "
			   "class=\"required\">%s</span></label>\n",
	    web_errors_of(e, "question") ? " field-invalid" : "",
	    WEB_TX(lang, "Uw vraag", "Your question"), WEB_TX(lang, "(verplicht)", "(required)"));
	web_page_field_error(&b, lang, e, "question");
	web_buf_raw(&b, "<textarea id=\"question\" name=\"question\" rows=\"8\"");
	web_page_field_aria(&b, e, "question", NULL);
	web_buf_raw(&b, ">");
	web_buf_esc(&b, v->question);
	web_buf_raw(&b, "</textarea>\n</div>\n");

	web_buf_printf(&b, "<fieldset class=\"contact\">\n<legend class=\"legend-large\">%s</legend>"
			   "\n<p class=\"hint\">%s</p>\n",
	    WEB_TX(lang, "Hoe bereiken we u?", "How do we reach you?"),
	    WEB_TX(lang, "Vul uw e-mailadres of uw telefoonnummer in, of allebei.",
		"Give your email address or your phone number, or both."));
	web_input(&b, lang, e, "name", "text", "name", WEB_TX(lang, "Uw naam", "Your name"), NULL,
	    v->name);
	web_input(&b, lang, e, "email", "email", "email",
	    WEB_TX(lang, "E-mailadres", "Email address"),
	    WEB_TX(lang, "We sturen u een bevestiging en later het antwoord.",
		"We send you a confirmation, and the answer later."),
	    v->email);
	web_input(&b, lang, e, "phone", "tel", "tel", WEB_TX(lang, "Telefoonnummer", "Phone number"),
	    NULL, v->phone);
	web_buf_raw(&b, "</fieldset>\n");
	web_input(&b, lang, e, "rrn", "text", "off",
	    WEB_TX(lang, "Rijksregisternummer (niet verplicht)",
		"National register number (optional)"),
	    WEB_TX(lang, "11 cijfers, bijvoorbeeld 85.01.01-001.23. U vindt het op de achterkant "
			 "van uw identiteitskaart.",
		"11 digits, for example 85.01.01-001.23. It is on the back of your identity card."),
	    v->rrn);

	if (lang == WEB_EN)
		snprintf(hint, sizeof(hint),
		    "PDF files or images (PNG, JPEG, GIF, WebP): at most %lld files of %lld MB each.",
		    (long long)max_n, (long long)max_mb);
	else
		snprintf(hint, sizeof(hint),
		    "PDF-bestanden of afbeeldingen (PNG, JPEG, GIF, WebP): ten hoogste %lld bestanden "
		    "van elk %lld MB.",
		    (long long)max_n, (long long)max_mb);
	web_buf_printf(&b, "<div class=\"field%s\">\n<label for=\"attachments\">%s</label>\n<p "
			   "id=\"attachments-hint\" class=\"hint\">",
	    web_errors_of(e, "attachments") ? " field-invalid" : "",
	    WEB_TX(lang, "Bijlagen (niet verplicht)", "Attachments (optional)"));
	web_buf_esc(&b, hint);
	if (e->n > 0)
		web_buf_printf(&b, " <strong>%s</strong>",
		    WEB_TX(lang, "Kies uw bijlagen opnieuw: de browser bewaart ze niet na een fout.",
			"Choose your attachments again: the browser does not keep them after an "
			"error."));
	web_buf_raw(&b, "</p>\n");
	web_page_field_error(&b, lang, e, "attachments");
	web_buf_raw(&b, "<input type=\"file\" id=\"attachments\" name=\"attachments\" multiple "
			"accept=\".pdf,.png,.jpg,.jpeg,.gif,.webp,application/pdf,image/png,"
			"image/jpeg,image/gif,image/webp\"");
	web_page_field_aria(&b, e, "attachments", "attachments-hint");
	web_buf_raw(&b, ">\n</div>\n");

	/* The honeypot: out of sight, out of the tab order, hidden from screen readers. */
	web_buf_printf(&b, "<div class=\"hp\" aria-hidden=\"true\">\n<label for=\"website\">%s</label>\n"
			   "<input type=\"text\" id=\"website\" name=\"website\" tabindex=\"-1\" "
			   "autocomplete=\"off\" value=\"\">\n</div>\n",
	    WEB_TX(lang, "Laat dit veld leeg", "Leave this field empty"));

	web_privacy_notice(w, &b, lang);
	web_buf_printf(&b, "<div class=\"field checkbox%s\">\n",
	    web_errors_of(e, "privacy") ? " field-invalid" : "");
	web_page_field_error(&b, lang, e, "privacy");
	web_buf_raw(&b, "<input type=\"checkbox\" id=\"privacy\" name=\"privacy\" value=\"yes\"");
	if (v->privacy)
		web_buf_raw(&b, " checked");
	web_page_field_aria(&b, e, "privacy", NULL);
	web_buf_printf(&b, ">\n<label for=\"privacy\">%s <span class=\"required\">%s</span></label>\n"
			   "</div>\n<button type=\"submit\" class=\"button\">%s</button>\n</form>\n",
	    WEB_TX(lang, "Ik heb gelezen wat er met mijn gegevens gebeurt.",
		"I have read what happens to my data."),
	    WEB_TX(lang, "(verplicht)", "(required)"),
	    WEB_TX(lang, "Vraag versturen", "Send my question"));
	web_page_end(&b, lang);
	json_decref(cat);
	web_send(w, req, status, &b);
}

static void
web_get_form_cb(struct loket_http_req *req, void *arg)
{
	struct web *w = arg;
	enum web_lang lang = web_lang(w, req, NULL);
	struct web_values v = { 0 };
	struct web_errors e = { 0 };
	char secret[WEB_CSRF_SECRET_LEN + 1];
	char *token;

	web_secret(w, req, secret);
	if ((token = web_csrf_token(secret)) == NULL) {
		w->api->http_problem(req, 503, "out of memory");
		return;
	}
	web_form_page(w, req, lang, 200, &v, &e, token);
	free(token);
}

/* ---- the post ---- */

struct web_file {
	char name[256];
	const char *content_type;
	const char *data;
	size_t len;
};

struct web_post {
	struct web *w;
	struct loket_http_req *req;
	enum web_lang lang;
	struct web_values v;
	int has_email;
};

static void
web_post_free(struct web_post *p)
{
	web_values_free(&p->v);
	free(p);
}

/* A file's name to show staff: the last path segment, without control characters. */
static void
web_file_name(const char *in, char *out, size_t len)
{
	const char *s = in != NULL ? in : "";
	size_t n = 0;

	for (const char *p = s; *p != '\0'; p++)
		if (*p == '/' || *p == '\\')
			s = p + 1;
	for (; *s != '\0' && n + 1 < len; s++)
		if ((unsigned char)*s >= 0x20 && *s != 0x7f)
			out[n++] = *s;
	out[n] = '\0';
	if (n == 0)
		snprintf(out, len, "bijlage");
}

static int64_t
web_parse_time(const char *s)
{
	struct tm tm = { 0 };
	int y, mo, d, h, mi, se;

	if (s == NULL || sscanf(s, "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi, &se) != 6)
		return 0;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	return (int64_t)timegm(&tm) * 1000;
}

static void
web_confirmation(struct web_post *p, const struct loket_submit_result *res)
{
	struct web *w = p->w;
	enum web_lang lang = p->lang;
	json_t *doc = res->json != NULL ? json_loads(res->json, 0, NULL) : NULL;
	int64_t received = web_parse_time(json_string_value(json_object_get(doc, "received_at")));
	const char *product = json_string_value(json_object_get(doc, "product"));
	struct web_buf b = { 0 };
	int64_t due = 0;

	if (received == 0)
		received = (int64_t)time(NULL) * 1000;
	web_page_begin(&b, lang, WEB_TX(lang, "Uw vraag is ontvangen", "We received your question"),
	    web_org(w, lang), "/loket");
	web_buf_printf(&b, "<h1>%s</h1>\n<div class=\"panel\">\n<p>%s</p>\n<p class=\"reference\">"
			   "<strong id=\"reference\">",
	    WEB_TX(lang, "Uw vraag is ontvangen", "We received your question"),
	    WEB_TX(lang, "Uw referentienummer", "Your reference number"));
	web_buf_esc(&b, res->reference);
	web_buf_raw(&b, "</strong></p>\n</div>\n");
	if (w->api->expected_answer(w->self, product, received, &due) == 0) {
		web_buf_printf(&b, "<p>%s ", WEB_TX(lang, "U krijgt een antwoord uiterlijk op",
						   "You will have an answer by"));
		web_page_date(&b, lang, "expected", due);
		web_buf_raw(&b, ".</p>\n");
	}
	if (p->has_email)
		web_buf_printf(&b, "<p>%s</p>\n",
		    WEB_TX(lang, "We sturen u ook een bevestiging per e-mail.",
			"We also send you a confirmation by email."));
	web_buf_printf(&b, "<p>%s <a href=\"/loket/status%s\">%s</a>.</p>\n<p><a href=\"/loket%s\">%s"
			   "</a></p>\n",
	    WEB_TX(lang, "Noteer uw referentienummer. Daarmee en met uw e-mailadres of "
			 "telefoonnummer kunt u",
		"Keep your reference number. With it and your email address or phone number you "
		"can"),
	    WEB_TX(lang, "", "?lang=en"),
	    WEB_TX(lang, "de stand van uw vraag volgen", "follow the status of your question"),
	    WEB_TX(lang, "", "?lang=en"), WEB_TX(lang, "Nog een vraag stellen", "Ask another question"));
	web_page_end(&b, lang);
	json_decref(doc);
	web_send(w, p->req, 200, &b);
}

static void
web_submitted_cb(const struct loket_submit_result *res, void *arg)
{
	struct web_post *p = arg;
	struct web *w = p->w;
	struct web_errors e = { 0 };
	const char *field = NULL;

	if (res->status == 0) {
		w->api->log(w->self, LOKET_LOG_INFO, "form registered contact=%lld duplicate=%d",
		    (long long)res->contact_id, res->duplicate);
		web_confirmation(p, res);
		web_post_free(p);
		return;
	}
	/* The register refused a value: shown at its field when it names one. */
	if (res->status == 422 && res->error != NULL) {
		if (strncmp(res->error, "party.rrn", 9) == 0)
			field = "rrn";
		else if (strncmp(res->error, "party.email", 11) == 0)
			field = "email";
		else if (strncmp(res->error, "party.phone", 11) == 0)
			field = "phone";
		else if (strncmp(res->error, "party.name", 10) == 0)
			field = "name";
	}
	w->api->log(w->self, LOKET_LOG_WARN, "form refused by the register status=%d field=%s",
	    res->status, field != NULL ? field : "-");
	if (field != NULL)
		web_errors_add(&e, field,
		    WEB_TX(p->lang, "Deze gegevens kloppen niet; kijk ze na.",
			"This is not right; please check it."));
	else
		web_errors_add(&e, "question",
		    WEB_TX(p->lang,
			"Uw vraag kon nu niet worden geregistreerd. Verstuur het formulier over "
			"enkele minuten opnieuw; u maakt daarmee geen tweede vraag.",
			"Your question could not be registered now. Send the form again in a few "
			"minutes; that does not make a second question."));
	web_form_page(w, p->req, p->lang, field != NULL ? 422 : 503, &p->v, &e, p->v.csrf);
	web_errors_free(&e);
	web_post_free(p);
}

/* Reads and checks the form; fills v and e, and files with the attachments. */
static void
web_check(struct web *w, enum web_lang lang, const struct web_form *form, json_t *cat,
    struct web_values *v, struct web_errors *e, struct web_file *files, size_t *nfiles)
{
	int64_t max_files = w->api->config_get_int(w->self, "max_attachments");
	int64_t max_size = w->api->config_get_int(w->self, "max_attachment_size");
	int64_t max_question = w->api->config_get_int(w->self, "max_question");
	char msg[512];
	const struct web_field *priv = web_form_get(form, "privacy");

	v->product = web_form_text(form, "product");
	v->question = web_form_text(form, "question");
	v->name = web_form_text(form, "name");
	v->email = web_form_text(form, "email");
	v->phone = web_form_text(form, "phone");
	v->rrn = web_form_text(form, "rrn");
	v->privacy = priv != NULL && priv->value[0] != '\0';

	/* In the order of the form, so the summary reads top to bottom. */
	if (json_array_size(cat) > 0) {
		if (v->product == NULL || *v->product == '\0')
			web_errors_add(e, "product",
			    WEB_TX(lang, "Kies waarover uw vraag gaat.",
				"Choose what your question is about."));
		else if (web_product(cat, v->product) == NULL)
			web_errors_add(e, "product",
			    WEB_TX(lang, "Kies een onderwerp uit de lijst.",
				"Choose a topic from the list."));
	}
	if (v->question == NULL || *v->question == '\0')
		web_errors_add(e, "question", WEB_TX(lang, "Vul uw vraag in.", "Type your question."));
	else if (!web_text_ok(v->question, strlen(v->question)))
		web_errors_add(e, "question",
		    WEB_TX(lang, "Uw vraag bevat tekens die we niet kunnen lezen.",
			"Your question holds characters we cannot read."));
	else if ((int64_t)strlen(v->question) > max_question) {
		snprintf(msg, sizeof(msg),
		    WEB_TX(lang, "Uw vraag is te lang: ten hoogste %lld tekens.",
			"Your question is too long: at most %lld characters."),
		    (long long)max_question);
		web_errors_add(e, "question", msg);
	}
	if (v->name != NULL && (!web_text_ok(v->name, strlen(v->name)) || strlen(v->name) > 200 ||
				   strpbrk(v->name, "\r\n") != NULL))
		web_errors_add(e, "name",
		    WEB_TX(lang, "Vul uw naam in zonder regeleinden, ten hoogste 200 tekens.",
			"Type your name without line breaks, at most 200 characters."));
	if (v->email != NULL && *v->email != '\0' && !web_email_ok(v->email))
		web_errors_add(e, "email",
		    WEB_TX(lang, "Vul een geldig e-mailadres in, zoals naam@voorbeeld.be.",
			"Type a valid email address, such as name@example.be."));
	if (v->phone != NULL && *v->phone != '\0' && !web_phone_ok(v->phone))
		web_errors_add(e, "phone",
		    WEB_TX(lang, "Vul een geldig telefoonnummer in, zoals 03 123 45 67.",
			"Type a valid phone number, such as +32 3 123 45 67."));
	if ((v->email == NULL || *v->email == '\0') && (v->phone == NULL || *v->phone == '\0'))
		web_errors_add(e, "email",
		    WEB_TX(lang, "Vul uw e-mailadres of uw telefoonnummer in, zodat we u kunnen "
				 "antwoorden.",
			"Give your email address or your phone number, so that we can answer you."));
	if (v->rrn != NULL && *v->rrn != '\0' && !web_rrn_ok(v->rrn))
		web_errors_add(e, "rrn",
		    WEB_TX(lang, "Dit rijksregisternummer klopt niet: kijk de 11 cijfers na.",
			"This national register number is not right: check the 11 digits."));

	*nfiles = 0;
	for (size_t i = 0; i < form->n; i++) {
		const struct web_field *f = &form->fields[i];
		struct web_file *file;
		char shown[256];

		if (strcmp(f->name, "attachments") != 0)
			continue;
		/* A file input left empty still sends a part: no name, no bytes. */
		if (f->len == 0 && (f->filename == NULL || f->filename[0] == '\0'))
			continue;
		web_file_name(f->filename, shown, sizeof(shown));
		if ((int64_t)*nfiles >= max_files) {
			snprintf(msg, sizeof(msg),
			    WEB_TX(lang, "Voeg ten hoogste %lld bestanden toe.",
				"Add at most %lld files."),
			    (long long)max_files);
			web_errors_add(e, "attachments", msg);
			break;
		}
		file = &files[(*nfiles)++];
		snprintf(file->name, sizeof(file->name), "%s", shown);
		file->data = f->value;
		file->len = f->len;
		file->content_type = web_sniff(f->value, f->len);
		if (f->len == 0)
			snprintf(msg, sizeof(msg),
			    WEB_TX(lang, "Het bestand %s is leeg.", "The file %s is empty."), shown);
		else if ((int64_t)f->len > max_size)
			snprintf(msg, sizeof(msg),
			    WEB_TX(lang, "Het bestand %s is te groot: ten hoogste %lld MB.",
				"The file %s is too large: at most %lld MB."),
			    shown, (long long)((max_size + 1048575) / 1048576));
		else if (file->content_type == NULL)
			snprintf(msg, sizeof(msg),
			    WEB_TX(lang, "Het bestand %s is geen PDF of afbeelding (PNG, JPEG, GIF, "
					 "WebP).",
				"The file %s is not a PDF or an image (PNG, JPEG, GIF, WebP)."),
			    shown);
		else
			continue;
		web_errors_add(e, "attachments", msg);
	}
	if (!v->privacy)
		web_errors_add(e, "privacy",
		    WEB_TX(lang, "Bevestig dat u gelezen hebt wat er met uw gegevens gebeurt.",
			"Confirm that you have read what happens to your data."));
}

static char *
web_message_json(struct web *w, const struct web_values *v, const char *subject,
    const struct web_file *files, size_t nfiles, enum web_lang lang, const char **error_r)
{
	json_t *atts = json_array(), *doc;
	char hex[65], why[256];
	char *text;

	/* blob_put blocks on the disk: a few MB on the loop is accepted for now (docs/eloket.md). */
	for (size_t i = 0; i < nfiles; i++) {
		if (w->api->blob_put(w->self, files[i].data, files[i].len, 0, hex, why,
			sizeof(why)) < 0) {
			w->api->log(w->self, LOKET_LOG_ERROR, "cannot keep an attachment reason=\"%s\"",
			    why);
			json_decref(atts);
			*error_r = "the attachments cannot be kept now";
			return NULL;
		}
		json_array_append_new(atts, json_pack("{s:s, s:s, s:s, s:I}", "name", files[i].name,
						"content_type", files[i].content_type, "sha256", hex,
						"size", (json_int_t)files[i].len));
	}
	doc = json_pack("{s:s?, s:s, s:s, s:o, s:{s:s, s:s}}", "sender",
	    v->email != NULL && *v->email != '\0' ? v->email : NULL, "subject", subject, "body",
	    v->question, "attachments", atts, "meta", "form", "loket", "language",
	    WEB_TX(lang, "nl", "en"));
	if (doc == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (text == NULL)
		*error_r = "out of memory";
	return text;
}

static void
web_post_form_cb(struct loket_http_req *req, void *arg)
{
	struct web *w = arg;
	enum web_lang lang = web_lang(w, req, NULL);
	struct web_form form = { 0 };
	struct web_errors e = { 0 };
	struct web_post *p = NULL;
	struct web_file *files = NULL;
	struct loket_contact *c = NULL;
	json_t *cat = NULL, *product;
	char client[64], secret[WEB_CSRF_SECRET_LEN + 1], key[128], hex[65];
	const char *error = NULL, *body, *subject;
	const struct web_field *hp;
	char *msg = NULL;
	size_t len = 0, nfiles = 0;
	int64_t retry;

	retry = web_rate_hit(w->posts, web_client(w, req, client, sizeof(client)),
	    w->api->config_get_int(w->self, "post_limit"),
	    w->api->config_get_int(w->self, "post_window"));
	if (retry > 0) {
		w->api->log(w->self, LOKET_LOG_WARN, "form posts rate-limited retry_after=%lld",
		    (long long)retry);
		web_send_rate_limited(w, req, lang, retry, "/loket");
		return;
	}
	body = w->api->http_body(req, &len);
	if ((int64_t)len > w->api->config_get_int(w->self, "max_body")) {
		web_send_message(w, req, lang, 413,
		    WEB_TX(lang, "Uw formulier is te groot", "Your form is too large"),
		    WEB_TX(lang, "Samen waren uw bijlagen te groot om te versturen. Verstuur minder "
				 "of kleinere bestanden.",
			"Together your attachments were too large to send. Send fewer or smaller "
			"files."),
		    "/loket", WEB_TX(lang, "Terug naar het formulier", "Back to the form"));
		return;
	}
	if (web_form_parse(w->api->http_header(req, "Content-Type"), body, len, 0, &form,
		&error) < 0) {
		w->api->log(w->self, LOKET_LOG_WARN, "form unreadable reason=\"%s\"", error);
		web_send_message(w, req, lang, 400,
		    WEB_TX(lang, "Uw formulier kon niet gelezen worden",
			"Your form could not be read"),
		    WEB_TX(lang, "Open het formulier opnieuw en verstuur het nog eens.",
			"Open the form again and send it once more."),
		    "/loket", WEB_TX(lang, "Naar het formulier", "To the form"));
		return;
	}
	lang = web_lang(w, req, &form);

	{
		const struct web_field *tok = web_form_get(&form, "csrf");

		if (web_csrf_cookie(w->api->http_header(req, "Cookie"), secret) < 0 || tok == NULL ||
		    web_csrf_check(secret, tok->value) < 0) {
			w->api->log(w->self, LOKET_LOG_WARN, "form refused: CSRF token missing or "
							     "wrong");
			web_send_message(w, req, lang, 403,
			    WEB_TX(lang, "Uw formulier is verlopen", "Your form has expired"),
			    WEB_TX(lang,
				"We konden niet nagaan dat dit formulier van deze website kwam. Dat "
				"gebeurt als cookies uit staan of als het formulier van een andere "
				"site kwam. Laat cookies toe voor deze site, open het formulier "
				"opnieuw en vul het nog eens in; er is niets verstuurd.",
				"We could not check that this form came from this website. That happens "
				"when cookies are off or when the form came from another site. Allow "
				"cookies for this site, open the form again and fill it in once more; "
				"nothing was sent."),
			    "/loket", WEB_TX(lang, "Het formulier opnieuw openen", "Open the form again"));
			web_form_free(&form);
			return;
		}
	}
	/* A bot that fills every field sees a plain thank-you; nothing is registered. */
	if ((hp = web_form_get(&form, "website")) != NULL && hp->value[0] != '\0') {
		w->api->log(w->self, LOKET_LOG_WARN, "form dropped: honeypot filled");
		web_send_message(w, req, lang, 200,
		    WEB_TX(lang, "Bedankt", "Thank you"),
		    WEB_TX(lang, "Uw formulier is verstuurd.", "Your form was sent."), "/loket",
		    WEB_TX(lang, "Naar het formulier", "To the form"));
		web_form_free(&form);
		return;
	}

	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (files = calloc((size_t)w->api->config_get_int(w->self, "max_attachments") + 1,
		 sizeof(*files))) == NULL) {
		error = "out of memory";
		goto fail;
	}
	p->w = w;
	p->req = req;
	p->lang = lang;
	p->v.csrf = web_form_text(&form, "csrf");
	cat = web_catalogue(w);
	web_check(w, lang, &form, cat, &p->v, &e, files, &nfiles);
	if (e.n > 0) {
		w->api->log(w->self, LOKET_LOG_INFO, "form returned with errors count=%zu first=%s",
		    e.n, e.field[0]);
		web_form_page(w, req, lang, 422, &p->v, &e, p->v.csrf);
		goto done;
	}
	p->has_email = p->v.email != NULL && *p->v.email != '\0';
	product = web_product(cat, p->v.product);
	subject = product != NULL ? json_string_value(json_object_get(product, "name")) : NULL;
	if (subject == NULL)
		subject = WEB_TX(lang, "Vraag via het e-loket", "Question through the e-counter");
	if ((msg = web_message_json(w, &p->v, subject, files, nfiles, lang, &error)) == NULL)
		goto fail;
	if ((c = w->api->contact_new(w->self, "web")) == NULL) {
		error = "out of memory";
		goto fail;
	}
	/* The form's token names this filled-in form: sent twice, it is one contact. */
	web_sha256_hex(p->v.csrf, strlen(p->v.csrf), hex);
	snprintf(key, sizeof(key), "web:form:%s", hex);
	if (w->api->contact_set(c, "subject", subject) < 0 ||
	    w->api->contact_set(c, "body", p->v.question) < 0 ||
	    w->api->contact_set(c, "language", WEB_TX(lang, "nl", "en")) < 0 ||
	    (p->v.product != NULL && *p->v.product != '\0' &&
		w->api->contact_set(c, "product", p->v.product) < 0) ||
	    (p->v.name != NULL && *p->v.name != '\0' &&
		w->api->contact_set(c, "party.name", p->v.name) < 0) ||
	    (p->has_email && w->api->contact_set(c, "party.email", p->v.email) < 0) ||
	    (p->v.phone != NULL && *p->v.phone != '\0' &&
		w->api->contact_set(c, "party.phone", p->v.phone) < 0) ||
	    (p->v.rrn != NULL && *p->v.rrn != '\0' &&
		w->api->contact_set(c, "party.rrn", p->v.rrn) < 0) ||
	    w->api->contact_key(c, key) < 0 || w->api->contact_message(c, msg) < 0) {
		error = "out of memory";
		goto fail;
	}
	w->api->contact_submit(c, web_submitted_cb, p);
	c = NULL;
	p = NULL; /* the callback answers and frees it */
	goto done;
fail:
	w->api->log(w->self, LOKET_LOG_ERROR, "form not registered reason=\"%s\"", error);
	if (c != NULL)
		w->api->contact_free(c);
	if (p != NULL) {
		web_errors_free(&e);
		web_errors_add(&e, "question",
		    WEB_TX(lang,
			"Uw vraag kon nu niet worden geregistreerd. Verstuur het formulier over "
			"enkele minuten opnieuw; u maakt daarmee geen tweede vraag.",
			"Your question could not be registered now. Send the form again in a few "
			"minutes; that does not make a second question."));
		web_form_page(w, req, lang, 503, &p->v, &e, p->v.csrf != NULL ? p->v.csrf : "");
	} else {
		w->api->http_problem(req, 503, "out of memory");
	}
done:
	free(msg);
	free(files);
	json_decref(cat);
	web_errors_free(&e);
	if (p != NULL)
		web_post_free(p);
	web_form_free(&form);
}

/* ---- the status page ---- */

static void
web_status_form(struct web *w, struct loket_http_req *req, enum web_lang lang, int status,
    const char *notice, const struct web_errors *e, const char *reference, const char *contact)
{
	struct web_buf b = { 0 };

	web_page_begin(&b, lang,
	    e->n > 0 ? WEB_TX(lang, "Fout: de stand van uw vraag", "Error: the status of your question")
		     : WEB_TX(lang, "De stand van uw vraag", "The status of your question"),
	    web_org(w, lang), "/loket/status");
	web_buf_printf(&b, "<h1>%s</h1>\n",
	    WEB_TX(lang, "De stand van uw vraag", "The status of your question"));
	if (notice != NULL) {
		web_buf_raw(&b, "<div id=\"notice\" class=\"notice\" role=\"alert\"><p>");
		web_buf_esc(&b, notice);
		web_buf_raw(&b, "</p></div>\n");
	}
	web_page_error_summary(&b, lang, e);
	web_buf_printf(&b, "<p>%s</p>\n<form method=\"post\" action=\"/loket/status\" novalidate>\n"
			   "<input type=\"hidden\" name=\"lang\" value=\"%s\">\n",
	    WEB_TX(lang, "Vul het referentienummer in dat u kreeg, en het e-mailadres of "
			 "telefoonnummer dat u bij uw vraag opgaf.",
		"Type the reference number you were given, and the email address or phone number "
		"you gave with your question."),
	    WEB_TX(lang, "nl", "en"));
	web_input(&b, lang, e, "reference", "text", "off",
	    WEB_TX(lang, "Referentienummer", "Reference number"),
	    WEB_TX(lang, "Bijvoorbeeld 2026-000123.", "For example 2026-000123."), reference);
	web_input(&b, lang, e, "contact", "text", "email",
	    WEB_TX(lang, "E-mailadres of telefoonnummer", "Email address or phone number"), NULL,
	    contact);
	web_buf_printf(&b, "<button type=\"submit\" class=\"button\">%s</button>\n</form>\n",
	    WEB_TX(lang, "Bekijk de stand", "Show the status"));
	web_page_end(&b, lang);
	web_send(w, req, status, &b);
}

static void
web_get_status_cb(struct loket_http_req *req, void *arg)
{
	struct web *w = arg;
	struct web_errors e = { 0 };

	web_status_form(w, req, web_lang(w, req, NULL), 200, NULL, &e, NULL, NULL);
}

struct web_lookup {
	struct web *w;
	struct loket_http_req *req;
	enum web_lang lang;
};

static const char *
web_status_words(enum web_lang lang, const char *status, int answered)
{
	if (status == NULL)
		return "";
	if (strcmp(status, "open") == 0)
		return answered ? WEB_TX(lang, "Beantwoord", "Answered")
				: WEB_TX(lang, "Ontvangen, in behandeling", "Received, being handled");
	if (strcmp(status, "escalated") == 0)
		return WEB_TX(lang, "Doorgegeven aan de dienst die uw vraag behandelt",
		    "Passed on to the department that handles your question");
	if (strcmp(status, "resolved") == 0)
		return WEB_TX(lang, "Beantwoord", "Answered");
	if (strcmp(status, "closed") == 0)
		return WEB_TX(lang, "Afgesloten", "Closed");
	return status;
}

static void
web_status_result(struct web_lookup *l, json_t *doc)
{
	struct web *w = l->w;
	enum web_lang lang = l->lang;
	struct web_buf b = { 0 };
	const char *ref = json_string_value(json_object_get(doc, "reference"));
	const char *answer = json_string_value(json_object_get(doc, "answer"));
	int64_t received = web_parse_time(json_string_value(json_object_get(doc, "received_at")));
	int64_t expected = web_parse_time(json_string_value(json_object_get(doc, "expected_at")));
	int64_t answered = web_parse_time(json_string_value(json_object_get(doc, "answered_at")));

	web_page_begin(&b, lang, WEB_TX(lang, "De stand van uw vraag", "The status of your question"),
	    web_org(w, lang), "/loket/status");
	web_buf_printf(&b, "<h1>%s <span class=\"nowrap\">", WEB_TX(lang, "Uw vraag", "Your question"));
	web_buf_esc(&b, ref);
	web_buf_printf(&b, "</span></h1>\n<dl class=\"status\">\n<dt>%s</dt>\n<dd id=\"status\">",
	    WEB_TX(lang, "Stand", "Status"));
	web_buf_esc(&b, web_status_words(lang,
			    json_string_value(json_object_get(doc, "status")), answer != NULL));
	web_buf_raw(&b, "</dd>\n");
	if (received != 0) {
		web_buf_printf(&b, "<dt>%s</dt>\n<dd>", WEB_TX(lang, "Ontvangen op", "Received on"));
		web_page_date(&b, lang, "received", received);
		web_buf_raw(&b, "</dd>\n");
	}
	web_buf_printf(&b, "<dt>%s</dt>\n<dd>",
	    answered != 0 ? WEB_TX(lang, "Beantwoord op", "Answered on")
			  : WEB_TX(lang, "Antwoord verwacht uiterlijk op", "Answer expected by"));
	if (answered != 0)
		web_page_date(&b, lang, "expected", answered);
	else if (expected != 0)
		web_page_date(&b, lang, "expected", expected);
	else
		web_buf_printf(&b, "<span id=\"expected\">%s</span>",
		    WEB_TX(lang, "nog niet bekend", "not known yet"));
	web_buf_raw(&b, "</dd>\n</dl>\n");
	if (answer != NULL) {
		web_buf_printf(&b, "<section aria-labelledby=\"answer-title\">\n<h2 id=\"answer-title\">"
				   "%s</h2>\n<div id=\"answer\" class=\"answer\">",
		    WEB_TX(lang, "Ons antwoord", "Our answer"));
		web_buf_esc(&b, answer);
		web_buf_raw(&b, "</div>\n</section>\n");
	}
	web_buf_printf(&b, "<p><a href=\"/loket/status%s\">%s</a></p>\n", WEB_TX(lang, "", "?lang=en"),
	    WEB_TX(lang, "Een andere vraag opzoeken", "Look up another question"));
	web_page_end(&b, lang);
	web_send(w, l->req, 200, &b);
}

static void
web_status_cb(int status, const char *json, void *arg)
{
	struct web_lookup *l = arg;
	struct web *w = l->w;
	struct web_errors e = { 0 };
	json_t *doc = status == 0 && json != NULL ? json_loads(json, 0, NULL) : NULL;

	if (doc != NULL) {
		web_status_result(l, doc);
	} else if (status == 0 || status == 404) {
		/* One page whatever did not match: nothing in it tells which part was wrong. */
		web_status_form(w, l->req, l->lang, 404,
		    WEB_TX(l->lang,
			"We vinden geen vraag met dit referentienummer en dit e-mailadres of "
			"telefoonnummer. Kijk beide na en probeer het opnieuw.",
			"We find no question with this reference number and this email address or "
			"phone number. Check both and try again."),
		    &e, NULL, NULL);
	} else {
		w->api->http_header_set(l->req, "Retry-After", "30");
		web_send_message(w, l->req, l->lang, 503,
		    WEB_TX(l->lang, "Even niet beschikbaar", "Not available for a moment"),
		    WEB_TX(l->lang, "We kunnen de stand van uw vraag nu niet opzoeken. Probeer het "
				    "over enkele minuten opnieuw.",
			"We cannot look up your question right now. Try again in a few minutes."),
		    "/loket/status", WEB_TX(l->lang, "Opnieuw proberen", "Try again"));
	}
	json_decref(doc);
	free(l);
}

static void
web_post_status_cb(struct loket_http_req *req, void *arg)
{
	struct web *w = arg;
	enum web_lang lang = web_lang(w, req, NULL);
	struct web_form form = { 0 };
	struct web_errors e = { 0 };
	struct web_lookup *l;
	const char *error = NULL, *body;
	char client[64], *ref = NULL, *contact = NULL;
	size_t len = 0;
	int64_t retry;

	retry = web_rate_hit(w->lookups, web_client(w, req, client, sizeof(client)),
	    w->api->config_get_int(w->self, "status_limit"),
	    w->api->config_get_int(w->self, "status_window"));
	if (retry > 0) {
		w->api->log(w->self, LOKET_LOG_WARN, "status look-ups rate-limited retry_after=%lld",
		    (long long)retry);
		web_send_rate_limited(w, req, lang, retry, "/loket/status");
		return;
	}
	body = w->api->http_body(req, &len);
	if (web_form_parse(w->api->http_header(req, "Content-Type"), body, len, 1, &form,
		&error) < 0) {
		web_status_form(w, req, lang, 400,
		    WEB_TX(lang, "Uw formulier kon niet gelezen worden; vul het opnieuw in.",
			"Your form could not be read; fill it in again."),
		    &e, NULL, NULL);
		return;
	}
	lang = web_lang(w, req, &form);
	ref = web_form_text(&form, "reference");
	contact = web_form_text(&form, "contact");
	if (ref == NULL || *ref == '\0')
		web_errors_add(&e, "reference",
		    WEB_TX(lang, "Vul uw referentienummer in.", "Type your reference number."));
	if (contact == NULL || *contact == '\0')
		web_errors_add(&e, "contact",
		    WEB_TX(lang, "Vul het e-mailadres of telefoonnummer in dat u bij uw vraag opgaf.",
			"Type the email address or phone number you gave with your question."));
	if (e.n > 0) {
		web_status_form(w, req, lang, 422, NULL, &e, ref, contact);
		goto done;
	}
	if (!LOKET_API_HAS(w->api, contact_status)) {
		w->api->http_header_set(req, "Retry-After", "3600");
		web_send_message(w, req, lang, 503,
		    WEB_TX(lang, "Even niet beschikbaar", "Not available for a moment"),
		    WEB_TX(lang, "Het opzoeken van uw vraag werkt hier nog niet. Neem contact op "
				 "met de gemeente.",
			"Looking up your question does not work here yet. Please contact the "
			"municipality."),
		    "/loket", WEB_TX(lang, "Naar het formulier", "To the form"));
		goto done;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		w->api->http_problem(req, 503, "out of memory");
		goto done;
	}
	l->w = w;
	l->req = req;
	l->lang = lang;
	if (w->api->contact_status(w->self, ref, contact, web_status_cb, l) < 0) {
		free(l);
		w->api->http_problem(req, 503, "the status cannot be looked up now");
	}
done:
	free(ref);
	free(contact);
	web_errors_free(&e);
	web_form_free(&form);
}

/* ---- the plugin ---- */

static int
web_load(struct loket_plugin *self, const struct loket_api *api, const char **error_r)
{
	struct web *w;

	if (!LOKET_API_HAS(api, catalogue_json) || !LOKET_API_HAS(api, expected_answer) ||
	    !LOKET_API_HAS(api, http_header_set) || !LOKET_API_HAS(api, http_peer)) {
		*error_r = "this loketd is too old for chan_web (it needs plugin ABI 1.8 with "
			   "http_header_set and http_peer)";
		return -1;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL || (w->posts = web_rate_new()) == NULL ||
	    (w->lookups = web_rate_new()) == NULL) {
		if (w != NULL)
			web_rate_free(w->posts);
		free(w);
		*error_r = "out of memory";
		return -1;
	}
	w->api = api;
	w->self = self;
	web_form_init();
	if (api->http_route(self, LOKET_HTTP_GET | LOKET_HTTP_HEAD, "/loket", LOKET_ACCESS_PUBLIC,
		web_get_form_cb, w) < 0 ||
	    api->http_route(self, LOKET_HTTP_POST, "/loket", LOKET_ACCESS_PUBLIC, web_post_form_cb,
		w) < 0 ||
	    api->http_route(self, LOKET_HTTP_GET | LOKET_HTTP_HEAD, "/loket/status",
		LOKET_ACCESS_PUBLIC, web_get_status_cb, w) < 0 ||
	    api->http_route(self, LOKET_HTTP_POST, "/loket/status", LOKET_ACCESS_PUBLIC,
		web_post_status_cb, w) < 0) {
		web_form_shutdown();
		web_rate_free(w->posts);
		web_rate_free(w->lookups);
		free(w);
		*error_r = "cannot add the /loket routes";
		return -1;
	}
	api->set_data(self, w);
	api->log(self, LOKET_LOG_INFO, "ready status_lookup=%s",
	    LOKET_API_HAS(api, contact_status) ? "yes" : "no");
	return 0;
}

/* Rate limit counts survive a reload; the pages ask config_get on each request. */
static int
web_reload(struct loket_plugin *self, const struct loket_api *api, const char **error_r)
{
	(void)self;
	(void)api;
	(void)error_r;
	return 0;
}

static void
web_unload(struct loket_plugin *self, const struct loket_api *api)
{
	struct web *w = api->get_data(self);

	web_rate_free(w->posts);
	web_rate_free(w->lookups);
	free(w);
	web_form_shutdown();
}

LOKET_PLUGIN_DEFINE(.name = "chan_web", .version = "1.0",
    .description = "the e-loket: a public form and status page on channel web",
    .config_keys = web_keys, .load = web_load, .unload = web_unload, .reload = web_reload);
