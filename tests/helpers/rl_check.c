/*
 * rl_check.c - one rate limiter driven from stdin, for the e2e tests and bench/ratelimit.
 *
 * Usage: rl_check [-o key=value]...            read commands, one verdict line each
 *        rl_check [-o key=value]... -b N MODE  time N connect events (MODE: none|limit)
 *
 * Commands: "connect IP", "tls IP", "mail IP SENDER [USER]", "rcpt IP SENDER [USER]" print
 * "continue" or "CODE STATUS REASON"; "flood IP N OTHER" makes N connect checks from IP and one
 * from OTHER every 100 and prints "served=S refused=R other_refused=O codes=LIST"; "probe" prints
 * whether the Redis store answers ("up", "down", or "none" without Redis). Each process is one
 * limiter instance, so two of them stand in for two daemons sharing Redis.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "policy.h"
#include "ratelimit.h"

#define OV_MAX 64

static void
print_verdict(const struct moat_verdict *v)
{
	if (v->action == MOAT_CONTINUE)
		printf("continue\n");
	else
		printf("%u %s %s%s\n", v->code, v->status, v->reason ? v->reason : "-",
		    v->close ? " close" : "");
}

/* rl_event - one event from IP with optional sender and user. */
static void
rl_event(struct moat_ratelimit *rl, enum moat_rl_event ev, const char *ip, const char *sender,
    const char *user, struct moat_verdict *v)
{
	struct moat_addr a;
	struct moat_rl_subject subj = { .addr = &a,
		.sender = sender,
		.user = user,
		.sid = "rl_check" };

	if (moat_addr_parse(ip, &a) < 0) {
		moat_verdict_set(v, MOAT_REJECT, 501, "5.5.4", "bad_address", "bad address");
		return;
	}
	moat_ratelimit_check(rl, ev, &subj, v);
}

static void
cmd_flood(struct moat_ratelimit *rl, const char *ip, long n, const char *other)
{
	struct moat_verdict v;
	long served = 0, refused = 0, other_refused = 0;
	unsigned seen[4] = { 0 };
	size_t nseen = 0, used = 0;
	char codes[64] = "none";

	for (long i = 0; i < n; i++) {
		rl_event(rl, MOAT_RL_EV_CONNECT, ip, NULL, NULL, &v);
		if (v.action == MOAT_CONTINUE) {
			served++;
		} else {
			size_t j;
			refused++;
			for (j = 0; j < nseen && seen[j] != v.code; j++)
				;
			if (j == nseen && nseen < 4)
				seen[nseen++] = v.code;
		}
		if (i % 100 == 0) {
			rl_event(rl, MOAT_RL_EV_CONNECT, other, NULL, NULL, &v);
			if (v.action != MOAT_CONTINUE)
				other_refused++;
		}
	}
	for (size_t j = 0; j < nseen; j++) {
		int w = snprintf(codes + used, sizeof(codes) - used, "%s%u", j ? "," : "", seen[j]);
		if (w > 0 && (size_t)w < sizeof(codes) - used)
			used += (size_t)w;
	}
	printf("served=%ld refused=%ld other_refused=%ld codes=%s\n", served, refused,
	    other_refused, codes);
}

