/*
 * test_milter_native.c - the native milter engine's protocol handling (milter/native_conn.c over
 * milter/conn.c): one connection on its own uv loop, the MTA's end a socketpair. Every command
 * Postfix sends goes in as the bytes it puts on the wire, and the exact reply packets come back:
 * the negotiation, no reply where SMFIP_NR_* was agreed, reply codes, header edits at end of
 * message, a new session after QUIT_NC; malformed input (short, oversized, unknown, out of
 * order) closes the connection or tempfails; a draining worker lets a message in progress end.
 * The packet codec alone is tests/unit/test_milter_packet.c's.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "../../milter/native_int.h"
#include "conf.h"
#include "policy.h"

/* S(x) - a string literal with its NUL counted, as the wire carries it */
#define S(x) x "\0"
#define D(x) (x), sizeof(x) - 1

struct rig {
	struct nat_worker w;
	struct moat_conf *conf;
	struct moat_policy *pol;
	int peer; /* the MTA's end */
	uv_poll_t poll;
	uv_timer_t guard;
	char got[16384];
	size_t got_len, want;
	bool eof, timed_out;
};

static struct rig r;

/* pkt - append the packet "len cmd data" to buf at *n */
static void
pkt(char *buf, size_t *n, char cmd, const char *data, size_t dlen)
{
	uint32_t len = (uint32_t)dlen + 1;

	buf[(*n)++] = (char)(len >> 24);
	buf[(*n)++] = (char)(len >> 16);
	buf[(*n)++] = (char)(len >> 8);
	buf[(*n)++] = (char)len;
	buf[(*n)++] = cmd;
	memcpy(buf + *n, data, dlen);
	*n += dlen;
}

static void
on_async(uv_async_t *a)
{
	(void)a;
}

/* rig_open - a worker loop with one connection, the policy made of the overrides */
static void
rig_open(const struct moat_conf_override *ov, size_t nov)
{
	char err[MOAT_CONF_ERR_MAX];
	struct nat_conn *c;
	int sv[2];

	memset(&r, 0, sizeof(r));
	signal(SIGPIPE, SIG_IGN); /* a write after the close fails the test, not the process */
	r.conf = moat_conf_load(NULL, ov, nov, err, sizeof(err));
	cr_assert_not_null(r.conf, "%s", err);
	r.pol = moat_policy_new(r.conf, 0, err, sizeof(err));
	cr_assert_not_null(r.pol, "%s", err);
	cr_assert_eq(uv_loop_init(&r.w.loop), 0);
	uv_async_init(&r.w.loop, &r.w.stop, on_async);
	uv_timer_init(&r.w.loop, &r.w.drain);
	r.w.pol = r.pol;
	r.w.timeout_ms = 10000;
	r.w.drain_ms = 10000;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_not_null(c = nat__conn_new(&r.w));
	cr_assert_eq(uv_pipe_open(&c->h.pipe, sv[0]), 0);
	nat__conn_start(c);
	r.peer = sv[1];
	cr_assert_eq(fcntl(r.peer, F_SETFL, O_NONBLOCK), 0);
	uv_poll_init(&r.w.loop, &r.poll, r.peer);
	uv_timer_init(&r.w.loop, &r.guard);
}

static void
rig_close(void)
{
	if (r.w.conns != NULL)
		nat__conn_close(r.w.conns);
	uv_close((uv_handle_t *)&r.poll, NULL);
	uv_close((uv_handle_t *)&r.guard, NULL);
	if (!r.w.drained) {
		uv_close((uv_handle_t *)&r.w.stop, NULL);
		uv_close((uv_handle_t *)&r.w.drain, NULL);
	}
	uv_run(&r.w.loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&r.w.loop), 0, "a handle was left open");
	close(r.peer);
	moat_policy_free(r.pol);
	moat_conf_unref(r.conf);
}

static void
run_done(void)
{
	uv_poll_stop(&r.poll);
	uv_timer_stop(&r.guard);
	uv_stop(&r.w.loop);
}

