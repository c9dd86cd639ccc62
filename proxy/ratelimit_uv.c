/*
 * ratelimit_uv.c - the rate-limit checks of mxmoat-proxy's loops, and the Redis store for a loop.
 *
 * One asynchronous hiredis connection per worker loop, so a check never blocks the loop: the
 * session waits for the answer as it waits for the backend. The call is the one atomic script of
 * src/ratelimit_redis.c (EVALSHA, EVAL once after NOSCRIPT).
 *
 * The connection is driven by our own libuv glue (struct rlr_io), not hiredis 0.14's adapter:
 * that one restarts its uv_poll on every command (an epoll_ctl DEL and ADD each time, about
 * three system calls a message under load) and drops the error a refused connect raises. Ours
 * writes what was queued in one go just before the loop next waits (a uv_prepare handle: every
 * check a loop iteration's callbacks made leaves in one write), polls for writability only
 * while connecting or when the socket is full, and hands poll errors to hiredis, which reports
 * them.
 *
 * Failure: a connect error, a lost connection or no answer within ratelimit_redis_timeout while
 * calls are pending marks Redis down; the pending checks and every check until the back-off ends
 * (100 ms doubling to 5 s) get the configured fallback at once (moat_ratelimit_fallback: the
 * embedded store, or a refusal); the first check after the back-off connects again.
 *
 * Owns struct px_rlredis (its timer, its hiredis context), the struct rlr_io of each connection
 * and one struct rlr_req per pending check; hands out verdicts through the caller's callback.
 */
#include "config.h"

#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "log.h"
#include "metrics.h"
#include "ratelimit_redis.h"
#include "text.h"
#include "ratelimit_uv.h"

struct px_rlredis {
	uv_loop_t *loop;
	struct moat_ratelimit *rl; /* borrowed */
	redisAsyncContext *ac; /* NULL: no connection (not used yet, or down) */
	uv_timer_t timer; /* fires when pending calls got no answer in time */
	unsigned pending; /* calls sent on ac and not answered */
	uint64_t retry_at; /* uv_now before which no connection is tried; 0: none */
	unsigned backoff_ms;
	unsigned timeout_ms;
	bool down; /* for one log line per outage */
	bool closing;
	char host[NI_MAXHOST]; /* numeric: hiredis resolves on the loop otherwise */
	int port;
	char sha[41];
};

struct rlr_req {
	struct px_rlredis *r;
	px_rl_done_fn done;
	void *arg;
	bool eval; /* resent with the script text after NOSCRIPT */
	uint64_t sent_ns; /* moat_metrics_now_ns when first sent */
	char sid[32];
	struct moat_rl_plan plan;
};

/* The libuv side of one hiredis connection; freed when both handles are closed. */
struct rlr_io {
	redisAsyncContext *ac; /* NULL once hiredis let go of the connection */
	uv_poll_t poll;
	uv_prepare_t flush; /* writes what was queued, before the loop waits */
	int want; /* UV_READABLE / UV_WRITABLE, as hiredis asked */
	int polled; /* the events the poll handle is started with */
	bool write_blocked; /* a flush left bytes: wait until writable */
	bool flushing;
	int open_handles;
};

static void rlr_on_timer(uv_timer_t *t);

/* rlr_io_poll_update - start, change or stop the poll only when the wanted events change. */
static void rlr_io_on_poll(uv_poll_t *h, int status, int events);

static void
rlr_io_poll_update(struct rlr_io *io)
{
	bool connected = io->ac != NULL && (io->ac->c.flags & REDIS_CONNECTED) != 0;
	int ev = io->want & UV_READABLE;

	/* connect's outcome shows as writability; after it, only a full socket waits for it */
	if ((io->want & UV_WRITABLE) && (!connected || io->write_blocked))
		ev |= UV_WRITABLE;
	if (ev == io->polled)
		return;
	io->polled = ev;
	if (ev != 0)
		uv_poll_start(&io->poll, ev, rlr_io_on_poll);
	else
		uv_poll_stop(&io->poll);
}

