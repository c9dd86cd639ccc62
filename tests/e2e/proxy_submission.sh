#!/bin/bash
# proxy_submission.sh - a submission listener of mxmoat-proxy (proxy_submission_listen) in front
# of a real Postfix whose SASL is a throwaway Dovecot auth service: STARTTLS first, AUTH only inside TLS and
# relayed to Postfix, MAIL only after 235, Postfix knowing the login from the AUTH it ran (it writes
# "Authenticated sender" into its Received header), the message signed in holding mode with
# rsa-sha256 and ed25519-sha256 over what Postfix received (dkimpy verifies, keys from nsd),
# wrong password 535 and nothing delivered, no credential in the proxy's log, and a submission
# listener without TLS refused at start; the same AUTH with the backend connected at accept.
# Ports: 17610 (Postfix), 17611 (sink), 17612 (submission), 17613 (plain listener), 17614 (nsd),
# 17615-17616 (the refused start).
top_srcdir=$(cd "${top_srcdir:-.}" && pwd)
top_builddir=$(cd "${top_builddir:-.}" && pwd)
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/postfix.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/dns.sh"
. "$top_srcdir/tests/lib/dovecot.sh"

[ "$MXMOAT_QUICK" = 1 ] && tap_skip_all "MXMOAT_QUICK"
dovecot_pf_require
/usr/bin/python3 -c 'import dkim, nacl, dns.resolver' 2>/dev/null || tap_skip_all "python3-dkim/python3-nacl missing"
port_lock proxy-submission || tap_skip_all "another run of this test held its ports for 600 s"

PF_PORT=17610 PF_SINK_PORT=17611 SUB=17612 PLAIN=17613
cleanup() {
	[ -n "$PX_KEEP" ] && cp "$PF_LOG" "$PX_DIR/maillog"
	dovecot_stop
	px_cleanup
	pf_stop
	dns_stop
}
trap cleanup EXIT
px_init || tap_bail "no temp dir"

# Postfix asking a throwaway Dovecot auth service (passwd-file) for SASL; the password never
# leaves this test
pw='s3cret-Pw+42'
dovecot_pf_start "$PX_DIR/dovecot" "alice:$pw"

# signing keys for example.org, published by nsd for dkimpy
keygen=$top_builddir/tools/mxmoat-keygen
(cd "$PX_DIR" && "$keygen" -o sub-rsa.key subr example.org >rsa.out && "$keygen" -a ed25519 \
	-o sub-ed.key sube example.org >ed.out && chown nobody sub-rsa.key sub-ed.key &&
	{ tail -n 1 rsa.out; tail -n 1 ed.out; } >signing.table) || tap_bail "mxmoat-keygen failed"
{
	printf '$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns.example.org. hostmaster.example.org. 1 3600 600 86400 300\n'
	printf '@ IN NS ns\nns IN A 127.0.0.1\n'
	grep -h '_domainkey' "$PX_DIR/rsa.out" "$PX_DIR/ed.out"
} >"$PX_DIR/example.org.zone"
dns_start 17614 example.org="$PX_DIR/example.org.zone" || tap_bail "nsd did not start"
verify="/usr/bin/python3 $top_srcdir/tests/helpers/dkim-verify.py --dns 127.0.0.1@17614"
mkdir -p "$PX_DIR/spool" && chown nobody "$PX_DIR/spool"

px_tls_key
conf=$PX_DIR/mxmoat.conf
printf 'tls_cert_file = %s/rsa.pem\ntls_key_file = %s/rsa.key\nproxy_submission_listen = 127.0.0.1:%s\n' \
	"$PX_DIR" "$PX_DIR" "$SUB" >"$conf"
printf 'dkim_signing_table = signing.table\nproxy_spool_dir = %s/spool\n' "$PX_DIR" >>"$conf"
px_start $PLAIN 127.0.0.1:$PF_PORT -c "$conf" -o proxy_backend_pass=xclient -o log_verbose=yes ||
	{ cat "$PX_DIR/proxy.log"; tap_bail "proxy did not start"; }
px__wait_port $SUB || tap_diag "submission listener not up"

tc() { "$PX_PY" "$top_srcdir/tests/lib/tls_chat.py" 127.0.0.1 "$@"; }
sw() {	# sw [swaks options] -> output, through the submission listener
	swaks --server 127.0.0.1:$SUB --from alice@example.org --to b@example.net \
		--header "Subject: submission" --body "via the submission listener" "$@" 2>&1
}

out=$(px_chat $SUB R "S:EHLO client.example\r\n" R "S:AUTH PLAIN AGFsaWNlAHg=\r\n" R \
	"S:MAIL FROM:<alice@example.org>\r\n" R "S:QUIT\r\n" A)
