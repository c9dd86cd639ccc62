/*
 * test_dns.c - the DNS layer: query-name checks, the in-process fixture, and the libunbound
 * backend against nsd on loopback (started through tests/lib/dns.sh on 127.0.0.1:15320, 15323
 * and 15500, one port per suite) and against a port where nothing answers.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "dns.h"
#include "dns_cache.h"

#define NSD_PORT "15320"
#define NSD_THREADS_PORT "15323"
#define NSD_CACHE_PORT "15500"
#define DEAD_PORT "15321"
#define SILENT_PORT 15322 /* a bound UDP socket that never answers */

/* --- query names --- */

struct name_case {
	const char *label;
	const char *name;
	bool valid;
};

static const struct name_case name_cases[] = {
	{ "plain", "example.com", true },
	{ "trailing dot", "example.com.", true },
	{ "single label", "localhost", true },
	{ "63-byte label", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
	    true },
	{ "64-byte label", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
	    false },
	{ "empty label", "a..com", false },
	{ "leading dot", ".com", false },
	{ "empty", "", false },
	{ "root only", ".", false },
	{ "space and percent (SPF macros)", "macro%percent  space.example.com", true },
	{ "8-bit byte", "\xc3\xa9t\xc3\xa9.example.com", false },
	{ "control byte", "a\tb.example.com", false },
	{ "DEL", "a\x7f.example.com", false },
};

Test(dns_name, table)
{
	size_t i;

	for (i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++)
		cr_expect_eq(moat_dns_name_valid(name_cases[i].name), name_cases[i].valid, "%s",
		    name_cases[i].label);
}

Test(dns_name, length_253_and_254)
{
	char name[300];
	size_t i;

	/* 4 labels of 63 + 3 dots = 255; trim to exactly 253 and 254 */
	for (i = 0; i < 255; i++)
		name[i] = (i % 64 == 63) ? '.' : 'a';
	name[253] = '\0';
	cr_expect(moat_dns_name_valid(name), "253 bytes is valid");
	name[253] = 'a';
	name[254] = '\0';
	cr_expect_not(moat_dns_name_valid(name), "254 bytes is not");
	cr_expect_not(moat_dns_name_valid(NULL));
}

/* --- fixture --- */

static struct moat_dns *
fixture(void)
{
	struct moat_dns *dns = moat_dns_new_fixture();
	static const unsigned char a1[4] = { 192, 0, 2, 1 }, a2[4] = { 192, 0, 2, 2 };

	cr_assert_not_null(dns);
	cr_assert_eq(moat_dns_fixture_add(dns, "Example.COM.", MOAT_DNS_A, 0, a1, 4), 0);
	cr_assert_eq(moat_dns_fixture_add(dns, "example.com", MOAT_DNS_A, 0, a2, 4), 0);
	cr_assert_eq(moat_dns_fixture_add(dns, "example.com", MOAT_DNS_TXT, 0, "v=spf1 -all", 11),
	    0);
	cr_assert_eq(moat_dns_fixture_add(dns, "example.com", MOAT_DNS_MX, 10, "mx.example.com",
			 14),
	    0);
	cr_assert_eq(moat_dns_fixture_add(dns, "alias.example.com", MOAT_DNS_CNAME, 0,
			 "example.com", 11),
	    0);
	cr_assert_eq(moat_dns_fixture_add(dns, "loop1.example.com", MOAT_DNS_CNAME, 0,
			 "loop2.example.com", 17),
	    0);
	cr_assert_eq(moat_dns_fixture_add(dns, "loop2.example.com", MOAT_DNS_CNAME, 0,
			 "LOOP1.example.com", 17),
	    0);
	cr_assert_eq(moat_dns_fixture_fail(dns, "slow.example.com", 0, MOAT_DNS_TEMPFAIL), 0);
	cr_assert_eq(moat_dns_fixture_add(dns, "half.example.com", MOAT_DNS_TXT, 0, "x", 1), 0);
	cr_assert_eq(moat_dns_fixture_fail(dns, "half.example.com", MOAT_DNS_A, MOAT_DNS_TEMPFAIL),
	    0);
	return dns;
}

