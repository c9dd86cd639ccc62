/*
 * hdr_edit.c - header edits over a held message, and fresh dot-stuffing (see hdr_edit.h).
 * Owns nothing; the edits are borrowed from the core for the time the message goes out. Field
 * boundaries and names come from the core's header reader (hdr_reader.h), the one the proxy's
 * checks used, so a DELETE index counts the fields the core counted.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hdr_edit.h"

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
		if ((edits[i].op != MOAT_HDR_INSERT_TOP && edits[i].op != MOAT_HDR_DELETE) ||
		    edits[i].name == NULL ||
		    (edits[i].op == MOAT_HDR_INSERT_TOP && edits[i].value == NULL))
			return -1;
	memset(e->seen, 0, sizeof(e->seen));
	e->edits = edits;
	e->n = n;
	e->bol = true;
	e->body = false;
	e->failed = false;
	moat_hdr_init(&e->hr);
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

/* edit_field_dropped - a field named name[0..nlen) is complete: count it; is it an occurrence to
 * delete? */
static bool
edit_field_dropped(struct px_edit *e, const char *name, size_t nlen)
{
	bool drop = false;

	for (size_t i = 0; i < e->n; i++) {
		const struct moat_hdr_edit *d = &e->edits[i];

		if (d->op != MOAT_HDR_DELETE || strlen(d->name) != nlen ||
		    strncasecmp(d->name, name, nlen) != 0)
			continue;
		if (++e->seen[i] == d->index)
			drop = true;
	}
	return drop;
}

/* edit_event - what the header reader found: a field goes out unless deleted; after the header
 * section the rest goes out as it is. */
static void
edit_event(struct px_edit *e, const struct moat_hdr_event *ev)
{
	switch (ev->kind) {
	case MOAT_HDR_FIELD:
		if (!edit_field_dropped(e, ev->field, ev->name_len)) {
			edit_out(e, ev->field, ev->len);
			edit_out(e, "\r\n", 2);
		}
		break;
	case MOAT_HDR_END:
		e->body = true;
		if (ev->empty_line)
			edit_out(e, "\r\n", 2);
		break;
	case MOAT_HDR_ERROR:
		e->failed = true;
		break;
	default:
		break;
	}
}

void
px_edit_feed(struct px_edit *e, const char *p, size_t n)
{
	while (!e->body && !e->failed && n > 0) {
		struct moat_hdr_event ev;
		size_t used = moat_hdr_feed(&e->hr, p, n, &ev);

		p += used;
		n -= used;
		edit_event(e, &ev);
	}
	if (e->body && n > 0)
		edit_out(e, p, n); /* the body is not edited: one piece */
}

int
px_edit_end(struct px_edit *e)
{
	while (!e->body && !e->failed) {
		struct moat_hdr_event ev;

		moat_hdr_finish(&e->hr, &ev);
		edit_event(e, &ev);
	}
	return e->failed ? -1 : 0;
}

int
px_edit_message(const struct moat_hdr_edit *edits, size_t n, const char *msg, size_t len,
    px_edit_emit_fn emit, void *arg)
{
	struct px_edit *e = malloc(sizeof(*e));
	int rc = -1;

	if (e != NULL && px_edit_begin(e, edits, n, emit, arg) == 0) {
		px_edit_feed(e, msg, len);
		rc = px_edit_end(e);
	}
	free(e);
	return rc;
}
