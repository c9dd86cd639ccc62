/*
 * test_policy.c - the transaction model: every core limit with its exact reply, trust rules,
 * concurrent sessions, reload semantics and the summary line.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "ratelimit.h"
#include "sesscount.h"
#include "trust.h"

static struct moat_policy *
make_policy(const struct moat_conf_override *ov, size_t nov)
{
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf *conf = moat_conf_load(NULL, ov, nov, err, sizeof(err));
	struct moat_policy *pol;

	cr_assert_not_null(conf, "%s", err);
	pol = moat_policy_new(conf, 0, err, sizeof(err));
	cr_assert_not_null(pol, "%s", err);
	moat_conf_unref(conf);
	return pol;
}

static struct moat_session *
connect_from(struct moat_policy *pol, const char *addr, struct moat_verdict *v)
{
	struct moat_client c = { .addr = addr,
		.port = 40000,
		.name = "client.example",
		.listener = "127.0.0.1:10025" };
	struct moat_session *s = moat_session_new(pol, &c);

	cr_assert_not_null(s);
	cr_assert_eq(moat_session_connect(s, v), MOAT_EVENT_DONE);
	return s;
}

/* expect - the verdict's action, code and enhanced status, and close flag. */
static void
expect(const struct moat_verdict *v, enum moat_action action, unsigned code, const char *status,
    bool close, const char *what)
{
	cr_assert_eq(v->action, action, "%s: action %s", what, moat_action_name(v->action));
	cr_assert_eq(v->code, code, "%s: code %u", what, v->code);
	cr_assert_str_eq(v->status, status, "%s", what);
	cr_assert_eq(v->close, close, "%s: close", what);
}

static struct moat_session *
start_txn(struct moat_policy *pol, unsigned nrcpt)
{
	struct moat_verdict v;
	struct moat_session *s = connect_from(pol, "192.0.2.1", &v);

	moat_session_helo(s, "client.example", true, &v);
	moat_session_mail(s, "a@example.org", NULL, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "mail");
	for (unsigned i = 0; i < nrcpt; i++) {
		moat_session_rcpt(s, "b@example.net", NULL, &v);
		expect(&v, MOAT_CONTINUE, 0, "", false, "rcpt");
	}
	return s;
}

Test(policy, recipients_limit_is_452_4_5_3)
{
	struct moat_conf_override ov[] = { { "limit_recipients", "3" } };
	struct moat_policy *pol = make_policy(ov, 1);
	struct moat_session *s = start_txn(pol, 3);
	struct moat_verdict v;

	moat_session_rcpt(s, "d@example.net", NULL, &v);
	expect(&v, MOAT_TEMPFAIL, 452, "4.5.3", false, "4th rcpt");
	cr_assert_str_eq(v.text, "Too many recipients");
	cr_assert_str_eq(v.reason, "limit_recipients");
	moat_session_data(s, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "data with 3 rcpts");
	moat_session_free(s);
	moat_policy_free(pol);
}

Test(policy, declared_size_over_limit_is_552_5_3_4)
{
	struct moat_conf_override ov[] = { { "limit_message_size", "1k" } };
	struct moat_policy *pol = make_policy(ov, 1);
	struct moat_verdict v;
	struct moat_session *s = connect_from(pol, "192.0.2.1", &v);

	moat_session_mail(s, "a@example.org", "BODY=8BITMIME SIZE=1025", &v);
	expect(&v, MOAT_REJECT, 552, "5.3.4", false, "SIZE=1025");
	moat_session_mail(s, "a@example.org", "SIZE=1024", &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "SIZE=1024");
	moat_session_mail(s, "a@example.org", "SIZE=12x", &v);
	expect(&v, MOAT_REJECT, 501, "5.5.4", false, "SIZE=12x");
	moat_session_mail(s, "a@example.org", "SIZE=99999999999999999999999", &v);
	expect(&v, MOAT_REJECT, 501, "5.5.4", false, "SIZE overflow");
	/* 20 digits is a size-value (RFC 1870): past 2^64 it is too big, not malformed or wrapped */
	moat_session_mail(s, "a@example.org", "SIZE=18446744073709551617", &v);
	expect(&v, MOAT_REJECT, 552, "5.3.4", false, "SIZE 2^64 + 1");
	moat_session_mail(s, "a@example.org", "SIZE=00000000000000001024", &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "SIZE 1024 in 20 digits");
	moat_session_free(s);
	moat_policy_free(pol);
}

