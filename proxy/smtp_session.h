/*
 * smtp_session.h - the client-side SMTP state machine of mxmoat-proxy, without sockets.
 *
 * The session reads client bytes from its own bounded input buffer, runs commands through a
 * command table, turns them into policy events (src/policy.h) and into commands to the backend,
 * and writes replies. All I/O goes through struct px_ops, so the same code runs under libuv
 * (worker.c) and under the fuzzer (tests/fuzz/fuzz_smtp_session.c). The driver owns the handles;
 * the session tells it what to do and is told what happened. Policy events run through ops->work:
 * the driver calls px_session_work_run, off the loop when px_session_work_blocks, then
 * px_session_work_done on the loop.
 */
#ifndef PX_SMTP_SESSION_H
#define PX_SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"
#include "ratelimit.h"

struct px_session;

struct px_ops {
	/* queue bytes for the client; the driver writes them at the end of the current event */
	void (*client_write)(void *io, const char *p, size_t n);
	/* write what is queued, then close the client connection; no more events but closes */
	void (*client_close)(void *io);
	/* start connecting; 0, then px_session_backend_connected or _backend_error later; -1 now */
	int (*backend_open)(void *io);
	void (*backend_write)(void *io, const char *p, size_t n);
	/* close the backend leg; graceful: after queued writes (QUIT), else at once (abort) */
	void (*backend_close)(void *io, bool graceful);
	/* run px_session_work_run (on a pool thread when px_session_work_blocks, else on the loop),
	 * then px_session_work_done on the loop; both later, never inside this call */
	void (*work)(void *io);
	/* write what is queued in plaintext, then put TLS on the client leg; 0 or -1.
	 * NULL: the driver has no TLS (STARTTLS is never offered). */
	int (*client_starttls)(void *io);
	/* bytes queued for the backend, not yet written (holding mode paces a held message by it);
	 * NULL: none are ever queued */
	size_t (*backend_queued)(void *io);
	/* rate limits: charge the core's pending PLAN (borrowed for the call) in the driver's store
	 * and decide; 0 with the verdict in v, or 1: pending, px_session_ratelimit_done comes later.
	 * NULL: the driver has no store of its own (the core then never pends). */
	int (*ratelimit)(void *io, const struct moat_rl_plan *plan, const char *sid,
	    struct moat_verdict *v);
	/* the backend said 220 to STARTTLS; start the client handshake on the backend
	 * leg: 0, then px_session_backend_tls_done or px_session_backend_error later; -1 now. NULL: the
	 * driver has no TLS (tls_backend = required then tempfails every transaction). */
	int (*backend_starttls)(void *io);
	/* what the driver remembers of its backend's extensions between sessions (PX_EXT_*), learned
	 * from the last leg's EHLO reply under configuration CONF (borrowed, compared only):
	 * backend_learned records it; backend_exts gives it back, or -1 when nothing was learned
	 * under CONF (none yet, or a reload since). NULL: nothing is remembered. */
	void (*backend_learned)(void *io, const struct moat_conf *conf, unsigned exts);
	int (*backend_exts)(void *io, const struct moat_conf *conf);
};

/* The backend extensions our EHLO offers only when the backend has them (we relay, we do not
 * implement them). */
#define PX_EXT_SMTPUTF8 1u /* RFC 6531 */
#define PX_EXT_DSN 2u /* RFC 3461 */

/* Where the client leg is, for the driver's timers (RFC 5321 4.5.3.2). */
enum px_phase {
	PX_PHASE_GREET = 0,
	PX_PHASE_COMMAND,
	PX_PHASE_DATA,
	PX_PHASE_CLOSED
};

/*
 * px_session_new - the connect event. pol: borrowed; client: copied by the core; local_*: where
 * the client connected (for PROXY headers). NULL on out of memory.
 */
struct px_session *px_session_new(struct moat_policy *pol, const struct moat_client *client,
    const char *local_addr, unsigned local_port, const struct px_ops *ops, void *io);
/* px_session_free - after the driver has closed everything and no work is pending. */
void px_session_free(struct px_session *s);

/* px_session_start - greet now (greet = true) or wait for px_session_greet (greet pause). */
void px_session_start(struct px_session *s, bool greet);
void px_session_greet(struct px_session *s);

/* px_session_rbuf - free room in the input buffer (NULL, 0 when full: stop reading). */
char *px_session_rbuf(struct px_session *s, size_t *avail);
/* px_session_rroom - room left in the input buffer, without allocating it. */
size_t px_session_rroom(const struct px_session *s);
/* px_session_rdone - n bytes were read into the room px_session_rbuf gave. */
void px_session_rdone(struct px_session *s, size_t n);
/* px_session_client_gone - the client closed or failed; the session aborts what it was doing. */
void px_session_client_gone(struct px_session *s);
/* px_session_timeout - a client timer fired (idle, data, lifetime): 421 4.4.2 and close. */
void px_session_timeout(struct px_session *s, const char *which);

void px_session_backend_connected(struct px_session *s);
void px_session_backend_input(struct px_session *s, const char *p, size_t n);
/* px_session_backend_drained - a backend write finished (holding mode sends the next piece). */
void px_session_backend_drained(struct px_session *s);
/* px_session_backend_error - connect failed, EOF, write error or timeout on the backend leg. */
void px_session_backend_error(struct px_session *s, const char *why);

/* TLS */
/* px_session_tls_offer - this plaintext session may offer STARTTLS (a certificate is loaded). */
void px_session_tls_offer(struct px_session *s, bool offer);
/* px_session_tls_started - the handshake finished (STARTTLS or implicit TLS): facts to the core. */
void px_session_tls_started(struct px_session *s, const struct moat_tls_info *info);
/* px_session_backend_tls_done - the handshake with the backend finished (its certificate verified). */
void px_session_backend_tls_done(struct px_session *s, const struct moat_tls_info *info);

/* px_session_tls_implicit - an implicit-TLS connection: the TLS limit, then ops->client_starttls. */
void px_session_tls_implicit(struct px_session *s);
/* px_session_ratelimit_done - the store's verdict for a pending ops->ratelimit charge. */
void px_session_ratelimit_done(struct px_session *s, const struct moat_verdict *v);

/* px_session_work_blocks - may the pending work item block (DNS, signing, hashing a held body,
 * spool I/O)? Asked when ops->work is called. */
bool px_session_work_blocks(const struct px_session *s);
void px_session_work_run(struct px_session *s);
void px_session_work_done(struct px_session *s);

enum px_phase px_session_phase(const struct px_session *s);
/* px_session_backend_waiting - a backend reply or connection is awaited (backend timer runs). */
bool px_session_backend_waiting(const struct px_session *s);
const char *px_session_id(const struct px_session *s);
/* px_session_conf - the snapshot this session took at connect (borrowed). */
const struct moat_conf *px_session_conf(const struct px_session *s);

#endif /* PX_SMTP_SESSION_H */
