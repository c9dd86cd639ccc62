#!/bin/bash
# sender_login_daemons.sh - sender_login_map through both daemons in front of or behind a real
# Postfix whose SASL is the Dovecot fixture, with a signing table for a.test and b.test: alice
# (bound to a.test) sending as alice@a.test is relayed with a DKIM-Signature of d=a.test; as
# bob@b.test she gets 553 5.7.1 at MAIL and nothing is relayed or signed; with MAIL FROM
# alice@a.test but a header From bob@b.test she gets 553 5.7.1 at the end of DATA, nothing
# relayed or signed; bob sending as bob@b.test is signed d=b.test; alice sending as alice@c.test
# (her domain too, but its signing table row signs with d=b.test, bob's) is relayed unsigned. First mxmoat-proxy on a
# submission listener (AUTH relayed to Postfix), then mxmoat-milter behind the same Postfix (the
# login from {auth_authen}). A bad map line stops start-up with "file:line".
# Ports: 19500 (Postfix), 19501 (sink), 19502 (plain listener), 19503 (submission), 19504 (milter).
top_srcdir=$(cd "${top_srcdir:-.}" && pwd)
top_builddir=$(cd "${top_builddir:-.}" && pwd)
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/postfix.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/milter.sh"
. "$top_srcdir/tests/lib/dovecot.sh"

[ "$MXMOAT_QUICK" = 1 ] && tap_skip_all "MXMOAT_QUICK"
dovecot_pf_require
swaks --support 2>&1 | grep -q '^=== TLS supported' || tap_skip_all "swaks without TLS"
port_lock sender-login-daemons || tap_skip_all "another run of this test held its ports for 600 s"

PF_PORT=19500 PF_SINK_PORT=19501 PLAIN=19502 SUB=19503
cleanup() {
	milter_stop
	dovecot_stop
	px_cleanup
	pf_stop
}
trap cleanup EXIT
px_init || tap_bail "no temp dir"
MILTER_DIR=$PX_DIR

pw_a='al1ce-Pw+7' pw_b='b0b-Pw+9'
keygen=$top_builddir/tools/mxmoat-keygen
(cd "$PX_DIR" && "$keygen" -o a.key sa a.test >a.out && "$keygen" -o b.key sb b.test >b.out &&
	chown nobody a.key b.key && { tail -n 1 a.out; tail -n 1 b.out; } >signing.table &&
	echo 'c.test sb rsa-sha256 b.key d=b.test' >>signing.table &&
	printf '# who may send as whom\nalice a.test c.test\nbob  bob@b.test\n' >logins.map) ||
	tap_bail "mxmoat-keygen failed"
chmod 644 "$PX_DIR/signing.table" "$PX_DIR/logins.map"
conf=$PX_DIR/mxmoat.conf
printf 'dkim_signing_table = signing.table\nsender_login_map = logins.map\nauth_inbound = no\n' >"$conf"

# a map with a bad line: neither daemon starts, and both say where
printf 'alice a.test\nbob b..test\n' >"$PX_DIR/bad.map"
for d in proxy/mxmoat-proxy milter/mxmoat-milter; do
	out=$("$top_builddir/$d" -c "$conf" -o "sender_login_map=$PX_DIR/bad.map" -n 2>&1)
	tap_like "$(basename $d): a bad map line is refused at load with file:line" "$out" \
		"sender_login_map: $PX_DIR/bad\\.map:2: 'b\\.\\.test' is neither a domain nor an address local@domain"
done

# send VIA USER PASSWORD FROM HEADER_FROM -> swaks output
send() {
	local via=$1 user=$2 pw=$3 from=$4 hfrom=$5 opts=(--tls)
	[ "$via" = milter ] && opts=()
	swaks --server "127.0.0.1:$([ "$via" = milter ] && echo $PF_PORT || echo $SUB)" "${opts[@]}" \
		--auth PLAIN --auth-user "$user" --auth-password "$pw" --from "$from" --to r@example.net \
		--header "From: <$hfrom>" --header "Subject: as $hfrom" --body "sender binding" --timeout 20 2>&1
}
signed_by() { pf_headers "$(pf_delivered_last)" | grep -o '^DKIM-Signature:.*' | grep -o 'd=[a-z.]*' | tr '\n' ' '; }

