/*
 * smtp_parse.c - command lines, MAIL/RCPT paths and ESMTP parameters, strictly (RFC 5321 4.1.2).
 * Owns nothing; every function works on the caller's bytes and checks every bound before use.
 */
#include "config.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "smtp_parse.h"

/* px_parse_line - one command line; limits checked on partial input (OpenSMTPD io_datalen). */
enum px_line
px_parse_line(const char *buf, size_t len, size_t max, bool normalize, size_t *linelen,
    size_t *used)
{
	size_t i;

	*linelen = 0;
	*used = 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c == '\r') {
			if (i + 1 >= len) {
				if (i + 2 > max)
					return PX_LINE_TOOLONG;
				return PX_LINE_NEED; /* the LF may be in the next read */
			}
			if (buf[i + 1] == '\n') {
				*linelen = i;
				*used = i + 2;
				return PX_LINE_OK;
			}
			/* bare CR: RFC 5321 2.3.8 */
			if (normalize) {
				*linelen = i;
				*used = i + 1;
				return PX_LINE_OK;
			}
			*used = px_parse_skip(buf, len, &(bool){ false });
			return PX_LINE_BARE;
		}
		if (c == '\n') {
			*linelen = i;
			*used = i + 1;
			return normalize ? PX_LINE_OK : PX_LINE_BARE;
		}
		if (c == '\0') {
			*used = px_parse_skip(buf, len, &(bool){ false });
			return PX_LINE_NUL;
		}
		if (i + 3 > max) /* this octet plus CRLF would not fit */
			return PX_LINE_TOOLONG;
	}
	if (len + 2 > max)
		return PX_LINE_TOOLONG;
	return PX_LINE_NEED;
}

/* px_parse_skip - bytes up to and including the next LF. */
size_t
px_parse_skip(const char *buf, size_t len, bool *found)
{
	const char *lf = memchr(buf, '\n', len);

	*found = lf != NULL;
	return lf ? (size_t)(lf - buf) + 1 : 0;
}

/* path_char - octets allowed inside <...>: printable ASCII but no space, '<', '>'; UTF-8 octets. */
static bool
path_char(unsigned char c)
{
	if (c >= 0x80)
		return true;
	return c > 0x20 && c < 0x7f && c != '<' && c != '>';
}

/* param_syntax - RFC 5321 4.1.2 esmtp-param: keyword [ "=" value ]; returns count or -1. */
static int
param_syntax(const char *p)
{
	int n = 0;

	while (*p != '\0') {
		const char *k = p;

		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			(*p >= '0' && *p <= '9')))
			return -1;
		while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-')
			p++;
		if (p - k > 64)
			return -1;
		if (*p == '=') {
			const char *v = ++p;

			while ((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f && *p != '=')
				p++;
			if (p == v)
				return -1;
		}
		if (++n > PX_PARAMS_MAX)
			return -1;
		if (*p == '\0')
			break;
		if (*p != ' ')
			return -1;
		p++;
		if (*p == '\0' || *p == ' ')
			return -1; /* trailing or doubled space */
	}
	return n;
}

/* px_parse_path - "FROM:<path> params" / "TO:<path> params". */
enum px_path_err
px_parse_path(const char *arg, const char *keyword, bool null_ok, char *path, size_t pathlen,
    const char **params, unsigned *nparams)
{
	size_t kl = strlen(keyword);
	const char *p, *start;
	size_t n;
	int np;

	path[0] = '\0';
	*params = "";
	*nparams = 0;
	if (strncasecmp(arg, keyword, kl) != 0)
		return PX_PATH_SYNTAX;
	p = arg + kl;
	while (*p == ' ') /* common, though RFC 5321 has no space here */
		p++;
	if (*p != '<')
		return PX_PATH_SYNTAX;
	start = ++p;
	while (*p != '>' && *p != '\0') {
		if (!path_char((unsigned char)*p))
			return PX_PATH_SYNTAX;
		p++;
	}
	if (*p != '>')
		return PX_PATH_SYNTAX;
	n = (size_t)(p - start);
	if (n > PX_PATH_MAX || n + 1 > pathlen)
		return PX_PATH_TOOLONG;
	if (n == 0 && !null_ok)
		return PX_PATH_NULL;
	/* RFC 5321 4.5.1: <Postmaster> (any case) is the one path without a domain */
	if (n > 0 && memchr(start, '@', n) == NULL &&
	    !(n == 10 && strncasecmp(start, "postmaster", 10) == 0))
		return PX_PATH_SYNTAX;
	memcpy(path, start, n);
	path[n] = '\0';
	p++;
	if (*p == '\0')
		return PX_PATH_OK;
	if (*p != ' ')
		return PX_PATH_SYNTAX;
	while (*p == ' ')
		p++;
	if (*p == '\0')
		return PX_PATH_OK;
	if ((np = param_syntax(p)) < 0)
		return PX_PATH_PARAM;
	*params = p;
	*nparams = (unsigned)np;
	return PX_PATH_OK;
}

