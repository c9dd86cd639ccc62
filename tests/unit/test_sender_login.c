/*
 * test_sender_login.c - the sender_login_map parser and lookups: a table of files, good and bad,
 * with the exact "file:line: what" of each refusal, and which login may use which sender.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "sender_login.h"

struct parse_case {
	const char *label;
	const char *text;
	size_t logins; /* 0: refused */
	const char *err; /* the exact error when refused */
};

static const struct parse_case parse_cases[] = {
	{ "one login, one domain", "alice a.test\n", 1, NULL },
	{ "domains and addresses, blanks and commas", "alice a.test, alice@b.test\tc.test\n", 1,
	    NULL },
	{ "comments, blank lines, CRLF, no final newline",
	    "# logins\r\n\r\n   \nalice a.test\r\n  # indented comment\nbob b.test", 2, NULL },
	{ "@domain is the domain", "alice @a.test\n", 1, NULL },
	{ "utf-8 login", "j\xc3\xb6rg a.test\n", 1, NULL },
	{ "empty file", "", 0, "m:0: no login in the file" },
	{ "only comments", "# x\n\n", 0, "m:2: no login in the file" },
	{ "login alone", "alice a.test\nbob\n", 0, "m:2: a login without any domain or address" },
	{ "login with only commas", "bob , ,\n", 0, "m:1: a login without any domain or address" },
	{ "bad domain", "alice a.test\nbob b..test\n", 0,
	    "m:2: 'b..test' is neither a domain nor an address local@domain" },
	{ "two @", "alice a@b@c.test\n", 0,
	    "m:1: 'a@b@c.test' is neither a domain nor an address local@domain" },
	{ "address without domain", "alice alice@\n", 0,
	    "m:1: 'alice@' is neither a domain nor an address local@domain" },
	{ "control byte in a sender", "alice a.test\x01\n", 0,
	    "m:1: 'a.test\\x01' is neither a domain nor an address local@domain" },
	{ "NUL byte", "alice a.test\n\0\n", 0, "m:2: NUL byte" },
	{ "login twice, any case", "alice a.test\nbob b.test\nALICE c.test\n", 0,
	    "m:3: the login of line 1 appears again" },
};

Test(sender_login, parse_table)
{
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		size_t len = strlen(c->text);
		char err[256] = "";
		struct moat_sender_login_map *m;

		if (strcmp(c->label, "NUL byte") == 0)
			len = 15;
		m = moat_sender_login_map_parse(c->text, len, "m", err, sizeof(err));
		if (c->logins == 0) {
			cr_assert_null(m, "%s: parsed", c->label);
			cr_assert_str_eq(err, c->err, "%s", c->label);
		} else {
			cr_assert_not_null(m, "%s: %s", c->label, err);
			cr_assert_eq(moat_sender_login_map_count(m), c->logins, "%s", c->label);
		}
		moat_sender_login_map_free(m);
	}
}

Test(sender_login, long_line_is_refused)
{
	char text[5000], err[256] = "";

	memset(text, 'a', sizeof(text));
	memcpy(text, "alice ", 6);
	cr_assert_null(moat_sender_login_map_parse(text, sizeof(text), "m", err, sizeof(err)));
	cr_assert_str_eq(err, "m:1: line longer than 4096 bytes");
}

struct allow_case {
	const char *label;
	const char *login, *local, *domain;
	bool allowed;
};

static const struct allow_case allow_cases[] = {
	{ "alice, her domain", "alice", "alice", "a.test", true },
	{ "alice, another local part of her domain", "alice", "info", "a.test", true },
	{ "alice, case of login and domain", "Alice", "alice", "A.TEST", true },
	{ "alice, her one address elsewhere", "alice", "alice", "shared.test", true },
	{ "alice, another address there", "alice", "bob", "shared.test", false },
	{ "alice, a subdomain of hers", "alice", "alice", "sub.a.test", false },
	{ "alice, bob's domain", "alice", "bob", "b.test", false },
	{ "bob, his domain", "bob", "bob", "b.test", true },
	{ "a login not in the map", "mallory", "alice", "a.test", false },
	{ "no login", NULL, "alice", "a.test", false },
	/* no local part: is the domain one of the login's (a signature's d=)? */
	{ "d=, alice's domain", "alice", NULL, "a.test", true },
	{ "d=, the domain of alice's one address", "alice", NULL, "Shared.Test", true },
	{ "d=, a subdomain of hers", "alice", NULL, "sub.a.test", false },
	{ "d=, bob's domain for alice", "alice", NULL, "b.test", false },
	{ "d=, bob's domain", "bob", NULL, "b.test", true },
	{ "d=, a login not in the map", "mallory", NULL, "a.test", false },
};

Test(sender_login, allows_table)
{
	static const char text[] = "alice a.test alice@shared.test\nbob @b.test\n";
	char err[256] = "";
	struct moat_sender_login_map *m =
	    moat_sender_login_map_parse(text, sizeof(text) - 1, "m", err, sizeof(err));

	cr_assert_not_null(m, "%s", err);
	for (size_t i = 0; i < sizeof(allow_cases) / sizeof(allow_cases[0]); i++) {
		const struct allow_case *c = &allow_cases[i];

		cr_assert_eq(moat_sender_login_map_allows(m, c->login, c->local, c->domain),
		    c->allowed, "%s", c->label);
	}
	cr_assert_not(moat_sender_login_map_allows(NULL, "alice", "alice", "a.test"), "no map");
	moat_sender_login_map_free(m);
}

Test(sender_login, load_names_the_file)
{
	char err[256] = "";

	cr_assert_null(moat_sender_login_map_load("/nonexistent/map", err, sizeof(err)));
	cr_assert_str_eq(err, "/nonexistent/map: No such file or directory");
}
