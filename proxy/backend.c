/*
 * backend.c - the session's backend leg: connect, greeting, EHLO, STARTTLS and its handshake,
 * XCLIENT or a PROXY header, then one command at a time with the reply handed to what asked for
 * it; a lost leg is answered according to what was pending. Replies are parsed strictly
 * (upstream.c): the backend is not trusted more than the client.
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
#include "metrics.h"
#include "ratelimit.h"
#include "received.h"
#include "smtp_auth.h"
#include "smtp_parse.h"
#include "session_int.h"
#include "smtp_session.h"
#include "trust.h"
#include "upstream.h"

static const char reply_backend_down[] = "451 4.4.1 Backend not available, try again later\r\n";
static const char reply_backend_bad[] = "451 4.4.0 Malformed reply from backend\r\n";
static const char reply_backend_ext_gone[] =
    "451 4.3.0 Backend no longer offers SMTPUTF8 or DSN, try again later\r\n";
/* tls_backend = required and the backend does not offer or refuses STARTTLS (RFC 3463 X.7.4) */
static const char reply_backend_tls_missing[] =
    "451 4.7.4 TLS to the backend not available, try again later\r\n";
/* the handshake with the backend failed: certificate, protocol, or bytes injected after its 220 */
static const char reply_backend_tls_failed[] =
    "451 4.7.5 TLS to the backend failed, try again later\r\n";

void
px_backend_bind(struct px_backend *b, const struct px_ops *ops, void *io, struct moat_session *ms,
    const struct px_backend_peer *peer, px_backend_event_fn event, struct px_session *owner)
{
	b->ops = ops;
	b->io = io;
	b->ms = ms;
	b->conf = moat_session_conf(ms);
	b->peer = *peer;
	b->event = event;
	b->owner = owner;
}

void
px_backend_abort(struct px_backend *b)
{
	if (b->state != B_NONE) {
		b->ops->backend_close(b->io, false);
		b->state = B_NONE;
		px_backend_forget(b);
	}
}

/* backend_send - bytes for the leg. */
static void
backend_send(struct px_backend *b, const char *p, size_t n)
{
	b->ops->backend_write(b->io, p, n);
}

/* backend_helo - the client's HELO/EHLO name as the core has it ("" before one). */
static const char *
backend_helo(const struct px_backend *b)
{
	return px_helo_name(b->ms);
}

void
px__backend_send(struct px_session *s, const char *p, size_t n)
{
	s->ops->backend_write(s->io, p, n);
}

/* reply_alloc - a fresh reply buffer for the next backend reply; -1 (421 said, closing) on OOM. */
static int
reply_alloc(struct px_session *s)
{
	if (s->b.reply == NULL && (s->b.reply = malloc(sizeof(*s->b.reply))) == NULL) {
		SAY(s, reply_oom);
		px__session_close(s);
		return -1;
	}
	px_reply_init(s->b.reply);
	return 0;
}

/* px__backend_command - send "verb<path> params\r\n" (path NULL: the verb alone); the session
 * waits for OP, and the reply goes to DONE. */
void
px__backend_command(struct px_session *s, enum px_op op, px_backend_reply_fn done, const char *verb,
    const char *path, const char *params)
{
	char buf[4096];
	int n;

	if (path == NULL)
		n = snprintf(buf, sizeof(buf), "%s\r\n", verb);
	else
		n = snprintf(buf, sizeof(buf), "%s<%s>%s%s\r\n", verb, path,
		    params && *params ? " " : "", params ? params : "");
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		SAY(s, reply_syntax);
		return;
	}
	if (reply_alloc(s) < 0)
		return;
	if (px_backend_push(&s->b, done) < 0) {
		SAY(s, reply_local); /* cannot happen: one command at a time */
		return;
	}
	s->op = op;
	s->wait = W_BACKEND;
	px__backend_send(s, buf, (size_t)n);
}

