/*
 * conn.c - the libuv side of a session: its two legs (stream.h), timers, the work items (on the
 * threadpool, or queued on the loop when they cannot block), write batching and backpressure. A
 * struct conn embeds its handles, counts those open and is freed only in the last close callback
 * with no work item pending.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>
#include <uv.h>

#include "cidr.h"
#include "conn.h"
#include "log.h"
#include "proxy_inbound.h"
#include "ratelimit_uv.h"
#include "smtp_session.h"
#include "stream.h"
#include "tls.h"
#include "worker.h"

#define OUT_MAX ((size_t)64 * 1024) /* replies queued for the client before we stop reading */
#define BACKEND_HIGH ((size_t)256 * 1024) /* backend write queue that pauses client reads */

static void conn_update(struct conn *c);
static void on_close(uv_handle_t *h);

/* conn_close_client - close the client stream and its timer (once). */
static void
conn_close_client(struct conn *c)
{
	if (!uv_is_closing((uv_handle_t *)&c->timer))
		uv_close((uv_handle_t *)&c->timer, on_close);
	px_stream_close(&c->client, PX_STREAM_ABORT);
}

/* conn_maybe_free - the last handle closed and no work item holds the session. */
static void
conn_maybe_free(struct conn *c)
{
	if (c->open > 0 || c->work_pending || c->rl_pending)
		return;
	if (atomic_fetch_sub(&c->w->sessions, 1) == 1 && c->w->stopping)
		px__worker_drained(c->w);

	px_session_free(c->s);
	free(c->pin);
	free(c->early);
	free(c->out);
	free(c);
}

static void
on_close(uv_handle_t *h)
{
	struct conn *c = h->data;

	c->open--;
	conn_maybe_free(c);
}

/* conn_flush - one write for everything the session said during this event (RFC 2920). */
static void
conn_flush(struct conn *c)
{
	if (c->out_len == 0 || uv_is_closing(&c->client.h.handle))
		return;
	if (px_stream_write(&c->client, c->out, c->out_len) < 0) {
		c->out_len = 0;
		px_session_client_gone(c->s);
		px__conn_close(c);
		return;
	}
	c->out_len = 0;
	if (c->client.tls != NULL)
		return;
	/* written or copied into the write request: an idle session keeps no reply buffer */
	free(c->out);
	c->out = NULL;
	c->out_cap = 0;
}

/* ---- the client leg's callbacks ---- */

static char *
client_rbuf(void *arg, size_t *avail)
{
	struct conn *c = arg;

	return px_session_rbuf(c->s, avail);
}

static void
client_rdone(void *arg, size_t n)
{
	struct conn *c = arg;

	px_session_rdone(c->s, n);
}

static size_t
client_room(void *arg)
{
	struct conn *c = arg;

	return px_session_rroom(c->s);
}

/* client_input - plaintext from TLS (or that came with a PROXY header), as far as it fits. */
static void
client_input(void *arg, const char *p, size_t n)
{
	struct conn *c = arg;
	size_t avail;
	char *q = px_session_rbuf(c->s, &avail);

	if (q == NULL || avail < n)
		return;
	memcpy(q, p, n);
	px_session_rdone(c->s, n);
}

static void
client_tls_open(void *arg, const struct moat_tls_info *info)
{
	struct conn *c = arg;

	px_session_tls_started(c->s, info);
	if (c->tls_implicit) /* RFC 8314: the greeting comes after the handshake */
		px_session_start(c->s, px_session_conf(c->s)->proxy_greet_pause == 0);
}

/* client_error - client gone at any state: no final dot was sent for an unfinished message. */
static void
client_error(void *arg, const char *why)
{
	struct conn *c = arg;

	if (strcmp(why, "tls") == 0)
		moat_log(LOG_NOTICE, px_session_id(c->s), "tls", "error=%s",
		    px_stream_tls_error(&c->client));
	px_session_client_gone(c->s);
	px__conn_close(c);
}

static void
client_update(void *arg)
{
	struct conn *c = arg;

	if (!c->closing)
		conn_update(c);
}

