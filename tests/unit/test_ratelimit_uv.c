/*
 * test_ratelimit_uv.c - the proxy's Redis store on a libuv loop (proxy/ratelimit_uv.c) against a
 * fake Redis served on the same loop: a reply, NOSCRIPT then EVAL, a server that never answers
 * (timeout, fail-open and fail-closed), a refused connection seen at once and its back-off, a
 * server that stops reading until more is queued than the sockets hold, and a close with a
 * check pending. Every test makes its own loop and ends with uv_loop_close() == 0.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "ratelimit_uv.h"

/* How the fake Redis answers each read. */
enum fake_mode {
	FAKE_ALLOW,
	FAKE_REFUSE,
	FAKE_NOSCRIPT,
	FAKE_SILENT,
	FAKE_STALL,
	FAKE_GONE
};

struct fake {
	uv_tcp_t server;
	uv_tcp_t client;
	bool accepted;
	enum fake_mode mode;
	unsigned evalsha, eval; /* commands seen */
	size_t received; /* bytes read */
	char tail[8]; /* FAKE_STALL: the last bytes, for a command split by reads */
	char buf[8192];
	int port;
};

struct done {
	int calls;
	struct moat_verdict v;
};

static void
fake_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct fake *f = h->data;

	(void)hint;
	*buf = uv_buf_init(f->buf, sizeof(f->buf));
}

static void
fake_write_done(uv_write_t *req, int status)
{
	(void)status;
	free(req);
}

static void
fake_say(struct fake *f, const char *text)
{
	uv_write_t *req = malloc(sizeof(*req));
	uv_buf_t b = uv_buf_init((char *)text, (unsigned)strlen(text));

	cr_assert_not_null(req);
	cr_assert_eq(uv_write(req, (uv_stream_t *)&f->client, &b, 1, fake_write_done), 0);
}

/* fake_answer_each - FAKE_STALL: allow every EVALSHA in the stream, however the reads cut it. */
static void
fake_answer_each(struct fake *f, const char *data, size_t n)
{
	char joined[sizeof(f->tail) + sizeof(f->buf)];
	size_t len = strlen(f->tail), keep;
	const char *p, *end;

	memcpy(joined, f->tail, len);
	memcpy(joined + len, data, n);
	len += n;
	end = joined + len;
	for (p = joined; (p = memmem(p, (size_t)(end - p), "EVALSHA", 7)) != NULL; p += 7) {
		f->evalsha++;
		fake_say(f, "*2\r\n:0\r\n:0\r\n");
	}
	/* six bytes can hold the start of the next "EVALSHA", never a whole one */
	keep = len < 6 ? len : 6;
	memcpy(f->tail, end - keep, keep);
	f->tail[keep] = '\0';
}

/* fake_read - one script call per read (the tests send one at a time), or FAKE_STALL's stream. */
static void
fake_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct fake *f = st->data;
	bool sha;

	if (n <= 0) {
		if (n < 0 && !uv_is_closing((uv_handle_t *)st))
			uv_close((uv_handle_t *)st, NULL);
		return;
	}
	f->received += (size_t)n;
	if (f->mode == FAKE_STALL) {
		fake_answer_each(f, buf->base, (size_t)n);
		return;
	}
	sha = memmem(buf->base, (size_t)n, "EVALSHA", 7) != NULL;
	if (sha)
		f->evalsha++;
	else if (memmem(buf->base, (size_t)n, "EVAL", 4) != NULL)
		f->eval++;
	switch (f->mode) {
	case FAKE_ALLOW:
		fake_say(f, "*2\r\n:0\r\n:0\r\n");
		break;
	case FAKE_REFUSE:
		fake_say(f, "*2\r\n:0\r\n:1500\r\n");
		break;
	case FAKE_NOSCRIPT:
		fake_say(f,
		    sha ? "-NOSCRIPT No matching script. Please use EVAL.\r\n"
			: "*2\r\n:0\r\n:0\r\n");
		break;
	case FAKE_SILENT:
	case FAKE_STALL:
	case FAKE_GONE:
		break;
	}
}

static void
fake_conn(uv_stream_t *server, int status)
{
	struct fake *f = server->data;

	cr_assert_eq(status, 0);
	cr_assert(!f->accepted, "one connection per loop");
	uv_tcp_init(server->loop, &f->client);
	f->client.data = f;
	cr_assert_eq(uv_accept(server, (uv_stream_t *)&f->client), 0);
	f->accepted = true;
	if (f->mode != FAKE_STALL) /* a stalled server reads once fake_resume says so */
		uv_read_start((uv_stream_t *)&f->client, fake_alloc, fake_read);
}

