/*
 * dns_cache.h - a small, bounded in-process cache of converted DNS answers, in front of
 * libunbound (dns.c).
 *
 * Why: libunbound's own cache is reached through its resolver thread (a pipe write, a poll and a
 * thread switch per query, even on a hit); with four lookups per message that hand-off was about
 * half the engine's wall time. This cache answers repeated (name, type) questions in the caller's
 * thread under one of 16 shard locks.
 *
 * Keys are (lower-case name without trailing dot, type). Positive answers live for their TTL (at
 * most MOAT_DNS_CACHE_MAX_TTL), negative ones (NXDOMAIN, NODATA) for the negative TTL libunbound
 * reports (RFC 2308 5: the SOA's TTL and MINIMUM, whichever is less) and at most
 * MOAT_DNS_CACHE_MAX_NEG_TTL; a TTL of 0 is not cached, nor is a temporary or permanent failure.
 * Bounded in entries and bytes: a full shard forgets its least recently used entry.
 */
#ifndef MOAT_DNS_CACHE_H
#define MOAT_DNS_CACHE_H

#include <stdbool.h>

#include "dns.h"

#define MOAT_DNS_CACHE_SHARDS 16
#define MOAT_DNS_CACHE_SLOTS 64 /* entries per shard */
#define MOAT_DNS_CACHE_ENTRY_BYTES 16384 /* record bytes of one answer; larger: not cached */
#define MOAT_DNS_CACHE_SHARD_BYTES 262144 /* record bytes of one shard (4 MB in all) */
#define MOAT_DNS_CACHE_MAX_TTL 3600
#define MOAT_DNS_CACHE_MAX_NEG_TTL 300

struct moat__dns_cache;

struct moat__dns_cache *moat__dns_cache_new(void);
void moat__dns_cache_free(struct moat__dns_cache *c);

/*
 * moat__dns_cache_get - a live entry for (NAME, TYPE) at NOW_MS (a monotonic clock) copied into
 * *out (the caller clears it); false, *out untouched, when there is none. NAME as for the put.
 */
bool moat__dns_cache_get(struct moat__dns_cache *c, const char *name, enum moat_dns_type type,
    long long now_ms, struct moat_dns_answer *out);

/*
 * moat__dns_cache_put - remember ANSWER (copied) for TTL seconds from NOW_MS, within the caps
 * above. NAME: lower case, no trailing dot, at most MOAT_DNS_NAME_MAX bytes. Failures to
 * allocate just leave the answer uncached.
 */
void moat__dns_cache_put(struct moat__dns_cache *c, const char *name, enum moat_dns_type type,
    const struct moat_dns_answer *answer, unsigned ttl, long long now_ms);

/* What the cache holds and has done; see moat_dns_cache_stats in dns.h. */
struct moat_dns_cache_stats {
	unsigned long hits; /* answers given from the cache since creation */
	unsigned long stored; /* answers stored since creation */
	size_t entries, bytes; /* live now (bytes: of records) */
};

void moat__dns_cache_stats(struct moat__dns_cache *c, struct moat_dns_cache_stats *st);

#endif /* MOAT_DNS_CACHE_H */
