/*
 * fuzz_from.c - libFuzzer target: the strict RFC5322.From parser (rfc5322_from.c).
 *
 * Input: up to three header fields separated by NUL bytes (a NUL inside a field is part of it
 * only in the last one). Invariants: the status is one of four, an OK result has a non-empty
 * lower-case LDH domain with a dot, an error leaves the domain empty, and never a crash.
 */
#include "config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rfc5322_from.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_from f;
	const char *p = (const char *)data, *end = p + size;
	int fields = 0;

	moat_from_init(&f);
	while (p <= end && fields < 3) {
		const char *nul = fields < 2 ? memchr(p, 0, (size_t)(end - p)) : NULL;
		const char *e = nul ? nul : end;
		moat_from_field(&f, p, (size_t)(e - p));
		fields++;
		if (nul == NULL)
			break;
		p = nul + 1;
	}
	switch (moat_from_finish(&f)) {
	case MOAT_FROM_OK:
		if (f.domain[0] == '\0' || strchr(f.domain, '.') == NULL)
			abort();
		for (const char *d = f.domain; *d; d++)
			if (!(islower((unsigned char)*d) || isdigit((unsigned char)*d) ||
				*d == '-' || *d == '_' || *d == '.'))
				abort();
		break;
	case MOAT_FROM_NONE:
	case MOAT_FROM_MULTIPLE:
	case MOAT_FROM_BAD:
		if (f.domain[0] != '\0' || f.why == NULL)
			abort();
		break;
	default:
		abort();
	}
	return 0;
}
