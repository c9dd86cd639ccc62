/*
 * readahead.c - a read-ahead buffer per milter connection, for libmilter's reads and polls.
 *
 * libmilter reads every packet of the MTA as two reads, the 5-byte header (length and command)
 * and then the payload, each after a poll; with its worker pool it also polls before every packet
 * to decide whether to keep the connection. Postfix sends most packets without waiting for an
 * answer (a macro packet before every event, header field and body chunk, and every no-reply
 * event), so they arrive in bursts: with this buffer a burst costs one poll and one read, and
 * libmilter's further reads and polls are answered from memory.
 *
 * Owns one slot per descriptor number below MILTER_READAHEAD_FDS. Only descriptors opened here
 * (interpose.c: libmilter's accepted connections) are buffered; close forgets the slot before the
 * number can be handed out again. A slot's buffer is allocated by the read that finds it empty
 * and freed by the read that empties it, so an idle connection (waiting for the MTA) holds no
 * memory. libmilter serves a connection in one worker thread at a time and hands it over under
 * its own mutex, so a slot's buffer is only touched by one thread at a time; the number of bytes
 * held is atomic because the pool's controller may poll an idle connection from another thread.
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "readahead.h"

struct ra_slot {
	unsigned char *buf; /* MILTER_READAHEAD_SIZE bytes while some are held, else NULL */
	uint32_t off; /* next byte to hand out */
	_Atomic uint32_t held; /* bytes from off on */
	atomic_bool conn; /* a milter connection, not closed since */
};

static struct ra_slot slots[MILTER_READAHEAD_FDS];

/* slot_of - the slot of a milter connection, NULL for any other descriptor. */
static struct ra_slot *
slot_of(int fd)
{
	if (fd < 0 || fd >= MILTER_READAHEAD_FDS || !atomic_load(&slots[fd].conn))
		return NULL;
	return &slots[fd];
}

/* slot_empty - free the buffer and hold nothing. */
static void
slot_empty(struct ra_slot *s)
{
	free(s->buf);
	s->buf = NULL;
	s->off = 0;
	atomic_store(&s->held, 0);
}

void
milter_readahead_open(int fd)
{
	if (fd < 0 || fd >= MILTER_READAHEAD_FDS)
		return;
	slot_empty(&slots[fd]);
	atomic_store(&slots[fd].conn, true);
}

void
milter_readahead_close(int fd)
{
	if (fd < 0 || fd >= MILTER_READAHEAD_FDS || !atomic_load(&slots[fd].conn))
		return;
	atomic_store(&slots[fd].conn, false);
	slot_empty(&slots[fd]);
}

bool
milter_readahead_conn(int fd)
{
	return slot_of(fd) != NULL;
}

size_t
milter_readahead_held(int fd)
{
	struct ra_slot *s = slot_of(fd);

	return s != NULL ? atomic_load(&s->held) : 0;
}

/* slot_take - hand up to n held bytes to buf; the buffer goes once it is empty. */
static size_t
slot_take(struct ra_slot *s, void *buf, size_t n)
{
	uint32_t held = atomic_load(&s->held);
	size_t k = n < held ? n : held;

	memcpy(buf, s->buf + s->off, k);
	if (k == held) {
		slot_empty(s);
	} else {
		s->off += (uint32_t)k;
		atomic_store(&s->held, held - (uint32_t)k);
	}
	return k;
}

ssize_t
milter_readahead_read(int fd, void *buf, size_t n, milter_read_fn real, bool *refilled)
{
	struct ra_slot *s = slot_of(fd);
	unsigned char *fill;
	ssize_t r;
	int saved;

	*refilled = false;
	if (s != NULL && n > 0 && atomic_load(&s->held) > 0)
		return (ssize_t)slot_take(s, buf, n);
	/* not ours, nothing to buffer, or big enough to be worth the kernel's copy alone */
	if (s == NULL || n == 0 || n >= MILTER_READAHEAD_SIZE ||
	    (fill = malloc(MILTER_READAHEAD_SIZE)) == NULL) {
		r = real(fd, buf, n);
		*refilled = r > 0;
		return r;
	}
	r = real(fd, fill, MILTER_READAHEAD_SIZE);
	if (r <= 0) {
		saved = errno;
		free(fill);
		errno = saved;
		return r;
	}
	*refilled = true;
	s->buf = fill;
	s->off = 0;
	atomic_store(&s->held, (uint32_t)r);
	return (ssize_t)slot_take(s, buf, n);
}

/* ready_held - fds[i] asks for input and its descriptor has buffered bytes */
static bool
ready_held(const struct pollfd *p)
{
	return (p->events & (POLLIN | POLLRDNORM)) != 0 && milter_readahead_held(p->fd) > 0;
}

int
milter_readahead_poll(struct pollfd *fds, nfds_t n, int timeout, milter_poll_fn real)
{
	nfds_t i, held = 0;
	int r, ready = 0;

	for (i = 0; i < n; i++)
		held += ready_held(&fds[i]);
	if (held == 0)
		return real(fds, n, timeout);
	/* the others as they are now: one descriptor is ready, so nothing is waited for */
	r = held < n ? real(fds, n, 0) : 0;
	for (i = 0; i < n; i++) {
		if (ready_held(&fds[i]))
			fds[i].revents = (short)(fds[i].events & (POLLIN | POLLRDNORM));
		else if (r <= 0)
			fds[i].revents = 0; /* not asked, timed out, or the poll failed (EINTR) */
		ready += fds[i].revents != 0;
	}
	return ready;
}
