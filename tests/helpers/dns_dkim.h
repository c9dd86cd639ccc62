/*
 * dns_dkim.h - route libopendkim's DNS lookups (DKIM keys, ATPS) through the DNS layer (a test
 * helper: see dns_dkim.c).
 */
#ifndef MOAT_DNS_DKIM_H
#define MOAT_DNS_DKIM_H

#include <opendkim/dkim.h>

#include "dns.h"

/*
 * moat_dns_dkim_attach - install dkim_dns_set_query_* hooks on LIB so every lookup it makes goes
 * through DNS (borrowed: it must outlive LIB's use; LIB never frees it). Answers reach
 * libopendkim as DNS reply packets rebuilt from our bounded, parsed records; NXDOMAIN and NODATA
 * become empty replies with that rcode, a temporary or permanent failure is DKIM_DNS_ERROR (key
 * retrieval failed), and DNSSEC status is reported as secure/insecure. Returns 0 or -1.
 */
int moat_dns_dkim_attach(DKIM_LIB *lib, struct moat_dns *dns);

/*
 * moat_dns_reply_packet - the answer as an RFC 1035 reply packet for NAME/TYPE into buf: header,
 * question, answers (TXT split into 255-byte strings). Returns its length, or -1 if it does not
 * fit or the type is not A, AAAA, MX or TXT. Exposed for tests.
 */
long moat_dns_reply_packet(const char *name, enum moat_dns_type type,
    const struct moat_dns_answer *ans, unsigned char *buf, size_t buflen);

#endif /* MOAT_DNS_DKIM_H */
