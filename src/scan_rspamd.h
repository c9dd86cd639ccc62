/*
 * scan_rspamd.h - a client of rspamd's normal worker for one message: HTTP POST /checkv2 with the
 * envelope and connection facts and our Authentication-Results as request headers and the message
 * as a chunked body handed over in pieces (libcurl's multi interface), then rspamd's JSON answer
 * (json-c), bounded in size.
 *
 * Every call that waits is bounded by the timeout given to moat_rspamd_open.
 */
#ifndef MOAT_SCAN_RSPAMD_H
#define MOAT_SCAN_RSPAMD_H

#include <stdbool.h>
#include <stddef.h>

/* An answer lists every symbol with its options: generous, but bounded. */
#define MOAT_RSPAMD_REPLY_MAX ((size_t)256 * 1024)
#define MOAT_RSPAMD_SYMBOLS_MAX 512
#define MOAT_RSPAMD_SUBJECT_MAX 900

enum moat_rspamd_action {
	MOAT_RSPAMD_NO_ACTION = 0,
	MOAT_RSPAMD_GREYLIST,
	MOAT_RSPAMD_ADD_HEADER,
	MOAT_RSPAMD_REWRITE_SUBJECT,
	MOAT_RSPAMD_SOFT_REJECT,
	MOAT_RSPAMD_REJECT,
};

/* What rspamd is told about the message (borrowed strings; NULL: not known, not sent). */
struct moat_rspamd_env {
	const char *ip;
	const char *helo;
	const char *hostname; /* the client's verified name */
	const char *from; /* MAIL FROM path, "" for the null sender */
	const char *const *rcpt;
	size_t nrcpt;
	const char *user; /* SMTP AUTH login */
	const char *queue_id;
	const char *authres; /* our Authentication-Results value (one line), when auth_inbound */
};

struct moat_rspamd_result {
	enum moat_rspamd_action action;
	double score, required;
	char symbols[MOAT_RSPAMD_SYMBOLS_MAX]; /* "NAME,NAME,..." (cut at a name) */
	char subject[MOAT_RSPAMD_SUBJECT_MAX + 1]; /* rewrite subject: the new Subject */
};

struct moat_rspamd;

/* moat_rspamd_open - start the request to HOSTPORT; the connection is made by the first send.
 * NULL with err set when out of memory or HOSTPORT is not host:port. */
struct moat_rspamd *moat_rspamd_open(const char *hostport, unsigned timeout_ms,
    const struct moat_rspamd_env *env, char *err, size_t errlen);

/* moat_rspamd_send - N message bytes; N == 0 ends the body. 0 once libcurl took them all, or -1
 * with err (rspamd unreachable, closed, or slower than the timeout). */
int moat_rspamd_send(struct moat_rspamd *r, const char *p, size_t n, char *err, size_t errlen);

/*
 * moat_rspamd_wait - wait up to TIMEOUT_MS for the answer, and for EXTRA_FD (>= 0) to become
 * readable at the same time (another scanner's reply): *extra_ready says whether it did. 1 when
 * the answer is complete, 0 when it is still to come.
 */
int moat_rspamd_wait(struct moat_rspamd *r, int extra_fd, int timeout_ms, bool *extra_ready);

/* moat_rspamd_result - the answer once moat_rspamd_wait returned 1: 0 with res, or -1 with err
 * (transfer failed, status not 200, longer than MOAT_RSPAMD_REPLY_MAX, malformed JSON). */
int moat_rspamd_result(struct moat_rspamd *r, struct moat_rspamd_result *res, char *err,
    size_t errlen);

/* moat_rspamd_parse - one /checkv2 answer (N bytes of JSON): 0 with res, or -1 with err when it is
 * not an object with a known "action" and a numeric "score" (and a "subject" for rewrite). */
int moat_rspamd_parse(const char *json, size_t n, struct moat_rspamd_result *res, char *err,
    size_t errlen);

void moat_rspamd_free(struct moat_rspamd *r); /* NULL is a no-op */

#endif /* MOAT_SCAN_RSPAMD_H */