/* px_param_find - look up one parameter by name. */
bool
px_param_find(const char *params, const char *name, const char **value, size_t *vlen)
{
	size_t nl = strlen(name);
	const char *p = params;

	while (*p != '\0') {
		const char *end = strchr(p, ' ');
		size_t tl = end ? (size_t)(end - p) : strlen(p);

		if (tl >= nl && strncasecmp(p, name, nl) == 0 && (tl == nl || p[nl] == '=')) {
			*value = tl == nl ? p + tl : p + nl + 1;
			*vlen = tl == nl ? 0 : tl - nl - 1;
			return true;
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	return false;
}

/* xtext_valid - RFC 3461 4: xchar (33..126 but "+" and "=") or "+" and two upper-case hex digits. */
static bool
xtext_valid(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '+') {
			if (i + 2 >= n)
				return false;
			for (size_t k = 1; k <= 2; k++)
				if (!isdigit((unsigned char)p[i + k]) &&
				    !(p[i + k] >= 'A' && p[i + k] <= 'F'))
					return false;
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return false;
		}
	}
	return n > 0;
}

/* notify_valid - NEVER, or SUCCESS, FAILURE and DELAY in any order, each once (RFC 3461 4.1). */
static bool
notify_valid(const char *p, size_t n)
{
	static const char *const words[] = { "SUCCESS", "FAILURE", "DELAY" };
	unsigned seen = 0;

	if (n == 5 && strncasecmp(p, "NEVER", 5) == 0)
		return true;
	while (n > 0) {
		size_t wl = 0, w;

		while (wl < n && p[wl] != ',')
			wl++;
		for (w = 0; w < 3; w++)
			if (wl == strlen(words[w]) && strncasecmp(p, words[w], wl) == 0)
				break;
		if (w == 3 || (seen & (1u << w)))
			return false;
		seen |= 1u << w;
		if (wl == n)
			return true;
		p += wl + 1; /* a trailing comma leaves an empty word: refused above */
		n -= wl + 1;
		if (n == 0)
			return false;
	}
	return false;
}

/* orcpt_valid - addr-type ";" xtext (RFC 3461 4.2); addr-type an atom, e.g. rfc822 or utf-8. */
static bool
orcpt_valid(const char *p, size_t n)
{
	size_t t = 0;

	while (t < n && (isalnum((unsigned char)p[t]) || p[t] == '-'))
		t++;
	return t > 0 && t < n && p[t] == ';' && xtext_valid(p + t + 1, n - t - 1);
}

int
px_dsn_param(const char *tok, size_t len, bool rcpt)
{
	const char *eq = memchr(tok, '=', len);
	size_t nl = eq != NULL ? (size_t)(eq - tok) : len;
	const char *v = eq != NULL ? eq + 1 : tok + len;
	size_t vl = eq != NULL ? len - nl - 1 : 0;

#define DSN_IS(name) (nl == sizeof(name) - 1 && strncasecmp(tok, name, nl) == 0)
	if (!rcpt && DSN_IS("RET"))
		return eq != NULL &&
			((vl == 4 && strncasecmp(v, "FULL", 4) == 0) ||
			    (vl == 4 && strncasecmp(v, "HDRS", 4) == 0))
		    ? PX_DSN_RET
		    : -1;
	if (!rcpt && DSN_IS("ENVID"))
		return eq != NULL && vl <= 100 && xtext_valid(v, vl) ? PX_DSN_ENVID : -1;
	if (rcpt && DSN_IS("NOTIFY"))
		return eq != NULL && notify_valid(v, vl) ? PX_DSN_NOTIFY : -1;
	if (rcpt && DSN_IS("ORCPT"))
		return eq != NULL && vl <= 500 && orcpt_valid(v, vl) ? PX_DSN_ORCPT : -1;
#undef DSN_IS
	return 0;
}

/* px_verb - split a command line into its verb and argument. */
bool
px_verb(const char *line, size_t len, char out[9], const char **arg)
{
	size_t i;

	for (i = 0; i < len && line[i] != ' '; i++) {
		char c = line[i];

		if (i >= 8 || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			return false;
		out[i] = (char)(c >= 'a' ? c - 32 : c);
	}
	out[i] = '\0';
	if (i == 0)
		return false;
	*arg = i < len ? line + i + 1 : line + len;
	return true;
}
