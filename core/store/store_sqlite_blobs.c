/*
 * store_sqlite_blobs.c: the SQLite driver's blobs: files named by their
 * SHA-256 under data_dir/attachments, beside the register file.
 *
 * Thread-safe: nothing here is shared but the folder's name, which is set
 * at open and never changes, and every writer has a temporary file of its
 * own (mkstemp), so two threads storing the same bytes both rename a
 * complete file onto the same name.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store_sqlite.h"

/* fsync of a directory, so that a name made in it (a rename, a mkdir) survives a crash. */
static int
sq_dir_sync(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static int
sq_write_all(int fd, const unsigned char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A full disk passes; anything else is the driver's failure. */
static enum store_result
sq_blob_fail(const char *what, const char *dir)
{
	int saved = errno;

	log_warnx("store", "blob.put: %s in %s: %s", what, dir, strerror(saved));
	return saved == ENOSPC || saved == EDQUOT ? STORE_UNAVAILABLE : STORE_FAILED;
}

static enum store_result
sq_blob_write(
    const char *data_dir, const void *data, size_t len, unsigned int flags, char sha256_hex[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	char dir[4096], path[4200], tmp[4200];
	int sync = !(flags & STORE_BLOB_DEFER_SYNC), fd = -1;
	enum store_result res;
	struct stat st;

	crypto_hash_sha256(h, data, len);
	sodium_bin2hex(sha256_hex, 65, h, sizeof(h));
	snprintf(dir, sizeof(dir), "%s/attachments", data_dir);
	snprintf(path, sizeof(path), "%s/%s", dir, sha256_hex);
	/* Same name, same bytes: a complete file is only ever renamed into place. */
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size == len)
		return STORE_OK;
	if (mkdir(dir, 0750) == 0) {
		if (sync && sq_dir_sync(data_dir) < 0)
			return sq_blob_fail("cannot sync the data folder", data_dir);
	} else if (errno != EEXIST) {
		return sq_blob_fail("cannot create the folder", dir);
	}
	snprintf(tmp, sizeof(tmp), "%s/.tmp-XXXXXX", dir);
	if ((fd = mkstemp(tmp)) < 0)
		return sq_blob_fail("cannot create a file", dir);
	if (fchmod(fd, 0640) < 0 || sq_write_all(fd, data, len) < 0 || (sync && fsync(fd) < 0)) {
		res = sq_blob_fail("cannot write a file", dir);
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		res = sq_blob_fail("cannot write a file", dir);
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		res = sq_blob_fail("cannot rename a file", dir);
		goto fail;
	}
	/* The rename itself must survive a crash before anything names the file. */
	if (sync && sq_dir_sync(dir) < 0)
		return sq_blob_fail("cannot sync the folder", dir);
	return STORE_OK;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return res;
}

static enum store_result
sq_blob_sync_dir(const char *data_dir)
{
	char dir[4096];
	int fd, rc;

	snprintf(dir, sizeof(dir), "%s/attachments", data_dir);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		/* Nothing was ever stored: nothing to sync. */
		if (errno == ENOENT)
			return STORE_OK;
		return sq_blob_fail("cannot open the folder", dir);
	}
	/* One sync for every file written without one, and for their renames. */
	rc = syncfs(fd);
	if (rc < 0) {
		enum store_result res = sq_blob_fail("cannot sync the folder", dir);

		close(fd);
		return res;
	}
	close(fd);
	return STORE_OK;
}

enum store_result
sq_blob_put(
    const char *data_dir, const void *data, size_t len, unsigned int flags, char sha256_hex[65])
{
	return sq_blob_write(data_dir, data, len, flags, sha256_hex);
}

enum store_result
sq_blob_sync(const char *data_dir)
{
	return sq_blob_sync_dir(data_dir);
}

enum store_result
sq_blob_get(const char *data_dir, const char *sha256_hex, void **data_r, size_t *len_r)
{
	char path[4200];
	unsigned char *buf = NULL;
	struct stat st;
	size_t got = 0;
	int fd;

	*data_r = NULL;
	*len_r = 0;
	/* The name is the only path part that comes from outside: 64 lower-case hex digits. */
	if (strlen(sha256_hex) != 64 || strspn(sha256_hex, "0123456789abcdef") != 64)
		return STORE_NOT_FOUND;
	snprintf(path, sizeof(path), "%s/attachments/%s", data_dir, sha256_hex);
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return STORE_NOT_FOUND;
		log_warnx("store", "blob.get: cannot open a blob in %s/attachments: %s", data_dir,
		    strerror(errno));
		return STORE_FAILED;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)
	    || (buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1)) == NULL)
		goto fail;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		got += (size_t)n;
	}
	close(fd);
	*data_r = buf;
	*len_r = got;
	return STORE_OK;
fail:
	log_warnx("store", "blob.get: cannot read a blob in %s/attachments: %s", data_dir,
	    strerror(errno));
	free(buf);
	close(fd);
	return STORE_FAILED;
}
