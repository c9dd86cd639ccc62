/*
 * dnsbl.h - DNS block and allow lists (DNSBL/DNSWL) in postscreen's syntax, and their score.
 *
 * dnsbl_sites is a list of sites separated by commas and/or white space, each
 * "zone[=FILTER][*WEIGHT]" as in Postfix's postscreen_dnsbl_sites: FILTER is an IPv4 address
 * pattern whose octets may be a number, or in brackets a list of numbers and ranges separated by
 * ';' ("127.0.0.[2..11]", "127.0.[0;2].[4..6;9]"); WEIGHT is a whole number, negative for an
 * allow list (default 1). A site whose zone answers the client's reversed address with an A
 * record inside its filter (any A record without a filter) adds its weight to the score; a site
 * listed twice counts twice, like postscreen. Nothing else counts: no answer, a failure, a
 * DNSSEC-bogus answer (the DNS layer makes it a temporary error) or an address outside the filter.
 */
#ifndef MOAT_DNSBL_H
#define MOAT_DNSBL_H

#include <stdbool.h>
#include <stddef.h>

#include "cidr.h"

#define MOAT_DNSBL_SITES_MAX 32
#define MOAT_DNSBL_HITS_MAX 512 /* the zones that hit, comma-separated, for the log */

struct moat_dnsbl;
struct moat_dns;

/*
 * moat_dnsbl_parse - the sites of a dnsbl_sites value; an empty value gives NULL with err "".
 * NULL with the offending site and what is wrong in err otherwise.
 */
struct moat_dnsbl *moat_dnsbl_parse(const char *spec, char *err, size_t errlen);
void moat_dnsbl_free(struct moat_dnsbl *bl); /* NULL is a no-op */
size_t moat_dnsbl_count(const struct moat_dnsbl *bl);

/* moat_dnsbl_check - the value check for dnsbl_sites (conf_table.c): 0, or -1 with err. */
int moat_dnsbl_check(const char *spec, char *err, size_t errlen);

/*
 * moat_dnsbl_query_name - the name site I is asked for ADDR: the address's octets (IPv4) or
 * nibbles (IPv6) reversed, then the zone. 0, or -1 when it does not fit LEN.
 */
int moat_dnsbl_query_name(const struct moat_dnsbl *bl, size_t i, const struct moat_addr *addr,
    char *out, size_t len);

/* moat_dnsbl_hit - does an A record with these 4 bytes count for site I? */
bool moat_dnsbl_hit(const struct moat_dnsbl *bl, size_t i, const unsigned char a[4]);
int moat_dnsbl_weight(const struct moat_dnsbl *bl, size_t i);
const char *moat_dnsbl_zone(const struct moat_dnsbl *bl, size_t i); /* valid while bl lives */

/* The outcome of asking every site about one client. */
struct moat_dnsbl_score {
	int score; /* the weights of the sites that hit */
	unsigned nhits;
	unsigned nfailed; /* sites that did not answer in time or failed */
	char hits[MOAT_DNSBL_HITS_MAX]; /* "zone,zone" of the hits; "" when none */
};

/*
 * moat_dnsbl_score - ask every site about ADDR through DNS, all queries at once, within
 * TIMEOUT_MS in all, and sum the weights of the hits into *out. DNS NULL: every list failed.
 */
void moat_dnsbl_score(const struct moat_dnsbl *bl, struct moat_dns *dns,
    const struct moat_addr *addr, unsigned timeout_ms, struct moat_dnsbl_score *out);

/*
 * moat_dnsbl_score_cached - moat_dnsbl_score from the DNS layer's answer cache alone, never
 * waiting: true with *out when every site's answer was cached, false (nothing in *out) otherwise.
 */
bool moat_dnsbl_score_cached(const struct moat_dnsbl *bl, struct moat_dns *dns,
    const struct moat_addr *addr, struct moat_dnsbl_score *out);

#endif /* MOAT_DNSBL_H */
