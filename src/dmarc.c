/*
 * dmarc.c - DMARC per RFC 9989: record parser, DNS tree walk, alignment, evaluation (dmarc.h).
 *
 * One walk (RFC 9989 4.10) serves both jobs for a domain: the first valid record on the way up is
 * the policy record (4.10.1), and the records seen on the way give the Organizational Domain
 * (4.10.2). A walk makes at most MOAT_DMARC_WALK_MAX queries: the domain itself, then (a domain
 * of 8 or more labels is first cut to its last 7) one label less at a time.
 *
 * A DNS error changes the result only where the missing answer could have changed it. A walk
 * that fails part-way yields every Organizational Domain the unanswered steps could still have
 * given (struct org); an identifier whose possible Organizational Domains share none with the
 * From domain's stays unaligned, and one that cannot be below any of the From domain's is not
 * looked up at all. So the sender's own DNS (its _dmarc records, SERVFAIL or silent) cannot turn
 * a fail into a temperror. The same holds for an SPF or DKIM check that ended in temperror: it
 * leaves DMARC open only when its identifier could align with the From domain, whose own DNS a
 * spoofer does not control; a DNS outage then defers the mail instead of bouncing it.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dmarc.h"

struct walk_step {
	const char *name; /* a suffix of the walked domain (borrowed) */
	bool found; /* exactly one valid record */
	struct moat_dmarc_record rec;
};

struct walk {
	struct walk_step step[MOAT_DMARC_WALK_MAX];
	size_t n;
	bool tempfail; /* the last step's lookup failed */
};

/*
 * The Organizational Domain of one domain as far as the DNS answered: one candidate after a walk
 * answered throughout; after a failed lookup, every domain the unanswered steps could still have
 * made it, the first being the one the answered steps give. Each candidate, and the name whose
 * lookup failed, is a suffix of the walked domain (borrowed).
 */
struct org {
	const char *cand[2 * MOAT_DMARC_WALK_MAX + 1];
	size_t n;
	const char *failed; /* NULL when every lookup was answered */
};

/* trim - skip leading and trailing folding whitespace of [*s, *e). */
static void
trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t' || **s == '\r' || **s == '\n'))
		(*s)++;
	while (*e > *s &&
	    ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r' || (*e)[-1] == '\n'))
		(*e)--;
}

static bool
word_is(const char *s, const char *e, const char *w)
{
	size_t n = strlen(w);
	return (size_t)(e - s) == n && strncasecmp(s, w, n) == 0;
}

/* parse_policy - none/quarantine/reject, else UNSET. */
static enum moat_dmarc_policy
parse_policy(const char *s, const char *e)
{
	if (word_is(s, e, "none"))
		return MOAT_DMARC_P_NONE;
	if (word_is(s, e, "quarantine"))
		return MOAT_DMARC_P_QUARANTINE;
	if (word_is(s, e, "reject"))
		return MOAT_DMARC_P_REJECT;
	return MOAT_DMARC_P_UNSET;
}

/* copy_tag - a tag value kept for reports; one too long is dropped, not truncated. */
static void
copy_tag(const char *s, const char *e, char *out, size_t outlen)
{
	size_t n = (size_t)(e - s);

	if (n >= outlen)
		n = 0;
	memcpy(out, s, n);
	out[n] = '\0';
}

int
moat_dmarc_record_parse(const char *text, size_t len, struct moat_dmarc_record *rec)
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
				continue; /* empty element, e.g. a trailing ';' */
			return -1;
		}
		ne = eq;
		trim(&ns, &ne);
		vs = eq + 1;
		ve = te;
		trim(&vs, &ve);
		if (first) {
			/* RFC 9989 4.7: v=DMARC1 first, the value case-sensitive. */
			if (!(ne - ns == 1 && *ns == 'v') || ve - vs != 6 ||
			    memcmp(vs, "DMARC1", 6) != 0)
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
			copy_tag(vs, ve, rec->rua, sizeof(rec->rua));
		} else if (word_is(ns, ne, "ruf")) {
			copy_tag(vs, ve, rec->ruf, sizeof(rec->ruf));
		} else if (word_is(ns, ne, "fo")) {
			copy_tag(vs, ve, rec->fo, sizeof(rec->fo));
		}
		/* RFC 9989 4.7: unknown tags (and pct, ri, rf here) are ignored. */
	}
	if (first)
		return -1;
	if (rec->p == MOAT_DMARC_P_UNSET)
		rec->p = MOAT_DMARC_P_NONE;
	return 0;
}

/* count_labels - labels in a domain without a trailing dot. */
static unsigned
count_labels(const char *d)
{
	unsigned n = 1;

	for (; *d; d++)
		n += *d == '.';
	return n;
}

