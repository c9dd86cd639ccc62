/*
 * test_greylist.c - greylisting without a daemon: the triplet's rule (new, early, passed, a
 * window that ran out), the store keys (networks cut to their prefix, case-folded addresses, no
 * address in a key), the embedded store with its network pass, the verdicts, the Redis script's
 * call and the parsing of its reply, a Redis that cannot be reached (open and closed), and the
 * configuration keys.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "greylist.h"
#include "ratelimit.h"
#include "ratelimit_redis.h"
#include "rl_fixture.h"

#define MS 1000ULL /* the limiter's clock counts microseconds */

static const struct moat_gl_times times = { 300000, 4 * 3600000ULL, 35 * 86400000ULL };

/* ---- the rule ---- */

struct step_case {
	const char *label;
	bool seen;
	uint64_t first_ms, now_ms;
	enum moat_gl_result want;
	uint64_t wait_ms, first_after;
};

static const struct step_case step_cases[] = {
	{ "first attempt", false, 0, 1000, MOAT_GL_NEW, 300000, 1000 },
	{ "retry at once", true, 1000, 1000, MOAT_GL_EARLY, 300000, 1000 },
	{ "retry a second early", true, 1000, 300000, MOAT_GL_EARLY, 1000, 1000 },
	{ "retry at the delay", true, 1000, 301000, MOAT_GL_PASSED, 0, 1000 },
	{ "retry within the window", true, 1000, 3 * 3600000ULL, MOAT_GL_PASSED, 0, 1000 },
	{ "last moment of the window", true, 1000, 1000 + 300000 + 4 * 3600000ULL - 1,
	    MOAT_GL_PASSED, 0, 1000 },
	{ "window ran out: starts over", true, 1000, 1000 + 300000 + 4 * 3600000ULL, MOAT_GL_NEW,
	    300000, 1000 + 300000 + 4 * 3600000ULL },
	{ "clock behind the first attempt", true, 5000, 4000, MOAT_GL_NEW, 300000, 4000 },
};

Test(greylist, step_table)
{
	for (size_t i = 0; i < sizeof(step_cases) / sizeof(step_cases[0]); i++) {
		const struct step_case *c = &step_cases[i];
		uint64_t first = c->first_ms, wait = 42;
		enum moat_gl_result r =
		    moat_greylist_step(&times, c->seen, &first, c->now_ms, &wait);

		cr_assert_eq(r, c->want, "%s: %s", c->label, moat_greylist_result_name(r));
		cr_assert_eq(wait, c->wait_ms, "%s: wait %llu", c->label, (unsigned long long)wait);
		cr_assert_eq(first, c->first_after, "%s: first", c->label);
	}
}

/* ---- the keys ---- */

static void
keys(const char *ip, unsigned p4, unsigned p6, const char *sender, const char *rcpt,
    struct moat_gl_keys *k)
{
	struct moat_addr a;

	cr_assert_eq(moat_addr_parse(ip, &a), 0, "%s", ip);
	cr_assert_eq(moat_greylist_keys(NULL, &a, p4, p6, sender, rcpt, k), 0, "%s", ip);
}

/* hex_key - TAG followed by 32 lower-case hex digits, nothing else. */
static bool
hex_key(const char *key, size_t len, const char *tag)
{
	if (len != strlen(tag) + 32 || strlen(key) != len || strncmp(key, tag, strlen(tag)) != 0)
		return false;
	return strspn(key + strlen(tag), "0123456789abcdef") == 32;
}

struct key_case {
	const char *label;
	const char *ip1, *sender1, *rcpt1;
	const char *ip2, *sender2, *rcpt2;
	unsigned p4, p6;
	bool same_net, same_triplet;
};

