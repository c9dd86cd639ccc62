/*
 * test_dnsbl.c - the dnsbl_sites parser (postscreen's syntax), the query names, the filters and
 * the score of a client against a DNS fixture.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cidr.h"
#include "dns.h"
#include "dnsbl.h"

struct parse_case {
	const char *label;
	const char *spec;
	size_t n; /* sites; 0 with bad: refused */
	bool bad;
};

static const struct parse_case parse_cases[] = {
	{ "empty", "", 0, false },
	{ "blanks and commas only", " , \t,", 0, false },
	{ "one zone", "zen.example", 1, false },
	{ "trailing dot", "zen.example.", 1, false },
	{ "filter and weight", "zen.example=127.0.0.[2..11]*3", 1, false },
	{ "negative weight", "wl.example=127.0.[0..255].[0;1;2]*-2", 1, false },
	{ "list of three, commas and blanks", "a.example*2, b.example=127.0.0.2\tc.example*-1", 3,
	    false },
	{ "bracket list with ranges", "a.example=127.[0;2].[4..6;9].1", 1, false },
	{ "no zone", "=127.0.0.2", 0, true },
	{ "three octets", "a.example=127.0.0", 0, true },
	{ "five octets", "a.example=127.0.0.1.1", 0, true },
	{ "octet past 255", "a.example=127.0.0.256", 0, true },
	{ "range backwards", "a.example=127.0.0.[9..2]", 0, true },
	{ "unclosed bracket", "a.example=127.0.0.[2", 0, true },
	{ "empty bracket", "a.example=127.0.0.[]", 0, true },
	{ "weight not a number", "a.example*x", 0, true },
	{ "weight too large", "a.example*100001", 0, true },
	{ "text after weight", "a.example*2x", 0, true },
	{ "bad zone label", "a..example", 0, true },
	{ "zone with a slash", "a/b.example", 0, true },
	{ "leading zeros past three digits", "a.example=0127.0.0.2", 0, true },
};

Test(dnsbl, parse_table)
{
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		char err[256];
		struct moat_dnsbl *bl = moat_dnsbl_parse(c->spec, err, sizeof(err));

		if (c->bad) {
			cr_assert_null(bl, "%s: refused", c->label);
			cr_assert_neq(err[0], '\0', "%s: says why", c->label);
			cr_assert_eq(moat_dnsbl_check(c->spec, err, sizeof(err)), -1, "%s",
			    c->label);
			continue;
		}
		cr_assert_eq(moat_dnsbl_count(bl), c->n, "%s: %s", c->label, err);
		cr_assert_eq(moat_dnsbl_check(c->spec, err, sizeof(err)), 0, "%s", c->label);
		moat_dnsbl_free(bl);
	}
}

Test(dnsbl, too_many_sites)
{
	char spec[2048] = "", err[256];
	size_t o = 0;

	for (int i = 0; i <= MOAT_DNSBL_SITES_MAX; i++)
		o += (size_t)snprintf(spec + o, sizeof(spec) - o, "z%d.example ", i);
	cr_assert_null(moat_dnsbl_parse(spec, err, sizeof(err)));
	cr_assert_str_eq(err, "more than 32 sites");
}

Test(dnsbl, zones_weights_and_query_names)
{
	char err[256], name[300];
	struct moat_dnsbl *bl =
	    moat_dnsbl_parse("bl.example.=127.0.0.2*3 wl.example*-2", err, sizeof(err));
	struct moat_addr a4, a6;

	cr_assert_not_null(bl, "%s", err);
	cr_assert_str_eq(moat_dnsbl_zone(bl, 0), "bl.example");
	cr_assert_eq(moat_dnsbl_weight(bl, 0), 3);
	cr_assert_eq(moat_dnsbl_weight(bl, 1), -2);
	cr_assert_eq(moat_addr_parse("192.0.2.10", &a4), 0);
	cr_assert_eq(moat_dnsbl_query_name(bl, 0, &a4, name, sizeof(name)), 0);
	cr_assert_str_eq(name, "10.2.0.192.bl.example");
	/* RFC 5782 2.4 */
	cr_assert_eq(moat_addr_parse("2001:db8:1:2:3:4:567:89ab", &a6), 0);
	cr_assert_eq(moat_dnsbl_query_name(bl, 1, &a6, name, sizeof(name)), 0);
	cr_assert_str_eq(name,
	    "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.wl.example");
	cr_assert_eq(moat_dnsbl_query_name(bl, 1, &a6, name, 40), -1, "too long for the buffer");
	moat_dnsbl_free(bl);
}

struct hit_case {
	const char *label;
	const char *site;
	unsigned char a[4];
	bool hit;
};

static const struct hit_case hit_cases[] = {
	{ "no filter: any address", "z.example", { 127, 0, 0, 99 }, true },
	{ "exact", "z.example=127.0.0.2", { 127, 0, 0, 2 }, true },
	{ "exact, other", "z.example=127.0.0.2", { 127, 0, 0, 3 }, false },
	{ "range low end", "z.example=127.0.0.[2..11]", { 127, 0, 0, 2 }, true },
	{ "range high end", "z.example=127.0.0.[2..11]", { 127, 0, 0, 11 }, true },
	{ "past the range", "z.example=127.0.0.[2..11]", { 127, 0, 0, 12 }, false },
	{ "list", "z.example=127.0.0.[2;4;9]", { 127, 0, 0, 4 }, true },
	{ "not in the list", "z.example=127.0.0.[2;4;9]", { 127, 0, 0, 3 }, false },
	{ "first octet differs", "z.example=127.0.0.2", { 128, 0, 0, 2 }, false },
	{ "ranges in two octets", "z.example=127.[0..1].[5..6;255].2", { 127, 1, 255, 2 }, true },
};

