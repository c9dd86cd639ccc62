/*
 * dkim_ed25519.c - ed25519-sha256 signing with our own canonicalization (see dkim_ed25519.h).
 *
 * Owns one struct moat__ed_sign per signature: a streaming body canonicalizer feeding SHA-256
 * (bh=), and at the end the header hash and the Ed25519 signature over it (RFC 8463 3).
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "dkim_ed25519.h"

#define ED_OUTBUF 4096
#define ED_HLIST_MAX 512          /* names in h= */
#define ED_VALUE_MAX 8192         /* the signature field value */

/* ---- body canonicalization (RFC 6376 3.4.3, 3.4.4), streaming ---- */

struct body_canon {
	bool relaxed;
	unsigned long pending_crlf;   /* empty lines held back: dropped if they end the body */
	bool pending_cr, pending_wsp, emitted, line_open;
	EVP_MD_CTX *md;               /* sink: hash ... */
	char *out;                    /* ... or buffer (tests) */
	size_t outlen;
	char buf[ED_OUTBUF];
	size_t used;
};

static void
bc_flush(struct body_canon *b)
{
	if (b->used == 0)
		return;
	if (b->md != NULL)
		EVP_DigestUpdate(b->md, b->buf, b->used);
	else {
		memcpy(b->out + b->outlen, b->buf, b->used);
		b->outlen += b->used;
	}
	b->used = 0;
}

static void
bc_emit(struct body_canon *b, const char *p, size_t n)
{
	while (n > 0) {
		size_t take;
		if (b->used == sizeof(b->buf))
			bc_flush(b);
		take = sizeof(b->buf) - b->used < n ? sizeof(b->buf) - b->used : n;
		memcpy(b->buf + b->used, p, take);
		b->used += take;
		p += take;
		n -= take;
	}
	b->emitted = true;
}

/* bc_release - what was held back goes out because a non-blank byte follows. */
static void
bc_release(struct body_canon *b)
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
}

static void
bc_feed(struct body_canon *b, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c;
		if (!b->pending_cr && !b->pending_wsp) {
			/* Fast path: a run of ordinary bytes goes out in one piece. */
			size_t j = i;
			while (j < n && p[j] != '\r' && p[j] != '\n') {
				/* relaxed: a lone SP between two ordinary bytes stays as it is */
				if (b->relaxed && (p[j] == ' ' || p[j] == '\t') &&
				    (p[j] == '\t' || j + 1 >= n || p[j + 1] == ' ' || p[j + 1] == '\t' ||
				    p[j + 1] == '\r' || p[j + 1] == '\n'))
					break;
				j++;
			}
			if (j > i) {
				bc_release(b);
				bc_emit(b, p + i, j - i);
				b->line_open = true;
				i = j;
				if (i == n)
					break;
			}
		}
		c = p[i];
		if (c == '\n' && b->pending_cr) {
			b->pending_cr = false;
			b->pending_wsp = false;     /* relaxed: blanks at end of line go */
			if (b->line_open) {
				bc_emit(b, "\r\n", 2);
				b->line_open = false;
			} else {
				b->pending_crlf++;
			}
			continue;
		}
		if (c == '\r') {
			if (b->pending_cr) {        /* a bare CR before this one */
				bc_release(b);
				b->line_open = true;
			}
			b->pending_cr = true;
			continue;
		}
		if (b->relaxed && (c == ' ' || c == '\t') && !b->pending_cr) {
			b->pending_wsp = true;
			continue;
		}
		bc_release(b);
		bc_emit(b, &c, 1);
		b->line_open = true;
	}
}

static void
bc_end(struct body_canon *b)
{
	if (b->pending_cr) {                /* a bare CR at the very end */
		bc_release(b);
		b->line_open = true;
	}
	/* Held-back empty lines are dropped; an unterminated last line gets its CRLF. */
	/* simple: an empty body is one CRLF (RFC 6376 3.4.3) */
	if (b->line_open || (!b->emitted && !b->relaxed))
		bc_emit(b, "\r\n", 2);
	bc_flush(b);
}

size_t
moat__dkim_body_canon(const char *in, size_t len, bool relaxed, char *out)
{
	struct body_canon b;

	memset(&b, 0, sizeof(b));
	b.relaxed = relaxed;
	b.out = out;
	bc_feed(&b, in, len);
	bc_end(&b);
	return b.outlen;
}

/* ---- the signature ---- */

struct moat__ed_sign {
	struct moat__ed_params p;
	struct body_canon body;
	EVP_MD_CTX *hmd;                    /* header hash */
	char hlist[ED_HLIST_MAX * 8];       /* h= value */
	size_t hlistlen;
	bool failed;
};

