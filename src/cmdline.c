/*
 * cmdline.c - the command line shared by mxmoat-proxy and mxmoat-milter (see cmdline.h).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmdline.h"
#include "log.h"

/* cmdline_usage - to stderr (usage error) or stdout (-h). */
static void
cmdline_usage(FILE *out, const char *progname)
{
	fprintf(out,
	    "usage: %s [-fnV] [-d|-dd] [-c file] [-o key=value]...\n"
	    "  -c file       configuration file (default: built-in defaults)\n"
	    "  -o key=value  override a configuration key (repeatable)\n"
	    "  -n            check the configuration and exit\n"
	    "  -f            run in the foreground\n"
	    "  -d            print the effective configuration and exit (-dd: only non-defaults)\n"
	    "  -V            print the version and exit\n",
	    progname);
}

int
moat_cmdline_parse(struct moat_cmdline *cl, const char *progname, unsigned scope, int argc,
    char **argv)
{
	int ch;

	memset(cl, 0, sizeof(*cl));
	cl->progname = progname;
	cl->scope = scope;
	optind = 1;
	while ((ch = getopt(argc, argv, "c:o:nfdVh")) != -1) {
		switch (ch) {
		case 'c':
			cl->conf_file = optarg;
			break;
		case 'o':
			if (cl->nov == MOAT_CMDLINE_OVERRIDES_MAX) {
				fprintf(stderr, "%s: more than %d -o options\n", progname,
				    MOAT_CMDLINE_OVERRIDES_MAX);
				return 2;
			}
			if (moat_conf_parse_override(optarg, &cl->ov[cl->nov]) < 0) {
				fprintf(stderr, "%s: -o %s: expected key=value\n", progname,
				    optarg);
				return 2;
			}
			cl->nov++;
			break;
		case 'n':
			cl->check_only = true;
			break;
		case 'f':
			cl->foreground = true;
			break;
		case 'd':
			cl->dump++;
			break;
		case 'V':
			printf("%s %s\n", progname, PACKAGE_VERSION);
			return 0;
		case 'h':
			cmdline_usage(stdout, progname);
			return 0;
		default:
			cmdline_usage(stderr, progname);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", progname, argv[optind]);
		cmdline_usage(stderr, progname);
		return 2;
	}
	return -1;
}

struct moat_conf *
moat_cmdline_load(const struct moat_cmdline *cl)
{
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf *conf;

	conf = moat_conf_load(cl->conf_file, cl->ov, cl->nov, err, sizeof(err));
	if (conf == NULL)
		fprintf(stderr, "%s: %s\n", cl->progname, err);
	return conf;
}

int
moat_cmdline_early_exit(const struct moat_cmdline *cl, const struct moat_conf *conf)
{
	if (cl->dump > 0) {
		moat_conf_dump(conf, cl->scope, cl->dump > 1, stdout);
		return 0;
	}
	if (cl->check_only) {
		printf("%s: configuration %s is valid\n", cl->progname, conf->source);
		return 0;
	}
	return -1;
}

void
moat_cmdline_log_open(const struct moat_cmdline *cl, const struct moat_conf *conf)
{
	int target = conf->log_target;

	if (target == MOAT_LOG_AUTO)
		target = cl->foreground ? MOAT_LOG_STDERR : MOAT_LOG_SYSLOG;
	moat_log_open(cl->progname, target, conf->log_verbose);
	moat_log_format(conf->log_format);
}

struct moat_conf *
moat_cmdline_reload(const struct moat_cmdline *cl)
{
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf *conf;

	conf = moat_conf_load(cl->conf_file, cl->ov, cl->nov, err, sizeof(err));
	if (conf == NULL) {
		moat_log(LOG_ERR, NULL, "reload", "refused: %s; keeping the running configuration",
		    err);
		return NULL;
	}
	moat_log(LOG_INFO, NULL, "reload", "loaded %s", conf->source);
	return conf;
}
