/*
 * tls_tool.c - the TLS engine on real sockets, for the e2e tests and bench/tls (not installed).
 *
 *   tls_tool server ADDR:PORT [--smtp | --backend ADDR:PORT] [--quiet] [-o key=value]...
 *       implicit-TLS server, one poll() loop: echoes plaintext, or with --smtp speaks a minimal SMTP
 *       (220, 250 to anything, 221 to QUIT), or with --backend relays to a TCP server after the
 *       handshake (what stunnel does; bench/tls puts it in front of smtp-sink).
 *       One line per session on stderr unless --quiet: "open PROTOCOL CIPHER BITS SNI" or "fail REASON".
 *   tls_tool client ADDR:PORT [--starttls] [--name NAME] [--send TEXT] [-o key=value]...
 *       the engine as a client (tls_backend_* keys: CA file, verified name); prints
 *       "PROTOCOL CIPHER BITS" and, with --send, the first reply to TEXT; exit 1 on failure.
 *   tls_tool load ADDR:PORT SECONDS [--plain] [-o key=value]...
 *       20 SMTP sessions kept open (TLS from the first byte with the engine as client, or plaintext),
 *       each sending 1 KB messages back to back (MAIL, RCPT, DATA, one at a time) for SECONDS;
 *       prints "messages N seconds S rate R".
 *   tls_tool memory N [-o key=value]...
 *       N server sessions handshaken in memory and left idle: heap bytes per idle session.
 *
 * Bounded: at most TOOL_CONNS sessions, 64 KB of unsent output each; every wait has a timeout.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "tls.h"

#define TOOL_CONNS 1000
#define TOOL_OUT_MAX (64 * 1024)
#define TOOL_TIMEOUT_MS 10000

struct tool_conn {
	int fd;
	struct moat_tls_conn *tls;
	bool greeted;
	bool closing;
	int bfd; /* --backend: the relayed connection, -1 before */
	char line[1024];
	size_t linelen;
};

static bool tool_quiet;
static bool tool_relay;
static struct sockaddr_in tool_backend;

static struct moat_conf *
tool_conf(int argc, char **argv, int first)
{
	struct moat_conf_override ov[64];
	char err[MOAT_CONF_ERR_MAX];
	size_t n = 0;
	struct moat_conf *conf;

	for (int i = first; i < argc; i++) {
		if (strcmp(argv[i], "-o") == 0 && i + 1 < argc && n < 64) {
			if (moat_conf_parse_override(argv[++i], &ov[n++]) < 0) {
				fprintf(stderr, "bad -o %s\n", argv[i]);
				exit(2);
			}
		}
	}
	conf = moat_conf_load(NULL, ov, n, err, sizeof(err));
	if (conf == NULL) {
		fprintf(stderr, "%s\n", err);
		exit(2);
	}
	return conf;
}

static const char *
tool_opt(int argc, char **argv, const char *name)
{
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "-o") == 0)
			i++;
		else if (strcmp(argv[i], name) == 0)
			return i + 1 < argc ? argv[i + 1] : "";
	}
	return NULL;
}

