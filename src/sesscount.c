/*
 * sesscount.c - concurrent sessions per client address (see sesscount.h).
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sesscount.h"

#define SESSCOUNT_SHARDS 64 /* power of two */
#define SESSCOUNT_BUCKETS 256 /* per shard, power of two */

struct sesscount_entry {
	struct sesscount_entry *next;
	struct moat_addr addr;
	unsigned count;
};

struct sesscount_shard {
	pthread_mutex_t lock;
	struct sesscount_entry *buckets[SESSCOUNT_BUCKETS];
};

struct moat_sesscount {
	uint64_t seed;
	struct sesscount_shard shards[SESSCOUNT_SHARDS];
};

/* sesscount_hash - FNV-1a over the address, keyed so clients cannot aim at one bucket. */
static uint64_t
sesscount_hash(const struct moat_sesscount *sc, const struct moat_addr *addr)
{
	uint64_t h = 1469598103934665603ULL ^ sc->seed;

	for (size_t i = 0; i < sizeof(addr->bytes); i++) {
		h ^= addr->bytes[i];
		h *= 1099511628211ULL;
	}
	return h ^ (h >> 29);
}

struct moat_sesscount *
moat_sesscount_new(void)
{
	struct moat_sesscount *sc = calloc(1, sizeof(*sc));

	if (sc == NULL)
		return NULL;
	sc->seed = (uint64_t)(uintptr_t)sc * 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < SESSCOUNT_SHARDS; i++)
		pthread_mutex_init(&sc->shards[i].lock, NULL);
	return sc;
}

void
moat_sesscount_free(struct moat_sesscount *sc)
{
	if (sc == NULL)
		return;
	for (size_t i = 0; i < SESSCOUNT_SHARDS; i++) {
		for (size_t b = 0; b < SESSCOUNT_BUCKETS; b++) {
			struct sesscount_entry *e = sc->shards[i].buckets[b], *next;
			for (; e != NULL; e = next) {
				next = e->next;
				free(e);
			}
		}
		pthread_mutex_destroy(&sc->shards[i].lock);
	}
	free(sc);
}

/* sesscount_locate - shard (locked by the caller) and bucket slot for ADDR. */
static struct sesscount_entry **
sesscount_locate(struct moat_sesscount *sc, const struct moat_addr *addr,
    struct sesscount_shard **shard)
{
	uint64_t h = sesscount_hash(sc, addr);
	struct sesscount_entry **pp;

	*shard = &sc->shards[h & (SESSCOUNT_SHARDS - 1)];
	pp = &(*shard)->buckets[(h >> 6) & (SESSCOUNT_BUCKETS - 1)];
	return pp;
}

bool
moat_sesscount_acquire(struct moat_sesscount *sc, const struct moat_addr *addr, unsigned limit)
{
	struct sesscount_shard *shard;
	struct sesscount_entry **pp, *e;
	bool ok = false;

	pp = sesscount_locate(sc, addr, &shard);
	pthread_mutex_lock(&shard->lock);
	for (e = *pp; e != NULL; e = e->next)
		if (memcmp(e->addr.bytes, addr->bytes, sizeof(addr->bytes)) == 0)
			break;
	if (e == NULL && limit > 0 && (e = calloc(1, sizeof(*e))) != NULL) {
		e->addr = *addr;
		e->next = *pp;
		*pp = e;
	}
	if (e != NULL && e->count < limit) {
		e->count++;
		ok = true;
	}
	pthread_mutex_unlock(&shard->lock);
	return ok;
}

void
moat_sesscount_release(struct moat_sesscount *sc, const struct moat_addr *addr)
{
	struct sesscount_shard *shard;
	struct sesscount_entry **pp, *e;

	pp = sesscount_locate(sc, addr, &shard);
	pthread_mutex_lock(&shard->lock);
	for (; (e = *pp) != NULL; pp = &e->next) {
		if (memcmp(e->addr.bytes, addr->bytes, sizeof(addr->bytes)) != 0)
			continue;
		if (e->count > 0)
			e->count--;
		if (e->count == 0) {
			*pp = e->next;
			free(e);
		}
		break;
	}
	pthread_mutex_unlock(&shard->lock);
}

unsigned
moat_sesscount_get(struct moat_sesscount *sc, const struct moat_addr *addr)
{
	struct sesscount_shard *shard;
	struct sesscount_entry **pp, *e;
	unsigned count = 0;

	pp = sesscount_locate(sc, addr, &shard);
	pthread_mutex_lock(&shard->lock);
	for (e = *pp; e != NULL; e = e->next)
		if (memcmp(e->addr.bytes, addr->bytes, sizeof(addr->bytes)) == 0)
			count = e->count;
	pthread_mutex_unlock(&shard->lock);
	return count;
}
