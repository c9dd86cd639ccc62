/*
 * fuzz_scan_reply.c - arbitrary bytes as a content scanner's answer: clamd's INSTREAM reply
 * (moat_clamd_parse, src/scan_clamd.c) or rspamd's /checkv2 JSON answer (moat_rspamd_parse,
 * src/scan_rspamd.c, through json-c). What either parser takes must be safe where it goes: the
 * virus name into a reply line and a header field (printable ASCII, no space, bounded), rspamd's
 * action one we map, its Subject one bounded line, its symbol list a bounded string.
 *
 * Input: byte 0 picks the parser (even: clamd, odd: rspamd); the rest is the answer (clamd's
 * without its terminating NUL, as moat_clamd_read hands it over).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scan_clamd.h"
#include "scan_rspamd.h"

/* fuzz_clamd - a reply the parser takes names a virus that may go into a reply line. */
static void
fuzz_clamd(const char *p, size_t n)
{
	struct moat_clamd_result res;
	char err[200];
	size_t len;

	if (moat_clamd_parse(p, n, &res, err, sizeof(err)) < 0) {
		if (res.infected || res.virus[0] != '\0' || memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		for (const char *q = err; *q; q++) /* the reason is logged: no control characters */
			if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e)
				abort();
		return;
	}
	len = strnlen(res.virus, sizeof(res.virus));
	if (len == sizeof(res.virus) || res.infected != (len > 0))
		abort();
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)res.virus[i] <= 0x20 || (unsigned char)res.virus[i] > 0x7e)
			abort();
}

/* fuzz_rspamd - an answer the parser takes has an action we map and bounded, one-line strings. */
static void
fuzz_rspamd(const char *p, size_t n)
{
	struct moat_rspamd_result res;
	char err[200];
	size_t slen;

	if (moat_rspamd_parse(p, n, &res, err, sizeof(err)) < 0)
		return;
	if (res.action > MOAT_RSPAMD_REJECT ||
	    strnlen(res.symbols, sizeof(res.symbols)) == sizeof(res.symbols) ||
	    (slen = strnlen(res.subject, sizeof(res.subject))) == sizeof(res.subject))
		abort();
	if (res.action == MOAT_RSPAMD_REWRITE_SUBJECT &&
	    (slen == 0 || slen > MOAT_RSPAMD_SUBJECT_MAX || strpbrk(res.subject, "\r\n") != NULL))
		abort();
	if (res.action != MOAT_RSPAMD_REWRITE_SUBJECT && slen != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy;

	if (size < 1)
		return 0;
	/* a copy of exactly the answer's length, so ASan sees a read past its end */
	if ((copy = malloc(size - 1 ? size - 1 : 1)) == NULL)
		return 0;
	memcpy(copy, data + 1, size - 1);
	if (data[0] & 1)
		fuzz_rspamd(copy, size - 1);
	else
		fuzz_clamd(copy, size - 1);
	free(copy);
	return 0;
}
