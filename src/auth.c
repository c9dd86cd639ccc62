/*
 * auth.c - the authentication engine glue for one inbound message (see auth.h).
 *
 * Owns the per-message state: the From parser, the DKIM handle, the list of forged
 * Authentication-Results fields. Decides the verdict from the results and the configured actions
 * (RFC 9989 5.3 leaves the disposition to the receiver; ours is table below):
 *   no single From mailbox       -> dmarc=permerror, dmarc_bad_from_action (default 550 5.7.1)
 *   From domain in force list    -> 550 5.7.1 unless dmarc=pass
 *   dmarc=fail, policy reject    -> dmarc_reject_action (never-reject list: quarantine action)
 *   dmarc=fail, policy quarantine-> dmarc_quarantine_action
 *   dmarc=temperror              -> dmarc_temperror_action (default 451 4.7.1)
 *   spf=fail / temperror         -> spf_fail_action / spf_temperror_action (default: tag only)
 * One exception, and only one: a dmarc=fail under p=reject or p=quarantine is tagged only when
 * the message's ARC chain passed and the ARC-Authentication-Results of a sealer listed in
 * arc_trusted_sealers shows an SPF or DKIM pass that aligns with the From domain under the
 * domain's own policy (RFC 9989's local-policy override; RFC 8617 7.2). It is written as the
 * comment "override trusted_forwarder: arc ..." after policy.dmarc and in the decision.
 * The most severe wins (moat_verdict_combine).
 */
#include "config.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth.h"
#include "authres.h"
#include "authres_parse.h"
#include "cidr.h"
#include "dmarc_failure.h"
#include "dmarc_report.h"

#define NAME_VARIANTS 8

struct moat_auth_engine {
	struct moat_dns *dns;
	bool own_dns;
	struct moat_dkim_verifier *dkim;
	struct moat_dmarc_report *report; /* NULL: dmarc_report_store = none */
};

struct name_count {
	char name[64];
	unsigned n;
};

struct moat_auth_msg {
	struct moat_auth_engine *e;
	const struct moat_conf *conf;
	char *client_addr, *helo, *mail_from;
	const char *iprev; /* static, or NULL */
	const char *iprev_name; /* borrowed from the session, or NULL */
	struct moat_dkim_msg *dkim;
	struct name_count ar_names[NAME_VARIANTS]; /* A-R field names seen, with counts */
	bool eom_done;
	char *hdrs; /* the header fields, for a failure report (dmarc_failure_reports), or NULL */
	size_t hdrs_len, hdrs_cap;
	bool hdrs_over; /* past MOAT_DFR_HEADERS_MAX: no failure report */
	struct moat_auth_results r; /* last: only its head is zeroed (msg_new) */
};

_Static_assert(offsetof(struct moat_auth_msg, r) + sizeof(struct moat_auth_results) ==
	sizeof(struct moat_auth_msg),
    "the results end the message");

/* ---- engine ---- */

static struct moat_auth_engine *
engine_new(struct moat_dns *dns, bool own, const struct moat_conf *conf, time_t fixed_time)
{
	struct moat_auth_engine *e = calloc(1, sizeof(*e));
	struct moat_dkim_opts o = { 0 };

	if (e == NULL)
		return NULL;
	e->dns = dns;
	e->own_dns = own;
	o.max_signatures = conf->dkim_max_signatures;
	o.body_length_pass = conf->dkim_body_length_pass;
	o.fixed_time = fixed_time;
	e->dkim = moat_dkim_verifier_new(dns, &o);
	if (e->dkim == NULL) {
		moat_auth_engine_free(e);
		return NULL;
	}
	return e;
}

