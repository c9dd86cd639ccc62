/*
 * ratelimit_uv.h - rate limits on a libuv loop: the embedded store, or Redis through hiredis's
 * libuv adapter (one async connection per loop) without ever blocking the loop.
 */
#ifndef PX_RATELIMIT_UV_H
#define PX_RATELIMIT_UV_H

#include <uv.h>

#include "conf.h"
#include "policy.h"
#include "ratelimit.h"

struct px_rlredis;

/* px_rl_done_fn - the verdict of a pending check, on the loop (v valid during the call). */
typedef void (*px_rl_done_fn)(void *arg, const struct moat_verdict *v);

/*
 * px_rlredis_new - the Redis store of one loop, for RL (borrowed) with CONF's ratelimit_redis and
 * ratelimit_redis_timeout. It connects on first use; NULL on out of memory or a bad address.
 */
struct px_rlredis *px_rlredis_new(uv_loop_t *loop, struct moat_ratelimit *rl,
    const struct moat_conf *conf);

/*
 * px_rlredis_close - drop the connection (pending checks complete with the configured fallback,
 * on the loop) and close the handles; the struct is freed in the last close callback, so the
 * loop can end. NULL is a no-op.
 */
void px_rlredis_close(struct px_rlredis *r);

/*
 * px_ratelimit_charge - charge PLAN (the core's, borrowed for this call only) and decide; SID names
 * the session in log lines. R NULL: the embedded store. Returns 0 with the verdict in *v, or 1:
 * the charge is pending in Redis and DONE(ARG, verdict) will be called later on the loop, never
 * from inside this call. While Redis is unreachable the embedded store or a refusal answers at
 * once (ratelimit.h).
 */
int px_ratelimit_charge(struct moat_ratelimit *rl, struct px_rlredis *r,
    const struct moat_rl_plan *plan, const char *sid, struct moat_verdict *v, px_rl_done_fn done,
    void *arg);

#endif /* PX_RATELIMIT_UV_H */
