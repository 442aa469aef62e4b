/* ctl.c: the control socket loketctl talks to: one JSON request line, one JSON answer line. */
#include "config.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"
#include "loketd.h"

#define CTL_MAX_REQUEST (1024 * 1024)

struct ctl {
	struct loketd *daemon;
	struct evconnlistener *listener;
	char *path;
};

struct ctl_conn {
	struct ctl *ctl;
	struct bufferevent *bev;
	int handling; /* a command runs and will answer */
	int answered;
	int peer_gone; /* the client hung up before its answer was ready */
};

static void
ctl_conn_free(struct ctl_conn *conn)
{
	bufferevent_free(conn->bev);
	free(conn);
}

static void
ctl_write_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *conn = arg;

	if (conn->answered)
		ctl_conn_free(conn);
}

static void
ctl_send(struct ctl_conn *conn, json_t *answer)
{
	char *s = json_dumps(answer, JSON_COMPACT);

	json_decref(answer);
	conn->answered = 1;
	if (s == NULL || conn->peer_gone) {
		free(s);
		ctl_conn_free(conn);
		return;
	}
	bufferevent_disable(conn->bev, EV_READ);
	bufferevent_write(conn->bev, s, strlen(s));
	bufferevent_write(conn->bev, "\n", 1);
	free(s);
}

void
ctl_reply(struct ctl_conn *conn, json_t *result)
{
	ctl_send(conn, json_pack("{s:b, s:o}", "ok", 1, "result",
			   result != NULL ? result : json_object()));
}

void
ctl_fail(struct ctl_conn *conn, const char *error)
{
	ctl_send(conn, json_pack("{s:b, s:s}", "ok", 0, "error", error));
}

static void
ctl_read_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *conn = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t len;
	json_t *req, *args;
	const char *cmd = NULL;
	json_error_t jerr;

	if (conn->answered)
		return;
	if ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) == NULL) {
		if (evbuffer_get_length(in) > CTL_MAX_REQUEST)
			ctl_fail(conn, "request too large");
		return;
	}
	req = json_loadb(line, len, 0, &jerr);
	free(line);
	if (req == NULL || json_unpack(req, "{s:s}", "cmd", &cmd) < 0) {
		json_decref(req);
		ctl_fail(conn, "expected a JSON object with \"cmd\"");
		return;
	}
	if ((args = json_object_get(req, "args")) == NULL)
		json_object_set_new(req, "args", args = json_object());
	for (const struct ctl_cmd *c = ctl_cmds; c->name != NULL; c++) {
		if (strcmp(c->name, cmd) == 0) {
			log_info("ctl", "command cmd=%s", c->name);
			conn->handling = 1;
			c->fn(conn, conn->ctl->daemon, args);
			json_decref(req);
			return;
		}
	}
	json_decref(req);
	ctl_fail(conn, "unknown command");
}

static void
ctl_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ctl_conn *conn = arg;

	/* An answer still being prepared holds conn; ctl_send frees it. */
	if (conn->handling && !conn->answered) {
		conn->peer_gone = 1;
		bufferevent_disable(bev, EV_READ | EV_WRITE);
		return;
	}
	ctl_conn_free(conn);
}

static void
ctl_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct ctl *ctl = arg;
	struct ctl_conn *conn = calloc(1, sizeof(*conn));

	if (conn == NULL) {
		close(fd);
		return;
	}
	conn->ctl = ctl;
	conn->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
	if (conn->bev == NULL) {
		close(fd);
		free(conn);
		return;
	}
	bufferevent_setcb(conn->bev, ctl_read_cb, ctl_write_cb, ctl_event_cb, conn);
	bufferevent_enable(conn->bev, EV_READ);
}

int
ctl_open(struct loketd *d, const char *path, struct ctl **ctl_r, const char **error_r)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct ctl *ctl;
	mode_t old_umask;
	struct stat st;
	int fd, saved;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		*error_r = "control socket path too long";
		return -1;
	}
	strcpy(sun.sun_path, path);
	if ((ctl = calloc(1, sizeof(*ctl))) == NULL || (ctl->path = strdup(path)) == NULL) {
		free(ctl);
		*error_r = "out of memory";
		return -1;
	}
	ctl->daemon = d;
	/* A socket left by a crashed daemon is stale only if nobody answers on it. */
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		goto fail;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		close(fd);
		free(ctl->path);
		free(ctl);
		*error_r = "another loketd is already running on this control socket";
		return -1;
	}
	close(fd);
	/* Only a stale socket is ours to remove; any other file stays and loketd does not start. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			free(ctl->path);
			free(ctl);
			*error_r = "the path exists and is not a socket; it was left untouched";
			return -1;
		}
		unlink(path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		goto fail;
	old_umask = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		umask(old_umask);
		close(fd);
		goto fail;
	}
	umask(old_umask);
	chmod(path, 0600);
	ctl->listener = evconnlistener_new(d->base, ctl_accept_cb, ctl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16, fd);
	if (ctl->listener == NULL) {
		close(fd);
		goto fail;
	}
	*ctl_r = ctl;
	return 0;
fail:
	saved = errno;
	free(ctl->path);
	free(ctl);
	*error_r = strerror(saved);
	return -1;
}

void
ctl_close(struct ctl *ctl)
{
	if (ctl == NULL)
		return;
	evconnlistener_free(ctl->listener);
	unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}
