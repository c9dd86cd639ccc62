/*
 * checks_message.c - the rows of the check table that work on the message itself: an
 * authenticated login's own senders (sender_login_map), DKIM signing and ARC sealing of outbound
 * mail, content scanning (clamd, rspamd) and the scanners' verdict.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "dkim_sign.h"
#include "rfc5322_from.h"
#include "scan.h"
#include "sender_login.h"
#include "checks_int.h"
#include "log.h"
#include "policy.h"
#include "session_int.h"

/* ---- sender_login_map (sender_login.c): an authenticated login's own senders only ---- */

/* sender_login_bound - is the map in force for this session (set, and a login authenticated)? */
static bool
sender_login_bound(const struct moat_session *s)
{
	return s->conf->sender_logins != NULL && s->authenticated;
}

/* sender_login_signs - may this session's message be signed with d=DOMAIN: any when the map is not
 * in force (no login), else only a domain of the login (moat_sign_restrict; ARG the session). */
static bool
sender_login_signs(void *arg, const char *domain)
{
	const struct moat_session *s = arg;

	return !sender_login_bound(s) ||
	    moat_sender_login_map_allows(s->conf->sender_logins, s->login, NULL, domain);
}

/* sender_login_refuse - 553 5.7.1 (RFC 5321 4.2.3: mailbox name not allowed; RFC 3463 5.7.1:
 * delivery not authorized). WHAT names the field, never the login. */
static void
sender_login_refuse(struct moat_verdict *v, const char *what)
{
	moat_verdict_set(v, MOAT_REJECT, 553, "5.7.1", "sender_login_mismatch",
	    "%s not owned by the authenticated user", what);
}

/* check_sender_login - MAIL FROM must be one of the login's addresses or domains; the null
 * sender passes (a bounce names no sender), its header From is still checked. */
static enum moat_event_rc
check_sender_login(struct moat_session *s, enum check_stage st, const char *params,
    struct moat_verdict *v)
{
	const char *at;
	char local[MOAT_FROM_LOCAL_MAX + 1];

	(void)st;
	(void)params;
	if (!sender_login_bound(s) || s->mail_from[0] == '\0')
		return MOAT_EVENT_DONE;
	at = strrchr(s->mail_from, '@');
	if (at == NULL || (size_t)(at - s->mail_from) >= sizeof(local)) {
		sender_login_refuse(v, "Sender address");
		return MOAT_EVENT_DONE;
	}
	snprintf(local, sizeof(local), "%.*s", (int)(at - s->mail_from), s->mail_from);
	if (!moat_sender_login_map_allows(s->conf->sender_logins, s->login, local, at + 1))
		sender_login_refuse(v, "Sender address");
	return MOAT_EVENT_DONE;
}

/* sender_login_start - read the header From of an authenticated session's message. */
static void
sender_login_start(struct moat_session *s)
{
	if (sender_login_bound(s) && (s->sl_from = malloc(sizeof(*s->sl_from))) != NULL)
		moat_from_init(s->sl_from);
}

static void
sender_login_header(struct moat_session *s, const char *field, size_t len, struct moat_verdict *v)
{
	(void)v;
	if (s->sl_from != NULL)
		moat_from_field(s->sl_from, field, len);
}

/* sender_login_eoh - exactly one From mailbox, one of the login's: else 553 5.7.1, sticky, so no
 * row after this one (the signer) sees the rest of the message. */
static void
sender_login_eoh(struct moat_session *s, struct moat_verdict *v)
{
	if (!sender_login_bound(s))
		return;
	if (s->sl_from == NULL) {
		moat_verdict_set(v, MOAT_TEMPFAIL, 451, "4.3.0", "out_of_memory",
		    "Local error, try again later");
	} else if (moat_from_finish(s->sl_from) != MOAT_FROM_OK ||
	    !moat_sender_login_map_allows(s->conf->sender_logins, s->login, s->sl_from->local,
		s->sl_from->domain)) {
		sender_login_refuse(v, "From header address");
	} else {
		return;
	}
	moat__session_stick(s, v);
}

/* ---- DKIM signing (dkim_sign.c): outbound messages, when a signing table is loaded ---- */

/* session_sign_start - start signing an outbound message, when a signing table is loaded; with
 * sender_login_map, only with the d= of the login's domains. */
static void
session_sign_start(struct moat_session *s)
{
	if (s->direction != MOAT_OUTBOUND || s->conf->signer == NULL)
		return;
	if ((s->sign = moat_sign_begin(s->conf->signer)) == NULL)
		moat_log(LOG_ERR, s->id, "dkim-sign", "result=failed why=\"out of memory\"");
	else if (s->conf->sender_logins != NULL)
		moat_sign_restrict(s->sign, sender_login_signs, s);
}

