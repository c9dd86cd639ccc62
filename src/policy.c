/*
 * policy.c - the shared policy object, sessions, and the events front-ends report (see policy.h).
 *
 * Owns struct moat_policy (current snapshot, rate limiter, shared tables) and struct
 * moat_session (session_int.h). Each event runs the rows of the check table (checks.c) that take
 * part in its stage, in order: at connect, tls_start, mail and rcpt the first row that refuses
 * ends the stage, and a row that waits on the front-end's store leaves it pending until
 * moat_session_resume; header, eoh and body feed the message to the rows, and eom combines their
 * verdicts and header edits. Verdicts carry RFC 5321 reply codes and RFC 3463 enhanced status
 * codes; a verdict reached while the message streams (size, header limits) is sticky and is
 * returned again at end of message, so a front-end that must keep reading until the final dot
 * still replies with the right error.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/evp.h>

#include "auth.h"
#include "dkim_sign.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "ratelimit.h"
#include "scan.h"
#include "session_int.h"
#include "sesscount.h"
#include "trust.h"


/* ---- the shared policy object ---- */

struct moat_policy *
moat_policy_new(struct moat_conf *conf, unsigned flags, char *err, size_t errlen)
{
	struct moat_policy *pol = calloc(1, sizeof(*pol));

	if (pol == NULL || (pol->sessions = moat_sesscount_new()) == NULL ||
	    (pol->metrics = moat_metrics_new()) == NULL ||
	    (pol->scan_health = moat_scan_health_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		if (pol != NULL) {
			moat_sesscount_free(pol->sessions);
			moat_metrics_free(pol->metrics);
		}
		free(pol);
		return NULL;
	}
	if ((pol->rl = moat_ratelimit_new(conf, err, errlen)) == NULL) {
		moat_sesscount_free(pol->sessions);
		moat_metrics_free(pol->metrics);
		moat_scan_health_free(pol->scan_health);
		free(pol);
		return NULL;
	}
	moat_ratelimit_set_metrics(pol->rl, pol->metrics);
	pol->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	pthread_mutex_init(&pol->lock, NULL);
	pol->conf = moat_conf_ref(conf);
	pol->flags = flags;
	return pol;
}

void
moat_policy_free(struct moat_policy *pol)
{
	if (pol == NULL)
		return;
	moat_conf_unref(pol->conf);
	moat_ratelimit_free(pol->rl);
	moat_sesscount_free(pol->sessions);
	moat_auth_engine_free(pol->auth);
	moat_metrics_free(pol->metrics);
	moat_scan_health_free(pol->scan_health);
	EVP_MD_free(pol->sha256);
	if (pol->fe_ops != NULL)
		pol->fe_ops->unref(pol->fe);
	pthread_mutex_destroy(&pol->lock);
	free(pol);
}

void
moat_policy_set_frontend(struct moat_policy *pol, const struct moat_frontend_ops *ops, void *fe)
{
	pol->fe_ops = ops;
	pol->fe = fe;
}

void *
moat_policy_frontend(struct moat_policy *pol)
{
	void *fe = NULL;

	if (pol->fe_ops == NULL)
		return NULL;
	pthread_mutex_lock(&pol->lock);
	if (pol->fe != NULL)
		fe = pol->fe_ops->ref(pol->fe);
	pthread_mutex_unlock(&pol->lock);
	return fe;
}

int
moat_policy_reload(struct moat_policy *pol, struct moat_conf *conf, char *err, size_t errlen)
{
	struct moat_conf *old;
	void *fe = NULL, *old_fe = NULL;

	/* the front-end's part is built outside the lock (it reads files: certificates) from the
	 * running one, which only reloads replace, and reloads come from one thread */
	if (pol->fe_ops != NULL) {
		old_fe = moat_policy_frontend(pol);
		fe = pol->fe_ops->build(old_fe, conf, err, errlen);
		pol->fe_ops->unref(old_fe);
		if (fe == NULL)
			return -2;
	}
	pthread_mutex_lock(&pol->lock);
	/* the rules next: they are the part that can still fail, and then nothing has changed */
	if (moat_ratelimit_reload(pol->rl, conf, err, errlen) < 0) {
		pthread_mutex_unlock(&pol->lock);
		if (fe != NULL)
			pol->fe_ops->unref(fe);
		return -1;
	}
	old = pol->conf;
	pol->conf = moat_conf_ref(conf);
	moat_metrics_generation_next(pol->metrics);
	old_fe = pol->fe;
	pol->fe = fe;
	pthread_mutex_unlock(&pol->lock);
	moat_conf_unref(old);
	if (pol->fe_ops != NULL)
		pol->fe_ops->unref(old_fe);
	return 0;
}

struct moat_ratelimit *
moat_policy_ratelimit(struct moat_policy *pol)
{
	return pol->rl;
}

struct moat_metrics *
moat_policy_metrics(struct moat_policy *pol)
{
	return pol->metrics;
}

void
moat_policy_flush(struct moat_policy *pol)
{
	struct moat_auth_engine *auth;

	pthread_mutex_lock(&pol->lock);
	auth = pol->auth; /* set once, freed only with the policy */
	pthread_mutex_unlock(&pol->lock);
	moat_auth_engine_flush(auth);
}

struct moat_conf *
moat_policy_conf(struct moat_policy *pol)
{
	struct moat_conf *conf;

	pthread_mutex_lock(&pol->lock);
	conf = moat_conf_ref(pol->conf);
	pthread_mutex_unlock(&pol->lock);
	return conf;
}

/* ---- sessions ---- */

/* session_make_id - 12 hex digits from the kernel's random source, like a Postfix queue id. */
static void
session_make_id(char out[SESSION_ID_LEN + 1])
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char rnd[SESSION_ID_LEN / 2];

	if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd)) {
		/* No entropy yet at boot: uniqueness is all an id needs. */
		uint64_t t = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)out;
		memcpy(rnd, &t, sizeof(rnd));
	}
	for (size_t i = 0; i < sizeof(rnd); i++) {
		out[2 * i] = hex[rnd[i] >> 4];
		out[2 * i + 1] = hex[rnd[i] & 15];
	}
	out[SESSION_ID_LEN] = '\0';
}

