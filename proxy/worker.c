/*
 * worker.c - the event-loop threads of mxmoat-proxy: each worker's loop, its SO_REUSEPORT
 * listeners (accept.c takes the connections, conn.c serves them), its Redis store, its start,
 * stop and drain.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>
#include <uv.h>

#include "cidr.h"
#include "conn.h"
#include "log.h"
#include "proxy_inbound.h"
#include "ratelimit_uv.h"
#include "smtp_session.h"
#include "stream.h"
#include "tls.h"
#include "worker.h"

/* px__worker_drained - the worker stops and has no session left: close what sessions shared, so the
 * loop can end (and be closed). */
void
px__worker_drained(struct px_worker *w)
{
	px_rlredis_close(w->rlr);
	w->rlr = NULL;
	moat_conf_unref(w->bexts_conf);
	w->bexts_conf = NULL;
	uv_close((uv_handle_t *)&w->inline_idle, NULL);
}

int
px_listen_bind(const char *hostport, bool first, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	char path[8];
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (px_stream_addr(hostport, &ss, path, sizeof(path)) != 0) {
		snprintf(err, errlen, "%s: not a numeric host:port", hostport);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "%s: socket: %s", hostport, strerror(errno));
		return -1;
	}
	sslen = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* [::] is IPv6 only (as in Postfix): 0.0.0.0 and [::] on one port are two listeners, and the
	 * exclusive first bind of one does not collide with the other */
	if (ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) {
		snprintf(err, errlen, "%s: IPV6_V6ONLY: %s", hostport, strerror(errno));
		close(fd);
		return -1;
	}
	/* libuv 1.44 has no flag for SO_REUSEPORT: each worker binds its own socket. The first one
	 * binds without it (exclusive: fails if anyone listens there) and sets it before listen(),
	 * which is when Linux forms the group the other workers join. */
	if (first && bind(fd, (struct sockaddr *)&ss, sslen) != 0) {
		if (errno == EADDRINUSE)
			snprintf(err, errlen,
			    "%s: already in use: another mxmoat-proxy (reload a running one "
			    "with SIGHUP) or another server listens there",
			    hostport);
		else
			snprintf(err, errlen, "%s: bind: %s", hostport, strerror(errno));
		close(fd);
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    (!first && bind(fd, (struct sockaddr *)&ss, sslen) != 0) || listen(fd, 511) != 0) {
		snprintf(err, errlen, "%s: bind: %s", hostport, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void
on_stop(uv_async_t *a)
{
	struct px_worker *w = a->data;

	for (size_t i = 0; i < w->nlisteners; i++)
		if (!uv_is_closing((uv_handle_t *)&w->listeners[i])) {
			/* a poll handle does not own its socket; closed, it no longer watches it */
			uv_close((uv_handle_t *)&w->listeners[i], NULL);
			close(w->listen_fd[i]);
		}
	uv_close((uv_handle_t *)&w->accept_pause, NULL);
	if (w->reserve_fd >= 0)
		close(w->reserve_fd);
	w->reserve_fd = -1;
	uv_close((uv_handle_t *)&w->stop, NULL);
	/* Redis (and the inline queue) stay for the sessions draining; without any, they go now */
	w->stopping = true;
	if (atomic_load(&w->sessions) == 0)
		px__worker_drained(w);
}

struct px_worker *
px_worker_new(struct moat_policy *pol, const int *fds, size_t nfds, char *err, size_t errlen)
{
	struct px_worker *w = calloc(1, sizeof(*w));

	if (w == NULL || nfds > PX_LISTEN_MAX) {
		snprintf(err, errlen, "out of memory");
		free(w);
		return NULL;
	}
	w->pol = pol;
	w->rl = moat_policy_ratelimit(pol);
	if (uv_loop_init(&w->loop) != 0) {
		snprintf(err, errlen, "uv_loop_init failed");
		free(w);
		return NULL;
	}
	uv_async_init(&w->loop, &w->stop, on_stop);
	w->stop.data = w;
	uv_idle_init(&w->loop, &w->inline_idle);
	w->inline_idle.data = w;
	uv_timer_init(&w->loop, &w->accept_pause);
	w->accept_pause.data = w;
	w->reserve_fd = px__conn_reserve();
	if (px_worker_listen(w, fds, nfds, false, err, errlen) != 0)
		return NULL;
	return w;
}

static void
worker_main(void *arg)
{
	struct px_worker *w = arg;

	uv_run(&w->loop, UV_RUN_DEFAULT);
	atomic_store(&w->done, 1);
}

int
px_worker_start(struct px_worker *w)
{
	return uv_thread_create(&w->thread, worker_main, w);
}

void
px_worker_stop(struct px_worker *w)
{
	uv_async_send(&w->stop);
}

int
px_worker_done(struct px_worker *w)
{
	return atomic_load(&w->done);
}

unsigned
px_worker_sessions(struct px_worker *w)
{
	return atomic_load(&w->sessions);
}

int
px_worker_set_redis(struct px_worker *w, const struct moat_conf *conf, char *err, size_t errlen)
{
	if (moat_ratelimit_store(w->rl) != MOAT_RL_STORE_REDIS)
		return 0;
	if ((w->rlr = px_rlredis_new(&w->loop, w->rl, conf)) == NULL) {
		snprintf(err, errlen, "ratelimit_redis: cannot resolve '%s' (or out of memory)",
		    conf->ratelimit_redis);
		return -1;
	}
	return 0;
}

int
px_worker_listen(struct px_worker *w, const int *fds, size_t nfds, bool tls, char *err,
    size_t errlen)
{
	for (size_t i = 0; i < nfds; i++) {
		size_t k = w->nlisteners;

		if (k == PX_LISTEN_MAX) {
			snprintf(err, errlen, "too many listeners (at most %d)", PX_LISTEN_MAX);
			return -1;
		}
		if (uv_poll_init_socket(&w->loop, &w->listeners[k], fds[i]) != 0) {
			snprintf(err, errlen, "cannot listen on fd %d", fds[i]);
			return -1;
		}
		w->listeners[k].data = w;
		w->listen_fd[k] = fds[i];
		w->listen_tls[k] = tls;
		w->nlisteners++;
		if (uv_poll_start(&w->listeners[k], UV_READABLE, px__conn_accept) != 0) {
			snprintf(err, errlen, "cannot listen on fd %d", fds[i]);
			return -1;
		}
	}
	return 0;
}