static void
on_peer(uv_poll_t *p, int status, int events)
{
	ssize_t n;

	(void)p;
	(void)status;
	(void)events;
	while ((n = read(r.peer, r.got + r.got_len, sizeof(r.got) - r.got_len)) > 0)
		r.got_len += (size_t)n;
	if (n == 0)
		r.eof = true;
	if (r.eof || r.got_len >= r.want || r.got_len == sizeof(r.got))
		run_done();
}

static void
on_guard(uv_timer_t *t)
{
	(void)t;
	r.timed_out = true;
	run_done();
}

/* send_bytes - what the MTA writes, all of it; while the socket is full the loop reads */
static void
send_bytes(const char *p, size_t n)
{
	for (unsigned spins = 0; n > 0; spins++) {
		ssize_t k = write(r.peer, p, n);
		if (k < 0 && errno == EAGAIN) {
			cr_assert_lt(spins, 100000, "the connection stopped reading");
			uv_run(&r.w.loop, UV_RUN_NOWAIT);
			continue;
		}
		cr_assert_gt(k, 0);
		p += k;
		n -= (size_t)k;
	}
}

/* shown - the bytes that came back, escaped for a failure message */
static const char *
shown(void)
{
	static char out[4 * sizeof(r.got) + 1];
	size_t k = 0;

	for (size_t i = 0; i < r.got_len; i++) {
		unsigned char ch = (unsigned char)r.got[i];
		if (ch >= 0x20 && ch < 0x7f && ch != '\\')
			out[k++] = (char)ch;
		else
			k += (size_t)snprintf(out + k, sizeof(out) - k, "\\x%02x", ch);
	}
	out[k] = '\0';
	return out;
}

/* run_until - run the loop until WANT bytes came back or the MTA's end reads EOF (bounded) */
static void
run_until(size_t want)
{
	r.got_len = 0;
	r.want = want;
	uv_poll_start(&r.poll, UV_READABLE | UV_DISCONNECT, on_peer);
	uv_timer_start(&r.guard, on_guard, 10000, 0);
	uv_run(&r.w.loop, UV_RUN_DEFAULT);
	cr_assert(!r.timed_out, "no answer within 10 s (got %zu bytes: %s)", r.got_len, shown());
}

/* expect - send IN; the answer is exactly WANT (then more may follow only in a later exchange) */
static void
expect(const char *in, size_t in_len, const char *want, size_t want_len, const char *label)
{
	send_bytes(in, in_len);
	run_until(want_len);
	cr_assert_eq(r.got_len, want_len, "%s: %zu bytes, want %zu: %s", label, r.got_len, want_len,
	    shown());
	cr_assert_eq(memcmp(r.got, want, want_len), 0, "%s: other bytes: %s", label, shown());
}

/* expect_closed - send IN; the connection closes with nothing written */
static void
expect_closed(const char *in, size_t in_len, const char *label)
{
	send_bytes(in, in_len);
	run_until(SIZE_MAX);
	cr_assert(r.eof, "%s: not closed", label);
	cr_assert_eq(r.got_len, 0, "%s: %zu bytes before the close", label, r.got_len);
}

/* Postfix 3.7's offer: version 6, every action, every protocol step */
static const char optneg_postfix[] = "\0\0\0\6\0\0\1\xff\0\x1f\xff\xff";
/* ours: actions ADDHDRS|CHGHDRS|QUARANTINE|SETSYMLIST, NR_HELO|NR_HDR|NR_EOH|NR_BODY, NODATA,
 * HDR_LEADSPC, then the macros per stage (SMFIM_CONNECT, HELO, ENVFROM, EOM) */
static const char optneg_reply[] =
    "\0\0\0\6\0\0\1\x31\0\x1c\x22\x80"
    "\0\0\0\0" S("j {daemon_name} {daemon_addr} {client_addr} {client_port} {client_name}") "\0\0\0\1" S(
	"{tls_version} {cipher} {cipher_bits}") "\0\0\0\2" S("i {auth_authen} {tls_version} {cipher} {cipher_bits}") "\0\0\0\5" S("i {msg_size}");