/*
 * px__backend_lacks - the parameters of the command (MAIL, or RCPT: rcpt) use SMTPUTF8 or DSN,
 * which our EHLO offered from what an earlier leg said, and this leg's EHLO reply does not have
 * (the backend changed): the command gets 451 here and is never sent. True when it did.
 */
bool
px__backend_lacks(struct px_session *s, bool rcpt)
{
	const char *v;
	size_t vl;
	bool dsn = rcpt ? s->params[0] != '\0' /* RCPT takes DSN's parameters alone */
			: px_param_find(s->params, "RET", &v, &vl) ||
		px_param_find(s->params, "ENVID", &v, &vl);

	if (!(dsn && !s->b.dsn) &&
	    !(!rcpt && !s->b.utf8 && px_param_find(s->params, "SMTPUTF8", &v, &vl)))
		return false;
	moat_log(LOG_WARNING, moat_session_id(s->ms), "backend", "error=extension_gone");
	SAY(s, reply_backend_ext_gone);
	return true;
}

/* send_mail - MAIL FROM to a ready backend. */
static void
send_mail(struct px_session *s)
{
	if (px__backend_lacks(s, false)) {
		moat_session_abort(s->ms);
		s->op = OP_NONE;
		s->wait = W_NONE;
		return;
	}
	px__backend_command(s, OP_MAIL, px__mail_reply, "MAIL FROM:", s->path, s->params);
}

/* send_waiting - the leg is set up: send what waited for it (MAIL, or a line of AUTH). */
static void
send_waiting(struct px_session *s)
{
	if (s->op == OP_AUTH)
		px__auth_send(s);
	else
		send_mail(s);
}

/*
 * backend_event - the leg's setup ended. READY: what waited goes out. PARKED: a client EHLO that
 * waited for the backend's extensions is answered. FAILED: the pending MAIL or AUTH gets REPLY; a
 * waiting EHLO is answered without the backend's extensions; with nobody waiting, MAIL will try
 * again.
 */
static void
backend_event(struct px_session *s, enum px_bevent ev, const char *reply, size_t len)
{
	enum px_op op = s->op;

	switch (ev) {
	case PX_BEV_READY:
		send_waiting(s);
		return;
	case PX_BEV_PARKED:
		if (op != OP_EHLO)
			return;
		break;
	case PX_BEV_FAILED:
		break;
	}
	s->op = OP_NONE;
	s->wait = W_NONE;
	if (op == OP_EHLO)
		px__ehlo_reply(s);
	if (ev == PX_BEV_PARKED || op == OP_NONE || op == OP_EHLO)
		return;
	px__txn_end(s);
	px__auth_end(s);
	px__say(s, reply, len);
}

void
px__backend_bind(struct px_session *s)
{
	struct px_backend_peer peer = { .addr = s->client_addr,
		.name = s->client_name,
		.local_addr = s->local_addr,
		.port = s->client_port,
		.local_port = s->local_port };

	px_backend_bind(&s->b, s->ops, s->io, s->ms, &peer, backend_event, s);
}

/*
 * px__backend_start - connect. op OP_MAIL or OP_AUTH: it needs the backend and goes out once it is
 * ready; OP_NONE: proxy_backend_connect = accept, nobody waits (a failure only means MAIL tries again).
 */
void
px__backend_start(struct px_session *s, enum px_op op)
{
	if (reply_alloc(s) < 0)
		return;
	px_backend_forget(&s->b);
	s->b.state = B_CONNECTING;
	s->b.utf8 = false;
	s->b.dsn = false;
	s->b.waited = op == OP_MAIL || op == OP_AUTH;
	s->op = op;
	s->wait = op == OP_NONE ? W_NONE : W_BACKEND;
	if (s->ops->backend_open(s->io) < 0) {
		s->b.state = B_NONE;
		s->op = OP_NONE;
		s->wait = W_NONE;
		if (op == OP_NONE)
			return;
		px__txn_end(s);
		px__auth_end(s);
		SAY(s, reply_backend_down);
	}
}

