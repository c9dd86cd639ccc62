/*
 * tls_fixture.h - the test certificates (tests/data/tls) for the TLS fuzz targets: copied once into
 * a private 0600 directory, because the engine refuses key files others can read, and removed at
 * exit; and a TLS context built from settings that name them.
 */
#ifndef TLS_FIXTURE_H
#define TLS_FIXTURE_H

#include <stddef.h>

#include "tls.h"

/*
 * tls_fixture_dir - the private directory holding rsa, ecdsa and other (.pem and .key) and
 * ca.pem; copied from $MXMOAT_TLS_DATA, else tests/data/tls beside this file, on the first call.
 * abort() when a file cannot be copied. The string is static.
 */
const char *tls_fixture_dir(void);

/* tls_fixture_ctx - a TLS context from the n settings kv ("key=value"); abort() saying why (as
 * WHO) when the configuration or the context cannot be built. */
struct moat_tls_ctx *tls_fixture_ctx(const char *who, const char *const *kv, size_t n);

#endif /* TLS_FIXTURE_H */
