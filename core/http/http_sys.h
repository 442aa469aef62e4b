/* http_sys.h: the daemon's own endpoints: /healthz and /metrics. */
#ifndef LOKET_HTTP_SYS_H
#define LOKET_HTTP_SYS_H

struct loketd;

int http_sys_init(struct loketd *d, const char **error_r);

#endif
