#!/bin/bash
# proxy_inbound.sh - PROXY protocol v1/v2 from a load balancer in front of mxmoat-proxy: only peers
# in proxy_inbound_proxy_networks may send it (and must); the client it names is the one the
# policy, the limits and XCLIENT/PROXY towards the backend see; a malformed or late header closes
# the connection unanswered; from anyone else "PROXY ..." is just a bad SMTP command.
# Backends: smtp-sink, a second mxmoat-proxy that takes our PROXY v2, and Postfix told the client
# by XCLIENT. Ports 12700-12709.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/postfix.sh"

command -v smtp-sink >/dev/null || tap_skip_all "smtp-sink (postfix) not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "smtp-sink -u needs root"

P=12700 S=12701 P2=12702 PF_PORT=12703 T=12704
port_lock proxy-inbound || tap_skip_all "another run of this test held its ports for 600 s"
P2_PID=
cleanup() {
	[ -n "$P2_PID" ] && kill -KILL "$P2_PID" 2>/dev/null && wait "$P2_PID" 2>/dev/null
	px_cleanup
	pf_stop
}
trap cleanup EXIT
px_init || tap_bail "no temp dir"
px_sink_start $S || tap_bail "smtp-sink did not start"
# the tests connect from 127.0.0.1: it is the load balancer
px_start $P 127.0.0.1:$S -o proxy_inbound_proxy_networks=127.0.0.1/32 \
	-o proxy_inbound_proxy_timeout=1s -o limit_sessions_per_ip=1 -o ratelimit_deny=203.0.113.66 ||
	{ cat "$PX_DIR/proxy.log"; tap_bail "proxy did not start"; }

HELLO=(R "S:EHLO client.example\r\n" R)
TXN=("S:MAIL FROM:<a@example.org>\r\n" R "S:RCPT TO:<b@example.net>\r\n" R "S:DATA\r\n" R
	"S:Subject: t\r\n\r\nbody\r\n.\r\n" R)
V2SIG='\r\n\r\n\x00\r\nQUIT\n'
# v2 PROXY TCP4 198.51.100.9:40002 -> 192.0.2.25:25, a NOOP TLV and a unique-id TLV
V2_TCP4="$V2SIG"'\x21\x11\x00\x17\xc6\x33\x64\x09\xc0\x00\x02\x19\x9c\x42\x00\x19\x04\x00\x02pp\x05\x00\x03uid'
# v2 PROXY TCP6 2001:db8::7:40003 -> 2001:db8::25:25
V2_TCP6="$V2SIG"'\x21\x21\x00\x24\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x07'
V2_TCP6+='\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x25\x9c\x43\x00\x19'

# wait_log REGEX [FILE] - bounded wait until the log has a matching line
wait_log() {
	local i
	for i in $(seq 1 100); do grep -Eq "$1" "${2:-$PX_DIR/proxy.log}" && return 0; sleep 0.05; done
	return 1
}

# --- v1: the client it names is the session's client ---
out=$(px_chat $P "S:PROXY TCP4 203.0.113.7 192.0.2.25 40001 25\r\n" "${HELLO[@]}" "${TXN[@]}" "S:QUIT\r\n" A)
tap_like "v1: greeting, then a delivered message" "$out" $'^<- 220 [^\n]*\n(.*\n)?<- 250 2\\.0\\.0 Ok[^\n]*\n<- 221'
wait_log 'connect client=203\.0\.113\.7 port=40001'
tap_like "v1: the session's client is the one in the header" "$(cat "$PX_DIR/proxy.log")" \
	'proxy-header from=127\.0\.0\.1 port=[0-9]+ version=1 client=203\.0\.113\.7 client_port=40001'