Test(policy, size_value_never_wraps)
{
	static const struct {
		const char *label, *in;
		int rc;
		uint64_t v;
	} cases[] = {
		{ "zero", "0", 0, 0 },
		{ "UINT64_MAX", "18446744073709551615", 0, UINT64_MAX },
		{ "UINT64_MAX + 1 saturates", "18446744073709551616", 0, UINT64_MAX },
		{ "2^64 + 1 saturates", "18446744073709551617", 0, UINT64_MAX },
		{ "20 nines saturate", "99999999999999999999", 0, UINT64_MAX },
		{ "leading zeros", "00000000000000000007", 0, 7 },
		{ "21 digits", "000000000000000000007", -1, 0 },
		{ "empty", "", -1, 0 },
		{ "sign", "+1", -1, 0 },
		{ "letter", "1k", -1, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 42;

		cr_assert_eq(moat_size_value(cases[i].in, strlen(cases[i].in), &v), cases[i].rc,
		    "%s", cases[i].label);
		if (cases[i].rc == 0)
			cr_assert_eq(v, cases[i].v, "%s: %llu", cases[i].label,
			    (unsigned long long)v);
	}
}

Test(policy, streamed_size_over_limit_is_sticky_552)
{
	struct moat_conf_override ov[] = { { "limit_message_size", "1k" } };
	struct moat_policy *pol = make_policy(ov, 1);
	struct moat_session *s = start_txn(pol, 1);
	char body[600];
	struct moat_verdict v;

	memset(body, 'a', sizeof(body));
	moat_session_header(s, "Subject: hi", 11, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "header");
	moat_session_eoh(s, &v);
	moat_session_body(s, body, sizeof(body), &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "615 bytes");
	moat_session_body(s, body, sizeof(body), &v);
	expect(&v, MOAT_REJECT, 552, "5.3.4", false, "1215 bytes");
	moat_session_body(s, body, 1, &v);
	expect(&v, MOAT_REJECT, 552, "5.3.4", false, "still rejected");
	moat_session_eom(s, &v);
	expect(&v, MOAT_REJECT, 552, "5.3.4", false, "eom repeats it");
	/* The next transaction starts clean. */
	moat_session_mail(s, "a@example.org", NULL, &v);
	moat_session_rcpt(s, "b@example.net", NULL, &v);
	moat_session_body(s, body, 10, &v);
	moat_session_eom(s, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "next message");
	moat_session_free(s);
	moat_policy_free(pol);
}

Test(policy, header_count_and_size_limits)
{
	struct moat_conf_override ov[] = { { "limit_header_count", "16" },
		{ "limit_header_size", "1k" } };
	struct moat_policy *pol = make_policy(ov, 2);
	struct moat_session *s = start_txn(pol, 1);
	char big[1100];
	struct moat_verdict v;

	for (int i = 0; i < 16; i++) {
		moat_session_header(s, "X-A: b", 6, &v);
		expect(&v, MOAT_CONTINUE, 0, "", false, "header within count");
	}
	moat_session_header(s, "X-A: b", 6, &v);
	expect(&v, MOAT_REJECT, 552, "5.3.4", false, "17th header");
	cr_assert_str_eq(v.reason, "limit_header_count");
	moat_session_abort(s);

	moat_session_mail(s, "a@example.org", NULL, &v);
	moat_session_rcpt(s, "b@example.net", NULL, &v);
	memcpy(big, "X-Big: ", 7);
	memset(big + 7, 'x', sizeof(big) - 7);
	moat_session_header(s, big, sizeof(big), &v);
	expect(&v, MOAT_REJECT, 552, "5.3.4", false, "header section over 1k");
	cr_assert_str_eq(v.reason, "limit_header_size");
	moat_session_free(s);
	moat_policy_free(pol);
}

/* A front-end that could not keep a message or a field within a limit reports it; the core
 * answers with the limit's refusal, sticky like its own. */
Test(policy, too_large_in_the_front_end_is_the_limits_refusal)
{
	static const struct {
		const char *label;
		enum moat_too_large what;
		const char *reason, *text;
	} cases[] = {
		{ "held message", MOAT_TOO_LARGE_MESSAGE, "limit_message_size",
		    "Message size exceeds fixed maximum message size" },
		{ "assembled field", MOAT_TOO_LARGE_HEADER, "limit_header_size",
		    "Message header section too large" },
	};
	struct moat_policy *pol = make_policy(NULL, 0);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct moat_session *s = start_txn(pol, 1);
		struct moat_verdict v;

		moat_session_too_large(s, cases[i].what, &v);
		expect(&v, MOAT_REJECT, 552, "5.3.4", false, cases[i].label);
		cr_assert_str_eq(v.reason, cases[i].reason, "%s", cases[i].label);
		cr_assert_str_eq(v.text, cases[i].text, "%s", cases[i].label);
		moat_session_body(s, "a", 1, &v);
		cr_assert_str_eq(v.reason, cases[i].reason, "%s: sticky", cases[i].label);
		moat_session_eom(s, &v);
		expect(&v, MOAT_REJECT, 552, "5.3.4", false, cases[i].label);
		cr_assert_str_eq(v.reason, cases[i].reason, "%s: at eom", cases[i].label);
		moat_session_free(s);
	}
	moat_policy_free(pol);
}

Test(policy, messages_per_session_limit_closes)
{
	struct moat_conf_override ov[] = { { "limit_messages_per_session", "2" } };
	struct moat_policy *pol = make_policy(ov, 1);
	struct moat_session *s = start_txn(pol, 1);
	struct moat_verdict v;

	cr_assert_not(moat_session_spent(s), "in the 1st transaction");
	moat_session_eom(s, &v);
	cr_assert_not(moat_session_spent(s), "one message of two");
	moat_session_mail(s, "a@example.org", NULL, &v);
	moat_session_rcpt(s, "b@example.net", NULL, &v);
	cr_assert_not(moat_session_spent(s), "in the 2nd transaction");
	moat_session_eom(s, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "2nd message");
	cr_assert(moat_session_spent(s), "two of two: the front-end may end the session");
	moat_session_mail(s, "a@example.org", NULL, &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "3rd MAIL");
	moat_session_free(s);
	moat_policy_free(pol);
}

Test(policy, error_and_junk_limits_close)
{
	struct moat_conf_override ov[] = { { "limit_errors", "3" },
		{ "limit_junk_commands", "2" } };
	struct moat_policy *pol = make_policy(ov, 2);
	struct moat_verdict v;
	struct moat_session *s = connect_from(pol, "192.0.2.1", &v);

	moat_session_error(s, false, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "1st error");
	moat_session_error(s, false, &v);
	moat_session_error(s, false, &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "3rd error");
	cr_assert_str_eq(v.reason, "limit_errors");
	moat_session_free(s);

	s = connect_from(pol, "192.0.2.1", &v);
	moat_session_error(s, true, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "1st junk");
	moat_session_error(s, true, &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "2nd junk");
	cr_assert_str_eq(v.reason, "limit_junk_commands");
	moat_session_free(s);
	moat_policy_free(pol);
}

/* Junk commands (NOOP, RSET, VRFY, HELP) are counted whatever they answer, a successful
 * transaction between them resets nothing, and they are not errors: with the default limit of
 * 100 the 100th of 300 is the first refused, and limit_errors is never the reason. */
Test(policy, junk_commands_421_at_the_limit_across_transactions)
{
	struct moat_policy *pol = make_policy(NULL, 0);
	struct moat_verdict v;
	struct moat_session *s = start_txn(pol, 1);
	unsigned first = 0;

	for (unsigned i = 1; i <= 300 && first == 0; i++) {
		if (i == 50) {
			moat_session_data(s, &v);
			expect(&v, MOAT_CONTINUE, 0, "", false, "DATA between junk commands");
			moat_session_abort(s);
			moat_session_mail(s, "a@example.org", NULL, &v);
			expect(&v, MOAT_CONTINUE, 0, "", false, "MAIL between junk commands");
		}
		moat_session_junk(s, &v);
		if (v.action != MOAT_CONTINUE)
			first = i;
	}
	cr_assert_eq(first, 100, "first refused junk command: %u", first);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "100th junk command");
	cr_assert_str_eq(v.reason, "limit_junk_commands");
	moat_session_free(s);

	/* unknown commands count towards both limits; junk towards one */
	s = connect_from(pol, "192.0.2.1", &v);
	for (unsigned i = 0; i < 60; i++) {
		moat_session_junk(s, &v);
		expect(&v, MOAT_CONTINUE, 0, "", false, "junk under both limits");
	}
	for (unsigned i = 0; i < 19; i++) {
		moat_session_error(s, true, &v);
		expect(&v, MOAT_CONTINUE, 0, "", false, "unknown command under both limits");
	}
	moat_session_error(s, true, &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "20th unknown command");
	cr_assert_str_eq(v.reason, "limit_errors");
	moat_session_free(s);
	moat_policy_free(pol);
}

