/*
 * dkim_verify_sig.c - parsing a signature field (RFC 6376 3.2, 3.5; RFC 8617 4.1 for ARC's):
 * the tag-list primitives (also used for key records), the bounded tag parse of a DKIM-Signature,
 * the i= identity, and the checks of every tag before any DNS name is built. Owns nothing.
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

/* ---- tag lists (RFC 6376 3.2) ---- */

/* moat__dkim_is_fws - a folding-whitespace byte (RFC 6376 2.8). */
bool
moat__dkim_is_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * moat__dkim_tag_next - the next tag of the list at *p (up to end): name and value without surrounding
 * FWS. 1: a tag; 0: the end (an empty last element is allowed); -1: malformed (an empty
 * element, no '=', a bad tag-name, a value byte outside %x21-7E and FWS).
 */
int
moat__dkim_tag_next(const char **p, const char *end, const char **name, size_t *nlen,
    const char **val, size_t *vlen)
{
	const char *semi, *te, *ns, *ne, *vs, *ve, *eq;
	size_t i;

	if (*p >= end)
		return 0;
	semi = memchr(*p, ';', (size_t)(end - *p));
	te = semi ? semi : end;
	ns = *p;
	*p = semi ? semi + 1 : end;
	while (ns < te && moat__dkim_is_fws(*ns))
		ns++;
	if (ns == te)
		return semi == NULL ? 0 : -1;
	if ((eq = memchr(ns, '=', (size_t)(te - ns))) == NULL)
		return -1;
	ne = eq;
	while (ne > ns && moat__dkim_is_fws(ne[-1]))
		ne--;
	/* tag-name = ALPHA *ALNUMPUNC */
	if (!isalpha((unsigned char)*ns))
		return -1;
	for (i = 1; ns + i < ne; i++)
		if (!isalnum((unsigned char)ns[i]) && ns[i] != '_')
			return -1;
	vs = eq + 1;
	ve = te;
	while (vs < ve && moat__dkim_is_fws(*vs))
		vs++;
	while (ve > vs && moat__dkim_is_fws(ve[-1]))
		ve--;
	for (i = 0; vs + i < ve; i++) {
		unsigned char c = (unsigned char)vs[i];
		if (!(c >= 0x21 && c <= 0x7e) && !moat__dkim_is_fws((char)c))
			return -1;
	}
	*name = ns;
	*nlen = (size_t)(ne - ns);
	*val = vs;
	*vlen = (size_t)(ve - vs);
	return 1;
}

/* A tag name: a span of the list. */
struct tag_name {
	const char *p;
	size_t n;
};

static int
tag_name_cmp(const void *a, const void *b)
{
	const struct tag_name *x = a, *y = b;

	if (x->n != y->n)
		return x->n < y->n ? -1 : 1;
	return memcmp(x->p, y->p, x->n);
}

/*
 * moat__dkim_tags_unique - false when a tag name occurs twice in the list at VALUE (RFC 6376 3.2: "the
 * entire tag-list is invalid"), or when memory runs out. Every name counts, whatever its length,
 * compared exactly (3.2: case-sensitive). The names are sorted, so a hostile list of thousands
 * of tags costs n log n comparisons, never n squared. Only the well-formed prefix of the list is
 * looked at: a malformed element is the parser's to report.
 */
bool
moat__dkim_tags_unique(const char *value, size_t len)
{
	const char *p = value, *end = value + len, *vs;
	size_t max = len / 2 + 1, n = 0, vl, i; /* a tag takes at least "x=" */
	struct tag_name *names = malloc(max * sizeof(*names));
	bool unique = true;

	if (names == NULL)
		return false;
	while (n < max && moat__dkim_tag_next(&p, end, &names[n].p, &names[n].n, &vs, &vl) == 1)
		n++;
	qsort(names, n, sizeof(*names), tag_name_cmp);
	for (i = 1; i < n && unique; i++)
		unique = tag_name_cmp(&names[i - 1], &names[i]) != 0;
	free(names);
	return unique;
}

bool
moat__dkim_tag(const char *value, size_t len, const char *name, const char **v, size_t *vlen)
{
	const char *p = value, *end = value + len, *ns;
	size_t nl, n = strlen(name);

	while (moat__dkim_tag_next(&p, end, &ns, &nl, v, vlen) == 1)
		if (nl == n && memcmp(ns, name, n) == 0)
			return true;
	return false;
}

