/*
 * test_sign.c - DKIM signing: body canonicalization (RFC 6376 3.4.3/3.4.4) byte for byte, the
 * From domain that picks the keys, and the policy hook end to end: an outbound message gets an
 * rsa-sha256 and an ed25519-sha256 signature as header edits, which libopendkim's verifier (DNS
 * through our fixture) accepts; an inbound one gets none.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <opendkim/dkim.h>

#include "dkim_signature.h"
#include "dkim_sign.h"
#include "dns.h"
#include "dns_dkim.h"
#include "keyfile.h"
#include "policy.h"
#include "sign_keys.h"

Test(sign, body_canon)
{
	static const struct {
		const char *label, *in, *simple, *relaxed;
	} cases[] = {
		{ "empty", "", "\r\n", "" },
		{ "only empty lines", "\r\n\r\n", "\r\n", "" },
		{ "trailing empty lines dropped", "a\r\n\r\n\r\n", "a\r\n", "a\r\n" },
		{ "no final CRLF", "a", "a\r\n", "a\r\n" },
		{ "blanks", "a  b \t\r\n", "a  b \t\r\n", "a b\r\n" },
		{ "blank line kept inside", "a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n" },
		{ "line of blanks at end", "a\r\n \t\r\n", "a\r\n \t\r\n", "a\r\n" },
		{ "line of blanks inside", "a\r\n  \r\nb\r\n", "a\r\n  \r\nb\r\n",
		    "a\r\n\r\nb\r\n" },
		{ "leading blanks", "  a\r\n", "  a\r\n", " a\r\n" },
		{ "bare CR kept", "a\rb\r\n", "a\rb\r\n", "a\rb\r\n" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[256];
		size_t n, len = strlen(cases[i].in);
		n = moat__dkim_body_canon(cases[i].in, len, false, out);
		cr_expect_eq(n, strlen(cases[i].simple), "%s: simple length %zu", cases[i].label,
		    n);
		cr_expect(n == strlen(cases[i].simple) && memcmp(out, cases[i].simple, n) == 0,
		    "%s: simple", cases[i].label);
		n = moat__dkim_body_canon(cases[i].in, len, true, out);
		cr_expect_eq(n, strlen(cases[i].relaxed), "%s: relaxed length %zu", cases[i].label,
		    n);
		cr_expect(n == strlen(cases[i].relaxed) && memcmp(out, cases[i].relaxed, n) == 0,
		    "%s: relaxed", cases[i].label);
	}
}

/*
 * Header canonicalization (RFC 6376 3.4.1, 3.4.2), shared by signing and verification. Relaxed
 * unfolds only a CRLF followed by WSP: a bare CR or LF, or a CRLF before anything else, is a
 * byte of the value, so changing a signed value by inserting one breaks the signature.
 */
Test(sign, header_canon)
{
	static const struct {
		const char *label, *in, *relaxed;
	} cases[] = {
		{ "plain", "Subject: hello", "subject:hello\r\n" },
		{ "name case, blanks around the colon", "SubJect \t:  \t hello",
		    "subject:hello\r\n" },
		{ "blank runs and trailing blanks", "Subject: a \t b  \t", "subject:a b\r\n" },
		{ "folded", "Subject: hello\r\n there", "subject:hello there\r\n" },
		{ "folded with a tab, blanks around the fold", "Subject: hello \r\n\t  there",
		    "subject:hello there\r\n" },
		{ "folded right after the colon", "Subject:\r\n\thello", "subject:hello\r\n" },
		{ "a fold of blanks only at the end", "Subject: hello\r\n \t",
		    "subject:hello\r\n" },
		{ "bare CR inside the value", "Subject: cross-\rcheck",
		    "subject:cross-\rcheck\r\n" },
		{ "bare CR before a blank", "Subject: a\r b", "subject:a\r b\r\n" },
		{ "bare CR at the end", "Subject: a\r", "subject:a\r\r\n" },
		{ "bare CR first", "Subject: \ra", "subject:\ra\r\n" },
		{ "bare LF before a blank", "Subject: a\n b", "subject:a\n b\r\n" },
		{ "CR CR LF before a blank", "Subject: a\r\r\n b", "subject:a\r b\r\n" },
		{ "CRLF not before a blank", "Subject: a\r\nb", "subject:a\r\nb\r\n" },
		{ "CRLF at the very end", "Subject: a\r\n", "subject:a\r\n\r\n" },
		{ "empty value", "Subject:", "subject:\r\n" },
	};
	char out[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].in), n;

		n = moat__dkim_canon_header(cases[i].in, len, true, true, out);
		cr_expect_eq(n, strlen(cases[i].relaxed), "%s: relaxed length %zu", cases[i].label,
		    n);
		cr_expect(n == strlen(cases[i].relaxed) && memcmp(out, cases[i].relaxed, n) == 0,
		    "%s: relaxed", cases[i].label);
		/* simple (3.4.1): the field as it is */
		n = moat__dkim_canon_header(cases[i].in, len, false, true, out);
		cr_expect(n == len + 2 && memcmp(out, cases[i].in, len) == 0 &&
			memcmp(out + len, "\r\n", 2) == 0,
		    "%s: simple", cases[i].label);
	}
}

