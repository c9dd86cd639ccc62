/*
 * test_arc.c - ARC verification (arc_verify.c) without the network: the reading of
 * ARC-Authentication-Results values (what arc_trusted_sealers trusts), and every structural
 * failure of a chain, which is decided before any key is fetched. Chains that verify, and broken
 * ones, are checked against python3-dkim in tests/e2e/arc_cross.sh.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "arc_verify.h"
#include "authres.h"

struct aar_case {
	const char *label;
	const char *value;
	int ret; /* identifiers, or -1 */
	const char *ids; /* "spf:domain dkim:domain ..." */
};

static const struct aar_case aar_cases[] = {
	{ "typical",
	    " i=1; lists.example;\r\n\tspf=pass smtp.mailfrom=alice@Author.TEST;\r\n\tdkim=pass header.d=author.test header.s=sel; dmarc=pass header.from=author.test",
	    2, "spf:author.test dkim:author.test" },
	{ "only passes count",
	    "i=2; mx.example; dkim=fail header.d=a.test; dkim=pass header.i=@b.test", 1,
	    "dkim:b.test" },
	{ "spf pass for the HELO identity is not a mailfrom", "i=1; mx; spf=pass smtp.helo=c.test",
	    0, "" },
	{ "comments and a quoted local-part",
	    "i=1; mx (the (nested) one); spf=pass (good) smtp.mailfrom=\"x y\"@c.test", 1,
	    "spf:c.test" },
	{ "authserv-id version", "i=1; mx 1; spf=pass smtp.mailfrom=a@d.test", 1, "spf:d.test" },
	{ "method version and reason", "i=1; mx; dkim/1=pass reason=\"ok; fine\" header.d=e.test",
	    1, "dkim:e.test" },
	{ "no result", "i=1; mx; none", 0, "" },
	{ "trailing semicolon", "i=1; mx; spf=pass smtp.mailfrom=a@d.test;", 1, "spf:d.test" },
	{ "a quoted domain that is not a name",
	    "i=1; mx; dkim=pass header.d=\"evil.test; dkim=pass\"", 0, "" },
	{ "no instance", "mx; spf=pass smtp.mailfrom=a@d.test", -1, "" },
	{ "instance without semicolon", "i=1 mx; spf=pass", -1, "" },
	{ "method without result", "i=1; mx; spf", -1, "" },
	{ "property without value", "i=1; mx; spf=pass smtp.mailfrom", -1, "" },
	{ "comment that does not end", "i=1; mx (; spf=pass smtp.mailfrom=a@d.test", -1, "" },
	{ "comments nested 9 deep", "i=1; mx (((((((((x))))))))); spf=pass", -1, "" },
	{ "quote that does not end", "i=1; mx; spf=pass smtp.mailfrom=\"a@d.test", -1, "" },
};

/* ids_text - the identifiers as "spf:d dkim:d". */
static void
ids_text(const struct moat_arc_aar_id *ids, int n, char *out, size_t outlen)
{
	size_t o = 0;

	out[0] = '\0';
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(out + o, outlen - o, "%s%s:%s", i ? " " : "",
		    ids[i].spf ? "spf" : "dkim", ids[i].domain);
}

Test(arc, aar_ids)
{
	for (size_t i = 0; i < sizeof(aar_cases) / sizeof(aar_cases[0]); i++) {
		const struct aar_case *c = &aar_cases[i];
		struct moat_arc_aar_id ids[8];
		char got[512];
		int n = moat_arc_aar_ids(c->value, strlen(c->value), ids, 8);
		cr_expect_eq(n, c->ret, "%s: %d identifiers, want %d", c->label, n, c->ret);
		if (n >= 0) {
			ids_text(ids, n, got, sizeof(got));
			cr_expect_str_eq(got, c->ids, "%s", c->label);
		}
	}
}

Test(arc, aar_ids_bounded_by_max)
{
	static const char v[] =
	    "i=1; mx; dkim=pass header.d=a.test; dkim=pass header.d=b.test; dkim=pass header.d=c.test";
	struct moat_arc_aar_id ids[2];

	cr_expect_eq(moat_arc_aar_ids(v, strlen(v), ids, 2), 2);
	cr_expect_str_eq(ids[1].domain, "b.test");
	cr_expect_eq(moat_arc_aar_ids("i=1; mx\0; spf=pass", 18, ids, 2), -1, "a NUL");
}

/* A chain's fields: the ARC sets are structurally checked before any key is needed. */
#define AS(i, cv) "ARC-Seal: i=" i "; a=rsa-sha256; cv=" cv "; d=s.test; s=k; t=1; b=AAAA"
#define AMS(i) \
	"ARC-Message-Signature: i=" i \
	"; a=rsa-sha256; c=relaxed/relaxed; d=s.test; s=k; h=from; bh=AAAA; b=AAAA"
#define AAR(i) "ARC-Authentication-Results: i=" i "; s.test; spf=pass smtp.mailfrom=a@b.test"

struct chain_case {
	const char *label;
	const char *fields[8];
	unsigned cap;
	enum moat_arc_res result;
	const char *reason;
};

