/*
 * log.c - event log lines to syslog (LOG_MAIL) or stderr.
 *
 * The only process-wide state in the core: where lines go. It is set once at start-up (and again
 * on reload, from the loop/main thread); moat_log itself is safe from any thread.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"

#define LOG_LINE_MAX 2048

static struct {
	char progname[32];
	int target;
	bool verbose;
} log_state = { "mxmoat", MOAT_LOG_STDERR, false };

void
moat_log_open(const char *progname, int target, bool verbose)
{
	snprintf(log_state.progname, sizeof(log_state.progname), "%s", progname);
	log_state.target = target;
	log_state.verbose = verbose;
	if (target == MOAT_LOG_SYSLOG)
		openlog(log_state.progname, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
moat_log(int priority, const char *sid, const char *event, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	size_t off;
	va_list ap;
	int n;

	if (priority == LOG_DEBUG && !log_state.verbose)
		return;
	n = snprintf(line, sizeof(line), "%s %s ", sid ? sid : "-", event);
	off = n < 0 ? 0 : (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	va_start(ap, fmt);
	vsnprintf(line + off, sizeof(line) - off, fmt, ap);
	va_end(ap);
	if (log_state.target == MOAT_LOG_SYSLOG) {
		syslog(priority, "%s", line);
	} else {
		/* One fprintf per line so lines from threads do not interleave. */
		fprintf(stderr, "%s[%ld]: %s\n", log_state.progname, (long)getpid(), line);
	}
}

char *
moat_log_escape(const char *in, size_t len, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (outlen == 0)
		return out;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		size_t need = (c < 0x20 || c >= 0x7f || c == '\\' || c == '"') ? 4 : 1;

		if (o + need + 1 > outlen) {
			/* Mark the cut so a truncated value is never mistaken for the whole. */
			if (outlen >= 4) {
				o = o + 4 > outlen ? outlen - 4 : o;
				memcpy(out + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (need == 1) {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return out;
}
