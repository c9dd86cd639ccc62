/*
 * native_int.h - what the two halves of the native engine share: native.c (the worker loops,
 * their listeners, accept and stop) and native_conn.c (one MTA connection: read, frame, dispatch
 * to conn.c, write). Nothing else includes it but the engine's unit test.
 */
#ifndef MOAT_MILTER_NATIVE_INT_H
#define MOAT_MILTER_NATIVE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <uv.h>

#include "conn.h"
#include "packet.h"
#include "policy.h"

struct nat_worker;

struct nat_conn {
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;
	uv_timer_t timer;
	uv_work_t work;
	uv_write_t wr;
	struct nat_worker *w;
	struct nat_conn *prev, *next;
	unsigned refs; /* open handles + a work item in flight */
	struct milter_conn *mc;
	char *in; /* bytes read, in_off..in_len not yet framed */
	size_t in_len, in_off, in_cap, in_need;
	char *out;
	size_t out_len, out_cap;
	char *mac[MILTER_STAGE_COUNT];
	size_t mac_len[MILTER_STAGE_COUNT];
	char reply[MOAT_REPLY_TEXT_MAX + 32]; /* "code status text" of this step, or "" */
	bool busy, writing, closing, quit, reading;
	bool quickack; /* a tuned TCP connection: re-arm TCP_QUICKACK after each read */
	bool in_msg; /* from MAIL to the end of that message: a draining worker lets it finish */
};

/* One worker thread: its loop, its listener (a dup of the milter socket), its connections. */
struct nat_worker {
	uv_loop_t loop;
	uv_async_t stop;
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} lis;
	bool tcp;
	struct moat_policy *pol;
	uint64_t timeout_ms;
	bool nodelay;
	struct nat_conn *conns;
	pthread_t thread;
	uv_timer_t drain; /* drain_timeout: what is left then is cut */
	uint64_t drain_ms;
	bool draining, drained;
};

/* nat__conn_new - a connection on w's loop, its stream handle initialised (a TCP handle when w
 * listens on inet, else a pipe) but not yet connected, linked into w->conns; NULL when out of
 * memory. The caller accepts (or opens) into c->h, then calls nat__conn_start, or
 * nat__conn_close when that failed. */
struct nat_conn *nat__conn_new(struct nat_worker *w);
/* nat__conn_start - serve the connected c: its milter_timeout timer and its first read. */
void nat__conn_start(struct nat_conn *c);
/* nat__conn_close - close c's handles; it is freed with the last reference. Idempotent. */
void nat__conn_close(struct nat_conn *c);
/* nat__conn_drain - c's worker drains (w->draining): c is closed now when it has no message in
 * progress, else once that message is answered. */
void nat__conn_drain(struct nat_conn *c);
/* nat__worker_drained - the last connection of a draining worker is gone: its loop may end. */
void nat__worker_drained(struct nat_worker *w);

#endif /* MOAT_MILTER_NATIVE_INT_H */
