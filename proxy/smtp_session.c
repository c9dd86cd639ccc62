/*
 * smtp_session.c - client-side SMTP for mxmoat-proxy: command table, states, relay of MAIL, RCPT
 * and DATA to the backend with its replies passed on verbatim, and the nothing-lost rule: the
 * client gets 250 for a message only after the backend said 250 for that message.
 *
 * Owns the input buffer, the DATA reader and the backend reply parser of one session, and the
 * struct moat_session it drives. The backend is spoken to one command at a time (no pipelining
 * towards it), so each backend reply answers exactly the pending operation.
 *
 * Two DATA modes (doc/architecture.md): streaming, where the message goes to the backend as it
 * arrives and only the final dot waits for the verdict; and holding, chosen when the core's edits
 * depend on the body (moat_session_edits_need_body): the message is kept (hold.c), its policy
 * events run on the pool one chunk at a time, and after an accept DATA and the edited message
 * (hdr_edit.c) go to the backend.
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
#include "smtp_session.h"
#include "trust.h"
#include "upstream.h"

#define INBUF_WINDOW 4096 /* room past one maximal line, for pipelined commands and DATA */
/* The input buffer and the command copy exist only while there is something to read or run: an
 * idle session holds neither (allocated in px_session_rbuf, released at the end of a pump). */
#define HELO_MAX 255
#define BODY_STAGE ((size_t)64 * 1024) /* body bytes staged for one body event */
/* Holding mode: content goes to the pool in chunks of CHUNK_HIGH; one feed of the DATA reader
 * adds at most twice its input (bare LF normalised to CRLF), so CHUNK_CAP always has room. A held
 * message goes out in pieces of CHUNK_HIGH, the next one once the backend queue is under SEND_HIGH. */
#define CHUNK_HIGH ((size_t)64 * 1024)
#define CHUNK_CAP (2 * CHUNK_HIGH + 64)
#define SEND_HIGH ((size_t)128 * 1024)

enum px_state {
	S_GREET = 0,
	S_CMD,
	S_AUTH,
	S_DATA,
	S_CLOSED
};
/* W_DRAIN: a held message waits for the backend's write queue to drain */
enum px_wait {
	W_NONE = 0,
	W_WORK,
	W_BACKEND,
	W_DRAIN,
	W_RATELIMIT
};
/* what waits for a rate-limit answer */
/* What runs once an event of the core has its verdict (at once, or after the driver's store). */
enum px_rlnext {
	RL_GREET = 0,
	RL_TLS_IMPLICIT,
	RL_STARTTLS,
	RL_MAIL,
	RL_RCPT,
	RL_EOM
};
/* OP_HDATA: DATA for a held message; OP_SEND: the held message is going out (no reply due);
 * OP_RSET_QUIET: RSET after a held message was refused (the client already has its reply);
 * OP_EHLO: the client's EHLO reply waits for the backend's extensions (proxy_backend_connect = accept);
 * OP_AUTH: a line of a relayed AUTH exchange (smtp_auth.c) */
enum px_op {
	OP_NONE = 0,
	OP_MAIL,
	OP_RCPT,
	OP_DATA,
	OP_DOT,
	OP_RSET,
	OP_HDATA,
	OP_SEND,
	OP_RSET_QUIET,
	OP_EHLO,
	OP_AUTH
};
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
enum px_work {
	WK_NONE = 0,
	WK_MAIL,
	WK_EOM,
	WK_CHUNK,
	WK_READ,
	WK_CORE /* a check's work item (moat_session_work), then the resume */
};
enum px_skip {
	SK_NONE = 0,
	SK_LONG,
	SK_BARE,
	SK_NUL
};

struct px_session {
	const struct px_ops *ops;
	void *io;
	struct moat_session *ms;
	const struct moat_conf *conf; /* borrowed from ms */
	char client_addr[64];
	unsigned client_port;
	char client_name[256];
	char local_addr[64];
	unsigned local_port;

	enum px_state state;
	enum px_wait wait;
	enum px_op op; /* backend operation awaiting its reply */
	enum px_bstate bstate;
	enum px_work work;
	enum px_skip skip; /* discarding a bad command line up to its LF */
	bool gone; /* client gone: answer nothing, finish quietly */
	bool tls_offer; /* STARTTLS may be offered */
	bool tls_active; /* the client leg is TLS */
	bool backend_tls; /* the backend leg is TLS */
	bool backend_xclient; /* the backend's last EHLO reply offered XCLIENT */
	struct moat_tls_info tls; /* the client leg's facts (active false: none) */
	bool quit;
	enum px_rlnext rl_next; /* what waits for the core's pending event */
	enum moat_event_rc core_rc; /* a core event's, from its work item to the item's end */
	bool greet_now; /* greet once the connection limits allow it */
	/* AUTH (smtp_auth.c): submission listener, exchange under way, backend offers AUTH */
	bool submission, authenticated, backend_auth;
	struct px_auth *auth;

	char helo[HELO_MAX + 1];
	bool helo_seen, esmtp;
	bool backend_utf8; /* the backend's last EHLO reply offered SMTPUTF8 */
	bool utf8_offered; /* our last EHLO reply offered SMTPUTF8 (RFC 6531) */
	bool in_txn; /* MAIL accepted by us and by the backend */
	unsigned nrcpt; /* RCPTs the backend accepted */
	unsigned messages;

	char *line; /* copy of the command being run (NUL-terminated) */
	size_t line_cap;
	char path[PX_PATH_MAX + 1];
	const char *params; /* into line */

	char *in; /* input buffer */
	size_t in_cap, in_len, in_pos;

	struct moat_verdict v; /* result of the last policy event */
	struct px_reply *reply; /* backend reply being read; allocated with the backend */

	/* DATA */
	struct px_data *data;
	struct moat_verdict dv; /* first non-continue verdict inside DATA */
	bool data_abort; /* backend leg of this message abandoned */
	bool in_headers;
	struct moat_hdr_reader *hr; /* the header section of the message in DATA */
	char *body; /* staged body for moat_session_body */
	size_t body_len;

	/* holding mode */
	bool holding; /* this message is held until the verdict */
	struct px_hold *hold;
	int hold_err; /* px_hold_append's error (pool), logged on the loop */
	char *chunk; /* content for the pool; then a piece being sent */
	size_t chunk_len;
	ssize_t read_len; /* px_hold_read's answer (pool) */
	uint64_t send_off; /* bytes of the held message sent */
	struct px_edit *edit;
	char *sbuf; /* edited, stuffed bytes of one piece: one backend write */
	size_t slen, scap;
	bool sfull; /* sbuf was too small (a bug): the message is not sent */
};

static const char reply_need_helo[] = "503 5.5.1 Send EHLO or HELO first\r\n";
static const char reply_nested_mail[] = "503 5.5.1 Nested MAIL command\r\n";
static const char reply_need_mail[] = "503 5.5.1 Need MAIL command\r\n";
static const char reply_no_rcpt[] = "554 5.5.1 No valid recipients\r\n";
static const char reply_unknown[] = "502 5.5.2 Command not recognized\r\n";
static const char reply_syntax[] = "501 5.5.4 Syntax error in parameters or arguments\r\n";
static const char reply_path_syntax[] = "501 5.1.3 Bad address syntax\r\n";
static const char reply_path_long[] = "501 5.5.4 Path too long\r\n";
static const char reply_param[] = "555 5.5.4 Unsupported or malformed parameter\r\n";
static const char reply_too_big[] = "552 5.3.4 Message size exceeds fixed limit\r\n";
static const char reply_line_long[] = "500 5.5.2 Line too long\r\n";
static const char reply_bare_cmd[] =
    "550 5.5.2 Bare <CR> or <LF> in command; transaction dropped\r\n";
static const char reply_nul_cmd[] = "500 5.5.2 NUL byte in command\r\n";
static const char reply_bare_data[] = "550 5.5.2 Bare <CR> or <LF> in message; message dropped\r\n";
static const char reply_nul_data[] = "550 5.6.0 NUL byte in message; message dropped\r\n";
static const char reply_ok[] = "250 2.0.0 Ok\r\n";
static const char reply_vrfy[] = "252 2.1.5 Cannot VRFY user, but will accept message\r\n";
static const char reply_help[] = "214 2.0.0 See RFC 5321\r\n";
static const char reply_bye[] = "221 2.0.0 Bye\r\n";
static const char reply_354[] = "354 3.0.0 End data with <CR><LF>.<CR><LF>\r\n";
static const char reply_early[] = "554 5.5.1 Protocol error: talking before the greeting\r\n";
static const char reply_pipe_data[] = "554 5.5.0 Improper command pipelining after DATA\r\n";
static const char reply_backend_down[] = "451 4.4.1 Backend not available, try again later\r\n";
static const char reply_backend_lost[] = "451 4.4.2 Backend connection lost, try again later\r\n";
static const char reply_backend_bad[] = "451 4.4.0 Malformed reply from backend\r\n";
static const char reply_oom[] = "421 4.3.0 Out of memory, closing connection\r\n";
static const char reply_local[] = "451 4.3.0 Local error in processing, try again later\r\n";
static const char reply_timeout_fmt[] = "421 4.4.2 %s Error: timeout exceeded\r\n";
/* TLS */
static const char reply_starttls[] = "220 2.0.0 Ready to start TLS\r\n";
static const char reply_tls_active[] = "503 5.5.1 TLS already active\r\n";
static const char reply_tls_in_txn[] = "503 5.5.1 MAIL transaction in progress\r\n";
static const char reply_tls_required[] = "530 5.7.0 Must issue a STARTTLS command first\r\n";
static const char reply_tls_pipelined[] = "554 5.5.0 Pipelining after STARTTLS; closing\r\n";
/* tls_backend = required and the backend does not offer or refuses STARTTLS (RFC 3463 X.7.4) */
static const char reply_backend_tls_missing[] =
    "451 4.7.4 TLS to the backend not available, try again later\r\n";
/* the handshake with the backend failed: certificate, protocol, or bytes injected after its 220 */
static const char reply_backend_tls_failed[] =
    "451 4.7.5 TLS to the backend failed, try again later\r\n";