static void
cmd_probe(struct moat_ratelimit *rl)
{
	struct moat_rlredis *r = moat__ratelimit_redis(rl);
	struct moat_rl_plan plan = { .n = 1 };
	struct moat_rl_result res[1];

	if (r == NULL) {
		printf("none\n");
		return;
	}
	plan.req[0] = (struct moat_rl_req){ .kind = MOAT_RL_CONN_IP,
		.interval_us = 1,
		.limit_us = 1000000000,
		.cost = 1 };
	plan.req[0].keylen =
	    (size_t)snprintf(plan.req[0].key, sizeof(plan.req[0].key), "probe:%ld", (long)getpid());
	printf("%s\n", moat_rlredis_take(r, &plan, res) == 0 ? "up" : "down");
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * bench - N connect events as a daemon makes them: the policy's connect and close, plus the
 * limiter's check unless MODE is none. Addresses cycle over 10.x.y.z so buckets rarely refuse.
 */
/*
 * bench - time N connect events of the core (moat_session_new, moat_session_connect, free), as a
 * daemon pays them: MODE "limit" with the rate limits of OV, "none" with the connection limits
 * switched off, so the difference is the limiter's share.
 */
static int
bench(const struct moat_conf_override *ov, size_t nov, long n, const char *mode)
{
	struct moat_conf_override all[OV_MAX + 2];
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf *conf;
	struct moat_policy *pol;
	long refused = 0;
	double t0;

	memcpy(all, ov, nov * sizeof(*ov));
	if (strcmp(mode, "none") == 0) {
		all[nov++] = (struct moat_conf_override){ "ratelimit_conn_per_ip", "off" };
		all[nov++] = (struct moat_conf_override){ "ratelimit_conn_per_net", "off" };
	}
	if ((conf = moat_conf_load(NULL, all, nov, err, sizeof(err))) == NULL ||
	    (pol = moat_policy_new(conf, MOAT_POLICY_MAY_BLOCK, err, sizeof(err))) == NULL) {
		fprintf(stderr, "rl_check: %s\n", err);
		moat_conf_unref(conf);
		return 1;
	}
	t0 = now_s();
	for (long i = 0; i < n; i++) {
		char ip[32];
		struct moat_verdict v;
		struct moat_client c = { .addr = ip, .port = 25, .session_id = "bench" };
		struct moat_session *s;

		snprintf(ip, sizeof(ip), "10.%ld.%ld.%ld", (i >> 16) & 255, (i >> 8) & 255,
		    i & 255);
		if ((s = moat_session_new(pol, &c)) == NULL)
			break;
		(void)moat_session_connect(s, &v);
		if (v.action != MOAT_CONTINUE)
			refused++;
		moat_session_free(s);
	}
	printf("checks=%ld seconds=%.3f per_second=%.0f refused=%ld\n", n, now_s() - t0,
	    (double)n / (now_s() - t0), refused);
	moat_policy_free(pol);
	moat_conf_unref(conf);
	return 0;
}

int
main(int argc, char **argv)
{
	struct moat_conf_override ov[OV_MAX];
	size_t nov = 0;
	char err[MOAT_CONF_ERR_MAX], line[1024];
	struct moat_conf *conf;
	struct moat_ratelimit *rl;
	long bench_n = 0;
	int opt;

	while ((opt = getopt(argc, argv, "o:b:")) != -1) {
		if (opt == 'o' && nov < OV_MAX && moat_conf_parse_override(optarg, &ov[nov]) == 0)
			nov++;
		else if (opt == 'b')
			bench_n = strtol(optarg, NULL, 10);
		else {
			fprintf(stderr, "usage: rl_check [-o key=value]... [-b N none|limit]\n");
			return 2;
		}
	}
	moat_log_open("rl_check", MOAT_LOG_STDERR, false);
	if (bench_n > 0)
		return bench(ov, nov, bench_n, optind < argc ? argv[optind] : "limit");
	if ((conf = moat_conf_load(NULL, ov, nov, err, sizeof(err))) == NULL) {
		fprintf(stderr, "rl_check: %s\n", err);
		return 2;
	}
	if ((rl = moat_ratelimit_new(conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "rl_check: %s\n", err);
		moat_conf_unref(conf);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		char cmd[16] = "", a1[300] = "", a2[300] = "", a3[300] = "";
		struct moat_verdict v;
		int k = sscanf(line, "%15s %299s %299s %299s", cmd, a1, a2, a3);

		if (k < 1)
			continue;
		if (strcmp(cmd, "connect") == 0 && k >= 2) {
			rl_event(rl, MOAT_RL_EV_CONNECT, a1, NULL, NULL, &v);
			print_verdict(&v);
		} else if (strcmp(cmd, "tls") == 0 && k >= 2) {
			rl_event(rl, MOAT_RL_EV_TLS, a1, NULL, NULL, &v);
			print_verdict(&v);
		} else if ((strcmp(cmd, "mail") == 0 || strcmp(cmd, "rcpt") == 0) && k >= 3) {
			rl_event(rl, cmd[0] == 'm' ? MOAT_RL_EV_MAIL : MOAT_RL_EV_RCPT, a1,
			    strcmp(a2, "<>") == 0 ? "" : a2, k >= 4 ? a3 : NULL, &v);
			print_verdict(&v);
		} else if (strcmp(cmd, "flood") == 0 && k >= 4) {
			long n = strtol(a2, NULL, 10);
			cmd_flood(rl, a1, n > 0 && n <= 1000000 ? n : 0, a3);
		} else if (strcmp(cmd, "probe") == 0) {
			cmd_probe(rl);
		} else {
			printf("error unknown command\n");
		}
	}
	moat_ratelimit_free(rl);
	moat_conf_unref(conf);
	return 0;
}
