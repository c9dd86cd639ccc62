/*
 * arc_seal.h - adding our ARC set (RFC 8617 5.1) to outbound mail that passed through us: an
 * ARC-Authentication-Results copying our Authentication-Results, an ARC-Message-Signature and an
 * ARC-Seal, with one of the signing table's keys (rsa-sha256 or ed25519-sha256).
 *
 * The DKIM signer (dkim_sign.c) drives it for arc_seal: begin at the end of the header (while
 * its copy of the header is alive), body bytes as they stream, end with the three field values.
 * Only a message that carries an ARC chain or our Authentication-Results is sealed: one we only
 * relay for a local sender has nothing to attest. The chain validation status (cv=) is the arc=
 * result in our own Authentication-Results, written when the message came in (any forged one was
 * removed then); without it, an existing chain is sealed with cv=fail.
 */
#ifndef MOAT_ARC_SEAL_H
#define MOAT_ARC_SEAL_H

#include <stddef.h>

#include "dkim_signature.h"

struct moat_arc_seal;

/*
 * moat_arc_seal_begin - decide whether and how to seal the message whose header is field i =
 * BUF[OFF[i] .. OFF[i] + LEN[i]) (N fields; borrowed for this call only), with the key and lists
 * of KEY (instance and cv are set here; borrowed until _end) and AUTHSERV_ID. NULL with *why set
 * when the message is not sealed (nothing to attest, 50 sets already, out of memory).
 */
struct moat_arc_seal *moat_arc_seal_begin(const struct moat__dkim_sig_params *key,
    const char *authserv_id, const char *buf, const size_t *off, const size_t *len, unsigned n,
    char *why, size_t whylen);
/* Body bytes, CRLF line endings, dot-unstuffed. */
void moat_arc_seal_body(struct moat_arc_seal *a, const char *chunk, size_t len);
/*
 * moat_arc_seal_end - the set's three field values (malloc'ed, no field name, the caller frees):
 * out[0] ARC-Authentication-Results, out[1] ARC-Message-Signature, out[2] ARC-Seal. 0, or -1
 * with every out[] NULL. why gets "i=N cv=... d=... s=... a=...".
 */
int moat_arc_seal_end(struct moat_arc_seal *a, char *out[3], char *why, size_t whylen);
void moat_arc_seal_free(struct moat_arc_seal *a); /* NULL is a no-op */

#endif /* MOAT_ARC_SEAL_H */
