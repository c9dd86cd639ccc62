/*
 * dkim_signature.c - rsa-sha256 and ed25519-sha256 signatures over our own canonicalization
 * (see dkim_signature.h).
 *
 * Owns struct moat__dkim_body (a streaming body canonicalizer feeding SHA-256: bh=, shared by
 * every signature of a message) and struct moat__dkim_sig (one signature: h=, the header hash,
 * and at the end the RSA PKCS#1 v1.5 or Ed25519 signature over it).
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "bytescan.h"
#include "dkim_signature.h"

#define BODY_OUTBUF 4096
#define SIG_HLIST_MAX 512 /* names in h= */
#define SIG_VALUE_MAX 16384 /* the signature field value */

/* ---- body canonicalization (RFC 6376 3.4.3, 3.4.4), streaming ----
 *
 * A line is what precedes a CRLF; a bare CR or LF is an ordinary byte. Ordinary runs are found
 * a word at a time and are not copied: consecutive output that is also consecutive input (plain
 * lines and their CRLFs) is kept as one span of the caller's chunk and goes to SHA-256 in one
 * update. Only what the canonicalization changes (a collapsed blank run, held-back empty lines,
 * a CR or CRLF split between chunks) is written to the small buffer, in order with the spans.
 */

struct moat__dkim_body {
	bool relaxed;
	unsigned long pending_crlf; /* empty lines held back: dropped if they end the body */
	bool pending_cr; /* the chunk ended with CR: a CRLF or a bare CR? */
	bool pending_wsp; /* relaxed: a blank run, one SP unless the line ends */
	bool emitted, line_open;
	EVP_MD_CTX *md; /* sink: hash ... */
	char *out; /* ... or buffer (tests) */
	size_t outlen;
	size_t limit, total; /* hash at most limit bytes (l=, verification); bytes seen */
	const char *span; /* output that is input: valid during one bc_feed */
	size_t spanlen;
	char buf[BODY_OUTBUF];
	size_t used;
};

static void
bc_sink(struct moat__dkim_body *b, const char *p, size_t n)
{
	if (b->md != NULL) {
		size_t room = b->total < b->limit ? b->limit - b->total : 0;
		if (room > 0)
			EVP_DigestUpdate(b->md, p, room < n ? room : n);
		b->total += n;
	} else {
		memcpy(b->out + b->outlen, p, n);
		b->outlen += n;
	}
}

/* bc_flush - everything emitted so far goes to the sink: the buffer, then the span after it. */
static void
bc_flush(struct moat__dkim_body *b)
{
	if (b->used > 0)
		bc_sink(b, b->buf, b->used);
	b->used = 0;
	if (b->spanlen > 0)
		bc_sink(b, b->span, b->spanlen);
	b->span = NULL;
	b->spanlen = 0;
}

/* bc_emit_in - N bytes of the current chunk at P, unchanged: extends the span when adjacent. */
static void
bc_emit_in(struct moat__dkim_body *b, const char *p, size_t n)
{
	if (b->spanlen > 0 && b->span + b->spanlen == p) {
		b->spanlen += n;
	} else {
		bc_flush(b);
		b->span = p;
		b->spanlen = n;
	}
	b->emitted = true;
}

/* bc_emit - N bytes (at most the buffer size) that are not the input's own. */
static void
bc_emit(struct moat__dkim_body *b, const char *p, size_t n)
{
	if (b->spanlen > 0 || sizeof(b->buf) - b->used < n)
		bc_flush(b);
	memcpy(b->buf + b->used, p, n);
	b->used += n;
	b->emitted = true;
}

/* bc_release - what was held back goes out because an ordinary byte follows. */
static void
bc_release(struct moat__dkim_body *b)
{
	for (; b->pending_crlf > 0; b->pending_crlf--)
		bc_emit(b, "\r\n", 2);
	if (b->pending_wsp) {
		bc_emit(b, " ", 1);
		b->pending_wsp = false;
	}
	if (b->pending_cr) {
		bc_emit(b, "\r", 1);
		b->pending_cr = false;
	}
	b->line_open = true;
}

