/*
 * test_auth.c - the authentication engine end to end on one message, with keys and DMARC
 * records in the DNS layer's fixture: the exact Authentication-Results written, forged A-R
 * removal (several forged fields, indices last first), hostile values escaped, and every
 * configured action (p=reject / quarantine, never- and force-reject lists, temperror, bad From,
 * SPF). Messages are signed here with libopendkim using keys made at test time (OpenSSL).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <opendkim/dkim.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "auth.h"
#include "authres.h"
#include "authres_parse.h"

#define AUTHSERV "mx.test"

/* ---- keys ---- */

struct key {
	char pem[4096];
	char txt[2100]; /* the DNS TXT record */
};

static void
make_rsa_key(struct key *k, int bits)
{
	EVP_PKEY *pk = EVP_RSA_gen((unsigned)bits);
	BIO *b = BIO_new(BIO_s_mem());
	unsigned char der[2048], *p = der;
	char b64[2048];
	char *data;
	long n;
	int dl;

	cr_assert_not_null(pk);
	cr_assert(PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL));
	n = BIO_get_mem_data(b, &data);
	cr_assert_lt((size_t)n, sizeof(k->pem));
	memcpy(k->pem, data, (size_t)n);
	k->pem[n] = '\0';
	dl = i2d_PUBKEY(pk, &p);
	cr_assert_gt(dl, 0);
	EVP_EncodeBlock((unsigned char *)b64, der, dl);
	snprintf(k->txt, sizeof(k->txt), "v=DKIM1; k=rsa; p=%s", b64);
	BIO_free(b);
	EVP_PKEY_free(pk);
}

/* sign - a DKIM-Signature field (with CRLF) for MSG; length -1 signs the whole body. */
static void
sign(const struct key *k, const char *sel, const char *dom, dkim_alg_t alg, ssize_t length,
    const char *msg, char *out, size_t outlen)
{
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	DKIM_STAT st;
	DKIM *d;
	unsigned char hdr[4096];
	size_t i, o;

	cr_assert_not_null(lib);
	d = dkim_sign(lib, (const unsigned char *)"t", NULL, (dkim_sigkey_t)k->pem,
	    (const unsigned char *)sel, (const unsigned char *)dom, DKIM_CANON_RELAXED,
	    DKIM_CANON_RELAXED, alg, length, &st);
	cr_assert_not_null(d, "dkim_sign: %d", st);
	cr_assert_eq(dkim_chunk(d, (unsigned char *)msg, strlen(msg)), DKIM_STAT_OK);
	cr_assert_eq(dkim_chunk(d, NULL, 0), DKIM_STAT_OK);
	cr_assert_eq(dkim_eom(d, NULL), DKIM_STAT_OK);
	cr_assert_eq(dkim_getsighdr(d, hdr, sizeof(hdr), strlen("DKIM-Signature: ")), DKIM_STAT_OK);
	o = (size_t)snprintf(out, outlen, "DKIM-Signature: ");
	for (i = 0; hdr[i] && o + 3 < outlen; i++) {
		if (hdr[i] == '\n' && (i == 0 || hdr[i - 1] != '\r'))
			out[o++] = '\r';
		out[o++] = (char)hdr[i];
	}
	out[o++] = '\r';
	out[o++] = '\n';
	out[o] = '\0';
	dkim_free(d);
	dkim_close(lib);
}

/* ---- running the engine ---- */

struct run {
	struct moat_conf *conf;
	struct moat_auth_engine *e;
	struct moat_auth_msg *m;
	struct moat_verdict v;
	const struct moat_auth_results *r;
	struct moat_hdr_edit edits[64];
	size_t nedits;
};

static struct moat_conf *
conf_with(const char *k1, const char *v1, const char *k2, const char *v2)
{
	struct moat_conf_override ov[4] = { { "authserv_id", AUTHSERV } };
	size_t n = 1;
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf *c;

	if (k1) {
		ov[n].key = k1;
		ov[n++].value = v1;
	}
	if (k2) {
		ov[n].key = k2;
		ov[n++].value = v2;
	}
	c = moat_conf_load(NULL, ov, n, err, sizeof(err));
	cr_assert_not_null(c, "%s", err);
	return c;
}

/* run_msg - feed MSG (CRLF, folded fields) through the engine. */
static void
run_msg(struct run *run, struct moat_dns *dns, struct moat_conf *conf, const char *client,
    const char *helo, const char *mail_from, const char *msg)
{
	struct moat_auth_env env = { .client_addr = client, .helo = helo, .mail_from = mail_from };
	const char *p = msg, *body;

	memset(run, 0, sizeof(*run));
	run->conf = conf;
	run->e = moat_auth_engine_new_dns(dns, conf, 0);
	cr_assert_not_null(run->e);
	run->m = moat_auth_msg_new(run->e, conf, &env);
	cr_assert_not_null(run->m);
	body = strstr(msg, "\r\n\r\n");
	cr_assert_not_null(body);
	while (p < body + 2) {
		const char *e = p;
		/* a field ends at a CRLF not followed by WSP */
		for (;;) {
			e = strstr(e, "\r\n");
			if (e[2] != ' ' && e[2] != '\t')
				break;
			e += 2;
		}
		moat_auth_header(run->m, p, (size_t)(e - p));
		p = e + 2;
	}
	moat_auth_eoh(run->m);
	moat_auth_body(run->m, body + 4, strlen(body + 4));
	moat_auth_eom(run->m, &run->v);
	run->r = moat_auth_results(run->m);
	run->nedits = moat_auth_edits(run->m, run->edits, 64);
}

