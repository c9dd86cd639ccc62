/*
 * test_ratelimit.c - the rate limiter without Redis: value parsing, bucket arithmetic (burst,
 * refill, clock jumps both ways), eviction, keys and verdicts per event, allow/deny lists,
 * log-only limits, reload, and the sharded store under threads.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "ratelimit.h"
#include "ratelimit_redis.h"
#include "rl_fixture.h"

#define SEC 1000000ULL

/* ---- parsing ---- */

struct parse_case {
	const char *label;
	const char *text;
	int rc;
	unsigned count;
	uint64_t period_ms;
	int action;
};

static const struct parse_case parse_cases[] = {
	{ "plain", "20/60s", 0, 20, 60000, -1 },
	{ "bare seconds", "5/30", 0, 5, 30000, -1 },
	{ "minutes", "100/5m", 0, 100, 300000, -1 },
	{ "hours", "1000/1h", 0, 1000, 3600000, -1 },
	{ "day", "1/1d", 0, 1, 86400000, -1 },
	{ "milliseconds", "3/1500ms", 0, 3, 1500, -1 },
	{ "log only", "20/60s log", 0, 20, 60000, MOAT_RL_LOG_ONLY },
	{ "enforce", "20/60s enforce", 0, 20, 60000, MOAT_RL_ENFORCE },
	{ "empty is off", "", 0, 0, 0, -1 },
	{ "off", "off", 0, 0, 0, -1 },
	{ "zero", "0", 0, 0, 0, -1 },
	{ "zero count", "0/60s", -1, 0, 0, -1 },
	{ "no period", "20", -1, 0, 0, -1 },
	{ "no count", "/60s", -1, 0, 0, -1 },
	{ "negative", "-1/60s", -1, 0, 0, -1 },
	{ "period too short", "5/999ms", -1, 0, 0, -1 },
	{ "period too long", "5/8d", -1, 0, 0, -1 },
	{ "count too big", "1000001/60s", -1, 0, 0, -1 },
	{ "huge count", "99999999999999999999/60s", -1, 0, 0, -1 },
	{ "bad unit", "5/60x", -1, 0, 0, -1 },
	{ "bad action", "5/60s drop", -1, 0, 0, -1 },
};

Test(ratelimit, parse_limit_table)
{
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct moat_rl_limit lim;
		char err[256] = "";
		int rc = moat_ratelimit_parse_limit(c->text, &lim, err, sizeof(err));

		cr_assert_eq(rc, c->rc, "%s: rc %d (%s)", c->label, rc, err);
		if (rc == 0) {
			cr_assert_eq(lim.count, c->count, "%s: count %u", c->label, lim.count);
			cr_assert_eq(lim.period_ms, c->period_ms, "%s: period", c->label);
			cr_assert_eq(lim.action, c->action, "%s: action", c->label);
		} else {
			cr_assert_neq(err[0], '\0', "%s: no message", c->label);
		}
	}
}

Test(ratelimit, config_key_refuses_bad_value)
{
	struct moat_conf_override ov = { "ratelimit_conn_per_ip", "20/forever" };
	char err[MOAT_CONF_ERR_MAX] = "";
	struct moat_conf *conf = moat_conf_load(NULL, &ov, 1, err, sizeof(err));

	cr_assert_null(conf);
	cr_assert(strstr(err, "ratelimit_conn_per_ip") != NULL, "%s", err);
	cr_assert(strstr(err, "20/forever") != NULL, "%s", err);
}

/* ---- the embedded store ---- */

/* take - one token of KEY at T seconds (10 tokens per 10 s unless given). */
static bool
take(struct moat_rlmem *m, const char *key, uint64_t now_us, uint64_t *retry)
{
	uint64_t r;
	return moat_rlmem_take(m, key, strlen(key), SEC, 10 * SEC, 1, now_us, retry ? retry : &r);
}

Test(ratelimit, burst_then_refill)
{
	struct moat_rlmem *m = moat_rlmem_new(1024);
	uint64_t t0 = 1000 * SEC, retry = 0;

	for (int i = 0; i < 10; i++)
		cr_assert(take(m, "k", t0, NULL), "burst token %d", i);
	cr_assert_not(take(m, "k", t0, &retry), "11th at once");
	cr_assert_eq(retry, SEC, "retry after one interval: %llu", (unsigned long long)retry);
	cr_assert_not(take(m, "k", t0 + SEC - 1, &retry), "one microsecond early");
	cr_assert_eq(retry, 1);
	cr_assert(take(m, "k", t0 + SEC, NULL), "one token back after 1 s");
	cr_assert_not(take(m, "k", t0 + SEC, NULL), "only one");
	/* 3.5 s later: three whole tokens back (the half is kept for later). */
	for (int i = 0; i < 3; i++)
		cr_assert(take(m, "k", t0 + 4 * SEC + SEC / 2, NULL), "refill %d", i);
	cr_assert_not(take(m, "k", t0 + 4 * SEC + SEC / 2, NULL));
	cr_assert(take(m, "k", t0 + 5 * SEC, NULL), "the half token completed");
	/* Another key is untouched. */
	cr_assert(take(m, "other", t0, NULL));
	moat_rlmem_free(m);
}

