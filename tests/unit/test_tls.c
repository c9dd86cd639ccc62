/*
 * test_tls.c - the TLS engine in memory: engine to engine, and the engine against plain OpenSSL
 * clients configured to be weak (old protocols, non-forward-secret suites, renegotiation), SNI,
 * RSA/ECDSA selection, refused key files and pairs, reload, tickets, and 1,000 failed handshakes
 * under LeakSanitizer. Certificates: tests/data/tls (make-certs.sh), keys copied to a 0600 dir.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "tls.h"
#include "tls_int.h"

int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static char dir[256];

static const char *
P(const char *name)
{
	static char buf[8][512];
	static int i;
	i = (i + 1) % 8;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static void
copy_file(const char *name, mode_t mode)
{
	char src[512], buf[8192];
	FILE *in, *out;
	size_t n;

	snprintf(src, sizeof(src), "%s/tests/data/tls/%s",
	    getenv("top_srcdir") ? getenv("top_srcdir") : ".", name);
	cr_assert_not_null(in = fopen(src, "r"), "%s", src);
	cr_assert_not_null(out = fopen(P(name), "w"));
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, n, out);
	fclose(in);
	fclose(out);
	cr_assert_eq(chmod(P(name), mode), 0);
}

static void
setup(void)
{
	static const char *files[] = { "ca.pem", "rsa.pem", "rsa.key", "ecdsa.pem", "ecdsa.key",
		"other.pem", "other.key", "client.pem", "client.key" };
	snprintf(dir, sizeof(dir), "/tmp/test_tls.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		copy_file(files[i], 0600);
}

static void
teardown(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)system(cmd);
}

/* conf_of - a configuration from "key=value" strings (NULL-terminated). */
static struct moat_conf *
conf_of(const char *kv[])
{
	struct moat_conf_override ov[32];
	char *copies[32];
	char err[MOAT_CONF_ERR_MAX];
	size_t n = 0;
	struct moat_conf *conf;

	for (; kv[n] != NULL; n++) {
		copies[n] = strdup(kv[n]);
		cr_assert_eq(moat_conf_parse_override(copies[n], &ov[n]), 0);
	}
	conf = moat_conf_load(NULL, ov, n, err, sizeof(err));
	cr_assert_not_null(conf, "%s", err);
	for (size_t i = 0; i < n; i++)
		free(copies[i]);
	return conf;
}

/* ctx_of - a context built from "key=value" strings; NULL with err filled. */
static struct moat_tls_ctx *
ctx_of(const char *kv[], char *err, size_t errlen)
{
	struct moat_conf *conf = conf_of(kv);
	struct moat_tls_ctx *ctx = moat_tls_ctx_new(conf, err, errlen);
	moat_conf_unref(conf);
	return ctx;
}

static char certs_both[1100], keys_both[1100];

/* default_ctx - RSA and ECDSA for mail.test, other.test by SNI, client side verifying mail.test. */
static struct moat_tls_ctx *
default_ctx(void)
{
	char err[MOAT_TLS_ERR_MAX], ca[600], sni[1100];
	struct moat_tls_ctx *ctx;
	snprintf(certs_both, sizeof(certs_both), "tls_cert_file=%s, %s", P("rsa.pem"),
	    P("ecdsa.pem"));
	snprintf(keys_both, sizeof(keys_both), "tls_key_file=%s,%s", P("rsa.key"), P("ecdsa.key"));
	snprintf(ca, sizeof(ca), "tls_backend_ca_file=%s", P("ca.pem"));
	snprintf(sni, sizeof(sni), "tls_sni_map=other.test=%s:%s", P("other.pem"), P("other.key"));
	const char *kv[] = { certs_both, keys_both, ca, sni, "tls_backend=required",
		"tls_backend_verify_name=mail.test", NULL };
	ctx = ctx_of(kv, err, sizeof(err));
	cr_assert_not_null(ctx, "%s", err);
	return ctx;
}

/* move - whatever engine A has to send goes into engine B; returns the bytes moved. */
static size_t
move(struct moat_tls_conn *a, struct moat_tls_conn *b)
{
	const void *p;
	size_t n = moat_tls_pending_out(a, &p);
	if (n > 0) {
		moat_tls_feed(b, p, n);
		moat_tls_consume(a, n);
	}
	return n;
}

/* pump - exchange bytes until neither side has anything to send (bounded). */
static void
pump(struct moat_tls_conn *a, struct moat_tls_conn *b)
{
	char buf[64];
	for (int i = 0; i < 20; i++) {
		size_t moved = move(a, b) + move(b, a);
		/* let post-handshake messages (TLS 1.3 tickets) be processed */
		if (moat_tls_conn_state(a) == MOAT_TLS_OPEN)
			(void)moat_tls_read(a, buf, 0);
		if (moved == 0)
			break;
	}
}

/* A plain OpenSSL client over memory BIOs, configured to be weak on purpose. */
struct raw {
	SSL_CTX *sc;
	SSL *ssl;
	BIO *in, *out;
	int rc; /* last SSL_do_handshake result */
};

static void
raw_new(struct raw *r, int maxver, const char *ciphers, const char *sigalgs, const char *sni)
{
	r->sc = SSL_CTX_new(TLS_client_method());
	cr_assert_not_null(r->sc);
	SSL_CTX_set_security_level(r->sc, 0);
	SSL_CTX_set_min_proto_version(r->sc, TLS1_VERSION);
	SSL_CTX_set_max_proto_version(r->sc, maxver);
	if (ciphers != NULL)
		cr_assert_eq(SSL_CTX_set_cipher_list(r->sc, ciphers), 1, "%s", ciphers);
	if (sigalgs != NULL)
		cr_assert_eq(SSL_CTX_set1_sigalgs_list(r->sc, sigalgs), 1, "%s", sigalgs);
	r->ssl = SSL_new(r->sc);
	r->in = BIO_new(BIO_s_mem());
	r->out = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(r->in, -1);
	BIO_set_mem_eof_return(r->out, -1);
	SSL_set_bio(r->ssl, r->in, r->out);
	SSL_set_connect_state(r->ssl);
	if (sni != NULL)
		SSL_set_tlsext_host_name(r->ssl, sni);
	r->rc = SSL_do_handshake(r->ssl);
}

