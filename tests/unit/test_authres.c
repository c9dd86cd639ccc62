/*
 * test_authres.c - the Authentication-Results writer: exact bytes, and values a hostile domain
 * or address cannot break out of (RFC 8601 2.2, RFC 2045 token/quoted-string).
 */
#include "config.h"

#include <string.h>

#include <criterion/criterion.h>

#include "authres.h"

struct vcase {
	const char *label;
	const char *in;
	const char *out;
};

static const struct vcase vcases[] = {
	{ "domain", "example.com", "example.com" },
	{ "address", "user@example.com", "user@example.com" },
	{ "address with atext", "a+b=c@example.com", "a+b=c@example.com" },
	{ "no local part", "@example.com", "@example.com" },
	{ "semicolon starts a new resinfo", "x@spf.test;dkim=pass", "\"x@spf.test;dkim=pass\"" },
	{ "space then property", "example.com smtp.helo=evil", "\"example.com smtp.helo=evil\"" },
	{ "comment opener", "a@legit.test(a.attack.test", "\"a@legit.test(a.attack.test\"" },
	{ "quote and backslash", "x\"y\\z", "\"x\\\"y\\\\z\"" },
	{ "CR LF header injection", "a.test\r\nX-Evil: 1", "\"a.test??X-Evil: 1\"" },
	{ "8-bit", "\xc3\xa9.test", "\"??.test\"" },
	{ "empty", "", "\"\"" },
	{ "double dot local part", "a..b@example.com", "\"a..b@example.com\"" },
};

Test(authres, value_table)
{
	char out[256];
	size_t i;

	for (i = 0; i < sizeof(vcases) / sizeof(vcases[0]); i++) {
		long n = moat_authres_value(vcases[i].in, out, sizeof(out));
		cr_expect_str_eq(out, vcases[i].out, "%s", vcases[i].label);
		cr_expect_eq(n, (long)strlen(vcases[i].out), "%s", vcases[i].label);
	}
}

Test(authres, value_bounds)
{
	char out[8];

	cr_expect_eq(moat_authres_value("example.com", out, sizeof(out)), -1);
	cr_expect_str_eq(out, "");
	cr_expect_eq(moat_authres_value("a b c d e", out, sizeof(out)), -1);
	cr_expect_str_eq(out, "");
	cr_expect_eq(moat_authres_value("abc", out, 0), -1);
	cr_expect_eq(moat_authres_value("a b", out, sizeof(out)), 5);
}

Test(authres, header)
{
	char buf[512];
	struct moat_authres ar;

	cr_assert_eq(moat_authres_init(&ar, buf, sizeof(buf), "mx.example.net"), 0);
	cr_assert_eq(moat_authres_method(&ar, "spf", "pass", NULL), 0);
	cr_assert_eq(moat_authres_prop(&ar, "smtp", "mailfrom", "a@example.com"), 0);
	cr_assert_eq(moat_authres_method(&ar, "spf", "permerror", "too \"many\" lookups"), 0);
	cr_assert_eq(moat_authres_prop(&ar, "smtp", "helo", "x;y"), 0);
	cr_assert_eq(moat_authres_finish(&ar), 0);
	cr_expect_str_eq(buf,
	    "mx.example.net; spf=pass smtp.mailfrom=a@example.com; "
	    "spf=permerror reason=\"too \\\"many\\\" lookups\" smtp.helo=\"x;y\"");
}

Test(authres, none_and_overflow)
{
	char buf[64];
	struct moat_authres ar;

	cr_assert_eq(moat_authres_init(&ar, buf, sizeof(buf), "mx.test"), 0);
	cr_assert_eq(moat_authres_finish(&ar), 0);
	cr_expect_str_eq(buf, "mx.test; none");
	cr_assert_eq(moat_authres_init(&ar, buf, 24, "mx.test"), 0);
	cr_expect_eq(moat_authres_method(&ar, "spf", "pass", NULL), 0);
	cr_expect_eq(moat_authres_prop(&ar, "smtp", "mailfrom", "averylongaddress@example.com"),
	    -1);
	cr_expect(ar.over);
	cr_expect_eq(moat_authres_finish(&ar), -1);
	cr_expect_lt(strlen(buf), 24u);
}
