/*
 * dns_dkim.c - libopendkim's DNS hooks on top of moat_dns_query(), for the tests: libopendkim's
 * verifier is their independent check of our signatures (test_sign.c) and of the DNS layer
 * (test_dns_dkim.c). The daemons verify with src/dkim_verify.c and link none of this.
 *
 * libopendkim starts a query, waits for it, then always cancels it (which frees the handle).
 * Our queries are synchronous, so the start hook resolves at once and keeps the finished reply
 * in the handle; waitreply only reports it. The reply handed back is rebuilt from the parsed,
 * bounded answer (never the server's bytes), so libopendkim's own packet parser only ever sees
 * well-formed packets of our making.
 */
#include "config.h"

#include <arpa/nameser.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "dns_dkim.h"

struct dkim_q {
	int status; /* DKIM_DNS_SUCCESS or DKIM_DNS_ERROR */
	size_t len; /* reply bytes */
	int dnssec; /* DKIM_DNSSEC_* */
};

/* put16 - append a 16-bit value in network order; -1 if it does not fit. */
static int
put16(unsigned char *buf, size_t buflen, size_t *o, unsigned v)
{
	if (*o + 2 > buflen)
		return -1;
	buf[(*o)++] = (unsigned char)(v >> 8);
	buf[(*o)++] = (unsigned char)v;
	return 0;
}

/* put_name - a text name (already checked by moat_dns_name_valid) as wire labels. */
static int
put_name(unsigned char *buf, size_t buflen, size_t *o, const char *name)
{
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t l = dot ? (size_t)(dot - name) : strlen(name);
		if (l == 0 || l > 63 || *o + 1 + l > buflen)
			return -1;
		buf[(*o)++] = (unsigned char)l;
		memcpy(buf + *o, name, l);
		*o += l;
		name += l + (dot ? 1 : 0);
	}
	if (*o + 1 > buflen)
		return -1;
	buf[(*o)++] = 0;
	return 0;
}

long
moat_dns_reply_packet(const char *name, enum moat_dns_type type, const struct moat_dns_answer *ans,
    unsigned char *buf, size_t buflen)
{
	size_t o = 0, i, n = ans->status == MOAT_DNS_OK ? ans->n : 0;
	unsigned rcode = ans->status == MOAT_DNS_NXDOMAIN ? 3 : 0;

	if (type != MOAT_DNS_A && type != MOAT_DNS_AAAA && type != MOAT_DNS_MX &&
	    type != MOAT_DNS_TXT)
		return -1;
	/* id 0; QR, RD, RA; qdcount 1; ancount n; nscount, arcount 0 */
	if (put16(buf, buflen, &o, 0) < 0 || put16(buf, buflen, &o, 0x8180 | rcode) < 0 ||
	    put16(buf, buflen, &o, 1) < 0 || put16(buf, buflen, &o, (unsigned)n) < 0 ||
	    put16(buf, buflen, &o, 0) < 0 || put16(buf, buflen, &o, 0) < 0)
		return -1;
	if (put_name(buf, buflen, &o, name) < 0 || put16(buf, buflen, &o, type) < 0 ||
	    put16(buf, buflen, &o, 1) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		const struct moat_dns_rr *rr = &ans->rr[i];
		size_t rdlen_at, start, k;

		/* owner: a pointer to the question name at offset 12 */
		if (put16(buf, buflen, &o, 0xc00c) < 0 || put16(buf, buflen, &o, type) < 0 ||
		    put16(buf, buflen, &o, 1) < 0 || put16(buf, buflen, &o, 0) < 0 ||
		    put16(buf, buflen, &o, 0) < 0)
			return -1;
		rdlen_at = o;
		if (put16(buf, buflen, &o, 0) < 0)
			return -1;
		start = o;
		switch (type) {
		case MOAT_DNS_A:
		case MOAT_DNS_AAAA:
			if (o + rr->len > buflen)
				return -1;
			memcpy(buf + o, rr->data, rr->len);
			o += rr->len;
			break;
		case MOAT_DNS_MX:
			if (put16(buf, buflen, &o, rr->pref) < 0 ||
			    put_name(buf, buflen, &o, rr->data) < 0)
				return -1;
			break;
		default:
			/* TXT: character-strings of at most 255 bytes (one empty string for "") */
			k = 0;
			do {
				size_t l = rr->len - k > 255 ? 255 : rr->len - k;
				if (o + 1 + l > buflen)
					return -1;
				buf[o++] = (unsigned char)l;
				memcpy(buf + o, rr->data + k, l);
				o += l;
				k += l;
			} while (k < rr->len);
			break;
		}
		if (o - start > 0xffff)
			return -1;
		buf[rdlen_at] = (unsigned char)((o - start) >> 8);
		buf[rdlen_at + 1] = (unsigned char)(o - start);
	}
	return (long)o;
}

