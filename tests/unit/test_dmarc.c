/*
 * test_dmarc.c - DMARC per RFC 9989: the record parser, the DNS tree walk (policy record and
 * Organizational Domain, psd=y/n, the 8-label shortcut, the query bound), and the alignment
 * matrix relaxed/strict x SPF/DKIM x same domain / subdomain / organizational / PSD /
 * non-existent subdomain with np. Records come from the DNS layer's in-process fixture (several
 * DMARC records at one name and a SERVFAIL need it).
 */
#include "config.h"

#include <string.h>

#include <criterion/criterion.h>

#include "dmarc.h"

/* ---- record parser ---- */

struct rec_case {
	const char *label;
	const char *text;
	int ret;
	enum moat_dmarc_policy p, sp, np;
	enum moat_dmarc_psd psd;
	bool t, adkim_s, aspf_s;
};

static const struct rec_case rec_cases[] = {
	{ "minimal", "v=DMARC1; p=reject", 0, MOAT_DMARC_P_REJECT, 0, 0, 0, false, false, false },
	{ "all tags",
	    "v=DMARC1; p=quarantine; sp=none; np=reject; psd=n; t=y; adkim=s; aspf=s; rua=mailto:a@b.test",
	    0, MOAT_DMARC_P_QUARANTINE, MOAT_DMARC_P_NONE, MOAT_DMARC_P_REJECT, MOAT_DMARC_PSD_N,
	    true, true, true },
	{ "spaces and case", "v = DMARC1 ;  P = Reject ; ADKIM = S ;", 0, MOAT_DMARC_P_REJECT, 0, 0,
	    0, false, true, false },
	{ "no p is none", "v=DMARC1; rua=mailto:a@b.test", 0, MOAT_DMARC_P_NONE, 0, 0, 0, false,
	    false, false },
	{ "bad p is none", "v=DMARC1; p=bogus", 0, MOAT_DMARC_P_NONE, 0, 0, 0, false, false,
	    false },
	{ "unknown tags ignored", "v=DMARC1; p=reject; pct=10; foo=bar; ri=3600", 0,
	    MOAT_DMARC_P_REJECT, 0, 0, 0, false, false, false },
	{ "psd=y", "v=DMARC1; p=reject; psd=y", 0, MOAT_DMARC_P_REJECT, 0, 0, MOAT_DMARC_PSD_Y,
	    false, false, false },
	{ "v not first", "p=reject; v=DMARC1", -1, 0, 0, 0, 0, false, false, false },
	{ "wrong version", "v=DMARC2; p=reject", -1, 0, 0, 0, 0, false, false, false },
	{ "lower-case version", "v=dmarc1; p=reject", -1, 0, 0, 0, 0, false, false, false },
	{ "SPF record", "v=spf1 -all", -1, 0, 0, 0, 0, false, false, false },
	{ "empty", "", -1, 0, 0, 0, 0, false, false, false },
	{ "bad adkim", "v=DMARC1; p=reject; adkim=x", -1, 0, 0, 0, 0, false, false, false },
	{ "bad psd", "v=DMARC1; p=reject; psd=maybe", -1, 0, 0, 0, 0, false, false, false },
	{ "tag without =", "v=DMARC1; p=reject; junk", -1, 0, 0, 0, 0, false, false, false },
};

Test(dmarc, record_parser)
{
	for (size_t i = 0; i < sizeof(rec_cases) / sizeof(rec_cases[0]); i++) {
		const struct rec_case *c = &rec_cases[i];
		struct moat_dmarc_record r;
		int ret = moat_dmarc_record_parse(c->text, strlen(c->text), &r);
		cr_expect_eq(ret, c->ret, "%s: ret %d", c->label, ret);
		if (ret != 0 || c->ret != 0)
			continue;
		cr_expect_eq(r.p, c->p, "%s: p", c->label);
		cr_expect_eq(r.sp, c->sp, "%s: sp", c->label);
		cr_expect_eq(r.np, c->np, "%s: np", c->label);
		cr_expect_eq(r.psd, c->psd, "%s: psd", c->label);
		cr_expect_eq(r.testing, c->t, "%s: t", c->label);
		cr_expect_eq(r.adkim_strict, c->adkim_s, "%s: adkim", c->label);
		cr_expect_eq(r.aspf_strict, c->aspf_s, "%s: aspf", c->label);
	}
}