tap_like "plaintext EHLO offers STARTTLS" "$out" $'<- 250-STARTTLS'
tap_is "... and no AUTH before TLS" "$(printf '%s\n' "$out" | grep -c 'AUTH PLAIN')" 0
tap_like "AUTH before STARTTLS refused (530 5.7.0)" "$out" $'<- 530 5.7.0 Must issue a STARTTLS command first'
tap_like "MAIL before STARTTLS and AUTH: 530 5.7.0" "$out" $'<- 530 5.7.0 Authentication required'

out=$(sw --tls --quit-after MAIL)
tap_like "inside TLS, EHLO offers AUTH PLAIN LOGIN" "$out" $'<~  250-AUTH PLAIN LOGIN'
tap_like "MAIL without AUTH inside TLS: 530 5.7.0" "$out" '<~\* +530 5\.7\.0 Authentication required'

out=$(sw --tls --auth PLAIN --auth-user alice --auth-password wrong-password)
tap_like "wrong password: the backend's 535" "$out" '<~\* +535 5\.7\.8'
tap_is "wrong password: no MAIL accepted" "$(printf '%s\n' "$out" | grep -c '250 2.1.0')" 0
sleep 1
tap_is "wrong password: nothing delivered" "$(pf_delivered_count)" 0

out=$(sw --tls --auth PLAIN --auth-user alice --auth-password "$pw")
tap_like "PLAIN: 235 from the proxy" "$out" $'<~  235 2.7.0 Authentication successful'
tap_like "PLAIN: message queued by Postfix" "$out" $'<~  250 2.0.0 Ok: queued as'
tap_ok "PLAIN: delivered" pf_wait_delivered 1 20
tap_like "PLAIN: Postfix knows the login (its own AUTH, relayed)" "$(pf__message "$(pf_delivered_last)")" \
	"\(Authenticated sender: alice\)"
msg=$(pf__message "$(pf_delivered_last)" | sed 's/$/\r/')
tap_is "PLAIN: signed by the proxy with both keys, dkimpy verifies as Postfix relayed it" \
	"$(printf '%s\n' "$msg" | $verify)" "$(printf 's=subr a=rsa-sha256 pass\ns=sube a=ed25519-sha256 pass')"
tap_ok "PLAIN: signing logged as outbound because authenticated" grep -qE \
	'dkim-sign result=signed dir_why="authenticated sender" d=example\.org s=subr a=rsa-sha256, d=example\.org s=sube a=ed25519-sha256' \
	"$PX_DIR/proxy.log"
tap_ok "PLAIN: logged without the login" grep -qE 'auth result=ok mech=PLAIN$' "$PX_DIR/proxy.log"

out=$(sw --tls --auth LOGIN --auth-user alice --auth-password "$pw")
tap_like "LOGIN: 235" "$out" $'<~  235 2.7.0 Authentication successful'
tap_ok "LOGIN: delivered" pf_wait_delivered 2 20

out=$(swaks --server 127.0.0.1:$PLAIN --from alice@example.org --to b@example.net --body "plain listener" 2>&1)
tap_like "plain listener, no AUTH: still relayed" "$out" $'<-  250 2.0.0 Ok: queued as'
tap_ok "plain listener: delivered" pf_wait_delivered 3 20
tap_is "plain listener, no AUTH: inbound, not signed" \
	"$(pf__message "$(pf_delivered_last)" | grep -c '^DKIM-Signature:')" 0
b64=$(printf '\0alice\0%s' "$pw" | base64 -w0)
tap_is "no password (plain or base64) in the proxy log" \
	"$(grep -cF -e "$pw" -e "$b64" "$PX_DIR/proxy.log")" 0
tap_is "wrong password logged as a failure" "$(grep -c 'auth result=fail mech=PLAIN backend_code=535' "$PX_DIR/proxy.log")" 1

# the backend connected at accept (parked, XCLIENT still to send): AUTH takes it from there
px_stop
px_start $PLAIN 127.0.0.1:$PF_PORT -c "$conf" -o proxy_backend_pass=xclient -o log_verbose=yes \
	-o proxy_backend_connect=accept || tap_diag "proxy did not restart"
px__wait_port $SUB || tap_diag "submission listener not up"
out=$(sw --tls --auth LOGIN --auth-user alice --auth-password "$pw")
tap_like "backend connected at accept: AUTH 235" "$out" $'<~  235 2.7.0 Authentication successful'
tap_like "backend connected at accept: queued" "$out" $'<~  250 2.0.0 Ok: queued as'
tap_ok "backend connected at accept: delivered" pf_wait_delivered 4 20

out=$(timeout 10 "$top_builddir/proxy/mxmoat-proxy" -f -o proxy_listen=127.0.0.1:17615 \
	-o proxy_submission_listen=127.0.0.1:17616 -o proxy_backend=127.0.0.1:$PF_PORT 2>&1)
tap_is "submission listener without TLS: refused at start (exit 1)" "$?" 1
tap_like "... saying why" "$out" "proxy_submission_listen needs tls_cert_file"
px_stop
tap_ok "no sanitizer report in the proxy log" bash -c "! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' '$PX_DIR/proxy.log'"
tap_done
