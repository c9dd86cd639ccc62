#!/bin/bash
# dmarc_dns_errors.sh - a spoofer's own DNS failing cannot soften a DMARC reject. Real resolution:
# nsd serves the zones, an unbound daemon resolves them (stub zones), mxmoat's libunbound forwards
# to it. The spoofed From domain victim.test publishes p=reject; the spoofer's MAIL FROM domains
# pass SPF, and their _dmarc names SERVFAIL (a zone nsd has no data for), time out (a stub zone at
# a port where nothing answers) or are a CNAME into a lame delegation (a server that REFUSEs the
# zone). Each must stay dmarc=fail and 550 5.7.1, also with dmarc_temperror_action=continue, in
# mxmoat-check and through mxmoat-proxy; the From domain's own policy lookup failing (SERVFAIL,
# timeout) stays temperror: 451 4.7.1, or 250 with continue.
# Ports: 15570 (nsd), 15571 (nsd, the lame server), 15572 (unbound), 15573 (nothing listens),
# 15574 (proxy), 15575 (sink).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/unbound.sh"
. "${top_srcdir:-.}/tests/lib/proxy.sh"
top_builddir=${top_builddir:-.}
CHECK=$top_builddir/tools/mxmoat-check

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
[ -x /usr/sbin/unbound ] || tap_skip_all "unbound not installed"
command -v drill >/dev/null || tap_skip_all "drill not installed (ldnsutils)"
port_lock dmarc-dns-errors || tap_skip_all "another run of this test held its ports for 600 s"
px_init || tap_bail "no temp dir"
LAME_PID='' LAME_DIR=''
# stop_all - both nsd instances (dns.sh keeps one in DNS_PID/DNS_DIR), unbound, the proxy.
stop_all() {
	ub_stop
	dns_stop
	dns__stop_in LAME_PID LAME_DIR
	px_cleanup
}
trap stop_all EXIT

cat >"$PX_DIR/victim.test.zone" <<'ZONE'
$ORIGIN victim.test.
$TTL 300
@	IN SOA ns.victim.test. hostmaster.victim.test. 1 3600 600 86400 300
@	IN NS ns
ns	IN A 127.0.0.1
@	IN A 127.0.0.1
_dmarc	IN TXT "v=DMARC1; p=reject"
ZONE
# The spoofer: SPF passes for 127.0.0.1 (the proxy's client) and 192.0.2.1 (mxmoat-check's).
cat >"$PX_DIR/example.zone" <<'ZONE'
$ORIGIN example.
$TTL 300
@	IN SOA ns.example. hostmaster.example. 1 3600 600 86400 300
@	IN NS ns
ns	IN A 127.0.0.1
sf	IN TXT "v=spf1 ip4:127.0.0.1 ip4:192.0.2.1 -all"
slow	IN TXT "v=spf1 ip4:127.0.0.1 ip4:192.0.2.1 -all"
cname	IN TXT "v=spf1 ip4:127.0.0.1 ip4:192.0.2.1 -all"
_dmarc.cname	IN CNAME _dmarc.x.lame
ZONE
# The lame server: nsd for another zone only, so it REFUSEs lame.example.
dns_start 15571 victim.test="$PX_DIR/victim.test.zone" || tap_bail "nsd (lame) did not start"
# shellcheck disable=SC2034    # read by dns__stop_in through its name
LAME_PID=$DNS_PID LAME_DIR=$DNS_DIR
DNS_PID='' DNS_DIR=''
dns_start 15570 .="$top_srcdir/tests/e2e/data/root.zone" victim.test="$PX_DIR/victim.test.zone" \
	example="$PX_DIR/example.zone" _dmarc.sf.example= _dmarc.broken.test= ||
	tap_bail "nsd did not start"
ub_start 15572 .=127.0.0.1@15570 lame.example=127.0.0.1@15571 \
	_dmarc.slow.example=127.0.0.1@15573 _dmarc.slowpolicy.test=127.0.0.1@15573 ||
	tap_bail "unbound did not start"

# rcode NAME - the resolver's rcode for a TXT query, or "none" when it does not answer in 2 s.
rcode() {
	local out
	out=$(timeout 2 drill -p 15572 @127.0.0.1 TXT "$1" 2>/dev/null)
	[ -z "$out" ] && { echo none; return; }
	printf '%s\n' "$out" | sed -n 's/.*rcode: \([A-Z]*\),.*/\1/p'
}
tap_is "the fixture: _dmarc.victim.test answers" "$(rcode _dmarc.victim.test)" NOERROR
tap_is "the fixture: _dmarc.sf.example is SERVFAIL" "$(rcode _dmarc.sf.example)" SERVFAIL
tap_is "the fixture: _dmarc.cname.example (CNAME into a lame delegation) is SERVFAIL" \
	"$(rcode _dmarc.cname.example)" SERVFAIL
tap_is "the fixture: _dmarc.slow.example does not answer" "$(rcode _dmarc.slow.example)" none

