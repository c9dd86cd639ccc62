/*
 * worker.c - the libuv side of a session: client and backend streams, timers, the work items
 * (on the threadpool, or queued on the loop when they cannot block), write batching and
 * backpressure. A struct conn embeds its handles, counts those open and is freed only in the last
 * close callback with no work item pending.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>
#include <uv.h>

#include "cidr.h"
#include "log.h"
#include "proxy_inbound.h"
#include "ratelimit_uv.h"
#include "smtp_session.h"
#include "tls.h"
#include "worker.h"

#define OUT_MAX ((size_t)64 * 1024) /* replies queued for the client before we stop reading */
#define BACKEND_HIGH ((size_t)256 * 1024) /* backend write queue that pauses client reads */
#define BREAD_SIZE 4096
#define TLS_READ_SIZE (16384 + 2048) /* one full record and its overhead */

struct px_worker {
	uv_loop_t loop;
	uv_async_t stop;
	uv_tcp_t listeners[PX_LISTEN_MAX];
	size_t nlisteners;
	struct moat_policy *pol;
	uv_thread_t thread;
	atomic_int done;
	atomic_uint sessions;
	/* TLS */
	bool listen_tls[PX_LISTEN_MAX]; /* implicit TLS (proxy_listen_tls) */
	pthread_mutex_t tls_lock; /* guards tls: main swaps it on SIGHUP */
	struct moat_tls_ctx *tls; /* NULL: no certificate, no TLS */
	/* rate limits */
	struct moat_ratelimit *rl; /* the policy's (borrowed) */
	struct px_rlredis *rlr; /* this loop's Redis store; NULL: the embedded one */
	bool stopping;
	/* work items that cannot block, run by the idle handle in order (op_work) */
	uv_idle_t inline_idle;
	struct conn *inline_head, *inline_tail;
};

struct bconn {
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;
	uv_connect_t creq;
	uv_shutdown_t sreq;
	struct conn *c;
	bool connected;
	/* STARTTLS towards the backend (tls_backend) */
	struct moat_tls_conn *tls;
	bool tls_reported;
	uint64_t tls_start; /* uv_now when the handshake began */
};

struct conn {
	uv_tcp_t client;
	uv_timer_t timer; /* client: greet pause, idle, data, lifetime */
	uv_timer_t btimer; /* backend: connect and reply */
	uv_work_t work;
	struct px_worker *w;
	struct px_session *s;
	struct bconn *b;
	struct conn *inline_next; /* the loop's queue of work items that cannot block */
	unsigned open; /* handles not yet closed (bconn included) */
	bool work_pending, closing, close_after_write, reading, greeted;
	bool rl_pending; /* a rate-limit check waits for Redis */
	bool rl_hold_input; /* ... at connect or before TLS: read nothing meanwhile */
	char *early; /* bytes after a PROXY header, kept for TLS meanwhile */
	size_t nearly;
	uint64_t start; /* uv_now at accept */
	char *out; /* replies batched for one write */
	size_t out_len, out_cap;
	char laddr[64];
	unsigned lport;
	/* TLS */
	struct moat_tls_conn *tls; /* the client leg is TLS (after STARTTLS, or implicit) */
	char *tlsbuf; /* ciphertext read buffer, only during a read */
	bool tls_implicit, tls_reported;
	uint64_t tls_start; /* uv_now when the handshake began */
	struct pin *pin; /* a load balancer's PROXY header is being read (no session yet) */
	uint64_t rate_start; /* DATA: uv_now when this proxy_min_data_rate window began; 0: none */
	uint64_t rate_bytes; /* bytes read from the client in that window */
};

/* The connection's own addresses, and the header bytes read so far from a listed load balancer. */
struct pin {
	char paddr[64], listener[96];
	unsigned pport;
	size_t len;
	char buf[PX_PIN_MAX];
};

struct wreq {
	uv_write_t req;
	struct conn *c;
	size_t len;
	char data[];
};

static void conn_update(struct conn *c);
static void conn_close(struct conn *c);
static void on_timer(uv_timer_t *t);
static void on_close(uv_handle_t *h);

/* conn_close_client - close the client stream and its timer (once). */
static void
conn_close_client(struct conn *c)
{
	if (!uv_is_closing((uv_handle_t *)&c->timer))
		uv_close((uv_handle_t *)&c->timer, on_close);
	if (!uv_is_closing((uv_handle_t *)&c->client))
		uv_close((uv_handle_t *)&c->client, on_close);
}

/* worker_drained - the worker stops and has no session left: close what sessions shared, so the
 * loop can end (and be closed). */
static void
worker_drained(struct px_worker *w)
{
	px_rlredis_close(w->rlr);
	w->rlr = NULL;
	uv_close((uv_handle_t *)&w->inline_idle, NULL);
}

