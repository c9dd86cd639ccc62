/*
 * data_reader.h - the DATA byte stream (RFC 5321 4.1.1.4, 4.5.2): finds the one true end of data
 * (<CR><LF>.<CR><LF> and nothing else), removes dot-stuffing for the policy, and writes canonical
 * CRLF with fresh dot-stuffing for the backend, so the backend can never see a second end of data
 * (the CVE-2023-51764/5/6 smuggling class). A bare CR, bare LF or NUL is an error in reject mode;
 * in normalize mode a bare CR or LF becomes CRLF inside the content once the end of data has been
 * looked for in the bytes received (CR CR LF is two line ends, never folded), and a dot after it
 * is content, stuffed afresh: a fake end of data is a body line "." ("..") on the wire.
 */
#ifndef PX_DATA_READER_H
#define PX_DATA_READER_H

#include <stdbool.h>
#include <stddef.h>

enum px_data_err {
	PX_DATA_OK = 0,
	PX_DATA_BARE, /* bare CR or LF */
	PX_DATA_NUL, /* NUL byte */
};

/* Called with unstuffed content (CRLF line ends, final CRLF before the dot included). */
typedef void (*px_data_content_fn)(void *arg, const char *p, size_t n);
/* Called with bytes for the backend: canonical, dot-stuffed, without the final ".\r\n". */
typedef void (*px_data_wire_fn)(void *arg, const char *p, size_t n);

struct px_data {
	int state;
	enum px_data_err err; /* first error seen; output stops after it */
	bool normalize;
	px_data_content_fn content;
	px_data_wire_fn wire;
	void *arg;
	size_t clen, wlen; /* staged bytes in cbuf / wbuf */
	bool chunk_bol; /* BDAT: the next octet starts a line (after a CRLF, or the first) */
	bool chunk_cr; /* BDAT: the last octet was a CR */
	char cbuf[4096];
	char wbuf[4096 + 8];
};

void px_data_init(struct px_data *d, bool normalize, px_data_content_fn content,
    px_data_wire_fn wire, void *arg);

/*
 * px_data_feed - consume buf[0..len); returns the bytes used. *done is set when the end of data
 * was consumed (the bytes after it are the next commands). Errors are recorded in d->err and the
 * stream is still read up to the real end of data, so the client and the proxy stay in step.
 */
size_t px_data_feed(struct px_data *d, const char *buf, size_t len, bool *done);

/*
 * px_data_chunk - the octets of a BDAT chunk (RFC 3030 2: counted, never dot-stuffed): stuffed
 * here as a DATA client would stuff them and read by px_data_feed, so they meet the same checks
 * and give the same content and wire bytes as the same message sent with DATA. A "." line in a
 * chunk is content, and reaches the backend as "..". Never the end of data.
 */
void px_data_chunk(struct px_data *d, const char *p, size_t n);

/*
 * px_data_chunk_end - after the LAST chunk: the end of data, with a CRLF first when the message
 * did not end in one (a bare CR before it stays a bare CR, refused in reject mode).
 */
void px_data_chunk_end(struct px_data *d);

#endif /* PX_DATA_READER_H */
