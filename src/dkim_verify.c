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
#include "dkim_verify_int.h"
#include "qp.h"
#include "text.h"

#define DEFAULT_MAX_SIGS 5
#define HDR_FIELDS_MAX 1024 /* header fields kept for the header hash */
#define HDR_BYTES_MAX ((size_t)1 << 20) /* and their bytes (1 MB); past either: permerror */
#define KEY_SHARDS 8
#define KEY_SLOTS 32 /* decoded keys kept: 256 */
#define KEY_B64_MAX 4096 /* p= of a 16384-bit RSA key is about 2.8 KB */
#define CLOCK_DRIFT 300 /* seconds t= may lie in the future */


struct key_slot {
	uint64_t hash; /* 0: empty */
	uint64_t used;
	char *rec; /* "k" "\n" "p" as it was decoded: the cache key */
	EVP_PKEY *pkey;
};

struct key_shard {
	pthread_mutex_t lock;
	uint64_t clock;
	struct key_slot slots[KEY_SLOTS];
};

struct moat_dkim_verifier {
	struct moat_dns *dns;
	struct moat_dkim_opts opts;
	EVP_MD *sha256;
	uint64_t seed;
	struct key_shard keys[KEY_SHARDS];
};

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

/* decide - the signature's result and reason (printf-style), once. */
static void decide(struct moat__vsig *s, enum moat_dkim_res r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
decide(struct moat__vsig *s, enum moat_dkim_res r, const char *fmt, ...)
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

/* ---- the verifier and its key cache ---- */

struct moat_dkim_verifier *
moat_dkim_verifier_new(struct moat_dns *dns, const struct moat_dkim_opts *opts)
{
	struct moat_dkim_verifier *v = calloc(1, sizeof(*v));
	size_t i;

	if (v == NULL)
		return NULL;
	v->dns = dns;
	if (opts != NULL)
		v->opts = *opts;
	if (v->opts.max_signatures == 0)
		v->opts.max_signatures = DEFAULT_MAX_SIGS;
	if (v->opts.max_signatures > MOAT_DKIM_SIGS_MAX)
		v->opts.max_signatures = MOAT_DKIM_SIGS_MAX;
	if (getrandom(&v->seed, sizeof(v->seed), GRND_NONBLOCK) != (ssize_t)sizeof(v->seed))
		v->seed = (uint64_t)(uintptr_t)v * 0x9e3779b97f4a7c15ULL;
	for (i = 0; i < KEY_SHARDS; i++)
		pthread_mutex_init(&v->keys[i].lock, NULL);
	if ((v->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL) {
		moat_dkim_verifier_free(v);
		return NULL;
	}
	return v;
}

void
moat_dkim_verifier_free(struct moat_dkim_verifier *v)
{
	size_t i, j;

	if (v == NULL)
		return;
	for (i = 0; i < KEY_SHARDS; i++) {
		for (j = 0; j < KEY_SLOTS; j++) {
			free(v->keys[i].slots[j].rec);
			EVP_PKEY_free(v->keys[i].slots[j].pkey);
		}
		pthread_mutex_destroy(&v->keys[i].lock);
	}
	EVP_MD_free(v->sha256);
	free(v);
}

/* rec_hash - FNV-1a of the cache key, keyed; never 0. */
static uint64_t
rec_hash(const struct moat_dkim_verifier *v, const char *rec)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ v->seed;

	for (; *rec; rec++) {
		h ^= (unsigned char)*rec;
		h *= 0x100000001b3ULL;
	}
	return h ? h : 1;
}

/* key_cached - the decoded key for REC (a reference the caller frees), or NULL. */
static EVP_PKEY *
key_cached(struct moat_dkim_verifier *v, const char *rec, uint64_t h)
{
	struct key_shard *sh = &v->keys[h % KEY_SHARDS];
	EVP_PKEY *pkey = NULL;
	size_t i;

	pthread_mutex_lock(&sh->lock);
	for (i = 0; i < KEY_SLOTS; i++) {
		struct key_slot *s = &sh->slots[i];
		if (s->hash == h && strcmp(s->rec, rec) == 0) {
			if (EVP_PKEY_up_ref(s->pkey) == 1)
				pkey = s->pkey;
			s->used = ++sh->clock;
			break;
		}
	}
	pthread_mutex_unlock(&sh->lock);
	return pkey;
}

/* key_keep - remember PKEY (a reference is taken) for REC in the least recently used slot. */
static void
key_keep(struct moat_dkim_verifier *v, const char *rec, uint64_t h, EVP_PKEY *pkey)
{
	struct key_shard *sh = &v->keys[h % KEY_SHARDS];
	struct key_slot *lru;
	char *copy = strdup(rec);
	size_t i;

	if (copy == NULL || EVP_PKEY_up_ref(pkey) != 1) {
		free(copy);
		return;
	}
	pthread_mutex_lock(&sh->lock);
	lru = &sh->slots[0];
	for (i = 0; i < KEY_SLOTS && lru->hash != 0; i++)
		if (sh->slots[i].hash == 0 || sh->slots[i].used < lru->used)
			lru = &sh->slots[i];
	free(lru->rec);
	EVP_PKEY_free(lru->pkey);
	lru->hash = h;
	lru->rec = copy;
	lru->pkey = pkey;
	lru->used = ++sh->clock;
	pthread_mutex_unlock(&sh->lock);
}

/* ---- tag lists (RFC 6376 3.2) ---- */

static bool
is_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * tag_next - the next tag of the list at *p (up to end): name and value without surrounding
 * FWS. 1: a tag; 0: the end (an empty last element is allowed); -1: malformed (an empty
 * element, no '=', a bad tag-name, a value byte outside %x21-7E and FWS).
 */
static int
tag_next(const char **p, const char *end, const char **name, size_t *nlen, const char **val,
    size_t *vlen)
{
	const char *semi, *te, *ns, *ne, *vs, *ve, *eq;
	size_t i;

	if (*p >= end)
		return 0;
	semi = memchr(*p, ';', (size_t)(end - *p));
	te = semi ? semi : end;
	ns = *p;
	*p = semi ? semi + 1 : end;
	while (ns < te && is_fws(*ns))
		ns++;
	if (ns == te)
		return semi == NULL ? 0 : -1;
	if ((eq = memchr(ns, '=', (size_t)(te - ns))) == NULL)
		return -1;
	ne = eq;
	while (ne > ns && is_fws(ne[-1]))
		ne--;
	/* tag-name = ALPHA *ALNUMPUNC */
	if (!isalpha((unsigned char)*ns))
		return -1;
	for (i = 1; ns + i < ne; i++)
		if (!isalnum((unsigned char)ns[i]) && ns[i] != '_')
			return -1;
	vs = eq + 1;
	ve = te;
	while (vs < ve && is_fws(*vs))
		vs++;
	while (ve > vs && is_fws(ve[-1]))
		ve--;
	for (i = 0; vs + i < ve; i++) {
		unsigned char c = (unsigned char)vs[i];
		if (!(c >= 0x21 && c <= 0x7e) && !is_fws((char)c))
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
 * tags_unique - false when a tag name occurs twice in the list at VALUE (RFC 6376 3.2: "the
 * entire tag-list is invalid"), or when memory runs out. Every name counts, whatever its length,
 * compared exactly (3.2: case-sensitive). The names are sorted, so a hostile list of thousands
 * of tags costs n log n comparisons, never n squared. Only the well-formed prefix of the list is
 * looked at: a malformed element is the parser's to report.
 */
static bool
tags_unique(const char *value, size_t len)
{
	const char *p = value, *end = value + len, *vs;
	size_t max = len / 2 + 1, n = 0, vl, i; /* a tag takes at least "x=" */
	struct tag_name *names = malloc(max * sizeof(*names));
	bool unique = true;

	if (names == NULL)
		return false;
	while (n < max && tag_next(&p, end, &names[n].p, &names[n].n, &vs, &vl) == 1)
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

	while (tag_next(&p, end, &ns, &nl, v, vlen) == 1)
		if (nl == n && memcmp(ns, name, n) == 0)
			return true;
	return false;
}

/* copy_value - tag value without folding whitespace, into out; false if it does not fit. */
static bool
copy_value(const char *s, const char *e, char *out, size_t outlen, bool truncate)
{
	size_t o = 0;

	for (; s < e; s++) {
		if (is_fws(*s))
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
	if (memchr(value, '\0', len) != NULL || !tags_unique(value, len))
		return -1;
	while ((rc = tag_next(&p, end, &ns, &nl, &vs, &vl)) == 1) {
		const char *ve = vs + vl;
		if (nl != 1)
			continue;
		/* d= and s= are names: no whitespace inside (RFC 6376 3.5 domain-name, selector) */
		if ((*ns == 'd' || *ns == 's') &&
		    (memchr(vs, ' ', vl) || memchr(vs, '\t', vl) || memchr(vs, '\n', vl)))
			return -1;
		switch (*ns) {
		case 'd':
			if (!copy_value(vs, ve, out->domain, sizeof(out->domain), false) ||
			    !moat_ldh_name(out->domain, strlen(out->domain)))
				return -1;
			for (i = 0; out->domain[i]; i++)
				out->domain[i] = (char)tolower((unsigned char)out->domain[i]);
			have_d = true;
			break;
		case 's':
			if (!copy_value(vs, ve, out->selector, sizeof(out->selector), false) ||
			    !moat_ldh_name(out->selector, strlen(out->selector)))
				return -1;
			have_s = true;
			break;
		case 'a':
			if (!copy_value(vs, ve, out->alg, sizeof(out->alg), false))
				return -1;
			break;
		case 'b':
			copy_value(vs, ve, out->b, 9, true);
			break;
		case 'l': {
			char num[24];
			char *endp;
			unsigned long long l;
			if (!copy_value(vs, ve, num, sizeof(num), false) || num[0] == '\0' ||
			    !isdigit((unsigned char)num[0]))
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

/* b64_decode - base64 with FWS ignored (RFC 6376 2.4) into out (at most outmax); -1 if not
 * base64 or longer than outmax. */
static long
b64_decode(const char *s, size_t n, unsigned char *out, size_t outmax)
{
	char *clean = malloc(n + 1);
	size_t c = 0;
	long dl;

	if (clean == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!is_fws(s[i]))
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

/* list_has - does the ':'-separated LIST (blanks allowed) contain WORD, any case? */
static bool
list_has(const char *list, size_t n, const char *word)
{
	size_t wl = strlen(word), i = 0;

	while (i < n) {
		size_t s = i, e;
		while (i < n && list[i] != ':')
			i++;
		e = i++;
		while (s < e && is_fws(list[s]))
			s++;
		while (e > s && is_fws(list[e - 1]))
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
 * sig_parse - the rest of a signature's tags (v a b bh c h i q t x z) into S; decides permerror
 * for what RFC 6376 3.5 makes invalid, and fail for rsa-sha1 (RFC 8301).
 */
static void
sig_parse(struct moat__vsig *s, const char *value, size_t len)
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
	while (tag_next(&p, end, &ns, &nl, &vs, &vl) == 1) {
		if (nl == 1 && *ns == 'v' && !arc) {
			have_v = true;
			if (vl != 1 || *vs != '1')
				decide(s, MOAT_DKIM_PERMERROR, "unsupported v= version");
		} else if (nl == 1 && *ns == 'a') {
			have_a = true;
			s->alg = strcmp(s->rep.alg, "rsa-sha256") == 0  ? MOAT__ALG_RSA_SHA256
			    : strcmp(s->rep.alg, "ed25519-sha256") == 0 ? MOAT__ALG_ED25519_SHA256
			    : strcmp(s->rep.alg, "rsa-sha1") == 0       ? MOAT__ALG_RSA_SHA1
									: MOAT__ALG_UNKNOWN;
		} else if (nl == 1 && *ns == 'b') {
			have_b = true;
			if ((n = b64_decode(vs, vl, s->b, sizeof(s->b))) <= 0)
				decide(s, MOAT_DKIM_PERMERROR, "b= is not valid base64");
			else
				s->blen = (size_t)n;
		} else if (nl == 2 && ns[0] == 'b' && ns[1] == 'h') {
			have_bh = true;
			if ((n = b64_decode(vs, vl, s->bh, sizeof(s->bh))) <= 0)
				decide(s, MOAT_DKIM_PERMERROR, "bh= is not valid base64");
			else
				s->bhlen = (size_t)n;
		} else if (nl == 1 && *ns == 'c') {
			char c[32], *slash;
			if (!copy_value(vs, vs + vl, c, sizeof(c), false)) {
				decide(s, MOAT_DKIM_PERMERROR, "unknown canonicalization");
				continue;
			}
			slash = strchr(c, '/');
			if (slash != NULL)
				*slash++ = '\0';
			if ((strcmp(c, "relaxed") != 0 && strcmp(c, "simple") != 0) ||
			    (slash != NULL && strcmp(slash, "relaxed") != 0 &&
				strcmp(slash, "simple") != 0))
				decide(s, MOAT_DKIM_PERMERROR, "unknown canonicalization");
			s->hrelaxed = s->kind == MOAT__SIG_AS || strcmp(c, "relaxed") == 0;
			s->brelaxed = slash != NULL && strcmp(slash, "relaxed") == 0;
		} else if (nl == 1 && *ns == 'h') {
			size_t i, o = 0;
			have_h = true;
			free(s->h);
			if ((s->h = malloc(vl + 1)) == NULL) {
				decide(s, MOAT_DKIM_TEMPERROR, "out of memory");
				continue;
			}
			for (i = 0; i < vl; i++)
				if (!is_fws(vs[i]))
					s->h[o++] = vs[i];
			s->h[o] = '\0';
			if (s->kind == MOAT__SIG_DKIM && !list_has(vs, vl, "from"))
				decide(s, MOAT_DKIM_PERMERROR, "From field not signed");
			/* RFC 8617 4.1.3: no h= in an ARC-Seal; 4.1.2: the AMS never signs a seal */
			if (s->kind == MOAT__SIG_AS)
				decide(s, MOAT_DKIM_PERMERROR, "h= in ARC-Seal");
			if (s->kind == MOAT__SIG_AMS && list_has(vs, vl, "arc-seal"))
				decide(s, MOAT_DKIM_PERMERROR, "ARC-Seal signed by h=");
		} else if (nl == 2 && ns[0] == 'c' && ns[1] == 'v' && s->kind == MOAT__SIG_AS) {
			have_cv = true;
			if (!copy_value(vs, vs + vl, s->cv, sizeof(s->cv), false) ||
			    (strcmp(s->cv, "none") != 0 && strcmp(s->cv, "pass") != 0 &&
				strcmp(s->cv, "fail") != 0))
				decide(s, MOAT_DKIM_PERMERROR, "unknown cv= value");
		} else if (nl == 1 && *ns == 'i' && arc) {
			/* the instance: the chain reads it (moat__arc_field) */
		} else if (nl == 1 && *ns == 'i') {
			const char *why;
			if (moat_dkim_identity(vs, vl, s->rep.identity, &why) < 0)
				decide(s, MOAT_DKIM_PERMERROR, "%s", why);
			else
				snprintf(s->idomain, sizeof(s->idomain), "%s",
				    strchr(s->rep.identity, '@') + 1);
		} else if (nl == 1 && *ns == 'z') {
			/* only checked: copied fields are never used to verify (RFC 6376 3.5) */
			if (moat__qp_dkim_decode(vs, vl, NULL, 0) < 0)
				decide(s, MOAT_DKIM_PERMERROR, "z= is not valid quoted-printable");
		} else if (nl == 1 && *ns == 'q') {
			if (!list_has(vs, vl, "dns/txt"))
				decide(s, MOAT_DKIM_PERMERROR, "no supported q= method");
		} else if (nl == 1 && (*ns == 't' || *ns == 'x')) {
			long long t = num_tag(vs, vl);
			if (t < 0)
				decide(s, MOAT_DKIM_PERMERROR, "bad %c= timestamp", *ns);
			*(*ns == 't' ? &s->t : &s->x) = t;
		}
	}
	if (!have_v || !have_a || !have_b || !have_bh || !have_h || !have_cv)
		decide(s, MOAT_DKIM_PERMERROR, "missing %s= tag",
		    !have_v        ? "v"
			: !have_a  ? "a"
			: !have_b  ? "b"
			: !have_bh ? "bh"
			: !have_h  ? "h"
				   : "cv");
	if (s->alg == MOAT__ALG_UNKNOWN)
		decide(s, MOAT_DKIM_PERMERROR, "unknown a= algorithm");
	if (s->alg == MOAT__ALG_RSA_SHA1)
		decide(s, MOAT_DKIM_FAIL, "rsa-sha1 is not accepted (RFC 8301)");
	if (s->idomain[0]) {
		/* RFC 6376 3.5: i= is d= or a subdomain of it */
		size_t il = strlen(s->idomain), dl = strlen(s->rep.domain);
		bool within = il == dl ? strcasecmp(s->idomain, s->rep.domain) == 0
				       : il > dl && s->idomain[il - dl - 1] == '.' &&
			strcasecmp(s->idomain + il - dl, s->rep.domain) == 0;
		if (!within)
			decide(s, MOAT_DKIM_PERMERROR, "i= is not within d=");
	}
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
	sig_parse(s, value, len);
	return s;
}

void
moat__vsig_body_start(const struct moat_dkim_verifier *v, struct moat__vsig *s)
{
	if (s->decided || s->kind == MOAT__SIG_AS)
		return;
	if ((s->body = moat__dkim_body_new(s->brelaxed, v->sha256)) == NULL) {
		decide(s, MOAT_DKIM_TEMPERROR, "out of memory");
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
		decide(s, MOAT_DKIM_POLICY, "not evaluated: more than %u signatures",
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
			decide(s, MOAT_DKIM_PERMERROR, "header too large to verify");
		if (m->strict_err[0])
			decide(s, MOAT_DKIM_PERMERROR, "%s", m->strict_err);
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

/* ---- keys ---- */

/*
 * key_decode - the public key of key record REC (k= and p= already checked): from the cache or
 * decoded and cached. NULL when p= is not a key of that type.
 */
static EVP_PKEY *
key_decode(struct moat_dkim_verifier *v, bool ed25519, const char *p, size_t plen)
{
	char rec[KEY_B64_MAX + 4];
	unsigned char der[KEY_B64_MAX];
	const unsigned char *dp = der;
	EVP_PKEY *pkey;
	uint64_t h;
	long n;

	if (plen > KEY_B64_MAX)
		return NULL;
	rec[0] = ed25519 ? 'e' : 'r';
	rec[1] = ':';
	copy_value(p, p + plen, rec + 2, sizeof(rec) - 2, false);
	h = rec_hash(v, rec);
	if ((pkey = key_cached(v, rec, h)) != NULL)
		return pkey;
	n = b64_decode(p, plen, der, sizeof(der));
	if (n <= 0)
		return NULL;
	if (ed25519)
		pkey =
		    n == 32 ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der, 32) : NULL;
	else
		pkey = d2i_PUBKEY(NULL, &dp, n);
	if (pkey != NULL && !ed25519 && EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
		EVP_PKEY_free(pkey);
		return NULL;
	}
	if (pkey != NULL)
		key_keep(v, rec, h, pkey);
	return pkey;
}

/*
 * key_fetch - the key for S from DNS (RFC 6376 3.6.1, 3.6.2.2): the first TXT record at
 * s._domainkey.d. NULL with S decided when there is none usable.
 */
static EVP_PKEY *
key_fetch(struct moat_dkim_verifier *v, struct moat__vsig *s)
{
	char name[MOAT_DNS_NAME_MAX + 2];
	struct moat_dns_answer a;
	const char *p, *end, *ns, *vs, *kp = NULL;
	size_t nl, vl, kplen = 0;
	bool ed = false, first = true;
	EVP_PKEY *pkey = NULL;
	int rc;

	if ((size_t)snprintf(name, sizeof(name), "%s._domainkey.%s", s->rep.selector,
		s->rep.domain) >= sizeof(name) ||
	    !moat_dns_name_valid(name)) {
		decide(s, MOAT_DKIM_PERMERROR, "key name too long");
		return NULL;
	}
	switch (moat_dns_query(v->dns, name, MOAT_DNS_TXT, &a)) {
	case MOAT_DNS_OK:
		break;
	case MOAT_DNS_TEMPFAIL:
		decide(s, MOAT_DKIM_TEMPERROR, "key DNS query failed");
		goto out;
	case MOAT_DNS_PERMFAIL:
		decide(s, MOAT_DKIM_PERMERROR, "key DNS answer unusable");
		goto out;
	default:
		decide(s, MOAT_DKIM_PERMERROR, "no key");
		goto out;
	}
	p = a.rr[0].data;
	end = p + a.rr[0].len;
	if (memchr(p, '\0', a.rr[0].len) != NULL || !tags_unique(p, a.rr[0].len)) {
		decide(s, MOAT_DKIM_PERMERROR, "key syntax error");
		goto out;
	}
	while ((rc = tag_next(&p, end, &ns, &nl, &vs, &vl)) == 1) {
		if (nl == 1 && *ns == 'v' && (!first || vl != 5 || strncmp(vs, "DKIM1", 5) != 0))
			break;
		first = false;
		if (nl == 1 && *ns == 'k') {
			if (vl == 3 && strncmp(vs, "rsa", 3) == 0)
				ed = false;
			else if (vl == 7 && strncmp(vs, "ed25519", 7) == 0)
				ed = true;
			else
				break;
		} else if (nl == 1 && *ns == 'h' && !list_has(vs, vl, "sha256")) {
			decide(s, MOAT_DKIM_FAIL, "key does not allow sha256");
			goto out;
		} else if (nl == 1 && *ns == 's' && !list_has(vs, vl, "*") &&
		    !list_has(vs, vl, "email")) {
			decide(s, MOAT_DKIM_FAIL, "key not for email");
			goto out;
		} else if (nl == 1 && *ns == 't' && list_has(vs, vl, "s") && s->idomain[0] &&
		    strcasecmp(s->idomain, s->rep.domain) != 0) {
			decide(s, MOAT_DKIM_FAIL, "key t=s: i= must be d=");
			goto out;
		} else if (nl == 1 && *ns == 'p') {
			kp = vs;
			kplen = vl;
		}
	}
	if (rc != 0 || kp == NULL) {
		decide(s, MOAT_DKIM_PERMERROR, "key syntax error");
		goto out;
	}
	if (kplen == 0) {
		decide(s, MOAT_DKIM_FAIL, "key revoked");
		goto out;
	}
	if (ed != (s->alg == MOAT__ALG_ED25519_SHA256)) {
		decide(s, MOAT_DKIM_PERMERROR, "key type does not match a=");
		goto out;
	}
	if ((pkey = key_decode(v, ed, kp, kplen)) == NULL)
		decide(s, MOAT_DKIM_PERMERROR, "key could not be decoded");
out:
	moat_dns_answer_clear(&a);
	return pkey;
}

/* ---- end of message ---- */

/* strip_b - FIELD with the value of its b= tag removed (RFC 6376 3.7); malloc'ed, *outlen. */
static char *
strip_b(const char *field, size_t len, size_t off, size_t *outlen)
{
	char *out = malloc(len + 1);
	const char *p = field + off, *end = field + len;
	size_t o = off;

	if (out == NULL)
		return NULL;
	memcpy(out, field, off);
	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p)), *te = semi ? semi : end,
			   *q = p;
		size_t n;
		while (q < te && is_fws(*q))
			q++;
		if (q < te && *q == 'b') {
			for (q++; q < te && is_fws(*q); q++)
				;
			if (q < te && *q == '=')
				te = q + 1; /* keep "b=" and what precedes it; drop the value */
		}
		n = (size_t)(te - p);
		memcpy(out + o, p, n);
		o += n;
		if (semi == NULL)
			break;
		out[o++] = ';';
		p = semi + 1;
	}
	*outlen = o;
	return out;
}

/*
 * header_verify - the signature over the header hash (RFC 6376 3.7, RFC 8463 3): the fields
 * HLIST selects from the header (H), then the signature's own field SIG without its b= value.
 */
static bool
header_verify(struct moat_dkim_verifier *v, struct moat__vsig *s, EVP_PKEY *pkey,
    const struct moat__hdrs *h, const char *hlist, const char *sig, size_t siglen)
{
	const char *colon = memchr(sig, ':', siglen);
	size_t slen = 0, cl;
	unsigned char hh[EVP_MAX_MD_SIZE];
	unsigned hl = 0;
	char *stripped = NULL, *canon;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	bool ok = false;

	if (colon != NULL)
		stripped = strip_b(sig, siglen, (size_t)(colon - sig) + 1, &slen);
	canon = malloc(slen + 3);
	if (md == NULL || stripped == NULL || canon == NULL ||
	    EVP_DigestInit_ex(md, v->sha256, NULL) != 1 ||
	    moat__dkim_hash_headers(md, hlist, s->hrelaxed, h->buf, h->off, h->len, h->n) < 0)
		goto out;
	cl = moat__dkim_canon_header(stripped, slen, s->hrelaxed, false, canon);
	if (EVP_DigestUpdate(md, canon, cl) != 1 || EVP_DigestFinal_ex(md, hh, &hl) != 1)
		goto out;
	if (s->alg == MOAT__ALG_RSA_SHA256) {
		EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(pkey, NULL);
		ok = pctx != NULL && EVP_PKEY_verify_init(pctx) == 1 &&
		    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 &&
		    EVP_PKEY_CTX_set_signature_md(pctx, v->sha256) == 1 &&
		    EVP_PKEY_verify(pctx, s->b, s->blen, hh, hl) == 1;
		EVP_PKEY_CTX_free(pctx);
	} else {
		EVP_MD_CTX *vctx = EVP_MD_CTX_new();
		ok = vctx != NULL && EVP_DigestVerifyInit(vctx, NULL, NULL, NULL, pkey) == 1 &&
		    EVP_DigestVerify(vctx, s->b, s->blen, hh, hl) == 1;
		EVP_MD_CTX_free(vctx);
	}
out:
	EVP_MD_CTX_free(md);
	free(stripped);
	free(canon);
	return ok;
}

void
moat__vsig_finish(struct moat_dkim_verifier *v, struct moat__vsig *s, const struct moat__hdrs *h,
    const char *hlist, const char *sig, size_t siglen, const unsigned char *bh)
{
	unsigned char own[MOAT_DKIM_BH_LEN];
	long long now = v->opts.fixed_time ? (long long)v->opts.fixed_time : (long long)time(NULL);
	EVP_PKEY *pkey;
	int bits;

	if (s->body != NULL) {
		size_t total;
		int rc = moat__dkim_body_end(s->body, own);
		total = moat__dkim_body_length(s->body);
		s->rep.body_total = (ssize_t)total;
		bh = own;
		if (rc < 0)
			decide(s, MOAT_DKIM_TEMPERROR, "body hash could not be computed");
		else if (s->rep.body_signed >= 0 && (size_t)s->rep.body_signed > total)
			decide(s, MOAT_DKIM_FAIL, "l= is longer than the body");
	}
	if (s->decided)
		return;
	if (s->x >= 0 && s->t >= 0 && s->x < s->t)
		decide(s, MOAT_DKIM_PERMERROR, "x= is before t=");
	else if (s->x >= 0 && s->x < now)
		decide(s, MOAT_DKIM_FAIL, "signature expired");
	else if (s->t > now + CLOCK_DRIFT)
		decide(s, MOAT_DKIM_FAIL, "signature in the future");
	if (s->decided || (pkey = key_fetch(v, s)) == NULL)
		return;
	bits = EVP_PKEY_get_bits(pkey);
	s->rep.key_bits = bits > 0 ? (unsigned)bits : 0;
	if (s->alg == MOAT__ALG_RSA_SHA256 && s->rep.key_bits < MOAT_DKIM_MIN_RSA_BITS)
		decide(s, MOAT_DKIM_FAIL, "RSA key of %u bits (RFC 8301)", s->rep.key_bits);
	else if (s->kind != MOAT__SIG_AS &&
	    (bh == NULL || s->bhlen != MOAT_DKIM_BH_LEN ||
		memcmp(bh, s->bh, MOAT_DKIM_BH_LEN) != 0))
		decide(s, MOAT_DKIM_FAIL, "body hash did not verify");
	else if (!header_verify(v, s, pkey, h, hlist != NULL ? hlist : s->h, sig, siglen))
		decide(s, MOAT_DKIM_FAIL, "signature verification failed");
	else if (s->rep.body_signed >= 0 && s->rep.body_total > s->rep.body_signed &&
	    !v->opts.body_length_pass)
		decide(s, MOAT_DKIM_POLICY, "l=%zd signs %zd of %zd body bytes", s->rep.body_signed,
		    s->rep.body_signed, s->rep.body_total);
	else
		decide(s, MOAT_DKIM_PASS, "%s", "");
	EVP_PKEY_free(pkey);
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
