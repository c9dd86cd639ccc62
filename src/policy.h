/*
 * policy.h - the transaction model both front-ends drive.
 *
 * A front-end (proxy/ or milter/) translates its protocol into events on a struct moat_session:
 * connect, helo, tls_start, tls, auth, mail, rcpt, data, header, eoh, body, eom, abort, and close
 * (moat_session_free). Each event fills a struct moat_verdict: continue, accept, tempfail, reject,
 * discard or quarantine, with an SMTP code, an RFC 3463 enhanced status code and text. At end of
 * message the session also hands out header edits (add at the top, delete the n-th occurrence of
 * a name) for the front-end to apply.
 *
 * The core decides which checks run at which event, in one fixed order (the check table in
 * checks.c); a front-end only reports events and turns verdicts into replies. A check that waits
 * on I/O leaves its event pending: the event returns MOAT_EVENT_PENDING and
 * moat_session_pending() says on what (enum moat_wait):
 *   MOAT_WAIT_RATELIMIT  a charge in the shared rate-limit store (Redis). The front-end charges
 *                        moat_session_pending_plan() in its own non-blocking store and hands the
 *                        store's verdict to moat_session_resume.
 *   MOAT_WAIT_WORK       a blocking work item of the check (DNS queries, a store lookup, a
 *                        scanner's round trip). The front-end calls moat_session_work and then
 *                        moat_session_resume(s, NULL, v), both off its event loop (the proxy: on
 *                        the libuv threadpool), since the rows after the waiting one (at eom, the
 *                        end hooks) may block too.
 * The resume may leave the event pending again when a later check waits; the front-end loops.
 * A policy made with MOAT_POLICY_MAY_BLOCK (mxmoat-milter: libmilter's threads may wait) never
 * pends: the core charges the store and runs work items in the caller's thread. Any event that
 * returns enum moat_event_rc may pend, end of data (moat_session_eom) included. Stages and checks
 * (doc/architecture.md has the table):
 *   connect    limit_sessions_per_ip; rate limits: deny list, connections per address and network
 *   tls_start  rate limit: TLS handshakes per address (the proxy; the milter's MTA does TLS)
 *   mail       limit_messages_per_session, SIZE against limit_message_size
 *   rcpt       limit_recipients; rate limits: with the first recipient the message buckets and the
 *              recipient buckets in one charge (per address, sender, user), then recipients
 *              greylisting of inbound mail (greylist.c; a work item with Redis)
 *   header..eom   header limits, DKIM signing, content scanning (clamd, rspamd), SPF/DKIM/DMARC
 *
 * The core knows no sockets, no libuv and no libmilter. It is reentrant: a session is used by one
 * thread at a time (any thread), and everything shared between sessions (struct moat_policy) is
 * either immutable or locked. Events that may wait on DNS or sign (eom, when
 * moat_session_eom_blocks says so) or hash a large body (body, when the message is held) must be
 * called off an event loop; the proxy calls them on the libuv threadpool. The mail event does no
 * I/O (limits, SIZE, the trust rules: SPF is evaluated at end of message), so the proxy runs it on
 * its loop; a check at MAIL that waits on I/O leaves it pending on a work item.
 */
#ifndef MOAT_POLICY_H
#define MOAT_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cidr.h"
#include "conf.h"

/* Ordered by severity: moat_verdict_combine keeps the more severe of two verdicts. */
enum moat_action {
	MOAT_CONTINUE = 0, /* no objection; go on */
	MOAT_ACCEPT, /* accept now, skip further checks for this message */
	MOAT_QUARANTINE, /* accept and hold (milter: smfi_quarantine) */
	MOAT_DISCARD, /* accept and drop silently: only ever by explicit configuration */
	MOAT_TEMPFAIL, /* 4xx */
	MOAT_REJECT, /* 5xx */
};

#define MOAT_REPLY_TEXT_MAX 256

struct moat_verdict {
	enum moat_action action;
	unsigned code; /* 3-digit SMTP reply code; 0 with MOAT_CONTINUE */
	char status[12]; /* RFC 3463 enhanced status, e.g. "5.7.1"; "" if none */
	char text[MOAT_REPLY_TEXT_MAX]; /* reply text, no CRLF; safe to send as is */
	const char *reason; /* short static token for the log, e.g. "limit_recipients" */
	bool close; /* the front-end must close the session after replying */
};

