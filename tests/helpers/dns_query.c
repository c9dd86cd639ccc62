/*
 * dns_query.c - one query through the DNS layer, for the shell tests (tests/e2e/dns_dnssec.sh).
 *
 * Usage: dns_query RESOLVER TRUST-ANCHOR-FILE|"" NAME A|AAAA|TXT|MX|PTR
 * Prints "STATUS secure=0|1 n=N", then one line per record (TXT and names as text, addresses in
 * hex, MX as "PREF NAME"). Exit 0 whatever the status; 2 on usage or resolver set-up errors.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "dns.h"

int
main(int argc, char **argv)
{
	static const struct {
		const char *name;
		enum moat_dns_type type;
	} types[] = {
		{ "A", MOAT_DNS_A },
		{ "AAAA", MOAT_DNS_AAAA },
		{ "TXT", MOAT_DNS_TXT },
		{ "MX", MOAT_DNS_MX },
		{ "PTR", MOAT_DNS_PTR },
	};
	struct moat_dns_answer a;
	struct moat_dns *dns;
	char err[256];
	size_t i, j;
	int t = -1;

	if (argc != 5) {
		fprintf(stderr, "usage: dns_query RESOLVER TRUST-ANCHOR NAME TYPE\n");
		return 2;
	}
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(argv[4], types[i].name) == 0)
			t = (int)types[i].type;
	if (t < 0) {
		fprintf(stderr, "dns_query: unknown type %s\n", argv[4]);
		return 2;
	}
	dns = moat_dns_new(argv[1], 3000, argv[2], err, sizeof(err));
	if (dns == NULL) {
		fprintf(stderr, "dns_query: %s\n", err);
		return 2;
	}
	moat_dns_query(dns, argv[3], (enum moat_dns_type)t, &a);
	printf("%s secure=%d n=%zu\n", moat_dns_status_name(a.status), a.secure ? 1 : 0, a.n);
	for (i = 0; i < a.n; i++) {
		if (t == MOAT_DNS_A || t == MOAT_DNS_AAAA) {
			for (j = 0; j < a.rr[i].len; j++)
				printf("%02x", (unsigned char)a.rr[i].data[j]);
			putchar('\n');
		} else if (t == MOAT_DNS_MX) {
			printf("%u %s\n", a.rr[i].pref, a.rr[i].data);
		} else {
			printf("%s\n", a.rr[i].data);
		}
	}
	moat_dns_answer_clear(&a);
	moat_dns_free(dns);
	return 0;
}
