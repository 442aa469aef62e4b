/*
 * settings.c: the email channel's settings: read from the config into an
 * immutable, reference-counted copy the threads can hold across a reload;
 * the value checks the core runs with file:line; and when a connection
 * must have TLS.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chan_email.h"

/* Reads a secret from a file: the first line, without its end. */
char *
settings_read_secret(const char *path, const char **error_r)
{
	char buf[512], *secret;
	FILE *f = fopen(path, "re");
	size_t n;

	if (f == NULL) {
		*error_r = "cannot read a password_file";
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if ((secret = strdup(buf)) == NULL)
		*error_r = "out of memory";
	explicit_bzero(buf, sizeof(buf));
	return secret;
}

static int
settings_starttls_parse(const char *v, enum email_starttls *tls_r)
{
	if (strcmp(v, "auto") == 0)
		*tls_r = EMAIL_STARTTLS_AUTO;
	else if (strcmp(v, "no") == 0)
		*tls_r = EMAIL_STARTTLS_NO;
	else if (strcmp(v, "try") == 0)
		*tls_r = EMAIL_STARTTLS_TRY;
	else if (strcmp(v, "require") == 0)
		*tls_r = EMAIL_STARTTLS_REQUIRE;
	else
		return -1;
	return 0;
}

/*
 * RFC 3501 flag-keyword: an atom, one or more CHARs (0x01-0x7f) that are
 * not atom-specials: "(" ")" "{" SP CTL "%" "*" DQUOTE "\" "]". The keyword
 * goes into STORE and SEARCH commands unquoted; anything else would end or
 * change the command.
 */
static int
settings_is_atom(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return 0;
	}
	return 1;
}

const char *
settings_check_value(const char *key, const char *value)
{
	enum email_starttls tls;

	if (strcmp(key, "flag") == 0 && !settings_is_atom(value))
		return "expected an IMAP keyword such as $Loket (an atom: no spaces, control "
		       "characters or any of ( ) { % * \" \\ ])";
	if (strcmp(key, "acknowledge") == 0 && strcmp(value, "move") != 0
	    && strcmp(value, "flag") != 0)
		return "expected move or flag";
	if (strcmp(key, "starttls") == 0 && settings_starttls_parse(value, &tls) < 0)
		return "expected auto, no, try or require";
	if ((strcmp(key, "processed_folder") == 0 || strcmp(key, "quarantine_folder") == 0)
	    && *value == '\0')
		return "expected a folder name";
	if (strncmp(key, "mailbox", 7) == 0 && *value != '\0') {
		/* The NAME, the line's first word: it names the mailbox's lease, metrics and log. */
		size_t skip = strspn(value, " \t"), len = strcspn(value + skip, " \t");

		if (len == 0 || len > 31
		    || strspn(value + skip, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		                            "0123456789._-")
		        != len)
			return "expected NAME URL ... with a NAME of letters, digits, '.', '_' and '-' "
			       "(at most 31)";
	}
	return NULL;
}

/* Whether host (len bytes, an IPv6 literal without its brackets) is this machine. */
/*
 * A mail's attachments and raw bytes go to the register's blobs from the
 * mailbox thread (blob_put is thread-safe), unsynced: the thread makes one
 * blob_sync per batch before the IMAP server hears anything is done.
 */
static int
settings_blob_put_cb(
    void *arg, const void *data, size_t len, char sha256_hex[65], const char **error_r)
{
	struct chan_email *ce = arg;
	char why[256]; /* the ABI's blob_put writes into a buffer */

	if (ce->api->blob_put(
	        ce->self, data, len, LOKET_BLOB_DEFER_SYNC, sha256_hex, why, sizeof(why))
	    < 0) {
		*error_r = email_error("%s", why);
		return -1;
	}
	return 0;
}