static int
tool_addr(const char *hostport, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(hostport, ':');

	if (colon == NULL || (size_t)(colon - hostport) >= sizeof(host))
		return -1;
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = '\0';
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((unsigned short)atoi(colon + 1));
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

/* flush - write what the engine has for the peer; -1 on a socket error or too much backlog. */
static int
flush(int fd, struct moat_tls_conn *tls, bool block)
{
	const void *p;
	size_t n;

	while ((n = moat_tls_pending_out(tls, &p)) > 0) {
		ssize_t w = write(fd, p, n);
		if (w > 0) {
			moat_tls_consume(tls, (size_t)w);
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			if (!block)
				return n > TOOL_OUT_MAX ? -1 : 0;
			if (poll(&pfd, 1, TOOL_TIMEOUT_MS) <= 0)
				return -1;
			continue;
		}
		return -1;
	}
	return 0;
}

static void
conn_close(struct tool_conn *c)
{
	if (moat_tls_conn_state(c->tls) == MOAT_TLS_FAILED && !tool_quiet)
		fprintf(stderr, "fail %s\n", moat_tls_conn_error(c->tls));
	if (c->bfd >= 0)
		close(c->bfd);
	c->bfd = -1;
	(void)flush(c->fd, c->tls, false);
	moat_tls_conn_free(c->tls);
	close(c->fd);
	c->fd = -1;
	c->tls = NULL;
}

static void
conn_reply(struct tool_conn *c, const char *text)
{
	if (moat_tls_write(c->tls, text, strlen(text)) < 0)
		c->closing = true;
}

/* conn_lines - the minimal SMTP of --smtp, or an echo. */
static void
conn_plain(struct tool_conn *c, const char *buf, size_t n, bool smtp)
{
	if (!smtp) {
		if (moat_tls_write(c->tls, buf, n) < 0)
			c->closing = true;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (c->linelen < sizeof(c->line) - 1)
			c->line[c->linelen++] = buf[i];
		if (buf[i] != '\n')
			continue;
		c->line[c->linelen] = '\0';
		c->linelen = 0;
		if (strncasecmp(c->line, "QUIT", 4) == 0) {
			conn_reply(c, "221 2.0.0 bye\r\n");
			moat_tls_shutdown(c->tls);
			c->closing = true;
		} else if (strncasecmp(c->line, "EHLO", 4) == 0) {
			conn_reply(c, "250-tls-tool\r\n250 8BITMIME\r\n");
		} else {
			conn_reply(c, "250 2.0.0 ok\r\n");
		}
	}
}

static void
conn_event(struct tool_conn *c, bool smtp)
{
	char buf[16384];
	ssize_t n = read(c->fd, buf, sizeof(buf));

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		conn_close(c);
		return;
	}
	if (n > 0 && moat_tls_feed(c->tls, buf, (size_t)n) < 0) {
		conn_close(c);
		return;
	}
	if (moat_tls_conn_state(c->tls) == MOAT_TLS_OPEN && !c->greeted) {
		struct moat_tls_info info;
		c->greeted = true;
		moat_tls_info(c->tls, &info);
		if (!tool_quiet)
			fprintf(stderr, "open %s %s %u %s\n", info.protocol, info.cipher, info.bits,
			    info.sni[0] != '\0' ? info.sni : "-");
		if (tool_relay) {
			c->bfd = socket(AF_INET, SOCK_STREAM, 0);
			if (c->bfd < 0 ||
			    connect(c->bfd, (struct sockaddr *)&tool_backend,
				sizeof(tool_backend)) < 0) {
				conn_close(c);
				return;
			}
		} else if (smtp)
			conn_reply(c, "220 tls-tool ESMTP\r\n");
	}
	while (moat_tls_conn_state(c->tls) == MOAT_TLS_OPEN && !c->closing &&
	    (n = moat_tls_read(c->tls, buf, sizeof(buf))) > 0)
		if (tool_relay) {
			if (write(c->bfd, buf, (size_t)n) != n)
				c->closing = true;
		} else {
			conn_plain(c, buf, (size_t)n, smtp);
		}
	if (moat_tls_conn_state(c->tls) == MOAT_TLS_FAILED ||
	    moat_tls_conn_state(c->tls) == MOAT_TLS_CLOSED)
		c->closing = true;
	if (flush(c->fd, c->tls, false) < 0 || c->closing)
		conn_close(c);
}

/* backend_event - the relayed server spoke: encrypt it for the client. */
static void
backend_event(struct tool_conn *c)
{
	char buf[16384];
	ssize_t n = read(c->bfd, buf, sizeof(buf));

	if (n <= 0) {
		moat_tls_shutdown(c->tls);
		conn_close(c);
		return;
	}
	if (moat_tls_write(c->tls, buf, (size_t)n) < 0 || flush(c->fd, c->tls, false) < 0)
		conn_close(c);
}