Test(dnsbl, filters)
{
	for (size_t i = 0; i < sizeof(hit_cases) / sizeof(hit_cases[0]); i++) {
		const struct hit_case *c = &hit_cases[i];
		char err[256];
		struct moat_dnsbl *bl = moat_dnsbl_parse(c->site, err, sizeof(err));

		cr_assert_not_null(bl, "%s: %s", c->label, err);
		cr_assert_eq(moat_dnsbl_hit(bl, 0, c->a), c->hit, "%s", c->label);
		moat_dnsbl_free(bl);
	}
}

/* fixture_a - an A record in the fixture. */
static void
fixture_a(struct moat_dns *dns, const char *name, unsigned char d)
{
	const unsigned char a[4] = { 127, 0, 0, d };

	cr_assert_eq(moat_dns_fixture_add(dns, name, MOAT_DNS_A, 0, a, 4), 0);
}

struct score_case {
	const char *label;
	const char *sites;
	int score;
	unsigned nhits, nfailed;
	const char *hits;
};

/* 192.0.2.10 is on bl (127.0.0.2) and on bl2 (127.0.0.5), allowed by wl (127.0.0.1); tf fails;
 * bogus.example stands for a DNSSEC-bogus answer, which the DNS layer makes a temporary error. */
static const struct score_case score_cases[] = {
	{ "one list", "bl.example", 1, 1, 0, "bl.example" },
	{ "weights add", "bl.example*2 bl2.example*3", 5, 2, 0, "bl.example,bl2.example" },
	{ "filter keeps a hit", "bl2.example=127.0.0.[2..11]", 1, 1, 0, "bl2.example" },
	{ "reply outside the filter", "bl.example=127.0.0.[3..11]", 0, 0, 0, "" },
	{ "allow list subtracts", "bl.example*2 wl.example*-3", -1, 2, 0, "bl.example,wl.example" },
	{ "not listed", "nx.example", 0, 0, 0, "" },
	{ "a failure never counts", "tf.example bogus.example", 0, 0, 2, "" },
	{ "a site listed twice counts twice", "bl.example bl.example", 2, 2, 0,
	    "bl.example,bl.example" },
};

Test(dnsbl, score_against_a_fixture)
{
	struct moat_dns *dns = moat_dns_new_fixture();
	struct moat_addr addr;

	cr_assert_not_null(dns);
	fixture_a(dns, "10.2.0.192.bl.example", 2);
	fixture_a(dns, "10.2.0.192.bl2.example", 5);
	fixture_a(dns, "10.2.0.192.wl.example", 1);
	fixture_a(dns, "11.2.0.192.nx.example", 2);
	cr_assert_eq(moat_dns_fixture_fail(dns, "10.2.0.192.tf.example", 0, MOAT_DNS_TEMPFAIL), 0);
	cr_assert_eq(moat_dns_fixture_fail(dns, "10.2.0.192.bogus.example", 0, MOAT_DNS_TEMPFAIL),
	    0);
	cr_assert_eq(moat_addr_parse("192.0.2.10", &addr), 0);
	for (size_t i = 0; i < sizeof(score_cases) / sizeof(score_cases[0]); i++) {
		const struct score_case *c = &score_cases[i];
		struct moat_dnsbl_score sc;
		char err[256];
		struct moat_dnsbl *bl = moat_dnsbl_parse(c->sites, err, sizeof(err));

		cr_assert_not_null(bl, "%s: %s", c->label, err);
		moat_dnsbl_score(bl, dns, &addr, 1000, &sc);
		cr_assert_eq(sc.score, c->score, "%s: score %d", c->label, sc.score);
		cr_assert_eq(sc.nhits, c->nhits, "%s: hits", c->label);
		cr_assert_eq(sc.nfailed, c->nfailed, "%s: failed", c->label);
		cr_assert_str_eq(sc.hits, c->hits, "%s", c->label);
		moat_dnsbl_free(bl);
	}
	moat_dns_free(dns);
}

Test(dnsbl, unanswered_past_the_timeout_counts_nothing)
{
	struct moat_dns *dns = moat_dns_new_fixture();
	struct moat_dnsbl_score sc;
	struct moat_addr addr;
	char err[256];
	struct moat_dnsbl *bl = moat_dnsbl_parse("bl.example bl2.example", err, sizeof(err));

	cr_assert_not_null(bl, "%s", err);
	fixture_a(dns, "10.2.0.192.bl.example", 2);
	fixture_a(dns, "10.2.0.192.bl2.example", 2);
	moat_dns_fixture_delay(dns, 150);
	cr_assert_eq(moat_addr_parse("192.0.2.10", &addr), 0);
	/* the fixture answers in turn: the first answer ends past the 100 ms, the second is not
	 * asked any more */
	moat_dnsbl_score(bl, dns, &addr, 100, &sc);
	cr_assert_eq(sc.score, 1);
	cr_assert_eq(sc.nfailed, 1);
	moat_dnsbl_free(bl);
	moat_dns_free(dns);
}
