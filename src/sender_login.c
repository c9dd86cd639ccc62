/*
 * sender_login.c - the sender_login_map file (see sender_login.h): parsed into one block of
 * NUL-terminated, lower-cased strings and a table of logins sorted for binary search, each with
 * the range of its senders. Owns struct moat_sender_login_map.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "sender_login.h"
#include "text.h"

#define SL_LOGIN_MAX 255
#define SL_LOCAL_MAX 64 /* RFC 5321 4.5.3.1.1 */
#define SL_DOMAIN_MAX 253

struct sl_login {
	size_t login; /* offsets into text */
	size_t first, n; /* the login's senders: sender[first .. first + n) */
	unsigned line;
};

struct moat_sender_login_map {
	char *text; /* every string, NUL-terminated, lower case */
	size_t *sender; /* offsets into text */
	struct sl_login *logins; /* sorted by login */
	size_t nlogins;
};

/* sl_word_ok - printable ASCII or UTF-8 bytes, no blank, comma, '#' or control. */
static bool
sl_word_ok(const char *w, size_t n, size_t max)
{
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)w[i];
		if (c < 0x21 || c == 0x7f || c == ',' || c == '#')
			return false;
	}
	return true;
}

/* sl_sender_ok - a domain (LDH) or an address local@domain; "@domain" is the domain. */
static bool
sl_sender_ok(const char *w, size_t n)
{
	const char *at = memchr(w, '@', n);
	size_t ll, dl;

	if (at == NULL)
		return n <= SL_DOMAIN_MAX && moat_ldh_name(w, n);
	ll = (size_t)(at - w);
	dl = n - ll - 1;
	if (memchr(at + 1, '@', dl) != NULL)
		return false;
	return (ll == 0 || sl_word_ok(w, ll, SL_LOCAL_MAX)) && dl > 0 && dl <= SL_DOMAIN_MAX &&
	    moat_ldh_name(at + 1, dl);
}

static int
sl_cmp(const void *a, const void *b, void *text)
{
	return strcmp((const char *)text + ((const struct sl_login *)a)->login,
	    (const char *)text + ((const struct sl_login *)b)->login);
}

/* sl_append - a lower-cased copy of W (N bytes, "@" of "@domain" dropped) at the end of the
 * text block; its offset. */
static size_t
sl_append(char *text, size_t *used, const char *w, size_t n)
{
	size_t at = *used;

	if (n > 0 && w[0] == '@') {
		w++;
		n--;
	}
	for (size_t i = 0; i < n; i++)
		text[at + i] = (char)tolower((unsigned char)w[i]);
	text[at + n] = '\0';
	*used += n + 1;
	return at;
}

void
moat_sender_login_map_free(struct moat_sender_login_map *m)
{
	if (m == NULL)
		return;
	free(m->text);
	free(m->sender);
	free(m->logins);
	free(m);
}

/* sl_fail - "NAME:LINE: what" into err; NULL. */
static struct moat_sender_login_map *
sl_fail(struct moat_sender_login_map *m, char *err, size_t errlen, const char *name, unsigned line,
    const char *what)
{
	snprintf(err, errlen, "%s:%u: %s", name, line, what);
	moat_sender_login_map_free(m);
	return NULL;
}

