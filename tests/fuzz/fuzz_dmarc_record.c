/*
 * fuzz_dmarc_record.c - libFuzzer target: the DMARC record parser (RFC 9989 4.7, dmarc.c).
 *
 * Invariants: a record that parses has p set to none, quarantine or reject, sp/np/psd within
 * their enums and a NUL-terminated rua shorter than its buffer; never a crash.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmarc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_dmarc_record r;

	if (moat_dmarc_record_parse((const char *)data, size, &r) == 0) {
		if (r.p < MOAT_DMARC_P_NONE || r.p > MOAT_DMARC_P_REJECT)
			abort();
		if (r.sp > MOAT_DMARC_P_REJECT || r.np > MOAT_DMARC_P_REJECT ||
		    r.psd > MOAT_DMARC_PSD_N)
			abort();
		if (strnlen(r.rua, sizeof(r.rua)) >= sizeof(r.rua))
			abort();
		if (size < 8)
			abort();
	}
	return 0;
}
