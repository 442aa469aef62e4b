/* test_email_mime.c: what a mail becomes after mime.c: the corpus, composed mail, blob storage. */
#include "config.h"

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp, nftw under -std=c11 outside the build system */
#endif

#include <dirent.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <glib.h>
#include <jansson.h>

#include "email.h"

#define MiB (1024 * 1024)

static char tmpdir[] = "/tmp/loket-mime-XXXXXX";
static char blobdir[64];
static char gendir[64];

/*
 * The parser's blob writer, as the plugin hands it the register's
 * blob_put: here plain files under blobdir (test_store_sqlite tests the
 * register's own).
 */
static int
test_blob_put_cb(void *arg, const void *data, size_t len, char sha256_hex[65],
    const char **error_r)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	char path[256];
	FILE *fp;

	crypto_hash_sha256(h, data, len);
	sodium_bin2hex(sha256_hex, 65, h, sizeof(h));
	mkdir(arg, 0700);
	snprintf(path, sizeof(path), "%s/%s", (const char *)arg, sha256_hex);
	if ((fp = fopen(path, "w")) == NULL || fwrite(data, 1, len, fp) != len) {
		*error_r = email_error("cannot write %s", path);
		if (fp != NULL)
			fclose(fp);
		return -1;
	}
	fclose(fp);
	return 0;
}

static struct email_limits limits = {
	.max_message = 10 * MiB,
	.max_attachment = 1 * MiB,
	.max_total = 2 * MiB,
	.max_depth = 20,
	.max_addresses = 1000,
};

static char *
path_join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *p = malloc(n);

	assert_non_null(p);
	snprintf(p, n, "%s/%s", a, b);
	return p;
}

