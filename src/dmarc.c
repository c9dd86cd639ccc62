/*
 * dmarc.c - DMARC per RFC 9989: record parser, DNS tree walk, alignment, evaluation (dmarc.h).
 *
 * One walk (RFC 9989 4.10) serves both jobs for a domain: the first valid record on the way up is
 * the policy record (4.10.1), and the records seen on the way give the Organizational Domain
 * (4.10.2). A walk makes at most MOAT_DMARC_WALK_MAX queries: the domain itself, then (a domain
 * of 8 or more labels is first cut to its last 7) one label less at a time.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dmarc.h"

struct walk_step {
	char name[MOAT_DMARC_DOMAIN_MAX + 1];
	bool found;                         /* exactly one valid record */
	struct moat_dmarc_record rec;
};

struct walk {
	struct walk_step step[MOAT_DMARC_WALK_MAX];
	size_t n;
	bool tempfail;
};

/* trim - skip leading and trailing folding whitespace of [*s, *e). */
static void trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t' || **s == '\r' || **s == '\n'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r' || (*e)[-1] == '\n'))
		(*e)--;
}

static bool word_is(const char *s, const char *e, const char *w)
{
	size_t n = strlen(w);
	return (size_t)(e - s) == n && strncasecmp(s, w, n) == 0;
}

/* parse_policy - none/quarantine/reject, else UNSET. */
static enum moat_dmarc_policy parse_policy(const char *s, const char *e)
{
	if (word_is(s, e, "none"))
		return MOAT_DMARC_P_NONE;
	if (word_is(s, e, "quarantine"))
		return MOAT_DMARC_P_QUARANTINE;
	if (word_is(s, e, "reject"))
		return MOAT_DMARC_P_REJECT;
	return MOAT_DMARC_P_UNSET;
}

int moat_dmarc_record_parse(const char *text, size_t len, struct moat_dmarc_record *rec)
{
	const char *p = text, *end = text + len;
	bool first = true;

	memset(rec, 0, sizeof(*rec));
	if (memchr(text, '\0', len) != NULL)
		return -1;
	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *te = semi ? semi : end, *eq, *ns, *ne, *vs, *ve;

		ns = p;
		p = semi ? semi + 1 : end;
		eq = memchr(ns, '=', (size_t)(te - ns));
		if (eq == NULL) {
			const char *s = ns, *e = te;
			trim(&s, &e);
			if (s == e && !first)
				continue;      /* empty element, e.g. a trailing ';' */
			return -1;
		}
		ne = eq;
		trim(&ns, &ne);
		vs = eq + 1;
		ve = te;
		trim(&vs, &ve);
		if (first) {
			/* RFC 9989 4.7: v=DMARC1 first, the value case-sensitive. */
			if (!(ne - ns == 1 && *ns == 'v') || ve - vs != 6 || memcmp(vs, "DMARC1", 6) != 0)
				return -1;
			first = false;
			continue;
		}
		if (word_is(ns, ne, "p")) {
			rec->p = parse_policy(vs, ve);
		} else if (word_is(ns, ne, "sp")) {
			rec->sp = parse_policy(vs, ve);
		} else if (word_is(ns, ne, "np")) {
			rec->np = parse_policy(vs, ve);
		} else if (word_is(ns, ne, "psd")) {
			if (word_is(vs, ve, "y"))
				rec->psd = MOAT_DMARC_PSD_Y;
			else if (word_is(vs, ve, "n"))
				rec->psd = MOAT_DMARC_PSD_N;
			else if (word_is(vs, ve, "u"))
				rec->psd = MOAT_DMARC_PSD_U;
			else
				return -1;
		} else if (word_is(ns, ne, "t")) {
			if (word_is(vs, ve, "y"))
				rec->testing = true;
			else if (!word_is(vs, ve, "n"))
				return -1;
		} else if (word_is(ns, ne, "adkim") || word_is(ns, ne, "aspf")) {
			bool strict;
			if (word_is(vs, ve, "s"))
				strict = true;
			else if (word_is(vs, ve, "r"))
				strict = false;
			else
				return -1;
			if (word_is(ns, ne, "adkim"))
				rec->adkim_strict = strict;
			else
				rec->aspf_strict = strict;
		} else if (word_is(ns, ne, "rua")) {
			size_t n = (size_t)(ve - vs);
			if (n >= sizeof(rec->rua))
				n = 0;     /* too long to keep for reports: dropped, not truncated */
			memcpy(rec->rua, vs, n);
			rec->rua[n] = '\0';
		}
		/* RFC 9989 4.7: unknown tags (and pct, ri, rf, fo, ruf here) are ignored. */
	}
	if (first)
		return -1;
	if (rec->p == MOAT_DMARC_P_UNSET)
		rec->p = MOAT_DMARC_P_NONE;
	return 0;
}

