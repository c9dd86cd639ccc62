/*
 * test_iprev.c - forward-confirmed reverse DNS (RFC 8601 2.7.3) against a DNS fixture: pass,
 * fail, temperror and permerror, IPv4 and IPv6, several PTR names.
 */
#include "config.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <string.h>

#include "cidr.h"
#include "dns.h"
#include "iprev.h"

struct iprev_case {
	const char *label;
	const char *addr;
	enum moat_iprev_result result;
	const char *name;
};

static const struct iprev_case cases[] = {
	{ "name and back", "192.0.2.10", MOAT_IPREV_PASS, "mx.example" },
	{ "second of two names confirms", "192.0.2.13", MOAT_IPREV_PASS, "good.example" },
	{ "name without an address", "192.0.2.11", MOAT_IPREV_FAIL, "" },
	{ "name pointing elsewhere", "192.0.2.14", MOAT_IPREV_FAIL, "" },
	{ "no PTR record", "192.0.2.12", MOAT_IPREV_FAIL, "" },
	{ "PTR lookup fails", "192.0.2.15", MOAT_IPREV_TEMPERROR, "" },
	{ "forward lookup fails", "192.0.2.16", MOAT_IPREV_TEMPERROR, "" },
	{ "IPv6 name and back", "2001:db8::7", MOAT_IPREV_PASS, "v6.example" },
};

/* add - a record of the fixture; A and AAAA from text. */
static void
add(struct moat_dns *dns, const char *name, enum moat_dns_type type, const char *value)
{
	unsigned char a[16];

	if (type == MOAT_DNS_A || type == MOAT_DNS_AAAA) {
		cr_assert_eq(inet_pton(type == MOAT_DNS_A ? AF_INET : AF_INET6, value, a), 1);
		cr_assert_eq(moat_dns_fixture_add(dns, name, type, 0, a,
				 type == MOAT_DNS_A ? 4 : 16),
		    0);
	} else {
		cr_assert_eq(moat_dns_fixture_add(dns, name, type, 0, value, strlen(value)), 0);
	}
}

Test(iprev, fixture_table)
{
	struct moat_dns *dns = moat_dns_new_fixture();

	cr_assert_not_null(dns);
	add(dns, "10.2.0.192.in-addr.arpa", MOAT_DNS_PTR, "mx.example");
	add(dns, "mx.example", MOAT_DNS_A, "192.0.2.10");
	add(dns, "11.2.0.192.in-addr.arpa", MOAT_DNS_PTR, "noaddr.example");
	add(dns, "13.2.0.192.in-addr.arpa", MOAT_DNS_PTR, "other.example");
	add(dns, "13.2.0.192.in-addr.arpa", MOAT_DNS_PTR, "good.example");
	add(dns, "other.example", MOAT_DNS_A, "198.51.100.1");
	add(dns, "good.example", MOAT_DNS_A, "192.0.2.13");
	add(dns, "14.2.0.192.in-addr.arpa", MOAT_DNS_PTR, "other.example");
	cr_assert_eq(moat_dns_fixture_fail(dns, "15.2.0.192.in-addr.arpa", 0, MOAT_DNS_TEMPFAIL),
	    0);
	add(dns, "16.2.0.192.in-addr.arpa", MOAT_DNS_PTR, "slow.example");
	cr_assert_eq(moat_dns_fixture_fail(dns, "slow.example", 0, MOAT_DNS_TEMPFAIL), 0);
	add(dns, "7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
	    MOAT_DNS_PTR, "v6.example");
	add(dns, "v6.example", MOAT_DNS_AAAA, "2001:db8::7");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct iprev_case *c = &cases[i];
		struct moat_addr addr;
		struct moat_iprev r;

		cr_assert_eq(moat_addr_parse(c->addr, &addr), 0, "%s", c->label);
		moat_iprev_check(dns, &addr, &r);
		cr_assert_eq(r.result, c->result, "%s: %s", c->label,
		    moat_iprev_result_name(r.result));
		cr_assert_str_eq(r.name, c->name, "%s", c->label);
	}
	moat_dns_free(dns);
}

Test(iprev, result_names)
{
	cr_assert_str_eq(moat_iprev_result_name(MOAT_IPREV_PASS), "pass");
	cr_assert_str_eq(moat_iprev_result_name(MOAT_IPREV_FAIL), "fail");
	cr_assert_str_eq(moat_iprev_result_name(MOAT_IPREV_TEMPERROR), "temperror");
	cr_assert_str_eq(moat_iprev_result_name(MOAT_IPREV_PERMERROR), "permerror");
	cr_assert_str_eq(moat_iprev_result_name(MOAT_IPREV_NONE), "none");
}
