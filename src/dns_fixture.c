/*
 * dns_fixture.c - the in-process DNS backend tests use: a table of records and failures, answered
 * with CNAMEs followed as a server would, an optional delay, and a count of queries. Owns the
 * table (freed by moat_dns_free).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cidr.h"
#include "dns.h"
#include "dns_int.h"

struct moat_dns *
moat_dns_new_fixture(void)
{
	struct moat_dns *dns = calloc(1, sizeof(*dns));

	if (dns == NULL)
		return NULL;
	dns->fixture = true;
	atomic_init(&dns->nqueries, 0);
	return dns;
}

/* fixture_push - append one entry to the table. */
static int
fixture_push(struct moat_dns *dns, const char *name, enum moat_dns_type type,
    enum moat_dns_status fail, uint16_t pref, const void *data, size_t len)
{
	char lname[MOAT_DNS_NAME_MAX + 2];
	struct fixture_rec *r;

	if (dns == NULL || !dns->fixture || name == NULL || strlen(name) > MOAT_DNS_NAME_MAX + 1)
		return -1;
	if (dns->nrecs == dns->caprecs) {
		size_t cap = dns->caprecs ? dns->caprecs * 2 : 16;
		r = realloc(dns->recs, cap * sizeof(*r));
		if (r == NULL)
			return -1;
		dns->recs = r;
		dns->caprecs = cap;
	}
	moat__dns_lower_name(name, lname, sizeof(lname));
	r = &dns->recs[dns->nrecs];
	memset(r, 0, sizeof(*r));
	r->name = strdup(lname);
	r->data = malloc(len + 1);
	if (r->name == NULL || r->data == NULL) {
		free(r->name);
		free(r->data);
		return -1;
	}
	if (len > 0)
		memcpy(r->data, data, len);
	r->data[len] = '\0';
	r->len = len;
	r->type = type;
	r->fail = fail;
	r->pref = pref;
	dns->nrecs++;
	return 0;
}

int
moat_dns_fixture_add(struct moat_dns *dns, const char *name, enum moat_dns_type type, uint16_t pref,
    const void *data, size_t len)
{
	return fixture_push(dns, name, type, MOAT_DNS_OK, pref, data, len);
}

int
moat_dns_fixture_fail(struct moat_dns *dns, const char *name, enum moat_dns_type type,
    enum moat_dns_status status)
{
	return fixture_push(dns, name, type, status, 0, "", 0);
}

void
moat_dns_fixture_delay(struct moat_dns *dns, unsigned ms)
{
	if (dns != NULL && dns->fixture)
		dns->delay_ms = ms;
}

unsigned long
moat_dns_fixture_queries(const struct moat_dns *dns)
{
	return dns ? atomic_load(&((struct moat_dns *)dns)->nqueries) : 0;
}

/* moat__dns_fixture_query - answer from the table, following CNAMEs up to MOAT_DNS_MAX_CNAME. */
enum moat_dns_status
moat__dns_fixture_query(struct moat_dns *dns, const char *name, enum moat_dns_type type,
    struct moat_dns_answer *a)
{
	char cur[MOAT_DNS_NAME_MAX + 2];
	size_t i, hops;

	atomic_fetch_add(&dns->nqueries, 1);
	if (dns->delay_ms > 0) {
		struct timespec ts = { .tv_sec = dns->delay_ms / 1000,
			.tv_nsec = (long)(dns->delay_ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
	moat__dns_lower_name(name, cur, sizeof(cur));
	for (hops = 0; hops <= MOAT_DNS_MAX_CNAME; hops++) {
		bool exists = false;
		const struct fixture_rec *cname = NULL;

		for (i = 0; i < dns->nrecs; i++) {
			const struct fixture_rec *r = &dns->recs[i];
			if (strcmp(r->name, cur) != 0)
				continue;
			exists = true;
			if (r->fail != MOAT_DNS_OK && (r->type == 0 || r->type == type))
				return moat__dns_answer_fail(a, r->fail);
			if (r->fail != MOAT_DNS_OK)
				continue;
			if (r->type == MOAT_DNS_CNAME && type != MOAT_DNS_CNAME)
				cname = r;
		}
		if (!exists)
			return moat__dns_answer_fail(a, MOAT_DNS_NXDOMAIN);
		if (cname != NULL) {
			if (!moat_dns_name_valid(cname->data))
				return moat__dns_answer_fail(a, MOAT_DNS_PERMFAIL);
			moat__dns_lower_name(cname->data, cur, sizeof(cur));
			continue;
		}
		for (i = 0; i < dns->nrecs; i++) {
			const struct fixture_rec *r = &dns->recs[i];
			if (r->fail != MOAT_DNS_OK || r->type != type || strcmp(r->name, cur) != 0)
				continue;
			if (type == MOAT_DNS_TXT && r->len > MOAT_DNS_MAX_TXT)
				return moat__dns_answer_fail(a, MOAT_DNS_PERMFAIL);
			if (moat__dns_answer_add(a, r->pref, r->data, r->len) < 0)
				return moat__dns_answer_fail(a, MOAT_DNS_PERMFAIL);
		}
		a->status = a->n > 0 ? MOAT_DNS_OK : MOAT_DNS_NODATA;
		return a->status;
	}
	/* A CNAME chain too long or a loop (RFC 1034 3.6.2): a server would SERVFAIL. */
	return moat__dns_answer_fail(a, MOAT_DNS_TEMPFAIL);
}
