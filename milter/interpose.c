/*
 * interpose.c - libc calls of libmilter, taken over by definitions in the executable.
 *
 * libmilter (a shared library) calls accept, read, poll, close and sigwait through the PLT, so a
 * definition in the executable is the one it gets. That is how we fix three things libmilter
 * gives no hook for:
 *
 * 1. Two reads and two polls per packet. libmilter reads the MTA's packets a header and a
 *    payload at a time, each after a poll, and polls again before every packet; Postfix sends
 *    most of them in bursts without waiting for an answer. read and poll on an accepted
 *    connection go through readahead.c: one read takes what the socket has, and libmilter's
 *    reads and polls are served from it while it holds bytes (unix and inet sockets alike).
 * 2. The inet-socket stall. The MTA writes a macro packet and then the command packet without
 *    waiting for an answer in between (write, write, read). Its second small write is held by
 *    Nagle's algorithm until the first is ACKed, and the milter side delays that ACK (up to 40 ms
 *    on Linux) because it has nothing to send yet: one stall per protocol round. Likewise our own
 *    header edits followed by the final reply are write, write. So on every accepted TCP socket
 *    we set TCP_NODELAY once, and TCP_QUICKACK after every read that took data from the kernel
 *    (the kernel drops quickack mode again on its own, tcp(7)), so the MTA's data is ACKed at
 *    once. milter_tcp_tuning = no turns this off (bench/milter measures the stall with it).
 * 3. SIGHUP. libmilter's signal thread sigwaits for SIGHUP, SIGTERM and SIGINT and stops the
 *    milter on any of them. We remove SIGHUP from its set; main.c's own thread waits for SIGHUP
 *    and reloads the configuration.
 *
 * Only sockets accepted here are buffered and tuned: flags per descriptor number, set at accept
 * and cleared by close (also taken over here) before the number can be handed out again, so a
 * descriptor another part of the process opens later is read as it is and never given TCP
 * options. The first tuned connection calls the hook main.c registers (it logs "tcp-tuning
 * active"), the proof that the interposition took effect, which the e2e tests look for: a
 * libmilter that stopped calling through the PLT would silently bring the stall back. No hook, no
 * call: bench/milter preloads this file alone into another milter.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "interpose.h"
#include "readahead.h"

#define TUNED_FDS MILTER_READAHEAD_FDS

static atomic_bool tcp_tuning = true;
static atomic_bool first_tuned_done;
static _Atomic(milter_interpose_hook) first_tuned_hook;
static atomic_uchar tuned[TUNED_FDS]; /* 1: an accepted TCP socket of ours */

typedef int (*close_fn)(int);
/* libc's read, poll and close (dlsym's answers, kept) */
static void *_Atomic real_read;
static void *_Atomic real_poll;
static void *_Atomic real_close;

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

/* accept - libmilter's listener; marks its connections, tunes the TCP ones. */
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
	milter_readahead_open(cfd);
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

/* next_fn - the definition of name after ours (libc's), looked up once; NULL if there is none. */
static void *
next_fn(void *_Atomic *cache, const char *name)
{
	void *fn = atomic_load(cache);

	if (fn == NULL) {
		fn = dlsym(RTLD_NEXT, name);
		atomic_store(cache, fn);
	}
	return fn;
}

/* read - libmilter's reads: through the read-ahead buffer of its connections; quickack again on
 * our TCP milter sockets whenever the kernel handed over data. */
ssize_t
read(int fd, void *buf, size_t n)
{
	milter_read_fn fn = (milter_read_fn)next_fn(&real_read, "read");
	bool refilled;
	ssize_t r;

	if (fn == NULL) {
		errno = ENOSYS;
		return -1;
	}
	r = milter_readahead_read(fd, buf, n, fn, &refilled);
	if (refilled && milter_interpose_tuned(fd)) {
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	}
	return r;
}

/* poll - libmilter's polls: a connection with buffered bytes is readable without the kernel. */
int
poll(struct pollfd *fds, nfds_t n, int timeout)
{
	milter_poll_fn fn = (milter_poll_fn)next_fn(&real_poll, "poll");

	if (fn == NULL) {
		errno = ENOSYS;
		return -1;
	}
	return milter_readahead_poll(fds, n, timeout, fn);
}

/* close - forget the descriptor's flags and buffer while the number is still ours, then the
 * real close. */
int
close(int fd)
{
	close_fn fn = (close_fn)next_fn(&real_close, "close");

	if (fn == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (fd >= 0 && fd < TUNED_FDS)
		atomic_store(&tuned[fd], 0);
	milter_readahead_close(fd);
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
