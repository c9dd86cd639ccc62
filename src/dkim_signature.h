/*
 * dkim_signature.h - DKIM signatures made with OpenSSL over our own canonicalization:
 * rsa-sha256 (RFC 6376 3.3.1) and ed25519-sha256 (RFC 8463).
 *
 * Two objects. A struct moat__dkim_body canonicalizes one message body (RFC 6376 3.4.3, 3.4.4)
 * and hashes it once for every signature that shares the canonicalization, so all keys sign in
 * one pass over the body. A struct moat__dkim_sig is one signature: the signed header fields
 * picked bottom-up (RFC 6376 5.4.2), oversigned names, the header hash, and at the end the
 * private-key operation with the EVP_PKEY decoded once when the key was loaded.
 *
 * libopendkim is not used for signing: it takes the key as PEM text and decodes it for every
 * message (three times the cost of the RSA operation with OpenSSL 3), and it leaks the key on
 * every ed25519 signature (about 1.2 KB, dkim_privkey_load allocates and dkim_free does not
 * release it).
 */
#ifndef MOAT_DKIM_SIGNATURE_H
#define MOAT_DKIM_SIGNATURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyfile.h"

#define MOAT_DKIM_BH_LEN 32 /* SHA-256 */

struct moat__dkim_body;
struct moat__dkim_sig;

/* Everything one signature needs; strings, lists, md and the key are borrowed until _end. */
struct moat__dkim_sig_params {
	enum moat_key_alg alg;
	void *evp; /* EVP_PKEY * of that algorithm */
	const void *md; /* EVP_MD * of SHA-256, fetched once by the caller */
	const char *domain, *selector;
	bool hrelaxed, brelaxed;
	const char *const *signhdrs; /* NULL-terminated; "Name-*" matches a prefix */
	const char *const *oversign; /* NULL-terminated */
	uint64_t now, ttl; /* t=, and x= = now + ttl when ttl > 0 */
	/* ARC (RFC 8617 4.1): instance > 0 makes an ARC-Message-Signature (i= instead of v=, no
	 * x=), and with cv also set an ARC-Seal (i, a, cv, d, s, t, b; the caller hashes the
	 * fields with moat__dkim_sig_fields, relaxed). */
	unsigned instance;
	const char *cv;
};

/* moat__dkim_body_new - a body hash (MD: SHA-256, borrowed). NULL when out of memory. */
struct moat__dkim_body *moat__dkim_body_new(bool relaxed, const void *md);
/* Body bytes, CRLF line endings, dot-unstuffed, in any chunks. */
void moat__dkim_body_feed(struct moat__dkim_body *b, const char *chunk, size_t len);
/* moat__dkim_body_end - the bh= hash into out; once. -1 on an OpenSSL error. */
int moat__dkim_body_end(struct moat__dkim_body *b, unsigned char out[MOAT_DKIM_BH_LEN]);
void moat__dkim_body_free(struct moat__dkim_body *b); /* NULL is a no-op */
/* moat__dkim_body_limit - hash only the first LIMIT canonical bytes (l=; verification). */
void moat__dkim_body_limit(struct moat__dkim_body *b, size_t limit);
/* moat__dkim_body_length - canonical body bytes seen so far, hashed or not (after _end: all). */
size_t moat__dkim_body_length(const struct moat__dkim_body *b);

/*
 * moat__dkim_hash_headers - feed MD (EVP_MD_CTX *) the header fields HLIST (names separated by
 * ':', no blanks) selects, bottom-up, each instance once (RFC 6376 5.4.2), canonicalized with
 * CRLF. Field i is buf[off[i] .. off[i] + len[i]). 0, or -1 when out of memory.
 */
int moat__dkim_hash_headers(void *md, const char *hlist, bool relaxed, const char *buf,
    const size_t *off, const size_t *len, unsigned n);
/* moat__dkim_canon_header - one field canonicalized into out (RFC 6376 3.4.1, 3.4.2), with a
 * final CRLF if CRLF; out must hold len + 2 bytes. Returns the length. */
size_t moat__dkim_canon_header(const char *f, size_t len, bool relaxed, bool crlf, char *out);

struct moat__dkim_sig *moat__dkim_sig_begin(const struct moat__dkim_sig_params *p);
/* The whole header at once: field i is buf[off[i] .. off[i] + len[i]), no final CRLF. */
int moat__dkim_sig_header(struct moat__dkim_sig *s, const char *buf, const size_t *off,
    const size_t *len, unsigned n);
/*
 * moat__dkim_sig_fields - an ARC-Seal's header hash: the fields HLIST (names separated by ':')
 * picks bottom-up from the given fields, as moat__dkim_hash_headers does. 0 or -1.
 */
int moat__dkim_sig_fields(struct moat__dkim_sig *s, const char *hlist, const char *buf,
    const size_t *off, const size_t *len, unsigned n);
/* moat__dkim_sig_end - the field value for body hash BH (NULL for an ARC-Seal), malloc'ed,
 * folded with CRLF + tab, or NULL. */
char *moat__dkim_sig_end(struct moat__dkim_sig *s, const unsigned char bh[MOAT_DKIM_BH_LEN]);
void moat__dkim_sig_free(struct moat__dkim_sig *s); /* NULL is a no-op */

/* moat__dkim_body_canon - canonicalize a whole body (tests): out must hold 2 * len + 2 bytes. */
size_t moat__dkim_body_canon(const char *in, size_t len, bool relaxed, char *out);

#endif /* MOAT_DKIM_SIGNATURE_H */
