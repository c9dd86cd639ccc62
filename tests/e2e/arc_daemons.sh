#!/bin/bash
# arc_daemons.sh - the arc_trusted_sealers override through both daemons: a p=reject message
# whose author's DKIM signature a list broke (a footer), sealed by the list (dkimpy), reaches
# mxmoat-milter behind a real Postfix and mxmoat-proxy in front of smtp-sink from 127.0.0.1,
# outside the author's SPF record. With lists.arc.test trusted it is delivered with arc=pass and
# "override trusted_forwarder" in our Authentication-Results; the same list's seal over an AAR
# that names only its own domain is refused 550 5.7.1 in both. Then arc_seal on the way out
# (127.0.0.1 an internal network): a forwarded 2-hop chain leaves both daemons with our third
# set, which dkimpy verifies. Ports: 15640 (smtpd), 15641 (sink), 15642 (milter), 15643 (nsd),
# 15645 (proxy), 15646 (sink).
top_srcdir=$(cd "${top_srcdir:-.}" && pwd)
top_builddir=$(cd "${top_builddir:-.}" && pwd)
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/postfix.sh"
. "$top_srcdir/tests/lib/milter.sh"
. "$top_srcdir/tests/lib/dns.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/arc.sh"

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
/usr/bin/python3 -c 'import dkim, authres' 2>/dev/null || tap_skip_all "python3-dkim or python3-authres not installed"
milter_pf_prepare arc-daemons
arc_fixture "$MILTER_DIR" 15643
chmod 644 "$MILTER_DIR"/*.eml
conf=(-o auth_inbound=yes -o dns_resolver=127.0.0.1@15643 -o authserv_id=mx.mxmoat.test
	-o arc_trusted_sealers=lists.arc.test)
override='policy.dmarc=reject (override trusted_forwarder: arc sealed by lists.arc.test)'
# outbound: our A-R of hop2.eml (as we wrote it on the way in), then the message; sealed with
# relay.arc.test's key
tail -n 1 "$MILTER_DIR/seal.out" >"$MILTER_DIR/table"
chmod 644 "$MILTER_DIR/table"
{
	"$top_builddir/tools/mxmoat-check" --resolver 127.0.0.1@15643 -o authserv_id=mx.mxmoat.test \
		--client-ip 198.51.100.7 --helo lists.arc.test --mail-from bounce@lists.arc.test \
		"$MILTER_DIR/hop2.eml" | grep '^Authentication-Results: '
	cat "$MILTER_DIR/hop2.eml"
} >"$MILTER_DIR/forward.eml"
chmod 644 "$MILTER_DIR/forward.eml"
out_conf=(-o internal_networks=127.0.0.0/8 -o "dkim_signing_table=$MILTER_DIR/table"
	-o arc_seal=yes -o arc_seal_domain=relay.arc.test)
# pyarc - dkimpy's verdict on the ARC chain of the captured message on stdin (CRLF restored)
pyarc() {
	sed 's/\r*$/\r/' |
		/usr/bin/python3 "$top_srcdir/tests/helpers/dkim-verify.py" --arc --dns 127.0.0.1@15643
}

# ours FILE - our Authentication-Results of a captured message, unfolded
ours() {
	pf_headers "$1" | awk '/^[^ \t]/ { if (f != "") print f; f = $0; next } { f = f " " $0 } END { print f }' |
		grep -i '^Authentication-Results: mx\.mxmoat\.test;'
}
# send PORT FILE - the message as it is, from bounce@lists.arc.test
send() {
	swaks --server "127.0.0.1:$1" --from bounce@lists.arc.test --to b@example.net --data "$2" 2>&1
}

tap_ok "milter starts (trusting lists.arc.test)" milter_start inet:15642@127.0.0.1 "${conf[@]}"
milter_pf_start 15640 15641 "smtpd_milters = inet:127.0.0.1:15642" "milter_default_action = tempfail" \
	"milter_protocol = 6"
out=$(send 15640 "$MILTER_DIR/list_footer.eml")
tap_like "milter: the list's message is accepted" "$out" "<-  250 2\.0\.0 Ok: queued as"
tap_ok "milter: delivered" pf_wait_delivered 1 20
ar=$(ours "$(pf_delivered_last)")
tap_has "milter: the author's signature broke" "$ar" 'dkim=fail reason="body hash did not verify" header.d=author.test'
tap_has "milter: arc=pass" "$ar" "arc=pass header.oldest-pass=0"
tap_has "milter: dmarc=fail overridden by the trusted sealer" "$ar" "$override"
tap_ok "milter: the log says why" milter_log_grep "override trusted_forwarder"
out=$(send 15640 "$MILTER_DIR/list_unaligned.eml")
tap_like "milter: the sealer's AAR shows no aligned pass: 550 5.7.1" "$out" "<\*\* 550 5\.7\.1 Message rejected: DMARC policy of author\.test"
milter_stop
tap_is "milter: SIGTERM, exit 0" "$MILTER_RC" 0
tap_ok "milter: no sanitizer report" milter_sanitizer_clean
tap_ok "milter starts (sealing outbound mail)" milter_start inet:15642@127.0.0.1 "${conf[@]}" "${out_conf[@]}"
out=$(send 15640 "$MILTER_DIR/forward.eml")
tap_like "milter: the forwarded message is accepted" "$out" "<-  250 2\.0\.0 Ok: queued as"
tap_ok "milter: delivered" pf_wait_delivered 2 20
tap_is "milter: our set is instance 3" \
	"$(pf_headers "$(pf_delivered_last)" | grep -o '^ARC-[A-Za-z-]*: i=3' | sort | tr '\n' ' ')" \
	"ARC-Authentication-Results: i=3 ARC-Message-Signature: i=3 ARC-Seal: i=3 "
tap_is "milter: dkimpy verifies the chain we sealed" "$(pf__message "$(pf_delivered_last)" | pyarc)" pass
milter_stop
tap_ok "milter (sealing): no sanitizer report" milter_sanitizer_clean

px_init || tap_bail "no temp dir"
mkdir -p "$PX_DIR/spool" && chown nobody "$PX_DIR/spool"
px_sink_start 15646 || tap_bail "smtp-sink did not start"
tap_ok "proxy starts (trusting lists.arc.test)" px_start 15645 127.0.0.1:15646 "${conf[@]}" \
	-o "proxy_spool_dir=$PX_DIR/spool"
out=$(send 15645 "$MILTER_DIR/list_footer.eml")
tap_like "proxy: the list's message is relayed" "$out" "<-  250 2\.0\.0 Ok"
for i in $(seq 1 50); do [ "$(px_dumps)" -ge 1 ] && break; sleep 0.1; done
dump=$(find "$PX_DIR/dump" -type f | head -1)
ar=$([ -n "$dump" ] && ours "$dump")
tap_has "proxy: arc=pass" "$ar" "arc=pass header.oldest-pass=0"
tap_has "proxy: dmarc=fail overridden by the trusted sealer" "$ar" "$override"
out=$(send 15645 "$MILTER_DIR/list_unaligned.eml")
tap_like "proxy: the sealer's AAR shows no aligned pass: 550 5.7.1" "$out" "<\*\* 550 5\.7\.1 Message rejected: DMARC policy of author\.test"
tap_is "proxy: only the overridden message was relayed" "$(px_dumps)" 1
px_stop
tap_ok "proxy starts (sealing outbound mail)" px_start 15645 127.0.0.1:15646 "${conf[@]}" \
	"${out_conf[@]}" -o "proxy_spool_dir=$PX_DIR/spool"
out=$(send 15645 "$MILTER_DIR/forward.eml")
tap_like "proxy: the forwarded message is relayed" "$out" "<-  250 2\.0\.0 Ok"
for i in $(seq 1 50); do [ "$(px_dumps)" -ge 2 ] && break; sleep 0.1; done
dump=$(grep -l '^ARC-Seal: i=3' "$PX_DIR"/dump/* 2>/dev/null | head -1)
tap_is "proxy: our set is instance 3" \
	"$([ -n "$dump" ] && pf_headers "$dump" | grep -o '^ARC-[A-Za-z-]*: i=3' | sort | tr '\n' ' ')" \
	"ARC-Authentication-Results: i=3 ARC-Message-Signature: i=3 ARC-Seal: i=3 "
tap_is "proxy: dkimpy verifies the chain we sealed" "$([ -n "$dump" ] && pf__message "$dump" | pyarc)" pass
px_stop
tap_is "proxy: no sanitizer report" \
	"$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$PX_DIR/proxy.log")" 0
tap_done
