#!/bin/bash
# contrib/quickstart.sh - build mxmoat on a fresh Debian 12 machine and run mxmoat-proxy in the
# foreground on its built-in defaults (listen 127.0.0.1:10025, relay to 127.0.0.1:25), logging to
# stderr. Extra arguments go to mxmoat-proxy, e.g. -o proxy_backend=127.0.0.1:2526.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tests/install-deps" core
cd "$top"
./autogen.sh >/dev/null
mkdir -p build
cd build
[ -f Makefile ] || ../configure -q
make -s -j"$(nproc)"
exec ./proxy/mxmoat-proxy -f -o log_target=stderr "$@"