Test(ratelimit, cost_and_oversized_cost)
{
	struct moat_rlmem *m = moat_rlmem_new(1024);
	uint64_t retry;

	cr_assert(moat_rlmem_take(m, "c", 1, SEC, 10 * SEC, 7, 50 * SEC, &retry));
	cr_assert_not(moat_rlmem_take(m, "c", 1, SEC, 10 * SEC, 4, 50 * SEC, &retry));
	cr_assert_eq(retry, SEC, "four wanted, three left: one interval");
	cr_assert(moat_rlmem_take(m, "c", 1, SEC, 10 * SEC, 3, 50 * SEC, &retry));
	/* A cost larger than the burst can never pass, and must not overflow. */
	cr_assert_not(moat_rlmem_take(m, "d", 1, UINT64_MAX / 2, UINT64_MAX / 2, 4000000000u,
	    50 * SEC, &retry));
	moat_rlmem_free(m);
}

Test(ratelimit, clock_jumps)
{
	struct moat_rlmem *m = moat_rlmem_new(1024);
	uint64_t t0 = 5000 * SEC;

	for (int i = 0; i < 10; i++)
		cr_assert(take(m, "j", t0, NULL));
	/* Backwards by an hour: no refill, no crash, still empty... */
	cr_assert_not(take(m, "j", t0 - 3600 * SEC, NULL), "clock went back");
	/* ...and no penalty either: time stood still, so 1 s after t0 one token is back. */
	cr_assert(take(m, "j", t0 + SEC, NULL), "clock caught up");
	cr_assert_not(take(m, "j", t0 + SEC, NULL));
	/* Forwards by a day: the bucket is full, never fuller than the burst. */
	for (int i = 0; i < 10; i++)
		cr_assert(take(m, "j", t0 + 86400 * SEC, NULL), "after the jump %d", i);
	cr_assert_not(take(m, "j", t0 + 86400 * SEC, NULL), "burst is the cap");
	moat_rlmem_free(m);
}

Test(ratelimit, eviction_bounded_oldest_first)
{
	/* 64 shards, at least one entry each: 128 entries = 2 per shard. */
	struct moat_rlmem *m = moat_rlmem_new(128);
	char key[32];
	uint64_t t = 100 * SEC;

	/* Drain "old" and then flood with 10,000 other keys: the store stays bounded. */
	for (int i = 0; i < 10; i++)
		take(m, "old", t, NULL);
	cr_assert_not(take(m, "old", t, NULL));
	for (int i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "flood%d", i);
		take(m, key, t, NULL);
	}
	cr_assert_leq(moat_rlmem_count(m), 128, "count %zu", moat_rlmem_count(m));
	cr_assert_geq(moat_rlmem_count(m), 64);
	/* "old" was the least recently used in its shard long ago: forgotten, so full again. */
	cr_assert(take(m, "old", t, NULL), "evicted key comes back full");
	moat_rlmem_free(m);
}

Test(ratelimit, eviction_keeps_recent)
{
	struct moat_rlmem *m = moat_rlmem_new(64 * 4); /* 4 per shard */
	char key[32];
	uint64_t t = 100 * SEC;

	for (int i = 0; i < 10; i++)
		take(m, "hot", t, NULL);
	/* Keep "hot" the most recent while others come and go: it is never evicted. */
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "cold%d", i);
		take(m, key, t, NULL);
		cr_assert_not(take(m, "hot", t, NULL), "hot evicted after %d", i);
	}
	moat_rlmem_free(m);
}

/* ---- threads ---- */

struct thread_arg {
	struct moat_rlmem *m;
	int id;
	unsigned allowed_shared;
	unsigned allowed_own;
};

static void *
thread_main(void *p)
{
	struct thread_arg *a = p;
	char own[32];
	uint64_t retry;

	snprintf(own, sizeof(own), "own%d", a->id);
	for (int i = 0; i < 20000; i++) {
		/* One shared key: 1000 tokens, none refilled within the test (1 per 1000 s). */
		if (moat_rlmem_take(a->m, "shared", 6, 1000 * SEC, 1000000 * SEC, 1, 1, &retry))
			a->allowed_shared++;
		if (moat_rlmem_take(a->m, own, strlen(own), 1000 * SEC, 500 * 1000 * SEC, 1, 1,
			&retry))
			a->allowed_own++;
	}
	return NULL;
}

