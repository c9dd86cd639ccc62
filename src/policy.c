/*
 * policy.c - sessions, transactions, the check table and the limits every front-end shares (see
 * policy.h).
 *
 * Owns struct moat_policy (current snapshot, rate limiter, shared tables) and struct
 * moat_session. The envelope stages (connect, tls_start, mail, rcpt) run the rows of one check
 * table in order; the first row that refuses ends the stage, and a row that waits on the
 * front-end's store leaves it pending until moat_session_resume. Verdicts carry RFC 5321 reply
 * codes and RFC 3463 enhanced status codes; a verdict reached while the message streams (size,
 * header limits) is sticky and is returned again at end of message, so a front-end that must keep
 * reading until the final dot still replies with the right error.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "auth.h"
#include "dkim_sign.h"
#include "log.h"
#include "policy.h"
#include "ratelimit.h"
#include "sesscount.h"
#include "trust.h"

#define SESSION_ID_LEN 12
#define HDR_EDITS_MAX 64

/* The envelope stages that run the check table, in SMTP order. */
enum check_stage {
	STAGE_CONNECT,
	STAGE_TLS_START,
	STAGE_MAIL,
	STAGE_RCPT,
};
#define STAGE_BIT(st) (1u << (st))

struct moat_policy {
	pthread_mutex_t lock;              /* guards conf, and reloads against each other */
	struct moat_conf *conf;
	unsigned flags;                    /* MOAT_POLICY_* */
	struct moat_ratelimit *rl;         /* rules swapped with conf by moat_policy_reload */
	struct moat_sesscount *sessions;   /* limit_sessions_per_ip */
	struct moat_auth_engine *auth;     /* resolver + DKIM verifier, made at the first inbound
	                                      message (auth_inbound); guarded by lock */
};

struct moat_session {
	struct moat_policy *pol;
	struct moat_conf *conf;            /* the snapshot current at connect */
	char id[SESSION_ID_LEN + 1];

	/* connection */
	char *client_addr;
	char *client_name;
	char *listener;
	unsigned client_port;
	struct moat_addr addr;
	bool addr_known;
	bool counted;                      /* holds a slot in pol->sessions */
	char *helo;
	bool esmtp;
	bool authenticated;
	char *login;                       /* for per-user rate limits; never logged */
	struct moat_tls_info tls;
	unsigned errors;
	unsigned junk;
	unsigned messages;

	/* a stage waiting on the front-end's store (moat_session_resume) */
	bool pending;
	enum check_stage pending_stage;
	size_t pending_row;
	struct moat_rl_plan pending_plan;

	/* transaction */
	bool in_txn;
	char *mail_from;
	unsigned nrcpt;
	bool rl_msg_counted;               /* the message rate-limit buckets are charged */
	uint64_t size;                     /* header + body bytes seen */
	uint64_t header_bytes;
	unsigned header_count;
	struct moat_verdict sticky;        /* a verdict reached while the message streamed */
	enum moat_direction direction;
	const char *direction_why;
	struct moat_hdr_edit edits[HDR_EDITS_MAX];
	size_t nedits;
	struct moat_sign *sign;            /* DKIM signing of an outbound message, or NULL */
	struct moat_auth_msg *auth;        /* SPF/DKIM/DMARC of an inbound message, or NULL */
	bool checks_started;               /* session_start_checks ran for this message */
	bool auth_failed;                  /* auth_inbound on, but the engine could not start */
};

/* ---- the shared policy object ---- */