static void
run_free(struct run *run)
{
	moat_auth_msg_free(run->m);
	moat_auth_engine_free(run->e);
	moat_conf_unref(run->conf);
}

static struct key rsa2048;
static bool have_key;

static struct moat_dns *
zone(void)
{
	struct moat_dns *d = moat_dns_new_fixture();
	static const unsigned char a[4] = { 192, 0, 2, 1 };
	const char *t;

	cr_assert_not_null(d);
	if (!have_key) {
		make_rsa_key(&rsa2048, 2048);
		have_key = true;
	}
	moat_dns_fixture_add(d, "sel._domainkey.example.com", MOAT_DNS_TXT, 0, rsa2048.txt,
	    strlen(rsa2048.txt));
	moat_dns_fixture_add(d, "example.com", MOAT_DNS_A, 0, a, 4);
	t = "v=DMARC1; p=reject";
	moat_dns_fixture_add(d, "_dmarc.example.com", MOAT_DNS_TXT, 0, t, strlen(t));
	t = "v=spf1 ip4:192.0.2.0/24 -all";
	moat_dns_fixture_add(d, "example.com", MOAT_DNS_TXT, 0, t, strlen(t));
	t = "v=DMARC1; p=quarantine";
	moat_dns_fixture_add(d, "_dmarc.quar.example", MOAT_DNS_TXT, 0, t, strlen(t));
	moat_dns_fixture_add(d, "quar.example", MOAT_DNS_A, 0, a, 4);
	moat_dns_fixture_add(d, "nopolicy.example", MOAT_DNS_A, 0, a, 4);
	moat_dns_fixture_fail(d, "_dmarc.temp.example", 0, MOAT_DNS_TEMPFAIL);
	return d;
}

static const char base_msg[] = "Date: Sun, 22 Nov 2026 21:00:00 +0000\r\n"
			       "From: Alice <alice@example.com>\r\n"
			       "To: bob@example.net\r\n"
			       "Subject: hello\r\n"
			       "\r\n"
			       "Hello, world.\r\n";

/* signed_msg - SIG (with CRLF) + MSG into out. */
static void
join(char *out, size_t outlen, const char *a, const char *b)
{
	snprintf(out, outlen, "%s%s", a, b);
}

/* ---- tests ---- */

Test(auth, dkim_pass_aligned_gives_dmarc_pass)
{
	struct moat_dns *dns = zone();
	char sig[4096], msg[8192];
	struct run r;

	sign(&rsa2048, "sel", "example.com", DKIM_SIGN_RSASHA256, -1, base_msg, sig, sizeof(sig));
	join(msg, sizeof(msg), sig, base_msg);
	run_msg(&r, dns, conf_with(NULL, NULL, NULL, NULL), "198.51.100.7", "mta.example.net",
	    "x@example.net", msg);
	cr_assert_eq(r.r->ndkim, 1u);
	cr_expect_eq(r.r->dkim[0].result, MOAT_DKIM_PASS, "%s", r.r->dkim[0].reason);
	cr_expect_eq(r.r->dkim[0].key_bits, 2048u);
	cr_expect_eq(r.r->dmarc.result, MOAT_DMARC_PASS);
	cr_expect_eq(r.v.action, MOAT_CONTINUE);
	{
		char want[1024], b[32];
		cr_assert_gt(moat_authres_value(r.r->dkim[0].b, b, sizeof(b)), 0);
		snprintf(want, sizeof(want),
		    AUTHSERV
		    "; spf=none reason=\"no SPF record at example.net\" smtp.mailfrom=x@example.net; "
		    "spf=none smtp.helo=mta.example.net; "
		    "dkim=pass header.d=example.com header.s=sel header.a=rsa-sha256 header.b=%s; "
		    "dmarc=pass header.from=example.com policy.dmarc=reject",
		    b);
		cr_expect_str_eq(r.r->authres, want);
	}
	cr_expect_eq(strlen(r.r->dkim[0].b), 8u);
	cr_assert_eq(r.nedits, 1u);
	cr_expect_eq(r.edits[0].op, MOAT_HDR_INSERT_TOP);
	cr_expect_str_eq(r.edits[0].name, "Authentication-Results");
	cr_expect_not_null(strstr(r.edits[0].value, ";\r\n\tdkim=pass"));
	run_free(&r);
	moat_dns_free(dns);
}