static void
raw_free(struct raw *r)
{
	SSL_free(r->ssl);
	SSL_CTX_free(r->sc);
	ERR_clear_error();
}

/* raw_pump - exchange bytes between the raw client and a server engine until quiet (bounded). */
static void
raw_pump(struct raw *r, struct moat_tls_conn *s)
{
	char buf[256];
	for (int i = 0; i < 20; i++) {
		size_t moved = 0;
		char *p;
		long n = BIO_get_mem_data(r->out, &p);
		if (n > 0) {
			moat_tls_feed(s, p, (size_t)n);
			(void)BIO_read(r->out, buf, 0);
			BIO_reset(r->out);
			moved += (size_t)n;
		}
		if (moat_tls_conn_state(s) == MOAT_TLS_OPEN)
			(void)moat_tls_read(s, buf, sizeof(buf));
		const void *q;
		size_t m = moat_tls_pending_out(s, &q);
		if (m > 0) {
			BIO_write(r->in, q, (int)m);
			moat_tls_consume(s, m);
			moved += m;
		}
		if (!SSL_is_init_finished(r->ssl))
			r->rc = SSL_do_handshake(r->ssl);
		else
			(void)SSL_read(r->ssl, buf, sizeof(buf));
		if (moved == 0)
			break;
	}
	ERR_clear_error();
}

Test(tls, engine_to_engine, .init = setup, .fini = teardown)
{
	struct moat_tls_ctx *ctx = default_ctx();
	char err[MOAT_TLS_ERR_MAX], buf[64];
	struct moat_tls_conn *s = moat_tls_conn_new(ctx, MOAT_TLS_SERVER, NULL, err, sizeof(err));
	struct moat_tls_conn *c = moat_tls_conn_new(ctx, MOAT_TLS_CLIENT, NULL, err, sizeof(err));
	struct moat_tls_info si, ci;

	cr_assert_not_null(s, "%s", err);
	cr_assert_not_null(c, "%s", err);
	moat_tls_info(s, &si);
	cr_assert_eq(si.active, false);
	pump(c, s);
	cr_assert_eq(moat_tls_conn_state(s), MOAT_TLS_OPEN, "%s", moat_tls_conn_error(s));
	cr_assert_eq(moat_tls_conn_state(c), MOAT_TLS_OPEN, "%s", moat_tls_conn_error(c));
	moat_tls_info(s, &si);
	moat_tls_info(c, &ci);
	cr_assert_eq(si.active, true);
	cr_assert_str_eq(si.protocol, "TLSv1.3");
	cr_assert_str_eq(si.cipher, "TLS_AES_256_GCM_SHA384");
	cr_assert_eq(si.bits, 256);
	cr_assert_str_eq(si.sni, "mail.test");
	cr_assert_str_eq(si.peer_fingerprint, "");
	cr_assert_str_eq(ci.protocol, "TLSv1.3");
	cr_assert_str_eq(ci.cipher, "TLS_AES_256_GCM_SHA384");

	cr_assert_eq(moat_tls_write(c, "EHLO client.test\r\n", 18), 0);
	pump(c, s);
	cr_assert_eq(moat_tls_read(s, buf, sizeof(buf)), 18);
	cr_assert_eq(memcmp(buf, "EHLO client.test\r\n", 18), 0);
	cr_assert_eq(moat_tls_read(s, buf, sizeof(buf)), 0);
	cr_assert_eq(moat_tls_write(s, "250 ok\r\n", 8), 0);
	pump(s, c);
	cr_assert_eq(moat_tls_read(c, buf, sizeof(buf)), 8);
	cr_assert_eq(memcmp(buf, "250 ok\r\n", 8), 0);

	moat_tls_shutdown(c);
	pump(c, s);
	cr_assert_eq(moat_tls_read(s, buf, sizeof(buf)), 0);
	cr_assert_eq(moat_tls_conn_state(s), MOAT_TLS_CLOSED);
	moat_tls_conn_free(s);
	moat_tls_conn_free(c);
	moat_tls_ctx_unref(ctx);
}

struct proto_case {
	const char *label;
	int maxver;
	const char *ciphers;
	const char *sigalgs;
	bool ok;
	const char *protocol; /* when ok */
	const char *cipher; /* when ok */
	const char *reason; /* when refused: in the server's error */
};

