/*
 * spf_macro.c - RFC 7208 section 7 macro-string expansion.
 *
 * Everything is bounded: a letter's value is at most MOAT_SPF_MACRO_VALUE_MAX bytes (longer is an
 * error, never cut), the digit transformer is capped at 128 parts (RFC 7208 7.3 requires at least
 * 128), the output never passes outmax. Bytes of 8-bit local parts are copied as bytes, or
 * %-escaped by the upper-case letters; nothing here is signed-char arithmetic (libspf2's
 * CVE-2021-33912/33913 were in exactly that spot).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "spf_macro.h"

#define PARTS_MAX (MOAT_SPF_MACRO_VALUE_MAX + 1)

struct outbuf {
	char *p;
	size_t n, max; /* max: room for data, excluding the NUL */
	bool over;
};

/* out_put - append bytes, or mark overflow. */
static void
out_put(struct outbuf *o, const char *s, size_t len)
{
	if (o->over)
		return;
	if (len > o->max - o->n) {
		o->over = true;
		return;
	}
	if (o->p != NULL)
		memcpy(o->p + o->n, s, len);
	o->n += len;
}

/* is_delim - RFC 7208 7.1 delimiter. */
static bool
is_delim(char c)
{
	return c != '\0' && strchr(".-+,/_=", c) != NULL;
}

/* letter_value - the value of LETTER into buf; length, or -1 if unknown or too long. */
static long
letter_value(const struct moat_spf_macro_ctx *ctx, char letter, bool exp, char *buf, size_t len)
{
	const char *s = NULL;
	size_t n;
	int w;

	switch (letter) {
	case 's':
		w = snprintf(buf, len, "%s@%s", ctx->local ? ctx->local : "",
		    ctx->sender_domain ? ctx->sender_domain : "");
		return (w < 0 || (size_t)w >= len) ? -1 : w;
	case 'l':
		s = ctx->local;
		break;
	case 'o':
		s = ctx->sender_domain;
		break;
	case 'd':
		s = ctx->domain;
		break;
	case 'h':
		s = ctx->helo;
		break;
	case 'i':
		if (ctx->client == NULL)
			return -1;
		if (ctx->client->v4) {
			const uint8_t *b = ctx->client->bytes + 12;
			w = snprintf(buf, len, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
		} else {
			/* RFC 7208 7.4 writes the nibbles in upper case */
			static const char hex[] = "0123456789ABCDEF";
			size_t i, o = 0;
			if (len < 64)
				return -1;
			for (i = 0; i < 16; i++) {
				buf[o++] = hex[ctx->client->bytes[i] >> 4];
				buf[o++] = '.';
				buf[o++] = hex[ctx->client->bytes[i] & 15];
				buf[o++] = '.';
			}
			buf[o - 1] = '\0';
			w = (int)(o - 1);
		}
		return (w < 0 || (size_t)w >= len) ? -1 : w;
	case 'v':
		s = (ctx->client != NULL && ctx->client->v4) ? "in-addr" : "ip6";
		break;
	case 'p':
		if (ctx->validated_name == NULL || ctx->validated_name(ctx->arg, buf, len) != 0)
			s = "unknown";
		else
			return (long)strlen(buf);
		break;
	case 'c':
		if (!exp || ctx->client == NULL)
			return -1;
		moat_addr_format(ctx->client, buf, len);
		return (long)strlen(buf);
	case 'r':
		if (!exp)
			return -1;
		s = ctx->receiver ? ctx->receiver : "unknown";
		break;
	case 't':
		if (!exp)
			return -1;
		w = snprintf(buf, len, "%lld", (long long)ctx->now);
		return (w < 0 || (size_t)w >= len) ? -1 : w;
	default:
		return -1;
	}
	if (s == NULL)
		s = "";
	n = strlen(s);
	if (n >= len)
		return -1;
	memcpy(buf, s, n + 1);
	return (long)n;
}

/* valid_letter - may this letter appear here (RFC 7208 7.1: c, r, t only in exp)? */
static bool
valid_letter(char l, bool exp)
{
	if (l == '\0')
		return false; /* strchr() would find the terminator */
	if (strchr("slodiphv", l) != NULL)
		return true;
	return exp && strchr("crt", l) != NULL;
}

/* transform - split, reverse, keep the right-most DIGITS parts, join with '.', escape if URL. */
static void
transform(struct outbuf *o, const char *v, size_t vlen, unsigned digits, bool rev,
    const char *delims, bool url)
{
	uint16_t st[PARTS_MAX], en[PARTS_MAX]; /* vlen <= MOAT_SPF_MACRO_VALUE_MAX */
	size_t nparts = 0, i, first, k;
	size_t s = 0;

	for (i = 0; i <= vlen; i++) {
		bool d = i == vlen;
		if (!d)
			d = delims[0] ? (v[i] != '\0' && strchr(delims, v[i]) != NULL)
				      : v[i] == '.';
		if (d) {
			st[nparts] = (uint16_t)s;
			en[nparts] = (uint16_t)i;
			nparts++;
			s = i + 1;
		}
	}
	if (rev) {
		for (i = 0; i < nparts / 2; i++) {
			uint16_t t = st[i];
			st[i] = st[nparts - 1 - i];
			st[nparts - 1 - i] = t;
			t = en[i];
			en[i] = en[nparts - 1 - i];
			en[nparts - 1 - i] = t;
		}
	}
	first = (digits > 0 && digits < nparts) ? nparts - digits : 0;
	for (k = first; k < nparts; k++) {
		if (k > first)
			out_put(o, ".", 1);
		if (!url) {
			out_put(o, v + st[k], (size_t)(en[k] - st[k]));
			continue;
		}
		for (i = st[k]; i < en[k]; i++) {
			unsigned char c = (unsigned char)v[i];
			/* RFC 3986 unreserved characters stay; everything else is %XX. */
			if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
			    c == '~') {
				out_put(o, (const char *)&v[i], 1);
			} else {
				char esc[4];
				snprintf(esc, sizeof(esc), "%%%02X", c);
				out_put(o, esc, 3);
			}
		}
	}
}

