/*
 * authres_parse.h - reading the authserv-id of an existing Authentication-Results field, so that
 * every one claiming to be ours can be removed (RFC 8601 5, CVE-2019-20790, CVE-2022-48521).
 *
 * The writer is authres.h; this is the other direction, kept apart because it parses hostile
 * input. Bounded: only the start of the value is examined (comments nest at most 8 deep).
 */
#ifndef MOAT_AUTHRES_PARSE_H
#define MOAT_AUTHRES_PARSE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * moat_authres_field_value - if FIELD is an Authentication-Results field ("Authentication-Results"
 * then optional spaces or tabs then ':', any case), the offset of its value; else 0.
 */
size_t moat_authres_field_value(const char *field, size_t len);

/*
 * moat_authres_servid - the authserv-id of an A-R value into out (quoted-string unescaped,
 * comments and folding skipped). Returns 0, or -1 when there is none or it does not fit.
 */
int moat_authres_servid(const char *value, size_t len, char *out, size_t outlen);

/*
 * moat_authres_is_ours - is FIELD an Authentication-Results field whose authserv-id equals
 * AUTHSERV_ID (case-insensitively, trailing dot ignored)? An A-R field whose authserv-id cannot
 * be read at all counts as ours (removed): a lenient reader downstream might take it for ours.
 */
bool moat_authres_is_ours(const char *field, size_t len, const char *authserv_id);

#endif /* MOAT_AUTHRES_PARSE_H */
