/* test_store_sqlite.c: the embedded register: schema, foreign files, group commit, references,
 * intake keys. */
#include <event2/event.h>
#include <event2/thread.h>
#include <dirent.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "metrics.h"
#include "register.h"
#include "store.h"
#include "util.h"

struct fixture {
	char dir[64];
	char db[128];
	struct conf *conf;
	struct event_base *base;
	struct metrics *metrics;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *err = NULL;
	char path[160];
	FILE *fp;

	evthread_use_pthreads();
	strcpy(f->dir, "/tmp/loket-test-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/loket.db", f->dir);
	snprintf(path, sizeof(path), "%s/loket.conf", f->dir);
	fp = fopen(path, "w");
	fprintf(fp, "[loketd]\ndata_dir = %s\n", f->dir);
	fclose(fp);
	if (conf_load(path, &f->conf, &err) < 0)
		fail_msg("%s", err);
	f->base = event_base_new();
	f->metrics = metrics_new();
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	conf_free(f->conf);
	metrics_free(f->metrics);
	event_base_free(f->base);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void
write_file(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "w");

	fwrite(data, 1, len, fp);
	fclose(fp);
}

static void
expect_refused(struct fixture *f, const char *want)
{
	struct store *s = NULL;
	const char *err = NULL;
	struct stat before, after;
	char *bytes_before, *bytes_after;
	FILE *fp;

	assert_int_equal(stat(f->db, &before), 0);
	bytes_before = malloc((size_t)before.st_size + 1);
	fp = fopen(f->db, "r");
	assert_int_equal(
	    fread(bytes_before, 1, (size_t)before.st_size, fp), (size_t)before.st_size);
	fclose(fp);
	assert_int_equal(store_open(f->base, f->metrics, f->conf, &s, &err), -1);
	assert_null(s);
	if (strstr(err, want) == NULL)
		fail_msg("error '%s' lacks '%s'", err, want);
	/* Never overwritten: the same bytes after the refusal. */
	assert_int_equal(stat(f->db, &after), 0);
	assert_int_equal(after.st_size, before.st_size);
	bytes_after = malloc((size_t)after.st_size + 1);
	fp = fopen(f->db, "r");
	assert_int_equal(fread(bytes_after, 1, (size_t)after.st_size, fp), (size_t)after.st_size);
	fclose(fp);
	assert_memory_equal(bytes_before, bytes_after, (size_t)before.st_size);
	free(bytes_before);
	free(bytes_after);
}

static void
test_refuses_corrupt(void **state)
{
	struct fixture *f = *state;
	char junk[8192];

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 7 + 3);
	write_file(f->db, junk, sizeof(junk));
	expect_refused(f, "not an SQLite database or is corrupt");
}

static void
test_refuses_foreign(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	                     "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL);"
	                     "INSERT INTO invoices (total) VALUES (12.5)",
	                     NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	expect_refused(f, "not a loket register");
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db, "PRAGMA application_id = 1234", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	expect_refused(f, "another application");
}

static void
test_refuses_newer_schema(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	                     "PRAGMA application_id = 1280265044; "
	                     "PRAGMA user_version = 999; CREATE TABLE x (y)",
	                     NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	expect_refused(f, "written by a newer loketd");
}

struct tally {
	int done;
	int failed;
	char refs[200][16];
};

static void
created_cb(struct store_req *req, void *arg)
{
	struct tally *t = arg;

	if (req->result != STORE_OK) {
		t->failed++;
	} else {
		snprintf(t->refs[t->done], sizeof(t->refs[0]), "%s",
		    json_string_value(json_object_get(req->out, "reference")));
	}
	t->done++;
}

static json_t *
contact_doc(int i)
{
	char email[64];

	snprintf(email, sizeof(email), "burger%d@example.be", i % 10);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:i, s:s, s:s, s:s, s:b, s:[], "
	                 "s:{}, s:{s:s}}",
	    "channel", "phone", "organisation", "gemeente", "status", "open", "created_by", "test",
	    "direction", "in", "received_at", (json_int_t)util_time_ms(), "priority", "normal",
	    "line", 1, "subject", "vraag", "body", "", "product", "id", "confidential", 0, "tags",
	    "meta", "party", "email", email);
}

static void
test_group_commit(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	const char *err = NULL;
	static struct tally t;
	sqlite3 *db;
	sqlite3_stmt *st;
	char want[16];
	int year = util_time_year(util_time_ms());

	memset(&t, 0, sizeof(t));
	if (store_open(f->base, f->metrics, f->conf, &s, &err) < 0)
		fail_msg("%s", err);
	for (int i = 0; i < 200; i++)
		store_submit(
		    s, store_req_new(STORE_CONTACT_CREATE, contact_doc(i), created_cb, &t));
	while (t.done < 200)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(t.failed, 0);
	/* References are handed out in submit order, one after the other. */
	for (int i = 0; i < 200; i++) {
		snprintf(want, sizeof(want), "%04d-%06d", year, i + 1);
		assert_string_equal(t.refs[i], want);
	}
	store_close(s);
	/* Everything acknowledged is on disk: ten parties matched by email, 200 contacts. */
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
	                     "SELECT (SELECT count(*) FROM contacts), "
	                     "(SELECT count(*) FROM parties), "
	                     "(SELECT count(DISTINCT reference) FROM contacts)",
	                     -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 200);
	assert_int_equal(sqlite3_column_int(st, 1), 10);
	assert_int_equal(sqlite3_column_int(st, 2), 200);
	sqlite3_finalize(st);
	sqlite3_close(db);
	/* Reopening continues the sequence: a reference is never handed out twice. */
	memset(&t, 0, sizeof(t));
	assert_int_equal(store_open(f->base, f->metrics, f->conf, &s, &err), 0);
	store_submit(s, store_req_new(STORE_CONTACT_CREATE, contact_doc(0), created_cb, &t));
	while (t.done < 1)
		event_base_loop(f->base, EVLOOP_ONCE);
	snprintf(want, sizeof(want), "%04d-%06d", year, 201);
	assert_string_equal(t.refs[0], want);
	store_close(s);
}

