/*
 * interpose.h - libc calls of libmilter that mxmoat-milter takes over (see interpose.c).
 */
#ifndef MOAT_MILTER_INTERPOSE_H
#define MOAT_MILTER_INTERPOSE_H

#include <stdbool.h>

/* milter_interpose_tcp_tuning - enable (default) or disable TCP_NODELAY/TCP_QUICKACK on
 * accepted TCP sockets; bench/milter turns it off to show the stall it removes. */
void milter_interpose_tcp_tuning(bool on);

#endif /* MOAT_MILTER_INTERPOSE_H */
