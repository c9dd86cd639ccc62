/*
 * conn.c - an MTA connection of mxmoat-milter, for both engines (see conn.h).
 *
 * Each step turns one MTA event into one core event (policy.h) and the core's verdict into a
 * milter answer: a step (CONTINUE, REJECT, ...) plus the SMTP reply (io->reply), quarantine, and
 * at end of message the core's header edits (io->insheader at the top, io->delheader last index
 * first; see edits.c). No policy is decided here.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "conn.h"
#include "edits.h"
#include "hold.h"
#include "log.h"
#include "macros.h"
#include "packet.h"
#include "ratelimit.h"

#define HDR_FIELD_MAX ((size_t)1024 * 1024) /* a header field larger than a milter packet: refuse */
#define EDITS_MAX 128

/* The step that pended, to finish once its work is done. */
enum conn_pend {
	PEND_NONE,
	PEND_CONNECT,
	PEND_MAIL,
	PEND_RCPT,
	PEND_EOM, /* end of message itself runs off the loop */
};

struct milter_conn {
	struct moat_policy *pol; /* borrowed */
	const struct milter_io *ops; /* borrowed */
	void *io;
	bool on_loop;
	struct moat_session *s;
	struct moat_verdict refused; /* connect verdict when the core refused the session */
	bool leadspc; /* SMFIP_HDR_LEADSPC negotiated: values keep their space */
	unsigned long nr; /* SMFIP_NR_* negotiated: those stages must not answer */
	bool tls_seen;
	bool auth_seen;
	char *field; /* scratch for "Name: value", grown up to HDR_FIELD_MAX */
	size_t field_cap;
	struct moat_hold *copy; /* the message for rspamd (moat_session_rereads_message), or NULL */
	bool copy_failed; /* this message's copy could not be kept: rspamd counts it a failure */
	enum conn_pend pend;
	bool eom_started; /* PEND_EOM: moat_session_eom has run */
	enum moat_event_rc pend_rc;
	struct moat_verdict pend_v;
};

/* Per stage, the macros we read there (SMFIF_SETSYMLIST). */
static const char *const macro_lists[MILTER_STAGE_COUNT] = {
	[MILTER_STAGE_CONNECT] =
	    "j {daemon_name} {daemon_addr} {client_addr} {client_port} {client_name}",
	[MILTER_STAGE_HELO] = "{tls_version} {cipher} {cipher_bits}",
	[MILTER_STAGE_MAIL] = "i {auth_authen} {tls_version} {cipher} {cipher_bits}",
	[MILTER_STAGE_EOM] = "i {msg_size}",
};

const char *
milter_conn_macro_list(int stage)
{
	return stage >= 0 && stage < MILTER_STAGE_COUNT ? macro_lists[stage] : NULL;
}

/* conn_macro - the value of one macro fact (macros.h), or NULL */
static const char *
conn_macro(const struct milter_conn *c, enum milter_macro m)
{
	return milter_macro_get(c->ops->macro, c->io, m);
}

static long long
conn_macro_uint(const struct milter_conn *c, enum milter_macro m, unsigned long long max)
{
	return milter_macro_uint(c->ops->macro, c->io, m, max);
}

/* conn_log_id - our session id for log lines, or NULL. */
static const char *
conn_log_id(const struct milter_conn *c)
{
	return c != NULL && c->s != NULL ? moat_session_id(c->s) : NULL;
}

/* conn_copy_drop - the message's copy is done with (end of message, abort, a new MAIL). */
static void
conn_copy_drop(struct milter_conn *c)
{
	moat_hold_free(c->copy);
	c->copy = NULL;
	c->copy_failed = false;
}

/*
 * conn_copy - keep N message bytes for rspamd, which the core asks at end of message with the
 * message read back from here. The copy is made with the first bytes of a message that needs it;
 * one that cannot be kept is dropped and logged (past limit_message_size the core refuses the
 * message itself), and rspamd then counts as failed for the message.
 */
