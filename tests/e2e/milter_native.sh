#!/bin/bash
# milter_native.sh - the milter's e2e tests again with milter_engine = native (milter/native*.c),
# unchanged: each runs with MXMOAT_MILTER_ENGINE=native (tests/lib/milter.sh passes it to every
# mxmoat-milter it starts), and each of its cases is a case here, named "SCRIPT: case". A script
# skipped for what the machine lacks is skipped here; one that bails out or exits non-zero with
# no failed case fails. The scripts take their own port locks.
. "${top_srcdir:-.}/tests/lib/tap.sh"
top_srcdir=${top_srcdir:-.}
export MXMOAT_MILTER_ENGINE=native

for t in milter_protocol milter_postfix milter_header milter_authres milter_policy sign_milter \
	contrib_milter milter_leaks; do
	out=$(bash "$top_srcdir/tests/e2e/$t.sh" 2>&1)
	rc=$?
	if [[ $out =~ (^|$'\n')1\.\.0\ \#\ SKIP\ ([^$'\n']*) ]]; then
		tap_skip "$t" "${BASH_REMATCH[2]}"
		continue
	fi
	failed=$TAP_FAILED
	while IFS= read -r line; do
		case $line in
		"ok "*) tap__result 0 "$t: ${line#* - }" ;;
		"not ok "*) tap__result 1 "$t: ${line#* - }" ;;
		"Bail out!"*) tap__result 1 "$t: $line" ;;
		esac
	done <<< "$out"
	if [ "$rc" != 0 ] && [ "$TAP_FAILED" = "$failed" ]; then
		tap__result 1 "$t: exit status 0" "exit status $rc"
	fi
	[ "$TAP_FAILED" = "$failed" ] || tap_diag "$t output:" "${out//$'\n'/$'\n'# }"
done
tap_done