/* count_labels - labels in a domain without a trailing dot. */
static unsigned count_labels(const char *d)
{
	unsigned n = 1;

	for (; *d; d++)
		n += *d == '.';
	return n;
}

/* parent_from - the suffix of D with KEEP labels. */
static const char *suffix_labels(const char *d, unsigned keep)
{
	unsigned n = count_labels(d);

	while (n > keep) {
		const char *dot = strchr(d, '.');
		if (dot == NULL)
			break;
		d = dot + 1;
		n--;
	}
	return d;
}

/* lookup - the DMARC record at _dmarc.NAME: 1 found, 0 none, -1 temporary error. */
static int lookup(struct moat_dns *dns, const char *name, struct moat_dmarc_record *rec,
    unsigned *queries)
{
	struct moat_dns_answer ans = { 0 };
	char q[MOAT_DNS_NAME_MAX + 16];
	struct moat_dmarc_record tmp;
	size_t i, valid = 0;
	int n = snprintf(q, sizeof(q), "_dmarc.%s", name);

	if (n < 0 || (size_t)n >= sizeof(q) || n > MOAT_DNS_NAME_MAX)
		return 0;
	(*queries)++;
	switch (moat_dns_query(dns, q, MOAT_DNS_TXT, &ans)) {
	case MOAT_DNS_OK:
		break;
	case MOAT_DNS_TEMPFAIL:
		moat_dns_answer_clear(&ans);
		return -1;
	default:
		moat_dns_answer_clear(&ans);
		return 0;
	}
	for (i = 0; i < ans.n; i++) {
		/* RFC 9989 4.10 step 2: records not starting with v=DMARC1 are discarded; if
		 * several DMARC records remain, all are. */
		if (ans.rr[i].len < 2 || ans.rr[i].data[0] != 'v')
			continue;
		if (moat_dmarc_record_parse(ans.rr[i].data, ans.rr[i].len, &tmp) == 0) {
			if (valid++ == 0)
				*rec = tmp;
		}
	}
	moat_dns_answer_clear(&ans);
	return valid == 1 ? 1 : 0;
}

/*
 * do_walk - RFC 9989 4.10 from DOMAIN up; stops after a record with a psd tag, or with
 * FIRST_ONLY after the first valid record (policy discovery needs no more).
 */
static void do_walk(struct moat_dns *dns, const char *domain, struct walk *w, unsigned *queries,
    bool first_only)
{
	const char *target = domain;
	unsigned labels = count_labels(domain);

	memset(w, 0, sizeof(*w));
	for (;;) {
		struct walk_step *st = &w->step[w->n];
		int r;

		snprintf(st->name, sizeof(st->name), "%s", target);
		r = lookup(dns, target, &st->rec, queries);
		w->n++;
		if (r < 0) {
			w->tempfail = true;
			return;
		}
		st->found = r == 1;
		if (st->found && first_only)
			return;
		if (st->found && st->rec.psd != MOAT_DMARC_PSD_U && w->n > 1)
			return;
		if (st->found && st->rec.psd == MOAT_DMARC_PSD_N)
			return;
		if (labels <= 1 || w->n == MOAT_DMARC_WALK_MAX)
			return;
		/* step 5: under 8 labels drop one; from 8 on, keep the last 7 */
		labels = labels >= 8 ? 7 : labels - 1;
		target = suffix_labels(domain, labels);
	}
}

/* walk_org - RFC 9989 4.10.2 from a finished walk of DOMAIN. */
static void walk_org(const char *domain, const struct walk *w, char *out, size_t outlen)
{
	size_t i;
	const char *best = NULL;

	for (i = 0; i < w->n; i++) {
		const struct walk_step *st = &w->step[i];
		if (!st->found)
			continue;
		if (st->rec.psd == MOAT_DMARC_PSD_N) {
			snprintf(out, outlen, "%s", st->name);
			return;
		}
		if (st->rec.psd == MOAT_DMARC_PSD_Y && i > 0) {
			/* one label below the PSD, on the path to DOMAIN */
			snprintf(out, outlen, "%s", suffix_labels(domain, count_labels(st->name) + 1));
			return;
		}
		best = st->name;    /* later steps have fewer labels */
	}
	snprintf(out, outlen, "%s", best ? best : domain);
}

