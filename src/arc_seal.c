/*
 * arc_seal.c - our ARC set on outbound mail (see arc_seal.h).
 *
 * Owns, for one message: a copy of the ARC fields already in the header (the seal signs them),
 * the new ARC-Authentication-Results value, the ARC-Message-Signature being made (dkim_signature.c,
 * relaxed/relaxed, the signer's header lists) and its relaxed body hash. The ARC-Seal is made at
 * the end, over the fields moat__arc_seal_input lays out, the same layout the verifier checks.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arc_int.h"
#include "arc_seal.h"
#include "arc_verify.h"
#include "authres_parse.h"

struct moat_arc_seal {
	struct moat__dkim_sig_params key; /* instance and cv set */
	struct moat__hdrs chain; /* the ARC fields of the header, in header order */
	bool complete; /* every instance 1 .. instance - 1 has exactly one field of each kind */
	char *aar; /* the new AAR value */
	struct moat__dkim_sig *ams;
	struct moat__dkim_body *body; /* relaxed */
};

void
moat_arc_seal_free(struct moat_arc_seal *a)
{
	if (a == NULL)
		return;
	moat__hdrs_free(&a->chain);
	free(a->aar);
	moat__dkim_sig_free(a->ams);
	moat__dkim_body_free(a->body);
	free(a);
}

static bool
seal_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * ours_arc - the arc= result in our Authentication-Results value V (we wrote it: "; arc=RESULT"
 * with the ';' perhaps folded): "pass", "fail", "none", or NULL when there is none.
 */
static const char *
ours_arc(const char *v, size_t len)
{
	static const char *const results[] = { "pass", "fail", "none" };

	for (size_t i = 0; i + 4 <= len; i++) {
		size_t b = i;
		if (memcmp(v + i, "arc=", 4) != 0)
			continue;
		while (b > 0 && seal_fws(v[b - 1]))
			b--;
		if (b == 0 || v[b - 1] != ';')
			continue;
		for (size_t r = 0; r < 3; r++)
			if (len - i - 4 >= 4 && memcmp(v + i + 4, results[r], 4) == 0 &&
			    (len - i - 4 == 4 || v[i + 8] == ';' || seal_fws(v[i + 8])))
				return results[r];
		return NULL;
	}
	return NULL;
}

/* seal_chain - copy the ARC fields; the highest instance, and whether the sets are complete. */
static int
seal_chain(struct moat_arc_seal *a, const char *buf, const size_t *off, const size_t *len,
    unsigned n, unsigned *max)
{
	unsigned count[MOAT_ARC_INSTANCES_MAX][MOAT__ARC_KINDS] = { { 0 } };
	bool bad = false;

	*max = 0;
	for (unsigned i = 0; i < n; i++) {
		size_t voff;
		unsigned inst;
		int k = moat__arc_field(buf + off[i], len[i], &voff, &inst);
		if (k < 0)
			continue;
		if (!moat__hdrs_keep(&a->chain, buf + off[i], len[i]))
			return -1;
		if (inst == 0 || inst > MOAT_ARC_INSTANCES_MAX)
			bad = true;
		else
			count[inst - 1][k]++;
		if (inst > *max)
			*max = inst;
	}
	for (unsigned j = 0; j < *max && j < MOAT_ARC_INSTANCES_MAX && !bad; j++)
		for (int k = 0; k < MOAT__ARC_KINDS; k++)
			bad = bad || count[j][k] != 1;
	a->complete = !bad;
	return 0;
}

