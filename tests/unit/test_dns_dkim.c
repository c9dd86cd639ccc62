/*
 * test_dns_dkim.c - libopendkim's lookups through the DNS layer (moat_dns_dkim_attach): a
 * message signed with libopendkim verifies with its key served by the fixture (a 2048-bit key,
 * so the TXT record needs two character-strings), a tampered copy does not, and a missing key
 * or a DNS failure is reported as such. Also the exact bytes of a rebuilt reply packet.
 * The RSA key below is a throw-away test key made for this file.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "dns_dkim.h"

static const char test_key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCuo61nLUFGzqET\n"
    "z5Tsdd2xjpAwx0CKaKbnFPO0Qjn2MfpJ+BW3wr3sfQhl1+mZhf9NrpKhGoLgO2R5\n"
    "9h0o3m3bMhMY2J7jvxOrrHOTEW4TrMd7yaLT5ZHwj+qUdzwxZHwvJ6WrC13wkqi/\n"
    "V0GFr9RzxHs5Z4K+nU+2MmxA24D7Xh9atgnFcYaOdc5bR4hdUm34s25vLdINsJwk\n"
    "HzJExzXv6/YgBLhCDM2QpOh4MoRZAS18+0jR9YWGPakpMUy/YAr6hWlqPhYfSo72\n"
    "UYahnkJRaQgFn3R7h0ibntcZODHZ62kXkaoePCS7FphuVOyidnPHMtgyNyqHueX/\n"
    "hvntcIyhAgMBAAECggEAJRg2LmrB6UjdlQgsIVfd2aem//1qu5uEDCR6qWjByAYQ\n"
    "nGKaNliin9dlD8DfaRE5y+XPVnH7p6Zl7rP0uKgaXItT3ByzDzwYcQgl2nDC2WID\n"
    "U0tejzS9nYPsN1HmUrV93URGH8E/2GhGeLIPhFZ3QYnUBLr0XgmrE0+9h784M+wN\n"
    "oBWZrRulYmOApQsWUqzAduqEXYxbyDYiGyqexhP0bXugTocwG8FMXhb/iBWWz9JE\n"
    "GRM7dyMGdoR/fA91op8rgpwdGmr9wWiYcOi1FbccCAHi+cfDRQO33SpE3hTNQKqr\n"
    "+vt00U2g1QL/isekQRwcJv9Mndn5CjUmJvS7fjhhowKBgQDi0YZ2jjhLu3ThOSif\n"
    "2MU5tW9SUEDURGOpaY700ufZoBV6EvIE3NPmoVZlZrANBj6Ip5vYQHh7efbCTpDW\n"
    "I0ER+Rz8DIqg6hWT45G0AX75jc6zHFKXbWGytkgzO+n9wUwBfBQtG+fi3lxP5m3U\n"
    "aFK8AiKTrF9vdFHo58fYbas4bwKBgQDFG5XrrXwRo4zIYTaKxOpr1a31VbSzxh7i\n"
    "WyRa92+YKeqWwC8XtvV//SN3tgHbRn4fqgfF7bcV/ddm/Hvtfc70aXm4HxJWrppg\n"
    "qQo/bqPToDsd9WDQ3d93VWV2QnnKi+lw08PjtD7d9uGu51gcUs/5N+R6iCrbMN0e\n"
    "OH4MkBNz7wKBgDsT9AABPyyKoQDg0HICFizX0y0PdjNTtNm1guTF4lnO1ok7Ugpu\n"
    "MktKDqTOwGBEFhml/nOvJzKSK/GkYRlFiXdS+Xe1FI6hKgmhJpxKH3aEtyfz4pdK\n"
    "iD3yOJAPtPzBUji4xtCRCi8PV9//1u+SVKpfq/3m0dzH4WXWqTj4J7bFAoGBAKLF\n"
    "LQD6usI2NUQkQ05FXvC9/HHk3Ny4dzil21fjjZwywS7Mdhc3V3TiLi/ldZMGm5C6\n"
    "cMDalZ7riL3bMtvkUMs1bvbFcfdzKLk53uSTEWbpougSgmj5UFjThH4sVzcUYypx\n"
    "NgsMBf52qdgt421AVc6QgXVOjVWE/JTAQhdNw0KxAoGANIGax9zbedKXkwGEnin8\n"
    "a4gmW8YygUpRCq6SuQP09GmjZ5fRvP90bvyQoWfgeN7VoGZmcLw4lU61hlfIFHpN\n"
    "Vdssh4+yO6Ofm0oyF7wQwjfsDiFWBmGb+JLnKplnkBIpOAd4lfEEVH5TksY6WzRb\n"
    "jc3HFhjhdlhFMossySI3lSQ=\n"
    "-----END PRIVATE KEY-----\n";

static const char test_key_pub[] =
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEArqOtZy1BRs6hE8+U7HXdsY6QMMdAimim5xTz"
    "tEI59jH6SfgVt8K97H0IZdfpmYX/Ta6SoRqC4DtkefYdKN5t2zITGNie478Tq6xzkxFuE6zHe8mi0+WR"
    "8I/qlHc8MWR8Lyelqwtd8JKov1dBha/Uc8R7OWeCvp1PtjJsQNuA+14fWrYJxXGGjnXOW0eIXVJt+LNu"
    "by3SDbCcJB8yRMc17+v2IAS4QgzNkKToeDKEWQEtfPtI0fWFhj2pKTFMv2AK+oVpaj4WH0qO9lGGoZ5C"
    "UWkIBZ90e4dIm57XGTgx2etpF5GqHjwkuxaYblTsonZzxzLYMjcqh7nl/4b57XCMoQIDAQAB";

static const char message[] = "From: a@example.test\r\n"
			      "To: b@example.test\r\n"
			      "Subject: hello\r\n"
			      "\r\n"
			      "Hello, world.\r\n";

/* sign - the DKIM-Signature header field (name included, CRLF line ends) for message. */
static void
sign(DKIM_LIB *lib, char *out, size_t outlen)
{
	DKIM_STAT st;
	DKIM *d = dkim_sign(lib, (const unsigned char *)"test", NULL, (dkim_sigkey_t)test_key_pem,
	    (const unsigned char *)"sel", (const unsigned char *)"example.test", DKIM_CANON_RELAXED,
	    DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &st);
	unsigned char hdr[4096];
	size_t i, o;

	cr_assert_not_null(d, "dkim_sign: %d", st);
	cr_assert_eq(dkim_chunk(d, (unsigned char *)message, strlen(message)), DKIM_STAT_OK);
	cr_assert_eq(dkim_chunk(d, NULL, 0), DKIM_STAT_OK);
	cr_assert_eq(dkim_eom(d, NULL), DKIM_STAT_OK);
	cr_assert_eq(dkim_getsighdr(d, hdr, sizeof(hdr), strlen("DKIM-Signature: ")), DKIM_STAT_OK);
	o = (size_t)snprintf(out, outlen, "DKIM-Signature: ");
	for (i = 0; hdr[i] && o + 3 < outlen; i++) {
		if (hdr[i] == '\n' && (i == 0 || hdr[i - 1] != '\r'))
			out[o++] = '\r';
		out[o++] = (char)hdr[i];
	}
	cr_assert_lt(o + 3, outlen);
	out[o++] = '\r';
	out[o++] = '\n';
	out[o] = '\0';
	dkim_free(d);
}

