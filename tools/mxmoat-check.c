/*
 * mxmoat-check.c - run the authentication engine offline on one message and print what the
 * daemons would write: the Authentication-Results header field and, with --explain, why.
 *
 * First version: SPF for the MAIL FROM and HELO identities. The message is read (bounded by
 * limit_message_size) so later checks (DKIM, DMARC) can use it. Exit status: 0 accept, 1 reject,
 * 2 tempfail, 3 usage or configuration error.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authres.h"
#include "cidr.h"
#include "conf.h"
#include "dns.h"
#include "spf.h"

#define EXIT_ACCEPT 0
#define EXIT_REJECT 1
#define EXIT_TEMPFAIL 2
#define EXIT_USAGE 3
#define OVERRIDES_MAX 64
#define HEADER_MAX 4096

static const char usage_text[] =
    "usage: mxmoat-check --client-ip ADDR [--helo NAME] [--mail-from ADDR] [--rcpt ADDR]...\n"
    "                    [--resolver ADDR[@PORT]] [-c FILE] [-o KEY=VALUE]... [--explain]\n"
    "                    [MESSAGE-FILE | -]\n"
    "Prints the Authentication-Results header mxmoat would add. Exit: 0 accept, 1 reject,\n"
    "2 tempfail, 3 usage or configuration error.\n";

/* read_message - the whole message into memory, at most max bytes; -1 past that or on error. */
static long read_message(const char *path, unsigned long long max)
{
	FILE *f = (path == NULL || strcmp(path, "-") == 0) ? stdin : fopen(path, "rb");
	char buf[8192];
	unsigned long long total = 0;
	size_t n;

	if (f == NULL) {
		fprintf(stderr, "mxmoat-check: cannot open %s\n", path);
		return -1;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		total += n;
		if (total > max) {
			fprintf(stderr, "mxmoat-check: message larger than limit_message_size (%llu)\n", max);
			if (f != stdin)
				fclose(f);
			return -1;
		}
	}
	if (f != stdin)
		fclose(f);
	return (long)total;
}

