/*
 * accept.c - a new connection on a worker's listener: accepting it (at the descriptor limit: a 421
 * written on a descriptor held in reserve, and a pause), its addresses, and the PROXY protocol
 * header a listed load balancer sends before anything else (proxy_inbound.c parses it); then the
 * session starts (conn.c).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>
#include <uv.h>

#include "cidr.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "proxy_inbound.h"
#include "ratelimit_uv.h"
#include "smtp_session.h"
#include "stream.h"
#include "tls.h"
#include "worker.h"

#define ACCEPT_BATCH 64 /* connections taken in one turn of the loop */
#define ACCEPT_PAUSE_MS 100 /* accepting waits this long at the descriptor limit */
#define FDLIMIT_LOG_MS 10000 /* at most one descriptor-limit line per this */

static void
addr_string(const struct sockaddr_storage *ss, char *out, size_t len, unsigned *port)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

		uv_ip6_name(a, out, len);
		*port = ntohs(a->sin6_port);
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

		uv_ip4_name(a, out, len);
		*port = ntohs(a->sin_port);
	}
}


/* ---- PROXY protocol from a listed load balancer, before any session exists ---- */

static char *
pin_rbuf(void *arg, size_t *avail)
{
	struct conn *c = arg;

	*avail = sizeof(c->pin->buf) - c->pin->len;
	return c->pin->buf + c->pin->len;
}

/* pin_done - the header is complete: the session starts with the client it names. */
static void
pin_done(struct conn *c, const struct px_pin *h)
{
	struct pin *pin = c->pin;
	char addr[64];
	unsigned port = pin->pport;

	c->pin = NULL;
	px_stream_read_stop(&c->client);
	uv_timer_stop(&c->timer);
	snprintf(addr, sizeof(addr), "%s", pin->paddr);
	if (!h->local) {
		/* the real client; its destination is what a PROXY header to the backend names */
		snprintf(addr, sizeof(addr), "%s", h->src);
		port = h->sport;
		snprintf(c->laddr, sizeof(c->laddr), "%s", h->dst);
		c->lport = h->dport;
	}
	moat_log(LOG_INFO, NULL, "proxy-header",
	    "from=%s port=%u version=%d client=%s client_port=%u%s", pin->paddr, pin->pport,
	    h->version, addr, port, h->local ? " local=yes" : "");
	px__conn_begin(c, addr, port, pin->listener, pin->buf + h->len, pin->len - h->len);
	free(pin);
}

static void
pin_rdone(void *arg, size_t n)
{
	struct conn *c = arg;
	struct px_pin h;
	const char *why;

	if (c->closing || c->pin == NULL)
		return;
	c->pin->len += n;
	switch (px_pin_parse(c->pin->buf, c->pin->len, &h, &why)) {
	case PX_PIN_DONE:
		pin_done(c, &h);
		break;
	case PX_PIN_BAD:
		/* a listed load balancer that does not speak the protocol: nothing SMTP is said */
		moat_log(LOG_WARNING, NULL, "proxy-header", "from=%s port=%u error=%s",
		    c->pin->paddr, c->pin->pport, why);
		px__conn_close(c);
		break;
	case PX_PIN_NEED:
		break;
	}
}

static void
pin_error(void *arg, const char *why)
{
	struct conn *c = arg;

	moat_log(LOG_NOTICE, NULL, "proxy-header", "from=%s port=%u error=%s len=%zu",
	    c->pin->paddr, c->pin->pport, why, c->pin->len);
	px__conn_close(c);
}

/* the client leg while a PROXY header is read: the header's buffer, nothing else */
static const struct px_stream_cb pin_cb = {
	.rbuf = pin_rbuf,
	.rdone = pin_rdone,
	.error = pin_error,
	.closed = px__conn_client_closed,
};

/* pin_expected - is the peer a load balancer listed in proxy_inbound_proxy_networks? */
static bool
pin_expected(struct px_worker *w, const char *paddr, unsigned *timeout)
{
	struct moat_conf *conf = moat_policy_conf(w->pol);
	struct moat_addr a;
	bool listed = moat_cidr_set_count(conf->proxy_inbound_set) > 0 &&
	    moat_addr_parse(paddr, &a) == 0 && moat_cidr_set_match(conf->proxy_inbound_set, &a);

	*timeout = conf->proxy_inbound_proxy_timeout;
	moat_conf_unref(conf);
	return listed;
}

/* conn_start - a connection accepted on fd (taken over) from listener k: its addresses, then a
 * load balancer's PROXY header or the session. */
