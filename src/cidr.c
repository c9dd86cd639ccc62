/*
 * cidr.c - IPv4/IPv6 address literals and network lists.
 *
 * Owns struct moat_cidr_set (an array of networks). Parsing goes through inet_pton only: no
 * resolver, no octal or short IPv4 forms ("127.1"), no zone indices.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"

#define CIDR_ITEM_MAX 64 /* longest "address/prefix" item accepted */
#define CIDR_SET_MAX 4096 /* networks in one list */

struct moat_cidr_set {
	size_t n;
	struct moat_cidr nets[];
};

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* moat_addr_parse - IPv4 dotted quad or IPv6 text into the 16-byte form. */
int
moat_addr_parse(const char *text, struct moat_addr *out)
{
	struct in_addr a4;

	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, text, &a4) == 1) {
		memcpy(out->bytes, v4_mapped_prefix, sizeof(v4_mapped_prefix));
		memcpy(out->bytes + 12, &a4, 4);
		out->v4 = true;
		return 0;
	}
	if (inet_pton(AF_INET6, text, out->bytes) == 1) {
		/* An IPv4-mapped IPv6 literal is the IPv4 client it stands for. */
		out->v4 = memcmp(out->bytes, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0;
		return 0;
	}
	return -1;
}

/* moat_addr_format - text form of an address. */
char *
moat_addr_format(const struct moat_addr *addr, char *out, size_t len)
{
	if (addr->v4 ? inet_ntop(AF_INET, addr->bytes + 12, out, (socklen_t)len) == NULL
		     : inet_ntop(AF_INET6, addr->bytes, out, (socklen_t)len) == NULL) {
		if (len > 0)
			out[0] = '\0';
	}
	return out;
}

/* cidr_mask - clear the host bits of a 16-byte address beyond BITS. */
static void
cidr_mask(uint8_t bytes[16], unsigned bits)
{
	for (unsigned i = 0; i < 16; i++) {
		if (bits >= 8) {
			bits -= 8;
			continue;
		}
		bytes[i] &= (uint8_t)(0xff << (8 - bits));
		bits = 0;
	}
}

/* moat_cidr_parse - "addr" or "addr/prefix". */
int
moat_cidr_parse(const char *text, struct moat_cidr *out)
{
	char buf[CIDR_ITEM_MAX];
	const char *slash;
	unsigned long prefix;
	unsigned maxbits, total;
	char *end;
	size_t alen;

	slash = strchr(text, '/');
	alen = slash ? (size_t)(slash - text) : strlen(text);
	if (alen == 0 || alen >= sizeof(buf))
		return -1;
	memcpy(buf, text, alen);
	buf[alen] = '\0';
	if (moat_addr_parse(buf, &out->net) < 0)
		return -1;
	maxbits = out->net.v4 ? 32 : 128;
	if (slash) {
		if (!isdigit((unsigned char)slash[1]))
			return -1;
		errno = 0;
		prefix = strtoul(slash + 1, &end, 10);
		if (errno || *end != '\0' || prefix > maxbits || end - (slash + 1) > 3)
			return -1;
	} else {
		prefix = maxbits;
	}
	out->prefix = (unsigned)prefix;
	total = out->net.v4 ? 96 + out->prefix : out->prefix;
	cidr_mask(out->net.bytes, total);
	return 0;
}

/* moat_cidr_match - is ADDR inside NET? */
bool
moat_cidr_match(const struct moat_cidr *net, const struct moat_addr *addr)
{
	unsigned bits, i;

	if (net->net.v4 != addr->v4)
		return false;
	bits = net->net.v4 ? 96 + net->prefix : net->prefix;
	for (i = 0; bits >= 8; i++, bits -= 8)
		if (net->net.bytes[i] != addr->bytes[i])
			return false;
	if (bits > 0) {
		uint8_t mask = (uint8_t)(0xff << (8 - bits));
		if ((net->net.bytes[i] & mask) != (addr->bytes[i] & mask))
			return false;
	}
	return true;
}

/* cidr_is_separator - commas and white space separate list items. */
static bool
cidr_is_separator(char c)
{
	return c == ',' || isspace((unsigned char)c);
}

/* moat_cidr_set_parse - parse a whole list; NULL with the bad item named in err. */
struct moat_cidr_set *
moat_cidr_set_parse(const char *list, char *err, size_t errlen)
{
	struct moat_cidr_set *set;
	const char *p, *start;
	size_t n = 0, cap = 0;

	/* Count items first so the set is one allocation. */
	for (p = list; *p != '\0';) {
		while (cidr_is_separator(*p))
			p++;
		if (*p == '\0')
			break;
		cap++;
		while (*p != '\0' && !cidr_is_separator(*p))
			p++;
	}
	if (cap > CIDR_SET_MAX) {
		snprintf(err, errlen, "more than %d networks in one list", CIDR_SET_MAX);
		return NULL;
	}
	set = calloc(1, sizeof(*set) + cap * sizeof(set->nets[0]));
	if (set == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (p = list; *p != '\0';) {
		char item[CIDR_ITEM_MAX];
		size_t len;

		while (cidr_is_separator(*p))
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p != '\0' && !cidr_is_separator(*p))
			p++;
		len = (size_t)(p - start);
		if (len >= sizeof(item)) {
			snprintf(err, errlen, "network too long: '%.32s...'", start);
			free(set);
			return NULL;
		}
		memcpy(item, start, len);
		item[len] = '\0';
		if (moat_cidr_parse(item, &set->nets[n]) < 0) {
			snprintf(err, errlen, "not an address or address/prefix: '%s'", item);
			free(set);
			return NULL;
		}
		n++;
	}
	set->n = n;
	return set;
}

bool
moat_cidr_set_match(const struct moat_cidr_set *set, const struct moat_addr *addr)
{
	if (set == NULL)
		return false;
	for (size_t i = 0; i < set->n; i++)
		if (moat_cidr_match(&set->nets[i], addr))
			return true;
	return false;
}

size_t
moat_cidr_set_count(const struct moat_cidr_set *set)
{
	return set ? set->n : 0;
}

void
moat_cidr_set_free(struct moat_cidr_set *set)
{
	free(set);
}
