/*
 * authres.c - the Authentication-Results writer (RFC 8601) and its value escaping.
 *
 * Owns nothing: it writes into the caller's buffer and stops, flagging `over`, when the buffer
 * is full (a header cut short would be worse than none).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "authres.h"
#include "text.h"

/* put - append text; flags overflow. */
static int
put(struct moat_authres *ar, const char *s, size_t n)
{
	if (ar->over || n >= ar->max - ar->len) {
		ar->over = true;
		return -1;
	}
	memcpy(ar->buf + ar->len, s, n);
	ar->len += n;
	ar->buf[ar->len] = '\0';
	return 0;
}

static int
puts_(struct moat_authres *ar, const char *s)
{
	return put(ar, s, strlen(s));
}

/* is_token_char - RFC 2045 token: CHAR except SPACE, CTLs and tspecials. */
static bool
is_token_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* is_atext - RFC 5322 atext (for a local-part written bare). */
static bool
is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* bare_ok - may VALUE be written without quotes? */
static bool
bare_ok(const char *v)
{
	size_t n = strlen(v), i;
	const char *at;

	if (n == 0)
		return false;
	for (i = 0; i < n && is_token_char((unsigned char)v[i]); i++)
		;
	if (i == n)
		return true;
	/* [ local-part "@" ] domain-name, local-part a dot-atom */
	at = strrchr(v, '@');
	if (at == NULL)
		return false;
	if (!moat_ldh_name(at + 1, strlen(at + 1)))
		return false;
	if (at == v)
		return true; /* "@domain" */
	for (i = 0; v + i < at; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '.') {
			if (i == 0 || v[i - 1] == '.' || v + i + 1 == at)
				return false;
		} else if (!is_atext(c)) {
			return false;
		}
	}
	return true;
}

long
moat_authres_value(const char *value, char *out, size_t outlen)
{
	size_t o = 0, i, n = strlen(value);

	if (outlen == 0)
		return -1;
	out[0] = '\0';
	if (bare_ok(value)) {
		if (n >= outlen)
			return -1;
		memcpy(out, value, n + 1);
		return (long)n;
	}
	if (outlen < 3)
		return -1;
	out[o++] = '"';
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)value[i];
		if (o + 4 >= outlen) {
			out[0] = '\0';
			return -1;
		}
		if (c == '"' || c == '\\')
			out[o++] = '\\';
		out[o++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	out[o++] = '"';
	out[o] = '\0';
	return (long)o;
}

int
moat_authres_init(struct moat_authres *ar, char *buf, size_t max, const char *authserv_id)
{
	char v[512];

	memset(ar, 0, sizeof(*ar));
	ar->buf = buf;
	ar->max = max;
	if (max == 0)
		return -1;
	buf[0] = '\0';
	if (moat_authres_value(authserv_id ? authserv_id : "localhost", v, sizeof(v)) < 0) {
		ar->over = true;
		return -1;
	}
	return puts_(ar, v);
}

int
moat_authres_method(struct moat_authres *ar, const char *method, const char *result,
    const char *reason)
{
	char v[1024];

	if (puts_(ar, "; ") < 0 || puts_(ar, method) < 0 || puts_(ar, "=") < 0 ||
	    puts_(ar, result) < 0)
		return -1;
	ar->n++;
	if (reason != NULL && reason[0] != '\0') {
		/* reason is always a quoted-string: RFC 8601 2.2 "reasonspec". */
		size_t i, o = 0, n = strlen(reason);
		v[o++] = '"';
		for (i = 0; i < n && o + 4 < sizeof(v); i++) {
			unsigned char c = (unsigned char)reason[i];
			if (c == '"' || c == '\\')
				v[o++] = '\\';
			v[o++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
		}
		if (i < n) {
			ar->over = true;
			return -1;
		}
		v[o++] = '"';
		v[o] = '\0';
		if (puts_(ar, " reason=") < 0 || puts_(ar, v) < 0)
			return -1;
	}
	return 0;
}

int
moat_authres_prop(struct moat_authres *ar, const char *ptype, const char *property,
    const char *value)
{
	char v[1024];

	if (moat_authres_value(value, v, sizeof(v)) < 0) {
		ar->over = true;
		return -1;
	}
	if (puts_(ar, " ") < 0 || puts_(ar, ptype) < 0 || puts_(ar, ".") < 0 ||
	    puts_(ar, property) < 0 || puts_(ar, "=") < 0 || puts_(ar, v) < 0)
		return -1;
	return 0;
}

int
moat_authres_comment(struct moat_authres *ar, const char *text)
{
	char v[256];
	size_t i, o = 0, n = strlen(text);

	v[o++] = '(';
	for (i = 0; i < n && o + 3 < sizeof(v); i++) {
		unsigned char c = (unsigned char)text[i];
		/* no quoting inside: what could end or nest the comment, or fold it, is '?' */
		v[o++] = (c < 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '\\' || c == ';')
		    ? '?'
		    : (char)c;
	}
	if (i < n) {
		ar->over = true;
		return -1;
	}
	v[o++] = ')';
	v[o] = '\0';
	return puts_(ar, " ") < 0 || puts_(ar, v) < 0 ? -1 : 0;
}

int
moat_authres_finish(struct moat_authres *ar)
{
	if (ar->n == 0 && puts_(ar, "; none") < 0)
		return -1;
	return ar->over ? -1 : 0;
}
