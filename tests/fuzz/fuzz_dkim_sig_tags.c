/*
 * fuzz_dkim_sig_tags.c - libFuzzer target: the DKIM-Signature tag-list parser as we use it
 * before anything else (dkim_verify.c: d=, s=, a=, b= prefix, l=, repeated tags), and the
 * dkim-quoted-printable decoder of i= and z= (qp.c, moat_dkim_identity).
 *
 * Invariants: on success d= and s= are non-empty LDH names (so the key's DNS name cannot carry a
 * NUL, quote or space), the b= prefix is at most 8 bytes and l= is -1 or non-negative. The
 * whole input as an i= value: an accepted identity has no NUL, exactly one '@' and an LDH
 * domain after it, a refused one leaves "" or the decoded text; the decoded text is never longer
 * than the input, and decoding it again after escaping every byte gives it back unchanged.
 */
#include "config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dkim_verify.h"
#include "qp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_ldh(const char *s)
{
	if (*s == '\0')
		abort();
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '-' || *s == '_' || *s == '.'))
			abort();
}

/* check_identity - the input as an i= value. */
static void
check_identity(const char *in, size_t size)
{
	char id[MOAT_DKIM_IDENTITY_MAX + 1];
	const char *why, *at;

	memset(id, 'x', sizeof(id));
	if (moat_dkim_identity(in, size, id, &why) == 0) {
		if (why != NULL || (at = strchr(id, '@')) == NULL || strchr(at + 1, '@') != NULL)
			abort();
		check_ldh(at + 1);
	} else if (why == NULL || memchr(id, '\0', sizeof(id)) == NULL) {
		abort();
	}
}

/* check_decoder - length bound, and escape-everything-then-decode is the identity. */
static void
check_decoder(const char *in, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(size + 1), *esc = NULL, *again = NULL;
	ssize_t n = out ? moat__qp_dkim_decode(in, size, out, size) : -1, m;

	if (out == NULL)
		return;
	if (n > (ssize_t)size || n == MOAT_QP_TOO_LONG ||
	    moat__qp_dkim_decode(in, size, NULL, 0) != n)
		abort();
	if (n > 0 && moat__qp_dkim_decode(in, size, out, (size_t)n - 1) != MOAT_QP_TOO_LONG)
		abort();
	if (n >= 0 && (esc = malloc(3 * (size_t)n + 1)) != NULL &&
	    (again = malloc((size_t)n + 1)) != NULL) {
		for (ssize_t i = 0; i < n; i++) {
			esc[3 * i] = '=';
			esc[3 * i + 1] = hex[(unsigned char)out[i] >> 4];
			esc[3 * i + 2] = hex[(unsigned char)out[i] & 15];
		}
		m = moat__qp_dkim_decode(esc, 3 * (size_t)n, again, (size_t)n);
		if (m != n || memcmp(again, out, (size_t)n) != 0)
			abort();
	}
	free(again);
	free(esc);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_dkim_sig s;

	if (moat_dkim_sig_tags((const char *)data, size, &s) == 0) {
		check_ldh(s.domain);
		check_ldh(s.selector);
		if (strlen(s.b) > 8 || s.body_signed < -1)
			abort();
	}
	check_identity((const char *)data, size);
	check_decoder((const char *)data, size);
	return 0;
}
