/*
 * conf_int.h - what the configuration loader (conf.c) shares with the typed values of the key
 * table (conf_value.c): setting one key from its text and writing it back. Not for front-ends.
 */
#ifndef MOAT_CONF_INT_H
#define MOAT_CONF_INT_H

#include <stddef.h>

#include "conf.h"

/*
 * moat__conf_set - parse VALUE for KEY into CONF. Returns 0, or -1 with the reason (no file or key
 * prefix) in err.
 */
int moat__conf_set(struct moat_conf *conf, const struct moat_conf_key *key, const char *value,
    char *err, size_t errlen);

/* moat__conf_value_text - KEY's current value in CONF in the file's notation; valid as long as
 * buf and CONF are. */
const char *moat__conf_value_text(const struct moat_conf *conf, const struct moat_conf_key *key,
    char *buf, size_t len);

#endif
