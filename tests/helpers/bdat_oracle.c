/*
 * bdat_oracle.c - a BDAT message written out as DATA, octet by octet, independent of the reader's
 * own stuffing (bdat_oracle.h).
 */
#include "config.h"

#include <stdbool.h>
#include <string.h>

#include "bdat_oracle.h"

size_t
bdat_oracle_stuff(const char *raw, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		bool bol = i == 0 || (i >= 2 && raw[i - 2] == '\r' && raw[i - 1] == '\n');

		if (raw[i] == '.' && bol)
			out[o++] = '.';
		out[o++] = raw[i];
	}
	if (n > 0 && !(n >= 2 && raw[n - 2] == '\r' && raw[n - 1] == '\n')) {
		memcpy(out + o, "\r\n", 2);
		o += 2;
	}
	memcpy(out + o, ".\r\n", 3);
	return o + 3;
}

void
bdat_oracle_chunks(struct px_data *d, const char *raw, size_t n, unsigned *seed)
{
	size_t at = 0;

	while (at < n) {
		size_t k;

		*seed = *seed * 1103515245 + 12345;
		k = 1 + (*seed >> 16) % (n - at);
		px_data_chunk(d, raw + at, k);
		at += k;
	}
	px_data_chunk_end(d);
}