struct outcome {
	int done;
	int status;
	int duplicate;
	json_int_t id;
};

static void
outcome_cb(struct store_req *req, void *arg)
{
	struct outcome *o = arg;

	o->done = 1;
	o->status = (int)req->result;
	o->duplicate = json_is_true(json_object_get(req->out, "duplicate"));
	o->id = json_integer_value(json_object_get(req->out, "id"));
}

struct failure {
	int done;
	enum store_result result;
	char error[256];
};

static void
failure_cb(struct store_req *req, void *arg)
{
	struct failure *o = arg;

	o->done = 1;
	o->result = req->result;
	snprintf(o->error, sizeof(o->error), "%s", req->error);
}

/*
 * SQLite's own error text names tables, columns and whatever a trigger
 * said: a failed statement is answered with a sentence for a person, the
 * SQLite text stays in the log.
 */
static void
test_storage_failure_detail_has_no_sqlite_text(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	const char *err = NULL;
	struct failure o = { 0 };
	sqlite3 *db;

	assert_int_equal(store_open(f->base, f->metrics, f->conf, &s, &err), 0);
	store_close(s);
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	                     "CREATE TRIGGER boom BEFORE INSERT ON contacts BEGIN "
	                     "SELECT RAISE(FAIL, 'internal sqlite text of table contacts'); END",
	                     NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_open(f->base, f->metrics, f->conf, &s, &err), 0);
	store_submit(s, store_req_new(STORE_CONTACT_CREATE, contact_doc(1), failure_cb, &o));
	while (!o.done)
		event_base_loop(f->base, EVLOOP_ONCE);
	store_close(s);
	assert_int_not_equal(o.result, STORE_OK);
	if (strstr(o.error, "sqlite") != NULL || strstr(o.error, "contacts") != NULL
	    || strstr(o.error, "constraint") != NULL || strstr(o.error, "internal") != NULL)
		fail_msg("the detail carries storage text: '%s'", o.error);
	assert_true(o.error[0] != '\0');
}

static int
replayed_cb(json_t *contact, void *arg)
{
	int *n = arg;

	assert_true(json_is_string(json_object_get(contact, "reference")));
	(*n)++;
	return 0;
}

/* loketctl rules replay reads through the driver table, not a SQLite function. */
static void
test_replay_goes_through_the_driver(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	const char *err = NULL;
	static struct tally t;
	const char *error = NULL;
	int n = 0;

	memset(&t, 0, sizeof(t));
	assert_int_equal(store_open(f->base, f->metrics, f->conf, &s, &err), 0);
	for (int i = 0; i < 3; i++)
		store_submit(
		    s, store_req_new(STORE_CONTACT_CREATE, contact_doc(i), created_cb, &t));
	while (t.done < 3)
		event_base_loop(f->base, EVLOOP_ONCE);
	/* Beside the open store, as beside a running daemon. */
	assert_int_equal(store_replay(f->conf, 0, replayed_cb, &n, &error), 0);
	assert_int_equal(n, 3);
	n = 0;
	assert_int_equal(store_replay(f->conf, util_time_ms() + 60000, replayed_cb, &n, &error), 0);
	assert_int_equal(n, 0);
	store_close(s);
}

/*
 * One blob writer for staff attachments, mail intake and plugins: named by
 * SHA-256 under data_dir/attachments, once, with no temporary file left.
 */
/*
 * The driver's lease rules, for any holder: one holder at a time until its
 * lease runs out, renewals, a release only by the holder, who held it before.
 */
