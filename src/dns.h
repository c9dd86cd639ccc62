/*
 * dns.h - the one resolver layer every lookup goes through (SPF, DKIM keys, DMARC records).
 *
 * Synchronous and thread-safe: callers are libmilter threads or libuv threadpool workers, never an
 * event loop. Backed by libunbound (cache, per-query timeout, forwarder from dns_resolver, optional
 * DNSSEC) with a bounded in-process answer cache in front of it (dns_cache.h), or by an in-process table for tests that need records a zone file cannot express.
 * Answers are bounded (record size, record count, CNAME chain); anything past a bound is
 * MOAT_DNS_PERMFAIL, never a crash.
 */
#ifndef MOAT_DNS_H
#define MOAT_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum moat_dns_type {
	MOAT_DNS_A = 1,
	MOAT_DNS_CNAME = 5, /* only as a fixture record: real lookups follow CNAMEs themselves */
	MOAT_DNS_PTR = 12,
	MOAT_DNS_MX = 15,
	MOAT_DNS_TXT = 16,
	MOAT_DNS_AAAA = 28,
};

enum moat_dns_status {
	MOAT_DNS_OK = 0, /* one or more records */
	MOAT_DNS_NXDOMAIN, /* the name does not exist */
	MOAT_DNS_NODATA, /* the name exists, no record of that type */
	MOAT_DNS_TEMPFAIL, /* timeout, SERVFAIL, network error: try again later */
	MOAT_DNS_PERMFAIL, /* malformed or over-limit answer, bad query name */
};

/*
 * One record. TXT: the character-strings concatenated (len bytes, may contain NUL; data is also
 * NUL-terminated for convenience). A/AAAA: 4 or 16 address bytes. MX: pref and the exchange name
 * (text, no trailing dot). PTR: the name (text, no trailing dot).
 */
struct moat_dns_rr {
	uint16_t pref;
	size_t len;
	char *data;
};

struct moat_dns_answer {
	enum moat_dns_status status;
	bool secure; /* DNSSEC-validated */
	size_t n;
	struct moat_dns_rr *rr;
};

struct moat_dns;

/* Bounds on one answer; past any of them the answer is MOAT_DNS_PERMFAIL. */
#define MOAT_DNS_MAX_RR 128 /* records in one answer */
#define MOAT_DNS_MAX_TXT 8192 /* bytes of one TXT record, its strings concatenated */
#define MOAT_DNS_MAX_CNAME 8 /* CNAME chain length the fixture follows */
#define MOAT_DNS_NAME_MAX 253 /* query name, text form, no trailing dot */
#define MOAT_DNS_DEFAULT_TIMEOUT 5000

/*
 * moat_dns_new - a resolver backed by libunbound.
 * resolver: "" or NULL: the servers in /etc/resolv.conf; "ADDR" or "ADDR@PORT" (IPv4 or IPv6
 * literal): send every query to that server (forwarder). timeout_ms: per query (0 = default).
 * trust_anchor: NULL or "": no DNSSEC validation; else a file of trust anchors (unbound's
 * auto-trust-anchor-file format), and answers carry secure=true when validated; a bogus answer is
 * MOAT_DNS_TEMPFAIL. Returns NULL with a reason in err.
 */
struct moat_dns *moat_dns_new(const char *resolver, unsigned timeout_ms, const char *trust_anchor,
    char *err, size_t errlen);

/*
 * moat_dns_new_fixture - an in-process table of records, for tests that need answers a zone file
 * cannot express (timeouts, CNAME loops, several strings in one TXT record). Names are matched
 * case-insensitively, with or without a trailing dot. A name with no entry is NXDOMAIN; a name
 * with entries but none of the type asked is NODATA. Fill it before the first query; queries may
 * then run from any thread.
 */
struct moat_dns *moat_dns_new_fixture(void);

/*
 * moat_dns_fixture_add - add a record. A/AAAA: 4/16 address bytes. TXT: the strings concatenated.
 * MX: pref and the exchange name. PTR/CNAME: the target name. data is copied. 0 or -1 (ENOMEM,
 * or not a fixture).
 */
