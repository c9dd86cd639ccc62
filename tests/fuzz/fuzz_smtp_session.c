/*
 * fuzz_smtp_session.c - arbitrary client bytes into the proxy's session logic (proxy/smtp_session.c),
 * with a simulated backend (tests/helpers/sim_mta.c) that answers every command it is sent.
 * Checks, beyond the sanitizers, that whatever the client sends the backend stream is canonical:
 * no bare CR or LF, no NUL, and every message ends with exactly one "." line; and that the backend
 * never receives more messages than the client's bytes hold real ends of data (<CR><LF>.<CR><LF>,
 * the DATA line's CRLF counted): a fake end of data, in either proxy_bare_newline mode and however
 * the reads cut it, never makes a message of its own.
 *
 * Input: byte 0 picks options (bit 0: proxy_bare_newline=normalize, bit 1: XCLIENT, bit 2:
 * proxy_backend_connect=accept, bits 3-7: read chunk size - 1); the rest is what the client sends,
 * delivered in chunks of that size.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "policy.h"
#include "sim_mta.h"
#include "smtp_session.h"

struct fz {
	struct px_session *s;
	bool closed, bopen, bconnect_pending, work_pending;
	struct sim_mta mta;
	char bline[8192];        /* current line the backend is receiving */
	size_t blen;
	char last;               /* last byte written to the backend */
	char replies[8192];      /* replies the simulated backend owes */
	size_t rlen;
	size_t messages;         /* final dots the backend received inside DATA */
};

static void
fz_owe(struct fz *f, const char *r)
{
	size_t n = strlen(r);

	if (f->rlen + n <= sizeof(f->replies)) {
		memcpy(f->replies + f->rlen, r, n);
		f->rlen += n;
	}
}

static void
op_client_write(void *io, const char *p, size_t n)
{
	(void)io;
	(void)p;
	(void)n;
}

static void
op_client_close(void *io)
{
	((struct fz *)io)->closed = true;
}

static int
op_backend_open(void *io)
{
	struct fz *f = io;

	f->bopen = true;
	f->bconnect_pending = true;
	f->mta.in_data = false;
	f->blen = 0;
	f->last = '\n';
	f->rlen = 0;
	return 0;
}

/* a backend line is complete: answer it as an MTA would (one recipient class is unknown) */
static void
fz_backend_line(struct fz *f)
{
	const char *r;

	if (f->mta.in_data && f->blen == 3 && memcmp(f->bline, ".\r\n", 3) == 0)
		f->messages++;
	if (!f->mta.in_data && strncmp(f->bline, "RCPT TO:<r", 10) == 0)
		r = "550 5.1.1 no such user\r\n";
	else
		r = sim_mta_answer(&f->mta, f->bline, f->blen);
	if (r != NULL)
		fz_owe(f, r);
}

static void
op_backend_write(void *io, const char *p, size_t n)
{
	struct fz *f = io;

	if (!f->bopen)
		abort();                 /* writes only to an open leg */
	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (c == '\0')
			abort();
		if (c == '\n' && f->last != '\r')
			abort();             /* bare LF reached the backend */
		if (f->last == '\r' && c != '\n')
			abort();             /* bare CR reached the backend */
		f->last = c;
		if (f->blen < sizeof(f->bline) - 1)
			f->bline[f->blen++] = c;
		if (c == '\n') {
			f->bline[f->blen] = '\0';
			fz_backend_line(f);
			f->blen = 0;
		}
	}
}

static void
op_backend_close(void *io, bool graceful)
{
	struct fz *f = io;

	(void)graceful;
	f->bopen = false;
	f->bconnect_pending = false;
	f->rlen = 0;
}

static void
op_work(void *io)
{
	((struct fz *)io)->work_pending = true;
}

/* No client_starttls or backend_starttls: the fuzzed session never offers STARTTLS and its
 * backend never is TLS (fuzz_tls_server covers TLS); no ratelimit: the core charges the embedded
 * store itself and never leaves an event pending without Redis. */
static const struct px_ops fz_ops = {
	.client_write = op_client_write,
	.client_close = op_client_close,
	.backend_open = op_backend_open,
	.backend_write = op_backend_write,
	.backend_close = op_backend_close,
	.work = op_work,
};

/* fz_settle - deliver owed backend events and finished work until nothing moves (bounded). */
static void
fz_settle(struct fz *f)
{
	for (int round = 0; round < 64; round++) {
		if (f->work_pending) {
			f->work_pending = false;
			px_session_work_run(f->s);
			px_session_work_done(f->s);
			continue;
		}
		if (f->bconnect_pending) {
			f->bconnect_pending = false;
			px_session_backend_connected(f->s);
			fz_owe(f, SIM_MTA_GREETING);
			continue;
		}
		if (f->rlen > 0 && f->bopen) {
			char r[8192];
			size_t n = f->rlen;

			memcpy(r, f->replies, n);
			f->rlen = 0;
			px_session_backend_input(f->s, r, n);
			continue;
		}
		break;
	}
}

/* real_ends - how many <CR><LF>.<CR><LF> the client's bytes hold (overlapping ones too: an upper
 * bound on the messages they can carry). */
static size_t
real_ends(const uint8_t *p, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i + 5 <= n; i++)
		if (memcmp(p + i, "\r\n.\r\n", 5) == 0)
			k++;
	return k;
}

static struct moat_policy *pols[8];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_client mc = { "192.0.2.1", 4321, NULL, "127.0.0.1:25", "FUZZ" };
	struct fz f;
	size_t chunk, pos = 1;
	unsigned opt;

	if (size < 1)
		return 0;
	opt = data[0] & 7;
	chunk = (size_t)(data[0] >> 3) + 1;
	if (pols[opt] == NULL) {
		struct moat_conf_override ov[] = {
			{ "proxy_bare_newline", (opt & 1) ? "normalize" : "reject" },
			{ "proxy_backend_pass", (opt & 2) ? "xclient" : "none" },
			{ "proxy_backend_connect", (opt & 4) ? "accept" : "mail" },
			{ "limit_message_size", "4k" },
			{ "limit_line_length", "512" },
			{ "log_target", "stderr" },
		};
		char err[MOAT_CONF_ERR_MAX];
		struct moat_conf *conf = moat_conf_load(NULL, ov, sizeof(ov) / sizeof(ov[0]), err, sizeof(err));

		if (conf == NULL)
			abort();
		moat_log_open("fuzz", MOAT_LOG_STDERR, false);
		pols[opt] = moat_policy_new(conf, 0, err, sizeof(err));
		if (pols[opt] == NULL)
			abort();
		moat_conf_unref(conf);
	}
	memset(&f, 0, sizeof(f));
	f.s = px_session_new(pols[opt], &mc, "127.0.0.1", 25, &fz_ops, &f);
	if (f.s == NULL)
		return 0;
	px_session_start(f.s, true);
	fz_settle(&f);                   /* proxy_backend_connect=accept: the backend's greeting and EHLO */
	while (pos < size && !f.closed) {
		size_t avail, n = size - pos < chunk ? size - pos : chunk;
		char *rb = px_session_rbuf(f.s, &avail);

		if (rb == NULL || avail == 0)
			break;               /* the driver would stop reading: input is stuck */
		if (n > avail)
			n = avail;
		memcpy(rb, data + pos, n);
		pos += n;
		px_session_rdone(f.s, n);
		fz_settle(&f);
	}
	if (!f.closed)
		px_session_client_gone(f.s);
	fz_settle(&f);
	px_session_free(f.s);
	if (f.messages > real_ends(data + 1, size - 1))
		abort();                 /* a message made of a fake end of data: smuggling */
	return 0;
}
