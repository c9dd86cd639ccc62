/*
 * test_daemon.c - privilege drop, pid file locking, and SIGHUP-style reload through the shared
 * command line. Criterion runs each test in its own process, so dropping root here is safe.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmdline.h"
#include "daemon.h"
#include "log.h"

Test(daemon, refuses_to_stay_root)
{
	char err[256];

	if (geteuid() != 0)
		cr_skip_test("needs root");
	cr_assert_eq(moat_daemon_drop_privileges("", "", err, sizeof(err)), -1);
	cr_assert_str_eq(err, "running as root and daemon_user is empty: refusing to stay root");
	cr_assert_eq(moat_daemon_drop_privileges("root", "", err, sizeof(err)), -1);
	cr_assert_str_eq(err, "daemon_user root is root: refusing to stay root");
	cr_assert_eq(moat_daemon_drop_privileges("no-such-user-mxmoat", "", err, sizeof(err)), -1);
	cr_assert_str_eq(err, "daemon_user no-such-user-mxmoat: no such user");
	cr_assert_eq(geteuid(), 0, "still root after refusals");
}

Test(daemon, drops_to_nobody_for_good)
{
	char err[256];

	if (geteuid() != 0)
		cr_skip_test("needs root");
	cr_assert_eq(moat_daemon_drop_privileges("nobody", "", err, sizeof(err)), 0, "%s", err);
	cr_assert_neq(getuid(), 0);
	cr_assert_neq(geteuid(), 0);
	cr_assert_neq(getgid(), 0);
	cr_assert_eq(setuid(0), -1, "root regained");
	cr_assert_eq(getgroups(0, NULL), 1, "supplementary groups cleared");
}

Test(daemon, pid_file_is_locked_against_a_second_instance)
{
	char dir[] = "/tmp/moat-pid-XXXXXX", path[64], err[256], buf[32];
	FILE *fp;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/x.pid", dir);
	cr_assert_eq(moat_daemon_pidfile_write(path, err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(fp = fopen(path, "r"));
	cr_assert_not_null(fgets(buf, sizeof(buf), fp));
	fclose(fp);
	cr_assert_eq(atol(buf), (long)getpid());
	cr_assert_eq(moat_daemon_pidfile_write(path, err, sizeof(err)), -1);
	cr_assert(strstr(err, "locked by another running instance") != NULL, "%s", err);
	cr_assert_eq(moat_daemon_pidfile_write("", err, sizeof(err)), 0, "empty: no pid file");
	moat_daemon_pidfile_remove(path);
	cr_assert_eq(access(path, F_OK), -1);
	rmdir(dir);
}

Test(daemon, reload_keeps_running_config_on_error)
{
	char dir[] = "/tmp/moat-reload-XXXXXX", path[64], prog[] = "mxmoat-proxy", c[] = "-c",
	     o[] = "-o", ov[] = "limit_errors=9"; /* writable, as argv is */
	char *argv[] = { prog, c, path, o, ov, NULL };
	struct moat_cmdline cl;
	struct moat_conf *conf;
	FILE *fp;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/m.conf", dir);
	cr_assert_not_null(fp = fopen(path, "w"));
	fputs("limit_recipients = 5\n", fp);
	fclose(fp);
	cr_assert_eq(moat_cmdline_parse(&cl, "mxmoat-proxy", MOAT_CK_PROXY, 5, argv), -1);
	moat_log_open("test", MOAT_LOG_STDERR, false);
	cr_assert_not_null(conf = moat_cmdline_reload(&cl));
	cr_assert_eq(conf->limit_recipients, 5);
	cr_assert_eq(conf->limit_errors, 9, "overrides apply again on reload");
	moat_conf_unref(conf);
	cr_assert_not_null(fp = fopen(path, "w"));
	fputs("limit_recipients = many\n", fp);
	fclose(fp);
	cr_assert_null(moat_cmdline_reload(&cl), "a bad file is refused");
	unlink(path);
	rmdir(dir);
}
