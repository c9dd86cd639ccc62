#!/bin/bash
# milter_header.sh - the odd header sections of tests/e2e/data/header_cases.sh through
# mxmoat-milter behind a real Postfix with local_header_rewrite_clients empty (how Postfix treats
# remote clients: it adds no From of its own, which the loopback default would). The milter gets
# the fields as Postfix read them, so its verdict may differ from the proxy's; what must hold for
# every case is that a message is either refused, or relayed with exactly one Authentication-Results
# of ours that evaluated DMARC for the one From field Postfix passed on. In particular a message
# whose first line starts with whitespace is checked: Postfix passes no field, the core still
# runs the checks and the From rule refuses it.
# Ports: 19410 (smtpd), 19411 (sink), 19412 (milter), 19413 (nsd).
top_srcdir=$(cd "${top_srcdir:-.}" && pwd)
top_builddir=$(cd "${top_builddir:-.}" && pwd)
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/postfix.sh"
. "$top_srcdir/tests/lib/milter.sh"
. "$top_srcdir/tests/lib/dns.sh"
. "$top_srcdir/tests/e2e/data/header_cases.sh"

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
milter_pf_prepare milter-header
cd "$MILTER_DIR" || exit 1
SMTPD=19410 SINK=19411 MILTER=19412 DNS=19413

{
	printf '$ORIGIN good.test.\n$TTL 300\n'
	printf '@\tIN SOA ns.good.test. hostmaster.good.test. 1 3600 600 86400 300\n@\tIN NS ns\nns\tIN A 127.0.0.1\n'
	printf '@\tIN TXT "v=spf1 ip4:192.0.2.1 -all"\n_dmarc\tIN TXT "v=DMARC1; p=reject"\n'
} >good.zone
for i in $(seq 1 50); do dns__listening $DNS || break; sleep 0.1; done
dns_start $DNS .="$top_srcdir/tests/e2e/data/root.zone" good.test=good.zone || tap_bail "nsd did not start"
tap_ok "milter starts" milter_start inet:$MILTER@127.0.0.1 -o auth_inbound=yes \
	-o authserv_id=mx.mxmoat.test -o "dns_resolver=127.0.0.1@$DNS" -o dns_timeout=2s
milter_pf_start $SMTPD $SINK "smtpd_milters = inet:127.0.0.1:$MILTER" "milter_default_action = tempfail" \
	"milter_protocol = 6" "local_header_rewrite_clients ="

# send MESSAGE - the message (escapes as in header_cases.sh) over SMTP; the reply after the dot
send() {
	/usr/bin/python3 "$top_srcdir/tests/lib/smtp_chat.py" 127.0.0.1 $SMTPD R S:'EHLO client.example\r\n' R \
		S:'MAIL FROM:<x@example.net>\r\n' R S:'RCPT TO:<b@example.net>\r\n' R S:'DATA\r\n' R \
		S:"$1"'\r\n.\r\n' R S:'QUIT\r\n' R | awk '/^<- 354/ { getline; sub(/^<- /, ""); print; exit }'
}
# fields FILE - the relayed message's header fields as Postfix wrote them, folding joined
fields() {
	pf_headers "$1" | awk '/^[^ \t]/ { if (f != "") print f; f = $0; next } { f = f " " $0 } END { if (f != "") print f }'
}

relayed=0
for i in "${!HC_NAME[@]}"; do
	name=${HC_NAME[$i]}
	reply=$(send "${HC_MSG[$i]}")
	case $reply in
	250*)
		relayed=$((relayed + 1))
		if ! pf_wait_delivered $relayed 20; then
			tap_ok "$name: relayed after 250" false
			continue
		fi
		f=$(fields "$(pf_delivered_last)")
		ours=$(printf '%s\n' "$f" | grep -i '^Authentication-Results *:.*mx\.mxmoat\.test')
		froms=$(printf '%s\n' "$f" | grep -i '^From *:' | sed -n 's/.*@\([A-Za-z0-9.-]*\).*/\1/p')
		tap_is "$name: 250, exactly one A-R of ours" "$(printf '%s\n' "$ours" | grep -c .)" 1
		tap_is "$name: 250, one From field relayed" "$(printf '%s\n' "$froms" | grep -c .)" 1
		tap_like "$name: 250, DMARC evaluated for that From" "$ours" \
			"dmarc=[a-z]+ .*header\\.from=${froms//./\\.}"
		;;
	5*)
		tap_like "$name: refused" "$reply" '^5[0-9][0-9] '
		;;
	*)
		tap_ok "$name: unexpected reply '$reply'" false
		;;
	esac
done

# The case of the review: no field at all reaches the milter, and the core still checks.
for i in "${!HC_NAME[@]}"; do [ "${HC_NAME[$i]}" = "a first line starting with a space" ] && break; done
reply=$(send "${HC_MSG[$i]}")
tap_is "a first line starting with a space: the From rule refuses it" "$reply" \
	"550 5.7.1 Message must have exactly one From address (no From field)"
tap_ok "the milter logged it" milter_log_grep " stage=eom code=550 .* reason=dmarc_bad_from"

# A field of 1 KB in 251 lines: Postfix passes it with bare LFs, the milter rebuilds it with CRLF
# (a CR more per line) and must not take it for one past the header limits.
refs=$(printf '\\r\\n\\tyy%.0s' $(seq 1 250))
reply=$(send "From: a@example.net\\r\\nSubject: folded\\r\\nReferences: x$refs\\r\\n\\r\\nbody")
tap_like "a field in 251 lines: 250" "$reply" '^250 2\.0\.0 Ok'
relayed=$((relayed + 1))
tap_ok "a field in 251 lines: relayed" pf_wait_delivered $relayed 20
tap_is "a field in 251 lines: relayed whole" "$(pf_headers "$(pf_delivered_last)" | grep -c $'^\tyy$')" 250
tap_is "nothing relayed unchecked" "$(pf_delivered_count)" "$relayed"
milter_stop
tap_is "SIGTERM: exit 0" "$MILTER_RC" 0
tap_ok "no sanitizer report" milter_sanitizer_clean
tap_done
