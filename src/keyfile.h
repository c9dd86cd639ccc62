/*
 * keyfile.h - load a DKIM private key from a file, refusing files others could read.
 *
 * A key file must be a regular file, not a symlink, owned by the user the daemon runs as, with no
 * group or world permission bits, and hold one PEM private key of the algorithm the signing table
 * names: RSA of at least MOAT_KEY_RSA_MIN_BITS bits, or Ed25519. Every refusal names the file.
 */
#ifndef MOAT_KEYFILE_H
#define MOAT_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define MOAT_KEY_RSA_MIN_BITS 2048 /* RFC 8301 3.2: signers SHOULD use 2048; 1024 is refused */
#define MOAT_KEY_RSA_MAX_BITS 8192
#define MOAT_KEY_FILE_MAX 65536 /* bytes; a 8192-bit RSA key in PEM is about 6.5 KB */

enum moat_key_alg {
	MOAT_KEY_RSA_SHA256 = 0,
	MOAT_KEY_ED25519_SHA256 = 1,
};

struct moat_key {
	enum moat_key_alg alg;
	unsigned bits; /* RSA modulus size; 256 for Ed25519 */
	char *pem; /* the file's PEM text, NUL-terminated (mxmoat-keygen --check) */
	size_t pemlen;
	char *path;
	void *evp; /* EVP_PKEY * decoded once at load (dkim_signature.c signs with it) */
};

/*
 * moat_keyfile_owner - the uid a key file must belong to: when running as root, the uid of
 * DAEMON_USER (the daemon drops to it and must still read the key on reload); otherwise the
 * effective uid. -1 with a message in err if DAEMON_USER does not exist.
 */
int moat_keyfile_owner(const char *daemon_user, uid_t *owner, char *err, size_t errlen);

/*
 * moat_keyfile_load - read PATH as a key of ALG owned by OWNER. 0, or -1 with
 * "PATH: what is wrong" in err (nothing to free then). Release with moat_keyfile_clear.
 */
int moat_keyfile_load(const char *path, enum moat_key_alg alg, uid_t owner, struct moat_key *key,
    char *err, size_t errlen);

/* moat_keyfile_clear - wipe and free the key material; safe on a zeroed key. */
void moat_keyfile_clear(struct moat_key *key);

/* moat_key_alg_name / moat_key_alg_parse - "rsa-sha256", "ed25519-sha256" (RFC 6376, RFC 8463). */
const char *moat_key_alg_name(enum moat_key_alg alg);
int moat_key_alg_parse(const char *name, enum moat_key_alg *alg);

/*
 * moat_keyfile_public - the DNS p= value for a PEM private key: base64 of the DER
 * SubjectPublicKeyInfo for RSA (RFC 6376 3.6.1), base64 of the raw 32-byte key for Ed25519
 * (RFC 8463 4.2). 0, or -1 if it does not fit or the key does not parse.
 */
int moat_keyfile_public(const char *pem, size_t pemlen, char *out, size_t outlen);

#endif /* MOAT_KEYFILE_H */
