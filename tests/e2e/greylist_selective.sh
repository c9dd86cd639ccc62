#!/bin/bash
# greylist_selective.sh - greylist=selective through both daemons with real components: nsd on
# loopback serves a DNS list and the reverse and forward zones, and the triplets live in one
# redis-server that mxmoat-milter (behind a real Postfix, the client's address given by XCLIENT)
# and mxmoat-proxy (behind a load balancer: PROXY v2 from 127.0.0.1) share. A client listed by
# bl.test (192.0.2.22, with a confirmed name) and a client without forward-confirmed reverse DNS
# (192.0.2.21: its PTR name has no address) get 451 4.7.1 at RCPT; a clean client with a
# confirmed name (192.0.2.20) is served, through both daemons. The triplet the milter made is
# the proxy's too: the no-FCrDNS client's retry through the proxy, before greylist_delay (2 s), is
# early (the proxy is started first, so the retry follows at once); after it, it passes.
# Ports: 16780 (smtpd), 16781 (sink), 16782 (milter), 16783 (nsd), 16784 (redis), 16785 (proxy),
# 16786 (its sink).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/postfix.sh"
. "${top_srcdir:-.}/tests/lib/milter.sh"
. "${top_srcdir:-.}/tests/lib/dns.sh"
. "${top_srcdir:-.}/tests/lib/proxy.sh"
. "${top_srcdir:-.}/tests/lib/redis.sh"
. "${top_srcdir:-.}/tests/lib/greylist.sh"
top_builddir=${top_builddir:-.}

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
command -v redis-server >/dev/null 2>&1 || tap_skip_all "redis-server not installed"
command -v smtp-sink >/dev/null || tap_skip_all "smtp-sink (postfix) not installed"
milter_pf_prepare greylist-selective
trap 'redis_stop; milter__pf_cleanup' EXIT

zone() {	# zone NAME RECORDS...
	printf '$ORIGIN %s.\n$TTL 300\n@ IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n' "$1" "$1" "$1"
	printf '@ IN NS ns.bl.test.\n'
	shift
	printf '%s\n' "$@"
}
zone bl.test "ns IN A 127.0.0.1" "22.2.0.192 IN A 127.0.0.2" >"$MILTER_DIR/bl.zone"
zone good.test "mx IN A 192.0.2.20" "listed IN A 192.0.2.22" >"$MILTER_DIR/good.zone"
zone 2.0.192.in-addr.arpa "20 IN PTR mx.good.test." "21 IN PTR nowhere.good.test." \
	"22 IN PTR listed.good.test." >"$MILTER_DIR/rev.zone"
dns_start 16783 .="$top_srcdir/tests/e2e/data/root.zone" bl.test="$MILTER_DIR/bl.zone" \
	good.test="$MILTER_DIR/good.zone" 2.0.192.in-addr.arpa="$MILTER_DIR/rev.zone" ||
	tap_bail "nsd did not start"
redis_start 16784 >/dev/null || tap_bail "redis-server did not start"

# the same policy in both daemons: the list only scores (dnsbl_action=log), greylisting decides;
# each client is a network of its own (greylist_net_prefix_v4=32)
common=(-o auth_inbound=no -o dns_resolver=127.0.0.1@16783 -o dnsbl_sites=bl.test
	-o dnsbl_action=log -o greylist=selective -o greylist_delay=2s -o greylist_net_prefix_v4=32
	-o ratelimit_store=redis
	-o ratelimit_redis=127.0.0.1:16784 -o ratelimit_redis_prefix=gs: -o ratelimit_allow=)
greylisted='451 4\.7\.1 ' accepted='250 2\.0\.0 Ok'

# --- mxmoat-milter behind Postfix, the client named by XCLIENT ---
tap_ok "milter starts with greylist=selective and Redis" milter_start inet:16782@127.0.0.1 "${common[@]}"
milter_pf_start 16780 16781 "smtpd_milters = inet:127.0.0.1:16782" \
	"milter_default_action = tempfail" "milter_protocol = 6" \
	"smtpd_authorized_xclient_hosts = 127.0.0.0/8" "mynetworks = 0.0.0.0/0"
