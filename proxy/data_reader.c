/*
 * data_reader.c - DATA state machine: end-of-data detection, dot-unstuffing towards the policy,
 * canonical CRLF and dot-stuffing towards the backend. Owns two small staging buffers.
 *
 * End of data is <CR><LF>.<CR><LF> in the bytes received, nothing else, in both modes. Normalize
 * mode decides that first and mends line ends after: a bare CR or LF becomes CRLF inside the
 * content, but what follows it is not the start of an SMTP line, so a dot there is neither an
 * end of data nor stuffing: it is content, and the backend gets it stuffed afresh ("\n.\n"
 * reaches the backend as "\r\n..\r\n"). A dot after a received CRLF followed by a bare CR or LF
 * is stuffing (RFC 5321 4.5.2: the line is more than "."), removed as any other.
 *
 * Only NUL, a bare CR or LF and a dot at the start of a line change anything: the lines between
 * them (CRLFs included) are found a word at a time and copied to both buffers as one run. Octet
 * by octet through the states, this was 89% of the proxy's instructions per message.
 *
 * BDAT chunks (px_data_chunk) are not stuffed on the wire: they are stuffed here as a DATA client
 * would, then read by the same state machine, so both commands meet one set of rules.
 */
#include "config.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "bytescan.h"
#include "data_reader.h"

enum {
	D_BOL = 0, /* at the start of a line: after a received CRLF (or the DATA line's) */
	D_DOT, /* "." at the start of a line */
	D_DOTCR, /* ".\r" at the start of a line */
	D_NBOL, /* normalize: after a bare CR or LF made a line end; no SMTP line starts here */
	D_MID, /* inside a line */
	D_CR, /* "\r" inside a line */
	D_SKIP, /* after an error: only looking for the real end of data */
	D_SKIPCR, /* after an error, "\r" seen */
	D_SKIPCRLF, /* after an error, "\r\n" seen (start of a line) */
	D_SKIPDOT, /* after an error, "\r\n." seen */
	D_SKIPDOTCR, /* after an error, "\r\n.\r" seen */
};

void
px_data_init(struct px_data *d, bool normalize, px_data_content_fn content, px_data_wire_fn wire,
    void *arg)
{
	d->state = D_BOL;
	d->err = PX_DATA_OK;
	d->normalize = normalize;
	d->content = content;
	d->wire = wire;
	d->arg = arg;
	d->clen = d->wlen = 0;
	d->chunk_bol = true;
	d->chunk_cr = false;
}

/* data_flush - hand staged content and wire bytes to the callbacks. */
static void
data_flush(struct px_data *d)
{
	if (d->clen > 0 && d->content != NULL)
		d->content(d->arg, d->cbuf, d->clen);
	if (d->wlen > 0 && d->wire != NULL)
		d->wire(d->arg, d->wbuf, d->wlen);
	d->clen = d->wlen = 0;
}

/* put - one content octet; at the start of a line a '.' is stuffed on the wire (RFC 5321 4.5.2). */
static void
put(struct px_data *d, char c, bool bol)
{
	if (d->clen + 1 > sizeof(d->cbuf) || d->wlen + 2 > sizeof(d->wbuf))
		data_flush(d);
	d->cbuf[d->clen++] = c;
	if (bol && c == '.')
		d->wbuf[d->wlen++] = '.';
	d->wbuf[d->wlen++] = c;
}

/* put_run - n octets that are the same on both sides (nothing to stuff, no line end to mend). */
static void
put_run(struct px_data *d, const char *p, size_t n)
{
	while (n > 0) {
		size_t room = sizeof(d->cbuf) - d->clen;
		size_t wroom = sizeof(d->wbuf) - d->wlen;
		size_t m = n;

		if (wroom < room)
			room = wroom;
		if (room == 0) {
			data_flush(d);
			continue;
		}
		if (m > room)
			m = room;
		memcpy(d->cbuf + d->clen, p, m);
		memcpy(d->wbuf + d->wlen, p, m);
		d->clen += m;
		d->wlen += m;
		p += m;
		n -= m;
	}
}

/*
 * plain_run - how many octets of p[0..n) come before the first CR, LF or NUL (n: none). Words
 * without an octet below CR + 1 are passed over eight octets at a time; a word with one (a stop,
 * or a TAB) is looked at octet by octet.
 */
static size_t
plain_run(const char *p, size_t n)
{
	size_t k = 0;

	for (;;) {
		size_t e;

		for (; n - k >= 8; k += 8) {
			uint64_t w;

			memcpy(&w, p + k, 8);
			if (moat__bytes_below(w, '\r' + 1) != 0)
				break;
		}
		e = n - k >= 8 ? k + 8 : n;
		for (; k < e; k++)
			if (p[k] == '\r' || p[k] == '\n' || p[k] == '\0')
				return k;
		if (k == n)
			return n;
	}
}

/*
 * verbatim_run - how many octets of p[0..n) go to both sides as they are: lines and their CRLFs,
 * up to a NUL, a bare CR or LF, a CRLF followed by a dot, or a CRLF too near the end to tell
 * (the state machine takes those, across reads). p[0] is not a dot at the start of a line.
 */
static size_t
verbatim_run(const char *p, size_t n)
{
	size_t k = 0;

	for (;;) {
		k += plain_run(p + k, n - k);
		if (n - k < 3 || p[k] != '\r' || p[k + 1] != '\n' || p[k + 2] == '.')
			return k;
		k += 2;
	}
}