static void
conn_start(struct px_worker *w, int fd, size_t k)
{
	struct sockaddr_storage peer, local;
	int plen = sizeof(peer), llen = sizeof(local);
	char paddr[64], listener[96];
	unsigned pport, timeout;
	struct conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->w = w;
	px_stream_init_tcp(&c->client, &w->loop, &pin_cb,
	    c); /* px__conn_begin sets the session's */
	uv_timer_init(&w->loop, &c->timer);
	uv_timer_init(&w->loop, &c->btimer);
	c->timer.data = c->btimer.data = c;
	c->open = 3;
	atomic_fetch_add(&w->sessions, 1);
	if (uv_tcp_open(&c->client.h.tcp, fd) != 0) {
		close(fd);
		px__conn_close(c);
		return;
	}
	if (uv_tcp_getpeername(&c->client.h.tcp, (struct sockaddr *)&peer, &plen) != 0 ||
	    uv_tcp_getsockname(&c->client.h.tcp, (struct sockaddr *)&local, &llen) != 0) {
		px__conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->client.h.tcp, 1);
	addr_string(&peer, paddr, sizeof(paddr), &pport);
	addr_string(&local, c->laddr, sizeof(c->laddr), &c->lport);
	snprintf(listener, sizeof(listener), "%s:%u", c->laddr, c->lport);
	c->start = uv_now(&w->loop);
	c->tls_implicit = w->listen_tls[k];
	if (pin_expected(w, paddr, &timeout)) {
		/* the header comes first, before TLS and before our greeting, within the timeout */
		if ((c->pin = calloc(1, sizeof(*c->pin))) == NULL) {
			px__conn_close(c);
			return;
		}
		px_stream_set_cb(&c->client, &pin_cb, c);
		if (px_stream_read_start(&c->client) != 0) {
			px__conn_close(c);
			return;
		}
		snprintf(c->pin->paddr, sizeof(c->pin->paddr), "%s", paddr);
		snprintf(c->pin->listener, sizeof(c->pin->listener), "%s", listener);
		c->pin->pport = pport;
		uv_timer_start(&c->timer, px__conn_on_timer, timeout, 0);
		return;
	}
	px__conn_begin(c, paddr, pport, listener, NULL, 0);
}


/* ---- the descriptor limit: refused politely, accepting again when sessions leave ---- */

/* RFC 3463 X.3.2: system not accepting network messages; the domain as in RFC 5321 4.2.3's 421 */
static const char reply_fdlimit_fmt[] =
    "421 4.3.2 %.255s Too many connections, try again later\r\n";

int
px__conn_reserve(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	return fd >= 0 ? fd : open("/", O_RDONLY | O_CLOEXEC);
}

static void
accept_pause(struct px_worker *w)
{
	for (size_t i = 0; i < w->nlisteners; i++)
		uv_poll_stop(&w->listeners[i]);
	uv_timer_start(&w->accept_pause, px__conn_accept_resume, ACCEPT_PAUSE_MS, 0);
}

void
px__conn_accept_resume(uv_timer_t *t)
{
	struct px_worker *w = t->data;

	if (w->reserve_fd < 0)
		w->reserve_fd = px__conn_reserve();
	for (size_t i = 0; i < w->nlisteners; i++)
		if (!uv_is_closing((uv_handle_t *)&w->listeners[i]))
			(void)uv_poll_start(&w->listeners[i], UV_READABLE, px__conn_accept);
}

/* fdlimit_log - one line per FDLIMIT_LOG_MS at most, with what was refused since the last one
 * (the count of every refusal is mxmoat_refusals_total{reason="descriptor_limit"}). */
static void
fdlimit_log(struct px_worker *w, int err)
{
	uint64_t now = uv_now(&w->loop);
	struct rlimit rl;

	if (w->fdlimit_logged != 0 && now - w->fdlimit_logged < FDLIMIT_LOG_MS)
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		rl.rlim_cur = 0;
	moat_log(LOG_WARNING, NULL, "descriptor-limit",
	    "error=%s refused=%u limit=%llu reserve=%s pause_ms=%d",
	    err == EMFILE        ? "EMFILE"
		: err == ENFILE  ? "ENFILE"
		: err == ENOBUFS ? "ENOBUFS"
				 : "ENOMEM",
	    w->fdlimit_refused, (unsigned long long)rl.rlim_cur, w->reserve_fd >= 0 ? "yes" : "no",
	    ACCEPT_PAUSE_MS);
	w->fdlimit_logged = now;
	w->fdlimit_refused = 0;
}

/*
 * fdlimit_refuse - accepting on listener k failed for want of a descriptor (err): the reserve is
 * given up to take each waiting connection in turn, answer it 421 and close it, then taken back.
 * An implicit-TLS client cannot read a plaintext reply: it is only closed. When even that fails
 * (another thread took the freed descriptor), the connections wait in the listen queue. Either
 * way accepting pauses, so the loop does not spin on a listener it cannot serve.
 */
static void
fdlimit_refuse(struct px_worker *w, size_t k, int err)
{
	struct moat_conf *conf = moat_policy_conf(w->pol);
	char reply[320];
	int n = snprintf(reply, sizeof(reply), reply_fdlimit_fmt, conf->authserv_id);

	moat_conf_unref(conf);
	if (w->reserve_fd >= 0 && (err == EMFILE || err == ENFILE)) {
		close(w->reserve_fd);
		for (int i = 0; i < ACCEPT_BATCH; i++) {
			int fd = accept4(w->listen_fd[k], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

			if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
				continue;
			if (fd < 0)
				break;
			if (!w->listen_tls[k] && n > 0)
				(void)send(fd, reply, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
			close(fd);
			w->fdlimit_refused++;
			moat_metrics_refusal(moat_policy_metrics(w->pol), "descriptor_limit");
		}
		w->reserve_fd = px__conn_reserve();
	}
	fdlimit_log(w, err);
	accept_pause(w);
}

/* px__conn_accept - a listener is readable: take up to a batch (the loop's other work has its turn,
 * and the listener, level-triggered, reports the rest). */
void
px__conn_accept(uv_poll_t *h, int status, int events)
{
	struct px_worker *w = h->data;
	size_t k = (size_t)(h - w->listeners);

	if (status < 0 || (events & UV_READABLE) == 0)
		return;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(w->listen_fd[k], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			conn_start(w, fd, k);
		} else if (errno == EINTR || errno == ECONNABORTED) {
			continue; /* a client gone before it was taken: nothing to do */
		} else {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				fdlimit_refuse(w, k, errno);
			return; /* EAGAIN: nothing left */
		}
	}
}
