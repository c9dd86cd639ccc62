/*
 * fuzz_spf_macro.c - libFuzzer target: the SPF macro expander.
 *
 * Input: first byte's low bit = explanation mode; then the local part up to the first NUL,
 * then the macro-string. Expanded into a small and a large buffer, and checked in syntax-only
 * mode, which must agree with the full expansion on syntax errors.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spf_macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char local[MOAT_SPF_MACRO_VALUE_MAX + 8];
	char small[64], big[8192];
	struct moat_spf_macro_ctx m;
	struct moat_addr client;
	const uint8_t *nul;
	size_t llen;
	bool exp;
	long a, b, c;

	if (size < 1)
		return 0;
	exp = data[0] & 1;
	data++;
	size--;
	nul = memchr(data, 0, size);
	llen = nul ? (size_t)(nul - data) : 0;
	if (llen >= sizeof(local))
		return 0;
	memcpy(local, data, llen);
	local[llen] = '\0';
	if (nul) {
		data = nul + 1;
		size -= llen + 1;
	}
	moat_addr_parse((size & 1) ? "2001:db8::cb01" : "192.0.2.3", &client);
	memset(&m, 0, sizeof(m));
	m.local = local;
	m.sender_domain = "email.example.com";
	m.domain = "sub.email.example.com";
	m.helo = "mx.example.org";
	m.receiver = "receiver.test";
	m.client = &client;
	m.now = 1700000000;
	a = moat_spf_macro_expand(&m, (const char *)data, size, exp, small, sizeof(small));
	b = moat_spf_macro_expand(&m, (const char *)data, size, exp, big, sizeof(big));
	c = moat_spf_macro_expand(NULL, (const char *)data, size, exp, NULL, 0);
	if ((b == MOAT_SPF_MACRO_SYNTAX) != (c == MOAT_SPF_MACRO_SYNTAX))
		abort();
	if (a >= 0 && (b != a || memcmp(small, big, (size_t)a + 1) != 0))
		abort();
	if (b >= 0) {
		if ((size_t)b != strlen(big) && memchr(big, 0, (size_t)b) == NULL)
			abort();
		(void)moat_spf_truncate_domain(big);
	}
	return 0;
}