/*
 * ref_canon - the body canonicalization as RFC 6376 words it, on the whole body, written for
 * clarity: lines end at CRLF (a bare CR or LF is an ordinary byte); relaxed turns each run of
 * SP/HTAB into one SP and drops it at the end of a line; empty lines at the end go; a last line
 * without CRLF gets one; simple turns an empty body into one CRLF. OUT holds 2 * len + 2.
 */
static size_t
ref_canon(const char *in, size_t len, bool relaxed, char *out)
{
	size_t o = 0, held = 0, start = 0;

	while (start < len) {
		size_t end = start, next, l0 = o;
		while (end < len && !(in[end] == '\r' && end + 1 < len && in[end + 1] == '\n'))
			end++;
		next = end < len ? end + 2 : len;
		for (size_t k = start; k < end; k++) {
			bool wsp = in[k] == ' ' || in[k] == '\t';
			if (relaxed && wsp && k > start && (in[k - 1] == ' ' || in[k - 1] == '\t'))
				continue;
			out[o++] = relaxed && wsp ? ' ' : in[k];
		}
		if (relaxed && o > l0 && out[o - 1] == ' ')
			o--;
		if (o == l0) {
			held++; /* an empty line: kept only if a line follows */
		} else {
			memmove(out + l0 + 2 * held, out + l0, o - l0);
			for (; held > 0; held--, l0 += 2, o += 2)
				memcpy(out + l0, "\r\n", 2);
			memcpy(out + o, "\r\n", 2);
			o += 2;
		}
		start = next;
	}
	if (o == 0 && !relaxed) {
		memcpy(out, "\r\n", 2);
		o = 2;
	}
	return o;
}

/* split_hash - the body hash of IN fed in chunks of the sizes SIZES gives in turn (0: the rest). */
static void
split_hash(const char *in, size_t len, bool relaxed, const size_t *sizes, size_t nsizes,
    unsigned char bh[MOAT_DKIM_BH_LEN])
{
	struct moat__dkim_body *b = moat__dkim_body_new(relaxed, EVP_sha256());
	size_t off = 0;

	cr_assert_not_null(b);
	for (size_t k = 0; off < len; k++) {
		size_t want = nsizes > 0 ? sizes[k % nsizes] : 0, n = len - off;
		char *chunk;
		if (want > 0 && want < n)
			n = want;
		/* a chunk of its own, so that ASan sees a read past its end */
		cr_assert_not_null(chunk = malloc(n));
		memcpy(chunk, in + off, n);
		moat__dkim_body_feed(b, chunk, n);
		free(chunk);
		off += n;
	}
	cr_assert_eq(moat__dkim_body_end(b, bh), 0);
	moat__dkim_body_free(b);
}

/*
 * check_splits - the canonical form of IN matches ref_canon, and the body hash is the same for
 * IN fed whole, a byte at a time, cut once at every offset, and in random chunk sizes (each
 * chunk in a buffer of its own size). Returns the number of mismatches (each reported).
 */
