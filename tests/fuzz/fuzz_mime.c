/*
 * fuzz_mime.c: libFuzzer target feeding arbitrary bytes to the email parser.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. -Iplugins/chan_email \
 *   $(pkg-config --cflags gmime-3.0 libsodium) tests/fuzz/fuzz_mime.c plugins/chan_email/mime.c \
 *   plugins/chan_email/mime_html.c plugins/chan_email/mime_compose.c \
 *   $(pkg-config --libs gmime-3.0 libsodium) -o fuzz_mime && ./fuzz_mime -max_len=65536
 * tests/email/corpus
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "email.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
fuzz_valid_utf8_line(const char *s)
{
	/* What reaches a contact's subject or a header is one line. */
	return s != NULL && strchr(s, '\r') == NULL && strchr(s, '\n') == NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	const struct email_limits lim = { .max_message = 1 << 20,
		.max_attachment = 1 << 16,
		.max_total = 1 << 18,
		.max_depth = 20,
		.max_addresses = 200,
		.blob_put = NULL };
	struct email_msg *m = NULL;
	const char *err = NULL;

	if (!ready) {
		email_mime_init();
		ready = 1;
	}
	if (email_parse((const char *)data, size, &lim, &m, &err) < 0) {
		/* A refusal always says why, and hands nothing out. */
		if (err == NULL || err[0] == '\0' || m != NULL)
			abort();
		return 0;
	}
	if (m == NULL || m->body == NULL || !fuzz_valid_utf8_line(m->subject)
	    || m->n_to + m->n_cc > lim.max_addresses || m->raw_size != size)
		abort();
	if (m->token != NULL && (strlen(m->token) != 11 || m->token[4] != '-'))
		abort();
	for (size_t i = 0; i < m->n_attachments; i++)
		if (m->attachments[i].filename == NULL
		    || strchr(m->attachments[i].filename, '/') != NULL
		    || m->attachments[i].size > lim.max_attachment)
			abort();
	email_msg_free(m);
	return 0;
}
