/*
 * test_cidr.c - address and network parsing and matching.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "cidr.h"

struct match_case {
	const char *label;
	const char *net;
	const char *addr;
	bool match;
};

static const struct match_case match_cases[] = {
	{ "v4 inside /24", "192.0.2.0/24", "192.0.2.77", true },
	{ "v4 outside /24", "192.0.2.0/24", "192.0.3.1", false },
	{ "host bits ignored", "192.0.2.99/24", "192.0.2.1", true },
	{ "v4 /0 matches all v4", "0.0.0.0/0", "203.0.113.9", true },
	{ "v4 /0 does not match v6", "0.0.0.0/0", "2001:db8::1", false },
	{ "bare v4 is /32", "198.51.100.7", "198.51.100.7", true },
	{ "bare v4 is /32, neighbour", "198.51.100.7", "198.51.100.8", false },
	{ "odd prefix /13 inside", "10.8.0.0/13", "10.15.255.255", true },
	{ "odd prefix /13 outside", "10.8.0.0/13", "10.16.0.0", false },
	{ "v6 /32 inside", "2001:db8::/32", "2001:db8:ffff::1", true },
	{ "v6 /32 outside", "2001:db8::/32", "2001:db9::1", false },
	{ "v6 /0 does not match v4", "::/0", "127.0.0.1", false },
	{ "v6 /127", "2001:db8::/127", "2001:db8::1", true },
	{ "v4-mapped v6 client is v4", "127.0.0.0/8", "::ffff:127.0.0.1", true },
};

/* check_match - one pass per row of match_cases. */
static void
check_match(const struct match_case *c)
{
	struct moat_cidr net;
	struct moat_addr addr;

	cr_assert_eq(moat_cidr_parse(c->net, &net), 0, "%s: net", c->label);
	cr_assert_eq(moat_addr_parse(c->addr, &addr), 0, "%s: addr", c->label);
	cr_assert_eq(moat_cidr_match(&net, &addr), c->match, "%s", c->label);
}

Test(cidr, match)
{
	for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++)
		check_match(&match_cases[i]);
}

Test(cidr, rejects_malformed)
{
	static const char *const bad[] = { "", "/24", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1",
		"10.0.0.0/08x", "2001:db8::/129", "127.1", "1.2.3.4.5", "fe80::1%eth0",
		"host.example", "10.0.0.0/2a", "10.0.0.0/ 8", "0x7f.0.0.1", "2001:db8::/0000" };
	struct moat_cidr net;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(moat_cidr_parse(bad[i], &net), -1, "'%s' accepted", bad[i]);
}

Test(cidr, set_parse_and_match)
{
	char err[128];
	struct moat_cidr_set *set =
	    moat_cidr_set_parse(" 10.0.0.0/8,192.0.2.1 ,\t2001:db8::/48 ", err, sizeof(err));
	struct moat_addr a;

	cr_assert_not_null(set, "%s", err);
	cr_assert_eq(moat_cidr_set_count(set), 3);
	moat_addr_parse("192.0.2.1", &a);
	cr_assert(moat_cidr_set_match(set, &a));
	moat_addr_parse("2001:db8:1::5", &a);
	cr_assert_not(moat_cidr_set_match(set, &a), "outside the /48");
	moat_cidr_set_free(set);

	cr_assert_null(moat_cidr_set_parse("10.0.0.0/8, bogus", err, sizeof(err)));
	cr_assert_str_eq(err, "not an address or address/prefix: 'bogus'");
	set = moat_cidr_set_parse("", err, sizeof(err));
	cr_assert_not_null(set);
	cr_assert_eq(moat_cidr_set_count(set), 0);
	moat_addr_parse("10.0.0.1", &a);
	cr_assert_not(moat_cidr_set_match(set, &a));
	moat_cidr_set_free(set);
	cr_assert_not(moat_cidr_set_match(NULL, &a));
}

Test(cidr, format_round_trip)
{
	char buf[64];
	struct moat_addr a;

	cr_assert_eq(moat_addr_parse("192.0.2.10", &a), 0);
	cr_assert_str_eq(moat_addr_format(&a, buf, sizeof(buf)), "192.0.2.10");
	cr_assert_eq(moat_addr_parse("2001:DB8:0:0::1", &a), 0);
	cr_assert_str_eq(moat_addr_format(&a, buf, sizeof(buf)), "2001:db8::1");
}
