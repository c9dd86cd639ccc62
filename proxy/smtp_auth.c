/*
 * smtp_auth.c - the client's side of a relayed SMTP AUTH exchange (see smtp_auth.h): mechanism
 * and base64 checks, the login name from PLAIN's authorization or authentication identity or
 * LOGIN's first answer, and the line for the backend. Owns struct px_auth; everything it held is
 * wiped when it is freed.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "smtp_auth.h"
#include "text.h"

enum auth_mech {
	MECH_PLAIN = 0,
	MECH_LOGIN
};

struct px_auth {
	enum auth_mech mech;
	unsigned answers; /* client answers relayed after the AUTH command */
	char login[PX_AUTH_LOGIN_MAX + 1];
	char line[PX_AUTH_LINE_MAX]; /* next line for the backend (credentials: wiped) */
	size_t line_len;
};

static const char *const mech_names[] = { "PLAIN", "LOGIN" };

/* auth_b64_valid - RFC 4648 base64 with padding only at the end; "=" alone is an empty answer
 * (RFC 4954 4). */
static bool
auth_b64_valid(const char *p, size_t n)
{
	return (n == 1 && p[0] == '=') || (n > 0 && moat_base64_valid(p, n));
}

/* auth_set_login - keep NAME (len bytes) as the login if it is printable text; -1 if not. */
static int
auth_set_login(struct px_auth *a, const unsigned char *name, size_t len)
{
	if (len == 0 || len > PX_AUTH_LOGIN_MAX)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (name[i] < 0x21 || name[i] == 0x7f) /* UTF-8 bytes >= 0x80 pass */
			return -1;
	memcpy(a->login, name, len);
	a->login[len] = '\0';
	return 0;
}

/* auth_learn - the login from one base64 answer: PLAIN's identities (RFC 4616 2), LOGIN's
 * first answer. The decoded bytes, password included, are wiped before returning. -1: syntax. */
static int
auth_learn(struct px_auth *a, const char *b64, size_t n)
{
	unsigned char *dec;
	size_t len;
	long dl;
	int rc = 0;

	if (!auth_b64_valid(b64, n))
		return -1;
	if (a->mech == MECH_LOGIN && a->answers > 0)
		return 0; /* the password: relayed, never decoded */
	if ((dec = calloc(1, n / 4 * 3 + 3)) == NULL)
		return -1;
	dl = n == 1 ? 0 : moat_base64_decode(b64, n, dec, n / 4 * 3); /* "=": empty */
	len = dl > 0 ? (size_t)dl : 0;
	if (a->mech == MECH_LOGIN) {
		rc = auth_set_login(a, dec, len);
	} else {
		/* authzid NUL authcid NUL passwd: the authorization identity if given, else authcid */
		const unsigned char *z1 = memchr(dec, 0, len), *z2;
		if (z1 == NULL || (z2 = memchr(z1 + 1, 0, len - (size_t)(z1 + 1 - dec))) == NULL ||
		    z2 + 1 == dec + len)
			rc = -1;
		else if (z1 > dec)
			rc = auth_set_login(a, dec, (size_t)(z1 - dec));
		else
			rc = auth_set_login(a, z1 + 1, (size_t)(z2 - z1 - 1));
	}
	OPENSSL_cleanse(dec, n / 4 * 3 + 3);
	free(dec);
	return rc;
}

/* auth_put - the line for the backend: the pieces, then CRLF. */
static enum px_auth_rc
auth_put(struct px_auth *a, const char *p1, const char *p2, size_t n2)
{
	size_t n1 = strlen(p1);

	if (n1 + n2 + 2 > sizeof(a->line))
		return PX_AUTH_TOOLONG;
	memcpy(a->line, p1, n1);
	memcpy(a->line + n1, p2, n2);
	memcpy(a->line + n1 + n2, "\r\n", 2);
	a->line_len = n1 + n2 + 2;
	return PX_AUTH_SEND;
}

enum px_auth_rc
px_auth_start(const char *arg, struct px_auth **out)
{
	const char *sp = strchr(arg, ' '), *ir = NULL;
	size_t ml = sp ? (size_t)(sp - arg) : strlen(arg), irl = 0;
	struct px_auth *a;
	enum px_auth_rc rc;
	int mech = -1;

	*out = NULL;
	for (size_t i = 0; i < sizeof(mech_names) / sizeof(mech_names[0]); i++)
		if (ml == strlen(mech_names[i]) && strncasecmp(arg, mech_names[i], ml) == 0)
			mech = (int)i;
	if (mech < 0)
		return ml == 0 ? PX_AUTH_SYNTAX : PX_AUTH_BAD_MECH;
	if (sp != NULL) {
		ir = sp + 1;
		irl = strlen(ir);
		if (irl == 0 || strchr(ir, ' ') != NULL)
			return PX_AUTH_SYNTAX;
	}
	if (irl + 16 > PX_AUTH_LINE_MAX)
		return PX_AUTH_TOOLONG;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return PX_AUTH_NOMEM;
	a->mech = (enum auth_mech)mech;
	if (ir != NULL && auth_learn(a, ir, irl) < 0) {
		px_auth_free(a);
		return PX_AUTH_SYNTAX;
	}
	if (ir != NULL)
		a->answers = 1;
	rc = ir != NULL
	    ? auth_put(a, a->mech == MECH_PLAIN ? "AUTH PLAIN " : "AUTH LOGIN ", ir, irl)
	    : auth_put(a, a->mech == MECH_PLAIN ? "AUTH PLAIN" : "AUTH LOGIN", "", 0);
	if (rc != PX_AUTH_SEND) {
		px_auth_free(a);
		return rc;
	}
	*out = a;
	return PX_AUTH_SEND;
}

enum px_auth_rc
px_auth_response(struct px_auth *a, const char *line, size_t len)
{
	enum px_auth_rc rc;

	/* RFC 4954 4: "*" cancels; an answer we cannot read is cancelled the same way, and the
	 * backend's 501 goes back to the client. */
	if ((len == 1 && line[0] == '*') || auth_learn(a, line, len) < 0)
		return auth_put(a, "*", "", 0);
	rc = auth_put(a, "", line, len);
	a->answers++;
	return rc;
}

const char *
px_auth_line(const struct px_auth *a, size_t *len)
{
	*len = a->line_len;
	return a->line;
}

void
px_auth_sent(struct px_auth *a)
{
	OPENSSL_cleanse(a->line, a->line_len);
	a->line_len = 0;
}

const char *
px_auth_mech(const struct px_auth *a)
{
	return mech_names[a->mech];
}

const char *
px_auth_login(const struct px_auth *a)
{
	return a->login;
}

void
px_auth_free(struct px_auth *a)
{
	if (a == NULL)
		return;
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
}
