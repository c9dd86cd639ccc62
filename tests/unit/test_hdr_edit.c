/*
 * test_hdr_edit.c - the core's header edits applied to a held message: insertions on top (first
 * edit topmost), the index-th field of a name deleted with its folded lines (the name compared
 * without case but with the spaces before the colon, as the core counts them), nothing edited in the body, fresh dot-stuffing of
 * everything that goes out, and a header section the core's reader refuses never going out
 * whole. Every case is also fed one byte at a time, since a spooled message arrives in
 * arbitrary pieces.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "hdr_edit.h"

#define DEL(n, i) \
	{ \
		MOAT_HDR_DELETE, (char *)(n), NULL, (i) \
	}
#define INS(n, v) \
	{ \
		MOAT_HDR_INSERT_TOP, (char *)(n), (char *)(v), 0 \
	}

struct out {
	char buf[4096];
	size_t len;
};

static void
collect(void *arg, const char *p, size_t n)
{
	struct out *o = arg;

	cr_assert_leq(o->len + n, sizeof(o->buf));
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

struct edit_case {
	const char *label;
	struct moat_hdr_edit edits[6];
	size_t n;
	const char *in;
	const char *want;
	bool refused; /* the header reader refuses it: px_edit_end is -1 */
};

static const struct edit_case cases[] = {
	{ .label = "no edits: bytes as they were, dot-stuffed",
	    .in = "Subject: a\r\n\r\n.hidden\r\n..two\r\nx.\r\n",
	    .want = "Subject: a\r\n\r\n..hidden\r\n...two\r\nx.\r\n" },
	{ .label = "insert on top",
	    .edits = { INS("Authentication-Results", "mx.example; spf=pass") },
	    .n = 1,
	    .in = "From: a@b\r\n\r\nhi\r\n",
	    .want = "Authentication-Results: mx.example; spf=pass\r\nFrom: a@b\r\n\r\nhi\r\n" },
	{ .label = "two inserts: the first edit on top; a folded value keeps its folding",
	    .edits = { INS("DKIM-Signature", "v=1;\r\n\tb=x"),
		INS("Authentication-Results", "mx; none") },
	    .n = 2,
	    .in = "From: a@b\r\n\r\n",
	    .want =
		"DKIM-Signature: v=1;\r\n\tb=x\r\nAuthentication-Results: mx; none\r\nFrom: a@b\r\n\r\n" },
	{ .label = "the second of three deleted, with its folded lines",
	    .edits = { DEL("Authentication-Results", 2) },
	    .n = 1,
	    .in =
		"Authentication-Results: other; spf=pass\r\nauthentication-results: mx;\r\n\tdkim=pass\r\n"
		" (folded)\r\nAuthentication-Results: third; x\r\nSubject: s\r\n\r\nbody\r\n",
	    .want =
		"Authentication-Results: other; spf=pass\r\nAuthentication-Results: third; x\r\n"
		"Subject: s\r\n\r\nbody\r\n" },
	{ .label = "the space-before-colon variant is its own name",
	    .edits = { DEL("Authentication-Results ", 1), DEL("Authentication-Results", 2) },
	    .n = 2,
	    .in = "Authentication-Results: keep1; x\r\nAuthentication-Results : mx; forged\r\n"
		  "Authentication-Results: mx; forged2\r\n\r\n",
	    .want = "Authentication-Results: keep1; x\r\n\r\n" },
	{ .label = "deletes plus insert (the core's A-R set)",
	    .edits = { DEL("Authentication-Results", 2), DEL("Authentication-Results", 1),
		INS("Authentication-Results", "mx; dmarc=pass") },
	    .n = 3,
	    .in = "Authentication-Results: mx; a\r\nAuthentication-Results: mx; b\r\nTo: t\r\n\r\n",
	    .want = "Authentication-Results: mx; dmarc=pass\r\nTo: t\r\n\r\n" },
	{ .label = "a look-alike in the body is never touched",
	    .edits = { DEL("Authentication-Results", 2) },
	    .n = 1,
	    .in = "Authentication-Results: mx; a\r\n\r\nAuthentication-Results: mx; b\r\n",
	    .want = "Authentication-Results: mx; a\r\n\r\nAuthentication-Results: mx; b\r\n" },
	{ .label = "a line without a colon is refused: nothing past the last field goes out",
	    .edits = { DEL("Authentication-Results", 1) },
	    .n = 1,
	    .in = "Subject: s\r\nnot a field\r\nAuthentication-Results: mx; a\r\n",
	    .want = "Subject: s\r\n",
	    .refused = true },
	{ .label = "a first line that is folding is refused",
	    .edits = { DEL("Authentication-Results", 1) },
	    .n = 1,
	    .in = " x\r\nAuthentication-Results: mx; a\r\n",
	    .want = "",
	    .refused = true },
	{ .label = "a line starting with a colon is refused",
	    .edits = { DEL("A", 1) },
	    .n = 1,
	    .in = ":x\r\nA: 1\r\n",
	    .want = "",
	    .refused = true },
	{ .label = "a name folded before its colon is refused",
	    .edits = { DEL("Authentication-Results", 1) },
	    .n = 1,
	    .in = "Authentication-Results: mx; a\r\nAuthentication-Results\r\n : mx; b\r\n\r\n",
	    .want = "",
	    .refused = true },
	{ .label = "a header-only message without the empty line",
	    .edits = { DEL("X", 1), INS("Y", "1") },
	    .n = 2,
	    .in = "X: a\r\nZ: b\r\n",
	    .want = "Y: 1\r\nZ: b\r\n" },
	{ .label = "empty message: only the inserted field",
	    .edits = { INS("Y", "1") },
	    .n = 1,
	    .in = "",
	    .want = "Y: 1\r\n" },
	{ .label = "a field name longer than any target is kept whole",
	    .edits = { DEL("X", 1) },
	    .n = 1,
	    .in =
		"Xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: v\r\nX: drop\r\n\r\n",
	    .want =
		"Xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: v\r\n\r\n" },
	{ .label = "a dot at the start of a kept header line is stuffed",
	    .in = ".X: a\r\n\r\n.\r\n",
	    .want = "..X: a\r\n\r\n..\r\n" },
};

