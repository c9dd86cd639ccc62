/*
 * test_scan.c - content scanning (scan.c, scan_clamd.c, scan_rspamd.c) against fake scanners in a
 * thread: a clamd on a unix socket that checks the INSTREAM framing and the bytes, and an rspamd
 * HTTP server on loopback that reads the chunked body. Every answer maps to its verdict and edits;
 * malformed, oversized, refused and stalled answers are failures (451 4.3.0, or nothing under
 * scan_failure = accept); a failed scanner is not asked again during its back-off. The parsers
 * alone, table-driven.
 */
#include "config.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "policy.h"
#include "scan.h"
#include "scan_clamd.h"
#include "scan_rspamd.h"

#define MSG_WANT "Subject: hi\r\nX-Virus-Status: Clean\r\n\r\nbody line\r\n"

/* ---- the fake scanners ---- */

enum fake_mode {
	FAKE_REPLY,
	FAKE_CLOSE,
	FAKE_STALL
};

struct fake {
	int lfd;
	enum fake_mode mode;
	const char *reply; /* clamd: the reply without its NUL; rspamd: the JSON */
	size_t reply_len; /* 0: strlen(reply) */
	int status; /* rspamd: HTTP status */
	bool http;
	char got[4096]; /* clamd: the message as reassembled from the chunks */
	size_t got_len;
	bool framing_ok;
	int accepted;
	char path[108];
	int port;
	pthread_t thread;
};

static bool
read_full(int fd, void *buf, size_t n)
{
	char *p = buf;

	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r <= 0)
			return false;
		p += r;
		n -= (size_t)r;
	}
	return true;
}

/* fake_clamd_read - "zINSTREAM\0", then chunks until the empty one; false on bad framing. */
static bool
fake_clamd_read(struct fake *f, int fd)
{
	char cmd[10];
	uint32_t be;

	if (!read_full(fd, cmd, sizeof(cmd)) || memcmp(cmd, "zINSTREAM", 10) != 0)
		return false;
	for (;;) {
		uint32_t n;

		if (!read_full(fd, &be, 4))
			return false;
		if ((n = ntohl(be)) == 0)
			return true;
		if (n > sizeof(f->got) - f->got_len || !read_full(fd, f->got + f->got_len, n))
			return false;
		f->got_len += n;
	}
}

/* fake_http_read - the request up to the end of its chunked body: the envelope, our
 * Authentication-Results and the message read back (one chunk) in it. */
static bool
fake_http_read(int fd)
{
	char buf[8192];
	size_t len = 0;

	for (;;) {
		ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (r <= 0)
			return false;
		len += (size_t)r;
		buf[len] = '\0';
		if (strstr(buf, "\r\n0\r\n\r\n") != NULL)
			return strstr(buf, "POST /checkv2 ") == buf &&
			    strstr(buf, "\r\nIP: 192.0.2.1\r\n") != NULL &&
			    strstr(buf, "\r\nRcpt: b@example.net\r\n") != NULL &&
			    strstr(buf,
				"\r\nAuthentication-Results: mx.test; spf=pass "
				"smtp.mailfrom=x\r\n") != NULL &&
			    strstr(buf, "\r\n" MSG_WANT "\r\n0\r\n\r\n") != NULL;
		if (len == sizeof(buf) - 1)
			return false;
	}
}

static void *
fake_run(void *arg)
{
	struct fake *f = arg;
	int fd;

	while ((fd = accept(f->lfd, NULL, NULL)) >= 0) {
		char junk[256];
		size_t n = f->reply_len ? f->reply_len : (f->reply ? strlen(f->reply) : 0);

		f->accepted++;
		f->framing_ok = f->http ? fake_http_read(fd) : fake_clamd_read(f, fd);
		if (f->mode == FAKE_REPLY && f->http) {
			char head[200];
			int h = snprintf(head, sizeof(head),
			    "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
			    f->status, n);
			(void)!send(fd, head, (size_t)h, MSG_NOSIGNAL);
			(void)!send(fd, f->reply, n, MSG_NOSIGNAL);
		} else if (f->mode == FAKE_REPLY) {
			(void)!send(fd, f->reply, n, MSG_NOSIGNAL);
			(void)!send(fd, "", 1, MSG_NOSIGNAL);
		}
		if (f->mode == FAKE_STALL)
			while (read(fd, junk, sizeof(junk)) > 0) /* until the client gives up */
				;
		close(fd);
	}
	return NULL;
}

