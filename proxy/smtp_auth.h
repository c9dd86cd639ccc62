/*
 * smtp_auth.h - SMTP AUTH (RFC 4954) on submission listeners, relayed to the backend.
 *
 * The backend owns the user database and decides; the proxy checks the syntax of each step,
 * passes it on, and learns only the login name (for the trust rules and the per-user rate limits). Only
 * PLAIN (RFC 4616) and LOGIN are relayed: the mechanisms whose exchange names the login.
 * A struct px_auth exists only during one exchange; px_auth_free wipes it, and no password is
 * ever copied anywhere but into the line handed to the backend, which is wiped too.
 */
#ifndef PX_SMTP_AUTH_H
#define PX_SMTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define PX_AUTH_LOGIN_MAX 255
#define PX_AUTH_LINE_MAX 4096 /* one line of the exchange, CRLF included */

/* The EHLO keyword offered inside TLS on a submission listener. */
#define PX_AUTH_EHLO "250-AUTH PLAIN LOGIN\r\n"

enum px_auth_rc {
	PX_AUTH_SEND = 0, /* a line for the backend is ready (px_auth_line) */
	PX_AUTH_BAD_MECH, /* 504 5.5.4 */
	PX_AUTH_SYNTAX, /* 501 5.5.2: not base64, or not PLAIN's three fields */
	PX_AUTH_TOOLONG, /* 500 5.5.6 */
	PX_AUTH_NOMEM,
};

struct px_auth;

/*
 * px_auth_start - the argument of "AUTH MECH [INITIAL-RESPONSE]". *out: a new exchange (free it
 * with px_auth_free) whose first backend line is ready, set only on PX_AUTH_SEND.
 */
enum px_auth_rc px_auth_start(const char *arg, struct px_auth **out);
/*
 * px_auth_response - the client's answer to a 334 challenge (without CRLF). A line that is not
 * base64 becomes "*" (RFC 4954 4: the backend cancels with 501); so does "*". Always SEND unless
 * the line is too long.
 */
enum px_auth_rc px_auth_response(struct px_auth *a, const char *line, size_t len);
/* px_auth_line - the line to send to the backend (valid until the next call; wiped by _sent). */
const char *px_auth_line(const struct px_auth *a, size_t *len);
/* px_auth_sent - the line was handed to the backend: wipe it. */
void px_auth_sent(struct px_auth *a);
/* px_auth_mech - "PLAIN" or "LOGIN". */
const char *px_auth_mech(const struct px_auth *a);
/* px_auth_login - the login name the exchange gave ("" if none yet). */
const char *px_auth_login(const struct px_auth *a);
void px_auth_free(struct px_auth *a); /* wipes; NULL is a no-op */

#endif /* PX_SMTP_AUTH_H */
