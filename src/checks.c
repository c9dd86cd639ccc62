/*
 * checks.c - the policy core's check table (session_int.h) in the order its rows run, and the
 * rows of the session's own limits and of the rate limits. The other rows live with their group:
 * checks_envelope.c (DNS lists, iprev, greylisting), checks_auth.c (SPF, ARC, DKIM/DMARC) and
 * checks_message.c (sender_login_map, DKIM signing, content scanning). session_events.c runs them; adding
 * a check is a row in its group's file and a pointer here, never front-end code.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "greylist.h"
#include "metrics.h"
#include "policy.h"
#include "ratelimit.h"
#include "scan.h"
#include "checks_int.h"
#include "session_int.h"
#include "sesscount.h"

/* session_size_param - the value of SIZE= in ESMTP parameters (RFC 1870), or 0 if absent. */
static bool
session_size_param(const char *params, uint64_t *size)
{
	const char *p = params;

	*size = 0;
	while (p != NULL && *p != '\0') {
		while (*p == ' ')
			p++;
		if (strncasecmp(p, "SIZE=", 5) == 0) {
			p += 5;
			return moat_size_value(p, strcspn(p, " "), size) == 0;
		}
		p = strchr(p, ' ');
	}
	return true;
}

/* limits_message_size - the refusal of a message past limit_message_size (declared or sent). */
static void
limits_message_size(struct moat_verdict *v)
{
	moat_verdict_set(v, MOAT_REJECT, 552, "5.3.4", "limit_message_size",
	    "Message size exceeds fixed maximum message size");
}

/* limits_header_size - the refusal of a header section past limit_header_size. */
static void
limits_header_size(struct moat_verdict *v)
{
	moat_verdict_set(v, MOAT_REJECT, 552, "5.3.4", "limit_header_size",
	    "Message header section too large");
}

/* ---- the envelope stages ---- */

/* check_limits - the session's own limits: concurrent sessions, messages, SIZE, recipients. */
static enum moat_event_rc
check_limits(struct moat_session *s, enum check_stage st, const char *params,
    struct moat_verdict *v)
{
	uint64_t declared;

	switch (st) {
	case STAGE_CONNECT:
		if (!s->addr_known || s->counted)
			break;
		if (moat_sesscount_acquire(s->pol->sessions, &s->addr,
			s->conf->limit_sessions_per_ip)) {
			s->counted = true;
		} else {
			/* RFC 5321 3.8: 421 and close when the server cannot serve this client now. */
			moat_verdict_set(v, MOAT_TEMPFAIL, 421, "4.7.0", "limit_sessions_per_ip",
			    "Too many concurrent sessions from your address, try again later");
			v->close = true;
		}
		break;
	case STAGE_MAIL:
		if (s->messages >= s->conf->limit_messages_per_session) {
			moat_verdict_set(v, MOAT_TEMPFAIL, 421, "4.7.0",
			    "limit_messages_per_session",
			    "Too many messages in one session, reconnect to send more");
			v->close = true;
		} else if (!session_size_param(params, &declared)) {
			moat_verdict_set(v, MOAT_REJECT, 501, "5.5.4", "bad_size_param",
			    "Bad SIZE parameter");
		} else if (declared > s->conf->limit_message_size) {
			limits_message_size(v); /* RFC 1870 6.1 */
		}
		break;
	case STAGE_RCPT:
		if (!s->in_txn) {
			moat_verdict_set(v, MOAT_REJECT, 503, "5.5.1", "bad_sequence",
			    "Error: need MAIL command");
		} else if (s->nrcpt >= s->conf->limit_recipients) {
			/* RFC 5321 4.5.3.1.10: 452 for too many recipients; the client sends the rest
			 * later. */
			moat_verdict_set(v, MOAT_TEMPFAIL, 452, "4.5.3", "limit_recipients",
			    "Too many recipients");
		}
		break;
	case STAGE_TLS_START:
	case STAGE_EOM:
	case STAGE_AUTH:
	case STAGE_AUTH_FAIL:
		break;
	}
	return MOAT_EVENT_DONE;
}

/* ratelimit_event - what the rate limiter charges at stage ST of this session. */
static enum moat_rl_event
ratelimit_event(const struct moat_session *s, enum check_stage st)
{
	switch (st) {
	case STAGE_CONNECT:
		return MOAT_RL_EV_CONNECT;
	case STAGE_TLS_START:
		return MOAT_RL_EV_TLS;
	case STAGE_AUTH:
		return MOAT_RL_EV_AUTH;
	case STAGE_AUTH_FAIL:
		return MOAT_RL_EV_AUTH_FAIL;
	case STAGE_MAIL:
	case STAGE_RCPT:
	case STAGE_EOM:
		break;
	}
	/* the message buckets are charged with the first recipient: one store call a message */
	return s->rl_msg_counted ? MOAT_RL_EV_RCPT : MOAT_RL_EV_FIRST_RCPT;
}

/* check_ratelimit_answer - the limiter's verdict for PLAN, charged at stage ST. */
static void
check_ratelimit_answer(struct moat_session *s, enum check_stage st, const struct moat_rl_plan *plan,
    const struct moat_verdict *answer, struct moat_verdict *v)
{
	struct moat_rl_result res[MOAT_RL_PLAN_MAX];
	struct moat_verdict down;

	if (answer == NULL) {
		/* the front-end has no store to charge the plan in (or no memory to hand it over):
		 * as for a store that is down, ratelimit_redis_failure decides */
		moat_ratelimit_fallback(s->pol->rl, plan, res);
		moat_ratelimit_decide(s->pol->rl, plan, res, MOAT_RL_STORE_DOWN, s->id, &down);
		answer = &down;
	}
	if (st == STAGE_RCPT && !s->rl_msg_counted)
		s->rl_msg_counted = moat_ratelimit_message_counted(answer);
	if (answer->action != MOAT_CONTINUE)
		*v = *answer;
}

