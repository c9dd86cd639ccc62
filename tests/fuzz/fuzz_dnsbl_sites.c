/*
 * fuzz_dnsbl_sites.c - libFuzzer target: the dnsbl_sites parser (dnsbl.c, postscreen's syntax).
 *
 * Input: a dnsbl_sites value. Invariants: the value check and the parser agree; a parsed list has
 * 1 to MOAT_DNSBL_SITES_MAX sites, each with a non-empty LDH zone and a weight within
 * -100000..100000, whose query names for an IPv4 and an IPv6 client end in the zone or do not
 * fit; a refusal says why; never a crash.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "dns.h"
#include "dnsbl.h"
#include "text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char probes[][4] = { { 127, 0, 0, 2 }, { 127, 0, 0, 255 },
		{ 0, 0, 0, 0 } };
	char *spec = malloc(size + 1), err[256], err2[256], name[MOAT_DNS_NAME_MAX + 2];
	struct moat_addr a4, a6;
	struct moat_dnsbl *bl;
	size_t n;

	if (spec == NULL)
		return 0;
	memcpy(spec, data, size);
	spec[size] = '\0';
	if (moat_addr_parse("192.0.2.10", &a4) != 0 || moat_addr_parse("2001:db8::7", &a6) != 0)
		abort();
	bl = moat_dnsbl_parse(spec, err, sizeof(err));
	if ((moat_dnsbl_check(spec, err2, sizeof(err2)) == 0) != (bl != NULL || err[0] == '\0'))
		abort();
	n = moat_dnsbl_count(bl);
	if (bl != NULL && (n == 0 || n > MOAT_DNSBL_SITES_MAX))
		abort();
	for (size_t i = 0; i < n; i++) {
		const char *zone = moat_dnsbl_zone(bl, i);
		size_t zl = strlen(zone);
		int w = moat_dnsbl_weight(bl, i);

		if (zl == 0 || !moat_ldh_name(zone, zl) || w < -100000 || w > 100000)
			abort();
		for (int v6 = 0; v6 < 2; v6++)
			if (moat_dnsbl_query_name(bl, i, v6 ? &a6 : &a4, name, sizeof(name)) == 0) {
				size_t nl = strlen(name);
				if (nl <= zl + 1 || strcmp(name + nl - zl, zone) != 0 ||
				    name[nl - zl - 1] != '.')
					abort();
			}
		for (size_t k = 0; k < sizeof(probes) / sizeof(probes[0]); k++)
			(void)moat_dnsbl_hit(bl, i, probes[k]);
	}
	moat_dnsbl_free(bl);
	free(spec);
	return 0;
}
