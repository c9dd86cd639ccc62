/*
 * checks_auth.c - the rows of the check table that authenticate inbound mail: SPF before the
 * message (when its result may refuse the transaction), the ARC chain and SPF/DKIM/DMARC at end
 * of data, with the authentication engine they and the DNS rows share (made at its first use).
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arc_verify.h"
#include "auth.h"
#include "dns.h"
#include "iprev.h"
#include "checks_int.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "session_int.h"

/* moat__session_auth_engine - the daemon's engine, made at its first use (an inbound message, a DNS
 * list lookup); NULL + err. */
struct moat_auth_engine *
moat__session_auth_engine(struct moat_session *s, char *err, size_t errlen)
{
	struct moat_auth_engine *e;

	pthread_mutex_lock(&s->pol->lock);
	if (s->pol->auth == NULL &&
	    (s->pol->auth = moat_auth_engine_new(s->conf, err, errlen)) != NULL)
		moat_auth_engine_set_metrics(s->pol->auth, s->pol->metrics);
	e = s->pol->auth;
	pthread_mutex_unlock(&s->pol->lock);
	return e;
}

/* session_auth_env - the envelope as the authentication engine takes it (borrowed strings). */
static void
session_auth_env(const struct moat_session *s, struct moat_auth_env *env)
{
	/* iprev_action = none: a lookup made for selective greylisting is not reported */
	bool iprev =
	    s->iprev.result != MOAT_IPREV_NONE && s->conf->iprev_action != MOAT_IPREV_ACT_NONE;

	env->client_addr = s->addr_known ? s->client_addr : NULL;
	env->helo = s->helo;
	env->mail_from = s->mail_from ? s->mail_from : "";
	env->iprev = iprev ? moat_iprev_result_name(s->iprev.result) : NULL;
	env->iprev_name = iprev ? moat_session_iprev_name(s) : NULL;
}

/* ---- SPF before the message: when its result may refuse the transaction ---- */

/*
 * spf_early - SPF decides at stage ST: inbound mail checked by the engine, an SPF action that
 * refuses (spf_fail_action = reject, spf_temperror_action = tempfail), and ST is MAIL, or RCPT
 * with spf_delay_reject. Refusing before DATA means no message byte is received or spooled.
 */
static bool
spf_early(const struct moat_session *s, enum check_stage st)
{
	const struct moat_conf *c = s->conf;

	return s->direction == MOAT_INBOUND && c->auth_inbound &&
	    (c->spf_fail_action == MOAT_SPF_ACT_ENFORCE ||
		c->spf_temperror_action == MOAT_SPF_ACT_ENFORCE) &&
	    st == (c->spf_delay_reject ? STAGE_RCPT : STAGE_MAIL);
}

/* check_spf - check SPF once a transaction (a work item: DNS), then refuse every command of the
 * stage as the SPF actions say. */
static enum moat_event_rc
check_spf(struct moat_session *s, enum check_stage st, const char *params, struct moat_verdict *v)
{
	(void)params;
	if (!spf_early(s, st))
		return MOAT_EVENT_DONE;
	if (s->spf == NULL) {
		s->pending_wait = MOAT_WAIT_WORK;
		return MOAT_EVENT_PENDING;
	}
	moat_auth_spf_verdict(s->conf, &s->spf->mailfrom, v);
	return MOAT_EVENT_DONE;
}

/* spf_work - the MAIL FROM and HELO identities; an engine that cannot start leaves s->spf NULL
 * (logged; the end of data answers 451 as for any message). */
static void
spf_work(struct moat_session *s, enum check_stage st)
{
	char err[256] = "";
	struct moat_auth_engine *e = moat__session_auth_engine(s, err, sizeof(err));
	struct moat_auth_env env;

	(void)st;
	session_auth_env(s, &env);
	if (e == NULL || (s->spf = moat_auth_spf_new(e, s->conf, &env)) == NULL)
		moat_log(LOG_ERR, s->id, "spf", "result=failed why=\"%s\"",
		    err[0] ? err : "out of memory");
}

/* spf_answer - one log line, the SPF actions; a refused transaction counts its SPF result here,
 * since it never reaches the end of data. */