Test(hdr_edit, table)
{
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const struct edit_case *k = &cases[c];
		struct out whole = { .len = 0 }, bytes = { .len = 0 };
		static struct px_edit e;
		size_t inlen = strlen(k->in);

		cr_assert_eq(px_edit_message(k->edits, k->n, k->in, inlen, collect, &whole),
		    k->refused ? -1 : 0, "%s", k->label);
		cr_assert_eq(whole.len, strlen(k->want), "%s: got [%.*s]", k->label, (int)whole.len,
		    whole.buf);
		cr_assert_eq(memcmp(whole.buf, k->want, whole.len), 0, "%s: got [%.*s]", k->label,
		    (int)whole.len, whole.buf);
		cr_assert_eq(px_edit_begin(&e, k->edits, k->n, collect, &bytes), 0);
		for (size_t i = 0; i < inlen; i++)
			px_edit_feed(&e, k->in + i, 1);
		cr_assert_eq(px_edit_end(&e), k->refused ? -1 : 0, "%s: byte by byte", k->label);
		cr_assert_eq(bytes.len, whole.len, "%s: byte by byte", k->label);
		cr_assert_eq(memcmp(bytes.buf, whole.buf, whole.len), 0, "%s: byte by byte",
		    k->label);
	}
}

Test(hdr_edit, edits_we_cannot_apply_are_refused)
{
	struct moat_hdr_edit bad[2] = { INS("A", NULL), DEL(NULL, 1) };
	static struct moat_hdr_edit many[PX_EDIT_MAX + 1];
	struct out o = { .len = 0 };

	cr_assert_eq(px_edit_message(bad, 1, "", 0, collect, &o), -1);
	cr_assert_eq(px_edit_message(bad + 1, 1, "", 0, collect, &o), -1);
	for (size_t i = 0; i < PX_EDIT_MAX + 1; i++)
		many[i] = (struct moat_hdr_edit)DEL("A", 1);
	cr_assert_eq(px_edit_message(many, PX_EDIT_MAX + 1, "", 0, collect, &o), -1);
	cr_assert_eq(o.len, 0, "nothing emitted");
}