/* Facts about TLS on the client leg, when known (proxy after the handshake, milter from macros). */
struct moat_tls_info {
	bool active;
	char protocol[16]; /* "TLSv1.3" */
	char cipher[64];
	unsigned bits;
	unsigned alg_bits; /* the cipher's full strength (Postfix's "256/256 bits"); 0: not known */
	char sni[256];
	char peer_fingerprint[96]; /* "" when no client certificate or not requested */
};

/* What the front-end knows at connect time. All strings are copied by moat_session_new. */
struct moat_client {
	const char *addr; /* numeric address of the SMTP client */
	unsigned port;
	const char *name; /* reverse DNS name as verified by the MTA, or NULL ("unknown") */
	const char *listener; /* name of the listener that accepted (proxy: "addr:port";
	                            milter: {daemon_name}), or NULL */
	const char *session_id; /* front-end's id for log lines; NULL: the core makes one */
};

enum moat_direction {
	MOAT_INBOUND = 0, /* verify */
	MOAT_OUTBOUND = 1, /* sign */
};

enum moat_hdr_op {
	MOAT_HDR_INSERT_TOP, /* add "name: value" above every existing header */
	MOAT_HDR_DELETE, /* delete the index-th (1-based) occurrence of name */
};

struct moat_hdr_edit {
	enum moat_hdr_op op;
	char *name;
	char *value; /* INSERT_TOP only: folded with CRLF + tab where long */
	unsigned index; /* DELETE only */
};

struct moat_policy;
struct moat_session;

/*
 * MOAT_POLICY_MAY_BLOCK - the threads that call the session events may wait on the shared
 * rate-limit store (mxmoat-milter: libmilter's worker threads). Without it (an event loop) a check
 * that would wait leaves its event pending instead.
 */
#define MOAT_POLICY_MAY_BLOCK 0x1u

/*
 * moat_policy_new - shared state for one daemon: the current configuration snapshot, the rate
 * limiter (rules, buckets, store) and the tables that outlive a session (concurrent sessions per
 * client). Takes its own reference on conf. NULL with err set on a bad rate-limit setting or out
 * of memory.
 */
struct moat_policy *moat_policy_new(struct moat_conf *conf, unsigned flags, char *err,
    size_t errlen);
void moat_policy_free(struct moat_policy *pol);

/*
 * The front-end's part of a generation, opaque to the core (mxmoat-proxy's TLS contexts). build
 * makes it from a new snapshot; OLD is the running part, which it may draw on (borrowed); NULL with
 * err set refuses the reload. ref and unref count references (unref(NULL) is a no-op).
 */
struct moat_frontend_ops {
	void *(*build)(void *old, const struct moat_conf *conf, char *err, size_t errlen);
	void *(*ref)(void *fe);
	void (*unref)(void *fe);
};

/* moat_policy_set_frontend - at start, before any session and reload: OPS (kept) and the first
 * generation's part FE (taken over). */
void moat_policy_set_frontend(struct moat_policy *pol, const struct moat_frontend_ops *ops,
    void *fe);
/* moat_policy_frontend - a reference to the current generation's part (NULL: none); release it
 * with ops->unref. Thread-safe. */
void *moat_policy_frontend(struct moat_policy *pol);

/*
 * moat_policy_reload - install a new generation: the snapshot, the rate-limit rules and the
 * front-end's part built from it, all or none (buckets and store stay). 0; -1 with err when the
 * core refused it, -2 when the front-end's build did; the old generation is kept then. Sessions in
 * flight keep their snapshot. Thread-safe.
 */
int moat_policy_reload(struct moat_policy *pol, struct moat_conf *conf, char *err, size_t errlen);

/* moat_policy_ratelimit - the limiter, for a front-end's own non-blocking store (borrowed). */
struct moat_ratelimit *moat_policy_ratelimit(struct moat_policy *pol);

struct moat_metrics;
/* moat_policy_metrics - the daemon's counters (metrics.h), for the front-end's own counts and the
 * metrics endpoint (borrowed, valid until moat_policy_free). */
struct moat_metrics *moat_policy_metrics(struct moat_policy *pol);

/* moat_policy_flush - before an exit that does not free the policy (the proxy leaves sessions
 * past drain_timeout running): write what the DMARC report recorder still holds. Thread-safe. */
void moat_policy_flush(struct moat_policy *pol);

/* moat_policy_conf - a new reference to the current snapshot; release with moat_conf_unref. */
struct moat_conf *moat_policy_conf(struct moat_policy *pol);