static int
settings_loopback(const char *host, size_t len)
{
	char buf[64];
	struct in_addr a4;
	struct in6_addr a6;

	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, host, len);
	buf[len] = '\0';
	if (strcasecmp(buf, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, buf, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, buf, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

/* The host of "imap://host:port" or "imaps://[::1]:993" is on loopback. */
static int
settings_url_loopback(const char *url)
{
	const char *h = strstr(url, "://"), *end;

	if (h == NULL)
		return 0;
	h += 3;
	if (*h == '[') {
		h++;
		end = strchr(h, ']');
	} else {
		end = h + strcspn(h, ":/");
	}
	return end != NULL && settings_loopback(h, (size_t)(end - h));
}

/*
 * What STARTTLS means for one connection: auto is require, except to a
 * server on loopback (try); and a connection that authenticates requires
 * TLS unless the admin wrote insecure_auth = yes, so a machine in the
 * middle that strips STARTTLS gets a failed connection, not a password.
 * Returns the imap_conf / smtp_conf value: 0 never, 1 when offered, 2 required.
 */
static int
settings_tls_mode(const struct email_settings *set, int loopback, int authenticates)
{
	enum email_starttls t = set->starttls;

	if (t == EMAIL_STARTTLS_AUTO)
		t = loopback ? EMAIL_STARTTLS_TRY : EMAIL_STARTTLS_REQUIRE;
	if (authenticates && !set->insecure_auth && t == EMAIL_STARTTLS_TRY)
		t = EMAIL_STARTTLS_REQUIRE;
	return t == EMAIL_STARTTLS_NO ? 0 : t == EMAIL_STARTTLS_TRY ? 1 : 2;
}

void
settings_imap_conf(
    const struct mailbox *mb, const struct email_settings *set, struct imap_conf *cf_r)
{
	memset(cf_r, 0, sizeof(*cf_r));
	cf_r->url = mb->base_url;
	cf_r->user = mb->user;
	cf_r->password = mb->password;
	/* IMAP always logs in. */
	cf_r->starttls = settings_tls_mode(set, settings_url_loopback(mb->base_url), 1);
	cf_r->verify_tls = set->verify_tls;
	cf_r->ca_file = set->ca_file;
	cf_r->timeout_ms = set->timeout_ms;
}

int
settings_imap_changed(const struct email_settings *a, const struct email_settings *b)
{
	if (a == b)
		return 0;
	return a->starttls != b->starttls || a->insecure_auth != b->insecure_auth
	    || a->verify_tls != b->verify_tls || a->timeout_ms != b->timeout_ms
	    || (a->ca_file == NULL) != (b->ca_file == NULL)
	    || (a->ca_file != NULL && strcmp(a->ca_file, b->ca_file) != 0);
}

struct email_settings *
settings_get(struct chan_email *ce)
{
	struct email_settings *set;

	pthread_mutex_lock(&ce->setmu);
	set = ce->settings;
	set->refs++;
	pthread_mutex_unlock(&ce->setmu);
	return set;
}

static void
settings_free(struct email_settings *set)
{
	if (set == NULL)
		return;
	free(set->processed_folder);
	free(set->quarantine_folder);
	free(set->flag);
	free(set->ca_file);
	free((char *)set->smtp.host);
	free((char *)set->smtp.port);
	free((char *)set->smtp.user);
	if (set->smtp.password != NULL) {
		explicit_bzero((char *)set->smtp.password, strlen(set->smtp.password));
		free((char *)set->smtp.password);
	}
	free(set->templates_dir);
	free(set->language);
	free(set->from_name);
	free(set);
}

void
settings_put(struct chan_email *ce, struct email_settings *set)
{
	int last;

	if (set == NULL)
		return;
	pthread_mutex_lock(&ce->setmu);
	last = --set->refs == 0;
	pthread_mutex_unlock(&ce->setmu);
	if (last)
		settings_free(set);
}

/* A copy of a config value, or NULL for an empty one when empty_is_null. */
static int
settings_dup(const struct chan_email *ce, const char *key, int empty_is_null, char **out_r)
{
	const char *v = ce->api->config_get(ce->self, key);

	*out_r = NULL;
	if (v == NULL || (empty_is_null && *v == '\0'))
		return 0;
	return (*out_r = strdup(v)) != NULL ? 0 : -1;
}

/* Reads the config into new settings (one reference, the caller's); NULL with *error_r. */
struct email_settings *
settings_new(struct chan_email *ce, const char **error_r)
{
	const struct loket_api *api = ce->api;
	struct loket_plugin *self = ce->self;
	struct email_settings *set = calloc(1, sizeof(*set));
	const char *pwfile = api->config_get(self, "smtp_password_file");
	char *host = NULL, *port = NULL, *user = NULL;

	if (set == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	set->refs = 1;
	/* check_value refused anything else before load and before a reload. */
	set->ack = strcmp(api->config_get(self, "acknowledge"), "flag") == 0 ? EMAIL_ACK_FLAG
	                                                                     : EMAIL_ACK_MOVE;
	if (settings_starttls_parse(api->config_get(self, "starttls"), &set->starttls) < 0) {
		*error_r = "starttls: expected auto, no, try or require";
		goto fail;
	}
	if (!settings_is_atom(api->config_get(self, "flag"))) {
		*error_r = "flag: expected an IMAP keyword such as $Loket";
		goto fail;
	}
	set->insecure_auth = api->config_get_int(self, "insecure_auth") != 0;
	set->idle = api->config_get_int(self, "idle") != 0;
	set->poll_ms = api->config_get_int(self, "poll");
	set->limits.max_message = (size_t)api->config_get_int(self, "max_message");
	set->limits.max_attachment = (size_t)api->config_get_int(self, "max_attachment");
	set->limits.max_total = (size_t)api->config_get_int(self, "max_attachments_total");
	set->limits.max_depth = (unsigned int)api->config_get_int(self, "max_depth");
	set->limits.max_addresses = (unsigned int)api->config_get_int(self, "max_addresses");
	set->limits.blob_put = settings_blob_put_cb;
	set->limits.blob_arg = ce;
	set->verify_tls = api->config_get_int(self, "verify_tls") != 0;
	set->timeout_ms = (long)api->config_get_int(self, "timeout");
	set->ack_per_day = api->config_get_int(self, "ack_per_day");
	set->retry_min_ms = api->config_get_int(self, "retry_min");
	set->retry_max_ms = api->config_get_int(self, "retry_max");
	set->max_attempts = api->config_get_int(self, "max_attempts");
	if (settings_dup(ce, "processed_folder", 0, &set->processed_folder) < 0
	    || settings_dup(ce, "quarantine_folder", 0, &set->quarantine_folder) < 0
	    || settings_dup(ce, "flag", 0, &set->flag) < 0
	    || settings_dup(ce, "ca_file", 1, &set->ca_file) < 0
	    || settings_dup(ce, "templates", 0, &set->templates_dir) < 0
	    || settings_dup(ce, "language", 0, &set->language) < 0
	    || settings_dup(ce, "from_name", 0, &set->from_name) < 0
	    || settings_dup(ce, "smtp_host", 0, &host) < 0
	    || settings_dup(ce, "smtp_port", 0, &port) < 0
	    || settings_dup(ce, "smtp_user", 1, &user) < 0) {
		free(host);
		free(port);
		free(user);
		*error_r = "out of memory";
		goto fail;
	}
	set->smtp.host = host;
	set->smtp.port = port;
	set->smtp.user = user;
	set->smtp.timeout_ms = set->timeout_ms;
	set->smtp.verify_tls = set->verify_tls;
	set->smtp.starttls
	    = settings_tls_mode(set, settings_loopback(host, strlen(host)), user != NULL);
	if (*pwfile != '\0' && (set->smtp.password = settings_read_secret(pwfile, error_r)) == NULL)
		goto fail;
	/* Said at start, not found out from a server that was never asked for TLS. */
	if (set->starttls == EMAIL_STARTTLS_NO && !set->insecure_auth) {
		if (user != NULL) {
			*error_r = "starttls = no would send the SMTP password without TLS; use "
			           "starttls = require (or insecure_auth = yes for a test server)";
			goto fail;
		}
		for (size_t i = 0; i < ce->nmailboxes; i++) {
			if (strncmp(ce->mailboxes[i].base_url, "imap://", 7) == 0) {
				*error_r
				    = "starttls = no would send an IMAP password without TLS "
				      "(an imap:// mailbox); use imaps:// or starttls = require "
				      "(or insecure_auth = yes for a test server)";
				goto fail;
			}
		}
	}
	return set;
fail:
	settings_free(set);
	return NULL;
}
