/*
 * spf.c - RFC 7208 check_host() and the MAIL FROM / HELO identities.
 *
 * A record is parsed completely before any term is evaluated (RFC 7208 4.6: a syntax error
 * anywhere is a permerror, even after a matching term), then evaluated left to right. Owns
 * nothing past one call: the record text and the term array live for one check_host level; the
 * result and its trace belong to the caller. The counters of DNS-querying terms and of void
 * lookups are shared by the whole evaluation, includes and redirects included.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "spf.h"
#include "spf_macro.h"

#define SPF_DEPTH_MAX 12 /* include/redirect nesting; the lookup limit ends it sooner */
#define SPF_MX_MAX 10 /* RFC 7208 4.6.4 */
#define SPF_PTR_MAX 10 /* RFC 7208 4.6.4 */
#define SPF_EXPAND_MAX 4096 /* a domain-spec after expansion, before truncation to 253 */

enum term_kind {
	T_ALL,
	T_INCLUDE,
	T_A,
	T_MX,
	T_PTR,
	T_IP4,
	T_IP6,
	T_EXISTS,
	T_REDIRECT,
	T_EXP,
	T_OTHER_MOD,
};

static const char *const kind_names[] = {
	"all",
	"include",
	"a",
	"mx",
	"ptr",
	"ip4",
	"ip6",
	"exists",
	"redirect",
	"exp",
	"modifier",
};

struct term {
	enum term_kind kind;
	char qual; /* '+', '-', '~', '?' */
	const char *text; /* the whole term as written (for traces) */
	size_t textlen;
	const char *spec; /* domain-spec (or NULL: the current domain) */
	size_t speclen;
	unsigned cidr4, cidr6; /* a, mx, ip4, ip6 */
	struct moat_addr ip; /* ip4, ip6 */
};

struct eval {
	struct moat_dns *dns;
	const struct moat_addr *client;
	const char *helo;
	char local[MOAT_SPF_LOCAL_MAX + 1];
	char sender_domain[MOAT_SPF_DOMAIN_MAX + 2];
	const struct moat_spf_opts *opts;
	struct moat_spf_result *out;
	time_t now;
	unsigned lookups, voids;
	/* validated PTR names of the client (ptr mechanism and %{p}), computed once */
	bool ptr_done;
	size_t nptr;
	char ptr_names[SPF_PTR_MAX][MOAT_SPF_DOMAIN_MAX + 2];
	const char *cur_domain; /* for %{p}: names under it are preferred */
	long long deadline_ms; /* CLOCK_MONOTONIC; past it every query is a tempfail */
	bool timed_out;
};

const char *
moat_spf_result_name(enum moat_spf_res res)
{
	static const char *const names[] = {
		"none",
		"neutral",
		"pass",
		"fail",
		"softfail",
		"temperror",
		"permerror",
	};
	return (unsigned)res < sizeof(names) / sizeof(names[0]) ? names[res] : "?";
}

void
moat_spf_result_clear(struct moat_spf_result *out)
{
	if (out == NULL)
		return;
	free(out->trace);
	out->trace = NULL;
	out->trace_len = 0;
}

/* trace - append one line to the --explain trace (bounded; marks the cut when full). */
static void trace(struct eval *ev, unsigned depth, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
trace(struct eval *ev, unsigned depth, const char *fmt, ...)
{
	struct moat_spf_result *o = ev->out;
	static const char cut[] = "... (trace truncated)\n";
	char line[1024];
	va_list ap;
	int n;
	size_t need;

	if (!ev->opts || !ev->opts->trace)
		return;
	if (o->trace == NULL) {
		o->trace = malloc(MOAT_SPF_TRACE_MAX);
		if (o->trace == NULL)
			return;
		o->trace[0] = '\0';
		o->trace_len = 0;
	}
	n = snprintf(line, sizeof(line), "%*s", (int)(depth * 2), "");
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	/* Text from DNS is hostile: show control and 8-bit bytes as \xNN. */
	need = strlen(line);
	if (o->trace_len + need * 4 + 2 + sizeof(cut) >= MOAT_SPF_TRACE_MAX) {
		if (o->trace_len + sizeof(cut) < MOAT_SPF_TRACE_MAX &&
		    (o->trace_len < sizeof(cut) ||
			strcmp(o->trace + o->trace_len - (sizeof(cut) - 1), cut) != 0)) {
			memcpy(o->trace + o->trace_len, cut, sizeof(cut));
			o->trace_len += sizeof(cut) - 1;
		}
		return;
	}
	for (size_t i = 0; i < need; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c >= 0x7f)
			o->trace_len += (size_t)snprintf(o->trace + o->trace_len, 5, "\\x%02x", c);
		else
			o->trace[o->trace_len++] = (char)c;
	}
	o->trace[o->trace_len++] = '\n';
	o->trace[o->trace_len] = '\0';
}

