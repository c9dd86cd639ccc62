/*
 * sim_mta.c - the replies of a simulated backend MTA (see sim_mta.h).
 */
#include "config.h"

#include <string.h>

#include "sim_mta.h"

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
		return "235 2.7.0 Authentication successful\r\n";
	if (len >= 4 && strncmp(line, "MAIL", 4) == 0)
		return "250 2.1.0 Ok\r\n";
	if (len >= 4 && strncmp(line, "RCPT", 4) == 0)
		return "250 2.1.5 Ok\r\n";
	return "250 2.0.0 Ok\r\n";
}
