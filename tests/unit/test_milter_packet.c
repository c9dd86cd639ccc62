/*
 * test_milter_packet.c - the milter packet codec (milter/packet.c): every command the MTA sends,
 * decoded from the bytes Postfix and Sendmail put on the wire, with truncated, oversized and
 * malformed variants; every reply we send, encoded to the exact bytes libmilter sends for it.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "../../milter/packet.h"

/* S(x) - a string literal with its NUL counted, as the wire carries it */
#define S(x) x "\0"
#define D(x) (x), sizeof(x) - 1

static char wire[2 * 65536];

/* frame - "len cmd data" into wire; its size */
static size_t
frame(char cmd, const char *data, size_t dlen)
{
	uint32_t n = (uint32_t)dlen + 1;

	wire[0] = (char)(n >> 24);
	wire[1] = (char)(n >> 16);
	wire[2] = (char)(n >> 8);
	wire[3] = (char)n;
	wire[4] = cmd;
	memcpy(wire + 5, data, dlen);
	return dlen + 5;
}

/* decode - frame, then split and decode it again: the decoder's verdict */
static enum milter_pkt_rc
decode(char cmd, const char *data, size_t dlen, struct milter_cmd *out)
{
	size_t n = frame(cmd, data, dlen), used, need, len;
	const char *d;
	char c;

	cr_assert_eq(milter_pkt_frame(wire, n, MILTER_PKT_MAX, &c, &d, &len, &used, &need),
	    MILTER_PKT_OK);
	cr_assert_eq(used, n);
	cr_assert_eq(c, cmd);
	cr_assert_eq(len, dlen);
	return milter_cmd_decode(c, d, len, out);
}

struct bad_case {
	const char *label;
	char cmd;
	const char *data;
	size_t len;
};

static const struct bad_case bad_cases[] = {
	{ "optneg short", 'O', D("\0\0\0\6\0\0\1\x3f\0\0\0") },
	{ "macros empty", 'D', D("") },
	{ "macros odd", 'D', D("C" S("j") S("mx") S("{daemon_name}")) },
	{ "macros no NUL", 'D', D("C" S("j") "mx") },
	{ "connect no host NUL", 'C', D("client") },
	{ "connect no family", 'C', D(S("client")) },
	{ "connect bad family", 'C', D(S("client") "X\0\x19" S("1.2.3.4")) },
	{ "connect no port", 'C', D(S("client") "4\0") },
	{ "connect addr no NUL", 'C',
	    D(S("client") "4\0\x19"
			  "1.2.3.4") },
	{ "connect trailing", 'C', D(S("client") "4\0\x19" S("1.2.3.4") "x") },
	{ "connect U with data", 'C', D(S("client") "U\0") },
	{ "helo no NUL", 'H', D("mx.example") },
	{ "helo two strings", 'H', D(S("a") S("b")) },
	{ "mail empty", 'M', D("") },
	{ "mail no NUL", 'M', D(S("<a@b>") "SIZE=10") },
	{ "rcpt no NUL", 'R', D("<a@b>") },
	{ "header one string", 'L', D(S("Subject")) },
	{ "header no value NUL", 'L', D(S("Subject") " hi") },
	{ "header three strings", 'L', D(S("Subject") S(" hi") S("x")) },
	{ "unknown no NUL", 'U', D("XYZZY") },
	{ "data with data", 'T', D("x") },
	{ "eoh with data", 'N', D("x") },
	{ "abort with data", 'A', D("x") },
	{ "quit with data", 'Q', D("x") },
	{ "quit_nc with data", 'K', D("x") },
	{ "unknown command", 'Z', D("") },
	{ "reply code as a command", 'c', D("") },
};

Test(milter_packet, malformed_commands_are_refused)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct milter_cmd c;
		cr_expect_eq(decode(bad_cases[i].cmd, bad_cases[i].data, bad_cases[i].len, &c),
		    MILTER_PKT_BAD, "%s", bad_cases[i].label);
	}
}