# --- v2, TLVs skipped; IPv6 ---
out=$(px_chat $P "S:$V2_TCP4" "${HELLO[@]}" "S:QUIT\r\n" A)
tap_like "v2 TCP4 with TLVs: greeting and EHLO" "$out" $'^<- 220 [^\n]*\n<- 250-'
tap_ok "v2 TCP4: the session's client is the one in the header" wait_log 'connect client=198\.51\.100\.9 port=40002'
out=$(px_chat $P "S:$V2_TCP6" "${HELLO[@]}" "S:QUIT\r\n" A)
tap_like "v2 TCP6: greeting and EHLO" "$out" $'^<- 220 [^\n]*\n<- 250-'
tap_ok "v2 TCP6: the session's client is the one in the header" wait_log 'connect client=2001:db8::7 port=40003'
out=$(px_chat $P "S:$V2SIG"'\x20\x00\x00\x00' "${HELLO[@]}" "S:QUIT\r\n" A)
tap_like "v2 LOCAL (health check): served as the load balancer itself" "$out" $'^<- 220 [^\n]*\n<- 250-'
tap_ok "v2 LOCAL: the session's client is the connection's" wait_log 'version=2 client=127\.0\.0\.1 client_port=[0-9]+ local=yes'
out=$(px_chat $P "S:PROXY UNKNOWN\r\n" R "S:QUIT\r\n" A)
tap_like "v1 UNKNOWN: served as the load balancer itself" "$out" $'^<- 220 [^\n]*\n<- 221'
out=$(px_chat $P "S:PROXY TCP4 203.0.113.8 " P:0.3 "S:192.0.2.25 40004 25" P:0.3 "S:\r\n" "${HELLO[@]}" "S:QUIT\r\n" A)
tap_like "v1 in three pieces: read whole before the greeting" "$out" $'^<- 220 [^\n]*\n<- 250-'

# --- limits and policy see the real client ---
out=$(px_chat $P "S:PROXY TCP4 203.0.113.66 192.0.2.25 40005 25\r\n" A)
tap_like "ratelimit_deny on the real client: 554 5.7.1" "$out" $'^<- 554 5\\.7\\.1'
# the first session stays open until the two below are done (the file "go" says so)
px_chat $P "S:PROXY TCP4 203.0.113.10 192.0.2.25 40006 25\r\n" R "W:$PX_DIR/go" "S:QUIT\r\n" A >"$PX_DIR/hold.out" &
hold=$!
wait_log 'connect client=203\.0\.113\.10 port=40006'
out=$(px_chat $P "S:PROXY TCP4 203.0.113.10 192.0.2.25 40007 25\r\n" A)
tap_like "limit_sessions_per_ip counts the real client: a second session from it gets 421" "$out" $'^<- 421 4\\.7\\.0'
out=$(px_chat $P "S:PROXY TCP4 203.0.113.11 192.0.2.25 40008 25\r\n" R "S:QUIT\r\n" A)
tap_like "... while another client behind the same load balancer is served" "$out" $'^<- 220 [^\n]*\n<- 221'
touch "$PX_DIR/go"
wait "$hold"
tap_like "... and the first session was not disturbed" "$(cat "$PX_DIR/hold.out")" $'^<- 220 [^\n]*\n<- 221'

# --- a listed peer that does not speak the protocol is closed, unanswered ---
bad() {	# bad LABEL REASON BYTES...: EOF before any reply, and the reason logged
	local label=$1 why=$2; shift 2
	out=$(px_chat $P "$@" A)
	tap_is "listed peer, $label: closed without a word" "$out" "EOF"
	tap_ok "listed peer, $label: logged as $why" wait_log "proxy-header from=127\\.0\\.0\\.1 port=[0-9]+ error=$why"
}
bad "SMTP instead of a header" not-a-proxy-header "S:EHLO lb.example\r\n"
bad "v1 port with a leading zero" v1-port "S:PROXY TCP4 203.0.113.7 192.0.2.25 040001 25\r\n"
bad "v1 bare LF" v1-bare-lf "S:PROXY TCP4 203.0.113.7 192.0.2.25 40001 25\n"
bad "v1 longer than 107 bytes" v1-too-long "S:PROXY UNKNOWN $(printf 'x%.0s' $(seq 1 100))\r\n"
bad "v2 TLV past the block" v2-tlv "S:$V2SIG"'\x21\x11\x00\x11\xc6\x33\x64\x09\xc0\x00\x02\x19\x9c\x42\x00\x19\x04\x00\x09pp'
bad "v2 length past the bound" v2-too-long "S:$V2SIG"'\x21\x11\xff\xff'
bad "v2 UDP" v2-family "S:$V2SIG"'\x21\x12\x00\x0c\xc6\x33\x64\x09\xc0\x00\x02\x19\x9c\x42\x00\x19'
# timed by the client from its connection to the close, not from the interpreter's start-up;
# 900: libuv's millisecond clock and the client's may disagree by a few ms
out=$(px_chat $P "S:PROXY TCP4 203.0.113.7" A M)
ms=$(sed -n 's/^ms=//p' <<< "$out")
out=$(sed '/^ms=/d' <<< "$out")
tap_is "listed peer, header not finished: closed without a word" "$out" "EOF"
tap_like "... after proxy_inbound_proxy_timeout (1 s), not before (bound 10 s on a loaded machine): ${ms} ms" "$ms" '^(9[0-9]{2}|[1-9][0-9]{3})$'
tap_ok "... logged as a timeout" wait_log 'proxy-header from=127\.0\.0\.1 port=[0-9]+ error=timeout'
px_stop
: >"$PX_DIR/proxy.log"

