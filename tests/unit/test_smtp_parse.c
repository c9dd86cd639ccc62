/*
 * test_smtp_parse.c - the proxy's command line reader, MAIL/RCPT path parser, backend reply parser
 * and DATA reader: table-driven, every limit and malformed input, exact values asserted.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "bdat_oracle.h"
#include "data_reader.h"
#include "smtp_parse.h"
#include "upstream.h"

struct line_case {
	const char *label;
	const char *in;
	size_t len;
	size_t max;
	bool normalize;
	enum px_line want;
	size_t linelen, used;
};

#define L(s) s, sizeof(s) - 1

static const struct line_case line_cases[] = {
	{ "complete", L("NOOP\r\n"), 512, false, PX_LINE_OK, 4, 6 },
	{ "two lines: first only", L("NOOP\r\nQUIT\r\n"), 512, false, PX_LINE_OK, 4, 6 },
	{ "partial", L("NOO"), 512, false, PX_LINE_NEED, 0, 0 },
	{ "CR at end waits for LF", L("NOOP\r"), 512, false, PX_LINE_NEED, 0, 0 },
	{ "bare LF rejected", L("NOOP\nQUIT\r\n"), 512, false, PX_LINE_BARE, 0, 5 },
	{ "bare LF normalised", L("NOOP\nQUIT\r\n"), 512, true, PX_LINE_OK, 4, 5 },
	{ "bare CR rejected up to LF", L("NO\rOP\r\n"), 512, false, PX_LINE_BARE, 0, 7 },
	{ "bare CR normalised", L("NO\rOP\r\n"), 512, true, PX_LINE_OK, 2, 3 },
	{ "CR CR LF is not CRLF", L("NOOP\r\r\n"), 512, false, PX_LINE_BARE, 0, 7 },
	{ "NUL", L("NO\0OP\r\n"), 512, false, PX_LINE_NUL, 0, 7 },
	{ "exactly max with CRLF", L("12345678\r\n"), 10, false, PX_LINE_OK, 8, 10 },
	{ "one over max", L("123456789\r\n"), 10, false, PX_LINE_TOOLONG, 0, 0 },
	{ "over max before the end arrives", L("123456789"), 10, false, PX_LINE_TOOLONG, 0, 0 },
	{ "partial under max", L("12345678"), 10, false, PX_LINE_NEED, 0, 0 },
	{ "empty line", L("\r\n"), 10, false, PX_LINE_OK, 0, 2 },
};

Test(smtp_parse, line_reader_table)
{
	for (size_t i = 0; i < sizeof(line_cases) / sizeof(line_cases[0]); i++) {
		const struct line_case *c = &line_cases[i];
		size_t ll = 99, used = 99;
		enum px_line r = px_parse_line(c->in, c->len, c->max, c->normalize, &ll, &used);

		cr_assert_eq(r, c->want, "%s: got %d", c->label, r);
		if (r == PX_LINE_OK)
			cr_assert_eq(ll, c->linelen, "%s: linelen %zu", c->label, ll);
		cr_assert_eq(used, c->used, "%s: used %zu", c->label, used);
	}
}

struct path_case {
	const char *label;
	const char *arg;
	const char *kw;
	bool null_ok;
	enum px_path_err want;
	const char *path, *params;
	unsigned nparams;
};

static const struct path_case path_cases[] = {
	{ "plain", "FROM:<a@b.example>", "FROM:", true, PX_PATH_OK, "a@b.example", "", 0 },
	{ "lower keyword", "from:<a@b.example>", "FROM:", true, PX_PATH_OK, "a@b.example", "", 0 },
	{ "space after colon", "FROM: <a@b.example>", "FROM:", true, PX_PATH_OK, "a@b.example", "",
	    0 },
	{ "null sender", "FROM:<>", "FROM:", true, PX_PATH_OK, "", "", 0 },
	{ "null recipient", "TO:<>", "TO:", false, PX_PATH_NULL, "", "", 0 },
	{ "postmaster", "TO:<Postmaster>", "TO:", false, PX_PATH_OK, "Postmaster", "", 0 },
	{ "POSTMASTER", "TO:<POSTMASTER>", "TO:", false, PX_PATH_OK, "POSTMASTER", "", 0 },
	{ "prefix of postmaster", "TO:<post>", "TO:", false, PX_PATH_SYNTAX, "", "", 0 },
	{ "one letter of postmaster", "TO:<P>", "TO:", false, PX_PATH_SYNTAX, "", "", 0 },
	{ "postmaster and more", "TO:<postmasters>", "TO:", false, PX_PATH_SYNTAX, "", "", 0 },
	{ "postmaster at a domain", "TO:<postmaster@b.example>", "TO:", false, PX_PATH_OK,
	    "postmaster@b.example", "", 0 },
	{ "no @", "TO:<user>", "TO:", false, PX_PATH_SYNTAX, "", "", 0 },
	{ "no brackets", "FROM:a@b.example", "FROM:", true, PX_PATH_SYNTAX, "", "", 0 },
	{ "unterminated", "FROM:<a@b.example", "FROM:", true, PX_PATH_SYNTAX, "", "", 0 },
	{ "space inside", "FROM:<a @b.example>", "FROM:", true, PX_PATH_SYNTAX, "", "", 0 },
	{ "nested bracket", "FROM:<<a@b.example>>", "FROM:", true, PX_PATH_SYNTAX, "", "", 0 },
	{ "control char", "FROM:<a\x01@b.example>", "FROM:", true, PX_PATH_SYNTAX, "", "", 0 },
	{ "wrong keyword", "TO:<a@b.example>", "FROM:", true, PX_PATH_SYNTAX, "", "", 0 },
	{ "params", "FROM:<a@b.example> SIZE=100 BODY=8BITMIME", "FROM:", true, PX_PATH_OK,
	    "a@b.example", "SIZE=100 BODY=8BITMIME", 2 },
	{ "bare keyword param", "FROM:<a@b.example> SMTPUTF8", "FROM:", true, PX_PATH_OK,
	    "a@b.example", "SMTPUTF8", 1 },
	{ "junk after path", "FROM:<a@b.example>x", "FROM:", true, PX_PATH_SYNTAX, "", "", 0 },
	{ "empty value", "FROM:<a@b.example> SIZE=", "FROM:", true, PX_PATH_PARAM, "a@b.example",
	    "", 0 },
	{ "double =", "FROM:<a@b.example> A=b=c", "FROM:", true, PX_PATH_PARAM, "a@b.example", "",
	    0 },
	{ "double space between", "FROM:<a@b.example> A=1  B=2", "FROM:", true, PX_PATH_PARAM,
	    "a@b.example", "", 0 },
	{ "trailing space", "FROM:<a@b.example> A=1 ", "FROM:", true, PX_PATH_PARAM, "a@b.example",
	    "", 0 },
	{ "keyword starts with -", "FROM:<a@b.example> -X", "FROM:", true, PX_PATH_PARAM,
	    "a@b.example", "", 0 },
	{ "17 params", "FROM:<a@b.example> A B C D E F G H I J K L M N O P Q", "FROM:", true,
	    PX_PATH_PARAM, "a@b.example", "", 0 },
	{ "UTF-8 local part", "FROM:<\xc3\xa9@b.example>", "FROM:", true, PX_PATH_OK,
	    "\xc3\xa9@b.example", "", 0 },
};

Test(smtp_parse, path_table)
{
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
		const struct path_case *c = &path_cases[i];
		char path[PX_PATH_MAX + 1];
		const char *params;
		unsigned np;
		enum px_path_err r =
		    px_parse_path(c->arg, c->kw, c->null_ok, path, sizeof(path), &params, &np);

		cr_assert_eq(r, c->want, "%s: got %d", c->label, r);
		if (r == PX_PATH_OK) {
			cr_assert_str_eq(path, c->path, "%s", c->label);
			cr_assert_str_eq(params, c->params, "%s", c->label);
			cr_assert_eq(np, c->nparams, "%s", c->label);
		}
	}
}

Test(smtp_parse, path_length_limit)
{
	char arg[400], path[PX_PATH_MAX + 1];
	const char *params;
	unsigned np;

	/* 256 octets: accepted (RFC 5321 4.5.3.1.3); 257: refused. "@b.example" is 10 octets. */
	memset(arg, 0, sizeof(arg));
	strcpy(arg, "TO:<");
	memset(arg + 4, 'a', 245);
	strcpy(arg + 4 + 245, "@b.example>");
	cr_assert_eq(px_parse_path(arg, "TO:", false, path, sizeof(path), &params, &np),
	    PX_PATH_OK);
	cr_assert_eq(strlen(path), 255);
	memset(arg + 4, 'a', 246);
	strcpy(arg + 4 + 246, "@b.example>");
	cr_assert_eq(px_parse_path(arg, "TO:", false, path, sizeof(path), &params, &np),
	    PX_PATH_OK);
	cr_assert_eq(strlen(path), 256);
	memset(arg + 4, 'a', 247);
	strcpy(arg + 4 + 247, "@b.example>");
	cr_assert_eq(px_parse_path(arg, "TO:", false, path, sizeof(path), &params, &np),
	    PX_PATH_TOOLONG);
}

