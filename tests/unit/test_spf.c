/*
 * test_spf.c - the SPF evaluator on the DNS fixture: identities, limits, hostile records, CIDR
 * edge cases, explanations, the trace. (The RFC 7208 suite itself is tests/unit/rfc7208.sh.)
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "dns.h"
#include "spf.h"

static void
txt(struct moat_dns *dns, const char *name, const char *text)
{
	cr_assert_eq(moat_dns_fixture_add(dns, name, MOAT_DNS_TXT, 0, text, strlen(text)), 0);
}

static void
a4(struct moat_dns *dns, const char *name, const char *addr)
{
	struct moat_addr a;

	cr_assert_eq(moat_addr_parse(addr, &a), 0);
	cr_assert_eq(moat_dns_fixture_add(dns, name, MOAT_DNS_A, 0, a.bytes + 12, 4), 0);
}

/* zone - the records the table cases below use. */
static struct moat_dns *
zone(void)
{
	struct moat_dns *dns = moat_dns_new_fixture();
	char buf[9000];
	int i;
	size_t o;

	cr_assert_not_null(dns);
	txt(dns, "pass.test", "v=spf1 ip4:192.0.2.0/24 -all");
	txt(dns, "all0.test", "v=spf1 ip4:0.0.0.0/0 ip6:::/0 -all");
	txt(dns, "soft.test", "v=spf1 ~all");
	txt(dns, "neutral.test", "v=spf1 ip4:10.0.0.1");
	txt(dns, "helo.test", "v=spf1 a -all");
	a4(dns, "helo.test", "198.51.100.7");
	/* ten DNS-querying terms are fine, eleven are not */
	txt(dns, "ten.test",
	    "v=spf1 a:x.test a:x.test a:x.test a:x.test a:x.test a:x.test a:x.test "
	    "a:x.test a:x.test a:x.test ?all");
	txt(dns, "eleven.test",
	    "v=spf1 a:x.test a:x.test a:x.test a:x.test a:x.test a:x.test "
	    "a:x.test a:x.test a:x.test a:x.test a:x.test ?all");
	a4(dns, "x.test", "203.0.113.1");
	/* two void lookups are fine, three are not */
	txt(dns, "void2.test", "v=spf1 a:n1.test a:n2.test ?all");
	txt(dns, "void3.test", "v=spf1 a:n1.test a:n2.test a:n3.test ?all");
	/* 300 includes */
	o = (size_t)snprintf(buf, sizeof(buf), "v=spf1");
	for (i = 0; i < 300; i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, " include:i%d.test", i);
	snprintf(buf + o, sizeof(buf) - o, " -all");
	txt(dns, "inc300.test", buf);
	for (i = 0; i < 300; i++) {
		char n[32];
		snprintf(n, sizeof(n), "i%d.test", i);
		txt(dns, n, "v=spf1 ?all");
	}
	/* recursion */
	txt(dns, "loopa.test", "v=spf1 include:loopb.test -all");
	txt(dns, "loopb.test", "v=spf1 include:loopa.test -all");
	txt(dns, "self.test", "v=spf1 redirect=self.test");
	/* a record past MOAT_DNS_MAX_TXT */
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "v=spf1 ", 7);
	buf[MOAT_DNS_MAX_TXT + 10] = '\0';
	txt(dns, "huge.test", buf);
	/* a record just under it: about 430 ip4 terms, syntax fine */
	o = (size_t)snprintf(buf, sizeof(buf), "v=spf1");
	for (i = 0; o + 20 < MOAT_DNS_MAX_TXT; i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, " ip4:10.%d.%d.0/24",
		    (i >> 8) & 255, i & 255);
	txt(dns, "manyip.test", buf);
	txt(dns, "manyinc.test",
	    "v=spf1 include:manyip.test include:manyip.test include:manyip.test ?all");
	/* macros */
	txt(dns, "l8.test", "v=spf1 exists:%{l}.l8.test -all");
	txt(dns, "lr8.test", "v=spf1 exists:%{lr}.lr8.test -all");
	txt(dns, "lu8.test", "v=spf1 exists:%{L}.lu8.test -all");
	a4(dns, "%C3%A9t%C3%A9.lu8.test", "127.0.0.2");
	/* expansion past 253 bytes: labels dropped from the left (RFC 7208 4.8) */
	txt(dns, "long.test", "v=spf1 exists:%{l}.%{l}.%{l}.%{l}.%{l}.long.test -all");
	/* MX with 11 records */
	txt(dns, "mx11.test", "v=spf1 mx -all");
	for (i = 0; i < 11; i++) {
		char n[32];
		snprintf(n, sizeof(n), "m%d.test", i);
		cr_assert_eq(moat_dns_fixture_add(dns, "mx11.test", MOAT_DNS_MX, (uint16_t)i, n,
				 strlen(n)),
		    0);
	}
	txt(dns, "redirnone.test", "v=spf1 redirect=nothing.test");
	txt(dns, "exp.test", "v=spf1 -all exp=why.exp.test");
	txt(dns, "why.exp.test", "%{i} is not %{d}: %{c} via %{r}");
	txt(dns, "incexp.test", "v=spf1 include:exp.test -all");
	txt(dns, "dup.test", "v=spf1 -all");
	txt(dns, "dup.test", "v=spf1 +all");
	txt(dns, "notspf.test", "v=spf10 +all");
	txt(dns, "ctl.test", "v=spf1 \x01 +all");
	txt(dns, "badmech.test", "v=spf1 +all foo:bar");
	txt(dns, "badcidr.test", "v=spf1 ip4:192.0.2.1/33 +all");
	txt(dns, "leadzero.test", "v=spf1 ip4:192.0.2.1/024 +all");
	txt(dns, "twoexp.test", "v=spf1 exp=a.test exp=b.test -all");
	cr_assert_eq(moat_dns_fixture_fail(dns, "tmp.test", 0, MOAT_DNS_TEMPFAIL), 0);
	txt(dns, "tmpinc.test", "v=spf1 include:tmp.test -all");
	return dns;
}

