/*
 * dkim_verify.c - DKIM verification (RFC 6376, 8301, 8463) with OpenSSL over our own
 * canonicalization (see dkim_verify.h).
 *
 * Owns one struct moat_dkim_verifier per engine (the DNS layer, SHA-256 fetched once, and a
 * bounded cache of decoded public keys) and one struct moat_dkim_msg per message (a bounded copy
 * of the header, the signatures' parsed tags, one body hash per signature).
 *
 * Why not libopendkim: it decodes the public key for every message (OpenSSL 3's decoder made
 * that 38% of the engine's instructions, more than the RSA operation itself), and its body
 * canonicalization cost another quarter. Keys here are decoded once per key record and kept
 * (KEY_SHARDS x KEY_SLOTS, least recently used forgotten); the body goes through the
 * canonicalizer signing uses (dkim_signature.c).
 *
 * What a signature must pass, in this order (each failure named in its reason): our bounded tag
 * parse (moat_dkim_sig_tags: too large, malformed - a repeated tag name included -, non-LDH
 * d=/s= are permerror before any DNS name is built); the RFC 5322 3.6 header counts (exactly
 * one From and Date, at most one of the other single fields: permerror, as libopendkim's
 * STRICTHDRS did); v=1, a known a=, c=, q=, h= containing From, i= (decoded from
 * dkim-quoted-printable) within d=, z= decodable, bh= and b= in base64; the cap on signatures
 * (past it: "policy", no key fetched); rsa-sha1 is fail (RFC 8301 3.1); t=/x=; the key record
 * (v=DKIM1, k=, h=, s=, t=s, p=, no tag twice; an empty p= is a revoked key); RSA under 1024
 * bits is fail (RFC 8301 3.2); the body hash up to l=; the signature over the header hash.
 *
 * This file holds the message and its signatures; the signature parse is in dkim_verify_sig.c,
 * the verifier, its key cache and the signature check in dkim_verify_key.c.
 */
#include "config.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "dkim_signature.h"
#include "dkim_verify.h"
#include "dkim_verify_impl.h"
#include "dkim_verify_int.h"
#include "qp.h"
#include "text.h"

struct moat_dkim_msg {
	struct moat_dkim_verifier *v;
	bool eoh_done;
	/* Everything below is allocated as the message needs it (most carry one signature). */
	struct moat__hdrs h; /* the header fields, as received */
	char strict_err[80]; /* the RFC 5322 3.6 count that failed, or "" */
	size_t nsigs; /* DKIM-Signature fields we evaluate or cap */
	struct moat__vsig *sigs[MOAT_DKIM_SIGS_MAX];
	size_t nrefused; /* DKIM-Signature fields we kept out */
	struct moat_dkim_sig *refused; /* MOAT_DKIM_SIGS_MAX of them, at the first */
};

/* moat__vsig_decide - the signature's result and reason (printf-style), once. */
void
moat__vsig_decide(struct moat__vsig *s, enum moat_dkim_res r, const char *fmt, ...)
{
	va_list ap;

	if (s->decided)
		return;
	s->decided = true;
	s->rep.result = r;
	va_start(ap, fmt);
	vsnprintf(s->rep.reason, sizeof(s->rep.reason), fmt, ap);
	va_end(ap);
}

/* ---- one signature (DKIM-Signature, ARC-Message-Signature, ARC-Seal) ---- */

struct moat__vsig *
moat__vsig_new(enum moat__sig_kind kind, const struct moat_dkim_sig *tags, const char *value,
    size_t len)
{
	struct moat__vsig *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->kind = kind;
	s->rep = *tags;
	moat__vsig_parse(s, value, len);
	return s;
}

void
moat__vsig_body_start(const struct moat_dkim_verifier *v, struct moat__vsig *s)
{
	if (s->decided || s->kind == MOAT__SIG_AS)
		return;
	if ((s->body = moat__dkim_body_new(s->brelaxed, v->sha256)) == NULL) {
		moat__vsig_decide(s, MOAT_DKIM_TEMPERROR, "out of memory");
		return;
	}
	if (s->rep.body_signed >= 0)
		moat__dkim_body_limit(s->body, (size_t)s->rep.body_signed);
}

void
moat__vsig_body(struct moat__vsig *s, const char *chunk, size_t len)
{
	if (s->body != NULL && !s->decided)
		moat__dkim_body_feed(s->body, chunk, len);
}