static const struct key_case key_cases[] = {
	{ "same /24", "192.0.2.10", "a@example.org", "b@example.net", "192.0.2.200",
	    "a@example.org", "b@example.net", 24, 64, true, true },
	{ "next /24", "192.0.2.10", "a@example.org", "b@example.net", "192.0.3.10", "a@example.org",
	    "b@example.net", 24, 64, false, false },
	{ "/32 tells hosts apart", "192.0.2.10", "a@example.org", "b@example.net", "192.0.2.11",
	    "a@example.org", "b@example.net", 32, 64, false, false },
	{ "sender case", "192.0.2.10", "A@Example.ORG", "b@example.net", "192.0.2.10",
	    "a@example.org", "B@EXAMPLE.net", 24, 64, true, true },
	{ "other recipient", "192.0.2.10", "a@example.org", "b@example.net", "192.0.2.10",
	    "a@example.org", "c@example.net", 24, 64, true, false },
	{ "where sender ends", "192.0.2.10", "ab", "c", "192.0.2.10", "a", "bc", 24, 64, true,
	    false },
	{ "null sender", "192.0.2.10", "", "b@example.net", "192.0.2.10", "a@example.org",
	    "b@example.net", 24, 64, true, false },
	{ "same /64", "2001:db8:1:2::10", "a@example.org", "b@example.net", "2001:db8:1:2:ff::1",
	    "a@example.org", "b@example.net", 24, 64, true, true },
	{ "next /64", "2001:db8:1:2::10", "a@example.org", "b@example.net", "2001:db8:1:3::10",
	    "a@example.org", "b@example.net", 24, 64, false, false },
	{ "/48", "2001:db8:1:2::10", "a@example.org", "b@example.net", "2001:db8:1:3::10",
	    "a@example.org", "b@example.net", 24, 48, true, true },
	{ "v4 /0 is not v6 ::/0", "192.0.2.10", "a@example.org", "b@example.net",
	    "::", "a@example.org", "b@example.net", 0, 0, false, false },
};

Test(greylist, keys_table)
{
	for (size_t i = 0; i < sizeof(key_cases) / sizeof(key_cases[0]); i++) {
		const struct key_case *c = &key_cases[i];
		struct moat_gl_keys k1, k2;

		keys(c->ip1, c->p4, c->p6, c->sender1, c->rcpt1, &k1);
		keys(c->ip2, c->p4, c->p6, c->sender2, c->rcpt2, &k2);
		cr_assert(hex_key(k1.net, k1.netlen, "gn:"), "%s: %s", c->label, k1.net);
		cr_assert(hex_key(k1.triplet, k1.tripletlen, "gt:"), "%s: %s", c->label,
		    k1.triplet);
		cr_assert_eq(strcmp(k1.net, k2.net) == 0, c->same_net, "%s: network", c->label);
		cr_assert_eq(strcmp(k1.triplet, k2.triplet) == 0, c->same_triplet, "%s: triplet",
		    c->label);
	}
}

Test(greylist, keys_refuse_a_prefix_out_of_range)
{
	struct moat_addr a;
	struct moat_gl_keys k;

	cr_assert_eq(moat_addr_parse("192.0.2.10", &a), 0);
	cr_assert_eq(moat_greylist_keys(NULL, &a, 33, 64, "a", "b", &k), -1);
	cr_assert_eq(moat_greylist_keys(NULL, &a, 24, 129, "a", "b", &k), -1);
}

/* ---- the embedded store ---- */

/* ask - the store's answer for the triplet at time CLK, checked against WANT and WAIT_MS. */
static void
ask(struct moat_ratelimit *rl, const char *ip, const char *sender, const char *rcpt,
    enum moat_gl_result want, uint64_t wait_ms, const char *what)
{
	struct moat_gl_keys k;
	struct moat_gl_answer a;

	keys(ip, 24, 64, sender, rcpt, &k);
	moat_greylist_check(rl, &k, &times, "TEST", &a);
	cr_assert_eq(a.result, want, "%s: %s", what, moat_greylist_result_name(a.result));
	cr_assert_eq(a.wait_ms, wait_ms, "%s: wait %llu", what, (unsigned long long)a.wait_ms);
}

