/*
 * null_milter.c - a libmilter milter that does no work, the floor of bench/milter -F: what a
 * milter costs Postfix before it checks anything. Built by bench/milter itself (not installed)
 * with milter/interpose.c and milter/readahead.c, so its socket I/O is mxmoat-milter's own (one
 * read per burst of packets, TCP_NODELAY and TCP_QUICKACK on inet sockets) and the difference
 * between it and mxmoat-milter is mxmoat's work alone.
 *
 *   null_milter all|connect SOCKET      SOCKET as libmilter takes it: unix:PATH or inet:PORT@HOST
 *
 * all: the protocol mxmoat-milter negotiates when verifying (milter/conn.c), with the same
 * replies: the same actions, the same macro lists, DATA not sent, no reply to HELO, header
 * fields, end of header and body chunks, CONTINUE at connect, MAIL, RCPT and unknown commands,
 * and at end of message one Authentication-Results field inserted at the top and CONTINUE. The
 * same rounds and packets as mxmoat-milter verifying, and no work: the floor of any milter that
 * needs what mxmoat needs.
 * connect: every step that can be negotiated away is, no action is asked for, and the answer at
 * connect is ACCEPT, after which the MTA sends this milter nothing more for the session: one round
 * per session (the connect macros the MTA sends by default and the connect command), the cheapest
 * milter Postfix can have.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <libmilter/mfapi.h>

/* What mxmoat-milter asks for and answers, as milter/conn.c does (milter_conn_negotiate). */
#define ALL_ACTIONS (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE)
#define ALL_NOREPLY (SMFIP_NR_HELO | SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY)
static const char *const all_macros[] = {
	[SMFIM_CONNECT] = "j {daemon_name} {daemon_addr} {client_addr} {client_port} {client_name}",
	[SMFIM_HELO] = "{tls_version} {cipher} {cipher_bits}",
	[SMFIM_ENVFROM] = "i {auth_authen} {tls_version} {cipher} {cipher_bits}",
	[SMFIM_EOM] = "i {msg_size}",
};
/* Every step but connect, for the connect mode. */
#define CONNECT_ONLY \
	(SMFIP_NOHELO | SMFIP_NOMAIL | SMFIP_NORCPT | SMFIP_NOBODY | SMFIP_NOHDRS | SMFIP_NOEOH | \
	    SMFIP_NOUNKNOWN | SMFIP_NODATA)
/* About as long as mxmoat-milter's field for this message, so the MTA's edit costs the same. */
static char authres[] = " mx.mxmoat.test; spf=pass smtp.mailfrom=bench.test;\r\n\tdkim=pass "
			"header.d=bench.test header.s=ext header.b=AbCdEfGh;\r\n\tdmarc=pass "
			"(p=reject) header.from=bench.test";

static bool all_steps;

/* null_negotiate - the mode's actions, protocol steps and macro lists, of what the MTA offers */
static sfsistat
null_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2, unsigned long f3,
    unsigned long *pf0, unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	(void)f2;
	(void)f3;
	*pf2 = 0;
	*pf3 = 0;
	if (!all_steps) {
		*pf0 = 0;
		*pf1 = f1 & CONNECT_ONLY;
		return SMFIS_CONTINUE;
	}
	if ((f0 & ALL_ACTIONS) != ALL_ACTIONS)
		return SMFIS_REJECT;
	*pf0 = ALL_ACTIONS | (f0 & SMFIF_SETSYMLIST);
	*pf1 = f1 & (SMFIP_NODATA | ALL_NOREPLY | SMFIP_HDR_LEADSPC);
	/* the field's value for this connection: with its leading space under SMFIP_HDR_LEADSPC */
	(void)smfi_setpriv(ctx, (*pf1 & SMFIP_HDR_LEADSPC) ? authres : authres + 1);
	if (*pf0 & SMFIF_SETSYMLIST)
		for (size_t i = 0; i < sizeof(all_macros) / sizeof(all_macros[0]); i++)
			if (all_macros[i] != NULL)
				(void)smfi_setsymlist(ctx, (int)i, (char *)all_macros[i]);
	return SMFIS_CONTINUE;
}

static sfsistat
null_connect(SMFICTX *ctx, char *host, struct sockaddr *sa)
{
	(void)ctx;
	(void)host;
	(void)sa;
	return all_steps ? SMFIS_CONTINUE : SMFIS_ACCEPT;
}

/* null_continue - MAIL and RCPT (all mode) */
static sfsistat
null_continue(SMFICTX *ctx, char **argv)
{
	(void)ctx;
	(void)argv;
	return SMFIS_CONTINUE;
}

static sfsistat
null_unknown(SMFICTX *ctx, const char *cmd)
{
	(void)ctx;
	(void)cmd;
	return SMFIS_CONTINUE;
}

/* HELO, header fields, end of header and body chunks: no reply (all mode: SMFIP_NR_*) */
static sfsistat
null_helo(SMFICTX *ctx, char *helo)
{
	(void)ctx;
	(void)helo;
	return SMFIS_NOREPLY;
}

static sfsistat
null_header(SMFICTX *ctx, char *name, char *value)
{
	(void)ctx;
	(void)name;
	(void)value;
	return SMFIS_NOREPLY;
}

static sfsistat
null_eoh(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_NOREPLY;
}

static sfsistat
null_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	(void)ctx;
	(void)chunk;
	(void)len;
	return SMFIS_NOREPLY;
}

static sfsistat
null_eom(SMFICTX *ctx)
{
	return smfi_insheader(ctx, 0, (char *)"Authentication-Results", smfi_getpriv(ctx)) ==
		MI_SUCCESS
	    ? SMFIS_CONTINUE
	    : SMFIS_TEMPFAIL;
}

int
main(int argc, char **argv)
{
	struct smfiDesc desc = {
		.xxfi_name = (char *)"null",
		.xxfi_version = SMFI_VERSION,
		.xxfi_flags = ALL_ACTIONS | SMFIF_SETSYMLIST,
		.xxfi_connect = null_connect,
		.xxfi_helo = null_helo,
		.xxfi_envfrom = null_continue,
		.xxfi_envrcpt = null_continue,
		.xxfi_header = null_header,
		.xxfi_eoh = null_eoh,
		.xxfi_body = null_body,
		.xxfi_eom = null_eom,
		.xxfi_unknown = null_unknown,
		.xxfi_negotiate = null_negotiate,
	};

	if (argc != 3 || (strcmp(argv[1], "all") != 0 && strcmp(argv[1], "connect") != 0)) {
		fprintf(stderr, "usage: %s all|connect SOCKET\n", argv[0]);
		return 2;
	}
	all_steps = strcmp(argv[1], "all") == 0;
	/* mxmoat-milter's backlog (milter_backlog's default) and no stale socket in the way */
	if (smfi_register(desc) != MI_SUCCESS || smfi_setconn(argv[2]) != MI_SUCCESS ||
	    smfi_setbacklog(128) != MI_SUCCESS || smfi_opensocket(true) != MI_SUCCESS) {
		fprintf(stderr, "%s: cannot listen on %s\n", argv[0], argv[2]);
		return 1;
	}
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
