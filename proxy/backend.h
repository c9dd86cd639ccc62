/*
 * backend.h - the backend leg of a proxy session, without sockets (bytes go through the driver's
 * px_ops): its setup (greeting, EHLO, STARTTLS, XCLIENT or a PROXY header), the parser of its
 * replies, what its last EHLO offered, and the queue of commands in flight, each with the
 * function its reply goes to. The session only queues commands (px_backend_command) and handles
 * the replies and the events of the leg (px_backend_event_fn); it never writes to the leg itself
 * except the bytes of a message (px_backend_send). The queue lets several commands be
 * outstanding (RFC 2920 towards the backend).
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
struct moat_tls_info;
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

/* What the leg tells its session (px_backend_event_fn). */
enum px_bevent {
	PX_BEV_READY, /* set up, a command waits (MAIL, a line of AUTH): send it */
	PX_BEV_PARKED, /* set up, nothing waits (proxy_backend_connect = accept) */
	PX_BEV_FAILED, /* not set up: reply is the 4xx line a waiting command gets */
	PX_BEV_LOST, /* a set-up leg sent a malformed reply: reply is the reason ("malformed") */
	PX_BEV_UNSOLICITED /* a set-up leg replied with nothing queued: reply is that reply */
};
typedef void (
    *px_backend_event_fn)(struct px_session *s, enum px_bevent ev, const char *reply, size_t len);
/* px_backend_dispatch_fn - the session's way of handing reply R to DONE, the function queued with
 * the command R answers (it settles what the session waits for, then calls DONE). */
typedef void (*px_backend_dispatch_fn)(struct px_session *s, px_backend_reply_fn done,
    const struct px_reply *r);

/* replies both the leg (a failed setup) and its session give */
static const char px_reply_backend_down[] = "451 4.4.1 Backend not available, try again later\r\n";
static const char px_reply_backend_bad[] = "451 4.4.0 Malformed reply from backend\r\n";

/* The client as the backend hears of it (XCLIENT, a PROXY header); borrowed from the session. */
struct px_backend_peer {
	const char *addr, *name, *local_addr; /* name: "" when unknown */
	unsigned port, local_port;
};

struct px_backend {
	enum px_bstate state;
	struct px_reply *reply; /* the reply being read; allocated while one is due */
	bool tls; /* the leg is TLS */
	/* its last EHLO reply offered XCLIENT, SMTPUTF8, DSN, AUTH, PIPELINING (RFC 2920) */
	bool xclient, utf8, dsn, auth, pipelining;
	/* a ring of the commands in flight, the oldest answers first; tag: the session's name for
	 * the command (what it says when the leg is lost before the reply) */
	struct px_backend_cmd {
		px_backend_reply_fn done;
		unsigned tag;
	} inflight[PX_BACKEND_INFLIGHT];
	unsigned head, n;
	/* commands and message bytes queued while corked (px_backend_cork), written as one at
	 * px_backend_uncork; linger: message bytes alone stay for the next write */
	unsigned cork;
	char *wbuf;
	size_t wlen;
	unsigned wcmds;
	bool linger;
	bool expect; /* px_backend_expect: a reply may come with nothing queued */
	bool waited; /* a command waits for the setup: XCLIENT, then READY; else PARKED */

	/* bound once to the session (px_backend_bind), all borrowed */
	const struct px_ops *ops; /* the driver's: the leg's bytes, close, TLS */
	void *io;
	const struct moat_conf *conf;
	struct moat_session *ms; /* the id for the log, HELO and ESMTP for XCLIENT */
	struct px_backend_peer peer;
	px_backend_event_fn event; /* to OWNER: the setup ended, the leg failed */
	px_backend_dispatch_fn dispatch; /* to OWNER: a reply to a queued command */
	struct px_session *owner;
};

/* px_helo_name - the client's HELO/EHLO name as the core session MS has it ("" before one). */
static inline const char *
px_helo_name(const struct moat_session *ms)
{
	const char *helo = moat_session_helo_name(ms);

	return helo != NULL ? helo : "";
}

/* px_backend_bind - the leg's driver, configuration, core session, peer and session callbacks. */
void px_backend_bind(struct px_backend *b, const struct px_ops *ops, void *io,
    struct moat_session *ms, const struct px_backend_peer *peer, px_backend_event_fn event,
    px_backend_dispatch_fn dispatch, struct px_session *owner);
