/*
 * fuzz_tls_session.c - libFuzzer target: the proxy's client leg with TLS and the SMTP session behind
 * it. proxy/stream.c reads a socket through libuv (one end of a socketpair; the fuzzer's client
 * holds the other), decrypts with the TLS engine and hands the plaintext on as far as the session
 * (proxy/smtp_session.c, with sim_session.c's simulated backend) has room; the session's replies go
 * back encrypted. The client is a TLS engine of our own that verifies the proxy's ECDSA
 * certificate (tests/data/tls, tests/helpers/tls_fixture.c) and completes the handshake first;
 * then the fuzzer chooses what it says inside TLS, how that is cut into records and how the
 * ciphertext is cut into the proxy's reads, and may forge records, send close_notify or
 * half-close. Beyond the sanitizers and sim_session's checks of the backend stream it checks that
 * every line the client gets back, in clear before STARTTLS and decrypted after, is a reply line
 * ("ddd " or "ddd-", CRLF-ended, at most 512 bytes: RFC 5321 4.5.3.1.5).
 *
 * Input: byte 0: bit 0 implicit TLS (else EHLO, then STARTTLS in clear), bit 1
 * proxy_backend_connect=accept, bit 2 tls_starttls_pipelined=close, bits 3-5 the size class of the
 * proxy's reads during the handshake. Then steps, each an op byte, a length byte L and L bytes:
 *   op & 3 == 0  application data, in records of size class (op >> 2) & 7, the ciphertext in
 *                reads of size class op >> 5
 *            1   the L bytes as ciphertext, unencrypted (a forged or broken record)
 *            2   the L bytes as plaintext sent in clear (before the handshake: pipelined after
 *                STARTTLS, CVE-2011-0411); then close_notify when bit 2 of op is set
 *            3   the client half-closes (EOF at the proxy); the steps end
 * Size classes: 1, 2, 5, 16, 64, 512, 4096, 16384 bytes. The seeds (tests/fuzz/corpus/tls_session)
 * are whole sessions in this format.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "conf.h"
#include "sim_session.h"
#include "stream.h"
#include "tls.h"
#include "tls_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const size_t size_class[8] = { 1, 2, 5, 16, 64, 512, 4096, 16384 };

struct fz {
	struct sim_session sm;
	struct px_stream st; /* the proxy's client leg */
	bool st_open; /* its handle is not closed yet */
	bool implicit;
	bool starttls; /* the session started TLS on the leg: the client's handshake follows */
	struct moat_tls_conn *cli; /* the client's TLS engine, once started */
	int peer; /* the client's end of the socketpair */
	char out[65536]; /* the session's replies during one event, written at its end (conn.c) */
	size_t olen;
	char line[600]; /* the reply line the client is receiving */
	size_t llen;
};

static uv_loop_t loop;
static struct moat_tls_ctx *ctx;
static struct moat_policy *pols[8];

/* ---- the client: what it receives must be reply lines ---- */

static void
reply_byte(struct fz *f, char c)
{
	if (f->llen == sizeof(f->line))
		abort(); /* a reply line over 512 bytes */
	f->line[f->llen++] = c;
	if (c != '\n')
		return;
	if (f->llen < 6 || f->line[f->llen - 2] != '\r' || f->line[0] < '2' || f->line[0] > '5' ||
	    f->line[1] < '0' || f->line[1] > '9' || f->line[2] < '0' || f->line[2] > '9' ||
	    (f->line[3] != ' ' && f->line[3] != '-'))
		abort(); /* not a reply line */
	f->llen = 0;
}

static void
replies(struct fz *f, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		reply_byte(f, p[i]);
}

/* to_proxy - bytes from the client, written in pieces of at most chunk, each read by the proxy's
 * loop before the next is written (one read each, while it reads). */
static void
to_proxy(struct fz *f, const void *data, size_t n, size_t chunk)
{
	const char *p = data;

	while (n > 0 && f->st_open) {
		size_t k = n < chunk ? n : chunk;
		ssize_t w = send(f->peer, p, k, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w <= 0)
			return; /* the proxy is not reading and the socket is full, or it is gone */
		p += w;
		n -= (size_t)w;
		uv_run(&loop, UV_RUN_NOWAIT);
	}
}

/* client_send - what the client's engine has to say, in reads of chunk. */
static void
client_send(struct fz *f, size_t chunk)
{
	const void *p;
	size_t n;

	while (f->cli != NULL && (n = moat_tls_pending_out(f->cli, &p)) > 0) {
		char copy[16384 + 512];

		if (n > sizeof(copy))
			n = sizeof(copy);
		memcpy(copy, p, n);
		moat_tls_consume(f->cli, n);
		to_proxy(f, copy, n, chunk);
	}
}

/* from_proxy - what the proxy sent: replies in clear, or ciphertext for the client's engine (whose
 * answers go back). True when anything came. */
