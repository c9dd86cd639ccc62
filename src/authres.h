/*
 * authres.h - writing an Authentication-Results header field (RFC 8601) into a bounded buffer.
 *
 * One writer for every method (spf= here; dkim=, dmarc= from the DKIM/DMARC part): the caller
 * starts a header with its authserv-id, then appends one method result at a time and its
 * properties. Every value taken from the outside (domains, addresses, reasons) goes through
 * moat_authres_value(), which writes it bare only when it is a token or a plain
 * local-part@domain and otherwise as an RFC 2045 quoted-string, so a hostile domain cannot close
 * the value and add a property or a result of its own.
 */
#ifndef MOAT_AUTHRES_H
#define MOAT_AUTHRES_H

#include <stdbool.h>
#include <stddef.h>

struct moat_authres {
	char *buf; /* borrowed; NUL-terminated after every call */
	size_t len;
	size_t max; /* size of buf, NUL included */
	bool over; /* something did not fit: the header is unusable */
	unsigned n; /* results written */
};

/* moat_authres_init - start "AUTHSERV_ID" (no "Authentication-Results:" name); 0 or -1. */
int moat_authres_init(struct moat_authres *ar, char *buf, size_t max, const char *authserv_id);

/*
 * moat_authres_method - append "; METHOD=RESULT" and, if reason is not NULL or empty,
 * " reason=\"...\"" (RFC 8601 2.2). method and result are our own constants. 0 or -1.
 */
int moat_authres_method(struct moat_authres *ar, const char *method, const char *result,
    const char *reason);

/*
 * moat_authres_prop - append " PTYPE.PROPERTY=VALUE" to the last method (e.g. "smtp",
 * "mailfrom", the address); VALUE escaped by moat_authres_value(). 0 or -1.
 */
int moat_authres_prop(struct moat_authres *ar, const char *ptype, const char *property,
    const char *value);

/*
 * moat_authres_comment - append " (TEXT)" after the last property (RFC 8601 2.2 CFWS); a byte
 * that could end, nest or fold the comment (parentheses, backslash, ';', controls) is '?'. 0 or -1.
 */
int moat_authres_comment(struct moat_authres *ar, const char *text);

/* moat_authres_finish - write "AUTHSERV_ID; none" if no method was added (RFC 8601 2.2); -1 if anything overflowed. */
int moat_authres_finish(struct moat_authres *ar);

/*
 * moat_authres_value - VALUE as an RFC 8601 pvalue into out: bare if it is an RFC 2045 token or
 * [local-part "@"] domain made of atext and LDH, else a quoted-string with '"' and '\' escaped.
 * Bytes a header cannot carry (controls, 8-bit) are written as '?' inside the quotes. Returns
 * the length written, or -1 if it does not fit (out is then "").
 */
long moat_authres_value(const char *value, char *out, size_t outlen);

#endif /* MOAT_AUTHRES_H */