static char *
read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	size_t cap = 0, len = 0, n;

	if (f == NULL)
		fail_msg("cannot open %s", path);
	do {
		if (len + 65536 > cap) {
			cap = cap * 2 + 65536;
			data = realloc(data, cap + 1);
			assert_non_null(data);
		}
		n = fread(data + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	data[len] = '\0';
	*len_r = len;
	return data;
}

static void
write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
write_gen(const char *name, GString *s)
{
	char *p = path_join(gendir, name);

	write_file(p, s->str, s->len);
	free(p);
	g_string_free(s, TRUE);
}

static void
append_base64(GString *s, size_t bytes, unsigned char fill)
{
	unsigned char *raw = malloc(bytes);
	char *b64;

	assert_non_null(raw);
	for (size_t i = 0; i < bytes; i++)
		raw[i] = (unsigned char)(fill + i * 7);
	b64 = g_base64_encode(raw, bytes);
	for (size_t i = 0, n = strlen(b64); i < n; i += 76) {
		g_string_append_len(s, b64 + i, n - i < 76 ? (gssize)(n - i) : 76);
		g_string_append_c(s, '\n');
	}
	g_free(b64);
	free(raw);
}

static GString *
gen_headers(const char *subject)
{
	GString *s = g_string_new(NULL);

	g_string_append_printf(s,
	    "From: Test Burger <burger@example.be>\nTo: info@zemst.be\nSubject: %s\n"
	    "Date: Mon, 6 Apr 2026 10:00:00 +0200\nMessage-ID: <gen@example.be>\n"
	    "MIME-Version: 1.0\n",
	    subject);
	return s;
}

static GString *
gen_nested(unsigned int depth)
{
	GString *s = gen_headers("Diep");

	for (unsigned int i = 0; i < depth; i++)
		g_string_append_printf(
		    s, "Content-Type: multipart/mixed; boundary=\"grens%u\"\n\n--grens%u\n", i, i);
	g_string_append(s, "Content-Type: text/plain; charset=utf-8\n\ndiep verstopt\n");
	for (unsigned int i = depth; i-- > 0;)
		g_string_append_printf(s, "--grens%u--\n", i);
	return s;
}

static GString *
gen_attachments(size_t n, size_t bytes)
{
	GString *s = gen_headers("Grote bijlage");

	g_string_append(s,
	    "Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\n"
	    "Content-Type: text/plain\n\nZie bijlage.\n");
	for (size_t i = 0; i < n; i++) {
		g_string_append_printf(s,
		    "--b\nContent-Type: application/pdf\n"
		    "Content-Disposition: attachment; filename=\"plan%zu.pdf\"\n"
		    "Content-Transfer-Encoding: base64\n\n",
		    i);
		append_base64(s, bytes, (unsigned char)i);
	}
	g_string_append(s, "--b--\n");
	return s;
}

/* The cases too big or too deep to keep in the repository. */
static void
generate_corpus(void)
{
	GString *s;

	s = g_string_new("From: spam@example.be\nSubject: Veel\nTo: ");
	for (int i = 0; i < 100000; i++)
		g_string_append_printf(s, "%sburger%d@example.be", i > 0 ? ",\n " : "", i);
	g_string_append(s, "\n\nHallo\n");
	write_gen("gen-100k-addresses.eml", s);

	/* under the cheap estimate, over the exact count */
	s = g_string_new("From: spam@example.be\nSubject: Veel\nTo: ");
	for (int i = 0; i < 1500; i++)
		g_string_append_printf(s, "%sburger%d@example.be",
		    i == 0          ? ""
		        : i == 1000 ? "\nCc: "
		                    : ", ",
		    i);
	g_string_append(s, "\n\nHallo\n");
	write_gen("gen-1500-addresses.eml", s);

	/* names that hold an address, as Outlook writes them, do not count twice */
	s = gen_headers("Uitnodiging infoavond");
	g_string_append(s, "Cc: ");
	for (int i = 0; i < 900; i++)
		g_string_append_printf(
		    s, "%s'burger%d@example.be' <burger%d@example.be>", i > 0 ? ",\n " : "", i, i);
	g_string_append(s, "\n\nGraag tot dan.\n");
	write_gen("gen-900-named-addresses.eml", s);

	write_gen("gen-deep-1000.eml", gen_nested(1000));
	write_gen("gen-deep-19.eml", gen_nested(19));
	write_gen("gen-big-attachment.eml", gen_attachments(1, 1536 * 1024));
	write_gen("gen-total.eml", gen_attachments(3, 900 * 1024));

	s = gen_headers("Te groot");
	g_string_append(s, "\n");
	while (s->len < 11 * MiB)
		g_string_append(
		    s, "Dit bericht is veel te groot om te verwerken door het loket.\n");
	g_string_truncate(s, 11 * MiB);
	write_gen("gen-too-large.eml", s);
}

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
group_setup(void **state)
{
	(void)state;
	email_mime_init();
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(blobdir, sizeof(blobdir), "%s/blobs", tmpdir);
	snprintf(gendir, sizeof(gendir), "%s/gen", tmpdir);
	limits.blob_put = test_blob_put_cb;
	limits.blob_arg = blobdir;
	return mkdir(gendir, 0700);
}

static int
group_teardown(void **state)
{
	(void)state;
	nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	email_mime_shutdown();
	return 0;
}

/* ---- corpus ------------------------------------------------------------------------- */

static void
expect_str(const char *file, const char *what, json_t *want, const char *got)
{
	if (json_is_null(want)) {
		if (got != NULL)
			fail_msg("%s: %s is [%s], expected none", file, what, got);
		return;
	}
	if (got == NULL)
		fail_msg("%s: %s is missing, expected [%s]", file, what, json_string_value(want));
	if (strcmp(got, json_string_value(want)) != 0)
		fail_msg("%s: %s is [%s], expected [%s]", file, what, got, json_string_value(want));
}

/* The stored blob exists and holds size bytes. */
static void
expect_blob(const char *file, const char *hex, size_t size)
{
	char *p = path_join(blobdir, hex);
	struct stat st;

	if (stat(p, &st) < 0 || (size_t)st.st_size != size)
		fail_msg("%s: blob %s missing or of the wrong size", file, hex);
	free(p);
}

static void
expect_attachments(const char *file, json_t *want, const struct email_msg *m)
{
	size_t i;
	json_t *a;

	if (json_array_size(want) != m->n_attachments)
		fail_msg("%s: %zu attachments, expected %zu", file, m->n_attachments,
		    json_array_size(want));
	json_array_foreach(want, i, a)
	{
		const struct email_attachment *got = &m->attachments[i];
		json_t *v;

		if ((v = json_object_get(a, "filename")) != NULL)
			expect_str(file, "attachment filename", v, got->filename);
		if ((v = json_object_get(a, "content_type")) != NULL)
			expect_str(file, "attachment content type", v, got->content_type);
		if ((v = json_object_get(a, "size")) != NULL
		    && (json_int_t)got->size != json_integer_value(v))
			fail_msg("%s: attachment %zu is %zu bytes, expected %lld", file, i,
			    got->size, (long long)json_integer_value(v));
	}
	for (i = 0; i < m->n_attachments; i++)
		expect_blob(file, m->attachments[i].sha256, m->attachments[i].size);
}

static void
expect_body(const char *file, json_t *exp, const struct email_msg *m)
{
	json_t *v, *s;
	size_t i;

	assert_non_null(m->body);
	if ((v = json_object_get(exp, "body")) != NULL)
		expect_str(file, "body", v, m->body);
	json_array_foreach(json_object_get(exp, "body_contains"), i,
	    s) if (strstr(m->body, json_string_value(s)) == NULL)
	    fail_msg("%s: body lacks [%s]:\n%s", file, json_string_value(s), m->body);
	json_array_foreach(json_object_get(exp, "body_not_contains"), i,
	    s) if (strstr(m->body, json_string_value(s)) != NULL)
	    fail_msg("%s: body holds [%s]:\n%s", file, json_string_value(s), m->body);
	if ((v = json_object_get(exp, "body_from_html")) != NULL
	    && json_is_true(v) != (m->body_from_html != 0))
		fail_msg("%s: body_from_html is %d", file, m->body_from_html);
}

static void
expect_msg(const char *file, json_t *exp, const struct email_msg *m, size_t raw_len)
{
	json_t *v;

	if ((v = json_object_get(exp, "subject")) != NULL)
		expect_str(file, "subject", v, m->subject);
	assert_non_null(m->subject);
	assert_null(strpbrk(m->subject, "\r\n\t"));
	if ((v = json_object_get(exp, "from")) != NULL)
		expect_str(file, "from", v, m->from.addr);
	if ((v = json_object_get(exp, "from_name")) != NULL)
		expect_str(file, "from name", v, m->from.name);
	if ((v = json_object_get(exp, "to")) != NULL) {
		size_t i;
		json_t *t;

		assert_int_equal(m->n_to, json_array_size(v));
		json_array_foreach(v, i, t) expect_str(file, "to", t, m->to[i].addr);
	}
	if ((v = json_object_get(exp, "reply_to")) != NULL)
		expect_str(file, "reply-to", v, m->reply_to);
	if ((v = json_object_get(exp, "return_path")) != NULL)
		expect_str(file, "return-path", v, m->return_path);
	if ((v = json_object_get(exp, "message_id")) != NULL)
		expect_str(file, "message-id", v, m->message_id);
	if ((v = json_object_get(exp, "in_reply_to")) != NULL)
		expect_str(file, "in-reply-to", v, m->in_reply_to);
	if ((v = json_object_get(exp, "references")) != NULL) {
		size_t i;
		json_t *r;

		assert_int_equal(m->n_references, json_array_size(v));
		json_array_foreach(v, i, r) expect_str(file, "reference", r, m->references[i]);
	}
	if ((v = json_object_get(exp, "token")) != NULL)
		expect_str(file, "token", v, m->token);
	if ((v = json_object_get(exp, "date_ms")) != NULL)
		assert_int_equal(m->date_ms, json_integer_value(v));
	expect_body(file, exp, m);
	if ((v = json_object_get(exp, "attachments")) != NULL)
		expect_attachments(file, v, m);
	assert_int_equal(m->raw_size, raw_len);
	expect_blob(file, m->raw_sha256, raw_len);
}

static void
check_one(const char *file, const char *path, json_t *exp)
{
	const char *outcome = json_string_value(json_object_get(exp, "outcome"));
	struct email_msg *m = NULL;
	struct timespec t0, t1;
	const char *err = "";
	size_t len;
	char *raw = read_file(path, &len);
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = email_parse(raw, len, &limits, &m, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* a hostile mail must be refused quickly, not parsed for minutes */
	if (t1.tv_sec - t0.tv_sec > 10)
		fail_msg("%s: took %lld s", file, (long long)(t1.tv_sec - t0.tv_sec));
	assert_non_null(outcome);
	if (strcmp(outcome, "quarantine") == 0) {
		const char *want = json_string_value(json_object_get(exp, "error_contains"));

		if (rc != -1)
			fail_msg("%s: accepted, expected quarantine", file);
		assert_null(m);
		if (want == NULL || strstr(err, want) == NULL)
			fail_msg("%s: error [%s], expected [%s]", file, err, want);
		/* no personal data in what gets logged */
		assert_null(strchr(err, '@'));
		free(raw);
		return;
	}
	if (rc != 0)
		fail_msg("%s: refused: %s", file, err);
	assert_non_null(m);
	if (strcmp(outcome, "auto") == 0) {
		const char *want = json_string_value(json_object_get(exp, "auto_reason"));

		if (m->auto_reason == NULL || want == NULL || strcmp(m->auto_reason, want) != 0)
			fail_msg("%s: auto_reason [%s], expected [%s]", file,
			    m->auto_reason != NULL ? m->auto_reason : "none", want);
	} else if (m->auto_reason != NULL) {
		fail_msg("%s: taken for automatic mail (%s)", file, m->auto_reason);
	}
	expect_msg(file, exp, m, len);
	email_msg_free(m);
	free(raw);
}

static void
test_corpus(void **state)
{
	const char *srcdir = getenv("LOKET_SRCDIR") != NULL ? getenv("LOKET_SRCDIR") : ".";
	char *corpus = path_join(srcdir, "tests/email/corpus");
	char *exp_path = path_join(corpus, "expected.json");
	json_error_t jerr;
	json_t *expected = json_load_file(exp_path, 0, &jerr);
	size_t on_disk = 0, listed = 0;
	struct dirent *de;
	const char *file;
	json_t *exp;
	DIR *dir;

	(void)state;
	if (expected == NULL)
		fail_msg("%s: %s", exp_path, jerr.text);
	generate_corpus();

	/* every mail on disk has its expectation, and the reverse */
	dir = opendir(corpus);
	assert_non_null(dir);
	while ((de = readdir(dir)) != NULL) {
		size_t n = strlen(de->d_name);

		if (n < 4 || strcmp(de->d_name + n - 4, ".eml") != 0)
			continue;
		on_disk++;
		if (json_object_get(expected, de->d_name) == NULL)
			fail_msg("%s has no entry in expected.json", de->d_name);
	}
	closedir(dir);
	assert_true(on_disk >= 30);

	json_object_foreach(expected, file, exp)
	{
		int gen = json_is_true(json_object_get(exp, "generated"));
		char *p = path_join(gen ? gendir : corpus, file);

		if (!gen)
			listed++;
		check_one(file, p, exp);
		free(p);
	}
	assert_int_equal(listed, on_disk);
	json_decref(expected);
	free(exp_path);
	free(corpus);
}

/* Past GMime's own nesting cap (1024) the parser stops descending; that is refused too. */
static void
test_nesting_beyond_parser(void **state)
{
	struct email_limits lim = limits;
	struct email_msg *m = NULL;
	GString *s = gen_nested(1100);
	const char *err = "";

	(void)state;
	lim.max_depth = 5000;
	assert_int_equal(email_parse(s->str, s->len, &lim, &m, &err), -1);
	assert_non_null(strstr(err, "MIME nesting is deeper than"));
	assert_null(m);
	g_string_free(s, TRUE);
}

static void *
parse_thread(void *arg)
{
	const GString *s = arg;

	for (int i = 0; i < 25; i++) {
		struct email_msg *m = NULL;
		const char *err = "";

		if (email_parse(s->str, s->len, &limits, &m, &err) != 0
		    || m->n_attachments != 3 || strstr(m->body, "diep verstopt") == NULL)
			return (void *)1;
		email_msg_free(m);
	}
	return NULL;
}

static void
test_parse_threads(void **state)
{
	GString *s
	    = g_string_new("From: a@example.be\nSubject: draad\nMIME-Version: 1.0\n"
	                   "Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\n"
	                   "Content-Type: text/plain; charset=iso-8859-1\n\ndiep verstopt\n");
	pthread_t th[4];
	void *res;

	(void)state;
	for (int i = 0; i < 3; i++) {
		g_string_append(
		    s, "--b\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\n");
		append_base64(s, 2048, (unsigned char)i);
	}
	g_string_append(s, "--b--\n");
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, parse_thread, s), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], &res), 0);
		assert_null(res);
	}
	g_string_free(s, TRUE);
}

