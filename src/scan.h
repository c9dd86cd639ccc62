/*
 * scan.h - content scanning of one message by clamd (scan_clamd.c) and rspamd (scan_rspamd.c),
 * for the check table's "scan" rows (checks.c).
 *
 * clamd gets the message while it arrives (header fields, end of header, body), in pieces of at
 * most 64 KB: it is never held a second time here. At end of data clamd is told the end and
 * scans while the rows after the scan row (ARC, SPF/DKIM/DMARC) wait on DNS. rspamd is asked
 * after them, with our Authentication-Results among the envelope facts of its request, so it need
 * not repeat SPF, DKIM and DMARC: moat_scan_finish reads the message back from the front-end's
 * copy into rspamd's request, then waits for both answers (each bounded by scan_timeout), maps
 * them to one verdict (the more severe wins) and header edits, and logs one line with the virus
 * name, rspamd's action, score and symbols. A scanner that fails (cannot be reached, too slow,
 * answers nonsense) counts per scan_failure; after a failure it is not asked again for a back-off
 * period (1 s doubling to 60 s, shared by every session of the daemon) and the reason is logged
 * at most once per minute.
 *
 * Every call may block up to scan_timeout: a caller on an event loop runs them elsewhere (the
 * proxy holds a message while a scanner is on, so its message events run on the threadpool).
 */
#ifndef MOAT_SCAN_H
#define MOAT_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "policy.h"
#include "scan_rspamd.h"

/* The edits one message's scan can ask for: forged fields of our names removed, ours added. */
#define MOAT_SCAN_FORGED_MAX 8
#define MOAT_SCAN_EDITS_MAX (4 * MOAT_SCAN_FORGED_MAX + 3)

/* moat_scan_health - per daemon: whether each scanner is in its back-off period (locked). */
struct moat_scan_health;
struct moat_scan_health *moat_scan_health_new(void);
void moat_scan_health_free(struct moat_scan_health *h); /* NULL is a no-op */

/* moat_scan_wanted - does CONF scan a message of this direction (scan_outbound)? */
bool moat_scan_wanted(const struct moat_conf *conf, bool outbound);

struct moat_scan;

/*
 * moat_scan_begin - open clamd for one message when CONF names it (one that cannot be reached or
 * is backing off is marked failed, not retried); rspamd waits for moat_scan_finish. SID names
 * the session in the log. NULL only when out of memory.
 */
struct moat_scan *moat_scan_begin(struct moat_scan_health *h, const struct moat_conf *conf,
    const char *sid);

/* The message as it arrives: one header field (without its CRLF), the end of the header
 * section, body bytes (CRLF line ends, unstuffed). */
void moat_scan_header(struct moat_scan *sc, const char *field, size_t len);
void moat_scan_eoh(struct moat_scan *sc);
void moat_scan_body(struct moat_scan *sc, const char *p, size_t len);

/* moat_scan_end_data - the message is complete: clamd is told and starts scanning. */
void moat_scan_end_data(struct moat_scan *sc);

/*
 * moat_scan_finish - ask rspamd (when CONF names it): ENV (with our Authentication-Results) as
 * its request's headers, the message read back through READ with ARG (NULL: no copy, a failure)
 * as its body. Then wait for both answers; V gets the verdict (MOAT_CONTINUE when nothing objects)
 * and EDITS up to MOAT_SCAN_EDITS_MAX header edits (strings owned by the caller after the call);
 * *n their number.
 */
void moat_scan_finish(struct moat_scan *sc, const struct moat_rspamd_env *env,
    moat_msg_read_fn read, void *arg, struct moat_verdict *v, struct moat_hdr_edit *edits,
    size_t *n);

/*
 * moat_scan_skip - the message's verdict V is already final (a reject, which no scanner's answer
 * can outrank): rspamd is not asked, clamd's answer is not waited for (its connection is closed)
 * and the scan line says so. Neither counts for or against a scanner's health.
 */
void moat_scan_skip(struct moat_scan *sc, const struct moat_verdict *v);

void moat_scan_free(struct moat_scan *sc); /* NULL is a no-op */

/* moat__scan_now_ms - CLOCK_MONOTONIC in milliseconds: the scanners' deadlines. */
int64_t moat__scan_now_ms(void);

#endif /* MOAT_SCAN_H */