int moat_dmarc_org_domain(struct moat_dns *dns, const char *domain, char *out, size_t outlen,
    unsigned *queries)
{
	static __thread struct walk w;

	do_walk(dns, domain, &w, queries, false);
	if (w.tempfail) {
		snprintf(out, outlen, "%s", domain);
		return -1;
	}
	walk_org(domain, &w, out, outlen);
	return 0;
}

int moat_dmarc_aligned(struct moat_dns *dns, const char *a, const char *org_a, const char *b,
    bool strict, bool *aligned, unsigned *queries)
{
	char org_b[MOAT_DMARC_DOMAIN_MAX + 1];

	*aligned = false;
	if (b == NULL || b[0] == '\0')
		return 0;
	if (strcasecmp(a, b) == 0) {
		*aligned = true;
		return 0;
	}
	if (strict || org_a == NULL || org_a[0] == '\0')
		return 0;
	if (moat_dmarc_org_domain(dns, b, org_b, sizeof(org_b), queries) < 0)
		return -1;
	*aligned = strcasecmp(org_a, org_b) == 0;
	return 0;
}

/* nonexistent - RFC 9989 np: NXDOMAIN or NODATA for A, AAAA and MX; -1 on a temporary error. */
static int nonexistent(struct moat_dns *dns, const char *domain, unsigned *queries)
{
	static const enum moat_dns_type types[] = { MOAT_DNS_A, MOAT_DNS_AAAA, MOAT_DNS_MX };
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		struct moat_dns_answer ans = { 0 };
		enum moat_dns_status st = moat_dns_query(dns, domain, types[i], &ans);
		moat_dns_answer_clear(&ans);
		(*queries)++;
		if (st == MOAT_DNS_TEMPFAIL)
			return -1;
		if (st == MOAT_DNS_NXDOMAIN)
			return 1;     /* no name at all: A/AAAA/MX cannot exist either */
		if (st != MOAT_DNS_NODATA)
			return 0;
	}
	return 1;
}

static enum moat_dmarc_policy lower(enum moat_dmarc_policy p)
{
	return p == MOAT_DMARC_P_REJECT ? MOAT_DMARC_P_QUARANTINE : MOAT_DMARC_P_NONE;
}

/* align - RFC 9989 4.4: alignment of the DKIM and SPF identifiers with the From domain;
 * -1 when a DNS error left an identifier undecided. */
static int align(struct moat_dns *dns, const char *from_domain, const struct moat_dmarc_ids *ids,
    struct moat_dmarc_eval *ev)
{
	bool dkim_temp = false, spf_temp = false;
	size_t i;

	/* The Organizational Domain of the From domain takes a full walk: only when relaxed
	 * alignment has an identifier other than the From domain itself to compare. */
	if (ids != NULL && !(ev->rec.adkim_strict && ev->rec.aspf_strict)) {
		bool need = ids->spf_domain && ids->spf_domain[0] &&
		    strcasecmp(ids->spf_domain, from_domain) != 0 && !ev->rec.aspf_strict;
		for (i = 0; i < ids->ndkim && i < MOAT_DMARC_MAX_IDS && !ev->rec.adkim_strict; i++)
			need = need || strcasecmp(ids->dkim_domains[i], from_domain) != 0;
		if (need && moat_dmarc_org_domain(dns, from_domain, ev->org_domain,
		    sizeof(ev->org_domain), &ev->queries) < 0) {
			ev->org_domain[0] = '\0';
			dkim_temp = true;
		}
	}

	for (i = 0; ids != NULL && i < ids->ndkim && i < MOAT_DMARC_MAX_IDS && !ev->dkim_aligned; i++) {
		bool al = false;
		if (moat_dmarc_aligned(dns, from_domain, ev->org_domain, ids->dkim_domains[i],
		    ev->rec.adkim_strict, &al, &ev->queries) < 0)
			dkim_temp = true;
		if (al) {
			ev->dkim_aligned = true;
			snprintf(ev->dkim_aligned_domain, sizeof(ev->dkim_aligned_domain), "%s",
			    ids->dkim_domains[i]);
		}
	}
	if (ids != NULL &&
	    moat_dmarc_aligned(dns, from_domain, ev->org_domain, ids->spf_domain,
	    ev->rec.aspf_strict, &ev->spf_aligned, &ev->queries) < 0)
		spf_temp = true;

	return dkim_temp || spf_temp ? -1 : 0;
}