struct moat_auth_engine *
moat_auth_engine_new(const struct moat_conf *conf, char *err, size_t errlen)
{
	struct moat_dns *dns = moat_dns_new(conf->dns_resolver, conf->dns_timeout,
	    conf->dns_dnssec_trust_anchor, err, errlen);
	struct moat_auth_engine *e;

	if (dns == NULL)
		return NULL;
	e = engine_new(dns, true, conf, 0);
	if (e == NULL) {
		snprintf(err, errlen,
		    "cannot set up the DKIM verifier (out of memory, or no SHA-256 in OpenSSL)");
		return NULL;
	}
	e->report = moat_dmarc_report_new_conf(conf, err, errlen);
	if (e->report == NULL && err[0] != '\0') {
		moat_auth_engine_free(e);
		return NULL;
	}
	return e;
}

struct moat_auth_engine *
moat_auth_engine_new_dns(struct moat_dns *dns, const struct moat_conf *conf, time_t fixed_time)
{
	return engine_new(dns, false, conf, fixed_time);
}

void
moat_auth_engine_free(struct moat_auth_engine *e)
{
	if (e == NULL)
		return;
	moat_dmarc_report_free(e->report);
	moat_dkim_verifier_free(e->dkim);
	if (e->own_dns)
		moat_dns_free(e->dns);
	free(e);
}

void
moat_auth_engine_flush(struct moat_auth_engine *e)
{
	if (e != NULL && e->report != NULL)
		moat_dmarc_report_flush(e->report);
}

struct moat_dns *
moat_auth_engine_dns(struct moat_auth_engine *e)
{
	return e->dns;
}

void
moat_auth_engine_set_metrics(struct moat_auth_engine *e, struct moat_metrics *m)
{
	moat_dns_set_metrics(e->dns, m);
	if (e->report != NULL)
		moat_dmarc_report_set_metrics(e->report, m);
}

struct moat_dkim_verifier *
moat_auth_engine_dkim(struct moat_auth_engine *e)
{
	return e->dkim;
}

/* ---- message ---- */

static char *
dup_or_empty(const char *s)
{
	return strdup(s != NULL ? s : "");
}

struct moat_auth_msg *
moat_auth_msg_new(struct moat_auth_engine *e, const struct moat_conf *conf,
    const struct moat_auth_env *env)
{
	/* Zero everything up to the results' buffers, not the buffers (about 60 KB: zeroing them was
	 * 7.5% of the engine's instructions per message); each is written before it is read. */
	struct moat_auth_msg *m = malloc(sizeof(*m));

	if (m == NULL)
		return NULL;
	memset(m, 0, offsetof(struct moat_auth_msg, r.dkim));
	m->r.authres[0] = m->r.authres_folded[0] = m->r.why[0] = '\0';
	m->e = e;
	m->conf = conf;
	m->client_addr = env->client_addr ? strdup(env->client_addr) : NULL;
	m->iprev = env->iprev;
	m->iprev_name = env->iprev_name;
	m->helo = dup_or_empty(env->helo);
	m->mail_from = dup_or_empty(env->mail_from);
	m->dkim = moat_dkim_msg_new(e->dkim);
	if (m->helo == NULL || m->mail_from == NULL || m->dkim == NULL ||
	    (env->client_addr != NULL && m->client_addr == NULL)) {
		moat_auth_msg_free(m);
		return NULL;
	}
	moat_from_init(&m->r.from);
	moat_verdict_continue(&m->r.verdict);
	return m;
}

void
moat_auth_msg_free(struct moat_auth_msg *m)
{
	if (m == NULL)
		return;
	moat_dkim_msg_free(m->dkim);
	moat_spf_result_clear(&m->r.spf_mailfrom);
	moat_spf_result_clear(&m->r.spf_helo);
	free(m->client_addr);
	free(m->helo);
	free(m->mail_from);
	free(m->hdrs);
	free(m);
}

void
moat_auth_set_spf(struct moat_auth_msg *m, const struct moat_spf_result *mailfrom,
    const struct moat_spf_result *helo)
{
	m->r.spf_mailfrom = *mailfrom;
	m->r.spf_mailfrom.trace = NULL;
	m->r.spf_mailfrom.trace_len = 0;
	if (helo != NULL) {
		m->r.spf_helo = *helo;
		m->r.spf_helo.trace = NULL;
		m->r.spf_helo.trace_len = 0;
		m->r.helo_checked = true;
	}
	m->r.spf_done = true;
}

