/*
 * packet.h - the milter protocol's packets (Sendmail's libmilter/docs, protocol version 6): a
 * bounded decoder for what the MTA sends and an encoder for the replies mxmoat-milter gives.
 *
 * A packet is a 4-byte length in network order, then that many bytes: one command byte and its
 * data. The decoder trusts nothing it has not checked: the length against a maximum, every string
 * to end with a NUL inside the packet, every count against a fixed bound. What it hands out points
 * into the caller's packet bytes (borrowed: valid as long as they are). Pure: no sockets, no
 * allocation, so every packet type is unit-tested and fuzzed (tests/fuzz/fuzz_milter_packet.c).
 */
#ifndef MOAT_MILTER_PACKET_H
#define MOAT_MILTER_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest packet taken, command byte included: Postfix sends a header field in one packet,
 * and header_size_limit (102400) lets one grow past libmilter's 64 KB. */
#define MILTER_PKT_MAX ((size_t)1024 * 1024)
#define MILTER_ARGS_MAX 64 /* MAIL/RCPT: the path and its ESMTP parameters */
#define MILTER_MACROS_MAX 128 /* name/value pairs in one D packet */
#define MILTER_PROT_VERSION 6u

/* Commands, MTA to filter. */
#define MILTER_C_ABORT 'A'
#define MILTER_C_BODY 'B'
#define MILTER_C_CONNECT 'C'
#define MILTER_C_MACRO 'D'
#define MILTER_C_EOM 'E'
#define MILTER_C_HELO 'H'
#define MILTER_C_QUIT_NC 'K'
#define MILTER_C_HEADER 'L'
#define MILTER_C_MAIL 'M'
#define MILTER_C_EOH 'N'
#define MILTER_C_OPTNEG 'O'
#define MILTER_C_QUIT 'Q'
#define MILTER_C_RCPT 'R'
#define MILTER_C_DATA 'T'
#define MILTER_C_UNKNOWN 'U'

/* Replies and modifications, filter to MTA. */
#define MILTER_R_ADDRCPT '+'
#define MILTER_R_DELRCPT '-'
#define MILTER_R_ACCEPT 'a'
#define MILTER_R_CONTINUE 'c'
#define MILTER_R_DISCARD 'd'
#define MILTER_R_ADDHEADER 'h'
#define MILTER_R_INSHEADER 'i'
#define MILTER_R_CHGHEADER 'm'
#define MILTER_R_PROGRESS 'p'
#define MILTER_R_QUARANTINE 'q'
#define MILTER_R_REJECT 'r'
#define MILTER_R_TEMPFAIL 't'
#define MILTER_R_REPLYCODE 'y'
#define MILTER_R_OPTNEG 'O'

/* Actions (SMFIF_*) and protocol steps (SMFIP_*) of the option negotiation, as libmilter's
 * mfdef.h numbers them. */
#define MILTER_F_ADDHDRS 0x01u
#define MILTER_F_CHGHDRS 0x10u
#define MILTER_F_QUARANTINE 0x20u
#define MILTER_F_SETSYMLIST 0x100u
#define MILTER_P_NOUNKNOWN 0x100u
#define MILTER_P_NODATA 0x200u
#define MILTER_P_NR_HELO 0x2000u
#define MILTER_P_NR_HDR 0x80u
#define MILTER_P_NR_EOH 0x40000u
#define MILTER_P_NR_BODY 0x80000u
#define MILTER_P_HDR_LEADSPC 0x100000u

/* Macro stages of SMFIR_SETSYMLIST (libmilter's SMFIM_*). */
enum milter_stage {
	MILTER_STAGE_CONNECT = 0,
	MILTER_STAGE_HELO,
	MILTER_STAGE_MAIL,
	MILTER_STAGE_RCPT,
	MILTER_STAGE_DATA,
	MILTER_STAGE_EOM,
	MILTER_STAGE_EOH,
	MILTER_STAGE_COUNT
};

enum milter_pkt_rc {
	MILTER_PKT_BAD = -1, /* not a packet we take: close the connection */
	MILTER_PKT_NEED = 0, /* the packet is not complete yet */
	MILTER_PKT_OK = 1,
};

