/*
 * callbacks.c - mxmoat-milter's libmilter engine (milter_engine = libmilter): libmilter's
 * callbacks hand each step to the connection (conn.c) and carry its answer back as SMFIS_*,
 * smfi_setreply, smfi_insheader, smfi_chgheader and smfi_quarantine.
 *
 * Per-connection state (struct milter_conn) is created in xxfi_negotiate (or xxfi_connect, for an
 * MTA that negotiated nothing), owned by the libmilter context (smfi_setpriv) and freed in
 * xxfi_close, which libmilter calls on every path, also when connect was never seen (then the
 * private pointer is NULL).
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>

#include "callbacks.h"
#include "conn.h"
#include "log.h"

static struct moat_policy *milter_policy; /* set once before smfi_main, then only read */

static const char *
io_macro(void *io, const char *name)
{
	return smfi_getsymval(io, (char *)name);
}

static int
io_reply(void *io, const char *code, const char *status, const char *text)
{
	return smfi_setreply(io, (char *)code, (char *)status, (char *)text) == MI_SUCCESS ? 0 : -1;
}

static int
io_insheader(void *io, const char *name, const char *value)
{
	return smfi_insheader(io, 0, (char *)name, (char *)value) == MI_SUCCESS ? 0 : -1;
}

static int
io_delheader(void *io, const char *name, unsigned index)
{
	return smfi_chgheader(io, (char *)name, (int)index, NULL) == MI_SUCCESS ? 0 : -1;
}

static int
io_quarantine(void *io, const char *reason)
{
	return smfi_quarantine(io, (char *)reason) == MI_SUCCESS ? 0 : -1;
}

static const struct milter_io libmilter_io = {
	.macro = io_macro,
	.reply = io_reply,
	.insheader = io_insheader,
	.delheader = io_delheader,
	.quarantine = io_quarantine,
};

/* sfsis - a step's answer for libmilter (a blocking policy never pends) */
static sfsistat
sfsis(enum milter_step st)
{
	switch (st) {
	case MILTER_STEP_CONTINUE:
		return SMFIS_CONTINUE;
	case MILTER_STEP_ACCEPT:
		return SMFIS_ACCEPT;
	case MILTER_STEP_REJECT:
		return SMFIS_REJECT;
	case MILTER_STEP_DISCARD:
		return SMFIS_DISCARD;
	case MILTER_STEP_NOREPLY:
		return SMFIS_NOREPLY;
	case MILTER_STEP_TEMPFAIL:
	case MILTER_STEP_PENDING:
		break;
	}
	return SMFIS_TEMPFAIL;
}

/* conn_make - the connection's state, kept in the context. NULL when out of memory. */
static struct milter_conn *
conn_make(SMFICTX *ctx)
{
	struct milter_conn *c = milter_conn_new(milter_policy, &libmilter_io, ctx, false);

	if (c != NULL && smfi_setpriv(ctx, c) != MI_SUCCESS) {
		milter_conn_free(c);
		c = NULL;
	}
	return c;
}

static sfsistat
xxfi_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2, unsigned long f3,
    unsigned long *pf0, unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	/*
	 * The connection's state starts here, to carry what was negotiated to the later callbacks.
	 * Not in thread-local storage: Debian's libmilter hands a connection's commands to any
	 * thread of its worker pool, so xxfi_connect may run in another thread than this (under
	 * load it did: the MTA then got replies at steps it had said need none, and header values
	 * without their leading space).
	 */
	struct milter_conn *c = conn_make(ctx);
	enum milter_step st;

	(void)f2;
	(void)f3;
	if (c == NULL) {
		moat_log(LOG_ERR, NULL, "negotiate", "out of memory");
		return SMFIS_TEMPFAIL;
	}
	if ((st = milter_conn_negotiate(c, f0, f1, pf0, pf1)) != MILTER_STEP_CONTINUE)
		return sfsis(st);
	*pf2 = 0;
	*pf3 = 0;
	if (*pf0 & SMFIF_SETSYMLIST)
		for (int i = SMFIM_FIRST; i <= SMFIM_LAST; i++)
			if (milter_conn_macro_list(i) != NULL)
				(void)smfi_setsymlist(ctx, i, (char *)milter_conn_macro_list(i));
	return SMFIS_CONTINUE;
}