struct moat_sender_login_map *
moat_sender_login_map_parse(const char *text, size_t len, const char *name, char *err,
    size_t errlen)
{
	struct moat_sender_login_map *m = calloc(1, sizeof(*m));
	size_t used = 0, nsenders = 0, pos = 0;
	unsigned line = 0;
	char what[160];

	if (len > MOAT_SENDER_LOGIN_FILE_MAX)
		return sl_fail(m, err, errlen, name, 0, "file larger than 16 MB");
	/* every word fits in len + 1 bytes of text, every sender and login in len / 2 + 1 slots */
	if (m == NULL || (m->text = malloc(len + 1)) == NULL ||
	    (m->sender = calloc(len / 2 + 1, sizeof(*m->sender))) == NULL ||
	    (m->logins = calloc(len / 2 + 1, sizeof(*m->logins))) == NULL)
		return sl_fail(m, err, errlen, name, 0, "out of memory");
	while (pos < len) {
		const char *p = text + pos, *nl = memchr(p, '\n', len - pos);
		size_t ll = nl != NULL ? (size_t)(nl - p) : len - pos, i = 0, words = 0;
		struct sl_login *lg = &m->logins[m->nlogins];

		pos += ll + (nl != NULL);
		line++;
		if (ll > 0 && p[ll - 1] == '\r')
			ll--;
		if (ll > MOAT_SENDER_LOGIN_LINE_MAX)
			return sl_fail(m, err, errlen, name, line, "line longer than 4096 bytes");
		if (memchr(p, '\0', ll) != NULL)
			return sl_fail(m, err, errlen, name, line, "NUL byte");
		while (i < ll && (p[i] == ' ' || p[i] == '\t'))
			i++;
		if (i == ll || p[i] == '#')
			continue;
		while (i < ll) {
			size_t w = i;

			while (i < ll && p[i] != ' ' && p[i] != '\t' && p[i] != ',')
				i++;
			if (words == 0 && !sl_word_ok(p + w, i - w, SL_LOGIN_MAX))
				return sl_fail(m, err, errlen, name, line,
				    "the login has bytes a login cannot have, or is longer than 255 bytes");
			if (words > 0 && i > w && !sl_sender_ok(p + w, i - w)) {
				char esc[80];

				snprintf(what, sizeof(what),
				    "'%s' is neither a domain nor an address local@domain",
				    moat_log_escape(p + w, i - w > 60 ? 60 : i - w, esc,
					sizeof(esc)));
				return sl_fail(m, err, errlen, name, line, what);
			}
			if (i > w) {
				if (words == 0)
					lg->login = sl_append(m->text, &used, p + w, i - w);
				else
					m->sender[nsenders++] =
					    sl_append(m->text, &used, p + w, i - w);
				words++;
			}
			while (i < ll && (p[i] == ' ' || p[i] == '\t' || p[i] == ','))
				i++;
		}
		if (words < 2)
			return sl_fail(m, err, errlen, name, line,
			    "a login without any domain or address");
		lg->first = nsenders - (words - 1);
		lg->n = words - 1;
		lg->line = line;
		m->nlogins++;
	}
	if (m->nlogins == 0)
		return sl_fail(m, err, errlen, name, line, "no login in the file");
	qsort_r(m->logins, m->nlogins, sizeof(*m->logins), sl_cmp, m->text);
	for (size_t k = 1; k < m->nlogins; k++)
		if (strcmp(m->text + m->logins[k].login, m->text + m->logins[k - 1].login) == 0) {
			unsigned a = m->logins[k].line, b = m->logins[k - 1].line;

			snprintf(what, sizeof(what), "the login of line %u appears again",
			    a < b ? a : b);
			return sl_fail(m, err, errlen, name, a > b ? a : b, what);
		}
	return m;
}

struct moat_sender_login_map *
moat_sender_login_map_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;
	struct moat_sender_login_map *m;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if ((buf = malloc(MOAT_SENDER_LOGIN_FILE_MAX + 1)) == NULL) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	n = fread(buf, 1, MOAT_SENDER_LOGIN_FILE_MAX + 1, f);
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		m = NULL;
	} else {
		m = moat_sender_login_map_parse(buf, n, path, err, errlen);
	}
	fclose(f);
	free(buf);
	return m;
}

size_t
moat_sender_login_map_count(const struct moat_sender_login_map *m)
{
	return m != NULL ? m->nlogins : 0;
}

/* sl_find - the login's entry, or NULL. */
static const struct sl_login *
sl_find(const struct moat_sender_login_map *m, const char *login)
{
	size_t lo = 0, hi = m->nlogins;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcasecmp(login, m->text + m->logins[mid].login);

		if (c == 0)
			return &m->logins[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

bool
moat_sender_login_map_allows(const struct moat_sender_login_map *m, const char *login,
    const char *local, const char *domain)
{
	const struct sl_login *lg;
	size_t ll = local != NULL ? strlen(local) : 0;

	if (m == NULL || login == NULL || (lg = sl_find(m, login)) == NULL)
		return false;
	for (size_t i = 0; i < lg->n; i++) {
		const char *s = m->text + m->sender[lg->first + i], *at = strchr(s, '@');

		if (at == NULL ? strcasecmp(s, domain) == 0
			       : (local == NULL ||
				     ((size_t)(at - s) == ll && strncasecmp(s, local, ll) == 0)) &&
			    strcasecmp(at + 1, domain) == 0)
			return true;
	}
	return false;
}
