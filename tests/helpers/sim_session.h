/*
 * sim_session.h - the proxy's session (proxy/smtp_session.c) driven without sockets, for the fuzz
 * targets (tests/fuzz/fuzz_smtp_session.c, tests/fuzz/fuzz_hdr_reader.c): px_ops whose backend is
 * the simulated MTA (sim_mta.c; a recipient starting with "r" is unknown there, 550), whose work
 * items run at once, and which abort() when the backend stream is not canonical: a write to a
 * closed leg, a NUL, a bare CR or LF. What the client is told is kept (its first 8 KB).
 *
 * A hostile backend (sim_session_hostile): its greeting and each reply are the next piece of a
 * script instead of what the simulated MTA would say; a piece that starts with 0xfe is the leg
 * failing (px_session_backend_error) instead. Once the script is spent, the MTA answers again.
 */
#ifndef SIM_SESSION_H
#define SIM_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"
#include "sim_mta.h"
#include "smtp_session.h"

/* A client leg of the driver's own (fuzz_tls_session.c: a TLS stream): what the session says is
 * written there too, STARTTLS is offered, and starting TLS is the leg's. */
struct sim_leg {
	void (*write)(void *arg, const char *p, size_t n);
	int (*starttls)(void *arg); /* 0 or -1, as px_ops.client_starttls */
};

struct sim_session {
	struct px_session *s;
	const struct sim_leg *leg; /* NULL: the client is the buffer below alone, without TLS */
	void *leg_arg;
	bool closed, bopen, bconnect_pending, work_pending;
	bool drop; /* the hostile backend fails the leg next */
	struct sim_mta mta;
	char bline[8192]; /* current line the backend is receiving */
	size_t blen;
	char last; /* last byte written to the backend */
	char replies[8192]; /* replies the simulated backend owes */
	size_t rlen;
	size_t messages; /* final dots the backend received inside DATA */
	char client[8192]; /* what the client was told */
	size_t clen;
	const char *hostile; /* the hostile backend's script left (borrowed), or NULL */
	size_t hlen;
};

#define SIM_HOSTILE_SEP '\xff' /* ends one piece of a hostile backend's script */
#define SIM_HOSTILE_DROP '\xfe' /* a piece starting with it: the backend leg fails there */

/* sim_session_policy - a policy with these overrides, logging to stderr; abort() on a bad one. */
struct moat_policy *sim_session_policy(const struct moat_conf_override *ov, size_t n);

/*
 * sim_session_start - a session on pol for a client 192.0.2.1 on listener 127.0.0.1:25, started,
 * its backend events settled. -1 when px_session_new fails.
 */
int sim_session_start(struct sim_session *sm, struct moat_policy *pol);

/*
 * sim_session_start_leg - the same with a client leg (borrowed; arg its argument): STARTTLS
 * offered, or with implicit the session waits for TLS (px_session_tls_implicit); the driver then
 * calls px_session_tls_started and, for implicit TLS, px_session_start.
 */
int sim_session_start_leg(struct sim_session *sm, struct moat_policy *pol,
    const struct sim_leg *leg, void *arg, bool implicit);

/*
 * sim_session_hostile - from now on the backend is the script p[0..n) (borrowed: it must outlive
 * the session), pieces separated by SIM_HOSTILE_SEP.
 */
void sim_session_hostile(struct sim_session *sm, const char *p, size_t n);

/*
 * sim_session_client_run - a whole session on pol for the client bytes p[0..n), sent in reads of
 * at most chunk bytes; abort() when the backend received more messages than those bytes hold
 * real ends of data (<CR><LF>.<CR><LF>, overlapping ones counted; with proxy_chunking, plus the
 * "LAST" words a BDAT message needs): a message made of a fake end of data is smuggling. Nothing when px_session_new fails.
 */
void sim_session_client_run(struct moat_policy *pol, const char *p, size_t n, size_t chunk);

/* sim_session_settle - deliver owed backend events and finished work until nothing moves. */
void sim_session_settle(struct sim_session *sm);

/*
 * sim_session_client - the client sends p[0..n) in reads of at most chunk bytes, settling after
 * each. Returns the bytes the session did not take (it stopped reading, or closed).
 */
size_t sim_session_client(struct sim_session *sm, const char *p, size_t n, size_t chunk);

/* sim_session_end - the client leaves (unless the session closed); settle; free the session. */
void sim_session_end(struct sim_session *sm);

#endif /* SIM_SESSION_H */
