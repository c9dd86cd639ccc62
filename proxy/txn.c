/*
 * txn.c - one message of the session: DATA read from the client, the core's header, body and
 * end-of-message events, and the two modes: streaming (the message goes to the backend as it
 * arrives, only the final dot waits for the verdict) and holding (the message is kept in hold.c,
 * its events run on the pool, and after an accept DATA and the edited message go to the backend).
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

static const char reply_bare_data[] = "550 5.5.2 Bare <CR> or <LF> in message; message dropped\r\n";
static const char reply_nul_data[] = "550 5.6.0 NUL byte in message; message dropped\r\n";
static const char reply_354[] = "354 3.0.0 End data with <CR><LF>.<CR><LF>\r\n";
static const char reply_pipe_data[] = "554 5.5.0 Improper command pipelining after DATA\r\n";
static const char reply_data_odd[] =
    "451 4.3.0 Backend answered DATA out of protocol, try again later\r\n";

static void send_begin(struct px_session *s);

/* data_fail - remember the first verdict that stops the message (also on the pool). */
static void
data_fail(struct px_txn *t, const struct moat_verdict *v)
{
	if (t->dv.action == MOAT_CONTINUE)
		t->dv = *v;
}

/* px__data_settle - on the loop, after content was read or a chunk ran: a message that failed stops
 * going to the backend (streaming: the leg is dropped without its dot). */
void
px__data_settle(struct px_session *s)
{
	struct px_txn *t = s->txn;
	struct moat_verdict v;

	if (s->txn->hold_err != 0) {
		moat_log(LOG_ERR, moat_session_id(s->ms), "hold", "error=\"%s\" spool_dir=%s",
		    strerror(-s->txn->hold_err), s->conf->proxy_spool_dir);
		if (s->txn->hold_err == -EFBIG) /* the hold is capped at limit_message_size */
			moat_session_too_large(s->ms, MOAT_TOO_LARGE_MESSAGE, &v);
		else
			moat_verdict_set(&v, MOAT_TEMPFAIL, 451, "4.3.0", "hold_failed",
			    "Local error in processing, try again later");
		data_fail(t, &v);
		s->txn->hold_err = 0;
	}
	if (s->txn->holding && !px_backend_ready(&s->b) && s->txn->dv.action == MOAT_CONTINUE) {
		moat_verdict_set(&v, MOAT_TEMPFAIL, 451, "4.4.2", "backend_lost",
		    "Backend connection lost, try again later");
		data_fail(t, &v);
	}
	if ((s->txn->dv.action != MOAT_CONTINUE || s->txn->data->err != PX_DATA_OK) &&
	    !s->txn->data_abort) {
		s->txn->data_abort = true;
		if (!s->txn->holding)
			px_backend_abort(&s->b);
	}
}

/* data_wire - canonical bytes for the backend (streaming mode). */
static void
data_wire(void *arg, const char *p, size_t n)
{
	struct px_session *s = arg;

	if (!s->txn->holding && !s->txn->data_abort && px_backend_ready(&s->b))
		px_backend_send(&s->b, p, n);
}

static void
body_flush(struct px_session *s, struct px_txn *t)
{
	struct moat_verdict v;

	if (t->body_len == 0)
		return;
	moat_session_body(s->ms, t->body, t->body_len, &v);
	t->body_len = 0;
	if (v.action != MOAT_CONTINUE && v.action != MOAT_ACCEPT)
		data_fail(t, &v);
}

static void
body_add(struct px_session *s, struct px_txn *t, const char *p, size_t n)
{
	while (n > 0) {
		size_t k = BODY_STAGE - t->body_len < n ? BODY_STAGE - t->body_len : n;

		memcpy(t->body + t->body_len, p, k);
		t->body_len += k;
		p += k;
		n -= k;
		if (t->body_len == BODY_STAGE)
			body_flush(s, t);
	}
}