scenario() {	# scenario VIA MARK: the five cases; MARK is the reply prefix of a refusal
	local via=$1 n0 out
	n0=$(pf_delivered_count)
	out=$(send "$via" alice "$pw_a" alice@a.test alice@a.test)
	tap_like "$via: alice as alice@a.test: queued" "$out" '250 2\.0\.0 Ok: queued as'
	tap_ok "$via: ... relayed" pf_wait_delivered $((n0 + 1)) 20
	tap_like "$via: ... signed d=a.test" "$(signed_by)" '^d=a\.test '
	out=$(send "$via" alice "$pw_a" info@a.test info@a.test)
	tap_like "$via: alice as info@a.test (her domain): queued" "$out" '250 2\.0\.0 Ok: queued as'
	out=$(send "$via" alice "$pw_a" bob@b.test bob@b.test)
	tap_like "$via: alice as bob@b.test: 553 5.7.1 at MAIL" "$out" \
		$'MAIL FROM:<bob@b\\.test>\n<~?\\*+ 553 5\\.7\\.1 Sender address not owned by the authenticated user'
	out=$(send "$via" alice "$pw_a" alice@a.test bob@b.test)
	tap_like "$via: alice, MAIL FROM alice@a.test, From bob@b.test: 553 5.7.1 at end of DATA" "$out" \
		'\*+ 553 5\.7\.1 From header address not owned by the authenticated user'
	out=$(send "$via" bob "$pw_b" bob@b.test bob@b.test)
	tap_like "$via: bob as bob@b.test: queued" "$out" '250 2\.0\.0 Ok: queued as'
	tap_ok "$via: ... relayed" pf_wait_delivered $((n0 + 3)) 20
	tap_like "$via: ... signed d=b.test" "$(signed_by)" '^d=b\.test '
	sleep 1
	tap_is "$via: only the three allowed messages were relayed" "$(pf_delivered_count)" $((n0 + 3))
	tap_is "$via: and no message from bob@b.test by alice was signed (none relayed)" \
		"$(for f in $(pf_delivered_files); do pf_headers "$f"; done | grep -c '^Subject: as bob@b.test')" 1
	# the signer signs only with a d= of the login's domains: c.test's row signs d=b.test
	out=$(send "$via" alice "$pw_a" alice@c.test alice@c.test)
	tap_like "$via: alice as alice@c.test (her domain, row d=b.test): queued" "$out" '250 2\.0\.0 Ok: queued as'
	tap_ok "$via: ... relayed" pf_wait_delivered $((n0 + 4)) 20
	tap_like "$via: ... as alice@c.test" "$(pf_headers "$(pf_delivered_last)")" 'Subject: as alice@c\.test'
	tap_is "$via: ... and not signed (d=b.test is not hers)" "$(signed_by)" ""
}

# ---- mxmoat-proxy: submission listener, AUTH relayed to Postfix ----
dovecot_pf_start "$PX_DIR/dovecot" "alice:$pw_a" "bob:$pw_b"
mkdir -p "$PX_DIR/spool" && chown nobody "$PX_DIR/spool"
px_tls_key
px_start $PLAIN 127.0.0.1:$PF_PORT -c "$conf" -o "tls_cert_file=$PX_DIR/rsa.pem" \
	-o "tls_key_file=$PX_DIR/rsa.key" -o "proxy_submission_listen=127.0.0.1:$SUB" \
	-o proxy_backend_pass=xclient -o "proxy_spool_dir=$PX_DIR/spool" ||
	{ cat "$PX_DIR/proxy.log"; tap_bail "proxy did not start"; }
px__wait_port $SUB || tap_diag "submission listener not up"
scenario proxy
tap_ok "proxy: the unsigned message's log line says why" grep -q \
	"dkim-sign result=no_key .*why=\"no signing table row for c\\.test with a d= of the login's domains\"" "$PX_DIR/proxy.log"
tap_ok "proxy: the refused MAIL is logged with its reason" \
	grep -qE 'reject reason=sender_login_mismatch code=553$' "$PX_DIR/proxy.log"
tap_is "proxy: no login in the log (only addresses)" "$(grep -ciE 'alice[^@]|bob[^@]' "$PX_DIR/proxy.log")" 0
px_stop

# ---- mxmoat-milter behind the same Postfix (the login from {auth_authen}) ----
pf_stop
tap_ok "milter starts" milter_start inet:19504@127.0.0.1 -c "$conf"
mapfile -t snippet < <(milter_pf_snippet 19504)
pf_init "${DOVECOT_PF[@]}" "${snippet[@]}" || tap_bail "pf_init failed"
pf_sink_start && pf_start || { pf_diag; tap_bail "postfix did not start"; }
scenario milter
tap_ok "milter: the unsigned message's log line says why" milter_log_grep \
	"dkim-sign result=no_key .*why=\"no signing table row for c\\.test with a d= of the login's domains\""
milter_stop
tap_ok "milter: no sanitizer report" milter_sanitizer_clean
tap_is "proxy: no sanitizer report" \
	"$(grep -cE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$PX_DIR/proxy.log")" 0
tap_done
