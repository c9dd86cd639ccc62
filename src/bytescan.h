/*
 * bytescan.h - word-at-a-time octet tests for the scanners that pass over ordinary text eight
 * octets at a time (the DKIM body canonicalizer, the proxy's DATA reader). Header only.
 */
#ifndef MOAT_BYTESCAN_H
#define MOAT_BYTESCAN_H

#include <stdint.h>

/*
 * moat__bytes_below - 0x80 in each octet of W below C (C <= 0x80), and maybe in octets after
 * such an octet: nonzero exactly when W holds an octet below C, as a borrow only flags octets
 * above one that is below C (Hacker's Delight, "hasless").
 */
static inline uint64_t
moat__bytes_below(uint64_t w, unsigned c)
{
	return (w - 0x0101010101010101ULL * c) & ~w & 0x8080808080808080ULL;
}

#endif /* MOAT_BYTESCAN_H */