Test(policy, sequence_errors_from_the_core)
{
	struct moat_policy *pol = make_policy(NULL, 0);
	struct moat_verdict v;
	struct moat_session *s = connect_from(pol, "192.0.2.1", &v);

	moat_session_rcpt(s, "b@example.net", NULL, &v);
	expect(&v, MOAT_REJECT, 503, "5.5.1", false, "RCPT before MAIL");
	moat_session_mail(s, "", NULL, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "null sender");
	moat_session_data(s, &v);
	expect(&v, MOAT_REJECT, 503, "5.5.1", false, "DATA without RCPT");
	moat_session_free(s);
	moat_policy_free(pol);
}

Test(policy, sessions_per_ip_limit)
{
	struct moat_conf_override ov[] = { { "limit_sessions_per_ip", "2" } };
	struct moat_policy *pol = make_policy(ov, 1);
	struct moat_verdict v;
	struct moat_session *a = connect_from(pol, "192.0.2.1", &v), *b, *c, *other;

	expect(&v, MOAT_CONTINUE, 0, "", false, "1st");
	b = connect_from(pol, "192.0.2.1", &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "2nd");
	c = connect_from(pol, "192.0.2.1", &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "3rd from the same address");
	other = connect_from(pol, "192.0.2.2", &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "another address");
	moat_session_free(c); /* a refused session frees no slot it never held */
	moat_session_free(a);
	c = connect_from(pol, "192.0.2.1", &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "after one closed");
	moat_session_free(b);
	moat_session_free(c);
	moat_session_free(other);
	moat_policy_free(pol);
}

Test(policy, sesscount_table_forgets_closed_clients)
{
	struct moat_sesscount *sc = moat_sesscount_new();
	struct moat_addr a;

	moat_addr_parse("2001:db8::1", &a);
	cr_assert(moat_sesscount_acquire(sc, &a, 1));
	cr_assert_not(moat_sesscount_acquire(sc, &a, 1));
	cr_assert_eq(moat_sesscount_get(sc, &a), 1);
	moat_sesscount_release(sc, &a);
	cr_assert_eq(moat_sesscount_get(sc, &a), 0);
	cr_assert(moat_sesscount_acquire(sc, &a, 1));
	moat_sesscount_release(sc, &a);
	moat_sesscount_free(sc);
}

struct trust_case {
	const char *label;
	const char *internal;
	const char *submission;
	const char *trust_auth;
	const char *client;
	const char *listener;
	bool authenticated;
	enum moat_direction want;
	const char *why;
};

static const struct trust_case trust_cases[] = {
	{ "external client", "", "", "yes", "203.0.113.5", "0.0.0.0:25", false, MOAT_INBOUND,
	    "external client" },
	{ "internal network", "10.0.0.0/8", "", "yes", "10.1.2.3", "0.0.0.0:25", false,
	    MOAT_OUTBOUND, "client in internal_networks" },
	{ "loopback not internal by default", "", "", "yes", "127.0.0.1", "0.0.0.0:25", false,
	    MOAT_INBOUND, "external client" },
	{ "authenticated", "", "", "yes", "203.0.113.5", "0.0.0.0:25", true, MOAT_OUTBOUND,
	    "authenticated sender" },
	{ "authenticated, not trusted", "", "", "no", "203.0.113.5", "0.0.0.0:25", true,
	    MOAT_INBOUND, "authenticated, but trust_authenticated = no" },
	{ "auth on submission listener", "", "0.0.0.0:587, submission", "no", "203.0.113.5",
	    "submission", true, MOAT_OUTBOUND, "authenticated on a submission listener" },
	{ "unauthenticated on submission listener", "", "submission", "yes", "203.0.113.5",
	    "submission", false, MOAT_INBOUND, "external client" },
	{ "listener names match exactly", "", "submission", "no", "203.0.113.5", "submissions",
	    true, MOAT_INBOUND, "authenticated, but trust_authenticated = no" },
};

/* check_trust - one pass per row of trust_cases. */
static void
check_trust(const struct trust_case *c)
{
	struct moat_conf_override ov[] = { { "internal_networks", c->internal },
		{ "submission_listeners", c->submission },
		{ "trust_authenticated", c->trust_auth } };
	struct moat_policy *pol = make_policy(ov, 3);
	struct moat_client cl = { .addr = c->client, .port = 1, .listener = c->listener };
	struct moat_verdict v;
	struct moat_session *s = moat_session_new(pol, &cl);
	const char *why;

	(void)moat_session_connect(s, &v);
	if (c->authenticated)
		moat_session_auth(s, "user@example.org");
	moat_session_mail(s, "a@example.org", NULL, &v);
	cr_assert_eq(moat_session_direction(s, &why), c->want, "%s", c->label);
	cr_assert_str_eq(why, c->why, "%s", c->label);
	moat_session_free(s);
	moat_policy_free(pol);
}

Test(policy, trust)
{
	for (size_t i = 0; i < sizeof(trust_cases) / sizeof(trust_cases[0]); i++)
		check_trust(&trust_cases[i]);
}

Test(policy, reload_keeps_sessions_on_their_snapshot)
{
	struct moat_conf_override ov[] = { { "limit_recipients", "1" } };
	struct moat_policy *pol = make_policy(NULL, 0);
	struct moat_session *old = start_txn(pol, 1), *fresh;
	struct moat_verdict v;
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf *next = moat_conf_load(NULL, ov, 1, err, sizeof(err));

	cr_assert_eq(moat_policy_reload(pol, next, err, sizeof(err)), 0, "%s", err);
	moat_conf_unref(next);
	moat_session_rcpt(old, "c@example.net", NULL, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "old session keeps limit 100");
	fresh = start_txn(pol, 1);
	moat_session_rcpt(fresh, "c@example.net", NULL, &v);
	expect(&v, MOAT_TEMPFAIL, 452, "4.5.3", false, "new session gets limit 1");
	moat_session_free(old);
	moat_session_free(fresh);
	moat_policy_free(pol);
}

Test(policy, summary_escapes_client_text)
{
	struct moat_policy *pol = make_policy(NULL, 0);
	struct moat_verdict v;
	struct moat_session *s = connect_from(pol, "192.0.2.1", &v);
	char line[1024];

	moat_session_mail(s, "evil\r\nverdict=accept\"@example.org", NULL, &v);
	moat_session_rcpt(s, "b@example.net", NULL, &v);
	moat_session_eom(s, &v);
	moat_session_summary(s, &v, line, sizeof(line));
	cr_assert_str_eq(line,
	    "client=client.example[192.0.2.1]:40000 "
	    "from=<evil\\x0d\\x0averdict=accept\\x22@example.org> nrcpt=1 size=0 dir=inbound "
	    "verdict=continue code=0 reason=-");
	moat_session_free(s);
	moat_policy_free(pol);
}