Test(dmarc, record_with_nul_refused)
{
	struct moat_dmarc_record r;

	cr_expect_eq(moat_dmarc_record_parse("v=DMARC1; p=none\0; p=reject", 27, &r), -1);
}

/* ---- the zone ---- */

static void
txt(struct moat_dns *d, const char *name, const char *t)
{
	cr_assert_eq(moat_dns_fixture_add(d, name, MOAT_DNS_TXT, 0, t, strlen(t)), 0);
}

static void
host(struct moat_dns *d, const char *name)
{
	static const unsigned char a[4] = { 192, 0, 2, 1 };
	cr_assert_eq(moat_dns_fixture_add(d, name, MOAT_DNS_A, 0, a, 4), 0);
}

static struct moat_dns *
zone(void)
{
	struct moat_dns *d = moat_dns_new_fixture();

	cr_assert_not_null(d);
	/* an organization with relaxed alignment and every policy tag */
	txt(d, "_dmarc.example.com", "v=DMARC1; p=reject; sp=quarantine; np=reject");
	host(d, "example.com");
	host(d, "mail.example.com");
	host(d, "news.example.com");
	txt(d, "com", "not a DMARC domain"); /* so "com" exists */
	/* an organization with a record only at the top and no sp */
	txt(d, "_dmarc.plain.test", "v=DMARC1; p=quarantine");
	host(d, "plain.test");
	host(d, "sub.plain.test");
	/* strict alignment */
	txt(d, "_dmarc.strict.test", "v=DMARC1; p=reject; adkim=s; aspf=s");
	host(d, "strict.test");
	host(d, "sub.strict.test");
	/* a public suffix operator with psd=y; brand.psd.test publishes nothing */
	txt(d, "_dmarc.psd.test", "v=DMARC1; p=reject; psd=y");
	host(d, "brand.psd.test");
	host(d, "mail.brand.psd.test");
	host(d, "other.brand.psd.test");
	host(d, "evil.psd.test");
	/* psd=n marks the organization explicitly, below a parent that publishes too */
	txt(d, "_dmarc.corp.org.example", "v=DMARC1; p=reject; psd=n");
	txt(d, "_dmarc.org.example", "v=DMARC1; p=none");
	host(d, "x.a.corp.org.example");
	host(d, "y.corp.org.example");
	/* testing mode */
	txt(d, "_dmarc.testing.example", "v=DMARC1; p=reject; t=y");
	host(d, "testing.example");
	/* two DMARC records: both discarded */
	txt(d, "_dmarc.multi.example", "v=DMARC1; p=reject");
	txt(d, "_dmarc.multi.example", "v=DMARC1; p=none");
	txt(d, "_dmarc.multi.example", "some other text");
	host(d, "multi.example");
	/* a DNS failure */
	moat_dns_fixture_fail(d, "_dmarc.temp.example", 0, MOAT_DNS_TEMPFAIL);
	host(d, "temp.example");
	return d;
}

/* ---- organizational domains ---- */

struct org_case {
	const char *label, *domain, *org;
};

static const struct org_case org_cases[] = {
	{ "record at the domain", "example.com", "example.com" },
	{ "subdomain", "mail.example.com", "example.com" },
	{ "deep subdomain", "a.b.mail.example.com", "example.com" },
	{ "below a PSD", "mail.brand.psd.test", "brand.psd.test" },
	{ "one below the PSD", "brand.psd.test", "brand.psd.test" },
	{ "psd=n beats a parent record", "x.a.corp.org.example", "corp.org.example" },
	{ "no record anywhere", "www.nothing.example", "www.nothing.example" },
	{ "fewest labels wins", "sub.plain.test", "plain.test" },
};

