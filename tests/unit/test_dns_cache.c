/*
 * test_dns_cache.c - the in-process DNS answer cache (src/dns_cache.c): hits copy the answer,
 * TTLs are honoured and capped (positive and RFC 2308 negative), failures and TTL 0 are never
 * stored, oversized answers are not cached, and the entry and byte bounds hold under a flood of
 * distinct names. Time is passed in, so nothing here sleeps.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "dns_cache.h"

#define T0 1000000LL /* an arbitrary monotonic "now", in ms */

/* one_txt - an answer of one TXT record TEXT with STATUS. */
static struct moat_dns_answer
one_txt(enum moat_dns_status status, const char *text)
{
	static struct moat_dns_rr rr;
	struct moat_dns_answer a = { .status = status };

	if (text != NULL) {
		rr = (struct moat_dns_rr){ .len = strlen(text), .data = (char *)text };
		a.rr = &rr;
		a.n = 1;
	}
	return a;
}

Test(dns_cache, hit_is_a_copy)
{
	struct moat__dns_cache *c = moat__dns_cache_new();
	struct moat_dns_answer in = one_txt(MOAT_DNS_OK, "v=spf1 -all"), out;
	struct moat_dns_cache_stats st;

	cr_assert_not_null(c);
	in.secure = true;
	cr_expect_not(moat__dns_cache_get(c, "a.test", MOAT_DNS_TXT, T0, &out), "empty cache");
	moat__dns_cache_put(c, "a.test", MOAT_DNS_TXT, &in, 60, T0);
	cr_assert(moat__dns_cache_get(c, "a.test", MOAT_DNS_TXT, T0 + 1000, &out));
	cr_expect_eq(out.status, MOAT_DNS_OK);
	cr_expect(out.secure);
	cr_assert_eq(out.n, 1u);
	cr_expect_eq(out.rr[0].len, 11u);
	cr_expect_str_eq(out.rr[0].data, "v=spf1 -all");
	cr_expect_neq(out.rr[0].data, in.rr[0].data, "a copy, not the stored bytes");
	moat_dns_answer_clear(&out);
	cr_expect_not(moat__dns_cache_get(c, "a.test", MOAT_DNS_A, T0, &out), "type is in the key");
	cr_expect_not(moat__dns_cache_get(c, "b.test", MOAT_DNS_TXT, T0, &out),
	    "name is in the key");
	moat__dns_cache_stats(c, &st);
	cr_expect_eq(st.hits, 1u);
	cr_expect_eq(st.stored, 1u);
	cr_expect_eq(st.entries, 1u);
	cr_expect_eq(st.bytes, 12u);
	moat__dns_cache_free(c);
}

struct ttl_case {
	const char *label;
	enum moat_dns_status status;
	unsigned ttl;
	long long
	    live_ms; /* still a hit at T0 + live_ms - 1, gone at T0 + live_ms; 0: never stored */
};

static const struct ttl_case ttl_cases[] = {
	{ "positive answer lives for its TTL", MOAT_DNS_OK, 30, 30000 },
	{ "positive TTL capped at MOAT_DNS_CACHE_MAX_TTL", MOAT_DNS_OK, 86400 * 7,
	    MOAT_DNS_CACHE_MAX_TTL * 1000LL },
	{ "NXDOMAIN lives for the negative TTL (RFC 2308)", MOAT_DNS_NXDOMAIN, 20, 20000 },
	{ "NODATA lives for the negative TTL (RFC 2308)", MOAT_DNS_NODATA, 45, 45000 },
	{ "negative TTL capped at MOAT_DNS_CACHE_MAX_NEG_TTL", MOAT_DNS_NXDOMAIN, 86400,
	    MOAT_DNS_CACHE_MAX_NEG_TTL * 1000LL },
	{ "TTL 0 is not cached", MOAT_DNS_OK, 0, 0 },
	{ "TEMPFAIL is never cached", MOAT_DNS_TEMPFAIL, 300, 0 },
	{ "PERMFAIL is never cached", MOAT_DNS_PERMFAIL, 300, 0 },
};

Test(dns_cache, ttl_table)
{
	for (size_t i = 0; i < sizeof(ttl_cases) / sizeof(ttl_cases[0]); i++) {
		const struct ttl_case *tc = &ttl_cases[i];
		struct moat__dns_cache *c = moat__dns_cache_new();
		struct moat_dns_answer in = one_txt(tc->status,
					   tc->status == MOAT_DNS_OK ? "record" : NULL),
				       out;
		bool hit;

		cr_assert_not_null(c);
		moat__dns_cache_put(c, "ttl.test", MOAT_DNS_TXT, &in, tc->ttl, T0);
		hit = moat__dns_cache_get(c, "ttl.test", MOAT_DNS_TXT,
		    T0 + (tc->live_ms ? tc->live_ms - 1 : 0), &out);
		cr_expect_eq(hit, tc->live_ms > 0, "%s: hit before expiry", tc->label);
		if (hit) {
			cr_expect_eq(out.status, tc->status, "%s: status", tc->label);
			cr_expect_eq(out.n, in.n, "%s: records", tc->label);
			moat_dns_answer_clear(&out);
			cr_expect_not(moat__dns_cache_get(c, "ttl.test", MOAT_DNS_TXT,
					  T0 + tc->live_ms, &out),
			    "%s: gone at expiry", tc->label);
		}
		moat__dns_cache_free(c);
	}
}

