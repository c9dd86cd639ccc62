/*
 * native_conn.c - one MTA connection of the native engine (native.h; native_int.h): it reads what
 * the MTA sent into one buffer, frames and decodes it (packet.c), hands each step to its struct
 * milter_conn (conn.c) and puts the answer, end of message's header edits and quarantine
 * included, into one output buffer written once when the buffered packets are done. A step that
 * pends (DNS, Redis, signing) stops reading and runs on the libuv threadpool; its answer is
 * written when it is done. Macros are kept per stage as the MTA sent them, as libmilter keeps
 * them: a stage's D packet replaces that stage's list, MAIL and abort forget those of the later
 * stages.
 *
 * A connection is freed in the last close callback of its two handles, never while its work
 * item runs (refs counts both).
 */
#include "config.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <uv.h>

#include "conn.h"
#include "log.h"
#include "native_int.h"
#include "packet.h"

#define IN_CHUNK ((size_t)16384)
#define OUT_MAX ((size_t)4 * 1024 * 1024) /* end of message's edits and reply, at most */

/* ---- struct milter_io: the answers go into the connection's output ---- */

/* stage_of - the macro stage of a command letter, or -1 */
static int
stage_of(char cmd)
{
	switch (cmd) {
	case MILTER_C_CONNECT:
		return MILTER_STAGE_CONNECT;
	case MILTER_C_HELO:
		return MILTER_STAGE_HELO;
	case MILTER_C_MAIL:
		return MILTER_STAGE_MAIL;
	case MILTER_C_RCPT:
		return MILTER_STAGE_RCPT;
	case MILTER_C_DATA:
		return MILTER_STAGE_DATA;
	case MILTER_C_EOM:
		return MILTER_STAGE_EOM;
	case MILTER_C_EOH:
		return MILTER_STAGE_EOH;
	default:
		return -1;
	}
}

static const char *
io_macro(void *io, const char *name)
{
	const struct nat_conn *c = io;

	for (int i = 0; i < MILTER_STAGE_COUNT; i++) {
		const char *v;
		if (c->mac[i] != NULL &&
		    (v = milter_macro_find(c->mac[i], c->mac_len[i], name)) != NULL)
			return v;
	}
	return NULL;
}

/* out_room - room for at least n more output bytes; -1 past OUT_MAX or out of memory */
static int
out_room(struct nat_conn *c, size_t n)
{
	size_t cap = c->out_cap ? c->out_cap : 256;
	char *p;

	if (c->out_len + n <= c->out_cap)
		return 0;
	if (n > OUT_MAX - c->out_len)
		return -1;
	while (cap < c->out_len + n)
		cap *= 2;
	if ((p = realloc(c->out, cap)) == NULL)
		return -1;
	c->out = p;
	c->out_cap = cap;
	return 0;
}

static int
io_reply(void *io, const char *code, const char *status, const char *text)
{
	struct nat_conn *c = io;
	int n = snprintf(c->reply, sizeof(c->reply), "%s%s%s%s%s", code, status ? " " : "",
	    status ? status : "", text ? " " : "", text ? text : "");

	if (n < 0 || (size_t)n >= sizeof(c->reply)) {
		c->reply[0] = '\0';
		return -1;
	}
	return 0;
}

static int
io_insheader(void *io, const char *name, const char *value)
{
	struct nat_conn *c = io;

	if (out_room(c, strlen(name) + strlen(value) + 16) < 0)
		return -1;
	return milter_put_header(c->out, &c->out_len, c->out_cap, MILTER_R_INSHEADER, 0, name,
	    value);
}

static int
io_delheader(void *io, const char *name, unsigned index)
{
	struct nat_conn *c = io;

	if (out_room(c, strlen(name) + 16) < 0)
		return -1;
	return milter_put_header(c->out, &c->out_len, c->out_cap, MILTER_R_CHGHEADER, index, name,
	    "");
}

static int
io_quarantine(void *io, const char *reason)
{
	struct nat_conn *c = io;

	if (out_room(c, strlen(reason) + 8) < 0)
		return -1;
	return milter_put_quarantine(c->out, &c->out_len, c->out_cap, reason);
}

static const struct milter_io native_io = {
	.macro = io_macro,
	.reply = io_reply,
	.insheader = io_insheader,
	.delheader = io_delheader,
	.quarantine = io_quarantine,
};

/* ---- connection life ---- */

static void conn_process(struct nat_conn *c);

