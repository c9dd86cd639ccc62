/*
 * dns_int.h - what the files of the DNS layer share: the resolver object (libunbound or the
 * in-process fixture), and building answers. Not for front-ends.
 */
#ifndef MOAT_DNS_INT_H
#define MOAT_DNS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns.h"

struct ub_ctx;
struct moat__dns_cache;
struct moat_metrics;

struct fixture_rec {
	char *name; /* lower case, no trailing dot */
	enum moat_dns_type type; /* 0: any type (with fail) */
	enum moat_dns_status fail; /* MOAT_DNS_OK: a record; else the status to answer */
	uint16_t pref;
	size_t len;
	char *data;
};

struct moat_dns {
	/* unbound */
	struct ub_ctx *ub;
	struct moat__dns_cache *cache; /* answers without the trip through unbound's thread */
	unsigned timeout_ms;
	bool validate;
	pthread_mutex_t proc_lock; /* held while calling ub_process / ub_cancel */
	pthread_mutex_t lock; /* protects the `done` flags of queries in flight */
	pthread_cond_t cond; /* broadcast after each ub_process */

	/* fixture */
	bool fixture;
	struct fixture_rec *recs;
	size_t nrecs, caprecs;
	atomic_ulong nqueries;
	unsigned delay_ms;

	struct moat_metrics *metrics; /* query times; NULL: not counted */
};

/* dns_answer.c */
/* moat__dns_answer_add - append a record (data copied, NUL added); -1 past MOAT_DNS_MAX_RR or on
 * ENOMEM. */
int moat__dns_answer_add(struct moat_dns_answer *a, uint16_t pref, const void *data, size_t len);
/* moat__dns_answer_fail - drop any records and set a failure status; returns it. */
enum moat_dns_status moat__dns_answer_fail(struct moat_dns_answer *a, enum moat_dns_status st);
/* moat__dns_lower_name - NAME lower-cased without its trailing dot, into out
 * (MOAT_DNS_NAME_MAX + 2). */
void moat__dns_lower_name(const char *name, char *out, size_t outlen);

/* dns_fixture.c */
/* moat__dns_fixture_query - answer from the table, following CNAMEs up to MOAT_DNS_MAX_CNAME. */
enum moat_dns_status moat__dns_fixture_query(struct moat_dns *dns, const char *name,
    enum moat_dns_type type, struct moat_dns_answer *a);

#endif /* MOAT_DNS_INT_H */