/* px__backend_in_setup - connecting, or greeting/EHLO/XCLIENT under way. */
bool
px__backend_in_setup(const struct px_session *s)
{
	return s->b.state != B_NONE && s->b.state != B_PARKED && s->b.state != B_READY;
}

void
px_session_backend_connected(struct px_session *s)
{
	char buf[128];
	size_t n;

	struct px_backend *b = &s->b;

	if (b->state != B_CONNECTING)
		return;
	if (b->conf->proxy_backend_pass == MOAT_PASS_PROXY_V1 ||
	    b->conf->proxy_backend_pass == MOAT_PASS_PROXY_V2) {
		n = px_proxy_format(buf, sizeof(buf),
		    b->conf->proxy_backend_pass == MOAT_PASS_PROXY_V1 ? 1 : 2, b->peer.addr,
		    b->peer.port, b->peer.local_addr, b->peer.local_port);
		if (n == 0) {
			px_session_backend_error(s, "proxy header");
			return;
		}
		backend_send(b, buf, n);
	}
	b->state = B_GREET;
}

/* backend_setup_failed - the leg could not be set up: dropped, and the session told (FAILED). */
static void
backend_setup_failed(struct px_backend *b, const char *why, const char *reply, size_t len)
{
	moat_log(LOG_WARNING, moat_session_id(b->ms), "backend", "state=setup error=%s", why);
	px_backend_abort(b);
	b->event(b->owner, PX_BEV_FAILED, reply, len);
}

#define SETUP_FAIL(b, why, reply) backend_setup_failed((b), (why), (reply), sizeof(reply) - 1)

/* backend_ehlo - (again) introduce ourselves to the backend. */
static void
backend_ehlo(struct px_backend *b, enum px_bstate next)
{
	char buf[320];
	int n = snprintf(buf, sizeof(buf), "EHLO %s\r\n", b->conf->authserv_id);

	b->state = next;
	if (n > 0 && (size_t)n < sizeof(buf))
		backend_send(b, buf, (size_t)n);
}

/* backend_ready - the leg is set up; what waited for it goes out. */
static void
backend_ready(struct px_backend *b)
{
	b->state = B_READY;
	b->event(b->owner, PX_BEV_READY, NULL, 0);
}

/*
 * backend_parked - an early connection (proxy_backend_connect = accept) got through EHLO with no
 * MAIL waiting: keep it for the first MAIL, and answer a client EHLO that waited for its extensions.
 */
static void
backend_parked(struct px_backend *b)
{
	b->state = b->conf->proxy_backend_pass == MOAT_PASS_XCLIENT ? B_PARKED : B_READY;
	b->event(b->owner, PX_BEV_PARKED, NULL, 0);
}

/* backend_xclient - pass the real client on (Postfix XCLIENT_README), or the leg is ready. */
static void
backend_xclient(struct px_backend *b)
{
	char buf[2048];
	size_t n;

	if (b->conf->proxy_backend_pass != MOAT_PASS_XCLIENT) {
		backend_ready(b);
		return;
	}
	if (!b->xclient) {
		SETUP_FAIL(b, "no-xclient", reply_backend_down);
		return;
	}
	n = px_xclient_format(buf, sizeof(buf), b->peer.addr, b->peer.port,
	    b->peer.name[0] ? b->peer.name : NULL, backend_helo(b), moat_session_esmtp(b->ms));
	if (n == 0) {
		SETUP_FAIL(b, "xclient-format", reply_backend_down);
		return;
	}
	b->state = B_XCLIENT;
	backend_send(b, buf, n);
}

/*
 * backend_proceed - EHLO (and TLS) done: towards a waiting MAIL, or park an early connection
 * (proxy_backend_connect = accept) until the first MAIL, XCLIENT still to be sent then.
 */
static void
backend_proceed(struct px_backend *b)
{
	if (b->waited)
		backend_xclient(b);
	else
		backend_parked(
		    b); /* a backend without XCLIENT is refused at MAIL, by backend_xclient */
}

