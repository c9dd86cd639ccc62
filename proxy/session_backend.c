/*
 * session_backend.c - the session's side of its backend leg (backend.h): which command waits for
 * the leg, the commands it queues (formatted here, each with the function its reply goes to), and
 * what the client hears when the leg cannot be set up or is lost, according to what was pending.
 * The leg itself (setup, queue, reply parsing) is backend.c.
 *
 * Pipelining (RFC 2920) towards a backend that offers it: while replies are due, the session goes
 * on with the client's next command if it is already read and may share a group (MAIL, RCPT,
 * RSET, NOOP, DATA in streaming mode; px__backend_ahead). Each still passes the core before the
 * backend hears it; one the core refuses is answered here and never sent, its reply kept until the
 * replies before it are relayed. The commands of a group leave in one write (the cork), the
 * replies are relayed in order, verbatim, and a lost leg answers each command still due.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "log.h"
#include "session_int.h"
#include "smtp_session.h"

static const char reply_backend_ext_gone[] =
    "451 4.3.0 Backend no longer offers SMTPUTF8 or DSN, try again later\r\n";

/* px__backend_queue - the command LINE (LEN bytes, CRLF included) to the backend; the session
 * waits for OP, and the reply goes to DONE. 0, or -1 when it could not be queued (the client was
 * answered: 421 and the session closes, or 451). */
int
px__backend_queue(struct px_session *s, enum px_op op, const char *line, size_t len,
    px_backend_reply_fn done)
{
	enum px_op was = s->op;
	enum px_wait wait = s->wait;
	int rc;

	if (s->b.n == 0) /* s->op: the oldest command still due */
		s->op = op;
	s->wait = W_BACKEND;
	rc = px_backend_command(&s->b, line, len, done, op);
	if (rc == 0) {
		s->bseq++;
		return 0;
	}
	s->op = was;
	s->wait = wait;
	if (rc == -ENOMEM) {
		SAY(s, reply_oom);
		px__session_close(s);
	} else {
		SAY(s, reply_local); /* cannot happen: one command at a time */
	}
	return -1;
}

/* px__backend_command - send "verb<path> params\r\n" (path NULL: the verb alone); the session
 * waits for OP, and the reply goes to DONE. 0, or -1 when it was answered here instead. */
int
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
		return -1;
	}
	return px__backend_queue(s, op, buf, (size_t)n, done);
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

/* send_mail - MAIL FROM to a ready backend; the transaction starts with it, so RCPTs pipelined
 * after it find one (its refusal ends it, px__mail_reply). */