void
px__conn_client_closed(void *arg)
{
	struct conn *c = arg;

	/* a drained close ends here: the timer that bounded it goes too */
	if (!uv_is_closing((uv_handle_t *)&c->timer))
		uv_close((uv_handle_t *)&c->timer, on_close);
	c->open--;
	conn_maybe_free(c);
}

static const struct px_stream_cb client_cb = {
	.rbuf = client_rbuf,
	.rdone = client_rdone,
	.room = client_room,
	.input = client_input,
	.tls_open = client_tls_open,
	.error = client_error,
	.written = client_update,
	.update = client_update,
	.closed = px__conn_client_closed,
};

/* ---- the backend leg's callbacks ---- */

/* bconn_abort - the session is done with the backend leg: close it now. */
static void
bconn_abort(struct conn *c)
{
	struct bconn *b = c->b;

	c->b = NULL;
	px_stream_close(&b->st, PX_STREAM_ABORT);
}

static void
backend_input(void *arg, const char *p, size_t n)
{
	struct bconn *b = arg;

	px_session_backend_input(b->c->s, p, n);
}

static void
backend_tls_open(void *arg, const struct moat_tls_info *info)
{
	struct bconn *b = arg;

	px_session_backend_tls_done(b->c->s, info);
}

/* backend_error - the backend leg is lost (EOF, read or write error, TLS failure): close it, tell
 * the session. */
static void
backend_error(void *arg, const char *why)
{
	struct bconn *b = arg;
	struct conn *c = b->c;

	if (strcmp(why, "tls") == 0)
		moat_log(LOG_WARNING, px_session_id(c->s), "backend", "tls=failed error=%s",
		    px_stream_tls_error(&b->st));
	bconn_abort(c);
	px_session_backend_error(c->s, why);
}

static void
backend_connected(void *arg, int status)
{
	struct bconn *b = arg;
	struct conn *c = b->c;

	if (status == 0) {
		px_session_backend_connected(c->s);
		return;
	}
	moat_log(LOG_WARNING, px_session_id(c->s), "backend", "error=connect:%s",
	    uv_err_name(status));
	bconn_abort(c);
	px_session_backend_error(c->s, "connect");
}

static void
backend_written(void *arg)
{
	struct bconn *b = arg;
	struct conn *c = b->c;

	if (c->b == b && !c->closing)
		px_session_backend_drained(
		    c->s); /* holding mode: the next piece of a held message */
	if (!c->closing)
		conn_update(c);
}

static void
backend_update(void *arg)
{
	struct bconn *b = arg;

	client_update(b->c);
}

static void
backend_closed(void *arg)
{
	struct bconn *b = arg;
	struct conn *c = b->c;

	free(b);
	c->open--;
	conn_maybe_free(c);
}

static const struct px_stream_cb backend_cb = {
	.input = backend_input,
	.tls_open = backend_tls_open,
	.error = backend_error,
	.connected = backend_connected,
	.written = backend_written,
	.update = backend_update,
	.closed = backend_closed,
};

/* ---- px_ops ---- */

