/*
 * qp.c - quoted-printable decoding for the core (see qp.h). Owns nothing: pure functions over
 * the caller's bytes.
 */
#include "config.h"

#include "qp.h"

/* qp_hex - the value of one hex digit, either case, or -1. */
static int
qp_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
moat__qp_octet(const char *p, size_t n)
{
	int h, l;

	if (n < 3 || p[0] != '=' || (h = qp_hex((unsigned char)p[1])) < 0 ||
	    (l = qp_hex((unsigned char)p[2])) < 0)
		return -1;
	return h * 16 + l;
}

ssize_t
moat__qp_dkim_decode(const char *in, size_t n, char *out, size_t outmax)
{
	size_t i = 0, o = 0;

	while (i < n) {
		unsigned char c = (unsigned char)in[i];
		int v;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			i++; /* FWS: not part of the text (RFC 6376 2.11) */
			continue;
		}
		if (c == '=') {
			if ((v = moat__qp_octet(in + i, n - i)) < 0)
				return MOAT_QP_INVALID;
			c = (unsigned char)v;
			i += 3;
		} else if (c < 0x21 || c > 0x7e || c == ';') {
			return MOAT_QP_INVALID; /* not a dkim-safe-char */
		} else {
			i++;
		}
		if (out != NULL) {
			if (o >= outmax)
				return MOAT_QP_TOO_LONG;
			out[o] = (char)c;
		}
		o++;
	}
	return (ssize_t)o;
}