static void
send_mail(struct px_session *s)
{
	if (px__backend_lacks(s, false)) {
		moat_session_abort(s->ms);
		s->op = OP_NONE;
		s->wait = W_NONE;
		return;
	}
	if (px__txn_begin(s) < 0) {
		SAY(s, reply_oom);
		px__session_close(s);
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

/* backend_unsolicited - a reply with nothing queued: before the final dot of a held message
 * (e.g. 421) the backend gave up on it; otherwise the leg is no longer usable. */
static void
backend_unsolicited(struct px_session *s)
{
	enum px_op op = s->op;

	s->op = OP_NONE;
	s->wait = W_NONE;
	px_backend_abort(&s->b);
	if (op != OP_SEND)
		return;
	px__txn_end(s);
	px__data_free(s);
	SAY(s, reply_backend_lost);
}

/*
 * backend_event - what the leg says. READY: what waited goes out. PARKED: a client EHLO that
 * waited for the backend's extensions is answered. FAILED: the pending MAIL or AUTH gets REPLY; a
 * waiting EHLO is answered without the backend's extensions; with nobody waiting, MAIL will try
 * again. LOST, UNSOLICITED: a set-up leg went wrong.
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
	case PX_BEV_LOST:
		px_session_backend_error(s, reply);
		return;
	case PX_BEV_UNSOLICITED:
		backend_unsolicited(s);
		return;
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

/* backend_answered - the oldest command due has its reply (or its loss): what the session waits
 * for now. */
static void
backend_answered(struct px_session *s)
{
	unsigned tags[PX_BACKEND_INFLIGHT];

	s->bans++;
	s->op = px_backend_tags(&s->b, tags) > 0 ? (enum px_op)tags[0] : OP_NONE;
	if (s->wait == W_BACKEND && s->op == OP_NONE)
		s->wait = W_NONE;
}

/* backend_dispatch - a reply to a queued command: relayed by DONE, then the replies the session
 * gave to the commands after it, up to the next one still due. A 354 that opened the message
 * lets what DONE sent wait for the message's bytes (one write, px_backend_linger). */
static void
backend_dispatch(struct px_session *s, px_backend_reply_fn done, const struct px_reply *r)
{
	enum px_op op = s->op;

	backend_answered(s);
	s->in_reply++;
	done(s, r);
	s->in_reply--;
	if (op == OP_DATA && s->state == S_DATA)
		px_backend_linger(&s->b); /* our Received field goes with the first bytes read */
	px__later_flush(s);
}

/* group_verb - LINE starts with VERB (4 letters) as a whole word. */
static bool
group_verb(const char *line, size_t len, const char *verb)
{
	return len >= 4 && strncasecmp(line, verb, 4) == 0 && (len == 4 || line[4] == ' ');
}

/*
 * px__backend_ahead - with replies due, may the session run the command at P (N bytes read)
 * now? Only a whole line, to a backend that offers PIPELINING, while the queue and the replies
 * kept have room and no DATA is due (RFC 2920 3.1: DATA ends a group): RSET, NOOP, RCPT, DATA in
 * streaming mode (holding says 354 itself, which needs the RCPT replies first), and MAIL when
 * only RSETs are due (a reply of the last transaction must not meet the next one).
 */
bool
px__backend_ahead(struct px_session *s, const char *p, size_t n)
{
	unsigned tags[PX_BACKEND_INFLIGHT];
	unsigned nt = px_backend_tags(&s->b, tags);
	size_t ll, used;
	bool only_rset = true;

	if ((s->wait != W_NONE && s->wait != W_BACKEND) || !px_backend_ready(&s->b) ||
	    !s->b.pipelining || s->state != S_CMD || s->skip != SK_NONE ||
	    nt + 1 >= PX_BACKEND_INFLIGHT || s->later_len > PX_REPLY_MAX)
		return false;
	for (unsigned i = 0; i < nt; i++) {
		if (tags[i] != OP_MAIL && tags[i] != OP_RCPT && tags[i] != OP_RSET)
			return false;
		only_rset = only_rset && tags[i] == OP_RSET;
	}
	if (px_parse_line(p, n, s->conf->limit_line_length,
		s->conf->proxy_bare_newline == MOAT_BARE_NORMALIZE, &ll, &used) != PX_LINE_OK)
		return false;
	if (group_verb(p, ll, "RSET") || group_verb(p, ll, "NOOP") || group_verb(p, ll, "RCPT"))
		return true;
	if (group_verb(p, ll, "DATA"))
		return !moat_session_edits_need_body(s->ms);
	return group_verb(p, ll, "MAIL") && only_rset;
}

void
px__backend_bind(struct px_session *s)
{
	const char *name = moat_session_client_name(s->ms);
	struct px_backend_peer peer = { .addr = moat_session_client_addr(s->ms),
		.name = name != NULL ? name : "",
		.local_addr = s->local_addr,
		.port = moat_session_client_port(s->ms),
		.local_port = s->local_port };

	px_backend_bind(&s->b, s->ops, s->io, s->ms, &peer, backend_event, backend_dispatch, s);
}

/*
 * px__backend_start - connect. op OP_MAIL or OP_AUTH: it needs the backend and goes out once it is
 * ready; OP_NONE: proxy_backend_connect = accept, nobody waits (a failure only means MAIL tries again).
 */
void
px__backend_start(struct px_session *s, enum px_op op)
{
	enum px_op was = s->op;
	enum px_wait wait = s->wait;
	int rc;

	s->op = op;
	s->wait = op == OP_NONE ? W_NONE : W_BACKEND;
	rc = px_backend_start(&s->b, op == OP_MAIL || op == OP_AUTH);
	if (rc == 0)
		return;
	if (rc == -ENOMEM) {
		s->op = was;
		s->wait = wait;
		SAY(s, reply_oom);
		px__session_close(s);
		return;
	}
	s->op = OP_NONE;
	s->wait = W_NONE;
	if (op == OP_NONE)
		return;
	px__txn_end(s);
	px__auth_end(s);
	SAY(s, px_reply_backend_down);
}

/* px__backend_request - OP (MAIL, or AUTH's first line) to the backend, connecting it first if need be. */
void
px__backend_request(struct px_session *s, enum px_op op)
{
	if (px_backend_ready(&s->b)) {
		s->op = op;
		send_waiting(s);
	} else if (s->b.state == B_PARKED || px_backend_in_setup(&s->b)) {
		enum px_op was = s->op;
		enum px_wait wait = s->wait;

		s->op = op; /* the leg sends it once ready */
		s->wait = W_BACKEND;
		if (px_backend_resume(&s->b) < 0) {
			s->op = was;
			s->wait = wait;
			SAY(s, reply_oom);
			px__session_close(s);
		}
	} else {
		px__backend_start(s, op);
	}
}

void
px_session_backend_connected(struct px_session *s)
{
	if (px_backend_connected(&s->b) < 0)
		px__session_pump(s);
}

void
px_session_backend_tls_done(struct px_session *s, const struct moat_tls_info *info)
{
	px_backend_tls_done(&s->b, info);
}

/* core_busy - the core session is on the pool or waits for a rate-limit store: a reply now
 * (which may end the transaction in the core) waits until it is done (px__backend_catch_up). */
static bool
core_busy(const struct px_session *s)
{
	return s->b.n > 0 && (s->wait == W_WORK || s->wait == W_RATELIMIT);
}

/* backend_bytes - replies from the leg; between commands it holds no reply buffer (4 KB). */
static void
backend_bytes(struct px_session *s, const char *p, size_t n)
{
	px_backend_input(&s->b, p, n);
	if (s->op == OP_NONE)
		px_backend_idle(&s->b);
}

/* px__backend_catch_up - the core is free again: the replies and the loss that came meanwhile. */
void
px__backend_catch_up(struct px_session *s)
{
	char *p = s->bstash;
	char why[sizeof(s->blost)];

	if (s->wait == W_WORK || s->wait == W_RATELIMIT)
		return;
	s->bstash = NULL;
	if (p != NULL)
		backend_bytes(s, p, s->bstash_len);
	free(p);
	s->bstash_len = 0;
	if (s->blost[0] != '\0') {
		memcpy(why, s->blost, sizeof(why));
		s->blost[0] = '\0';
		px_session_backend_error(s, why);
	}
}

void
px_session_backend_input(struct px_session *s, const char *p, size_t n)
{
	if (core_busy(s)) {
		/* at most every reply due: more is a backend that talks out of turn */
		if (s->bstash_len + n > (size_t)PX_BACKEND_INFLIGHT * PX_REPLY_MAX ||
		    !px__buf_add(&s->bstash, &s->bstash_len, p, n))
			px_session_backend_error(s, "malformed");
		return;
	}
	px__session_cork(s);
	backend_bytes(s, p, n);
	px__session_pump(s);
	px__session_uncork(s);
}

/* lost_reply - what the client hears for command OP, due when the leg was lost (BAD: it sent a
 * malformed reply). */
static void
lost_reply(struct px_session *s, enum px_op op, bool bad)
{
	/*
	 * Lost between commands of a transaction, or at a RCPT: the client still has its MAIL
	 * (RFC 5321 4.1.4), so its next RCPTs and DATA hear 451 4.4.2 (px__rcpt_send, proceed_data) until
	 * it ends the transaction, never a 503 that would turn the loss into a bounce.
	 */
	if (op != OP_RCPT)
		px__txn_end(s);
	else if (s->txn != NULL && s->txn->rcpts_out > 0)
		s->txn->rcpts_out--;
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
		SAY(s, px_reply_backend_bad);
	else
		SAY(s, reply_backend_lost);
}

void
px_session_backend_error(struct px_session *s, const char *why)
{
	enum px_op op = s->op;
	bool bad = strcmp(why, "malformed") == 0;
	unsigned tags[PX_BACKEND_INFLIGHT];
	unsigned nt;

	if (s->b.state == B_NONE)
		return;
	if (core_busy(s)) {
		snprintf(s->blost, sizeof(s->blost), "%s", why); /* px__backend_catch_up */
		return;
	}
	if (s->wait == W_WORK) {
		px_backend_abort(&s->b); /* work_done finds the leg gone and answers 451 */
		return;
	}
	if (!px_backend_ready(&s->b)) {
		px_backend_fail(&s->b, why);
		px__session_pump(s);
		return;
	}
	nt = px_backend_tags(&s->b, tags);
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
	if (op == OP_NONE)
		return;
	s->op = OP_NONE;
	if (s->wait == W_BACKEND || s->wait == W_DRAIN)
		s->wait = W_NONE;
	s->in_reply++;
	if (nt == 0)
		lost_reply(s, op, bad); /* a held message going out, with no reply due yet */
	for (unsigned i = 0; i < nt; i++) {
		lost_reply(s, (enum px_op)tags[i], bad);
		s->bans++;
		px__later_flush(s);
	}
	s->in_reply--;
	s->bans = s->bseq;
	px__later_flush(s);
	px__session_pump(s);
}
