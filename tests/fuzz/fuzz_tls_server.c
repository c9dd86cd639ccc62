/*
 * fuzz_tls_server.c - libFuzzer target: arbitrary bytes as what a client sends to a TLS server
 * engine (ClientHello and beyond), with RSA and ECDSA certificates, an SNI set and client
 * certificates requested, so every parser the handshake reaches is exercised.
 *
 * The first input byte chooses where the rest is split into two feeds (records cut across
 * calls); the committed seeds are real ClientHellos captured from openssl s_client with 0xff
 * prepended (no cut). After each feed the session is read from and its output drained, as the proxy does.
 * Certificates come from tests/data/tls (found next to this file, or $MXMOAT_TLS_DATA); the keys are
 * copied once into a private 0600 directory because the engine refuses readable key files.
 */
#include "config.h"

#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct moat_tls_ctx *fuzz_ctx;
static char fuzz_dir[] = "/tmp/fuzz_tls.XXXXXX";
static const char *fuzz_files[] = { "rsa.pem", "rsa.key", "ecdsa.pem", "ecdsa.key", "other.pem",
	"other.key", "ca.pem" };

/* fuzz_cleanup - remove the private copy of the certificates at exit. */
static void
fuzz_cleanup(void)
{
	char path[1100];
	for (size_t i = 0; i < sizeof(fuzz_files) / sizeof(fuzz_files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", fuzz_dir, fuzz_files[i]);
		unlink(path);
	}
	rmdir(fuzz_dir);
}

static void
fuzz_copy(const char *from_dir, const char *to_dir, const char *name)
{
	char src[1024], dst[1024], buf[8192];
	FILE *in, *out;
	size_t n;

	snprintf(src, sizeof(src), "%s/%s", from_dir, name);
	snprintf(dst, sizeof(dst), "%s/%s", to_dir, name);
	in = fopen(src, "r");
	out = fopen(dst, "w");
	if (in == NULL || out == NULL) {
		fprintf(stderr, "fuzz_tls_server: cannot copy %s\n", src);
		abort();
	}
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, n, out);
	fclose(in);
	fclose(out);
	chmod(dst, 0600);
}

static struct moat_tls_ctx *
fuzz_setup(void)
{
	char here[1024], from[1100], *dir = fuzz_dir, err[MOAT_CONF_ERR_MAX];
	char o[5][1300];
	struct moat_conf_override ov[5];
	struct moat_conf *conf;
	struct moat_tls_ctx *ctx;

	snprintf(here, sizeof(here), "%s", __FILE__);
	snprintf(from, sizeof(from), "%s",
	    getenv("MXMOAT_TLS_DATA") != NULL ? getenv("MXMOAT_TLS_DATA") : "");
	if (from[0] == '\0')
		snprintf(from, sizeof(from), "%s/../data/tls", dirname(here));
	if (mkdtemp(dir) == NULL)
		abort();
	atexit(fuzz_cleanup);
	for (size_t i = 0; i < sizeof(fuzz_files) / sizeof(fuzz_files[0]); i++)
		fuzz_copy(from, dir, fuzz_files[i]);
	snprintf(o[0], sizeof(o[0]), "tls_cert_file=%s/rsa.pem,%s/ecdsa.pem", dir, dir);
	snprintf(o[1], sizeof(o[1]), "tls_key_file=%s/rsa.key,%s/ecdsa.key", dir, dir);
	snprintf(o[2], sizeof(o[2]), "tls_sni_map=other.test=%s/other.pem:%s/other.key", dir, dir);
	snprintf(o[3], sizeof(o[3]), "tls_request_client_cert=yes");
	snprintf(o[4], sizeof(o[4]), "tls_client_ca_file=%s/ca.pem", dir);
	for (size_t i = 0; i < 5; i++)
		moat_conf_parse_override(o[i], &ov[i]);
	conf = moat_conf_load(NULL, ov, 5, err, sizeof(err));
	if (conf == NULL) {
		fprintf(stderr, "fuzz_tls_server: %s\n", err);
		abort();
	}
	ctx = moat_tls_ctx_new(conf, err, sizeof(err));
	moat_conf_unref(conf);
	if (ctx == NULL) {
		fprintf(stderr, "fuzz_tls_server: %s\n", err);
		abort();
	}
	return ctx;
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
