/*
 * test_dkim_verify.c - our DKIM-Signature tag-list parser (what we read before anything else:
 * d=, s=, a=, the b= prefix, l=), and the verifier's handling of unsigned messages. Verification
 * itself is in test_auth.c and tests/e2e/dkim_cross.sh (against python3-dkim).
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
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
	{ "typical",
	    " v=1; a=rsa-sha256; c=relaxed/relaxed; d=Example.COM; s=sel;\r\n\th=from:to; bh=abc=; b=ABCD\r\n EFGHIJ",
	    0, "example.com", "sel", "rsa-sha256", "ABCDEFGH", -1 },
	{ "trailing semicolon", "d=example.com; s=s1; b=xy;", 0, "example.com", "s1", "", "xy",
	    -1 },
	{ "l tag", "d=example.com; s=s1; l=1234", 0, "example.com", "s1", "", "", 1234 },
	{ "ed25519", "a=ed25519-sha256; d=a.b.example; s=2026._x", 0, "a.b.example", "2026._x",
	    "ed25519-sha256", "", -1 },
	{ "missing d", "s=s1; b=x", -1, NULL, NULL, NULL, NULL, 0 },
	{ "missing s", "d=example.com; b=x", -1, NULL, NULL, NULL, NULL, 0 },
	{ "duplicate d", "d=example.com; s=s1; d=evil.test", -1, NULL, NULL, NULL, NULL, 0 },
	{ "quote in d", "d=exa\"mple.com; s=s1", -1, NULL, NULL, NULL, NULL, 0 },
	{ "semicolon-less garbage", "d=example.com; s=s1; junk", -1, NULL, NULL, NULL, NULL, 0 },
	{ "empty d", "d=; s=s1", -1, NULL, NULL, NULL, NULL, 0 },
	{ "empty element", "d=example.com;; s=s1", -1, NULL, NULL, NULL, NULL, 0 },
	{ "tag name with digit first", "1d=example.com; d=example.com; s=s1", -1, NULL, NULL, NULL,
	    NULL, 0 },
	{ "8-bit in value", "d=ex\xc3\xa4mple.com; s=s1", -1, NULL, NULL, NULL, NULL, 0 },
	{ "label too long",
	    "d=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com; s=s1", -1,
	    NULL, NULL, NULL, NULL, 0 },
	{ "negative l", "d=example.com; s=s1; l=-1", -1, NULL, NULL, NULL, NULL, 0 },
	{ "huge l", "d=example.com; s=s1; l=99999999999999999999999", -1, NULL, NULL, NULL, NULL,
	    0 },
	{ "dot-dot domain", "d=example..com; s=s1", -1, NULL, NULL, NULL, NULL, 0 },
	{ "space inside d", "d=exa mple.com; s=s1", -1, NULL, NULL, NULL, NULL, 0 },
	/* RFC 6376 3.2: any repeated tag name makes the whole list invalid, whatever its length */
	{ "repeated bh", "d=example.com; s=s1; bh=abc=; b=x; bh=def=", -1, NULL, NULL, NULL, NULL,
	    0 },
	{ "repeated unknown tag", "d=example.com; s=s1; xyz=1; b=x; xyz=2", -1, NULL, NULL, NULL,
	    NULL, 0 },
	{ "repeated upper-case tag", "D=1; d=example.com; s=s1; D=2", -1, NULL, NULL, NULL, NULL,
	    0 },
	{ "repeated tag with FWS around the name", "d=example.com; s=s1; zz=1;\r\n\tzz =2", -1,
	    NULL, NULL, NULL, NULL, 0 },
	{ "names differing in case are two tags", "d=example.com; s=s1; D=other; Bh=x; bh=y", 0,
	    "example.com", "s1", "", "", -1 },
	{ "b and bh are two tags", "d=example.com; s=s1; b=xy; bh=xy", 0, "example.com", "s1", "",
	    "xy", -1 },
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

/* list_of_tags - COUNT tags "tN=N;" (the last repeating the first when DUP), then d= and s=. */
static char *
list_of_tags(unsigned count, bool dup)
{
	size_t cap = (size_t)count * 16 + 64, o = 0;
	char *v = malloc(cap);

	cr_assert_not_null(v);
	for (unsigned i = 0; i < count; i++)
		o += (size_t)snprintf(v + o, cap - o, "t%u=%u; ", dup && i == count - 1 ? 0 : i, i);
	snprintf(v + o, cap - o, "d=example.com; s=s1");
	return v;
}

