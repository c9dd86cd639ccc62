/*
 * worker.h - event-loop threads of mxmoat-proxy. Each worker owns one uv loop, its own
 * SO_REUSEPORT listening sockets (the kernel spreads connections over them) and the sessions
 * accepted there. The listening sockets are bound by the main thread before privileges drop.
 */
#ifndef PX_WORKER_H
#define PX_WORKER_H

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"

#define PX_LISTEN_MAX 16

struct px_worker;

/*
 * px_listen_bind - one bound, listening, non-blocking socket for "host:port"; fd or -1 (err set).
 * Each worker has its own socket per address, in one SO_REUSEPORT group. The first (first = true)
 * is bound before SO_REUSEPORT is set on it, so the bind fails if anything at all listens there
 * already, another mxmoat-proxy included: a second instance cannot join the group and split the
 * connections with the running one. It stays bound for the life of the process, so no later
 * start can get in either; the workers' sockets bound after it join it.
 */
int px_listen_bind(const char *hostport, bool first, char *err, size_t errlen);

/* px_worker_new - a worker serving fds (taken over, plaintext); pol borrowed. */
struct px_worker *px_worker_new(struct moat_policy *pol, const int *fds, size_t nfds, char *err,
    size_t errlen);
int px_worker_start(struct px_worker *w);
/* px_worker_stop - thread-safe: close the listeners; the loop ends when its sessions have. */
void px_worker_stop(struct px_worker *w);
/* px_worker_done - thread-safe: has the loop ended? */
int px_worker_done(struct px_worker *w);
/* px_worker_sessions - thread-safe: sessions open now. */
unsigned px_worker_sessions(struct px_worker *w);

/* px_worker_set_redis - this loop's own Redis connection for the policy's rate limiter, when
 * ratelimit_store = redis (else nothing). Before px_worker_start; 0 or -1 (err set). */
int px_worker_set_redis(struct px_worker *w, const struct moat_conf *conf, char *err,
    size_t errlen);

/* px_worker_listen - more listening fds (taken over; implicit TLS when tls); before
 * px_worker_start. 0 or -1 (err set). */
int px_worker_listen(struct px_worker *w, const int *fds, size_t nfds, bool tls, char *err,
    size_t errlen);

#endif /* PX_WORKER_H */
