/*
 * edits.c - application order of the core's header edits (see edits.h).
 */
#include "config.h"

#include <stdlib.h>
#include <strings.h>

#include "edits.h"

/* edits_delete_before - true when deletion a must be applied before deletion b. */
static int
edits_delete_before(const struct moat_hdr_edit *a, const struct moat_hdr_edit *b)
{
	int c = strcasecmp(a->name, b->name);

	if (c != 0)
		return c < 0;
	return a->index > b->index;
}

int
milter_edits_order(const struct moat_hdr_edit *edits, size_t n, size_t *order, size_t max)
{
	size_t k = 0;

	if (n > max)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (edits[i].op != MOAT_HDR_DELETE)
			continue;
		/* insertion sort: n is at most a few dozen */
		size_t j = k++;
		while (j > 0 && edits_delete_before(&edits[i], &edits[order[j - 1]])) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	for (size_t i = n; i-- > 0;)
		if (edits[i].op == MOAT_HDR_INSERT_TOP)
			order[k++] = i;
	return 0;
}
