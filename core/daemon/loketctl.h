/* loketctl.h: the sub-commands of loketctl that live in their own files. */
#ifndef LOKET_LOKETCTL_H
#define LOKET_LOKETCTL_H

struct conf;

/* loketctl_rules.c */
int cmd_rules(const struct conf *conf, int argc, char **argv);

/* loketctl_migrate.c */
int cmd_migrate(const struct conf *conf, int argc, char **argv);

#endif
