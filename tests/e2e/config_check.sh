#!/bin/bash
# config_check.sh - the daemons' -n/-d/-o command line against real files: the example config is
# valid, a typo'd key exits 1 naming file:line, overrides apply. Runs both binaries.
. "$top_srcdir/tests/lib/tap.sh"

proxy=$top_builddir/proxy/mxmoat-proxy
milter=$top_builddir/milter/mxmoat-milter
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for prog in "$proxy" "$milter"; do
	name=$(basename "$prog")
	out=$("$prog" -n -c "$top_srcdir/contrib/mxmoat.conf" 2>&1); rc=$?
	tap_is "$name -n accepts contrib/mxmoat.conf" "$rc" 0
	tap_like "$name -n says valid" "$out" "configuration .*contrib/mxmoat.conf is valid"

	printf 'limit_recipients = 10\n\nproxy_bakend = 127.0.0.1:26\n' > "$tmp/typo.conf"
	out=$("$prog" -n -c "$tmp/typo.conf" 2>&1); rc=$?
	tap_is "$name -n rejects a typo'd key (exit 1)" "$rc" 1
	tap_is "$name names file:line and suggests the key" "$out" \
		"$name: $tmp/typo.conf:3: proxy_bakend: unknown key (did you mean proxy_backend?)"

	out=$("$prog" -n -c "$tmp/missing.conf" 2>&1); rc=$?
	tap_is "$name -n on a missing file exits 1" "$rc" 1

	out=$("$prog" -dd -o limit_recipients=7 -o limit_message_size=2048k 2>&1)
	tap_is "$name -dd shows overrides" "$out" "limit_recipients = 7
limit_message_size = 2m"

	out=$("$prog" -n -o limit_recipients=0 2>&1); rc=$?
	tap_is "$name -o out of range exits 1" "$rc" 1
	tap_is "$name -o out of range message" "$out" \
		"$name: command line: -o limit_recipients: '0' is out of range (1 to 100000)"

	"$prog" -x >/dev/null 2>&1; rc=$?
	tap_is "$name unknown option exits 2" "$rc" 2
done

out=$("$proxy" -d | grep -c '^milter_'); tap_is "proxy dump has no milter keys" "$out" 0
out=$("$milter" -d | grep -c '^proxy_'); tap_is "milter dump has no proxy keys" "$out" 0
tap_done