/* AUTH on submission listeners (RFC 4954) */
static const char reply_auth_required[] = "530 5.7.0 Authentication required\r\n";
static const char reply_auth_twice[] = "503 5.5.1 Already authenticated\r\n";
static const char reply_auth_mech[] = "504 5.5.4 Unrecognized authentication type\r\n";
static const char reply_auth_syntax[] = "501 5.5.2 Cannot decode response\r\n";
static const char reply_auth_long[] = "500 5.5.6 Authentication exchange line is too long\r\n";
static const char reply_auth_unavailable[] = "454 4.7.0 Temporary authentication failure\r\n";
static const char reply_auth_ok[] = "235 2.7.0 Authentication successful\r\n";

static void session_pump(struct px_session *s);
static void data_free(struct px_session *s);
static bool data_open(struct px_session *s);
static void msg_drop(struct px_session *s);
static void send_begin(struct px_session *s);
static void core_event(struct px_session *s, enum moat_event_rc rc, struct moat_verdict *v,
    enum px_rlnext next);
static void data_received(struct px_session *s);
static void ehlo_reply(struct px_session *s);

/* say - queue a reply for the client (nothing once it is gone). */
static void
say(struct px_session *s, const char *p, size_t n)
{
	if (!s->gone && s->state != S_CLOSED)
		s->ops->client_write(s->io, p, n);
}

#define SAY(s, r) say((s), (r), sizeof(r) - 1)

/* say_verdict - a policy verdict as a reply line. */
static void
say_verdict(struct px_session *s, const struct moat_verdict *v)
{
	char buf[MOAT_REPLY_TEXT_MAX + 32];
	size_t n = moat_verdict_format_reply(v, buf, sizeof(buf));

	if (n == 0)
		n = (size_t)snprintf(buf, sizeof(buf), "451 4.3.0 Policy error\r\n");
	say(s, buf, n);
}

/* session_close - the client leg ends after what is queued. */
static void
session_close(struct px_session *s)
{
	if (s->state == S_CLOSED)
		return;
	if (s->bstate != B_NONE) {
		bool idle = (s->bstate == B_READY || s->bstate == B_PARKED) && !s->in_txn &&
		    s->state != S_DATA;

		if (idle)
			s->ops->backend_write(s->io, "QUIT\r\n", 6);
		s->ops->backend_close(s->io, idle);
		s->bstate = B_NONE;
	}
	s->state = S_CLOSED;
	if (!s->gone)
		s->ops->client_close(s->io);
}

/* backend_abort - drop the backend leg now; a message without its final dot is not delivered. */
static void
backend_abort(struct px_session *s)
{
	if (s->bstate != B_NONE) {
		s->ops->backend_close(s->io, false);
		s->bstate = B_NONE;
	}
}

/* txn_reset - forget the transaction on our side and in the core. */
static void
txn_reset(struct px_session *s)
{
	/* while a work item runs, the core session belongs to the pool thread */
	if ((s->in_txn || s->nrcpt > 0) && s->wait != W_WORK)
		moat_session_abort(s->ms);
	s->in_txn = false;
	s->nrcpt = 0;
}

/* verdict_close - say a limit's verdict; true when it closed the session. */
static bool
verdict_close(struct px_session *s, const struct moat_verdict *v)
{
	if (v->action != MOAT_CONTINUE) {
		say_verdict(s, v);
		if (v->close) {
			session_close(s);
			return true;
		}
	}
	return false;
}

/* count_error - a rejected command: limit_errors / limit_junk_commands may end the session. */
static bool
count_error(struct px_session *s, bool junk)
{
	struct moat_verdict v;

	moat_session_error(s->ms, junk, &v);
	return verdict_close(s, &v);
}

/* count_junk - a command that moves no mail, before it is carried out: true when the session
 * was closed for limit_junk_commands (the 421 replaces the command's answer). */
static bool
count_junk(struct px_session *s)
{
	struct moat_verdict v;

	moat_session_junk(s->ms, &v);
	return verdict_close(s, &v);
}

/* ---- backend ---- */

static void
backend_send(struct px_session *s, const char *p, size_t n)
{
	s->ops->backend_write(s->io, p, n);
}

/* reply_alloc - a fresh reply buffer for the next backend reply; -1 (421 said, closing) on OOM. */
static int
reply_alloc(struct px_session *s)
{
	if (s->reply == NULL && (s->reply = malloc(sizeof(*s->reply))) == NULL) {
		SAY(s, reply_oom);
		session_close(s);
		return -1;
	}
	px_reply_init(s->reply);
	return 0;
}

/* backend_command - send "verb<path> params\r\n" (path NULL: the verb alone); await op's reply. */
static void
backend_command(struct px_session *s, enum px_op op, const char *verb, const char *path,
    const char *params)
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
	s->op = op;
	s->wait = W_BACKEND;
	backend_send(s, buf, (size_t)n);
}

/* send_mail - MAIL FROM to a ready backend. */
static void
send_mail(struct px_session *s)
{
	backend_command(s, OP_MAIL, "MAIL FROM:", s->path, s->params);
}

static void auth_end(struct px_session *s);
static void auth_send(struct px_session *s);

/* backend_ready - the leg is set up: send what waited for it (MAIL, or a line of AUTH). */
static void
backend_ready(struct px_session *s)
{
	if (s->op == OP_AUTH)
		auth_send(s);
	else
		send_mail(s);
}

/*
 * backend_start - connect. op OP_MAIL or OP_AUTH: it needs the backend and goes out once it is
 * ready; OP_NONE: proxy_backend_connect = accept, nobody waits (a failure only means MAIL tries again).
 */
static void
backend_start(struct px_session *s, enum px_op op)
{
	if (reply_alloc(s) < 0)
		return;
	s->bstate = B_CONNECTING;
	s->backend_utf8 = false;
	s->op = op;
	s->wait = op == OP_NONE ? W_NONE : W_BACKEND;
	if (s->ops->backend_open(s->io) < 0) {
		s->bstate = B_NONE;
		s->op = OP_NONE;
		s->wait = W_NONE;
		if (op == OP_NONE)
			return;
		txn_reset(s);
		auth_end(s);
		SAY(s, reply_backend_down);
	}
}

/* backend_in_setup - connecting, or greeting/EHLO/XCLIENT under way. */
static bool
backend_in_setup(const struct px_session *s)
{
	return s->bstate != B_NONE && s->bstate != B_PARKED && s->bstate != B_READY;
}

void
px_session_backend_connected(struct px_session *s)
{
	char buf[128];
	size_t n;

	if (s->bstate != B_CONNECTING)
		return;
	if (s->conf->proxy_backend_pass == MOAT_PASS_PROXY_V1 ||
	    s->conf->proxy_backend_pass == MOAT_PASS_PROXY_V2) {
		n = px_proxy_format(buf, sizeof(buf),
		    s->conf->proxy_backend_pass == MOAT_PASS_PROXY_V1 ? 1 : 2, s->client_addr,
		    s->client_port, s->local_addr, s->local_port);
		if (n == 0) {
			px_session_backend_error(s, "proxy header");
			return;
		}
		backend_send(s, buf, n);
	}
	s->bstate = B_GREET;
}

/*
 * backend_setup_failed - the backend could not be made ready: the pending MAIL gets 451; a waiting
 * EHLO is answered without the backend's extensions; with nobody waiting, MAIL will try again.
 */
static void
backend_setup_failed(struct px_session *s, const char *why, const char *reply, size_t len)
{
	enum px_op op = s->op;

	moat_log(LOG_WARNING, moat_session_id(s->ms), "backend", "state=setup error=%s", why);
	backend_abort(s);
	s->op = OP_NONE;
	s->wait = W_NONE;
	if (op == OP_EHLO)
		ehlo_reply(s);
	if (op == OP_NONE || op == OP_EHLO)
		return;
	txn_reset(s);
	auth_end(s);
	say(s, reply, len);
}

#define SETUP_FAIL(s, why, reply) backend_setup_failed((s), (why), (reply), sizeof(reply) - 1)

/* backend_ehlo - (again) introduce ourselves to the backend. */
static void
backend_ehlo(struct px_session *s, enum px_bstate next)
{
	char buf[320];
	int n = snprintf(buf, sizeof(buf), "EHLO %s\r\n", s->conf->authserv_id);

	s->bstate = next;
	if (n > 0 && (size_t)n < sizeof(buf))
		backend_send(s, buf, (size_t)n);
}

/*
 * backend_parked - an early connection (proxy_backend_connect = accept) got through EHLO with no
 * MAIL waiting: keep it for the first MAIL, and answer a client EHLO that waited for its extensions.
 */
static void
backend_parked(struct px_session *s)
{
	s->bstate = s->conf->proxy_backend_pass == MOAT_PASS_XCLIENT ? B_PARKED : B_READY;
	if (s->op == OP_EHLO) {
		s->op = OP_NONE;
		s->wait = W_NONE;
		ehlo_reply(s);
	}
}

/* backend_xclient - pass the real client on (Postfix XCLIENT_README), or the leg is ready. */
static void
backend_xclient(struct px_session *s)
{
	char buf[2048];
	size_t n;

	if (s->conf->proxy_backend_pass != MOAT_PASS_XCLIENT) {
		s->bstate = B_READY;
		backend_ready(s);
		return;
	}
	if (!s->backend_xclient) {
		SETUP_FAIL(s, "no-xclient", reply_backend_down);
		return;
	}
	n = px_xclient_format(buf, sizeof(buf), s->client_addr, s->client_port,
	    s->client_name[0] ? s->client_name : NULL, s->helo, s->esmtp);
	if (n == 0) {
		SETUP_FAIL(s, "xclient-format", reply_backend_down);
		return;
	}
	s->bstate = B_XCLIENT;
	backend_send(s, buf, n);
}

/*
 * backend_proceed - EHLO (and TLS) done: towards a waiting MAIL, or park an early connection
 * (proxy_backend_connect = accept) until the first MAIL, XCLIENT still to be sent then.
 */
static void
backend_proceed(struct px_session *s)
{
	if (s->op == OP_MAIL || s->op == OP_AUTH)
		backend_xclient(s);
	else
		backend_parked(
		    s); /* a backend without XCLIENT is refused at MAIL, by backend_xclient */
}

/*
 * backend_after_ehlo - the backend's EHLO reply (250) is in. STARTTLS comes first,
 * so XCLIENT (the client's address and HELO) crosses only inside TLS and only to a verified
 * backend; Postfix 3.7 accepts XCLIENT after STARTTLS and keeps the TLS session across it.
 */
