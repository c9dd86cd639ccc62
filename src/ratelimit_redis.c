/*
 * ratelimit_redis.c - the shared rate-limit store in Redis, synchronous (hiredis).
 *
 * For callers that may block briefly: milter threads and the proxy's threadpool. The proxy's
 * event loops use proxy/ratelimit_uv.c, which sends the same script. One script call charges
 * every bucket of an event atomically, with the server's clock (so instances on different hosts
 * agree), and sets each key to expire when its bucket would be full again: nothing to clean up.
 *
 * Connections are pooled (a hiredis context is not thread-safe; each caller takes one). When
 * Redis cannot be reached every caller fails at once for a back-off period (100 ms doubling to
 * 5 s) instead of each waiting for its own timeout; one caller then probes again.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <openssl/evp.h>

#include "greylist.h"
#include "ratelimit_redis.h"
#include "text.h"

#define RLREDIS_POOL_MAX 32

/*
 * The bucket arithmetic of ratelimit_mem.c in Lua (Redis 7 replicates a script's effects, so
 * reading TIME in it is allowed). Per key: ARGV step_us (interval times cost), limit_us; two
 * numbers, not three: converting arguments is a good part of a call's cost in Redis. Returns
 * one integer per key: 0 allowed (charged), else milliseconds until allowed.
 */
const char moat_rl_redis_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local out = {}\n"
    "for i = 1, #KEYS do\n"
    "  local step = tonumber(ARGV[2 * i - 1])\n"
    "  local lim = tonumber(ARGV[2 * i])\n"
    "  local tat = tonumber(redis.call('GET', KEYS[i])) or now\n"
    "  if tat < now then tat = now end\n"
    "  local nxt = tat + step\n"
    "  if nxt - now <= lim then\n"
    "    redis.call('SET', KEYS[i], string.format('%.0f', nxt), 'PX', math.floor((nxt - now) / 1000) + 1)\n"
    "    out[i] = 0\n"
    "  else\n"
    "    local r = math.floor((nxt - now - lim + 999) / 1000)\n"
    "    if r < 1 then r = 1 end\n"
    "    out[i] = r\n"
    "  end\n"
    "end\n"
    "return out\n";

/*
 * greylist.c's rule (moat_greylist_step) with the server's clock, in milliseconds: a network that
 * passed ("gn:" key, present for its pass ttl, renewed by each message) passes; else the triplet
 * ("gt:" key, its first attempt, kept for delay + window) is new, early, or passes and lets its
 * network through. Returns {result, milliseconds left of the delay}, results as enum
 * moat_gl_result.
 */
const char moat_gl_redis_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "if redis.call('PEXPIRE', KEYS[1], ARGV[3]) == 1 then return {0, 0} end\n"
    "local delay = tonumber(ARGV[1])\n"
    "local span = delay + tonumber(ARGV[2])\n"
    "local first = tonumber(redis.call('GET', KEYS[2]))\n"
    "if first == nil or now < first or now - first >= span then\n"
    "  redis.call('SET', KEYS[2], string.format('%.0f', now), 'PX', string.format('%.0f', span))\n"
    "  return {2, delay}\n"
    "end\n"
    "if now - first < delay then return {3, delay - (now - first)} end\n"
    "redis.call('SET', KEYS[1], '1', 'PX', ARGV[3])\n"
    "redis.call('DEL', KEYS[2])\n"
    "return {1, 0}\n";

struct moat_rlredis {
	pthread_mutex_t lock; /* guards everything below */
	redisContext *idle[RLREDIS_POOL_MAX];
	size_t nidle;
	uint64_t down_until_ms; /* monotonic; 0: not known to be down */
	unsigned backoff_ms;
	bool probing; /* one caller is trying to reconnect */
	char host[256];
	int port;
	char prefix[MOAT_RL_REDIS_PREFIX_MAX];
	char sha[41];
	char gl_sha[41]; /* moat_gl_redis_script's */
	struct timeval timeout;
};

/* ---- shared with proxy/ratelimit_uv.c ---- */

/* rlredis_sha1_of - SCRIPT's SHA-1 in hex into OUT ("" on failure: EVAL is used then). */
static void
rlredis_sha1_of(const char *script, char out[41])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	static const char hex[] = "0123456789abcdef";

	out[0] = '\0';
	if (EVP_Digest(script, strlen(script), md, &len, EVP_sha1(), NULL) != 1 || len != 20)
		return;
	for (size_t i = 0; i < 20; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[40] = '\0';
}

void
moat__rlredis_sha1(char out[41])
{
	rlredis_sha1_of(moat_rl_redis_script, out);
}