struct fx_case {
	const char *label;
	const char *name;
	enum moat_dns_type type;
	enum moat_dns_status status;
	size_t n;
	const char *first; /* first record's data (text types) or NULL */
};

static const struct fx_case fx_cases[] = {
	{ "two A records, case-insensitive", "EXAMPLE.com", MOAT_DNS_A, MOAT_DNS_OK, 2, NULL },
	{ "TXT", "example.com.", MOAT_DNS_TXT, MOAT_DNS_OK, 1, "v=spf1 -all" },
	{ "MX", "example.com", MOAT_DNS_MX, MOAT_DNS_OK, 1, "mx.example.com" },
	{ "no AAAA: nodata", "example.com", MOAT_DNS_AAAA, MOAT_DNS_NODATA, 0, NULL },
	{ "unknown name: nxdomain", "nope.example.com", MOAT_DNS_A, MOAT_DNS_NXDOMAIN, 0, NULL },
	{ "CNAME followed", "alias.example.com", MOAT_DNS_TXT, MOAT_DNS_OK, 1, "v=spf1 -all" },
	{ "CNAME loop: tempfail", "loop1.example.com", MOAT_DNS_A, MOAT_DNS_TEMPFAIL, 0, NULL },
	{ "timeout for every type", "slow.example.com", MOAT_DNS_TXT, MOAT_DNS_TEMPFAIL, 0, NULL },
	{ "timeout for A only: A", "half.example.com", MOAT_DNS_A, MOAT_DNS_TEMPFAIL, 0, NULL },
	{ "timeout for A only: TXT", "half.example.com", MOAT_DNS_TXT, MOAT_DNS_OK, 1, "x" },
	{ "invalid name: permfail", "a..example.com", MOAT_DNS_A, MOAT_DNS_PERMFAIL, 0, NULL },
};

Test(dns_fixture, table)
{
	struct moat_dns *dns = fixture();
	size_t i;

	for (i = 0; i < sizeof(fx_cases) / sizeof(fx_cases[0]); i++) {
		const struct fx_case *c = &fx_cases[i];
		struct moat_dns_answer a;
		cr_expect_eq(moat_dns_query(dns, c->name, c->type, &a), c->status, "%s", c->label);
		cr_expect_eq(a.status, c->status, "%s", c->label);
		cr_expect_eq(a.n, c->n, "%s: %zu records", c->label, a.n);
		if (c->first != NULL && a.n > 0)
			cr_expect_str_eq(a.rr[0].data, c->first, "%s", c->label);
		moat_dns_answer_clear(&a);
		cr_expect_eq(a.n, 0u);
		cr_expect_null(a.rr);
	}
	/* every query but the invalid name reached the fixture */
	cr_expect_eq(moat_dns_fixture_queries(dns), sizeof(fx_cases) / sizeof(fx_cases[0]) - 1);
	moat_dns_free(dns);
	moat_dns_free(NULL);
}

Test(dns_fixture, bounds)
{
	struct moat_dns *dns = moat_dns_new_fixture();
	struct moat_dns_answer a;
	char *big = malloc(MOAT_DNS_MAX_TXT + 1);
	unsigned char ip[4] = { 10, 0, 0, 0 };
	int i;

	cr_assert_not_null(big);
	memset(big, 'x', MOAT_DNS_MAX_TXT + 1);
	moat_dns_fixture_add(dns, "huge.test", MOAT_DNS_TXT, 0, big, MOAT_DNS_MAX_TXT + 1);
	moat_dns_fixture_add(dns, "max.test", MOAT_DNS_TXT, 0, big, MOAT_DNS_MAX_TXT);
	for (i = 0; i < MOAT_DNS_MAX_RR + 1; i++) {
		ip[3] = (unsigned char)i;
		ip[2] = (unsigned char)(i >> 8);
		moat_dns_fixture_add(dns, "many.test", MOAT_DNS_A, 0, ip, 4);
		if (i < MOAT_DNS_MAX_RR)
			moat_dns_fixture_add(dns, "edge.test", MOAT_DNS_A, 0, ip, 4);
	}
	cr_expect_eq(moat_dns_query(dns, "huge.test", MOAT_DNS_TXT, &a), MOAT_DNS_PERMFAIL);
	cr_expect_eq(a.n, 0u);
	moat_dns_answer_clear(&a);
	cr_expect_eq(moat_dns_query(dns, "max.test", MOAT_DNS_TXT, &a), MOAT_DNS_OK);
	cr_expect_eq(a.rr[0].len, (size_t)MOAT_DNS_MAX_TXT);
	moat_dns_answer_clear(&a);
	cr_expect_eq(moat_dns_query(dns, "many.test", MOAT_DNS_A, &a), MOAT_DNS_PERMFAIL);
	moat_dns_answer_clear(&a);
	cr_expect_eq(moat_dns_query(dns, "edge.test", MOAT_DNS_A, &a), MOAT_DNS_OK);
	cr_expect_eq(a.n, (size_t)MOAT_DNS_MAX_RR);
	moat_dns_answer_clear(&a);
	free(big);
	moat_dns_free(dns);
}