static bool
from_proxy(struct fz *f, size_t chunk)
{
	char buf[16384];
	bool any = false;
	ssize_t n;

	while ((n = recv(f->peer, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		any = true;
		if (f->cli == NULL) {
			replies(f, buf, (size_t)n);
			continue;
		}
		(void)moat_tls_feed(f->cli, buf, (size_t)n);
		for (ssize_t k; (k = moat_tls_read(f->cli, buf, sizeof(buf))) > 0;)
			replies(f, buf, (size_t)k);
		client_send(f, chunk);
	}
	if (f->starttls && f->cli == NULL) {
		/* the 220 came in clear: the handshake starts, the client verifying the certificate */
		char err[MOAT_TLS_ERR_MAX];

		if ((f->cli = moat_tls_conn_new(ctx, MOAT_TLS_CLIENT, "mail.test", err,
			 sizeof(err))) == NULL) {
			fprintf(stderr, "fuzz_tls_session: %s\n", err);
			abort();
		}
		client_send(f, chunk);
		any = true;
	}
	return any;
}

/* ---- the proxy's side: the client leg's callbacks, as conn.c has them ---- */

/* flush - the replies of this event in one write (conn.c's conn_flush) */
static void
flush(struct fz *f)
{
	if (f->olen > 0 && f->st_open && !f->st.closing)
		(void)px_stream_write(&f->st, f->out,
		    f->olen); /* a failure shows on the next read */
	f->olen = 0;
}

/* update - after every event (conn.c's conn_update): plaintext the session had no room for, the
 * replies, the end, backpressure */
static void
update(struct fz *f)
{
	if (!f->st_open || f->st.closing)
		return;
	px_stream_tls_pump(&f->st);
	flush(f);
	if (f->sm.closed)
		px_stream_close(&f->st, PX_STREAM_DRAIN);
	else if (px_session_rroom(f->sm.s) > 0 || (f->st.tls != NULL && !f->st.tls_reported))
		(void)px_stream_read_start(&f->st);
	else
		px_stream_read_stop(&f->st);
}

static char *
leg_rbuf(void *arg, size_t *avail)
{
	struct fz *f = arg;

	if (f->sm.closed) {
		*avail = 0;
		return NULL;
	}
	return px_session_rbuf(f->sm.s, avail);
}

static void
leg_rdone(void *arg, size_t n)
{
	struct fz *f = arg;

	px_session_rdone(f->sm.s, n);
	sim_session_settle(&f->sm);
}

static size_t
leg_room(void *arg)
{
	struct fz *f = arg;

	return f->sm.closed ? 0 : px_session_rroom(f->sm.s);
}

static void
leg_input(void *arg, const char *p, size_t n)
{
	struct fz *f = arg;
	size_t avail;
	char *q = f->sm.closed ? NULL : px_session_rbuf(f->sm.s, &avail);

	if (q == NULL || avail < n)
		return;
	memcpy(q, p, n);
	leg_rdone(f, n);
}

static void
leg_tls_open(void *arg, const struct moat_tls_info *info)
{
	struct fz *f = arg;

	px_session_tls_started(f->sm.s, info);
	if (f->implicit)
		px_session_start(f->sm.s, true);
	sim_session_settle(&f->sm);
}

static void
leg_error(void *arg, const char *why)
{
	struct fz *f = arg;

	(void)why;
	if (!f->sm.closed) {
		px_session_client_gone(f->sm.s);
		f->sm.closed = true;
	}
	px_stream_close(&f->st, PX_STREAM_ABORT);
}

static void
leg_update(void *arg)
{
	update(arg);
}

static void
leg_closed(void *arg)
{
	((struct fz *)arg)->st_open = false;
}

static const struct px_stream_cb leg_cb = {
	.rbuf = leg_rbuf,
	.rdone = leg_rdone,
	.room = leg_room,
	.input = leg_input,
	.tls_open = leg_tls_open,
	.error = leg_error,
	.written = leg_update,
	.update = leg_update,
	.closed = leg_closed,
};

/* the session's side of the leg: replies, and TLS on it */
static void
sess_write(void *arg, const char *p, size_t n)
{
	struct fz *f = arg;

	if (n > sizeof(f->out) - f->olen)
		abort(); /* conn.c stops reading long before */
	memcpy(f->out + f->olen, p, n);
	f->olen += n;
}

static int
sess_starttls(void *arg)
{
	struct fz *f = arg;
	char err[MOAT_TLS_ERR_MAX];

	flush(f); /* the 220 in clear, then TLS */
	if (!f->st_open || f->st.closing ||
	    px_stream_tls_start(&f->st, ctx, true, err, sizeof(err)) < 0)
		return -1;
	f->starttls = true;
	return 0;
}

static const struct sim_leg sess_leg = { .write = sess_write, .starttls = sess_starttls };

/* ---- one run ---- */

/* settle - until nothing moves: the proxy's loop, the session, the client. */
static void
settle(struct fz *f, size_t chunk)
{
	for (int i = 0; i < 64; i++) {
		uv_run(&loop, UV_RUN_NOWAIT);
		sim_session_settle(&f->sm);
		update(f);
		if (!from_proxy(f, chunk))
			break;
	}
}

static void
setup(void)
{
	const char *dir = tls_fixture_dir();
	char o[4][1300];
	const char *kv[4] = { o[0], o[1], o[2], o[3] };

	snprintf(o[0], sizeof(o[0]), "tls_cert_file=%s/ecdsa.pem", dir);
	snprintf(o[1], sizeof(o[1]), "tls_key_file=%s/ecdsa.key", dir);
	snprintf(o[2], sizeof(o[2]), "tls_backend_ca_file=%s/ca.pem", dir);
	snprintf(o[3], sizeof(o[3]), "tls_backend=required");
	ctx = tls_fixture_ctx("fuzz_tls_session", kv, 4);
	if (uv_loop_init(&loop) != 0)
		abort();
}

static struct moat_policy *
policy(unsigned opt)
{
	if (pols[opt] == NULL) {
		struct moat_conf_override ov[] = {
			{ "proxy_backend_connect", (opt & 2) ? "accept" : "mail" },
			{ "tls_starttls_pipelined", (opt & 4) ? "close" : "discard" },
			{ "limit_message_size", "4k" },
			{ "limit_line_length", "512" },
			/* no DNS: every session would wait on the resolver (auth and iprev) */
			{ "auth_inbound", "no" },
			{ "iprev_action", "none" },
			{ "log_target", "stderr" },
		};
		pols[opt] = sim_session_policy(ov, sizeof(ov) / sizeof(ov[0]));
	}
	return pols[opt];
}

/* step - one operation of the input; false when the steps end. */
static bool
step(struct fz *f, uint8_t op, const uint8_t *p, size_t n)
{
	size_t rec = size_class[(op >> 2) & 7], chunk = size_class[op >> 5];

	switch (op & 3) {
	case 0:
		if (f->cli == NULL || moat_tls_conn_state(f->cli) != MOAT_TLS_OPEN)
			return true;
		for (size_t i = 0; i < n; i += rec)
			if (moat_tls_write(f->cli, p + i, n - i < rec ? n - i : rec) < 0)
				return false;
		client_send(f, chunk);
		break;
	case 1:
		to_proxy(f, p, n, n > 0 ? n : 1);
		break;
	case 2:
		to_proxy(f, p, n, n > 0 ? n : 1);
		if ((op & 4) != 0 && f->cli != NULL) {
			moat_tls_shutdown(f->cli);
			client_send(f, chunk);
		}
		break;
	default:
		(void)shutdown(f->peer, SHUT_WR);
		settle(f, chunk);
		return false;
	}
	settle(f, chunk);
	return f->st_open;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz f;
	int sv[2];
	size_t hs_chunk, i;

	if (size < 1)
		return 0;
	if (ctx == NULL)
		setup();
	memset(&f, 0, sizeof(f));
	f.implicit = (data[0] & 1) != 0;
	hs_chunk = size_class[(data[0] >> 3) & 7];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		abort();
	f.peer = sv[1];
	px_stream_set_cb(&f.st, &leg_cb, &f);
	f.st.h.handle.data = &f.st;
	if (uv_pipe_init(&loop, &f.st.h.pipe, 0) != 0 || uv_pipe_open(&f.st.h.pipe, sv[0]) != 0)
		abort();
	f.st_open = true;
	if (sim_session_start_leg(&f.sm, policy(data[0] & 7), &sess_leg, &f, f.implicit) < 0) {
		px_stream_close(&f.st, PX_STREAM_ABORT);
	} else {
		(void)px_stream_read_start(&f.st);
		settle(&f, hs_chunk);
		i = 1;
		if (!f.implicit) {
			/* a first step of plaintext goes in the same write as STARTTLS (pipelined) */
			static const char hello[] = "EHLO client.example\r\nSTARTTLS\r\n";
			char first[sizeof(hello) + 255];
			size_t n = sizeof(hello) - 1;

			memcpy(first, hello, n);
			if (size >= 3 && (data[1] & 3) == 2) {
				size_t k = data[2] < size - 3 ? data[2] : size - 3;

				memcpy(first + n, data + 3, k);
				n += k;
				i = 3 + k;
			}
			to_proxy(&f, first, n, hs_chunk);
			settle(&f, hs_chunk);
		}
		for (; i + 2 <= size;) {
			uint8_t op = data[i];
			size_t n = data[i + 1];

			i += 2;
			if (n > size - i)
				n = size - i;
			if (!step(&f, op, data + i, n))
				break;
			i += n;
		}
		if (f.st_open)
			px_stream_close(&f.st, PX_STREAM_ABORT);
		uv_run(&loop, UV_RUN_DEFAULT); /* the leg's close callbacks */
		sim_session_end(&f.sm);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	moat_tls_conn_free(f.cli);
	close(sv[1]);
	return 0;
}
