/*
 * fuzz_proxy_inbound.c - libFuzzer target: the inbound PROXY protocol header parser.
 *
 * Input: the bytes a load balancer sends. The parser runs on the whole input and on every
 * prefix a reader could see; it must agree with itself: a prefix of a DONE header is NEED, a
 * DONE header lies within the input and PX_PIN_MAX, and a reason comes with every BAD.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_inbound.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct px_pin h;
	const char *why;
	char *copy;
	enum px_pin_status st;

	if (size > 2 * PX_PIN_MAX)
		return 0;
	/* an exact-size copy, so ASan sees any read past the input */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	st = px_pin_parse(copy, size, &h, &why);
	if (st == PX_PIN_BAD && why == NULL)
		abort();
	if (st == PX_PIN_NEED && size >= PX_PIN_MAX)
		abort();
	if (st == PX_PIN_DONE) {
		struct px_pin h2;

		if (h.len == 0 || h.len > size || h.len > PX_PIN_MAX ||
		    (h.version != 1 && h.version != 2))
			abort();
		if (!h.local &&
		    (memchr(h.src, '\0', sizeof(h.src)) == NULL || h.sport > 65535 ||
			h.dport > 65535))
			abort();
		for (size_t n = 0; n < h.len; n++)
			if (px_pin_parse(copy, n, &h2, &why) != PX_PIN_NEED)
				abort();
	}
	free(copy);
	return 0;
}