static const struct proto_case proto_cases[] = {
	{ "TLS 1.0 client", TLS1_VERSION, "DEFAULT", NULL, false, NULL, NULL,
	    "unsupported protocol" },
	{ "TLS 1.1 client", TLS1_1_VERSION, "DEFAULT", NULL, false, NULL, NULL,
	    "unsupported protocol" },
	{ "AES128-SHA (TLS_RSA_WITH_AES_128_CBC_SHA)", TLS1_2_VERSION, "AES128-SHA", NULL, false,
	    NULL, NULL, "no shared cipher" },
	{ "AES256-GCM-SHA384 (RSA key exchange)", TLS1_2_VERSION, "AES256-GCM-SHA384", NULL, false,
	    NULL, NULL, "no shared cipher" },
	{ "DHE-RSA-AES128-GCM-SHA256 (finite-field DHE)", TLS1_2_VERSION,
	    "DHE-RSA-AES128-GCM-SHA256", NULL, false, NULL, NULL, "no shared cipher" },
	{ "ECDHE-RSA-AES128-SHA (CBC, not in the list)", TLS1_2_VERSION, "ECDHE-RSA-AES128-SHA",
	    NULL, false, NULL, NULL, "no shared cipher" },
	{ "aNULL suites", TLS1_2_VERSION, "aNULL", NULL, false, NULL, NULL, "no shared cipher" },
	{ "TLS 1.2 ECDHE-RSA, RSA-only client", TLS1_2_VERSION, "ECDHE-RSA-AES128-GCM-SHA256",
	    "RSA-PSS+SHA256:RSA+SHA256", true, "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", NULL },
	{ "TLS 1.2 ECDHE-ECDSA, ECDSA-only client", TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384",
	    "ECDSA+SHA256", true, "TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384", NULL },
	{ "TLS 1.2 server preference", TLS1_2_VERSION,
	    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384", "RSA+SHA256", true,
	    "TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384", NULL },
	{ "TLS 1.3 preferred", TLS1_3_VERSION, "DEFAULT", NULL, true, "TLSv1.3",
	    "TLS_AES_256_GCM_SHA384", NULL },
};

Test(tls, protocol_and_cipher_policy, .init = setup, .fini = teardown)
{
	struct moat_tls_ctx *ctx = default_ctx();
	char err[MOAT_TLS_ERR_MAX];

	for (size_t i = 0; i < sizeof(proto_cases) / sizeof(proto_cases[0]); i++) {
		const struct proto_case *t = &proto_cases[i];
		struct moat_tls_conn *s =
		    moat_tls_conn_new(ctx, MOAT_TLS_SERVER, NULL, err, sizeof(err));
		struct raw r;
		cr_assert_not_null(s);
		raw_new(&r, t->maxver, t->ciphers, t->sigalgs, "mail.test");
		raw_pump(&r, s);
		if (t->ok) {
			struct moat_tls_info info;
			cr_assert_eq(moat_tls_conn_state(s), MOAT_TLS_OPEN, "%s: %s", t->label,
			    moat_tls_conn_error(s));
			cr_assert_eq(SSL_is_init_finished(r.ssl), 1, "%s", t->label);
			moat_tls_info(s, &info);
			cr_assert_str_eq(info.protocol, t->protocol, "%s", t->label);
			cr_assert_str_eq(info.cipher, t->cipher, "%s", t->label);
			cr_assert_null(SSL_get_current_compression(r.ssl), "%s", t->label);
		} else {
			cr_assert_eq(moat_tls_conn_state(s), MOAT_TLS_FAILED, "%s", t->label);
			cr_assert_eq(SSL_is_init_finished(r.ssl), 0, "%s", t->label);
			cr_assert_not_null(strstr(moat_tls_conn_error(s), t->reason), "%s: '%s'",
			    t->label, moat_tls_conn_error(s));
		}
		raw_free(&r);
		moat_tls_conn_free(s);
	}
	moat_tls_ctx_unref(ctx);
}

Test(tls, rsa_and_ecdsa_side_by_side, .init = setup, .fini = teardown)
{
	struct moat_tls_ctx *ctx = default_ctx();
	static const struct {
		const char *label;
		int maxver;
		const char *sigalgs;
		int type;
	} cases[] = {
		{ "TLS 1.3 RSA-PSS only", TLS1_3_VERSION, "RSA-PSS+SHA256", EVP_PKEY_RSA },
		{ "TLS 1.3 ECDSA only", TLS1_3_VERSION, "ECDSA+SHA256", EVP_PKEY_EC },
		{ "TLS 1.2 RSA only", TLS1_2_VERSION, "RSA+SHA256", EVP_PKEY_RSA },
		{ "TLS 1.2 ECDSA only", TLS1_2_VERSION, "ECDSA+SHA384:ECDSA+SHA256", EVP_PKEY_EC },
	};
	char err[MOAT_TLS_ERR_MAX];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct moat_tls_conn *s =
		    moat_tls_conn_new(ctx, MOAT_TLS_SERVER, NULL, err, sizeof(err));
		struct raw r;
		raw_new(&r, cases[i].maxver, "DEFAULT", cases[i].sigalgs, "mail.test");
		raw_pump(&r, s);
		cr_assert_eq(moat_tls_conn_state(s), MOAT_TLS_OPEN, "%s: %s", cases[i].label,
		    moat_tls_conn_error(s));
		X509 *peer = SSL_get0_peer_certificate(r.ssl);
		cr_assert_not_null(peer);
		cr_assert_eq(EVP_PKEY_get_base_id(X509_get0_pubkey(peer)), cases[i].type, "%s",
		    cases[i].label);
		raw_free(&r);
		moat_tls_conn_free(s);
	}
	moat_tls_ctx_unref(ctx);
}

/* peer_cn - the CN of the certificate the raw client got. */
static void
peer_cn(struct raw *r, char *out, size_t len)
{
	X509 *peer = SSL_get0_peer_certificate(r->ssl);
	out[0] = '\0';
	if (peer != NULL)
		X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, out,
		    (int)len);
}