static void
backend_after_ehlo(struct px_session *s)
{
	s->backend_xclient = px_reply_has_ext(s->reply, "XCLIENT");
	s->backend_utf8 = px_reply_has_ext(s->reply, "SMTPUTF8");
	s->backend_auth = px_reply_has_ext(s->reply, "AUTH");
	if (s->bstate == B_EHLO && s->conf->tls_backend != MOAT_TLS_BACKEND_NONE) {
		if (px_reply_has_ext(s->reply, "STARTTLS")) {
			s->bstate = B_STARTTLS;
			backend_send(s, "STARTTLS\r\n", 10);
			return;
		}
		if (s->conf->tls_backend == MOAT_TLS_BACKEND_REQUIRED) {
			SETUP_FAIL(s, "tls-not-offered", reply_backend_tls_missing);
			return;
		}
		moat_log(LOG_NOTICE, moat_session_id(s->ms), "backend",
		    "tls=none reason=not-offered");
	}
	backend_proceed(s);
}

/* backend_starttls_reply - the backend answered STARTTLS. */
static void
backend_starttls_reply(struct px_session *s)
{
	if (s->reply->code != 220) {
		/* refused (e.g. 454): only tls_backend = starttls goes on in plaintext, and says so */
		if (s->conf->tls_backend == MOAT_TLS_BACKEND_REQUIRED) {
			SETUP_FAIL(s, "tls-refused", reply_backend_tls_missing);
			return;
		}
		moat_log(LOG_NOTICE, moat_session_id(s->ms), "backend",
		    "tls=none reason=refused code=%u", s->reply->code);
		backend_proceed(s);
		return;
	}
	s->bstate = B_HANDSHAKE;
	if (s->ops->backend_starttls == NULL || s->ops->backend_starttls(s->io) < 0)
		SETUP_FAIL(s, "tls-start", reply_backend_tls_failed);
}

/* backend_setup - advance the backend's setup on each reply (see enum px_bstate). */
static void
backend_setup(struct px_session *s)
{
	const struct px_reply *r = s->reply;
	char buf[320];
	int n;

	switch (s->bstate) {
	case B_GREET:
		if (r->code != 220)
			goto refused;
		backend_ehlo(s, B_EHLO);
		break;
	case B_EHLO:
	case B_EHLO_TLS:
		if (r->code != 250)
			goto refused;
		backend_after_ehlo(s);
		break;
	case B_STARTTLS:
		backend_starttls_reply(s);
		break;
	case B_XCLIENT:
		if (r->code != 220)
			goto refused;
		s->bstate = B_EHLO2;
		n = snprintf(buf, sizeof(buf), "%s %s\r\n", s->esmtp ? "EHLO" : "HELO",
		    s->helo[0] ? s->helo : s->conf->authserv_id);
		if (n > 0 && (size_t)n < sizeof(buf))
			backend_send(s, buf, (size_t)n);
		break;
	case B_EHLO2:
		if (r->code != 250)
			goto refused;
		s->backend_utf8 = px_reply_has_ext(r, "SMTPUTF8");
		s->backend_auth = px_reply_has_ext(r, "AUTH");
		s->bstate = B_READY;
		backend_ready(s);
		break;
	default:
		/* B_HANDSHAKE: the driver feeds nothing to the session until the handshake is done */
		break;
	}
	if (s->bstate != B_NONE)
		px_reply_init(s->reply);
	return;
refused:
	SETUP_FAIL(s, "refused", reply_backend_down);
}

/* TLS */
void
px_session_backend_tls_done(struct px_session *s, const struct moat_tls_info *info)
{
	if (s->bstate != B_HANDSHAKE)
		return;
	s->backend_tls = true;
	moat_log(LOG_INFO, moat_session_id(s->ms), "backend", "tls=%s cipher=%s bits=%u",
	    info->protocol, info->cipher, info->bits);
	/* RFC 3207 4.2: everything learnt before TLS is forgotten; ask again */
	backend_ehlo(s, B_EHLO_TLS);
	px_reply_init(s->reply);
}

static void auth_backend_reply(struct px_session *s, const struct px_reply *r);

/* backend_reply - a complete reply for the pending operation. */
static void
backend_reply(struct px_session *s)
{
	const struct px_reply *r = s->reply;
	enum px_op op = s->op;
	char sum[1024];

	if (s->bstate != B_READY) {
		backend_setup(s);
		return;
	}
	s->op = OP_NONE;
	s->wait = W_NONE;
	switch (op) {
	case OP_MAIL:
		say(s, r->buf, r->len); /* the backend's verdict, verbatim */
		if (r->code / 100 == 2)
			s->in_txn = true;
		else
			moat_session_abort(s->ms);
		break;
	case OP_RCPT:
		say(s, r->buf, r->len);
		if (r->code / 100 == 2)
			s->nrcpt++;
		break;
	case OP_DATA:
		if (r->code != 354) {
			say(s, r->buf, r->len);
			break;
		}
		if (!data_open(s))
			return;
		data_received(s);
		break;
	case OP_HDATA:
		if (r->code != 354) {
			say(s, r->buf, r->len); /* the backend's verdict on the held message */
			s->holding = false; /* its DATA state is unknown: drop the leg */
			msg_drop(s);
			break;
		}
		px_reply_init(s->reply);
		send_begin(s);
		return;
	case OP_SEND:
		/* a reply before the dot (e.g. 421): the backend gave up on the message */
		backend_abort(s);
		txn_reset(s);
		data_free(s);
		SAY(s, reply_backend_lost);
		return;
	case OP_RSET_QUIET:
		if (r->code != 250)
			backend_abort(s);
		break;
	case OP_DOT:
		say(s, r->buf, r->len); /* queue id and all: only now may the client hear 250 */
		moat_session_summary(s->ms, &s->v, sum, sizeof(sum));
		moat_log(LOG_INFO, moat_session_id(s->ms),
		    r->code / 100 == 2 ? "relayed" : "backend-refused",
		    "%s backend_code=%u tls=%s backend_tls=%s", sum, r->code,
		    s->tls.active ? s->tls.protocol : "-", s->backend_tls ? "yes" : "no");
		s->in_txn = false;
		s->nrcpt = 0;
		s->messages++;
		break;
	case OP_RSET:
		SAY(s, reply_ok);
		break;
	case OP_AUTH:
		auth_backend_reply(s, r);
		break;
	case OP_NONE:
	case OP_EHLO:
		/* an unsolicited reply (e.g. 421 before closing): the leg is no longer usable */
		backend_abort(s);
		return;
	}
	px_reply_init(s->reply);
}

void
px_session_backend_input(struct px_session *s, const char *p, size_t n)
{
	while (n > 0 && s->bstate != B_NONE) {
		size_t used = 0;
		enum px_reply_status st;

		if (s->reply == NULL) {
			backend_abort(s); /* nothing was asked: unsolicited bytes */
			break;
		}
		st = px_reply_feed(s->reply, p, n, &used);

		if (st == PX_REPLY_BAD) {
			moat_log(LOG_WARNING, moat_session_id(s->ms), "backend",
			    "error=malformed-reply");
			if (s->bstate != B_READY) {
				SETUP_FAIL(s, "malformed", reply_backend_bad);
			} else {
				px_session_backend_error(s, "malformed");
			}
			break;
		}
		if (st == PX_REPLY_NEED)
			break;
		if (s->op == OP_NONE && s->bstate == B_READY) {
			backend_abort(s); /* unsolicited */
			break;
		}
		if (s->bstate == B_STARTTLS && s->reply->code == 220 && used < n) {
			/* bytes after the 220 would be taken as replies from inside TLS
			 * (the "NO STARTTLS" response injection, RFC 3207 4.2): the leg is refused */
			moat_log(LOG_WARNING, moat_session_id(s->ms), "backend",
			    "error=starttls-injection bytes=%zu", n - used);
			SETUP_FAIL(s, "starttls-injection", reply_backend_tls_failed);
			break;
		}
		backend_reply(s);
		p += used;
		n -= used;
	}
	/* between commands the leg holds no reply buffer (4 KB) */
	if (s->op == OP_NONE && (s->bstate == B_READY || s->bstate == B_PARKED) &&
	    s->reply != NULL) {
		free(s->reply);
		s->reply = NULL;
	}
	session_pump(s);
}

void
px_session_backend_error(struct px_session *s, const char *why)
{
	enum px_op op = s->op;
	bool bad = strcmp(why, "malformed") == 0;

	if (s->bstate == B_NONE)
		return;
	if (s->wait == W_WORK) {
		backend_abort(s); /* work_done finds the leg gone and answers 451 */
		return;
	}
	if (s->bstate == B_HANDSHAKE) {
		SETUP_FAIL(s, why, reply_backend_tls_failed); /* never a plaintext retry */
		session_pump(s);
		return;
	}
	if (s->bstate != B_READY) {
		SETUP_FAIL(s, why, reply_backend_down);
		session_pump(s);
		return;
	}
	backend_abort(s);
	if (s->state == S_DATA) {
		/* mid-DATA: read on to the end of data, then 451 (never 250) */
		if (s->dv.action == MOAT_CONTINUE)
			moat_verdict_set(&s->dv, MOAT_TEMPFAIL, 451, bad ? "4.4.0" : "4.4.2",
			    "backend_lost", "Backend connection lost, try again later");
		s->data_abort = true;
		return;
	}
	if (s->in_txn || op != OP_NONE)
		moat_log(LOG_WARNING, moat_session_id(s->ms), "backend", "error=%s op=%d", why,
		    (int)op);
	/*
	 * Lost between commands of a transaction, or at a RCPT: the client still has its MAIL
	 * (RFC 5321 4.1.4), so its next RCPTs and DATA hear 451 4.4.2 (rcpt_send, proceed_data) until
	 * it ends the transaction, never a 503 that would turn the loss into a bounce.
	 */
	if (op == OP_NONE)
		return;
	s->op = OP_NONE;
	s->wait = W_NONE;
	if (op != OP_RCPT)
		txn_reset(s);
	data_free(s); /* a held message that was going out */
	if (op == OP_AUTH || s->state == S_AUTH) {
		s->state = S_CMD;
		auth_end(s);
	}
	if (op == OP_RSET)
		SAY(s, reply_ok);
	else if (op == OP_RSET_QUIET)
		; /* the client has its reply; the next MAIL reconnects */
	else if (bad)
		SAY(s, reply_backend_bad);
	else
		SAY(s, reply_backend_lost);
	session_pump(s);
}