Test(ratelimit, shards_under_threads)
{
	struct moat_rlmem *m = moat_rlmem_new(1024);
	pthread_t th[8];
	struct thread_arg args[8];
	unsigned shared = 0;

	for (int i = 0; i < 8; i++) {
		args[i] = (struct thread_arg){ .m = m, .id = i };
		cr_assert_eq(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		shared += args[i].allowed_shared;
		cr_assert_eq(args[i].allowed_own, 500, "thread %d own key: %u", i,
		    args[i].allowed_own);
	}
	cr_assert_eq(shared, 1000, "shared key allowed %u times in all", shared);
	cr_assert_eq(moat_rlmem_count(m), 9);
	moat_rlmem_free(m);
}

/* ---- the limiter: plans and verdicts ---- */

static void
expect(const struct moat_verdict *v, enum moat_action action, unsigned code, const char *status,
    bool close, const char *reason, const char *what)
{
	cr_assert_eq(v->action, action, "%s: action %s", what, moat_action_name(v->action));
	cr_assert_eq(v->code, code, "%s: code %u", what, v->code);
	cr_assert_str_eq(v->status, status, "%s", what);
	cr_assert_eq(v->close, close, "%s: close", what);
	if (reason != NULL)
		cr_assert_str_eq(v->reason, reason, "%s", what);
}

static void
check_from(struct moat_ratelimit *rl, enum moat_rl_event ev, const char *ip, const char *sender,
    const char *user, struct moat_verdict *v)
{
	struct moat_addr a;
	struct moat_rl_subject subj = { .addr = &a, .sender = sender, .user = user, .sid = "TEST" };

	cr_assert_eq(moat_addr_parse(ip, &a), 0, "%s", ip);
	moat_ratelimit_check(rl, ev, &subj, v);
}

Test(ratelimit, connect_flood_one_address)
{
	struct moat_conf_override ov[] = {
		{ "ratelimit_conn_per_ip", "20/60s" },
		{ "ratelimit_conn_per_net", "" },
		{ "ratelimit_allow", "" },
	};
	struct moattest_clock clk;
	struct moat_ratelimit *rl = moattest_rl_new(ov, 3, &clk);
	struct moat_verdict v;
	unsigned served = 0, refused = 0;

	for (int i = 0; i < 2000; i++) {
		check_from(rl, MOAT_RL_EV_CONNECT, "192.0.2.7", NULL, NULL, &v);
		if (v.action == MOAT_CONTINUE) {
			served++;
		} else {
			expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "ratelimit_conn_per_ip",
			    "flood");
			cr_assert_str_eq(v.text,
			    "Too many connections from your address, try again later");
			refused++;
		}
		/* Another address is served all along. */
		if (i % 100 == 0) {
			check_from(rl, MOAT_RL_EV_CONNECT, "198.51.100.9", NULL, NULL, &v);
			expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "other address");
		}
	}
	cr_assert_eq(served, 20, "served %u", served);
	cr_assert_eq(refused, 1980);
	/* 3 s later one more (20 per 60 s = one per 3 s). */
	clk.now += 3 * SEC;
	check_from(rl, MOAT_RL_EV_CONNECT, "192.0.2.7", NULL, NULL, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "refilled");
	check_from(rl, MOAT_RL_EV_CONNECT, "192.0.2.7", NULL, NULL, &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, NULL, "and only one");
	moat_ratelimit_free(rl);
}

Test(ratelimit, network_prefix_v4_v6)
{
	struct moat_conf_override ov[] = {
		{ "ratelimit_conn_per_ip", "" },
		{ "ratelimit_conn_per_net", "3/60s" },
		{ "ratelimit_allow", "" },
	};
	struct moattest_clock clk;
	struct moat_ratelimit *rl = moattest_rl_new(ov, 3, &clk);
	struct moat_verdict v;
	struct moat_rl_plan plan;
	struct moat_addr a;
	struct moat_rl_subject subj = { .addr = &a };

	check_from(rl, MOAT_RL_EV_CONNECT, "192.0.2.1", NULL, NULL, &v);
	check_from(rl, MOAT_RL_EV_CONNECT, "192.0.2.100", NULL, NULL, &v);
	check_from(rl, MOAT_RL_EV_CONNECT, "192.0.2.254", NULL, NULL, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "third in the /24");
	check_from(rl, MOAT_RL_EV_CONNECT, "192.0.2.9", NULL, NULL, &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "ratelimit_conn_per_net",
	    "fourth in the /24");
	check_from(rl, MOAT_RL_EV_CONNECT, "192.0.3.9", NULL, NULL, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "next /24");

	moat_addr_parse("2001:db8:1:2:aaaa::1", &a);
	moat_ratelimit_plan(rl, MOAT_RL_EV_CONNECT, &subj, &plan);
	cr_assert_eq(plan.n, 1);
	cr_assert_str_eq(plan.req[0].key, "cnet:2001:db8:1:2::/64");
	moat_addr_parse("192.0.2.77", &a);
	moat_ratelimit_plan(rl, MOAT_RL_EV_CONNECT, &subj, &plan);
	cr_assert_str_eq(plan.req[0].key, "cnet:192.0.2.0/24");
	cr_assert_eq(plan.req[0].interval_us, 20 * SEC);
	cr_assert_eq(plan.req[0].limit_us, 60 * SEC);
	for (int i = 0; i < 3; i++) {
		check_from(rl, MOAT_RL_EV_CONNECT, "2001:db8:1:2::5", NULL, NULL, &v);
		expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "v6 /64");
	}
	check_from(rl, MOAT_RL_EV_CONNECT, "2001:db8:1:2:ffff::5", NULL, NULL, &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, NULL, "fourth in the /64");
	check_from(rl, MOAT_RL_EV_CONNECT, "2001:db8:1:3::5", NULL, NULL, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "next /64");
	moat_ratelimit_free(rl);
}

