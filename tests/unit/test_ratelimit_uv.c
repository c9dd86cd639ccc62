/*
 * test_ratelimit_uv.c - the proxy's Redis store on a libuv loop (proxy/ratelimit_uv.c) against a
 * fake Redis served on the same loop: a reply, NOSCRIPT then EVAL, a server that never answers
 * (timeout, fail-open and fail-closed), a refused connection with its back-off, and a close with
 * a check pending. Every test makes its own loop and ends with uv_loop_close() == 0.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "ratelimit_uv.h"

/* How the fake Redis answers each read. */
enum fake_mode { FAKE_ALLOW, FAKE_REFUSE, FAKE_NOSCRIPT, FAKE_SILENT };

struct fake {
	uv_tcp_t server;
	uv_tcp_t client;
	bool accepted;
	enum fake_mode mode;
	unsigned evalsha, eval;           /* commands seen */
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

/* fake_read - one script call per read (the tests send one at a time). */
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
		fake_say(f, sha ? "-NOSCRIPT No matching script. Please use EVAL.\r\n" : "*2\r\n:0\r\n:0\r\n");
		break;
	case FAKE_SILENT:
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
		{ "ratelimit_store", "redis" }, { "ratelimit_redis", hostport },
		{ "ratelimit_redis_failure", failure }, { "ratelimit_redis_timeout", timeout },
		{ "ratelimit_allow", "" }, { "ratelimit_msg_per_ip", "2/60s" },
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

static struct px_rlredis *
store(uv_loop_t *loop, struct moat_ratelimit *rl, int port)
{
	char hostport[32], err[MOAT_CONF_ERR_MAX];
	struct moat_conf_override ov[] = { { "ratelimit_redis", hostport } };
	struct moat_conf *conf;
	struct px_rlredis *r;

	snprintf(hostport, sizeof(hostport), "127.0.0.1:%d", port);
	conf = moat_conf_load(NULL, ov, 1, err, sizeof(err));
	cr_assert_not_null(conf, "%s", err);
	r = px_rlredis_new(loop, rl, conf);
	cr_assert_not_null(r);
	moat_conf_unref(conf);
	return r;
}

/* mail - one MAIL check from 192.0.2.1; the verdict once it is in (the loop runs meanwhile). */
static int
mail(uv_loop_t *loop, struct moat_ratelimit *rl, struct px_rlredis *r, struct moat_verdict *v)
{
	struct moat_addr a;
	struct moat_rl_subject subj = { .addr = &a, .sender = "s@example.org", .sid = "test" };
	struct done d = { 0 };
	int rc;

	cr_assert_eq(moat_addr_parse("192.0.2.1", &a), 0);
	rc = px_ratelimit_event(rl, r, MOAT_RL_EV_MAIL, &subj, v, on_done, &d);
	if (rc == 0)
		return 0;
	cr_assert_eq(d.calls, 0, "never called from inside px_ratelimit_event");
	for (int i = 0; i < 1000 && d.calls == 0; i++)
		uv_run(loop, UV_RUN_ONCE);
	cr_assert_eq(d.calls, 1);
	*v = d.v;
	return 1;
}

static void
finish(uv_loop_t *loop, struct moat_ratelimit *rl, struct px_rlredis *r, struct fake *f)
{
	px_rlredis_close(r);
	if (f != NULL)
		fake_stop(f);
	uv_run(loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(loop), 0, "a handle was left open");
	moat_ratelimit_free(rl);
}

Test(ratelimit_uv, answers_from_redis)
{
	uv_loop_t loop;
	struct fake f;
	struct moat_verdict v;
	struct moat_ratelimit *rl;
	struct px_rlredis *r;

	uv_loop_init(&loop);
	fake_start(&loop, &f, FAKE_ALLOW);
	rl = setup(f.port, "open", "1s");
	r = store(&loop, rl, f.port);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(mail(&loop, rl, r, &v), 1, "check %d went to Redis", i);
		cr_assert_eq(v.action, MOAT_CONTINUE, "Redis allows; the embedded store is not asked");
	}
	cr_assert_eq(f.evalsha, 3);
	f.mode = FAKE_REFUSE;
	cr_assert_eq(mail(&loop, rl, r, &v), 1);
	cr_assert_eq(v.code, 451);
	cr_assert_str_eq(v.status, "4.7.1");
	cr_assert_str_eq(v.reason, "ratelimit_msg_per_sender");
	finish(&loop, rl, r, &f);
}

Test(ratelimit_uv, noscript_then_eval)
{
	uv_loop_t loop;
	struct fake f;
	struct moat_verdict v;
	struct moat_ratelimit *rl;
	struct px_rlredis *r;

	uv_loop_init(&loop);
	fake_start(&loop, &f, FAKE_NOSCRIPT);
	rl = setup(f.port, "closed", "1s");
	r = store(&loop, rl, f.port);
	cr_assert_eq(mail(&loop, rl, r, &v), 1);
	cr_assert_eq(v.action, MOAT_CONTINUE, "the EVAL answer counts, not the NOSCRIPT error");
	cr_assert_eq(f.evalsha, 1);
	cr_assert_eq(f.eval, 1);
	finish(&loop, rl, r, &f);
}

