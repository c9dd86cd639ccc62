/*
 * fuzz_backend_reply.c - a hostile backend: arbitrary bytes as the MTA's replies. Two ways in,
 * chosen by bit 0 of byte 0:
 *
 *   0: the reply parser alone (px_reply_feed, proxy/upstream.c) fed in reads of (byte 0 >> 1) + 1
 *      bytes; a finished reply must have a three-digit code 200-599 (the parser's promise to the
 *      session), fit its bounds, and every call must consume what it says it did.
 *   1: the whole session (tests/helpers/sim_session.c) with a client that sends one transaction,
 *      pipelined (bit 2) or a command at a time, XCLIENT towards the backend (bit 1), and then
 *      QUIT; the backend's greeting and each reply are the next piece of the input (pieces end at
 *      0xff; a piece starting with 0xfe drops the backend leg there). Beyond the sanitizers, the
 *      simulator aborts on a non-canonical backend stream, and at most one message may reach it.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "policy.h"
#include "sim_session.h"
#include "upstream.h"

static const char *const txn[] = {
	"EHLO client.example\r\n",
	"MAIL FROM:<a@example.org>\r\n",
	"RCPT TO:<b@example.net>\r\n",
	"RCPT TO:<c@example.net>\r\n",
	"DATA\r\n",
	"From: <a@example.org>\r\nSubject: hostile backend\r\n\r\nbody\r\n.\r\n",
	"QUIT\r\n",
};

/* parser - the reply parser alone over p[0..n) in reads of CHUNK bytes. */
static void
parser(const char *p, size_t n, size_t chunk)
{
	struct px_reply r;

	px_reply_init(&r);
	while (n > 0) {
		size_t k = n < chunk ? n : chunk, used = 0;
		enum px_reply_status st = px_reply_feed(&r, p, k, &used);

		if (used > k || (st == PX_REPLY_NEED && used != k))
			abort();
		if (st == PX_REPLY_BAD)
			return; /* the leg goes: nothing more is read from it */
		if (st == PX_REPLY_DONE) {
			if (r.code < 200 || r.code > 599 || r.len > PX_REPLY_MAX ||
			    r.lines > PX_REPLY_LINES)
				abort();
			(void)px_reply_has_ext(&r, "PIPELINING");
			(void)px_reply_has_ext(&r, "STARTTLS");
			px_reply_init(&r);
		}
		p += used;
		n -= used;
	}
}

static struct moat_policy *pols[2];

/* session - one transaction through the session, the backend's bytes p[0..n). */
static void
session(const char *p, size_t n, unsigned opt)
{
	static struct sim_session sm;
	static char all[512];
	size_t alen = 0;

	if (pols[opt & 1] == NULL) {
		struct moat_conf_override ov[] = {
			{ "proxy_backend_pass", (opt & 1) ? "xclient" : "none" },
			{ "log_target", "stderr" },
		};
		pols[opt & 1] = sim_session_policy(ov, sizeof(ov) / sizeof(ov[0]));
	}
	if (sim_session_start(&sm, pols[opt & 1]) < 0)
		return;
	sim_session_hostile(&sm, p, n);
	for (size_t i = 0; i < sizeof(txn) / sizeof(txn[0]); i++) {
		size_t k = strlen(txn[i]);

		if ((opt & 2) == 0) {
			sim_session_client(&sm, txn[i], k, k);
			continue;
		}
		memcpy(all + alen, txn[i], k);
		alen += k;
	}
	if (alen > 0)
		sim_session_client(&sm, all, alen, alen);
	sim_session_end(&sm);
	if (sm.messages > 1)
		abort(); /* one message sent, more delivered */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if ((data[0] & 1) == 0)
		parser((const char *)data + 1, size - 1, (size_t)(data[0] >> 1) + 1);
	else
		session((const char *)data + 1, size - 1, (unsigned)data[0] >> 1);
	return 0;
}
