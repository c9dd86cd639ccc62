/*
 * accept.c - a new connection on a worker's listener: its addresses, and the PROXY protocol header
 * a listed load balancer sends before anything else (proxy_inbound.c parses it); then the session
 * starts (conn.c).
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

void
px__conn_accept(uv_stream_t *server, int status)
{
	struct px_worker *w = server->data;
	struct sockaddr_storage peer, local;
	int plen = sizeof(peer), llen = sizeof(local);
	char paddr[64], listener[96];
	unsigned pport, timeout;
	struct conn *c;

	if (status < 0 || (c = calloc(1, sizeof(*c))) == NULL)
		return;
	c->w = w;
	px_stream_init_tcp(&c->client, &w->loop, &pin_cb,
	    c); /* px__conn_begin sets the session's */
	uv_timer_init(&w->loop, &c->timer);
	uv_timer_init(&w->loop, &c->btimer);
	c->timer.data = c->btimer.data = c;
	c->open = 3;
	atomic_fetch_add(&w->sessions, 1);
	if (uv_accept(server, &c->client.h.stream) != 0 ||
	    uv_tcp_getpeername(&c->client.h.tcp, (struct sockaddr *)&peer, &plen) != 0 ||
	    uv_tcp_getsockname(&c->client.h.tcp, (struct sockaddr *)&local, &llen) != 0) {
		px__conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->client.h.tcp, 1);
	addr_string(&peer, paddr, sizeof(paddr), &pport);
	addr_string(&local, c->laddr, sizeof(c->laddr), &c->lport);
	snprintf(listener, sizeof(listener), "%s:%u", c->laddr, c->lport);
	c->start = uv_now(&w->loop);
	for (size_t i = 0; i < w->nlisteners; i++)
		if (server == (uv_stream_t *)&w->listeners[i])
			c->tls_implicit = w->listen_tls[i];
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
