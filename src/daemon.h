/*
 * daemon.h - process basics shared by both daemons: detach, pid file, privilege drop.
 */
#ifndef MOAT_DAEMON_H
#define MOAT_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

/* moat_daemon_pidfile_write - write our pid to PATH (created 0644, locked); "" or NULL: none. */
int moat_daemon_pidfile_write(const char *path, char *err, size_t errlen);
void moat_daemon_pidfile_remove(const char *path);

/*
 * moat_daemon_drop_privileges - when running as root, switch to USER (and GROUP, or the user's
 * primary group), clear supplementary groups, and verify root cannot be regained. Refuses (-1)
 * to go on as root: an empty USER while root is an error. Not root: a no-op returning 0.
 */
int moat_daemon_drop_privileges(const char *user, const char *group, char *err, size_t errlen);

/*
 * moat_daemon_start - after the sockets are bound: detach (unless foreground), write the pid file
 * (while still root, so it can live in /run), then drop privileges. 0, or -1 with err set.
 */
int moat_daemon_start(bool foreground, const char *pid_file, const char *user, const char *group,
    char *err, size_t errlen);

#endif /* MOAT_DAEMON_H */