static void
conn_copy(struct milter_conn *c, const char *p, size_t n)
{
	const struct moat_conf *conf = moat_session_conf(c->s);
	int rc;

	if (c->copy_failed || !moat_session_rereads_message(c->s))
		return;
	if (c->copy == NULL &&
	    (c->copy = moat_hold_new((size_t)conf->milter_hold_memory, conf->limit_message_size,
		 conf->milter_spool_dir)) == NULL)
		rc = -ENOMEM;
	else
		rc = moat_hold_append(c->copy, p, n);
	if (rc < 0) {
		if (rc != -EFBIG)
			moat_log(LOG_ERR, moat_session_id(c->s), "hold",
			    "error=\"%s\" spool_dir=%s", strerror(-rc), conf->milter_spool_dir);
		conn_copy_drop(c);
		c->copy_failed = true;
	}
}


/*
 * conn_answer - a core verdict as a milter answer. Codes the milter protocol cannot carry
 * (not 4xx with tempfail, not 5xx with reject) fall back to the MTA's own reply for the action.
 */
static enum milter_step
conn_answer(const struct milter_conn *c, const struct moat_verdict *v, const char *stage)
{
	char code[4];
	char text[MOAT_REPLY_TEXT_MAX + 1];

	switch (v->action) {
	case MOAT_CONTINUE:
		return MILTER_STEP_CONTINUE;
	case MOAT_ACCEPT:
		return MILTER_STEP_ACCEPT;
	case MOAT_QUARANTINE:
		/* Only end of message can hold a message; earlier stages carry on (eom repeats it). */
		return MILTER_STEP_CONTINUE;
	case MOAT_DISCARD:
		moat_log(LOG_INFO, conn_log_id(c), "discard", "stage=%s reason=%s", stage,
		    v->reason ? v->reason : "-");
		return MILTER_STEP_DISCARD;
	case MOAT_TEMPFAIL:
	case MOAT_REJECT:
		break;
	}
	moat_log(LOG_INFO, conn_log_id(c), v->action == MOAT_REJECT ? "reject" : "tempfail",
	    "stage=%s code=%u status=%s reason=%s", stage, v->code, v->status[0] ? v->status : "-",
	    v->reason ? v->reason : "-");
	if ((v->action == MOAT_REJECT && v->code >= 500 && v->code <= 599) ||
	    (v->action == MOAT_TEMPFAIL && v->code >= 400 && v->code <= 499)) {
		/* Sendmail passes the text through a format: double any '%'. */
		size_t j = 0;
		for (size_t i = 0; v->text[i] != '\0' && j + 2 < sizeof(text); i++) {
			char ch = v->text[i];
			if (ch == '\r' || ch == '\n')
				ch = ' ';
			if (ch == '%')
				text[j++] = '%';
			text[j++] = ch;
		}
		text[j] = '\0';
		snprintf(code, sizeof(code), "%u", v->code);
		if (c->ops->reply(c->io, code, v->status[0] ? v->status : NULL,
			text[0] ? text : NULL) < 0)
			moat_log(LOG_WARNING, conn_log_id(c), "reply", "reply refused code=%s",
			    code);
	}
	return v->action == MOAT_REJECT ? MILTER_STEP_REJECT : MILTER_STEP_TEMPFAIL;
}

/* conn_oom - the answer when we cannot allocate: try again later, never lose mail. */
static enum milter_step
conn_oom(const struct milter_conn *c, const char *stage)
{
	struct moat_verdict v;

	moat_verdict_set(&v, MOAT_TEMPFAIL, 451, "4.3.0", "out_of_memory",
	    "Local error, try again later");
	return conn_answer(c, &v, stage);
}

struct milter_conn *
milter_conn_new(struct moat_policy *pol, const struct milter_io *ops, void *io, bool on_loop)
{
	struct milter_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->pol = pol;
	c->ops = ops;
	c->io = io;
	c->on_loop = on_loop;
	return c;
}

void
milter_conn_free(struct milter_conn *c)
{
	if (c == NULL)
		return;
	if (c->s != NULL)
		moat_log(LOG_DEBUG, moat_session_id(c->s), "close", "%s", "");
	moat_session_free(c->s);
	moat_hold_free(c->copy);
	free(c->field);
	free(c);
}

