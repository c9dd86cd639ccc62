/*
 * spf_mech.c - the SPF mechanisms (RFC 7208 5): a, mx, ptr, ip4, ip6, exists and include, with the
 * DNS lookup and void-lookup limits (4.6.4), the validated PTR names (5.5) and the macro values
 * target names are expanded with (7). Owns nothing past one evaluation.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spf_int.h"

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

	st = moat__spf_query(ev, name, ev->client->v4 ? MOAT_DNS_A : MOAT_DNS_AAAA, &ans);
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
	if (moat__spf_query(ev, rev, MOAT_DNS_PTR, &ans) != MOAT_DNS_OK) {
		moat__spf_trace(ev, depth, "PTR %s: %s", rev, moat_dns_status_name(ans.status));
		moat_dns_answer_clear(&ans);
		return;
	}
	/* Only the first 10 names are looked at (RFC 7208 4.6.4). */
	for (i = 0; i < ans.n && i < SPF_PTR_MAX; i++) {
		enum moat_dns_status st = name_has_client(ev, ans.rr[i].data);
		moat__spf_trace(ev, depth, "PTR %s -> %s: %s", rev, ans.rr[i].data,
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

/* moat__spf_macro_ctx - the macro values for evaluating DOMAIN. */
void
moat__spf_macro_ctx(struct eval *ev, const char *domain, struct moat_spf_macro_ctx *m)
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
int
moat__spf_target_name(struct eval *ev, const char *domain, const struct term *t, char *out,
    size_t outlen)
{
	struct moat_spf_macro_ctx m;
	char buf[SPF_EXPAND_MAX];
	const char *s;
	long n;

	if (t->spec == NULL) {
		snprintf(out, outlen, "%s", domain);
		return 0;
	}
	moat__spf_macro_ctx(ev, domain, &m);
	n = moat_spf_macro_expand(&m, t->spec, t->speclen, false, buf, sizeof(buf));
	if (n < 0) {
		moat__spf_set_reason(ev, "macro expansion of '%.*s' failed",
		    (int)(t->speclen > 64 ? 64 : t->speclen), t->spec);
		return -1;
	}
	s = moat_spf_truncate_domain(buf);
	if (strlen(s) >= outlen || s[0] == '\0') {
		moat__spf_set_reason(ev, "'%.*s' expands to no usable domain",
		    (int)(t->speclen > 64 ? 64 : t->speclen), t->spec);
		return -1;
	}
	snprintf(out, outlen, "%s", s);
	return 0;
}

/* moat__spf_count_lookup - one more DNS-querying term; false past the limit (RFC 7208 4.6.4). */
bool
moat__spf_count_lookup(struct eval *ev, unsigned depth, const struct term *t)
{
	if (++ev->lookups > MOAT_SPF_LOOKUP_LIMIT) {
		moat__spf_set_reason(ev, "more than %d DNS-querying terms", MOAT_SPF_LOOKUP_LIMIT);
		moat__spf_trace(ev, depth,
		    "%.*s: over the limit of %d DNS-querying terms: permerror", (int)t->textlen,
		    t->text, MOAT_SPF_LOOKUP_LIMIT);
		return false;
	}
	return true;
}

/* count_void - a lookup answered NXDOMAIN or no records; false past the limit. */
static bool
count_void(struct eval *ev, unsigned depth, const char *name)
{
	if (++ev->voids > MOAT_SPF_VOID_LIMIT) {
		moat__spf_set_reason(ev, "more than %d void lookups", MOAT_SPF_VOID_LIMIT);
		moat__spf_trace(ev, depth, "%s: void lookup over the limit of %d: permerror", name,
		    MOAT_SPF_VOID_LIMIT);
		return false;
	}
	return true;
}

/* dns_status_to_mres - for a lookup whose failure is an error; OK is handled by the caller. */
static enum mres
lookup_failed(struct eval *ev, unsigned depth, const char *name, enum moat_dns_status st)
{
	if (st == MOAT_DNS_NXDOMAIN || st == MOAT_DNS_NODATA)
		return count_void(ev, depth, name) ? M_NOMATCH : M_PERMERROR;
	if (st == MOAT_DNS_TEMPFAIL) {
		moat__spf_set_reason(ev, "DNS error looking up %s", name);
		return M_TEMPERROR;
	}
	moat__spf_set_reason(ev, "unusable DNS answer or name: %s", name);
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

	st = moat__spf_query(ev, name, ev->client->v4 ? MOAT_DNS_A : MOAT_DNS_AAAA, &ans);
	if (st != MOAT_DNS_OK) {
		moat_dns_answer_clear(&ans);
		moat__spf_trace(ev, depth + 1, "%s %s: %s", ev->client->v4 ? "A" : "AAAA", name,
		    moat_dns_status_name(st));
		if (is_mx_host) {
			/* An exchange without addresses just does not match. */
			if (st == MOAT_DNS_TEMPFAIL) {
				moat__spf_set_reason(ev, "DNS error looking up %s", name);
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
	moat__spf_trace(ev, depth + 1, "%s %s: %zu record(s), %s", ev->client->v4 ? "A" : "AAAA",
	    name, ans.n, r == M_MATCH ? "client matches" : "no match");
	moat_dns_answer_clear(&ans);
	return r;
}

/* moat__spf_eval_mech - one mechanism. */
enum mres
moat__spf_eval_mech(struct eval *ev, const char *domain, unsigned depth, const struct term *t)
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
	if (!moat__spf_count_lookup(ev, depth, t))
		return M_PERMERROR;
	if (moat__spf_target_name(ev, domain, t, target, sizeof(target)) < 0)
		return M_PERMERROR;
	switch (t->kind) {
	case T_A:
		return match_addrs(ev, depth, target, t, false);
	case T_MX:
		st = moat__spf_query(ev, target, MOAT_DNS_MX, &ans);
		moat__spf_trace(ev, depth + 1, "MX %s: %s, %zu record(s)", target,
		    moat_dns_status_name(st), ans.n);
		if (st != MOAT_DNS_OK) {
			moat_dns_answer_clear(&ans);
			return lookup_failed(ev, depth, target, st);
		}
		if (ans.n > SPF_MX_MAX) {
			moat__spf_set_reason(ev, "%s has more than %d MX records", target,
			    SPF_MX_MAX);
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
		st = moat__spf_query(ev, target, MOAT_DNS_A, &ans);
		moat__spf_trace(ev, depth + 1, "A %s: %s", target, moat_dns_status_name(st));
		moat_dns_answer_clear(&ans);
		if (st == MOAT_DNS_OK)
			return M_MATCH;
		return lookup_failed(ev, depth, target, st);
	case T_INCLUDE: {
		char sub_mech[8];
		bool found = false;
		enum moat_spf_res sub;

		/* No explanation is computed inside an include: only the outer record's counts. */
		moat__spf_trace(ev, depth + 1, "include %s:", target);
		sub = moat__spf_check_host(ev, target, depth + 1, NULL, 0, sub_mech,
		    sizeof(sub_mech), &found);
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
			moat__spf_set_reason(ev, "included domain %s has no SPF record", target);
			return M_PERMERROR;
		default:
			return M_PERMERROR;
		}
	}
	default:
		return M_PERMERROR;
	}
}
