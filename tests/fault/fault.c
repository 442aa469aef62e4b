/*
 * fault.c: an LD_PRELOAD shim that makes the disk fail on cue, for the
 * storage fault tests (tests/integration/test_store_faults.py).
 *
 * It intercepts write/pwrite/pwrite64/writev/pwritev and fsync/fdatasync on
 * files whose path matches the glob LOKET_FAULT_PATHS, and fails them as the
 * control file LOKET_FAULT_CONTROL says. The file is read again whenever it
 * changes (write a new one and rename it over), so a test can fill the disk
 * and free it again while loketd runs. Each line is
 *
 *     OP ERRNO NTH [COUNT]
 *
 * OP is "write" or "fsync"; ERRNO is ENOSPC or EIO; the NTH matching call of
 * OP counted since the file changed fails, and the COUNT-1 calls after it
 * too (COUNT 0: every call from the NTH on, a disk that stays full; default
 * 1). A line "delay fsync MS" makes every matching fsync take MS
 * milliseconds longer (a slow disk, so that writes queue up into big
 * batches). A missing or empty file fails nothing. Every failure made is
 * appended to LOKET_FAULT_CONTROL.fired as "OP ERRNO PATH", so a test knows
 * it fired.
 *
 * Under AddressSanitizer load it after the runtime
 * (LD_PRELOAD=libasan.so.N:fault.so): the sanitizer's own interceptors then
 * call into this one, which calls libc.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define FAULT_RULES 8

enum fault_op { FAULT_WRITE, FAULT_FSYNC };

struct fault_rule {
	enum fault_op op;
	int err;
	unsigned long nth, count;
};

static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static struct fault_rule fault_rules[FAULT_RULES];
static size_t fault_nrules;
static unsigned long fault_calls[2];
static unsigned long fault_fsync_delay_ms;
static struct stat fault_seen;
static int fault_seen_exists = -1;

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static void *
fault_next(const char *name)
{
	void *fn = dlsym(RTLD_NEXT, name);

	/* Nothing to report through: write() may be this very shim, not resolved yet. */
	if (fn == NULL)
		abort();
	return fn;
}

static void
fault_init(void)
{
	if (real_write != NULL)
		return;
	real_pwrite = fault_next("pwrite");
	real_pwrite64 = fault_next("pwrite64");
	real_writev = fault_next("writev");
	real_pwritev = fault_next("pwritev");
	real_fsync = fault_next("fsync");
	real_fdatasync = fault_next("fdatasync");
	__atomic_store_n(&real_write, (ssize_t(*)(int, const void *, size_t))fault_next("write"),
	    __ATOMIC_RELEASE);
}

