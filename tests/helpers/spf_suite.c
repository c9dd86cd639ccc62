/*
 * spf_suite.c - run the RFC 7208 test suite, converted by rfc7208-convert.py, against
 * moat_spf_check_mailfrom() and print one TAP line per case.
 *
 * Every case's zone is served by the DNS layer's in-process fixture (moat_dns_new_fixture), not
 * by nsd, because the suite needs answers a zone file cannot express: TIMEOUT entries (a server
 * that does not answer for some types of a name only), TXT records with several strings kept
 * as one record, CNAME loops, labels of 64 bytes and names with empty labels. The real-DNS path
 * is tested by tests/unit/test_dns.c and tests/e2e/check_spf.sh against nsd on loopback.
 *
 * Usage: spf_suite CONVERTED.txt [CASE-ID]   (exit 0 when every case passed)
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "dns.h"
#include "spf.h"
#include "suite_format.h"

#define LINE_MAX_ 65536
#define FIELDS_MAX 8

int
main(int argc, char **argv)
{
	static char line[LINE_MAX_];
	struct moat_dns *dns = NULL;
	FILE *f;
	int n = 0, failed = 0, bad = 0;
	const char *only = argc > 2 ? argv[2] : NULL;

	if (argc < 2 || (f = fopen(argv[1], "r")) == NULL) {
		fprintf(stderr, "usage: spf_suite CONVERTED.txt [CASE-ID]\n");
		return 2;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *fld[FIELDS_MAX], *save = NULL, *tok;
		long len[FIELDS_MAX];
		int nf = 0, i;

		line[strcspn(line, "\n")] = '\0';
		for (tok = strtok_r(line, " ", &save); tok && nf < FIELDS_MAX;
		     tok = strtok_r(NULL, " ", &save))
			fld[nf++] = tok;
		if (nf == 0)
			continue;
		for (i = 1; i < nf; i++)
			if ((len[i] = suite_unhex(fld[i])) < 0)
				bad = 1;
		if (bad) {
			printf("Bail out! malformed line in %s\n", argv[1]);
			return 2;
		}
		if (strcmp(fld[0], "S") == 0) {
			moat_dns_free(dns);
			dns = moat_dns_new_fixture();
			if (dns == NULL) {
				printf("Bail out! out of memory\n");
				return 2;
			}
		} else if (strcmp(fld[0], "F") == 0 && nf == 3) {
			moat_dns_fixture_fail(dns, fld[1], suite_rrtype(fld[2]), MOAT_DNS_TEMPFAIL);
		} else if (strcmp(fld[0], "R") == 0 && nf == 5) {
			int t = suite_rrtype(fld[2]);
			struct moat_addr a;
			if (t == MOAT_DNS_A || t == MOAT_DNS_AAAA) {
				if (moat_addr_parse(fld[4], &a) != 0) {
					printf("Bail out! bad address %s\n", fld[4]);
					return 2;
				}
				if (t == MOAT_DNS_A)
					moat_dns_fixture_add(dns, fld[1], MOAT_DNS_A, 0,
					    a.bytes + 12, 4);
				else
					moat_dns_fixture_add(dns, fld[1], MOAT_DNS_AAAA, 0, a.bytes,
					    16);
			} else if (t > 0) {
				moat_dns_fixture_add(dns, fld[1], (enum moat_dns_type)t,
				    (uint16_t)atoi(fld[3]), fld[4], (size_t)len[4]);
			}
		} else if (strcmp(fld[0], "T") == 0 && nf == 7) {
			struct moat_spf_opts opts = { .default_exp = "DEFAULT",
				.receiver = "receiver.test" };
			struct moat_spf_result res;
			struct moat_addr client;
			const char *got;
			int ok;

			if (only != NULL && strcmp(only, fld[1]) != 0)
				continue;
			opts.trace = only != NULL;
			n++;
			if (moat_addr_parse(fld[2], &client) != 0) {
				printf("not ok %d - %s: bad client address %s\n", n, fld[1],
				    fld[2]);
				failed++;
				continue;
			}
			moat_spf_check_mailfrom(dns, &client, fld[3], fld[4], &opts, &res);
			got = moat_spf_result_name(res.result);
			ok = suite_result_ok(got, fld[5]);
			if (ok && fld[6][0] != '\0' && strcmp(res.explanation, fld[6]) != 0)
				ok = 0;
			printf("%s %d - %s: %s (want %s)\n", ok ? "ok" : "not ok", n, fld[1], got,
			    fld[5]);
			if (!ok) {
				failed++;
				printf("#   explanation: '%s' want '%s'\n#   reason: %s\n",
				    res.explanation, fld[6], res.reason);
			}
			if (res.trace)
				printf("%s", res.trace);
			moat_spf_result_clear(&res);
		}
	}
	fclose(f);
	moat_dns_free(dns);
	printf("1..%d\n", n);
	return failed ? 1 : 0;
}
