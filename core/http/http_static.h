/* http_static.h: the staff UI's static files from [loketd] web_dir, for paths no route owns. */
#ifndef LOKET_HTTP_STATIC_H
#define LOKET_HTTP_STATIC_H

#include <stddef.h>

struct loketd;

/* Largest file served; the UI's files are a few kilobytes, anything bigger is a mistake. */
#define HTTP_STATIC_MAX_FILE (4u * 1024 * 1024)

/* Installs the static file server as the HTTP server's fallback for GET and HEAD. */
int http_static_init(struct loketd *d, const char **error_r);

/*
 * Whether a decoded request path is one static files may answer: not under
 * /api, /healthz, /metrics or /loket (routes and plugins own those, and
 * answer their own 404s).
 */
int http_static_path_allowed(const char *path);

/* The Content-Type for a file name, by its extension; application/octet-stream if unknown. */
const char *http_static_type(const char *name);

#endif