/*
 * moat_session_new - a session for a new connection, holding a reference to the snapshot current
 * now; NULL when out of memory. The connect event (moat_session_connect) comes next.
 */
struct moat_session *moat_session_new(struct moat_policy *pol, const struct moat_client *client);

/* Events that may wait on the front-end's I/O return one of these. */
enum moat_event_rc {
	MOAT_EVENT_DONE = 0, /* v holds the verdict */
	MOAT_EVENT_PENDING = 1, /* moat_session_pending says what to do, then moat_session_resume */
};

/* What a pending event waits for (the file comment above says what the front-end does). */
enum moat_wait {
	MOAT_WAIT_NONE = 0, /* no event is pending */
	MOAT_WAIT_RATELIMIT, /* charge moat_session_pending_plan in the front-end's store */
	MOAT_WAIT_WORK, /* run moat_session_work off the event loop */
};

/*
 * moat_session_connect - the connect event: whether to serve the client (MOAT_CONTINUE) or refuse
 * it (e.g. 421 4.7.0 too many sessions, 554 5.7.1 deny-listed, with v->close set).
 */
enum moat_event_rc moat_session_connect(struct moat_session *s, struct moat_verdict *v);

/* moat_session_tls_start - a TLS handshake with the client is about to start (STARTTLS, implicit
 * TLS). A refusal has v->close set. */
enum moat_event_rc moat_session_tls_start(struct moat_session *s, struct moat_verdict *v);

/* moat_session_pending - what the pending event waits for; MOAT_WAIT_NONE when none is pending. */
enum moat_wait moat_session_pending(const struct moat_session *s);

struct moat_rl_plan;
/* moat_session_pending_plan - the buckets a MOAT_WAIT_RATELIMIT event waits to have charged
 * (valid until moat_session_resume); NULL otherwise. */
const struct moat_rl_plan *moat_session_pending_plan(const struct moat_session *s);

/*
 * moat_session_work - run the blocking work item a MOAT_WAIT_WORK event waits for (DNS, a store,
 * a scanner); may block for as long as the check's own timeout. Call it off an event loop, from
 * one thread at a time like every event; a no-op when no work item is pending.
 */
void moat_session_work(struct moat_session *s);

/*
 * moat_session_resume - finish the pending event into v: after MOAT_WAIT_RATELIMIT with the
 * store's verdict (moat_ratelimit_decide's, with the fallback applied) as answer, or NULL when
 * the front-end has no store to charge it in (the core then decides as for a store that is down,
 * by ratelimit_redis_failure), after
 * MOAT_WAIT_WORK (and moat_session_work) with answer NULL, in the thread that ran the work. It
 * may leave the event pending again (MOAT_EVENT_PENDING) when a later check waits too.
 */
enum moat_event_rc moat_session_resume(struct moat_session *s, const struct moat_verdict *answer,
    struct moat_verdict *v);

/* moat_session_free - the close event; NULL is a no-op. Valid in any state. */
void moat_session_free(struct moat_session *s);

const struct moat_conf *moat_session_conf(const struct moat_session *s); /* borrowed */
struct moat_metrics *moat_session_metrics(const struct moat_session *s); /* borrowed */
const char *moat_session_id(const struct moat_session *s); /* valid until free */
/* moat_session_iprev_name - the client's forward-confirmed reverse name (iprev=pass), once the
 * first inbound MAIL has looked it up; NULL otherwise (borrowed, valid until free). */
const char *moat_session_iprev_name(const struct moat_session *s);
/*
 * moat_session_spent - the session has carried limit_messages_per_session messages: its next MAIL
 * would get 421. A front-end that owns the client's connection ends the session once the last
 * message's final reply is out and nothing more was sent, so an MTA that caches connections
 * (Postfix, Exim) opens a new one at once instead of deferring its next message on the 421.
 */
bool moat_session_spent(const struct moat_session *s);

void moat_session_helo(struct moat_session *s, const char *helo, bool esmtp,
    struct moat_verdict *v);
void moat_session_tls(struct moat_session *s, const struct moat_tls_info *tls);
void moat_session_auth(struct moat_session *s, const char *login); /* login: not logged */
/*
 * Failed AUTH across sessions, for a front-end that runs the exchange itself (mxmoat-proxy relays
 * it to its backend). moat_session_auth_begin - before the exchange: 421 4.7.0 with v->close when
 * the client's address has no failed-AUTH token left (ratelimit_auth_fail_per_ip).
 * moat_session_auth_result - the backend's answer for LOGIN (copied, never logged): OK
 * authenticates the session (moat_session_auth) unless the address or the login has no token
 * left; not OK (credentials refused) charges both, and finding one used up gives the 421. So a
 * used-up login gets the same 421 whether its password was right or wrong. Both may pend on the
 * rate-limit store.
 */
