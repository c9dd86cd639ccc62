/*
 * checks_int.h - what the files of the check table share: the rows defined outside checks.c
 * (which orders them in moat__checks[], session_int.h) and two helpers. Not for front-ends.
 */
#ifndef MOAT_CHECKS_INT_H
#define MOAT_CHECKS_INT_H

#include <stddef.h>

#include "session_int.h"

struct moat_auth_engine;

/* checks_auth.c */
extern const struct moat__check moat__check_spf, moat__check_arc, moat__check_auth;
/* checks_envelope.c */
extern const struct moat__check moat__check_dnsbl, moat__check_iprev, moat__check_greylist;
/* checks_message.c */
extern const struct moat__check moat__check_sender_login, moat__check_dkim_sign, moat__check_scan,
    moat__check_scan_verdict;

/* moat__session_stick - remember a streaming-phase verdict (the first one wins) and return it in
 * v (checks.c). */
void moat__session_stick(struct moat_session *s, struct moat_verdict *v);

/* moat__session_auth_engine - the daemon's engine, made at its first use (an inbound message, a
 * DNS list lookup); NULL + err (checks_auth.c). */
struct moat_auth_engine *moat__session_auth_engine(struct moat_session *s, char *err,
    size_t errlen);

#endif /* MOAT_CHECKS_INT_H */