/* parent_from - the suffix of D with KEEP labels. */
static const char *
suffix_labels(const char *d, unsigned keep)
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
static int
lookup(struct moat_dns *dns, const char *name, struct moat_dmarc_record *rec, unsigned *queries)
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
 * walk_next - after DONE steps, the last at *LABELS labels: false when the walk is over, else the
 * label count of the next target in *LABELS (RFC 9989 4.10 step 5: under 8 labels drop one; from
 * 8 on, keep the last 7).
 */
static bool
walk_next(unsigned *labels, size_t done)
{
	if (*labels <= 1 || done == MOAT_DMARC_WALK_MAX)
		return false;
	*labels = *labels >= 8 ? 7 : *labels - 1;
	return true;
}

/*
 * do_walk - RFC 9989 4.10 from DOMAIN up; stops after a record with a psd tag, or with
 * FIRST_ONLY after the first valid record (policy discovery needs no more). DOMAIN must outlive
 * the walk: the steps point into it.
 */
static void
do_walk(struct moat_dns *dns, const char *domain, struct walk *w, unsigned *queries,
    bool first_only)
{
	unsigned labels = count_labels(domain);

	memset(w, 0, sizeof(*w));
	do {
		struct walk_step *st = &w->step[w->n];
		int r;

		st->name = suffix_labels(domain, labels);
		r = lookup(dns, st->name, &st->rec, queries);
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
	} while (walk_next(&labels, w->n));
}

/* walk_org - RFC 9989 4.10.2 from the first N steps of a walk of DOMAIN (a suffix of it). */
static const char *
walk_org(const char *domain, const struct walk_step *step, size_t n)
{
	const char *best = domain;
	size_t i;

	for (i = 0; i < n; i++) {
		const struct walk_step *st = &step[i];
		if (!st->found)
			continue;
		if (st->rec.psd == MOAT_DMARC_PSD_N)
			return st->name;
		if (st->rec.psd == MOAT_DMARC_PSD_Y && i > 0) {
			/* one label below the PSD, on the path to DOMAIN */
			return suffix_labels(domain, count_labels(st->name) + 1);
		}
		best = st->name; /* later steps have fewer labels */
	}
	return best;
}

/* org_add - one more candidate, unless it is there already. */
static void
org_add(struct org *o, const char *d)
{
	size_t i;

	for (i = 0; i < o->n; i++)
		if (strcasecmp(o->cand[i], d) == 0)
			return;
	if (o->n < sizeof(o->cand) / sizeof(o->cand[0]))
		o->cand[o->n++] = d;
}

/*
 * org_walk - the Organizational Domain of DOMAIN (RFC 9989 4.10.2) into *o; 0, or -1 after a
 * failed lookup. Then o holds what the walk could still have ended with: the answer of the steps
 * that were answered (if nothing above has a record), and for each name the walk would still have
 * asked from the failed one up, that name (a record there with psd=n, or the one with the fewest
 * labels) and, past the first step, the name one label below it (psd=y there).
 */
static int
org_walk(struct moat_dns *dns, const char *domain, struct org *o, unsigned *queries)
{
	static __thread struct walk w;
	size_t done;
	unsigned labels;

	do_walk(dns, domain, &w, queries, false);
	o->n = 0;
	o->failed = NULL;
	org_add(o, walk_org(domain, w.step, w.tempfail ? w.n - 1 : w.n));
	if (!w.tempfail)
		return 0;
	done = w.n - 1;
	o->failed = w.step[done].name;
	labels = count_labels(w.step[done].name);
	do {
		org_add(o, suffix_labels(domain, labels));
		if (done > 0)
			org_add(o, suffix_labels(domain, labels + 1));
		done++;
	} while (walk_next(&labels, done));
	return -1;
}

int
moat_dmarc_org_domain(struct moat_dns *dns, const char *domain, char *out, size_t outlen,
    unsigned *queries)
{
	struct org o;
	int r = org_walk(dns, domain, &o, queries);

	snprintf(out, outlen, "%s", r == 0 ? o.cand[0] : domain);
	return r;
}

/* under - is D the domain P or below it? */
static bool
under(const char *d, const char *p)
{
	size_t dl = strlen(d), pl = strlen(p);

	return dl >= pl && strcasecmp(d + dl - pl, p) == 0 && (dl == pl || d[dl - pl - 1] == '.');
}

/* org_meet - can A and B be the same Organizational Domain? */
static bool
org_meet(const struct org *a, const struct org *b)
{
	size_t i, j;

	for (i = 0; i < a->n; i++)
		for (j = 0; j < b->n; j++)
			if (strcasecmp(a->cand[i], b->cand[j]) == 0)
				return true;
	return false;
}

/*
 * same_failure - did the walks of A and B fail at the same name N, after answered steps that give
 * the same Organizational Domain, with N above the longest common suffix of A and B? From N up both
 * walks ask the same names (every suffix of 7 labels or fewer is asked) and would get the same
 * answers; a psd=y at N or above names the same child on both paths; so the two end equal whatever
 * N and its parents answer (the case of two subdomains of one organization whose parent fails).
 */