/* conn_maybe_free - the last handle closed and no work item holds the session. */
static void
conn_maybe_free(struct conn *c)
{
	if (c->open > 0 || c->work_pending || c->rl_pending)
		return;
	if (atomic_fetch_sub(&c->w->sessions, 1) == 1 && c->w->stopping)
		worker_drained(c->w);

	px_session_free(c->s);
	free(c->pin);
	free(c->early);
	moat_tls_conn_free(c->tls);
	free(c->tlsbuf);
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

static void
on_bclose(uv_handle_t *h)
{
	struct bconn *b = h->data;
	struct conn *c = b->c;

	moat_tls_conn_free(b->tls);
	free(b);
	c->open--;
	conn_maybe_free(c);
}

/* ---- writes ---- */

static void
on_write(uv_write_t *req, int status)
{
	struct wreq *wr = (struct wreq *)req;
	struct conn *c = wr->c;
	bool backend = c->b != NULL && req->handle == &c->b->h.stream;

	(void)status;
	free(wr);
	if (backend && !c->closing)
		px_session_backend_drained(
		    c->s); /* holding mode: the next piece of a held message */
	if (!c->closing)
		conn_update(c);
	else if (c->close_after_write && c->client.write_queue_size == 0)
		conn_close_client(c);
}

/* stream_write - try to write at once; queue a copy of what is left. -1 on error. */
static int
stream_write(struct conn *c, uv_stream_t *st, const char *p, size_t n)
{
	uv_buf_t buf;
	struct wreq *wr;
	int rc;

	if (st->write_queue_size == 0) {
		buf = uv_buf_init((char *)p, (unsigned)n);
		rc = uv_try_write(st, &buf, 1);
		if (rc == (int)n)
			return 0;
		if (rc > 0) {
			p += rc;
			n -= (size_t)rc;
		} else if (rc != UV_EAGAIN) {
			return -1;
		}
	}
	if ((wr = malloc(sizeof(*wr) + n)) == NULL)
		return -1;
	wr->c = c;
	wr->len = n;
	memcpy(wr->data, p, n);
	buf = uv_buf_init(wr->data, (unsigned)n);
	if (uv_write(&wr->req, st, &buf, 1, on_write) != 0) {
		free(wr);
		return -1;
	}
	return 0;
}

/* tls_send - the engine's ciphertext for the peer on ST, written raw. -1 on error. */
static int
tls_send(struct conn *c, struct moat_tls_conn *tls, uv_stream_t *st)
{
	const void *p;
	size_t n;

	while ((n = moat_tls_pending_out(tls, &p)) > 0) {
		if (uv_is_closing((uv_handle_t *)st) || stream_write(c, st, p, n) < 0)
			return -1;
		moat_tls_consume(tls, n);
	}
	return 0;
}

/* conn_flush - one write for everything the session said during this event (RFC 2920). */
static void
conn_flush(struct conn *c)
{
	if (c->out_len == 0 || uv_is_closing((uv_handle_t *)&c->client))
		return;
	if (c->tls != NULL) {
		/* encrypt; nothing can be said in clear once TLS has started */
		int rc = moat_tls_conn_state(c->tls) == MOAT_TLS_OPEN
		    ? moat_tls_write(c->tls, c->out, c->out_len)
		    : 0;

		c->out_len = 0;
		if (rc < 0 || tls_send(c, c->tls, (uv_stream_t *)&c->client) < 0) {
			px_session_client_gone(c->s);
			conn_close(c);
		}
		return;
	}
	if (stream_write(c, (uv_stream_t *)&c->client, c->out, c->out_len) < 0) {
		c->out_len = 0;
		px_session_client_gone(c->s);
		conn_close(c);
		return;
	}
	c->out_len = 0;
	/* written or copied into the write request: an idle session keeps no reply buffer */
	free(c->out);
	c->out = NULL;
	c->out_cap = 0;
}

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
	conn_close(c);
}

/* on_bread_alloc - a read buffer only for the duration of one read: idle legs hold none. */
static void
on_bread_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	/* Freed by on_bread, which libuv always calls after this allocation. */
	char *p = malloc(BREAD_SIZE);

	(void)h;
	(void)hint;
	*buf = uv_buf_init(p, p ? BREAD_SIZE : 0); /* NOLINT(clang-analyzer-unix.Malloc) */
}

static void bconn_close(struct bconn *b, bool graceful);

/* bconn_fail - the backend leg is unusable (write error, TLS failure): close it, tell the session. */
static void
bconn_fail(struct conn *c, struct bconn *b, const char *why)
{
	c->b = NULL;
	bconn_close(b, false);
	px_session_backend_error(c->s, why);
}

/* btls_input - ciphertext from the backend; after the handshake, plaintext replies
 * go to the session. Whatever the backend sent in clear after its 220 reaches only the engine. */
static void
btls_input(struct conn *c, struct bconn *b, const char *p, size_t n)
{
	enum moat_tls_state st;
	char plain[4096];
	ssize_t got = 0;

	(void)moat_tls_feed(b->tls, p, n);
	if (!b->tls_reported && moat_tls_conn_state(b->tls) == MOAT_TLS_OPEN) {
		struct moat_tls_info info;

		b->tls_reported = true;
		moat_tls_info(b->tls, &info);
		px_session_backend_tls_done(c->s, &info);
	}
	while (
	    c->b == b && b->tls_reported && (got = moat_tls_read(b->tls, plain, sizeof(plain))) > 0)
		px_session_backend_input(c->s, plain, (size_t)got);
	if (c->b != b)
		return; /* the session closed the leg */
	st = moat_tls_conn_state(b->tls);
	if (st == MOAT_TLS_FAILED) {
		moat_log(LOG_WARNING, px_session_id(c->s), "backend", "tls=failed error=%s",
		    moat_tls_conn_error(b->tls));
		(void)tls_send(c, b->tls, &b->h.stream); /* the alert, if any */
		bconn_fail(c, b, "tls");
	} else if (tls_send(c, b->tls, &b->h.stream) < 0) {
		bconn_fail(c, b, "write");
	} else if (st == MOAT_TLS_CLOSED) {
		bconn_fail(c, b, "eof");
	}
}

