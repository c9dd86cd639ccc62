/*
 * upstream.c - what the proxy says to and reads from the backend beyond plain commands: the
 * strict reply parser, XCLIENT and PROXY protocol headers. Owns nothing.
 */
#include "config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proxy_proto.h"
#include "upstream.h"

void
px_reply_init(struct px_reply *r)
{
	r->len = r->line = 0;
	r->lines = 0;
	r->code = 0;
}

/* reply_line - check the line at r->buf[r->line..r->len) ending in CRLF; 1 last, 0 more, -1 bad. */
static int
reply_line(struct px_reply *r)
{
	const char *l = r->buf + r->line;
	size_t n = r->len - r->line - 2; /* without CRLF */
	unsigned code;

	if (n < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '5' || l[2] < '0' ||
	    l[2] > '9')
		return -1;
	code = (unsigned)(l[0] - '0') * 100 + (unsigned)(l[1] - '0') * 10 + (unsigned)(l[2] - '0');
	if (r->lines > 0 && code != r->code)
		return -1; /* RFC 5321 4.2.1: same code on every line */
	r->code = code;
	for (size_t i = 3; i < n; i++) {
		unsigned char c = (unsigned char)l[i];

		if (c < 0x20 && c != '\t')
			return -1;
		if (c == 0x7f)
			return -1;
	}
	if (++r->lines > PX_REPLY_LINES)
		return -1;
	if (n == 3 || l[3] == ' ')
		return 1;
	if (l[3] == '-')
		return 0;
	return -1;
}

enum px_reply_status
px_reply_feed(struct px_reply *r, const char *p, size_t n, size_t *used)
{
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		int rc;

		if (r->len >= sizeof(r->buf) || r->len - r->line >= PX_REPLY_LINE_MAX)
			return PX_REPLY_BAD;
		r->buf[r->len++] = c;
		if (c == '\0')
			return PX_REPLY_BAD;
		if (c != '\n')
			continue;
		if (r->len - r->line < 2 || r->buf[r->len - 2] != '\r')
			return PX_REPLY_BAD; /* bare LF */
		if (memchr(r->buf + r->line, '\r', r->len - r->line - 2) != NULL)
			return PX_REPLY_BAD; /* bare CR inside */
		rc = reply_line(r);
		if (rc < 0)
			return PX_REPLY_BAD;
		r->line = r->len;
		if (rc == 1) {
			*used = i + 1;
			return PX_REPLY_DONE;
		}
	}
	*used = n;
	return PX_REPLY_NEED;
}

bool
px_reply_has_ext(const struct px_reply *r, const char *name)
{
	size_t nl = strlen(name);
	size_t pos = 0;

	while (pos < r->len) {
		const char *l = r->buf + pos;
		const char *e = memchr(l, '\n', r->len - pos);
		size_t ll = e ? (size_t)(e - l) + 1 : r->len - pos;

		if (pos > 0 && ll >= 4 + nl + 2 && strncasecmp(l + 4, name, nl) == 0 &&
		    (l[4 + nl] == ' ' || l[4 + nl] == '\r'))
			return true;
		pos += ll;
	}
	return false;
}

/* xtext - RFC 3461 4: '+', '=', and octets outside 33..126 as +HH. 0 if it does not fit. */
static size_t
xtext(char *out, size_t len, const char *in)
{
	size_t o = 0;

	for (; *in != '\0'; in++) {
		unsigned char c = (unsigned char)*in;

		if (c < 33 || c > 126 || c == '+' || c == '=') {
			if (o + 3 >= len)
				return 0;
			snprintf(out + o, 4, "+%02X", c);
			o += 3;
		} else {
			if (o + 1 >= len)
				return 0;
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return o;
}

size_t
px_xclient_format(char *out, size_t len, const char *addr, unsigned port, const char *name,
    const char *helo, bool esmtp)
{
	char xa[128], xn[512], xh[1024];
	int n;

	if (xtext(xa, sizeof(xa), addr) == 0 && *addr != '\0')
		return 0;
	if (xtext(xn, sizeof(xn), name && *name ? name : "[UNAVAILABLE]") == 0)
		return 0;
	if (helo != NULL && *helo != '\0') {
		if (xtext(xh, sizeof(xh), helo) == 0)
			return 0;
	} else {
		snprintf(xh, sizeof(xh), "[UNAVAILABLE]");
	}
	n = snprintf(out, len, "XCLIENT ADDR=%s%s PORT=%u NAME=%s HELO=%s PROTO=%s\r\n",
	    strchr(addr, ':') ? "IPV6:" : "", xa, port, xn, xh, esmtp ? "ESMTP" : "SMTP");
	if (n < 0 || (size_t)n >= len)
		return 0;
	return (size_t)n;
}

size_t
px_proxy_format(char *out, size_t len, int version, const char *src, unsigned sport,
    const char *dst, unsigned dport)
{
	bool v6 = strchr(src, ':') != NULL;
	unsigned char a[16], b[16];

	if (inet_pton(v6 ? AF_INET6 : AF_INET, src, a) != 1 ||
	    inet_pton(v6 ? AF_INET6 : AF_INET, dst, b) != 1)
		return 0;
	if (version == 1) {
		int n = snprintf(out, len, PX_PP1_PREFIX "%s %s %s %u %u\r\n", v6 ? "TCP6" : "TCP4",
		    src, dst, sport, dport);

		return n < 0 || (size_t)n >= len ? 0 : (size_t)n;
	}
	/* v2: signature, PROXY command, TCP over IPv4 or IPv6, then the address block */
	size_t alen = v6 ? 16 : 4, plen = v6 ? PX_PP2_TCP6_LEN : PX_PP2_TCP4_LEN;
	unsigned char *o = (unsigned char *)out;

	if (len < PX_PP2_HDR_LEN + plen)
		return 0;
	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): a binary signature, not a string */
	memcpy(o, PX_PP2_SIG, PX_PP2_SIG_LEN);
	o[12] = PX_PP2_VERSION | PX_PP2_CMD_PROXY;
	o[13] = v6 ? PX_PP2_TCP6 : PX_PP2_TCP4;
	o[14] = (unsigned char)(plen >> 8);
	o[15] = (unsigned char)(plen & 0xff);
	o += PX_PP2_HDR_LEN;
	memcpy(o, a, alen);
	memcpy(o + alen, b, alen);
	o[2 * alen] = (unsigned char)(sport >> 8);
	o[2 * alen + 1] = (unsigned char)(sport & 0xff);
	o[2 * alen + 2] = (unsigned char)(dport >> 8);
	o[2 * alen + 3] = (unsigned char)(dport & 0xff);
	return PX_PP2_HDR_LEN + plen;
}
