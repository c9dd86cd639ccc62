/*
 * mxmoat-check.c - run the authentication engine offline on one message and print what the
 * daemons would write: the Authentication-Results header field and, with --explain, why.
 *
 * SPF for the MAIL FROM and HELO identities, then the message (bounded by limit_message_size;
 * bare LF line ends are taken as CRLF) through the authentication engine exactly as the daemons
 * run it: DKIM (every signature), the RFC5322.From, DMARC, the one Authentication-Results field
 * and the verdict. The header section is read by the proxy's reader (msg_feed.h): what it
 * refuses is refused here too, with no Authentication-Results. An empty message (e.g. /dev/null)
 * checks the envelope only (SPF); the daemons would refuse it, as it has no From field. Exit
 * status: 0 accept (or quarantine), 1 reject, 2 tempfail, 3 usage or configuration error.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "authres.h"
#include "cidr.h"
#include "conf.h"
#include "dns.h"
#include "msg_feed.h"
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

/*
 * read_message - the whole message into *out (CRLF line ends: a bare LF becomes CRLF), at most
 * max bytes; returns its length, or -1 past that or on error.
 */
static long
read_message(const char *path, unsigned long long max, char **out)
{
	FILE *f = (path == NULL || strcmp(path, "-") == 0) ? stdin : fopen(path, "rb");
	char buf[8192];
	unsigned long long total = 0;
	size_t n, len = 0, cap = 0;
	char *msg = NULL;
	int prev = 0;

	*out = NULL;
	if (f == NULL) {
		fprintf(stderr, "mxmoat-check: cannot open %s\n", path);
		return -1;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		total += n;
		if (total > max) {
			fprintf(stderr,
			    "mxmoat-check: message larger than limit_message_size (%llu)\n", max);
			goto fail;
		}
		for (size_t i = 0; i < n; i++) {
			if (len + 3 > cap) {
				size_t ncap = cap ? cap * 2 : 65536;
				char *m = realloc(msg, ncap);
				if (m == NULL) {
					fprintf(stderr, "mxmoat-check: out of memory\n");
					goto fail;
				}
				msg = m;
				cap = ncap;
			}
			if (buf[i] == '\n' && prev != '\r')
				msg[len++] = '\r';
			msg[len++] = buf[i];
			prev = (unsigned char)buf[i];
		}
	}
	if (f != stdin)
		fclose(f);
	if (msg == NULL && (msg = malloc(1)) == NULL)
		return -1;
	msg[len] = '\0';
	*out = msg;
	return (long)len;
fail:
	if (f != stdin)
		fclose(f);
	free(msg);
	return -1;
}

