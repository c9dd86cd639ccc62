/*
 * test_from.c - the RFC5322.From parser DMARC relies on: valid mailboxes give the exact domain,
 * and the "Composition Kills" (USENIX Security 2020) / espoofer ambiguities are refused with a
 * reason, never a pass and never a crash.
 */
#include "config.h"

#include <string.h>

#include <criterion/criterion.h>

#include "rfc5322_from.h"

struct from_case {
	const char *label;
	const char *fields[4]; /* raw header fields, NULL-terminated */
	enum moat_from_status status;
	const char *domain; /* expected on OK */
	const char *local; /* expected on OK (NULL: not checked) */
	const char *why; /* expected on error (NULL: not checked) */
};

static const struct from_case cases[] = {
	/* valid */
	{ "bare addr-spec", { "From: alice@example.com" }, MOAT_FROM_OK, "example.com", "alice",
	    NULL },
	{ "name-addr", { "From: Alice <alice@Example.COM>" }, MOAT_FROM_OK, "example.com", "alice",
	    NULL },
	{ "quoted display name", { "From: \"Doe, Alice\" <alice@example.com>" }, MOAT_FROM_OK,
	    "example.com", "alice", NULL },
	{ "quoted local-part", { "From: \"a b\"@example.com" }, MOAT_FROM_OK, "example.com", "a b",
	    NULL },
	{ "comment around", { "From: (c) alice@example.com (x)" }, MOAT_FROM_OK, "example.com",
	    "alice", NULL },
	{ "folded display name", { "From: Alice\r\n Smith <alice@example.com>" }, MOAT_FROM_OK,
	    "example.com", "alice", NULL },
	{ "lower-case name", { "from: alice@example.com" }, MOAT_FROM_OK, "example.com", "alice",
	    NULL },
	{ "harmless encoded-word name", { "From: =?utf-8?q?Alice_Smith?= <alice@example.com>" },
	    MOAT_FROM_OK, "example.com", "alice", NULL },
	{ "dotted local", { "From: a.b.c@mail.example.com" }, MOAT_FROM_OK, "mail.example.com",
	    "a.b.c", NULL },
	{ "UTF-8 display name", { "From: J\xc3\xbcrgen <j@example.com>" }, MOAT_FROM_OK,
	    "example.com", "j", NULL },
	{ "other fields ignored",
	    { "To: x@evil.test", "From: a@example.com", "Sender: y@evil.test" }, MOAT_FROM_OK,
	    "example.com", "a", NULL },

	/* no From / several From */
	{ "no From", { "To: a@example.com" }, MOAT_FROM_NONE, NULL, NULL, "no From field" },
	{ "two From fields", { "From: a@example.com", "From: b@evil.test" }, MOAT_FROM_MULTIPLE,
	    NULL, NULL, "several From fields" },
	{ "From space colon counts", { "From : a@evil.test", "From: b@example.com" },
	    MOAT_FROM_MULTIPLE, NULL, NULL, "several From fields" },
	{ "From tab colon counts", { "From: b@example.com", "From\t: a@evil.test" },
	    MOAT_FROM_MULTIPLE, NULL, NULL, "several From fields" },
	{ "From: and FROM:", { "FROM: a@example.com", "from: a@example.com" }, MOAT_FROM_MULTIPLE,
	    NULL, NULL, "several From fields" },

	/* one From, not one mailbox */
	{ "empty", { "From: " }, MOAT_FROM_BAD, NULL, NULL, "empty From" },
	{ "two mailboxes", { "From: a@evil.test, b@example.com" }, MOAT_FROM_BAD, NULL, NULL,
	    "several mailboxes" },
	{ "two name-addrs", { "From: A <a@evil.test>, B <b@example.com>" }, MOAT_FROM_BAD, NULL,
	    NULL, "several angle addresses" },
	{ "two angle addrs", { "From: <a@evil.test><b@example.com>" }, MOAT_FROM_BAD, NULL, NULL,
	    "several angle addresses" },
	{ "group", { "From: friends: a@evil.test;" }, MOAT_FROM_BAD, NULL, NULL, NULL },
	{ "empty group", { "From: undisclosed:;" }, MOAT_FROM_BAD, NULL, NULL, NULL },
	{ "unbalanced <", { "From: <a@example.com" }, MOAT_FROM_BAD, NULL, NULL,
	    "unbalanced angle brackets" },
	{ "unbalanced >", { "From: a@example.com>" }, MOAT_FROM_BAD, NULL, NULL,
	    "unbalanced angle brackets" },
	{ "unbalanced quote", { "From: \"a <a@example.com>" }, MOAT_FROM_BAD, NULL, NULL,
	    "unbalanced quotes" },
	{ "unbalanced comment", { "From: (x a@example.com" }, MOAT_FROM_BAD, NULL, NULL,
	    "unbalanced comment" },
	{ "stray close paren", { "From: a@example.com)" }, MOAT_FROM_BAD, NULL, NULL,
	    "unbalanced comment" },
	{ "addr after angle addr", { "From: <a@example.com> b@evil.test" }, MOAT_FROM_BAD, NULL,
	    NULL, "text after the address" },
	{ "encoded-word hides an address (B)",
	    { "From: =?utf-8?B?YWRtaW5AbGVnaXQuY29t?= <a@evil.test>" }, MOAT_FROM_BAD, NULL, NULL,
	    "encoded-word hides an address in the display name" },
	{ "encoded-word hides an address (Q)",
	    { "From: =?utf-8?Q?=3Cadmin=40legit.com=3E?= <a@evil.test>" }, MOAT_FROM_BAD, NULL,
	    NULL, "encoded-word hides an address in the display name" },
	{ "encoded-word in quotes hides an address",
	    { "From: \"=?utf-8?B?YWRtaW5AbGVnaXQuY29t?=\" <a@evil.test>" }, MOAT_FROM_BAD, NULL,
	    NULL, "encoded-word hides an address in the display name" },
	{ "encoded-word as the local-part", { "From: =?utf-8?B?YQ==?=@example.com" }, MOAT_FROM_BAD,
	    NULL, NULL, "encoded-word in the address" },
	{ "malformed encoded-word", { "From: =?utf-8?X?abc?= <a@example.com>" }, MOAT_FROM_BAD,
	    NULL, NULL, "encoded-word hides an address in the display name" },
	{ "quoted-pair outside quotes", { "From: a\\@evil.test@example.com" }, MOAT_FROM_BAD, NULL,
	    NULL, "quoted-pair outside quotes" },
	{ "quoted-pair hiding a quote", { "From: \"a\\\" <a@evil.test>" }, MOAT_FROM_BAD, NULL,
	    NULL, "unbalanced quotes" },
	{ "domain literal", { "From: a@[192.0.2.1]" }, MOAT_FROM_BAD, NULL, NULL,
	    "domain literal" },
	{ "source route", { "From: <@evil.test:a@example.com>" }, MOAT_FROM_BAD, NULL, NULL,
	    "source route" },
	{ "no @", { "From: alice" }, MOAT_FROM_BAD, NULL, NULL, "no @ in the address" },
	{ "single-label domain", { "From: a@localhost" }, MOAT_FROM_BAD, NULL, NULL,
	    "domain has a single label" },
	{ "8-bit domain", { "From: a@ex\xc3\xa4mple.com" }, MOAT_FROM_BAD, NULL, NULL,
	    "byte not allowed in a domain" },
	{ "trailing dot domain", { "From: a@example.com." }, MOAT_FROM_BAD, NULL, NULL,
	    "missing or malformed domain" },
	{ "bare LF inside", { "From: a@example.com\nFrom: b@evil.test" }, MOAT_FROM_BAD, NULL, NULL,
	    "bare CR or LF" },
	{ "CRLF not folding", { "From: a@example.com\r\nX: b" }, MOAT_FROM_BAD, NULL, NULL,
	    "bare CR or LF" },
	{ "two @", { "From: a@b@example.com" }, MOAT_FROM_BAD, NULL, NULL,
	    "domain has a single label" },
	{ "two @ dotted", { "From: a@b.test@example.com" }, MOAT_FROM_BAD, NULL, NULL,
	    "text after the address" },
	{ "@ in display name", { "From: admin@legit.com <a@evil.test>" }, MOAT_FROM_BAD, NULL, NULL,
	    "special character in the display name" },
	{ "nested comments too deep", { "From: (((((((((x))))))))) a@example.com" }, MOAT_FROM_BAD,
	    NULL, NULL, "comments nested too deep" },
};