static void
conn_unref(struct nat_conn *c)
{
	struct nat_worker *w = c->w;

	if (--c->refs > 0)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	milter_conn_free(c->mc);
	for (int i = 0; i < MILTER_STAGE_COUNT; i++)
		free(c->mac[i]);
	free(c->in);
	free(c->out);
	free(c);
	if (w->draining && w->conns == NULL)
		nat__worker_drained(w);
}

static void
on_close(uv_handle_t *h)
{
	conn_unref(h->data);
}

/* nat__conn_close - close both handles; the connection goes with the last reference */
void
nat__conn_close(struct nat_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close(&c->h.handle, on_close);
	uv_close((uv_handle_t *)&c->timer, on_close);
}

static void
on_timeout(uv_timer_t *t)
{
	struct nat_conn *c = t->data;

	moat_log(LOG_WARNING, NULL, "timeout", "%s", "the MTA sent nothing within milter_timeout");
	nat__conn_close(c);
}

/* ---- answers ---- */

/* put_step - a step's answer into the output: nothing for NOREPLY; REJECT and TEMPFAIL with
 * their reply code when one of the right class was set (libmilter's SMFIR_REPLYCODE). */
static int
put_step(struct nat_conn *c, enum milter_step st)
{
	char code = 0;
	int rc = 0;

	switch (st) {
	case MILTER_STEP_CONTINUE:
		code = MILTER_R_CONTINUE;
		break;
	case MILTER_STEP_ACCEPT:
		code = MILTER_R_ACCEPT;
		break;
	case MILTER_STEP_DISCARD:
		code = MILTER_R_DISCARD;
		break;
	case MILTER_STEP_REJECT:
		code = c->reply[0] == '5' ? MILTER_R_REPLYCODE : MILTER_R_REJECT;
		break;
	case MILTER_STEP_TEMPFAIL:
		code = c->reply[0] == '4' ? MILTER_R_REPLYCODE : MILTER_R_TEMPFAIL;
		break;
	case MILTER_STEP_NOREPLY:
	case MILTER_STEP_PENDING:
		break;
	}
	if (code == MILTER_R_REPLYCODE) {
		/* the line io_reply made of the core's checked parts */
		rc = out_room(c, strlen(c->reply) + 6) < 0
		    ? -1
		    : milter_put_replyline(c->out, &c->out_len, c->out_cap, c->reply);
	} else if (code != 0) {
		rc = out_room(c, 5) < 0 ? -1
					: milter_put_simple(c->out, &c->out_len, c->out_cap, code);
	}
	c->reply[0] = '\0';
	return rc;
}

/* macros_keep - a D packet: the stage's list replaced by a copy of this one */
static int
macros_keep(struct nat_conn *c, const struct milter_cmd *m)
{
	int st = stage_of(m->u.macros.stage);
	char *p;

	if (st < 0)
		return 0; /* a stage we never read */
	if ((p = malloc(m->u.macros.len + 1)) == NULL)
		return -1;
	memcpy(p, m->u.macros.pairs, m->u.macros.len);
	free(c->mac[st]);
	c->mac[st] = p;
	c->mac_len[st] = m->u.macros.len;
	return 0;
}

/* macros_forget - the lists of the stages after st (a new MAIL, an abort) */
static void
macros_forget(struct nat_conn *c, int st)
{
	for (int i = st + 1; i < MILTER_STAGE_COUNT; i++) {
		free(c->mac[i]);
		c->mac[i] = NULL;
		c->mac_len[i] = 0;
	}
}

/* do_optneg - the negotiation: what we want of what the MTA offers, and the macros we read */
static int
do_optneg(struct nat_conn *c, const struct milter_cmd *m)
{
	const char *lists[MILTER_STAGE_COUNT];
	unsigned long pf0, pf1;
	uint32_t version = m->u.optneg.version;

	if (version < 2 ||
	    milter_conn_negotiate(c->mc, m->u.optneg.actions, m->u.optneg.protocol, &pf0, &pf1) !=
		MILTER_STEP_CONTINUE)
		return -1;
	for (int i = 0; i < MILTER_STAGE_COUNT; i++)
		lists[i] = (pf0 & MILTER_F_SETSYMLIST) ? milter_conn_macro_list(i) : NULL;
	if (out_room(c, 512) < 0)
		return -1;
	return milter_put_optneg(c->out, &c->out_len, c->out_cap,
	    version < MILTER_PROT_VERSION ? version : MILTER_PROT_VERSION, (uint32_t)pf0,
	    (uint32_t)pf1, lists);
}