Test(greylist, embedded_store_delay_pass_and_network)
{
	struct moattest_clock clk;
	struct moat_ratelimit *rl = moattest_rl_new(NULL, 0, &clk);

	ask(rl, "192.0.2.10", "a@example.org", "b@example.net", MOAT_GL_NEW, 300000, "first");
	clk.now += 100 * 1000 * MS;
	ask(rl, "192.0.2.10", "a@example.org", "b@example.net", MOAT_GL_EARLY, 200000, "early");
	clk.now += 200 * 1000 * MS;
	/* another host of the same /24 retries (a pool of outbound MTAs) */
	ask(rl, "192.0.2.77", "a@example.org", "b@example.net", MOAT_GL_PASSED, 0, "passed");
	/* the network is through: another sender and recipient are not delayed */
	ask(rl, "192.0.2.10", "x@example.com", "y@example.net", MOAT_GL_NET_PASSED, 0,
	    "network passed");
	ask(rl, "192.0.3.10", "x@example.com", "y@example.net", MOAT_GL_NEW, 300000,
	    "the next network is not");
	/* each message renews the pass: 30 days on, and 30 more, it holds */
	clk.now += 30 * 86400 * MS * 1000;
	ask(rl, "192.0.2.10", "x@example.com", "z@example.net", MOAT_GL_NET_PASSED, 0,
	    "renewed 30 days on");
	clk.now += 30 * 86400 * MS * 1000;
	ask(rl, "192.0.2.10", "x@example.com", "z@example.net", MOAT_GL_NET_PASSED, 0,
	    "renewed 60 days on");
	/* 35 days of silence: greylisted again */
	clk.now += 35 * 86400 * MS * 1000;
	ask(rl, "192.0.2.10", "x@example.com", "z@example.net", MOAT_GL_NEW, 300000,
	    "pass expired");
	moat_ratelimit_free(rl);
}

Test(greylist, embedded_store_window_runs_out)
{
	struct moattest_clock clk;
	struct moat_ratelimit *rl = moattest_rl_new(NULL, 0, &clk);

	ask(rl, "2001:db8::1", "a@example.org", "b@example.net", MOAT_GL_NEW, 300000, "first");
	clk.now += (300 + 4 * 3600) * 1000 * MS;
	ask(rl, "2001:db8::1", "a@example.org", "b@example.net", MOAT_GL_NEW, 300000,
	    "too late: starts over");
	clk.now += 300 * 1000 * MS;
	ask(rl, "2001:db8::1", "a@example.org", "b@example.net", MOAT_GL_PASSED, 0, "then passes");
	moat_ratelimit_free(rl);
}

/* ---- verdicts ---- */

Test(greylist, verdicts)
{
	struct moat_gl_answer a = { MOAT_GL_NEW, 300000, false };
	struct moat_verdict v;

	moat_verdict_continue(&v);
	moat_greylist_verdict(&a, &v);
	cr_assert_eq(v.action, MOAT_TEMPFAIL);
	cr_assert_eq(v.code, 451);
	cr_assert_str_eq(v.status, "4.7.1");
	cr_assert_str_eq(v.text, "Greylisted, try again in 300 seconds");
	cr_assert_not(v.close);
	a = (struct moat_gl_answer){ MOAT_GL_EARLY, 1001, false };
	moat_verdict_continue(&v);
	moat_greylist_verdict(&a, &v);
	cr_assert_str_eq(v.text, "Greylisted, try again in 2 seconds", "rounded up");
	a = (struct moat_gl_answer){ MOAT_GL_STORE_DOWN, 0, false };
	moat_verdict_continue(&v);
	moat_greylist_verdict(&a, &v);
	cr_assert_eq(v.code, 451);
	cr_assert_str_eq(v.status, "4.3.0");
	cr_assert_str_eq(v.reason, "greylist_store_down");
	for (int r = MOAT_GL_NET_PASSED; r <= MOAT_GL_PASSED; r++) {
		a = (struct moat_gl_answer){ (enum moat_gl_result)r, 0, false };
		moat_verdict_continue(&v);
		moat_greylist_verdict(&a, &v);
		cr_assert_eq(v.action, MOAT_CONTINUE, "%s", moat_greylist_result_name(a.result));
	}
}

/* ---- Redis: the call, its reply, and a server that cannot be reached ---- */

Test(greylist, redis_call_is_what_hiredis_formats)
{
	struct moat_gl_keys k;
	struct moat_rl_redis_call call;
	char net[80], triplet[80], *want = NULL;
	int len;

	keys("192.0.2.10", 24, 64, "a@example.org", "b@example.net", &k);
	snprintf(net, sizeof(net), "mx:%s", k.net);
	snprintf(triplet, sizeof(triplet), "mx:%s", k.triplet);
	cr_assert_eq(moat__rlredis_gl_call(&call, "mx:", NULL, &k, &times), 0);
	len = redisFormatCommandArgv(&want, 8,
	    (const char *[]){ "EVAL", moat_gl_redis_script, "2", net, triplet, "300000", "14400000",
		"3024000000" },
	    NULL);
	cr_assert_eq(call.len, (size_t)len);
	cr_assert_eq(memcmp(call.buf, want, call.len), 0, "bytes differ from hiredis's");
	free(want);
}

