/*
 * rl_fixture.h - a rate limiter on a clock the test moves (the unit tests of the limiter and of
 * greylisting, which keeps its triplets in the limiter's store).
 */
#ifndef MOAT_TEST_RL_FIXTURE_H
#define MOAT_TEST_RL_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "ratelimit.h"

/* The limiter's clock: microseconds, moved by the test. */
struct moattest_clock {
	uint64_t now;
};

/*
 * moattest_rl_new - a limiter from the defaults and NOV overrides OV, on CLK (set to 1000 s). A
 * bad override or out of memory is said on stderr and aborts (the test crashes: it fails).
 */
struct moat_ratelimit *moattest_rl_new(const struct moat_conf_override *ov, size_t nov,
    struct moattest_clock *clk);

#endif /* MOAT_TEST_RL_FIXTURE_H */