/* ---- compose ------------------------------------------------------------------------ */

static void
assert_all_crlf(const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			fail_msg("bare LF at byte %zu", i);
		else if (data[i] == '\r' && (i + 1 == len || data[i + 1] != '\n'))
			fail_msg("bare CR at byte %zu", i);
	assert_true(len >= 2 && data[len - 2] == '\r' && data[len - 1] == '\n');
}

static void
test_compose_roundtrip(void **state)
{
	char *pdf_path = path_join(tmpdir, "beslissing.pdf");
	char *txt_path = path_join(tmpdir, "nota.txt");
	char pdf[3000], hex_pdf[65], hex_txt[65];
	const char *err = "";
	const char *txt = "Nota bij de beslissing.\nTweede regel.\n";
	struct email_out_attachment atts[] = {
		{ "beslissing één.pdf", "application/pdf", pdf, sizeof(pdf) },
		{ "nota.txt", "text/plain", txt, strlen(txt) },
	};
	struct email_out o = {
		.from_name = "Gemeente Zemst – Burgerzaken",
		.from_addr = "burgerzaken@zemst.be",
		.to_name = "Zoë Peeters",
		.to_addr = "zoe.peeters@telenet.be",
		.subject = "Uw vraag – één [loket 2026-000123]\r\nBcc: x@y.be",
		.body = "Beste,\n\nDe kostprijs is € 25.\nMet vriendelijke groeten\n",
		.message_id = "loket.2026-000123.2@zemst.be",
		.in_reply_to = "reply-2@telenet.be",
		.references = "20260302091200.1234@telenet.be reply-2@telenet.be",
		.auto_submitted = "auto-replied",
		.reference = "C-2026-000123",
		.attachments = atts,
		.n_attachments = 2,
		.date_ms = 1775462400000,
	};
	struct email_msg *m = NULL;
	char *data = NULL;
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(pdf); i++)
		pdf[i] = (char)(i * 31 + 7);
	write_file(pdf_path, pdf, sizeof(pdf));
	write_file(txt_path, txt, strlen(txt));
	assert_int_equal(test_blob_put_cb(blobdir, pdf, sizeof(pdf), hex_pdf, &err), 0);
	assert_int_equal(test_blob_put_cb(blobdir, txt, strlen(txt), hex_txt, &err), 0);

	assert_int_equal(email_compose(&o, &data, &len, &err), 0);
	assert_int_equal(strlen(data), len);
	assert_all_crlf(data, len);
	assert_null(strstr(data, "\r\nBcc:"));
	assert_null(strstr(data, "\nBcc:"));
	assert_non_null(strstr(data, "\r\nAuto-Submitted: auto-replied\r\n"));
	assert_non_null(strstr(data, "\r\nX-Auto-Response-Suppress: All\r\n"));
	assert_non_null(strstr(data, "\r\nX-Loket-Reference: C-2026-000123\r\n"));
	assert_non_null(strstr(data, "MIME-Version: 1.0\r\n"));
	assert_non_null(strstr(data, "Message-Id: <loket.2026-000123.2@zemst.be>\r\n"));
	assert_non_null(strstr(data, "charset=utf-8"));
	assert_non_null(strstr(data, "filename*="));

	assert_int_equal(email_parse(data, len, &limits, &m, &err), 0);
	assert_string_equal(m->subject, "Uw vraag – één [loket 2026-000123] Bcc: x@y.be");
	assert_string_equal(m->token, "2026-000123");
	assert_string_equal(m->from.addr, "burgerzaken@zemst.be");
	assert_string_equal(m->from.name, "Gemeente Zemst – Burgerzaken");
	assert_int_equal(m->n_to, 1);
	assert_int_equal(m->n_cc, 0);
	assert_string_equal(m->to[0].addr, "zoe.peeters@telenet.be");
	assert_string_equal(m->to[0].name, "Zoë Peeters");
	assert_string_equal(m->message_id, "loket.2026-000123.2@zemst.be");
	assert_string_equal(m->in_reply_to, "reply-2@telenet.be");
	assert_int_equal(m->n_references, 2);
	assert_string_equal(m->references[0], "20260302091200.1234@telenet.be");
	assert_string_equal(m->references[1], "reply-2@telenet.be");
	assert_string_equal(m->auto_reason, "auto-submitted");
	assert_int_equal(m->date_ms, 1775462400000);
	assert_string_equal(m->body, o.body);
	assert_int_equal(m->n_attachments, 2);
	assert_string_equal(m->attachments[0].filename, "beslissing één.pdf");
	assert_string_equal(m->attachments[0].content_type, "application/pdf");
	assert_int_equal(m->attachments[0].size, sizeof(pdf));
	assert_string_equal(m->attachments[0].sha256, hex_pdf);
	assert_string_equal(m->attachments[1].filename, "nota.txt");
	assert_int_equal(m->attachments[1].size, strlen(txt));
	assert_string_equal(m->attachments[1].sha256, hex_txt);
	email_msg_free(m);
	free(data);
	free(txt_path);
	free(pdf_path);
}

