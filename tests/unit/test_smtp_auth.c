/*
 * test_smtp_auth.c - the proxy's side of a relayed AUTH exchange (proxy/smtp_auth.c): mechanisms,
 * base64 checks, the login name learnt from PLAIN and LOGIN, the exact lines for the backend,
 * cancel.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "smtp_auth.h"
#include "upstream.h"

struct start_case {
	const char *label;
	const char *arg;
	enum px_auth_rc want;
	const char *line; /* for the backend, when SEND */
	const char *login; /* learnt from the initial response */
};

/* base64 of "\0alice\0pw", "admin\0alice\0pw", "\0\0pw", "\0alice\0", "alice" */
static const struct start_case start_cases[] = {
	{ "PLAIN with initial response", "PLAIN AGFsaWNlAHB3", PX_AUTH_SEND,
	    "AUTH PLAIN AGFsaWNlAHB3\r\n", "alice" },
	{ "plain in lower case", "plain AGFsaWNlAHB3", PX_AUTH_SEND, "AUTH PLAIN AGFsaWNlAHB3\r\n",
	    "alice" },
	{ "PLAIN: authzid wins", "PLAIN YWRtaW4AYWxpY2UAcHc=", PX_AUTH_SEND,
	    "AUTH PLAIN YWRtaW4AYWxpY2UAcHc=\r\n", "admin" },
	{ "PLAIN without initial response", "PLAIN", PX_AUTH_SEND, "AUTH PLAIN\r\n", "" },
	{ "LOGIN with the user name", "LOGIN YWxpY2U=", PX_AUTH_SEND, "AUTH LOGIN YWxpY2U=\r\n",
	    "alice" },
	{ "LOGIN alone", "LOGIN", PX_AUTH_SEND, "AUTH LOGIN\r\n", "" },
	{ "unknown mechanism", "CRAM-MD5", PX_AUTH_BAD_MECH, NULL, NULL },
	{ "no mechanism", "", PX_AUTH_SYNTAX, NULL, NULL },
	{ "PLAIN: empty login", "PLAIN AABwdw==", PX_AUTH_SYNTAX, NULL, NULL },
	{ "PLAIN: empty password", "PLAIN AGFsaWNlAA==", PX_AUTH_SYNTAX, NULL, NULL },
	{ "PLAIN: one field only", "PLAIN YWxpY2U=", PX_AUTH_SYNTAX, NULL, NULL },
	{ "not base64", "PLAIN a!b=", PX_AUTH_SYNTAX, NULL, NULL },
	{ "bad padding", "PLAIN AG=x", PX_AUTH_SYNTAX, NULL, NULL },
	{ "two arguments", "PLAIN AGFsaWNlAHB3 x", PX_AUTH_SYNTAX, NULL, NULL },
	{ "trailing blank", "PLAIN ", PX_AUTH_SYNTAX, NULL, NULL },
};

Test(smtp_auth, start)
{
	for (size_t i = 0; i < sizeof(start_cases) / sizeof(start_cases[0]); i++) {
		const struct start_case *c = &start_cases[i];
		struct px_auth *a = NULL;
		enum px_auth_rc rc = px_auth_start(c->arg, &a);

		cr_expect_eq(rc, c->want, "%s: rc %d", c->label, (int)rc);
		if (rc != PX_AUTH_SEND) {
			cr_expect_null(a, "%s: no exchange", c->label);
			continue;
		}
		size_t n;
		const char *l = px_auth_line(a, &n);
		cr_expect(n == strlen(c->line) && memcmp(l, c->line, n) == 0, "%s: line", c->label);
		cr_expect_str_eq(px_auth_login(a), c->login, "%s: login", c->label);
		px_auth_sent(a);
		px_auth_line(a, &n);
		cr_expect_eq(n, 0, "%s: line wiped once sent", c->label);
		px_auth_free(a);
	}
}

Test(smtp_auth, login_exchange)
{
	struct px_auth *a = NULL;
	size_t n;
	const char *l;

	cr_assert_eq(px_auth_start("LOGIN", &a), PX_AUTH_SEND);
	cr_expect_str_eq(px_auth_mech(a), "LOGIN");
	px_auth_sent(a);
	cr_assert_eq(px_auth_response(a, "YWxpY2U=", 8), PX_AUTH_SEND); /* "alice" */
	cr_expect_str_eq(px_auth_login(a), "alice");
	l = px_auth_line(a, &n);
	cr_expect(n == 10 && memcmp(l, "YWxpY2U=\r\n", 10) == 0);
	px_auth_sent(a);
	/* the password is relayed as it is, never decoded into the login */
	cr_assert_eq(px_auth_response(a, "cHc=", 4), PX_AUTH_SEND);
	l = px_auth_line(a, &n);
	cr_expect(n == 6 && memcmp(l, "cHc=\r\n", 6) == 0);
	cr_expect_str_eq(px_auth_login(a), "alice");
	px_auth_free(a);
}

Test(smtp_auth, cancel_and_garbage)
{
	struct px_auth *a = NULL;
	size_t n;
	const char *l;
	char longline[PX_AUTH_LINE_MAX + 8];

	cr_assert_eq(px_auth_start("PLAIN", &a), PX_AUTH_SEND);
	px_auth_sent(a);
	cr_expect_eq(px_auth_response(a, "*", 1), PX_AUTH_SEND);
	l = px_auth_line(a, &n);
	cr_expect(n == 3 && memcmp(l, "*\r\n", 3) == 0, "'*' cancels (RFC 4954 4)");
	cr_expect_eq(px_auth_response(a, "not base64!", 11), PX_AUTH_SEND);
	l = px_auth_line(a, &n);
	cr_expect(n == 3 && memcmp(l, "*\r\n", 3) == 0, "an unreadable answer cancels too");
	cr_expect_str_eq(px_auth_login(a), "");
	px_auth_free(a);
	px_auth_free(NULL);
	/* a LOGIN password is relayed undecoded: past the line limit it is refused */
	cr_assert_eq(px_auth_start("LOGIN YWxpY2U=", &a), PX_AUTH_SEND);
	memset(longline, 'A', sizeof(longline));
	cr_expect_eq(px_auth_response(a, longline, sizeof(longline)), PX_AUTH_TOOLONG);
	px_auth_free(a);
}
