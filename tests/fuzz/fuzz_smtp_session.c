/*
 * fuzz_smtp_session.c - arbitrary client bytes into the proxy's session logic (proxy/smtp_session.c),
 * with a simulated backend (tests/helpers/sim_session.c, sim_mta.c) that answers every command it
 * is sent. Checks, beyond the sanitizers, that whatever the client sends the backend stream is
 * canonical: no bare CR or LF, no NUL (sim_session.c aborts), and every message ends with exactly
 * one "." line; and that the backend never receives more messages than the client's bytes hold
 * real ends of data (<CR><LF>.<CR><LF>, the DATA line's CRLF counted): a fake end of data, in
 * either proxy_bare_newline mode and however the reads cut it, never makes a message of its own.
 *
 * Input: byte 0 picks options (bit 0: proxy_bare_newline=normalize, bit 1: XCLIENT, bit 2:
 * proxy_backend_connect=accept, bits 3-7: read chunk size - 1); the rest is what the client sends,
 * delivered in chunks of that size.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "policy.h"
#include "sim_session.h"

static struct moat_policy *pols[8];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t chunk;
	unsigned opt;

	if (size < 1)
		return 0;
	opt = data[0] & 7;
	chunk = (size_t)(data[0] >> 3) + 1;
	if (pols[opt] == NULL) {
		struct moat_conf_override ov[] = {
			{ "proxy_bare_newline", (opt & 1) ? "normalize" : "reject" },
			{ "proxy_backend_pass", (opt & 2) ? "xclient" : "none" },
			{ "proxy_backend_connect", (opt & 4) ? "accept" : "mail" },
			{ "limit_message_size", "4k" },
			{ "limit_line_length", "512" },
			{ "log_target", "stderr" },
		};
		pols[opt] = sim_session_policy(ov, sizeof(ov) / sizeof(ov[0]));
	}
	sim_session_client_run(pols[opt], (const char *)data + 1, size - 1, chunk);
	return 0;
}
