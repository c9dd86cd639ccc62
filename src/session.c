/*
 * session.c - one SMTP connection as the policy core sees it: made and freed, its identity (id,
 * client, HELO, TLS, login) and what front-ends read from it, the transaction reset, the error
 * and junk-command limits, the direction and the summary line. Owns struct moat_session
 * (session_int.h); the events that run the check table are in session_events.c.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

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

size_t
moat__session_edit_room(struct moat_session *s)
{
	if (s->edits == NULL && (s->edits = calloc(HDR_EDITS_MAX, sizeof(*s->edits))) == NULL)
		return 0;
	return HDR_EDITS_MAX - s->nedits;
}

/* moat__session_reset_txn - back to "no transaction": RSET, end of message, a new MAIL. */
void
moat__session_reset_txn(struct moat_session *s)
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
	moat__session_reset_txn(s);
	moat__session_clear_edits(s);
	free(s->edits);
	free(s->pending_plan);
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

const char *
moat_session_client_addr(const struct moat_session *s)
{
	return s->client_addr;
}

unsigned
moat_session_client_port(const struct moat_session *s)
{
	return s->client_port;
}

const char *
moat_session_client_name(const struct moat_session *s)
{
	return strcmp(s->client_name, "unknown") != 0 ? s->client_name : NULL;
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
	moat__session_reset_txn(s);
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

/* moat__session_count_refusal - a verdict the session hands out refuses: count it by its reason. */
void
moat__session_count_refusal(const struct moat_session *s, const struct moat_verdict *v)
{
	if (v->action == MOAT_TEMPFAIL || v->action == MOAT_REJECT)
		moat_metrics_refusal(s->pol->metrics, v->reason);
}

void
moat_session_abort(struct moat_session *s)
{
	moat__session_reset_txn(s);
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
	moat__session_count_refusal(s, v);
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
