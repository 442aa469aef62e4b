/* outbox.h: durable outbound messages handed to the plugin that sends their channel. */
#ifndef LOKET_OUTBOX_H
#define LOKET_OUTBOX_H

#include "loket/plugin.h"

struct loketd;

/* outbox.c */
int outbox_init(struct loketd *d);
/* Starts sending what is pending; call once the plugins are loaded. */
void outbox_start(struct loketd *d);
void outbox_free(struct loketd *d);
/* A write queued outbound messages: look for due rows now. */
void outbox_note(struct loketd *d);
/*
 * The ABI's outbox_sender (1.1), for plugin self (only compared, never
 * looked into: the loader's struct is the daemon's).
 */
int outbox_sender(struct loketd *d, struct loket_plugin *self, const char *channel,
    void (*send)(struct loket_outbound *o, const char *item_json, void *arg), void *arg);
/* The ABI's outbound_done (1.1). */
void outbound_done(struct loket_outbound *o, enum loket_send_result result, const char *error,
    uint64_t retry_after_ms, const char *sent_json);
/* Whether a plugin sends channel; the first "no" for a channel is logged. */
int outbox_has_sender(struct loketd *d, const char *channel);
/* The plugin is unloading: it sends nothing more. */
void outbox_forget(struct loketd *d, struct loket_plugin *self);

#endif
