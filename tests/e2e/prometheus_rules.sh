#!/bin/bash
# prometheus_rules.sh - contrib/prometheus/mxmoat.rules.yml passes `promtool check rules`, and its
# unit tests (mxmoat.rules.test.yml: which alert fires on which series, with its exact labels
# and annotations) pass `promtool test rules`.
. "${top_srcdir:-.}/tests/lib/tap.sh"
command -v promtool >/dev/null || tap_skip_all "promtool not installed (Debian package prometheus)"
dir=$top_srcdir/contrib/prometheus
out=$(promtool check rules "$dir/mxmoat.rules.yml" 2>&1)
tap_ok "promtool check rules" test $? = 0
tap_like "six rules found" "$out" "SUCCESS: 6 rules found"
out=$(cd "$dir" && promtool test rules mxmoat.rules.test.yml 2>&1)
rc=$?
tap_ok "promtool test rules" test $rc = 0
[ $rc = 0 ] || tap_diag "$out"
tap_done
