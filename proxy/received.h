/*
 * received.h - the Received header field mxmoat-proxy adds at the top of every message it relays,
 * in Postfix's layout (RFC 5321 4.4, RFC 3848 protocol names), with the TLS facts of the client
 * leg: "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))". It depends on the
 * session only, never on the body, so it goes first in the data stream in streaming and holding
 * mode alike. Pure formatting: no I/O, owns nothing.
 */
#ifndef PX_RECEIVED_H
#define PX_RECEIVED_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "policy.h"

#define PX_RECEIVED_MAX 2048 /* the longest field px_received_format writes, CRLFs included */

struct px_received {
	const char *helo; /* as the client sent it (neutered here); NULL or "": none */
	const char *name; /* verified reverse DNS name; NULL or "": "unknown" */
	const char *addr; /* numeric client address (IPv4 or IPv6) */
	const char *by; /* our host name */
	const char *id; /* our id for this session, for the logs */
	bool esmtp; /* EHLO (ESMTP) or HELO (SMTP) */
	const struct moat_tls_info *tls; /* the client leg; NULL or !active: plaintext */
	bool client_cert_requested; /* tls_request_client_cert */
	time_t when; /* arrival, written in local time */
};

/*
 * px_received_format - "Received: ...\r\n" with its continuation lines folded by CRLF TAB, into
 * out (len bytes). Returns the length written (not NUL-terminated beyond it), or 0 if it does not fit.
 */
size_t px_received_format(char *out, size_t len, const struct px_received *r);

#endif /* PX_RECEIVED_H */