/* dispatch - one command: its step's answer (PENDING: the work item goes next), or -1 to close */
static int
dispatch(struct nat_conn *c, const struct milter_cmd *m, enum milter_step *st)
{
	*st = MILTER_STEP_NOREPLY;
	switch (m->cmd) {
	case MILTER_C_OPTNEG:
		return do_optneg(c, m);
	case MILTER_C_MACRO:
		return macros_keep(c, m);
	case MILTER_C_CONNECT:
		*st = milter_conn_connect(c->mc, m->u.connect.host,
		    m->u.connect.family == '4' || m->u.connect.family == '6' ? m->u.connect.addr
									     : NULL,
		    m->u.connect.family == 'L' ? 0 : m->u.connect.port);
		return 0;
	case MILTER_C_HELO:
		*st = milter_conn_helo(c->mc, m->u.helo.name);
		return 0;
	case MILTER_C_MAIL:
		macros_forget(c, MILTER_STAGE_MAIL);
		c->in_msg = true;
		*st = milter_conn_mail(c->mc, m->u.env.argv);
		return 0;
	case MILTER_C_RCPT:
		*st = milter_conn_rcpt(c->mc, m->u.env.argv);
		return 0;
	case MILTER_C_DATA:
		*st = MILTER_STEP_CONTINUE; /* asked not to be sent; an MTA that must, goes on */
		return 0;
	case MILTER_C_HEADER:
		*st = milter_conn_header(c->mc, m->u.header.name, m->u.header.value);
		return 0;
	case MILTER_C_EOH:
		*st = milter_conn_eoh(c->mc);
		return 0;
	case MILTER_C_BODY:
		*st = milter_conn_body(c->mc, m->u.body.p, m->u.body.len);
		return 0;
	case MILTER_C_EOM:
		/* a last chunk sent with end of message is body (libmilter's st_bodyend) */
		if (m->u.body.len > 0)
			(void)milter_conn_body(c->mc, m->u.body.p, m->u.body.len);
		c->in_msg = false; /* once answered (conn_ending waits for the answer) */
		*st = milter_conn_eom(c->mc);
		return 0;
	case MILTER_C_ABORT:
		c->in_msg = false;
		milter_conn_abort(c->mc);
		macros_forget(c, MILTER_STAGE_HELO);
		return 0;
	case MILTER_C_UNKNOWN:
		*st = milter_conn_unknown(c->mc);
		return 0;
	case MILTER_C_QUIT_NC:
		/* a new SMTP session follows on this connection: the next connect starts it */
		c->in_msg = false;
		milter_conn_abort(c->mc);
		macros_forget(c, -1);
		return 0;
	case MILTER_C_QUIT:
	default:
		c->quit = true;
		return 0;
	}
}

/* ---- output ---- */

static void
on_write(uv_write_t *req, int status)
{
	struct nat_conn *c = req->data;

	c->writing = false;
	c->out_len = 0;
	if (status < 0) {
		nat__conn_close(c);
		return;
	}
	conn_process(c);
}

/* flush - the output in one write; the rest of a partial write waits for its callback */
static void
flush(struct nat_conn *c)
{
	uv_buf_t b;
	int n;

	if (c->out_len == 0 || c->writing || c->closing)
		return;
	b = uv_buf_init(c->out, (unsigned)c->out_len);
	n = uv_try_write(&c->h.stream, &b, 1);
	if (n == (int)c->out_len) {
		c->out_len = 0;
		if (c->out_cap > 4096) { /* end of message's edits: not kept for the next one */
			free(c->out);
			c->out = NULL;
			c->out_cap = 0;
		}
		return;
	}
	if (n < 0 && n != UV_EAGAIN) {
		nat__conn_close(c);
		return;
	}
	if (n < 0)
		n = 0;
	memmove(c->out, c->out + n, c->out_len - (size_t)n);
	c->out_len -= (size_t)n;
	b = uv_buf_init(c->out, (unsigned)c->out_len);
	c->wr.data = c;
	c->writing = true;
	if (uv_write(&c->wr, &c->h.stream, &b, 1, on_write) != 0) {
		c->writing = false;
		nat__conn_close(c);
	}
}

/* ---- the threadpool ---- */

static void
on_work(uv_work_t *req)
{
	struct nat_conn *c = req->data;

	milter_conn_work(c->mc);
}

static void
on_work_done(uv_work_t *req, int status)
{
	struct nat_conn *c = req->data;
	enum milter_step st;

	(void)status;
	c->busy = false;
	st = milter_conn_finish(c->mc);
	if (!c->closing && put_step(c, st) < 0)
		nat__conn_close(c);
	if (!c->closing)
		conn_process(c);
	conn_unref(c);
}

