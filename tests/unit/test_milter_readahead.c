/*
 * test_milter_readahead.c - the read-ahead buffer of milter connections (milter/readahead.c): a
 * burst of packets costs one kernel read and no kernel poll while bytes are held; partial
 * packets, end of file, EINTR, EAGAIN and errors come through as read(2) gives them; large reads
 * bypass the buffer; descriptors that are not connections, or closed and reused, are left alone.
 * The "kernel" is a socketpair behind counting wrappers (recv and ppoll, which nothing here takes
 * over), or a scripted failure.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../milter/readahead.h"

static int kernel_reads, kernel_polls;
static int fail_next_read; /* errno for the next kernel read, 0: none */
static size_t last_read_n;

static ssize_t
kernel_read(int fd, void *buf, size_t n)
{
	kernel_reads++;
	last_read_n = n;
	if (fail_next_read != 0) {
		errno = fail_next_read;
		fail_next_read = 0;
		return -1;
	}
	return recv(fd, buf, n, 0);
}

static int
kernel_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	struct timespec ts = { timeout / 1000, (long)(timeout % 1000) * 1000000 };

	kernel_polls++;
	return ppoll(fds, n, timeout < 0 ? NULL : &ts, NULL);
}

static int pair[2]; /* pair[0]: the milter's end (a "connection"), pair[1]: the MTA's */

static void
setup(void)
{
	kernel_reads = kernel_polls = 0;
	fail_next_read = 0;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
	milter_readahead_open(pair[0]);
}

static void
teardown(void)
{
	milter_readahead_close(pair[0]);
	close(pair[0]);
	close(pair[1]);
}

static void
send_all(const void *p, size_t n)
{
	cr_assert_eq(send(pair[1], p, n, 0), (ssize_t)n);
}

static ssize_t
ra_read(void *buf, size_t n, bool *refilled)
{
	return milter_readahead_read(pair[0], buf, n, kernel_read, refilled);
}

/* packet - a milter packet: 4-byte length (command byte included), command, payload */
static size_t
packet(unsigned char *out, char cmd, const char *payload)
{
	size_t pl = strlen(payload);
	uint32_t len = (uint32_t)pl + 1;

	out[0] = (unsigned char)(len >> 24);
	out[1] = (unsigned char)(len >> 16);
	out[2] = (unsigned char)(len >> 8);
	out[3] = (unsigned char)len;
	out[4] = (unsigned char)cmd;
	memcpy(out + 5, payload, pl);
	return pl + 5;
}

/* poll_in - libmilter's poll before a read: POLLIN|POLLPRI on the connection */
static int
poll_in(int timeout, short *revents)
{
	struct pollfd p = { .fd = pair[0], .events = POLLIN | POLLPRI };
	int r = milter_readahead_poll(&p, 1, timeout, kernel_poll);

	*revents = p.revents;
	return r;
}

Test(readahead, burst_one_kernel_read_no_poll, .init = setup, .fini = teardown)
{
	unsigned char burst[256], got[64];
	size_t n = 0, at = 0;
	bool refilled;
	short rev;
	static const struct {
		char cmd;
		const char *payload;
	} pk[] = { { 'D', "Hj\0001" }, { 'L', "From\0a@b.example" }, { 'N', "" }, { 'E', "" } };

	for (size_t i = 0; i < sizeof(pk) / sizeof(pk[0]); i++)
		n += packet(burst + n, pk[i].cmd, pk[i].payload);
	send_all(burst, n);

	/* libmilter: poll, read 5, poll, read payload; for each packet */
	cr_assert_eq(poll_in(1000, &rev), 1);
	cr_expect_eq(rev, POLLIN);
	cr_assert_eq(ra_read(got, 5, &refilled), 5);
	cr_expect(refilled, "the first read goes to the kernel");
	cr_expect_eq(last_read_n, MILTER_READAHEAD_SIZE, "for as much as the buffer takes");
	cr_expect_eq(memcmp(got, burst, 5), 0);
	at = 5;
	while (at < n) {
		size_t want = (size_t)got[3] - 1; /* lengths here are < 256 */
		if (want > 0) {
			cr_assert_eq(poll_in(1000, &rev), 1);
			cr_assert_eq(ra_read(got, want, &refilled), (ssize_t)want);
			cr_expect_not(refilled);
			cr_expect_eq(memcmp(got, burst + at, want), 0);
			at += want;
		}
		if (at == n)
			break;
		cr_assert_eq(poll_in(1000, &rev), 1);
		cr_assert_eq(ra_read(got, 5, &refilled), 5);
		cr_expect_not(refilled);
		cr_expect_eq(memcmp(got, burst + at, 5), 0);
		at += 5;
	}
	cr_expect_eq(kernel_reads, 1, "one kernel read for the whole burst");
	cr_expect_eq(kernel_polls, 1, "no kernel poll after the first, while bytes are held");
	cr_expect_eq(milter_readahead_held(pair[0]), 0, "all handed out");

	/* empty again: poll is the kernel's, with its timeout */
	cr_expect_eq(poll_in(0, &rev), 0);
	cr_expect_eq(kernel_polls, 2);
}

