/*
 * conn.h - one MTA connection of mxmoat-milter: milter steps in, core events out, core verdicts
 * back as milter answers. Shared by both engines (milter_engine): libmilter's callbacks
 * (callbacks.c) and the native protocol server (native_conn.c) drive the same calls; an engine only
 * reads packets, hands each step here and puts the answer on the wire through struct milter_io.
 *
 * With a policy made without MOAT_POLICY_MAY_BLOCK (the native engine's event loops) a step may
 * answer MILTER_STEP_PENDING: the engine then calls milter_conn_work off its loop, and
 * milter_conn_finish on it for the step's answer. With libmilter's blocking policy no step pends.
 */
#ifndef MOAT_MILTER_CONN_H
#define MOAT_MILTER_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"

/* A step's answer (libmilter's SMFIS_*, and PENDING). */
enum milter_step {
	MILTER_STEP_CONTINUE,
	MILTER_STEP_ACCEPT,
	MILTER_STEP_REJECT,
	MILTER_STEP_TEMPFAIL,
	MILTER_STEP_DISCARD,
	MILTER_STEP_NOREPLY, /* a step negotiated with SMFIP_NR_*: no reply at all */
	MILTER_STEP_PENDING, /* milter_conn_work, then milter_conn_finish */
};

/* The engine's side of a connection. Each returns 0, or -1 when it could not be done. */
struct milter_io {
	/* macro - the value of the MTA macro NAME ("i", "{daemon_name}"), or NULL; valid until
	 * the step returns */
	const char *(*macro)(void *io, const char *name);
	/* reply - the SMTP reply of the REJECT or TEMPFAIL answer this step gives: a 3-digit code
	 * of the right class, status and text (NULL: none) as smfi_setreply takes them */
	int (*reply)(void *io, const char *code, const char *status, const char *text);
	/* insheader - add "name: value" above every header field (value as the MTA takes it) */
	int (*insheader)(void *io, const char *name, const char *value);
	/* delheader - delete the index-th (1-based) field called name */
	int (*delheader)(void *io, const char *name, unsigned index);
	/* quarantine - hold the message, with a reason */
	int (*quarantine)(void *io, const char *reason);
};

struct milter_conn;

/* milter_conn_new - a connection served through IO (ops borrowed, io handed back to them);
 * ON_LOOP: the engine is an event loop (the policy was made without MOAT_POLICY_MAY_BLOCK), so end
 * of message pends when it would wait on DNS or sign. NULL when out of memory. */
struct milter_conn *milter_conn_new(struct moat_policy *pol, const struct milter_io *ops, void *io,
    bool on_loop);
/* milter_conn_free - the close event; NULL is a no-op. */
void milter_conn_free(struct milter_conn *c);

/*
 * milter_conn_negotiate - what we want of what the MTA offers: actions (SMFIF_*) F0 and protocol
 * steps (SMFIP_*) F1 in, ours in *pf0 and *pf1. REJECT when the MTA lacks an action we need.
 */
enum milter_step milter_conn_negotiate(struct milter_conn *c, unsigned long f0, unsigned long f1,
    unsigned long *pf0, unsigned long *pf1);
/* the stage lists of macros we want (SMFIF_SETSYMLIST), per SMFIM_* stage; NULL: none */
const char *milter_conn_macro_list(int stage);

/* milter_conn_connect - the client: its name as the MTA passed it, its numeric address or NULL
 * and its port or 0 (then the macros are asked). */
enum milter_step milter_conn_connect(struct milter_conn *c, const char *hostname, const char *addr,
    unsigned port);
enum milter_step milter_conn_helo(struct milter_conn *c, const char *helo);
/* argv: the path as sent ("<a@b>") and the ESMTP parameters, NULL-terminated (borrowed) */
enum milter_step milter_conn_mail(struct milter_conn *c, const char *const *argv);
enum milter_step milter_conn_rcpt(struct milter_conn *c, const char *const *argv);
enum milter_step milter_conn_header(struct milter_conn *c, const char *name, const char *value);
enum milter_step milter_conn_eoh(struct milter_conn *c);
enum milter_step milter_conn_body(struct milter_conn *c, const char *chunk, size_t len);
enum milter_step milter_conn_eom(struct milter_conn *c);
enum milter_step milter_conn_unknown(struct milter_conn *c);
void milter_conn_abort(struct milter_conn *c);

/* milter_conn_work - the blocking part of a PENDING step (DNS, Redis, signing): off the loop,
 * from one thread at a time. */
void milter_conn_work(struct milter_conn *c);
/* milter_conn_finish - the answer of the step that pended, once milter_conn_work is done. */
enum milter_step milter_conn_finish(struct milter_conn *c);

#endif /* MOAT_MILTER_CONN_H */