Test(policy, unparsable_client_address_is_served)
{
	struct moat_policy *pol = make_policy(NULL, 0);
	struct moat_client cl = { .addr = "unix-socket", .port = 0 };
	struct moat_verdict v;
	struct moat_session *s = moat_session_new(pol, &cl);
	const char *why;

	cr_assert_not_null(s);
	cr_assert_eq(moat_session_connect(s, &v), MOAT_EVENT_DONE);
	expect(&v, MOAT_CONTINUE, 0, "", false, "connect");
	cr_assert_eq(moat_session_direction(s, &why), MOAT_INBOUND);
	cr_assert_eq(strlen(moat_session_id(s)), 12);
	moat_session_free(s);
	moat_policy_free(pol);
}

/*
 * A message without header fields is checked like any other: the authentication engine starts at
 * the end of the header section when no field started it, so the From rule fails (no From field)
 * and whatever is passed on carries our Authentication-Results. The resolver is a loopback port
 * nothing listens on: SPF is a temporary error (tagged only), DMARC needs no lookup without a From.
 */
struct no_from_case {
	const char *label;
	const char *fields[2];
	const char *bad_from_action;
	enum moat_action action;
	unsigned code;
	const char *status;
};

static const struct no_from_case no_from_cases[] = {
	{ "no header fields at all", { NULL }, "reject", MOAT_REJECT, 550, "5.7.1" },
	{ "one header field, no From", { "Subject: x", NULL }, "reject", MOAT_REJECT, 550,
	    "5.7.1" },
	{ "no header fields, dmarc_bad_from_action = tag", { NULL }, "tag", MOAT_CONTINUE, 0, "" },
};

Test(policy, a_message_without_from_is_checked)
{
	for (size_t i = 0; i < sizeof(no_from_cases) / sizeof(no_from_cases[0]); i++) {
		const struct no_from_case *k = &no_from_cases[i];
		struct moat_conf_override ov[] = {
			{ "authserv_id", "mx.test" },
			{ "auth_inbound", "yes" },
			{ "dns_resolver", "127.0.0.1@15497" },
			{ "dns_timeout", "100ms" },
			{ "dmarc_bad_from_action", k->bad_from_action },
		};
		struct moat_policy *pol = make_policy(ov, sizeof(ov) / sizeof(ov[0]));
		struct moat_session *s = start_txn(pol, 1);
		const struct moat_hdr_edit *e;
		struct moat_verdict v;
		bool ours = false;
		size_t n;

		moat_session_data(s, &v);
		for (size_t f = 0; f < 2 && k->fields[f] != NULL; f++)
			moat_session_header(s, k->fields[f], strlen(k->fields[f]), &v);
		moat_session_eoh(s, &v);
		expect(&v, MOAT_CONTINUE, 0, "", false, k->label);
		cr_assert(moat_session_eom_blocks(s), "%s: the checks started", k->label);
		moat_session_body(s, "hi\r\n", 4, &v);
		moat_session_eom(s, &v);
		expect(&v, k->action, k->code, k->status, false, k->label);
		if (k->action != MOAT_CONTINUE)
			cr_assert_str_eq(v.reason, "dmarc_bad_from", "%s", k->label);
		e = moat_session_edits(s, &n);
		for (size_t j = 0; j < n; j++)
			if (e[j].op == MOAT_HDR_INSERT_TOP &&
			    strcmp(e[j].name, "Authentication-Results") == 0 &&
			    strstr(e[j].value, "dmarc=permerror") != NULL)
				ours = true;
		cr_assert(ours, "%s: our Authentication-Results with dmarc=permerror", k->label);
		moat_session_free(s);
		moat_policy_free(pol);
	}
}

/* ---- the check table: rate limits at their stages, pending events ---- */

Test(policy, ratelimit_connect_refusals_close)
{
	struct moat_conf_override ov[] = { { "ratelimit_deny", "198.51.100.0/24" },
		{ "ratelimit_conn_per_ip", "1/1h" } };
	struct moat_policy *pol = make_policy(ov, 2);
	struct moat_verdict v;
	struct moat_session *denied = connect_from(pol, "198.51.100.7", &v), *first, *second;

	expect(&v, MOAT_REJECT, 554, "5.7.1", true, "deny-listed");
	first = connect_from(pol, "192.0.2.1", &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "first connection");
	second = connect_from(pol, "192.0.2.1", &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "second within the hour");
	cr_assert_str_eq(v.reason, "ratelimit_conn_per_ip");
	moat_session_free(denied);
	moat_session_free(first);
	moat_session_free(second);
	moat_policy_free(pol);
}

Test(policy, ratelimit_message_is_charged_with_the_first_recipient)
{
	/* iprev off: the rate limits are the subject, and no DNS is behind these clients */
	struct moat_conf_override ov[] = { { "ratelimit_msg_per_ip", "1/1h" },
		{ "ratelimit_rcpt_per_ip", "3/1h" }, { "iprev_action", "none" } };
	struct moat_policy *pol = make_policy(ov, 3);
	struct moat_verdict v;
	struct moat_session *s = connect_from(pol, "192.0.2.1", &v);

	/* a MAIL that never gets a recipient counts nothing */
	cr_assert_eq(moat_session_mail(s, "a@example.org", NULL, &v), MOAT_EVENT_DONE);
	expect(&v, MOAT_CONTINUE, 0, "", false, "MAIL 1, abandoned");
	moat_session_abort(s);
	cr_assert_eq(moat_session_mail(s, "a@example.org", NULL, &v), MOAT_EVENT_DONE);
	cr_assert_eq(moat_session_rcpt(s, "b@example.net", NULL, &v), MOAT_EVENT_DONE);
	expect(&v, MOAT_CONTINUE, 0, "", false, "1st message, 1st rcpt");
	cr_assert_eq(moat_session_rcpt(s, "c@example.net", NULL, &v), MOAT_EVENT_DONE);
	expect(&v, MOAT_CONTINUE, 0, "", false, "1st message, 2nd rcpt: no second message charge");
	moat_session_eom(s, &v);
	/* the second message: MAIL passes, its first RCPT is refused by the message bucket */
	cr_assert_eq(moat_session_mail(s, "a@example.org", NULL, &v), MOAT_EVENT_DONE);
	expect(&v, MOAT_CONTINUE, 0, "", false, "MAIL 2");
	cr_assert_eq(moat_session_rcpt(s, "b@example.net", NULL, &v), MOAT_EVENT_DONE);
	expect(&v, MOAT_TEMPFAIL, 451, "4.7.1", false, "2nd message, 1st rcpt");
	cr_assert_str_eq(v.reason, "ratelimit_msg_per_ip");
	/* refused recipients are not counted: DATA has none */
	moat_session_data(s, &v);
	expect(&v, MOAT_REJECT, 503, "5.5.1", false, "DATA after the refused RCPT");
	moat_session_free(s);
	moat_policy_free(pol);
}