Test(tls, sni_selects_the_certificate_set, .init = setup, .fini = teardown)
{
	static const struct {
		const char *label;
		const char *sni;
		const char *cn;
	} cases[] = {
		{ "no SNI: default set", NULL, "mail.test" },
		{ "default name", "mail.test", "mail.test" },
		{ "mapped name", "other.test", "other.test" },
		{ "mapped name, other case", "OTHER.Test", "other.test" },
		{ "wildcard, one label", "a.wild.test", "other.test" },
		{ "wildcard does not span two labels", "a.b.wild.test", "mail.test" },
		{ "unknown name: default set", "nowhere.test", "mail.test" },
	};
	char err[MOAT_TLS_ERR_MAX], cn[128], sni[1100];
	struct moat_tls_ctx *ctx;

	snprintf(certs_both, sizeof(certs_both), "tls_cert_file=%s,%s", P("rsa.pem"),
	    P("ecdsa.pem"));
	snprintf(keys_both, sizeof(keys_both), "tls_key_file=%s,%s", P("rsa.key"), P("ecdsa.key"));
	snprintf(sni, sizeof(sni), "tls_sni_map=other.test=%s:%s, *.wild.test=%s:%s",
	    P("other.pem"), P("other.key"), P("other.pem"), P("other.key"));
	const char *kv[] = { certs_both, keys_both, sni, NULL };
	ctx = ctx_of(kv, err, sizeof(err));
	cr_assert_not_null(ctx, "%s", err);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct moat_tls_conn *s =
		    moat_tls_conn_new(ctx, MOAT_TLS_SERVER, NULL, err, sizeof(err));
		struct moat_tls_info info;
		struct raw r;
		raw_new(&r, TLS1_3_VERSION, "DEFAULT", "ECDSA+SHA256", cases[i].sni);
		raw_pump(&r, s);
		cr_assert_eq(moat_tls_conn_state(s), MOAT_TLS_OPEN, "%s: %s", cases[i].label,
		    moat_tls_conn_error(s));
		peer_cn(&r, cn, sizeof(cn));
		cr_assert_str_eq(cn, cases[i].cn, "%s", cases[i].label);
		moat_tls_info(s, &info);
		cr_assert_str_eq(info.sni, cases[i].sni != NULL ? cases[i].sni : "", "%s",
		    cases[i].label);
		raw_free(&r);
		moat_tls_conn_free(s);
	}
	moat_tls_ctx_unref(ctx);
}

Test(tls, renegotiation_refused, .init = setup, .fini = teardown)
{
	struct moat_tls_ctx *ctx = default_ctx();
	char err[MOAT_TLS_ERR_MAX], buf[64];
	struct moat_tls_conn *s = moat_tls_conn_new(ctx, MOAT_TLS_SERVER, NULL, err, sizeof(err));
	struct raw r;

	cr_assert(SSL_CTX_get_options(ctx->server) & SSL_OP_NO_RENEGOTIATION);
	cr_assert(SSL_CTX_get_options(ctx->server) & SSL_OP_NO_COMPRESSION);
	cr_assert(SSL_CTX_get_options(ctx->server) & SSL_OP_CIPHER_SERVER_PREFERENCE);
	cr_assert_eq(SSL_CTX_get_options(ctx->server) & SSL_OP_ALLOW_CLIENT_RENEGOTIATION, 0);
	raw_new(&r, TLS1_2_VERSION, "DEFAULT", NULL, "mail.test");
	raw_pump(&r, s);
	cr_assert_eq(moat_tls_conn_state(s), MOAT_TLS_OPEN, "%s", moat_tls_conn_error(s));
	cr_assert_eq(SSL_renegotiate(r.ssl), 1);
	r.rc = SSL_do_handshake(r.ssl);
	raw_pump(&r, s);
	for (int i = 0; i < 5; i++) { /* the client waits for a ServerHello that never comes */
		(void)SSL_read(r.ssl, buf, sizeof(buf));
		raw_pump(&r, s);
	}
	cr_assert_eq(SSL_renegotiate_pending(r.ssl), 1, "the renegotiation must not complete");
	cr_assert_eq(SSL_num_renegotiations(r.ssl), 1);
	/* application data still flows on the original session, or the session is gone: never a new one */
	cr_assert(
	    moat_tls_conn_state(s) == MOAT_TLS_OPEN || moat_tls_conn_state(s) == MOAT_TLS_FAILED);
	raw_free(&r);
	moat_tls_conn_free(s);
	moat_tls_ctx_unref(ctx);
}

struct refuse_case {
	const char *label;
	const char *cert; /* file names under the test dir, comma lists */
	const char *key;
	const char *extra; /* one more key=value, or NULL */
	const char *want; /* exact error; %1$s = the test dir */
};

static const struct refuse_case refuse_cases[] = {
	{ "key world-readable", "rsa.pem", "rsa644.key", NULL,
	    "tls_key_file %1$s/rsa644.key: readable or writable by group or others (mode 0644); refused, chmod 600 it" },
	{ "key group-readable", "rsa.pem", "rsa640.key", NULL,
	    "tls_key_file %1$s/rsa640.key: readable or writable by group or others (mode 0640); refused, chmod 600 it" },
	{ "certificate and key do not match", "rsa.pem", "other.key", NULL,
	    "tls_cert_file %1$s/rsa.pem and tls_key_file %1$s/other.key: the certificate does not match the private key" },
	{ "same type twice", "ecdsa.pem,other.pem", "ecdsa.key,other.key", NULL,
	    "tls_cert_file %1$s/other.pem: a second id-ecPublicKey certificate in the same set (one RSA and one ECDSA pair per set)" },
	{ "lists of unequal length", "rsa.pem,ecdsa.pem", "rsa.key", NULL,
	    "tls_cert_file has 2 entries but tls_key_file has 1; they pair in order" },
	{ "missing key file", "rsa.pem", "nothere.key", NULL,
	    "tls_key_file %1$s/nothere.key: No such file or directory" },
	{ "key file is not a key", "rsa.pem", "ca.pem.key", NULL,
	    "tls_key_file %1$s/ca.pem.key: no usable private key (PEM, unencrypted): unsupported" },
	{ "cipher list without forward secrecy", "rsa.pem", "rsa.key",
	    "tls_ciphers=ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA",
	    "tls_ciphers: AES128-SHA has no forward secrecy or no server authentication; refused (ECDHE suites only)" },
	{ "cipher list with DHE", "rsa.pem", "rsa.key", "tls_ciphers=DHE-RSA-AES256-GCM-SHA384",
	    "tls_ciphers: DHE-RSA-AES256-GCM-SHA384 has no forward secrecy or no server authentication; refused (ECDHE suites only)" },
	{ "unknown group", "rsa.pem", "rsa.key", "tls_groups=X25519:nosuchgroup",
	    "tls_groups 'X25519:nosuchgroup': unknown or unsupported group" },
	{ "SNI entry malformed", "rsa.pem", "rsa.key", "tls_sni_map=other.test=onlyone",
	    "tls_sni_map: 'other.test=onlyone' is not name=certfile:keyfile" },
	{ "backend on a unix socket without a name", "rsa.pem", "rsa.key",
	    "proxy_backend=unix:/tmp/x",
	    "tls_backend: set tls_backend_verify_name (no host name in proxy_backend 'unix:/tmp/x')" },
};