static void
on_bread(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct bconn *b = st->data;
	struct conn *c = b->c;

	if (c->b != b) {
		free(buf->base);
		return;
	}
	if (nread > 0 && b->tls != NULL) {
		btls_input(c, b, buf->base, (size_t)nread);
		free(buf->base);
	} else if (nread > 0) {
		px_session_backend_input(c->s, buf->base, (size_t)nread);
		free(buf->base);
	} else if (nread < 0) {
		free(buf->base);
		c->b = NULL;
		bconn_close(b, false);
		px_session_backend_error(c->s, nread == UV_EOF ? "eof" : uv_err_name((int)nread));
	}
	if (!c->closing)
		conn_update(c);
}

static void
on_bconnect(uv_connect_t *req, int status)
{
	struct bconn *b = req->data;
	struct conn *c = b->c;

	if (c->b != b)
		return; /* abandoned: already closing */
	if (status < 0) {
		moat_log(LOG_WARNING, px_session_id(c->s), "backend", "error=connect:%s",
		    uv_err_name(status));
		c->b = NULL;
		bconn_close(b, false);
		px_session_backend_error(c->s, "connect");
	} else {
		b->connected = true;
		if (b->h.handle.type == UV_TCP)
			uv_tcp_nodelay(&b->h.tcp, 1);
		uv_read_start(&b->h.stream, on_bread_alloc, on_bread);
		px_session_backend_connected(c->s);
	}
	if (!c->closing)
		conn_update(c);
}

/* backend target, parsed from proxy_backend */
static int
backend_addr(const char *spec, struct sockaddr_storage *ss, char *path, size_t pathlen)
{
	char host[256];
	const char *colon;
	unsigned port;

	if (strncmp(spec, "unix:", 5) == 0) {
		if (strlen(spec + 5) + 1 > pathlen)
			return -1;
		snprintf(path, pathlen, "%s", spec + 5);
		return 1;
	}
	if (spec[0] == '[') {
		const char *e = strchr(spec, ']');

		if (e == NULL || e[1] != ':' || (size_t)(e - spec - 1) >= sizeof(host))
			return -1;
		memcpy(host, spec + 1, (size_t)(e - spec - 1));
		host[e - spec - 1] = '\0';
		colon = e + 1;
	} else {
		colon = strrchr(spec, ':');
		if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
			return -1;
		memcpy(host, spec, (size_t)(colon - spec));
		host[colon - spec] = '\0';
	}
	port = (unsigned)strtoul(colon + 1, NULL, 10);
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
		return 0;
	if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	return -1;
}