/* bc_eol - a CRLF (CRLF: the input's own, or NULL when split between chunks). */
static void
bc_eol(struct moat__dkim_body *b, const char *crlf)
{
	b->pending_wsp = false; /* relaxed: blanks at end of line go */
	if (!b->line_open) {
		b->pending_crlf++;
		return;
	}
	if (crlf != NULL)
		bc_emit_in(b, crlf, 2);
	else
		bc_emit(b, "\r\n", 2);
	b->line_open = false;
}

/*
 * bc_plain - the length of the prefix of P that relaxed canonicalization leaves as it is:
 * bytes above SP, and an SP followed by one. It stops at a control byte (CR, HTAB; a bare LF
 * is ordinary but rare and handled one at a time), at an SP before a blank or control byte, and
 * at an SP that ends the chunk. Eight bytes at a time (and the next one) while nine are left.
 */
static size_t
bc_plain(const char *p, size_t n)
{
	size_t k = 0;

	while (k < n) {
		bool word = n - k >= 9; /* bytes k to k + 8 can be read */
		size_t e = word ? k + 8 : n;
		if (word) {
			uint64_t w, w1;
			memcpy(&w, p + k, 8);
			memcpy(&w1, p + k + 1, 8);
			if ((moat__bytes_below(w, 0x20) |
				(moat__bytes_below(w, 0x21) & moat__bytes_below(w1, 0x21))) == 0) {
				k = e;
				continue;
			}
		}
		/* maybe a stop in these bytes (the word test can only err towards one): look */
		for (; k < e; k++) {
			unsigned char c = (unsigned char)p[k];
			if (c < ' ' || (c == ' ' && (k + 1 == n || (unsigned char)p[k + 1] <= ' ')))
				return k;
		}
	}
	return n;
}

static void
bc_feed(struct moat__dkim_body *b, const char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		char c = p[i];
		if (b->pending_cr) { /* the previous chunk ended with CR */
			if (c == '\n') {
				b->pending_cr = false;
				bc_eol(b, NULL);
				i++;
			} else {
				bc_release(b); /* a bare CR */
			}
			continue;
		}
		if (!b->pending_wsp) {
			const char *cr;
			size_t run = b->relaxed                         ? bc_plain(p + i, n - i)
			    : (cr = memchr(p + i, '\r', n - i)) != NULL ? (size_t)(cr - (p + i))
									: n - i;
			if (run > 0) {
				bc_release(b);
				bc_emit_in(b, p + i, run);
				i += run;
				continue;
			}
		}
		if (c == '\r') {
			if (i + 1 == n) {
				b->pending_cr = true;
				i++;
				continue;
			}
			if (p[i + 1] == '\n') {
				bc_eol(b, p + i);
				i += 2;
				continue;
			}
		} else if (b->relaxed && (c == ' ' || c == '\t')) {
			/* a blank run: one SP, unless a CRLF follows (decided at the CR) */
			while (i < n && (p[i] == ' ' || p[i] == '\t'))
				i++;
			b->pending_wsp = true;
			if (i < n && p[i] != '\r')
				bc_release(b);
			continue;
		}
		bc_release(b); /* a bare CR, LF or another control byte */
		bc_emit_in(b, p + i, 1);
		i++;
	}
	bc_flush(b); /* the span points into the caller's chunk */
}

static void
bc_end(struct moat__dkim_body *b)
{
	if (b->pending_cr) /* a bare CR at the very end */
		bc_release(b);
	/* Held-back empty lines are dropped; an unterminated last line gets its CRLF. */
	/* simple: an empty body is one CRLF (RFC 6376 3.4.3) */
	if (b->line_open || (!b->emitted && !b->relaxed))
		bc_emit(b, "\r\n", 2);
	bc_flush(b);
}

size_t
moat__dkim_body_canon(const char *in, size_t len, bool relaxed, char *out)
{
	struct moat__dkim_body b;

	memset(&b, 0, sizeof(b));
	b.relaxed = relaxed;
	b.out = out;
	bc_feed(&b, in, len);
	bc_end(&b);
	return b.outlen;
}

