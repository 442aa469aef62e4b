/*
 * web_page.c: the frame every e-loket page shares, and the pieces of a form
 * with errors (GOV.UK's pattern: a summary at the top linking to each
 * field, the message beside the field, aria-describedby between them).
 * Everything shown that came from outside goes through web_buf_esc; the
 * pages carry no inline script or style, so the core's strict CSP holds.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "web.h"

void
web_buf_put(struct web_buf *b, const char *s, size_t n)
{
	char *data;

	if (b->broken)
		return;
	if (b->len + n + 1 > b->size) {
		size_t size = (b->len + n + 1) * 2;

		if ((data = realloc(b->data, size)) == NULL) {
			b->broken = 1;
			return;
		}
		b->data = data;
		b->size = size;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
web_buf_raw(struct web_buf *b, const char *s)
{
	web_buf_put(b, s, strlen(s));
}

void
web_buf_printf(struct web_buf *b, const char *fmt, ...)
{
	char small[512], *big = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->broken = 1;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		web_buf_put(b, small, (size_t)n);
		return;
	}
	if ((big = malloc((size_t)n + 1)) == NULL) {
		b->broken = 1;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	web_buf_put(b, big, (size_t)n);
	free(big);
}

void
web_buf_esc_n(struct web_buf *b, const char *s, size_t n)
{
	size_t run = 0;

	for (size_t i = 0; i < n; i++) {
		const char *rep = NULL;

		switch (s[i]) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		case '\0': rep = ""; break;
		default: break;
		}
		if (rep == NULL)
			continue;
		web_buf_put(b, s + run, i - run);
		web_buf_raw(b, rep);
		run = i + 1;
	}
	web_buf_put(b, s + run, n - run);
}

void
web_buf_esc(struct web_buf *b, const char *s)
{
	if (s != NULL)
		web_buf_esc_n(b, s, strlen(s));
}

void
web_buf_free(struct web_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void
web_page_begin(struct web_buf *b, enum web_lang lang, const char *title, const char *org,
    const char *path)
{
	web_buf_printf(b,
	    "<!DOCTYPE html>\n<html lang=\"%s\">\n<head>\n<meta charset=\"utf-8\">\n"
	    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
	    WEB_TX(lang, "nl-BE", "en"));
	web_buf_esc(b, title);
	web_buf_raw(b, " – ");
	web_buf_esc(b, org);
	/* The staff UI's icon (web_dir): without one the browser asks for /favicon.ico, a 404. */
	web_buf_raw(b, "</title>\n<link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\">\n"
		       "<link rel=\"stylesheet\" href=\"/eloket/eloket.css\">\n"
		       "<script type=\"module\" src=\"/eloket/eloket.js\"></script>\n</head>\n<body>\n");
	web_buf_printf(b, "<a class=\"skip-link\" href=\"#main\">%s</a>\n",
	    WEB_TX(lang, "Naar de inhoud", "Skip to the content"));
	web_buf_raw(b, "<header class=\"site-header\">\n<p class=\"site-name\">");
	web_buf_esc(b, org);
	web_buf_printf(b, " <span class=\"site-service\">%s</span></p>\n",
	    WEB_TX(lang, "e-loket", "e-counter"));
	/* The switch names the other language in that language, as WCAG 3.1.2 asks (lang on it). */
	web_buf_printf(b,
	    "<nav class=\"lang-switch\" aria-label=\"%s\"><a href=\"%s?lang=%s\" lang=\"%s\" "
	    "hreflang=\"%s\">%s</a></nav>\n</header>\n<main id=\"main\" tabindex=\"-1\">\n",
	    WEB_TX(lang, "Taal", "Language"), path, WEB_TX(lang, "en", "nl"),
	    WEB_TX(lang, "en", "nl-BE"), WEB_TX(lang, "en", "nl-BE"),
	    WEB_TX(lang, "English", "Nederlands"));
}

void
web_page_end(struct web_buf *b, enum web_lang lang)
{
	web_buf_printf(b,
	    "</main>\n<footer class=\"site-footer\"><p><a href=\"/loket%s\">%s</a> · "
	    "<a href=\"/loket/status%s\">%s</a></p></footer>\n</body>\n</html>\n",
	    WEB_TX(lang, "", "?lang=en"), WEB_TX(lang, "Een vraag stellen", "Ask a question"),
	    WEB_TX(lang, "", "?lang=en"),
	    WEB_TX(lang, "De stand van uw vraag", "The status of your question"));
}

