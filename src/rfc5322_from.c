/*
 * rfc5322_from.c - the strict From parser DMARC relies on (see rfc5322_from.h).
 *
 * The value is unfolded into a bounded buffer, split into RFC 5322 lexical tokens (comments and
 * whitespace dropped, quoted-strings unescaped), and then must be exactly
 *     [display-name] "<" local-part "@" domain ">"   or   local-part "@" domain
 * with nothing after it. No group syntax, no source routes, no domain literals. Every refusal has
 * a static reason for --explain and the log.
 */
#include "config.h"

#include <ctype.h>
#include <string.h>

#include "qp.h"
#include "rfc5322_from.h"
#include "text.h"

#define COMMENT_DEPTH_MAX 8
#define TOKENS_MAX 256

enum tok_type {
	T_ATOM,
	T_QS,
	T_SPECIAL
};

struct tok {
	enum tok_type type;
	char c; /* T_SPECIAL: the character */
	size_t off, len; /* T_ATOM/T_QS: text in the token buffer */
};

struct lex {
	char text[MOAT_FROM_FIELD_MAX]; /* unescaped atoms and quoted-strings, back to back */
	size_t used;
	struct tok t[TOKENS_MAX];
	size_t n;
};

void
moat_from_init(struct moat_from *f)
{
	memset(f, 0, sizeof(*f));
	f->status = MOAT_FROM_NONE;
}

bool
moat_from_is_from(const char *field, size_t len)
{
	size_t i;

	if (len < 5 || strncasecmp(field, "From", 4) != 0)
		return false;
	for (i = 4; i < len && (field[i] == ' ' || field[i] == '\t'); i++)
		;
	return i < len && field[i] == ':';
}

/* is_atext - RFC 5322 atext, plus 8-bit bytes (RFC 6532 UTF-8 in local parts and names). */
static bool
is_atext(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL) || c >= 0x80;
}

/* lex_add - record a token; false when the token table or text buffer is full. */
static bool
lex_add(struct lex *lx, enum tok_type type, char c, size_t off, size_t len)
{
	if (lx->n == TOKENS_MAX)
		return false;
	lx->t[lx->n].type = type;
	lx->t[lx->n].c = c;
	lx->t[lx->n].off = off;
	lx->t[lx->n].len = len;
	lx->n++;
	return true;
}

/* lex_value - tokenize an unfolded value. 0, or -1 with *why. */
static int
lex_value(struct lex *lx, const char *v, size_t n, const char **why)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = (unsigned char)v[i];
		if (c == ' ' || c == '\t') {
			i++;
		} else if (c == '(') {
			/* RFC 5322 3.2.2 comment, nested, with quoted-pairs */
			unsigned depth = 0;
			do {
				if (v[i] == '\\') {
					if (i + 1 >= n) {
						*why = "unbalanced comment";
						return -1;
					}
					i++;
				} else if (v[i] == '(') {
					if (++depth > COMMENT_DEPTH_MAX) {
						*why = "comments nested too deep";
						return -1;
					}
				} else if (v[i] == ')') {
					depth--;
				}
				i++;
			} while (depth > 0 && i < n);
			if (depth > 0) {
				*why = "unbalanced comment";
				return -1;
			}
		} else if (c == '"') {
			size_t off = lx->used;
			i++;
			while (i < n && v[i] != '"') {
				if (v[i] == '\\') {
					if (++i >= n)
						break;
				}
				if (lx->used + 1 >= sizeof(lx->text)) {
					*why = "field too long";
					return -1;
				}
				lx->text[lx->used++] = v[i++];
			}
			if (i >= n) {
				*why = "unbalanced quotes";
				return -1;
			}
			i++;
			if (!lex_add(lx, T_QS, 0, off, lx->used - off)) {
				*why = "too many tokens";
				return -1;
			}
		} else if (is_atext(c)) {
			size_t off = lx->used;
			while (i < n && is_atext((unsigned char)v[i])) {
				if (lx->used + 1 >= sizeof(lx->text)) {
					*why = "field too long";
					return -1;
				}
				lx->text[lx->used++] = v[i++];
			}
			if (!lex_add(lx, T_ATOM, 0, off, lx->used - off)) {
				*why = "too many tokens";
				return -1;
			}
		} else if (strchr("<>@.,:;[]", c) != NULL && c != '\0') {
			if (!lex_add(lx, T_SPECIAL, (char)c, 0, 0)) {
				*why = "too many tokens";
				return -1;
			}
			i++;
		} else if (c == ')') {
			*why = "unbalanced comment";
			return -1;
		} else {
			*why = c == '\\' ? "quoted-pair outside quotes"
					 : "byte not allowed in a From field";
			return -1;
		}
	}
	return 0;
}

/* decoded_is_addressy - does decoded text of an encoded-word contain address syntax? */
static bool
decoded_is_addressy(unsigned char c)
{
	return c == '@' || c == '<' || c == '>' || c == ',' || c == ';' || c == ':' || c == '"' ||
	    c < 0x20;
}