/* prefix_each - "a,b" -> "KEY=DIR/a,DIR/b" */
static void
prefix_each(char *out, size_t len, const char *key, const char *list)
{
	char copy[256];
	size_t used = (size_t)snprintf(out, len, "%s=", key);
	snprintf(copy, sizeof(copy), "%s", list);
	for (char *t = strtok(copy, ","); t != NULL; t = strtok(NULL, ","))
		used += (size_t)snprintf(out + used, len - used, "%s%s/%s",
		    used > strlen(key) + 1 ? "," : "", dir, t);
}

Test(tls, bad_certificates_and_keys_refused, .init = setup, .fini = teardown)
{
	char err[MOAT_TLS_ERR_MAX], want[600], certs[1100], keys[1100];

	copy_file("rsa.key", 0600);
	cr_assert_eq(rename(P("rsa.key"), P("rsa644.key")), 0);
	cr_assert_eq(chmod(P("rsa644.key"), 0644), 0);
	copy_file("rsa.key", 0640);
	cr_assert_eq(rename(P("rsa.key"), P("rsa640.key")), 0);
	copy_file("rsa.key", 0600);
	copy_file("ca.pem", 0600);
	cr_assert_eq(rename(P("ca.pem"), P("ca.pem.key")), 0);
	for (size_t i = 0; i < sizeof(refuse_cases) / sizeof(refuse_cases[0]); i++) {
		const struct refuse_case *t = &refuse_cases[i];
		prefix_each(certs, sizeof(certs), "tls_cert_file", t->cert);
		prefix_each(keys, sizeof(keys), "tls_key_file", t->key);
		const char *kv[] = { certs, keys, "tls_backend=starttls", t->extra, NULL };
		struct moat_tls_ctx *ctx = ctx_of(kv, err, sizeof(err));
		cr_assert_null(ctx, "%s: accepted", t->label);
		want[0] = '\0';
		for (const char *w = t->want; *w != '\0';) { /* expand %1$s to the test dir */
			if (strncmp(w, "%1$s", 4) == 0) {
				strcat(want, dir);
				w += 4;
			} else {
				strncat(want, w++, 1);
			}
		}
		cr_assert_str_eq(err, want, "%s: got '%s'", t->label, err);
		cr_assert_eq(ERR_peek_error(), 0, "%s: OpenSSL error queue left behind", t->label);
	}
}

Test(tls, no_certificate_is_valid, .init = setup, .fini = teardown)
{
	char err[MOAT_TLS_ERR_MAX];
	const char *kv[] = { NULL };
	struct moat_tls_ctx *ctx = ctx_of(kv, err, sizeof(err));

	cr_assert_not_null(ctx, "%s", err);
	cr_assert_eq(moat_tls_ctx_server_ready(ctx), false);
	cr_assert_null(moat_tls_conn_new(ctx, MOAT_TLS_SERVER, NULL, err, sizeof(err)));
	cr_assert_str_eq(err, "no certificate configured (tls_cert_file)");
	cr_assert_null(moat_tls_conn_new(ctx, MOAT_TLS_CLIENT, NULL, err, sizeof(err)));
	cr_assert_str_eq(err, "TLS towards the backend is off (tls_backend = none)");
	moat_tls_ctx_unref(ctx);
}

/* full_handshake - a raw TLS 1.3 client against CTX, optionally resuming SESS; returns its session. */
static SSL_SESSION *
handshake_session(struct moat_tls_ctx *ctx, SSL_SESSION *sess, bool *resumed, char *cn,
    size_t cnlen)
{
	char err[MOAT_TLS_ERR_MAX];
	struct moat_tls_conn *s = moat_tls_conn_new(ctx, MOAT_TLS_SERVER, NULL, err, sizeof(err));
	SSL_SESSION *out;
	struct raw r;

	cr_assert_not_null(s, "%s", err);
	r.sc = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_session_cache_mode(r.sc,
	    SSL_SESS_CACHE_OFF); /* freeing a cache spoils its sessions */
	r.ssl = SSL_new(r.sc);
	r.in = BIO_new(BIO_s_mem());
	r.out = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(r.in, -1);
	BIO_set_mem_eof_return(r.out, -1);
	SSL_set_bio(r.ssl, r.in, r.out);
	SSL_set_connect_state(r.ssl);
	SSL_set_tlsext_host_name(r.ssl, "mail.test");
	if (sess != NULL)
		SSL_set_session(r.ssl, sess);
	r.rc = SSL_do_handshake(r.ssl);
	raw_pump(&r, s);
	cr_assert_eq(moat_tls_conn_state(s), MOAT_TLS_OPEN, "%s", moat_tls_conn_error(s));
	*resumed = moat_tls_conn_resumed(s);
	cr_assert_eq(*resumed, SSL_session_reused(r.ssl) == 1);
	if (cn != NULL)
		peer_cn(&r, cn, cnlen);
	out = SSL_get1_session(r.ssl);
	SSL_set_shutdown(r.ssl,
	    SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN); /* else SSL_free spoils it */
	raw_free(&r);
	moat_tls_conn_free(s);
	return out;
}

