/*
 * session_events.c - the events front-ends report for a session (see policy.h). Each event runs
 * the rows of the check table (checks.c) that take part in its stage, in order: at connect,
 * tls_start, mail and rcpt the first row that refuses ends the stage, and a row that waits on the
 * front-end's store leaves it pending until moat_session_resume; header, eoh and body feed the
 * message to the rows, and eom combines their verdicts and header edits. Verdicts carry RFC 5321
 * reply codes and RFC 3463 enhanced status codes; a verdict reached while the message streams
 * (size, header limits) is sticky and is returned again at end of message, so a front-end that
 * must keep reading until the final dot still replies with the right error.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "metrics.h"
#include "policy.h"
#include "ratelimit.h"
#include "scan.h"
#include "session_int.h"
#include "trust.h"

/* session_keep_rcpt - an accepted recipient: counted, and its path kept for the scanners (out of
 * memory: counted all the same, only rspamd is not told). */
static void
session_keep_rcpt(struct moat_session *s)
{
	if (s->nrcpt == s->rcpts_cap) {
		size_t cap = s->rcpts_cap ? 2 * s->rcpts_cap : 8;
		char **grown = realloc(s->rcpts, cap * sizeof(*grown));

		if (grown != NULL) {
			s->rcpts = grown;
			s->rcpts_cap = cap;
		}
	}
	if (s->nrcpt < s->rcpts_cap) {
		s->rcpts[s->nrcpt] = s->rcpt_path;
		s->rcpt_path = NULL;
	}
	s->nrcpt++;
}

/* eom_end - no row refused at end of data: the rows' end hooks, their verdicts combined. */
static void
eom_end(struct moat_session *s, struct moat_verdict *v)
{
	for (size_t i = 0; i < moat__nchecks; i++)
		if (moat__checks[i]->end != NULL)
			moat__checks[i]->end(s, v);
}

/* eom_close - the transaction is over, with verdict V (counted); its envelope stays readable for
 * moat_session_summary until the next MAIL, RSET or HELO. */
static void
eom_close(struct moat_session *s, const struct moat_verdict *v)
{
	s->messages++;
	s->in_txn = false;
	s->msg_read = NULL; /* the front-end's copy goes with the transaction */
	s->msg_read_arg = NULL;
	moat_metrics_message(s->pol->metrics, v->action);
	moat__session_count_refusal(s, v);
}

/*
 * stage_done - the stage's verdict is final: record what an accepted command changes. A refused
 * connection or TLS handshake is closed: before the greeting, or with no TLS and no plaintext
 * allowed after STARTTLS, there is nothing more to say.
 */
static enum moat_event_rc
stage_done(struct moat_session *s, enum check_stage st, struct moat_verdict *v)
{
	s->pending = false;
	s->pending_wait = MOAT_WAIT_NONE;
	if (st != STAGE_EOM) /* eom_close counts the message's final verdict */
		moat__session_count_refusal(s, v);
	switch (st) {
	case STAGE_CONNECT:
	case STAGE_TLS_START:
		if (v->action != MOAT_CONTINUE)
			v->close = true;
		break;
	case STAGE_AUTH:
	case STAGE_AUTH_FAIL:
		if (v->action != MOAT_CONTINUE)
			v->close = true;
		else if (st == STAGE_AUTH && s->auth_try != NULL)
			moat_session_auth(s, s->auth_try); /* a success, with budget left */
		free(s->auth_try);
		s->auth_try = NULL;
		break;
	case STAGE_MAIL:
		if (v->action != MOAT_CONTINUE)
			moat__session_reset_txn(s);
		break;
	case STAGE_RCPT:
		if (v->action == MOAT_CONTINUE)
			session_keep_rcpt(s);
		free(s->rcpt_path);
		s->rcpt_path = NULL;
		break;
	case STAGE_EOM:
		if (v->action == MOAT_CONTINUE)
			eom_end(s, v);
		eom_close(s, v);
		break;
	}
	return MOAT_EVENT_DONE;
}

/*
 * stage_run - the rows of stage ST from row FROM on, until one objects or waits. A work item is
 * run here, in the caller's thread, when the policy's threads may block (MOAT_POLICY_MAY_BLOCK).
 */
