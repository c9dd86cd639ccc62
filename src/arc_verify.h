/*
 * arc_verify.h - verification of an Authenticated Received Chain (RFC 8617) on an inbound
 * message, and the reading of what its ARC-Authentication-Results say.
 *
 * A struct moat_arc_msg follows one message as the core's check table feeds it (header, eoh,
 * body, eom); at eom it validates the chain (RFC 8617 5.2) with the DKIM verifier's parser, key
 * cache and crypto (dkim_verify_int.h) and hands out a struct moat_arc_result: arc=pass, fail or
 * none for our Authentication-Results, the oldest-pass instance, and for a chain that passed
 * each hop's sealer and ARC-Authentication-Results value (for arc_trusted_sealers, auth.c).
 *
 * Bounds: at most MOAT_ARC_INSTANCES_MAX sets (RFC 8617 4.2.1) and a lower cap the caller gives;
 * an ARC field over MOAT_DKIM_SIG_FIELD_MAX bytes, an instance past either, a duplicate or a
 * missing member of a set is arc=fail before any key is fetched. Body hashes are shared by the
 * ARC-Message-Signatures of one canonicalization, so a chain of 50 hashes the body twice at most
 * (an AMS with l= has its own).
 */
#ifndef MOAT_ARC_VERIFY_H
#define MOAT_ARC_VERIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "dkim_verify.h"

#define MOAT_ARC_INSTANCES_MAX 50 /* RFC 8617 4.2.1 */

enum moat_arc_res {
	MOAT_ARC_NONE = 0, /* no ARC field */
	MOAT_ARC_PASS,
	MOAT_ARC_FAIL,
};

/* One ARC set of a chain that passed. */
struct moat_arc_hop {
	char sealer[254]; /* d= of its ARC-Seal, lower case */
	const char *aar; /* its ARC-Authentication-Results value (borrowed, see below) */
	size_t aar_len;
};

struct moat_arc_result {
	enum moat_arc_res result;
	unsigned instances; /* the highest instance, 0 when none */
	unsigned oldest_pass; /* RFC 8617 5.2 step 5: 0 when every AMS validated */
	char reason[128]; /* why it failed, "" on pass and none */
	struct moat_arc_hop hop[MOAT_ARC_INSTANCES_MAX]; /* hop[i - 1]: instance i, on pass */
};

struct moat_arc_msg;

/* moat_arc_msg_new - V is borrowed; CAP (1 to 50) caps the sets. NULL when out of memory. */
struct moat_arc_msg *moat_arc_msg_new(struct moat_dkim_verifier *v, unsigned cap);
void moat_arc_msg_free(struct moat_arc_msg *m); /* NULL is a no-op */
/* moat_arc_header - one raw field "Name: value", folding CRLFs inside, no final CRLF. */
void moat_arc_header(struct moat_arc_msg *m, const char *field, size_t len);
void moat_arc_eoh(struct moat_arc_msg *m);
/* moat_arc_body - body bytes, CRLF line ends, dot-unstuffed. */
void moat_arc_body(struct moat_arc_msg *m, const char *chunk, size_t len);
/*
 * moat_arc_eom - validate the chain (key lookups happen here), once. The result and the AAR
 * values it points into stay valid until moat_arc_msg_free.
 */
const struct moat_arc_result *moat_arc_eom(struct moat_arc_msg *m);

const char *moat_arc_result_name(enum moat_arc_res r); /* "none", "pass", "fail" */

/* An identifier an ARC-Authentication-Results value says passed. */
struct moat_arc_aar_id {
	bool spf; /* spf=pass for smtp.mailfrom; else dkim=pass for header.d (or header.i) */
	char domain[254]; /* lower case, an LDH name */
};

/*
 * moat_arc_aar_ids - parse an ARC-Authentication-Results value ("i=N; authserv-id; results",
 * RFC 8617 4.1.1, RFC 8601 2.2) and write the identifiers of its spf=pass and dkim=pass results
 * into out (at most max). Bounded: comments nest at most 8 deep. Returns how many were written,
 * or -1 when the value is not that syntax.
 */
int moat_arc_aar_ids(const char *value, size_t len, struct moat_arc_aar_id *out, size_t max);

#endif /* MOAT_ARC_VERIFY_H */
