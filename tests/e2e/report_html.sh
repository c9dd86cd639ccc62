#!/bin/bash
# report_html.sh - mxmoat-report --html in headless Chromium: the page of 3,000 recorded
# evaluations (tests/helpers/report_fill's rule) renders to a screenshot, writes nothing to the
# console, fetches nothing, and its DOM holds the numbers the rule gives: 3000 messages, 1992
# DMARC pass, 996 fail, 500 rejected, 499 quarantined, and day bars that add up to 3000.
. "$top_srcdir/tests/lib/tap.sh"

browser=$(command -v chromium) || tap_skip_all "chromium not installed"
[ -x /usr/bin/python3 ] || tap_skip_all "/usr/bin/python3 not installed"

tmp=$(mktemp -d /tmp/report_html.XXXXXX) || tap_bail "mktemp"
trap 'rm -rf "$tmp"' EXIT
first=20000
"$top_builddir/tests/helpers/report_fill" "$tmp/store.db" 3000 10 3 $first 40 >/dev/null 2>&1 ||
	tap_bail "report_fill failed"
"$top_builddir/tools/mxmoat-report" -o authserv_id=mx.example.org --db "$tmp/store.db" \
	--now $(((first + 2) * 86400 + 3600)) --html "$tmp/page.html" --days 7 ||
	tap_bail "mxmoat-report --html failed"

tap_is "no script in the page" "$(grep -ci '<script' "$tmp/page.html")" "0"
tap_is "nothing fetched: no http(s) or protocol-relative URL" \
	"$(grep -cE '(https?:)?//[a-z0-9]' "$tmp/page.html")" "0"

# chromium ARGS... - a fresh profile each run, nothing from the network, logs on stderr.
chromium_run() {
	local profile
	profile=$(mktemp -d "$tmp/profile.XXXXXX")
	timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir="$profile" --enable-logging=stderr --v=0 "$@"
}

chromium_run --window-size=1100,1600 --screenshot="$tmp/shot.png" "file://$tmp/page.html" \
	>/dev/null 2>"$tmp/shot.log" || tap_bail "chromium --screenshot failed: $(tail -3 "$tmp/shot.log")"
tap_is "the screenshot is a PNG" "$(head -c 8 "$tmp/shot.png" | od -An -c | tr -d ' ')" '211PNG\r\n032\n'
tap_ok "the screenshot is not blank (over 20 KB)" test "$(stat -c %s "$tmp/shot.png")" -gt 20000

chromium_run --dump-dom "file://$tmp/page.html" >"$tmp/dom.html" 2>"$tmp/dom.log" ||
	tap_bail "chromium --dump-dom failed: $(tail -3 "$tmp/dom.log")"
tap_is "no console message while rendering" "$(cat "$tmp/shot.log" "$tmp/dom.log" | grep -E 'Uncaught|CONSOLE')" ""
tap_is "the DOM holds the totals" "$(grep -o 'id="total-[a-z]*">[0-9]*' "$tmp/dom.html" | tr '\n' ' ')" \
	'id="total-messages">3000 id="total-pass">1992 id="total-fail">996 id="total-rejected">500 id="total-quarantined">499 '
tap_is "the day chart's bars add up to 3000" \
	"$(grep -o 'data-count="[0-9]*"' "$tmp/dom.html" | tr -dc '0-9\n' | awk '{ s += $1 } END { print s }')" "3000"
tap_is "d7.example: 192 pass, 96 fail (its 12 no-policy messages are neither)" \
	"$(grep -o '<tr data-domain="d7.example">.*</tr>' "$tmp/dom.html" | grep -o 'class="[a-z]*">[0-9]*' | tr '\n' ' ')" \
	'class="pass">192 class="fail">96 '
tap_is "the refused table: 100 rejected from d0.example" \
	"$(grep -o '<tr data-key="reject"><td>reject</td><td>d0.example</td><td class="n">[0-9]*' "$tmp/dom.html" | grep -o '[0-9]*$')" \
	"100"

# The console check is not blind: a page with a script error is caught the same way.
printf '<!DOCTYPE html><html><body><script>nosuch();</script></body></html>\n' > "$tmp/bad.html"
chromium_run --dump-dom "file://$tmp/bad.html" >/dev/null 2>"$tmp/bad.log"
tap_like "a script error on a page shows up in the log" "$(grep -o 'Uncaught ReferenceError[^"]*' "$tmp/bad.log")" \
	"^Uncaught ReferenceError: nosuch is not defined$"
tap_done
