/*
 * scan_clamd.c - the clamd client (see scan_clamd.h). One non-blocking socket per message; every
 * wait is a poll(2) bounded by the timeout, so a clamd that stalls costs at most that long.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "scan_clamd.h"
#include "scan.h"
#include "text.h"

/* clamd refuses chunks longer than its StreamMaxLength; 64 KB is what clamdscan sends. */
#define CLAMD_CHUNK_MAX ((size_t)64 * 1024)

struct moat_clamd {
	int fd;
	unsigned timeout_ms;
	bool cmd_pending; /* zINSTREAM not sent yet: it goes with the first chunk */
	char reply[MOAT_CLAMD_REPLY_MAX + 1];
	size_t rlen;
};

/* clamd_wait - wait until FD is ready for EVENTS, by DEADLINE (monotonic ms): 0, or -1. */
static int
clamd_wait(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	for (;;) {
		int64_t left = deadline - moat__scan_now_ms();
		int rc;

		if (left <= 0)
			return -1;
		rc = poll(&pfd, 1, (int)left);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

/* clamd_connect - a non-blocking socket connected to ADDR within TIMEOUT_MS, or -1 with err. */
static int
clamd_connect(const char *addr, unsigned timeout_ms, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int fd, soerr = 0;
	socklen_t elen = sizeof(soerr);

	memset(&ss, 0, sizeof(ss));
	if (strncmp(addr, "unix:", 5) == 0) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&ss;

		if (strlen(addr + 5) >= sizeof(sun->sun_path)) {
			snprintf(err, errlen, "socket path too long");
			return -1;
		}
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, addr + 5, strlen(addr + 5) + 1);
		sslen = sizeof(*sun);
	} else {
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
			.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG },
				*ai;
		char host[256], port[8];
		int p, rc;

		if (moat_hostport_split(addr, host, sizeof(host), &p) < 0) {
			snprintf(err, errlen, "not host:port");
			return -1;
		}
		snprintf(port, sizeof(port), "%d", p);
		if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
			snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
			return -1;
		}
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		sslen = ai->ai_addrlen;
		freeaddrinfo(ai);
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&ss, sslen) < 0) {
		if (errno != EINPROGRESS && errno != EAGAIN) {
			snprintf(err, errlen, "connect: %s", strerror(errno));
			close(fd);
			return -1;
		}
		if (clamd_wait(fd, POLLOUT, moat__scan_now_ms() + timeout_ms) < 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &elen) < 0 || soerr != 0) {
			snprintf(err, errlen, "connect: %s",
			    soerr != 0 ? strerror(soerr) : "timed out");
			close(fd);
			return -1;
		}
	}
	return fd;
}

/* clamd_writev_all - the N pieces of IOV (changed: what is sent is consumed) in as few writes as
 * the socket takes, each wait bounded by the timeout: 0, or -1 with err. */
static int
clamd_writev_all(struct moat_clamd *c, struct iovec *iov, int n, char *err, size_t errlen)
{
	int64_t deadline = moat__scan_now_ms() + c->timeout_ms;
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };

	for (;;) {
		ssize_t w;

		while (mh.msg_iovlen > 0 && mh.msg_iov->iov_len == 0) {
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen == 0)
			return 0;
		w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (clamd_wait(c->fd, POLLOUT, deadline) < 0) {
				snprintf(err, errlen, "timed out sending to clamd");
				return -1;
			}
			continue;
		}
		if (w <= 0) {
			snprintf(err, errlen, "send: %s", w < 0 ? strerror(errno) : "closed");
			return -1;
		}
		for (size_t k = (size_t)w; k > 0;) {
			size_t take = k < mh.msg_iov->iov_len ? k : mh.msg_iov->iov_len;

			mh.msg_iov->iov_base = (char *)mh.msg_iov->iov_base + take;
			mh.msg_iov->iov_len -= take;
			k -= take;
			if (mh.msg_iov->iov_len == 0) {
				mh.msg_iov++;
				mh.msg_iovlen--;
			}
		}
	}
}

struct moat_clamd *
moat_clamd_open(const char *addr, unsigned timeout_ms, char *err, size_t errlen)
{
	struct moat_clamd *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->timeout_ms = timeout_ms;
	if ((c->fd = clamd_connect(addr, timeout_ms, err, errlen)) < 0) {
		moat_clamd_free(c);
		return NULL;
	}
	c->cmd_pending = true;
	return c;
}

