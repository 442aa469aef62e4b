/* ctl.h: the control socket loketctl talks to: one JSON request line, one JSON answer line. */
#ifndef LOKET_CTL_H
#define LOKET_CTL_H

#include <jansson.h>

struct loketd;
struct ctl;
struct ctl_conn;

struct ctl_cmd {
	const char *name;
	/* Answers with ctl_reply/ctl_fail, now or later on the loop. */
	void (*fn)(struct ctl_conn *conn, struct loketd *d, json_t *args);
};

/* ctl.c */
int ctl_open(struct loketd *d, const char *path, struct ctl **ctl_r, const char **error_r);
void ctl_close(struct ctl *ctl);
/* Takes over result. */
void ctl_reply(struct ctl_conn *conn, json_t *result);
void ctl_fail(struct ctl_conn *conn, const char *error);

/* ctl_cmd.c: the daemon side of every loketctl sub-command. */
extern const struct ctl_cmd ctl_cmds[];

#endif
