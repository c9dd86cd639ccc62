/*
 * test_spf_macro.c - RFC 7208 section 7 macro expansion: the RFC's own examples (7.4), syntax
 * errors, URL escaping, 8-bit local parts, and the bounds.
 */
#include "config.h"

#include <string.h>

#include <criterion/criterion.h>

#include "spf_macro.h"

struct mcase {
	const char *label;
	const char *in;
	bool exp;
	long rc; /* >= 0: expect success and `out`; else the error */
	const char *out;
};

/* RFC 7208 7.4: sender strong-bad@email.example.com, client 192.0.2.3 */
static const struct mcase rfc_cases[] = {
	{ "s", "%{s}", false, 0, "strong-bad@email.example.com" },
	{ "o", "%{o}", false, 0, "email.example.com" },
	{ "d", "%{d}", false, 0, "email.example.com" },
	{ "d4", "%{d4}", false, 0, "email.example.com" },
	{ "d3", "%{d3}", false, 0, "email.example.com" },
	{ "d2", "%{d2}", false, 0, "example.com" },
	{ "d1", "%{d1}", false, 0, "com" },
	{ "dr", "%{dr}", false, 0, "com.example.email" },
	{ "d2r", "%{d2r}", false, 0, "example.email" },
	{ "l", "%{l}", false, 0, "strong-bad" },
	{ "l-", "%{l-}", false, 0, "strong.bad" },
	{ "lr", "%{lr}", false, 0, "strong-bad" },
	{ "lr-", "%{lr-}", false, 0, "bad.strong" },
	{ "l1r-", "%{l1r-}", false, 0, "strong" },
	{ "ir v d2", "%{ir}.%{v}._spf.%{d2}", false, 0, "3.2.0.192.in-addr._spf.example.com" },
	{ "lr- d2", "%{lr-}.lp._spf.%{d2}", false, 0, "bad.strong.lp._spf.example.com" },
	{ "lr- ir v d2", "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", false, 0,
	    "bad.strong.lp.3.2.0.192.in-addr._spf.example.com" },
	{ "ir v l1r- d2", "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", false, 0,
	    "3.2.0.192.in-addr.strong.lp._spf.example.com" },
	{ "d2 trusted", "%{d2}.trusted-domains.example.net", false, 0,
	    "example.com.trusted-domains.example.net" },
	{ "escapes", "a%%b%_c%-d", false, 0, "a%b c%20d" },
	{ "upper case escapes", "%{L}", false, 0, "strong-bad" },
	{ "url escape of s", "%{S}", false, 0, "strong-bad%40email.example.com" },
	{ "h", "%{h}", false, 0, "mx.example.org" },
	{ "p without resolver", "%{p}", false, 0, "unknown" },
	{ "c in exp", "%{c}", true, 0, "192.0.2.3" },
	{ "r in exp", "%{r}", true, 0, "receiver.test" },
	{ "t in exp", "%{t}", true, 0, "1700000000" },
	{ "space allowed in exp", "a b", true, 0, "a b" },
	{ "huge digit transformer is capped", "%{d99999999999}", false, 0, "email.example.com" },
	{ "multiple delimiters", "%{l-.}", false, 0, "strong.bad" },
	/* syntax errors: permerror */
	{ "c outside exp", "%{c}", false, MOAT_SPF_MACRO_SYNTAX, NULL },
	{ "r outside exp", "%{r}", false, MOAT_SPF_MACRO_SYNTAX, NULL },
	{ "t outside exp", "%{t}", false, MOAT_SPF_MACRO_SYNTAX, NULL },
	{ "unknown letter", "%{x}", false, MOAT_SPF_MACRO_SYNTAX, NULL },
	{ "zero digits", "%{d0}", false, MOAT_SPF_MACRO_SYNTAX, NULL },
	{ "lone percent", "%", false, MOAT_SPF_MACRO_SYNTAX, NULL },
	{ "percent letter", "%a", false, MOAT_SPF_MACRO_SYNTAX, NULL },
	{ "unclosed", "%{d", false, MOAT_SPF_MACRO_SYNTAX, NULL },
	{ "bad transformer", "%{d2x}", false, MOAT_SPF_MACRO_SYNTAX, NULL },
	{ "space outside exp", "a b", false, MOAT_SPF_MACRO_SYNTAX, NULL },
	{ "8-bit literal", "\xc3\xa9", false, MOAT_SPF_MACRO_SYNTAX, NULL },
};

static void
ctx_init(struct moat_spf_macro_ctx *m, struct moat_addr *client, const char *local)
{
	cr_assert_eq(moat_addr_parse("192.0.2.3", client), 0);
	memset(m, 0, sizeof(*m));
	m->local = local;
	m->sender_domain = "email.example.com";
	m->domain = "email.example.com";
	m->helo = "mx.example.org";
	m->receiver = "receiver.test";
	m->client = client;
	m->now = 1700000000;
}