/* field_flush - hand a header field to the core. */
static void
field_flush(struct px_session *s, struct px_txn *t, const char *field, size_t len)
{
	struct moat_verdict v;

	moat_session_header(s->ms, field, len, &v);
	if (v.action != MOAT_CONTINUE && v.action != MOAT_ACCEPT)
		data_fail(t, &v);
}

static void
headers_end(struct px_session *s, struct px_txn *t)
{
	struct moat_verdict v;

	t->in_headers = false;
	moat_session_eoh(s->ms, &v);
	if (v.action != MOAT_CONTINUE && v.action != MOAT_ACCEPT)
		data_fail(t, &v);
}

/* header_event - what the header reader found: a field, the end of the section, or a section it
 * refuses (the message is then refused, never relayed unchecked). */
static void
header_event(struct px_session *s, struct px_txn *t, const struct moat_hdr_event *ev)
{
	struct moat_verdict v;

	switch (ev->kind) {
	case MOAT_HDR_FIELD:
		field_flush(s, t, ev->field, ev->len);
		break;
	case MOAT_HDR_END:
		headers_end(s, t);
		break;
	case MOAT_HDR_ERROR:
		moat_hdr_verdict(moat_session_conf(s->ms), ev->status, &v);
		data_fail(t, &v);
		break;
	default:
		break;
	}
}

/* content_events - unstuffed message bytes as header, end-of-header and body events. On the loop
 * in streaming mode (the events only count), on the pool in holding mode (DKIM hashes them). */
static void
content_events(struct px_session *s, struct px_txn *t, const char *p, size_t n)
{
	while (t->in_headers && n > 0 && t->dv.action == MOAT_CONTINUE) {
		struct moat_hdr_event ev;
		size_t used = moat_hdr_feed(t->hr, p, n, &ev);

		p += used;
		n -= used;
		header_event(s, t, &ev);
	}
	if (!t->in_headers && n > 0 && t->dv.action == MOAT_CONTINUE)
		body_add(s, t, p, n);
}

/* content_end - the end of data for the events: the last field, end of header, the last body. */
static void
content_end(struct px_session *s, struct px_txn *t)
{
	while (t->in_headers && t->dv.action == MOAT_CONTINUE) {
		struct moat_hdr_event ev;

		moat_hdr_finish(t->hr, &ev);
		header_event(s, t, &ev);
	}
	if (t->dv.action == MOAT_CONTINUE)
		body_flush(s, t);
}

/* data_content - unstuffed message bytes from the reader: events now, or staged for the pool. */
static void
data_content(void *arg, const char *p, size_t n)
{
	struct px_session *s = arg;
	struct px_txn *t = s->txn;

	if (!t->holding) {
		content_events(s, t, p, n);
		return;
	}
	if (n >
	    CHUNK_CAP - s->txn->chunk_len) { /* cannot happen: px__session_pump feeds what fits */
		struct moat_verdict v;

		moat_verdict_set(&v, MOAT_TEMPFAIL, 451, "4.3.0", "hold_chunk",
		    "Local error in processing");
		data_fail(t, &v);
		return;
	}
	memcpy(s->txn->chunk + s->txn->chunk_len, p, n);
	s->txn->chunk_len += n;
}

/* chunk_run - on the pool: the events over the staged content, then keep it (holding mode). */
static void
chunk_run(struct px_session *s, struct px_txn *t)
{
	content_events(s, t, t->chunk, t->chunk_len);
	if (t->dv.action == MOAT_CONTINUE && t->data->err == PX_DATA_OK) {
		uint64_t before = moat_hold_size(t->hold);

		t->hold_err = moat_hold_append(t->hold, t->chunk, t->chunk_len);
		moat_metrics_hold(moat_session_metrics(s->ms),
		    (int64_t)(moat_hold_size(t->hold) - before));
	}
	t->chunk_len = 0;
}

/* px__chunk_run - the work item of a staged chunk: on the transaction the item holds. */
void
px__chunk_run(struct px_session *s)
{
	chunk_run(s, s->work_txn);
}