static void
op_client_write(void *io, const char *p, size_t n)
{
	struct conn *c = io;

	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 512;
		char *q;

		while (cap < c->out_len + n)
			cap *= 2;
		if (cap > OUT_MAX + 8192 || (q = realloc(c->out, cap)) == NULL)
			return; /* cannot happen: we stop reading long before */
		c->out = q;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

static void
op_client_close(void *io)
{
	struct conn *c = io;

	conn_flush(c);
	c->close_after_write = true;
	px__conn_close(c);
}

static int
op_backend_open(void *io)
{
	struct conn *c = io;
	struct bconn *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return -1;
	b->c = c;
	if (px_stream_connect(&b->st, &c->w->loop, px_session_conf(c->s)->proxy_backend,
		&backend_cb, b) != 0) {
		if (b->st.closing)
			c->open++; /* backend_closed frees it */
		else
			free(b);
		return -1;
	}
	c->open++;
	c->b = b;
	return 0;
}

static void
op_backend_write(void *io, const char *p, size_t n)
{
	struct conn *c = io;
	struct bconn *b = c->b;

	if (b == NULL || !b->st.connected)
		return;
	if (px_stream_write(&b->st, p, n) < 0)
		backend_error(b, "write");
}

/* tls_ctx_current - a reference to the current generation's TLS contexts (NULL: none). */
static struct moat_tls_ctx *
tls_ctx_current(struct px_worker *w)
{
	return moat_policy_frontend(w->pol);
}

/* op_backend_starttls - a verifying client session on the backend leg, ClientHello out. */
static int
op_backend_starttls(void *io)
{
	struct conn *c = io;
	struct bconn *b = c->b;
	struct moat_tls_ctx *ctx;
	char err[MOAT_TLS_ERR_MAX];
	int rc;

	if (b == NULL || (ctx = tls_ctx_current(c->w)) == NULL)
		return -1;
	rc = px_stream_tls_start(&b->st, ctx, false, err, sizeof(err));
	moat_tls_ctx_unref(ctx); /* the session holds its own reference */
	if (rc < 0 && b->st.tls == NULL)
		moat_log(LOG_WARNING, px_session_id(c->s), "backend", "tls=failed error=%s", err);
	return rc;
}

static void
op_backend_close(void *io, bool graceful)
{
	struct conn *c = io;
	struct bconn *b = c->b;

	if (b == NULL)
		return;
	c->b = NULL;
	uv_timer_stop(&c->btimer);
	px_stream_close(&b->st, graceful ? PX_STREAM_GRACEFUL : PX_STREAM_ABORT);
}

static void
work_cb(uv_work_t *req)
{
	struct conn *c = req->data;

	px_session_work_run(c->s);
}

/* work_finish - on the loop, the work item has run: the session takes its answer. */
static void
work_finish(struct conn *c)
{
	c->work_pending = false;
	if (c->closing) {
		conn_maybe_free(c);
		return;
	}
	px_session_work_done(c->s);
	if (!c->closing)
		conn_update(c);
}

static void
after_work_cb(uv_work_t *req, int status)
{
	(void)status;
	work_finish(req->data);
}

/* on_inline - the idle phase: run the items queued on the loop so far, in order (those they
 * queue wait for the next turn of the loop). A session closed meanwhile skips its item. */
static void
on_inline(uv_idle_t *h)
{
	struct px_worker *w = h->data;
	struct conn *c = w->inline_head, *next;

	w->inline_head = w->inline_tail = NULL;
	uv_idle_stop(h);
	for (; c != NULL; c = next) {
		next = c->inline_next; /* c may be freed below; the others hold work_pending */
		c->inline_next = NULL;
		if (!c->closing)
			px_session_work_run(c->s);
		work_finish(c);
	}
}

/*
 * op_work - run the session's work item later, on the threadpool when it may block (DNS, signing,
 * hashing a held body, spool I/O: px_session_work_blocks), else on the loop from the idle handle,
 * which saves the two thread hand-offs (futex, async wake-up) of the pool per MAIL and per end of
 * data. Either way the answer comes from a later callback, never inside the caller's stack.
 */
static void
op_work(void *io)
{
	struct conn *c = io;
	struct px_worker *w = c->w;

	c->work_pending = true;
	if (px_session_work_blocks(c->s)) {
		c->work.data = c;
		if (uv_queue_work(&w->loop, &c->work, work_cb, after_work_cb) == 0)
			return;
		/* the pool refused: run it on the loop rather than lose the answer */
	}
	if (w->inline_tail != NULL)
		w->inline_tail->inline_next = c;
	else
		w->inline_head = c;
	w->inline_tail = c;
	uv_idle_start(&w->inline_idle, on_inline);
}

/* conn_rl_done - the verdict of a check that waited for Redis. */
static void
conn_rl_done(void *arg, const struct moat_verdict *v)
{
	struct conn *c = arg;

	c->rl_pending = c->rl_hold_input = false;
	if (c->closing) {
		conn_maybe_free(c);
		return;
	}
	px_session_ratelimit_done(c->s, v);
	if (c->early != NULL && c->client.tls != NULL && !c->closing)
		px_stream_feed(&c->client, c->early,
		    c->nearly); /* implicit TLS allowed: its first bytes */
	free(c->early);
	c->early = NULL;
	if (!c->closing)
		conn_update(c);
}

static int
op_ratelimit(void *io, const struct moat_rl_plan *plan, const char *sid, struct moat_verdict *v)
{
	struct conn *c = io;
	enum moat_rl_event ev = plan->ev;
	int rc;

	rc = px_ratelimit_charge(c->w->rl, c->w->rlr, plan, sid, v, conn_rl_done, c);
	c->rl_pending = rc > 0;
	/*
	 * Before the greeting (early talkers) and around a TLS handshake (no plaintext may be taken
	 * after STARTTLS) input waits in the kernel; at RCPT it is read on, as while the backend
	 * answers, which spares two epoll_ctl calls a message.
	 */
	c->rl_hold_input = rc > 0 && (ev == MOAT_RL_EV_CONNECT || ev == MOAT_RL_EV_TLS);
	return rc;
}

/* op_backend_learned - the backend's extensions, for the worker's later sessions, under the
 * configuration current now; a leg of a session older than the last reload teaches nothing. */
static void
op_backend_learned(void *io, const struct moat_conf *conf, unsigned exts)
{
	struct conn *c = io;
	struct px_worker *w = c->w;
	struct moat_conf *cur = moat_policy_conf(w->pol);

	if (cur != conf) {
		moat_conf_unref(cur);
		return;
	}
	moat_conf_unref(w->bexts_conf);
	w->bexts_conf = cur;
	w->bexts = exts;
}

static int
op_backend_exts(void *io, const struct moat_conf *conf)
{
	struct conn *c = io;

	return c->w->bexts_conf != NULL && c->w->bexts_conf == conf ? (int)c->w->bexts : -1;
}

/* op_client_starttls - the 220 goes out in clear, then the leg is TLS, on the worker's current
 * context. */
static int
op_client_starttls(void *io)
{
	struct conn *c = io;
	struct moat_tls_ctx *ctx;
	char err[MOAT_TLS_ERR_MAX];
	int rc;

	conn_flush(c);
	if (c->closing || (ctx = tls_ctx_current(c->w)) == NULL)
		return -1;
	rc = px_stream_tls_start(&c->client, ctx, true, err, sizeof(err));
	moat_tls_ctx_unref(ctx); /* the session holds its own reference */
	if (rc < 0)
		moat_log(LOG_WARNING, c->s != NULL ? px_session_id(c->s) : NULL, "tls", "error=%s",
		    err);
	return rc;
}

static size_t
op_backend_queued(void *io)
{
	struct conn *c = io;

	return c->b != NULL ? px_stream_queued(&c->b->st) : 0;
}

static const struct px_ops conn_ops = {
	op_client_write,
	op_client_close,
	op_backend_open,
	op_backend_write,
	op_backend_close,
	op_work,
	op_client_starttls,
	op_backend_queued,
	op_ratelimit,
	op_backend_starttls,
	op_backend_learned,
	op_backend_exts,
};

/* ---- client leg ---- */

void
px__conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_timer_stop(&c->btimer);
	if (!uv_is_closing((uv_handle_t *)&c->btimer))
		uv_close((uv_handle_t *)&c->btimer, on_close);
	if (c->b != NULL)
		bconn_abort(c);
	if (c->close_after_write && px_stream_queued(&c->client) > 0) {
		/* let the last replies out; the timer bounds the wait */
		px_stream_close(&c->client, PX_STREAM_DRAIN);
		uv_timer_start(&c->timer, px__conn_on_timer, 10000, 0);
		return;
	}
	conn_close_client(c);
}

