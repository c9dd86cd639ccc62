/*
 * callbacks.c - mxmoat-milter's libmilter callbacks.
 *
 * Each callback turns one MTA event into one core event (policy.h) and the core's verdict into a
 * milter answer: SMFIS_* plus smfi_setreply (code, enhanced code, text), smfi_quarantine, and at
 * end of message the core's header edits (smfi_insheader at index 0, smfi_chgheader with NULL to
 * delete, last index first; see edits.c). No policy is decided here.
 *
 * Per-connection state (struct milter_conn) is created in xxfi_connect, owned by the libmilter
 * context (smfi_setpriv) and freed in xxfi_close, which libmilter calls on every path, also when
 * connect was never seen (then the private pointer is NULL).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>

#include "callbacks.h"
#include "edits.h"
#include "hold.h"
#include "log.h"
#include "macros.h"

#define HDR_FIELD_MAX \
	((size_t)1024 * 1024) /* a header field larger than libmilter's packet: refuse */
#define EDITS_MAX 128

static struct moat_policy *milter_policy; /* set once before smfi_main, then only read */

struct milter_conn {
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
};


static struct milter_conn *
conn_get(SMFICTX *ctx)
{
	return smfi_getpriv(ctx);
}

/* conn_log_id - our session id for log lines, or "-". */
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
 * milter_answer - a core verdict as a milter answer. Codes the milter protocol cannot carry
 * (not 4xx with tempfail, not 5xx with reject) fall back to the MTA's own reply for the action.
 */
static sfsistat
milter_answer(SMFICTX *ctx, const struct milter_conn *c, const struct moat_verdict *v,
    const char *stage)
{
	char code[4];
	char text[MOAT_REPLY_TEXT_MAX + 1];

	switch (v->action) {
	case MOAT_CONTINUE:
		return SMFIS_CONTINUE;
	case MOAT_ACCEPT:
		return SMFIS_ACCEPT;
	case MOAT_QUARANTINE:
		/* Only end of message can hold a message; earlier stages carry on (eom repeats it). */
		return SMFIS_CONTINUE;
	case MOAT_DISCARD:
		moat_log(LOG_INFO, conn_log_id(c), "discard", "stage=%s reason=%s", stage,
		    v->reason ? v->reason : "-");
		return SMFIS_DISCARD;
	case MOAT_TEMPFAIL:
	case MOAT_REJECT:
		break;
	}
	moat_log(LOG_INFO, conn_log_id(c), v->action == MOAT_REJECT ? "reject" : "tempfail",
	    "stage=%s code=%u status=%s reason=%s", stage, v->code, v->status[0] ? v->status : "-",
	    v->reason ? v->reason : "-");
	if ((v->action == MOAT_REJECT && v->code >= 500 && v->code <= 599) ||
	    (v->action == MOAT_TEMPFAIL && v->code >= 400 && v->code <= 499)) {
		/* smfi_setreply passes text through a format in Sendmail: double any '%'. */
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
		if (smfi_setreply(ctx, code, v->status[0] ? (char *)v->status : NULL,
			text[0] ? text : NULL) != MI_SUCCESS)
			moat_log(LOG_WARNING, conn_log_id(c), "reply",
			    "smfi_setreply refused code=%s", code);
	}
	return v->action == MOAT_REJECT ? SMFIS_REJECT : SMFIS_TEMPFAIL;
}

/* milter_oom - the answer when we cannot allocate: try again later, never lose mail. */
static sfsistat
milter_oom(SMFICTX *ctx, struct milter_conn *c, const char *stage)
{
	struct moat_verdict v;

	moat_verdict_set(&v, MOAT_TEMPFAIL, 451, "4.3.0", "out_of_memory",
	    "Local error, try again later");
	return milter_answer(ctx, c, &v, stage);
}

/* ---- callbacks ---- */