Test(tls, tickets_resume_and_can_be_off, .init = setup, .fini = teardown)
{
	struct moat_tls_ctx *ctx = default_ctx();
	char err[MOAT_TLS_ERR_MAX];
	bool resumed;
	SSL_SESSION *s1 = handshake_session(ctx, NULL, &resumed, NULL, 0);
	SSL_SESSION *s2;

	cr_assert_eq(resumed, false);
	cr_assert_eq(SSL_SESSION_is_resumable(s1), 1);
	cr_assert_eq(SSL_SESSION_has_ticket(s1), 1);
	s2 = handshake_session(ctx, s1, &resumed, NULL, 0);
	cr_assert_eq(resumed, true);
	SSL_SESSION_free(s2);
	SSL_SESSION_free(s1);
	moat_tls_ctx_unref(ctx);

	snprintf(certs_both, sizeof(certs_both), "tls_cert_file=%s", P("ecdsa.pem"));
	snprintf(keys_both, sizeof(keys_both), "tls_key_file=%s", P("ecdsa.key"));
	const char *kv[] = { certs_both, keys_both, "tls_ticket_rotation=0", NULL };
	ctx = ctx_of(kv, err, sizeof(err));
	cr_assert_not_null(ctx, "%s", err);
	s1 = handshake_session(ctx, NULL, &resumed, NULL, 0);
	cr_assert_eq(SSL_SESSION_has_ticket(s1), 0, "no ticket must be issued");
	s2 = handshake_session(ctx, s1, &resumed, NULL, 0);
	cr_assert_eq(resumed, false);
	SSL_SESSION_free(s2);
	SSL_SESSION_free(s1);
	moat_tls_ctx_unref(ctx);
}

Test(tls, reload_keeps_old_on_error_and_sessions_keep_theirs, .init = setup, .fini = teardown)
{
	struct moat_tls_ctx *old = default_ctx(), *neu;
	char err[MOAT_TLS_ERR_MAX], cn[128], certs[600], keys[600], buf[16];
	struct moat_tls_conn *live_s, *live_c;
	bool resumed;
	SSL_SESSION *sess;

	/* a session opened before the reload */
	live_s = moat_tls_conn_new(old, MOAT_TLS_SERVER, NULL, err, sizeof(err));
	live_c = moat_tls_conn_new(old, MOAT_TLS_CLIENT, NULL, err, sizeof(err));
	pump(live_c, live_s);
	cr_assert_eq(moat_tls_conn_state(live_s), MOAT_TLS_OPEN);
	sess = handshake_session(old, NULL, &resumed, cn, sizeof(cn));
	cr_assert_str_eq(cn, "mail.test");

	/* a bad new configuration: NULL, the reason, the old context untouched */
	snprintf(certs, sizeof(certs), "tls_cert_file=%s", P("rsa.pem"));
	snprintf(keys, sizeof(keys), "tls_key_file=%s", P("ecdsa.key"));
	const char *bad[] = { certs, keys, NULL };
	struct moat_conf *conf = conf_of(bad);
	cr_assert_null(moat_tls_ctx_reload(old, conf, err, sizeof(err)));
	moat_conf_unref(conf);
	cr_assert_not_null(strstr(err, "the certificate does not match the private key"), "%s",
	    err);
	SSL_SESSION_free(handshake_session(old, NULL, &resumed, cn, sizeof(cn)));
	cr_assert_str_eq(cn, "mail.test");

	/* a good one: the new certificate for new sessions, tickets carried over */
	snprintf(certs, sizeof(certs), "tls_cert_file=%s", P("other.pem"));
	snprintf(keys, sizeof(keys), "tls_key_file=%s", P("other.key"));
	const char *good[] = { certs, keys, NULL };
	conf = conf_of(good);
	neu = moat_tls_ctx_reload(old, conf, err, sizeof(err));
	moat_conf_unref(conf);
	cr_assert_not_null(neu, "%s", err);
	moat_tls_ctx_unref(old); /* what the proxy does after swapping */
	SSL_SESSION_free(handshake_session(neu, NULL, &resumed, cn, sizeof(cn)));
	cr_assert_str_eq(cn, "other.test");
	SSL_SESSION_free(handshake_session(neu, sess, &resumed, cn, sizeof(cn)));
	cr_assert_eq(resumed, true, "a ticket from before the reload resumes");
	SSL_SESSION_free(sess);

	/* the live session still works on the old context it holds */
	cr_assert_eq(moat_tls_write(live_c, "NOOP\r\n", 6), 0);
	pump(live_c, live_s);
	cr_assert_eq(moat_tls_read(live_s, buf, sizeof(buf)), 6);
	moat_tls_conn_free(live_s);
	moat_tls_conn_free(live_c);
	moat_tls_ctx_unref(neu);
}

