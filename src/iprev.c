/*
 * iprev.c - forward-confirmed reverse DNS of the SMTP client (see iprev.h). Owns nothing: the
 * answers come from the DNS layer and are released here.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "iprev.h"

const char *
moat_iprev_result_name(enum moat_iprev_result r)
{
	switch (r) {
	case MOAT_IPREV_PASS:
		return "pass";
	case MOAT_IPREV_FAIL:
		return "fail";
	case MOAT_IPREV_TEMPERROR:
		return "temperror";
	case MOAT_IPREV_PERMERROR:
		return "permerror";
	case MOAT_IPREV_NONE:
		break;
	}
	return "none";
}

/* iprev_status - what a lookup's failure makes of the result. */
static enum moat_iprev_result
iprev_status(enum moat_dns_status st)
{
	switch (st) {
	case MOAT_DNS_TEMPFAIL:
		return MOAT_IPREV_TEMPERROR;
	case MOAT_DNS_PERMFAIL:
		return MOAT_IPREV_PERMERROR;
	case MOAT_DNS_OK:
	case MOAT_DNS_NXDOMAIN:
	case MOAT_DNS_NODATA:
		break;
	}
	return MOAT_IPREV_FAIL;
}

void
moat_iprev_check(struct moat_dns *dns, const struct moat_addr *addr, struct moat_iprev *out)
{
	struct moat_dns_q q[MOAT_IPREV_NAMES_MAX];
	struct moat_dns_answer ptr;
	char rev[MOAT_DNS_NAME_MAX + 2];
	size_t n, i;

	memset(out, 0, sizeof(*out));
	if (moat_dns_reverse_name(addr, addr->v4 ? "in-addr.arpa" : "ip6.arpa", rev, sizeof(rev)) <
	    0) {
		out->result = MOAT_IPREV_PERMERROR;
		return;
	}
	if (moat_dns_query(dns, rev, MOAT_DNS_PTR, &ptr) != MOAT_DNS_OK) {
		out->result = iprev_status(ptr.status);
		moat_dns_answer_clear(&ptr);
		return;
	}
	n = ptr.n < MOAT_IPREV_NAMES_MAX ? ptr.n : MOAT_IPREV_NAMES_MAX;
	for (i = 0; i < n; i++)
		q[i] = (struct moat_dns_q){ .name = ptr.rr[i].data,
			.type = addr->v4 ? MOAT_DNS_A : MOAT_DNS_AAAA };
	moat_dns_query_batch(dns, q, n, 0);
	out->result = MOAT_IPREV_FAIL;
	for (i = 0; i < n; i++) {
		const struct moat_dns_answer *a = &q[i].answer;
		const uint8_t *want = addr->v4 ? addr->bytes + 12 : addr->bytes;
		size_t len = addr->v4 ? 4 : 16;

		for (size_t r = 0; out->result != MOAT_IPREV_PASS && r < a->n; r++)
			if (a->rr[r].len == len && memcmp(a->rr[r].data, want, len) == 0) {
				out->result = MOAT_IPREV_PASS;
				snprintf(out->name, sizeof(out->name), "%s", ptr.rr[i].data);
			}
		if (out->result == MOAT_IPREV_FAIL && a->status != MOAT_DNS_OK)
			out->result = iprev_status(a->status);
		moat_dns_answer_clear(&q[i].answer);
	}
	moat_dns_answer_clear(&ptr);
}
