#!/bin/bash
# proxy_backend_connect.sh - proxy_backend_connect = accept (the backend is connected, greeted and
# EHLOed when the client is accepted) and SMTPUTF8 offered only when that backend offers it: with
# smtp-sink (which never offers it) and Postfix (smtputf8_enable yes/no) behind, a MAIL with the
# SMTPUTF8 parameter is relayed only when offered, else 555 5.5.4; with TLS to the backend
# (tls_backend = required) the client's EHLO waits through STARTTLS and the handshake too.
# Ports 12720-12729.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/postfix.sh"

command -v smtp-sink >/dev/null || tap_skip_all "smtp-sink (postfix) not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "smtp-sink -u needs root"

P=12720 S=12721 DOWN=12722 PF_PORT=12723
port_lock proxy-backend-connect || tap_skip_all "another run of this test held its ports for 600 s"
cleanup() { px_cleanup; pf_stop; }
trap cleanup EXIT
px_init || tap_bail "no temp dir"
px_sink_start $S || tap_bail "smtp-sink did not start"

UTF8_TXN=("S:MAIL FROM:<j\xc3\xb6rg@example.org> SMTPUTF8\r\n" R "S:RCPT TO:<b@example.net>\r\n" R "S:DATA\r\n" R
	"S:Subject: utf8\r\n\r\nbody\r\n.\r\n" R)

# wait_dumps N - bounded wait until the sink has N messages
wait_dumps() {
	local i
	for i in $(seq 1 40); do [ "$(px_dumps)" -ge "$1" ] && return 0; sleep 0.05; done
	return 1
}

# --- smtp-sink behind, connected at accept ---
px_start $P 127.0.0.1:$S -o proxy_backend_connect=accept || { cat "$PX_DIR/proxy.log"; tap_bail "proxy did not start"; }
# px_start's probe connection is a session too: let its backend leg finish first
ehlos() { grep -c 'smtp-sink: EHLO' "$PX_DIR/sink.log"; }
for i in $(seq 1 20); do n=$(ehlos); sleep 0.3; [ "$(ehlos)" = "$n" ] && break; done
px_chat $P R P:0.5 "S:QUIT\r\n" A >/dev/null
tap_is "accept: the backend was connected and EHLOed before the client said anything" "$(( $(ehlos) - n ))" 1
out=$(px_chat $P R "S:EHLO client.example\r\n" R "S:MAIL FROM:<a@example.org> SMTPUTF8\r\n" R "S:QUIT\r\n" A)
tap_like "accept, backend without SMTPUTF8 (smtp-sink, which offers DSN): SMTPUTF8 not offered, DSN offered" \
	"$out" $'<- 250-8BITMIME\n<- 250-DSN\n<- 250 ENHANCEDSTATUSCODES'
tap_like "... and MAIL with SMTPUTF8 gets 555 5.5.4" "$out" $'<- 555 5\\.5\\.4'
tap_is "... which the backend never saw" "$(grep -c 'SMTPUTF8' "$PX_DIR/sink.log")" 0
before=$(px_dumps)
conns=$(grep -c 'smtp-sink: connect' "$PX_DIR/sink.log")
out=$(px_chat $P R "S:EHLO client.example\r\n" R "S:MAIL FROM:<a@example.org>\r\n" R "S:RCPT TO:<b@example.net>\r\n" R \
	"S:DATA\r\n" R "S:Subject: t\r\n\r\nbody\r\n.\r\n" R "S:MAIL FROM:<a@example.org>\r\n" R "S:RSET\r\n" R "S:QUIT\r\n" A)
tap_like "accept: a message through the early connection, then another MAIL on it" "$out" \
	$'<- 250 2\\.0\\.0 Ok[^\n]*\n<- 250 2\\.1\\.0 Ok\n<- 250 2\\.0\\.0 Ok\n<- 221'
wait_dumps $((before + 1))
tap_is "... the sink got the message" "$(( $(px_dumps) - before ))" 1
tap_is "... over the one backend connection of the session" \
	"$(( $(grep -c 'smtp-sink: connect' "$PX_DIR/sink.log") - conns ))" 1
out=$(px_chat $P R "S:HELO client.example\r\n" R "S:MAIL FROM:<a@example.org>\r\n" R "S:QUIT\r\n" A)
tap_like "accept, HELO: answered at once, MAIL waits for the early connection" "$out" $'<- 250 [^\n]*\n<- 250 2\\.1\\.0 Ok\n<- 221'
px_stop

px_start $P 127.0.0.1:$DOWN -o proxy_backend_connect=accept || tap_diag "restart failed"
out=$(px_chat $P R "S:EHLO client.example\r\n" R "S:MAIL FROM:<a@example.org>\r\n" R "S:QUIT\r\n" A)
tap_like "accept, backend down: EHLO still answered, MAIL 451 4.4.1" "$out" \
	$'<- 250 ENHANCEDSTATUSCODES\n<- 451 4\\.4\\.1[^\n]*\n<- 221'
