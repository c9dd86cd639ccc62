/*
 * test_hdr_reader.c - the header-section reader: where the section ends, each field with its
 * folding and its name, and every ambiguous shape refused with its status. Every case is read
 * whole and again one byte at a time (the proxy gets the message in arbitrary pieces), and both
 * readings must give the same fields, the same end and the same body.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "hdr_reader.h"

#define FIELDS_MAX 8

struct reading {
	char fields[FIELDS_MAX][256];
	size_t name_len[FIELDS_MAX];
	size_t nfields;
	enum moat_hdr_kind end; /* MOAT_HDR_END or MOAT_HDR_ERROR */
	enum moat_hdr_status status;
	bool empty_line;
	size_t body; /* offset of the body (END) */
};

/* read_all - in pieces of `piece` bytes, then moat_hdr_finish at the end of input. */
static void
read_all(const char *in, size_t len, size_t piece, struct reading *out)
{
	struct moat_hdr_reader *r = malloc(sizeof(*r));
	struct moat_hdr_event ev = { .kind = MOAT_HDR_MORE };
	size_t off = 0;

	cr_assert_not_null(r);
	memset(out, 0, sizeof(*out));
	moat_hdr_init(r);
	while (ev.kind != MOAT_HDR_END && ev.kind != MOAT_HDR_ERROR) {
		if (off < len) {
			size_t n = len - off < piece ? len - off : piece;

			off += moat_hdr_feed(r, in + off, n, &ev);
		} else {
			moat_hdr_finish(r, &ev);
		}
		if (ev.kind == MOAT_HDR_FIELD) {
			cr_assert_lt(out->nfields, FIELDS_MAX);
			cr_assert_lt(ev.len, sizeof(out->fields[0]));
			cr_assert_eq(ev.field[ev.name_len], ':');
			memcpy(out->fields[out->nfields], ev.field, ev.len);
			out->name_len[out->nfields++] = ev.name_len;
		}
	}
	out->end = ev.kind;
	out->status = ev.status;
	out->empty_line = ev.empty_line;
	out->body = off;
	/* done: the same event again, nothing consumed */
	cr_assert_eq(moat_hdr_feed(r, "x", 1, &ev), 0u);
	cr_assert_eq(ev.kind, out->end);
	free(r);
}

struct reader_case {
	const char *label;
	const char *in;
	size_t len; /* 0: strlen(in) */
	const char *fields[FIELDS_MAX]; /* expected, in order */
	enum moat_hdr_status status; /* MOAT_HDR_OK: the section ends */
	bool empty_line;
	const char *body; /* expected body (status OK) */
	size_t body_len; /* 0: strlen(body) */
};