Test(auth, spoofed_from_rejected_by_p_reject)
{
	struct moat_dns *dns = zone();
	struct run r;

	run_msg(&r, dns, conf_with(NULL, NULL, NULL, NULL), "198.51.100.7", "mta.evil.test",
	    "x@evil.test", base_msg);
	cr_expect_eq(r.r->dmarc.result, MOAT_DMARC_FAIL);
	cr_expect_eq(r.v.action, MOAT_REJECT);
	cr_expect_eq(r.v.code, 550u);
	cr_expect_str_eq(r.v.status, "5.7.1");
	cr_expect_str_eq(r.v.text, "Message rejected: DMARC policy of example.com");
	cr_expect_not_null(strstr(r.r->authres,
			       "; dkim=none; dmarc=fail reason=\"no aligned SPF or DKIM pass"
			       " for example.com (relaxed alignment)\" header.from=example.com policy.dmarc=reject"),
	    "%s", r.r->authres);
	run_free(&r);
	moat_dns_free(dns);
}

Test(auth, spf_aligned_pass)
{
	struct moat_dns *dns = zone();
	struct run r;

	run_msg(&r, dns, conf_with(NULL, NULL, NULL, NULL), "192.0.2.9", "mta.example.com",
	    "bounce@example.com", base_msg);
	cr_expect_eq(r.r->spf_mailfrom.result, MOAT_SPF_PASS);
	cr_expect_eq(r.r->dmarc.result, MOAT_DMARC_PASS);
	cr_expect(r.r->dmarc.spf_aligned);
	cr_expect_eq(r.v.action, MOAT_CONTINUE);
	run_free(&r);
	moat_dns_free(dns);
}

struct action_case {
	const char *label;
	const char *k1, *v1, *k2, *v2;
	const char *from;
	enum moat_action action;
	unsigned code;
	const char *status;
};

static const struct action_case action_cases[] = {
	{ "p=reject default", NULL, NULL, NULL, NULL, "a@example.com", MOAT_REJECT, 550, "5.7.1" },
	{ "p=reject as quarantine", "dmarc_reject_action", "quarantine", NULL, NULL,
	    "a@example.com", MOAT_QUARANTINE, 0, "" },
	{ "p=reject tag only", "dmarc_reject_action", "tag", NULL, NULL, "a@example.com",
	    MOAT_CONTINUE, 0, "" },
	{ "never-reject list", "dmarc_never_reject", "other.test, example.com", NULL, NULL,
	    "a@example.com", MOAT_QUARANTINE, 0, "" },
	{ "never-reject list, tag", "dmarc_never_reject", "example.com", "dmarc_quarantine_action",
	    "tag", "a@example.com", MOAT_CONTINUE, 0, "" },
	{ "p=quarantine", NULL, NULL, NULL, NULL, "a@quar.example", MOAT_QUARANTINE, 0, "" },
	{ "p=quarantine tag only", "dmarc_quarantine_action", "tag", NULL, NULL, "a@quar.example",
	    MOAT_CONTINUE, 0, "" },
	{ "no policy", NULL, NULL, NULL, NULL, "a@nopolicy.example", MOAT_CONTINUE, 0, "" },
	{ "force-reject without policy", "dmarc_force_reject", "nopolicy.example", NULL, NULL,
	    "a@nopolicy.example", MOAT_REJECT, 550, "5.7.1" },
	{ "force-reject subdomain", "dmarc_force_reject", "example", NULL, NULL,
	    "a@nopolicy.example", MOAT_REJECT, 550, "5.7.1" },
	{ "force-reject not a suffix match", "dmarc_force_reject", "policy.example", NULL, NULL,
	    "a@nopolicy.example", MOAT_CONTINUE, 0, "" },
	{ "temperror tempfails", NULL, NULL, NULL, NULL, "a@temp.example", MOAT_TEMPFAIL, 451,
	    "4.7.1" },
	{ "temperror continue", "dmarc_temperror_action", "continue", NULL, NULL, "a@temp.example",
	    MOAT_CONTINUE, 0, "" },
};

Test(auth, configured_actions)
{
	struct moat_dns *dns = zone();

	for (size_t i = 0; i < sizeof(action_cases) / sizeof(action_cases[0]); i++) {
		const struct action_case *c = &action_cases[i];
		char msg[512];
		struct run r;

		snprintf(msg, sizeof(msg), "From: %s\r\nSubject: x\r\n\r\nbody\r\n", c->from);
		run_msg(&r, dns, conf_with(c->k1, c->v1, c->k2, c->v2), "198.51.100.7",
		    "h.evil.test", "x@evil.test", msg);
		cr_expect_eq(r.v.action, c->action, "%s: %s (%s)", c->label,
		    moat_action_name(r.v.action), r.r->why);
		cr_expect_eq(r.v.code, c->code, "%s: code %u", c->label, r.v.code);
		cr_expect_str_eq(r.v.status, c->status, "%s", c->label);
		run_free(&r);
	}
	moat_dns_free(dns);
}

struct from_case {
	const char *label;
	const char *headers;
};