Test(milter_packet, optneg)
{
	struct milter_cmd c;

	cr_assert_eq(decode('O', D("\0\0\0\6\0\0\1\x3f\0\x1f\xff\xff"), &c), MILTER_PKT_OK);
	cr_expect_eq(c.u.optneg.version, 6);
	cr_expect_eq(c.u.optneg.actions, 0x13f);
	cr_expect_eq(c.u.optneg.protocol, 0x1fffff);
	/* a later version's extra fields are ignored */
	cr_assert_eq(decode('O', D("\0\0\0\6\0\0\0\1\0\0\0\2\0\0\0\3"), &c), MILTER_PKT_OK);
	cr_expect_eq(c.u.optneg.protocol, 2);
}

Test(milter_packet, macros)
{
	struct milter_cmd c;

	cr_assert_eq(decode('D', D("C" S("j") S("mx.example") S("{daemon_name}") S("smtpd")), &c),
	    MILTER_PKT_OK);
	cr_expect_eq(c.u.macros.stage, 'C');
	cr_expect_eq(c.u.macros.count, 2);
	cr_expect_str_eq(milter_macro_find(c.u.macros.pairs, c.u.macros.len, "j"), "mx.example");
	cr_expect_str_eq(milter_macro_find(c.u.macros.pairs, c.u.macros.len, "{daemon_name}"),
	    "smtpd");
	cr_expect_null(milter_macro_find(c.u.macros.pairs, c.u.macros.len, "i"));
	/* no pairs at all is a stage with no macros */
	cr_assert_eq(decode('D', D("M"), &c), MILTER_PKT_OK);
	cr_expect_eq(c.u.macros.count, 0);
	cr_expect_null(milter_macro_find(c.u.macros.pairs, c.u.macros.len, "i"));
	/* an empty value is a value */
	cr_assert_eq(decode('D', D("E" S("i") S("")), &c), MILTER_PKT_OK);
	cr_expect_str_eq(milter_macro_find(c.u.macros.pairs, c.u.macros.len, "i"), "");
}

Test(milter_packet, macros_count_bounded)
{
	static char data[1 + 2 * 4 * (MILTER_MACROS_MAX + 1)];
	struct milter_cmd c;
	size_t n = 1;

	data[0] = 'C';
	for (size_t i = 0; i < MILTER_MACROS_MAX; i++) {
		memcpy(data + n, "a\0b\0", 4);
		n += 4;
	}
	cr_assert_eq(decode('D', data, n, &c), MILTER_PKT_OK);
	cr_expect_eq(c.u.macros.count, MILTER_MACROS_MAX);
	memcpy(data + n, "a\0b\0", 4);
	cr_expect_eq(decode('D', data, n + 4, &c), MILTER_PKT_BAD);
}

Test(milter_packet, connect)
{
	struct milter_cmd c;

	cr_assert_eq(decode('C', D(S("client.example") "4\x30\x39" S("192.0.2.1")), &c),
	    MILTER_PKT_OK);
	cr_expect_str_eq(c.u.connect.host, "client.example");
	cr_expect_eq(c.u.connect.family, '4');
	cr_expect_eq(c.u.connect.port, 12345);
	cr_expect_str_eq(c.u.connect.addr, "192.0.2.1");
	cr_assert_eq(decode('C', D(S("[2001:db8::1]") "6\xff\xff" S("2001:db8::1")), &c),
	    MILTER_PKT_OK);
	cr_expect_eq(c.u.connect.family, '6');
	cr_expect_eq(c.u.connect.port, 65535);
	cr_expect_str_eq(c.u.connect.addr, "2001:db8::1");
	cr_assert_eq(decode('C', D(S("localhost") "L\0\0" S("/run/smtp.sock")), &c), MILTER_PKT_OK);
	cr_expect_str_eq(c.u.connect.addr, "/run/smtp.sock");
	cr_assert_eq(decode('C', D(S("unknown") "U"), &c), MILTER_PKT_OK);
	cr_expect_eq(c.u.connect.family, 'U');
	cr_expect_eq(c.u.connect.port, 0);
	cr_expect_str_eq(c.u.connect.addr, "");
}