/* note_authres - an Authentication-Results field: count it under its exact name; ours is forged. */
static void
note_authres(struct moat_auth_msg *m, const char *field, size_t len)
{
	size_t off = moat_authres_field_value(field, len), nlen, i;
	struct name_count *nc = NULL;

	if (off == 0)
		return;
	nlen = off - 1; /* the name as written, spaces before the colon included */
	if (nlen >= sizeof(nc->name)) {
		m->r.forged_overflow = true;
		return;
	}
	for (i = 0; i < NAME_VARIANTS; i++) {
		if (m->ar_names[i].n > 0 && strlen(m->ar_names[i].name) == nlen &&
		    strncasecmp(m->ar_names[i].name, field, nlen) == 0) {
			nc = &m->ar_names[i];
			break;
		}
		if (m->ar_names[i].n == 0) {
			nc = &m->ar_names[i];
			memcpy(nc->name, field, nlen);
			nc->name[nlen] = '\0';
			break;
		}
	}
	if (nc == NULL) {
		m->r.forged_overflow = true;
		return;
	}
	nc->n++;
	if (!moat_authres_is_ours(field, len, m->conf->authserv_id))
		return;
	if (m->r.nforged == MOAT_AUTH_FORGED_MAX) {
		m->r.forged_overflow = true;
		return;
	}
	memcpy(m->r.forged[m->r.nforged].name, nc->name, sizeof(nc->name));
	m->r.forged[m->r.nforged].index = nc->n;
	m->r.nforged++;
}

void
moat_auth_set_arc(struct moat_auth_msg *m, const struct moat_arc_result *arc)
{
	m->r.arc = arc;
}

/* keep_header - FIELD and a CRLF onto the copy a failure report would include; a header past
 * MOAT_DFR_HEADERS_MAX (or out of memory) gives up the report, never a truncated one. */
static void
keep_header(struct moat_auth_msg *m, const char *field, size_t len)
{
	size_t need = m->hdrs_len + len + 2;

	if (m->hdrs_over)
		return;
	if (need > MOAT_DFR_HEADERS_MAX) {
		m->hdrs_over = true;
		return;
	}
	if (need > m->hdrs_cap) {
		size_t cap = m->hdrs_cap ? m->hdrs_cap : 4096;
		char *p;
		while (cap < need)
			cap *= 2;
		if ((p = realloc(m->hdrs, cap)) == NULL) {
			m->hdrs_over = true;
			return;
		}
		m->hdrs = p;
		m->hdrs_cap = cap;
	}
	memcpy(m->hdrs + m->hdrs_len, field, len);
	memcpy(m->hdrs + m->hdrs_len + len, "\r\n", 2);
	m->hdrs_len = need;
}

void
moat_auth_header(struct moat_auth_msg *m, const char *field, size_t len)
{
	if (m->conf->dmarc_failure_reports && m->e->report != NULL)
		keep_header(m, field, len);
	moat_from_field(&m->r.from, field, len);
	note_authres(m, field, len);
	moat_dkim_header(m->dkim, field, len);
}

void
moat_auth_eoh(struct moat_auth_msg *m)
{
	moat_dkim_eoh(m->dkim);
}

void
moat_auth_body(struct moat_auth_msg *m, const char *chunk, size_t len)
{
	moat_dkim_body(m->dkim, chunk, len);
}

/* domain_listed - is DOMAIN or a parent of it in LIST (comma/space separated)? */
static bool
domain_listed(const char *list, const char *domain)
{
	const char *p = list;
	size_t dl = strlen(domain);

	if (list == NULL || dl == 0)
		return false;
	while (*p) {
		size_t n;
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		n = strcspn(p, ", \t");
		if (n > 0 && n <= dl && strncasecmp(domain + dl - n, p, n) == 0 &&
		    (n == dl || domain[dl - n - 1] == '.'))
			return true;
		p += n;
	}
	return false;
}

