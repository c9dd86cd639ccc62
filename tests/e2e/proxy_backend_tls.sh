#!/bin/bash
# proxy_backend_tls.sh - TLS from mxmoat-proxy to the MTA (tls_backend) and the proxy's Received
# field. A real Postfix with STARTTLS on its smtpd (the test CA's mail.test certificate) and a
# second smtpd without it; a fake backend (python) that injects bytes after its 220 to STARTTLS or
# refuses STARTTLS. Checks: delivery over a verified TLS leg (Postfix logs the TLS session, its
# Received field says ESMTPS, XCLIENT inside TLS kept the real client), the proxy's own Received
# field for a TLS client (with and without a client certificate) and a plaintext one; required +
# no STARTTLS offered, refused, or a certificate that does not verify: 451 4.7.x and nothing
# delivered; the injection refused in both modes; tls_backend = starttls falling back to plaintext
# only when the backend offers no STARTTLS or refuses it, and saying so in the log.
# Ports 14600-14609.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/postfix.sh"

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK: Postfix tests skipped"
[ "$(id -u)" = 0 ] || tap_skip_all "postfix -c needs root"
command -v swaks >/dev/null || tap_skip_all "swaks not installed"
command -v openssl >/dev/null || tap_skip_all "openssl not installed"

P=14600 PF_PORT=14601 PF_PLAIN=14602 FAKE=14603
cleanup() {
	[ -n "${FAKE_PID:-}" ] && kill "$FAKE_PID" 2>/dev/null && wait "$FAKE_PID" 2>/dev/null
	px_cleanup
	pf_stop
}
port_lock proxy-backend-tls || tap_skip_all "another run of this test held its ports for 600 s"
trap cleanup EXIT
px_init || tap_bail "no temp dir"
cp "$top_srcdir"/tests/data/tls/*.pem "$top_srcdir"/tests/data/tls/*.key "$PX_DIR"/
chmod 600 "$PX_DIR"/*.key
chmod 644 "$PX_DIR"/*.pem
pf_init "smtpd_authorized_xclient_hosts = 127.0.0.1" \
	"smtpd_tls_cert_file = $PX_DIR/ecdsa.pem" "smtpd_tls_key_file = $PX_DIR/ecdsa.key" \
	"smtpd_tls_security_level = may" "smtpd_tls_received_header = yes" "smtpd_tls_loglevel = 1" \
	|| tap_bail "pf_init failed"
# STARTTLS needs Postfix's tlsmgr; a second smtpd offers no STARTTLS at all
cat >> "$PF_CONF/master.cf" <<EOF
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
127.0.0.1:$PF_PLAIN inet n - n - - smtpd -o smtpd_tls_security_level=none
EOF
pf_start || tap_bail "postfix did not start"

conf=$PX_DIR/mxmoat.conf
start_proxy() {	# start_proxy BACKEND [key=value ...]: a fresh proxy; the pairs override the file
	local o args=()
	px_stop
	cat > "$conf" <<-EOF
	authserv_id = gw.mxmoat.test
	tls_cert_file = $PX_DIR/ecdsa.pem, $PX_DIR/rsa.pem
	tls_key_file = $PX_DIR/ecdsa.key, $PX_DIR/rsa.key
	tls_backend_ca_file = $PX_DIR/ca.pem
	tls_backend_verify_name = mail.test
	proxy_backend_pass = xclient
	EOF
	for o in "${@:2}"; do args+=(-o "$o"); done
	px_start $P "$1" -c "$conf" "${args[@]}" || { tap_diag "proxy did not start:"; sed 's/^/# /' "$PX_DIR/proxy.log"; }
}
send() {	# send [swaks options]: one message through the proxy, swaks' transcript on stdout
	timeout 30 swaks --server 127.0.0.1:$P --helo client.example --from a@example.org --to b@example.net \
		--header "Subject: $TAG" --body "backend tls test" "$@" 2>&1
}
# delivered TAG - the delivered message with Subject TAG, or nothing
delivered() {
	local f
	for f in $(pf_delivered_files); do
		grep -q "^Subject: $1" "$f" && { echo "$f"; return 0; }
	done
	return 1
}
wait_for() {	# wait_for TAG: bounded wait (60 s) until Postfix delivered the message tagged TAG
	local i
	for i in $(seq 1 300); do delivered "$1" >/dev/null && return 0; sleep 0.2; done
	return 1
}
count_log() { grep -c -E "$1" "$PX_DIR/proxy.log"; }
DATE='[A-Z][a-z]{2}, +[0-9]{1,2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} [-+][0-9]{4} \([A-Z]+\)'

# --- 1. required, verified, a TLS client: delivery over TLS both ways ---
start_proxy 127.0.0.1:$PF_PORT "tls_backend=required"
TAG=tls-client
out=$(send --tls)
tap_like "required: swaks --tls gets Postfix's queue id" "$out" $'<~  250 2\\.0\\.0 Ok: queued as [0-9A-F]+'
wait_for $TAG
f=$(delivered $TAG)
tap_ok "required: Postfix delivered the message" test -n "$f"
hdr=$(pf_headers "$f")
tap_like "Postfix's Received: the real client (XCLIENT inside TLS) over ESMTPS from the proxy" "$hdr" \
	$'Received: from client\\.example \\(unknown \\[127\\.0\\.0\\.1\\]\\)\n\t\\(using TLSv1\\.3 with cipher TLS_AES_256_GCM_SHA384 \\(256/256 bits\\)\n[^\n]*\n\t\\(No client certificate requested\\)\n\tby mx\\.mxmoat\\.test \\(Postfix\\) with ESMTPS id '
tap_ok "Postfix logged a TLS session from the proxy" \
	pf_maillog_grep 'TLS connection established from unknown\[127\.0\.0\.1\]: TLSv1\.3 with cipher TLS_AES_256_GCM_SHA384'
sid=$(sed -n 's/^.*\]: \([0-9A-F]*\) connect client=.*/\1/p' "$PX_DIR/proxy.log" | tail -n 1)
tap_like "the proxy's Received for a TLS client, right below Postfix's" "$hdr" \
	$'\tfor <b@example\\.net>; '"$DATE"$'\nReceived: from client\\.example \\(unknown \\[127\\.0\\.0\\.1\\]\\)\n\t\\(using TLSv1\\.3 with cipher TLS_AES_256_GCM_SHA384 \\(256/256 bits\\)\\)\n\t\\(No client certificate requested\\)\n\tby gw\\.mxmoat\\.test \\(mxmoat\\) with ESMTPS id '"$sid"$';\n\t'"$DATE"$'\n'
