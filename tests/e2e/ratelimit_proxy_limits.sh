#!/bin/bash
# ratelimit_proxy_limits.sh - the message, recipient and TLS-handshake rate limits of
# mxmoat-proxy (embedded store) with swaks and the TLS chat client, each from its own loopback
# address: ratelimit_msg_per_ip = 2/60s gives the third message 451 4.7.1 at each RCPT (the
# message limits are charged with the first recipient) while another address is served;
# ratelimit_rcpt_per_ip = 3/60s gives the fourth RCPT 451 4.7.1 and the message goes to three;
# ratelimit_msg_per_sender = 3/60s counts one sender (any case) across addresses;
# ratelimit_tls_per_ip = 2/60s answers the third STARTTLS with 421 4.7.0 and closes, and closes
# the third implicit-TLS connection before any handshake. Ports 16400-16402.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
command -v smtp-sink >/dev/null || tap_skip_all "smtp-sink (postfix) not installed"
command -v swaks >/dev/null || tap_skip_all "swaks not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "smtp-sink -u needs root"

P=16400 S=16401 T=16402
port_lock ratelimit-proxy-limits || tap_skip_all "another run of this test held its ports for 600 s"
trap px_cleanup EXIT
px_init || tap_bail "no temp dir"
cp "$top_srcdir"/tests/data/tls/rsa.pem "$top_srcdir"/tests/data/tls/rsa.key "$PX_DIR"/
chmod 600 "$PX_DIR"/rsa.key
px_sink_start $S || tap_bail "smtp-sink did not start"
px_start $P 127.0.0.1:$S -o ratelimit_allow= -o ratelimit_conn_per_ip=1000/60s -o ratelimit_conn_per_net= \
	-o ratelimit_msg_per_ip=2/60s -o ratelimit_rcpt_per_ip=3/60s -o ratelimit_msg_per_sender=3/60s \
	-o ratelimit_tls_per_ip=2/60s -o "tls_cert_file=$PX_DIR/rsa.pem" -o "tls_key_file=$PX_DIR/rsa.key" \
	-o "proxy_listen_tls=127.0.0.1:$T" ||
	{ cat "$PX_DIR/proxy.log"; tap_bail "proxy did not start"; }
px__wait_port $T || tap_diag "implicit-TLS listener not up"

# send SRC FROM TO... - one message through the proxy with swaks from address SRC.
send() {
	local src=$1 from=$2 to
	shift 2
	to=$(IFS=,; echo "$*")
	swaks --server 127.0.0.1:$P --local-interface "$src" --from "$from" --to "$to" \
		--body "rate limit test" --timeout 10 2>&1
}
wait_dumps() {
	local i
	for i in $(seq 1 40); do [ "$(px_dumps)" -ge "$1" ] && return 0; sleep 0.05; done
	return 1
}

# --- messages per address ---
tap_like "127.0.0.2 message 1: 250" "$(send 127.0.0.2 a@one.example r@example.net)" $'<-  250 2\\.0\\.0 Ok'
tap_like "127.0.0.2 message 2: 250" "$(send 127.0.0.2 b@one.example r@example.net)" $'<-  250 2\\.0\\.0 Ok'
out=$(send 127.0.0.2 c@one.example r@example.net r2@example.net)
tap_like "127.0.0.2 message 3: MAIL is relayed" "$out" $'MAIL FROM:<c@one.example>\n<-  250 '
tap_like "... its first RCPT gets 451 4.7.1 (message limits answer the first RCPT)" "$out" \
	$'RCPT TO:<r@example.net>\n<\\*\\* 451 4\\.7\\.1 Too many messages from your address, try again later'
tap_like "... and so does the second" "$out" \
	$'RCPT TO:<r2@example.net>\n<\\*\\* 451 4\\.7\\.1 Too many messages from your address, try again later'
tap_like "127.0.0.3 is served meanwhile" "$(send 127.0.0.3 d@one.example r@example.net)" $'<-  250 2\\.0\\.0 Ok'
wait_dumps 3
tap_is "the sink got 3 messages, not 4" "$(px_dumps)" 3
tap_is "the refusal is logged once per key" \
	"$(grep -c 'limit=ratelimit_msg_per_ip key="mip:127.0.0.2" action=refuse' "$PX_DIR/proxy.log")" 1

