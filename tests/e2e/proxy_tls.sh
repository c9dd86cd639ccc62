#!/bin/bash
# proxy_tls.sh - TLS in mxmoat-proxy in front of smtp-sink: STARTTLS and implicit TLS with swaks and
# openssl s_client, the policy (old protocols, non-FS suites, SNI), the STARTTLS injection defence
# (one write of "STARTTLS\r\nEHLO injected\r\n"), proxy_require_tls, tls_starttls_pipelined=close,
# handshake stall and slowloris, and a certificate reload on SIGHUP. Ports 14560-14569.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"

command -v smtp-sink >/dev/null || tap_skip_all "smtp-sink (postfix) not installed"
command -v swaks >/dev/null || tap_skip_all "swaks not installed"
command -v openssl >/dev/null || tap_skip_all "openssl not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "smtp-sink -u needs root"
port_lock proxy-tls || tap_skip_all "another run of this test held its ports for 600 s"

P=14560 S=14561 T=14562
trap px_cleanup EXIT
px_init || tap_bail "no temp dir"
cp "$top_srcdir"/tests/data/tls/*.pem "$top_srcdir"/tests/data/tls/*.key "$PX_DIR"/
chmod 600 "$PX_DIR"/*.key
chown nobody "$PX_DIR"/*.key      # readable after the proxy drops to daemon_user, for the reload
chmod 644 "$PX_DIR"/*.pem
conf=$PX_DIR/mxmoat.conf
in_dir() { local out="" f; IFS=, read -ra fs <<< "$1"; for f in "${fs[@]}"; do out="$out${out:+,}$PX_DIR/$f"; done; echo "$out"; }
write_conf() {	# write_conf CERTS KEYS [extra lines]: comma lists of file names in PX_DIR
	{
		echo "tls_cert_file = $(in_dir "$1")"
		echo "tls_key_file = $(in_dir "$2")"
		echo "tls_sni_map = other.test=$PX_DIR/other.pem:$PX_DIR/other.key"
		echo "proxy_listen_tls = 127.0.0.1:$T"
		shift 2
		for l in "$@"; do echo "$l"; done
	} > "$conf"
	chmod 644 "$conf"
}
write_conf rsa.pem,ecdsa.pem rsa.key,ecdsa.key "tls_handshake_timeout = 1s"
px_sink_start $S || tap_bail "smtp-sink did not start"
px_start $P 127.0.0.1:$S -c "$conf" || { cat "$PX_DIR/proxy.log"; tap_bail "proxy did not start"; }
px__wait_port $T || tap_diag "implicit-TLS listener not up"

tc() { "$PX_PY" "$top_srcdir/tests/lib/tls_chat.py" 127.0.0.1 "$@"; }
wait_dumps() {
	local i
	for i in $(seq 1 40); do [ "$(px_dumps)" -ge "$1" ] && return 0; sleep 0.05; done
	return 1
}

out=$(px_chat $P R "S:EHLO client.example\r\n" R "S:QUIT\r\n" A)
tap_like "plaintext EHLO advertises STARTTLS" "$out" $'<- 250-STARTTLS'

# --- delivery ---
out=$(swaks --server 127.0.0.1:$P --tls --from a@example.org --to b@example.net --body "over starttls" 2>&1)
tap_like "swaks --tls: TLS started" "$out" "TLS started with cipher TLSv1.3"
tap_like "swaks --tls: 250 for the message" "$out" $'<~  250 2.0.0 Ok'
wait_dumps 1
tap_is "swaks --tls: the sink got it" "$(px_dumps)" 1
out=$(swaks --server 127.0.0.1:$T --tls-on-connect --from a@example.org --to b@example.net --body "implicit" 2>&1)
tap_like "swaks --tls-on-connect: 250 for the message" "$out" $'<~  250 2.0.0 Ok'
wait_dumps 2
tap_is "swaks --tls-on-connect: the sink got it" "$(px_dumps)" 2
out=$(printf 'EHLO x\r\nQUIT\r\n' | timeout 10 openssl s_client -connect 127.0.0.1:$P -starttls smtp -ign_eof 2>&1)
tap_like "openssl s_client -starttls smtp: TLS 1.3" "$out" "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384"
tap_like "openssl s_client -starttls smtp: EHLO answered inside TLS" "$out" "250 ENHANCEDSTATUSCODES"
tap_is "the EHLO inside TLS does not offer STARTTLS again" "$(grep -c '250-STARTTLS' <<< "$out")" 0
grep -q 'tls protocol=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256' "$PX_DIR/proxy.log"
tap_ok "the proxy logs the TLS facts" test $? = 0

# --- policy on the implicit-TLS port ---
out=$(echo QUIT | timeout 10 openssl s_client -connect 127.0.0.1:$T -tls1_1 -cipher 'DEFAULT@SECLEVEL=0' 2>&1)
tap_like "TLS 1.1 refused" "$out" "alert protocol version"
out=$(echo QUIT | timeout 10 openssl s_client -connect 127.0.0.1:$T -tls1_2 -cipher 'AES128-SHA@SECLEVEL=0' 2>&1)
tap_like "AES128-SHA (no forward secrecy) refused" "$out" "alert handshake failure"
out=$(echo QUIT | timeout 10 openssl s_client -connect 127.0.0.1:$T -servername other.test -ign_eof 2>&1)
tap_like "SNI other.test gets its certificate" "$out" "subject=CN = other.test"
out=$(echo QUIT | timeout 10 openssl s_client -connect 127.0.0.1:$T -tls1_2 -sigalgs RSA+SHA256 -ign_eof 2>&1)
tap_like "RSA-only client served (RSA-2048)" "$out" "Server public key is 2048 bit"
out=$(echo QUIT | timeout 10 openssl s_client -connect 127.0.0.1:$T -tls1_3 -sigalgs ECDSA+SHA256 -ign_eof 2>&1)
tap_like "ECDSA-only client served (P-256)" "$out" "Server public key is 256 bit"

# --- STARTTLS injection: plaintext pipelined after STARTTLS never runs ---
out=$(tc $P R "S:EHLO client.example\r\n" R "S:STARTTLS\r\nEHLO injected\r\n" R T "S:NOOP\r\n" R \
	"S:MAIL FROM:<a@example.org>\r\n" R "S:EHLO client.example\r\n" R "S:STARTTLS\r\n" R "S:QUIT\r\n" A)
tap_like "injection: 220 to STARTTLS, then TLS" "$out" $'<- 220 2.0.0 Ready to start TLS\nTLS TLSv1.3'
tap_like "injection: the first reply inside TLS is NOOP's, the injected EHLO was never answered" "$out" \
	$'TLS TLSv1.3 [A-Z0-9_]+\n<- 250 2.0.0 Ok\n<- 503 5.5.1 Send EHLO or HELO first'
tap_like "injection: STARTTLS inside TLS is 503" "$out" $'<- 250 ENHANCEDSTATUSCODES\n<- 503 5.5.1 TLS already active'
tap_is "injection: no PLAINTEXT-AFTER-220" "$(grep -c PLAINTEXT-AFTER <<< "$out")" 0
grep -q 'starttls pipelined=15 action=discard' "$PX_DIR/proxy.log"
tap_ok "injection: the discarded bytes are logged" test $? = 0

# --- handshake stall and slowloris hit tls_handshake_timeout (1 s) ---
# The stall is timed by the client from its connection to the proxy's close (not from the start of
# the interpreter, which a loaded machine delays by seconds); the log names the timer that fired.
out=$("$PX_PY" - "$T" <<-'EOF'
	import socket, sys, time
	s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
	t0 = time.monotonic()
	try:
	    print("EOF" if s.recv(100) == b"" else "DATA")
	except Exception as e:
	    print(type(e).__name__)
	print("ms=%d" % ((time.monotonic() - t0) * 1000))
	EOF
)
ms=$(sed -n 's/^ms=//p' <<< "$out")
out=$(sed '/^ms=/d' <<< "$out")
tap_is "handshake stall: closed by the proxy" "$out" "EOF"
# 900: libuv's millisecond clock and the client's own may disagree by a few ms; 10 s: a loaded machine
stalled() { test "$ms" -ge 900 -a "$ms" -lt 10000 && grep -q 'tls error=handshake-timeout' "$PX_DIR/proxy.log"; }
tap_ok "handshake stall: closed by tls_handshake_timeout, after about 1 s ($ms ms)" stalled
out=$("$PX_PY" - "$T" <<-'EOF'
	import socket, sys, time
	s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
	hello = bytes.fromhex("16030100c8010000c40303") + b"\x00" * 40
	t0 = time.time()
	try:
	    for b in hello:
	        s.sendall(bytes([b]))
	        time.sleep(0.2)
	    print("SENT-ALL")
	except Exception:
	    print("CUT %.1f" % (time.time() - t0))
	EOF
)
tap_like "slowloris during the handshake: cut within 2 s" "$out" '^CUT (0\.|1\.|2\.0)'

# --- proxy_require_tls, tls_starttls_pipelined = close ---
px_stop
write_conf rsa.pem,ecdsa.pem rsa.key,ecdsa.key "proxy_require_tls = yes" "tls_starttls_pipelined = close"
px_start $P 127.0.0.1:$S -c "$conf" || tap_diag "restart failed"
out=$(px_chat $P R "S:EHLO client.example\r\n" R "S:MAIL FROM:<a@example.org>\r\n" R "S:QUIT\r\n" A)
tap_like "proxy_require_tls: MAIL before STARTTLS is 530 5.7.0" "$out" $'<- 530 5.7.0 Must issue a STARTTLS command first'
out=$(swaks --server 127.0.0.1:$P --tls --from a@example.org --to b@example.net 2>&1)
tap_like "proxy_require_tls: delivery after STARTTLS" "$out" $'<~  250 2.0.0 Ok'
out=$(tc $P R "S:EHLO client.example\r\n" R "S:STARTTLS\r\nEHLO injected\r\n" R A)
tap_like "tls_starttls_pipelined=close: 554 and closed, no TLS" "$out" $'<- 554 5.5.0 Pipelining after STARTTLS; closing\nEOF'

# --- reload: a session open across SIGHUP completes; new sessions get the new certificate ---
px_stop
write_conf rsa.pem,ecdsa.pem rsa.key,ecdsa.key
px_start $P 127.0.0.1:$S -c "$conf" || tap_diag "restart failed"
px__wait_port $T
before=$(px_dumps)
tls_before=$(grep -c 'tls protocol=' "$PX_DIR/proxy.log")
tc $P --sni mail.test R "S:EHLO c.example\r\n" R "S:STARTTLS\r\n" R T "S:EHLO c.example\r\n" R \
	"S:MAIL FROM:<a@example.org>\r\n" R P:1.5 "S:RCPT TO:<b@example.net>\r\n" R "S:DATA\r\n" R \
	"S:Subject: across reload\r\n\r\nbody\r\n.\r\n" R "S:QUIT\r\n" A > "$PX_DIR/across.out" 2>&1 &
across=$!
# the HUP comes once that session is inside TLS (it then pauses 1.5 s after MAIL)
px_wait_log "tls protocol=" $((tls_before + 1)) || tap_diag "the session across the reload did not start TLS"
write_conf other.pem other.key
kill -HUP "$PX_PID"
wait $across
tap_like "the session open across SIGHUP delivers" "$(cat "$PX_DIR/across.out")" $'<- 250 2.0.0 Ok\n<- 221'
out=$(echo QUIT | timeout 10 openssl s_client -connect 127.0.0.1:$T -ign_eof 2>&1)
tap_like "a new session after SIGHUP gets the new certificate" "$out" "subject=CN = other.test"
write_conf rsa.pem ecdsa.key
kill -HUP "$PX_PID"
px_wait_log "reload tls=kept"
tap_like "a bad pair on reload is refused with the reason" "$(cat "$PX_DIR/proxy.log")" \
	"reload tls=kept error=tls_cert_file $PX_DIR/rsa.pem and tls_key_file $PX_DIR/ecdsa.key: the certificate does not match the private key"
out=$(echo QUIT | timeout 10 openssl s_client -connect 127.0.0.1:$T -ign_eof 2>&1)
tap_like "... and the previous certificate is kept" "$out" "subject=CN = other.test"
tap_done
