/*
 * dmarc_failure.c - DMARC failure reports (see dmarc_failure.h).
 *
 * Owns the limit table (a fixed array of hashed keys with their hour and count: its memory is
 * bounded whatever a flood of forged From domains does). Hands out reports as malloc'd text.
 */
#include "config.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "auth.h"
#include "dmarc_failure.h"

#define LIMIT_PROBE 8 /* slots looked at per key */

/* ---- fo= ---- */

unsigned
moat_dfr_fo_parse(const char *fo, size_t len)
{
	unsigned bits = 0;
	size_t i = 0;

	while (i < len) {
		size_t s = i, e;
		while (i < len && fo[i] != ':')
			i++;
		e = i++;
		while (s < e && (fo[s] == ' ' || fo[s] == '\t'))
			s++;
		while (e > s && (fo[e - 1] == ' ' || fo[e - 1] == '\t'))
			e--;
		if (e - s != 1)
			continue;
		switch (fo[s]) {
		case '0':
			bits |= MOAT_DFR_FO_ALL;
			break;
		case '1':
			bits |= MOAT_DFR_FO_ANY;
			break;
		case 'd':
		case 'D':
			bits |= MOAT_DFR_FO_DKIM;
			break;
		case 's':
		case 'S':
			bits |= MOAT_DFR_FO_SPF;
			break;
		default:
			break;
		}
	}
	return bits ? bits : MOAT_DFR_FO_ALL;
}

/* dkim_failed - a signature that failed evaluation (fo=d), and its index; -1 when none. */
static int
dkim_failed(const struct moat_auth_results *res)
{
	for (size_t i = 0; i < res->ndkim; i++)
		if (res->dkim[i].result == MOAT_DKIM_FAIL ||
		    res->dkim[i].result == MOAT_DKIM_PERMERROR)
			return (int)i;
	return -1;
}

bool
moat_dfr_due(const struct moat_auth_results *res)
{
	const struct moat_dmarc_eval *d = &res->dmarc;
	unsigned fo;

	if (d->policy_domain[0] == '\0' || d->rec.ruf[0] == '\0' ||
	    (d->result != MOAT_DMARC_PASS && d->result != MOAT_DMARC_FAIL))
		return false;
	fo = moat_dfr_fo_parse(d->rec.fo, strlen(d->rec.fo));
	return ((fo & MOAT_DFR_FO_ALL) && d->result == MOAT_DMARC_FAIL) ||
	    ((fo & MOAT_DFR_FO_ANY) && !(d->spf_aligned && d->dkim_aligned)) ||
	    ((fo & MOAT_DFR_FO_DKIM) && dkim_failed(res) >= 0) ||
	    ((fo & MOAT_DFR_FO_SPF) && res->spf_mailfrom.result == MOAT_SPF_FAIL);
}

/* ---- mailto: lists (RFC 9990 3) ---- */

/* uri_size_limit - "10m" and the like (k, m, g, t units); 0 when absent or bad. */
static uint64_t
uri_size_limit(const char *s, size_t n)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < n && isdigit((unsigned char)s[i]) && v < UINT64_MAX / 10)
		v = v * 10 + (uint64_t)(s[i++] - '0');
	if (i == 0)
		return 0;
	if (i < n) {
		const char *units = "kmgt", *u = strchr(units, tolower((unsigned char)s[i]));
		if (u == NULL || *u == '\0' || i + 1 != n)
			return 0;
		for (const char *p = units; p <= u; p++)
			v = v > UINT64_MAX / 1024 ? UINT64_MAX : v * 1024;
	}
	return v;
}

/* hexval - one hex digit, or -1. */
static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* uri_addr - the address of one mailto: URI of N bytes, percent-decoded, into OUT; -1 when it
 * is not one address we can send to (no '@', a byte outside printable ASCII, <, >, a space). */
static int
uri_addr(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;
	const char *at;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
			i += 2;
		}
		if (c <= ' ' || c >= 127 || c == '<' || c == '>' || c == ',' || c == '?' ||
		    o + 1 >= outlen)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	at = strchr(out, '@');
	return at == NULL || at == out || at[1] == '\0' || strchr(at + 1, '@') != NULL ? -1 : 0;
}