struct scase {
	const char *label;
	const char *client;
	const char *helo;
	const char *mail_from;
	enum moat_spf_res want;
	const char *reason; /* substring of out.reason, or NULL */
};

static const struct scase cases[] = {
	{ "pass", "192.0.2.1", "h.test", "a@pass.test", MOAT_SPF_PASS, NULL },
	{ "envelope brackets", "192.0.2.1", "h.test", "<a@pass.test>", MOAT_SPF_PASS, NULL },
	{ "fail", "198.51.100.1", "h.test", "a@pass.test", MOAT_SPF_FAIL, NULL },
	{ "ip4:0.0.0.0/0", "203.0.113.9", "h.test", "a@all0.test", MOAT_SPF_PASS, NULL },
	{ "ip6:::/0", "2001:db8::9", "h.test", "a@all0.test", MOAT_SPF_PASS, NULL },
	{ "IPv4-mapped client is IPv4", "::ffff:192.0.2.9", "h.test", "a@pass.test", MOAT_SPF_PASS,
	    NULL },
	{ "softfail", "192.0.2.1", "h.test", "a@soft.test", MOAT_SPF_SOFTFAIL, NULL },
	{ "no match: neutral", "192.0.2.1", "h.test", "a@neutral.test", MOAT_SPF_NEUTRAL, NULL },
	{ "no record: none", "192.0.2.1", "h.test", "a@nothing.test", MOAT_SPF_NONE, NULL },
	{ "null sender uses postmaster@HELO", "198.51.100.7", "helo.test", "", MOAT_SPF_PASS,
	    NULL },
	{ "null sender <>", "198.51.100.8", "helo.test", "<>", MOAT_SPF_FAIL, NULL },
	{ "no local part", "192.0.2.1", "h.test", "@pass.test", MOAT_SPF_PASS, NULL },
	{ "not a FQDN: none", "192.0.2.1", "h.test", "a@localhost", MOAT_SPF_NONE, NULL },
	{ "domain literal: none", "192.0.2.1", "h.test", "a@[192.0.2.1]", MOAT_SPF_NONE, NULL },
	{ "injection attempt: none", "192.0.2.1", "h.test", "a@pass.test;x=y", MOAT_SPF_NONE,
	    NULL },
	{ "CVE-2020-12272 form: none", "192.0.2.1", "h.test", "<a@legit.test(a.pass.test>",
	    MOAT_SPF_NONE, NULL },
	{ "10 DNS terms", "192.0.2.1", "h.test", "a@ten.test", MOAT_SPF_NEUTRAL, NULL },
	{ "11 DNS terms", "192.0.2.1", "h.test", "a@eleven.test", MOAT_SPF_PERMERROR,
	    "more than 10" },
	{ "2 void lookups", "192.0.2.1", "h.test", "a@void2.test", MOAT_SPF_NEUTRAL, NULL },
	{ "3 void lookups", "192.0.2.1", "h.test", "a@void3.test", MOAT_SPF_PERMERROR, "void" },
	{ "300 includes", "192.0.2.1", "h.test", "a@inc300.test", MOAT_SPF_PERMERROR,
	    "more than 10" },
	{ "include loop", "192.0.2.1", "h.test", "a@loopa.test", MOAT_SPF_PERMERROR,
	    "more than 10" },
	{ "redirect to itself", "192.0.2.1", "h.test", "a@self.test", MOAT_SPF_PERMERROR,
	    "more than 10" },
	{ "huge TXT", "192.0.2.1", "h.test", "a@huge.test", MOAT_SPF_PERMERROR, "unusable" },
	{ "430 ip4 terms", "10.1.4.5", "h.test", "a@manyip.test", MOAT_SPF_PASS, NULL },
	{ "8-bit %{l}", "192.0.2.1", "h.test", "\xc3\xa9t\xc3\xa9@l8.test", MOAT_SPF_PERMERROR,
	    "unusable" },
	{ "8-bit %{lr}", "192.0.2.1", "h.test", "\xc3\xa9t\xc3\xa9@lr8.test", MOAT_SPF_PERMERROR,
	    "unusable" },
	{ "8-bit %{L} escaped", "192.0.2.1", "h.test", "\xc3\xa9t\xc3\xa9@lu8.test", MOAT_SPF_PASS,
	    NULL },
	{ "11 MX records", "192.0.2.1", "h.test", "a@mx11.test", MOAT_SPF_PERMERROR, "MX" },
	{ "redirect to no record", "192.0.2.1", "h.test", "a@redirnone.test", MOAT_SPF_PERMERROR,
	    "redirect" },
	{ "two SPF records", "192.0.2.1", "h.test", "a@dup.test", MOAT_SPF_PERMERROR,
	    "2 SPF records" },
	{ "v=spf10 is not SPF", "192.0.2.1", "h.test", "a@notspf.test", MOAT_SPF_NONE, NULL },
	{ "control byte", "192.0.2.1", "h.test", "a@ctl.test", MOAT_SPF_PERMERROR, "non-ASCII" },
	{ "unknown mechanism after a match", "192.0.2.1", "h.test", "a@badmech.test",
	    MOAT_SPF_PERMERROR, "syntax" },
	{ "ip4 /33", "192.0.2.1", "h.test", "a@badcidr.test", MOAT_SPF_PERMERROR, "syntax" },
	{ "ip4 /024", "192.0.2.1", "h.test", "a@leadzero.test", MOAT_SPF_PERMERROR, "syntax" },
	{ "exp twice", "192.0.2.1", "h.test", "a@twoexp.test", MOAT_SPF_PERMERROR,
	    "exp= given twice" },
	{ "DNS timeout", "192.0.2.1", "h.test", "a@tmp.test", MOAT_SPF_TEMPERROR, "DNS error" },
	{ "DNS timeout in include", "192.0.2.1", "h.test", "a@tmpinc.test", MOAT_SPF_TEMPERROR,
	    "DNS error" },
};

