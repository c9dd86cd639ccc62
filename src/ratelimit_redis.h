/*
 * ratelimit_redis.h - what the synchronous (src/ratelimit_redis.c) and the libuv
 * (proxy/ratelimit_uv.c) Redis stores share: the script call for a plan and its reply; and the
 * greylisting script's call and reply (the unit tests').
 */
#ifndef MOAT_RATELIMIT_REDIS_H
#define MOAT_RATELIMIT_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "ratelimit.h"

/* the longest call: EVAL with the script text, and every key at its longest */
#define MOAT_RL_REDIS_CMD_MAX \
	(2048 + MOAT_RL_PLAN_MAX * (MOAT_RL_REDIS_PREFIX_MAX + MOAT_RL_KEY_MAX + 80))
#define MOAT_RL_REDIS_BACKOFF_MIN_MS 100 /* first wait before Redis is tried again */
#define MOAT_RL_REDIS_BACKOFF_MAX_MS 5000

/*
 * One EVALSHA (or EVAL) call in the Redis protocol, ready to write: formatting it here costs a
 * tenth of what hiredis's printf-based argv formatting costs on every message.
 */
struct moat_rl_redis_call {
	size_t len;
	char buf[MOAT_RL_REDIS_CMD_MAX];
};

/* moat__rlredis_sha1 - the script's SHA-1 in hex, for EVALSHA (41 bytes with the NUL). */
void moat__rlredis_sha1(char out[41]);

/*
 * moat__rlredis_call - fill CALL for PLAN: EVALSHA SHA when sha is not NULL, else EVAL with the
 * script text. 0, or -1 if it does not fit (not with keys planned by ratelimit.c).
 */
int moat__rlredis_call(struct moat_rl_redis_call *call, const char *prefix, const char *sha,
    const struct moat_rl_plan *plan);

/* moat__rlredis_reply - 0 with res filled from a well-formed reply to PLAN's call, else -1. */
int moat__rlredis_reply(const redisReply *reply, const struct moat_rl_plan *plan,
    struct moat_rl_result *res);

struct moat_gl_keys;
struct moat_gl_times;
struct moat_gl_answer;
/* moat__rlredis_gl_call - fill CALL for greylisting K with times T, as moat__rlredis_call. */
int moat__rlredis_gl_call(struct moat_rl_redis_call *call, const char *prefix, const char *sha,
    const struct moat_gl_keys *k, const struct moat_gl_times *t);
/* moat__rlredis_gl_reply - 0 with a->result and a->wait_ms from a well-formed reply, else -1. */
int moat__rlredis_gl_reply(const redisReply *reply, struct moat_gl_answer *a);

/* moat__rlredis_noscript - the reply says the server does not have the script (EVAL next). */
bool moat__rlredis_noscript(const redisReply *reply);

/* moat__rlredis_backoff - the next back-off after PREV_MS (0: the first): 100 ms doubling to 5 s. */
unsigned moat__rlredis_backoff(unsigned prev_ms);

/*
 * moat__rlredis_reader_bound - make READER refuse an array longer than any reply to our script
 * (MOAT_RL_PLAN_MAX elements) as a protocol error. hiredis 0.14 allocates whatever count the
 * server announces ("*444444443" is 3.5 GB) before a single element has arrived.
 */
void moat__rlredis_reader_bound(redisReader *reader);

#endif /* MOAT_RATELIMIT_REDIS_H */
