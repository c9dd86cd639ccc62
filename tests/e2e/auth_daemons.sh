#!/bin/bash
# auth_daemons.sh - the authentication engine's verdicts and header edits through mxmoat-milter
# and a real Postfix, with the daemon's own defaults for everything but the resolver (nsd on
# loopback serving the SPF and DMARC records; auth_inbound is on by default in both daemons, the
# fixture turns it off for other tests): a From domain with p=quarantine that fails SPF
# lands in Postfix's hold queue (smfi_quarantine), p=reject gives the client 550 5.7.1, an
# aligned SPF pass is delivered with dmarc=pass, and a forged "Authentication-Results :" (blank
# before the colon) carrying our authserv-id is removed while one of another authserv-id stays.
# Then mxmoat-proxy (holding mode) in front of smtp-sink: the same p=quarantine message is
# relayed (the proxy has no hold queue of its own) with dmarc=fail policy.dmarc=quarantine in our
# A-R and verdict=quarantine in its log, and "Authentication-Results<tab>:" is removed there too.
# Ports: 15510 (smtpd), 15511 (sink), 15512 (milter), 15513 (nsd), 15515 (proxy), 15516 (sink).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/postfix.sh"
. "${top_srcdir:-.}/tests/lib/milter.sh"
. "${top_srcdir:-.}/tests/lib/dns.sh"
. "${top_srcdir:-.}/tests/lib/proxy.sh"
top_builddir=${top_builddir:-.}

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
milter_pf_prepare auth-daemons

# Postfix hands the milter client 127.0.0.1: pass.daemons.test authorizes it, q. and r. do not.
cat >"$MILTER_DIR/daemons.test.zone" <<'EOF'
$ORIGIN daemons.test.
$TTL 300
@	IN SOA ns.daemons.test. hostmaster.daemons.test. 1 3600 600 86400 300
@	IN NS ns
ns	IN A 127.0.0.1
pass	IN TXT "v=spf1 ip4:127.0.0.1 -all"
_dmarc.pass	IN TXT "v=DMARC1; p=reject"
q	IN TXT "v=spf1 -all"
_dmarc.q	IN TXT "v=DMARC1; p=quarantine"
r	IN TXT "v=spf1 -all"
_dmarc.r	IN TXT "v=DMARC1; p=reject"
EOF
dns_start 15513 .="$top_srcdir/tests/e2e/data/root.zone" daemons.test="$MILTER_DIR/daemons.test.zone" ||
	tap_bail "nsd did not start"

tap_is "auth_inbound defaults to yes in both daemons" \
	"$( { "$top_builddir/milter/mxmoat-milter" -d; "$top_builddir/proxy/mxmoat-proxy" -d; } | grep -c '^auth_inbound = yes$')" 2
tap_ok "milter starts (authentication on, resolver at nsd)" milter_start inet:15512@127.0.0.1 \
	-o auth_inbound=yes -o dns_resolver=127.0.0.1@15513 -o authserv_id=mx.mxmoat.test
milter_pf_start 15510 15511 "smtpd_milters = inet:127.0.0.1:15512" "milter_default_action = tempfail" \
	"milter_protocol = 6"

# ours FILE - the Authentication-Results fields of a captured message, one per line, unfolded
ars() {
	pf_headers "$1" | awk '/^[^ \t]/ { if (f != "") print f; f = $0; next } { f = f " " $0 } END { print f }' |
		grep -i '^Authentication-Results[ \t]*:'
}

# 1. p=quarantine, SPF fails, no DKIM: the milter quarantines, Postfix holds the message
out=$(swaks --server 127.0.0.1:15510 --from bounce@q.daemons.test --to b@example.net \
	--header 'From: <alice@q.daemons.test>' --header 'Subject: quarantine me' --body 'q' 2>&1)
qid=$(printf '%s\n' "$out" | sed -n 's/.*queued as \([0-9A-F]*\).*/\1/p')
tap_like "p=quarantine: accepted (250) for the hold queue" "$out" "<-  250 2\.0\.0 Ok: queued as [0-9A-F]+"
for i in $(seq 1 50); do
	pf_maillog_grep "$qid: milter-hold: END-OF-MESSAGE" && break
	sleep 0.1
done
tap_ok "p=quarantine: Postfix logs milter-hold for it" pf_maillog_grep "$qid: milter-hold: END-OF-MESSAGE"
tap_is "p=quarantine: it is in the hold queue (postqueue marks it !)" \
	"$(postqueue -c "$PF_CONF" -p 2>&1 | grep -c "^$qid!")" 1
tap_ok "p=quarantine: the milter logs the quarantine verdict" milter_log_grep "verdict=quarantine"

