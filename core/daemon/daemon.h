/* daemon.h: what loketd.c and plugin_api.c offer the other daemon files. */
#ifndef LOKET_DAEMON_H
#define LOKET_DAEMON_H

#include "loket/plugin.h"

struct loketd;

/* loketd.c */
/* Re-reads the config file; on error the old config stays and *error_r says why. */
int loketd_reload(struct loketd *d, const char **error_r);
void loketd_stop(struct loketd *d);

/* plugin_api.c */
extern const struct loket_api api_table;

#endif
