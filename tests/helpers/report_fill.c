/*
 * report_fill.c - fill a DMARC report store through the recorder's API (dmarc_report.h), with
 * records made by a fixed rule the tests recompute on their own (tests/helpers/report_check.py).
 *
 * usage: report_fill DB COUNT DOMAINS DAYS FIRST_DAY IPS
 * Record i: policy domain dK.example (K = i mod DOMAINS, also the From and envelope domain),
 * day FIRST_DAY + (i div DOMAINS) mod DAYS, source 10.X.Y.Z for i mod IPS, DMARC fail when
 * i mod 3 = 0 (then rejected for an even K, quarantined for an odd one), SPF aligned for odd i.
 * Every 1000th (i mod 1000 = 999) was tempfailed and every i mod 250 = 7 found no policy: neither
 * belongs in a report. Prints the recorder's counters.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "dmarc_report.h"

#define FLUSH_EVERY 20000

int
main(int argc, char **argv)
{
	struct moat_dmarc_report_opts o = { 0 };
	struct moat_dmarc_report_stats st;
	struct moat_dmarc_report *r;
	unsigned long count, domains, days, ips;
	long long first_day;
	char err[512];

	if (argc != 7) {
		fprintf(stderr, "usage: report_fill DB COUNT DOMAINS DAYS FIRST_DAY IPS\n");
		return 2;
	}
	count = strtoul(argv[2], NULL, 10);
	domains = strtoul(argv[3], NULL, 10);
	days = strtoul(argv[4], NULL, 10);
	first_day = strtoll(argv[5], NULL, 10);
	ips = strtoul(argv[6], NULL, 10);
	if (domains == 0 || days == 0 || ips == 0) {
		fprintf(stderr, "report_fill: DOMAINS, DAYS and IPS must be at least 1\n");
		return 2;
	}
	o.db = argv[1];
	o.queue_max = 2 * FLUSH_EVERY;
	if ((r = moat_dmarc_report_new(&o, err, sizeof(err))) == NULL) {
		fprintf(stderr, "report_fill: %s\n", err);
		return 1;
	}
	for (unsigned long i = 0; i < count; i++) {
		struct moat_dmarc_report_entry e = { 0 };
		unsigned long k = i % domains;
		bool fail = i % 3 == 0, even = k % 2 == 0;
		char domain[64], ip[32], sel[16];

		snprintf(domain, sizeof(domain), "d%lu.example", k);
		snprintf(ip, sizeof(ip), "10.%lu.%lu.%lu", (i % ips) / 65536 % 256,
		    (i % ips) / 256 % 256, (i % ips) % 256);
		snprintf(sel, sizeof(sel), "s%lu", i % 2);
		e.time = (first_day + (long long)((i / domains) % days)) * 86400 +
		    (long long)(i * 37 % 86400);
		e.source_ip = ip;
		e.header_from = domain;
		e.envelope_from = domain;
		e.policy_domain = i % 250 == 7 ? "" : domain;
		e.dmarc = i % 250 == 7 ? "none" : fail ? "fail" : "pass";
		e.dkim_aligned = fail ? "fail" : "pass";
		e.spf_aligned = !fail && i % 2 ? "pass" : "fail";
		e.disposition = i % 1000 == 999 ? "tempfail"
		    : !fail                     ? "none"
		    : even                      ? "reject"
						: "quarantine";
		e.spf_domain = domain;
		e.spf_scope = "mfrom";
		e.spf_result = i % 2 ? "pass" : "fail";
		e.p = even ? "reject" : "quarantine";
		e.adkim = "r";
		e.aspf = "r";
		e.testing = "n";
		e.psd = "u";
		e.rua = "mailto:dmarc@example.net";
		e.dkim[0] = (struct moat_dmarc_report_dkim){ domain, sel, fail ? "fail" : "pass" };
		e.ndkim = 1;
		if (moat_dmarc_report_add(r, &e) < 0) {
			fprintf(stderr, "report_fill: record %lu dropped\n", i);
			break;
		}
		if (i % FLUSH_EVERY == FLUSH_EVERY - 1)
			moat_dmarc_report_flush(r);
	}
	moat_dmarc_report_flush(r);
	moat_dmarc_report_stats(r, &st);
	printf("queued=%" PRIu64 " written=%" PRIu64 " dropped=%" PRIu64 " lost=%" PRIu64 "\n",
	    st.queued, st.written, st.dropped, st.store_errors);
	moat_dmarc_report_free(r);
	return st.written == count ? 0 : 1;
}
