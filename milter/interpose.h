/*
 * interpose.h - libc calls of libmilter that mxmoat-milter takes over (see interpose.c).
 */
#ifndef MOAT_MILTER_INTERPOSE_H
#define MOAT_MILTER_INTERPOSE_H

#include <stdbool.h>

/* milter_interpose_tcp_tuning - enable (default) or disable TCP_NODELAY/TCP_QUICKACK on
 * accepted TCP sockets (milter_tcp_tuning); takes effect at the next accept. */
void milter_interpose_tcp_tuning(bool on);

/* milter_interpose_on_first_tuned - hook called once, in libmilter's accepting thread, when the
 * first TCP connection has been tuned. */
typedef void (*milter_interpose_hook)(void);
void milter_interpose_on_first_tuned(milter_interpose_hook hook);

/* milter_interpose_tuned - is fd a TCP connection accepted and tuned here (and not closed since)? */
bool milter_interpose_tuned(int fd);

#endif /* MOAT_MILTER_INTERPOSE_H */