send() {	# send ADDR SENDER - one message from ADDR (XCLIENT) through Postfix
	swaks --server 127.0.0.1:16780 --xclient-addr "$1" --from "$2" --to b@example.net \
		--body "from $1" 2>&1
}
greylisted_by_milter() {	# greylisted_by_milter ADDR WHAT LOGGED: 451 at RCPT, and LOGGED in the log
	tap_like "milter: $2 is greylisted at RCPT" "$(send "$1" a@example.org)" \
		"RCPT TO:<b@example\\.net>
<\\*\\* 451 4\\.7\\.1 "
	tap_ok "milter: ... and logged: $3" milter_log_grep "$3"
}
# --- mxmoat-proxy behind a load balancer, the same Redis: started before the milter makes the
# triplet the proxy retries early, so the retry comes well within the 2 s delay ---
px_init || tap_bail "no temp dir"
px_sink_start 16786 || tap_bail "smtp-sink did not start"
px_start 16785 127.0.0.1:16786 -o proxy_inbound_proxy_networks=127.0.0.1/32 "${common[@]}" ||
	{ cat "$PX_DIR/proxy.log"; tap_bail "proxy did not start"; }
V2SIG='\r\n\r\n\x00\r\nQUIT\n'
chat() {	# chat D SENDER - one message from 192.0.2.D (PROXY v2) through the proxy
	px_chat 16785 "S:$(printf '%s\\x21\\x11\\x00\\x0c\\xc0\\x00\\x02\\x%02x\\xc0\\x00\\x02\\x19\\x9c\\x42\\x00\\x19' \
		"$V2SIG" "$1")" R "S:EHLO client.example\r\n" R "S:MAIL FROM:<$2>\r\n" R \
		"S:RCPT TO:<b@example.net>\r\n" R "S:DATA\r\n" R "S:Subject: t\r\n\r\nbody\r\n.\r\n" R \
		"S:QUIT\r\n" A
}

greylisted_by_milter 192.0.2.22 "a listed client" \
	"dnsbl client=192\\.0\\.2\\.22 score=1 hits=bl\\.test failed=0 action=log"
start=$(date +%s%N)
greylisted_by_milter 192.0.2.21 "a client without forward-confirmed reverse DNS" \
	"iprev client=192\\.0\\.2\\.21 result=fail"
out=$(chat 21 a@example.org)
if [ $((($(date +%s%N) - start) / 1000000)) -lt 1800 ]; then
	tap_like "proxy: the milter's triplet, retried before the delay, is early" "$out" \
		$'<- 250 [^\n]*\n<- 451 4\\.7\\.1 '
else
	tap_skip "proxy: the milter's triplet, retried before the delay, is early" \
		"the machine took longer than the delay"
fi
out=$(send 192.0.2.20 a@example.org)
tap_like "milter: a clean client with a confirmed name is served" "$out" "<-  250 2\\.0\\.0 Ok: queued as"
tap_ok "milter: ... its iprev passed with its name" milter_log_grep \
	"iprev client=192\\.0\\.2\\.20 result=pass name=mx\\.good\\.test"
tap_ok "milter: ... and it was not greylisted" \
	bash -c "! grep -qE 'greylist client=192\\.0\\.2\\.20 ' '$MILTER_LOG'"
tap_ok "one message relayed by Postfix" pf_wait_delivered 1 20
tap_is "the two triplets are in Redis, hashed" \
	"$(redis-cli -h 127.0.0.1 -p 16784 --scan --pattern 'gs:gt:*' | grep -cE '^gs:gt:[0-9a-f]{32}$')" 2

out=$(chat 20 a@example.org)
tap_like "proxy: the clean client is served" "$out" $'\n<- 250 2\\.0\\.0 Ok[^\n]*\n<- 221'
out=$(chat 22 other@example.org)
tap_like "proxy: the listed client is greylisted at RCPT (a new triplet)" "$out" \
	$'<- 250 [^\n]*\n<- 451 4\\.7\\.1 '
gl_retry_until_passed "$start" chat 21 a@example.org
tap_ok "proxy: the pass is logged against the milter's triplet" px_wait_log \
	"greylist client=192\\.0\\.2\\.21 result=passed"
tap_ok "no ASan/LSan/UBSan report from the milter" milter_sanitizer_clean
tap_is "no ASan/LSan/UBSan report from the proxy" \
	"$(grep -cE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$PX_DIR/proxy.log")" 0
[ "$TAP_FAILED" = 0 ] || { tail -n 30 "$MILTER_LOG"; tail -n 30 "$PX_DIR/proxy.log"; pf_maillog | tail -n 20; } | sed "s/^/# /"
tap_done