static const struct from_case bad_from[] = {
	{ "no From", "To: a@example.com\r\n" },
	{ "two From", "From: a@evil.test\r\nFrom: a@example.com\r\n" },
	{ "From space colon", "From : a@evil.test\r\nFrom: a@example.com\r\n" },
	{ "two mailboxes", "From: a@evil.test, a@example.com\r\n" },
	{ "encoded-word", "From: =?utf-8?B?YUBleGFtcGxlLmNvbQ==?= <a@evil.test>\r\n" },
	{ "unbalanced", "From: <a@example.com\r\n" },
};

Test(auth, bad_from_is_permerror_and_rejected)
{
	struct moat_dns *dns = zone();

	for (size_t i = 0; i < sizeof(bad_from) / sizeof(bad_from[0]); i++) {
		char msg[512];
		struct run r;

		snprintf(msg, sizeof(msg), "%sSubject: x\r\n\r\nbody\r\n", bad_from[i].headers);
		run_msg(&r, dns, conf_with(NULL, NULL, NULL, NULL), "192.0.2.9", "h.example.com",
		    "a@example.com", msg);
		cr_expect_eq(r.r->dmarc.result, MOAT_DMARC_PERMERROR, "%s", bad_from[i].label);
		cr_expect_eq(r.v.action, MOAT_REJECT, "%s", bad_from[i].label);
		cr_expect_eq(r.v.code, 550u, "%s", bad_from[i].label);
		cr_expect_str_eq(r.v.status, "5.7.1", "%s", bad_from[i].label);
		cr_expect_not_null(strstr(r.r->authres, "; dmarc=permerror reason="), "%s: %s",
		    bad_from[i].label, r.r->authres);
		cr_expect_null(strstr(r.r->authres, "header.from"), "%s", bad_from[i].label);
		run_free(&r);
	}
	/* tag only when so configured */
	{
		struct run r;
		run_msg(&r, dns, conf_with("dmarc_bad_from_action", "tag", NULL, NULL), "192.0.2.9",
		    "h.example.com", "a@example.com", "From: a@x.test, b@y.test\r\n\r\nb\r\n");
		cr_expect_eq(r.v.action, MOAT_CONTINUE);
		cr_expect_eq(r.r->dmarc.result, MOAT_DMARC_PERMERROR);
		run_free(&r);
	}
	moat_dns_free(dns);
}

Test(auth, spf_actions)
{
	struct moat_dns *dns = zone();
	struct run r;

	/* SPF fail alone does not reject by default (From without policy) */
	run_msg(&r, dns, conf_with(NULL, NULL, NULL, NULL), "198.51.100.7", "h.evil.test",
	    "x@example.com", "From: a@nopolicy.example\r\n\r\nb\r\n");
	cr_expect_eq(r.r->spf_mailfrom.result, MOAT_SPF_FAIL);
	cr_expect_eq(r.v.action, MOAT_CONTINUE);
	run_free(&r);
	run_msg(&r, dns, conf_with("spf_fail_action", "reject", NULL, NULL), "198.51.100.7",
	    "h.evil.test", "x@example.com", "From: a@nopolicy.example\r\n\r\nb\r\n");
	cr_expect_eq(r.v.action, MOAT_REJECT);
	cr_expect_eq(r.v.code, 550u);
	cr_expect_str_eq(r.v.status, "5.7.23");
	run_free(&r);
	moat_dns_free(dns);
}

/*
 * A spoofer's own DNS failing (its _dmarc, its SPF record, its DKIM key) leaves its identifiers
 * unaligned: a spoof of a p=reject domain stays dmarc=fail and 550, whatever
 * dmarc_temperror_action says.
 */
