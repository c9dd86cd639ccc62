/*
 * fuzz_bdat.c - CHUNKING (RFC 3030): BDAT's reader and the proxy's session with proxy_chunking
 * on. Two checks per input, beyond the sanitizers:
 *
 * - the reader: the input, cut into chunks where its first bytes say, through px_data_chunk and
 *   px_data_chunk_end gives exactly the error, content and wire bytes px_data_feed gives for the
 *   same message sent with DATA (tests/helpers/bdat_oracle.c), and the wire never holds an end of
 *   data;
 * - the session: the input as client bytes (BDAT commands and their chunks among them) into a
 *   session whose BDAT messages are held (in memory, or past 4 KB in a spool file) and go to the
 *   simulated backend as DATA (tests/helpers/sim_session.c): its stream stays canonical, and it
 *   never gets more messages than the client's bytes hold ends of data and "LAST" words.
 *
 * Input: byte 0 picks options (bit 0: proxy_bare_newline=normalize, bit 1: spool past 4 KB,
 * bits 2-7: read size - 1 for the session, and the seed of the reader's cuts); the rest is the
 * client's bytes, and the BDAT message for the reader.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bdat_oracle.h"
#include "conf.h"
#include "data_reader.h"
#include "policy.h"
#include "sim_session.h"

#define RAW_MAX 4096

struct out {
	char content[2 * RAW_MAX + 8], wire[4 * RAW_MAX + 16];
	size_t clen, wlen;
};

static struct moat_policy *pols[4];
static char dir[64];

/* out_append - N bytes at P onto BUF (CAP bytes, LEN used); more than fits is a bug here. */
static void
out_append(char *buf, size_t cap, size_t *len, const char *p, size_t n)
{
	if (n > cap - *len)
		abort();
	memcpy(buf + *len, p, n);
	*len += n;
}

static void
out_content(void *arg, const char *p, size_t n)
{
	struct out *o = arg;

	out_append(o->content, sizeof(o->content), &o->clen, p, n);
}

static void
out_wire(void *arg, const char *p, size_t n)
{
	struct out *o = arg;

	out_append(o->wire, sizeof(o->wire), &o->wlen, p, n);
}

/* reader_check - RAW[0..n) as chunks cut by SEED against the oracle's DATA. */
static void
reader_check(const char *raw, size_t n, bool normalize, unsigned seed)
{
	static char stuffed[2 * RAW_MAX + 5];
	static struct out a, b;
	struct px_data da, db;
	size_t sn, used;
	bool done;

	a.clen = a.wlen = b.clen = b.wlen = 0;
	sn = bdat_oracle_stuff(raw, n, stuffed);
	px_data_init(&da, normalize, out_content, out_wire, &a);
	used = px_data_feed(&da, stuffed, sn, &done);
	if (!done || used != sn)
		abort(); /* the oracle's own end of data */
	px_data_init(&db, normalize, out_content, out_wire, &b);
	bdat_oracle_chunks(&db, raw, n, &seed);
	if (da.err != db.err)
		abort();
	if (da.err != PX_DATA_OK)
		return;
	if (a.clen != b.clen || memcmp(a.content, b.content, a.clen) != 0 || a.wlen != b.wlen ||
	    memcmp(a.wire, b.wire, a.wlen) != 0)
		abort();
	if ((b.wlen >= 3 && memcmp(b.wire, ".\r\n", 3) == 0) ||
	    memmem(b.wire, b.wlen, "\r\n.\r\n", 5) != NULL)
		abort(); /* an end of data inside the message */
}

static void
bdat_cleanup(void)
{
	rmdir(dir);
}

/* bdat_policy - chunking on, for options OPT (bits 0 and 1 of byte 0). */
static struct moat_policy *
bdat_policy(unsigned opt)
{
	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "/tmp/mxmoat-fuzz-bdat.XXXXXX");
		if (mkdtemp(dir) == NULL)
			abort();
		atexit(bdat_cleanup);
	}
	struct moat_conf_override ov[] = {
		{ "proxy_chunking", "yes" },
		{ "proxy_bare_newline", (opt & 1) ? "normalize" : "reject" },
		{ "proxy_hold_memory", (opt & 2) ? "4k" : "64k" },
		{ "proxy_spool_dir", dir },
		{ "limit_message_size", "16k" },
		{ "limit_line_length", "512" },
		{ "log_target", "stderr" },
	};
	return sim_session_policy(ov, sizeof(ov) / sizeof(ov[0]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned opt;

	if (size < 1)
		return 0;
	opt = data[0] & 3;
	if (size - 1 <= RAW_MAX)
		reader_check((const char *)data + 1, size - 1, (opt & 1) != 0, data[0]);
	if (pols[opt] == NULL)
		pols[opt] = bdat_policy(opt);
	sim_session_client_run(pols[opt], (const char *)data + 1, size - 1,
	    (size_t)(data[0] >> 2) * 4 + 1);
	return 0;
}