/* backend_learn - the extensions of the leg's EHLO reply R, remembered by the driver for the
 * EHLO replies of later sessions, which may then offer them before their leg is open. */
static void
backend_learn(struct px_backend *b, const struct px_reply *r)
{
	b->utf8 = px_reply_has_ext(r, "SMTPUTF8");
	b->dsn = px_reply_has_ext(r, "DSN");
	if (b->ops->backend_learned != NULL)
		b->ops->backend_learned(b->io, b->conf,
		    (b->utf8 ? PX_EXT_SMTPUTF8 : 0) | (b->dsn ? PX_EXT_DSN : 0));
}

/*
 * backend_after_ehlo - the backend's EHLO reply (250) is in. STARTTLS comes first,
 * so XCLIENT (the client's address and HELO) crosses only inside TLS and only to a verified
 * backend; Postfix 3.7 accepts XCLIENT after STARTTLS and keeps the TLS session across it.
 */
static void
backend_after_ehlo(struct px_backend *b)
{
	b->xclient = px_reply_has_ext(b->reply, "XCLIENT");
	backend_learn(b, b->reply);
	b->auth = px_reply_has_ext(b->reply, "AUTH");
	if (b->state == B_EHLO && b->conf->tls_backend != MOAT_TLS_BACKEND_NONE) {
		if (px_reply_has_ext(b->reply, "STARTTLS")) {
			b->state = B_STARTTLS;
			backend_send(b, "STARTTLS\r\n", 10);
			return;
		}
		if (b->conf->tls_backend == MOAT_TLS_BACKEND_REQUIRED) {
			SETUP_FAIL(b, "tls-not-offered", reply_backend_tls_missing);
			return;
		}
		moat_log(LOG_NOTICE, moat_session_id(b->ms), "backend",
		    "tls=none reason=not-offered");
	}
	backend_proceed(b);
}

/* backend_starttls_reply - the backend answered STARTTLS. */
static void
backend_starttls_reply(struct px_backend *b)
{
	if (b->reply->code != 220) {
		/* refused (e.g. 454): only tls_backend = starttls goes on in plaintext, and says so */
		if (b->conf->tls_backend == MOAT_TLS_BACKEND_REQUIRED) {
			SETUP_FAIL(b, "tls-refused", reply_backend_tls_missing);
			return;
		}
		moat_log(LOG_NOTICE, moat_session_id(b->ms), "backend",
		    "tls=none reason=refused code=%u", b->reply->code);
		backend_proceed(b);
		return;
	}
	b->state = B_HANDSHAKE;
	if (b->ops->backend_starttls == NULL || b->ops->backend_starttls(b->io) < 0)
		SETUP_FAIL(b, "tls-start", reply_backend_tls_failed);
}

/* backend_setup - advance the backend's setup on each reply (see enum px_bstate). */
static void
backend_setup(struct px_backend *b)
{
	const struct px_reply *r = b->reply;
	char buf[320];
	int n;

	switch (b->state) {
	case B_GREET:
		if (r->code != 220)
			goto refused;
		backend_ehlo(b, B_EHLO);
		break;
	case B_EHLO:
	case B_EHLO_TLS:
		if (r->code != 250)
			goto refused;
		backend_after_ehlo(b);
		break;
	case B_STARTTLS:
		backend_starttls_reply(b);
		break;
	case B_XCLIENT:
		if (r->code != 220)
			goto refused;
		b->state = B_EHLO2;
		n = snprintf(buf, sizeof(buf), "%s %s\r\n",
		    moat_session_esmtp(b->ms) ? "EHLO" : "HELO",
		    backend_helo(b)[0] ? backend_helo(b) : b->conf->authserv_id);
		if (n > 0 && (size_t)n < sizeof(buf))
			backend_send(b, buf, (size_t)n);
		break;
	case B_EHLO2:
		if (r->code != 250)
			goto refused;
		backend_learn(b, r);
		b->auth = px_reply_has_ext(r, "AUTH");
		backend_ready(b);
		break;
	default:
		/* B_HANDSHAKE: the driver feeds nothing to the session until the handshake is done */
		break;
	}
	if (b->state != B_NONE)
		px_reply_init(b->reply);
	return;
refused:
	SETUP_FAIL(b, "refused", reply_backend_down);
}

