/*
 * backend.c - the backend leg of a proxy session (backend.h): connect, greeting, EHLO, STARTTLS
 * and its handshake, XCLIENT or a PROXY header, then the queue of commands, each reply handed to
 * the function queued with its command. Replies are parsed strictly (upstream.c): the backend is
 * not trusted more than the client. What the session does with a reply or a lost leg is in
 * session_backend.c; this file knows nothing of the session but its callbacks.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "conf.h"
#include "log.h"
#include "metrics.h"
#include "backend.h"
#include "smtp_session.h"
#include "upstream.h"

/* tls_backend = required and the backend does not offer or refuses STARTTLS (RFC 3463 X.7.4) */
static const char reply_backend_tls_missing[] =
    "451 4.7.4 TLS to the backend not available, try again later\r\n";
/* the handshake with the backend failed: certificate, protocol, or bytes injected after its 220 */
static const char reply_backend_tls_failed[] =
    "451 4.7.5 TLS to the backend failed, try again later\r\n";

/* Message bytes a cork may hold: what one read of the client makes (its input buffer, stuffed),
 * not a held message's pieces (CHUNK_HIGH), which go as they come. */
#define HOLD_MAX ((size_t)16 * 1024)

void
px_backend_bind(struct px_backend *b, const struct px_ops *ops, void *io, struct moat_session *ms,
    const struct px_backend_peer *peer, px_backend_event_fn event, px_backend_dispatch_fn dispatch,
    struct px_session *owner)
{
	b->ops = ops;
	b->io = io;
	b->ms = ms;
	b->conf = moat_session_conf(ms);
	b->peer = *peer;
	b->event = event;
	b->dispatch = dispatch;
	b->owner = owner;
}

/* backend_forget - nothing is in flight any more (the leg closed, or a new one opens). */
static void
backend_forget(struct px_backend *b)
{
	b->head = b->n = 0;
	b->expect = false;
	free(b->wbuf);
	b->wbuf = NULL;
	b->wlen = 0;
	b->wcmds = 0;
	b->linger = false;
}

void
px_backend_abort(struct px_backend *b)
{
	if (b->state != B_NONE) {
		b->ops->backend_close(b->io, false);
		b->state = B_NONE;
		backend_forget(b);
	}
}

void
px_backend_close(struct px_backend *b, bool idle)
{
	if (b->state == B_NONE)
		return;
	idle = idle && px_backend_up(b);
	if (idle)
		b->ops->backend_write(b->io, "QUIT\r\n", 6);
	b->ops->backend_close(b->io, idle);
	b->state = B_NONE;
	backend_forget(b);
}

void
px_backend_free(struct px_backend *b)
{
	free(b->reply);
	b->reply = NULL;
	free(b->wbuf);
	b->wbuf = NULL;
}

/* backend_flush - what a cork held (or lingered after it), in one write. */
static void
backend_flush(struct px_backend *b)
{
	char *p = b->wbuf;
	size_t n = b->wlen;
	unsigned cmds = b->wcmds;

	b->linger = false;
	if (p == NULL)
		return;
	b->wbuf = NULL;
	b->wlen = 0;
	b->wcmds = 0;
	if (n > 0 && b->state != B_NONE) {
		if (cmds > 1) /* log_verbose: where RFC 2920 groups went out */
			moat_log(LOG_DEBUG, moat_session_id(b->ms), "backend",
			    "pipelined=%u bytes=%zu", cmds, n);
		b->ops->backend_write(b->io, p, n);
	}
	free(p);
}

/* backend_hold - bytes wait for the uncork (a command's when CMD, else a message's, held only up
 * to HOLD_MAX: a held message's pieces go as they are); false when they cannot (not corked, too
 * many, or no memory): then they go now, after what is held. */
static bool
backend_hold(struct px_backend *b, const char *p, size_t n, bool cmd)
{
	char *w;

	if (b->cork == 0 || (!cmd && b->wlen + n > HOLD_MAX) ||
	    (w = realloc(b->wbuf, b->wlen + n)) == NULL)
		return false;
	memcpy(w + b->wlen, p, n);
	b->wbuf = w;
	b->wlen += n;
	b->wcmds += cmd;
	return true;
}