Test(dmarc, organizational_domain)
{
	struct moat_dns *d = zone();

	for (size_t i = 0; i < sizeof(org_cases) / sizeof(org_cases[0]); i++) {
		char out[256];
		unsigned q = 0;
		cr_expect_eq(moat_dmarc_org_domain(d, org_cases[i].domain, out, sizeof(out), &q), 0,
		    "%s", org_cases[i].label);
		cr_expect_str_eq(out, org_cases[i].org, "%s", org_cases[i].label);
		cr_expect_leq(q, MOAT_DMARC_WALK_MAX, "%s: %u queries", org_cases[i].label, q);
	}
	moat_dns_free(d);
}

Test(dmarc, walk_bounded_and_shortcut)
{
	struct moat_dns *d = zone();
	char out[256];
	unsigned q = 0;

	/* 11 labels: the domain, then 7 labels, 6, ... 1: 8 queries, and the record is found */
	cr_expect_eq(moat_dmarc_org_domain(d, "a.b.c.d.e.f.g.h.i.example.com", out, sizeof(out),
			 &q),
	    0);
	cr_expect_str_eq(out, "example.com");
	cr_expect_eq(q, 8u);
	moat_dns_free(d);
}

/* ---- the alignment matrix ---- */

struct eval_case {
	const char *label;
	const char *from;
	const char *spf; /* SPF-passing domain or NULL */
	const char *dkim; /* DKIM-passing d= or NULL */
	enum moat_dmarc_res res;
	const char *tag; /* "p", "sp", "np" or "" */
	enum moat_dmarc_policy disposition;
	bool spf_aligned, dkim_aligned;
};

static const struct eval_case eval_cases[] = {
	/* relaxed, organizational domain */
	{ "relaxed DKIM same domain", "example.com", NULL, "example.com", MOAT_DMARC_PASS, "p",
	    MOAT_DMARC_P_REJECT, false, true },
	{ "relaxed DKIM parent signs subdomain", "mail.example.com", NULL, "example.com",
	    MOAT_DMARC_PASS, "sp", MOAT_DMARC_P_QUARANTINE, false, true },
	{ "relaxed DKIM sibling subdomain", "mail.example.com", NULL, "news.example.com",
	    MOAT_DMARC_PASS, "sp", MOAT_DMARC_P_QUARANTINE, false, true },
	{ "relaxed SPF subdomain", "example.com", "bounce.example.com", NULL, MOAT_DMARC_PASS, "p",
	    MOAT_DMARC_P_REJECT, true, false },
	{ "relaxed SPF other org", "example.com", "example.net", NULL, MOAT_DMARC_FAIL, "p",
	    MOAT_DMARC_P_REJECT, false, false },
	{ "relaxed DKIM other org", "example.com", NULL, "evil.test", MOAT_DMARC_FAIL, "p",
	    MOAT_DMARC_P_REJECT, false, false },
	{ "nothing passed", "example.com", NULL, NULL, MOAT_DMARC_FAIL, "p", MOAT_DMARC_P_REJECT,
	    false, false },
	{ "both aligned", "example.com", "example.com", "example.com", MOAT_DMARC_PASS, "p",
	    MOAT_DMARC_P_REJECT, true, true },
	/* no sp: p applies to subdomains */
	{ "subdomain without sp", "sub.plain.test", NULL, NULL, MOAT_DMARC_FAIL, "p",
	    MOAT_DMARC_P_QUARANTINE, false, false },
	/* strict */
	{ "strict DKIM same domain", "strict.test", NULL, "strict.test", MOAT_DMARC_PASS, "p",
	    MOAT_DMARC_P_REJECT, false, true },
	{ "strict DKIM parent of subdomain", "sub.strict.test", NULL, "strict.test",
	    MOAT_DMARC_FAIL, "p", MOAT_DMARC_P_REJECT, false, false },
	{ "strict SPF subdomain", "strict.test", "sub.strict.test", NULL, MOAT_DMARC_FAIL, "p",
	    MOAT_DMARC_P_REJECT, false, false },
	{ "strict SPF same domain", "strict.test", "STRICT.test", NULL, MOAT_DMARC_PASS, "p",
	    MOAT_DMARC_P_REJECT, true, false },
	/* non-existent subdomain: np */
	{ "non-existent subdomain np", "nx.example.com", NULL, NULL, MOAT_DMARC_FAIL, "np",
	    MOAT_DMARC_P_REJECT, false, false },
	{ "non-existent subdomain aligned", "nx.example.com", NULL, "example.com", MOAT_DMARC_PASS,
	    "np", MOAT_DMARC_P_REJECT, false, true },
	{ "non-existent without np falls to p", "nx.plain.test", NULL, NULL, MOAT_DMARC_FAIL, "p",
	    MOAT_DMARC_P_QUARANTINE, false, false },
	/* PSD */
	{ "PSD policy for a brand", "mail.brand.psd.test", NULL, NULL, MOAT_DMARC_FAIL, "p",
	    MOAT_DMARC_P_REJECT, false, false },
	{ "PSD relaxed within the brand", "mail.brand.psd.test", NULL, "other.brand.psd.test",
	    MOAT_DMARC_PASS, "p", MOAT_DMARC_P_REJECT, false, true },
	{ "PSD sibling brand does not align", "mail.brand.psd.test", "evil.psd.test",
	    "evil.psd.test", MOAT_DMARC_FAIL, "p", MOAT_DMARC_P_REJECT, false, false },
	{ "PSD itself does not align", "mail.brand.psd.test", NULL, "psd.test", MOAT_DMARC_FAIL,
	    "p", MOAT_DMARC_P_REJECT, false, false },
	/* psd=n organization */
	{ "psd=n org aligns its subdomains", "x.a.corp.org.example", NULL, "y.corp.org.example",
	    MOAT_DMARC_PASS, "p", MOAT_DMARC_P_REJECT, false, true },
	/* t=y: one level lower */
	{ "testing mode", "testing.example", NULL, NULL, MOAT_DMARC_FAIL, "p",
	    MOAT_DMARC_P_QUARANTINE, false, false },
	/* no policy */
	{ "no record", "nothing.example", NULL, NULL, MOAT_DMARC_NONE, "", MOAT_DMARC_P_UNSET,
	    false, false },
	{ "two records discarded", "multi.example", NULL, NULL, MOAT_DMARC_NONE, "",
	    MOAT_DMARC_P_UNSET, false, false },
	{ "DNS failure", "temp.example", NULL, "temp.example", MOAT_DMARC_TEMPERROR, "",
	    MOAT_DMARC_P_UNSET, false, false },
	{ "no From", "", NULL, "example.com", MOAT_DMARC_PERMERROR, "", MOAT_DMARC_P_UNSET, false,
	    false },
};

