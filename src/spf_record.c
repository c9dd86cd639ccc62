/*
 * spf_record.c - the SPF record parser (RFC 7208 4.6, 12): one term at a time into a struct term,
 * with the syntax of identities, domain-specs, CIDR lengths and IP addresses. check_host (spf.c)
 * parses a whole record before it evaluates any term. Owns nothing.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spf_int.h"

/* is_alnum - ASCII only; never the locale's idea. */
static bool
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/*
 * identity_domain_ok - RFC 7208 4.3: a domain that is not a multi-label FQDN with labels of 1..63
 * bytes (or a domain literal) gives "none" without any lookup.
 */
bool
moat__spf_identity_domain_ok(const char *d)
{
	size_t len = strlen(d), label = 0, labels = 0, i;

	if (len > 0 && d[len - 1] == '.')
		len--;
	if (len == 0 || len > MOAT_SPF_DOMAIN_MAX)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)d[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!is_alnum(c) && c != '-' && c != '_')
			return false;
		if (label++ == 0)
			labels++;
		if (label > 63)
			return false;
	}
	return label > 0 && labels >= 2;
}

/* toplabel_ok - RFC 7208 7.1 toplabel: alphanumeric with a letter, or LDH with inner hyphens. */
static bool
toplabel_ok(const char *s, size_t len)
{
	bool alpha = false;
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (is_alpha(c))
			alpha = true;
		else if (c == '-') {
			if (i == 0 || i == len - 1)
				return false;
			alpha = true; /* 1*alphanum "-" *(alphanum / "-") alphanum */
		} else if (!is_alnum(c))
			return false;
	}
	return alpha;
}

/* domain_spec_ok - RFC 7208 7.1: macro-string domain-end; syntax only. */
static bool
domain_spec_ok(const char *s, size_t len)
{
	size_t end = len, dot;

	if (len == 0 || moat_spf_macro_expand(NULL, s, len, false, NULL, 0) < 0)
		return false;
	if (s[end - 1] == '.')
		end--;
	if (end == 0)
		return false;
	if (s[end - 1] == '}')
		return true; /* ends in a macro-expand */
	for (dot = end; dot > 0 && s[dot - 1] != '.'; dot--)
		;
	if (dot == 0)
		return false; /* domain-end needs "." toplabel */
	return toplabel_ok(s + dot, end - dot);
}