static int
tool_server(int argc, char **argv)
{
	static struct tool_conn conns[TOOL_CONNS];
	static struct pollfd pfd[2 * TOOL_CONNS + 1];
	struct moat_conf *conf = tool_conf(argc, argv, 3);
	bool smtp = tool_opt(argc, argv, "--smtp") != NULL;
	const char *backend = tool_opt(argc, argv, "--backend");
	char err[MOAT_TLS_ERR_MAX];
	struct moat_tls_ctx *ctx = moat_tls_ctx_new(conf, err, sizeof(err));
	struct sockaddr_in sa;
	int lfd, one = 1;

	moat_conf_unref(conf);
	if (ctx == NULL) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	tool_quiet = tool_opt(argc, argv, "--quiet") != NULL;
	tool_relay = backend != NULL;
	if (tool_addr(argv[2], &sa) < 0 || (tool_relay && tool_addr(backend, &tool_backend) < 0))
		return 2;
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1024) < 0) {
		perror("bind");
		return 2;
	}
	for (size_t i = 0; i < TOOL_CONNS; i++)
		conns[i].fd = conns[i].bfd = -1;
	fprintf(stderr, "listening %s\n", argv[2]);
	for (;;) {
		nfds_t n = 1;
		size_t map[2 * TOOL_CONNS]; /* pfd[k + 1] -> 2 * conn index (+1 for its backend) */
		pfd[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (size_t i = 0; i < TOOL_CONNS; i++) {
			if (conns[i].fd < 0)
				continue;
			const void *p;
			pfd[n] = (struct pollfd){ .fd = conns[i].fd, .events = POLLIN };
			if (moat_tls_pending_out(conns[i].tls, &p) > 0)
				pfd[n].events |= POLLOUT;
			map[n - 1] = 2 * i;
			n++;
			if (conns[i].bfd >= 0) {
				pfd[n] = (struct pollfd){ .fd = conns[i].bfd, .events = POLLIN };
				map[n - 1] = 2 * i + 1;
				n++;
			}
		}
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (nfds_t k = 1; k < n; k++) {
			struct tool_conn *c = &conns[map[k - 1] / 2];
			if (pfd[k].revents == 0 || c->fd < 0)
				continue;
			if (map[k - 1] % 2 == 0)
				conn_event(c, smtp);
			else if (c->bfd >= 0)
				backend_event(c);
		}
		if (pfd[0].revents & POLLIN) {
			for (int burst = 0; burst < 64; burst++) {
				int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
				size_t i;
				if (fd < 0)
					break;
				for (i = 0; i < TOOL_CONNS && conns[i].fd >= 0; i++)
					;
				if (i == TOOL_CONNS) {
					close(fd);
					continue;
				}
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				conns[i] = (struct tool_conn){ .fd = fd, .bfd = -1 };
				conns[i].tls =
				    moat_tls_conn_new(ctx, MOAT_TLS_SERVER, NULL, err, sizeof(err));
				if (conns[i].tls == NULL) {
					fprintf(stderr, "fail %s\n", err);
					close(fd);
					conns[i].fd = -1;
				}
			}
		}
	}
	moat_tls_ctx_unref(ctx);
	return 1;
}

/* read_reply - one SMTP reply (through its last line) from a plaintext socket, bounded. */
static int
read_reply(int fd, char *buf, size_t len)
{
	size_t used = 0;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		char *last;
		if (poll(&pfd, 1, TOOL_TIMEOUT_MS) <= 0 || used + 1 >= len)
			return -1;
		n = read(fd, buf + used, 1); /* byte by byte: nothing after the reply is consumed */
		if (n <= 0)
			return -1;
		used++;
		buf[used] = '\0';
		if (buf[used - 1] != '\n')
			continue;
		last = buf + used - 1;
		while (last > buf && last[-1] != '\n')
			last--;
		if (strlen(last) >= 4 && last[3] == ' ')
			return atoi(last);
	}
}