static bool
same_failure(const char *a, const struct org *oa, const char *b, const struct org *ob)
{
	unsigned below;

	if (oa->failed == NULL || ob->failed == NULL || strcasecmp(oa->failed, ob->failed) != 0 ||
	    strcasecmp(oa->cand[0], ob->cand[0]) != 0)
		return false;
	below = count_labels(oa->failed) + 1;
	return count_labels(a) >= below && count_labels(b) >= below &&
	    strcasecmp(suffix_labels(a, below), suffix_labels(b, below)) == 0;
}

enum alignment {
	ALIGN_NO,
	ALIGN_YES,
	ALIGN_UNKNOWN
};

/*
 * align_one - RFC 9989 4.4: does identifier ID align with FROM? Strict: the same domain. Relaxed:
 * the same Organizational Domain; FROM_ORG holds the From domain's candidates (see org_walk).
 * ALIGN_UNKNOWN only when a failed lookup left both answers open.
 */
static enum alignment
align_one(struct moat_dns *dns, const char *from, const struct org *from_org, const char *id,
    bool strict, unsigned *queries)
{
	struct org id_org;
	bool below = false;
	size_t i;

	if (id == NULL || id[0] == '\0')
		return ALIGN_NO;
	if (strcasecmp(from, id) == 0)
		return ALIGN_YES;
	if (strict)
		return ALIGN_NO;
	/* An Organizational Domain is a suffix of its domain: ID can share one only if it is at or
	 * below one of the From domain's candidates. Otherwise its own walk is not asked for, so
	 * whatever its DNS does (fail, time out) leaves it unaligned. */
	for (i = 0; i < from_org->n && !below; i++)
		below = under(id, from_org->cand[i]);
	if (!below)
		return ALIGN_NO;
	(void)org_walk(dns, id, &id_org, queries);
	if (!org_meet(from_org, &id_org))
		return ALIGN_NO;
	if ((from_org->n == 1 && id_org.n == 1) || same_failure(from, from_org, id, &id_org))
		return ALIGN_YES;
	return ALIGN_UNKNOWN;
}

/* nonexistent - RFC 9989 np: NXDOMAIN or NODATA for A, AAAA and MX; -1 on a temporary error. */
static int
nonexistent(struct moat_dns *dns, const char *domain, unsigned *queries)
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
			return 1; /* no name at all: A/AAAA/MX cannot exist either */
		if (st != MOAT_DNS_NODATA)
			return 0;
	}
	return 1;
}

static enum moat_dmarc_policy
lower(enum moat_dmarc_policy p)
{
	return p == MOAT_DMARC_P_REJECT ? MOAT_DMARC_P_QUARANTINE : MOAT_DMARC_P_NONE;
}

/* other_than - ID is set and is not the From domain itself (so relaxed alignment must walk). */
static bool
other_than(const char *id, const char *from_domain)
{
	return id != NULL && id[0] != '\0' && strcasecmp(id, from_domain) != 0;
}

/*
 * align - RFC 9989 4.4: alignment of the DKIM and SPF identifiers with the From domain. Returns
 * NULL, or the first identifier a failed lookup left undecided (borrowed from IDS). *OPEN is
 * set, when nothing aligned, to the first identifier whose check gave temperror and that aligns
 * or may align: its pass would have decided the result.
 */
static const char *
align(struct moat_dns *dns, const char *from_domain, const struct moat_dmarc_ids *ids,
    struct moat_dmarc_eval *ev, const char **open)
{
	struct org from_org = { .cand = { from_domain }, .n = 1 };
	const char *undecided = NULL;
	enum alignment a;
	size_t i;

	*open = NULL;
	if (ids == NULL)
		return NULL;
	/* The Organizational Domain of the From domain takes a full walk: only when relaxed
	 * alignment has an identifier other than the From domain itself to compare. */
	if (!(ev->rec.adkim_strict && ev->rec.aspf_strict)) {
		bool need = !ev->rec.aspf_strict &&
		    (other_than(ids->spf_domain, from_domain) ||
			other_than(ids->spf_open_domain, from_domain));
		for (i = 0; i < ids->ndkim && i < MOAT_DMARC_MAX_IDS && !ev->rec.adkim_strict; i++)
			need = need || other_than(ids->dkim_domains[i], from_domain);
		for (i = 0; i < ids->ndkim_open && i < MOAT_DMARC_MAX_IDS && !ev->rec.adkim_strict;
		     i++)
			need = need || other_than(ids->dkim_open_domains[i], from_domain);
		if (need && org_walk(dns, from_domain, &from_org, &ev->queries) == 0)
			snprintf(ev->org_domain, sizeof(ev->org_domain), "%s", from_org.cand[0]);
	}

