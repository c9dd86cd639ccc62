/*
 * fuzz_dkim_verify.c - libFuzzer target: the whole DKIM verifier (dkim_verify.c) on hostile
 * input: the full DKIM-Signature tag parse, the b= removal for the header hash, the key record
 * parse and decode, header selection and both canonicalizations.
 *
 * Input: the first line is the TXT record published at sel._domainkey.example.com (the
 * in-process DNS fixture), the rest a message (LF or CRLF lines; header fields, a blank line,
 * the body). Invariants: one result per DKIM-Signature field (up to the output's size), every
 * reason NUL-terminated within its buffer, and nothing but pass/fail/neutral/policy/temperror/
 * permerror as a result; ASan/UBSan catch the rest.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dkim_verify.h"
#include "msg_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
dkim_field(void *m, const char *field, size_t len)
{
	moat_dkim_header(m, field, len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size, *nl = memchr(p, '\n', size);
	struct moat_dkim_opts opts = { .max_signatures = 3, .fixed_time = 1795000000 };
	struct moat_dkim_sig sigs[8];
	struct moat_dns *dns;
	struct moat_dkim_verifier *v;
	struct moat_dkim_msg *m;
	char *field;
	size_t n, i;

	if (nl == NULL || (dns = moat_dns_new_fixture()) == NULL)
		return 0;
	moat_dns_fixture_add(dns, "sel._domainkey.example.com", MOAT_DNS_TXT, 0, p,
	    (size_t)(nl - p));
	v = moat_dkim_verifier_new(dns, &opts);
	m = v ? moat_dkim_msg_new(v) : NULL;
	field = malloc(FUZZ_FIELD_MAX);
	if (m == NULL || field == NULL)
		goto out;
	p = fuzz_msg_fields(nl + 1, end, field, dkim_field, m);
	moat_dkim_eoh(m);
	moat_dkim_body(m, p, (size_t)(end - p));
	n = moat_dkim_eom(m, sigs, sizeof(sigs) / sizeof(sigs[0]));
	for (i = 0; i < n; i++) {
		if (memchr(sigs[i].reason, '\0', sizeof(sigs[i].reason)) == NULL ||
		    memchr(sigs[i].domain, '\0', sizeof(sigs[i].domain)) == NULL)
			abort();
		if (sigs[i].result == MOAT_DKIM_NONE)
			abort();
	}
out:
	free(field);
	moat_dkim_msg_free(m);
	moat_dkim_verifier_free(v);
	moat_dns_free(dns);
	return 0;
}