Test(milter_packet, helo_unknown)
{
	struct milter_cmd c;

	cr_assert_eq(decode('H', D(S("mx.example")), &c), MILTER_PKT_OK);
	cr_expect_str_eq(c.u.helo.name, "mx.example");
	cr_assert_eq(decode('H', D(S("")), &c), MILTER_PKT_OK);
	cr_expect_str_eq(c.u.helo.name, "");
	cr_assert_eq(decode('U', D(S("XYZZY plugh")), &c), MILTER_PKT_OK);
	cr_expect_str_eq(c.u.unknown.line, "XYZZY plugh");
}

Test(milter_packet, mail_rcpt)
{
	struct milter_cmd c;

	cr_assert_eq(decode('M', D(S("<a@example.org>") S("SIZE=2048") S("BODY=8BITMIME")), &c),
	    MILTER_PKT_OK);
	cr_expect_eq(c.cmd, 'M');
	cr_expect_eq(c.u.env.argc, 3);
	cr_expect_str_eq(c.u.env.argv[0], "<a@example.org>");
	cr_expect_str_eq(c.u.env.argv[1], "SIZE=2048");
	cr_expect_str_eq(c.u.env.argv[2], "BODY=8BITMIME");
	cr_expect_null(c.u.env.argv[3]);
	cr_assert_eq(decode('M', D(S("<>")), &c), MILTER_PKT_OK);
	cr_expect_eq(c.u.env.argc, 1);
	cr_expect_str_eq(c.u.env.argv[0], "<>");
	cr_assert_eq(decode('R', D(S("<b@example.net>")), &c), MILTER_PKT_OK);
	cr_expect_eq(c.cmd, 'R');
	cr_expect_str_eq(c.u.env.argv[0], "<b@example.net>");
	cr_expect_null(c.u.env.argv[1]);
}

Test(milter_packet, mail_args_bounded)
{
	static char data[2 * (MILTER_ARGS_MAX + 1)];
	struct milter_cmd c;

	memset(data, 0, sizeof(data));
	for (size_t i = 0; i < sizeof(data); i += 2)
		data[i] = 'x';
	cr_assert_eq(decode('R', data, 2 * MILTER_ARGS_MAX, &c), MILTER_PKT_OK);
	cr_expect_eq(c.u.env.argc, MILTER_ARGS_MAX);
	cr_expect_null(c.u.env.argv[MILTER_ARGS_MAX]);
	cr_expect_eq(decode('R', data, sizeof(data), &c), MILTER_PKT_BAD);
}

Test(milter_packet, header)
{
	struct milter_cmd c;

	cr_assert_eq(decode('L', D(S("Subject") S(" hello\n\tworld")), &c), MILTER_PKT_OK);
	cr_expect_str_eq(c.u.header.name, "Subject");
	cr_expect_str_eq(c.u.header.value, " hello\n\tworld");
	cr_expect_eq(c.u.header.value_len, 13);
	cr_assert_eq(decode('L', D(S("X-Empty") S("")), &c), MILTER_PKT_OK);
	cr_expect_eq(c.u.header.value_len, 0);
}

Test(milter_packet, body_eom)
{
	struct milter_cmd c;

	cr_assert_eq(decode('B', D("line 1\r\nline\0 2\r\n"), &c), MILTER_PKT_OK);
	cr_expect_eq(c.u.body.len, 17);
	cr_expect_eq(memcmp(c.u.body.p, "line 1\r\nline\0 2\r\n", 17), 0);
	cr_assert_eq(decode('B', D(""), &c), MILTER_PKT_OK);
	cr_expect_eq(c.u.body.len, 0);
	cr_assert_eq(decode('E', D(""), &c), MILTER_PKT_OK);
	cr_expect_eq(c.u.body.len, 0);
	cr_assert_eq(decode('E', D("last\r\n"), &c), MILTER_PKT_OK);
	cr_expect_eq(c.u.body.len, 6);
}

Test(milter_packet, steps_without_data)
{
	static const char cmds[] = "TNAQK";
	struct milter_cmd c;

	for (size_t i = 0; cmds[i] != '\0'; i++) {
		cr_expect_eq(decode(cmds[i], "", 0, &c), MILTER_PKT_OK, "%c", cmds[i]);
		cr_expect_eq(c.cmd, cmds[i]);
	}
}