static const char connect_data[] = S("client.example") "4\x30\x39" S("192.0.2.1");

static const char cont[] = "\0\0\0\1c";

static const struct moat_conf_override ov_plain[] = {
	{ "authserv_id", "mx.test" },
	{ "auth_inbound", "no" },
	{ "limit_recipients", "2" },
};

/* negotiate - OPTNEG as Postfix offers it, and our exact answer */
static void
negotiate(void)
{
	char in[64], want[512];
	size_t n = 0, wn = 0;

	pkt(in, &n, 'O', D(optneg_postfix));
	pkt(want, &wn, 'O', D(optneg_reply));
	expect(in, n, want, wn, "optneg");
}

/* session - macros and connect, helo (no reply), MAIL: one CONTINUE for the helo+mail burst */
static void
session(void)
{
	char in[1024];
	size_t n = 0;

	pkt(in, &n, 'D', D("C" S("j") S("mx.test") S("{daemon_name}") S("smtpd")));
	pkt(in, &n, 'C', D(connect_data));
	expect(in, n, D(cont), "connect");
	n = 0;
	pkt(in, &n, 'D', D("H"));
	pkt(in, &n, 'H', D(S("client.example")));
	pkt(in, &n, 'D', D("M" S("i") S("4ABC")));
	pkt(in, &n, 'M', D(S("<a@example.org>") S("SIZE=100")));
	expect(in, n, D(cont), "helo (no reply) and mail");
}

Test(milter_native, every_postfix_command)
{
	char in[2048], want[256];
	size_t n = 0, wn = 0;

	rig_open(ov_plain, sizeof(ov_plain) / sizeof(ov_plain[0]));
	negotiate();
	session();
	pkt(in, &n, 'R', D(S("<b@example.net>")));
	expect(in, n, D(cont), "rcpt");
	/* DATA was negotiated away; an MTA that sends it anyway is told to go on */
	n = 0;
	pkt(in, &n, 'T', "", 0);
	expect(in, n, D(cont), "data");
	/* header, end of header and body take no reply: the burst gets end of message's alone */
	n = 0;
	pkt(in, &n, 'L', D(S("Subject") S(" hi")));
	pkt(in, &n, 'L', D(S("From") S(" a@example.org")));
	pkt(in, &n, 'N', "", 0);
	pkt(in, &n, 'B', D("body\r\n"));
	pkt(in, &n, 'D', D("E" S("i") S("4ABC") S("{msg_size}") S("42")));
	pkt(in, &n, 'E', "", 0);
	expect(in, n, D(cont), "header, eoh, body, eom");
	/* a second message on the session, aborted: no reply to the abort */
	n = 0;
	pkt(in, &n, 'M', D(S("<>")));
	pkt(in, &n, 'A', "", 0);
	pkt(in, &n, 'U', D(S("XYZZY")));
	expect(in, n, D("\0\0\0\1c\0\0\0\1c"), "mail, abort (no reply), unknown");
	/* QUIT_NC: a new SMTP session on the same connection starts with its connect */
	n = 0;
	pkt(in, &n, 'K', "", 0);
	pkt(in, &n, 'C', D(connect_data));
	expect(in, n, D(cont), "quit_nc (no reply), connect");
	/* RCPT past limit_recipients: the core's reply code, exact */
	n = 0;
	pkt(in, &n, 'M', D(S("<a@example.org>")));
	pkt(in, &n, 'R', D(S("<b1@example.net>")));
	pkt(in, &n, 'R', D(S("<b2@example.net>")));
	pkt(in, &n, 'R', D(S("<b3@example.net>")));
	memcpy(want, "\0\0\0\1c\0\0\0\1c\0\0\0\1c", 15);
	wn = 15;
	pkt(want, &wn, 'y', D(S("452 4.5.3 Too many recipients")));
	expect(in, n, want, wn, "rcpt past the limit");
	expect_closed("\0\0\0\1Q", 5, "quit");
	rig_close();
}