static void
rlr_io_on_poll(uv_poll_t *h, int status, int events)
{
	struct rlr_io *io = h->data;

	if (status < 0) {
		/* libuv stopped the poll; hiredis finds the error itself (SO_ERROR or read) */
		io->polled = 0;
		events = io->want & UV_WRITABLE ? UV_WRITABLE : UV_READABLE;
	}
	if (io->ac != NULL && (events & UV_READABLE))
		redisAsyncHandleRead(io->ac);
	if (io->ac != NULL && (events & UV_WRITABLE)) {
		io->write_blocked = false;
		redisAsyncHandleWrite(io->ac);
	}
	if (io->ac != NULL)
		rlr_io_poll_update(io);
}

/* rlr_io_on_flush - before the loop waits: one write for every command queued since the last. */
static void
rlr_io_on_flush(uv_prepare_t *h)
{
	struct rlr_io *io = h->data;

	uv_prepare_stop(h);
	if (io->ac == NULL || !(io->want & UV_WRITABLE))
		return;
	io->flushing = true;
	redisAsyncHandleWrite(io->ac);
	io->flushing = false;
	if (io->ac != NULL && (io->want & UV_WRITABLE)) {
		io->write_blocked = true; /* not all written: the poll takes over */
		rlr_io_poll_update(io);
	}
}

static void
rlr_io_add_read(void *arg)
{
	struct rlr_io *io = arg;

	io->want |= UV_READABLE;
	rlr_io_poll_update(io);
}

static void
rlr_io_del_read(void *arg)
{
	struct rlr_io *io = arg;

	io->want &= ~UV_READABLE;
	rlr_io_poll_update(io);
}

static void
rlr_io_add_write(void *arg)
{
	struct rlr_io *io = arg;

	io->want |= UV_WRITABLE;
	if (io->ac != NULL && (io->ac->c.flags & REDIS_CONNECTED) && !io->write_blocked) {
		if (!io->flushing)
			uv_prepare_start(&io->flush, rlr_io_on_flush);
		return;
	}
	rlr_io_poll_update(io);
}

static void
rlr_io_del_write(void *arg)
{
	struct rlr_io *io = arg;

	io->want &= ~UV_WRITABLE;
	io->write_blocked = false;
	rlr_io_poll_update(io);
}

static void
rlr_io_on_close(uv_handle_t *h)
{
	struct rlr_io *io = h->data;

	if (--io->open_handles == 0)
		free(io);
}

/* rlr_io_cleanup - hiredis frees the connection: close our handles (never from its callbacks). */
static void
rlr_io_cleanup(void *arg)
{
	struct rlr_io *io = arg;

	io->ac = NULL;
	uv_close((uv_handle_t *)&io->poll, rlr_io_on_close);
	uv_close((uv_handle_t *)&io->flush, rlr_io_on_close);
}

/* rlr_io_attach - drive AC from LOOP; 0 or -1. */
static int
rlr_io_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
	struct rlr_io *io = calloc(1, sizeof(*io));

	if (io == NULL)
		return -1;
	if (uv_poll_init(loop, &io->poll, ac->c.fd) != 0) {
		free(io);
		return -1;
	}
	uv_prepare_init(loop, &io->flush);
	io->poll.data = io->flush.data = io;
	io->open_handles = 2;
	io->ac = ac;
	ac->ev.data = io;
	ac->ev.addRead = rlr_io_add_read;
	ac->ev.delRead = rlr_io_del_read;
	ac->ev.addWrite = rlr_io_add_write;
	ac->ev.delWrite = rlr_io_del_write;
	ac->ev.cleanup = rlr_io_cleanup;
	return 0;
}

/* rlr_lost - the connection failed or was dropped: back off before the next try. */
static void
rlr_lost(struct px_rlredis *r, const char *why)
{
	r->ac = NULL;
	uv_timer_stop(&r->timer);
	if (r->closing)
		return;
	r->backoff_ms = moat__rlredis_backoff(r->backoff_ms);
	r->retry_at = uv_now(r->loop) + r->backoff_ms;
	if (!r->down)
		moat_log(LOG_WARNING, NULL, "ratelimit", "store=redis status=down error=%s", why);
	r->down = true;
}

