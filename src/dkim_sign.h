/*
 * dkim_sign.h - DKIM signing of outbound mail (RFC 6376; ed25519-sha256 per RFC 8463).
 *
 * Two objects. A struct moat_signer belongs to one configuration snapshot: the signing table with
 * its keys (decoded once, at load: a reload builds a new signer), the signed and oversigned
 * header lists, canonicalization and x= lifetime. It is immutable once built and shared by every
 * session on that snapshot, from any thread. A struct moat_sign is one message being signed:
 * header fields are collected until the end of the header (the From domain picks the keys), then
 * the body streams once through one canonicalizer and hash shared by every key
 * (dkim_signature.c), so rsa-sha256 and ed25519-sha256 signatures are made in the same pass.
 */
#ifndef MOAT_DKIM_SIGN_H
#define MOAT_DKIM_SIGN_H

#include <stdbool.h>
#include <stddef.h>

#include "conf.h"
#include "signtable.h"

#define MOAT_DKIM_SIGN_HEADERS_DEFAULT \
	"From, To, Cc, Subject, Date, Message-ID, Reply-To, " \
	"In-Reply-To, References, MIME-Version, Content-Type, Content-Transfer-Encoding, List-*"
#define MOAT_DKIM_OVERSIGN_HEADERS_DEFAULT "From, Subject, Date, To, Cc, Reply-To, Content-Type"
#define MOAT_DKIM_HEADER_LIST_MAX 64 /* names in one list */

struct moat_signer;
struct moat_sign;

enum moat_sign_status {
	MOAT_SIGN_OK = 0, /* signatures made */
	MOAT_SIGN_NO_KEY, /* no signing table row for the From domain: not signed */
	MOAT_SIGN_NO_FROM, /* no From, several, or no domain in it: not signed */
	MOAT_SIGN_FAILED, /* a key should have signed and could not: dkim_sign_failure applies */
};

/*
 * moat_signer_load - build the signer for CONF (dkim_signing_table and the dkim_sign_* keys).
 * *out is NULL when no table is configured. -1 with "file:line: what" in err.
 */
int moat_signer_load(const struct moat_conf *conf, struct moat_signer **out, char *err,
    size_t errlen);
void moat_signer_free(struct moat_signer *signer); /* NULL is a no-op */

/* moat_signer_table - the loaded table (borrowed, lives as long as the signer). */
const struct moat_signtable *moat_signer_table(const struct moat_signer *signer);

/* moat_sign_begin - a message to sign with SIGNER (borrowed: it must outlive the message). */
struct moat_sign *moat_sign_begin(const struct moat_signer *signer);

/* moat_sign_domain_fn - may the message be signed with d=DOMAIN? (ARG borrowed) */
typedef bool (*moat_sign_domain_fn)(void *arg, const char *domain);

/*
 * moat_sign_restrict - before the end of the header: sign only with the signing table rows whose
 * d= FN allows (an authenticated login's own domains, sender_login_map), and seal only with such
 * a row when arc_seal_domain does not name the sealer. With no row left the message is not signed
 * (no_key). ARG is borrowed: it must outlive the message.
 */
void moat_sign_restrict(struct moat_sign *s, moat_sign_domain_fn fn, void *arg);

/* One raw header field, "Name: value" with any folding CRLFs, without the final CRLF. */
void moat_sign_header(struct moat_sign *s, const char *field, size_t len);
/* End of the header: choose the keys by From domain and start each signature. */
void moat_sign_eoh(struct moat_sign *s);
/* Body bytes, CRLF line endings, dot-unstuffed. */
void moat_sign_body(struct moat_sign *s, const char *chunk, size_t len);

/*
 * moat_sign_end - finish every signature. values[i] receives a malloc'ed DKIM-Signature field
 * value (no "DKIM-Signature:" prefix, folded with CRLF + tab) the caller frees; *n how many.
 * why gets a short reason for the log ("d=example.com s=sel a=rsa-sha256 ..." when signed).
 */
enum moat_sign_status moat_sign_end(struct moat_sign *s, char **values, size_t max, size_t *n,
    char *why, size_t whylen);

/*
 * moat_sign_arc - with arc_seal, after moat_sign_end: our ARC set (arc_seal.h), out[0] the
 * ARC-Authentication-Results, out[1] the ARC-Message-Signature, out[2] the ARC-Seal value
 * (malloc'ed, the caller frees). 1: sealed; 0: not sealed (arc_seal off, or why says why);
 * -1: it should have been and could not (why).
 */
int moat_sign_arc(struct moat_sign *s, char *out[3], char *why, size_t whylen);

void moat_sign_free(struct moat_sign *s); /* NULL is a no-op */

/* moat_sign_status_name - "signed", "no_key", "no_from", "failed". */
const char *moat_sign_status_name(enum moat_sign_status st);

/*
 * moat_sign_from_domain - the domain of the one mailbox in a From field VALUE (after the colon),
 * lowercased into out. -1 if there is not exactly one address or its domain is not a valid name.
 */
int moat_sign_from_domain(const char *value, size_t len, char *out, size_t outlen);

/* moat_conf_check_header_list - validator for dkim_sign_headers and dkim_oversign_headers. */
int moat_conf_check_header_list(const char *value, char *err, size_t errlen);

#endif /* MOAT_DKIM_SIGN_H */
