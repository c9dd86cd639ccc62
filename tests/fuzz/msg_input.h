/*
 * msg_input.h - the input format of the message fuzz targets (fuzz_dkim_verify, fuzz_arc): the
 * first line is the TXT record published at sel._domainkey.example.com, the rest a message (LF
 * or CRLF lines; header fields, a blank line, the body). fuzz_msg_fields splits the header into
 * raw fields as the core's header reader hands them out (continuation lines joined with CRLF,
 * no final CRLF, at most FUZZ_FIELD_MAX bytes kept of one field).
 */
#ifndef MOAT_FUZZ_MSG_INPUT_H
#define MOAT_FUZZ_MSG_INPUT_H

#include <stddef.h>
#include <string.h>

#define FUZZ_FIELD_MAX 16384

/*
 * fuzz_msg_fields - call FIELD(arg, field, len) for each header field in [p, end), using BUF
 * (FUZZ_FIELD_MAX bytes); returns where the body starts.
 */
static inline const char *
fuzz_msg_fields(const char *p, const char *end, char *buf,
    void (*field)(void *arg, const char *f, size_t len), void *arg)
{
	size_t flen = 0;

	while (p < end) {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((e ? e : end) - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len == 0 || (p[0] != ' ' && p[0] != '\t')) {
			if (flen > 0)
				field(arg, buf, flen);
			flen = 0;
		} else if (flen + 2 <= FUZZ_FIELD_MAX) {
			buf[flen++] = '\r';
			buf[flen++] = '\n';
		}
		if (len == 0) {
			p = e ? e + 1 : end;
			return p;
		}
		if (flen + len <= FUZZ_FIELD_MAX) {
			memcpy(buf + flen, p, len);
			flen += len;
		}
		p = e ? e + 1 : end;
	}
	if (flen > 0)
		field(arg, buf, flen);
	return p;
}

#endif /* MOAT_FUZZ_MSG_INPUT_H */