Test(readahead, partial_packet_then_rest, .init = setup, .fini = teardown)
{
	unsigned char pk[64], got[64];
	size_t n = packet(pk, 'H', "mx.example");
	bool refilled;

	send_all(pk, 3); /* a header cut short */
	cr_assert_eq(ra_read(got, 5, &refilled), 3, "a short read, as read(2) gives it");
	cr_expect_eq(memcmp(got, pk, 3), 0);
	cr_expect_eq(milter_readahead_held(pair[0]), 0);
	send_all(pk + 3, n - 3);
	cr_assert_eq(ra_read(got + 3, 2, &refilled), 2);
	cr_expect(refilled);
	cr_expect_eq(milter_readahead_held(pair[0]), n - 5, "the payload is held");
	cr_assert_eq(ra_read(got + 5, 64, &refilled), (ssize_t)(n - 5),
	    "a read for more than is held gets what is held, without waiting");
	cr_expect_not(refilled);
	cr_expect_eq(memcmp(got, pk, n), 0);
	cr_expect_eq(kernel_reads, 2);
}

Test(readahead, eof_after_held_bytes, .init = setup, .fini = teardown)
{
	unsigned char got[16];
	bool refilled;
	short rev;

	send_all("abcdefgh", 8);
	shutdown(pair[1], SHUT_WR);
	cr_assert_eq(ra_read(got, 2, &refilled), 2);
	/* the kernel would say POLLIN|POLLHUP; the held bytes come first, as plain input */
	cr_assert_eq(poll_in(1000, &rev), 1);
	cr_expect_eq(rev, POLLIN);
	cr_assert_eq(ra_read(got, 16, &refilled), 6);
	cr_expect_eq(memcmp(got, "cdefgh", 6), 0);
	cr_expect_eq(ra_read(got, 16, &refilled), 0, "end of file once the buffer is empty");
	cr_expect_not(refilled);
	cr_expect_eq(kernel_reads, 2);
}

Test(readahead, eintr_eagain_error_pass_through, .init = setup, .fini = teardown)
{
	unsigned char got[16];
	bool refilled;

	fail_next_read = EINTR;
	errno = 0;
	cr_expect_eq(ra_read(got, 5, &refilled), -1);
	cr_expect_eq(errno, EINTR);
	cr_expect_not(refilled);
	cr_expect_eq(milter_readahead_held(pair[0]), 0);

	cr_assert_eq(fcntl(pair[0], F_SETFL, O_NONBLOCK), 0);
	errno = 0;
	cr_expect_eq(ra_read(got, 5, &refilled), -1, "nothing to read on a non-blocking socket");
	cr_expect(errno == EAGAIN || errno == EWOULDBLOCK);

	send_all("0123456789", 10);
	cr_assert_eq(ra_read(got, 4, &refilled), 4);
	fail_next_read = ECONNRESET;
	cr_assert_eq(ra_read(got, 16, &refilled), 6, "held bytes come before the error");
	errno = 0;
	cr_expect_eq(ra_read(got, 16, &refilled), -1);
	cr_expect_eq(errno, ECONNRESET, "the error itself, with its errno");
}

Test(readahead, large_reads_bypass_the_buffer, .init = setup, .fini = teardown)
{
	static unsigned char big[MILTER_READAHEAD_SIZE * 2], got[MILTER_READAHEAD_SIZE * 2];
	bool refilled;
	ssize_t r;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7);
	send_all(big, sizeof(big)); /* far below a unix socket's buffer */
	/* a 64 KB body chunk's payload read: straight into the caller's buffer */
	r = ra_read(got, sizeof(big), &refilled);
	cr_assert_gt(r, 0);
	cr_expect(refilled);
	cr_expect_eq(last_read_n, sizeof(big), "the caller's size, not the buffer's");
	cr_expect_eq(milter_readahead_held(pair[0]), 0, "nothing buffered");
	cr_expect_eq(kernel_reads, 1);
	while ((size_t)r < sizeof(big)) {
		ssize_t more = ra_read(got + r, sizeof(big) - (size_t)r, &refilled);
		cr_assert_gt(more, 0);
		r += more;
	}
	cr_expect_eq(memcmp(got, big, sizeof(big)), 0);
}