Test(dns_fixture, not_a_fixture)
{
	char err[256];
	struct moat_dns *dns = moat_dns_new("127.0.0.1@" DEAD_PORT, 100, NULL, err, sizeof(err));

	cr_assert_not_null(dns, "%s", err);
	cr_expect_eq(moat_dns_fixture_add(dns, "a.test", MOAT_DNS_A, 0, "1234", 4), -1);
	cr_expect_eq(moat_dns_fixture_add(NULL, "a.test", MOAT_DNS_A, 0, "1234", 4), -1);
	moat_dns_free(dns);
}

/* --- unbound --- */

Test(dns_unbound, bad_resolver_is_refused)
{
	char err[256] = "";

	cr_expect_null(moat_dns_new("not an address", 1000, NULL, err, sizeof(err)));
	cr_expect(strstr(err, "dns_resolver not an address") != NULL, "err: %s", err);
	cr_expect_null(moat_dns_new("", 1000, "/nonexistent/anchor", err, sizeof(err)));
	cr_expect(strstr(err, "dns_dnssec_trust_anchor") != NULL, "err: %s", err);
}

Test(dns_unbound, dead_server_is_tempfail)
{
	char err[256];
	struct moat_dns *dns = moat_dns_new("127.0.0.1@" DEAD_PORT, 200, NULL, err, sizeof(err));
	struct moat_dns_answer a;

	cr_assert_not_null(dns, "%s", err);
	cr_expect_eq(moat_dns_query(dns, "spf.test", MOAT_DNS_TXT, &a), MOAT_DNS_TEMPFAIL);
	cr_expect_eq(a.n, 0u);
	moat_dns_answer_clear(&a);
	cr_expect_eq(moat_dns_query(dns, "bad..name", MOAT_DNS_TXT, &a), MOAT_DNS_PERMFAIL);
	moat_dns_answer_clear(&a);
	moat_dns_free(dns);
}

Test(dns_unbound, silent_server_hits_the_deadline)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(SILENT_PORT) };
	struct moat_dns_answer a;
	struct timespec t0, t1;
	char err[256];
	struct moat_dns *dns;
	double secs;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	cr_assert_geq(fd, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0, "bind 127.0.0.1:%d",
	    SILENT_PORT);
	dns = moat_dns_new("127.0.0.1@15322", 300, NULL, err, sizeof(err));
	cr_assert_not_null(dns, "%s", err);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_expect_eq(moat_dns_query(dns, "spf.test", MOAT_DNS_TXT, &a), MOAT_DNS_TEMPFAIL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	moat_dns_answer_clear(&a);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	/* the 300 ms deadline, not unbound's own retries (which take far longer), ended it */
	cr_expect(secs >= 0.25 && secs < 3.0, "took %.3f s", secs);
	moat_dns_free(dns);
	close(fd);
}

/* nsd on loopback, via tests/lib/dns.sh; its pid and directory kept for the fini. */
static char nsd_state[512];

/* nsd_start - nsd on PORT serving the test zones (Criterion may run suites in parallel, so each
 * suite that needs nsd has a port of its own). */
