/*
 * dns_cache.c - the bounded answer cache in front of libunbound (see dns_cache.h).
 *
 * Owns its entries: one allocation each for the records (the rr array followed by the record
 * bytes), copied out to the caller on a hit, so nothing handed out points into the cache. A shard
 * is a fixed array of slots searched linearly by a keyed hash (64 compares of a 64-bit word), so
 * hostile names can neither grow a chain nor predict which shard they land in.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "dns_cache.h"

struct slot {
	uint64_t hash; /* 0: empty */
	uint64_t used; /* shard clock at the last hit or store (LRU) */
	long long expires_ms;
	enum moat_dns_type type;
	enum moat_dns_status status;
	bool secure;
	size_t n;
	size_t bytes; /* record bytes, counted against the shard's budget */
	struct moat_dns_rr *rr; /* n records and their bytes, one allocation */
	char name[MOAT_DNS_NAME_MAX + 1];
};

struct shard {
	pthread_mutex_t lock;
	uint64_t clock;
	size_t bytes;
	unsigned long hits, stored;
	struct slot slots[MOAT_DNS_CACHE_SLOTS];
};

struct moat__dns_cache {
	uint64_t seed;
	struct shard shards[MOAT_DNS_CACHE_SHARDS];
};

struct moat__dns_cache *
moat__dns_cache_new(void)
{
	struct moat__dns_cache *c = calloc(1, sizeof(*c));
	size_t i;

	if (c == NULL)
		return NULL;
	if (getrandom(&c->seed, sizeof(c->seed), GRND_NONBLOCK) != (ssize_t)sizeof(c->seed))
		c->seed = (uint64_t)(uintptr_t)c * 0x9e3779b97f4a7c15ULL;
	for (i = 0; i < MOAT_DNS_CACHE_SHARDS; i++)
		pthread_mutex_init(&c->shards[i].lock, NULL);
	return c;
}

/* slot_clear - free a slot's records and mark it empty. */
static void
slot_clear(struct shard *sh, struct slot *s)
{
	free(s->rr);
	sh->bytes -= s->bytes;
	memset(s, 0, sizeof(*s));
}

void
moat__dns_cache_free(struct moat__dns_cache *c)
{
	size_t i, j;

	if (c == NULL)
		return;
	for (i = 0; i < MOAT_DNS_CACHE_SHARDS; i++) {
		for (j = 0; j < MOAT_DNS_CACHE_SLOTS; j++)
			free(c->shards[i].slots[j].rr);
		pthread_mutex_destroy(&c->shards[i].lock);
	}
	free(c);
}

/* key_hash - FNV-1a over the name and type, keyed by the cache's seed; never 0. */
static uint64_t
key_hash(const struct moat__dns_cache *c, const char *name, enum moat_dns_type type)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ c->seed;

	for (; *name; name++) {
		h ^= (unsigned char)*name;
		h *= 0x100000001b3ULL;
	}
	h ^= (uint64_t)type;
	h *= 0x100000001b3ULL;
	h ^= h >> 29;
	return h ? h : 1;
}

/* find - the slot holding (name, type) in SH, or NULL. */
static struct slot *
find(struct shard *sh, uint64_t h, const char *name, enum moat_dns_type type)
{
	size_t i;

	for (i = 0; i < MOAT_DNS_CACHE_SLOTS; i++) {
		struct slot *s = &sh->slots[i];
		if (s->hash == h && s->type == type && strcmp(s->name, name) == 0)
			return s;
	}
	return NULL;
}

/* copy_out - S's answer as freshly allocated records; false when out of memory. */
static bool
copy_out(const struct slot *s, struct moat_dns_answer *out)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	if (s->n > 0 && (out->rr = calloc(s->n, sizeof(*out->rr))) == NULL)
		return false;
	for (i = 0; i < s->n; i++) {
		char *d = malloc(s->rr[i].len + 1);
		if (d == NULL) {
			moat_dns_answer_clear(out);
			return false;
		}
		memcpy(d, s->rr[i].data, s->rr[i].len + 1);
		out->rr[i] =
		    (struct moat_dns_rr){ .pref = s->rr[i].pref, .len = s->rr[i].len, .data = d };
		out->n++;
	}
	out->status = s->status;
	out->secure = s->secure;
	return true;
}

bool
moat__dns_cache_get(struct moat__dns_cache *c, const char *name, enum moat_dns_type type,
    long long now_ms, struct moat_dns_answer *out)
{
	uint64_t h = key_hash(c, name, type);
	struct shard *sh = &c->shards[h % MOAT_DNS_CACHE_SHARDS];
	struct slot *s;
	bool hit = false;

	pthread_mutex_lock(&sh->lock);
	s = find(sh, h, name, type);
	if (s != NULL && s->expires_ms <= now_ms) {
		slot_clear(sh, s);
	} else if (s != NULL && copy_out(s, out)) {
		s->used = ++sh->clock;
		sh->hits++;
		hit = true;
	}
	pthread_mutex_unlock(&sh->lock);
	return hit;
}