static void
test_compose_plain(void **state)
{
	struct email_out o = {
		.from_addr = "info@zemst.be",
		.to_addr = "an.peeters@telenet.be",
		.to_name = "Jan\r\nBcc: x@y.be",
		.subject = "Ontvangen",
		.body = "Uw vraag is goed ontvangen.",
		.message_id = "loket.2026-000124.1@zemst.be",
	};
	struct email_msg *m = NULL;
	const char *err = "";
	char *data = NULL;
	size_t len;

	(void)state;
	assert_int_equal(email_compose(&o, &data, &len, &err), 0);
	assert_all_crlf(data, len);
	assert_null(strstr(data, "\r\nBcc:"));
	assert_null(strstr(data, "Auto-Submitted"));
	assert_null(strstr(data, "X-Loket-Reference"));
	assert_null(strstr(data, "multipart"));
	assert_int_equal(email_parse(data, len, &limits, &m, &err), 0);
	assert_int_equal(m->n_to, 1);
	assert_string_equal(m->to[0].name, "Jan Bcc: x@y.be");
	assert_null(m->auto_reason);
	assert_null(m->in_reply_to);
	assert_int_equal(m->n_references, 0);
	/* GMime ends the last line */
	assert_string_equal(m->body, "Uw vraag is goed ontvangen.\n");
	email_msg_free(m);
	free(data);
}