static sfsistat
xxfi_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2, unsigned long f3,
    unsigned long *pf0, unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	unsigned long want_actions = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE;
	/* Stages whose verdicts the core makes sticky and repeats later need no reply of their own:
	 * header limits and size at end of message, a HELO refusal at MAIL (as Postfix itself
	 * defers a HELO reject). One round trip saved per HELO, header line and body chunk. */
	unsigned long want_nr = SMFIP_NR_HELO | SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY;
	/* Not sent at all: DATA (the core has nothing to decide there; the MTA only sends it after
	 * an accepted RCPT). libmilter drops the flag for an MTA that cannot skip the step, and then
	 * answers it itself (no callback registered). Unknown commands are sent: they count towards
	 * limit_errors and limit_junk_commands (xxfi_unknown). The other steps are needed in every
	 * configuration: the session limits, which cannot be switched off, answer at connect, MAIL
	 * and RCPT and count header fields and body bytes. */
	unsigned long proto = SMFIP_NODATA;

	struct milter_conn *c;

	(void)f2;
	(void)f3;
	if ((f0 & want_actions) != want_actions) {
		moat_log(LOG_ERR, NULL, "negotiate",
		    "MTA does not offer the actions we need (0x%lx)", f0);
		return SMFIS_REJECT;
	}
	*pf0 = want_actions;
	if (f0 & SMFIF_SETSYMLIST)
		*pf0 |= SMFIF_SETSYMLIST;
	/*
	 * The connection's private data starts here, to carry what was negotiated to the later
	 * callbacks. Not in thread-local storage: Debian's libmilter hands a connection's commands
	 * to any thread of its worker pool, so xxfi_connect may run in another thread than this
	 * (under load it did: the MTA then got replies at steps it had said need none, and header
	 * values without their leading space).
	 */
	if ((c = calloc(1, sizeof(*c))) == NULL || smfi_setpriv(ctx, c) != MI_SUCCESS) {
		free(c);
		moat_log(LOG_ERR, NULL, "negotiate", "out of memory");
		return SMFIS_TEMPFAIL;
	}
	/* libmilter offers every SMFIP_NR_* (it answers for an MTA that lacks one). */
	c->nr = f1 & want_nr;
	proto |= c->nr;
	c->leadspc = (f1 & SMFIP_HDR_LEADSPC) != 0;
	if (c->leadspc)
		proto |= SMFIP_HDR_LEADSPC;
	*pf1 = proto;
	*pf2 = 0;
	*pf3 = 0;
	if (*pf0 & SMFIF_SETSYMLIST)
		milter_macros_request(ctx);
	moat_log(LOG_DEBUG, NULL, "negotiate", "mta_protocol=0x%lx protocol=0x%lx actions=0x%lx",
	    f1, proto, *pf0);
	return SMFIS_CONTINUE;
}

/* connect_addr - numeric address and port from the MTA's sockaddr, else from the macros. */
static void
connect_addr(SMFICTX *ctx, const struct sockaddr *sa, char *addr, size_t len, unsigned *port)
{
	const char *m;
	long long p;

	addr[0] = '\0';
	*port = 0;
	if (sa != NULL && sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, addr, (socklen_t)len);
		*port = ntohs(sin->sin_port);
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, addr, (socklen_t)len);
		*port = ntohs(sin6->sin6_port);
	} else if ((m = milter_macro_get(ctx, MILTER_M_CLIENT_ADDR)) != NULL && strlen(m) < len) {
		snprintf(addr, len, "%s", m);
	}
	if (*port == 0 && (p = milter_macro_uint(ctx, MILTER_M_CLIENT_PORT, 65535)) >= 0)
		*port = (unsigned)p;
}

