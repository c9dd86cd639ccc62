/*
 * test_proxy_inbound.c - the inbound PROXY protocol parser (proxy/proxy_inbound.c): v1 and v2,
 * LOCAL, TLVs, every bound and malformed input, table-driven with exact results; every prefix of
 * every valid header must ask for more, and what upstream.c sends must parse back to itself.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "proxy_inbound.h"
#include "upstream.h"

struct pin_case {
	const char *label;
	const char *in;
	size_t len;
	enum px_pin_status want;
	const char *why; /* BAD: the reason */
	size_t hlen; /* DONE: header length */
	bool local;
	const char *src, *dst;
	unsigned sport, dport;
};

#define L(s) s, sizeof(s) - 1
#define SIG "\r\n\r\n\0\r\nQUIT\n"
/* v2 PROXY TCP4 192.0.2.1:4321 -> 198.51.100.2:25, block length given as two octets */
#define V2_TCP4(lenhi, lenlo) \
	SIG "\x21\x11" lenhi lenlo "\xc0\x00\x02\x01\xc6\x33\x64\x02\x10\xe1\x00\x19"

static const struct pin_case cases[] = {
	/* v1 */
	{ "v1 tcp4", L("PROXY TCP4 192.0.2.1 198.51.100.2 4321 25\r\nEHLO"), PX_PIN_DONE, NULL, 43,
	    false, "192.0.2.1", "198.51.100.2", 4321, 25 },
	{ "v1 tcp6", L("PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n"), PX_PIN_DONE, NULL, 44,
	    false, "2001:db8::1", "2001:db8::2", 65535, 0 },
	{ "v1 unknown", L("PROXY UNKNOWN\r\n"), PX_PIN_DONE, NULL, 15, true, NULL, NULL, 0, 0 },
	{ "v1 unknown with fields", L("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), PX_PIN_DONE, NULL,
	    35, true, NULL, NULL, 0, 0 },
	{ "v1 longest TCP6 (104)",
	    L("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
	    PX_PIN_DONE, NULL, 104, false, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 65535 },
	{ "v1 UNKNOWN of exactly 107",
	    L("PROXY UNKNOWN xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"),
	    PX_PIN_DONE, NULL, 107, true, NULL, NULL, 0, 0 },
	{ "v1 partial", L("PROXY TCP4 192.0.2.1 198.5"), PX_PIN_NEED, NULL, 0, false, NULL, NULL, 0,
	    0 },
	{ "v1 CR waits for LF", L("PROXY UNKNOWN\r"), PX_PIN_NEED, NULL, 0, false, NULL, NULL, 0,
	    0 },
	{ "v1 107 bytes without LF",
	    L("PROXY UNKNOWN xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
	    PX_PIN_BAD, "v1-too-long", 0, false, NULL, NULL, 0, 0 },
	{ "v1 LF at 108",
	    L("PROXY UNKNOWN xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"),
	    PX_PIN_BAD, "v1-too-long", 0, false, NULL, NULL, 0, 0 },
	{ "v1 bare LF", L("PROXY UNKNOWN\n"), PX_PIN_BAD, "v1-bare-lf", 0, false, NULL, NULL, 0,
	    0 },
	{ "v1 CR inside", L("PROXY TCP4 192.0.2.1\r198.51.100.2 1 2\r\n"), PX_PIN_BAD,
	    "v1-bad-byte", 0, false, NULL, NULL, 0, 0 },
	{ "v1 NUL inside", L("PROXY TCP4 192.0.2.1 198.51.100.2 1\0 2\r\n"), PX_PIN_BAD,
	    "v1-bad-byte", 0, false, NULL, NULL, 0, 0 },
	{ "v1 8-bit byte", L("PROXY TCP4 192.0.2.1 198.51.100.2 1 2\xff\r\n"), PX_PIN_BAD,
	    "v1-bad-byte", 0, false, NULL, NULL, 0, 0 },
	{ "v1 lower case", L("proxy TCP4 192.0.2.1 198.51.100.2 1 2\r\n"), PX_PIN_BAD,
	    "not-a-proxy-header", 0, false, NULL, NULL, 0, 0 },
	{ "v1 prefix wrong early", L("PROXX"), PX_PIN_BAD, "not-a-proxy-header", 0, false, NULL,
	    NULL, 0, 0 },
	{ "v1 two spaces", L("PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n"), PX_PIN_BAD, "v1-syntax",
	    0, false, NULL, NULL, 0, 0 },
	{ "v1 trailing space", L("PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n"), PX_PIN_BAD,
	    "v1-syntax", 0, false, NULL, NULL, 0, 0 },
	{ "v1 sixth field", L("PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n"), PX_PIN_BAD,
	    "v1-syntax", 0, false, NULL, NULL, 0, 0 },
	{ "v1 missing port", L("PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n"), PX_PIN_BAD, "v1-syntax",
	    0, false, NULL, NULL, 0, 0 },
	{ "v1 empty", L("PROXY \r\n"), PX_PIN_BAD, "v1-syntax", 0, false, NULL, NULL, 0, 0 },
	{ "v1 tcp5", L("PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n"), PX_PIN_BAD, "v1-protocol", 0,
	    false, NULL, NULL, 0, 0 },
	{ "v1 v6 address under TCP4", L("PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n"), PX_PIN_BAD,
	    "v1-address", 0, false, NULL, NULL, 0, 0 },
	{ "v1 v4 address under TCP6", L("PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n"), PX_PIN_BAD,
	    "v1-address", 0, false, NULL, NULL, 0, 0 },
	{ "v1 host name", L("PROXY TCP4 lb.example 198.51.100.2 1 2\r\n"), PX_PIN_BAD, "v1-address",
	    0, false, NULL, NULL, 0, 0 },
	{ "v1 octet over 255", L("PROXY TCP4 192.0.2.256 198.51.100.2 1 2\r\n"), PX_PIN_BAD,
	    "v1-address", 0, false, NULL, NULL, 0, 0 },
	{ "v1 port over 65535", L("PROXY TCP4 192.0.2.1 198.51.100.2 65536 25\r\n"), PX_PIN_BAD,
	    "v1-port", 0, false, NULL, NULL, 0, 0 },
	{ "v1 port leading zero", L("PROXY TCP4 192.0.2.1 198.51.100.2 025 25\r\n"), PX_PIN_BAD,
	    "v1-port", 0, false, NULL, NULL, 0, 0 },
	{ "v1 port sign", L("PROXY TCP4 192.0.2.1 198.51.100.2 +25 25\r\n"), PX_PIN_BAD, "v1-port",
	    0, false, NULL, NULL, 0, 0 },
	{ "v1 port six digits", L("PROXY TCP4 192.0.2.1 198.51.100.2 1 000025\r\n"), PX_PIN_BAD,
	    "v1-port", 0, false, NULL, NULL, 0, 0 },
	/* v2 */
	{ "v2 tcp4", L(V2_TCP4("\x00", "\x0c") "EHLO"), PX_PIN_DONE, NULL, 28, false, "192.0.2.1",
	    "198.51.100.2", 4321, 25 },
	{ "v2 tcp6",
	    L(SIG "\x21\x21\x00\x24"
		  "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
		  "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02"
		  "\xff\xff\x00\x01"),
	    PX_PIN_DONE, NULL, 52, false, "2001:db8::1", "2001:db8::2", 65535, 1 },
	{ "v2 local, no block",
	    L(SIG "\x20\x00\x00\x00"
		  "EHLO"),
	    PX_PIN_DONE, NULL, 16, true, NULL, NULL, 0, 0 },
	{ "v2 local, block ignored",
	    L(SIG "\x20\x31\x00\x03"
		  "abc"),
	    PX_PIN_DONE, NULL, 19, true, NULL, NULL, 0, 0 },
	{ "v2 tcp4 with two TLVs",
	    L(V2_TCP4("\x00", "\x17") "\x04\x00\x02xx"
				      "\x05\x00\x03uid"),
	    PX_PIN_DONE, NULL, 39, false, "192.0.2.1", "198.51.100.2", 4321, 25 },
	{ "v2 tcp4 with an empty TLV", L(V2_TCP4("\x00", "\x0f") "\x04\x00\x00"), PX_PIN_DONE, NULL,
	    31, false, "192.0.2.1", "198.51.100.2", 4321, 25 },
	{ "v2 TLV past the block", L(V2_TCP4("\x00", "\x11") "\x04\x00\x03xx"), PX_PIN_BAD,
	    "v2-tlv", 0, false, NULL, NULL, 0, 0 },
	{ "v2 TLV header cut", L(V2_TCP4("\x00", "\x0e") "\x04\x00"), PX_PIN_BAD, "v2-tlv", 0,
	    false, NULL, NULL, 0, 0 },
	{ "v2 signature only", L(SIG), PX_PIN_NEED, NULL, 0, false, NULL, NULL, 0, 0 },
	{ "v2 block not all here", L(V2_TCP4("\x00", "\x10") "\x04"), PX_PIN_NEED, NULL, 0, false,
	    NULL, NULL, 0, 0 },
	{ "v2 wrong signature", L("\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x0c"), PX_PIN_BAD,
	    "not-a-proxy-header", 0, false, NULL, NULL, 0, 0 },
	{ "v2 version 1", L(SIG "\x11\x11\x00\x0c"), PX_PIN_BAD, "v2-version", 0, false, NULL, NULL,
	    0, 0 },
	{ "v2 version 3", L(SIG "\x31\x11\x00\x0c"), PX_PIN_BAD, "v2-version", 0, false, NULL, NULL,
	    0, 0 },
	{ "v2 command 2", L(SIG "\x22\x11\x00\x0c"), PX_PIN_BAD, "v2-command", 0, false, NULL, NULL,
	    0, 0 },
	{ "v2 longest accepted", NULL, 0, PX_PIN_DONE, NULL, PX_PIN_MAX, false, "192.0.2.1",
	    "198.51.100.2", 4321, 25 },
	{ "v2 one over the bound", NULL, 0, PX_PIN_BAD, "v2-too-long", 0, false, NULL, NULL, 0, 0 },
	{ "v2 length 65535", L(SIG "\x21\x11\xff\xff"), PX_PIN_BAD, "v2-too-long", 0, false, NULL,
	    NULL, 0, 0 },
	{ "v2 tcp4 block too short",
	    L(SIG "\x21\x11\x00\x0b"
		  "\xc0\x00\x02\x01\xc6\x33\x64\x02\x10\xe1\x00"),
	    PX_PIN_BAD, "v2-short-block", 0, false, NULL, NULL, 0, 0 },
	{ "v2 tcp6 block too short",
	    L(SIG "\x21\x21\x00\x0c"
		  "\xc0\x00\x02\x01\xc6\x33\x64\x02\x10\xe1\x00\x19"),
	    PX_PIN_BAD, "v2-short-block", 0, false, NULL, NULL, 0, 0 },
	{ "v2 proxy unspec", L(SIG "\x21\x00\x00\x00"), PX_PIN_BAD, "v2-family", 0, false, NULL,
	    NULL, 0, 0 },
	{ "v2 proxy udp4",
	    L(SIG "\x21\x12\x00\x0c"
		  "\xc0\x00\x02\x01\xc6\x33\x64\x02\x10\xe1\x00\x19"),
	    PX_PIN_BAD, "v2-family", 0, false, NULL, NULL, 0, 0 },
	{ "v2 proxy unix", L(SIG "\x21\x31\x00\x00"), PX_PIN_BAD, "v2-family", 0, false, NULL, NULL,
	    0, 0 },
	/* neither */
	{ "empty input", "", 0, PX_PIN_NEED, NULL, 0, false, NULL, NULL, 0, 0 },
	{ "SMTP instead", L("EHLO lb.example\r\n"), PX_PIN_BAD, "not-a-proxy-header", 0, false,
	    NULL, NULL, 0, 0 },
	{ "CR then garbage", L("\rX"), PX_PIN_BAD, "not-a-proxy-header", 0, false, NULL, NULL, 0,
	    0 },
};

/* big_v2 - a v2 TCP4 header of exactly total bytes, padded with one NOOP TLV (type 4). */
static size_t
big_v2(char *buf, size_t total)
{
	static const char head[] = V2_TCP4("\x00", "\x0c");
	size_t blen = total - 16, tl = total - 28 - 3;

	memcpy(buf, head, 28);
	buf[14] = (char)(blen >> 8);
	buf[15] = (char)(blen & 0xff);
	buf[28] = 4;
	buf[29] = (char)(tl >> 8);
	buf[30] = (char)(tl & 0xff);
	memset(buf + 31, 'p', tl);
	return total;
}

static void
check(const struct pin_case *c, const char *in, size_t len)
{
	struct px_pin h;
	const char *why = "unset";
	enum px_pin_status st;

	memset(&h, 0, sizeof(h));
	st = px_pin_parse(in, len, &h, &why);
	cr_assert_eq(st, c->want, "%s: status %d, want %d (why %s)", c->label, st, c->want,
	    why ? why : "-");
	if (st == PX_PIN_BAD) {
		cr_assert_str_eq(why, c->why, "%s: why %s", c->label, why);
		return;
	}
	cr_assert_null(why, "%s: why set on success", c->label);
	if (st != PX_PIN_DONE)
		return;
	cr_assert_eq(h.len, c->hlen, "%s: len %zu", c->label, h.len);
	cr_assert_eq(h.local, c->local, "%s: local", c->label);
	if (c->local)
		return;
	cr_assert_str_eq(h.src, c->src, "%s: src %s", c->label, h.src);
	cr_assert_str_eq(h.dst, c->dst, "%s: dst %s", c->label, h.dst);
	cr_assert_eq(h.sport, c->sport, "%s: sport %u", c->label, h.sport);
	cr_assert_eq(h.dport, c->dport, "%s: dport %u", c->label, h.dport);
}

Test(proxy_inbound, table)
{
	static char big[PX_PIN_MAX + 1];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct pin_case *c = &cases[i];

		if (c->in != NULL)
			check(c, c->in, c->len);
		else if (c->want == PX_PIN_DONE)
			check(c, big, big_v2(big, PX_PIN_MAX));
		else
			check(c, big, big_v2(big, PX_PIN_MAX + 1));
	}
}

/* Every strict prefix of a complete header is a valid beginning: NEED, never BAD or DONE. */
Test(proxy_inbound, prefixes_need_more)
{
	static char big[PX_PIN_MAX];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct pin_case *c = &cases[i];
		const char *in = c->in;

		if (c->want != PX_PIN_DONE)
			continue;
		if (in == NULL)
			in = big, big_v2(big, PX_PIN_MAX);
		for (size_t n = 0; n < c->hlen; n++) {
			struct px_pin h;
			const char *why;

			cr_assert_eq(px_pin_parse(in, n, &h, &why), PX_PIN_NEED, "%s: prefix %zu",
			    c->label, n);
		}
	}
}

/* What the proxy sends to its backend (upstream.c) reads back as the same client. */
Test(proxy_inbound, round_trip_with_upstream)
{
	static const struct {
		const char *src, *dst;
		unsigned sport, dport;
	} ends[] = {
		{ "192.0.2.1", "198.51.100.2", 4321, 25 },
		{ "2001:db8::1", "2001:db8::2", 1, 65535 },
	};

	for (size_t i = 0; i < 2; i++)
		for (int version = 1; version <= 2; version++) {
			char buf[128];
			size_t n = px_proxy_format(buf, sizeof(buf), version, ends[i].src,
			    ends[i].sport, ends[i].dst, ends[i].dport);
			struct px_pin h;
			const char *why;

			cr_assert_gt(n, 0);
			cr_assert_eq(px_pin_parse(buf, n, &h, &why), PX_PIN_DONE, "v%d %s", version,
			    ends[i].src);
			cr_assert_eq(h.len, n);
			cr_assert_eq(h.version, version);
			cr_assert_str_eq(h.src, ends[i].src);
			cr_assert_str_eq(h.dst, ends[i].dst);
			cr_assert_eq(h.sport, ends[i].sport);
			cr_assert_eq(h.dport, ends[i].dport);
		}
}
