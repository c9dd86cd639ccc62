/*
 * signtable.c - parse the DKIM signing table and choose keys by From domain (see signtable.h).
 *
 * Owns the rows and their loaded keys. Immutable after load, so any thread may look up.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signtable.h"

struct moat_signtable {
	struct moat_sign_key *rows;
	size_t n;
};

int
moat_sign_domain_valid(const char *d)
{
	size_t len = strlen(d), label = 0;

	if (len == 0 || len > 253)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)d[i];
		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-' && c != '_')
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0;
}

void
moat_signtable_free(struct moat_signtable *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->rows[i].pattern);
		free(t->rows[i].selector);
		free(t->rows[i].domain);
		moat_keyfile_clear(&t->rows[i].key);
	}
	free(t->rows);
	free(t);
}

/* signtable_lower - lowercase in place. */
static void
signtable_lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* signtable_row - parse the fields of one line into row; -1 with the reason in err. */
static int
signtable_row(char **f, size_t nf, const char *dir, uid_t owner, struct moat_sign_key *row,
    char *err, size_t errlen)
{
	enum moat_key_alg alg;
	const char *domain;
	char path[4096], kerr[512];
	int n;

	if (nf < 4 || nf > 5) {
		snprintf(err, errlen,
		    "expected PATTERN SELECTOR ALGORITHM KEYFILE [d=DOMAIN], got %zu "
		    "field%s",
		    nf, nf == 1 ? "" : "s");
		return -1;
	}
	signtable_lower(f[0]);
	signtable_lower(f[1]);
	if (strcmp(f[0], "*") != 0 &&
	    !moat_sign_domain_valid(strncmp(f[0], "*.", 2) == 0 ? f[0] + 2 : f[0])) {
		snprintf(err, errlen, "bad pattern '%s' (a domain, *.domain or *)", f[0]);
		return -1;
	}
	if (!moat_sign_domain_valid(f[1])) {
		snprintf(err, errlen, "bad selector '%s'", f[1]);
		return -1;
	}
	if (moat_key_alg_parse(f[2], &alg) < 0) {
		snprintf(err, errlen, "unknown algorithm '%s' (rsa-sha256 or ed25519-sha256)",
		    f[2]);
		return -1;
	}
	if (nf == 5) {
		if (strncasecmp(f[4], "d=", 2) != 0 || !moat_sign_domain_valid(f[4] + 2)) {
			snprintf(err, errlen, "bad signing domain '%s' (d=DOMAIN)", f[4]);
			return -1;
		}
		signtable_lower(f[4]);
		domain = f[4] + 2;
	} else if (strcmp(f[0], "*") == 0) {
		snprintf(err, errlen, "the default row '*' needs d=DOMAIN");
		return -1;
	} else {
		domain = strncmp(f[0], "*.", 2) == 0 ? f[0] + 2 : f[0];
	}
	n = f[3][0] == '/' ? snprintf(path, sizeof(path), "%s", f[3])
			   : snprintf(path, sizeof(path), "%s/%s", dir, f[3]);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		snprintf(err, errlen, "key file name too long");
		return -1;
	}
	if (moat_keyfile_load(path, alg, owner, &row->key, kerr, sizeof(kerr)) < 0) {
		snprintf(err, errlen, "%s", kerr);
		return -1;
	}
	row->pattern = strdup(f[0]);
	row->selector = strdup(f[1]);
	row->domain = strdup(domain);
	if (row->pattern == NULL || row->selector == NULL || row->domain == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

struct moat_signtable *
moat_signtable_load(const char *path, uid_t owner, char *err, size_t errlen)
{
	struct moat_signtable *t;
	char line[MOAT_SIGNTABLE_LINE_MAX + 2], dir[4096], msg[768];
	const char *slash = strrchr(path, '/');
	unsigned lineno = 0;
	FILE *fp;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path == 0 ? 1 : slash - path),
		    path);
	if ((fp = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: cannot open signing table: %s", path, strerror(errno));
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (t->rows = calloc(MOAT_SIGNTABLE_ROWS_MAX, sizeof(*t->rows))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *f[6], *p, *save = NULL;
		size_t nf = 0, len = strlen(line);

		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		else if (!feof(fp) || len > MOAT_SIGNTABLE_LINE_MAX) {
			snprintf(err, errlen, "%s:%u: line longer than %d bytes", path, lineno,
			    MOAT_SIGNTABLE_LINE_MAX);
			goto fail;
		}
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if ((p = strchr(line, '#')) != NULL)
			*p = '\0';
		for (p = strtok_r(line, " \t", &save); p != NULL;
		     p = strtok_r(NULL, " \t", &save)) {
			if (nf == 6)
				break;
			f[nf++] = p;
		}
		if (nf == 0)
			continue;
		if (t->n == MOAT_SIGNTABLE_ROWS_MAX) {
			snprintf(err, errlen, "%s:%u: more than %d rows", path, lineno,
			    MOAT_SIGNTABLE_ROWS_MAX);
			goto fail;
		}
		if (signtable_row(f, nf, dir, owner, &t->rows[t->n], msg, sizeof(msg)) < 0) {
			t->n++; /* free what the row holds */
			snprintf(err, errlen, "%s:%u: %s", path, lineno, msg);
			goto fail;
		}
		t->rows[t->n].line = lineno;
		for (size_t i = 0; i < t->n; i++) {
			const struct moat_sign_key *o = &t->rows[i];
			if (strcmp(o->pattern, t->rows[t->n].pattern) == 0 &&
			    strcmp(o->selector, t->rows[t->n].selector) == 0 &&
			    strcmp(o->domain, t->rows[t->n].domain) == 0) {
				t->n++;
				snprintf(err, errlen, "%s:%u: duplicate of line %u", path, lineno,
				    o->line);
				goto fail;
			}
		}
		t->n++;
	}
	if (ferror(fp)) {
		snprintf(err, errlen, "%s: read error", path);
		goto fail;
	}
	fclose(fp);
	return t;
fail:
	fclose(fp);
	moat_signtable_free(t);
	return NULL;
}

/* signtable_collect - rows whose pattern is exactly PAT. */
static size_t
signtable_collect(const struct moat_signtable *t, const char *pat, size_t patlen,
    const struct moat_sign_key **keys, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < t->n && n < max; i++)
		if (strlen(t->rows[i].pattern) == patlen &&
		    memcmp(t->rows[i].pattern, pat, patlen) == 0)
			keys[n++] = &t->rows[i];
	return n;
}

size_t
moat_signtable_lookup(const struct moat_signtable *t, const char *from_domain,
    const struct moat_sign_key **keys, size_t max)
{
	char pat[260];
	size_t n;
	const char *p;

	if (t == NULL || strlen(from_domain) > 253)
		return 0;
	if ((n = signtable_collect(t, from_domain, strlen(from_domain), keys, max)) > 0)
		return n;
	/* Longest "*.parent" first: walk up one label at a time. */
	for (p = strchr(from_domain, '.'); p != NULL; p = strchr(p + 1, '.')) {
		int len = snprintf(pat, sizeof(pat), "*%s", p);
		if (len > 0 && (size_t)len < sizeof(pat) &&
		    (n = signtable_collect(t, pat, (size_t)len, keys, max)) > 0)
			return n;
	}
	return signtable_collect(t, "*", 1, keys, max);
}

const struct moat_sign_key *
moat_signtable_rows(const struct moat_signtable *t, size_t *n)
{
	*n = t ? t->n : 0;
	return t ? t->rows : NULL;
}