/* verify - feed SIG + body through a verifying handle; the dkim_eom status. */
static DKIM_STAT
verify(DKIM_LIB *lib, const char *sig, const char *msg)
{
	DKIM_STAT st;
	DKIM *d = dkim_verify(lib, (const unsigned char *)"test", NULL, &st);

	cr_assert_not_null(d);
	dkim_chunk(d, (unsigned char *)sig, strlen(sig));
	dkim_chunk(d, (unsigned char *)msg, strlen(msg));
	dkim_chunk(d, NULL, 0);
	st = dkim_eom(d, NULL);
	dkim_free(d);
	return st;
}

static struct moat_dns *
keys(void)
{
	struct moat_dns *dns = moat_dns_new_fixture();
	char rec[1024];

	cr_assert_not_null(dns);
	snprintf(rec, sizeof(rec), "v=DKIM1; k=rsa; p=%s", test_key_pub);
	cr_assert_gt(strlen(rec), 255u, "the key record needs several strings");
	moat_dns_fixture_add(dns, "sel._domainkey.example.test", MOAT_DNS_TXT, 0, rec, strlen(rec));
	return dns;
}

Test(dns_dkim, sign_and_verify_through_the_fixture)
{
	struct moat_dns *dns = keys();
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	char sig[4096];
	char tampered[sizeof(message)];

	cr_assert_not_null(lib);
	cr_assert_eq(moat_dns_dkim_attach(lib, dns), 0);
	sign(lib, sig, sizeof(sig));
	cr_expect_eq(verify(lib, sig, message), DKIM_STAT_OK);
	cr_expect_gt(moat_dns_fixture_queries(dns), 0u, "the key came from our DNS layer");
	memcpy(tampered, message, sizeof(message));
	tampered[strlen(message) - 4] = '!';
	cr_expect_eq(verify(lib, sig, tampered), DKIM_STAT_BADSIG);
	dkim_close(lib);
	moat_dns_free(dns);
}

