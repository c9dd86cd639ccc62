/*
 * checks.c - the rows of the policy core's check table (session_int.h): the session's own limits,
 * the rate limits, DNS lists, iprev, greylisting, DKIM signing, content scanning (clamd, rspamd) and SPF/DKIM/DMARC, each with
 * the hooks of the stages it takes part in. policy.c runs them; adding a check is a row here and
 * its functions, never front-end code.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arc_verify.h"
#include "auth.h"
#include "dkim_sign.h"
#include "dns.h"
#include "dnsbl.h"
#include "greylist.h"
#include "iprev.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "ratelimit.h"
#include "rfc5322_from.h"
#include "sender_login.h"
#include "scan.h"
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

/* check_ratelimit_answer - the limiter's verdict for the plan charged at stage ST. */
static void
check_ratelimit_answer(struct moat_session *s, enum check_stage st,
    const struct moat_verdict *answer, struct moat_verdict *v)
{
	struct moat_rl_result res[MOAT_RL_PLAN_MAX];
	struct moat_verdict down;

	if (answer == NULL) {
		/* the front-end has no store to charge the plan in: as for a store that is down,
		 * ratelimit_redis_failure decides */
		moat_ratelimit_fallback(s->pol->rl, &s->pending_plan, res);
		moat_ratelimit_decide(s->pol->rl, &s->pending_plan, res, MOAT_RL_STORE_DOWN, s->id,
		    &down);
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

	(void)params;
	moat_ratelimit_plan(s->pol->rl, ratelimit_event(s, st), &subj, &s->pending_plan);
	/* Redis waits: a front-end on an event loop charges the plan in its own store. */
	if (s->pending_plan.n > 0 && moat_ratelimit_store(s->pol->rl) == MOAT_RL_STORE_REDIS &&
	    !(s->pol->flags & MOAT_POLICY_MAY_BLOCK)) {
		s->pending_wait = MOAT_WAIT_RATELIMIT;
		return MOAT_EVENT_PENDING;
	}
	moat_ratelimit_charge(s->pol->rl, &s->pending_plan, s->id, &answer);
	check_ratelimit_answer(s, st, &answer, v);
	return MOAT_EVENT_DONE;
}

/* session_auth_engine - the daemon's engine, made at its first use (an inbound message, a DNS
 * list lookup); NULL + err. */
static struct moat_auth_engine *
session_auth_engine(struct moat_session *s, char *err, size_t errlen)
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

/* ---- DNS block and allow lists (dnsbl.c): the client's score at connect ---- */

/* check_dnsbl - ask the lists (a work item: the queries block), unless none is set or the client
 * is internal or has no known address. */
static enum moat_event_rc
check_dnsbl(struct moat_session *s, enum check_stage st, const char *params, struct moat_verdict *v)
{
	(void)st;
	(void)params;
	(void)v;
	if (s->conf->dnsbl == NULL || !s->addr_known ||
	    moat_cidr_set_match(s->conf->internal_set, &s->addr))
		return MOAT_EVENT_DONE;
	s->pending_wait = MOAT_WAIT_WORK;
	return MOAT_EVENT_PENDING;
}

/* session_dns - the engine's resolver for a work item; NULL, logged under WHAT, when the engine
 * cannot start (the DNS layer then fails every query of the item temporarily). */
static struct moat_dns *
session_dns(struct moat_session *s, const char *what)
{
	char err[256] = "";
	struct moat_auth_engine *e = session_auth_engine(s, err, sizeof(err));

	if (e == NULL) {
		moat_log(LOG_ERR, s->id, what, "result=failed why=\"%s\"",
		    err[0] ? err : "out of memory");
		return NULL;
	}
	return moat_auth_engine_dns(e);
}

/* dnsbl_work - every list at once, within dnsbl_timeout, through the engine's resolver. */
static void
dnsbl_work(struct moat_session *s, enum check_stage st)
{
	(void)st;
	moat_dnsbl_score(s->conf->dnsbl, session_dns(s, "dnsbl"), &s->addr, s->conf->dnsbl_timeout,
	    &s->dnsbl);
}

/* dnsbl_answer - the score against dnsbl_threshold: dnsbl_action, and one log line. */
static void
dnsbl_answer(struct moat_session *s, enum check_stage st, const struct moat_verdict *answer,
    struct moat_verdict *v)
{
	bool listed = s->dnsbl.score >= s->conf->dnsbl_threshold;
	enum moat_dnsbl_action act = (enum moat_dnsbl_action)s->conf->dnsbl_action;
	char zone[MOAT_DNS_NAME_MAX + 1];

	(void)st;
	(void)answer;
	moat_log(listed ? LOG_NOTICE : LOG_INFO, s->id, "dnsbl",
	    "client=%s score=%d hits=%s failed=%u action=%s", s->client_addr, s->dnsbl.score,
	    s->dnsbl.hits[0] ? s->dnsbl.hits : "-", s->dnsbl.nfailed,
	    !listed                          ? "pass"
		: act == MOAT_DNSBL_REJECT   ? "reject"
		: act == MOAT_DNSBL_TEMPFAIL ? "tempfail"
					     : "log");
	if (!listed || act == MOAT_DNSBL_LOG)
		return;
	/* postscreen's reply names the first list that hit */
	snprintf(zone, sizeof(zone), "%.*s", (int)strcspn(s->dnsbl.hits, ","), s->dnsbl.hits);
	if (act == MOAT_DNSBL_REJECT)
		moat_verdict_set(v, MOAT_REJECT, 554, "5.7.1", "dnsbl",
		    "Service unavailable; client [%s] blocked using %s", s->client_addr,
		    zone[0] ? zone : "DNS lists");
	else
		moat_verdict_set(v, MOAT_TEMPFAIL, 421, "4.7.1", "dnsbl",
		    "Service unavailable; client [%s] listed by %s, try again later",
		    s->client_addr, zone[0] ? zone : "DNS lists");
}

/* ---- iprev (iprev.c): the client's forward-confirmed reverse DNS, at the first inbound MAIL ---- */

/* iprev_loopback - a loopback client has no reverse name worth a lookup (localhost). */
static bool
iprev_loopback(const struct moat_addr *a)
{
	static const uint8_t v6_loopback[16] = { [15] = 1 };

	return a->v4 ? a->bytes[12] == 127 : memcmp(a->bytes, v6_loopback, 16) == 0;
}

/* iprev_verdict - with iprev_action = reject, a client without a confirmed name is refused
 * (RFC 7372: 5.7.25 reverse DNS validation failed; 4.7.25 while DNS fails). */
static void
iprev_verdict(struct moat_session *s, struct moat_verdict *v)
{
	if (s->conf->iprev_action != MOAT_IPREV_ACT_REJECT || s->iprev.result == MOAT_IPREV_PASS)
		return;
	if (s->iprev.result == MOAT_IPREV_TEMPERROR)
		moat_verdict_set(v, MOAT_TEMPFAIL, 451, "4.7.25", "iprev",
		    "Reverse DNS of [%s] cannot be checked now, try again later", s->client_addr);
	else
		moat_verdict_set(v, MOAT_REJECT, 550, "5.7.25", "iprev",
		    "Reverse DNS validation failed for [%s]", s->client_addr);
}

/* check_iprev - look the client up once a session, for inbound mail when the result is used: in
 * our Authentication-Results (auth_inbound), required (iprev_action = reject), or by selective
 * greylisting. */
static enum moat_event_rc
check_iprev(struct moat_session *s, enum check_stage st, const char *params, struct moat_verdict *v)
{
	enum moat_iprev_action act = (enum moat_iprev_action)s->conf->iprev_action;
	bool used = act == MOAT_IPREV_ACT_REJECT ||
	    (act == MOAT_IPREV_ACT_TAG && s->conf->auth_inbound) ||
	    s->conf->greylist == MOAT_GREYLIST_SELECTIVE;

	(void)st;
	(void)params;
	if (!used || s->direction != MOAT_INBOUND || !s->addr_known || iprev_loopback(&s->addr))
		return MOAT_EVENT_DONE;
	if (s->iprev.result == MOAT_IPREV_NONE) {
		s->pending_wait = MOAT_WAIT_WORK;
		return MOAT_EVENT_PENDING;
	}
	iprev_verdict(s, v);
	return MOAT_EVENT_DONE;
}

/* iprev_work - the PTR lookup and the forward lookups of its names. */
static void
iprev_work(struct moat_session *s, enum check_stage st)
{
	(void)st;
	moat_iprev_check(session_dns(s, "iprev"), &s->addr, &s->iprev);
}

/* iprev_answer - one log line, then iprev_action. */
static void
iprev_answer(struct moat_session *s, enum check_stage st, const struct moat_verdict *answer,
    struct moat_verdict *v)
{
	(void)st;
	(void)answer;
	moat_log(LOG_INFO, s->id, "iprev", "client=%s result=%s name=%s", s->client_addr,
	    moat_iprev_result_name(s->iprev.result), s->iprev.name[0] ? s->iprev.name : "-");
	iprev_verdict(s, v);
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
	struct moat_auth_engine *e = session_auth_engine(s, err, sizeof(err));
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

/* ---- greylisting (greylist.c): new triplets of inbound clients, at RCPT ---- */

/*
 * greylist_wanted - greylist this recipient: inbound mail from a known address, neither in
 * internal_networks nor authenticated, whose DNS list score is not at or below a negative
 * dnsbl_allowlist_threshold; with greylist = selective only a client with a score above 0 or
 * without forward-confirmed reverse DNS.
 */
static bool
greylist_wanted(const struct moat_session *s)
{
	const struct moat_conf *c = s->conf;

	if (c->greylist == MOAT_GREYLIST_NO || s->direction != MOAT_INBOUND || !s->addr_known ||
	    s->authenticated || moat_cidr_set_match(c->internal_set, &s->addr))
		return false;
	if (c->dnsbl != NULL && c->dnsbl_allowlist_threshold < 0 &&
	    s->dnsbl.score <= c->dnsbl_allowlist_threshold)
		return false;
	return c->greylist == MOAT_GREYLIST_ALL || s->dnsbl.score > 0 ||
	    s->iprev.result != MOAT_IPREV_PASS;
}

/* greylist_work - the store's answer about this RCPT's triplet (blocks on Redis). */
static void
greylist_work(struct moat_session *s, enum check_stage st)
{
	const struct moat_conf *c = s->conf;
	const struct moat_gl_times t = { c->greylist_delay, c->greylist_retry_window,
		c->greylist_pass_ttl };
	struct moat_gl_keys k;

	(void)st;
	if (moat_greylist_keys(&s->addr, c->greylist_net_prefix_v4, c->greylist_net_prefix_v6,
		s->mail_from ? s->mail_from : "", s->rcpt_path ? s->rcpt_path : "", &k) < 0) {
		/* only out of memory in the hash: refused for now, as a store that is down */
		memset(&s->greylist, 0, sizeof(s->greylist));
		s->greylist.result = MOAT_GL_STORE_DOWN;
		return;
	}
	moat_greylist_check(s->pol->rl, &k, &t, s->id, &s->greylist);
}

/* greylist_answer - one log line (a passed network's only with log_verbose), then the verdict. */
static void
greylist_answer(struct moat_session *s, enum check_stage st, const struct moat_verdict *answer,
    struct moat_verdict *v)
{
	(void)st;
	(void)answer;
	moat_log(s->greylist.result == MOAT_GL_NET_PASSED ? LOG_DEBUG : LOG_INFO, s->id, "greylist",
	    "client=%s result=%s wait=%llums%s", s->client_addr,
	    moat_greylist_result_name(s->greylist.result), (unsigned long long)s->greylist.wait_ms,
	    s->greylist.fallback ? " store=memory" : "");
	moat_greylist_verdict(&s->greylist, v);
}

/* check_greylist - ask the store now (the embedded one, or Redis where the caller may block), or
 * leave it to a work item. */
static enum moat_event_rc
check_greylist(struct moat_session *s, enum check_stage st, const char *params,
    struct moat_verdict *v)
{
	(void)params;
	if (!greylist_wanted(s))
		return MOAT_EVENT_DONE;
	if (moat_ratelimit_store(s->pol->rl) == MOAT_RL_STORE_REDIS &&
	    !(s->pol->flags & MOAT_POLICY_MAY_BLOCK)) {
		s->pending_wait = MOAT_WAIT_WORK;
		return MOAT_EVENT_PENDING;
	}
	greylist_work(s, st);
	greylist_answer(s, st, NULL, v);
	return MOAT_EVENT_DONE;
}

/* ---- DKIM signing (dkim_sign.c): outbound messages, when a signing table is loaded ---- */

/* session_sign_start - start signing an outbound message, when a signing table is loaded. */
static void
session_sign_start(struct moat_session *s)
{
	if (s->direction == MOAT_OUTBOUND && s->conf->signer != NULL &&
	    (s->sign = moat_sign_begin(s->conf->signer)) == NULL)
		moat_log(LOG_ERR, s->id, "dkim-sign", "result=failed why=\"out of memory\"");
}

/*
 * session_seal_end - arc_seal: our ARC set as INSERT_TOP edits above the DKIM signatures, AAR
 * first so the seal ends on top. A set that cannot be made is logged; the message goes on
 * unsealed (it is still signed).
 */
static void
session_seal_end(struct moat_session *s)
{
	static const char *const names[3] = { "ARC-Authentication-Results", "ARC-Message-Signature",
		"ARC-Seal" };
	char *values[3] = { NULL, NULL, NULL }, why[320] = "no header seen or out of memory";
	int rc = s->sign != NULL ? moat_sign_arc(s->sign, values, why, sizeof(why)) : -1;
	size_t first = s->nedits;

	if (rc > 0 && s->nedits + 3 > HDR_EDITS_MAX) {
		rc = -1;
		snprintf(why, sizeof(why), "no room for the header edits");
	}
	for (int i = 0; i < 3 && rc > 0; i++) {
		struct moat_hdr_edit *e = &s->edits[s->nedits];
		if ((e->name = strdup(names[i])) == NULL) {
			rc = -1;
			snprintf(why, sizeof(why), "out of memory");
			break;
		}
		e->op = MOAT_HDR_INSERT_TOP;
		e->index = 0;
		e->value = values[i];
		values[i] = NULL;
		s->nedits++;
	}
	while (rc < 0 && s->nedits > first) { /* a set is whole or absent */
		s->nedits--;
		free(s->edits[s->nedits].name);
		free(s->edits[s->nedits].value);
	}
	for (int i = 0; i < 3; i++)
		free(values[i]);
	if (s->conf->arc_seal)
		moat_log(rc < 0 ? LOG_WARNING : LOG_INFO, s->id, "arc-seal", "result=%s why=\"%s\"",
		    rc > 0        ? "sealed"
			: rc == 0 ? "skipped"
				  : "failed",
		    why);
}

/* session_sign_end - the signatures as INSERT_TOP edits; dkim_sign_failure on failure. */
static void
session_sign_end(struct moat_session *s, struct moat_verdict *v)
{
	char *values[MOAT_SIGN_KEYS_MAX], why[512];
	size_t n = 0;
	enum moat_sign_status st;
	bool tempfail;

	if (s->direction != MOAT_OUTBOUND || s->conf->signer == NULL)
		return;
	st = s->sign != NULL
	    ? moat_sign_end(s->sign, values, MOAT_SIGN_KEYS_MAX, &n, why, sizeof(why))
	    : MOAT_SIGN_FAILED;
	if (s->sign == NULL)
		snprintf(why, sizeof(why), "no header seen or out of memory");
	for (size_t i = 0; i < n; i++) {
		if (s->nedits < HDR_EDITS_MAX &&
		    (s->edits[s->nedits].name = strdup("DKIM-Signature"))) {
			s->edits[s->nedits].op = MOAT_HDR_INSERT_TOP;
			s->edits[s->nedits++].value = values[i];
		} else {
			free(values[i]);
			st = MOAT_SIGN_FAILED;
			snprintf(why, sizeof(why), "no room for the header edit");
		}
	}
	session_seal_end(s);
	tempfail = st == MOAT_SIGN_FAILED && s->conf->dkim_sign_failure == MOAT_DKIM_FAIL_TEMPFAIL;
	moat_log(st == MOAT_SIGN_FAILED ? LOG_WARNING : LOG_INFO, s->id, "dkim-sign",
	    "result=%s dir_why=\"%s\" %s%s%s", moat_sign_status_name(st),
	    s->direction_why ? s->direction_why : "-", st == MOAT_SIGN_OK ? "" : "why=\"", why,
	    st == MOAT_SIGN_OK
		? ""
		: (tempfail ? "\" action=tempfail"
			    : (st == MOAT_SIGN_FAILED ? "\" action=unsigned" : "\"")));
	if (tempfail) {
		moat__session_clear_edits(s);
		moat_verdict_set(v, MOAT_TEMPFAIL, 451, "4.7.0", "dkim_sign_failed",
		    "Message could not be signed, try again later");
	}
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
	if ((e = session_auth_engine(s, err, sizeof(err))) == NULL ||
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
		struct moat_auth_engine *e = session_auth_engine(s, err, sizeof(err));

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
	for (i = 0; i < n && s->nedits < HDR_EDITS_MAX; i++) {
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

/* ---- content scanning (scan.c): clamd and rspamd, when configured ---- */

/* session_scan_start - open clamd for this message, unless scan_outbound exempts it. */
static void
session_scan_start(struct moat_session *s)
{
	if (moat_scan_wanted(s->conf, s->direction == MOAT_OUTBOUND) &&
	    (s->scan = moat_scan_begin(s->pol->scan_health, s->conf, s->id)) == NULL)
		moat_log(LOG_ERR, s->id, "scan", "result=failed why=\"out of memory\"");
}

static void
scan_header(struct moat_session *s, const char *field, size_t len, struct moat_verdict *v)
{
	(void)v;
	if (s->scan != NULL)
		moat_scan_header(s->scan, field, len);
}

static void
scan_eoh(struct moat_session *s, struct moat_verdict *v)
{
	(void)v;
	if (s->scan != NULL)
		moat_scan_eoh(s->scan);
}

static void
scan_body(struct moat_session *s, const char *chunk, size_t len, struct moat_verdict *v)
{
	(void)v;
	if (s->scan != NULL)
		moat_scan_body(s->scan, chunk, len);
}

/* scan_end_data - clamd gets the end of the message and scans while the rows after this one
 * (ARC, SPF/DKIM/DMARC) wait on DNS; scan_verdict asks rspamd and collects both answers. */
static void
scan_end_data(struct moat_session *s, struct moat_verdict *v)
{
	(void)v;
	if (s->scan != NULL)
		moat_scan_end_data(s->scan);
}

/* scan_verdict - after the auth row: rspamd is asked with our Authentication-Results, so it need
 * not repeat SPF, DKIM and DMARC; then both scanners' verdict and header edits (out of memory:
 * 451, as for a scanner that failed under scan_failure = tempfail). A message the rows before
 * already rejected is not sent to rspamd: the most severe verdict wins, and none outranks that. */
static void
scan_verdict(struct moat_session *s, struct moat_verdict *v)
{
	struct moat_rspamd_env env = {
		.ip = s->addr_known ? s->client_addr : NULL,
		.helo = s->helo,
		.hostname = strcmp(s->client_name, "unknown") != 0 ? s->client_name : NULL,
		.from = s->mail_from,
		.rcpt = (const char *const *)s->rcpts,
		.nrcpt = s->nrcpt < s->rcpts_cap ? s->nrcpt : s->rcpts_cap,
		.user = s->login,
		.queue_id = s->id,
		.authres = s->auth != NULL ? moat_auth_results(s->auth)->authres : NULL,
	};
	struct moat_hdr_edit edits[MOAT_SCAN_EDITS_MAX];
	struct moat_verdict sv;
	size_t n, i;

	if (s->scan == NULL) {
		if (moat_scan_wanted(s->conf, s->direction == MOAT_OUTBOUND)) {
			moat_verdict_set(&sv, MOAT_TEMPFAIL, 451, "4.3.0", "out_of_memory",
			    "Local error, try again later");
			moat_verdict_combine(v, &sv);
		}
		return;
	}
	if (v->action == MOAT_REJECT) {
		moat_scan_skip(s->scan, v);
		return;
	}
	moat_scan_finish(s->scan, &env, s->msg_read, s->msg_read_arg, &sv, edits, &n);
	for (i = 0; i < n && s->nedits < HDR_EDITS_MAX; i++)
		s->edits[s->nedits++] = edits[i];
	if (i < n) {
		for (; i < n; i++) {
			free(edits[i].name);
			free(edits[i].value);
		}
		if (sv.action < MOAT_TEMPFAIL)
			moat_verdict_set(&sv, MOAT_TEMPFAIL, 451, "4.3.0", "too_many_edits",
			    "Local error, try again later");
	}
	moat_verdict_combine(v, &sv);
}

static bool
scan_blocks(const struct moat_session *s)
{
	return s->scan != NULL;
}

/* session_stick - remember a streaming-phase verdict (the first one wins) and return it. */
static void
session_stick(struct moat_session *s, struct moat_verdict *v)
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
		session_stick(s, v);
	}
}

void
moat_session_too_large(struct moat_session *s, enum moat_too_large what, struct moat_verdict *v)
{
	if (what == MOAT_TOO_LARGE_MESSAGE)
		limits_message_size(v);
	else
		limits_header_size(v);
	session_stick(s, v);
}

/* ---- sender_login_map (sender_login.c): an authenticated login's own senders only ---- */

/* sender_login_bound - is the map in force for this session (set, and a login authenticated)? */
static bool
sender_login_bound(const struct moat_session *s)
{
	return s->conf->sender_logins != NULL && s->authenticated;
}

/* sender_login_refuse - 553 5.7.1 (RFC 5321 4.2.3: mailbox name not allowed; RFC 3463 5.7.1:
 * delivery not authorized). WHAT names the field, never the login. */
static void
sender_login_refuse(struct moat_verdict *v, const char *what)
{
	moat_verdict_set(v, MOAT_REJECT, 553, "5.7.1", "sender_login_mismatch",
	    "%s not owned by the authenticated user", what);
}

/* check_sender_login - MAIL FROM must be one of the login's addresses or domains; the null
 * sender passes (a bounce names no sender), its header From is still checked. */
static enum moat_event_rc
check_sender_login(struct moat_session *s, enum check_stage st, const char *params,
    struct moat_verdict *v)
{
	const char *at;
	char local[MOAT_FROM_LOCAL_MAX + 1];

	(void)st;
	(void)params;
	if (!sender_login_bound(s) || s->mail_from[0] == '\0')
		return MOAT_EVENT_DONE;
	at = strrchr(s->mail_from, '@');
	if (at == NULL || (size_t)(at - s->mail_from) >= sizeof(local)) {
		sender_login_refuse(v, "Sender address");
		return MOAT_EVENT_DONE;
	}
	snprintf(local, sizeof(local), "%.*s", (int)(at - s->mail_from), s->mail_from);
	if (!moat_sender_login_map_allows(s->conf->sender_logins, s->login, local, at + 1))
		sender_login_refuse(v, "Sender address");
	return MOAT_EVENT_DONE;
}

/* sender_login_start - read the header From of an authenticated session's message. */
static void
sender_login_start(struct moat_session *s)
{
	if (sender_login_bound(s) && (s->sl_from = malloc(sizeof(*s->sl_from))) != NULL)
		moat_from_init(s->sl_from);
}

static void
sender_login_header(struct moat_session *s, const char *field, size_t len, struct moat_verdict *v)
{
	(void)v;
	if (s->sl_from != NULL)
		moat_from_field(s->sl_from, field, len);
}

/* sender_login_eoh - exactly one From mailbox, one of the login's: else 553 5.7.1, sticky, so no
 * row after this one (the signer) sees the rest of the message. */
static void
sender_login_eoh(struct moat_session *s, struct moat_verdict *v)
{
	if (!sender_login_bound(s))
		return;
	if (s->sl_from == NULL) {
		moat_verdict_set(v, MOAT_TEMPFAIL, 451, "4.3.0", "out_of_memory",
		    "Local error, try again later");
	} else if (moat_from_finish(s->sl_from) != MOAT_FROM_OK ||
	    !moat_sender_login_map_allows(s->conf->sender_logins, s->login, s->sl_from->local,
		s->sl_from->domain)) {
		sender_login_refuse(v, "From header address");
	} else {
		return;
	}
	session_stick(s, v);
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
		session_stick(s, v);
		return;
	}
	if (s->header_bytes > s->conf->limit_header_size) {
		limits_header_size(v);
		session_stick(s, v);
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

static void
sign_header(struct moat_session *s, const char *field, size_t len, struct moat_verdict *v)
{
	(void)v;
	if (s->sign != NULL)
		moat_sign_header(s->sign, field, len);
}

static void
sign_eoh(struct moat_session *s, struct moat_verdict *v)
{
	(void)v;
	if (s->sign != NULL)
		moat_sign_eoh(s->sign);
}

static void
sign_body(struct moat_session *s, const char *chunk, size_t len, struct moat_verdict *v)
{
	(void)v;
	if (s->sign != NULL)
		moat_sign_body(s->sign, chunk, len);
}

static bool
sign_blocks(const struct moat_session *s)
{
	return s->sign != NULL;
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

/* The rows, each with the hooks of the stages it takes part in. */
static const struct moat__check moat__check_limits = { .name = "limits",
	.stages = STAGE_BIT(STAGE_CONNECT) | STAGE_BIT(STAGE_MAIL) | STAGE_BIT(STAGE_RCPT),
	.run = check_limits,
	.header = limits_header,
	.eoh = limits_eoh,
	.body = limits_body };

static const struct moat__check moat__check_spf = { .name = "spf",
	.stages = STAGE_BIT(STAGE_MAIL) | STAGE_BIT(STAGE_RCPT),
	.run = check_spf,
	.answer = spf_answer,
	.work = spf_work };

static const struct moat__check moat__check_ratelimit = { .name = "ratelimit",
	.stages = STAGE_BIT(STAGE_CONNECT) | STAGE_BIT(STAGE_TLS_START) | STAGE_BIT(STAGE_RCPT) |
	    STAGE_BIT(STAGE_AUTH) | STAGE_BIT(STAGE_AUTH_FAIL),
	.run = check_ratelimit,
	.answer = check_ratelimit_answer };

static const struct moat__check moat__check_dnsbl = { .name = "dnsbl",
	.stages = STAGE_BIT(STAGE_CONNECT),
	.run = check_dnsbl,
	.answer = dnsbl_answer,
	.work = dnsbl_work };

static const struct moat__check moat__check_iprev = { .name = "iprev",
	.stages = STAGE_BIT(STAGE_MAIL),
	.run = check_iprev,
	.answer = iprev_answer,
	.work = iprev_work };

static const struct moat__check moat__check_greylist = { .name = "greylist",
	.stages = STAGE_BIT(STAGE_RCPT),
	.run = check_greylist,
	.answer = greylist_answer,
	.work = greylist_work };

static const struct moat__check moat__check_sender_login = { .name = "sender_login",
	.stages = STAGE_BIT(STAGE_MAIL),
	.run = check_sender_login,
	.start = sender_login_start,
	.header = sender_login_header,
	.eoh = sender_login_eoh };

static const struct moat__check moat__check_dkim_sign = { .name = "dkim_sign",
	.start = session_sign_start,
	.header = sign_header,
	.eoh = sign_eoh,
	.body = sign_body,
	.end = session_sign_end,
	.blocks = sign_blocks };

static const struct moat__check moat__check_scan = { .name = "scan",
	.start = session_scan_start,
	.header = scan_header,
	.eoh = scan_eoh,
	.body = scan_body,
	.end = scan_end_data,
	.blocks = scan_blocks };

static const struct moat__check moat__check_arc = { .name = "arc",
	.start = session_arc_start,
	.header = arc_header,
	.eoh = arc_eoh,
	.body = arc_body,
	.end = session_arc_end,
	.blocks = arc_blocks };

static const struct moat__check moat__check_auth = { .name = "auth",
	.start = session_auth_start,
	.header = auth_header,
	.eoh = auth_eoh,
	.body = auth_body,
	.end = session_auth_end,
	.blocks = auth_blocks };

static const struct moat__check moat__check_scan_verdict = { .name = "scan_verdict",
	.end = scan_verdict };

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