/* spf_identities - the MAIL FROM and HELO identities of the client (RFC 7208 2.3, 2.4). */
static void
spf_identities(struct moat_dns *dns, const struct moat_conf *conf, const char *client_addr,
    const char *helo, const char *mail_from, struct moat_spf_result *mf, struct moat_spf_result *he,
    bool *helo_checked)
{
	struct moat_spf_opts o = { 0 };
	struct moat_addr addr;

	*helo_checked = false;
	if (client_addr == NULL || moat_addr_parse(client_addr, &addr) != 0) {
		mf->result = MOAT_SPF_NONE;
		snprintf(mf->reason, sizeof(mf->reason), "client address unknown");
		return;
	}
	o.receiver = conf->authserv_id;
	moat_spf_check_mailfrom(dns, &addr, helo, mail_from, &o, mf);
	if (helo[0] != '\0') {
		moat_spf_check_helo(dns, &addr, helo, &o, he);
		*helo_checked = true;
	}
}

/* run_spf - MAIL FROM and HELO identities, unless the caller gave results. */
static void
run_spf(struct moat_auth_msg *m)
{
	if (m->r.spf_done)
		return;
	m->r.spf_done = true;
	spf_identities(m->e->dns, m->conf, m->client_addr, m->helo, m->mail_from,
	    &m->r.spf_mailfrom, &m->r.spf_helo, &m->r.helo_checked);
}

struct moat_auth_spf *
moat_auth_spf_new(struct moat_auth_engine *e, const struct moat_conf *conf,
    const struct moat_auth_env *env)
{
	struct moat_auth_spf *spf = calloc(1, sizeof(*spf));

	if (spf != NULL)
		spf_identities(e->dns, conf, env->client_addr, env->helo != NULL ? env->helo : "",
		    env->mail_from != NULL ? env->mail_from : "", &spf->mailfrom, &spf->helo,
		    &spf->helo_checked);
	return spf;
}

void
moat_auth_spf_free(struct moat_auth_spf *spf)
{
	if (spf == NULL)
		return;
	moat_spf_result_clear(&spf->mailfrom);
	moat_spf_result_clear(&spf->helo);
	free(spf);
}

const char *
moat_auth_spf_verdict(const struct moat_conf *conf, const struct moat_spf_result *mailfrom,
    struct moat_verdict *v)
{
	/* SPF alone: tag only unless configured (RFC 7208 8.4 allows rejecting a fail). */
	if (mailfrom->result == MOAT_SPF_FAIL && conf->spf_fail_action == MOAT_SPF_ACT_ENFORCE) {
		moat_verdict_set(v, MOAT_REJECT, 550, "5.7.23", "spf_fail", "%s",
		    mailfrom->explanation[0] ? mailfrom->explanation : "SPF validation failed");
		return "spf=fail for MAIL FROM and spf_fail_action=reject -> reject";
	}
	if (mailfrom->result == MOAT_SPF_TEMPERROR &&
	    conf->spf_temperror_action == MOAT_SPF_ACT_ENFORCE) {
		moat_verdict_set(v, MOAT_TEMPFAIL, 451, "4.7.24", "spf_temperror",
		    "SPF temporary error, try again later");
		return "spf=temperror for MAIL FROM and spf_temperror_action=tempfail -> tempfail";
	}
	return NULL;
}