/* ---- DATA ---- */

/* data_fail - remember the first verdict that stops the message (also on the pool). */
static void
data_fail(struct px_session *s, const struct moat_verdict *v)
{
	if (s->dv.action == MOAT_CONTINUE)
		s->dv = *v;
}

/* data_settle - on the loop, after content was read or a chunk ran: a message that failed stops
 * going to the backend (streaming: the leg is dropped without its dot). */
static void
data_settle(struct px_session *s)
{
	struct moat_verdict v;

	if (s->hold_err != 0) {
		moat_log(LOG_ERR, moat_session_id(s->ms), "hold", "error=\"%s\" spool_dir=%s",
		    strerror(-s->hold_err), s->conf->proxy_spool_dir);
		if (s->hold_err == -EFBIG)
			moat_verdict_set(&v, MOAT_REJECT, 552, "5.3.4", "limit_message_size",
			    "Message size exceeds fixed maximum message size");
		else
			moat_verdict_set(&v, MOAT_TEMPFAIL, 451, "4.3.0", "hold_failed",
			    "Local error in processing, try again later");
		data_fail(s, &v);
		s->hold_err = 0;
	}
	if (s->holding && s->bstate != B_READY && s->dv.action == MOAT_CONTINUE) {
		moat_verdict_set(&v, MOAT_TEMPFAIL, 451, "4.4.2", "backend_lost",
		    "Backend connection lost, try again later");
		data_fail(s, &v);
	}
	if ((s->dv.action != MOAT_CONTINUE || s->data->err != PX_DATA_OK) && !s->data_abort) {
		s->data_abort = true;
		if (!s->holding)
			backend_abort(s);
	}
}

/* data_wire - canonical bytes for the backend (streaming mode). */
static void
data_wire(void *arg, const char *p, size_t n)
{
	struct px_session *s = arg;

	if (!s->holding && !s->data_abort && s->bstate == B_READY)
		backend_send(s, p, n);
}

static void
body_flush(struct px_session *s)
{
	struct moat_verdict v;

	if (s->body_len == 0)
		return;
	moat_session_body(s->ms, s->body, s->body_len, &v);
	s->body_len = 0;
	if (v.action != MOAT_CONTINUE && v.action != MOAT_ACCEPT)
		data_fail(s, &v);
}

static void
body_add(struct px_session *s, const char *p, size_t n)
{
	while (n > 0) {
		size_t k = BODY_STAGE - s->body_len < n ? BODY_STAGE - s->body_len : n;

		memcpy(s->body + s->body_len, p, k);
		s->body_len += k;
		p += k;
		n -= k;
		if (s->body_len == BODY_STAGE)
			body_flush(s);
	}
}

/* field_flush - hand a header field to the core. */
static void
field_flush(struct px_session *s, const char *field, size_t len)
{
	struct moat_verdict v;

	moat_session_header(s->ms, field, len, &v);
	if (v.action != MOAT_CONTINUE && v.action != MOAT_ACCEPT)
		data_fail(s, &v);
}

static void
headers_end(struct px_session *s)
{
	struct moat_verdict v;

	s->in_headers = false;
	moat_session_eoh(s->ms, &v);
	if (v.action != MOAT_CONTINUE && v.action != MOAT_ACCEPT)
		data_fail(s, &v);
}

/* header_event - what the header reader found: a field, the end of the section, or a section it
 * refuses (the message is then refused, never relayed unchecked). */
static void
header_event(struct px_session *s, const struct moat_hdr_event *ev)
{
	struct moat_verdict v;

	switch (ev->kind) {
	case MOAT_HDR_FIELD:
		field_flush(s, ev->field, ev->len);
		break;
	case MOAT_HDR_END:
		headers_end(s);
		break;
	case MOAT_HDR_ERROR:
		moat_hdr_verdict(moat_session_conf(s->ms), ev->status, &v);
		data_fail(s, &v);
		break;
	default:
		break;
	}
}

/* content_events - unstuffed message bytes as header, end-of-header and body events. On the loop
 * in streaming mode (the events only count), on the pool in holding mode (DKIM hashes them). */
static void
content_events(struct px_session *s, const char *p, size_t n)
{
	while (s->in_headers && n > 0 && s->dv.action == MOAT_CONTINUE) {
		struct moat_hdr_event ev;
		size_t used = moat_hdr_feed(s->hr, p, n, &ev);

		p += used;
		n -= used;
		header_event(s, &ev);
	}
	if (!s->in_headers && n > 0 && s->dv.action == MOAT_CONTINUE)
		body_add(s, p, n);
}

/* content_end - the end of data for the events: the last field, end of header, the last body. */
static void
content_end(struct px_session *s)
{
	while (s->in_headers && s->dv.action == MOAT_CONTINUE) {
		struct moat_hdr_event ev;

		moat_hdr_finish(s->hr, &ev);
		header_event(s, &ev);
	}
	if (s->dv.action == MOAT_CONTINUE)
		body_flush(s);
}

/* data_content - unstuffed message bytes from the reader: events now, or staged for the pool. */
static void
data_content(void *arg, const char *p, size_t n)
{
	struct px_session *s = arg;

	if (!s->holding) {
		content_events(s, p, n);
		return;
	}
	if (n > CHUNK_CAP - s->chunk_len) { /* cannot happen: session_pump feeds what fits */
		struct moat_verdict v;

		moat_verdict_set(&v, MOAT_TEMPFAIL, 451, "4.3.0", "hold_chunk",
		    "Local error in processing");
		data_fail(s, &v);
		return;
	}
	memcpy(s->chunk + s->chunk_len, p, n);
	s->chunk_len += n;
}

/* chunk_run - on the pool: the events over the staged content, then keep it (holding mode). */
static void
chunk_run(struct px_session *s)
{
	content_events(s, s->chunk, s->chunk_len);
	if (s->dv.action == MOAT_CONTINUE && s->data->err == PX_DATA_OK)
		s->hold_err = px_hold_append(s->hold, s->chunk, s->chunk_len);
	s->chunk_len = 0;
}

/* data_feed_max - how much client input may go to the DATA reader now. */
static size_t
data_feed_max(const struct px_session *s, size_t n)
{
	size_t room;

	if (!s->holding)
		return n;
	room = (CHUNK_CAP - s->chunk_len - 16) / 2;
	return n < room ? n : room;
}

/*
 * data_received - our Received field, first in the data stream to the backend, above anything the
 * core inserts (TLS facts of the client leg). It depends on the session only: streaming
 * mode sends it at the backend's 354, holding mode before the held message (send_begin).
 */
static void
data_received(struct px_session *s)
{
	char buf[PX_RECEIVED_MAX];
	struct px_received r = {
		.helo = s->helo,
		.name = s->client_name,
		.addr = s->client_addr,
		.by = s->conf->authserv_id,
		.id = moat_session_id(s->ms),
		.esmtp = s->esmtp,
		.tls = &s->tls,
		.client_cert_requested = s->conf->tls_request_client_cert,
		.when = time(NULL),
	};
	size_t n = px_received_format(buf, sizeof(buf), &r);

	if (n > 0)
		backend_send(s, buf, n);
}

/* data_begin - the DATA command is accepted: set up the reader (and the hold). */
static int
data_begin(struct px_session *s)
{
	if (s->data == NULL && (s->data = malloc(sizeof(*s->data))) == NULL)
		return -1;
	if (s->hr == NULL && (s->hr = malloc(sizeof(*s->hr))) == NULL)
		return -1;
	if (s->body == NULL && (s->body = malloc(BODY_STAGE)) == NULL)
		return -1;
	if (s->holding) {
		if (s->chunk == NULL && (s->chunk = malloc(CHUNK_CAP)) == NULL)
			return -1;
		px_hold_free(s->hold);
		s->hold = px_hold_new(s->conf->proxy_hold_memory, s->conf->limit_message_size,
		    s->conf->proxy_spool_dir);
		if (s->hold == NULL)
			return -1;
	}
	px_data_init(s->data, s->conf->proxy_bare_newline == MOAT_BARE_NORMALIZE, data_content,
	    data_wire, s);
	moat_verdict_continue(&s->dv);
	s->data_abort = false;
	s->in_headers = true;
	moat_hdr_init(s->hr);
	s->body_len = 0;
	s->chunk_len = 0;
	s->hold_err = 0;
	return 0;
}

/* data_free - DATA buffers (and a held message) exist only for one message: an idle session
 * stays small. */
static void
data_free(struct px_session *s)
{
	free(s->data);
	free(s->hr);
	free(s->body);
	free(s->chunk);
	free(s->edit);
	free(s->sbuf);
	px_hold_free(s->hold);
	s->data = NULL;
	s->hr = NULL;
	s->body = s->chunk = s->sbuf = NULL;
	s->edit = NULL;
	s->hold = NULL;
	s->slen = s->scap = 0;
}

/* data_open - 354 for the client; RFC 2920 3.1: DATA ends a group, so bytes already here were
 * sent without waiting for it. false when the session was closed for that. */
static bool
data_open(struct px_session *s)
{
	if (s->in_pos < s->in_len) {
		SAY(s, reply_pipe_data);
		backend_abort(s);
		txn_reset(s);
		data_free(s);
		session_close(s);
		return false;
	}
	SAY(s, reply_354);
	s->state = S_DATA;
	return true;
}

/* data_end - the client's end of data: the last events and the verdict run on the pool. */
static void
data_end(struct px_session *s)
{
	s->state = S_CMD;
	s->work = WK_EOM;
	s->wait = W_WORK;
	s->ops->work(s->io);
}

/* eom_run - on the pool: what is left of the content, then the end-of-message verdict. */
static void
eom_run(struct px_session *s)
{
	if (s->holding)
		chunk_run(s);
	content_end(s);
	s->core_rc = MOAT_EVENT_DONE;
	if (s->data->err == PX_DATA_OK && s->dv.action == MOAT_CONTINUE)
		s->core_rc = moat_session_eom(s->ms, &s->v);
}