Test(dns_dkim, key_lookup_failures)
{
	struct moat_dns *dns = keys();
	struct moat_dns *empty = moat_dns_new_fixture();
	struct moat_dns *down = moat_dns_new_fixture();
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	char sig[4096];
	int dnssec = -5;
	char err[256] = "";

	cr_assert_not_null(lib);
	moat_dns_dkim_attach(lib, dns);
	sign(lib, sig, sizeof(sig));
	cr_expect_eq(dkim_test_key(lib, "sel", "example.test", (char *)test_key_pem,
			 strlen(test_key_pem), &dnssec, err, sizeof(err)),
	    0, "keys match: %s", err);
	cr_expect_eq(dnssec, DKIM_DNSSEC_INSECURE);
	/* no such key: NXDOMAIN */
	moat_dns_dkim_attach(lib, empty);
	cr_expect_eq(verify(lib, sig, message), DKIM_STAT_NOKEY);
	/* the server fails */
	moat_dns_fixture_fail(down, "sel._domainkey.example.test", 0, MOAT_DNS_TEMPFAIL);
	moat_dns_dkim_attach(lib, down);
	cr_expect_eq(verify(lib, sig, message), DKIM_STAT_KEYFAIL);
	dkim_close(lib);
	moat_dns_free(dns);
	moat_dns_free(empty);
	moat_dns_free(down);
}

Test(dns_dkim, reply_packet_bytes)
{
	struct moat_dns_rr rr = { .len = 4, .data = (char *)"\xc0\x00\x02\x01" };
	struct moat_dns_answer ok = { .status = MOAT_DNS_OK, .n = 1, .rr = &rr };
	struct moat_dns_answer nx = { .status = MOAT_DNS_NXDOMAIN };
	static const unsigned char want_a[] = {
		0,
		0,
		0x81,
		0x80,
		0,
		1,
		0,
		1,
		0,
		0,
		0,
		0,
		1,
		'a',
		4,
		't',
		'e',
		's',
		't',
		0,
		0,
		1,
		0,
		1,
		0xc0,
		0x0c,
		0,
		1,
		0,
		1,
		0,
		0,
		0,
		0,
		0,
		4,
		0xc0,
		0,
		2,
		1,
	};
	static const unsigned char want_nx[] = {
		0,
		0,
		0x81,
		0x83,
		0,
		1,
		0,
		0,
		0,
		0,
		0,
		0,
		1,
		'a',
		4,
		't',
		'e',
		's',
		't',
		0,
		0,
		16,
		0,
		1,
	};
	unsigned char buf[512];

	cr_assert_eq(moat_dns_reply_packet("a.test", MOAT_DNS_A, &ok, buf, sizeof(buf)),
	    (long)sizeof(want_a));
	cr_expect_arr_eq(buf, want_a, sizeof(want_a));
	cr_assert_eq(moat_dns_reply_packet("a.test", MOAT_DNS_TXT, &nx, buf, sizeof(buf)),
	    (long)sizeof(want_nx));
	cr_expect_arr_eq(buf, want_nx, sizeof(want_nx));
	/* too small a buffer, an unsupported type */
	cr_expect_eq(moat_dns_reply_packet("a.test", MOAT_DNS_A, &ok, buf, sizeof(want_a) - 1), -1);
	cr_expect_eq(moat_dns_reply_packet("a.test", MOAT_DNS_PTR, &ok, buf, sizeof(buf)), -1);
}
