/*
 * smtp_session.c - client-side SMTP for mxmoat-proxy, the core: the input pump, the core's events
 * and their verdicts, work items, the entry points of the driver. The relay of MAIL, RCPT and
 * DATA to the backend passes its replies on verbatim, and the nothing-lost rule holds: the client
 * gets 250 for a message only after the backend said 250 for that message. The backend leg is in
 * backend.c and what the session asks of it in session_backend.c, DATA and holding mode in txn.c,
 * the command table in smtp_cmds.c, AUTH in auth_relay.c (session_int.h).
 *
 * Owns the input buffer, the DATA reader and the backend leg (backend.h) of one session, and the
 * struct moat_session it drives. Each command to the backend is queued with the function its reply
 * goes to; a group the client pipelines goes to a backend that offers PIPELINING in one write
 * (session_backend.c), and the replies come back to the client in the order of its commands.
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
#include "session_int.h"
#include "smtp_session.h"
#include "trust.h"
#include "upstream.h"

static const char reply_line_long[] = "500 5.5.2 Line too long\r\n";
static const char reply_bare_cmd[] =
    "550 5.5.2 Bare <CR> or <LF> in command; transaction dropped\r\n";
static const char reply_nul_cmd[] = "500 5.5.2 NUL byte in command\r\n";
static const char reply_early[] = "554 5.5.1 Protocol error: talking before the greeting\r\n";
static const char reply_timeout_fmt[] = "421 4.4.2 %s Error: timeout exceeded\r\n";

/* later_hdr - a reply in s->later: its bytes follow; it goes out once bans reaches key. */
struct later_hdr {
	unsigned key;
	size_t len;
};

/* px__buf_add - append to a heap buffer; false when out of memory. */
bool
px__buf_add(char **buf, size_t *len, const void *p, size_t n)
{
	char *b = realloc(*buf, *len + n);

	if (b == NULL)
		return false;
	memcpy(b + *len, p, n);
	*buf = b;
	*len += n;
	return true;
}

/* client_out - bytes for the client: held for one write while corked. */
static void
client_out(struct px_session *s, const char *p, size_t n)
{
	if (s->cork == 0 || !px__buf_add(&s->cout, &s->cout_len, p, n)) {
		px__session_flush(s);
		s->ops->client_write(s->io, p, n);
	}
}

/* px__session_flush - the client replies held by the cork, in one write. */
void
px__session_flush(struct px_session *s)
{
	char *p = s->cout;
	size_t n = s->cout_len;

	s->cout = NULL;
	s->cout_len = 0;
	if (n > 0 && !s->gone)
		s->ops->client_write(s->io, p, n);
	free(p);
}

void
px__session_cork(struct px_session *s)
{
	s->cork++;
	px_backend_cork(&s->b);
}

/*
 * replies_due - replies to commands the client has sent will come without more input from it: a
 * work item or a rate-limit store is running, or the backend owes replies to them. RFC 2920 3.1
 * lets a server hold its replies while it has commands of the group to answer, and requires the
 * flush before it waits for the client: then a group's replies leave in one write (the 250 for a
 * message with those of the MAIL, RCPT and DATA pipelined behind its dot). What is held stays
 * under PX_REPLY_MAX.
 */
static bool
replies_due(const struct px_session *s)
{
	unsigned tags[PX_BACKEND_INFLIGHT];
	unsigned nt = px_backend_tags(&s->b, tags);
	bool due = s->wait == W_WORK || s->wait == W_RATELIMIT;

	for (unsigned i = 0; i < nt && !due; i++)
		due = tags[i] != OP_RSET_QUIET; /* the client has its reply to that one */
	return due && s->cout_len <= PX_REPLY_MAX;
}

void
px__session_uncork(struct px_session *s)
{
	px_backend_uncork(&s->b);
	if (s->cork > 0 && --s->cork == 0 && !replies_due(s))
		px__session_flush(s);
}

/* later_take - the first reply in s->later, if all FORCE or its backend replies are out. */
static bool
later_take(struct px_session *s, bool force)
{
	struct later_hdr h;

	if (s->later_len < sizeof(h))
		return false;
	memcpy(&h, s->later, sizeof(h));
	if (!force && h.key > s->bans)
		return false;
	client_out(s, s->later + sizeof(h), h.len);
	s->later_len -= sizeof(h) + h.len;
	memmove(s->later, s->later + sizeof(h) + h.len, s->later_len);
	if (s->later_len == 0) {
		free(s->later);
		s->later = NULL;
	}
	return true;
}

/* px__later_flush - the replies whose backend replies before them are out. */
void
px__later_flush(struct px_session *s)
{
	while (later_take(s, false))
		;
}

