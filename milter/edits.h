/*
 * edits.h - the order in which the core's header edits reach the MTA.
 *
 * The core hands out edits (insert at the top, delete the n-th occurrence of a name) in the order
 * it decided them. Applied one by one through libmilter, a deletion renumbers the occurrences
 * after it, so deletions of one name go last index first (CVE-2022-48521: deleting from the front
 * skips every other forged header); insertions at index 0 go in reverse so the first edit ends up
 * on top. Pure: no libmilter calls, so it is unit-tested.
 */
#ifndef MOAT_MILTER_EDITS_H
#define MOAT_MILTER_EDITS_H

#include <stddef.h>

#include "policy.h"

/*
 * milter_edits_order - fill order[0..n) with indexes into edits in application order: every
 * DELETE first, grouped by name (case-insensitive), highest index first; then every INSERT_TOP,
 * last to first. Returns 0, or -1 if n exceeds max.
 */
int milter_edits_order(const struct moat_hdr_edit *edits, size_t n, size_t *order, size_t max);

#endif /* MOAT_MILTER_EDITS_H */
