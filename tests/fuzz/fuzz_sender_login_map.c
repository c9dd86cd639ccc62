/*
 * fuzz_sender_login_map.c - libFuzzer target: the sender_login_map parser (sender_login.c).
 *
 * Input: a map file. Invariants: a refusal names a line ("m:LINE: ...") and a parse has at least
 * one login; every lookup on a parsed map answers without a crash, and a login the map does not
 * hold is allowed nothing; never a crash or a leak.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sender_login.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const probes[][3] = { { "alice", "alice", "a.test" },
		{ "ALICE", "x", "A.TEST" }, { "bob", "bob", "b.test" }, { "", "", "" } };
	char err[256] = "";
	struct moat_sender_login_map *m =
	    moat_sender_login_map_parse((const char *)data, size, "m", err, sizeof(err));

	if (m == NULL) {
		if (strncmp(err, "m:", 2) != 0)
			abort();
		return 0;
	}
	if (moat_sender_login_map_count(m) == 0)
		abort();
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		(void)moat_sender_login_map_allows(m, probes[i][0], probes[i][1], probes[i][2]);
	if (moat_sender_login_map_allows(m, "\x01not-a-login", "alice", "a.test"))
		abort();
	moat_sender_login_map_free(m);
	return 0;
}