Test(ratelimit, mail_and_rcpt_limits)
{
	struct moat_conf_override ov[] = {
		{ "ratelimit_msg_per_ip", "2/60s" },
		{ "ratelimit_rcpt_per_sender", "3/60s" },
		{ "ratelimit_msg_per_user", "1/60s" },
		{ "ratelimit_allow", "" },
	};
	struct moattest_clock clk;
	struct moat_ratelimit *rl = moattest_rl_new(ov, 4, &clk);
	struct moat_verdict v;

	check_from(rl, MOAT_RL_EV_MAIL, "192.0.2.1", "a@example.org", NULL, &v);
	check_from(rl, MOAT_RL_EV_MAIL, "192.0.2.1", "b@example.org", NULL, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "two messages");
	check_from(rl, MOAT_RL_EV_MAIL, "192.0.2.1", "c@example.org", NULL, &v);
	expect(&v, MOAT_TEMPFAIL, 451, "4.7.1", false, "ratelimit_msg_per_ip", "third message");
	cr_assert_str_eq(v.text, "Too many messages from your address, try again later");

	/* Recipients per sender: the case of the address does not make a new sender. */
	check_from(rl, MOAT_RL_EV_RCPT, "192.0.2.2", "Bulk@Example.org", NULL, &v);
	check_from(rl, MOAT_RL_EV_RCPT, "192.0.2.3", "bulk@example.org", NULL, &v);
	check_from(rl, MOAT_RL_EV_RCPT, "192.0.2.4", "BULK@EXAMPLE.ORG", NULL, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "third recipient");
	check_from(rl, MOAT_RL_EV_RCPT, "192.0.2.5", "bulk@example.org", NULL, &v);
	expect(&v, MOAT_TEMPFAIL, 451, "4.7.1", false, "ratelimit_rcpt_per_sender",
	    "fourth recipient");
	check_from(rl, MOAT_RL_EV_RCPT, "192.0.2.5", "", NULL, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "null sender is its own key");

	/* Per user only when authenticated. */
	check_from(rl, MOAT_RL_EV_MAIL, "192.0.2.9", "x@example.org", "alice", &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "alice 1");
	check_from(rl, MOAT_RL_EV_MAIL, "192.0.2.10", "y@example.org", "alice", &v);
	expect(&v, MOAT_TEMPFAIL, 451, "4.7.1", false, "ratelimit_msg_per_user", "alice 2");
	check_from(rl, MOAT_RL_EV_MAIL, "192.0.2.11", "y@example.org", "", &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "not authenticated");
	moat_ratelimit_free(rl);
}

/*
 * The first recipient charges MAIL's buckets and RCPT's in one plan, MAIL's first; a refusal by a
 * message bucket leaves the message uncounted (the next recipient tries again), a refusal by a
 * recipient bucket does not.
 */
Test(ratelimit, first_rcpt_charges_message_and_recipient)
{
	struct moat_conf_override ov[] = {
		{ "ratelimit_msg_per_ip", "2/60s" },
		{ "ratelimit_msg_per_sender", "5/60s" },
		{ "ratelimit_rcpt_per_ip", "3/60s" },
		{ "ratelimit_rcpt_per_user", "5/60s" },
		{ "ratelimit_allow", "" },
	};
	struct moattest_clock clk;
	struct moat_ratelimit *rl = moattest_rl_new(ov, 5, &clk);
	struct moat_addr addr;
	struct moat_rl_subject subj = { .addr = &addr, .sender = "s@example.org", .user = "alice" };
	struct moat_rl_plan plan;
	struct moat_verdict v;
	static const enum moat_rl_kind order[] = { MOAT_RL_MSG_IP, MOAT_RL_MSG_SENDER,
		MOAT_RL_RCPT_IP, MOAT_RL_RCPT_USER };

	cr_assert_eq(moat_addr_parse("192.0.2.1", &addr), 0);
	moat_ratelimit_plan(rl, MOAT_RL_EV_FIRST_RCPT, &subj, &plan);
	cr_assert_eq(plan.n, 4, "buckets: %zu", plan.n);
	for (size_t i = 0; i < plan.n; i++)
		cr_assert_eq(plan.req[i].kind, order[i], "bucket %zu is kind %d", i,
		    plan.req[i].kind);

	/* message 1 to three recipients: the message counts once, each recipient once */
	check_from(rl, MOAT_RL_EV_FIRST_RCPT, "192.0.2.1", "s@example.org", NULL, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "message 1, recipient 1");
	cr_assert(moat_ratelimit_message_counted(&v));
	check_from(rl, MOAT_RL_EV_RCPT, "192.0.2.1", "s@example.org", NULL, &v);
	check_from(rl, MOAT_RL_EV_RCPT, "192.0.2.1", "s@example.org", NULL, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "message 1, recipient 3");
	/* message 2: its message token is there, the recipients are used up */
	check_from(rl, MOAT_RL_EV_FIRST_RCPT, "192.0.2.1", "s@example.org", NULL, &v);
	expect(&v, MOAT_TEMPFAIL, 451, "4.7.1", false, "ratelimit_rcpt_per_ip",
	    "message 2, recipient 1");
	cr_assert(moat_ratelimit_message_counted(&v),
	    "a recipient refusal still counts the message");
	/* message 3: no message token left; the refusal names the message limit */
	check_from(rl, MOAT_RL_EV_FIRST_RCPT, "192.0.2.1", "s@example.org", NULL, &v);
	expect(&v, MOAT_TEMPFAIL, 451, "4.7.1", false, "ratelimit_msg_per_ip", "message 3");
	cr_assert_str_eq(v.text, "Too many messages from your address, try again later");
	cr_assert_not(moat_ratelimit_message_counted(&v), "a message refusal leaves it uncounted");
	/* a minute later both buckets are full again */
	clk.now += 60 * SEC;
	check_from(rl, MOAT_RL_EV_FIRST_RCPT, "192.0.2.1", "s@example.org", NULL, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "a minute later");
	moat_ratelimit_free(rl);
}

