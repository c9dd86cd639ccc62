/*
 * fuzz_dsn_param.c - one ESMTP parameter token of MAIL or RCPT through px_dsn_param
 * (proxy/smtp_parse.c), the check that decides which DSN parameters (RFC 3461) the proxy relays
 * to the backend verbatim. Bit 0 of byte 0 chooses RCPT (1) or MAIL (0); the rest is the token,
 * in a buffer of exactly its length so a read past it is an ASan report. Beyond the sanitizers:
 * the answer is one of the command's own parameters, -1 or 0; an accepted token is printable
 * ASCII without space or '=' after the first (nothing that could end or extend the command line
 * it is copied into), within the RFC's bounds; and the parameter name is case-insensitive.
 */
#include "config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"

/* accepted_shape - what every token px_dsn_param accepts must look like. */
static void
accepted_shape(const char *tok, size_t len, int bit)
{
	const char *eq = memchr(tok, '=', len);
	size_t vl;

	if (eq == NULL)
		abort(); /* every DSN parameter has a value */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)tok[i] < 33 || (unsigned char)tok[i] > 126 ||
		    (tok[i] == '=' && tok + i != eq))
			abort();
	vl = len - (size_t)(eq - tok) - 1;
	if ((bit == PX_DSN_ENVID && vl > 100) || (bit == PX_DSN_ORCPT && vl > 500) || vl == 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool rcpt;
	size_t len;
	char *tok, *flip;
	int bit, again;

	if (size < 1)
		return 0;
	rcpt = (data[0] & 1) != 0;
	len = size - 1;
	if ((tok = malloc(len + 1)) == NULL || (flip = malloc(len + 1)) == NULL) {
		free(tok);
		return 0;
	}
	memcpy(tok, data + 1, len);
	bit = px_dsn_param(tok, len, rcpt);
	if (rcpt ? (bit != 0 && bit != -1 && bit != PX_DSN_NOTIFY && bit != PX_DSN_ORCPT)
		 : (bit != 0 && bit != -1 && bit != PX_DSN_RET && bit != PX_DSN_ENVID))
		abort();
	if (bit > 0)
		accepted_shape(tok, len, bit);
	/* the name (up to '=') in the other case: the same answer */
	memcpy(flip, tok, len);
	for (size_t i = 0; i < len && flip[i] != '='; i++)
		flip[i] = (char)(islower((unsigned char)flip[i]) ? toupper((unsigned char)flip[i])
								 : tolower((unsigned char)flip[i]));
	again = px_dsn_param(flip, len, rcpt);
	if (again != bit)
		abort();
	free(flip);
	free(tok);
	return 0;
}
