/*
 * sender_login.h - sender_login_map: the sender domains and addresses each SMTP login may use
 * (Postfix's smtpd_sender_login_maps seen from the login's side, rspamd's signing rule).
 *
 * The file has one login a line, then one or more domains ("a.test": any address there) or
 * addresses ("alice@a.test"), separated by blanks or commas; a line starting with '#' and a blank
 * line are skipped. Logins, domains and addresses compare case-insensitively. A login appears on
 * one line only. Every error names the line: "FILE:LINE: what is wrong" (the login itself is never
 * echoed: it is AUTH data). Immutable once parsed; thread-safe to read.
 */
#ifndef MOAT_SENDER_LOGIN_H
#define MOAT_SENDER_LOGIN_H

#include <stdbool.h>
#include <stddef.h>

#define MOAT_SENDER_LOGIN_LINE_MAX 4096 /* one line, without its newline */
#define MOAT_SENDER_LOGIN_FILE_MAX (16u << 20) /* the whole file */

struct moat_sender_login_map;

/*
 * moat_sender_login_map_parse - the map in TEXT (LEN bytes, no NUL needed); NAME is the file name
 * for errors. NULL with err ("NAME:LINE: ...") on a bad line or out of memory; a text without any
 * login is an error too (an empty map would refuse every authenticated sender).
 */
struct moat_sender_login_map *moat_sender_login_map_parse(const char *text, size_t len,
    const char *name, char *err, size_t errlen);
/* moat_sender_login_map_load - read and parse the file PATH; NULL with err. */
struct moat_sender_login_map *moat_sender_login_map_load(const char *path, char *err,
    size_t errlen);
void moat_sender_login_map_free(struct moat_sender_login_map *m); /* NULL is a no-op */

/* moat_sender_login_map_count - the logins in M (0 for NULL). */
size_t moat_sender_login_map_count(const struct moat_sender_login_map *m);

/*
 * moat_sender_login_map_allows - may LOGIN use the address LOCAL@DOMAIN? True when the login's line
 * names DOMAIN or the whole address; false for a login that is not in the map. LOCAL NULL: is
 * DOMAIN one of the login's at all (named, or the domain of one of its addresses)? That is the
 * question for a signature's d= (the signer signs only for the login's domains).
 */
bool moat_sender_login_map_allows(const struct moat_sender_login_map *m, const char *login,
    const char *local, const char *domain);

#endif /* MOAT_SENDER_LOGIN_H */