static void
fake_start(struct fake *f)
{
	if (f->http) {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		socklen_t len = sizeof(sin);

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		f->lfd = socket(AF_INET, SOCK_STREAM, 0);
		cr_assert(bind(f->lfd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
		getsockname(f->lfd, (struct sockaddr *)&sin, &len);
		f->port = ntohs(sin.sin_port);
	} else {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };

		snprintf(f->path, sizeof(f->path), "/tmp/moat-test-clamd.%d.sock", (int)getpid());
		unlink(f->path);
		memcpy(sun.sun_path, f->path, strlen(f->path) + 1);
		f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
		cr_assert(bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	}
	cr_assert(listen(f->lfd, 8) == 0);
	pthread_create(&f->thread, NULL, fake_run, f);
}

static void
fake_stop(struct fake *f)
{
	shutdown(f->lfd, SHUT_RDWR);
	pthread_join(f->thread, NULL);
	close(f->lfd);
	if (!f->http)
		unlink(f->path);
}

/* ---- one message through the scanners ---- */

/* msg_read - the front-end's copy of the message: MSG_WANT (a moat_msg_read_fn). */
static ssize_t
msg_read(void *arg, uint64_t off, char *out, size_t len)
{
	size_t total = strlen(MSG_WANT);

	(void)arg;
	if (off >= total)
		return 0;
	if (len > total - off)
		len = total - (size_t)off;
	memcpy(out, MSG_WANT + off, len);
	return (ssize_t)len;
}

struct result {
	struct moat_verdict v;
	struct moat_hdr_edit edits[MOAT_SCAN_EDITS_MAX];
	size_t n;
	long ms;
};

static void
scan_message(struct moat_scan_health *h, const char *const *ov_text, size_t nov, struct result *r)
{
	struct moat_conf_override ov[8];
	struct moat_conf *conf;
	char err[256], copy[8][200];
	const char *rcpt[] = { "b@example.net" };
	struct moat_rspamd_env env = { .ip = "192.0.2.1",
		.helo = "client.example",
		.from = "a@x",
		.rcpt = rcpt,
		.nrcpt = 1,
		.queue_id = "TEST",
		.authres = "mx.test; spf=pass smtp.mailfrom=x" };
	struct moat_scan *sc;
	struct timespec t0, t1;

	for (size_t i = 0; i < nov; i++) {
		snprintf(copy[i], sizeof(copy[i]), "%s", ov_text[i]);
		cr_assert(moat_conf_parse_override(copy[i], &ov[i]) == 0);
	}
	conf = moat_conf_load(NULL, ov, nov, err, sizeof(err));
	cr_assert_not_null(conf, "%s", err);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	sc = moat_scan_begin(h, conf, "TEST");
	cr_assert_not_null(sc);
	moat_scan_header(sc, "Subject: hi", 11);
	moat_scan_header(sc, "X-Virus-Status: Clean", 21);
	moat_scan_eoh(sc);
	moat_scan_body(sc, "body line\r\n", 11);
	moat_scan_end_data(sc);
	moat_scan_finish(sc, &env, msg_read, NULL, &r->v, r->edits, &r->n);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	r->ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	moat_scan_free(sc);
	moat_conf_unref(conf);
}

static void
result_free(struct result *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->edits[i].name);
		free(r->edits[i].value);
	}
}

struct case_ {
	const char *label;
	bool http;
	enum fake_mode mode;
	const char *reply;
	size_t reply_len;
	int status;
	const char *option; /* one more override, or NULL */
	enum moat_action action;
	unsigned code;
	const char *text; /* the verdict's text, or NULL */
	const char *edits; /* "OP name index value;..." of the edits, in order */
};

static char big[300 * 1024];

static void
edits_string(const struct result *r, char *out, size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < r->n; i++)
		used += (size_t)snprintf(out + used, len - used, "%s %s %u %s;",
		    r->edits[i].op == MOAT_HDR_DELETE ? "DEL" : "INS", r->edits[i].name,
		    r->edits[i].index, r->edits[i].value ? r->edits[i].value : "-");
}

