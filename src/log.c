/*
 * log.c - event log lines to syslog (LOG_MAIL) or stderr, as key=value text or as JSON.
 *
 * The only process-wide state in the core: where lines go and in which shape. It is set once at
 * start-up, before any thread that logs; moat_log itself is safe from any thread. A JSON line is
 * made from the text line, so both carry the same fields: the text's leading key=value pairs
 * become members of the object, whatever follows them one "msg" member.
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
#define LOG_JSON_MAX (LOG_LINE_MAX * 6 + 512) /* every byte may become \u00XX */

static struct {
	char progname[32];
	int target;
	int format; /* enum moat_log_format */
	bool verbose;
} log_state = { "mxmoat", MOAT_LOG_STDERR, MOAT_LOG_TEXT, false };

static const char *const log_levels[] = { "emerg", "alert", "crit", "err", "warning", "notice",
	"info", "debug" };

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
moat_log_format(int format)
{
	log_state.format = format;
}

/* json_str - S (N bytes) as a JSON string at out+*o; bytes outside printable ASCII as \u00XX. */
static void
json_str(char *out, size_t *o, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	out[(*o)++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			out[(*o)++] = '\\';
			out[(*o)++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			out[(*o)++] = '\\';
			out[(*o)++] = 'u';
			out[(*o)++] = '0';
			out[(*o)++] = '0';
			out[(*o)++] = hex[c >> 4];
			out[(*o)++] = hex[c & 15];
		} else {
			out[(*o)++] = (char)c;
		}
	}
	out[(*o)++] = '"';
}

/* json_member - ,"name":"value" (the buffer is sized for the longest line: LOG_JSON_MAX). */
static void
json_member(char *out, size_t *o, const char *name, size_t nlen, const char *v, size_t vlen)
{
	out[(*o)++] = ',';
	json_str(out, o, name, nlen);
	out[(*o)++] = ':';
	json_str(out, o, v, vlen);
}

/*
 * log_pair - the key=value pair at p: a key of letters, digits and "_.-", then a bare value up to
 * the next space, or a quoted one up to the next quote (client text is escaped, so it holds none).
 * Returns the length of the pair, or 0 when p does not start one.
 */
static size_t
log_pair(const char *p, size_t *klen, const char **v, size_t *vlen)
{
	size_t k = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");
	const char *end;

	if (k == 0 || p[k] != '=')
		return 0;
	*klen = k;
	if (p[k + 1] == '"') {
		if ((end = strchr(p + k + 2, '"')) == NULL || (end[1] != '\0' && end[1] != ' '))
			return 0;
		*v = p + k + 2;
		*vlen = (size_t)(end - *v);
		return (size_t)(end + 1 - p);
	}
	*v = p + k + 1;
	*vlen = strcspn(*v, " ");
	return k + 1 + *vlen;
}

/* log_json - the line's fields as one JSON object into out (LOG_JSON_MAX bytes). */
static void
log_json(char *out, int priority, const char *sid, const char *event, const char *rest)
{
	const char *level = log_levels[priority & 7];
	char pid[24];
	size_t o = 0, klen, vlen, n;
	const char *v;

	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	out[o++] = '{';
	json_str(out, &o, "prog", 4);
	out[o++] = ':';
	json_str(out, &o, log_state.progname, strlen(log_state.progname));
	json_member(out, &o, "pid", 3, pid, strlen(pid));
	json_member(out, &o, "level", 5, level, strlen(level));
	json_member(out, &o, "session", 7, sid ? sid : "-", strlen(sid ? sid : "-"));
	json_member(out, &o, "event", 5, event, strlen(event));
	while (*rest == ' ')
		rest++;
	while ((n = log_pair(rest, &klen, &v, &vlen)) > 0) {
		json_member(out, &o, rest, klen, v, vlen);
		rest += n;
		while (*rest == ' ')
			rest++;
	}
	if (*rest != '\0')
		json_member(out, &o, "msg", 3, rest, strlen(rest));
	out[o++] = '}';
	out[o] = '\0';
}

void
moat_log(int priority, const char *sid, const char *event, const char *fmt, ...)
{
	char line[LOG_LINE_MAX], json[LOG_JSON_MAX];
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
	if (log_state.format == MOAT_LOG_JSON) {
		log_json(json, priority, sid, event, line + off);
		if (log_state.target == MOAT_LOG_SYSLOG)
			syslog(priority, "%s", json);
		else
			fprintf(stderr, "%s\n", json);
		return;
	}
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
