/*
 * fuzz_spf_record.c - libFuzzer target: the SPF record parser and evaluator.
 *
 * The input is served as the TXT record of fuzz.test by the DNS fixture (with "v=spf1 "
 * prepended unless the first byte is '!'), next to a few names it can include, redirect to or
 * reach through macros, and evaluated for an IPv4 or IPv6 client with --explain tracing on.
 * Anything but a clean result is a bug: the evaluator must end in a bounded number of queries.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char a4[4] = { 192, 0, 2, 1 };
	static const unsigned char a6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	struct moat_dns *dns;
	struct moat_spf_opts opts = { .trace = true, .receiver = "mx.test", .now = 1 };
	struct moat_spf_result r;
	struct moat_addr client;
	char *rec;
	size_t n = 0;
	bool raw = size > 0 && data[0] == '!';

	if (size > MOAT_DNS_MAX_TXT + 16)
		return 0;
	rec = malloc(size + 8);
	dns = moat_dns_new_fixture();
	if (rec == NULL || dns == NULL) {
		free(rec);
		moat_dns_free(dns);
		return 0;
	}
	if (!raw) {
		memcpy(rec, "v=spf1 ", 7);
		n = 7;
		memcpy(rec + n, data, size);
		n += size;
	} else {
		memcpy(rec, data + 1, size - 1);
		n = size - 1;
	}
	moat_dns_fixture_add(dns, "fuzz.test", MOAT_DNS_TXT, 0, rec, n);
	moat_dns_fixture_add(dns, "fuzz.test", MOAT_DNS_A, 0, a4, 4);
	moat_dns_fixture_add(dns, "fuzz.test", MOAT_DNS_AAAA, 0, a6, 16);
	moat_dns_fixture_add(dns, "fuzz.test", MOAT_DNS_MX, 10, "mx.fuzz.test", 12);
	moat_dns_fixture_add(dns, "mx.fuzz.test", MOAT_DNS_A, 0, a4, 4);
	moat_dns_fixture_add(dns, "inc.test", MOAT_DNS_TXT, 0, "v=spf1 include:fuzz.test ?all", 29);
	moat_dns_fixture_add(dns, "exp.test", MOAT_DNS_TXT, 0, "%{i} %{c} %{r} %{t} %{p}", 24);
	moat_dns_fixture_add(dns, "1.2.0.192.in-addr.arpa", MOAT_DNS_PTR, 0, "fuzz.test", 9);
	moat_dns_fixture_fail(dns, "tmp.test", 0, MOAT_DNS_TEMPFAIL);
	moat_addr_parse((size & 1) ? "2001:db8::1" : "192.0.2.1", &client);
	moat_spf_check_mailfrom(dns, &client, "helo.test", "l\xc3\xa9.ocal-part@fuzz.test", &opts,
	    &r);
	moat_spf_result_clear(&r);
	moat_dns_free(dns);
	free(rec);
	return 0;
}
