/*
 * stream.c - one leg of a proxied connection (stream.h): libuv reads and writes, the TLS engine
 * (tls.h) between them and the owner when TLS is on. Owns its handle, its TLS session and the read
 * buffers it allocates; idle streams hold no buffer.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "stream.h"
#include "tls.h"

#define READ_SIZE 4096 /* a plaintext read without a buffer from the owner */
#define TLS_READ_SIZE (16384 + 2048) /* one full record and its overhead */

struct wreq {
	uv_write_t req;
	struct px_stream *st;
	char data[];
};

static void on_close(uv_handle_t *h);

static void
on_write(uv_write_t *req, int status)
{
	struct px_stream *st = ((struct wreq *)req)->st;

	(void)status;
	free(req);
	if (st->drain && st->h.stream.write_queue_size == 0 && !uv_is_closing(&st->h.handle))
		uv_close(&st->h.handle, on_close);
	if (st->cb->written != NULL)
		st->cb->written(st->arg);
}

/* raw_write - try to write at once; queue a copy of what is left. -1 on error. */
static int
raw_write(struct px_stream *st, const char *p, size_t n)
{
	uv_buf_t buf;
	struct wreq *wr;
	int rc;

	if (st->h.stream.write_queue_size == 0) {
		buf = uv_buf_init((char *)p, (unsigned)n);
		rc = uv_try_write(&st->h.stream, &buf, 1);
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
	wr->st = st;
	memcpy(wr->data, p, n);
	buf = uv_buf_init(wr->data, (unsigned)n);
	if (uv_write(&wr->req, &st->h.stream, &buf, 1, on_write) != 0) {
		free(wr);
		return -1;
	}
	return 0;
}

/* tls_send - the engine's ciphertext for the peer, written raw. -1 on error. */
static int
tls_send(struct px_stream *st)
{
	const void *p;
	size_t n;

	while ((n = moat_tls_pending_out(st->tls, &p)) > 0) {
		if (uv_is_closing(&st->h.handle) || raw_write(st, p, n) < 0)
			return -1;
		moat_tls_consume(st->tls, n);
	}
	return 0;
}

/* fail - the leg is lost: reading stops, the owner is told. */
static void
fail(struct px_stream *st, const char *why)
{
	px_stream_read_stop(st);
	st->cb->error(st->arg, why);
}

void
px_stream_tls_pump(struct px_stream *st)
{
	if (st->tls == NULL)
		return;
	if (!st->tls_reported && moat_tls_conn_state(st->tls) == MOAT_TLS_OPEN) {
		struct moat_tls_info info;

		st->tls_reported = true;
		moat_tls_info(st->tls, &info);
		if (st->cb->tls_open != NULL)
			st->cb->tls_open(st->arg, &info);
	}
	while (!st->closing && st->tls_reported) {
		/* through a stack buffer: the owner's buffer may not exist yet (idle sessions hold
		 * none) */
		char plain[4096];
		size_t room = st->cb->room != NULL ? st->cb->room(st->arg) : sizeof(plain);
		ssize_t n;

		if (room == 0)
			break;
		n = moat_tls_read(st->tls, plain, room < sizeof(plain) ? room : sizeof(plain));
		if (n <= 0)
			break;
		st->cb->input(st->arg, plain, (size_t)n);
	}
}

/* tls_input - ciphertext from the peer; whatever came in clear after STARTTLS reaches only the
 * engine. */
static void
tls_input(struct px_stream *st, const char *p, size_t n)
{
	enum moat_tls_state state;

	(void)moat_tls_feed(st->tls, p, n);
	px_stream_tls_pump(st);
	if (st->closing)
		return; /* the owner closed the leg */
	state = moat_tls_conn_state(st->tls);
	if (state == MOAT_TLS_FAILED) {
		(void)tls_send(st); /* the alert, if any */
		fail(st, "tls");
	} else if (tls_send(st) < 0) {
		fail(st, "write");
	} else if (state == MOAT_TLS_CLOSED) {
		fail(st, "eof");
	}
}

void
px_stream_feed(struct px_stream *st, const char *p, size_t n)
{
	if (st->tls != NULL)
		tls_input(st, p, n);
	else
		st->cb->input(st->arg, p, n);
}

/* on_alloc - a read buffer only for the duration of one read: idle legs hold none. */
static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct px_stream *st = h->data;
	size_t avail = TLS_READ_SIZE;

	(void)hint;
	st->rtls = st->tls != NULL;
	if (!st->rtls && st->cb->rbuf != NULL) {
		char *p = st->cb->rbuf(st->arg, &avail);

		*buf = uv_buf_init(p, (unsigned)avail);
		return;
	}
	if (!st->rtls)
		avail = READ_SIZE;
	/* Freed by on_read, which libuv always calls after this allocation. */
	st->rown = malloc(avail);
	*buf = uv_buf_init(st->rown, st->rown != NULL ? (unsigned)avail : 0);
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct px_stream *st = s->data;
	char *own = st->rown;

	(void)buf;
	st->rown = NULL;
	if (st->closing) {
		free(own);
		return;
	}
	if (nread > 0) {
		st->bytes_in += (uint64_t)nread;
		if (own == NULL)
			st->cb->rdone(st->arg, (size_t)nread);
		else if (st->rtls)
			tls_input(st, own, (size_t)nread);
		else
			st->cb->input(st->arg, own, (size_t)nread);
	} else if (nread == UV_ENOBUFS) {
		px_stream_read_stop(st); /* the owner has no room; it starts reading again */
	} else if (nread < 0) {
		fail(st, nread == UV_EOF ? "eof" : uv_err_name((int)nread));
	}
	free(own);
	if (st->cb->update != NULL)
		st->cb->update(st->arg);
}

