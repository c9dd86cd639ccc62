/*
 * upstream.h - the backend side: a strict SMTP reply parser (code digits, continuation lines,
 * bounded length and count: Postfix smtpd_proxy.c treats its own filter as hostile too) and the
 * PROXY protocol v1/v2 headers and the XCLIENT command that pass the real client on.
 */
#ifndef PX_UPSTREAM_H
#define PX_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#define PX_REPLY_MAX 4096 /* a whole (multi-line) reply */
#define PX_REPLY_LINES 32 /* lines in one reply */
#define PX_REPLY_LINE_MAX 1000 /* RFC 5321 4.5.3.1.5 says 512; real MTAs stay far below 1000 */

enum px_reply_status {
	PX_REPLY_NEED = 0,
	PX_REPLY_DONE,
	PX_REPLY_BAD
};

struct px_reply {
	char buf[PX_REPLY_MAX]; /* the reply as received, CRLF line ends */
	size_t len;
	size_t line; /* start of the line being read */
	unsigned lines;
	unsigned code;
};

void px_reply_init(struct px_reply *r);

/*
 * px_reply_feed - read bytes of a reply; returns DONE (r->code, r->buf/len hold it; *used says how
 * much of p was consumed), NEED (all used) or BAD (malformed: the backend connection must go).
 */
enum px_reply_status px_reply_feed(struct px_reply *r, const char *p, size_t n, size_t *used);

/* px_reply_has_ext - does an EHLO reply advertise extension NAME (whole keyword)? */
bool px_reply_has_ext(const struct px_reply *r, const char *name);

/*
 * px_xclient_format - "XCLIENT ADDR=.. PORT=.. NAME=.. HELO=.. PROTO=..\r\n" with xtext encoding
 * (Postfix XCLIENT_README); returns its length or 0 if it does not fit.
 */
size_t px_xclient_format(char *out, size_t len, const char *addr, unsigned port, const char *name,
    const char *helo, bool esmtp);

/*
 * px_proxy_format - a PROXY protocol header (v1 text or v2 binary) for a TCP connection from
 * src:sport to dst:dport (numeric IPv4/IPv6); returns its length or 0 on error.
 */
size_t px_proxy_format(char *out, size_t len, int version, const char *src, unsigned sport,
    const char *dst, unsigned dport);

#endif /* PX_UPSTREAM_H */