/* dns_dkim_start - resolve now; the handle carries the finished reply. */
static int
dns_dkim_start(void *srv, int type, unsigned char *query, unsigned char *buf, size_t buflen,
    void **qh)
{
	struct moat_dns *dns = srv;
	struct moat_dns_answer ans;
	struct dkim_q *q;
	long len;

	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return DKIM_DNS_ERROR;
	q->dnssec = DKIM_DNSSEC_UNKNOWN;
	q->status = DKIM_DNS_ERROR;
	moat_dns_query(dns, (const char *)query, (enum moat_dns_type)type, &ans);
	if (ans.status == MOAT_DNS_OK || ans.status == MOAT_DNS_NXDOMAIN ||
	    ans.status == MOAT_DNS_NODATA) {
		len = moat_dns_reply_packet((const char *)query, (enum moat_dns_type)type, &ans,
		    buf, buflen);
		if (len >= 0) {
			q->status = DKIM_DNS_SUCCESS;
			q->len = (size_t)len;
			q->dnssec = ans.secure ? DKIM_DNSSEC_SECURE : DKIM_DNSSEC_INSECURE;
		}
	}
	moat_dns_answer_clear(&ans);
	*qh = q;
	return DKIM_DNS_SUCCESS;
}

/* dns_dkim_cancel - libopendkim calls this after every wait; it frees the handle. */
static int
dns_dkim_cancel(void *srv, void *qh)
{
	(void)srv;
	free(qh);
	return DKIM_DNS_SUCCESS;
}

/* dns_dkim_waitreply - the reply is already there (or the query already failed). */
static int
dns_dkim_waitreply(void *srv, void *qh, struct timeval *to, size_t *bytes, int *error, int *dnssec)
{
	const struct dkim_q *q = qh;

	(void)srv;
	(void)to;
	if (q == NULL)
		return DKIM_DNS_INVALID;
	if (bytes != NULL)
		*bytes = q->len;
	if (error != NULL)
		*error = 0;
	if (dnssec != NULL)
		*dnssec = q->dnssec;
	return q->status;
}

/* dns_dkim_init - the service handle is set by attach; nothing to open. */
static int
dns_dkim_init(void **srv)
{
	(void)srv;
	return 0;
}

/* dns_dkim_close - the resolver belongs to the caller. */
static void
dns_dkim_close(void *srv)
{
	(void)srv;
}

int
moat_dns_dkim_attach(DKIM_LIB *lib, struct moat_dns *dns)
{
	if (lib == NULL || dns == NULL)
		return -1;
	(void)dkim_dns_set_query_service(lib, dns);
	dkim_dns_set_query_start(lib, dns_dkim_start);
	dkim_dns_set_query_cancel(lib, dns_dkim_cancel);
	dkim_dns_set_query_waitreply(lib, dns_dkim_waitreply);
	dkim_dns_set_init(lib, dns_dkim_init);
	dkim_dns_set_close(lib, dns_dkim_close);
	return 0;
}
