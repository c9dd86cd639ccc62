/*
 * native.c - the milter protocol server of milter_engine = native (see native.h): the worker
 * threads, each with one uv loop and a listener on its own dup of the milter socket, accept, TCP
 * tuning and stop. What a connection does once accepted is native_conn.c's.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>
#include <uv.h>

#include "log.h"
#include "native.h"
#include "native_int.h"

#define WORKERS_MAX 64

static struct nat_worker *workers;
static unsigned nworkers_running;
static atomic_uint stops; /* milter_native_stop calls: the first drains, the second cuts */
/* held by milter_native_stop while it wakes the loops; loops_closed once they may not be woken */
static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static bool loops_closed;
static void (*first_tuned)(void); /* set before the loops start */
static atomic_bool tuned_once;

/* ---- accepting ---- */

/*
 * conn_tune - TCP_NODELAY, so a reply is never held for an ACK, and TCP_QUICKACK, re-armed by
 * on_read after every read because the kernel leaves quickack mode on its own (tcp(7)): the MTA
 * writes a macro packet and a command packet back to back, and Nagle holds its second write until
 * the first is ACKed, so a delayed ACK here would stall every protocol round by up to 40 ms. The
 * first tuned connection is reported once.
 */
static void
conn_tune(struct nat_conn *c)
{
	uv_os_fd_t fd;
	int one = 1;

	if (uv_tcp_nodelay(&c->h.tcp, 1) != 0 || uv_fileno(&c->h.handle, &fd) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one)) != 0)
		return;
	c->quickack = true;
	if (!atomic_exchange(&tuned_once, true) && first_tuned != NULL)
		first_tuned();
}

static void
on_connection(uv_stream_t *lis, int status)
{
	struct nat_worker *w = lis->data;
	struct nat_conn *c;

	if (status < 0 || atomic_load(&stops) > 0 || (c = nat__conn_new(w)) == NULL)
		return;
	if (uv_accept(lis, &c->h.stream) != 0) {
		nat__conn_close(c);
		return;
	}
	if (w->tcp && w->nodelay)
		conn_tune(c);
	nat__conn_start(c);
}

void
nat__worker_drained(struct nat_worker *w)
{
	if (w->drained)
		return;
	w->drained = true;
	uv_close((uv_handle_t *)&w->drain, NULL);
	uv_close((uv_handle_t *)&w->stop, NULL);
}

/* drain_cut - the connections left are closed: drain_timeout has passed, or a second signal */
static void
drain_cut(struct nat_worker *w, const char *why)
{
	unsigned cut = 0;

	for (struct nat_conn *c = w->conns; c != NULL; c = c->next, cut++)
		nat__conn_close(c);
	moat_log(LOG_WARNING, NULL, "drain", "%s connections_cut=%u", why, cut);
}

static void
on_drain_timeout(uv_timer_t *t)
{
	drain_cut(t->data, "timeout");
}

/*
 * on_stop - SIGTERM: no more accepting; a connection with a message in progress finishes it (for
 * up to drain_timeout), the others close now; the loop ends with the last one. The MTA applies
 * its milter_default_action to later messages of those sessions. A second signal cuts them.
 */
static void
on_stop(uv_async_t *a)
{
	struct nat_worker *w = a->data;
	struct nat_conn *c, *next;

	if (!w->draining) {
		w->draining = true;
		uv_close(&w->lis.handle, NULL);
		for (c = w->conns; c != NULL; c = next) {
			next = c->next;
			if (w->drain_ms == 0)
				nat__conn_close(c);
			else
				nat__conn_drain(c);
		}
		if (w->conns == NULL) {
			nat__worker_drained(w);
			return;
		}
		uv_timer_start(&w->drain, on_drain_timeout, w->drain_ms, 0);
	}
	/* a second signal (its wake-up may have merged with the first's) */
	if (atomic_load(&stops) > 1)
		drain_cut(w, "signal");
}

static void *
worker_main(void *arg)
{
	struct nat_worker *w = arg;

	uv_run(&w->loop, UV_RUN_DEFAULT);
	return NULL;
}