struct moat__ed_sign *
moat__ed_begin(const struct moat__ed_params *p)
{
	struct moat__ed_sign *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->p = *p;
	s->body.relaxed = p->brelaxed;
	s->body.md = EVP_MD_CTX_new();
	s->hmd = EVP_MD_CTX_new();
	if (s->body.md == NULL || s->hmd == NULL ||
	    EVP_DigestInit_ex(s->body.md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestInit_ex(s->hmd, EVP_sha256(), NULL) != 1) {
		moat__ed_free(s);
		return NULL;
	}
	return s;
}

void
moat__ed_free(struct moat__ed_sign *s)
{
	if (s == NULL)
		return;
	EVP_MD_CTX_free(s->body.md);
	EVP_MD_CTX_free(s->hmd);
	free(s);
}

/* ed_name_len - length of the field name (up to ':' less trailing blanks); 0 if no colon. */
static size_t
ed_name_len(const char *f, size_t len)
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

/* ed_name_matches - does NAME (n bytes) match a list entry ("List-*" is a prefix)? */
static bool
ed_listed(const char *const *list, const char *name, size_t n)
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

/* ed_canon_header - one field canonicalized into out (RFC 6376 3.4.1, 3.4.2); with CRLF if crlf. */
static size_t
ed_canon_header(const char *f, size_t len, bool relaxed, bool crlf, char *out)
{
	size_t o = 0, nl = ed_name_len(f, len), i;
	bool wsp = false;

	if (!relaxed) {
		memcpy(out, f, len);
		o = len;
	} else {
		for (i = 0; i < nl; i++)
			out[o++] = (char)tolower((unsigned char)f[i]);
		out[o++] = ':';
		i = (size_t)((const char *)memchr(f, ':', len) - f) + 1;
		/* skip blanks after the colon */
		while (i < len && (f[i] == ' ' || f[i] == '\t' || f[i] == '\r' || f[i] == '\n'))
			i++;
		for (; i < len; i++) {
			char c = f[i];
			if (c == '\r' || c == '\n')
				continue;        /* unfold */
			if (c == ' ' || c == '\t') {
				wsp = true;
				continue;
			}
			if (wsp)
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
ed_hlist_add(struct moat__ed_sign *s, const char *name, size_t n)
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
moat__ed_header(struct moat__ed_sign *s, const char *buf, const size_t *off, const size_t *len,
    unsigned n)
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
	/* h=: the signed fields in message order, then each oversigned name once more. */
	for (unsigned i = 0; i < n; i++) {
		size_t nl = ed_name_len(buf + off[i], len[i]);
		if (nl > 0 && ed_listed(s->p.signhdrs, buf + off[i], nl))
			ed_hlist_add(s, buf + off[i], nl);
	}
	for (size_t k = 0; s->p.oversign != NULL && s->p.oversign[k] != NULL; k++)
		ed_hlist_add(s, s->p.oversign[k], strlen(s->p.oversign[k]));
	/* Hash: for each h= name, the last instance not used yet (RFC 6376 5.4.2). */
	for (const char *h = s->hlist; *h && !s->failed;) {
		const char *e = strchr(h, ':');
		size_t hn = e ? (size_t)(e - h) : strlen(h);
		for (unsigned i = n; i-- > 0;) {
			size_t nl = ed_name_len(buf + off[i], len[i]);
			if (!used[i] && nl == hn && strncasecmp(buf + off[i], h, hn) == 0) {
				size_t cl = ed_canon_header(buf + off[i], len[i], s->p.hrelaxed, true, canon);
				EVP_DigestUpdate(s->hmd, canon, cl);
				used[i] = true;
				break;
			}
		}
		h += hn + (e ? 1 : 0);
	}
	free(canon);
	free(used);
	return s->failed ? -1 : 0;
}

void
moat__ed_body(struct moat__ed_sign *s, const char *chunk, size_t len)
{
	bc_feed(&s->body, chunk, len);
}

/* ed_fold - append TEXT to out, breaking at ':' or before the text when a line would pass 76. */
static void
ed_append(char *out, size_t *o, size_t *col, const char *text, bool space_before)
{
	size_t n = strlen(text);

	if (*o + n + 8 >= ED_VALUE_MAX)
		return;
	if (space_before) {
		if (*col + n + 1 > 76) {
			memcpy(out + *o, "\r\n\t", 3);
			*o += 3;
			*col = 8;
		} else {
			out[(*o)++] = ' ';
			(*col)++;
		}
	}
	memcpy(out + *o, text, n);
	*o += n;
	*col += n;
	out[*o] = '\0';
}

char *
moat__ed_end(struct moat__ed_sign *s)
{
	unsigned char bh[32], hh[32], sig[64];
	char bh64[48], sig64[96], tag[ED_HLIST_MAX * 8 + 8], *value, *canon;
	unsigned hl = 0;
	size_t o = 0, col = strlen("DKIM-Signature: "), siglen = sizeof(sig), cl;
	EVP_MD_CTX *sctx;

	if (s->failed)
		return NULL;
	bc_end(&s->body);
	if (EVP_DigestFinal_ex(s->body.md, bh, &hl) != 1 || hl != 32)
		return NULL;
	EVP_EncodeBlock((unsigned char *)bh64, bh, 32);
	if ((value = malloc(ED_VALUE_MAX)) == NULL)
		return NULL;
	value[0] = '\0';
	ed_append(value, &o, &col, "v=1;", false);
	ed_append(value, &o, &col, "a=ed25519-sha256;", true);
	snprintf(tag, sizeof(tag), "c=%s/%s;", s->p.hrelaxed ? "relaxed" : "simple",
	    s->p.brelaxed ? "relaxed" : "simple");
	ed_append(value, &o, &col, tag, true);
	snprintf(tag, sizeof(tag), "d=%s;", s->p.domain);
	ed_append(value, &o, &col, tag, true);
	snprintf(tag, sizeof(tag), "s=%s;", s->p.selector);
	ed_append(value, &o, &col, tag, true);
	snprintf(tag, sizeof(tag), "t=%llu;", (unsigned long long)s->p.now);
	ed_append(value, &o, &col, tag, true);
	if (s->p.ttl > 0) {
		snprintf(tag, sizeof(tag), "x=%llu;", (unsigned long long)s->p.now + (unsigned long long)s->p.ttl);
		ed_append(value, &o, &col, tag, true);
	}
	snprintf(tag, sizeof(tag), "bh=%s;", bh64);
	ed_append(value, &o, &col, tag, true);
	/* h= folded at colons */
	{
		const char *h = s->hlist;
		bool first = true;
		while (*h) {
			const char *e = strchr(h, ':');
			size_t n = e ? (size_t)(e - h) : strlen(h);
			snprintf(tag, sizeof(tag), "%s%.*s%s", first ? "h=" : "", (int)n, h, e ? ":" : ";");
			if (first)
				ed_append(value, &o, &col, tag, true);
			else if (col + strlen(tag) > 76) {
				ed_append(value, &o, &col, "", false);
				if (o + 4 < ED_VALUE_MAX) {
					memcpy(value + o, "\r\n\t ", 4);
					o += 4;
					col = 9;
					value[o] = '\0';
				}
				ed_append(value, &o, &col, tag, false);
			} else
				ed_append(value, &o, &col, tag, false);
			first = false;
			h += n + (e ? 1 : 0);
		}
	}
	ed_append(value, &o, &col, "b=", true);
	/* RFC 6376 3.7: the header hash ends with this field, b= empty, no final CRLF. */
	{
		size_t flen = strlen("DKIM-Signature: ") + o;
		char *field = malloc(flen + 1);
		if (field == NULL || (canon = malloc(flen + 3)) == NULL) {
			free(field);
			free(value);
			return NULL;
		}
		snprintf(field, flen + 1, "DKIM-Signature: %s", value);
		cl = ed_canon_header(field, flen, s->p.hrelaxed, false, canon);
		EVP_DigestUpdate(s->hmd, canon, cl);
		free(field);
		free(canon);
	}
	if (EVP_DigestFinal_ex(s->hmd, hh, &hl) != 1 || hl != 32 || (sctx = EVP_MD_CTX_new()) == NULL) {
		free(value);
		return NULL;
	}
	/* RFC 8463 3: PureEdDSA over the SHA-256 hash. */
	if (EVP_DigestSignInit(sctx, NULL, NULL, NULL, (EVP_PKEY *)s->p.evp) != 1 ||
	    EVP_DigestSign(sctx, sig, &siglen, hh, sizeof(hh)) != 1 || siglen != 64) {
		EVP_MD_CTX_free(sctx);
		free(value);
		return NULL;
	}
	EVP_MD_CTX_free(sctx);
	EVP_EncodeBlock((unsigned char *)sig64, sig, 64);
	/* b= folded into pieces that keep lines short */
	for (size_t i = 0, n = strlen(sig64); i < n;) {
		size_t room = col < 76 ? 76 - col : 0, take;
		if (room < 8) {
			memcpy(value + o, "\r\n\t ", 4);
			o += 4;
			col = 9;
			room = 76 - col;
		}
		take = n - i < room ? n - i : room;
		memcpy(value + o, sig64 + i, take);
		o += take;
		col += take;
		i += take;
	}
	value[o] = '\0';
	return value;
}
