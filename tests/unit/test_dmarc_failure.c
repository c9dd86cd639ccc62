/*
 * test_dmarc_failure.c - DMARC failure reports (dmarc_failure.c): fo= options, when a report is
 * due, the mailto: list parser, the per-hour limits, and the report itself (its fields, the
 * header redacted, Bcc left out, nothing of the body).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "auth.h"
#include "dmarc_failure.h"

struct fo_case {
	const char *label, *fo;
	unsigned want;
};

Test(dmarc_failure, fo_parse)
{
	static const struct fo_case cases[] = {
		{ "empty is the default 0", "", MOAT_DFR_FO_ALL },
		{ "0", "0", MOAT_DFR_FO_ALL },
		{ "1", "1", MOAT_DFR_FO_ANY },
		{ "d and s", "d:s", MOAT_DFR_FO_DKIM | MOAT_DFR_FO_SPF },
		{ "blanks around options", " 0 : d ", MOAT_DFR_FO_ALL | MOAT_DFR_FO_DKIM },
		{ "unknown options ignored", "x:1:zz", MOAT_DFR_FO_ANY },
		{ "nothing known is the default", "x:yy:", MOAT_DFR_FO_ALL },
		{ "upper case", "D:S", MOAT_DFR_FO_DKIM | MOAT_DFR_FO_SPF },
		{ "empty options", "::1::", MOAT_DFR_FO_ANY },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_expect_eq(moat_dfr_fo_parse(cases[i].fo, strlen(cases[i].fo)), cases[i].want,
		    "%s", cases[i].label);
	/* the length bounds the parse: bytes past it are never read */
	cr_expect_eq(moat_dfr_fo_parse("d:1", 1), MOAT_DFR_FO_DKIM);
}

struct due_case {
	const char *label;
	const char *fo, *ruf;
	enum moat_dmarc_res dmarc;
	bool spf_aligned, dkim_aligned;
	enum moat_spf_res spf;
	enum moat_dkim_res dkim; /* MOAT_DKIM_NONE: no signature */
	bool want;
};

Test(dmarc_failure, due)
{
	static const struct due_case cases[] = {
		{ "fo=0, dmarc fail", "0", "mailto:f@a.test", MOAT_DMARC_FAIL, false, false,
		    MOAT_SPF_FAIL, MOAT_DKIM_NONE, true },
		{ "fo=0, dmarc pass by SPF", "0", "mailto:f@a.test", MOAT_DMARC_PASS, true, false,
		    MOAT_SPF_PASS, MOAT_DKIM_NONE, false },
		{ "fo=1, dmarc pass by SPF, no aligned DKIM", "1", "mailto:f@a.test",
		    MOAT_DMARC_PASS, true, false, MOAT_SPF_PASS, MOAT_DKIM_NONE, true },
		{ "fo=1, both aligned", "1", "mailto:f@a.test", MOAT_DMARC_PASS, true, true,
		    MOAT_SPF_PASS, MOAT_DKIM_PASS, false },
		{ "fo=d, a failed signature under a pass", "d", "mailto:f@a.test", MOAT_DMARC_PASS,
		    true, false, MOAT_SPF_PASS, MOAT_DKIM_FAIL, true },
		{ "fo=d, no signature failed", "d", "mailto:f@a.test", MOAT_DMARC_FAIL, false,
		    false, MOAT_SPF_FAIL, MOAT_DKIM_NONE, false },
		{ "fo=s, SPF fail under a DKIM pass", "s", "mailto:f@a.test", MOAT_DMARC_PASS,
		    false, true, MOAT_SPF_FAIL, MOAT_DKIM_PASS, true },
		{ "fo=s, SPF softfail is not fail", "s", "mailto:f@a.test", MOAT_DMARC_FAIL, false,
		    false, MOAT_SPF_SOFTFAIL, MOAT_DKIM_NONE, false },
		{ "no ruf=", "0", "", MOAT_DMARC_FAIL, false, false, MOAT_SPF_FAIL, MOAT_DKIM_NONE,
		    false },
		{ "temperror never", "1", "mailto:f@a.test", MOAT_DMARC_TEMPERROR, false, false,
		    MOAT_SPF_TEMPERROR, MOAT_DKIM_NONE, false },
	};
	static struct moat_auth_results r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct due_case *c = &cases[i];
		memset(&r, 0, sizeof(r));
		strcpy(r.dmarc.policy_domain, "a.test");
		strcpy(r.dmarc.rec.fo, c->fo);
		strcpy(r.dmarc.rec.ruf, c->ruf);
		r.dmarc.result = c->dmarc;
		r.dmarc.spf_aligned = c->spf_aligned;
		r.dmarc.dkim_aligned = c->dkim_aligned;
		r.spf_mailfrom.result = c->spf;
		if (c->dkim != MOAT_DKIM_NONE) {
			r.ndkim = 1;
			r.dkim[0].result = c->dkim;
		}
		cr_expect_eq(moat_dfr_due(&r), c->want, "%s", c->label);
	}
}

static int
collect(const char *addr, uint64_t limit, void *arg)
{
	char *out = arg;
	size_t o = strlen(out);

	snprintf(out + o, 512 - o, "%s/%llu ", addr, (unsigned long long)limit);
	return 0;
}