Test(auth, spoofer_dns_errors_keep_the_reject)
{
	static const char *temp_actions[] = { "tempfail", "continue" };
	struct moat_dns *dns = zone();
	const char *t = "v=spf1 ip4:198.51.100.0/24 -all";
	char sig[4096], msg[8192];

	moat_dns_fixture_add(dns, "spoof.test", MOAT_DNS_TXT, 0, t, strlen(t));
	moat_dns_fixture_fail(dns, "_dmarc.spoof.test", 0, MOAT_DNS_TEMPFAIL);
	moat_dns_fixture_fail(dns, "sel._domainkey.spoof.test", 0, MOAT_DNS_TEMPFAIL);
	moat_dns_fixture_fail(dns, "tempspf.test", 0, MOAT_DNS_TEMPFAIL);
	sign(&rsa2048, "sel", "spoof.test", DKIM_SIGN_RSASHA256, -1, base_msg, sig, sizeof(sig));
	join(msg, sizeof(msg), sig, base_msg);
	for (size_t i = 0; i < sizeof(temp_actions) / sizeof(temp_actions[0]); i++) {
		struct run r;

		/* SPF passes for the spoofer's MAIL FROM domain, whose _dmarc SERVFAILs */
		run_msg(&r, dns, conf_with("dmarc_temperror_action", temp_actions[i], NULL, NULL),
		    "198.51.100.7", "mta.spoof.test", "x@spoof.test", base_msg);
		cr_expect_eq(r.r->spf_mailfrom.result, MOAT_SPF_PASS);
		cr_expect_eq(r.r->dmarc.result, MOAT_DMARC_FAIL, "%s: %s", temp_actions[i],
		    r.r->dmarc.reason);
		cr_expect_eq(r.v.action, MOAT_REJECT);
		cr_expect_eq(r.v.code, 550u);
		cr_expect_str_eq(r.v.status, "5.7.1");
		run_free(&r);
		/* an SPF temperror for the spoofer's MAIL FROM domain */
		run_msg(&r, dns, conf_with("dmarc_temperror_action", temp_actions[i], NULL, NULL),
		    "198.51.100.7", "mta.spoof.test", "x@tempspf.test", base_msg);
		cr_expect_eq(r.r->spf_mailfrom.result, MOAT_SPF_TEMPERROR);
		cr_expect_eq(r.r->dmarc.result, MOAT_DMARC_FAIL, "%s: %s", temp_actions[i],
		    r.r->dmarc.reason);
		cr_expect_eq(r.v.code, 550u);
		run_free(&r);
		/* a DKIM signature by the spoofer whose key lookup fails */
		run_msg(&r, dns, conf_with("dmarc_temperror_action", temp_actions[i], NULL, NULL),
		    "198.51.100.7", "mta.spoof.test", "x@spoof.test", msg);
		cr_assert_eq(r.r->ndkim, 1u);
		cr_expect_eq(r.r->dkim[0].result, MOAT_DKIM_TEMPERROR, "%s", r.r->dkim[0].reason);
		cr_expect_eq(r.r->dmarc.result, MOAT_DMARC_FAIL, "%s: %s", temp_actions[i],
		    r.r->dmarc.reason);
		cr_expect_eq(r.v.code, 550u);
		cr_expect_not_null(strstr(r.r->authres,
				       "dmarc=fail reason=\"no aligned SPF or DKIM pass for"
				       " example.com (relaxed alignment)\" header.from=example.com policy.dmarc=reject"),
		    "%s", r.r->authres);
		run_free(&r);
	}
	moat_dns_free(dns);
}

/* Our resolver failing for the From domain's own SPF record defers the mail, never bounces it. */
Test(auth, dns_outage_for_the_from_domain_defers)
{
	struct moat_dns *dns = zone();
	static const unsigned char a[4] = { 192, 0, 2, 1 };
	const char *t = "v=DMARC1; p=reject";
	static const char msg[] = "Date: Sun, 22 Nov 2026 21:00:00 +0000\r\n"
				  "From: Alice <alice@outage.example>\r\n"
				  "Subject: hello\r\n"
				  "\r\n"
				  "Hello, world.\r\n";
	struct run r;

	moat_dns_fixture_add(dns, "_dmarc.outage.example", MOAT_DNS_TXT, 0, t, strlen(t));
	moat_dns_fixture_add(dns, "outage.example", MOAT_DNS_A, 0, a, 4);
	moat_dns_fixture_fail(dns, "outage.example", MOAT_DNS_TXT, MOAT_DNS_TEMPFAIL);
	run_msg(&r, dns, conf_with(NULL, NULL, NULL, NULL), "192.0.2.9", "mta.outage.example",
	    "alice@outage.example", msg);
	cr_expect_eq(r.r->spf_mailfrom.result, MOAT_SPF_TEMPERROR);
	cr_expect_eq(r.r->dmarc.result, MOAT_DMARC_TEMPERROR, "%s", r.r->dmarc.reason);
	cr_expect_eq(r.v.action, MOAT_TEMPFAIL);
	cr_expect_eq(r.v.code, 451u);
	cr_expect_str_eq(r.v.status, "4.7.1");
	run_free(&r);
	moat_dns_free(dns);
}

Test(auth, forged_authres_removed_last_first)
{
	struct moat_dns *dns = zone();
	struct run r;
	static const char msg[] =
	    "Authentication-Results: mx.test; dmarc=pass header.from=example.com\r\n"
	    "Authentication-Results: other.example; spf=pass smtp.mailfrom=a@example.com\r\n"
	    "Authentication-Results: (forged) \"MX.TEST\";\r\n dkim=pass header.d=example.com\r\n"
	    "Received: from x by y\r\n"
	    "Authentication-Results: mx.test.; spf=pass\r\n"
	    "Authentication-Results: mx.test.example; spf=pass\r\n"
	    "Authentication-Results: \"unbalanced\r\n"
	    "Authentication-Results : mx.test; dkim=pass\r\n"
	    "From: a@example.com\r\n"
	    "\r\n"
	    "body\r\n";

	run_msg(&r, dns, conf_with("dmarc_reject_action", "tag", NULL, NULL), "198.51.100.7",
	    "h.evil.test", "x@evil.test", msg);
	cr_assert_eq(r.r->nforged, 5u);
	cr_assert_eq(r.nedits, 6u);
	/* "Authentication-Results" fields: 1 ours, 2 other, 3 ours, 4 ours, 5 other, 6 malformed */
	cr_expect_eq(r.edits[0].op, MOAT_HDR_DELETE);
	cr_expect_str_eq(r.edits[0].name, "Authentication-Results ");
	cr_expect_eq(r.edits[0].index, 1u);
	cr_expect_str_eq(r.edits[1].name, "Authentication-Results");
	cr_expect_eq(r.edits[1].index, 6u);
	cr_expect_eq(r.edits[2].index, 4u);
	cr_expect_eq(r.edits[3].index, 3u);
	cr_expect_eq(r.edits[4].index, 1u);
	cr_expect_eq(r.edits[5].op, MOAT_HDR_INSERT_TOP);
	cr_expect_eq(r.v.action, MOAT_CONTINUE);
	cr_expect_eq(r.r->dmarc.result, MOAT_DMARC_FAIL, "forged results are not believed");
	run_free(&r);
	moat_dns_free(dns);
}

