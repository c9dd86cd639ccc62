/*
 * greylist.h - greylisting (RFC 6647) of inbound mail at RCPT, in the rate limiter's store.
 *
 * A triplet is (client network, envelope sender, recipient). Its first attempt is refused, and so
 * is every retry within greylist_delay; a retry after it, within greylist_retry_window, passes and
 * lets the client network through for greylist_pass_ttl after its latest message (so a sender's
 * next messages, and its other recipients, are not delayed again). Later than the window, the
 * triplet starts over. Keys are hashes (no address in the store, which Redis may share between
 * gateways): "gn:" + the network's, "gt:" + the triplet's.
 *
 * The store is the limiter's (ratelimit.h): the embedded one, or Redis with the same back-off and
 * the same ratelimit_redis_failure rule (open: the embedded store decides; closed: 451 4.3.0).
 * moat_greylist_check blocks on Redis; the check table's row runs it as a work item on an event
 * loop. Which clients are greylisted at all is the row's business (checks.c).
 */
#ifndef MOAT_GREYLIST_H
#define MOAT_GREYLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "cidr.h"
#include "policy.h"

#define MOAT_GL_KEY_MAX 40 /* "gt:" + 32 hex digits + NUL */

struct moat_ratelimit;

/* The store keys of one RCPT. */
struct moat_gl_keys {
	char net[MOAT_GL_KEY_MAX];
	size_t netlen;
	char triplet[MOAT_GL_KEY_MAX];
	size_t tripletlen;
};

/* greylist_delay, greylist_retry_window, greylist_pass_ttl */
struct moat_gl_times {
	uint64_t delay_ms;
	uint64_t window_ms;
	uint64_t pass_ttl_ms;
};

/* What the store said; the values are the Redis script's answers too. */
enum moat_gl_result {
	MOAT_GL_NET_PASSED = 0, /* the network passed a triplet within greylist_pass_ttl */
	MOAT_GL_PASSED = 1, /* a retry within the window: the triplet passes, its network too */
	MOAT_GL_NEW = 2, /* first seen, or seen before the window ran out: refused */
	MOAT_GL_EARLY = 3, /* a retry before greylist_delay: refused */
	MOAT_GL_STORE_DOWN = 4, /* Redis failed and ratelimit_redis_failure = closed: refused */
};

struct moat_gl_answer {
	enum moat_gl_result result;
	uint64_t wait_ms; /* NEW, EARLY: how much of the delay is left */
	bool fallback; /* Redis failed; the embedded store answered (open) */
};

/*
 * moat_greylist_keys - the keys for a client ADDR cut to PREFIX4 (IPv4) or PREFIX6 (IPv6) bits,
 * SENDER ("" for the null sender) and RCPT, both compared without case, hashed with SHA256 (a
 * method fetched once by the caller and borrowed, as an implicit fetch per hash costs more than
 * the hash; NULL: fetched on each call). 0, or -1 when a prefix is out of range.
 */
int moat_greylist_keys(const EVP_MD *sha256, const struct moat_addr *addr, unsigned prefix4,
    unsigned prefix6, const char *sender, const char *rcpt, struct moat_gl_keys *k);

/*
 * moat_greylist_step - the triplet's rule at NOW_MS: SEEN with *first_ms the time of its first
 * attempt, or not SEEN. NEW sets *first_ms to now; NEW and EARLY set *wait_ms (else 0).
 */
enum moat_gl_result moat_greylist_step(const struct moat_gl_times *t, bool seen, uint64_t *first_ms,
    uint64_t now_ms, uint64_t *wait_ms);

/* moat_greylist_check - ask the limiter's store about K (blocks on Redis); SID names the session
 * in the log line of a store failure. */
void moat_greylist_check(struct moat_ratelimit *rl, const struct moat_gl_keys *k,
    const struct moat_gl_times *t, const char *sid, struct moat_gl_answer *a);

/* moat_greylist_verdict - 451 4.7.1 with the delay left, 451 4.3.0 for a store that is down, or
 * continue. */
void moat_greylist_verdict(const struct moat_gl_answer *a, struct moat_verdict *v);

/* moat_greylist_result_name - "net", "passed", "new", "early" or "store_down", for the log. */
const char *moat_greylist_result_name(enum moat_gl_result r);

#endif /* MOAT_GREYLIST_H */