/* reply - an array reply of N integers (or one string, when STR is set) for the parser. */
struct reply_case {
	const char *label;
	int type; /* of the array, or REDIS_REPLY_ERROR */
	size_t n;
	long long ints[3];
	int elem_type;
	int rc;
	enum moat_gl_result result;
	uint64_t wait_ms;
};

static const struct reply_case reply_cases[] = {
	{ "new", REDIS_REPLY_ARRAY, 2, { 2, 300000 }, REDIS_REPLY_INTEGER, 0, MOAT_GL_NEW, 300000 },
	{ "early", REDIS_REPLY_ARRAY, 2, { 3, 17 }, REDIS_REPLY_INTEGER, 0, MOAT_GL_EARLY, 17 },
	{ "passed", REDIS_REPLY_ARRAY, 2, { 1, 0 }, REDIS_REPLY_INTEGER, 0, MOAT_GL_PASSED, 0 },
	{ "network", REDIS_REPLY_ARRAY, 2, { 0, 0 }, REDIS_REPLY_INTEGER, 0, MOAT_GL_NET_PASSED,
	    0 },
	{ "store_down is never the script's", REDIS_REPLY_ARRAY, 2, { 4, 0 }, REDIS_REPLY_INTEGER,
	    -1, 0, 0 },
	{ "negative result", REDIS_REPLY_ARRAY, 2, { -1, 0 }, REDIS_REPLY_INTEGER, -1, 0, 0 },
	{ "negative wait", REDIS_REPLY_ARRAY, 2, { 2, -5 }, REDIS_REPLY_INTEGER, -1, 0, 0 },
	{ "one element", REDIS_REPLY_ARRAY, 1, { 2 }, REDIS_REPLY_INTEGER, -1, 0, 0 },
	{ "three elements", REDIS_REPLY_ARRAY, 3, { 2, 0, 0 }, REDIS_REPLY_INTEGER, -1, 0, 0 },
	{ "strings", REDIS_REPLY_ARRAY, 2, { 0, 0 }, REDIS_REPLY_STRING, -1, 0, 0 },
	{ "an error", REDIS_REPLY_ERROR, 0, { 0 }, 0, -1, 0, 0 },
};

Test(greylist, redis_reply_table)
{
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
		const struct reply_case *c = &reply_cases[i];
		redisReply elems[3], *ptrs[3], top;
		struct moat_gl_answer a = { MOAT_GL_STORE_DOWN, 99, false };
		int rc;

		memset(&top, 0, sizeof(top));
		memset(elems, 0, sizeof(elems));
		top.type = c->type;
		top.elements = c->n;
		top.element = ptrs;
		for (size_t j = 0; j < c->n; j++) {
			ptrs[j] = &elems[j];
			elems[j].type = c->elem_type;
			elems[j].integer = c->ints[j];
			elems[j].str = (char *)"1";
			elems[j].len = 1;
		}
		rc = moat__rlredis_gl_reply(&top, &a);
		cr_assert_eq(rc, c->rc, "%s: rc %d", c->label, rc);
		if (rc == 0) {
			cr_assert_eq(a.result, c->result, "%s", c->label);
			cr_assert_eq(a.wait_ms, c->wait_ms, "%s", c->label);
		} else {
			cr_assert_eq(a.result, MOAT_GL_STORE_DOWN, "%s: untouched", c->label);
		}
	}
	cr_assert_eq(moat__rlredis_gl_reply(NULL, &(struct moat_gl_answer){ 0 }), -1, "no reply");
}

