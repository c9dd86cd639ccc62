/*
 * fuzz_hdr_reader.c - libFuzzer target, differential: the same header section through the two
 * front ends that read one, mxmoat-proxy's session (proxy/smtp_session.c, driven as in
 * fuzz_smtp_session.c with a simulated backend) and mxmoat-check's message feeder
 * (tools/mxmoat-check.c, compiled in with its main renamed). Both must hand the core the same
 * fields, byte for byte, and agree on the verdict: where mxmoat-check refuses the header section
 * the proxy's client gets exactly that reply after the dot; where it does not, the proxy does not
 * refuse the header either.
 *
 * Input: byte 0 picks options (bit 0: holding mode, through auth_inbound=yes with an engine that
 * cannot start, so end of message is a 451 without DNS; bits 1-7: client read size - 1); the rest
 * is the message. NUL bytes are dropped and lone CR or LF become CRLF first: the proxy's DATA
 * reader refuses those before the header reader sees them (the unit tests and
 * tests/e2e/header_table.sh cover the reader's own refusal of them).
 *
 * Fields are recorded by linker wraps (-Wl,--wrap=...): moat_session_header for the proxy (the
 * real one runs too), moat_auth_header for mxmoat-check (its engine is not needed).
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

int mxmoat_check_main(int argc, char **argv);
#define main mxmoat_check_main
#include "../../tools/mxmoat-check.c"
#undef main

#define MSG_MAX 8192
#define FIELDS_MAX 4200           /* "a:" lines of a message of 2 * MSG_MAX bytes */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the fields each front end handed on ---- */

struct fields {
	size_t n;
	size_t off[FIELDS_MAX + 1];      /* field i is buf[off[i]..off[i+1]) */
	char buf[2 * MSG_MAX];
	bool overflow;
};

static struct fields *recording;

static void
record(const char *field, size_t len)
{
	struct fields *f = recording;

	if (f == NULL)
		return;
	if (f->n == FIELDS_MAX || len > sizeof(f->buf) - f->off[f->n]) {
		f->overflow = true;
		return;
	}
	memcpy(f->buf + f->off[f->n], field, len);
	f->off[f->n + 1] = f->off[f->n] + len;
	f->n++;
}

void __real_moat_session_header(struct moat_session *s, const char *field, size_t len, struct moat_verdict *v);
void __wrap_moat_session_header(struct moat_session *s, const char *field, size_t len, struct moat_verdict *v);
void __wrap_moat_auth_header(struct moat_auth_msg *m, const char *field, size_t len);
void __wrap_moat_auth_eoh(struct moat_auth_msg *m);
void __wrap_moat_auth_body(struct moat_auth_msg *m, const char *chunk, size_t len);
struct moat_auth_engine *__wrap_moat_auth_engine_new(const struct moat_conf *conf, char *err, size_t errlen);

void
__wrap_moat_session_header(struct moat_session *s, const char *field, size_t len, struct moat_verdict *v)
{
	record(field, len);
	__real_moat_session_header(s, field, len, v);
}

void
__wrap_moat_auth_header(struct moat_auth_msg *m, const char *field, size_t len)
{
	(void)m;
	record(field, len);
}

void
__wrap_moat_auth_eoh(struct moat_auth_msg *m)
{
	(void)m;
}

void
__wrap_moat_auth_body(struct moat_auth_msg *m, const char *chunk, size_t len)
{
	(void)m;
	(void)chunk;
	(void)len;
}

/* holding mode without DNS: the engine cannot start, end of message is 451 4.3.0 */
struct moat_auth_engine *
__wrap_moat_auth_engine_new(const struct moat_conf *conf, char *err, size_t errlen)
{
	(void)conf;
	snprintf(err, errlen, "no engine in the fuzz target");
	return NULL;
}

/* ---- the proxy's session with a simulated backend ---- */

struct fz {
	struct px_session *s;
	bool closed, bopen, bconnect_pending, work_pending;
	struct sim_mta mta;
	char bline[MSG_MAX + 64];
	size_t blen;
	char replies[8192];
	size_t rlen;
	char client[8192];               /* what the client was told */
	size_t clen;
};