/* victim - the slot to reuse in SH: an empty or expired one, else the least recently used. */
static struct slot *
victim(struct shard *sh, long long now_ms)
{
	struct slot *lru = &sh->slots[0];
	size_t i;

	for (i = 0; i < MOAT_DNS_CACHE_SLOTS; i++) {
		struct slot *s = &sh->slots[i];
		if (s->hash == 0 || s->expires_ms <= now_ms)
			return s;
		if (s->used < lru->used)
			lru = s;
	}
	return lru;
}

/* evict_for - drop least recently used entries of SH until BYTES more fit its budget. */
static void
evict_for(struct shard *sh, size_t bytes)
{
	while (sh->bytes + bytes > MOAT_DNS_CACHE_SHARD_BYTES) {
		struct slot *lru = NULL;
		size_t i;
		for (i = 0; i < MOAT_DNS_CACHE_SLOTS; i++) {
			struct slot *s = &sh->slots[i];
			if (s->hash != 0 && (lru == NULL || s->used < lru->used))
				lru = s;
		}
		if (lru == NULL)
			return;
		slot_clear(sh, lru);
	}
}

void
moat__dns_cache_put(struct moat__dns_cache *c, const char *name, enum moat_dns_type type,
    const struct moat_dns_answer *answer, unsigned ttl, long long now_ms)
{
	uint64_t h;
	struct shard *sh;
	struct slot *s;
	struct moat_dns_rr *rr;
	size_t i, bytes = 0, nlen = strlen(name);
	char *p;

	if (answer->status == MOAT_DNS_OK)
		ttl = ttl < MOAT_DNS_CACHE_MAX_TTL ? ttl : MOAT_DNS_CACHE_MAX_TTL;
	else if (answer->status == MOAT_DNS_NXDOMAIN || answer->status == MOAT_DNS_NODATA)
		ttl = ttl < MOAT_DNS_CACHE_MAX_NEG_TTL ? ttl : MOAT_DNS_CACHE_MAX_NEG_TTL;
	else
		return;
	if (ttl == 0 || nlen > MOAT_DNS_NAME_MAX)
		return;
	for (i = 0; i < answer->n; i++)
		bytes += answer->rr[i].len + 1;
	if (bytes > MOAT_DNS_CACHE_ENTRY_BYTES)
		return;
	rr = malloc(answer->n * sizeof(*rr) + bytes + 1);
	if (rr == NULL)
		return;
	p = (char *)(rr + answer->n);
	for (i = 0; i < answer->n; i++) {
		rr[i] = (struct moat_dns_rr){ .pref = answer->rr[i].pref,
			.len = answer->rr[i].len,
			.data = p };
		memcpy(p, answer->rr[i].data, answer->rr[i].len);
		p[answer->rr[i].len] = '\0';
		p += answer->rr[i].len + 1;
	}
	h = key_hash(c, name, type);
	sh = &c->shards[h % MOAT_DNS_CACHE_SHARDS];
	pthread_mutex_lock(&sh->lock);
	s = find(sh, h, name, type);
	if (s != NULL)
		slot_clear(sh, s); /* another thread stored it meanwhile: take ours */
	evict_for(sh, bytes);
	s = victim(sh, now_ms);
	if (s->hash != 0)
		slot_clear(sh, s);
	s->hash = h;
	s->used = ++sh->clock;
	s->expires_ms = now_ms + (long long)ttl * 1000;
	s->type = type;
	s->status = answer->status;
	s->secure = answer->secure;
	s->n = answer->n;
	s->bytes = bytes;
	s->rr = rr;
	memcpy(s->name, name, nlen + 1);
	sh->bytes += bytes;
	sh->stored++;
	pthread_mutex_unlock(&sh->lock);
}

void
moat__dns_cache_stats(struct moat__dns_cache *c, struct moat_dns_cache_stats *st)
{
	size_t i, j;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < MOAT_DNS_CACHE_SHARDS; i++) {
		struct shard *sh = &c->shards[i];
		pthread_mutex_lock(&sh->lock);
		st->hits += sh->hits;
		st->stored += sh->stored;
		st->bytes += sh->bytes;
		for (j = 0; j < MOAT_DNS_CACHE_SLOTS; j++)
			st->entries += sh->slots[j].hash != 0;
		pthread_mutex_unlock(&sh->lock);
	}
}