static unsigned
check_splits(const char *label, const char *in, size_t len, bool relaxed)
{
	char *want = malloc(2 * len + 2), *got = malloc(2 * len + 2);
	unsigned char ref[MOAT_DKIM_BH_LEN], bh[MOAT_DKIM_BH_LEN];
	unsigned bad = 0, wl = 0;
	size_t wn, gn, one = 1;
	const char *mode = relaxed ? "relaxed" : "simple";

	cr_assert(want != NULL && got != NULL);
	wn = ref_canon(in, len, relaxed, want);
	gn = moat__dkim_body_canon(in, len, relaxed, got);
	if (gn != wn || memcmp(got, want, wn) != 0) {
		cr_log_error("%s (%s): canonical form differs from the reference", label, mode);
		bad++;
	}
	EVP_Digest(want, wn, ref, &wl, EVP_sha256(), NULL);
	split_hash(in, len, relaxed, NULL, 0, bh);
	if (memcmp(bh, ref, sizeof(bh)) != 0) {
		cr_log_error("%s (%s): differs fed whole", label, mode);
		bad++;
	}
	split_hash(in, len, relaxed, &one, 1, bh);
	if (memcmp(bh, ref, sizeof(bh)) != 0) {
		cr_log_error("%s (%s): differs fed a byte at a time", label, mode);
		bad++;
	}
	for (size_t cut = 1; cut < len; cut++) {
		size_t sizes[2] = { cut, 0 };
		split_hash(in, len, relaxed, sizes, 2, bh);
		if (memcmp(bh, ref, sizeof(bh)) != 0) {
			cr_log_error("%s (%s): differs cut at %zu", label, mode, cut);
			bad++;
		}
	}
	for (unsigned r = 0; r < 8; r++) {
		size_t sizes[16];
		for (size_t k = 0; k < 16; k++)
			sizes[k] = 1 + (size_t)rand() % (r < 4 ? 12 : 200);
		split_hash(in, len, relaxed, sizes, 16, bh);
		if (memcmp(bh, ref, sizeof(bh)) != 0) {
			cr_log_error("%s (%s): differs in random chunks (round %u)", label, mode,
			    r);
			bad++;
		}
	}
	free(want);
	free(got);
	return bad;
}

Test(sign, body_canon_splits)
{
	static const char *const tricky[] = {
		"",
		"\r\n",
		"\r\n\r\n\r\n",
		"a",
		"a ",
		"a \t",
		" ",
		"\r",
		"\n",
		"a\r",
		"a\n",
		"a \r\nb\r\n", /* WSP before CRLF, cut anywhere */
		"a\t \t\r\n\r\n \r\n\t\r\n", /* empty and blank lines at the end */
		"x\r\n\r\n\r\n\r\ny\r\n", /* empty lines inside, released */
		"a\r  b\r\n",
		"a  \rb\r\n",
		"a \n b\r\n",
		"\r\r\n\r",
		"a\r\r\r\nb",
		"word  word\t\tword \t word!\r\n",
		" !\r\n ! ! !! \r\n", /* 0x21 after SP (word-test borrow) */
		"Line 001 of the body, padded with some words to be ordinary text.\r\n"
		"Line 002 of the body, padded with some words to be ordinary text.\r\n\r\n",
		"\x80\xff \xe9t\xe9  \x7f\x01\x1f \r\n",
		"abcdefgh abcdefgh\tabcdefgh  abcdefgh abcdefgh \r\n  \r\n",
	};
	static const char *const pieces[] = {
		"a",
		"word",
		"abcdefghijklmnopq",
		" ",
		"  ",
		"\t",
		" \t ",
		"\r\n",
		"\r\n",
		"\r\n\r\n",
		"\r",
		"\n",
		"!",
		"\xe9",
		"\x01",
		" !",
	};
	unsigned bad = 0;
	char body[400];

	srand(8);
	for (size_t i = 0; i < sizeof(tricky) / sizeof(tricky[0]); i++)
		for (int relaxed = 0; relaxed < 2; relaxed++)
			bad += check_splits(tricky[i], tricky[i], strlen(tricky[i]), relaxed);
	/* random bodies of those pieces, a few hundred bytes each */
	for (unsigned r = 0; r < 300; r++) {
		size_t len = 0, target = (size_t)rand() % 300;
		char label[32];
		while (len < target) {
			const char *piece =
			    pieces[(size_t)rand() % (sizeof(pieces) / sizeof(pieces[0]))];
			size_t pl = strlen(piece);
			memcpy(body + len, piece, pl);
			len += pl;
		}
		snprintf(label, sizeof(label), "random body %u", r);
		for (int relaxed = 0; relaxed < 2; relaxed++)
			bad += check_splits(label, body, len, relaxed);
	}
	cr_expect_eq(bad, 0, "%u body hashes differ from the whole-body reference", bad);
}