# --- a peer not listed: "PROXY ..." is a bad command, nothing more ---
px_start $P 127.0.0.1:$S -o proxy_inbound_proxy_networks=192.0.2.0/24 ||
	tap_diag "restart failed"
out=$(px_chat $P R "S:PROXY TCP4 203.0.113.7 192.0.2.25 40001 25\r\n" R "S:EHLO client.example\r\n" R "S:QUIT\r\n" A)
tap_like "unlisted peer: PROXY is an unknown command (502), the session goes on" "$out" \
	$'^<- 220 [^\n]*\n<- 502 5\\.5\\.2[^\n]*\n<- 250-'
tap_ok "unlisted peer: its own address is the client" wait_log 'connect client=127\.0\.0\.1 '
tap_is "unlisted peer: no header was read" "$(grep -c 'proxy-header' "$PX_DIR/proxy.log")" 0
px_stop

# --- with a greet pause, bytes sent right after the header are an early talker ---
px_start $P 127.0.0.1:$S -o proxy_inbound_proxy_networks=127.0.0.1 -o proxy_greet_pause=1s ||
	tap_diag "restart failed"
out=$(px_chat $P "S:PROXY TCP4 203.0.113.7 192.0.2.25 40001 25\r\nEHLO early.example\r\n" A)
tap_like "header then EHLO before the greeting: 554 early talker" "$out" $'^<- 554 5\\.5\\.1'
px_stop

# --- implicit TLS: the header comes before the handshake, in the same write as the ClientHello ---
cp "$top_srcdir"/tests/data/tls/ecdsa.pem "$top_srcdir"/tests/data/tls/ecdsa.key "$PX_DIR"/
chmod 600 "$PX_DIR"/ecdsa.key && chown nobody "$PX_DIR"/ecdsa.key && chmod 644 "$PX_DIR"/ecdsa.pem
cat >"$PX_DIR/tls_pp.py" <<'PY'
import socket, ssl, sys
port = int(sys.argv[1])
header = sys.argv[2].encode("latin-1").decode("unicode_escape").encode("latin-1")
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, out, server_hostname="mx.test")
s = socket.create_connection(("127.0.0.1", port), timeout=5)
first = [True]
def flush():    # what TLS has to send; the PROXY header in front of the first bytes (the ClientHello)
    data = out.read()
    if first[0]:
        data, first[0] = header + data, False
    if data:
        s.sendall(data)
def fill():
    try:
        data = s.recv(65536)
    except OSError:
        data = b""
    if not data:
        print("EOF", flush=True)
        sys.exit(0)
    inc.write(data)
while True:
    try:
        tls.do_handshake()
        flush()
        break
    except ssl.SSLWantReadError:
        flush()
        fill()
def reply():
    buf = b""
    while True:
        try:
            buf += tls.read(65536)
        except ssl.SSLWantReadError:
            flush()
            fill()
            continue
        lines = buf.split(b"\r\n")
        if len(lines) > 1 and (len(lines[-2]) < 4 or lines[-2][3:4] == b" "):
            for l in lines[:-1]:
                print("<- " + l.decode("latin-1"), flush=True)
            return
reply()
for cmd in (b"EHLO tls.example\r\n", b"QUIT\r\n"):
    tls.write(cmd)
    flush()
    reply()
PY
px_start $P 127.0.0.1:$S -o proxy_inbound_proxy_networks=127.0.0.1 -o "proxy_listen_tls=127.0.0.1:$T" \
	-o "tls_cert_file=$PX_DIR/ecdsa.pem" -o "tls_key_file=$PX_DIR/ecdsa.key" || tap_diag "restart failed"
