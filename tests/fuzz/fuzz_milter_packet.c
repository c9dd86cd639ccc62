/*
 * fuzz_milter_packet.c - libFuzzer target: a hostile MTA's byte stream through the milter packet
 * decoder (milter/packet.c), as the native engine reads it.
 *
 * Byte 0 sets the largest packet taken (0: MILTER_PKT_MAX, else byte 0 * 64); the rest is the
 * stream, framed packet by packet and each packet decoded. Invariants beyond the sanitizers: a
 * framed packet lies inside the stream; every string a decoded command hands out ends with a NUL
 * inside its packet; counts stay within their bounds; a header, macro list or reply built back
 * from what was decoded frames and decodes to the same strings.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../milter/packet.h"

static const char *pkt_lo, *pkt_hi;

/* in_packet - s is a NUL-terminated string within the packet being decoded */
static void
in_packet(const char *s)
{
	if (s < pkt_lo || s >= pkt_hi || memchr(s, '\0', (size_t)(pkt_hi - s)) == NULL)
		abort();
}

/* reencode - a header field built back from name and value decodes to the same */
static void
reencode(const char *name, const char *value)
{
	static char out[2 * MILTER_PKT_MAX];
	size_t n = 0, used, need, len;
	struct milter_cmd c;
	const char *d;
	char cmd;

	if (milter_put_header(out, &n, sizeof(out), MILTER_R_ADDHEADER, 0, name, value) < 0)
		abort();
	if (milter_pkt_frame(out, n, MILTER_PKT_MAX, &cmd, &d, &len, &used, &need) !=
		MILTER_PKT_OK ||
	    used != n)
		abort();
	/* the reply 'h' carries what the command 'L' does */
	if (milter_cmd_decode(MILTER_C_HEADER, d, len, &c) != MILTER_PKT_OK ||
	    strcmp(c.u.header.name, name) != 0 || strcmp(c.u.header.value, value) != 0)
		abort();
}

static void
check(const struct milter_cmd *c)
{
	switch (c->cmd) {
	case MILTER_C_MACRO:
		if (c->u.macros.count > MILTER_MACROS_MAX ||
		    (c->u.macros.len > 0 && c->u.macros.pairs[c->u.macros.len - 1] != '\0'))
			abort();
		(void)milter_macro_find(c->u.macros.pairs, c->u.macros.len, "{daemon_name}");
		break;
	case MILTER_C_CONNECT:
		in_packet(c->u.connect.host);
		if (c->u.connect.family != 'U')
			in_packet(c->u.connect.addr);
		if (c->u.connect.port > 65535)
			abort();
		break;
	case MILTER_C_HELO:
		in_packet(c->u.helo.name);
		break;
	case MILTER_C_MAIL:
	case MILTER_C_RCPT:
		if (c->u.env.argc == 0 || c->u.env.argc > MILTER_ARGS_MAX ||
		    c->u.env.argv[c->u.env.argc] != NULL)
			abort();
		for (size_t i = 0; i < c->u.env.argc; i++)
			in_packet(c->u.env.argv[i]);
		break;
	case MILTER_C_HEADER:
		in_packet(c->u.header.name);
		in_packet(c->u.header.value);
		if (strlen(c->u.header.value) > c->u.header.value_len)
			abort();
		reencode(c->u.header.name, c->u.header.value);
		break;
	case MILTER_C_UNKNOWN:
		in_packet(c->u.unknown.line);
		break;
	case MILTER_C_BODY:
	case MILTER_C_EOM:
		if (c->u.body.p < pkt_lo || c->u.body.p + c->u.body.len > pkt_hi)
			abort();
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1, *end = (const char *)data + size;
	size_t max;

	if (size < 1)
		return 0;
	max = data[0] == 0 ? MILTER_PKT_MAX : (size_t)data[0] * 64;
	while (p < end) {
		struct milter_cmd c;
		size_t len, used, need;
		const char *d;
		char cmd;
		enum milter_pkt_rc rc =
		    milter_pkt_frame(p, (size_t)(end - p), max, &cmd, &d, &len, &used, &need);

		if (rc == MILTER_PKT_NEED && need != 0 && need <= (size_t)(end - p))
			abort();
		if (rc != MILTER_PKT_OK)
			break;
		if (used > (size_t)(end - p) || used != len + 5 || len + 1 > max)
			abort();
		pkt_lo = d;
		pkt_hi = d + len;
		if (milter_cmd_decode(cmd, d, len, &c) == MILTER_PKT_OK) {
			if (c.cmd != cmd)
				abort();
			check(&c);
		}
		p += used;
	}
	return 0;
}
