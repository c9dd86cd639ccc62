/*
 * tls.c - one TLS session over memory BIOs: ciphertext in and out, plaintext in and out.
 *
 * Owns struct moat_tls_conn, its SSL and its two memory BIOs; holds a reference to the context it
 * was made from, so a reload never pulls certificates from under a live session. OpenSSL's error
 * queue is per thread and shared by every session of an event loop, so each call clears it before
 * and after: one session's failure never shows up as another's.
 */
#include "config.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls_int.h"

#define TLS_BIO_KEEP 4096 /* an emptied BIO holding more than this is replaced (idle memory) */

struct moat_tls_conn {
	struct moat_tls_ctx *ctx;
	SSL *ssl;
	BIO *in; /* ciphertext from the peer (owned by ssl) */
	BIO *out; /* ciphertext for the peer (owned by ssl) */
	enum moat_tls_role role;
	enum moat_tls_state state;
	char err[MOAT_TLS_ERR_MAX];
};

/* conn_fail - the session is dead; keep the first reason. */
static void
conn_fail(struct moat_tls_conn *conn, const char *what, int sslerr)
{
	if (conn->state != MOAT_TLS_FAILED) {
		conn->state = MOAT_TLS_FAILED;
		snprintf(conn->err, sizeof(conn->err), "%s", what);
		if (sslerr == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
			snprintf(conn->err, sizeof(conn->err), "%s: unexpected end of stream",
			    what);
		moat__tls_errstr(conn->err, sizeof(conn->err));
	}
	ERR_clear_error();
}

/* conn_new_bio - an empty memory BIO whose empty read means "retry", not EOF. */
static BIO *
conn_new_bio(void)
{
	BIO *b = BIO_new(BIO_s_mem());
	if (b != NULL)
		BIO_set_mem_eof_return(b, -1);
	return b;
}

/* conn_trim - give back the memory of emptied BIOs, so an idle session holds almost nothing. */
static void
conn_trim(struct moat_tls_conn *conn)
{
	BUF_MEM *bm;
	BIO *fresh;

	if (BIO_ctrl_pending(conn->in) == 0 && BIO_get_mem_ptr(conn->in, &bm) == 1 &&
	    bm->max > TLS_BIO_KEEP && (fresh = conn_new_bio()) != NULL) {
		SSL_set0_rbio(conn->ssl, fresh);
		conn->in = fresh;
	}
	if (BIO_ctrl_pending(conn->out) == 0 && BIO_get_mem_ptr(conn->out, &bm) == 1 &&
	    bm->max > TLS_BIO_KEEP && (fresh = conn_new_bio()) != NULL) {
		SSL_set0_wbio(conn->ssl, fresh);
		conn->out = fresh;
	}
}

/* conn_handshake - advance the handshake; 0 (done or waiting for the peer) or -1. */
static int
conn_handshake(struct moat_tls_conn *conn)
{
	int r, e;

	if (conn->state != MOAT_TLS_HANDSHAKE)
		return conn->state == MOAT_TLS_FAILED ? -1 : 0;
	ERR_clear_error();
	r = SSL_do_handshake(conn->ssl);
	if (r == 1) {
		conn->state = MOAT_TLS_OPEN;
		return 0;
	}
	e = SSL_get_error(conn->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		ERR_clear_error();
		return 0;
	}
	if (conn->role == MOAT_TLS_CLIENT && SSL_get_verify_result(conn->ssl) != X509_V_OK) {
		char what[160];
		snprintf(what, sizeof(what), "handshake failed: certificate verification: %s",
		    X509_verify_cert_error_string(SSL_get_verify_result(conn->ssl)));
		ERR_clear_error();
		conn_fail(conn, what, e);
	} else {
		conn_fail(conn, "handshake failed", e);
	}
	return -1;
}

struct moat_tls_conn *
moat_tls_conn_new(struct moat_tls_ctx *ctx, enum moat_tls_role role, const char *name, char *err,
    size_t errlen)
{
	SSL_CTX *sc = role == MOAT_TLS_SERVER ? ctx->server : ctx->client;
	struct moat_tls_conn *conn;

	if (sc == NULL) {
		snprintf(err, errlen,
		    role == MOAT_TLS_SERVER
			? "no certificate configured (tls_cert_file)"
			: "TLS towards the backend is off (tls_backend = none)");
		return NULL;
	}
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ERR_clear_error();
	conn->role = role;
	conn->state = MOAT_TLS_HANDSHAKE;
	conn->ssl = SSL_new(sc);
	conn->in = conn_new_bio();
	conn->out = conn_new_bio();
	if (conn->ssl == NULL || conn->in == NULL || conn->out == NULL) {
		BIO_free(conn->in);
		BIO_free(conn->out);
		SSL_free(conn->ssl);
		free(conn);
		snprintf(err, errlen, "out of memory");
		ERR_clear_error();
		return NULL;
	}
	SSL_set_bio(conn->ssl, conn->in, conn->out);
	conn->ctx = moat_tls_ctx_ref(ctx);
	if (role == MOAT_TLS_SERVER) {
		SSL_set_accept_state(conn->ssl);
		return conn;
	}
	if (name == NULL)
		name = ctx->backend_name;
	SSL_set_connect_state(conn->ssl);
	if (SSL_set1_host(conn->ssl, name) != 1 ||
	    (strchr(name, ':') == NULL && strspn(name, "0123456789.") != strlen(name) &&
		SSL_set_tlsext_host_name(conn->ssl, name) != 1)) {
		snprintf(err, errlen, "server name '%s' refused", name);
		moat_tls_conn_free(conn);
		ERR_clear_error();
		return NULL;
	}
	if (conn_handshake(conn) < 0) { /* queues the ClientHello */
		snprintf(err, errlen, "%s", conn->err);
		moat_tls_conn_free(conn);
		return NULL;
	}
	return conn;
}

void
moat_tls_conn_free(struct moat_tls_conn *conn)
{
	if (conn == NULL)
		return;
	SSL_free(conn->ssl); /* frees both BIOs */
	moat_tls_ctx_unref(conn->ctx);
	free(conn);
}

int
moat_tls_feed(struct moat_tls_conn *conn, const void *data, size_t len)
{
	size_t done;

	if (conn->state == MOAT_TLS_FAILED)
		return -1;
	if (len > 0 && (BIO_write_ex(conn->in, data, len, &done) != 1 || done != len)) {
		conn_fail(conn, "out of memory", SSL_ERROR_SSL);
		return -1;
	}
	return conn_handshake(conn);
}

ssize_t
moat_tls_read(struct moat_tls_conn *conn, void *buf, size_t len)
{
	size_t n = 0;
	int e;

	if (conn->state == MOAT_TLS_FAILED)
		return -1;
	if (conn->state == MOAT_TLS_CLOSED || len == 0)
		return 0;
	ERR_clear_error();
	if (SSL_read_ex(conn->ssl, buf, len, &n) == 1) {
		if (conn->state == MOAT_TLS_HANDSHAKE && SSL_is_init_finished(conn->ssl))
			conn->state = MOAT_TLS_OPEN;
		return (ssize_t)n;
	}
	e = SSL_get_error(conn->ssl, 0);
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		ERR_clear_error();
		if (conn->state == MOAT_TLS_HANDSHAKE && SSL_is_init_finished(conn->ssl))
			conn->state = MOAT_TLS_OPEN;
		conn_trim(conn);
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		ERR_clear_error();
		conn->state = MOAT_TLS_CLOSED;
		return 0;
	default:
		conn_fail(conn,
		    conn->state == MOAT_TLS_HANDSHAKE ? "handshake failed" : "read failed", e);
		return -1;
	}
}