Test(readahead, not_a_connection_left_alone, .init = setup, .fini = teardown)
{
	int other[2];
	unsigned char got[16];
	bool refilled;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, other), 0);
	cr_assert_eq(send(other[1], "0123456789", 10, 0), 10);
	cr_expect_eq(milter_readahead_read(other[0], got, 5, kernel_read, &refilled), 5);
	cr_expect_eq(last_read_n, 5, "the caller's size, nothing read ahead");
	cr_expect_eq(milter_readahead_held(other[0]), 0);
	cr_expect_not(milter_readahead_conn(other[0]));
	cr_expect_not(milter_readahead_conn(-1));
	cr_expect_not(milter_readahead_conn(MILTER_READAHEAD_FDS));
	close(other[0]);
	close(other[1]);
}

Test(readahead, close_forgets_reused_number_is_not_ours, .init = setup, .fini = teardown)
{
	unsigned char got[16];
	bool refilled;
	int fd = pair[0], again;

	send_all("0123456789", 10);
	cr_assert_eq(ra_read(got, 5, &refilled), 5);
	cr_expect_eq(milter_readahead_held(fd), 5);
	milter_readahead_close(fd); /* frees the held bytes (ASan: no leak) */
	close(fd);
	cr_expect_not(milter_readahead_conn(fd));
	again = dup(pair[1]);
	cr_assert_eq(again, fd, "the lowest free number is reused");
	cr_expect_not(milter_readahead_conn(again), "a reused number is not a connection");
	cr_expect_eq(milter_readahead_held(again), 0);
	close(again);
	/* teardown closes pair[0] again: give it a descriptor of its own */
	pair[0] = socket(AF_UNIX, SOCK_STREAM, 0);
	milter_readahead_open(pair[0]);
}

Test(readahead, reopen_drops_what_an_earlier_connection_left, .init = setup, .fini = teardown)
{
	unsigned char got[16];
	bool refilled;

	send_all("0123456789", 10);
	cr_assert_eq(ra_read(got, 5, &refilled), 5);
	/* the number closed behind our back (no close call seen) and accepted again */
	milter_readahead_open(pair[0]);
	cr_expect_eq(milter_readahead_held(pair[0]), 0, "a new connection starts empty");
	send_all("abc", 3);
	cr_assert_eq(ra_read(got, 16, &refilled), 3);
	cr_expect_eq(memcmp(got, "abc", 3), 0, "only the new connection's bytes");
}

Test(readahead, poll_mixes_held_and_kernel_descriptors, .init = setup, .fini = teardown)
{
	int other[2];
	unsigned char got[16];
	bool refilled;
	struct pollfd p[3];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, other), 0);
	send_all("0123456789", 10);
	cr_assert_eq(ra_read(got, 5, &refilled), 5);

	/* the pool controller's poll: another descriptor with nothing to read, ours held */
	p[0] = (struct pollfd){ .fd = other[0], .events = POLLIN };
	p[1] = (struct pollfd){ .fd = pair[0], .events = POLLIN | POLLPRI };
	p[2] = (struct pollfd){ .fd = -1, .events = POLLIN };
	kernel_polls = 0;
	cr_expect_eq(milter_readahead_poll(p, 3, -1, kernel_poll), 1,
	    "held bytes are ready at once, not waited for with timeout -1");
	cr_expect_eq(p[0].revents, 0);
	cr_expect_eq(p[1].revents, POLLIN);
	cr_expect_eq(p[2].revents, 0);
	cr_expect_eq(kernel_polls, 1, "the others are asked without waiting");

	cr_assert_eq(send(other[1], "x", 1, 0), 1);
	cr_expect_eq(milter_readahead_poll(p, 3, -1, kernel_poll), 2);
	cr_expect_eq(p[0].revents, POLLIN, "the kernel's answer for the other descriptor");

	/* writes are always the kernel's business */
	struct pollfd w = { .fd = pair[0], .events = POLLOUT };
	kernel_polls = 0;
	cr_expect_eq(milter_readahead_poll(&w, 1, 1000, kernel_poll), 1);
	cr_expect_eq(w.revents, POLLOUT);
	cr_expect_eq(kernel_polls, 1);
	close(other[0]);
	close(other[1]);
}
