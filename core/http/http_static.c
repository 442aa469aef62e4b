/* http_static.c: serves the staff UI's files from [loketd] web_dir for paths no route owns. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "http.h"
#include "http_static.h"
#include "log.h"
#include "loketd.h"

static const struct {
	const char *ext;
	const char *type;
} http_static_types[] = {
	{ "html", "text/html; charset=utf-8" },
	{ "js", "text/javascript; charset=utf-8" },
	{ "mjs", "text/javascript; charset=utf-8" },
	{ "css", "text/css; charset=utf-8" },
	{ "svg", "image/svg+xml" },
	{ "png", "image/png" },
	{ "ico", "image/x-icon" },
	{ "json", "application/json" },
	{ "woff2", "font/woff2" },
	{ "txt", "text/plain; charset=utf-8" },
};

/* The first path segments the API, the daemon and the e-loket (issue 16) own. */
static const char *const http_static_reserved[] = { "api", "healthz", "metrics", "loket" };

const char *
http_static_type(const char *name)
{
	const char *dot = strrchr(name, '.'), *slash = strrchr(name, '/');

	if (dot == NULL || (slash != NULL && dot < slash))
		return "application/octet-stream";
	for (size_t i = 0; i < sizeof(http_static_types) / sizeof(http_static_types[0]); i++)
		if (strcasecmp(dot + 1, http_static_types[i].ext) == 0)
			return http_static_types[i].type;
	return "application/octet-stream";
}

int
http_static_path_allowed(const char *path)
{
	size_t len;

	/* Routes match on non-empty segments, so "//api/x" is the API's too. */
	while (*path == '/')
		path++;
	len = strcspn(path, "/");
	for (size_t i = 0; i < sizeof(http_static_reserved) / sizeof(http_static_reserved[0]); i++)
		if (strlen(http_static_reserved[i]) == len &&
		    strncmp(path, http_static_reserved[i], len) == 0)
			return 0;
	return 1;
}

/*
 * Checks the decoded path segment by segment and gives the file's name
 * relative to web_dir (owned by the caller). Returns the HTTP status to
 * answer instead (400 for a path no browser sends, 404 for a name that is
 * never served) with the detail in *error_r.
 */
static int
http_static_relative(const char *path, char **rel_r, const char **error_r)
{
	const char *p = path, *seg;
	size_t len, n;
	char *rel;

	for (p = path; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\') {
			*error_r = "the path holds a character no file name of this site has";
			return 400;
		}
	}
	for (seg = path; *seg != '\0'; seg += len) {
		while (*seg == '/')
			seg++;
		len = strcspn(seg, "/");
		if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.')) {
			*error_r = "the path may not hold '.' or '..' segments";
			return 400;
		}
		/* Hidden files (an editor's swap file, .git) are never part of the site. */
		if (len > 0 && seg[0] == '.') {
			*error_r = "no such file";
			return 404;
		}
	}
	while (*path == '/')
		path++;
	n = strlen(path);
	if ((rel = malloc(n + sizeof("index.html"))) == NULL) {
		*error_r = "out of memory";
		return 503;
	}
	memcpy(rel, path, n + 1);
	/* A folder's page is its index.html; a folder itself is never listed. */
	if (n == 0 || path[n - 1] == '/')
		strcat(rel, "index.html");
	*rel_r = rel;
	return 0;
}

/*
 * Opens rel under root, refusing whatever resolves outside it (a symlink
 * leaving web_dir) or is not a regular file. Returns the descriptor, or -1
 * with the status to answer in *status_r.
 */
