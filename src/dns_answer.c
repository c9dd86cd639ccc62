/*
 * dns_answer.c - the DNS layer's answers and names, whatever the backend: status names, the
 * syntax of a query name, records added to an answer and its failure, lower-cased names, and
 * reverse-lookup names. Owns nothing; an answer's records belong to the answer.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cidr.h"
#include "dns.h"
#include "dns_int.h"

const char *
moat_dns_status_name(enum moat_dns_status status)
{
	switch (status) {
	case MOAT_DNS_OK:
		return "ok";
	case MOAT_DNS_NXDOMAIN:
		return "nxdomain";
	case MOAT_DNS_NODATA:
		return "nodata";
	case MOAT_DNS_TEMPFAIL:
		return "tempfail";
	case MOAT_DNS_PERMFAIL:
		return "permfail";
	}
	return "?";
}

/*
 * moat_dns_name_valid - RFC 1035 2.3.4 lengths; printable ASCII only (SPF macros can put spaces
 * and '%' into a name: RFC 7208 7.3). Control and 8-bit bytes are refused.
 */
bool
moat_dns_name_valid(const char *name)
{
	size_t len, label = 0, i;

	if (name == NULL)
		return false;
	len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > MOAT_DNS_NAME_MAX)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (c < 0x20 || c >= 0x7f)
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

void
moat_dns_answer_clear(struct moat_dns_answer *answer)
{
	size_t i;

	if (answer == NULL)
		return;
	for (i = 0; i < answer->n; i++)
		free(answer->rr[i].data);
	free(answer->rr);
	answer->rr = NULL;
	answer->n = 0;
	answer->secure = false;
	answer->status = MOAT_DNS_TEMPFAIL;
}

/* moat__dns_answer_add - append a record (data copied, NUL added); -1 past MOAT_DNS_MAX_RR or on ENOMEM. */
int
moat__dns_answer_add(struct moat_dns_answer *a, uint16_t pref, const void *data, size_t len)
{
	struct moat_dns_rr *rr;
	char *copy;

	if (a->n >= MOAT_DNS_MAX_RR)
		return -1;
	copy = malloc(len + 1);
	if (copy == NULL)
		return -1;
	if (len > 0)
		memcpy(copy, data, len);
	copy[len] = '\0';
	rr = realloc(a->rr, (a->n + 1) * sizeof(*rr));
	if (rr == NULL) {
		free(copy);
		return -1;
	}
	a->rr = rr;
	a->rr[a->n].pref = pref;
	a->rr[a->n].len = len;
	a->rr[a->n].data = copy;
	a->n++;
	return 0;
}

/* moat__dns_answer_fail - drop any records and set a failure status; returns it. */
enum moat_dns_status
moat__dns_answer_fail(struct moat_dns_answer *a, enum moat_dns_status st)
{
	moat_dns_answer_clear(a);
	a->status = st;
	return st;
}

/* moat__dns_lower_name - NAME lower-cased without its trailing dot, into out (MOAT_DNS_NAME_MAX + 2). */
void
moat__dns_lower_name(const char *name, char *out, size_t outlen)
{
	size_t i, n = strlen(name);

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n >= outlen)
		n = outlen - 1;
	for (i = 0; i < n; i++) {
		char c = name[i];
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	out[n] = '\0';
}

int
moat_dns_reverse_name(const struct moat_addr *addr, const char *suffix, char *out, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	int n;

	if (addr->v4) {
		const uint8_t *b = addr->bytes + 12;

		n = snprintf(out, len, "%u.%u.%u.%u.%s", b[3], b[2], b[1], b[0], suffix);
		return n < 0 || (size_t)n >= len ? -1 : 0;
	}
	if (len < 64 + strlen(suffix) + 1)
		return -1;
	for (int k = 15; k >= 0; k--) {
		out[o++] = hex[addr->bytes[k] & 15];
		out[o++] = '.';
		out[o++] = hex[addr->bytes[k] >> 4];
		out[o++] = '.';
	}
	memcpy(out + o, suffix, strlen(suffix) + 1);
	return 0;
}