/*
 * px__say - queue a reply for the client (nothing once it is gone). RFC 2920 3.1: replies go in
 * the order of the commands, so a reply to a command read while earlier ones were still at the
 * backend waits for theirs (s->later); without memory for that it goes now.
 */
void
px__say(struct px_session *s, const char *p, size_t n)
{
	struct later_hdr h = { .key = s->seq_cmd, .len = n };

	if (s->gone || s->state == S_CLOSED)
		return;
	if (s->in_reply == 0 && s->bans < s->seq_cmd) {
		size_t was = s->later_len;

		if (px__buf_add(&s->later, &s->later_len, &h, sizeof(h)) &&
		    px__buf_add(&s->later, &s->later_len, p, n))
			return;
		s->later_len = was;
	}
	client_out(s, p, n);
}

#define SAY(s, r) px__say((s), (r), sizeof(r) - 1)

/* px__session_state - the one place the client leg's state changes; a change is logged at debug
 * level (log_verbose). */
void
px__session_state(struct px_session *s, enum px_state to)
{
	static const char *const names[] = {
		[S_GREET] = "greet",
		[S_CMD] = "command",
		[S_AUTH] = "auth",
		[S_DATA] = "data",
		[S_BDAT] = "bdat",
		[S_CLOSED] = "closed",
	};

	if (s->state != to)
		moat_log(LOG_DEBUG, moat_session_id(s->ms), "state", "from=%s to=%s",
		    names[s->state], names[to]);
	s->state = to;
}

/* px__say_verdict - a policy verdict as a reply line. */
void
px__say_verdict(struct px_session *s, const struct moat_verdict *v)
{
	char buf[MOAT_REPLY_TEXT_MAX + 32];
	size_t n = moat_verdict_format_reply(v, buf, sizeof(buf));

	if (n == 0)
		n = (size_t)snprintf(buf, sizeof(buf), "451 4.3.0 Policy error\r\n");
	px__say(s, buf, n);
}

/* px__session_close - the client leg ends after what is queued. */
void
px__session_close(struct px_session *s)
{
	if (s->state == S_CLOSED)
		return;
	px_backend_close(&s->b, s->txn == NULL && s->state != S_DATA);
	while (later_take(s, true)) /* the leg is gone: no reply will come before them */
		;
	px__session_flush(s);
	px__session_state(s, S_CLOSED);
	if (!s->gone)
		s->ops->client_close(s->io);
}

/* verdict_close - px__say a limit's verdict; true when it closed the session. */
static bool
verdict_close(struct px_session *s, const struct moat_verdict *v)
{
	if (v->action != MOAT_CONTINUE) {
		px__say_verdict(s, v);
		if (v->close) {
			px__session_close(s);
			return true;
		}
	}
	return false;
}

/* px__count_error - a rejected command: limit_errors / limit_junk_commands may end the session. */
bool
px__count_error(struct px_session *s, bool junk)
{
	struct moat_verdict v;

	moat_session_error(s->ms, junk, &v);
	return verdict_close(s, &v);
}

/* px__count_junk - a command that moves no mail, before it is carried out: true when the session
 * was closed for limit_junk_commands (the 421 replaces the command's answer). */
bool
px__count_junk(struct px_session *s)
{
	struct moat_verdict v;

	moat_session_junk(s->ms, &v);
	return verdict_close(s, &v);
}

/* px__work - run work item W off the loop's stack (ops->work); the items of a message hold its
 * transaction until px_session_work_done. */
void
px__work(struct px_session *s, enum px_work w)
{
	s->work = w;
	s->wait = W_WORK;
	s->work_txn = w == WK_CHUNK || w == WK_EOM || w == WK_READ ? s->txn : NULL;
	s->ops->work(s->io);
}