void
web_page_date(struct web_buf *b, enum web_lang lang, const char *id, int64_t ms)
{
	static const char *const days_nl[] = { "zondag", "maandag", "dinsdag", "woensdag",
		"donderdag", "vrijdag", "zaterdag" };
	static const char *const days_en[] = { "Sunday", "Monday", "Tuesday", "Wednesday",
		"Thursday", "Friday", "Saturday" };
	static const char *const months_nl[] = { "januari", "februari", "maart", "april", "mei",
		"juni", "juli", "augustus", "september", "oktober", "november", "december" };
	static const char *const months_en[] = { "January", "February", "March", "April", "May",
		"June", "July", "August", "September", "October", "November", "December" };
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	/* loketd sets TZ to [loketd] timezone: the date is the municipality's. */
	localtime_r(&t, &tm);
	web_buf_printf(b, "<time id=\"%s\" datetime=\"%04d-%02d-%02d\">", id, tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday);
	if (lang == WEB_EN)
		web_buf_printf(b, "%s %d %s %d", days_en[tm.tm_wday], tm.tm_mday,
		    months_en[tm.tm_mon], tm.tm_year + 1900);
	else
		web_buf_printf(b, "%s %d %s %d", days_nl[tm.tm_wday], tm.tm_mday,
		    months_nl[tm.tm_mon], tm.tm_year + 1900);
	web_buf_raw(b, "</time>");
}

void
web_errors_add(struct web_errors *e, const char *field, const char *msg)
{
	if (e->n == WEB_MAX_ERRORS || web_errors_of(e, field) != NULL)
		return;
	e->field[e->n] = field;
	e->msg[e->n] = strdup(msg);
	if (e->msg[e->n] != NULL)
		e->n++;
}

const char *
web_errors_of(const struct web_errors *e, const char *field)
{
	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->field[i], field) == 0)
			return e->msg[i];
	return NULL;
}

void
web_errors_free(struct web_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->msg[i]);
	e->n = 0;
}

void
web_page_error_summary(struct web_buf *b, enum web_lang lang, const struct web_errors *e)
{
	if (e->n == 0)
		return;
	web_buf_printf(b,
	    "<div id=\"error-summary\" class=\"error-summary\" role=\"alert\" tabindex=\"-1\" "
	    "aria-labelledby=\"error-summary-title\">\n<h2 id=\"error-summary-title\">%s</h2>\n<ul>\n",
	    WEB_TX(lang, "Er is een probleem met uw formulier", "There is a problem with your form"));
	for (size_t i = 0; i < e->n; i++) {
		web_buf_printf(b, "<li><a href=\"#%s\">", e->field[i]);
		web_buf_esc(b, e->msg[i]);
		web_buf_raw(b, "</a></li>\n");
	}
	web_buf_raw(b, "</ul>\n</div>\n");
}

void
web_page_field_error(struct web_buf *b, enum web_lang lang, const struct web_errors *e,
    const char *field)
{
	const char *msg = web_errors_of(e, field);

	if (msg == NULL)
		return;
	web_buf_printf(b,
	    "<p id=\"%s-error\" class=\"field-error\"><span class=\"visually-hidden\">%s</span> ",
	    field, WEB_TX(lang, "Fout:", "Error:"));
	web_buf_esc(b, msg);
	web_buf_raw(b, "</p>\n");
}

void
web_page_field_aria(struct web_buf *b, const struct web_errors *e, const char *field,
    const char *hint_id)
{
	int bad = web_errors_of(e, field) != NULL;

	if (bad)
		web_buf_raw(b, " aria-invalid=\"true\"");
	if (hint_id == NULL && !bad)
		return;
	web_buf_raw(b, " aria-describedby=\"");
	if (hint_id != NULL)
		web_buf_raw(b, hint_id);
	if (bad)
		web_buf_printf(b, "%s%s-error", hint_id != NULL ? " " : "", field);
	web_buf_raw(b, "\"");
}