enum moat_dmarc_res moat_dmarc_evaluate(struct moat_dns *dns, const char *from_domain,
    const struct moat_dmarc_ids *ids, struct moat_dmarc_eval *ev)
{
	static __thread struct walk w;
	const struct walk_step *found = NULL;
	size_t i;

	memset(ev, 0, sizeof(*ev));
	ev->policy_tag = "";
	if (from_domain == NULL || from_domain[0] == '\0') {
		ev->result = MOAT_DMARC_PERMERROR;
		snprintf(ev->reason, sizeof(ev->reason), "no single valid RFC5322.From address");
		return ev->result;
	}
	snprintf(ev->from_domain, sizeof(ev->from_domain), "%s", from_domain);
	do_walk(dns, from_domain, &w, &ev->queries, true);
	if (w.tempfail) {
		ev->result = MOAT_DMARC_TEMPERROR;
		snprintf(ev->reason, sizeof(ev->reason), "DNS error looking up _dmarc.%s",
		    w.step[w.n - 1].name);
		return ev->result;
	}
	for (i = 0; i < w.n && found == NULL; i++)
		if (w.step[i].found)
			found = &w.step[i];
	if (found == NULL) {
		/* Not applicable; alignment (relaxed) is still computed for local policy
		 * (dmarc_force_reject). A DNS error there changes nothing. */
		(void)align(dns, from_domain, ids, ev);
		ev->result = MOAT_DMARC_NONE;
		snprintf(ev->reason, sizeof(ev->reason), "no DMARC record for %s or its parents",
		    from_domain);
		return ev->result;
	}
	snprintf(ev->policy_domain, sizeof(ev->policy_domain), "%s", found->name);
	ev->rec = found->rec;

	/* RFC 9989 4.10.1 and 5.3: p at the From domain itself; below it np for a domain that
	 * does not exist, else sp, else p. */
	if (found == &w.step[0]) {
		ev->applied = ev->rec.p;
		ev->policy_tag = "p";
	} else {
		int ne = nonexistent(dns, from_domain, &ev->queries);
		if (ne < 0) {
			ev->result = MOAT_DMARC_TEMPERROR;
			snprintf(ev->reason, sizeof(ev->reason), "DNS error checking that %s exists",
			    from_domain);
			return ev->result;
		}
		ev->nonexistent = ne == 1;
		if (ev->nonexistent && ev->rec.np != MOAT_DMARC_P_UNSET) {
			ev->applied = ev->rec.np;
			ev->policy_tag = "np";
		} else if (ev->rec.sp != MOAT_DMARC_P_UNSET) {
			ev->applied = ev->rec.sp;
			ev->policy_tag = "sp";
		} else {
			ev->applied = ev->rec.p;
			ev->policy_tag = "p";
		}
	}
	ev->disposition = ev->rec.testing ? lower(ev->applied) : ev->applied;

	if (align(dns, from_domain, ids, ev) < 0 && !ev->dkim_aligned && !ev->spf_aligned) {
		ev->result = MOAT_DMARC_TEMPERROR;
		snprintf(ev->reason, sizeof(ev->reason), "DNS error finding an Organizational Domain");
		return ev->result;
	}
	if (ev->dkim_aligned || ev->spf_aligned) {
		ev->result = MOAT_DMARC_PASS;
		snprintf(ev->reason, sizeof(ev->reason), "%s aligned with %s",
		    ev->dkim_aligned ? "DKIM" : "SPF", from_domain);
	} else {
		ev->result = MOAT_DMARC_FAIL;
		snprintf(ev->reason, sizeof(ev->reason),
		    "no aligned SPF or DKIM pass for %s (%s alignment)", from_domain,
		    ev->rec.adkim_strict && ev->rec.aspf_strict ? "strict" :
		    !ev->rec.adkim_strict && !ev->rec.aspf_strict ? "relaxed" : "mixed");
	}
	return ev->result;
}

const char *moat_dmarc_result_name(enum moat_dmarc_res r)
{
	switch (r) {
	case MOAT_DMARC_PASS: return "pass";
	case MOAT_DMARC_FAIL: return "fail";
	case MOAT_DMARC_TEMPERROR: return "temperror";
	case MOAT_DMARC_PERMERROR: return "permerror";
	default: return "none";
	}
}

const char *moat_dmarc_policy_name(enum moat_dmarc_policy p)
{
	switch (p) {
	case MOAT_DMARC_P_QUARANTINE: return "quarantine";
	case MOAT_DMARC_P_REJECT: return "reject";
	default: return "none";
	}
}