/* msg_drop - the message goes nowhere. Streaming: the backend leg is closed without the dot.
 * Holding: the backend never saw DATA; RSET ends its transaction and the leg stays. */
static void
msg_drop(struct px_session *s)
{
	bool rset = s->holding && s->bstate == B_READY;

	data_free(s);
	txn_reset(s);
	if (rset)
		backend_command(s, OP_RSET_QUIET, "RSET", NULL, NULL);
	else
		backend_abort(s);
}

/* ---- holding mode: the edited message goes out ---- */

/* send_emit - edited, stuffed bytes collect in sbuf (sized for one piece, see send_begin). */
static void
send_emit(void *arg, const char *p, size_t n)
{
	struct px_session *s = arg;

	if (n > s->scap - s->slen) {
		s->sfull = true; /* cannot happen: sbuf holds the largest piece */
		return;
	}
	memcpy(s->sbuf + s->slen, p, n);
	s->slen += n;
}

/* send_fail - the held message cannot go out: 451 and the backend leg dropped without a dot. */
static void
send_fail(struct px_session *s, const char *why)
{
	moat_log(LOG_ERR, moat_session_id(s->ms), "hold", "error=%s", why);
	SAY(s, reply_local);
	s->op = OP_NONE;
	s->wait = W_NONE;
	backend_abort(s);
	txn_reset(s);
	data_free(s);
}

/* send_piece - n bytes read from the hold at send_off: edit, stuff, write. */
static void
send_piece(struct px_session *s, ssize_t n)
{
	if (n <= 0) {
		send_fail(s, n == 0 ? "hold-short" : "hold-read");
		return;
	}
	px_edit_feed(s->edit, s->chunk, (size_t)n);
	s->send_off += (uint64_t)n;
	if (s->sfull) {
		send_fail(s, "send-buffer");
		return;
	}
	backend_send(s, s->sbuf, s->slen); /* a write error ends the leg: op is no longer OP_SEND */
	s->slen = 0;
}

/* send_next - the next piece of the held message, or the final dot when all is out. */
static void
send_next(struct px_session *s)
{
	while (s->op == OP_SEND) {
		if (s->send_off == px_hold_size(s->hold)) {
			if (px_edit_end(s->edit) < 0 || s->sfull) {
				send_fail(s, "edit-end");
				return;
			}
			if (s->slen > 0)
				backend_send(s, s->sbuf,
				    s->slen); /* the inserted fields of an empty message */
			if (s->op != OP_SEND)
				return;
			data_free(s);
			backend_command(s, OP_DOT, ".", NULL, NULL);
			return;
		}
		if (s->ops->backend_queued != NULL && s->ops->backend_queued(s->io) >= SEND_HIGH) {
			s->wait = W_DRAIN; /* px_session_backend_drained resumes */
			return;
		}
		if (px_hold_spooled(s->hold)) {
			s->work = WK_READ; /* the file is read on the pool */
			s->wait = W_WORK;
			s->ops->work(s->io);
			return;
		}
		send_piece(s, px_hold_read(s->hold, s->send_off, s->chunk, CHUNK_HIGH));
	}
}

/* send_begin - the backend said 354 to DATA for the held message: the edits, then the pieces. */
static void
send_begin(struct px_session *s)
{
	size_t nedits, ins = 0;
	const struct moat_hdr_edit *edits = moat_session_edits(s->ms, &nedits);

	for (size_t i = 0; i < nedits; i++)
		if (edits[i].op == MOAT_HDR_INSERT_TOP && edits[i].name != NULL &&
		    edits[i].value != NULL)
			ins += strlen(edits[i].name) + strlen(edits[i].value) + 4;
	/* a piece of CHUNK_HIGH at most doubles with stuffing and may complete a field the header
	 * reader kept from earlier pieces; the inserted fields come first */
	s->op = OP_SEND;
	s->wait = W_DRAIN;
	s->send_off = 0;
	s->slen = 0;
	s->sfull = false;
	s->scap = 2 * CHUNK_HIGH + MOAT_HDR_FIELD_MAX + 4 + 2 * ins;
	if ((s->edit = malloc(sizeof(*s->edit))) == NULL || (s->sbuf = malloc(s->scap)) == NULL) {
		send_fail(s, "out-of-memory");
		return;
	}
	if (px_edit_begin(s->edit, edits, nedits, send_emit, s) < 0) {
		send_fail(s, "edits");
		return;
	}
	moat_log(LOG_INFO, moat_session_id(s->ms), "hold", "size=%llu spooled=%s edits=applied",
	    (unsigned long long)px_hold_size(s->hold), px_hold_spooled(s->hold) ? "yes" : "no");
	data_received(s);
	send_next(s);
}

void
px_session_backend_drained(struct px_session *s)
{
	if (s->wait != W_DRAIN || s->op != OP_SEND)
		return;
	if (s->ops->backend_queued != NULL && s->ops->backend_queued(s->io) >= SEND_HIGH)
		return;
	send_next(s);
	session_pump(s);
}

/* eom_done - the end-of-message verdict is in. */
static void
eom_done(struct px_session *s)
{
	const struct moat_verdict *v = &s->v;
	size_t nedits;

	data_settle(s);
	if (s->data->err != PX_DATA_OK) {
		moat_log(LOG_NOTICE, moat_session_id(s->ms), "reject", "reason=%s",
		    s->data->err == PX_DATA_NUL ? "nul_in_data" : "bare_newline_in_data");
		if (s->data->err == PX_DATA_NUL)
			SAY(s, reply_nul_data);
		else
			SAY(s, reply_bare_data);
		msg_drop(s);
		return;
	}
	if (s->dv.action != MOAT_CONTINUE) {
		moat_log(LOG_NOTICE, moat_session_id(s->ms), "reject", "reason=%s code=%u",
		    s->dv.reason ? s->dv.reason : "-", s->dv.code);
		say_verdict(s, &s->dv);
		msg_drop(s);
		if (s->dv.close)
			session_close(s);
		return;
	}
	switch (v->action) {
	case MOAT_CONTINUE:
	case MOAT_ACCEPT:
	case MOAT_QUARANTINE:
		if (s->bstate != B_READY) {
			SAY(s, reply_backend_lost);
			data_free(s);
			txn_reset(s);
			return;
		}
		if (s->holding) {
			backend_command(s, OP_HDATA, "DATA", NULL, NULL);
			return;
		}
		data_free(s);
		/* cannot happen: the core asks for holding whenever it edits (edits_need_body) */
		(void)moat_session_edits(s->ms, &nedits);
		if (nedits > 0)
			moat_log(LOG_WARNING, moat_session_id(s->ms), "edits",
			    "n=%zu dropped=streaming-mode", nedits);
		backend_command(s, OP_DOT, ".", NULL, NULL);
		return;
	case MOAT_DISCARD:
		SAY(s, "250 2.0.0 Ok: discarded by policy\r\n");
		break;
	default:
		say_verdict(s, v);
		break;
	}
	moat_log(LOG_NOTICE, moat_session_id(s->ms), moat_action_name(v->action), "reason=%s",
	    v->reason ? v->reason : "-");
	msg_drop(s);
	if (v->close)
		session_close(s);
}

/* ---- commands ---- */

struct px_cmd {
	const char *name;
	unsigned flags;
	/* check - validate; replies itself and returns -1 on refusal */
	int (*check)(struct px_session *s, const char *arg);
	/* proceed - act (may start a backend operation or a policy work item) */
	void (*proceed)(struct px_session *s, const char *arg);
};

#define CF_NEED_HELO 0x1 /* only after EHLO/HELO */
#define CF_NEED_TLS 0x2 /* 530 5.7.0 before STARTTLS when proxy_require_tls */
#define CF_JUNK 0x4 /* moves no mail: counts towards limit_junk_commands */

static int
check_none(struct px_session *s, const char *arg)
{
	(void)s;
	(void)arg;
	return 0;
}

static int
check_helo(struct px_session *s, const char *arg)
{
	size_t n = strlen(arg);

	if (n == 0 || n > HELO_MAX || strchr(arg, ' ') != NULL) {
		SAY(s, reply_syntax);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)arg[i] < 0x21 || (unsigned char)arg[i] == 0x7f) {
			SAY(s, reply_syntax);
			return -1;
		}
	return 0;
}

/* ehlo_reply - the reply to EHLO/HELO; SMTPUTF8 only if the backend now connected offers it. */
static void
ehlo_reply(struct px_session *s)
{
	char buf[512];
	int n;

	s->utf8_offered =
	    s->esmtp && s->backend_utf8 && (s->bstate == B_READY || s->bstate == B_PARKED);
	if (!s->esmtp)
		n = snprintf(buf, sizeof(buf), "250 %s\r\n", s->conf->authserv_id);
	else
		n = snprintf(buf, sizeof(buf),
		    "250-%s\r\n250-PIPELINING\r\n250-SIZE %llu\r\n250-8BITMIME\r\n%s%s%s"
		    "250 ENHANCEDSTATUSCODES\r\n",
		    s->conf->authserv_id, (unsigned long long)s->conf->limit_message_size,
		    s->tls_offer && !s->tls_active ? "250-STARTTLS\r\n" : "",
		    s->utf8_offered ? "250-SMTPUTF8\r\n" : "",
		    /* RFC 4954 4: AUTH only inside TLS, and not again once authenticated */
		    s->submission && s->tls_active && !s->authenticated ? PX_AUTH_EHLO : "");
	if (n > 0 && (size_t)n < sizeof(buf))
		say(s, buf, (size_t)n);
}

