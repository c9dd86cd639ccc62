/*
 * spf.c - RFC 7208 check_host() and the MAIL FROM / HELO identities.
 *
 * A record is parsed completely before any term is evaluated (RFC 7208 4.6: a syntax error
 * anywhere is a permerror, even after a matching term), then evaluated left to right. Owns
 * nothing past one call: the record text and the term array live for one check_host level; the
 * result and its trace belong to the caller. The counters of DNS-querying terms and of void
 * lookups are shared by the whole evaluation, includes and redirects included. The record parser
 * is in spf_record.c, the mechanisms in spf_mech.c, macro expansion in spf_macro.c.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "spf.h"
#include "spf_int.h"
#include "spf_macro.h"

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
/* moat__spf_trace - append one line to the --explain trace (bounded; marks the cut when full). */
void
moat__spf_trace(struct eval *ev, unsigned depth, const char *fmt, ...)
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

/* moat__spf_set_reason - record why (first reason wins: it is the root cause). */
void
moat__spf_set_reason(struct eval *ev, const char *fmt, ...)
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
enum moat_dns_status
moat__spf_query(struct eval *ev, const char *name, enum moat_dns_type type,
    struct moat_dns_answer *ans)
{
	if (mono_ms() > ev->deadline_ms) {
		memset(ans, 0, sizeof(*ans));
		ans->status = MOAT_DNS_TEMPFAIL;
		if (!ev->timed_out) {
			ev->timed_out = true;
			ev->out->reason[0] = '\0';
			moat__spf_set_reason(ev, "SPF evaluation took longer than %u ms",
			    ev->opts && ev->opts->time_limit_ms ? ev->opts->time_limit_ms
								: MOAT_SPF_TIME_LIMIT);
		}
		return MOAT_DNS_TEMPFAIL;
	}
	return moat_dns_query(ev->dns, name, type, ans);
}

/*
 * fetch_record - the one SPF record of DOMAIN (RFC 7208 4.5), malloc'd into *rec. Returns PASS
 * when found, else NONE / TEMPERROR / PERMERROR.
 */