/* hold_drop - free the held message; its bytes leave mxmoat_hold_bytes. */
static void
hold_drop(struct px_session *s, struct px_txn *t)
{
	if (t->hold != NULL)
		moat_metrics_hold(moat_session_metrics(s->ms), -(int64_t)moat_hold_size(t->hold));
	moat_hold_free(t->hold);
	t->hold = NULL;
}

/* px__data_feed_max - how much client input may go to the DATA reader now. */
size_t
px__data_feed_max(const struct px_session *s, size_t n)
{
	size_t room;

	if (!s->txn->holding)
		return n;
	room = (CHUNK_CAP - s->txn->chunk_len - 16) / 2;
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
		.helo = px__helo(s),
		.name = moat_session_iprev_name(s->ms) ? moat_session_iprev_name(s->ms)
						       : moat_session_client_name(s->ms),
		.addr = moat_session_client_addr(s->ms),
		.by = s->conf->authserv_id,
		.id = moat_session_id(s->ms),
		.esmtp = moat_session_esmtp(s->ms),
		.tls = px__tls(s),
		.client_cert_requested = s->conf->tls_request_client_cert,
		.when = time(NULL),
	};
	size_t n = px_received_format(buf, sizeof(buf), &r);

	if (n > 0)
		px_backend_send(&s->b, buf, n);
}

/* px__data_begin - the DATA command is accepted: set up the reader (and the hold). */
int
px__data_begin(struct px_session *s)
{
	if (s->txn->data == NULL && (s->txn->data = malloc(sizeof(*s->txn->data))) == NULL)
		return -1;
	if (s->txn->hr == NULL && (s->txn->hr = malloc(sizeof(*s->txn->hr))) == NULL)
		return -1;
	if (s->txn->body == NULL && (s->txn->body = malloc(BODY_STAGE)) == NULL)
		return -1;
	if (s->txn->holding) {
		if (s->txn->chunk == NULL && (s->txn->chunk = malloc(CHUNK_CAP)) == NULL)
			return -1;
		hold_drop(s, s->txn);
		s->txn->hold = moat_hold_new(s->conf->proxy_hold_memory,
		    s->conf->limit_message_size, s->conf->proxy_spool_dir);
		if (s->txn->hold == NULL)
			return -1;
	}
	px_data_init(s->txn->data, s->conf->proxy_bare_newline == MOAT_BARE_NORMALIZE, data_content,
	    data_wire, s);
	moat_verdict_continue(&s->txn->dv);
	s->txn->data_abort = false;
	s->txn->in_headers = true;
	moat_hdr_init(s->txn->hr);
	s->txn->body_len = 0;
	s->txn->chunk_len = 0;
	s->txn->hold_err = 0;
	return 0;
}

/* data_buffers_free - DATA buffers (and a held message) exist only for one message: an idle
 * session stays small. */
static void
data_buffers_free(struct px_session *s, struct px_txn *t)
{
	free(t->data);
	free(t->hr);
	free(t->body);
	free(t->chunk);
	free(t->edit);
	free(t->sbuf);
	hold_drop(s, t);
	t->data = NULL;
	t->hr = NULL;
	t->body = t->chunk = t->sbuf = NULL;
	t->edit = NULL;
	t->slen = t->scap = 0;
}

/* px__data_free - the message's buffers go, the transaction stays (its dot is yet to be answered). */
void
px__data_free(struct px_session *s)
{
	if (s->txn != NULL)
		data_buffers_free(s, s->txn);
}

/* px__txn_begin - MAIL goes to the backend: the transaction starts. 0, or -1: out of memory. */
int
px__txn_begin(struct px_session *s)
{
	if (s->txn == NULL && (s->txn = calloc(1, sizeof(*s->txn))) == NULL)
		return -1;
	return 0;
}

void
px__txn_free(struct px_session *s, struct px_txn *t)
{
	if (t == NULL)
		return;
	data_buffers_free(s, t);
	free(t);
}

/* txn_release - the session is done with the transaction; a work item on the pool may still use
 * its buffers, and then px__work_done frees it. */
static void
txn_release(struct px_session *s)
{
	struct px_txn *t = s->txn;

	s->txn = NULL;
	if (t != s->work_txn)
		px__txn_free(s, t);
}