/* One decoded command; pointers into the packet's data. */
struct milter_cmd {
	char cmd;
	union {
		struct {
			uint32_t version, actions, protocol;
		} optneg;
		struct {
			char stage; /* the command these macros go with */
			const char *pairs; /* name NUL value NUL ..., validated */
			size_t len; /* bytes of pairs */
			size_t count; /* pairs */
		} macros;
		struct {
			const char *host;
			char family; /* '4', '6', 'L' (unix socket), 'U' (unknown: no port, addr "") */
			unsigned port;
			const char *addr;
		} connect;
		struct {
			const char *name;
		} helo;
		struct {
			size_t argc; /* 1 or more: argv[0] is the path as sent, "<a@b>" */
			const char *argv[MILTER_ARGS_MAX + 1]; /* NULL-terminated */
		} env; /* MAIL and RCPT */
		struct {
			const char *name, *value;
			size_t value_len;
		} header;
		struct {
			const char *p; /* B, and E (whose data, if any, is a last chunk) */
			size_t len;
		} body;
		struct {
			const char *line;
		} unknown;
	} u;
};

/*
 * milter_pkt_frame - the packet at the start of p[0..n), whose length may be at most max (command
 * byte included; at most MILTER_PKT_MAX): OK with its command, its data (borrowed from p) and
 * *used its size with the length field; NEED when more bytes are needed (*need then says how
 * many the whole packet takes, when its length is known, else 0); BAD for a length of 0 or over
 * max, which is known from the first 4 bytes, before the packet arrives.
 */
enum milter_pkt_rc milter_pkt_frame(const char *p, size_t n, size_t max, char *cmd,
    const char **data, size_t *len, size_t *used, size_t *need);

/*
 * milter_cmd_decode - the data of one command into *out: OK, or BAD for an unknown command, a
 * string without its NUL, a count past its bound, fields missing or left over where the packet
 * type has a fixed layout.
 */
enum milter_pkt_rc milter_cmd_decode(char cmd, const char *data, size_t len,
    struct milter_cmd *out);

/*
 * milter_macro_find - the value of NAME in validated pairs (struct milter_cmd macros), or NULL.
 * Valid as long as the pairs are.
 */
const char *milter_macro_find(const char *pairs, size_t len, const char *name);

/*
 * The encoder: each appends one packet to out[*len..cap) and returns 0, or -1 when it does not fit
 * (then *len is unchanged and nothing was written past it).
 */
/* milter_put_simple - a reply without data: continue, accept, reject, tempfail, discard,
 * progress. */
int milter_put_simple(char *out, size_t *len, size_t cap, char code);
/* milter_put_replycode - "code status text" as the reply (libmilter's smfi_setreply, then
 * SMFIR_REPLYCODE); status and text may be NULL. -1 also for a code that is not 4xx or 5xx or text
 * with CR or LF. */
int milter_put_replycode(char *out, size_t *len, size_t cap, unsigned code, const char *status,
    const char *text);
/* milter_put_replyline - "code status text" as made by milter_put_replycode's rules, sent as
 * SMFIR_REPLYCODE (a line the caller built from checked parts). */
int milter_put_replyline(char *out, size_t *len, size_t cap, const char *line);
/* milter_put_header - add (h: no index), insert (i) or change (m; value "" deletes the index-th
 * occurrence) a header field. */
int milter_put_header(char *out, size_t *len, size_t cap, char op, uint32_t index, const char *name,
    const char *value);
/* milter_put_quarantine - hold the message with a reason. */
int milter_put_quarantine(char *out, size_t *len, size_t cap, const char *reason);
/* milter_put_optneg - the negotiation reply; lists[stage] (may be NULL) the macros wanted at
 * each stage (SMFIF_SETSYMLIST). */
int milter_put_optneg(char *out, size_t *len, size_t cap, uint32_t version, uint32_t actions,
    uint32_t protocol, const char *const lists[MILTER_STAGE_COUNT]);

#endif /* MOAT_MILTER_PACKET_H */