Test(smtp_parse, verb_and_params)
{
	char verb[9];
	const char *arg, *v;
	size_t vl;

	cr_assert(px_verb("ehlo x.example", 14, verb, &arg));
	cr_assert_str_eq(verb, "EHLO");
	cr_assert_str_eq(arg, "x.example");
	cr_assert(px_verb("QUIT", 4, verb, &arg));
	cr_assert_str_eq(arg, "");
	cr_assert_not(px_verb("TOOLONGVERB x", 13, verb, &arg));
	cr_assert(px_verb("starttls", 8, verb, &arg)); /* 8 letters */
	cr_assert_str_eq(verb, "STARTTLS");
	cr_assert_not(px_verb("STARTTLSX", 9, verb, &arg));
	cr_assert_not(px_verb(" NOOP", 5, verb, &arg));
	cr_assert_not(px_verb("NO1P", 4, verb, &arg));
	cr_assert(px_param_find("SIZE=100 BODY=8BITMIME", "body", &v, &vl));
	cr_assert_eq(vl, 8);
	cr_assert_eq(strncmp(v, "8BITMIME", vl), 0);
	cr_assert_not(px_param_find("SIZEX=1", "SIZE", &v, &vl));
}

struct dsn_case {
	const char *label;
	const char *tok;
	bool rcpt;
	int want; /* the parameter's bit, -1 malformed, 0 not a DSN parameter of the command */
};

