/*
 * libspf2_suite.c - the RFC 7208 suite (converted by rfc7208-convert.py) driven through
 * Debian's libspf2 1.2.10 with its in-memory zone resolver, the same way spf_suite.c drives
 * our evaluator. It measures how many cases libspf2 gets right (doc/architecture.md, "SPF: why
 * our own evaluator") and prints one TAP line per case: ok when libspf2 gives an accepted
 * result, so the count is the measurement. Not part of `make check` (see the doc for why):
 * build and run it with tests/helpers/libspf2-measure.sh.
 *
 * Usage: libspf2_suite CONVERTED.txt
 */
#include "config.h"

#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <spf2/spf.h>
#include <spf2/spf_dns_zone.h>

#include "suite_format.h"

#define NAMES_MAX 256

int
main(int argc, char **argv)
{
	static char line[65536];
	static char names[NAMES_MAX][300];
	size_t nnames = 0, i;
	SPF_dns_server_t *dns = NULL;
	SPF_server_t *spf = NULL;
	FILE *f;
	int n = 0, passed = 0, lenient = 0;
	int zone_done = 0;

	if (argc < 2 || (f = fopen(argv[1], "r")) == NULL)
		return 2;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *fld[8], *save = NULL, *tok;
		int nf = 0, k;

		line[strcspn(line, "\n")] = '\0';
		for (tok = strtok_r(line, " ", &save); tok && nf < 8;
		     tok = strtok_r(NULL, " ", &save))
			fld[nf++] = tok;
		if (nf == 0)
			continue;
		for (k = 1; k < nf; k++)
			suite_unhex(fld[k]);
		if (strcmp(fld[0], "S") == 0) {
			if (spf)
				SPF_server_free(spf); /* frees the resolver too */
			dns = SPF_dns_zone_new(NULL, "suite", 0);
			spf = SPF_server_new_dns(dns, 0);
			nnames = 0;
			zone_done = 0;
			continue;
		}
		if (strcmp(fld[0], "R") == 0 || strcmp(fld[0], "F") == 0) {
			int t = suite_rrtype(fld[2]);
			for (i = 0; i < nnames && strcasecmp(names[i], fld[1]) != 0; i++)
				;
			if (i == nnames && nnames < NAMES_MAX)
				snprintf(names[nnames++], sizeof(names[0]), "%s", fld[1]);
			if (t < 0)
				continue;
			if (fld[0][0] == 'F')
				SPF_dns_zone_add_str(dns, fld[1], (ns_type)t, TRY_AGAIN, NULL);
			else if (t != ns_t_cname)
				SPF_dns_zone_add_str(dns, fld[1], (ns_type)t, NETDB_SUCCESS,
				    fld[4]);
			continue;
		}
		if (strcmp(fld[0], "T") == 0 && nf == 7) {
			SPF_request_t *req;
			SPF_response_t *resp = NULL, *eresp = NULL;
			const char *got, *exp;
			int ok;

			if (!zone_done) {
				/* names that exist answer NODATA for the types they lack */
				for (i = 0; i < nnames; i++)
					SPF_dns_zone_add_str(dns, names[i], ns_t_any, NO_DATA,
					    NULL);
				SPF_server_set_explanation(spf, "DEFAULT", &eresp);
				if (eresp)
					SPF_response_free(eresp);
				zone_done = 1;
			}
			n++;
			req = SPF_request_new(spf);
			if (strchr(fld[2], ':'))
				SPF_request_set_ipv6_str(req, fld[2]);
			else
				SPF_request_set_ipv4_str(req, fld[2]);
			SPF_request_set_helo_dom(req, fld[3]);
			SPF_request_set_env_from(req, fld[4]);
			SPF_request_query_mailfrom(req, &resp);
			got = resp ? SPF_strresult(SPF_response_result(resp)) : "(null)";
			exp = resp ? SPF_response_get_explanation(resp) : NULL;
			ok = suite_result_ok(got, fld[5]);
			if (ok && fld[6][0] != '\0' && (exp == NULL || strcmp(exp, fld[6]) != 0))
				ok = 0;
			passed += ok;
			/* libspf2 reports many permerrors as "(invalid)": count those separately */
			lenient += ok ||
			    (strcmp(got, "(invalid)") == 0 && suite_result_ok("permerror", fld[5]));
			printf("%s %d - %s: libspf2 %s (want %s)\n", ok ? "ok" : "not ok", n,
			    fld[1], got, fld[5]);
			if (resp)
				SPF_response_free(resp);
			SPF_request_free(req);
		}
	}
	fclose(f);
	if (spf)
		SPF_server_free(spf);
	printf("1..%d\n# libspf2: %d of %d cases; %d if \"(invalid)\" counted as permerror\n", n,
	    passed, n, lenient);
	return 0;
}