static void
test_compose_refuses_bad_address(void **state)
{
	static const char *const bad[] = { "a@b.be\r\nBcc: c@d.be", "a@b.be\nBcc: c@d.be",
		"jan peeters@telenet.be", "<a@b.be>", "a@b.be>", "a@b.be, c@d.be", "", "geen-at" };
	struct email_out o = {
		.from_addr = "info@zemst.be",
		.subject = "x",
		.body = "x",
		.message_id = "x@zemst.be",
	};
	const char *err = "";
	char *data = (char *)"untouched";
	size_t len = 1;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o.to_addr = bad[i];
		assert_int_equal(email_compose(&o, &data, &len, &err), -1);
		assert_string_equal(err, "to address is not valid");
		assert_null(data);
	}
	o.to_addr = "a@b.be";
	o.from_addr = "info@zemst.be\r\nBcc: x@y.be";
	assert_int_equal(email_compose(&o, &data, &len, &err), -1);
	assert_string_equal(err, "from address is not valid");
	o.from_addr = "info@zemst.be";
	o.message_id = "a\r\nb@c";
	assert_int_equal(email_compose(&o, &data, &len, &err), -1);
	o.message_id = "x@zemst.be";
	o.references = "ok@a bad\r\nBcc:@x";
	assert_int_equal(email_compose(&o, &data, &len, &err), 0);
	assert_null(strstr(data, "\r\nBcc:"));
	free(data);
}