enum moat_event_rc moat_session_auth_begin(struct moat_session *s, struct moat_verdict *v);
enum moat_event_rc moat_session_auth_result(struct moat_session *s, const char *login, bool ok,
    struct moat_verdict *v);
/* moat_session_helo_reset - STARTTLS succeeded (RFC 3207 4.2): the HELO/EHLO name is forgotten,
 * and a new EHLO is required. */
void moat_session_helo_reset(struct moat_session *s);
/* What the session knows, for a front-end that must not keep copies: the HELO/EHLO name (NULL
 * before one, and after moat_session_helo_reset; valid until the next HELO or the free), whether
 * it was EHLO, whether a login succeeded, the client leg's TLS facts (active false: none). */
const char *moat_session_helo_name(const struct moat_session *s);
bool moat_session_esmtp(const struct moat_session *s);
bool moat_session_authenticated(const struct moat_session *s);
const struct moat_tls_info *moat_session_tls_info(const struct moat_session *s);
/* The client as the front-end reported it at connect (struct moat_client), valid until the free:
 * its numeric address ("unknown" when none was given), its port, and its verified name (NULL when
 * none was given or it is "unknown", Postfix's word for none). */
const char *moat_session_client_addr(const struct moat_session *s);
unsigned moat_session_client_port(const struct moat_session *s);
const char *moat_session_client_name(const struct moat_session *s);

/* MAIL FROM: path without angle brackets ("" for the null sender); params as sent, or NULL. */
enum moat_event_rc moat_session_mail(struct moat_session *s, const char *path, const char *params,
    struct moat_verdict *v);
enum moat_event_rc moat_session_rcpt(struct moat_session *s, const char *path, const char *params,
    struct moat_verdict *v);
/* The DATA command (or its milter equivalent): every recipient is known. */
void moat_session_data(struct moat_session *s, struct moat_verdict *v);

/*
 * moat_session_header - one raw header field, "Name: value" with any folding CRLFs inside, without
 * the final CRLF, exactly as it will be relayed. Counts against header size and count limits.
 */
void moat_session_header(struct moat_session *s, const char *field, size_t len,
    struct moat_verdict *v);
/* moat_session_eoh - the end of the header section. Every message has one, also a message without
 * header fields (empty, or starting with the empty line): the checks start at the first header
 * field or here, so such a message is checked like any other and fails the From rule. */
void moat_session_eoh(struct moat_session *s, struct moat_verdict *v);
/* Body bytes, CRLF line endings, dot-unstuffed. */
void moat_session_body(struct moat_session *s, const char *chunk, size_t len,
    struct moat_verdict *v);
/* End of message: the final verdict (after the resume when it pends); header edits are then
 * available from moat_session_edits. */
enum moat_event_rc moat_session_eom(struct moat_session *s, struct moat_verdict *v);

/*
 * moat_session_eom_blocks - will moat_session_eom wait on DNS (SPF, DKIM keys, DMARC) or sign? True
 * once the header events (the first field, or eoh) started the authentication engine or a signer; false
 * when it only returns the limits' verdict. Valid after the header events.
 */
bool moat_session_eom_blocks(const struct moat_session *s);

/* What a front-end could not keep within a limit of the configuration (moat_session_too_large). */
enum moat_too_large {
	MOAT_TOO_LARGE_MESSAGE, /* the message, counted in the front-end's store (limit_message_size) */
	MOAT_TOO_LARGE_HEADER, /* a header field, assembled by the front-end (limit_header_size) */
};

/*
 * moat_session_too_large - the front-end reports that what the client sent outgrew a limit before
 * it could hand it to the core (a held message's store, a header field the MTA passed in pieces).
 * v is the limit's refusal, sticky like one the core reached itself: the first refusal of the
 * message wins and is returned again at end of message.
 */
void moat_session_too_large(struct moat_session *s, enum moat_too_large what,
    struct moat_verdict *v);

/*
 * moat_msg_read_fn - read back up to LEN bytes of the message from offset OFF into OUT, exactly as
 * the header, eoh and body events gave it (each header field with its CRLF, the empty line, the
 * body): the bytes copied, 0 at its end, or a negative errno. May block (a spool file).
 */