/* px__txn_end - forget the transaction on our side and in the core. */
void
px__txn_end(struct px_session *s)
{
	/* while a work item runs, the core session belongs to the pool thread */
	if (s->txn != NULL && s->wait != W_WORK)
		moat_session_abort(s->ms);
	txn_release(s);
}

/* px__data_open - 354 for the client; RFC 2920 3.1: DATA ends a group, so bytes already here were
 * sent without waiting for it. false when the session was closed for that. */
bool
px__data_open(struct px_session *s)
{
	if (s->in_pos < s->in_len) {
		SAY(s, reply_pipe_data);
		px_backend_abort(&s->b);
		px__txn_end(s);
		px__data_free(s);
		px__session_close(s);
		return false;
	}
	SAY(s, reply_354);
	px__session_state(s, S_DATA);
	return true;
}

/*
 * data_refusal - the backend answered DATA with something other than 354. A 4xx or 5xx reaches
 * the client as it is. Anything else (a 2xx or another 3xx, which RFC 5321 does not allow there)
 * must not: in holding mode the client has sent its message and reads this reply as the verdict on
 * it, so a backend's 250 to DATA would be a 250 for a message it never received. That is 451, and
 * false: the leg's state is unknown and the caller drops it.
 */
static bool
data_refusal(struct px_session *s, const struct px_reply *r)
{
	if (r->code >= 400) {
		px__say(s, r->buf, r->len);
		return true;
	}
	moat_log(LOG_ERR, moat_session_id(s->ms), "backend", "error=data-reply code=%u", r->code);
	SAY(s, reply_data_odd);
	return false;
}

/* px__data_reply - the backend's answer to DATA (streaming mode): at 354 the client hears ours,
 * and our Received field opens the message. */
void
px__data_reply(struct px_session *s, const struct px_reply *r)
{
	if (r->code != 354) {
		if (!data_refusal(s, r)) {
			px_backend_abort(&s->b);
			px__txn_end(s);
		}
		return;
	}
	if (px__data_open(s))
		data_received(s);
}

/* px__data_end - the client's end of data: the last events and the verdict run on the pool. */
void
px__data_end(struct px_session *s)
{
	px__session_state(s, S_CMD);
	px__work(s, WK_EOM);
}

/* px__eom_run - on the pool: what is left of the content, then the end-of-message verdict. */
void
px__eom_run(struct px_session *s)
{
	struct px_txn *t = s->work_txn;

	if (t->holding)
		chunk_run(s, t);
	content_end(s, t);
	s->core_rc = MOAT_EVENT_DONE;
	if (t->data->err == PX_DATA_OK && t->dv.action == MOAT_CONTINUE) {
		if (t->holding) /* rspamd reads the held message (moat_session_rereads_message) */
			moat_session_set_reader(s->ms, moat_hold_reader, t->hold);
		s->core_rc = moat_session_eom(s->ms, &s->v);
	}
}

/* rset_quiet_reply - RSET after a held message was refused: the leg stays only if it agreed. */
static void
rset_quiet_reply(struct px_session *s, const struct px_reply *r)
{
	if (r->code != 250)
		px_backend_abort(&s->b);
}

/* msg_drop - the message goes nowhere. Streaming: the backend leg is closed without the dot.
 * Holding: the backend never saw DATA; RSET ends its transaction and the leg stays. */
static void
msg_drop(struct px_session *s)
{
	bool rset = s->txn->holding && px_backend_ready(&s->b);

	px__data_free(s);
	px__txn_end(s);
	if (rset)
		px__backend_rset_quiet(s);
	else
		px_backend_abort(&s->b);
}

/* px__backend_rset_quiet - end the backend's transaction with RSET; the client has its reply. */
void
px__backend_rset_quiet(struct px_session *s)
{
	px__backend_command(s, OP_RSET_QUIET, rset_quiet_reply, "RSET", NULL, NULL);
}

/* dot_reply - the backend's word on the message, queue id and all: only now may the client hear
 * 250. */