static void
spf_answer(struct moat_session *s, enum check_stage st, const struct moat_verdict *answer,
    struct moat_verdict *v)
{
	const char *why;

	(void)answer;
	if (s->spf == NULL)
		return;
	why = moat_auth_spf_verdict(s->conf, &s->spf->mailfrom, v);
	moat_log(LOG_INFO, s->id, "spf", "stage=%s result=%s action=%s",
	    st == STAGE_RCPT ? "rcpt" : "mail", moat_spf_result_name(s->spf->mailfrom.result),
	    why == NULL ? "continue" : moat_action_name(v->action));
	if (why != NULL)
		moat_metrics_auth(s->pol->metrics, MOAT_METRICS_SPF,
		    moat_spf_result_name(s->spf->mailfrom.result));
}

/* ---- authentication (auth.c): SPF, DKIM, DMARC on inbound messages, when auth_inbound ---- */

/* session_auth_unavailable - the engine could not start: log it; the message gets 451. */
static void
session_auth_unavailable(struct moat_session *s, const char *err)
{
	moat_log(LOG_ERR, s->id, "auth", "result=failed why=\"%s\"",
	    err[0] ? err : "out of memory");
	s->auth_failed = true;
}

/* ---- ARC (arc_verify.c): the chain of inbound messages, when auth_inbound and arc_verify ---- */

/* session_arc_start - start verifying the chain; the auth row writes its result. */
static void
session_arc_start(struct moat_session *s)
{
	char err[256] = "";
	struct moat_auth_engine *e;

	if (s->direction != MOAT_INBOUND || !s->conf->auth_inbound || !s->conf->arc_verify)
		return;
	if ((e = moat__session_auth_engine(s, err, sizeof(err))) == NULL ||
	    (s->arc = moat_arc_msg_new(moat_auth_engine_dkim(e), s->conf->arc_max_instances)) ==
		NULL)
		session_auth_unavailable(s, err);
}

static void
arc_header(struct moat_session *s, const char *field, size_t len, struct moat_verdict *v)
{
	(void)v;
	if (s->arc != NULL)
		moat_arc_header(s->arc, field, len);
}

static void
arc_eoh(struct moat_session *s, struct moat_verdict *v)
{
	(void)v;
	if (s->arc != NULL)
		moat_arc_eoh(s->arc);
}

static void
arc_body(struct moat_session *s, const char *chunk, size_t len, struct moat_verdict *v)
{
	(void)v;
	if (s->arc != NULL)
		moat_arc_body(s->arc, chunk, len);
}

/* session_arc_end - validate the chain (key lookups); the auth row's A-R and DMARC use it. */
static void
session_arc_end(struct moat_session *s, struct moat_verdict *v)
{
	(void)v;
	if (s->arc == NULL)
		return;
	s->arc_result = moat_arc_eom(s->arc);
	if (s->auth != NULL)
		moat_auth_set_arc(s->auth, s->arc_result);
}

static bool
arc_blocks(const struct moat_session *s)
{
	return s->arc != NULL;
}

/* session_auth_start - start the engine for an inbound message, when auth_inbound; SPF checked
 * before the message (the spf row) is its SPF. */
static void
session_auth_start(struct moat_session *s)
{
	if (s->direction == MOAT_INBOUND && s->conf->auth_inbound) {
		struct moat_auth_env env;
		char err[256] = "";
		struct moat_auth_engine *e = moat__session_auth_engine(s, err, sizeof(err));

		session_auth_env(s, &env);
		if (e == NULL || (s->auth = moat_auth_msg_new(e, s->conf, &env)) == NULL)
			session_auth_unavailable(s, err);
		else if (s->spf != NULL)
			moat_auth_set_spf(s->auth, &s->spf->mailfrom,
			    s->spf->helo_checked ? &s->spf->helo : NULL);
	}
}

