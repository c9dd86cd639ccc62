/*
 * main.c - mxmoat-milter start-up: command line, configuration check and dump.
 */
#include "config.h"

#include <stdlib.h>

#include "cmdline.h"
#include "conf.h"

int
main(int argc, char **argv)
{
	struct moat_cmdline cl;
	struct moat_conf *conf;
	int rc;

	if ((rc = moat_cmdline_parse(&cl, "mxmoat-milter", MOAT_CK_MILTER, argc, argv)) >= 0)
		return rc;
	if ((conf = moat_cmdline_load(&cl)) == NULL)
		return 1;
	rc = moat_cmdline_early_exit(&cl, conf);
	moat_conf_unref(conf);
	return rc >= 0 ? rc : 1;
}