Test(auth, too_many_forged_rejected)
{
	struct moat_dns *dns = zone();
	static char msg[8192];
	size_t o = 0;
	struct run r;

	for (int i = 0; i < MOAT_AUTH_FORGED_MAX + 1; i++)
		o += (size_t)snprintf(msg + o, sizeof(msg) - o,
		    "Authentication-Results: mx.test; spf=pass\r\n");
	snprintf(msg + o, sizeof(msg) - o, "From: a@nopolicy.example\r\n\r\nb\r\n");
	run_msg(&r, dns, conf_with(NULL, NULL, NULL, NULL), "198.51.100.7", "h.evil.test",
	    "x@evil.test", msg);
	cr_expect(r.r->forged_overflow);
	cr_expect_eq(r.v.action, MOAT_REJECT);
	cr_expect_eq(r.v.code, 550u);
	run_free(&r);
	moat_dns_free(dns);
}

Test(auth, hostile_values_escaped)
{
	struct moat_dns *dns = zone();
	struct run r;

	run_msg(&r, dns, conf_with(NULL, NULL, NULL, NULL), "198.51.100.7",
	    "a;dkim=pass header.d=example.com", "x\"; dmarc=pass@evil.test",
	    "From: a@nopolicy.example\r\n\r\nb\r\n");
	cr_expect_not_null(strstr(r.r->authres, "smtp.helo=\"a;dkim=pass header.d=example.com\""),
	    "%s", r.r->authres);
	/* exactly one dkim= and one dmarc= result outside quotes */
	{
		const char *p = r.r->authres;
		bool q = false;
		unsigned results = 0;
		for (; *p; p++) {
			if (q && *p == '\\' && p[1]) {
				p++;
				continue;
			}
			if (*p == '"')
				q = !q;
			if (!q && *p == ';')
				results++;
		}
		cr_expect_eq(results, 4u, "spf, spf, dkim, dmarc: %s", r.r->authres);
		cr_expect_not(q, "quotes balanced");
	}
	run_free(&r);
	moat_dns_free(dns);
}