/* session_strdup - strdup that maps NULL to NULL. */
static char *
session_strdup(const char *s, bool *oom)
{
	char *copy;

	if (s == NULL)
		return NULL;
	if ((copy = strdup(s)) == NULL)
		*oom = true;
	return copy;
}

void
moat__session_clear_edits(struct moat_session *s)
{
	for (size_t i = 0; i < s->nedits; i++) {
		free(s->edits[i].name);
		free(s->edits[i].value);
	}
	s->nedits = 0;
}

/* session_reset_txn - back to "no transaction": RSET, end of message, a new MAIL. */
static void
session_reset_txn(struct moat_session *s)
{
	free(s->mail_from);
	s->mail_from = NULL;
	s->in_txn = false;
	for (size_t i = 0; i < s->nrcpt && i < s->rcpts_cap; i++)
		free(s->rcpts[i]);
	s->nrcpt = 0;
	free(s->rcpt_path);
	s->rcpt_path = NULL;
	s->rl_msg_counted = false;
	s->size = 0;
	s->header_bytes = 0;
	s->header_count = 0;
	moat_verdict_continue(&s->sticky);
	moat_sign_free(s->sign);
	s->sign = NULL;
	moat_auth_msg_free(s->auth);
	s->auth = NULL;
	moat_auth_spf_free(s->spf);
	s->spf = NULL;
	moat_arc_msg_free(s->arc);
	s->arc = NULL;
	s->arc_result = NULL;
	moat_scan_free(s->scan);
	s->scan = NULL;
	s->msg_read = NULL;
	s->msg_read_arg = NULL;
	free(s->sl_from);
	s->sl_from = NULL;
	s->auth_failed = false;
	s->msg_started = 0;
}

