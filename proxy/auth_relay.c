/*
 * auth_relay.c - AUTH on submission listeners (RFC 4954), relayed to the backend: the exchange is
 * parsed by smtp_auth.c, each line goes to the backend, its 334 challenges and its final word come
 * back verbatim; credentials are wiped once relayed and never logged. The core decides before an
 * exchange and on its outcome whether the failed-AUTH limits let it through
 * (moat_session_auth_begin, moat_session_auth_result).
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <openssl/crypto.h>

#include "data_reader.h"
#include "hdr_edit.h"
#include "hdr_reader.h"
#include "hold.h"
#include "log.h"
#include "ratelimit.h"
#include "received.h"
#include "smtp_auth.h"
#include "smtp_parse.h"
#include "session_int.h"
#include "smtp_session.h"
#include "trust.h"
#include "upstream.h"

static const char reply_auth_twice[] = "503 5.5.1 Already authenticated\r\n";
static const char reply_auth_mech[] = "504 5.5.4 Unrecognized authentication type\r\n";
static const char reply_auth_syntax[] = "501 5.5.2 Cannot decode response\r\n";
static const char reply_auth_long[] = "500 5.5.6 Authentication exchange line is too long\r\n";
static const char reply_auth_unavailable[] = "454 4.7.0 Temporary authentication failure\r\n";
static const char reply_auth_ok[] = "235 2.7.0 Authentication successful\r\n";

static void auth_backend_reply(struct px_session *s, const struct px_reply *r);

/* px__auth_end - the exchange is over (either way): wipe what it held. */
void
px__auth_end(struct px_session *s)
{
	px_auth_free(s->auth);
	s->auth = NULL;
	free(s->auth_refusal);
	s->auth_refusal = NULL;
	s->auth_refusal_len = 0;
}

/* px__auth_send - the pending line of the exchange to the backend, then wipe our copy. */
void
px__auth_send(struct px_session *s)
{
	size_t n;
	const char *l;

	if (!s->b.auth) {
		moat_log(LOG_WARNING, moat_session_id(s->ms), "auth",
		    "result=unavailable backend_offers_auth=no");
		s->op = OP_NONE;
		s->wait = W_NONE;
		px__auth_end(s);
		SAY(s, reply_auth_unavailable);
		return;
	}
	l = px_auth_line(s->auth, &n);
	if (px__backend_queue(s, OP_AUTH, l, n, auth_backend_reply) < 0) {
		px__auth_end(s);
		return;
	}
	px_auth_sent(s->auth);
}

/* auth_backend_reply - the backend's answer to a line of the exchange: a challenge goes back
 * verbatim; a success (235) and a refusal of the credentials (535) go to the core first. */
static void
auth_backend_reply(struct px_session *s, const struct px_reply *r)
{
	struct moat_verdict v;
	enum moat_event_rc rc;

	if (r->code == 334) {
		px__say(s, r->buf, r->len); /* the challenge, verbatim; the client answers */
		px__session_state(s, S_AUTH);
		return;
	}
	px__session_state(s, S_CMD);
	if (r->code != 235 && r->code != 535) {
		px__say(s, r->buf, r->len); /* 501, 454...: the backend's word, nothing learned */
		moat_log(LOG_NOTICE, moat_session_id(s->ms), "auth",
		    "result=fail mech=%s backend_code=%u", px_auth_mech(s->auth), r->code);
		px__auth_end(s);
		px__count_error(s, false);
		return;
	}
	if (r->code == 535) {
		/* kept for the client until the core has charged the failure (the store may pend) */
		if ((s->auth_refusal = malloc(r->len)) == NULL) {
			px__auth_end(s);
			SAY(s, reply_oom);
			px__session_close(s);
			return;
		}
		memcpy(s->auth_refusal, r->buf, r->len);
		s->auth_refusal_len = r->len;
	}
	rc = moat_session_auth_result(s->ms, px_auth_login(s->auth), r->code == 235, &v);
	px__core_event(s, rc, &v, RL_AUTH_RESULT);
}

/*
 * px__auth_decided - the core's word before the exchange (RL_AUTH: relay it) or on its outcome
 * (RL_AUTH_RESULT: 235, or the backend's 535); a failed-AUTH limit used up is a 421 and a close.
 * Neither the login nor anything else of the exchange is logged (STYLE.md 5).
 */
void
px__auth_decided(struct px_session *s, enum px_rlnext next, const struct moat_verdict *v)
{
	const char *mech = s->auth != NULL ? px_auth_mech(s->auth) : "-";

	if (v->action != MOAT_CONTINUE) {
		moat_log(LOG_NOTICE, moat_session_id(s->ms), "auth",
		    "result=refused mech=%s reason=%s", mech, v->reason ? v->reason : "-");
		px__auth_end(s);
		px__say_verdict(s, v);
		if (v->close)
			px__session_close(s);
		return;
	}
	if (next == RL_AUTH) {
		px__backend_request(s, OP_AUTH);
		return;
	}
	if (moat_session_authenticated(s->ms)) {
		moat_log(LOG_INFO, moat_session_id(s->ms), "auth", "result=ok mech=%s", mech);
		px__auth_end(s);
		SAY(s, reply_auth_ok);
		return;
	}
	px__say(s, s->auth_refusal, s->auth_refusal_len); /* the backend's word */
	moat_log(LOG_NOTICE, moat_session_id(s->ms), "auth", "result=fail mech=%s backend_code=535",
	    mech);
	px__auth_end(s);
	px__count_error(s, false);
}

int
px__check_auth(struct px_session *s, const char *arg)
{
	static const char *const replies[] = {
		[PX_AUTH_BAD_MECH] = reply_auth_mech,
		[PX_AUTH_SYNTAX] = reply_auth_syntax,
		[PX_AUTH_TOOLONG] = reply_auth_long,
		[PX_AUTH_NOMEM] = reply_oom,
	};
	enum px_auth_rc rc;

	if (!s->submission) {
		SAY(s, reply_unknown); /* not advertised: not a command here */
		return -1;
	}
	if (!px__tls(s)->active) {
		SAY(s, reply_tls_required); /* RFC 4954 4: credentials only inside TLS */
		return -1;
	}
	if (moat_session_authenticated(s->ms)) {
		SAY(s, reply_auth_twice);
		return -1;
	}
	if (s->txn != NULL || s->op != OP_NONE) {
		SAY(s, reply_tls_in_txn);
		return -1;
	}
	if ((rc = px_auth_start(arg, &s->auth)) != PX_AUTH_SEND) {
		px__say(s, replies[rc], strlen(replies[rc]));
		return -1;
	}
	return 0;
}

/* px__proceed_auth - ask the core whether the failed-AUTH limits let an exchange start. */
void
px__proceed_auth(struct px_session *s, const char *arg)
{
	struct moat_verdict v;
	enum moat_event_rc rc = moat_session_auth_begin(s->ms, &v);

	(void)arg;
	px__core_event(s, rc, &v, RL_AUTH);
}

/* px__auth_client_line - the client's answer to a 334 (credentials: wiped once relayed). */
void
px__auth_client_line(struct px_session *s, char *line, size_t len)
{
	enum px_auth_rc rc = px_auth_response(s->auth, line, len);

	OPENSSL_cleanse(line, len);
	if (rc != PX_AUTH_SEND) {
		/* too long: cancel at the backend, whose 501 ends the exchange there */
		px__session_state(s, S_CMD);
		px__auth_end(s);
		SAY(s, reply_auth_long);
		px_backend_abort(&s->b);
		return;
	}
	px__auth_send(s);
}
