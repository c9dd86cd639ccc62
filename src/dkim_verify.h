/*
 * dkim_verify.h - DKIM verification (RFC 6376, 8301, 8463), every signature, with OpenSSL over
 * our own canonicalization (dkim_signature.c, shared with signing).
 *
 * A struct moat_dkim_verifier holds what verification shares: the DNS layer (key lookups), a
 * bounded cache of decoded public keys, SHA-256 fetched once, a cap on the signatures evaluated.
 * It is shared by every thread; a struct moat_dkim_msg is one message, fed header by header and
 * chunk by chunk.
 */
#ifndef MOAT_DKIM_VERIFY_H
#define MOAT_DKIM_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "dns.h"

#define MOAT_DKIM_SIGS_MAX 50 /* hard ceiling of dkim_max_signatures */
#define MOAT_DKIM_SIG_FIELD_MAX 8192 /* a larger DKIM-Signature field is not evaluated */
#define MOAT_DKIM_MIN_RSA_BITS 1024 /* RFC 8301 3.2 */
#define MOAT_DKIM_IDENTITY_MAX 320 /* decoded i=: local-part 64, "@", domain 255 (RFC 5321) */

enum moat_dkim_res {
	MOAT_DKIM_NONE = 0,
	MOAT_DKIM_PASS,
	MOAT_DKIM_FAIL,
	MOAT_DKIM_NEUTRAL,
	MOAT_DKIM_POLICY, /* verified but not acceptable: body past l=, or past the cap */
	MOAT_DKIM_TEMPERROR,
	MOAT_DKIM_PERMERROR,
};

struct moat_dkim_sig {
	enum moat_dkim_res result;
	char domain[254]; /* d=, "" if absent */
	char selector[64]; /* s= */
	char alg[16]; /* "rsa-sha256", "ed25519-sha256", "rsa-sha1", "" */
	char b[16]; /* the first 8 characters of b= (RFC 6008 header.b) */
	char identity[MOAT_DKIM_IDENTITY_MAX + 1]; /* i= decoded (any bytes but NUL), or "" */
	unsigned key_bits;
	ssize_t body_signed; /* l= value, -1 without l= */
	ssize_t body_total; /* canonicalized body length */
	char reason[96];
};

struct moat_dkim_opts {
	unsigned max_signatures; /* evaluated, top-down; the rest are "policy"; 0: 5 */
	bool body_length_pass; /* content past l= still passes (default: policy) */
	time_t fixed_time; /* 0: now; tests of t= and x= */
};

struct moat_dkim_verifier;
struct moat_dkim_msg;

/* moat_dkim_verifier_new - DNS is borrowed and must outlive the verifier. NULL on error. */
struct moat_dkim_verifier *moat_dkim_verifier_new(struct moat_dns *dns,
    const struct moat_dkim_opts *opts);
void moat_dkim_verifier_free(struct moat_dkim_verifier *v);

/* moat_dkim_msg_new - start a message; NULL when out of memory. */
struct moat_dkim_msg *moat_dkim_msg_new(struct moat_dkim_verifier *v);
/* moat_dkim_header - one raw field "Name: value", folding CRLFs inside, no final CRLF. */
void moat_dkim_header(struct moat_dkim_msg *m, const char *field, size_t len);
void moat_dkim_eoh(struct moat_dkim_msg *m);
/* moat_dkim_body - body bytes, CRLF line ends, dot-unstuffed. */
void moat_dkim_body(struct moat_dkim_msg *m, const char *chunk, size_t len);
/*
 * moat_dkim_eom - verify; fills sigs[0..max) (one per DKIM-Signature field, top-down) and
 * returns how many there are (0: unsigned). Key lookups happen here.
 */
size_t moat_dkim_eom(struct moat_dkim_msg *m, struct moat_dkim_sig *sigs, size_t max);
void moat_dkim_msg_free(struct moat_dkim_msg *m);

const char *moat_dkim_result_name(enum moat_dkim_res r);

/*
 * moat_dkim_sig_tags - the tags of a DKIM-Signature value as we check them before anything else
 * is done (d=, s=, a=, b= prefix for reporting): bounded tag-list parse (RFC 6376 3.2; a tag
 * name that occurs twice, whatever its length, makes the list malformed). d= and s= must be LDH
 * names (a NUL, quote or other byte is refused before any DNS name is built).
 * Returns 0, or -1 when the tag list is malformed.
 */
int moat_dkim_sig_tags(const char *value, size_t len, struct moat_dkim_sig *out);

/*
 * moat_dkim_identity - an i= value (RFC 6376 3.5: dkim-quoted-printable of [local-part] "@"
 * domain) decoded into out (MOAT_DKIM_IDENTITY_MAX + 1 bytes, NUL-terminated) and checked:
 * decodable, no NUL, exactly one "@", an LDH domain after it. Returns 0, or -1 with *why set
 * to a static reason; out holds the decoded text whenever it decoded without a NUL, else "".
 */
int moat_dkim_identity(const char *value, size_t len, char *out, const char **why);

#endif /* MOAT_DKIM_VERIFY_H */