static void
fz_append(char *buf, size_t cap, size_t *len, const char *p, size_t n)
{
	if (n > cap - *len)
		n = cap - *len;
	memcpy(buf + *len, p, n);
	*len += n;
}

static void
op_client_write(void *io, const char *p, size_t n)
{
	struct fz *f = io;

	fz_append(f->client, sizeof(f->client), &f->clen, p, n);
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
	f->rlen = 0;
	return 0;
}

static void
op_backend_write(void *io, const char *p, size_t n)
{
	struct fz *f = io;

	for (size_t i = 0; i < n; i++) {
		if (f->blen < sizeof(f->bline))
			f->bline[f->blen++] = p[i];
		if (p[i] == '\n') {
			const char *r = sim_mta_answer(&f->mta, f->bline, f->blen);

			if (r != NULL)
				fz_append(f->replies, sizeof(f->replies), &f->rlen, r, strlen(r));
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
	for (int round = 0; round < 256; round++) {
		if (f->work_pending) {
			f->work_pending = false;
			px_session_work_run(f->s);
			px_session_work_done(f->s);
		} else if (f->bconnect_pending) {
			f->bconnect_pending = false;
			px_session_backend_connected(f->s);
			fz_append(f->replies, sizeof(f->replies), &f->rlen, SIM_MTA_GREETING,
			    strlen(SIM_MTA_GREETING));
		} else if (f->rlen > 0 && f->bopen) {
			char r[8192];
			size_t n = f->rlen;

			memcpy(r, f->replies, n);
			f->rlen = 0;
			px_session_backend_input(f->s, r, n);
		} else {
			return;
		}
	}
}

/* fz_client - the client sends p[0..n) in reads of at most chunk bytes. */
static void
fz_client(struct fz *f, const char *p, size_t n, size_t chunk)
{
	while (n > 0 && !f->closed) {
		size_t avail, k = n < chunk ? n : chunk;
		char *rb = px_session_rbuf(f->s, &avail);

		if (rb == NULL || avail == 0)
			abort();                 /* a message of MSG_MAX never fills the input window */
		if (k > avail)
			k = avail;
		memcpy(rb, p, k);
		px_session_rdone(f->s, k);
		fz_settle(f);
		p += k;
		n -= k;
	}
}

static struct moat_policy *pols[2];

/* proxy_policy - one policy per mode, made once. */
static struct moat_policy *
proxy_policy(int holding)
{
	if (pols[holding] == NULL) {
		struct moat_conf_override ov[] = {
			{ "auth_inbound", holding ? "yes" : "no" },
			{ "limit_message_size", "64k" },
			{ "limit_line_length", "65536" },
			{ "limit_header_count", "100000" },
			{ "log_target", "stderr" },
		};
		char err[MOAT_CONF_ERR_MAX];
		struct moat_conf *conf = moat_conf_load(NULL, ov, sizeof(ov) / sizeof(ov[0]), err, sizeof(err));

		if (conf == NULL)
			abort();
		moat_log_open("fuzz", MOAT_LOG_STDERR, false);
		pols[holding] = moat_policy_new(conf);
		moat_conf_unref(conf);
	}
	return pols[holding];
}

/* canonical - the message with NULs dropped and every line ending CRLF, dot-stuffed for DATA
 * into wire (with the final dot); the unstuffed bytes into msg. */
static void
canonical(const uint8_t *in, size_t n, char *msg, size_t *mlen, char *wire, size_t *wlen)
{
	bool bol = true;

	*mlen = *wlen = 0;
	for (size_t i = 0; i < n; i++) {
		char c = (char)in[i];

		if (c == '\0' || (c == '\n' && i > 0 && in[i - 1] == '\r'))
			continue;
		if (c == '\r' || c == '\n') {
			memcpy(msg + *mlen, "\r\n", 2);
			memcpy(wire + *wlen, "\r\n", 2);
			*mlen += 2;
			*wlen += 2;
			bol = true;
			continue;
		}
		if (bol && c == '.')
			wire[(*wlen)++] = '.';
		msg[(*mlen)++] = c;
		wire[(*wlen)++] = c;
		bol = false;
	}
	if (!bol) {
		memcpy(msg + *mlen, "\r\n", 2);
		memcpy(wire + *wlen, "\r\n", 2);
		*mlen += 2;
		*wlen += 2;
	}
	memcpy(wire + *wlen, ".\r\n", 3);
	*wlen += 3;
}

/* last_reply - the client's last reply line (after the dot): a pointer into f->client. */
static const char *
last_reply(struct fz *f, size_t *len)
{
	size_t end = f->clen, start;

	if (end < 2)
		abort();
	start = end - 2;
	while (start > 0 && f->client[start - 1] != '\n')
		start--;
	*len = end - start;
	return f->client + start;
}

static bool
is_header_refusal(const char *r, size_t n)
{
	static const char *const heads[] = { "550 5.6.0 Message header refused: ",
		"451 4.6.0 Message header refused: ", "552 5.3.4 Message header field too long" };

	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++)
		if (n >= strlen(heads[i]) && memcmp(r, heads[i], strlen(heads[i])) == 0)
			return true;
	return false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char envelope[] = "EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n"
	    "RCPT TO:<b@example.net>\r\nDATA\r\n";
	static struct fields pf, cf;
	static char msg[2 * MSG_MAX + 8], wire[3 * MSG_MAX + 8];
	static struct fz f;
	struct moat_client mc = { "192.0.2.1", 4321, NULL, "127.0.0.1:25", "FUZZ" };
	int holding;
	size_t chunk, mlen, wlen, rlen;
	struct moat_verdict v;
	struct moat_conf *conf;
	const char *reply;
	int refused;

	if (size < 1 || size > MSG_MAX + 1)
		return 0;
	holding = data[0] & 1;
	chunk = (size_t)(data[0] >> 1) + 1;
	canonical(data + 1, size - 1, msg, &mlen, wire, &wlen);

	/* mxmoat-check's path */
	memset(&cf, 0, sizeof(cf));
	recording = &cf;
	conf = moat_policy_conf(proxy_policy(holding));
	refused = feed_message(conf, NULL, msg, mlen, &v);
	moat_conf_unref(conf);

	/* the proxy's path: one message, each DATA line sent as the client would */
	memset(&pf, 0, sizeof(pf));
	memset(&f, 0, sizeof(f));
	recording = &pf;
	f.s = px_session_new(proxy_policy(holding), &mc, "127.0.0.1", 25, &fz_ops, &f);
	if (f.s == NULL)
		return 0;
	px_session_start(f.s, true);
	fz_settle(&f);
	fz_client(&f, envelope, strlen(envelope), chunk);
	fz_client(&f, wire, wlen, chunk);
	recording = NULL;
	reply = last_reply(&f, &rlen);

	if (pf.overflow != cf.overflow || pf.n != cf.n)
		abort();                         /* not the same fields */
	for (size_t i = 0; i < pf.n; i++)
		if (pf.off[i + 1] - pf.off[i] != cf.off[i + 1] - cf.off[i] ||
		    memcmp(pf.buf + pf.off[i], cf.buf + cf.off[i], pf.off[i + 1] - pf.off[i]) != 0)
			abort();
	if (refused < 0) {
		char want[MOAT_REPLY_TEXT_MAX + 32];
		size_t wl = moat_verdict_format_reply(&v, want, sizeof(want));

		if (wl != rlen || memcmp(want, reply, wl) != 0)
			abort();                 /* mxmoat-check refuses, the proxy does not say so */
	} else if (is_header_refusal(reply, rlen)) {
		abort();                         /* the proxy refuses what mxmoat-check reads */
	}
	px_session_client_gone(f.s);
	fz_settle(&f);
	px_session_free(f.s);
	return 0;
}