void
moat__vsig_free(struct moat__vsig *s)
{
	if (s == NULL)
		return;
	free(s->h);
	moat__dkim_body_free(s->body);
	free(s);
}

const void *
moat__dkim_verifier_md(const struct moat_dkim_verifier *v)
{
	return v->sha256;
}

/* ---- message ---- */

struct moat_dkim_msg *
moat_dkim_msg_new(struct moat_dkim_verifier *v)
{
	struct moat_dkim_msg *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->v = v;
	return m;
}

void
moat_dkim_msg_free(struct moat_dkim_msg *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->nsigs; i++)
		moat__vsig_free(m->sigs[i]);
	free(m->refused);
	moat__hdrs_free(&m->h);
	free(m);
}

/* dkim_sig_value_off - "DKIM-Signature" [WSP] ":" ? Returns the offset of the value, or 0. */
static size_t
dkim_sig_value_off(const char *field, size_t len)
{
	static const char name[] = "DKIM-Signature";
	size_t i = sizeof(name) - 1;

	if (len <= i || strncasecmp(field, name, i) != 0)
		return 0;
	while (i < len && (field[i] == ' ' || field[i] == '\t'))
		i++;
	return i < len && field[i] == ':' ? i + 1 : 0;
}

/* moat__hdrs_keep - copy FIELD into the header store; false past its bounds. */
bool
moat__hdrs_keep(struct moat__hdrs *h, const char *field, size_t len)
{
	if (h->n >= HDR_FIELDS_MAX || len > HDR_BYTES_MAX - h->used)
		return false;
	if (h->n == h->fcap) {
		unsigned cap = h->fcap ? h->fcap * 2 : 32;
		size_t *no = realloc(h->off, cap * sizeof(*no)), *nl;
		if (no == NULL)
			return false;
		h->off = no;
		if ((nl = realloc(h->len, cap * sizeof(*nl))) == NULL)
			return false;
		h->len = nl;
		h->fcap = cap;
	}
	if (h->used + len > h->cap) {
		size_t cap = h->cap ? h->cap : 4096;
		char *nb;
		while (cap < h->used + len)
			cap *= 2;
		if ((nb = realloc(h->buf, cap)) == NULL)
			return false;
		h->buf = nb;
		h->cap = cap;
	}
	memcpy(h->buf + h->used, field, len);
	h->off[h->n] = h->used;
	h->len[h->n] = len;
	h->used += len;
	h->n++;
	return true;
}

void
moat__hdrs_free(struct moat__hdrs *h)
{
	free(h->buf);
	free(h->off);
	free(h->len);
	memset(h, 0, sizeof(*h));
}

/* refuse - report a DKIM-Signature field we keep from evaluation (permerror, WHY). */
static void
refuse(struct moat_dkim_msg *m, const struct moat_dkim_sig *tags, bool have_tags, const char *why)
{
	struct moat_dkim_sig *r;

	if (m->nrefused >= MOAT_DKIM_SIGS_MAX)
		return;
	if (m->refused == NULL && (m->refused = calloc(MOAT_DKIM_SIGS_MAX, sizeof(*r))) == NULL)
		return;
	r = &m->refused[m->nrefused++];
	if (have_tags)
		*r = *tags; /* what could be parsed, for the report */
	else
		memset(r, 0, sizeof(*r));
	r->result = MOAT_DKIM_PERMERROR;
	snprintf(r->reason, sizeof(r->reason), "%s", why);
	/* only bytes that are safe to report */
	if (!moat_ldh_name(r->domain, strlen(r->domain)))
		r->domain[0] = '\0';
	if (!moat_ldh_name(r->selector, strlen(r->selector)))
		r->selector[0] = '\0';
}

