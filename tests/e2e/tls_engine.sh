#!/bin/bash
# tls_engine.sh - the TLS engine on loopback sockets against the real openssl s_client and
# s_server: protocol and cipher policy, RSA/ECDSA selection, SNI, resumption, the client side's
# certificate verification, and key files refused. Ports 14510-14519 (the TLS area's range).
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/postfix.sh"    # port_lock

tool=$top_builddir/tests/helpers/tls_tool
[ -x "$tool" ] || tap_bail "tests/helpers/tls_tool not built"
command -v openssl >/dev/null || tap_skip_all "openssl not installed"
port_lock tls-engine || tap_skip_all "another run of this test held its ports for 600 s"

SRV=127.0.0.1:14510
S_SERVER_PORT=14511
work=$(mktemp -d /tmp/tls_engine.XXXXXX)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT

cp "$top_srcdir"/tests/data/tls/*.pem "$top_srcdir"/tests/data/tls/*.key "$work"/
chmod 600 "$work"/*.key

# wait_port PORT - until something listens (at most 5 s)
wait_port() {
	for _ in $(seq 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

"$tool" server $SRV --smtp -o "tls_cert_file=$work/rsa.pem,$work/ecdsa.pem" \
	-o "tls_key_file=$work/rsa.key,$work/ecdsa.key" \
	-o "tls_sni_map=other.test=$work/other.pem:$work/other.key" 2>"$work/server.log" &
pids="$pids $!"
wait_port 14510 || { cat "$work/server.log"; tap_bail "engine server did not start"; }

# sc ARGS... - one s_client session that sends QUIT and reads until the server closes; its report
sc() {
	echo QUIT | timeout 10 openssl s_client -connect $SRV -ign_eof -CAfile "$work/ca.pem" "$@" 2>&1
}

out=$(sc -servername mail.test -verify_hostname mail.test)
tap_like "TLS 1.3 by default" "$out" "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384"
tap_like "chain verifies against the test CA, name mail.test" "$out" "Verify return code: 0 \(ok\)"
tap_like "no compression" "$out" "Compression: NONE"
tap_like "SMTP greeting inside TLS" "$out" "220 tls-tool ESMTP"

for v in tls1 tls1_1; do
	out=$(echo QUIT | timeout 10 openssl s_client -connect $SRV -$v -cipher 'DEFAULT@SECLEVEL=0' 2>&1)
	tap_like "-$v refused with a protocol_version alert" "$out" "alert protocol version"
done
sleep 0.2
tap_is "server logged both as unsupported protocol" \
	"$(grep -c '^fail handshake failed: unsupported protocol$' "$work/server.log")" 2

for c in AES128-SHA AES256-GCM-SHA384 DHE-RSA-AES128-GCM-SHA256 ECDHE-RSA-AES128-SHA; do
	out=$(echo QUIT | timeout 10 openssl s_client -connect $SRV -tls1_2 -cipher "$c@SECLEVEL=0" 2>&1)
	tap_like "TLS 1.2 client offering only $c refused" "$out" "alert handshake failure"
done
sleep 0.2
tap_is "server logged each as no shared cipher" "$(grep -c '^fail handshake failed: no shared cipher$' "$work/server.log")" 4

out=$(sc -tls1_2 -sigalgs 'RSA+SHA256:RSA-PSS+SHA256')
tap_like "RSA-only TLS 1.2 client gets the RSA-2048 certificate" "$out" "Server public key is 2048 bit"
tap_like "... with ECDHE-RSA" "$out" "Cipher is ECDHE-RSA-AES256-GCM-SHA384"
out=$(sc -tls1_3 -sigalgs 'ECDSA+SHA256')
tap_like "ECDSA-only TLS 1.3 client gets the P-256 certificate" "$out" "Server public key is 256 bit"
out=$(sc -tls1_3 -sigalgs 'RSA-PSS+SHA256')
tap_like "RSA-PSS-only TLS 1.3 client gets the RSA certificate" "$out" "Server public key is 2048 bit"
out=$(sc -tls1_2 -groups P-256)
tap_like "P-256 key exchange accepted" "$out" "Server Temp Key: ECDH, prime256v1, 256 bits"
out=$(sc -tls1_2 -groups X25519)
tap_like "X25519 key exchange accepted" "$out" "Server Temp Key: X25519, 253 bits"
out=$(sc -tls1_3 -groups ffdhe2048)
tap_like "ffdhe2048 (not in tls_groups) refused" "$out" "alert handshake failure"

out=$(sc -servername other.test)
tap_like "SNI other.test selects its certificate" "$out" "subject=CN = other.test"
out=$(sc -servername unknown.test)
tap_like "unknown SNI gets the default certificate" "$out" "subject=CN = mail.test"

out=$(timeout 20 openssl s_client -connect $SRV -tls1_2 -reconnect </dev/null 2>&1)
tap_is "TLS 1.2 tickets resume (s_client -reconnect: 5 of 5)" "$(grep -c '^Reused, TLSv1.2' <<< "$out")" 5

# The engine as a client, against openssl s_server (-naccept counts the port probe too).
openssl s_server -accept $S_SERVER_PORT -4 -cert "$work/ecdsa.pem" -key "$work/ecdsa.key" -www -naccept 4 \
	>/dev/null 2>&1 &
pids="$pids $!"
wait_port $S_SERVER_PORT || tap_diag "s_server did not start"
ok_cli=( -o tls_backend=required -o "tls_backend_ca_file=$work/ca.pem" )
out=$("$tool" client 127.0.0.1:$S_SERVER_PORT "${ok_cli[@]}" -o tls_backend_verify_name=mail.test \
	--send $'GET / HTTP/1.0\r' 2>&1)
tap_like "engine client: TLS 1.3 with s_server, name verified" "$out" "^TLSv1.3 TLS_AES_256_GCM_SHA384 256"
tap_like "engine client: data through" "$out" "HTTP/1.0 200 ok"
out=$("$tool" client 127.0.0.1:$S_SERVER_PORT "${ok_cli[@]}" -o tls_backend_verify_name=wrong.test 2>&1)
tap_is "engine client: wrong name refused" "$out" "handshake: handshake failed: certificate verification: hostname mismatch"
out=$("$tool" client 127.0.0.1:$S_SERVER_PORT -o tls_backend=required -o "tls_backend_ca_file=$work/other.pem" \
	-o tls_backend_verify_name=mail.test 2>&1)
tap_is "engine client: unknown CA refused" "$out" \
	"handshake: handshake failed: certificate verification: unable to get local issuer certificate"

openssl s_server -accept $((S_SERVER_PORT + 1)) -4 -cert "$work/rsa.pem" -key "$work/rsa.key" -www -naccept 2 \
	-tls1_1 -cipher 'DEFAULT@SECLEVEL=0' >/dev/null 2>&1 &
pids="$pids $!"
wait_port $((S_SERVER_PORT + 1)) || tap_diag "s_server -tls1_1 did not start"
out=$("$tool" client 127.0.0.1:$((S_SERVER_PORT + 1)) "${ok_cli[@]}" -o tls_backend_verify_name=mail.test 2>&1)
tap_like "engine client: a TLS 1.1-only server refused" "$out" "^handshake: handshake failed: .*(protocol version|unsupported protocol)"

# Key files: refused when others can read them, with the file named.
chmod 644 "$work/ecdsa.key"
out=$("$tool" server 127.0.0.1:14512 -o "tls_cert_file=$work/ecdsa.pem" -o "tls_key_file=$work/ecdsa.key" 2>&1)
tap_is "world-readable key refused at start" "$out" \
	"tls_key_file $work/ecdsa.key: readable or writable by group or others (mode 0644); refused, chmod 600 it"
chmod 600 "$work/ecdsa.key"
out=$("$tool" server 127.0.0.1:14512 -o "tls_cert_file=$work/rsa.pem" -o "tls_key_file=$work/ecdsa.key" 2>&1)
tap_is "mismatched pair refused at start" "$out" \
	"tls_cert_file $work/rsa.pem and tls_key_file $work/ecdsa.key: the certificate does not match the private key"
tap_done