static void
test_lease_one_holder_until_it_runs_out(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	const char *err = NULL;
	char was[STORE_LEASE_HOLDER_MAX];
	int64_t ttl = -1;

	assert_int_equal(store_open(f->base, f->metrics, f->conf, &s, &err), 0);
	assert_true(LOKET_STORE_DRIVER_HAS(s->driver, 1, lease));
	assert_int_equal(s->driver->lease(s->impl, "m", "node-a", 200, 0, was), STORE_OK);
	assert_string_equal(was, "");
	assert_int_equal(s->driver->lease(s->impl, "m", "node-b", 200, 0, was), STORE_CONFLICT);
	assert_string_equal(was, "node-a");
	assert_int_equal(s->driver->lease(s->impl, "m", "node-a", 200, 0, was), STORE_OK);
	/* Another name is another lease. */
	assert_int_equal(s->driver->lease(s->impl, "n", "node-b", 200, 0, NULL), STORE_OK);
	/* Only the holder gives it up. */
	assert_int_equal(s->driver->lease(s->impl, "m", "node-b", 0, 1, NULL), STORE_OK);
	assert_int_equal(s->driver->lease(s->impl, "m", "node-b", 200, 0, NULL), STORE_CONFLICT);
	assert_int_equal(s->driver->lease(s->impl, "m", "node-a", 0, 1, NULL), STORE_OK);
	assert_int_equal(s->driver->lease(s->impl, "m", "node-b", 50, 0, was), STORE_OK);
	assert_string_equal(was, "");
	/* Run out: the next holder takes it, and hears whose it was. */
	usleep(120 * 1000);
	assert_int_equal(s->driver->lease(s->impl, "m", "node-a", 200, 0, was), STORE_OK);
	assert_string_equal(was, "node-b");
	/* Through the core: this process's holder, [storage] lease (30 s) for a ttl of 0. */
	assert_int_equal(store_lease(NULL, "p:x", 0, 0, &ttl), STORE_OK);
	assert_int_equal(ttl, 30000);
	assert_int_equal(store_lease(NULL, "p:x", 1500, 0, &ttl), STORE_OK);
	assert_int_equal(ttl, 1500);
	assert_int_equal(s->driver->lease(s->impl, "p:x", "other", 200, 0, was), STORE_CONFLICT);
	assert_string_equal(was, s->holder);
	assert_non_null(strchr(s->holder, ':'));
	store_close(s);
	/* Closed: nobody can tell who holds it, so it is not held. */
	assert_int_equal(store_lease(NULL, "p:x", 0, 0, &ttl), STORE_UNAVAILABLE);
	assert_int_equal(ttl, 0);
}