Test(dmarc, alignment_matrix)
{
	struct moat_dns *d = zone();

	for (size_t i = 0; i < sizeof(eval_cases) / sizeof(eval_cases[0]); i++) {
		const struct eval_case *c = &eval_cases[i];
		struct moat_dmarc_ids ids = { 0 };
		struct moat_dmarc_eval ev;

		ids.spf_domain = c->spf;
		if (c->dkim)
			ids.dkim_domains[ids.ndkim++] = c->dkim;
		cr_expect_eq(moat_dmarc_evaluate(d, c->from, &ids, &ev), c->res, "%s: %s (%s)",
		    c->label, moat_dmarc_result_name(ev.result), ev.reason);
		cr_expect_str_eq(ev.policy_tag, c->tag, "%s: policy tag", c->label);
		if (c->res == MOAT_DMARC_PASS || c->res == MOAT_DMARC_FAIL) {
			cr_expect_eq(ev.disposition, c->disposition, "%s: disposition %s", c->label,
			    moat_dmarc_policy_name(ev.disposition));
			cr_expect_eq(ev.spf_aligned, c->spf_aligned, "%s: spf aligned", c->label);
			cr_expect_eq(ev.dkim_aligned, c->dkim_aligned, "%s: dkim aligned",
			    c->label);
		}
	}
	moat_dns_free(d);
}