static const struct chain_case chain_cases[] = {
	{ "no ARC field", { "From: a@b.test", "Subject: x" }, 50, MOAT_ARC_NONE, "" },
	{ "duplicate seal", { AS("1", "none"), AS("1", "none"), AMS("1"), AAR("1") }, 50,
	    MOAT_ARC_FAIL, "duplicate ARC-Seal for instance 1" },
	{ "missing AAR", { AS("1", "none"), AMS("1") }, 50, MOAT_ARC_FAIL,
	    "no ARC-Authentication-Results for instance 1" },
	{ "gap: instance 2 without 1", { AS("2", "pass"), AMS("2"), AAR("2") }, 50, MOAT_ARC_FAIL,
	    "no ARC-Authentication-Results for instance 1" },
	{ "instance 51", { AS("51", "pass") }, 50, MOAT_ARC_FAIL,
	    "ARC-Seal instance 51 is above 50" },
	{ "instance over the cap", { AAR("3") }, 2, MOAT_ARC_FAIL,
	    "ARC-Authentication-Results instance 3 is above arc_max_instances" },
	{ "instance 0", { AMS("0") }, 50, MOAT_ARC_FAIL,
	    "ARC-Message-Signature without a valid instance" },
	{ "instance not a number", { AAR("x") }, 50, MOAT_ARC_FAIL,
	    "ARC-Authentication-Results without a valid instance" },
	{ "instance of 4 digits", { AS("0001", "none") }, 50, MOAT_ARC_FAIL,
	    "ARC-Seal without a valid instance" },
	{ "malformed seal tags", { "ARC-Seal: i=1; d=s.test; s=k; i=1" }, 50, MOAT_ARC_FAIL,
	    "malformed ARC-Seal tag list" },
	{ "newest seal says cv=fail", { AS("1", "fail"), AMS("1"), AAR("1") }, 50, MOAT_ARC_FAIL,
	    "ARC-Seal 1 says cv=fail" },
	{ "names in any case, blank before the colon",
	    { "arc-seal : i=1; a=rsa-sha256; cv=none; d=s.test; s=k; b=AAAA",
		"ARC-SEAL: i=1; a=rsa-sha256; cv=none; d=s.test; s=k; b=AAAA" },
	    50, MOAT_ARC_FAIL, "duplicate ARC-Seal for instance 1" },
};

Test(arc, chain_structure)
{
	struct moat_dkim_verifier *v = moat_dkim_verifier_new(NULL, NULL);

	cr_assert_not_null(v);
	for (size_t i = 0; i < sizeof(chain_cases) / sizeof(chain_cases[0]); i++) {
		const struct chain_case *c = &chain_cases[i];
		struct moat_arc_msg *m = moat_arc_msg_new(v, c->cap);
		const struct moat_arc_result *r;
		cr_assert_not_null(m);
		for (size_t k = 0; k < 8 && c->fields[k] != NULL; k++)
			moat_arc_header(m, c->fields[k], strlen(c->fields[k]));
		moat_arc_eoh(m);
		moat_arc_body(m, "body\r\n", 6);
		r = moat_arc_eom(m);
		cr_expect_eq(r->result, c->result, "%s: %s", c->label,
		    moat_arc_result_name(r->result));
		cr_expect_str_eq(r->reason, c->reason, "%s", c->label);
		cr_expect_eq(moat_arc_eom(m), r, "%s: eom is answered once", c->label);
		moat_arc_msg_free(m);
	}
	moat_dkim_verifier_free(v);
}

Test(arc, field_too_large)
{
	struct moat_dkim_verifier *v = moat_dkim_verifier_new(NULL, NULL);
	struct moat_arc_msg *m = moat_arc_msg_new(v, 50);
	size_t n = MOAT_DKIM_SIG_FIELD_MAX + 1;
	char *f = malloc(n + 1);

	cr_assert_not_null(f);
	memset(f, 'x', n);
	memcpy(f, "ARC-Authentication-Results: i=1; ", 33);
	f[n] = '\0';
	moat_arc_header(m, f, n);
	cr_expect_str_eq(moat_arc_eom(m)->reason, "ARC-Authentication-Results field too large");
	free(f);
	moat_arc_msg_free(m);
	moat_dkim_verifier_free(v);
}

Test(arc, more_fields_than_fifty_sets)
{
	struct moat_dkim_verifier *v = moat_dkim_verifier_new(NULL, NULL);
	struct moat_arc_msg *m = moat_arc_msg_new(v, 50);
	static const char aar[] = AAR("1");

	for (int i = 0; i < 151; i++)
		moat_arc_header(m, aar, sizeof(aar) - 1);
	cr_expect_str_eq(moat_arc_eom(m)->reason, "more ARC fields than 50 sets hold");
	moat_arc_msg_free(m);
	moat_dkim_verifier_free(v);
}

Test(arc, authres_comment)
{
	char buf[256];
	struct moat_authres ar;

	moat_authres_init(&ar, buf, sizeof(buf), "mx.test");
	moat_authres_method(&ar, "dmarc", "fail", NULL);
	moat_authres_prop(&ar, "policy", "dmarc", "reject");
	cr_expect_eq(moat_authres_comment(&ar, "override (x); y\\z\r\n"), 0);
	cr_expect_str_eq(buf,
	    "mx.test; dmarc=fail policy.dmarc=reject (override ?x?"
	    "? y?z?"
	    "?)");
}