Test(sign, from_domain)
{
	static const struct {
		const char *label, *value, *want; /* want NULL: refused */
	} cases[] = {
		{ "bare", " a@Example.COM", "example.com" },
		{ "angle", " Alice <alice@example.com>", "example.com" },
		{ "quoted display with @", " \"x@evil.test\" <a@example.com>", "example.com" },
		{ "comment", " a@example.com (Alice)", "example.com" },
		{ "folded", " Alice\r\n <a@example.com>", "example.com" },
		{ "trailing dot", " <a@example.com.>", "example.com" },
		{ "two mailboxes", " a@example.com, b@evil.test", NULL },
		{ "two angles", " <a@example.com> <b@evil.test>", NULL },
		{ "no at", " alice", NULL },
		{ "two at", " a@b@example.com", NULL },
		{ "bad domain", " a@exa mple.com", NULL },
		{ "unbalanced", " \"a <a@example.com>", NULL },
		{ "empty domain", " a@", NULL },
		{ "domain with quote", " <a@exa\"mple.com>", NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[256];
		int rc =
		    moat_sign_from_domain(cases[i].value, strlen(cases[i].value), out, sizeof(out));
		if (cases[i].want == NULL) {
			cr_expect_eq(rc, -1, "%s: accepted as %s", cases[i].label,
			    rc == 0 ? out : "");
		} else {
			cr_expect_eq(rc, 0, "%s: refused", cases[i].label);
			if (rc == 0)
				cr_expect_str_eq(out, cases[i].want, "%s", cases[i].label);
		}
	}
}

static char dir[] = "/tmp/moat-sign.XXXXXX";

static void
setup(void)
{
	char row[1024];
	cr_assert_not_null(mkdtemp(dir));
	write_key(dir, "r.key", "RSA", 2048);
	write_key(dir, "e.key", "ED25519", 0);
	snprintf(row, sizeof(row),
	    "sign.test rs rsa-sha256 r.key\nsign.test ed ed25519-sha256 %s/e.key\n", dir);
	write_file(dir, "table", row);
}

static void
teardown(void)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
}

static const char *const message_headers[] = {
	"From: Alice <alice@sign.test>",
	"To: bob@example.net",
	"Subject: hello\r\n there",
	"Date: Sun, 22 Nov 2026 21:00:00 +0000",
	"Message-ID: <1@sign.test>",
};
static const char message_body[] = "Hello  there\r\n\r\n.dot\r\n\r\n";

/* run - one transaction from ADDR through the policy; the edits are copied into out. */
static size_t
run(const char *addr, const char *extra_override, char values[][4096], struct moat_verdict *v)
{
	char err[MOAT_CONF_ERR_MAX], table[600];
	struct moat_conf_override ov[5];
	size_t nov = 0, n;
	struct moat_conf *conf;
	struct moat_policy *pol;
	struct moat_session *s;
	struct moat_client c = { .addr = addr, .port = 1, .name = "c", .listener = "l" };
	const struct moat_hdr_edit *e;
	char ovbuf[200];

	snprintf(table, sizeof(table), "%s/table", dir);
	ov[nov++] = (struct moat_conf_override){ "dkim_signing_table", table };
	ov[nov++] = (struct moat_conf_override){ "internal_networks", "192.0.2.0/24" };
	ov[nov++] = (struct moat_conf_override){ "daemon_user", "root" };
	/* no DNS here: inbound mail gets no Authentication-Results edit (test_auth covers that) */
	ov[nov++] = (struct moat_conf_override){ "auth_inbound", "no" };
	if (extra_override != NULL) {
		snprintf(ovbuf, sizeof(ovbuf), "%s", extra_override);
		cr_assert_eq(moat_conf_parse_override(ovbuf, &ov[nov]), 0);
		nov++;
	}
	conf = moat_conf_load(NULL, ov, nov, err, sizeof(err));
	cr_assert_not_null(conf, "%s", err);
	pol = moat_policy_new(conf, 0, err, sizeof(err));
	cr_assert_not_null(pol, "%s", err);
	moat_conf_unref(conf);
	s = moat_session_new(pol, &c);
	cr_assert_not_null(s);
	cr_assert_eq(moat_session_connect(s, v), MOAT_EVENT_DONE);
	moat_session_helo(s, "c", true, v);
	moat_session_mail(s, "alice@sign.test", NULL, v);
	moat_session_rcpt(s, "bob@example.net", NULL, v);
	moat_session_data(s, v);
	for (size_t i = 0; i < sizeof(message_headers) / sizeof(message_headers[0]); i++)
		moat_session_header(s, message_headers[i], strlen(message_headers[i]), v);
	moat_session_eoh(s, v);
	moat_session_body(s, message_body, 7, v);
	moat_session_body(s, message_body + 7, strlen(message_body) - 7, v);
	moat_session_eom(s, v);
	e = moat_session_edits(s, &n);
	for (size_t i = 0; i < n; i++) {
		cr_expect_eq(e[i].op, MOAT_HDR_INSERT_TOP);
		cr_expect_str_eq(e[i].name, "DKIM-Signature");
		snprintf(values[i], 4096, "%s", e[i].value);
	}
	moat_session_free(s);
	moat_policy_free(pol);
	return n;
}

