/*
 * ratelimit.h - rate limits and connection throttling shared by both daemons.
 *
 * Token buckets (GCRA form: one timestamp per key) with a rate and a burst, "COUNT/PERIOD" in the
 * configuration: COUNT events at once (the burst), refilled at COUNT per PERIOD. Buckets are keyed
 * per client address, per network prefix (/24, /64 by default), per envelope sender and per
 * authenticated user; allow-listed networks bypass every limit, deny-listed ones are refused at
 * connect. Concurrent sessions per address are not here: the core counts them already
 * (limit_sessions_per_ip, sesscount.c).
 *
 * Stores: the embedded one (ratelimit_mem.c, in memory, sharded, bounded) always exists; with
 * ratelimit_store = redis the buckets live in Redis (ratelimit_redis.c, synchronous, for milter
 * threads and threadpool callers; proxy/ratelimit_uv.c for an event loop) so several instances
 * share one budget, and the embedded store takes over while Redis is unreachable.
 *
 * A check is three steps, so an asynchronous store can sit in the middle:
 *   moat_ratelimit_plan   which buckets this event charges (allow/deny lists applied here),
 *   (a store)             charge them: moat_ratelimit_local (embedded) or Redis,
 *   moat_ratelimit_decide the verdict (421 at connect/TLS, 451 4.7.1 at MAIL/RCPT, or log only),
 *                         logging each refused key once per ratelimit_log_interval, not per hit.
 * moat_ratelimit_check does all three synchronously with the configured store.
 *
 * Thread-safe: one struct moat_ratelimit per daemon, shared by every loop and thread.
 */
#ifndef MOAT_RATELIMIT_H
#define MOAT_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidr.h"
#include "conf.h"
#include "policy.h"

#define MOAT_RL_KEY_MAX 300 /* "kind:" + a 254-byte address fits; longer senders are hashed */
#define MOAT_RL_PLAN_MAX 6 /* buckets one event may charge (MOAT_RL_EV_FIRST_RCPT: 3 + 3) */
#define MOAT_RL_REDIS_PREFIX_MAX 64 /* ratelimit_redis_prefix, NUL included */

/* The limits, in the order of their keys; the index is also the Redis key's kind tag. */
enum moat_rl_kind {
	MOAT_RL_CONN_IP = 0, /* ratelimit_conn_per_ip */
	MOAT_RL_CONN_NET, /* ratelimit_conn_per_net */
	MOAT_RL_MSG_IP, /* ratelimit_msg_per_ip */
	MOAT_RL_RCPT_IP, /* ratelimit_rcpt_per_ip */
	MOAT_RL_MSG_SENDER, /* ratelimit_msg_per_sender */
	MOAT_RL_RCPT_SENDER, /* ratelimit_rcpt_per_sender */
	MOAT_RL_MSG_USER, /* ratelimit_msg_per_user */
	MOAT_RL_RCPT_USER, /* ratelimit_rcpt_per_user */
	MOAT_RL_TLS_IP, /* ratelimit_tls_per_ip */
	MOAT_RL_AUTH_FAIL_IP, /* ratelimit_auth_fail_per_ip */
	MOAT_RL_AUTH_FAIL_USER, /* ratelimit_auth_fail_per_user */
	MOAT_RL_NKINDS
};

enum moat_rl_event {
	MOAT_RL_EV_CONNECT, /* a new connection: deny list, conn_per_ip, conn_per_net */
	MOAT_RL_EV_TLS, /* a TLS handshake is about to start: tls_per_ip */
	MOAT_RL_EV_MAIL, /* MAIL FROM: msg_per_ip, msg_per_sender, msg_per_user */
	MOAT_RL_EV_RCPT, /* RCPT TO: rcpt_per_ip, rcpt_per_sender, rcpt_per_user */
	/*
	 * The first RCPT TO of a transaction whose MAIL-time buckets are not charged yet: MAIL's and
	 * RCPT's buckets in one charge, MAIL's first. The proxy uses it to save a store round trip
	 * per message; a message-limit refusal then answers RCPT, as Postfix's smtpd_delay_reject
	 * does (moat_ratelimit_message_counted tells the front-end which event comes next).
	 */
	MOAT_RL_EV_FIRST_RCPT,
	/*
	 * AUTH: whether the failed-AUTH buckets (auth_fail_per_ip, and auth_fail_per_user when the
	 * login is known) have a token left, charging nothing: before an exchange is relayed, and
	 * before its success is accepted, so a used-up login gets the same 421 whether the password
	 * was right or wrong.
	 */
	MOAT_RL_EV_AUTH,
	MOAT_RL_EV_AUTH_FAIL, /* the backend refused the credentials: charge both */
};