static int
op_backend_open(void *io)
{
	struct conn *c = io;
	const struct moat_conf *conf = px_session_conf(c->s);
	struct sockaddr_storage ss;
	char path[108];
	struct bconn *b;
	int kind = backend_addr(conf->proxy_backend, &ss, path, sizeof(path));

	if (kind < 0 || (b = calloc(1, sizeof(*b))) == NULL)
		return -1;
	b->c = c;
	b->h.handle.data = b;
	b->creq.data = b;
	if (kind == 1) {
		uv_pipe_init(&c->w->loop, &b->h.pipe, 0);
		uv_pipe_connect(&b->creq, &b->h.pipe, path, on_bconnect);
	} else {
		uv_tcp_init(&c->w->loop, &b->h.tcp);
		if (uv_tcp_connect(&b->creq, &b->h.tcp, (struct sockaddr *)&ss, on_bconnect) != 0) {
			c->open++;
			uv_close(&b->h.handle, on_bclose);
			return -1;
		}
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

	if (b == NULL || !b->connected)
		return;
	if (b->tls != NULL) { /* nothing goes in clear once STARTTLS began */
		if (moat_tls_write(b->tls, p, n) < 0 || tls_send(c, b->tls, &b->h.stream) < 0)
			bconn_fail(c, b, "write");
		return;
	}
	if (stream_write(c, &b->h.stream, p, n) < 0)
		bconn_fail(c, b, "write");
}

/* tls_ctx_current - a reference to the worker's TLS context (NULL: none). */
static struct moat_tls_ctx *
tls_ctx_current(struct px_worker *w)
{
	struct moat_tls_ctx *ctx = NULL;

	pthread_mutex_lock(&w->tls_lock);
	if (w->tls != NULL)
		ctx = moat_tls_ctx_ref(w->tls);
	pthread_mutex_unlock(&w->tls_lock);
	return ctx;
}

/* op_backend_starttls - a verifying client session on the backend leg, ClientHello out. */
static int
op_backend_starttls(void *io)
{
	struct conn *c = io;
	struct bconn *b = c->b;
	struct moat_tls_ctx *ctx;
	char err[MOAT_TLS_ERR_MAX];

	if (b == NULL || (ctx = tls_ctx_current(c->w)) == NULL)
		return -1;
	b->tls = moat_tls_conn_new(ctx, MOAT_TLS_CLIENT, NULL, err, sizeof(err));
	moat_tls_ctx_unref(ctx); /* the session holds its own reference */
	if (b->tls == NULL) {
		moat_log(LOG_WARNING, px_session_id(c->s), "backend", "tls=failed error=%s", err);
		return -1;
	}
	b->tls_start = uv_now(&c->w->loop);
	return tls_send(c, b->tls, &b->h.stream);
}

static void
on_bshutdown(uv_shutdown_t *req, int status)
{
	struct bconn *b = req->data;

	(void)status;
	if (!uv_is_closing(&b->h.handle))
		uv_close(&b->h.handle, on_bclose);
}

static void
bconn_close(struct bconn *b, bool graceful)
{
	if (uv_is_closing(&b->h.handle))
		return;
	uv_read_stop(&b->h.stream);
	if (graceful && b->connected) {
		if (b->tls != NULL && moat_tls_conn_state(b->tls) == MOAT_TLS_OPEN) {
			moat_tls_shutdown(b->tls); /* close_notify after the QUIT */
			(void)tls_send(b->c, b->tls, &b->h.stream);
		}
		b->sreq.data = b;
		if (uv_shutdown(&b->sreq, &b->h.stream, on_bshutdown) == 0)
			return;
	}
	uv_close(&b->h.handle, on_bclose);
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
	bconn_close(b, graceful);
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

static void tls_input(struct conn *c, const char *p, size_t n);

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
	if (c->early != NULL && c->tls != NULL && !c->closing)
		tls_input(c, c->early, c->nearly); /* implicit TLS allowed: its first bytes */
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

/* tls_begin - a server TLS session on the worker's current context. */
static int
tls_begin(struct conn *c)
{
	struct moat_tls_ctx *ctx = tls_ctx_current(c->w);
	char err[MOAT_TLS_ERR_MAX];

	if (ctx == NULL)
		return -1;
	c->tls = moat_tls_conn_new(ctx, MOAT_TLS_SERVER, NULL, err, sizeof(err));
	c->tls_start = uv_now(&c->w->loop);
	moat_tls_ctx_unref(ctx); /* the session holds its own reference */
	if (c->tls == NULL) {
		moat_log(LOG_WARNING, c->s != NULL ? px_session_id(c->s) : NULL, "tls", "error=%s",
		    err);
		return -1;
	}
	return 0;
}

/* op_client_starttls - the 220 goes out in clear, then the leg is TLS. */
static int
op_client_starttls(void *io)
{
	struct conn *c = io;

	conn_flush(c);
	if (c->closing)
		return -1;
	return tls_begin(c);
}

/* tls_deliver - report the finished handshake, then hand plaintext to the session
 * as far as its input buffer has room (the rest stays in the engine until conn_update). */
static void
tls_deliver(struct conn *c)
{
	if (!c->tls_reported && moat_tls_conn_state(c->tls) == MOAT_TLS_OPEN) {
		struct moat_tls_info info;

		c->tls_reported = true;
		moat_tls_info(c->tls, &info);
		px_session_tls_started(c->s, &info);
		if (c->tls_implicit) /* RFC 8314: the greeting comes after the handshake */
			px_session_start(c->s, px_session_conf(c->s)->proxy_greet_pause == 0);
	}
	while (!c->closing && c->tls_reported) {
		/* through a stack buffer: an idle session keeps no input buffer (px_session_rbuf allocates) */
		char plain[4096], *p;
		size_t room = px_session_rroom(c->s), avail;
		ssize_t n;

		if (room == 0)
			break;
		n = moat_tls_read(c->tls, plain, room < sizeof(plain) ? room : sizeof(plain));
		if (n <= 0 || (p = px_session_rbuf(c->s, &avail)) == NULL || avail < (size_t)n)
			break;
		memcpy(p, plain, (size_t)n);
		px_session_rdone(c->s, (size_t)n);
	}
}

/* tls_input - ciphertext from the client. */
static void
tls_input(struct conn *c, const char *p, size_t n)
{
	enum moat_tls_state st;

	(void)moat_tls_feed(c->tls, p, n);
	tls_deliver(c);
	if (c->closing || c->tls == NULL)
		return;
	st = moat_tls_conn_state(c->tls);
	if (st == MOAT_TLS_FAILED)
		moat_log(LOG_NOTICE, px_session_id(c->s), "tls", "error=%s",
		    moat_tls_conn_error(c->tls));
	if (tls_send(c, c->tls, (uv_stream_t *)&c->client) < 0 || st == MOAT_TLS_FAILED ||
	    st == MOAT_TLS_CLOSED) {
		px_session_client_gone(c->s);
		conn_close(c);
	}
}

static size_t
op_backend_queued(void *io)
{
	struct conn *c = io;

	return c->b != NULL ? c->b->h.stream.write_queue_size : 0;
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
};

/* ---- client leg ---- */

static void
conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_timer_stop(&c->btimer);
	if (!uv_is_closing((uv_handle_t *)&c->btimer))
		uv_close((uv_handle_t *)&c->btimer, on_close);
	if (c->b != NULL) {
		struct bconn *b = c->b;

		c->b = NULL;
		bconn_close(b, false);
	}
	uv_read_stop((uv_stream_t *)&c->client);
	if (c->close_after_write && c->client.write_queue_size > 0) {
		/* let the last replies out; the timer bounds the wait */
		uv_timer_start(&c->timer, on_timer, 10000, 0);
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

	if (c->rate_bytes * 1000 < (uint64_t)conf->proxy_min_data_rate * ms) {
		moat_log(LOG_NOTICE, px_session_id(c->s), "data-rate",
		    "bytes=%llu ms=%llu min=%u/s", (unsigned long long)c->rate_bytes,
		    (unsigned long long)ms, conf->proxy_min_data_rate);
		px_session_timeout(c->s, "data-rate");
		return;
	}
	c->rate_start = uv_now(&c->w->loop);
	c->rate_bytes = 0;
}

static void
on_timer(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->closing) {
		conn_close_client(c);
		return;
	}
	if (c->pin != NULL) {
		moat_log(LOG_NOTICE, NULL, "proxy-header", "from=%s port=%u error=timeout len=%zu",
		    c->pin->paddr, c->pin->pport, c->pin->len);
		conn_close(c);
		return;
	}
	if (c->tls != NULL && moat_tls_conn_state(c->tls) == MOAT_TLS_HANDSHAKE) {
		/* tls_handshake_timeout; nothing can be said in clear */
		moat_log(LOG_NOTICE, px_session_id(c->s), "tls", "error=handshake-timeout");
		px_session_client_gone(c->s);
		conn_close(c);
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

static void
on_read_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct conn *c = h->data;
	size_t avail;
	char *p;

	(void)hint;
	if (c->tls != NULL) { /* ciphertext goes to the engine */
		if (c->tlsbuf == NULL)
			c->tlsbuf = malloc(TLS_READ_SIZE); /* per read: idle sessions hold none */
		*buf = uv_buf_init(c->tlsbuf, c->tlsbuf != NULL ? TLS_READ_SIZE : 0);
		return;
	}
	p = px_session_rbuf(c->s, &avail);
	*buf = uv_buf_init(p, (unsigned)avail);
}

static void
on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = st->data;

	if (c->closing)
		return;
	if (nread > 0)
		c->rate_bytes += (uint64_t)nread;
	if (nread > 0 && c->tls != NULL) {
		tls_input(c, buf->base, (size_t)nread);
		free(c->tlsbuf);
		c->tlsbuf = NULL;
	} else if (nread > 0) {
		px_session_rdone(c->s, (size_t)nread);
	} else if (nread == UV_ENOBUFS) {
		uv_read_stop(st);
		c->reading = false;
	} else if (nread < 0) {
		/* client gone at any state: no final dot was sent for an unfinished message */
		px_session_client_gone(c->s);
		conn_close(c);
		return;
	}
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

	if (ph != PX_PHASE_DATA || conf->proxy_min_data_rate == 0 || !c->reading ||
	    px_session_backend_waiting(c->s)) {
		c->rate_start = 0;
		return;
	}
	if (c->rate_start == 0) {
		c->rate_start = now;
		c->rate_bytes = 0;
	}
	end = c->rate_start + conf->proxy_min_data_rate_window;
	if (end <= now)
		end = now + 1;
	if (end - now < uv_timer_get_due_in(&c->timer))
		uv_timer_start(&c->timer, on_timer, end - now, 0);
}

/* conn_update - after every event: flush replies, set timers, apply backpressure. */
static void
conn_update(struct conn *c)
{
	const struct moat_conf *conf;
	enum px_phase ph;
	uint64_t now, left, t;
	size_t avail;
	bool want;

	if (c->tls != NULL && !c->closing)
		tls_deliver(c); /* plaintext the session had no room for */
	conn_flush(c);
	if (c->closing)
		return;
	conf = px_session_conf(c->s);
	ph = px_session_phase(c->s);
	now = uv_now(&c->w->loop);
	left = now - c->start >= conf->proxy_session_lifetime
	    ? 1
	    : conf->proxy_session_lifetime - (now - c->start);
	if (c->tls != NULL && moat_tls_conn_state(c->tls) == MOAT_TLS_HANDSHAKE)
		/* from the start of the handshake, not reset by each byte (slowloris) */
		t = now - c->tls_start >= conf->tls_handshake_timeout
		    ? 1
		    : conf->tls_handshake_timeout - (now - c->tls_start);
	else if (c->rl_pending || px_session_backend_waiting(c->s))
		t = left; /* the backend timer, or the Redis store's own timeout, bounds it */
	else if (ph == PX_PHASE_GREET)
		t = conf->proxy_greet_pause;
	else
		t = ph == PX_PHASE_DATA ? conf->proxy_timeout_data : conf->proxy_timeout_command;
	uv_timer_start(&c->timer, on_timer, t < left ? t : left, 0);
	if (c->b != NULL && c->b->tls != NULL &&
	    moat_tls_conn_state(c->b->tls) == MOAT_TLS_HANDSHAKE)
		/* the backend's handshake, from its start, within tls_handshake_timeout */
		uv_timer_start(&c->btimer, on_btimer,
		    now - c->b->tls_start >= conf->tls_handshake_timeout
			? 1
			: conf->tls_handshake_timeout - (now - c->b->tls_start),
		    0);
	else if (px_session_backend_waiting(c->s))
		uv_timer_start(&c->btimer, on_btimer, conf->proxy_timeout_backend, 0);
	else
		uv_timer_stop(&c->btimer);
	avail = px_session_rroom(c->s);
	/* nothing is read while a connect or TLS limit is awaited (implicit TLS has no engine yet) */
	want = (avail > 0 || (c->tls != NULL && !c->tls_reported)) && !c->rl_hold_input &&
	    c->client.write_queue_size < OUT_MAX &&
	    (c->b == NULL || c->b->h.stream.write_queue_size < BACKEND_HIGH);
	if (want && !c->reading) {
		if (uv_read_start((uv_stream_t *)&c->client, on_read_alloc, on_read) == 0)
			c->reading = true;
		c->rate_start = 0; /* a window never spans a pause of ours */
	} else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->client);
		c->reading = false;
	}
	rate_update(c, ph, now);
}