static void
test_blob_put_keeps_bytes_by_sha256(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	const char *err = NULL;
	char hex[65], hex2[65], path[256], dir[160], got[8];
	struct dirent *de;
	size_t n = 0;
	FILE *fp;
	DIR *d;

	assert_int_equal(store_open(f->base, f->metrics, f->conf, &s, &err), 0);
	assert_int_equal(store_blob_put(s, "abc", 3, 0, hex), STORE_OK);
	assert_string_equal(
	    hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	/* s NULL: the open register, as a plugin's thread reaches it */
	assert_int_equal(store_blob_put(NULL, "abc", 3, STORE_BLOB_DEFER_SYNC, hex2), STORE_OK);
	assert_string_equal(hex, hex2);
	assert_int_equal(store_blob_sync(NULL), STORE_OK);
	snprintf(dir, sizeof(dir), "%s/attachments", f->dir);
	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			assert_string_equal(de->d_name, hex);
			n++;
		}
	closedir(d);
	assert_int_equal(n, 1);
	snprintf(path, sizeof(path), "%s/%s", dir, hex);
	assert_non_null(fp = fopen(path, "r"));
	assert_int_equal(fread(got, 1, sizeof(got), fp), 3);
	fclose(fp);
	assert_memory_equal(got, "abc", 3);
	assert_int_equal(store_blob_put(s, "", 0, 0, hex), STORE_OK);
	assert_string_equal(
	    hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	/* A folder that cannot be made fails the put; the hex is still the name it would have. */
	snprintf(path, sizeof(path), "chmod 0500 '%s/attachments'", f->dir);
	assert_int_equal(system(path), 0);
	if (geteuid() != 0)
		assert_int_equal(store_blob_put(s, "xyz", 3, 0, hex), STORE_FAILED);
	snprintf(path, sizeof(path), "chmod 0750 '%s/attachments'", f->dir);
	assert_int_equal(system(path), 0);
	store_close(s);
	/* Closed: a plugin's late put is refused, not written into a closed register. */
	assert_int_equal(store_blob_put(NULL, "abc", 3, 0, hex), STORE_UNAVAILABLE);
}

static void
found_cb(struct store_req *req, void *arg)
{
	json_int_t *found = arg;

	assert_int_equal(req->result, STORE_OK);
	*found = json_integer_value(json_object_get(req->out, "contact_id"));
}

/* A thread lookup, answered on a reader thread: waits on the loop for its answer. */
static json_int_t
thread_find(struct fixture *f, struct store *s, json_t *q)
{
	json_int_t found = -1;

	store_submit(s, store_req_new(STORE_THREAD_FIND, q, found_cb, &found));
	while (found == -1)
		event_base_loop(f->base, EVLOOP_ONCE);
	return found;
}

static json_t *
mail_doc(const char *key, const char *sender)
{
	json_t *doc = contact_doc(1);

	json_object_set_new(doc, "channel", json_string("email"));
	json_object_set_new(doc, "keys", json_pack("[s, s]", key, "email:message-id:same@x"));
	json_object_set_new(doc, "message",
	    json_pack("{s:s, s:s, s:s}", "sender", sender, "subject", "vraag", "message_id",
	        "m1@burger.test"));
	return doc;
}

/*
 * The same mail from two mailboxes, submitted before either is written: one
 * contact, and the second answer names it. Then what threads a reply: a
 * Message-ID from anybody, the reference only from an address the contact knows.
 */
static void
test_intake_keys_and_threading(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	const char *err = NULL;
	struct outcome a = { 0 }, b = { 0 };
	json_int_t found = -1;
	char ref[16];
	json_t *q;

	assert_int_equal(store_open(f->base, f->metrics, f->conf, &s, &err), 0);
	store_submit(s,
	    store_req_new(STORE_CONTACT_CREATE,
	        mail_doc("email:uid:info:1:7", "burger1@example.be"), outcome_cb, &a));
	store_submit(s,
	    store_req_new(STORE_CONTACT_CREATE,
	        mail_doc("email:uid:welzijn:1:3", "burger1@example.be"), outcome_cb, &b));
	while (!a.done || !b.done)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(a.status, 0);
	assert_int_equal(b.status, 0);
	assert_false(a.duplicate);
	assert_true(b.duplicate);
	assert_int_equal(a.id, b.id);
	snprintf(ref, sizeof(ref), "%04d-%06d", util_time_year(util_time_ms()), 1);

	/*
	 * A lookup runs on a reader thread and sees every write that completed
	 * before it was asked. The citizen's own
	 * Message-ID threads from its sender, not from a third party who saw it
	 * in To or Cc; loket's own (an outgoing message's) threads from anybody.
	 */
	q = json_pack("{s:[s], s:s}", "message_ids", "m1@burger.test", "sender",
	    "Burger1@Example.be");
	found = thread_find(f, s, q);
	assert_int_equal(found, a.id);
	q = json_pack("{s:[s], s:s}", "message_ids", "m1@burger.test", "sender", "iemand@anders.be");
	found = thread_find(f, s, q);
	assert_int_equal(found, 0);
	q = json_pack("{s:[s]}", "message_ids", "m1@burger.test");
	found = thread_find(f, s, q);
	assert_int_equal(found, 0);
	memset(&b, 0, sizeof(b));
	store_submit(s,
	    store_req_new(STORE_MESSAGE_ADD,
	        json_pack("{s:I, s:I, s:s, s:{s:s, s:s}, s:[], s:{s:b}}", "id", a.id, "at",
	            (json_int_t)util_time_ms(), "actor", "test", "message", "direction", "out",
	            "message_id", "loket.x.1@gemeente.be", "keys", "scope", "all", 1),
	        outcome_cb, &b));
	while (!b.done)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(b.status, 0);
	q = json_pack("{s:[s], s:s}", "message_ids", "loket.x.1@gemeente.be", "sender",
	    "iemand@anders.be");
	found = thread_find(f, s, q);
	assert_int_equal(found, a.id);
	q = json_pack("{s:s, s:s}", "reference", ref, "sender", "Burger1@Example.be");
	found = thread_find(f, s, q);
	assert_int_equal(found, a.id);
	q = json_pack("{s:s, s:s}", "reference", ref, "sender", "iemand@anders.be");
	found = thread_find(f, s, q);
	assert_int_equal(found, 0);
	q = json_pack("{s:s}", "reference", ref);
	found = thread_find(f, s, q);
	assert_int_equal(found, 0);
	store_close(s);
}

static void
got_cb(struct store_req *req, void *arg)
{
	json_t **out = arg;

	assert_int_equal(req->result, STORE_OK);
	*out = json_incref(req->out);
}

/* Contact id with its details, as STORE_CONTACT_GET answers it; owned by the caller. */
static json_t *
contact_get(struct fixture *f, struct store *s, json_int_t id)
{
	json_t *got = NULL;

	store_submit(s, store_req_new(STORE_CONTACT_GET, json_pack("{s:I, s:s}", "id", id,
						       "scope", "all"), got_cb, &got));
	while (got == NULL)
		event_base_loop(f->base, EVLOOP_ONCE);
	return got;
}

/* A text field of the index-th entry of a list, "" when absent (so a check names the value). */
static const char *
entry_str(json_t *list, size_t index, const char *key)
{
	const char *v = json_string_value(json_object_get(json_array_get(list, index), key));

	return v != NULL ? v : "";
}

/*
 * The driver returns a contact in the storage shape docs/storage.md states
 * (times in ms, the party's name plain) and contact_view makes the API's
 * view of it (ISO times, the party object) in place.
 */
static void
test_contact_comes_back_in_storage_shape_and_the_view_makes_the_api_one(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	const char *err = NULL;
	struct outcome a = { 0 };
	json_t *doc = contact_doc(1), *got;
	json_int_t received = json_integer_value(json_object_get(doc, "received_at"));
	char when[40];

	assert_int_equal(store_open(f->base, f->metrics, f->conf, &s, &err), 0);
	store_submit(s, store_req_new(STORE_CONTACT_CREATE, doc, outcome_cb, &a));
	while (!a.done)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(a.status, 0);
	got = contact_get(f, s, a.id);
	assert_true(json_is_integer(json_object_get(got, "received_at")));
	assert_int_equal(json_integer_value(json_object_get(got, "received_at")), received);
	assert_true(json_is_integer(json_object_get(got, "party_id")));
	assert_true(json_object_get(got, "party_name") != NULL);
	assert_null(json_object_get(got, "party"));
	contact_view(got);
	util_time_format(received, when, sizeof(when));
	assert_string_equal(json_string_value(json_object_get(got, "received_at")), when);
	assert_true(json_is_object(json_object_get(got, "party")));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(got, "party"), "id")),
	    json_integer_value(json_object_get(got, "party_id")));
	assert_null(json_object_get(got, "party_name"));
	json_decref(got);
	store_close(s);
}