/* build_authres - the one Authentication-Results value (RFC 8601). */
static void
build_authres(struct moat_auth_msg *m)
{
	struct moat_auth_results *r = &m->r;
	struct moat_authres ar;
	size_t i;

	moat_authres_init(&ar, r->authres, sizeof(r->authres), m->conf->authserv_id);
	{
		const struct moat_spf_result *s = &r->spf_mailfrom;
		const char *id = s->sender[0] ? s->sender : s->domain;
		moat_authres_method(&ar, "spf", moat_spf_result_name(s->result),
		    s->result == MOAT_SPF_TEMPERROR || s->result == MOAT_SPF_PERMERROR ||
			    s->result == MOAT_SPF_NONE
			? s->reason
			: NULL);
		if (id[0] != '\0')
			moat_authres_prop(&ar, "smtp", "mailfrom", id);
	}
	if (r->helo_checked) {
		const struct moat_spf_result *s = &r->spf_helo;
		moat_authres_method(&ar, "spf", moat_spf_result_name(s->result),
		    s->result == MOAT_SPF_TEMPERROR || s->result == MOAT_SPF_PERMERROR ? s->reason
										       : NULL);
		moat_authres_prop(&ar, "smtp", "helo", m->helo);
	}
	if (r->ndkim == 0)
		moat_authres_method(&ar, "dkim", "none", NULL);
	for (i = 0; i < r->ndkim; i++) {
		const struct moat_dkim_sig *s = &r->dkim[i];
		moat_authres_method(&ar, "dkim", moat_dkim_result_name(s->result),
		    s->result == MOAT_DKIM_PASS ? NULL : s->reason);
		if (s->domain[0])
			moat_authres_prop(&ar, "header", "d", s->domain);
		if (s->selector[0])
			moat_authres_prop(&ar, "header", "s", s->selector);
		if (s->alg[0])
			moat_authres_prop(&ar, "header", "a", s->alg);
		if (s->b[0])
			moat_authres_prop(&ar, "header", "b", s->b);
	}
	if (r->arc != NULL) {
		/* RFC 8617 10.1: arc=, with header.oldest-pass on a pass (RFC 8617 5.2 step 5) */
		char op[12];
		moat_authres_method(&ar, "arc", moat_arc_result_name(r->arc->result),
		    r->arc->reason);
		snprintf(op, sizeof(op), "%u", r->arc->oldest_pass);
		if (r->arc->result == MOAT_ARC_PASS)
			moat_authres_prop(&ar, "header", "oldest-pass", op);
	}
	moat_authres_method(&ar, "dmarc", moat_dmarc_result_name(r->dmarc.result),
	    r->dmarc.result == MOAT_DMARC_PASS ? NULL : r->dmarc.reason);
	if (r->dmarc.from_domain[0])
		moat_authres_prop(&ar, "header", "from", r->dmarc.from_domain);
	if (r->dmarc.policy_domain[0])
		moat_authres_prop(&ar, "policy", "dmarc",
		    moat_dmarc_policy_name(r->dmarc.disposition));
	if (r->arc_override > 0) {
		char c[300];
		snprintf(c, sizeof(c), "override trusted_forwarder: arc sealed by %s",
		    r->arc->hop[r->arc_override - 1].sealer);
		moat_authres_comment(&ar, c);
	}
	/* RFC 8601 2.7.3: the address whose reverse name was checked, and the name it confirmed */
	if (m->iprev != NULL && m->client_addr != NULL) {
		moat_authres_method(&ar, "iprev", m->iprev, NULL);
		moat_authres_prop(&ar, "policy", "iprev", m->client_addr);
		if (m->iprev_name != NULL)
			moat_authres_comment(&ar, m->iprev_name);
	}
	if (moat_authres_finish(&ar) < 0) {
		/* cannot happen with MOAT_DKIM_SIGS_MAX signatures of bounded fields; be safe */
		moat_authres_init(&ar, r->authres, sizeof(r->authres), m->conf->authserv_id);
		moat_authres_method(&ar, "dmarc", moat_dmarc_result_name(r->dmarc.result), NULL);
		moat_authres_finish(&ar);
	}
	/* folded copy for the header edit: a line break before each result, outside quotes */
	{
		const char *p = r->authres;
		size_t o = 0;
		bool q = false;
		for (; *p && o + 4 < sizeof(r->authres_folded); p++) {
			if (q && *p == '\\' && p[1]) {
				r->authres_folded[o++] = *p++;
				r->authres_folded[o++] = *p;
				continue;
			}
			if (*p == '"')
				q = !q;
			if (!q && *p == ';' && p[1] == ' ') {
				memcpy(r->authres_folded + o, ";\r\n\t", 4);
				o += 4;
				p++;
				continue;
			}
			r->authres_folded[o++] = *p;
		}
		r->authres_folded[o] = '\0';
	}
}