/*
 * session_seal_end - arc_seal: our ARC set as INSERT_TOP edits above the DKIM signatures, AAR
 * first so the seal ends on top. A set that cannot be made is logged; the message goes on
 * unsealed (it is still signed).
 */
static void
session_seal_end(struct moat_session *s)
{
	static const char *const names[3] = { "ARC-Authentication-Results", "ARC-Message-Signature",
		"ARC-Seal" };
	char *values[3] = { NULL, NULL, NULL }, why[320] = "no header seen or out of memory";
	int rc = s->sign != NULL ? moat_sign_arc(s->sign, values, why, sizeof(why)) : -1;
	size_t first = s->nedits;

	if (rc > 0 && moat__session_edit_room(s) < 3) {
		rc = -1;
		snprintf(why, sizeof(why), "no room for the header edits, or out of memory");
	}
	for (int i = 0; i < 3 && rc > 0; i++) {
		struct moat_hdr_edit *e = &s->edits[s->nedits];
		if ((e->name = strdup(names[i])) == NULL) {
			rc = -1;
			snprintf(why, sizeof(why), "out of memory");
			break;
		}
		e->op = MOAT_HDR_INSERT_TOP;
		e->index = 0;
		e->value = values[i];
		values[i] = NULL;
		s->nedits++;
	}
	while (rc < 0 && s->nedits > first) { /* a set is whole or absent */
		s->nedits--;
		free(s->edits[s->nedits].name);
		free(s->edits[s->nedits].value);
	}
	for (int i = 0; i < 3; i++)
		free(values[i]);
	if (s->conf->arc_seal)
		moat_log(rc < 0 ? LOG_WARNING : LOG_INFO, s->id, "arc-seal", "result=%s why=\"%s\"",
		    rc > 0        ? "sealed"
			: rc == 0 ? "skipped"
				  : "failed",
		    why);
}

/* session_sign_end - the signatures as INSERT_TOP edits; dkim_sign_failure on failure. */
static void
session_sign_end(struct moat_session *s, struct moat_verdict *v)
{
	char *values[MOAT_SIGN_KEYS_MAX], why[512];
	size_t n = 0;
	enum moat_sign_status st;
	bool tempfail;

	if (s->direction != MOAT_OUTBOUND || s->conf->signer == NULL)
		return;
	st = s->sign != NULL
	    ? moat_sign_end(s->sign, values, MOAT_SIGN_KEYS_MAX, &n, why, sizeof(why))
	    : MOAT_SIGN_FAILED;
	if (s->sign == NULL)
		snprintf(why, sizeof(why), "no header seen or out of memory");
	for (size_t i = 0; i < n; i++) {
		if (moat__session_edit_room(s) > 0 &&
		    (s->edits[s->nedits].name = strdup("DKIM-Signature"))) {
			s->edits[s->nedits].op = MOAT_HDR_INSERT_TOP;
			s->edits[s->nedits++].value = values[i];
		} else {
			free(values[i]);
			st = MOAT_SIGN_FAILED;
			snprintf(why, sizeof(why), "no room for the header edit, or out of memory");
		}
	}
	session_seal_end(s);
	tempfail = st == MOAT_SIGN_FAILED && s->conf->dkim_sign_failure == MOAT_DKIM_FAIL_TEMPFAIL;
	moat_log(st == MOAT_SIGN_FAILED ? LOG_WARNING : LOG_INFO, s->id, "dkim-sign",
	    "result=%s dir_why=\"%s\" %s%s%s", moat_sign_status_name(st),
	    s->direction_why ? s->direction_why : "-", st == MOAT_SIGN_OK ? "" : "why=\"", why,
	    st == MOAT_SIGN_OK
		? ""
		: (tempfail ? "\" action=tempfail"
			    : (st == MOAT_SIGN_FAILED ? "\" action=unsigned" : "\"")));
	if (tempfail) {
		moat__session_clear_edits(s);
		moat_verdict_set(v, MOAT_TEMPFAIL, 451, "4.7.0", "dkim_sign_failed",
		    "Message could not be signed, try again later");
	}
}

static void
sign_header(struct moat_session *s, const char *field, size_t len, struct moat_verdict *v)
{
	(void)v;
	if (s->sign != NULL)
		moat_sign_header(s->sign, field, len);
}

static void
sign_eoh(struct moat_session *s, struct moat_verdict *v)
{
	(void)v;
	if (s->sign != NULL)
		moat_sign_eoh(s->sign);
}

static void
sign_body(struct moat_session *s, const char *chunk, size_t len, struct moat_verdict *v)
{
	(void)v;
	if (s->sign != NULL)
		moat_sign_body(s->sign, chunk, len);
}

static bool
sign_blocks(const struct moat_session *s)
{
	return s->sign != NULL;
}

