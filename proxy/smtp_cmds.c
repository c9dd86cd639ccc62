/*
 * smtp_cmds.c - the session's command table: each command's check (validates and replies itself
 * on refusal) and its proceed (acts: a core event, a backend command, a state change).
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

static const char reply_need_helo[] = "503 5.5.1 Send EHLO or HELO first\r\n";
static const char reply_nested_mail[] = "503 5.5.1 Nested MAIL command\r\n";
static const char reply_data_after_bdat[] = "503 5.5.1 DATA after BDAT\r\n";
static const char reply_path_syntax[] = "501 5.1.3 Bad address syntax\r\n";
static const char reply_path_long[] = "501 5.5.4 Path too long\r\n";
static const char reply_param[] = "555 5.5.4 Unsupported or malformed parameter\r\n";
static const char reply_vrfy[] = "252 2.1.5 Cannot VRFY user, but will accept message\r\n";
static const char reply_help[] = "214 2.0.0 See RFC 5321\r\n";
static const char reply_bye[] = "221 2.0.0 Bye\r\n";
static const char reply_starttls[] = "220 2.0.0 Ready to start TLS\r\n";
static const char reply_tls_active[] = "503 5.5.1 TLS already active\r\n";
static const char reply_tls_pipelined[] = "554 5.5.0 Pipelining after STARTTLS; closing\r\n";
static const char reply_auth_required[] = "530 5.7.0 Authentication required\r\n";

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
/* a chunk of octets follows (BDAT, only with proxy_chunking): its size is read before any check,
 * so the octets of a refused command are dropped, never taken for commands */
#define CF_CHUNK 0x8

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

/* backend_exts - the backend's extensions (PX_EXT_*): its leg's when one is up, else what the
 * driver remembers of the last leg's under this configuration; none when nothing is known. */
static unsigned
backend_exts(const struct px_session *s)
{
	int known;

	if (px_backend_up(&s->b))
		return (s->b.utf8 ? PX_EXT_SMTPUTF8 : 0) | (s->b.dsn ? PX_EXT_DSN : 0);
	known = s->ops->backend_exts != NULL ? s->ops->backend_exts(s->io, s->conf) : -1;
	return known < 0 ? 0 : (unsigned)known;
}

/* px__ehlo_reply - the reply to EHLO/HELO; SMTPUTF8 and DSN only if the backend offers them (we
 * relay their parameters, we do not implement them): the leg now connected, or else the last
 * leg's EHLO reply under this configuration, which the driver remembers. */
void
px__ehlo_reply(struct px_session *s)
{
	char buf[512];
	int n;
	unsigned exts = moat_session_esmtp(s->ms) ? backend_exts(s) : 0;

	s->utf8_offered = (exts & PX_EXT_SMTPUTF8) != 0;
	s->dsn_offered = (exts & PX_EXT_DSN) != 0;
	if (!moat_session_esmtp(s->ms))
		n = snprintf(buf, sizeof(buf), "250 %s\r\n", s->conf->authserv_id);
	else
		n = snprintf(buf, sizeof(buf),
		    "250-%s\r\n250-PIPELINING\r\n250-SIZE %llu\r\n250-8BITMIME\r\n%s%s%s%s%s"
		    "250 ENHANCEDSTATUSCODES\r\n",
		    s->conf->authserv_id, (unsigned long long)s->conf->limit_message_size,
		    s->conf->proxy_chunking ? "250-CHUNKING\r\n" : "",
		    s->tls_offer && !px__tls(s)->active ? "250-STARTTLS\r\n" : "",
		    s->utf8_offered ? "250-SMTPUTF8\r\n" : "", s->dsn_offered ? "250-DSN\r\n" : "",
		    /* RFC 4954 4: AUTH only inside TLS, and not again once authenticated */
		    s->submission && px__tls(s)->active && !moat_session_authenticated(s->ms)
			? PX_AUTH_EHLO
			: "");
	if (n > 0 && (size_t)n < sizeof(buf))
		px__say(s, buf, (size_t)n);
}