/* rate_due - has the current proxy_min_data_rate window ended? */
static bool
rate_due(struct conn *c)
{
	return uv_now(&c->w->loop) - c->rate_start >=
	    px_session_conf(c->s)->proxy_min_data_rate_window;
}

/*
 * rate_check - a window of DATA has passed: a client that sent less than proxy_min_data_rate
 * bytes/s over it (a slow drip that resets every idle timer) gets 421 4.4.2, and the backend
 * transaction is aborted without its final dot; otherwise the next window starts.
 */
static void
rate_check(struct conn *c)
{
	const struct moat_conf *conf = px_session_conf(c->s);
	uint64_t ms = uv_now(&c->w->loop) - c->rate_start;
	uint64_t bytes = c->client.bytes_in - c->rate_base;

	if (bytes * 1000 < (uint64_t)conf->proxy_min_data_rate * ms) {
		moat_log(LOG_NOTICE, px_session_id(c->s), "data-rate",
		    "bytes=%llu ms=%llu min=%u/s", (unsigned long long)bytes,
		    (unsigned long long)ms, conf->proxy_min_data_rate);
		px_session_timeout(c->s, "data-rate");
		return;
	}
	c->rate_start = uv_now(&c->w->loop);
	c->rate_base = c->client.bytes_in;
}

