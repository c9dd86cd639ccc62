/*
 * hdr_edit.c - header edits over a held message, and fresh dot-stuffing (see hdr_edit.h).
 * Owns nothing; the edits are borrowed from the core for the time the message goes out.
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "hdr_edit.h"

enum { E_BOL = 0, E_NAME, E_LONG, E_KEEP, E_DROP, E_BODY };

/* edit_out - bytes of the edited message, dot-stuffed: a line that starts with "." gets another. */
static void
edit_out(struct px_edit *e, const char *p, size_t n)
{
	size_t start = 0;

	for (size_t i = 0; i < n; i++) {
		if (e->bol && p[i] == '.') {
			if (i > start)
				e->emit(e->arg, p + start, i - start);
			e->emit(e->arg, ".", 1);
			start = i;
		}
		e->bol = p[i] == '\n';
	}
	if (n > start)
		e->emit(e->arg, p + start, n - start);
}

int
px_edit_begin(struct px_edit *e, const struct moat_hdr_edit *edits, size_t n, px_edit_emit_fn emit,
    void *arg)
{
	if (n > PX_EDIT_MAX)
		return -1;
	for (size_t i = 0; i < n; i++)
		if ((edits[i].op != MOAT_HDR_INSERT_TOP && edits[i].op != MOAT_HDR_DELETE) || edits[i].name == NULL ||
		    (edits[i].op == MOAT_HDR_INSERT_TOP && edits[i].value == NULL))
			return -1;
	memset(e, 0, sizeof(*e));
	e->edits = edits;
	e->n = n;
	e->state = E_BOL;
	e->bol = true;
	e->emit = emit;
	e->arg = arg;
	for (size_t i = 0; i < n; i++) {
		if (edits[i].op != MOAT_HDR_INSERT_TOP)
			continue;
		edit_out(e, edits[i].name, strlen(edits[i].name));
		edit_out(e, ": ", 2);
		edit_out(e, edits[i].value, strlen(edits[i].value));
		edit_out(e, "\r\n", 2);
	}
	return 0;
}

/* edit_field_dropped - a field named name[0..nlen) starts: count it; is it an occurrence to delete? */
static bool
edit_field_dropped(struct px_edit *e)
{
	bool drop = false;

	for (size_t i = 0; i < e->n; i++) {
		const struct moat_hdr_edit *d = &e->edits[i];

		if (d->op != MOAT_HDR_DELETE || strlen(d->name) != e->nlen ||
		    strncasecmp(d->name, e->name, e->nlen) != 0)
			continue;
		if (++e->seen[i] == d->index)
			drop = true;
	}
	return drop;
}

/* edit_name_flush - the buffered start of a line goes out as it was. */
static void
edit_name_flush(struct px_edit *e)
{
	edit_out(e, e->name, e->nlen);
	e->nlen = 0;
}

void
px_edit_feed(struct px_edit *e, const char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		char c = p[i];
		size_t run;

		switch (e->state) {
		case E_BODY:
			edit_out(e, p + i, n - i);   /* the rest is not edited: one piece */
			return;
		case E_BOL:
			if (c == '\r')
				e->state = E_BODY;       /* the empty line */
			else if (c == ' ' || c == '\t')
				/* folding continues the current field; before any field it starts the body */
				e->state = !e->any_field ? E_BODY : e->drop ? E_DROP : E_KEEP;
			else
				e->state = E_NAME;
			continue;                    /* the same byte, in the new state */
		case E_NAME:
			if (c == ':' && e->nlen > 0) {
				e->drop = edit_field_dropped(e);
				e->any_field = true;
				if (e->drop)
					e->nlen = 0;
				else
					edit_name_flush(e);
				e->state = e->drop ? E_DROP : E_KEEP;
				continue;            /* the colon goes with the rest of the line */
			}
			if (c == ':' || c == '\r' || c == '\n') {
				edit_name_flush(e);      /* not a field: the body starts at this line */
				e->state = E_BODY;
				continue;
			}
			if (e->nlen == sizeof(e->name)) {
				edit_name_flush(e);      /* too long to be deleted: kept, if it is a field */
				e->state = E_LONG;
				continue;
			}
			e->name[e->nlen++] = c;
			i++;
			continue;
		case E_LONG:
			for (run = 0; i + run < n && p[i + run] != ':' && p[i + run] != '\r' && p[i + run] != '\n';)
				run++;
			edit_out(e, p + i, run);
			i += run;
			if (i < n) {
				e->any_field = p[i] == ':' || e->any_field;
				e->drop = false;
				e->state = p[i] == ':' ? E_KEEP : E_BODY;
			}
			continue;
		case E_KEEP:
		case E_DROP: {
			const char *lf = memchr(p + i, '\n', n - i);

			run = lf ? (size_t)(lf - (p + i)) + 1 : n - i;
			if (e->state == E_KEEP)
				edit_out(e, p + i, run);
			if (lf != NULL)
				e->state = E_BOL;
			i += run;
			continue;
		}
		default:
			return;
		}
	}
}

int
px_edit_message(const struct moat_hdr_edit *edits, size_t n, const char *msg, size_t len,
    px_edit_emit_fn emit, void *arg)
{
	struct px_edit e;

	if (px_edit_begin(&e, edits, n, emit, arg) < 0)
		return -1;
	px_edit_feed(&e, msg, len);
	return 0;
}