static const struct reader_case cases[] = {
	{ .label = "fields, the empty line, a body",
	    .in = "From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n",
	    .fields = { "From: a@example.com", "Subject: hi" },
	    .empty_line = true,
	    .body = "body\r\n" },
	{ .label = "folding stays in the field, CRLF included",
	    .in = "Subject: a\r\n b\r\n\tc\r\nTo: t\r\n\r\n",
	    .fields = { "Subject: a\r\n b\r\n\tc", "To: t" },
	    .empty_line = true,
	    .body = "" },
	{ .label = "the body may look like fields; only the first empty line counts",
	    .in = "A: 1\r\n\r\nFrom: evil@example.com\r\n\r\n",
	    .fields = { "A: 1" },
	    .empty_line = true,
	    .body = "From: evil@example.com\r\n\r\n" },
	{ .label = "an empty message: no fields, no body", .in = "", .body = "" },
	{ .label = "an empty first line: no fields, the rest is body",
	    .in = "\r\nFrom: evil@example.com\r\n",
	    .empty_line = true,
	    .body = "From: evil@example.com\r\n" },
	{ .label = "fields up to the end, no empty line",
	    .in = "X: a\r\nZ: b\r\n",
	    .fields = { "X: a", "Z: b" },
	    .body = "" },
	{ .label = "a last field without CRLF",
	    .in = "X: a\r\nZ: b",
	    .fields = { "X: a", "Z: b" },
	    .body = "" },
	{ .label = "an empty value and a colon in the value",
	    .in = "X:\r\nY: a:b\r\n\r\n",
	    .fields = { "X:", "Y: a:b" },
	    .empty_line = true,
	    .body = "" },
	{ .label = "8-bit and control bytes in a value are the value's business",
	    .in = "Subject: \xc3\xa9\x01\r\n\r\n",
	    .fields = { "Subject: \xc3\xa9\x01" },
	    .empty_line = true,
	    .body = "" },
	{ .label = "a name is any printable ASCII but the colon",
	    .in = "X-!#$%&'*+-/=?^_`{|}~.\"(),;<>@[\\]: v\r\n\r\n",
	    .fields = { "X-!#$%&'*+-/=?^_`{|}~.\"(),;<>@[\\]: v" },
	    .empty_line = true,
	    .body = "" },
	{ .label = "a NUL in the body is not the reader's business",
	    .in = "A: 1\r\n\r\nx\0y\r\n",
	    .len = 13,
	    .fields = { "A: 1" },
	    .empty_line = true,
	    .body = "x\0y\r\n",
	    .body_len = 5 },

	{ .label = "refused: a first line starting with a space",
	    .in = " From: evil@example.com\r\nFrom: evil@example.com\r\n\r\n",
	    .status = MOAT_HDR_LEADING_WSP },
	{ .label = "refused: a first line starting with a tab",
	    .in = "\tx\r\nFrom: evil@example.com\r\n\r\n",
	    .status = MOAT_HDR_LEADING_WSP },
	{ .label = "refused: a first line of blanks only",
	    .in = "  \r\nFrom: evil@example.com\r\n\r\n",
	    .status = MOAT_HDR_LEADING_WSP },
	{ .label = "refused: a first line without a colon",
	    .in = "hello\r\nFrom: evil@example.com\r\n\r\n",
	    .status = MOAT_HDR_NOT_FIELD },
	{ .label = "refused: a first line starting with a colon (empty name)",
	    .in = ":x\r\nFrom: evil@example.com\r\n\r\n",
	    .status = MOAT_HDR_NOT_FIELD },
	{ .label = "refused: a later line that is neither field nor continuation",
	    .in = "Subject: s\r\nnot-a-field\r\nFrom: evil@example.com\r\n\r\n",
	    .fields = { "Subject: s" },
	    .status = MOAT_HDR_NOT_FIELD },
	{ .label = "refused: a name folded before its colon",
	    .in = "From: a@example.com\r\nFrom\r\n : evil@example.com\r\n\r\n",
	    .fields = { "From: a@example.com" },
	    .status = MOAT_HDR_NOT_FIELD },
	{ .label = "refused: a folded Authentication-Results name",
	    .in = "Authentication-Results\r\n\t: mx.test; dmarc=pass\r\n\r\n",
	    .status = MOAT_HDR_NOT_FIELD },
	{ .label = "a space before the colon stays in the name (\"From :\", RFC 5322 4.5.8)",
	    .in = "From: a@example.com\r\nFrom : evil@example.com\r\n\r\n",
	    .fields = { "From: a@example.com", "From : evil@example.com" },
	    .empty_line = true,
	    .body = "" },
	{ .label = "blanks before the colon, a tab among them",
	    .in = "Authentication-Results \t : mx.test; dmarc=pass\r\n\r\n",
	    .fields = { "Authentication-Results \t : mx.test; dmarc=pass" },
	    .empty_line = true,
	    .body = "" },
	{ .label = "refused: a name with blanks, then folded before its colon",
	    .in = "From \r\n : evil@example.com\r\n\r\n",
	    .status = MOAT_HDR_NAME_WSP },
	{ .label = "refused: blanks at the end of the input after a name",
	    .in = "Subject: a\r\nFrom ",
	    .fields = { "Subject: a" },
	    .status = MOAT_HDR_NAME_WSP },
	{ .label = "refused: a space inside a name",
	    .in = "X Y: 1\r\n\r\n",
	    .status = MOAT_HDR_NAME_WSP },
	{ .label = "refused: an 8-bit byte in a name",
	    .in = "Fr\xc3\xb6m: a\r\n\r\n",
	    .status = MOAT_HDR_NOT_FIELD },
	{ .label = "refused: a NUL in a value",
	    .in = "From: a@example.com\0\r\n\r\n",
	    .len = 24,
	    .status = MOAT_HDR_NUL },
	{ .label = "refused: a NUL in a name",
	    .in = "Fr\0om: a\r\n\r\n",
	    .len = 12,
	    .status = MOAT_HDR_NUL },
	{ .label = "refused: a bare CR in a value",
	    .in = "Subject: a\rFrom: evil@example.com\r\n\r\n",
	    .status = MOAT_HDR_BARE_CR },
	{ .label = "refused: a bare CR where the empty line should be",
	    .in = "Subject: a\r\n\rFrom: evil@example.com\r\n\r\n",
	    .fields = { "Subject: a" },
	    .status = MOAT_HDR_BARE_CR },
	{ .label = "refused: a bare LF in a value",
	    .in = "Subject: a\nFrom: evil@example.com\r\n\r\n",
	    .status = MOAT_HDR_BARE_LF },
	{ .label = "refused: a bare CR as the last byte",
	    .in = "Subject: a\r",
	    .status = MOAT_HDR_BARE_CR },
	{ .label = "refused: a last line without a colon",
	    .in = "Subject: a\r\nxyz",
	    .fields = { "Subject: a" },
	    .status = MOAT_HDR_NOT_FIELD },
};