static void
test_compose_missing_attachment(void **state)
{
	struct email_out_attachment att = { "weg.pdf", "application/pdf", NULL, 2048 };
	struct email_out o = {
		.from_addr = "info@zemst.be",
		.to_addr = "a@b.be",
		.subject = "x",
		.body = "x",
		.message_id = "x@zemst.be",
		.attachments = &att,
		.n_attachments = 1,
	};
	const char *err = "";
	char *data = NULL;
	size_t len;

	(void)state;
	assert_int_equal(email_compose(&o, &data, &len, &err), -1);
	assert_non_null(strstr(err, "attachment 1"));
	assert_null(data);
}

static struct email_msg *
parse_ok(const char *raw)
{
	struct email_msg *m = NULL;
	const char *err = "";

	if (email_parse(raw, strlen(raw), &limits, &m, &err) < 0)
		fail_msg("refused: %s", err);
	return m;
}

/*
 * One mail delivered to two mailboxes differs only in the trace fields the
 * servers put on top: the intake key (mail_sha256) is the same; any other
 * difference, a byte of the text or a header of the sender's, makes another.
 */
static void
test_same_mail_in_two_mailboxes_has_one_key(void **state)
{
	static const char body[] = "From: Jan <jan@example.be>\r\nTo: info@zemst.be, welzijn@ocmw.be\r\n"
	                           "Subject: Leefloon\r\nMessage-ID: <k1@example.be>\r\n\r\n"
	                           "Kan ik beide krijgen?\r\n";
	char *a = g_strconcat("Return-Path: <jan@example.be>\r\nDelivered-To: info@zemst.be\r\n"
	                      "Received: from mx (mx [127.0.0.1])\r\n\tfor <info@zemst.be>; "
	                      "Mon, 6 Apr 2026 10:00:00 +0200\r\n",
	    body, NULL);
	char *b = g_strconcat("Return-Path: <jan@example.be>\r\nDelivered-To: welzijn@ocmw.be\r\n"
	                      "Received: from mx (mx [127.0.0.1])\r\n\tfor <welzijn@ocmw.be>; "
	                      "Mon, 6 Apr 2026 10:00:01 +0200\r\n",
	    body, NULL);
	char *c = g_strdup(a), *d = g_strconcat("X-Mailer: x\r\n", body, NULL);
	struct email_msg *ma, *mb, *mc, *md;

	(void)state;
	*strstr(c, "beide") = 'B';
	ma = parse_ok(a);
	mb = parse_ok(b);
	mc = parse_ok(c);
	md = parse_ok(d);
	assert_string_not_equal(ma->raw_sha256, mb->raw_sha256);
	assert_string_equal(ma->mail_sha256, mb->mail_sha256);
	assert_string_not_equal(ma->mail_sha256, mc->mail_sha256);
	assert_string_not_equal(ma->mail_sha256, md->mail_sha256);
	email_msg_free(ma);
	email_msg_free(mb);
	email_msg_free(mc);
	email_msg_free(md);
	g_free(a);
	g_free(b);
	g_free(c);
	g_free(d);
}