enum moat_spf_res
moat__spf_fetch_record(struct eval *ev, const char *domain, unsigned depth, char **rec,
    size_t *reclen)
{
	struct moat_dns_answer ans;
	enum moat_dns_status st;
	size_t i, found = 0, which = 0;

	*rec = NULL;
	st = moat__spf_query(ev, domain, MOAT_DNS_TXT, &ans);
	if (st == MOAT_DNS_TEMPFAIL) {
		moat__spf_trace(ev, depth, "TXT %s: tempfail", domain);
		moat__spf_set_reason(ev, "DNS error looking up TXT %s", domain);
		moat_dns_answer_clear(&ans);
		return MOAT_SPF_TEMPERROR;
	}
	if (st == MOAT_DNS_PERMFAIL) {
		moat__spf_trace(ev, depth, "TXT %s: unusable answer or name", domain);
		moat__spf_set_reason(ev, "unusable TXT answer or name: %s", domain);
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
		moat__spf_trace(ev, depth, "TXT %s: %s, no SPF record", domain,
		    moat_dns_status_name(st));
		moat__spf_set_reason(ev, "no SPF record at %s", domain);
		moat_dns_answer_clear(&ans);
		return MOAT_SPF_NONE;
	}
	if (found > 1) {
		moat__spf_trace(ev, depth, "TXT %s: %zu SPF records: permerror", domain, found);
		moat__spf_set_reason(ev, "%s has %zu SPF records", domain, found);
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
	if (expt != NULL && moat__spf_target_name(ev, domain, expt, target, sizeof(target)) == 0 &&
	    moat__spf_query(ev, target, MOAT_DNS_TXT, &ans) == MOAT_DNS_OK && ans.n == 1) {
		size_t i;
		bool ascii = true;
		for (i = 0; i < ans.rr[0].len; i++)
			if ((unsigned char)ans.rr[0].data[i] < 0x20 ||
			    (unsigned char)ans.rr[0].data[i] > 0x7e)
				ascii = false;
		moat__spf_macro_ctx(ev, domain, &m);
		if (ascii &&
		    moat_spf_macro_expand(&m, ans.rr[0].data, ans.rr[0].len, true, exp, explen) >=
			0) {
			done = true;
			moat__spf_trace(ev, depth, "exp=%s: \"%s\"", target, exp);
		}
	}
	moat_dns_answer_clear(&ans);
	if (!done) {
		if (expt != NULL)
			moat__spf_trace(ev, depth, "exp= unusable: default explanation");
		moat__spf_macro_ctx(ev, domain, &m);
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
enum moat_spf_res
moat__spf_check_host(struct eval *ev, const char *domain, unsigned depth, char *exp, size_t explen,
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
		moat__spf_set_reason(ev, "include/redirect nesting deeper than %d", SPF_DEPTH_MAX);
		return MOAT_SPF_PERMERROR;
	}
	res = moat__spf_fetch_record(ev, domain, depth, &rec, &reclen);
	if (res != MOAT_SPF_PASS)
		return res;
	*found = true;
	moat__spf_trace(ev, depth, "%s: \"%s\"", domain, rec);
	/* RFC 7208 3.1 / 4.5: records are 7-bit text. */
	for (i = 0; i < reclen; i++) {
		unsigned char c = (unsigned char)rec[i];
		if (c < 0x20 || c > 0x7e) {
			moat__spf_set_reason(ev, "SPF record of %s has a non-ASCII or control byte",
			    domain);
			res = MOAT_SPF_PERMERROR;
			goto out;
		}
	}
	/* Count and parse every term first. */
	terms = calloc(reclen / 2 + 1, sizeof(*terms));
	if (terms == NULL) {
		moat__spf_set_reason(ev, "out of memory");
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
		if (!moat__spf_parse_term(ev, rec + start, p - start, &terms[nterms])) {
			moat__spf_trace(ev, depth, "syntax error in '%.*s': permerror",
			    (int)(p - start), rec + start);
			res = MOAT_SPF_PERMERROR;
			goto out;
		}
		if (terms[nterms].kind == T_REDIRECT || terms[nterms].kind == T_EXP) {
			const struct term **slot =
			    terms[nterms].kind == T_REDIRECT ? &redirect : &expt;
			if (*slot != NULL) {
				moat__spf_set_reason(ev, "%s= given twice",
				    kind_names[terms[nterms].kind]);
				moat__spf_trace(ev, depth, "%s= given twice: permerror",
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
		r = moat__spf_eval_mech(ev, domain, depth, t);
		moat__spf_trace(ev, depth, "%.*s: %s", (int)t->textlen, t->text,
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

		if (!moat__spf_count_lookup(ev, depth, redirect) ||
		    moat__spf_target_name(ev, domain, redirect, target, sizeof(target)) < 0) {
			res = MOAT_SPF_PERMERROR;
			goto out;
		}
		moat__spf_trace(ev, depth, "redirect=%s:", target);
		res = moat__spf_check_host(ev, target, depth + 1, exp, explen, mech, mechlen,
		    &sub_found);
		if (res == MOAT_SPF_NONE) {
			/* RFC 7208 6.1: no record at the redirect target is a permerror. */
			ev->out->reason[0] = '\0'; /* replaces the inner "no SPF record" */
			moat__spf_set_reason(ev, "redirect target %s has no SPF record", target);
			res = MOAT_SPF_PERMERROR;
		}
		goto out;
	}
	res = MOAT_SPF_NEUTRAL; /* RFC 7208 4.7: no match, no redirect */
	moat__spf_trace(ev, depth, "no term matched: neutral");
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
	if (!moat__spf_identity_domain_ok(ev->sender_domain)) {
		/* RFC 7208 4.3: not a usable domain: "none", without a lookup. */
		snprintf(out->reason, sizeof(out->reason), "not a fully qualified domain name");
		moat__spf_trace(ev, 0, "%s: not a fully qualified domain name: none",
		    ev->sender_domain);
		goto done;
	}
	out->result = moat__spf_check_host(ev, ev->sender_domain, 0, out->explanation,
	    sizeof(out->explanation), mech, sizeof(mech), &found);
	snprintf(out->mechanism, sizeof(out->mechanism), "%s", mech);
	if (ev->timed_out) {
		/* whatever the terms still gave, an evaluation cut short is not an answer */
		out->result = MOAT_SPF_TEMPERROR;
		moat__spf_trace(ev, 0, "time limit reached: temperror");
	}
	if (out->result != MOAT_SPF_FAIL)
		out->explanation[0] = '\0';
	if (out->result == MOAT_SPF_PASS || out->result == MOAT_SPF_FAIL ||
	    out->result == MOAT_SPF_SOFTFAIL || out->result == MOAT_SPF_NEUTRAL)
		out->reason[0] = '\0';
done:
	out->lookups = ev->lookups;
	out->void_lookups = ev->voids;
	moat__spf_trace(ev, 0, "result: %s", moat_spf_result_name(out->result));
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