int
moat_clamd_send(struct moat_clamd *c, const char *p, size_t n, bool last, char *err, size_t errlen)
{
	static const char cmd[] = "zINSTREAM"; /* with its NUL: the z form */
	static const uint32_t end = 0; /* a chunk of length 0 ends the stream */

	do {
		size_t len = n < CLAMD_CHUNK_MAX ? n : CLAMD_CHUNK_MAX;
		uint32_t be = htonl((uint32_t)len);
		bool final = last && len == n;
		/* the command, the chunk's length, the chunk and the end go in one write where they
		 * fit: a 10 KB message is one system call, not four */
		struct iovec iov[4] = {
			{ .iov_base = (void *)cmd, .iov_len = c->cmd_pending ? sizeof(cmd) : 0 },
			{ .iov_base = &be, .iov_len = len > 0 ? sizeof(be) : 0 },
			{ .iov_base = (void *)p, .iov_len = len },
			{ .iov_base = (void *)&end, .iov_len = final ? sizeof(end) : 0 },
		};

		if (clamd_writev_all(c, iov, 4, err, errlen) < 0)
			return -1;
		c->cmd_pending = false;
		p += len;
		n -= len;
	} while (n > 0);
	return 0;
}

int
moat_clamd_fd(const struct moat_clamd *c)
{
	return c->fd;
}

int
moat_clamd_read(struct moat_clamd *c, struct moat_clamd_result *res, char *err, size_t errlen)
{
	for (;;) {
		char *end;
		ssize_t r = recv(c->fd, c->reply + c->rlen, MOAT_CLAMD_REPLY_MAX - c->rlen, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (r < 0) {
			snprintf(err, errlen, "recv: %s", strerror(errno));
			return -1;
		}
		c->rlen += (size_t)r;
		/* the z form ends its reply with a NUL; tolerate a newline and a bare close too */
		if ((end = memchr(c->reply, '\0', c->rlen)) != NULL ||
		    (end = memchr(c->reply, '\n', c->rlen)) != NULL || (r == 0 && c->rlen > 0))
			return moat_clamd_parse(c->reply, end ? (size_t)(end - c->reply) : c->rlen,
				   res, err, errlen) < 0
			    ? -1
			    : 1;
		if (r == 0) {
			snprintf(err, errlen, "clamd closed the connection without a reply");
			return -1;
		}
		if (c->rlen == MOAT_CLAMD_REPLY_MAX) {
			snprintf(err, errlen, "reply longer than %d bytes", MOAT_CLAMD_REPLY_MAX);
			return -1;
		}
	}
}

int
moat_clamd_parse(const char *reply, size_t n, struct moat_clamd_result *res, char *err,
    size_t errlen)
{
	static const char prefix[] = "stream: ", found[] = " FOUND", error[] = " ERROR";
	const char *name = reply + sizeof(prefix) - 1;
	size_t len;

	memset(res, 0, sizeof(*res));
	if (n >= sizeof(error) - 1 &&
	    memcmp(reply + n - (sizeof(error) - 1), error, sizeof(error) - 1) == 0) {
		snprintf(err, errlen, "clamd: %.*s", (int)(n < 200 ? n : 200), reply);
		for (char *q = err; *q; q++)
			if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e)
				*q = '?';
		return -1;
	}
	if (n < sizeof(prefix) - 1 || memcmp(reply, prefix, sizeof(prefix) - 1) != 0)
		goto bad;
	len = n - (sizeof(prefix) - 1);
	if (len == 2 && memcmp(name, "OK", 2) == 0)
		return 0;
	if (len <= sizeof(found) - 1 ||
	    memcmp(name + len - (sizeof(found) - 1), found, sizeof(found) - 1) != 0)
		goto bad;
	len -= sizeof(found) - 1;
	if (len >= sizeof(res->virus))
		goto bad;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];

		/* it goes into a reply line and a header field: printable ASCII, no space */
		if (ch <= 0x20 || ch > 0x7e)
			goto bad;
		res->virus[i] = (char)ch;
	}
	res->infected = true;
	return 0;
bad:
	memset(res, 0, sizeof(*res));
	snprintf(err, errlen, "malformed reply from clamd");
	return -1;
}

void
moat_clamd_free(struct moat_clamd *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}