static const struct dsn_case dsn_cases[] = {
	{ "RET=FULL", "RET=FULL", false, PX_DSN_RET },
	{ "RET=hdrs, any case", "ret=hdrs", false, PX_DSN_RET },
	{ "RET=other", "RET=BODY", false, -1 },
	{ "RET without value", "RET", false, -1 },
	{ "RET empty", "RET=", false, -1 },
	{ "RET on RCPT is no DSN parameter", "RET=FULL", true, 0 },
	{ "ENVID xtext", "ENVID=QQ314159+2BX", false, PX_DSN_ENVID },
	{ "ENVID empty", "ENVID=", false, -1 },
	{ "ENVID lower-case hex", "ENVID=a+2bx", false, -1 },
	{ "ENVID truncated hex", "ENVID=ab+2", false, -1 },
	{ "ENVID '+' at the end", "ENVID=ab+", false, -1 },
	{ "ENVID '='", "ENVID=a=b", false, -1 },
	{ "ENVID 8-bit", "ENVID=a\xc3\xa9", false, -1 },
	{ "ENVID 100 octets",
	    "ENVID=0123456789012345678901234567890123456789012345678901234567890123456789"
	    "012345678901234567890123456789",
	    false, PX_DSN_ENVID },
	{ "ENVID 101 octets",
	    "ENVID=0123456789012345678901234567890123456789012345678901234567890123456789"
	    "0123456789012345678901234567890",
	    false, -1 },
	{ "NOTIFY=NEVER", "NOTIFY=NEVER", true, PX_DSN_NOTIFY },
	{ "NOTIFY list", "NOTIFY=SUCCESS,FAILURE,DELAY", true, PX_DSN_NOTIFY },
	{ "NOTIFY one", "notify=delay", true, PX_DSN_NOTIFY },
	{ "NOTIFY repeated", "NOTIFY=SUCCESS,SUCCESS", true, -1 },
	{ "NOTIFY NEVER in a list", "NOTIFY=NEVER,FAILURE", true, -1 },
	{ "NOTIFY trailing comma", "NOTIFY=FAILURE,", true, -1 },
	{ "NOTIFY leading comma", "NOTIFY=,FAILURE", true, -1 },
	{ "NOTIFY unknown word", "NOTIFY=ALWAYS", true, -1 },
	{ "NOTIFY empty", "NOTIFY=", true, -1 },
	{ "NOTIFY on MAIL is no DSN parameter", "NOTIFY=NEVER", false, 0 },
	{ "ORCPT rfc822", "ORCPT=rfc822;bob@example.net", true, PX_DSN_ORCPT },
	{ "ORCPT xtext", "ORCPT=rfc822;b+2Bob@example.net", true, PX_DSN_ORCPT },
	{ "ORCPT utf-8 type (RFC 6533)", "ORCPT=utf-8;b\\x{E9}@example.net", true, PX_DSN_ORCPT },
	{ "ORCPT without type", "ORCPT=bob@example.net", true, -1 },
	{ "ORCPT empty type", "ORCPT=;bob@example.net", true, -1 },
	{ "ORCPT empty address", "ORCPT=rfc822;", true, -1 },
	{ "ORCPT bad xtext", "ORCPT=rfc822;a+zz@example.net", true, -1 },
	{ "SIZE is no DSN parameter", "SIZE=100", false, 0 },
	{ "RETX is no DSN parameter", "RETX=FULL", false, 0 },
};

Test(smtp_parse, dsn_params)
{
	char orcpt[600];

	for (size_t i = 0; i < sizeof(dsn_cases) / sizeof(dsn_cases[0]); i++) {
		const struct dsn_case *c = &dsn_cases[i];

		cr_assert_eq(px_dsn_param(c->tok, strlen(c->tok), c->rcpt), c->want, "%s",
		    c->label);
	}
	/* ORCPT: 500 octets of value at most (RFC 3461 4.2) */
	memset(orcpt, 'a', sizeof(orcpt));
	memcpy(orcpt, "ORCPT=rfc822;", 13);
	cr_assert_eq(px_dsn_param(orcpt, 6 + 500, true), PX_DSN_ORCPT, "500 octets");
	cr_assert_eq(px_dsn_param(orcpt, 6 + 501, true), -1, "501 octets");
}

