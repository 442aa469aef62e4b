/*
 * pwhash.c: password hashing and verification (argon2id) on worker threads.
 *
 * An argon2id hash takes tens of milliseconds and 64 MiB on purpose; on the
 * loop it would stall every other request. A small pool of threads takes
 * jobs from one queue and hands finished ones back with an event on the
 * loop, where the callbacks run.
 */
#include "config.h"

#include <event2/event.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pwhash.h"

#define PWHASH_THREADS_MAX 8
#define PWHASH_PASSWORD_MAX 1024

struct pwhash_job {
	struct pwhash_job *next;
	int verify;
	char password[PWHASH_PASSWORD_MAX + 1];
	char hash[crypto_pwhash_STRBYTES]; /* verify: the stored hash ("" = the dummy); hash: the result */
	int ok;                            /* verify: matched; hash: made */
	void (*hash_cb)(const char *hash, void *arg);
	void (*verify_cb)(int ok, void *arg);
	void *arg;
};

struct pwhash {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t threads[PWHASH_THREADS_MAX];
	unsigned int nthreads;
	struct pwhash_job *todo, **todo_tail;
	struct pwhash_job *done;
	unsigned int queued;
	int stopping;
	struct event *done_ev;
	/* A hash of a random password: what an unknown user is checked against. */
	char dummy[crypto_pwhash_STRBYTES];
	int dummy_made;
};

static void
pwhash_job_free(struct pwhash_job *j)
{
	sodium_memzero(j->password, sizeof(j->password));
	free(j);
}

/* Made on a worker the first time it is needed: argon2id on the loop would stall it. */
static const char *
pwhash_dummy(struct pwhash *p)
{
	char random_pw[33];
	unsigned char raw[16];
	const char *hash = NULL;

	pthread_mutex_lock(&p->lock);
	if (p->dummy_made)
		hash = p->dummy;
	pthread_mutex_unlock(&p->lock);
	if (hash != NULL)
		return hash;
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(random_pw, sizeof(random_pw), raw, sizeof(raw));
	char made[crypto_pwhash_STRBYTES];
	int rc = crypto_pwhash_str(made, random_pw, strlen(random_pw),
	    crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE);
	pthread_mutex_lock(&p->lock);
	if (rc == 0 && !p->dummy_made) {
		memcpy(p->dummy, made, sizeof(made));
		p->dummy_made = 1;
	}
	hash = p->dummy_made ? p->dummy : NULL;
	pthread_mutex_unlock(&p->lock);
	return hash;
}

static void
pwhash_run(struct pwhash *p, struct pwhash_job *j)
{
	size_t len = strlen(j->password);

	if (!j->verify) {
		j->ok = crypto_pwhash_str(j->hash, j->password, len,
		            crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE)
		    == 0;
		return;
	}
	if (j->hash[0] == '\0') {
		const char *dummy = pwhash_dummy(p);

		/* The dummy's answer is computed and thrown away: an unknown user never matches. */
		int same = dummy != NULL && crypto_pwhash_str_verify(dummy, j->password, len) == 0;

		(void)same;
		j->ok = 0;
		return;
	}
	j->ok = crypto_pwhash_str_verify(j->hash, j->password, len) == 0;
}

static void *
pwhash_thread(void *arg)
{
	struct pwhash *p = arg;
	struct pwhash_job *j;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->todo == NULL && !p->stopping)
			pthread_cond_wait(&p->wake, &p->lock);
		if (p->stopping)
			break;
		j = p->todo;
		if ((p->todo = j->next) == NULL)
			p->todo_tail = &p->todo;
		pthread_mutex_unlock(&p->lock);
		pwhash_run(p, j);
		sodium_memzero(j->password, sizeof(j->password));
		pthread_mutex_lock(&p->lock);
		j->next = p->done;
		p->done = j;
		event_active(p->done_ev, EV_READ, 0);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* On the loop: the finished jobs' callbacks, oldest first. */
static void
pwhash_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pwhash *p = arg;
	struct pwhash_job *list, *rev = NULL, *j;

	pthread_mutex_lock(&p->lock);
	list = p->done;
	p->done = NULL;
	pthread_mutex_unlock(&p->lock);
	while (list != NULL) {
		j = list;
		list = j->next;
		j->next = rev;
		rev = j;
	}
	while ((j = rev) != NULL) {
		rev = j->next;
		pthread_mutex_lock(&p->lock);
		p->queued--;
		pthread_mutex_unlock(&p->lock);
		if (j->verify)
			j->verify_cb(j->ok, j->arg);
		else
			j->hash_cb(j->ok ? j->hash : NULL, j->arg);
		pwhash_job_free(j);
	}
}

struct pwhash *
pwhash_new(struct event_base *base, unsigned int threads, const char **error_r)
{
	struct pwhash *p = calloc(1, sizeof(*p));

	if (p == NULL || sodium_init() < 0) {
		free(p);
		*error_r = "cannot initialise the password hashing";
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	p->todo_tail = &p->todo;
	if ((p->done_ev = event_new(base, -1, 0, pwhash_done_cb, p)) == NULL)
		goto fail;
	if (threads == 0)
		threads = 1;
	if (threads > PWHASH_THREADS_MAX)
		threads = PWHASH_THREADS_MAX;
	for (; p->nthreads < threads; p->nthreads++)
		if (pthread_create(&p->threads[p->nthreads], NULL, pwhash_thread, p) != 0)
			goto fail;
	return p;
fail:
	pwhash_free(p);
	*error_r = "cannot start the password hashing threads";
	return NULL;
}

void
pwhash_free(struct pwhash *p)
{
	struct pwhash_job *j;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	for (unsigned int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	while ((j = p->todo) != NULL) {
		p->todo = j->next;
		pwhash_job_free(j);
	}
	while ((j = p->done) != NULL) {
		p->done = j->next;
		pwhash_job_free(j);
	}
	if (p->done_ev != NULL)
		event_free(p->done_ev);
	sodium_memzero(p->dummy, sizeof(p->dummy));
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static int
pwhash_queue(struct pwhash *p, struct pwhash_job *j)
{
	pthread_mutex_lock(&p->lock);
	if (p->stopping || p->queued >= PWHASH_QUEUE_MAX) {
		pthread_mutex_unlock(&p->lock);
		pwhash_job_free(j);
		return -1;
	}
	p->queued++;
	*p->todo_tail = j;
	p->todo_tail = &j->next;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static struct pwhash_job *
pwhash_job_new(const char *password)
{
	struct pwhash_job *j;

	if (strlen(password) > PWHASH_PASSWORD_MAX || (j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	memcpy(j->password, password, strlen(password) + 1);
	return j;
}

int
pwhash_hash(struct pwhash *p, const char *password,
    void (*done_cb)(const char *hash, void *arg), void *arg)
{
	struct pwhash_job *j = pwhash_job_new(password);

	if (j == NULL)
		return -1;
	j->hash_cb = done_cb;
	j->arg = arg;
	return pwhash_queue(p, j);
}

int
pwhash_verify(struct pwhash *p, const char *password, const char *hash,
    void (*done_cb)(int ok, void *arg), void *arg)
{
	struct pwhash_job *j = pwhash_job_new(password);

	if (j == NULL)
		return -1;
	if (hash != NULL && strlen(hash) < sizeof(j->hash))
		memcpy(j->hash, hash, strlen(hash) + 1);
	j->verify = 1;
	j->verify_cb = done_cb;
	j->arg = arg;
	return pwhash_queue(p, j);
}