static void
run_case(const struct case_ *c)
{
	struct fake f = { .http = c->http,
		.mode = c->mode,
		.reply = c->reply,
		.reply_len = c->reply_len,
		.status = c->status ? c->status : 200 };
	struct moat_scan_health *h = moat_scan_health_new();
	char addr[160], ed[2048];
	const char *ov[3];
	size_t nov = 0;
	struct result r;

	fake_start(&f);
	if (c->http)
		snprintf(addr, sizeof(addr), "scan_rspamd=127.0.0.1:%d", f.port);
	else
		snprintf(addr, sizeof(addr), "scan_clamd=unix:%s", f.path);
	ov[nov++] = addr;
	ov[nov++] = "scan_timeout=400ms";
	if (c->option)
		ov[nov++] = c->option;
	scan_message(h, ov, nov, &r);
	fake_stop(&f);
	cr_assert_eq(f.accepted, 1, "%s: one connection", c->label);
	cr_assert(f.framing_ok, "%s: the request as sent", c->label);
	if (!c->http) {
		cr_assert_eq(f.got_len, strlen(MSG_WANT), "%s", c->label);
		cr_assert(memcmp(f.got, MSG_WANT, f.got_len) == 0, "%s: the bytes", c->label);
	}
	cr_assert_eq(r.v.action, c->action, "%s: action %d", c->label, r.v.action);
	cr_assert_eq(r.v.code, c->code, "%s: code %u", c->label, r.v.code);
	if (c->text)
		cr_assert_str_eq(r.v.text, c->text, "%s", c->label);
	edits_string(&r, ed, sizeof(ed));
	cr_assert_str_eq(ed, c->edits ? c->edits : "", "%s", c->label);
	cr_assert_lt(r.ms, 3000, "%s: within the timeout's bound (%ld ms)", c->label, r.ms);
	result_free(&r);
	moat_scan_health_free(h);
}

Test(scan, clamd_answers)
{
	static const struct case_ cases[] = {
		{ .label = "clean", .reply = "stream: OK", .edits = "DEL X-Virus-Status 1 -;" },
		{ .label = "virus, reject",
		    .reply = "stream: Test.Sig FOUND",
		    .action = MOAT_REJECT,
		    .code = 554,
		    .text = "Virus found: Test.Sig",
		    .edits = "DEL X-Virus-Status 1 -;" },
		{ .label = "virus, quarantine",
		    .reply = "stream: Test.Sig FOUND",
		    .option = "scan_virus_action=quarantine",
		    .action = MOAT_QUARANTINE,
		    .edits = "DEL X-Virus-Status 1 -;" },
		{ .label = "virus, tag",
		    .reply = "stream: Test.Sig FOUND",
		    .option = "scan_virus_action=tag",
		    .edits = "DEL X-Virus-Status 1 -;INS X-Virus-Status 0 Infected (Test.Sig);" },
		{ .label = "ERROR reply",
		    .reply = "INSTREAM size limit exceeded. ERROR",
		    .action = MOAT_TEMPFAIL,
		    .code = 451,
		    .text = "Content scanner unavailable, try again later",
		    .edits = "DEL X-Virus-Status 1 -;" },
		{ .label = "malformed reply",
		    .reply = "hello there",
		    .action = MOAT_TEMPFAIL,
		    .code = 451,
		    .edits = "DEL X-Virus-Status 1 -;" },
		{ .label = "name with a space",
		    .reply = "stream: Bad Name FOUND",
		    .action = MOAT_TEMPFAIL,
		    .code = 451,
		    .edits = "DEL X-Virus-Status 1 -;" },
		{ .label = "reply past 1 KB",
		    .reply = big,
		    .reply_len = 2000,
		    .action = MOAT_TEMPFAIL,
		    .code = 451,
		    .edits = "DEL X-Virus-Status 1 -;" },
		{ .label = "closed without a reply",
		    .mode = FAKE_CLOSE,
		    .action = MOAT_TEMPFAIL,
		    .code = 451,
		    .edits = "DEL X-Virus-Status 1 -;" },
		{ .label = "stalled",
		    .mode = FAKE_STALL,
		    .action = MOAT_TEMPFAIL,
		    .code = 451,
		    .edits = "DEL X-Virus-Status 1 -;" },
		{ .label = "malformed, scan_failure=accept",
		    .reply = "nonsense",
		    .option = "scan_failure=accept",
		    .edits = "DEL X-Virus-Status 1 -;" },
	};

	memset(big, 'A', sizeof(big));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
}

