/*
 * authres_parse.c - the authserv-id of an Authentication-Results field (see authres_parse.h).
 *
 * RFC 8601 2.2: authres-header-field = "Authentication-Results:" authserv-id [CFWS authres-version]
 * ( no-result / 1*resinfo ) CRLF, authserv-id = value (RFC 2045 token or quoted-string), with
 * CFWS allowed around it.
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "authres_parse.h"

#define COMMENT_DEPTH_MAX 8

size_t
moat_authres_field_value(const char *field, size_t len)
{
	static const char name[] = "Authentication-Results";
	size_t i = sizeof(name) - 1;

	if (len <= i || strncasecmp(field, name, i) != 0)
		return 0;
	while (i < len && (field[i] == ' ' || field[i] == '\t'))
		i++;
	return i < len && field[i] == ':' ? i + 1 : 0;
}

/* skip_cfws - whitespace, folding and comments; returns the new position or len+1 on error. */
static size_t
skip_cfws(const char *v, size_t len, size_t i)
{
	while (i < len) {
		if (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' || v[i] == '\n') {
			i++;
		} else if (v[i] == '(') {
			unsigned depth = 0;
			do {
				if (v[i] == '\\' && i + 1 < len)
					i++;
				else if (v[i] == '(' && ++depth > COMMENT_DEPTH_MAX)
					return len + 1;
				else if (v[i] == ')')
					depth--;
				i++;
			} while (depth > 0 && i < len);
			if (depth > 0)
				return len + 1;
		} else {
			break;
		}
	}
	return i;
}

/* is_token_char - RFC 2045 token characters. */
static bool
is_token_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

int
moat_authres_servid(const char *value, size_t len, char *out, size_t outlen)
{
	size_t i = skip_cfws(value, len, 0), o = 0;

	if (outlen == 0)
		return -1;
	out[0] = '\0';
	if (i >= len)
		return -1;
	if (value[i] == '"') {
		for (i++; i < len && value[i] != '"'; i++) {
			if (value[i] == '\\' && i + 1 < len)
				i++;
			if (o + 1 >= outlen)
				return -1;
			out[o++] = value[i];
		}
		if (i >= len)
			return -1;
	} else {
		/* RFC 8601 allows a domain-ish token; '@' and '/' are kept too, harmlessly */
		for (; i < len &&
		     (is_token_char((unsigned char)value[i]) || value[i] == '@' || value[i] == '/');
		     i++) {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = value[i];
		}
	}
	out[o] = '\0';
	return o > 0 ? 0 : -1;
}

bool
moat_authres_is_ours(const char *field, size_t len, const char *authserv_id)
{
	char id[512];
	size_t off = moat_authres_field_value(field, len);

	if (off == 0 || authserv_id == NULL)
		return false;
	/* An A-R field whose authserv-id cannot be read is malformed: a lenient reader downstream
	 * might still take it for ours, so it goes too. */
	if (moat_authres_servid(field + off, len - off, id, sizeof(id)) < 0)
		return true;
	/* a trailing dot names the same host */
	{
		size_t a = strlen(id), b = strlen(authserv_id);
		if (a > 0 && id[a - 1] == '.')
			a--;
		if (b > 0 && authserv_id[b - 1] == '.')
			b--;
		return a == b && strncasecmp(id, authserv_id, a) == 0;
	}
}
