/*
 * fuzz_authres.c - libFuzzer target: the Authentication-Results value escaping (authres.c) and
 * the authserv-id reader (authres_parse.c).
 *
 * The input is a hostile value (a domain, a HELO name, an address). Invariants: the escaped
 * value is either a bare token / local@domain with no whitespace, ';', '(' or '"', or one
 * quoted-string whose quotes are balanced and whose bytes are printable ASCII; written as a
 * property of a header, the header still has exactly the results we wrote (the value cannot add
 * a "; method=" of its own), and reading that header's authserv-id back gives ours.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authres.h"
#include "authres_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* results - ';' outside quoted-strings and comments: one per result. */
static unsigned
results(const char *p)
{
	unsigned n = 0;
	bool q = false;

	for (; *p; p++) {
		if (q && *p == '\\' && p[1]) {
			p++;
			continue;
		}
		if (*p == '"')
			q = !q;
		else if (!q && *p == ';')
			n++;
	}
	if (q)
		abort(); /* unbalanced quotes */
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char value[2048], out[4200], hdr[8192], id[256];
	struct moat_authres ar;
	long n;

	if (size >= sizeof(value))
		return 0;
	memcpy(value, data, size);
	value[size] = '\0';
	/* the reader on raw input: must not crash */
	(void)moat_authres_is_ours(value, size, "mx.test");

	n = moat_authres_value(value, out, sizeof(out));
	if (n < 0)
		return 0;
	if ((size_t)n != strlen(out))
		abort();
	for (const char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			abort();
	if (out[0] != '"' && strpbrk(out, " \t;()\"\\") != NULL)
		abort();
	moat_authres_init(&ar, hdr, sizeof(hdr), "mx.test");
	moat_authres_method(&ar, "spf", "pass", value[0] ? value : NULL);
	moat_authres_prop(&ar, "smtp", "mailfrom", value);
	moat_authres_method(&ar, "dmarc", "fail", NULL);
	if (moat_authres_finish(&ar) < 0)
		return 0;
	if (results(hdr) != 2)
		abort();
	if (moat_authres_servid(hdr, strlen(hdr), id, sizeof(id)) < 0 || strcmp(id, "mx.test") != 0)
		abort();
	return 0;
}