tap_like "the proxy logs the backend's TLS session" "$(cat "$PX_DIR/proxy.log")" \
	"$sid backend tls=TLSv1\\.3 cipher=TLS_AES_256_GCM_SHA384 bits=256"
tap_like "the relayed line carries both legs' TLS" "$(cat "$PX_DIR/proxy.log")" \
	"$sid relayed .* backend_code=250 tls=TLSv1\\.3 backend_tls=yes"

TAG=plain-client
out=$(send)
tap_like "required: a plaintext client is relayed over TLS too" "$out" $'<-  250 2\\.0\\.0 Ok: queued as'
wait_for $TAG
hdr=$(pf_headers "$(delivered $TAG)")
tap_like "the proxy's Received for a plaintext client: ESMTP, no TLS comment" "$hdr" \
	$'\nReceived: from client\\.example \\(unknown \\[127\\.0\\.0\\.1\\]\\)\n\tby gw\\.mxmoat\\.test \\(mxmoat\\) with ESMTP id [0-9A-F]+;\n\t'"$DATE"$'\nDate: '
tap_like "... while Postfix's says ESMTPS (the proxy's leg to it)" "$hdr" \
	'by mx\.mxmoat\.test \(Postfix\) with ESMTPS id'

# --- 1b. holding mode (outbound, signed): our Received above the core's DKIM-Signature ---
"$top_builddir/tools/mxmoat-keygen" -a ed25519 -o "$PX_DIR/ed.key" s1 example.org | tail -n 1 > "$PX_DIR/table" &&
	chown nobody "$PX_DIR/ed.key" && mkdir -p "$PX_DIR/spool" && chown nobody "$PX_DIR/spool" ||
	tap_diag "signing key setup failed"
start_proxy 127.0.0.1:$PF_PORT "tls_backend=required" "dkim_signing_table=$PX_DIR/table" \
	"internal_networks=127.0.0.0/8" "proxy_spool_dir=$PX_DIR/spool"
TAG=held
out=$(send --tls)
tap_like "holding mode over backend TLS: Postfix's queue id" "$out" $'<~  250 2\\.0\\.0 Ok: queued as'
wait_for $TAG
tap_like "holding mode: the proxy's Received first, then the DKIM-Signature, then the message" \
	"$(pf_headers "$(delivered $TAG)")" \
	$'\nReceived: from client\\.example \\(unknown \\[127\\.0\\.0\\.1\\]\\)\n\t\\(using TLSv1\\.3 with cipher TLS_AES_256_GCM_SHA384 \\(256/256 bits\\)\\)\n\t\\(No client certificate requested\\)\n\tby gw\\.mxmoat\\.test \\(mxmoat\\) with ESMTPS id [0-9A-F]+;\n\t'"$DATE"$'\nDKIM-Signature: v=1; a=ed25519-sha256; [^\n]*d=example\\.org;'
