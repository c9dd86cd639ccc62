/*
 * tls.h - mxmoat's TLS engine: OpenSSL 3 driven through memory BIOs, no sockets, no libuv.
 *
 * A struct moat_tls_ctx holds everything built from the configuration: one SSL_CTX per server
 * certificate set (the default set from tls_cert_file/tls_key_file and one per SNI name from
 * tls_sni_map, RSA and ECDSA pairs side by side in each), the session-ticket keys, and the client
 * SSL_CTX used towards the backend. It is reference counted and immutable once built, so every
 * event loop shares it and a SIGHUP can build a new one while sessions keep the one they hold.
 *
 * A struct moat_tls_conn is one TLS session. The caller moves bytes: ciphertext received from the
 * peer goes in with moat_tls_feed(), ciphertext to send comes out of moat_tls_pending_out() and is
 * released with moat_tls_consume(); plaintext comes out of moat_tls_read() and goes in with
 * moat_tls_write(). The handshake is driven by moat_tls_feed() (and moat_tls_conn_new() for a
 * client, which queues the ClientHello). After every moat_tls_feed() and moat_tls_read() the caller
 * sends whatever moat_tls_pending_out() holds: alerts, handshake messages, tickets and key updates
 * are produced by both. The caller enforces tls_handshake_timeout and bounds how much it feeds
 * before reading (the input BIO grows with what is fed).
 *
 * Threads: a context may be used from any number of threads at once; one session from one thread
 * at a time.
 */
#ifndef MOAT_TLS_H
#define MOAT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "conf.h"
#include "policy.h"

#define MOAT_TLS_ERR_MAX 256 /* one error message: what failed, the file, OpenSSL's reason */

struct moat_tls_ctx;
struct moat_tls_conn;

enum moat_tls_role {
	MOAT_TLS_SERVER,
	MOAT_TLS_CLIENT
};

enum moat_tls_state {
	MOAT_TLS_HANDSHAKE, /* handshake in progress */
	MOAT_TLS_OPEN, /* handshake done; application data flows */
	MOAT_TLS_CLOSED, /* the peer sent close_notify (no more plaintext will come) */
	MOAT_TLS_FAILED, /* fatal error; moat_tls_conn_error() says why; send what is pending, then close */
};

/*
 * moat_tls_ctx_new - build the TLS contexts CONF describes (borrowed; nothing kept).
 * Refuses, with a message naming the file and the reason in err: an unreadable or bad certificate or
 * key, a key file readable by group or others, a certificate that does not match its key, unequal
 * tls_cert_file/tls_key_file lists, a cipher list that selects a suite without forward secrecy,
 * unknown groups. With no certificate configured the context is still built (server side
 * disabled: moat_tls_ctx_server_ready() is false, STARTTLS is not offered). Returns one reference.
 */
struct moat_tls_ctx *moat_tls_ctx_new(const struct moat_conf *conf, char *err, size_t errlen);

/*
 * moat_tls_ctx_reload - build a context from CONF for a SIGHUP. OLD (borrowed) donates its
 * session-ticket keys so tickets issued before the reload still resume. On error returns NULL with
 * the reason in err; the caller keeps OLD unchanged.
 */
struct moat_tls_ctx *moat_tls_ctx_reload(struct moat_tls_ctx *old, const struct moat_conf *conf,
    char *err, size_t errlen);

struct moat_tls_ctx *moat_tls_ctx_ref(struct moat_tls_ctx *ctx);
void moat_tls_ctx_unref(struct moat_tls_ctx *ctx); /* NULL is a no-op */

/* moat_tls_ctx_server_ready - a certificate is configured: STARTTLS / implicit TLS can be offered. */
bool moat_tls_ctx_server_ready(const struct moat_tls_ctx *ctx);

/*
 * moat_tls_conn_new - a new session on CTX (a reference is taken). For MOAT_TLS_CLIENT, NAME is the
 * server name sent as SNI and verified against the certificate (NULL: tls_backend_verify_name), and
 * the ClientHello is queued for moat_tls_pending_out(). NAME is ignored for a server. Returns NULL
 * with a reason in err (out of memory, no certificate for a server).
 */
struct moat_tls_conn *moat_tls_conn_new(struct moat_tls_ctx *ctx, enum moat_tls_role role,
    const char *name, char *err, size_t errlen);
void moat_tls_conn_free(struct moat_tls_conn *conn); /* NULL is a no-op */

/*
 * moat_tls_feed - hand LEN bytes of ciphertext from the peer to the session and advance the
 * handshake. Returns 0, or -1 when the session failed (state MOAT_TLS_FAILED; an alert may be
 * pending in the output).
 */
int moat_tls_feed(struct moat_tls_conn *conn, const void *data, size_t len);

/*
 * moat_tls_read - decrypted plaintext, up to LEN bytes. Returns the count, 0 when no complete
 * record is buffered (feed more; or the state is MOAT_TLS_CLOSED), -1 on error (MOAT_TLS_FAILED).
 */
ssize_t moat_tls_read(struct moat_tls_conn *conn, void *buf, size_t len);

/* moat_tls_write - encrypt LEN bytes (state must be MOAT_TLS_OPEN). Returns 0 or -1. */
int moat_tls_write(struct moat_tls_conn *conn, const void *data, size_t len);

/* moat_tls_shutdown - queue a close_notify alert. */
void moat_tls_shutdown(struct moat_tls_conn *conn);

/*
 * moat_tls_pending_out - ciphertext waiting to be sent: *ptr points into the session's buffer and
 * stays valid until the next call on CONN. Returns the length (0: nothing to send).
 */
size_t moat_tls_pending_out(struct moat_tls_conn *conn, const void **ptr);
/* moat_tls_consume - LEN bytes of the pending output have been taken by the caller. */
void moat_tls_consume(struct moat_tls_conn *conn, size_t len);

enum moat_tls_state moat_tls_conn_state(const struct moat_tls_conn *conn);
/* moat_tls_conn_error - why the session failed ("" if it did not); valid until the next call. */
const char *moat_tls_conn_error(const struct moat_tls_conn *conn);

/* moat_tls_info - the session's facts for the policy core and the log (active false before OPEN). */
void moat_tls_info(const struct moat_tls_conn *conn, struct moat_tls_info *info);

/* moat_tls_conn_resumed - the handshake resumed an earlier session (ticket). */
bool moat_tls_conn_resumed(const struct moat_tls_conn *conn);

#endif /* MOAT_TLS_H */