/* why_add - append to the decision text. */
static void
why_add(struct moat_auth_results *r, const char *s)
{
	size_t n = strlen(r->why);

	snprintf(r->why + n, sizeof(r->why) - n, "%s%s", n ? "; " : "", s);
}

/* dmarc_action - the verdict for a DMARC reject/quarantine through a configured action. */
static void
dmarc_action(struct moat_verdict *v, int action, const char *reason, const char *text)
{
	switch (action) {
	case MOAT_DMARC_ACT_REJECT:
		moat_verdict_set(v, MOAT_REJECT, 550, "5.7.1", reason, "%s", text);
		break;
	case MOAT_DMARC_ACT_QUARANTINE:
		moat_verdict_set(v, MOAT_QUARANTINE, 0, "", reason, "%s", text);
		break;
	default:
		moat_verdict_continue(v);
		break;
	}
}

/* quarantine_action - dmarc_quarantine_action as a moat_dmarc_action. */
static int
quarantine_action(const struct moat_conf *c)
{
	return c->dmarc_quarantine_action == MOAT_DMARC_QACT_QUARANTINE ? MOAT_DMARC_ACT_QUARANTINE
									: MOAT_DMARC_ACT_TAG;
}

/*
 * arc_override - RFC 8617 7.2 and RFC 9989's local-policy override for a dmarc=fail: the chain
 * passed, and the AAR of a trusted sealer, newest first, names an SPF or DKIM pass that aligns
 * with the From domain (alignment as DMARC itself decides it, with the domain's adkim and aspf).
 * Returns that instance, or 0.
 */
static unsigned
arc_override(struct moat_auth_msg *m)
{
	const struct moat_arc_result *arc = m->r.arc;
	const struct moat_dmarc_eval *d = &m->r.dmarc;

	if (arc == NULL || arc->result != MOAT_ARC_PASS || d->result != MOAT_DMARC_FAIL ||
	    d->disposition == MOAT_DMARC_P_NONE || m->conf->arc_trusted_sealers == NULL ||
	    m->conf->arc_trusted_sealers[0] == '\0')
		return 0;
	for (unsigned i = arc->instances; i >= 1; i--) {
		struct moat_arc_aar_id ids[MOAT_DMARC_MAX_IDS + 1];
		struct moat_dmarc_ids aligned = { 0 };
		struct moat_dmarc_eval ev;
		int n;
		if (!domain_listed(m->conf->arc_trusted_sealers, arc->hop[i - 1].sealer))
			continue;
		n = moat_arc_aar_ids(arc->hop[i - 1].aar, arc->hop[i - 1].aar_len, ids,
		    MOAT_DMARC_MAX_IDS + 1);
		for (int k = 0; k < n; k++) {
			if (ids[k].spf && aligned.spf_domain == NULL)
				aligned.spf_domain = ids[k].domain;
			else if (!ids[k].spf && aligned.ndkim < MOAT_DMARC_MAX_IDS)
				aligned.dkim_domains[aligned.ndkim++] = ids[k].domain;
		}
		if (n > 0 &&
		    moat_dmarc_evaluate(m->e->dns, d->from_domain, &aligned, &ev) ==
			MOAT_DMARC_PASS)
			return i;
	}
	return 0;
}