/* backend_send - bytes for the leg now, after what is held. */
static void
backend_send(struct px_backend *b, const char *p, size_t n)
{
	backend_flush(b);
	b->ops->backend_write(b->io, p, n);
}

void
px_backend_cork(struct px_backend *b)
{
	b->cork++;
}

void
px_backend_uncork(struct px_backend *b)
{
	if (b->cork == 0 || --b->cork > 0)
		return;
	if (b->linger && b->wcmds == 0) {
		b->linger = false; /* the message's bytes wait for the next write */
		return;
	}
	backend_flush(b);
}

void
px_backend_linger(struct px_backend *b)
{
	b->linger = true;
}

void
px_backend_send(struct px_backend *b, const char *p, size_t n)
{
	if (!backend_hold(b, p, n, false))
		backend_send(b, p, n);
}

/* backend_helo - the client's HELO/EHLO name as the core has it ("" before one). */
static const char *
backend_helo(const struct px_backend *b)
{
	return px_helo_name(b->ms);
}

/* reply_alloc - a fresh reply buffer for the next backend reply; -ENOMEM. */
static int
reply_alloc(struct px_backend *b)
{
	if (b->reply == NULL && (b->reply = malloc(sizeof(*b->reply))) == NULL)
		return -ENOMEM;
	px_reply_init(b->reply);
	return 0;
}

/* backend_push - a command goes out; its reply goes to DONE. 0, or -1 when the queue is full. */
static int
backend_push(struct px_backend *b, px_backend_reply_fn done, unsigned tag)
{
	struct px_backend_cmd *c;

	if (b->n == PX_BACKEND_INFLIGHT)
		return -1;
	c = &b->inflight[(b->head + b->n) % PX_BACKEND_INFLIGHT];
	c->done = done;
	c->tag = tag;
	b->n++;
	b->expect = false;
	return 0;
}

int
px_backend_command(struct px_backend *b, const char *line, size_t len, px_backend_reply_fn done,
    unsigned tag)
{
	/* a reply of an earlier command may be half read: its buffer is not reset */
	if (b->reply == NULL && reply_alloc(b) < 0)
		return -ENOMEM;
	if (backend_push(b, done, tag) < 0)
		return -ENOBUFS;
	if (!backend_hold(b, line, len, true))
		backend_send(b, line, len);
	return 0;
}

unsigned
px_backend_tags(const struct px_backend *b, unsigned *tags)
{
	for (unsigned i = 0; i < b->n; i++)
		tags[i] = b->inflight[(b->head + i) % PX_BACKEND_INFLIGHT].tag;
	return b->n;
}

void
px_backend_expect(struct px_backend *b)
{
	b->expect = true;
}

void
px_backend_idle(struct px_backend *b)
{
	if (px_backend_up(b) && b->n == 0) {
		free(b->reply);
		b->reply = NULL;
	}
}

int
px_backend_start(struct px_backend *b, bool waited)
{
	if (reply_alloc(b) < 0)
		return -ENOMEM;
	backend_forget(b);
	b->state = B_CONNECTING;
	b->utf8 = false;
	b->dsn = false;
	b->waited = waited;
	if (b->ops->backend_open(b->io) < 0) {
		b->state = B_NONE;
		return -EIO;
	}
	return 0;
}