/* ---- input ---- */

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct nat_conn *c = h->data;
	size_t want = c->in_len + IN_CHUNK;

	(void)suggested;
	if (c->in_need > want)
		want = c->in_need;
	if (want > c->in_cap) {
		char *p = realloc(c->in, want);
		if (p == NULL) {
			*buf = uv_buf_init(NULL, 0); /* UV_ENOBUFS: the read callback closes */
			return;
		}
		c->in = p;
		c->in_cap = want;
	}
	*buf = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct nat_conn *c = s->data;

	(void)buf;
	if (n < 0) {
		nat__conn_close(c);
		return;
	}
	c->in_len += (size_t)n;
	if (c->quickack && n > 0) {
		uv_os_fd_t fd;
		int one = 1;

		if (uv_fileno(&c->h.handle, &fd) == 0)
			(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	}
	uv_timer_again(&c->timer);
	conn_process(c);
}

/*
 * conn_process - frame, decode and answer the buffered packets until one pends, the output is
 * being written, or none is complete; then write the answers and read on (or not).
 */
/* conn_ending - nothing more is read: the MTA quit, or the worker drains and no message is in
 * progress; the connection closes once its answers are written */
static bool
conn_ending(const struct nat_conn *c)
{
	return c->quit || (c->w->draining && !c->in_msg);
}

static void
conn_process(struct nat_conn *c)
{
	while (!c->busy && !c->writing && !c->closing && !conn_ending(c)) {
		struct milter_cmd m;
		enum milter_step st;
		const char *data;
		size_t len, used;
		char cmd;
		enum milter_pkt_rc rc = milter_pkt_frame(c->in + c->in_off, c->in_len - c->in_off,
		    MILTER_PKT_MAX, &cmd, &data, &len, &used, &c->in_need);

		if (rc == MILTER_PKT_NEED)
			break;
		if (rc == MILTER_PKT_BAD ||
		    milter_cmd_decode(cmd, data, len, &m) != MILTER_PKT_OK) {
			moat_log(LOG_WARNING, NULL, "protocol", "bad packet command=0x%02x len=%zu",
			    (unsigned)(unsigned char)(rc == MILTER_PKT_BAD ? 0 : cmd),
			    rc == MILTER_PKT_BAD ? (size_t)0 : len);
			nat__conn_close(c);
			return;
		}
		c->in_off += used;
		if (dispatch(c, &m, &st) < 0) {
			nat__conn_close(c);
			return;
		}
		if (st == MILTER_STEP_PENDING) {
			c->busy = true;
			c->refs++;
			c->work.data = c;
			if (uv_queue_work(&c->w->loop, &c->work, on_work, on_work_done) != 0) {
				c->busy = false;
				c->refs--;
				nat__conn_close(c);
				return;
			}
			break;
		}
		if (put_step(c, st) < 0) {
			nat__conn_close(c);
			return;
		}
	}
	/* what is left moves to the front (no pointer into it outlives the loop above); an empty
	 * buffer is freed, so a connection waiting for the MTA holds none (as readahead.c's) */
	if (c->in_off > 0) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	if (c->in_len == 0 && !c->busy) {
		free(c->in);
		c->in = NULL;
		c->in_cap = 0;
	}
	flush(c);
	if (c->closing)
		return;
	if (conn_ending(c) && !c->writing && !c->busy) {
		nat__conn_close(c);
		return;
	}
	if (c->busy || c->writing || conn_ending(c)) {
		if (c->reading)
			uv_read_stop(&c->h.stream);
		c->reading = false;
	} else if (!c->reading) {
		if (uv_read_start(&c->h.stream, on_alloc, on_read) != 0)
			nat__conn_close(c);
		c->reading = true;
	}
}

/* ---- opening ---- */

struct nat_conn *
nat__conn_new(struct nat_worker *w)
{
	struct nat_conn *c = calloc(1, sizeof(*c));
	int rc;

	if (c == NULL)
		return NULL;
	c->w = w;
	rc = w->tcp ? uv_tcp_init(&w->loop, &c->h.tcp) : uv_pipe_init(&w->loop, &c->h.pipe, 0);
	if (rc != 0) {
		free(c);
		return NULL;
	}
	c->h.handle.data = c;
	uv_timer_init(&w->loop, &c->timer);
	c->timer.data = c;
	c->refs = 2;
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	return c;
}

void
nat__conn_start(struct nat_conn *c)
{
	if ((c->mc = milter_conn_new(c->w->pol, &native_io, c, true)) == NULL) {
		nat__conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, on_timeout, c->w->timeout_ms, c->w->timeout_ms);
	conn_process(c);
}

void
nat__conn_drain(struct nat_conn *c)
{
	if (!c->closing && !c->busy && !c->writing)
		conn_process(c);
}