Test(milter_packet, frame_truncated)
{
	size_t n = frame('H', D(S("mx.example"))), used, need, len;
	const char *d;
	char c;

	for (size_t k = 0; k < n; k++) {
		cr_expect_eq(milter_pkt_frame(wire, k, MILTER_PKT_MAX, &c, &d, &len, &used, &need),
		    MILTER_PKT_NEED, "at %zu", k);
		cr_expect_eq(need, k < 4 ? 0 : n, "at %zu", k);
	}
	/* two packets back to back: the first alone is taken */
	memcpy(wire + n, wire, n);
	cr_assert_eq(milter_pkt_frame(wire, 2 * n, MILTER_PKT_MAX, &c, &d, &len, &used, &need),
	    MILTER_PKT_OK);
	cr_expect_eq(used, n);
}

Test(milter_packet, frame_oversized)
{
	size_t used, need, len;
	const char *d;
	char c;

	/* refused from the length alone, before the bytes arrive */
	cr_expect_eq(milter_pkt_frame("\0\0\0\0", 4, MILTER_PKT_MAX, &c, &d, &len, &used, &need),
	    MILTER_PKT_BAD);
	cr_expect_eq(milter_pkt_frame("\xff\xff\xff\xff", 4, MILTER_PKT_MAX, &c, &d, &len, &used,
			 &need),
	    MILTER_PKT_BAD);
	cr_expect_eq(milter_pkt_frame("\0\x10\0\x01", 4, MILTER_PKT_MAX, &c, &d, &len, &used,
			 &need),
	    MILTER_PKT_BAD);
	cr_expect_eq(milter_pkt_frame("\0\x10\0\x00", 4, MILTER_PKT_MAX, &c, &d, &len, &used,
			 &need),
	    MILTER_PKT_NEED);
	cr_expect_eq(need, 4 + MILTER_PKT_MAX);
	/* a caller's lower maximum */
	cr_expect_eq(milter_pkt_frame("\0\0\0\x11", 4, 16, &c, &d, &len, &used, &need),
	    MILTER_PKT_BAD);
	cr_expect_eq(milter_pkt_frame("\0\0\0\x10", 4, 16, &c, &d, &len, &used, &need),
	    MILTER_PKT_NEED);
}

/* ---- encoder: the bytes libmilter sends for the same reply ---- */

#define expect_bytes(buf, n, lit) \
	do { \
		cr_expect_eq((n), sizeof(lit) - 1); \
		cr_expect_eq(memcmp((buf), (lit), sizeof(lit) - 1), 0); \
	} while (0)

Test(milter_packet, simple_replies)
{
	static const char codes[] = "catrdp";
	char out[64];

	for (size_t i = 0; codes[i] != '\0'; i++) {
		size_t n = 0;
		cr_assert_eq(milter_put_simple(out, &n, sizeof(out), codes[i]), 0);
		cr_expect_eq(n, 5);
		cr_expect_eq(memcmp(out, "\0\0\0\1", 4), 0);
		cr_expect_eq(out[4], codes[i]);
	}
}

Test(milter_packet, replycode)
{
	char out[600];
	size_t n = 0;

	cr_assert_eq(milter_put_replycode(out, &n, sizeof(out), 550, "5.7.1", "No way"), 0);
	expect_bytes(out, n, "\0\0\0\x12y" S("550 5.7.1 No way"));
	n = 0;
	cr_assert_eq(milter_put_replycode(out, &n, sizeof(out), 451, NULL, "Later"), 0);
	expect_bytes(out, n, "\0\0\0\x0by" S("451 Later"));
	n = 0;
	cr_assert_eq(milter_put_replycode(out, &n, sizeof(out), 421, "4.7.0", NULL), 0);
	expect_bytes(out, n, "\0\0\0\x0by" S("421 4.7.0"));
	n = 0;
	cr_assert_eq(milter_put_replyline(out, &n, sizeof(out), "554 5.7.1 100%% sure"), 0);
	expect_bytes(out, n, "\0\0\0\x16y" S("554 5.7.1 100%% sure"));
	n = 0;
	cr_expect_eq(milter_put_replycode(out, &n, sizeof(out), 250, NULL, "ok"), -1);
	cr_expect_eq(milter_put_replycode(out, &n, sizeof(out), 600, NULL, "ok"), -1);
	cr_expect_eq(milter_put_replycode(out, &n, sizeof(out), 550, NULL, "a\r\nb"), -1);
	cr_expect_eq(n, 0);
}