int
px_stream_read_start(struct px_stream *st)
{
	if (st->reading)
		return 0;
	if (uv_read_start(&st->h.stream, on_alloc, on_read) != 0)
		return -1;
	st->reading = true;
	return 0;
}

void
px_stream_read_stop(struct px_stream *st)
{
	if (!st->reading)
		return;
	uv_read_stop(&st->h.stream);
	st->reading = false;
}

int
px_stream_write(struct px_stream *st, const char *p, size_t n)
{
	if (st->tls == NULL)
		return raw_write(st, p, n);
	if (moat_tls_conn_state(st->tls) != MOAT_TLS_OPEN && st->tls_server)
		return tls_send(st); /* nothing can be said in clear once TLS has started */
	if (moat_tls_write(st->tls, p, n) < 0)
		return -1;
	return tls_send(st);
}

size_t
px_stream_queued(const struct px_stream *st)
{
	return st->h.stream.write_queue_size;
}

int
px_stream_tls_start(struct px_stream *st, struct moat_tls_ctx *ctx, bool server, char *err,
    size_t errlen)
{
	st->tls =
	    moat_tls_conn_new(ctx, server ? MOAT_TLS_SERVER : MOAT_TLS_CLIENT, NULL, err, errlen);
	if (st->tls == NULL)
		return -1;
	st->tls_server = server;
	st->tls_reported = false;
	st->tls_start = uv_now(st->h.handle.loop);
	return server ? 0 : tls_send(st); /* a client's ClientHello */
}

bool
px_stream_tls_handshaking(const struct px_stream *st)
{
	return st->tls != NULL && moat_tls_conn_state(st->tls) == MOAT_TLS_HANDSHAKE;
}

const char *
px_stream_tls_error(const struct px_stream *st)
{
	return st->tls != NULL ? moat_tls_conn_error(st->tls) : "";
}

static void
on_close(uv_handle_t *h)
{
	struct px_stream *st = h->data;

	moat_tls_conn_free(st->tls);
	st->tls = NULL;
	if (st->cb->closed != NULL)
		st->cb->closed(st->arg); /* may free st */
}

static void
on_shutdown(uv_shutdown_t *req, int status)
{
	struct px_stream *st = req->data;

	(void)status;
	if (!uv_is_closing(&st->h.handle))
		uv_close(&st->h.handle, on_close);
}

void
px_stream_close(struct px_stream *st, enum px_stream_close how)
{
	if (uv_is_closing(&st->h.handle) || (st->closing && how != PX_STREAM_ABORT))
		return;
	st->closing = true;
	px_stream_read_stop(st);
	if (how == PX_STREAM_GRACEFUL && st->connected) {
		if (st->tls != NULL && moat_tls_conn_state(st->tls) == MOAT_TLS_OPEN) {
			moat_tls_shutdown(st->tls); /* close_notify after what was written */
			(void)tls_send(st);
		}
		st->sreq.data = st;
		if (uv_shutdown(&st->sreq, &st->h.stream, on_shutdown) == 0)
			return;
	} else if (how == PX_STREAM_DRAIN && st->h.stream.write_queue_size > 0) {
		st->drain = true;
		return;
	}
	uv_close(&st->h.handle, on_close);
}

void
px_stream_set_cb(struct px_stream *st, const struct px_stream_cb *cb, void *arg)
{
	st->cb = cb;
	st->arg = arg;
}

int
px_stream_init_tcp(struct px_stream *st, uv_loop_t *loop, const struct px_stream_cb *cb, void *arg)
{
	memset(st, 0, sizeof(*st));
	px_stream_set_cb(st, cb, arg);
	st->h.handle.data = st;
	return uv_tcp_init(loop, &st->h.tcp);
}

int
px_stream_addr(const char *spec, struct sockaddr_storage *ss, char *path, size_t pathlen)
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

static void
on_connect(uv_connect_t *req, int status)
{
	struct px_stream *st = req->data;

	if (st->closing)
		return; /* abandoned */
	if (status == 0) {
		st->connected = true;
		if (st->h.handle.type == UV_TCP)
			uv_tcp_nodelay(&st->h.tcp, 1);
		(void)px_stream_read_start(st);
	}
	st->cb->connected(st->arg, status);
	if (st->cb->update != NULL)
		st->cb->update(st->arg);
}

int
px_stream_connect(struct px_stream *st, uv_loop_t *loop, const char *spec,
    const struct px_stream_cb *cb, void *arg)
{
	struct sockaddr_storage ss;
	char path[108];
	int kind = px_stream_addr(spec, &ss, path, sizeof(path));

	memset(st, 0, sizeof(*st));
	if (kind < 0)
		return -1;
	px_stream_set_cb(st, cb, arg);
	st->h.handle.data = st;
	st->creq.data = st;
	if (kind == 1) {
		uv_pipe_init(loop, &st->h.pipe, 0);
		uv_pipe_connect(&st->creq, &st->h.pipe, path, on_connect);
		return 0;
	}
	uv_tcp_init(loop, &st->h.tcp);
	if (uv_tcp_connect(&st->creq, &st->h.tcp, (struct sockaddr *)&ss, on_connect) != 0) {
		px_stream_close(st, PX_STREAM_ABORT);
		return -1;
	}
	return 0;
}