static enum moat_event_rc
stage_run(struct moat_session *s, enum check_stage st, size_t from, const char *params,
    struct moat_verdict *v)
{
	for (size_t i = from; i < moat__nchecks; i++) {
		const struct moat__check *c = moat__checks[i];

		if (!(c->stages & STAGE_BIT(st)))
			continue;
		if (c->run(s, st, params, v) == MOAT_EVENT_PENDING) {
			if (s->pending_wait == MOAT_WAIT_WORK &&
			    (s->pol->flags & MOAT_POLICY_MAY_BLOCK)) {
				s->pending_wait = MOAT_WAIT_NONE;
				c->work(s, st);
				c->answer(s, st, NULL, v);
			} else {
				s->pending = true;
				s->pending_stage = st;
				s->pending_row = i;
				return MOAT_EVENT_PENDING;
			}
		}
		if (v->action != MOAT_CONTINUE)
			break;
	}
	return stage_done(s, st, v);
}

enum moat_event_rc
moat_session_connect(struct moat_session *s, struct moat_verdict *v)
{
	moat_verdict_continue(v);
	return stage_run(s, STAGE_CONNECT, 0, NULL, v);
}

enum moat_event_rc
moat_session_tls_start(struct moat_session *s, struct moat_verdict *v)
{
	moat_verdict_continue(v);
	return stage_run(s, STAGE_TLS_START, 0, NULL, v);
}

enum moat_wait
moat_session_pending(const struct moat_session *s)
{
	return s->pending ? s->pending_wait : MOAT_WAIT_NONE;
}

const struct moat_rl_plan *
moat_session_pending_plan(const struct moat_session *s)
{
	return s->pending && s->pending_wait == MOAT_WAIT_RATELIMIT ? s->pending_plan : NULL;
}

void
moat_session_work(struct moat_session *s)
{
	if (s->pending && s->pending_wait == MOAT_WAIT_WORK)
		moat__checks[s->pending_row]->work(s, s->pending_stage);
}

enum moat_event_rc
moat_session_resume(struct moat_session *s, const struct moat_verdict *answer,
    struct moat_verdict *v)
{
	enum check_stage st = s->pending_stage;
	size_t row = s->pending_row;

	moat_verdict_continue(v);
	if (!s->pending)
		return MOAT_EVENT_DONE;
	moat__checks[row]->answer(s, st, s->pending_wait == MOAT_WAIT_WORK ? NULL : answer, v);
	if (v->action != MOAT_CONTINUE)
		return stage_done(s, st, v);
	return stage_run(s, st, row + 1, NULL, v);
}

enum moat_event_rc
moat_session_mail(struct moat_session *s, const char *path, const char *params,
    struct moat_verdict *v)
{
	moat_verdict_continue(v);
	moat__session_reset_txn(s);
	moat__session_clear_edits(s);
	if ((s->mail_from = strdup(path)) == NULL) {
		moat_verdict_set(v, MOAT_TEMPFAIL, 451, "4.3.0", "out_of_memory",
		    "Local error, try again later");
		return MOAT_EVENT_DONE;
	}
	s->in_txn = true;
	s->direction = moat_trust_direction(s->conf, s->addr_known ? &s->addr : NULL, s->listener,
	    s->authenticated, &s->direction_why);
	return stage_run(s, STAGE_MAIL, 0, params, v);
}

enum moat_event_rc
moat_session_rcpt(struct moat_session *s, const char *path, const char *params,
    struct moat_verdict *v)
{
	moat_verdict_continue(v);
	free(s->rcpt_path);
	s->rcpt_path = strdup(path);
	return stage_run(s, STAGE_RCPT, 0, params, v);
}

enum moat_event_rc
moat_session_auth_begin(struct moat_session *s, struct moat_verdict *v)
{
	moat_verdict_continue(v);
	free(s->auth_try);
	s->auth_try = NULL;
	return stage_run(s, STAGE_AUTH, 0, NULL, v);
}