Test(spf_macro, rfc7208_examples_and_errors)
{
	struct moat_spf_macro_ctx m;
	struct moat_addr client;
	char out[512];
	size_t i;

	ctx_init(&m, &client, "strong-bad");
	for (i = 0; i < sizeof(rfc_cases) / sizeof(rfc_cases[0]); i++) {
		const struct mcase *c = &rfc_cases[i];
		long rc = moat_spf_macro_expand(&m, c->in, strlen(c->in), c->exp, out, sizeof(out));
		if (c->rc >= 0) {
			cr_expect_geq(rc, 0, "%s: rc %ld", c->label, rc);
			if (rc >= 0) {
				cr_expect_str_eq(out, c->out, "%s", c->label);
				cr_expect_eq((size_t)rc, strlen(c->out), "%s", c->label);
			}
		} else {
			cr_expect_eq(rc, c->rc, "%s: rc %ld", c->label, rc);
		}
		/* syntax-only mode agrees on errors */
		cr_expect_eq(moat_spf_macro_expand(NULL, c->in, strlen(c->in), c->exp, NULL, 0) < 0,
		    c->rc == MOAT_SPF_MACRO_SYNTAX, "%s (syntax only)", c->label);
	}
}

Test(spf_macro, ipv6_nibbles)
{
	struct moat_spf_macro_ctx m;
	struct moat_addr client;
	char out[512];

	ctx_init(&m, &client, "strong-bad");
	cr_assert_eq(moat_addr_parse("2001:db8::cb01", &client), 0);
	cr_assert_geq(moat_spf_macro_expand(&m, "%{ir}.%{v}._spf.%{d2}", 21, false, out,
			  sizeof(out)),
	    0);
	cr_expect_str_eq(out,
	    "1.0.B.C.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2.ip6._spf.example.com");
	cr_assert_geq(moat_spf_macro_expand(&m, "%{c}", 4, true, out, sizeof(out)), 0);
	cr_expect_str_eq(out, "2001:db8::cb01");
}

Test(spf_macro, eight_bit_local_parts)
{
	struct moat_spf_macro_ctx m;
	struct moat_addr client;
	char out[512];

	/* bytes >= 0x80 are copied as bytes by %{l} / %{lr} and %-escaped by %{L} */
	ctx_init(&m, &client, "\xc3\xa9t\xc3\xa9.\xff\x80");
	cr_assert_eq(moat_spf_macro_expand(&m, "%{l}", 4, false, out, sizeof(out)), 8);
	cr_expect_str_eq(out, "\xc3\xa9t\xc3\xa9.\xff\x80");
	cr_assert_eq(moat_spf_macro_expand(&m, "%{lr}", 5, false, out, sizeof(out)), 8);
	cr_expect_str_eq(out, "\xff\x80.\xc3\xa9t\xc3\xa9");
	cr_assert_geq(moat_spf_macro_expand(&m, "%{L}", 4, false, out, sizeof(out)), 0);
	cr_expect_str_eq(out, "%C3%A9t%C3%A9.%FF%80");
	cr_assert_geq(moat_spf_macro_expand(&m, "%{Lr}", 5, false, out, sizeof(out)), 0);
	cr_expect_str_eq(out, "%FF%80.%C3%A9t%C3%A9");
}

Test(spf_macro, bounds)
{
	struct moat_spf_macro_ctx m;
	struct moat_addr client;
	char local[MOAT_SPF_MACRO_VALUE_MAX + 2];
	char out[64], big[8192];

	ctx_init(&m, &client, "strong-bad");
	/* output buffer too small: an error, never a cut */
	cr_expect_eq(moat_spf_macro_expand(&m, "%{s}%{s}%{s}", 12, false, out, sizeof(out)),
	    MOAT_SPF_MACRO_TOOLONG);
	cr_expect_eq(moat_spf_macro_expand(&m, "%{d}", 4, false, out, 5), MOAT_SPF_MACRO_TOOLONG);
	cr_expect_eq(moat_spf_macro_expand(&m, "%{d}", 4, false, out, 0), MOAT_SPF_MACRO_TOOLONG);
	/* exactly fits: 17 bytes + NUL */
	cr_expect_eq(moat_spf_macro_expand(&m, "%{d}", 4, false, out, 18), 17);
	/* a local part past MOAT_SPF_MACRO_VALUE_MAX */
	memset(local, '.', sizeof(local) - 1);
	local[sizeof(local) - 1] = '\0';
	m.local = local;
	cr_expect_eq(moat_spf_macro_expand(&m, "%{l}", 4, false, big, sizeof(big)),
	    MOAT_SPF_MACRO_TOOLONG);
	/* 1024 dots: 1025 empty parts, reversed and joined, stays in bounds */
	local[MOAT_SPF_MACRO_VALUE_MAX] = '\0';
	cr_expect_eq(moat_spf_macro_expand(&m, "%{lr}", 5, false, big, sizeof(big)), 1024);
	cr_expect_eq(moat_spf_macro_expand(&m, "%{L}", 4, false, big, sizeof(big)), 1024);
	cr_expect_eq(moat_spf_macro_expand(&m, "%{l2}", 5, false, big, sizeof(big)), 1);
}

Test(spf_macro, truncate_domain)
{
	char name[600];
	size_t i;

	/* 5 labels of 63 bytes: 319 bytes; dropping two leaves 3*63+2 = 191 */
	for (i = 0; i < 5 * 64 - 1; i++)
		name[i] = (i % 64 == 63) ? '.' : (char)('a' + (int)(i / 64));
	name[5 * 64 - 1] = '\0';
	cr_expect_eq(strlen(moat_spf_truncate_domain(name)), 191u);
	cr_expect_eq(moat_spf_truncate_domain(name)[0], 'c');
	cr_expect_str_eq(moat_spf_truncate_domain("example.com"), "example.com");
	memset(name, 'x', 300);
	name[300] = '\0';
	cr_expect_str_eq(moat_spf_truncate_domain(name), "");
}
