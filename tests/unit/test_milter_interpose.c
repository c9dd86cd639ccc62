/*
 * test_milter_interpose.c - the libc calls mxmoat-milter takes over from libmilter: accept tunes
 * TCP connections (TCP_NODELAY, one hook call for the first), leaves unix-socket connections
 * alone, and close forgets the descriptor, so a number handed out again is not treated as ours.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../milter/interpose.h"

static atomic_int hook_calls;

static void
count_hook(void)
{
	atomic_fetch_add(&hook_calls, 1);
}

/* tcp_accepted - a loopback listener, a client connected to it, and the accepted end (through the
 * interposed accept). */
static int
tcp_accepted(int *client, int *listener)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sin);

	*listener = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(*listener, 0);
	cr_assert_eq(bind(*listener, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(*listener, 4), 0);
	cr_assert_eq(getsockname(*listener, (struct sockaddr *)&sin, &sl), 0);
	*client = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(connect(*client, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return accept(*listener, NULL, NULL);
}

static int
nodelay(int fd)
{
	int on = 0;
	socklen_t l = sizeof(on);

	cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &l), 0);
	return on;
}

Test(interpose, tcp_tuned_hook_once_close_forgets)
{
	int c1, l1, c2, l2, a1, a2;

	milter_interpose_tcp_tuning(true);
	milter_interpose_on_first_tuned(count_hook);
	a1 = tcp_accepted(&c1, &l1);
	cr_assert_geq(a1, 0);
	cr_expect(milter_interpose_tuned(a1), "an accepted TCP connection is tuned");
	cr_expect_eq(nodelay(a1), 1, "TCP_NODELAY is set on it");
	a2 = tcp_accepted(&c2, &l2);
	cr_expect(milter_interpose_tuned(a2));
	cr_expect_eq(atomic_load(&hook_calls), 1,
	    "the hook runs for the first tuned connection only");
	cr_assert_eq(close(a1), 0);
	cr_expect_not(milter_interpose_tuned(a1), "close forgets the descriptor");
	/* The number comes back for a socket that is not an accepted milter connection. */
	int again = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(again, a1, "the lowest free number is reused");
	cr_expect_not(milter_interpose_tuned(again), "a reused number is not treated as ours");
	close(again);
	close(a2);
	close(c1);
	close(c2);
	close(l1);
	close(l2);
}

Test(interpose, unix_socket_and_tuning_off_left_alone)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int l, c, a, cl, ll;

	milter_interpose_tcp_tuning(true);
	l = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_geq(l, 0);
	/* abstract name: nothing on the file system to clean up */
	snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1, "mxmoat-interpose-%d", (int)getpid());
	socklen_t sl =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sun.sun_path + 1));
	cr_assert_eq(bind(l, (struct sockaddr *)&sun, sl), 0);
	cr_assert_eq(listen(l, 1), 0);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_eq(connect(c, (struct sockaddr *)&sun, sl), 0);
	a = accept(l, NULL, NULL);
	cr_assert_geq(a, 0);
	cr_expect_not(milter_interpose_tuned(a), "a unix-socket connection is not tuned");
	close(a);
	close(c);
	close(l);

	milter_interpose_tcp_tuning(false);
	a = tcp_accepted(&cl, &ll);
	cr_assert_geq(a, 0);
	cr_expect_not(milter_interpose_tuned(a), "milter_tcp_tuning = no: not tuned");
	cr_expect_eq(nodelay(a), 0, "and TCP_NODELAY stays off");
	close(a);
	close(cl);
	close(ll);
	milter_interpose_tcp_tuning(true);
}