/* moat__dkim_copy_value - tag value without folding whitespace, into out; false if it does not fit. */
bool
moat__dkim_copy_value(const char *s, const char *e, char *out, size_t outlen, bool truncate)
{
	size_t o = 0;

	for (; s < e; s++) {
		if (moat__dkim_is_fws(*s))
			continue;
		if (o + 1 >= outlen) {
			if (truncate)
				break;
			return false;
		}
		out[o++] = *s;
	}
	out[o] = '\0';
	return true;
}

int
moat_dkim_sig_tags(const char *value, size_t len, struct moat_dkim_sig *out)
{
	const char *p = value, *end = value + len, *ns, *vs;
	bool have_d = false, have_s = false;
	size_t nl, vl, i;
	int rc;

	memset(out, 0, sizeof(*out));
	out->body_signed = -1;
	out->body_total = -1;
	if (memchr(value, '\0', len) != NULL || !moat__dkim_tags_unique(value, len))
		return -1;
	while ((rc = moat__dkim_tag_next(&p, end, &ns, &nl, &vs, &vl)) == 1) {
		const char *ve = vs + vl;
		if (nl != 1)
			continue;
		/* d= and s= are names: no whitespace inside (RFC 6376 3.5 domain-name, selector) */
		if ((*ns == 'd' || *ns == 's') &&
		    (memchr(vs, ' ', vl) || memchr(vs, '\t', vl) || memchr(vs, '\n', vl)))
			return -1;
		switch (*ns) {
		case 'd':
			if (!moat__dkim_copy_value(vs, ve, out->domain, sizeof(out->domain),
				false) ||
			    !moat_ldh_name(out->domain, strlen(out->domain)))
				return -1;
			for (i = 0; out->domain[i]; i++)
				out->domain[i] = (char)tolower((unsigned char)out->domain[i]);
			have_d = true;
			break;
		case 's':
			if (!moat__dkim_copy_value(vs, ve, out->selector, sizeof(out->selector),
				false) ||
			    !moat_ldh_name(out->selector, strlen(out->selector)))
				return -1;
			have_s = true;
			break;
		case 'a':
			if (!moat__dkim_copy_value(vs, ve, out->alg, sizeof(out->alg), false))
				return -1;
			break;
		case 'b':
			moat__dkim_copy_value(vs, ve, out->b, 9, true);
			break;
		case 'l': {
			char num[24];
			char *endp;
			unsigned long long l;
			if (!moat__dkim_copy_value(vs, ve, num, sizeof(num), false) ||
			    num[0] == '\0' || !isdigit((unsigned char)num[0]))
				return -1;
			l = strtoull(num, &endp, 10);
			if (*endp != '\0' || l > (unsigned long long)SSIZE_MAX)
				return -1;
			out->body_signed = (ssize_t)l;
			break;
		}
		default:
			break;
		}
	}
	if (rc < 0 || !have_d || !have_s)
		return -1;
	return 0;
}

/* moat__dkim_b64_decode - base64 with FWS ignored (RFC 6376 2.4) into out (at most outmax); -1 if not
 * base64 or longer than outmax. */
long
moat__dkim_b64_decode(const char *s, size_t n, unsigned char *out, size_t outmax)
{
	char *clean = malloc(n + 1);
	size_t c = 0;
	long dl;

	if (clean == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!moat__dkim_is_fws(s[i]))
			clean[c++] = s[i];
	dl = moat_base64_decode(clean, c, out, outmax);
	free(clean);
	return dl;
}