/* decide - the verdict from the results and the configured actions. */
static void
decide(struct moat_auth_msg *m)
{
	struct moat_auth_results *r = &m->r;
	const struct moat_conf *c = m->conf;
	const struct moat_dmarc_eval *d = &r->dmarc;
	struct moat_verdict v;
	char text[MOAT_REPLY_TEXT_MAX + 300], buf[MOAT_AUTH_WHY_MAX];
	const char *spf_why;

	moat_verdict_continue(&r->verdict);
	if (r->forged_overflow) {
		moat_verdict_set(&v, MOAT_REJECT, 550, "5.7.1", "authres_forged",
		    "Too many Authentication-Results fields");
		moat_verdict_combine(&r->verdict, &v);
		why_add(r,
		    "more Authentication-Results fields claiming to be ours than can be removed");
	}
	if (d->result == MOAT_DMARC_PERMERROR) {
		snprintf(buf, sizeof(buf), "dmarc=permerror (%s: %s) -> %s",
		    r->from.why ? r->from.why : "", d->reason,
		    c->dmarc_bad_from_action == MOAT_DMARC_ACT_REJECT           ? "reject"
			: c->dmarc_bad_from_action == MOAT_DMARC_ACT_QUARANTINE ? "quarantine"
										: "tag only");
		why_add(r, buf);
		snprintf(text, sizeof(text), "Message must have exactly one From address (%s)",
		    r->from.why ? r->from.why : "bad From");
		dmarc_action(&v, c->dmarc_bad_from_action, "dmarc_bad_from", text);
		moat_verdict_combine(&r->verdict, &v);
	} else if (d->from_domain[0] && d->result != MOAT_DMARC_PASS && !d->dkim_aligned &&
	    !d->spf_aligned && domain_listed(c->dmarc_force_reject, d->from_domain)) {
		snprintf(buf, sizeof(buf),
		    "From domain %s is in dmarc_force_reject and DMARC did not pass -> reject",
		    d->from_domain);
		why_add(r, buf);
		moat_verdict_set(&v, MOAT_REJECT, 550, "5.7.1", "dmarc_force_reject",
		    "Message rejected: unauthenticated mail from %s", d->from_domain);
		moat_verdict_combine(&r->verdict, &v);
	} else if (d->result == MOAT_DMARC_FAIL) {
		int act;
		if (d->disposition == MOAT_DMARC_P_REJECT) {
			act = c->dmarc_reject_action;
			if (act == MOAT_DMARC_ACT_REJECT &&
			    domain_listed(c->dmarc_never_reject, d->from_domain)) {
				act = quarantine_action(c);
				why_add(r,
				    "From domain in dmarc_never_reject: reject becomes the quarantine action");
			}
		} else if (d->disposition == MOAT_DMARC_P_QUARANTINE) {
			act = quarantine_action(c);
		} else {
			act = MOAT_DMARC_ACT_TAG;
		}
		if (r->arc_override > 0 && act != MOAT_DMARC_ACT_TAG) {
			snprintf(buf, sizeof(buf),
			    "override trusted_forwarder: arc=pass and the ARC-Authentication-Results of instance %u, sealed by %s, shows an aligned pass",
			    r->arc_override, r->arc->hop[r->arc_override - 1].sealer);
			why_add(r, buf);
			act = MOAT_DMARC_ACT_TAG;
		}
		snprintf(buf, sizeof(buf), "dmarc=fail: %s; policy %s=%s%s at %s -> %s", d->reason,
		    d->policy_tag, moat_dmarc_policy_name(d->applied),
		    d->rec.testing ? " (t=y: one level lower)" : "", d->policy_domain,
		    act == MOAT_DMARC_ACT_REJECT           ? "reject"
			: act == MOAT_DMARC_ACT_QUARANTINE ? "quarantine"
							   : "tag only");
		why_add(r, buf);
		snprintf(text, sizeof(text), "Message rejected: DMARC policy of %s",
		    d->policy_domain);
		dmarc_action(&v, act, "dmarc_fail", text);
		moat_verdict_combine(&r->verdict, &v);
	} else if (d->result == MOAT_DMARC_TEMPERROR) {
		snprintf(buf, sizeof(buf), "dmarc=temperror: %s -> %s", d->reason,
		    c->dmarc_temperror_action == MOAT_DMARC_TEMP_TEMPFAIL ? "tempfail"
									  : "continue");
		why_add(r, buf);
		if (c->dmarc_temperror_action == MOAT_DMARC_TEMP_TEMPFAIL) {
			moat_verdict_set(&v, MOAT_TEMPFAIL, 451, "4.7.1", "dmarc_temperror",
			    "DMARC evaluation failed temporarily, try again later");
			moat_verdict_combine(&r->verdict, &v);
		}
	} else {
		snprintf(buf, sizeof(buf), "dmarc=%s: %s", moat_dmarc_result_name(d->result),
		    d->reason);
		why_add(r, buf);
	}
	if ((spf_why = moat_auth_spf_verdict(c, &r->spf_mailfrom, &v)) != NULL) {
		why_add(r, spf_why);
		moat_verdict_combine(&r->verdict, &v);
	}
}