Test(spf, table)
{
	struct moat_dns *dns = zone();
	struct moat_spf_opts opts = { .receiver = "mx.test" };
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct scase *c = &cases[i];
		struct moat_spf_result r;
		struct moat_addr client;
		unsigned long before = moat_dns_fixture_queries(dns);

		cr_assert_eq(moat_addr_parse(c->client, &client), 0, "%s", c->label);
		moat_spf_check_mailfrom(dns, &client, c->helo, c->mail_from, &opts, &r);
		cr_expect_eq(r.result, c->want, "%s: got %s (%s)", c->label,
		    moat_spf_result_name(r.result), r.reason);
		cr_expect_eq(r.identity, MOAT_SPF_ID_MAILFROM, "%s", c->label);
		if (c->reason != NULL)
			cr_expect(strstr(r.reason, c->reason) != NULL, "%s: reason '%s'", c->label,
			    r.reason);
		/* no evaluation may cost more than the limits allow: 10 terms, 10 MX/PTR names each */
		cr_expect_leq(moat_dns_fixture_queries(dns) - before, 130, "%s: %lu queries",
		    c->label, moat_dns_fixture_queries(dns) - before);
		cr_expect_leq(r.lookups, MOAT_SPF_LOOKUP_LIMIT + 1, "%s", c->label);
		moat_spf_result_clear(&r);
	}
	moat_dns_free(dns);
}