/* px_backend_free - the leg's buffers; the leg is closed (the session ends). */
void px_backend_free(struct px_backend *b);
/* px_backend_start - connect; WAITED: a command waits for the setup (READY, not PARKED, at its
 * end). 0, then an event when the setup ends; -ENOMEM, or -EIO when the driver cannot connect. */
int px_backend_start(struct px_backend *b, bool waited);
/* px_backend_resume - a command waits: a PARKED leg passes the client on (XCLIENT), READY at
 * the end of it; a leg in its setup ends it READY instead of PARKED. 0, or -ENOMEM. */
int px_backend_resume(struct px_backend *b);
/* px_backend_repark - the client renamed itself (HELO/EHLO): a READY leg that passed the old
 * name by XCLIENT is parked, so the next command passes the new one first. */
void px_backend_repark(struct px_backend *b);
/* px_backend_abort - drop the leg now; a message without its final dot is not delivered. */
void px_backend_abort(struct px_backend *b);
/* px_backend_close - the session ends: QUIT after what is queued when the leg is idle
 * (IDLE: no transaction of the session's), else an abort. */
void px_backend_close(struct px_backend *b, bool idle);
/* px_backend_fail - the leg failed (WHY: connect, eof, timeout, ...) during its setup: dropped,
 * and the session told (PX_BEV_FAILED) with the 4xx a waiting command gets. */
void px_backend_fail(struct px_backend *b, const char *why);

/* px_backend_command - queue the command LINE (LEN bytes with its CRLF) and write it (corked:
 * with the others of its group at px_backend_uncork); its reply goes to DONE, and TAG names it
 * for px_backend_tags. 0, -ENOMEM, or -ENOBUFS when PX_BACKEND_INFLIGHT commands are in flight. */
int px_backend_command(struct px_backend *b, const char *line, size_t len, px_backend_reply_fn done,
    unsigned tag);
/* px_backend_tags - the tags of the commands in flight, oldest first, into TAGS (room for
 * PX_BACKEND_INFLIGHT); how many. */
unsigned px_backend_tags(const struct px_backend *b, unsigned *tags);
/* px_backend_cork, px_backend_uncork - commands and message bytes (up to 16 KB) queued in between
 * leave in one write (RFC 2920: a group towards the backend); they nest. The setup is never held. */
void px_backend_cork(struct px_backend *b);
void px_backend_uncork(struct px_backend *b);
/* px_backend_linger - at the next uncork, message bytes held without a command stay held until
 * the next write (more of the message, or its final dot): our Received field waits for the
 * message's first bytes, and the last ones for the dot, one write each instead of two. They go
 * no later than the message goes on; an abort drops them with the leg. */
void px_backend_linger(struct px_backend *b);
/* px_backend_send - bytes of a message (after DATA's 354): no reply is due for them. */
void px_backend_send(struct px_backend *b, const char *p, size_t n);
/* px_backend_expect - until the next command, a reply may come with nothing queued (a 421 while
 * a held message goes out): it is PX_BEV_UNSOLICITED, not a reason to drop the leg. */
void px_backend_expect(struct px_backend *b);
/* px_backend_idle - nothing is asked of the leg: its reply buffer (4 KB) goes. */
void px_backend_idle(struct px_backend *b);

/* px_backend_connected - the driver's connection is up; the setup starts. 0, or -1 when it
 * failed at once (PX_BEV_FAILED was said). */
int px_backend_connected(struct px_backend *b);
/* px_backend_tls_done - the handshake finished (certificate verified): EHLO again. */
void px_backend_tls_done(struct px_backend *b, const struct moat_tls_info *info);
/* px_backend_input - bytes from the backend: replies to the setup, or to queued commands in
 * order; a malformed or unsolicited reply is an event. */
void px_backend_input(struct px_backend *b, const char *p, size_t n);

/* px_backend_in_setup - connecting, or greeting/EHLO/XCLIENT under way. */
bool px_backend_in_setup(const struct px_backend *b);
/* px_backend_ready - set up, commands may be queued. */
static inline bool
px_backend_ready(const struct px_backend *b)
{
	return b->state == B_READY;
}
/* px_backend_up - set up (ready, or parked until XCLIENT): its EHLO extensions are known. */
static inline bool
px_backend_up(const struct px_backend *b)
{
	return b->state == B_READY || b->state == B_PARKED;
}

#endif /* PX_BACKEND_H */