# --- recipients per address ---
out=$(send 127.0.0.4 e@one.example r1@example.net r2@example.net r3@example.net r4@example.net)
tap_is "127.0.0.4: three RCPTs accepted" "$(grep -c '<-  250 2.1.5' <<< "$out")" 3
tap_like "127.0.0.4: the fourth RCPT gets 451 4.7.1" "$out" \
	$'RCPT TO:<r4@example.net>\n<\\*\\* 451 4\\.7\\.1 Too many recipients from your address, try again later'
tap_like "127.0.0.4: the message is accepted for the three" "$out" $'<-  250 2\\.0\\.0 Ok'
wait_dumps 4
tap_is "the sink saw RCPT for r1..r3 only" \
	"$(grep -o 'RCPT TO:<r[0-9]@example.net>' "$PX_DIR/sink.log" | sort -u | tr '\n' ' ')" \
	"RCPT TO:<r1@example.net> RCPT TO:<r2@example.net> RCPT TO:<r3@example.net> "

# --- messages per sender, across addresses (two left for 127.0.0.5 and .6 each) ---
tap_like "Bulk@Example.ORG from 127.0.0.5: 250" "$(send 127.0.0.5 Bulk@Example.ORG r@example.net)" $'<-  250 2\\.0\\.0 Ok'
tap_like "bulk@example.org from 127.0.0.6: 250" "$(send 127.0.0.6 bulk@example.org r@example.net)" $'<-  250 2\\.0\\.0 Ok'
tap_like "BULK@example.org from 127.0.0.7: 250" "$(send 127.0.0.7 BULK@example.org r@example.net)" $'<-  250 2\\.0\\.0 Ok'
tap_like "the same sender from 127.0.0.5 again: 451 4.7.1 (per sender, any case)" \
	"$(send 127.0.0.5 bulk@EXAMPLE.org r@example.net)" \
	$'<\\*\\* 451 4\\.7\\.1 Too many messages from this sender, try again later'

# --- TLS handshakes per address ---
if swaks --support 2>&1 | grep -q '^=== TLS supported'; then
	for i in 1 2; do
		out=$(swaks --server 127.0.0.1:$P --local-interface 127.0.0.8 --tls --quit-after TLS --timeout 10 2>&1)
		tap_like "127.0.0.8 STARTTLS $i: TLS started" "$out" "TLS started with cipher"
	done
	out=$(swaks --server 127.0.0.1:$P --local-interface 127.0.0.8 --tls --quit-after TLS --timeout 10 2>&1)
	tap_like "127.0.0.8 STARTTLS 3: 421 4.7.0" "$out" \
		$'<\\*\\* 421 4\\.7\\.0 Too many TLS handshakes from your address, try again later'
else
	for i in 1 2 3; do tap_ok "127.0.0.8 STARTTLS $i # SKIP swaks without TLS (libnet-ssleay-perl)" true; done
fi
tc() { "$PX_PY" "$top_srcdir/tests/lib/tls_chat.py" 127.0.0.1 "$@"; }
out=$(tc $P --src 127.0.0.8 R "S:EHLO x\r\n" R "S:STARTTLS\r\n" R A)
tap_like "127.0.0.8 STARTTLS 4 (tls_chat): 421 4.7.0, closed" "$out" \
	$'<- 421 4\\.7\\.0 Too many TLS handshakes from your address, try again later\nEOF'
for i in 1 2; do
	tap_like "127.0.0.9 implicit TLS $i: greeted inside TLS" "$(tc $T --implicit --src 127.0.0.9 R "S:QUIT\r\n" R)" \
		$'^TLS TLSv1\\.3 .*\n<- 220 '
done
out=$(tc $T --implicit --src 127.0.0.9 R "S:QUIT\r\n" R)
tap_like "127.0.0.9 implicit TLS 3: closed before any handshake" "$out" "^TLSERR "
tap_like "127.0.0.10 implicit TLS is served meanwhile" "$(tc $T --implicit --src 127.0.0.10 R "S:QUIT\r\n" R)" \
	$'^TLS TLSv1\\.3 .*\n<- 220 '
tap_is "the implicit-TLS refusal is logged once" \
	"$(grep -c 'limit=ratelimit_tls_per_ip key="tip:127.0.0.9"' "$PX_DIR/proxy.log")" 1
kill -0 "$PX_PID" 2>/dev/null
tap_ok "the proxy is still running" test $? = 0
tap_done