Test(dkim_verify, many_tags)
{
	struct moat_dkim_sig s;
	char *v;

	/* a field's worth of distinct tags (the field cap is 8 KiB): all compared, none repeated */
	v = list_of_tags(1000, false);
	cr_expect_eq(moat_dkim_sig_tags(v, strlen(v), &s), 0, "1000 distinct tags");
	free(v);
	v = list_of_tags(1000, true);
	cr_expect_eq(moat_dkim_sig_tags(v, strlen(v), &s), -1, "the 1000th repeats the first");
	free(v);
}

/*
 * i= is dkim-quoted-printable (RFC 6376 3.5, 2.11): decoded first, then [local-part] "@" domain
 * is checked on the decoded text; each refusal has its own reason.
 */
Test(dkim_verify, identity)
{
	static const struct {
		const char *label, *value;
		int ret;
		const char *identity, *why;
	} ids[] = {
		{ "plain", "jlong@messiah.edu", 0, "jlong@messiah.edu", NULL },
		{ "=40 is the @", "jlong=40messiah.edu", 0, "jlong@messiah.edu", NULL },
		{ "=2E in the domain", "jlong@messiah=2Eedu", 0, "jlong@messiah.edu", NULL },
		{ "lower-case hex", "jlong=40messiah=2eedu", 0, "jlong@messiah.edu", NULL },
		{ "escaped local-part", "=4A=6C=6F=6E=67@messiah.edu", 0, "Jlong@messiah.edu",
		    NULL },
		{ "no local-part", "=40example.com", 0, "@example.com", NULL },
		{ "FWS dropped", "jlong=40\r\n messiah.edu", 0, "jlong@messiah.edu", NULL },
		{ "escaped blank in the local-part", "a=20b@example.com", 0, "a b@example.com",
		    NULL },
		{ "two @ once decoded", "a=40b@example.com", -1, "a@b@example.com",
		    "i= has more than one @" },
		{ "no @ once decoded", "jlong=2Emessiah.edu", -1, "jlong.messiah.edu",
		    "i= has no domain" },
		{ "decoded domain not LDH", "a@exa=22mple.com", -1, "a@exa\"mple.com",
		    "i= has no valid domain" },
		{ "empty domain", "a=40", -1, "a@", "i= has no valid domain" },
		{ "one hex digit", "a=4@example.com", -1, "", "i= is not valid quoted-printable" },
		{ "not hex", "a=ZZ@example.com", -1, "", "i= is not valid quoted-printable" },
		{ "= at the end", "a@example.com=", -1, "", "i= is not valid quoted-printable" },
		{ "=4 at the end", "a@example.com=4", -1, "", "i= is not valid quoted-printable" },
		{ "escape split by FWS", "a=4\r\n 0example.com", -1, "",
		    "i= is not valid quoted-printable" },
		{ "decodes to a NUL", "a=00@example.com", -1, "", "i= decodes to a NUL" },
		{ "empty", "", -1, "", "i= has no domain" },
	};
	char out[MOAT_DKIM_IDENTITY_MAX + 1];
	const char *why;

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		int ret = moat_dkim_identity(ids[i].value, strlen(ids[i].value), out, &why);
		cr_expect_eq(ret, ids[i].ret, "%s: %d", ids[i].label, ret);
		cr_expect_str_eq(out, ids[i].identity, "%s", ids[i].label);
		if (ids[i].why == NULL)
			cr_expect_null(why, "%s: %s", ids[i].label, why);
		else
			cr_expect_str_eq(why ? why : "(null)", ids[i].why, "%s", ids[i].label);
	}
}