Test(tls, client_verifies_the_backend, .init = setup, .fini = teardown)
{
	static const struct {
		const char *label;
		const char *name;
		const char *ca;
		const char *want;
	} cases[] = {
		{ "right name, right CA", "mail.test", "ca.pem", NULL },
		{ "wrong name", "wrong.test", "ca.pem",
		    "handshake failed: certificate verification: hostname mismatch" },
		{ "unknown CA", "mail.test", "other.pem",
		    "handshake failed: certificate verification: unable to get local issuer certificate" },
	};
	char err[MOAT_TLS_ERR_MAX], ca[600], name[300];
	struct moat_tls_ctx *srv = default_ctx();

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(ca, sizeof(ca), "tls_backend_ca_file=%s", P(cases[i].ca));
		snprintf(name, sizeof(name), "tls_backend_verify_name=%s", cases[i].name);
		const char *kv[] = { "tls_backend=required", ca, name, NULL };
		struct moat_tls_ctx *cli = ctx_of(kv, err, sizeof(err));
		cr_assert_not_null(cli, "%s", err);
		struct moat_tls_conn *s =
		    moat_tls_conn_new(srv, MOAT_TLS_SERVER, NULL, err, sizeof(err));
		struct moat_tls_conn *c =
		    moat_tls_conn_new(cli, MOAT_TLS_CLIENT, NULL, err, sizeof(err));
		cr_assert_not_null(c, "%s", err);
		pump(c, s);
		if (cases[i].want == NULL) {
			cr_assert_eq(moat_tls_conn_state(c), MOAT_TLS_OPEN, "%s: %s",
			    cases[i].label, moat_tls_conn_error(c));
		} else {
			cr_assert_eq(moat_tls_conn_state(c), MOAT_TLS_FAILED, "%s", cases[i].label);
			cr_assert_str_eq(moat_tls_conn_error(c), cases[i].want, "%s",
			    cases[i].label);
			cr_assert_neq(moat_tls_conn_state(s), MOAT_TLS_OPEN, "%s", cases[i].label);
		}
		moat_tls_conn_free(s);
		moat_tls_conn_free(c);
		moat_tls_ctx_unref(cli);
	}
	moat_tls_ctx_unref(srv);
}

Test(tls, client_certificate_fingerprint, .init = setup, .fini = teardown)
{
	char err[MOAT_TLS_ERR_MAX], ca[600], cmd[700], want[200] = "";
	struct moat_tls_info info;
	FILE *fp;

	snprintf(certs_both, sizeof(certs_both), "tls_cert_file=%s", P("ecdsa.pem"));
	snprintf(keys_both, sizeof(keys_both), "tls_key_file=%s", P("ecdsa.key"));
	snprintf(ca, sizeof(ca), "tls_client_ca_file=%s", P("ca.pem"));
	const char *kv[] = { certs_both, keys_both, "tls_request_client_cert=yes", ca, NULL };
	struct moat_tls_ctx *ctx = ctx_of(kv, err, sizeof(err));
	cr_assert_not_null(ctx, "%s", err);

	for (int with_cert = 0; with_cert < 2; with_cert++) {
		struct moat_tls_conn *s =
		    moat_tls_conn_new(ctx, MOAT_TLS_SERVER, NULL, err, sizeof(err));
		struct raw r;
		raw_new(&r, TLS1_3_VERSION, "DEFAULT", NULL, NULL);
		if (with_cert) {
			cr_assert_eq(SSL_use_certificate_file(r.ssl, P("client.pem"),
					 SSL_FILETYPE_PEM),
			    1);
			cr_assert_eq(SSL_use_PrivateKey_file(r.ssl, P("client.key"),
					 SSL_FILETYPE_PEM),
			    1);
		}
		raw_pump(&r, s);
		cr_assert_eq(moat_tls_conn_state(s), MOAT_TLS_OPEN, "%s", moat_tls_conn_error(s));
		moat_tls_info(s, &info);
		if (with_cert) {
			snprintf(cmd, sizeof(cmd),
			    "openssl x509 -noout -fingerprint -sha256 -in '%s'", P("client.pem"));
			cr_assert_not_null(fp = popen(cmd, "r"));
			cr_assert_not_null(fgets(want, sizeof(want), fp));
			pclose(fp);
			want[strcspn(want, "\n")] = '\0';
			cr_assert_str_eq(info.peer_fingerprint, strchr(want, '=') + 1);
		} else {
			cr_assert_str_eq(info.peer_fingerprint, "");
		}
		raw_free(&r);
		moat_tls_conn_free(s);
	}
	moat_tls_ctx_unref(ctx);
}

Test(tls, thousand_failed_handshakes_leak_nothing, .init = setup, .fini = teardown)
{
	struct moat_tls_ctx *ctx = default_ctx();
	char err[MOAT_TLS_ERR_MAX];
	unsigned char hello[4096];
	size_t hello_len;
	unsigned failed = 0;
	struct raw r;

	/* a real TLS 1.1 ClientHello, captured once */
	raw_new(&r, TLS1_1_VERSION, "DEFAULT", NULL, "mail.test");
	char *p;
	long n = BIO_get_mem_data(r.out, &p);
	cr_assert(n > 0 && (size_t)n <= sizeof(hello));
	memcpy(hello, p, (size_t)n);
	hello_len = (size_t)n;
	raw_free(&r);

	for (unsigned i = 0; i < 1000; i++) {
		struct moat_tls_conn *s =
		    moat_tls_conn_new(ctx, MOAT_TLS_SERVER, NULL, err, sizeof(err));
		cr_assert_not_null(s);
		switch (i % 4) {
		case 0: /* old protocol */
			moat_tls_feed(s, hello, hello_len);
			break;
		case 1: /* plaintext SMTP on a TLS port */
			moat_tls_feed(s, "EHLO x\r\n\r\n\r\n\r\n\r\n", 16);
			break;
		case 2: /* a handshake record longer than any record may be */
			moat_tls_feed(s, "\x16\x03\x01\xff\xff\x01\x00\xff\xfb", 9);
			break;
		default: /* half a ClientHello, then the client goes away (stalls are the caller's timeout) */
			moat_tls_feed(s, hello, hello_len / 2);
			cr_assert_eq(moat_tls_conn_state(s), MOAT_TLS_HANDSHAKE);
			failed++;
			break;
		}
		if (moat_tls_conn_state(s) == MOAT_TLS_FAILED)
			failed++;
		moat_tls_conn_free(s);
	}
	cr_assert_eq(failed, 1000);
	cr_assert_eq(ERR_peek_error(), 0);
	moat_tls_ctx_unref(ctx);
	if (__lsan_do_recoverable_leak_check != NULL)
		cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks");
	else
		cr_skip_test(
		    "not built with LeakSanitizer: the 1,000 handshakes failed cleanly, leak check skipped");
}

