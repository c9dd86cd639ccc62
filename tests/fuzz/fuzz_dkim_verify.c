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

#define FIELD_MAX 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
	size_t flen = 0, n, i;

	if (nl == NULL || (dns = moat_dns_new_fixture()) == NULL)
		return 0;
	moat_dns_fixture_add(dns, "sel._domainkey.example.com", MOAT_DNS_TXT, 0, p,
	    (size_t)(nl - p));
	v = moat_dkim_verifier_new(dns, &opts);
	m = v ? moat_dkim_msg_new(v) : NULL;
	field = malloc(FIELD_MAX);
	if (m == NULL || field == NULL)
		goto out;
	/* header fields: a line starting with a blank continues the field (CRLF kept inside) */
	for (p = nl + 1; p < end;) {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((e ? e : end) - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len == 0 || (p[0] != ' ' && p[0] != '\t')) {
			if (flen > 0)
				moat_dkim_header(m, field, flen);
			flen = 0;
		} else if (flen + 2 <= FIELD_MAX) {
			field[flen++] = '\r';
			field[flen++] = '\n';
		}
		if (len == 0) {
			p = e ? e + 1 : end;
			break;
		}
		if (flen + len <= FIELD_MAX) {
			memcpy(field + flen, p, len);
			flen += len;
		}
		p = e ? e + 1 : end;
	}
	if (flen > 0)
		moat_dkim_header(m, field, flen);
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
