/*
 * hdr_reader.h - the one reader of a message's header section (RFC 5322 2.2, 3.6), used by every
 * path that needs header fields: the proxy's streaming and holding modes, the proxy's header
 * edits of a held message and mxmoat-check. (mxmoat-milter receives the fields as the MTA parsed
 * them.) It decides where the header section ends and where each field begins and ends, and it
 * refuses what an MTA or a mail client could read differently instead of guessing:
 *
 *   - a first line that starts with a space or a tab (folding with no field to continue);
 *   - a line before the empty line that is neither a field ("name:" with a name of printable
 *     ASCII other than the colon, RFC 5322 ftext) nor a continuation (starts with WSP);
 *   - a field name folded before its colon (its first line has no colon), and whitespace inside
 *     a name ("X Y:", "From \r\n :"). Spaces or tabs between a whole name and its colon on the
 *     same line ("From :", RFC 5322 4.5.8 obsolete syntax) are accepted as Postfix accepts them:
 *     such a field is a From field for the core too, which matches names with these blanks;
 *   - a NUL, a CR not followed by LF, or an LF not preceded by CR, in the header section;
 *   - a field (its name, value and folding CRLFs, not its final CRLF) longer than
 *     MOAT_HDR_FIELD_MAX bytes.
 *
 * A message that is empty, or whose first line is empty, has a header section without fields;
 * one whose fields are not followed by an empty line has no body. Both are unambiguous. Every
 * field handed out has its name as written in field[0..name_len) (possibly ending in the blanks
 * of "From :"), immediately followed by the colon.
 *
 * The reader is a byte machine: input in pieces of any size, no limit on the header section
 * (the core counts it); it buffers one field, of at most MOAT_HDR_FIELD_MAX bytes.
 */
#ifndef MOAT_HDR_READER_H
#define MOAT_HDR_READER_H

#include <stdbool.h>
#include <stddef.h>

#include "conf.h"
#include "policy.h"

#define MOAT_HDR_FIELD_MAX ((size_t)64 * 1024)

enum moat_hdr_status {
	MOAT_HDR_OK = 0,
	MOAT_HDR_LEADING_WSP, /* the first line starts with a space or tab */
	MOAT_HDR_NOT_FIELD, /* a line that is neither a field nor a continuation */
	MOAT_HDR_NAME_WSP, /* whitespace inside a field name, or blanks not followed by the colon */
	MOAT_HDR_NUL, /* a NUL byte in the header section */
	MOAT_HDR_BARE_CR, /* a CR not followed by LF in the header section */
	MOAT_HDR_BARE_LF, /* an LF not preceded by CR in the header section */
	MOAT_HDR_FIELD_SIZE, /* a field longer than MOAT_HDR_FIELD_MAX */
};

enum moat_hdr_kind {
	MOAT_HDR_MORE = 0, /* all input consumed, nothing complete yet */
	MOAT_HDR_FIELD, /* a field is complete */
	MOAT_HDR_END, /* the header section ended; what follows is the body */
	MOAT_HDR_ERROR, /* refused: status says why */
};

struct moat_hdr_event {
	enum moat_hdr_kind kind;
	/* FIELD: "Name:value", folding CRLFs inside, no final CRLF. Points into the reader: valid
	 * until the next moat_hdr_feed or moat_hdr_finish. */
	const char *field;
	size_t len;
	size_t name_len; /* FIELD: the name is field[0..name_len); field[name_len] == ':' */
	bool empty_line; /* END: the section ended with an empty line (consumed by the reader) */
	enum moat_hdr_status status; /* ERROR */
};

struct moat_hdr_reader {
	int state;
	bool flushed; /* the buffered field was handed out: drop it at the next call */
	size_t len; /* bytes in buf */
	size_t name_len;
	enum moat_hdr_status status;
	char buf[MOAT_HDR_FIELD_MAX];
};

/* moat_hdr_init - start a message. */
void moat_hdr_init(struct moat_hdr_reader *r);

/*
 * moat_hdr_feed - read from p[0..n) until an event; returns the bytes consumed (all of them with
 * MOAT_HDR_MORE). After END or ERROR the reader is done: it consumes nothing and repeats that
 * event; with END, the unconsumed input is the start of the body.
 */
size_t moat_hdr_feed(struct moat_hdr_reader *r, const char *p, size_t n, struct moat_hdr_event *ev);

/*
 * moat_hdr_finish - the message ended: the last field (FIELD), then END or ERROR. Call until the
 * event is END or ERROR.
 */
void moat_hdr_finish(struct moat_hdr_reader *r, struct moat_hdr_event *ev);

/* moat_hdr_status_text - what was refused, for reply texts and logs ("" for MOAT_HDR_OK). */
const char *moat_hdr_status_text(enum moat_hdr_status st);

/*
 * moat_hdr_verdict - the verdict for a refused header section: a field past the maximum gets
 * 552 5.3.4; an ambiguous section 550 5.6.0, or 451 4.6.0 with header_ambiguous_action = tempfail.
 */
void moat_hdr_verdict(const struct moat_conf *conf, enum moat_hdr_status st,
    struct moat_verdict *v);

#endif /* MOAT_HDR_READER_H */
