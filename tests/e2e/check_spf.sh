#!/bin/bash
# check_spf.sh - mxmoat-check end to end: SPF over real DNS (nsd on 127.0.0.1:15310 serving
# tests/e2e/data/spf.test.zone and a reverse zone), the Authentication-Results line it prints
# (exact bytes, escaping of hostile envelope values), --explain, and its exit statuses.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/dns.sh"
. "$top_srcdir/tests/lib/postfix.sh"    # port_lock
[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
port_lock check-spf || tap_skip_all "another run of this test held its ports for 600 s"
PORT=15310
DEAD_PORT=15311     # nothing listens here: every query times out
CHECK=$top_builddir/tools/mxmoat-check
data=$top_srcdir/tests/e2e/data
work=$(mktemp -d)
trap 'dns_stop; rm -rf "$work"' EXIT

dns_start $PORT spf.test="$data/spf.test.zone" 2.0.192.in-addr.arpa="$data/2.0.192.in-addr.arpa.zone" ||
	tap_bail "nsd did not start"

# run ARGS... - mxmoat-check against our nsd; sets OUT (stdout), AR (the A-R line), RC, ERR.
run() {
	OUT=$("$CHECK" --resolver 127.0.0.1@$PORT -o authserv_id=mx.test -o dns_timeout=2s "$@" \
		/dev/null 2>"$work/err")
	RC=$?
	ERR=$(cat "$work/err")
	AR=$(printf '%s\n' "$OUT" | grep '^Authentication-Results: ')
}

# expect NAME RC AR ARGS... - one run, three assertions: exit status, the header, clean stderr.
expect() {
	local name=$1 rc=$2 ar=$3
	shift 3
	run "$@"
	tap_is "$name: exit status" "$RC" "$rc"
	tap_is "$name: Authentication-Results" "$AR" "Authentication-Results: mx.test; $ar"
	tap_is "$name: nothing on stderr" "$ERR" ""
}

expect "pass by ip4, helo fails" 0 \
	"spf=pass smtp.mailfrom=a@spf.test; spf=fail smtp.helo=mail.spf.test" \
	--client-ip 192.0.2.5 --helo mail.spf.test --mail-from a@spf.test
expect "pass by ip6" 0 "spf=pass smtp.mailfrom=a@spf.test" \
	--client-ip 2001:db8::25 --mail-from '<a@spf.test>'
expect "fail, tag only by default" 0 "spf=fail smtp.mailfrom=a@spf.test" \
	--client-ip 198.51.100.9 --mail-from a@spf.test
expect "fail with spf_fail_action=reject" 1 "spf=fail smtp.mailfrom=a@spf.test" \
	--client-ip 198.51.100.9 --mail-from a@spf.test -o spf_fail_action=reject
tap_like "reject verdict carries the default explanation" "$OUT" \
	'verdict: reject 550 5.7.23 spf.test does not designate 198.51.100.9 as permitted sender of a@spf.test'
expect "softfail" 0 "spf=softfail smtp.mailfrom=b@soft.spf.test" \
	--client-ip 198.51.100.9 --mail-from b@soft.spf.test -o spf_fail_action=reject
expect "include passes" 0 "spf=pass smtp.mailfrom=c@inc.spf.test" \
	--client-ip 192.0.2.200 --mail-from c@inc.spf.test
expect "include does not match, -all" 0 "spf=fail smtp.mailfrom=c@inc.spf.test" \
	--client-ip 198.51.100.200 --mail-from c@inc.spf.test
expect "mx over IPv4" 0 "spf=pass smtp.mailfrom=d@mx.spf.test" \
	--client-ip 198.51.100.77 --mail-from d@mx.spf.test
expect "mx over IPv6" 0 "spf=pass smtp.mailfrom=d@mx.spf.test" \
	--client-ip 2001:db8:77::1 --mail-from d@mx.spf.test
expect "a/24" 0 "spf=pass smtp.mailfrom=e@a.spf.test" \
	--client-ip 203.0.113.200 --mail-from e@a.spf.test
expect "TXT of two strings is one record" 0 "spf=pass smtp.mailfrom=f@long.spf.test" \
	--client-ip 203.0.113.9 --mail-from f@long.spf.test
expect "CNAME to the record" 0 "spf=pass smtp.mailfrom=g@cname.spf.test" \
	--client-ip 192.0.2.9 --mail-from g@cname.spf.test
expect "include loop" 0 \
	'spf=permerror reason="more than 10 DNS-querying terms" smtp.mailfrom=h@loop.spf.test' \
	--client-ip 192.0.2.9 --mail-from h@loop.spf.test
expect "three void lookups" 0 \
	'spf=permerror reason="more than 2 void lookups" smtp.mailfrom=i@void.spf.test' \
	--client-ip 192.0.2.9 --mail-from i@void.spf.test
expect "two SPF records" 0 \
	'spf=permerror reason="two.spf.test has 2 SPF records" smtp.mailfrom=j@two.spf.test' \
	--client-ip 192.0.2.9 --mail-from j@two.spf.test
expect "ptr validated" 0 "spf=pass smtp.mailfrom=k@ptr.spf.test" \
	--client-ip 192.0.2.10 --mail-from k@ptr.spf.test
expect "ptr name without a matching A record" 0 "spf=fail smtp.mailfrom=k@ptr.spf.test" \
	--client-ip 192.0.2.11 --mail-from k@ptr.spf.test
expect "null sender checks postmaster@HELO" 0 \
	"spf=pass smtp.mailfrom=postmaster@mail.spf.test; spf=pass smtp.helo=mail.spf.test" \
	--client-ip 198.51.100.77 --helo mail.spf.test --mail-from ''
expect "8-bit local part in %{l}" 0 \
	'spf=permerror reason="unusable DNS answer or name: ??t??.spf.test" smtp.mailfrom="??t??@local8.spf.test"' \
	--client-ip 192.0.2.9 --mail-from $'\xc3\xa9t\xc3\xa9@local8.spf.test'
expect "8-bit local part in %{L} is %-escaped" 0 \
	'spf=fail smtp.mailfrom="??t??@localu.spf.test"' \
	--client-ip 192.0.2.9 --mail-from $'\xc3\xa9t\xc3\xa9@localu.spf.test'

# Hostile envelopes: the domain written is the one checked, quoted so nothing can be injected.
expect "property injection through MAIL FROM" 0 \
	'spf=none smtp.mailfrom="x@spf.test;dkim=pass"' \
	--client-ip 192.0.2.9 --mail-from 'x@spf.test;dkim=pass'
expect "CVE-2020-12272 style address" 0 \
	'spf=none smtp.mailfrom="a@legit.test(a.spf.test"' \
	--client-ip 203.0.113.5 --mail-from '<a@legit.test(a.spf.test>'
expect "quote and backslash in HELO" 0 \
	'spf=none smtp.mailfrom="postmaster@x\"y\\z"; spf=none smtp.helo="x\"y\\z"' \
	--client-ip 192.0.2.9 --helo 'x"y\z' --mail-from ''

run --client-ip 198.51.100.1 --mail-from l@fail.spf.test --explain
tap_is "exp= text from DNS, macros expanded" \
	"$(printf '%s\n' "$OUT" | grep '^spf mailfrom: explanation')" \
	"spf mailfrom: explanation: 198.51.100.1 may not send for fail.spf.test"
tap_like "--explain shows the record" "$OUT" 'spf mailfrom:   fail.spf.test: "v=spf1 -all exp=why.spf.test"'
tap_like "--explain shows the deciding term" "$OUT" 'spf mailfrom:   -all: match'
run --client-ip 192.0.2.9 --mail-from i@void.spf.test --explain
tap_like "--explain shows each void lookup" "$OUT" 'A n3.spf.test: nxdomain'

# A resolver that never answers: temperror after dns_timeout, per query.
OUT=$("$CHECK" --resolver 127.0.0.1@$DEAD_PORT -o dns_timeout=300ms -o authserv_id=mx.test \
	--client-ip 192.0.2.9 --mail-from m@spf.test -o spf_temperror_action=tempfail /dev/null 2>&1)
tap_is "dead resolver: exit 2 with spf_temperror_action=tempfail" "$?" 2
tap_like "dead resolver: temperror" "$OUT" \
	'Authentication-Results: mx.test; spf=temperror reason="DNS error looking up TXT spf.test" smtp.mailfrom=m@spf.test'

# Usage and configuration errors: exit 3.
"$CHECK" --mail-from a@spf.test /dev/null >/dev/null 2>&1
tap_is "no --client-ip: exit 3" "$?" 3
"$CHECK" --client-ip 300.1.1.1 /dev/null >/dev/null 2>&1
tap_is "bad --client-ip: exit 3" "$?" 3
"$CHECK" --client-ip 192.0.2.1 -o no_such_key=1 /dev/null >/dev/null 2>&1
tap_is "unknown config key: exit 3" "$?" 3
"$CHECK" --client-ip 192.0.2.1 --resolver 'not an address' /dev/null >/dev/null 2>&1
tap_is "bad --resolver: exit 3" "$?" 3
"$CHECK" --client-ip 192.0.2.1 /nonexistent/message >/dev/null 2>&1
tap_is "unreadable message: exit 3" "$?" 3
tap_done