static int
tool_client(int argc, char **argv)
{
	struct moat_conf *conf = tool_conf(argc, argv, 3);
	const char *name = tool_opt(argc, argv, "--name");
	const char *send = tool_opt(argc, argv, "--send");
	char err[MOAT_TLS_ERR_MAX], buf[4096];
	struct moat_tls_ctx *ctx = moat_tls_ctx_new(conf, err, sizeof(err));
	struct moat_tls_conn *tls;
	struct moat_tls_info info;
	struct sockaddr_in sa;
	int fd;

	moat_conf_unref(conf);
	if (ctx == NULL) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (tool_addr(argv[2], &sa) < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("connect");
		moat_tls_ctx_unref(ctx);
		close(fd);
		return 2;
	}
	if (tool_opt(argc, argv, "--starttls") != NULL) {
		if (read_reply(fd, buf, sizeof(buf)) != 220 ||
		    write(fd, "EHLO tls-tool\r\n", 15) != 15 ||
		    read_reply(fd, buf, sizeof(buf)) != 250 || strstr(buf, "STARTTLS") == NULL ||
		    write(fd, "STARTTLS\r\n", 10) != 10 ||
		    read_reply(fd, buf, sizeof(buf)) != 220) {
			fprintf(stderr, "STARTTLS dialogue failed\n");
			return 1;
		}
	}
	tls = moat_tls_conn_new(ctx, MOAT_TLS_CLIENT, name, err, sizeof(err));
	if (tls == NULL) {
		fprintf(stderr, "%s\n", err);
		moat_tls_ctx_unref(ctx);
		return 1;
	}
	while (moat_tls_conn_state(tls) == MOAT_TLS_HANDSHAKE) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		if (flush(fd, tls, true) < 0 || poll(&pfd, 1, TOOL_TIMEOUT_MS) <= 0)
			break;
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		moat_tls_feed(tls, buf, (size_t)n);
	}
	(void)flush(fd, tls, true);
	if (moat_tls_conn_state(tls) != MOAT_TLS_OPEN) {
		fprintf(stderr, "handshake: %s\n",
		    moat_tls_conn_error(tls)[0] != '\0' ? moat_tls_conn_error(tls)
							: "connection closed");
		moat_tls_conn_free(tls);
		moat_tls_ctx_unref(ctx);
		close(fd);
		return 1;
	}
	moat_tls_info(tls, &info);
	printf("%s %s %u\n", info.protocol, info.cipher, info.bits);
	if (send != NULL) {
		ssize_t got = 0;
		moat_tls_write(tls, send, strlen(send));
		moat_tls_write(tls, "\r\n", 2);
		(void)flush(fd, tls, true);
		while (got == 0 && moat_tls_conn_state(tls) == MOAT_TLS_OPEN) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			ssize_t n;
			if (poll(&pfd, 1, TOOL_TIMEOUT_MS) <= 0 ||
			    (n = read(fd, buf, sizeof(buf))) <= 0)
				break;
			moat_tls_feed(tls, buf, (size_t)n);
			got = moat_tls_read(tls, buf, sizeof(buf) - 1);
		}
		if (got > 0) {
			buf[got] = '\0';
			fputs(buf, stdout);
		}
	}
	moat_tls_shutdown(tls);
	(void)flush(fd, tls, true);
	moat_tls_conn_free(tls);
	moat_tls_ctx_unref(ctx);
	close(fd);
	return 0;
}

#define LOAD_CONNS 20

struct load_conn {
	int fd;
	struct moat_tls_conn *tls; /* NULL: plaintext */
	int step; /* 0 banner, 1 EHLO, 2 MAIL, 3 RCPT, 4 DATA, 5 end of data */
	char in[4096];
	size_t inlen;
};

static const char load_body[] =
    "From: <a@load.test>\r\nTo: <b@load.test>\r\nSubject: load\r\n\r\n"
    "0123456789012345678901234567890123456789012345678901234567890123456789012345678\r\n"
    "0123456789012345678901234567890123456789012345678901234567890123456789012345678\r\n"
    "0123456789012345678901234567890123456789012345678901234567890123456789012345678\r\n"
    "0123456789012345678901234567890123456789012345678901234567890123456789012345678\r\n"
    "0123456789012345678901234567890123456789012345678901234567890123456789012345678\r\n"
    "0123456789012345678901234567890123456789012345678901234567890123456789012345678\r\n"
    "0123456789012345678901234567890123456789012345678901234567890123456789012345678\r\n"
    "0123456789012345678901234567890123456789012345678901234567890123456789012345678\r\n"
    "0123456789012345678901234567890123456789012345678901234567890123456789012345678\r\n"
    "0123456789012345678901234567890123456789012345678901234567890123456789012345678\r\n"
    "0123456789012345678901234567890123456789012345678901234567890123456789012345678\r\n"
    "0123456789012345678901234567890123456789012345678901234567890123456789012345678\r\n"
    ".\r\n";

static int
load_send(struct load_conn *c, const char *text)
{
	size_t n = strlen(text);
	if (c->tls == NULL)
		return write(c->fd, text, n) == (ssize_t)n ? 0 : -1;
	if (moat_tls_write(c->tls, text, n) < 0)
		return -1;
	return flush(c->fd, c->tls, true);
}