int
moat_dmarc_uri_each(const char *list, moat_dmarc_uri_fn fn, void *arg)
{
	const char *p = list;

	while (*p != '\0') {
		const char *end = strchr(p, ','), *bang;
		size_t n;
		char addr[MOAT_DFR_ADDR_MAX];
		uint64_t limit = 0;
		int rc;

		if (end == NULL)
			end = p + strlen(p);
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		n = (size_t)(end - p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n > 7 && strncasecmp(p, "mailto:", 7) == 0) {
			p += 7;
			n -= 7;
			if ((bang = memchr(p, '!', n)) != NULL) {
				limit = uri_size_limit(bang + 1, (size_t)(p + n - bang - 1));
				n = (size_t)(bang - p);
			}
			if (uri_addr(p, n, addr, sizeof(addr)) == 0 &&
			    (rc = fn(addr, limit, arg)) != 0)
				return rc;
		}
		p = *end == ',' ? end + 1 : end;
	}
	return 0;
}

/* ---- limits ---- */

struct limit_slot {
	uint64_t hash; /* 0: free */
	int64_t hour;
	unsigned n;
};

struct moat_dfr_limit {
	pthread_mutex_t lock;
	struct limit_slot slot[MOAT_DFR_LIMIT_SLOTS];
};

struct moat_dfr_limit *
moat_dfr_limit_new(void)
{
	struct moat_dfr_limit *l = calloc(1, sizeof(*l));

	if (l != NULL)
		pthread_mutex_init(&l->lock, NULL);
	return l;
}

void
moat_dfr_limit_free(struct moat_dfr_limit *l)
{
	if (l == NULL)
		return;
	pthread_mutex_destroy(&l->lock);
	free(l);
}

/* key_hash - FNV-1a of KIND, NUL, lower-cased KEY; never 0 (a free slot). */
static uint64_t
key_hash(const char *kind, const char *key)
{
	uint64_t h = 14695981039346656037ULL;

	for (const char *p = kind; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h *= 1099511628211ULL;
	for (const char *p = key; *p; p++)
		h = (h ^ (unsigned char)tolower((unsigned char)*p)) * 1099511628211ULL;
	return h ? h : 1;
}

bool
moat_dfr_limit_take(struct moat_dfr_limit *l, const char *kind, const char *key, unsigned max,
    int64_t now)
{
	uint64_t h = key_hash(kind, key);
	int64_t hour = now / MOAT_DFR_WINDOW_S;
	struct limit_slot *use = NULL;
	bool ok = false;

	pthread_mutex_lock(&l->lock);
	for (unsigned i = 0; i < LIMIT_PROBE; i++) {
		struct limit_slot *s = &l->slot[(h + i) % MOAT_DFR_LIMIT_SLOTS];
		if (s->hash == h) {
			use = s;
			break;
		}
		if (use == NULL && (s->hash == 0 || s->hour != hour))
			use = s; /* free, or counting an hour gone by */
	}
	if (use != NULL) {
		if (use->hash != h || use->hour != hour) {
			use->hash = h;
			use->hour = hour;
			use->n = 0;
		}
		if (use->n < max) {
			use->n++;
			ok = true;
		}
	}
	pthread_mutex_unlock(&l->lock);
	return ok;
}

/* ---- the report ---- */

/* Recipient fields: their local-parts are redacted; Bcc ones are left out (RFC 6591 4). */
static const char *const redact_fields[] = { "To", "Cc", "Resent-To", "Resent-Cc", "Delivered-To",
	"X-Original-To", "Received", NULL };
static const char *const drop_fields[] = { "Bcc", "Resent-Bcc", NULL };

/* field_is - does the field at F (LEN bytes) have one of NAMES? */
static bool
field_is(const char *f, size_t len, const char *const names[])
{
	for (size_t i = 0; names[i] != NULL; i++) {
		size_t n = strlen(names[i]);
		if (len > n && strncasecmp(f, names[i], n) == 0 &&
		    (f[n] == ':' || f[n] == ' ' || f[n] == '\t'))
			return true;
	}
	return false;
}

/* local_part_char - a byte that can be in a local-part as addresses are written in headers. */
static bool
local_part_char(unsigned char c)
{
	return c > ' ' && c < 127 && strchr("<>()[]:;,\"@\\", c) == NULL;
}

/* put_redacted - field F of LEN bytes into OUT, each local-part before an '@' as "redacted". */
static void
put_redacted(FILE *out, const char *f, size_t len)
{
	size_t done = 0;

	for (size_t i = 0; i < len; i++) {
		size_t s = i;
		if (f[i] != '@')
			continue;
		while (s > done && local_part_char((unsigned char)f[s - 1]))
			s--;
		if (s == i)
			continue;
		fwrite(f + done, 1, s - done, out);
		fputs("redacted", out);
		done = i;
	}
	fwrite(f + done, 1, len - done, out);
}

/* put_headers - the header fields, redacted, each ending in CRLF. */
static void
put_headers(FILE *out, const char *h, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t s = i;
		/* a field runs to the CRLF not followed by a continuation line */
		for (;;) {
			const char *nl = memchr(h + i, '\n', len - i);
			i = nl ? (size_t)(nl - h) + 1 : len;
			if (i >= len || (h[i] != ' ' && h[i] != '\t'))
				break;
		}
		if (field_is(h + s, i - s, drop_fields))
			continue;
		if (field_is(h + s, i - s, redact_fields))
			put_redacted(out, h + s, i - s);
		else
			fwrite(h + s, 1, i - s, out);
	}
}