/* pending_policy - a policy of an event-loop front-end with a shared store: the core pends. */
static struct moat_policy *
pending_policy(void)
{
	/* iprev off: the rate limits are the subject, and no DNS is behind these clients */
	struct moat_conf_override ov[] = { { "ratelimit_store", "redis" },
		{ "ratelimit_redis", "127.0.0.1:1" }, { "ratelimit_rcpt_per_ip", "10/1h" },
		{ "ratelimit_conn_per_ip", "10/1h" }, { "iprev_action", "none" } };

	return make_policy(ov, 5);
}

Test(policy, pending_connect_resumes_with_the_store_verdict)
{
	struct moat_policy *pol = pending_policy();
	struct moat_client c = { .addr = "192.0.2.1", .port = 1 };
	struct moat_session *s = moat_session_new(pol, &c);
	struct moat_verdict v, answer;
	const struct moat_rl_plan *plan;

	cr_assert_null(moat_session_pending_plan(s), "nothing pending yet");
	cr_assert_eq(moat_session_connect(s, &v), MOAT_EVENT_PENDING);
	cr_assert_not_null(plan = moat_session_pending_plan(s));
	moat_verdict_set(&answer, MOAT_TEMPFAIL, 421, "4.7.0", "ratelimit_conn_per_ip", "Too many");
	cr_assert_eq(moat_session_resume(s, &answer, &v), MOAT_EVENT_DONE);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "refused by the store: closed");
	cr_assert_null(moat_session_pending_plan(s), "nothing pending after the resume");
	moat_session_free(s);
	moat_policy_free(pol);
}

Test(policy, pending_rcpt_counts_the_recipient_only_when_accepted)
{
	struct moat_policy *pol = pending_policy();
	struct moat_client c = { .addr = "192.0.2.1", .port = 1 };
	struct moat_session *s = moat_session_new(pol, &c);
	struct moat_verdict v, answer;

	cr_assert_eq(moat_session_connect(s, &v), MOAT_EVENT_PENDING);
	moat_verdict_continue(&answer);
	cr_assert_eq(moat_session_resume(s, &answer, &v), MOAT_EVENT_DONE);
	expect(&v, MOAT_CONTINUE, 0, "", false, "connect allowed by the store");
	cr_assert_eq(moat_session_mail(s, "a@example.org", NULL, &v), MOAT_EVENT_DONE,
	    "no MAIL-stage check waits");
	cr_assert_eq(moat_session_rcpt(s, "b@example.net", NULL, &v), MOAT_EVENT_PENDING);
	moat_verdict_set(&answer, MOAT_TEMPFAIL, 451, "4.7.1", "ratelimit_rcpt_per_ip", "Too many");
	cr_assert_eq(moat_session_resume(s, &answer, &v), MOAT_EVENT_DONE);
	expect(&v, MOAT_TEMPFAIL, 451, "4.7.1", false, "refused recipient");
	moat_session_data(s, &v);
	expect(&v, MOAT_REJECT, 503, "5.5.1", false, "no recipient counted");
	cr_assert_eq(moat_session_rcpt(s, "b@example.net", NULL, &v), MOAT_EVENT_PENDING);
	moat_verdict_continue(&answer);
	cr_assert_eq(moat_session_resume(s, &answer, &v), MOAT_EVENT_DONE);
	expect(&v, MOAT_CONTINUE, 0, "", false, "accepted recipient");
	moat_session_data(s, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "DATA with one recipient");
	moat_session_free(s);
	moat_policy_free(pol);
}

/* A front-end with no store to charge a pending plan in: the core decides as for a store that
 * is down, by ratelimit_redis_failure. */
Test(policy, pending_without_a_store_is_a_store_down)
{
	static const struct {
		const char *label, *failure;
		unsigned code;
		const char *status;
	} cases[] = {
		{ "closed", "closed", 451, "4.3.0" },
		{ "open: charged in memory", "open", 0, "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct moat_conf_override ov[] = { { "ratelimit_store", "redis" },
			{ "ratelimit_redis", "127.0.0.1:1" }, { "ratelimit_rcpt_per_ip", "10/1h" },
			{ "iprev_action", "none" },
			{ "ratelimit_redis_failure", cases[i].failure } };
		struct moat_policy *pol = make_policy(ov, 5);
		struct moat_client c = { .addr = "192.0.2.1", .port = 1 };
		struct moat_session *s = moat_session_new(pol, &c);
		struct moat_verdict v, allowed;

		moat_verdict_continue(&allowed);
		if (moat_session_connect(s, &v) == MOAT_EVENT_PENDING) /* the default per address */
			cr_assert_eq(moat_session_resume(s, &allowed, &v), MOAT_EVENT_DONE);
		expect(&v, MOAT_CONTINUE, 0, "", false, cases[i].label);
		cr_assert_eq(moat_session_mail(s, "a@example.org", NULL, &v), MOAT_EVENT_DONE);
		cr_assert_eq(moat_session_rcpt(s, "b@example.net", NULL, &v), MOAT_EVENT_PENDING);
		cr_assert_eq(moat_session_resume(s, NULL, &v), MOAT_EVENT_DONE);
		expect(&v, cases[i].code ? MOAT_TEMPFAIL : MOAT_CONTINUE, cases[i].code,
		    cases[i].status, false, cases[i].label);
		if (cases[i].code != 0)
			cr_assert_str_eq(v.reason, "ratelimit_store_down", "%s", cases[i].label);
		moat_session_free(s);
		moat_policy_free(pol);
	}
}

Test(policy, may_block_front_end_never_pends)
{
	struct moat_conf_override ov[] = { { "ratelimit_store", "redis" },
		{ "ratelimit_redis", "127.0.0.1:1" }, { "ratelimit_conn_per_ip", "10/1h" },
		{ "ratelimit_redis_failure", "closed" } };
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf *conf = moat_conf_load(NULL, ov, 4, err, sizeof(err));
	struct moat_policy *pol;
	struct moat_client c = { .addr = "192.0.2.1", .port = 1 };
	struct moat_session *s;
	struct moat_verdict v;

	cr_assert_not_null(conf, "%s", err);
	pol = moat_policy_new(conf, MOAT_POLICY_MAY_BLOCK, err, sizeof(err));
	cr_assert_not_null(pol, "%s", err);
	moat_conf_unref(conf);
	s = moat_session_new(pol, &c);
	/* nothing listens on port 1: the store is down at once, and closed refuses */
	cr_assert_eq(moat_session_connect(s, &v), MOAT_EVENT_DONE);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "store down, fail closed");
	cr_assert_str_eq(v.reason, "ratelimit_store_down");
	moat_session_free(s);
	moat_policy_free(pol);
}