/* ---- accept ---- */

static void
addr_string(const struct sockaddr_storage *ss, char *out, size_t len, unsigned *port)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

		uv_ip6_name(a, out, len);
		*port = ntohs(a->sin6_port);
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

		uv_ip4_name(a, out, len);
		*port = ntohs(a->sin_port);
	}
}

/* conn_begin - the session for a client at paddr:pport (from the socket, or from a load balancer's
 * PROXY header); early: bytes that came with the header, handed to the session (or to TLS). */
static void
conn_begin(struct conn *c, const char *paddr, unsigned pport, const char *listener,
    const char *early, size_t nearly)
{
	struct px_worker *w = c->w;
	struct moat_client mc;

	mc.addr = paddr;
	mc.port = pport;
	mc.name = NULL;
	mc.listener = listener;
	mc.session_id = NULL;
	c->s = px_session_new(w->pol, &mc, c->laddr, c->lport, &conn_ops, c);
	if (c->s == NULL) {
		static const char oom[] = "421 4.3.0 Out of memory\r\n";
		uv_buf_t b = uv_buf_init((char *)oom, sizeof(oom) - 1);

		(void)uv_try_write((uv_stream_t *)&c->client, &b, 1);
		conn_close(c);
		return;
	}
	moat_log(LOG_INFO, px_session_id(c->s), "connect", "client=%s port=%u listener=%s", paddr,
	    pport, listener);
	/* implicit-TLS listeners greet after the handshake; plaintext ones offer STARTTLS */
	if (c->tls_implicit) {
		px_session_tls_implicit(c->s); /* the TLS handshake limit, then tls_begin */
		if (nearly > 0 && c->tls != NULL && !c->closing) {
			tls_input(c, early, nearly);
		} else if (nearly > 0 && c->rl_pending && (c->early = malloc(nearly)) != NULL) {
			memcpy(c->early, early, nearly); /* for the handshake, once allowed */
			c->nearly = nearly;
		}
	} else {
		pthread_mutex_lock(&w->tls_lock);
		px_session_tls_offer(c->s, moat_tls_ctx_server_ready(w->tls));
		pthread_mutex_unlock(&w->tls_lock);
		px_session_start(c->s, px_session_conf(c->s)->proxy_greet_pause == 0);
		if (nearly > 0 && !c->closing) {
			/* sent before our greeting: with a greet pause this is an early talker */
			size_t avail;
			char *p = px_session_rbuf(c->s, &avail);

			if (p != NULL && avail >= nearly) {
				memcpy(p, early, nearly);
				px_session_rdone(c->s, nearly);
			}
		}
	}
	if (!c->closing)
		conn_update(c);
}

