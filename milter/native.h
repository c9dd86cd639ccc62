/*
 * native.h - mxmoat-milter's own milter protocol server (milter_engine = native): libuv loops,
 * one per worker thread, each accepting on the milter socket and serving its connections with
 * one write per reply and no thread hand-off; a step that waits on DNS, Redis or signing runs on
 * the libuv threadpool (conn.h: PENDING).
 */
#ifndef MOAT_MILTER_NATIVE_H
#define MOAT_MILTER_NATIVE_H

#include <stddef.h>

#include "policy.h"

/*
 * milter_native_listen - bind and listen on conf's milter_socket (inet:PORT@HOST, inet6:PORT@HOST,
 * unix:/path; a unix socket's stale file is replaced, its mode and owner are the caller's): the
 * listening fd, or -1 with err set.
 */
int milter_native_listen(const char *spec, int backlog, char *err, size_t errlen);

/*
 * milter_native_run - serve fd (taken over) with nworkers loops until milter_native_stop; pol
 * (borrowed) must be made without MOAT_POLICY_MAY_BLOCK. With milter_tcp_tuning, inet connections
 * get TCP_NODELAY and TCP_QUICKACK, and on_first_tuned (may be NULL) is called once, from a loop,
 * at the first. 0, or -1 with err set when the loops could not start.
 */
int milter_native_run(int fd, struct moat_policy *pol, unsigned nworkers,
    void (*on_first_tuned)(void), char *err, size_t errlen);

/* milter_native_stop - from another thread (a signal's): close the listeners and drain. A
 * connection with a message in progress (MAIL to end of message or abort) finishes it, for up to
 * the configuration's drain_timeout (0: none), then every connection is closed; the loops end and
 * milter_native_run returns. A second call closes the connections left at once. */
void milter_native_stop(void);

#endif /* MOAT_MILTER_NATIVE_H */