printf 'From: <alice@victim.test>\r\nSubject: spoof\r\n\r\nbody\r\n' >"$PX_DIR/spoof.msg"
printf 'From: <alice@broken.test>\r\nSubject: x\r\n\r\nbody\r\n' >"$PX_DIR/broken.msg"
printf 'From: <alice@slowpolicy.test>\r\nSubject: x\r\n\r\nbody\r\n' >"$PX_DIR/slowpolicy.msg"

# check MSG MAIL_FROM [-o K=V...] - mxmoat-check through unbound; sets OUT, RC, AR.
check() {
	local msg=$1 from=$2
	shift 2
	OUT=$("$CHECK" --resolver 127.0.0.1@15572 -o dns_timeout=1s -o authserv_id=mx.test \
		--client-ip 192.0.2.1 --mail-from "$from" "$@" --explain "$PX_DIR/$msg" 2>&1)
	RC=$?
	AR=$(printf '%s\n' "$OUT" | grep '^Authentication-Results: ')
}

fail_ar='dkim=none; arc=none; dmarc=fail reason="no aligned SPF or DKIM pass for victim.test (relaxed alignment)" header.from=victim.test policy.dmarc=reject'
for case in "SERVFAIL:sf" "timeout:slow" "CNAME to a lame server:cname"; do
	name=${case%%:*} dom=${case#*:}
	for action in tempfail continue; do
		check spoof.msg "x@$dom.example" -o dmarc_temperror_action=$action
		tap_is "check, spoofer's _dmarc $name, temperror $action: exit 1 (reject)" "$RC" 1
		tap_is "check, spoofer's _dmarc $name, temperror $action: dmarc=fail" "$AR" \
			"Authentication-Results: mx.test; spf=pass smtp.mailfrom=x@$dom.example; $fail_ar"
		tap_like "check, spoofer's _dmarc $name, temperror $action: 550 5.7.1" "$OUT" \
			"verdict: reject 550 5\.7\.1 Message rejected: DMARC policy of victim\.test"
	done
done

for case in "SERVFAIL:broken:DNS error looking up _dmarc.broken.test" \
	"timeout:slowpolicy:DNS error looking up _dmarc.slowpolicy.test"; do
	name=${case%%:*} rest=${case#*:}
	dom=${rest%%:*} reason=${rest#*:}
	check "$dom.msg" x@sf.example
	tap_is "check, From domain's _dmarc $name: exit 2 (tempfail)" "$RC" 2
	tap_is "check, From domain's _dmarc $name: dmarc=temperror" "$AR" \
		"Authentication-Results: mx.test; spf=pass smtp.mailfrom=x@sf.example; dkim=none; arc=none; dmarc=temperror reason=\"$reason\" header.from=$dom.test"
	tap_like "check, From domain's _dmarc $name: 451 4.7.1" "$OUT" \
		"verdict: tempfail 451 4\.7\.1 DMARC evaluation failed temporarily, try again later"
	check "$dom.msg" x@sf.example -o dmarc_temperror_action=continue
	tap_is "check, From domain's _dmarc $name, continue: exit 0" "$RC" 0
done

# ---- through mxmoat-proxy (holding mode: the verdict comes at the end of DATA) ----
mkdir -p "$PX_DIR/spool" && chown nobody "$PX_DIR/spool"   # the proxy runs as daemon_user
px_sink_start 15575 || tap_bail "smtp-sink did not start"
tap_ok "proxy starts (authentication on, resolver at unbound)" px_start 15574 127.0.0.1:15575 \
	-o auth_inbound=yes -o dns_resolver=127.0.0.1@15572 -o dns_timeout=1s \
	-o authserv_id=mx.mxmoat.test -o "proxy_spool_dir=$PX_DIR/spool"
for case in "SERVFAIL:sf" "timeout:slow" "CNAME to a lame server:cname"; do
	name=${case%%:*} dom=${case#*:}
	out=$(swaks --server 127.0.0.1:15574 --from "x@$dom.example" --to b@example.net \
		--header 'From: <alice@victim.test>' --header 'Subject: spoof' --body 'spoof' 2>&1)
	tap_like "proxy, spoofer's _dmarc $name: 550 5.7.1 at the end of DATA" "$out" \
		"<\*\* 550 5\.7\.1 Message rejected: DMARC policy of victim\.test"
done
out=$(swaks --server 127.0.0.1:15574 --from x@sf.example --to b@example.net \
	--header 'From: <alice@broken.test>' --header 'Subject: x' --body 'x' 2>&1)
tap_like "proxy, From domain's _dmarc SERVFAIL: 451 4.7.1" "$out" \
	"<\*\* 451 4\.7\.1 DMARC evaluation failed temporarily, try again later"
tap_is "proxy: nothing relayed" "$(px_dumps)" 0
tap_like "proxy logs the rejects" "$(grep -c 'verdict=reject' "$PX_DIR/proxy.log")" "^3$"
px_stop
tap_is "proxy: no sanitizer report" \
	"$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$PX_DIR/proxy.log")" 0
tap_done
