#!/bin/bash
# sign_reload.sh - DKIM keys reloaded on SIGHUP by mxmoat-milter behind a real Postfix. The zone
# (nsd) publishes the NEW rsa-sha256 and ed25519-sha256 keys of the selectors from the start:
# a message signed before the reload fails dkimpy, the key files are replaced, SIGHUP, and the
# next message verifies; then a key file made group-readable is refused on the next SIGHUP
# (logged, naming the file) and the running keys keep signing.
# Ports: 17600 (smtpd), 17601 (sink), 17602 (milter), 17603 (nsd).
top_srcdir=$(cd "${top_srcdir:-.}" && pwd)
top_builddir=$(cd "${top_builddir:-.}" && pwd)
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/postfix.sh"
. "$top_srcdir/tests/lib/milter.sh"
. "$top_srcdir/tests/lib/dns.sh"

# The running keys (rsa.key, ed.key) and their replacements, same selectors.
milter_sign_prepare sign-reload 17603 s1r s1e
"$keygen" -o new-rsa.key s1r sign.test >new-rsa.out
"$keygen" -a ed25519 -o new-ed.key s1e sign.test >new-ed.out
chown nobody new-rsa.key new-ed.key
grep -h '_domainkey' new-rsa.out new-ed.out >>zone
dns_start 17603 sign.test=zone || tap_bail "nsd did not start"
printf 'dkim_signing_table = %s/table\ninternal_networks = 127.0.0.0/8\n' "$MILTER_DIR" >moat.conf

milter_pf_start 17600 17601 "smtpd_milters = inet:127.0.0.1:17602" \
	"milter_default_action = tempfail" "milter_protocol = 6"

# send SUBJECT -> swaks output
send() {
	swaks --server 127.0.0.1:17600 --from alice@sign.test --to b@example.net \
		--header "From: Alice <alice@sign.test>" --header "Subject: $1" \
		--body $'Hello  there\n' 2>&1
}
# verified N -> dkimpy's lines for the Nth relayed message
verified() { pf__message "$(pf_delivered_files | sed -n "${1}p")" | sed 's/$/\r/' | $verify; }
# reloads N -> wait (bounded) until the milter has logged N reload results
reloads() {
	local i
	for i in $(seq 1 100); do
		[ "$(grep -cE 'reload (loaded|refused)' "$MILTER_LOG")" -ge "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
fail2=$(printf 's=s1r a=rsa-sha256 fail\ns=s1e a=ed25519-sha256 fail')
pass2=$(printf 's=s1r a=rsa-sha256 pass\ns=s1e a=ed25519-sha256 pass')

tap_ok "milter starts" milter_start inet:17602@127.0.0.1 -c moat.conf
tap_like "before the reload: 250 queued" "$(send before)" "<-  250 2\.0\.0 Ok: queued as"
tap_ok "before the reload: relayed" pf_wait_delivered 1 20
tap_is "before the reload: signed with the old keys, which DNS no longer publishes" "$(verified 1)" "$fail2"

mv new-rsa.key rsa.key
mv new-ed.key ed.key
kill -HUP "$MILTER_PID"
tap_ok "SIGHUP: configuration and keys reloaded" reloads 1
tap_ok "SIGHUP: logged" milter_log_grep "reload loaded (.*/)?moat\\.conf"
tap_like "after the reload: 250 queued" "$(send after)" "<-  250 2\.0\.0 Ok: queued as"
tap_ok "after the reload: relayed" pf_wait_delivered 2 20
tap_is "after the reload: dkimpy verifies both with the new keys" "$(verified 2)" "$pass2"

chmod 640 rsa.key
kill -HUP "$MILTER_PID"
tap_ok "SIGHUP with a group-readable key: answered" reloads 2
tap_ok "bad key on reload: refused, logged with the file, running keys kept" milter_log_grep \
	"reload refused: .*$MILTER_DIR/rsa\.key: key file is readable or writable by its group \(mode 0640\).*keeping the running configuration"
tap_like "bad key on reload: still 250" "$(send kept)" "<-  250 2\.0\.0 Ok: queued as"
tap_ok "bad key on reload: relayed" pf_wait_delivered 3 20
tap_is "bad key on reload: still signed with the loaded keys, dkimpy verifies" "$(verified 3)" "$pass2"
milter_stop
tap_is "milter exits 0" "$MILTER_RC" 0
tap_ok "no sanitizer report in the milter log" milter_sanitizer_clean
tap_done
