/*
 * msg_feed.h - a whole message held in memory, through the core's header reader (hdr_reader.h)
 * to the authentication engine and the ARC verifier, as the check table feeds them while a
 * message streams. mxmoat-check runs it offline; tests/fuzz/fuzz_hdr_reader.c holds the proxy's
 * reading of the same bytes against it.
 */
#ifndef MOAT_MSG_FEED_H
#define MOAT_MSG_FEED_H

#include <stddef.h>

#include "arc_verify.h"
#include "auth.h"
#include "conf.h"
#include "policy.h"

/*
 * moat_msg_feed - msg[0..len) (CRLF line ends) as header fields, end of header and body to AM
 * and to ARC (NULL: no ARC verifier). 0, or -1 with *v the refusal when the reader refuses the
 * header section (nothing is then checked: the daemons refuse such a message) or memory is short.
 */
int moat_msg_feed(const struct moat_conf *conf, struct moat_auth_msg *am, struct moat_arc_msg *arc,
    const char *msg, size_t len, struct moat_verdict *v);

#endif /* MOAT_MSG_FEED_H */
