/*
 * test_text.c - the shared text helpers (src/text.c): DNS names as DKIM and Authentication-Results
 * write them, and strict base64 with its output bound.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "text.h"

struct name_case {
	const char *label;
	const char *name;
	bool ok;
};

#define L63 "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123"

static const struct name_case names[] = {
	{ "domain", "example.com", true },
	{ "selector with underscore and hyphen", "s_2026-r", true },
	{ "one label", "localhost", true },
	{ "63-byte label", L63 ".example", true },
	{ "64-byte label", L63 "4.example", false },
	{ "empty", "", false },
	{ "leading dot", ".example.com", false },
	{ "trailing dot", "example.com.", false },
	{ "empty label", "example..com", false },
	{ "space", "exa mple.com", false },
	{ "quote", "example\".com", false },
	{ "non-ASCII", "ex\xc3\xa4mple.com", false },
};

Test(text, ldh_names)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		cr_expect_eq(moat_ldh_name(names[i].name, strlen(names[i].name)), names[i].ok, "%s",
		    names[i].label);
}

Test(text, ldh_name_total_length)
{
	char name[300];
	size_t n = 0;

	/* 3 labels of 63 and one of 61, with dots: 253 bytes, then 254 */
	for (int l = 0; l < 3; l++) {
		memcpy(name + n, L63, 63);
		n += 63;
		name[n++] = '.';
	}
	memset(name + n, 'a', 61);
	n += 61;
	cr_assert_eq(n, 253);
	cr_expect(moat_ldh_name(name, n), "253 bytes");
	name[n++] = 'a';
	cr_expect_not(moat_ldh_name(name, n), "254 bytes");
	/* N counts, not a NUL: a longer buffer is not read past N */
	cr_expect(moat_ldh_name("example.com!!!", 11));
}

struct b64_case {
	const char *label;
	const char *in;
	bool valid; /* moat_base64_valid */
	long n; /* moat_base64_decode into outmax bytes: length, or -1 */
	const char *out; /* the n decoded bytes */
	size_t outmax;
};

static const struct b64_case b64[] = {
	{ "empty", "", true, 0, "", 8 },
	{ "no padding", "Zm9v", true, 3, "foo", 8 },
	{ "one pad", "Zm9vYmE=", true, 5, "fooba", 8 },
	{ "two pads", "Zm9vYg==", true, 4, "foob", 8 },
	{ "all of + / 0 9 A Z a z", "+/09AZaz", true, 6, "\xfb\xfd\x3d\x01\x96\xb3", 8 },
	{ "length not a multiple of 4", "Zm9", false, -1, NULL, 8 },
	{ "pad in the middle", "Zg==Zm9v", false, -1, NULL, 8 },
	{ "pad in the first half of a group", "Z===", false, -1, NULL, 8 },
	{ "'=' then a letter", "Zm=v", false, -1, NULL, 8 },
	{ "white space", "Zm9v YmFy", false, -1, NULL, 16 },
	{ "URL-safe alphabet", "Zm9-", false, -1, NULL, 8 },
	{ "exactly outmax", "Zm9vYmFy", true, 6, "foobar", 6 },
	{ "one byte over outmax", "Zm9vYmFy", true, -1, NULL, 5 },
	{ "66 bytes into 64",
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	    true, -1, NULL, 64 },
};

Test(text, base64)
{
	for (size_t i = 0; i < sizeof(b64) / sizeof(b64[0]); i++) {
		const struct b64_case *c = &b64[i];
		unsigned char buf[80];
		long n;

		/* a canary right after the bound: the decoder never writes past outmax */
		memset(buf, 0xa5, sizeof(buf));
		n = moat_base64_decode(c->in, strlen(c->in), buf, c->outmax);
		cr_expect_eq(buf[c->outmax], 0xa5, "%s: nothing written past outmax", c->label);
		cr_expect_eq(moat_base64_valid(c->in, strlen(c->in)), c->valid, "%s: valid",
		    c->label);
		cr_expect_eq(n, c->n, "%s: %ld, want %ld", c->label, n, c->n);
		if (c->out != NULL && n == c->n)
			cr_expect_eq(memcmp(buf, c->out, (size_t)n), 0, "%s: bytes", c->label);
	}
}
