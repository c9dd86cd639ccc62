/*
 * dkim_verify_key.c - the verifier and its keys: the bounded, sharded cache of decoded public
 * keys, the key record fetch and its checks (RFC 6376 3.6.1, RFC 8301, RFC 8463), and the header
 * hash and signature check at end of message. Owns struct moat_dkim_verifier and its cache.
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
	moat__dkim_copy_value(p, p + plen, rec + 2, sizeof(rec) - 2, false);
	h = rec_hash(v, rec);
	if ((pkey = key_cached(v, rec, h)) != NULL)
		return pkey;
	n = moat__dkim_b64_decode(p, plen, der, sizeof(der));
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
		moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "key name too long");
		return NULL;
	}
	switch (moat_dns_query(v->dns, name, MOAT_DNS_TXT, &a)) {
	case MOAT_DNS_OK:
		break;
	case MOAT_DNS_TEMPFAIL:
		moat__vsig_decide(s, MOAT_DKIM_TEMPERROR, "key DNS query failed");
		goto out;
	case MOAT_DNS_PERMFAIL:
		moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "key DNS answer unusable");
		goto out;
	default:
		moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "no key");
		goto out;
	}
	p = a.rr[0].data;
	end = p + a.rr[0].len;
	if (memchr(p, '\0', a.rr[0].len) != NULL || !moat__dkim_tags_unique(p, a.rr[0].len)) {
		moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "key syntax error");
		goto out;
	}
	while ((rc = moat__dkim_tag_next(&p, end, &ns, &nl, &vs, &vl)) == 1) {
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
		} else if (nl == 1 && *ns == 'h' && !moat__dkim_list_has(vs, vl, "sha256")) {
			moat__vsig_decide(s, MOAT_DKIM_FAIL, "key does not allow sha256");
			goto out;
		} else if (nl == 1 && *ns == 's' && !moat__dkim_list_has(vs, vl, "*") &&
		    !moat__dkim_list_has(vs, vl, "email")) {
			moat__vsig_decide(s, MOAT_DKIM_FAIL, "key not for email");
			goto out;
		} else if (nl == 1 && *ns == 't' && moat__dkim_list_has(vs, vl, "s") &&
		    s->idomain[0] && strcasecmp(s->idomain, s->rep.domain) != 0) {
			moat__vsig_decide(s, MOAT_DKIM_FAIL, "key t=s: i= must be d=");
			goto out;
		} else if (nl == 1 && *ns == 'p') {
			kp = vs;
			kplen = vl;
		}
	}
	if (rc != 0 || kp == NULL) {
		moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "key syntax error");
		goto out;
	}
	if (kplen == 0) {
		moat__vsig_decide(s, MOAT_DKIM_FAIL, "key revoked");
		goto out;
	}
	if (ed != (s->alg == MOAT__ALG_ED25519_SHA256)) {
		moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "key type does not match a=");
		goto out;
	}
	if ((pkey = key_decode(v, ed, kp, kplen)) == NULL)
		moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "key could not be decoded");
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
		while (q < te && moat__dkim_is_fws(*q))
			q++;
		if (q < te && *q == 'b') {
			for (q++; q < te && moat__dkim_is_fws(*q); q++)
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
			moat__vsig_decide(s, MOAT_DKIM_TEMPERROR,
			    "body hash could not be computed");
		else if (s->rep.body_signed >= 0 && (size_t)s->rep.body_signed > total)
			moat__vsig_decide(s, MOAT_DKIM_FAIL, "l= is longer than the body");
	}
	if (s->decided)
		return;
	if (s->x >= 0 && s->t >= 0 && s->x < s->t)
		moat__vsig_decide(s, MOAT_DKIM_PERMERROR, "x= is before t=");
	else if (s->x >= 0 && s->x < now)
		moat__vsig_decide(s, MOAT_DKIM_FAIL, "signature expired");
	else if (s->t > now + CLOCK_DRIFT)
		moat__vsig_decide(s, MOAT_DKIM_FAIL, "signature in the future");
	if (s->decided || (pkey = key_fetch(v, s)) == NULL)
		return;
	bits = EVP_PKEY_get_bits(pkey);
	s->rep.key_bits = bits > 0 ? (unsigned)bits : 0;
	if (s->alg == MOAT__ALG_RSA_SHA256 && s->rep.key_bits < MOAT_DKIM_MIN_RSA_BITS)
		moat__vsig_decide(s, MOAT_DKIM_FAIL, "RSA key of %u bits (RFC 8301)",
		    s->rep.key_bits);
	else if (s->kind != MOAT__SIG_AS &&
	    (bh == NULL || s->bhlen != MOAT_DKIM_BH_LEN ||
		memcmp(bh, s->bh, MOAT_DKIM_BH_LEN) != 0))
		moat__vsig_decide(s, MOAT_DKIM_FAIL, "body hash did not verify");
	else if (!header_verify(v, s, pkey, h, hlist != NULL ? hlist : s->h, sig, siglen))
		moat__vsig_decide(s, MOAT_DKIM_FAIL, "signature verification failed");
	else if (s->rep.body_signed >= 0 && s->rep.body_total > s->rep.body_signed &&
	    !v->opts.body_length_pass)
		moat__vsig_decide(s, MOAT_DKIM_POLICY, "l=%zd signs %zd of %zd body bytes",
		    s->rep.body_signed, s->rep.body_signed, s->rep.body_total);
	else
		moat__vsig_decide(s, MOAT_DKIM_PASS, "%s", "");
	EVP_PKEY_free(pkey);
}