Test(milter_native, packets_split_across_reads)
{
	char in[1024];
	size_t n = 0;

	rig_open(ov_plain, sizeof(ov_plain) / sizeof(ov_plain[0]));
	negotiate();
	pkt(in, &n, 'C', D(connect_data));
	/* one byte a read: the frame waits for the rest */
	for (size_t i = 0; i + 1 < n; i++) {
		send_bytes(in + i, 1);
		uv_run(&r.w.loop, UV_RUN_NOWAIT);
	}
	expect(in + n - 1, 1, D(cont), "connect a byte at a time");
	rig_close();
}

Test(milter_native, negotiation_variants)
{
	char in[64], want[64];
	size_t n = 0, wn = 0;

	rig_open(ov_plain, sizeof(ov_plain) / sizeof(ov_plain[0]));
	/* version 2, no SETSYMLIST offered, no NR_* steps: our version goes down to theirs, no
	 * macro lists, no no-reply steps */
	pkt(in, &n, 'O', D("\0\0\0\2\0\0\0\x3f\0\0\0\x7f"));
	pkt(want, &wn, 'O', D("\0\0\0\2\0\0\0\x31\0\0\0\0"));
	expect(in, n, want, wn, "version 2");
	/* then HELO answers */
	n = 0;
	pkt(in, &n, 'C', D(connect_data));
	pkt(in, &n, 'H', D(S("client.example")));
	expect(in, n, D("\0\0\0\1c\0\0\0\1c"), "connect, helo");
	rig_close();

	rig_open(ov_plain, sizeof(ov_plain) / sizeof(ov_plain[0]));
	n = 0;
	pkt(in, &n, 'O', D("\0\0\0\6\0\0\0\x01\0\x1f\xff\xff"));
	expect_closed(in, n, "an MTA without CHGHDRS and QUARANTINE");
	rig_close();

	rig_open(ov_plain, sizeof(ov_plain) / sizeof(ov_plain[0]));
	n = 0;
	pkt(in, &n, 'O', D("\0\0\0\1\0\0\1\xff\0\x1f\xff\xff"));
	expect_closed(in, n, "version 1");
	rig_close();
}

Test(milter_native, out_of_order_steps)
{
	char in[256], want[128];
	size_t n = 0, wn;

	rig_open(ov_plain, sizeof(ov_plain) / sizeof(ov_plain[0]));
	negotiate();
	/* no connect yet: no session; the steps that answer tempfail, EOH has no reply */
	pkt(in, &n, 'M', D(S("<a@example.org>")));
	pkt(in, &n, 'R', D(S("<b@example.net>")));
	pkt(in, &n, 'N', "", 0);
	pkt(in, &n, 'E', "", 0);
	expect(in, n, D("\0\0\0\1t\0\0\0\1t\0\0\0\1t"), "mail, rcpt, eoh, eom before connect");
	/* with a session: RCPT and end of message without MAIL */
	n = 0;
	pkt(in, &n, 'C', D(connect_data));
	pkt(in, &n, 'R', D(S("<b@example.net>")));
	pkt(in, &n, 'E', "", 0);
	memcpy(want, cont, 5);
	wn = 5;
	pkt(want, &wn, 'y', D(S("503 5.5.1 Error: need MAIL command")));
	memcpy(want + wn, cont, 5);
	wn += 5;
	expect(in, n, want, wn, "connect, rcpt without mail (503), eom without mail");
	rig_close();
}

struct bad_input {
	const char *label;
	const char *bytes;
	size_t len;
};

static const struct bad_input bad_inputs[] = {
	{ "zero length", D("\0\0\0\0") },
	{ "length past 1 MiB, refused before its bytes", D("\0\x10\0\x01") },
	{ "unknown command", D("\0\0\0\1Z") },
	{ "a reply code as a command", D("\0\0\0\1c") },
	{ "optneg too short", D("\0\0\0\x09O\0\0\0\6\0\0\1\xff") },
	{ "connect without its NUL",
	    D("\0\0\0\x07"
	      "Cclient") },
	{ "data with data", D("\0\0\0\2Tx") },
};

