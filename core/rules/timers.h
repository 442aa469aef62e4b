/* timers.h: durable timers (reminders, task deadlines), armed for the earliest one due. */
#ifndef LOKET_TIMERS_H
#define LOKET_TIMERS_H

#include <jansson.h>

struct loketd;

/* timers.c */
int timers_init(struct loketd *d);
void timers_free(struct loketd *d);
/* A write added a timer due at due_ms: fire it in time. */
void timers_note(struct loketd *d, json_int_t due_ms);
/* The test clock moved: the earliest timer is armed again for the new time. */
void timers_clock_moved(struct loketd *d);

#endif