/* Reads the control file again when it changed (fault_mu held). */
static void
fault_reload(void)
{
	const char *path = getenv("LOKET_FAULT_CONTROL");
	struct stat st;
	int exists;
	FILE *f;
	char line[128];

	if (path == NULL)
		return;
	exists = stat(path, &st) == 0;
	if (exists == fault_seen_exists
	    && (!exists
	        || (st.st_ino == fault_seen.st_ino && st.st_size == fault_seen.st_size
	            && st.st_mtim.tv_sec == fault_seen.st_mtim.tv_sec
	            && st.st_mtim.tv_nsec == fault_seen.st_mtim.tv_nsec)))
		return;
	fault_seen_exists = exists;
	fault_seen = st;
	fault_nrules = 0;
	fault_fsync_delay_ms = 0;
	fault_calls[FAULT_WRITE] = fault_calls[FAULT_FSYNC] = 0;
	if (!exists || (f = fopen(path, "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL && fault_nrules < FAULT_RULES) {
		char op[16], err[16];
		unsigned long nth, count = 1;
		int n = sscanf(line, "%15s %15s %lu %lu", op, err, &nth, &count);
		struct fault_rule *r = &fault_rules[fault_nrules];

		if (n >= 3 && strcmp(op, "delay") == 0 && strcmp(err, "fsync") == 0) {
			fault_fsync_delay_ms = nth;
			continue;
		}
		if (n < 3 || nth == 0)
			continue;
		r->op = strcmp(op, "fsync") == 0 ? FAULT_FSYNC : FAULT_WRITE;
		r->err = strcmp(err, "EIO") == 0 ? EIO : ENOSPC;
		r->nth = nth;
		r->count = count;
		fault_nrules++;
	}
	fclose(f);
}

static void
fault_fired(enum fault_op op, int err, const char *file)
{
	const char *control = getenv("LOKET_FAULT_CONTROL");
	char path[4096], line[4200];
	int fd, n;

	snprintf(path, sizeof(path), "%s.fired", control);
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) < 0)
		return;
	n = snprintf(line, sizeof(line), "%s %s %s\n", op == FAULT_FSYNC ? "fsync" : "write",
	    err == EIO ? "EIO" : "ENOSPC", file);
	if (n > 0)
		(void)real_write(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	close(fd);
}

/* 0 to let the call through, or the errno it fails with. */
static int
fault_check(int fd, enum fault_op op)
{
	const char *pattern = getenv("LOKET_FAULT_PATHS");
	char link[64], file[4096];
	ssize_t len;
	unsigned long delay_ms = 0;
	int err = 0;

	if (pattern == NULL || getenv("LOKET_FAULT_CONTROL") == NULL)
		return 0;
	pthread_mutex_lock(&fault_mu);
	fault_reload();
	if (fault_nrules == 0 && fault_fsync_delay_ms == 0)
		goto out;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((len = readlink(link, file, sizeof(file) - 1)) <= 0)
		goto out;
	file[len] = '\0';
	if (fnmatch(pattern, file, 0) != 0)
		goto out;
	if (op == FAULT_FSYNC)
		delay_ms = fault_fsync_delay_ms;
	fault_calls[op]++;
	for (size_t i = 0; i < fault_nrules; i++) {
		struct fault_rule *r = &fault_rules[i];

		if (r->op == op && fault_calls[op] >= r->nth
		    && (r->count == 0 || fault_calls[op] < r->nth + r->count)) {
			err = r->err;
			fault_fired(op, err, file);
			break;
		}
	}
out:
	pthread_mutex_unlock(&fault_mu);
	if (err == 0 && delay_ms > 0)
		usleep((useconds_t)(delay_ms * 1000));
	return err;
}

ssize_t
write(int fd, const void *buf, size_t len)
{
	int err;

	fault_init();
	if ((err = fault_check(fd, FAULT_WRITE)) != 0) {
		errno = err;
		return -1;
	}
	return real_write(fd, buf, len);
}

ssize_t
pwrite(int fd, const void *buf, size_t len, off_t off)
{
	int err;

	fault_init();
	if ((err = fault_check(fd, FAULT_WRITE)) != 0) {
		errno = err;
		return -1;
	}
	return real_pwrite(fd, buf, len, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t len, off64_t off)
{
	int err;

	fault_init();
	if ((err = fault_check(fd, FAULT_WRITE)) != 0) {
		errno = err;
		return -1;
	}
	return real_pwrite64(fd, buf, len, off);
}

ssize_t
writev(int fd, const struct iovec *iov, int n)
{
	int err;

	fault_init();
	if ((err = fault_check(fd, FAULT_WRITE)) != 0) {
		errno = err;
		return -1;
	}
	return real_writev(fd, iov, n);
}

ssize_t
pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	int err;

	fault_init();
	if ((err = fault_check(fd, FAULT_WRITE)) != 0) {
		errno = err;
		return -1;
	}
	return real_pwritev(fd, iov, n, off);
}

int
fsync(int fd)
{
	int err;

	fault_init();
	if ((err = fault_check(fd, FAULT_FSYNC)) != 0) {
		errno = err;
		return -1;
	}
	return real_fsync(fd);
}

int
fdatasync(int fd)
{
	int err;

	fault_init();
	if ((err = fault_check(fd, FAULT_FSYNC)) != 0) {
		errno = err;
		return -1;
	}
	return real_fdatasync(fd);
}
