/*
 * mxmoat-keygen.c - make a DKIM key pair and check that DNS publishes it.
 *
 *   mxmoat-keygen [-a rsa|ed25519] [-b BITS] [-o KEYFILE] SELECTOR DOMAIN
 *       writes the private key (PEM, mode 0600, never over an existing file), prints the TXT
 *       record to publish and the signing table row to add.
 *   mxmoat-keygen --check [-c FILE] [-o KEY=VALUE]... [--key KEYFILE] [--resolver ADDR[@PORT]]
 *                 SELECTOR DOMAIN
 *       looks SELECTOR._domainkey.DOMAIN up through the configured resolver and says whether its
 *       p= is the public half of the key (the signing table row for SELECTOR and DOMAIN, or
 *       --key). Exit: 0 match, 1 no record or mismatch, 2 temporary DNS failure, 3 usage/config.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "conf.h"
#include "dkim_sign.h"
#include "dns.h"
#include "keyfile.h"
#include "signtable.h"

#define EXIT_MATCH 0
#define EXIT_MISMATCH 1
#define EXIT_TEMPFAIL 2
#define EXIT_USAGE 3
#define OVERRIDES_MAX 32
#define PUB_MAX 2048

static const char usage_text[] =
    "usage: mxmoat-keygen [-a rsa|ed25519] [-b 2048|3072|4096] [-o KEYFILE] SELECTOR DOMAIN\n"
    "       mxmoat-keygen --check [-c FILE] [-o KEY=VALUE]... [--key KEYFILE]\n"
    "                     [--resolver ADDR[@PORT]] SELECTOR DOMAIN\n";

/* keygen_generate - a new key of ALG (BITS for RSA). */
static EVP_PKEY *
keygen_generate(enum moat_key_alg alg, unsigned bits)
{
	if (alg == MOAT_KEY_ED25519_SHA256)
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
}

/* keygen_print_record - the TXT record, in 255-byte strings (RFC 1035 3.3.14, RFC 6376 3.6.2.2). */
static void
keygen_print_record(const char *selector, const char *domain, enum moat_key_alg alg,
    const char *pub)
{
	char txt[PUB_MAX + 64];
	size_t len;

	snprintf(txt, sizeof(txt), "v=DKIM1; k=%s; p=%s",
	    alg == MOAT_KEY_ED25519_SHA256 ? "ed25519" : "rsa", pub);
	len = strlen(txt);
	printf("%s._domainkey.%s. IN TXT", selector, domain);
	for (size_t off = 0; off < len; off += 255)
		printf(" \"%.*s\"", (int)(len - off > 255 ? 255 : len - off), txt + off);
	printf("\n");
}