# 2. p=reject, SPF fails: 550 5.7.1 to the client, nothing relayed
out=$(swaks --server 127.0.0.1:15510 --from bounce@r.daemons.test --to b@example.net \
	--header 'From: <alice@r.daemons.test>' --header 'Subject: reject me' --body 'r' 2>&1)
tap_like "p=reject: 550 5.7.1 at end of data" "$out" "<\*\* 550 5\.7\.1 "

# 3. aligned SPF pass, forged A-R fields with a blank before the colon
out=$(swaks --server 127.0.0.1:15510 --from bounce@pass.daemons.test --to b@example.net \
	--header 'From: <alice@pass.daemons.test>' --header 'Subject: forged with a blank' \
	--add-header 'Authentication-Results : mx.mxmoat.test; dkim=pass header.d=forged1.example' \
	--add-header 'Authentication-Results	: mx.mxmoat.test; dmarc=pass header.from=forged2.example' \
	--add-header 'Authentication-Results : other.example; spf=pass smtp.mailfrom=kept.example' \
	--body 'forged' 2>&1)
tap_like "pass: accepted" "$out" "<-  250 2\.0\.0 Ok: queued as"
tap_ok "pass: relayed (the quarantined message is not)" pf_wait_delivered 1 20
ar=$(ars "$(pf_delivered_last)")
tap_is "forged 'Authentication-Results :' and tab-colon of our authserv-id: gone" \
	"$(printf '%s\n' "$ar" | grep -c 'forged[12]\.example')" 0
tap_is "'Authentication-Results :' of another authserv-id kept" \
	"$(printf '%s\n' "$ar" | grep -c 'other\.example; spf=pass smtp\.mailfrom=kept\.example')" 1
tap_is "exactly one A-R of ours" "$(printf '%s\n' "$ar" | grep -c -i 'mx\.mxmoat\.test;')" 1
tap_like "ours says spf=pass and dmarc=pass" "$(printf '%s\n' "$ar" | grep -i 'mx\.mxmoat\.test;')" \
	"spf=pass smtp\.mailfrom=bounce@pass\.daemons\.test.*dmarc=pass header\.from=pass\.daemons\.test"
tap_is "only the passing message was relayed" "$(pf_delivered_count)" 1

milter_stop
tap_is "SIGTERM: exit 0" "$MILTER_RC" 0
tap_ok "no sanitizer report" milter_sanitizer_clean

# ---- mxmoat-proxy in holding mode (the A-R depends on the body) ----
px_init || tap_bail "no temp dir"
mkdir -p "$PX_DIR/spool" && chown nobody "$PX_DIR/spool"   # the proxy runs as daemon_user
px_sink_start 15516 || tap_bail "smtp-sink did not start"
tap_ok "proxy starts (authentication on, resolver at nsd)" px_start 15515 127.0.0.1:15516 \
	-o auth_inbound=yes -o dns_resolver=127.0.0.1@15513 -o authserv_id=mx.mxmoat.test \
	-o "proxy_spool_dir=$PX_DIR/spool"
out=$(swaks --server 127.0.0.1:15515 --from bounce@q.daemons.test --to b@example.net \
	--header 'From: <alice@q.daemons.test>' --header 'Subject: quarantine me' \
	--add-header 'Authentication-Results	: mx.mxmoat.test; dmarc=pass header.from=forged3.example' \
	--body 'q' 2>&1)
tap_like "proxy, p=quarantine: relayed (250 from the sink)" "$out" "<-  250 2\.0\.0 Ok"
for i in $(seq 1 50); do [ "$(px_dumps)" -ge 1 ] && break; sleep 0.1; done
dump=$(find "$PX_DIR/dump" -type f | head -1)
ar=$([ -n "$dump" ] && ars "$dump")
tap_like "proxy, p=quarantine: our A-R says dmarc=fail with policy quarantine" \
	"$(printf '%s\n' "$ar" | grep -i 'mx\.mxmoat\.test;')" \
	"spf=fail smtp\.mailfrom=bounce@q\.daemons\.test.*dmarc=fail .*header\.from=q\.daemons\.test policy\.dmarc=quarantine"
tap_is "proxy: forged 'Authentication-Results<tab>:' of our authserv-id gone" \
	"$(printf '%s\n' "$ar" | grep -c 'forged3\.example')" 0
tap_like "proxy logs the quarantine verdict" "$(cat "$PX_DIR/proxy.log")" "verdict=quarantine"
px_stop
tap_is "proxy: no sanitizer report" \
	"$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$PX_DIR/proxy.log")" 0
tap_done