struct moat_session *
moat_session_new(struct moat_policy *pol, const struct moat_client *client)
{
	struct moat_session *s;
	bool oom = false;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->pol = pol;
	s->conf = moat_policy_conf(pol);
	moat_metrics_session(pol->metrics, +1);
	if (client->session_id != NULL)
		snprintf(s->id, sizeof(s->id), "%s", client->session_id);
	else
		session_make_id(s->id);
	s->client_addr = session_strdup(client->addr ? client->addr : "unknown", &oom);
	s->client_name = session_strdup(client->name ? client->name : "unknown", &oom);
	s->listener = session_strdup(client->listener, &oom);
	s->client_port = client->port;
	moat_verdict_continue(&s->sticky);
	if (oom) {
		moat_session_free(s);
		return NULL;
	}
	s->addr_known = client->addr != NULL && moat_addr_parse(client->addr, &s->addr) == 0;
	return s;
}

void
moat_session_free(struct moat_session *s)
{
	if (s == NULL)
		return;
	if (s->counted)
		moat_sesscount_release(s->pol->sessions, &s->addr);
	session_reset_txn(s);
	moat__session_clear_edits(s);
	free(s->client_addr);
	free(s->client_name);
	free(s->listener);
	free(s->helo);
	free(s->login);
	free(s->auth_try);
	free(s->rcpts);
	moat_conf_unref(s->conf);
	moat_metrics_session(s->pol->metrics, -1);
	free(s);
}

const struct moat_conf *
moat_session_conf(const struct moat_session *s)
{
	return s->conf;
}

struct moat_metrics *
moat_session_metrics(const struct moat_session *s)
{
	return s->pol->metrics;
}

const char *
moat_session_id(const struct moat_session *s)
{
	return s->id;
}

const char *
moat_session_helo_name(const struct moat_session *s)
{
	return s->helo;
}

bool
moat_session_spent(const struct moat_session *s)
{
	return !s->in_txn && s->messages >= s->conf->limit_messages_per_session;
}

bool
moat_session_esmtp(const struct moat_session *s)
{
	return s->esmtp;
}

bool
moat_session_authenticated(const struct moat_session *s)
{
	return s->authenticated;
}

const struct moat_tls_info *
moat_session_tls_info(const struct moat_session *s)
{
	return &s->tls;
}

const char *
moat_session_iprev_name(const struct moat_session *s)
{
	return s->iprev.result == MOAT_IPREV_PASS ? s->iprev.name : NULL;
}

void
moat_session_helo(struct moat_session *s, const char *helo, bool esmtp, struct moat_verdict *v)
{
	char *copy;

	moat_verdict_continue(v);
	/* RFC 5321 4.1.4: a new EHLO/HELO resets any transaction in progress. */
	session_reset_txn(s);
	if ((copy = strdup(helo)) == NULL) {
		moat_verdict_set(v, MOAT_TEMPFAIL, 421, "4.3.0", "out_of_memory",
		    "Service temporarily unavailable");
		v->close = true;
		return;
	}
	free(s->helo);
	s->helo = copy;
	s->esmtp = esmtp;
}

void
moat_session_helo_reset(struct moat_session *s)
{
	free(s->helo);
	s->helo = NULL;
	s->esmtp = false;
}

void
moat_session_tls(struct moat_session *s, const struct moat_tls_info *tls)
{
	/* one handshake, however often a front-end reports its facts */
	if (tls->active && !s->tls.active)
		moat_metrics_tls(s->pol->metrics, tls->protocol);
	s->tls = *tls;
}

void
moat_session_auth(struct moat_session *s, const char *login)
{
	s->authenticated = login != NULL && login[0] != '\0';
	free(s->login);
	/* out of memory: authenticated all the same, only the per-user limits do not apply */
	s->login = s->authenticated ? strdup(login) : NULL;
}