struct reply_case {
	const char *label;
	const char *in;
	enum px_reply_status want;
	unsigned code;
};

static const struct reply_case reply_cases[] = {
	{ "single", "250 ok\r\n", PX_REPLY_DONE, 250 },
	{ "code only", "250\r\n", PX_REPLY_DONE, 250 },
	{ "multi", "250-a\r\n250-b\r\n250 c\r\n", PX_REPLY_DONE, 250 },
	{ "incomplete", "250-a\r\n250", PX_REPLY_NEED, 0 },
	{ "bare LF", "250 ok\n", PX_REPLY_BAD, 0 },
	{ "bare CR inside", "250 o\rk\r\n", PX_REPLY_BAD, 0 },
	{ "mixed codes", "250-a\r\n251 b\r\n", PX_REPLY_BAD, 0 },
	{ "letters", "2x0 ok\r\n", PX_REPLY_BAD, 0 },
	{ "first digit 6", "650 ok\r\n", PX_REPLY_BAD, 0 },
	{ "second digit 6", "260 ok\r\n", PX_REPLY_BAD, 0 },
	{ "bad separator", "250_ok\r\n", PX_REPLY_BAD, 0 },
	{ "too short", "25\r\n", PX_REPLY_BAD, 0 },
	{ "control char", "250 o\x01k\r\n", PX_REPLY_BAD, 0 },
	{ "NUL", "250 o\0k\r\n", PX_REPLY_BAD, 0 },
};

Test(upstream, reply_table)
{
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
		const struct reply_case *c = &reply_cases[i];
		struct px_reply r;
		size_t used = 0, len = strlen(c->in);

		if (strcmp(c->label, "NUL") == 0)
			len = 10;
		px_reply_init(&r);
		cr_assert_eq(px_reply_feed(&r, c->in, len, &used), c->want, "%s", c->label);
		if (c->want == PX_REPLY_DONE) {
			cr_assert_eq(r.code, c->code, "%s", c->label);
			cr_assert_eq(used, len, "%s", c->label);
		}
	}
}

Test(upstream, reply_bounds)
{
	struct px_reply r;
	char line[PX_REPLY_LINE_MAX + 10];
	size_t used;

	/* 33 continuation lines: more than PX_REPLY_LINES */
	px_reply_init(&r);
	for (int i = 0; i < PX_REPLY_LINES; i++)
		cr_assert_eq(px_reply_feed(&r, "250-x\r\n", 7, &used), PX_REPLY_NEED);
	cr_assert_eq(px_reply_feed(&r, "250-x\r\n", 7, &used), PX_REPLY_BAD);
	/* a line longer than PX_REPLY_LINE_MAX */
	px_reply_init(&r);
	memset(line, 'a', sizeof(line));
	memcpy(line, "250 ", 4);
	cr_assert_eq(px_reply_feed(&r, line, sizeof(line), &used), PX_REPLY_BAD);
	/* byte at a time gives the same answer */
	px_reply_init(&r);
	const char *m = "250-a\r\n250 b\r\n";
	for (size_t i = 0; i < strlen(m) - 1; i++)
		cr_assert_eq(px_reply_feed(&r, m + i, 1, &used), PX_REPLY_NEED);
	cr_assert_eq(px_reply_feed(&r, m + strlen(m) - 1, 1, &used), PX_REPLY_DONE);
	cr_assert(px_reply_has_ext(&r, "B"));
	cr_assert_not(px_reply_has_ext(&r, "A")); /* the first line is the greeting name */
}

Test(upstream, xclient_and_proxy_headers)
{
	char buf[512];
	size_t n;

	n = px_xclient_format(buf, sizeof(buf), "192.0.2.1", 4321, NULL, "he lo+x", true);
	cr_assert_str_eq(buf,
	    "XCLIENT ADDR=192.0.2.1 PORT=4321 NAME=[UNAVAILABLE] HELO=he+20lo+2Bx PROTO=ESMTP\r\n");
	cr_assert_eq(n, strlen(buf));
	n = px_xclient_format(buf, sizeof(buf), "2001:db8::1", 25, "mx.example", "h", false);
	cr_assert_str_eq(buf,
	    "XCLIENT ADDR=IPV6:2001:db8::1 PORT=25 NAME=mx.example HELO=h PROTO=SMTP\r\n");
	n = px_proxy_format(buf, sizeof(buf), 1, "192.0.2.1", 4321, "127.0.0.1", 25);
	cr_assert_eq(n, strlen("PROXY TCP4 192.0.2.1 127.0.0.1 4321 25\r\n"));
	cr_assert_eq(memcmp(buf, "PROXY TCP4 192.0.2.1 127.0.0.1 4321 25\r\n", n), 0);
	n = px_proxy_format(buf, sizeof(buf), 2, "192.0.2.1", 4321, "127.0.0.1", 25);
	cr_assert_eq(n, 28);
	cr_assert_eq(memcmp(buf,
			 "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x01\x7f\x00\x00\x01\x10\xe1\x00\x19",
			 28),
	    0);
	cr_assert_eq(px_proxy_format(buf, sizeof(buf), 1, "not-an-ip", 1, "127.0.0.1", 25), 0);
}