struct moat__dkim_body *
moat__dkim_body_new(bool relaxed, const void *md)
{
	struct moat__dkim_body *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	b->relaxed = relaxed;
	b->limit = SIZE_MAX;
	if ((b->md = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(b->md, md, NULL) != 1) {
		moat__dkim_body_free(b);
		return NULL;
	}
	return b;
}

void
moat__dkim_body_feed(struct moat__dkim_body *b, const char *chunk, size_t len)
{
	bc_feed(b, chunk, len);
}

int
moat__dkim_body_end(struct moat__dkim_body *b, unsigned char out[MOAT_DKIM_BH_LEN])
{
	unsigned hl = 0;

	bc_end(b);
	return EVP_DigestFinal_ex(b->md, out, &hl) == 1 && hl == MOAT_DKIM_BH_LEN ? 0 : -1;
}

void
moat__dkim_body_limit(struct moat__dkim_body *b, size_t limit)
{
	b->limit = limit;
}

size_t
moat__dkim_body_length(const struct moat__dkim_body *b)
{
	return b->total;
}

void
moat__dkim_body_free(struct moat__dkim_body *b)
{
	if (b == NULL)
		return;
	EVP_MD_CTX_free(b->md);
	free(b);
}

/* ---- the signature ---- */

struct moat__dkim_sig {
	struct moat__dkim_sig_params p;
	EVP_MD_CTX *hmd; /* header hash */
	char hlist[SIG_HLIST_MAX * 8]; /* h= value */
	size_t hlistlen;
	bool failed;
};

struct moat__dkim_sig *
moat__dkim_sig_begin(const struct moat__dkim_sig_params *p)
{
	struct moat__dkim_sig *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->p = *p;
	if ((s->hmd = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(s->hmd, p->md, NULL) != 1) {
		moat__dkim_sig_free(s);
		return NULL;
	}
	return s;
}

void
moat__dkim_sig_free(struct moat__dkim_sig *s)
{
	if (s == NULL)
		return;
	EVP_MD_CTX_free(s->hmd);
	free(s);
}

/* sig_name_len - length of the field name (up to ':' less trailing blanks); 0 if no colon. */
static size_t
sig_name_len(const char *f, size_t len)
{
	const char *c = memchr(f, ':', len);
	size_t n;

	if (c == NULL)
		return 0;
	n = (size_t)(c - f);
	while (n > 0 && (f[n - 1] == ' ' || f[n - 1] == '\t'))
		n--;
	return n;
}

/* sig_listed - does NAME (n bytes) match a list entry ("List-*" is a prefix)? */
static bool
sig_listed(const char *const *list, const char *name, size_t n)
{
	for (size_t i = 0; list != NULL && list[i] != NULL; i++) {
		size_t l = strlen(list[i]);
		if (l > 0 && list[i][l - 1] == '*') {
			if (n >= l - 1 && strncasecmp(list[i], name, l - 1) == 0)
				return true;
		} else if (l == n && strncasecmp(list[i], name, n) == 0) {
			return true;
		}
	}
	return false;
}

/*
 * RFC 6376 3.4.2, relaxed: the name in lower case and without blanks before the colon; in the
 * value, a CRLF followed by WSP is a fold and goes (only that: a CR or LF not part of such a
 * fold is a byte of the value, as any other), each run of WSP becomes one SP, and WSP at the
 * start and at the end goes.
 */
size_t
moat__dkim_canon_header(const char *f, size_t len, bool relaxed, bool crlf, char *out)
{
	size_t o = 0, nl = sig_name_len(f, len), i, value;
	bool wsp = false;

	if (!relaxed) {
		memcpy(out, f, len);
		o = len;
	} else {
		for (i = 0; i < nl; i++)
			out[o++] = (char)tolower((unsigned char)f[i]);
		out[o++] = ':';
		value = o;
		for (i = (size_t)((const char *)memchr(f, ':', len) - f) + 1; i < len; i++) {
			char c = f[i];
			if (c == '\r' && len - i >= 3 && f[i + 1] == '\n' &&
			    (f[i + 2] == ' ' || f[i + 2] == '\t')) {
				i++; /* a fold: CRLF before WSP */
				continue;
			}
			if (c == ' ' || c == '\t') {
				wsp = true;
				continue;
			}
			if (wsp && o > value)
				out[o++] = ' ';
			wsp = false;
			out[o++] = c;
		}
	}
	if (crlf) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	return o;
}

static void
sig_hlist_add(struct moat__dkim_sig *s, const char *name, size_t n)
{
	if (s->hlistlen + n + 2 >= sizeof(s->hlist)) {
		s->failed = true;
		return;
	}
	if (s->hlistlen > 0)
		s->hlist[s->hlistlen++] = ':';
	memcpy(s->hlist + s->hlistlen, name, n);
	s->hlistlen += n;
	s->hlist[s->hlistlen] = '\0';
}

int
moat__dkim_sig_fields(struct moat__dkim_sig *s, const char *hlist, const char *buf,
    const size_t *off, const size_t *len, unsigned n)
{
	if (s->failed || moat__dkim_hash_headers(s->hmd, hlist, true, buf, off, len, n) < 0)
		s->failed = true;
	return s->failed ? -1 : 0;
}

int
moat__dkim_sig_header(struct moat__dkim_sig *s, const char *buf, const size_t *off,
    const size_t *len, unsigned n)
{
	/* h=: the signed fields in message order, then each oversigned name once more. */
	for (unsigned i = 0; i < n; i++) {
		size_t nl = sig_name_len(buf + off[i], len[i]);
		if (nl > 0 && sig_listed(s->p.signhdrs, buf + off[i], nl))
			sig_hlist_add(s, buf + off[i], nl);
	}
	for (size_t k = 0; s->p.oversign != NULL && s->p.oversign[k] != NULL; k++)
		sig_hlist_add(s, s->p.oversign[k], strlen(s->p.oversign[k]));
	if (!s->failed &&
	    moat__dkim_hash_headers(s->hmd, s->hlist, s->p.hrelaxed, buf, off, len, n) < 0)
		s->failed = true;
	return s->failed ? -1 : 0;
}

int
moat__dkim_hash_headers(void *md, const char *hlist, bool relaxed, const char *buf,
    const size_t *off, const size_t *len, unsigned n)
{
	bool *used = calloc(n ? n : 1, sizeof(*used));
	char *canon;
	size_t maxlen = 0;

	if (used == NULL)
		return -1;
	for (unsigned i = 0; i < n; i++)
		if (len[i] > maxlen)
			maxlen = len[i];
	if ((canon = malloc(maxlen + 3)) == NULL) {
		free(used);
		return -1;
	}
	/* For each h= name, the last instance not used yet (RFC 6376 5.4.2); none left: nothing. */
	for (const char *h = hlist; *h;) {
		const char *e = strchr(h, ':');
		size_t hn = e ? (size_t)(e - h) : strlen(h);
		for (unsigned i = n; i-- > 0;) {
			size_t nl = sig_name_len(buf + off[i], len[i]);
			if (!used[i] && nl == hn && strncasecmp(buf + off[i], h, hn) == 0) {
				size_t cl = moat__dkim_canon_header(buf + off[i], len[i], relaxed,
				    true, canon);
				EVP_DigestUpdate((EVP_MD_CTX *)md, canon, cl);
				used[i] = true;
				break;
			}
		}
		h += hn + (e ? 1 : 0);
	}
	free(canon);
	free(used);
	return 0;
}

/* The field value being built: bounded, folded to keep lines near 76 columns. */
struct sig_value {
	char buf[SIG_VALUE_MAX];
	size_t o, col;
	bool overflow; /* a piece did not fit: the signature is abandoned */
};

/* sv_raw - append N bytes of TEXT as they are. */
static void
sv_raw(struct sig_value *v, const char *text, size_t n)
{
	if (v->overflow || n >= sizeof(v->buf) - v->o) {
		v->overflow = true;
		return;
	}
	memcpy(v->buf + v->o, text, n);
	v->o += n;
	v->buf[v->o] = '\0';
}

/* sv_break - fold: CRLF and a tab (counted as 8 columns) plus INDENT spaces. */
static void
sv_break(struct sig_value *v, bool indent)
{
	sv_raw(v, indent ? "\r\n\t " : "\r\n\t", indent ? 4 : 3);
	v->col = indent ? 9 : 8;
}

/* sv_tag - append TEXT, after a blank or a fold when SPACE_BEFORE and the line would pass 76. */
static void
sv_tag(struct sig_value *v, const char *text, bool space_before)
{
	size_t n = strlen(text);

	if (space_before) {
		if (v->col + n + 1 > 76)
			sv_break(v, false);
		else {
			sv_raw(v, " ", 1);
			v->col++;
		}
	}
	sv_raw(v, text, n);
	v->col += n;
}

/* sig_field_name - the field the signature is written into. */
static const char *
sig_field_name(const struct moat__dkim_sig *s)
{
	return s->p.instance == 0 ? "DKIM-Signature"
	    : s->p.cv == NULL     ? "ARC-Message-Signature"
				  : "ARC-Seal";
}

/*
 * sig_value_tags - every tag but the b= value: v a c d s t x bh h b= (RFC 6376 3.5); for an
 * ARC-Message-Signature i a c d s t bh h b=, for an ARC-Seal i a cv d s t b= (RFC 8617 4.1).
 */
static void
sig_value_tags(const struct moat__dkim_sig *s, const unsigned char bh[MOAT_DKIM_BH_LEN],
    struct sig_value *v)
{
	char bh64[48], tag[SIG_HLIST_MAX * 8 + 8];
	const char *h = s->hlist;
	bool first = true;

	v->col = strlen(sig_field_name(s)) + 2;
	if (s->p.instance == 0) {
		sv_tag(v, "v=1;", false);
	} else {
		snprintf(tag, sizeof(tag), "i=%u;", s->p.instance);
		sv_tag(v, tag, false);
	}
	snprintf(tag, sizeof(tag), "a=%s;", moat_key_alg_name(s->p.alg));
	sv_tag(v, tag, true);
	if (s->p.cv != NULL) {
		snprintf(tag, sizeof(tag), "cv=%s;", s->p.cv);
		sv_tag(v, tag, true);
	} else {
		snprintf(tag, sizeof(tag), "c=%s/%s;", s->p.hrelaxed ? "relaxed" : "simple",
		    s->p.brelaxed ? "relaxed" : "simple");
		sv_tag(v, tag, true);
	}
	snprintf(tag, sizeof(tag), "d=%s;", s->p.domain);
	sv_tag(v, tag, true);
	snprintf(tag, sizeof(tag), "s=%s;", s->p.selector);
	sv_tag(v, tag, true);
	snprintf(tag, sizeof(tag), "t=%llu;", (unsigned long long)s->p.now);
	sv_tag(v, tag, true);
	if (s->p.cv != NULL) {
		sv_tag(v, "b=", true);
		return;
	}
	if (s->p.ttl > 0 && s->p.instance == 0) {
		snprintf(tag, sizeof(tag), "x=%llu;",
		    (unsigned long long)s->p.now + (unsigned long long)s->p.ttl);
		sv_tag(v, tag, true);
	}
	EVP_EncodeBlock((unsigned char *)bh64, bh, MOAT_DKIM_BH_LEN);
	snprintf(tag, sizeof(tag), "bh=%s;", bh64);
	sv_tag(v, tag, true);
	/* h= folded at colons */
	while (*h) {
		const char *e = strchr(h, ':');
		size_t n = e ? (size_t)(e - h) : strlen(h);
		snprintf(tag, sizeof(tag), "%s%.*s%s", first ? "h=" : "", (int)n, h, e ? ":" : ";");
		if (!first && v->col + strlen(tag) > 76)
			sv_break(v, true);
		sv_tag(v, tag, first);
		first = false;
		h += n + (e ? 1 : 0);
	}
	sv_tag(v, "b=", true);
}

/*
 * sig_sign - the private-key operation over the header hash HH into sig (*siglen: its size in,
 * the length out). rsa-sha256: RSASSA-PKCS1-v1_5 with SHA-256 (RFC 6376 3.3.1, RFC 8017 8.2);
 * ed25519-sha256: PureEdDSA over the SHA-256 hash (RFC 8463 3).
 */
static int
sig_sign(const struct moat__dkim_sig *s, const unsigned char *hh, size_t hhlen, unsigned char *sig,
    size_t *siglen)
{
	EVP_PKEY *pkey = (EVP_PKEY *)s->p.evp;
	int ok = 0;

	if (s->p.alg == MOAT_KEY_RSA_SHA256) {
		EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(pkey, NULL);
		ok = pctx != NULL && EVP_PKEY_sign_init(pctx) == 1 &&
		    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 &&
		    EVP_PKEY_CTX_set_signature_md(pctx, (const EVP_MD *)s->p.md) == 1 &&
		    EVP_PKEY_sign(pctx, sig, siglen, hh, hhlen) == 1;
		EVP_PKEY_CTX_free(pctx);
	} else {
		EVP_MD_CTX *sctx = EVP_MD_CTX_new();
		ok = sctx != NULL && EVP_DigestSignInit(sctx, NULL, NULL, NULL, pkey) == 1 &&
		    EVP_DigestSign(sctx, sig, siglen, hh, hhlen) == 1;
		EVP_MD_CTX_free(sctx);
	}
	return ok ? 0 : -1;
}

char *
moat__dkim_sig_end(struct moat__dkim_sig *s, const unsigned char bh[MOAT_DKIM_BH_LEN])
{
	unsigned char hh[EVP_MAX_MD_SIZE], *sig = NULL;
	char *sig64 = NULL, *canon = NULL, *value = NULL, *field;
	unsigned hl = 0;
	size_t siglen, flen, cl, n;
	struct sig_value *v;
	int ksize = EVP_PKEY_get_size((EVP_PKEY *)s->p.evp);

	if (s->failed || ksize <= 0 || (v = malloc(sizeof(*v))) == NULL)
		return NULL;
	v->o = v->col = 0;
	v->overflow = false;
	sig_value_tags(s, bh, v);
	/* RFC 6376 3.7: the header hash ends with this field, b= empty, no final CRLF. */
	flen = strlen(sig_field_name(s)) + 2 + v->o;
	if (v->overflow || (field = malloc(flen + 1)) == NULL)
		goto out;
	snprintf(field, flen + 1, "%s: %s", sig_field_name(s), v->buf);
	if ((canon = malloc(flen + 3)) != NULL) {
		cl = moat__dkim_canon_header(field, flen, s->p.hrelaxed, false, canon);
		EVP_DigestUpdate(s->hmd, canon, cl);
	}
	free(field);
	siglen = (size_t)ksize;
	if (canon == NULL || EVP_DigestFinal_ex(s->hmd, hh, &hl) != 1 ||
	    (sig = malloc(siglen)) == NULL || (sig64 = malloc(4 * siglen / 3 + 8)) == NULL ||
	    sig_sign(s, hh, hl, sig, &siglen) < 0)
		goto out;
	n = (size_t)EVP_EncodeBlock((unsigned char *)sig64, sig, (int)siglen);
	/* b= folded into pieces that keep lines short */
	for (size_t i = 0; i < n;) {
		size_t room = v->col < 76 ? 76 - v->col : 0, take;
		if (room < 8) {
			sv_break(v, true);
			room = 76 - v->col;
		}
		take = n - i < room ? n - i : room;
		sv_raw(v, sig64 + i, take);
		v->col += take;
		i += take;
	}
	if (!v->overflow)
		value = strdup(v->buf);
out:
	free(canon);
	free(sig);
	free(sig64);
	free(v);
	return value;
}