Test(ratelimit, message_counted_reads_the_verdict)
{
	struct moat_verdict v;

	moat_verdict_continue(&v);
	cr_assert(moat_ratelimit_message_counted(&v));
	moat_verdict_set(&v, MOAT_TEMPFAIL, 451, "4.3.0", "ratelimit_store_down", "x");
	cr_assert_not(moat_ratelimit_message_counted(&v), "store down: nothing was charged");
	moat_verdict_set(&v, MOAT_TEMPFAIL, 451, "4.7.1", "ratelimit_msg_per_sender", "x");
	cr_assert_not(moat_ratelimit_message_counted(&v));
	moat_verdict_set(&v, MOAT_TEMPFAIL, 451, "4.7.1", "ratelimit_msg_per_user", "x");
	cr_assert_not(moat_ratelimit_message_counted(&v));
	moat_verdict_set(&v, MOAT_TEMPFAIL, 451, "4.7.1", "ratelimit_rcpt_per_sender", "x");
	cr_assert(moat_ratelimit_message_counted(&v));
}

Test(ratelimit, tls_per_ip)
{
	struct moat_conf_override ov[] = { { "ratelimit_tls_per_ip", "2/10s" },
		{ "ratelimit_allow", "" } };
	struct moattest_clock clk;
	struct moat_ratelimit *rl = moattest_rl_new(ov, 2, &clk);
	struct moat_verdict v;

	check_from(rl, MOAT_RL_EV_TLS, "192.0.2.1", NULL, NULL, &v);
	check_from(rl, MOAT_RL_EV_TLS, "192.0.2.1", NULL, NULL, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "second handshake");
	check_from(rl, MOAT_RL_EV_TLS, "192.0.2.1", NULL, NULL, &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "ratelimit_tls_per_ip", "third handshake");
	moat_ratelimit_free(rl);
}

Test(ratelimit, allow_and_deny_lists)
{
	struct moat_conf_override ov[] = {
		{ "ratelimit_conn_per_ip", "1/60s" },
		{ "ratelimit_allow", "10.0.0.0/8, 2001:db8::/32" },
		{ "ratelimit_deny", "203.0.113.0/24" },
	};
	struct moattest_clock clk;
	struct moat_ratelimit *rl = moattest_rl_new(ov, 3, &clk);
	struct moat_verdict v;

	for (int i = 0; i < 50; i++) {
		check_from(rl, MOAT_RL_EV_CONNECT, "10.1.2.3", NULL, NULL, &v);
		expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "allow-listed v4");
		check_from(rl, MOAT_RL_EV_CONNECT, "2001:db8::25", NULL, NULL, &v);
		expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "allow-listed v6");
	}
	check_from(rl, MOAT_RL_EV_CONNECT, "203.0.113.5", NULL, NULL, &v);
	expect(&v, MOAT_REJECT, 554, "5.7.1", true, "ratelimit_deny", "deny-listed");
	/* Loopback is allowed by default, but this config replaced the list. */
	check_from(rl, MOAT_RL_EV_CONNECT, "127.0.0.1", NULL, NULL, &v);
	check_from(rl, MOAT_RL_EV_CONNECT, "127.0.0.1", NULL, NULL, &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, NULL, "loopback not allow-listed here");
	moat_ratelimit_free(rl);
}