/* check_ratelimit - charge the stage's buckets now, or leave it to the front-end's store. */
static enum moat_event_rc
check_ratelimit(struct moat_session *s, enum check_stage st, const char *params,
    struct moat_verdict *v)
{
	bool auth = st == STAGE_AUTH || st == STAGE_AUTH_FAIL;
	struct moat_rl_subject subj = { .addr = s->addr_known ? &s->addr : NULL,
		.sender = auth ? NULL : s->mail_from,
		.user = auth ? s->auth_try : s->login,
		.sid = s->id };
	struct moat_verdict answer;
	struct moat_rl_plan plan; /* on the stack: only a plan that waits is kept in the session */

	(void)params;
	moat_ratelimit_plan(s->pol->rl, ratelimit_event(s, st), &subj, &plan);
	/* Redis waits: a front-end on an event loop charges the plan in its own store. */
	if (plan.n > 0 && moat_ratelimit_store(s->pol->rl) == MOAT_RL_STORE_REDIS &&
	    !(s->pol->flags & MOAT_POLICY_MAY_BLOCK)) {
		if (s->pending_plan == NULL &&
		    (s->pending_plan = malloc(sizeof(*s->pending_plan))) == NULL) {
			check_ratelimit_answer(s, st, &plan, NULL, v);
			return MOAT_EVENT_DONE;
		}
		*s->pending_plan = plan;
		s->pending_wait = MOAT_WAIT_RATELIMIT;
		return MOAT_EVENT_PENDING;
	}
	moat_ratelimit_charge(s->pol->rl, &plan, s->id, &answer);
	check_ratelimit_answer(s, st, &plan, &answer, v);
	return MOAT_EVENT_DONE;
}

/* check_ratelimit_resume - the front-end's store answered the plan the session kept. */
static void
check_ratelimit_resume(struct moat_session *s, enum check_stage st,
    const struct moat_verdict *answer, struct moat_verdict *v)
{
	check_ratelimit_answer(s, st, s->pending_plan, answer, v);
}


/* moat__session_stick - remember a streaming-phase verdict (the first one wins) and return it. */
void
moat__session_stick(struct moat_session *s, struct moat_verdict *v)
{
	if (s->sticky.action == MOAT_CONTINUE)
		s->sticky = *v;
	*v = s->sticky;
}

/* session_count_bytes - add N message bytes; 552 once past limit_message_size. */
static void
session_count_bytes(struct moat_session *s, uint64_t n, struct moat_verdict *v)
{
	s->size += n;
	if (s->size > s->conf->limit_message_size && s->sticky.action == MOAT_CONTINUE) {
		limits_message_size(v);
		moat__session_stick(s, v);
	}
}

void
moat_session_too_large(struct moat_session *s, enum moat_too_large what, struct moat_verdict *v)
{
	if (what == MOAT_TOO_LARGE_MESSAGE)
		limits_message_size(v);
	else
		limits_header_size(v);
	moat__session_stick(s, v);
}


/* ---- the message stages' hooks of each check ---- */

/* limits_header - header field count and size, and the message size; sticky once reached. */
static void
limits_header(struct moat_session *s, const char *field, size_t len, struct moat_verdict *v)
{
	(void)field;
	s->header_count++;
	s->header_bytes += len + 2;
	if (s->header_count > s->conf->limit_header_count) {
		moat_verdict_set(v, MOAT_REJECT, 552, "5.3.4", "limit_header_count",
		    "Too many header fields");
		moat__session_stick(s, v);
		return;
	}
	if (s->header_bytes > s->conf->limit_header_size) {
		limits_header_size(v);
		moat__session_stick(s, v);
		return;
	}
	session_count_bytes(s, len + 2, v);
}

static void
limits_eoh(struct moat_session *s, struct moat_verdict *v)
{
	session_count_bytes(s, 2, v); /* the empty line */
}

static void
limits_body(struct moat_session *s, const char *chunk, size_t len, struct moat_verdict *v)
{
	(void)chunk;
	session_count_bytes(s, len, v);
}


/* The rows of this file, each with the hooks of the stages it takes part in. */
static const struct moat__check moat__check_limits = { .name = "limits",
	.stages = STAGE_BIT(STAGE_CONNECT) | STAGE_BIT(STAGE_MAIL) | STAGE_BIT(STAGE_RCPT),
	.run = check_limits,
	.header = limits_header,
	.eoh = limits_eoh,
	.body = limits_body };

static const struct moat__check moat__check_ratelimit = { .name = "ratelimit",
	.stages = STAGE_BIT(STAGE_CONNECT) | STAGE_BIT(STAGE_TLS_START) | STAGE_BIT(STAGE_RCPT) |
	    STAGE_BIT(STAGE_AUTH) | STAGE_BIT(STAGE_AUTH_FAIL),
	.run = check_ratelimit,
	.answer = check_ratelimit_resume };

/* The table, in the order the checks run (session_int.h says how it is used). */
const struct moat__check *const moat__checks[] = {
	&moat__check_limits,
	&moat__check_spf,
	&moat__check_ratelimit,
	&moat__check_dnsbl,
	&moat__check_iprev,
	&moat__check_greylist,
	&moat__check_sender_login,
	&moat__check_dkim_sign,
	&moat__check_scan,
	&moat__check_arc,
	&moat__check_auth,
	&moat__check_scan_verdict,
};
const size_t moat__nchecks = sizeof(moat__checks) / sizeof(moat__checks[0]);

/* msg_started is a bit per row */
_Static_assert(sizeof(moat__checks) / sizeof(moat__checks[0]) <= 32,
    "too many checks for msg_started");
