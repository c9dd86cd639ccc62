/*
 * cidr.h - IPv4/IPv6 addresses and network lists ("192.0.2.0/24, 2001:db8::/32").
 *
 * Used by the trust rules (internal_networks), rate-limit allow/deny lists and SPF ip4:/ip6:.
 * Addresses are kept as 16 bytes, IPv4 mapped into ::ffff:0:0/96, so one matcher serves both.
 */
#ifndef MOAT_CIDR_H
#define MOAT_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct moat_addr {
	uint8_t bytes[16];
	bool v4; /* bytes hold ::ffff:a.b.c.d */
};

struct moat_cidr {
	struct moat_addr net; /* host bits cleared */
	unsigned prefix; /* 0..32 for v4, 0..128 for v6; stored as written */
};

struct moat_cidr_set;

/* moat_addr_parse - a literal IPv4 or IPv6 address (no brackets, no zone); 0 or -1. */
int moat_addr_parse(const char *text, struct moat_addr *out);

/* moat_addr_format - write the address in its usual text form; returns out. */
char *moat_addr_format(const struct moat_addr *addr, char *out, size_t len);

/* moat_cidr_parse - "addr" or "addr/prefix"; a bare address is a host route. 0 or -1. */
int moat_cidr_parse(const char *text, struct moat_cidr *out);

/* moat_cidr_match - does ADDR lie in NET? An IPv4 address never matches an IPv6 net and vice versa. */
bool moat_cidr_match(const struct moat_cidr *net, const struct moat_addr *addr);

/*
 * moat_cidr_set_parse - a list separated by commas and/or white space. Returns a set (empty for
 * an empty list) or NULL with the offending item named in err.
 */
struct moat_cidr_set *moat_cidr_set_parse(const char *list, char *err, size_t errlen);
bool moat_cidr_set_match(const struct moat_cidr_set *set, const struct moat_addr *addr);
size_t moat_cidr_set_count(const struct moat_cidr_set *set);
void moat_cidr_set_free(struct moat_cidr_set *set);

#endif /* MOAT_CIDR_H */