static void
nsd_start(const char *port)
{
	const char *src = getenv("top_srcdir");
	char cmd[2048];

	cr_assert_not_null(src, "top_srcdir not set");
	snprintf(nsd_state, sizeof(nsd_state), "/tmp/moat-test-dns.%ld", (long)getpid());
	snprintf(cmd, sizeof(cmd),
	    "bash -c '. \"%s/tests/lib/dns.sh\" && dns_start %s"
	    " spf.test=\"%s/tests/e2e/data/spf.test.zone\" big.test=\"%s/tests/unit/data/big.test.zone\""
	    " 2.0.192.in-addr.arpa=\"%s/tests/e2e/data/2.0.192.in-addr.arpa.zone\""
	    " && echo \"$DNS_PID $DNS_DIR\" > %s' </dev/null >/dev/null",
	    src, port, src, src, src, nsd_state);
	if (access("/usr/sbin/nsd", X_OK) != 0)
		cr_skip_test("nsd not installed");
	cr_assert_eq(system(cmd), 0, "nsd did not start");
}

static void
nsd_up(void)
{
	nsd_start(NSD_PORT);
}

static void
nsd_up_threads(void)
{
	nsd_start(NSD_THREADS_PORT);
}

static void
nsd_up_cache(void)
{
	nsd_start(NSD_CACHE_PORT);
}

static void
nsd_down(void)
{
	FILE *f = fopen(nsd_state, "r");
	long pid = 0;
	char dir[400] = "", cmd[600];
	int i;

	if (f == NULL)
		return;
	if (fscanf(f, "%ld %399s", &pid, dir) == 2 && pid > 1) {
		kill((pid_t)pid, SIGTERM);
		for (i = 0; i < 50 && kill((pid_t)pid, 0) == 0; i++)
			usleep(100000);
		if (strncmp(dir, "/tmp/", 5) == 0 && strstr(dir, "moat-dns.") != NULL) {
			snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
			(void)system(cmd);
		}
	}
	fclose(f);
	unlink(nsd_state);
}

TestSuite(dns_nsd, .init = nsd_up, .fini = nsd_down, .timeout = 30);

struct nsd_case {
	const char *label;
	const char *name;
	enum moat_dns_type type;
	enum moat_dns_status status;
	size_t n;
	const char *data; /* text of the one record to look for, or NULL */
	size_t len; /* its length (addresses) */
	uint16_t pref;
};

static const struct nsd_case nsd_cases[] = {
	{ "TXT of two strings is concatenated", "long.spf.test", MOAT_DNS_TXT, MOAT_DNS_OK, 1,
	    "v=spf1 ip4:203.0.113.0/24 -all", 30, 0 },
	{ "two TXT records", "spf.test", MOAT_DNS_TXT, MOAT_DNS_OK, 2,
	    "some-other=verification-token", 29, 0 },
	{ "MX", "mx.spf.test", MOAT_DNS_MX, MOAT_DNS_OK, 1, "mail.spf.test", 13, 10 },
	{ "A", "mail.spf.test", MOAT_DNS_A, MOAT_DNS_OK, 1, "\xc6\x33\x64\x4d", 4, 0 },
	{ "AAAA", "mail.spf.test", MOAT_DNS_AAAA, MOAT_DNS_OK, 1,
	    "\x20\x01\x0d\xb8\x00\x77\0\0\0\0\0\0\0\0\0\x01", 16, 0 },
	{ "PTR", "10.2.0.192.in-addr.arpa", MOAT_DNS_PTR, MOAT_DNS_OK, 1, "ptr.spf.test", 12, 0 },
	{ "CNAME followed by the resolver", "cname.spf.test", MOAT_DNS_TXT, MOAT_DNS_OK, 2, NULL, 0,
	    0 },
	{ "name exists, no AAAA: nodata", "spf.test", MOAT_DNS_AAAA, MOAT_DNS_NODATA, 0, NULL, 0,
	    0 },
	{ "no such name: nxdomain", "nope.spf.test", MOAT_DNS_TXT, MOAT_DNS_NXDOMAIN, 0, NULL, 0,
	    0 },
	{ "a zone nsd does not serve: tempfail (REFUSED)", "example.org", MOAT_DNS_TXT,
	    MOAT_DNS_TEMPFAIL, 0, NULL, 0, 0 },
	{ "TXT past MOAT_DNS_MAX_TXT: permfail", "hugetxt.big.test", MOAT_DNS_TXT,
	    MOAT_DNS_PERMFAIL, 0, NULL, 0, 0 },
	{ "TXT of 8160 bytes: ok", "bigtxt.big.test", MOAT_DNS_TXT, MOAT_DNS_OK, 1, NULL, 0, 0 },
	{ "200 A records: permfail", "many.big.test", MOAT_DNS_A, MOAT_DNS_PERMFAIL, 0, NULL, 0,
	    0 },
	{ "128 A records: ok", "edge.big.test", MOAT_DNS_A, MOAT_DNS_OK, 128, NULL, 0, 0 },
};

