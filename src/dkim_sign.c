/*
 * dkim_sign.c - sign outbound mail with every key the signing table gives the From domain.
 *
 * Chooses the keys, buffers the header until the From domain is known, then hands the header to
 * one signature per key and streams the body once through a shared canonicalizer and hash
 * (dkim_signature.c), so rsa-sha256 and ed25519-sha256 are made in one pass with keys decoded
 * when the table was loaded. Owns struct moat_signer (per config snapshot) and struct moat_sign
 * (per message).
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "arc_seal.h"
#include "dkim_signature.h"
#include "dkim_sign.h"
#include "keyfile.h"
#include "signtable.h"

struct moat_signer {
	EVP_MD *sha256; /* fetched once: an implicit fetch per message costs */
	struct moat_signtable *table;
	bool hrelaxed, brelaxed;
	char *signhdrs_buf, *oversign_buf;
	const char *signhdrs[MOAT_DKIM_HEADER_LIST_MAX + 2];
	const char *oversign[MOAT_DKIM_HEADER_LIST_MAX + 1];
	uint64_t ttl; /* x= lifetime in seconds; 0: none */
	bool arc_seal; /* add our ARC set (arc_seal.c) */
	char *arc_seal_domain; /* the signing table row that seals; "": the From domain's */
	char *authserv_id; /* whose Authentication-Results the ARC set copies */
	size_t header_max; /* bytes of header kept for one message */
	unsigned header_count_max;
};

enum sign_state {
	SIGN_COLLECT,
	SIGN_STREAM,
	SIGN_DONE
};

struct moat_sign {
	const struct moat_signer *signer;
	enum sign_state state;
	enum moat_sign_status status; /* once decided before the end */
	char why[256];

	/* header fields until eoh: field i is hbuf[hoff[i] .. hoff[i] + hlen[i]) */
	char *hbuf;
	size_t hused, hcap;
	size_t *hoff, *hlen;
	unsigned nhdr;
	unsigned nfrom;
	char from_domain[256];
	bool from_bad;

	struct moat__dkim_body *body; /* one body hash for every key */
	struct moat__dkim_sig *sig[MOAT_SIGN_KEYS_MAX];
	const struct moat_sign_key *keys[MOAT_SIGN_KEYS_MAX];
	size_t nkeys;

	moat_sign_domain_fn allowed; /* the d= it may use (moat_sign_restrict), or NULL: any */
	void *allowed_arg;

	struct moat_arc_seal *seal; /* arc_seal: our ARC set being made, or NULL (seal_why) */
	char seal_why[256];
};

/* ---- header lists ---- */

/* sign_split_list - split a comma list in BUF (modified) into names; returns count or -1. */
static int
sign_split_list(char *buf, const char **names, size_t max, char *err, size_t errlen)
{
	size_t n = 0;
	char *save = NULL;

	for (char *p = strtok_r(buf, ",", &save); p != NULL; p = strtok_r(NULL, ",", &save)) {
		char *end;
		while (*p == ' ' || *p == '\t')
			p++;
		end = p + strlen(p);
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (*p == '\0')
			continue;
		for (const char *c = p; *c; c++) {
			/* RFC 5322 2.2: field names are printable ASCII except ':'; '*' ends a prefix. */
			if (*c <= 32 || *c >= 127 || *c == ':' || (*c == '*' && c[1] != '\0')) {
				snprintf(err, errlen, "bad header field name '%s'", p);
				return -1;
			}
		}
		if (n == max) {
			snprintf(err, errlen, "more than %zu names", max);
			return -1;
		}
		names[n++] = p;
	}
	names[n] = NULL;
	return (int)n;
}

