/*
 * fuzz_arc.c - libFuzzer target: ARC verification (arc_verify.c) on hostile input: the ARC field
 * recognition and instance parse, the AMS and seal tag parses, the chain structure, the seal's
 * header layout and hash, and the ARC-Authentication-Results reader (moat_arc_aar_ids) on every
 * ARC-Authentication-Results field and, on a pass, on every hop.
 *
 * Input: msg_input.h (a TXT record for sel._domainkey.example.com, then a message). Invariants:
 * a result of none, pass or fail, "" as the reason exactly when it is not fail, the reason
 * NUL-terminated, oldest-pass 0 or within the chain, every hop's AAR inside the input copy, and
 * every identifier read an LDH name; ASan/UBSan catch the rest.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arc_verify.h"
#include "msg_input.h"
#include "text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* aar_check - read an AAR value; every identifier must be an LDH name. */
static void
aar_check(const char *v, size_t len)
{
	struct moat_arc_aar_id ids[4];
	int n = moat_arc_aar_ids(v, len, ids, 4);

	if (n > 4)
		abort();
	for (int i = 0; i < n; i++)
		if (!moat_ldh_name(ids[i].domain, strlen(ids[i].domain)))
			abort();
}

static void
arc_field(void *m, const char *field, size_t len)
{
	static const char aar[] = "ARC-Authentication-Results:";

	moat_arc_header(m, field, len);
	if (len >= sizeof(aar) - 1 && strncasecmp(field, aar, sizeof(aar) - 1) == 0)
		aar_check(field + sizeof(aar) - 1, len - (sizeof(aar) - 1));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size, *nl = memchr(p, '\n', size);
	struct moat_dkim_opts opts = { .fixed_time = 1795000000 };
	const struct moat_arc_result *r;
	struct moat_dns *dns;
	struct moat_dkim_verifier *v;
	struct moat_arc_msg *m;
	char *field;

	if (nl == NULL || (dns = moat_dns_new_fixture()) == NULL)
		return 0;
	moat_dns_fixture_add(dns, "sel._domainkey.example.com", MOAT_DNS_TXT, 0, p,
	    (size_t)(nl - p));
	v = moat_dkim_verifier_new(dns, &opts);
	m = v ? moat_arc_msg_new(v, 5) : NULL;
	field = malloc(FUZZ_FIELD_MAX);
	if (m == NULL || field == NULL)
		goto out;
	p = fuzz_msg_fields(nl + 1, end, field, arc_field, m);
	moat_arc_eoh(m);
	moat_arc_body(m, p, (size_t)(end - p));
	r = moat_arc_eom(m);
	if (memchr(r->reason, '\0', sizeof(r->reason)) == NULL ||
	    (r->result == MOAT_ARC_FAIL) != (r->reason[0] != '\0') || r->instances > 5 ||
	    r->oldest_pass > r->instances)
		abort();
	if (r->result == MOAT_ARC_PASS)
		for (unsigned i = 0; i < r->instances; i++) {
			if (r->hop[i].aar == NULL ||
			    !moat_ldh_name(r->hop[i].sealer, strlen(r->hop[i].sealer)))
				abort();
			aar_check(r->hop[i].aar, r->hop[i].aar_len);
		}
out:
	free(field);
	moat_arc_msg_free(m);
	moat_dkim_verifier_free(v);
	moat_dns_free(dns);
	return 0;
}