/* rlr_drop - give up the connection now (pending calls complete with the fallback). */
static void
rlr_drop(struct px_rlredis *r, const char *why)
{
	redisAsyncContext *ac = r->ac;

	rlr_lost(r, why);
	if (ac != NULL)
		redisAsyncFree(ac); /* inside a reply callback hiredis defers it to the return */
}

/* rlr_finish - the verdict of Q: res filled by Redis (MOAT_RL_OK) or the fallback; Q is freed. */
static void
rlr_finish(struct rlr_req *q, struct moat_rl_result *res, enum moat_rl_status status)
{
	struct moat_ratelimit *rl = q->r->rl;
	struct moat_verdict v;

	moat_metrics_observe(moat_ratelimit_metrics(rl), MOAT_METRICS_REDIS,
	    moat_metrics_now_ns() - q->sent_ns);
	if (status == MOAT_RL_STORE_DOWN && q->r->closing) {
		/* shutting down: the sessions still draining count in memory, quietly */
		moat_ratelimit_local(rl, &q->plan, res);
		status = MOAT_RL_OK;
	} else if (status == MOAT_RL_STORE_DOWN) {
		moat_ratelimit_fallback(rl, &q->plan, res);
	}
	moat_ratelimit_decide(rl, &q->plan, res, status, q->sid, &v);
	q->done(q->arg, &v);
	free(q);
}

static void rlr_on_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* rlr_send - the script call for Q on the connection; 0 or -1. */
static int
rlr_send(struct px_rlredis *r, struct rlr_req *q)
{
	struct moat_rl_redis_call call; /* hiredis copies it into its output buffer */

	if (moat__rlredis_call(&call, moat_ratelimit_redis_prefix(r->rl),
		q->eval || r->sha[0] == '\0' ? NULL : r->sha, &q->plan) < 0 ||
	    redisAsyncFormattedCommand(r->ac, rlr_on_reply, q, call.buf, call.len) != REDIS_OK)
		return -1;
	if (r->pending++ == 0)
		uv_timer_start(&r->timer, rlr_on_timer, r->timeout_ms, 0);
	return 0;
}

static void
rlr_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct rlr_req *q = privdata;
	struct px_rlredis *r = q->r;
	struct moat_rl_result res[MOAT_RL_PLAN_MAX];

	if (r->pending > 0)
		r->pending--;
	if (reply == NULL) { /* the connection is going away */
		if (ac == r->ac)
			rlr_lost(r, "connection lost");
		rlr_finish(q, res, MOAT_RL_STORE_DOWN);
		return;
	}
	/* an answer: time runs again for the calls still pending */
	if (r->pending > 0)
		uv_timer_start(&r->timer, rlr_on_timer, r->timeout_ms, 0);
	else
		uv_timer_stop(&r->timer);
	if (!q->eval && moat__rlredis_noscript(reply)) {
		/* first use on this server, or after a restart or SCRIPT FLUSH: EVAL caches it */
		q->eval = true;
		if (ac == r->ac && rlr_send(r, q) == 0)
			return;
	}
	if (moat__rlredis_reply(reply, &q->plan, res) < 0) {
		if (ac == r->ac)
			rlr_drop(r, "bad reply");
		rlr_finish(q, res, MOAT_RL_STORE_DOWN);
		return;
	}
	if (r->down && !r->closing)
		moat_log(LOG_NOTICE, NULL, "ratelimit", "store=redis status=up");
	r->down = false;
	r->backoff_ms = 0;
	r->retry_at = 0;
	rlr_finish(q, res, MOAT_RL_OK);
}

static void
rlr_on_connect(const redisAsyncContext *ac, int status)
{
	struct px_rlredis *r = ac->data;

	/* on failure hiredis frees the context next, failing its pending calls */
	if (status != REDIS_OK && ac == r->ac)
		rlr_lost(r, "connect");
}

static void
rlr_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct px_rlredis *r = ac->data;

	(void)status;
	if (ac == r->ac)
		rlr_lost(r, "disconnected");
}

/* rlr_on_timer - calls pending and no answer for ratelimit_redis_timeout: Redis is down. */
static void
rlr_on_timer(uv_timer_t *t)
{
	struct px_rlredis *r = t->data;

	if (r->ac != NULL && r->pending > 0)
		rlr_drop(r, "timeout");
}