bool
px_backend_in_setup(const struct px_backend *b)
{
	return b->state != B_NONE && !px_backend_up(b);
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

void
px_backend_fail(struct px_backend *b, const char *why)
{
	if (b->state == B_HANDSHAKE)
		SETUP_FAIL(b, why, reply_backend_tls_failed); /* never a plaintext retry */
	else
		SETUP_FAIL(b, why, px_reply_backend_down);
}

int
px_backend_connected(struct px_backend *b)
{
	char buf[128];
	size_t n;

	if (b->state != B_CONNECTING)
		return 0;
	if (b->conf->proxy_backend_pass == MOAT_PASS_PROXY_V1 ||
	    b->conf->proxy_backend_pass == MOAT_PASS_PROXY_V2) {
		n = px_proxy_format(buf, sizeof(buf),
		    b->conf->proxy_backend_pass == MOAT_PASS_PROXY_V1 ? 1 : 2, b->peer.addr,
		    b->peer.port, b->peer.local_addr, b->peer.local_port);
		if (n == 0) {
			px_backend_fail(b, "proxy header");
			return -1;
		}
		backend_send(b, buf, n);
	}
	b->state = B_GREET;
	return 0;
}

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
		SETUP_FAIL(b, "no-xclient", px_reply_backend_down);
		return;
	}
	n = px_xclient_format(buf, sizeof(buf), b->peer.addr, b->peer.port,
	    b->peer.name[0] ? b->peer.name : NULL, backend_helo(b), moat_session_esmtp(b->ms));
	if (n == 0) {
		SETUP_FAIL(b, "xclient-format", px_reply_backend_down);
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
	b->pipelining = px_reply_has_ext(b->reply, "PIPELINING");
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
		b->pipelining = px_reply_has_ext(r, "PIPELINING");
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
	SETUP_FAIL(b, "refused", px_reply_backend_down);
}

/* TLS */
void
px_backend_tls_done(struct px_backend *b, const struct moat_tls_info *info)
{
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
	done = b->inflight[b->head].done;
	b->head = (b->head + 1) % PX_BACKEND_INFLIGHT;
	b->n--;
	return done;
}

/* backend_reply - a complete reply: to the setup, or to the command it answers (through the
 * session's dispatch); with nothing queued, the session decides (PX_BEV_UNSOLICITED). */
static void
backend_reply(struct px_backend *b)
{
	px_backend_reply_fn done;

	if (b->state != B_READY) {
		backend_setup(b);
		return;
	}
	done = backend_pop(b);
	if (done == NULL) {
		b->event(b->owner, PX_BEV_UNSOLICITED, b->reply->buf, b->reply->len);
		return;
	}
	b->dispatch(b->owner, done, b->reply);
	if (b->reply != NULL)
		px_reply_init(b->reply);
}

void
px_backend_input(struct px_backend *b, const char *p, size_t n)
{
	while (n > 0 && b->state != B_NONE) {
		size_t used = 0;
		enum px_reply_status st;

		if (b->reply == NULL) {
			px_backend_abort(b); /* nothing was asked: unsolicited bytes */
			break;
		}
		st = px_reply_feed(b->reply, p, n, &used);

		if (st == PX_REPLY_BAD) {
			moat_log(LOG_WARNING, moat_session_id(b->ms), "backend",
			    "error=malformed-reply");
			if (b->state != B_READY)
				SETUP_FAIL(b, "malformed", px_reply_backend_bad);
			else
				b->event(b->owner, PX_BEV_LOST, "malformed", 9);
			break;
		}
		if (st == PX_REPLY_NEED)
			break;
		if (b->state == B_READY && b->n == 0 && !b->expect) {
			px_backend_abort(b); /* unsolicited */
			break;
		}
		if (b->state == B_STARTTLS && b->reply->code == 220 && used < n) {
			/* bytes after the 220 would be taken as replies from inside TLS
			 * (the "NO STARTTLS" response injection, RFC 3207 4.2): the leg is refused */
			moat_log(LOG_WARNING, moat_session_id(b->ms), "backend",
			    "error=starttls-injection bytes=%zu", n - used);
			SETUP_FAIL(b, "starttls-injection", reply_backend_tls_failed);
			break;
		}
		moat_metrics_backend_reply(moat_session_metrics(b->ms), b->reply->code);
		backend_reply(b);
		p += used;
		n -= used;
	}
}

int
px_backend_resume(struct px_backend *b)
{
	if (px_backend_in_setup(b)) {
		b->waited = true; /* an early connection's setup: READY at its end */
		return 0;
	}
	if (reply_alloc(b) < 0)
		return -ENOMEM;
	b->waited = true;
	backend_xclient(b);
	return 0;
}

void
px_backend_repark(struct px_backend *b)
{
	if (b->state == B_READY && b->conf->proxy_backend_pass == MOAT_PASS_XCLIENT)
		b->state = B_PARKED;
}