Test(milter_native, malformed_packets_close)
{
	for (size_t i = 0; i < sizeof(bad_inputs) / sizeof(bad_inputs[0]); i++) {
		rig_open(ov_plain, sizeof(ov_plain) / sizeof(ov_plain[0]));
		negotiate();
		expect_closed(bad_inputs[i].bytes, bad_inputs[i].len, bad_inputs[i].label);
		rig_close();
	}
	/* a packet cut short by the MTA's close: nothing answered */
	rig_open(ov_plain, sizeof(ov_plain) / sizeof(ov_plain[0]));
	negotiate();
	send_bytes("\0\0\0\x10H", 5);
	shutdown(r.peer, SHUT_WR);
	expect_closed("", 0, "a packet cut short");
	rig_close();
}

Test(milter_native, idle_timeout_closes)
{
	rig_open(ov_plain, sizeof(ov_plain) / sizeof(ov_plain[0]));
	r.w.timeout_ms = 50;
	uv_timer_start(&r.w.conns->timer, r.w.conns->timer.timer_cb, 50, 50);
	expect_closed("", 0, "milter_timeout");
	rig_close();
}

/* folded - a header packet "Name: x" + FOLDS continuation lines "\n\tyy", as Postfix sends a
 * folded field (bare LF), into buf at *n */
static void
folded(char *buf, size_t *n, const char *name, size_t folds)
{
	static char data[2 * 1024 * 1024];
	size_t k = strlen(name) + 1;

	memcpy(data, name, k);
	memcpy(data + k, " x", 2);
	k += 2;
	for (size_t i = 0; i < folds; i++, k += 4)
		memcpy(data + k, "\n\tyy", 4);
	data[k++] = '\0';
	pkt(buf, n, 'L', data, k);
}

Test(milter_native, folded_header_fields)
{
	static char in[2 * 1024 * 1024];
	char want[128];
	size_t n = 0, wn = 0;

	rig_open(ov_plain, sizeof(ov_plain) / sizeof(ov_plain[0]));
	negotiate();
	session();
	/* a 1 KB field in 251 lines: a CR goes before each LF, the field still fits */
	folded(in, &n, "References", 250);
	pkt(in, &n, 'N', "", 0);
	pkt(in, &n, 'E', "", 0);
	expect(in, n, D(cont), "a field of many short lines");
	/* a field past 1 MiB once its LFs become CRLF: refused without a reply at the header
	 * (SMFIP_NR_HDR), at end of message */
	n = 0;
	pkt(in, &n, 'M', D(S("<a@example.org>")));
	folded(in, &n, "X-Long", 230000); /* 920 KB, 1.15 MB as CRLF */
	pkt(in, &n, 'N', "", 0);
	pkt(in, &n, 'E', "", 0);
	memcpy(want, cont, 5);
	wn = 5;
	pkt(want, &wn, 'y', D(S("552 5.3.4 Message header section too large")));
	expect(in, n, want, wn, "a field past 1 MiB");
	rig_close();
}

static const struct moat_conf_override ov_small[] = {
	{ "authserv_id", "mx.test" },
	{ "auth_inbound", "no" },
	{ "limit_message_size", "1k" },
};

Test(milter_native, last_body_chunk_with_end_of_message)
{
	static char body[700];
	char in[4096], want[128];
	size_t n = 0, wn = 0;

	memset(body, 'x', sizeof(body));
	rig_open(ov_small, sizeof(ov_small) / sizeof(ov_small[0]));
	negotiate();
	session();
	/* 700 bytes as body, 700 more with end of message (Sendmail's SMFIC_BODYEOB): both count
	 * towards limit_message_size */
	pkt(in, &n, 'N', "", 0);
	pkt(in, &n, 'B', body, sizeof(body));
	pkt(in, &n, 'E', body, sizeof(body));
	pkt(want, &wn, 'y', D(S("552 5.3.4 Message size exceeds fixed maximum message size")));
	expect(in, n, want, wn, "a last chunk with end of message");
	/* the same without the last chunk fits */
	n = 0;
	pkt(in, &n, 'M', D(S("<a@example.org>")));
	pkt(in, &n, 'N', "", 0);
	pkt(in, &n, 'B', body, sizeof(body));
	pkt(in, &n, 'E', "", 0);
	expect(in, n, D("\0\0\0\1c\0\0\0\1c"), "mail, 700 bytes of body");
	rig_close();
}