/* rlredis_put_u64 - V in decimal at P; returns the end. */
static char *
rlredis_put_u64(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

/* rlredis_arg - append one bulk string (PART1 then PART2) to CALL; 0, or -1 when full. */
static int
rlredis_arg(struct moat_rl_redis_call *call, const char *part1, size_t len1, const char *part2,
    size_t len2)
{
	char *p = call->buf + call->len;

	/* "$" + up to 20 digits + CRLF, the bytes, CRLF */
	if (sizeof(call->buf) - call->len < 25 + len1 + len2)
		return -1;
	*p++ = '$';
	p = rlredis_put_u64(p, len1 + len2);
	*p++ = '\r';
	*p++ = '\n';
	memcpy(p, part1, len1);
	memcpy(p + len1, part2, len2);
	p += len1 + len2;
	*p++ = '\r';
	*p++ = '\n';
	call->len = (size_t)(p - call->buf);
	return 0;
}

/* rlredis_num - append V as a bulk string. */
static int
rlredis_num(struct moat_rl_redis_call *call, uint64_t v)
{
	char digits[20];
	size_t n = (size_t)(rlredis_put_u64(digits, v) - digits);

	return rlredis_arg(call, digits, n, "", 0);
}

/* rlredis_head - start CALL with NARGS arguments in all: EVALSHA SHA, or EVAL with SCRIPT's text
 * when sha is NULL, then the key count NKEYS. 0, or -1 when full. */
static int
rlredis_head(struct moat_rl_redis_call *call, size_t nargs, const char *sha, const char *script,
    size_t nkeys)
{
	/* cppcheck-suppress ctuuninitvar ; CALL is where the command is written, not read */
	char *p = call->buf;
	int rc;

	*p++ = '*';
	p = rlredis_put_u64(p, nargs);
	*p++ = '\r';
	*p++ = '\n';
	call->len = (size_t)(p - call->buf);
	if (sha != NULL)
		rc = rlredis_arg(call, "EVALSHA", 7, "", 0) |
		    rlredis_arg(call, sha, strlen(sha), "", 0);
	else
		rc = rlredis_arg(call, "EVAL", 4, "", 0) |
		    rlredis_arg(call, script, strlen(script), "", 0);
	return rc | rlredis_num(call, nkeys);
}

int
moat__rlredis_call(struct moat_rl_redis_call *call, const char *prefix, const char *sha,
    const struct moat_rl_plan *plan)
{
	size_t plen = strlen(prefix), n = plan->n;
	int rc;

	if (plen >= MOAT_RL_REDIS_PREFIX_MAX || n > MOAT_RL_PLAN_MAX)
		return -1;
	/* command, script, key count, the keys, two numbers a key */
	rc = rlredis_head(call, 3 + 3 * n, sha, moat_rl_redis_script, n);
	for (size_t i = 0; i < n; i++)
		rc |= rlredis_arg(call, prefix, plen, plan->req[i].key, plan->req[i].keylen);
	for (size_t i = 0; i < n; i++) {
		const struct moat_rl_req *q = &plan->req[i];
		/* the time this event moves the bucket ahead: one interval per token */
		rc |= rlredis_num(call, q->interval_us * q->cost) | rlredis_num(call, q->limit_us);
	}
	return rc != 0 ? -1 : 0;
}

int
moat__rlredis_reply(const redisReply *reply, const struct moat_rl_plan *plan,
    struct moat_rl_result *res)
{
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != plan->n)
		return -1;
	for (size_t i = 0; i < plan->n; i++)
		if (reply->element[i]->type != REDIS_REPLY_INTEGER ||
		    reply->element[i]->integer < 0)
			return -1;
	for (size_t i = 0; i < plan->n; i++) {
		res[i].allowed = reply->element[i]->integer == 0;
		res[i].retry_ms = (uint64_t)reply->element[i]->integer;
	}
	return 0;
}

static redisReplyObjectFunctions rlredis_fn; /* hiredis's own, but createArray */
static void *(*rlredis_create_array)(const redisReadTask *, int);
static pthread_once_t rlredis_fn_once = PTHREAD_ONCE_INIT;
static const redisReplyObjectFunctions *rlredis_fn_default;

/* rlredis_array - hiredis's array, or NULL (the reader's "out of memory" error: the connection
 * goes) for a count no reply of ours has. */
static void *
rlredis_array(const redisReadTask *task, int elements)
{
	if (elements > MOAT_RL_PLAN_MAX)
		return NULL;
	return rlredis_create_array(task, elements);
}

static void
rlredis_fn_init(void)
{
	rlredis_fn = *rlredis_fn_default;
	rlredis_create_array = rlredis_fn.createArray;
	rlredis_fn.createArray = rlredis_array;
}

void
moat__rlredis_reader_bound(redisReader *reader)
{
	if (reader == NULL || reader->fn == NULL)
		return;
	rlredis_fn_default = reader->fn;
	pthread_once(&rlredis_fn_once, rlredis_fn_init);
	reader->fn = &rlredis_fn;
}

