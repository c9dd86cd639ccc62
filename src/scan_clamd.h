/*
 * scan_clamd.h - a client of ClamAV's clamd for one message: the zINSTREAM command over a unix or
 * TCP socket, the message in length-prefixed chunks as it arrives, then one bounded reply.
 *
 * Every call that waits is bounded by the timeout given to moat_clamd_open; the caller polls
 * moat_clamd_fd for the reply so it can wait on another scanner at the same time.
 */
#ifndef MOAT_SCAN_CLAMD_H
#define MOAT_SCAN_CLAMD_H

#include <stdbool.h>
#include <stddef.h>

/* clamd's reply is "stream: OK", "stream: NAME FOUND" or "... ERROR": one line, never long. */
#define MOAT_CLAMD_REPLY_MAX 1024
#define MOAT_CLAMD_VIRUS_MAX 128

struct moat_clamd;

struct moat_clamd_result {
	bool infected;
	char virus[MOAT_CLAMD_VIRUS_MAX]; /* the signature's name, printable ASCII only */
};

/*
 * moat_clamd_open - connect to ADDR (unix:/path or host:port) within TIMEOUT_MS. NULL with err
 * set when clamd cannot be reached. zINSTREAM goes with the first moat_clamd_send.
 */
struct moat_clamd *moat_clamd_open(const char *addr, unsigned timeout_ms, char *err, size_t errlen);

/* moat_clamd_send - N message bytes as INSTREAM chunks (the command first, the first time);
 * LAST ends the stream after them (clamd scans). As few writes as the socket takes: a message
 * that fits one chunk is one. 0, or -1 with err (clamd closed, refused more, or took longer than
 * the timeout). */
int moat_clamd_send(struct moat_clamd *c, const char *p, size_t n, bool last, char *err,
    size_t errlen);

/* moat_clamd_fd - the socket to poll for the reply (POLLIN). */
int moat_clamd_fd(const struct moat_clamd *c);

/*
 * moat_clamd_read - read what has arrived of the reply, without waiting: 1 with res when it is
 * complete, 0 when more is to come, -1 with err when clamd closed early, sent more than
 * MOAT_CLAMD_REPLY_MAX or something that is not a verdict.
 */
int moat_clamd_read(struct moat_clamd *c, struct moat_clamd_result *res, char *err, size_t errlen);

/* moat_clamd_parse - one reply (N bytes, its NUL or newline not included): 0 with res, or -1
 * with err for an ERROR reply or anything that is not "stream: OK" / "stream: NAME FOUND". */
int moat_clamd_parse(const char *reply, size_t n, struct moat_clamd_result *res, char *err,
    size_t errlen);

void moat_clamd_free(struct moat_clamd *c); /* NULL is a no-op */

#endif /* MOAT_SCAN_CLAMD_H */
