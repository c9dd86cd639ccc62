/*
 * fuzz_tls_server.c - libFuzzer target: arbitrary bytes as what a client sends to a TLS server
 * engine (ClientHello and beyond), with RSA and ECDSA certificates, an SNI set and client
 * certificates requested, so every parser the handshake reaches is exercised.
 *
 * The first input byte chooses where the rest is split into two feeds (records cut across
 * calls); the committed seeds are real ClientHellos captured from openssl s_client with 0xff
 * prepended (no cut). After each feed the session is read from and its output drained, as the proxy does.
 * Certificates come from tests/data/tls (tests/helpers/tls_fixture.c).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"
#include "tls_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct moat_tls_ctx *fuzz_ctx;

static struct moat_tls_ctx *
fuzz_setup(void)
{
	const char *dir = tls_fixture_dir();
	char o[5][1300];
	const char *kv[5];

	snprintf(o[0], sizeof(o[0]), "tls_cert_file=%s/rsa.pem,%s/ecdsa.pem", dir, dir);
	snprintf(o[1], sizeof(o[1]), "tls_key_file=%s/rsa.key,%s/ecdsa.key", dir, dir);
	snprintf(o[2], sizeof(o[2]), "tls_sni_map=other.test=%s/other.pem:%s/other.key", dir, dir);
	snprintf(o[3], sizeof(o[3]), "tls_request_client_cert=yes");
	snprintf(o[4], sizeof(o[4]), "tls_client_ca_file=%s/ca.pem", dir);
	for (size_t i = 0; i < 5; i++)
		kv[i] = o[i];
	return tls_fixture_ctx("fuzz_tls_server", kv, 5);
}

/* fuzz_step - what the proxy does after each read: feed, read plaintext, drain output. */
static void
fuzz_step(struct moat_tls_conn *conn, const uint8_t *data, size_t len)
{
	char buf[4096];
	const void *p;
	size_t n;

	(void)moat_tls_feed(conn, data, len);
	for (int i = 0; i < 8 && moat_tls_read(conn, buf, sizeof(buf)) > 0; i++)
		;
	if (moat_tls_conn_state(conn) == MOAT_TLS_OPEN)
		(void)moat_tls_write(conn, "250 ok\r\n", 8);
	while ((n = moat_tls_pending_out(conn, &p)) > 0)
		moat_tls_consume(conn, n > 1000 ? 1000 : n);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[MOAT_TLS_ERR_MAX];
	struct moat_tls_conn *conn;
	struct moat_tls_info info;
	size_t cut;

	if (fuzz_ctx == NULL)
		fuzz_ctx = fuzz_setup();
	conn = moat_tls_conn_new(fuzz_ctx, MOAT_TLS_SERVER, NULL, err, sizeof(err));
	if (conn == NULL)
		abort();
	if (size == 0) {
		moat_tls_conn_free(conn);
		return 0;
	}
	cut = 1 + (size - 1) * data[0] / 255;
	fuzz_step(conn, data + 1, cut - 1);
	fuzz_step(conn, data + cut, size - cut);
	moat_tls_info(conn, &info);
	if (info.active && info.protocol[0] == '\0')
		abort();
	moat_tls_conn_free(conn);
	return 0;
}