/* fake_start - listen on an ephemeral loopback port (f->port). */
static void
fake_start(uv_loop_t *loop, struct fake *f, enum fake_mode mode)
{
	struct sockaddr_in sin;
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	memset(f, 0, sizeof(*f));
	f->mode = mode;
	uv_tcp_init(loop, &f->server);
	f->server.data = f;
	uv_ip4_addr("127.0.0.1", 0, &sin);
	cr_assert_eq(uv_tcp_bind(&f->server, (struct sockaddr *)&sin, 0), 0);
	if (mode == FAKE_STALL) {
		/* a small receive window, inherited by the accepted socket, so the client's fills */
		int fd = -1, small = 4096;
		uv_fileno((uv_handle_t *)&f->server, &fd);
		cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	}
	cr_assert_eq(uv_listen((uv_stream_t *)&f->server, 8, fake_conn), 0);
	uv_tcp_getsockname(&f->server, (struct sockaddr *)&ss, &len);
	f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void
fake_stop(struct fake *f)
{
	uv_close((uv_handle_t *)&f->server, NULL);
	if (f->accepted && !uv_is_closing((uv_handle_t *)&f->client))
		uv_close((uv_handle_t *)&f->client, NULL);
}

static void
on_done(void *arg, const struct moat_verdict *v)
{
	struct done *d = arg;

	d->calls++;
	d->v = *v;
}

/* setup - a limiter with msg_per_ip and msg_per_sender on, Redis at PORT. */
static struct moat_ratelimit *
setup(int port, const char *failure, const char *timeout)
{
	char hostport[32], err[MOAT_CONF_ERR_MAX];
	struct moat_conf_override ov[] = {
		{ "ratelimit_store", "redis" },
		{ "ratelimit_redis", hostport },
		{ "ratelimit_redis_failure", failure },
		{ "ratelimit_redis_timeout", timeout },
		{ "ratelimit_allow", "" },
		{ "ratelimit_msg_per_ip", "2/60s" },
		{ "ratelimit_msg_per_sender", "100/60s" },
	};
	struct moat_conf *conf;
	struct moat_ratelimit *rl;

	snprintf(hostport, sizeof(hostport), "127.0.0.1:%d", port);
	conf = moat_conf_load(NULL, ov, sizeof(ov) / sizeof(ov[0]), err, sizeof(err));
	cr_assert_not_null(conf, "%s", err);
	rl = moat_ratelimit_new(conf, err, sizeof(err));
	cr_assert_not_null(rl, "%s", err);
	moat_conf_unref(conf);
	return rl;
}

/* store - the loop's Redis store at PORT; TIMEOUT is its ratelimit_redis_timeout, the one the
 * store reads (the limiter's own copy of the key is not consulted on the loop). */
static struct px_rlredis *
store(uv_loop_t *loop, struct moat_ratelimit *rl, int port, const char *timeout)
{
	char hostport[32], err[MOAT_CONF_ERR_MAX];
	struct moat_conf_override ov[] = { { "ratelimit_redis", hostport },
		{ "ratelimit_redis_timeout", timeout } };
	struct moat_conf *conf;
	struct px_rlredis *r;

	snprintf(hostport, sizeof(hostport), "127.0.0.1:%d", port);
	conf = moat_conf_load(NULL, ov, sizeof(ov) / sizeof(ov[0]), err, sizeof(err));
	cr_assert_not_null(conf, "%s", err);
	r = px_rlredis_new(loop, rl, conf);
	cr_assert_not_null(r);
	moat_conf_unref(conf);
	return r;
}

/* A loop, a fake Redis, a limiter with Redis at the fake's port, its store, and a client. */
struct rig {
	uv_loop_t loop;
	struct fake f;
	struct moat_ratelimit *rl;
	struct px_rlredis *r;
	struct moat_addr addr;
	struct moat_rl_subject subj;
};

/* rig_start - MODE FAKE_GONE: a port that was free, closed again at once (connect is refused). */
static void
rig_start(struct rig *g, enum fake_mode mode, const char *failure, const char *timeout)
{
	uv_loop_init(&g->loop);
	fake_start(&g->loop, &g->f, mode);
	if (mode == FAKE_GONE) {
		fake_stop(&g->f);
		uv_run(&g->loop, UV_RUN_DEFAULT);
	}
	g->rl = setup(g->f.port, failure, timeout);
	g->r = store(&g->loop, g->rl, g->f.port, timeout);
	cr_assert_eq(moat_addr_parse("192.0.2.1", &g->addr), 0);
	g->subj =
	    (struct moat_rl_subject){ .addr = &g->addr, .sender = "s@example.org", .sid = "test" };
}

/* check - one MAIL check from 192.0.2.1: 0 (answered in *v) or 1 (D gets it later). */
static int
check(struct rig *g, struct moat_verdict *v, struct done *d)
{
	struct moat_rl_plan plan;

	moat_ratelimit_plan(g->rl, MOAT_RL_EV_MAIL, &g->subj, &plan);
	return px_ratelimit_charge(g->rl, g->r, &plan, g->subj.sid, v, on_done, d);
}

/* mail - a check and its verdict once it is in (the loop runs meanwhile); 1: it went to Redis. */
static int
mail(struct rig *g, struct moat_verdict *v)
{
	struct done d = { 0 };

	if (check(g, v, &d) == 0)
		return 0;
	cr_assert_eq(d.calls, 0, "never called from inside px_ratelimit_charge");
	for (int i = 0; i < 1000 && d.calls == 0; i++)
		uv_run(&g->loop, UV_RUN_ONCE);
	cr_assert_eq(d.calls, 1);
	*v = d.v;
	return 1;
}

/* rig_finish - close the store (if still open) and the fake; the loop must end with no handle. */
static void
rig_finish(struct rig *g)
{
	px_rlredis_close(g->r);
	if (g->f.mode != FAKE_GONE)
		fake_stop(&g->f);
	uv_run(&g->loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&g->loop), 0, "a handle was left open");
	moat_ratelimit_free(g->rl);
}

