/*
 * proxy_inbound.h - the PROXY protocol header (v1 text, v2 binary) a load balancer sends before
 * any SMTP byte, read only from peers listed in proxy_inbound_proxy_networks. A bounded, stateless
 * parser: call it with every byte received so far; it never reads past n and never trusts a
 * length it has not checked against n and PX_PIN_MAX.
 */
#ifndef PX_PROXY_INBOUND_H
#define PX_PROXY_INBOUND_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy_proto.h"

/* Longest header accepted: a v2 block (addresses and TLVs) past this is refused, not skipped. */
#define PX_PIN_MAX 2048
#define PX_PIN_ADDR_MAX 46 /* INET6_ADDRSTRLEN */

enum px_pin_status {
	PX_PIN_NEED = 0,
	PX_PIN_DONE,
	PX_PIN_BAD
};

struct px_pin {
	int version; /* 1 or 2 */
	bool local; /* v2 LOCAL or v1 UNKNOWN: keep the connection's own addresses */
	char src[PX_PIN_ADDR_MAX]; /* the real client (numeric), when !local */
	char dst[PX_PIN_ADDR_MAX]; /* the address the client connected to, when !local */
	unsigned sport, dport;
	size_t len; /* header bytes: what follows is SMTP (or TLS) */
};

/*
 * px_pin_parse - the header at the start of p[0..n). DONE: out is filled and out->len bytes are
 * the header; NEED: a valid prefix, read more (n < PX_PIN_MAX always holds then); BAD: not a
 * header or a malformed one, *why names the fault (a static string).
 */
enum px_pin_status px_pin_parse(const char *p, size_t n, struct px_pin *out, const char **why);

#endif /* PX_PROXY_INBOUND_H */