/* session_auth_count - the message's SPF (MAIL FROM), DKIM (each signature) and DMARC results. */
static void
session_auth_count(const struct moat_session *s, const struct moat_auth_results *r)
{
	struct moat_metrics *m = s->pol->metrics;

	if (r->spf_done)
		moat_metrics_auth(m, MOAT_METRICS_SPF,
		    moat_spf_result_name(r->spf_mailfrom.result));
	if (r->ndkim == 0)
		moat_metrics_auth(m, MOAT_METRICS_DKIM, "none");
	for (size_t i = 0; i < r->ndkim; i++)
		moat_metrics_auth(m, MOAT_METRICS_DKIM, moat_dkim_result_name(r->dkim[i].result));
	moat_metrics_auth(m, MOAT_METRICS_DMARC, moat_dmarc_result_name(r->dmarc.result));
	if (r->arc != NULL)
		moat_metrics_auth(m, MOAT_METRICS_ARC, moat_arc_result_name(r->arc->result));
}

/* session_auth_end - the verdict and header edits of the engine (forged A-R deleted, ours added). */
static void
session_auth_end(struct moat_session *s, struct moat_verdict *v)
{
	struct moat_hdr_edit edits[MOAT_AUTH_FORGED_MAX + 1];
	struct moat_verdict av;
	char ar[600];
	size_t n, i;

	if (s->auth_failed) {
		moat_verdict_set(&av, MOAT_TEMPFAIL, 451, "4.3.0", "auth_unavailable",
		    "Authentication checks unavailable, try again later");
		moat_verdict_combine(v, &av);
		return;
	}
	if (s->auth == NULL)
		return;
	moat_auth_eom(s->auth, &av);
	session_auth_count(s, moat_auth_results(s->auth));
	n = moat_auth_edits(s->auth, edits, MOAT_AUTH_FORGED_MAX + 1);
	for (i = 0; i < n && moat__session_edit_room(s) > 0; i++) {
		struct moat_hdr_edit *e = &s->edits[s->nedits];
		e->op = edits[i].op;
		e->index = edits[i].index;
		e->name = strdup(edits[i].name);
		e->value = edits[i].value ? strdup(edits[i].value) : NULL;
		if (e->name == NULL || (edits[i].value && e->value == NULL)) {
			free(e->name);
			free(e->value);
			moat_verdict_set(&av, MOAT_TEMPFAIL, 451, "4.3.0", "out_of_memory",
			    "Local error, try again later");
			break;
		}
		s->nedits++;
	}
	if (i < n && av.action < MOAT_TEMPFAIL)
		moat_verdict_set(&av, MOAT_TEMPFAIL, 451, "4.3.0", "too_many_edits",
		    "Local error, try again later");
	moat_log_escape(moat_auth_results(s->auth)->authres,
	    strlen(moat_auth_results(s->auth)->authres), ar, sizeof(ar));
	moat_log(LOG_INFO, s->id, "auth", "verdict=%s reason=%s ar=\"%s\"",
	    moat_action_name(av.action), av.reason && av.reason[0] ? av.reason : "-", ar);
	moat_verdict_combine(v, &av);
}

static void
auth_header(struct moat_session *s, const char *field, size_t len, struct moat_verdict *v)
{
	(void)v;
	if (s->auth != NULL)
		moat_auth_header(s->auth, field, len);
}

static void
auth_eoh(struct moat_session *s, struct moat_verdict *v)
{
	(void)v;
	if (s->auth != NULL)
		moat_auth_eoh(s->auth);
}

static void
auth_body(struct moat_session *s, const char *chunk, size_t len, struct moat_verdict *v)
{
	(void)v;
	if (s->auth != NULL)
		moat_auth_body(s->auth, chunk, len);
}

static bool
auth_blocks(const struct moat_session *s)
{
	return s->auth != NULL;
}

/* The rows (checks.c orders them in the table). */
const struct moat__check moat__check_spf = { .name = "spf",
	.stages = STAGE_BIT(STAGE_MAIL) | STAGE_BIT(STAGE_RCPT),
	.run = check_spf,
	.answer = spf_answer,
	.work = spf_work };

const struct moat__check moat__check_arc = { .name = "arc",
	.start = session_arc_start,
	.header = arc_header,
	.eoh = arc_eoh,
	.body = arc_body,
	.end = session_arc_end,
	.blocks = arc_blocks };

const struct moat__check moat__check_auth = { .name = "auth",
	.start = session_auth_start,
	.header = auth_header,
	.eoh = auth_eoh,
	.body = auth_body,
	.end = session_auth_end,
	.blocks = auth_blocks };