Test(ratelimit_uv, answers_from_redis)
{
	struct rig g;
	struct moat_verdict v;

	rig_start(&g, FAKE_ALLOW, "open", "1s");
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(mail(&g, &v), 1, "check %d went to Redis", i);
		cr_assert_eq(v.action, MOAT_CONTINUE,
		    "Redis allows; the embedded store is not asked");
	}
	cr_assert_eq(g.f.evalsha, 3);
	g.f.mode = FAKE_REFUSE;
	cr_assert_eq(mail(&g, &v), 1);
	cr_assert_eq(v.code, 451);
	cr_assert_str_eq(v.status, "4.7.1");
	cr_assert_str_eq(v.reason, "ratelimit_msg_per_sender");
	rig_finish(&g);
}

Test(ratelimit_uv, noscript_then_eval)
{
	struct rig g;
	struct moat_verdict v;

	rig_start(&g, FAKE_NOSCRIPT, "closed", "1s");
	cr_assert_eq(mail(&g, &v), 1);
	cr_assert_eq(v.action, MOAT_CONTINUE, "the EVAL answer counts, not the NOSCRIPT error");
	cr_assert_eq(g.f.evalsha, 1);
	cr_assert_eq(g.f.eval, 1);
	rig_finish(&g);
}

Test(ratelimit_uv, silent_server_times_out)
{
	struct rig g;
	struct moat_verdict v;
	uint64_t t0;

	rig_start(&g, FAKE_SILENT, "open", "50ms");
	t0 = uv_hrtime();
	cr_assert_eq(mail(&g, &v), 1);
	cr_assert_eq(v.action, MOAT_CONTINUE, "fail-open: the embedded store allows the first");
	cr_assert((uv_hrtime() - t0) / 1000000 < 2000, "the timeout bounds the wait");
	/* in the back-off: answered at once, from memory (2/60s: the third is refused) */
	cr_assert_eq(mail(&g, &v), 0);
	cr_assert_eq(v.action, MOAT_CONTINUE);
	cr_assert_eq(mail(&g, &v), 0);
	cr_assert_eq(v.code, 451);
	cr_assert_str_eq(v.reason, "ratelimit_msg_per_ip");
	rig_finish(&g);
}

Test(ratelimit_uv, fail_closed_refuses)
{
	struct rig g;
	struct moat_verdict v;

	rig_start(&g, FAKE_SILENT, "closed", "50ms");
	cr_assert_eq(mail(&g, &v), 1);
	cr_assert_eq(v.code, 451);
	cr_assert_str_eq(v.status, "4.3.0");
	cr_assert_str_eq(v.reason, "ratelimit_store_down");
	cr_assert_eq(mail(&g, &v), 0, "in the back-off: refused at once");
	cr_assert_eq(v.code, 451);
	rig_finish(&g);
}