/* set_reason - record why (first reason wins: it is the root cause). */
static void set_reason(struct eval *ev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
set_reason(struct eval *ev, const char *fmt, ...)
{
	va_list ap;

	if (ev->out->reason[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(ev->out->reason, sizeof(ev->out->reason), fmt, ap);
	va_end(ap);
}

/* mono_ms - a monotonic clock in milliseconds. */
static long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * spf_query - every DNS query of an evaluation goes through here: past the evaluation's time
 * limit (RFC 7208 4.6.4: at least 20 seconds) no more queries are sent and the answer is a
 * tempfail, so a slow hostile server cannot hold a worker for 100+ query timeouts.
 */
static enum moat_dns_status
spf_query(struct eval *ev, const char *name, enum moat_dns_type type, struct moat_dns_answer *ans)
{
	if (mono_ms() > ev->deadline_ms) {
		memset(ans, 0, sizeof(*ans));
		ans->status = MOAT_DNS_TEMPFAIL;
		if (!ev->timed_out) {
			ev->timed_out = true;
			ev->out->reason[0] = '\0';
			set_reason(ev, "SPF evaluation took longer than %u ms",
			    ev->opts && ev->opts->time_limit_ms ? ev->opts->time_limit_ms
								: MOAT_SPF_TIME_LIMIT);
		}
		return MOAT_DNS_TEMPFAIL;
	}
	return moat_dns_query(ev->dns, name, type, ans);
}

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
static bool
identity_domain_ok(const char *d)
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

/* parse_term - one term; false on a syntax error (with the reason set). */
static bool
parse_term(struct eval *ev, const char *s, size_t n, struct term *t)
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
		if (!split_cidr(s, &rest, true, true, t))
			goto bad;
		if (rest > 0) {
			if (s[0] != ':' || !domain_spec_ok(s + 1, rest - 1))
				goto bad;
			t->spec = s + 1;
			t->speclen = rest - 1;
		}
		break;
	case T_PTR:
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
	set_reason(ev, "syntax error in term '%.*s'", (int)(t->textlen > 64 ? 64 : t->textlen),
	    t->text);
	return false;
}

/* addr_in - does the client lie in NET/prefix (same family only)? */
static bool
addr_in(const struct moat_addr *client, const struct moat_addr *net, unsigned prefix)
{
	unsigned bits = net->v4 ? 96 + prefix : prefix, i;

	if (client->v4 != net->v4)
		return false;
	for (i = 0; i < bits / 8; i++)
		if (client->bytes[i] != net->bytes[i])
			return false;
	if (bits % 8) {
		uint8_t mask = (uint8_t)(0xff << (8 - bits % 8));
		if ((client->bytes[i] & mask) != (net->bytes[i] & mask))
			return false;
	}
	return true;
}

/* rr_addr - an A/AAAA record as a moat_addr. */
static void
rr_addr(const struct moat_dns_rr *rr, struct moat_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (rr->len == 4) {
		a->bytes[10] = a->bytes[11] = 0xff;
		memcpy(a->bytes + 12, rr->data, 4);
		a->v4 = true;
	} else if (rr->len == 16) {
		memcpy(a->bytes, rr->data, 16);
	}
}

/* reverse_name - the in-addr.arpa / ip6.arpa name of the client. */
static void
reverse_name(const struct moat_addr *c, char *out, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	int i;

	if (c->v4) {
		snprintf(out, len, "%u.%u.%u.%u.in-addr.arpa", c->bytes[15], c->bytes[14],
		    c->bytes[13], c->bytes[12]);
		return;
	}
	for (i = 15; i >= 0 && o + 4 < len; i--) {
		out[o++] = hex[c->bytes[i] & 15];
		out[o++] = '.';
		out[o++] = hex[c->bytes[i] >> 4];
		out[o++] = '.';
	}
	snprintf(out + o, len - o, "ip6.arpa");
}

/* name_matches - RFC 7208 5.5: NAME equals DOMAIN or ends in "." DOMAIN (case-insensitive). */
static bool
name_matches(const char *name, const char *domain)
{
	size_t n = strlen(name), d = strlen(domain);

	if (d > 0 && domain[d - 1] == '.')
		d--;
	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n == d)
		return strncasecmp(name, domain, n) == 0;
	return n > d && name[n - d - 1] == '.' && strncasecmp(name + n - d, domain, d) == 0;
}

/* client_addrs_match - does NAME resolve (A or AAAA per client family) to the client? */
static enum moat_dns_status
name_has_client(struct eval *ev, const char *name)
{
	struct moat_dns_answer ans;
	enum moat_dns_status st;
	size_t i;
	bool hit = false;

	st = spf_query(ev, name, ev->client->v4 ? MOAT_DNS_A : MOAT_DNS_AAAA, &ans);
	for (i = 0; st == MOAT_DNS_OK && i < ans.n; i++) {
		struct moat_addr a;
		rr_addr(&ans.rr[i], &a);
		if (addr_in(ev->client, &a, a.v4 ? 32 : 128))
			hit = true;
	}
	moat_dns_answer_clear(&ans);
	if (st == MOAT_DNS_OK && !hit)
		return MOAT_DNS_NODATA;
	return st;
}

/* validate_ptr - RFC 7208 5.5: the client's PTR names whose address records lead back to it. */
static void
validate_ptr(struct eval *ev, unsigned depth)
{
	char rev[80];
	struct moat_dns_answer ans;
	size_t i;

	if (ev->ptr_done)
		return;
	ev->ptr_done = true;
	reverse_name(ev->client, rev, sizeof(rev));
	if (spf_query(ev, rev, MOAT_DNS_PTR, &ans) != MOAT_DNS_OK) {
		trace(ev, depth, "PTR %s: %s", rev, moat_dns_status_name(ans.status));
		moat_dns_answer_clear(&ans);
		return;
	}
	/* Only the first 10 names are looked at (RFC 7208 4.6.4). */
	for (i = 0; i < ans.n && i < SPF_PTR_MAX; i++) {
		enum moat_dns_status st = name_has_client(ev, ans.rr[i].data);
		trace(ev, depth, "PTR %s -> %s: %s", rev, ans.rr[i].data,
		    st == MOAT_DNS_OK ? "validated" : "not validated");
		if (st == MOAT_DNS_OK && strlen(ans.rr[i].data) <= MOAT_SPF_DOMAIN_MAX)
			snprintf(ev->ptr_names[ev->nptr++], sizeof(ev->ptr_names[0]), "%s",
			    ans.rr[i].data);
	}
	moat_dns_answer_clear(&ans);
}

/* macro_p - %{p}: a validated name under the current domain if any, else any, else fail. */
static int
macro_p(void *arg, char *out, size_t len)
{
	struct eval *ev = arg;
	size_t i;

	validate_ptr(ev, 0);
	for (i = 0; i < ev->nptr; i++)
		if (ev->cur_domain && name_matches(ev->ptr_names[i], ev->cur_domain))
			break;
	if (i == ev->nptr)
		i = 0;
	if (ev->nptr == 0 || strlen(ev->ptr_names[i]) >= len)
		return -1;
	snprintf(out, len, "%s", ev->ptr_names[i]);
	return 0;
}

/* macro_ctx - the macro values for evaluating DOMAIN. */
static void
macro_ctx(struct eval *ev, const char *domain, struct moat_spf_macro_ctx *m)
{
	memset(m, 0, sizeof(*m));
	m->local = ev->local;
	m->sender_domain = ev->sender_domain;
	m->domain = domain;
	m->helo = ev->helo ? ev->helo : "";
	m->receiver = ev->opts && ev->opts->receiver ? ev->opts->receiver : "unknown";
	m->client = ev->client;
	m->now = ev->now;
	m->validated_name = macro_p;
	m->arg = ev;
	ev->cur_domain = domain;
}

/*
 * target_name - the domain a term queries: its domain-spec expanded and truncated to 253 bytes
 * (RFC 7208 4.8), or the current domain. Returns 0, or -1 (permerror: reason set).
 */
static int
target_name(struct eval *ev, const char *domain, const struct term *t, char *out, size_t outlen)
{
	struct moat_spf_macro_ctx m;
	char buf[SPF_EXPAND_MAX];
	const char *s;
	long n;

	if (t->spec == NULL) {
		snprintf(out, outlen, "%s", domain);
		return 0;
	}
	macro_ctx(ev, domain, &m);
	n = moat_spf_macro_expand(&m, t->spec, t->speclen, false, buf, sizeof(buf));
	if (n < 0) {
		set_reason(ev, "macro expansion of '%.*s' failed",
		    (int)(t->speclen > 64 ? 64 : t->speclen), t->spec);
		return -1;
	}
	s = moat_spf_truncate_domain(buf);
	if (strlen(s) >= outlen || s[0] == '\0') {
		set_reason(ev, "'%.*s' expands to no usable domain",
		    (int)(t->speclen > 64 ? 64 : t->speclen), t->spec);
		return -1;
	}
	snprintf(out, outlen, "%s", s);
	return 0;
}

/* count_lookup - one more DNS-querying term; false past the limit (RFC 7208 4.6.4). */
static bool
count_lookup(struct eval *ev, unsigned depth, const struct term *t)
{
	if (++ev->lookups > MOAT_SPF_LOOKUP_LIMIT) {
		set_reason(ev, "more than %d DNS-querying terms", MOAT_SPF_LOOKUP_LIMIT);
		trace(ev, depth, "%.*s: over the limit of %d DNS-querying terms: permerror",
		    (int)t->textlen, t->text, MOAT_SPF_LOOKUP_LIMIT);
		return false;
	}
	return true;
}

/* count_void - a lookup answered NXDOMAIN or no records; false past the limit. */
static bool
count_void(struct eval *ev, unsigned depth, const char *name)
{
	if (++ev->voids > MOAT_SPF_VOID_LIMIT) {
		set_reason(ev, "more than %d void lookups", MOAT_SPF_VOID_LIMIT);
		trace(ev, depth, "%s: void lookup over the limit of %d: permerror", name,
		    MOAT_SPF_VOID_LIMIT);
		return false;
	}
	return true;
}

/* Results of one mechanism. */
enum mres {
	M_NOMATCH,
	M_MATCH,
	M_TEMPERROR,
	M_PERMERROR
};

static enum moat_spf_res check_host(struct eval *ev, const char *domain, unsigned depth, char *exp,
    size_t explen, char *mech, size_t mechlen, bool *found);

/* dns_status_to_mres - for a lookup whose failure is an error; OK is handled by the caller. */
static enum mres
lookup_failed(struct eval *ev, unsigned depth, const char *name, enum moat_dns_status st)
{
	if (st == MOAT_DNS_NXDOMAIN || st == MOAT_DNS_NODATA)
		return count_void(ev, depth, name) ? M_NOMATCH : M_PERMERROR;
	if (st == MOAT_DNS_TEMPFAIL) {
		set_reason(ev, "DNS error looking up %s", name);
		return M_TEMPERROR;
	}
	set_reason(ev, "unusable DNS answer or name: %s", name);
	return M_PERMERROR;
}

/* mech_addr - a and mx: does NAME have an address in the client's net? */
static enum mres
match_addrs(struct eval *ev, unsigned depth, const char *name, const struct term *t,
    bool is_mx_host)
{
	struct moat_dns_answer ans;
	enum moat_dns_status st;
	enum mres r = M_NOMATCH;
	size_t i;

	st = spf_query(ev, name, ev->client->v4 ? MOAT_DNS_A : MOAT_DNS_AAAA, &ans);
	if (st != MOAT_DNS_OK) {
		moat_dns_answer_clear(&ans);
		trace(ev, depth + 1, "%s %s: %s", ev->client->v4 ? "A" : "AAAA", name,
		    moat_dns_status_name(st));
		if (is_mx_host) {
			/* An exchange without addresses just does not match. */
			if (st == MOAT_DNS_TEMPFAIL) {
				set_reason(ev, "DNS error looking up %s", name);
				return M_TEMPERROR;
			}
			return M_NOMATCH;
		}
		return lookup_failed(ev, depth, name, st);
	}
	for (i = 0; i < ans.n && r == M_NOMATCH; i++) {
		struct moat_addr a;
		rr_addr(&ans.rr[i], &a);
		if (addr_in(ev->client, &a, a.v4 ? t->cidr4 : t->cidr6))
			r = M_MATCH;
	}
	trace(ev, depth + 1, "%s %s: %zu record(s), %s", ev->client->v4 ? "A" : "AAAA", name, ans.n,
	    r == M_MATCH ? "client matches" : "no match");
	moat_dns_answer_clear(&ans);
	return r;
}

/* eval_mech - one mechanism. */
static enum mres
eval_mech(struct eval *ev, const char *domain, unsigned depth, const struct term *t)
{
	char target[MOAT_SPF_DOMAIN_MAX + 2];
	struct moat_dns_answer ans;
	enum moat_dns_status st;
	enum mres r;
	size_t i;

	switch (t->kind) {
	case T_ALL:
		return M_MATCH;
	case T_IP4:
	case T_IP6:
		return addr_in(ev->client, &t->ip, t->kind == T_IP4 ? t->cidr4 : t->cidr6)
		    ? M_MATCH
		    : M_NOMATCH;
	default:
		break;
	}
	if (!count_lookup(ev, depth, t))
		return M_PERMERROR;
	if (target_name(ev, domain, t, target, sizeof(target)) < 0)
		return M_PERMERROR;
	switch (t->kind) {
	case T_A:
		return match_addrs(ev, depth, target, t, false);
	case T_MX:
		st = spf_query(ev, target, MOAT_DNS_MX, &ans);
		trace(ev, depth + 1, "MX %s: %s, %zu record(s)", target, moat_dns_status_name(st),
		    ans.n);
		if (st != MOAT_DNS_OK) {
			moat_dns_answer_clear(&ans);
			return lookup_failed(ev, depth, target, st);
		}
		if (ans.n > SPF_MX_MAX) {
			set_reason(ev, "%s has more than %d MX records", target, SPF_MX_MAX);
			moat_dns_answer_clear(&ans);
			return M_PERMERROR;
		}
		r = M_NOMATCH;
		for (i = 0; i < ans.n && r == M_NOMATCH; i++)
			if (moat_dns_name_valid(ans.rr[i].data))
				r = match_addrs(ev, depth, ans.rr[i].data, t, true);
		moat_dns_answer_clear(&ans);
		return r;
	case T_PTR:
		validate_ptr(ev, depth + 1);
		for (i = 0; i < ev->nptr; i++)
			if (name_matches(ev->ptr_names[i], target))
				return M_MATCH;
		return M_NOMATCH;
	case T_EXISTS:
		/* RFC 7208 5.7: always an A query, whatever the client's family. */
		st = spf_query(ev, target, MOAT_DNS_A, &ans);
		trace(ev, depth + 1, "A %s: %s", target, moat_dns_status_name(st));
		moat_dns_answer_clear(&ans);
		if (st == MOAT_DNS_OK)
			return M_MATCH;
		return lookup_failed(ev, depth, target, st);
	case T_INCLUDE: {
		char sub_mech[8];
		bool found = false;
		enum moat_spf_res sub;

		/* No explanation is computed inside an include: only the outer record's counts. */
		trace(ev, depth + 1, "include %s:", target);
		sub =
		    check_host(ev, target, depth + 1, NULL, 0, sub_mech, sizeof(sub_mech), &found);
		/* RFC 7208 5.2 table */
		switch (sub) {
		case MOAT_SPF_PASS:
			return M_MATCH;
		case MOAT_SPF_FAIL:
		case MOAT_SPF_SOFTFAIL:
		case MOAT_SPF_NEUTRAL:
			return M_NOMATCH;
		case MOAT_SPF_TEMPERROR:
			return M_TEMPERROR;
		case MOAT_SPF_NONE:
			set_reason(ev, "included domain %s has no SPF record", target);
			return M_PERMERROR;
		default:
			return M_PERMERROR;
		}
	}
	default:
		return M_PERMERROR;
	}
}

/*
 * fetch_record - the one SPF record of DOMAIN (RFC 7208 4.5), malloc'd into *rec. Returns PASS
 * when found, else NONE / TEMPERROR / PERMERROR.
 */
static enum moat_spf_res
fetch_record(struct eval *ev, const char *domain, unsigned depth, char **rec, size_t *reclen)
{
	struct moat_dns_answer ans;
	enum moat_dns_status st;
	size_t i, found = 0, which = 0;

	*rec = NULL;
	st = spf_query(ev, domain, MOAT_DNS_TXT, &ans);
	if (st == MOAT_DNS_TEMPFAIL) {
		trace(ev, depth, "TXT %s: tempfail", domain);
		set_reason(ev, "DNS error looking up TXT %s", domain);
		moat_dns_answer_clear(&ans);
		return MOAT_SPF_TEMPERROR;
	}
	if (st == MOAT_DNS_PERMFAIL) {
		trace(ev, depth, "TXT %s: unusable answer or name", domain);
		set_reason(ev, "unusable TXT answer or name: %s", domain);
		moat_dns_answer_clear(&ans);
		return MOAT_SPF_PERMERROR;
	}
	for (i = 0; st == MOAT_DNS_OK && i < ans.n; i++) {
		const char *d = ans.rr[i].data;
		if (ans.rr[i].len >= 6 && strncasecmp(d, "v=spf1", 6) == 0 &&
		    (ans.rr[i].len == 6 || d[6] == ' ')) {
			found++;
			which = i;
		}
	}
	if (found == 0) {
		trace(ev, depth, "TXT %s: %s, no SPF record", domain, moat_dns_status_name(st));
		set_reason(ev, "no SPF record at %s", domain);
		moat_dns_answer_clear(&ans);
		return MOAT_SPF_NONE;
	}
	if (found > 1) {
		trace(ev, depth, "TXT %s: %zu SPF records: permerror", domain, found);
		set_reason(ev, "%s has %zu SPF records", domain, found);
		moat_dns_answer_clear(&ans);
		return MOAT_SPF_PERMERROR;
	}
	*reclen = ans.rr[which].len;
	*rec = ans.rr[which].data; /* take ownership */
	ans.rr[which].data = malloc(1);
	moat_dns_answer_clear(&ans);
	return MOAT_SPF_PASS;
}

/* explain - RFC 7208 6.2: the exp= text of this record, or the default. */
static void
explain(struct eval *ev, const char *domain, unsigned depth, const struct term *expt, char *exp,
    size_t explen)
{
	struct moat_spf_macro_ctx m;
	const char *def = ev->opts && ev->opts->default_exp
	    ? ev->opts->default_exp
	    : "%{d} does not designate %{i} as permitted sender of %{s}";
	char target[MOAT_SPF_DOMAIN_MAX + 2];
	struct moat_dns_answer ans;
	bool done = false;

	memset(&ans, 0, sizeof(ans));
	if (expt != NULL && target_name(ev, domain, expt, target, sizeof(target)) == 0 &&
	    spf_query(ev, target, MOAT_DNS_TXT, &ans) == MOAT_DNS_OK && ans.n == 1) {
		size_t i;
		bool ascii = true;
		for (i = 0; i < ans.rr[0].len; i++)
			if ((unsigned char)ans.rr[0].data[i] < 0x20 ||
			    (unsigned char)ans.rr[0].data[i] > 0x7e)
				ascii = false;
		macro_ctx(ev, domain, &m);
		if (ascii &&
		    moat_spf_macro_expand(&m, ans.rr[0].data, ans.rr[0].len, true, exp, explen) >=
			0) {
			done = true;
			trace(ev, depth, "exp=%s: \"%s\"", target, exp);
		}
	}
	moat_dns_answer_clear(&ans);
	if (!done) {
		if (expt != NULL)
			trace(ev, depth, "exp= unusable: default explanation");
		macro_ctx(ev, domain, &m);
		if (moat_spf_macro_expand(&m, def, strlen(def), true, exp, explen) < 0)
			snprintf(exp, explen, "%s", "not permitted");
	}
}

/* qual_result - the result a matching term's qualifier gives. */
static enum moat_spf_res
qual_result(char q)
{
	switch (q) {
	case '-':
		return MOAT_SPF_FAIL;
	case '~':
		return MOAT_SPF_SOFTFAIL;
	case '?':
		return MOAT_SPF_NEUTRAL;
	default:
		return MOAT_SPF_PASS;
	}
}

/*
 * check_host - RFC 7208 4. *found: a record existed (so "none" can be told from a redirect to a
 * domain without one). exp/mech receive the explanation and deciding term of this level.
 */
static enum moat_spf_res
check_host(struct eval *ev, const char *domain, unsigned depth, char *exp, size_t explen,
    char *mech, size_t mechlen, bool *found)
{
	char *rec = NULL;
	size_t reclen = 0, nterms = 0, i, p;
	struct term *terms = NULL;
	const struct term *redirect = NULL, *expt = NULL;
	enum moat_spf_res res;

	if (exp != NULL)
		exp[0] = '\0';
	mech[0] = '\0';
	*found = false;
	if (depth > SPF_DEPTH_MAX) {
		set_reason(ev, "include/redirect nesting deeper than %d", SPF_DEPTH_MAX);
		return MOAT_SPF_PERMERROR;
	}
	res = fetch_record(ev, domain, depth, &rec, &reclen);
	if (res != MOAT_SPF_PASS)
		return res;
	*found = true;
	trace(ev, depth, "%s: \"%s\"", domain, rec);
	/* RFC 7208 3.1 / 4.5: records are 7-bit text. */
	for (i = 0; i < reclen; i++) {
		unsigned char c = (unsigned char)rec[i];
		if (c < 0x20 || c > 0x7e) {
			set_reason(ev, "SPF record of %s has a non-ASCII or control byte", domain);
			res = MOAT_SPF_PERMERROR;
			goto out;
		}
	}
	/* Count and parse every term first. */
	terms = calloc(reclen / 2 + 1, sizeof(*terms));
	if (terms == NULL) {
		set_reason(ev, "out of memory");
		res = MOAT_SPF_TEMPERROR;
		goto out;
	}
	for (p = 6; p < reclen;) {
		size_t start;
		if (rec[p] == ' ') {
			p++;
			continue;
		}
		start = p;
		while (p < reclen && rec[p] != ' ')
			p++;
		if (!parse_term(ev, rec + start, p - start, &terms[nterms])) {
			trace(ev, depth, "syntax error in '%.*s': permerror", (int)(p - start),
			    rec + start);
			res = MOAT_SPF_PERMERROR;
			goto out;
		}
		if (terms[nterms].kind == T_REDIRECT || terms[nterms].kind == T_EXP) {
			const struct term **slot =
			    terms[nterms].kind == T_REDIRECT ? &redirect : &expt;
			if (*slot != NULL) {
				set_reason(ev, "%s= given twice", kind_names[terms[nterms].kind]);
				trace(ev, depth, "%s= given twice: permerror",
				    kind_names[terms[nterms].kind]);
				res = MOAT_SPF_PERMERROR;
				goto out;
			}
			*slot = &terms[nterms];
		}
		nterms++;
	}
	for (i = 0; i < nterms; i++) {
		const struct term *t = &terms[i];
		enum mres r;

		if (t->kind >= T_REDIRECT)
			continue;
		r = eval_mech(ev, domain, depth, t);
		trace(ev, depth, "%.*s: %s", (int)t->textlen, t->text,
		    r == M_MATCH           ? "match"
			: r == M_NOMATCH   ? "no match"
			: r == M_TEMPERROR ? "temperror"
					   : "permerror");
		if (r == M_TEMPERROR) {
			res = MOAT_SPF_TEMPERROR;
			snprintf(mech, mechlen, "%.*s", (int)t->textlen, t->text);
			goto out;
		}
		if (r == M_PERMERROR) {
			res = MOAT_SPF_PERMERROR;
			snprintf(mech, mechlen, "%.*s", (int)t->textlen, t->text);
			goto out;
		}
		if (r == M_MATCH) {
			res = qual_result(t->qual);
			snprintf(mech, mechlen, "%.*s", (int)t->textlen, t->text);
			if (res == MOAT_SPF_FAIL && exp != NULL)
				explain(ev, domain, depth, expt, exp, explen);
			goto out;
		}
	}
	if (redirect != NULL) {
		char target[MOAT_SPF_DOMAIN_MAX + 2];
		bool sub_found = false; /* unused: none means no record either way */

		if (!count_lookup(ev, depth, redirect) ||
		    target_name(ev, domain, redirect, target, sizeof(target)) < 0) {
			res = MOAT_SPF_PERMERROR;
			goto out;
		}
		trace(ev, depth, "redirect=%s:", target);
		res = check_host(ev, target, depth + 1, exp, explen, mech, mechlen, &sub_found);
		if (res == MOAT_SPF_NONE) {
			/* RFC 7208 6.1: no record at the redirect target is a permerror. */
			ev->out->reason[0] = '\0'; /* replaces the inner "no SPF record" */
			set_reason(ev, "redirect target %s has no SPF record", target);
			res = MOAT_SPF_PERMERROR;
		}
		goto out;
	}
	res = MOAT_SPF_NEUTRAL; /* RFC 7208 4.7: no match, no redirect */
	trace(ev, depth, "no term matched: neutral");
out:
	free(terms);
	free(rec);
	return res;
}

/* split_sender - local part and domain; a missing or empty local part is "postmaster". */
static int
split_sender(struct eval *ev, const char *sender)
{
	const char *at = strrchr(sender, '@');
	const char *dom = at ? at + 1 : sender;
	size_t llen = at ? (size_t)(at - sender) : 0;

	if (strlen(dom) > MOAT_SPF_DOMAIN_MAX + 1 || llen > MOAT_SPF_LOCAL_MAX)
		return -1;
	if (llen == 0)
		snprintf(ev->local, sizeof(ev->local), "postmaster");
	else
		snprintf(ev->local, sizeof(ev->local), "%.*s", (int)llen, sender);
	snprintf(ev->sender_domain, sizeof(ev->sender_domain), "%s", dom);
	return 0;
}

/*
 * spf_check_host - RFC 7208 4: evaluate DOMAIN for CLIENT, SENDER (local@domain, or a bare
 * domain for which local is "postmaster") and HELO. Fills *out (the caller must call
 * moat_spf_result_clear later) and returns out->result.
 */
static enum moat_spf_res
spf_check_host(struct moat_dns *dns, const struct moat_addr *client, const char *helo,
    const char *sender, enum moat_spf_identity identity, const struct moat_spf_opts *opts,
    struct moat_spf_result *out)
{
	struct eval *ev;
	bool found;
	char mech[sizeof(out->mechanism)];

	memset(out, 0, sizeof(*out));
	out->identity = identity;
	out->result = MOAT_SPF_NONE;
	if (sender == NULL)
		sender = "";
	ev = calloc(1, sizeof(*ev));
	if (ev == NULL) {
		snprintf(out->reason, sizeof(out->reason), "out of memory");
		out->result = MOAT_SPF_TEMPERROR;
		return out->result;
	}
	ev->dns = dns;
	ev->client = client;
	ev->helo = helo ? helo : "";
	ev->opts = opts;
	ev->out = out;
	ev->now = opts && opts->now ? opts->now : time(NULL);
	ev->deadline_ms =
	    mono_ms() + (opts && opts->time_limit_ms ? opts->time_limit_ms : MOAT_SPF_TIME_LIMIT);
	if (split_sender(ev, sender) < 0) {
		snprintf(out->reason, sizeof(out->reason), "sender address too long");
		snprintf(out->domain, sizeof(out->domain), "%.*s", MOAT_SPF_DOMAIN_MAX, sender);
		goto done;
	}
	snprintf(out->domain, sizeof(out->domain), "%s", ev->sender_domain);
	snprintf(out->sender, sizeof(out->sender), "%s@%s", ev->local, ev->sender_domain);
	if (client == NULL) {
		snprintf(out->reason, sizeof(out->reason), "no client address");
		goto done;
	}
	if (!identity_domain_ok(ev->sender_domain)) {
		/* RFC 7208 4.3: not a usable domain: "none", without a lookup. */
		snprintf(out->reason, sizeof(out->reason), "not a fully qualified domain name");
		trace(ev, 0, "%s: not a fully qualified domain name: none", ev->sender_domain);
		goto done;
	}
	out->result = check_host(ev, ev->sender_domain, 0, out->explanation,
	    sizeof(out->explanation), mech, sizeof(mech), &found);
	snprintf(out->mechanism, sizeof(out->mechanism), "%s", mech);
	if (ev->timed_out) {
		/* whatever the terms still gave, an evaluation cut short is not an answer */
		out->result = MOAT_SPF_TEMPERROR;
		trace(ev, 0, "time limit reached: temperror");
	}
	if (out->result != MOAT_SPF_FAIL)
		out->explanation[0] = '\0';
	if (out->result == MOAT_SPF_PASS || out->result == MOAT_SPF_FAIL ||
	    out->result == MOAT_SPF_SOFTFAIL || out->result == MOAT_SPF_NEUTRAL)
		out->reason[0] = '\0';
done:
	out->lookups = ev->lookups;
	out->void_lookups = ev->voids;
	trace(ev, 0, "result: %s", moat_spf_result_name(out->result));
	free(ev);
	return out->result;
}

enum moat_spf_res
moat_spf_check_mailfrom(struct moat_dns *dns, const struct moat_addr *client, const char *helo,
    const char *mail_from, const struct moat_spf_opts *opts, struct moat_spf_result *out)
{
	char buf[MOAT_SPF_SENDER_MAX + 4];
	size_t len;

	if (mail_from == NULL)
		mail_from = "";
	len = strlen(mail_from);
	/* Accept the envelope form <addr>; nothing else is stripped or reinterpreted. */
	if (len >= 2 && mail_from[0] == '<' && mail_from[len - 1] == '>') {
		mail_from++;
		len -= 2;
	}
	if (len > MOAT_SPF_SENDER_MAX) {
		memset(out, 0, sizeof(*out));
		out->identity = MOAT_SPF_ID_MAILFROM;
		out->result = MOAT_SPF_NONE;
		snprintf(out->reason, sizeof(out->reason), "sender address too long");
		return out->result;
	}
	if (len == 0) {
		/* RFC 7208 2.4: the null reverse-path uses postmaster@HELO. */
		snprintf(buf, sizeof(buf), "postmaster@%s", helo ? helo : "");
		if (helo && strlen(helo) > MOAT_SPF_DOMAIN_MAX + 1)
			buf[0] = '\0';
		return spf_check_host(dns, client, helo, buf, MOAT_SPF_ID_MAILFROM, opts, out);
	}
	snprintf(buf, sizeof(buf), "%.*s", (int)len, mail_from);
	return spf_check_host(dns, client, helo, buf, MOAT_SPF_ID_MAILFROM, opts, out);
}

enum moat_spf_res
moat_spf_check_helo(struct moat_dns *dns, const struct moat_addr *client, const char *helo,
    const struct moat_spf_opts *opts, struct moat_spf_result *out)
{
	char buf[MOAT_SPF_SENDER_MAX + 4];

	if (helo == NULL || strlen(helo) > MOAT_SPF_DOMAIN_MAX + 1) {
		memset(out, 0, sizeof(*out));
		out->identity = MOAT_SPF_ID_HELO;
		out->result = MOAT_SPF_NONE;
		snprintf(out->reason, sizeof(out->reason), "no usable HELO name");
		return out->result;
	}
	snprintf(buf, sizeof(buf), "postmaster@%s", helo);
	return spf_check_host(dns, client, helo, buf, MOAT_SPF_ID_HELO, opts, out);
}
