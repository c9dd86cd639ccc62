/*
 * spf_macro.h - RFC 7208 section 7 macro expansion (used by spf.c and its fuzz target).
 */
#ifndef MOAT_SPF_MACRO_H
#define MOAT_SPF_MACRO_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "cidr.h"

#define MOAT_SPF_MACRO_SYNTAX (-1) /* not a valid macro-string: permerror */
#define MOAT_SPF_MACRO_TOOLONG (-2) /* expansion does not fit the output buffer */

/* A macro value (one letter's expansion before transformers) longer than this is an error. */
#define MOAT_SPF_MACRO_VALUE_MAX 1024

/* The values the letters stand for; borrowed for the duration of one expansion. */
struct moat_spf_macro_ctx {
	const char *local; /* l: local part of the sender */
	const char *sender_domain; /* o */
	const char *domain; /* d: the domain being checked now */
	const char *helo; /* h */
	const char *receiver; /* r (explanations only): NULL -> "unknown" */
	const struct moat_addr *client; /* i, c, v */
	time_t now; /* t (explanations only) */
	/* p: the validated domain name of the client (RFC 7208 7.3); NULL or failing -> "unknown" */
	int (*validated_name)(void *arg, char *out, size_t len);
	void *arg;
};

/*
 * moat_spf_macro_expand - expand IN (inlen bytes) into OUT (at most outmax - 1 bytes, then NUL).
 * exp: an explanation string (c, r, t allowed; RFC 7208 7.1). Returns the length written, or
 * MOAT_SPF_MACRO_SYNTAX / MOAT_SPF_MACRO_TOOLONG. A NULL ctx checks syntax only (out may be NULL).
 */
long moat_spf_macro_expand(const struct moat_spf_macro_ctx *ctx, const char *in, size_t inlen,
    bool exp, char *out, size_t outmax);

/*
 * moat_spf_truncate_domain - RFC 7208 4.8: drop labels from the left until NAME is at most 253
 * bytes. Returns the start of the result within NAME (same buffer).
 */
const char *moat_spf_truncate_domain(const char *name);

#endif /* MOAT_SPF_MACRO_H */