/* ---- content scanning (scan.c): clamd and rspamd, when configured ---- */

/* session_scan_start - open clamd for this message, unless scan_outbound exempts it. */
static void
session_scan_start(struct moat_session *s)
{
	if (moat_scan_wanted(s->conf, s->direction == MOAT_OUTBOUND) &&
	    (s->scan = moat_scan_begin(s->pol->scan_health, s->conf, s->id)) == NULL)
		moat_log(LOG_ERR, s->id, "scan", "result=failed why=\"out of memory\"");
}

static void
scan_header(struct moat_session *s, const char *field, size_t len, struct moat_verdict *v)
{
	(void)v;
	if (s->scan != NULL)
		moat_scan_header(s->scan, field, len);
}

static void
scan_eoh(struct moat_session *s, struct moat_verdict *v)
{
	(void)v;
	if (s->scan != NULL)
		moat_scan_eoh(s->scan);
}

static void
scan_body(struct moat_session *s, const char *chunk, size_t len, struct moat_verdict *v)
{
	(void)v;
	if (s->scan != NULL)
		moat_scan_body(s->scan, chunk, len);
}

/* scan_end_data - clamd gets the end of the message and scans while the rows after this one
 * (ARC, SPF/DKIM/DMARC) wait on DNS; scan_verdict asks rspamd and collects both answers. */
static void
scan_end_data(struct moat_session *s, struct moat_verdict *v)
{
	(void)v;
	if (s->scan != NULL)
		moat_scan_end_data(s->scan);
}

/* scan_verdict - after the auth row: rspamd is asked with our Authentication-Results, so it need
 * not repeat SPF, DKIM and DMARC; then both scanners' verdict and header edits (out of memory:
 * 451, as for a scanner that failed under scan_failure = tempfail). A message the rows before
 * already rejected is not sent to rspamd: the most severe verdict wins, and none outranks that. */
static void
scan_verdict(struct moat_session *s, struct moat_verdict *v)
{
	struct moat_rspamd_env env = {
		.ip = s->addr_known ? s->client_addr : NULL,
		.helo = s->helo,
		.hostname = moat_session_client_name(s),
		.from = s->mail_from,
		.rcpt = (const char *const *)s->rcpts,
		.nrcpt = s->nrcpt < s->rcpts_cap ? s->nrcpt : s->rcpts_cap,
		.user = s->login,
		.queue_id = s->id,
		.authres = s->auth != NULL ? moat_auth_results(s->auth)->authres : NULL,
	};
	struct moat_hdr_edit edits[MOAT_SCAN_EDITS_MAX];
	struct moat_verdict sv;
	size_t n, i;

	if (s->scan == NULL) {
		if (moat_scan_wanted(s->conf, s->direction == MOAT_OUTBOUND)) {
			moat_verdict_set(&sv, MOAT_TEMPFAIL, 451, "4.3.0", "out_of_memory",
			    "Local error, try again later");
			moat_verdict_combine(v, &sv);
		}
		return;
	}
	if (v->action == MOAT_REJECT) {
		moat_scan_skip(s->scan, v);
		return;
	}
	moat_scan_finish(s->scan, &env, s->msg_read, s->msg_read_arg, &sv, edits, &n);
	for (i = 0; i < n && moat__session_edit_room(s) > 0; i++)
		s->edits[s->nedits++] = edits[i];
	if (i < n) {
		for (; i < n; i++) {
			free(edits[i].name);
			free(edits[i].value);
		}
		if (sv.action < MOAT_TEMPFAIL)
			moat_verdict_set(&sv, MOAT_TEMPFAIL, 451, "4.3.0", "too_many_edits",
			    "Local error, try again later");
	}
	moat_verdict_combine(v, &sv);
}

static bool
scan_blocks(const struct moat_session *s)
{
	return s->scan != NULL;
}

/* The rows (checks.c orders them in the table). */
const struct moat__check moat__check_sender_login = { .name = "sender_login",
	.stages = STAGE_BIT(STAGE_MAIL),
	.run = check_sender_login,
	.start = sender_login_start,
	.header = sender_login_header,
	.eoh = sender_login_eoh };

const struct moat__check moat__check_dkim_sign = { .name = "dkim_sign",
	.start = session_sign_start,
	.header = sign_header,
	.eoh = sign_eoh,
	.body = sign_body,
	.end = session_sign_end,
	.blocks = sign_blocks };

const struct moat__check moat__check_scan = { .name = "scan",
	.start = session_scan_start,
	.header = scan_header,
	.eoh = scan_eoh,
	.body = scan_body,
	.end = scan_end_data,
	.blocks = scan_blocks };

const struct moat__check moat__check_scan_verdict = { .name = "scan_verdict", .end = scan_verdict };
