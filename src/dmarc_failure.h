/*
 * dmarc_failure.h - DMARC failure reports (RFC 9991) in the Authentication Failure Reporting
 * Format (RFC 6591, an extension of ARF, RFC 5965): when a report is due (the policy's fo=
 * options), the report itself, the mailto: destinations of ruf= and rua= (RFC 9990 3), and the
 * per-hour limits that bound how many reports one gateway makes.
 *
 * The report is built on the mail thread from what the authentication engine already holds (the
 * results and the header fields it was fed); queuing, storing, DNS checks and mailing happen
 * elsewhere (dmarc_report.c's writer thread, mxmoat-report --send). The original body is never
 * included; recipient addresses in the header are redacted (RFC 6591 4, RFC 6590).
 */
#ifndef MOAT_DMARC_FAILURE_H
#define MOAT_DMARC_FAILURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct moat_auth_results;

/* fo= options (RFC 9991 / RFC 9989 4.7): a bit each. */
#define MOAT_DFR_FO_ALL 1u /* 0: no mechanism produced an aligned pass (the default) */
#define MOAT_DFR_FO_ANY 2u /* 1: some mechanism did not produce an aligned pass */
#define MOAT_DFR_FO_DKIM 4u /* d: a DKIM signature failed, aligned or not */
#define MOAT_DFR_FO_SPF 8u /* s: SPF failed, aligned or not */

#define MOAT_DFR_HEADERS_MAX ((size_t)64 * 1024) /* a larger header makes no report */
#define MOAT_DFR_ADDR_MAX 320
#define MOAT_DFR_WINDOW_S 3600 /* the limits count reports per hour */
#define MOAT_DFR_LIMIT_SLOTS 4096 /* keys (domains, addresses) the limits remember */

/*
 * moat_dfr_fo_parse - the options of an fo= value of LEN bytes ("0:d", "1", "s:d"); colon
 * separated, blanks around each ignored, unknown options ignored (RFC 9989 4.7). An empty
 * value or one with no known option is the default, 0.
 */
unsigned moat_dfr_fo_parse(const char *fo, size_t len);

/* moat_dfr_due - is a failure report due for RES under its policy's fo= and ruf=? */
bool moat_dfr_due(const struct moat_auth_results *res);

/*
 * moat_dmarc_uri_fn - one destination of a rua=/ruf= list: its address (percent-decoded, one
 * mailbox) and size limit in bytes (0: none). Non-zero stops the walk and is returned.
 */
typedef int (*moat_dmarc_uri_fn)(const char *addr, uint64_t limit, void *arg);
/* moat_dmarc_uri_each - FN for each mailto: URI of LIST that holds one address we can mail
 * (RFC 9990 3, an optional "!size" with k, m, g or t); others are skipped. */
int moat_dmarc_uri_each(const char *list, moat_dmarc_uri_fn fn, void *arg);

/* The per-hour limits (thread-safe). */
struct moat_dfr_limit;
struct moat_dfr_limit *moat_dfr_limit_new(void);
void moat_dfr_limit_free(struct moat_dfr_limit *l);
/*
 * moat_dfr_limit_take - one report more for KIND (a short tag) and KEY (case-insensitive) in
 * the hour of NOW: true when fewer than MAX were taken in it. When the table is full of keys
 * still counting this hour the answer is false: a flood makes fewer reports, never more.
 */
bool moat_dfr_limit_take(struct moat_dfr_limit *l, const char *kind, const char *key, unsigned max,
    int64_t now);

/* What one report is made of (borrowed). */
struct moat_dfr_input {
	const struct moat_auth_results *res;
	const char *client_addr;
	const char *mail_from; /* RFC5321.MailFrom, "" for the null sender */
	const char *headers; /* the original header fields, each ending in CRLF */
	size_t headers_len;
	int64_t time;
	const char *user_agent; /* "mxmoat/VERSION" */
};

/*
 * moat_dfr_build - the report as one MIME entity: its Content-Type (multipart/report;
 * report-type=feedback-report) and the three parts: a human-readable text, the
 * message/feedback-report fields (Feedback-Type: auth-failure, Auth-Failure: dmarc, ...) and
 * the redacted header as text/rfc822-headers. malloc'd, NUL-terminated, CRLF line ends; NULL
 * when out of memory.
 */
char *moat_dfr_build(const struct moat_dfr_input *in);

#endif /* MOAT_DMARC_FAILURE_H */