enum milter_step
milter_conn_negotiate(struct milter_conn *c, unsigned long f0, unsigned long f1, unsigned long *pf0,
    unsigned long *pf1)
{
	unsigned long want_actions = MILTER_F_ADDHDRS | MILTER_F_CHGHDRS | MILTER_F_QUARANTINE;
	/* Stages whose verdicts the core makes sticky and repeats later need no reply of their own:
	 * header limits and size at end of message, a HELO refusal at MAIL (as Postfix itself
	 * defers a HELO reject). One round trip saved per HELO, header line and body chunk. */
	unsigned long want_nr =
	    MILTER_P_NR_HELO | MILTER_P_NR_HDR | MILTER_P_NR_EOH | MILTER_P_NR_BODY;
	/* Not sent at all: DATA (the core has nothing to decide there; the MTA only sends it after
	 * an accepted RCPT); an MTA that cannot skip the step sends it and gets CONTINUE. Unknown
	 * commands are sent: they count towards limit_errors and limit_junk_commands
	 * (milter_conn_unknown). The other steps are needed in every configuration: the session
	 * limits, which cannot be switched off, answer at connect, MAIL and RCPT and count header
	 * fields and body bytes. */
	unsigned long proto = f1 & MILTER_P_NODATA;

	if ((f0 & want_actions) != want_actions) {
		moat_log(LOG_ERR, NULL, "negotiate",
		    "MTA does not offer the actions we need (0x%lx)", f0);
		return MILTER_STEP_REJECT;
	}
	*pf0 = want_actions | (f0 & MILTER_F_SETSYMLIST);
	/* libmilter offers every SMFIP_NR_* (it answers for an MTA that lacks one). */
	c->nr = f1 & want_nr;
	proto |= c->nr;
	c->leadspc = (f1 & MILTER_P_HDR_LEADSPC) != 0;
	if (c->leadspc)
		proto |= MILTER_P_HDR_LEADSPC;
	*pf1 = proto;
	moat_log(LOG_DEBUG, NULL, "negotiate", "mta_protocol=0x%lx protocol=0x%lx actions=0x%lx",
	    f1, proto, *pf0);
	return MILTER_STEP_CONTINUE;
}

/* conn_done - the step that ran core event RC with verdict V: its answer now, or PENDING (the
 * step is finished by milter_conn_finish). */
static enum milter_step conn_done(struct milter_conn *c, enum conn_pend step, enum moat_event_rc rc,
    const struct moat_verdict *v);

enum milter_step
milter_conn_connect(struct milter_conn *c, const char *hostname, const char *addr, unsigned port)
{
	struct moat_client client = { 0 };
	struct moat_verdict v;
	char ename[300], elistener[100];
	const char *name = hostname;
	long long p;

	if (addr == NULL || addr[0] == '\0')
		addr = conn_macro(c, MILTER_M_CLIENT_ADDR);
	if (port == 0 && (p = conn_macro_uint(c, MILTER_M_CLIENT_PORT, 65535)) >= 0)
		port = (unsigned)p;
	/* Postfix and Sendmail pass "[addr]" (or "unknown") when the name did not verify. */
	if (name == NULL || name[0] == '[' || strcmp(name, "unknown") == 0)
		name = NULL;
	client.addr = addr != NULL && addr[0] ? addr : NULL;
	client.port = port;
	client.name = name;
	client.listener = conn_macro(c, MILTER_M_DAEMON_NAME);
	/* a connect after QUIT_NC on the same connection: a new SMTP session, nothing kept */
	moat_session_free(c->s);
	conn_copy_drop(c);
	moat_verdict_continue(&c->refused);
	c->tls_seen = c->auth_seen = false;
	c->s = moat_session_new(c->pol, &client);
	if (c->s == NULL)
		return conn_oom(c, "connect");
	moat_log(LOG_INFO, moat_session_id(c->s), "connect", "client=%s[%s]:%u listener=%s",
	    moat_log_escape(name ? name : "unknown", strlen(name ? name : "unknown"), ename,
		sizeof(ename)),
	    client.addr ? client.addr : "unknown", client.port,
	    client.listener ? moat_log_escape(client.listener, strlen(client.listener), elistener,
				  sizeof(elistener))
			    : "-");
	return conn_done(c, PEND_CONNECT, moat_session_connect(c->s, &v), &v);
}

