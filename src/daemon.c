/*
 * daemon.c - detach from the terminal, pid file, privilege drop.
 *
 * Called only at start-up, before any thread or loop exists, so fatal errors are returned to
 * main() which reports them and exits.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "daemon.h"

/* daemon_detach - fork, setsid, chdir /, stdio to /dev/null; parent exits 0. 0 or -1. */
static int
daemon_detach(char *err, size_t errlen)
{
	pid_t pid;
	int fd;

	if ((pid = fork()) < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0)
		_exit(0);
	if (setsid() < 0) {
		snprintf(err, errlen, "setsid: %s", strerror(errno));
		return -1;
	}
	/* Second fork: never reacquire a controlling terminal. */
	if ((pid = fork()) < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0) {
		snprintf(err, errlen, "chdir /: %s", strerror(errno));
		return -1;
	}
	if ((fd = open("/dev/null", O_RDWR)) < 0) {
		snprintf(err, errlen, "/dev/null: %s", strerror(errno));
		return -1;
	}
	(void)dup2(fd, STDIN_FILENO);
	(void)dup2(fd, STDOUT_FILENO);
	(void)dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
	return 0;
}

int
moat_daemon_pidfile_write(const char *path, char *err, size_t errlen)
{
	char buf[32];
	int fd, n;

	if (path == NULL || path[0] == '\0')
		return 0;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644)) < 0) {
		snprintf(err, errlen, "pid file %s: %s", path, strerror(errno));
		return -1;
	}
	/* The lock is held for the life of the process: a second instance fails here. */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		snprintf(err, errlen, "pid file %s: locked by another running instance", path);
		close(fd);
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || write(fd, buf, (size_t)n) != n) {
		snprintf(err, errlen, "pid file %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return 0; /* fd deliberately kept open to hold the lock */
}

void
moat_daemon_pidfile_remove(const char *path)
{
	if (path != NULL && path[0] != '\0')
		(void)unlink(path);
}

int
moat_daemon_drop_privileges(const char *user, const char *group, char *err, size_t errlen)
{
	struct passwd *pw;
	struct group *gr;
	gid_t gid;

	if (geteuid() != 0)
		return 0;
	if (user == NULL || user[0] == '\0') {
		snprintf(err, errlen,
		    "running as root and daemon_user is empty: refusing to stay root");
		return -1;
	}
	if ((pw = getpwnam(user)) == NULL) {
		snprintf(err, errlen, "daemon_user %s: no such user", user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		snprintf(err, errlen, "daemon_user %s is root: refusing to stay root", user);
		return -1;
	}
	gid = pw->pw_gid;
	if (group != NULL && group[0] != '\0') {
		if ((gr = getgrnam(group)) == NULL) {
			snprintf(err, errlen, "daemon_group %s: no such group", group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(pw->pw_uid) < 0) {
		snprintf(err, errlen, "cannot switch to %s: %s", user, strerror(errno));
		return -1;
	}
	/* Verify the switch is permanent. */
	if (setuid(0) == 0 || geteuid() == 0) {
		snprintf(err, errlen, "could regain root after switching to %s", user);
		return -1;
	}
	return 0;
}

int
moat_daemon_start(bool foreground, const char *pid_file, const char *user, const char *group,
    char *err, size_t errlen)
{
	if (!foreground && daemon_detach(err, errlen) < 0)
		return -1;
	if (moat_daemon_pidfile_write(pid_file, err, errlen) < 0)
		return -1;
	return moat_daemon_drop_privileges(user, group, err, errlen);
}