static sfsistat
xxfi_connect(SMFICTX *ctx, char *hostname, struct sockaddr *hostaddr)
{
	struct milter_conn *c;
	struct moat_client client = { 0 };
	struct moat_verdict v;
	char addr[INET6_ADDRSTRLEN + 1];
	char ename[300], elistener[100];
	const char *name = hostname;

	/* made by xxfi_negotiate; an MTA that negotiated nothing gets the defaults: no NR steps,
	 * values without their leading space */
	if ((c = conn_get(ctx)) == NULL) {
		if ((c = calloc(1, sizeof(*c))) == NULL)
			return milter_oom(ctx, NULL, "connect");
		if (smfi_setpriv(ctx, c) != MI_SUCCESS) {
			free(c);
			return milter_oom(ctx, NULL, "connect");
		}
	}
	connect_addr(ctx, hostaddr, addr, sizeof(addr), &client.port);
	/* Postfix and Sendmail pass "[addr]" (or "unknown") when the name did not verify. */
	if (name == NULL || name[0] == '[' || strcmp(name, "unknown") == 0)
		name = NULL;
	client.addr = addr[0] ? addr : NULL;
	client.name = name;
	client.listener = milter_macro_get(ctx, MILTER_M_DAEMON_NAME);
	c->s = moat_session_new(milter_policy, &client);
	if (c->s == NULL)
		return milter_oom(ctx, c, "connect");
	moat_log(LOG_INFO, moat_session_id(c->s), "connect", "client=%s[%s]:%u listener=%s",
	    moat_log_escape(name ? name : "unknown", strlen(name ? name : "unknown"), ename,
		sizeof(ename)),
	    addr[0] ? addr : "unknown", client.port,
	    client.listener ? moat_log_escape(client.listener, strlen(client.listener), elistener,
				  sizeof(elistener))
			    : "-");
	/* MOAT_POLICY_MAY_BLOCK: the core answers every event at once */
	(void)moat_session_connect(c->s, &v);
	if (v.action != MOAT_CONTINUE)
		c->refused = v;
	return milter_answer(ctx, c, &v, "connect");
}

/*
 * helo_answer - the HELO verdict, or no reply under SMFIP_NR_HELO: then a refusal is kept and
 * given at MAIL (xxfi_envfrom answers c->refused first), which is when Postfix would apply it.
 */
static sfsistat
helo_answer(SMFICTX *ctx, struct milter_conn *c, const struct moat_verdict *v)
{
	if (!(c->nr & SMFIP_NR_HELO))
		return milter_answer(ctx, c, v, "helo");
	if (v->action != MOAT_CONTINUE)
		c->refused = *v;
	return SMFIS_NOREPLY;
}