void
px__conn_on_timer(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->closing) {
		conn_close_client(c);
		return;
	}
	if (c->pin != NULL) {
		moat_log(LOG_NOTICE, NULL, "proxy-header", "from=%s port=%u error=timeout len=%zu",
		    c->pin->paddr, c->pin->pport, c->pin->len);
		px__conn_close(c);
		return;
	}
	if (px_stream_tls_handshaking(&c->client)) {
		/* tls_handshake_timeout; nothing can be said in clear */
		moat_log(LOG_NOTICE, px_session_id(c->s), "tls", "error=handshake-timeout");
		px_session_client_gone(c->s);
		px__conn_close(c);
		return;
	}
	if (c->rate_start != 0 && rate_due(c)) {
		rate_check(c);
	} else if (px_session_phase(c->s) == PX_PHASE_GREET) {
		px_session_greet(c->s);
	} else {
		uint64_t life = px_session_conf(c->s)->proxy_session_lifetime;

		px_session_timeout(c->s,
		    uv_now(&c->w->loop) - c->start >= life        ? "lifetime"
			: px_session_phase(c->s) == PX_PHASE_DATA ? "data"
								  : "command");
	}
	if (!c->closing)
		conn_update(c);
}

static void
on_btimer(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->closing || c->b == NULL)
		return;
	op_backend_close(c, false);
	px_session_backend_error(c->s, "timeout");
	if (!c->closing)
		conn_update(c);
}

/*
 * rate_update - the proxy_min_data_rate window: it runs only in DATA while we read the client and
 * wait for nobody else (backpressure or a backend reply restarts it), and its end arms the timer.
 */
static void
rate_update(struct conn *c, enum px_phase ph, uint64_t now)
{
	const struct moat_conf *conf = px_session_conf(c->s);
	uint64_t end;

	if (ph != PX_PHASE_DATA || conf->proxy_min_data_rate == 0 || !c->client.reading ||
	    px_session_backend_waiting(c->s)) {
		c->rate_start = 0;
		return;
	}
	if (c->rate_start == 0) {
		c->rate_start = now;
		c->rate_base = c->client.bytes_in;
	}
	end = c->rate_start + conf->proxy_min_data_rate_window;
	if (end <= now)
		end = now + 1;
	if (end - now < uv_timer_get_due_in(&c->timer))
		uv_timer_start(&c->timer, px__conn_on_timer, end - now, 0);
}

/* handshake_left - what is left of tls_handshake_timeout for a handshake that began at START. */
static uint64_t
handshake_left(const struct moat_conf *conf, uint64_t now, uint64_t start)
{
	return now - start >= conf->tls_handshake_timeout
	    ? 1
	    : conf->tls_handshake_timeout - (now - start);
}