long
moat_spf_macro_expand(const struct moat_spf_macro_ctx *ctx, const char *in, size_t inlen, bool exp,
    char *out, size_t outmax)
{
	struct outbuf o = { .p = ctx ? out : NULL,
		.n = 0,
		.max = (ctx && outmax) ? outmax - 1 : SIZE_MAX };
	char value[MOAT_SPF_MACRO_VALUE_MAX + 1];
	size_t i = 0;

	if (ctx != NULL && (out == NULL || outmax == 0))
		return MOAT_SPF_MACRO_TOOLONG;
	while (i < inlen) {
		unsigned char c = (unsigned char)in[i];
		if (c != '%') {
			/* macro-literal = %x21-24 / %x26-7E; a space is allowed in explanations. */
			if (c < 0x21 || c > 0x7e) {
				if (!(exp && c == ' '))
					return MOAT_SPF_MACRO_SYNTAX;
			}
			out_put(&o, (const char *)&in[i], 1);
			i++;
			continue;
		}
		if (i + 1 >= inlen)
			return MOAT_SPF_MACRO_SYNTAX;
		switch (in[i + 1]) {
		case '%':
			out_put(&o, "%", 1);
			i += 2;
			continue;
		case '_':
			out_put(&o, " ", 1);
			i += 2;
			continue;
		case '-':
			out_put(&o, "%20", 3);
			i += 2;
			continue;
		case '{':
			break;
		default:
			return MOAT_SPF_MACRO_SYNTAX;
		}
		i += 2;
		{
			char letter, lower;
			unsigned digits = 0;
			bool rev = false, url, anydigit = false;
			char delims[8];
			size_t nd = 0;
			long vlen;

			if (i >= inlen)
				return MOAT_SPF_MACRO_SYNTAX;
			letter = in[i++];
			lower =
			    (letter >= 'A' && letter <= 'Z') ? (char)(letter - 'A' + 'a') : letter;
			url = letter != lower;
			if (!valid_letter(lower, exp))
				return MOAT_SPF_MACRO_SYNTAX;
			while (i < inlen && in[i] >= '0' && in[i] <= '9') {
				anydigit = true;
				if (digits < 1000)
					digits = digits * 10 + (unsigned)(in[i] - '0');
				i++;
			}
			if (anydigit && digits == 0)
				return MOAT_SPF_MACRO_SYNTAX; /* RFC 7208 7.1: zero is a syntax error */
			if (digits > 128)
				digits = 128;
			if (i < inlen && (in[i] == 'r' || in[i] == 'R')) {
				rev = true;
				i++;
			}
			while (i < inlen && is_delim(in[i])) {
				if (nd < sizeof(delims) - 1 && memchr(delims, in[i], nd) == NULL)
					delims[nd++] = in[i];
				i++;
			}
			delims[nd] = '\0';
			if (i >= inlen || in[i] != '}')
				return MOAT_SPF_MACRO_SYNTAX;
			i++;
			if (ctx == NULL)
				continue;
			vlen = letter_value(ctx, lower, exp, value, sizeof(value));
			if (vlen < 0) {
				/* keep parsing: a syntax error later in the string still wins */
				o.over = true;
				continue;
			}
			transform(&o, value, (size_t)vlen, digits, rev, delims, url);
		}
	}
	if (o.over)
		return MOAT_SPF_MACRO_TOOLONG;
	if (ctx != NULL)
		out[o.n] = '\0';
	return (long)o.n;
}

const char *
moat_spf_truncate_domain(const char *name)
{
	size_t len = strlen(name);

	while (len > 253) {
		const char *dot = strchr(name, '.');
		if (dot == NULL)
			return name + len; /* one label longer than 253: nothing is left */
		len -= (size_t)(dot + 1 - name);
		name = dot + 1;
	}
	return name;
}