Test(dmarc, eval_records_policy_domain)
{
	struct moat_dns *d = zone();
	struct moat_dmarc_eval ev;
	struct moat_dmarc_ids ids = { .dkim_domains = { "other.test" }, .ndkim = 1 };

	moat_dmarc_evaluate(d, "mail.brand.psd.test", &ids, &ev);
	cr_expect_str_eq(ev.policy_domain, "psd.test");
	cr_expect_str_eq(ev.org_domain, "brand.psd.test");
	moat_dmarc_evaluate(d, "testing.example", NULL, &ev);
	cr_expect_eq(ev.applied, MOAT_DMARC_P_REJECT);
	cr_expect(ev.rec.testing);
	cr_expect_str_eq(ev.org_domain, "",
	    "no identifier to align: no walk past the policy record");
	cr_expect_eq(ev.queries, 1u);
	moat_dns_free(d);
}

/* ---- DNS errors: a temperror only where the missing answer could change the result ---- */

static struct moat_dns *
err_zone(void)
{
	struct moat_dns *d = moat_dns_new_fixture();

	cr_assert_not_null(d);
	/* the spoofed organization: p=reject, nothing at _dmarc.test */
	txt(d, "_dmarc.victim.test", "v=DMARC1; p=reject");
	host(d, "victim.test");
	host(d, "mail.victim.test");
	moat_dns_fixture_fail(d, "_dmarc.mail.victim.test", 0, MOAT_DNS_TEMPFAIL);
	/* the spoofer's own names: its _dmarc SERVFAILs or times out (the fixture cannot tell
	 * them apart: both are MOAT_DNS_TEMPFAIL), or is a CNAME to a name that does */
	moat_dns_fixture_fail(d, "_dmarc.evil.example", 0, MOAT_DNS_TEMPFAIL);
	moat_dns_fixture_fail(d, "_dmarc.example", 0, MOAT_DNS_TEMPFAIL);
	cr_assert_eq(moat_dns_fixture_add(d, "_dmarc.cname.example", MOAT_DNS_CNAME, 0,
			 "_dmarc.lame.example", strlen("_dmarc.lame.example")),
	    0);
	moat_dns_fixture_fail(d, "_dmarc.lame.example", 0, MOAT_DNS_TEMPFAIL);
	moat_dns_fixture_fail(d, "_dmarc.sibling.test", 0, MOAT_DNS_TEMPFAIL); /* victim's TLD */
	/* an organization whose parent's _dmarc fails: its own Organizational Domain is open */
	txt(d, "_dmarc.corp.example", "v=DMARC1; p=reject");
	txt(d, "_dmarc.own.corp.example", "v=DMARC1; p=none");
	txt(d, "_dmarc.psdy.corp.example", "v=DMARC1; p=none; psd=n");
	host(d, "mail.corp.example");
	/* policy discovery failing above the From domain */
	moat_dns_fixture_fail(d, "_dmarc.parent-fails.test", 0, MOAT_DNS_TEMPFAIL);
	host(d, "a.parent-fails.test");
	/* np: the From domain's existence unanswerable */
	txt(d, "_dmarc.np.test", "v=DMARC1; p=none; np=reject");
	txt(d, "_dmarc.nonp.test", "v=DMARC1; p=reject");
	txt(d, "_dmarc.samenp.test", "v=DMARC1; p=reject; np=reject");
	moat_dns_fixture_fail(d, "x.np.test", 0, MOAT_DNS_TEMPFAIL);
	moat_dns_fixture_fail(d, "x.nonp.test", 0, MOAT_DNS_TEMPFAIL);
	moat_dns_fixture_fail(d, "x.samenp.test", 0, MOAT_DNS_TEMPFAIL);
	return d;
}

struct err_case {
	const char *label;
	const char *from;
	const char *spf, *dkim, *dkim2;
	enum moat_dmarc_res res;
	const char *tag;
	unsigned queries; /* exactly, so an identifier that cannot align is never asked */
};