struct moat_policy *
moat_policy_new(struct moat_conf *conf, unsigned flags, char *err, size_t errlen)
{
	struct moat_policy *pol = calloc(1, sizeof(*pol));

	if (pol == NULL || (pol->sessions = moat_sesscount_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		free(pol);
		return NULL;
	}
	if ((pol->rl = moat_ratelimit_new(conf, err, errlen)) == NULL) {
		moat_sesscount_free(pol->sessions);
		free(pol);
		return NULL;
	}
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
	pthread_mutex_destroy(&pol->lock);
	free(pol);
}

int
moat_policy_reload(struct moat_policy *pol, struct moat_conf *conf, char *err, size_t errlen)
{
	struct moat_conf *old;

	pthread_mutex_lock(&pol->lock);
	/* the rules first: they are the part that can still fail, and then nothing has changed */
	if (moat_ratelimit_reload(pol->rl, conf, err, errlen) < 0) {
		pthread_mutex_unlock(&pol->lock);
		return -1;
	}
	old = pol->conf;
	pol->conf = moat_conf_ref(conf);
	pthread_mutex_unlock(&pol->lock);
	moat_conf_unref(old);
	return 0;
}

struct moat_ratelimit *
moat_policy_ratelimit(struct moat_policy *pol)
{
	return pol->rl;
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

/* session_clear_edits - forget the header edits of the last message. */
static void
session_clear_edits(struct moat_session *s)
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
	s->nrcpt = 0;
	s->rl_msg_counted = false;
	s->size = 0;
	s->header_bytes = 0;
	s->header_count = 0;
	moat_verdict_continue(&s->sticky);
	moat_sign_free(s->sign);
	s->sign = NULL;
	moat_auth_msg_free(s->auth);
	s->auth = NULL;
	s->auth_failed = false;
	s->checks_started = false;
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
	session_clear_edits(s);
	free(s->client_addr);
	free(s->client_name);
	free(s->listener);
	free(s->helo);
	free(s->login);
	moat_conf_unref(s->conf);
	free(s);
}

const struct moat_conf *
moat_session_conf(const struct moat_session *s)
{
	return s->conf;
}

const char *
moat_session_id(const struct moat_session *s)
{
	return s->id;
}

const struct moat_addr *
moat_session_addr(const struct moat_session *s)
{
	return s->addr_known ? &s->addr : NULL;
}

const char *
moat_session_sender(const struct moat_session *s)
{
	return s->mail_from;
}

const char *
moat_session_user(const struct moat_session *s)
{
	return s->login;
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
moat_session_tls(struct moat_session *s, const struct moat_tls_info *tls)
{
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
			*v = UINT64_MAX;     /* 20 digits may not fit: larger than any limit all the same */
		else
			*v = *v * 10 + d;
	}
	return 0;
}

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

/* ---- the check table of the envelope stages ---- */

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
		if (moat_sesscount_acquire(s->pol->sessions, &s->addr, s->conf->limit_sessions_per_ip)) {
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
			moat_verdict_set(v, MOAT_TEMPFAIL, 421, "4.7.0", "limit_messages_per_session",
			    "Too many messages in one session, reconnect to send more");
			v->close = true;
		} else if (!session_size_param(params, &declared)) {
			moat_verdict_set(v, MOAT_REJECT, 501, "5.5.4", "bad_size_param",
			    "Bad SIZE parameter");
		} else if (declared > s->conf->limit_message_size) {
			/* RFC 1870 6.1 */
			moat_verdict_set(v, MOAT_REJECT, 552, "5.3.4", "limit_message_size",
			    "Message size exceeds fixed maximum message size");
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
	case STAGE_MAIL:
	case STAGE_RCPT:
		break;
	}
	/* the message buckets are charged with the first recipient: one store call a message */
	return s->rl_msg_counted ? MOAT_RL_EV_RCPT : MOAT_RL_EV_FIRST_RCPT;
}

/* check_ratelimit_answer - the limiter's verdict for the plan charged at stage ST. */
static void
check_ratelimit_answer(struct moat_session *s, enum check_stage st, const struct moat_verdict *answer,
    struct moat_verdict *v)
{
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
	struct moat_rl_subject subj = { .addr = s->addr_known ? &s->addr : NULL,
		.sender = s->mail_from, .user = s->login, .sid = s->id };
	struct moat_verdict answer;