Test(ratelimit, default_allows_loopback)
{
	struct moat_conf_override ov[] = { { "ratelimit_conn_per_ip", "1/60s" } };
	struct moattest_clock clk;
	struct moat_ratelimit *rl = moattest_rl_new(ov, 1, &clk);
	struct moat_verdict v;

	for (int i = 0; i < 5; i++) {
		check_from(rl, MOAT_RL_EV_CONNECT, "127.0.0.1", NULL, NULL, &v);
		expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "loopback");
		check_from(rl, MOAT_RL_EV_CONNECT, "::1", NULL, NULL, &v);
		expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "::1");
	}
	moat_ratelimit_free(rl);
}

Test(ratelimit, log_only_never_refuses)
{
	struct moat_conf_override ov[] = {
		{ "ratelimit_conn_per_ip", "2/60s log" },
		{ "ratelimit_msg_per_ip", "1/60s" },
		{ "ratelimit_action", "log" },
		{ "ratelimit_allow", "" },
	};
	struct moattest_clock clk;
	struct moat_ratelimit *rl = moattest_rl_new(ov, 4, &clk);
	struct moat_verdict v;

	for (int i = 0; i < 10; i++) {
		check_from(rl, MOAT_RL_EV_CONNECT, "192.0.2.1", NULL, NULL, &v);
		expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "log-only connect");
		check_from(rl, MOAT_RL_EV_MAIL, "192.0.2.1", "a@b.example", NULL, &v);
		expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "ratelimit_action log");
	}
	moat_ratelimit_free(rl);
}

Test(ratelimit, reload_keeps_buckets_takes_new_limits)
{
	struct moat_conf_override ov[] = { { "ratelimit_conn_per_ip", "2/60s" },
		{ "ratelimit_allow", "" } };
	struct moat_conf_override ov2[] = { { "ratelimit_conn_per_ip", "4/120s" },
		{ "ratelimit_allow", "" } };
	struct moattest_clock clk;
	struct moat_ratelimit *rl = moattest_rl_new(ov, 2, &clk);
	struct moat_verdict v;
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf *conf2 = moat_conf_load(NULL, ov2, 2, err, sizeof(err));

	check_from(rl, MOAT_RL_EV_CONNECT, "192.0.2.1", NULL, NULL, &v);
	check_from(rl, MOAT_RL_EV_CONNECT, "192.0.2.1", NULL, NULL, &v);
	check_from(rl, MOAT_RL_EV_CONNECT, "192.0.2.1", NULL, NULL, &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, NULL, "before reload");
	cr_assert_not_null(conf2, "%s", err);
	cr_assert_eq(moat_ratelimit_reload(rl, conf2, err, sizeof(err)), 0, "%s", err);
	moat_conf_unref(conf2);
	/* Same 30 s interval, burst 4: the bucket (two used) has two more now. */
	check_from(rl, MOAT_RL_EV_CONNECT, "192.0.2.1", NULL, NULL, &v);
	check_from(rl, MOAT_RL_EV_CONNECT, "192.0.2.1", NULL, NULL, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "after reload");
	check_from(rl, MOAT_RL_EV_CONNECT, "192.0.2.1", NULL, NULL, &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, NULL, "new burst used");
	moat_ratelimit_free(rl);
}