/* ---- DATA reader ---- */

struct sink {
	char content[16384], wire[16384];
	size_t clen, wlen;
};

static void
sink_content(void *arg, const char *p, size_t n)
{
	struct sink *k = arg;

	cr_assert_leq(k->clen + n, sizeof(k->content));
	memcpy(k->content + k->clen, p, n);
	k->clen += n;
}

static void
sink_wire(void *arg, const char *p, size_t n)
{
	struct sink *k = arg;

	cr_assert_leq(k->wlen + n, sizeof(k->wire));
	memcpy(k->wire + k->wlen, p, n);
	k->wlen += n;
}

struct data_case {
	const char *label;
	const char *in;
	size_t len;
	bool normalize;
	bool done;
	size_t used; /* where the end of data was found */
	enum px_data_err err;
	const char *content, *wire; /* NULL: not checked */
};

static const struct data_case data_cases[] = {
	{ "simple", L("a\r\nb\r\n.\r\nQUIT\r\n"), false, true, 9, PX_DATA_OK, "a\r\nb\r\n",
	    "a\r\nb\r\n" },
	{ "empty message", L(".\r\n"), false, true, 3, PX_DATA_OK, "", "" },
	{ "unstuff and restuff", L("..x\r\n.y\r\n...\r\n.\r\n"), false, true, 17, PX_DATA_OK,
	    ".x\r\ny\r\n..\r\n", "..x\r\ny\r\n...\r\n" },
	{ "no end", L("a\r\nb"), false, false, 4, PX_DATA_OK, "a\r\nb", "a\r\nb" },
	{ "8-bit kept", L("\xc3\xa9\r\n.\r\n"), false, true, 7, PX_DATA_OK, "\xc3\xa9\r\n",
	    "\xc3\xa9\r\n" },
	{ "\\n.\\n is not the end", L("a\n.\nMAIL\r\n"), false, false, 10, PX_DATA_BARE, "", "" },
	{ "\\n.\\n then the real end", L("a\n.\nMAIL\r\n.\r\nX"), false, true, 13, PX_DATA_BARE, "",
	    "" },
	{ "\\r.\\r\\n", L("a\r.\r\nM\r\n.\r\n"), false, true, 11, PX_DATA_BARE, "", "" },
	{ "\\r\\n.\\r then real end", L("a\r\n.\rM\r\n.\r\n"), false, true, 11, PX_DATA_BARE, NULL,
	    NULL },
	{ "\\r\\n.\\r\\r\\n", L("a\r\n.\r\r\nM\r\n.\r\n"), false, true, 13, PX_DATA_BARE, NULL,
	    NULL },
	{ "NUL before dot", L("a\r\n\0.\r\nM\r\n.\r\n"), false, true, 13, PX_DATA_NUL, NULL, NULL },
	{ "NUL after dot", L("a\r\n.\0\r\nM\r\n.\r\n"), false, true, 13, PX_DATA_NUL, NULL, NULL },
	{ "CR CR LF not folded", L("a\r\r\n.\r\n"), false, true, 7, PX_DATA_BARE, NULL, NULL },
	{ "normalise bare LF", L("a\nb\r\n.\r\n"), true, true, 8, PX_DATA_OK, "a\r\nb\r\n",
	    "a\r\nb\r\n" },
	/* normalize: every published fake end of data is content, the smuggled MAIL a body line */
	{ "normalise \\n.\\n", L("a\n.\nMAIL\r\n.\r\nX"), true, true, 13, PX_DATA_OK,
	    "a\r\n.\r\nMAIL\r\n", "a\r\n..\r\nMAIL\r\n" },
	{ "normalise \\n.\\r\\n", L("a\n.\r\nMAIL\r\n.\r\nX"), true, true, 14, PX_DATA_OK,
	    "a\r\n.\r\nMAIL\r\n", "a\r\n..\r\nMAIL\r\n" },
	{ "normalise \\r.\\n", L("a\r.\nMAIL\r\n.\r\nX"), true, true, 13, PX_DATA_OK,
	    "a\r\n.\r\nMAIL\r\n", "a\r\n..\r\nMAIL\r\n" },
	{ "normalise \\r.\\r\\n", L("a\r.\r\nMAIL\r\n.\r\nX"), true, true, 14, PX_DATA_OK,
	    "a\r\n.\r\nMAIL\r\n", "a\r\n..\r\nMAIL\r\n" },
	{ "normalise \\r.\\r", L("a\r.\rMAIL\r\n.\r\nX"), true, true, 13, PX_DATA_OK,
	    "a\r\n.\r\nMAIL\r\n", "a\r\n..\r\nMAIL\r\n" },
	{ "normalise \\n.\\r", L("a\n.\rMAIL\r\n.\r\nX"), true, true, 13, PX_DATA_OK,
	    "a\r\n.\r\nMAIL\r\n", "a\r\n..\r\nMAIL\r\n" },
	{ "normalise \\r\\n.\\n: stuffing dot, empty line", L("a\r\n.\nMAIL\r\n.\r\nX"), true, true,
	    14, PX_DATA_OK, "a\r\n\r\nMAIL\r\n", "a\r\n\r\nMAIL\r\n" },
	{ "normalise \\r\\n.\\r", L("a\r\n.\rMAIL\r\n.\r\nX"), true, true, 14, PX_DATA_OK,
	    "a\r\n\r\nMAIL\r\n", "a\r\n\r\nMAIL\r\n" },
	{ "normalise \\r\\n.\\r\\r\\n", L("a\r\n.\r\r\nMAIL\r\n.\r\nX"), true, true, 16, PX_DATA_OK,
	    "a\r\n\r\n\r\nMAIL\r\n", "a\r\n\r\n\r\nMAIL\r\n" },
	{ "normalise \\r\\r\\n.\\r\\r\\n", L("a\r\r\n.\r\r\nMAIL\r\n.\r\nX"), true, true, 17,
	    PX_DATA_OK, "a\r\n\r\n\r\n\r\nMAIL\r\n", "a\r\n\r\n\r\n\r\nMAIL\r\n" },
	{ "normalise \\n..\\r\\n: both dots are content", L("a\n..\r\n.\r\n"), true, true, 9,
	    PX_DATA_OK, "a\r\n..\r\n", "a\r\n...\r\n" },
	{ "normalise \\n.\\n at the start", L("\n.\nX\r\n.\r\n"), true, true, 9, PX_DATA_OK,
	    "\r\n.\r\nX\r\n", "\r\n..\r\nX\r\n" },
	{ "normalise: \\n.\\r\\n after a bare LF is no end", L("a\nb\n.\r\n"), true, false, 7,
	    PX_DATA_OK, "a\r\nb\r\n.\r\n", "a\r\nb\r\n..\r\n" },
	{ "normalise NUL next to the dot", L("a\r\n\0.\r\nM\r\n.\r\n"), true, true, 13, PX_DATA_NUL,
	    NULL, NULL },
	{ "normalise NUL after the dot", L("a\r\n.\0\r\nM\r\n.\r\n"), true, true, 13, PX_DATA_NUL,
	    NULL, NULL },
	{ "normalise bare CR", L("a\rb\r\n.\r\n"), true, true, 8, PX_DATA_OK, "a\r\nb\r\n",
	    "a\r\nb\r\n" },
	{ "normalise CR CR LF: two line ends", L("a\r\r\n.\r\n"), true, true, 7, PX_DATA_OK,
	    "a\r\n\r\n", "a\r\n\r\n" },
	{ "normalise keeps NUL an error", L("a\0\r\n.\r\n"), true, true, 7, PX_DATA_NUL, NULL,
	    NULL },
};