/* ratelimit_store / ratelimit_redis_failure / per-limit action */
enum moat_rl_store {
	MOAT_RL_STORE_MEMORY = 0,
	MOAT_RL_STORE_REDIS = 1
};
enum moat_rl_failure {
	MOAT_RL_FAIL_OPEN = 0,
	MOAT_RL_FAIL_CLOSED = 1
};
enum moat_rl_action {
	MOAT_RL_ENFORCE = 0,
	MOAT_RL_LOG_ONLY = 1
};

/* A parsed "COUNT/PERIOD[ log|enforce]" value; count 0 = the limit is off. */
struct moat_rl_limit {
	unsigned count;
	uint64_t period_ms;
	int action; /* enum moat_rl_action; -1: ratelimit_action decides */
};

/* What is known about the client when an event is checked. Strings are borrowed. */
struct moat_rl_subject {
	const struct moat_addr *addr; /* NULL: unknown (no per-address limits apply) */
	const char *sender; /* MAIL FROM path, "" for the null sender; NULL: none yet */
	const char *user; /* authenticated login; NULL or "": not authenticated */
	const char *sid; /* session id for log lines; NULL: "-" */
};

/* One bucket to charge. The store sees key, emission interval, limit and cost only. */
struct moat_rl_req {
	enum moat_rl_kind kind;
	int action; /* enum moat_rl_action, resolved */
	char key[MOAT_RL_KEY_MAX]; /* "<kind>:<text>", NUL-terminated */
	size_t keylen;
	uint64_t interval_us; /* PERIOD / COUNT: time one token takes to come back */
	uint64_t limit_us; /* interval_us * COUNT: how far ahead the bucket may run */
	unsigned cost; /* 0 with limit_us one interval short: a look without a charge */
};

enum moat_rl_pre {
	MOAT_RL_PRE_NONE = 0,
	MOAT_RL_PRE_ALLOWED,
	MOAT_RL_PRE_DENIED
};

struct moat_rl_plan {
	enum moat_rl_event ev;
	enum moat_rl_pre pre; /* allow-listed (nothing to charge) or deny-listed */
	size_t n;
	struct moat_rl_req req[MOAT_RL_PLAN_MAX];
};

struct moat_rl_result {
	bool allowed;
	uint64_t retry_ms; /* refused: when one token is back */
};

/* The outcome of a store round trip as a whole. */
enum moat_rl_status {
	MOAT_RL_OK = 0,
	MOAT_RL_STORE_DOWN = 1
};

struct moat_ratelimit;

/* moat_rl_clock_fn - monotonic microseconds; tests inject their own. */
typedef uint64_t (*moat_rl_clock_fn)(void *arg);

/*
 * moat_ratelimit_new - the limiter for one daemon, from CONF's ratelimit_* keys. With
 * ratelimit_store = redis it also creates the synchronous Redis store (connected lazily, so
 * Redis being down at start-up is the configured fallback, not an error). NULL with a message in
 * err on a bad value or out of memory.
 */
struct moat_ratelimit *moat_ratelimit_new(const struct moat_conf *conf, char *err, size_t errlen);
void moat_ratelimit_free(struct moat_ratelimit *rl); /* NULL is a no-op */