/* rlr_connect - start connecting (non-blocking; calls may be queued at once). 0 or -1. */
static int
rlr_connect(struct px_rlredis *r)
{
	redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);

	if (ac == NULL)
		return -1;
	if (ac->err != 0 || rlr_io_attach(ac, r->loop) < 0) {
		redisAsyncFree(ac);
		return -1;
	}
	moat__rlredis_reader_bound(ac->c.reader);
	ac->data = r;
	redisAsyncSetConnectCallback(ac, rlr_on_connect);
	redisAsyncSetDisconnectCallback(ac, rlr_on_disconnect);
	r->ac = ac;
	return 0;
}

/* rlr_take - send PLAN to Redis: 1 pending (DONE later), or -1: Redis is down, answer now. */
static int
rlr_take(struct px_rlredis *r, const struct moat_rl_plan *plan, const char *sid, px_rl_done_fn done,
    void *arg)
{
	struct rlr_req *q;

	if (r->ac == NULL) {
		if (r->retry_at != 0 && uv_now(r->loop) < r->retry_at)
			return -1;
		if (rlr_connect(r) < 0) {
			rlr_lost(r, "connect");
			return -1;
		}
	}
	if ((q = malloc(sizeof(*q))) == NULL)
		return -1;
	q->r = r;
	q->done = done;
	q->arg = arg;
	q->eval = false;
	q->sent_ns = moat_metrics_now_ns();
	snprintf(q->sid, sizeof(q->sid), "%s", sid != NULL ? sid : "-");
	q->plan = *plan;
	if (rlr_send(r, q) < 0) {
		free(q);
		return -1;
	}
	return 1;
}

int
px_ratelimit_charge(struct moat_ratelimit *rl, struct px_rlredis *r,
    const struct moat_rl_plan *plan, const char *sid, struct moat_verdict *v, px_rl_done_fn done,
    void *arg)
{
	struct moat_rl_result res[MOAT_RL_PLAN_MAX];
	enum moat_rl_status status = MOAT_RL_OK;

	if (plan->n > 0 && r != NULL && !r->closing) {
		if (rlr_take(r, plan, sid, done, arg) > 0)
			return 1;
		status = MOAT_RL_STORE_DOWN;
		moat_ratelimit_fallback(rl, plan, res);
	} else if (plan->n > 0) {
		moat_ratelimit_local(rl, plan, res);
	}
	moat_ratelimit_decide(rl, plan, res, status, sid, v);
	return 0;
}

struct px_rlredis *
px_rlredis_new(uv_loop_t *loop, struct moat_ratelimit *rl, const struct moat_conf *conf)
{
	struct px_rlredis *r = calloc(1, sizeof(*r));
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	char host[256];

	if (r == NULL)
		return NULL;
	/* resolved once here, at start-up: on the loop hiredis would call getaddrinfo and block */
	if (conf->ratelimit_redis == NULL ||
	    moat_hostport_split(conf->ratelimit_redis, host, sizeof(host), &r->port) < 0 ||
	    getaddrinfo(host, NULL, &hints, &ai) != 0 ||
	    getnameinfo(ai->ai_addr, ai->ai_addrlen, r->host, sizeof(r->host), NULL, 0,
		NI_NUMERICHOST) != 0) {
		if (ai != NULL)
			freeaddrinfo(ai);
		free(r);
		return NULL;
	}
	freeaddrinfo(ai);
	r->loop = loop;
	r->rl = rl;
	r->timeout_ms = conf->ratelimit_redis_timeout != 0 ? conf->ratelimit_redis_timeout : 200;
	moat__rlredis_sha1(r->sha);
	uv_timer_init(loop, &r->timer);
	r->timer.data = r;
	return r;
}

static void
rlr_on_close(uv_handle_t *h)
{
	free(h->data);
}

void
px_rlredis_close(struct px_rlredis *r)
{
	if (r == NULL || r->closing)
		return;
	r->closing = true;
	rlr_drop(r, "closing");
	uv_close((uv_handle_t *)&r->timer, rlr_on_close);
}
