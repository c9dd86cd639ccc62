/*
 * fuzz_smtp_hold.c - arbitrary client bytes into the proxy's session in holding mode: the client is
 * inside internal_networks and a signing table signs its mail, so every message is held (in
 * memory, or past proxy_hold_memory in a spool file), its events run as work items, and the
 * DKIM-Signature and Received fields are inserted by the header editor (proxy/hdr_edit.c) on the
 * way to the simulated backend (tests/helpers/sim_session.c). Checks, beyond the sanitizers and
 * the simulator's canonical-stream aborts, that no message reaches the backend without a real end
 * of data in the client's bytes.
 *
 * Input: byte 0 picks options (bit 0: proxy_bare_newline=normalize, bit 1: spool past 4 KB instead
 * of holding up to 64 KB in memory, bits 2-7: read chunk size - 1); the rest is what the client
 * sends. The key and the table live in a temporary directory made at the first input, removed at
 * exit.
 */
#include "config.h"

#include <fcntl.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "conf.h"
#include "policy.h"
#include "sim_session.h"

static struct moat_policy *pols[4];
static char dir[64];

/* hold_cleanup - at exit: the key, the table and the directory (spooled messages are unlinked). */
static void
hold_cleanup(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/key", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/table", dir);
	unlink(path);
	rmdir(dir);
}

/* hold_files - an ed25519 key (mode 600, ours) and a table that signs every From domain. */
static void
hold_files(void)
{
	char path[128];
	EVP_PKEY *pkey;
	FILE *f;
	int fd;

	snprintf(dir, sizeof(dir), "/tmp/mxmoat-fuzz-hold.XXXXXX");
	if (mkdtemp(dir) == NULL || (pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) == NULL)
		abort();
	atexit(hold_cleanup);
	snprintf(path, sizeof(path), "%s/key", dir);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0 ||
	    (f = fdopen(fd, "w")) == NULL ||
	    PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) != 1 || fclose(f) != 0)
		abort();
	EVP_PKEY_free(pkey);
	snprintf(path, sizeof(path), "%s/table", dir);
	if ((f = fopen(path, "w")) == NULL)
		abort();
	fprintf(f,
	    "example.org s1 ed25519-sha256 %s/key\n* s2 ed25519-sha256 %s/key d=example.net\n", dir,
	    dir);
	if (fclose(f) != 0)
		abort();
}

/* hold_policy - the policy for options OPT (bits 0 and 1 of byte 0). */
static struct moat_policy *
hold_policy(unsigned opt)
{
	const struct passwd *pw = getpwuid(geteuid());
	char table[128];

	if (dir[0] == '\0')
		hold_files();
	if (pw == NULL)
		abort();
	snprintf(table, sizeof(table), "%s/table", dir);
	struct moat_conf_override ov[] = {
		{ "proxy_bare_newline", (opt & 1) ? "normalize" : "reject" },
		{ "proxy_hold_memory", (opt & 2) ? "4k" : "64k" },
		{ "proxy_spool_dir", dir },
		{ "limit_message_size", "64k" },
		{ "limit_line_length", "1000" },
		{ "internal_networks", "192.0.2.0/24" },
		{ "dkim_signing_table", table },
		{ "daemon_user", pw->pw_name }, /* the key's owner */
		{ "log_target", "stderr" },
	};
	return sim_session_policy(ov, sizeof(ov) / sizeof(ov[0]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t chunk;
	unsigned opt;

	if (size < 1)
		return 0;
	opt = data[0] & 3;
	chunk = (size_t)(data[0] >> 2) * 8 + 1;
	if (pols[opt] == NULL)
		pols[opt] = hold_policy(opt);
	sim_session_client_run(pols[opt], (const char *)data + 1, size - 1, chunk);
	return 0;
}