static sfsistat
xxfi_helo(SMFICTX *ctx, char *helo)
{
	struct milter_conn *c = conn_get(ctx);
	struct moat_verdict v;
	const char *ver;

	if (c == NULL || c->s == NULL) /* out of memory at connect */
		return c != NULL && (c->nr & SMFIP_NR_HELO) ? SMFIS_NOREPLY : SMFIS_TEMPFAIL;
	if (c->refused.action != MOAT_CONTINUE)
		return helo_answer(ctx, c, &c->refused);
	/* Postfix sends the TLS macros with HELO (milter_helo_macros); a new HELO after STARTTLS
	 * brings them for the first time. */
	if (!c->tls_seen && (ver = milter_macro_get(ctx, MILTER_M_TLS_VERSION)) != NULL) {
		struct moat_tls_info tls = { .active = true };
		const char *cipher = milter_macro_get(ctx, MILTER_M_CIPHER);
		long long bits = milter_macro_uint(ctx, MILTER_M_CIPHER_BITS, 65536);
		snprintf(tls.protocol, sizeof(tls.protocol), "%s", ver);
		snprintf(tls.cipher, sizeof(tls.cipher), "%s", cipher ? cipher : "");
		tls.bits = bits > 0 ? (unsigned)bits : 0;
		moat_session_tls(c->s, &tls);
		c->tls_seen = true;
	}
	moat_session_helo(c->s, helo ? helo : "", true, &v);
	return helo_answer(ctx, c, &v);
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
envelope_params(char **argv, char *out, size_t len)
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

static sfsistat
xxfi_envfrom(SMFICTX *ctx, char **argv)
{
	struct milter_conn *c = conn_get(ctx);
	struct moat_verdict v;
	char path[1024], params[1024];
	const char *login;

	if (c == NULL || c->s == NULL)
		return SMFIS_TEMPFAIL;
	if (c->refused.action != MOAT_CONTINUE)
		return milter_answer(ctx, c, &c->refused, "mail");
	if (!c->auth_seen && (login = milter_macro_get(ctx, MILTER_M_AUTH_AUTHEN)) != NULL) {
		moat_session_auth(c->s, login);
		c->auth_seen = true;
	}
	if (envelope_path(argv[0], path, sizeof(path)) < 0) {
		moat_verdict_set(&v, MOAT_REJECT, 501, "5.1.7", "bad_sender",
		    "Sender address too long");
		return milter_answer(ctx, c, &v, "mail");
	}
	conn_copy_drop(c);
	(void)moat_session_mail(c->s, path, envelope_params(argv, params, sizeof(params)), &v);
	return milter_answer(ctx, c, &v, "mail");
}

static sfsistat
xxfi_envrcpt(SMFICTX *ctx, char **argv)
{
	struct milter_conn *c = conn_get(ctx);
	struct moat_verdict v;
	char path[1024], params[1024];

	if (c == NULL || c->s == NULL)
		return SMFIS_TEMPFAIL;
	if (envelope_path(argv[0], path, sizeof(path)) < 0) {
		moat_verdict_set(&v, MOAT_REJECT, 501, "5.1.3", "bad_recipient",
		    "Recipient address too long");
		return milter_answer(ctx, c, &v, "rcpt");
	}
	(void)moat_session_rcpt(c->s, path, envelope_params(argv, params, sizeof(params)), &v);
	return milter_answer(ctx, c, &v, "rcpt");
}

/* conn_field - "Name:" + value (+ a space unless the MTA kept the value's own) in c->field. */
static const char *
conn_field(struct milter_conn *c, const char *name, const char *value, size_t *len)
{
	size_t nl = strlen(name), vl = strlen(value);
	size_t need = nl + 2 + vl + 1;
	const char *p = value, *end = value + vl, *lf;

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
		/* this line, a CR if bare, the rest from the LF on and the NUL */
		if (*len + n + (bare ? 1 : 0) + (size_t)(end - lf) + 1 > c->field_cap)
			return NULL; /* growth by folding beyond the estimate: refuse, never cut */
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
static sfsistat
stream_answer(const struct milter_conn *c, unsigned long nr_flag)
{
	return (c->nr & nr_flag) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat
xxfi_header(SMFICTX *ctx, char *name, char *value)
{
	struct milter_conn *c = conn_get(ctx);
	struct moat_verdict v;
	const char *field;
	size_t len;

	if (c == NULL || c->s == NULL)
		return SMFIS_TEMPFAIL;
	if ((field = conn_field(c, name ? name : "", value ? value : "", &len)) == NULL) {
		moat_session_too_large(c->s, MOAT_TOO_LARGE_HEADER, &v);
		return milter_answer(ctx, c, &v, "header");
	}
	moat_session_header(c->s, field, len, &v);
	conn_copy(c, field, len);
	conn_copy(c, "\r\n", 2);
	return stream_answer(c, SMFIP_NR_HDR);
}

static sfsistat
xxfi_eoh(SMFICTX *ctx)
{
	struct milter_conn *c = conn_get(ctx);
	struct moat_verdict v;

	if (c == NULL || c->s == NULL)
		return SMFIS_TEMPFAIL;
	moat_session_eoh(c->s, &v);
	conn_copy(c, "\r\n", 2);
	return stream_answer(c, SMFIP_NR_EOH);
}

static sfsistat
xxfi_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	struct milter_conn *c = conn_get(ctx);
	struct moat_verdict v;

	if (c == NULL || c->s == NULL)
		return SMFIS_TEMPFAIL;
	moat_session_body(c->s, (const char *)chunk, len, &v);
	conn_copy(c, (const char *)chunk, len);
	return stream_answer(c, SMFIP_NR_BODY);
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
apply_edits(SMFICTX *ctx, struct milter_conn *c)
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
			rc = smfi_chgheader(ctx, ed->name, (int)ed->index, NULL);
		} else {
			char *val = value_for_mta(c, ed->value ? ed->value : "");
			if (val == NULL)
				return -1;
			rc = smfi_insheader(ctx, 0, ed->name, val);
			free(val);
		}
		if (rc != MI_SUCCESS)
			return -1;
	}
	return 0;
}

