/*
 * spf.h - Sender Policy Framework (RFC 7208): check_host() for the MAIL FROM and HELO identities.
 *
 * Synchronous; runs on whichever thread calls it (milter threads, libuv threadpool workers).
 * Every DNS query goes through the resolver handed in. Bounds (RFC 7208 4.6.4 and ours): 10
 * DNS-querying terms, 2 void lookups, 10 MX and 10 PTR names per term, records of at most
 * MOAT_DNS_MAX_TXT bytes, domain names of at most 253 bytes after macro expansion.
 */
#ifndef MOAT_SPF_H
#define MOAT_SPF_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "cidr.h"
#include "dns.h"

enum moat_spf_res {
	MOAT_SPF_NONE = 0,
	MOAT_SPF_NEUTRAL,
	MOAT_SPF_PASS,
	MOAT_SPF_FAIL,
	MOAT_SPF_SOFTFAIL,
	MOAT_SPF_TEMPERROR,
	MOAT_SPF_PERMERROR,
};

enum moat_spf_identity {
	MOAT_SPF_ID_MAILFROM = 0,
	MOAT_SPF_ID_HELO,
};

#define MOAT_SPF_DOMAIN_MAX 253
#define MOAT_SPF_LOCAL_MAX 256 /* RFC 5321 4.5.3.1.1 says 64; MTAs accept more */
#define MOAT_SPF_SENDER_MAX 512 /* local-part "@" domain */
#define MOAT_SPF_EXP_MAX 1024 /* explanation text */
#define MOAT_SPF_REASON_MAX 256
#define MOAT_SPF_TRACE_MAX 16384 /* --explain text */
#define MOAT_SPF_LOOKUP_LIMIT 10 /* RFC 7208 4.6.4 */
#define MOAT_SPF_VOID_LIMIT 2 /* RFC 7208 4.6.4 */
#define MOAT_SPF_TIME_LIMIT 20000 /* ms for one evaluation, RFC 7208 4.6.4 */

struct moat_spf_opts {
	const char *receiver; /* %{r}: our host name; NULL: "unknown" */
	const char *default_exp; /* explanation when the domain gives none; NULL: a built-in one */
	time_t now; /* %{t}; 0: time(NULL) */
	bool trace; /* keep a trace of every term evaluated (mxmoat-check --explain) */
	unsigned time_limit_ms; /* whole evaluation; 0: MOAT_SPF_TIME_LIMIT; then temperror */
};

struct moat_spf_result {
	enum moat_spf_res result;
	enum moat_spf_identity identity;
	char domain[MOAT_SPF_DOMAIN_MAX + 2]; /* the domain checked, as written by the client */
	char sender[MOAT_SPF_SENDER_MAX + 2]; /* local@domain used for the macros */
	char mechanism[128]; /* the term that decided, e.g. "-all" ("" if none) */
	char reason[MOAT_SPF_REASON_MAX]; /* why, for errors and none */
	char explanation[MOAT_SPF_EXP_MAX]; /* fail only: the domain's exp= text or the default */
	unsigned lookups; /* DNS-querying terms used */
	unsigned void_lookups;
	char *trace; /* opts.trace: NUL-terminated, free with _clear */
	size_t trace_len;
};

/*
 * moat_spf_check_mailfrom - the MAIL FROM identity (RFC 7208 2.4): MAIL_FROM as given in the
 * envelope (with or without <>); the null sender checks postmaster@HELO instead.
 */
enum moat_spf_res moat_spf_check_mailfrom(struct moat_dns *dns, const struct moat_addr *client,
    const char *helo, const char *mail_from, const struct moat_spf_opts *opts,
    struct moat_spf_result *out);

/* moat_spf_check_helo - the HELO identity (RFC 7208 2.3): postmaster@HELO. */
enum moat_spf_res moat_spf_check_helo(struct moat_dns *dns, const struct moat_addr *client,
    const char *helo, const struct moat_spf_opts *opts, struct moat_spf_result *out);

/* moat_spf_result_clear - free the trace; the result may be reused. */
void moat_spf_result_clear(struct moat_spf_result *out);

/* moat_spf_result_name - "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror". */
const char *moat_spf_result_name(enum moat_spf_res res);

#endif /* MOAT_SPF_H */
