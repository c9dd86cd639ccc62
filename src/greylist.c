/*
 * greylist.c - greylisting triplets (greylist.h): their keys, their rule, and the store that
 * keeps them (the rate limiter's: embedded, or Redis through ratelimit_redis.c, whose script
 * applies the same rule with the server's clock).
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "greylist.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"

#define GL_HASH_BYTES ((size_t)16) /* of SHA-256: what tells two triplets apart in the store */

/* gl_update_folded - hash S lower-cased, and its terminating NUL (so "ab"+"c" is not "a"+"bc"). */
static int
gl_update_folded(EVP_MD_CTX *ctx, const char *s)
{
	unsigned char buf[128];
	size_t n = 0;
	int ok = 1;

	for (;; s++) {
		buf[n++] = (unsigned char)tolower((unsigned char)*s);
		if (n == sizeof(buf) || *s == '\0') {
			ok &= EVP_DigestUpdate(ctx, buf, n);
			n = 0;
		}
		if (*s == '\0')
			break;
	}
	return ok == 1 ? 0 : -1;
}

/* gl_key - TAG + the hex of the first GL_HASH_BYTES of SHA-256(NET, then SENDER and RCPT when
 * not NULL) into OUT; its length, or 0 on failure. */
static size_t
gl_key(const EVP_MD *sha256, const char *tag, const unsigned char *net, size_t netlen,
    const char *sender, const char *rcpt, char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t taglen = strlen(tag);
	int ok = ctx != NULL &&
	    EVP_DigestInit_ex(ctx, sha256 != NULL ? sha256 : EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, net, netlen) == 1;

	if (ok && sender != NULL)
		ok = gl_update_folded(ctx, sender) == 0 && gl_update_folded(ctx, rcpt) == 0;
	ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen >= GL_HASH_BYTES;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return 0;
	memcpy(out, tag, taglen);
	for (size_t i = 0; i < GL_HASH_BYTES; i++) {
		out[taglen + 2 * i] = hex[md[i] >> 4];
		out[taglen + 2 * i + 1] = hex[md[i] & 15];
	}
	out[taglen + 2 * GL_HASH_BYTES] = '\0';
	return taglen + 2 * GL_HASH_BYTES;
}