void
moat_dkim_header(struct moat_dkim_msg *m, const char *field, size_t len)
{
	struct moat_dkim_sig tags;
	struct moat__vsig *s;
	size_t off;

	if (m->eoh_done)
		return;
	if (!moat__hdrs_keep(&m->h, field, len))
		m->h.overflow = true;
	off = dkim_sig_value_off(field, len);
	if (off == 0)
		return;
	if (len > MOAT_DKIM_SIG_FIELD_MAX) {
		refuse(m, NULL, false, "DKIM-Signature field too large");
		return;
	}
	if (moat_dkim_sig_tags(field + off, len - off, &tags) < 0) {
		refuse(m, &tags, true, "malformed DKIM-Signature tag list");
		return;
	}
	if (m->nsigs >= MOAT_DKIM_SIGS_MAX)
		return;
	if (m->nsigs + 1 > m->v->opts.max_signatures) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return;
		s->rep = tags;
		moat__vsig_decide(s, MOAT_DKIM_POLICY, "not evaluated: more than %u signatures",
		    m->v->opts.max_signatures);
	} else if ((s = moat__vsig_new(MOAT__SIG_DKIM, &tags, field + off, len - off)) == NULL) {
		return;
	}
	s->field = m->h.n - 1;
	m->sigs[m->nsigs++] = s;
}

/* strict_counts - RFC 5322 3.6: exactly one From and Date, at most one of the others. */
static void
strict_counts(struct moat_dkim_msg *m)
{
	static const char *const once[] = { "From", "Date", "Sender", "Reply-To", "To", "Cc", "Bcc",
		"Message-ID", "In-Reply-To", "References", "Subject" };
	unsigned n[sizeof(once) / sizeof(once[0])] = { 0 };
	size_t i, k;

	for (i = 0; i < m->h.n; i++) {
		const char *f = m->h.buf + m->h.off[i], *c = memchr(f, ':', m->h.len[i]);
		size_t nl;
		if (c == NULL)
			continue;
		nl = (size_t)(c - f);
		while (nl > 0 && (f[nl - 1] == ' ' || f[nl - 1] == '\t'))
			nl--;
		for (k = 0; k < sizeof(once) / sizeof(once[0]); k++)
			if (strlen(once[k]) == nl && strncasecmp(f, once[k], nl) == 0)
				n[k]++;
	}
	for (k = 0; k < sizeof(once) / sizeof(once[0]); k++) {
		if (n[k] > 1)
			snprintf(m->strict_err, sizeof(m->strict_err),
			    "multiple %s: header fields present", once[k]);
		else if (k < 2 && n[k] == 0)
			snprintf(m->strict_err, sizeof(m->strict_err), "%s: header field absent",
			    once[k]);
		if (m->strict_err[0])
			return;
	}
}

void
moat_dkim_eoh(struct moat_dkim_msg *m)
{
	size_t i;

	if (m->eoh_done)
		return;
	m->eoh_done = true;
	if (m->nsigs == 0)
		return;
	strict_counts(m);
	for (i = 0; i < m->nsigs; i++) {
		struct moat__vsig *s = m->sigs[i];
		/* a refused header outranks what was decided for the signature alone */
		if (m->h.overflow || m->strict_err[0])
			s->decided = false;
		if (m->h.overflow)
			moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "header too large to verify");
		if (m->strict_err[0])
			moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "%s", m->strict_err);
		moat__vsig_body_start(m->v, s);
	}
}

void
moat_dkim_body(struct moat_dkim_msg *m, const char *chunk, size_t len)
{
	size_t i;

	if (!m->eoh_done)
		moat_dkim_eoh(m);
	for (i = 0; i < m->nsigs && len > 0; i++)
		moat__vsig_body(m->sigs[i], chunk, len);
}

size_t
moat_dkim_eom(struct moat_dkim_msg *m, struct moat_dkim_sig *sigs, size_t max)
{
	size_t n = 0, k;

	if (!m->eoh_done)
		moat_dkim_eoh(m);
	for (k = 0; k < m->nsigs && n < max; k++) {
		struct moat__vsig *s = m->sigs[k];
		moat__vsig_finish(m->v, s, &m->h, NULL, m->h.buf + m->h.off[s->field],
		    m->h.len[s->field], NULL);
		sigs[n++] = s->rep;
	}
	for (k = 0; k < m->nrefused && n < max; k++)
		sigs[n++] = m->refused[k];
	return n;
}

const char *
moat_dkim_result_name(enum moat_dkim_res r)
{
	switch (r) {
	case MOAT_DKIM_PASS:
		return "pass";
	case MOAT_DKIM_FAIL:
		return "fail";
	case MOAT_DKIM_NEUTRAL:
		return "neutral";
	case MOAT_DKIM_POLICY:
		return "policy";
	case MOAT_DKIM_TEMPERROR:
		return "temperror";
	case MOAT_DKIM_PERMERROR:
		return "permerror";
	default:
		return "none";
	}
}