struct moat_arc_seal *
moat_arc_seal_begin(const struct moat__dkim_sig_params *key, const char *authserv_id,
    const char *buf, const size_t *off, const size_t *len, unsigned n, char *why, size_t whylen)
{
	struct moat_arc_seal *a;
	const char *ours = NULL, *cv;
	size_t ourslen = 0, need;
	unsigned max;

	if (buf == NULL || n == 0) {
		snprintf(why, whylen, "nothing to attest: no header");
		return NULL;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL || seal_chain(a, buf, off, len, n, &max) < 0) {
		snprintf(why, whylen, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < n && ours == NULL; i++) {
		const char *f = buf + off[i];
		size_t v = moat_authres_field_value(f, len[i]);
		if (v == 0 || !moat_authres_is_ours(f, len[i], authserv_id))
			continue;
		while (v < len[i] && seal_fws(f[v]))
			v++;
		ours = f + v;
		ourslen = len[i] - v;
	}
	if (max == 0 && ours == NULL) {
		snprintf(why, whylen,
		    "nothing to attest: no ARC chain and no Authentication-Results of ours");
		goto fail;
	}
	if (max >= MOAT_ARC_INSTANCES_MAX) {
		snprintf(why, whylen, "the chain has %u sets already (RFC 8617 4.2.1)", max);
		goto fail;
	}
	/* RFC 8617 5.1.1: cv is what this ADMD found when the message came in */
	cv = max == 0 ? "none" : ours != NULL ? ours_arc(ours, ourslen) : NULL;
	if (max > 0 && (cv == NULL || strcmp(cv, "pass") != 0 || !a->complete))
		cv = "fail";
	a->key = *key;
	a->key.instance = max + 1;
	a->key.cv = cv;
	need = ourslen + strlen(authserv_id) + 32;
	if ((a->aar = malloc(need)) == NULL) {
		snprintf(why, whylen, "out of memory");
		goto fail;
	}
	if (ours != NULL)
		snprintf(a->aar, need, "i=%u; %.*s", a->key.instance, (int)ourslen, ours);
	else
		snprintf(a->aar, need, "i=%u; %s; none", a->key.instance, authserv_id);
	{
		struct moat__dkim_sig_params p = a->key;
		p.cv = NULL;
		p.hrelaxed = p.brelaxed = true;
		p.ttl = 0;
		if ((a->ams = moat__dkim_sig_begin(&p)) == NULL ||
		    moat__dkim_sig_header(a->ams, buf, off, len, n) < 0 ||
		    (a->body = moat__dkim_body_new(true, key->md)) == NULL) {
			snprintf(why, whylen, "the ARC-Message-Signature cannot start");
			goto fail;
		}
	}
	return a;
fail:
	moat_arc_seal_free(a);
	return NULL;
}

void
moat_arc_seal_body(struct moat_arc_seal *a, const char *chunk, size_t len)
{
	moat__dkim_body_feed(a->body, chunk, len);
}

/* seal_field - "Name: value" into a new string. */
static char *
seal_field(const char *name, const char *value)
{
	size_t n = strlen(name) + strlen(value) + 3;
	char *f = malloc(n);

	if (f != NULL)
		snprintf(f, n, "%s: %s", name, value);
	return f;
}

/* seal_sign - the ARC-Seal value over the chain (cv=pass) or the new set alone (cv=fail). */
static char *
seal_sign(struct moat_arc_seal *a, const char *aar, const char *ams)
{
	struct moat__arc_text set[MOAT_ARC_INSTANCES_MAX][MOAT__ARC_KINDS] = { { { 0 } } };
	struct moat__hdrs h = { 0 };
	char hlist[MOAT__ARC_HLIST_MAX];
	unsigned top = strcmp(a->key.cv, "fail") == 0 ? 1 : a->key.instance;
	struct moat__dkim_sig *seal = NULL;
	char *value = NULL;

	for (unsigned i = 0; top > 1 && i < a->chain.n; i++) {
		size_t voff;
		unsigned inst;
		int k =
		    moat__arc_field(a->chain.buf + a->chain.off[i], a->chain.len[i], &voff, &inst);
		set[inst - 1][k].p = a->chain.buf + a->chain.off[i];
		set[inst - 1][k].len = a->chain.len[i];
	}
	set[top - 1][MOAT__ARC_AAR] = (struct moat__arc_text){ aar, strlen(aar) };
	set[top - 1][MOAT__ARC_AMS] = (struct moat__arc_text){ ams, strlen(ams) };
	if (moat__arc_seal_input(set, top, &h, hlist, sizeof(hlist)) == 0 &&
	    (seal = moat__dkim_sig_begin(&a->key)) != NULL &&
	    moat__dkim_sig_fields(seal, hlist, h.buf, h.off, h.len, h.n) == 0)
		value = moat__dkim_sig_end(seal, NULL);
	moat__dkim_sig_free(seal);
	moat__hdrs_free(&h);
	return value;
}

int
moat_arc_seal_end(struct moat_arc_seal *a, char *out[3], char *why, size_t whylen)
{
	unsigned char bh[MOAT_DKIM_BH_LEN];
	char *aar = NULL, *ams = NULL;

	out[0] = out[1] = out[2] = NULL;
	if (moat__dkim_body_end(a->body, bh) < 0 ||
	    (out[1] = moat__dkim_sig_end(a->ams, bh)) == NULL ||
	    (aar = seal_field(moat__arc_names[MOAT__ARC_AAR], a->aar)) == NULL ||
	    (ams = seal_field(moat__arc_names[MOAT__ARC_AMS], out[1])) == NULL ||
	    (out[2] = seal_sign(a, aar, ams)) == NULL || (out[0] = strdup(a->aar)) == NULL) {
		for (int i = 0; i < 3; i++) {
			free(out[i]);
			out[i] = NULL;
		}
		snprintf(why, whylen, "i=%u: signing with s=%s d=%s failed", a->key.instance,
		    a->key.selector, a->key.domain);
	} else {
		snprintf(why, whylen, "i=%u cv=%s d=%s s=%s a=%s", a->key.instance, a->key.cv,
		    a->key.domain, a->key.selector, moat_key_alg_name(a->key.alg));
	}
	free(aar);
	free(ams);
	return out[0] != NULL ? 0 : -1;
}