tap_is "holding mode: the message was held and edited" "$(count_log 'hold size=[0-9]+ spooled=no edits=applied')" 1

# --- 2. client certificates in the Received field (tls_request_client_cert) ---
start_proxy 127.0.0.1:$PF_PORT "tls_backend=required" "tls_request_client_cert=yes"
TAG=no-ccert
send --tls >/dev/null
wait_for $TAG
tap_like "requested, none presented: said so" "$(pf_headers "$(delivered $TAG)")" \
	$'\\(256/256 bits\\)\\)\n\t\\(Client did not present a certificate\\)\n\tby gw\\.mxmoat\\.test \\(mxmoat\\)'
TAG=ccert
send --tls --tls-cert "$PX_DIR/client.pem" --tls-key "$PX_DIR/client.key" >/dev/null
wait_for $TAG
fp=$(openssl x509 -in "$PX_DIR/client.pem" -noout -fingerprint -sha256 | sed 's/^.*=//')
tap_like "presented: its SHA-256 fingerprint" "$(pf_headers "$(delivered $TAG)")" \
	$'\\(256/256 bits\\)\\)\n\t\\(Client certificate SHA-256 fingerprint '"$fp"$'\\)\n\tby gw\\.mxmoat\\.test \\(mxmoat\\)'

# --- 3. no STARTTLS offered ---
n0=$(pf_delivered_count)
start_proxy 127.0.0.1:$PF_PLAIN "tls_backend=required"
TAG=not-offered
out=$(send)
tap_like "required, backend without STARTTLS: 451 4.7.4 to MAIL" "$out" \
	$'<[~*]\\* 451 4\\.7\\.4 TLS to the backend not available, try again later'
tap_is "... logged" "$(count_log 'backend state=setup error=tls-not-offered')" 1
start_proxy 127.0.0.1:$PF_PLAIN "tls_backend=starttls"
TAG=may-plain
out=$(send --tls)
tap_like "starttls, backend without STARTTLS: delivered in plaintext" "$out" $'<~  250 2\\.0\\.0 Ok: queued as'
tap_is "... and the log says so" "$(count_log 'backend tls=none reason=not-offered')" 1
wait_for $TAG
tap_like "... Postfix's Received says ESMTP" "$(pf_headers "$(delivered $TAG)")" \
	'by mx\.mxmoat\.test \(Postfix\) with ESMTP id'
tap_is "only the starttls-mode message was delivered" "$(pf_delivered_count)" $((n0 + 1))

# --- 4. a certificate that does not verify: never a plaintext retry ---
n0=$(pf_delivered_count) q0=$(grep -c ': client=' "$PF_LOG")
for mode in required starttls; do
	start_proxy 127.0.0.1:$PF_PORT "tls_backend=$mode" "tls_backend_verify_name=other.test"
	TAG=bad-name-$mode
	out=$(send --tls)
	tap_like "$mode, certificate for another name: 451 4.7.5" "$out" \
		$'<[~*]\\* 451 4\\.7\\.5 TLS to the backend failed, try again later'
	tap_like "$mode: the reason is logged" "$(cat "$PX_DIR/proxy.log")" \
		'backend tls=failed error=handshake failed: certificate verification: hostname mismatch'
done
start_proxy 127.0.0.1:$PF_PORT "tls_backend=required" "tls_backend_ca_file=$PX_DIR/other.pem"
TAG=bad-ca
out=$(send)
tap_like "required, certificate from an unknown CA: 451 4.7.5" "$out" \
	$'<[~*]\\* 451 4\\.7\\.5 TLS to the backend failed'
# every smtpd session the proxy opened has ended and the queue is empty: nothing more can arrive
smtpd_idle() { [ "$(grep -c 'smtpd\[[0-9]*\]: disconnect from' "$PF_LOG")" -ge "$(grep -c 'smtpd\[[0-9]*\]: connect from' "$PF_LOG")" ]; }
for i in $(seq 1 300); do smtpd_idle && break; sleep 0.1; done
pf_queue_empty_wait 30 || tap_diag "Postfix's queue did not empty"
tap_is "nothing was delivered" "$(pf_delivered_count)" "$n0"
tap_is "no transaction reached Postfix" "$(grep -c ': client=' "$PF_LOG")" "$q0"