/* A front-end reads HELO, EHLO, login and TLS from the core; STARTTLS forgets the name. */
Test(policy, session_facts_and_helo_reset)
{
	struct moat_policy *pol = make_policy(NULL, 0);
	struct moat_verdict v;
	struct moat_session *s = connect_from(pol, "192.0.2.1", &v);
	struct moat_tls_info tls = { .active = true };

	cr_assert_null(moat_session_helo_name(s));
	cr_assert_not(moat_session_esmtp(s));
	cr_assert_not(moat_session_authenticated(s));
	cr_assert_not(moat_session_tls_info(s)->active);
	moat_session_helo(s, "client.example", true, &v);
	cr_assert_str_eq(moat_session_helo_name(s), "client.example");
	cr_assert(moat_session_esmtp(s));
	snprintf(tls.protocol, sizeof(tls.protocol), "TLSv1.3");
	moat_session_tls(s, &tls);
	cr_assert(moat_session_tls_info(s)->active);
	cr_assert_str_eq(moat_session_tls_info(s)->protocol, "TLSv1.3");
	moat_session_helo_reset(s);
	cr_assert_null(moat_session_helo_name(s));
	cr_assert_not(moat_session_esmtp(s));
	cr_assert(moat_session_tls_info(s)->active, "TLS stays after the reset");
	moat_session_auth(s, "alice");
	cr_assert(moat_session_authenticated(s));
	moat_session_auth(s, "");
	cr_assert_not(moat_session_authenticated(s));
	moat_session_free(s);
	moat_policy_free(pol);
}

/* A front-end's part of a generation: a counted object named after the snapshot it was built from. */
struct fake_fe {
	int refs;
	unsigned limit; /* limit_recipients of its snapshot */
};
static int fake_fe_freed;

static void *
fake_fe_build(void *old, const struct moat_conf *conf, char *err, size_t errlen)
{
	struct fake_fe *fe;

	cr_assert_not_null(old, "the running part is offered to the build");
	if (conf->limit_recipients == 7) {
		snprintf(err, errlen, "the front-end refuses 7");
		return NULL;
	}
	fe = calloc(1, sizeof(*fe));
	cr_assert_not_null(fe);
	fe->refs = 1;
	fe->limit = conf->limit_recipients;
	return fe;
}

static void *
fake_fe_ref(void *p)
{
	((struct fake_fe *)p)->refs++;
	return p;
}

static void
fake_fe_unref(void *p)
{
	struct fake_fe *fe = p;

	if (fe != NULL && --fe->refs == 0) {
		fake_fe_freed++;
		free(fe);
	}
}

static const struct moat_frontend_ops fake_fe_ops = { fake_fe_build, fake_fe_ref, fake_fe_unref };

static void
reload_limit(struct moat_policy *pol, const char *limit, int want, const char *what)
{
	struct moat_conf_override ov[] = { { "limit_recipients", limit } };
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf *next = moat_conf_load(NULL, ov, 1, err, sizeof(err));

	cr_assert_not_null(next, "%s", err);
	cr_assert_eq(moat_policy_reload(pol, next, err, sizeof(err)), want, "%s: %s", what, err);
	if (want == -2)
		cr_assert_str_eq(err, "the front-end refuses 7", "%s", what);
	moat_conf_unref(next);
}

Test(policy, reload_swaps_the_front_end_part_with_the_snapshot)
{
	struct moat_policy *pol = make_policy(NULL, 0);
	struct fake_fe *first = calloc(1, sizeof(*first)), *held, *cur;
	struct moat_conf *conf;

	cr_assert_not_null(first);
	first->refs = 1;
	first->limit = 100;
	fake_fe_freed = 0;
	moat_policy_set_frontend(pol, &fake_fe_ops, first);
	held = moat_policy_frontend(pol); /* a session's reference across the reloads */
	cr_assert_eq(held, first);

	reload_limit(pol, "7", -2, "refused by the front-end");
	conf = moat_policy_conf(pol);
	cr_assert_eq(conf->limit_recipients, 100, "the snapshot is kept with the old part");
	moat_conf_unref(conf);
	cur = moat_policy_frontend(pol);
	cr_assert_eq(cur, first, "the old part is kept");
	fake_fe_unref(cur);
	cr_assert_eq(fake_fe_freed, 0);

	reload_limit(pol, "5", 0, "taken");
	conf = moat_policy_conf(pol);
	cur = moat_policy_frontend(pol);
	cr_assert_eq(conf->limit_recipients, 5);
	cr_assert_eq(cur->limit, 5, "the part built from the new snapshot is installed with it");
	moat_conf_unref(conf);
	fake_fe_unref(cur);
	cr_assert_eq(fake_fe_freed, 0, "the old part lives while a session holds it");
	fake_fe_unref(held);
	cr_assert_eq(fake_fe_freed, 1);
	moat_policy_free(pol);
	cr_assert_eq(fake_fe_freed, 2, "the policy releases its part");
}

/* dnsbl_policy - DNS lists asked through a resolver where nothing answers, within 200 ms. */
static struct moat_policy *
dnsbl_policy(unsigned flags)
{
	struct moat_conf_override ov[] = { { "dnsbl_sites", "bl.example.org" },
		{ "dns_resolver", "127.0.0.1@9" }, { "dnsbl_timeout", "200ms" },
		{ "internal_networks", "198.51.100.0/24" } };
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf *conf = moat_conf_load(NULL, ov, 4, err, sizeof(err));
	struct moat_policy *pol;

	cr_assert_not_null(conf, "%s", err);
	pol = moat_policy_new(conf, flags, err, sizeof(err));
	cr_assert_not_null(pol, "%s", err);
	moat_conf_unref(conf);
	return pol;
}

Test(policy, dnsbl_waits_on_a_work_item_then_resumes)
{
	struct moat_policy *pol = dnsbl_policy(0);
	struct moat_client c = { .addr = "192.0.2.1", .port = 1 };
	struct moat_session *s = moat_session_new(pol, &c);
	struct moat_verdict v;

	cr_assert_eq(moat_session_pending(s), MOAT_WAIT_NONE, "nothing pending yet");
	cr_assert_eq(moat_session_connect(s, &v), MOAT_EVENT_PENDING);
	cr_assert_eq(moat_session_pending(s), MOAT_WAIT_WORK);
	cr_assert_null(moat_session_pending_plan(s), "no rate-limit plan with a work item");
	moat_session_work(s);
	cr_assert_eq(moat_session_resume(s, NULL, &v), MOAT_EVENT_DONE);
	expect(&v, MOAT_CONTINUE, 0, "", false, "no list answered: nothing counts");
	cr_assert_eq(moat_session_pending(s), MOAT_WAIT_NONE, "nothing pending after the resume");
	moat_session_free(s);
	moat_policy_free(pol);
}