/* load_reply - one complete reply at the head of c->in: its code, and it is removed; 0 if none yet. */
static int
load_reply(struct load_conn *c)
{
	size_t start = 0;
	for (size_t i = 0; i < c->inlen; i++) {
		if (c->in[i] != '\n')
			continue;
		if (i - start >= 4 && c->in[start + 3] == ' ') {
			int code = atoi(c->in + start);
			memmove(c->in, c->in + i + 1, c->inlen - i - 1);
			c->inlen -= i + 1;
			return code;
		}
		start = i + 1;
	}
	return 0;
}

/* load_step - the reply to the current step arrived: send the next command; -1 on a wrong reply. */
static int
load_step(struct load_conn *c, int code, long *done)
{
	static const int want[] = { 220, 250, 250, 250, 354, 250 };
	if (code != want[c->step])
		return -1;
	switch (c->step) {
	case 0:
		c->step = 1;
		return load_send(c, "EHLO load.test\r\n");
	case 4:
		c->step = 5;
		return load_send(c, load_body);
	case 5:
		(*done)++; /* fall through */
	case 1:
		c->step = 2;
		return load_send(c, "MAIL FROM:<a@load.test>\r\n");
	case 2:
		c->step = 3;
		return load_send(c, "RCPT TO:<b@load.test>\r\n");
	default:
		c->step = 4;
		return load_send(c, "DATA\r\n");
	}
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
tool_load(int argc, char **argv)
{
	struct moat_conf *conf = tool_conf(argc, argv, 4);
	bool plain = tool_opt(argc, argv, "--plain") != NULL;
	double secs = argc > 3 ? atof(argv[3]) : 0, t0, end;
	char err[MOAT_TLS_ERR_MAX], buf[16384];
	struct moat_tls_ctx *ctx = moat_tls_ctx_new(conf, err, sizeof(err));
	struct load_conn c[LOAD_CONNS];
	struct pollfd pfd[LOAD_CONNS];
	struct sockaddr_in sa;
	long done = 0;
	int one = 1, rc = 0;

	moat_conf_unref(conf);
	if (ctx == NULL || secs <= 0 || secs > 600 || tool_addr(argv[2], &sa) < 0) {
		fprintf(stderr, "%s\n", ctx == NULL ? err : "usage: load ADDR:PORT SECONDS");
		return 2;
	}
	for (int i = 0; i < LOAD_CONNS; i++) {
		c[i] = (struct load_conn){ .fd = socket(AF_INET, SOCK_STREAM, 0) };
		if (connect(c[i].fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			perror("connect");
			return 2;
		}
		setsockopt(c[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (!plain) {
			c[i].tls = moat_tls_conn_new(ctx, MOAT_TLS_CLIENT, NULL, err, sizeof(err));
			if (c[i].tls == NULL || flush(c[i].fd, c[i].tls, true) < 0) {
				fprintf(stderr, "%s\n", err);
				return 2;
			}
		}
	}
	t0 = now_s();
	end = t0 + secs;
	while (now_s() < end && rc == 0) {
		for (int i = 0; i < LOAD_CONNS; i++)
			pfd[i] = (struct pollfd){ .fd = c[i].fd, .events = POLLIN };
		if (poll(pfd, LOAD_CONNS, TOOL_TIMEOUT_MS) <= 0) {
			rc = 1;
			break;
		}
		for (int i = 0; i < LOAD_CONNS && rc == 0; i++) {
			ssize_t n;
			int code;
			if (pfd[i].revents == 0)
				continue;
			n = read(c[i].fd, buf, sizeof(buf));
			if (n <= 0) {
				rc = 1;
				break;
			}
			if (c[i].tls == NULL) {
				if ((size_t)n > sizeof(c[i].in) - c[i].inlen) {
					rc = 1;
					break;
				}
				memcpy(c[i].in + c[i].inlen, buf, (size_t)n);
				c[i].inlen += (size_t)n;
			} else {
				if (moat_tls_feed(c[i].tls, buf, (size_t)n) < 0) {
					rc = 1;
					break;
				}
				while ((n = moat_tls_read(c[i].tls, c[i].in + c[i].inlen,
					    sizeof(c[i].in) - c[i].inlen)) > 0)
					c[i].inlen += (size_t)n;
				if (flush(c[i].fd, c[i].tls, true) < 0)
					rc = 1;
			}
			while (rc == 0 && (code = load_reply(&c[i])) != 0)
				if (load_step(&c[i], code, &done) < 0) {
					fprintf(stderr, "unexpected reply %d at step %d\n", code,
					    c[i].step);
					rc = 1;
				}
		}
	}
	end = now_s();
	printf("messages %ld seconds %.1f rate %.0f\n", done, end - t0, (double)done / (end - t0));
	for (int i = 0; i < LOAD_CONNS; i++) {
		moat_tls_conn_free(c[i].tls);
		close(c[i].fd);
	}
	moat_tls_ctx_unref(ctx);
	return rc;
}

/* pump - move ciphertext both ways until quiet (bounded). */
static void
pump(struct moat_tls_conn *a, struct moat_tls_conn *b)
{
	char buf[256];
	for (int i = 0; i < 20; i++) {
		const void *p;
		size_t n, moved = 0;
		if ((n = moat_tls_pending_out(a, &p)) > 0) {
			moat_tls_feed(b, p, n);
			moat_tls_consume(a, n);
			moved += n;
		}
		if ((n = moat_tls_pending_out(b, &p)) > 0) {
			moat_tls_feed(a, p, n);
			moat_tls_consume(b, n);
			moved += n;
		}
		(void)moat_tls_read(a, buf, sizeof(buf));
		(void)moat_tls_read(b, buf, sizeof(buf));
		if (moved == 0)
			break;
	}
}

static int
tool_memory(int argc, char **argv)
{
	struct moat_conf *conf = tool_conf(argc, argv, 3);
	long n = atol(argv[2]);
	char err[MOAT_TLS_ERR_MAX];
	struct moat_tls_ctx *ctx = moat_tls_ctx_new(conf, err, sizeof(err));
	struct moat_tls_conn **srv;
	struct mallinfo2 before, after;
	long open = 0;

	moat_conf_unref(conf);
	if (ctx == NULL || n <= 0 || n > 100000) {
		fprintf(stderr, "%s\n", ctx == NULL ? err : "N: 1..100000");
		return 2;
	}
	srv = calloc((size_t)n, sizeof(*srv));
	malloc_trim(0);
	before = mallinfo2();
	for (long i = 0; i < n; i++) {
		struct moat_tls_conn *c =
		    moat_tls_conn_new(ctx, MOAT_TLS_CLIENT, NULL, err, sizeof(err));
		srv[i] = moat_tls_conn_new(ctx, MOAT_TLS_SERVER, NULL, err, sizeof(err));
		if (c == NULL || srv[i] == NULL) {
			fprintf(stderr, "%s\n", err);
			return 2;
		}
		pump(c, srv[i]);
		moat_tls_write(c, "EHLO client.test\r\n", 18);
		pump(c, srv[i]);
		moat_tls_write(srv[i], "250 ok\r\n", 8);
		pump(srv[i], c);
		if (moat_tls_conn_state(srv[i]) == MOAT_TLS_OPEN)
			open++;
		moat_tls_conn_free(c);
	}
	malloc_trim(0);
	after = mallinfo2();
	printf("sessions %ld open %ld bytes_per_idle_session %zu\n", n, open,
	    (after.uordblks + after.hblkhd - before.uordblks - before.hblkhd) / (size_t)n);
	for (long i = 0; i < n; i++)
		moat_tls_conn_free(srv[i]);
	free(srv);
	moat_tls_ctx_unref(ctx);
	return open == n ? 0 : 1;
}

int
main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stderr, NULL, _IOLBF, 0);
	if (argc >= 3 && strcmp(argv[1], "server") == 0)
		return tool_server(argc, argv);
	if (argc >= 3 && strcmp(argv[1], "client") == 0)
		return tool_client(argc, argv);
	if (argc >= 4 && strcmp(argv[1], "load") == 0)
		return tool_load(argc, argv);
	if (argc >= 3 && strcmp(argv[1], "memory") == 0)
		return tool_memory(argc, argv);
	fprintf(stderr,
	    "usage: tls_tool server|client ADDR:PORT [options] | memory N [-o key=value]... (see tls_tool.c)\n");
	return 2;
}
