/*
 * iprev.h - forward-confirmed reverse DNS of the SMTP client (RFC 8601 2.7.3 "iprev").
 *
 * The client's address is looked up as a PTR record; each name found (at most
 * MOAT_IPREV_NAMES_MAX) is looked up as an A or AAAA record, all at once; the result is pass when
 * one of them gives the client's address back (that name is the client's), fail when the PTR
 * lookup finds nothing or no name leads back, temperror when a lookup failed temporarily and no
 * name led back, permerror when an answer was malformed.
 */
#ifndef MOAT_IPREV_H
#define MOAT_IPREV_H

#include "cidr.h"
#include "dns.h"

#define MOAT_IPREV_NAMES_MAX 10 /* PTR names followed, like Postfix's smtpd */

enum moat_iprev_result {
	MOAT_IPREV_NONE = 0, /* not looked up */
	MOAT_IPREV_PASS,
	MOAT_IPREV_FAIL,
	MOAT_IPREV_TEMPERROR,
	MOAT_IPREV_PERMERROR,
};

struct moat_iprev {
	enum moat_iprev_result result;
	char name[MOAT_DNS_NAME_MAX + 1]; /* the confirmed name with pass; "" otherwise */
};

/* moat_iprev_check - look ADDR up through DNS (each step within the resolver's timeout); DNS
 * NULL: temperror. */
void moat_iprev_check(struct moat_dns *dns, const struct moat_addr *addr, struct moat_iprev *out);

/* moat_iprev_result_name - "pass", "fail", "temperror", "permerror" or "none" (RFC 8601). */
const char *moat_iprev_result_name(enum moat_iprev_result r);

#endif /* MOAT_IPREV_H */