# --- 5. a fake backend: bytes after the 220 to STARTTLS, or STARTTLS refused ---
fake() {	# fake MODE: serve one connection, print what it received after STARTTLS
	"$PX_PY" - "$FAKE" "$1" > "$PX_DIR/fake.out" 2>&1 <<-'EOF' &
	import socket, sys
	port, mode = int(sys.argv[1]), sys.argv[2]
	ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	ls.bind(("127.0.0.1", port)); ls.listen(1); ls.settimeout(60)
	print("listening", flush=True)
	c, _ = ls.accept(); c.settimeout(30)
	f = c.makefile("rb")
	c.sendall(b"220 fake.test ESMTP\r\n")
	f.readline()
	c.sendall(b"250-fake.test\r\n250-XCLIENT ADDR NAME HELO PROTO PORT\r\n250 STARTTLS\r\n")
	print("got", f.readline().strip().decode())
	if mode == "inject":      # one write: the 220 and a reply meant to be taken from inside TLS
	    c.sendall(b"220 go ahead\r\n250 injected\r\n")
	elif mode == "late":      # the injected reply in its own segment, once the ClientHello is in
	    c.sendall(b"220 go ahead\r\n")
	    first = c.recv(4096)
	    c.sendall(b"250 injected\r\n")
	else:                     # refuse: the proxy goes on in plaintext only when tls_backend = starttls
	    c.sendall(b"454 4.7.0 TLS not available\r\n")
	    while True:
	        l = f.readline()
	        if not l: break
	        print("got", l.strip().decode())
	        if l.startswith(b"XCLIENT"): c.sendall(b"220 fake.test ESMTP\r\n")
	        elif l.startswith(b"EHLO"): c.sendall(b"250 fake.test\r\n")
	        elif l.startswith(b"MAIL"): c.sendall(b"451 4.3.0 fake stops here\r\n")
	        elif l.startswith(b"QUIT"): c.sendall(b"221 bye\r\n"); break
	    sys.exit(0)
	rest = first if mode == "late" else b""
	try:
	    while True:
	        d = c.recv(4096)
	        if not d: break
	        rest += d
	except socket.timeout:
	    pass
	print("after", "clienthello" if rest[:1] == b"\x16" else repr(rest[:20]), len(rest))
	EOF
	FAKE_PID=$!
	local i       # not px__wait_port: its probe would be the one connection served
	for i in $(seq 1 600); do grep -q listening "$PX_DIR/fake.out" && break; sleep 0.05; done
}
via_fake() {	# via_fake FAKE_MODE TLS_BACKEND: one message through the proxy to the fake; swaks in $out
	start_proxy 127.0.0.1:$FAKE "tls_backend=$2"
	fake "$1"
	out=$(send)
	wait "$FAKE_PID"
	FAKE_PID=
}
k=0
for mode in required starttls; do
	k=$((k + 1))
	via_fake inject $mode
	tap_like "$mode, bytes after the backend's 220 to STARTTLS: 451 4.7.5" "$out" \
		$'<[~*]\\* 451 4\\.7\\.5 TLS to the backend failed'
	tap_is "$mode: refused before any handshake (no ClientHello sent)" "$(tail -n 1 "$PX_DIR/fake.out")" "after b'' 0"
	tap_is "$mode: logged with the count" "$(count_log 'backend error=starttls-injection bytes=14')" $k
done
via_fake late required
tap_like "injected bytes in a later segment go to the TLS engine, never to the session: 451 4.7.5" "$out" \
	$'<[~*]\\* 451 4\\.7\\.5 TLS to the backend failed'
tap_is "... after a ClientHello" "$(tail -n 1 "$PX_DIR/fake.out" | cut -d' ' -f1-2)" "after clienthello"
via_fake refuse required
tap_like "required, STARTTLS refused (454): 451 4.7.4" "$out" $'<[~*]\\* 451 4\\.7\\.4 TLS to the backend not available'
via_fake refuse starttls
tap_like "starttls, STARTTLS refused: plaintext, the backend's own MAIL reply reaches the client" "$out" \
	$'<\\*\\* 451 4\\.3\\.0 fake stops here'
tap_like "... XCLIENT and MAIL went in plaintext after the refusal" "$(cat "$PX_DIR/fake.out")" \
	$'got STARTTLS\ngot XCLIENT ADDR=127\\.0\\.0\\.1 .*\ngot EHLO client\\.example\ngot MAIL FROM:<a@example\\.org>'
tap_is "... and the log says so" "$(count_log 'backend tls=none reason=refused code=454')" 1
tap_done
