/*
 * ratelimit_mem.c - the embedded rate-limit store: buckets in this process's memory.
 *
 * Shared by every proxy loop and milter thread. Keys are spread over 64 shards by a keyed hash
 * (a client cannot aim its keys at one shard or one chain); each shard has its own lock, hash
 * table and least-recently-used list, so a check touches one shard only: O(1), no global lock.
 * The whole store holds at most max_entries keys; a full shard forgets its least recently used
 * key, which loses nothing but an old bucket's history (a forgotten bucket comes back full).
 *
 * A bucket is one number, its "theoretical arrival time" (GCRA, as in ATM traffic shaping):
 * taking COST tokens moves it COST * interval ahead, and a take is allowed while it stays within
 * limit = COUNT * interval of now. That is a token bucket of COUNT tokens refilled at one per
 * interval, with exact integer arithmetic; the Redis script does the same sums. Greylisting
 * (greylist.c) keeps plain numbers under its own keys here (moat_rlmem_get, moat_rlmem_put).
 */
#include "config.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "ratelimit.h"

#define RLMEM_SHARDS 64 /* power of two */

struct rlmem_entry {
	struct rlmem_entry *hnext; /* hash chain */
	struct rlmem_entry *lprev, *lnext; /* LRU list: head is the most recent */
	uint64_t hash;
	uint64_t tat; /* us: when the bucket is full again */
	uint64_t seen; /* us: latest "now" this key saw (clock going back) */
	size_t keylen;
	char key[];
};

struct rlmem_shard {
	alignas(64) pthread_mutex_t lock;
	struct rlmem_entry **buckets;
	size_t mask; /* nbuckets - 1 */
	size_t n, max;
	struct rlmem_entry lru; /* sentinel of a circular list */
};

struct moat_rlmem {
	uint64_t seed;
	struct rlmem_shard shards[RLMEM_SHARDS];
};

/* rlmem_hash - FNV-1a with a per-store random seed, finished with a multiply-shift mix. */
static uint64_t
rlmem_hash(const struct moat_rlmem *m, const char *key, size_t len)
{
	uint64_t h = 1469598103934665603ULL ^ m->seed;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 1099511628211ULL;
	}
	h ^= h >> 32;
	h *= 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 29);
}

struct moat_rlmem *
moat_rlmem_new(size_t max_entries)
{
	struct moat_rlmem *m;
	size_t per, nb = 1;

	if (max_entries < RLMEM_SHARDS)
		max_entries = RLMEM_SHARDS;
	per = (max_entries + RLMEM_SHARDS - 1) / RLMEM_SHARDS;
	while (nb < per)
		nb <<= 1;
	if ((m = aligned_alloc(64, (sizeof(*m) + 63) / 64 * 64)) == NULL)
		return NULL;
	memset(m, 0, sizeof(*m));
	if (getrandom(&m->seed, sizeof(m->seed), GRND_NONBLOCK) != (ssize_t)sizeof(m->seed))
		m->seed = (uint64_t)(uintptr_t)m * 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < RLMEM_SHARDS; i++) {
		struct rlmem_shard *sh = &m->shards[i];
		sh->buckets = calloc(nb, sizeof(struct rlmem_entry *));
		if (sh->buckets == NULL) {
			for (size_t j = 0; j < i; j++) {
				free(m->shards[j].buckets);
				pthread_mutex_destroy(&m->shards[j].lock);
			}
			free(m);
			return NULL;
		}
		sh->mask = nb - 1;
		sh->max = per;
		sh->lru.lprev = sh->lru.lnext = &sh->lru;
		pthread_mutex_init(&sh->lock, NULL);
	}
	return m;
}

void
moat_rlmem_free(struct moat_rlmem *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < RLMEM_SHARDS; i++) {
		struct rlmem_shard *sh = &m->shards[i];
		struct rlmem_entry *e = sh->lru.lnext, *next;
		for (; e != &sh->lru; e = next) {
			next = e->lnext;
			free(e);
		}
		free(sh->buckets);
		pthread_mutex_destroy(&sh->lock);
	}
	free(m);
}

/* rlmem_lru_unlink - take E out of its shard's LRU list. */
static void
rlmem_lru_unlink(struct rlmem_entry *e)
{
	e->lprev->lnext = e->lnext;
	e->lnext->lprev = e->lprev;
}

/* rlmem_lru_front - make E the most recently used entry of SH. */
static void
rlmem_lru_front(struct rlmem_shard *sh, struct rlmem_entry *e)
{
	e->lnext = sh->lru.lnext;
	e->lprev = &sh->lru;
	sh->lru.lnext->lprev = e;
	sh->lru.lnext = e;
}