struct moat_metrics;
/* moat_ratelimit_set_metrics - where Redis call times go (borrowed; the policy's counters). */
void moat_ratelimit_set_metrics(struct moat_ratelimit *rl, struct moat_metrics *m);
/* moat_ratelimit_metrics - those counters, for a front-end's own Redis client (borrowed). */
struct moat_metrics *moat_ratelimit_metrics(const struct moat_ratelimit *rl);

/*
 * moat_ratelimit_reload - take the limits, lists and actions of a new snapshot; the buckets, the
 * store and its address stay (a store change needs a restart). 0, or -1 with err (old rules kept).
 */
int moat_ratelimit_reload(struct moat_ratelimit *rl, const struct moat_conf *conf, char *err,
    size_t errlen);

/* moat_ratelimit_set_clock - replace the monotonic clock (tests). Not thread-safe: call first. */
void moat_ratelimit_set_clock(struct moat_ratelimit *rl, moat_rl_clock_fn fn, void *arg);

/* moat_ratelimit_check - plan, charge with the configured store, decide. Blocks on Redis. */
void moat_ratelimit_check(struct moat_ratelimit *rl, enum moat_rl_event ev,
    const struct moat_rl_subject *subj, struct moat_verdict *v);

/*
 * moat_ratelimit_charge - charge PLAN with the configured store and decide; SID names the session
 * in log lines (NULL: "-"). Blocks on Redis with ratelimit_store = redis; never with the embedded
 * store, or for a plan with nothing to charge (plan->n == 0).
 */
void moat_ratelimit_charge(struct moat_ratelimit *rl, const struct moat_rl_plan *plan,
    const char *sid, struct moat_verdict *v);

/* moat_ratelimit_plan - the buckets EV charges for SUBJ (plan->n may be 0). */
void moat_ratelimit_plan(struct moat_ratelimit *rl, enum moat_rl_event ev,
    const struct moat_rl_subject *subj, struct moat_rl_plan *plan);

/* moat_ratelimit_local - charge the plan's buckets in the embedded store. */
void moat_ratelimit_local(struct moat_ratelimit *rl, const struct moat_rl_plan *plan,
    struct moat_rl_result *res);

/*
 * moat_ratelimit_fallback - Redis failed for PLAN: with ratelimit_redis_failure = open the
 * embedded store charges it into res; with closed res is left alone (decide refuses).
 */
void moat_ratelimit_fallback(struct moat_ratelimit *rl, const struct moat_rl_plan *plan,
    struct moat_rl_result *res);

/*
 * moat_ratelimit_decide - the verdict for a charged plan. status MOAT_RL_STORE_DOWN says the
 * shared store failed: with ratelimit_redis_failure = open res must hold the embedded store's
 * answer (this function does not charge it); with closed the event is refused (421 at
 * connect/TLS, 451 4.3.0 at MAIL/RCPT). Refusals and store failures are logged here, each key at
 * most once per ratelimit_log_interval.
 */
void moat_ratelimit_decide(struct moat_ratelimit *rl, const struct moat_rl_plan *plan,
    const struct moat_rl_result *res, enum moat_rl_status status, const char *sid,
    struct moat_verdict *v);

/*
 * moat_ratelimit_message_counted - after a MOAT_RL_EV_FIRST_RCPT check with verdict V: true when
 * the transaction's message buckets are charged (V is no message-limit refusal and no store
 * failure), so its later recipients are checked as MOAT_RL_EV_RCPT; false: check the next
 * recipient as MOAT_RL_EV_FIRST_RCPT again.
 */
bool moat_ratelimit_message_counted(const struct moat_verdict *v);

/* moat_ratelimit_store - the configured store. */
enum moat_rl_store moat_ratelimit_store(const struct moat_ratelimit *rl);
const char *moat_ratelimit_redis_prefix(const struct moat_ratelimit *rl); /* valid until free */

/* moat_ratelimit_parse_limit - "COUNT/PERIOD[ log|enforce]", "" or "off"; 0 or -1 with err. */
int moat_ratelimit_parse_limit(const char *text, struct moat_rl_limit *out, char *err,
    size_t errlen);

/* moat_conf_check_ratelimit - the config validator for every ratelimit_*_per_* key. */
int moat_conf_check_ratelimit(const char *value, char *err, size_t errlen);

