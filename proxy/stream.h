/*
 * stream.h - one leg of a proxied connection: a TCP (or Unix) stream with optional TLS, the same
 * API for the client leg and the backend leg. The stream reads, decrypts when TLS is on, and hands
 * plaintext to its owner through callbacks; it writes (encrypting when TLS is on), shuts down and
 * closes. The owner embeds or allocates the struct, keeps the timers and decides what a failure
 * means; the stream reports it once through the error callback and never frees its owner.
 */
#ifndef PX_STREAM_H
#define PX_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "policy.h"

struct moat_tls_ctx;
struct moat_tls_conn;

/* What the owner is told. Each pointer may be NULL unless said otherwise. */
struct px_stream_cb {
	/* room to read plaintext in place (NULL, 0: none now: reading pauses until the owner
	 * starts it again); NULL: the stream reads into a buffer of its own and calls input */
	char *(*rbuf)(void *arg, size_t *avail);
	/* N bytes were read into what rbuf gave */
	void (*rdone)(void *arg, size_t n);
	/* plaintext the owner can take from TLS now (NULL: any amount); the rest stays in the
	 * engine until px_stream_tls_pump */
	size_t (*room)(void *arg);
	/* plaintext read (TLS, or without rbuf); required; P is valid for the call only */
	void (*input)(void *arg, const char *p, size_t n);
	/* the TLS handshake finished */
	void (*tls_open)(void *arg, const struct moat_tls_info *info);
	/* the leg is lost: "eof", a libuv error name, "tls" (px_stream_tls_error says why) or
	 * "write"; required. Reading has stopped; the owner closes the stream. */
	void (*error)(void *arg, const char *why);
	/* the connect finished: 0 or a libuv error (then the owner closes the stream) */
	void (*connected)(void *arg, int status);
	/* a queued write finished (also when it was cancelled by a close) */
	void (*written)(void *arg);
	/* the end of a read or connect event on a stream not closed meanwhile */
	void (*update)(void *arg);
	/* the handle is closed; the owner may free the struct now */
	void (*closed)(void *arg);
};

enum px_stream_close {
	PX_STREAM_ABORT, /* close now; queued writes are cancelled */
	PX_STREAM_GRACEFUL, /* TLS close_notify, then a TCP shutdown after the queued writes */
	PX_STREAM_DRAIN /* stop reading; close when the queued writes are out (the owner's timer
			   bounds the wait with PX_STREAM_ABORT) */
};

struct px_stream {
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;
	uv_connect_t creq;
	uv_shutdown_t sreq;
	const struct px_stream_cb *cb;
	void *arg;
	struct moat_tls_conn *tls; /* NULL: plaintext */
	char *rown; /* a read buffer of the stream's own, only during a read */
	bool rtls; /* ... holding ciphertext */
	uint64_t tls_start; /* uv_now when the handshake began */
	uint64_t bytes_in; /* bytes read from the peer (ciphertext with TLS) */
	bool tls_server, tls_reported, connected, reading, closing, drain;
};

/* px_stream_init_tcp - a TCP stream on LOOP (to accept into, or to connect); 0 or a libuv error. */
int px_stream_init_tcp(struct px_stream *st, uv_loop_t *loop, const struct px_stream_cb *cb,
    void *arg);
/* px_stream_set_cb - another owner interface (e.g. after a PROXY header was read). */
void px_stream_set_cb(struct px_stream *st, const struct px_stream_cb *cb, void *arg);

/*
 * px_stream_connect - initialise ST and connect it to SPEC ("host:port", "[v6]:port" or
 * "unix:/path"); 0, then cb->connected later (reading starts when it succeeds), or -1 when nothing
 * was started: with st->closing set the handle was opened and is closing (cb->closed follows).
 */
int px_stream_connect(struct px_stream *st, uv_loop_t *loop, const char *spec,
    const struct px_stream_cb *cb, void *arg);

/* px_stream_addr - parse SPEC as px_stream_connect does: 0 (inet, in ss), 1 (unix, in path), -1. */
int px_stream_addr(const char *spec, struct sockaddr_storage *ss, char *path, size_t pathlen);

/* px_stream_read_start / _read_stop - reading on or off (idempotent). */
int px_stream_read_start(struct px_stream *st);
void px_stream_read_stop(struct px_stream *st);

/*
 * px_stream_write - write P (plaintext) now, or queue a copy of what the kernel did not take.
 * With TLS the bytes are encrypted; what a server leg is asked to say before its handshake ended is
 * dropped (nothing goes in clear once TLS began). 0 or -1 (the leg is unusable).
 */
int px_stream_write(struct px_stream *st, const char *p, size_t n);
/* px_stream_queued - bytes queued for the peer, not yet written. */
size_t px_stream_queued(const struct px_stream *st);

/*
 * px_stream_tls_start - TLS on this leg from now on, on CTX (borrowed; the session takes its own
 * reference), as SERVER or client (which sends its ClientHello now). 0 or -1 (err set).
 */
int px_stream_tls_start(struct px_stream *st, struct moat_tls_ctx *ctx, bool server, char *err,
    size_t errlen);
/* px_stream_tls_pump - report a finished handshake, then deliver buffered plaintext as far as the
 * owner has room (after it made some). */
void px_stream_tls_pump(struct px_stream *st);
/* px_stream_feed - bytes from the peer that were read by other means (after a PROXY header). */
void px_stream_feed(struct px_stream *st, const char *p, size_t n);
/* px_stream_tls_handshaking - TLS is on and its handshake has not finished. */
bool px_stream_tls_handshaking(const struct px_stream *st);
/* px_stream_tls_error - why TLS failed ("" if it did not). */
const char *px_stream_tls_error(const struct px_stream *st);

/* px_stream_close - see enum px_stream_close; cb->closed follows once. Idempotent, and ABORT
 * after DRAIN or GRACEFUL closes at once. */
void px_stream_close(struct px_stream *st, enum px_stream_close how);

#endif /* PX_STREAM_H */
