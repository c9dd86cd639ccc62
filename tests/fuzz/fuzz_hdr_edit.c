/*
 * fuzz_hdr_edit.c - libFuzzer target: the header edits applied to a held message (hdr_edit.c).
 *
 * Input: one byte choosing a set of edits and a piece size, then the message. The edits run over
 * the whole message at once and again in pieces; both outputs must be the same bytes, within the
 * bound the proxy sizes its send buffer by (twice the input plus the inserted fields), and every
 * output line that starts with a dot must start with two (fresh dot-stuffing: the backend can
 * never see an end of data inside the message).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdr_edit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DEL(n, i) \
	{ \
		MOAT_HDR_DELETE, (char *)(n), NULL, (i) \
	}
#define INS(n, v) \
	{ \
		MOAT_HDR_INSERT_TOP, (char *)(n), (char *)(v), 0 \
	}

static const struct moat_hdr_edit sets[4][4] = {
	{ INS("Authentication-Results", "mx; spf=pass") },
	{ DEL("Authentication-Results", 2), DEL("Authentication-Results", 1),
	    INS("Authentication-Results", "mx;\r\n\tdkim=pass") },
	{ DEL("Authentication-Results ", 1), DEL("X", 3), INS(".Dot", ".v") },
	{ DEL("A", 1), DEL("A", 1), DEL("a", 2) },
};
static const size_t nsets[4] = { 1, 3, 3, 3 };

struct out {
	char *buf;
	size_t len, cap;
};

static void
collect(void *arg, const char *p, size_t n)
{
	struct out *o = arg;

	if (n > o->cap - o->len)
		abort(); /* past the bound the proxy's send buffer is sized by */
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct out a = { 0 }, b = { 0 };
	static struct px_edit e;
	const struct moat_hdr_edit *ed;
	size_t ne, piece, ins = 0;
	char *msg;
	int ra;

	if (size < 1 || size > 65536)
		return 0;
	ed = sets[data[0] & 3];
	ne = nsets[data[0] & 3];
	piece = 1 + (data[0] >> 2);
	data++;
	size--;
	for (size_t i = 0; i < ne; i++)
		if (ed[i].op == MOAT_HDR_INSERT_TOP)
			ins += strlen(ed[i].name) + strlen(ed[i].value) + 4;
	if ((msg = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(msg, data, size);
	/* stuffing at most doubles; a last field without CRLF gets one */
	a.cap = b.cap = 2 * size + 2 * ins + 4;
	a.buf = malloc(a.cap ? a.cap : 1);
	b.buf = malloc(b.cap ? b.cap : 1);
	if (a.buf == NULL || b.buf == NULL)
		abort();
	/* -1: the header reader refused the section, whole and in pieces alike */
	ra = px_edit_message(ed, ne, msg, size, collect, &a);
	if (px_edit_begin(&e, ed, ne, collect, &b) < 0)
		abort();
	for (size_t off = 0; off < size; off += piece)
		px_edit_feed(&e, msg + off, size - off < piece ? size - off : piece);
	if (px_edit_end(&e) != ra)
		abort();
	if (a.len != b.len || memcmp(a.buf, b.buf, a.len) != 0)
		abort();
	for (size_t i = 0; i < a.len; i++)
		if ((i == 0 || a.buf[i - 1] == '\n') && a.buf[i] == '.' &&
		    (i + 1 == a.len || a.buf[i + 1] != '.'))
			abort();
	free(a.buf);
	free(b.buf);
	free(msg);
	return 0;
}
