/*
 * conn.h - what the parts of a worker share (worker.c: the loop, its listeners and thread;
 * accept.c: accepting a connection and a load balancer's PROXY header; conn.c: the connection,
 * its two legs, timers, work items and backpressure). Only those files include it.
 */
#ifndef PX_CONN_H
#define PX_CONN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "policy.h"
#include "proxy_inbound.h"
#include "stream.h"
#include "worker.h"

struct px_worker {
	uv_loop_t loop;
	uv_async_t stop;
	/* the listening sockets, polled and accepted by accept.c rather than uv_listen: past the
	 * descriptor limit libuv would accept and close a connection without a word */
	uv_poll_t listeners[PX_LISTEN_MAX];
	int listen_fd[PX_LISTEN_MAX];
	size_t nlisteners;
	struct moat_policy *pol;
	uv_thread_t thread;
	atomic_int done;
	atomic_uint sessions;
	bool listen_tls[PX_LISTEN_MAX]; /* implicit TLS (proxy_listen_tls) */
	/* rate limits */
	struct moat_ratelimit *rl; /* the policy's (borrowed) */
	struct px_rlredis *rlr; /* this loop's Redis store; NULL: the embedded one */
	bool stopping;
	/* work items that cannot block, run by the idle handle in order (op_work) */
	uv_idle_t inline_idle;
	struct conn *inline_head, *inline_tail;
	/* the descriptor limit (accept.c): a descriptor held in reserve, given up to accept a
	 * connection past the limit and answer it 421; accepting pauses meanwhile */
	int reserve_fd;
	uv_timer_t accept_pause;
	uint64_t fdlimit_logged; /* uv_now of the last descriptor-limit line; 0: none yet */
	unsigned fdlimit_refused, fdlimit_unanswered; /* since that line */
	/* the backend's extensions (PX_EXT_*) as its last leg's EHLO reply gave them, under bexts_conf
	 * (a reference, so no other configuration can take its address; NULL: none learned) */
	struct moat_conf *bexts_conf;
	unsigned bexts;
};

/* The backend leg: allocated per connection, freed when its stream has closed. */
struct bconn {
	struct px_stream st;
	struct conn *c;
};

struct conn {
	struct px_stream client;
	uv_timer_t timer; /* client: greet pause, idle, data, lifetime */
	uv_timer_t btimer; /* backend: connect and reply */
	uv_work_t work;
	struct px_worker *w;
	struct px_session *s;
	struct bconn *b;
	struct conn *inline_next; /* the loop's queue of work items that cannot block */
	unsigned open; /* handles not yet closed (bconn included) */
	bool work_pending, closing, close_after_write, greeted;
	bool rl_pending; /* a rate-limit check waits for Redis */
	bool rl_hold_input; /* ... at connect or before TLS: read nothing meanwhile */
	bool tls_implicit;
	char *early; /* bytes after a PROXY header, kept for TLS meanwhile */
	size_t nearly;
	uint64_t start; /* uv_now at accept */
	char *out; /* replies batched for one write */
	size_t out_len, out_cap;
	char laddr[64];
	unsigned lport;
	struct pin *pin; /* a load balancer's PROXY header is being read (no session yet) */
	uint64_t rate_start; /* DATA: uv_now when this proxy_min_data_rate window began; 0: none */
	uint64_t rate_base; /* client.bytes_in when that window began */
};

/* The connection's own addresses, and the header bytes read so far from a listed load balancer. */
struct pin {
	char paddr[64], listener[96];
	unsigned pport;
	size_t len;
	char buf[PX_PIN_MAX];
};

/* worker.c */
void px__worker_drained(struct px_worker *w);
/* conn.c */
void px__conn_begin(struct conn *c, const char *paddr, unsigned pport, const char *listener,
    const char *early, size_t nearly);
void px__conn_close(struct conn *c);
void px__conn_on_timer(uv_timer_t *t);
void px__conn_client_closed(void *arg);
/* accept.c: the listening sockets' poll callback, and the end of a pause at the descriptor limit */
void px__conn_accept(uv_poll_t *h, int status, int events);
void px__conn_accept_resume(uv_timer_t *t);
/* px__conn_reserve - a descriptor to hold in reserve (px_worker.reserve_fd); -1 if none */
int px__conn_reserve(void);

#endif /* PX_CONN_H */