/* put_clean - S with anything but printable ASCII as '?': envelope text in a report field. */
static void
put_clean(FILE *out, const char *s)
{
	for (; *s; s++)
		fputc((unsigned char)*s >= ' ' && (unsigned char)*s < 127 ? *s : '?', out);
}

/* delivery_result - RFC 6591 3.1 Delivery-Result from the verdict. */
static const char *
delivery_result(enum moat_action a)
{
	switch (a) {
	case MOAT_REJECT:
		return "reject";
	case MOAT_QUARANTINE:
		return "spam";
	case MOAT_DISCARD:
		return "policy";
	case MOAT_TEMPFAIL:
		return "other";
	default:
		return "delivered";
	}
}

char *
moat_dfr_build(const struct moat_dfr_input *in)
{
	const struct moat_auth_results *res = in->res;
	const struct moat_dmarc_eval *d = &res->dmarc;
	unsigned char rnd[8] = { 0 };
	char boundary[64], date[64], *p = NULL;
	size_t len = 0;
	time_t t = (time_t)in->time;
	struct tm tm;
	int fd = dkim_failed(res);
	FILE *out;

	/* a boundary the original header cannot be made to contain */
	if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
		memcpy(rnd, &in->time,
		    sizeof(rnd) < sizeof(in->time) ? sizeof(rnd) : sizeof(in->time));
	snprintf(boundary, sizeof(boundary), "=_mxmoat_afrf_%02x%02x%02x%02x%02x%02x%02x%02x",
	    rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", gmtime_r(&t, &tm));
	if ((out = open_memstream(&p, &len)) == NULL)
		return NULL;
	fprintf(out,
	    "Content-Type: multipart/report; report-type=feedback-report;\r\n"
	    "\tboundary=\"%s\"\r\n\r\n"
	    "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
	    "This is a DMARC failure report (RFC 9991) for a message from %s\r\n"
	    "that claimed to be from %s, received %s.\r\n"
	    "Only its header is included, recipient addresses redacted.\r\n\r\n"
	    "--%s\r\nContent-Type: message/feedback-report\r\n\r\n"
	    "Feedback-Type: auth-failure\r\nUser-Agent: %s\r\nVersion: 1\r\n"
	    "Auth-Failure: dmarc\r\n",
	    boundary, boundary, in->client_addr ? in->client_addr : "an unknown address",
	    d->from_domain, date, boundary, in->user_agent);
	fputs("Original-Mail-From: <", out);
	put_clean(out, in->mail_from ? in->mail_from : "");
	fprintf(out, ">\r\nArrival-Date: %s\r\n", date);
	if (in->client_addr != NULL)
		fprintf(out, "Source-IP: %s\r\n", in->client_addr);
	fprintf(out, "Reported-Domain: %s\r\nDelivery-Result: %s\r\nIdentity-Alignment: %s\r\n",
	    d->from_domain, delivery_result(res->verdict.action),
	    d->dkim_aligned && d->spf_aligned ? "dkim, spf"
		: d->dkim_aligned             ? "dkim"
		: d->spf_aligned              ? "spf"
					      : "none");
	if (fd >= 0 && res->dkim[fd].domain[0])
		fprintf(out, "DKIM-Domain: %s\r\nDKIM-Selector: %s\r\n", res->dkim[fd].domain,
		    res->dkim[fd].selector);
	fprintf(out, "Authentication-Results: %s\r\n\r\n", res->authres_folded);
	fprintf(out, "--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary);
	put_headers(out, in->headers, in->headers_len);
	fprintf(out, "\r\n--%s--\r\n", boundary);
	if (ferror(out)) {
		fclose(out);
		free(p);
		return NULL;
	}
	if (fclose(out) != 0) {
		free(p);
		return NULL;
	}
	return p;
}
