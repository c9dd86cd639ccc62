/*
 * sim_mta.c - the replies of a simulated backend MTA (see sim_mta.h).
 */
#include "config.h"

#include <string.h>

#include <openssl/evp.h>

#include "sim_mta.h"

/* sim_mta_wrong - is LINE "AUTH PLAIN <base64>" whose credentials end in the password "wrong"? */
static bool
sim_mta_wrong(const char *line, size_t len)
{
	static const char wrong[] = "\0wrong";
	const char *b64 = line + 11;
	unsigned char out[512];
	size_t n;
	int got;

	if (len < 11 || strncmp(line, "AUTH PLAIN ", 11) != 0)
		return false;
	for (n = len - 11; n > 0 && (b64[n - 1] == '\r' || b64[n - 1] == '\n'); n--)
		;
	if (n == 0 || n % 4 != 0 || n / 4 * 3 > sizeof(out))
		return false;
	got = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
	for (; got > 0 && n > 0 && b64[n - 1] == '='; n--)
		got--; /* EVP_DecodeBlock counts the padding as bytes */
	return got >= (int)sizeof(wrong) - 1 &&
	    memcmp(out + got - (sizeof(wrong) - 1), wrong, sizeof(wrong) - 1) == 0;
}

const char *
sim_mta_answer(struct sim_mta *m, const char *line, size_t len)
{
	if (m->in_data) {
		if (len == 3 && memcmp(line, ".\r\n", 3) == 0) {
			m->in_data = false;
			return "250 2.0.0 Ok: queued as SINK\r\n";
		}
		return NULL;
	}
	if (len >= 4 && strncmp(line, "EHLO", 4) == 0)
		return "250-mx.sink\r\n250-PIPELINING\r\n250-XCLIENT ADDR NAME HELO PROTO PORT\r\n"
		       "250-AUTH PLAIN LOGIN\r\n250-SMTPUTF8\r\n250 8BITMIME\r\n";
	if (len >= 4 && strncmp(line, "HELO", 4) == 0)
		return "250 mx.sink\r\n";
	if (len >= 7 && strncmp(line, "XCLIENT", 7) == 0)
		return SIM_MTA_GREETING;
	if (len >= 4 && strncmp(line, "DATA", 4) == 0) {
		m->in_data = true;
		return "354 End data with <CR><LF>.<CR><LF>\r\n";
	}
	if (len >= 4 && strncmp(line, "QUIT", 4) == 0)
		return "221 2.0.0 Bye\r\n";
	if (len >= 4 && strncmp(line, "AUTH", 4) == 0)
		return sim_mta_wrong(line, len) ? "535 5.7.8 Error: authentication failed\r\n"
						: "235 2.7.0 Authentication successful\r\n";
	if (len >= 4 && strncmp(line, "MAIL", 4) == 0)
		return "250 2.1.0 Ok\r\n";
	if (len >= 4 && strncmp(line, "RCPT", 4) == 0)
		return "250 2.1.5 Ok\r\n";
	return "250 2.0.0 Ok\r\n";
}