/* verify - libopendkim's verifier on "DKIM-Signature: VALUE" + the message, key from DNS. */
static DKIM_STAT
verify(const char *value, const char *body, const char *extra_header)
{
	char err[256], pub[1024], txt[1200], path[600], *pem;
	struct moat_dns *dns = moat_dns_new_fixture();
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	DKIM_STAT st;
	DKIM *d;
	FILE *fp;
	long len;
	const char *sel = strstr(value, "a=ed25519") ? "ed" : "rs";

	snprintf(path, sizeof(path), "%s/%s.key", dir, sel[0] == 'e' ? "e" : "r");
	fp = fopen(path, "r");
	pem = calloc(1, 8192);
	len = (long)fread(pem, 1, 8191, fp);
	fclose(fp);
	cr_assert_eq(moat_keyfile_public(pem, (size_t)len, pub, sizeof(pub)), 0);
	free(pem);
	snprintf(txt, sizeof(txt), "v=DKIM1; k=%s; p=%s", sel[0] == 'e' ? "ed25519" : "rsa", pub);
	snprintf(path, sizeof(path), "%s._domainkey.sign.test", sel);
	moat_dns_fixture_add(dns, path, MOAT_DNS_TXT, 0, txt, strlen(txt));
	cr_assert_eq(moat_dns_dkim_attach(lib, dns), 0, "%s", err);
	d = dkim_verify(lib, (const unsigned char *)"t", NULL, &st);
	cr_assert_not_null(d);
	{
		char field[5000];
		snprintf(field, sizeof(field), "DKIM-Signature: %s", value);
		dkim_header(d, (unsigned char *)field, strlen(field));
	}
	if (extra_header != NULL)
		dkim_header(d, (unsigned char *)extra_header, strlen(extra_header));
	for (size_t i = 0; i < sizeof(message_headers) / sizeof(message_headers[0]); i++)
		dkim_header(d, (unsigned char *)message_headers[i], strlen(message_headers[i]));
	dkim_eoh(d);
	dkim_body(d, (unsigned char *)body, strlen(body));
	st = dkim_eom(d, NULL);
	dkim_free(d);
	dkim_close(lib);
	moat_dns_free(dns);
	return st;
}

Test(sign, outbound_signed_both_algorithms, .init = setup, .fini = teardown)
{
	char values[8][4096];
	struct moat_verdict v;
	size_t n = run("192.0.2.10", NULL, values, &v);

	cr_assert_eq(v.action, MOAT_CONTINUE);
	cr_assert_eq(n, 2, "edits: %zu", n);
	cr_expect(strstr(values[0], "a=rsa-sha256;") != NULL, "%s", values[0]);
	cr_expect(strstr(values[1], "a=ed25519-sha256;") != NULL, "%s", values[1]);
	for (size_t i = 0; i < 2; i++) {
		cr_expect(strstr(values[i], "d=sign.test;") != NULL);
		cr_expect(strstr(values[i], "c=relaxed/relaxed;") != NULL);
		cr_expect(strstr(values[i], " t=") != NULL || strstr(values[i], "\tt=") != NULL);
		cr_expect(strstr(values[i], "l=") == NULL);
		cr_expect(strstr(values[i], "\r\n\t") != NULL, "folded with CRLF + tab");
		cr_expect_eq(verify(values[i], message_body, NULL), DKIM_STAT_OK,
		    "libopendkim verifies %zu", i);
		cr_expect_neq(verify(values[i], "Hello  there!\r\n", NULL), DKIM_STAT_OK,
		    "changed body %zu", i);
		cr_expect_neq(verify(values[i], message_body, "Subject: replayed"), DKIM_STAT_OK,
		    "second Subject %zu", i);
	}
}

