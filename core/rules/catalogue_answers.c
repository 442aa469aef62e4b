/*
 * catalogue_answers.c: the standard answer of each catalogue product, one
 * text file per product (CODE.txt) in a folder beside the catalogue, which
 * the admin edits through the API or by hand (then loketctl reload).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalogue.h"
#include "log.h"
#include "util.h"

/* Whether the len bytes of s are UTF-8 without NUL or other control bytes but tab and line ends. */
static int
catalogue_answer_text_ok(const char *s, size_t len)
{
	if (util_utf8_prefix(s, len) != len)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char b = (unsigned char)s[i];

		if ((b < 0x20 && b != '\t' && b != '\n' && b != '\r') || b == 0x7f)
			return 0;
	}
	return 1;
}

/* The file of a product: dir/CODE.txt. A code is [a-z0-9_-]{1,64}: it names no other folder. */
static char *
catalogue_answer_path(const char *dir, const char *code, const char *suffix)
{
	char *path;

	for (const char *c = code; *c != '\0'; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
			return NULL;
	if (code[0] == '\0' || asprintf(&path, "%s/%s%s.txt", dir, suffix, code) < 0)
		return NULL;
	return path;
}

/* Reads one answer file: 0 with *text_r (NULL when there is no file), -1 with *error_r. */
static int
catalogue_answer_read(const char *path, char **text_r, const char **error_r)
{
	char *data = NULL;
	size_t len = 0;
	FILE *fp;

	*text_r = NULL;
	if ((fp = fopen(path, "rb")) == NULL) {
		if (errno == ENOENT)
			return 0;
		*error_r = util_error("%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if ((data = malloc(CATALOGUE_ANSWER_MAX + 2)) == NULL) {
		fclose(fp);
		*error_r = util_error("%s: out of memory", path);
		return -1;
	}
	len = fread(data, 1, CATALOGUE_ANSWER_MAX + 1, fp);
	if (ferror(fp)) {
		*error_r = util_error("%s: cannot read: %s", path, strerror(errno));
		goto fail;
	}
	if (len > CATALOGUE_ANSWER_MAX) {
		*error_r = util_error("%s: longer than %d bytes", path, CATALOGUE_ANSWER_MAX);
		goto fail;
	}
	if (!catalogue_answer_text_ok(data, len)) {
		*error_r = util_error("%s: not UTF-8 text (or it holds control characters)", path);
		goto fail;
	}
	fclose(fp);
	data[len] = '\0';
	/* An empty file is no answer: that is how the API removes one, too. */
	if (len == 0)
		free(data);
	else
		*text_r = data;
	return 0;
fail:
	fclose(fp);
	free(data);
	return -1;
}

int
catalogue_answers_load(struct catalogue *cat, const char *dir, const char **error_r)
{
	free(cat->answers_dir);
	if ((cat->answers_dir = strdup(dir)) == NULL) {
		*error_r = "out of memory loading the standard answers";
		return -1;
	}
	for (size_t i = 0; i < cat->nproducts; i++) {
		struct catalogue_product *p = &cat->products[i];
		char *path = catalogue_answer_path(dir, p->code, ""), *text;

		if (path == NULL) {
			*error_r = "out of memory loading the standard answers";
			return -1;
		}
		if (catalogue_answer_read(path, &text, error_r) < 0) {
			free(path);
			return -1;
		}
		free(path);
		free(p->answer);
		p->answer = text;
	}
	return 0;
}

/* fsyncs a folder, so that a rename or unlink in it survives a power cut. */
static int
catalogue_sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

int
catalogue_answer_set(struct catalogue *cat, const char *code, const char *text,
    const char **error_r)
{
	struct catalogue_product *p = NULL;
	char *path = NULL, *tmp = NULL, *copy = NULL;
	size_t len = text != NULL ? strlen(text) : 0;
	int fd = -1;

	for (size_t i = 0; cat != NULL && i < cat->nproducts; i++)
		if (strcmp(cat->products[i].code, code) == 0)
			p = &cat->products[i];
	if (p == NULL || cat->answers_dir == NULL) {
		*error_r = "no such product in the catalogue";
		return -1;
	}
	if (len > CATALOGUE_ANSWER_MAX || !catalogue_answer_text_ok(text != NULL ? text : "", len)) {
		*error_r = util_error("text: expected UTF-8 text of at most %d bytes, without control "
				      "characters but tabs and line ends",
		    CATALOGUE_ANSWER_MAX);
		return -1;
	}
	if ((path = catalogue_answer_path(cat->answers_dir, p->code, "")) == NULL ||
	    (tmp = catalogue_answer_path(cat->answers_dir, p->code, ".tmp-")) == NULL ||
	    (len > 0 && (copy = strdup(text)) == NULL)) {
		*error_r = "out of memory";
		goto fail;
	}
	if (len == 0) {
		int removed = unlink(path) == 0;

		if (!removed && errno != ENOENT) {
			log_warn("catalogue", "cannot remove %s", path);
			goto io;
		}
		if (removed && catalogue_sync_dir(cat->answers_dir) < 0) {
			log_warn("catalogue", "cannot sync %s", cat->answers_dir);
			goto io;
		}
	} else {
		ssize_t n = 0;

		/* The folder is the admin's: made on first use, readable like the catalogue. */
		if (mkdir(cat->answers_dir, 0755) < 0 && errno != EEXIST) {
			log_warn("catalogue", "cannot make %s", cat->answers_dir);
			goto io;
		}
		if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
			log_warn("catalogue", "cannot write %s", tmp);
			goto io;
		}
		for (size_t off = 0; off < len; off += (size_t)n)
			if ((n = write(fd, text + off, len - off)) < 0) {
				log_warn("catalogue", "cannot write %s", tmp);
				goto io_tmp;
			}
		if (fsync(fd) < 0 || close(fd) < 0) {
			fd = -1;
			log_warn("catalogue", "cannot sync %s", tmp);
			goto io_tmp;
		}
		fd = -1;
		if (rename(tmp, path) < 0) {
			log_warn("catalogue", "cannot rename %s to %s", tmp, path);
			goto io_tmp;
		}
		if (catalogue_sync_dir(cat->answers_dir) < 0) {
			log_warn("catalogue", "cannot sync %s", cat->answers_dir);
			goto io;
		}
	}
	free(p->answer);
	p->answer = copy;
	free(path);
	free(tmp);
	return 0;
io_tmp:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
io:
	*error_r = "the standard answer could not be stored (the cause is in the log); nothing "
		   "changed";
fail:
	free(copy);
	free(path);
	free(tmp);
	return -1;
}
