/*
 * auth.h - the authentication engine for one inbound message: SPF, DKIM, DMARC, the one
 * Authentication-Results field, and the verdict the configured actions give.
 *
 * struct moat_auth_engine is shared by every session of a daemon (a DNS resolver and a DKIM
 * verifier, both thread-safe). struct moat_auth_msg follows one message: header, eoh, body and
 * eom events, as the core policy receives them. At eom it evaluates SPF (unless the caller
 * already did), DKIM (every signature, up to dkim_max_signatures), the RFC5322.From and DMARC,
 * and hands out a verdict, the Authentication-Results value to insert at the top, and the indices
 * of every existing Authentication-Results field carrying our authserv-id, to delete (last first).
 * Everything decided stays readable in struct moat_auth_results (for logs, mxmoat-check
 * --explain, and the RFC 9990 recorder: dmarc_report.h).
 */
#ifndef MOAT_AUTH_H
#define MOAT_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "arc_verify.h"
#include "conf.h"
#include "dkim_verify.h"
#include "dmarc.h"
#include "dns.h"
#include "policy.h"
#include "rfc5322_from.h"
#include "spf.h"

#define MOAT_AUTH_AR_MAX 16384 /* our Authentication-Results value */
#define MOAT_AUTH_FORGED_MAX 32 /* A-R fields with our authserv-id we remove; more: reject */
#define MOAT_AUTH_WHY_MAX 1024

struct moat_auth_engine;
struct moat_auth_msg;
struct moat_metrics;

/* The envelope, as the session knows it; strings are copied. */
struct moat_auth_env {
	const char *client_addr; /* numeric; NULL: SPF is none */
	const char *helo; /* NULL or "" if not given */
	const char *mail_from; /* without angle brackets; "" null sender */
	const char *iprev; /* the client's iprev result (RFC 8601 2.7.3), a static name; NULL: not
	                      looked up */
	const char *iprev_name; /* the name it confirmed, or NULL (borrowed for the message) */
};

struct moat_auth_forged {
	char name[64]; /* the field name as written (before the colon) */
	unsigned index; /* 1-based occurrence among fields of that name */
};

struct moat_auth_results {
	struct moat_spf_result spf_mailfrom, spf_helo;
	bool spf_done, helo_checked;
	size_t ndkim;
	struct moat_from from;
	struct moat_dmarc_eval dmarc;
	const struct moat_arc_result *arc; /* NULL: not verified (borrowed, moat_auth_set_arc) */
	unsigned arc_override; /* the instance whose trusted sealer overrode a DMARC fail, or 0 */
	size_t nforged; /* in the order seen */
	bool forged_overflow;
	struct moat_verdict verdict;
	/* From here on (about 60 KB) each entry is written before it is read: a new message zeroes
	 * only the fields above, the strings start empty. */
	struct moat_dkim_sig dkim[MOAT_DKIM_SIGS_MAX]; /* ndkim of them */
	struct moat_auth_forged forged[MOAT_AUTH_FORGED_MAX]; /* nforged of them */
	char authres[MOAT_AUTH_AR_MAX]; /* one line, no field name ("" before eom) */
	char authres_folded[MOAT_AUTH_AR_MAX + 512];
	char why[MOAT_AUTH_WHY_MAX]; /* the decision, for --explain and the log */
};

/* moat_auth_engine_new - resolver, DKIM verifier and DMARC report recorder (dmarc_report_store)
 * from CONF. NULL + err. */
struct moat_auth_engine *moat_auth_engine_new(const struct moat_conf *conf, char *err,
    size_t errlen);
/* moat_auth_engine_new_dns - with a resolver the caller owns (borrowed; tests, mxmoat-check). */
struct moat_auth_engine *moat_auth_engine_new_dns(struct moat_dns *dns,
    const struct moat_conf *conf, time_t fixed_time);
