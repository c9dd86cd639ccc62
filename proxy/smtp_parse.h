/*
 * smtp_parse.h - the client side's lexical layer: one command line out of a byte buffer (limits
 * checked on partial input), MAIL/RCPT paths and ESMTP parameters (RFC 5321 4.1.2, RFC 1869).
 * Pure functions over caller buffers: no allocation, no I/O, so they are unit-tested and fuzzed.
 */
#ifndef PX_SMTP_PARSE_H
#define PX_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#define PX_PATH_MAX 256 /* RFC 5321 4.5.3.1.3: reverse-path/forward-path octets */
#define PX_PARAMS_MAX 16 /* ESMTP parameters on one MAIL/RCPT */

enum px_line {
	PX_LINE_NEED = 0, /* no complete line yet and the limit is not reached */
	PX_LINE_OK, /* a line ending in CRLF (or a normalised bare CR/LF) */
	PX_LINE_TOOLONG, /* limit reached before the end of line */
	PX_LINE_BARE, /* a bare CR or bare LF (reject mode) */
	PX_LINE_NUL, /* a NUL byte in the line */
};

/*
 * px_parse_line - look for one command line at the start of buf[0..len). On PX_LINE_OK, *linelen
 * is the line without its terminator and *used the bytes to consume. On PX_LINE_BARE / _NUL,
 * *used covers the offending line up to and including its (bare) terminator, or 0 if that is
 * not in the buffer yet. On PX_LINE_TOOLONG *used is 0. max counts the line with its CRLF.
 * normalize: a bare LF or bare CR ends the line like CRLF (CR CR LF is two line ends).
 */
enum px_line px_parse_line(const char *buf, size_t len, size_t max, bool normalize, size_t *linelen,
    size_t *used);

/* px_parse_skip - discard up to and including the next LF; returns bytes used, 0 if none. */
size_t px_parse_skip(const char *buf, size_t len, bool *found);

enum px_path_err {
	PX_PATH_OK = 0,
	PX_PATH_SYNTAX, /* 501 5.5.4 / 501 5.1.7 */
	PX_PATH_TOOLONG, /* 501 5.5.4 path too long */
	PX_PATH_PARAM, /* 555 5.5.4 bad parameter syntax */
	PX_PATH_NULL, /* "<>" where a null path is not allowed (RCPT) */
};

/*
 * px_parse_path - parse the argument of MAIL ("FROM:") or RCPT ("TO:"): keyword (case-insensitive),
 * optional spaces, <path>, then ESMTP parameters. path receives the address without brackets,
 * NUL-terminated (pathlen >= PX_PATH_MAX + 1). *params points into arg at the parameters (or ""),
 * valid as long as arg. *nparams counts them. Paths are opaque: printable ASCII or UTF-8 octets,
 * no space, no '<' '>' or control bytes.
 */
enum px_path_err px_parse_path(const char *arg, const char *keyword, bool null_ok, char *path,
    size_t pathlen, const char **params, unsigned *nparams);

/*
 * px_param_find - find ESMTP parameter NAME (case-insensitive) in a syntax-checked params string;
 * returns true and its value (value, vlen; vlen 0 for a bare keyword).
 */
bool px_param_find(const char *params, const char *name, const char **value, size_t *vlen);

/* The DSN parameters (RFC 3461 4), one bit each for the duplicate check. */
enum px_dsn_param {
	PX_DSN_RET = 1u << 0, /* MAIL */
	PX_DSN_ENVID = 1u << 1, /* MAIL */
	PX_DSN_NOTIFY = 1u << 2, /* RCPT */
	PX_DSN_ORCPT = 1u << 3, /* RCPT */
};

/*
 * px_dsn_param - one ESMTP parameter token (name=value, len octets) of MAIL (rcpt false: RET,
 * ENVID) or RCPT (rcpt true: NOTIFY, ORCPT), checked strictly against RFC 3461 4.1-4.4: RET=FULL
 * or HDRS; ENVID= xtext of at most 100 octets; NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY
 * without repeats; ORCPT= addr-type ";" xtext, at most 500 octets. Returns the parameter's bit
 * when well formed, -1 when it is one of them but malformed, 0 when it is not a DSN parameter of
 * that command.
 */
int px_dsn_param(const char *tok, size_t len, bool rcpt);

/* px_verb - the verb of a command line upper-cased into out (<= 8 chars + NUL: STARTTLS); *arg: the rest. */
bool px_verb(const char *line, size_t len, char out[9], const char **arg);

#endif /* PX_SMTP_PARSE_H */
