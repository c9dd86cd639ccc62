#!/bin/bash
# dnsbl_daemons.sh - DNS block and allow lists at connect through both daemons, with nsd on
# loopback serving the lists: mxmoat-milter behind a real Postfix, the client's address given by
# XCLIENT, and mxmoat-proxy behind a load balancer (PROXY v2 from 127.0.0.1) in front of
# smtp-sink. A listed IPv4 and IPv6 client gets 554 5.7.1 naming the list and the connection is
# closed (IPv6 through the proxy); an allow list's negative weight lets the same client in; an unlisted one is served; the
# score and the lists that hit are in the log. Then nsd stops answering (SIGSTOP): the proxy greets
# within dnsbl_timeout and counts nothing.
# Ports: 16600 (smtpd), 16601 (sink), 16602 (milter), 16603 (nsd), 16604 (proxy), 16605 (sink),
# 16606 (second proxy).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/postfix.sh"
. "${top_srcdir:-.}/tests/lib/milter.sh"
. "${top_srcdir:-.}/tests/lib/dns.sh"
. "${top_srcdir:-.}/tests/lib/proxy.sh"
top_builddir=${top_builddir:-.}

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
command -v smtp-sink >/dev/null || tap_skip_all "smtp-sink (postfix) not installed"
milter_pf_prepare dnsbl-daemons

# bl.test lists 192.0.2.10 (127.0.0.2) and 2001:db8::7 (127.0.0.3); wl.test allows 192.0.2.10
zone() {	# zone NAME RECORDS...
	printf '$ORIGIN %s.\n$TTL 300\n@ IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n' "$1" "$1" "$1"
	printf '@ IN NS ns\nns IN A 127.0.0.1\n'
	shift
	printf '%s\n' "$@"
}
zone bl.test "10.2.0.192 IN A 127.0.0.2" \
	"7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2 IN A 127.0.0.3" \
	>"$MILTER_DIR/bl.zone"
zone wl.test "10.2.0.192 IN A 127.0.0.1" >"$MILTER_DIR/wl.zone"
dns_start 16603 .="$top_srcdir/tests/e2e/data/root.zone" bl.test="$MILTER_DIR/bl.zone" \
	wl.test="$MILTER_DIR/wl.zone" || tap_bail "nsd did not start"

# --- mxmoat-milter behind Postfix, the client named by XCLIENT ---
tap_ok "milter starts with bl.test" milter_start inet:16602@127.0.0.1 -o auth_inbound=no \
	-o dns_resolver=127.0.0.1@16603 -o dnsbl_sites=bl.test=127.0.0.[2..3]
milter_pf_start 16600 16601 "smtpd_milters = inet:127.0.0.1:16602" \
	"milter_default_action = tempfail" "milter_protocol = 6" \
	"smtpd_authorized_xclient_hosts = 127.0.0.0/8" "mynetworks = 0.0.0.0/0"

send() {	# send ADDR - one message from ADDR (XCLIENT) through Postfix
	swaks --server 127.0.0.1:16600 --xclient-addr "$1" --from a@example.org --to b@example.net \
		--body "from $1" 2>&1
}
out=$(send 192.0.2.10)
# Postfix sends the milter a new connect event for the client XCLIENT names, answers XCLIENT with
# its own text when the milter refuses, and logs the milter's.
tap_like "milter: listed client refused" "$out" "<\\*\\* 554 "
tap_ok "milter: Postfix logged the milter's 554 5.7.1 naming bl.test" pf_maillog_grep \
	"milter-reject: XCLIENT from [^:]*192\\.0\\.2\\.10\\]: 554 5\\.7\\.1 Service unavailable; client \\[192\\.0\\.2\\.10\\] blocked using bl\\.test"
tap_ok "milter: the score and the list are in its log" milter_log_grep \
	"dnsbl client=192\\.0\\.2\\.10 score=1 hits=bl\\.test failed=0 action=reject"
out=$(send 198.51.100.9)
tap_like "milter: unlisted client served" "$out" "<-  250 2\\.0\\.0 Ok: queued as"
tap_ok "milter: its log says pass" milter_log_grep \
	"dnsbl client=198\\.51\\.100\\.9 score=0 hits=- failed=0 action=pass"
tap_ok "one message relayed" pf_wait_delivered 1 20
tap_ok "no ASan/LSan/UBSan report from the milter" milter_sanitizer_clean

