/*
 * signtable.h - which keys sign mail from which RFC5322.From domain (the OpenDKIM
 * KeyTable/SigningTable idea in one file, named by dkim_signing_table).
 *
 * One row per line, fields separated by blanks, '#' starts a comment:
 *
 *     PATTERN  SELECTOR  ALGORITHM  KEYFILE  [d=DOMAIN]
 *
 * PATTERN is a domain (exact match), "*.domain" (any subdomain of domain, not domain itself) or
 * "*" (the default). ALGORITHM is rsa-sha256 or ed25519-sha256. KEYFILE is absolute or relative
 * to the table's directory. d= is the signing domain: by default the domain itself for an exact
 * row, the parent for "*.domain", and required for "*". Several rows with the same pattern give
 * several signatures. The most specific pattern wins: exact, then the longest "*.domain", then "*".
 * Keys are loaded (and permission-checked) when the table is loaded.
 */
#ifndef MOAT_SIGNTABLE_H
#define MOAT_SIGNTABLE_H

#include <stddef.h>
#include <sys/types.h>

#include "keyfile.h"

#define MOAT_SIGNTABLE_LINE_MAX 1024
#define MOAT_SIGNTABLE_ROWS_MAX 4096
#define MOAT_SIGN_KEYS_MAX 8 /* signatures for one message */

struct moat_sign_key {
	char *pattern; /* as written, lowercased */
	char *selector;
	char *domain; /* d= */
	struct moat_key key;
	unsigned line;
};

struct moat_signtable;

/*
 * moat_signtable_load - parse PATH and load every key (owned by OWNER, see keyfile.h). NULL with
 * "PATH:LINE: what is wrong" in err.
 */
struct moat_signtable *moat_signtable_load(const char *path, uid_t owner, char *err, size_t errlen);
void moat_signtable_free(struct moat_signtable *t); /* NULL is a no-op */

/*
 * moat_signtable_lookup - the rows for FROM_DOMAIN (lowercase), at most max, into keys
 * (borrowed: valid as long as the table). Returns how many (0: no row matches).
 */
size_t moat_signtable_lookup(const struct moat_signtable *t, const char *from_domain,
    const struct moat_sign_key **keys, size_t max);

/* moat_signtable_rows - every row, for tools (mxmoat-keygen --check). */
const struct moat_sign_key *moat_signtable_rows(const struct moat_signtable *t, size_t *n);

/* moat_sign_domain_valid - LDH labels separated by dots, 1-253 bytes, no empty label. */
int moat_sign_domain_valid(const char *d);

#endif /* MOAT_SIGNTABLE_H */