/* ---- PROXY protocol from a listed load balancer, before any session exists ---- */

static void
on_pin_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct conn *c = h->data;

	(void)hint;
	*buf =
	    uv_buf_init(c->pin->buf + c->pin->len, (unsigned)(sizeof(c->pin->buf) - c->pin->len));
}

/* pin_done - the header is complete: the session starts with the client it names. */
static void
pin_done(struct conn *c, const struct px_pin *h)
{
	struct pin *pin = c->pin;
	char addr[64];
	unsigned port = pin->pport;

	c->pin = NULL;
	uv_read_stop((uv_stream_t *)&c->client);
	uv_timer_stop(&c->timer);
	snprintf(addr, sizeof(addr), "%s", pin->paddr);
	if (!h->local) {
		/* the real client; its destination is what a PROXY header to the backend names */
		snprintf(addr, sizeof(addr), "%s", h->src);
		port = h->sport;
		snprintf(c->laddr, sizeof(c->laddr), "%s", h->dst);
		c->lport = h->dport;
	}
	moat_log(LOG_INFO, NULL, "proxy-header",
	    "from=%s port=%u version=%d client=%s client_port=%u%s", pin->paddr, pin->pport,
	    h->version, addr, port, h->local ? " local=yes" : "");
	conn_begin(c, addr, port, pin->listener, pin->buf + h->len, pin->len - h->len);
	free(pin);
}