Test(tls, ticket_keys_rotate, .init = setup, .fini = teardown)
{
	struct moat_tls_ctx *ctx = default_ctx();
	struct tls_keyring *kr = ctx->keys;
	unsigned char first[16];
	bool resumed;
	SSL_SESSION *s1, *s2, *s3;

	cr_assert_eq(kr->rotation, 3600);
	s1 = handshake_session(ctx, NULL, &resumed, NULL, 0);
	memcpy(first, kr->cur.name, 16);

	/* one interval later: a new current key, the old one still decrypts and the ticket is renewed */
	kr->cur.created -= 3600;
	s2 = handshake_session(ctx, s1, &resumed, NULL, 0);
	cr_assert_eq(resumed, true, "a ticket under the previous key resumes");
	cr_assert_neq(memcmp(kr->cur.name, first, 16), 0, "the key was replaced");
	cr_assert_eq(kr->have_prev, true);
	cr_assert_eq(memcmp(kr->prev.name, first, 16), 0);

	/* two intervals after the first key was made: its tickets are refused, the renewed one is not */
	kr->prev.created -= 3600;
	kr->cur.created -= 3600;
	s3 = handshake_session(ctx, s1, &resumed, NULL, 0);
	cr_assert_eq(resumed, false, "a ticket two intervals old must not resume");
	SSL_SESSION_free(s3);
	s3 = handshake_session(ctx, s2, &resumed, NULL, 0);
	cr_assert_eq(resumed, true, "the renewed ticket (under the then-current key) resumes");
	SSL_SESSION_free(s3);
	SSL_SESSION_free(s2);
	SSL_SESSION_free(s1);
	moat_tls_ctx_unref(ctx);
}

Test(tls, tls13_minimum_refuses_tls12, .init = setup, .fini = teardown)
{
	char err[MOAT_TLS_ERR_MAX];
	snprintf(certs_both, sizeof(certs_both), "tls_cert_file=%s", P("ecdsa.pem"));
	snprintf(keys_both, sizeof(keys_both), "tls_key_file=%s", P("ecdsa.key"));
	const char *kv[] = { certs_both, keys_both, "tls_protocols_min=TLSv1.3", NULL };
	struct moat_tls_ctx *ctx = ctx_of(kv, err, sizeof(err));
	static const struct {
		int maxver;
		bool ok;
	} cases[] = { { TLS1_2_VERSION, false }, { TLS1_3_VERSION, true } };

	cr_assert_not_null(ctx, "%s", err);
	for (size_t i = 0; i < 2; i++) {
		struct moat_tls_conn *s =
		    moat_tls_conn_new(ctx, MOAT_TLS_SERVER, NULL, err, sizeof(err));
		struct raw r;
		raw_new(&r, cases[i].maxver, "DEFAULT", NULL, NULL);
		raw_pump(&r, s);
		cr_assert_eq(moat_tls_conn_state(s), cases[i].ok ? MOAT_TLS_OPEN : MOAT_TLS_FAILED,
		    "max %x", cases[i].maxver);
		if (!cases[i].ok)
			cr_assert_not_null(strstr(moat_tls_conn_error(s), "unsupported protocol"),
			    "%s", moat_tls_conn_error(s));
		raw_free(&r);
		moat_tls_conn_free(s);
	}
	moat_tls_ctx_unref(ctx);
}

/* move_bytewise - engine A's output into engine B one byte per feed (TCP may cut anywhere). */
static size_t
move_bytewise(struct moat_tls_conn *a, struct moat_tls_conn *b)
{
	const void *p;
	size_t n = moat_tls_pending_out(a, &p), i;
	unsigned char copy[16384];

	cr_assert(n <= sizeof(copy));
	memcpy(copy, p, n);
	moat_tls_consume(a, n);
	for (i = 0; i < n; i++)
		moat_tls_feed(b, copy + i, 1);
	return n;
}

Test(tls, handshake_and_data_one_byte_at_a_time, .init = setup, .fini = teardown)
{
	struct moat_tls_ctx *ctx = default_ctx();
	char err[MOAT_TLS_ERR_MAX], buf[64];
	struct moat_tls_conn *s = moat_tls_conn_new(ctx, MOAT_TLS_SERVER, NULL, err, sizeof(err));
	struct moat_tls_conn *c = moat_tls_conn_new(ctx, MOAT_TLS_CLIENT, NULL, err, sizeof(err));
	size_t got = 0;

	for (int i = 0; i < 20 && (move_bytewise(c, s) + move_bytewise(s, c)) > 0; i++)
		(void)moat_tls_read(c, buf, 0);
	cr_assert_eq(moat_tls_conn_state(s), MOAT_TLS_OPEN, "%s", moat_tls_conn_error(s));
	cr_assert_eq(moat_tls_conn_state(c), MOAT_TLS_OPEN, "%s", moat_tls_conn_error(c));
	cr_assert_eq(moat_tls_write(c, "MAIL FROM:<a@b.test>\r\n", 22), 0);
	move_bytewise(c, s);
	for (int i = 0; i < 30 && got < 22; i++) {
		ssize_t n = moat_tls_read(s, buf + got, sizeof(buf) - got);
		cr_assert_geq(n, 0);
		got += (size_t)n;
	}
	cr_assert_eq(got, 22);
	cr_assert_eq(memcmp(buf, "MAIL FROM:<a@b.test>\r\n", 22), 0);
	moat_tls_conn_free(s);
	moat_tls_conn_free(c);
	moat_tls_ctx_unref(ctx);
}
