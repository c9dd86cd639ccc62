/*
 * hdr_reader.c - the header-section reader (see hdr_reader.h). Owns nothing but its field buffer;
 * hands out the buffered field until the next call.
 */
#include "config.h"

#include <string.h>

#include "hdr_reader.h"

enum {
	R_FIRST = 0, /* start of the message */
	R_BOL, /* start of a line after a complete field */
	R_BOL_CR, /* a CR at the start of a line: the empty line, if an LF follows */
	R_NAME, /* in a field name */
	R_NAME_WSP, /* spaces or tabs after a field name: only more of them or the colon may follow */
	R_VALUE, /* after the colon, or in a continuation line */
	R_CR, /* a CR in a field: the line ends if an LF follows */
	R_EOL, /* a field line ended: a space or tab next continues the field */
	R_END,
	R_FAILED,
};

void
moat_hdr_init(struct moat_hdr_reader *r)
{
	r->state = R_FIRST;
	r->flushed = false;
	r->len = 0;
	r->name_len = 0;
	r->status = MOAT_HDR_OK;
}

/* hdr_fail - refuse the section; the reader repeats this error from now on. */
static void
hdr_fail(struct moat_hdr_reader *r, enum moat_hdr_status st, struct moat_hdr_event *ev)
{
	r->state = R_FAILED;
	r->status = st;
	ev->kind = MOAT_HDR_ERROR;
	ev->status = st;
}

/* hdr_append - add n bytes to the field; false when the field would pass MOAT_HDR_FIELD_MAX. */
static bool
hdr_append(struct moat_hdr_reader *r, const char *p, size_t n)
{
	if (n > sizeof(r->buf) - r->len)
		return false;
	memcpy(r->buf + r->len, p, n);
	r->len += n;
	return true;
}

/* hdr_emit - hand out the buffered field; it is dropped at the next call. */
static void
hdr_emit(struct moat_hdr_reader *r, struct moat_hdr_event *ev)
{
	ev->kind = MOAT_HDR_FIELD;
	ev->field = r->buf;
	ev->len = r->len;
	ev->name_len = r->name_len;
	r->flushed = true;
}

/* hdr_begin_call - the event starts empty; a field handed out last time is dropped. */
static void
hdr_begin_call(struct moat_hdr_reader *r, struct moat_hdr_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	if (r->flushed) {
		r->flushed = false;
		r->len = 0;
		r->name_len = 0;
	}
	if (r->state == R_END)
		ev->kind = MOAT_HDR_END;
	else if (r->state == R_FAILED) {
		ev->kind = MOAT_HDR_ERROR;
		ev->status = r->status;
	}
}

