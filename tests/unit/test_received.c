/*
 * test_received.c - the proxy's Received field (proxy/received.c): Postfix's layout byte for byte,
 * the TLS comments, client-chosen text neutered, IPv6 literals, and a buffer too small.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "received.h"

/* 2026-11-26 11:30:32 UTC */
#define WHEN ((time_t)1795692632)

static const struct moat_tls_info tls13 = {
	.active = true,
	.protocol = "TLSv1.3",
	.cipher = "TLS_AES_256_GCM_SHA384",
	.bits = 256,
	.alg_bits = 256,
};
static const struct moat_tls_info tls12_cert = {
	.active = true,
	.protocol = "TLSv1.2",
	.cipher = "ECDHE-RSA-AES128-GCM-SHA256",
	.bits = 128,
	.peer_fingerprint = "AB:CD:EF",
};
static const struct moat_tls_info tls_inactive = { .active = false, .protocol = "TLSv1.3" };

struct rcv_case {
	const char *label;
	struct px_received in;
	const char *want;
};

static const struct rcv_case rcv_cases[] = {
	{ "plaintext EHLO",
	    { "client.example", NULL, "192.0.2.7", "mx.example.org", "0123ABCD", true, NULL, false,
		WHEN },
	    "Received: from client.example (unknown [192.0.2.7])\r\n"
	    "\tby mx.example.org (mxmoat) with ESMTP id 0123ABCD;\r\n"
	    "\tThu, 26 Nov 2026 11:30:32 +0000 (UTC)\r\n" },
	{ "plaintext HELO with a reverse name",
	    { "client.example", "host.example", "192.0.2.7", "mx", "1", false, NULL, false, WHEN },
	    "Received: from client.example (host.example [192.0.2.7])\r\n"
	    "\tby mx (mxmoat) with SMTP id 1;\r\n"
	    "\tThu, 26 Nov 2026 11:30:32 +0000 (UTC)\r\n" },
	{ "TLS 1.3, no client certificate requested",
	    { "client.example", NULL, "192.0.2.7", "mx", "1", true, &tls13, false, WHEN },
	    "Received: from client.example (unknown [192.0.2.7])\r\n"
	    "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n"
	    "\t(No client certificate requested)\r\n"
	    "\tby mx (mxmoat) with ESMTPS id 1;\r\n"
	    "\tThu, 26 Nov 2026 11:30:32 +0000 (UTC)\r\n" },
	{ "TLS 1.3, requested and not presented",
	    { "client.example", NULL, "192.0.2.7", "mx", "1", true, &tls13, true, WHEN },
	    "Received: from client.example (unknown [192.0.2.7])\r\n"
	    "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n"
	    "\t(Client did not present a certificate)\r\n"
	    "\tby mx (mxmoat) with ESMTPS id 1;\r\n"
	    "\tThu, 26 Nov 2026 11:30:32 +0000 (UTC)\r\n" },
	{ "TLS 1.2 with a client certificate; alg_bits unknown: bits twice",
	    { "client.example", NULL, "192.0.2.7", "mx", "1", true, &tls12_cert, true, WHEN },
	    "Received: from client.example (unknown [192.0.2.7])\r\n"
	    "\t(using TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits))\r\n"
	    "\t(Client certificate SHA-256 fingerprint AB:CD:EF)\r\n"
	    "\tby mx (mxmoat) with ESMTPS id 1;\r\n"
	    "\tThu, 26 Nov 2026 11:30:32 +0000 (UTC)\r\n" },
	{ "HELO inside TLS: SMTP (RFC 3848 has no SMTPS)",
	    { "client.example", NULL, "192.0.2.7", "mx", "1", false, &tls13, false, WHEN },
	    "Received: from client.example (unknown [192.0.2.7])\r\n"
	    "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n"
	    "\t(No client certificate requested)\r\n"
	    "\tby mx (mxmoat) with SMTP id 1;\r\n"
	    "\tThu, 26 Nov 2026 11:30:32 +0000 (UTC)\r\n" },
	{ "TLS facts not active: plaintext",
	    { "c", NULL, "192.0.2.7", "mx", "1", true, &tls_inactive, false, WHEN },
	    "Received: from c (unknown [192.0.2.7])\r\n"
	    "\tby mx (mxmoat) with ESMTP id 1;\r\n"
	    "\tThu, 26 Nov 2026 11:30:32 +0000 (UTC)\r\n" },
	{ "IPv6 literal tagged", { "c", NULL, "2001:db8::1", "mx", "1", true, NULL, false, WHEN },
	    "Received: from c (unknown [IPv6:2001:db8::1])\r\n"
	    "\tby mx (mxmoat) with ESMTP id 1;\r\n"
	    "\tThu, 26 Nov 2026 11:30:32 +0000 (UTC)\r\n" },
	{ "HELO that would close the comment or carry 8-bit: neutered",
	    { "a(b)c<d>\"e\\f;g@h\xc3\xa9[1.2.3.4]", NULL, "192.0.2.7", "mx", "1", true, NULL,
		false, WHEN },
	    "Received: from a?b?c?d??e?f?g?h??[1.2.3.4] (unknown [192.0.2.7])\r\n"
	    "\tby mx (mxmoat) with ESMTP id 1;\r\n"
	    "\tThu, 26 Nov 2026 11:30:32 +0000 (UTC)\r\n" },
	{ "no HELO: the name stands in",
	    { "", "host.example", "192.0.2.7", "mx", "1", true, NULL, false, WHEN },
	    "Received: from host.example (host.example [192.0.2.7])\r\n"
	    "\tby mx (mxmoat) with ESMTP id 1;\r\n"
	    "\tThu, 26 Nov 2026 11:30:32 +0000 (UTC)\r\n" },
};