static void
put_crlf(struct px_data *d)
{
	put(d, '\r', false);
	put(d, '\n', false);
}

/* bare_end - normalize: a bare CR or LF ends a line of the content; no SMTP line starts after it. */
static void
bare_end(struct px_data *d)
{
	put_crlf(d);
	d->state = D_NBOL;
}

/* fail - record the first error; from now on only the real end of data matters. */
static void
fail(struct px_data *d, enum px_data_err e, unsigned char c)
{
	if (d->err == PX_DATA_OK)
		d->err = e;
	d->clen = d->wlen = 0;
	/* resynchronise on the octet just seen */
	d->state = c == '\r' ? D_SKIPCR : D_SKIP;
}

size_t
px_data_feed(struct px_data *d, const char *buf, size_t len, bool *done)
{
	size_t i;

	*done = false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		switch (d->state) {
		case D_DOT:
			if (c == '\r') {
				d->state = D_DOTCR;
				continue;
			}
			/* "." + other: the leading dot was stuffing (or a sender's error); drop it */
			if (c == '\0') {
				fail(d, PX_DATA_NUL, c);
				continue;
			}
			if (c == '\n') {
				if (!d->normalize) {
					fail(d, PX_DATA_BARE, c);
					continue;
				}
				bare_end(d); /* ".\n": not the end of data, an empty line */
				continue;
			}
			put(d, (char)c, true);
			d->state = D_MID;
			continue;
		case D_DOTCR:
			if (c == '\n')
				goto end;
			if (!d->normalize) {
				fail(d, PX_DATA_BARE, c);
				continue;
			}
			bare_end(d); /* ".\r" + other: an empty line; c starts the next */
			i--;
			continue;
		case D_BOL:
			if (c == '.') {
				d->state = D_DOT;
				continue;
			}
			/* FALLTHROUGH */
		case D_NBOL:
		case D_MID:
			if (c == '\r') {
				d->state = D_CR;
			} else if (c == '\n') {
				if (!d->normalize) {
					fail(d, PX_DATA_BARE, c);
					continue;
				}
				bare_end(d);
			} else if (c == '\0') {
				fail(d, PX_DATA_NUL, c);
			} else if (c == '.' && d->state == D_NBOL) {
				put(d, '.', true); /* content, stuffed afresh for the backend */
				d->state = D_MID;
			} else {
				/* not a dot at the start of a line (D_DOT and D_NBOL took those) */
				size_t run = verbatim_run(buf + i, len - i);

				put_run(d, buf + i, run);
				/* an LF in the run ended a CRLF: the run ends at the start of a line */
				d->state = buf[i + run - 1] == '\n' ? D_BOL : D_MID;
				i += run - 1;
			}
			continue;
		case D_CR:
			if (c == '\n') {
				put_crlf(d);
				d->state = D_BOL;
				continue;
			}
			if (!d->normalize) {
				fail(d, PX_DATA_BARE, c);
				continue;
			}
			bare_end(d); /* the bare CR ends a line; c starts the next */
			i--; /* look at c again */
			continue;
		case D_SKIP: {
			const char *cr = memchr(buf + i, '\r', len - i);

			if (cr == NULL) {
				i = len - 1;
				continue;
			}
			i = (size_t)(cr - buf);
			d->state = D_SKIPCR;
			continue;
		}
		case D_SKIPCR:
			d->state = c == '\n' ? D_SKIPCRLF : c == '\r' ? D_SKIPCR : D_SKIP;
			continue;
		case D_SKIPCRLF:
			d->state = c == '.' ? D_SKIPDOT : c == '\r' ? D_SKIPCR : D_SKIP;
			continue;
		case D_SKIPDOT:
			d->state = c == '\r' ? D_SKIPDOTCR : D_SKIP;
			continue;
		case D_SKIPDOTCR:
			if (c == '\n')
				goto end;
			d->state = c == '\r' ? D_SKIPCR : D_SKIP;
			continue;
		}
	}
	data_flush(d);
	return len;
end:
	data_flush(d);
	*done = true;
	return i + 1;
}

/* chunk_feed - octets for px_data_feed that cannot hold the end of data (stuffed, or no line). */
static void
chunk_feed(struct px_data *d, const char *p, size_t n)
{
	bool done;
	size_t used = px_data_feed(d, p, n, &done);

	assert(used == n && !done);
	(void)used;
}

void
px_data_chunk(struct px_data *d, const char *p, size_t n)
{
	while (n > 0) {
		size_t k = 0;

		if (d->chunk_bol && p[0] == '.')
			chunk_feed(d, ".",
			    1); /* the stuffing a DATA client adds (RFC 5321 4.5.2) */
		/* up to the next CRLF that a dot follows (or to the end), in one feed */
		for (;;) {
			const char *lf = memchr(p + k, '\n', n - k);

			if (lf == NULL) {
				k = n;
				break;
			}
			k = (size_t)(lf - p) + 1;
			if (k < n && p[k] == '.' && (k >= 2 ? p[k - 2] == '\r' : d->chunk_cr))
				break;
		}
		chunk_feed(d, p, k);
		d->chunk_bol = p[k - 1] == '\n' && (k >= 2 ? p[k - 2] == '\r' : d->chunk_cr);
		d->chunk_cr = p[k - 1] == '\r';
		p += k;
		n -= k;
	}
}

void
px_data_chunk_end(struct px_data *d)
{
	bool done;

	if (!d->chunk_bol)
		chunk_feed(d, "\r\n", 2);
	(void)px_data_feed(d, ".\r\n", 3, &done);
	assert(done);
}
