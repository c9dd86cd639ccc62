#!/bin/bash
# pyspf_diff.sh - our evaluator against a second implementation, pyspf (Debian's python3-spf),
# on edge and hostile records outside the RFC 7208 suite (tests/helpers/pyspf-oracle.py): one TAP
# line per record, ok when we give pyspf's result (or the RFC's, where pyspf is known to differ).
. "$top_srcdir/tests/lib/tap.sh"
/usr/bin/python3 -c 'import spf' 2>/dev/null || tap_skip_all "python3-spf missing"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
/usr/bin/python3 "$top_srcdir/tests/helpers/pyspf-oracle.py" >"$tmp" 2>/dev/null || {
	echo "Bail out! pyspf-oracle.py failed"; exit 1; }
exec "$top_builddir/tests/helpers/spf_suite" "$tmp"
