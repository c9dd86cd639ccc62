/*
 * interpose.c - three libc calls of libmilter, taken over by definitions in the executable.
 *
 * libmilter (a shared library) calls accept, read and sigwait through the PLT, so a definition in
 * the executable is the one it gets. That is how we fix two things libmilter gives no hook for:
 *
 * 1. The inet-socket stall. The MTA writes a macro packet and then the command packet without
 *    waiting for an answer in between (write, write, read). Its second small write is held by
 *    Nagle's algorithm until the first is ACKed, and the milter side delays that ACK (up to 40 ms
 *    on Linux) because it has nothing to send yet: one stall per protocol round. Likewise our own
 *    header edits followed by the final reply are write, write. So on every accepted TCP socket
 *    we set TCP_NODELAY once, and TCP_QUICKACK after every read (the kernel drops quickack mode
 *    again on its own, tcp(7)), so the MTA's data is ACKed at once; except after the read of a
 *    packet's 5-byte header when a payload follows, which libmilter reads at once and which
 *    arrived with it: the read of the payload re-arms it (half the setsockopt calls).
 *    milter_tcp_tuning = no turns this off (bench/milter measures the stall with it).
 * 2. SIGHUP. libmilter's signal thread sigwaits for SIGHUP, SIGTERM and SIGINT and stops the
 *    milter on any of them. We remove SIGHUP from its set; main.c's own thread waits for SIGHUP
 *    and reloads the configuration.
 *
 * Only sockets accepted here are tuned: a flag per descriptor number, set at accept and cleared
 * by close (also taken over here) before the number can be handed out again, so a descriptor
 * another part of the process opens later is never given TCP options. The first tuned connection
 * calls the hook main.c registers (it logs "tcp-tuning active"), the proof that the interposition
 * took effect, which the e2e tests look for: a libmilter that stopped calling through the PLT
 * would silently bring the stall back. No hook, no call: bench/milter preloads this file alone
 * into another milter.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "interpose.h"

#define TUNED_FDS 65536

static atomic_bool tcp_tuning = true;
static atomic_bool first_tuned_done;
static _Atomic(milter_interpose_hook) first_tuned_hook;
static atomic_uchar tuned[TUNED_FDS]; /* 1: an accepted TCP socket of ours */

typedef ssize_t (*read_fn)(int, void *, size_t);
typedef int (*close_fn)(int);
static _Atomic(read_fn) real_read;
static _Atomic(close_fn) real_close;

void
milter_interpose_tcp_tuning(bool on)
{
	atomic_store(&tcp_tuning, on);
}

void
milter_interpose_on_first_tuned(milter_interpose_hook hook)
{
	atomic_store(&first_tuned_hook, hook);
}

bool
milter_interpose_tuned(int fd)
{
	return fd >= 0 && fd < TUNED_FDS && atomic_load(&tuned[fd]) != 0;
}

/* accept - libmilter's listener; marks and tunes TCP connections. */
int
accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	int cfd = accept4(fd, addr, len, 0);
	struct sockaddr_storage ss = { 0 };
	socklen_t sl = sizeof(ss);
	int one = 1;

	if (cfd < 0 || cfd >= TUNED_FDS)
		return cfd;
	atomic_store(&tuned[cfd], 0);
	if (!atomic_load(&tcp_tuning))
		return cfd;
	if (getsockname(cfd, (struct sockaddr *)&ss, &sl) == 0 &&
	    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
		(void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		(void)setsockopt(cfd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
		atomic_store(&tuned[cfd], 1);
		milter_interpose_hook hook = atomic_load(&first_tuned_hook);
		if (hook != NULL && !atomic_exchange(&first_tuned_done, true))
			hook();
	}
	return cfd;
}

/*
 * payload_follows - a read of n bytes that returned r was a milter packet header (4-byte length,
 * network order, then the command byte) announcing a payload, which libmilter reads next.
 */
static bool
payload_follows(const void *buf, size_t n, ssize_t r)
{
	const unsigned char *b = buf;

	return n == 5 && r == 5 &&
	    (((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3]) > 1;
}

/* read - the real read, then quickack again on our TCP milter sockets. */
ssize_t
read(int fd, void *buf, size_t n)
{
	read_fn fn = atomic_load(&real_read);
	ssize_t r;

	if (fn == NULL) {
		fn = (read_fn)dlsym(RTLD_NEXT, "read");
		if (fn == NULL) {
			errno = ENOSYS;
			return -1;
		}
		atomic_store(&real_read, fn);
	}
	r = fn(fd, buf, n);
	if (r > 0 && fd >= 0 && fd < TUNED_FDS && atomic_load(&tuned[fd]) &&
	    !payload_follows(buf, n, r)) {
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	}
	return r;
}

/* close - forget the descriptor's flag while the number is still ours, then the real close. */
int
close(int fd)
{
	close_fn fn = atomic_load(&real_close);

	if (fn == NULL) {
		fn = (close_fn)dlsym(RTLD_NEXT, "close");
		if (fn == NULL) {
			errno = ENOSYS;
			return -1;
		}
		atomic_store(&real_close, fn);
	}
	if (fd >= 0 && fd < TUNED_FDS)
		atomic_store(&tuned[fd], 0);
	return fn(fd);
}

/* sigwait - libmilter's signal thread: everything it asked for except SIGHUP (main.c's). */
int
sigwait(const sigset_t *set, int *sig)
{
	sigset_t mine = *set;
	int r;

	(void)sigdelset(&mine, SIGHUP);
	do {
		r = sigwaitinfo(&mine, NULL);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno;
	*sig = r;
	return 0;
}