static const struct err_case err_cases[] = {
	/* the spoofer's DNS: an identifier that cannot align is not looked up */
	{ "SPF domain's _dmarc fails", "victim.test", "evil.example", NULL, NULL, MOAT_DMARC_FAIL,
	    "p", 3 },
	{ "DKIM d= _dmarc fails", "victim.test", NULL, "evil.example", NULL, MOAT_DMARC_FAIL, "p",
	    3 },
	{ "d= _dmarc is a CNAME to a failing name", "victim.test", NULL, "cname.example", NULL,
	    MOAT_DMARC_FAIL, "p", 3 },
	{ "both identifiers' DNS fails", "victim.test", "sub.evil.example", "cname.example", NULL,
	    MOAT_DMARC_FAIL, "p", 3 },
	{ "same TLD as the From domain", "victim.test", "sibling.test", "sibling.test", NULL,
	    MOAT_DMARC_FAIL, "p", 3 },
	{ "strict needs no walk", "victim.test", NULL, NULL, NULL, MOAT_DMARC_FAIL, "p", 1 },
	/* a failing identifier beside an aligned one */
	{ "aligned DKIM beside a failing one", "victim.test", NULL, "evil.example", "victim.test",
	    MOAT_DMARC_PASS, "p", 3 },
	/* an identifier below the From domain's organization: its walk decides, a failure is open */
	{ "subdomain of the organization fails", "victim.test", "mail.victim.test", NULL, NULL,
	    MOAT_DMARC_TEMPERROR, "p", 4 },
	{ "...but an aligned DKIM passes", "victim.test", "mail.victim.test", "victim.test", NULL,
	    MOAT_DMARC_PASS, "p", 4 },
	/* the From domain's own Organizational Domain open (its parent's _dmarc fails) */
	{ "open org: other TLD cannot align", "mail.corp.example", "evil.test", NULL, NULL,
	    MOAT_DMARC_FAIL, "p", 6 },
	{ "open org: same parent could", "mail.corp.example", "evil.example", NULL, NULL,
	    MOAT_DMARC_TEMPERROR, "p", 7 },
	{ "open org: the From domain itself aligns", "mail.corp.example", NULL, "mail.corp.example",
	    NULL, MOAT_DMARC_PASS, "p", 3 },
	/* ...but a sibling fails at the same parent after the same answers: equal whatever it says */
	{ "open org: sibling under the failing parent", "mail.corp.example", NULL,
	    "news.corp.example", NULL, MOAT_DMARC_PASS, "p", 9 },
	{ "open org: the organization itself", "mail.corp.example", "corp.example", NULL, NULL,
	    MOAT_DMARC_PASS, "p", 8 },
	{ "open org: a subdomain with its own record", "mail.corp.example", "own.corp.example",
	    NULL, NULL, MOAT_DMARC_PASS, "p", 9 },
	{ "open org: a psd=n organization below it", "mail.corp.example", "x.psdy.corp.example",
	    NULL, NULL, MOAT_DMARC_FAIL, "p", 8 },
	/* the From domain's policy */
	{ "From domain's _dmarc fails", "temp.example", NULL, NULL, NULL, MOAT_DMARC_TEMPERROR, "",
	    1 },
	{ "a parent's _dmarc fails", "a.parent-fails.test", "evil.example", NULL, NULL,
	    MOAT_DMARC_TEMPERROR, "", 2 },
	/* np: the existence of the From domain matters only where np differs */
	{ "np differs, existence unknown", "x.np.test", NULL, NULL, NULL, MOAT_DMARC_TEMPERROR, "p",
	    3 },
	{ "np differs, but aligned", "x.np.test", "np.test", NULL, NULL, MOAT_DMARC_PASS, "p", 8 },
	{ "no np", "x.nonp.test", NULL, NULL, NULL, MOAT_DMARC_FAIL, "p", 3 },
	{ "np the same as p", "x.samenp.test", NULL, NULL, NULL, MOAT_DMARC_FAIL, "p", 3 },
};

Test(dmarc, dns_errors)
{
	struct moat_dns *d = err_zone();

	moat_dns_fixture_fail(d, "_dmarc.temp.example", 0, MOAT_DNS_TEMPFAIL);
	for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
		const struct err_case *c = &err_cases[i];
		struct moat_dmarc_ids ids = { 0 };
		struct moat_dmarc_eval ev;

		ids.spf_domain = c->spf;
		if (c->dkim)
			ids.dkim_domains[ids.ndkim++] = c->dkim;
		if (c->dkim2)
			ids.dkim_domains[ids.ndkim++] = c->dkim2;
		cr_expect_eq(moat_dmarc_evaluate(d, c->from, &ids, &ev), c->res, "%s: %s (%s)",
		    c->label, moat_dmarc_result_name(ev.result), ev.reason);
		cr_expect_str_eq(ev.policy_tag, c->tag, "%s: policy tag", c->label);
		cr_expect_eq(ev.queries, c->queries, "%s: %u queries", c->label, ev.queries);
	}
	moat_dns_free(d);
}