/*
 * The decisions of a new contact's rules are stored as one row and read
 * back as one history entry each, in order, with their rules as actors; a
 * lone decision stays a row of its own.
 */
static void
test_rules_history_one_row(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	const char *err = NULL;
	struct outcome a = { 0 }, b = { 0 }, o = { 0 };
	json_t *doc = contact_doc(1), *lone = contact_doc(2), *old = contact_doc(3), *got, *h;
	sqlite3 *db;
	sqlite3_stmt *st;

	/* As register_apply hands them over: three decisions packed in one row, one worded. */
	json_object_set_new(doc, "history",
	    json_pack("[{s:s, s:s, s:s}]", "actor", "rules", "action", "rules", "detail",
	        "[\"rule:10-a.lua:1\", \"rule\", \"set product = null\", "
	        "\"rule:20-b.lua:4\", \"rule_failed\", \"budget\", "
	        "\"rule:30-c.lua:2\", \"rule\", \"tag [\\\"x\\\"]\"]"));
	json_object_set_new(lone, "history",
	    json_pack("[{s:s, s:s, s:s}]", "actor", "rule:30-c.lua:2", "action", "rule", "detail",
	        "tag [\"y\"]"));
	assert_int_equal(store_open(f->base, f->metrics, f->conf, &s, &err), 0);
	store_submit(s, store_req_new(STORE_CONTACT_CREATE, doc, outcome_cb, &a));
	/* The earlier form of a "rules" row: {rule, action, decision or detail} objects. */
	json_object_set_new(old, "history",
	    json_pack("[{s:s, s:s, s:s}]", "actor", "rules", "action", "rules", "detail",
	        "[{\"rule\": \"10-a.lua:1\", \"action\": \"rule\", \"decision\": {\"type\": "
	        "\"assign\", \"rule\": \"10-a.lua:1\", \"to\": \"jan\"}}, "
	        "{\"rule\": \"20-b.lua:4\", \"action\": \"rule_failed\", \"detail\": \"error\"}]"));
	store_submit(s, store_req_new(STORE_CONTACT_CREATE, lone, outcome_cb, &b));
	store_submit(s, store_req_new(STORE_CONTACT_CREATE, old, outcome_cb, &o));
	while (!a.done || !b.done || !o.done)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(a.status, 0);
	got = contact_get(f, s, a.id);
	/* The driver hands the row back as stored; the register's view unfolds it. */
	assert_int_equal(json_array_size(json_object_get(got, "history")), 2);
	contact_view(got);
	h = json_object_get(got, "history");
	/* created, then the three decisions */
	assert_int_equal(json_array_size(h), 4);
	assert_string_equal(entry_str(h, 0, "action"), "created");
	assert_string_equal(entry_str(h, 1, "actor"), "rule:10-a.lua:1");
	assert_string_equal(entry_str(h, 1, "detail"), "set product = null");
	assert_string_equal(entry_str(h, 2, "action"), "rule_failed");
	assert_string_equal(entry_str(h, 2, "detail"), "budget");
	assert_string_equal(entry_str(h, 3, "actor"), "rule:30-c.lua:2");
	assert_string_equal(entry_str(h, 3, "detail"), "tag [\"x\"]");
	json_decref(got);
	got = contact_get(f, s, o.id);
	contact_view(got);
	h = json_object_get(got, "history");
	assert_int_equal(json_array_size(h), 3);
	assert_string_equal(entry_str(h, 1, "actor"), "rule:10-a.lua:1");
	assert_string_equal(entry_str(h, 1, "detail"), "assign to jan");
	assert_string_equal(entry_str(h, 2, "action"), "rule_failed");
	assert_string_equal(entry_str(h, 2, "detail"), "error");
	json_decref(got);
	store_close(s);
	/* On disk, per contact: created, then a rules row / a plain row / a rules row. */
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
	                     "SELECT contact_id, actor, action FROM contact_history ORDER BY id",
	                     -1, &st, NULL),
	    SQLITE_OK);
	for (int i = 0; i < 6; i++) {
		static const char *const want[6][2] = { { "test", "created" }, { "rules", "rules" },
			{ "test", "created" }, { "rule:30-c.lua:2", "rule" }, { "test", "created" },
			{ "rules", "rules" } };

		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(st, 1), want[i][0]);
		assert_string_equal((const char *)sqlite3_column_text(st, 2), want[i][1]);
	}
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void
test_schema_marks_file(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	const char *err = NULL;
	sqlite3 *db;
	sqlite3_stmt *st;

	assert_int_equal(store_open(f->base, f->metrics, f->conf, &s, &err), 0);
	store_close(s);
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA application_id", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0x4c4f4b54);
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* What the read pool tests hear: how many reads were answered, in which order, how. */
struct reads {
	int done;
	int failed;
	int wrong;
	int order[600];
	struct store *s;
	int chain; /* reads still to ask from a callback, one after the other */
};

struct read_slot {
	struct reads *r;
	int index;
	json_int_t want_id;
};

static void
read_cb(struct store_req *req, void *arg)
{
	struct read_slot *slot = arg;
	struct reads *r = slot->r;

	if (req->result != STORE_OK)
		r->failed++;
	else if (slot->want_id != 0
	    && json_integer_value(json_object_get(req->out, "id")) != slot->want_id)
		r->wrong++;
	if (r->done < (int)(sizeof(r->order) / sizeof(r->order[0])))
		r->order[r->done] = slot->index;
	r->done++;
}

static void
create_many(struct fixture *f, struct store *s, int n, json_int_t *ids)
{
	struct outcome o[64];

	assert_true(n <= 64);
	memset(o, 0, sizeof(o));
	for (int i = 0; i < n; i++)
		store_submit(s, store_req_new(STORE_CONTACT_CREATE, contact_doc(i), outcome_cb, &o[i]));
	for (int i = 0; i < n; i++) {
		while (!o[i].done)
			event_base_loop(f->base, EVLOOP_ONCE);
		assert_int_equal(o[i].status, 0);
		ids[i] = o[i].id;
	}
}

/*
 * Reads go to the reader threads: store_submit returns before they are
 * answered, every one is answered on the loop, once, with its own contact,
 * also when there are far more reads than readers.
 */
static void
test_read_pool_queues_and_answers_every_read(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	const char *err = NULL;
	static struct reads r;
	static struct read_slot slots[400];
	json_int_t ids[20];

	memset(&r, 0, sizeof(r));
	f->conf->storage_readers = 2;
	assert_int_equal(store_open(f->base, f->metrics, f->conf, &s, &err), 0);
	create_many(f, s, 20, ids);
	for (int i = 0; i < 400; i++) {
		slots[i] = (struct read_slot){ &r, i, ids[i % 20] };
		store_submit(s, store_req_new(STORE_CONTACT_GET,
				    json_pack("{s:I, s:{s:b}}", "id", ids[i % 20], "scope", "all", 1),
				    read_cb, &slots[i]));
	}
	/* Nothing answered yet: the loop has not run, so no completion was delivered. */
	assert_int_equal(r.done, 0);
	while (r.done < 400)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(r.failed, 0);
	assert_int_equal(r.wrong, 0);
	store_close(s);
	assert_int_equal(r.done, 400);
}

/*
 * The reads the daemon repeats (counts, what is due next) are answered in
 * the order they were asked, whatever the readers are doing with the lists
 * asked between them.
 */
static void
test_read_pool_keeps_order_of_repeated_reads(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	const char *err = NULL;
	static struct reads r;
	static struct read_slot slots[300];
	json_int_t ids[20];
	int next = 0;

	memset(&r, 0, sizeof(r));
	assert_int_equal(store_open(f->base, f->metrics, f->conf, &s, &err), 0);
	create_many(f, s, 20, ids);
	for (int i = 0; i < 300; i++) {
		slots[i] = (struct read_slot){ &r, i, 0 };
		/* Between them, lists the other readers take. */
		store_submit(s, store_req_new(i % 3 == 0 ? STORE_COUNTS : STORE_CONTACT_LIST,
				    i % 3 == 0 ? json_object()
					       : json_pack("{s:{s:b}, s:i}", "scope", "all", 1,
						     "limit", 100),
				    read_cb, &slots[i]));
	}
	while (r.done < 300)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(r.failed, 0);
	for (int i = 0; i < 300; i++) {
		if (r.order[i] % 3 != 0)
			continue;
		assert_int_equal(r.order[i], next);
		next += 3;
	}
	assert_int_equal(next, 300);
	store_close(s);
}

/* A read asked from a read's answer, up to r->chain of them. */
static void
chain_cb(struct store_req *req, void *arg)
{
	struct read_slot *slot = arg;

	read_cb(req, arg);
	if (slot->r->chain > 0) {
		slot->r->chain--;
		store_submit(slot->r->s, store_req_new(STORE_CONTACT_LIST,
					     json_pack("{s:{s:b}, s:i}", "scope", "all", 1, "limit", 5),
					     chain_cb, slot));
	}
}

/*
 * Closing the register with reads queued and in flight: every read is
 * answered before store_close returns, none twice, none lost; reads their
 * answers ask for are answered too; a write asked then is still stored.
 */
static void
test_read_pool_close_with_reads_in_flight(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	const char *err = NULL;
	static struct reads r;
	static struct read_slot slots[500], chained;
	json_int_t ids[20];

	memset(&r, 0, sizeof(r));
	f->conf->storage_readers = 3;
	assert_int_equal(store_open(f->base, f->metrics, f->conf, &s, &err), 0);
	create_many(f, s, 20, ids);
	r.s = s;
	r.chain = 5;
	chained = (struct read_slot){ &r, 500, 0 };
	store_submit(s, store_req_new(STORE_CONTACT_LIST,
			    json_pack("{s:{s:b}, s:i}", "scope", "all", 1, "limit", 5), chain_cb,
			    &chained));
	for (int i = 0; i < 500; i++) {
		slots[i] = (struct read_slot){ &r, i, ids[i % 20] };
		store_submit(s, store_req_new(STORE_CONTACT_GET,
				    json_pack("{s:I, s:{s:b}}", "id", ids[i % 20], "scope", "all", 1),
				    read_cb, &slots[i]));
	}
	store_close(s);
	assert_int_equal(r.done, 501 + 5);
	assert_int_equal(r.failed, 0);
	assert_int_equal(r.wrong, 0);
}

/* A read asked after a write's answer sees that write, on whichever reader takes it. */
static void
test_read_pool_reads_its_writes(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	const char *err = NULL;
	static struct reads r;
	static struct read_slot slots[40];

	memset(&r, 0, sizeof(r));
	assert_int_equal(store_open(f->base, f->metrics, f->conf, &s, &err), 0);
	for (int i = 0; i < 40; i++) {
		json_int_t id;

		create_many(f, s, 1, &id);
		slots[i] = (struct read_slot){ &r, i, id };
		store_submit(s, store_req_new(STORE_CONTACT_GET,
				    json_pack("{s:I, s:{s:b}}", "id", id, "scope", "all", 1), read_cb,
				    &slots[i]));
	}
	while (r.done < 40)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(r.failed, 0);
	assert_int_equal(r.wrong, 0);
	store_close(s);
}

struct answer {
	int done;
	enum store_result result;
	json_t *out;
};

static void
answer_cb(struct store_req *req, void *arg)
{
	struct answer *a = arg;

	a->done = 1;
	a->result = req->result;
	a->out = json_incref(req->out);
}

static void
ask(struct fixture *f, struct store *s, enum store_op op, json_t *in, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	store_submit(s, store_req_new(op, in, answer_cb, a));
	while (!a->done)
		event_base_loop(f->base, EVLOOP_ONCE);
}

/*
 * A contact update carries its condition as data (expect, a filter of the
 * scope's shape) and the driver checks it on the row inside the write; the
 * driver decides nothing on its own: without expect, a confidential contact
 * moves wherever the caller (whose scope sees it) sends it.
 */
static void
test_update_checks_expect_and_decides_nothing_else(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	const char *err = NULL;
	struct answer a;
	json_t *doc = contact_doc(1), *scope;
	json_int_t id;

	assert_int_equal(store_open(f->base, f->metrics, f->conf, &s, &err), 0);
	json_object_set_new(doc, "organisation", json_string("ocmw"));
	json_object_set_new(doc, "department", json_string("sociale_dienst"));
	json_object_set_new(doc, "confidential", json_true());
	ask(f, s, STORE_CONTACT_CREATE, doc, &a);
	assert_int_equal(a.result, STORE_OK);
	id = json_integer_value(json_object_get(a.out, "id"));
	json_decref(a.out);
	scope = json_pack("{s:b, s:s}", "all", 0, "organisation", "ocmw");

	/* Only if the contact passes {organisation: gemeente}: a confidential one of ocmw does not. */
	ask(f, s, STORE_CONTACT_UPDATE,
	    json_pack("{s:I, s:I, s:s, s:O, s:{s:s, s:s}, s:{s:b, s:s}}", "id", id, "at",
		(json_int_t)util_time_ms(), "actor", "test", "scope", scope, "set", "department",
		"burgerzaken", "organisation", "gemeente", "expect", "all", 0, "organisation",
		"gemeente"),
	    &a);
	assert_int_equal(a.result, STORE_FORBIDDEN);
	assert_string_equal(json_string_value(json_object_get(a.out, "organisation")), "ocmw");
	assert_true(json_is_true(json_object_get(a.out, "confidential")));
	json_decref(a.out);
	ask(f, s, STORE_CONTACT_GET, json_pack("{s:I, s:{s:b}}", "id", id, "scope", "all", 1), &a);
	assert_string_equal(json_string_value(json_object_get(a.out, "organisation")), "ocmw");
	assert_string_equal(
	    json_string_value(json_object_get(a.out, "department")), "sociale_dienst");
	json_decref(a.out);

	/* No condition given: the driver stores what it was asked to. */
	ask(f, s, STORE_CONTACT_UPDATE,
	    json_pack("{s:I, s:I, s:s, s:O, s:{s:s, s:s}}", "id", id, "at",
		(json_int_t)util_time_ms(), "actor", "test", "scope", scope, "set", "department",
		"burgerzaken", "organisation", "gemeente"),
	    &a);
	assert_int_equal(a.result, STORE_OK);
	assert_string_equal(json_string_value(json_object_get(a.out, "organisation")), "gemeente");
	json_decref(a.out);
	json_decref(scope);
	store_close(s);
}

/*
 * A fired timer's action (a contact update with timer_done) is stored only
 * while the timer is pending: fired a second time (on SQLite after a crash,
 * on a shared register by another node across a lease hand-over), the
 * action is refused with CONFLICT and stores nothing; TIMER_DONE stays
 * idempotent (docs/storage.md, "Shared work").
 */
static void
test_timer_action_is_stored_only_while_its_timer_is_pending(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	const char *err = NULL;
	struct answer a;
	json_t *doc = contact_doc(1), *items, *history;
	json_int_t id, timer, now = (json_int_t)util_time_ms();
	size_t i, reminders = 0;

	assert_int_equal(store_open(f->base, f->metrics, f->conf, &s, &err), 0);
	json_object_set_new(doc, "timers",
	    json_pack("[{s:s, s:I, s:{}, s:s}]", "kind", "remind", "due_at", now - 1000, "payload",
		"rule", "10-remind.lua:2"));
	ask(f, s, STORE_CONTACT_CREATE, doc, &a);
	assert_int_equal(a.result, STORE_OK);
	id = json_integer_value(json_object_get(a.out, "id"));
	json_decref(a.out);
	ask(f, s, STORE_TIMERS_DUE, json_pack("{s:I, s:i}", "now", now, "limit", 10), &a);
	items = json_object_get(a.out, "items");
	assert_int_equal(json_array_size(items), 1);
	timer = json_integer_value(json_object_get(json_array_get(items, 0), "id"));
	json_decref(a.out);

	for (int round = 0; round < 2; round++) {
		ask(f, s, STORE_CONTACT_UPDATE,
		    json_pack("{s:I, s:I, s:s, s:{s:b}, s:{s:s}, s:I, s:[{s:s, s:s, s:s}]}", "id",
			id, "at", now, "actor", "rules", "scope", "all", 1, "set", "priority",
			round == 0 ? "high" : "low", "timer_done", timer, "history", "actor",
			"rule:10-remind.lua:2", "action", "reminder", "detail",
			round == 0 ? "first" : "second"),
		    &a);
		assert_int_equal(a.result, round == 0 ? STORE_OK : STORE_CONFLICT);
		if (round == 1)
			assert_string_equal(
			    json_string_value(json_object_get(a.out, "status")), "done");
		json_decref(a.out);
	}
	ask(f, s, STORE_CONTACT_GET, json_pack("{s:I, s:{s:b}}", "id", id, "scope", "all", 1), &a);
	assert_string_equal(json_string_value(json_object_get(a.out, "priority")), "high");
	history = json_object_get(a.out, "history");
	for (i = 0; i < json_array_size(history); i++)
		reminders += strcmp(entry_str(history, i, "action"), "reminder") == 0;
	assert_int_equal(reminders, 1);
	json_decref(a.out);
	/* Closing it again changes nothing, and it is due no more. */
	ask(f, s, STORE_TIMER_DONE, json_pack("{s:I, s:I}", "id", timer, "at", now), &a);
	assert_int_equal(a.result, STORE_OK);
	json_decref(a.out);
	ask(f, s, STORE_TIMERS_DUE, json_pack("{s:I, s:i}", "now", now, "limit", 10), &a);
	assert_int_equal(json_array_size(json_object_get(a.out, "items")), 0);
	json_decref(a.out);
	store_close(s);
}

/*
 * An event's scope rides in its payload: after the payload's own keys, alone
 * when they leave no room, and when the names do not fit at all, a scope
 * only "all" passes (never a cut name another department could match).
 */
static void
test_event_scope_is_added_and_fails_closed(void **state)
{
	char p[STORE_EVENT_PAYLOAD] = "{\"status\":\"open\"}", long_name[150];
	json_t *j, *scope, *agent = json_pack("{s:b, s:n, s:s}", "all", 0, "departments",
				 "organisation", "gemeente");
	json_t *admin = json_pack("{s:b}", "all", 1);

	(void)state;
	store_event_scope_add(p, "burger\"zaken", "gemeente", 0);
	j = json_loads(p, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "open");
	scope = json_object_get(j, "scope");
	assert_string_equal(json_string_value(json_object_get(scope, "department")),
	    "burger\"zaken");
	assert_true(json_is_false(json_object_get(scope, "confidential")));
	json_decref(j);

	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	snprintf(p, sizeof(p), "{\"status\":\"open\"}");
	store_event_scope_add(p, long_name, "gemeente", 0);
	assert_string_equal(p, "{\"scope\":{\"confidential\":true}}");
	j = json_loads(p, 0, NULL);
	scope = json_object_get(j, "scope");
	assert_false(store_scope_allows(agent, NULL, NULL, 1));
	assert_true(store_scope_allows(admin, NULL, NULL, 1));
	assert_true(json_is_true(json_object_get(scope, "confidential")));
	json_decref(j);
	json_decref(agent);
	json_decref(admin);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_refuses_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_foreign, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_newer_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schema_marks_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intake_keys_and_threading, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_history_one_row, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_contact_comes_back_in_storage_shape_and_the_view_makes_the_api_one, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_read_pool_queues_and_answers_every_read, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_read_pool_keeps_order_of_repeated_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_read_pool_close_with_reads_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_pool_reads_its_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_storage_failure_detail_has_no_sqlite_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_goes_through_the_driver, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_put_keeps_bytes_by_sha256, setup, teardown),
		cmocka_unit_test(test_event_scope_is_added_and_fails_closed),
		cmocka_unit_test_setup_teardown(
		    test_lease_one_holder_until_it_runs_out, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_update_checks_expect_and_decides_nothing_else, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_timer_action_is_stored_only_while_its_timer_is_pending, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