Test(greylist, redis_down_open_and_closed)
{
	/* Port 16399 on loopback: nothing listens there in this test (closed port, fast refusal). */
	struct moat_conf_override open_ov[] = {
		{ "ratelimit_store", "redis" },
		{ "ratelimit_redis", "127.0.0.1:16399" },
	};
	struct moat_conf_override closed_ov[] = {
		{ "ratelimit_store", "redis" },
		{ "ratelimit_redis", "127.0.0.1:16399" },
		{ "ratelimit_redis_failure", "closed" },
	};
	struct moattest_clock clk;
	struct moat_ratelimit *rl = moattest_rl_new(open_ov, 2, &clk);
	struct moat_gl_keys k;
	struct moat_gl_answer a;

	keys("192.0.2.10", 24, 64, "a@example.org", "b@example.net", &k);
	/* open: the embedded store greylists, and the answer says so */
	moat_greylist_check(rl, &k, &times, "TEST", &a);
	cr_assert_eq(a.result, MOAT_GL_NEW);
	cr_assert(a.fallback);
	clk.now += 300 * 1000 * MS;
	moat_greylist_check(rl, &k, &times, "TEST", &a);
	cr_assert_eq(a.result, MOAT_GL_PASSED, "%s", moat_greylist_result_name(a.result));
	moat_ratelimit_free(rl);

	rl = moattest_rl_new(closed_ov, 3, &clk);
	moat_greylist_check(rl, &k, &times, "TEST", &a);
	cr_assert_eq(a.result, MOAT_GL_STORE_DOWN);
	cr_assert_not(a.fallback);
	moat_ratelimit_free(rl);
}

/* ---- the configuration keys ---- */

struct conf_case {
	const char *label;
	const char *key, *value;
	bool ok;
};

static const struct conf_case conf_cases[] = {
	{ "mode all", "greylist", "all", true },
	{ "mode selective", "greylist", "selective", true },
	{ "unknown mode", "greylist", "some", false },
	{ "delay 2s", "greylist_delay", "2s", true },
	{ "delay under a second", "greylist_delay", "500ms", false },
	{ "delay over a day", "greylist_delay", "25h", false },
	{ "window 7d", "greylist_retry_window", "7d", true },
	{ "window 8d", "greylist_retry_window", "8d", false },
	{ "pass ttl 49d", "greylist_pass_ttl", "49d", true },
	{ "pass ttl 50d", "greylist_pass_ttl", "50d", false },
	{ "prefix v4 32", "greylist_net_prefix_v4", "32", true },
	{ "prefix v4 33", "greylist_net_prefix_v4", "33", false },
	{ "prefix v6 128", "greylist_net_prefix_v6", "128", true },
	{ "prefix v6 8", "greylist_net_prefix_v6", "8", false },
	{ "allowlist threshold -1", "dnsbl_allowlist_threshold", "-1", true },
	{ "allowlist threshold 1", "dnsbl_allowlist_threshold", "1", false },
};

Test(greylist, conf_table)
{
	for (size_t i = 0; i < sizeof(conf_cases) / sizeof(conf_cases[0]); i++) {
		const struct conf_case *c = &conf_cases[i];
		struct moat_conf_override ov = { c->key, c->value };
		char err[MOAT_CONF_ERR_MAX] = "";
		struct moat_conf *conf = moat_conf_load(NULL, &ov, 1, err, sizeof(err));

		cr_assert_eq(conf != NULL, c->ok, "%s: %s", c->label, err);
		if (conf == NULL)
			cr_assert(strstr(err, c->key) != NULL, "%s: %s", c->label, err);
		moat_conf_unref(conf);
	}
}

Test(greylist, conf_defaults)
{
	char err[MOAT_CONF_ERR_MAX] = "";
	struct moat_conf *conf = moat_conf_load(NULL, NULL, 0, err, sizeof(err));

	cr_assert_not_null(conf, "%s", err);
	cr_assert_eq(conf->greylist, MOAT_GREYLIST_NO);
	cr_assert_eq(conf->greylist_delay, 300000u);
	cr_assert_eq(conf->greylist_retry_window, 4 * 3600000u);
	cr_assert_eq(conf->greylist_pass_ttl, 35 * 86400000u);
	cr_assert_eq(conf->greylist_net_prefix_v4, 24u);
	cr_assert_eq(conf->greylist_net_prefix_v6, 64u);
	cr_assert_eq(conf->dnsbl_allowlist_threshold, 0);
	moat_conf_unref(conf);
}