# --- mxmoat-proxy behind a load balancer (PROXY v2 from 127.0.0.1) ---
px_init || tap_bail "no temp dir"
px_sink_start 16605 || tap_bail "smtp-sink did not start"
px_start 16604 127.0.0.1:16605 -o proxy_inbound_proxy_networks=127.0.0.1/32 \
	-o dns_resolver=127.0.0.1@16603 -o dnsbl_sites=bl.test*2,wl.test*-1 -o dnsbl_threshold=2 \
	-o dnsbl_timeout=1s -o ratelimit_allow=0.0.0.0/0,::/0 ||
	{ cat "$PX_DIR/proxy.log"; tap_bail "proxy did not start"; }
V2SIG='\r\n\r\n\x00\r\nQUIT\n'
v2_tcp4() {	# v2_tcp4 A B C D - a PROXY v2 header naming A.B.C.D:40002 -> 192.0.2.25:25
	printf '%s\\x21\\x11\\x00\\x0c\\x%02x\\x%02x\\x%02x\\x%02x\\xc0\\x00\\x02\\x19\\x9c\\x42\\x00\\x19' \
		"$V2SIG" "$1" "$2" "$3" "$4"
}
# 2001:db8::7:40003 -> 2001:db8::25:25
V2_TCP6="$V2SIG"'\x21\x21\x00\x24\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x07'
V2_TCP6+='\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x25\x9c\x43\x00\x19'
TXN=(R "S:EHLO client.example\r\n" R "S:MAIL FROM:<a@example.org>\r\n" R
	"S:RCPT TO:<b@example.net>\r\n" R "S:DATA\r\n" R "S:Subject: t\r\n\r\nbody\r\n.\r\n" R
	"S:QUIT\r\n" A)

# 192.0.2.10: bl.test*2 and wl.test*-1 make 1, under the threshold of 2
out=$(px_chat 16604 "S:$(v2_tcp4 192 0 2 10)" "${TXN[@]}")
tap_like "proxy: the allow list's weight lets a listed client in" "$out" \
	$'^<- 220 [^\n]*\n(.*\n)?<- 250 2\\.0\\.0 Ok[^\n]*\n<- 221'
tap_ok "proxy: score 1 from both lists, in the log" px_wait_log \
	"dnsbl client=192\\.0\\.2\\.10 score=1 hits=bl\\.test,wl\\.test failed=0 action=pass"
out=$(px_chat 16604 "S:$V2_TCP6" R A)
tap_is "proxy: listed IPv6 client gets 554 5.7.1 naming bl.test, then the close" "$out" \
	"<- 554 5.7.1 Service unavailable; client [2001:db8::7] blocked using bl.test
EOF"
tap_ok "proxy: score 2, in the log" px_wait_log \
	"dnsbl client=2001:db8::7 score=2 hits=bl\\.test failed=0 action=reject"
px_stop

# --- the DNS server stops answering: greeted within dnsbl_timeout, nothing counts ---
px_start 16606 127.0.0.1:16605 -o proxy_inbound_proxy_networks=127.0.0.1/32 \
	-o dns_resolver=127.0.0.1@16603 -o dnsbl_sites=bl.test -o dnsbl_timeout=1s \
	-o dns_timeout=1s -o ratelimit_allow=0.0.0.0/0,::/0 ||
	{ cat "$PX_DIR/proxy.log"; tap_bail "second proxy did not start"; }
# nsd serves from a grandchild (xfrd, main, server): stop them all, by their ids
descendants() { local p; for p in $(pgrep -P "$1"); do echo "$p"; descendants "$p"; done; }
dns_pids=("$DNS_PID" $(descendants "$DNS_PID"))
kill -STOP "${dns_pids[@]}"
start=$(date +%s%N)
out=$(px_chat 16606 "S:$(v2_tcp4 203 0 113 5)" "${TXN[@]}")
ms=$((($(date +%s%N) - start) / 1000000))
kill -CONT "${dns_pids[@]}"
tap_like "dead DNS: the client is served" "$out" $'^<- 220 [^\n]*\n(.*\n)?<- 250 2\\.0\\.0 Ok[^\n]*\n<- 221'
tap_ok "dead DNS: the session waited for the timeout of 1 s, and less than 10 s ($ms ms)" \
	test "$ms" -ge 900 -a "$ms" -lt 10000
tap_ok "dead DNS: logged as failed, score 0" px_wait_log \
	"dnsbl client=203\\.0\\.113\\.5 score=0 hits=- failed=1 action=pass"
[ "$TAP_FAILED" = 0 ] || { tail -n 30 "$MILTER_LOG"; tail -n 30 "$PX_DIR/proxy.log"; pf_maillog | tail -n 20; } | sed "s/^/# /"
tap_done
