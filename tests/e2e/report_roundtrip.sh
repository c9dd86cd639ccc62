#!/bin/bash
# report_roundtrip.sh - 10,000 evaluations across 50 policy domains and two UTC days go into the
# store through the recorder's API (tests/helpers/report_fill); mxmoat-report writes them out as
# RFC 9990 reports, every one valid against doc/dmarc-aggregate-report.xsd (xmllint), and Python's
# xml.etree reads back exactly the counts the fill rule gives (tests/helpers/report_check.py). A day
# is reported once it is over, and a period written is never written again.
. "$top_srcdir/tests/lib/tap.sh"

command -v xmllint >/dev/null || tap_skip_all "xmllint not installed (libxml2-utils)"
[ -x /usr/bin/python3 ] || tap_skip_all "/usr/bin/python3 not installed"

tmp=$(mktemp -d /tmp/report_rt.XXXXXX) || tap_bail "mktemp"
trap 'rm -rf "$tmp"' EXIT
report=$top_builddir/tools/mxmoat-report
check="/usr/bin/python3 $top_srcdir/tests/helpers/report_check.py"
xsd=$top_srcdir/doc/dmarc-aggregate-report.xsd
first=20000                              # the first day (2024-10-04); two days are filled
args="10000 50 2 $first 7"
run() { "$report" -o authserv_id=mx.example.org --db "$tmp/store.db" "$@"; }

out=$("$top_builddir/tests/helpers/report_fill" "$tmp/store.db" $args 2>/dev/null) ||
	tap_bail "report_fill failed: $out"
tap_is "the recorder wrote all 10,000 records, none dropped or lost" "$out" \
	"queued=10000 written=10000 dropped=0 lost=0"
tap_is "the store holds 10,000 rows" \
	"$(/usr/bin/python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from records").fetchone()[0])' "$tmp/store.db")" \
	"10000"

# Only complete days: at noon of the second day, the first day's 50 reports.
run --now $(((first + 1) * 86400 + 43200)) --json > "$tmp/day1.json" || tap_bail "--json failed"
tap_like "--json during day 2 holds day 1 only" "$($check json "$tmp/day1.json" $args | sed -n 1p)" "^reports 50$"

run --now $(((first + 2) * 86400)) --json > "$tmp/all.json" || tap_bail "--json failed"
tap_is "--json: 100 reports, 9,950 messages, every count as recorded" \
	"$($check json "$tmp/all.json" $args | tr '\n' ' ')" \
	"reports 100 bad_names 0 messages 9950 expected 9950 none 6633 quarantine 1650 reject 1667 mismatches 0 "

mkdir "$tmp/out"
err=$(run --now $(((first + 2) * 86400)) --write "$tmp/out" 2>&1 >/dev/null)
tap_is "--write reports 100 files" "$err" "mxmoat-report: 100 reports written to $tmp/out"
tap_is "100 files, one per policy domain and day" "$(find "$tmp/out" -type f | wc -l)" "100"
tap_like "named receiver!policy-domain!begin!end!id.xml.gz" "$(ls "$tmp/out" | sed -n 1p)" \
	'^mx\.example\.org!d0\.example!1728000000!1728086399![0-9a-f]{16}\.xml\.gz$'

valid=0
for f in "$tmp/out"/*; do
	gzip -dc "$f" > "$tmp/r.xml" && xmllint --noout --schema "$xsd" "$tmp/r.xml" 2>/dev/null && valid=$((valid + 1))
done
tap_is "every report validates against the RFC 9990 schema" "$valid" "100"

tap_is "xml.etree reads back 9,950 messages with every count as recorded" \
	"$($check xml "$tmp/out" $args | tr '\n' ' ')" \
	"reports 100 bad_names 0 messages 9950 expected 9950 none 6633 quarantine 1650 reject 1667 mismatches 0 "

# The schema is not a formality: a disposition outside the RFC's values is refused.
gzip -dc "$(ls "$tmp"/out/* | sed -n 1p)" | sed '0,/<disposition>none</s//<disposition>maybe</' > "$tmp/bad.xml"
tap_ok "a report with a disposition of 'maybe' does not validate" \
	bash -c "! xmllint --noout --schema '$xsd' '$tmp/bad.xml' 2>/dev/null"

err=$(run --now $(((first + 2) * 86400)) --write "$tmp/out" 2>&1 >/dev/null)
tap_is "a second --write writes nothing" "$err" "mxmoat-report: 0 reports written to $tmp/out"
tap_is "and leaves the 100 files alone" "$(find "$tmp/out" -type f | wc -l)" "100"
run --now $(((first + 2) * 86400)) --json > "$tmp/none.json"
tap_like "--json after --write: nothing left to write" "$($check json "$tmp/none.json" $args | sed -n 1p)" "^reports 0$"
run --now $(((first + 2) * 86400)) --json --all > "$tmp/again.json"
tap_like "--json --all still shows the 100 written" "$($check json "$tmp/again.json" $args | sed -n 1p)" "^reports 100$"

err=$("$report" -o dmarc_report_store=redis -o ratelimit_redis=127.0.0.1:1 --json 2>&1)
tap_is "dmarc_report_store = redis and Redis cannot be reached: an error, exit 1" "$? $err" \
	"1 mxmoat-report: redis 127.0.0.1:1: Connection refused"
tap_done
