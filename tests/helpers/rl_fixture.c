/*
 * rl_fixture.c - a rate limiter on a clock the test moves (rl_fixture.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "rl_fixture.h"

/* clock_now - the test's clock. */
static uint64_t
clock_now(void *arg)
{
	return ((struct moattest_clock *)arg)->now;
}

struct moat_ratelimit *
moattest_rl_new(const struct moat_conf_override *ov, size_t nov, struct moattest_clock *clk)
{
	char err[MOAT_CONF_ERR_MAX] = "";
	struct moat_conf *conf = moat_conf_load(NULL, ov, nov, err, sizeof(err));
	struct moat_ratelimit *rl =
	    conf != NULL ? moat_ratelimit_new(conf, err, sizeof(err)) : NULL;

	moat_conf_unref(conf);
	if (rl == NULL) {
		fprintf(stderr, "moattest_rl_new: %s\n", err);
		abort();
	}
	clk->now = 1000ULL * 1000000;
	moat_ratelimit_set_clock(rl, clock_now, clk);
	return rl;
}
