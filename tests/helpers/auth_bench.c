/*
 * auth_bench.c - drive the authentication engine (auth.h) over one message N times, as the
 * daemons do (header by header, body in 8 KiB chunks, end of message: SPF, DKIM, DMARC, the
 * A-R and the verdict), on one thread, and print messages per second. Used by bench/auth.
 *
 *   auth_bench -n COUNT --client-ip ADDR --helo NAME --mail-from ADDR [-o KEY=VALUE]... FILE
 *
 * The first message is not timed (it fills the DNS cache). Prints the A-R of the last message
 * on stdout and "N msgs/s" (per CPU second of the process, as openssl speed counts) and
 * "W msgs/s wall" on stderr.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"

#define OVERRIDES_MAX 16

static double
now(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* one - one message through the engine; returns the verdict action. */
static int
one(struct moat_auth_engine *e, const struct moat_conf *conf, const struct moat_auth_env *env,
    const char *msg, size_t len, bool print)
{
	struct moat_auth_msg *m = moat_auth_msg_new(e, conf, env);
	struct moat_verdict v;
	size_t i = 0;

	if (m == NULL)
		return -1;
	while (i < len) {
		size_t start = i, end = i;
		if (len - i >= 2 && msg[i] == '\r' && msg[i + 1] == '\n') {
			i += 2;
			break;
		}
		for (;;) {
			while (end + 1 < len && !(msg[end] == '\r' && msg[end + 1] == '\n'))
				end++;
			if (end + 1 >= len) {
				end = len;
				i = len;
				break;
			}
			i = end + 2;
			if (i < len && (msg[i] == ' ' || msg[i] == '\t')) {
				end = i;
				continue;
			}
			break;
		}
		moat_auth_header(m, msg + start, end - start);
	}
	moat_auth_eoh(m);
	while (i < len) {
		size_t n = len - i > 8192 ? 8192 : len - i;
		moat_auth_body(m, msg + i, n);
		i += n;
	}
	moat_auth_eom(m, &v);
	if (print)
		printf("Authentication-Results: %s\n", moat_auth_results(m)->authres);
	moat_auth_msg_free(m);
	return (int)v.action;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "client-ip", required_argument, NULL, 'i' },
		{ "helo", required_argument, NULL, 'H' },
		{ "mail-from", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	struct moat_conf_override ov[OVERRIDES_MAX];
	size_t nov = 0, len = 0, cap = 1 << 16;
	struct moat_auth_env env = { .client_addr = "192.0.2.1", .helo = "", .mail_from = "" };
	char err[MOAT_CONF_ERR_MAX], *msg;
	struct moat_conf *conf;
	struct moat_auth_engine *e;
	long count = 1000;
	FILE *f;
	int c, prev = 0;
	double t0, t1, c0, c1;

	while ((c = getopt_long(argc, argv, "n:o:", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			count = strtol(optarg, NULL, 10);
			break;
		case 'i':
			env.client_addr = optarg;
			break;
		case 'H':
			env.helo = optarg;
			break;
		case 'm':
			env.mail_from = optarg;
			break;
		case 'o':
			if (nov == OVERRIDES_MAX || moat_conf_parse_override(optarg, &ov[nov]) < 0)
				return 2;
			nov++;
			break;
		default:
			return 2;
		}
	}
	if (optind + 1 != argc || count < 1 || (f = fopen(argv[optind], "rb")) == NULL) {
		fprintf(stderr,
		    "usage: auth_bench -n COUNT [--client-ip A] [--helo H] [--mail-from M] [-o K=V]... FILE\n");
		return 2;
	}
	if ((msg = malloc(cap)) == NULL)
		return 2;
	while ((c = fgetc(f)) != EOF) {
		if (len + 3 > cap) {
			char *m2 = realloc(msg, cap *= 2);
			if (m2 == NULL)
				return 2;
			msg = m2;
		}
		if (c == '\n' && prev != '\r')
			msg[len++] = '\r';
		msg[len++] = (char)c;
		prev = c;
	}
	fclose(f);
	conf = moat_conf_load(NULL, ov, nov, err, sizeof(err));
	if (conf == NULL || (e = moat_auth_engine_new(conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "auth_bench: %s\n", err);
		return 2;
	}
	if (one(e, conf, &env, msg, len, false) < 0) /* warms the DNS cache */
		return 2;
	t0 = now(CLOCK_MONOTONIC);
	c0 = now(CLOCK_PROCESS_CPUTIME_ID);
	for (long k = 0; k < count; k++)
		if (one(e, conf, &env, msg, len, k == count - 1) < 0)
			return 2;
	t1 = now(CLOCK_MONOTONIC);
	c1 = now(CLOCK_PROCESS_CPUTIME_ID);
	fprintf(stderr, "%.1f msgs/s\n%.1f msgs/s wall\n", (double)count / (c1 - c0),
	    (double)count / (t1 - t0));
	moat_auth_engine_free(e);
	moat_conf_unref(conf);
	free(msg);
	return 0;
}