Test(dmarc_failure, uri_each)
{
	char out[512] = "";

	moat_dmarc_uri_each(" mailto:a@x.test , MAILTO:b%40c@y.test!10k,http://z.test/,"
			    "mailto:no-at,mailto:sp ace@x.test,mailto:d@e.test!2m,mailto:<e@x.test>",
	    collect, out);
	cr_expect_str_eq(out, "a@x.test/0 d@e.test/2097152 ");
}

Test(dmarc_failure, limits)
{
	struct moat_dfr_limit *l = moat_dfr_limit_new();
	int64_t t = 7200 * 100;

	cr_assert_not_null(l);
	cr_expect(moat_dfr_limit_take(l, "domain", "a.test", 2, t));
	cr_expect(moat_dfr_limit_take(l, "domain", "A.TEST", 2, t + 1), "case-insensitive");
	cr_expect_not(moat_dfr_limit_take(l, "domain", "a.test", 2, t + 2), "the third this hour");
	cr_expect(moat_dfr_limit_take(l, "to", "a.test", 2, t + 2), "another kind, its own count");
	cr_expect(moat_dfr_limit_take(l, "domain", "b.test", 2, t + 2), "another key");
	cr_expect(moat_dfr_limit_take(l, "domain", "a.test", 2, t + MOAT_DFR_WINDOW_S),
	    "the next hour");
	moat_dfr_limit_free(l);
	moat_dfr_limit_free(NULL);
}

Test(dmarc_failure, limits_table_full)
{
	struct moat_dfr_limit *l = moat_dfr_limit_new();
	unsigned ok = 0;
	char key[32];

	cr_assert_not_null(l);
	for (unsigned i = 0; i < 3 * MOAT_DFR_LIMIT_SLOTS; i++) {
		snprintf(key, sizeof(key), "d%u.test", i);
		ok += moat_dfr_limit_take(l, "domain", key, 5, 3600);
	}
	cr_expect_leq(ok, MOAT_DFR_LIMIT_SLOTS, "a flood of keys never gets past the table");
	cr_expect_geq(ok, MOAT_DFR_LIMIT_SLOTS / 2);
	snprintf(key, sizeof(key), "d%u.test", 3 * MOAT_DFR_LIMIT_SLOTS);
	cr_expect(moat_dfr_limit_take(l, "domain", key, 5, 7200), "the next hour frees the table");
	moat_dfr_limit_free(l);
}

Test(dmarc_failure, build)
{
	static struct moat_auth_results r;
	static const char hdrs[] =
	    "Received: from x by mx (Postfix) with ESMTP\r\n\tfor <carol.x+tag@example.net>; now\r\n"
	    "From: Alice <alice@a.test>\r\n"
	    "To: Carol <carol@example.net>, dave@example.net\r\n"
	    "Bcc: hidden@example.net\r\n"
	    "Subject: hi\r\n";
	struct moat_dfr_input in = { .res = &r,
		.client_addr = "192.0.2.1",
		.mail_from = "bounce@a.test\x01",
		.headers = hdrs,
		.headers_len = sizeof(hdrs) - 1,
		.time = 86400,
		.user_agent = "mxmoat/test" };
	char *p, *b;

	memset(&r, 0, sizeof(r));
	strcpy(r.dmarc.from_domain, "a.test");
	strcpy(r.dmarc.policy_domain, "a.test");
	strcpy(r.authres_folded, "mx; dmarc=fail header.from=a.test");
	r.verdict.action = MOAT_REJECT;
	r.dmarc.result = MOAT_DMARC_FAIL;
	r.ndkim = 1;
	r.dkim[0].result = MOAT_DKIM_FAIL;
	strcpy(r.dkim[0].domain, "a.test");
	strcpy(r.dkim[0].selector, "s1");
	p = moat_dfr_build(&in);
	cr_assert_not_null(p);
	cr_expect(strncmp(p,
		      "Content-Type: multipart/report; report-type=feedback-report;\r\n"
		      "\tboundary=\"=_mxmoat_afrf_",
		      87) == 0,
	    "%s", p);
	b = strstr(p, "Feedback-Type:");
	cr_assert_not_null(b);
	cr_expect_null(strstr(b + 1, "Feedback-Type:"), "one feedback block");
	cr_expect_not_null(strstr(p,
	    "Feedback-Type: auth-failure\r\nUser-Agent: mxmoat/test\r\nVersion: 1\r\n"
	    "Auth-Failure: dmarc\r\nOriginal-Mail-From: <bounce@a.test?>\r\n"
	    "Arrival-Date: Fri, 02 Jan 1970 00:00:00 +0000\r\nSource-IP: 192.0.2.1\r\n"
	    "Reported-Domain: a.test\r\nDelivery-Result: reject\r\nIdentity-Alignment: none\r\n"
	    "DKIM-Domain: a.test\r\nDKIM-Selector: s1\r\n"
	    "Authentication-Results: mx; dmarc=fail header.from=a.test\r\n\r\n"));
	cr_expect_not_null(strstr(p,
	    "Content-Type: text/rfc822-headers\r\n\r\n"
	    "Received: from x by mx (Postfix) with ESMTP\r\n\tfor <redacted@example.net>; now\r\n"
	    "From: Alice <alice@a.test>\r\n"
	    "To: Carol <redacted@example.net>, redacted@example.net\r\n"
	    "Subject: hi\r\n\r\n--=_mxmoat_afrf_"));
	cr_expect_null(strstr(p, "hidden"), "Bcc is left out");
	cr_expect_null(strstr(p, "carol@"));
	free(p);
}