/*
 * shrink_peer_sndbuf - find the store's socket in this process (the one whose local port is the
 * fake's peer) and give it a small fixed send buffer, or the kernel's autotuning takes megabytes.
 */
static void
shrink_peer_sndbuf(struct fake *f)
{
	struct sockaddr_storage peer, mine;
	int plen = sizeof(peer), small = 4096;

	cr_assert_eq(uv_tcp_getpeername(&f->client, (struct sockaddr *)&peer, &plen), 0);
	for (int fd = 3; fd < 1024; fd++) {
		socklen_t mlen = sizeof(mine);
		if (getsockname(fd, (struct sockaddr *)&mine, &mlen) == 0 &&
		    mine.ss_family == AF_INET &&
		    ((struct sockaddr_in *)&mine)->sin_port ==
			((struct sockaddr_in *)&peer)->sin_port) {
			cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)),
			    0);
			return;
		}
	}
	cr_assert_fail("the store's socket was not found");
}

/*
 * Redis stops reading: checks queued meanwhile stay in hiredis's buffer once the sockets are
 * full (the poll waits for writability), and every one is answered once Redis reads again.
 */
Test(ratelimit_uv, backlog_beyond_socket_buffers)
{
	enum {
		N = 4000
	};
	struct rig g;
	struct done d = { 0 };
	struct moat_verdict v;
	int fd = -1, queued = 0;

	rig_start(&g, FAKE_STALL, "closed", "10s");
	cr_assert_eq(check(&g, &v, &d), 1);
	for (int i = 0; i < 200 && !g.f.accepted; i++)
		uv_run(&g.loop, UV_RUN_ONCE);
	cr_assert(g.f.accepted);
	shrink_peer_sndbuf(&g.f);
	for (int i = 1; i < N; i++)
		cr_assert_eq(check(&g, &v, &d), 1);
	for (int i = 0; i < 50; i++)
		uv_run(&g.loop, UV_RUN_NOWAIT);
	uv_fileno((uv_handle_t *)&g.f.client, &fd);
	cr_assert_eq(ioctl(fd, FIONREAD, &queued), 0);
	cr_assert_lt((size_t)queued * 2, (size_t)N * 150, "the sockets hold a fraction (%d bytes)",
	    queued);
	cr_assert_eq(d.calls, 0);
	uv_read_start((uv_stream_t *)&g.f.client, fake_alloc, fake_read);
	for (int i = 0; i < 100000 && d.calls < N; i++)
		uv_run(&g.loop, UV_RUN_ONCE);
	cr_assert_eq(d.calls, N, "answered %d of %d", d.calls, N);
	cr_assert_eq(g.f.evalsha, N);
	cr_assert_eq(d.v.action, MOAT_CONTINUE,
	    "the last one from Redis, not the fail-closed refusal");
	rig_finish(&g);
}

Test(ratelimit_uv, refused_connect_backs_off)
{
	struct rig g;
	struct moat_verdict v;
	uint64_t t0;

	rig_start(&g, FAKE_GONE, "open", "10s");
	/* refused by connect() itself, or reported by the poll: not left to the timeout */
	t0 = uv_hrtime();
	mail(&g, &v);
	cr_assert_lt((uv_hrtime() - t0) / 1000000, 5000,
	    "the refusal is seen before the 10 s timeout");
	cr_assert_eq(v.action, MOAT_CONTINUE);
	cr_assert_eq(mail(&g, &v), 0, "in the back-off: no new connection is tried");
	cr_assert_eq(v.action, MOAT_CONTINUE);
	rig_finish(&g);
}

Test(ratelimit_uv, close_with_a_check_pending)
{
	struct rig g;
	struct moat_verdict v;
	struct done d = { 0 };

	rig_start(&g, FAKE_SILENT, "closed", "5s");
	cr_assert_eq(check(&g, &v, &d), 1);
	for (int i = 0; i < 100 && g.f.evalsha == 0; i++)
		uv_run(&g.loop, UV_RUN_ONCE);
	cr_assert_eq(g.f.evalsha, 1, "the call reached the server");
	px_rlredis_close(g.r);
	cr_assert_eq(d.calls, 1, "closing answers the pending check");
	cr_assert_eq(d.v.action, MOAT_CONTINUE,
	    "from memory, even fail-closed: the daemon is stopping");
	rig_finish(&g);
}