/*
 * encoded_words_hide_address - RFC 2047 encoded-words in S (a display-name word): true when one
 * decodes to something that looks like address syntax, which an MUA would show as the sender.
 * A malformed encoded-word counts as hiding something too.
 */
static bool
encoded_words_hide_address(const char *s, size_t n)
{
	size_t i = 0;

	while (i + 1 < n) {
		const char *q1, *q2, *end;
		size_t j;
		if (s[i] != '=' || s[i + 1] != '?') {
			i++;
			continue;
		}
		/* =?charset?enc?text?= */
		q1 = memchr(s + i + 2, '?', n - i - 2);
		if (q1 == NULL || q1 + 2 >= s + n || q1[2] != '?')
			return true;
		q2 = q1 + 2;
		end = NULL;
		for (j = (size_t)(q2 + 1 - s); j + 1 < n; j++) {
			if (s[j] == '?' && s[j + 1] == '=') {
				end = s + j;
				break;
			}
		}
		if (end == NULL)
			return true;
		if (q1[1] == 'B' || q1[1] == 'b') {
			unsigned acc = 0, bits = 0;
			const char *p;
			for (p = q2 + 1; p < end; p++) {
				int v = moat_base64_value((unsigned char)*p);
				if (*p == '=')
					break;
				if (v < 0)
					return true;
				acc = (acc << 6) | (unsigned)v;
				bits += 6;
				if (bits >= 8) {
					bits -= 8;
					if (decoded_is_addressy(
						(unsigned char)((acc >> bits) & 0xff)))
						return true;
				}
			}
		} else if (q1[1] == 'Q' || q1[1] == 'q') {
			const char *p;
			for (p = q2 + 1; p < end; p++) {
				unsigned char c = (unsigned char)*p;
				if (c == '=') {
					int v = moat__qp_octet(p, (size_t)(end - p));
					if (v < 0)
						return true;
					c = (unsigned char)v;
					p += 2;
				} else if (c == '_') {
					c = ' ';
				}
				if (decoded_is_addressy(c))
					return true;
			}
		} else {
			return true;
		}
		i = (size_t)(end + 2 - s);
	}
	return false;
}

/* ldh_domain - lower-cased DOMAIN from atoms and dots; 0 or -1. */
static int
take_domain(const struct lex *lx, size_t *pi, char *domain, size_t domainlen, const char **why)
{
	size_t i = *pi, o = 0, label;

	for (;;) {
		const struct tok *t;
		size_t k;
		if (i >= lx->n || lx->t[i].type != T_ATOM) {
			*why = (i < lx->n && lx->t[i].type == T_SPECIAL && lx->t[i].c == '[')
			    ? "domain literal"
			    : "missing or malformed domain";
			return -1;
		}
		t = &lx->t[i];
		label = t->len;
		if (label > 63) {
			*why = "domain label longer than 63";
			return -1;
		}
		for (k = 0; k < t->len; k++) {
			unsigned char c = (unsigned char)lx->text[t->off + k];
			if (!isalnum(c) && c != '-' && c != '_') {
				*why = "byte not allowed in a domain";
				return -1;
			}
			if (o + 2 >= domainlen) {
				*why = "domain too long";
				return -1;
			}
			domain[o++] = (char)tolower(c);
		}
		i++;
		if (i < lx->n && lx->t[i].type == T_SPECIAL && lx->t[i].c == '.') {
			domain[o++] = '.';
			i++;
			continue;
		}
		break;
	}
	domain[o] = '\0';
	if (o > MOAT_FROM_DOMAIN_MAX) {
		*why = "domain too long";
		return -1;
	}
	if (strchr(domain, '.') == NULL) {
		*why = "domain has a single label";
		return -1;
	}
	*pi = i;
	return 0;
}

/* take_addr_spec - local-part "@" domain starting at token *pi. */
static int
take_addr_spec(const struct lex *lx, size_t *pi, char *local, size_t locallen, char *domain,
    size_t domainlen, const char **why)
{
	size_t i = *pi, o = 0;

	if (i < lx->n && lx->t[i].type == T_QS) {
		if (lx->t[i].len + 1 > locallen) {
			*why = "local-part too long";
			return -1;
		}
		memcpy(local, lx->text + lx->t[i].off, lx->t[i].len);
		o = lx->t[i].len;
		i++;
	} else {
		for (;;) {
			const struct tok *t;
			if (i >= lx->n || lx->t[i].type != T_ATOM) {
				*why = "missing or malformed local-part";
				return -1;
			}
			t = &lx->t[i];
			if (t->len >= 2 && lx->text[t->off] == '=' && lx->text[t->off + 1] == '?') {
				*why = "encoded-word in the address";
				return -1;
			}
			if (o + t->len + 2 > locallen) {
				*why = "local-part too long";
				return -1;
			}
			memcpy(local + o, lx->text + t->off, t->len);
			o += t->len;
			i++;
			if (i < lx->n && lx->t[i].type == T_SPECIAL && lx->t[i].c == '.') {
				local[o++] = '.';
				i++;
				continue;
			}
			break;
		}
	}
	local[o] = '\0';
	if (i >= lx->n || lx->t[i].type != T_SPECIAL || lx->t[i].c != '@') {
		*why = "no @ in the address";
		return -1;
	}
	i++;
	if (take_domain(lx, &i, domain, domainlen, why) < 0)
		return -1;
	*pi = i;
	return 0;
}