	(void)params;
	moat_ratelimit_plan(s->pol->rl, ratelimit_event(s, st), &subj, &s->pending_plan);
	/* Redis waits: a front-end on an event loop charges the plan in its own store. */
	if (s->pending_plan.n > 0 && moat_ratelimit_store(s->pol->rl) == MOAT_RL_STORE_REDIS &&
	    !(s->pol->flags & MOAT_POLICY_MAY_BLOCK))
		return MOAT_EVENT_PENDING;
	moat_ratelimit_charge(s->pol->rl, &s->pending_plan, s->id, &answer);
	check_ratelimit_answer(s, st, &answer, v);
	return MOAT_EVENT_DONE;
}

/*
 * The checks of the envelope stages, in the order they run. A row's run fills v only to object;
 * answer, for a row that can wait, takes the store's verdict when the front-end resumes.
 */
static const struct check {
	const char *name;
	unsigned stages;
	enum moat_event_rc (*run)(struct moat_session *s, enum check_stage st, const char *params,
	    struct moat_verdict *v);
	void (*answer)(struct moat_session *s, enum check_stage st, const struct moat_verdict *answer,
	    struct moat_verdict *v);
} checks[] = {
	{ "limits", STAGE_BIT(STAGE_CONNECT) | STAGE_BIT(STAGE_MAIL) | STAGE_BIT(STAGE_RCPT),
	  check_limits, NULL },
	{ "ratelimit", STAGE_BIT(STAGE_CONNECT) | STAGE_BIT(STAGE_TLS_START) | STAGE_BIT(STAGE_RCPT),
	  check_ratelimit, check_ratelimit_answer },
};

/*
 * stage_done - the stage's verdict is final: record what an accepted command changes. A refused
 * connection or TLS handshake is closed: before the greeting, or with no TLS and no plaintext
 * allowed after STARTTLS, there is nothing more to say.
 */
static enum moat_event_rc
stage_done(struct moat_session *s, enum check_stage st, struct moat_verdict *v)
{
	s->pending = false;
	switch (st) {
	case STAGE_CONNECT:
	case STAGE_TLS_START:
		if (v->action != MOAT_CONTINUE)
			v->close = true;
		break;
	case STAGE_MAIL:
		if (v->action != MOAT_CONTINUE)
			session_reset_txn(s);
		break;
	case STAGE_RCPT:
		if (v->action == MOAT_CONTINUE)
			s->nrcpt++;
		break;
	}
	return MOAT_EVENT_DONE;
}