/* conn_update - after every event: flush replies, set timers, apply backpressure. */
static void
conn_update(struct conn *c)
{
	const struct moat_conf *conf;
	enum px_phase ph;
	uint64_t now, left, t;
	bool want;

	if (!c->closing)
		px_stream_tls_pump(&c->client); /* plaintext the session had no room for */
	conn_flush(c);
	if (c->closing)
		return;
	conf = px_session_conf(c->s);
	ph = px_session_phase(c->s);
	now = uv_now(&c->w->loop);
	left = now - c->start >= conf->proxy_session_lifetime
	    ? 1
	    : conf->proxy_session_lifetime - (now - c->start);
	if (px_stream_tls_handshaking(&c->client))
		/* from the start of the handshake, not reset by each byte (slowloris) */
		t = handshake_left(conf, now, c->client.tls_start);
	else if (c->rl_pending || px_session_backend_waiting(c->s))
		t = left; /* the backend timer, or the Redis store's own timeout, bounds it */
	else if (ph == PX_PHASE_GREET && c->work_pending)
		/* the connect checks' work item (DNS lists) bounds itself; the pause, once over,
		 * only marks the greeting due (a 0 timer re-armed here would spin the loop) */
		t = now - c->start >= conf->proxy_greet_pause
		    ? left
		    : conf->proxy_greet_pause - (now - c->start);
	else if (ph == PX_PHASE_GREET)
		t = conf->proxy_greet_pause;
	else
		t = ph == PX_PHASE_DATA ? conf->proxy_timeout_data : conf->proxy_timeout_command;
	uv_timer_start(&c->timer, px__conn_on_timer, t < left ? t : left, 0);
	if (c->b != NULL && px_stream_tls_handshaking(&c->b->st))
		/* the backend's handshake, from its start, within tls_handshake_timeout */
		uv_timer_start(&c->btimer, on_btimer, handshake_left(conf, now, c->b->st.tls_start),
		    0);
	else if (px_session_backend_waiting(c->s))
		uv_timer_start(&c->btimer, on_btimer, conf->proxy_timeout_backend, 0);
	else
		uv_timer_stop(&c->btimer);
	/* nothing is read while a connect or TLS limit is awaited (implicit TLS has no engine yet) */
	want = (px_session_rroom(c->s) > 0 || (c->client.tls != NULL && !c->client.tls_reported)) &&
	    !c->rl_hold_input && px_stream_queued(&c->client) < OUT_MAX &&
	    (c->b == NULL || px_stream_queued(&c->b->st) < BACKEND_HIGH);
	if (want && !c->client.reading) {
		(void)px_stream_read_start(&c->client);
		c->rate_start = 0; /* a window never spans a pause of ours */
	} else if (!want) {
		px_stream_read_stop(&c->client);
	}
	rate_update(c, ph, now);
}

/* px__conn_begin - the session for a client at paddr:pport (from the socket, or from a load balancer's
 * PROXY header); early: bytes that came with the header, handed to the session (or to TLS). */
void
px__conn_begin(struct conn *c, const char *paddr, unsigned pport, const char *listener,
    const char *early, size_t nearly)
{
	struct px_worker *w = c->w;
	struct moat_client mc;

	mc.addr = paddr;
	mc.port = pport;
	mc.name = NULL;
	mc.listener = listener;
	mc.session_id = NULL;
	px_stream_set_cb(&c->client, &client_cb, c);
	c->s = px_session_new(w->pol, &mc, c->laddr, c->lport, &conn_ops, c);
	if (c->s == NULL) {
		static const char oom[] = "421 4.3.0 Out of memory\r\n";
		uv_buf_t b = uv_buf_init((char *)oom, sizeof(oom) - 1);

		(void)uv_try_write(&c->client.h.stream, &b, 1);
		px__conn_close(c);
		return;
	}
	moat_log(LOG_INFO, px_session_id(c->s), "connect", "client=%s port=%u listener=%s", paddr,
	    pport, listener);
	/* implicit-TLS listeners greet after the handshake; plaintext ones offer STARTTLS */
	if (c->tls_implicit) {
		px_session_tls_implicit(c->s); /* the TLS handshake limit, then TLS starts */
		if (nearly > 0 && c->client.tls != NULL && !c->closing) {
			px_stream_feed(&c->client, early, nearly);
		} else if (nearly > 0 && c->rl_pending && (c->early = malloc(nearly)) != NULL) {
			memcpy(c->early, early, nearly); /* for the handshake, once allowed */
			c->nearly = nearly;
		}
	} else {
		struct moat_tls_ctx *ctx = tls_ctx_current(w);

		px_session_tls_offer(c->s, ctx != NULL && moat_tls_ctx_server_ready(ctx));
		moat_tls_ctx_unref(ctx);
		px_session_start(c->s, px_session_conf(c->s)->proxy_greet_pause == 0);
		if (nearly > 0 && !c->closing)
			/* sent before our greeting: with a greet pause this is an early talker */
			px_stream_feed(&c->client, early, nearly);
	}
	if (!c->closing)
		conn_update(c);
}