static void
helo_common(struct px_session *s, const char *arg, bool esmtp)
{
	struct moat_verdict v;

	if (s->in_txn || s->op != OP_NONE) {
		backend_abort(s); /* RFC 5321 4.1.4: EHLO resets the transaction */
		txn_reset(s);
	}
	moat_session_helo(s->ms, arg, esmtp, &v);
	if (v.action != MOAT_CONTINUE && v.action != MOAT_ACCEPT) {
		say_verdict(s, &v);
		if (v.close)
			session_close(s);
		return;
	}
	/*
	 * A new name on a leg that already passed the old one by XCLIENT: park it, so the next
	 * MAIL sends XCLIENT (and EHLO) again and the backend records the name the client gave now.
	 */
	if (s->bstate == B_READY && s->conf->proxy_backend_pass == MOAT_PASS_XCLIENT &&
	    (strcmp(s->helo, arg) != 0 || s->esmtp != esmtp))
		s->bstate = B_PARKED;
	snprintf(s->helo, sizeof(s->helo), "%s", arg);
	s->helo_seen = true;
	s->esmtp = esmtp;
	if (esmtp && s->conf->proxy_backend_connect == MOAT_BCONN_ACCEPT) {
		/* the extensions we offer depend on the backend's: wait for its EHLO reply */
		if (s->bstate == B_NONE)
			backend_start(s, OP_NONE);
		if (backend_in_setup(s)) {
			s->op = OP_EHLO;
			s->wait = W_BACKEND;
			return;
		}
	}
	ehlo_reply(s);
}

static void
proceed_ehlo(struct px_session *s, const char *arg)
{
	helo_common(s, arg, true);
}

static void
proceed_helo(struct px_session *s, const char *arg)
{
	helo_common(s, arg, false);
}