Test(policy, dnsbl_not_asked_for_internal_clients)
{
	struct moat_policy *pol = dnsbl_policy(0);
	struct moat_verdict v;
	struct moat_session *s = connect_from(pol, "198.51.100.7", &v);

	expect(&v, MOAT_CONTINUE, 0, "", false, "internal: no work item");
	moat_session_free(s);
	moat_policy_free(pol);
}

Test(policy, dnsbl_work_runs_inline_when_the_front_end_may_block)
{
	struct moat_policy *pol = dnsbl_policy(MOAT_POLICY_MAY_BLOCK);
	struct moat_verdict v;
	struct moat_session *s = connect_from(pol, "192.0.2.1", &v);

	expect(&v, MOAT_CONTINUE, 0, "", false, "answered at once");
	moat_session_free(s);
	moat_policy_free(pol);
}

Test(policy, iprev_waits_at_mail_and_refuses_while_dns_fails)
{
	struct moat_conf_override ov[] = { { "iprev_action", "reject" },
		{ "dns_resolver", "127.0.0.1@9" }, { "dns_timeout", "200ms" },
		{ "auth_inbound", "no" } };
	struct moat_policy *pol = make_policy(ov, 4);
	struct moat_verdict v;
	struct moat_session *s = connect_from(pol, "192.0.2.1", &v);

	cr_assert_eq(moat_session_mail(s, "a@example.org", NULL, &v), MOAT_EVENT_PENDING);
	cr_assert_eq(moat_session_pending(s), MOAT_WAIT_WORK);
	moat_session_work(s);
	cr_assert_eq(moat_session_resume(s, NULL, &v), MOAT_EVENT_DONE);
	expect(&v, MOAT_TEMPFAIL, 451, "4.7.25", false, "no DNS: temperror, tempfail");
	cr_assert_null(moat_session_iprev_name(s));
	/* looked up once a session: the next MAIL has the answer at once */
	cr_assert_eq(moat_session_mail(s, "a@example.org", NULL, &v), MOAT_EVENT_DONE);
	expect(&v, MOAT_TEMPFAIL, 451, "4.7.25", false, "second MAIL, same answer");
	moat_session_free(s);
	moat_policy_free(pol);
}

Test(policy, iprev_not_asked_for_loopback_or_outbound)
{
	struct moat_conf_override ov[] = { { "iprev_action", "reject" },
		{ "dns_resolver", "127.0.0.1@9" }, { "internal_networks", "198.51.100.0/24" } };
	struct moat_policy *pol = make_policy(ov, 3);
	struct moat_verdict v;
	struct moat_session *s = connect_from(pol, "127.0.0.1", &v);

	cr_assert_eq(moat_session_mail(s, "a@example.org", NULL, &v), MOAT_EVENT_DONE, "loopback");
	expect(&v, MOAT_CONTINUE, 0, "", false, "loopback");
	moat_session_free(s);
	s = connect_from(pol, "198.51.100.7", &v);
	cr_assert_eq(moat_session_mail(s, "a@example.org", NULL, &v), MOAT_EVENT_DONE, "outbound");
	expect(&v, MOAT_CONTINUE, 0, "", false, "outbound");
	moat_session_free(s);
	moat_policy_free(pol);
}

/* spf_policy - SPF refusing at MAIL (or at RCPT with spf_delay_reject), with a resolver that
 * never answers: every SPF check is a temperror. */
static struct moat_policy *
spf_policy(const char *delay, const char *temperror_action)
{
	struct moat_conf_override ov[] = { { "auth_inbound", "yes" },
		{ "spf_fail_action", "reject" }, { "spf_temperror_action", temperror_action },
		{ "spf_delay_reject", delay }, { "iprev_action", "none" },
		{ "dns_resolver", "127.0.0.1@9" }, { "dns_timeout", "200ms" } };

	return make_policy(ov, sizeof(ov) / sizeof(ov[0]));
}

/* spf_wait - the event (RC) waits for the SPF work item, which runs; V gets the verdict. */
static void
spf_wait(struct moat_session *s, enum moat_event_rc rc, struct moat_verdict *v, const char *what)
{
	cr_assert_eq(rc, MOAT_EVENT_PENDING, "%s waits for SPF", what);
	cr_assert_eq(moat_session_pending(s), MOAT_WAIT_WORK, "%s", what);
	moat_session_work(s);
	cr_assert_eq(moat_session_resume(s, NULL, v), MOAT_EVENT_DONE, "%s", what);
}

Test(policy, spf_decides_at_mail_before_any_message_byte)
{
	struct moat_policy *pol = spf_policy("no", "tempfail");
	struct moat_verdict v;
	struct moat_session *s = connect_from(pol, "192.0.2.1", &v);

	moat_session_helo(s, "client.example", true, &v);
	spf_wait(s, moat_session_mail(s, "a@example.org", NULL, &v), &v, "MAIL");
	expect(&v, MOAT_TEMPFAIL, 451, "4.7.24", false, "temperror refused at MAIL");
	cr_assert_eq(moat_session_rcpt(s, "b@example.net", NULL, &v), MOAT_EVENT_DONE);
	expect(&v, MOAT_REJECT, 503, "5.5.1", false, "the transaction was undone");
	/* a new transaction checks again: its sender may differ */
	spf_wait(s, moat_session_mail(s, "c@example.org", NULL, &v), &v, "second MAIL");
	expect(&v, MOAT_TEMPFAIL, 451, "4.7.24", false, "second MAIL");
	moat_session_free(s);
	moat_policy_free(pol);
}

Test(policy, spf_delay_reject_refuses_each_rcpt_after_one_check)
{
	struct moat_policy *pol = spf_policy("yes", "tempfail");
	struct moat_verdict v;
	struct moat_session *s = connect_from(pol, "192.0.2.1", &v);

	moat_session_helo(s, "client.example", true, &v);
	cr_assert_eq(moat_session_mail(s, "a@example.org", NULL, &v), MOAT_EVENT_DONE);
	expect(&v, MOAT_CONTINUE, 0, "", false, "MAIL accepted: the refusal is delayed");
	spf_wait(s, moat_session_rcpt(s, "b@example.net", NULL, &v), &v, "first RCPT");
	expect(&v, MOAT_TEMPFAIL, 451, "4.7.24", false, "first RCPT");
	cr_assert_eq(moat_session_rcpt(s, "c@example.net", NULL, &v), MOAT_EVENT_DONE,
	    "checked once a transaction");
	expect(&v, MOAT_TEMPFAIL, 451, "4.7.24", false, "second RCPT");
	moat_session_data(s, &v);
	expect(&v, MOAT_REJECT, 503, "5.5.1", false, "no recipient: DATA refused");
	moat_session_free(s);
	moat_policy_free(pol);
}