Test(dkim_verify, identity_bounds)
{
	char value[4 * MOAT_DKIM_IDENTITY_MAX], out[MOAT_DKIM_IDENTITY_MAX + 1];
	const char *why;
	size_t n;

	/* the longest decoded identity fits exactly; one byte more is refused, never cut */
	memset(value, 'a', MOAT_DKIM_IDENTITY_MAX - 12);
	memcpy(value + MOAT_DKIM_IDENTITY_MAX - 12, "@example.com", 12);
	cr_expect_eq(moat_dkim_identity(value, MOAT_DKIM_IDENTITY_MAX, out, &why), 0);
	cr_expect_eq(strlen(out), (size_t)MOAT_DKIM_IDENTITY_MAX);
	memmove(value + 1, value, MOAT_DKIM_IDENTITY_MAX);
	cr_expect_eq(moat_dkim_identity(value, MOAT_DKIM_IDENTITY_MAX + 1, out, &why), -1);
	cr_expect_str_eq(why, "i= is too long");
	cr_expect_str_eq(out, "");
	/* the bound is on the decoded text: an escape is 3 bytes in, 1 out */
	for (size_t k = MOAT_DKIM_IDENTITY_MAX - 12; k <= MOAT_DKIM_IDENTITY_MAX - 11; k++) {
		for (n = 0; n < 3 * k; n += 3)
			memcpy(value + n, "=41", 3);
		memcpy(value + n, "@example.com", 12);
		cr_expect_eq(moat_dkim_identity(value, n + 12, out, &why),
		    k + 12 > MOAT_DKIM_IDENTITY_MAX ? -1 : 0, "%zu escapes", k);
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
	static const char *hdrs[] = { "Date: Sun, 22 Nov 2026 21:00:00 +0000",
		"From: a@example.com", "Subject: x" };

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
	cr_expect_eq(sigs[0].result, MOAT_DKIM_PERMERROR, "%s",
	    moat_dkim_result_name(sigs[0].result));
	cr_expect_eq(moat_dns_fixture_queries(dns), 0u, "no key fetched");
	moat_dkim_msg_free(m);
	moat_dkim_verifier_free(v);
	moat_dns_free(dns);
}

/*
 * What our verifier refuses before or instead of the RSA operation (RFC 6376 3.5, 3.6.1,
 * RFC 8301): each signature is over a fixed message, with a key record from the fixture; the
 * result and reason are exact. Signatures here are not valid RSA ones: every case is decided
 * before the signature would be checked, so a "signature verification failed" here is a bug.
 */
struct refusal {
	const char *label;
	const char *sig; /* the DKIM-Signature value */
	const char *key; /* TXT at sel._domainkey.example.com, NULL: none */
	enum moat_dkim_res res;
	const char *reason;
	unsigned long queries; /* key lookups made */
};

#define BH "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" /* empty body, relaxed */
#define B "b=dGVzdA=="
/* a 1024-bit RSA SubjectPublicKeyInfo is not needed: these keys never reach d2i */
static const struct refusal refusals[] = {
	{ "v=2", "v=2; a=rsa-sha256; d=example.com; s=sel; h=from; " BH "; " B, "p=AAAA",
	    MOAT_DKIM_PERMERROR, "unsupported v= version", 0 },
	{ "unknown a=", "v=1; a=rsa-md5; d=example.com; s=sel; h=from; " BH "; " B, "p=AAAA",
	    MOAT_DKIM_PERMERROR, "unknown a= algorithm", 0 },
	{ "rsa-sha1 (RFC 8301)", "v=1; a=rsa-sha1; d=example.com; s=sel; h=from; " BH "; " B,
	    "p=AAAA", MOAT_DKIM_FAIL, "rsa-sha1 is not accepted (RFC 8301)", 0 },
	{ "h= without From", "v=1; a=rsa-sha256; d=example.com; s=sel; h=to:subject; " BH "; " B,
	    "p=AAAA", MOAT_DKIM_PERMERROR, "From field not signed", 0 },
	{ "no bh=", "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; " B, "p=AAAA",
	    MOAT_DKIM_PERMERROR, "missing bh= tag", 0 },
	{ "b= not base64", "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; " BH "; b=!!!!",
	    "p=AAAA", MOAT_DKIM_PERMERROR, "b= is not valid base64", 0 },
	/* 88 characters decode to 66 bytes, two more than the largest digest: refused without
	 * writing them past the 64-byte buffer (ASan cannot see that write: it lands in the struct) */
	{ "bh= of 66 bytes",
	    "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; bh="
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; " B,
	    "p=AAAA", MOAT_DKIM_PERMERROR, "bh= is not valid base64", 0 },
	{ "unknown c=",
	    "v=1; a=rsa-sha256; c=relaxed/fancy; d=example.com; s=sel; h=from; " BH "; " B,
	    "p=AAAA", MOAT_DKIM_PERMERROR, "unknown canonicalization", 0 },
	{ "q= other than dns/txt",
	    "v=1; a=rsa-sha256; q=http; d=example.com; s=sel; h=from; " BH "; " B, "p=AAAA",
	    MOAT_DKIM_PERMERROR, "no supported q= method", 0 },
	{ "i= outside d=",
	    "v=1; a=rsa-sha256; i=@evil.test; d=example.com; s=sel; h=from; " BH "; " B, "p=AAAA",
	    MOAT_DKIM_PERMERROR, "i= is not within d=", 0 },
	{ "i= a look-alike suffix",
	    "v=1; a=rsa-sha256; i=@badexample.com; d=example.com; s=sel; h=from; " BH "; " B,
	    "p=AAAA", MOAT_DKIM_PERMERROR, "i= is not within d=", 0 },
	{ "expired x=",
	    "v=1; a=rsa-sha256; t=1000; x=2000; d=example.com; s=sel; h=from; " BH "; " B, "p=AAAA",
	    MOAT_DKIM_FAIL, "signature expired", 0 },
	{ "t= in the future",
	    "v=1; a=rsa-sha256; t=9999999999; d=example.com; s=sel; h=from; " BH "; " B, "p=AAAA",
	    MOAT_DKIM_FAIL, "signature in the future", 0 },
	{ "x= before t=",
	    "v=1; a=rsa-sha256; t=3000; x=2500; d=example.com; s=sel; h=from; " BH "; " B, "p=AAAA",
	    MOAT_DKIM_PERMERROR, "x= is before t=", 0 },
	{ "no key record", "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; " BH "; " B, NULL,
	    MOAT_DKIM_PERMERROR, "no key", 1 },
	{ "revoked key (empty p=)", "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; " BH "; " B,
	    "v=DKIM1; p=", MOAT_DKIM_FAIL, "key revoked", 1 },
	{ "key h= without sha256", "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; " BH "; " B,
	    "v=DKIM1; h=sha1; p=AAAA", MOAT_DKIM_FAIL, "key does not allow sha256", 1 },
	{ "key s= not email", "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; " BH "; " B,
	    "v=DKIM1; s=web; p=AAAA", MOAT_DKIM_FAIL, "key not for email", 1 },
	{ "key t=s with a subdomain i=",
	    "v=1; a=rsa-sha256; i=@sub.example.com; d=example.com; s=sel; "
	    "h=from; " BH "; " B,
	    "v=DKIM1; t=s; p=AAAA", MOAT_DKIM_FAIL, "key t=s: i= must be d=", 1 },
	{ "v=DKIM1 not first", "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; " BH "; " B,
	    "k=rsa; v=DKIM1; p=AAAA", MOAT_DKIM_PERMERROR, "key syntax error", 1 },
	{ "unknown k=", "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; " BH "; " B,
	    "v=DKIM1; k=dsa; p=AAAA", MOAT_DKIM_PERMERROR, "key syntax error", 1 },
	{ "ed25519 key for rsa-sha256",
	    "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; " BH "; " B,
	    "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
	    MOAT_DKIM_PERMERROR, "key type does not match a=", 1 },
	{ "p= not a key", "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; " BH "; " B,
	    "v=DKIM1; p=AAAA", MOAT_DKIM_PERMERROR, "key could not be decoded", 1 },
	/* i= decoded (RFC 6376 3.5): accepted identities reach the key, which is no key here */
	{ "i= with =40",
	    "v=1; a=rsa-sha256; i=jlong=40example.com; d=example.com; s=sel; h=from; " BH "; " B,
	    "v=DKIM1; p=AAAA", MOAT_DKIM_PERMERROR, "key could not be decoded", 1 },
	{ "i= with =2E in the domain",
	    "v=1; a=rsa-sha256; i=jlong@sub=2Eexample=2Ecom; d=example.com; "
	    "s=sel; h=from; " BH "; " B,
	    "v=DKIM1; p=AAAA", MOAT_DKIM_PERMERROR, "key could not be decoded", 1 },
	{ "i= decoded outside d=",
	    "v=1; a=rsa-sha256; i=jlong=40evil.test; d=example.com; s=sel; h=from; " BH "; " B,
	    "p=AAAA", MOAT_DKIM_PERMERROR, "i= is not within d=", 0 },
	{ "i= decoded look-alike",
	    "v=1; a=rsa-sha256; i=@bad=65xample.com; d=example.com; s=sel; h=from; " BH "; " B,
	    "p=AAAA", MOAT_DKIM_PERMERROR, "i= is not within d=", 0 },
	{ "key t=s with a decoded subdomain i=",
	    "v=1; a=rsa-sha256; i=a=40sub=2Eexample.com; d=example.com; "
	    "s=sel; h=from; " BH "; " B,
	    "v=DKIM1; t=s; p=AAAA", MOAT_DKIM_FAIL, "key t=s: i= must be d=", 1 },
	{ "i= two @ once decoded",
	    "v=1; a=rsa-sha256; i=a=40b@example.com; d=example.com; s=sel; "
	    "h=from; " BH "; " B,
	    "p=AAAA", MOAT_DKIM_PERMERROR, "i= has more than one @", 0 },
	{ "i= no @ once decoded",
	    "v=1; a=rsa-sha256; i=example=2Ecom; d=example.com; s=sel; "
	    "h=from; " BH "; " B,
	    "p=AAAA", MOAT_DKIM_PERMERROR, "i= has no domain", 0 },
	{ "i= undecodable",
	    "v=1; a=rsa-sha256; i=a=4@example.com; d=example.com; s=sel; "
	    "h=from; " BH "; " B,
	    "p=AAAA", MOAT_DKIM_PERMERROR, "i= is not valid quoted-printable", 0 },
	{ "i= decodes to NUL",
	    "v=1; a=rsa-sha256; i=a=00@example.com; d=example.com; s=sel; "
	    "h=from; " BH "; " B,
	    "p=AAAA", MOAT_DKIM_PERMERROR, "i= decodes to a NUL", 0 },
	{ "z= decodes",
	    "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; z=From:a=40example.com|Subject:"
	    "a=20b=3Bc; " BH "; " B,
	    "v=DKIM1; p=AAAA", MOAT_DKIM_PERMERROR, "key could not be decoded", 1 },
	{ "z= undecodable",
	    "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; z=From:a=4; " BH "; " B, "p=AAAA",
	    MOAT_DKIM_PERMERROR, "z= is not valid quoted-printable", 0 },
	/* RFC 6376 3.2: a repeated tag, in the signature or in the key record */
	{ "repeated bh=", "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; " BH "; " BH "; " B,
	    "p=AAAA", MOAT_DKIM_PERMERROR, "malformed DKIM-Signature tag list", 0 },
	{ "repeated key p=", "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; " BH "; " B,
	    "v=DKIM1; p=AAAA; p=", MOAT_DKIM_PERMERROR, "key syntax error", 1 },
	{ "repeated key tag of two letters",
	    "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; " BH "; " B,
	    "v=DKIM1; xy=1; p=AAAA; xy=2", MOAT_DKIM_PERMERROR, "key syntax error", 1 },
	{ "ed25519 p= of 31 bytes",
	    "v=1; a=ed25519-sha256; d=example.com; s=sel; h=from; " BH "; " B,
	    "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHUQ==",
	    MOAT_DKIM_PERMERROR, "key could not be decoded", 1 },
};

Test(dkim_verify, refusals)
{
	static const char *hdrs[] = { "From: a@example.com",
		"Date: Sun, 22 Nov 2026 21:00:00 +0000", "Subject: x" };
	struct moat_dkim_opts opts = { .fixed_time = 1795000000 };

	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		const struct refusal *c = &refusals[i];
		struct moat_dns *dns = moat_dns_new_fixture();
		struct moat_dkim_verifier *v;
		struct moat_dkim_msg *m;
		struct moat_dkim_sig sigs[2];
		char field[1024];
		size_t n;

		cr_assert_not_null(dns);
		if (c->key != NULL)
			cr_assert_eq(moat_dns_fixture_add(dns, "sel._domainkey.example.com",
					 MOAT_DNS_TXT, 0, c->key, strlen(c->key)),
			    0);
		v = moat_dkim_verifier_new(dns, &opts);
		cr_assert_not_null(v);
		m = moat_dkim_msg_new(v);
		cr_assert_not_null(m);
		snprintf(field, sizeof(field), "DKIM-Signature: %s", c->sig);
		moat_dkim_header(m, field, strlen(field));
		for (size_t k = 0; k < 3; k++)
			moat_dkim_header(m, hdrs[k], strlen(hdrs[k]));
		moat_dkim_eoh(m);
		n = moat_dkim_eom(m, sigs, 2);
		cr_expect_eq(n, 1u, "%s", c->label);
		if (n == 1) {
			cr_expect_eq(sigs[0].result, c->res, "%s: %s (%s)", c->label,
			    moat_dkim_result_name(sigs[0].result), sigs[0].reason);
			cr_expect_str_eq(sigs[0].reason, c->reason, "%s", c->label);
		}
		cr_expect_eq(moat_dns_fixture_queries(dns), c->queries, "%s: key lookups",
		    c->label);
		moat_dkim_msg_free(m);
		moat_dkim_verifier_free(v);
		moat_dns_free(dns);
	}
}
