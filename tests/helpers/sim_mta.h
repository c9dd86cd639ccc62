/*
 * sim_mta.h - a simulated backend MTA for the programs that drive the proxy's session without
 * sockets (tests/fuzz/fuzz_smtp_session.c, tests/helpers/px_transcript.c): the reply a Postfix
 * smtpd would give to each complete line it receives. It keeps only whether it is inside DATA.
 * Every login succeeds except "AUTH PLAIN" with an initial response whose password is "wrong"
 * (535 5.7.8), so a scenario can fail AUTH.
 */
#ifndef SIM_MTA_H
#define SIM_MTA_H

#include <stdbool.h>
#include <stddef.h>

#define SIM_MTA_GREETING "220 mx.sink ESMTP\r\n"

struct sim_mta {
	bool in_data;
};

/*
 * sim_mta_answer - the reply to LINE (len bytes, its CRLF included): a static string, or NULL for
 * a line of message content. After DATA every line but the final "." is content.
 */
const char *sim_mta_answer(struct sim_mta *m, const char *line, size_t len);

#endif /* SIM_MTA_H */
