/*
 * suite_format.h - reading the RFC 7208 suite as rfc7208-convert.py writes it, shared by the
 * runner over our evaluator (spf_suite.c) and the libspf2 measurement (libspf2_suite.c).
 */
#ifndef MOAT_SPF_SUITE_FORMAT_H
#define MOAT_SPF_SUITE_FORMAT_H

/* suite_unhex - decode an "x"-prefixed hex field in place; returns its length or -1. */
long suite_unhex(char *f);
/* suite_rrtype - the DNS wire type of a record type name (A, AAAA, MX, PTR, CNAME, TXT), or -1. */
int suite_rrtype(const char *name);
/* suite_result_ok - is GOT among the comma-separated WANT list? */
int suite_result_ok(const char *got, const char *want);

#endif