Test(scan, rspamd_answers)
{
	static const struct case_ cases[] = {
		{ .label = "no action",
		    .http = true,
		    .reply = "{\"action\":\"no action\",\"score\":1.5,\"symbols\":{}}" },
		{ .label = "reject",
		    .http = true,
		    .reply = "{\"action\":\"reject\",\"score\":20,\"required_score\":15}",
		    .action = MOAT_REJECT,
		    .code = 550,
		    .text = "Message rejected as spam" },
		{ .label = "soft reject",
		    .http = true,
		    .reply = "{\"action\":\"soft reject\",\"score\":0}",
		    .action = MOAT_TEMPFAIL,
		    .code = 451,
		    .text = "Try again later" },
		{ .label = "greylist",
		    .http = true,
		    .reply = "{\"action\":\"greylist\",\"score\":4.2}",
		    .action = MOAT_TEMPFAIL,
		    .code = 451,
		    .text = "Greylisted, try again later" },
		{ .label = "add header",
		    .http = true,
		    .reply = "{\"action\":\"add header\",\"score\":7,\"required_score\":15,"
			     "\"symbols\":{\"A\":{},\"B\":{}}}",
		    .edits = "INS X-Spam-Status 0 Yes, score=7.00 required=15.00;INS X-Spam-Score "
			     "0 7.00;" },
		{ .label = "rewrite subject",
		    .http = true,
		    .reply =
			"{\"action\":\"rewrite subject\",\"score\":9,\"subject\":\"[SPAM] hi\"}",
		    .edits = "DEL Subject 1 -;INS Subject 0 [SPAM] hi;" },
		{ .label = "rewrite subject without a subject",
		    .http = true,
		    .reply = "{\"action\":\"rewrite subject\",\"score\":9}",
		    .action = MOAT_TEMPFAIL,
		    .code = 451 },
		{ .label = "unknown action",
		    .http = true,
		    .reply = "{\"action\":\"discard\",\"score\":9}",
		    .action = MOAT_TEMPFAIL,
		    .code = 451 },
		{ .label = "no score",
		    .http = true,
		    .reply = "{\"action\":\"reject\"}",
		    .action = MOAT_TEMPFAIL,
		    .code = 451 },
		{ .label = "not JSON",
		    .http = true,
		    .reply = "<html>oops</html>",
		    .action = MOAT_TEMPFAIL,
		    .code = 451 },
		{ .label = "two objects",
		    .http = true,
		    .reply = "{\"action\":\"no action\",\"score\":0}{}",
		    .action = MOAT_TEMPFAIL,
		    .code = 451 },
		{ .label = "HTTP 500",
		    .http = true,
		    .status = 500,
		    .reply = "{\"action\":\"no action\",\"score\":0}",
		    .action = MOAT_TEMPFAIL,
		    .code = 451 },
		{ .label = "answer past 256 KB",
		    .http = true,
		    .reply = big,
		    .reply_len = sizeof(big),
		    .action = MOAT_TEMPFAIL,
		    .code = 451 },
		{ .label = "closed without an answer",
		    .http = true,
		    .mode = FAKE_CLOSE,
		    .action = MOAT_TEMPFAIL,
		    .code = 451 },
		{ .label = "stalled",
		    .http = true,
		    .mode = FAKE_STALL,
		    .action = MOAT_TEMPFAIL,
		    .code = 451 },
		{ .label = "not JSON, scan_failure=accept",
		    .http = true,
		    .reply = "nope",
		    .option = "scan_failure=accept" },
	};

	memset(big, 'A', sizeof(big));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
}

Test(scan, a_failed_scanner_is_not_asked_during_its_back_off)
{
	struct fake f = { .mode = FAKE_CLOSE };
	struct moat_scan_health *h = moat_scan_health_new();
	char addr[160];
	const char *ov[2] = { addr, "scan_timeout=400ms" };
	struct result r;

	fake_start(&f);
	snprintf(addr, sizeof(addr), "scan_clamd=unix:%s", f.path);
	scan_message(h, ov, 2, &r);
	cr_assert_eq(r.v.code, 451);
	result_free(&r);
	scan_message(h, ov, 2, &r); /* within the first second */
	cr_assert_eq(r.v.code, 451);
	result_free(&r);
	fake_stop(&f);
	cr_assert_eq(f.accepted, 1, "the second message did not connect");
	moat_scan_health_free(h);
}