struct open_case {
	const char *label;
	const char *from;
	const char *spf, *spf_open, *dkim_open;
	enum moat_dmarc_res res;
	const char *reason; /* exact, or NULL */
};

/* An SPF or DKIM temperror leaves DMARC open only where that identifier could align. */
static const struct open_case open_cases[] = {
	{ "SPF temperror for the From domain", "victim.test", NULL, "victim.test", NULL,
	    MOAT_DMARC_TEMPERROR,
	    "SPF for victim.test failed temporarily and could align with victim.test" },
	{ "DKIM temperror for the From domain", "victim.test", NULL, NULL, "victim.test",
	    MOAT_DMARC_TEMPERROR,
	    "DKIM for victim.test failed temporarily and could align with victim.test" },
	{ "SPF temperror below the organization, its walk failing", "victim.test", NULL,
	    "mail.victim.test", NULL, MOAT_DMARC_TEMPERROR, NULL },
	{ "the spoofer's SPF temperror", "victim.test", NULL, "evil.example", NULL, MOAT_DMARC_FAIL,
	    NULL },
	{ "the spoofer's DKIM temperror beside its SPF temperror", "victim.test", NULL,
	    "sibling.test", "evil.example", MOAT_DMARC_FAIL, NULL },
	{ "an aligned pass beside a temperror", "victim.test", "victim.test", NULL, "victim.test",
	    MOAT_DMARC_PASS, NULL },
	{ "strict SPF alignment: a subdomain cannot align", "strict.test", NULL, "mail.strict.test",
	    NULL, MOAT_DMARC_FAIL, NULL },
	{ "strict: the From domain itself can", "strict.test", NULL, "strict.test", NULL,
	    MOAT_DMARC_TEMPERROR, NULL },
};

Test(dmarc, temperror_of_an_identifier_that_could_align)
{
	struct moat_dns *d = err_zone();

	txt(d, "_dmarc.strict.test", "v=DMARC1; p=reject; aspf=s; adkim=s");
	host(d, "strict.test");
	for (size_t i = 0; i < sizeof(open_cases) / sizeof(open_cases[0]); i++) {
		const struct open_case *c = &open_cases[i];
		struct moat_dmarc_ids ids = { 0 };
		struct moat_dmarc_eval ev;

		ids.spf_domain = c->spf;
		ids.spf_open_domain = c->spf_open;
		if (c->dkim_open)
			ids.dkim_open_domains[ids.ndkim_open++] = c->dkim_open;
		cr_expect_eq(moat_dmarc_evaluate(d, c->from, &ids, &ev), c->res, "%s: %s (%s)",
		    c->label, moat_dmarc_result_name(ev.result), ev.reason);
		if (c->reason != NULL)
			cr_expect_str_eq(ev.reason, c->reason, "%s", c->label);
	}
	moat_dns_free(d);
}

Test(dmarc, dns_error_reasons)
{
	struct moat_dns *d = err_zone();
	struct moat_dmarc_ids ids = { .spf_domain = "mail.victim.test" };
	struct moat_dmarc_eval ev;

	moat_dmarc_evaluate(d, "victim.test", &ids, &ev);
	cr_expect_str_eq(ev.reason,
	    "DNS error deciding whether mail.victim.test aligns with victim.test");
	cr_expect_str_eq(ev.org_domain, "victim.test");
	ids.spf_domain = "evil.example";
	moat_dmarc_evaluate(d, "mail.corp.example", &ids, &ev);
	cr_expect_str_eq(ev.reason,
	    "DNS error deciding whether evil.example aligns with mail.corp.example");
	cr_expect_str_eq(ev.org_domain, "", "the From domain's Organizational Domain is not known");
	moat_dmarc_evaluate(d, "x.np.test", NULL, &ev);
	cr_expect_str_eq(ev.reason, "DNS error checking that x.np.test exists");
	moat_dns_free(d);
}