static void
on_pin_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = st->data;
	struct px_pin h;
	const char *why;

	(void)buf;
	if (c->closing || c->pin == NULL)
		return;
	if (nread < 0) {
		moat_log(LOG_NOTICE, NULL, "proxy-header", "from=%s port=%u error=%s len=%zu",
		    c->pin->paddr, c->pin->pport, nread == UV_EOF ? "eof" : uv_err_name((int)nread),
		    c->pin->len);
		conn_close(c);
		return;
	}
	c->pin->len += (size_t)nread;
	switch (px_pin_parse(c->pin->buf, c->pin->len, &h, &why)) {
	case PX_PIN_DONE:
		pin_done(c, &h);
		break;
	case PX_PIN_BAD:
		/* a listed load balancer that does not speak the protocol: nothing SMTP is said */
		moat_log(LOG_WARNING, NULL, "proxy-header", "from=%s port=%u error=%s",
		    c->pin->paddr, c->pin->pport, why);
		conn_close(c);
		break;
	case PX_PIN_NEED:
		break;
	}
}

/* pin_expected - is the peer a load balancer listed in proxy_inbound_proxy_networks? */
static bool
pin_expected(struct px_worker *w, const char *paddr, unsigned *timeout)
{
	struct moat_conf *conf = moat_policy_conf(w->pol);
	struct moat_addr a;
	bool listed = moat_cidr_set_count(conf->proxy_inbound_set) > 0 &&
	    moat_addr_parse(paddr, &a) == 0 && moat_cidr_set_match(conf->proxy_inbound_set, &a);

	*timeout = conf->proxy_inbound_proxy_timeout;
	moat_conf_unref(conf);
	return listed;
}

static void
on_connection(uv_stream_t *server, int status)
{
	struct px_worker *w = server->data;
	struct sockaddr_storage peer, local;
	int plen = sizeof(peer), llen = sizeof(local);
	char paddr[64], listener[96];
	unsigned pport, timeout;
	struct conn *c;

	if (status < 0 || (c = calloc(1, sizeof(*c))) == NULL)
		return;
	c->w = w;
	uv_tcp_init(&w->loop, &c->client);
	c->client.data = c;
	c->open = 1;
	atomic_fetch_add(&w->sessions, 1);
	if (uv_accept(server, (uv_stream_t *)&c->client) != 0 ||
	    uv_tcp_getpeername(&c->client, (struct sockaddr *)&peer, &plen) != 0 ||
	    uv_tcp_getsockname(&c->client, (struct sockaddr *)&local, &llen) != 0) {
		c->closing = true;
		c->work_pending = false;
		uv_close((uv_handle_t *)&c->client, on_close);
		return;
	}
	uv_tcp_nodelay(&c->client, 1);
	addr_string(&peer, paddr, sizeof(paddr), &pport);
	addr_string(&local, c->laddr, sizeof(c->laddr), &c->lport);
	snprintf(listener, sizeof(listener), "%s:%u", c->laddr, c->lport);
	uv_timer_init(&w->loop, &c->timer);
	uv_timer_init(&w->loop, &c->btimer);
	c->timer.data = c->btimer.data = c;
	c->open = 3;
	c->start = uv_now(&w->loop);
	for (size_t i = 0; i < w->nlisteners; i++)
		if (server == (uv_stream_t *)&w->listeners[i])
			c->tls_implicit = w->listen_tls[i];
	if (pin_expected(w, paddr, &timeout)) {
		/* the header comes first, before TLS and before our greeting, within the timeout */
		if ((c->pin = calloc(1, sizeof(*c->pin))) == NULL ||
		    uv_read_start((uv_stream_t *)&c->client, on_pin_alloc, on_pin_read) != 0) {
			conn_close(c);
			return;
		}
		snprintf(c->pin->paddr, sizeof(c->pin->paddr), "%s", paddr);
		snprintf(c->pin->listener, sizeof(c->pin->listener), "%s", listener);
		c->pin->pport = pport;
		uv_timer_start(&c->timer, on_timer, timeout, 0);
		return;
	}
	conn_begin(c, paddr, pport, listener, NULL, 0);
}

/* ---- workers ---- */

