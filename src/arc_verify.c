/*
 * arc_verify.c - ARC chain validation (RFC 8617 5.2) and the reading of ARC-Authentication-
 * Results values (see arc_verify.h).
 *
 * Owns one struct moat_arc_msg per message: a bounded copy of the header (the AMS signs any
 * field), the ARC fields found in it with their instance, one parsed signature (struct
 * moat__vsig, dkim_verify_int.h) per ARC-Message-Signature and ARC-Seal, and the body hashes
 * the AMSs share. Keys, canonicalization and crypto are the DKIM verifier's.
 *
 * The order of the checks (RFC 8617 5.2), each failure named in the reason: the structure
 * (instances 1 to N, each with exactly one AAR, AMS and AS; N within 50 and the cap; every field
 * within MOAT_DKIM_SIG_FIELD_MAX); the newest seal's cv= (fail: the chain ended earlier); the
 * newest AMS; each seal's cv= against its instance (none for 1, pass above) and its signature,
 * newest first; then, for header.oldest-pass, the older AMSs newest first until one fails.
 */
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arc_verify.h"
#include "arc_int.h"
#include "text.h"

const char *const moat__arc_names[MOAT__ARC_KINDS] = { "ARC-Authentication-Results",
	"ARC-Message-Signature", "ARC-Seal" };

/* One ARC field of the header. */
struct arc_field {
	enum moat__arc_kind kind;
	unsigned instance;
	unsigned field; /* index in the header copy */
	struct moat__vsig *sig; /* AMS and AS; NULL for the AAR */
};

struct moat_arc_msg {
	struct moat_dkim_verifier *v;
	unsigned cap;
	bool eoh_done, eom_done;
	struct moat__hdrs h;
	struct arc_field f[MOAT__ARC_KINDS * MOAT_ARC_INSTANCES_MAX];
	size_t nf;
	char bad[96]; /* a structural failure seen while reading, or "" */
	struct moat__dkim_body *body[2]; /* shared by the AMSs without l=: [brelaxed] */
	struct moat_arc_result r;
};

struct moat_arc_msg *
moat_arc_msg_new(struct moat_dkim_verifier *v, unsigned cap)
{
	struct moat_arc_msg *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->v = v;
	m->cap = cap == 0 || cap > MOAT_ARC_INSTANCES_MAX ? MOAT_ARC_INSTANCES_MAX : cap;
	return m;
}

void
moat_arc_msg_free(struct moat_arc_msg *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nf; i++)
		moat__vsig_free(m->f[i].sig);
	moat__dkim_body_free(m->body[0]);
	moat__dkim_body_free(m->body[1]);
	moat__hdrs_free(&m->h);
	free(m);
}

/* arc_kind_of - which ARC field FIELD is ("Name" [WSP] ":"), with the offset of its value. */
static int
arc_kind_of(const char *field, size_t len, size_t *voff)
{
	for (int k = 0; k < MOAT__ARC_KINDS; k++) {
		size_t n = strlen(moat__arc_names[k]), i = n;
		if (len <= n || strncasecmp(field, moat__arc_names[k], n) != 0)
			continue;
		while (i < len && (field[i] == ' ' || field[i] == '\t'))
			i++;
		if (i < len && field[i] == ':') {
			*voff = i + 1;
			return k;
		}
	}
	return -1;
}

static bool
arc_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* aar_instance - RFC 8617 4.1.1: an AAR value starts with "i=" instance ";". 0 if not. */
static unsigned
aar_instance(const char *v, size_t len)
{
	size_t i = 0, d = 0;
	unsigned n = 0;

	while (i < len && arc_fws(v[i]))
		i++;
	if (i >= len || (v[i] != 'i' && v[i] != 'I'))
		return 0;
	for (i++; i < len && arc_fws(v[i]); i++)
		;
	if (i >= len || v[i++] != '=')
		return 0;
	while (i < len && arc_fws(v[i]))
		i++;
	for (; i < len && isdigit((unsigned char)v[i]) && d < 3; i++, d++)
		n = n * 10 + (unsigned)(v[i] - '0');
	while (i < len && arc_fws(v[i]))
		i++;
	return d > 0 && i < len && v[i] == ';' ? n : 0;
}

