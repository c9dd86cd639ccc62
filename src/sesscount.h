/*
 * sesscount.h - concurrent sessions per client address, shared by every session of a daemon.
 *
 * A sharded hash table: each shard has its own lock, so sessions from different clients rarely
 * contend. An entry exists only while its address has open sessions, so the table is bounded by
 * the number of open sessions.
 */
#ifndef MOAT_SESSCOUNT_H
#define MOAT_SESSCOUNT_H

#include <stdbool.h>

#include "cidr.h"

struct moat_sesscount;

struct moat_sesscount *moat_sesscount_new(void);
void moat_sesscount_free(struct moat_sesscount *sc); /* NULL is a no-op */

/*
 * moat_sesscount_acquire - count one more session for ADDR unless that would exceed LIMIT.
 * Returns true (counted) or false (over the limit, or out of memory: not counted).
 */
bool moat_sesscount_acquire(struct moat_sesscount *sc, const struct moat_addr *addr,
    unsigned limit);

/* moat_sesscount_release - one session of ADDR ended (it must have been acquired). */
void moat_sesscount_release(struct moat_sesscount *sc, const struct moat_addr *addr);

/* moat_sesscount_get - current count for ADDR (tests and logs). */
unsigned moat_sesscount_get(struct moat_sesscount *sc, const struct moat_addr *addr);

#endif /* MOAT_SESSCOUNT_H */