bool
moat__rlredis_noscript(const redisReply *reply)
{
	return reply != NULL && reply->type == REDIS_REPLY_ERROR && reply->str != NULL &&
	    strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

unsigned
moat__rlredis_backoff(unsigned prev_ms)
{
	if (prev_ms == 0)
		return MOAT_RL_REDIS_BACKOFF_MIN_MS;
	return prev_ms * 2 > MOAT_RL_REDIS_BACKOFF_MAX_MS ? MOAT_RL_REDIS_BACKOFF_MAX_MS
							  : prev_ms * 2;
}

/* ---- the synchronous store ---- */

static uint64_t
rlredis_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct moat_rlredis *
moat_rlredis_new(const char *hostport, const char *prefix, unsigned timeout_ms)
{
	struct moat_rlredis *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	if (hostport == NULL ||
	    moat_hostport_split(hostport, r->host, sizeof(r->host), &r->port) < 0 ||
	    strlen(prefix) >= sizeof(r->prefix)) {
		free(r);
		return NULL;
	}
	snprintf(r->prefix, sizeof(r->prefix), "%s", prefix);
	moat__rlredis_sha1(r->sha);
	rlredis_sha1_of(moat_gl_redis_script, r->gl_sha);
	if (timeout_ms == 0)
		timeout_ms = 200;
	r->timeout.tv_sec = timeout_ms / 1000;
	r->timeout.tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000;
	pthread_mutex_init(&r->lock, NULL);
	return r;
}

void
moat_rlredis_free(struct moat_rlredis *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nidle; i++)
		redisFree(r->idle[i]);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/*
 * rlredis_get - a connection: an idle one (*reused set), or a new one. NULL while Redis is in
 * its back-off period or cannot be reached.
 */
static redisContext *
rlredis_get(struct moat_rlredis *r, bool *reused, bool *backing_off)
{
	redisContext *c = NULL;
	bool probe = false;

	*reused = false;
	*backing_off = false;
	pthread_mutex_lock(&r->lock);
	if (r->down_until_ms != 0) {
		if (r->probing || rlredis_now_ms() < r->down_until_ms) {
			pthread_mutex_unlock(&r->lock);
			*backing_off = true;
			return NULL;
		}
		r->probing = probe = true;
	} else if (r->nidle > 0) {
		c = r->idle[--r->nidle];
		*reused = true;
	}
	pthread_mutex_unlock(&r->lock);
	if (c != NULL)
		return c;
	c = redisConnectWithTimeout(r->host, r->port, r->timeout);
	if (c != NULL && c->err == 0 && redisSetTimeout(c, r->timeout) == REDIS_OK) {
		moat__rlredis_reader_bound(c->reader);
		return c;
	}
	if (c != NULL)
		redisFree(c);
	pthread_mutex_lock(&r->lock);
	if (probe)
		r->probing = false;
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* rlredis_put - C worked: back to the pool, and Redis is up. */
static void
rlredis_put(struct moat_rlredis *r, redisContext *c)
{
	pthread_mutex_lock(&r->lock);
	r->down_until_ms = 0;
	r->backoff_ms = 0;
	r->probing = false;
	if (r->nidle < RLREDIS_POOL_MAX) {
		r->idle[r->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&r->lock);
	if (c != NULL)
		redisFree(c);
}

/* rlredis_down - Redis failed: start or lengthen the back-off, drop the idle connections. */
static void
rlredis_down(struct moat_rlredis *r)
{
	redisContext *stale[RLREDIS_POOL_MAX];
	size_t n;

	pthread_mutex_lock(&r->lock);
	r->backoff_ms = moat__rlredis_backoff(r->backoff_ms);
	r->down_until_ms = rlredis_now_ms() + r->backoff_ms;
	r->probing = false;
	n = r->nidle;
	memcpy(stale, r->idle, n * sizeof(redisContext *));
	r->nidle = 0;
	pthread_mutex_unlock(&r->lock);
	for (size_t i = 0; i < n; i++)
		redisFree(stale[i]);
}

/* rlredis_command - send CALL on C and wait for its reply (NULL on any failure). */
static redisReply *
rlredis_command(redisContext *c, const struct moat_rl_redis_call *call)
{
	void *reply = NULL;

	if (redisAppendFormattedCommand(c, call->buf, call->len) != REDIS_OK ||
	    redisGetReply(c, &reply) != REDIS_OK)
		return NULL;
	return reply;
}

/* One script call: how to write it (sha NULL: EVAL with the text) and how to read its reply. */
struct rlredis_op {
	int (*build)(struct moat_rl_redis_call *call, const char *prefix, const char *sha,
	    const void *in);
	int (*parse)(const redisReply *reply, const void *in, void *out);
	const char *sha;
	const void *in;
	void *out;
};

/* rlredis_run - OP on C: 0 with its output, -1 on any failure (C is then unusable). */
static int
rlredis_run(struct moat_rlredis *r, redisContext *c, const struct rlredis_op *op)
{
	struct moat_rl_redis_call call;
	redisReply *reply;
	int rc;

	if (op->build(&call, r->prefix, op->sha[0] != '\0' ? op->sha : NULL, op->in) < 0)
		return -1;
	reply = rlredis_command(c, &call);
	if (moat__rlredis_noscript(reply)) {
		/* First use on this server (or after a restart or SCRIPT FLUSH): EVAL caches it. */
		freeReplyObject(reply);
		reply = op->build(&call, r->prefix, NULL, op->in) == 0 ? rlredis_command(c, &call)
								       : NULL;
	}
	rc = reply != NULL ? op->parse(reply, op->in, op->out) : -1;
	if (reply != NULL)
		freeReplyObject(reply);
	return rc;
}

/* rlredis_exec - OP on a pooled connection, with one fresh try; -1 when Redis is down. */
static int
rlredis_exec(struct moat_rlredis *r, const struct rlredis_op *op)
{
	redisContext *c;
	bool reused, backing_off;

	for (int attempt = 0; attempt < 2; attempt++) {
		if ((c = rlredis_get(r, &reused, &backing_off)) == NULL) {
			if (backing_off)
				return -1; /* known down: fail fast, the back-off stays as it is */
			break;
		}
		if (rlredis_run(r, c, op) == 0) {
			rlredis_put(r, c);
			return 0;
		}
		redisFree(c);
		/* A pooled connection may have died with a Redis restart: one fresh try. */
		if (!reused)
			break;
	}
	rlredis_down(r);
	return -1;
}

static int
rlredis_take_build(struct moat_rl_redis_call *call, const char *prefix, const char *sha,
    const void *in)
{
	return moat__rlredis_call(call, prefix, sha, in);
}

static int
rlredis_take_parse(const redisReply *reply, const void *in, void *out)
{
	return moat__rlredis_reply(reply, in, out);
}

int
moat_rlredis_take(struct moat_rlredis *r, const struct moat_rl_plan *plan,
    struct moat_rl_result *res)
{
	struct rlredis_op op = { rlredis_take_build, rlredis_take_parse, r->sha, plan, res };

	if (plan->n == 0)
		return 0;
	return rlredis_exec(r, &op);
}

/* ---- greylisting (greylist.h) ---- */

struct rlredis_gl_in {
	const struct moat_gl_keys *k;
	const struct moat_gl_times *t;
};

int
moat__rlredis_gl_call(struct moat_rl_redis_call *call, const char *prefix, const char *sha,
    const struct moat_gl_keys *k, const struct moat_gl_times *t)
{
	size_t plen = strlen(prefix);

	if (plen >= MOAT_RL_REDIS_PREFIX_MAX)
		return -1;
	return rlredis_head(call, 8, sha, moat_gl_redis_script, 2) |
	    rlredis_arg(call, prefix, plen, k->net, k->netlen) |
	    rlredis_arg(call, prefix, plen, k->triplet, k->tripletlen) |
	    rlredis_num(call, t->delay_ms) | rlredis_num(call, t->window_ms) |
	    rlredis_num(call, t->pass_ttl_ms);
}

int
moat__rlredis_gl_reply(const redisReply *reply, struct moat_gl_answer *a)
{
	const redisReply *res, *wait;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2)
		return -1;
	res = reply->element[0];
	wait = reply->element[1];
	if (res->type != REDIS_REPLY_INTEGER || wait->type != REDIS_REPLY_INTEGER ||
	    res->integer < MOAT_GL_NET_PASSED || res->integer > MOAT_GL_EARLY || wait->integer < 0)
		return -1;
	a->result = (enum moat_gl_result)res->integer;
	a->wait_ms = (uint64_t)wait->integer;
	return 0;
}

static int
rlredis_gl_build(struct moat_rl_redis_call *call, const char *prefix, const char *sha,
    const void *in)
{
	const struct rlredis_gl_in *gl = in;

	return moat__rlredis_gl_call(call, prefix, sha, gl->k, gl->t);
}

static int
rlredis_gl_parse(const redisReply *reply, const void *in, void *out)
{
	(void)in;
	return moat__rlredis_gl_reply(reply, out);
}

int
moat_rlredis_greylist(struct moat_rlredis *r, const struct moat_gl_keys *k,
    const struct moat_gl_times *t, struct moat_gl_answer *a)
{
	struct rlredis_gl_in in = { k, t };
	struct moat_gl_answer got;
	struct rlredis_op op = { rlredis_gl_build, rlredis_gl_parse, r->gl_sha, &in, &got };

	if (rlredis_exec(r, &op) < 0)
		return -1;
	a->result = got.result;
	a->wait_ms = got.wait_ms;
	return 0;
}