static int
http_static_open(const char *root, const char *rel, struct stat *st, int *status_r,
    const char **error_r)
{
	char real_root[PATH_MAX], full[PATH_MAX], real[PATH_MAX];
	size_t rootlen;
	int fd;

	*status_r = 404;
	*error_r = "no such file";
	if (realpath(root, real_root) == NULL) {
		log_warn("http", "web_dir=%s cannot be read", root);
		return -1;
	}
	if ((size_t)snprintf(full, sizeof(full), "%s/%s", real_root, rel) >= sizeof(full) ||
	    realpath(full, real) == NULL)
		return -1;
	rootlen = strlen(real_root);
	/* realpath resolved every symlink: what lies outside web_dir now shows. */
	if (strncmp(real, real_root, rootlen) != 0 || (real[rootlen] != '/' && rootlen > 1))
		return -1;
	/* O_NOFOLLOW: the name realpath gave is no symlink, unless one was put there since. */
	if ((fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY)) < 0)
		return -1;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		return -1;
	}
	if ((uint64_t)st->st_size > HTTP_STATIC_MAX_FILE) {
		log_warnx("http", "not serving %s: larger than %u bytes", rel, HTTP_STATIC_MAX_FILE);
		close(fd);
		*status_r = 500;
		*error_r = "the file is too large to be served";
		return -1;
	}
	return fd;
}

/* Whether an If-None-Match header names etag (weak comparison, as RFC 9110 asks). */
static int
http_static_etag_matches(const char *header, const char *etag)
{
	const char *p = header;
	size_t elen = strlen(etag);

	while (*p != '\0') {
		size_t len;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '*')
			return 1;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		len = strcspn(p, ",");
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == elen && strncmp(p, etag, len) == 0)
			return 1;
		p += strcspn(p, ",");
	}
	return 0;
}

static void
http_static_cb(struct loket_http_req *req, void *arg)
{
	struct loketd *d = arg;
	struct stat st;
	const char *error = NULL, *type, *inm;
	char *rel = NULL, *body = NULL, etag[64];
	int status, fd = -1;
	size_t got = 0;

	if ((req->method != LOKET_HTTP_GET && req->method != LOKET_HTTP_HEAD) ||
	    !http_static_path_allowed(req->path)) {
		http_problem(req, 404, "no such resource");
		return;
	}
	if ((status = http_static_relative(req->path, &rel, &error)) != 0) {
		http_problem(req, status, error);
		return;
	}
	if ((fd = http_static_open(d->conf->web_dir, rel, &st, &status, &error)) < 0) {
		http_problem(req, status, error);
		goto out;
	}
	snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)st.st_size,
	    (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
		(unsigned long long)st.st_mtim.tv_nsec);
	type = http_static_type(rel);
	http_add_header(req, "ETag", etag);
	/*
	 * Pages and our own modules are asked again each time (a 304 when unchanged), so an
	 * upgrade shows at once; vendored libraries change only with a new release.
	 */
	http_add_header(req, "Cache-Control",
	    strncmp(rel, "vendor/", 7) == 0 ? "public, max-age=3600" : "no-cache");
	if ((inm = http_header(req, "If-None-Match")) != NULL &&
	    http_static_etag_matches(inm, etag)) {
		http_reply(req, 304, type, NULL, 0);
		goto out;
	}
	if ((body = malloc((size_t)st.st_size + 1)) == NULL) {
		http_problem(req, 503, "out of memory");
		goto out;
	}
	/* Small files (capped above) from the page cache: read on the loop. */
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, body + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got != (size_t)st.st_size) {
		log_warn("http", "cannot read %s from web_dir", rel);
		http_problem(req, 500, "the file could not be read");
		goto out;
	}
	http_reply(req, 200, type, body, got);
out:
	if (fd >= 0)
		close(fd);
	free(body);
	free(rel);
}

int
http_static_init(struct loketd *d, const char **error_r)
{
	struct stat st;

	(void)error_r;
	/* A missing web_dir is not fatal (an API-only node), but say why the UI is not there. */
	if (stat(d->conf->web_dir, &st) < 0 || !S_ISDIR(st.st_mode))
		log_warnx("http", "web_dir=%s is not a folder: the staff UI is not served",
		    d->conf->web_dir);
	http_set_fallback(d->http, http_static_cb, d);
	return 0;
}