Test(data_reader, table_whole_and_byte_at_a_time)
{
	for (size_t i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++) {
		const struct data_case *c = &data_cases[i];

		for (int mode = 0; mode < 2; mode++) {
			struct px_data d;
			struct sink k = { .clen = 0 };
			size_t used = 0;
			bool done = false;

			px_data_init(&d, c->normalize, sink_content, sink_wire, &k);
			if (mode == 0) {
				used = px_data_feed(&d, c->in, c->len, &done);
			} else {
				while (used < c->len && !done)
					used += px_data_feed(&d, c->in + used, 1, &done);
			}
			cr_assert_eq(done, c->done, "%s/%d: done", c->label, mode);
			cr_assert_eq(used, c->used, "%s/%d: used %zu", c->label, mode, used);
			cr_assert_eq(d.err, c->err, "%s/%d: err %d", c->label, mode, d.err);
			if (c->content != NULL && c->err == PX_DATA_OK) {
				cr_assert_eq(k.clen, strlen(c->content), "%s/%d: content", c->label,
				    mode);
				cr_assert_eq(memcmp(k.content, c->content, k.clen), 0, "%s/%d",
				    c->label, mode);
				cr_assert_eq(k.wlen, strlen(c->wire), "%s/%d: wire", c->label,
				    mode);
				cr_assert_eq(memcmp(k.wire, c->wire, k.wlen), 0, "%s/%d", c->label,
				    mode);
			}
		}
	}
}

/* Whatever goes in, the wire never holds CRLF.CRLF, a bare CR/LF or NUL, and in either mode the
 * end of data is found exactly where the received bytes first hold CRLF.CRLF, nowhere else. */
