/*
 * test_dkim_verify.c - our DKIM-Signature tag-list parser (what we read before libopendkim does:
 * d=, s=, a=, the b= prefix, l=), and the verifier's handling of unsigned messages. Verification
 * itself is in test_auth.c and tests/e2e/dkim_cross.sh (against python3-dkim).
 */
#include "config.h"

#include <string.h>

#include <criterion/criterion.h>

#include "dkim_verify.h"

struct tag_case {
	const char *label;
	const char *value;
	int ret;
	const char *d, *s, *a, *b;
	long l;
};

static const struct tag_case cases[] = {
	{ "typical", " v=1; a=rsa-sha256; c=relaxed/relaxed; d=Example.COM; s=sel;\r\n\th=from:to; bh=abc=; b=ABCD\r\n EFGHIJ", 0,
	  "example.com", "sel", "rsa-sha256", "ABCDEFGH", -1 },
	{ "trailing semicolon", "d=example.com; s=s1; b=xy;", 0, "example.com", "s1", "", "xy", -1 },
	{ "l tag", "d=example.com; s=s1; l=1234", 0, "example.com", "s1", "", "", 1234 },
	{ "ed25519", "a=ed25519-sha256; d=a.b.example; s=2026._x", 0, "a.b.example", "2026._x", "ed25519-sha256", "", -1 },
	{ "missing d", "s=s1; b=x", -1, NULL, NULL, NULL, NULL, 0 },
	{ "missing s", "d=example.com; b=x", -1, NULL, NULL, NULL, NULL, 0 },
	{ "duplicate d", "d=example.com; s=s1; d=evil.test", -1, NULL, NULL, NULL, NULL, 0 },
	{ "quote in d", "d=exa\"mple.com; s=s1", -1, NULL, NULL, NULL, NULL, 0 },
	{ "semicolon-less garbage", "d=example.com; s=s1; junk", -1, NULL, NULL, NULL, NULL, 0 },
	{ "empty d", "d=; s=s1", -1, NULL, NULL, NULL, NULL, 0 },
	{ "empty element", "d=example.com;; s=s1", -1, NULL, NULL, NULL, NULL, 0 },
	{ "tag name with digit first", "1d=example.com; d=example.com; s=s1", -1, NULL, NULL, NULL, NULL, 0 },
	{ "8-bit in value", "d=ex\xc3\xa4mple.com; s=s1", -1, NULL, NULL, NULL, NULL, 0 },
	{ "label too long", "d=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com; s=s1", -1, NULL, NULL, NULL, NULL, 0 },
	{ "negative l", "d=example.com; s=s1; l=-1", -1, NULL, NULL, NULL, NULL, 0 },
	{ "huge l", "d=example.com; s=s1; l=99999999999999999999999", -1, NULL, NULL, NULL, NULL, 0 },
	{ "dot-dot domain", "d=example..com; s=s1", -1, NULL, NULL, NULL, NULL, 0 },
	{ "space inside d", "d=exa mple.com; s=s1", -1, NULL, NULL, NULL, NULL, 0 },
};

Test(dkim_verify, sig_tags)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct tag_case *c = &cases[i];
		struct moat_dkim_sig s;
		int ret = moat_dkim_sig_tags(c->value, strlen(c->value), &s);

		cr_expect_eq(ret, c->ret, "%s: %d", c->label, ret);
		if (ret != 0 || c->ret != 0)
			continue;
		cr_expect_str_eq(s.domain, c->d, "%s", c->label);
		cr_expect_str_eq(s.selector, c->s, "%s", c->label);
		cr_expect_str_eq(s.alg, c->a, "%s", c->label);
		cr_expect_str_eq(s.b, c->b, "%s", c->label);
		cr_expect_eq((long)s.body_signed, c->l, "%s", c->label);
	}
}

Test(dkim_verify, nul_in_value)
{
	struct moat_dkim_sig s;

	cr_expect_eq(moat_dkim_sig_tags("d=example.com\0.evil; s=s1", 25, &s), -1);
}

Test(dkim_verify, unsigned_message_has_no_results)
{
	struct moat_dns *dns = moat_dns_new_fixture();
	struct moat_dkim_verifier *v = moat_dkim_verifier_new(dns, NULL);
	struct moat_dkim_msg *m;
	struct moat_dkim_sig sigs[4];
	static const char *hdrs[] = { "Date: Sun, 22 Nov 2026 21:00:00 +0000", "From: a@example.com",
		"Subject: x" };

	cr_assert_not_null(v);
	m = moat_dkim_msg_new(v);
	cr_assert_not_null(m);
	for (size_t i = 0; i < 3; i++)
		moat_dkim_header(m, hdrs[i], strlen(hdrs[i]));
	moat_dkim_eoh(m);
	moat_dkim_body(m, "hi\r\n", 4);
	cr_expect_eq(moat_dkim_eom(m, sigs, 4), 0u);
	cr_expect_eq(moat_dns_fixture_queries(dns), 0u);
	moat_dkim_msg_free(m);
	moat_dkim_verifier_free(v);
	moat_dns_free(dns);
}

Test(dkim_verify, signature_after_a_refused_header_is_permerror)
{
	struct moat_dns *dns = moat_dns_new_fixture();
	struct moat_dkim_verifier *v = moat_dkim_verifier_new(dns, NULL);
	struct moat_dkim_msg *m;
	struct moat_dkim_sig sigs[4];
	static const char *hdrs[] = { "From: a@example.com", "From: b@example.com",
		"Date: Sun, 22 Nov 2026 21:00:00 +0000",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; bh=AAAA; b=AAAA" };
	size_t n;

	cr_assert_not_null(v);
	m = moat_dkim_msg_new(v);
	cr_assert_not_null(m);
	for (size_t i = 0; i < 4; i++)
		moat_dkim_header(m, hdrs[i], strlen(hdrs[i]));
	moat_dkim_eoh(m);
	moat_dkim_body(m, "hi\r\n", 4);
	n = moat_dkim_eom(m, sigs, 4);
	cr_assert_eq(n, 1u, "two From fields: libopendkim (STRICTHDRS) refuses the message");
	cr_expect_eq(sigs[0].result, MOAT_DKIM_PERMERROR, "%s", moat_dkim_result_name(sigs[0].result));
	cr_expect_eq(moat_dns_fixture_queries(dns), 0u, "no key fetched");
	moat_dkim_msg_free(m);
	moat_dkim_verifier_free(v);
	moat_dns_free(dns);
}