Test(spf, long_expansion_is_truncated)
{
	struct moat_dns *dns = zone();
	struct moat_spf_result r;
	struct moat_addr client;
	char local[70], name[400];

	/* 5 x 63-byte local parts: 324 bytes; RFC 7208 4.8 keeps the right-most labels under 253 */
	memset(local, 'q', 63);
	local[63] = '\0';
	snprintf(name, sizeof(name), "%s.%s.%s.long.test", local, local, local);
	cr_assert_eq(strlen(name), 201u);
	a4(dns, name, "127.0.0.2");
	snprintf(name, sizeof(name), "%s@long.test", local);
	cr_assert_eq(moat_addr_parse("192.0.2.1", &client), 0);
	moat_spf_check_mailfrom(dns, &client, "h.test", name, NULL, &r);
	/* exists: matched the truncated name, so no -all */
	cr_expect_eq(r.result, MOAT_SPF_PASS, "got %s (%s)", moat_spf_result_name(r.result),
	    r.reason);
	moat_spf_result_clear(&r);
	moat_dns_free(dns);
}

Test(spf, explanation)
{
	struct moat_dns *dns = zone();
	struct moat_spf_opts opts = { .receiver = "mx.test", .default_exp = "default for %{d}" };
	struct moat_spf_result r;
	struct moat_addr client;

	cr_assert_eq(moat_addr_parse("198.51.100.1", &client), 0);
	moat_spf_check_mailfrom(dns, &client, "h.test", "a@exp.test", &opts, &r);
	cr_expect_eq(r.result, MOAT_SPF_FAIL);
	cr_expect_str_eq(r.explanation, "198.51.100.1 is not exp.test: 198.51.100.1 via mx.test");
	cr_expect_str_eq(r.mechanism, "-all");
	moat_spf_result_clear(&r);
	/* an included record's exp= is not used (RFC 7208 6.2) */
	moat_spf_check_mailfrom(dns, &client, "h.test", "a@incexp.test", &opts, &r);
	cr_expect_eq(r.result, MOAT_SPF_FAIL);
	cr_expect_str_eq(r.explanation, "default for incexp.test");
	moat_spf_result_clear(&r);
	/* only fail carries an explanation */
	moat_spf_check_mailfrom(dns, &client, "h.test", "a@soft.test", &opts, &r);
	cr_expect_str_eq(r.explanation, "");
	moat_spf_result_clear(&r);
	moat_dns_free(dns);
}

Test(spf, helo_identity_and_trace)
{
	struct moat_dns *dns = zone();
	struct moat_spf_opts opts = { .trace = true };
	struct moat_spf_result r;
	struct moat_addr client;

	cr_assert_eq(moat_addr_parse("198.51.100.7", &client), 0);
	moat_spf_check_helo(dns, &client, "helo.test", &opts, &r);
	cr_expect_eq(r.result, MOAT_SPF_PASS);
	cr_expect_eq(r.identity, MOAT_SPF_ID_HELO);
	cr_expect_str_eq(r.sender, "postmaster@helo.test");
	cr_expect_str_eq(r.domain, "helo.test");
	cr_assert_not_null(r.trace);
	cr_expect(strstr(r.trace, "helo.test: \"v=spf1 a -all\"\n") != NULL, "%s", r.trace);
	cr_expect(strstr(r.trace, "a: match\n") != NULL, "%s", r.trace);
	cr_expect(strstr(r.trace, "result: pass\n") != NULL, "%s", r.trace);
	moat_spf_result_clear(&r);
	cr_expect_null(r.trace);
	moat_spf_check_helo(dns, &client, "not-a-fqdn", &opts, &r);
	cr_expect_eq(r.result, MOAT_SPF_NONE);
	moat_spf_result_clear(&r);
	moat_spf_check_helo(dns, &client, NULL, NULL, &r);
	cr_expect_eq(r.result, MOAT_SPF_NONE);
	moat_dns_free(dns);
}

Test(spf, trace_is_bounded)
{
	struct moat_dns *dns = zone();
	struct moat_spf_opts opts = { .trace = true };
	struct moat_spf_result r;
	struct moat_addr client;

	/* 3 x 430 terms evaluated, each traced: the trace stops at its bound and says so */
	cr_assert_eq(moat_addr_parse("192.0.2.1", &client), 0);
	moat_spf_check_mailfrom(dns, &client, "h.test", "a@manyinc.test", &opts, &r);
	cr_expect_eq(r.result, MOAT_SPF_NEUTRAL);
	cr_assert_not_null(r.trace);
	cr_expect_lt(r.trace_len, (size_t)MOAT_SPF_TRACE_MAX);
	cr_expect(strstr(r.trace, "(trace truncated)") != NULL);
	moat_spf_result_clear(&r);
	moat_dns_free(dns);
}

