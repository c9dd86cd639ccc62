/*
 * bdat_oracle.h - the test oracle of BDAT (proxy/data_reader.c px_data_chunk): a message given as
 * BDAT octets written out as a DATA client sends it, for tests/unit/test_smtp_parse.c and
 * tests/fuzz/fuzz_bdat.c to read with px_data_feed and compare.
 */
#ifndef BDAT_ORACLE_H
#define BDAT_ORACLE_H

#include <stddef.h>

#include "data_reader.h"

/*
 * bdat_oracle_stuff - RAW[0..n) as DATA (RFC 5321 4.5.2): a dot starting a line doubled, a CRLF
 * added when it does not end in one (nor is empty), then ".\r\n". OUT has room for 2 * n + 5;
 * returns the octets written.
 */
size_t bdat_oracle_stuff(const char *raw, size_t n, char *out);

/*
 * bdat_oracle_chunks - RAW[0..n) to px_data_chunk in chunks of pseudo-random sizes (*seed: the
 * generator's state, advanced), then px_data_chunk_end: what the proxy does with BDAT.
 */
void bdat_oracle_chunks(struct px_data *d, const char *raw, size_t n, unsigned *seed);

#endif /* BDAT_ORACLE_H */