/*
 * from_parse_value - parse one From field value (after the colon, folding allowed) as
 * exactly one mailbox. Fills local/domain and returns 0, or -1 with *why set.
 */
static int
from_parse_value(const char *value, size_t len, char *local, size_t locallen, char *domain,
    size_t domainlen, const char **why)
{
	static __thread struct lex lx; /* ~10 KiB: kept off small thread stacks */
	char unfolded[MOAT_FROM_FIELD_MAX];
	size_t i, n = 0, lt = 0;
	bool angle = false;

	local[0] = '\0';
	domain[0] = '\0';
	if (len > sizeof(unfolded)) {
		*why = "field too long";
		return -1;
	}
	/* RFC 5322 2.2.3 unfolding: CRLF followed by WSP; any other CR or LF is an error. */
	for (i = 0; i < len; i++) {
		if (value[i] == '\r' || value[i] == '\n') {
			if (value[i] == '\r' && i + 2 < len && value[i + 1] == '\n' &&
			    (value[i + 2] == ' ' || value[i + 2] == '\t')) {
				i++;
				continue;
			}
			*why = "bare CR or LF";
			return -1;
		}
		if (value[i] == '\0') {
			*why = "NUL byte";
			return -1;
		}
		unfolded[n++] = value[i];
	}
	lx.used = 0;
	lx.n = 0;
	if (lex_value(&lx, unfolded, n, why) < 0)
		return -1;
	if (lx.n == 0) {
		*why = "empty From";
		return -1;
	}
	for (i = 0; i < lx.n; i++) {
		if (lx.t[i].type == T_SPECIAL && lx.t[i].c == '<') {
			if (angle) {
				*why = "several angle addresses";
				return -1;
			}
			angle = true;
			lt = i;
		}
	}
	i = 0;
	if (angle) {
		/* display-name: words and dots only (obs-phrase), no hidden address */
		for (; i < lt; i++) {
			const struct tok *t = &lx.t[i];
			if (t->type == T_SPECIAL && t->c != '.') {
				*why = t->c == ',' ? "several mailboxes"
				    : t->c == ':'  ? "group syntax"
						   : "special character in the display name";
				return -1;
			}
			if (t->type != T_SPECIAL &&
			    encoded_words_hide_address(lx.text + t->off, t->len)) {
				*why = "encoded-word hides an address in the display name";
				return -1;
			}
		}
		i = lt + 1;
		if (i < lx.n && lx.t[i].type == T_SPECIAL && lx.t[i].c == '@') {
			*why = "source route";
			return -1;
		}
	}
	if (take_addr_spec(&lx, &i, local, locallen, domain, domainlen, why) < 0) {
		local[0] = domain[0] = '\0';
		return -1;
	}
	if (angle) {
		if (i >= lx.n || lx.t[i].type != T_SPECIAL || lx.t[i].c != '>') {
			*why = "unbalanced angle brackets";
			local[0] = domain[0] = '\0';
			return -1;
		}
		i++;
	}
	if (i < lx.n) {
		const struct tok *t = &lx.t[i];
		*why = t->type == T_SPECIAL && t->c == ',' ? "several mailboxes"
		    : t->type == T_SPECIAL && t->c == '>'  ? "unbalanced angle brackets"
							   : "text after the address";
		local[0] = domain[0] = '\0';
		return -1;
	}
	return 0;
}

void
moat_from_field(struct moat_from *f, const char *field, size_t len)
{
	const char *colon;

	if (!moat_from_is_from(field, len))
		return;
	f->count++;
	if (f->count > 1) {
		f->local[0] = f->domain[0] = '\0';
		return;
	}
	colon = memchr(field, ':', len);
	if (from_parse_value(colon + 1, len - (size_t)(colon + 1 - field), f->local,
		sizeof(f->local), f->domain, sizeof(f->domain), &f->why) < 0)
		f->status = MOAT_FROM_BAD;
	else
		f->status = MOAT_FROM_OK;
}

enum moat_from_status
moat_from_finish(struct moat_from *f)
{
	if (f->count == 0) {
		f->status = MOAT_FROM_NONE;
		f->why = "no From field";
	} else if (f->count > 1) {
		f->status = MOAT_FROM_MULTIPLE;
		f->why = "several From fields";
		f->local[0] = f->domain[0] = '\0';
	}
	return f->status;
}
