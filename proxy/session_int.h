/*
 * session_int.h - what the parts of the proxy's client-side session share (proxy/smtp_session.c:
 * the core and its driver entry points; session_backend.c: what it asks of its backend leg; txn.c: DATA and the held
 * message; bdat.c: BDAT chunks; smtp_cmds.c: the command table and its checks; auth_relay.c: AUTH relayed to the
 * backend). Nothing outside those files includes it: the driver sees smtp_session.h only.
 */
#ifndef PX_SESSION_INT_H
#define PX_SESSION_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "data_reader.h"
#include "hdr_edit.h"
#include "hdr_reader.h"
#include "hold.h"
#include "smtp_auth.h"
#include "smtp_parse.h"
#include "smtp_session.h"
#include "backend.h"
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
	S_BDAT, /* reading the octets of a BDAT chunk (bdat.c) */
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
	RL_EOM,
	RL_AUTH, /* an AUTH exchange may start (moat_session_auth_begin) */
	RL_AUTH_RESULT /* the backend's answer to it is decided (moat_session_auth_result) */
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

/*
 * The transaction, made when MAIL goes to the backend (px__txn_begin), ended by a refusal of that
 * MAIL, and freed at the end of its
 * message, RSET, QUIT, a new EHLO, or the loss of either leg (px__txn_end): what the backend
 * accepted, and the message's DATA state. Its buffers exist only while a message is read, held or
 * sent (px__data_begin to px__data_free). A work item on the pool that uses them holds the
 * transaction (work_txn) until it is done: a transaction that ends meanwhile is freed then.
 */
struct px_txn {
	unsigned backend_rcpts; /* RCPTs the backend accepted (the core counts those it passed) */
	unsigned rcpts_out; /* RCPTs sent whose reply is still due (pipelining) */

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
	bool bdat; /* the message comes in BDAT chunks (always held) */
	uint64_t bdat_size; /* octets of the chunks taken so far */
	struct moat_hold *hold;
	int hold_err; /* moat_hold_append's error (pool), logged on the loop */
	char *chunk; /* content for the pool; then a piece being sent */
	size_t chunk_len;
	ssize_t read_len; /* moat_hold_read's answer (pool) */
	uint64_t send_off; /* bytes of the held message sent */
	struct px_edit *edit;
	char *sbuf; /* edited, stuffed bytes of one piece: one backend write */
	size_t slen, scap;
	bool sfull; /* sbuf was too small (a bug): the message is not sent */
};

struct px_session {
	const struct px_ops *ops;
	void *io;
	struct moat_session *ms;
	const struct moat_conf *conf; /* borrowed from ms */
	char local_addr[64];
	unsigned local_port;

	enum px_state state;
	enum px_wait wait;
	enum px_op op; /* what the session waits for from the backend */
	struct px_backend b; /* the backend leg */
	enum px_work work;
	enum px_skip skip; /* discarding a bad command line up to its LF */
	bool gone; /* client gone: answer nothing, finish quietly */
	bool tls_offer; /* STARTTLS may be offered */
	enum px_rlnext rl_next; /* what waits for the core's pending event */
	enum moat_event_rc core_rc; /* a core event's, from its work item to the item's end */
	bool greet_now; /* greet once the connection limits allow it */
	/* AUTH (smtp_auth.c): submission listener, exchange under way */
	bool submission;
	struct px_auth *auth;
	char *auth_refusal; /* the backend's 535, relayed once the core has charged it */
	size_t auth_refusal_len;

	bool utf8_offered; /* our last EHLO reply offered SMTPUTF8 (RFC 6531) */
	bool dsn_offered; /* ... and DSN (RFC 3461) */

	/* BDAT (bdat.c): the chunk being read, its size and octets still due; keep: they go to the
	 * message (else the command was refused and they are read and dropped); ack: its reply waits
	 * for the work item that checks its content */
	uint64_t chunk_size, chunk_left;
	bool chunk_last, chunk_keep, chunk_ack;

	char *line; /* copy of the command being run (NUL-terminated) */
	size_t line_cap;
	char path[PX_PATH_MAX + 1];
	const char *params; /* into line */

	char *in; /* input buffer */
	size_t in_cap, in_len, in_pos;

	struct moat_verdict v; /* result of the last policy event */

	/*
	 * Pipelining towards the backend (RFC 2920, session_backend.c): commands queued (bseq) and
	 * answered (bans) so far; the command being run was read when seq_cmd were queued, so what
	 * the session says for it waits in later until those replies are relayed. in_reply: a reply
	 * of the backend (or its loss) is being relayed. cout: replies held for one client write
	 * while cork is up. bstash, blost: the backend's bytes or loss while the core is busy on the
	 * pool or with a rate-limit store, taken up when it is done.
	 */
	unsigned bseq, bans, seq_cmd, in_reply, cork;
	char *later, *cout, *bstash;
	size_t later_len, cout_len, bstash_len;
	char blost[32];

	struct px_txn *txn; /* the transaction in progress (txn.c); NULL outside one */
	struct px_txn *work_txn; /* the transaction the running work item uses (pool), or NULL */
};