int
px_listen_bind(const char *hostport, bool first, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	char path[8];
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (backend_addr(hostport, &ss, path, sizeof(path)) != 0) {
		snprintf(err, errlen, "%s: not a numeric host:port", hostport);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "%s: socket: %s", hostport, strerror(errno));
		return -1;
	}
	sslen = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* [::] is IPv6 only (as in Postfix): 0.0.0.0 and [::] on one port are two listeners, and the
	 * exclusive first bind of one does not collide with the other */
	if (ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) {
		snprintf(err, errlen, "%s: IPV6_V6ONLY: %s", hostport, strerror(errno));
		close(fd);
		return -1;
	}
	/* libuv 1.44 has no flag for SO_REUSEPORT: each worker binds its own socket. The first one
	 * binds without it (exclusive: fails if anyone listens there) and sets it before listen(),
	 * which is when Linux forms the group the other workers join. */
	if (first && bind(fd, (struct sockaddr *)&ss, sslen) != 0) {
		if (errno == EADDRINUSE)
			snprintf(err, errlen,
			    "%s: already in use: another mxmoat-proxy (reload a running one "
			    "with SIGHUP) or another server listens there",
			    hostport);
		else
			snprintf(err, errlen, "%s: bind: %s", hostport, strerror(errno));
		close(fd);
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    (!first && bind(fd, (struct sockaddr *)&ss, sslen) != 0) || listen(fd, 511) != 0) {
		snprintf(err, errlen, "%s: bind: %s", hostport, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void
on_stop(uv_async_t *a)
{
	struct px_worker *w = a->data;

	for (size_t i = 0; i < w->nlisteners; i++)
		if (!uv_is_closing((uv_handle_t *)&w->listeners[i]))
			uv_close((uv_handle_t *)&w->listeners[i], NULL);
	uv_close((uv_handle_t *)&w->stop, NULL);
	/* Redis (and the inline queue) stay for the sessions draining; without any, they go now */
	w->stopping = true;
	if (atomic_load(&w->sessions) == 0)
		worker_drained(w);
}

struct px_worker *
px_worker_new(struct moat_policy *pol, const int *fds, size_t nfds, char *err, size_t errlen)
{
	struct px_worker *w = calloc(1, sizeof(*w));

	if (w == NULL || nfds > PX_LISTEN_MAX) {
		snprintf(err, errlen, "out of memory");
		free(w);
		return NULL;
	}
	w->pol = pol;
	w->rl = moat_policy_ratelimit(pol);
	pthread_mutex_init(&w->tls_lock, NULL);
	if (uv_loop_init(&w->loop) != 0) {
		snprintf(err, errlen, "uv_loop_init failed");
		free(w);
		return NULL;
	}
	uv_async_init(&w->loop, &w->stop, on_stop);
	w->stop.data = w;
	uv_idle_init(&w->loop, &w->inline_idle);
	w->inline_idle.data = w;
	for (size_t i = 0; i < nfds; i++) {
		uv_tcp_init(&w->loop, &w->listeners[i]);
		w->listeners[i].data = w;
		if (uv_tcp_open(&w->listeners[i], fds[i]) != 0 ||
		    uv_listen((uv_stream_t *)&w->listeners[i], 511, on_connection) != 0) {
			snprintf(err, errlen, "cannot listen on fd %d", fds[i]);
			return NULL;
		}
		w->nlisteners++;
	}
	return w;
}

static void
worker_main(void *arg)
{
	struct px_worker *w = arg;

	uv_run(&w->loop, UV_RUN_DEFAULT);
	atomic_store(&w->done, 1);
}

int
px_worker_start(struct px_worker *w)
{
	return uv_thread_create(&w->thread, worker_main, w);
}

void
px_worker_stop(struct px_worker *w)
{
	uv_async_send(&w->stop);
}

int
px_worker_done(struct px_worker *w)
{
	return atomic_load(&w->done);
}

unsigned
px_worker_sessions(struct px_worker *w)
{
	return atomic_load(&w->sessions);
}

int
px_worker_set_redis(struct px_worker *w, const struct moat_conf *conf, char *err, size_t errlen)
{
	if (moat_ratelimit_store(w->rl) != MOAT_RL_STORE_REDIS)
		return 0;
	if ((w->rlr = px_rlredis_new(&w->loop, w->rl, conf)) == NULL) {
		snprintf(err, errlen, "ratelimit_redis: cannot resolve '%s' (or out of memory)",
		    conf->ratelimit_redis);
		return -1;
	}
	return 0;
}

/* TLS */
int
px_worker_listen_tls(struct px_worker *w, const int *fds, size_t nfds, char *err, size_t errlen)
{
	for (size_t i = 0; i < nfds; i++) {
		size_t k = w->nlisteners;

		if (k == PX_LISTEN_MAX) {
			snprintf(err, errlen, "too many listeners (at most %d)", PX_LISTEN_MAX);
			return -1;
		}
		uv_tcp_init(&w->loop, &w->listeners[k]);
		w->listeners[k].data = w;
		if (uv_tcp_open(&w->listeners[k], fds[i]) != 0 ||
		    uv_listen((uv_stream_t *)&w->listeners[k], 511, on_connection) != 0) {
			snprintf(err, errlen, "cannot listen on fd %d", fds[i]);
			return -1;
		}
		w->listen_tls[k] = true;
		w->nlisteners++;
	}
	return 0;
}

void
px_worker_set_tls(struct px_worker *w, struct moat_tls_ctx *ctx)
{
	struct moat_tls_ctx *old;

	if (ctx != NULL)
		moat_tls_ctx_ref(ctx);
	pthread_mutex_lock(&w->tls_lock);
	old = w->tls;
	w->tls = ctx;
	pthread_mutex_unlock(&w->tls_lock);
	moat_tls_ctx_unref(old); /* sessions keep the context they started with */
}