static void
dot_reply(struct px_session *s, const struct px_reply *r)
{
	char sum[1024];

	px__say(s, r->buf, r->len);
	moat_session_summary(s->ms, &s->v, sum, sizeof(sum));
	moat_log(LOG_INFO, moat_session_id(s->ms),
	    r->code / 100 == 2 ? "relayed" : "backend-refused",
	    "%s backend_code=%u tls=%s backend_tls=%s", sum, r->code,
	    px__tls(s)->active ? px__tls(s)->protocol : "-", s->b.tls ? "yes" : "no");
	txn_release(s);
}

/* hdata_reply - the backend's answer to DATA for the held message: at 354 the edited message goes
 * out; otherwise that is its verdict, and its DATA state is unknown: the leg is dropped. */
static void
hdata_reply(struct px_session *s, const struct px_reply *r)
{
	if (r->code != 354) {
		(void)data_refusal(s, r); /* the leg is dropped either way */
		s->txn->holding = false;
		msg_drop(s);
		return;
	}
	send_begin(s);
}

/* send_emit - edited, stuffed bytes collect in sbuf (sized for one piece, see send_begin). */
static void
send_emit(void *arg, const char *p, size_t n)
{
	struct px_session *s = arg;

	if (n > s->txn->scap - s->txn->slen) {
		s->txn->sfull = true; /* cannot happen: sbuf holds the largest piece */
		return;
	}
	memcpy(s->txn->sbuf + s->txn->slen, p, n);
	s->txn->slen += n;
}

/* px__send_fail - the held message cannot go out: 451 and the backend leg dropped without a dot. */
void
px__send_fail(struct px_session *s, const char *why)
{
	moat_log(LOG_ERR, moat_session_id(s->ms), "hold", "error=%s", why);
	SAY(s, reply_local);
	s->op = OP_NONE;
	s->wait = W_NONE;
	px_backend_abort(&s->b);
	px__txn_end(s);
	px__data_free(s);
}

/* px__send_piece - n bytes read from the hold at send_off: edit, stuff, write. */
void
px__send_piece(struct px_session *s, ssize_t n)
{
	if (n <= 0) {
		px__send_fail(s, n == 0 ? "hold-short" : "hold-read");
		return;
	}
	px_edit_feed(s->txn->edit, s->txn->chunk, (size_t)n);
	s->txn->send_off += (uint64_t)n;
	if (s->txn->sfull) {
		px__send_fail(s, "send-buffer");
		return;
	}
	px_backend_send(&s->b, s->txn->sbuf,
	    s->txn->slen); /* a write error ends the leg: op is no longer OP_SEND */
	s->txn->slen = 0;
}

