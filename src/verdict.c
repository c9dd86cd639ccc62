/*
 * verdict.c - building, combining and formatting policy verdicts.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "policy.h"

void
moat_verdict_continue(struct moat_verdict *v)
{
	memset(v, 0, sizeof(*v));
	v->action = MOAT_CONTINUE;
	v->reason = "";
}

/* verdict_clean_text - reply text must be one printable line: no CR, LF or control bytes. */
static void
verdict_clean_text(char *text)
{
	for (unsigned char *p = (unsigned char *)text; *p != '\0'; p++)
		if (*p < 0x20 || *p >= 0x7f)
			*p = '?';
}

void
moat_verdict_set(struct moat_verdict *v, enum moat_action action, unsigned code, const char *status,
    const char *reason, const char *fmt, ...)
{
	va_list ap;

	moat_verdict_continue(v);
	v->action = action;
	v->code = code;
	snprintf(v->status, sizeof(v->status), "%s", status ? status : "");
	v->reason = reason ? reason : "";
	va_start(ap, fmt);
	vsnprintf(v->text, sizeof(v->text), fmt, ap);
	va_end(ap);
	verdict_clean_text(v->text);
}

/*
 * moat_verdict_combine - the more severe verdict wins; on a tie the first one stands, so the
 * earliest reason is the one reported. A close request survives either way.
 */
void
moat_verdict_combine(struct moat_verdict *dst, const struct moat_verdict *src)
{
	bool close = dst->close || src->close;

	if (src->action > dst->action)
		*dst = *src;
	dst->close = close;
}

const char *
moat_action_name(enum moat_action a)
{
	switch (a) {
	case MOAT_CONTINUE:
		return "continue";
	case MOAT_ACCEPT:
		return "accept";
	case MOAT_QUARANTINE:
		return "quarantine";
	case MOAT_DISCARD:
		return "discard";
	case MOAT_TEMPFAIL:
		return "tempfail";
	case MOAT_REJECT:
		return "reject";
	}
	return "unknown";
}

size_t
moat_verdict_format_reply(const struct moat_verdict *v, char *out, size_t len)
{
	int n;

	if (v->code < 200 || v->code > 599)
		return 0;
	if (v->status[0] != '\0')
		n = snprintf(out, len, "%u %s %s\r\n", v->code, v->status, v->text);
	else
		n = snprintf(out, len, "%u %s\r\n", v->code, v->text);
	if (n < 0 || (size_t)n >= len)
		return 0;
	return (size_t)n;
}
