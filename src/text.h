/*
 * text.h - small text checks and codecs the core and the front-ends share, so each exists once:
 * DNS names as DKIM and Authentication-Results write them, strict base64, host:port.
 */
#ifndef MOAT_TEXT_H
#define MOAT_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/*
 * moat_ldh_name - S (N bytes, no NUL needed) is letters, digits, '-' and '_' in dot-separated
 * labels of 1 to 63, at most 253 in all: a name that may go into a DNS query or be written bare
 * (DKIM d= and s=, RFC 6376 3.5; an Authentication-Results domain). '_' is allowed for selectors
 * and service labels.
 */
bool moat_ldh_name(const char *s, size_t n);

/*
 * moat_base64_decode - RFC 4648 base64 (S, N bytes): groups of four characters of the standard
 * alphabet, '=' padding only at the very end, nothing else (no white space). Writes the decoded
 * bytes to OUT, never more than OUTMAX; returns their number, or -1 when S is not such text or
 * decodes to more than OUTMAX bytes. N == 0 decodes to 0 bytes.
 */
long moat_base64_decode(const char *s, size_t n, unsigned char *out, size_t outmax);

/* moat_base64_valid - is S such text? Decodes nothing (for secrets that are only relayed). */
bool moat_base64_valid(const char *s, size_t n);

/* moat_base64_value - the 6-bit value of a character of the base64 alphabet, or -1. */
int moat_base64_value(unsigned char c);

/*
 * moat_hostport_split - "host:port" or "[v6]:port" into HOST (HOSTLEN bytes with its NUL) and
 * PORT (1 to 65535): 0, or -1 when it is neither.
 */
int moat_hostport_split(const char *hostport, char *host, size_t hostlen, int *port);

#endif /* MOAT_TEXT_H */