Test(ratelimit, long_sender_hashed_stable)
{
	struct moat_conf_override ov[] = { { "ratelimit_msg_per_sender", "1/60s" } };
	struct moattest_clock clk;
	struct moat_ratelimit *rl = moattest_rl_new(ov, 1, &clk);
	struct moat_rl_plan p1, p2;
	char longs[600], longs_upper[600];
	struct moat_rl_subject subj = { .sender = longs };

	memset(longs, 'a', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = '\0';
	memcpy(longs_upper, longs, sizeof(longs));
	longs_upper[590] = 'A';
	moat_ratelimit_plan(rl, MOAT_RL_EV_MAIL, &subj, &p1);
	subj.sender = longs_upper;
	moat_ratelimit_plan(rl, MOAT_RL_EV_MAIL, &subj, &p2);
	cr_assert_eq(p1.n, 1);
	cr_assert_lt(p1.req[0].keylen, MOAT_RL_KEY_MAX);
	cr_assert_eq(strncmp(p1.req[0].key, "msnd:#", 6), 0, "%s", p1.req[0].key);
	cr_assert_str_eq(p1.req[0].key, p2.req[0].key, "case-folded hash");
	moat_ratelimit_free(rl);
}

Test(ratelimit, redis_down_fallbacks)
{
	/* Port 16399 on loopback: nothing listens there in this test (closed port, fast refusal). */
	struct moat_conf_override open_ov[] = {
		{ "ratelimit_store", "redis" },
		{ "ratelimit_redis", "127.0.0.1:16399" },
		{ "ratelimit_conn_per_ip", "2/60s" },
		{ "ratelimit_allow", "" },
	};
	struct moat_conf_override closed_ov[] = {
		{ "ratelimit_store", "redis" },
		{ "ratelimit_redis", "127.0.0.1:16399" },
		{ "ratelimit_conn_per_ip", "2/60s" },
		{ "ratelimit_msg_per_ip", "5/60s" },
		{ "ratelimit_redis_failure", "closed" },
		{ "ratelimit_allow", "" },
	};
	struct moattest_clock clk;
	struct moat_ratelimit *rl = moattest_rl_new(open_ov, 4, &clk);
	struct moat_verdict v;

	/* Fail-open: the embedded store enforces the same limit. */
	check_from(rl, MOAT_RL_EV_CONNECT, "192.0.2.1", NULL, NULL, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "open 1");
	check_from(rl, MOAT_RL_EV_CONNECT, "192.0.2.1", NULL, NULL, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "open 2");
	check_from(rl, MOAT_RL_EV_CONNECT, "192.0.2.1", NULL, NULL, &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "ratelimit_conn_per_ip",
	    "open 3: memory limit");
	moat_ratelimit_free(rl);

	rl = moattest_rl_new(closed_ov, 6, &clk);
	check_from(rl, MOAT_RL_EV_CONNECT, "192.0.2.1", NULL, NULL, &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "ratelimit_store_down", "closed at connect");
	check_from(rl, MOAT_RL_EV_MAIL, "192.0.2.1", "a@b.example", NULL, &v);
	expect(&v, MOAT_TEMPFAIL, 451, "4.3.0", false, "ratelimit_store_down", "closed at MAIL");
	moat_ratelimit_free(rl);
}

/* ---- the Redis call, checked against hiredis's own formatter ---- */

/* plan_req - a bucket of PLAN with KEY, INTERVAL and COUNT tokens at COST. */
static void
plan_req(struct moat_rl_plan *plan, const char *key, uint64_t interval_us, unsigned count,
    unsigned cost)
{
	struct moat_rl_req *q = &plan->req[plan->n++];

	q->keylen = strlen(key);
	memcpy(q->key, key, q->keylen + 1);
	q->interval_us = interval_us;
	q->limit_us = interval_us * count;
	q->cost = cost;
}

/* expect_call - CALL holds exactly what hiredis formats for ARGV. */
static void
expect_call(const struct moat_rl_redis_call *call, int argc, const char **argv)
{
	char *want = NULL;
	int len = redisFormatCommandArgv(&want, argc, argv, NULL);

	cr_assert_gt(len, 0);
	cr_assert_eq(call->len, (size_t)len, "length %zu, hiredis %d", call->len, len);
	cr_assert_eq(memcmp(call->buf, want, call->len), 0, "bytes differ from hiredis's");
	free(want);
}

Test(ratelimit, redis_call_is_what_hiredis_formats)
{
	struct moat_rl_plan plan = { .n = 0 };
	struct moat_rl_redis_call call;
	char sha[41];

	moat__rlredis_sha1(sha);
	cr_assert_eq(strlen(sha), 40);
	plan_req(&plan, "mip:192.0.2.1", 60, 1000000, 1);
	plan_req(&plan, "rsnd:a@example.org", 3000000, 20, 3);
	cr_assert_eq(moat__rlredis_call(&call, "mx:", sha, &plan), 0);
	expect_call(&call, 9,
	    (const char *[]){ "EVALSHA", sha, "2", "mx:mip:192.0.2.1", "mx:rsnd:a@example.org",
		"60", "60000000", "9000000", "60000000" });
	cr_assert_eq(moat__rlredis_call(&call, "", NULL, &plan), 0);
	expect_call(&call, 9,
	    (const char *[]){ "EVAL", moat_rl_redis_script, "2", "mip:192.0.2.1",
		"rsnd:a@example.org", "60", "60000000", "9000000", "60000000" });
	plan.n = 0;
	cr_assert_eq(moat__rlredis_call(&call, "p:", sha, &plan), 0);
	expect_call(&call, 3, (const char *[]){ "EVALSHA", sha, "0" });
}

Test(ratelimit, redis_call_longest_fits)
{
	struct moat_rl_plan plan = { .n = 0 };
	struct moat_rl_redis_call call;
	char key[MOAT_RL_KEY_MAX], prefix[MOAT_RL_REDIS_PREFIX_MAX],
	    longer[MOAT_RL_REDIS_PREFIX_MAX + 1];
	char full[MOAT_RL_PLAN_MAX][MOAT_RL_REDIS_PREFIX_MAX + MOAT_RL_KEY_MAX];
	const char *argv[3 + 3 * MOAT_RL_PLAN_MAX] = { "EVAL", moat_rl_redis_script, "6" };
	char num[24];

	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	memset(prefix, 'p', sizeof(prefix) - 1);
	prefix[sizeof(prefix) - 1] = '\0';
	snprintf(num, sizeof(num), "%llu", 18446744073709551615ULL);
	for (size_t i = 0; i < MOAT_RL_PLAN_MAX; i++) {
		plan_req(&plan, key, 18446744073709551615ULL, 1, 1);
		plan.req[i].limit_us = 18446744073709551615ULL;
		snprintf(full[i], sizeof(full[i]), "%s%s", prefix, key);
		argv[3 + i] = full[i];
		argv[3 + MOAT_RL_PLAN_MAX + 2 * i] = num;
		argv[3 + MOAT_RL_PLAN_MAX + 2 * i + 1] = num;
	}
	cr_assert_eq(MOAT_RL_PLAN_MAX, 6, "argv[2] above says 6");
	cr_assert_eq(moat__rlredis_call(&call, prefix, NULL, &plan), 0, "the longest call fits");
	expect_call(&call, 3 + 3 * MOAT_RL_PLAN_MAX, argv);
	/* a prefix the configuration would refuse is refused here too, not overrun */
	memset(longer, 'p', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	cr_assert_eq(moat__rlredis_call(&call, longer, NULL, &plan), -1);
}

/*
 * Failed AUTH: EV_AUTH only looks (however often: nothing is charged), EV_AUTH_FAIL charges the
 * address and the login; once either is used up both refuse with 421 and close. The login is
 * hashed into its key.
 */
Test(ratelimit, auth_fail_per_ip_and_user)
{
	struct moat_conf_override ov[] = { { "ratelimit_auth_fail_per_ip", "3/1h" },
		{ "ratelimit_auth_fail_per_user", "5/1h" }, { "ratelimit_allow", "" } };
	struct moattest_clock clk;
	struct moat_ratelimit *rl = moattest_rl_new(ov, 3, &clk);
	struct moat_addr addr;
	struct moat_rl_subject subj = { .addr = &addr, .user = "alice@example.org" };
	struct moat_rl_plan plan;
	struct moat_verdict v;

	cr_assert_eq(moat_addr_parse("192.0.2.1", &addr), 0);
	moat_ratelimit_plan(rl, MOAT_RL_EV_AUTH_FAIL, &subj, &plan);
	cr_assert_eq(plan.n, 2, "buckets: %zu", plan.n);
	cr_assert_eq(plan.req[0].kind, MOAT_RL_AUTH_FAIL_IP);
	cr_assert_str_eq(plan.req[0].key, "afip:192.0.2.1");
	cr_assert_eq(plan.req[1].kind, MOAT_RL_AUTH_FAIL_USER);
	cr_assert_null(strstr(plan.req[1].key, "alice"), "login in clear: %s", plan.req[1].key);
	cr_assert_eq(strncmp(plan.req[1].key, "afusr:#", 7), 0, "%s", plan.req[1].key);

	for (int i = 0; i < 10; i++) {
		check_from(rl, MOAT_RL_EV_AUTH, "192.0.2.1", NULL, NULL, &v);
		expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "a look charges nothing");
	}
	for (int i = 0; i < 3; i++) {
		check_from(rl, MOAT_RL_EV_AUTH_FAIL, "192.0.2.1", NULL, "alice@example.org", &v);
		expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "failures 1-3");
	}
	check_from(rl, MOAT_RL_EV_AUTH, "192.0.2.1", NULL, NULL, &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "ratelimit_auth_fail_per_ip",
	    "address used up");
	cr_assert_str_eq(v.text,
	    "Too many failed authentications from your address, try again later");
	check_from(rl, MOAT_RL_EV_AUTH, "192.0.2.2", NULL, "bob", &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "another address, another login");

	/* the login from elsewhere: two more failures, then even a success is refused */
	check_from(rl, MOAT_RL_EV_AUTH_FAIL, "192.0.2.3", NULL, "alice@example.org", &v);
	check_from(rl, MOAT_RL_EV_AUTH_FAIL, "192.0.2.4", NULL, "alice@example.org", &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "login failures 4-5");
	check_from(rl, MOAT_RL_EV_AUTH, "192.0.2.5", NULL, "alice@example.org", &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "ratelimit_auth_fail_per_user",
	    "the login used up, right password or not");
	check_from(rl, MOAT_RL_EV_AUTH_FAIL, "192.0.2.5", NULL, "alice@example.org", &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "ratelimit_auth_fail_per_user",
	    "the login used up, a failure");
	check_from(rl, MOAT_RL_EV_AUTH, "192.0.2.5", NULL, "Alice@example.org", &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "logins are not case-folded");

	/* a token comes back every 20 minutes for the address */
	clk.now += 20 * 60 * SEC;
	check_from(rl, MOAT_RL_EV_AUTH, "192.0.2.1", NULL, NULL, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, NULL, "20 minutes later");
	check_from(rl, MOAT_RL_EV_AUTH_FAIL, "192.0.2.1", NULL, "carol", &v);
	check_from(rl, MOAT_RL_EV_AUTH, "192.0.2.1", NULL, NULL, &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "ratelimit_auth_fail_per_ip",
	    "used up again");
	moat_ratelimit_free(rl);
}

Test(ratelimit, auth_fail_defaults)
{
	char err[MOAT_CONF_ERR_MAX] = "";
	struct moat_conf *conf = moat_conf_load(NULL, NULL, 0, err, sizeof(err));

	cr_assert_not_null(conf, "%s", err);
	cr_assert_str_eq(conf->ratelimit_auth_fail_per_ip, "10/1h");
	cr_assert_str_eq(conf->ratelimit_auth_fail_per_user, "30/1h");
	moat_conf_unref(conf);
}