Test(ratelimit_uv, silent_server_times_out)
{
	uv_loop_t loop;
	struct fake f;
	struct moat_verdict v;
	struct moat_ratelimit *rl;
	struct px_rlredis *r;
	uint64_t t0;

	uv_loop_init(&loop);
	fake_start(&loop, &f, FAKE_SILENT);
	rl = setup(f.port, "open", "50ms");
	r = store(&loop, rl, f.port);
	t0 = uv_hrtime();
	cr_assert_eq(mail(&loop, rl, r, &v), 1);
	cr_assert_eq(v.action, MOAT_CONTINUE, "fail-open: the embedded store allows the first");
	cr_assert((uv_hrtime() - t0) / 1000000 < 2000, "the timeout bounds the wait");
	/* in the back-off: answered at once, from memory (2/60s: the third is refused) */
	cr_assert_eq(mail(&loop, rl, r, &v), 0);
	cr_assert_eq(v.action, MOAT_CONTINUE);
	cr_assert_eq(mail(&loop, rl, r, &v), 0);
	cr_assert_eq(v.code, 451);
	cr_assert_str_eq(v.reason, "ratelimit_msg_per_ip");
	finish(&loop, rl, r, &f);
}

Test(ratelimit_uv, fail_closed_refuses)
{
	uv_loop_t loop;
	struct fake f;
	struct moat_verdict v;
	struct moat_ratelimit *rl;
	struct px_rlredis *r;

	uv_loop_init(&loop);
	fake_start(&loop, &f, FAKE_SILENT);
	rl = setup(f.port, "closed", "50ms");
	r = store(&loop, rl, f.port);
	cr_assert_eq(mail(&loop, rl, r, &v), 1);
	cr_assert_eq(v.code, 451);
	cr_assert_str_eq(v.status, "4.3.0");
	cr_assert_str_eq(v.reason, "ratelimit_store_down");
	cr_assert_eq(mail(&loop, rl, r, &v), 0, "in the back-off: refused at once");
	cr_assert_eq(v.code, 451);
	finish(&loop, rl, r, &f);
}

Test(ratelimit_uv, refused_connect_backs_off)
{
	uv_loop_t loop;
	struct fake f;
	struct moat_verdict v;
	struct moat_ratelimit *rl;
	struct px_rlredis *r;
	int port;

	uv_loop_init(&loop);
	fake_start(&loop, &f, FAKE_ALLOW);   /* a port that was free: closed again at once */
	port = f.port;
	fake_stop(&f);
	uv_run(&loop, UV_RUN_DEFAULT);
	rl = setup(port, "open", "100ms");
	r = store(&loop, rl, port);
	/* refused at once, or (EINPROGRESS) noticed by the timeout: hiredis 0.14's libuv adapter
	 * drops the poll error a refused connect raises */
	mail(&loop, rl, r, &v);
	cr_assert_eq(v.action, MOAT_CONTINUE);
	cr_assert_eq(mail(&loop, rl, r, &v), 0, "in the back-off: no new connection is tried");
	cr_assert_eq(v.action, MOAT_CONTINUE);
	finish(&loop, rl, r, NULL);
}

Test(ratelimit_uv, close_with_a_check_pending)
{
	uv_loop_t loop;
	struct fake f;
	struct moat_verdict v;
	struct moat_ratelimit *rl;
	struct px_rlredis *r;
	struct moat_addr a;
	struct moat_rl_subject subj = { .addr = &a, .sender = "s@example.org", .sid = "test" };
	struct done d = { 0 };

	uv_loop_init(&loop);
	fake_start(&loop, &f, FAKE_SILENT);
	rl = setup(f.port, "closed", "5s");
	r = store(&loop, rl, f.port);
	cr_assert_eq(moat_addr_parse("192.0.2.1", &a), 0);
	cr_assert_eq(px_ratelimit_event(rl, r, MOAT_RL_EV_MAIL, &subj, &v, on_done, &d), 1);
	for (int i = 0; i < 100 && f.evalsha == 0; i++)
		uv_run(&loop, UV_RUN_ONCE);
	cr_assert_eq(f.evalsha, 1, "the call reached the server");
	px_rlredis_close(r);
	cr_assert_eq(d.calls, 1, "closing answers the pending check");
	cr_assert_eq(d.v.action, MOAT_CONTINUE, "from memory, even fail-closed: the daemon is stopping");
	fake_stop(&f);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&loop), 0, "a handle was left open");
	moat_ratelimit_free(rl);
}
