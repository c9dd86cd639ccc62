/*
 * readahead.h - a read-ahead buffer per milter connection, serving libmilter's reads and polls
 * (see readahead.c; interpose.c hands libmilter's read and poll to it).
 */
#ifndef MOAT_MILTER_READAHEAD_H
#define MOAT_MILTER_READAHEAD_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Descriptors below this number can be milter connections; higher ones are passed through. */
#define MILTER_READAHEAD_FDS 65536
/* One read from the kernel takes up to this many bytes; a read asking for as many or more goes
 * to the kernel directly (large body chunks are not copied twice). */
#define MILTER_READAHEAD_SIZE 16384

typedef ssize_t (*milter_read_fn)(int fd, void *buf, size_t n);
typedef int (*milter_poll_fn)(struct pollfd *fds, nfds_t n, int timeout);

/* milter_readahead_open - fd is a milter connection from now on (called at accept): its reads
 * are buffered. Forgets whatever an earlier descriptor of that number left. */
void milter_readahead_open(int fd);

/* milter_readahead_close - fd is no longer a milter connection; its buffer is freed. Called
 * before the descriptor is closed, so that the number, once reused, is not ours. */
void milter_readahead_close(int fd);

/* milter_readahead_conn - is fd a milter connection (opened and not closed since)? */
bool milter_readahead_conn(int fd);

/* milter_readahead_held - bytes buffered for fd and not yet handed to a reader. */
size_t milter_readahead_held(int fd);

/*
 * milter_readahead_read - read(2) for fd: from its buffer while that holds bytes, else one call
 * of real for up to MILTER_READAHEAD_SIZE bytes, of which n are returned and the rest kept. A
 * descriptor that is not a milter connection goes straight to real. The result and errno are
 * read(2)'s: 0 only at end of file, and only once the buffer is empty. *refilled says whether
 * real was called and returned data (the caller re-arms TCP_QUICKACK then). Only one thread at a
 * time may read a given descriptor (libmilter: one worker per connection at a time).
 */
ssize_t milter_readahead_read(int fd, void *buf, size_t n, milter_read_fn real, bool *refilled);

/*
 * milter_readahead_poll - poll(2): a descriptor with buffered bytes asked for POLLIN is readable
 * at once (revents POLLIN, nothing else: its bytes come before any hang-up the kernel would
 * report); the others are asked of real, without waiting when one is ready already. Without
 * buffered descriptors, exactly real(fds, n, timeout).
 */
int milter_readahead_poll(struct pollfd *fds, nfds_t n, int timeout, milter_poll_fn real);

#endif /* MOAT_MILTER_READAHEAD_H */