Test(dns_cache, oversized_answer_not_cached)
{
	static char big[MOAT_DNS_CACHE_ENTRY_BYTES + 1];
	struct moat__dns_cache *c = moat__dns_cache_new();
	struct moat_dns_answer in, out;

	cr_assert_not_null(c);
	memset(big, 'x', sizeof(big) - 1);
	in = one_txt(MOAT_DNS_OK, big);
	moat__dns_cache_put(c, "big.test", MOAT_DNS_TXT, &in, 60, T0);
	cr_expect_not(moat__dns_cache_get(c, "big.test", MOAT_DNS_TXT, T0, &out));
	big[MOAT_DNS_CACHE_ENTRY_BYTES - 1] = '\0'; /* with its NUL, exactly the limit */
	in = one_txt(MOAT_DNS_OK, big);
	moat__dns_cache_put(c, "big.test", MOAT_DNS_TXT, &in, 60, T0);
	cr_expect(moat__dns_cache_get(c, "big.test", MOAT_DNS_TXT, T0, &out));
	moat_dns_answer_clear(&out);
	moat__dns_cache_free(c);
}

/* A flood of distinct names (SPF macros and DKIM selectors are chosen by senders) stays within
 * the entry and byte bounds, and recently used entries survive it. */
Test(dns_cache, bounded_under_a_flood)
{
	static char rec[8000];
	struct moat__dns_cache *c = moat__dns_cache_new();
	struct moat_dns_answer small = one_txt(MOAT_DNS_OK, "keep me"), in, out;
	struct moat_dns_cache_stats st;
	char name[64];

	cr_assert_not_null(c);
	memset(rec, 'r', sizeof(rec) - 1);
	moat__dns_cache_put(c, "keep.test", MOAT_DNS_TXT, &small, 600, T0);
	for (int i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "n%d.flood.test", i);
		in = one_txt(MOAT_DNS_OK, i % 2 ? rec : "short");
		moat__dns_cache_put(c, name, MOAT_DNS_TXT, &in, 600, T0);
		if (i % 8 == 0) { /* keep.test is in use all along */
			cr_assert(moat__dns_cache_get(c, "keep.test", MOAT_DNS_TXT, T0, &out),
			    "lost at %d", i);
			moat_dns_answer_clear(&out);
		}
		if (i % 100 != 99)
			continue;
		moat__dns_cache_stats(c, &st);
		cr_assert_leq(st.entries, (size_t)MOAT_DNS_CACHE_SHARDS * MOAT_DNS_CACHE_SLOTS);
		cr_assert_leq(st.bytes, (size_t)MOAT_DNS_CACHE_SHARDS * MOAT_DNS_CACHE_SHARD_BYTES);
	}
	cr_expect_eq(st.stored, 20001u);
	cr_expect_gt(st.entries, 100u, "the cache is used, not emptied");
	snprintf(name, sizeof(name), "n%d.flood.test", 19999);
	cr_expect(moat__dns_cache_get(c, name, MOAT_DNS_TXT, T0, &out),
	    "the newest entry is there");
	moat_dns_answer_clear(&out);
	moat__dns_cache_free(c);
}

/* A second put of the same key replaces the first (one entry, the new answer). */
Test(dns_cache, put_replaces)
{
	struct moat__dns_cache *c = moat__dns_cache_new();
	struct moat_dns_answer a = one_txt(MOAT_DNS_OK, "old"), out;
	struct moat_dns_cache_stats st;

	cr_assert_not_null(c);
	moat__dns_cache_put(c, "r.test", MOAT_DNS_TXT, &a, 60, T0);
	a = one_txt(MOAT_DNS_OK, "newer");
	moat__dns_cache_put(c, "r.test", MOAT_DNS_TXT, &a, 60, T0);
	cr_assert(moat__dns_cache_get(c, "r.test", MOAT_DNS_TXT, T0, &out));
	cr_expect_str_eq(out.rr[0].data, "newer");
	moat_dns_answer_clear(&out);
	moat__dns_cache_stats(c, &st);
	cr_expect_eq(st.entries, 1u);
	cr_expect_eq(st.bytes, 6u);
	moat__dns_cache_free(c);
}