px__wait_port $T || tap_diag "implicit-TLS listener not up"
out=$(timeout 20 /usr/bin/python3 "$PX_DIR/tls_pp.py" $T 'PROXY TCP4 203.0.113.12 192.0.2.25 40011 465\r\n' 2>&1)
tap_like "implicit TLS: header and ClientHello in one write, then the greeting inside TLS" "$out" \
	$'^<- 220 [^\n]*\n<- 250-[^\n]*\n(<- 250-[^\n]*\n)*<- 250 [^\n]*\n<- 221'
tap_ok "implicit TLS: the session's client is the one in the header" wait_log 'connect client=203\.0\.113\.12 port=40011'
out=$(timeout 20 /usr/bin/python3 "$PX_DIR/tls_pp.py" $T 'PROXY TCP4 203.0.113.12 192.0.2.25 40012\r\n' 2>&1)
tap_is "implicit TLS: a malformed header closes before any TLS" "$(printf '%s\n' "$out" | tail -1)" "EOF"
px_stop

# --- PROXY v2 out of one mxmoat-proxy into another: the client survives two hops ---
"$top_builddir/proxy/mxmoat-proxy" -f -o "proxy_listen=127.0.0.1:$P2" -o "proxy_backend=127.0.0.1:$S" \
	-o proxy_workers=1 -o proxy_inbound_proxy_networks=127.0.0.1 -o auth_inbound=no \
	>"$PX_DIR/proxy2.log" 2>&1 &
P2_PID=$!
px__wait_port $P2 || tap_diag "second proxy did not start"
px_start $P 127.0.0.1:$P2 -o proxy_inbound_proxy_networks=127.0.0.1 -o proxy_backend_pass=proxy_v2 ||
	tap_diag "restart failed"
before=$(px_dumps)
out=$(px_chat $P "S:PROXY TCP6 2001:db8::9 2001:db8::25 40009 25\r\n" "${HELLO[@]}" "${TXN[@]}" "S:QUIT\r\n" A)
tap_like "two hops (v1 in, v2 out, v2 in): delivered" "$out" $'<- 250 2\\.0\\.0 Ok[^\n]*\n<- 221'
tap_ok "second hop's client is the first hop's client" wait_log 'connect client=2001:db8::9 port=40009' "$PX_DIR/proxy2.log"
tap_ok "second hop: the header was v2" wait_log 'proxy-header from=127\.0\.0\.1 port=[0-9]+ version=2 client=2001:db8::9' "$PX_DIR/proxy2.log"
tap_is "the sink got the message" "$(( $(px_dumps) - before ))" 1
px_stop

# --- XCLIENT to a real Postfix names the client from the header ---
if [ "${MXMOAT_QUICK:-}" = 1 ]; then
	tap_diag "MXMOAT_QUICK: Postfix part skipped"
# Postfix relays only for the client named in the header (the load balancer is in mynetworks)
elif pf_init "smtpd_authorized_xclient_hosts = 127.0.0.1" \
	"smtpd_relay_restrictions = check_client_access inline:{ {203.0.113.7=OK} }, reject" && pf_start; then
	px_start $P 127.0.0.1:$PF_PORT -o proxy_inbound_proxy_networks=127.0.0.1 -o proxy_backend_pass=xclient ||
		tap_diag "restart failed"
	out=$(px_chat $P "S:PROXY TCP4 203.0.113.7 192.0.2.25 40010 25\r\n" "${HELLO[@]}" "${TXN[@]}" "S:QUIT\r\n" A)
	tap_like "Postfix behind: delivered" "$out" $'<- 250 2\\.0\\.0 Ok: queued as'
	pf_wait_delivered 1 20
	tap_like "Postfix behind: XCLIENT named the client from the PROXY header" \
		"$(pf_headers "$(pf_delivered_last)")" 'from client\.example \(unknown \[203\.0\.113\.7\]\)'
else
	tap_ok "Postfix started" false
	pf_diag
fi
tap_is "no sanitizer report in the proxy logs" \
	"$(cat "$PX_DIR/proxy.log" "$PX_DIR/proxy2.log" | grep -c 'AddressSanitizer\|runtime error')" 0

tap_done