int
moat_greylist_keys(const EVP_MD *sha256, const struct moat_addr *addr, unsigned prefix4,
    unsigned prefix6, const char *sender, const char *rcpt, struct moat_gl_keys *k)
{
	unsigned char net[18];
	unsigned prefix = addr->v4 ? 96 + prefix4 : prefix6;

	if (prefix4 > 32 || prefix6 > 128)
		return -1;
	/* the network: the address cut to its prefix, the family and the prefix length */
	memcpy(net, addr->bytes, 16);
	for (unsigned bit = prefix; bit < 128; bit++)
		net[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
	net[16] = addr->v4 ? 4 : 6;
	net[17] = (unsigned char)(addr->v4 ? prefix4 : prefix6);
	k->netlen = gl_key(sha256, "gn:", net, sizeof(net), NULL, NULL, k->net);
	k->tripletlen = gl_key(sha256, "gt:", net, sizeof(net), sender, rcpt, k->triplet);
	return k->netlen == 0 || k->tripletlen == 0 ? -1 : 0;
}

enum moat_gl_result
moat_greylist_step(const struct moat_gl_times *t, bool seen, uint64_t *first_ms, uint64_t now_ms,
    uint64_t *wait_ms)
{
	*wait_ms = 0;
	/* RFC 6647 2.2: a retry after the delay, within the window, is the retry of a real MTA */
	if (!seen || now_ms < *first_ms || now_ms - *first_ms >= t->delay_ms + t->window_ms) {
		*first_ms = now_ms;
		*wait_ms = t->delay_ms;
		return MOAT_GL_NEW;
	}
	if (now_ms - *first_ms < t->delay_ms) {
		*wait_ms = t->delay_ms - (now_ms - *first_ms);
		return MOAT_GL_EARLY;
	}
	return MOAT_GL_PASSED;
}

/* gl_local - the rule in the embedded store: the network's pass ("gn:", its expiry) first, then
 * the triplet ("gt:", its first attempt). */
static void
gl_local(struct moat_ratelimit *rl, const struct moat_gl_keys *k, const struct moat_gl_times *t,
    struct moat_gl_answer *a)
{
	struct moat_rlmem *m = moat__ratelimit_mem(rl);
	uint64_t now = moat__ratelimit_now_us(rl) / 1000, until = 0, first = 0;
	bool seen;

	if (moat_rlmem_get(m, k->net, k->netlen, &until) && until > now) {
		moat_rlmem_put(m, k->net, k->netlen, now + t->pass_ttl_ms);
		a->result = MOAT_GL_NET_PASSED;
		a->wait_ms = 0;
		return;
	}
	seen = moat_rlmem_get(m, k->triplet, k->tripletlen, &first);
	a->result = moat_greylist_step(t, seen, &first, now, &a->wait_ms);
	if (a->result == MOAT_GL_NEW)
		moat_rlmem_put(m, k->triplet, k->tripletlen, first);
	else if (a->result == MOAT_GL_PASSED)
		moat_rlmem_put(m, k->net, k->netlen, now + t->pass_ttl_ms);
}

void
moat_greylist_check(struct moat_ratelimit *rl, const struct moat_gl_keys *k,
    const struct moat_gl_times *t, const char *sid, struct moat_gl_answer *a)
{
	struct moat_rlredis *r = moat__ratelimit_redis(rl);
	struct moat_metrics *m = moat_ratelimit_metrics(rl);
	bool closed = moat__ratelimit_fails_closed(rl);
	uint64_t t0;
	int rc;

	memset(a, 0, sizeof(*a));
	if (r == NULL) {
		gl_local(rl, k, t, a);
		return;
	}
	t0 = moat_metrics_now_ns();
	rc = moat_rlredis_greylist(r, k, t, a);
	moat_metrics_observe(m, MOAT_METRICS_REDIS, moat_metrics_now_ns() - t0);
	if (rc == 0)
		return;
	moat_metrics_redis_error(m);
	if (moat__ratelimit_log_due(rl, "!greylist", 9))
		moat_log(LOG_WARNING, sid, "greylist", "store=redis status=unreachable fallback=%s",
		    closed ? "closed" : "memory");
	if (closed) {
		a->result = MOAT_GL_STORE_DOWN;
		return;
	}
	a->fallback = true;
	gl_local(rl, k, t, a);
}

void
moat_greylist_verdict(const struct moat_gl_answer *a, struct moat_verdict *v)
{
	switch (a->result) {
	case MOAT_GL_NEW:
	case MOAT_GL_EARLY:
		/* RFC 6647 2.1: a temporary failure; the text says when a retry will pass */
		moat_verdict_set(v, MOAT_TEMPFAIL, 451, "4.7.1", "greylist",
		    "Greylisted, try again in %llu seconds",
		    (unsigned long long)((a->wait_ms + 999) / 1000));
		break;
	case MOAT_GL_STORE_DOWN:
		moat_verdict_set(v, MOAT_TEMPFAIL, 451, "4.3.0", "greylist_store_down",
		    "Greylisting service unavailable, try again later");
		break;
	case MOAT_GL_NET_PASSED:
	case MOAT_GL_PASSED:
		break;
	}
}

const char *
moat_greylist_result_name(enum moat_gl_result r)
{
	switch (r) {
	case MOAT_GL_NET_PASSED:
		return "net";
	case MOAT_GL_PASSED:
		return "passed";
	case MOAT_GL_NEW:
		return "new";
	case MOAT_GL_EARLY:
		return "early";
	case MOAT_GL_STORE_DOWN:
		return "store_down";
	}
	return "?";
}
