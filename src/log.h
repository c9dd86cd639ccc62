/*
 * log.h - one line per event, to syslog (LOG_MAIL) or stderr.
 *
 * Line format: "<session-id> <event> key=value ..." (syslog adds "prog[pid]: "; on stderr we add
 * it), or the same fields as one JSON object (moat_log_format). Client-supplied text must go through moat_log_escape before it is logged; secrets are never
 * passed here. Thread-safe.
 */
#ifndef MOAT_LOG_H
#define MOAT_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

/*
 * moat_log_open - program name and target (enum moat_log_target; MOAT_LOG_AUTO must have been
 * resolved by the caller, see moat_cmdline_log_open); verbose enables LOG_DEBUG.
 */
void moat_log_open(const char *progname, int target, bool verbose);

/*
 * moat_log_format - MOAT_LOG_TEXT (the default) or MOAT_LOG_JSON: each line one JSON object with
 * the members prog, pid, level, session, event, then the line's key=value pairs in order, then
 * "msg" with any text after them; every value a string (mxmoat.conf(5), log_format). Set before
 * any thread logs.
 */
void moat_log_format(int format);

/* moat_log - sid may be NULL ("-"); event is a bare word ("connect", "reject", "config"). */
void moat_log(int priority, const char *sid, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * moat_log_escape - copy LEN bytes of untrusted text into OUT as printable ASCII: backslash,
 * quote, control and 8-bit bytes become \xHH; spaces stay. Always NUL-terminates; a result that
 * does not fit ends in "..." . Returns out.
 */
char *moat_log_escape(const char *in, size_t len, char *out, size_t outlen);

#endif /* MOAT_LOG_H */
