#!/bin/bash
# rfc7208.sh - the RFC 7208 test suite (Debian's python3-spf copy), 203 cases, one TAP line each.
# The YAML is converted at test time with Debian's python3 + python3-yaml (no YAML parser in C),
# then tests/helpers/spf_suite runs every case against the DNS fixture (see spf_suite.c for why).
. "$top_srcdir/tests/lib/tap.sh"
suite=/usr/share/doc/python3-spf/rfc7208-tests.yml.gz
[ -r "$suite" ] || tap_skip_all "$suite missing (Debian package python3-spf)"
/usr/bin/python3 -c 'import yaml' 2>/dev/null || tap_skip_all "python3-yaml missing"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
/usr/bin/python3 "$top_srcdir/tests/helpers/rfc7208-convert.py" "$suite" >"$tmp" 2>/dev/null || {
	echo "Bail out! cannot convert $suite"; exit 1; }
# The count is part of the bar: a suite that lost cases must not pass quietly.
cases=$(grep -c '^T ' "$tmp")
if [ "$cases" != 203 ]; then
	echo "Bail out! expected 203 cases in $suite, found $cases"
	exit 1
fi
exec "$top_builddir/tests/helpers/spf_suite" "$tmp"