/* is_ftext - RFC 5322 3.6.8: a field name is printable US-ASCII other than the colon. */
static bool
is_ftext(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

/*
 * hdr_name_byte - one byte of a field name, or of the blanks after it: MOAT_HDR_OK (kept), or why
 * the line is refused. RFC 5322 4.5.8 (obs-optional): "From :" is a From field, for Postfix too,
 * and the core matches names with these blanks; anything but more blanks or the colon after
 * them is refused, as is a line without a colon (a name folded before its colon included), an
 * empty name, or a byte no field name has.
 */
static enum moat_hdr_status
hdr_name_byte(struct moat_hdr_reader *r, unsigned char c)
{
	if (c == '\0')
		return MOAT_HDR_NUL;
	if (c == ':' && r->len > 0) {
		r->name_len = r->len;
		r->state = R_VALUE;
	} else if ((c == ' ' || c == '\t') && r->len > 0) {
		r->state = R_NAME_WSP;
	} else if (r->state == R_NAME_WSP) {
		return MOAT_HDR_NAME_WSP;
	} else if (!is_ftext(c)) {
		return MOAT_HDR_NOT_FIELD;
	}
	return hdr_append(r, (const char *)&c, 1) ? MOAT_HDR_OK : MOAT_HDR_FIELD_SIZE;
}

size_t
moat_hdr_feed(struct moat_hdr_reader *r, const char *p, size_t n, struct moat_hdr_event *ev)
{
	size_t i = 0;

	hdr_begin_call(r, ev);
	if (ev->kind != MOAT_HDR_MORE)
		return 0;
	while (i < n) {
		unsigned char c = (unsigned char)p[i];
		size_t run;

		switch (r->state) {
		case R_FIRST:
		case R_BOL:
			if (c == '\r') {
				r->state = R_BOL_CR;
				i++;
			} else if (c == ' ' || c == '\t') {
				/* folding with no field before it (R_BOL never sees one: R_EOL took it) */
				hdr_fail(r, MOAT_HDR_LEADING_WSP, ev);
				return i;
			} else {
				r->state = R_NAME;
			}
			continue;
		case R_BOL_CR:
			if (c != '\n') {
				hdr_fail(r, MOAT_HDR_BARE_CR, ev);
				return i;
			}
			r->state = R_END;
			ev->kind = MOAT_HDR_END;
			ev->empty_line = true;
			return i + 1;
		case R_NAME:
		case R_NAME_WSP: {
			enum moat_hdr_status st = hdr_name_byte(r, c);

			if (st != MOAT_HDR_OK) {
				hdr_fail(r, st, ev);
				return i;
			}
			i++;
			continue;
		}
		case R_VALUE:
			for (run = 0; i + run < n && p[i + run] != '\r' && p[i + run] != '\n' &&
			     p[i + run] != '\0';)
				run++;
			if (!hdr_append(r, p + i, run)) {
				hdr_fail(r, MOAT_HDR_FIELD_SIZE, ev);
				return i;
			}
			i += run;
			if (i == n)
				continue;
			if (p[i] == '\r') {
				r->state = R_CR;
				i++;
				continue;
			}
			hdr_fail(r, p[i] == '\n' ? MOAT_HDR_BARE_LF : MOAT_HDR_NUL, ev);
			return i;
		case R_CR:
			if (c != '\n') {
				hdr_fail(r, MOAT_HDR_BARE_CR, ev);
				return i;
			}
			r->state = R_EOL;
			i++;
			continue;
		case R_EOL:
			if (c == ' ' || c == '\t') {
				/* RFC 5322 2.2.3: folding; the field keeps its CRLF */
				if (!hdr_append(r, "\r\n", 2)) {
					hdr_fail(r, MOAT_HDR_FIELD_SIZE, ev);
					return i;
				}
				r->state = R_VALUE;
				continue;
			}
			hdr_emit(r, ev);
			r->state = R_BOL;
			return i;
		default:
			return i;
		}
	}
	return i;
}

void
moat_hdr_finish(struct moat_hdr_reader *r, struct moat_hdr_event *ev)
{
	hdr_begin_call(r, ev);
	if (ev->kind != MOAT_HDR_MORE)
		return;
	switch (r->state) {
	case R_FIRST:
	case R_BOL:
		/* an empty message, or fields up to the end: a header section without a body */
		r->state = R_END;
		ev->kind = MOAT_HDR_END;
		break;
	case R_VALUE:
	case R_EOL:
		hdr_emit(r, ev);
		r->state = R_BOL;
		break;
	case R_NAME:
		hdr_fail(r, MOAT_HDR_NOT_FIELD, ev);
		break;
	case R_NAME_WSP:
		hdr_fail(r, MOAT_HDR_NAME_WSP, ev);
		break;
	default:
		hdr_fail(r, MOAT_HDR_BARE_CR, ev);
		break;
	}
}

const char *
moat_hdr_status_text(enum moat_hdr_status st)
{
	switch (st) {
	case MOAT_HDR_LEADING_WSP:
		return "header section starts with whitespace";
	case MOAT_HDR_NOT_FIELD:
		return "header line is neither a field nor a continuation";
	case MOAT_HDR_NAME_WSP:
		return "whitespace inside a header field name";
	case MOAT_HDR_NUL:
		return "NUL in the header section";
	case MOAT_HDR_BARE_CR:
		return "bare CR in the header section";
	case MOAT_HDR_BARE_LF:
		return "bare LF in the header section";
	case MOAT_HDR_FIELD_SIZE:
		return "header field too long";
	default:
		return "";
	}
}

void
moat_hdr_verdict(const struct moat_conf *conf, enum moat_hdr_status st, struct moat_verdict *v)
{
	if (st == MOAT_HDR_FIELD_SIZE) {
		moat_verdict_set(v, MOAT_REJECT, 552, "5.3.4", "header_field_size",
		    "Message header field too long");
		return;
	}
	/* RFC 3463 3.7: X.6.0, other or undefined media error */
	if (conf->header_ambiguous_action == MOAT_HDR_ACT_TEMPFAIL)
		moat_verdict_set(v, MOAT_TEMPFAIL, 451, "4.6.0", "header_ambiguous",
		    "Message header refused: %s", moat_hdr_status_text(st));
	else
		moat_verdict_set(v, MOAT_REJECT, 550, "5.6.0", "header_ambiguous",
		    "Message header refused: %s", moat_hdr_status_text(st));
}