	for (i = 0; i < ids->ndkim && i < MOAT_DMARC_MAX_IDS && !ev->dkim_aligned; i++) {
		a = align_one(dns, from_domain, &from_org, ids->dkim_domains[i],
		    ev->rec.adkim_strict, &ev->queries);
		if (a == ALIGN_YES) {
			ev->dkim_aligned = true;
			snprintf(ev->dkim_aligned_domain, sizeof(ev->dkim_aligned_domain), "%s",
			    ids->dkim_domains[i]);
		} else if (a == ALIGN_UNKNOWN && undecided == NULL) {
			undecided = ids->dkim_domains[i];
		}
	}
	a = align_one(dns, from_domain, &from_org, ids->spf_domain, ev->rec.aspf_strict,
	    &ev->queries);
	ev->spf_aligned = a == ALIGN_YES;
	if (a == ALIGN_UNKNOWN && undecided == NULL)
		undecided = ids->spf_domain;
	if (ev->dkim_aligned || ev->spf_aligned)
		return undecided;
	for (i = 0; i < ids->ndkim_open && i < MOAT_DMARC_MAX_IDS && *open == NULL; i++)
		if (align_one(dns, from_domain, &from_org, ids->dkim_open_domains[i],
			ev->rec.adkim_strict, &ev->queries) != ALIGN_NO)
			*open = ids->dkim_open_domains[i];
	if (*open == NULL &&
	    align_one(dns, from_domain, &from_org, ids->spf_open_domain, ev->rec.aspf_strict,
		&ev->queries) != ALIGN_NO)
		*open = ids->spf_open_domain;
	return undecided;
}

enum moat_dmarc_res
moat_dmarc_evaluate(struct moat_dns *dns, const char *from_domain, const struct moat_dmarc_ids *ids,
    struct moat_dmarc_eval *ev)
{
	static __thread struct walk w;
	const struct walk_step *found = NULL;
	const char *undecided, *open;
	bool np_unknown = false;
	size_t i;

	memset(ev, 0, sizeof(*ev));
	ev->policy_tag = "";
	if (from_domain == NULL || from_domain[0] == '\0') {
		ev->result = MOAT_DMARC_PERMERROR;
		snprintf(ev->reason, sizeof(ev->reason), "no single valid RFC5322.From address");
		return ev->result;
	}
	snprintf(ev->from_domain, sizeof(ev->from_domain), "%s", from_domain);
	/* Policy discovery: any failed lookup on the way up could have found the policy. */
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
		(void)align(dns, from_domain, ids, ev, &open);
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
		/* Unanswered, the existence question matters only where np would differ. */
		np_unknown =
		    ne < 0 && ev->rec.np != MOAT_DMARC_P_UNSET && ev->rec.np != ev->applied;
	}
	ev->disposition = ev->rec.testing ? lower(ev->applied) : ev->applied;

	undecided = align(dns, from_domain, ids, ev, &open);
	if (undecided != NULL && !ev->dkim_aligned && !ev->spf_aligned) {
		ev->result = MOAT_DMARC_TEMPERROR;
		snprintf(ev->reason, sizeof(ev->reason),
		    "DNS error deciding whether %s aligns with %s", undecided, from_domain);
		return ev->result;
	}
	if (np_unknown && !ev->dkim_aligned && !ev->spf_aligned) {
		ev->result = MOAT_DMARC_TEMPERROR;
		snprintf(ev->reason, sizeof(ev->reason), "DNS error checking that %s exists",
		    from_domain);
		return ev->result;
	}
	if (open != NULL) {
		ev->result = MOAT_DMARC_TEMPERROR;
		snprintf(ev->reason, sizeof(ev->reason),
		    "%s for %s failed temporarily and could align with %s",
		    ids->spf_open_domain == open ? "SPF" : "DKIM", open, from_domain);
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
		    ev->rec.adkim_strict && ev->rec.aspf_strict         ? "strict"
			: !ev->rec.adkim_strict && !ev->rec.aspf_strict ? "relaxed"
									: "mixed");
	}
	return ev->result;
}

const char *
moat_dmarc_result_name(enum moat_dmarc_res r)
{
	switch (r) {
	case MOAT_DMARC_PASS:
		return "pass";
	case MOAT_DMARC_FAIL:
		return "fail";
	case MOAT_DMARC_TEMPERROR:
		return "temperror";
	case MOAT_DMARC_PERMERROR:
		return "permerror";
	default:
		return "none";
	}
}

const char *
moat_dmarc_policy_name(enum moat_dmarc_policy p)
{
	switch (p) {
	case MOAT_DMARC_P_QUARANTINE:
		return "quarantine";
	case MOAT_DMARC_P_REJECT:
		return "reject";
	default:
		return "none";
	}
}
