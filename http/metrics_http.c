/*
 * metrics_http.c - GET /metrics for both daemons (see metrics_http.h), on libmicrohttpd.
 *
 * Owns the listening socket and the libmicrohttpd daemon (one polling thread, at most
 * METRICS_HTTP_CONNS connections of at most METRICS_HTTP_MEMORY bytes each, idle ones closed
 * after METRICS_HTTP_TIMEOUT seconds). A client outside metrics_allow is closed at accept,
 * before a byte of it is read. Every answer is rendered fresh from the counters.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "cidr.h"
#include "log.h"
#include "metrics_http.h"
#include "text.h"

#define METRICS_HTTP_CONNS 8 /* concurrent scrapes */
#define METRICS_HTTP_MEMORY 16384 /* bytes per connection: request line and header fields */
#define METRICS_HTTP_TIMEOUT 10 /* seconds a connection may stay idle */
#define METRICS_HTTP_BACKLOG 16

static const char content_type[] = "text/plain; version=0.0.4; charset=utf-8";

struct metrics_http {
	struct MHD_Daemon *daemon;
	struct moat_metrics *m; /* borrowed */
	struct moat_cidr_set *allow;
};

int
metrics_http_bind(const struct moat_conf *conf, char *err, size_t errlen)
{
	const struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
		.ai_socktype = SOCK_STREAM };
	const char *spec = conf->metrics_listen;
	struct addrinfo *ai = NULL;
	char host[64], port[8];
	int fd, one = 1, p;

	if (spec[0] == '\0')
		return -2;
	if (moat_hostport_split(spec, host, sizeof(host), &p) < 0 ||
	    snprintf(port, sizeof(port), "%d", p) < 0 ||
	    getaddrinfo(host, port, &hints, &ai) != 0) {
		snprintf(err, errlen, "metrics_listen %s: not a numeric address:port", spec);
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "metrics_listen %s: socket: %s", spec, strerror(errno));
		freeaddrinfo(ai);
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, METRICS_HTTP_BACKLOG) != 0) {
		snprintf(err, errlen, "metrics_listen %s: %s", spec,
		    errno == EADDRINUSE ? "already in use" : strerror(errno));
		close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* http_allowed - libmicrohttpd's accept policy: is the client in metrics_allow? */
static enum MHD_Result
http_allowed(void *cls, const struct sockaddr *sa, socklen_t len)
{
	const struct metrics_http *h = cls;
	char text[INET6_ADDRSTRLEN];
	struct moat_addr addr;
	const void *raw;

	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in))
		raw = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6))
		raw = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	else
		return MHD_NO;
	if (inet_ntop(sa->sa_family, raw, text, sizeof(text)) == NULL ||
	    moat_addr_parse(text, &addr) < 0)
		return MHD_NO;
	return moat_cidr_set_match(h->allow, &addr) ? MHD_YES : MHD_NO;
}

/* http_reply - queue a fixed short answer (errors). */
static enum MHD_Result
http_reply(struct MHD_Connection *c, unsigned status, const char *text)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result rc;

	if (r == NULL)
		return MHD_NO;
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* http_request - the one resource: GET (or HEAD) /metrics. */
static enum MHD_Result
http_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct metrics_http *h = cls;
	struct MHD_Response *r;
	enum MHD_Result rc;
	size_t len;
	char *body;

	(void)version;
	(void)upload_data;
	(void)con_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return http_reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	if (*upload_data_size != 0)
		return http_reply(c, MHD_HTTP_BAD_REQUEST, "a GET has no body\n");
	if (strcmp(url, "/metrics") != 0)
		return http_reply(c, MHD_HTTP_NOT_FOUND,
		    "not found: the metrics are at /metrics\n");
	if ((body = moat_metrics_render(h->m, &len)) == NULL)
		return http_reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
	if ((r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)) == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	rc = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return rc;
}

/* http_log - libmicrohttpd's error messages (FMT is its printf format), as one log line each. */
static void http_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void
http_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512], esc[600];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		n--;
	moat_log(LOG_WARNING, NULL, "metrics", "error=\"%s\"",
	    moat_log_escape(msg, n, esc, sizeof(esc)));
}

struct metrics_http *
metrics_http_start(int fd, const struct moat_conf *conf, struct moat_metrics *m, char *err,
    size_t errlen)
{
	struct metrics_http *h = calloc(1, sizeof(*h));
	struct sockaddr_storage ss = { 0 };
	socklen_t sslen = sizeof(ss);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;

	if (h == NULL) {
		snprintf(err, errlen, "metrics: out of memory");
		close(fd);
		return NULL;
	}
	h->m = m;
	if ((h->allow = moat_cidr_set_parse(conf->metrics_allow, err, errlen)) == NULL) {
		close(fd);
		free(h);
		return NULL;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0 && ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* the logger first, so that no message goes to libmicrohttpd's own stderr logger */
	h->daemon = MHD_start_daemon(flags, 0, http_allowed, h, http_request, h,
	    MHD_OPTION_EXTERNAL_LOGGER, http_log, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_HTTP_CONNS,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)METRICS_HTTP_MEMORY,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_HTTP_TIMEOUT, MHD_OPTION_END);
	if (h->daemon == NULL) {
		snprintf(err, errlen, "metrics_listen %s: libmicrohttpd did not start",
		    conf->metrics_listen);
		close(fd);
		moat_cidr_set_free(h->allow);
		free(h);
		return NULL;
	}
	return h;
}

void
metrics_http_stop(struct metrics_http *h)
{
	if (h == NULL)
		return;
	MHD_stop_daemon(h->daemon); /* closes the listening socket it was given */
	moat_cidr_set_free(h->allow);
	free(h);
}