/* TLS */
void
px_session_backend_tls_done(struct px_session *s, const struct moat_tls_info *info)
{
	struct px_backend *b = &s->b;

	if (b->state != B_HANDSHAKE)
		return;
	b->tls = true;
	moat_log(LOG_INFO, moat_session_id(b->ms), "backend", "tls=%s cipher=%s bits=%u",
	    info->protocol, info->cipher, info->bits);
	/* RFC 3207 4.2: everything learnt before TLS is forgotten; ask again */
	backend_ehlo(b, B_EHLO_TLS);
	px_reply_init(b->reply);
}

/* backend_pop - the function for the reply that came in (NULL: nothing was asked). */
static px_backend_reply_fn
backend_pop(struct px_backend *b)
{
	px_backend_reply_fn done;

	if (b->n == 0)
		return NULL;
	done = b->inflight[b->head];
	b->head = (b->head + 1) % PX_BACKEND_INFLIGHT;
	b->n--;
	return done;
}

/* backend_reply - a complete reply: to the setup, or to the command it answers. */
static void
backend_reply(struct px_session *s)
{
	px_backend_reply_fn done;

	if (s->b.state != B_READY) {
		backend_setup(&s->b);
		return;
	}
	done = backend_pop(&s->b);
	if (done == NULL) {
		if (s->op == OP_SEND) {
			/* a reply before the dot (e.g. 421): the backend gave up on the message */
			s->op = OP_NONE;
			s->wait = W_NONE;
			px_backend_abort(&s->b);
			px__txn_end(s);
			px__data_free(s);
			SAY(s, reply_backend_lost);
			return;
		}
		/* an unsolicited reply (e.g. 421 before closing): the leg is no longer usable */
		s->op = OP_NONE;
		s->wait = W_NONE;
		px_backend_abort(&s->b);
		return;
	}
	s->op = OP_NONE;
	s->wait = W_NONE;
	done(s, s->b.reply);
	if (s->b.reply != NULL)
		px_reply_init(s->b.reply);
}

void
px_session_backend_input(struct px_session *s, const char *p, size_t n)
{
	while (n > 0 && s->b.state != B_NONE) {
		size_t used = 0;
		enum px_reply_status st;

		if (s->b.reply == NULL) {
			px_backend_abort(&s->b); /* nothing was asked: unsolicited bytes */
			break;
		}
		st = px_reply_feed(s->b.reply, p, n, &used);

		if (st == PX_REPLY_BAD) {
			moat_log(LOG_WARNING, moat_session_id(s->ms), "backend",
			    "error=malformed-reply");
			if (s->b.state != B_READY) {
				SETUP_FAIL(&s->b, "malformed", reply_backend_bad);
			} else {
				px_session_backend_error(s, "malformed");
			}
			break;
		}
		if (st == PX_REPLY_NEED)
			break;
		if (s->op == OP_NONE && s->b.state == B_READY) {
			px_backend_abort(&s->b); /* unsolicited */
			break;
		}
		if (s->b.state == B_STARTTLS && s->b.reply->code == 220 && used < n) {
			/* bytes after the 220 would be taken as replies from inside TLS
			 * (the "NO STARTTLS" response injection, RFC 3207 4.2): the leg is refused */
			moat_log(LOG_WARNING, moat_session_id(s->ms), "backend",
			    "error=starttls-injection bytes=%zu", n - used);
			SETUP_FAIL(&s->b, "starttls-injection", reply_backend_tls_failed);
			break;
		}
		moat_metrics_backend_reply(moat_session_metrics(s->ms), s->b.reply->code);
		backend_reply(s);
		p += used;
		n -= used;
	}
	/* between commands the leg holds no reply buffer (4 KB) */
	if (s->op == OP_NONE && (s->b.state == B_READY || s->b.state == B_PARKED) &&
	    s->b.reply != NULL) {
		free(s->b.reply);
		s->b.reply = NULL;
	}
	px__session_pump(s);
}

