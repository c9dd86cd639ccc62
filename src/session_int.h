/*
 * session_int.h - the policy core's internals shared by policy.c, session.c and
 * session_events.c (the policy object, sessions and their events) and the check table
 * (checks*.c): struct moat_policy, struct moat_session, and the table's row type. Not for
 * front-ends.
 */
#ifndef MOAT_SESSION_INT_H
#define MOAT_SESSION_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidr.h"
#include "dnsbl.h"
#include "greylist.h"
#include "iprev.h"
#include "policy.h"
#include "ratelimit.h"

#define SESSION_ID_LEN 12
#define HDR_EDITS_MAX 64

/* The stages that run the check table's run hooks, in SMTP order (STAGE_EOM: end of data, before
 * the rows' end hooks). */
enum check_stage {
	STAGE_CONNECT,
	STAGE_TLS_START,
	STAGE_MAIL,
	STAGE_RCPT,
	STAGE_EOM,
	STAGE_AUTH, /* an AUTH exchange starts, or its success is to be accepted */
	STAGE_AUTH_FAIL, /* the backend refused an exchange's credentials */
};
#define STAGE_BIT(st) (1u << (st))

struct moat_policy {
	pthread_mutex_t lock; /* guards conf, and reloads against each other */
	struct moat_conf *conf;
	unsigned flags; /* MOAT_POLICY_* */
	struct moat_ratelimit *rl; /* rules swapped with conf by moat_policy_reload */
	struct moat_sesscount *sessions; /* limit_sessions_per_ip */
	struct moat_metrics *metrics; /* the counters of both daemons (metrics.h) */
	struct moat_auth_engine *auth; /* resolver + DKIM verifier, made at the first inbound
	                                      message (auth_inbound); guarded by lock */
	struct moat_scan_health *scan_health; /* the scanners' back-off (scan.c) */
	EVP_MD *sha256; /* fetched once: greylisting's keys (NULL: fetched per use) */
	/* the front-end's part of the generation (the proxy's TLS contexts), swapped with conf */
	const struct moat_frontend_ops *fe_ops;
	void *fe;
};

struct moat_session {
	struct moat_policy *pol;
	struct moat_conf *conf; /* the snapshot current at connect */
	char id[SESSION_ID_LEN + 1];

	/* connection */
	char *client_addr;
	char *client_name;
	char *listener;
	unsigned client_port;
	struct moat_addr addr;
	bool addr_known;
	bool counted; /* holds a slot in pol->sessions */
	char *helo;
	bool esmtp;
	bool authenticated;
	char *login; /* for per-user rate limits; never logged */
	char *auth_try; /* the login of the exchange being decided (STAGE_AUTH*); never logged */
	struct moat_tls_info tls;
	unsigned errors;
	unsigned junk;
	unsigned messages;

	struct moat_dnsbl_score dnsbl; /* the DNS lists' answer about the client (connect) */
	struct moat_iprev iprev; /* the client's reverse DNS, looked up at the first inbound MAIL */
	struct moat_gl_answer greylist; /* the store's answer about the RCPT being decided */

	/* a stage waiting on the front-end (moat_session_pending, moat_session_resume) */
	bool pending;
	enum moat_wait pending_wait; /* set by the row's run before it returns MOAT_EVENT_PENDING */
	enum check_stage pending_stage;
	size_t pending_row;
	struct moat_rl_plan *pending_plan; /* a plan left to the front-end's store (Redis) */

