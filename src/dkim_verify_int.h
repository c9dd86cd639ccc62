/*
 * dkim_verify_int.h - what the DKIM verifier shares with ARC verification (arc_verify.c): the
 * bounded copy of a header, and one signature - a DKIM-Signature, an ARC-Message-Signature or an
 * ARC-Seal - parsed, its body hashed, its key fetched through the verifier's cache and its
 * signature checked with the same code. Not for front-ends.
 */
#ifndef MOAT_DKIM_VERIFY_INT_H
#define MOAT_DKIM_VERIFY_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

#include "dkim_signature.h"
#include "dkim_verify.h"

#define MOAT__SIG_B_MAX 1024 /* a decoded b= (RSA 8192 bits) */

enum moat__sig_kind {
	MOAT__SIG_DKIM, /* RFC 6376 */
	MOAT__SIG_AMS, /* RFC 8617 4.1.2: a DKIM signature with i= the instance, no v= */
	MOAT__SIG_AS, /* RFC 8617 4.1.3: no body hash, no h=, cv=; relaxed header */
};

enum moat__alg {
	MOAT__ALG_UNKNOWN,
	MOAT__ALG_RSA_SHA256,
	MOAT__ALG_ED25519_SHA256,
	MOAT__ALG_RSA_SHA1
};

/* The header fields of a message as received, bounded (1024 fields, 1 MB); field i is
 * buf[off[i] .. off[i] + len[i]). A zeroed struct is empty. */
struct moat__hdrs {
	char *buf;
	size_t used, cap;
	size_t *off, *len;
	unsigned n, fcap;
	bool overflow; /* a field did not fit: what was kept is not the header */
};

/* moat__hdrs_keep - copy FIELD in; false past the bounds or out of memory. */
bool moat__hdrs_keep(struct moat__hdrs *h, const char *field, size_t len);
void moat__hdrs_free(struct moat__hdrs *h);

/* One signature field being evaluated. */
struct moat__vsig {
	struct moat_dkim_sig rep; /* what is reported; result set once decided */
	bool decided;
	enum moat__sig_kind kind;
	unsigned field; /* its index in the header copy */
	enum moat__alg alg;
	bool hrelaxed, brelaxed;
	char *h; /* h= names, ':' separated, no blanks */
	char cv[8]; /* ARC-Seal cv=: "none", "pass", "fail" */
	unsigned char bh[EVP_MAX_MD_SIZE];
	size_t bhlen;
	unsigned char b[MOAT__SIG_B_MAX];
	size_t blen;
	long long t, x; /* -1: absent */
	char idomain[254]; /* domain of i=, "" if absent (DKIM) */
	struct moat__dkim_body *body;
};

/*
 * moat__vsig_new - a signature of KIND whose tags moat_dkim_sig_tags read into TAGS, the rest of
 * its tag list (VALUE, LEN) parsed; what the tags alone decide (permerror, rsa-sha1) is decided.
 * NULL when out of memory.
 */
struct moat__vsig *moat__vsig_new(enum moat__sig_kind kind, const struct moat_dkim_sig *tags,
    const char *value, size_t len);
/* moat__vsig_body_start - give S a body hash of its own (not an ARC-Seal, not decided). */
void moat__vsig_body_start(const struct moat_dkim_verifier *v, struct moat__vsig *s);
void moat__vsig_body(struct moat__vsig *s, const char *chunk, size_t len);
/*
 * moat__vsig_finish - decide S at end of message: t=/x=, the key (DNS, through V's cache), the
 * body hash (S's own, else BH, a SHA-256 the caller computed; NULL: none), and the signature over
 * the fields HLIST selects bottom-up from H (NULL: S's h=) then the field SIG without its b=.
 */
void moat__vsig_finish(struct moat_dkim_verifier *v, struct moat__vsig *s,
    const struct moat__hdrs *h, const char *hlist, const char *sig, size_t siglen,
    const unsigned char *bh);
void moat__vsig_free(struct moat__vsig *s); /* NULL is a no-op */

/*
 * moat__dkim_tag - the value of tag NAME in the tag list VALUE (RFC 6376 3.2), without the FWS
 * around it, in *v and *vlen. false when it is absent or the list is malformed before it.
 */
bool moat__dkim_tag(const char *value, size_t len, const char *name, const char **v, size_t *vlen);

/* moat__dkim_verifier_md - the verifier's SHA-256 (EVP_MD *), for body hashes it shares. */
const void *moat__dkim_verifier_md(const struct moat_dkim_verifier *v);

#endif /* MOAT_DKIM_VERIFY_INT_H */
