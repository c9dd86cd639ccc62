/* sign_keys.h - test helper: write fresh keys and a signing table into a temporary directory. */
#ifndef TEST_SIGN_KEYS_H
#define TEST_SIGN_KEYS_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

/* write_key - a new key ("RSA" bits, or "ED25519") as PEM in DIR/NAME, mode 0600. */
static inline void
write_key(const char *dir, const char *name, const char *type, size_t bits)
{
	char path[512];
	EVP_PKEY *k = strcmp(type, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits)
					       : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	FILE *fp;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	fp = fdopen(fd, "w");
	PEM_write_PrivateKey(fp, k, NULL, NULL, 0, NULL, NULL);
	fclose(fp);
	EVP_PKEY_free(k);
}

/* write_file - DIR/NAME with TEXT. */
static inline void
write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	fputs(text, fp);
	fclose(fp);
}

#endif