int
moat_conf_check_header_list(const char *value, char *err, size_t errlen)
{
	const char *names[MOAT_DKIM_HEADER_LIST_MAX + 1];
	char *copy = strdup(value);
	int rc;

	if (copy == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = sign_split_list(copy, names, MOAT_DKIM_HEADER_LIST_MAX, err, errlen);
	free(copy);
	return rc < 0 ? -1 : 0;
}

/* ---- the signer ---- */

void
moat_signer_free(struct moat_signer *signer)
{
	if (signer == NULL)
		return;
	EVP_MD_free(signer->sha256);
	moat_signtable_free(signer->table);
	free(signer->signhdrs_buf);
	free(signer->oversign_buf);
	free(signer->arc_seal_domain);
	free(signer->authserv_id);
	free(signer);
}

const struct moat_signtable *
moat_signer_table(const struct moat_signer *signer)
{
	return signer->table;
}

int
moat_signer_load(const struct moat_conf *conf, struct moat_signer **out, char *err, size_t errlen)
{
	struct moat_signer *sg;
	char msg[768];
	uid_t owner;
	int n;
	bool has_from = false;

	*out = NULL;
	if (conf->dkim_signing_table == NULL || conf->dkim_signing_table[0] == '\0')
		return 0;
	if (moat_keyfile_owner(conf->daemon_user, &owner, msg, sizeof(msg)) < 0) {
		snprintf(err, errlen, "%s: dkim_signing_table: %s", conf->source, msg);
		return -1;
	}
	if ((sg = calloc(1, sizeof(*sg))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if ((sg->table = moat_signtable_load(conf->dkim_signing_table, owner, err, errlen)) == NULL)
		goto fail;
	sg->hrelaxed = conf->dkim_sign_canonicalization == MOAT_DKIM_RELAXED_RELAXED ||
	    conf->dkim_sign_canonicalization == MOAT_DKIM_RELAXED_SIMPLE;
	sg->brelaxed = conf->dkim_sign_canonicalization == MOAT_DKIM_RELAXED_RELAXED ||
	    conf->dkim_sign_canonicalization == MOAT_DKIM_SIMPLE_RELAXED;
	sg->header_max = conf->limit_header_size;
	sg->header_count_max = conf->limit_header_count;
	sg->signhdrs_buf = strdup(conf->dkim_sign_headers);
	sg->oversign_buf = strdup(conf->dkim_oversign_headers);
	if (sg->signhdrs_buf == NULL || sg->oversign_buf == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((n = sign_split_list(sg->signhdrs_buf, sg->signhdrs, MOAT_DKIM_HEADER_LIST_MAX, msg,
		 sizeof(msg))) < 0) {
		snprintf(err, errlen, "%s: dkim_sign_headers: %s", conf->source, msg);
		goto fail;
	}
	for (int i = 0; i < n; i++)
		if (strcasecmp(sg->signhdrs[i], "from") == 0)
			has_from = true;
	if (!has_from) {
		/* RFC 6376 5.4: From MUST be signed. */
		sg->signhdrs[n++] = "From";
		sg->signhdrs[n] = NULL;
	}
	if (sign_split_list(sg->oversign_buf, sg->oversign, MOAT_DKIM_HEADER_LIST_MAX, msg,
		sizeof(msg)) < 0) {
		snprintf(err, errlen, "%s: dkim_oversign_headers: %s", conf->source, msg);
		goto fail;
	}
	if ((sg->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL) {
		snprintf(err, errlen, "OpenSSL has no SHA-256");
		goto fail;
	}
	sg->ttl = conf->dkim_sign_expire / 1000;
	sg->arc_seal = conf->arc_seal;
	if ((sg->arc_seal_domain = strdup(conf->arc_seal_domain ? conf->arc_seal_domain : "")) ==
		NULL ||
	    (sg->authserv_id = strdup(conf->authserv_id ? conf->authserv_id : "localhost")) ==
		NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	*out = sg;
	return 0;
fail:
	moat_signer_free(sg);
	return -1;
}

/* ---- From domain ---- */

int
moat_sign_from_domain(const char *value, size_t len, char *out, size_t outlen)
{
	size_t at = 0, nat = 0, start = 0, end = len, depth = 0, dlen = 0;
	bool quoted = false, angle = false, seen_angle = false;

	/* One pass: skip quoted strings and comments; find '<' '>' and '@' outside them. */
	for (size_t i = 0; i < len; i++) {
		char c = value[i];
		if (c == '\0')
			return -1;
		if (quoted) {
			if (c == '\\' && i + 1 < len)
				i++;
			else if (c == '"')
				quoted = false;
			continue;
		}
		if (depth > 0) {
			if (c == '\\' && i + 1 < len)
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		switch (c) {
		case '"':
			quoted = true;
			break;
		case '(':
			if (++depth > 16)
				return -1;
			break;
		case '<':
			if (seen_angle)
				return -1;
			seen_angle = angle = true;
			start = i + 1;
			break;
		case '>':
			if (!angle)
				return -1;
			angle = false;
			end = i;
			break;
		case ',':
			return -1; /* several mailboxes (RFC 5322 3.6.2 allows it; we do not sign) */
		case '@':
			if (!seen_angle || angle) {
				nat++;
				at = i;
			}
			break;
		default:
			break;
		}
	}
	if (quoted || depth > 0 || angle || nat != 1 || at < start || at >= end)
		return -1;
	/* The domain runs from after '@' to the end of the address, blanks trimmed. */
	{
		size_t i = at + 1;
		while (i < end &&
		    (value[i] == ' ' || value[i] == '\t' || value[i] == '\r' || value[i] == '\n'))
			i++;
		for (; i < end; i++) {
			char c = value[i];
			if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '(')
				break;
			if (dlen + 1 >= outlen)
				return -1;
			out[dlen++] = (char)tolower((unsigned char)c);
		}
		/* Only blanks or a comment (balanced, checked above) may follow the domain. */
		for (; i < end && value[i] != '('; i++)
			if (value[i] != ' ' && value[i] != '\t' && value[i] != '\r' &&
			    value[i] != '\n')
				return -1;
	}
	if (dlen > 0 && out[dlen - 1] == '.')
		dlen--;
	out[dlen] = '\0';
	return moat_sign_domain_valid(out) ? 0 : -1;
}

/* ---- one message ---- */

struct moat_sign *
moat_sign_begin(const struct moat_signer *signer)
{
	struct moat_sign *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->signer = signer;
	s->state = SIGN_COLLECT;
	s->status = MOAT_SIGN_OK;
	return s;
}

void
moat_sign_restrict(struct moat_sign *s, moat_sign_domain_fn fn, void *arg)
{
	s->allowed = fn;
	s->allowed_arg = arg;
}

/* sign_allowed - the rows among KEYS[0..n) whose d= the message may use, kept in order; how many. */
static size_t
sign_allowed(const struct moat_sign *s, const struct moat_sign_key **keys, size_t n)
{
	size_t kept = 0;

	for (size_t i = 0; i < n; i++)
		if (s->allowed == NULL || s->allowed(s->allowed_arg, keys[i]->domain))
			keys[kept++] = keys[i];
	return kept;
}

void
moat_sign_free(struct moat_sign *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nkeys; i++)
		moat__dkim_sig_free(s->sig[i]);
	moat__dkim_body_free(s->body);
	moat_arc_seal_free(s->seal);
	free(s->hbuf);
	free(s->hoff);
	free(s->hlen);
	free(s);
}

/* sign_fail - give up on this message with a reason; the first reason is kept. */
static void __attribute__((format(printf, 3, 4)))
sign_fail(struct moat_sign *s, enum moat_sign_status st, const char *fmt, ...)
{
	va_list ap;

	if (s->state == SIGN_DONE)
		return;
	s->status = st;
	s->state = SIGN_DONE;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
}

/* sign_is_from - is FIELD a From field? "From :" (RFC 5322 4.5.3 obsolete) counts too. */
static bool
sign_is_from(const char *field, size_t len, size_t *colon)
{
	size_t i = 4;

	if (len < 5 || strncasecmp(field, "from", 4) != 0)
		return false;
	while (i < len && (field[i] == ' ' || field[i] == '\t'))
		i++;
	if (i >= len || field[i] != ':')
		return false;
	*colon = i;
	return true;
}

void
moat_sign_header(struct moat_sign *s, const char *field, size_t len)
{
	size_t colon;

	if (s->state != SIGN_COLLECT)
		return;
	if (s->nhdr >= s->signer->header_count_max || len > s->signer->header_max - s->hused) {
		sign_fail(s, MOAT_SIGN_FAILED, "header too large to sign");
		return;
	}
	if (s->hused + len > s->hcap) {
		size_t cap = s->hcap ? s->hcap : 8192;
		char *nb;
		while (cap < s->hused + len)
			cap *= 2;
		if ((nb = realloc(s->hbuf, cap)) == NULL) {
			sign_fail(s, MOAT_SIGN_FAILED, "out of memory");
			return;
		}
		s->hbuf = nb;
		s->hcap = cap;
	}
	if ((s->nhdr & 63) == 0) {
		size_t *no = realloc(s->hoff, (s->nhdr + 64) * sizeof(*no));
		size_t *nl;
		if (no == NULL) {
			sign_fail(s, MOAT_SIGN_FAILED, "out of memory");
			return;
		}
		s->hoff = no;
		if ((nl = realloc(s->hlen, (s->nhdr + 64) * sizeof(*nl))) == NULL) {
			sign_fail(s, MOAT_SIGN_FAILED, "out of memory");
			return;
		}
		s->hlen = nl;
	}
	memcpy(s->hbuf + s->hused, field, len);
	s->hoff[s->nhdr] = s->hused;
	s->hlen[s->nhdr] = len;
	s->hused += len;
	s->nhdr++;
	if (sign_is_from(field, len, &colon)) {
		s->nfrom++;
		if (moat_sign_from_domain(field + colon + 1, len - colon - 1, s->from_domain,
			sizeof(s->from_domain)) < 0)
			s->from_bad = true;
	}
}

/* sign_params - what one signature with KEY needs from the signer. */
static struct moat__dkim_sig_params
sign_params(const struct moat_signer *sg, const struct moat_sign_key *key)
{
	struct moat__dkim_sig_params p = {
		.alg = key->key.alg,
		.evp = key->key.evp,
		.md = sg->sha256,
		.domain = key->domain,
		.selector = key->selector,
		.hrelaxed = sg->hrelaxed,
		.brelaxed = sg->brelaxed,
		.signhdrs = sg->signhdrs,
		.oversign = sg->oversign,
		.now = (uint64_t)time(NULL),
		.ttl = sg->ttl,
	};
	return p;
}

/* sign_seal_start - arc_seal: the first key of the sealing row starts our ARC set. */
static void
sign_seal_start(struct moat_sign *s)
{
	const struct moat_signer *sg = s->signer;
	const char *domain = sg->arc_seal_domain[0] ? sg->arc_seal_domain
	    : s->nfrom == 1 && !s->from_bad         ? s->from_domain
						    : "";
	const struct moat_sign_key *key;
	struct moat__dkim_sig_params p;

	if (domain[0] == '\0' || moat_signtable_lookup(sg->table, domain, &key, 1) == 0) {
		snprintf(s->seal_why, sizeof(s->seal_why), "no signing table row for %.200s",
		    domain[0] ? domain : "(no From domain)");
		return;
	}
	if (!sg->arc_seal_domain[0] && sign_allowed(s, &key, 1) == 0) {
		snprintf(s->seal_why, sizeof(s->seal_why),
		    "the row for %.100s signs d=%.100s, not a domain of the login", domain,
		    key->domain);
		return;
	}
	p = sign_params(sg, key);
	s->seal = moat_arc_seal_begin(&p, sg->authserv_id, s->hbuf, s->hoff, s->hlen, s->nhdr,
	    s->seal_why, sizeof(s->seal_why));
}

void
moat_sign_eoh(struct moat_sign *s)
{
	const struct moat_signer *sg = s->signer;

	if (s->state != SIGN_COLLECT)
		return;
	if (sg->arc_seal)
		sign_seal_start(s);
	if (s->nfrom != 1 || s->from_bad) {
		sign_fail(s, MOAT_SIGN_NO_FROM, "%s",
		    s->nfrom == 0      ? "no From field"
			: s->nfrom > 1 ? "several From fields"
				       : "no single address with a valid domain in From");
		return;
	}
	s->nkeys = moat_signtable_lookup(sg->table, s->from_domain, s->keys, MOAT_SIGN_KEYS_MAX);
	if (s->nkeys == 0) {
		sign_fail(s, MOAT_SIGN_NO_KEY, "no signing table row for %.200s", s->from_domain);
		return;
	}
	if ((s->nkeys = sign_allowed(s, s->keys, s->nkeys)) == 0) {
		sign_fail(s, MOAT_SIGN_NO_KEY,
		    "no signing table row for %.200s with a d= of the login's domains",
		    s->from_domain);
		return;
	}
	if ((s->body = moat__dkim_body_new(sg->brelaxed, sg->sha256)) == NULL) {
		sign_fail(s, MOAT_SIGN_FAILED, "out of memory");
		return;
	}
	for (size_t k = 0; k < s->nkeys; k++) {
		const struct moat_sign_key *key = s->keys[k];
		struct moat__dkim_sig_params p = sign_params(sg, key);
		if ((s->sig[k] = moat__dkim_sig_begin(&p)) == NULL ||
		    moat__dkim_sig_header(s->sig[k], s->hbuf, s->hoff, s->hlen, s->nhdr) < 0) {
			sign_fail(s, MOAT_SIGN_FAILED, "%s signature cannot start (s=%s d=%s)",
			    moat_key_alg_name(key->key.alg), key->selector, key->domain);
			return;
		}
	}
	free(s->hbuf);
	s->hbuf = NULL;
	s->hused = s->hcap = 0;
	s->state = SIGN_STREAM;
}

void
moat_sign_body(struct moat_sign *s, const char *chunk, size_t len)
{
	if (s->state == SIGN_STREAM && len > 0)
		moat__dkim_body_feed(s->body, chunk, len);
	if (s->seal != NULL && len > 0)
		moat_arc_seal_body(s->seal, chunk, len);
}

enum moat_sign_status
moat_sign_end(struct moat_sign *s, char **values, size_t max, size_t *n, char *why, size_t whylen)
{
	unsigned char bh[MOAT_DKIM_BH_LEN];
	size_t used = 0;

	*n = 0;
	if (s->state == SIGN_COLLECT)
		moat_sign_eoh(s);
	if (s->state == SIGN_DONE) {
		snprintf(why, whylen, "%s", s->why);
		return s->status;
	}
	s->state = SIGN_DONE;
	if (moat__dkim_body_end(s->body, bh) < 0) {
		snprintf(why, whylen, "body hash failed");
		return MOAT_SIGN_FAILED;
	}
	for (size_t k = 0; k < s->nkeys && k < max; k++) {
		if ((values[k] = moat__dkim_sig_end(s->sig[k], bh)) == NULL) {
			for (size_t j = 0; j < k; j++) {
				free(values[j]);
				values[j] = NULL;
			}
			*n = 0;
			snprintf(why, whylen, "signing with %s (s=%s d=%s) failed",
			    s->keys[k]->key.path, s->keys[k]->selector, s->keys[k]->domain);
			return MOAT_SIGN_FAILED;
		}
		*n = k + 1;
	}
	why[0] = '\0';
	for (size_t k = 0; k < *n; k++) {
		int w = snprintf(why + used, whylen > used ? whylen - used : 0, "%sd=%s s=%s a=%s",
		    k ? ", " : "", s->keys[k]->domain, s->keys[k]->selector,
		    moat_key_alg_name(s->keys[k]->key.alg));
		if (w > 0)
			used += (size_t)w;
		if (used >= whylen)
			break;
	}
	return MOAT_SIGN_OK;
}

int
moat_sign_arc(struct moat_sign *s, char *out[3], char *why, size_t whylen)
{
	int rc;

	out[0] = out[1] = out[2] = NULL;
	if (!s->signer->arc_seal)
		return 0;
	if (s->state == SIGN_COLLECT)
		moat_sign_eoh(s);
	if (s->seal == NULL) {
		snprintf(why, whylen, "%s", s->seal_why[0] ? s->seal_why : s->why);
		return 0;
	}
	rc = moat_arc_seal_end(s->seal, out, why, whylen);
	moat_arc_seal_free(s->seal);
	s->seal = NULL;
	return rc < 0 ? -1 : 1;
}

const char *
moat_sign_status_name(enum moat_sign_status st)
{
	switch (st) {
	case MOAT_SIGN_OK:
		return "signed";
	case MOAT_SIGN_NO_KEY:
		return "no_key";
	case MOAT_SIGN_NO_FROM:
		return "no_from";
	default:
		return "failed";
	}
}