int moat_dns_fixture_add(struct moat_dns *dns, const char *name, enum moat_dns_type type,
    uint16_t pref, const void *data, size_t len);

/*
 * moat_dns_fixture_fail - queries for NAME of TYPE (0: of any type) answer STATUS (typically
 * MOAT_DNS_TEMPFAIL, standing for a timeout). 0 or -1.
 */
int moat_dns_fixture_fail(struct moat_dns *dns, const char *name, enum moat_dns_type type,
    enum moat_dns_status status);

/* moat_dns_fixture_delay - make every fixture query take MS milliseconds (time-limit tests). */
void moat_dns_fixture_delay(struct moat_dns *dns, unsigned ms);

/* moat_dns_fixture_queries - how many queries the fixture has answered (tests of lookup limits). */
unsigned long moat_dns_fixture_queries(const struct moat_dns *dns);

/*
 * moat_dns_query - look NAME up. Always fills *answer (status and records); returns its status.
 * The caller owns the answer and releases it with moat_dns_answer_clear(). A name that is not a
 * valid query name (empty, longer than 253, a label empty or longer than 63, a byte outside
 * printable ASCII, or a backslash) is MOAT_DNS_PERMFAIL without a query.
 */
enum moat_dns_status moat_dns_query(struct moat_dns *dns, const char *name, enum moat_dns_type type,
    struct moat_dns_answer *answer);

struct moat_metrics;
/* moat_dns_set_metrics - where query times go (borrowed; the policy's counters). Set it before
 * the first query. */
void moat_dns_set_metrics(struct moat_dns *dns, struct moat_metrics *m);

/* One question of a batch (moat_dns_query_batch): name and type in, answer out. */
struct moat_dns_q {
	const char *name; /* borrowed for the call */
	enum moat_dns_type type;
	struct moat_dns_answer answer; /* the caller releases it with moat_dns_answer_clear() */
};

/*
 * moat_dns_query_batch - ask N questions at once and wait for their answers, all within
 * TIMEOUT_MS (0: the resolver's per-query timeout); a question unanswered by then is
 * MOAT_DNS_TEMPFAIL. Answers come from and go to the answer cache like moat_dns_query's.
 */
void moat_dns_query_batch(struct moat_dns *dns, struct moat_dns_q *q, size_t n,
    unsigned timeout_ms);

/*
 * moat_dns_query_cached - the N questions answered from the answer cache alone, never waiting:
 * true when every one was there (the answers are the caller's, as with moat_dns_query_batch);
 * false, with no answer to release, when one was not (or DNS is NULL or a fixture). Lets a
 * caller that must not block skip a trip through a thread for answers it already has.
 */
bool moat_dns_query_cached(struct moat_dns *dns, struct moat_dns_q *q, size_t n);

struct moat_dns_cache_stats;

/*
 * moat_dns_cache_stats - what the libunbound backend's in-process answer cache (dns_cache.h) holds
 * and how many answers it gave without a trip through libunbound. All 0 for a fixture.
 */
void moat_dns_cache_stats(struct moat_dns *dns, struct moat_dns_cache_stats *st);

/* moat_dns_answer_clear - free the records and reset the answer; safe on a zeroed answer. */
void moat_dns_answer_clear(struct moat_dns_answer *answer);

/* moat_dns_free - release the resolver; NULL is a no-op. No query may be in flight. */
void moat_dns_free(struct moat_dns *dns);

/* moat_dns_status_name - "ok", "nxdomain", "nodata", "tempfail", "permfail". */
const char *moat_dns_status_name(enum moat_dns_status status);

struct moat_addr;
/*
 * moat_dns_reverse_name - ADDR's octets (IPv4) or nibbles (IPv6, RFC 3596 2.5) reversed, then
 * ".SUFFIX": "10.2.0.192.in-addr.arpa", or a DNS list's zone (RFC 5782 2.1, 2.4). 0, or -1
 * when it does not fit LEN.
 */
int moat_dns_reverse_name(const struct moat_addr *addr, const char *suffix, char *out, size_t len);

/* moat_dns_name_valid - does NAME pass the query-name check moat_dns_query applies? */
bool moat_dns_name_valid(const char *name);

#endif /* MOAT_DNS_H */
