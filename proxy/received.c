/*
 * received.c - the proxy's Received header field (see received.h). Postfix's smtpd writes the same
 * layout, so log parsers and people reading headers find the usual fields where they expect them.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "received.h"

struct out {
	char *p;
	size_t len, used;
	bool full;
};

/* put - append formatted text; remembers when it did not fit. */
static void __attribute__((format(printf, 2, 3))) put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->p + o->used, o->len - o->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->len - o->used) {
		o->full = true;
		return;
	}
	o->used += (size_t)n;
}

/*
 * neuter - copy client-chosen text with anything that could end a comment or a field, or is not
 * printable ASCII, replaced by '?' (Postfix neuters HELO the same way). At most len - 1 bytes.
 */
static void
neuter(char *out, size_t len, const char *in)
{
	size_t i;

	for (i = 0; in[i] != '\0' && i + 1 < len; i++) {
		unsigned char c = (unsigned char)in[i];

		out[i] = c < 0x21 || c > 0x7e || strchr("<>()\\\";@", c) != NULL ? '?' : (char)c;
	}
	out[i] = '\0';
}

size_t
px_received_format(char *out, size_t len, const struct px_received *r)
{
	struct out o = { out, len, 0, false };
	const struct moat_tls_info *tls = r->tls != NULL && r->tls->active ? r->tls : NULL;
	char helo[256], name[256], by[256], date[64];
	struct tm tm;

	if (len == 0)
		return 0;
	neuter(name, sizeof(name), r->name != NULL && r->name[0] != '\0' ? r->name : "unknown");
	neuter(helo, sizeof(helo), r->helo != NULL && r->helo[0] != '\0' ? r->helo : name);
	neuter(by, sizeof(by), r->by);
	if (localtime_r(&r->when, &tm) == NULL ||
	    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z (%Z)", &tm) == 0)
		return 0;
	/* RFC 5321 4.1.3: an IPv6 address literal carries its tag */
	put(&o, "Received: from %s (%s [%s%s])\r\n", helo, name,
	    strchr(r->addr, ':') != NULL ? "IPv6:" : "", r->addr);
	if (tls != NULL) {
		put(&o, "\t(using %s with cipher %s (%u/%u bits))\r\n", tls->protocol, tls->cipher,
		    tls->bits, tls->alg_bits != 0 ? tls->alg_bits : tls->bits);
		if (tls->peer_fingerprint[0] != '\0')
			put(&o, "\t(Client certificate SHA-256 fingerprint %s)\r\n",
			    tls->peer_fingerprint);
		else if (r->client_cert_requested)
			put(&o, "\t(Client did not present a certificate)\r\n");
		else
			put(&o, "\t(No client certificate requested)\r\n");
	}
	/* RFC 3848: ESMTPS is ESMTP over TLS; it names no TLS variant of plain SMTP */
	put(&o, "\tby %s (mxmoat) with %s id %s;\r\n", by,
	    r->esmtp ? (tls != NULL ? "ESMTPS" : "ESMTP") : "SMTP", r->id);
	put(&o, "\t%s\r\n", date);
	return o.full ? 0 : o.used;
}
