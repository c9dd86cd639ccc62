/*
 * test_verdict.c - verdict combination order, reply formatting, text sanitising, log escaping.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "log.h"
#include "policy.h"

Test(verdict, more_severe_wins_and_first_wins_ties)
{
	static const enum moat_action order[] = { MOAT_CONTINUE, MOAT_ACCEPT, MOAT_QUARANTINE,
		MOAT_DISCARD, MOAT_TEMPFAIL, MOAT_REJECT };
	const size_t n = sizeof(order) / sizeof(order[0]);

	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < n; j++) {
			struct moat_verdict a, b;
			moat_verdict_set(&a, order[i], 250, "2.0.0", "first", "a");
			moat_verdict_set(&b, order[j], 250, "2.0.0", "second", "b");
			moat_verdict_combine(&a, &b);
			cr_assert_eq(a.action, order[i > j ? i : j]);
			cr_assert_str_eq(a.reason, j > i ? "second" : "first", "%zu %zu", i, j);
		}
	}
}

Test(verdict, close_survives_combination)
{
	struct moat_verdict a, b;

	moat_verdict_set(&a, MOAT_REJECT, 550, "5.7.1", "x", "no");
	moat_verdict_set(&b, MOAT_TEMPFAIL, 421, "4.7.0", "y", "bye");
	b.close = true;
	moat_verdict_combine(&a, &b);
	cr_assert_eq(a.action, MOAT_REJECT);
	cr_assert(a.close);
}

Test(verdict, reply_format)
{
	struct moat_verdict v;
	char out[512];

	moat_verdict_set(&v, MOAT_REJECT, 550, "5.7.1", "dmarc", "Rejected by DMARC policy for %s",
	    "example.com");
	cr_assert_eq(moat_verdict_format_reply(&v, out, sizeof(out)), 52);
	cr_assert_str_eq(out, "550 5.7.1 Rejected by DMARC policy for example.com\r\n");
	moat_verdict_set(&v, MOAT_TEMPFAIL, 451, "", "x", "Try later");
	moat_verdict_format_reply(&v, out, sizeof(out));
	cr_assert_str_eq(out, "451 Try later\r\n");
	cr_assert_eq(moat_verdict_format_reply(&v, out, 8), 0,
	    "too small: nothing, not a cut reply");
	moat_verdict_continue(&v);
	cr_assert_eq(moat_verdict_format_reply(&v, out, sizeof(out)), 0);
}

Test(verdict, text_cannot_inject_a_line)
{
	struct moat_verdict v;
	char out[512];

	moat_verdict_set(&v, MOAT_REJECT, 550, "5.7.1", "x", "bad %s", "a\r\n250 ok\x7f\x80");
	moat_verdict_format_reply(&v, out, sizeof(out));
	cr_assert_str_eq(out, "550 5.7.1 bad a??250 ok??\r\n");
}

Test(log, escape_controls_quotes_and_8bit)
{
	char out[64];

	cr_assert_str_eq(moat_log_escape("a b\\\"\r\n\xff", 8, out, sizeof(out)),
	    "a b\\x5c\\x22\\x0d\\x0a\\xff");
	cr_assert_str_eq(moat_log_escape("a\0b", 3, out, sizeof(out)), "a\\x00b");
}

Test(log, escape_truncation_is_marked)
{
	char out[8];

	cr_assert_str_eq(moat_log_escape("abcdefghijkl", 12, out, sizeof(out)), "abcd...");
	cr_assert_str_eq(moat_log_escape("\x01\x02\x03", 3, out, sizeof(out)), "\\x01...");
	cr_assert_str_eq(moat_log_escape("abc", 3, out, sizeof(out)), "abc");
}