px_stop

# --- Postfix behind: SMTPUTF8 offered when its EHLO offers it ---
if [ "${MXMOAT_QUICK:-}" = 1 ]; then
	tap_diag "MXMOAT_QUICK: Postfix part skipped"
	tap_done
	exit
fi
cp "$top_srcdir"/tests/data/tls/ecdsa.pem "$top_srcdir"/tests/data/tls/ecdsa.key "$top_srcdir"/tests/data/tls/ca.pem "$PX_DIR"/
chmod 600 "$PX_DIR"/ecdsa.key && chmod 644 "$PX_DIR"/*.pem
if ! pf_init "smtpd_authorized_xclient_hosts = 127.0.0.1" "smtputf8_enable = yes" \
	"smtpd_tls_cert_file = $PX_DIR/ecdsa.pem" "smtpd_tls_key_file = $PX_DIR/ecdsa.key" \
	"smtpd_tls_security_level = may" "smtpd_tls_received_header = yes" ||
	! echo "tlsmgr unix - - n 1000? 1 tlsmgr" >>"$PF_CONF/master.cf" || ! pf_start; then
	tap_ok "Postfix started" false
	pf_diag
	tap_done
	exit
fi
px_start $P 127.0.0.1:$PF_PORT -o proxy_backend_connect=accept -o proxy_backend_pass=xclient || tap_diag "restart failed"
out=$(px_chat $P --src 127.0.0.2 R "S:EHLO client.example\r\n" R "${UTF8_TXN[@]}" "S:QUIT\r\n" A)
tap_like "accept, Postfix with smtputf8_enable = yes: SMTPUTF8 offered" "$out" $'<- 250-SMTPUTF8\n'
tap_like "... MAIL with SMTPUTF8 and a UTF-8 sender relayed and delivered" "$out" $'<- 250 2\\.0\\.0 Ok: queued as'
pf_wait_delivered 1 20
tap_like "... Postfix received it as SMTPUTF8 (RFC 6531 3.7.3: with UTF8SMTP)" "$(pf_headers "$(pf_delivered_last)")" 'with UTF8SMTP '
tap_like "... and XCLIENT, sent at MAIL, named the client and its HELO" "$(pf_headers "$(pf_delivered_last)")" \
	'from client\.example \(unknown \[127\.0\.0\.2\]\)'
px_stop

# the same with STARTTLS to Postfix first: the client's EHLO waits through the handshake
px_start $P 127.0.0.1:$PF_PORT -o proxy_backend_connect=accept -o proxy_backend_pass=xclient \
	-o tls_backend=required -o "tls_backend_ca_file=$PX_DIR/ca.pem" -o tls_backend_verify_name=mail.test ||
	tap_diag "restart failed"
before=$(pf_delivered_count)
out=$(px_chat $P --src 127.0.0.2 R "S:EHLO client.example\r\n" R "${UTF8_TXN[@]}" "S:QUIT\r\n" A)
tap_like "accept + tls_backend=required: SMTPUTF8 offered after the backend's TLS EHLO" "$out" $'<- 250-SMTPUTF8\n'
tap_like "... delivered" "$out" $'<- 250 2\\.0\\.0 Ok: queued as'
pf_wait_delivered $((before + 1)) 20
tap_like "... over TLS and as SMTPUTF8 (with UTF8SMTPS)" "$(pf_headers "$(pf_delivered_last)")" 'with UTF8SMTPS '
px_stop

px_start $P 127.0.0.1:$PF_PORT -o proxy_backend_pass=xclient || tap_diag "restart failed"
out=$(px_chat $P R "S:EHLO client.example\r\n" R "S:MAIL FROM:<a@example.org> SMTPUTF8\r\n" R "S:QUIT\r\n" A)
tap_like "mail (the default): the backend is not known at EHLO, SMTPUTF8 not offered, 555 5.5.4" "$out" \
	$'<- 250 ENHANCEDSTATUSCODES\n<- 555 5\\.5\\.4'
px_stop

pf_postconf -e "smtputf8_enable = no" && pf_reload
sleep 1
px_start $P 127.0.0.1:$PF_PORT -o proxy_backend_connect=accept -o proxy_backend_pass=xclient || tap_diag "restart failed"
out=$(px_chat $P R "S:EHLO client.example\r\n" R "${UTF8_TXN[@]}" "S:QUIT\r\n" A)
tap_like "accept, Postfix with smtputf8_enable = no: not offered, 555 5.5.4" "$out" \
	$'<- 250 ENHANCEDSTATUSCODES\n<- 555 5\\.5\\.4'
tap_is "no sanitizer report in the proxy log" "$(grep -c 'AddressSanitizer\|runtime error' "$PX_DIR/proxy.log")" 0
tap_done