/*
 * What the second reading must not touch: a raw subject that is valid UTF-8
 * stays UTF-8 although the text declares ISO-8859-1; a line that is no header
 * between headers is dropped, the headers after it (and the text after the
 * blank line) kept.
 */
static void
test_second_reading_leaves_good_mail_alone(void **state)
{
	struct email_msg *m;

	(void)state;
	m = parse_ok("From: An <an@example.be>\nTo: info@zemst.be\nSubject: Caf\xc3\xa9 \xc3\xa9\xc3\xa9n\n"
	             "MIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\n\n"
	             "Het caf\xe9.\n");
	assert_string_equal(m->subject, "Caf\xc3\xa9 \xc3\xa9\xc3\xa9n");
	assert_string_equal(m->body, "Het caf\xc3\xa9.\n");
	email_msg_free(m);
	m = parse_ok("From: An <an@example.be>\nTo: info@zemst.be\ngeen kop\nSubject: Stoep\n"
	             "Content-Type: text/plain; charset=utf-8\n\nDe stoep is kapot.\n");
	assert_string_equal(m->subject, "Stoep");
	assert_string_equal(m->body, "De stoep is kapot.\n");
	assert_int_equal(m->n_attachments, 0);
	email_msg_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus),
		cmocka_unit_test(test_nesting_beyond_parser),
		cmocka_unit_test(test_parse_threads),
		cmocka_unit_test(test_compose_roundtrip),
		cmocka_unit_test(test_compose_plain),
		cmocka_unit_test(test_compose_refuses_bad_address),
		cmocka_unit_test(test_compose_missing_attachment),
		cmocka_unit_test(test_same_mail_in_two_mailboxes_has_one_key),
		cmocka_unit_test(test_second_reading_leaves_good_mail_alone),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
