/*
 * spf_int.h - what the files of the SPF evaluator share: one evaluation's state (struct eval),
 * a parsed term, and the functions that cross between check_host (spf.c), the record parser
 * (spf_record.c) and the mechanisms (spf_mech.c). Not for front-ends.
 */
#ifndef MOAT_SPF_INT_H
#define MOAT_SPF_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "cidr.h"
#include "dns.h"
#include "spf.h"
#include "spf_macro.h"

#define SPF_DEPTH_MAX 12 /* include/redirect nesting; the lookup limit ends it sooner */
#define SPF_MX_MAX 10 /* RFC 7208 4.6.4 */
#define SPF_PTR_MAX 10 /* RFC 7208 4.6.4 */
#define SPF_EXPAND_MAX 4096 /* a domain-spec after expansion, before truncation to 253 */

enum term_kind {
	T_ALL,
	T_INCLUDE,
	T_A,
	T_MX,
	T_PTR,
	T_IP4,
	T_IP6,
	T_EXISTS,
	T_REDIRECT,
	T_EXP,
	T_OTHER_MOD,
};

struct term {
	enum term_kind kind;
	char qual; /* '+', '-', '~', '?' */
	const char *text; /* the whole term as written (for traces) */
	size_t textlen;
	const char *spec; /* domain-spec (or NULL: the current domain) */
	size_t speclen;
	unsigned cidr4, cidr6; /* a, mx, ip4, ip6 */
	struct moat_addr ip; /* ip4, ip6 */
};

struct eval {
	struct moat_dns *dns;
	const struct moat_addr *client;
	const char *helo;
	char local[MOAT_SPF_LOCAL_MAX + 1];
	char sender_domain[MOAT_SPF_DOMAIN_MAX + 2];
	const struct moat_spf_opts *opts;
	struct moat_spf_result *out;
	time_t now;
	unsigned lookups, voids;
	/* validated PTR names of the client (ptr mechanism and %{p}), computed once */
	bool ptr_done;
	size_t nptr;
	char ptr_names[SPF_PTR_MAX][MOAT_SPF_DOMAIN_MAX + 2];
	const char *cur_domain; /* for %{p}: names under it are preferred */
	long long deadline_ms; /* CLOCK_MONOTONIC; past it every query is a tempfail */
	bool timed_out;
};

/* Results of one mechanism. */
enum mres {
	M_NOMATCH,
	M_MATCH,
	M_TEMPERROR,
	M_PERMERROR
};

/* spf.c */
/* moat__spf_trace - append one line to the --explain trace (bounded; marks the cut when full). */
void moat__spf_trace(struct eval *ev, unsigned depth, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* moat__spf_set_reason - record why (first reason wins: it is the root cause). */
void moat__spf_set_reason(struct eval *ev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* moat__spf_query - one DNS query of the evaluation, a tempfail past its time limit. */
enum moat_dns_status moat__spf_query(struct eval *ev, const char *name, enum moat_dns_type type,
    struct moat_dns_answer *ans);
/* moat__spf_check_host - RFC 7208 4 for DOMAIN at include/redirect DEPTH. */
enum moat_spf_res moat__spf_check_host(struct eval *ev, const char *domain, unsigned depth,
    char *exp, size_t explen, char *mech, size_t mechlen, bool *found);
/* moat__spf_fetch_record - the one SPF record of DOMAIN, malloc'd into *rec (RFC 7208 4.5). */
enum moat_spf_res moat__spf_fetch_record(struct eval *ev, const char *domain, unsigned depth,
    char **rec, size_t *reclen);

/* spf_record.c */
/* moat__spf_identity_domain_ok - a domain usable as an SPF identity (RFC 7208 4.3). */
bool moat__spf_identity_domain_ok(const char *d);
/* moat__spf_parse_term - one term; false on a syntax error (with the reason set). */
bool moat__spf_parse_term(struct eval *ev, const char *s, size_t n, struct term *t);

/* spf_mech.c */
/* moat__spf_eval_mech - one mechanism. */
enum mres moat__spf_eval_mech(struct eval *ev, const char *domain, unsigned depth,
    const struct term *t);
/* moat__spf_count_lookup - one more DNS-querying term; false past the limit (RFC 7208 4.6.4). */
bool moat__spf_count_lookup(struct eval *ev, unsigned depth, const struct term *t);
/* moat__spf_macro_ctx - the macro values for evaluating DOMAIN. */
void moat__spf_macro_ctx(struct eval *ev, const char *domain, struct moat_spf_macro_ctx *m);
/* moat__spf_target_name - the expanded domain-spec of T, or DOMAIN. */
int moat__spf_target_name(struct eval *ev, const char *domain, const struct term *t, char *out,
    size_t outlen);

#endif /* MOAT_SPF_INT_H */