Test(hdr_reader, table)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct reader_case *k = &cases[i];
		size_t len = k->len ? k->len : strlen(k->in), want = 0;
		struct reading whole, bytes;

		read_all(k->in, len, len ? len : 1, &whole);
		read_all(k->in, len, 1, &bytes);
		while (want < FIELDS_MAX && k->fields[want] != NULL)
			want++;
		cr_assert_eq(whole.nfields, want, "%s: %zu fields", k->label, whole.nfields);
		for (size_t f = 0; f < want; f++) {
			cr_assert_str_eq(whole.fields[f], k->fields[f], "%s: field %zu", k->label,
			    f);
			cr_assert_str_eq(bytes.fields[f], k->fields[f], "%s: field %zu, bytewise",
			    k->label, f);
			cr_assert_eq(whole.name_len[f],
			    (size_t)(strchr(k->fields[f], ':') - k->fields[f]),
			    "%s: name of field %zu", k->label, f);
		}
		cr_assert_eq(bytes.nfields, want, "%s: bytewise", k->label);
		if (k->status != MOAT_HDR_OK) {
			cr_assert_eq(whole.end, MOAT_HDR_ERROR, "%s", k->label);
			cr_assert_eq(whole.status, k->status, "%s: status %d", k->label,
			    whole.status);
			cr_assert_eq(bytes.status, k->status, "%s: bytewise status", k->label);
			cr_assert_neq(moat_hdr_status_text(k->status)[0], '\0', "%s", k->label);
			continue;
		}
		cr_assert_eq(whole.end, MOAT_HDR_END, "%s: status %d", k->label, whole.status);
		cr_assert_eq(bytes.end, MOAT_HDR_END, "%s: bytewise", k->label);
		cr_assert_eq(whole.empty_line, k->empty_line, "%s: empty line", k->label);
		cr_assert_eq(bytes.empty_line, k->empty_line, "%s: empty line, bytewise", k->label);
		cr_assert_eq(whole.body, bytes.body, "%s: body offset", k->label);
		cr_assert_eq(len - whole.body, k->body_len ? k->body_len : strlen(k->body),
		    "%s: body length", k->label);
		cr_assert_eq(memcmp(k->in + whole.body, k->body, len - whole.body), 0, "%s: body",
		    k->label);
	}
}

/* field_of - "X: " and value bytes up to a field of exactly len bytes, folded every 1000 bytes
 * (the sizes tested never end inside the folding). */
static char *
field_of(size_t len, size_t *out_len)
{
	char *f = malloc(len + 4);
	size_t i;

	cr_assert_not_null(f);
	memcpy(f, "X: ", 3);
	for (i = 3; i < len; i++)
		f[i] = (i % 1000 == 500) ? '\r'
		    : (i % 1000 == 501)  ? '\n'
		    : (i % 1000 == 502)  ? ' '
					 : 'a';
	memcpy(f + len, "\r\n", 2);
	*out_len = len + 2;
	return f;
}

struct size_case {
	const char *label;
	size_t sizes[2]; /* one or two adjacent fields, bytes without the final CRLF */
	enum moat_hdr_status status;
};

