/*
 * dkim_verify.c - DKIM verification on libopendkim (see dkim_verify.h).
 *
 * Owns one DKIM_LIB per verifier and one DKIM handle per message. Our own bounded tag parser
 * looks at each DKIM-Signature field first: a field that is too large, malformed, or whose d= or
 * s= is not an LDH name never reaches libopendkim and is reported as permerror. Past
 * max_signatures, libopendkim is told to ignore the rest (prescreen callback), so at most that
 * many keys are fetched and checked. RFC 8301: rsa-sha1 and RSA keys under 1024 bits are fail.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <opendkim/dkim.h>

#include "dkim_verify.h"
#include "dns_dkim.h"

#define DEFAULT_MAX_SIGS 5

struct moat_dkim_verifier {
	DKIM_LIB *lib;
	struct moat_dkim_opts opts;
};

struct moat_dkim_msg {
	struct moat_dkim_verifier *v;
	DKIM *d;
	DKIM_STAT st;                 /* first error from libopendkim, DKIM_STAT_OK otherwise */
	bool eoh_done;
	bool skip_body;               /* nothing to verify */
	size_t nrefused;              /* DKIM-Signature fields we kept from libopendkim */
	struct moat_dkim_sig refused[MOAT_DKIM_SIGS_MAX];
	size_t nfields;               /* DKIM-Signature fields seen */
	char err[80];                 /* libopendkim's reason when it refused the message */
};

/* note_error - keep libopendkim's reason for a refused message (printable bytes only). */
static void note_error(struct moat_dkim_msg *m)
{
	const char *e = dkim_geterror(m->d);
	size_t i;

	snprintf(m->err, sizeof(m->err), "%s", e != NULL && e[0] ? e : dkim_getresultstr(m->st));
	for (i = 0; m->err[i]; i++)
		if ((unsigned char)m->err[i] < 0x20 || (unsigned char)m->err[i] >= 0x7f)
			m->err[i] = '?';
}

/* prescreen - evaluate the first max_signatures signatures only (top-down). */
static DKIM_CBSTAT prescreen(DKIM *d, DKIM_SIGINFO **sigs, int nsigs)
{
	const struct moat_dkim_verifier *v = dkim_get_user_context(d);
	int i;

	for (i = 0; v != NULL && i < nsigs; i++)
		if ((unsigned)i >= v->opts.max_signatures)
			dkim_sig_ignore(sigs[i]);
	return DKIM_CBSTAT_CONTINUE;
}

struct moat_dkim_verifier *moat_dkim_verifier_new(struct moat_dns *dns,
    const struct moat_dkim_opts *opts)
{
	struct moat_dkim_verifier *v = calloc(1, sizeof(*v));
	unsigned int flags = DKIM_LIBFLAGS_STRICTHDRS | DKIM_LIBFLAGS_BADSIGHANDLES;
	unsigned int minbits = MOAT_DKIM_MIN_RSA_BITS;

	if (v == NULL)
		return NULL;
	if (opts != NULL)
		v->opts = *opts;
	if (v->opts.max_signatures == 0)
		v->opts.max_signatures = DEFAULT_MAX_SIGS;
	if (v->opts.max_signatures > MOAT_DKIM_SIGS_MAX)
		v->opts.max_signatures = MOAT_DKIM_SIGS_MAX;
	v->lib = dkim_init(NULL, NULL);
	if (v->lib == NULL)
		goto fail;
	if (dkim_options(v->lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags)) != DKIM_STAT_OK ||
	    dkim_options(v->lib, DKIM_OP_SETOPT, DKIM_OPTS_MINKEYBITS, &minbits, sizeof(minbits)) != DKIM_STAT_OK ||
	    dkim_set_prescreen(v->lib, prescreen) != DKIM_STAT_OK ||
	    moat_dns_dkim_attach(v->lib, dns) != 0)
		goto fail;
	if (v->opts.fixed_time != 0) {
		uint64_t t = (uint64_t)v->opts.fixed_time;
		if (dkim_options(v->lib, DKIM_OP_SETOPT, DKIM_OPTS_FIXEDTIME, &t, sizeof(t)) != DKIM_STAT_OK)
			goto fail;
	}
	return v;
fail:
	moat_dkim_verifier_free(v);
	return NULL;
}

void moat_dkim_verifier_free(struct moat_dkim_verifier *v)
{
	if (v == NULL)
		return;
	if (v->lib != NULL)
		dkim_close(v->lib);
	free(v);
}

struct moat_dkim_msg *moat_dkim_msg_new(struct moat_dkim_verifier *v)
{
	struct moat_dkim_msg *m = calloc(1, sizeof(*m));
	DKIM_STAT st = DKIM_STAT_OK;