/* px__send_next - the next piece of the held message, or the final dot when all is out. */
void
px__send_next(struct px_session *s)
{
	while (s->op == OP_SEND && s->txn != NULL) { /* a failed piece ends the transaction */
		if (s->txn->send_off == moat_hold_size(s->txn->hold)) {
			if (px_edit_end(s->txn->edit) < 0 || s->txn->sfull) {
				px__send_fail(s, "edit-end");
				return;
			}
			if (s->txn->slen > 0)
				px_backend_send(&s->b, s->txn->sbuf,
				    s->txn->slen); /* the inserted fields of an empty message */
			if (s->op != OP_SEND)
				return;
			px__data_free(s);
			px__backend_command(s, OP_DOT, dot_reply, ".", NULL, NULL);
			return;
		}
		if (s->ops->backend_queued != NULL && s->ops->backend_queued(s->io) >= SEND_HIGH) {
			s->wait = W_DRAIN; /* px_session_backend_drained resumes */
			return;
		}
		if (moat_hold_spooled(s->txn->hold)) {
			px__work(s, WK_READ); /* the file is read on the pool */
			return;
		}
		px__send_piece(s,
		    moat_hold_read(s->txn->hold, s->txn->send_off, s->txn->chunk, CHUNK_HIGH));
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
	px_backend_expect(&s->b); /* no reply is due until the dot; one that comes ends it */
	s->txn->send_off = 0;
	s->txn->slen = 0;
	s->txn->sfull = false;
	s->txn->scap = 2 * CHUNK_HIGH + MOAT_HDR_FIELD_MAX + 4 + 2 * ins;
	if ((s->txn->edit = malloc(sizeof(*s->txn->edit))) == NULL ||
	    (s->txn->sbuf = malloc(s->txn->scap)) == NULL) {
		px__send_fail(s, "out-of-memory");
		return;
	}
	if (px_edit_begin(s->txn->edit, edits, nedits, send_emit, s) < 0) {
		px__send_fail(s, "edits");
		return;
	}
	moat_log(LOG_INFO, moat_session_id(s->ms), "hold", "size=%llu spooled=%s edits=applied",
	    (unsigned long long)moat_hold_size(s->txn->hold),
	    moat_hold_spooled(s->txn->hold) ? "yes" : "no");
	data_received(s);
	px__send_next(s);
}

void
px_session_backend_drained(struct px_session *s)
{
	if (s->wait != W_DRAIN || s->op != OP_SEND)
		return;
	if (s->ops->backend_queued != NULL && s->ops->backend_queued(s->io) >= SEND_HIGH)
		return;
	px__send_next(s);
	px__session_pump(s);
}

/*
 * px__data_refused - the message read so far (to its end, or to the end of a BDAT chunk) broke the
 * reader's rules or met a refusal in its events: answered, dropped, true. False: it goes on.
 */
bool
px__data_refused(struct px_session *s)
{
	px__data_settle(s);
	if (s->txn->data->err != PX_DATA_OK) {
		moat_log(LOG_NOTICE, moat_session_id(s->ms), "reject", "reason=%s",
		    s->txn->data->err == PX_DATA_NUL ? "nul_in_data" : "bare_newline_in_data");
		if (s->txn->data->err == PX_DATA_NUL)
			SAY(s, reply_nul_data);
		else
			SAY(s, reply_bare_data);
		msg_drop(s);
		return true;
	}
	if (s->txn->dv.action != MOAT_CONTINUE) {
		bool close = s->txn->dv.close;

		moat_log(LOG_NOTICE, moat_session_id(s->ms), "reject", "reason=%s code=%u",
		    s->txn->dv.reason ? s->txn->dv.reason : "-", s->txn->dv.code);
		px__say_verdict(s, &s->txn->dv);
		msg_drop(s); /* the transaction ends */
		if (close)
			px__session_close(s);
		return true;
	}
	return false;
}

/* px__eom_done - the end-of-message verdict is in. */
void
px__eom_done(struct px_session *s)
{
	const struct moat_verdict *v = &s->v;
	size_t nedits;

	if (px__data_refused(s))
		return;
	switch (v->action) {
	case MOAT_CONTINUE:
	case MOAT_ACCEPT:
	case MOAT_QUARANTINE:
		if (!px_backend_ready(&s->b)) {
			SAY(s, reply_backend_lost);
			px__data_free(s);
			px__txn_end(s);
			return;
		}
		if (s->txn->holding) {
			px__backend_command(s, OP_HDATA, hdata_reply, "DATA", NULL, NULL);
			return;
		}
		px__data_free(s);
		/* cannot happen: the core asks for holding whenever it edits (edits_need_body) */
		(void)moat_session_edits(s->ms, &nedits);
		if (nedits > 0)
			moat_log(LOG_WARNING, moat_session_id(s->ms), "edits",
			    "n=%zu dropped=streaming-mode", nedits);
		px__backend_command(s, OP_DOT, dot_reply, ".", NULL, NULL);
		return;
	case MOAT_DISCARD:
		SAY(s, "250 2.0.0 Ok: discarded by policy\r\n");
		break;
	default:
		px__say_verdict(s, v);
		break;
	}
	moat_log(LOG_NOTICE, moat_session_id(s->ms), moat_action_name(v->action), "reason=%s",
	    v->reason ? v->reason : "-");
	msg_drop(s);
	if (v->close)
		px__session_close(s);
}
