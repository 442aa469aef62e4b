/* test_pwhash.c: argon2id hashing and verification on worker threads, answered on the loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "pwhash.h"

struct answer {
	struct event_base *base;
	int done;
	int ok;
	char hash[256];
};

static void
hashed_cb(const char *hash, void *arg)
{
	struct answer *a = arg;

	a->done = 1;
	if (hash != NULL)
		strncpy(a->hash, hash, sizeof(a->hash) - 1);
	event_base_loopbreak(a->base);
}

static void
verified_cb(int ok, void *arg)
{
	struct answer *a = arg;

	a->done = 1;
	a->ok = ok;
	event_base_loopbreak(a->base);
}

static void
wait_answer(struct answer *a)
{
	while (!a->done)
		event_base_dispatch(a->base);
}

static void
test_hash_then_verify(void **state)
{
	struct event_base *base = event_base_new();
	const char *err = NULL;
	struct pwhash *p = pwhash_new(base, 2, &err);
	struct answer h = { .base = base }, right = { .base = base }, wrong = { .base = base },
		      dummy = { .base = base };

	assert_non_null(p);
	assert_int_equal(pwhash_hash(p, "correct horse battery", hashed_cb, &h), 0);
	/* The loop runs the callback, never the call itself. */
	assert_int_equal(h.done, 0);
	wait_answer(&h);
	assert_true(strncmp(h.hash, "$argon2id$", 10) == 0);
	assert_null(strstr(h.hash, "correct horse"));

	assert_int_equal(pwhash_verify(p, "correct horse battery", h.hash, verified_cb, &right), 0);
	wait_answer(&right);
	assert_int_equal(right.ok, 1);
	assert_int_equal(pwhash_verify(p, "correct horse batterY", h.hash, verified_cb, &wrong), 0);
	wait_answer(&wrong);
	assert_int_equal(wrong.ok, 0);
	/* No hash (an unknown user): checked against the dummy, never a match. */
	assert_int_equal(pwhash_verify(p, "correct horse battery", NULL, verified_cb, &dummy), 0);
	wait_answer(&dummy);
	assert_int_equal(dummy.ok, 0);
	pwhash_free(p);
	event_base_free(base);
}

static void
test_garbage_hash_never_matches(void **state)
{
	struct event_base *base = event_base_new();
	const char *err = NULL;
	struct pwhash *p = pwhash_new(base, 1, &err);
	struct answer a = { .base = base };

	assert_non_null(p);
	assert_int_equal(pwhash_verify(p, "whatever it is", "not-a-hash", verified_cb, &a), 0);
	wait_answer(&a);
	assert_int_equal(a.ok, 0);
	pwhash_free(p);
	event_base_free(base);
}

static void
test_free_with_jobs_waiting_drops_them(void **state)
{
	struct event_base *base = event_base_new();
	const char *err = NULL;
	struct pwhash *p = pwhash_new(base, 1, &err);
	struct answer a[4];

	assert_non_null(p);
	for (int i = 0; i < 4; i++) {
		a[i] = (struct answer){ .base = base };
		assert_int_equal(pwhash_hash(p, "a password of some length", hashed_cb, &a[i]), 0);
	}
	pwhash_free(p);
	for (int i = 0; i < 4; i++)
		assert_int_equal(a[i].done, 0);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_then_verify),
		cmocka_unit_test(test_garbage_hash_never_matches),
		cmocka_unit_test(test_free_with_jobs_waiting_drops_them),
	};

	evthread_use_pthreads();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