void moat_auth_engine_free(struct moat_auth_engine *e);
/* moat_auth_engine_flush - write the DMARC evaluations recorded so far (a daemon about to exit
 * without freeing the engine). NULL, or no recorder: no-op. */
void moat_auth_engine_flush(struct moat_auth_engine *e);
/* moat_auth_engine_dns - the resolver (borrowed). */
struct moat_dns *moat_auth_engine_dns(struct moat_auth_engine *e);
/* moat_auth_engine_set_metrics - count DNS query times and DMARC records into M (borrowed). */
void moat_auth_engine_set_metrics(struct moat_auth_engine *e, struct moat_metrics *m);
/* moat_auth_engine_dkim - the DKIM verifier (key cache), which ARC verification shares. */
struct moat_dkim_verifier *moat_auth_engine_dkim(struct moat_auth_engine *e); /* borrowed */

/* moat_auth_msg_new - CONF is borrowed for the life of the message. NULL when out of memory. */
struct moat_auth_msg *moat_auth_msg_new(struct moat_auth_engine *e, const struct moat_conf *conf,
    const struct moat_auth_env *env);
void moat_auth_msg_free(struct moat_auth_msg *m);

/* The SPF results of one envelope, checked before its message (moat_auth_spf_new). */
struct moat_auth_spf {
	struct moat_spf_result mailfrom, helo;
	bool helo_checked; /* a HELO name was given, and checked */
};

/*
 * moat_auth_spf_new - SPF of the MAIL FROM and HELO identities of ENV now, through E's resolver
 * (blocks on DNS): for a verdict at MAIL or RCPT, before any message byte (RFC 7208 2.4).
 * moat_auth_set_spf hands the results to the message, so DMARC uses them at eom. NULL when out
 * of memory; free with moat_auth_spf_free.
 */
struct moat_auth_spf *moat_auth_spf_new(struct moat_auth_engine *e, const struct moat_conf *conf,
    const struct moat_auth_env *env);
void moat_auth_spf_free(struct moat_auth_spf *spf);

/*
 * moat_auth_spf_verdict - what spf_fail_action and spf_temperror_action make of a MAIL FROM
 * result: v gets 550 5.7.23 or 451 4.7.24 and the decision's text is returned, or v is left
 * alone and NULL returned (tag only).
 */
const char *moat_auth_spf_verdict(const struct moat_conf *conf,
    const struct moat_spf_result *mailfrom, struct moat_verdict *v);

/* moat_auth_set_spf - results computed by the caller (copied, trace not kept). */
void moat_auth_set_spf(struct moat_auth_msg *m, const struct moat_spf_result *mailfrom,
    const struct moat_spf_result *helo);

/*
 * moat_auth_set_arc - the ARC result of the message (arc_verify.h), before eom: written as arc=
 * and, for a chain sealed by one of arc_trusted_sealers, the only thing that may override a
 * DMARC fail. Borrowed: it must stay valid until moat_auth_msg_free.
 */
void moat_auth_set_arc(struct moat_auth_msg *m, const struct moat_arc_result *arc);

void moat_auth_header(struct moat_auth_msg *m, const char *field, size_t len);
void moat_auth_eoh(struct moat_auth_msg *m);
void moat_auth_body(struct moat_auth_msg *m, const char *chunk, size_t len);
/* moat_auth_eom - evaluate; *v gets the verdict (also in the results). */
void moat_auth_eom(struct moat_auth_msg *m, struct moat_verdict *v);

/* moat_auth_results - valid until moat_auth_msg_free. */
const struct moat_auth_results *moat_auth_results(const struct moat_auth_msg *m);

/*
 * moat_auth_edits - the header edits after eom: deletes (highest index first, per name), then one
 * INSERT_TOP of our Authentication-Results. Strings point into the message (borrowed, valid
 * until moat_auth_msg_free). Returns how many were written to out (at most max).
 */
size_t moat_auth_edits(struct moat_auth_msg *m, struct moat_hdr_edit *out, size_t max);

#endif /* MOAT_AUTH_H */