/* parse_uint - decimal without leading zeros (RFC 7208 5.6 cidr lengths), at most max. */
static bool
parse_uint(const char *s, size_t len, unsigned max, unsigned *out)
{
	unsigned v = 0;
	size_t i;

	if (len == 0 || len > 3 || (len > 1 && s[0] == '0'))
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/*
 * split_cidr - strip the CIDR suffix from the end of s[0..*len): "[/n][//m]" for a and mx
 * (v4ok and v6ok), "/n" for ip4, "/m" for ip6 (RFC 7208 5.6). false on a malformed length.
 */
static bool
split_cidr(const char *s, size_t *len, bool v4ok, bool v6ok, struct term *t)
{
	size_t n = *len, i;

	t->cidr4 = 32;
	t->cidr6 = 128;
	for (i = n; i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9'; i--)
		;
	if (v4ok && v6ok && i >= 2 && s[i - 1] == '/' && s[i - 2] == '/') {
		if (i == n || !parse_uint(s + i, n - i, 128, &t->cidr6))
			return false;
		n = i - 2;
		for (i = n; i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9'; i--)
			;
	}
	if (i >= 1 && s[i - 1] == '/') {
		if (i == n)
			return false; /* "/" with no digits */
		if (i >= 2 && s[i - 2] == '/')
			return false; /* "//" where it is not allowed */
		if (!parse_uint(s + i, n - i, v4ok ? 32 : 128, v4ok ? &t->cidr4 : &t->cidr6))
			return false;
		n = i - 1;
	}
	*len = n;
	return true;
}

/* parse_ip4 - strict dotted quad (RFC 7208 5.6 qnum: no leading zeros). */
static bool
parse_ip4(const char *s, size_t len, struct moat_addr *out)
{
	unsigned part = 0, val = 0, digits = 0;
	size_t i;

	memset(out, 0, sizeof(*out));
	out->bytes[10] = out->bytes[11] = 0xff;
	out->v4 = true;
	for (i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (digits == 0 || part > 3)
				return false;
			out->bytes[12 + part++] = (uint8_t)val;
			val = 0;
			digits = 0;
			continue;
		}
		if (s[i] < '0' || s[i] > '9' || (digits == 1 && val == 0))
			return false;
		val = val * 10 + (unsigned)(s[i] - '0');
		if (++digits > 3 || val > 255)
			return false;
	}
	return part == 4;
}

/* parse_ip6 - an IPv6 literal via the shared parser (text copied out of the record). */
static bool
parse_ip6(const char *s, size_t len, struct moat_addr *out)
{
	char buf[64];

	if (len == 0 || len >= sizeof(buf) || memchr(s, ':', len) == NULL)
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (moat_addr_parse(buf, out) != 0)
		return false;
	out->v4 = false; /* an ip6: network never matches an IPv4 client, even if ::ffff: */
	return true;
}

/* mech_name - the mechanism (case-insensitive) at s[0..n), or -1. */
static int
mech_name(const char *s, size_t n)
{
	static const struct {
		const char *name;
		enum term_kind kind;
	} mechs[] = {
		{ "all", T_ALL },
		{ "include", T_INCLUDE },
		{ "a", T_A },
		{ "mx", T_MX },
		{ "ptr", T_PTR },
		{ "ip4", T_IP4 },
		{ "ip6", T_IP6 },
		{ "exists", T_EXISTS },
	};
	size_t i;

	for (i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
		if (strlen(mechs[i].name) == n && strncasecmp(mechs[i].name, s, n) == 0)
			return (int)mechs[i].kind;
	return -1;
}

/* moat__spf_parse_term - one term; false on a syntax error (with the reason set). */
bool
moat__spf_parse_term(struct eval *ev, const char *s, size_t n, struct term *t)
{
	size_t i = 0, name_end, rest;
	int kind;

	memset(t, 0, sizeof(*t));
	t->text = s;
	t->textlen = n;
	t->qual = '+';
	/* modifier: name "=" macro-string; name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) */
	if (is_alpha((unsigned char)s[0])) {
		for (i = 1; i < n &&
		     (is_alnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.');
		     i++)
			;
		if (i < n && s[i] == '=') {
			const char *v = s + i + 1;
			size_t vlen = n - i - 1;
			if (i == 8 && strncasecmp(s, "redirect", 8) == 0)
				t->kind = T_REDIRECT;
			else if (i == 3 && strncasecmp(s, "exp", 3) == 0)
				t->kind = T_EXP;
			else
				t->kind = T_OTHER_MOD;
			t->spec = v;
			t->speclen = vlen;
			if (t->kind == T_OTHER_MOD) {
				if (moat_spf_macro_expand(NULL, v, vlen, false, NULL, 0) < 0)
					goto bad;
			} else if (!domain_spec_ok(v, vlen)) {
				goto bad;
			}
			return true;
		}
	}
	i = 0;
	if (strchr("+-~?", s[0]) != NULL) {
		t->qual = s[0];
		i = 1;
	}
	for (name_end = i; name_end < n && is_alnum((unsigned char)s[name_end]); name_end++)
		;
	kind = mech_name(s + i, name_end - i);
	if (kind < 0)
		goto bad;
	t->kind = (enum term_kind)kind;
	rest = n - name_end;
	s += name_end;
	switch (t->kind) {
	case T_ALL:
		if (rest != 0)
			goto bad;
		break;
	case T_INCLUDE:
	case T_EXISTS:
		if (rest < 2 || s[0] != ':' || !domain_spec_ok(s + 1, rest - 1))
			goto bad;
		t->spec = s + 1;
		t->speclen = rest - 1;
		break;
	case T_A:
	case T_MX:
	case T_PTR: /* an optional domain-spec; a and mx may end with a dual CIDR length */
		if (t->kind != T_PTR && !split_cidr(s, &rest, true, true, t))
			goto bad;
		if (rest > 0) {
			if (s[0] != ':' || !domain_spec_ok(s + 1, rest - 1))
				goto bad;
			t->spec = s + 1;
			t->speclen = rest - 1;
		}
		break;
	case T_IP4:
		if (rest < 2 || s[0] != ':' || !split_cidr(s, &rest, true, false, t) ||
		    !parse_ip4(s + 1, rest - 1, &t->ip))
			goto bad;
		break;
	case T_IP6:
		if (rest < 2 || s[0] != ':' || !split_cidr(s, &rest, false, true, t) ||
		    !parse_ip6(s + 1, rest - 1, &t->ip))
			goto bad;
		break;
	default:
		goto bad;
	}
	return true;
bad:
	moat__spf_set_reason(ev, "syntax error in term '%.*s'",
	    (int)(t->textlen > 64 ? 64 : t->textlen), t->text);
	return false;
}
