/*
 * arc_int.h - what ARC verification (arc_verify.c) and sealing (arc_seal.c) share: recognizing
 * an ARC field and its instance, and laying out what an ARC-Seal signs. Not for front-ends.
 */
#ifndef MOAT_ARC_INT_H
#define MOAT_ARC_INT_H

#include <stddef.h>

#include "dkim_verify_int.h"

enum moat__arc_kind {
	MOAT__ARC_AAR, /* ARC-Authentication-Results */
	MOAT__ARC_AMS, /* ARC-Message-Signature */
	MOAT__ARC_AS, /* ARC-Seal */
	MOAT__ARC_KINDS
};

extern const char *const moat__arc_names[MOAT__ARC_KINDS];

/*
 * moat__arc_field - which ARC field FIELD ("Name" [WSP] ":" value) is, or -1; *voff gets the
 * offset of its value and *instance its i= (RFC 8617 4.2.1: the AAR's leading "i=N;", the
 * tag of the others), 0 when there is none of at most 3 digits.
 */
int moat__arc_field(const char *field, size_t len, size_t *voff, unsigned *instance);

/* One field's raw text ("Name: value", no final CRLF). */
struct moat__arc_text {
	const char *p;
	size_t len;
};

/*
 * moat__arc_seal_input - what the ARC-Seal of instance I signs (RFC 8617 5.1.1): the AAR, AMS and
 * AS of every set below I, then the AAR and AMS of I, in that order. SET[j][k] is the field of
 * kind k of instance j + 1. The fields are copied into OUT newest first and HLIST (HLISTLEN
 * bytes) names them oldest first, so the DKIM header picker (bottom-up) hashes them in order;
 * then the seal itself. 0, or -1 when out of memory (OUT is then to be freed all the same).
 */
int moat__arc_seal_input(const struct moat__arc_text (*set)[MOAT__ARC_KINDS], unsigned i,
    struct moat__hdrs *out, char *hlist, size_t hlistlen);

#define MOAT__ARC_HLIST_MAX (MOAT__ARC_KINDS * 50 * 28) /* 50 sets of the longest name + ':' */

#endif /* MOAT_ARC_INT_H */