Test(sign, inbound_not_signed, .init = setup, .fini = teardown)
{
	char values[8][4096];
	struct moat_verdict v;

	cr_expect_eq(run("198.51.100.7", NULL, values, &v), 0);
	cr_expect_eq(v.action, MOAT_CONTINUE);
}

Test(sign, simple_simple_verifies, .init = setup, .fini = teardown)
{
	char values[8][4096];
	struct moat_verdict v;
	size_t n = run("192.0.2.10", "dkim_sign_canonicalization=simple/simple", values, &v);

	cr_assert_eq(n, 2);
	for (size_t i = 0; i < 2; i++) {
		cr_expect(strstr(values[i], "c=simple/simple;") != NULL);
		cr_expect_eq(verify(values[i], message_body, NULL), DKIM_STAT_OK, "%zu", i);
	}
}

Test(sign, header_overflow_fails, .init = setup, .fini = teardown)
{
	char err[MOAT_CONF_ERR_MAX], table[600], *vals[MOAT_SIGN_KEYS_MAX], why[256];
	struct moat_conf_override ov[3];
	struct moat_conf *conf;
	struct moat_sign *s;
	size_t n = 9;

	snprintf(table, sizeof(table), "%s/table", dir);
	ov[0] = (struct moat_conf_override){ "dkim_signing_table", table };
	ov[1] = (struct moat_conf_override){ "daemon_user", "root" };
	ov[2] = (struct moat_conf_override){ "limit_header_count", "16" };
	conf = moat_conf_load(NULL, ov, 3, err, sizeof(err));
	cr_assert_not_null(conf, "%s", err);
	s = moat_sign_begin(conf->signer);
	for (int i = 0; i < 17; i++)
		moat_sign_header(s, "From: a@sign.test", 17);
	cr_expect_eq(moat_sign_end(s, vals, MOAT_SIGN_KEYS_MAX, &n, why, sizeof(why)),
	    MOAT_SIGN_FAILED);
	cr_expect_eq(n, 0);
	cr_expect_str_eq(why, "header too large to sign");
	moat_sign_free(s);
	moat_conf_unref(conf);
}

/* only_domain - a moat_sign_restrict predicate allowing the one domain ARG. */
static bool
only_domain(void *arg, const char *domain)
{
	return strcmp(domain, arg) == 0;
}

/* restricted - sign one message with the table's two sign.test rows, d= restricted to ALLOWED;
 * the status, with the number of signatures in *n. */
static enum moat_sign_status
restricted(const char *allowed, size_t *n)
{
	char err[MOAT_CONF_ERR_MAX], table[600], *vals[MOAT_SIGN_KEYS_MAX], why[256];
	struct moat_conf_override ov[2];
	struct moat_conf *conf;
	struct moat_sign *s;
	enum moat_sign_status st;

	snprintf(table, sizeof(table), "%s/table", dir);
	ov[0] = (struct moat_conf_override){ "dkim_signing_table", table };
	ov[1] = (struct moat_conf_override){ "daemon_user", "root" };
	conf = moat_conf_load(NULL, ov, 2, err, sizeof(err));
	cr_assert_not_null(conf, "%s", err);
	s = moat_sign_begin(conf->signer);
	cr_assert_not_null(s);
	moat_sign_restrict(s, only_domain, (void *)allowed);
	for (size_t i = 0; i < sizeof(message_headers) / sizeof(message_headers[0]); i++)
		moat_sign_header(s, message_headers[i], strlen(message_headers[i]));
	moat_sign_eoh(s);
	moat_sign_body(s, message_body, strlen(message_body));
	st = moat_sign_end(s, vals, MOAT_SIGN_KEYS_MAX, n, why, sizeof(why));
	if (st == MOAT_SIGN_NO_KEY)
		cr_expect_str_eq(why,
		    "no signing table row for sign.test with a d= of the login's domains");
	for (size_t i = 0; i < *n; i++)
		free(vals[i]);
	moat_sign_free(s);
	moat_conf_unref(conf);
	return st;
}

/* sender_login_map: a row whose d= is not the login's signs nothing */
Test(sign, restricted_domains, .init = setup, .fini = teardown)
{
	size_t n = 9;

	cr_expect_eq(restricted("sign.test", &n), MOAT_SIGN_OK);
	cr_expect_eq(n, 2, "both rows sign for an allowed d=");
	cr_expect_eq(restricted("other.test", &n), MOAT_SIGN_NO_KEY);
	cr_expect_eq(n, 0, "none for a d= not allowed");
}