/* worker_init - the loop of one worker, listening on its own dup of fd */
static int
worker_init(struct nat_worker *w, int fd, bool tcp, struct moat_policy *pol, char *err,
    size_t errlen)
{
	struct moat_conf *conf = moat_policy_conf(pol);
	int dfd = dup(fd), rc;

	w->pol = pol;
	w->tcp = tcp;
	w->timeout_ms = conf->milter_timeout;
	w->nodelay = conf->milter_tcp_tuning;
	w->drain_ms = conf->drain_timeout;
	moat_conf_unref(conf);
	if (dfd < 0 || uv_loop_init(&w->loop) != 0) {
		snprintf(err, errlen, "cannot start a loop: %s", strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	uv_async_init(&w->loop, &w->stop, on_stop);
	w->stop.data = w;
	uv_timer_init(&w->loop, &w->drain);
	w->drain.data = w;
	rc = tcp ? uv_tcp_init(&w->loop, &w->lis.tcp) : uv_pipe_init(&w->loop, &w->lis.pipe, 0);
	if (rc == 0)
		rc = tcp ? uv_tcp_open(&w->lis.tcp, dfd) : uv_pipe_open(&w->lis.pipe, dfd);
	w->lis.handle.data = w;
	if (rc == 0)
		rc = uv_listen(&w->lis.stream, SOMAXCONN, on_connection);
	if (rc != 0) {
		snprintf(err, errlen, "cannot listen: %s", uv_strerror(rc));
		return -1;
	}
	return 0;
}

/* loops_close - the loops have ended: milter_native_stop wakes them no more */
static void
loops_close(void)
{
	pthread_mutex_lock(&stop_lock);
	loops_closed = true;
	pthread_mutex_unlock(&stop_lock);
}

int
milter_native_run(int fd, struct moat_policy *pol, unsigned nworkers, void (*on_first_tuned)(void),
    char *err, size_t errlen)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl = sizeof(ss);
	bool tcp;
	unsigned started = 0;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
		snprintf(err, errlen, "getsockname: %s", strerror(errno));
		return -1;
	}
	tcp = ss.ss_family != AF_UNIX;
	first_tuned = on_first_tuned;
	if (nworkers == 0)
		nworkers = 1;
	if (nworkers > WORKERS_MAX)
		nworkers = WORKERS_MAX;
	if ((workers = calloc(nworkers, sizeof(*workers))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (; started < nworkers; started++) {
		if (worker_init(&workers[started], fd, tcp, pol, err, errlen) < 0 ||
		    pthread_create(&workers[started].thread, NULL, worker_main,
			&workers[started]) != 0)
			break;
		nworkers_running = started + 1;
	}
	close(fd);
	if (started < nworkers) {
		milter_native_stop();
		for (unsigned i = 0; i < nworkers_running; i++)
			pthread_join(workers[i].thread, NULL);
		loops_close();
		free(workers);
		if (err[0] == '\0')
			snprintf(err, errlen, "cannot start the worker threads");
		return -1;
	}
	for (unsigned i = 0; i < nworkers; i++)
		pthread_join(workers[i].thread, NULL);
	loops_close();
	for (unsigned i = 0; i < nworkers; i++)
		(void)uv_loop_close(&workers[i].loop);
	free(workers);
	workers = NULL;
	return 0;
}

void
milter_native_stop(void)
{
	pthread_mutex_lock(&stop_lock);
	atomic_fetch_add(&stops, 1);
	/* a loop that has ended closed its async handle, which libuv lets us still send to until
	 * the loop itself is closed */
	for (unsigned i = 0; !loops_closed && i < nworkers_running; i++)
		uv_async_send(&workers[i].stop);
	pthread_mutex_unlock(&stop_lock);
}

/* listen_unix - a unix socket at path, its stale file replaced */
static int
listen_unix(const char *path, int backlog, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "socket path too long: %s", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	(void)unlink(path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || listen(fd, backlog) != 0) {
		snprintf(err, errlen, "cannot listen on unix:%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int
milter_native_listen(const char *spec, int backlog, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *ai = NULL;
	char port[16];
	const char *p, *at;
	int fd = -1, one = 1, rc;

	if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0)
		return listen_unix(strchr(spec, ':') + 1, backlog, err, errlen);
	hints.ai_family = strncmp(spec, "inet6:", 6) == 0 ? AF_INET6 : AF_INET;
	p = strchr(spec, ':') + 1;
	at = strchr(p, '@');
	snprintf(port, sizeof(port), "%.*s", at ? (int)(at - p) : (int)strlen(p), p);
	if ((rc = getaddrinfo(at ? at + 1 : NULL, port, &hints, &ai)) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", spec, gai_strerror(rc));
		return -1;
	}
	if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
		snprintf(err, errlen, "cannot listen on %s%s%s", spec,
		    errno == EADDRINUSE ? ": already in use" : ": ",
		    errno == EADDRINUSE ? "" : strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}