/*
 * helo_answer - the HELO verdict, or no reply under SMFIP_NR_HELO: then a refusal is kept and
 * given at MAIL (milter_conn_mail answers c->refused first), which is when Postfix would apply it.
 */
static enum milter_step
helo_answer(struct milter_conn *c, const struct moat_verdict *v)
{
	if (!(c->nr & MILTER_P_NR_HELO))
		return conn_answer(c, v, "helo");
	if (v->action != MOAT_CONTINUE)
		c->refused = *v;
	return MILTER_STEP_NOREPLY;
}

/*
 * no_session - a step without a session (out of memory at connect, or an MTA that skipped
 * connect): tempfail, or no reply at all where SMFIP_NR_* was negotiated for it (a reply there
 * would desynchronise the MTA).
 */
static enum milter_step
no_session(const struct milter_conn *c, unsigned long nr_flag)
{
	return (c->nr & nr_flag) ? MILTER_STEP_NOREPLY : MILTER_STEP_TEMPFAIL;
}

enum milter_step
milter_conn_helo(struct milter_conn *c, const char *helo)
{
	struct moat_verdict v;
	const char *ver;

	if (c->s == NULL)
		return no_session(c, MILTER_P_NR_HELO);
	if (c->refused.action != MOAT_CONTINUE)
		return helo_answer(c, &c->refused);
	/* Postfix sends the TLS macros with HELO (milter_helo_macros); a new HELO after STARTTLS
	 * brings them for the first time. */
	if (!c->tls_seen && (ver = conn_macro(c, MILTER_M_TLS_VERSION)) != NULL) {
		struct moat_tls_info tls = { .active = true };
		const char *cipher = conn_macro(c, MILTER_M_CIPHER);
		long long bits = conn_macro_uint(c, MILTER_M_CIPHER_BITS, 65536);
		snprintf(tls.protocol, sizeof(tls.protocol), "%s", ver);
		snprintf(tls.cipher, sizeof(tls.cipher), "%s", cipher ? cipher : "");
		tls.bits = bits > 0 ? (unsigned)bits : 0;
		moat_session_tls(c->s, &tls);
		c->tls_seen = true;
	}
	moat_session_helo(c->s, helo ? helo : "", true, &v);
	return helo_answer(c, &v);
}

/* envelope_path - "<a@b>" as sent, without the angle brackets, into out. -1 if too long. */
static int
envelope_path(const char *arg, char *out, size_t len)
{
	size_t n;

	if (arg == NULL)
		arg = "";
	n = strlen(arg);
	if (n >= 2 && arg[0] == '<' && arg[n - 1] == '>') {
		arg++;
		n -= 2;
	}
	if (n >= len)
		return -1;
	memcpy(out, arg, n);
	out[n] = '\0';
	return 0;
}

/* envelope_params - ESMTP parameters (argv[1..]) joined with spaces into out, or NULL if none. */
static const char *
envelope_params(const char *const *argv, char *out, size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 1; argv[i] != NULL; i++) {
		size_t n = strlen(argv[i]);
		if (used + n + 2 > len)
			break; /* the core only reads SIZE=; a param list this long is not ours to keep */
		if (used > 0)
			out[used++] = ' ';
		memcpy(out + used, argv[i], n);
		used += n;
		out[used] = '\0';
	}
	return used > 0 ? out : NULL;
}