	/* transaction */
	bool in_txn;
	char *mail_from;
	unsigned nrcpt;
	char *rcpt_path; /* the RCPT being decided; kept in rcpts once it is accepted */
	char **rcpts; /* accepted recipients, for the scanners (rspamd's Rcpt) */
	size_t rcpts_cap;
	bool rl_msg_counted; /* the message rate-limit buckets are charged */
	uint64_t size; /* header + body bytes seen */
	uint64_t header_bytes;
	unsigned header_count;
	struct moat_verdict sticky; /* a verdict reached while the message streamed */
	enum moat_direction direction;
	const char *direction_why;
	struct moat_hdr_edit *edits; /* HDR_EDITS_MAX of them once a message needs one */
	size_t nedits;
	struct moat_sign *sign; /* DKIM signing of an outbound message, or NULL */
	struct moat_arc_msg *arc; /* the ARC chain of an inbound message, or NULL */
	const struct moat_arc_result *arc_result; /* in arc, after the arc row's end */
	struct moat_auth_spf *spf; /* SPF checked before the message (the spf row), or NULL */
	struct moat_auth_msg *auth; /* SPF/DKIM/DMARC of an inbound message, or NULL */
	struct moat_scan *scan; /* clamd and rspamd on this message, or NULL */
	moat_msg_read_fn msg_read; /* the front-end's copy of the message (rspamd), or NULL */
	void *msg_read_arg;
	struct moat_from *sl_from; /* the header From, for sender_login_map; or NULL */
	unsigned msg_started; /* rows of the check table started for this message */
	bool auth_failed; /* auth_inbound on, but the engine could not start */
};

/*
 * The check table: every check of a session, in the order it runs, with the hooks of the stages
 * it takes part in (NULL: not at that stage).
 *
 * Stages with run hooks (connect, tls_start, mail, rcpt, eom; the stages mask): run refuses by
 * filling v, or sets s->pending_wait and returns MOAT_EVENT_PENDING to wait on the front-end:
 * MOAT_WAIT_RATELIMIT leaves s->pending_plan for the front-end's store, and answer takes the
 * store's verdict; MOAT_WAIT_WORK leaves a blocking work item, which the front-end runs through
 * work (off its event loop, on any thread: it may touch only the session and what is thread-safe)
 * before answer is called with a NULL answer. The first row that refuses ends the stage; at eom
 * the end hooks then run only when no row refused.
 *
 * Message stages: start at the first header field (or at the end of a header section without
 * any, so a message without header fields is checked like any other: no From field fails the
 * From rule of DMARC, and what is passed on carries our Authentication-Results); header, eoh and
 * body take the message as it streams, and a refusal there is sticky (moat__session_stick) and
 * stops the rows after it; end gives each row's verdict and header edits at end of message,
 * combined (the more severe wins); blocks says whether end waits on DNS or signs.
 */
struct moat__check {
	const char *name;
	unsigned stages;
	enum moat_event_rc (*run)(struct moat_session *s, enum check_stage st, const char *params,
	    struct moat_verdict *v);
	void (*answer)(struct moat_session *s, enum check_stage st,
	    const struct moat_verdict *answer, struct moat_verdict *v);
	void (*work)(struct moat_session *s, enum check_stage st);
	void (*start)(struct moat_session *s);
	void (
	    *header)(struct moat_session *s, const char *field, size_t len, struct moat_verdict *v);
	void (*eoh)(struct moat_session *s, struct moat_verdict *v);
	void (*body)(struct moat_session *s, const char *chunk, size_t len, struct moat_verdict *v);
	void (*end)(struct moat_session *s, struct moat_verdict *v);
	bool (*blocks)(const struct moat_session *s);
};

extern const struct moat__check *const moat__checks[];
extern const size_t moat__nchecks;

/* moat__session_clear_edits - forget the header edits of the last message (session.c). */
void moat__session_clear_edits(struct moat_session *s);
/* moat__session_edit_room - how many more header edits this message may have: the array is
 * allocated by the first message that needs it, so an idle session does not carry it (0 when
 * it is full or cannot be allocated) (session.c). */
size_t moat__session_edit_room(struct moat_session *s);
/* moat__session_reset_txn - back to "no transaction": RSET, end of message, a new MAIL
 * (session.c). */
void moat__session_reset_txn(struct moat_session *s);
/* moat__session_count_refusal - a verdict the session hands out refuses: count it by its reason
 * (session.c). */
void moat__session_count_refusal(const struct moat_session *s, const struct moat_verdict *v);

#endif /* MOAT_SESSION_INT_H */
