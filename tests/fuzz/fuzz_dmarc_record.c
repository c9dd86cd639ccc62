/*
 * fuzz_dmarc_record.c - libFuzzer target: the DMARC record parser (RFC 9989 4.7, dmarc.c).
 *
 * Invariants: a record that parses has p set to none, quarantine or reject, sp/np/psd within
 * their enums and a NUL-terminated rua shorter than its buffer; its fo= gives known option bits
 * only, and every address the mailto: parser (dmarc_failure.c) takes from rua= and ruf= is one
 * mailbox of printable ASCII without blanks, '<', '>' or ','; the raw input as an fo= value
 * too; never a crash.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmarc.h"
#include "dmarc_failure.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FO_BITS (MOAT_DFR_FO_ALL | MOAT_DFR_FO_ANY | MOAT_DFR_FO_DKIM | MOAT_DFR_FO_SPF)

/* check_addr - an address handed out by moat_dmarc_uri_each is one clean mailbox. */
static int
check_addr(const char *addr, uint64_t limit, void *arg)
{
	const char *at = strchr(addr, '@');

	(void)limit;
	(void)arg;
	if (at == NULL || at == addr || at[1] == '\0' || strchr(at + 1, '@') != NULL ||
	    strlen(addr) >= MOAT_DFR_ADDR_MAX)
		abort();
	for (const char *p = addr; *p; p++)
		if (*p <= ' ' || *p >= 127 || *p == '<' || *p == '>' || *p == ',')
			abort();
	return 0;
}

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
		if ((moat_dfr_fo_parse(r.fo, strlen(r.fo)) & ~FO_BITS) != 0)
			abort();
		moat_dmarc_uri_each(r.rua, check_addr, NULL);
		moat_dmarc_uri_each(r.ruf, check_addr, NULL);
	}
	if ((moat_dfr_fo_parse((const char *)data, size) & ~FO_BITS) != 0)
		abort();
	return 0;
}