Test(from, table)
{
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		const struct from_case *c = &cases[k];
		struct moat_from f;
		size_t i;

		moat_from_init(&f);
		for (i = 0; i < 4 && c->fields[i] != NULL; i++)
			moat_from_field(&f, c->fields[i], strlen(c->fields[i]));
		cr_expect_eq(moat_from_finish(&f), c->status, "%s: status %d, why %s", c->label,
		    f.status, f.why ? f.why : "-");
		if (c->status == MOAT_FROM_OK) {
			cr_expect_str_eq(f.domain, c->domain, "%s", c->label);
			if (c->local)
				cr_expect_str_eq(f.local, c->local, "%s", c->label);
		} else {
			cr_expect_str_eq(f.domain, "", "%s: no domain on error", c->label);
			if (c->why && f.why)
				cr_expect_str_eq(f.why, c->why, "%s", c->label);
		}
	}
}

Test(from, is_from)
{
	cr_expect(moat_from_is_from("From: a", 7));
	cr_expect(moat_from_is_from("From  : a", 9));
	cr_expect(moat_from_is_from("fRoM:", 5));
	cr_expect_not(moat_from_is_from("From-X: a", 9));
	cr_expect_not(moat_from_is_from("Fromage: a", 10));
	cr_expect_not(moat_from_is_from("From", 4));
	cr_expect_not(moat_from_is_from("Resent-From: a", 14));
}

Test(from, bounds)
{
	static char big[MOAT_FROM_FIELD_MAX + 64];
	struct moat_from f;
	size_t i;

	/* an overlong field */
	memcpy(big, "From: ", 6);
	for (i = 6; i < sizeof(big) - 20; i++)
		big[i] = 'a';
	memcpy(big + i, "@example.com", 12);
	moat_from_init(&f);
	moat_from_field(&f, big, i + 12);
	cr_expect_eq(moat_from_finish(&f), MOAT_FROM_BAD);
	cr_expect_str_eq(f.why, "field too long");

	/* too many tokens */
	memcpy(big, "From: ", 6);
	for (i = 6; i + 2 < 6 + 2 * 300; i += 2)
		memcpy(big + i, "a ", 2);
	memcpy(big + i, "<a@example.com>", 15);
	moat_from_init(&f);
	moat_from_field(&f, big, i + 15);
	cr_expect_eq(moat_from_finish(&f), MOAT_FROM_BAD);
	cr_expect_str_eq(f.why, "too many tokens");

	/* a NUL byte */
	moat_from_init(&f);
	moat_from_field(&f, "From: a\0b@example.com", 21);
	cr_expect_eq(moat_from_finish(&f), MOAT_FROM_BAD);
	cr_expect_str_eq(f.why, "NUL byte");
}
