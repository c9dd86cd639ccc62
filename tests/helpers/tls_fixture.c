/*
 * tls_fixture.c - the test certificates in a private directory, and contexts on them (tls_fixture.h).
 */
#include "config.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "tls_fixture.h"

static char fixture_dir[] = "/tmp/tls_fixture.XXXXXX";
static const char *fixture_files[] = { "rsa.pem", "rsa.key", "ecdsa.pem", "ecdsa.key", "other.pem",
	"other.key", "ca.pem" };
#define NFILES (sizeof(fixture_files) / sizeof(fixture_files[0]))

/* fixture_cleanup - remove the private copies at exit. */
static void
fixture_cleanup(void)
{
	char path[1100];

	for (size_t i = 0; i < NFILES; i++) {
		snprintf(path, sizeof(path), "%s/%s", fixture_dir, fixture_files[i]);
		unlink(path);
	}
	rmdir(fixture_dir);
}

static void
fixture_copy(const char *from_dir, const char *name)
{
	char src[1200], dst[1100], buf[8192];
	FILE *in, *out;
	size_t n;

	snprintf(src, sizeof(src), "%s/%s", from_dir, name);
	snprintf(dst, sizeof(dst), "%s/%s", fixture_dir, name);
	in = fopen(src, "r");
	out = fopen(dst, "w");
	if (in == NULL || out == NULL) {
		fprintf(stderr, "tls_fixture: cannot copy %s\n", src);
		abort();
	}
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, n, out);
	fclose(in);
	fclose(out);
	chmod(dst, 0600);
}

const char *
tls_fixture_dir(void)
{
	static int ready;
	char here[1024], from[1100];

	if (ready)
		return fixture_dir;
	snprintf(here, sizeof(here), "%s", __FILE__);
	snprintf(from, sizeof(from), "%s",
	    getenv("MXMOAT_TLS_DATA") != NULL ? getenv("MXMOAT_TLS_DATA") : "");
	if (from[0] == '\0')
		snprintf(from, sizeof(from), "%s/../data/tls", dirname(here));
	if (mkdtemp(fixture_dir) == NULL)
		abort();
	atexit(fixture_cleanup);
	for (size_t i = 0; i < NFILES; i++)
		fixture_copy(from, fixture_files[i]);
	ready = 1;
	return fixture_dir;
}

struct moat_tls_ctx *
tls_fixture_ctx(const char *who, const char *const *kv, size_t n)
{
	struct moat_conf_override ov[16];
	char err[MOAT_CONF_ERR_MAX], copy[16][1300];
	struct moat_conf *conf;
	struct moat_tls_ctx *ctx;

	if (n > sizeof(ov) / sizeof(ov[0]))
		abort();
	for (size_t i = 0; i < n; i++) {
		snprintf(copy[i], sizeof(copy[i]), "%s", kv[i]);
		moat_conf_parse_override(copy[i], &ov[i]);
	}
	if ((conf = moat_conf_load(NULL, ov, n, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s: %s\n", who, err);
		abort();
	}
	ctx = moat_tls_ctx_new(conf, err, sizeof(err));
	moat_conf_unref(conf);
	if (ctx == NULL) {
		fprintf(stderr, "%s: %s\n", who, err);
		abort();
	}
	return ctx;
}
