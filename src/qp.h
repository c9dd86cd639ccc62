/*
 * qp.h - quoted-printable as the core reads it: the "=" 2HEXDIG escape of RFC 2045 6.7, used by
 * RFC 2047 "Q" encoded-words (rfc5322_from.c looks inside display names) and by DKIM's
 * dkim-quoted-printable (RFC 6376 2.11: the i= and z= tags, dkim_verify.c). One decoder of the
 * escape, one decoder of DKIM's form, both bounded by what the caller hands them.
 */
#ifndef MOAT_QP_H
#define MOAT_QP_H

#include <stddef.h>
#include <sys/types.h>

#define MOAT_QP_INVALID (-1) /* moat__qp_dkim_decode: not dkim-quoted-printable */
#define MOAT_QP_TOO_LONG (-2) /* moat__qp_dkim_decode: the decoded text does not fit */

/*
 * moat__qp_octet - the octet "=" HEX HEX at P (N bytes readable there) stands for, 0..255, or
 * -1 when P does not start with such an escape. Hex digits in either case: RFC 2045 6.7 writes
 * them in upper case and lets a receiver accept lower case.
 */
int moat__qp_octet(const char *p, size_t n);

/*
 * moat__qp_dkim_decode - dkim-quoted-printable (RFC 6376 2.11: *(FWS / hex-octet /
 * dkim-safe-char)) decoded into OUT, at most OUTMAX bytes, no NUL added; FWS (SP, HTAB, CR, LF)
 * is dropped. OUT may be NULL to check and measure only. Returns the decoded length, or
 * MOAT_QP_INVALID (an "=" not followed by two hex digits, a ';' or a byte outside %x21-7E), or
 * MOAT_QP_TOO_LONG.
 */
ssize_t moat__qp_dkim_decode(const char *in, size_t n, char *out, size_t outmax);

#endif /* MOAT_QP_H */