Test(milter_packet, header_edits)
{
	char out[128];
	size_t n = 0;

	cr_assert_eq(milter_put_header(out, &n, sizeof(out), 'i', 0, "Authentication-Results",
			 " mx; spf=pass"),
	    0);
	expect_bytes(out, n, "\0\0\0\x2ai\0\0\0\0" S("Authentication-Results") S(" mx; spf=pass"));
	n = 0;
	cr_assert_eq(milter_put_header(out, &n, sizeof(out), 'm', 3, "Authentication-Results", ""),
	    0);
	expect_bytes(out, n, "\0\0\0\x1dm\0\0\0\3" S("Authentication-Results") S(""));
	n = 0;
	cr_assert_eq(milter_put_header(out, &n, sizeof(out), 'h', 7, "X-A", "b"), 0);
	expect_bytes(out, n, "\0\0\0\7h" S("X-A") S("b"));
	cr_expect_eq(milter_put_header(out, &n, sizeof(out), 'x', 0, "X-A", "b"), -1);
}

Test(milter_packet, quarantine_optneg)
{
	static const char *const lists[MILTER_STAGE_COUNT] = { [MILTER_STAGE_CONNECT] = "j",
		[MILTER_STAGE_EOM] = "i {msg_size}" };
	char out[128];
	size_t n = 0;

	cr_assert_eq(milter_put_quarantine(out, &n, sizeof(out), "held by mxmoat"), 0);
	expect_bytes(out, n, "\0\0\0\x10q" S("held by mxmoat"));
	n = 0;
	cr_assert_eq(milter_put_optneg(out, &n, sizeof(out), 6, 0x131, 0xc2280, NULL), 0);
	expect_bytes(out, n, "\0\0\0\x0dO\0\0\0\6\0\0\1\x31\0\x0c\x22\x80");
	n = 0;
	cr_assert_eq(milter_put_optneg(out, &n, sizeof(out), 6, 0x131, 0x200, lists), 0);
	expect_bytes(out, n,
	    "\0\0\0\x24O\0\0\0\6\0\0\1\x31\0\0\2\0"
	    "\0\0\0\0" S("j") "\0\0\0\5" S("i {msg_size}"));
}

Test(milter_packet, encoder_bounded)
{
	char out[32];
	size_t n = 0;

	/* packets append; one that does not fit leaves the buffer as it was */
	cr_assert_eq(milter_put_simple(out, &n, sizeof(out), 'c'), 0);
	cr_assert_eq(milter_put_header(out, &n, sizeof(out), 'i', 0, "X-Long", "0123456789"), 0);
	cr_expect_eq(n, 5 + 4 + 1 + 4 + 7 + 11);
	cr_expect_eq(milter_put_simple(out, &n, sizeof(out), 'c'), -1);
	cr_expect_eq(n, 32);
	n = 28;
	cr_expect_eq(milter_put_quarantine(out, &n, sizeof(out), "x"), -1);
	cr_expect_eq(n, 28);
	cr_expect_eq(milter_put_simple(out, &n, 4, 'c'), -1); /* past the end already */
}

Test(milter_packet, encoded_replies_frame_back)
{
	char out[256];
	size_t n = 0, off = 0, used, need, len;
	const char *d;
	char c;
	int k = 0;

	cr_assert_eq(milter_put_header(out, &n, sizeof(out), 'i', 0, "A", "b"), 0);
	cr_assert_eq(milter_put_quarantine(out, &n, sizeof(out), "r"), 0);
	cr_assert_eq(milter_put_replycode(out, &n, sizeof(out), 550, "5.7.1", "no"), 0);
	while (milter_pkt_frame(out + off, n - off, MILTER_PKT_MAX, &c, &d, &len, &used, &need) ==
	    MILTER_PKT_OK) {
		cr_expect_eq(c, "iqy"[k]);
		off += used;
		k++;
	}
	cr_expect_eq(k, 3);
	cr_expect_eq(off, n);
}
