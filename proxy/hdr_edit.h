/*
 * hdr_edit.h - the core's header edits applied to a held message on its way to the backend
 * (holding mode): fields inserted at the top, the index-th occurrence of a name deleted, and the
 * result dot-stuffed afresh (RFC 5321 4.5.2), ready to follow DATA.
 *
 * The message goes through in pieces of any size (a held message may be a spool file read in
 * chunks), so this is a byte machine with no limit on the message size; the header section is
 * read by the core's header reader (hdr_reader.h), the same one that read it for the checks, so
 * a DELETE index counts the same fields the core counted and field names are compared as
 * written, blanks before the colon included, without case. Nothing is edited in the body.
 */
#ifndef PX_HDR_EDIT_H
#define PX_HDR_EDIT_H

#include <stdbool.h>
#include <stddef.h>

#include "hdr_reader.h"
#include "policy.h"

#define PX_EDIT_MAX 64 /* edits of one message (the core makes at most 64) */

/* Called with edited, dot-stuffed bytes for the backend. */
typedef void (*px_edit_emit_fn)(void *arg, const char *p, size_t n);

struct px_edit {
	const struct moat_hdr_edit *edits; /* borrowed until the last px_edit_feed */
	size_t n;
	unsigned seen[PX_EDIT_MAX]; /* per DELETE edit: fields of its name seen so far */
	bool bol; /* output is at the start of a line (dot-stuffing) */
	bool body; /* past the header section: bytes go out as they are */
	bool failed; /* the reader refused the header section */
	px_edit_emit_fn emit;
	void *arg;
	struct moat_hdr_reader hr; /* last: it holds one field (MOAT_HDR_FIELD_MAX) */
};

/*
 * px_edit_begin - start a message: emits the INSERT_TOP fields now, first edit on top, as
 * "name: value" CRLF. edits: borrowed until the message is through. -1 (nothing emitted) when
 * there are more than PX_EDIT_MAX edits or an edit is not one we can apply.
 */
int px_edit_begin(struct px_edit *e, const struct moat_hdr_edit *edits, size_t n,
    px_edit_emit_fn emit, void *arg);

/*
 * px_edit_feed - the next n bytes of the held message (canonical CRLF, dot-unstuffed; the whole
 * message ends with CRLF or is empty, as held content always does).
 */
void px_edit_feed(struct px_edit *e, const char *p, size_t n);

/*
 * px_edit_end - the message is through: the last field goes out if it was still read. 0, or -1
 * when the header section was refused (it cannot be: the proxy held only what the same reader
 * accepted; the caller must then not end the message with a dot).
 */
int px_edit_end(struct px_edit *e);

/*
 * px_edit_message - apply edits to a whole message in memory (msg[0..len)): px_edit_begin, one
 * px_edit_feed, px_edit_end. 0, or -1 as px_edit_begin or px_edit_end (or out of memory). The
 * final "." line is not emitted.
 */
int px_edit_message(const struct moat_hdr_edit *edits, size_t n, const char *msg, size_t len,
    px_edit_emit_fn emit, void *arg);

#endif /* PX_HDR_EDIT_H */