Test(spf, time_limit)
{
	struct moat_dns *dns = zone();
	struct moat_spf_opts opts = { .time_limit_ms = 100 };
	struct moat_spf_result r;
	struct moat_addr client;
	unsigned long before;

	/* ten a: terms at 30 ms a query: the 100 ms limit cuts it short, as temperror */
	moat_dns_fixture_delay(dns, 30);
	cr_assert_eq(moat_addr_parse("192.0.2.1", &client), 0);
	before = moat_dns_fixture_queries(dns);
	moat_spf_check_mailfrom(dns, &client, "h.test", "a@ten.test", &opts, &r);
	cr_expect_eq(r.result, MOAT_SPF_TEMPERROR, "got %s", moat_spf_result_name(r.result));
	cr_expect_str_eq(r.reason, "SPF evaluation took longer than 100 ms");
	cr_expect_leq(moat_dns_fixture_queries(dns) - before, 5u, "queries stop at the limit");
	moat_spf_result_clear(&r);
	/* "ptr -all" would otherwise turn a timed-out ptr into a fail */
	txt(dns, "ptrall.test", "v=spf1 a:x.test a:x.test a:x.test a:x.test ptr -all");
	moat_spf_check_mailfrom(dns, &client, "h.test", "a@ptrall.test", &opts, &r);
	cr_expect_eq(r.result, MOAT_SPF_TEMPERROR, "got %s", moat_spf_result_name(r.result));
	moat_spf_result_clear(&r);
	/* the same evaluation with the default limit completes */
	opts.time_limit_ms = 0;
	moat_spf_check_mailfrom(dns, &client, "h.test", "a@ten.test", &opts, &r);
	cr_expect_eq(r.result, MOAT_SPF_NEUTRAL);
	moat_spf_result_clear(&r);
	moat_dns_free(dns);
}

Test(spf, sender_length_bounds)
{
	struct moat_dns *dns = zone();
	struct moat_spf_result r;
	struct moat_addr client;
	char sender[700];

	cr_assert_eq(moat_addr_parse("192.0.2.1", &client), 0);
	/* a local part of 256 bytes is checked; 257 is not */
	memset(sender, 'l', 256);
	snprintf(sender + 256, sizeof(sender) - 256, "@pass.test");
	moat_spf_check_mailfrom(dns, &client, "h.test", sender, NULL, &r);
	cr_expect_eq(r.result, MOAT_SPF_PASS);
	memset(sender, 'l', 257);
	snprintf(sender + 257, sizeof(sender) - 257, "@pass.test");
	moat_spf_check_mailfrom(dns, &client, "h.test", sender, NULL, &r);
	cr_expect_eq(r.result, MOAT_SPF_NONE);
	cr_expect_str_eq(r.reason, "sender address too long");
	/* a whole sender over 512 bytes */
	memset(sender, 'x', 600);
	snprintf(sender + 600, sizeof(sender) - 600, "@pass.test");
	moat_spf_check_mailfrom(dns, &client, "h.test", sender, NULL, &r);
	cr_expect_eq(r.result, MOAT_SPF_NONE);
	cr_expect_str_eq(r.reason, "sender address too long");
	moat_dns_free(dns);
}

Test(spf, result_names)
{
	cr_expect_str_eq(moat_spf_result_name(MOAT_SPF_NONE), "none");
	cr_expect_str_eq(moat_spf_result_name(MOAT_SPF_NEUTRAL), "neutral");
	cr_expect_str_eq(moat_spf_result_name(MOAT_SPF_PASS), "pass");
	cr_expect_str_eq(moat_spf_result_name(MOAT_SPF_FAIL), "fail");
	cr_expect_str_eq(moat_spf_result_name(MOAT_SPF_SOFTFAIL), "softfail");
	cr_expect_str_eq(moat_spf_result_name(MOAT_SPF_TEMPERROR), "temperror");
	cr_expect_str_eq(moat_spf_result_name(MOAT_SPF_PERMERROR), "permerror");
	cr_expect_str_eq(moat_spf_result_name((enum moat_spf_res)99), "?");
}