/* Each unfolded field counts on its own, folding CRLFs included, final CRLF not. */
static const struct size_case size_cases[] = {
	{ "two adjacent 40 KB fields", { 40000, 40000 }, MOAT_HDR_OK },
	{ "one 60 KB field", { 60000, 0 }, MOAT_HDR_OK },
	{ "one field exactly at the limit", { MOAT_HDR_FIELD_MAX, 0 }, MOAT_HDR_OK },
	{ "one field one byte over the limit", { MOAT_HDR_FIELD_MAX + 1, 0 }, MOAT_HDR_FIELD_SIZE },
	{ "a small field, then one over the limit", { 10, MOAT_HDR_FIELD_MAX + 1 },
	    MOAT_HDR_FIELD_SIZE },
};

Test(hdr_reader, field_size_is_per_field)
{
	for (size_t i = 0; i < sizeof(size_cases) / sizeof(size_cases[0]); i++) {
		const struct size_case *k = &size_cases[i];
		struct moat_hdr_reader *r = malloc(sizeof(*r));
		struct moat_hdr_event ev = { .kind = MOAT_HDR_MORE };
		size_t nf = 0, seen = 0;
		char *msg = malloc(2 * MOAT_HDR_FIELD_MAX + 16), *p;
		size_t len = 0, off = 0;

		cr_assert_not_null(r);
		cr_assert_not_null(msg);
		for (size_t f = 0; f < 2 && k->sizes[f] > 0; f++) {
			size_t n;

			p = field_of(k->sizes[f], &n);
			memcpy(msg + len, p, n);
			len += n;
			free(p);
			nf++;
		}
		memcpy(msg + len, "\r\n", 2);
		len += 2;
		moat_hdr_init(r);
		while (ev.kind != MOAT_HDR_END && ev.kind != MOAT_HDR_ERROR) {
			/* pieces of 4096 bytes, as the proxy's reads may fall */
			size_t piece = len - off < 4096 ? len - off : 4096;

			off += moat_hdr_feed(r, msg + off, piece, &ev);
			if (ev.kind == MOAT_HDR_FIELD) {
				cr_assert_eq(ev.len, k->sizes[seen], "%s: field %zu is %zu bytes",
				    k->label, seen, ev.len);
				seen++;
			}
		}
		if (k->status == MOAT_HDR_OK) {
			cr_assert_eq(ev.kind, MOAT_HDR_END, "%s: status %d", k->label, ev.status);
			cr_assert_eq(seen, nf, "%s", k->label);
		} else {
			cr_assert_eq(ev.kind, MOAT_HDR_ERROR, "%s", k->label);
			cr_assert_eq(ev.status, k->status, "%s", k->label);
		}
		free(msg);
		free(r);
	}
}

Test(hdr_reader, verdicts)
{
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf_override tf = { "header_ambiguous_action", "tempfail" };
	struct moat_conf *def = moat_conf_load(NULL, NULL, 0, err, sizeof(err));
	struct moat_conf *temp = moat_conf_load(NULL, &tf, 1, err, sizeof(err));
	struct moat_verdict v;

	cr_assert_not_null(def, "%s", err);
	cr_assert_not_null(temp, "%s", err);
	moat_hdr_verdict(def, MOAT_HDR_LEADING_WSP, &v);
	cr_assert_eq(v.action, MOAT_REJECT);
	cr_assert_eq(v.code, 550u);
	cr_assert_str_eq(v.status, "5.6.0");
	cr_assert_str_eq(v.text, "Message header refused: header section starts with whitespace");
	moat_hdr_verdict(temp, MOAT_HDR_NAME_WSP, &v);
	cr_assert_eq(v.action, MOAT_TEMPFAIL);
	cr_assert_eq(v.code, 451u);
	cr_assert_str_eq(v.status, "4.6.0");
	cr_assert_str_eq(v.text, "Message header refused: whitespace inside a header field name");
	/* a field past the limit is a size limit, whatever the action */
	moat_hdr_verdict(temp, MOAT_HDR_FIELD_SIZE, &v);
	cr_assert_eq(v.action, MOAT_REJECT);
	cr_assert_eq(v.code, 552u);
	cr_assert_str_eq(v.status, "5.3.4");
	cr_assert_str_eq(v.text, "Message header field too long");
	moat_conf_unref(def);
	moat_conf_unref(temp);
}
