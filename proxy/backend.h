/*
 * backend.h - the backend leg of a proxy session, without sockets (bytes go through the driver's
 * px_ops): its setup state, the parser of its replies, what its last EHLO offered, and the queue
 * of commands in flight, each with the function its reply goes to. The queue lets several
 * commands be outstanding (RFC 2920 towards the backend); the session sends one at a time today.
 */
#ifndef PX_BACKEND_H
#define PX_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"
#include "upstream.h"

#define PX_BACKEND_INFLIGHT 16 /* commands sent and not yet answered */

struct moat_conf;
struct moat_session;
struct px_ops;
struct px_session;

/* Backend setup: greeting, EHLO, [STARTTLS, handshake, EHLO again], [XCLIENT, EHLO again], ready.
 * B_PARKED: connected at accept and past EHLO (and TLS), nobody waiting; XCLIENT (which needs the
 * client's HELO) still to be sent at the first MAIL or AUTH. A relayed AUTH (smtp_auth.c) needs
 * no step of its own: the backend ran it, so its session already has the login; an XCLIENT LOGIN
 * after it would be refused by Postfix, which checks smtpd_authorized_xclient_hosts against the
 * client address the first XCLIENT set. */
enum px_bstate {
	B_NONE = 0,
	B_CONNECTING,
	B_GREET,
	B_EHLO,
	B_STARTTLS,
	B_HANDSHAKE,
	B_EHLO_TLS,
	B_XCLIENT,
	B_EHLO2,
	B_PARKED,
	B_READY
};

/* px_backend_reply_fn - the reply to a queued command (borrowed for the call). */
typedef void (*px_backend_reply_fn)(struct px_session *s, const struct px_reply *r);

/* What the leg tells its session when its setup ends (px_backend_event_fn). */
enum px_bevent {
	PX_BEV_READY, /* set up, a command waits (MAIL, a line of AUTH): send it */
	PX_BEV_PARKED, /* set up, nothing waits (proxy_backend_connect = accept) */
	PX_BEV_FAILED /* not set up: reply is the 4xx line a waiting command gets */
};
typedef void (
    *px_backend_event_fn)(struct px_session *s, enum px_bevent ev, const char *reply, size_t len);

/* The client as the backend hears of it (XCLIENT, a PROXY header); borrowed from the session. */
struct px_backend_peer {
	const char *addr, *name, *local_addr; /* name: "" when unknown */
	unsigned port, local_port;
};

struct px_backend {
	enum px_bstate state;
	struct px_reply *reply; /* the reply being read; allocated while one is due */
	bool tls; /* the leg is TLS */
	/* its last EHLO reply offered XCLIENT, SMTPUTF8, DSN, AUTH */
	bool xclient, utf8, dsn, auth;
	px_backend_reply_fn inflight[PX_BACKEND_INFLIGHT]; /* a ring: the oldest answers first */
	unsigned head, n;
	bool waited; /* a command waits for the setup: XCLIENT, then READY; else PARKED */

	/* bound once to the session (px_backend_bind), all borrowed */
	const struct px_ops *ops; /* the driver's: the leg's bytes, close, TLS */
	void *io;
	const struct moat_conf *conf;
	struct moat_session *ms; /* the id for the log, HELO and ESMTP for XCLIENT */
	struct px_backend_peer peer;
	px_backend_event_fn event; /* to OWNER, when the setup ends */
	struct px_session *owner;
};

/* px_helo_name - the client's HELO/EHLO name as the core session MS has it ("" before one). */
static inline const char *
px_helo_name(const struct moat_session *ms)
{
	const char *helo = moat_session_helo_name(ms);

	return helo != NULL ? helo : "";
}

/* px_backend_bind - the leg's driver, configuration, core session, peer and session callback. */
void px_backend_bind(struct px_backend *b, const struct px_ops *ops, void *io,
    struct moat_session *ms, const struct px_backend_peer *peer, px_backend_event_fn event,
    struct px_session *owner);
/* px_backend_abort - drop the leg now; a message without its final dot is not delivered. */
void px_backend_abort(struct px_backend *b);

/* px_backend_forget - nothing is in flight any more (the leg closed, or a new one opens). */
void px_backend_forget(struct px_backend *b);
/* px_backend_push - a command went out; its reply goes to DONE. 0, or -1 when the queue is full. */
int px_backend_push(struct px_backend *b, px_backend_reply_fn done);

#endif /* PX_BACKEND_H */