/* print_safe - text from DNS or the client with bytes other than printable ASCII as '?'. */
static void print_safe(const char *s)
{
	for (; *s; s++)
		putchar((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f ? *s : '?');
}

/* print_trace - the --explain lines of one identity, each prefixed. */
static void print_trace(const char *what, const struct moat_spf_result *r)
{
	const char *p = r->trace, *e;

	printf("spf %s: result %s for ", what, moat_spf_result_name(r->result));
	print_safe(r->sender);
	if (r->mechanism[0])
		printf(" (term %s)", r->mechanism);
	if (r->reason[0])
		printf(" (%s)", r->reason);
	printf(", %u DNS term(s), %u void lookup(s)\n", r->lookups, r->void_lookups);
	if (r->result == MOAT_SPF_FAIL && r->explanation[0]) {
		printf("spf %s: explanation: ", what);
		print_safe(r->explanation);
		putchar('\n');
	}
	while (p != NULL && *p) {
		e = strchr(p, '\n');
		if (e == NULL)
			e = p + strlen(p);
		printf("spf %s:   %.*s\n", what, (int)(e - p), p);
		p = *e ? e + 1 : e;
	}
}

/* add_spf - one spf= result with its property. */
static void add_spf(struct moat_authres *ar, const struct moat_spf_result *r, const char *prop,
    const char *value)
{
	const char *reason = (r->result == MOAT_SPF_TEMPERROR || r->result == MOAT_SPF_PERMERROR)
	    ? r->reason : NULL;

	moat_authres_method(ar, "spf", moat_spf_result_name(r->result), reason);
	moat_authres_prop(ar, "smtp", prop, value);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "client-ip", required_argument, NULL, 'i' },
		{ "helo", required_argument, NULL, 'H' },
		{ "mail-from", required_argument, NULL, 'm' },
		{ "rcpt", required_argument, NULL, 'r' },
		{ "resolver", required_argument, NULL, 'R' },
		{ "explain", no_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct moat_conf_override ov[OVERRIDES_MAX];
	size_t nov = 0;
	const char *client_text = NULL, *helo = "", *mail_from = "", *conf_file = NULL;
	const char *resolver = NULL, *msg_path = NULL;
	bool explain = false;
	unsigned nrcpt = 0;
	struct moat_addr client;
	struct moat_conf *conf;
	struct moat_dns *dns;
	struct moat_spf_opts opts = { 0 };
	struct moat_spf_result mf, he;
	struct moat_authres ar;
	char err[MOAT_CONF_ERR_MAX], header[HEADER_MAX];
	int c, status = EXIT_ACCEPT;

	while ((c = getopt_long(argc, argv, "c:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'i': client_text = optarg; break;
		case 'H': helo = optarg; break;
		case 'm': mail_from = optarg; break;
		case 'r': nrcpt++; break;   /* recorded for later checks; SPF does not use it */
		case 'R': resolver = optarg; break;
		case 'x': explain = true; break;
		case 'c': conf_file = optarg; break;
		case 'o':
			if (nov == OVERRIDES_MAX || moat_conf_parse_override(optarg, &ov[nov]) < 0) {
				fprintf(stderr, "mxmoat-check: -o wants KEY=VALUE (at most %d)\n", OVERRIDES_MAX);
				return EXIT_USAGE;
			}
			nov++;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_ACCEPT;
		default:
			fputs(usage_text, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc)
		msg_path = argv[optind++];
	if (optind < argc || client_text == NULL) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	if (moat_addr_parse(client_text, &client) != 0) {
		fprintf(stderr, "mxmoat-check: --client-ip %s: not an IPv4 or IPv6 address\n", client_text);
		return EXIT_USAGE;
	}
	if (resolver != NULL) {
		if (nov == OVERRIDES_MAX) {
			fprintf(stderr, "mxmoat-check: too many overrides\n");
			return EXIT_USAGE;
		}
		ov[nov].key = "dns_resolver";
		ov[nov].value = resolver;
		nov++;
	}
	conf = moat_conf_load(conf_file, ov, nov, err, sizeof(err));
	if (conf == NULL) {
		fprintf(stderr, "mxmoat-check: %s\n", err);
		return EXIT_USAGE;
	}
	if (read_message(msg_path, conf->limit_message_size) < 0) {
		moat_conf_unref(conf);
		return EXIT_USAGE;
	}
	dns = moat_dns_new(conf->dns_resolver, conf->dns_timeout, conf->dns_dnssec_trust_anchor, err,
	    sizeof(err));
	if (dns == NULL) {
		fprintf(stderr, "mxmoat-check: %s\n", err);
		moat_conf_unref(conf);
		return EXIT_USAGE;
	}
	opts.receiver = conf->authserv_id;
	opts.trace = explain;
	moat_spf_check_mailfrom(dns, &client, helo, mail_from, &opts, &mf);
	moat_spf_check_helo(dns, &client, helo, &opts, &he);

	moat_authres_init(&ar, header, sizeof(header), conf->authserv_id);
	add_spf(&ar, &mf, "mailfrom", mf.sender[0] ? mf.sender : mf.domain);
	if (helo[0] != '\0')
		add_spf(&ar, &he, "helo", helo);
	if (moat_authres_finish(&ar) < 0) {
		fprintf(stderr, "mxmoat-check: Authentication-Results longer than %d bytes\n", HEADER_MAX);
		status = EXIT_TEMPFAIL;
	} else {
		printf("Authentication-Results: %s\n", header);
	}
	if (explain) {
		print_trace("mailfrom", &mf);
		if (helo[0] != '\0')
			print_trace("helo", &he);
	}
	/* The verdict follows MAIL FROM, the identity RFC 7208 2.4 makes authoritative. */
	if (mf.result == MOAT_SPF_FAIL && conf->spf_fail_action == MOAT_SPF_ACT_ENFORCE) {
		printf("verdict: reject 550 5.7.23 ");
		print_safe(mf.explanation);
		putchar('\n');
		status = EXIT_REJECT;
	} else if (mf.result == MOAT_SPF_TEMPERROR &&
	    conf->spf_temperror_action == MOAT_SPF_ACT_ENFORCE) {
		printf("verdict: tempfail 451 4.7.24 SPF temporary error for ");
		print_safe(mf.domain);
		putchar('\n');
		status = EXIT_TEMPFAIL;
	} else if (status == EXIT_ACCEPT) {
		printf("verdict: accept\n");
	}
	(void)nrcpt;
	moat_spf_result_clear(&mf);
	moat_spf_result_clear(&he);
	moat_dns_free(dns);
	moat_conf_unref(conf);
	return status;
}