Test(authres_parse, servid)
{
	static const struct {
		const char *field;
		bool ours;
	} cases[] = {
		{ "Authentication-Results: mx.test; none", true },
		{ "authentication-results: MX.Test; none", true },
		{ "Authentication-Results: (c) \"mx.test\" 1; none", true },
		{ "Authentication-Results:\r\n\tmx.test;\r\n\tspf=pass", true },
		{ "Authentication-Results: mx.test.; none", true },
		{ "Authentication-Results: mx.test.example; none", false },
		{ "Authentication-Results: xmx.test; none", false },
		{ "Authentication-Results: \"mx.test;\"; none", false },
		{ "Authentication-Results: (unbalanced mx.test; none", true },
		{ "Authentication-Results: ", true },
		{ "X-Authentication-Results: mx.test; none", false },
		{ "ARC-Authentication-Results: i=1; mx.test; none", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_expect_eq(moat_authres_is_ours(cases[i].field, strlen(cases[i].field), AUTHSERV),
		    cases[i].ours, "%s", cases[i].field);
}

/* ---- DKIM details ---- */

Test(auth, body_length_tag_with_appended_content_is_policy)
{
	struct moat_dns *dns = zone();
	char sig[4096], msg[8192];
	struct run r;

	sign(&rsa2048, "sel", "example.com", DKIM_SIGN_RSASHA256,
	    (ssize_t)strlen("Hello, world.\r\n"), base_msg, sig, sizeof(sig));
	cr_assert_not_null(strstr(sig, "l=15"), "%s", sig);
	snprintf(msg, sizeof(msg), "%s%sAppended by an attacker.\r\n", sig, base_msg);
	run_msg(&r, dns, conf_with(NULL, NULL, NULL, NULL), "198.51.100.7", "h.evil.test",
	    "x@evil.test", msg);
	cr_assert_eq(r.r->ndkim, 1u);
	cr_expect_eq(r.r->dkim[0].result, MOAT_DKIM_POLICY, "%s",
	    moat_dkim_result_name(r.r->dkim[0].result));
	cr_expect_eq(r.r->dkim[0].body_signed, 15);
	cr_expect_eq(r.r->dkim[0].body_total, 41);
	cr_expect_str_eq(r.r->dkim[0].reason, "l=15 signs 15 of 41 body bytes");
	cr_expect_eq(r.r->dmarc.result, MOAT_DMARC_FAIL, "policy is not a pass for DMARC");
	run_free(&r);

	/* without appended content the same signature passes */
	join(msg, sizeof(msg), sig, base_msg);
	run_msg(&r, dns, conf_with(NULL, NULL, NULL, NULL), "198.51.100.7", "h.evil.test",
	    "x@evil.test", msg);
	cr_expect_eq(r.r->dkim[0].result, MOAT_DKIM_PASS);
	run_free(&r);

	/* and with dkim_body_length_pass the appended copy passes */
	snprintf(msg, sizeof(msg), "%s%sAppended by an attacker.\r\n", sig, base_msg);
	run_msg(&r, dns, conf_with("dkim_body_length_pass", "yes", NULL, NULL), "198.51.100.7",
	    "h.evil.test", "x@evil.test", msg);
	cr_expect_eq(r.r->dkim[0].result, MOAT_DKIM_PASS);
	run_free(&r);
	moat_dns_free(dns);
}

Test(auth, rsa_sha1_fails)
{
	struct moat_dns *dns = zone();
	char sig[4096], msg[8192];
	struct run r;

	sign(&rsa2048, "sel", "example.com", DKIM_SIGN_RSASHA1, -1, base_msg, sig, sizeof(sig));
	join(msg, sizeof(msg), sig, base_msg);
	run_msg(&r, dns, conf_with(NULL, NULL, NULL, NULL), "198.51.100.7", "h.evil.test",
	    "x@evil.test", msg);
	cr_expect_eq(r.r->dkim[0].result, MOAT_DKIM_FAIL);
	cr_expect_str_eq(r.r->dkim[0].alg, "rsa-sha1");
	cr_expect_str_eq(r.r->dkim[0].reason, "rsa-sha1 is not accepted (RFC 8301)");
	cr_expect_eq(r.v.action, MOAT_REJECT);
	run_free(&r);

	/* RSA keys under 1024 bits: libopendkim will not sign with one; tests/e2e/dkim_cross.sh
	 * signs with dkimpy instead. */
	moat_dns_free(dns);
}

Test(auth, signature_cap)
{
	struct moat_dns *dns = zone();
	static char msg[65536];
	char sig[4096];
	size_t o = 0;
	struct run r;

	sign(&rsa2048, "sel", "example.com", DKIM_SIGN_RSASHA256, -1, base_msg, sig, sizeof(sig));
	for (int i = 0; i < 7; i++)
		o += (size_t)snprintf(msg + o, sizeof(msg) - o, "%s", sig);
	snprintf(msg + o, sizeof(msg) - o, "%s", base_msg);
	run_msg(&r, dns, conf_with(NULL, NULL, NULL, NULL), "198.51.100.7", "h.evil.test",
	    "x@evil.test", msg);
	cr_assert_eq(r.r->ndkim, 7u);
	for (int i = 0; i < 5; i++)
		cr_expect_eq(r.r->dkim[i].result, MOAT_DKIM_PASS, "sig %d: %s", i,
		    r.r->dkim[i].reason);
	for (int i = 5; i < 7; i++) {
		cr_expect_eq(r.r->dkim[i].result, MOAT_DKIM_POLICY, "sig %d", i);
		cr_expect_str_eq(r.r->dkim[i].reason, "not evaluated: more than 5 signatures");
	}
	cr_expect_leq(moat_dns_fixture_queries(dns), 20u);
	run_free(&r);
	moat_dns_free(dns);
}

Test(auth, tampered_and_hostile_signatures)
{
	struct moat_dns *dns = zone();
	char sig[4096], msg[8192];
	struct run r;

	sign(&rsa2048, "sel", "example.com", DKIM_SIGN_RSASHA256, -1, base_msg, sig, sizeof(sig));
	snprintf(msg, sizeof(msg),
	    "%sDate: Sun, 22 Nov 2026 21:00:00 +0000\r\nFrom: Alice <alice@example.com>\r\nTo: bob@example.net\r\n"
	    "Subject: hello\r\n\r\nHello, World.\r\n",
	    sig);
	run_msg(&r, dns, conf_with(NULL, NULL, NULL, NULL), "198.51.100.7", "h.evil.test",
	    "x@evil.test", msg);
	cr_expect_eq(r.r->dkim[0].result, MOAT_DKIM_FAIL);
	cr_expect_str_eq(r.r->dkim[0].reason, "body hash did not verify");
	run_free(&r);

	/* a quote in d= never reaches libopendkim or the DNS */
	snprintf(msg, sizeof(msg),
	    "DKIM-Signature: v=1; a=rsa-sha256; d=exa\"mple.com; s=sel; h=from; "
	    "bh=AAAA; b=AAAA\r\n%s",
	    base_msg);
	run_msg(&r, dns, conf_with(NULL, NULL, NULL, NULL), "198.51.100.7", "h.evil.test",
	    "x@evil.test", msg);
	cr_assert_eq(r.r->ndkim, 1u);
	cr_expect_eq(r.r->dkim[0].result, MOAT_DKIM_PERMERROR);
	cr_expect_str_eq(r.r->dkim[0].reason, "malformed DKIM-Signature tag list");
	cr_expect_str_eq(r.r->dkim[0].domain, "");
	run_free(&r);

	/* no key */
	sign(&rsa2048, "gone", "example.com", DKIM_SIGN_RSASHA256, -1, base_msg, sig, sizeof(sig));
	join(msg, sizeof(msg), sig, base_msg);
	run_msg(&r, dns, conf_with(NULL, NULL, NULL, NULL), "198.51.100.7", "h.evil.test",
	    "x@evil.test", msg);
	cr_expect_eq(r.r->dkim[0].result, MOAT_DKIM_PERMERROR, "%s", r.r->dkim[0].reason);
	run_free(&r);
	moat_dns_free(dns);
}

/* ---- through the core policy (policy.c): the events the front-ends drive ---- */

/*
 * policy_run - one inbound message through a session with auth_inbound on. The resolver is a
 * loopback port nothing listens on (127.0.0.1:15499, this area's range), so every lookup is a
 * temporary error after 100 ms: deterministic without a DNS server.
 */
static void
policy_run(const char *temp_action, struct moat_verdict *v, struct moat_hdr_edit *out, size_t *nout)
{
	struct moat_conf_override ov[] = {
		{ "authserv_id", AUTHSERV },
		{ "auth_inbound", "yes" },
		{ "dns_resolver", "127.0.0.1@15499" },
		{ "dns_timeout", "100ms" },
		{ "dmarc_temperror_action", temp_action },
	};
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf *conf =
	    moat_conf_load(NULL, ov, sizeof(ov) / sizeof(ov[0]), err, sizeof(err));
	struct moat_policy *pol;
	struct moat_session *s;
	struct moat_client cl = { .addr = "198.51.100.7", .port = 2525 };
	static const char *hdrs[] = {
		"Authentication-Results: other.example; dmarc=pass",
		"Authentication-Results: mx.test; dmarc=pass header.from=example.com",
		"From: a@example.com",
		"Date: Sun, 22 Nov 2026 21:00:00 +0000",
		"Subject: x",
		"Authentication-Results: mx.test; dkim=pass",
	};
	const struct moat_hdr_edit *e;
	size_t n;

	cr_assert_not_null(conf, "%s", err);
	pol = moat_policy_new(conf, 0, err, sizeof(err));
	cr_assert_not_null(pol, "%s", err);
	s = moat_session_new(pol, &cl);
	cr_assert_not_null(s);
	cr_assert_eq(moat_session_connect(s, v), MOAT_EVENT_DONE);
	moat_session_helo(s, "mta.evil.test", true, v);
	moat_session_mail(s, "x@evil.test", NULL, v);
	moat_session_rcpt(s, "b@example.net", NULL, v);
	moat_session_data(s, v);
	for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++)
		moat_session_header(s, hdrs[i], strlen(hdrs[i]), v);
	moat_session_eoh(s, v);
	moat_session_body(s, "hi\r\n", 4, v);
	moat_session_eom(s, v);
	e = moat_session_edits(s, &n);
	cr_assert_leq(n, 8u);
	for (size_t i = 0; i < n; i++) {
		out[i].op = e[i].op;
		out[i].index = e[i].index;
		out[i].name = strdup(e[i].name);
		out[i].value = e[i].value ? strdup(e[i].value) : NULL;
	}
	*nout = n;
	moat_session_free(s);
	moat_policy_free(pol);
	moat_conf_unref(conf);
}

Test(auth, through_the_policy_core)
{
	struct moat_hdr_edit e[8];
	struct moat_verdict v;
	size_t n, i;

	policy_run("tempfail", &v, e, &n);
	cr_expect_eq(v.action, MOAT_TEMPFAIL);
	cr_expect_eq(v.code, 451u);
	cr_expect_str_eq(v.status, "4.7.1");
	for (i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].value);
	}
	policy_run("continue", &v, e, &n);
	cr_expect_eq(v.action, MOAT_CONTINUE);
	cr_assert_eq(n, 3u);
	cr_expect_eq(e[0].op, MOAT_HDR_DELETE);
	cr_expect_str_eq(e[0].name, "Authentication-Results");
	cr_expect_eq(e[0].index, 3u);
	cr_expect_eq(e[1].op, MOAT_HDR_DELETE);
	cr_expect_eq(e[1].index, 2u);
	cr_expect_eq(e[2].op, MOAT_HDR_INSERT_TOP);
	cr_expect_not_null(strstr(e[2].value, "dmarc=temperror"), "%s", e[2].value);
	cr_expect_eq(strncmp(e[2].value, "mx.test;\r\n\tspf=temperror", 24), 0, "%s", e[2].value);
	for (i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].value);
	}
}