int
moat_tls_write(struct moat_tls_conn *conn, const void *data, size_t len)
{
	size_t n;

	if (conn->state != MOAT_TLS_OPEN) {
		if (conn->state != MOAT_TLS_FAILED)
			conn_fail(conn, "write before the handshake completed or after close",
			    SSL_ERROR_SSL);
		return -1;
	}
	if (len == 0)
		return 0;
	ERR_clear_error();
	if (SSL_write_ex(conn->ssl, data, len, &n) != 1 || n != len) {
		conn_fail(conn, "write failed", SSL_get_error(conn->ssl, 0));
		return -1;
	}
	return 0;
}

void
moat_tls_shutdown(struct moat_tls_conn *conn)
{
	if (conn->state != MOAT_TLS_OPEN && conn->state != MOAT_TLS_CLOSED)
		return;
	ERR_clear_error();
	(void)SSL_shutdown(conn->ssl);
	ERR_clear_error();
}

size_t
moat_tls_pending_out(struct moat_tls_conn *conn, const void **ptr)
{
	char *p = NULL;
	long n = BIO_get_mem_data(conn->out, &p);

	*ptr = p;
	return n > 0 ? (size_t)n : 0;
}

void
moat_tls_consume(struct moat_tls_conn *conn, size_t len)
{
	char scratch[4096];

	while (len > 0) {
		size_t chunk = len < sizeof(scratch) ? len : sizeof(scratch), got = 0;
		if (BIO_read_ex(conn->out, scratch, chunk, &got) != 1 || got == 0)
			break;
		len -= got;
	}
	conn_trim(conn);
}

enum moat_tls_state
moat_tls_conn_state(const struct moat_tls_conn *conn)
{
	return conn->state;
}

const char *
moat_tls_conn_error(const struct moat_tls_conn *conn)
{
	return conn->err;
}

bool
moat_tls_conn_resumed(const struct moat_tls_conn *conn)
{
	return SSL_session_reused(conn->ssl) == 1;
}

/* tls_fingerprint - "AB:CD:..." SHA-256 of the DER certificate (95 characters). */
static void
tls_fingerprint(X509 *cert, char *out, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	size_t used = 0;

	out[0] = '\0';
	if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1)
		return;
	for (unsigned i = 0; i < mdlen && used + 3 < len; i++)
		used += (size_t)snprintf(out + used, len - used, i > 0 ? ":%02X" : "%02X", md[i]);
}

void
moat_tls_info(const struct moat_tls_conn *conn, struct moat_tls_info *info)
{
	const SSL_CIPHER *c;
	const char *sni;
	X509 *peer;

	memset(info, 0, sizeof(*info));
	if (conn->state != MOAT_TLS_OPEN && conn->state != MOAT_TLS_CLOSED)
		return;
	info->active = true;
	snprintf(info->protocol, sizeof(info->protocol), "%s", SSL_get_version(conn->ssl));
	c = SSL_get_current_cipher(conn->ssl);
	if (c != NULL) {
		int alg = 0;
		snprintf(info->cipher, sizeof(info->cipher), "%s", SSL_CIPHER_get_name(c));
		info->bits = (unsigned)SSL_CIPHER_get_bits(c, &alg);
		info->alg_bits = alg > 0 ? (unsigned)alg : 0;
	}
	sni = SSL_get_servername(conn->ssl, TLSEXT_NAMETYPE_host_name);
	if (sni != NULL)
		snprintf(info->sni, sizeof(info->sni), "%s", sni);
	peer = SSL_get0_peer_certificate(conn->ssl);
	if (peer != NULL)
		tls_fingerprint(peer, info->peer_fingerprint, sizeof(info->peer_fingerprint));
	ERR_clear_error();
}