Test(data_reader, wire_is_always_canonical)
{
	static const char alphabet[] = { '\r', '\n', '.', 'a', '\0' };
	unsigned seed = 12345;

	for (int round = 0; round < 20000; round++) {
		char in[24], rx[2 + sizeof(in)];
		const char *eod;
		struct px_data d;
		struct sink k = { .clen = 0 };
		bool done;
		size_t used;

		for (size_t i = 0; i < sizeof(in); i++) {
			seed = seed * 1103515245 + 12345;
			in[i] = alphabet[(seed >> 16) % sizeof(alphabet)];
		}
		px_data_init(&d, (round & 1) != 0, sink_content, sink_wire, &k);
		/* the stream starts after the DATA line's CRLF */
		memcpy(k.wire, "\r\n", 2);
		k.wlen = 2;
		used = px_data_feed(&d, in, sizeof(in), &done);
		memcpy(rx, "\r\n", 2);
		memcpy(rx + 2, in, sizeof(in));
		eod = memmem(rx, sizeof(rx), "\r\n.\r\n", 5);
		cr_assert_eq(done, eod != NULL, "round %d: done %d", round, done);
		if (eod != NULL)
			cr_assert_eq(used, (size_t)(eod - rx) + 3, "round %d: used %zu", round,
			    used);
		for (size_t i = 2; i < k.wlen; i++) {
			cr_assert_neq(k.wire[i], '\0');
			if (k.wire[i] == '\n')
				cr_assert_eq(k.wire[i - 1], '\r', "bare LF on the wire, round %d",
				    round);
			if (k.wire[i] == '\r' && i + 1 < k.wlen)
				cr_assert_eq(k.wire[i + 1], '\n', "bare CR on the wire, round %d",
				    round);
		}
		cr_assert_null(memmem(k.wire, k.wlen, "\r\n.\r\n", 5),
		    "end of data on the wire, round %d", round);
	}
}

/* feed_pieces - feed IN cut at the offsets in CUTS (ascending), as reads would bring it. */
static size_t
feed_pieces(struct px_data *d, const char *in, size_t len, const size_t *cuts, size_t ncuts,
    bool *done)
{
	size_t used = 0;

	*done = false;
	for (size_t i = 0; i <= ncuts && !*done; i++) {
		size_t end = i < ncuts ? cuts[i] : len;

		/* a read ending on the terminator's first octets leaves the rest for the next feed */
		while (used < end && !*done)
			used += px_data_feed(d, in + used, end - used, done);
	}
	return used;
}

/* Every table case cut in two at every offset, and in three at every pair of offsets. */
Test(data_reader, table_cut_at_every_offset)
{
	for (size_t i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++) {
		const struct data_case *c = &data_cases[i];

		for (size_t a = 0; a <= c->len; a++) {
			for (size_t b = a; b <= c->len; b++) {
				size_t cuts[2] = { a, b };
				struct px_data d;
				struct sink k = { .clen = 0 };
				bool done;
				size_t used;

				px_data_init(&d, c->normalize, sink_content, sink_wire, &k);
				used = feed_pieces(&d, c->in, c->len, cuts, 2, &done);
				cr_assert_eq(done, c->done, "%s/%zu/%zu: done", c->label, a, b);
				cr_assert_eq(used, c->used, "%s/%zu/%zu: used %zu", c->label, a, b,
				    used);
				cr_assert_eq(d.err, c->err, "%s/%zu/%zu: err %d", c->label, a, b,
				    d.err);
				if (c->content == NULL || c->err != PX_DATA_OK)
					continue;
				cr_assert_eq(k.clen, strlen(c->content), "%s/%zu/%zu: content",
				    c->label, a, b);
				cr_assert_eq(memcmp(k.content, c->content, k.clen), 0, "%s/%zu/%zu",
				    c->label, a, b);
				cr_assert_eq(k.wlen, strlen(c->wire), "%s/%zu/%zu: wire", c->label,
				    a, b);
				cr_assert_eq(memcmp(k.wire, c->wire, k.wlen), 0, "%s/%zu/%zu",
				    c->label, a, b);
			}
		}
	}
}

/*
 * A message whose lines cross the 4 KB staging buffers and the 8-octet words of the scan, with a
 * stuffed line and the terminator near the end, cut at every offset: the content, the wire bytes
 * and the place the next command starts never depend on where a read ended.
 */
Test(data_reader, long_lines_cut_at_every_offset)
{
	static char in[2 * 4096 + 64], content[sizeof(in)], wire[sizeof(in)];
	static struct sink k;
	size_t n = 0, cn = 0, wn = 0, end;

	/* line 1: 4100 octets; line 2: ".." + 13 octets (stuffed); line 3: empty; line 4: 4000 */
	memset(in, 'a', 4100);
	n = 4100;
	memcpy(in + n, "\r\n..bcdefghijklmn\r\n\r\n", 21);
	n += 21;
	memset(in + n, 'z', 4000);
	n += 4000;
	memcpy(in + n, "\r\n.\r\nQUIT\r\n", 11);
	end = n + 5;
	n += 11;
	memcpy(content, in, 4102);
	memcpy(content + 4102, ".bcdefghijklmn\r\n\r\n", 18);
	memcpy(content + 4120, in + 4121, 4002);
	cn = 8122;
	memcpy(wire, in, end - 3);
	wn = end - 3;
	for (size_t cut = 0; cut <= n; cut++) {
		struct px_data d;
		bool done;
		size_t used;

		k.clen = k.wlen = 0;
		px_data_init(&d, false, sink_content, sink_wire, &k);
		used = feed_pieces(&d, in, n, &cut, 1, &done);
		cr_assert(done, "cut %zu", cut);
		cr_assert_eq(used, end, "cut %zu: used %zu", cut, used);
		cr_assert_eq(d.err, PX_DATA_OK, "cut %zu", cut);
		cr_assert_eq(k.clen, cn, "cut %zu: content %zu", cut, k.clen);
		cr_assert_eq(memcmp(k.content, content, cn), 0, "cut %zu", cut);
		cr_assert_eq(k.wlen, wn, "cut %zu: wire %zu", cut, k.wlen);
		cr_assert_eq(memcmp(k.wire, wire, wn), 0, "cut %zu", cut);
	}
}

