#!/bin/bash
# libspf2-measure.sh - how many RFC 7208 suite cases Debian's libspf2 passes, driven like our
# evaluator (its zone resolver serving each scenario's records). Run from a configured build
# directory: bash $srcdir/tests/helpers/libspf2-measure.sh  (needs libspf2-dev, python3-yaml).
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
make -s tests/helpers/libspf2_suite tests/helpers/spf_suite
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
/usr/bin/python3 "$src/tests/helpers/rfc7208-convert.py" /usr/share/doc/python3-spf/rfc7208-tests.yml.gz >"$tmp"
echo "libspf2 $(dpkg-query -W -f='${Version}' libspf2-2 2>/dev/null):"
# libspf2 leaks on its own; that is not what is measured here.
ASAN_OPTIONS=detect_leaks=0 ./tests/helpers/libspf2_suite "$tmp" | tail -1
echo "mxmoat:"
./tests/helpers/spf_suite "$tmp" | grep -c '^ok ' | sed 's/$/ of 203 cases/'