void
moat_auth_eom(struct moat_auth_msg *m, struct moat_verdict *v)
{
	struct moat_auth_results *r = &m->r;
	struct moat_dmarc_ids ids = { 0 };
	size_t i;

	if (m->eom_done) {
		*v = r->verdict;
		return;
	}
	m->eom_done = true;
	run_spf(m);
	r->ndkim = moat_dkim_eom(m->dkim, r->dkim, MOAT_DKIM_SIGS_MAX);
	moat_from_finish(&r->from);

	/* RFC 9989 4.4: the SPF identifier is the MAIL FROM domain (HELO for the null sender,
	 * which moat_spf_check_mailfrom already substitutes) when SPF passed. */
	if (r->spf_mailfrom.result == MOAT_SPF_PASS && r->spf_mailfrom.domain[0])
		ids.spf_domain = r->spf_mailfrom.domain;
	if (r->spf_mailfrom.result == MOAT_SPF_TEMPERROR && r->spf_mailfrom.domain[0])
		ids.spf_open_domain = r->spf_mailfrom.domain;
	for (i = 0; i < r->ndkim; i++) {
		if (r->dkim[i].domain[0] == '\0')
			continue;
		if (r->dkim[i].result == MOAT_DKIM_PASS && ids.ndkim < MOAT_DMARC_MAX_IDS)
			ids.dkim_domains[ids.ndkim++] = r->dkim[i].domain;
		if (r->dkim[i].result == MOAT_DKIM_TEMPERROR && ids.ndkim_open < MOAT_DMARC_MAX_IDS)
			ids.dkim_open_domains[ids.ndkim_open++] = r->dkim[i].domain;
	}
	moat_dmarc_evaluate(m->e->dns, r->from.status == MOAT_FROM_OK ? r->from.domain : NULL, &ids,
	    &r->dmarc);
	r->arc_override = arc_override(m);
	build_authres(m);
	decide(m);
	moat_dmarc_report_note(m->e->report, m->client_addr, m->mail_from, r);
	if (m->hdrs != NULL && !m->hdrs_over && moat_dfr_due(r)) {
		struct moat_dfr_input in = { .res = r,
			.client_addr = m->client_addr,
			.mail_from = m->mail_from,
			.headers = m->hdrs,
			.headers_len = m->hdrs_len,
			.time = (int64_t)time(NULL),
			.user_agent = PACKAGE_NAME "/" PACKAGE_VERSION };
		moat_dmarc_report_failure(m->e->report, m->conf, &in);
	}
	*v = r->verdict;
}

const struct moat_auth_results *
moat_auth_results(const struct moat_auth_msg *m)
{
	return &m->r;
}

size_t
moat_auth_edits(struct moat_auth_msg *m, struct moat_hdr_edit *out, size_t max)
{
	size_t n = 0, i;

	if (!m->eom_done)
		return 0;
	/* CVE-2022-48521: delete from the last index backwards so earlier indices stay valid */
	for (i = m->r.nforged; i > 0 && n < max; i--) {
		out[n].op = MOAT_HDR_DELETE;
		out[n].name = m->r.forged[i - 1].name;
		out[n].value = NULL;
		out[n].index = m->r.forged[i - 1].index;
		n++;
	}
	if (n < max) {
		out[n].op = MOAT_HDR_INSERT_TOP;
		out[n].name = (char *)"Authentication-Results";
		out[n].value = m->r.authres_folded;
		out[n].index = 0;
		n++;
	}
	return n;
}