Test(dns_nsd, table)
{
	char err[256];
	struct moat_dns *dns = moat_dns_new("127.0.0.1@" NSD_PORT, 3000, NULL, err, sizeof(err));
	size_t i, j;

	cr_assert_not_null(dns, "%s", err);
	for (i = 0; i < sizeof(nsd_cases) / sizeof(nsd_cases[0]); i++) {
		const struct nsd_case *c = &nsd_cases[i];
		struct moat_dns_answer a;
		bool seen = c->data == NULL;

		cr_expect_eq(moat_dns_query(dns, c->name, c->type, &a), c->status, "%s: got %s",
		    c->label, moat_dns_status_name(a.status));
		cr_expect_eq(a.n, c->n, "%s: %zu records", c->label, a.n);
		cr_expect_not(a.secure, "%s: no validation configured", c->label);
		for (j = 0; j < a.n && c->data != NULL; j++)
			if (a.rr[j].len == c->len && memcmp(a.rr[j].data, c->data, c->len) == 0 &&
			    a.rr[j].pref == c->pref)
				seen = true;
		cr_expect(seen, "%s: record not found", c->label);
		if (strcmp(c->name, "bigtxt.big.test") == 0 && a.n == 1)
			cr_expect_eq(a.rr[0].len, 32u * 255u, "%s", c->label);
		moat_dns_answer_clear(&a);
	}
	moat_dns_free(dns);
}

TestSuite(dns_nsd_cache, .init = nsd_up_cache, .fini = nsd_down, .timeout = 30);

/* A repeated question is answered from the in-process cache, with the same records. */
Test(dns_nsd_cache, repeat_is_a_cache_hit)
{
	char err[256];
	struct moat_dns *dns =
	    moat_dns_new("127.0.0.1@" NSD_CACHE_PORT, 3000, NULL, err, sizeof(err));
	struct moat_dns_cache_stats st;
	struct moat_dns_answer a;
	int i;

	cr_assert_not_null(dns, "%s", err);
	for (i = 0; i < 3; i++) {
		cr_expect_eq(moat_dns_query(dns, i == 2 ? "LONG.spf.test." : "long.spf.test",
				 MOAT_DNS_TXT, &a),
		    MOAT_DNS_OK);
		cr_expect(a.n == 1 && strcmp(a.rr[0].data, "v=spf1 ip4:203.0.113.0/24 -all") == 0,
		    "query %d", i);
		moat_dns_answer_clear(&a);
		cr_expect_eq(moat_dns_query(dns, "nope.spf.test", MOAT_DNS_TXT, &a),
		    MOAT_DNS_NXDOMAIN);
		moat_dns_answer_clear(&a);
	}
	/* a zone nsd does not serve: REFUSED, a temporary failure, is asked again each time */
	for (i = 0; i < 2; i++) {
		cr_expect_eq(moat_dns_query(dns, "example.org", MOAT_DNS_TXT, &a),
		    MOAT_DNS_TEMPFAIL);
		moat_dns_answer_clear(&a);
	}
	moat_dns_cache_stats(dns, &st);
	cr_expect_eq(st.stored, 2u, "the TXT answer and the NXDOMAIN (SOA negative TTL)");
	cr_expect_eq(st.hits, 4u, "the second and third time of each, any case, trailing dot");
	moat_dns_free(dns);
}

