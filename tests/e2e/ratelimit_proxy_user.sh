#!/bin/bash
# ratelimit_proxy_user.sh - the per-user limits of mxmoat-proxy on a submission listener, the
# login taken from an AUTH that a real Postfix (SASL by the Dovecot fixture) accepted with 235:
# ratelimit_msg_per_user = 3/60s is one budget for alice whether she connects from 127.0.0.2 or
# 127.0.0.3 (her fourth message gets 451 4.7.1 at RCPT, a fifth too, logged once) while bob is served;
# ratelimit_rcpt_per_user = 4/60s is shared the same way by bob's two addresses (his fifth RCPT
# gets 451 4.7.1, the message goes to the four); the login is not in the proxy's log.
# Clients connect from 127.0.0.2/.3, which Postfix does not authorize for XCLIENT: the AUTH the
# backend ran is all it needs (no XCLIENT LOGIN, which it would refuse).
# Ports 16500 (Postfix), 16501 (sink), 16502 (submission), 16503 (plain listener).
top_srcdir=$(cd "${top_srcdir:-.}" && pwd)
top_builddir=$(cd "${top_builddir:-.}" && pwd)
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/postfix.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/dovecot.sh"

[ "$MXMOAT_QUICK" = 1 ] && tap_skip_all "MXMOAT_QUICK"
dovecot_pf_require
swaks --support 2>&1 | grep -q '^=== TLS supported' || tap_skip_all "swaks without TLS"
port_lock ratelimit-proxy-user || tap_skip_all "another run of this test held its ports for 600 s"

PF_PORT=16500 PF_SINK_PORT=16501 SUB=16502 PLAIN=16503
cleanup() {
	dovecot_stop
	px_cleanup
	pf_stop
}
trap cleanup EXIT
px_init || tap_bail "no temp dir"

pw_a='al1ce-Pw+7' pw_b='b0b-Pw+9'
dovecot_pf_start "$PX_DIR/dovecot" "alice:$pw_a" "bob:$pw_b"

px_tls_key
# per-address and per-sender limits off, loopback not allow-listed: only the per-user ones count
px_start $PLAIN 127.0.0.1:$PF_PORT -o "tls_cert_file=$PX_DIR/rsa.pem" -o "tls_key_file=$PX_DIR/rsa.key" \
	-o "proxy_submission_listen=127.0.0.1:$SUB" -o proxy_backend_pass=xclient \
	-o ratelimit_allow= -o ratelimit_conn_per_ip=1000/60s -o ratelimit_conn_per_net= \
	-o ratelimit_msg_per_user=3/60s -o ratelimit_rcpt_per_user=4/60s ||
	{ cat "$PX_DIR/proxy.log"; tap_bail "proxy did not start"; }
px__wait_port $SUB || tap_diag "submission listener not up"

# send SRC USER PASSWORD FROM TO... - one message through the submission listener from address
# SRC, authenticated as USER.
send() {
	local src=$1 user=$2 pw=$3 from=$4 to
	shift 4
	to=$(IFS=,; echo "$*")
	swaks --server 127.0.0.1:$SUB --local-interface "$src" --tls --auth PLAIN --auth-user "$user" \
		--auth-password "$pw" --from "$from" --to "$to" --body "per-user limit" --timeout 10 2>&1
}
queued=$'<~  250 2\\.0\\.0 Ok: queued as'

# --- messages per user, across addresses ---
tap_like "alice from 127.0.0.2, message 1: queued" "$(send 127.0.0.2 alice "$pw_a" a1@example.org r@example.net)" "$queued"
tap_like "alice from 127.0.0.3, message 2: queued" "$(send 127.0.0.3 alice "$pw_a" a2@example.org r@example.net)" "$queued"
tap_like "alice from 127.0.0.2, message 3: queued" "$(send 127.0.0.2 alice "$pw_a" a3@example.org r@example.net)" "$queued"
out=$(send 127.0.0.3 alice "$pw_a" a4@example.org r@example.net)
tap_like "alice from 127.0.0.3, message 4: authenticated (235)" "$out" $'<~  235 2\\.7\\.0'
tap_like "... but its RCPT gets 451 4.7.1 (one budget for both addresses)" "$out" \
	$'RCPT TO:<r@example.net>\n<~\\* 451 4\\.7\\.1 Too many messages from this account, try again later'
tap_like "bob from 127.0.0.3 meanwhile: queued" "$(send 127.0.0.3 bob "$pw_b" b1@example.org r@example.net)" "$queued"
tap_like "alice from 127.0.0.2, message 5: 451 4.7.1 again" "$(send 127.0.0.2 alice "$pw_a" a5@example.org r@example.net)" \
	$'<~\\* 451 4\\.7\\.1 Too many messages from this account'
tap_ok "Postfix relayed 4 messages" pf_wait_delivered 4 20
sleep 1
tap_is "... not 5 or 6" "$(pf_delivered_count)" 4

# --- recipients per user, across addresses (bob has used one) ---
out=$(send 127.0.0.2 bob "$pw_b" b2@example.org r1@example.net r2@example.net)
tap_like "bob from 127.0.0.2, two recipients: queued" "$out" "$queued"
out=$(send 127.0.0.3 bob "$pw_b" b3@example.org r3@example.net r4@example.net r5@example.net)
tap_is "bob from 127.0.0.3: one RCPT of three accepted" "$(grep -c '<~  250 2.1.5' <<< "$out")" 1
tap_like "... the next gets 451 4.7.1" "$out" \
	$'RCPT TO:<r4@example.net>\n<~\\* 451 4\\.7\\.1 Too many recipients from this account, try again later'
tap_like "... and the message is queued for the one" "$out" "$queued"
tap_ok "Postfix relayed 6 messages" pf_wait_delivered 6 20
tap_is "the last went to r3 only" "$(pf_envelope "$(pf_delivered_last)" | grep -o 'r[0-9]@example.net' | sort -u | tr '\n' ' ')" \
	"r3@example.net "

# --- the log: one line per refused key, and no login in it ---
tap_is "alice's refusals logged once" "$(grep -c 'limit=ratelimit_msg_per_user key="musr:#[0-9a-f]*-5" action=refuse' "$PX_DIR/proxy.log")" 1
tap_is "bob's refusals logged once" "$(grep -c 'limit=ratelimit_rcpt_per_user key="rusr:#[0-9a-f]*-3" action=refuse' "$PX_DIR/proxy.log")" 1
tap_is "neither login in the proxy log" "$(grep -cE 'alice|bob' "$PX_DIR/proxy.log")" 0
px_stop
tap_ok "no sanitizer report in the proxy log" bash -c "! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' '$PX_DIR/proxy.log'"
tap_done