/* print_safe - text from DNS or the client with bytes other than printable ASCII as '?'. */
static void
print_safe(const char *s)
{
	for (; *s; s++)
		putchar((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f ? *s : '?');
}

/* print_trace - the --explain lines of one identity, each prefixed. */
static void
print_trace(const char *what, const struct moat_spf_result *r)
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
static void
add_spf(struct moat_authres *ar, const struct moat_spf_result *r, const char *prop,
    const char *value)
{
	const char *reason =
	    (r->result == MOAT_SPF_TEMPERROR || r->result == MOAT_SPF_PERMERROR) ? r->reason : NULL;

	moat_authres_method(ar, "spf", moat_spf_result_name(r->result), reason);
	moat_authres_prop(ar, "smtp", prop, value);
}

/* explain_message - every decision of the engine with its reason (--explain). */
static void
explain_message(const struct moat_auth_results *r)
{
	const struct moat_dmarc_eval *d = &r->dmarc;
	size_t i;

	for (i = 0; i < r->ndkim; i++) {
		const struct moat_dkim_sig *s = &r->dkim[i];
		printf("dkim %zu: %s d=", i + 1, moat_dkim_result_name(s->result));
		print_safe(s->domain);
		printf(" s=");
		print_safe(s->selector);
		printf(" a=%s", s->alg[0] ? s->alg : "?");
		if (s->identity[0]) {
			printf(" i=");
			print_safe(s->identity); /* decoded: any byte but NUL */
		}
		if (s->key_bits)
			printf(" key=%u bits", s->key_bits);
		if (s->body_signed >= 0)
			printf(" l=%zd of %zd body bytes", s->body_signed, s->body_total);
		if (s->reason[0]) {
			printf(" (");
			print_safe(s->reason);
			printf(")");
		}
		putchar('\n');
	}
	if (r->ndkim == 0)
		printf("dkim: no DKIM-Signature\n");
	if (r->from.status == MOAT_FROM_OK) {
		printf("from: one From field, one address, domain ");
		print_safe(r->from.domain);
		putchar('\n');
	} else {
		printf("from: refused: %s (%u From field(s))\n", r->from.why ? r->from.why : "?",
		    r->from.count);
	}
	printf("dmarc: %s", moat_dmarc_result_name(d->result));
	if (d->policy_domain[0]) {
		printf(", record at _dmarc.");
		print_safe(d->policy_domain);
		printf(" (p=%s", moat_dmarc_policy_name(d->rec.p));
		if (d->rec.sp)
			printf(" sp=%s", moat_dmarc_policy_name(d->rec.sp));
		if (d->rec.np)
			printf(" np=%s", moat_dmarc_policy_name(d->rec.np));
		printf(" adkim=%c aspf=%c%s%s)", d->rec.adkim_strict ? 's' : 'r',
		    d->rec.aspf_strict ? 's' : 'r', d->rec.testing ? " t=y" : "",
		    d->rec.psd == MOAT_DMARC_PSD_Y       ? " psd=y"
			: d->rec.psd == MOAT_DMARC_PSD_N ? " psd=n"
							 : "");
		printf(", policy %s=%s%s, disposition %s", d->policy_tag,
		    moat_dmarc_policy_name(d->applied),
		    d->nonexistent ? " (From domain does not exist)" : "",
		    moat_dmarc_policy_name(d->disposition));
	}
	if (d->org_domain[0]) {
		printf(", organizational domain ");
		print_safe(d->org_domain);
	}
	printf(", spf %saligned, dkim %saligned", d->spf_aligned ? "" : "not ",
	    d->dkim_aligned ? "" : "not ");
	printf(", %u DNS queries\n", d->queries);
	printf("dmarc: ");
	print_safe(d->reason);
	putchar('\n');
	for (i = 0; i < r->nforged; i++)
		printf("authres: removing forged \"%s\" field #%u (carries our authserv-id)\n",
		    r->forged[i].name, r->forged[i].index);
	printf("decision: ");
	print_safe(r->why);
	putchar('\n');
}

/* check_message - the message through the engine; prints the header and the verdict. */
static int
check_message(const struct moat_conf *conf, struct moat_dns *dns, const char *client,
    const char *helo, const char *mail_from, const struct moat_spf_result *mf,
    const struct moat_spf_result *he, const char *msg, size_t len, bool explain)
{
	struct moat_auth_env env = { .client_addr = client, .helo = helo, .mail_from = mail_from };
	struct moat_auth_engine *e = moat_auth_engine_new_dns(dns, conf, 0);
	struct moat_auth_msg *am = NULL;
	struct moat_arc_msg *arc = NULL;
	const struct moat_auth_results *r;
	struct moat_verdict v;
	int status;

	if (e == NULL || (am = moat_auth_msg_new(e, conf, &env)) == NULL ||
	    (conf->arc_verify &&
		(arc = moat_arc_msg_new(moat_auth_engine_dkim(e), conf->arc_max_instances)) ==
		    NULL)) {
		fprintf(stderr, "mxmoat-check: cannot set up the authentication engine\n");
		moat_auth_msg_free(am);
		moat_auth_engine_free(e);
		return EXIT_USAGE;
	}
	moat_auth_set_spf(am, mf, helo[0] != '\0' ? he : NULL);
	if (moat_msg_feed(conf, am, arc, msg, len, &v) < 0) {
		/* refused before any check, as the proxy refuses it: no Authentication-Results */
		if (explain)
			printf("header: refused: %s\n", v.text);
	} else {
		if (arc != NULL)
			moat_auth_set_arc(am, moat_arc_eom(arc));
		moat_auth_eom(am, &v);
		r = moat_auth_results(am);
		printf("Authentication-Results: %s\n", r->authres);
		if (explain) {
			print_trace("mailfrom", mf);
			if (helo[0] != '\0')
				print_trace("helo", he);
			explain_message(r);
		}
	}
	switch (v.action) {
	case MOAT_REJECT:
		status = EXIT_REJECT;
		break;
	case MOAT_TEMPFAIL:
		status = EXIT_TEMPFAIL;
		break;
	default:
		status = EXIT_ACCEPT;
		break;
	}
	if (v.action == MOAT_CONTINUE)
		printf("verdict: accept\n");
	else if (v.code)
		printf("verdict: %s %u %s %s\n", moat_action_name(v.action), v.code, v.status,
		    v.text);
	else
		printf("verdict: %s %s\n", moat_action_name(v.action), v.text);
	moat_auth_msg_free(am);
	moat_arc_msg_free(arc);
	moat_auth_engine_free(e);
	return status;
}

int
main(int argc, char **argv)
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
	char *msg = NULL;
	long msg_len;

	while ((c = getopt_long(argc, argv, "c:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			client_text = optarg;
			break;
		case 'H':
			helo = optarg;
			break;
		case 'm':
			mail_from = optarg;
			break;
		case 'r':
			nrcpt++;
			break; /* recorded for later checks; SPF does not use it */
		case 'R':
			resolver = optarg;
			break;
		case 'x':
			explain = true;
			break;
		case 'c':
			conf_file = optarg;
			break;
		case 'o':
			if (nov == OVERRIDES_MAX ||
			    moat_conf_parse_override(optarg, &ov[nov]) < 0) {
				fprintf(stderr, "mxmoat-check: -o wants KEY=VALUE (at most %d)\n",
				    OVERRIDES_MAX);
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
		fprintf(stderr, "mxmoat-check: --client-ip %s: not an IPv4 or IPv6 address\n",
		    client_text);
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
	if ((msg_len = read_message(msg_path, conf->limit_message_size, &msg)) < 0) {
		moat_conf_unref(conf);
		return EXIT_USAGE;
	}
	dns = moat_dns_new(conf->dns_resolver, conf->dns_timeout, conf->dns_dnssec_trust_anchor,
	    err, sizeof(err));
	if (dns == NULL) {
		fprintf(stderr, "mxmoat-check: %s\n", err);
		moat_conf_unref(conf);
		free(msg);
		return EXIT_USAGE;
	}
	opts.receiver = conf->authserv_id;
	opts.trace = explain;
	moat_spf_check_mailfrom(dns, &client, helo, mail_from, &opts, &mf);
	moat_spf_check_helo(dns, &client, helo, &opts, &he);

	if (msg_len > 0) {
		status = check_message(conf, dns, client_text, helo, mail_from, &mf, &he, msg,
		    (size_t)msg_len, explain);
		goto out;
	}
	moat_authres_init(&ar, header, sizeof(header), conf->authserv_id);
	add_spf(&ar, &mf, "mailfrom", mf.sender[0] ? mf.sender : mf.domain);
	if (helo[0] != '\0')
		add_spf(&ar, &he, "helo", helo);
	if (moat_authres_finish(&ar) < 0) {
		fprintf(stderr, "mxmoat-check: Authentication-Results longer than %d bytes\n",
		    HEADER_MAX);
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
out:
	(void)nrcpt;
	free(msg);
	moat_spf_result_clear(&mf);
	moat_spf_result_clear(&he);
	moat_dns_free(dns);
	moat_conf_unref(conf);
	return status;
}