static const struct moat_conf_override ov_authres[] = {
	{ "authserv_id", "mx.test" },
	{ "auth_inbound", "yes" },
	{ "dns_resolver", "127.0.0.1@15499" }, /* nothing listens: every lookup fails */
	{ "dns_timeout", "100ms" },
	{ "dmarc_temperror_action", "continue" },
	{ "iprev_action", "none" },
};

Test(milter_native, header_edits_at_end_of_message)
{
	char in[2048], want[1024];
	size_t n = 0, wn = 0;

	rig_open(ov_authres, sizeof(ov_authres) / sizeof(ov_authres[0]));
	negotiate();
	session();
	n = 0;
	pkt(in, &n, 'R', D(S("<b@example.net>")));
	expect(in, n, D(cont), "rcpt");
	n = 0;
	pkt(in, &n, 'L', D(S("Authentication-Results") S(" mx.test; dmarc=pass")));
	pkt(in, &n, 'L', D(S("From") S(" a@example.org")));
	pkt(in, &n, 'L', D(S("Subject") S(" hi")));
	pkt(in, &n, 'N', "", 0);
	pkt(in, &n, 'B', D("body\r\n"));
	pkt(in, &n, 'E', "", 0);
	/* end of message pends (DNS) and answers from the threadpool: the forged
	 * Authentication-Results (our authserv-id) deleted, ours inserted at the top (folded with LF,
	 * its leading space kept: SMFIP_HDR_LEADSPC), then the verdict */
	pkt(want, &wn, 'm', D("\0\0\0\1" S("Authentication-Results") S("")));
	pkt(want, &wn, 'i',
	    D("\0\0\0\0" S("Authentication-Results")
		    S(" mx.test;\n"
		      "\tspf=temperror reason=\"DNS error looking up TXT "
		      "example.org\" smtp.mailfrom=a@example.org;\n"
		      "\tspf=temperror reason=\"DNS error looking up TXT "
		      "client.example\" smtp.helo=client.example;\n"
		      "\tdkim=none;\n"
		      "\tarc=none;\n"
		      "\tdmarc=temperror reason=\"DNS error looking up "
		      "_dmarc.example.org\" header.from=example.org")));
	memcpy(want + wn, cont, 5);
	wn += 5;
	expect(in, n, want, wn, "end of message with edits");
	rig_close();
}

Test(milter_native, drain_lets_the_message_end)
{
	char in[1024];
	size_t n = 0;

	rig_open(ov_plain, sizeof(ov_plain) / sizeof(ov_plain[0]));
	negotiate();
	session();
	/* SIGTERM in the middle of a message: it goes on to its end, then the connection closes */
	r.w.draining = true;
	nat__conn_drain(r.w.conns);
	pkt(in, &n, 'R', D(S("<b@example.net>")));
	expect(in, n, D(cont), "rcpt while draining");
	n = 0;
	pkt(in, &n, 'L', D(S("Subject") S(" hi")));
	pkt(in, &n, 'N', "", 0);
	pkt(in, &n, 'E', "", 0);
	expect(in, n, D(cont), "end of message while draining");
	run_until(SIZE_MAX);
	cr_assert(r.eof, "closed after the message");
	cr_assert_eq(r.got_len, 0);
	cr_assert(r.w.drained, "the worker's last connection is gone");
	rig_close();

	/* no message in progress: closed at once */
	rig_open(ov_plain, sizeof(ov_plain) / sizeof(ov_plain[0]));
	negotiate();
	n = 0;
	pkt(in, &n, 'C', D(connect_data));
	expect(in, n, D(cont), "connect");
	r.w.draining = true;
	nat__conn_drain(r.w.conns);
	expect_closed("", 0, "idle when the drain starts");
	cr_assert(r.w.drained);
	rig_close();
}
