/*
 * fuzz_redis_reply.c - arbitrary bytes from "Redis" as the answer to the rate limiter's script call:
 * hiredis's RESP reader makes replies of them, and each goes through what both stores do with one
 * (src/ratelimit_redis.c: moat__rlredis_noscript, moat__rlredis_reply) and, when it is taken as
 * well-formed, through the verdict (moat_ratelimit_decide). A reply the stores accept must fill a
 * result for every bucket of the plan (UBSan's bool check sees one left as garbage).
 *
 * Input: byte 0 picks the plan (0-4: CONNECT, TLS, MAIL, RCPT, FIRST_RCPT; every limit is set, so
 * each plan has one to six buckets); the rest is the server's byte stream.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cidr.h"
#include "conf.h"
#include "log.h"
#include "policy.h"
#include "ratelimit.h"
#include "ratelimit_redis.h"

static struct moat_ratelimit *rl;

/* limiter - every per-address, per-sender and per-user limit on, Redis the store (never
 * connected here: only its replies are made up). */
static struct moat_ratelimit *
limiter(void)
{
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf_override ov[] = {
		{ "ratelimit_store", "redis" },
		{ "ratelimit_redis", "127.0.0.1:1" },
		{ "ratelimit_allow", "" },
		{ "ratelimit_conn_per_ip", "3/60s" },
		{ "ratelimit_conn_per_net", "30/60s" },
		{ "ratelimit_tls_per_ip", "3/60s" },
		{ "ratelimit_msg_per_ip", "2/60s" },
		{ "ratelimit_msg_per_sender", "5/1h" },
		{ "ratelimit_msg_per_user", "5/1h" },
		{ "ratelimit_rcpt_per_ip", "10/60s" },
		{ "ratelimit_rcpt_per_sender", "10/60s" },
		{ "ratelimit_rcpt_per_user", "10/60s" },
		{ "log_target", "stderr" },
	};
	struct moat_conf *conf;
	struct moat_ratelimit *r;

	moat_log_open("fuzz", MOAT_LOG_STDERR, false);
	conf = moat_conf_load(NULL, ov, sizeof(ov) / sizeof(ov[0]), err, sizeof(err));
	if (conf == NULL || (r = moat_ratelimit_new(conf, err, sizeof(err))) == NULL)
		abort();
	moat_conf_unref(conf);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_rl_result res[MOAT_RL_PLAN_MAX];
	struct moat_rl_subject subj;
	struct moat_rl_plan plan;
	struct moat_verdict v;
	struct moat_addr addr;
	redisReader *rd;
	void *reply;

	if (size < 1 || data[0] > MOAT_RL_EV_FIRST_RCPT)
		return 0;
	if (rl == NULL)
		rl = limiter();
	if (moat_addr_parse("192.0.2.1", &addr) < 0)
		abort();
	subj = (struct moat_rl_subject){ &addr, "s@example.org", "user", "fuzz" };
	moat_ratelimit_plan(rl, (enum moat_rl_event)data[0], &subj, &plan);
	if ((rd = redisReaderCreate()) == NULL)
		abort();
	moat__rlredis_reader_bound(rd); /* as both stores do */
	if (redisReaderFeed(rd, (const char *)data + 1, size - 1) == REDIS_OK) {
		while (redisReaderGetReply(rd, &reply) == REDIS_OK && reply != NULL) {
			memset(res, 0xa5,
			    sizeof(res)); /* what the parser does not fill stays garbage */
			(void)moat__rlredis_noscript(reply);
			if (moat__rlredis_reply(reply, &plan, res) == 0)
				moat_ratelimit_decide(rl, &plan, res, MOAT_RL_OK, subj.sid, &v);
			freeReplyObject(reply);
		}
	}
	redisReaderFree(rd);
	return 0;
}