Test(policy, spf_waits_at_mail_only_when_its_result_may_refuse)
{
	struct moat_policy *pol = spf_policy("no", "tag");
	struct moat_conf_override off[] = { { "auth_inbound", "no" },
		{ "spf_fail_action", "reject" }, { "iprev_action", "none" } };
	struct moat_policy *pol_off = make_policy(off, 3);
	struct moat_verdict v;
	struct moat_session *s = connect_from(pol, "192.0.2.1", &v);

	/* fail refuses, so SPF is checked; a temperror only tags and the MAIL goes on */
	spf_wait(s, moat_session_mail(s, "a@example.org", NULL, &v), &v, "MAIL");
	expect(&v, MOAT_CONTINUE, 0, "", false, "temperror with spf_temperror_action=tag");
	moat_session_free(s);
	s = connect_from(pol_off, "192.0.2.1", &v);
	cr_assert_eq(moat_session_mail(s, "a@example.org", NULL, &v), MOAT_EVENT_DONE,
	    "auth_inbound=no: no SPF");
	expect(&v, MOAT_CONTINUE, 0, "", false, "auth_inbound=no");
	moat_session_free(s);
	moat_policy_free(pol_off);
	moat_policy_free(pol);
}

/* Failed AUTH across sessions: a 535 charges the address and the login, a 235 authenticates only
 * while both have a token left, and the next exchange from a used-up address is refused before
 * it starts; every refusal is 421 4.7.0 with a close. */
Test(policy, auth_failures_across_sessions)
{
	struct moat_conf_override ov[] = { { "ratelimit_auth_fail_per_ip", "2/1h" },
		{ "ratelimit_auth_fail_per_user", "3/1h" }, { "ratelimit_allow", "" } };
	struct moat_policy *pol = make_policy(ov, 3);
	struct moat_verdict v;
	struct moat_session *s;

	for (int i = 0; i < 2; i++) {
		s = connect_from(pol, "192.0.2.1", &v);
		cr_assert_eq(moat_session_auth_begin(s, &v), MOAT_EVENT_DONE);
		expect(&v, MOAT_CONTINUE, 0, "", false, "exchange may start");
		cr_assert_eq(moat_session_auth_result(s, "alice", false, &v), MOAT_EVENT_DONE);
		expect(&v, MOAT_CONTINUE, 0, "", false, "a failure within the budget");
		cr_assert_not(moat_session_authenticated(s));
		moat_session_free(s);
	}
	s = connect_from(pol, "192.0.2.1", &v);
	moat_session_auth_begin(s, &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "the address used up");
	cr_assert_str_eq(v.reason, "ratelimit_auth_fail_per_ip");
	moat_session_free(s);

	/* alice's third failure from elsewhere uses her login up: her right password is refused */
	s = connect_from(pol, "192.0.2.2", &v);
	moat_session_auth_result(s, "alice", false, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "third failure for the login");
	moat_session_free(s);
	s = connect_from(pol, "192.0.2.3", &v);
	moat_session_auth_begin(s, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "a fresh address may start");
	moat_session_auth_result(s, "alice", true, &v);
	expect(&v, MOAT_TEMPFAIL, 421, "4.7.0", true, "the login used up, right password");
	cr_assert_str_eq(v.reason, "ratelimit_auth_fail_per_user");
	cr_assert_not(moat_session_authenticated(s), "a refused success authenticates nothing");
	moat_session_free(s);
	s = connect_from(pol, "192.0.2.3", &v);
	moat_session_auth_result(s, "bob", true, &v);
	expect(&v, MOAT_CONTINUE, 0, "", false, "bob");
	cr_assert(moat_session_authenticated(s));
	moat_session_free(s);
	moat_policy_free(pol);
}

Test(policy, auth_result_pends_on_a_shared_store)
{
	struct moat_policy *pol = pending_policy();
	struct moat_client c = { .addr = "192.0.2.1", .port = 1 };
	struct moat_session *s = moat_session_new(pol, &c);
	struct moat_verdict v, answer;
	const struct moat_rl_plan *plan;

	cr_assert_eq(moat_session_auth_result(s, "alice", true, &v), MOAT_EVENT_PENDING);
	cr_assert_not_null(plan = moat_session_pending_plan(s));
	cr_assert_eq(plan->n, 2, "the address and the login: %zu", plan->n);
	cr_assert_eq(plan->req[0].cost, 0, "a look charges nothing");
	cr_assert_not(moat_session_authenticated(s), "not before the store answered");
	moat_verdict_continue(&answer);
	cr_assert_eq(moat_session_resume(s, &answer, &v), MOAT_EVENT_DONE);
	expect(&v, MOAT_CONTINUE, 0, "", false, "the store has tokens");
	cr_assert(moat_session_authenticated(s));
	moat_session_free(s);
	moat_policy_free(pol);
}

Test(policy, greylist_spares_authenticated_sessions)
{
	/* trust_authenticated = no: the authenticated session's mail stays inbound, and is still
	 * never greylisted */
	struct moat_conf_override ov[] = { { "greylist", "all" }, { "iprev_action", "none" },
		{ "trust_authenticated", "no" } };
	struct moat_policy *pol = make_policy(ov, 3);
	struct moat_verdict v;
	struct moat_session *s = connect_from(pol, "192.0.2.1", &v);
	const char *why;

	cr_assert_eq(moat_session_mail(s, "a@example.org", NULL, &v), MOAT_EVENT_DONE);
	cr_assert_eq(moat_session_rcpt(s, "b@example.net", NULL, &v), MOAT_EVENT_DONE);
	expect(&v, MOAT_TEMPFAIL, 451, "4.7.1", false, "not authenticated: greylisted");
	cr_assert_str_eq(v.reason, "greylist");
	moat_session_free(s);
	s = connect_from(pol, "192.0.2.1", &v);
	moat_session_auth(s, "alice");
	cr_assert_eq(moat_session_mail(s, "a@example.org", NULL, &v), MOAT_EVENT_DONE);
	cr_assert_eq(moat_session_direction(s, &why), MOAT_INBOUND, "%s", why);
	cr_assert_eq(moat_session_rcpt(s, "b@example.net", NULL, &v), MOAT_EVENT_DONE);
	expect(&v, MOAT_CONTINUE, 0, "", false, "authenticated: never greylisted");
	moat_session_free(s);
	moat_policy_free(pol);
}
