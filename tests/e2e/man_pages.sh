#!/bin/bash
# man_pages.sh - every manual page in doc/ renders with man(1) and groff without a warning (an
# unknown macro, a line that cannot be adjusted or broken, bad escapes), at the widths a reader's
# terminal is likely to have; and the roff around inline markup keeps its spaces.
. "$top_srcdir/tests/lib/tap.sh"

command -v man >/dev/null || tap_skip_all "needs man-db (man)"
pages=("$top_srcdir"/doc/*.[1-8])
[ -e "${pages[0]}" ] || tap_bail "no manual page in $top_srcdir/doc"

for page in "${pages[@]}"; do
	for width in 80 120; do
		err=$(MANWIDTH=$width LC_ALL=C.UTF-8 man --warnings -l "$page" 2>&1 >/dev/null)
		tap_is "${page##*/} at $width columns: no warning" "$err" ""
	done
done

text=$(MANWIDTH=80 LC_ALL=C.UTF-8 man -l "$top_srcdir/doc/mxmoat-keygen.1" 2>/dev/null | tr -s ' \n' '  ')
tap_like "mxmoat-keygen(1): spaces kept after an inline .RB" "$text" 'user \(chown\); the daemons refuse keys owned by anyone'
tap_done