Test(scan, rspamd_without_a_copy_of_the_message_is_a_failure)
{
	struct fake f = { .http = true, .reply = "{\"action\":\"no action\",\"score\":0}" };
	struct moat_scan_health *h = moat_scan_health_new();
	struct moat_rspamd_env env = { .ip = "192.0.2.1" };
	struct moat_conf_override ov[2];
	char o1[160], o2[] = "scan_failure=tempfail", err[256];
	struct moat_conf *conf;
	struct moat_scan *sc;
	struct result r;

	fake_start(&f);
	snprintf(o1, sizeof(o1), "scan_rspamd=127.0.0.1:%d", f.port);
	cr_assert(moat_conf_parse_override(o1, &ov[0]) == 0);
	cr_assert(moat_conf_parse_override(o2, &ov[1]) == 0);
	cr_assert_not_null(conf = moat_conf_load(NULL, ov, 2, err, sizeof(err)), "%s", err);
	cr_assert_not_null(sc = moat_scan_begin(h, conf, "TEST"));
	moat_scan_eoh(sc);
	moat_scan_finish(sc, &env, NULL, NULL, &r.v, r.edits, &r.n);
	cr_assert_eq(r.v.action, MOAT_TEMPFAIL);
	cr_assert_eq(r.v.code, 451);
	cr_assert_str_eq(r.v.status, "4.3.0");
	cr_assert_eq(r.n, 0);
	moat_scan_free(sc);
	moat_conf_unref(conf);
	fake_stop(&f);
	cr_assert_eq(f.accepted, 0, "rspamd was not asked");
	moat_scan_health_free(h);
}

Test(scan, clamd_parse)
{
	static const struct {
		const char *label, *reply;
		int rc;
		bool infected;
		const char *virus;
	} cases[] = {
		{ "clean", "stream: OK", 0, false, "" },
		{ "virus", "stream: Win.Test.EICAR_HDB-1 FOUND", 0, true, "Win.Test.EICAR_HDB-1" },
		{ "error", "stream: lstat() failed. ERROR", -1, false, "" },
		{ "empty", "", -1, false, "" },
		{ "no name", "stream:  FOUND", -1, false, "" },
		{ "prefix only", "stream: ", -1, false, "" },
		{ "other file", "/tmp/x: OK", -1, false, "" },
		{ "control character", "stream: A\tB FOUND", -1, false, "" },
		{ "lower case", "stream: ok", -1, false, "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct moat_clamd_result res;
		char err[200];

		cr_assert_eq(moat_clamd_parse(cases[i].reply, strlen(cases[i].reply), &res, err,
				 sizeof(err)),
		    cases[i].rc, "%s", cases[i].label);
		cr_assert_eq(res.infected, cases[i].infected, "%s", cases[i].label);
		cr_assert_str_eq(res.virus, cases[i].virus, "%s", cases[i].label);
	}
}

Test(scan, rspamd_parse)
{
	static const struct {
		const char *label, *json;
		int rc;
		enum moat_rspamd_action action;
		const char *symbols;
	} cases[] = {
		{ "all fields",
		    "{\"is_skipped\":false,\"score\":6.2,\"required_score\":15.0,\"action\":\"add "
		    "header\",\"symbols\":{\"R_SPF_NA\":{\"score\":0},\"MIME_GOOD\":{}}}",
		    0, MOAT_RSPAMD_ADD_HEADER, "R_SPF_NA,MIME_GOOD" },
		{ "integer score", "{\"action\":\"greylist\",\"score\":4}", 0, MOAT_RSPAMD_GREYLIST,
		    "" },
		{ "string score", "{\"action\":\"greylist\",\"score\":\"4\"}", -1,
		    MOAT_RSPAMD_NO_ACTION, "" },
		{ "array", "[1,2]", -1, MOAT_RSPAMD_NO_ACTION, "" },
		{ "action not a string", "{\"action\":1,\"score\":4}", -1, MOAT_RSPAMD_NO_ACTION,
		    "" },
		{ "truncated", "{\"action\":\"reject\",\"score\":4", -1, MOAT_RSPAMD_NO_ACTION,
		    "" },
		{ "subject with a newline",
		    "{\"action\":\"rewrite subject\",\"score\":9,\"subject\":\"a\\r\\nBcc: x\"}",
		    -1, MOAT_RSPAMD_NO_ACTION, "" },
		{ "subject with a NUL",
		    "{\"action\":\"rewrite subject\",\"score\":9,\"subject\":\"a\\u0000b\"}", -1,
		    MOAT_RSPAMD_NO_ACTION, "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct moat_rspamd_result res;
		char err[200];
		int rc =
		    moat_rspamd_parse(cases[i].json, strlen(cases[i].json), &res, err, sizeof(err));

		cr_assert_eq(rc, cases[i].rc, "%s: %s", cases[i].label, err);
		if (rc == 0) {
			cr_assert_eq(res.action, cases[i].action, "%s", cases[i].label);
			cr_assert_str_eq(res.symbols, cases[i].symbols, "%s", cases[i].label);
		}
	}
}