/* replies more than one part of the session gives */
static const char reply_unknown[] = "502 5.5.2 Command not recognized\r\n";
static const char reply_syntax[] = "501 5.5.4 Syntax error in parameters or arguments\r\n";
static const char reply_ok[] = "250 2.0.0 Ok\r\n";
static const char reply_backend_lost[] = "451 4.4.2 Backend connection lost, try again later\r\n";
static const char reply_local[] = "451 4.3.0 Local error in processing, try again later\r\n";
static const char reply_need_mail[] = "503 5.5.1 Need MAIL command\r\n";
static const char reply_no_rcpt[] = "554 5.5.1 No valid recipients\r\n";
static const char reply_oom[] = "421 4.3.0 Out of memory, closing connection\r\n";
static const char reply_tls_in_txn[] = "503 5.5.1 MAIL transaction in progress\r\n";
static const char reply_tls_required[] = "530 5.7.0 Must issue a STARTTLS command first\r\n";

/* smtp_session.c */
void px__session_state(struct px_session *s, enum px_state to);
void px__say(struct px_session *s, const char *p, size_t n);
void px__say_verdict(struct px_session *s, const struct moat_verdict *v);
void px__session_close(struct px_session *s);
void px__session_cork(struct px_session *s);
void px__session_flush(struct px_session *s);
bool px__buf_add(char **buf, size_t *len, const void *p, size_t n);
void px__session_uncork(struct px_session *s);
void px__later_flush(struct px_session *s);
void px__work(struct px_session *s, enum px_work w);
bool px__count_error(struct px_session *s, bool junk);
bool px__count_junk(struct px_session *s);
void px__session_pump(struct px_session *s);
void px__core_event(struct px_session *s, enum moat_event_rc rc, struct moat_verdict *v,
    enum px_rlnext next);
/* session_backend.c */
void px__backend_bind(struct px_session *s);
int px__backend_queue(struct px_session *s, enum px_op op, const char *line, size_t len,
    px_backend_reply_fn done);
int px__backend_command(struct px_session *s, enum px_op op, px_backend_reply_fn done,
    const char *verb, const char *path, const char *params);
void px__backend_start(struct px_session *s, enum px_op op);
bool px__backend_lacks(struct px_session *s, bool rcpt);
void px__backend_request(struct px_session *s, enum px_op op);
bool px__backend_ahead(struct px_session *s, const char *p, size_t n);
void px__backend_catch_up(struct px_session *s);
/* txn.c */
void px__data_reply(struct px_session *s, const struct px_reply *r);
void px__data_settle(struct px_session *s);
void px__chunk_run(struct px_session *s);
size_t px__data_feed_max(const struct px_session *s, size_t n);
int px__data_begin(struct px_session *s);
void px__data_free(struct px_session *s);
int px__txn_begin(struct px_session *s);
void px__txn_end(struct px_session *s);
void px__backend_rset_quiet(struct px_session *s);
/* px__txn_free - T's buffers, held message and itself; NULL is a no-op. */
void px__txn_free(struct px_session *s, struct px_txn *t);
bool px__data_open(struct px_session *s);
void px__data_end(struct px_session *s);
bool px__data_refused(struct px_session *s);
void px__eom_run(struct px_session *s);
void px__send_fail(struct px_session *s, const char *why);
void px__send_piece(struct px_session *s, ssize_t n);
void px__send_next(struct px_session *s);
void px__eom_done(struct px_session *s);
/* smtp_cmds.c */
void px__mail_reply(struct px_session *s, const struct px_reply *r);
void px__ehlo_reply(struct px_session *s);
void px__mail_done(struct px_session *s);
void px__rcpt_send(struct px_session *s);
bool px__data_event(struct px_session *s, bool hold);
void px__starttls_begin(struct px_session *s);
void px__session_command(struct px_session *s, const char *line, size_t len);
/* bdat.c */
int px__bdat_size(struct px_session *s, const char *arg);
int px__check_bdat(struct px_session *s, const char *arg);
void px__proceed_bdat(struct px_session *s, const char *arg);
void px__bdat_read(struct px_session *s);
void px__bdat_pump(struct px_session *s, const char *p, size_t n);
void px__bdat_ack(struct px_session *s);
/* auth_relay.c */
void px__auth_end(struct px_session *s);
void px__auth_send(struct px_session *s);
int px__check_auth(struct px_session *s, const char *arg);
void px__proceed_auth(struct px_session *s, const char *arg);
void px__auth_client_line(struct px_session *s, char *line, size_t len);
void px__auth_decided(struct px_session *s, enum px_rlnext next, const struct moat_verdict *v);

/* px__helo - the client's HELO/EHLO name as the core has it ("" before one). */
static inline const char *
px__helo(const struct px_session *s)
{
	return px_helo_name(s->ms);
}

/* px__tls - the client leg's TLS facts as the core has them (active false: none). */
static inline const struct moat_tls_info *
px__tls(const struct px_session *s)
{
	return moat_session_tls_info(s->ms);
}

/* SAY - queue a constant reply for the client */
#define SAY(s, r) px__say((s), (r), sizeof(r) - 1)

#endif /* PX_SESSION_INT_H */