Test(received, layout_table)
{
	setenv("TZ", "UTC", 1);
	tzset();
	for (size_t i = 0; i < sizeof(rcv_cases) / sizeof(rcv_cases[0]); i++) {
		const struct rcv_case *c = &rcv_cases[i];
		char out[PX_RECEIVED_MAX];
		size_t n = px_received_format(out, sizeof(out), &c->in);

		cr_assert_eq(n, strlen(c->want), "%s: length %zu, want %zu", c->label, n,
		    strlen(c->want));
		cr_assert(memcmp(out, c->want, n) == 0, "%s: got\n%.*s", c->label, (int)n, out);
	}
}

Test(received, local_time_zone)
{
	struct px_received r = { "c", NULL, "192.0.2.7", "mx", "1", true, NULL, false, WHEN };
	char out[PX_RECEIVED_MAX];
	size_t n;

	setenv("TZ", "CET-1", 1); /* POSIX form: no zoneinfo needed */
	tzset();
	n = px_received_format(out, sizeof(out), &r);
	cr_assert(n > 0);
	cr_assert(strstr(out, "\tThu, 26 Nov 2026 12:30:32 +0100 (CET)\r\n") != NULL, "got %.*s",
	    (int)n, out);
}

Test(received, longest_fits_and_short_buffer_refused)
{
	char helo[256], by[256], out[PX_RECEIVED_MAX];
	struct moat_tls_info t = tls12_cert;
	struct px_received r = { helo, helo, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", by,
		"0123456789ABCDEF", true, &t, true, WHEN };
	size_t n;

	memset(helo, 'h', sizeof(helo) - 1);
	helo[sizeof(helo) - 1] = '\0';
	memset(by, 'b', sizeof(by) - 1);
	by[sizeof(by) - 1] = '\0';
	memset(t.peer_fingerprint, 'F', sizeof(t.peer_fingerprint) - 1);
	t.peer_fingerprint[sizeof(t.peer_fingerprint) - 1] = '\0';
	memset(t.cipher, 'C', sizeof(t.cipher) - 1);
	t.cipher[sizeof(t.cipher) - 1] = '\0';
	setenv("TZ", "UTC", 1);
	tzset();
	n = px_received_format(out, sizeof(out), &r);
	cr_assert(n > 0 && n <= sizeof(out),
	    "every field at its maximum fits PX_RECEIVED_MAX (%zu)", n);
	for (const char *l = out; l < out + n;) {
		const char *e = memchr(l, '\n', (size_t)(out + n - l));

		cr_assert(e != NULL && e > l && e[-1] == '\r', "CRLF line ends");
		cr_assert((size_t)(e - l) + 1 <= 1000,
		    "RFC 5322 2.1.1: at most 998 characters a line");
		l = e + 1;
	}
	cr_assert_eq(px_received_format(out, n, &r), 0, "one byte short: refused, not truncated");
	cr_assert_eq(px_received_format(out, 0, &r), 0);
}
