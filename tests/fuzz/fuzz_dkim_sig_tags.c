/*
 * fuzz_dkim_sig_tags.c - libFuzzer target: the DKIM-Signature tag-list parser as we use it
 * before anything else (dkim_verify.c: d=, s=, a=, b= prefix, l=).
 *
 * Invariants: on success d= and s= are non-empty LDH names (so the key's DNS name cannot carry a
 * NUL, quote or space), the b= prefix is at most 8 bytes and l= is -1 or non-negative.
 */
#include "config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dkim_verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_ldh(const char *s)
{
	if (*s == '\0')
		abort();
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '-' || *s == '_' || *s == '.'))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_dkim_sig s;

	if (moat_dkim_sig_tags((const char *)data, size, &s) == 0) {
		check_ldh(s.domain);
		check_ldh(s.selector);
		if (strlen(s.b) > 8 || s.body_signed < -1)
			abort();
	}
	return 0;
}
