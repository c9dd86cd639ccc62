/*
 * bdat.c - BDAT (RFC 3030 CHUNKING) on the client leg, offered when proxy_chunking = yes: the
 * command's syntax and size, the chunk's octets read by count, and the replies to its chunks.
 *
 * A BDAT message is always held (txn.c's holding mode): its octets go through the DATA reader
 * (px_data_chunk stuffs them as a DATA client would), so the core sees the same header, body and
 * end-of-message events, and the same bare CR, bare LF and NUL rules apply, as for DATA. After the
 * verdict the backend hears DATA and the message canonical and freshly dot-stuffed, whether it
 * offers CHUNKING or not: a "." line inside a chunk reaches it as "..", never as an end of data.
 *
 * Replies: a chunk that is not LAST gets 250 once its octets are read and their events have run
 * (its own refusal otherwise, and the transaction ends: RFC 3030 2, chunks pipelined after it
 * are read and dropped with 503). The LAST chunk gets the backend's own reply to the message,
 * never a 250 of ours. The chunk's size is read before any other check of the command: a refused
 * BDAT's octets are read and dropped, never taken for commands. A BDAT whose size cannot be read,
 * or that would take the message past limit_message_size, ends the connection after its reply:
 * the proxy cannot find the end of the chunk, or will not read what it would only drop.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include "log.h"
#include "session_int.h"

static const char reply_bdat_syntax[] =
    "501 5.5.4 Syntax: BDAT chunk-size [LAST]; closing connection\r\n";

/* bdat_parse - "chunk-size [LAST]" (RFC 3030 2: 1*DIGIT, one SP, LAST in any case); -1 when
 * malformed or past 2^64-1. */
static int
bdat_parse(const char *arg, uint64_t *size, bool *last)
{
	const char *p = arg;
	uint64_t v = 0;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*size = v;
	*last = false;
	if (*p == '\0')
		return 0;
	if (strcasecmp(p, " LAST") != 0)
		return -1;
	*last = true;
	return 0;
}

/*
 * px__bdat_size - the size of the chunk that follows the command, before any other check: 0, or
 * -1 when the session was closed (malformed, or past limit_message_size with the chunks taken).
 */
int
px__bdat_size(struct px_session *s, const char *arg)
{
	uint64_t size, taken = s->txn != NULL && s->txn->bdat ? s->txn->bdat_size : 0;
	bool last;
	struct moat_verdict v;

	s->chunk_keep = false;
	s->chunk_ack = false;
	s->chunk_left = 0;
	if (bdat_parse(arg, &size, &last) < 0) {
		moat_log(LOG_NOTICE, moat_session_id(s->ms), "reject", "reason=bdat_syntax");
		SAY(s, reply_bdat_syntax);
		px__session_close(s);
		return -1;
	}
	if (size > s->conf->limit_message_size - taken) {
		moat_session_too_large(s->ms, MOAT_TOO_LARGE_MESSAGE, &v);
		moat_log(LOG_NOTICE, moat_session_id(s->ms), "reject",
		    "reason=limit_message_size chunk=%llu", (unsigned long long)size);
		px__say_verdict(s, &v);
		if (s->txn != NULL) {
			px_backend_abort(&s->b);
			px__txn_end(s);
		}
		px__session_close(s);
		return -1;
	}
	s->chunk_size = s->chunk_left = size;
	s->chunk_last = last;
	return 0;
}

/* px__check_bdat - a transaction with accepted recipients, whose message did not start with DATA. */
int
px__check_bdat(struct px_session *s, const char *arg)
{
	(void)arg;
	if (s->txn == NULL) {
		SAY(s, reply_need_mail);
		return -1;
	}
	if (s->txn->backend_rcpts == 0) {
		SAY(s, reply_no_rcpt); /* no RCPT reply is due: BDAT never joins a group */
		return -1;
	}
	return 0;
}

/* px__proceed_bdat - the chunk's octets go to the message; the first chunk is the DATA event. */
void
px__proceed_bdat(struct px_session *s, const char *arg)
{
	(void)arg;
	if (!s->txn->bdat) {
		if (!px__data_event(s, true))
			return;
		s->txn->bdat = true;
		s->txn->bdat_size = 0;
	}
	s->txn->bdat_size += s->chunk_size;
	s->chunk_keep = true;
}

/* bdat_chunk_end - every octet of the chunk is read. LAST: the end of data, and the verdict. */
static void
bdat_chunk_end(struct px_session *s)
{
	px__session_state(s, S_CMD);
	if (s->chunk_last) {
		px_data_chunk_end(s->txn->data);
		px__data_settle(s);
		px__data_end(s);
		return;
	}
	if (s->txn->chunk_len > 0) {
		s->chunk_ack = true; /* px__bdat_ack once the events ran */
		px__work(s, WK_CHUNK);
		return;
	}
	px__bdat_ack(s);
}

/* px__bdat_read - after the BDAT command: its chunk's octets come next (none: it ends now). */
void
px__bdat_read(struct px_session *s)
{
	if (s->state == S_CLOSED)
		return;
	if (s->chunk_left > 0)
		px__session_state(s, S_BDAT);
	else if (s->chunk_keep)
		bdat_chunk_end(s);
}

/* px__bdat_pump - client input P[0..N) while a chunk is read: what belongs to it. */
void
px__bdat_pump(struct px_session *s, const char *p, size_t n)
{
	size_t m = n < s->chunk_left ? n : (size_t)s->chunk_left;

	if (!s->chunk_keep) {
		s->in_pos += m;
		s->chunk_left -= m;
		if (s->chunk_left == 0)
			px__session_state(s, S_CMD);
		return;
	}
	m = px__data_feed_max(s, m);
	px_data_chunk(s->txn->data, p, m);
	s->in_pos += m;
	s->chunk_left -= m;
	px__data_settle(s);
	if (s->chunk_left == 0)
		bdat_chunk_end(s);
	else if (s->txn->chunk_len >= CHUNK_HIGH)
		px__work(s, WK_CHUNK); /* events and spool writes, in order */
}

/* px__bdat_ack - a chunk that is not LAST is read and checked: 250, or the message's refusal. */
void
px__bdat_ack(struct px_session *s)
{
	char buf[64];
	int n;

	s->chunk_ack = false;
	if (px__data_refused(s))
		return;
	n = snprintf(buf, sizeof(buf), "250 2.0.0 %llu octets received\r\n",
	    (unsigned long long)s->chunk_size);
	if (n > 0 && (size_t)n < sizeof(buf))
		px__say(s, buf, (size_t)n);
}