static sfsistat
xxfi_eom(SMFICTX *ctx)
{
	struct milter_conn *c = conn_get(ctx);
	struct moat_verdict v;
	char summary[1024];
	const char *qid;
	sfsistat rc;

	if (c == NULL || c->s == NULL)
		return SMFIS_TEMPFAIL;
	if (c->copy != NULL)
		moat_session_set_reader(c->s, moat_hold_reader, c->copy);
	(void)moat_session_eom(c->s, &v); /* MOAT_POLICY_MAY_BLOCK: never pending */
	conn_copy_drop(c);
	qid = milter_macro_get(ctx, MILTER_M_QUEUE_ID);
	if (v.action == MOAT_CONTINUE || v.action == MOAT_ACCEPT || v.action == MOAT_QUARANTINE) {
		if (apply_edits(ctx, c) < 0) {
			moat_log(LOG_ERR, moat_session_id(c->s), "edit",
			    "header edit failed; tempfail");
			moat_verdict_set(&v, MOAT_TEMPFAIL, 451, "4.3.0", "header_edit_failed",
			    "Local error, try again later");
		}
	}
	if (v.action == MOAT_QUARANTINE &&
	    smfi_quarantine(ctx, v.text[0] ? v.text : (char *)"held by mxmoat") != MI_SUCCESS)
		moat_verdict_set(&v, MOAT_TEMPFAIL, 451, "4.3.0", "quarantine_failed",
		    "Local error, try again later");
	moat_session_summary(c->s, &v, summary, sizeof(summary));
	/* {msg_size} is the MTA's own count; logged next to ours (size=) to spot a mismatch. */
	moat_log(LOG_INFO, moat_session_id(c->s), "message", "queue_id=%s mta_size=%lld %s",
	    qid ? qid : "-", milter_macro_uint(ctx, MILTER_M_MSG_SIZE, UINT64_MAX / 2), summary);
	rc = milter_answer(ctx, c, &v, "eom");
	/* Verdict, edits and summary are used: the message's state goes now, not at the next MAIL,
	 * so a connection the MTA keeps open between messages holds none of it (Postfix sends no
	 * abort after a message it accepted). */
	moat_session_abort(c->s);
	return rc == SMFIS_ACCEPT ? SMFIS_CONTINUE : rc;
}

/*
 * xxfi_unknown - a command the MTA does not know. The MTA answers NOOP, RSET, VRFY and HELP itself
 * and never tells us (its own smtpd_junk_command_limit covers them); an unknown command counts
 * here as it does in mxmoat-proxy, towards limit_errors and limit_junk_commands. Past a limit
 * the answer is 421, on which Postfix closes the connection.
 */
static sfsistat
xxfi_unknown(SMFICTX *ctx, const char *cmd)
{
	struct milter_conn *c = conn_get(ctx);
	struct moat_verdict v;

	(void)cmd;
	if (c == NULL || c->s == NULL)
		return SMFIS_CONTINUE; /* the MTA answers for itself */
	moat_session_error(c->s, true, &v);
	return milter_answer(ctx, c, &v, "unknown");
}

static sfsistat
xxfi_abort(SMFICTX *ctx)
{
	struct milter_conn *c = conn_get(ctx);

	if (c != NULL && c->s != NULL)
		moat_session_abort(c->s);
	if (c != NULL)
		conn_copy_drop(c);
	return SMFIS_CONTINUE;
}

static sfsistat
xxfi_close(SMFICTX *ctx)
{
	struct milter_conn *c = conn_get(ctx);

	if (c == NULL)
		return SMFIS_CONTINUE; /* close may be the only callback: nothing to free */
	(void)smfi_setpriv(ctx, NULL);
	if (c->s != NULL)
		moat_log(LOG_DEBUG, moat_session_id(c->s), "close", "%s", "");
	moat_session_free(c->s);
	moat_hold_free(c->copy);
	free(c->field);
	free(c);
	return SMFIS_CONTINUE;
}

void
milter_callbacks_init(struct smfiDesc *desc, struct moat_policy *pol)
{
	milter_policy = pol;
	memset(desc, 0, sizeof(*desc));
	desc->xxfi_name = (char *)"mxmoat";
	desc->xxfi_version = SMFI_VERSION;
	desc->xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE | SMFIF_SETSYMLIST;
	desc->xxfi_connect = xxfi_connect;
	desc->xxfi_helo = xxfi_helo;
	desc->xxfi_envfrom = xxfi_envfrom;
	desc->xxfi_envrcpt = xxfi_envrcpt;
	desc->xxfi_header = xxfi_header;
	desc->xxfi_eoh = xxfi_eoh;
	desc->xxfi_body = xxfi_body;
	desc->xxfi_eom = xxfi_eom;
	desc->xxfi_unknown = xxfi_unknown;
	desc->xxfi_abort = xxfi_abort;
	desc->xxfi_close = xxfi_close;
	desc->xxfi_negotiate = xxfi_negotiate;
}