void
px_session_backend_error(struct px_session *s, const char *why)
{
	enum px_op op = s->op;
	bool bad = strcmp(why, "malformed") == 0;

	if (s->b.state == B_NONE)
		return;
	if (s->wait == W_WORK) {
		px_backend_abort(&s->b); /* work_done finds the leg gone and answers 451 */
		return;
	}
	if (s->b.state == B_HANDSHAKE) {
		SETUP_FAIL(&s->b, why, reply_backend_tls_failed); /* never a plaintext retry */
		px__session_pump(s);
		return;
	}
	if (s->b.state != B_READY) {
		SETUP_FAIL(&s->b, why, reply_backend_down);
		px__session_pump(s);
		return;
	}
	px_backend_abort(&s->b);
	if (s->state == S_DATA) {
		/* mid-DATA: read on to the end of data, then 451 (never 250) */
		if (s->txn->dv.action == MOAT_CONTINUE)
			moat_verdict_set(&s->txn->dv, MOAT_TEMPFAIL, 451, bad ? "4.4.0" : "4.4.2",
			    "backend_lost", "Backend connection lost, try again later");
		s->txn->data_abort = true;
		return;
	}
	if (s->txn != NULL || op != OP_NONE)
		moat_log(LOG_WARNING, moat_session_id(s->ms), "backend", "error=%s op=%d", why,
		    (int)op);
	/*
	 * Lost between commands of a transaction, or at a RCPT: the client still has its MAIL
	 * (RFC 5321 4.1.4), so its next RCPTs and DATA hear 451 4.4.2 (px__rcpt_send, proceed_data) until
	 * it ends the transaction, never a 503 that would turn the loss into a bounce.
	 */
	if (op == OP_NONE)
		return;
	s->op = OP_NONE;
	s->wait = W_NONE;
	if (op != OP_RCPT)
		px__txn_end(s);
	px__data_free(s); /* a held message that was going out */
	if (op == OP_AUTH || s->state == S_AUTH) {
		px__session_state(s, S_CMD);
		px__auth_end(s);
	}
	if (op == OP_RSET)
		SAY(s, reply_ok);
	else if (op == OP_RSET_QUIET)
		; /* the client has its reply; the next MAIL reconnects */
	else if (bad)
		SAY(s, reply_backend_bad);
	else
		SAY(s, reply_backend_lost);
	px__session_pump(s);
}

/* px__backend_request - OP (MAIL, or AUTH's first line) to the backend, connecting it first if need be. */
void
px__backend_request(struct px_session *s, enum px_op op)
{
	if (s->b.state == B_READY) {
		s->op = op;
		send_waiting(s);
	} else if (s->b.state == B_PARKED) {
		if (reply_alloc(s) < 0)
			return;
		s->op = op;
		s->wait = W_BACKEND;
		s->b.waited = op == OP_MAIL || op == OP_AUTH;
		backend_xclient(&s->b);
	} else if (px__backend_in_setup(s)) {
		s->op = op; /* the early connection's setup sends it once ready */
		s->wait = W_BACKEND;
		s->b.waited = op == OP_MAIL || op == OP_AUTH;
	} else {
		px__backend_start(s, op);
	}
}

void
px_backend_forget(struct px_backend *b)
{
	b->head = b->n = 0;
}

int
px_backend_push(struct px_backend *b, px_backend_reply_fn done)
{
	if (b->n == PX_BACKEND_INFLIGHT)
		return -1;
	b->inflight[(b->head + b->n) % PX_BACKEND_INFLIGHT] = done;
	b->n++;
	return 0;
}
