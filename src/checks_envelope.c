/*
 * checks_envelope.c - the rows of the check table that judge the client and the envelope through
 * blocking work (DNS, a store): the DNS block and allow lists at connect, iprev at the first
 * inbound MAIL, greylisting at RCPT.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "dns.h"
#include "dnsbl.h"
#include "greylist.h"
#include "iprev.h"
#include "checks_int.h"
#include "log.h"
#include "policy.h"
#include "session_int.h"

/* ---- DNS block and allow lists (dnsbl.c): the client's score at connect ---- */

/* session_dns - the engine's resolver for a work item; NULL, logged under WHAT, when the engine
 * cannot start (the DNS layer then fails every query of the item temporarily). */
static struct moat_dns *
session_dns(struct moat_session *s, const char *what)
{
	char err[256] = "";
	struct moat_auth_engine *e = moat__session_auth_engine(s, err, sizeof(err));

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

/* session_dns_made - the engine's resolver when the engine is already made, else NULL: a peek
 * that never starts one, as the event loop must not wait on a start. */
static struct moat_dns *
session_dns_made(struct moat_session *s)
{
	struct moat_auth_engine *e;

	pthread_mutex_lock(&s->pol->lock);
	e = s->pol->auth;
	pthread_mutex_unlock(&s->pol->lock);
	return e != NULL ? moat_auth_engine_dns(e) : NULL;
}

/* check_dnsbl - the lists' answers about the client, unless none is set or the client is internal
 * or has no known address: at once when every answer is in the DNS cache (a regular sender
 * reconnecting), else in a work item (the queries block). */
static enum moat_event_rc
check_dnsbl(struct moat_session *s, enum check_stage st, const char *params, struct moat_verdict *v)
{
	(void)params;
	if (s->conf->dnsbl == NULL || !s->addr_known ||
	    moat_cidr_set_match(s->conf->internal_set, &s->addr))
		return MOAT_EVENT_DONE;
	if (moat_dnsbl_score_cached(s->conf->dnsbl, session_dns_made(s), &s->addr, &s->dnsbl)) {
		dnsbl_answer(s, st, NULL, v);
		return MOAT_EVENT_DONE;
	}
	s->pending_wait = MOAT_WAIT_WORK;
	return MOAT_EVENT_PENDING;
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
	if (moat_greylist_keys(s->pol->sha256, &s->addr, c->greylist_net_prefix_v4,
		c->greylist_net_prefix_v6, s->mail_from ? s->mail_from : "",
		s->rcpt_path ? s->rcpt_path : "", &k) < 0) {
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

/* The rows (checks.c orders them in the table). */
const struct moat__check moat__check_dnsbl = { .name = "dnsbl",
	.stages = STAGE_BIT(STAGE_CONNECT),
	.run = check_dnsbl,
	.answer = dnsbl_answer,
	.work = dnsbl_work };

const struct moat__check moat__check_iprev = { .name = "iprev",
	.stages = STAGE_BIT(STAGE_MAIL),
	.run = check_iprev,
	.answer = iprev_answer,
	.work = iprev_work };

const struct moat__check moat__check_greylist = { .name = "greylist",
	.stages = STAGE_BIT(STAGE_RCPT),
	.run = check_greylist,
	.answer = greylist_answer,
	.work = greylist_work };