/* keygen_make - generate, write with mode 0600, print the record and the table row. */
static int
keygen_make(const char *algname, unsigned bits, const char *out, const char *selector,
    const char *domain)
{
	enum moat_key_alg alg =
	    strcmp(algname, "ed25519") == 0 ? MOAT_KEY_ED25519_SHA256 : MOAT_KEY_RSA_SHA256;
	char path[4096], pub[PUB_MAX];
	EVP_PKEY *pkey;
	BIO *mem;
	char *pem;
	long pemlen;
	int fd;
	FILE *fp;

	if (strcmp(algname, "rsa") != 0 && strcmp(algname, "ed25519") != 0) {
		fprintf(stderr, "mxmoat-keygen: -a %s: rsa or ed25519\n", algname);
		return EXIT_USAGE;
	}
	if (alg == MOAT_KEY_RSA_SHA256 && bits != 2048 && bits != 3072 && bits != 4096) {
		fprintf(stderr,
		    "mxmoat-keygen: -b %u refused: RSA keys are 2048, 3072 or 4096 bits "
		    "(RFC 8301: 1024 is too weak)\n",
		    bits);
		return EXIT_USAGE;
	}
	if (!moat_sign_domain_valid(selector) || !moat_sign_domain_valid(domain)) {
		fprintf(stderr, "mxmoat-keygen: selector and domain must be DNS names\n");
		return EXIT_USAGE;
	}
	if (out == NULL)
		snprintf(path, sizeof(path), "%s.%s.%s.key", selector, domain,
		    alg == MOAT_KEY_ED25519_SHA256 ? "ed25519" : "rsa");
	else
		snprintf(path, sizeof(path), "%s", out);
	if ((pkey = keygen_generate(alg, bits)) == NULL) {
		fprintf(stderr, "mxmoat-keygen: key generation failed\n");
		return EXIT_USAGE;
	}
	mem = BIO_new(BIO_s_mem());
	if (mem == NULL || PEM_write_bio_PrivateKey(mem, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (pemlen = BIO_get_mem_data(mem, &pem)) <= 0) {
		fprintf(stderr, "mxmoat-keygen: cannot encode the key\n");
		EVP_PKEY_free(pkey);
		BIO_free(mem);
		return EXIT_USAGE;
	}
	EVP_PKEY_free(pkey);
	if (moat_keyfile_public(pem, (size_t)pemlen, pub, sizeof(pub)) < 0) {
		fprintf(stderr, "mxmoat-keygen: cannot derive the public key\n");
		BIO_free(mem);
		return EXIT_USAGE;
	}
	/* O_EXCL: never replace a key that may be in use; 0600 from the start, no window. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || (fp = fdopen(fd, "w")) == NULL) {
		fprintf(stderr, "mxmoat-keygen: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		BIO_free(mem);
		return EXIT_USAGE;
	}
	if (fwrite(pem, 1, (size_t)pemlen, fp) != (size_t)pemlen || fclose(fp) != 0) {
		fprintf(stderr, "mxmoat-keygen: %s: write failed\n", path);
		BIO_free(mem);
		return EXIT_USAGE;
	}
	OPENSSL_cleanse(pem, (size_t)pemlen);
	BIO_free(mem);
	printf("; private key written to %s (mode 0600); give it to the daemon user: "
	       "chown DAEMON_USER %s\n",
	    path, path);
	printf("; 1. publish this record in DNS:\n");
	keygen_print_record(selector, domain, alg, pub);
	printf("; 2. check it: mxmoat-keygen --check %s %s\n", selector, domain);
	printf(
	    "; 3. add this row to the file named by dkim_signing_table, then reload (SIGHUP):\n");
	printf("%s %s %s %s\n", domain, selector, moat_key_alg_name(alg), path);
	return 0;
}

/* keygen_read_pem - a key file's text for --key, bounded. */
static char *
keygen_read_pem(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "re");
	char *buf;

	if (fp == NULL)
		return NULL;
	if ((buf = malloc(MOAT_KEY_FILE_MAX + 1)) == NULL) {
		fclose(fp);
		return NULL;
	}
	*len = fread(buf, 1, MOAT_KEY_FILE_MAX + 1, fp);
	fclose(fp);
	if (*len == 0 || *len > MOAT_KEY_FILE_MAX) {
		free(buf);
		return NULL;
	}
	buf[*len] = '\0';
	return buf;
}

/* keygen_tag - the value of TAG in a DKIM key record (RFC 6376 3.6.1), blanks removed. */
static int
keygen_tag(const char *rec, const char *tag, char *out, size_t outlen)
{
	size_t tl = strlen(tag);
	const char *p = rec;

	while (*p) {
		const char *end;
		size_t n = 0;
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		end = strchr(p, ';');
		if (end == NULL)
			end = p + strlen(p);
		if (strncmp(p, tag, tl) == 0) {
			const char *q = p + tl;
			while (q < end && (*q == ' ' || *q == '\t'))
				q++;
			if (q < end && *q == '=') {
				for (q++; q < end; q++) {
					if (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
						continue;
					if (n + 1 >= outlen)
						return -1;
					out[n++] = *q;
				}
				out[n] = '\0';
				return 0;
			}
		}
		p = end;
	}
	return -1;
}

/* keygen_check - does the published record carry our public key? */
static int
keygen_check(const struct moat_conf *conf, const char *resolver, const char *keypath,
    const char *selector, const char *domain)
{
	char name[600], pub[PUB_MAX], got[PUB_MAX], err[512];
	const char *pem = NULL;
	char *owned = NULL;
	size_t pemlen = 0;
	struct moat_dns *dns;
	struct moat_dns_answer ans;
	enum moat_dns_status st;
	int rc = EXIT_MISMATCH;

	if (keypath != NULL) {
		if ((owned = keygen_read_pem(keypath, &pemlen)) == NULL) {
			fprintf(stderr, "mxmoat-keygen: %s: cannot read key\n", keypath);
			return EXIT_USAGE;
		}
		pem = owned;
	} else {
		size_t n = 0;
		const struct moat_sign_key *rows =
		    conf->signer ? moat_signtable_rows(moat_signer_table(conf->signer), &n) : NULL;
		for (size_t i = 0; i < n; i++)
			if (strcasecmp(rows[i].selector, selector) == 0 &&
			    strcasecmp(rows[i].domain, domain) == 0) {
				pem = rows[i].key.pem;
				pemlen = rows[i].key.pemlen;
				keypath = rows[i].key.path;
				break;
			}
		if (pem == NULL) {
			fprintf(stderr,
			    "mxmoat-keygen: no signing table row for selector %s, domain %s "
			    "(give --key FILE)\n",
			    selector, domain);
			return EXIT_USAGE;
		}
	}
	if (moat_keyfile_public(pem, pemlen, pub, sizeof(pub)) < 0) {
		fprintf(stderr, "mxmoat-keygen: %s: not a PEM private key\n", keypath);
		free(owned);
		return EXIT_USAGE;
	}
	free(owned);
	snprintf(name, sizeof(name), "%s._domainkey.%s", selector, domain);
	if ((dns = moat_dns_new(resolver ? resolver : conf->dns_resolver, conf->dns_timeout,
		 conf->dns_dnssec_trust_anchor, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxmoat-keygen: resolver: %s\n", err);
		return EXIT_USAGE;
	}
	memset(&ans, 0, sizeof(ans));
	st = moat_dns_query(dns, name, MOAT_DNS_TXT, &ans);
	if (st == MOAT_DNS_TEMPFAIL) {
		printf("%s: temporary DNS failure; try again\n", name);
		rc = EXIT_TEMPFAIL;
	} else if (st != MOAT_DNS_OK) {
		printf("%s: no TXT record (%s): publish the record before using this selector\n",
		    name, moat_dns_status_name(st));
	} else {
		bool found = false;
		for (size_t i = 0; i < ans.n; i++) {
			if (keygen_tag(ans.rr[i].data, "p", got, sizeof(got)) < 0)
				continue;
			found = true;
			if (strcmp(got, pub) == 0) {
				printf("%s: OK, the published key matches %s\n", name, keypath);
				rc = EXIT_MATCH;
				break;
			}
		}
		if (rc != EXIT_MATCH)
			printf("%s: %s\n", name,
			    found ? "MISMATCH: the published p= is not the public "
				    "half of this key; do not sign with it"
				  : "the TXT record has no p= tag");
	}
	moat_dns_answer_clear(&ans);
	moat_dns_free(dns);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "check", no_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'k' },
		{ "resolver", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct moat_conf_override ov[OVERRIDES_MAX];
	size_t nov = 0;
	const char *alg = "rsa", *out = NULL, *conffile = NULL, *keypath = NULL, *resolver = NULL;
	unsigned bits = 2048;
	bool check = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, "a:b:o:c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'a':
			alg = optarg;
			break;
		case 'b':
			bits = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'o':
			/* -o is the output file when generating, a KEY=VALUE override with --check. */
			if (strchr(optarg, '=') != NULL && nov < OVERRIDES_MAX &&
			    moat_conf_parse_override(optarg, &ov[nov]) == 0)
				nov++;
			else
				out = optarg;
			break;
		case 'c':
			conffile = optarg;
			break;
		case 'C':
			check = true;
			break;
		case 'k':
			keypath = optarg;
			break;
		case 'r':
			resolver = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fputs(usage_text, stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 2) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	if (!check)
		return keygen_make(alg, bits, out, argv[optind], argv[optind + 1]);
	{
		char err[MOAT_CONF_ERR_MAX];
		struct moat_conf *conf = moat_conf_load(conffile, ov, nov, err, sizeof(err));
		if (conf == NULL) {
			fprintf(stderr, "mxmoat-keygen: %s\n", err);
			return EXIT_USAGE;
		}
		rc = keygen_check(conf, resolver, keypath, argv[optind], argv[optind + 1]);
		moat_conf_unref(conf);
	}
	return rc;
}