/* stage_run - the rows of stage ST from row FROM on, until one objects or waits. */
static enum moat_event_rc
stage_run(struct moat_session *s, enum check_stage st, size_t from, const char *params,
    struct moat_verdict *v)
{
	for (size_t i = from; i < sizeof(checks) / sizeof(checks[0]); i++) {
		if (!(checks[i].stages & STAGE_BIT(st)))
			continue;
		if (checks[i].run(s, st, params, v) == MOAT_EVENT_PENDING) {
			s->pending = true;
			s->pending_stage = st;
			s->pending_row = i;
			return MOAT_EVENT_PENDING;
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

const struct moat_rl_plan *
moat_session_pending_plan(const struct moat_session *s)
{
	return s->pending ? &s->pending_plan : NULL;
}

enum moat_event_rc
moat_session_resume(struct moat_session *s, const struct moat_verdict *answer, struct moat_verdict *v)
{
	enum check_stage st = s->pending_stage;
	size_t row = s->pending_row;

	moat_verdict_continue(v);
	if (!s->pending)
		return MOAT_EVENT_DONE;
	checks[row].answer(s, st, answer, v);
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
	session_clear_edits(s);
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
	(void)path;
	moat_verdict_continue(v);
	return stage_run(s, STAGE_RCPT, 0, params, v);
}

void
moat_session_data(struct moat_session *s, struct moat_verdict *v)
{
	moat_verdict_continue(v);
	if (!s->in_txn || s->nrcpt == 0)
		moat_verdict_set(v, MOAT_REJECT, 503, "5.5.1", "bad_sequence",
		    "Error: need RCPT command");
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
	st = s->sign != NULL ? moat_sign_end(s->sign, values, MOAT_SIGN_KEYS_MAX, &n, why, sizeof(why))
	    : MOAT_SIGN_FAILED;
	if (s->sign == NULL)
		snprintf(why, sizeof(why), "no header seen or out of memory");
	for (size_t i = 0; i < n; i++) {
		if (s->nedits < HDR_EDITS_MAX && (s->edits[s->nedits].name = strdup("DKIM-Signature"))) {
			s->edits[s->nedits].op = MOAT_HDR_INSERT_TOP;
			s->edits[s->nedits++].value = values[i];
		} else {
			free(values[i]);
			st = MOAT_SIGN_FAILED;
			snprintf(why, sizeof(why), "no room for the header edit");
		}
	}
	tempfail = st == MOAT_SIGN_FAILED && s->conf->dkim_sign_failure == MOAT_DKIM_FAIL_TEMPFAIL;
	moat_log(st == MOAT_SIGN_FAILED ? LOG_WARNING : LOG_INFO, s->id, "dkim-sign",
	    "result=%s dir_why=\"%s\" %s%s%s", moat_sign_status_name(st),
	    s->direction_why ? s->direction_why : "-", st == MOAT_SIGN_OK ? "" : "why=\"", why,
	    st == MOAT_SIGN_OK ? "" : (tempfail ? "\" action=tempfail" :
	    (st == MOAT_SIGN_FAILED ? "\" action=unsigned" : "\"")));
	if (tempfail) {
		session_clear_edits(s);
		moat_verdict_set(v, MOAT_TEMPFAIL, 451, "4.7.0", "dkim_sign_failed",
		    "Message could not be signed, try again later");
	}
}

/* ---- authentication (auth.c): SPF, DKIM, DMARC on inbound messages, when auth_inbound ---- */

/* session_auth_start - start the engine for an inbound message, when auth_inbound. */
static void
session_auth_start(struct moat_session *s)
{
	if (s->direction == MOAT_INBOUND && s->conf->auth_inbound) {
		struct moat_auth_env env = { s->addr_known ? s->client_addr : NULL, s->helo,
			s->mail_from ? s->mail_from : "" };
		char err[256] = "";
		pthread_mutex_lock(&s->pol->lock);
		if (s->pol->auth == NULL)
			s->pol->auth = moat_auth_engine_new(s->conf, err, sizeof(err));
		pthread_mutex_unlock(&s->pol->lock);
		if (s->pol->auth == NULL || (s->auth = moat_auth_msg_new(s->pol->auth, s->conf, &env)) == NULL) {
			moat_log(LOG_ERR, s->id, "auth", "result=failed why=\"%s\"",
			    err[0] ? err : "out of memory");
			s->auth_failed = true;
		}
	}
}

/*
 * session_start_checks - at the first header field, or at the end of a header section that has
 * none: a message without header fields is checked like any other (no From field fails the
 * From rule of DMARC, and the message carries our Authentication-Results if it is passed on).
 */
static void
session_start_checks(struct moat_session *s)
{
	if (s->checks_started)
		return;
	s->checks_started = true;
	session_sign_start(s);                                  /* DKIM signing */
	session_auth_start(s);                                  /* SPF, DKIM, DMARC */
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
	moat_log_escape(moat_auth_results(s->auth)->authres, strlen(moat_auth_results(s->auth)->authres),
	    ar, sizeof(ar));
	moat_log(LOG_INFO, s->id, "auth", "verdict=%s reason=%s ar=\"%s\"", moat_action_name(av.action),
	    av.reason && av.reason[0] ? av.reason : "-", ar);
	moat_verdict_combine(v, &av);
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
		moat_verdict_set(v, MOAT_REJECT, 552, "5.3.4", "limit_message_size",
		    "Message size exceeds fixed maximum message size");
		session_stick(s, v);
	}
}

void
moat_session_header(struct moat_session *s, const char *field, size_t len, struct moat_verdict *v)
{
	(void)field;
	moat_verdict_continue(v);
	if (s->sticky.action != MOAT_CONTINUE) {
		*v = s->sticky;
		return;
	}
	s->header_count++;
	s->header_bytes += len + 2;
	if (s->header_count > s->conf->limit_header_count) {
		moat_verdict_set(v, MOAT_REJECT, 552, "5.3.4", "limit_header_count",
		    "Too many header fields");
		session_stick(s, v);
		return;
	}
	if (s->header_bytes > s->conf->limit_header_size) {
		moat_verdict_set(v, MOAT_REJECT, 552, "5.3.4", "limit_header_size",
		    "Message header section too large");
		session_stick(s, v);
		return;
	}
	session_count_bytes(s, len + 2, v);
	session_start_checks(s);
	if (s->sign != NULL)                                    /* DKIM signing */
		moat_sign_header(s->sign, field, len);
	if (s->auth != NULL)                                    /* SPF, DKIM, DMARC */
		moat_auth_header(s->auth, field, len);
}

void
moat_session_eoh(struct moat_session *s, struct moat_verdict *v)
{
	moat_verdict_continue(v);
	if (s->sticky.action != MOAT_CONTINUE) {
		*v = s->sticky;
		return;
	}
	session_count_bytes(s, 2, v);    /* the empty line */
	session_start_checks(s);
	if (s->sign != NULL)                                    /* DKIM signing */
		moat_sign_eoh(s->sign);
	if (s->auth != NULL)                                    /* SPF, DKIM, DMARC */
		moat_auth_eoh(s->auth);
}

void
moat_session_body(struct moat_session *s, const char *chunk, size_t len, struct moat_verdict *v)
{
	(void)chunk;
	moat_verdict_continue(v);
	if (s->sticky.action != MOAT_CONTINUE) {
		*v = s->sticky;
		return;
	}
	session_count_bytes(s, len, v);
	if (s->sign != NULL)                                    /* DKIM signing */
		moat_sign_body(s->sign, chunk, len);
	if (s->auth != NULL)                                    /* SPF, DKIM, DMARC */
		moat_auth_body(s->auth, chunk, len);
}

void
moat_session_eom(struct moat_session *s, struct moat_verdict *v)
{
	moat_verdict_continue(v);
	if (s->sticky.action != MOAT_CONTINUE)
		*v = s->sticky;
	else {
		session_sign_end(s, v);                         /* DKIM signing */
		session_auth_end(s, v);                         /* SPF, DKIM, DMARC */
	}
	s->messages++;
	/* The transaction is over; its envelope stays readable for moat_session_summary until the
	 * next MAIL, RSET or HELO. */
	s->in_txn = false;
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
	return s->auth != NULL || s->sign != NULL;
}

bool
moat_session_edits_need_body(const struct moat_session *s)
{
	if (s->direction == MOAT_OUTBOUND)
		return s->conf->signer != NULL;
	return s->conf->auth_inbound;
}

void
moat_session_abort(struct moat_session *s)
{
	session_reset_txn(s);
	session_clear_edits(s);
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
	    name, addr, s->client_port, from, s->nrcpt,
	    (unsigned long long)s->size, s->direction == MOAT_OUTBOUND ? "outbound" : "inbound",
	    moat_action_name(v->action), v->code, v->status[0] ? " status=" : "", v->status,
	    v->reason && v->reason[0] ? v->reason : "-");
	if (n < 0)
		return 0;
	return (size_t)n < len ? (size_t)n : len - 1;
}