/* ---- the embedded store (ratelimit_mem.c) ---- */

struct moat_rlmem;

/* moat_rlmem_new - at most MAX_ENTRIES keys in all (the least recently used is evicted). */
struct moat_rlmem *moat_rlmem_new(size_t max_entries);
void moat_rlmem_free(struct moat_rlmem *m); /* NULL is a no-op */

/*
 * moat_rlmem_take - charge COST tokens of KEY's bucket at time NOW_US. Returns true if allowed
 * (charged), false if refused (nothing charged; *retry_us says when it would be allowed). A key
 * that cannot be stored (out of memory) is allowed. Time that runs backwards is taken as standing
 * still; time that jumps forwards refills at most to the full burst.
 */
bool moat_rlmem_take(struct moat_rlmem *m, const char *key, size_t keylen, uint64_t interval_us,
    uint64_t limit_us, unsigned cost, uint64_t now_us, uint64_t *retry_us);

/* moat_rlmem_get - the number stored under KEY by moat_rlmem_put: true with *value, false when
 * the key is absent (or was forgotten). */
bool moat_rlmem_get(struct moat_rlmem *m, const char *key, size_t keylen, uint64_t *value);
/* moat_rlmem_put - store VALUE under KEY (not stored when out of memory). */
void moat_rlmem_put(struct moat_rlmem *m, const char *key, size_t keylen, uint64_t value);

size_t moat_rlmem_count(struct moat_rlmem *m); /* keys held (tests) */

/* ---- the Redis store, synchronous (ratelimit_redis.c) ---- */

struct moat_rlredis;

/*
 * moat_rlredis_new - a pool of hiredis connections to HOSTPORT ("host:port"), opened on demand;
 * keys are PREFIX + the bucket key; TIMEOUT_MS bounds connect and each command.
 */
struct moat_rlredis *moat_rlredis_new(const char *hostport, const char *prefix,
    unsigned timeout_ms);
void moat_rlredis_free(struct moat_rlredis *r); /* NULL is a no-op */

/*
 * moat_rlredis_take - charge every request of PLAN in one atomic script call. 0 with res filled,
 * or -1 when Redis is unreachable or answers wrongly (res untouched; reconnects back off from
 * 100 ms to 5 s, during which calls fail at once without touching the network).
 */
int moat_rlredis_take(struct moat_rlredis *r, const struct moat_rl_plan *plan,
    struct moat_rl_result *res);

/* The Lua script both Redis stores run (KEYS: buckets; ARGV: interval, limit, cost per key). */
extern const char moat_rl_redis_script[];

struct moat_gl_keys;
struct moat_gl_times;
struct moat_gl_answer;
/*
 * moat_rlredis_greylist - greylist.h's rule for K in one atomic script call, with the server's
 * clock. 0 with a->result and a->wait_ms, or -1 as moat_rlredis_take (a untouched).
 */
int moat_rlredis_greylist(struct moat_rlredis *r, const struct moat_gl_keys *k,
    const struct moat_gl_times *t, struct moat_gl_answer *a);

/* The greylisting script (KEYS: the network's and the triplet's; ARGV: delay, window, pass ttl
 * in milliseconds). */
extern const char moat_gl_redis_script[];

/* What greylist.c shares of the limiter (ratelimit.c): the Redis store (NULL: none), the
 * embedded store, its clock, ratelimit_redis_failure, and the log throttle (true at most once per
 * ratelimit_log_interval for KEY). */
struct moat_rlredis *moat__ratelimit_redis(struct moat_ratelimit *rl);
struct moat_rlmem *moat__ratelimit_mem(struct moat_ratelimit *rl);
uint64_t moat__ratelimit_now_us(struct moat_ratelimit *rl);
bool moat__ratelimit_fails_closed(const struct moat_ratelimit *rl);
bool moat__ratelimit_log_due(struct moat_ratelimit *rl, const char *key, size_t keylen);

#endif /* MOAT_RATELIMIT_H */