/* num_tag - a decimal of at most 12 digits (t=, x=); -1 if not. */
static long long
num_tag(const char *s, size_t n)
{
	long long v = 0;
	size_t i;

	if (n == 0 || n > 12)
		return -1;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* moat__dkim_list_has - does the ':'-separated LIST (blanks allowed) contain WORD, any case? */
bool
moat__dkim_list_has(const char *list, size_t n, const char *word)
{
	size_t wl = strlen(word), i = 0;

	while (i < n) {
		size_t s = i, e;
		while (i < n && list[i] != ':')
			i++;
		e = i++;
		while (s < e && moat__dkim_is_fws(list[s]))
			s++;
		while (e > s && moat__dkim_is_fws(list[e - 1]))
			e--;
		if (e - s == wl && strncasecmp(list + s, word, wl) == 0)
			return true;
	}
	return false;
}

int
moat_dkim_identity(const char *value, size_t len, char *out, const char **why)
{
	ssize_t n = moat__qp_dkim_decode(value, len, out, MOAT_DKIM_IDENTITY_MAX);
	const char *at;

	*why = NULL;
	if (n == MOAT_QP_TOO_LONG)
		*why = "i= is too long";
	else if (n < 0)
		*why = "i= is not valid quoted-printable";
	else if (memchr(out, '\0', (size_t)n) != NULL)
		*why = "i= decodes to a NUL";
	if (*why != NULL) {
		out[0] = '\0';
		return -1;
	}
	out[n] = '\0';
	/* RFC 6376 3.5: [ Local-part ] "@" domain-name, checked on the decoded text */
	if ((at = strchr(out, '@')) == NULL)
		*why = "i= has no domain";
	else if (strchr(at + 1, '@') != NULL)
		*why = "i= has more than one @";
	else if (!moat_ldh_name(at + 1, strlen(at + 1)))
		*why = "i= has no valid domain";
	return *why != NULL ? -1 : 0;
}

/*
 * moat__vsig_parse - the rest of a signature's tags (v a b bh c h i q t x z) into S; decides permerror
 * for what RFC 6376 3.5 makes invalid, and fail for rsa-sha1 (RFC 8301).
 */
void
moat__vsig_parse(struct moat__vsig *s, const char *value, size_t len)
{
	bool arc = s->kind != MOAT__SIG_DKIM;
	const char *p = value, *end = value + len, *ns, *vs;
	size_t nl, vl;
	bool have_v = arc, have_a = false, have_b = false, have_bh = s->kind == MOAT__SIG_AS,
	     have_h = s->kind == MOAT__SIG_AS, have_cv = s->kind != MOAT__SIG_AS;
	long n;

	s->t = s->x = -1;
	/* RFC 8617 4.1.3: an ARC-Seal uses relaxed header canonicalization; an AMS without c= is
	 * read as relaxed/relaxed, as dkimpy and OpenARC read it */
	s->hrelaxed = s->brelaxed = arc;
	while (moat__dkim_tag_next(&p, end, &ns, &nl, &vs, &vl) == 1) {
		if (nl == 1 && *ns == 'v' && !arc) {
			have_v = true;
			if (vl != 1 || *vs != '1')
				moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "unsupported v= version");
		} else if (nl == 1 && *ns == 'a') {
			have_a = true;
			s->alg = strcmp(s->rep.alg, "rsa-sha256") == 0  ? MOAT__ALG_RSA_SHA256
			    : strcmp(s->rep.alg, "ed25519-sha256") == 0 ? MOAT__ALG_ED25519_SHA256
			    : strcmp(s->rep.alg, "rsa-sha1") == 0       ? MOAT__ALG_RSA_SHA1
									: MOAT__ALG_UNKNOWN;
		} else if (nl == 1 && *ns == 'b') {
			have_b = true;
			if ((n = moat__dkim_b64_decode(vs, vl, s->b, sizeof(s->b))) <= 0)
				moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "b= is not valid base64");
			else
				s->blen = (size_t)n;
		} else if (nl == 2 && ns[0] == 'b' && ns[1] == 'h') {
			have_bh = true;
			if ((n = moat__dkim_b64_decode(vs, vl, s->bh, sizeof(s->bh))) <= 0)
				moat__vsig_decide(s, MOAT_DKIM_PERMERROR,
				    "bh= is not valid base64");
			else
				s->bhlen = (size_t)n;
		} else if (nl == 1 && *ns == 'c') {
			char c[32], *slash;
			if (!moat__dkim_copy_value(vs, vs + vl, c, sizeof(c), false)) {
				moat__vsig_decide(s, MOAT_DKIM_PERMERROR,
				    "unknown canonicalization");
				continue;
			}
			slash = strchr(c, '/');
			if (slash != NULL)
				*slash++ = '\0';
			if ((strcmp(c, "relaxed") != 0 && strcmp(c, "simple") != 0) ||
			    (slash != NULL && strcmp(slash, "relaxed") != 0 &&
				strcmp(slash, "simple") != 0))
				moat__vsig_decide(s, MOAT_DKIM_PERMERROR,
				    "unknown canonicalization");
			s->hrelaxed = s->kind == MOAT__SIG_AS || strcmp(c, "relaxed") == 0;
			s->brelaxed = slash != NULL && strcmp(slash, "relaxed") == 0;
		} else if (nl == 1 && *ns == 'h') {
			size_t i, o = 0;
			have_h = true;
			free(s->h);
			if ((s->h = malloc(vl + 1)) == NULL) {
				moat__vsig_decide(s, MOAT_DKIM_TEMPERROR, "out of memory");
				continue;
			}
			for (i = 0; i < vl; i++)
				if (!moat__dkim_is_fws(vs[i]))
					s->h[o++] = vs[i];
			s->h[o] = '\0';
			if (s->kind == MOAT__SIG_DKIM && !moat__dkim_list_has(vs, vl, "from"))
				moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "From field not signed");
			/* RFC 8617 4.1.3: no h= in an ARC-Seal; 4.1.2: the AMS never signs a seal */
			if (s->kind == MOAT__SIG_AS)
				moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "h= in ARC-Seal");
			if (s->kind == MOAT__SIG_AMS && moat__dkim_list_has(vs, vl, "arc-seal"))
				moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "ARC-Seal signed by h=");
		} else if (nl == 2 && ns[0] == 'c' && ns[1] == 'v' && s->kind == MOAT__SIG_AS) {
			have_cv = true;
			if (!moat__dkim_copy_value(vs, vs + vl, s->cv, sizeof(s->cv), false) ||
			    (strcmp(s->cv, "none") != 0 && strcmp(s->cv, "pass") != 0 &&
				strcmp(s->cv, "fail") != 0))
				moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "unknown cv= value");
		} else if (nl == 1 && *ns == 'i' && arc) {
			/* the instance: the chain reads it (moat__arc_field) */
		} else if (nl == 1 && *ns == 'i') {
			const char *why;
			if (moat_dkim_identity(vs, vl, s->rep.identity, &why) < 0)
				moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "%s", why);
			else
				snprintf(s->idomain, sizeof(s->idomain), "%s",
				    strchr(s->rep.identity, '@') + 1);
		} else if (nl == 1 && *ns == 'z') {
			/* only checked: copied fields are never used to verify (RFC 6376 3.5) */
			if (moat__qp_dkim_decode(vs, vl, NULL, 0) < 0)
				moat__vsig_decide(s, MOAT_DKIM_PERMERROR,
				    "z= is not valid quoted-printable");
		} else if (nl == 1 && *ns == 'q') {
			if (!moat__dkim_list_has(vs, vl, "dns/txt"))
				moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "no supported q= method");
		} else if (nl == 1 && (*ns == 't' || *ns == 'x')) {
			long long t = num_tag(vs, vl);
			if (t < 0)
				moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "bad %c= timestamp", *ns);
			*(*ns == 't' ? &s->t : &s->x) = t;
		}
	}
	if (!have_v || !have_a || !have_b || !have_bh || !have_h || !have_cv)
		moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "missing %s= tag",
		    !have_v        ? "v"
			: !have_a  ? "a"
			: !have_b  ? "b"
			: !have_bh ? "bh"
			: !have_h  ? "h"
				   : "cv");
	if (s->alg == MOAT__ALG_UNKNOWN)
		moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "unknown a= algorithm");
	if (s->alg == MOAT__ALG_RSA_SHA1)
		moat__vsig_decide(s, MOAT_DKIM_FAIL, "rsa-sha1 is not accepted (RFC 8301)");
	if (s->idomain[0]) {
		/* RFC 6376 3.5: i= is d= or a subdomain of it */
		size_t il = strlen(s->idomain), dl = strlen(s->rep.domain);
		bool within = il == dl ? strcasecmp(s->idomain, s->rep.domain) == 0
				       : il > dl && s->idomain[il - dl - 1] == '.' &&
			strcasecmp(s->idomain + il - dl, s->rep.domain) == 0;
		if (!within)
			moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "i= is not within d=");
	}
}
