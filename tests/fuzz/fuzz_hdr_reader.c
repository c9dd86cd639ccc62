/*
 * fuzz_hdr_reader.c - libFuzzer target, differential: the same header section through the two
 * front ends that read one, mxmoat-proxy's session (proxy/smtp_session.c, driven by
 * tests/helpers/sim_session.c with a simulated backend) and mxmoat-check's message feeder
 * (moat_msg_feed, src/msg_feed.c, which tools/mxmoat-check.c runs). Both must hand the core the same
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
#include "msg_feed.h"
#include "policy.h"
#include "sim_session.h"


#define MSG_MAX 8192
#define FIELDS_MAX 4200 /* "a:" lines of a message of 2 * MSG_MAX bytes */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the fields each front end handed on ---- */

struct fields {
	size_t n;
	size_t off[FIELDS_MAX + 1]; /* field i is buf[off[i]..off[i+1]) */
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

void __real_moat_session_header(struct moat_session *s, const char *field, size_t len,
    struct moat_verdict *v);
void __wrap_moat_session_header(struct moat_session *s, const char *field, size_t len,
    struct moat_verdict *v);
void __wrap_moat_auth_header(struct moat_auth_msg *m, const char *field, size_t len);
void __wrap_moat_auth_eoh(struct moat_auth_msg *m);
void __wrap_moat_auth_body(struct moat_auth_msg *m, const char *chunk, size_t len);
struct moat_auth_engine *__wrap_moat_auth_engine_new(const struct moat_conf *conf, char *err,
    size_t errlen);

void
__wrap_moat_session_header(struct moat_session *s, const char *field, size_t len,
    struct moat_verdict *v)
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
		pols[holding] = sim_session_policy(ov, sizeof(ov) / sizeof(ov[0]));
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

/* last_reply - the client's last reply line (after the dot): a pointer into sm->client. */
static const char *
last_reply(const struct sim_session *sm, size_t *len)
{
	size_t end = sm->clen, start;

	if (end < 2)
		abort();
	start = end - 2;
	while (start > 0 && sm->client[start - 1] != '\n')
		start--;
	*len = end - start;
	return sm->client + start;
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
	static struct sim_session sm;
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
	refused = moat_msg_feed(conf, NULL, NULL, msg, mlen, &v);
	moat_conf_unref(conf);

	/* the proxy's path: one message, each DATA line sent as the client would */
	memset(&pf, 0, sizeof(pf));
	recording = &pf;
	if (sim_session_start(&sm, proxy_policy(holding)) < 0)
		return 0;
	if (sim_session_client(&sm, envelope, strlen(envelope), chunk) > 0 ||
	    sim_session_client(&sm, wire, wlen, chunk) > 0)
		abort(); /* a message of MSG_MAX never fills the input window */
	recording = NULL;
	reply = last_reply(&sm, &rlen);

	if (pf.overflow != cf.overflow || pf.n != cf.n)
		abort(); /* not the same fields */
	for (size_t i = 0; i < pf.n; i++)
		if (pf.off[i + 1] - pf.off[i] != cf.off[i + 1] - cf.off[i] ||
		    memcmp(pf.buf + pf.off[i], cf.buf + cf.off[i], pf.off[i + 1] - pf.off[i]) != 0)
			abort();
	if (refused < 0) {
		char want[MOAT_REPLY_TEXT_MAX + 32];
		size_t wl = moat_verdict_format_reply(&v, want, sizeof(want));

		if (wl != rlen || memcmp(want, reply, wl) != 0)
			abort(); /* mxmoat-check refuses, the proxy does not say so */
	} else if (is_header_refusal(reply, rlen)) {
		abort(); /* the proxy refuses what mxmoat-check reads */
	}
	sim_session_end(&sm);
	return 0;
}