enum moat_event_rc
moat_session_auth_result(struct moat_session *s, const char *login, bool ok, struct moat_verdict *v)
{
	moat_verdict_continue(v);
	free(s->auth_try);
	if ((s->auth_try = strdup(login != NULL ? login : "")) == NULL) {
		moat_verdict_set(v, MOAT_TEMPFAIL, 421, "4.3.0", "out_of_memory",
		    "Service temporarily unavailable");
		v->close = true;
		return MOAT_EVENT_DONE;
	}
	return stage_run(s, ok ? STAGE_AUTH : STAGE_AUTH_FAIL, 0, NULL, v);
}

void
moat_session_data(struct moat_session *s, struct moat_verdict *v)
{
	moat_verdict_continue(v);
	if (!s->in_txn || s->nrcpt == 0)
		moat_verdict_set(v, MOAT_REJECT, 503, "5.5.1", "bad_sequence",
		    "Error: need RCPT command");
}

/* msg_start - start row I for this message, once: at its first header field or end of header. */
static void
msg_start(struct moat_session *s, size_t i)
{
	if (moat__checks[i]->start != NULL && !(s->msg_started & (1u << i))) {
		s->msg_started |= 1u << i;
		moat__checks[i]->start(s);
	}
}

void
moat_session_header(struct moat_session *s, const char *field, size_t len, struct moat_verdict *v)
{
	moat_verdict_continue(v);
	if (s->sticky.action != MOAT_CONTINUE) {
		*v = s->sticky;
		return;
	}
	for (size_t i = 0; i < moat__nchecks && v->action == MOAT_CONTINUE; i++) {
		msg_start(s, i);
		if (moat__checks[i]->header != NULL)
			moat__checks[i]->header(s, field, len, v);
	}
}

void
moat_session_eoh(struct moat_session *s, struct moat_verdict *v)
{
	moat_verdict_continue(v);
	if (s->sticky.action != MOAT_CONTINUE) {
		*v = s->sticky;
		return;
	}
	for (size_t i = 0; i < moat__nchecks && v->action == MOAT_CONTINUE; i++) {
		msg_start(s, i);
		if (moat__checks[i]->eoh != NULL)
			moat__checks[i]->eoh(s, v);
	}
}

void
moat_session_body(struct moat_session *s, const char *chunk, size_t len, struct moat_verdict *v)
{
	moat_verdict_continue(v);
	if (s->sticky.action != MOAT_CONTINUE) {
		*v = s->sticky;
		return;
	}
	for (size_t i = 0; i < moat__nchecks && v->action == MOAT_CONTINUE; i++)
		if (moat__checks[i]->body != NULL)
			moat__checks[i]->body(s, chunk, len, v);
}

enum moat_event_rc
moat_session_eom(struct moat_session *s, struct moat_verdict *v)
{
	moat_verdict_continue(v);
	if (s->sticky.action != MOAT_CONTINUE) {
		*v = s->sticky;
		eom_close(s, v);
		return MOAT_EVENT_DONE;
	}
	return stage_run(s, STAGE_EOM, 0, NULL, v);
}

const struct moat_hdr_edit *
moat_session_edits(const struct moat_session *s, size_t *n)
{
	*n = s->nedits;
	return s->edits;
}

bool
moat_session_eom_blocks(const struct moat_session *s)
{
	for (size_t i = 0; i < moat__nchecks; i++)
		if (moat__checks[i]->blocks != NULL && moat__checks[i]->blocks(s))
			return true;
	return false;
}

bool
moat_session_rereads_message(const struct moat_session *s)
{
	return s->in_txn && s->conf->scan_rspamd[0] != '\0' &&
	    moat_scan_wanted(s->conf, s->direction == MOAT_OUTBOUND);
}

void
moat_session_set_reader(struct moat_session *s, moat_msg_read_fn read, void *arg)
{
	s->msg_read = read;
	s->msg_read_arg = arg;
}

bool
moat_session_edits_need_body(const struct moat_session *s)
{
	if (moat_scan_wanted(s->conf, s->direction == MOAT_OUTBOUND))
		return true;
	if (s->direction == MOAT_OUTBOUND)
		return s->conf->signer != NULL;
	return s->conf->auth_inbound;
}