int
moat__arc_field(const char *field, size_t len, size_t *voff, unsigned *instance)
{
	int k = arc_kind_of(field, len, voff);
	const char *v;
	size_t vl, i;

	*instance = 0;
	if (k == MOAT__ARC_AAR) {
		*instance = aar_instance(field + *voff, len - *voff);
	} else if (k > 0 && moat__dkim_tag(field + *voff, len - *voff, "i", &v, &vl) && vl > 0 &&
	    vl <= 3) {
		for (i = 0; i < vl && isdigit((unsigned char)v[i]); i++)
			*instance = *instance * 10 + (unsigned)(v[i] - '0');
		if (i < vl)
			*instance = 0;
	}
	return k;
}

/* arc_bad - note the first structural failure (printf-style). */
static void arc_bad(struct moat_arc_msg *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
arc_bad(struct moat_arc_msg *m, const char *fmt, ...)
{
	va_list ap;

	if (m->bad[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(m->bad, sizeof(m->bad), fmt, ap);
	va_end(ap);
}

void
moat_arc_header(struct moat_arc_msg *m, const char *field, size_t len)
{
	struct moat_dkim_sig tags;
	struct arc_field *f;
	size_t voff;
	unsigned instance;
	int k;

	if (m->eoh_done)
		return;
	if (!moat__hdrs_keep(&m->h, field, len))
		m->h.overflow = true;
	if ((k = moat__arc_field(field, len, &voff, &instance)) < 0 || m->bad[0] != '\0')
		return;
	if (m->nf == sizeof(m->f) / sizeof(m->f[0])) {
		arc_bad(m, "more ARC fields than %u sets hold", MOAT_ARC_INSTANCES_MAX);
		return;
	}
	if (len > MOAT_DKIM_SIG_FIELD_MAX) {
		arc_bad(m, "%s field too large", moat__arc_names[k]);
		return;
	}
	f = &m->f[m->nf];
	f->kind = (enum moat__arc_kind)k;
	f->field = m->h.n - 1;
	f->instance = instance;
	f->sig = NULL;
	if (k == MOAT__ARC_AAR) {
		/* its instance is all that is read before the chain is decided */
	} else if (moat_dkim_sig_tags(field + voff, len - voff, &tags) < 0) {
		arc_bad(m, "malformed %s tag list", moat__arc_names[k]);
		return;
	} else {
		f->sig = moat__vsig_new(k == MOAT__ARC_AMS ? MOAT__SIG_AMS : MOAT__SIG_AS, &tags,
		    field + voff, len - voff);
		if (f->sig == NULL) {
			arc_bad(m, "out of memory");
			return;
		}
	}
	m->nf++;
	if (f->instance == 0)
		arc_bad(m, "%s without a valid instance", moat__arc_names[k]);
	else if (f->instance > MOAT_ARC_INSTANCES_MAX) /* RFC 8617 4.2.1 */
		arc_bad(m, "%s instance %u is above %u", moat__arc_names[k], f->instance,
		    MOAT_ARC_INSTANCES_MAX);
	else if (f->instance > m->cap)
		arc_bad(m, "%s instance %u is above arc_max_instances", moat__arc_names[k],
		    f->instance);
}

void
moat_arc_eoh(struct moat_arc_msg *m)
{
	if (m->eoh_done)
		return;
	m->eoh_done = true;
	if (m->bad[0] != '\0')
		return;
	for (size_t i = 0; i < m->nf; i++) {
		struct moat__vsig *s = m->f[i].sig;
		if (s == NULL || s->kind != MOAT__SIG_AMS || s->decided)
			continue;
		if (s->rep.body_signed >= 0)
			moat__vsig_body_start(m->v, s);
		else if (m->body[s->brelaxed] == NULL)
			m->body[s->brelaxed] =
			    moat__dkim_body_new(s->brelaxed, moat__dkim_verifier_md(m->v));
	}
}

void
moat_arc_body(struct moat_arc_msg *m, const char *chunk, size_t len)
{
	if (!m->eoh_done)
		moat_arc_eoh(m);
	for (int b = 0; b < 2; b++)
		if (m->body[b] != NULL)
			moat__dkim_body_feed(m->body[b], chunk, len);
	for (size_t i = 0; i < m->nf; i++)
		if (m->f[i].sig != NULL)
			moat__vsig_body(m->f[i].sig, chunk, len);
}

/* arc_fail - the chain fails with a reason (printf-style). */
static const struct moat_arc_result *arc_fail(struct moat_arc_msg *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static const struct moat_arc_result *
arc_fail(struct moat_arc_msg *m, const char *fmt, ...)
{
	va_list ap;

	m->r.result = MOAT_ARC_FAIL;
	va_start(ap, fmt);
	vsnprintf(m->r.reason, sizeof(m->r.reason), fmt, ap);
	va_end(ap);
	return &m->r;
}

/* arc_field_text - the raw field F of the header copy. */
static const char *
arc_field_text(const struct moat_arc_msg *m, const struct arc_field *f, size_t *len)
{
	*len = m->h.len[f->field];
	return m->h.buf + m->h.off[f->field];
}

/* ams_verify - decide the AMS of SET with the body hash it shares (or its own). */
static bool
ams_verify(struct moat_arc_msg *m, struct arc_field *ams, const unsigned char bh[2][32],
    const bool have_bh[2])
{
	size_t len;
	const char *text = arc_field_text(m, ams, &len);
	struct moat__vsig *s = ams->sig;

	moat__vsig_finish(m->v, s, &m->h, NULL, text, len,
	    s->body == NULL && have_bh[s->brelaxed] ? bh[s->brelaxed] : NULL);
	return s->rep.result == MOAT_DKIM_PASS;
}

int
moat__arc_seal_input(const struct moat__arc_text (*set)[MOAT__ARC_KINDS], unsigned i,
    struct moat__hdrs *out, char *hlist, size_t hlistlen)
{
	size_t o = 0;

	for (unsigned j = i; j >= 1; j--)
		for (int k = MOAT__ARC_KINDS - 1; k >= 0; k--)
			if (!(j == i && k == MOAT__ARC_AS) &&
			    !moat__hdrs_keep(out, set[j - 1][k].p, set[j - 1][k].len))
				return -1;
	hlist[0] = '\0';
	for (unsigned j = 1; j <= i; j++)
		for (int k = 0; k < MOAT__ARC_KINDS && !(j == i && k == MOAT__ARC_AS); k++)
			o += (size_t)snprintf(hlist + o, o < hlistlen ? hlistlen - o : 0, "%s%s",
			    o ? ":" : "", moat__arc_names[k]);
	return o < hlistlen ? 0 : -1;
}

/* seal_verify - decide the ARC-Seal of instance I over what it signs (moat__arc_seal_input). */
static bool
seal_verify(struct moat_arc_msg *m, struct arc_field *(*set)[MOAT__ARC_KINDS], unsigned i)
{
	struct moat__arc_text text[MOAT_ARC_INSTANCES_MAX][MOAT__ARC_KINDS];
	struct moat__hdrs h = { 0 };
	char hlist[MOAT__ARC_HLIST_MAX];
	struct moat__vsig *as = set[i - 1][MOAT__ARC_AS]->sig;
	size_t seal_len;
	const char *seal = arc_field_text(m, set[i - 1][MOAT__ARC_AS], &seal_len);

	for (unsigned j = 1; j <= i; j++)
		for (int k = 0; k < MOAT__ARC_KINDS; k++)
			text[j - 1][k].p = arc_field_text(m, set[j - 1][k], &text[j - 1][k].len);
	if (moat__arc_seal_input(text, i, &h, hlist, sizeof(hlist)) < 0) {
		moat__hdrs_free(&h);
		as->rep.result = MOAT_DKIM_TEMPERROR;
		snprintf(as->rep.reason, sizeof(as->rep.reason), "out of memory");
		return false;
	}
	moat__vsig_finish(m->v, as, &h, hlist, seal, seal_len, NULL);
	moat__hdrs_free(&h);
	return as->rep.result == MOAT_DKIM_PASS;
}

const struct moat_arc_result *
moat_arc_eom(struct moat_arc_msg *m)
{
	struct arc_field *set[MOAT_ARC_INSTANCES_MAX][MOAT__ARC_KINDS];
	unsigned char bh[2][32];
	bool have_bh[2] = { false, false };
	unsigned n = 0, i;
	size_t k;

	if (m->eom_done)
		return &m->r;
	m->eom_done = true;
	if (!m->eoh_done)
		moat_arc_eoh(m);
	if (m->nf == 0 && m->bad[0] == '\0')
		return &m->r; /* arc=none */
	if (m->bad[0] != '\0')
		return arc_fail(m, "%s", m->bad);
	if (m->h.overflow)
		return arc_fail(m, "header too large to verify");
	/* RFC 8617 5.2 step 2: every instance from 1 to N, each set complete and single */
	memset(set, 0, sizeof(set));
	for (k = 0; k < m->nf; k++) {
		struct arc_field *f = &m->f[k];
		if (set[f->instance - 1][f->kind] != NULL)
			return arc_fail(m, "duplicate %s for instance %u", moat__arc_names[f->kind],
			    f->instance);
		set[f->instance - 1][f->kind] = f;
		if (f->instance > n)
			n = f->instance;
	}
	assert(n >= 1); /* nf > 0, and an instance below 1 is a structural failure (m->bad) */
	m->r.instances = n;
	for (i = 1; i <= n; i++)
		for (k = 0; k < MOAT__ARC_KINDS; k++)
			if (set[i - 1][k] == NULL)
				return arc_fail(m, "no %s for instance %u", moat__arc_names[k], i);
	if (strcmp(set[n - 1][MOAT__ARC_AS]->sig->cv, "fail") == 0)
		return arc_fail(m, "ARC-Seal %u says cv=fail", n);
	for (int b = 0; b < 2; b++)
		if (m->body[b] != NULL && moat__dkim_body_end(m->body[b], bh[b]) == 0)
			have_bh[b] = true;
	/* step 3: the newest AMS */
	if (!ams_verify(m, set[n - 1][MOAT__ARC_AMS], bh, have_bh))
		return arc_fail(m, "ARC-Message-Signature %u: %s", n,
		    set[n - 1][MOAT__ARC_AMS]->sig->rep.reason);
	/* step 6: every seal, newest first, with the cv= its place requires */
	for (i = n; i >= 1; i--) {
		const char *cv = set[i - 1][MOAT__ARC_AS]->sig->cv;
		if (strcmp(cv, i == 1 ? "none" : "pass") != 0)
			return arc_fail(m, "ARC-Seal %u says cv=%s", i, cv);
		if (!seal_verify(m, set, i))
			return arc_fail(m, "ARC-Seal %u: %s", i,
			    set[i - 1][MOAT__ARC_AS]->sig->rep.reason);
	}
	/* step 5: oldest-pass, the oldest AMS from which every newer one validates */
	for (i = n - 1; i >= 1; i--)
		if (!ams_verify(m, set[i - 1][MOAT__ARC_AMS], bh, have_bh)) {
			m->r.oldest_pass = i + 1;
			break;
		}
	m->r.result = MOAT_ARC_PASS;
	for (i = 1; i <= n; i++) {
		struct moat_arc_hop *hop = &m->r.hop[i - 1];
		size_t voff, len;
		const char *aar = arc_field_text(m, set[i - 1][MOAT__ARC_AAR], &len);
		snprintf(hop->sealer, sizeof(hop->sealer), "%s",
		    set[i - 1][MOAT__ARC_AS]->sig->rep.domain);
		(void)arc_kind_of(aar, len, &voff);
		hop->aar = aar + voff;
		hop->aar_len = len - voff;
	}
	return &m->r;
}

const char *
moat_arc_result_name(enum moat_arc_res r)
{
	switch (r) {
	case MOAT_ARC_PASS:
		return "pass";
	case MOAT_ARC_FAIL:
		return "fail";
	default:
		return "none";
	}
}

/* ---- ARC-Authentication-Results values (RFC 8601 2.2 syntax) ---- */

/* A cursor over a value. */
struct aar_cur {
	const char *p, *end;
};

/* aar_cfws - skip folding white space and comments (nested at most 8 deep); false if a comment
 * does not end. */
static bool
aar_cfws(struct aar_cur *c)
{
	while (c->p < c->end) {
		if (arc_fws(*c->p)) {
			c->p++;
		} else if (*c->p == '(') {
			unsigned depth = 0;
			do {
				if (*c->p == '\\' && c->p + 1 < c->end)
					c->p++;
				else if (*c->p == '(' && ++depth > 8)
					return false;
				else if (*c->p == ')')
					depth--;
				c->p++;
			} while (depth > 0 && c->p < c->end);
			if (depth > 0)
				return false;
		} else {
			break;
		}
	}
	return true;
}

/* aar_word - a token or quoted-string into out (unescaped, at most outlen - 1 bytes, longer is
 * cut); STOP are the bytes a token ends at besides CFWS. False when there is none. */
static bool
aar_word(struct aar_cur *c, const char *stop, char *out, size_t outlen)
{
	size_t o = 0;
	bool quoted = false;

	if (!aar_cfws(c) || c->p >= c->end)
		return false;
	if (*c->p == '"') {
		quoted = true;
		for (c->p++; c->p < c->end && *c->p != '"'; c->p++) {
			if (*c->p == '\\' && c->p + 1 < c->end)
				c->p++;
			if (o + 1 < outlen)
				out[o++] = *c->p;
		}
		if (c->p >= c->end)
			return false;
		c->p++;
	}
	/* a token, or what follows a quoted local-part ("a b"@example.com) */
	for (; c->p < c->end && !arc_fws(*c->p) && *c->p != '(' && *c->p != '"' &&
	     strchr(stop, *c->p) == NULL;
	     c->p++)
		if (o + 1 < outlen)
			out[o++] = *c->p;
	if (o == 0 && !quoted)
		return false;
	out[o] = '\0';
	return true;
}

/* aar_id - the domain of an identifier (after the last '@'), lower case, if an LDH name. */
static bool
aar_id(const char *v, struct moat_arc_aar_id *id)
{
	const char *at = strrchr(v, '@');
	const char *d = at != NULL ? at + 1 : v;
	size_t i;

	if (strlen(d) >= sizeof(id->domain) || !moat_ldh_name(d, strlen(d)))
		return false;
	for (i = 0; d[i]; i++)
		id->domain[i] = (char)tolower((unsigned char)d[i]);
	id->domain[i] = '\0';
	return true;
}

int
moat_arc_aar_ids(const char *value, size_t len, struct moat_arc_aar_id *out, size_t max)
{
	struct aar_cur c = { value, value + len };
	char word[320], prop[320];
	int n = 0;

	if (aar_instance(value, len) == 0 || memchr(value, '\0', len) != NULL)
		return -1;
	c.p = (const char *)memchr(value, ';', len) + 1;
	/* authserv-id [version] */
	if (!aar_word(&c, ";", word, sizeof(word)))
		return -1;
	if (!aar_cfws(&c))
		return -1;
	if (c.p < c.end && isdigit((unsigned char)*c.p) && !aar_word(&c, ";", word, sizeof(word)))
		return -1;
	while (aar_cfws(&c) && c.p < c.end) {
		char method[32], result[32];
		bool spf, dkim;
		if (*c.p != ';')
			return -1;
		c.p++;
		if (!aar_cfws(&c))
			return -1;
		if (c.p >= c.end)
			break;
		/* method [ "/" version ] "=" result, then reason= and ptype.property=value */
		if (!aar_word(&c, "=;/", method, sizeof(method)))
			return -1;
		if (aar_cfws(&c) && c.p < c.end && *c.p == '/') {
			c.p++;
			if (!aar_word(&c, "=;", word, sizeof(word)))
				return -1;
		}
		if (!aar_cfws(&c) || c.p >= c.end || *c.p != '=')
			return strcasecmp(method, "none") == 0 ? n : -1;
		c.p++;
		if (!aar_word(&c, ";", result, sizeof(result)))
			return -1;
		spf = strcasecmp(method, "spf") == 0 && strcasecmp(result, "pass") == 0;
		dkim = strcasecmp(method, "dkim") == 0 && strcasecmp(result, "pass") == 0;
		while (aar_cfws(&c) && c.p < c.end && *c.p != ';') {
			struct moat_arc_aar_id id = { .spf = spf };
			if (!aar_word(&c, "=;", prop, sizeof(prop)) || !aar_cfws(&c) ||
			    c.p >= c.end || *c.p != '=')
				return -1;
			c.p++;
			if (!aar_word(&c, ";", word, sizeof(word)))
				return -1;
			if ((size_t)n < max &&
			    ((spf && strcasecmp(prop, "smtp.mailfrom") == 0) ||
				(dkim &&
				    (strcasecmp(prop, "header.d") == 0 ||
					strcasecmp(prop, "header.i") == 0))) &&
			    aar_id(word, &id))
				out[n++] = id;
		}
	}
	return c.p >= c.end ? n : -1;
}
