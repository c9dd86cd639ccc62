/*
 * cmdline.h - the command line both daemons share:
 *   -c FILE       configuration file (default: none, built-in defaults)
 *   -o KEY=VALUE  override one key (repeatable; applied after the file, in order)
 *   -n            check the configuration and exit 0 (good) or 1 (bad), like `nginx -t`
 *   -f            stay in the foreground (log_target = auto then means stderr)
 *   -d            dump the effective configuration (postconf style) and exit; -dd only non-defaults
 *   -V            version; -h help
 */
#ifndef MOAT_CMDLINE_H
#define MOAT_CMDLINE_H

#include <stdbool.h>
#include <stddef.h>

#include "conf.h"

#define MOAT_CMDLINE_OVERRIDES_MAX 64

struct moat_cmdline {
	const char *progname;
	const char *conf_file; /* NULL: built-in defaults */
	bool check_only;
	bool foreground;
	int dump; /* 0, 1 (all keys) or 2 (changed keys) */
	unsigned scope; /* MOAT_CK_PROXY or MOAT_CK_MILTER */
	struct moat_conf_override ov[MOAT_CMDLINE_OVERRIDES_MAX];
	size_t nov;
};

/*
 * moat_cmdline_parse - parse argv into cl. Returns -1 to go on, or an exit status when the
 * program should exit now (usage error: 2, -h/-V: 0), after printing what it must.
 */
int moat_cmdline_parse(struct moat_cmdline *cl, const char *progname, unsigned scope, int argc,
    char **argv);

/*
 * moat_cmdline_load - load the configuration the command line names. On error prints
 * "progname: file:line: key: what is wrong" to stderr and returns NULL.
 */
struct moat_conf *moat_cmdline_load(const struct moat_cmdline *cl);

/*
 * moat_cmdline_early_exit - handle -n and -d for a loaded conf: returns an exit status if the
 * program should exit now, or -1 to go on and serve.
 */
int moat_cmdline_early_exit(const struct moat_cmdline *cl, const struct moat_conf *conf);

/* moat_cmdline_log_open - open the log as conf says; log_target = auto follows -f. */
void moat_cmdline_log_open(const struct moat_cmdline *cl, const struct moat_conf *conf);

/*
 * moat_cmdline_reload - SIGHUP: load the configuration again from the same file and overrides.
 * Logs the outcome; returns the new snapshot, or NULL (error logged) and the caller keeps the old.
 */
struct moat_conf *moat_cmdline_reload(const struct moat_cmdline *cl);

#endif /* MOAT_CMDLINE_H */