/* mail_params - only what we advertise: SIZE=n, BODY=7BIT|8BITMIME, SMTPUTF8 (RFC 1870, 6152, 6531). */
static int
mail_params(struct px_session *s, const char *params)
{
	const char *p = params;

	while (*p != '\0') {
		const char *end = strchr(p, ' ');
		size_t tl = end ? (size_t)(end - p) : strlen(p);

		if (tl > 5 && strncasecmp(p, "SIZE=", 5) == 0) {
			uint64_t v;

			if (moat_size_value(p + 5, tl - 5, &v) < 0)
				return -1;
			if (v > s->conf->limit_message_size)
				return -2;
		} else if (tl == 8 && strncasecmp(p, "SMTPUTF8", 8) == 0) {
			if (!s->utf8_offered)
				return -1; /* RFC 6531 3.4: only when advertised; relayed as given */
		} else if (!(tl == 9 && strncasecmp(p, "BODY=7BIT", 9) == 0) &&
		    !(tl == 13 && strncasecmp(p, "BODY=8BITMIME", 13) == 0)) {
			return -1;
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	return 0;
}

/* parse_path - "FROM:<path> params" or "TO:<path> params" into s->path and s->params; replies
 * itself and returns -1 when malformed. */
static int
parse_path(struct px_session *s, const char *arg, const char *prefix, bool mail, unsigned *np)
{
	switch (px_parse_path(arg, prefix, mail, s->path, sizeof(s->path), &s->params, np)) {
	case PX_PATH_OK:
		return 0;
	case PX_PATH_TOOLONG:
		SAY(s, reply_path_long);
		return -1;
	case PX_PATH_PARAM:
		SAY(s, reply_param);
		return -1;
	default:
		SAY(s, reply_path_syntax);
		return -1;
	}
}

static int
check_mail(struct px_session *s, const char *arg)
{
	unsigned np;
	int rc;

	if (s->in_txn) {
		SAY(s, reply_nested_mail);
		return -1;
	}
	if (s->submission && !s->authenticated) {
		SAY(s, reply_auth_required); /* RFC 4954 6 */
		return -1;
	}
	if (parse_path(s, arg, "FROM:", true, &np) < 0)
		return -1;
	if ((rc = mail_params(s, s->params)) == -2) {
		SAY(s, reply_too_big);
		return -1;
	} else if (rc < 0) {
		SAY(s, reply_param);
		return -1;
	}
	return 0;
}

static void
proceed_mail(struct px_session *s, const char *arg)
{
	(void)arg;
	s->work = WK_MAIL;
	s->wait = W_WORK;
	s->ops->work(s->io);
}

/* backend_request - OP (MAIL, or AUTH's first line) to the backend, connecting it first if need be. */
static void
backend_request(struct px_session *s, enum px_op op)
{
	if (s->bstate == B_READY) {
		s->op = op;
		backend_ready(s);
	} else if (s->bstate == B_PARKED) {
		if (reply_alloc(s) < 0)
			return;
		s->op = op;
		s->wait = W_BACKEND;
		backend_xclient(s);
	} else if (backend_in_setup(s)) {
		s->op = op; /* the early connection's setup sends it once ready */
		s->wait = W_BACKEND;
	} else {
		backend_start(s, op);
	}
}

/* mail_done - the core's MAIL verdict is in: relay to the backend or refuse. */
static void
mail_done(struct px_session *s)
{
	if (s->v.action != MOAT_CONTINUE && s->v.action != MOAT_ACCEPT) {
		say_verdict(s, &s->v);
		moat_session_abort(s->ms);
		if (s->v.close)
			session_close(s);
		return;
	}
	backend_request(s, OP_MAIL);
}

static int
check_rcpt(struct px_session *s, const char *arg)
{
	unsigned np;

	if (!s->in_txn) {
		SAY(s, reply_need_mail);
		return -1;
	}
	if (parse_path(s, arg, "TO:", false, &np) < 0)
		return -1;
	if (np > 0) { /* DSN is not advertised: no RCPT parameters */
		SAY(s, reply_param);
		return -1;
	}
	return 0;
}

static void
proceed_rcpt(struct px_session *s, const char *arg)
{
	struct moat_verdict v;
	enum moat_event_rc rc;

	(void)arg;
	if (s->bstate != B_READY) {
		SAY(s,
		    reply_backend_lost); /* the leg is gone: nothing to check, nothing to charge */
		return;
	}
	rc = moat_session_rcpt(s->ms, s->path, NULL, &v);
	core_event(s, rc, &v, RL_RCPT);
}

/* rcpt_send - RCPT passed every check: to the backend. Without it the transaction stays (see
 * px_session_backend_error). */
static void
rcpt_send(struct px_session *s)
{
	if (s->bstate != B_READY) {
		SAY(s, reply_backend_lost);
		return;
	}
	backend_command(s, OP_RCPT, "RCPT TO:", s->path, NULL);
}

static int
check_data(struct px_session *s, const char *arg)
{
	if (*arg != '\0') {
		SAY(s, reply_syntax);
		return -1;
	}
	if (!s->in_txn) {
		SAY(s, reply_need_mail);
		return -1;
	}
	if (s->nrcpt == 0) {
		SAY(s, reply_no_rcpt);
		return -1;
	}
	return 0;
}

static void
proceed_data(struct px_session *s, const char *arg)
{
	struct moat_verdict v;

	(void)arg;
	moat_session_data(s->ms, &v);
	if (v.action != MOAT_CONTINUE && v.action != MOAT_ACCEPT) {
		say_verdict(s, &v);
		backend_abort(s);
		txn_reset(s);
		if (v.close)
			session_close(s);
		return;
	}
	if (s->bstate != B_READY) {
		txn_reset(s);
		SAY(s, reply_backend_lost);
		return;
	}
	/* holding mode: the backend hears DATA only after the verdict, with the edited message */
	s->holding = moat_session_edits_need_body(s->ms);
	if (data_begin(s) < 0) {
		SAY(s, reply_oom);
		session_close(s);
		return;
	}
	if (s->holding)
		data_open(s);
	else
		backend_command(s, OP_DATA, "DATA", NULL, NULL);
}

static int
check_noarg(struct px_session *s, const char *arg)
{
	if (*arg != '\0') {
		SAY(s, reply_syntax);
		return -1;
	}
	return 0;
}

static void
proceed_rset(struct px_session *s, const char *arg)
{
	(void)arg;
	if (s->in_txn && s->bstate == B_READY) {
		txn_reset(s);
		backend_command(s, OP_RSET, "RSET", NULL, NULL);
		return;
	}
	txn_reset(s);
	SAY(s, reply_ok);
}

static void
proceed_noop(struct px_session *s, const char *arg)
{
	(void)arg;
	SAY(s, reply_ok);
}

static void
proceed_vrfy(struct px_session *s, const char *arg)
{
	(void)arg;
	SAY(s, reply_vrfy);
}

static void
proceed_help(struct px_session *s, const char *arg)
{
	(void)arg;
	SAY(s, reply_help);
}

static void
proceed_quit(struct px_session *s, const char *arg)
{
	(void)arg;
	SAY(s, reply_bye);
	if (s->in_txn) {
		backend_abort(s);
		txn_reset(s);
	}
	session_close(s);
}

/* STARTTLS, RFC 3207; the injection defence of CVE-2011-0411 and "NO STARTTLS". */
static int
check_starttls(struct px_session *s, const char *arg)
{
	if (!s->tls_offer || s->ops->client_starttls == NULL) {
		SAY(s, reply_unknown); /* not advertised: not a command here */
		return -1;
	}
	if (s->tls_active) {
		SAY(s, reply_tls_active); /* RFC 3207 4.2: no STARTTLS inside TLS */
		return -1;
	}
	if (arg[0] != '\0') {
		SAY(s, reply_syntax);
		return -1;
	}
	if (s->in_txn || s->op != OP_NONE) {
		SAY(s, reply_tls_in_txn);
		return -1;
	}
	return 0;
}

static void
proceed_starttls(struct px_session *s, const char *arg)
{
	size_t pipelined = s->in_len - s->in_pos;

	(void)arg;
	if (pipelined > 0) {
		/* plaintext sent after STARTTLS must never run inside TLS (RFC 3207 4.2, CVE-2011-0411) */
		moat_log(LOG_NOTICE, moat_session_id(s->ms), "starttls", "pipelined=%zu action=%s",
		    pipelined,
		    s->conf->tls_starttls_pipelined == MOAT_TLS_PIPE_CLOSE ? "close" : "discard");
		s->in_pos = s->in_len;
		if (s->conf->tls_starttls_pipelined == MOAT_TLS_PIPE_CLOSE) {
			SAY(s, reply_tls_pipelined);
			session_close(s);
			return;
		}
	}
	{
		struct moat_verdict v;
		enum moat_event_rc rc = moat_session_tls_start(s->ms, &v);

		core_event(s, rc, &v, RL_STARTTLS);
	}
}

/* starttls_begin - STARTTLS passed the TLS handshake limit: 220, then TLS. */
static void
starttls_begin(struct px_session *s)
{
	SAY(s, reply_starttls);
	/* RFC 3207 4.2: forget everything learnt before TLS; a new EHLO is required */
	txn_reset(s);
	s->helo_seen = false;
	s->esmtp = false;
	s->utf8_offered = false;
	s->helo[0] = '\0';
	if (s->ops->client_starttls(s->io) < 0)
		session_close(s);
}

/* ---- AUTH on submission listeners (RFC 4954), relayed to the backend: smtp_auth.c ---- */

/* auth_end - the exchange is over (either way): wipe what it held. */
static void
auth_end(struct px_session *s)
{
	px_auth_free(s->auth);
	s->auth = NULL;
}

/* auth_send - the pending line of the exchange to the backend, then wipe our copy. */
static void
auth_send(struct px_session *s)
{
	size_t n;
	const char *l;

	if (!s->backend_auth) {
		moat_log(LOG_WARNING, moat_session_id(s->ms), "auth",
		    "result=unavailable backend_offers_auth=no");
		s->op = OP_NONE;
		s->wait = W_NONE;
		auth_end(s);
		SAY(s, reply_auth_unavailable);
		return;
	}
	if (s->reply == NULL && (s->reply = malloc(sizeof(*s->reply))) == NULL) {
		auth_end(s);
		SAY(s, reply_oom);
		session_close(s);
		return;
	}
	px_reply_init(s->reply);
	l = px_auth_line(s->auth, &n);
	s->op = OP_AUTH;
	s->wait = W_BACKEND;
	backend_send(s, l, n);
	px_auth_sent(s->auth);
}

/* auth_succeeded - the backend said 235: trusted from now, the login counted by the per-user
 * rate limits and known to the trust rules. */
static void
auth_succeeded(struct px_session *s)
{
	s->authenticated = true;
	moat_session_auth(s->ms, px_auth_login(s->auth));
	/* the login name is not logged (AUTH data never is, STYLE.md 5) */
	moat_log(LOG_INFO, moat_session_id(s->ms), "auth", "result=ok mech=%s",
	    px_auth_mech(s->auth));
	auth_end(s);
	SAY(s, reply_auth_ok);
}

/* auth_backend_reply - the backend's answer to a line of the exchange. */
static void
auth_backend_reply(struct px_session *s, const struct px_reply *r)
{
	if (r->code == 334) {
		say(s, r->buf, r->len); /* the challenge, verbatim; the client answers */
		s->state = S_AUTH;
		return;
	}
	s->state = S_CMD;
	if (r->code != 235) {
		say(s, r->buf, r->len); /* 535, 501, 454...: the backend's word */
		moat_log(LOG_NOTICE, moat_session_id(s->ms), "auth",
		    "result=fail mech=%s backend_code=%u", px_auth_mech(s->auth), r->code);
		auth_end(s);
		count_error(s, false);
		return;
	}
	auth_succeeded(s);
}

static int
check_auth(struct px_session *s, const char *arg)
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
	if (!s->tls_active) {
		SAY(s, reply_tls_required); /* RFC 4954 4: credentials only inside TLS */
		return -1;
	}
	if (s->authenticated) {
		SAY(s, reply_auth_twice);
		return -1;
	}
	if (s->in_txn || s->op != OP_NONE) {
		SAY(s, reply_tls_in_txn);
		return -1;
	}
	if ((rc = px_auth_start(arg, &s->auth)) != PX_AUTH_SEND) {
		say(s, replies[rc], strlen(replies[rc]));
		return -1;
	}
	return 0;
}

static void
proceed_auth(struct px_session *s, const char *arg)
{
	(void)arg;
	backend_request(s, OP_AUTH);
}

/* auth_client_line - the client's answer to a 334 (credentials: wiped once relayed). */
static void
auth_client_line(struct px_session *s, char *line, size_t len)
{
	enum px_auth_rc rc = px_auth_response(s->auth, line, len);

	OPENSSL_cleanse(line, len);
	if (rc != PX_AUTH_SEND) {
		/* too long: cancel at the backend, whose 501 ends the exchange there */
		s->state = S_CMD;
		auth_end(s);
		SAY(s, reply_auth_long);
		backend_abort(s);
		return;
	}
	auth_send(s);
}

static const struct px_cmd cmd_table[] = {
	{ "AUTH", CF_NEED_HELO, check_auth, proceed_auth },
	{ "STARTTLS", CF_NEED_HELO, check_starttls, proceed_starttls },
	{ "EHLO", 0, check_helo, proceed_ehlo },
	{ "HELO", 0, check_helo, proceed_helo },
	{ "MAIL", CF_NEED_HELO | CF_NEED_TLS, check_mail, proceed_mail },
	{ "RCPT", CF_NEED_HELO | CF_NEED_TLS, check_rcpt, proceed_rcpt },
	{ "DATA", CF_NEED_HELO | CF_NEED_TLS, check_data, proceed_data },
	{ "RSET", CF_JUNK, check_noarg, proceed_rset },
	{ "NOOP", CF_JUNK, check_none, proceed_noop },
	{ "QUIT", 0, check_none, proceed_quit },
	{ "VRFY", CF_JUNK, check_none, proceed_vrfy },
	{ "HELP", CF_JUNK, check_none, proceed_help },
};

/* session_command - one complete command line (without CRLF). */
static void
session_command(struct px_session *s, const char *line, size_t len)
{
	const struct px_cmd *c = NULL;
	char verb[9];
	const char *arg;

	if (len + 1 > s->line_cap)
		return; /* cannot happen: lines are bounded by the same limit */
	if (s->line == NULL && (s->line = malloc(s->line_cap)) == NULL) {
		SAY(s, reply_oom);
		session_close(s);
		return;
	}
	memcpy(s->line, line, len);
	s->line[len] = '\0';
	if (px_verb(s->line, len, verb, &arg)) {
		for (size_t i = 0; i < sizeof(cmd_table) / sizeof(cmd_table[0]); i++)
			if (strcmp(cmd_table[i].name, verb) == 0) {
				c = &cmd_table[i];
				break;
			}
	}
	if (c == NULL) {
		SAY(s, reply_unknown);
		count_error(s, true);
		return;
	}
	if ((c->flags & CF_JUNK) && count_junk(s))
		return;
	if ((c->flags & CF_NEED_TLS) && s->conf->proxy_require_tls && !s->tls_active) {
		SAY(s, reply_tls_required);
		count_error(s, false);
		return;
	}
	if ((c->flags & CF_NEED_HELO) && !s->helo_seen) {
		SAY(s, reply_need_helo);
		count_error(s, false);
		return;
	}
	if (c->check(s, arg) < 0) {
		count_error(s, false);
		return;
	}
	c->proceed(s, arg);
}

/* session_pump - run what the input buffer holds, until it is empty or we must wait. */
static void
session_pump(struct px_session *s)
{
	while (s->state != S_CLOSED && s->wait == W_NONE && s->in_pos < s->in_len) {
		const char *p = s->in + s->in_pos;
		size_t n = s->in_len - s->in_pos;

		if (s->state == S_GREET) {
			SAY(s, reply_early);
			moat_log(LOG_NOTICE, moat_session_id(s->ms), "reject",
			    "reason=early_talker");
			session_close(s);
			break;
		}
		if (s->state == S_DATA) {
			bool done;

			assert(s->data != NULL); /* S_DATA only between data_begin and data_end */
			s->in_pos += px_data_feed(s->data, p, data_feed_max(s, n), &done);
			data_settle(s);
			if (done) {
				data_end(s);
			} else if (s->holding && s->chunk_len >= CHUNK_HIGH) {
				s->work =
				    WK_CHUNK; /* events and spool writes, in order, on the pool */
				s->wait = W_WORK;
				s->ops->work(s->io);
			}
			continue;
		}
		if (s->skip != SK_NONE) {
			bool found;
			size_t used = px_parse_skip(p, n, &found);

			if (!found) {
				s->in_pos = s->in_len;
				break;
			}
			s->in_pos += used;
			if (s->skip == SK_LONG)
				SAY(s, reply_line_long);
			else if (s->skip == SK_NUL)
				SAY(s, reply_nul_cmd);
			else {
				SAY(s, reply_bare_cmd);
				if (s->in_txn) {
					backend_abort(s);
					txn_reset(s);
				}
			}
			s->skip = SK_NONE;
			count_error(s, false);
			continue;
		}
		size_t ll, used;
		enum px_line r = px_parse_line(p, n, s->conf->limit_line_length,
		    s->conf->proxy_bare_newline == MOAT_BARE_NORMALIZE, &ll, &used);

		if (r == PX_LINE_NEED)
			break;
		if (r == PX_LINE_OK) {
			/* AUTH lines carry credentials: no copy of them stays behind */
			bool secret =
			    s->state == S_AUTH || (ll >= 4 && strncasecmp(p, "AUTH", 4) == 0);

			s->in_pos += used;
			if (s->state == S_AUTH)
				auth_client_line(s, s->in + s->in_pos - used, ll);
			else
				session_command(s, p, ll);
			if (secret) {
				OPENSSL_cleanse(s->in + s->in_pos - used, used);
				if (s->line != NULL)
					OPENSSL_cleanse(s->line, s->line_cap);
			}
			continue;
		}
		s->skip = r == PX_LINE_TOOLONG ? SK_LONG : r == PX_LINE_NUL ? SK_NUL : SK_BARE;
	}
	/* compact: keep unread bytes at the front so a maximal line always fits */
	if (s->in_pos > 0) {
		memmove(s->in, s->in + s->in_pos, s->in_len - s->in_pos);
		s->in_len -= s->in_pos;
		s->in_pos = 0;
	}
	/* idle between commands: give the buffers back */
	if (s->in_len == 0 && s->wait == W_NONE && s->state != S_DATA && s->skip == SK_NONE) {
		free(s->in);
		free(s->line);
		s->in = s->line = NULL;
	}
}

/* ---- driver entry points ---- */

/* event_then - go on with what waited for the core's verdict, or refuse it. */
static void
event_then(struct px_session *s, enum px_rlnext next, const struct moat_verdict *v)
{
	if (next == RL_MAIL) { /* relayed or refused (and the transaction undone) there */
		s->v = *v;
		mail_done(s);
		return;
	}
	if (next == RL_EOM) {
		s->v = *v;
		eom_done(s);
		return;
	}
	if (v->action != MOAT_CONTINUE && v->action != MOAT_ACCEPT) {
		if (next != RL_TLS_IMPLICIT) /* before the handshake nothing can be said */
			say_verdict(s, v);
		if (v->close || next == RL_TLS_IMPLICIT)
			session_close(s);
		return;
	}
	switch (next) {
	case RL_GREET:
		if (s->conf->proxy_backend_connect == MOAT_BCONN_ACCEPT)
			backend_start(s, OP_NONE); /* its EHLO reply decides what our EHLO offers */
		if (s->greet_now)
			px_session_greet(s);
		break;
	case RL_TLS_IMPLICIT:
		if (s->ops->client_starttls(s->io) < 0)
			session_close(s);
		break;
	case RL_STARTTLS:
		starttls_begin(s);
		break;
	case RL_RCPT:
		rcpt_send(s);
		break;
	case RL_MAIL:
	case RL_EOM:
		break;
	}
}

/*
 * core_event - an event of the core returned RC with verdict V. Pending on the rate limits: the
 * plan is charged in the driver's store, and NEXT runs when the store answers
 * (px_session_ratelimit_done). Pending on a work item: it runs on the pool (WK_CORE), and NEXT
 * when it is done. Else NEXT runs now.
 */
static void
core_event(struct px_session *s, enum moat_event_rc rc, struct moat_verdict *v, enum px_rlnext next)
{
	while (rc == MOAT_EVENT_PENDING) {
		struct moat_verdict answer;

		moat_verdict_continue(&answer);
		if (moat_session_pending(s->ms) == MOAT_WAIT_WORK) {
			s->rl_next = next;
			s->work = WK_CORE;
			s->wait = W_WORK;
			s->ops->work(s->io);
			return;
		}
		if (s->ops->ratelimit == NULL) {
			/* the core pends only for a shared store, which a driver without one cannot
			 * reach: refuse for now rather than pass unlimited */
			moat_verdict_set(&answer, MOAT_TEMPFAIL, 451, "4.3.0",
			    "ratelimit_store_down", "Local error, try again later");
		} else if (s->ops->ratelimit(s->io, moat_session_pending_plan(s->ms),
			       moat_session_id(s->ms), &answer) > 0) {
			s->rl_next = next;
			s->wait = W_RATELIMIT;
			return;
		}
		rc = moat_session_resume(s->ms, &answer, v);
	}
	event_then(s, next, v);
}

void
px_session_ratelimit_done(struct px_session *s, const struct moat_verdict *answer)
{
	struct moat_verdict v;
	enum moat_event_rc rc;

	if (s->wait != W_RATELIMIT)
		return;
	s->wait = W_NONE;
	if (s->state == S_CLOSED || s->gone)
		return;
	rc = moat_session_resume(s->ms, answer, &v);
	core_event(s, rc, &v, s->rl_next);
	session_pump(s);
}

void
px_session_tls_implicit(struct px_session *s)
{
	struct moat_verdict v;
	enum moat_event_rc rc = moat_session_tls_start(s->ms, &v);

	core_event(s, rc, &v, RL_TLS_IMPLICIT);
}

/* TLS */
void
px_session_tls_offer(struct px_session *s, bool offer)
{
	s->tls_offer = offer;
}

void
px_session_tls_started(struct px_session *s, const struct moat_tls_info *info)
{
	s->tls_active = true;
	s->tls = *info;
	moat_session_tls(s->ms, info);
	moat_log(LOG_INFO, moat_session_id(s->ms), "tls",
	    "protocol=%s cipher=%s bits=%u sni=%s%s%s", info->protocol, info->cipher, info->bits,
	    info->sni[0] != '\0' ? info->sni : "-",
	    info->peer_fingerprint[0] != '\0' ? " peer_fingerprint=" : "", info->peer_fingerprint);
}

struct px_session *
px_session_new(struct moat_policy *pol, const struct moat_client *client, const char *local_addr,
    unsigned local_port, const struct px_ops *ops, void *io)
{
	struct px_session *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->ops = ops;
	s->io = io;
	s->ms = moat_session_new(pol, client);
	if (s->ms == NULL) {
		free(s);
		return NULL;
	}
	s->conf = moat_session_conf(s->ms);
	snprintf(s->client_addr, sizeof(s->client_addr), "%s", client->addr);
	s->client_port = client->port;
	snprintf(s->client_name, sizeof(s->client_name), "%s", client->name ? client->name : "");
	snprintf(s->local_addr, sizeof(s->local_addr), "%s", local_addr);
	s->local_port = local_port;
	s->submission = client->listener != NULL &&
	    moat_trust_list_has(s->conf->proxy_submission_listen, client->listener);
	s->line_cap = s->conf->limit_line_length + 1;
	s->in_cap = s->conf->limit_line_length + INBUF_WINDOW;
	return s;
}

void
px_session_free(struct px_session *s)
{
	if (s == NULL)
		return;
	moat_session_free(s->ms);
	auth_end(s);
	data_free(s);
	free(s->reply);
	free(s->line);
	free(s->in);
	free(s);
}

const struct moat_conf *
px_session_conf(const struct px_session *s)
{
	return s->conf;
}

const char *
px_session_id(const struct px_session *s)
{
	return moat_session_id(s->ms);
}

void
px_session_start(struct px_session *s, bool greet)
{
	struct moat_verdict v;
	enum moat_event_rc rc;

	s->state = S_GREET;
	s->greet_now = greet;
	rc = moat_session_connect(s->ms, &v);
	core_event(s, rc, &v, RL_GREET);
}

void
px_session_greet(struct px_session *s)
{
	char buf[320];
	int n;

	if (s->state != S_GREET)
		return;
	if (s->wait != W_NONE) { /* the connect checks have not answered: greet when they do */
		s->greet_now = true;
		return;
	}
	if (s->in_len > 0) { /* talked before the banner (postscreen's pregreet test) */
		session_pump(s);
		return;
	}
	s->state = S_CMD;
	n = snprintf(buf, sizeof(buf), "220 %s ESMTP mxmoat\r\n", s->conf->authserv_id);
	if (n > 0 && (size_t)n < sizeof(buf))
		say(s, buf, (size_t)n);
}

char *
px_session_rbuf(struct px_session *s, size_t *avail)
{
	if (s->in == NULL && (s->in = malloc(s->in_cap)) == NULL) {
		*avail = 0;
		return NULL;
	}
	*avail = s->in_cap - s->in_len;
	return *avail > 0 ? s->in + s->in_len : NULL;
}

size_t
px_session_rroom(const struct px_session *s)
{
	return s->in_cap - s->in_len;
}

void
px_session_rdone(struct px_session *s, size_t n)
{
	if (n > s->in_cap - s->in_len)
		n = s->in_cap - s->in_len;
	s->in_len += n;
	session_pump(s);
}

void
px_session_client_gone(struct px_session *s)
{
	if (s->gone)
		return;
	s->gone = true;
	if (s->in_txn || s->op != OP_NONE || s->state == S_DATA)
		backend_abort(s); /* no final dot ever went out: nothing is delivered */
	txn_reset(s);
	session_close(s);
}

void
px_session_timeout(struct px_session *s, const char *which)
{
	char buf[128];
	int n = snprintf(buf, sizeof(buf), reply_timeout_fmt, s->conf->authserv_id);

	moat_log(LOG_NOTICE, moat_session_id(s->ms), "timeout", "which=%s", which);
	if (n > 0 && (size_t)n < sizeof(buf))
		say(s, buf, (size_t)n);
	if (s->in_txn || s->state == S_DATA)
		backend_abort(s);
	txn_reset(s);
	session_close(s);
}

/*
 * px_session_work_blocks - may the pending work item block the loop? MAIL: no, moat_session_mail
 * does no I/O (policy.h). End of data in streaming mode: the last header and body events only
 * count (as they did on the loop while the message streamed), and moat_session_eom waits on DNS or
 * signs only when the core says so. Holding mode: yes, its chunks and its end of data hash the
 * body, write the spool file and run the checks, and WK_READ reads the spool file.
 */
bool
px_session_work_blocks(const struct px_session *s)
{
	switch (s->work) {
	case WK_MAIL:
		return false;
	case WK_EOM:
		return s->holding || moat_session_eom_blocks(s->ms);
	case WK_CHUNK:
	case WK_READ:
	case WK_CORE:
	case WK_NONE:
		break;
	}
	return true;
}

void
px_session_work_run(struct px_session *s)
{
	switch (s->work) {
	case WK_MAIL:
		s->core_rc =
		    moat_session_mail(s->ms, s->path, *s->params ? s->params : NULL, &s->v);
		break;
	case WK_EOM:
		eom_run(s);
		break;
	case WK_CHUNK:
		chunk_run(s);
		break;
	case WK_READ:
		s->read_len = px_hold_read(s->hold, s->send_off, s->chunk, CHUNK_HIGH);
		break;
	case WK_CORE:
		moat_session_work(s->ms);
		s->core_rc = moat_session_resume(s->ms, NULL, &s->v);
		break;
	case WK_NONE:
		break;
	}
}

void
px_session_work_done(struct px_session *s)
{
	enum px_work w = s->work;

	s->work = WK_NONE;
	s->wait = W_NONE;
	if (s->state == S_CLOSED || s->gone)
		return;
	switch (w) {
	case WK_MAIL:
		core_event(s, s->core_rc, &s->v, RL_MAIL);
		break;
	case WK_EOM:
		core_event(s, s->core_rc, &s->v, RL_EOM);
		break;
	case WK_CORE:
		core_event(s, s->core_rc, &s->v, s->rl_next);
		break;
	case WK_CHUNK:
		data_settle(s);
		break;
	case WK_READ:
		s->wait = W_DRAIN;
		if (s->bstate != B_READY) { /* the leg went while the file was read */
			send_fail(s, "backend-lost");
			break;
		}
		send_piece(s, s->read_len);
		send_next(s);
		break;
	case WK_NONE:
		break;
	}
	session_pump(s);
}

enum px_phase
px_session_phase(const struct px_session *s)
{
	switch (s->state) {
	case S_GREET:
		return PX_PHASE_GREET;
	case S_DATA:
		return PX_PHASE_DATA;
	case S_CLOSED:
		return PX_PHASE_CLOSED;
	default:
		return PX_PHASE_COMMAND;
	}
}

bool
px_session_backend_waiting(const struct px_session *s)
{
	return s->wait == W_BACKEND || s->wait == W_DRAIN;
}
