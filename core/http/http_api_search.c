/*
 * http_api_search.c: GET /api/v1/search?q=: contacts and parties by their
 * words, or by an identifier typed whole (a reference, an email address, a
 * phone number in any layout, a national register number).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "fold.h"
#include "http_api.h"
#include "loketd.h"
#include "register.h"

#define SEARCH_Q_MAX 200 /* characters */
#define SEARCH_LIMIT_MAX 100
#define SEARCH_LIMIT_DEFAULT 20

/* The characters (code points) of UTF-8 text s: bytes that do not continue one. */
static size_t
search_chars(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* Whether s is a reference as the register hands them out: YYYY-NNNNNN. */
static int
search_is_reference(const char *s)
{
	if (strlen(s) != 11 || s[4] != '-')
		return 0;
	for (int i = 0; i < 11; i++)
		if (i != 4 && (s[i] < '0' || s[i] > '9'))
			return 0;
	return 1;
}

/*
 * What a number typed in the layouts people use looks like: its digits,
 * counted into *digits_r, and whether it is only digits and the separators
 * of phone numbers and national register numbers (space . / - ( ), a
 * leading +).
 */
static int
search_is_number(const char *s, int *digits_r, int *plus_r)
{
	*digits_r = 0;
	*plus_r = *s == '+';
	for (const char *p = s + *plus_r; *p != '\0'; p++) {
		if (*p >= '0' && *p <= '9')
			(*digits_r)++;
		else if (strchr(" ./-()", *p) == NULL)
			return 0;
	}
	return *digits_r > 0;
}

/*
 * Recognises an identifier typed whole and adds it, normalised, to in
 * under its key (the audit action in *audit_r). 0: it was one (or the
 * query is words: *audit_r NULL); -1 with *error_r: it looks like one but
 * is not valid.
 */
static int
search_identifier(const char *q, json_t *in, const char **audit_r, const char **error_r)
{
	char norm[256];
	const char *key = NULL;
	int digits, plus;

	*audit_r = NULL;
	if (search_is_reference(q)) {
		json_object_set_new(in, "reference", json_string(q));
		return 0;
	}
	if (strchr(q, '@') != NULL && strpbrk(q, " \t") == NULL)
		key = "email";
	else if (search_is_number(q, &digits, &plus) && digits == 11 && !plus)
		key = "rrn"; /* a Belgian phone number has at most 10 digits after its 0 */
	else if (search_is_number(q, &digits, &plus) && digits >= 8 && (plus || q[0] == '0'))
		key = "phone";
	if (key == NULL)
		return 0;
	if (register_party_id(key, q, norm, sizeof(norm), error_r) < 0)
		return -1;
	json_object_set_new(in, key, json_string(norm));
	*audit_r = strcmp(key, "rrn") == 0 ? "search.rrn"
	    : strcmp(key, "email") == 0    ? "search.email"
	                                   : "search.phone";
	return 0;
}

/* Whether q holds a digit or what may be a letter (ASCII, or any character beyond it). */
static int
search_has_letters(const char *q)
{
	for (const unsigned char *p = (const unsigned char *)q; *p != '\0'; p++)
		if (isalnum(*p) || *p >= 0xC0)
			return 1;
	return 0;
}

/* The folded words of q as a JSON array; an empty array when q has none. */
static json_t *
search_words(const char *q)
{
	size_t len = strlen(q);
	char *folded = malloc(len + 1), *w, *save = NULL;
	json_t *words = json_array();

	if (folded == NULL || words == NULL) {
		free(folded);
		json_decref(words);
		return NULL;
	}
	fold_text(q, len, folded);
	for (w = strtok_r(folded, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save))
		json_array_append_new(words, json_string(w));
	free(folded);
	return words;
}

static void
search_get(struct loket_http_req *req, void *arg)
{
	const char *q = http_query(req, "q"), *type = http_query(req, "type");
	const char *limit_s = http_query(req, "limit"), *audit = NULL, *why = NULL;
	char *trimmed = NULL, *end, detail[300];
	long long limit = SEARCH_LIMIT_DEFAULT;
	struct api_call *call;
	json_t *in = NULL, *words;
	size_t len;

	if (auth_require(req, AUTH_STAFF) < 0)
		return;
	if (type != NULL && strcmp(type, "contacts") != 0 && strcmp(type, "parties") != 0
	    && strcmp(type, "all") != 0) {
		http_problem(req, 400, "type: expected contacts, parties or all");
		return;
	}
	if (limit_s != NULL) {
		errno = 0;
		limit = strtoll(limit_s, &end, 10);
		if (*limit_s == '\0' || *end != '\0' || errno != 0 || limit < 1
		    || limit > SEARCH_LIMIT_MAX) {
			http_problem(req, 400, "limit: expected a number from 1 to 100");
			return;
		}
	}
	if (q != NULL) {
		q += strspn(q, " \t\r\n");
		len = strlen(q);
		while (len > 0 && strchr(" \t\r\n", q[len - 1]) != NULL)
			len--;
		trimmed = strndup(q, len);
	}
	if (q != NULL && trimmed == NULL) {
		http_problem(req, 503, "out of memory");
		return;
	}
	if (trimmed == NULL || *trimmed == '\0') {
		http_problem(req, 422,
		    "q: type what to search for (words, a reference, an email "
		    "address, a phone number or a national register number)");
		goto out;
	}
	if (search_chars(trimmed) > SEARCH_Q_MAX) {
		http_problem(req, 422, "q: longer than 200 characters");
		goto out;
	}
	if ((in = json_pack("{s:s, s:I, s:o}", "type", type != NULL ? type : "all", "limit",
	         (json_int_t)limit, "scope", auth_scope(req)))
	    == NULL) {
		http_problem(req, 503, "out of memory");
		goto out;
	}
	if (search_identifier(trimmed, in, &audit, &why) < 0) {
		/* why names the identifier ("rrn: checksum does not match"), never its value. */
		snprintf(detail, sizeof(detail), "q: looks like %s but is not valid (%s)",
		    strncmp(why, "rrn", 3) == 0         ? "a national register number"
		        : strncmp(why, "email", 5) == 0 ? "an email address"
		                                        : "a phone number",
		    strchr(why, ':') != NULL ? strchr(why, ':') + 2 : why);
		http_problem(req, 422, detail);
		goto out;
	}
	if (json_object_get(in, "reference") == NULL && audit == NULL) {
		if ((words = search_words(trimmed)) == NULL) {
			http_problem(req, 503, "out of memory");
			goto out;
		}
		if (json_array_size(words) == 0) {
			json_decref(words);
			/*
			 * Letters that make no word the index keeps (a word of more than
			 * FOLD_WORD_MAX letters, a script it does not hold) find nothing;
			 * punctuation alone is a question to ask again.
			 */
			if (search_has_letters(trimmed))
				api_reply(req, 200, json_pack("{s:[], s:[]}", "contacts", "parties"));
			else
				http_problem(req, 422, "q: has no letters or digits to search for");
			goto out;
		}
		json_object_set_new(in, "words", words);
	}
	if ((call = api_call_new(arg, req, 200)) == NULL)
		goto out;
	/* A search by an identifier reads a party's contacts: audited, without the identifier. */
	if (audit != NULL) {
		snprintf(call->audit_action, sizeof(call->audit_action), "%s", audit);
		snprintf(call->audit_object, sizeof(call->audit_object), "search");
	}
	api_submit(call, STORE_SEARCH, in);
	in = NULL;
out:
	json_decref(in);
	free(trimmed);
}

int
http_api_search_init(struct loketd *d, const char **error_r)
{
	return http_route_add(d->http, "core", LOKET_HTTP_GET, "/api/v1/search", LOKET_ACCESS_TOKEN,
	    search_get, d, error_r);
}