static void
helo_common(struct px_session *s, const char *arg, bool esmtp)
{
	const char *old = moat_session_helo_name(s->ms);
	bool renamed = old == NULL || strcmp(old, arg) != 0 || moat_session_esmtp(s->ms) != esmtp;
	struct moat_verdict v;

	if (s->txn != NULL || s->op != OP_NONE) {
		px_backend_abort(&s->b); /* RFC 5321 4.1.4: EHLO resets the transaction */
		px__txn_end(s);
	}
	moat_session_helo(s->ms, arg, esmtp, &v);
	if (v.action != MOAT_CONTINUE && v.action != MOAT_ACCEPT) {
		px__say_verdict(s, &v);
		if (v.close)
			px__session_close(s);
		return;
	}
	/*
	 * A new name on a leg that already passed the old one by XCLIENT: park it, so the next
	 * MAIL sends XCLIENT (and EHLO) again and the backend records the name the client gave now.
	 */
	if (renamed)
		px_backend_repark(&s->b);
	if (esmtp && s->conf->proxy_backend_connect == MOAT_BCONN_ACCEPT) {
		/* the extensions we offer depend on the backend's: wait for its EHLO reply */
		if (s->b.state == B_NONE)
			px__backend_start(s, OP_NONE);
		if (px_backend_in_setup(&s->b)) {
			s->op = OP_EHLO;
			s->wait = W_BACKEND;
			return;
		}
	}
	px__ehlo_reply(s);
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

/*
 * dsn_param - a DSN parameter (RFC 3461 4: RET, ENVID on MAIL; NOTIFY, ORCPT on RCPT) is taken
 * once a command, only when we offered DSN; relayed as given. Returns 1 when TOK is one and well
 * formed (its bit added to *seen), 0 when it is no DSN parameter, -1 when refused (555).
 */
static int
dsn_param(const struct px_session *s, const char *tok, size_t len, bool rcpt, unsigned *seen)
{
	int bit = px_dsn_param(tok, len, rcpt);

	if (bit == 0)
		return 0;
	if (bit < 0 || !s->dsn_offered || (*seen & (unsigned)bit))
		return -1;
	*seen |= (unsigned)bit;
	return 1;
}

/* mail_param - one MAIL parameter other than DSN's: SIZE=n, BODY=7BIT|8BITMIME, SMTPUTF8. */
static bool
mail_param(const struct px_session *s, const char *p, size_t tl)
{
	uint64_t v;

	if (tl > 5 && strncasecmp(p, "SIZE=", 5) == 0)
		return moat_size_value(p + 5, tl - 5, &v) == 0;
	if (tl == 8 && strncasecmp(p, "SMTPUTF8", 8) == 0)
		return s->utf8_offered; /* RFC 6531 3.4: only when advertised; relayed as given */
	return (tl == 9 && strncasecmp(p, "BODY=7BIT", 9) == 0) ||
	    (tl == 13 && strncasecmp(p, "BODY=8BITMIME", 13) == 0);
}

/*
 * cmd_params - the parameters of MAIL (rcpt false) or RCPT: only what we advertise (RFC 1870,
 * 6152, 6531, 3461; RCPT takes DSN's alone). Syntax only: whether SIZE= is over
 * limit_message_size is the core's mail check.
 */
static int
cmd_params(const struct px_session *s, const char *params, bool rcpt)
{
	const char *p = params;
	unsigned seen = 0;

	while (*p != '\0') {
		const char *end = strchr(p, ' ');
		size_t tl = end ? (size_t)(end - p) : strlen(p);
		int dsn = dsn_param(s, p, tl, rcpt, &seen);

		if (dsn < 0 || (dsn == 0 && (rcpt || !mail_param(s, p, tl))))
			return -1;
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

	if (s->txn != NULL) {
		SAY(s, reply_nested_mail);
		return -1;
	}
	if (s->submission && !moat_session_authenticated(s->ms)) {
		SAY(s, reply_auth_required); /* RFC 4954 6 */
		return -1;
	}
	if (parse_path(s, arg, "FROM:", true, &np) < 0)
		return -1;
	if (cmd_params(s, s->params, false) < 0) {
		SAY(s, reply_param);
		return -1;
	}
	return 0;
}

static void
proceed_mail(struct px_session *s, const char *arg)
{
	(void)arg;
	px__work(s, WK_MAIL);
}

/* px__mail_reply - the backend's verdict on MAIL, verbatim; anything but its 2xx ends the
 * transaction that began with it (RCPTs pipelined after it hear the backend's 503). */
void
px__mail_reply(struct px_session *s, const struct px_reply *r)
{
	px__say(s, r->buf, r->len);
	if (r->code / 100 == 2)
		return;
	if (s->txn != NULL)
		px__txn_end(s);
	else
		moat_session_abort(s->ms); /* an RSET of its group ended it already */
}

/* px__mail_done - the core's MAIL verdict is in: relay to the backend or refuse. */
void
px__mail_done(struct px_session *s)
{
	if (s->v.action != MOAT_CONTINUE && s->v.action != MOAT_ACCEPT) {
		px__say_verdict(s, &s->v);
		moat_session_abort(s->ms);
		if (s->v.close)
			px__session_close(s);
		return;
	}
	px__backend_request(s, OP_MAIL);
}

static int
check_rcpt(struct px_session *s, const char *arg)
{
	unsigned np;

	if (s->txn == NULL) {
		SAY(s, reply_need_mail);
		return -1;
	}
	if (parse_path(s, arg, "TO:", false, &np) < 0)
		return -1;
	if (cmd_params(s, s->params, true) < 0) {
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
	if (!px_backend_ready(&s->b)) {
		SAY(s,
		    reply_backend_lost); /* the leg is gone: nothing to check, nothing to charge */
		return;
	}
	rc = moat_session_rcpt(s->ms, s->path, NULL, &v);
	px__core_event(s, rc, &v, RL_RCPT);
}

/* rcpt_reply - the backend's word on a RCPT, verbatim; only its 2xx counts for DATA. */
static void
rcpt_reply(struct px_session *s, const struct px_reply *r)
{
	px__say(s, r->buf, r->len);
	if (s->txn == NULL)
		return;
	if (s->txn->rcpts_out > 0)
		s->txn->rcpts_out--;
	if (r->code / 100 == 2)
		s->txn->backend_rcpts++;
}

/* px__rcpt_send - RCPT passed every check: to the backend. Without it the transaction stays (see
 * px_session_backend_error). */
void
px__rcpt_send(struct px_session *s)
{
	if (!px_backend_ready(&s->b)) {
		SAY(s, reply_backend_lost);
		return;
	}
	if (px__backend_lacks(s, true))
		return;
	if (px__backend_command(s, OP_RCPT, rcpt_reply, "RCPT TO:", s->path, s->params) == 0)
		s->txn->rcpts_out++;
}

static int
check_data(struct px_session *s, const char *arg)
{
	if (*arg != '\0') {
		SAY(s, reply_syntax);
		return -1;
	}
	if (s->txn == NULL) {
		SAY(s, reply_need_mail);
		return -1;
	}
	if (s->txn->bdat) { /* RFC 3030 2: one message, one way */
		SAY(s, reply_data_after_bdat);
		return -1;
	}
	if (s->txn->backend_rcpts == 0 && s->txn->rcpts_out == 0) {
		SAY(s, reply_no_rcpt);
		return -1;
	}
	return 0;
}

/* data_reply - the backend's answer to DATA. Pipelined, DATA left before the RCPT replies were
 * in: a 354 with none of them accepted (a backend that disagrees with its own replies) opens no
 * message; its leg, now in DATA, is dropped. */
static void
data_reply(struct px_session *s, const struct px_reply *r)
{
	if (r->code == 354 && (s->txn == NULL || s->txn->backend_rcpts == 0)) {
		px_backend_abort(&s->b);
		px__txn_end(s);
		SAY(s, reply_no_rcpt);
		return;
	}
	px__data_reply(s, r);
}

/*
 * px__data_event - DATA, or a transaction's first BDAT: the core's DATA event, then the message's
 * reader, held when HOLD or when the core's edits depend on the body. False when refused here
 * (answered, the transaction ended).
 */
bool
px__data_event(struct px_session *s, bool hold)
{
	struct moat_verdict v;

	moat_session_data(s->ms, &v);
	if (v.action != MOAT_CONTINUE && v.action != MOAT_ACCEPT) {
		px__say_verdict(s, &v);
		px__txn_end(s);
		/* pipelined, the replies to its MAIL and RCPTs are still due: the leg stays for them */
		if (s->b.n > 0)
			px__backend_rset_quiet(s);
		else
			px_backend_abort(&s->b);
		if (v.close)
			px__session_close(s);
		return false;
	}
	if (!px_backend_ready(&s->b)) {
		px__txn_end(s);
		SAY(s, reply_backend_lost);
		return false;
	}
	/* holding mode: the backend hears DATA only after the verdict, with the edited message */
	s->txn->holding = hold || moat_session_edits_need_body(s->ms);
	if (px__data_begin(s) < 0) {
		SAY(s, reply_oom);
		px__session_close(s);
		return false;
	}
	return true;
}

static void
proceed_data(struct px_session *s, const char *arg)
{
	(void)arg;
	if (!px__data_event(s, false))
		return;
	if (s->txn->holding)
		px__data_open(s);
	else
		px__backend_command(s, OP_DATA, data_reply, "DATA", NULL, NULL);
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

/* rset_reply - the backend ended its transaction (whatever it said, ours is over). */
static void
rset_reply(struct px_session *s, const struct px_reply *r)
{
	(void)r;
	SAY(s, reply_ok);
}

static void
proceed_rset(struct px_session *s, const char *arg)
{
	(void)arg;
	if (s->txn != NULL && px_backend_ready(&s->b)) {
		px__txn_end(s);
		px__backend_command(s, OP_RSET, rset_reply, "RSET", NULL, NULL);
		return;
	}
	px__txn_end(s);
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
	if (s->txn != NULL) {
		px_backend_abort(&s->b);
		px__txn_end(s);
	}
	px__session_close(s);
}

/* STARTTLS, RFC 3207; the injection defence of CVE-2011-0411 and "NO STARTTLS". */
static int
check_starttls(struct px_session *s, const char *arg)
{
	if (!s->tls_offer || s->ops->client_starttls == NULL) {
		SAY(s, reply_unknown); /* not advertised: not a command here */
		return -1;
	}
	if (px__tls(s)->active) {
		SAY(s, reply_tls_active); /* RFC 3207 4.2: no STARTTLS inside TLS */
		return -1;
	}
	if (arg[0] != '\0') {
		SAY(s, reply_syntax);
		return -1;
	}
	if (s->txn != NULL || s->op != OP_NONE) {
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
			px__session_close(s);
			return;
		}
	}
	{
		struct moat_verdict v;
		enum moat_event_rc rc = moat_session_tls_start(s->ms, &v);

		px__core_event(s, rc, &v, RL_STARTTLS);
	}
}

/* px__starttls_begin - STARTTLS passed the TLS handshake limit: 220, then TLS. */
void
px__starttls_begin(struct px_session *s)
{
	SAY(s, reply_starttls);
	/* RFC 3207 4.2: forget everything learnt before TLS; a new EHLO is required */
	px__txn_end(s);
	moat_session_helo_reset(s->ms);
	s->utf8_offered = false;
	px__session_flush(s); /* the 220 leaves in plaintext, before the handshake */
	if (s->ops->client_starttls(s->io) < 0)
		px__session_close(s);
}

static const struct px_cmd cmd_table[] = {
	{ "AUTH", CF_NEED_HELO, px__check_auth, px__proceed_auth },
	{ "STARTTLS", CF_NEED_HELO, check_starttls, proceed_starttls },
	{ "EHLO", 0, check_helo, proceed_ehlo },
	{ "HELO", 0, check_helo, proceed_helo },
	{ "MAIL", CF_NEED_HELO | CF_NEED_TLS, check_mail, proceed_mail },
	{ "RCPT", CF_NEED_HELO | CF_NEED_TLS, check_rcpt, proceed_rcpt },
	{ "DATA", CF_NEED_HELO | CF_NEED_TLS, check_data, proceed_data },
	{ "BDAT", CF_NEED_HELO | CF_NEED_TLS | CF_CHUNK, px__check_bdat, px__proceed_bdat },
	{ "RSET", CF_JUNK, check_noarg, proceed_rset },
	{ "NOOP", CF_JUNK, check_none, proceed_noop },
	{ "QUIT", 0, check_none, proceed_quit },
	{ "VRFY", CF_JUNK, check_none, proceed_vrfy },
	{ "HELP", CF_JUNK, check_none, proceed_help },
};

/* command_run - the checks of command C, then its proceed. */
static void
command_run(struct px_session *s, const struct px_cmd *c, const char *arg)
{
	if ((c->flags & CF_JUNK) && px__count_junk(s))
		return;
	if ((c->flags & CF_NEED_TLS) && s->conf->proxy_require_tls && !px__tls(s)->active) {
		SAY(s, reply_tls_required);
		px__count_error(s, false);
		return;
	}
	if ((c->flags & CF_NEED_HELO) && moat_session_helo_name(s->ms) == NULL) {
		SAY(s, reply_need_helo);
		px__count_error(s, false);
		return;
	}
	if (c->check(s, arg) < 0) {
		px__count_error(s, false);
		return;
	}
	c->proceed(s, arg);
}

/* px__session_command - one complete command line (without CRLF). */
void
px__session_command(struct px_session *s, const char *line, size_t len)
{
	const struct px_cmd *c = NULL;
	char verb[9];
	const char *arg;

	if (len + 1 > s->line_cap)
		return; /* cannot happen: lines are bounded by the same limit */
	if (s->line == NULL && (s->line = malloc(s->line_cap)) == NULL) {
		SAY(s, reply_oom);
		px__session_close(s);
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
	if (c != NULL && (c->flags & CF_CHUNK) && !s->conf->proxy_chunking)
		c = NULL; /* not offered: not a command here */
	if (c == NULL) {
		SAY(s, reply_unknown);
		px__count_error(s, true);
		return;
	}
	if (!(c->flags & CF_CHUNK)) {
		command_run(s, c, arg);
		return;
	}
	if (px__bdat_size(s, arg) < 0)
		return;
	command_run(s, c, arg);
	px__bdat_read(s);
}