enum milter_step
milter_conn_mail(struct milter_conn *c, const char *const *argv)
{
	struct moat_verdict v;
	char path[1024], params[1024];
	const char *login;

	if (c->s == NULL)
		return MILTER_STEP_TEMPFAIL;
	if (c->refused.action != MOAT_CONTINUE)
		return conn_answer(c, &c->refused, "mail");
	if (!c->auth_seen && (login = conn_macro(c, MILTER_M_AUTH_AUTHEN)) != NULL) {
		moat_session_auth(c->s, login);
		c->auth_seen = true;
	}
	if (envelope_path(argv[0], path, sizeof(path)) < 0) {
		moat_verdict_set(&v, MOAT_REJECT, 501, "5.1.7", "bad_sender",
		    "Sender address too long");
		return conn_answer(c, &v, "mail");
	}
	conn_copy_drop(c);
	return conn_done(c, PEND_MAIL,
	    moat_session_mail(c->s, path, envelope_params(argv, params, sizeof(params)), &v), &v);
}

enum milter_step
milter_conn_rcpt(struct milter_conn *c, const char *const *argv)
{
	struct moat_verdict v;
	char path[1024], params[1024];

	if (c->s == NULL)
		return MILTER_STEP_TEMPFAIL;
	if (envelope_path(argv[0], path, sizeof(path)) < 0) {
		moat_verdict_set(&v, MOAT_REJECT, 501, "5.1.3", "bad_recipient",
		    "Recipient address too long");
		return conn_answer(c, &v, "rcpt");
	}
	return conn_done(c, PEND_RCPT,
	    moat_session_rcpt(c->s, path, envelope_params(argv, params, sizeof(params)), &v), &v);
}