/* rlmem_evict_oldest - forget SH's least recently used entry (the shard is full). */
static void
rlmem_evict_oldest(struct rlmem_shard *sh)
{
	struct rlmem_entry *old = sh->lru.lprev, **pp;

	if (old == &sh->lru)
		return;
	for (pp = &sh->buckets[(old->hash >> 6) & sh->mask]; *pp != NULL; pp = &(*pp)->hnext) {
		if (*pp == old) {
			*pp = old->hnext;
			break;
		}
	}
	rlmem_lru_unlink(old);
	sh->n--;
	free(old);
}

/*
 * rlmem_lookup - KEY's entry (hash H) in SH, whose lock the caller holds, made the most recently
 * used; a new one starting at NOW_US when absent and CREATE (the shard's oldest is forgotten when
 * it is full). NULL when absent and not CREATE, or out of memory.
 */
static struct rlmem_entry *
rlmem_lookup(struct rlmem_shard *sh, uint64_t h, const char *key, size_t keylen, uint64_t now_us,
    bool create)
{
	struct rlmem_entry *e;

	for (e = sh->buckets[(h >> 6) & sh->mask]; e != NULL; e = e->hnext)
		if (e->hash == h && e->keylen == keylen && memcmp(e->key, key, keylen) == 0)
			break;
	if (e == NULL) {
		if (!create)
			return NULL;
		if (sh->n >= sh->max)
			rlmem_evict_oldest(sh);
		if ((e = malloc(sizeof(*e) + keylen)) == NULL)
			return NULL;
		e->hash = h;
		e->keylen = keylen;
		memcpy(e->key, key, keylen);
		e->tat = now_us;
		e->seen = now_us;
		e->hnext = sh->buckets[(h >> 6) & sh->mask];
		sh->buckets[(h >> 6) & sh->mask] = e;
		sh->n++;
	} else {
		rlmem_lru_unlink(e);
	}
	rlmem_lru_front(sh, e);
	return e;
}

/* rlmem_shard_of - the shard of a key with hash H. */
static struct rlmem_shard *
rlmem_shard_of(struct moat_rlmem *m, uint64_t h)
{
	return &m->shards[h & (RLMEM_SHARDS - 1)];
}

bool
moat_rlmem_take(struct moat_rlmem *m, const char *key, size_t keylen, uint64_t interval_us,
    uint64_t limit_us, unsigned cost, uint64_t now_us, uint64_t *retry_us)
{
	uint64_t h = rlmem_hash(m, key, keylen), now, tat, step, next;
	struct rlmem_shard *sh = rlmem_shard_of(m, h);
	struct rlmem_entry *e;
	bool allowed;

	*retry_us = 0;
	/* Overflow-proof step: a cost past the limit can never be allowed anyway. */
	step = (cost != 0 && interval_us > limit_us / cost) ? limit_us + 1 : interval_us * cost;

	pthread_mutex_lock(&sh->lock);
	if ((e = rlmem_lookup(sh, h, key, keylen, now_us, true)) == NULL) {
		pthread_mutex_unlock(&sh->lock);
		return true; /* out of memory: an unlimited event beats a refused one */
	}

	/* A clock that went back stands still for this key until it catches up. */
	now = now_us > e->seen ? now_us : e->seen;
	e->seen = now;
	tat = e->tat > now ? e->tat : now; /* a forward jump refills to the full burst, no more */
	next = tat + step;
	allowed = next - now <= limit_us;
	if (allowed)
		e->tat = next;
	else
		*retry_us = next - now - limit_us;
	pthread_mutex_unlock(&sh->lock);
	return allowed;
}

bool
moat_rlmem_get(struct moat_rlmem *m, const char *key, size_t keylen, uint64_t *value)
{
	uint64_t h = rlmem_hash(m, key, keylen);
	struct rlmem_shard *sh = rlmem_shard_of(m, h);
	struct rlmem_entry *e;

	pthread_mutex_lock(&sh->lock);
	if ((e = rlmem_lookup(sh, h, key, keylen, 0, false)) != NULL)
		*value = e->tat;
	pthread_mutex_unlock(&sh->lock);
	return e != NULL;
}

void
moat_rlmem_put(struct moat_rlmem *m, const char *key, size_t keylen, uint64_t value)
{
	uint64_t h = rlmem_hash(m, key, keylen);
	struct rlmem_shard *sh = rlmem_shard_of(m, h);
	struct rlmem_entry *e;

	pthread_mutex_lock(&sh->lock);
	if ((e = rlmem_lookup(sh, h, key, keylen, value, true)) != NULL)
		e->tat = value;
	pthread_mutex_unlock(&sh->lock);
}

size_t
moat_rlmem_count(struct moat_rlmem *m)
{
	size_t n = 0;

	for (size_t i = 0; i < RLMEM_SHARDS; i++) {
		pthread_mutex_lock(&m->shards[i].lock);
		n += m->shards[i].n;
		pthread_mutex_unlock(&m->shards[i].lock);
	}
	return n;
}
