/*
 * test_milter_edits.c - the order in which mxmoat-milter applies the core's header edits:
 * deletions of one name last index first (CVE-2022-48521), then insertions at index 0 in reverse
 * so the core's first insertion ends up on top.
 */
#include "config.h"

#include <criterion/criterion.h>

#include "../../milter/edits.h"

#define DEL(n, i) \
	{ \
		MOAT_HDR_DELETE, (char *)(n), NULL, (i) \
	}
#define INS(n, v) \
	{ \
		MOAT_HDR_INSERT_TOP, (char *)(n), (char *)(v), 0 \
	}

struct edits_case {
	const char *label;
	struct moat_hdr_edit edits[8];
	size_t n;
	size_t want[8];
};

static const struct edits_case cases[] = {
	{ .label = "nothing", .n = 0 },
	{ .label = "one insert",
	    .edits = { INS("Authentication-Results", "mx; spf=pass") },
	    .n = 1,
	    .want = { 0 } },
	{ .label = "three forged A-R deleted from the last",
	    .edits = { DEL("Authentication-Results", 1), DEL("Authentication-Results", 2),
		DEL("Authentication-Results", 3) },
	    .n = 3,
	    .want = { 2, 1, 0 } },
	{ .label = "deletes before inserts, inserts reversed",
	    .edits = { INS("Authentication-Results", "mx; dkim=pass"),
		DEL("Authentication-Results", 1), INS("ARC-Seal", "x"),
		DEL("Authentication-Results", 4) },
	    .n = 4,
	    .want = { 3, 1, 2, 0 } },
	{ .label = "names compared without case, grouped",
	    .edits = { DEL("authentication-results", 2), DEL("X-B", 1),
		DEL("Authentication-Results", 5), DEL("x-b", 3) },
	    .n = 4,
	    .want = { 2, 0, 3, 1 } },
};

Test(milter_edits, order_table)
{
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		size_t order[8] = { 99, 99, 99, 99, 99, 99, 99, 99 };
		cr_assert_eq(milter_edits_order(cases[c].edits, cases[c].n, order, 8), 0, "%s",
		    cases[c].label);
		for (size_t i = 0; i < cases[c].n; i++)
			cr_assert_eq(order[i], cases[c].want[i],
			    "%s: position %zu: got %zu want %zu", cases[c].label, i, order[i],
			    cases[c].want[i]);
	}
}

Test(milter_edits, more_edits_than_room_is_an_error)
{
	struct moat_hdr_edit e[3] = { DEL("A", 1), DEL("A", 2), DEL("A", 3) };
	size_t order[2];

	cr_assert_eq(milter_edits_order(e, 3, order, 2), -1);
}
