/*
 * ratelimit_redis.h - what the synchronous (src/ratelimit_redis.c) and the libuv
 * (proxy/ratelimit_uv.c) Redis stores share: the script call for a plan and its reply.
 */
#ifndef MOAT_RATELIMIT_REDIS_H
#define MOAT_RATELIMIT_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "ratelimit.h"

#define MOAT_RL_REDIS_ARGV_MAX (3 + 4 * MOAT_RL_PLAN_MAX)
#define MOAT_RL_REDIS_BACKOFF_MIN_MS 100   /* first wait before Redis is tried again */
#define MOAT_RL_REDIS_BACKOFF_MAX_MS 5000

/* The arguments of one EVALSHA (or EVAL) call; argv points into the struct itself. */
struct moat_rl_redis_call {
	int argc;
	const char *argv[MOAT_RL_REDIS_ARGV_MAX];
	size_t argvlen[MOAT_RL_REDIS_ARGV_MAX];
	char nkeys[8];
	char keys[MOAT_RL_PLAN_MAX][MOAT_RL_REDIS_PREFIX_MAX + MOAT_RL_KEY_MAX];
	char nums[MOAT_RL_PLAN_MAX][3][24];
};

/* moat__rlredis_sha1 - the script's SHA-1 in hex, for EVALSHA (41 bytes with the NUL). */
void moat__rlredis_sha1(char out[41]);

/*
 * moat__rlredis_call - fill CALL for PLAN: EVALSHA SHA when sha is not NULL, else EVAL with the
 * script text. The struct must not move between this call and its use.
 */
void moat__rlredis_call(struct moat_rl_redis_call *call, const char *prefix, const char *sha,
    const struct moat_rl_plan *plan);

/* moat__rlredis_reply - 0 with res filled from a well-formed reply to PLAN's call, else -1. */
int moat__rlredis_reply(const redisReply *reply, const struct moat_rl_plan *plan,
    struct moat_rl_result *res);

/* moat__rlredis_noscript - the reply says the server does not have the script (EVAL next). */
bool moat__rlredis_noscript(const redisReply *reply);

/* moat__rlredis_backoff - the next back-off after PREV_MS (0: the first): 100 ms doubling to 5 s. */
unsigned moat__rlredis_backoff(unsigned prev_ms);

/* moat__rlredis_hostport - split "host:port" / "[v6]:port"; 0 or -1. */
int moat__rlredis_hostport(const char *hostport, char *host, size_t hostlen, int *port);

#endif /* MOAT_RATELIMIT_REDIS_H */
