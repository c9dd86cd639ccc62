/*
 * proxy_inbound.c - parse the PROXY protocol header of a trusted load balancer (haproxy's
 * proxy-protocol.txt): v1 "PROXY TCP4|TCP6 src dst sport dport\r\n" or "PROXY UNKNOWN...\r\n"
 * (at most 107 bytes), v2 with the PROXY command over TCP/IPv4 or TCP/IPv6 (TLVs walked, checked
 * and skipped) or the LOCAL command (health checks). Strict: one space between fields, decimal
 * ports without leading zeros, addresses that inet_pton accepts; anything else is BAD and the
 * caller closes the connection. Owns nothing.
 */
#include "config.h"

#include <arpa/inet.h>
#include <string.h>

#include "proxy_inbound.h"

/* bad - set the reason and return BAD. */
static enum px_pin_status
bad(const char **why, const char *reason)
{
	*why = reason;
	return PX_PIN_BAD;
}

/* v1_port - "0".."65535", no sign, no leading zero; 0 or -1. */
static int
v1_port(const char *p, size_t n, unsigned *port)
{
	unsigned v = 0;

	if (n == 0 || n > 5 || (n > 1 && p[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = v;
	return 0;
}

/* v1_addr - a numeric address of family af, copied to out. 0 or -1. */
static int
v1_addr(const char *p, size_t n, int af, char *out)
{
	unsigned char bin[16];

	if (n == 0 || n >= PX_PIN_ADDR_MAX)
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	return inet_pton(af, out, bin) == 1 ? 0 : -1;
}

/* parse_v1 - the text form (2.1). */
static enum px_pin_status
parse_v1(const char *p, size_t n, struct px_pin *out, const char **why)
{
	size_t pl = sizeof(PX_PP1_PREFIX) - 1, lim = n < PX_PP1_MAX ? n : PX_PP1_MAX, lf, k;
	const char *f[5];
	size_t fl[5];
	const char *q, *end;
	int af;

	if (memcmp(p, PX_PP1_PREFIX, n < pl ? n : pl) != 0)
		return bad(why, "not-a-proxy-header");
	for (lf = 0; lf < lim && p[lf] != '\n'; lf++)
		;
	if (lf == lim)
		return n >= PX_PP1_MAX ? bad(why, "v1-too-long") : PX_PIN_NEED;
	if (lf < pl + 1 || p[lf - 1] != '\r')
		return bad(why, "v1-bare-lf");
	end = p + lf - 1; /* the CR */
	for (q = p; q < end; q++)
		if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e)
			return bad(why, "v1-bad-byte");
	/* split what follows "PROXY " at single spaces: proto src dst sport dport */
	q = p + pl;
	for (k = 0; k < 5; k++) {
		const char *sp = memchr(q, ' ', (size_t)(end - q));

		f[k] = q;
		fl[k] = sp != NULL ? (size_t)(sp - q) : (size_t)(end - q);
		if (k == 0 && fl[0] == 7 && memcmp(q, "UNKNOWN", 7) == 0) {
			/* 2.1: the receiver ignores anything after UNKNOWN up to the CRLF */
			out->version = 1;
			out->local = true;
			out->len = lf + 1;
			return PX_PIN_DONE;
		}
		if (fl[k] == 0)
			return bad(why, "v1-syntax");
		if (sp == NULL) {
			k++;
			break;
		}
		q = sp + 1;
		if (k == 4)
			return bad(why, "v1-syntax"); /* a sixth field */
	}
	if (k != 5)
		return bad(why, "v1-syntax");
	if (fl[0] == 4 && memcmp(f[0], "TCP4", 4) == 0)
		af = AF_INET;
	else if (fl[0] == 4 && memcmp(f[0], "TCP6", 4) == 0)
		af = AF_INET6;
	else
		return bad(why, "v1-protocol");
	if (v1_addr(f[1], fl[1], af, out->src) < 0 || v1_addr(f[2], fl[2], af, out->dst) < 0)
		return bad(why, "v1-address");
	if (v1_port(f[3], fl[3], &out->sport) < 0 || v1_port(f[4], fl[4], &out->dport) < 0)
		return bad(why, "v1-port");
	out->version = 1;
	out->local = false;
	out->len = lf + 1;
	return PX_PIN_DONE;
}

/* parse_v2 - the binary form (2.2). */
static enum px_pin_status
parse_v2(const unsigned char *p, size_t n, struct px_pin *out, const char **why)
{
	size_t blen, total, alen, off;
	int af;

	if (memcmp(p, PX_PP2_SIG, n < PX_PP2_SIG_LEN ? n : PX_PP2_SIG_LEN) != 0)
		return bad(why, "not-a-proxy-header");
	if (n < PX_PP2_HDR_LEN)
		return PX_PIN_NEED;
	if ((p[12] & 0xf0) != PX_PP2_VERSION)
		return bad(why, "v2-version");
	if ((p[12] & 0x0f) != PX_PP2_CMD_LOCAL && (p[12] & 0x0f) != PX_PP2_CMD_PROXY)
		return bad(why, "v2-command");
	blen = (size_t)p[14] << 8 | p[15];
	total = PX_PP2_HDR_LEN + blen;
	if (total > PX_PIN_MAX)
		return bad(why, "v2-too-long");
	if (n < total)
		return PX_PIN_NEED;
	out->version = 2;
	out->len = total;
	if ((p[12] & 0x0f) == PX_PP2_CMD_LOCAL) {
		/* 2.2: LOCAL keeps the real endpoints; the block, family included, is ignored */
		out->local = true;
		return PX_PIN_DONE;
	}
	if (p[13] == PX_PP2_TCP4) {
		af = AF_INET;
		alen = 4;
	} else if (p[13] == PX_PP2_TCP6) {
		af = AF_INET6;
		alen = 16;
	} else {
		return bad(why, "v2-family"); /* UNSPEC, UNIX, UDP: not an SMTP client */
	}
	if (blen < 2 * alen + 4)
		return bad(why, "v2-short-block");
	if (inet_ntop(af, p + PX_PP2_HDR_LEN, out->src, sizeof(out->src)) == NULL ||
	    inet_ntop(af, p + PX_PP2_HDR_LEN + alen, out->dst, sizeof(out->dst)) == NULL)
		return bad(why, "v2-address");
	off = PX_PP2_HDR_LEN + 2 * alen;
	out->sport = (unsigned)p[off] << 8 | p[off + 1];
	out->dport = (unsigned)p[off + 2] << 8 | p[off + 3];
	/* TLVs (2.2.7): each must lie wholly inside the block; their values are not used */
	for (off += 4; off < total;) {
		size_t tl;

		if (total - off < PX_PP2_TLV_HDR)
			return bad(why, "v2-tlv");
		tl = (size_t)p[off + 1] << 8 | p[off + 2];
		if (tl > total - off - PX_PP2_TLV_HDR)
			return bad(why, "v2-tlv");
		off += PX_PP2_TLV_HDR + tl;
	}
	out->local = false;
	return PX_PIN_DONE;
}

enum px_pin_status
px_pin_parse(const char *p, size_t n, struct px_pin *out, const char **why)
{
	*why = NULL;
	if (n == 0)
		return PX_PIN_NEED;
	if (p[0] == PX_PP1_PREFIX[0])
		return parse_v1(p, n, out, why);
	if (p[0] == PX_PP2_SIG[0])
		return parse_v2((const unsigned char *)p, n, out, why);
	return bad(why, "not-a-proxy-header");
}