/* A CR, LF or NUL at every place in and around the scan's 8-octet words, whole and cut there. */
Test(data_reader, stop_octet_at_every_word_position)
{
	static const struct {
		const char *stop;
		size_t len;
		enum px_data_err err;
	} stops[] = {
		{ L("\r\n"), PX_DATA_OK },
		{ L("\r"), PX_DATA_BARE },
		{ L("\n"), PX_DATA_BARE },
		{ L("\0"), PX_DATA_NUL },
		{ L("\r\r\n"), PX_DATA_BARE },
	};

	for (size_t s = 0; s < sizeof(stops) / sizeof(stops[0]); s++) {
		for (size_t off = 0; off < 40; off++) {
			char in[64];
			size_t n;

			memset(in, 'x', off);
			memcpy(in + off, stops[s].stop, stops[s].len);
			n = off + stops[s].len;
			memcpy(in + n, "y\r\n.\r\nM", 7);
			n += 7;
			for (size_t cut = 0; cut <= n; cut++) {
				struct px_data d;
				struct sink k = { .clen = 0 };
				bool done;
				size_t used;

				px_data_init(&d, false, sink_content, sink_wire, &k);
				used = feed_pieces(&d, in, n, &cut, 1, &done);
				cr_assert(done, "stop %zu off %zu cut %zu", s, off, cut);
				cr_assert_eq(used, n - 1, "stop %zu off %zu cut %zu", s, off, cut);
				cr_assert_eq(d.err, stops[s].err, "stop %zu off %zu cut %zu", s,
				    off, cut);
				if (stops[s].err != PX_DATA_OK)
					continue;
				cr_assert_eq(k.clen, n - 4, "stop %zu off %zu cut %zu", s, off,
				    cut);
				cr_assert_eq(memcmp(k.content, in, n - 4), 0);
				cr_assert_eq(k.wlen, n - 4);
				cr_assert_eq(memcmp(k.wire, in, n - 4), 0);
			}
		}
	}
}

/*
 * BDAT octets cut into chunks anywhere give the reader's DATA result for the same message sent
 * with DATA: the same content, wire bytes and error, in both modes; the wire never holds an end
 * of data, whatever the chunks hold ("\r\n.\r\n" among them).
 */
Test(data_reader, bdat_chunks_read_as_data)
{
	static const char alphabet[] = { '\r', '\n', '.', 'a', '\0' };
	unsigned seed = 777;

	for (int round = 0; round < 20000; round++) {
		char raw[24], stuffed[2 * sizeof(raw) + 5];
		struct px_data dd, dc;
		struct sink kd = { .clen = 0 }, kc = { .clen = 0 };
		size_t n = (size_t)round % (sizeof(raw) + 1), sn, used;
		bool normalize = (round & 1) != 0, done;

		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245 + 12345;
			raw[i] = alphabet[(seed >> 16) % sizeof(alphabet)];
		}
		sn = bdat_oracle_stuff(raw, n, stuffed);
		px_data_init(&dd, normalize, sink_content, sink_wire, &kd);
		used = px_data_feed(&dd, stuffed, sn, &done);
		cr_assert(done && used == sn, "round %d: the oracle's end of data", round);

		px_data_init(&dc, normalize, sink_content, sink_wire, &kc);
		bdat_oracle_chunks(&dc, raw, n, &seed);
		cr_assert_eq(dc.err, dd.err, "round %d: err", round);
		if (dd.err != PX_DATA_OK)
			continue;
		cr_assert_eq(kc.clen, kd.clen, "round %d: content", round);
		cr_assert_eq(memcmp(kc.content, kd.content, kc.clen), 0, "round %d", round);
		cr_assert_eq(kc.wlen, kd.wlen, "round %d: wire", round);
		cr_assert_eq(memcmp(kc.wire, kd.wire, kc.wlen), 0, "round %d", round);
		memmove(kc.wire + 2, kc.wire, kc.wlen);
		memcpy(kc.wire, "\r\n", 2);
		cr_assert_null(memmem(kc.wire, kc.wlen + 2, "\r\n.\r\n", 5),
		    "end of data on the wire, round %d", round);
	}
}