	if (m == NULL)
		return NULL;
	m->v = v;
	m->d = dkim_verify(v->lib, (const unsigned char *)"mxmoat", NULL, &st);
	if (m->d == NULL) {
		free(m);
		return NULL;
	}
	dkim_set_user_context(m->d, v);
	return m;
}

void moat_dkim_msg_free(struct moat_dkim_msg *m)
{
	if (m == NULL)
		return;
	if (m->d != NULL)
		dkim_free(m->d);
	free(m);
}

/* is_ldh_name - letters, digits, '-', '_' in dot-separated non-empty labels of at most 63. */
static bool is_ldh_name(const char *s, size_t n)
{
	size_t i, label = 0;

	if (n == 0 || n > 253)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0;
}

/* copy_value - tag value without folding whitespace, into out; false if it does not fit. */
static bool copy_value(const char *s, const char *e, char *out, size_t outlen, bool truncate)
{
	size_t o = 0;

	for (; s < e; s++) {
		if (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
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

int moat_dkim_sig_tags(const char *value, size_t len, struct moat_dkim_sig *out)
{
	const char *p = value, *end = value + len;
	unsigned seen = 0;    /* bit per tag letter a..z: duplicates make the list invalid */
	bool have_d = false, have_s = false;

	memset(out, 0, sizeof(*out));
	out->body_signed = -1;
	out->body_total = -1;
	if (memchr(value, '\0', len) != NULL)
		return -1;
	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *te = semi ? semi : end, *ns = p, *ne, *vs, *ve, *eq;
		size_t i;

		p = semi ? semi + 1 : end;
		while (ns < te && (*ns == ' ' || *ns == '\t' || *ns == '\r' || *ns == '\n'))
			ns++;
		if (ns == te) {
			if (semi == NULL)
				break;        /* a trailing ';' (RFC 6376 3.2) */
			return -1;
		}
		eq = memchr(ns, '=', (size_t)(te - ns));
		if (eq == NULL)
			return -1;
		ne = eq;
		while (ne > ns && (ne[-1] == ' ' || ne[-1] == '\t' || ne[-1] == '\r' || ne[-1] == '\n'))
			ne--;
		/* tag-name = ALPHA *ALNUMPUNC */
		if (!isalpha((unsigned char)*ns))
			return -1;
		for (i = 1; ns + i < ne; i++)
			if (!isalnum((unsigned char)ns[i]) && ns[i] != '_')
				return -1;
		vs = eq + 1;
		ve = te;
		while (vs < ve && (*vs == ' ' || *vs == '\t' || *vs == '\r' || *vs == '\n'))
			vs++;
		while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r' || ve[-1] == '\n'))
			ve--;
		for (i = 0; vs + i < ve; i++) {
			unsigned char c = (unsigned char)vs[i];
			/* tval chars %x21-3A / %x3C-7E, separated by FWS */
			if (!(c >= 0x21 && c <= 0x7e) && c != ' ' && c != '\t' && c != '\r' && c != '\n')
				return -1;
		}
		if (ne - ns == 1 && islower((unsigned char)*ns)) {
			unsigned bit = 1u << (*ns - 'a');
			if (seen & bit)
				return -1;
			seen |= bit;
		}
		if (ne - ns != 1)
			continue;
		/* d= and s= are names: no whitespace inside (RFC 6376 3.5 domain-name, selector) */
		if ((*ns == 'd' || *ns == 's') && (memchr(vs, ' ', (size_t)(ve - vs)) ||
		    memchr(vs, '\t', (size_t)(ve - vs)) || memchr(vs, '\n', (size_t)(ve - vs))))
			return -1;
		switch (*ns) {
		case 'd':
			if (!copy_value(vs, ve, out->domain, sizeof(out->domain), false) ||
			    !is_ldh_name(out->domain, strlen(out->domain)))
				return -1;
			for (i = 0; out->domain[i]; i++)
				out->domain[i] = (char)tolower((unsigned char)out->domain[i]);
			have_d = true;
			break;
		case 's':
			if (!copy_value(vs, ve, out->selector, sizeof(out->selector), false) ||
			    !is_ldh_name(out->selector, strlen(out->selector)))
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
	if (!have_d || !have_s)
		return -1;
	return 0;
}

/* is_dkim_signature - "DKIM-Signature" [WSP] ":" ? Returns the offset of the value, or 0. */
static size_t dkim_sig_value_off(const char *field, size_t len)
{
	static const char name[] = "DKIM-Signature";
	size_t i = sizeof(name) - 1;

	if (len <= i || strncasecmp(field, name, i) != 0)
		return 0;
	while (i < len && (field[i] == ' ' || field[i] == '\t'))
		i++;
	return i < len && field[i] == ':' ? i + 1 : 0;
}

void moat_dkim_header(struct moat_dkim_msg *m, const char *field, size_t len)
{
	size_t off;

	if (m->eoh_done)
		return;
	/* DKIM-Signature fields are counted even after libopendkim refused the message, so the
	 * report says "permerror", not "none" */
	off = dkim_sig_value_off(field, len);
	if (off > 0) {
		struct moat_dkim_sig tags;
		const char *why = NULL;

		memset(&tags, 0, sizeof(tags));
		m->nfields++;
		if (len > MOAT_DKIM_SIG_FIELD_MAX)
			why = "DKIM-Signature field too large";
		else if (moat_dkim_sig_tags(field + off, len - off, &tags) < 0)
			why = "malformed DKIM-Signature tag list";
		if (why != NULL) {
			if (m->nrefused < MOAT_DKIM_SIGS_MAX) {
				struct moat_dkim_sig *r = &m->refused[m->nrefused++];
				if (len <= MOAT_DKIM_SIG_FIELD_MAX)
					*r = tags;       /* what could be parsed, for the report */
				else
					memset(r, 0, sizeof(*r));
				r->result = MOAT_DKIM_PERMERROR;
				snprintf(r->reason, sizeof(r->reason), "%s", why);
				/* only bytes that are safe to report */
				if (!is_ldh_name(r->domain, strlen(r->domain)))
					r->domain[0] = '\0';
				if (!is_ldh_name(r->selector, strlen(r->selector)))
					r->selector[0] = '\0';
			}
			return;
		}
	}
	if (m->st != DKIM_STAT_OK)
		return;
	m->st = dkim_header(m->d, (u_char *)field, len);
	if (m->st != DKIM_STAT_OK)
		note_error(m);
}

void moat_dkim_eoh(struct moat_dkim_msg *m)
{
	if (m->eoh_done)
		return;
	m->eoh_done = true;
	if (m->st != DKIM_STAT_OK) {
		m->skip_body = true;
		return;
	}
	m->st = dkim_eoh(m->d);
	if (m->st != DKIM_STAT_OK) {
		if (m->st != DKIM_STAT_NOSIG)
			note_error(m);
		m->skip_body = true;
	}
}

void moat_dkim_body(struct moat_dkim_msg *m, const char *chunk, size_t len)
{
	DKIM_STAT st;

	if (!m->eoh_done)
		moat_dkim_eoh(m);
	if (m->skip_body || len == 0)
		return;
	st = dkim_body(m->d, (u_char *)chunk, len);
	if (st != DKIM_STAT_OK) {
		m->st = st;
		m->skip_body = true;
	}
}

/* sig_from_lib - one libopendkim signature as our result. */
static void sig_from_lib(const struct moat_dkim_msg *m, DKIM_SIGINFO *sig, struct moat_dkim_sig *o)
{
	unsigned flags = dkim_sig_getflags(sig);
	int err = dkim_sig_geterror(sig);
	int bh = dkim_sig_getbh(sig);
	dkim_alg_t alg = DKIM_SIGN_UNKNOWN;
	unsigned int bits = 0;
	unsigned char *t;
	ssize_t msglen = -1, canonlen = -1, signlen = -1;

	memset(o, 0, sizeof(*o));
	o->body_signed = -1;
	o->body_total = -1;
	/* A name that does not fit is left out, never reported cut short. */
	if ((t = dkim_sig_getdomain(sig)) != NULL && strlen((char *)t) < sizeof(o->domain) &&
	    is_ldh_name((char *)t, strlen((char *)t)))
		memcpy(o->domain, t, strlen((char *)t) + 1);
	if ((t = dkim_sig_getselector(sig)) != NULL && strlen((char *)t) < sizeof(o->selector) &&
	    is_ldh_name((char *)t, strlen((char *)t)))
		memcpy(o->selector, t, strlen((char *)t) + 1);
	for (size_t i = 0; o->domain[i]; i++)
		o->domain[i] = (char)tolower((unsigned char)o->domain[i]);
	if ((t = dkim_sig_gettagvalue(sig, false, (u_char *)"b")) != NULL)
		copy_value((char *)t, (char *)t + strlen((char *)t), o->b, 9, true);
	dkim_sig_getsignalg(sig, &alg);
	snprintf(o->alg, sizeof(o->alg), "%s", alg == DKIM_SIGN_RSASHA256 ? "rsa-sha256" :
	    alg == DKIM_SIGN_ED25519SHA256 ? "ed25519-sha256" : alg == DKIM_SIGN_RSASHA1 ? "rsa-sha1" : "");
	if (dkim_sig_getkeysize(sig, &bits) == DKIM_STAT_OK)
		o->key_bits = bits;
	if (dkim_sig_getcanonlen(m->d, sig, &msglen, &canonlen, &signlen) == DKIM_STAT_OK) {
		o->body_signed = signlen;
		o->body_total = msglen;
	}

	if (flags & DKIM_SIGFLAG_IGNORE) {
		o->result = MOAT_DKIM_POLICY;
		snprintf(o->reason, sizeof(o->reason), "not evaluated: more than %u signatures",
		    m->v->opts.max_signatures);
		return;
	}
	if ((flags & DKIM_SIGFLAG_PASSED) && bh == DKIM_SIGBH_MATCH) {
		if (alg == DKIM_SIGN_RSASHA1) {
			o->result = MOAT_DKIM_FAIL;
			snprintf(o->reason, sizeof(o->reason), "rsa-sha1 is not accepted (RFC 8301)");
		} else if (alg != DKIM_SIGN_ED25519SHA256 && bits < MOAT_DKIM_MIN_RSA_BITS) {
			o->result = MOAT_DKIM_FAIL;
			snprintf(o->reason, sizeof(o->reason), "RSA key of %u bits (RFC 8301)", bits);
		} else if (signlen >= 0 && msglen > signlen && !m->v->opts.body_length_pass) {
			o->result = MOAT_DKIM_POLICY;
			snprintf(o->reason, sizeof(o->reason), "l=%zd signs %zd of %zd body bytes",
			    signlen, signlen, msglen);
		} else {
			o->result = MOAT_DKIM_PASS;
		}
		return;
	}
	switch (err) {
	case DKIM_SIGERROR_KEYFAIL:
		o->result = MOAT_DKIM_TEMPERROR;
		break;
	case DKIM_SIGERROR_BADSIG:
	case DKIM_SIGERROR_EXPIRED:
	case DKIM_SIGERROR_FUTURE:
	case DKIM_SIGERROR_TIMESTAMPS:
	case DKIM_SIGERROR_KEYTOOSMALL:
	case DKIM_SIGERROR_SUBDOMAIN:
	case DKIM_SIGERROR_KEYHASHMISMATCH:
	case DKIM_SIGERROR_KEYREVOKED:
	case DKIM_SIGERROR_TOOLARGE_L:
		o->result = MOAT_DKIM_FAIL;
		break;
	case DKIM_SIGERROR_OK:
	case DKIM_SIGERROR_UNKNOWN:
		o->result = (flags & DKIM_SIGFLAG_PROCESSED) || bh == DKIM_SIGBH_MISMATCH ?
		    MOAT_DKIM_FAIL : MOAT_DKIM_NEUTRAL;
		break;
	default:
		o->result = MOAT_DKIM_PERMERROR;
		break;
	}
	if (bh == DKIM_SIGBH_MISMATCH && (err == DKIM_SIGERROR_OK || err == DKIM_SIGERROR_BADSIG))
		snprintf(o->reason, sizeof(o->reason), "body hash did not verify");
	else if (err != DKIM_SIGERROR_OK)
		snprintf(o->reason, sizeof(o->reason), "%s", dkim_sig_geterrorstr(err));
	else
		snprintf(o->reason, sizeof(o->reason), "signature did not verify");
}

size_t moat_dkim_eom(struct moat_dkim_msg *m, struct moat_dkim_sig *sigs, size_t max)
{
	DKIM_SIGINFO **list = NULL;
	int nsigs = 0, i;
	size_t n = 0, k;

	if (!m->eoh_done)
		moat_dkim_eoh(m);
	if (m->st == DKIM_STAT_OK)
		(void)dkim_eom(m->d, NULL);
	if ((m->st == DKIM_STAT_OK || m->st == DKIM_STAT_NOSIG) &&
	    dkim_getsiglist(m->d, &list, &nsigs) == DKIM_STAT_OK) {
		for (i = 0; i < nsigs && n < max; i++)
			sig_from_lib(m, list[i], &sigs[n++]);
	} else if (m->st != DKIM_STAT_OK && m->st != DKIM_STAT_NOSIG && n < max &&
	    m->nfields > m->nrefused) {
		/* libopendkim refused the message itself (e.g. a strict header check) */
		memset(&sigs[n], 0, sizeof(sigs[n]));
		sigs[n].result = MOAT_DKIM_PERMERROR;
		sigs[n].body_signed = sigs[n].body_total = -1;
		snprintf(sigs[n].reason, sizeof(sigs[n].reason), "%s", m->err);
		n++;
	}
	for (k = 0; k < m->nrefused && n < max; k++)
		sigs[n++] = m->refused[k];
	return n;
}

const char *moat_dkim_result_name(enum moat_dkim_res r)
{
	switch (r) {
	case MOAT_DKIM_PASS: return "pass";
	case MOAT_DKIM_FAIL: return "fail";
	case MOAT_DKIM_NEUTRAL: return "neutral";
	case MOAT_DKIM_POLICY: return "policy";
	case MOAT_DKIM_TEMPERROR: return "temperror";
	case MOAT_DKIM_PERMERROR: return "permerror";
	default: return "none";
	}
}