typedef ssize_t (*moat_msg_read_fn)(void *arg, uint64_t off, char *out, size_t len);

/*
 * moat_session_rereads_message - will end of message read the message back? True when rspamd
 * checks it (scan_rspamd; outbound only with scan_outbound): rspamd is asked once our
 * Authentication-Results are known, at the end, so it is handed the message from the
 * front-end's copy (the proxy's held message, the milter's own copy). Valid from the MAIL event on.
 */
bool moat_session_rereads_message(const struct moat_session *s);

/*
 * moat_session_set_reader - how end of message reads this message back (READ with ARG, borrowed;
 * both must stay valid until moat_session_eom is done). Forgotten when the transaction ends.
 * Without one a message that needs it (moat_session_rereads_message) counts as a scanner failure.
 */
void moat_session_set_reader(struct moat_session *s, moat_msg_read_fn read, void *arg);

/* moat_session_edits - edits to apply for the message just ended; valid until the next event. */
const struct moat_hdr_edit *moat_session_edits(const struct moat_session *s, size_t *n);

/*
 * moat_session_edits_need_body - will the end-of-message edits or verdict of this transaction
 * depend on the whole body? True when the core writes Authentication-Results (auth_inbound,
 * inbound) or DKIM-Signature (a signing table, outbound), and when a content scanner looks at the
 * message (scan_clamd, scan_rspamd; outbound only with scan_outbound). A front-end that cannot add
 * header fields after the message has passed (mxmoat-proxy) must then hold the message until end
 * of message, and call the message events off its event loop: the scanners are handed the message
 * from them. Valid from the MAIL event on (the direction is decided there).
 */
bool moat_session_edits_need_body(const struct moat_session *s);

/*
 * moat_size_value - an RFC 1870 size-value (1*20DIGIT) in p[0..n) into *v: 0, or -1 when it is
 * not 1 to 20 digits. A 20-digit value past UINT64_MAX is UINT64_MAX, never a wrapped small
 * number: it exceeds every size limit (552 5.3.4, RFC 1870 6.1).
 */
int moat_size_value(const char *p, size_t n, uint64_t *v);

/* moat_session_abort - RSET, the transaction ended without end of message, or the front-end is
 * done with an ended one (its verdict, edits and summary used): the transaction's state is freed
 * now rather than at the next MAIL, RSET or HELO. */
void moat_session_abort(struct moat_session *s);

/*
 * moat_session_error - the front-end rejected a command (syntax, sequence). Counts towards
 * limit_errors; when junk is set (unknown command) also towards limit_junk_commands. v is
 * MOAT_CONTINUE, or a 421 with v->close once a limit is reached.
 */
void moat_session_error(struct moat_session *s, bool junk, struct moat_verdict *v);

/*
 * moat_session_junk - the client sent a command that moves no mail (NOOP, RSET, VRFY, HELP),
 * before it is answered. Counts towards limit_junk_commands only (Postfix's
 * smtpd_junk_command_limit); nothing resets the count within a session. v is MOAT_CONTINUE, or
 * a 421 with v->close for the command that reaches the limit, which is then not carried out.
 */
void moat_session_junk(struct moat_session *s, struct moat_verdict *v);

/* moat_session_direction - inbound (verify) or outbound (sign), with why, for the log. */
enum moat_direction moat_session_direction(const struct moat_session *s, const char **why);

/*
 * moat_session_summary - one line for the log about the message just ended or aborted:
 * "from=<..> nrcpt=N size=N verdict=... reason=... dir=..." with client text escaped.
 */
size_t moat_session_summary(const struct moat_session *s, const struct moat_verdict *v, char *out,
    size_t len);

/* Verdict helpers (verdict.c). */
void moat_verdict_continue(struct moat_verdict *v);
void moat_verdict_set(struct moat_verdict *v, enum moat_action action, unsigned code,
    const char *status, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* moat_verdict_combine - keep in dst the more severe of dst and src. */
void moat_verdict_combine(struct moat_verdict *dst, const struct moat_verdict *src);
const char *moat_action_name(enum moat_action a);
/* moat_verdict_format_reply - "550 5.7.1 text\r\n" into out; returns length or 0 if it won't fit. */
size_t moat_verdict_format_reply(const struct moat_verdict *v, char *out, size_t len);

#endif /* MOAT_POLICY_H */
