#!/bin/bash
# sign_milter.sh - DKIM signing through mxmoat-milter behind a real Postfix: a message from an
# internal network leaves signed with rsa-sha256 and ed25519-sha256, both verified by dkimpy with
# the keys served by nsd; with no internal network the same client is inbound and nothing is
# signed; a From domain without a row passes unsigned.
# Ports: 17510 (smtpd), 17511 (sink), 17512 (milter), 17513 (nsd).
top_srcdir=$(cd "${top_srcdir:-.}" && pwd)
top_builddir=$(cd "${top_builddir:-.}" && pwd)
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/postfix.sh"
. "$top_srcdir/tests/lib/milter.sh"
. "$top_srcdir/tests/lib/dns.sh"

milter_sign_prepare sign-milter 17513 s2026r s2026e
grep -h '_domainkey' rsa.out ed.out >>zone
dns_start 17513 sign.test=zone || tap_bail "nsd did not start"

printf 'dkim_signing_table = %s/table\ninternal_networks = 127.0.0.0/8\n' "$MILTER_DIR" >out.conf
printf 'dkim_signing_table = %s/table\n' "$MILTER_DIR" >in.conf

milter_pf_start 17510 17511 "smtpd_milters = inet:127.0.0.1:17512" \
	"milter_default_action = tempfail" "milter_protocol = 6"

# send SUBJECT FROM -> swaks output
send() {
	swaks --server 127.0.0.1:17510 --from "$2" --to b@example.net \
		--header "From: Alice <$2>" --header "Subject: $1" \
		--body $'Hello  there\n\nwith  blanks \t\n' 2>&1
}
# last_message_crlf - the last relayed message with CRLF line ends
last_message_crlf() { pf__message "$(pf_delivered_last)" | sed 's/$/\r/'; }

tap_ok "milter starts (outbound config)" milter_start inet:17512@127.0.0.1 -c out.conf
out=$(send "outbound" alice@sign.test)
tap_like "outbound: 250 queued" "$out" "<-  250 2\.0\.0 Ok: queued as"
tap_ok "outbound: relayed" pf_wait_delivered 1 20
msg=$(last_message_crlf)
tap_is "outbound: two DKIM-Signature fields" "$(printf '%s\n' "$msg" | grep -c '^DKIM-Signature:')" 2
tap_is "outbound: dkimpy verifies both as relayed by Postfix" "$(printf '%s\n' "$msg" | $verify)" \
	"$(printf 's=s2026r a=rsa-sha256 pass\ns=s2026e a=ed25519-sha256 pass')"
tap_ok "outbound: signing logged with the trust rule" milter_log_grep \
	'dkim-sign result=signed dir_why="client in internal_networks" d=sign\.test s=s2026r a=rsa-sha256, d=sign\.test s=s2026e a=ed25519-sha256'
tap_ok "outbound: the protocol steps negotiated with Postfix, as for verifying" milter_log_grep \
	" negotiate mta_protocol=0x1fffff protocol=0x1c2280 actions=0x131$"

out=$(send "no row" alice@other.test)
tap_like "no row for the From domain: still delivered" "$out" "<-  250 2\.0\.0 Ok: queued as"
tap_ok "no row: relayed" pf_wait_delivered 2 20
tap_is "no row: not signed" "$(last_message_crlf | grep -c '^DKIM-Signature:')" 0
tap_ok "no row: logged" milter_log_grep 'dkim-sign result=no_key .*no signing table row for other\.test'
milter_stop

tap_ok "milter starts (no internal network: inbound)" milter_start inet:17512@127.0.0.1 -c in.conf
out=$(send "inbound" alice@sign.test)
tap_like "inbound: 250 queued" "$out" "<-  250 2\.0\.0 Ok: queued as"
tap_ok "inbound: relayed" pf_wait_delivered 3 20
tap_is "inbound: not signed" "$(last_message_crlf | grep -c '^DKIM-Signature:')" 0
milter_stop
tap_ok "no sanitizer report in the milter log" milter_sanitizer_clean
tap_done
