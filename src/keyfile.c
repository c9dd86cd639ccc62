/*
 * keyfile.c - load DKIM private keys with ownership and permission checks (see keyfile.h).
 *
 * Owns nothing beyond the struct moat_key it fills. The checks are made on the open descriptor
 * (fstat after open with O_NOFOLLOW), so the file checked is the file read.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "keyfile.h"

int
moat_keyfile_owner(const char *daemon_user, uid_t *owner, char *err, size_t errlen)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (geteuid() != 0) {
		*owner = geteuid();
		return 0;
	}
	if (daemon_user == NULL || daemon_user[0] == '\0') {
		*owner = 0;
		return 0;
	}
	if (getpwnam_r(daemon_user, &pw, buf, sizeof(buf), &res) != 0 || res == NULL) {
		snprintf(err, errlen, "daemon_user %s: no such user", daemon_user);
		return -1;
	}
	*owner = pw.pw_uid;
	return 0;
}

/* keyfile_read - the checked file's bytes into a NUL-terminated buffer. */
static char *
keyfile_read(const char *path, uid_t owner, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open key file: %s", path,
		    errno == ELOOP ? "it is a symbolic link" : strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: key file is not a regular file", path);
		close(fd);
		return NULL;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen,
		    "%s: key file is readable or writable by %s (mode %04o); "
		    "run chmod 600 on it",
		    path, (st.st_mode & 070) ? "its group" : "others",
		    (unsigned)(st.st_mode & 07777));
		close(fd);
		return NULL;
	}
	if (st.st_uid != owner) {
		snprintf(err, errlen,
		    "%s: key file is owned by uid %u, not by the daemon user (uid %u)", path,
		    (unsigned)st.st_uid, (unsigned)owner);
		close(fd);
		return NULL;
	}
	if (st.st_size <= 0 || st.st_size > MOAT_KEY_FILE_MAX) {
		snprintf(err, errlen, "%s: key file size %lld is out of range (1 to %d bytes)",
		    path, (long long)st.st_size, MOAT_KEY_FILE_MAX);
		close(fd);
		return NULL;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		close(fd);
		return NULL;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (got != (size_t)st.st_size) {
		snprintf(err, errlen, "%s: short read of key file", path);
		free(buf);
		return NULL;
	}
	buf[got] = '\0';
	*len = got;
	return buf;
}

int
moat_keyfile_load(const char *path, enum moat_key_alg alg, uid_t owner, struct moat_key *key,
    char *err, size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	BIO *bio;
	size_t len = 0;
	char *pem;
	int type, bits;

	memset(key, 0, sizeof(*key));
	if ((pem = keyfile_read(path, owner, &len, err, errlen)) == NULL)
		return -1;
	if ((bio = BIO_new_mem_buf(pem, (int)len)) != NULL) {
		pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		BIO_free(bio);
	}
	if (pkey == NULL) {
		snprintf(err, errlen, "%s: not a PEM private key (unencrypted PKCS#8 or PKCS#1)",
		    path);
		goto fail;
	}
	type = EVP_PKEY_get_base_id(pkey);
	bits = EVP_PKEY_get_bits(pkey);
	if (alg == MOAT_KEY_RSA_SHA256 && type != EVP_PKEY_RSA) {
		snprintf(err, errlen,
		    "%s: the signing table says rsa-sha256 but this is not an RSA key", path);
		goto fail;
	}
	if (alg == MOAT_KEY_ED25519_SHA256 && type != EVP_PKEY_ED25519) {
		snprintf(err, errlen,
		    "%s: the signing table says ed25519-sha256 but this is not an "
		    "Ed25519 key",
		    path);
		goto fail;
	}
	if (alg == MOAT_KEY_RSA_SHA256 &&
	    (bits < MOAT_KEY_RSA_MIN_BITS || bits > MOAT_KEY_RSA_MAX_BITS)) {
		snprintf(err, errlen, "%s: RSA key of %d bits refused (%d to %d bits; RFC 8301)",
		    path, bits, MOAT_KEY_RSA_MIN_BITS, MOAT_KEY_RSA_MAX_BITS);
		goto fail;
	}
	if ((key->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	key->evp = pkey;
	key->alg = alg;
	key->bits = (unsigned)bits;
	key->pem = pem;
	key->pemlen = len;
	return 0;
fail:
	EVP_PKEY_free(pkey);
	OPENSSL_cleanse(pem, len);
	free(pem);
	return -1;
}

void
moat_keyfile_clear(struct moat_key *key)
{
	if (key->pem != NULL) {
		OPENSSL_cleanse(key->pem, key->pemlen);
		free(key->pem);
	}
	EVP_PKEY_free(key->evp);
	free(key->path);
	memset(key, 0, sizeof(*key));
}

const char *
moat_key_alg_name(enum moat_key_alg alg)
{
	return alg == MOAT_KEY_ED25519_SHA256 ? "ed25519-sha256" : "rsa-sha256";
}

int
moat_key_alg_parse(const char *name, enum moat_key_alg *alg)
{
	if (strcmp(name, "rsa-sha256") == 0)
		*alg = MOAT_KEY_RSA_SHA256;
	else if (strcmp(name, "ed25519-sha256") == 0)
		*alg = MOAT_KEY_ED25519_SHA256;
	else
		return -1;
	return 0;
}

int
moat_keyfile_public(const char *pem, size_t pemlen, char *out, size_t outlen)
{
	unsigned char der[2048];
	size_t dlen = 0;
	EVP_PKEY *pkey = NULL;
	BIO *bio;
	int rc = -1;

	if (pemlen > MOAT_KEY_FILE_MAX || (bio = BIO_new_mem_buf(pem, (int)pemlen)) == NULL)
		return -1;
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (pkey == NULL)
		return -1;
	if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519) {
		dlen = 32;
		if (EVP_PKEY_get_raw_public_key(pkey, der, &dlen) != 1)
			goto out;
	} else {
		int n = i2d_PUBKEY(pkey, NULL);
		unsigned char *p = der;
		if (n <= 0 || (size_t)n > sizeof(der))
			goto out;
		if (i2d_PUBKEY(pkey, &p) != n)
			goto out;
		dlen = (size_t)n;
	}
	if (outlen < 4 * ((dlen + 2) / 3) + 1)
		goto out;
	EVP_EncodeBlock((unsigned char *)out, der, (int)dlen);
	rc = 0;
out:
	EVP_PKEY_free(pkey);
	return rc;
}