/* moat_dns_query_cached answers only from the cache, all of a batch or none of it. */
Test(dns_nsd_cache, cached_only)
{
	char err[256];
	struct moat_dns *dns =
	    moat_dns_new("127.0.0.1@" NSD_CACHE_PORT, 3000, NULL, err, sizeof(err));
	struct moat_dns_q q[2] = { { .name = "Long.spf.test.", .type = MOAT_DNS_TXT },
		{ .name = "nope.spf.test", .type = MOAT_DNS_TXT } };
	struct moat_dns_answer a;

	cr_assert_not_null(dns, "%s", err);
	cr_expect_not(moat_dns_query_cached(dns, q, 2), "nothing asked yet");
	cr_expect_eq(moat_dns_query(dns, "long.spf.test", MOAT_DNS_TXT, &a), MOAT_DNS_OK);
	moat_dns_answer_clear(&a);
	cr_expect_not(moat_dns_query_cached(dns, q, 2), "one of the two cached: none answered");
	cr_expect_eq(moat_dns_query(dns, "nope.spf.test", MOAT_DNS_TXT, &a), MOAT_DNS_NXDOMAIN);
	moat_dns_answer_clear(&a);
	cr_assert(moat_dns_query_cached(dns, q, 2), "both cached");
	cr_expect(q[0].answer.status == MOAT_DNS_OK && q[0].answer.n == 1 &&
	    strcmp(q[0].answer.rr[0].data, "v=spf1 ip4:203.0.113.0/24 -all") == 0);
	cr_expect_eq(q[1].answer.status, MOAT_DNS_NXDOMAIN);
	moat_dns_answer_clear(&q[0].answer);
	moat_dns_answer_clear(&q[1].answer);
	cr_expect_not(moat_dns_query_cached(NULL, q, 2), "no resolver");
	moat_dns_free(dns);
}

/* Several threads share one resolver (the proxy's threadpool does): every answer is right. */
struct worker {
	struct moat_dns *dns;
	int id;
	int wrong;
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	int i;

	for (i = 0; i < 60; i++) {
		struct moat_dns_answer a;
		char name[64];
		enum moat_dns_status want;

		/* distinct names defeat the cache for most queries; every third one is missing */
		if (i % 3 == 2) {
			snprintf(name, sizeof(name), "missing%d-%d.spf.test", w->id, i);
			want = MOAT_DNS_NXDOMAIN;
		} else if (i % 3 == 1) {
			snprintf(name, sizeof(name), "mail.spf.test");
			want = MOAT_DNS_OK;
		} else {
			snprintf(name, sizeof(name), "long.spf.test");
			want = MOAT_DNS_OK;
		}
		if (moat_dns_query(w->dns, name, i % 3 == 1 ? MOAT_DNS_A : MOAT_DNS_TXT, &a) !=
		    want)
			w->wrong++;
		else if (want == MOAT_DNS_OK && i % 3 == 0 &&
		    (a.n != 1 || strcmp(a.rr[0].data, "v=spf1 ip4:203.0.113.0/24 -all") != 0))
			w->wrong++;
		moat_dns_answer_clear(&a);
	}
	return NULL;
}

TestSuite(dns_nsd_threads, .init = nsd_up_threads, .fini = nsd_down);

Test(dns_nsd_threads, share_one_resolver)
{
	char err[256];
	struct moat_dns *dns =
	    moat_dns_new("127.0.0.1@" NSD_THREADS_PORT, 3000, NULL, err, sizeof(err));
	struct worker w[4];
	pthread_t t[4];
	int i;

	cr_assert_not_null(dns, "%s", err);
	for (i = 0; i < 4; i++) {
		w[i] = (struct worker){ .dns = dns, .id = i };
		cr_assert_eq(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(w[i].wrong, 0, "thread %d: %d wrong answers", i, w[i].wrong);
	}
	moat_dns_free(dns);
}
