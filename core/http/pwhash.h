/* pwhash.h: password hashing and verification (argon2id) on worker threads, off the loop. */
#ifndef LOKET_PWHASH_H
#define LOKET_PWHASH_H

struct event_base;
struct pwhash;

/* At most this many hashes wait; more are refused (the caller answers 503). */
#define PWHASH_QUEUE_MAX 64

/* threads: how many hashes run at once (each takes MEMLIMIT_INTERACTIVE, 64 MiB). */
struct pwhash *pwhash_new(struct event_base *base, unsigned int threads, const char **error_r);
/* Stops the threads; jobs not done yet are dropped without their callback. */
void pwhash_free(struct pwhash *p);
/*
 * Hashes password (copied; the copy is wiped) for storage; done_cb runs
 * on the loop with the encoded hash (borrowed for the call) or NULL.
 * -1 when the queue is full or memory is short: done_cb will not run.
 */
int pwhash_hash(struct pwhash *p, const char *password,
    void (*done_cb)(const char *hash, void *arg), void *arg);
/*
 * Whether password matches hash; done_cb runs on the loop with 1 or 0.
 * hash NULL checks against a dummy hash made once, at the same cost, so
 * an unknown user takes as long as a known one (and never matches).
 */
int pwhash_verify(struct pwhash *p, const char *password, const char *hash,
    void (*done_cb)(int ok, void *arg), void *arg);

#endif