static sfsistat
xxfi_connect(SMFICTX *ctx, char *hostname, struct sockaddr *sa)
{
	struct milter_conn *c = smfi_getpriv(ctx);
	char addr[INET6_ADDRSTRLEN + 1] = "";
	unsigned port = 0;

	/* an MTA that negotiated nothing gets the defaults: no NR steps, values without their
	 * leading space */
	if (c == NULL && (c = conn_make(ctx)) == NULL)
		return SMFIS_TEMPFAIL;
	if (sa != NULL && sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
		port = ntohs(sin->sin_port);
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
		port = ntohs(sin6->sin6_port);
	}
	return sfsis(milter_conn_connect(c, hostname, addr, port));
}

/* conn_get - the connection's state, or NULL when it could not be made */
static struct milter_conn *
conn_get(SMFICTX *ctx)
{
	return smfi_getpriv(ctx);
}

static sfsistat
xxfi_helo(SMFICTX *ctx, char *helo)
{
	struct milter_conn *c = conn_get(ctx);

	return c != NULL ? sfsis(milter_conn_helo(c, helo)) : SMFIS_TEMPFAIL;
}

static sfsistat
xxfi_envfrom(SMFICTX *ctx, char **argv)
{
	struct milter_conn *c = conn_get(ctx);

	return c != NULL ? sfsis(milter_conn_mail(c, (const char *const *)argv)) : SMFIS_TEMPFAIL;
}

static sfsistat
xxfi_envrcpt(SMFICTX *ctx, char **argv)
{
	struct milter_conn *c = conn_get(ctx);

	return c != NULL ? sfsis(milter_conn_rcpt(c, (const char *const *)argv)) : SMFIS_TEMPFAIL;
}

static sfsistat
xxfi_header(SMFICTX *ctx, char *name, char *value)
{
	struct milter_conn *c = conn_get(ctx);

	return c != NULL ? sfsis(milter_conn_header(c, name, value)) : SMFIS_TEMPFAIL;
}

static sfsistat
xxfi_eoh(SMFICTX *ctx)
{
	struct milter_conn *c = conn_get(ctx);

	return c != NULL ? sfsis(milter_conn_eoh(c)) : SMFIS_TEMPFAIL;
}

static sfsistat
xxfi_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	struct milter_conn *c = conn_get(ctx);

	return c != NULL ? sfsis(milter_conn_body(c, (const char *)chunk, len)) : SMFIS_TEMPFAIL;
}

static sfsistat
xxfi_eom(SMFICTX *ctx)
{
	struct milter_conn *c = conn_get(ctx);

	return c != NULL ? sfsis(milter_conn_eom(c)) : SMFIS_TEMPFAIL;
}

static sfsistat
xxfi_unknown(SMFICTX *ctx, const char *cmd)
{
	struct milter_conn *c = conn_get(ctx);

	(void)cmd;
	return c != NULL ? sfsis(milter_conn_unknown(c)) : SMFIS_CONTINUE;
}

static sfsistat
xxfi_abort(SMFICTX *ctx)
{
	struct milter_conn *c = conn_get(ctx);

	if (c != NULL)
		milter_conn_abort(c);
	return SMFIS_CONTINUE;
}

static sfsistat
xxfi_close(SMFICTX *ctx)
{
	struct milter_conn *c = conn_get(ctx);

	if (c == NULL)
		return SMFIS_CONTINUE; /* close may be the only callback: nothing to free */
	(void)smfi_setpriv(ctx, NULL);
	milter_conn_free(c);
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