int
moat_size_value(const char *p, size_t n, uint64_t *v)
{
	*v = 0;
	if (n == 0 || n > 20)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned char)p[i] - (unsigned)'0';

		if (d > 9)
			return -1;
		if (*v > (UINT64_MAX - d) / 10)
			*v =
			    UINT64_MAX; /* 20 digits may not fit: larger than any limit all the same */
		else
			*v = *v * 10 + d;
	}
	return 0;
}

/* session_count_refusal - a verdict the session hands out refuses: count it by its reason. */
static void
session_count_refusal(const struct moat_session *s, const struct moat_verdict *v)
{
	if (v->action == MOAT_TEMPFAIL || v->action == MOAT_REJECT)
		moat_metrics_refusal(s->pol->metrics, v->reason);
}

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
	session_count_refusal(s, v);
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
		session_count_refusal(s, v);
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
			session_reset_txn(s);
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
	return s->pending && s->pending_wait == MOAT_WAIT_RATELIMIT ? &s->pending_plan : NULL;
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
	session_reset_txn(s);
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

void
moat_session_abort(struct moat_session *s)
{
	session_reset_txn(s);
	moat__session_clear_edits(s);
}

/* session_limits - 421 and close once limit_errors or limit_junk_commands is reached. */
static void
session_limits(const struct moat_session *s, struct moat_verdict *v)
{
	moat_verdict_continue(v);
	if (s->errors >= s->conf->limit_errors) {
		moat_verdict_set(v, MOAT_TEMPFAIL, 421, "4.7.0", "limit_errors",
		    "Too many errors, closing connection");
		v->close = true;
	} else if (s->junk >= s->conf->limit_junk_commands) {
		moat_verdict_set(v, MOAT_TEMPFAIL, 421, "4.7.0", "limit_junk_commands",
		    "Too many useless commands, closing connection");
		v->close = true;
	}
	session_count_refusal(s, v);
}

void
moat_session_error(struct moat_session *s, bool junk, struct moat_verdict *v)
{
	s->errors++;
	if (junk)
		s->junk++;
	session_limits(s, v);
}

void
moat_session_junk(struct moat_session *s, struct moat_verdict *v)
{
	s->junk++;
	session_limits(s, v);
}

enum moat_direction
moat_session_direction(const struct moat_session *s, const char **why)
{
	if (s->direction_why == NULL) {
		/* Asked before MAIL: decide from what is known now. */
		return moat_trust_direction(s->conf, s->addr_known ? &s->addr : NULL, s->listener,
		    s->authenticated, why);
	}
	*why = s->direction_why;
	return s->direction;
}

size_t
moat_session_summary(const struct moat_session *s, const struct moat_verdict *v, char *out,
    size_t len)
{
	char from[600], name[300], addr[200];
	int n;

	moat_log_escape(s->mail_from ? s->mail_from : "", s->mail_from ? strlen(s->mail_from) : 0,
	    from, sizeof(from));
	moat_log_escape(s->client_name, strlen(s->client_name), name, sizeof(name));
	moat_log_escape(s->client_addr, strlen(s->client_addr), addr, sizeof(addr));
	n = snprintf(out, len,
	    "client=%s[%s]:%u from=<%s> nrcpt=%u size=%llu dir=%s verdict=%s code=%u%s%s reason=%s",
	    name, addr, s->client_port, from, s->nrcpt, (unsigned long long)s->size,
	    s->direction == MOAT_OUTBOUND ? "outbound" : "inbound", moat_action_name(v->action),
	    v->code, v->status[0] ? " status=" : "", v->status,
	    v->reason && v->reason[0] ? v->reason : "-");
	if (n < 0)
		return 0;
	return (size_t)n < len ? (size_t)n : len - 1;
}
