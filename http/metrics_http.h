/*
 * metrics_http.h - the metrics endpoint both daemons serve: GET /metrics in the Prometheus text
 * format, from the core's counters (metrics.h), on metrics_listen, to the clients metrics_allow
 * lists.
 *
 * Front-end glue, not core: it opens sockets. The server is libmicrohttpd with its own polling
 * thread (doc/architecture.md says why), the same in mxmoat-proxy and mxmoat-milter. The socket
 * is bound before the daemon detaches and drops privileges, so a bad address or a port in use is
 * a start-up error on the terminal; the thread starts after, in the process that serves.
 */
#ifndef MOAT_METRICS_HTTP_H
#define MOAT_METRICS_HTTP_H

#include <stddef.h>

#include "conf.h"
#include "metrics.h"

struct metrics_http;

/*
 * metrics_http_bind - the listening socket for conf->metrics_listen ("addr:port", "[v6]:port",
 * numeric). Returns the descriptor, -2 when metrics_listen is empty (no endpoint), or -1 with
 * err set.
 */
int metrics_http_bind(const struct moat_conf *conf, char *err, size_t errlen);

/*
 * metrics_http_start - serve FD (from metrics_http_bind, now owned) from a thread of its own,
 * rendering M (borrowed; it must outlive the server) for clients in conf->metrics_allow. NULL
 * with err set on failure (FD is then closed).
 */
struct metrics_http *metrics_http_start(int fd, const struct moat_conf *conf,
    struct moat_metrics *m, char *err, size_t errlen);

/* metrics_http_stop - stop the thread and close the socket; NULL is a no-op. */
void metrics_http_stop(struct metrics_http *h);

#endif /* MOAT_METRICS_HTTP_H */
