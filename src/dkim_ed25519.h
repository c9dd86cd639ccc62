/*
 * dkim_ed25519.h - ed25519-sha256 DKIM signatures (RFC 8463) made without libopendkim.
 *
 * libopendkim 2.11 can sign ed25519-sha256 but leaks the key (about 1.2 KB) on every message it
 * signs that way (dkim_privkey_load allocates, dkim_free does not release; seen with ASan), which
 * a long-running daemon cannot afford. So this file canonicalizes (RFC 6376 3.4, simple and
 * relaxed), selects header fields bottom-up (RFC 6376 5.4.2), oversigns, and signs the SHA-256
 * of the header data with OpenSSL's PureEdDSA. rsa-sha256 stays with libopendkim.
 */
#ifndef MOAT_DKIM_ED25519_H
#define MOAT_DKIM_ED25519_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct moat__ed_sign;

/* Everything one signature needs; strings and lists are borrowed until moat__ed_end. */
struct moat__ed_params {
	void *evp;                    /* EVP_PKEY * (Ed25519) */
	const char *domain, *selector;
	bool hrelaxed, brelaxed;
	const char *const *signhdrs;  /* NULL-terminated; "Name-*" matches a prefix */
	const char *const *oversign;  /* NULL-terminated */
	uint64_t now, ttl;            /* t=, and x= = now + ttl when ttl > 0 */
};

struct moat__ed_sign *moat__ed_begin(const struct moat__ed_params *p);
/* The whole header at once: field i is buf[off[i] .. off[i] + len[i]), no final CRLF. */
int moat__ed_header(struct moat__ed_sign *s, const char *buf, const size_t *off, const size_t *len,
    unsigned n);
void moat__ed_body(struct moat__ed_sign *s, const char *chunk, size_t len);
/* The DKIM-Signature value (malloc'ed, folded with CRLF + tab), or NULL. */
char *moat__ed_end(struct moat__ed_sign *s);
void moat__ed_free(struct moat__ed_sign *s);

/* moat__dkim_body_canon - canonicalize a whole body (tests): out must hold 2 * len + 2 bytes. */
size_t moat__dkim_body_canon(const char *in, size_t len, bool relaxed, char *out);

#endif /* MOAT_DKIM_ED25519_H */
