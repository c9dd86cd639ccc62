/*
 * dns.h - the one resolver layer every lookup goes through (SPF, DKIM keys, DMARC records).
 *
 * Synchronous and thread-safe: callers are libmilter threads or libuv threadpool workers, never an
 * event loop. Backed by libunbound (cache, per-query timeout, forwarder from dns_resolver, optional
 * DNSSEC), or by an in-process table for tests that need records a zone file cannot express.
 * Answers are bounded (record size, record count, CNAME chain); anything past a bound is
 * MOAT_DNS_PERMFAIL, never a crash.
 */
#ifndef MOAT_DNS_H
#define MOAT_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum moat_dns_type {
	MOAT_DNS_A = 1,
	MOAT_DNS_PTR = 12,
	MOAT_DNS_MX = 15,
	MOAT_DNS_TXT = 16,
	MOAT_DNS_AAAA = 28,
};

enum moat_dns_status {
	MOAT_DNS_OK = 0,         /* one or more records */
	MOAT_DNS_NXDOMAIN,       /* the name does not exist */
	MOAT_DNS_NODATA,         /* the name exists, no record of that type */
	MOAT_DNS_TEMPFAIL,       /* timeout, SERVFAIL, network error: try again later */
	MOAT_DNS_PERMFAIL,       /* malformed or over-limit answer, bad query name */
};

/*
 * One record. TXT: the character-strings concatenated (len bytes, may contain NUL; data is also
 * NUL-terminated for convenience). A/AAAA: 4 or 16 address bytes. MX: pref and the exchange name
 * (text, no trailing dot). PTR: the name (text, no trailing dot).
 */
struct moat_dns_rr {
	uint16_t pref;
	size_t len;
	char *data;
};

struct moat_dns_answer {
	enum moat_dns_status status;
	bool secure;             /* DNSSEC-validated */
	size_t n;
	struct moat_dns_rr *rr;
};

struct moat_dns;

#endif /* MOAT_DNS_H */