/* px__session_pump - run what the input buffer holds, until it is empty or we must wait. */
void
px__session_pump(struct px_session *s)
{
	while (s->state != S_CLOSED && s->in_pos < s->in_len) {
		const char *p = s->in + s->in_pos;
		size_t n = s->in_len - s->in_pos;

		if (s->b.n == 0 ? s->wait != W_NONE : !px__backend_ahead(s, p, n))
			break;
		s->seq_cmd = s->bseq;

		if (s->state == S_GREET) {
			SAY(s, reply_early);
			moat_log(LOG_NOTICE, moat_session_id(s->ms), "reject",
			    "reason=early_talker");
			px__session_close(s);
			break;
		}
		if (s->state == S_DATA) {
			bool done;

			assert(s->txn->data !=
			    NULL); /* S_DATA only between px__data_begin and px__data_end */
			s->in_pos += px_data_feed(s->txn->data, p, px__data_feed_max(s, n), &done);
			px__data_settle(s);
			if (done) {
				px_backend_linger(&s->b); /* the last bytes go with the dot */
				px__data_end(s);
			} else if (s->txn->holding && s->txn->chunk_len >= CHUNK_HIGH) {
				px__work(s, WK_CHUNK); /* events and spool writes, in order */
			}
			continue;
		}
		if (s->state == S_BDAT) {
			px__bdat_pump(s, p, n);
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
				if (s->txn != NULL) {
					px_backend_abort(&s->b);
					px__txn_end(s);
				}
			}
			s->skip = SK_NONE;
			px__count_error(s, false);
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
				px__auth_client_line(s, s->in + s->in_pos - used, ll);
			else
				px__session_command(s, p, ll);
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
	if (s->in_len == 0 && s->wait == W_NONE && s->b.n == 0 && s->state != S_DATA &&
	    s->state != S_BDAT && s->skip == SK_NONE) {
		free(s->in);
		free(s->line);
		s->in = s->line = NULL;
		if (s->state == S_CMD && s->txn == NULL && moat_session_spent(s->ms)) {
			/* the last message's reply is out and nothing waits: a client that would reuse
			 * the connection reconnects now instead of deferring on 421 at its next MAIL */
			moat_log(LOG_INFO, moat_session_id(s->ms), "disconnect",
			    "reason=limit_messages_per_session");
			px__session_close(s);
		}
	}
}

/* event_then - go on with what waited for the core's verdict, or refuse it. */
static void
event_then(struct px_session *s, enum px_rlnext next, const struct moat_verdict *v)
{
	if (next == RL_MAIL) { /* relayed or refused (and the transaction undone) there */
		s->v = *v;
		px__mail_done(s);
		return;
	}
	if (next == RL_EOM) {
		s->v = *v;
		px__eom_done(s);
		return;
	}
	if (next == RL_AUTH || next == RL_AUTH_RESULT) {
		px__auth_decided(s, next, v);
		return;
	}
	if (v->action != MOAT_CONTINUE && v->action != MOAT_ACCEPT) {
		if (next != RL_TLS_IMPLICIT) /* before the handshake nothing can be said */
			px__say_verdict(s, v);
		if (v->close || next == RL_TLS_IMPLICIT)
			px__session_close(s);
		return;
	}
	switch (next) {
	case RL_GREET:
		if (s->conf->proxy_backend_connect == MOAT_BCONN_ACCEPT)
			px__backend_start(s,
			    OP_NONE); /* its EHLO reply decides what our EHLO offers */
		if (s->greet_now)
			px_session_greet(s);
		break;
	case RL_TLS_IMPLICIT:
		px__session_flush(s);
		if (s->ops->client_starttls(s->io) < 0)
			px__session_close(s);
		break;
	case RL_STARTTLS:
		px__starttls_begin(s);
		break;
	case RL_RCPT:
		px__rcpt_send(s);
		break;
	case RL_MAIL:
	case RL_EOM:
	case RL_AUTH:
	case RL_AUTH_RESULT:
		break;
	}
}

/*
 * px__core_event - an event of the core returned RC with verdict V. Pending on the rate limits: the
 * plan is charged in the driver's store, and NEXT runs when the store answers
 * (px_session_ratelimit_done). Pending on a work item: it runs on the pool (WK_CORE), and NEXT
 * when it is done. Else NEXT runs now.
 */
void
px__core_event(struct px_session *s, enum moat_event_rc rc, struct moat_verdict *v,
    enum px_rlnext next)
{
	while (rc == MOAT_EVENT_PENDING) {
		struct moat_verdict answer, *store = &answer;

		moat_verdict_continue(&answer);
		if (moat_session_pending(s->ms) == MOAT_WAIT_WORK) {
			s->rl_next = next;
			px__work(s, WK_CORE);
			return;
		}
		if (s->ops->ratelimit == NULL) {
			store =
			    NULL; /* a driver without a store: the core decides as for one down */
		} else if (s->ops->ratelimit(s->io, moat_session_pending_plan(s->ms),
			       moat_session_id(s->ms), &answer) > 0) {
			s->rl_next = next;
			s->wait = W_RATELIMIT;
			return;
		}
		rc = moat_session_resume(s->ms, store, v);
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
	px__session_cork(s);
	rc = moat_session_resume(s->ms, answer, &v);
	px__core_event(s, rc, &v, s->rl_next);
	px__backend_catch_up(s);
	px__session_pump(s);
	px__session_uncork(s);
}

void
px_session_tls_implicit(struct px_session *s)
{
	struct moat_verdict v;
	enum moat_event_rc rc = moat_session_tls_start(s->ms, &v);

	px__core_event(s, rc, &v, RL_TLS_IMPLICIT);
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
	snprintf(s->local_addr, sizeof(s->local_addr), "%s", local_addr);
	s->local_port = local_port;
	s->submission = client->listener != NULL &&
	    moat_trust_list_has(s->conf->proxy_submission_listen, client->listener);
	s->line_cap = s->conf->limit_line_length + 1;
	s->in_cap = s->conf->limit_line_length + INBUF_WINDOW;
	px__backend_bind(s);
	return s;
}

void
px_session_free(struct px_session *s)
{
	if (s == NULL)
		return;
	px__auth_end(s);
	/* before the core session: a held message's bytes are counted there */
	if (s->work_txn != s->txn)
		px__txn_free(s, s->work_txn);
	px__txn_free(s, s->txn);
	moat_session_free(s->ms);
	px_backend_free(&s->b);
	free(s->later);
	free(s->cout);
	free(s->bstash);
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

	px__session_state(s, S_GREET);
	s->greet_now = greet;
	rc = moat_session_connect(s->ms, &v);
	px__core_event(s, rc, &v, RL_GREET);
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
		px__session_pump(s);
		return;
	}
	px__session_state(s, S_CMD);
	n = snprintf(buf, sizeof(buf), "220 %s ESMTP mxmoat\r\n", s->conf->authserv_id);
	if (n > 0 && (size_t)n < sizeof(buf))
		px__say(s, buf, (size_t)n);
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
	px__session_cork(s);
	px__session_pump(s);
	px__session_uncork(s);
}

void
px_session_client_gone(struct px_session *s)
{
	if (s->gone)
		return;
	s->gone = true;
	if (s->txn != NULL || s->op != OP_NONE || s->state == S_DATA)
		px_backend_abort(&s->b); /* no final dot ever went out: nothing is delivered */
	px__txn_end(s);
	px__session_close(s);
}

void
px_session_timeout(struct px_session *s, const char *which)
{
	char buf[128];
	int n = snprintf(buf, sizeof(buf), reply_timeout_fmt, s->conf->authserv_id);

	moat_log(LOG_NOTICE, moat_session_id(s->ms), "timeout", "which=%s", which);
	if (n > 0 && (size_t)n < sizeof(buf))
		px__say(s, buf, (size_t)n);
	if (s->txn != NULL || s->state == S_DATA)
		px_backend_abort(&s->b);
	px__txn_end(s);
	px__session_close(s);
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
		return s->work_txn->holding || moat_session_eom_blocks(s->ms);
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
		px__eom_run(s);
		break;
	case WK_CHUNK:
		px__chunk_run(s);
		break;
	case WK_READ:
		s->work_txn->read_len = moat_hold_read(s->work_txn->hold, s->work_txn->send_off,
		    s->work_txn->chunk, CHUNK_HIGH);
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

	if (s->work_txn != s->txn) /* the transaction ended while the item ran */
		px__txn_free(s, s->work_txn);
	s->work_txn = NULL;
	s->work = WK_NONE;
	s->wait = W_NONE;
	if (s->state == S_CLOSED || s->gone)
		return;
	px__session_cork(s);
	switch (w) {
	case WK_MAIL:
		px__core_event(s, s->core_rc, &s->v, RL_MAIL);
		break;
	case WK_EOM:
		px__core_event(s, s->core_rc, &s->v, RL_EOM);
		break;
	case WK_CORE:
		px__core_event(s, s->core_rc, &s->v, s->rl_next);
		break;
	case WK_CHUNK:
		px__data_settle(s);
		if (s->chunk_ack && s->txn != NULL)
			px__bdat_ack(s);
		break;
	case WK_READ:
		s->wait = W_DRAIN;
		if (!px_backend_ready(&s->b)) { /* the leg went while the file was read */
			px__send_fail(s, "backend-lost");
			break;
		}
		px__send_piece(s, s->txn->read_len);
		px__send_next(s);
		break;
	case WK_NONE:
		break;
	}
	px__backend_catch_up(s);
	px__session_pump(s);
	px__session_uncork(s);
}

enum px_phase
px_session_phase(const struct px_session *s)
{
	switch (s->state) {
	case S_GREET:
		return PX_PHASE_GREET;
	case S_DATA:
	case S_BDAT:
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
	return s->wait == W_BACKEND || s->wait == W_DRAIN || s->b.n > 0;
}
