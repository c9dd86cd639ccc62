/*
 * test_signtable.c - the signing table: which rows a From domain gets (exact, longest *.domain,
 * then *), the signing domain each row implies, and row errors with file:line.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfile.h"
#include "signtable.h"
#include "sign_keys.h"

static char dir[] = "/tmp/moat-signtable.XXXXXX";
static uid_t owner;

static void
setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	owner = geteuid();
	write_key(dir, "r.key", "RSA", 2048);
	write_key(dir, "e.key", "ED25519", 0);
	write_key(dir, "weak.key", "RSA", 1024);
}

static void
teardown(void)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(signtable, .init = setup, .fini = teardown);

static struct moat_signtable *
load(const char *text, char *err, size_t errlen)
{
	char path[512];
	write_file(dir, "table", text);
	snprintf(path, sizeof(path), "%s/table", dir);
	return moat_signtable_load(path, owner, err, errlen);
}

Test(signtable, lookup_precedence)
{
	static const struct {
		const char *label, *from, *want; /* want: "selector/d, ..." */
	} cases[] = {
		{ "exact, two keys", "example.com", "rs/example.com,ed/example.com" },
		{ "one level below", "a.example.com", "wild/example.com" },
		{ "longest wildcard wins", "x.sub.example.com", "deep/sub.example.com" },
		{ "wildcard does not match itself", "sub.example.com", "wild/example.com" },
		{ "default row", "other.org", "def/default.test" },
		{ "explicit d=", "third.test", "t/signer.test" },
	};
	char err[512];
	struct moat_signtable *t = load("# the table\n"
					"example.com rs rsa-sha256 r.key\n"
					"example.com ed ed25519-sha256 e.key   # both algorithms\n"
					"*.example.com wild rsa-sha256 r.key\n"
					"*.sub.example.com deep ed25519-sha256 e.key\n"
					"third.test t rsa-sha256 r.key d=signer.test\n"
					"* def ed25519-sha256 e.key d=default.test\n",
	    err, sizeof(err));

	cr_assert_not_null(t, "%s", err);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct moat_sign_key *keys[MOAT_SIGN_KEYS_MAX];
		size_t n = moat_signtable_lookup(t, cases[i].from, keys, MOAT_SIGN_KEYS_MAX);
		char got[256] = "";
		for (size_t k = 0; k < n; k++) {
			size_t l = strlen(got);
			snprintf(got + l, sizeof(got) - l, "%s%s/%s", k ? "," : "",
			    keys[k]->selector, keys[k]->domain);
		}
		cr_expect_str_eq(got, cases[i].want, "%s", cases[i].label);
	}
	moat_signtable_free(t);
}

Test(signtable, no_default_no_row)
{
	char err[512];
	const struct moat_sign_key *keys[MOAT_SIGN_KEYS_MAX];
	struct moat_signtable *t = load("example.com rs rsa-sha256 r.key\n", err, sizeof(err));

	cr_assert_not_null(t, "%s", err);
	cr_expect_eq(moat_signtable_lookup(t, "example.org", keys, MOAT_SIGN_KEYS_MAX), 0);
	cr_expect_eq(moat_signtable_lookup(t, "a.example.com", keys, MOAT_SIGN_KEYS_MAX), 0);
	moat_signtable_free(t);
}

Test(signtable, errors_with_line)
{
	static const struct {
		const char *label, *text, *want; /* want: suffix after "DIR/table:" */
	} cases[] = {
		{ "algorithm", "\n# x\nexample.com s rsa-sha1 r.key\n",
		    "3: unknown algorithm 'rsa-sha1' (rsa-sha256 or ed25519-sha256)" },
		{ "fields", "example.com s\n",
		    "1: expected PATTERN SELECTOR ALGORITHM KEYFILE [d=DOMAIN], got 2 fields" },
		{ "too many", "a.test s rsa-sha256 r.key d=a.test extra\n",
		    "1: expected PATTERN SELECTOR ALGORITHM KEYFILE [d=DOMAIN], got 6 fields" },
		{ "pattern", "a_.test.. s rsa-sha256 r.key\n",
		    "1: bad pattern 'a_.test..' (a domain, *.domain or *)" },
		{ "default needs d", "* s rsa-sha256 r.key\n",
		    "1: the default row '*' needs d=DOMAIN" },
		{ "bad d", "a.test s rsa-sha256 r.key d=\n",
		    "1: bad signing domain 'd=' (d=DOMAIN)" },
		{ "duplicate", "a.test s rsa-sha256 r.key\nA.test S rsa-sha256 r.key\n",
		    "2: duplicate of line 1" },
		{ "weak key", "a.test s rsa-sha256 weak.key\n",
		    "1: %s/weak.key: RSA key of 1024 bits refused (2048 to 8192 bits; RFC 8301)" },
		{ "wrong type", "a.test s rsa-sha256 e.key\n",
		    "1: %s/e.key: the signing table says rsa-sha256 but this is not an RSA key" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[768], want[1024], tail[600];
		struct moat_signtable *t = load(cases[i].text, err, sizeof(err));
		cr_expect_null(t, "%s", cases[i].label);
		moat_signtable_free(t);
		/* "%s" in want stands for the directory */
		{
			const char *m = strstr(cases[i].want, "%s");
			if (m != NULL)
				snprintf(tail, sizeof(tail), "%.*s%s%s", (int)(m - cases[i].want),
				    cases[i].want, dir, m + 2);
			else
				snprintf(tail, sizeof(tail), "%s", cases[i].want);
		}
		snprintf(want, sizeof(want), "%s/table:%s", dir, tail);
		cr_expect_str_eq(err, want, "%s", cases[i].label);
	}
}

Test(signtable, long_line)
{
	char text[2100], err[512];
	memset(text, 'a', sizeof(text) - 2);
	text[sizeof(text) - 2] = '\n';
	text[sizeof(text) - 1] = '\0';
	cr_expect_null(load(text, err, sizeof(err)));
	cr_expect(strstr(err, "table:1: line longer than 1024 bytes") != NULL, "%s", err);
}

Test(signtable, key_permissions)
{
	char path[600], err[512];
	struct moat_key key;

	snprintf(path, sizeof(path), "%s/r.key", dir);
	cr_assert_eq(moat_keyfile_load(path, MOAT_KEY_RSA_SHA256, owner, &key, err, sizeof(err)), 0,
	    "%s", err);
	cr_expect_eq(key.bits, 2048);
	moat_keyfile_clear(&key);
	chmod(path, 0640);
	cr_expect_eq(moat_keyfile_load(path, MOAT_KEY_RSA_SHA256, owner, &key, err, sizeof(err)),
	    -1);
	cr_expect(strstr(err, "r.key: key file is readable or writable by its group (mode 0640)") !=
		NULL,
	    "%s", err);
	chmod(path, 0600);
	cr_expect_eq(moat_keyfile_load(path, MOAT_KEY_RSA_SHA256, owner + 1, &key, err,
			 sizeof(err)),
	    -1);
	cr_expect(strstr(err, "key file is owned by uid") != NULL, "%s", err);
}