/* conn_field - "Name:" + value (+ a space unless the MTA kept the value's own) in c->field. */
static const char *
conn_field(struct milter_conn *c, const char *name, const char *value, size_t *len)
{
	size_t nl = strlen(name), vl = strlen(value), need;
	const char *p = value, *end = value + vl, *lf;

	/* name, ':', ' ', the value, a CR before each of its LFs at most, the NUL */
	need = nl + 2 + vl + 1;
	for (lf = value; (lf = memchr(lf, '\n', (size_t)(end - lf))) != NULL; lf++)
		need++;
	if (need > HDR_FIELD_MAX)
		return NULL;
	if (need > c->field_cap) {
		size_t cap = c->field_cap ? c->field_cap : 1024;
		char *np;
		while (cap < need)
			cap *= 2;
		if ((np = realloc(c->field, cap)) == NULL)
			return NULL;
		c->field = np;
		c->field_cap = cap;
	}
	memcpy(c->field, name, nl);
	c->field[nl] = ':';
	*len = nl + 1;
	if (!c->leadspc)
		c->field[(*len)++] = ' ';
	/* libmilter hands folded values with bare LF; the core sees the field as relayed: CRLF.
	 * Copied a line at a time, with a CR added before each bare LF. */
	while ((lf = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		size_t n = (size_t)(lf - p);
		bool bare = lf == value || lf[-1] != '\r';
		memcpy(c->field + *len, p, n);
		*len += n;
		if (bare)
			c->field[(*len)++] = '\r';
		c->field[(*len)++] = '\n';
		p = lf + 1;
	}
	memcpy(c->field + *len, p, (size_t)(end - p));
	*len += (size_t)(end - p);
	c->field[*len] = '\0';
	return c->field;
}


/*
 * stream_answer - header, end of header and body never answer with a verdict: the core keeps a
 * verdict reached while the message streams and repeats it at end of message, so every stage of
 * the stream goes on, with no reply at all where SMFIP_NR_* was negotiated (a reply there would
 * desynchronise the MTA).
 */
static enum milter_step
stream_answer(const struct milter_conn *c, unsigned long nr_flag)
{
	return (c->nr & nr_flag) ? MILTER_STEP_NOREPLY : MILTER_STEP_CONTINUE;
}

enum milter_step
milter_conn_header(struct milter_conn *c, const char *name, const char *value)
{
	struct moat_verdict v;
	const char *field;
	size_t len;

	if (c->s == NULL)
		return no_session(c, MILTER_P_NR_HDR);
	if ((field = conn_field(c, name ? name : "", value ? value : "", &len)) == NULL) {
		/* sticky: given at end of message, as every refusal while the message streams */
		moat_session_too_large(c->s, MOAT_TOO_LARGE_HEADER, &v);
		return stream_answer(c, MILTER_P_NR_HDR);
	}
	moat_session_header(c->s, field, len, &v);
	conn_copy(c, field, len);
	conn_copy(c, "\r\n", 2);
	return stream_answer(c, MILTER_P_NR_HDR);
}

enum milter_step
milter_conn_eoh(struct milter_conn *c)
{
	struct moat_verdict v;

	if (c->s == NULL)
		return no_session(c, MILTER_P_NR_EOH);
	moat_session_eoh(c->s, &v);
	conn_copy(c, "\r\n", 2);
	return stream_answer(c, MILTER_P_NR_EOH);
}

enum milter_step
milter_conn_body(struct milter_conn *c, const char *chunk, size_t len)
{
	struct moat_verdict v;

	if (c->s == NULL)
		return no_session(c, MILTER_P_NR_BODY);
	moat_session_body(c->s, chunk, len, &v);
	conn_copy(c, chunk, len);
	return stream_answer(c, MILTER_P_NR_BODY);
}

/* value_for_mta - an edit's value as the MTA wants it: LF line ends, leading space unless the
 * MTA takes the value verbatim (SMFIP_HDR_LEADSPC). Caller frees. */
static char *
value_for_mta(const struct milter_conn *c, const char *value)
{
	size_t vl = strlen(value);
	char *out = malloc(vl + 2), *p = out;

	if (out == NULL)
		return NULL;
	if (c->leadspc)
		*p++ = ' ';
	for (size_t i = 0; i < vl; i++)
		if (!(value[i] == '\r' && value[i + 1] == '\n'))
			*p++ = value[i];
	*p = '\0';
	return out;
}


/* apply_edits - the core's header edits, in the order edits.c decides. */
static int
apply_edits(struct milter_conn *c)
{
	size_t n, order[EDITS_MAX];
	const struct moat_hdr_edit *e = moat_session_edits(c->s, &n);

	if (n == 0)
		return 0;
	if (milter_edits_order(e, n, order, EDITS_MAX) < 0)
		return -1;
	for (size_t k = 0; k < n; k++) {
		const struct moat_hdr_edit *ed = &e[order[k]];
		int rc;
		if (ed->op == MOAT_HDR_DELETE) {
			rc = c->ops->delheader(c->io, ed->name, ed->index);
		} else {
			char *val = value_for_mta(c, ed->value ? ed->value : "");
			if (val == NULL)
				return -1;
			rc = c->ops->insheader(c->io, ed->name, val);
			free(val);
		}
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* eom_answer - end of message's verdict V: edits, quarantine, the log line, the answer. */
static enum milter_step
eom_answer(struct milter_conn *c, struct moat_verdict *v)
{
	char summary[1024];
	const char *qid = conn_macro(c, MILTER_M_QUEUE_ID);
	enum milter_step rc;

	conn_copy_drop(c);
	if (v->action == MOAT_CONTINUE || v->action == MOAT_ACCEPT ||
	    v->action == MOAT_QUARANTINE) {
		if (apply_edits(c) < 0) {
			moat_log(LOG_ERR, moat_session_id(c->s), "edit",
			    "header edit failed; tempfail");
			moat_verdict_set(v, MOAT_TEMPFAIL, 451, "4.3.0", "header_edit_failed",
			    "Local error, try again later");
		}
	}
	if (v->action == MOAT_QUARANTINE &&
	    c->ops->quarantine(c->io, v->text[0] ? v->text : "held by mxmoat") < 0)
		moat_verdict_set(v, MOAT_TEMPFAIL, 451, "4.3.0", "quarantine_failed",
		    "Local error, try again later");
	moat_session_summary(c->s, v, summary, sizeof(summary));
	/* {msg_size} is the MTA's own count; logged next to ours (size=) to spot a mismatch. */
	moat_log(LOG_INFO, moat_session_id(c->s), "message", "queue_id=%s mta_size=%lld %s",
	    qid ? qid : "-", conn_macro_uint(c, MILTER_M_MSG_SIZE, UINT64_MAX / 2), summary);
	rc = conn_answer(c, v, "eom");
	/* Verdict, edits and summary are used: the message's state goes now, not at the next MAIL,
	 * so a connection the MTA keeps open between messages holds none of it (Postfix sends no
	 * abort after a message it accepted). */
	moat_session_abort(c->s);
	return rc == MILTER_STEP_ACCEPT ? MILTER_STEP_CONTINUE : rc;
}

enum milter_step
milter_conn_eom(struct milter_conn *c)
{
	struct moat_verdict v;

	if (c->s == NULL)
		return MILTER_STEP_TEMPFAIL;
	if (c->copy != NULL)
		moat_session_set_reader(c->s, moat_hold_reader, c->copy);
	if (c->on_loop && moat_session_eom_blocks(c->s)) {
		/* DNS, signing or a scanner: all of it off the loop */
		c->pend = PEND_EOM;
		c->eom_started = false;
		return MILTER_STEP_PENDING;
	}
	return conn_done(c, PEND_EOM, moat_session_eom(c->s, &v), &v);
}

static enum milter_step
conn_done(struct milter_conn *c, enum conn_pend step, enum moat_event_rc rc,
    const struct moat_verdict *v)
{
	struct moat_verdict fin = *v;

	if (rc == MOAT_EVENT_PENDING) {
		c->pend = step;
		c->eom_started = true;
		c->pend_rc = rc;
		return MILTER_STEP_PENDING;
	}
	switch (step) {
	case PEND_CONNECT:
		if (fin.action != MOAT_CONTINUE)
			c->refused = fin;
		return conn_answer(c, &fin, "connect");
	case PEND_MAIL:
		return conn_answer(c, &fin, "mail");
	case PEND_RCPT:
		return conn_answer(c, &fin, "rcpt");
	case PEND_EOM:
		return eom_answer(c, &fin);
	case PEND_NONE:
		break;
	}
	return MILTER_STEP_TEMPFAIL;
}

void
milter_conn_work(struct milter_conn *c)
{
	if (c->pend == PEND_EOM && !c->eom_started) {
		c->pend_rc = moat_session_eom(c->s, &c->pend_v);
		c->eom_started = true;
	}
	while (c->pend != PEND_NONE && c->pend_rc == MOAT_EVENT_PENDING) {
		struct moat_verdict answer;

		if (moat_session_pending(c->s) == MOAT_WAIT_WORK) {
			moat_session_work(c->s);
			c->pend_rc = moat_session_resume(c->s, NULL, &c->pend_v);
			continue;
		}
		/* the shared store (Redis), charged here, off the loop, as a blocking policy does */
		moat_ratelimit_charge(moat_policy_ratelimit(c->pol),
		    moat_session_pending_plan(c->s), moat_session_id(c->s), &answer);
		c->pend_rc = moat_session_resume(c->s, &answer, &c->pend_v);
	}
}

enum milter_step
milter_conn_finish(struct milter_conn *c)
{
	enum conn_pend step = c->pend;

	c->pend = PEND_NONE;
	return conn_done(c, step, c->pend_rc, &c->pend_v);
}

/*
 * milter_conn_unknown - a command the MTA does not know. The MTA answers NOOP, RSET, VRFY and HELP
 * itself and never tells us (its own smtpd_junk_command_limit covers them); an unknown command
 * counts here as it does in mxmoat-proxy, towards limit_errors and limit_junk_commands. Past a
 * limit the answer is 421, on which Postfix closes the connection.
 */
enum milter_step
milter_conn_unknown(struct milter_conn *c)
{
	struct moat_verdict v;

	if (c->s == NULL)
		return MILTER_STEP_CONTINUE; /* the MTA answers for itself */
	moat_session_error(c->s, true, &v);
	return conn_answer(c, &v, "unknown");
}

void
milter_conn_abort(struct milter_conn *c)
{
	if (c->s != NULL)
		moat_session_abort(c->s);
	conn_copy_drop(c);
}
