/*
 * metrics.h - the daemons' counters, kept by the core and rendered in the Prometheus text format.
 *
 * The core counts what its events and checks decide (sessions, messages by verdict, refusals by
 * the verdict's reason, authentication results, TLS handshakes, DNS query times, the
 * configuration generation); a front-end adds what only it sees (backend replies, Redis calls on
 * its event loop, bytes held) through the same functions. The names and their meaning are listed
 * in mxmoat.conf(5) under metrics_listen. Both daemons expose the same names;
 * what a daemon never sees stays 0 (mxmoat-milter has no backend and holds nothing).
 *
 * Counting costs no lock and no atomic read-modify-write: each thread that counts gets its own
 * shard on first use (a pthread key of the registry) and only that thread writes it, with
 * relaxed loads and stores. A scrape sums the shards under the registry's lock; a thread that
 * exits (libmilter's thread per connection) folds its shard into the registry's retired totals.
 * No label carries text from the wire: label values come from fixed sets or from the core's
 * static reason tokens.
 */
#ifndef MOAT_METRICS_H
#define MOAT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

struct moat_metrics;

/* The authentication methods of mxmoat_auth_results_total{method}. */
enum moat_metrics_auth {
	MOAT_METRICS_SPF,
	MOAT_METRICS_DKIM,
	MOAT_METRICS_DMARC,
	MOAT_METRICS_ARC,
};

/* The histograms: mxmoat_dns_query_seconds, mxmoat_redis_call_seconds. */
enum moat_metrics_hist {
	MOAT_METRICS_DNS,
	MOAT_METRICS_REDIS,
};

/* The outcomes of mxmoat_dmarc_report_records_total{status}. */
enum moat_metrics_drep {
	MOAT_METRICS_DREP_WRITTEN,
	MOAT_METRICS_DREP_DROPPED,
	MOAT_METRICS_DREP_LOST,
};

/* moat_metrics_new - an empty registry, config generation 1; NULL when out of memory. */
struct moat_metrics *moat_metrics_new(void);
/* moat_metrics_free - NULL is a no-op. No thread may count on it any more. */
void moat_metrics_free(struct moat_metrics *m);

/*
 * The counting functions: M may be NULL (nothing counted). Each writes the calling thread's shard
 * only; safe from any thread.
 */
/* moat_metrics_session - DELTA +1: a session opened (also counts towards the total); -1: closed. */
void moat_metrics_session(struct moat_metrics *m, int delta);
/* moat_metrics_message - a message ended with verdict A (MOAT_CONTINUE counts as accept). */
void moat_metrics_message(struct moat_metrics *m, enum moat_action a);
/* moat_metrics_refusal - a refusal for REASON, a static token of the core (borrowed for the
 * registry's life); past 64 distinct reasons per thread it counts as "other". */
void moat_metrics_refusal(struct moat_metrics *m, const char *reason);
/* moat_metrics_auth - one result of METHOD: "pass", "fail", "softfail", "neutral", "none",
 * "policy", "temperror", "permerror"; anything else counts as "other". */
void moat_metrics_auth(struct moat_metrics *m, enum moat_metrics_auth method, const char *result);
/* moat_metrics_backend_reply - a reply from the backend, counted by class (2xx ... 5xx). */
void moat_metrics_backend_reply(struct moat_metrics *m, unsigned code);
/* moat_metrics_tls - a completed handshake; PROTOCOL as OpenSSL names it ("TLSv1.3"). */
void moat_metrics_tls(struct moat_metrics *m, const char *protocol);
/* moat_metrics_observe - one duration, in nanoseconds (moat_metrics_now_ns differences). */
void moat_metrics_observe(struct moat_metrics *m, enum moat_metrics_hist h, uint64_t ns);
/* moat_metrics_redis_error - a rate-limit call to Redis got no usable answer. */
void moat_metrics_redis_error(struct moat_metrics *m);
/* moat_metrics_dmarc_report - N DMARC evaluations written to the report store, dropped or lost. */
void moat_metrics_dmarc_report(struct moat_metrics *m, enum moat_metrics_drep status, uint64_t n);
/* moat_metrics_hold - bytes held by the proxy's holding mode grew (+) or were released (-). */
void moat_metrics_hold(struct moat_metrics *m, int64_t delta);
/* moat_metrics_generation_next - a reload installed a new configuration generation. */
void moat_metrics_generation_next(struct moat_metrics *m);

/* moat_metrics_now_ns - CLOCK_MONOTONIC in nanoseconds, for moat_metrics_observe. */
uint64_t moat_metrics_now_ns(void);

/*
 * moat_metrics_render - every metric, summed over the shards, in the Prometheus text exposition
 * format 0.0.4. Returns a malloc'd string (*len bytes, NUL-terminated) for the caller to free, or
 * NULL when out of memory.
 */
char *moat_metrics_render(struct moat_metrics *m, size_t *len);

#endif /* MOAT_METRICS_H */
